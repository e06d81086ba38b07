//! A portal failure's next step said with a face's own way of taking it (issue #80: "no
//! host or face holds ... a user message"): a face that can name the step (the command line's
//! `polar-license sign-in --email EMAIL`) hands the core those names ([`Steps`]) and the core
//! words the sentence around them ([`PortalError::message_with`], [`Steps::free_a_seat`]),
//! so the face only prints. The plain words ([`PortalError::message`]) name no command and
//! are what a face with no such names shows.

use super::PortalError;
use crate::message::Message;

/// How a face names the ways to take a portal step: each a command or a flag as the person
/// types it there (the command line's `polar-license sign-in --email EMAIL`, `--key KEY`).
/// The core puts them in its sentences as they are, in parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps<'a> {
    /// Asks for a sign-in code (`polar-license sign-in --email EMAIL`).
    pub sign_in: &'a str,
    /// Types the emailed code (`polar-license sign-in --code CODE`).
    pub code: &'a str,
    /// Names the account when asking for a code again (`--customer-id ID`).
    pub customer: &'a str,
    /// Names another key (`--key KEY`).
    pub key: &'a str,
    /// Lists the key's devices (`polar-license devices`).
    pub devices: &'a str,
    /// Frees a device by its id (`polar-license free ID`).
    pub free: &'a str,
    /// Activates the key on this device (`polar-license activate`).
    pub activate: &'a str,
    /// Lists the signed-in customer's keys (`polar-license recover`).
    pub keys: &'a str,
    /// Activates one of those keys here by its id (`polar-license recover ID`).
    pub use_key: &'a str,
    /// Lists the key's devices through the seller's relay, with no sign-in (`--relay URL`):
    /// `Some` where the step being failed could take that way instead.
    pub relay: Option<&'a str>,
}

