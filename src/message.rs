//! What to tell the person using the app (issue #77 "faces marshal, the core speaks"; issue #80
//! "one sentence and one next step"): every stop reason, stopped key, entitlement state, seat
//! answer and usage answer is said here, once, as one sentence of what happened and one next
//! step, so a face only passes the words on and every face says the same thing.
//!
//! The words are plain and carry no face's vocabulary (no command names, no buttons): the
//! command line, the C library, Python, Tauri and the npm package show them as they are.
//! [`Message::text`] joins the two as one line (`This license key has expired: renew it in the
//! customer portal.`); a face with room for two lines shows [`Message::sentence`] and
//! [`Message::next_step`] apart.

use crate::reason::Reason;
use std::borrow::Cow;
use std::fmt;

/// One sentence of what happened and one next step, each a sentence of its own that starts
/// with a capital and ends with a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    sentence: Cow<'static, str>,
    next_step: Cow<'static, str>,
}

impl Message {
    /// A message of fixed words.
    pub(crate) const fn fixed(sentence: &'static str, next_step: &'static str) -> Message {
        Message {
            sentence: Cow::Borrowed(sentence),
            next_step: Cow::Borrowed(next_step),
        }
    }

    /// A message whose sentence or step carries a number or a name.
    pub(crate) fn new(
        sentence: impl Into<Cow<'static, str>>,
        next_step: impl Into<Cow<'static, str>>,
    ) -> Message {
        Message {
            sentence: sentence.into(),
            next_step: next_step.into(),
        }
    }

    /// What happened, in one sentence.
    pub fn sentence(&self) -> &str {
        &self.sentence
    }

    /// The one thing the person can do next, in one sentence.
    pub fn next_step(&self) -> &str {
        &self.next_step
    }

    /// The sentence and the step as one line: the sentence's period becomes a colon and the
    /// step follows in lower case (`Every seat of this license is in use: try again when one
    /// is free.`). What every face's `user_message` is.
    pub fn text(&self) -> String {
        let sentence = self.sentence.strip_suffix('.').unwrap_or(&self.sentence);
        let mut step = self.next_step.chars();
        let first = step.next().map(|c| c.to_ascii_lowercase());
        let mut out = String::with_capacity(sentence.len() + self.next_step.len() + 2);
        out.push_str(sentence);
        out.push_str(": ");
        out.extend(first);
        out.push_str(step.as_str());
        out
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl Reason {
    /// The reason's one sentence and next step ([`Reason::user_message`],
    /// [`Reason::next_step`]).
    pub const fn message(self) -> Message {
        let (sentence, step) = self.words();
        Message::fixed(sentence, step)
    }

    /// What happened, in one sentence, for a person using the app: the table every face reads
    /// instead of keeping its own (a denial or an error may say more of its case, e.g. a rate
    /// limit's seconds: [`crate::Denial::message`], [`crate::Error::message`]).
    pub const fn user_message(self) -> &'static str {
        self.words().0
    }

    /// The one next step for this reason, in one sentence.
    pub const fn next_step(self) -> &'static str {
        self.words().1
    }

