//! Entitlements as an organization token reads them (docs/polar-api.md §16.4), over raw HTTP on
//! loopback: Feature Flag benefits and their metadata, `GET /v1/benefit-grants/` (the grants a
//! key's purchase made, joined by the key's id), `GET /v1/customers/{id}/state`, a flag's
//! values changed with only `benefit.updated` sent, and all of it kept by `--state FILE`.

use std::time::Duration;

use polar_license_emulator::{
    Emulator, KeyUpdate, Options, Seed, SeedBenefit, SeedKey, DEMO_ORGANIZATION_ID, DEMO_TOKEN,
    DEMO_TOKEN_READ_ONLY,
};
use polar_license_testkit::http::{json_request, take_deliveries, HttpAnswer};
use polar_license_testkit::{customers_key, emulator_kept, feature_flag, ScratchDir};
use serde_json::{json, Value};

mod common;
use common::{
    assert_error, key_id, ok, subscribe, take_events, tier_key, CUSTOMER, KEY, LICENSE, PRO,
    SUBSCRIPTION,
};

const ORG: &str = DEMO_ORGANIZATION_ID;
const GRANTS: &str = "/v1/benefit-grants/";
const LAPSED: &str = "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f";
const LAPSED_KEY: &str = "TIER-2C3D4E5F-6A7B-4C8D-9E0F-1A2B3C4D5E6F";
const OTHER_V4: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";
/// The events a flag's changes send.
const FLAG_EVENTS: &[&str] = &[
    "benefit.updated",
    "benefit_grant.created",
    "benefit_grant.updated",
    "benefit_grant.revoked",
    "customer.state_changed",
];
const INSUFFICIENT: &str =
    "The request requires higher privileges than provided by the access token.";

// ---- a raw HTTP client ---------------------------------------------------------------------

fn get(em: &Emulator, path: &str) -> HttpAnswer {
    json_request(em.port(), "GET", path, None, Some(DEMO_TOKEN))
}

// ---- the seed ------------------------------------------------------------------------------

fn flag_seed() -> Seed {
    let mut seed = Seed::demo();
    let metadata = json!({"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": true});
    seed.benefits.push(feature_flag(PRO, metadata));
    seed.license_keys.push(tier_key());
    seed.license_keys.push(SeedKey {
        benefit_id: Some(LICENSE.into()),
        customer_id: Some(LAPSED.into()),
        status: Some("revoked".into()),
        benefits: vec![PRO.into()],
        ..SeedKey::new(LAPSED_KEY)
    });
    seed
}

fn start() -> Emulator {
    Emulator::start(flag_seed(), Options::default()).expect("the emulator starts")
}

/// The flag's (`PRO`'s) entry of a list: a grants' list's `items`, a state's
/// `granted_benefits`.
fn flag_in(list: &Value) -> Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|g| g["benefit_id"] == PRO)
        .expect("the flag's entry")
        .clone()
}

/// A `BenefitGrant`'s fields in Polar's order (docs/polar-api.md §16.6).
const GRANT_FIELDS: &[&str] = &[
    "created_at",
    "modified_at",
    "id",
    "granted_at",
    "is_granted",
    "revoked_at",
    "is_revoked",
    "subscription_id",
    "order_id",
    "customer_id",
    "member_id",
    "benefit_id",
    "error",
    "customer",
    "member",
    "benefit",
    "properties",
];

/// The names of a raw JSON object's fields, in the order sent.
fn field_order(raw: &str) -> Vec<String> {
    // serde_json keeps no order: read the top-level names off the text.
    let mut names = Vec::new();
    let mut depth = 0i32;
    let mut chars = raw.char_indices().peekable();
    let mut expect_name = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '[' => {
                depth += 1;
                expect_name = c == '{' && depth == 1;
            }
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_name = true,
            '"' => {
                let start = i + 1;
                let mut end = start;
                while let Some((j, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == '"' {
                        end = j;
                        break;
                    }
                }
                if expect_name && depth == 1 {
                    names.push(raw[start..end].to_string());
                    expect_name = false;
                }
            }
            _ => {}
        }
    }
    names
}

// ---- the grants ----------------------------------------------------------------------------

