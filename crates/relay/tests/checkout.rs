//! Checkouts made through the seller's relay (issue #80, `POST /v1/checkouts/create`): the app
//! names a product the seller allows and sends its metadata; the relay makes the checkout with
//! the seller's token (Polar's `POST /v1/checkouts/`) and answers its `url` and
//! `client_secret`, which the core's purchase machine follows to the key. Over loopback:
//! `relay serve`'s server in front of the emulator, the relay's calls to Polar counted and
//! recorded. A product the seller did not allow, a price or anything else of the checkout, a
//! body too large, metadata past Polar's limits and a success URL elsewhere cost no call; the
//! per-IP limit and the token's budget hold; and a checkout made here, paid in the emulator,
//! ends with the native client licensed and no key typed.

mod rig;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use polar_license::portal::{PortalRequest, SessionToken};
use polar_license::purchase::{client_secret_of, CheckoutAsk};
use polar_license::{
    HttpRequest, HttpResponse, MachineBinding, MetaValue, Purchased, Transport, TransportError,
    UreqTransport,
};
use polar_license_emulator::{Emulator, DEMO_ORGANIZATION_ID, DEMO_PRODUCT_ID};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{
    serve_with, CheckoutOptions, Rate, Relay, RelayConfig, Running, ServeOptions, CHECKOUT_ROUTE,
};
use polar_license_testkit::http::raw_exchange;
use polar_license_testkit::{licensing_builder, shop_issuing_after, ScratchDir};
use serde_json::{json, Value};

/// A product of the seller's that the relay does not sell.
const OTHER_PRODUCT: &str = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e";

/// The relay's calls to Polar: each one's URL and JSON body, in order.
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// The bodies of the relay's calls to Polar, kept in order.
struct Recording {
    inner: UreqTransport,
    calls: Calls,
}

impl Transport for Recording {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let body = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        self.calls
            .lock()
            .expect("calls")
            .push((request.url.clone(), body));
        self.inner.send(request)
    }

    fn send_portal(&self, request: &PortalRequest) -> Result<HttpResponse, TransportError> {
        self.calls
            .lock()
            .expect("calls")
            .push((request.url.clone(), Value::Null));
        self.inner.send_portal(request)
    }
}

/// A relay in front of `polar` selling the demo product, `config` adjusted by `adjust`,
/// served; and its recorded calls.
fn relay_with(polar: &Emulator, adjust: impl FnOnce(&mut RelayConfig)) -> (Running, Calls) {
    let mut config = rig::config(polar.url(), "checkout-test");
    config.limits = rig::unlimited();
    adjust(&mut config);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let upstream = Recording {
        inner: rig::upstream(Duration::from_secs(5)),
        calls: Arc::clone(&calls),
    };
    let relay = Relay::from(rig::relay(config, upstream))
        .with_checkouts(CheckoutOptions {
            products: vec![DEMO_PRODUCT_ID.to_uppercase()],
            success_origins: vec!["https://app.example.com".into()],
        })
        .expect("the options");
    let running =
        serve_with(Arc::new(relay), "127.0.0.1:0", ServeOptions::default()).expect("it listens");
    (running, calls)
}

fn relay(polar: &Emulator) -> (Running, Calls) {
    relay_with(polar, |_| {})
}

/// `body` posted to the relay's checkout route: the status and the JSON answer.
fn ask(relay: &Running, body: &str) -> (u16, Value) {
    let url = format!("{}{CHECKOUT_ROUTE}", relay.url());
    let answer = rig::post_with(&rig::agent(Duration::from_secs(10)), &url, body, &[]);
    let json = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    (answer.status, json)
}

fn calls(recorded: &Mutex<Vec<(String, Value)>>) -> usize {
    recorded.lock().expect("calls").len()
}

