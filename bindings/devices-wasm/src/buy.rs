//! Buying in the app (issue #80) for the npm package: the core's purchase machine
//! (`polar_license::purchase::Purchase`) one step at a time in the package's step protocol. Its
//! waits (an open checkout read again, a key Polar is still issuing asked for again) are
//! `{"wait": ms}` steps the one drive loop does; nothing here decides.
//!
//! The end: `{"done": {"key": {id, displayKey, key, benefitId, limitActivations}}}` (`key` whole:
//! for the activation only), `{"done": {"signIn": {checkoutId, email, createdAt, benefitIds,
//! userMessage, nextStep}}}` (no session: the emailed code, then [`Buying::signed_in`] with that
//! receipt), or `{"done": {"error": {code, reason, message, nextStep}}}` (`code`:
//! `key_issuing`, `checkout_expired`, …, or the portal's).

use polar_license::error::Error;
use polar_license::flow::{Given, Standalone, Want};
use polar_license::json::JsonOut;
use polar_license::portal::{PortalError, SessionToken};
use polar_license::purchase::{
    checkout_of_relay, Bought, CheckoutAsk, Purchase, PurchaseError, Receipt,
};
use polar_license_wasm_steps as steps;

use crate::Settings;
use wasm_bindgen::prelude::*;

/// A purchase followed to its key.
#[wasm_bindgen]
pub struct Buying {
    machine: Option<Purchase>,
    first: Option<PurchaseError>,
}

fn error(e: &PurchaseError) -> String {
    let m = e.message();
    let mut o = JsonOut::new();
    o.raw("{").key("error").raw("{").key("code").str(e.code());
    let reason = match e {
        PurchaseError::Portal(p) => p.reason().map(|r| r.code()),
        _ => None,
    };
    o.key("reason").opt_str(reason);
    o.key("message").str(m.sentence());
    o.key("nextStep").str(m.next_step());
    if let PurchaseError::Portal(PortalError::Invalid(Error::InvalidInput { field, .. })) = e {
        o.key("field").str(field);
    }
    steps::done(&o.raw("}}").done())
}

fn receipt_of(
    checkout_id: &str,
    email: Option<String>,
    created_at: Option<f64>,
    benefit_ids: Vec<String>,
) -> Receipt {
    // Unix seconds from the receipt this module gave: far inside i64 (a NaN is 0).
    #[allow(clippy::cast_possible_truncation)]
    let created_at = created_at.map(|s| s as i64);
    Receipt::from_parts(checkout_id, email, created_at, benefit_ids)
}

#[wasm_bindgen]
impl Buying {
    /// Follows the checkout `checkout` (its URL or client secret); `session`: the
    /// customer-session token when the app has it; `success_url`: the URL the buyer landed on
    /// after paying, whose `customer_session_token` is taken when `session` is not given.
    #[wasm_bindgen(constructor)]
    pub fn new(
        settings: &Settings,
        checkout: &str,
        session: Option<String>,
        success_url: Option<String>,
    ) -> Buying {
        let session = session.map(SessionToken::new).or_else(|| {
            success_url
                .as_deref()
                .and_then(polar_license::purchase::session_from_success_url)
        });
        match settings.api() {
            Ok(api) => Buying {
                machine: Some(Purchase::new(api, checkout, session)),
                first: None,
            },
            Err(e) => Buying {
                machine: None,
                first: Some(PurchaseError::Portal(PortalError::Invalid(e))),
            },
        }
    }

    /// The rest of a purchase that ended with `signIn`, through the session the emailed code
    /// opened: the receipt's fields as `signIn` gave them.
    #[wasm_bindgen(js_name = signedIn)]
    pub fn signed_in(
        settings: &Settings,
        session: &str,
        checkout_id: &str,
        email: Option<String>,
        created_at: Option<f64>,
        benefit_ids: Vec<String>,
    ) -> Buying {
        match settings.api() {
            Ok(api) => Buying {
                machine: Some(Purchase::signed_in(
                    api,
                    receipt_of(checkout_id, email, created_at, benefit_ids),
                    SessionToken::new(session),
                )),
                first: None,
            },
            Err(e) => Buying {
                machine: None,
                first: Some(PurchaseError::Portal(PortalError::Invalid(e))),
            },
        }
    }

    /// The first step.
    pub fn start(&mut self) -> String {
        self.next()
    }

    /// What the loop gave for the last step: the next step.
    pub fn give(&mut self, given: &str, body: Vec<u8>) -> String {
        let Some(m) = self.machine.as_mut() else {
            return self.next();
        };
        match steps::given(given) {
            Some((kind, v)) if kind == "response" => {
                m.give(Given::Response(steps::response(&v, body)))
            }
            Some((kind, _)) if kind == "waited" => m.give(Given::Waited),
            _ => {
                self.machine = None;
                self.first = Some(PurchaseError::Portal(PortalError::Invalid(
                    polar_license::error::Error::invalid(
                        "given",
                        "is not what the purchase asked for",
                    ),
                )));
            }
        }
        self.next()
    }

