//! Buying in the app (issue #80), sans-IO: follow a Polar checkout by its client secret to
//! confirmation, take the customer-session token it handed back, list the customer's keys, pick
//! the one just bought and make sure Polar answers for it; the face then activates it, so no key
//! is ever typed (docs/polar-api.md §20).
//!
//! Polar hands a customer-session token only to the confirmation of a checkout (its answer, and
//! the hosted page's redirect to the success URL, `customer_session_token=`), and none when the
//! buyer's email matched an existing customer (an anti-takeover rule, PR #9972). Without one the
//! purchase ends with [`Bought::SignIn`]: the face asks Polar to email a code to the checkout's
//! address (the portal's existing path, [`crate::portal::Portal::request_code`]) and, signed in,
//! runs [`Purchase::signed_in`] for the rest.
//!
//! Polar grants an order's benefits in a background job, so for a while after paying the new key
//! is not among the customer's keys and its string answers `404` (Polar issues #7125, #7454).
//! Within [`ISSUING_WINDOW`] after the confirmation was seen that is "still issuing": the machine
//! waits and asks again (its waits are steps, [`crate::flow::Want::Wait`]), never "wrong key";
//! past it, [`PurchaseError::StillIssuing`], whose next step is to try again.

use core::time::Duration;

use crate::error::Error;
use crate::key::Key;
use crate::message::Message;
use crate::model::{LicenseKeyRead, LicenseKeyStatus};
use crate::portal::{Method, Portal, PortalError, PortalRequest, SessionToken, MAX_PORTAL_PAGES};
use crate::proto::{retry_after, Api, HttpResponse};
use time::OffsetDateTime;

/// How often an open checkout is read again while the buyer pays.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// How long an open checkout is followed before the purchase stops ([`PurchaseError::NotPaid`]):
/// the buyer may come back to it later (a checkout lives 24 hours).
pub const FOLLOW_LIMIT: Duration = Duration::from_secs(30 * 60);

/// How long after the confirmation a missing key is Polar "still issuing" it (a `404`, or not yet
/// among the customer's keys) and is asked for again (Polar issues #7125: 30 s to 2 minutes).
pub const ISSUING_WINDOW: Duration = Duration::from_secs(120);

/// How often a key still being issued is asked for again.
pub const ISSUING_EVERY: Duration = Duration::from_secs(2);

/// A checkout's status (`CheckoutStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutStatus {
    /// The buyer has not paid yet.
    Open,
    /// The buyer clicked pay; the payment is being taken.
    Confirmed,
    /// Paid: the order is made and its benefits are being granted.
    Succeeded,
    /// Over without a payment (24 hours after it was made).
    Expired,
    /// It failed for good.
    Failed,
}

impl CheckoutStatus {
    fn parse(text: &str) -> Option<CheckoutStatus> {
        Some(match text {
            "open" => CheckoutStatus::Open,
            "confirmed" => CheckoutStatus::Confirmed,
            "succeeded" => CheckoutStatus::Succeeded,
            "expired" => CheckoutStatus::Expired,
            "failed" => CheckoutStatus::Failed,
            _ => return None,
        })
    }
}

/// What a purchase knows of its checkout once paid: enough to find the key it bought.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The checkout's id.
    pub checkout_id: String,
    /// The buyer's email, as the checkout has it (where the sign-in code goes).
    pub email: Option<String>,
    /// When the checkout was made: the key bought is no older.
    pub created_at: Option<OffsetDateTime>,
    /// The license-key benefits of the product bought (empty: not told).
    pub benefit_ids: Vec<String>,
}

impl Receipt {
    /// A receipt handed back by a face that carried it as plain values (`created_at` in unix
    /// seconds): what [`Purchase::signed_in`] takes after the emailed code.
    pub fn from_parts(
        checkout_id: &str,
        email: Option<String>,
        created_at_unix: Option<i64>,
        benefit_ids: Vec<String>,
    ) -> Receipt {
        Receipt {
            checkout_id: checkout_id.to_string(),
            email,
            created_at: created_at_unix.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()),
            benefit_ids,
        }
    }

    /// When the checkout was made, in unix seconds.
    pub fn created_at_unix(&self) -> Option<i64> {
        self.created_at.map(OffsetDateTime::unix_timestamp)
    }
}

/// How a purchase ended well.
#[derive(Debug, Clone, PartialEq)]
pub enum Bought {
    /// The key just bought, whole, and Polar answers for it: activate it (never show it whole).
    Key(Box<LicenseKeyRead>),
    /// Paid, but Polar handed back no customer session (the buyer's email matched an existing
    /// customer): sign in with the code Polar emails to [`Receipt::email`], then
    /// [`Purchase::signed_in`].
    SignIn(Receipt),
}

/// Why a purchase did not end with a key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PurchaseError {
    /// No checkout has this client secret (`404`).
    CheckoutNotFound,
    /// The checkout expired before it was paid (`410`, or `expired`).
    CheckoutExpired,
    /// The checkout failed for good.
    CheckoutFailed,
    /// Still not paid after [`FOLLOW_LIMIT`]: the buyer may finish paying and buy again later.
    NotPaid,
    /// Paid, but Polar was still issuing the key [`ISSUING_WINDOW`] after the confirmation:
    /// try again in a minute (the key is not wrong; it is not there yet).
    StillIssuing,
    /// A step of the customer portal, or the network, failed (its own code says which).
    Portal(PortalError),
}

