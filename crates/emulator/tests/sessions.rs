//! Customer sessions and the routes they open, over raw HTTP on loopback, against the exact
//! statuses, headers and bodies of docs/polar-api.md §16.0–§16.3.

use polar_license_emulator::{
    Core, Emulator, Options, Request, Seed, SeedBenefit, SeedKey, Time, DEMO_BENEFIT_ID,
    DEMO_CUSTOMER_ID, DEMO_KEY, DEMO_KEY_DISABLED, DEMO_KEY_REVOKED, DEMO_ORGANIZATION_ID,
    DEMO_TOKEN, DEMO_TOKEN_READ_ONLY,
};
use polar_license_testkit::http::HttpAnswer;

mod common;
use serde_json::{json, Value};

const ORG: &str = DEMO_ORGANIZATION_ID;
const EMAIL: &str = "jane.doe@gmail.com";
const REQUEST: &str = "/v1/customer-portal/customer-session/request";
const AUTHENTICATE: &str = "/v1/customer-portal/customer-session/authenticate";
const SESSIONS: &str = "/v1/customer-sessions/";
const PORTAL_KEYS: &str = "/v1/customer-portal/license-keys/";
const OTHER_V4: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";
const INVALID_TOKEN: &str =
    "The access token provided is expired, revoked, malformed, or invalid for other reasons.";

// ---- a raw HTTP client ---------------------------------------------------------------------

use common::{assert_error, demo_with, key_id, raw_post as post, raw_request as request};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn get_as(em: &Emulator, path: &str, token: &str) -> HttpAnswer {
    request(em, "GET", path, None, &[("Authorization", &bearer(token))])
}

fn post_as(em: &Emulator, path: &str, body: Option<&Value>, token: &str) -> HttpAnswer {
    let body = body.map(Value::to_string);
    request(
        em,
        "POST",
        path,
        body.as_deref(),
        &[("Authorization", &bearer(token))],
    )
}

fn demo() -> Emulator {
    Emulator::start(Seed::demo(), Options::default()).expect("emulator starts")
}

/// The live codes, as the control route lists them.
fn codes(em: &Emulator) -> Vec<Value> {
    let r = request(em, "GET", "/__emulator/customer-session/codes", None, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = r.json()["codes"].as_array().expect("codes").clone();
    assert_eq!(listed, em.customer_session_codes());
    listed
}

fn ask_code(em: &Emulator, email: &str) -> HttpAnswer {
    post(
        em,
        REQUEST,
        &json!({"email": email, "organization_id": ORG}),
    )
}

/// A new code for `EMAIL`, read from the control route.
fn new_code(em: &Emulator) -> String {
    let r = ask_code(em, EMAIL);
    assert_eq!(r.status, 202, "{}", r.text());
    let all = codes(em);
    all.last().expect("a code")["code"]
        .as_str()
        .expect("code")
        .to_string()
}

/// A session token by email code.
fn sign_in(em: &Emulator) -> String {
    let code = new_code(em);
    let r = post(em, AUTHENTICATE, &json!({"code": code}));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["token"].as_str().expect("token").to_string()
}

fn assert_unauthorized(r: &HttpAnswer) {
    assert_error(r, 401, "Unauthorized", "Unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"polar\""));
}

fn assert_invalid_token(r: &HttpAnswer) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"error": "invalid_token", "error_description": INVALID_TOKEN})
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer realm=\"polar\", error=\"invalid_token\", error_description=\"{INVALID_TOKEN}\"").as_str())
    );
}

