//! Verdicts (the server's answer) and errors (no trustworthy answer).
//!
//! A license verdict is not an error: "revoked" is a normal answer, carried as
//! [`Verdict::Denied`]. `Err(Error)` means the library could not get a trustworthy answer
//! or could not even ask.

use crate::decimal::{digits, duration_words};
use crate::message::Message;
use crate::reason::{Reason, ReasonClass};
use std::fmt;

/// The detail of [`Error::no_remembered_key`].
const NO_KEY: &str =
    "no license key is remembered here: ask the user for one, then activate or remember it";

/// How a [`Error::GraceExpired`]'s cause starts when the relay's lease ended (signed mode):
/// its detail is then that cause alone (a forged record's "verified just now" is no reason).
pub(crate) const LEASE_ENDED: &str = "the relay's lease ended ";

/// How a [`Error::Protocol`]'s detail starts when a grant's lease is signed with a key the
/// app does not trust (`unknown_kid`): the app's relay key is not the relay's, a seller's
/// setup mistake, not the network's ([`Error::relay_key_mismatch`]).
pub(crate) const RELAY_KEY_MISMATCH: &str =
    "signed mode: the relay signs with a key this app does not trust (unknown_kid)";

/// The part of a `cache_error`'s detail that says the stored record is not trusted and the
/// activation it remembered cannot be read either (issue #76): [`Error::activation_unreadable`].
pub(crate) const ACTIVATION_UNREADABLE: &str = "the activation it remembered cannot be read";

/// [`Denial::hint`] when [`Denial::activation_gone`], and its next step.
const ACTIVATION_GONE: &str = "This device's activation no longer exists (freed from another \
     device or the customer portal).";
const ACTIVATION_GONE_STEP: &str = "Activate again to use the key on this device.";

/// The server's answer to a request that reached it and was understood.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Verdict<T> {
    /// The server accepted: the license is valid, the activation exists, the deactivation done.
    Accepted(T),
    /// The server said no, with a reason of class [`ReasonClass::Denied`].
    Denied(Denial),
}

impl<T> Verdict<T> {
    /// `true` when the server accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Verdict::Accepted(_))
    }

    /// The accepted value, if any.
    pub fn accepted(&self) -> Option<&T> {
        match self {
            Verdict::Accepted(v) => Some(v),
            Verdict::Denied(_) => None,
        }
    }

    /// The denial, if any.
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Verdict::Accepted(_) => None,
            Verdict::Denied(d) => Some(d),
        }
    }

    /// Converts the accepted value, keeping a denial as it is.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Verdict<U> {
        match self {
            Verdict::Accepted(v) => Verdict::Accepted(f(v)),
            Verdict::Denied(d) => Verdict::Denied(d),
        }
    }
}

/// Why the server said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// A reason of class [`ReasonClass::Denied`].
    pub reason: Reason,
    /// Polar's `detail` text, exactly as sent.
    pub detail: String,
    /// The HTTP status (400, 403 or 404).
    pub status: u16,
    /// For [`Reason::UsageExhausted`]: the usages left ("only has N more usages"); may be 0
    /// or negative when the merchant lowered the limit.
    pub remaining_usages: Option<i64>,
    /// This install had a good verdict for the key before (its cached record holds one): a
    /// key rotated by the merchant or the customer answers `not_found` exactly like an
    /// unknown one, and a refunded one `inactive`, so this is what tells them apart from a
    /// typo. See [`Denial::hint`].
    pub previously_valid: bool,
    /// A deactivate's `not_found` about a key this install knows is good (its record holds a
    /// good verdict for it): Polar answers the same bare 404 for an unknown key and an unknown
    /// activation, so here it is the activation that is gone, freed from another device or
    /// the customer portal (or by a restarted emulator). Set with `previously_valid`; see
    /// [`Denial::hint`]. An addition: the reason stays `not_found`.
    pub activation_gone: bool,
    /// Why the key stopped, when the relay's lifecycle record explains this denial (issue #68,
    /// [`crate::stopped`]): paused, canceled, seat removed, refunded, rotated, past due. An
    /// addition beside the reason, which stays what Polar's answer gives; in signed mode only
    /// the detail inside the relay's signed denial of this request is read. The denial stays
    /// re-checkable: a resumed subscription licenses again at the next check.
    pub stopped: Option<crate::stopped::Stopped>,
}