impl PortalError {
    /// [`PortalError::message`] with its next step naming the face's way of taking it
    /// (`steps`): the same sentence, a step that says where to type what. A failure whose step
    /// needs no command (a wait, a failure with no portal answer) says its plain words.
    pub fn message_with(&self, steps: &Steps<'_>) -> Message {
        use PortalError as P;
        let plain = self.message();
        let step = match self {
            P::CodeInvalidOrExpired => format!(
                "Ask for a new code ({}) and type it within 30 minutes, since each code works once.",
                steps.sign_in
            ),
            P::SessionExpired => format!("Sign in again ({}).", steps.sign_in),
            P::NotSignedIn => match steps.relay {
                Some(relay) => format!(
                    "Sign in ({}), or list the devices through the seller's relay ({relay}).",
                    steps.sign_in
                ),
                None => format!(
                    "Sign in with the email the license was bought with ({}).",
                    steps.sign_in
                ),
            },
            P::CustomerSelectionRequired(customers) => {
                let named = customers
                    .iter()
                    .map(|(id, name)| match name {
                        Some(n) => format!("{id} ({n})"),
                        None => id.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "Ask for a code again naming one of them ({} {}), the id one of {named}.",
                    steps.sign_in, steps.customer
                )
            }
            P::NotFound => format!(
                "Sign in with the email the key was bought with ({}), or check the key ({}).",
                steps.sign_in, steps.key
            ),
            P::DeviceManagementOff => format!(
                "Free the device by its id ({}) or from the app on it, or ask the seller to \
                 free it.",
                steps.free
            ),
            P::Invalid(_)
            | P::Protocol(_)
            | P::Offline(_)
            | P::RateLimited(_)
            | P::Refused { .. } => return plain,
        };
        Message::new(plain.sentence().to_string(), step)
    }
}

impl Steps<'_> {
    /// Names with none of the characters the core's table test refuses (a face's own: `--`,
    /// backquotes, the command's name), so the sentences around them are checked as the core
    /// words them.
    #[cfg(test)]
    pub(crate) const PLACEHOLDERS: Steps<'static> = Steps {
        sign_in: "SIGN-IN EMAIL",
        code: "CODE",
        customer: "CUSTOMER ID",
        key: "KEY",
        devices: "DEVICES",
        free: "FREE ID",
        activate: "ACTIVATE",
        keys: "KEYS",
        use_key: "USE ID",
        relay: Some("RELAY URL"),
    };

    /// What to say of a refused input the person typed at one of this face's portal steps,
    /// by its field (the error's `field`): the sign-in's email and code in the core's plain
    /// words ([`PortalError::message`]), an account or a device id named by where this face
    /// lists them. `None` for a field no person types here (the app's own settings: the
    /// error's plain words say them).
    pub fn typed(&self, field: &str) -> Option<Message> {
        match field {
            "email" | "code" => {
                Some(PortalError::Invalid(crate::Error::invalid(field, "")).message())
            }
            "customer_id" => Some(Message::new(
                "That account is not one the sign-in listed.",
                format!(
                    "Ask for a code again naming one of the accounts it listed ({} {}).",
                    self.sign_in, self.customer
                ),
            )),
            "id" => Some(Message::new(
                "That key id is not one of your keys.",
                format!("Copy an id from the list of your keys ({}).", self.keys),
            )),
            "activation_id" => Some(Message::new(
                "That device id is not one of the key's devices.",
                format!("Copy the id from the list of devices ({}).", self.devices),
            )),
            _ => None,
        }
    }

    /// The sign-in code is on its way (or nothing is, when the email bought nothing: Polar
    /// does not say which).
    pub fn code_sent(&self) -> Message {
        Message::new(
            "If this email bought a license, Polar has sent it a 6-character code that works \
             once, for 30 minutes.",
            self.type_code(),
        )
    }

    /// The step once the code is on its way: type it where this face takes it.
    pub fn type_code(&self) -> String {
        format!("Type the code from the email ({}).", self.code)
    }

    /// Signed in: the customer session is kept, sealed, for its hour.
    pub fn signed_in(&self) -> Message {
        Message::new(
            "You are signed in to the customer portal for one hour.",
            format!("List the key's devices ({}).", self.devices),
        )
    }

    /// Beside a list of the key's devices: how to free one and take its seat here.
    pub fn free_one(&self) -> String {
        format!(
            "Free one you no longer use ({}), then activate here ({}).",
            self.free, self.activate
        )
    }

    /// A device freed by its id: `this_device` when it was this one's activation (no longer
    /// licensed here), else whether this device holds an activation of the key
    /// (`active_here`: the freed seat is for another device).
    pub fn freed(&self, this_device: bool, active_here: bool) -> Message {
        if this_device {
            return Message::fixed(
                "That was this device's activation, so the license is no longer active here.",
                "Activate it again to use it here.",
            );
        }
        if active_here {
            Message::new(
                "A seat of the license is free.",
                format!("Activate the other device there ({}).", self.activate),
            )
        } else {
            Message::new(
                "A seat of the license is free.",
                format!("Activate here ({}).", self.activate),
            )
        }
    }

    /// A rotated key followed to its new string that is not remembered here (the old one was
    /// not): where to find the new one.
    pub fn followed_unremembered(&self) -> Message {
        Message::new(
            "The new key is not remembered here.",
            format!(
                "Remember it by activating it from the list of your keys ({}).",
                self.keys
            ),
        )
    }

    /// Beside a list of the signed-in customer's keys: how to activate one here.
    pub fn use_one(&self) -> String {
        format!("Activate one here by its id ({}).", self.use_key)
    }

    /// A device freed by its id that is no live activation of the key (Polar's `404` to the
    /// deactivate): freed already, or another key's.
    pub fn already_freed(&self) -> Message {
        Message::new(
            "That device is already freed, or it is not one of this key's.",
            format!("List the key's devices ({}).", self.devices),
        )
    }

    /// At the activation limit, the way to free a seat from this face (its sign-in, its list
    /// of devices, its free): the next step beside [`crate::Reason::ActivationLimit`]'s own,
    /// one sentence.
    pub fn free_a_seat(&self) -> String {
        format!(
            "Sign in ({}), list the devices ({}) and free one ({}), then activate here again.",
            self.sign_in, self.devices, self.free
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMED: Steps<'static> = Steps::PLACEHOLDERS;

    /// Every portal failure's step with a face's names: the plain sentence kept, the step
    /// naming each way it takes, in the core's words.
    #[test]
    fn a_step_with_the_faces_names_keeps_the_sentence_and_names_the_way() {
        let no_relay = Steps {
            relay: None,
            ..NAMED
        };
        let cases: [(PortalError, &Steps<'_>, &[&str]); 7] = [
            (
                PortalError::CodeInvalidOrExpired,
                &NAMED,
                &["SIGN-IN EMAIL"],
            ),
            (PortalError::SessionExpired, &NAMED, &["SIGN-IN EMAIL"]),
            (
                PortalError::NotSignedIn,
                &NAMED,
                &["SIGN-IN EMAIL", "RELAY URL"],
            ),
            (PortalError::NotSignedIn, &no_relay, &["SIGN-IN EMAIL"]),
            (
                PortalError::CustomerSelectionRequired(vec![
                    ("c1".into(), Some("Jane".into())),
                    ("c2".into(), None),
                ]),
                &NAMED,
                &["SIGN-IN EMAIL CUSTOMER ID", "c1 (Jane), c2"],
            ),
            (PortalError::NotFound, &NAMED, &["SIGN-IN EMAIL", "(KEY)"]),
            (PortalError::DeviceManagementOff, &NAMED, &["(FREE ID)"]),
        ];
        for (e, steps, names) in &cases {
            let m = e.message_with(steps);
            assert_eq!(m.sentence(), e.message().sentence(), "{e:?}");
            for name in *names {
                assert!(m.next_step().contains(name), "{e:?}: {}", m.next_step());
            }
        }
        assert!(!PortalError::NotSignedIn
            .message_with(&no_relay)
            .next_step()
            .contains("relay"));
        let wait = PortalError::RateLimited(Some(60));
        assert_eq!(wait.message_with(&NAMED), wait.message());
        assert!(NAMED.free_a_seat().contains("(DEVICES)"));
        assert!(NAMED.already_freed().next_step().contains("(DEVICES)"));
        for field in ["email", "code", "customer_id", "activation_id", "id"] {
            assert!(NAMED.typed(field).is_some(), "{field}");
        }
        assert_eq!(NAMED.typed("organization_id"), None);
        assert_eq!(
            NAMED.typed("email").map(|m| m.text()),
            Some(
                PortalError::Invalid(crate::Error::invalid("email", "x"))
                    .message()
                    .text()
            )
        );
    }
}
