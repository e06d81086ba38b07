//! Issue #78: the organization and its benefits as an organization token reads them
//! (docs/polar-api.md §18), in raw HTTP: `GET /v1/organizations/`, `/v1/organizations/{id}` and
//! `/v1/benefits/`, with Polar's scopes, 404s, 422s and a license-key benefit's own
//! `properties.activations`.

use polar_license_emulator::{Emulator, Options, Seed};
use polar_license_testkit::http::{raw_exchange, HttpAnswer};
use serde_json::{json, Value};

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const OTHER_ORG: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const LIMITED: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";
const UNLIMITED: &str = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9";
const IMPLICIT: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const FLAG: &str = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const TOKEN: &str = "polar_oat_catalog_all_0123456789abcdef";
const NO_SCOPE: &str = "polar_oat_catalog_none_0123456789abcde";

fn emulator() -> Emulator {
    let seed = json!({
        "organization_id": ORG,
        "benefits": [
            {"id": LIMITED, "limit_activations": 5, "enable_customer_admin": true},
            {"id": UNLIMITED, "limit_activations": 0},
            {"id": FLAG, "type": "feature_flag", "metadata": {"tier": "pro"}}
        ],
        "license_keys": [
            {"key": "CAT-11111111-2222-4333-8444-555555555555", "benefit_id": LIMITED,
             "limit_activations": 2},
            {"key": "CAT-66666666-2222-4333-8444-555555555555", "benefit_id": IMPLICIT,
             "limit_activations": 4},
            {"key": "CAT-77777777-2222-4333-8444-555555555555", "benefit_id": IMPLICIT}
        ],
        "access_tokens": [
            {"token": TOKEN},
            {"token": NO_SCOPE, "scopes": ["license_keys:write"]}
        ]
    });
    Emulator::start(
        Seed::from_json(&seed.to_string()).unwrap(),
        Options::default(),
    )
    .unwrap()
}

fn get(polar: &Emulator, path: &str, token: Option<&str>) -> HttpAnswer {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    raw_exchange(
        polar.port(),
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"),
    )
}

#[test]
fn an_organization_token_reads_its_own_organization_only() {
    let polar = emulator();
    let own = get(&polar, &format!("/v1/organizations/{ORG}"), Some(TOKEN));
    assert_eq!(own.status, 200, "{}", own.text());
    let v = own.json();
    assert_eq!(v["id"], ORG);
    for field in ["name", "slug", "created_at", "status"] {
        assert!(!v[field].is_null(), "{field}: {v}");
    }
    // Another organization (or the other environment's id): Polar's one 404.
    let other = get(
        &polar,
        &format!("/v1/organizations/{OTHER_ORG}"),
        Some(TOKEN),
    );
    assert_eq!(
        (other.status, other.json()),
        (
            404,
            json!({"error": "ResourceNotFound", "detail": "Not found"})
        )
    );
    let bad = get(&polar, "/v1/organizations/not-a-uuid", Some(TOKEN));
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["detail"][0]["loc"], json!(["path", "id"]));
    let list = get(&polar, "/v1/organizations/?limit=10", Some(TOKEN)).json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["id"], ORG);
    assert_eq!(list["pagination"], json!({"total_count": 1, "max_page": 1}));
    // Scopes: none, 401; without organizations:read, 403 insufficient_scope.
    assert_eq!(
        get(&polar, &format!("/v1/organizations/{ORG}"), None).status,
        401
    );
    let scoped = get(&polar, &format!("/v1/organizations/{ORG}"), Some(NO_SCOPE));
    assert_eq!(scoped.status, 403);
    assert_eq!(scoped.json()["error"], "insufficient_scope");
    // Starlette's slash redirect.
    let slashless = get(&polar, "/v1/organizations", Some(TOKEN));
    assert_eq!(slashless.status, 307);
}

fn benefit<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["items"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["id"] == id))
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

#[test]
fn benefits_list_a_license_key_benefits_own_activation_settings() {
    let polar = emulator();
    let list = get(&polar, "/v1/benefits/?limit=100", Some(TOKEN));
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    assert_eq!(list["pagination"]["total_count"], 4, "{list}");
    // The benefit's own limit (5), not its key's (2); device management as seeded.
    assert_eq!(
        benefit(&list, LIMITED)["properties"]["activations"],
        json!({"limit": 5, "enable_customer_admin": true})
    );
    assert_eq!(benefit(&list, LIMITED)["type"], "license_keys");
    // No limit: `activations` null.
    assert!(benefit(&list, UNLIMITED)["properties"]["activations"].is_null());
    // A benefit only its keys name: listed, its keys' largest limit, no device management.
    assert_eq!(
        benefit(&list, IMPLICIT)["properties"]["activations"],
        json!({"limit": 4, "enable_customer_admin": false})
    );
    assert_eq!(benefit(&list, FLAG)["type"], "feature_flag");
    // Filters and their 422s.
    let flags = get(&polar, "/v1/benefits/?type=feature_flag", Some(TOKEN)).json();
    assert_eq!(flags["items"].as_array().map(Vec::len), Some(1));
    let one = get(
        &polar,
        &format!("/v1/benefits/?id={UNLIMITED}"),
        Some(TOKEN),
    )
    .json();
    assert_eq!(one["items"][0]["id"], UNLIMITED);
    assert_eq!(
        get(&polar, "/v1/benefits/?type=nope", Some(TOKEN)).status,
        422
    );
    assert_eq!(
        get(&polar, "/v1/benefits/?limit=0", Some(TOKEN)).status,
        422
    );
    let scoped = get(&polar, "/v1/benefits/", Some(NO_SCOPE));
    assert_eq!(scoped.status, 403);
    assert_eq!(scoped.json()["error"], "insufficient_scope");
    assert_eq!(get(&polar, "/v1/benefits/", None).status, 401);
}

#[test]
fn a_negative_benefit_limit_is_refused_in_the_seed() {
    let seed = json!({"organization_id": ORG,
        "benefits": [{"id": LIMITED, "limit_activations": -1}]});
    let seed = Seed::from_json(&seed.to_string()).unwrap();
    assert!(Emulator::start(seed, Options::default()).is_err());
}