impl PurchaseError {
    /// The failure's name for scripts and other languages (docs/interfaces.md §2a): `
    /// checkout_not_found`, `checkout_expired`, `checkout_failed`, `not_paid`, `key_issuing`,
    /// or the portal failure's own code.
    pub fn code(&self) -> &'static str {
        match self {
            PurchaseError::CheckoutNotFound => "checkout_not_found",
            PurchaseError::CheckoutExpired => "checkout_expired",
            PurchaseError::CheckoutFailed => "checkout_failed",
            PurchaseError::NotPaid => "not_paid",
            PurchaseError::StillIssuing => "key_issuing",
            PurchaseError::Portal(e) => e.code(),
        }
    }

    /// What to tell the buyer: one sentence and one next step for each failure, as
    /// [`crate::message`] says the reasons'. A key Polar has not issued yet is never "not
    /// found" (Polar issues #7125, #7454): it is still being issued.
    pub fn message(&self) -> Message {
        const RESTART: &str = "Start the purchase again.";
        match self {
            PurchaseError::CheckoutNotFound => {
                Message::fixed("This checkout was not found.", RESTART)
            }
            PurchaseError::CheckoutExpired => {
                Message::fixed("This checkout expired before it was paid.", RESTART)
            }
            PurchaseError::CheckoutFailed => Message::fixed("This checkout failed.", RESTART),
            PurchaseError::NotPaid => Message::fixed(
                "This checkout has not been paid yet.",
                "Finish paying in the browser, then try again.",
            ),
            PurchaseError::StillIssuing | PurchaseError::Portal(PortalError::NotFound) => {
                Message::fixed("Polar is still issuing your key.", "Try again in a minute.")
            }
            PurchaseError::Portal(PortalError::SessionExpired | PortalError::NotSignedIn) => {
                Message::fixed(
                    "Your purchase is paid but this app is not signed in to your account.",
                    "Sign in with the code Polar emails to the address you paid with.",
                )
            }
            PurchaseError::Portal(PortalError::CodeInvalidOrExpired) => Message::fixed(
                "The code is wrong, used or more than 30 minutes old.",
                "Ask for a new code and type it as the email shows it.",
            ),
            // The seller's relay refusing a checkout it was asked to make (its 403s,
            // crates/relay's checkout route): the seller's settings, not the buyer's doing.
            PurchaseError::Portal(PortalError::Refused { error, .. })
                if error == "CheckoutProductNotAllowed" =>
            {
                Message::fixed(
                    "This product cannot be bought from the app.",
                    "Ask the seller to sell it through their relay.",
                )
            }
            PurchaseError::Portal(PortalError::Refused { error, .. })
                if error == "CheckoutOriginNotAllowed" =>
            {
                Message::fixed(
                    "The seller's relay does not allow the page this app returns to after paying.",
                    "Ask the seller to allow this app's success URL on their relay.",
                )
            }
            PurchaseError::Portal(p) => match p.reason() {
                Some(r) => r.message(),
                None => Message::fixed(
                    "Polar did not let this app read your purchase.",
                    "Find the key in the email Polar sent you and type it in.",
                ),
            },
        }
    }
}

impl std::fmt::Display for PurchaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PurchaseError::Portal(e) => write!(f, "{e}"),
            other => f.write_str(&other.message().text()),
        }
    }
}

impl std::error::Error for PurchaseError {}

/// The client secret of a checkout from what an app was handed: the secret itself
/// (`polar_c_…`), or the checkout's URL (`https://polar.sh/checkout/polar_c_…`, as Polar's
/// answers give it and a checkout link redirects to), a query or fragment dropped.
pub fn client_secret_of(text: &str) -> Result<String, Error> {
    let text = text.trim();
    let text = text.split(['?', '#']).next().unwrap_or("");
    let secret = match text.rsplit_once("/checkout/") {
        Some((_, rest)) => rest.split('/').next().unwrap_or(""),
        None => text,
    };
    let fine = !secret.is_empty()
        && secret.len() <= 200
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !fine {
        return Err(Error::invalid(
            "checkout",
            "is neither a checkout's client secret (polar_c_…) nor its URL (…/checkout/polar_c_…)",
        ));
    }
    Ok(secret.to_string())
}

/// The customer-session token Polar's hosted checkout adds to the success URL when it sends the
/// buyer there (`customer_session_token=polar_cst_…`): what a page or a deep link the success URL
/// opens hands to [`Purchase::new`]. `None` when the URL carries none.
pub fn session_from_success_url(url: &str) -> Option<SessionToken> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "customer_session_token" && value.starts_with("polar_") && value.is_ascii())
            .then(|| SessionToken::new(value))
    })
}

/// The request that opens a checkout from a checkout link (`GET
/// /v1/checkout-links/{client_secret}/redirect`, `customer_email` prefilled when given): Polar
/// answers a redirect to the new checkout's URL, read with [`checkout_of_link`].
pub fn open_link(api: &Api, link: &str, email: Option<&str>) -> Result<PortalRequest, Error> {
    let link = link.trim();
    let secret = match link.split_once("/v1/checkout-links/") {
        Some((_, rest)) => rest.split(['/', '?']).next().unwrap_or(""),
        None => link,
    };
    if secret.is_empty()
        || !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::invalid(
            "link",
            "is neither a checkout link's client secret (polar_cl_…) nor its URL",
        ));
    }
    let mut url = [
        api.portal_base_url(),
        "/v1/checkout-links/",
        secret,
        "/redirect",
    ]
    .concat();
    if let Some(email) = email {
        url.push_str("?customer_email=");
        url.push_str(&percent_encode(email));
    }
    Ok(PortalRequest {
        method: Method::Get,
        url,
        headers: vec![("accept", "application/json".to_string())],
        body: Vec::new(),
    })
}