impl Denial {
    /// Whether a face offers the customer portal beside this denial's message: by why the key
    /// stopped when the relay said ([`StopKind::offers_portal`](crate::stopped::StopKind::offers_portal)),
    /// else by its reason ([`Reason::offers_portal`]).
    pub fn offers_portal(&self) -> bool {
        match self.stopped {
            Some(s) => s.kind.offers_portal(),
            // A key valid here before and now unknown: its step is to find the new key there.
            None if self.reason == Reason::NotFound => {
                self.previously_valid && !self.activation_gone
            }
            None => self.reason.offers_portal(),
        }
    }
}

impl Denial {
    /// A short sentence to show the person using the app: why the key stopped when the
    /// seller's relay told ([`Denial::stopped`], [`crate::stopped::Stopped::user_message`]:
    /// paused until a date, ended, seat removed, refunded, replaced, a payment failed, each with
    /// its next step), else the [`Denial::hint`] when the key was valid here before, else the
    /// reason's. Polar's own `detail` stays for logs. [`Denial::message`]'s text.
    pub fn user_message(&self) -> String {
        self.message().text()
    }

    /// [`Denial::user_message`] as one sentence and one next step: what every face shows, in
    /// one line or two.
    pub fn message(&self) -> Message {
        match &self.stopped {
            Some(stopped) => stopped.message(),
            None => self.reason_said(),
        }
    }

    /// [`Denial::user_message`] without why the key stopped: the [`Denial::hint`] when the key
    /// was valid here before, else the reason's sentence. For a face whose answers never carry
    /// the relay's detail (the npm package's seat, usage and devices modules: their wasm then
    /// links none of its words).
    pub fn reason_message(&self) -> String {
        self.reason_said().text()
    }

    /// [`Denial::reason_message`]'s sentence and next step.
    pub fn reason_said(&self) -> Message {
        match (self.hint(), self.reason) {
            (Some(hint), Reason::NotFound) if self.activation_gone => {
                Message::fixed(hint, ACTIVATION_GONE_STEP)
            }
            (Some(hint), Reason::NotFound) => {
                Message::fixed(hint, "Find the current key in the customer portal.")
            }
            (Some(hint), reason) => Message::fixed(hint, reason.next_step()),
            (None, reason) => reason.message(),
        }
    }

