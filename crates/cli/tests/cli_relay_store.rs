//! `polar-license relay serve --store FILE --webhook-secret …` as a real process in front of
//! `polar-license emulator` (issue #37): Polar's webhooks delivered to it, a `kill -9` in the
//! middle, and a restart that has lost no verdict and no webhook id it acknowledged.

use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::{clean_command, Launch, ScratchDir, Served};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value, Option<String>) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {DEMO_TOKEN}"))
        .header("content-type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .expect("a request");
    let mut resp = agent().run(request).expect("an answer");
    let source = resp
        .headers()
        .get("polar-license-source")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        source,
    )
}

fn requests(polar: &Served) -> u64 {
    let (_, v, _) = call("GET", &format!("{}/__emulator/requests", polar.url), None);
    v["count"].as_u64().expect("count")
}

fn validate(relay: &Served) -> (u16, Option<String>) {
    let (status, _, source) = call(
        "POST",
        &format!("{}/v1/customer-portal/license-keys/validate", relay.url),
        Some(json!({"key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID})),
    );
    (status, source)
}

fn start_relay(polar: &Served, key: &str, store: &str, secret: &str) -> Served {
    Served::start_with_banner(
        clean_command(BIN)
            .args([
                "--base-url",
                &polar.url,
                "relay",
                "serve",
                "--signing-key",
                key,
            ])
            .args(["--port", "0", "--store", store])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
            .env("POLAR_WEBHOOK_SECRET", secret),
        "serving until killed",
    )
    .0
}

/// Waits until the endpoint's deliveries hold `n` successes.
fn acknowledged(polar: &Served, endpoint: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, list, _) = call(
            "GET",
            &format!(
                "{}/v1/webhooks/deliveries?endpoint_id={endpoint}&limit=100",
                polar.url
            ),
            None,
        );
        let ok = list["items"].as_array().map_or(0, |items| {
            items.iter().filter(|d| d["succeeded"] == true).count()
        });
        if ok >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ok} of {n} deliveries acknowledged: {list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_kill_9_loses_no_acknowledged_verdict_and_no_webhook_id() {
    let dir = ScratchDir::new("relay-store-kill");
    let key_file = dir.path().join("relay.key");
    let key = key_file.to_str().expect("UTF-8");
    let o = clean_command(BIN)
        .args(["relay", "keygen", "--out", key])
        .launch();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let store = dir.path().join("verdicts.redb");
    let store = store.to_str().expect("UTF-8");
    let polar = Served::start(clean_command(BIN).args([
        "emulator",
        "--port",
        "0",
        "--webhook-time-scale",
        "0.0001",
    ]));
    let (status, endpoint, _) = call(
        "POST",
        &format!("{}/v1/webhooks/endpoints", polar.url),
        Some(json!({"url": "http://127.0.0.1:9/later", "format": "raw",
                    "events": ["benefit_grant.updated", "benefit_grant.revoked"]})),
    );
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["secret"].as_str().expect("secret");
    let id = endpoint["id"].as_str().expect("id");

    let relay = start_relay(&polar, key, store, secret);
    let hook = format!("{}/v1/webhooks/polar", relay.url);
    let (status, _, _) = call(
        "PATCH",
        &format!("{}/v1/webhooks/endpoints/{id}", polar.url),
        Some(json!({"url": hook})),
    );
    assert_eq!(status, 200);
    assert_eq!(validate(&relay), (200, Some("polar".into())));
    assert_eq!(validate(&relay), (200, Some("store".into())));

    // A change in Polar: its webhook acknowledged by the relay makes the entry stale, so the
    // next check asks Polar again and stores the new answer.
    let (status, _, _) = call(
        "PATCH",
        &format!("{}/__emulator/keys/{DEMO_KEY}", polar.url),
        Some(json!({"limit_activations": 5})),
    );
    assert_eq!(status, 200);
    acknowledged(&polar, id, 1);
    let before = requests(&polar);
    assert_eq!(validate(&relay), (200, Some("polar".into())));
    assert_eq!(requests(&polar), before + 1);

    // kill -9 (Served's drop kills), then the same file.
    drop(relay);
    let relay = start_relay(&polar, key, store, secret);
    let (status, _, _) = call(
        "PATCH",
        &format!("{}/v1/webhooks/endpoints/{id}", polar.url),
        Some(json!({"url": format!("{}/v1/webhooks/polar", relay.url)})),
    );
    assert_eq!(status, 200);
    let before = requests(&polar);
    assert_eq!(
        validate(&relay),
        (200, Some("store".into())),
        "the verdict survived"
    );
    assert_eq!(requests(&polar), before, "answered with no call");

    // Polar redelivers the acknowledged event (the same webhook-id): the relay remembers it
    // was done, so it changes nothing (were it forgotten, the entry would go stale and the
    // next check would ask Polar).
    let (_, deliveries, _) = call(
        "GET",
        &format!("{}/v1/webhooks/deliveries?endpoint_id={id}", polar.url),
        None,
    );
    let event = deliveries["items"][0]["webhook_event"]["id"]
        .as_str()
        .expect("an event")
        .to_string();
    let (status, _, _) = call(
        "POST",
        &format!("{}/v1/webhooks/events/{event}/redeliver", polar.url),
        None,
    );
    assert_eq!(status, 202);
    acknowledged(&polar, id, 2);
    let before = requests(&polar);
    assert_eq!(validate(&relay), (200, Some("store".into())));
    assert_eq!(
        requests(&polar),
        before,
        "the webhook id was remembered across the kill"
    );
    drop(relay);

    // A damaged store is refused at start, with what to do.
    let damaged = dir.path().join("damaged.redb");
    std::fs::write(&damaged, vec![0x5a; 8192]).expect("write");
    let o = clean_command(BIN)
        .args([
            "--base-url",
            &polar.url,
            "relay",
            "serve",
            "--signing-key",
            key,
        ])
        .args(["--port", "0", "--store", damaged.to_str().expect("UTF-8")])
        .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
        .launch();
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("damaged"), "{err}");

    // A webhook secret without a store is a usage error.
    let o = clean_command(BIN)
        .args([
            "--base-url",
            &polar.url,
            "relay",
            "serve",
            "--signing-key",
            key,
        ])
        .args(["--port", "0", "--webhook-secret", secret])
        .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
        .launch();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