/// Reads the answer to [`open_link`]: the new checkout's URL (its `Location`).
pub fn checkout_of_link(resp: &HttpResponse) -> Result<String, PurchaseError> {
    match resp.status {
        301..=308 => resp
            .header("location")
            .map(str::to_string)
            .ok_or_else(|| protocol("a checkout link's redirect without a Location")),
        404 => Err(PurchaseError::CheckoutNotFound),
        _ => Err(PurchaseError::Portal(crate::portal::failure(
            "checkout link",
            resp,
        ))),
    }
}

/// The path of the seller's relay that makes a checkout with the seller's token (issue #80;
/// the relay's `CHECKOUT_ROUTE`): what an app asks instead of a checkout link when it sends
/// its own metadata.
pub const RELAY_CHECKOUT_PATH: &str = "/v1/checkouts/create";

/// A checkout an app asks the seller's relay to make ([`RELAY_CHECKOUT_PATH`]): a product the
/// seller allows there, the app's metadata (Polar's limits, [`crate::metadata::check_metadata`]),
/// the buyer's e-mail to prefill and a success URL on an origin the seller allows. The price
/// and everything else of the checkout are the seller's: the relay takes nothing more.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CheckoutAsk {
    /// The product's id.
    pub product_id: String,
    /// The app's metadata, kept on the checkout (and its order) at Polar.
    pub metadata: crate::metadata::Metadata,
    /// The buyer's e-mail, prefilled.
    pub customer_email: Option<String>,
    /// Where Polar sends the buyer after paying (`None`: Polar's own confirmation page).
    pub success_url: Option<String>,
}

impl CheckoutAsk {
    /// A checkout of `product_id`, with no metadata, e-mail or success URL.
    pub fn new(product_id: impl Into<String>) -> CheckoutAsk {
        CheckoutAsk {
            product_id: product_id.into(),
            ..CheckoutAsk::default()
        }
    }

    /// The `POST` of this ask to the seller's relay at `relay_url` (`https://`, or `http://`
    /// on loopback only, as a base URL is checked), read with [`checkout_of_relay`]. A product
    /// id that is no UUID or metadata past Polar's limits is refused here, unsent.
    pub fn request(&self, relay_url: &str) -> Result<PortalRequest, Error> {
        let product_id = crate::metadata::check_uuid_v4("product_id", &self.product_id)?;
        crate::metadata::check_metadata("metadata", &self.metadata)?;
        let base = crate::portal::relay_base(relay_url)?;
        let mut body = crate::json::JsonOut::new();
        body.raw("{").key("product_id").str(&product_id);
        if !self.metadata.is_empty() {
            body.key("metadata").meta(&self.metadata);
        }
        if let Some(email) = &self.customer_email {
            body.key("customer_email").str(email);
        }
        if let Some(url) = &self.success_url {
            body.key("success_url").str(url);
        }
        Ok(crate::portal::json_post(
            [base.as_str(), RELAY_CHECKOUT_PATH].concat(),
            body.raw("}").done().into_bytes(),
        ))
    }
}

/// Reads the relay's answer to [`CheckoutAsk::request`]: the new checkout's URL (to show the
/// buyer, and to follow: [`Purchase::new`] takes it). The relay's refusals (a product it does
/// not sell, a body it does not take, its rate) are the portal's typed failures.
pub fn checkout_of_relay(resp: &HttpResponse) -> Result<String, PurchaseError> {
    if !(200..300).contains(&resp.status) {
        return Err(PurchaseError::Portal(crate::portal::failure(
            "relay checkout",
            resp,
        )));
    }
    let body: serde_json::Value = serde_json::from_slice(&resp.body)
        .map_err(|e| protocol(&["malformed relay checkout: ", &e.to_string()].concat()))?;
    let url = body.get("url").and_then(|v| v.as_str());
    let secret = body.get("client_secret").and_then(|v| v.as_str());
    match (url, secret) {
        (Some(url), Some(secret)) if client_secret_of(url).is_ok_and(|s| s == secret) => {
            Ok(url.to_string())
        }
        (_, Some(secret)) if client_secret_of(secret).is_ok() => Ok(secret.to_string()),
        _ => Err(protocol(
            "malformed relay checkout: no checkout url or client secret",
        )),
    }
}

/// `text` for a URL's query: unreserved bytes as they are, every other byte `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

fn protocol(why: &str) -> PurchaseError {
    PurchaseError::Portal(PortalError::Protocol(Error::protocol(
        None,
        why.to_string(),
    )))
}

/// A checkout as [`Purchase`] reads it (`CheckoutPublic`).
#[derive(Debug, Clone)]
struct Read {
    status: CheckoutStatus,
    receipt: Receipt,
}