    const fn words(self) -> (&'static str, &'static str) {
        match self {
            Reason::NotFound => ("This license key was not found.", "Check it for typos."),
            Reason::Inactive => (
                "This license key is no longer active.",
                "See its state in the customer portal.",
            ),
            Reason::Expired => (
                "This license key has expired.",
                "Renew it in the customer portal.",
            ),
            Reason::ConditionsMismatch => (
                "This license key is activated for another computer.",
                "Activate it on this one.",
            ),
            Reason::BenefitMismatch => (
                "This license key is for another product or plan.",
                "Use the key bought for this app.",
            ),
            Reason::CustomerMismatch => (
                "This license key belongs to another customer.",
                "Use the key of your own account.",
            ),
            Reason::UsageExhausted => (
                "This license key has no uses left.",
                "Upgrade the license or wait for the next period.",
            ),
            Reason::ActivationLimit => (
                "This license key is already active on as many devices as it allows.",
                "Deactivate it on one of them (in the app there, or in the customer portal if \
                 that device is gone), then activate here again.",
            ),
            Reason::ActivationsNotSupported => (
                "This license key cannot be activated on a computer.",
                "Ask the seller how to use it.",
            ),
            Reason::Offline => (
                "Polar, the license server, could not be reached.",
                "Check your internet connection.",
            ),
            Reason::RateLimited => ("Too many license checks at once.", "Try again in a minute."),
            Reason::ServerError => (
                "Polar, the license server, has a problem right now.",
                "Try again later.",
            ),
            Reason::GraceExpired => (
                "The license has not been verified for too long.",
                "Connect to the internet to keep using the app.",
            ),
            Reason::ClockRollback => (
                "The computer's clock looks wrong.",
                "Set it right, or connect to the internet.",
            ),
            Reason::ProtocolError => (
                "A network login page or a proxy is in the way of the license server.",
                "Sign in to the network, or try another one.",
            ),
            Reason::InvalidInput => ("This license key is not valid.", "Check it for typos."),
            Reason::CacheError => (
                "The license could not be saved on this computer.",
                "Check the disk space and the folder's permissions.",
            ),
            Reason::LoadError => (
                "The licensing module could not be loaded.",
                "Reload the app, and tell the seller if that does not help.",
            ),
            Reason::NotYetVerified => ("The license is being checked.", "Wait a moment."),
            Reason::Replayed => (
                "The license server's answer was not for this check (a proxy may be replaying \
                 old answers).",
                "Connect directly and try again.",
            ),
            Reason::SeatsFull => (
                "Every seat of this license is in use.",
                "Try again when one is free.",
            ),
            Reason::CreditsExhausted => (
                "The credits of this license are used up.",
                "Buy more or wait for the next period.",
            ),
            Reason::SeatLost => (
                "This computer's seat of the license ended (the license server could not be \
                 reached to keep it).",
                "Connect to the network and start again.",
            ),
        }
    }
}

impl Reason {
    /// Whether the customer portal is the place for this reason's next step (issue #80: the
    /// gate kept its own set of them): a key at its activation limit (free a gone device
    /// there), expired (renew it), no longer active (see its state) or out of uses (upgrade).
    /// A face that has the seller's portal address offers it beside the message.
    pub const fn offers_portal(self) -> bool {
        matches!(
            self,
            Reason::ActivationLimit | Reason::Expired | Reason::Inactive | Reason::UsageExhausted
        )
    }
}

/// What to tell a buyer whose purchase is paid but came with no session (Polar matched the
/// buyer's email to an existing customer, PR #9972): the sign-in code is on its way to `email`.
pub fn purchase_sign_in(email: Option<&str>) -> Message {
    match email {
        Some(email) if email.is_ascii() && !email.contains(['"', '\\']) => Message::new(
            "Your purchase is paid and Polar is emailing a sign-in code to ".to_string()
                + email
                + ".",
            "Type the code here to unlock the app.",
        ),
        _ => Message::fixed(
            "Your purchase is paid and Polar is emailing a sign-in code to the address you paid with.",
            "Type the code here to unlock the app.",
        ),
    }
}

/// What a licensed check says: no next step, there being nothing to do. Every face's words for
/// a check that licenses this device online (the gate's licensed screen).
pub const LICENSED: &str = "This device is licensed.";

/// What a check licensed from the cache says when Polar could not be reached: how long the
/// grace still lasts (`grace_remaining`, in seconds, as the check's answer gives it; worded
/// here, in the core's English, so every face says the same duration) and what keeps the
/// device licensed.
pub fn licensed_offline(grace_remaining: u64) -> Message {
    Message::new(
        "Polar could not be reached, so this device stays licensed for ".to_string()
            + &crate::decimal::duration_words(grace_remaining)
            + " more.",
        "Connect to the internet before then to keep it licensed.",
    )
}

