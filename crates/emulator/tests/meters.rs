//! Meters and credits (docs/polar-api.md §16.5) over raw HTTP on loopback: a `meter_credit`
//! grant's units, `POST /v1/events/ingest` (the batch refused whole, one entry per bad event,
//! `external_id` duplicates skipped and counted, future timestamps refused), the organization
//! token's `GET /v1/customer-meters/`, the customer portal's `GET /v1/customer-portal/meters/`,
//! the customer state's `active_meters`, and all of it kept by `--state FILE`.

// Meters, credits and the lifecycle's control routes are the `billing` feature's.
#![cfg(feature = "billing")]

use polar_license_emulator::{
    Emulator, Options, Seed, SeedBenefit, SeedKey, SeedMeter, DEMO_ORGANIZATION_ID, DEMO_TOKEN,
    DEMO_TOKEN_READ_ONLY,
};
use polar_license_testkit::http::{json_request, HttpAnswer};
use polar_license_testkit::{emulator_kept, ScratchDir};
use serde_json::{json, Value};

mod common;
use common::{assert_error, ok};

const ORG: &str = DEMO_ORGANIZATION_ID;
const CALLS: &str = "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
const TOKENS: &str = "5c2e3d4f-6a7b-4c8d-9e0f-1a2b3c4d5e6f";
const CREDIT: &str = "6d3f4e5a-7b8c-4d9e-8f0a-2b3c4d5e6f7a";
const LICENSE: &str = "7e4a5f6b-8c9d-4e0f-9a1b-3c4d5e6f7a8b";
const CUSTOMER: &str = "8f5b6a7c-9d0e-4f1a-8b2c-4d5e6f7a8b9c";
const OTHER_V4: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";
const KEY: &str = "METER-1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D";
const MEMBER: &str = "9a6c7b8d-0e1f-4a2b-9c3d-5e6f7a8b9c0d";
const INGEST: &str = "/v1/events/ingest";
const METERS: &str = "/v1/customer-meters/";
const PORTAL: &str = "/v1/customer-portal/meters/";

fn ingest(em: &Emulator, events: Value) -> HttpAnswer {
    let body = json!({ "events": events }).to_string();
    json_request(em.port(), "POST", INGEST, Some(&body), Some(DEMO_TOKEN))
}

fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.meters = vec![
        SeedMeter {
            id: CALLS.into(),
            name: "API calls".into(),
            event_name: "api_call".into(),
            aggregation: None,
        },
        SeedMeter {
            id: TOKENS.into(),
            name: "LLM tokens".into(),
            event_name: "completion".into(),
            aggregation: Some(json!({"func": "sum", "property": "metadata.tokens"})),
        },
    ];
    seed.benefits.push(SeedBenefit {
        id: CREDIT.into(),
        kind: Some("meter_credit".into()),
        meter_id: Some(CALLS.into()),
        units: Some(100),
        ..SeedBenefit::default()
    });
    seed.license_keys.push(SeedKey {
        benefit_id: Some(LICENSE.into()),
        customer_id: Some(CUSTOMER.into()),
        customer_email: Some("meter@example.com".into()),
        customer_external_id: Some("user-42".into()),
        member: Some(polar_license_emulator::SeedMember {
            id: Some(MEMBER.into()),
            ..Default::default()
        }),
        benefits: vec![CREDIT.into()],
        ..SeedKey::new(KEY)
    });
    seed
}

fn start() -> Emulator {
    Emulator::start(seed(), Options::default()).expect("the emulator starts")
}

fn the_meter(em: &Emulator) -> Value {
    let list = ok(em, &format!("{METERS}?customer_id={CUSTOMER}"));
    assert_eq!(list["pagination"], json!({"total_count": 1, "max_page": 1}));
    list["items"][0].clone()
}