fn parse_checkout(resp: &HttpResponse) -> Result<Read, PurchaseError> {
    match resp.status {
        200 => {}
        404 => return Err(PurchaseError::CheckoutNotFound),
        410 => return Err(PurchaseError::CheckoutExpired),
        _ => {
            return Err(PurchaseError::Portal(crate::portal::failure(
                "checkout", resp,
            )))
        }
    }
    let body: serde_json::Value = serde_json::from_slice(&resp.body)
        .map_err(|e| protocol(&["malformed checkout response: ", &e.to_string()].concat()))?;
    let text = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let status = text("status")
        .as_deref()
        .and_then(CheckoutStatus::parse)
        .ok_or_else(|| protocol("malformed checkout response: no known status"))?;
    let created_at = text("created_at").and_then(|t| {
        OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
    });
    let benefit_ids = body
        .get("product")
        .and_then(|p| p.get("benefits"))
        .and_then(|b| b.as_array())
        .map(|list| {
            list.iter()
                .filter(|b| b.get("type").and_then(|t| t.as_str()) == Some("license_keys"))
                .filter_map(|b| b.get("id").and_then(|i| i.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Read {
        status,
        receipt: Receipt {
            checkout_id: text("id").unwrap_or_default(),
            email: text("customer_email"),
            created_at,
            benefit_ids,
        },
    })
}

/// Of the customer's keys, the one `receipt` bought: granted, of the product's license-key
/// benefit (when the checkout named it), made no earlier than the checkout; the newest.
pub fn bought_key(keys: &[LicenseKeyRead], receipt: &Receipt) -> Option<LicenseKeyRead> {
    keys.iter()
        .filter(|k| k.status == LicenseKeyStatus::Granted)
        .filter(|k| receipt.benefit_ids.is_empty() || receipt.benefit_ids.contains(&k.benefit_id))
        .filter(|k| receipt.created_at.is_none_or(|at| k.created_at >= at))
        .max_by_key(|k| k.created_at)
        .cloned()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading the checkout.
    Follow,
    /// Reading page `n` of the customer's keys.
    Page(u32),
    /// Asking Polar about the key found (a validate: is it answered yet?).
    Probe,
    /// Over.
    Done,
}

/// A purchase followed to its key, sans-IO: one of the client's timed machines
/// ([`crate::flow::Standalone`]), driven by every shell's one loop; it asks for portal requests
/// ([`crate::flow::Want::Portal`]) and waits ([`crate::flow::Want::Wait`]), and ends with
/// [`Purchase::outcome`].
#[derive(Debug, Clone)]
pub struct Purchase {
    portal: Portal,
    base_url: String,
    organization_id: String,
    client_secret: String,
    session: Option<SessionToken>,
    receipt: Option<Receipt>,
    state: State,
    found: Option<LicenseKeyRead>,
    /// The key the machine is about (empty until one is found), for the shell's log lines.
    key: Key,
    followed: Duration,
    issuing: Duration,
    sending: Option<PortalRequest>,
    waiting: Option<Duration>,
    outcome: Option<Result<Bought, PurchaseError>>,
    patience: crate::flow::Patience,
}

impl Purchase {
    /// Follows the checkout of `client_secret` ([`client_secret_of`] takes its URL too) for the
    /// client's organization and server. `session` is the customer-session token when the app
    /// has it (from the confirmation's answer or the success URL: [`session_from_success_url`]);
    /// without one a paid checkout ends with [`Bought::SignIn`].
    pub fn new(api: &Api, client_secret: &str, session: Option<SessionToken>) -> Purchase {
        let mut p = Purchase::blank(api, session);
        match client_secret_of(client_secret) {
            Ok(secret) => {
                p.client_secret = secret;
                p.state = State::Follow;
                p.sending = Some(p.read_checkout());
            }
            Err(e) => p.finish(Err(PurchaseError::Portal(PortalError::Invalid(e)))),
        }
        p
    }

    /// The rest of a purchase that ended with [`Bought::SignIn`], once the buyer signed in with
    /// the emailed code: the customer's keys listed through `session` for the one `receipt`
    /// bought (still issuing is waited out as [`Purchase::new`] does).
    pub fn signed_in(api: &Api, receipt: Receipt, session: SessionToken) -> Purchase {
        let mut p = Purchase::blank(api, Some(session));
        p.receipt = Some(receipt);
        p.list(1);
        p
    }

    fn blank(api: &Api, session: Option<SessionToken>) -> Purchase {
        Purchase {
            portal: Portal::for_api(api),
            base_url: api.portal_base_url().to_string(),
            organization_id: api.organization_id().to_string(),
            client_secret: String::new(),
            session,
            receipt: None,
            state: State::Done,
            found: None,
            key: Key::new(String::new()),
            followed: Duration::ZERO,
            issuing: Duration::ZERO,
            sending: None,
            waiting: None,
            outcome: None,
            patience: crate::flow::Patience::default(),
        }
    }

    /// The purchase's end, once the machine wants nothing more; taken once.
    pub fn outcome(&mut self) -> Result<Bought, PurchaseError> {
        self.outcome.take().unwrap_or_else(|| {
            Err(PurchaseError::Portal(PortalError::Invalid(Error::invalid(
                "purchase",
                "the purchase is not done, or its answer was taken already",
            ))))
        })
    }

    /// The checkout's receipt once it was read paid.
    pub fn receipt(&self) -> Option<&Receipt> {
        self.receipt.as_ref()
    }

    fn read_checkout(&self) -> PortalRequest {
        PortalRequest {
            method: Method::Get,
            url: [
                self.base_url.as_str(),
                "/v1/checkouts/client/",
                &self.client_secret,
            ]
            .concat(),
            headers: vec![("accept", "application/json".to_string())],
            body: Vec::new(),
        }
    }

    /// A validate of the key found, with no activation: Polar's answer says whether the key is
    /// issued yet (a `404` right after paying is "still issuing").
    fn probe(&self, key: &Key) -> PortalRequest {
        let body = serde_json::json!({
            "key": key.expose(),
            "organization_id": self.organization_id,
        })
        .to_string();
        PortalRequest {
            method: Method::Post,
            url: [
                self.base_url.as_str(),
                "/v1/customer-portal/license-keys/validate",
            ]
            .concat(),
            headers: vec![
                ("content-type", "application/json".to_string()),
                ("accept", "application/json".to_string()),
            ],
            body: body.into_bytes(),
        }
    }

    fn finish(&mut self, result: Result<Bought, PurchaseError>) {
        self.state = State::Done;
        self.sending = None;
        self.waiting = None;
        self.outcome = Some(result);
    }

    fn list(&mut self, page: u32) {
        let Some(session) = self.session.clone() else {
            let receipt = self.receipt.clone().unwrap_or_else(|| Receipt {
                checkout_id: String::new(),
                email: None,
                created_at: None,
                benefit_ids: Vec::new(),
            });
            return self.finish(Ok(Bought::SignIn(receipt)));
        };
        self.state = State::Page(page);
        match self.portal.list_keys(&session, page) {
            Ok(request) => self.sending = Some(request),
            Err(e) => self.finish(Err(PurchaseError::Portal(PortalError::Invalid(e)))),
        }
    }

    /// Waits `every` and asks `again` while the key is still being issued; past the window,
    /// [`PurchaseError::StillIssuing`].
    fn still_issuing(&mut self, again: PortalRequest) {
        if self.issuing >= ISSUING_WINDOW {
            return self.finish(Err(PurchaseError::StillIssuing));
        }
        self.issuing += ISSUING_EVERY;
        self.sending = Some(again);
        self.waiting = Some(ISSUING_EVERY);
    }

    /// The answer to the request out.
    fn answer(&mut self, response: HttpResponse) {
        match self.state.clone() {
            State::Follow => match parse_checkout(&response) {
                Err(e) => self.finish(Err(e)),
                Ok(read) => match read.status {
                    CheckoutStatus::Open => {
                        if self.followed >= FOLLOW_LIMIT {
                            return self.finish(Err(PurchaseError::NotPaid));
                        }
                        self.followed += FOLLOW_EVERY;
                        self.sending = Some(self.read_checkout());
                        self.waiting = Some(FOLLOW_EVERY);
                    }
                    CheckoutStatus::Confirmed | CheckoutStatus::Succeeded => {
                        self.receipt = Some(read.receipt);
                        self.list(1);
                    }
                    CheckoutStatus::Expired => self.finish(Err(PurchaseError::CheckoutExpired)),
                    CheckoutStatus::Failed => self.finish(Err(PurchaseError::CheckoutFailed)),
                },
            },
            State::Page(page) => {
                let answer = match crate::portal::parse_key_page(&response) {
                    Ok(a) => a,
                    Err(e) => return self.finish(Err(PurchaseError::Portal(e))),
                };
                let receipt = self.receipt.clone();
                let found = receipt.as_ref().and_then(|r| bought_key(&answer.items, r));
                if let Some(key) = found {
                    self.state = State::Probe;
                    self.key = key.key.clone();
                    self.sending = Some(self.probe(&key.key));
                    self.found = Some(key);
                    return;
                }
                if u64::from(page) < answer.max_page && page < MAX_PORTAL_PAGES {
                    return self.list(page + 1);
                }
                // Not among them yet: Polar is still granting the order's benefits.
                self.list(1);
                if let Some(again) = self.sending.take() {
                    self.still_issuing(again);
                }
            }
            State::Probe => match response.status {
                200 => match self.found.take() {
                    Some(key) => self.finish(Ok(Bought::Key(Box::new(key)))),
                    None => self.finish(Err(protocol("no key found"))),
                },
                404 => {
                    let again = self.probe(&self.key.clone());
                    self.still_issuing(again);
                }
                _ => {
                    // Any other answer about the key is the activation's to tell (a revoked
                    // key, a limit): the key is the one bought.
                    match self.found.take() {
                        Some(key) => self.finish(Ok(Bought::Key(Box::new(key)))),
                        None => self.finish(Err(protocol("no key found"))),
                    }
                }
            },
            State::Done => {}
        }
    }
}

impl crate::flow::Standalone for Purchase {
    fn want(&self) -> crate::flow::Want<'_> {
        crate::flow::portal_want(self.waiting, self.sending.as_ref())
    }

    fn give(&mut self, given: crate::flow::Given) {
        use crate::flow::Given;
        match given {
            Given::Waited => self.waiting = None,
            Given::Response(response) if self.waiting.is_none() && self.sending.is_some() => {
                let response = match response {
                    Ok(r) => r,
                    Err(e) => {
                        return self.finish(Err(PurchaseError::Portal(PortalError::Offline(e))))
                    }
                };
                if response.status == 429 {
                    if let Some(wait) = self.patience.wait_for(retry_after(&response)) {
                        // The same request again after the wait.
                        self.waiting = Some(wait);
                        return;
                    }
                    return self.finish(Err(PurchaseError::Portal(PortalError::RateLimited(
                        retry_after(&response),
                    ))));
                }
                self.sending = None;
                self.answer(response);
            }
            // Nothing else is asked of a shell.
            _ => {}
        }
    }

    fn key(&self) -> &Key {
        &self.key
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::flow::{Given, Standalone, Want};
    use crate::proto::Server;

    const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
    const BENEFIT: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";
    const SECRET: &str = "polar_c_abcdefghijklmnopqrstuvwxyz0123456789A";

    fn api() -> Api {
        Api::new(ORG, &Server::parse("http://127.0.0.1:8787")).expect("api")
    }

    #[test]
    fn a_relay_checkout_is_asked_with_the_app_s_metadata_and_read_to_its_url() {
        let mut ask = CheckoutAsk::new(BENEFIT.to_uppercase());
        ask.metadata
            .insert("app_version".into(), crate::MetaValue::Str("1.4.2".into()));
        ask.customer_email = Some("jane@example.com".into());
        let r = ask.request("http://127.0.0.1:8788/").expect("a request");
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.url, "http://127.0.0.1:8788/v1/checkouts/create");
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"product_id": BENEFIT, "metadata": {"app_version": "1.4.2"},
                "customer_email": "jane@example.com"})
        );
        // Refused here, unsent: no product id, metadata past Polar's limits, a relay not
        // https (off loopback).
        assert!(CheckoutAsk::new("pro")
            .request("https://r.example")
            .is_err());
        let mut big = CheckoutAsk::new(BENEFIT);
        big.metadata
            .insert("k".repeat(41), crate::MetaValue::Int(1));
        assert!(big.request("https://r.example").is_err());
        assert!(CheckoutAsk::new(BENEFIT)
            .request("http://r.example")
            .is_err());
        // The answer: its URL (whose secret is the answer's), else its secret.
        let url = format!("https://polar.sh/checkout/{SECRET}");
        let made = serde_json::json!({"url": url, "client_secret": SECRET}).to_string();
        assert_eq!(checkout_of_relay(&HttpResponse::new(201, made)), Ok(url));
        let odd = serde_json::json!({"url": "https://x/", "client_secret": SECRET}).to_string();
        assert_eq!(
            checkout_of_relay(&HttpResponse::new(201, odd)),
            Ok(SECRET.to_string())
        );
        let refused = HttpResponse::new(
            403,
            r#"{"error":"CheckoutProductNotAllowed","detail":"no"}"#,
        );
        assert!(matches!(
            checkout_of_relay(&refused),
            Err(PurchaseError::Portal(_))
        ));
        // The relay's refusals said as the seller's settings, never as the buyer's purchase.
        let said = |error: &str| match checkout_of_relay(&HttpResponse::new(
            403,
            serde_json::json!({"error": error, "detail": "no"}).to_string(),
        )) {
            Err(e) => (e.code(), e.message().text()),
            Ok(url) => ("ok", url),
        };
        assert_eq!(
            said("CheckoutProductNotAllowed"),
            (
                "refused",
                "This product cannot be bought from the app: ask the seller to sell it through their relay.".to_string()
            )
        );
        let (code, text) = said("CheckoutOriginNotAllowed");
        assert_eq!(code, "refused");
        assert!(text.contains("success URL"), "{text}");
        assert!(!said("Other").1.contains("relay"));
        assert!(checkout_of_relay(&HttpResponse::new(201, "{}")).is_err());
    }

    fn session() -> SessionToken {
        SessionToken::new("polar_cst_abcdefghijklmnopqrstuvwxyz0123456789A012345")
    }

    fn checkout(status: &str) -> HttpResponse {
        let body = serde_json::json!({
            "id": "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
            "created_at": "2026-06-01T10:00:00Z",
            "status": status,
            "client_secret": SECRET,
            "customer_email": "new.buyer@example.com",
            "product": {"id": "3f9e1c2d-7b4a-4e8f-9a1b-2c3d4e5f6a7b",
                        "benefits": [{"id": BENEFIT, "type": "license_keys"}]},
        });
        HttpResponse::new(200, body.to_string())
    }

    fn key_json(key: &str, created_at: &str, benefit: &str, status: &str) -> serde_json::Value {
        serde_json::json!({
            "id": "6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b",
            "created_at": created_at,
            "organization_id": ORG,
            "customer_id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
            "benefit_id": benefit,
            "key": key, "display_key": "****-K", "status": status,
            "limit_activations": 3, "usage": 0, "limit_usage": null,
            "validations": 0, "last_validated_at": null, "expires_at": null,
            "customer": {"id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
                         "created_at": "2026-01-01T00:00:00Z",
                         "organization_id": ORG}
        })
    }

    fn page(items: Vec<serde_json::Value>) -> HttpResponse {
        let n = items.len();
        let body = serde_json::json!({
            "items": items,
            "pagination": {"total_count": n, "max_page": u64::from(n > 0)}
        });
        HttpResponse::new(200, body.to_string())
    }

    /// An old key of the customer's, then the one bought (after the checkout was made).
    fn bought_page() -> HttpResponse {
        page(vec![
            key_json("OLD-KEY", "2026-01-01T00:00:00Z", BENEFIT, "granted"),
            key_json("NEW-KEY", "2026-06-01T10:00:05Z", BENEFIT, "granted"),
        ])
    }

    /// Drives `p` with `answer` for each request (by URL), counting the waits.
    fn drive(
        p: &mut Purchase,
        mut answer: impl FnMut(&PortalRequest) -> HttpResponse,
    ) -> (Vec<String>, Duration) {
        let mut urls = Vec::new();
        let mut waited = Duration::ZERO;
        for _ in 0..10_000 {
            match Standalone::want(p) {
                Want::Done => return (urls, waited),
                Want::Wait(d) => {
                    waited += d;
                    p.give(Given::Waited);
                }
                Want::Portal(r) => {
                    let r = r.clone();
                    urls.push([r.method.as_str(), " ", &r.url].concat());
                    let response = answer(&r);
                    p.give(Given::Response(Ok(response)));
                }
                _ => panic!("a purchase asks for nothing but portal requests and waits"),
            }
        }
        panic!("the purchase never ended")
    }

    fn is_probe(r: &PortalRequest) -> bool {
        r.url.ends_with("/license-keys/validate")
    }

    #[test]
    fn an_open_checkout_is_followed_to_its_key_through_the_session() {
        let mut reads = 0;
        let mut p = Purchase::new(&api(), SECRET, Some(session()));
        let (urls, waited) = drive(&mut p, |r| {
            if r.url.contains("/v1/checkouts/client/") {
                reads += 1;
                return checkout(if reads < 3 { "open" } else { "succeeded" });
            }
            if is_probe(r) {
                let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
                assert_eq!(body["key"], "NEW-KEY");
                return HttpResponse::new(200, "{}");
            }
            bought_page()
        });
        let Ok(Bought::Key(key)) = p.outcome() else {
            panic!("a key")
        };
        assert_eq!(
            key.key.expose(),
            "NEW-KEY",
            "the key bought, not the older one"
        );
        assert_eq!(waited, FOLLOW_EVERY * 2, "{urls:?}");
        assert_eq!(
            urls.last().map(String::as_str),
            Some("POST http://127.0.0.1:8787/v1/customer-portal/license-keys/validate")
        );
        assert_eq!(
            urls[0],
            format!("GET http://127.0.0.1:8787/v1/checkouts/client/{SECRET}")
        );
    }

    #[test]
    fn a_key_not_yet_issued_is_waited_for_then_taken() {
        // The customer's keys lack it twice, then its validate answers 404 once.
        let mut lists = 0;
        let mut probes = 0;
        let mut p = Purchase::new(&api(), SECRET, Some(session()));
        let (_, waited) = drive(&mut p, |r| {
            if r.url.contains("/v1/checkouts/client/") {
                return checkout("confirmed");
            }
            if is_probe(r) {
                probes += 1;
                return if probes == 1 {
                    HttpResponse::new(404, r#"{"error":"ResourceNotFound","detail":"Not found"}"#)
                } else {
                    HttpResponse::new(200, "{}")
                };
            }
            lists += 1;
            if lists < 3 {
                page(vec![key_json(
                    "OLD-KEY",
                    "2026-01-01T00:00:00Z",
                    BENEFIT,
                    "granted",
                )])
            } else {
                bought_page()
            }
        });
        assert!(matches!(p.outcome(), Ok(Bought::Key(k)) if k.key.expose() == "NEW-KEY"));
        assert_eq!(waited, ISSUING_EVERY * 3, "two lists and one probe waited");
    }

    #[test]
    fn a_key_still_missing_after_two_minutes_is_still_issuing_never_not_found() {
        let mut p = Purchase::new(&api(), SECRET, Some(session()));
        let (urls, waited) = drive(&mut p, |r| {
            if r.url.contains("/v1/checkouts/client/") {
                return checkout("succeeded");
            }
            page(Vec::new())
        });
        let e = p.outcome().expect_err("no key");
        assert_eq!(e, PurchaseError::StillIssuing);
        assert_eq!(e.code(), "key_issuing");
        assert_eq!(
            e.message().text(),
            "Polar is still issuing your key: try again in a minute."
        );
        assert_eq!(waited, ISSUING_WINDOW);
        // The first list, then one every ISSUING_EVERY for the window.
        assert_eq!(urls.len(), 1 + 1 + 60, "{}", urls.len());
        // A 404 of the key's validate past the window says the same.
        let mut p = Purchase::new(&api(), SECRET, Some(session()));
        drive(&mut p, |r| {
            if r.url.contains("/v1/checkouts/client/") {
                return checkout("succeeded");
            }
            if is_probe(r) {
                return HttpResponse::new(
                    404,
                    r#"{"error":"ResourceNotFound","detail":"Not found"}"#,
                );
            }
            bought_page()
        });
        let e = p.outcome().expect_err("no key");
        assert_eq!(e.code(), "key_issuing");
        assert!(!e.message().text().contains("not found"));
    }

    #[test]
    fn without_a_session_a_paid_checkout_asks_for_the_email_code() {
        let mut p = Purchase::new(&api(), SECRET, None);
        let (urls, _) = drive(&mut p, |_| checkout("succeeded"));
        assert_eq!(urls.len(), 1, "nothing but the checkout is read: {urls:?}");
        let Ok(Bought::SignIn(receipt)) = p.outcome() else {
            panic!("a sign-in")
        };
        assert_eq!(receipt.email.as_deref(), Some("new.buyer@example.com"));
        assert_eq!(receipt.benefit_ids, vec![BENEFIT.to_string()]);
        // Signed in, the rest finds the key.
        let mut p = Purchase::signed_in(&api(), receipt, session());
        drive(&mut p, |r| {
            if is_probe(r) {
                HttpResponse::new(200, "{}")
            } else {
                bought_page()
            }
        });
        assert!(matches!(p.outcome(), Ok(Bought::Key(k)) if k.key.expose() == "NEW-KEY"));
        let said = crate::message::purchase_sign_in(Some("new.buyer@example.com"));
        assert_eq!(
            said.text(),
            "Your purchase is paid and Polar is emailing a sign-in code to new.buyer@example.com: type the code here to unlock the app."
        );
    }

    #[test]
    fn an_unknown_expired_failed_or_unpaid_checkout_ends_typed() {
        for (answer, want) in [
            (
                HttpResponse::new(404, r#"{"error":"ResourceNotFound","detail":"Not found"}"#),
                PurchaseError::CheckoutNotFound,
            ),
            (
                HttpResponse::new(
                    410,
                    r#"{"error":"ExpiredCheckoutError","detail":"This checkout session has expired."}"#,
                ),
                PurchaseError::CheckoutExpired,
            ),
            (checkout("expired"), PurchaseError::CheckoutExpired),
            (checkout("failed"), PurchaseError::CheckoutFailed),
        ] {
            let mut p = Purchase::new(&api(), SECRET, Some(session()));
            drive(&mut p, |_| answer.clone());
            assert_eq!(p.outcome().expect_err("no key"), want);
        }
        let mut p = Purchase::new(&api(), SECRET, Some(session()));
        let (_, waited) = drive(&mut p, |_| checkout("open"));
        assert_eq!(p.outcome().expect_err("unpaid"), PurchaseError::NotPaid);
        assert_eq!(waited, FOLLOW_LIMIT);
        let mut p = Purchase::new(&api(), "not a secret!", None);
        assert!(matches!(Standalone::want(&p), Want::Done));
        assert_eq!(p.outcome().expect_err("refused").code(), "invalid_input");
    }

    #[test]
    fn the_key_bought_is_the_newest_granted_of_the_benefit_since_the_checkout() {
        let receipt = parse_checkout(&checkout("succeeded"))
            .expect("read")
            .receipt;
        let keys: Vec<LicenseKeyRead> = serde_json::from_value(serde_json::json!([
            key_json("OLD", "2026-05-01T00:00:00Z", BENEFIT, "granted"),
            key_json(
                "OTHER-PRODUCT",
                "2026-06-01T10:00:09Z",
                "11111111-2222-4333-8444-555555555555",
                "granted"
            ),
            key_json("REVOKED", "2026-06-01T10:00:08Z", BENEFIT, "revoked"),
            key_json("NEW", "2026-06-01T10:00:05Z", BENEFIT, "granted"),
        ]))
        .expect("keys");
        assert_eq!(
            bought_key(&keys, &receipt)
                .map(|k| k.key.expose().to_string())
                .as_deref(),
            Some("NEW")
        );
        assert_eq!(bought_key(&keys[..1], &receipt), None);
    }

    #[test]
    fn a_checkout_url_a_success_url_and_a_link_are_read() {
        assert_eq!(client_secret_of(SECRET).expect("secret"), SECRET);
        assert_eq!(
            client_secret_of(&format!("https://polar.sh/checkout/{SECRET}?x=1")).expect("url"),
            SECRET
        );
        assert!(client_secret_of("https://polar.sh/checkout/").is_err());
        let token = session_from_success_url(
            "https://app.example/thanks?checkout_id=1&customer_session_token=polar_cst_abc#x",
        )
        .expect("a token");
        assert_eq!(token.expose(), "polar_cst_abc");
        assert_eq!(session_from_success_url("https://app.example/thanks"), None);
        let r = open_link(
            &api(),
            "https://api.polar.sh/v1/checkout-links/polar_cl_X/redirect",
            Some("a+b@example.com"),
        )
        .expect("link");
        assert_eq!(
            r.url,
            "http://127.0.0.1:8787/v1/checkout-links/polar_cl_X/redirect?customer_email=a%2Bb%40example.com"
        );
        let mut moved = HttpResponse::new(307, "");
        moved.headers.push((
            "location".into(),
            format!("http://127.0.0.1:8787/checkout/{SECRET}"),
        ));
        assert_eq!(
            client_secret_of(&checkout_of_link(&moved).expect("moved")).expect("secret"),
            SECRET
        );
        assert_eq!(
            checkout_of_link(&HttpResponse::new(
                404,
                r#"{"error":"ResourceNotFound","detail":"Not found"}"#
            )),
            Err(PurchaseError::CheckoutNotFound)
        );
    }

    #[test]
    fn every_purchase_message_is_one_sentence_and_one_step() {
        for e in [
            PurchaseError::CheckoutNotFound,
            PurchaseError::CheckoutExpired,
            PurchaseError::CheckoutFailed,
            PurchaseError::NotPaid,
            PurchaseError::StillIssuing,
            PurchaseError::Portal(PortalError::NotFound),
            PurchaseError::Portal(PortalError::SessionExpired),
            PurchaseError::Portal(PortalError::CodeInvalidOrExpired),
            PurchaseError::Portal(PortalError::DeviceManagementOff),
        ] {
            let m = e.message();
            for s in [m.sentence(), m.next_step()] {
                assert!(
                    s.ends_with('.') && s.starts_with(|c: char| c.is_ascii_uppercase()),
                    "{s}"
                );
                assert!(!s[..s.len() - 1].contains(". "), "{s}");
            }
            assert!(
                !m.text().contains("not found") || e == PurchaseError::CheckoutNotFound,
                "{e:?}: {m}"
            );
        }
    }
}
