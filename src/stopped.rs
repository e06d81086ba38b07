//! Why a key stopped (issue #68 item 4): the relay's typed detail of a denial, read from
//! Polar's lifecycle webhooks (docs/polar-api.md §16.6, §15). Polar answers a paused
//! subscription, a cancellation that ended, a removed seat, a refund with revocation and a
//! rotated key all with the same 404; only the webhooks a relay receives tell them apart.
//!
//! The detail is an *addition to* a denial, never a verdict: the reason code stays what Polar's
//! answer gives (`inactive`, `not_found`), the denial stays a denial, and the next check asks
//! again (a resumed subscription licenses again then). It travels beside Polar's body:
//!
//! - in the [`STOPPED_HEADER`] response header, as [`Stopped::to_text`] writes it
//!   (`paused; at=1790000000; until=1790600000`), which an unsigned client reads;
//! - in signed mode, inside the relay's signed denial (its `stop` claim, the same text), for a
//!   request whose nonce ends with [`STOP_MARK`]: a client in signed mode believes only that
//!   one, never the header (which anyone between could write).
//!
//! A client older than the claim sends no [`STOP_MARK`], so a relay never gives it a denial
//! with a claim it would refuse (its reading refuses unknown members).

/// The response header a relay puts a denial's detail in (unsigned: a client in signed mode
/// reads the signed denial's `stop` claim instead).
pub const STOPPED_HEADER: &str = "polar-license-stopped";

/// The end of a nonce whose request reads the `stop` claim of a signed denial (before
/// [`crate::lease::FACTS_MARK`], which it ends with too: `…-stop-facts`).
pub const STOP_MARK: &str = "-stop-facts";

/// Whether the request whose nonce is `nonce` reads the signed denial's `stop` claim.
pub fn asks_stop(nonce: &str) -> bool {
    nonce.ends_with(STOP_MARK)
}

/// The longest detail text read (a real one is under 60 bytes).
const MAX_TEXT: usize = 128;

/// What stopped the key, as Polar's webhooks told the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopKind {
    /// The subscription is paused (`until`: when it resumes, if Polar said).
    Paused,
    /// The subscription was canceled and has ended (`at`: when it ended).
    Canceled,
    /// The customer's team removed this member's seat.
    SeatRevoked,
    /// The order was refunded and its benefits revoked.
    Refunded,
    /// This key string was replaced by a new one (the new one is in the customer portal).
    Rotated,
    /// A payment failed and the grace period ended (`at`: when it went past due).
    PastDue,
}

impl StopKind {
    /// Every kind, in a fixed order (the faces' tables follow it).
    pub const ALL: [StopKind; 6] = [
        StopKind::Paused,
        StopKind::Canceled,
        StopKind::SeatRevoked,
        StopKind::Refunded,
        StopKind::Rotated,
        StopKind::PastDue,
    ];

    /// The stable code (contract §1, a detail of the denial).
    pub fn code(self) -> &'static str {
        match self {
            StopKind::Paused => "paused",
            StopKind::Canceled => "canceled",
            StopKind::SeatRevoked => "seat_revoked",
            StopKind::Refunded => "refunded",
            StopKind::Rotated => "rotated",
            StopKind::PastDue => "past_due",
        }
    }

    /// The kind of a code; `None` for one this library does not know.
    pub fn from_code(code: &str) -> Option<StopKind> {
        StopKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// A denial's detail: what stopped the key, and its dates (unix seconds) when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// What stopped it.
    pub kind: StopKind,
    /// When it happened (paused, ended, removed, refunded, rotated, went past due).
    pub at: Option<i64>,
    /// When it is expected to work again: a pause's `resumes_at` (only [`StopKind::Paused`]).
    pub until: Option<i64>,
}

impl Stopped {
    /// The detail as the header and the signed claim carry it: the code, then `; at=N` and
    /// `; until=N` when known.
    pub fn to_text(&self) -> String {
        let mut text = self.kind.code().to_string();
        if let Some(at) = self.at {
            text.push_str(&format!("; at={at}"));
        }
        if let Some(until) = self.until {
            text.push_str(&format!("; until={until}"));
        }
        text
    }

    /// Reads [`Stopped::to_text`]'s form strictly: `None` for anything else (an unknown code,
    /// an unknown or repeated parameter, a date that is not an integer, over 128 bytes).
    pub fn from_text(text: &str) -> Option<Stopped> {
        if text.len() > MAX_TEXT {
            return None;
        }
        let mut parts = text.split(';').map(str::trim);
        let kind = StopKind::from_code(parts.next()?)?;
        let mut stopped = Stopped {
            kind,
            at: None,
            until: None,
        };
        for part in parts {
            let (name, value) = part.split_once('=')?;
            let value: i64 = value.trim().parse().ok()?;
            let slot = match name.trim() {
                "at" => &mut stopped.at,
                "until" => &mut stopped.until,
                _ => return None,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_reads_back_and_nothing_else_reads() {
        for kind in StopKind::ALL {
            for (at, until) in [(None, None), (Some(5), None), (Some(1), Some(-2))] {
                let s = Stopped { kind, at, until };
                assert_eq!(Stopped::from_text(&s.to_text()), Some(s));
            }
        }
        assert_eq!(
            Stopped::from_text(" paused ;until=9 ; at=3"),
            Some(Stopped {
                kind: StopKind::Paused,
                at: Some(3),
                until: Some(9)
            })
        );
        for bad in [
            "",
            "stopped",
            "PAUSED",
            "paused; at=1; at=2",
            "paused; at=x",
            "paused; when=1",
            "paused; at",
            "paused;",
            &format!("paused; at={}", "1".repeat(200)),
        ] {
            assert_eq!(Stopped::from_text(bad), None, "{bad}");
        }
        assert!(asks_stop("00ff-stop-facts") && !asks_stop("00ff-facts"));
    }
}