#[test]
fn the_grants_join_a_key_to_its_purchases_feature_flags() {
    let em = start();
    let id = key_id(&em, KEY);
    let r = get(
        &em,
        &format!("{GRANTS}?customer_id={CUSTOMER}&is_granted=true"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    assert_eq!(list["pagination"], json!({"total_count": 2, "max_page": 1}));
    let items = list["items"].as_array().expect("items");
    // The relay's join: the grant whose properties.license_key_id is the key's id …
    let key_grant = items
        .iter()
        .find(|g| g["properties"]["license_key_id"] == json!(id))
        .expect("the key's grant");
    assert_eq!(
        key_grant["properties"],
        json!({"license_key_id": id, "display_key": format!("****-{}", &KEY[KEY.len() - 6..])})
    );
    assert_eq!(key_grant["benefit_id"], LICENSE);
    assert_eq!(key_grant["benefit"]["type"], "license_keys");
    assert_eq!(key_grant["is_granted"], true);
    // … then the grants of the same scope (subscription, order, member) are its flags.
    let scope = |g: &Value| {
        (
            g["subscription_id"].clone(),
            g["order_id"].clone(),
            g["member_id"].clone(),
        )
    };
    assert_eq!(
        scope(key_grant),
        (json!(SUBSCRIPTION), Value::Null, Value::Null)
    );
    let flag = items
        .iter()
        .find(|g| g["benefit"]["type"] == "feature_flag")
        .expect("the flag's grant");
    assert_eq!(scope(flag), scope(key_grant));
    assert_eq!(flag["properties"], json!({}));
    assert_eq!(flag["benefit_id"], PRO);
    assert_eq!(flag["customer_id"], CUSTOMER);
    assert_eq!(flag["customer"]["id"], CUSTOMER);
    assert_eq!(flag["customer"]["email"], "tier@example.com");
    assert_eq!(flag["is_granted"], true);
    assert_eq!(flag["is_revoked"], false);
    assert_eq!(flag["revoked_at"], Value::Null);
    assert_eq!(flag["error"], Value::Null);
    assert_eq!(flag["member"], Value::Null);
    assert!(flag["granted_at"].is_string());
    assert_ne!(flag["id"], key_grant["id"]);
    assert_eq!(
        flag["benefit"]["metadata"],
        json!({"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": true})
    );
    assert_eq!(flag["benefit"]["properties"], json!({}));
    assert_eq!(flag["benefit"]["organization_id"], ORG);
    // Polar's metadata is JSONB: shorter keys first, then by bytes; values keep their types.
    let text = r.text();
    assert!(
        text.contains(
            r#""metadata":{"beta":true,"role":"editor","ratio":1.5,"max_upload_size":10}"#
        ),
        "{text}"
    );
    // Each grant whole, its fields in Polar's order.
    let start = text.find(r#"{"created_at""#).expect("an item");
    assert_eq!(field_order(&text[start..]), GRANT_FIELDS);

    // The same grant id on every read (the relay caches by it).
    let again = ok(&em, &format!("{GRANTS}?customer_id={CUSTOMER}"));
    assert_eq!(again["items"], list["items"]);
}

#[test]
fn the_grants_filter_and_page() {
    let em = start();
    // Every grant of the organization: the demo keys' own, and the two purchases' four.
    let all = ok(&em, GRANTS);
    let total = all["pagination"]["total_count"].as_u64().expect("a count");
    assert_eq!(total, 6 + 4);
    assert_eq!(all["items"].as_array().expect("items").len(), 10);
    // A revoked key's purchase: both its grants revoked.
    let lapsed = ok(
        &em,
        &format!("{GRANTS}?customer_id={LAPSED}&is_granted=false"),
    );
    let items = lapsed["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{lapsed}");
    assert!(items
        .iter()
        .all(|g| g["is_granted"] == false && g["is_revoked"] == true));
    assert!(items
        .iter()
        .all(|g| g["revoked_at"].is_string() && g["granted_at"].is_null()));
    assert_eq!(
        ok(
            &em,
            &format!("{GRANTS}?customer_id={LAPSED}&is_granted=true")
        )["pagination"],
        json!({"total_count": 0, "max_page": 0})
    );
    // Repeatable filters: either customer.
    let both = ok(
        &em,
        &format!("{GRANTS}?customer_id={LAPSED}&customer_id={CUSTOMER}"),
    );
    assert_eq!(both["pagination"]["total_count"], 4);
    // Pages.
    let first = ok(&em, &format!("{GRANTS}?customer_id={CUSTOMER}&limit=1"));
    let second = ok(
        &em,
        &format!("{GRANTS}?customer_id={CUSTOMER}&limit=1&page=2"),
    );
    assert_eq!(
        first["pagination"],
        json!({"total_count": 2, "max_page": 2})
    );
    assert_eq!(first["items"][0]["benefit"]["type"], "license_keys");
    assert_eq!(second["items"][0]["benefit"]["type"], "feature_flag");
    // Another organization's id, an external id the emulator's customers lack: none.
    for q in [
        format!("organization_id={OTHER_V4}"),
        "external_customer_id=cus_1".to_string(),
    ] {
        assert_eq!(
            ok(&em, &format!("{GRANTS}?{q}"))["pagination"]["total_count"],
            0,
            "{q}"
        );
    }
}

#[test]
fn the_grants_route_refuses_as_polar_does() {
    let em = start();
    let r = get(
        &em,
        &format!("{GRANTS}?is_granted=maybe&customer_id=nope&page=0"),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.json();
    assert_eq!(body["error"], "RequestValidationError");
    let detail = body["detail"].as_array().expect("detail");
    assert_eq!(
        detail[0],
        json!({"type": "bool_parsing", "loc": ["query", "is_granted"],
               "msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"})
    );
    assert_eq!(detail[1]["loc"], json!(["query", "customer_id"]));
    assert_eq!(detail[1]["type"], "uuid_parsing");
    assert_eq!(detail[2]["type"], "greater_than");
    assert_eq!(detail.len(), 3);
    // pydantic's other spellings of a boolean.
    for (word, total) in [("yes", 2), ("OFF", 0), ("1", 2), ("f", 0)] {
        let page = ok(
            &em,
            &format!("{GRANTS}?customer_id={CUSTOMER}&is_granted={word}"),
        );
        assert_eq!(page["pagination"]["total_count"], total, "{word}");
    }

    let anonymous = json_request(em.port(), "GET", GRANTS, None, None);
    assert_error(&anonymous, 401, "Unauthorized", "Unauthorized");
    let read_only = json_request(em.port(), "GET", GRANTS, None, Some(DEMO_TOKEN_READ_ONLY));
    assert_eq!(read_only.status, 403);
    assert_eq!(
        read_only.json(),
        json!({"error": "insufficient_scope", "error_description": INSUFFICIENT})
    );
    assert!(read_only
        .header("www-authenticate")
        .is_some_and(|h| h.contains(r#"scope="benefits:read benefits:write""#)));
    let post = json_request(em.port(), "POST", GRANTS, Some("{}"), Some(DEMO_TOKEN));
    assert_eq!(post.status, 405);
    // Starlette's slash redirect.
    let bare = get(&em, "/v1/benefit-grants?is_granted=true");
    assert_eq!(bare.status, 307);
    assert!(bare
        .header("location")
        .is_some_and(|l| l.ends_with("/v1/benefit-grants/?is_granted=true")));
}

// ---- the customer's state ------------------------------------------------------------------

#[test]
fn the_customer_state_carries_the_flags_values() {
    let em = start();
    let state = ok(&em, &format!("/v1/customers/{CUSTOMER}/state"));
    assert_eq!(state["id"], CUSTOMER);
    assert_eq!(state["email"], "tier@example.com");
    assert_eq!(state["type"], "individual");
    assert_eq!(state["organization_id"], ORG);
    let subs = state["active_subscriptions"]
        .as_array()
        .expect("subscriptions");
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["id"], SUBSCRIPTION);
    assert_eq!(subs[0]["status"], "active");
    assert_eq!(subs[0]["cancel_at_period_end"], false);
    assert!(subs[0]["current_period_end"].is_string());
    let granted = state["granted_benefits"].as_array().expect("grants");
    assert_eq!(granted.len(), 2, "{state}");
    let flag = granted
        .iter()
        .find(|g| g["benefit_type"] == "feature_flag")
        .expect("the flag");
    assert_eq!(flag["benefit_id"], PRO);
    assert_eq!(
        flag["benefit_metadata"],
        json!({"max_upload_size": 10, "role": "editor", "ratio": 1.5, "beta": true})
    );
    assert_eq!(flag["properties"], json!({}));
    // No member_id on a state's grant (§16.4).
    let fields: Vec<&str> = flag
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(!fields.contains(&"member_id"), "{fields:?}");
    let mut expected = vec![
        "benefit_id",
        "benefit_metadata",
        "benefit_type",
        "created_at",
        "granted_at",
        "id",
        "modified_at",
        "properties",
    ];
    expected.sort_unstable();
    assert_eq!(fields, expected);
    // The same grant id as the grants' list.
    let grants = ok(&em, &format!("{GRANTS}?customer_id={CUSTOMER}"));
    let flag_grant = flag_in(&grants["items"]);
    assert_eq!(flag["id"], flag_grant["id"]);
    assert_eq!(state["active_meters"], json!([]));

    // A revoked purchase: the customer is there, with nothing granted.
    let lapsed = ok(&em, &format!("/v1/customers/{LAPSED}/state"));
    assert_eq!(lapsed["granted_benefits"], json!([]));
    assert_eq!(lapsed["active_subscriptions"], json!([]));
}

#[test]
fn the_customer_state_refuses_as_polar_does() {
    let em = start();
    let unknown = get(&em, &format!("/v1/customers/{OTHER_V4}/state"));
    assert_error(&unknown, 404, "ResourceNotFound", "Not found");
    let bad = get(&em, "/v1/customers/nope/state");
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["detail"][0]["loc"], json!(["path", "id"]));
    let anonymous = json_request(
        em.port(),
        "GET",
        &format!("/v1/customers/{CUSTOMER}/state"),
        None,
        None,
    );
    assert_eq!(anonymous.status, 401);
    let read_only = json_request(
        em.port(),
        "GET",
        &format!("/v1/customers/{CUSTOMER}/state"),
        None,
        Some(DEMO_TOKEN_READ_ONLY),
    );
    assert_eq!(read_only.status, 403);
    assert!(read_only
        .header("www-authenticate")
        .is_some_and(|h| h.contains(r#"scope="customers:read customers:write""#)));
}

// ---- changing a flag's values --------------------------------------------------------------

#[test]
fn a_flags_new_values_send_only_benefit_updated() {
    let em = start();
    let got = subscribe(&em, FLAG_EVENTS);

    let new = json!({"max_upload_size": 100, "role": "admin"});
    let answer = em
        .set_benefit_metadata(PRO, new.as_object().expect("an object").clone())
        .expect("valid metadata")
        .expect("a known benefit");
    assert_eq!(answer["metadata"], new);
    assert_eq!(answer["type"], "feature_flag");
    assert!(answer["modified_at"].is_string());
    // The control route does the same, and checks as the seed does.
    let again = json!({"metadata": {"max_upload_size": 200, "role": "admin"}}).to_string();
    let patched = json_request(
        em.port(),
        "PATCH",
        &format!("/__emulator/benefits/{PRO}"),
        Some(&again),
        None,
    );
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["metadata"]["max_upload_size"], 200);
    let too_long = json!({"metadata": {"role": "x".repeat(501)}}).to_string();
    let refused = json_request(
        em.port(),
        "PATCH",
        &format!("/__emulator/benefits/{PRO}"),
        Some(&too_long),
        None,
    );
    assert_eq!(refused.status, 400);
    assert!(
        refused.text().contains("501 characters"),
        "{}",
        refused.text()
    );
    let unknown = json_request(
        em.port(),
        "PATCH",
        &format!("/__emulator/benefits/{OTHER_V4}"),
        Some(&again),
        None,
    );
    assert_eq!(unknown.status, 404);

    // The relay's next read has the new values.
    let state = ok(&em, &format!("/v1/customers/{CUSTOMER}/state"));
    let flag = flag_in(&state["granted_benefits"]);
    assert_eq!(
        flag["benefit_metadata"],
        json!({"max_upload_size": 200, "role": "admin"})
    );

    // Two benefit.updated, nothing else (no grant webhook, no state change).
    let (kinds, got) = take_events(&got, 2, Duration::from_millis(500));
    assert_eq!(kinds, ["benefit.updated", "benefit.updated"]);
    assert_eq!(got[0]["data"]["id"], PRO);
    assert_eq!(got[0]["data"]["metadata"], new);
    assert_eq!(got[1]["data"]["metadata"]["max_upload_size"], 200);
}

// ---- the seed's checks ---------------------------------------------------------------------

#[test]
fn the_seed_refuses_metadata_polar_would_refuse() {
    let with = |benefit: Value, keys: Value| {
        Seed::from_json(
            &json!({"organization_id": ORG, "benefits": [benefit], "license_keys": keys})
                .to_string(),
        )
    };
    let flag = |metadata: Value| json!({"id": PRO, "type": "feature_flag", "metadata": metadata});
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    let fifty: serde_json::Map<String, Value> =
        (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
    assert!(with(flag(Value::Object(fifty)), json!([])).is_ok());
    let cases = [
        (flag(Value::Object(many)), "51 keys: at most 50"),
        (flag(json!({"k".repeat(41): 1})), "41 characters: 1 to 40"),
        (flag(json!({"": 1})), "0 characters: 1 to 40"),
        (
            flag(json!({"role": "x".repeat(501)})),
            "501 characters: 1 to 500",
        ),
        (flag(json!({"role": ""})), "0 characters: 1 to 500"),
        (
            flag(json!({"role": null})),
            "a string, an integer, a float or a boolean",
        ),
        (
            flag(json!({"role": [1]})),
            "a string, an integer, a float or a boolean",
        ),
        (json!({"id": PRO, "type": "seats"}), "the type `seats`"),
    ];
    for (benefit, why) in cases {
        let err = with(benefit.clone(), json!([])).expect_err("refused");
        assert!(err.contains(why), "{benefit}: {err}");
    }
    // A 40-character key and a 500-character value pass.
    assert!(with(flag(json!({"k".repeat(40): "x".repeat(500)})), json!([])).is_ok());

    // A key's other benefits must be the seed's Feature Flags.
    let start = |seed: Seed| {
        Emulator::start(seed, Options::default())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let mut seed = flag_seed();
    seed.license_keys[6].benefits = vec![OTHER_V4.into()];
    assert!(start(seed)
        .expect_err("unknown")
        .contains("not among the seed's benefits"));
    let mut seed = flag_seed();
    seed.license_keys[6].benefits = vec![LICENSE.into()];
    seed.benefits.push(SeedBenefit {
        id: LICENSE.into(),
        ..SeedBenefit::default()
    });
    assert!(start(seed)
        .expect_err("a license benefit")
        .contains("license_keys benefit"));
    let mut seed = flag_seed();
    seed.license_keys[6].benefit_id = Some(PRO.into());
    assert!(start(seed)
        .expect_err("a flag as benefit_id")
        .contains("not of type license_keys"));
}

// ---- the state file ------------------------------------------------------------------------

#[test]
fn the_flags_values_and_grants_survive_a_restart() {
    let dir = ScratchDir::new("emulator-entitlements-state");
    let file = dir.join("polar.json");
    let kept = || emulator_kept(flag_seed(), &file);
    let em = kept();
    let new = json!({"role": "owner"});
    em.set_benefit_metadata(PRO, new.as_object().expect("an object").clone())
        .expect("valid")
        .expect("known");
    // A key revoked: its own grant goes; the flag grant of its purchase stays its own.
    assert!(em.update_key(
        KEY,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        }
    ));
    let before = ok(&em, &format!("{GRANTS}?customer_id={CUSTOMER}"));
    em.stop();

    let again = kept();
    let after = ok(&again, &format!("{GRANTS}?customer_id={CUSTOMER}"));
    assert_eq!(after, before);
    let flag = flag_in(&after["items"]);
    assert_eq!(flag["benefit"]["metadata"], new);
    assert_eq!(again.benefit(PRO).expect("the benefit")["metadata"], new);
}

#[test]
fn a_flag_revoked_and_granted_again_sends_its_grant_then_the_state() {
    let em = start();
    let got = subscribe(&em, FLAG_EVENTS);

    let revoked = em
        .set_flag_grant(KEY, PRO, false)
        .expect("valid")
        .expect("the key's flag grant");
    assert_eq!(revoked["is_granted"], false);
    assert_eq!(revoked["is_revoked"], true);
    assert!(revoked["revoked_at"].is_string() && revoked["granted_at"].is_null());
    // Already revoked: nothing changes, nothing is sent.
    assert_eq!(
        em.set_flag_grant(KEY, PRO, false)
            .expect("valid")
            .expect("found")["revoked_at"],
        revoked["revoked_at"]
    );
    // The relay's reads: the flag is gone from the state, its grant not granted.
    let state = ok(&em, &format!("/v1/customers/{CUSTOMER}/state"));
    let granted = state["granted_benefits"].as_array().expect("grants");
    assert_eq!(granted.len(), 1, "{state}");
    assert_eq!(granted[0]["benefit_type"], "license_keys");
    let off = ok(
        &em,
        &format!("{GRANTS}?customer_id={CUSTOMER}&is_granted=false"),
    );
    assert_eq!(off["items"], json!([revoked.clone()]));

    // Granted again through the control route.
    let again = json!({"is_granted": true}).to_string();
    let path = format!("/__emulator/keys/{KEY}/benefits/{PRO}");
    let r = json_request(em.port(), "PATCH", &path, Some(&again), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["is_granted"], true);
    assert_eq!(r.json()["id"], revoked["id"]);
    let unknown = format!("/__emulator/keys/{LAPSED_KEY}/benefits/{OTHER_V4}");
    assert_eq!(
        json_request(em.port(), "PATCH", &unknown, Some(&again), None).status,
        404
    );
    let bad = json_request(
        em.port(),
        "PATCH",
        &path,
        Some(r#"{"is_granted": "yes"}"#),
        None,
    );
    assert_eq!(bad.status, 400);
    assert!(em
        .set_flag_grant("NO-SUCH-KEY", PRO, true)
        .expect("valid")
        .is_none());

    let (kinds, got) = take_events(&got, 4, Duration::from_millis(500));
    assert_eq!(
        kinds,
        [
            "benefit_grant.revoked",
            "customer.state_changed",
            "benefit_grant.created",
            "customer.state_changed",
        ]
    );
    assert_eq!(got[0]["data"], revoked);
    assert_eq!(got[0]["data"]["benefit"]["type"], "feature_flag");
    let flags = |state: &Value| {
        state["data"]["granted_benefits"]
            .as_array()
            .expect("grants")
            .iter()
            .filter(|g| g["benefit_type"] == "feature_flag")
            .count()
    };
    assert_eq!(flags(&got[1]), 0);
    assert_eq!(got[2]["data"]["is_granted"], true);
    assert_eq!(flags(&got[3]), 1);
}

#[test]
fn a_key_added_with_flags_sends_each_grants_created() {
    let em = start();
    let got = subscribe(&em, &["benefit_grant.created"]);
    em.add_key(SeedKey {
        benefits: vec![PRO.into()],
        ..customers_key("TIER-NEW-0001", LICENSE, CUSTOMER)
    })
    .expect("added");
    let got = take_deliveries(&got, 2, Duration::from_millis(300));
    let types: Vec<&str> = got
        .iter()
        .map(|p| p["data"]["benefit"]["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["license_keys", "feature_flag"]);
    assert_eq!(got[1]["data"]["benefit_id"], PRO);
    assert_eq!(got[1]["data"]["is_granted"], true);
    // The new key's flag grant is in the relay's join.
    let id = key_id(&em, "TIER-NEW-0001");
    let grants = ok(&em, &format!("{GRANTS}?customer_id={CUSTOMER}"));
    assert_eq!(grants["pagination"]["total_count"], 4);
    assert!(grants["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|g| g["properties"]["license_key_id"] == json!(id)));
    // A flag the seed does not have is refused, and nothing is added.
    let refused = em.add_key(SeedKey {
        benefits: vec![OTHER_V4.into()],
        ..SeedKey::new("TIER-NEW-0002")
    });
    assert!(refused
        .expect_err("refused")
        .contains("not among the seed's benefits"));
    assert!(em.key("TIER-NEW-0002").is_none());
}