/// What a licensed check says, the one rule every face's licensed words come from: an answer
/// from the cache because Polar could not be reached (`fell_back`) with `grace_remaining` left,
/// [`licensed_offline`]; any other licensed answer (online, or from the cache while its answer
/// was still fresh), [`LICENSED`]. [`crate::CheckReport::licensed_message`] reads a report by it.
pub fn licensed(grace_remaining: Option<core::time::Duration>, fell_back: bool) -> String {
    match grace_remaining.filter(|_| fell_back) {
        Some(grace) => licensed_offline(grace.as_secs()).text(),
        None => LICENSED.to_string(),
    }
}

/// [`licensed_offline`] for a face that knows no grace end (an app's own client whose answer
/// carries neither words nor seconds): the sentence names no duration. Apart, so that the npm
/// engine, which always has the seconds, links none of its words.
pub const LICENSED_OFFLINE_UNDATED: Message = Message::fixed(
    "Polar could not be reached, so this device is licensed from its last check.",
    "Connect to the internet to check the license again.",
);

/// What a deactivation that freed this device's seat says.
pub const DEACTIVATED: Message = Message::fixed(
    "This device is deactivated and its seat is free for another device.",
    "Activate a license key to use the app here again.",
);

/// What an empty list of a key's devices says (Polar lists none: the seller may not let
/// customers manage their devices).
pub const NO_DEVICES: Message = Message::fixed(
    "Polar lists no device for this license key.",
    "Deactivate the key in the app on the other device, or contact the seller.",
);

/// What an empty list of a customer's keys says (none active and unexpired to activate here).
pub const NO_KEYS: Message = Message::fixed(
    "No license key of this account can be activated here.",
    "Check the email you signed in with, or buy a license.",
);

