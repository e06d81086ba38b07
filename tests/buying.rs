//! Buying in the app, native (issue #80): a checkout opened from a link, paid in the "browser"
//! (the test confirms it as Polar's hosted page would), followed by the core's purchase machine
//! and its key activated here, with no key typed: with the customer-session token the
//! confirmation handed back, and without one (a buyer Polar matched by email: the emailed
//! code). The key is issued after a delay, so it is missing at first and is waited for.
#![cfg(not(target_arch = "wasm32"))]

use std::time::{Duration, Instant};

use polar_license::portal::SessionToken;
use polar_license::purchase::{client_secret_of, PurchaseError};
use polar_license::{Licensing, MachineBinding, Purchased};
use polar_license_emulator::{Emulator, Seed, DEMO_CHECKOUT_LINK};
use polar_license_testkit::http::raw_exchange;
use polar_license_testkit::{licensing_builder, shop_issuing_after, ScratchDir};

const NEW_BUYER: &str = "new.buyer@example.com";
const KNOWN_BUYER: &str = "jane.doe@gmail.com";

fn app(polar: &Emulator, dir: &ScratchDir) -> Licensing {
    licensing_builder(
        polar,
        dir.path(),
        MachineBinding::Id("buyer-machine".into()),
    )
    .remember_keys(true)
    .build()
    .expect("licensing")
}

/// The buyer pays on Polar's page: the checkout confirmed with `email`, and the session token
/// Polar's answer carries (null for a buyer matched by email).
fn pay(polar: &Emulator, checkout_url: &str, email: &str) -> Option<SessionToken> {
    let secret = client_secret_of(checkout_url).expect("a checkout url");
    let body = format!(r#"{{"customer_email":"{email}"}}"#);
    let text = format!(
        "POST /v1/checkouts/client/{secret}/confirm HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw_exchange(polar.port(), &text);
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["customer_session_token"]
        .as_str()
        .map(SessionToken::new)
}

/// The key a purchase activated, checked licensed and remembered.
fn licensed(app: &Licensing, purchased: Purchased) -> String {
    let Purchased::Activated { key, activated } = purchased else {
        panic!("the purchase activated nothing: {purchased:?}")
    };
    let verdict = activated.online.as_ref().expect("activate answered");
    assert!(verdict.is_accepted(), "{verdict:?}");
    assert_eq!(
        app.remembered_key()
            .expect("store")
            .map(|k| k.expose().to_string()),
        Some(key.key.expose().to_string()),
        "the key bought is remembered: nothing to type later"
    );
    assert!(app.check(key.key.clone()).is_licensed());
    key.key.expose().to_string()
}

#[test]
fn a_purchase_with_a_session_token_unlocks_with_no_key_typed_once_polar_issued_the_key() {
    let polar = shop_issuing_after(1_500);
    let dir = ScratchDir::new("buying-session");
    let app = app(&polar, &dir);
    let url = app
        .client()
        .open_checkout_link(DEMO_CHECKOUT_LINK, Some(NEW_BUYER))
        .expect("a checkout");
    let token = pay(&polar, &url, NEW_BUYER).expect("a new buyer gets a session token");
    let began = Instant::now();
    let purchased = app.buy(&url, Some(&token), "laptop").expect("bought");
    // The key was missing for 1.5 s after paying (Polar still issuing it): waited for, not
    // refused.
    assert!(
        began.elapsed() >= Duration::from_millis(1_400),
        "{:?}",
        began.elapsed()
    );
    let key = licensed(&app, purchased);
    assert_eq!(polar.activations(&key).len(), 1);
    polar.stop();
}

#[test]
fn a_purchase_without_a_session_token_unlocks_through_the_emailed_code() {
    let polar = shop_issuing_after(0);
    let dir = ScratchDir::new("buying-code");
    let app = app(&polar, &dir);
    let url = app
        .client()
        .open_checkout_link(DEMO_CHECKOUT_LINK, None)
        .expect("a checkout");
    // The app follows the checkout while the buyer is still paying.
    let paid = std::thread::scope(|s| {
        let buyer = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1_000));
            pay(&polar, &url, KNOWN_BUYER)
        });
        let followed = app.buy(&url, None, "laptop");
        assert_eq!(
            buyer.join().expect("buyer"),
            None,
            "matched by email: no token"
        );
        followed
    });
    let Ok(Purchased::SignIn(receipt)) = paid else {
        panic!("no session, so a sign-in: {paid:?}")
    };
    assert_eq!(receipt.email.as_deref(), Some(KNOWN_BUYER));
    // The existing path, pre-filled with the checkout's address.
    app.client()
        .request_sign_in_code(receipt.email.as_deref().expect("email"))
        .expect("code sent");
    let code = polar.customer_session_codes()[0]["code"]
        .as_str()
        .expect("code")
        .to_string();
    let session = app.client().sign_in(&code).expect("signed in");
    let purchased = app
        .buy_signed_in(receipt, &session, "laptop")
        .expect("bought");
    let key = licensed(&app, purchased);
    // The key bought, not one of the customer's older ones.
    assert!(Seed::demo().license_keys.iter().all(|k| k.key != key));
    polar.stop();
}

#[test]
fn an_expired_checkout_is_said_as_such() {
    let polar = shop_issuing_after(0);
    let dir = ScratchDir::new("buying-expired");
    let app = app(&polar, &dir);
    let url = app
        .client()
        .open_checkout_link(DEMO_CHECKOUT_LINK, None)
        .expect("a checkout");
    polar.set_clock_offset(25 * 3600);
    let e = app.buy(&url, None, "laptop").expect_err("expired");
    assert_eq!(e, PurchaseError::CheckoutExpired);
    assert_eq!(
        e.message().text(),
        "This checkout expired before it was paid: start the purchase again."
    );
    polar.stop();
}
