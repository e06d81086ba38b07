//! `buy` (issue #80): buying in the app from the command line. The checkout is opened (from a
//! link, or made by the seller's relay with the app's metadata) or taken as given, its URL printed to pay at, and the core's purchase machine follows it
//! ([`Licensing::buy`]: the checkout read until paid, the customer's keys listed through the
//! session Polar handed to the success URL, a key still being issued waited for); the key bought
//! is activated here and remembered, never printed whole. Without a session, the emailed code
//! (the `sign-in` path, pre-filled with the checkout's address). This module only renders.

use std::io::Write;

use crate::args::{BuyArgs, Global};
use crate::devices::{code_asked, plain_error, portal_failure};
use crate::output::{base_object, report, Op, Report};
use crate::run::licensing_with;
use polar_license::portal::PortalError;
use polar_license::purchase::{session_from_success_url, CheckoutAsk, PurchaseError, Receipt};
use polar_license::{Error, Licensing, Purchased};
use serde_json::json;

const COMMAND: &str = "buy";

/// A purchase's own failure: the core's sentence and step, `purchase_error` naming it, and the
/// exit code of contract §2 (a checkout that is not one: 2; one Polar ended: 1; not yet, or no
/// answer: 3). A portal step's failure is rendered as the portal commands render it.
fn purchase_failure(checkout: &str, e: &PurchaseError) -> Report {
    let exit = match e {
        PurchaseError::Portal(p) => return portal_failure(COMMAND, p),
        PurchaseError::CheckoutNotFound => 2,
        PurchaseError::CheckoutExpired | PurchaseError::CheckoutFailed => 1,
        _ => 3,
    };
    let outcome = if exit == 1 { "denied" } else { "error" };
    let message = e.message();
    let mut m = base_object(Some(COMMAND), outcome);
    m.insert("reason".into(), json!(null));
    m.insert("purchase_error".into(), json!(e.code()));
    m.insert("user_message".into(), json!(message.sentence()));
    m.insert("next_step".into(), json!(message.next_step()));
    m.insert("checkout".into(), json!(checkout));
    let mut lines = vec![
        format!("{outcome}: {} — {}", e.code(), message.sentence()),
        format!("  what to do: {}", message.next_step()),
    ];
    if matches!(e, PurchaseError::StillIssuing | PurchaseError::NotPaid) {
        lines.push(format!("  polar-license buy --checkout {checkout}"));
    }
    Report {
        json: m,
        lines,
        to_stderr: true,
        exit,
    }
}

/// A checkout made by the seller's relay (`--relay`, `--product`, `--meta`, `--email`): the
/// request is the core's ([`polar_license::purchase::CheckoutAsk`]).
fn relay_checkout(licensing: &Licensing, a: &BuyArgs) -> Result<String, PurchaseError> {
    let mut ask = CheckoutAsk::new(a.product.clone().unwrap_or_default());
    ask.metadata = a.meta.iter().cloned().collect();
    ask.customer_email.clone_from(&a.email);
    licensing
        .client()
        .open_relay_checkout(a.relay.as_deref().unwrap_or_default(), &ask)
}

/// The checkout's URL on stderr as soon as it is known (the buyer pays there while `buy`
/// follows it), whatever `--json` says: stdout keeps its one answer.
fn show_checkout(url: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "open this page to pay: {url}");
    let _ = err.flush();
}

/// `buy`: see the module's comment.
pub fn buy(g: &Global, a: &BuyArgs) -> Report {
    let licensing = match licensing_with(g, true) {
        Ok(l) => l,
        Err(e) => return plain_error(COMMAND, &e),
    };
    let checkout = match (&a.link, &a.checkout) {
        _ if a.relay.is_some() => match relay_checkout(&licensing, a) {
            Ok(url) => url,
            Err(e) => return purchase_failure(a.relay.as_deref().unwrap_or_default(), &e),
        },
        (Some(link), _) => match licensing
            .client()
            .open_checkout_link(link, a.email.as_deref())
        {
            Ok(url) => url,
            Err(e) => return purchase_failure(link, &e),
        },
        (None, Some(checkout)) => checkout.clone(),
        (None, None) => {
            return plain_error(
                COMMAND,
                &Error::invalid(
                    "checkout",
                    "is required: pass --link, --checkout or --relay",
                ),
            )
        }
    };
    show_checkout(&checkout);
    let session = a.success_url.as_deref().and_then(session_from_success_url);
    if a.success_url.is_some() && session.is_none() {
        return plain_error(
            COMMAND,
            &Error::invalid(
                "success_url",
                "carries no customer_session_token: pass the whole URL the browser landed on",
            ),
        );
    }
    let label = a
        .label
        .clone()
        .unwrap_or_else(polar_license::device_label::default_device_label);
    match licensing.buy(&checkout, session.as_ref(), &label) {
        Ok(Purchased::SignIn(receipt)) => signed_in(&licensing, a, &checkout, receipt, &label),
        Ok(purchased) => activated(&checkout, purchased),
        Err(e) => purchase_failure(&checkout, &e),
    }
}

