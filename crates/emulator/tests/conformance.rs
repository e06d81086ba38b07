//! The emulator against Polar's own server (issue #78): each test is written from a file of
//! `polarsource/polar` at `c6c3645e639e` (named on the test), and each failed on the emulator
//! before the fix it names. What the routes answer is written down in docs/polar-api.md §19.

use polar_license_emulator::{
    Emulator, KeyUpdate, Options, Seed, SeedBenefit, SeedKey, DEMO_KEY, DEMO_KEY_REVOKED,
    DEMO_ORGANIZATION_ID, DEMO_TOKEN, DEMO_TOKEN_READ_ONLY,
};
use polar_license_testkit::http::{json_request, HttpAnswer};
use serde_json::{json, Value};

mod common;
use common::{assert_error, key_id, ok};

const ORG: &str = DEMO_ORGANIZATION_ID;
const LICENSE: &str = "7e4a5f6b-8c9d-4e0f-9a1b-3c4d5e6f7a8b";
const CUSTOMER: &str = "8f5b6a7c-9d0e-4f1a-8b2c-4d5e6f7a8b9c";
const KEY: &str = "CONF-1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D";
const OTHER_V4: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";

fn call(em: &Emulator, method: &str, path: &str, body: Option<Value>) -> HttpAnswer {
    let body = body.map(|b| b.to_string());
    json_request(em.port(), method, path, body.as_deref(), Some(DEMO_TOKEN))
}

/// The demo seed and a key of customer `CUSTOMER` (external id `user-42`), its benefit
/// `LICENSE` listed with device management on.
fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.benefits.push(SeedBenefit {
        id: LICENSE.into(),
        enable_customer_admin: true,
        ..SeedBenefit::default()
    });
    seed.license_keys.push(SeedKey {
        benefit_id: Some(LICENSE.into()),
        customer_id: Some(CUSTOMER.into()),
        customer_email: Some("conf@gmail.com".into()),
        customer_external_id: Some("user-42".into()),
        limit_activations: Some(3),
        ..SeedKey::new(KEY)
    });
    seed
}

fn start() -> Emulator {
    Emulator::start(seed(), Options::default()).expect("the emulator starts")
}

/// `GET path` with the organization token.
fn get(em: &Emulator, path: &str) -> HttpAnswer {
    call(em, "GET", path, None)
}

/// A sign-in code asked for `email` (Polar's public `customer-session/request`).
fn ask_code(em: &Emulator, email: &str) -> HttpAnswer {
    let body = json!({"email": email, "organization_id": ORG}).to_string();
    json_request(
        em.port(),
        "POST",
        "/v1/customer-portal/customer-session/request",
        Some(&body),
        None,
    )
}

/// `POST path` with an empty body (`Content-Length: 0`, as an HTTP client sends it).
fn post_empty(em: &Emulator, path: &str, token: &str) -> HttpAnswer {
    json_request(em.port(), "POST", path, Some(""), Some(token))
}

