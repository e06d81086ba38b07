//! Checkouts over raw HTTP on loopback (issue #80, docs/polar-api.md §20): made with an
//! organization token or from a checkout link, read and confirmed by the client secret, the
//! customer-session token of a confirmation (none for a buyer matched by email), and the
//! order's key issued after the configured delay (absent from the customer's keys until then).

use polar_license_emulator::{
    Emulator, Options, Seed, DEMO_BENEFIT_ID, DEMO_CHECKOUT_LINK, DEMO_CUSTOMER_ID,
    DEMO_PRODUCT_ID, DEMO_TOKEN, DEMO_TOKEN_READ_ONLY,
};
use polar_license_testkit::http::HttpAnswer;

mod common;
use serde_json::{json, Value};

const NEW_BUYER: &str = "new.buyer@example.com";
const KNOWN_BUYER: &str = "jane.doe@gmail.com";

use common::{assert_error, raw_post as post, raw_request as request};

fn get(em: &Emulator, path: &str) -> HttpAnswer {
    request(em, "GET", path, None, &[])
}

fn get_as(em: &Emulator, path: &str, token: &str) -> HttpAnswer {
    let auth = format!("Bearer {token}");
    request(em, "GET", path, None, &[("Authorization", &auth)])
}

fn demo() -> Emulator {
    Emulator::start(Seed::demo(), Options::default()).expect("emulator starts")
}

