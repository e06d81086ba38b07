//! Polar's January 2027 rotation, rehearsed through the native relay (issue #78): `2026-04`
//! removed and `2027-01` made current in the emulator between two requests, while a webhook
//! endpoint made before October keeps its `2026-04` payloads. Before, the switch, after: no
//! verdict changes (the relay's own organization-token reads name no version; a client still
//! pinning the removed one gets Polar's bare 404 passed through, never a denial kept), each
//! delivery's version is counted, and the endpoint's version due for removal is a warning
//! with its fix until the seller moves it.

mod rig;

use std::time::Duration;

use polar_license_emulator::{ApiVersionsChange, Emulator, KeyUpdate, DEMO_TOKEN};
use polar_license_relay::payload_versions::{DUE_FOR_REMOVAL, PAYLOAD_VERSIONS};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{Running, ServeOptions, USER_AGENT};
use serde_json::{json, Value};

const EVENTS: &[&str] = &[
    "benefit_grant.revoked",
    "benefit_grant.updated",
    "benefit_grant.created",
];

fn agent() -> ureq::Agent {
    polar_license_testkit::http::agent(Duration::from_secs(10))
}

/// A call of Polar's with the organization token: its status and JSON body (`Null`: none).
fn bearer(_agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let r = polar_license_testkit::http::bearer_call(method, url, DEMO_TOKEN, body);
    let json = serde_json::from_str(&r.text()).unwrap_or(Value::Null);
    (r.status, json)
}

/// An endpoint made in Polar with `api_version` (`None`: the current one), pointed at
/// `relay_url`: its id and secret.
fn endpoint(polar: &Emulator, api_version: Option<&str>, url: &str) -> (String, String) {
    let mut body = json!({"url": url, "format": "raw", "events": EVENTS});
    if let Some(v) = api_version {
        body["api_version"] = json!(v);
    }
    let r = bearer(
        &agent(),
        "POST",
        &format!("{}/v1/webhooks/endpoints", polar.url()),
        Some(body),
    );
    assert_eq!(r.0, 201, "{}", r.1);
    (
        r.1["id"].as_str().expect("id").to_string(),
        r.1["secret"].as_str().expect("secret").to_string(),
    )
}

/// The relay with a memory store verifying webhooks with `secret`, no rate limits.
fn relay(polar: &Emulator, secret: &str) -> Running {
    let mut config = rig::config(polar.url(), "rotation");
    config.limits = rig::unlimited();
    config.store = rig::store(
        rig::memory(1_000),
        StoreOptions::default(),
        Some(secret.into()),
    );
    let mut serve = ServeOptions::default();
    serve.metrics_addr = Some("127.0.0.1:0".into());
    rig::listen(
        rig::relay(config, rig::upstream(Duration::from_secs(5))),
        serve,
    )
}

/// `key` revoked in Polar, and the relay's acknowledgement of that event awaited.
fn revoke(polar: &Emulator, endpoint: &str, key: &str) {
    let before = acknowledged(polar, endpoint);
    assert!(polar.update_key(
        key,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        }
    ));
    let heard = rig::wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        acknowledged(polar, endpoint) > before
    });
    assert!(heard, "the relay acknowledged {key}'s revocation");
}

/// The revocations the relay acknowledged to Polar.
fn acknowledged(polar: &Emulator, endpoint: &str) -> usize {
    rig::deliveries(polar, endpoint)
        .iter()
        .filter(|d| d["succeeded"] == true && d["webhook_event"]["type"] == "benefit_grant.revoked")
        .count()
}

/// A validate through the relay: status, source, whether a lease came.
fn check(
    relay: &Running,
    key: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, bool, String) {
    let a = rig::validate_at(&agent(), &relay.url(), key, headers);
    (a.status, a.source, a.lease.is_some(), a.body)
}