/// zlib's CRC-32, written here again so the token's checksum is checked independently.
fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for b in data {
        crc = table[((crc ^ u32::from(*b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// `polar_cst_` + 37 `[A-Za-z0-9]` + the base-62 CRC-32 of those 37 (6 characters).
fn assert_session_token(token: &str) {
    let rest = token.strip_prefix("polar_cst_").expect("polar_cst_ prefix");
    assert_eq!(rest.len(), 43, "{token}");
    assert!(rest.bytes().all(|b| b.is_ascii_alphanumeric()), "{token}");
    let (random, checksum) = rest.split_at(37);
    let digits = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let value = checksum.bytes().fold(0u64, |n, c| {
        n * 62 + digits.iter().position(|d| *d == c).expect("base62") as u64
    });
    assert_eq!(value, u64::from(crc32(random.as_bytes())), "{token}");
}

/// Each `"name":` appears in `text`, the first occurrences in this order.
fn assert_in_order(text: &str, names: &[&str]) {
    let at: Vec<usize> = names
        .iter()
        .map(|n| {
            text.find(&format!("\"{n}\":"))
                .unwrap_or_else(|| panic!("{n} in {text}"))
        })
        .collect();
    let mut sorted = at.clone();
    sorted.sort_unstable();
    assert_eq!(at, sorted, "{names:?} in {text}");
}

/// The demo seed with the demo benefit's device management off.
fn seed_without_admin() -> Seed {
    Seed {
        benefits: Vec::new(),
        ..Seed::demo()
    }
}

// ---- §16.1 (a): the email code -------------------------------------------------------------

#[test]
fn request_answers_202_null_and_makes_a_code_only_for_a_known_customer() {
    let em = demo();
    let r = ask_code(&em, EMAIL);
    assert_eq!(r.status, 202);
    assert_eq!(r.text(), "null");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let listed = codes(&em);
    assert_eq!(listed.len(), 1);
    let code = listed[0]["code"].as_str().expect("code");
    assert_eq!(code.len(), 6);
    assert!(code
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    assert_eq!(listed[0]["email"], EMAIL);
    assert_eq!(listed[0]["customer_id"], DEMO_CUSTOMER_ID);
    assert_eq!(listed[0]["organization_id"], ORG);
    // No enumeration: an unknown email or organization is the same 202, and no code.
    for body in [
        json!({"email": "nobody@example.com", "organization_id": ORG}),
        json!({"email": EMAIL, "organization_id": OTHER_V4}),
    ] {
        let r = post(&em, REQUEST, &body);
        assert_eq!((r.status, r.text()), (202, "null".to_string()));
    }
    assert_eq!(codes(&em).len(), 1);
    // The email is matched without case.
    assert_eq!(ask_code(&em, "Jane.Doe@GMAIL.com").status, 202);
    assert_eq!(codes(&em).len(), 2);
}

#[test]
fn request_with_a_bad_email_is_422_with_pydantics_entry() {
    let em = demo();
    let r = ask_code(&em, "jane");
    assert_eq!(r.status, 422);
    let reason = "An email address must have an @-sign.";
    assert_eq!(
        r.json(),
        json!({"error": "RequestValidationError", "detail": [{
            "type": "value_error", "loc": ["body", "email"],
            "msg": format!("value is not a valid email address: {reason}"),
            "input": "jane", "ctx": {"reason": reason}}]})
    );
    let r = post(&em, REQUEST, &json!({"email": EMAIL}));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["type"], "missing");
    assert_eq!(
        r.json()["detail"][0]["loc"],
        json!(["body", "organization_id"])
    );
    assert!(codes(&em).is_empty());
}

fn seed_shared_email() -> Seed {
    let mut seed = Seed::demo();
    let mut other = SeedKey::new("TEAM-0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0");
    other.customer_id = Some(OTHER_V4.to_string());
    other.customer_email = Some("JANE.DOE@gmail.com".to_string());
    seed.license_keys.push(other);
    seed
}

#[test]
fn several_customers_with_one_email_is_409_unless_customer_id_picks_one() {
    let em = Emulator::start(seed_shared_email(), Options::default()).expect("starts");
    let r = ask_code(&em, EMAIL);
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"error": "customer_selection_required",
               "detail": "Multiple customers found for this email. Please select one.",
               "customers": [{"id": DEMO_CUSTOMER_ID, "name": null}, {"id": OTHER_V4, "name": null}]})
    );
    assert!(codes(&em).is_empty());
    let pick = json!({"email": EMAIL, "organization_id": ORG, "customer_id": OTHER_V4});
    assert_eq!(post(&em, REQUEST, &pick).status, 202);
    let listed = codes(&em);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["customer_id"], OTHER_V4);
    // A customer_id that is none of them: 202, no code (no enumeration).
    let none = json!({"email": EMAIL, "organization_id": ORG, "customer_id": "3f0c6a55-8c5e-4d61-9e2a-0b7c1d2e3f40"});
    assert_eq!(post(&em, REQUEST, &none).status, 202);
    assert_eq!(codes(&em).len(), 1);
}

#[test]
fn a_code_is_single_use_case_sensitive_and_earlier_codes_stay_valid() {
    let em = demo();
    let first = new_code(&em);
    let second = new_code(&em);
    assert_ne!(first, second);
    let r = post(&em, AUTHENTICATE, &json!({"code": first}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["token".to_string()])
    );
    assert_session_token(r.json()["token"].as_str().expect("token"));
    // Used: 401, and Polar sends no WWW-Authenticate with it.
    let again = post(&em, AUTHENTICATE, &json!({"code": first}));
    assert_error(
        &again,
        401,
        "CustomerSessionCodeInvalidOrExpired",
        "This customer session code is invalid or has expired.",
    );
    assert_eq!(again.header("www-authenticate"), None);
    // Case-sensitive (codes with a letter only: a digits-only code has no other case).
    if second.bytes().any(|b| b.is_ascii_uppercase()) {
        let lower = post(
            &em,
            AUTHENTICATE,
            &json!({"code": second.to_ascii_lowercase()}),
        );
        assert_eq!(lower.status, 401);
    }
    // The earlier request's code still works after a later one was used.
    assert_eq!(
        post(&em, AUTHENTICATE, &json!({"code": second})).status,
        200
    );
    assert!(codes(&em).is_empty());
    let r = post(&em, AUTHENTICATE, &json!({}));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body", "code"]));
}

#[test]
fn a_code_expires_after_30_minutes_of_the_emulators_clock() {
    let em = demo();
    let early = new_code(&em);
    let late = new_code(&em);
    em.set_clock_offset(29 * 60);
    assert_eq!(post(&em, AUTHENTICATE, &json!({"code": early})).status, 200);
    em.set_clock_offset(30 * 60 + 1);
    assert!(codes(&em).is_empty());
    let r = post(&em, AUTHENTICATE, &json!({"code": late}));
    assert_error(
        &r,
        401,
        "CustomerSessionCodeInvalidOrExpired",
        "This customer session code is invalid or has expired.",
    );
}

#[test]
fn the_code_routes_share_6_a_minute_then_429_for_900_s() {
    let em = demo_with(Options {
        rate_limit: true,
        ..Options::default()
    });
    for i in 0..6 {
        let r = if i % 2 == 0 {
            ask_code(&em, EMAIL)
        } else {
            post(&em, AUTHENTICATE, &json!({"code": "NOPE00"}))
        };
        assert!(matches!(r.status, 202 | 401), "call {i}: {}", r.status);
    }
    let r = ask_code(&em, EMAIL);
    assert_eq!(r.status, 429);
    assert!(r.body.is_empty());
    assert_eq!(r.header("retry-after"), Some("900"));
    assert_eq!(r.header("content-type"), None);
    let r = post(&em, AUTHENTICATE, &json!({"code": "NOPE00"}));
    assert_eq!(r.status, 429);
    // The block is the address's: its public license calls wait too; another address not.
    let validate = json!({"key": DEMO_KEY, "organization_id": ORG});
    assert_eq!(
        post(&em, "/v1/customer-portal/license-keys/validate", &validate).status,
        429
    );
    let elsewhere = request(
        &em,
        "POST",
        REQUEST,
        Some(&json!({"email": EMAIL, "organization_id": ORG}).to_string()),
        &[("True-Client-IP", "203.0.113.9")],
    );
    assert_eq!(elsewhere.status, 202);

    // Without --rate-limit (Polar's local server): no limit.
    let open = demo();
    for _ in 0..8 {
        assert_eq!(ask_code(&open, EMAIL).status, 202);
    }
}

/// `POST /__emulator/rate-limit` (issue #64, the seller's `devices_code_rate_limit` row on the
/// faces that share one emulator): Polar's limits turned on in a running emulator are the
/// limiter's own (the 7th code call of a minute refused, empty, `retry-after: 900`); turned
/// off, every block is forgotten and nothing is limited.
#[test]
fn the_rate_limit_control_route_turns_polars_limits_on_and_off() {
    let em = demo();
    let state = |em: &Emulator| {
        let r = request(em, "GET", "/__emulator/rate-limit", None, &[]);
        assert_eq!(r.status, 200);
        serde_json::from_slice::<Value>(&r.body).expect("JSON")["enabled"].clone()
    };
    let set = |em: &Emulator, enabled: bool| {
        let body = json!({ "enabled": enabled }).to_string();
        request(em, "POST", "/__emulator/rate-limit", Some(&body), &[]).status
    };
    assert_eq!(state(&em), json!(false));
    for _ in 0..8 {
        assert_eq!(ask_code(&em, EMAIL).status, 202, "off: no limit");
    }
    assert_eq!(set(&em, true), 204);
    assert_eq!(state(&em), json!(true));
    // The calls made while it was off do not count: six more, then the refusal.
    for i in 0..6 {
        assert_eq!(ask_code(&em, EMAIL).status, 202, "call {i}");
    }
    let r = ask_code(&em, EMAIL);
    assert_eq!(r.status, 429);
    assert!(r.body.is_empty());
    assert_eq!(r.header("retry-after"), Some("900"));
    assert_eq!(r.header("content-type"), None);
    // Turned on again: the block is forgotten, six more before the next.
    assert_eq!(set(&em, true), 204);
    assert_eq!(ask_code(&em, EMAIL).status, 202);
    assert_eq!(set(&em, false), 204);
    for _ in 0..8 {
        assert_eq!(ask_code(&em, EMAIL).status, 202, "off again");
    }
    let bad = request(
        &em,
        "POST",
        "/__emulator/rate-limit",
        Some("{\"enabled\":1}"),
        &[],
    );
    assert_eq!(bad.status, 400);
    assert_eq!(state(&em), json!(false));
}

/// The rate limit's block and hour, on the core's monotonic clock (900 s is too long to wait
/// over loopback), and the code printed to the log.
#[test]
fn core_blocks_900_s_counts_12_an_hour_and_logs_each_code() {
    let start = Time::from_millis(1_790_000_000_000.0, 1_000_000.0).expect("time");
    let options = Options {
        rate_limit: true,
        ..Options::default()
    };
    let mut core = Core::with_entropy(Seed::demo(), options, start, [7; 32]).expect("core");
    let body = json!({"email": EMAIL, "organization_id": ORG}).to_string();
    let call = |core: &mut Core, at_s: f64| {
        let now = Time::from_millis(
            1_790_000_000_000.0 + at_s * 1000.0,
            1_000_000.0 + at_s * 1000.0,
        )
        .expect("time");
        let r = core.handle(
            &Request {
                method: "POST".into(),
                target: REQUEST.into(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("content-length".into(), body.len().to_string()),
                ],
                body: body.clone().into_bytes(),
                peer: "198.51.100.7".into(),
            },
            now,
        );
        (r.status, r.header("retry-after").map(str::to_string))
    };
    for _ in 0..6 {
        assert_eq!(call(&mut core, 0.0), (202, None));
    }
    let log = core.take_log();
    assert_eq!(log.len(), 6);
    let first = core.customer_session_codes(start)[0]["code"]
        .as_str()
        .expect("code")
        .to_string();
    assert!(log[0].contains(&first), "{}", log[0]);
    assert!(log[0].contains(EMAIL));
    assert!(core.take_log().is_empty());
    assert_eq!(call(&mut core, 1.0), (429, Some("900".into())));
    assert_eq!(call(&mut core, 600.0), (429, Some("301".into())));
    // After the block: 6 more in the hour, then the hour's 12 are spent.
    for _ in 0..6 {
        assert_eq!(call(&mut core, 901.5).0, 202);
    }
    assert_eq!(call(&mut core, 1000.0), (429, Some("900".into())));
}

// ---- §16.0: the session token --------------------------------------------------------------

#[test]
fn a_session_token_lives_one_hour_then_is_invalid_on_every_route() {
    let em = demo();
    let token = sign_in(&em);
    assert_session_token(&token);
    assert_eq!(get_as(&em, PORTAL_KEYS, &token).status, 200);
    em.set_clock_offset(3599);
    assert_eq!(get_as(&em, PORTAL_KEYS, &token).status, 200);
    em.set_clock_offset(3601);
    assert_invalid_token(&get_as(&em, PORTAL_KEYS, &token));
    let validate = json!({"key": DEMO_KEY, "organization_id": ORG});
    assert_invalid_token(&post_as(
        &em,
        "/v1/customer-portal/license-keys/validate",
        Some(&validate),
        &token,
    ));
    assert_invalid_token(&get_as(&em, "/v1/license-keys/", &token));
}

#[test]
fn the_wrong_kind_of_caller_is_401_unauthorized() {
    let em = demo();
    let token = sign_in(&em);
    // No token, or an organization token, on a portal route.
    assert_unauthorized(&request(&em, "GET", PORTAL_KEYS, None, &[]));
    assert_unauthorized(&get_as(&em, PORTAL_KEYS, DEMO_TOKEN));
    // A session token on organization routes.
    assert_unauthorized(&get_as(&em, "/v1/license-keys/", &token));
    assert_unauthorized(&post_as(
        &em,
        SESSIONS,
        Some(&json!({"customer_id": DEMO_CUSTOMER_ID})),
        &token,
    ));
    // A session token on a public route is anonymous there: it answers as without one.
    let validate = json!({"key": DEMO_KEY, "organization_id": ORG});
    let r = post_as(
        &em,
        "/v1/customer-portal/license-keys/validate",
        Some(&validate),
        &token,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

// ---- §16.1 (b): a session from the organization token ---------------------------------------

#[test]
fn customer_sessions_with_the_organization_token() {
    let em = demo();
    let r = post_as(
        &em,
        SESSIONS,
        Some(&json!({"customer_id": DEMO_CUSTOMER_ID, "return_url": "https://app.example/back"})),
        DEMO_TOKEN,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.json();
    // Field order on the wire (the nested customer comes last, so first matches are top-level).
    assert_in_order(
        &r.text(),
        &[
            "id",
            "created_at",
            "modified_at",
            "token",
            "expires_at",
            "return_url",
            "customer_portal_url",
            "customer_id",
            "customer",
        ],
    );
    let token = session["token"].as_str().expect("token");
    assert_session_token(token);
    assert_eq!(session["customer_id"], DEMO_CUSTOMER_ID);
    assert_eq!(session["customer"]["id"], DEMO_CUSTOMER_ID);
    assert_eq!(session["customer"]["email"], EMAIL);
    assert_eq!(session["return_url"], "https://app.example/back");
    assert!(session["customer_portal_url"]
        .as_str()
        .is_some_and(|u| u.contains(&format!(
            "customer_session_token={token}&email=jane.doe%40gmail.com"
        ))));
    let created = time::OffsetDateTime::parse(
        session["created_at"].as_str().expect("created_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("a time");
    let expires = time::OffsetDateTime::parse(
        session["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("a time");
    assert_eq!(expires - created, time::Duration::hours(1));
    assert_eq!(get_as(&em, PORTAL_KEYS, token).status, 200);

    // The 422s of §16.1 (b), Polar's own class name.
    let r = post_as(
        &em,
        SESSIONS,
        Some(&json!({"customer_id": OTHER_V4})),
        DEMO_TOKEN,
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json(),
        json!({"error": "PolarRequestValidationError", "detail": [{
            "type": "value_error", "loc": ["body", "customer_id"],
            "msg": "Customer does not exist.", "input": OTHER_V4}]})
    );
    let r = post_as(
        &em,
        SESSIONS,
        Some(&json!({"external_customer_id": "cus_42"})),
        DEMO_TOKEN,
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["detail"][0]["loc"],
        json!(["body", "external_customer_id"])
    );
    assert_eq!(r.json()["detail"][0]["msg"], "Customer does not exist.");
    let r = post_as(&em, SESSIONS, Some(&json!({})), DEMO_TOKEN);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"], "RequestValidationError");
    // No token; a token without customer_sessions:write.
    assert_unauthorized(&post(
        &em,
        SESSIONS,
        &json!({"customer_id": DEMO_CUSTOMER_ID}),
    ));
    let r = post_as(
        &em,
        SESSIONS,
        Some(&json!({"customer_id": DEMO_CUSTOMER_ID})),
        DEMO_TOKEN_READ_ONLY,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "insufficient_scope");
}

#[test]
fn customer_sessions_spend_the_token_budget() {
    let em = demo_with(Options {
        token_budget: Some(2),
        ..Options::default()
    });
    let body = json!({"customer_id": DEMO_CUSTOMER_ID});
    assert_eq!(post_as(&em, SESSIONS, Some(&body), DEMO_TOKEN).status, 201);
    assert_eq!(get_as(&em, "/v1/license-keys/", DEMO_TOKEN).status, 200);
    let r = post_as(&em, SESSIONS, Some(&body), DEMO_TOKEN);
    assert_eq!(r.status, 429);
    assert!(r.body.is_empty());
}

// ---- §16.2: the portal's keys --------------------------------------------------------------

#[test]
fn the_portal_lists_every_key_of_the_customer_whole() {
    let em = demo();
    let token = sign_in(&em);
    let r = get_as(&em, PORTAL_KEYS, &token);
    assert_eq!(r.status, 200);
    let page = r.json();
    assert_eq!(page["pagination"], json!({"total_count": 6, "max_page": 1}));
    let items = page["items"].as_array().expect("items");
    let keys: Vec<&str> = items.iter().filter_map(|k| k["key"].as_str()).collect();
    assert_eq!(keys[0], DEMO_KEY);
    assert!(keys.contains(&DEMO_KEY_REVOKED) && keys.contains(&DEMO_KEY_DISABLED));
    let created: Vec<&str> = items
        .iter()
        .filter_map(|k| k["created_at"].as_str())
        .collect();
    let mut sorted = created.clone();
    sorted.sort();
    assert_eq!(created, sorted);
    // Pages, the limit clamped to 100, the benefit filter, and 422s.
    let r = get_as(&em, &format!("{PORTAL_KEYS}?limit=4&page=2"), &token);
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        r.json()["pagination"],
        json!({"total_count": 6, "max_page": 2})
    );
    let r = get_as(&em, &format!("{PORTAL_KEYS}?limit=150"), &token);
    assert_eq!(
        r.json()["pagination"],
        json!({"total_count": 6, "max_page": 1})
    );
    let r = get_as(&em, &format!("{PORTAL_KEYS}?benefit_id={OTHER_V4}"), &token);
    assert_eq!(
        r.json(),
        json!({"items": [], "pagination": {"total_count": 0, "max_page": 0}})
    );
    let r = get_as(
        &em,
        &format!("{PORTAL_KEYS}?benefit_id={DEMO_BENEFIT_ID}"),
        &token,
    );
    assert_eq!(r.json()["pagination"]["total_count"], 6);
    let r = get_as(&em, &format!("{PORTAL_KEYS}?page=0"), &token);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["loc"], json!(["query", "page"]));
    // Another customer of the organization sees only their own.
    let em = Emulator::start(seed_shared_email(), Options::default()).expect("starts");
    let r = post_as(
        &em,
        SESSIONS,
        Some(&json!({"customer_id": OTHER_V4})),
        DEMO_TOKEN,
    );
    let other = r.json()["token"].as_str().expect("token").to_string();
    let r = get_as(&em, PORTAL_KEYS, &other);
    assert_eq!(r.json()["pagination"]["total_count"], 1);
}

fn activate(em: &Emulator, key: &str, label: &str) -> String {
    let r = post(
        em,
        "/v1/customer-portal/license-keys/activate",
        &json!({"key": key, "organization_id": ORG, "label": label}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

fn deactivate(em: &Emulator, key: &str, activation_id: &str) -> u16 {
    post(
        em,
        "/v1/customer-portal/license-keys/deactivate",
        &json!({"key": key, "organization_id": ORG, "activation_id": activation_id}),
    )
    .status
}

#[test]
fn the_portal_lists_activations_only_with_device_management() {
    let em = demo();
    let token = sign_in(&em);
    let old = activate(&em, DEMO_KEY, "Old laptop");
    let new = activate(&em, DEMO_KEY, "New laptop");
    let gone = activate(&em, DEMO_KEY, "Sold");
    assert_eq!(deactivate(&em, DEMO_KEY, &gone), 204);
    let id = key_id(&em, DEMO_KEY);
    let r = get_as(&em, &format!("{PORTAL_KEYS}{id}"), &token);
    assert_eq!(r.status, 200, "{}", r.text());
    let key = r.json();
    assert_eq!(key["key"], DEMO_KEY);
    assert_eq!(key["limit_activations"], 3);
    let listed: Vec<&str> = key["activations"]
        .as_array()
        .expect("activations")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(listed, [old.as_str(), new.as_str()]);
    let text = r.text();
    let first_activation = text.split("\"activations\":[").nth(1).expect("activations");
    assert_in_order(
        first_activation,
        &[
            "id",
            "license_key_id",
            "label",
            "meta",
            "created_at",
            "modified_at",
        ],
    );
    // 404 and 422.
    assert_error(
        &get_as(&em, &format!("{PORTAL_KEYS}{OTHER_V4}"), &token),
        404,
        "ResourceNotFound",
        "Not found",
    );
    let r = get_as(&em, &format!("{PORTAL_KEYS}not-a-uuid"), &token);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["loc"], json!(["path", "id"]));

    // Device management off: `[]`, the limit still there; the public deactivate still frees
    // any activation given key, organization and id (no enable_customer_admin check), and
    // the organization token still reads every live activation.
    let em = Emulator::start(seed_without_admin(), Options::default()).expect("starts");
    let token = sign_in(&em);
    let first = activate(&em, DEMO_KEY, "Old laptop");
    let second = activate(&em, DEMO_KEY, "New laptop");
    let id = key_id(&em, DEMO_KEY);
    let key = get_as(&em, &format!("{PORTAL_KEYS}{id}"), &token).json();
    assert_eq!(key["activations"], json!([]));
    assert_eq!(key["limit_activations"], 3);
    let org = get_as(&em, &format!("/v1/license-keys/{id}"), DEMO_TOKEN).json();
    assert_eq!(org["activations"].as_array().map(Vec::len), Some(2));
    assert_eq!(deactivate(&em, DEMO_KEY, &first), 204);
    let org = get_as(&em, &format!("/v1/license-keys/{id}"), DEMO_TOKEN).json();
    assert_eq!(org["activations"][0]["id"], second.as_str());
    assert_eq!(org["activations"].as_array().map(Vec::len), Some(1));
}

#[test]
fn rotation_keeps_the_key_and_its_activations_and_the_old_string_is_gone() {
    let em = demo();
    let token = sign_in(&em);
    let activation = activate(&em, DEMO_KEY, "Laptop");
    let id = key_id(&em, DEMO_KEY);
    let r = post_as(&em, &format!("{PORTAL_KEYS}{id}/rotate"), None, &token);
    assert_eq!(r.status, 200, "{}", r.text());
    let rotated = r.json();
    assert_eq!(rotated["id"], id.as_str());
    assert_eq!(rotated["limit_activations"], 3);
    let new = rotated["key"].as_str().expect("key").to_string();
    let uuid = new.strip_prefix("DEMO-").expect("the benefit's prefix");
    assert_eq!(uuid, uuid.to_ascii_uppercase());
    assert_eq!(
        uuid::Uuid::parse_str(uuid).map(|u| u.get_version_num()),
        Ok(4)
    );
    let validate = |key: &str| {
        post(
            &em,
            "/v1/customer-portal/license-keys/validate",
            &json!({"key": key, "organization_id": ORG, "activation_id": activation}),
        )
    };
    assert_error(&validate(DEMO_KEY), 404, "ResourceNotFound", "Not found");
    let r = post(
        &em,
        "/v1/customer-portal/license-keys/activate",
        &json!({"key": DEMO_KEY, "organization_id": ORG, "label": "x"}),
    );
    assert_error(&r, 404, "ResourceNotFound", "Not found");
    let r = validate(&new);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["activation"]["id"], activation.as_str());
    // Revoked: 400 RotateNotPermitted; a disabled key rotates.
    let revoked = key_id(&em, DEMO_KEY_REVOKED);
    assert_error(
        &post_as(&em, &format!("{PORTAL_KEYS}{revoked}/rotate"), None, &token),
        400,
        "RotateNotPermitted",
        "License key cannot be rotated in its current status. Current status: revoked. Allowed statuses: disabled, granted.",
    );
    let disabled = key_id(&em, DEMO_KEY_DISABLED);
    assert_eq!(
        post_as(
            &em,
            &format!("{PORTAL_KEYS}{disabled}/rotate"),
            None,
            &token
        )
        .status,
        200
    );
    assert_error(
        &post_as(
            &em,
            &format!("{PORTAL_KEYS}{OTHER_V4}/rotate"),
            None,
            &token,
        ),
        404,
        "ResourceNotFound",
        "Not found",
    );
}

// ---- §16.3: the organization token's activation read ----------------------------------------

#[test]
fn the_organization_token_reads_one_activation() {
    let em = demo();
    let activation = activate(&em, DEMO_KEY, "Laptop");
    let id = key_id(&em, DEMO_KEY);
    let path = format!("/v1/license-keys/{id}/activations/{activation}");
    let r = get_as(&em, &path, DEMO_TOKEN_READ_ONLY);
    assert_eq!(r.status, 200, "{}", r.text());
    let read = r.json();
    assert_eq!(read["id"], activation.as_str());
    assert_eq!(read["label"], "Laptop");
    assert_eq!(read["license_key"]["id"], id.as_str());
    assert_eq!(read["license_key"]["key"], DEMO_KEY);
    assert!(read["license_key"].get("activations").is_none());
    // Another key's, deactivated, unknown: 404; bad ids: 422 for each; no token: 401.
    let other = key_id(&em, DEMO_KEY_DISABLED);
    assert_error(
        &get_as(
            &em,
            &format!("/v1/license-keys/{other}/activations/{activation}"),
            DEMO_TOKEN,
        ),
        404,
        "ResourceNotFound",
        "Not found",
    );
    let r = get_as(&em, "/v1/license-keys/x/activations/y", DEMO_TOKEN);
    assert_eq!(r.status, 422);
    let locs = r.detail_locs();
    assert_eq!(
        locs,
        [json!(["path", "id"]), json!(["path", "activation_id"])]
    );
    assert_unauthorized(&request(&em, "GET", &path, None, &[]));
    assert_eq!(deactivate(&em, DEMO_KEY, &activation), 204);
    assert_error(
        &get_as(&em, &path, DEMO_TOKEN),
        404,
        "ResourceNotFound",
        "Not found",
    );
}

#[test]
fn seed_benefits_parse_and_are_checked() {
    let seed = Seed::from_json(&format!(
        r#"{{"organization_id": "{ORG}", "benefits": [{{"id": "{DEMO_BENEFIT_ID}", "enable_customer_admin": true}}]}}"#
    ))
    .expect("a seed");
    assert_eq!(
        seed.benefits,
        [SeedBenefit {
            id: DEMO_BENEFIT_ID.to_string(),
            enable_customer_admin: true,
            ..SeedBenefit::default()
        }]
    );
    assert!(Seed::from_json(&format!(
        r#"{{"organization_id": "{ORG}", "benefits": [{{"id": "nope"}}]}}"#
    ))
    .is_err());
}

#[test]
fn collections_without_their_slash_redirect_and_the_control_route_reads_only() {
    let em = demo();
    for path in ["/v1/customer-portal/license-keys", "/v1/customer-sessions"] {
        let r = request(&em, "GET", &format!("{path}?page=2"), None, &[]);
        assert_eq!(r.status, 307, "{path}");
        assert_eq!(
            r.header("location"),
            Some(format!("http://127.0.0.1{path}/?page=2").as_str())
        );
    }
    let r = request(
        &em,
        "POST",
        "/__emulator/customer-session/codes",
        Some("{}"),
        &[],
    );
    assert_eq!(r.status, 405);
    // Wrong methods on the session routes.
    let r = request(&em, "GET", REQUEST, None, &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}