/// No session came with the purchase: the code Polar emails to the checkout's address
/// (`--code`, else asked on the terminal, else the command stops once it is sent), then the
/// rest of the purchase through the session it opens.
fn signed_in(
    licensing: &Licensing,
    a: &BuyArgs,
    checkout: &str,
    receipt: Receipt,
    label: &str,
) -> Report {
    let mut code = a.code.clone();
    if code.is_none() {
        let Some(email) = receipt.email.clone() else {
            return plain_error(
                COMMAND,
                &Error::invalid("email", "the checkout names none to send the code to"),
            );
        };
        if let Err(e) = licensing.client().request_sign_in_code(&email) {
            return portal_failure(COMMAND, &e);
        }
        let said = polar_license::message::purchase_sign_in(Some(&email));
        {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{}", said.sentence());
            let _ = err.flush();
        }
        code = match code_asked() {
            Ok(c) => c,
            Err(e) => return plain_error(COMMAND, &e),
        };
        let Some(_) = code else {
            let mut m = base_object(Some(COMMAND), "done");
            m.insert("code_sent".into(), json!(true));
            m.insert("activated".into(), json!(false));
            m.insert("checkout".into(), json!(checkout));
            m.insert("user_message".into(), json!(said.sentence()));
            m.insert("next_step".into(), json!(said.next_step()));
            return Report::ok(
                m,
                vec![
                    format!("done: {}", said.sentence()),
                    format!("  what to do: {}", code_step(checkout)),
                ],
            );
        };
    }
    let Some(code) = code else {
        return plain_error(COMMAND, &Error::invalid("code", "is required"));
    };
    let session = match licensing.client().sign_in(&code) {
        Ok(s) => s,
        Err(e) => return portal_failure(COMMAND, &e),
    };
    match licensing.buy_signed_in(receipt, &session, label) {
        Ok(Purchased::SignIn(_)) => portal_failure(COMMAND, &PortalError::NotSignedIn),
        Ok(purchased) => activated(checkout, purchased),
        Err(e) => purchase_failure(checkout, &e),
    }
}

/// The key bought, activated: rendered as `activate --remember` renders it, the key shown by
/// Polar's display form only.
fn activated(checkout: &str, purchased: Purchased) -> Report {
    let Purchased::Activated { key, activated } = purchased else {
        return portal_failure(COMMAND, &PortalError::NotSignedIn);
    };
    let result = match activated.unremembered() {
        Some(e) => Err(e),
        None => activated.online.clone(),
    };
    let mut r = report(Op::Activate, &key.key, None, &result);
    crate::output::limit_steps(&mut r);
    r.json.insert("command".into(), json!(COMMAND));
    r.json.insert("checkout".into(), json!(checkout));
    r.json.insert("key_id".into(), json!(key.id));
    if let Some(license) = r.json.get_mut("license").and_then(|l| l.as_object_mut()) {
        license.insert("key".into(), json!(key.display_key));
    }
    if r.exit == 0 {
        r.json.insert("key_remembered".into(), json!(true));
        r.lines[0] = format!("done: bought and activated here ({})", key.display_key);
        r.lines.push(format!(
            "  {:<12} the key is remembered here: check needs no --key",
            "key"
        ));
    }
    r
}

/// The step of a purchase whose code was sent: the core's, naming this command line's way of
/// typing the code for `checkout`.
fn code_step(checkout: &str) -> String {
    let code = format!("polar-license buy --checkout {checkout} --code CODE");
    polar_license::portal::Steps {
        code: &code,
        ..crate::output::steps(false)
    }
    .type_code()
}