    /// One sentence to show a user when a key that was valid on this install is refused now
    /// (`previously_valid`): what probably happened (its next step is
    /// [`Denial::message`]'s). `None` otherwise, and when the relay said why the key stopped
    /// ([`Denial::stopped`]: that says it, and a guess beside it would only contradict it).
    pub fn hint(&self) -> Option<&'static str> {
        // The relay's word on why the key stopped says it all: a hint beside it would be a
        // second sentence (issue #80), even the gone activation's.
        if self.stopped.is_some() {
            return None;
        }
        if self.activation_gone && self.reason == Reason::NotFound {
            return Some(ACTIVATION_GONE);
        }
        if !self.previously_valid {
            return None;
        }
        match self.reason {
            Reason::NotFound => {
                Some("This key was valid here before and may have been replaced by a new key.")
            }
            Reason::Inactive => {
                Some("This key was valid here before and has been revoked or disabled since.")
            }
            Reason::Expired => Some("This key was valid here before and has expired since."),
            _ => None,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// No trustworthy answer. Every variant maps to one [`Reason`] through [`Error::reason`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Rejected before any request was sent, or rejected by the server with 422.
    InvalidInput {
        /// The field at fault, e.g. `organization_id` or `conditions.machine_id`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The server could not be reached (refused, DNS, timeout, TLS, reset).
    Offline {
        /// `true` when a timeout ran out.
        timeout: bool,
        /// What happened, from the transport.
        detail: String,
    },
    /// 429: Polar's rate limit (3 requests per second per IP, then a 60 s block).
    RateLimited {
        /// Seconds to wait, when the `retry-after` header was readable.
        retry_after: Option<u64>,
    },
    /// A 5xx answer.
    ServerError {
        /// The HTTP status.
        status: u16,
        /// The start of the body, for diagnostics.
        detail: String,
    },
    /// A malformed, truncated or oversized body; an unexpected status; 401; 411; 413.
    Protocol {
        /// The HTTP status when there was one.
        status: Option<u16>,
        /// What is wrong.
        detail: String,
    },
    /// Offline (or rate limited, or a server error), and the last good online verdict is older
    /// than the grace period.
    GraceExpired {
        /// Seconds since the last good online verdict.
        verified_seconds_ago: u64,
        /// Why the server could not be asked this time.
        cause: String,
    },
    /// The clock is earlier than a time this cache has already seen, by more than the tolerance.
    ClockRollback {
        /// How far back the clock moved, in seconds.
        by_seconds: u64,
    },
    /// The clock has not moved forward across this many answers from the cache: a held clock
    /// must not stretch the cache's windows without end (reason `clock_rollback`).
    ClockStalled {
        /// The cached answers given since the clock last moved forward.
        answers: u32,
    },
    /// The offline cache cannot be read or written (a tampered or corrupt record is not this:
    /// it is treated as no cache).
    Cache {
        /// What failed.
        detail: String,
    },
    /// A background check's immediate answer when the cache has nothing usable: Polar is
    /// being asked, and the fresh answer follows.
    NotYetVerified,
    /// Signed mode: a grant refused as a replay (reason `replayed`): its lease answers another
    /// request, or was issued before the stored lease or the stored denial. The record keeps
    /// its denial and its clock; the cache answers instead only when it licenses on its own.
    Replayed {
        /// Why the answer is not this request's.
        detail: String,
    },
    /// A seat held through the seller's relay (issue #76) ended on this machine: no renewal
    /// the relay signed arrived before its lease ended (and the grace the app gave after it),
    /// so the relay may already have given the seat to another machine (reason `seat_lost`).
    /// Stop what the seat licensed; acquire again.
    SeatLost {
        /// When the hold ended (the lease's end, and the grace after it), unix seconds.
        ended_at: i64,
        /// Why no renewal arrived, as the last heartbeat failed.
        cause: String,
    },
}

impl Error {
    /// The HTTP status of the answer this error is about, when there was one: a 5xx, a 429,
    /// an answer that is not Polar's (a 407, a login page's 200). The same on every face
    /// (CLI `status`, C `polar_license_result_http_status`, JS `LicenseError.status`).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Protocol { status, .. } => *status,
            Error::ServerError { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// For [`Reason::InvalidInput`]: the field at fault (`key`, `activation_id`, …).
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }

    /// For [`Reason::RateLimited`]: the seconds to wait, when the server said.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The stable reason code of this error.
    pub fn reason(&self) -> Reason {
        match self {
            Error::InvalidInput { .. } => Reason::InvalidInput,
            Error::Offline { .. } => Reason::Offline,
            Error::RateLimited { .. } => Reason::RateLimited,
            Error::ServerError { .. } => Reason::ServerError,
            Error::Protocol { .. } => Reason::ProtocolError,
            Error::GraceExpired { .. } => Reason::GraceExpired,
            Error::ClockRollback { .. } | Error::ClockStalled { .. } => Reason::ClockRollback,
            Error::Cache { .. } => Reason::CacheError,
            Error::NotYetVerified => Reason::NotYetVerified,
            Error::Replayed { .. } => Reason::Replayed,
            Error::SeatLost { .. } => Reason::SeatLost,
        }
    }

    /// Signed mode: a grant's lease is signed with a key the app does not trust
    /// (`unknown_kid`): the app's relay key does not match the relay's, a seller's setup
    /// mistake rather than the network's (its reason stays `protocol_error`).
    pub fn relay_key_mismatch(&self) -> bool {
        matches!(self, Error::Protocol { detail, .. } if detail.contains(RELAY_KEY_MISMATCH))
    }

    /// A check that requires an activation found the stored record untrusted and the
    /// activation it remembered unreadable too (a byte of it changed): `cache_error`, nothing
    /// sent. Activating again takes a new slot; the old one can be freed from the key's
    /// devices.
    pub fn activation_unreadable(&self) -> bool {
        matches!(self, Error::Cache { detail } if detail.contains(ACTIVATION_UNREADABLE))
    }

    /// A short sentence to show the person using the app: what happened and what they can do,
    /// with no internals (the reason code and [`Error::detail`] are for logs and support).
    /// [`Error::message`]'s text.
    pub fn user_message(&self) -> String {
        self.message().text()
    }

    /// [`Error::user_message`] as one sentence and one next step: the reason's
    /// ([`Reason::message`]) unless this error says more of its case (the seconds of a rate
    /// limit, the field at fault, a timeout).
    pub fn message(&self) -> Message {
        match self {
            Error::InvalidInput { field, message } if field == "key" && message == NO_KEY => {
                Message::fixed("This app is not licensed yet.", "Enter your license key.")
            }
            // A key that is not a key's shape was typed by the person, not set by the app.
            Error::InvalidInput { field, .. } if field == "key" => {
                Message::fixed("This license key is not valid.", "Check it for typos.")
            }
            Error::InvalidInput { field, .. } if field == "activation_id" => Message::fixed(
                "This license key is not activated on this computer yet.",
                "Activate it here.",
            ),
            Error::InvalidInput { field, .. } => Message::new(
                ["The app's license settings are wrong (", field, ")."].concat(),
                "Contact its vendor.",
            ),
            Error::Offline { timeout: true, .. } => Message::fixed(
                "Polar, the license server, did not answer in time.",
                Reason::Offline.next_step(),
            ),
            Error::RateLimited {
                retry_after: Some(s),
            } => Message::new(
                Reason::RateLimited.user_message(),
                ["Try again in ", &digits(*s), " seconds."].concat(),
            ),
            Error::Protocol { .. } if self.relay_key_mismatch() => Message::fixed(
                "The license server signs with a key this app does not know (the app's relay \
                 key does not match the seller's relay).",
                "Tell the seller, as the network is not the problem.",
            ),
            Error::Cache { .. } if self.activation_unreadable() => Message::fixed(
                "This computer's license record is damaged.",
                "Activate the license again.",
            ),
            _ => self.reason().message(),
        }
    }

    /// The detail text (ours or the server's).
    pub fn detail(&self) -> String {
        match self {
            Error::InvalidInput { field, message } => [field, ": ", message].concat(),
            Error::Offline { detail, .. } => detail.clone(),
            Error::RateLimited {
                retry_after: Some(s),
            } => ["retry after ", &digits(*s), " s"].concat(),
            Error::RateLimited { retry_after: None } => "retry after unknown".to_string(),
            Error::ServerError { status, detail } => {
                ["status ", &digits(u64::from(*status)), ": ", detail].concat()
            }
            Error::Protocol { detail, .. } => detail.clone(),
            // Signed mode: the lease's end decided, whatever the record says of its age.
            Error::GraceExpired { cause, .. } if cause.starts_with(LEASE_ENDED) => cause.clone(),
            Error::GraceExpired {
                verified_seconds_ago,
                cause,
            } => [
                "last verified ",
                &duration_words(*verified_seconds_ago),
                " ago, past the grace period; ",
                cause,
            ]
            .concat(),
            Error::ClockRollback { by_seconds } => [
                "the clock moved back ",
                &duration_words(*by_seconds),
                " since the last verdict",
            ]
            .concat(),
            Error::ClockStalled { answers } => [
                "the clock has not moved forward across ",
                &digits(u64::from(*answers)),
                " answers from the cache: Polar must answer first",
            ]
            .concat(),
            Error::Cache { detail } => detail.clone(),
            Error::NotYetVerified => {
                "not verified yet: Polar is being asked in the background".to_string()
            }
            Error::Replayed { detail } => detail.clone(),
            Error::SeatLost { ended_at, cause } => {
                let mut at = String::new();
                crate::rfc3339::DateTime::from_unix(*ended_at).write(&mut at);
                [
                    "the seat's lease ended at ",
                    &at,
                    " with no renewal from the relay (",
                    cause,
                    "): the relay may have given the seat to another machine",
                ]
                .concat()
            }
        }
    }

    /// `true` when a timeout ran out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Offline { timeout: true, .. })
    }

    /// `true` for the errors of class [`ReasonClass::Unverified`]: no answer from Polar
    /// (`offline`, `rate_limited`, `server_error`) or none the cache may give
    /// (`grace_expired`, `clock_rollback`).
    pub fn is_unverified(&self) -> bool {
        self.reason().class() == ReasonClass::Unverified
    }

    /// `true` when a grace-aware check may answer from a trusted cached verdict after this
    /// error (docs/interfaces.md §4): every answer that is not Polar's verdict, that is the
    /// unverified ones and `protocol_error` (a captive portal, a proxy's page, a redirect, garbage,
    /// an answer contradicting the request). Never `invalid_input` or `cache_error`. A
    /// `replayed` one falls back only to a cache that licenses: otherwise the refusal itself is
    /// the answer, naming the replay ([`crate::grace::settle`]).
    pub fn falls_back(&self) -> bool {
        self.is_unverified() || matches!(self, Error::Protocol { .. })
    }

    /// The `invalid_input` (field `key`) of a check of the remembered key when none is
    /// remembered: the app's cue to ask the user for a key.
    pub fn no_remembered_key() -> Error {
        Error::invalid("key", NO_KEY)
    }

    /// Shorthand for an [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn protocol(status: Option<u16>, detail: impl Into<String>) -> Error {
        Error::Protocol {
            status,
            detail: detail.into(),
        }
    }
}