/// A checkout made with the demo token: its client secret.
fn created(em: &Emulator, body: &Value) -> String {
    let auth = format!("Bearer {DEMO_TOKEN}");
    let r = request(
        em,
        "POST",
        "/v1/checkouts/",
        Some(&body.to_string()),
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["client_secret"]
        .as_str()
        .expect("client_secret")
        .to_string()
}

fn client(secret: &str) -> String {
    format!("/v1/checkouts/client/{secret}")
}

fn confirm(em: &Emulator, secret: &str, body: &Value) -> HttpAnswer {
    post(em, &format!("/v1/checkouts/client/{secret}/confirm"), body)
}

fn set_delay(em: &Emulator, ms: u64) {
    let r = post(
        em,
        "/__emulator/checkouts",
        &json!({"key_issue_delay_ms": ms}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
}

fn portal_keys(em: &Emulator, token: &str) -> Vec<Value> {
    let r = get_as(em, "/v1/customer-portal/license-keys/", token);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["items"].as_array().expect("items").clone()
}

#[test]
fn an_organization_token_creates_a_checkout_that_its_client_secret_reads() {
    let em = demo();
    let auth = format!("Bearer {DEMO_TOKEN}");
    let body = json!({"products": [DEMO_PRODUCT_ID], "metadata": {"app": "demo"}});
    let r = request(
        &em,
        "POST",
        "/v1/checkouts/",
        Some(&body.to_string()),
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let made = r.json();
    assert_eq!(made["status"], "open");
    assert_eq!(made["metadata"], json!({"app": "demo"}));
    assert_eq!(made["product_id"], DEMO_PRODUCT_ID);
    let secret = made["client_secret"].as_str().expect("secret");
    assert!(secret.starts_with("polar_c_"), "{secret}");
    assert_eq!(secret.len(), "polar_c_".len() + 37);
    assert!(made["url"]
        .as_str()
        .expect("url")
        .ends_with(&format!("/checkout/{secret}")));
    assert!(made["success_url"]
        .as_str()
        .expect("success_url")
        .ends_with(&format!("/checkout/{secret}/confirmation")));

    // The public read: `CheckoutPublic`, no metadata, never a session token.
    let read = get(&em, &client(secret));
    assert_eq!(read.status, 200, "{}", read.text());
    let read = read.json();
    assert_eq!(read["id"], made["id"]);
    assert_eq!(read["status"], "open");
    assert!(read.get("metadata").is_none());
    assert!(read.get("customer_session_token").is_none());

    // Scope `checkouts:write`; none: 401.
    let r = request(&em, "POST", "/v1/checkouts/", Some(&body.to_string()), &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    let read_only = format!("Bearer {DEMO_TOKEN_READ_ONLY}");
    let r = request(
        &em,
        "POST",
        "/v1/checkouts/",
        Some(&body.to_string()),
        &[("Authorization", &read_only)],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // An unknown product: Polar's own 422.
    let r = request(
        &em,
        "POST",
        "/v1/checkouts/",
        Some(&json!({"products": ["21bf892b-2e46-4f50-8060-8fdaf02aa482"]}).to_string()),
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"], "PolarRequestValidationError");
    // An unknown client secret: 404.
    let r = get(&em, &client("polar_c_nope"));
    assert_error(&r, 404, "ResourceNotFound", "Not found");
    em.stop();
}

#[test]
fn a_checkout_link_redirects_to_a_new_checkout_with_the_email_prefilled() {
    let em = demo();
    let r = get(
        &em,
        &format!("/v1/checkout-links/{DEMO_CHECKOUT_LINK}/redirect?customer_email=new.buyer%40example.com"),
    );
    assert_eq!(r.status, 307, "{}", r.text());
    let location = r.header("location").expect("location").to_string();
    let secret = location
        .rsplit_once("/checkout/")
        .map(|(_, s)| s.to_string())
        .expect("a checkout url");
    assert!(secret.starts_with("polar_c_"), "{location}");
    let read = get(&em, &client(&secret)).json();
    assert_eq!(read["status"], "open");
    assert_eq!(read["customer_email"], NEW_BUYER);
    assert_eq!(read["product_id"], DEMO_PRODUCT_ID);
    // Each visit opens a checkout of its own.
    let again = get(
        &em,
        &format!("/v1/checkout-links/{DEMO_CHECKOUT_LINK}/redirect"),
    );
    assert_ne!(again.header("location"), Some(location.as_str()));
    let r = get(&em, "/v1/checkout-links/polar_cl_unknown/redirect");
    assert_eq!(r.status, 404, "{}", r.text());
    em.stop();
}

#[test]
fn a_new_buyer_gets_a_session_token_that_lists_the_key_once_it_is_issued() {
    let em = demo();
    set_delay(&em, 60_000);
    let secret = created(&em, &json!({"products": [DEMO_PRODUCT_ID]}));
    let r = confirm(&em, &secret, &json!({"customer_email": NEW_BUYER}));
    assert_eq!(r.status, 200, "{}", r.text());
    let confirmed = r.json();
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["customer_email"], NEW_BUYER);
    let token = confirmed["customer_session_token"]
        .as_str()
        .expect("a new customer's confirmation carries a session token")
        .to_string();
    assert!(token.starts_with("polar_cst_"), "{token}");
    // Paid: the order follows the confirmation.
    assert_eq!(get(&em, &client(&secret)).json()["status"], "succeeded");
    // The key is granted in the background: not yet among the customer's keys.
    assert_eq!(portal_keys(&em, &token), Vec::<Value>::new());
    let listed = get(&em, "/__emulator/checkouts").json();
    assert_eq!(listed["checkouts"][0]["key_pending"], true);
    assert_eq!(listed["key_issue_delay_ms"], 60_000);
    // A minute later (the emulator's clock), it is.
    em.set_clock_offset(61);
    let keys = portal_keys(&em, &token);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["status"], "granted");
    assert_eq!(keys[0]["benefit_id"], DEMO_BENEFIT_ID);
    assert_eq!(keys[0]["limit_activations"], 3);
    assert_eq!(keys[0]["customer"]["email"], NEW_BUYER);
    // The key is a real one: it validates.
    let key = keys[0]["key"].as_str().expect("key");
    let r = post(
        &em,
        "/v1/customer-portal/license-keys/validate",
        &json!({"key": key, "organization_id": em.organization_id()}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    em.stop();
}

#[test]
fn a_buyer_matched_by_email_gets_no_session_token_and_the_key_goes_to_that_customer() {
    let em = demo();
    let link = get(
        &em,
        &format!("/v1/checkout-links/{DEMO_CHECKOUT_LINK}/redirect"),
    );
    let location = link.header("location").expect("location").to_string();
    let (_, secret) = location.rsplit_once("/checkout/").expect("url");
    let r = confirm(&em, secret, &json!({"customer_email": KNOWN_BUYER}));
    assert_eq!(r.status, 200, "{}", r.text());
    let confirmed = r.json();
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["customer_session_token"], Value::Null);
    assert_eq!(confirmed["customer_id"], DEMO_CUSTOMER_ID);
    // No delay set: the key is the existing customer's at once (the email code finds it).
    let r = post(
        &em,
        "/v1/customer-portal/customer-session/request",
        &json!({"email": KNOWN_BUYER, "organization_id": em.organization_id()}),
    );
    assert_eq!(r.status, 202);
    let code = em.customer_session_codes()[0]["code"]
        .as_str()
        .expect("code")
        .to_string();
    let r = post(
        &em,
        "/v1/customer-portal/customer-session/authenticate",
        &json!({"code": code}),
    );
    let token = r.json()["token"].as_str().expect("token").to_string();
    let keys = portal_keys(&em, &token);
    let demo_keys = Seed::demo().license_keys.len();
    assert_eq!(
        keys.len(),
        demo_keys + 1,
        "the bought key joins the customer's"
    );
    em.stop();
}

#[test]
fn confirm_refuses_a_second_time_a_missing_email_and_an_expired_checkout() {
    let em = demo();
    let secret = created(&em, &json!({"product_id": DEMO_PRODUCT_ID}));
    let r = confirm(&em, &secret, &json!({}));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"], "PolarRequestValidationError");
    assert_eq!(
        r.json()["detail"][0]["loc"],
        json!(["body", "customer_email"])
    );
    let r = confirm(&em, &secret, &json!({"customer_email": "not an email"}));
    assert_eq!(r.status, 422, "{}", r.text());

    assert_eq!(
        confirm(&em, &secret, &json!({"customer_email": NEW_BUYER})).status,
        200
    );
    let r = confirm(&em, &secret, &json!({"customer_email": NEW_BUYER}));
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "NotOpenCheckout");
    assert!(r.json()["detail"]
        .as_str()
        .expect("detail")
        .ends_with("is not open: succeeded"));

    let open = created(&em, &json!({"products": [DEMO_PRODUCT_ID]}));
    em.set_clock_offset(24 * 3600 + 1);
    for r in [
        get(&em, &client(&open)),
        confirm(&em, &open, &json!({"customer_email": NEW_BUYER})),
    ] {
        assert_error(
            &r,
            410,
            "ExpiredCheckoutError",
            "This checkout session has expired.",
        );
    }
    let r = post(
        &em,
        "/__emulator/checkouts",
        &json!({"key_issue_delay_ms": -1}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    em.stop();
}

#[test]
fn the_seed_sets_the_delay_and_refuses_a_link_to_an_unknown_product() {
    let mut seed = Seed::demo();
    seed.key_issue_delay_ms = Some(1500);
    let em = Emulator::start(seed, Options::default()).expect("starts");
    assert_eq!(
        get(&em, "/__emulator/checkouts").json()["key_issue_delay_ms"],
        1500
    );
    em.stop();
    let text = json!({
        "organization_id": polar_license_emulator::DEMO_ORGANIZATION_ID,
        "checkout_links": [{"client_secret": "polar_cl_x", "product_id": DEMO_PRODUCT_ID}],
    })
    .to_string();
    let refused = Seed::from_json(&text).expect_err("a link to no product");
    assert!(
        refused.contains("not among the seed's products"),
        "{refused}"
    );
}