    fn next(&mut self) -> String {
        let Some(m) = self.machine.as_mut() else {
            let e = self
                .first
                .take()
                .unwrap_or(PurchaseError::Portal(PortalError::NotSignedIn));
            return error(&e);
        };
        match Standalone::want(m) {
            Want::Portal(r) => steps::send(r.method.as_str(), &r.url, &r.headers, &r.body, None),
            Want::Wait(d) => steps::wait(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            _ => match m.outcome() {
                Ok(Bought::Key(k)) => {
                    let mut o = JsonOut::new();
                    o.raw("{").key("key").raw("{").key("id").str(&k.id);
                    o.key("displayKey").str(&k.display_key);
                    o.key("key").str(k.key.expose());
                    o.key("benefitId").str(&k.benefit_id);
                    o.key("limitActivations").opt_int(k.limit_activations);
                    steps::done(&o.raw("}}").done())
                }
                Ok(Bought::SignIn(r)) => {
                    let said = polar_license::message::purchase_sign_in(r.email.as_deref());
                    let mut o = JsonOut::new();
                    o.raw("{")
                        .key("signIn")
                        .raw("{")
                        .key("checkoutId")
                        .str(&r.checkout_id);
                    o.key("email").opt_str(r.email.as_deref());
                    o.key("createdAt").opt_int(r.created_at_unix());
                    o.key("benefitIds").raw("[");
                    for (i, b) in r.benefit_ids.iter().enumerate() {
                        if i > 0 {
                            o.raw(",");
                        }
                        o.str(b);
                    }
                    o.raw("]");
                    o.key("userMessage").str(said.sentence());
                    o.key("nextStep").str(said.next_step());
                    steps::done(&o.raw("}}").done())
                }
                Err(e) => error(&e),
            },
        }
    }
}

/// A checkout the seller's relay makes for the app (issue #80: `POST /v1/checkouts/create`,
/// the core's `CheckoutAsk`): one request, its end `{"done": {"url": URL}}` (the checkout to
/// open and then follow with [`Buying`]) or the error as a purchase's (`code`: the portal's,
/// `invalid_input` with its `field` for an ask refused before sending).
#[wasm_bindgen]
pub struct RelayCheckout {
    first: String,
}

#[wasm_bindgen]
impl RelayCheckout {
    /// The ask of `product_id` (a UUID the relay sells), with the app's `metadata` (JSON text
    /// of an object, Polar's limits), the buyer's `email` to prefill and the `success_url`,
    /// sent to the relay the settings know ([`Settings`]).
    #[wasm_bindgen(constructor)]
    pub fn new(
        settings: &Settings,
        product_id: &str,
        metadata: Option<String>,
        email: Option<String>,
        success_url: Option<String>,
    ) -> RelayCheckout {
        // The ask's request, or why it is not sent.
        let made = || -> Result<String, Error> {
            let relay = settings.relay()?.ok_or_else(|| {
                    Error::invalid(
                        "relay_url",
                        "no seller's relay: name it with the `relay` option (in signed mode the base URL is the relay)",
                    )
                })?;
            let mut ask = CheckoutAsk::new(product_id);
            if let Some(text) = metadata {
                ask.metadata = polar_license::strict::parse(text.as_bytes())
                    .ok()
                    .and_then(|v| polar_license::json::read_metadata(&v))
                    .ok_or_else(|| {
                        Error::invalid(
                            "metadata",
                            "must be an object of strings, numbers and booleans",
                        )
                    })?;
            }
            ask.customer_email = email;
            ask.success_url = success_url;
            let r = ask.request(relay)?;
            Ok(steps::send(
                r.method.as_str(),
                &r.url,
                &r.headers,
                &r.body,
                None,
            ))
        };
        let first =
            made().unwrap_or_else(|e| error(&PurchaseError::Portal(PortalError::Invalid(e))));
        RelayCheckout { first }
    }

    /// The request (or its end, for an ask refused before anything is sent).
    pub fn start(&self) -> String {
        self.first.clone()
    }

    /// The relay's answer read: the checkout's URL, or its refusal typed.
    pub fn give(&self, given: &str, body: Vec<u8>) -> String {
        let read = crate::response(given, body)
            .map_err(PurchaseError::Portal)
            .and_then(|r| checkout_of_relay(&r));
        match read {
            Ok(url) => {
                let mut o = JsonOut::new();
                o.raw("{").key("url").str(&url).raw("}");
                steps::done(&o.done())
            }
            Err(e) => error(&e),
        }
    }
}
