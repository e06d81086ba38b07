//! Why a portal step failed ([`PortalError`]): the failure typed for the app, its name for
//! scripts, its reason code, and what to tell the person (one sentence and one next step, beside
//! the type it describes, as [`crate::message`] says the reasons').

use crate::error::Error;
use crate::message::Message;

/// Why a portal step failed, typed for the app to say what to do next.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PortalError {
    /// The request was refused before sending (a bad email, code or id): nothing was sent.
    Invalid(Error),
    /// The code is wrong, already used, or older than 30 minutes: ask for a new one.
    CodeInvalidOrExpired,
    /// The session's hour is over (or Polar no longer knows it): sign in again.
    SessionExpired,
    /// No session was sent (or not a customer's).
    NotSignedIn,
    /// Several customers of the organization have this email: ask again naming one of these
    /// (`id`, `name`).
    CustomerSelectionRequired(Vec<(String, Option<String>)>),
    /// Too many tries: wait this many seconds (the sign-in routes block an address 900 s).
    RateLimited(Option<u64>),
    /// No such key for this customer.
    NotFound,
    /// The portal lists no device although this machine holds a live activation of the key:
    /// the seller has not turned on device management ("customers can manage activations",
    /// `enable_customer_admin`) on the product's license-key benefit. Freeing a seat by its id
    /// still works (the public deactivate needs no session).
    DeviceManagementOff,
    /// Polar refused the request with its error envelope (`status`, `error`, `detail`).
    Refused {
        /// The HTTP status.
        status: u16,
        /// Polar's `error` (its exception's name).
        error: String,
        /// Polar's `detail` (a 422's first entry's message).
        detail: String,
    },
    /// An answer that is not Polar's (a proxy's page, a body that does not parse).
    Protocol(Error),
    /// No answer: the network, a timeout, or a transport that sends no portal requests.
    Offline(Error),
}

impl std::fmt::Display for PortalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortalError::Invalid(e) | PortalError::Protocol(e) | PortalError::Offline(e) => {
                write!(f, "{e}")
            }
            PortalError::CodeInvalidOrExpired => {
                f.write_str("the code is wrong, used or expired: ask for a new one")
            }
            PortalError::SessionExpired => f.write_str("the session expired: sign in again"),
            PortalError::NotSignedIn => f.write_str("not signed in"),
            PortalError::CustomerSelectionRequired(c) => {
                write!(f, "{} customers have this email: choose one", c.len())
            }
            PortalError::RateLimited(Some(s)) => write!(f, "too many tries: wait {s} s"),
            PortalError::RateLimited(None) => f.write_str("too many tries: wait"),
            PortalError::NotFound => f.write_str("no such key for this customer"),
            PortalError::DeviceManagementOff => f.write_str(
                "device management is off for this product: the seller must enable \
                 \"customers can manage activations\" (enable_customer_admin) on its \
                 license-key benefit",
            ),
            PortalError::Refused {
                status,
                error,
                detail,
            } => write!(f, "{status} {error}: {detail}"),
        }
    }
}

impl std::error::Error for PortalError {}

impl PortalError {
    /// A failure with no portal answer (a step of a portal flow that is no portal request: the
    /// cache read, a validate), typed as the portal's: bad input, no answer, or the rest, whose
    /// own reason code says which (`cache_error`, `protocol_error`, …).
    pub fn of_error(e: Error) -> PortalError {
        match e.reason() {
            crate::reason::Reason::InvalidInput => PortalError::Invalid(e),
            crate::reason::Reason::Offline => PortalError::Offline(e),
            _ => PortalError::Protocol(e),
        }
    }