impl Error {
    /// What `Display` prints, `category: detail` (`invalid input: key: must not be empty`),
    /// built without `core::fmt`.
    pub fn text(&self) -> String {
        let category = match self {
            Error::InvalidInput { .. } => "invalid input: ",
            Error::Offline { .. } => "offline: ",
            Error::RateLimited { retry_after: None } => return "rate limited".to_string(),
            Error::RateLimited { .. } => "rate limited: ",
            Error::ServerError { .. } => "server error: ",
            Error::Protocol { .. } => "protocol error: ",
            Error::GraceExpired { .. } => "grace expired: ",
            Error::ClockRollback { .. } | Error::ClockStalled { .. } => "clock rollback: ",
            Error::Cache { .. } => "cache error: ",
            Error::NotYetVerified => "not yet verified: ",
            Error::Replayed { .. } => "replayed: ",
            Error::SeatLost { .. } => "seat lost: ",
        };
        [category, &self.detail()].concat()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key the person typed in the wrong shape is their typo to fix, not the app's settings
    /// (the gate shows this sentence under its key field).
    #[test]
    fn a_mistyped_key_says_check_it_for_typos_not_contact_the_vendor() {
        let said = Error::invalid("key", "contains a character that is not allowed").message();
        assert_eq!(
            said.text(),
            "This license key is not valid: check it for typos."
        );
        let settings = Error::invalid("organization_id", "must be a UUID v4").message();
        assert!(settings.text().contains("vendor"), "{}", settings.text());
    }

    #[test]
    fn every_answer_has_a_sentence_for_the_user_and_no_internals() {
        let errors = [
            Error::invalid("key", "must not be empty"),
            Error::invalid("activation_id", "no activation remembered"),
            Error::invalid("organization_id", "must be a UUID v4"),
            Error::Offline {
                timeout: true,
                detail: "io: timed out".into(),
            },
            Error::Offline {
                timeout: false,
                detail: "io: refused".into(),
            },
            Error::RateLimited {
                retry_after: Some(42),
            },
            Error::RateLimited { retry_after: None },
            Error::ServerError {
                status: 502,
                detail: "<html>bad gateway".into(),
            },
            Error::protocol(
                Some(200),
                "malformed validate response: expected value at line 1",
            ),
            Error::GraceExpired {
                verified_seconds_ago: 9_999_999,
                cause: "offline".into(),
            },
            Error::ClockRollback { by_seconds: 7200 },
            Error::ClockStalled { answers: 32 },
            Error::Cache {
                detail: "/home/x/cache: Permission denied (os error 13)".into(),
            },
            Error::NotYetVerified,
            Error::SeatLost {
                ended_at: 1_800_000_000,
                cause: "offline: io: refused".into(),
            },
        ];
        let mut seen = std::collections::HashSet::new();
        for e in &errors {
            let m = e.user_message();
            assert!(m.ends_with('.') || m.ends_with('…'), "{m}");
            assert!(m.chars().next().is_some_and(char::is_uppercase), "{m}");
            for internal in ["line 1", "os error", "<html>", "9999999", "io:", "UUID"] {
                assert!(!m.contains(internal), "{e:?}: {m}");
            }
            seen.insert(m);
        }
        assert_eq!(
            seen.len(),
            errors.len() - 1, // a clock moved back and a clock held still say the same
            "each answer says something of its own"
        );
        assert!(errors[8].user_message().contains("login page"));
        assert!(errors[5].user_message().contains("42 seconds"));
        let denials: Vec<String> = Reason::ALL
            .into_iter()
            .filter(|r| r.class() == ReasonClass::Denied)
            .map(|reason| {
                Denial {
                    reason,
                    detail: String::new(),
                    status: 404,
                    remaining_usages: None,
                    previously_valid: false,
                    activation_gone: false,
                    stopped: None,
                }
                .user_message()
            })
            .collect();
        let distinct: std::collections::HashSet<_> = denials.iter().collect();
        assert_eq!(distinct.len(), denials.len(), "{denials:?}");
        let rotated = Denial {
            reason: Reason::NotFound,
            detail: "Not found".into(),
            status: 404,
            remaining_usages: None,
            previously_valid: true,
            activation_gone: false,
            stopped: None,
        };
        assert!(
            rotated
                .user_message()
                .starts_with("This key was valid here before"),
            "{}",
            rotated.user_message()
        );
    }

    #[test]
    fn a_gone_activation_says_so_not_a_typo() {
        let gone = Denial {
            reason: Reason::NotFound,
            detail: "Not found".into(),
            status: 404,
            remaining_usages: None,
            previously_valid: true,
            activation_gone: true,
            stopped: None,
        };
        let m = gone.user_message();
        assert!(
            m.starts_with("This device's activation no longer exists"),
            "{m}"
        );
        assert!(m.contains("portal") && !m.contains("typo"), "{m}");
        // The hint is the message's one sentence; its step is the message's other half.
        assert_eq!(gone.hint(), Some(gone.message().sentence()));
        assert_eq!(
            gone.message().next_step(),
            "Activate again to use the key on this device."
        );
        // Only a not_found says it: another reason keeps its own words.
        let inactive = Denial {
            reason: Reason::Inactive,
            ..gone
        };
        assert!(!inactive
            .user_message()
            .contains("activation no longer exists"));
    }

    #[test]
    fn error_stays_small() {
        assert!(
            std::mem::size_of::<Error>() <= 64,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn display_is_category_colon_detail() {
        let e = Error::invalid("organization_id", "must be a UUID v4");
        assert_eq!(
            e.to_string(),
            "invalid input: organization_id: must be a UUID v4"
        );
        assert_eq!(e.reason(), Reason::InvalidInput);
        let e = Error::RateLimited {
            retry_after: Some(60),
        };
        assert_eq!(e.to_string(), "rate limited: retry after 60 s");
        assert!(e.is_unverified());
        assert!(!Error::protocol(Some(401), "x").is_unverified());
    }

    /// The modules of the core's `crate::` paths in a file's library code (before its tests;
    /// comments and doc links left out): `crate::a::B`, `crate::{a::B, c}` and `crate::a` alike.
    fn modules_named(source: &str) -> Vec<String> {
        let library = source.split("\n#[cfg(test)]").next().unwrap_or(source);
        let code: String = library
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut found = Vec::new();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .collect(),
                None => vec![rest],
            };
            for name in names {
                let module: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // `crate::Error` names the root's re-export: lib.rs, above everything.
                if !module.is_empty() {
                    found.push(module);
                }
            }
        }
        found
    }

    /// The floor the errors stand on (issue #77: the core's one import circle ran error.rs ->
    /// message.rs -> portal.rs and purchase.rs -> error.rs): the leaves import nothing of the
    /// core, the words (`Message` and each reason's) only the reason and a leaf's duration
    /// words, a stop only the words, and `Error` only these, so every file that makes an error
    /// stands above them all and an answer type says its own words beside it.
    #[test]
    fn the_errors_floor_takes_nothing_from_above() {
        let floor: [(&str, &str, &[&str]); 7] = [
            ("reason.rs", include_str!("reason.rs"), &[]),
            ("hex.rs", include_str!("hex.rs"), &[]),
            ("decimal.rs", include_str!("decimal.rs"), &[]),
            ("rfc3339.rs", include_str!("rfc3339.rs"), &[]),
            (
                "message.rs",
                include_str!("message.rs"),
                &["decimal", "reason"],
            ),
            (
                "stopped.rs",
                include_str!("stopped.rs"),
                &["message", "rfc3339"],
            ),
            (
                "error.rs",
                include_str!("error.rs"),
                &["decimal", "message", "reason", "rfc3339", "stopped"],
            ),
        ];
        for (file, source, below) in floor {
            for module in modules_named(source) {
                assert!(
                    below.contains(&module.as_str()),
                    "src/{file} takes crate::{module}, which is not below it"
                );
            }
        }
    }
}
