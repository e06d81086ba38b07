//! Polar's quarterly rotation at run time (issue #78): `POST /__emulator/api-versions` removes a
//! version and moves the current one between two requests, as `--api-versions` and
//! `--api-version` do at start; `GET /__emulator/requests/seen` says what each request sent
//! of itself.

use polar_license_emulator::{
    ApiVersionsChange, Emulator, Options, Seed, DEMO_KEY, DEMO_ORGANIZATION_ID, DEMO_TOKEN,
    DUE_FOR_REMOVAL,
};
use polar_license_testkit::http::raw_exchange;
use serde_json::{json, Value};

const VALIDATE: &str = "/v1/customer-portal/license-keys/validate";

/// A request written whole, with `headers` (each `Name: value`).
fn call(
    em: &Emulator,
    method: &str,
    path: &str,
    body: &str,
    headers: &[&str],
) -> (u16, Value, String) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    let r = raw_exchange(em.port(), &format!("{head}\r\n{body}"));
    let version = r.header("polar-version").unwrap_or("").to_string();
    let json = serde_json::from_str(&r.text()).unwrap_or(Value::Null);
    (r.status, json, version)
}

fn validate(em: &Emulator, headers: &[&str]) -> (u16, Value, String) {
    let body = json!({"key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID}).to_string();
    call(em, "POST", VALIDATE, &body, headers)
}

#[test]
fn the_control_route_removes_a_version_and_moves_the_current_one_mid_run() {
    let em = Emulator::start(Seed::demo(), Options::default()).expect("starts");
    let token = format!("Authorization: Bearer {DEMO_TOKEN}");
    let list = format!("/v1/license-keys/?organization_id={DEMO_ORGANIZATION_ID}");

    // Before: 2026-04 served (deprecated), 2026-10 current.
    let (status, now, _) = call(&em, "GET", "/__emulator/api-versions", "", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        now,
        json!({"served": ["2026-04", "2026-10", "2027-01"], "current": "2026-10",
               "due_for_removal": DUE_FOR_REMOVAL})
    );
    let (status, _, version) = validate(&em, &["Polar-Version: 2026-04"]);
    assert_eq!((status, version.as_str()), (200, "2026-04"));
    let (status, body, version) = validate(&em, &[]);
    assert_eq!((status, version.as_str()), (200, "2026-10"));
    assert!(body.get("member").is_none(), "2026-10 has no member");

    // The switch, through the control route as a separate-process test does it.
    let change = json!({"served": ["2026-10", "2027-01"], "current": "2027-01",
                        "due_for_removal": []})
    .to_string();
    let (status, now, _) = call(&em, "POST", "/__emulator/api-versions", &change, &[]);
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["current"], "2027-01");

    // After: 2026-04 is a bare 404 on every route (no polar-version header, no error key),
    // whoever asks; a request naming none gets 2027-01's shape.
    for (method, path, body, auth) in [
        (
            "POST",
            VALIDATE,
            json!({"key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID}).to_string(),
            None,
        ),
        (
            "POST",
            "/v1/license-keys/validate",
            json!({"key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID}).to_string(),
            Some(token.as_str()),
        ),
        ("GET", list.as_str(), String::new(), Some(token.as_str())),
        (
            "GET",
            "/v1/webhooks/endpoints",
            String::new(),
            Some(token.as_str()),
        ),
    ] {
        let mut headers = vec!["Polar-Version: 2026-04"];
        headers.extend(auth);
        let (status, body, version) = call(&em, method, path, &body, &headers);
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(body, json!({"detail": "Not Found"}), "{method} {path}");
        assert_eq!(version, "", "{method} {path}: a bare 404");
    }
    let (status, body, version) = validate(&em, &[]);
    assert_eq!((status, version.as_str()), (200, "2027-01"));
    assert!(body.get("member").is_some(), "2027-01's shape: {body}");
    let (status, _, version) = call(&em, "GET", &list, "", &[&token]);
    assert_eq!((status, version.as_str()), (200, "2027-01"));
}

#[test]
fn a_change_that_would_serve_no_current_version_is_refused_whole() {
    let em = Emulator::start(Seed::demo(), Options::default()).expect("starts");
    let before = em
        .set_api_versions(&ApiVersionsChange::default())
        .expect("no change");
    for bad in [
        json!({"served": ["2026-10"], "current": "2027-01"}),
        json!({"served": []}),
        json!({"current": "2027-4"}),
        json!({"served": ["2026-10", "soon"], "current": "2026-10"}),
        json!({"due_for_removal": ["next"]}),
        json!({"curent": "2027-01"}),
    ] {
        let (status, body, _) = call(
            &em,
            "POST",
            "/__emulator/api-versions",
            &bad.to_string(),
            &[],
        );
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["detail"].is_string(), "{bad}: {body}");
    }
    let (_, now, _) = call(&em, "GET", "/__emulator/api-versions", "", &[]);
    assert_eq!(
        now,
        serde_json::to_value(&before).expect("json"),
        "nothing changed"
    );
    let (status, _, version) = validate(&em, &["Polar-Version: 2026-04"]);
    assert_eq!((status, version.as_str()), (200, "2026-04"));
}

#[test]
fn each_request_to_polars_routes_is_seen_with_its_user_agent_and_version() {
    let em = Emulator::start(Seed::demo(), Options::default()).expect("starts");
    validate(
        &em,
        &[
            "User-Agent: polar-license/9.9.9 (test)",
            "Polar-Version: 2027-01",
        ],
    );
    validate(&em, &[]);
    // The control routes are not kept.
    call(
        &em,
        "GET",
        "/__emulator/health",
        "",
        &["User-Agent: control"],
    );
    let (status, seen, _) = call(&em, "GET", "/__emulator/requests/seen", "", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        seen,
        json!([
            {"method": "POST", "path": VALIDATE, "user_agent": "polar-license/9.9.9 (test)",
             "polar_version": "2027-01"},
            {"method": "POST", "path": VALIDATE, "user_agent": null, "polar_version": null},
        ])
    );
    assert_eq!(em.seen_requests().len(), 2);
    let (status, _, _) = call(&em, "POST", "/__emulator/requests/reset", "", &[]);
    assert_eq!(status, 204);
    assert!(em.seen_requests().is_empty(), "forgotten with the count");
}