#[test]
fn the_january_rotation_changes_no_verdict_through_the_relay() {
    let polar = rig::webhook_emulator();
    let key = rig::add_key(&polar, "ROT-KEEP-4A5B6C".into(), Some(3));
    let gone: Vec<String> = (1..=3)
        .map(|n| rig::add_key(&polar, format!("ROT-GONE{n}-4A5B6C"), Some(3)))
        .collect();
    // The seller's endpoint, made before October: 2026-04 payloads.
    let (id, secret) = endpoint(&polar, Some("2026-04"), "http://127.0.0.1:9/placeholder");
    let relay = relay(&polar, &secret);
    rig::point_endpoint_at(&polar, &id, &relay);
    let native = rig::client(&relay.url(), Duration::from_secs(10));

    // ---- Before: 2026-04 served, 2026-10 current.
    let (status, _, lease, body) = check(&relay, &key, &[]);
    assert_eq!((status, lease), (200, true), "{body}");
    for k in &gone {
        assert_eq!(check(&relay, k, &[]).0, 200);
    }
    revoke(&polar, &id, &gone[0]);
    assert_eq!(check(&relay, &gone[0], &[]).0, 404, "the revocation heard");
    let health = rig::health(&agent(), &relay.url());
    assert_eq!(
        health["webhooks"]["last_payload_version"], "2026-04",
        "{health}"
    );
    assert_eq!(
        health["webhooks"]["payload_versions"]["2026-04"], 1,
        "{health}"
    );
    assert_eq!(health["status"], "warning", "{health}");
    let warning = health["webhooks"]["version_warning"]
        .as_str()
        .unwrap_or_default();
    assert!(
        warning.contains("2026-04") && warning.contains("Webhooks"),
        "{warning}"
    );

    // ---- The switch: Polar's January release.
    polar
        .set_api_versions(&ApiVersionsChange {
            served: Some(vec!["2026-10".into(), "2027-01".into()]),
            current: Some("2027-01".into()),
            due_for_removal: Some(vec![]),
        })
        .expect("rotated");

    // ---- After: the same verdicts.
    let (status, _, lease, body) = check(&relay, &key, &[]);
    assert_eq!((status, lease), (200, true), "{body}");
    assert!(native
        .validate(&polar_license::ValidateRequest::new(&key))
        .expect("an answer")
        .is_accepted());
    // A client still pinning the removed version gets Polar's bare 404, as from Polar; the
    // relay keeps no denial of it: the key stays granted to everyone else, however often.
    for _ in 0..4 {
        let (status, _, lease, body) = check(&relay, &key, &[("Polar-Version", "2026-04")]);
        assert_eq!((status, lease), (404, false), "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).ok(),
            Some(json!({"detail": "Not Found"}))
        );
    }
    let (status, _, lease, body) = check(&relay, &key, &[]);
    assert_eq!((status, lease), (200, true), "{body}");
    assert_eq!(check(&relay, &gone[0], &[]).0, 404, "still revoked");
    // The endpoint keeps its version (what Polar does to it after the removal is not
    // documented): its delivery is still read.
    revoke(&polar, &id, &gone[1]);
    assert_eq!(check(&relay, &gone[1], &[]).0, 404, "the revocation heard");
    assert_eq!(check(&relay, &gone[2], &[]).0, 200);

    // The seller moves the endpoint to the new current version: the warning goes.
    let r = bearer(
        &agent(),
        "PATCH",
        &format!("{}/v1/webhooks/endpoints/{id}", polar.url()),
        Some(json!({"api_version": "2027-01"})),
    );
    assert_eq!(r.0, 200, "{}", r.1);
    revoke(&polar, &id, &gone[2]);
    assert_eq!(check(&relay, &gone[2], &[]).0, 404);
    let health = rig::health(&agent(), &relay.url());
    assert_eq!(
        health["webhooks"]["last_payload_version"], "2027-01",
        "{health}"
    );
    assert_eq!(
        health["webhooks"]["payload_versions"]["2026-04"], 2,
        "{health}"
    );
    assert_eq!(
        health["webhooks"]["version_warning"],
        Value::Null,
        "{health}"
    );
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(
        health["roster"]["state"], "current",
        "the token's reads went on: {health}"
    );
    let metrics = polar_license_testkit::http::bearer_call(
        "GET",
        &relay.metrics_url().expect("a metrics listener"),
        "",
        None,
    )
    .text();
    for line in [
        "polar_license_relay_webhook_payload_versions_total{version=\"2026-04\"} 2",
        "polar_license_relay_webhook_payload_versions_total{version=\"2027-01\"} 1",
        "polar_license_relay_webhook_version_warning 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // Every call the relay made to Polar named it; its own organization-token reads (the
    // roster's list and its reads by id, GETs) pinned no version: only a client's own pin is
    // passed on with the client's call.
    let seen = polar.seen_requests();
    let reads: Vec<_> = seen
        .iter()
        .filter(|r| r.user_agent.as_deref() == Some(USER_AGENT) && r.method == "GET")
        .collect();
    assert!(
        reads
            .iter()
            .any(|r| r.path.starts_with("/v1/license-keys/")),
        "{seen:?}"
    );
    for r in &reads {
        assert_eq!(r.polar_version, None, "{r:?}");
    }
    for r in &seen {
        assert!(r.user_agent.is_some(), "a nameless call: {r:?}");
    }
}

#[test]
fn a_delivery_of_each_supported_payload_version_is_read_and_counted() {
    let polar = rig::webhook_emulator();
    let mut versions: Vec<&str> = PAYLOAD_VERSIONS.to_vec();
    assert!(DUE_FOR_REMOVAL.iter().all(|v| versions.contains(v)));
    versions.push("2027-04"); // one the relay was not built for: read, and a warning.
    polar
        .set_api_versions(&ApiVersionsChange {
            served: Some(versions.iter().map(|v| v.to_string()).collect()),
            ..ApiVersionsChange::default()
        })
        .expect("served");
    for version in versions {
        let key = rig::add_key(
            &polar,
            format!("ROT-{}-4A5B6C", version.replace('-', "")),
            Some(3),
        );
        let (id, secret) = endpoint(&polar, Some(version), "http://127.0.0.1:9/placeholder");
        let relay = relay(&polar, &secret);
        rig::point_endpoint_at(&polar, &id, &relay);
        assert_eq!(check(&relay, &key, &[]).0, 200);
        revoke(&polar, &id, &key);
        let (status, source, _, body) = check(&relay, &key, &[]);
        assert_eq!(
            (status, source.as_deref()),
            (404, Some("store")),
            "{version}: {body}"
        );
        let health = rig::health(&agent(), &relay.url());
        let webhooks = &health["webhooks"];
        assert_eq!(webhooks["last_payload_version"], version, "{health}");
        let warned = !webhooks["version_warning"].is_null();
        let due = DUE_FOR_REMOVAL.contains(&version) || !PAYLOAD_VERSIONS.contains(&version);
        assert_eq!(warned, due, "{version}: {health}");
        // Rig-made endpoints are deleted with the relay; the next version gets its own.
        let r = bearer(
            &agent(),
            "DELETE",
            &format!("{}/v1/webhooks/endpoints/{id}", polar.url()),
            None,
        );
        assert_eq!(r.0, 204);
    }
}