#[test]
fn checkout_made_for_an_allowed_product_carries_the_app_s_metadata_in_one_call() {
    let polar = shop_issuing_after(0);
    let (relay, recorded) = relay(&polar);
    let body = json!({
        "product_id": DEMO_PRODUCT_ID,
        "metadata": {"app_version": "1.4.2", "platform": "linux", "seats": 3},
        "customer_email": "new.buyer@example.com",
        "success_url": "https://app.example.com/thanks?checkout={CHECKOUT_ID}",
    });
    let (status, made) = ask(&relay, &body.to_string());
    assert_eq!(status, 201, "{made}");
    let secret = made["client_secret"].as_str().expect("a client secret");
    assert!(secret.starts_with("polar_c_"), "{made}");
    let url = made["url"].as_str().expect("a url");
    assert_eq!(client_secret_of(url).expect("a checkout url"), secret);
    // One call of Polar's, the seller's checkout with the app's metadata and nothing more.
    let calls = recorded.lock().expect("calls").clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (called, sent) = &calls[0];
    assert!(called.ends_with("/v1/checkouts/"), "{called}");
    assert_eq!(
        sent,
        &json!({
            "products": [DEMO_PRODUCT_ID],
            "metadata": {"app_version": "1.4.2", "platform": "linux", "seats": 3},
            "customer_email": "new.buyer@example.com",
            "success_url": "https://app.example.com/thanks?checkout={CHECKOUT_ID}",
        })
    );
    // The checkout is Polar's, open, prefilled: the purchase machine reads it by its secret.
    let read = raw_exchange(
        polar.port(),
        &format!(
            "GET /v1/checkouts/client/{secret} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(read.json()["status"], "open");
    assert_eq!(read.json()["customer_email"], "new.buyer@example.com");
    assert_eq!(read.json()["product_id"], DEMO_PRODUCT_ID);
}

#[test]
fn checkout_of_a_product_not_allowed_or_a_price_of_the_client_s_costs_no_call() {
    let polar = shop_issuing_after(0);
    let (relay, recorded) = relay(&polar);
    let (status, why) = ask(&relay, &json!({"product_id": OTHER_PRODUCT}).to_string());
    assert_eq!(status, 403, "{why}");
    assert_eq!(why["error"], "CheckoutProductNotAllowed");
    // What a client may not choose: the price, a discount, another product by Polar's own
    // field, the product list.
    for body in [
        json!({"product_id": DEMO_PRODUCT_ID, "amount": 0}),
        json!({"product_id": DEMO_PRODUCT_ID, "prices": {DEMO_PRODUCT_ID: [{"amount_type": "free"}]}}),
        json!({"product_id": DEMO_PRODUCT_ID, "discount_id": OTHER_PRODUCT}),
        json!({"products": [OTHER_PRODUCT, DEMO_PRODUCT_ID]}),
    ] {
        let (status, why) = ask(&relay, &body.to_string());
        assert_eq!(status, 422, "{body}: {why}");
        assert_eq!(why["error"], "InvalidCheckoutRequest", "{body}");
    }
    // A success URL off the seller's origins: a phishing page after paying.
    for url in [
        "https://evil.test/",
        "https://app.example.com.evil.test/",
        "https://app.example.com@evil.test/",
    ] {
        let body = json!({"product_id": DEMO_PRODUCT_ID, "success_url": url});
        let (status, why) = ask(&relay, &body.to_string());
        assert_eq!(status, 403, "{url}: {why}");
        assert_eq!(why["error"], "CheckoutOriginNotAllowed");
    }
    assert_eq!(calls(&recorded), 0, "no request reached Polar");
}

#[test]
fn checkout_body_too_large_or_metadata_past_polar_s_limits_costs_no_call() {
    let polar = shop_issuing_after(0);
    let (relay, recorded) = relay(&polar);
    // Past the route's 4 KiB (under the relay's own 64 KiB cap).
    let big = json!({"product_id": DEMO_PRODUCT_ID, "metadata": {"note": "x".repeat(450)}, "customer_email": format!("{}@example.com", "a".repeat(4_000))});
    let (status, _) = ask(&relay, &big.to_string());
    assert_eq!(status, 413);
    let many: serde_json::Map<String, Value> =
        (0..51).map(|n| (format!("k{n}"), json!(n))).collect();
    for metadata in [
        Value::Object(many),
        json!({"a": "x".repeat(501)}),
        json!({"k".repeat(41): 1}),
        json!({"nested": {"a": 1}}),
        json!({"empty": ""}),
        json!(["not", "an", "object"]),
    ] {
        let body = json!({"product_id": DEMO_PRODUCT_ID, "metadata": metadata});
        let (status, why) = ask(&relay, &body.to_string());
        assert_eq!(status, 422, "{metadata}: {why}");
        assert_eq!(why["error"], "InvalidCheckoutRequest");
    }
    for body in ["not json", "[]", r#"{"product_id":"not-a-uuid"}"#] {
        assert_eq!(ask(&relay, body).0, 422, "{body}");
    }
    assert_eq!(calls(&recorded), 0, "no request reached Polar");
}

#[test]
fn checkout_requests_are_held_by_the_per_ip_limit_and_the_token_s_budget() {
    let polar = shop_issuing_after(0);
    let body = json!({"product_id": DEMO_PRODUCT_ID}).to_string();
    // The per-IP limit: a burst of 2, then one a second (the requests come faster).
    let (relay, recorded) = relay_with(&polar, |c| {
        c.limits = rig::limits(Rate::new(1, 2), Rate::new(0, 0));
    });
    let statuses: Vec<u16> = (0..6).map(|_| ask(&relay, &body).0).collect();
    let made = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(statuses[..2], [201, 201], "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 3,
        "{statuses:?}"
    );
    assert_eq!(calls(&recorded), made, "a refused request costs no call");
    drop(relay);
    // The token's budget (with a store): 8 calls a window, of which checkouts take at most
    // half: the fifth is refused by the relay, and a key never seen is still validated.
    let mut options = StoreOptions::default();
    options.budget = 8;
    options.reserve = 0;
    // No roster: its background pages would share the budget with the checkouts.
    options.roster = false;
    let (relay, recorded) = relay_with(&polar, |c| {
        c.store = rig::store(rig::memory(100), options, None);
    });
    let statuses: Vec<u16> = (0..6).map(|_| ask(&relay, &body).0).collect();
    assert_eq!(statuses, [201, 201, 201, 201, 429, 429]);
    assert_eq!(calls(&recorded), 4, "never past half the budget");
    let validate = format!("{}/v1/customer-portal/license-keys/validate", relay.url());
    let key =
        json!({"key": polar_license_emulator::DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID});
    let answer = rig::post_with(
        &rig::agent(Duration::from_secs(10)),
        &validate,
        &key.to_string(),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[test]
fn checkout_route_is_off_until_the_seller_allows_a_product() {
    let polar = shop_issuing_after(0);
    let config = rig::config(polar.url(), "checkout-off");
    let off = rig::listen_with(config, ServeOptions::default());
    let (status, _) = ask(&off, &json!({"product_id": DEMO_PRODUCT_ID}).to_string());
    assert_eq!(
        status, 404,
        "no product allowed: the route is an unknown path"
    );
    // Options that name no product by its id, or an origin with a path, are refused.
    let relay = || {
        Relay::from(rig::relay(
            rig::config(polar.url(), "x"),
            rig::upstream(Duration::from_secs(1)),
        ))
    };
    for bad in [
        CheckoutOptions {
            products: vec!["pro-plan".into()],
            ..CheckoutOptions::default()
        },
        CheckoutOptions {
            products: vec![DEMO_PRODUCT_ID.into()],
            success_origins: vec!["https://app.example.com/thanks".into()],
        },
    ] {
        assert!(relay().with_checkouts(bad).is_err());
    }
}

#[test]
fn checkout_made_by_the_relay_and_paid_licenses_the_native_client_with_no_key_typed() {
    let polar = shop_issuing_after(0);
    let (relay, recorded) = relay(&polar);
    let dir = ScratchDir::new("relay-checkout");
    let app = licensing_builder(&polar, dir.path(), MachineBinding::Id("buyer".into()))
        .remember_keys(true)
        .build()
        .expect("licensing");
    let mut ask = CheckoutAsk::new(DEMO_PRODUCT_ID);
    ask.metadata
        .insert("app_version".into(), MetaValue::Str("1.4.2".into()));
    ask.customer_email = Some("relay.buyer@example.com".into());
    let relay_url = relay.url();
    let url = app
        .client()
        .open_relay_checkout(&relay_url, &ask)
        .expect("a checkout made by the relay");
    assert_eq!(calls(&recorded), 1);
    // The buyer pays on Polar's page: the confirmation hands back a customer session.
    let secret = client_secret_of(&url).expect("a checkout url");
    let confirm = r#"{"customer_email":"relay.buyer@example.com"}"#;
    let paid = raw_exchange(
        polar.port(),
        &format!(
            "POST /v1/checkouts/client/{secret}/confirm HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{confirm}",
            confirm.len()
        ),
    );
    assert_eq!(paid.status, 200, "{}", paid.text());
    let token = paid.json()["customer_session_token"]
        .as_str()
        .map(SessionToken::new)
        .expect("a new buyer gets a session token");
    let purchased = app.buy(&url, Some(&token), "laptop").expect("bought");
    let Purchased::Activated { key, activated } = purchased else {
        panic!("the purchase activated nothing: {purchased:?}")
    };
    assert!(activated
        .online
        .as_ref()
        .expect("activate answered")
        .is_accepted());
    assert_eq!(
        app.remembered_key()
            .expect("store")
            .map(|k| k.expose().to_string()),
        Some(key.key.expose().to_string()),
        "the key bought is remembered: nothing to type"
    );
    assert!(app.check(key.key.clone()).is_licensed());
    // The relay made one call for the whole purchase: the rest is the client's and Polar's.
    assert_eq!(calls(&recorded), 1);
}

/// Polar's 429 to a checkout blocks the token's calls as a license call's 429 does: the next
/// checkout is refused by the relay itself (`429`, no call), not sent into Polar's block.
#[test]
fn polar_s_429_to_a_checkout_blocks_the_next_call_in_the_relay() {
    // The seller's token: one call a window at Polar.
    let polar = rig::budgeted_emulator(1);
    let body = json!({"product_id": DEMO_PRODUCT_ID}).to_string();
    let mut options = StoreOptions::default();
    options.roster = false;
    let (relay, recorded) = relay_with(&polar, |c| {
        c.store = rig::store(rig::memory(100), options, None);
    });
    let statuses: Vec<u16> = (0..4).map(|_| ask(&relay, &body).0).collect();
    assert_eq!(statuses, [201, 429, 429, 429]);
    assert_eq!(calls(&recorded), 2, "no call after Polar's 429");
}