/// `server/polar/customer_session/service.py` (`_get_customer`): a `CustomerSessionCustomer
/// ExternalIDCreate` is looked up by `get_readable_by_external_id`; `schemas.py` gives
/// `external_customer_id` the alias `customer_external_id`. Before: 422 "Customer does not
/// exist." for every external id.
#[test]
fn a_session_by_the_customers_external_id_is_made() {
    let em = start();
    for field in ["external_customer_id", "customer_external_id"] {
        let r = call(
            &em,
            "POST",
            "/v1/customer-sessions/",
            Some(json!({ field: "user-42" })),
        );
        assert_eq!(r.status, 201, "{field}: {}", r.text());
        let session = r.json();
        assert_eq!(session["customer_id"], CUSTOMER, "{field}");
        assert_eq!(session["customer"]["external_id"], "user-42");
        assert!(session["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("polar_cst_")));
    }
    // An unknown one is still refused, at the field Polar names.
    let r = call(
        &em,
        "POST",
        "/v1/customer-sessions/",
        Some(json!({"external_customer_id": "nobody"})),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json(),
        json!({"error": "PolarRequestValidationError", "detail": [{"type": "value_error", "loc": ["body", "external_customer_id"], "msg": "Customer does not exist.", "input": "nobody"}]})
    );
}

/// `server/polar/kit/email.py` (`EmailStrDNS` = pydantic's `EmailStr`, email-validator 2.3.0):
/// special-use domains, bad characters and misplaced periods are refused with
/// `email_validator`'s own reason. Before: only a missing `@`, an empty side or a domain
/// without a period were.
#[test]
fn an_email_is_checked_as_polars_validator_checks_it() {
    let em = start();
    let cases = [
        (
            "jane@example.test",
            "The part after the @-sign is a special-use or reserved name that cannot be used with email.",
        ),
        (
            "jane@exa_mple.com",
            "The part after the @-sign contains invalid characters: '_'.",
        ),
        (
            "jane..doe@gmail.com",
            "An email address cannot have two periods in a row.",
        ),
        (
            "jane doe@gmail.com",
            "The email address contains invalid characters before the @-sign: SPACE.",
        ),
        (
            "jane@1.2.3.4",
            "The part after the @-sign is not valid. It is not within a valid top-level domain.",
        ),
    ];
    for (email, reason) in cases {
        let r = ask_code(&em, email);
        assert_eq!(r.status, 422, "{email}");
        assert_eq!(
            r.json()["detail"][0],
            json!({"type": "value_error", "loc": ["body", "email"], "msg": format!("value is not a valid email address: {reason}"), "input": email, "ctx": {"reason": reason}}),
            "{email}"
        );
    }
    // Upper case and surrounding spaces are fine (pydantic strips; the domain is lower-cased).
    let r = ask_code(&em, " CONF@GMAIL.COM ");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(em.customer_session_codes().len(), 1);
}

/// `server/polar/benefit/schemas.py` (`BenefitGrant.benefit` is the `Benefit`, its
/// `properties` `BenefitLicenseKeysProperties` with `activations.enable_customer_admin`): the
/// benefit's own settings, not the key's. Before: the key's limits (changed by a `PATCH`)
/// and `enable_customer_admin` always false.
#[test]
fn a_grants_benefit_carries_the_benefits_properties() {
    let em = start();
    assert!(em.update_key(
        KEY,
        KeyUpdate {
            limit_activations: Some(Some(9)),
            ..KeyUpdate::default()
        }
    ));
    let r = get(&em, &format!("/v1/benefit-grants/?customer_id={CUSTOMER}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let grants = r.json();
    let grant = &grants["items"][0];
    assert_eq!(grant["benefit_id"], LICENSE);
    assert_eq!(
        grant["benefit"]["properties"]["activations"],
        json!({"limit": 3, "enable_customer_admin": true})
    );
    assert_eq!(grant["benefit"]["properties"]["prefix"], "CONF");
    // The key itself has the new limit.
    assert_eq!(em.key(KEY).expect("the key")["limit_activations"], 9);
}

/// `server/polar/license_key/endpoints.py` (`rotate`: scope `license_keys:write`, 404 for
/// another organization's key, 400 `RotateNotPermitted`) and `service.py` (`rotate`,
/// `ROTATABLE_STATUSES` = granted, disabled). Before: 404 `{"detail":"Not Found"}` (no route).
#[test]
fn the_organization_rotates_a_key_but_not_a_revoked_one() {
    let em = start();
    let id = key_id(&em, KEY);
    let r = post_empty(&em, &format!("/v1/license-keys/{id}/rotate"), DEMO_TOKEN);
    assert_eq!(r.status, 200, "{}", r.text());
    let read = r.json();
    assert_eq!(read["id"], id);
    let new = read["key"].as_str().expect("a key");
    assert_ne!(new, KEY);
    assert!(new.starts_with("CONF-"));
    assert!(read.get("activations").is_none());
    assert!(em.key(KEY).is_none());
    assert!(em.key(new).is_some());

    let revoked = key_id(&em, DEMO_KEY_REVOKED);
    let r = post_empty(
        &em,
        &format!("/v1/license-keys/{revoked}/rotate"),
        DEMO_TOKEN,
    );
    assert_error(&r, 400, "RotateNotPermitted", "License key cannot be rotated in its current status. Current status: revoked. Allowed statuses: disabled, granted.");
    let r = post_empty(
        &em,
        &format!("/v1/license-keys/{OTHER_V4}/rotate"),
        DEMO_TOKEN,
    );
    assert_error(&r, 404, "ResourceNotFound", "Not found");
    let r = post_empty(
        &em,
        &format!("/v1/license-keys/{id}/rotate"),
        DEMO_TOKEN_READ_ONLY,
    );
    assert_eq!(r.status, 403);
    let r = get(&em, &format!("/v1/license-keys/{id}/rotate"));
    assert_eq!(r.status, 405);
}

/// polar-license-api.md (rotation): the new string is the benefit's current prefix (stripped,
/// upper-cased), `-` and an upper-case UUID4; a benefit with no prefix (its keys bare UUIDs, as a
/// checkout issues them) gets a bare UUID, never the old string's first group as a prefix.
#[test]
fn a_rotated_key_takes_its_benefit_s_prefix_or_none() {
    const BARE: &str = "50B22C51-07BD-4160-A61E-19B6CC6ED415";
    const BARE_BENEFIT: &str = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
    let mut seed = seed();
    seed.benefits.push(SeedBenefit {
        id: BARE_BENEFIT.into(),
        ..SeedBenefit::default()
    });
    seed.license_keys.push(SeedKey {
        benefit_id: Some(BARE_BENEFIT.into()),
        customer_id: Some(CUSTOMER.into()),
        customer_email: Some("conf@gmail.com".into()),
        ..SeedKey::new(BARE)
    });
    let em = Emulator::start(seed, Options::default()).expect("the emulator starts");
    let rotated = |key: &str| {
        let id = key_id(&em, key);
        let r = post_empty(&em, &format!("/v1/license-keys/{id}/rotate"), DEMO_TOKEN);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["key"].as_str().expect("a key").to_string()
    };
    let new = rotated(BARE);
    let parsed = uuid::Uuid::parse_str(&new).expect("a bare UUID");
    assert_eq!((new.len(), parsed.get_version_num()), (36, 4), "{new}");
    assert_eq!(new, new.to_ascii_uppercase());
    // A key of the demo benefit, whose first key is `DEMO-<UUID>`: its prefix, `DEMO`.
    let usage = rotated(polar_license_emulator::DEMO_KEY_USAGE);
    let (prefix, rest) = usage.split_once('-').expect("a prefix");
    assert_eq!(prefix, "DEMO", "{usage}");
    assert!(uuid::Uuid::parse_str(rest).is_ok(), "{usage}");
}

/// `server/polar/license_key/endpoints.py` (`update`: `LicenseKeyUpdate`, answers
/// `LicenseKeyRead`) and `schemas.py` (`usage: Int32`, `limit_activations`/`limit_usage`
/// `Int32 | None` with `gt=0`, `status`, `expires_at`). Before: 404 (no route).
#[test]
fn the_organization_patches_a_key() {
    let em = start();
    let id = key_id(&em, DEMO_KEY);
    let path = format!("/v1/license-keys/{id}");
    let r = call(
        &em,
        "PATCH",
        &path,
        Some(json!({"limit_activations": 7, "usage": 2, "status": "disabled"})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let read = r.json();
    assert_eq!(read["limit_activations"], 7);
    assert_eq!(read["usage"], 2);
    assert_eq!(read["status"], "disabled");
    assert!(read.get("activations").is_none());
    // Polar's refusals, all of them at once.
    let r = call(
        &em,
        "PATCH",
        &path,
        Some(json!({"limit_activations": 0, "status": "gone", "usage": 2147483648u64})),
    );
    assert_eq!(r.status, 422);
    let detail = r.json()["detail"].clone();
    let types: Vec<&str> = detail
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["type"].as_str().expect("a type"))
        .collect();
    assert_eq!(types, ["greater_than", "enum", "less_than_equal"]);
    // `null` lifts a limit.
    let r = call(
        &em,
        "PATCH",
        &path,
        Some(json!({"limit_activations": null})),
    );
    assert_eq!(r.json()["limit_activations"], Value::Null);
    let r = call(
        &em,
        "PATCH",
        &format!("/v1/license-keys/{OTHER_V4}"),
        Some(json!({})),
    );
    assert_eq!(r.status, 404);
    let r = json_request(
        em.port(),
        "PATCH",
        &path,
        Some("{}"),
        Some(DEMO_TOKEN_READ_ONLY),
    );
    assert_eq!(r.status, 403);
}

/// A customer session of `CUSTOMER` made with the organization token, `return_url` given.
fn session(em: &Emulator) -> String {
    let r = call(
        em,
        "POST",
        "/v1/customer-sessions/",
        Some(json!({"customer_id": CUSTOMER, "return_url": "https://app.example.com/back"})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().expect("a token").to_string()
}

fn get_as(em: &Emulator, path: &str, token: Option<&str>) -> HttpAnswer {
    json_request(em.port(), "GET", path, None, token)
}

/// `server/polar/customer_portal/endpoints/customer_session.py` (`introspect`:
/// `CustomerCustomerSession` `{expires_at, return_url}`; `get_authenticated_user`:
/// `PortalAuthenticatedUser`), `customer.py` (`GET /me`: `CustomerPortalCustomer`), every one
/// `CustomerPortalUnionRead` (401 without a session). Before: 404 (no routes).
#[test]
fn a_session_introspects_itself_and_reads_its_user_and_customer() {
    let em = start();
    let token = session(&em);
    let r = get_as(
        &em,
        "/v1/customer-portal/customer-session/introspect",
        Some(&token),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let intro = r.json();
    assert_eq!(intro["return_url"], "https://app.example.com/back");
    assert!(intro["expires_at"].is_string());
    assert_eq!(intro.as_object().map(|o| o.len()), Some(2));

    let r = get_as(
        &em,
        "/v1/customer-portal/customer-session/user",
        Some(&token),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"type": "customer", "name": null, "email": "conf@gmail.com", "customer_id": CUSTOMER, "member_id": null, "role": null})
    );

    let r = get_as(&em, "/v1/customer-portal/customers/me", Some(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    let me = r.json();
    assert_eq!(me["id"], CUSTOMER);
    assert_eq!(me["email"], "conf@gmail.com");
    assert_eq!(me["oauth_accounts"], json!({}));
    // The portal's customer has no `external_id` nor `metadata` (`CustomerPortalCustomer`).
    assert!(me.get("external_id").is_none() && me.get("metadata").is_none());

    for path in [
        "/v1/customer-portal/customer-session/introspect",
        "/v1/customer-portal/customer-session/user",
        "/v1/customer-portal/customers/me",
        "/v1/customer-portal/benefit-grants/",
    ] {
        // No session, or an organization token: 401 Unauthorized.
        for token in [None, Some(DEMO_TOKEN)] {
            let r = get_as(&em, path, token);
            assert_eq!(r.status, 401, "{path}");
            assert_eq!(
                r.json(),
                json!({"error": "Unauthorized", "detail": "Unauthorized"})
            );
        }
    }
}

/// `server/polar/customer_portal/endpoints/benefit_grant.py` (`ListResource[CustomerBenefit
/// Grant]`, `GET /{id}` 404 `ResourceNotFound`), `schemas/benefit_grant.py` (the customer the
/// portal's, the benefit a subscriber's with its `organization`), `service/benefit_grant.py`
/// (revoked grants left out). Before: 404 (no route).
#[test]
fn the_portal_lists_the_customers_benefit_grants() {
    let em = start();
    let token = session(&em);
    let r = get_as(&em, "/v1/customer-portal/benefit-grants/", Some(&token));
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    assert_eq!(list["pagination"], json!({"total_count": 1, "max_page": 1}));
    let grant = &list["items"][0];
    assert_eq!(grant["benefit_id"], LICENSE);
    assert_eq!(grant["customer_id"], CUSTOMER);
    assert_eq!(grant["is_granted"], true);
    assert_eq!(grant["properties"]["license_key_id"], key_id(&em, KEY));
    assert_eq!(grant["benefit"]["organization"]["id"], ORG);
    assert!(grant["benefit"].get("metadata").is_none());
    assert_eq!(
        grant["benefit"]["properties"]["activations"],
        json!({"limit": 3, "enable_customer_admin": true})
    );
    assert!(grant["customer"].get("oauth_accounts").is_some());
    let id = grant["id"].as_str().expect("an id");
    let r = get_as(
        &em,
        &format!("/v1/customer-portal/benefit-grants/{id}"),
        Some(&token),
    );
    assert_eq!(r.json(), *grant);
    let r = get_as(
        &em,
        &format!("/v1/customer-portal/benefit-grants/{OTHER_V4}"),
        Some(&token),
    );
    assert_error(&r, 404, "ResourceNotFound", "Not found");
    // A revoked key's grant is no longer listed.
    assert!(em.update_key(
        KEY,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        }
    ));
    let r = get_as(&em, "/v1/customer-portal/benefit-grants/", Some(&token));
    assert_eq!(r.json()["items"], json!([]));
    // The slashless collection redirects, as Starlette does.
    let r = get_as(&em, "/v1/customer-portal/benefit-grants", Some(&token));
    assert_eq!(r.status, 307);
}

/// `server/polar/benefit/endpoints.py` (`GET /{id}`, scope `benefits:read`),
/// `customer/endpoints.py` (`GET /{id}`, `customers:read`): the organization's own, 404
/// `ResourceNotFound` for anything else, 422 for an id that is no UUID. Before: 404 (no
/// routes).
#[test]
fn the_organization_reads_a_benefit_and_a_customer() {
    let em = start();
    let b = ok(&em, &format!("/v1/benefits/{LICENSE}"));
    assert_eq!(b["id"], LICENSE);
    assert_eq!(b["type"], "license_keys");
    assert_eq!(
        b["properties"]["activations"],
        json!({"limit": 3, "enable_customer_admin": true})
    );
    let r = get(&em, &format!("/v1/customers/{CUSTOMER}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["external_id"], "user-42");
    for path in [
        format!("/v1/benefits/{OTHER_V4}"),
        format!("/v1/customers/{OTHER_V4}"),
    ] {
        let r = call(&em, "GET", &path, None);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(
            r.json(),
            json!({"error": "ResourceNotFound", "detail": "Not found"})
        );
    }
    let r = get(&em, "/v1/customers/not-a-uuid");
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["type"], "uuid_parsing");
    let r = get_as(
        &em,
        &format!("/v1/customers/{CUSTOMER}"),
        Some(DEMO_TOKEN_READ_ONLY),
    );
    assert_eq!(r.status, 403);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.contains(r#"scope="customers:read customers:write""#)));
    let r = get_as(&em, &format!("/v1/benefits/{LICENSE}"), None);
    assert_eq!(r.status, 401);
}

#[cfg(feature = "billing")]
mod billing {
    use super::*;
    use polar_license_emulator::SeedMeter;

    const CALLS: &str = "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
    const CREDIT: &str = "6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a";
    const SUBSCRIPTION: &str = "3c9d8e7f-6a5b-4c4d-9e3f-2a1b0c9d8e7f";

    fn seed_with_credit(rollover: bool) -> Seed {
        let mut seed = seed();
        seed.meters.push(SeedMeter {
            id: CALLS.into(),
            name: "API calls".into(),
            event_name: "api_call".into(),
            aggregation: None,
        });
        seed.benefits.push(SeedBenefit {
            id: CREDIT.into(),
            kind: Some("meter_credit".into()),
            meter_id: Some(CALLS.into()),
            units: Some(100),
            rollover,
            ..SeedBenefit::default()
        });
        let key = seed.license_keys.last_mut().expect("the key");
        key.benefits = vec![CREDIT.into()];
        key.subscription = Some(polar_license_emulator::SeedSubscription {
            id: Some(SUBSCRIPTION.into()),
            ..Default::default()
        });
        seed
    }

    fn meters(em: &Emulator) -> Value {
        let r = call(
            em,
            "GET",
            &format!("/v1/customer-meters/?customer_id={CUSTOMER}"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["items"].clone()
    }

    /// `POST /v1/events/ingest` of `events` (`{"events": [...]}`) with the organization token.
    fn ingest_events(em: &Emulator, events: Value) -> HttpAnswer {
        call(em, "POST", "/v1/events/ingest", Some(events))
    }

    fn ingest(em: &Emulator, n: usize) {
        let events: Vec<Value> = (0..n)
            .map(|_| json!({"name": "api_call", "customer_id": CUSTOMER}))
            .collect();
        let r = ingest_events(em, json!({ "events": events }));
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// `server/polar/customer_portal/endpoints/subscription.py` (`ListResource[Customer
    /// Subscription]`, newest first, filter `active`), `customer_seat.py` (`GET /seats`:
    /// `SeatsList`, 400 `BadRequest` without an id, 404 `Subscription not found`),
    /// `subscription/endpoints.py` (`GET /v1/subscriptions/{id}`, `subscriptions:read`),
    /// `meter/endpoints.py` (`GET /v1/meters/`, sorted by name, filter `query`). Before: 404
    /// (no routes).
    #[test]
    fn subscriptions_seats_and_meters_are_read() {
        let mut seed = seed_with_credit(false);
        seed.license_keys.push(SeedKey {
            benefit_id: Some(LICENSE.into()),
            customer_id: Some(CUSTOMER.into()),
            subscription: Some(polar_license_emulator::SeedSubscription {
                id: Some(SUBSCRIPTION.into()),
                ..Default::default()
            }),
            member: Some(polar_license_emulator::SeedMember {
                id: Some("9a6c7b8d-0e1f-4a2b-9c3d-5e6f7a8b9c0d".into()),
                email: Some("seat@gmail.com".into()),
                ..Default::default()
            }),
            ..SeedKey::new("CONF-SEAT-0001")
        });
        seed.meters.push(SeedMeter {
            id: "5c2e3d4f-6a7b-4c8d-9e0f-1a2b3c4d5e6f".into(),
            name: "A tokens".into(),
            event_name: "completion".into(),
            aggregation: None,
        });
        let em = Emulator::start(seed, Options::default()).expect("starts");
        let token = session(&em);
        let r = get_as(&em, "/v1/customer-portal/subscriptions/", Some(&token));
        assert_eq!(r.status, 200, "{}", r.text());
        let list = r.json();
        assert_eq!(list["pagination"]["total_count"], 1);
        assert_eq!(list["items"][0]["id"], SUBSCRIPTION);
        assert_eq!(list["items"][0]["customer_id"], CUSTOMER);
        let r = get_as(
            &em,
            "/v1/customer-portal/subscriptions/?active=false",
            Some(&token),
        );
        assert_eq!(r.json()["items"], json!([]));
        let r = get_as(
            &em,
            &format!("/v1/customer-portal/subscriptions/{SUBSCRIPTION}"),
            Some(&token),
        );
        assert_eq!(r.status, 200);

        let r = get_as(
            &em,
            &format!("/v1/customer-portal/seats?subscription_id={SUBSCRIPTION}"),
            Some(&token),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let seats = r.json();
        assert_eq!(seats["total_seats"], 1);
        assert_eq!(seats["available_seats"], 0);
        assert_eq!(seats["seats"][0]["status"], "claimed");
        assert_eq!(seats["seats"][0]["email"], "seat@gmail.com");
        let r = get_as(&em, "/v1/customer-portal/seats", Some(&token));
        assert_error(
            &r,
            400,
            "BadRequest",
            "Either subscription_id or order_id must be provided",
        );
        let r = get_as(
            &em,
            &format!("/v1/customer-portal/seats?subscription_id={OTHER_V4}"),
            Some(&token),
        );
        assert_error(&r, 404, "ResourceNotFound", "Subscription not found");

        let r = get(&em, &format!("/v1/subscriptions/{SUBSCRIPTION}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["id"], SUBSCRIPTION);
        let r = get(&em, &format!("/v1/subscriptions/{OTHER_V4}"));
        assert_eq!(r.status, 404);

        let r = get(&em, "/v1/meters/");
        assert_eq!(r.status, 200, "{}", r.text());
        let names: Vec<&str> = r.json()["items"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|m| m["name"].as_str().expect("a name"))
            .map(|n| {
                if n == "A tokens" {
                    "A tokens"
                } else {
                    "API calls"
                }
            })
            .collect();
        assert_eq!(names, ["A tokens", "API calls"]);
        let r = get(&em, "/v1/meters/?query=call");
        assert_eq!(r.json()["pagination"]["total_count"], 1);
        let r = get(&em, &format!("/v1/meters/{CALLS}"));
        assert_eq!(r.json()["name"], "API calls");
        let r = get_as(&em, "/v1/meters/", Some(DEMO_TOKEN_READ_ONLY));
        assert_eq!(r.status, 403);
    }

    /// `server/polar/event/endpoints.py` (`GET /v1/events/`: `ListResource[Event]`, scope
    /// `events:read`, filters `customer_id`, `external_customer_id`, `name`), `event/sorting.py`
    /// (default `-timestamp`), `event/schemas.py` (`UserEvent`: `source` `user`, `label`,
    /// `child_count` 0). Before: 404 (no route).
    #[test]
    fn the_organization_lists_its_events() {
        let em = Emulator::start(seed_with_credit(false), Options::default()).expect("starts");
        let r = ingest_events(
            &em,
            json!({"events": [
                {"name": "api_call", "customer_id": CUSTOMER, "timestamp": "2026-01-01T00:00:00Z", "metadata": {"route": "/a"}},
                {"name": "api_call", "external_customer_id": "user-42", "timestamp": "2026-01-02T00:00:00Z"},
                {"name": "other", "customer_id": CUSTOMER, "timestamp": "2026-01-03T00:00:00Z"},
            ]}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let r = get(&em, "/v1/events/");
        assert_eq!(r.status, 200, "{}", r.text());
        let list = r.json();
        assert_eq!(list["pagination"], json!({"total_count": 3, "max_page": 1}));
        let names: Vec<&str> = list["items"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| e["timestamp"].as_str().expect("a time"))
            .collect();
        assert_eq!(
            names,
            [
                "2026-01-03T00:00:00Z",
                "2026-01-02T00:00:00Z",
                "2026-01-01T00:00:00Z"
            ]
        );
        let first = &list["items"][2];
        assert_eq!(first["source"], "user");
        assert_eq!(first["label"], "api_call");
        assert_eq!(first["child_count"], 0);
        assert_eq!(first["customer_id"], CUSTOMER);
        assert_eq!(first["customer"]["id"], CUSTOMER);
        assert_eq!(first["metadata"], json!({"route": "/a"}));
        let r = get(&em, "/v1/events/?name=api_call&sorting=timestamp");
        assert_eq!(r.json()["items"][0]["timestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(r.json()["pagination"]["total_count"], 2);
        let r = get(&em, "/v1/events/?external_customer_id=user-42");
        assert_eq!(r.json()["pagination"]["total_count"], 1);
        let r = get(&em, "/v1/events/?sorting=name");
        assert_eq!(r.status, 422);
        assert_eq!(r.json()["detail"][0]["loc"], json!(["query", "sorting", 0]));
        let r = get_as(&em, "/v1/events/", Some(DEMO_TOKEN_READ_ONLY));
        assert_eq!(r.status, 403);
    }

    /// `server/polar/benefit/strategies/meter_credit/service.py` (`revoke`: a `meter.credited`
    /// of minus `last_credited_units`; the customer meter stays) and
    /// `customer_meter/service.py` (`credited_units` = `non_negative_running_sum`). Before:
    /// the meter dropped from the organization's list and a re-grant credited 200.
    #[test]
    fn a_revoked_credit_takes_its_units_back_and_keeps_the_meter() {
        let em = Emulator::start(seed_with_credit(false), Options::default()).expect("starts");
        em.set_flag_grant(KEY, CREDIT, false).expect("valid");
        let list = meters(&em);
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
        assert_eq!(list[0]["credited_units"], 0);
        assert_eq!(list[0]["balance"], json!(0.0));
        em.set_flag_grant(KEY, CREDIT, true).expect("valid");
        assert_eq!(meters(&em)[0]["credited_units"], 100);
    }

    /// `server/polar/benefit/strategies/meter_credit/service.py` (`cycle`: a `meter.reset`,
    /// then what is left of rollover credits (`customer_meter/service.py`
    /// `get_rollover_units`), then the units again). Before: the usage kept and the units not
    /// credited again.
    #[test]
    fn a_cycle_resets_the_meter_and_credits_again() {
        for (rollover, credited) in [(false, 100), (true, 130)] {
            let em =
                Emulator::start(seed_with_credit(rollover), Options::default()).expect("starts");
            ingest(&em, 70);
            let before = meters(&em);
            assert_eq!(before[0]["balance"], json!(30.0));
            assert!(em.cycle_key(KEY));
            let after = meters(&em);
            assert_eq!(
                after[0]["consumed_units"],
                json!(0.0),
                "rollover {rollover}"
            );
            assert_eq!(after[0]["credited_units"], credited, "rollover {rollover}");
            // The reset holds for the events that come after it.
            ingest(&em, 5);
            assert_eq!(meters(&em)[0]["consumed_units"], json!(5.0));
        }
    }

    /// `server/polar/event/service.py` (`ingest`: each event's `EventIngestValidationError`
    /// collected, one entry per bad event, then one `PolarRequestValidationError`). Before:
    /// only the first bad event's entry.
    #[test]
    fn one_ingest_answers_every_bad_event() {
        let em = Emulator::start(seed_with_credit(false), Options::default()).expect("starts");
        let r = ingest_events(
            &em,
            json!({"events": [
                {"name": "api_call", "customer_id": OTHER_V4},
                {"name": "api_call", "customer_id": CUSTOMER},
                {"name": "api_call", "customer_id": CUSTOMER, "organization_id": ORG},
                {"name": "api_call", "customer_id": CUSTOMER, "member_id": OTHER_V4},
            ]}),
        );
        assert_eq!(r.status, 422);
        assert_eq!(
            r.json(),
            json!({"error": "PolarRequestValidationError", "detail": [
                {"type": "customer_id", "loc": ["body", "events", 0, "customer_id"], "msg": "Customer not found.", "input": OTHER_V4},
                {"type": "organization_token", "loc": ["body", "events", 2, "organization_id"], "msg": "Setting organization_id is disallowed when using an organization token.", "input": ORG},
                {"type": "member_id", "loc": ["body", "events", 3, "member_id"], "msg": "Member not found.", "input": OTHER_V4},
            ]})
        );
        assert_eq!(meters(&em)[0]["consumed_units"], json!(0.0));
    }

    /// `server/polar/subscription/service.py` (`_perform_cancellation`: `canceled_at = now`,
    /// `pause_at_period_end = False`, `resumes_at = None`). Before: the scheduled pause kept,
    /// and the customer state's `canceled_at` null.
    #[test]
    fn cancelling_at_period_end_sets_canceled_at_and_drops_a_scheduled_pause() {
        let em = Emulator::start(seed_with_credit(false), Options::default()).expect("starts");
        let path = format!("/__emulator/keys/{KEY}/subscription");
        let r = call(
            &em,
            "POST",
            &path,
            Some(json!({"action": "pause_at_period_end", "resumes_at": "2099-01-01T00:00:00Z"})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let r = call(
            &em,
            "POST",
            &path,
            Some(json!({"action": "cancel_at_period_end"})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let sub = r.json();
        assert_eq!(sub["cancel_at_period_end"], true);
        assert_eq!(sub["pause_at_period_end"], false);
        assert_eq!(sub["resumes_at"], Value::Null);
        assert!(sub["canceled_at"].is_string(), "{sub}");
        let state = get(&em, &format!("/v1/customers/{CUSTOMER}/state")).json();
        assert_eq!(
            state["active_subscriptions"][0]["canceled_at"], sub["canceled_at"],
            "{state}"
        );
        // At the period's end the subscription ends (it is not paused).
        let r = call(&em, "POST", &path, Some(json!({"action": "period_end"})));
        assert_eq!(r.json()["status"], "canceled");
    }
}
