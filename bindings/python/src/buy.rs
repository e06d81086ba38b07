//! Buying in the app from Python (issue #80): the core's purchase machine
//! ([`Licensing::buy`], [`Licensing::buy_signed_in`]) and its answers as plain data. Nothing here
//! decides: which checkout is read, how long a key still being issued is waited for, which key
//! was bought and its words are the core's; this file only turns them into the JSON the Python
//! layer reads into `Purchase`, `PurchaseSignIn` and `PurchaseError`.

use polar_license::purchase::{session_from_success_url, CheckoutAsk, PurchaseError, Receipt};
use polar_license::{Error, Licensing, Purchased};
use serde_json::{json, Value};

use super::{activated_json, err, ok, portal_err, remembered_session};

/// A purchase's failure: the portal's as every portal step's, else `{"purchase_error": {code,
/// detail, user_message, next_step}}` (`key_issuing`: Polar is still issuing the key).
fn purchase_err(e: &PurchaseError) -> Value {
    if let PurchaseError::Portal(p) = e {
        return portal_err(p);
    }
    let said = e.message();
    json!({ "purchase_error": {
        "code": e.code(),
        "detail": said.sentence(),
        "user_message": said.text(),
        "next_step": said.next_step(),
    }})
}

/// The end of a purchase: the key bought, activated here (`display_key`, `key_id`, and the
/// activation's own answer, Polar's denial included), or, with no session, the sign-in that
/// finishes it, the code asked for at the checkout's address.
fn purchased(licensing: &Licensing, answer: Result<Purchased, PurchaseError>) -> Value {
    match answer {
        Ok(Purchased::Activated { key, activated }) => ok(json!({
            "key_id": key.id,
            "display_key": key.key.redacted(),
            "activation": activated_json(*activated),
        })),
        Ok(Purchased::SignIn(receipt)) => {
            if let Some(email) = receipt.email.as_deref() {
                if let Err(e) = licensing.client().request_sign_in_code(email) {
                    return portal_err(&e);
                }
            }
            let said = polar_license::message::purchase_sign_in(receipt.email.as_deref());
            ok(json!({ "sign_in": {
                "checkout_id": receipt.checkout_id,
                "email": receipt.email,
                "created_at": receipt.created_at_unix(),
                "benefit_ids": receipt.benefit_ids,
                "user_message": said.text(),
                "next_step": said.next_step(),
            }}))
        }
        Err(e) => purchase_err(&e),
    }
}

/// The checkout of a checkout link (`open_checkout_link`): its URL.
pub(crate) fn open_link(licensing: &Licensing, link: &str, email: Option<&str>) -> Value {
    match licensing.client().open_checkout_link(link, email) {
        Ok(url) => ok(json!(url)),
        Err(e) => purchase_err(&e),
    }
}

/// A checkout the seller's relay at `relay_url` makes (`open_relay_checkout`): its URL. The ask
/// (a product the seller sells there, the app's metadata, the buyer's e-mail, a success URL) is
/// checked by the core before anything is sent.
pub(crate) fn open_relay(licensing: &Licensing, relay_url: &str, ask: &CheckoutAsk) -> Value {
    match licensing.client().open_relay_checkout(relay_url, ask) {
        Ok(url) => ok(json!(url)),
        Err(e) => purchase_err(&e),
    }
}

/// `buy`: the checkout followed until paid, the key bought found through the success URL's
/// session (when it carries one) and activated here with `label`.
pub(crate) fn buy(
    licensing: &Licensing,
    checkout: &str,
    success_url: Option<&str>,
    label: &str,
) -> Value {
    let session = success_url.and_then(session_from_success_url);
    if success_url.is_some() && session.is_none() {
        return err(&Error::invalid(
            "success_url",
            "carries no customer_session_token: pass the whole URL the browser landed on",
        ));
    }
    purchased(licensing, licensing.buy(checkout, session.as_ref(), label))
}

/// The rest of a purchase that ended with a sign-in, through the session `sign_in` remembered:
/// the receipt's parts as `buy` gave them.
pub(crate) fn buy_signed_in(
    licensing: &Licensing,
    receipt: (String, Option<String>, Option<i64>, Vec<String>),
    label: &str,
) -> Value {
    let (checkout_id, email, created_at, benefit_ids) = receipt;
    let receipt = Receipt::from_parts(&checkout_id, email, created_at, benefit_ids);
    match remembered_session(licensing) {
        Ok(session) => purchased(licensing, licensing.buy_signed_in(receipt, &session, label)),
        Err(e) => purchase_err(&PurchaseError::Portal(e)),
    }
}
