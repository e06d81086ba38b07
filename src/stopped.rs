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

use crate::message::Message;

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
    /// Whether a key stopped this way may license again as it is (a pause resumed, a
    /// subscription renewed, a seat given back, a payment made), so a face offers to check it
    /// again; a refunded or replaced key does not come back.
    pub const fn comes_back(self) -> bool {
        matches!(
            self,
            StopKind::Paused | StopKind::Canceled | StopKind::SeatRevoked | StopKind::PastDue
        )
    }

    /// Whether the customer portal is the place for the next step: every stop but a removed
    /// seat (the team's admin gives it back, not the portal).
    pub const fn offers_portal(self) -> bool {
        !matches!(self, StopKind::SeatRevoked)
    }

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

impl Stopped {
    /// The sentence to show the person using the app for a denial with this detail
    /// ([`crate::Denial::user_message`] says it in place of the reason's): what happened, in
    /// plain words, and the next step. Every face shows it as it is (the gate of the npm
    /// package too); a pause's end and a cancellation's date are written as UTC dates
    /// (`2027-06-03`).
    pub fn user_message(&self) -> String {
        self.message().text()
    }

    /// [`Stopped::user_message`] as its one sentence and its one next step.
    pub fn message(&self) -> Message {
        // Short on purpose: these words are in the npm package's default engine (its budget).
        let dated = |prefix: &str, at: Option<i64>| {
            at.map(|d| [prefix, &date(d)].concat()).unwrap_or_default()
        };
        match self.kind {
            StopKind::Paused => Message::new(
                [
                    "Your subscription is paused",
                    &dated(" until ", self.until),
                    ".",
                ]
                .concat(),
                "Try again once it resumes.",
            ),
            StopKind::Canceled => Message::new(
                ["Your subscription ended", &dated(" on ", self.at), "."].concat(),
                "Subscribe again, then try again.",
            ),
            StopKind::SeatRevoked => Message::fixed(
                "Your team's admin removed your seat.",
                "Ask them for one, then try again.",
            ),
            StopKind::Refunded => Message::fixed(
                "This purchase was refunded.",
                "Buy a license to use the app again.",
            ),
            StopKind::Rotated => Message::fixed(
                "This key was replaced by a new one.",
                "Find it in your email or the customer portal.",
            ),
            StopKind::PastDue => Message::fixed(
                "A payment failed.",
                "Update your payment method in the customer portal, then try again.",
            ),
        }
    }
}

/// The UTC date of unix time `secs`, as `2027-06-03`: how [`Stopped::user_message`] writes its
/// dates (the npm package's pack compares its JS dates with these).
pub fn date(secs: i64) -> String {
    let mut out = String::with_capacity(20);
    crate::rfc3339::DateTime::from_unix(secs).write(&mut out);
    out.truncate(10);
    out
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

    /// The rows every face reads (tests/vectors/stopped-messages.json): each detail's sentence
    /// as the core writes it, and the denial saying it in place of its reason's and its hint.
    #[test]
    fn each_stop_is_said_in_its_words_in_place_of_the_reasons() -> Result<(), serde_json::Error> {
        use crate::{Denial, Reason};
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../tests/vectors/stopped-messages.json"))?;
        let rows = doc["rows"].as_array().cloned().unwrap_or_default();
        let mut kinds = Vec::new();
        for row in &rows {
            let name = row["name"].as_str().unwrap_or_default();
            let stopped = Stopped::from_text(row["stopped"].as_str().unwrap_or_default());
            assert!(stopped.is_some(), "{name}: the detail does not read");
            let Some(stopped) = stopped else { continue };
            let want = row["user_message"].as_str().unwrap_or_default();
            assert_eq!(stopped.user_message(), want, "{name}");
            for (reason, previously_valid) in [
                (Reason::Inactive, false),
                (Reason::Inactive, true),
                (Reason::NotFound, true),
            ] {
                let denial = Denial {
                    reason,
                    detail: "License key is no longer active.".into(),
                    status: 404,
                    remaining_usages: None,
                    previously_valid,
                    activation_gone: false,
                    stopped: Some(stopped),
                };
                assert_eq!(denial.user_message(), want, "{name}, {reason:?}");
                let plain = Denial {
                    stopped: None,
                    ..denial
                };
                assert_ne!(plain.user_message(), want, "{name}: without the detail");
            }
            kinds.push(stopped.kind);
        }
        // Every kind has a row, and each kind's sentence is its own.
        for kind in StopKind::ALL {
            assert!(kinds.contains(&kind), "{kind:?} has no row");
        }
        let mut said: Vec<String> = StopKind::ALL
            .iter()
            .map(|&kind| {
                Stopped {
                    kind,
                    at: None,
                    until: None,
                }
                .user_message()
            })
            .collect();
        said.sort();
        said.dedup();
        assert_eq!(said.len(), StopKind::ALL.len());
        Ok(())
    }
}