/// What a failure the core has no words for says (an error from outside the library, such as
/// an app's own adapter): a face's last resort, never a reason the core knows.
pub const UNKNOWN: Message = Message::fixed("The license could not be checked.", "Try again.");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stopped::{StopKind, Stopped};

    /// A sentence of the table's shape: a capital first, one period at its end, no second
    /// sentence inside, nothing a face would add.
    fn one_sentence(what: &str, s: &str) {
        assert!(s.ends_with('.'), "{what}: {s:?} does not end with a period");
        assert!(
            s.starts_with(|c: char| c.is_ascii_uppercase()),
            "{what}: {s:?} does not start with a capital"
        );
        let inner = &s[..s.len() - 1];
        assert!(
            !inner.contains(". ") && !inner.contains(": ") && !inner.contains("; "),
            "{what}: {s:?} is more than one sentence"
        );
        // Plain ASCII with no quote or backslash: faces write it into JSON and C unescaped.
        assert!(
            s.bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'),
            "{what}: {s:?} is not plain text"
        );
        for face in ["polar-license", "--", "`", "gate", "button", "click"] {
            assert!(!s.contains(face), "{what}: {s:?} speaks of a face ({face})");
        }
    }

    /// Words that open a description, never an instruction: a next step that starts with one
    /// says what happened a second time instead of what to do.
    const NOT_A_STEP: [&str; 12] = [
        "The", "This", "That", "It", "Its", "Your", "A", "An", "There", "You", "No", "Polar",
    ];

    /// One message of the table's shape: its sentence and its step each one sentence, the step
    /// an instruction (it opens with a verb, not with what happened), the two not the same,
    /// no word of a generic refund-or-subscription guess, and the joined line the two with
    /// one colon between.
    fn one_message(what: &str, m: &Message) {
        one_sentence(what, m.sentence());
        one_sentence(what, m.next_step());
        let first = m.next_step().split(' ').next().unwrap_or_default();
        assert!(
            !NOT_A_STEP.contains(&first),
            "{what}: {:?} is not an instruction",
            m.next_step()
        );
        assert_ne!(
            m.sentence().to_lowercase(),
            m.next_step().to_lowercase(),
            "{what}: the step repeats the sentence"
        );
        for guess in ["refund, ", "ended subscription", "or the seller)"] {
            assert!(!m.text().contains(guess), "{what}: a generic guess: {m}");
        }
        assert_eq!(m.text().matches(": ").count(), 1, "{what}: {m}");
    }

    /// The table test of issue #80's "one sentence and one next step for every stop reason,
    /// entitlement state and usage answer, from the core": every reason code (the contract's
    /// and this library's additions, `Reason::ALL`), every denial the reasons make (with and
    /// without the key valid here before, an activation gone), every way a key stops (with
    /// and without its dates), every entitlement state, every seat and usage answer, every
    /// error's own words, every portal and purchase failure: each is exactly one sentence
    /// plus one next step, an instruction, with no guess beside it.
    #[test]
    fn every_message_the_core_says_is_one_sentence_and_one_instruction() {
        use crate::grace::EntitlementState as S;
        use crate::seat::{SeatAnswer, SeatsFull};
        use crate::usage::UsageAnswer;
        let mut said: Vec<(String, Message)> = Vec::new();
        for r in Reason::ALL {
            said.push((r.code().into(), r.message()));
            for (previously_valid, activation_gone) in [(false, false), (true, false), (true, true)]
            {
                let d = crate::Denial {
                    reason: r,
                    detail: "Polar's detail.".into(),
                    status: 404,
                    remaining_usages: None,
                    previously_valid,
                    activation_gone,
                    stopped: None,
                };
                said.push((format!("{} denial", r.code()), d.message()));
                for kind in StopKind::ALL {
                    let stopped = crate::Denial {
                        stopped: Some(Stopped {
                            kind,
                            at: Some(1_800_000_000),
                            until: None,
                        }),
                        ..d.clone()
                    };
                    // Why it stopped in place of the reason's words, never beside them.
                    assert_eq!(stopped.hint(), None, "{} {}", r.code(), kind.code());
                    said.push((format!("{} {}", r.code(), kind.code()), stopped.message()));
                }
            }
        }
        for kind in StopKind::ALL {
            for (at, until) in [(None, None), (Some(1_800_000_000), Some(1_800_600_000))] {
                said.push((kind.code().into(), Stopped { kind, at, until }.message()));
            }
        }
        for state in [S::Absent, S::Unknown, S::Unsigned] {
            let m = state.message();
            assert!(m.is_some(), "{state:?} says nothing");
            said.extend(m.map(|m| (state.code().to_string(), m)));
        }
        // The "not known" state's step is the person's to take: no relay flag (the seller's,
        // and set already when a relay signs leases), no command line.
        if let Some(m) = S::Unknown.message() {
            assert!(!m.text().contains("sign-entitlements"), "{m}");
        }
        let seats = [
            SeatAnswer::Full(SeatsFull {
                in_use: 3,
                size: 3,
                frees_at: Some(9),
                retry_after: Some(12),
            }),
            SeatAnswer::Full(SeatsFull {
                in_use: 1,
                size: 1,
                frees_at: None,
                retry_after: None,
            }),
            SeatAnswer::Gone,
        ];
        for a in &seats {
            said.extend(a.message().map(|m| ("seat".to_string(), m)));
        }
        let usage = [
            UsageAnswer::CreditsExhausted { balance: 0.0 },
            UsageAnswer::Backlog { retry_after: None },
        ];
        for a in &usage {
            let m = a.message();
            assert!(m.is_some(), "{} says nothing", a.code());
            said.extend(m.map(|m| (a.code().to_string(), m)));
        }
        let errors = [
            crate::Error::invalid("key", "is required"),
            crate::Error::invalid("activation_id", "is required"),
            crate::Error::invalid("organization_id", "is not a UUID"),
            crate::Error::Offline {
                timeout: true,
                detail: "timed out".into(),
            },
            crate::Error::RateLimited {
                retry_after: Some(7),
            },
            crate::Error::RateLimited { retry_after: None },
            crate::Error::NotYetVerified,
        ];
        for e in &errors {
            said.push((e.reason().code().into(), e.message()));
        }
        for e in [
            crate::purchase::PurchaseError::CheckoutNotFound,
            crate::purchase::PurchaseError::CheckoutExpired,
            crate::purchase::PurchaseError::CheckoutFailed,
            crate::purchase::PurchaseError::NotPaid,
            crate::purchase::PurchaseError::StillIssuing,
            crate::purchase::PurchaseError::Portal(crate::portal::PortalError::SessionExpired),
            crate::purchase::PurchaseError::Portal(
                crate::portal::PortalError::CodeInvalidOrExpired,
            ),
        ] {
            said.push((format!("purchase {e:?}"), e.message()));
        }
        // A portal failure's step with a face's names for its ways (the command line's
        // commands, here placeholders with none of a face's characters): the core's words
        // around them, one sentence and one instruction too (issue #80: the command line
        // composed these itself).
        let named = crate::portal::Steps::PLACEHOLDERS;
        let no_relay = crate::portal::Steps {
            relay: None,
            ..named
        };
        for e in [
            crate::portal::PortalError::Invalid(crate::Error::invalid("email", "x")),
            crate::portal::PortalError::Invalid(crate::Error::invalid("code", "x")),
            crate::portal::PortalError::CodeInvalidOrExpired,
            crate::portal::PortalError::SessionExpired,
            crate::portal::PortalError::NotSignedIn,
            crate::portal::PortalError::CustomerSelectionRequired(vec![
                ("c1".into(), Some("Jane".into())),
                ("c2".into(), None),
            ]),
            crate::portal::PortalError::RateLimited(Some(900)),
            crate::portal::PortalError::RateLimited(None),
            crate::portal::PortalError::NotFound,
            crate::portal::PortalError::DeviceManagementOff,
            crate::portal::PortalError::Refused {
                status: 403,
                error: "NotPermitted".into(),
                detail: String::new(),
            },
        ] {
            for steps in [&named, &no_relay] {
                said.push((format!("portal {e:?} here"), e.message_with(steps)));
            }
        }
        for field in ["email", "code", "customer_id", "activation_id", "id"] {
            said.extend(named.typed(field).map(|m| (format!("typed {field}"), m)));
        }
        said.push(("already freed".into(), named.already_freed()));
        said.push(("code sent".into(), named.code_sent()));
        said.push(("signed in".into(), named.signed_in()));
        said.push(("followed".into(), named.followed_unremembered()));
        for (this_device, active_here) in [(true, true), (false, true), (false, false)] {
            said.push(("freed".into(), named.freed(this_device, active_here)));
        }
        // The steps said alone, beside a list (after the list's own line).
        for step in [
            named.free_one(),
            named.use_one(),
            named.free_a_seat(),
            named.type_code(),
        ] {
            said.push(("step".into(), Message::new("A list was shown.", step)));
        }
        for state in [
            crate::release::TrialState::Active,
            crate::release::TrialState::Ended,
            crate::release::TrialState::Refused,
        ] {
            let trial = crate::release::Trial {
                local: true,
                state,
                started_at: None,
                ends_at: None,
                days_left: 0,
            };
            assert_eq!(
                trial.message().is_some(),
                state == crate::release::TrialState::Ended
            );
            said.extend(trial.message().map(|m| ("trial ended".to_string(), m)));
        }
        said.push(("sign-in".into(), purchase_sign_in(Some("a@b.example"))));
        said.push(("sign-in".into(), purchase_sign_in(None)));
        // The answers with no failure in them (issue #80: the gate kept its own English).
        one_sentence("licensed", LICENSED);
        for grace in [0, 59, 3 * 86_400 + 7200] {
            said.push((format!("licensed offline {grace}"), licensed_offline(grace)));
        }
        said.push(("licensed offline".into(), LICENSED_OFFLINE_UNDATED));
        assert_eq!(
            licensed_offline(3 * 86_400 + 7200).text(),
            "Polar could not be reached, so this device stays licensed for 3 days 2 hours more: connect to the internet before then to keep it licensed."
        );
        said.push(("deactivated".into(), DEACTIVATED));
        said.push(("no devices".into(), NO_DEVICES));
        said.push(("no keys".into(), NO_KEYS));
        said.push(("unknown".into(), UNKNOWN));
        assert!(said.len() > 200, "{} messages", said.len());
        for (what, m) in &said {
            one_message(what, m);
        }
    }

    /// A licensed answer's words (the one rule every face reads, `licensed`): offline words
    /// only from the cache after Polar could not be reached, with the grace it has left.
    #[test]
    fn a_licensed_answer_says_offline_only_when_it_fell_back_to_the_cache() {
        use crate::grace::Source;
        use core::time::Duration;
        let left = Some(Duration::from_secs(3 * 86_400 + 7200));
        assert_eq!(licensed(None, false), LICENSED);
        // From the cache while its answer was fresh (Polar not asked): nothing went wrong.
        assert_eq!(licensed(left, false), LICENSED);
        assert_eq!(
            licensed(left, true),
            licensed_offline(3 * 86_400 + 7200).text()
        );
        assert_eq!(licensed(None, true), LICENSED);
        let down = || crate::Error::Offline {
            timeout: false,
            detail: "down".into(),
        };
        let report = |outcome| crate::CheckReport::<()> {
            fallback: Some(down()),
            ..crate::CheckReport::of(outcome)
        };
        let cached = report(crate::CheckOutcome::Licensed {
            source: Source::Cache,
            license: Box::new(()),
            grace_remaining: left,
            verified_at: 0,
        });
        assert_eq!(
            cached.licensed_message(),
            Some(licensed_offline(3 * 86_400 + 7200).text())
        );
        let denied = report(crate::CheckOutcome::Unverified(down()));
        assert_eq!(denied.licensed_message(), None);
        // The report's one message: a failure's words when it does not license, else the
        // licensed words, chosen once here for every face.
        assert_eq!(denied.user_message(), down().user_message());
        assert_eq!(
            cached.user_message(),
            licensed_offline(3 * 86_400 + 7200).text()
        );
        // An online answer never says offline, whatever else the report holds.
        let online = report(crate::CheckOutcome::Licensed {
            source: Source::Online,
            license: Box::new(()),
            grace_remaining: left,
            verified_at: 0,
        });
        assert_eq!(online.licensed_message().as_deref(), Some(LICENSED));
        assert_eq!(online.user_message(), LICENSED);
    }

    /// Where the customer portal is the next step's place, the core says (the gate kept its
    /// own set): the reasons whose step names the portal, every stop but a removed seat; and
    /// which stopped keys may license again.
    #[test]
    fn the_portal_is_offered_where_the_step_needs_it() {
        let offered: Vec<&str> = Reason::ALL
            .into_iter()
            .filter(|r| r.offers_portal())
            .map(Reason::code)
            .collect();
        assert_eq!(
            offered,
            ["inactive", "expired", "usage_exhausted", "activation_limit"]
        );
        for r in Reason::ALL {
            if r.next_step().contains("customer portal") {
                assert!(r.offers_portal(), "{r}: its step names the portal");
            }
        }
        let back: Vec<&str> = StopKind::ALL
            .into_iter()
            .filter(|k| k.comes_back())
            .map(StopKind::code)
            .collect();
        assert_eq!(back, ["paused", "canceled", "seat_revoked", "past_due"]);
        let denial = |reason, stopped: Option<StopKind>| crate::Denial {
            reason,
            detail: String::new(),
            status: 404,
            remaining_usages: None,
            previously_valid: true,
            activation_gone: false,
            stopped: stopped.map(|kind| Stopped {
                kind,
                at: None,
                until: None,
            }),
        };
        assert!(denial(Reason::NotFound, Some(StopKind::Rotated)).offers_portal());
        assert!(!denial(Reason::Inactive, Some(StopKind::SeatRevoked)).offers_portal());
        assert!(denial(Reason::Inactive, None).offers_portal());
        // Every denial whose step sends the person to the portal offers it, and no other.
        for reason in Reason::ALL {
            for stopped in std::iter::once(None).chain(StopKind::ALL.map(Some)) {
                for (previously_valid, activation_gone) in
                    [(false, false), (true, false), (true, true)]
                {
                    let d = crate::Denial {
                        previously_valid,
                        activation_gone,
                        ..denial(reason, stopped)
                    };
                    let step = d.message().next_step().to_string();
                    if step.contains("customer portal") {
                        assert!(d.offers_portal(), "{d:?}: {step}");
                    }
                    if !d.offers_portal() {
                        assert!(!step.contains("customer portal"), "{d:?}: {step}");
                    }
                }
            }
        }
    }

    /// Every reason has exactly one sentence and one next step, its own (no two reasons say the
    /// same thing, no reason says a refund-or-subscription guess), each one sentence ending with
    /// a period; the joined text is the sentence, a colon and the step.
    #[test]
    fn every_reason_has_one_sentence_and_one_next_step() {
        let mut sentences = Vec::new();
        for r in Reason::ALL {
            let m = r.message();
            assert_eq!(m.sentence(), r.user_message());
            assert_eq!(m.next_step(), r.next_step());
            one_sentence(r.code(), r.user_message());
            one_sentence(r.code(), r.next_step());
            assert_ne!(r.user_message(), r.next_step(), "{r}");
            for guess in ["refund", "subscription", "or the seller)"] {
                assert!(!r.user_message().contains(guess), "{r}: a generic guess");
            }
            let text = m.text();
            assert!(text.starts_with(r.user_message().trim_end_matches('.')));
            assert_eq!(text.matches(": ").count(), 1, "{r}: {text}");
            sentences.push(r.user_message());
        }
        sentences.sort_unstable();
        sentences.dedup();
        assert_eq!(
            sentences.len(),
            Reason::ALL.len(),
            "two reasons say the same"
        );
        assert_eq!(
            Reason::SeatsFull.message().text(),
            "Every seat of this license is in use: try again when one is free."
        );
    }

    /// docs/answers.md's table of each reason's words is the core's (rewritten with
    /// `POLAR_LICENSE_WRITE_DOCS=1`).
    #[test]
    fn the_documented_words_are_the_cores() -> std::io::Result<()> {
        const START: &str = "<!-- reason-words: generated from src/message.rs -->\n";
        const END: &str = "<!-- /reason-words -->";
        let mut table =
            String::from("| code | number | sentence | next step |\n|---|---|---|---|\n");
        for r in Reason::ALL {
            table.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                r.code(),
                r.number(),
                r.user_message(),
                r.next_step()
            ));
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/answers.md");
        let doc = std::fs::read_to_string(path)?;
        let (Some(a), Some(b)) = (doc.find(START), doc.find(END)) else {
            return Err(std::io::Error::other(
                "docs/answers.md has no reason-words markers",
            ));
        };
        let written = &doc[a + START.len()..b];
        if std::env::var_os("POLAR_LICENSE_WRITE_DOCS").is_some() && written != table {
            let fresh = [&doc[..a + START.len()], &table, &doc[b..]].concat();
            std::fs::write(path, fresh)?;
            return Ok(());
        }
        assert_eq!(
            written, table,
            "docs/answers.md's reason words differ from the core's: run with \
             POLAR_LICENSE_WRITE_DOCS=1"
        );
        Ok(())
    }

    /// Every way a key stops and every entitlement state is one sentence and one next step.
    #[test]
    fn every_stop_and_entitlement_state_has_one_sentence_and_one_next_step() {
        for kind in StopKind::ALL {
            for (at, until) in [(None, None), (Some(1_800_000_000), Some(1_800_000_000))] {
                let m = Stopped { kind, at, until }.message();
                one_sentence(kind.code(), m.sentence());
                one_sentence(kind.code(), m.next_step());
            }
        }
        use crate::grace::EntitlementState as S;
        for state in [
            S::Granted,
            S::Absent,
            S::Unknown,
            S::Unsigned,
            S::NotLicensed,
        ] {
            match state.message() {
                Some(m) => {
                    one_sentence(state.code(), m.sentence());
                    one_sentence(state.code(), m.next_step());
                }
                None => assert!(
                    matches!(state, S::Granted | S::NotLicensed),
                    "{state:?} says nothing"
                ),
            }
        }
    }

    /// A paused key that was valid here before says why it stopped and what to do, once: no
    /// revoked-or-refunded guess beside it (issue #80: four overlapping sentences).
    #[test]
    fn a_paused_key_says_one_sentence_and_one_step_not_a_guess() {
        let paused = crate::Denial {
            reason: Reason::Inactive,
            detail: "License key is no longer active.".into(),
            status: 404,
            remaining_usages: None,
            previously_valid: true,
            activation_gone: false,
            stopped: Some(Stopped {
                kind: StopKind::Paused,
                at: None,
                until: Some(1_800_000_000),
            }),
        };
        assert_eq!(paused.hint(), None);
        let m = paused.message();
        assert_eq!(
            m.sentence(),
            "Your subscription is paused until 2027-01-15."
        );
        assert_eq!(m.next_step(), "Try again once it resumes.");
        assert_eq!(
            paused.user_message(),
            "Your subscription is paused until 2027-01-15: try again once it resumes."
        );
        // Without the relay's word, the hint is one sentence and the step the reason's.
        let guessed = crate::Denial {
            stopped: None,
            ..paused
        };
        let m = guessed.message();
        assert_eq!(guessed.hint(), Some(m.sentence()));
        assert_eq!(m.next_step(), Reason::Inactive.next_step());
        assert!(!m.text().contains("refund"), "{m}");
    }

    /// A seat answer's and a usage answer's words: `seats_full` with its count and wait, the
    /// seat gone, the credits, the backlog; a denial says its reason's.
    #[test]
    fn every_seat_and_usage_answer_message_is_the_cores() {
        use crate::seat::{SeatAnswer, SeatsFull};
        use crate::usage::UsageAnswer;
        let full = SeatAnswer::Full(SeatsFull {
            in_use: 2,
            size: 2,
            frees_at: Some(5),
            retry_after: Some(42),
        });
        let m = full.message().unwrap_or_else(|| Message::fixed("", ""));
        assert_eq!(
            m.text(),
            "Every seat of this license is in use (2 of 2): try again in 42 seconds."
        );
        let waitless = SeatAnswer::Full(SeatsFull {
            in_use: 1,
            size: 1,
            frees_at: None,
            retry_after: None,
        });
        assert_eq!(
            waitless.user_message().as_deref(),
            Some("Every seat of this license is in use (1 of 1): try again when one is free.")
        );
        assert!(SeatAnswer::Released(true).message().is_none());
        for answer in [full, waitless, SeatAnswer::Gone] {
            let m = answer.message().unwrap_or_else(|| Message::fixed("", ""));
            one_sentence("seat", m.sentence());
            one_sentence("seat", m.next_step());
        }
        let usage = [
            UsageAnswer::CreditsExhausted { balance: 0.0 },
            UsageAnswer::Backlog {
                retry_after: Some(3),
            },
        ];
        for answer in usage {
            let m = answer.message().unwrap_or_else(|| Message::fixed("", ""));
            one_sentence("usage", m.sentence());
            one_sentence("usage", m.next_step());
        }
        assert_eq!(
            UsageAnswer::CreditsExhausted { balance: -1.0 }.message(),
            Some(Reason::CreditsExhausted.message())
        );
    }

    /// Every portal failure is one sentence and one next step of the core's (issue #80: the
    /// Rust portal error had none); a failure with no portal answer says its error's words.
    #[test]
    fn every_portal_error_has_one_sentence_and_one_next_step() {
        use crate::portal::PortalError as P;
        let all = [
            P::CodeInvalidOrExpired,
            P::SessionExpired,
            P::NotSignedIn,
            P::CustomerSelectionRequired(vec![("a".into(), None)]),
            P::RateLimited(Some(900)),
            P::RateLimited(None),
            P::NotFound,
            P::DeviceManagementOff,
            P::Refused {
                status: 403,
                error: "NotPermitted".into(),
                detail: "polar_cst_secret".into(),
            },
        ];
        for e in &all {
            let m = e.message();
            one_sentence(e.code(), m.sentence());
            one_sentence(e.code(), m.next_step());
            assert_eq!(e.user_message(), m.text());
            assert!(!e.user_message().contains("polar_cst"), "{e:?}");
        }
        assert_eq!(
            P::RateLimited(Some(900)).user_message(),
            "Too many sign-in tries: wait 900 seconds, then try again."
        );
        let offline = crate::Error::Offline {
            timeout: false,
            detail: "connection refused".into(),
        };
        assert_eq!(
            P::Offline(offline.clone()).message(),
            offline.message(),
            "no portal answer: the error's own words"
        );
    }
}