#[test]
fn a_credit_grant_gives_a_balance_that_events_consume() {
    let em = start();
    let m = the_meter(&em);
    // The organization token's item: the portal's fields, the customer and the full meter.
    let names: Vec<&String> = m.as_object().expect("an object").keys().collect();
    let mut want = [
        "id",
        "created_at",
        "modified_at",
        "customer_id",
        "meter_id",
        "consumed_units",
        "credited_units",
        "balance",
        "customer",
        "meter",
    ];
    want.sort_unstable();
    assert_eq!(names, want);
    assert_eq!(m["customer_id"], CUSTOMER);
    assert_eq!(m["meter_id"], CALLS);
    assert_eq!(m["credited_units"], json!(100));
    assert_eq!(m["consumed_units"], json!(0.0));
    assert_eq!(m["balance"], json!(100.0));
    assert_eq!(m["customer"]["external_id"], "user-42");
    assert_eq!(m["meter"]["name"], "API calls");
    assert_eq!(m["meter"]["aggregation"], json!({"func": "count"}));
    assert_eq!(
        m["meter"]["filter"],
        json!({"conjunction": "and", "clauses": [{"property": "name", "operator": "eq", "value": "api_call"}]})
    );
    assert_eq!(m["meter"]["organization_id"], ORG);

    // Two by id, one by the customer's external id, one another meter's, one nobody's.
    let r = ingest(
        &em,
        json!([
            {"name": "api_call", "customer_id": CUSTOMER, "external_id": "e1"},
            {"name": "api_call", "customer_id": CUSTOMER, "member_id": MEMBER, "external_id": "e2"},
            {"name": "api_call", "external_customer_id": "user-42", "external_id": "e3"},
            {"name": "completion", "customer_id": CUSTOMER, "metadata": {"tokens": 250}},
            {"name": "api_call", "external_customer_id": "not-a-customer-yet"},
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), r#"{"inserted":5,"duplicates":0}"#);
    // A retried report: its external_id is skipped and counted, the new one counts.
    let r = ingest(
        &em,
        json!([
            {"name": "api_call", "customer_id": CUSTOMER, "external_id": "e3"},
            {"name": "api_call", "customer_id": CUSTOMER, "external_id": "e2"},
            {"name": "api_call", "customer_id": CUSTOMER, "external_id": "e4"},
        ]),
    );
    assert_eq!(r.text(), r#"{"inserted":1,"duplicates":2}"#);
    let m = the_meter(&em);
    assert_eq!(m["consumed_units"], json!(4.0));
    assert_eq!(m["credited_units"], json!(100));
    assert_eq!(m["balance"], json!(96.0));

    // The customer state carries the same meter.
    let state = ok(&em, &format!("/v1/customers/{CUSTOMER}/state"));
    assert_eq!(
        state["active_meters"],
        json!([{
            "id": m["id"], "created_at": m["created_at"], "modified_at": m["modified_at"],
            "meter_id": CALLS, "consumed_units": 4.0, "credited_units": 100, "balance": 96.0,
        }])
    );
    let by_external = ok(&em, "/v1/customers/external/user-42/state");
    assert_eq!(by_external["id"], CUSTOMER);
    assert_eq!(by_external["active_meters"], state["active_meters"]);
    let r = json_request(
        em.port(),
        "GET",
        "/v1/customers/external/nobody/state",
        None,
        Some(DEMO_TOKEN),
    );
    assert_eq!(r.status, 404);
    // The credit grant, in the grants list, says what it credited.
    let grants = ok(&em, "/v1/benefit-grants/?external_customer_id=user-42");
    let credit = grants["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|g| g["benefit_id"] == CREDIT)
        .expect("the credit grant")
        .clone();
    assert_eq!(credit["benefit"]["type"], "meter_credit");
    assert_eq!(
        credit["benefit"]["properties"],
        json!({"meter_id": CALLS, "units": 100, "rollover": false})
    );
    assert_eq!(credit["properties"]["last_credited_meter_id"], CALLS);
    assert_eq!(credit["properties"]["last_credited_units"], 100);

    // The customer's own view, with a customer session.
    let body = json!({"customer_id": CUSTOMER}).to_string();
    let session = json_request(
        em.port(),
        "POST",
        "/v1/customer-sessions/",
        Some(&body),
        Some(DEMO_TOKEN),
    );
    assert_eq!(session.status, 201, "{}", session.text());
    let token = session.json()["token"]
        .as_str()
        .expect("a token")
        .to_string();
    let portal = json_request(em.port(), "GET", PORTAL, None, Some(&token));
    assert_eq!(portal.status, 200, "{}", portal.text());
    let portal = portal.json();
    assert_eq!(
        portal["items"][0],
        json!({
            "id": m["id"], "created_at": m["created_at"], "modified_at": m["modified_at"],
            "customer_id": CUSTOMER, "meter_id": CALLS, "consumed_units": 4.0,
            "credited_units": 100, "balance": 96.0,
            "meter": {"id": CALLS, "created_at": m["meter"]["created_at"], "modified_at": null, "name": "API calls"},
        })
    );
    let id = m["id"].as_str().expect("an id");
    let one = json_request(
        em.port(),
        "GET",
        &format!("{PORTAL}{id}"),
        None,
        Some(&token),
    );
    assert_eq!(one.json(), portal["items"][0]);
    let one = json_request(
        em.port(),
        "GET",
        &format!("{METERS}{id}"),
        None,
        Some(DEMO_TOKEN),
    );
    assert_eq!(one.json(), m);
    for path in [format!("{PORTAL}{OTHER_V4}"), format!("{METERS}{OTHER_V4}")] {
        let t = if path.starts_with(PORTAL) {
            token.as_str()
        } else {
            DEMO_TOKEN
        };
        let r = json_request(em.port(), "GET", &path, None, Some(t));
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(
            r.json(),
            json!({"error": "ResourceNotFound", "detail": "Not found"})
        );
    }
    // The portal's filters: a name matching none, a bad sorting.
    let none = json_request(
        em.port(),
        "GET",
        &format!("{PORTAL}?query=tokens"),
        None,
        Some(&token),
    );
    assert_eq!(none.json()["items"], json!([]));
    let bad = json_request(
        em.port(),
        "GET",
        &format!("{PORTAL}?sorting=nope"),
        None,
        Some(&token),
    );
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["detail"][0]["msg"], "Invalid sorting criterion.");
    // An organization token is nobody on the portal, a session nobody on the org route.
    let r = json_request(em.port(), "GET", PORTAL, None, Some(DEMO_TOKEN));
    assert_error(&r, 401, "Unauthorized", "Unauthorized");
    let r = json_request(em.port(), "GET", METERS, None, Some(&token));
    assert_eq!(r.status, 401);
}

#[test]
fn one_bad_event_refuses_the_whole_batch() {
    let em = start();
    let good = json!({"name": "api_call", "customer_id": CUSTOMER, "external_id": "g1"});
    let cases = [
        (
            json!({"name": "api_call", "customer_id": OTHER_V4}),
            json!({"type": "customer_id", "loc": ["body", "events", 1, "customer_id"], "msg": "Customer not found.", "input": OTHER_V4}),
        ),
        (
            json!({"name": "api_call", "customer_id": CUSTOMER, "organization_id": ORG}),
            json!({"type": "organization_token", "loc": ["body", "events", 1, "organization_id"], "msg": "Setting organization_id is disallowed when using an organization token.", "input": ORG}),
        ),
        (
            json!({"name": "api_call", "customer_id": CUSTOMER, "member_id": OTHER_V4}),
            json!({"type": "member_id", "loc": ["body", "events", 1, "member_id"], "msg": "Member not found.", "input": OTHER_V4}),
        ),
    ];
    for (bad, entry) in cases {
        let r = ingest(&em, json!([good, bad]));
        assert_eq!(r.status, 422, "{bad}");
        assert_eq!(
            r.json(),
            json!({"error": "PolarRequestValidationError", "detail": [entry]}),
            "{bad}"
        );
    }
    // Nothing of the refused batches counted, nor their external ids.
    assert_eq!(the_meter(&em)["consumed_units"], json!(0.0));
    assert_eq!(
        ingest(&em, json!([good])).text(),
        r#"{"inserted":1,"duplicates":0}"#
    );

    // A future timestamp: the schema's error, from both members of Polar's union.
    let future = "2999-01-01T00:00:00Z";
    let event = json!({"name": "api_call", "customer_id": CUSTOMER, "timestamp": future});
    let r = ingest(&em, json!([event]));
    assert_eq!(r.status, 422);
    let ctx = json!({"error": {}});
    let msg = "Value error, Timestamp must be in the past.";
    assert_eq!(
        r.json(),
        json!({"error": "RequestValidationError", "detail": [
            {"type": "value_error", "loc": ["body", "events", 0, "EventCreateCustomer", "timestamp"], "msg": msg, "input": future, "ctx": ctx},
            {"type": "value_error", "loc": ["body", "events", 0, "EventCreateExternalCustomer", "timestamp"], "msg": msg, "input": future, "ctx": ctx},
            {"type": "missing", "loc": ["body", "events", 0, "EventCreateExternalCustomer", "external_customer_id"], "msg": "Field required", "input": event},
        ]})
    );
    // A past one is taken.
    let past =
        json!({"name": "api_call", "customer_id": CUSTOMER, "timestamp": "2020-01-01T00:00:00Z"});
    assert_eq!(ingest(&em, json!([past])).status, 200);
    assert_eq!(the_meter(&em)["consumed_units"], json!(2.0));
    // No events field.
    let r = json_request(em.port(), "POST", INGEST, Some("{}"), Some(DEMO_TOKEN));
    assert_eq!(
        r.json(),
        json!({"error": "RequestValidationError", "detail": [{"type": "missing", "loc": ["body", "events"], "msg": "Field required", "input": {}}]})
    );
}

#[test]
fn the_routes_ask_their_scopes() {
    let em = start();
    let body = json!({"events": []}).to_string();
    let r = json_request(em.port(), "POST", INGEST, Some(&body), None);
    assert_eq!(r.status, 401);
    let r = json_request(
        em.port(),
        "POST",
        INGEST,
        Some(&body),
        Some(DEMO_TOKEN_READ_ONLY),
    );
    assert_eq!(r.status, 403);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.contains(r#"scope="events:write""#)));
    let r = json_request(em.port(), "GET", METERS, None, Some(DEMO_TOKEN_READ_ONLY));
    assert_eq!(r.status, 403);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.contains(r#"scope="customer_meters:read""#)));
    let r = json_request(em.port(), "GET", INGEST, None, Some(DEMO_TOKEN));
    assert_eq!(r.status, 405);
    // An empty batch is a batch.
    let r = json_request(em.port(), "POST", INGEST, Some(&body), Some(DEMO_TOKEN));
    assert_eq!(r.text(), r#"{"inserted":0,"duplicates":0}"#);
    // Starlette's slash redirect for the collection.
    let r = json_request(
        em.port(),
        "GET",
        "/v1/customer-meters",
        None,
        Some(DEMO_TOKEN),
    );
    assert_eq!(r.status, 307);
}

#[test]
fn a_credit_granted_again_credits_again_and_sums_count_numbers_only() {
    let em = start();
    assert!(em
        .set_flag_grant(KEY, CREDIT, false)
        .expect("valid")
        .is_some());
    // Revoked: its units taken back, the customer's meter kept (Polar's `meter_credit`
    // `revoke`); the portal lists it no more (only granted credits' meters).
    assert_eq!(the_meter(&em)["credited_units"], json!(0));
    em.set_flag_grant(KEY, CREDIT, true).expect("valid");
    assert_eq!(the_meter(&em)["credited_units"], json!(100));
    // The token meter is not the customer's (no credit names it): its sums are kept all the
    // same, and only numbers count.
    let r = ingest(
        &em,
        json!([
            {"name": "completion", "customer_id": CUSTOMER, "metadata": {"tokens": 1.5}},
            {"name": "completion", "customer_id": CUSTOMER, "metadata": {"tokens": "7"}},
            {"name": "completion", "customer_id": CUSTOMER, "metadata": {"tokens": true}},
        ]),
    );
    assert_eq!(r.text(), r#"{"inserted":3,"duplicates":0}"#);
    assert_eq!(the_meter(&em)["consumed_units"], json!(0.0));
}

#[test]
fn the_balance_and_the_seen_external_ids_survive_a_restart() {
    let dir = ScratchDir::new("emulator-meters-state");
    let file = dir.join("polar.json");
    let kept = || emulator_kept(seed(), &file);
    let em = kept();
    let r = ingest(
        &em,
        json!([{"name": "api_call", "customer_id": CUSTOMER, "external_id": "r1"}]),
    );
    assert_eq!(r.status, 200);
    let before = the_meter(&em);
    em.stop();
    let again = kept();
    assert_eq!(the_meter(&again), before);
    let r = ingest(
        &again,
        json!([{"name": "api_call", "customer_id": CUSTOMER, "external_id": "r1"}]),
    );
    assert_eq!(r.text(), r#"{"inserted":0,"duplicates":1}"#);
    assert_eq!(the_meter(&again)["balance"], json!(99.0));
}

#[test]
fn the_seed_refuses_meters_polar_would_refuse() {
    let with = |meters: Value, benefits: Value| {
        Seed::from_json(
            &json!({"organization_id": ORG, "meters": meters, "benefits": benefits}).to_string(),
        )
    };
    let meter = json!({"id": CALLS, "name": "API calls", "event_name": "api_call"});
    let credit = |units: Value, meter_id: &str| json!({"id": CREDIT, "type": "meter_credit", "meter_id": meter_id, "units": units});
    assert!(with(json!([meter]), json!([credit(json!(5), CALLS)])).is_ok());
    let cases = [
        (json!([meter, meter]), json!([]), "appears twice"),
        (
            json!([{"id": CALLS, "name": "AP", "event_name": "x"}]),
            json!([]),
            "fewer than 3",
        ),
        (
            json!([{"id": CALLS, "name": "API", "event_name": "x", "aggregation": {"func": "avg"}}]),
            json!([]),
            "is not",
        ),
        (
            json!([meter]),
            json!([credit(json!(0), CALLS)]),
            "int32 above 0",
        ),
        (
            json!([meter]),
            json!([credit(json!(5), OTHER_V4)]),
            "not among the seed's meters",
        ),
        (
            json!([meter]),
            json!([{"id": CREDIT, "type": "feature_flag", "units": 5}]),
            "not of type meter_credit",
        ),
    ];
    for (meters, benefits, why) in cases {
        let err = with(meters.clone(), benefits.clone()).expect_err("refused");
        assert!(err.contains(why), "{meters} {benefits}: {err}");
    }
}

/// A `unique` meter read through `GET /v1/meters/{id}/quantities` (docs/polar-api.md §17;
/// issue #80's active installs): each day's bucket counts the distinct values of the day's
/// events, not the events; `metadata[key]` filters; the total counts the distinct values of
/// every matching event whatever its time (Polar's total subquery has no time clause); a
/// range longer than the interval allows is Polar's 422.
#[test]
fn a_unique_meter_counts_distinct_values_per_day_and_in_all() {
    const ACTIVE: &str = "3a4b5c6d-7e8f-4a9b-8c0d-1e2f3a4b5c6d";
    let mut seed = seed();
    seed.meters.push(SeedMeter {
        id: ACTIVE.into(),
        name: "Active installs".into(),
        event_name: "install_ping".into(),
        aggregation: Some(json!({"func": "unique", "property": "install"})),
    });
    let em = Emulator::start(seed, Options::default()).expect("starts");
    let ping = |install: &str, version: &str, at: &str| {
        json!({"name": "install_ping", "external_customer_id": install, "timestamp": at,
               "metadata": {"install": install, "app_version": version}})
    };
    // Day 1: a and b, a twice; day 2: a and c. Another event name is not the meter's.
    let r = ingest(
        &em,
        json!([
            ping("a", "1.0", "2026-03-01T08:00:00Z"),
            ping("a", "1.0", "2026-03-01T20:00:00Z"),
            ping("b", "1.1", "2026-03-01T09:00:00Z"),
            ping("a", "1.1", "2026-03-02T10:00:00Z"),
            ping("c", "1.1", "2026-03-02T11:00:00Z"),
            {"name": "api_call", "external_customer_id": "d", "metadata": {"install": "d"}},
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let quantities = |more: &str| {
        ok(
            &em,
            &format!(
                "/v1/meters/{ACTIVE}/quantities?start_timestamp=2026-03-01T00:00:00Z\
                 &end_timestamp=2026-03-02T23:00:00Z&interval=day{more}"
            ),
        )
    };
    let all = quantities("");
    let days: Vec<f64> = all["quantities"]
        .as_array()
        .expect("quantities")
        .iter()
        .map(|q| q["quantity"].as_f64().expect("a number"))
        .collect();
    assert_eq!(days, [2.0, 2.0], "{all}");
    assert_eq!(all["quantities"][0]["timestamp"], "2026-03-01T00:00:00Z");
    assert_eq!(all["total"], 3.0, "a, b and c: {all}");
    let v11 = quantities("&metadata[app_version]=1.1");
    assert_eq!(v11["quantities"][0]["quantity"], 1.0, "{v11}");
    assert_eq!(v11["quantities"][1]["quantity"], 2.0, "{v11}");
    // A one-day range's total still counts every install ever seen (no time clause).
    let one = ok(
        &em,
        &format!(
            "/v1/meters/{ACTIVE}/quantities?start_timestamp=2026-03-02T00:00:00Z\
             &end_timestamp=2026-03-02T01:00:00Z&interval=day"
        ),
    );
    assert_eq!(
        (
            one["quantities"][0]["quantity"].as_f64(),
            one["total"].as_f64()
        ),
        (Some(2.0), Some(3.0))
    );
    // Eight days by the hour: Polar's 422; an unknown meter: 404.
    let quantities_of = |meter: &str, range: &str| {
        let path =
            format!("/v1/meters/{meter}/quantities?start_timestamp=2026-03-01T00:00:00Z{range}");
        json_request(em.port(), "GET", &path, None, Some(DEMO_TOKEN))
    };
    let long = quantities_of(ACTIVE, "&end_timestamp=2026-03-09T00:00:00Z&interval=hour");
    assert_eq!(long.status, 422, "{}", long.text());
    let unknown = quantities_of(OTHER_V4, "&end_timestamp=2026-03-02T00:00:00Z&interval=day");
    assert_eq!(unknown.status, 404);
}