    /// The failure's name for scripts and other languages, as contract §2 names it for the
    /// CLI's `portal_error` (`code_invalid_or_expired`, `session_expired`, `not_signed_in`,
    /// `device_management_off`, `key_not_found`, `rate_limited`,
    /// `customer_selection_required`, `refused`), and the reason codes of the failures that
    /// are no portal answer (`invalid_input`, `offline`, or the error's own reason).
    pub fn code(&self) -> &'static str {
        match self {
            PortalError::Invalid(e) | PortalError::Protocol(e) | PortalError::Offline(e) => {
                e.reason().code()
            }
            PortalError::CodeInvalidOrExpired => "code_invalid_or_expired",
            PortalError::SessionExpired => "session_expired",
            PortalError::NotSignedIn => "not_signed_in",
            PortalError::CustomerSelectionRequired(_) => "customer_selection_required",
            PortalError::RateLimited(_) => "rate_limited",
            PortalError::NotFound => "key_not_found",
            PortalError::DeviceManagementOff => "device_management_off",
            PortalError::Refused { .. } => "refused",
        }
    }

    /// The reason code (docs/interfaces.md §1) of the failure, as contract §2 gives it with
    /// the CLI's `portal_error`: `rate_limited`, `not_found` (`key_not_found`),
    /// `invalid_input` (`not_signed_in`, `customer_selection_required`, bad input), the
    /// error's own reason for no portal answer; `None` for the portal's own refusals (a wrong
    /// code, an expired session, device management off, another refusal).
    pub fn reason(&self) -> Option<crate::reason::Reason> {
        use crate::reason::Reason;
        match self {
            PortalError::Invalid(e) | PortalError::Protocol(e) | PortalError::Offline(e) => {
                Some(e.reason())
            }
            PortalError::NotSignedIn | PortalError::CustomerSelectionRequired(_) => {
                Some(Reason::InvalidInput)
            }
            PortalError::RateLimited(_) => Some(Reason::RateLimited),
            PortalError::NotFound => Some(Reason::NotFound),
            PortalError::CodeInvalidOrExpired
            | PortalError::SessionExpired
            | PortalError::DeviceManagementOff
            | PortalError::Refused { .. } => None,
        }
    }
}

impl PortalError {
    /// The portal step's failure as one sentence and one next step (issue #80: the Rust portal
    /// error said only its `Display`, written for logs): a failure with no portal answer says
    /// its error's words ([`crate::Error::message`]), the portal's own refusals say theirs here.
    /// No session, code or whole key is in them.
    pub fn message(&self) -> Message {
        use PortalError as P;
        match self {
            // The sign-in's fields are typed by the person (every face's sign-in), never set by
            // the app: what to type, not the app's settings (the error's own words).
            P::Invalid(Error::InvalidInput { field, .. }) if field == "email" => Message::fixed(
                "That is not an email address.",
                "Type the email the license was bought with.",
            ),
            P::Invalid(Error::InvalidInput { field, .. }) if field == "code" => Message::fixed(
                "The sign-in code is the 6 letters and digits of the email.",
                "Type the code again as the email shows it.",
            ),
            P::Invalid(e) | P::Protocol(e) | P::Offline(e) => e.message(),
            P::CodeInvalidOrExpired => Message::fixed(
                "The sign-in code is wrong, used or more than 30 minutes old.",
                "Ask for a new code and type it within 30 minutes.",
            ),
            P::SessionExpired => {
                Message::fixed("The sign-in has expired.", "Sign in again with your email.")
            }
            P::NotSignedIn => Message::fixed(
                "You are not signed in to the customer portal.",
                "Sign in with the email the license was bought with.",
            ),
            P::CustomerSelectionRequired(_) => Message::fixed(
                "Several accounts of this seller use this email.",
                "Choose one of them and ask for a code again.",
            ),
            P::RateLimited(Some(s)) => Message::new(
                "Too many sign-in tries.",
                format!("Wait {s} seconds, then try again."),
            ),
            P::RateLimited(None) => Message::fixed(
                "Too many sign-in tries.",
                "Wait 15 minutes, then try again.",
            ),
            P::NotFound => Message::fixed(
                "This license key is not one of the signed-in account's keys.",
                "Sign in with the email the key was bought with.",
            ),
            P::DeviceManagementOff => Message::fixed(
                "The seller has not let customers see their devices for this product.",
                "Free the device from the app on it, or ask the seller to free it.",
            ),
            P::Refused { .. } => Message::fixed(
                "The customer portal refused the request.",
                "Try again later, and tell the seller if it goes on.",
            ),
        }
    }

    /// [`PortalError::message`] as one line: what a face shows.
    pub fn user_message(&self) -> String {
        self.message().text()
    }
}
