//! The organization token's budget and Polar's webhooks, over loopback HTTP: a real receiver
//! (a TCP listener here) gets the emulator's deliveries, and checks each signature with the
//! `hmac` crate per the Standard Webhooks specification, not with the emulator's code.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ct_codecs::{Base64, Decoder, Encoder};
use hmac::{Hmac, Mac};
use polar_license_emulator::{
    Emulator, KeyUpdate, Options, Seed, SeedKey, SeedToken, WebhookFault, WebhookOptions,
    API_VERSIONS, DEMO_KEY, DEMO_ORGANIZATION_ID, DEMO_TOKEN, DEMO_TOKEN_READ_ONLY,
};
use polar_license_testkit::budgeted_emulator;
use polar_license_testkit::http::{self, HttpAnswer};
use serde_json::{json, Value};

mod common;
use common::assert_error;
use sha2::Sha256;

const OTHER_ORG: &str = "7c1d9e2a-4b3f-4a5e-9d8c-1b2a3c4d5e6f";
const OTHER_TOKEN: &str = "polar_oat_other_org_0123456789abcdef01";
const OTHER_KEY: &str = "OTHER-11111111-2222-4333-8444-555555555555";

fn agent() -> ureq::Agent {
    http::agent(Duration::from_secs(20))
}

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> HttpAnswer {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let request = request.body(text).expect("request");
    HttpAnswer::read(agent.run(request).expect("an answer"))
}

/// `METHOD path` on `polar`'s API with the demo organization's token.
fn api(polar: &Emulator, method: &str, path: &str, body: Option<&Value>) -> HttpAnswer {
    call(
        &agent(),
        method,
        &format!("{}{path}", polar.url()),
        DEMO_TOKEN,
        body,
    )
}

fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.license_keys.push(SeedKey {
        organization_id: Some(OTHER_ORG.into()),
        ..SeedKey::new(OTHER_KEY)
    });
    seed.access_tokens.push(SeedToken {
        token: OTHER_TOKEN.into(),
        organization_id: Some(OTHER_ORG.into()),
        ..SeedToken::default()
    });
    seed
}

fn token_validate(
    polar: &Emulator,
    agent: &ureq::Agent,
    token: &str,
    org: &str,
    key: &str,
) -> HttpAnswer {
    call(
        agent,
        "POST",
        &format!("{}/v1/license-keys/validate", polar.url()),
        token,
        Some(&json!({"key": key, "organization_id": org})),
    )
}

// ---- The token's budget --------------------------------------------------------------------

/// A 429's `retry-after`, in seconds.
fn retry_after(r: &HttpAnswer) -> u64 {
    r.header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("seconds")
}

#[test]
fn the_501st_token_call_of_an_organization_in_a_minute_is_a_429_and_others_are_not() {
    let polar = Emulator::start(seed(), Options::default()).expect("emulator");
    let agent = agent();
    let start = Instant::now();
    for i in 0..500 {
        let r = token_validate(&polar, &agent, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY);
        assert_eq!(r.status, 200, "call {} of 500: {}", i + 1, r.text());
    }
    let refused = token_validate(&polar, &agent, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY);
    // Inside the one window (the 500 calls took far less than a minute).
    assert!(start.elapsed() < Duration::from_secs(55));
    assert_eq!(refused.status, 429);
    assert_eq!(refused.text(), "", "Polar's 429 has an empty body");
    let retry = retry_after(&refused);
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert!(refused.header("x-ratelimit-limit").is_none());
    // The webhook routes are in the same zone: refused too.
    let list = call(
        &agent,
        "GET",
        &format!("{}/v1/webhooks/endpoints", polar.url()),
        DEMO_TOKEN,
        None,
    );
    assert_eq!(list.status, 429);
    // Another organization's token has a budget of its own.
    let other = token_validate(&polar, &agent, OTHER_TOKEN, OTHER_ORG, OTHER_KEY);
    assert_eq!(other.status, 200, "{}", other.text());
    // The public zone is not the token's budget.
    let public = call(
        &agent,
        "POST",
        &format!("{}/v1/customer-portal/license-keys/validate", polar.url()),
        "",
        Some(&json!({"key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID})),
    );
    assert_ne!(public.status, 429);
}

#[test]
fn the_next_window_passes_and_a_refusal_does_not_extend_it() {
    let polar = budgeted_emulator(seed(), 3, Duration::from_secs(2));
    let agent = agent();
    let start = Instant::now();
    for _ in 0..3 {
        let r = token_validate(&polar, &agent, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY);
        assert_eq!(r.status, 200);
    }
    // No block: every call in the window is refused, none after it.
    for _ in 0..5 {
        let r = token_validate(&polar, &agent, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY);
        assert_eq!(r.status, 429);
        let retry = retry_after(&r);
        assert!((1..=2).contains(&retry), "retry-after {retry}");
    }
    let window_end = start + Duration::from_millis(2_100);
    thread::sleep(window_end.saturating_duration_since(Instant::now()));
    let r = token_validate(&polar, &agent, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY);
    assert_eq!(r.status, 200, "the next window passes");
}

#[test]
fn a_sandbox_has_100_calls_and_a_budget_of_0_is_off() {
    let sandbox = Options {
        sandbox: true,
        ..Options::default()
    };
    let polar = Emulator::start(seed(), sandbox).expect("emulator");
    let agent = agent();
    for _ in 0..100 {
        let r = token_validate(&polar, &agent, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY);
        assert_eq!(r.status, 200);
    }
    let r = token_validate(&polar, &agent, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY);
    assert_eq!(r.status, 429);

    // The seed can set it; 0 is off (for benchmarks that say so).
    let mut off = seed();
    off.token_budget = Some(0);
    let polar = Emulator::start(off, Options::default()).expect("emulator");
    for _ in 0..600 {
        let r = token_validate(&polar, &agent, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY);
        assert_eq!(r.status, 200);
    }
}

#[test]
fn every_token_of_an_organization_spends_the_one_budget() {
    // Polar's identity is `organization:<id>`, not the token: the demo organization's two
    // tokens share one counter, a call refused for its scope (403) spends it too, and the
    // budget comes before the scope check (a 429, not a 403, once it is spent).
    let polar = budgeted_emulator(seed(), 6, Duration::from_secs(60));
    let agent = agent();
    let read_only = token_validate(
        &polar,
        &agent,
        DEMO_TOKEN_READ_ONLY,
        DEMO_ORGANIZATION_ID,
        DEMO_KEY,
    );
    assert_eq!(read_only.status, 403, "{}", read_only.text());
    for i in 0..5 {
        let r = token_validate(&polar, &agent, DEMO_TOKEN, DEMO_ORGANIZATION_ID, DEMO_KEY);
        assert_eq!(r.status, 200, "call {} of 5: {}", i + 2, r.text());
    }
    // Six calls of the organization, five of them DEMO_TOKEN's: each token is refused now.
    for token in [DEMO_TOKEN, DEMO_TOKEN_READ_ONLY] {
        let r = token_validate(&polar, &agent, token, DEMO_ORGANIZATION_ID, DEMO_KEY);
        assert_eq!(r.status, 429, "{token}: {}", r.text());
        assert_eq!(r.text(), "");
        assert!(r.header("retry-after").is_some());
    }
    // The other organization's token has its whole budget.
    for i in 0..6 {
        let r = token_validate(&polar, &agent, OTHER_TOKEN, OTHER_ORG, OTHER_KEY);
        assert_eq!(
            r.status,
            200,
            "the other organization's call {}: {}",
            i + 1,
            r.text()
        );
    }
    let r = token_validate(&polar, &agent, OTHER_TOKEN, OTHER_ORG, OTHER_KEY);
    assert_eq!(r.status, 429, "its own budget is spent now");
}

// ---- A receiver --------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
    fn id(&self) -> String {
        self.header("webhook-id").to_string()
    }
}

/// A loopback HTTP receiver that records every request and answers `answer(n, request)`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Each connection is served on a thread of its own, as a real server serves them: one
    /// slow answer holds up nothing else, so what arrives one at a time does so because the
    /// emulator sends it so.
    fn start(answer: impl Fn(usize, &Received) -> u16 + Send + Sync + 'static) -> Receiver {
        Receiver::start_with(None, answer)
    }

    /// [`Receiver::start`] whose 3xx answers carry `location` (a redirect a client could follow).
    fn start_with(
        location: Option<String>,
        answer: impl Fn(usize, &Received) -> u16 + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/hooks/polar",
            listener.local_addr().expect("addr")
        );
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let record = Arc::clone(&got);
        let answer = Arc::new(answer);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let record = Arc::clone(&record);
                let answer = Arc::clone(&answer);
                let location = location.clone();
                thread::spawn(move || serve_one(stream, &record, &*answer, location.as_deref()));
            }
        });
        Receiver { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits (up to 20 s) until `n` requests arrived.
    fn wait_for(&self, n: usize) -> Vec<Received> {
        self.wait_for_within(n, Duration::from_secs(20))
    }

    /// Waits (up to `patience`) until `n` requests arrived.
    fn wait_for_within(&self, n: usize, patience: Duration) -> Vec<Received> {
        let deadline = Instant::now() + patience;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                assert!(got.len() >= n, "{} of {n} deliveries arrived", got.len());
                return got;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Reads one request from `stream`, records it, writes `answer`'s status.
fn serve_one(
    mut stream: std::net::TcpStream,
    record: &Mutex<Vec<Received>>,
    answer: &(impl Fn(usize, &Received) -> u16 + ?Sized),
    location: Option<&str>,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let received = Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let n = {
        let mut all = record.lock().expect("lock");
        all.push(received.clone());
        all.len() - 1
    };
    let status = answer(n, &received);
    let location = match location {
        Some(to) if (300..400).contains(&status) => format!("location: {to}\r\n"),
        _ => String::new(),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\n{location}content-length: 2\r\nconnection: close\r\n\r\nok"
    );
}

/// Verifies a delivery per Standard Webhooks with the `hmac` crate: the signature over
/// `{id}.{timestamp}.{body}` under the base64 key after `whsec_`, and a timestamp within 300 s.
fn verify(secret: &str, r: &Received) -> Result<(), String> {
    let encoded = secret.strip_prefix("whsec_").ok_or("no whsec_ prefix")?;
    let mut buf = vec![0u8; encoded.len()];
    let key = Base64::decode(&mut buf, encoded, None).map_err(|_| "secret is not base64")?;
    verify_with(key, r)
}

/// Verifies a delivery as Polar's original form signs it: the HMAC key is the UTF-8 bytes of
/// the whole secret, `whsec_` included.
fn verify_original(secret: &str, r: &Received) -> Result<(), String> {
    verify_with(secret.as_bytes(), r)
}

/// The signature of `r` under the HMAC key `key`, and a timestamp within 300 s.
fn verify_with(key: &[u8], r: &Received) -> Result<(), String> {
    let timestamp: i64 = r
        .header("webhook-timestamp")
        .parse()
        .map_err(|_| "timestamp")?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - timestamp).abs() > 300 {
        return Err(format!("timestamp {timestamp} is {}s off", now - timestamp));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| "key")?;
    mac.update(format!("{}.{timestamp}.{}", r.id(), r.body).as_bytes());
    let expected = Base64::encode_to_string(mac.finalize().into_bytes()).map_err(|_| "b64")?;
    let signatures = r.header("webhook-signature");
    if signatures
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
    {
        Ok(())
    } else {
        Err(format!("no v1 signature matches ({signatures})"))
    }
}

/// Polar's waits after each failed try, in seconds, before jitter (docs/polar-api.md §14: 2 s,
/// doubling, capped at 20 minutes): ten tries in all.
const SCHEDULE: [u64; 9] = [2, 4, 8, 16, 32, 64, 128, 256, 512];
/// The tests' schedule scale: 512 s is 51 ms, so an event's ten tries take about 0.1 s.
const SCALE: f64 = 0.0001;

/// Each of `gaps` (between tries) is the schedule's wait, scaled, with Polar's jitter: never
/// shorter than half of it, and longer than all of it by at most what an attempt and a loaded
/// machine add (250 ms and 25 %).
fn assert_schedule(gaps: &[Duration], scale: f64) {
    assert_eq!(gaps.len(), SCHEDULE.len(), "{gaps:?}");
    for (i, (gap, secs)) in gaps.iter().zip(SCHEDULE).enumerate() {
        let full = Duration::from_secs_f64(secs as f64 * scale);
        let least = full / 2;
        let most = full.mul_f64(1.25) + Duration::from_millis(250);
        assert!(
            *gap >= least && *gap <= most,
            "wait {} is {gap:?}, the schedule's {least:?} to {full:?} (at most {most:?}); all: {gaps:?}",
            i + 1
        );
    }
}

/// Options whose webhook retries come on Polar's schedule scaled by `schedule_scale`, each
/// try given `timeout`.
fn webhooks(schedule_scale: f64, timeout: Duration) -> Options {
    Options {
        webhooks: WebhookOptions {
            schedule_scale,
            timeout,
        },
        ..Options::default()
    }
}

fn fast() -> Options {
    webhooks(SCALE, Duration::from_secs(5))
}

/// Registers an endpoint for `events` through Polar's route; returns (id, secret).
fn register(
    polar: &Emulator,
    url: &str,
    events: &[&str],
    version: Option<&str>,
) -> (String, String) {
    let mut body = json!({"url": url, "format": "raw", "events": events, "name": "test"});
    if let Some(v) = version {
        body["api_version"] = json!(v);
    }
    let r = api(polar, "POST", "/v1/webhooks/endpoints", Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
    let e = r.json();
    assert_eq!(e["enabled"], true);
    assert_eq!(e["format"], "raw");
    assert_eq!(e["uses_standard_webhook_signature"], true);
    assert_eq!(e["organization_id"], DEMO_ORGANIZATION_ID);
    let secret = e["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (e["id"].as_str().expect("id").to_string(), secret)
}

const GRANT_EVENTS: &[&str] = &[
    "benefit_grant.created",
    "benefit_grant.updated",
    "benefit_grant.revoked",
    "benefit_grant.cycled",
];

/// [`GRANT_EVENTS`] and the customer's state after each.
const GRANT_AND_STATE_EVENTS: &[&str] = &[
    "benefit_grant.created",
    "benefit_grant.updated",
    "benefit_grant.revoked",
    "benefit_grant.cycled",
    "customer.state_changed",
];

fn revoke(polar: &Emulator, key: &str) {
    assert!(polar.update_key(
        key,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        }
    ));
}

// ---- Webhooks ----------------------------------------------------------------------------

#[test]
fn a_revocation_reaches_each_api_versions_endpoint_signed() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    let receiver = Receiver::start(|_, _| 204);
    let mut secrets = Vec::new();
    for version in API_VERSIONS {
        let (id, secret) = register(&polar, &receiver.url, GRANT_EVENTS, Some(version));
        secrets.push((id, secret, *version));
    }
    revoke(&polar, DEMO_KEY);
    let got = receiver.wait_for(API_VERSIONS.len());
    for r in &got {
        let payload = r.json();
        let version = payload["api_version"].as_str().expect("api_version");
        let (_, secret, _) = secrets
            .iter()
            .find(|(_, _, v)| *v == version)
            .expect("an endpoint of that version");
        verify(secret, r).expect("signature");
        // Any other endpoint's secret does not verify it.
        for (_, other, v) in &secrets {
            if *v != version {
                assert!(verify(other, r).is_err());
            }
        }
        assert_eq!(payload["type"], "benefit_grant.revoked");
        let data = &payload["data"];
        assert_eq!(data["is_revoked"], true);
        assert_eq!(data["is_granted"], false);
        assert_eq!(data["benefit"]["type"], "license_keys");
        assert_eq!(data["properties"]["display_key"], "****-4C5B6A");
        let key = polar.key(DEMO_KEY).expect("key");
        assert_eq!(data["properties"]["license_key_id"], key["id"]);
        assert_eq!(data["customer_id"], key["customer_id"]);
        assert_eq!(data["benefit_id"], key["benefit_id"]);
        assert!(data.get("previous_properties").is_none());
        assert_eq!(r.header("content-type"), "application/json");
    }
    // Three endpoints, three events: three different webhook ids.
    let mut ids: Vec<String> = got.iter().map(Received::id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), API_VERSIONS.len());
}

/// `PATCH /__emulator/webhooks/endpoints/{id}`: how the endpoint's deliveries are signed.
fn sign_with_standard(polar: &Emulator, id: &str, standard: bool) -> HttpAnswer {
    call(
        &agent(),
        "PATCH",
        &format!("{}/__emulator/webhooks/endpoints/{id}", polar.url()),
        "",
        Some(&json!({"uses_standard_webhook_signature": standard})),
    )
}

#[test]
fn an_endpoint_switched_to_polars_original_form_is_signed_with_the_whole_secret() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    let original = Receiver::start(|_, _| 204);
    let standard = Receiver::start(|_, _| 204);
    let (original_id, original_secret) =
        register(&polar, &original.url, &["benefit_grant.updated"], None);
    let (_, standard_secret) = register(&polar, &standard.url, &["benefit_grant.updated"], None);
    let r = sign_with_standard(&polar, &original_id, false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["uses_standard_webhook_signature"], false);
    assert_eq!(r.json()["secret"], original_secret.as_str());
    assert_eq!(
        endpoint(&polar, &original_id)["uses_standard_webhook_signature"],
        false
    );
    let bump = |usage: i64| bump_usage(&polar, usage);
    bump(1);
    // Polar's original form: the HMAC key is the UTF-8 bytes of `whsec_…`; the Standard
    // Webhooks key (the base64 after `whsec_`) does not verify it.
    let got = original.wait_for(1);
    verify_original(&original_secret, &got[0]).expect("signed with the whole secret");
    assert!(verify(&original_secret, &got[0]).is_err());
    // The converse on the endpoint left as it was.
    let got = standard.wait_for(1);
    verify(&standard_secret, &got[0]).expect("signed with the base64-decoded secret");
    assert!(verify_original(&standard_secret, &got[0]).is_err());

    // Switched back, the first endpoint signs the Standard Webhooks way again.
    let r = sign_with_standard(&polar, &original_id, true);
    assert_eq!(r.json()["uses_standard_webhook_signature"], true);
    bump(2);
    let got = original.wait_for(2);
    verify(&original_secret, &got[1]).expect("the standard form again");
    assert!(verify_original(&original_secret, &got[1]).is_err());

    // An unknown endpoint, a bad id, another method, a bad body.
    let unknown = sign_with_standard(&polar, "6f0e2a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b", false);
    assert_eq!(unknown.status, 404);
    assert_eq!(sign_with_standard(&polar, "not-a-uuid", false).status, 404);
    let url = format!(
        "{}/__emulator/webhooks/endpoints/{original_id}",
        polar.url()
    );
    assert_eq!(call(&agent(), "GET", &url, "", None).status, 405);
    let bad = call(
        &agent(),
        "PATCH",
        &url,
        "",
        Some(&json!({"standard": false})),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[test]
fn every_change_to_a_key_has_its_event() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    let receiver = Receiver::start(|_, _| 200);
    let (_, secret) = register(&polar, &receiver.url, GRANT_EVENTS, None);
    let update = |u: KeyUpdate| assert!(polar.update_key(DEMO_KEY, u));
    // Revoke, re-grant, disable, enable, expire, a new activation limit, a new usage, a new
    // period, a new key, a rotation. As Polar since September 2026 (polar-license-api.md
    // §15): the re-grant gives the same string back, and disabling or enabling fires no grant
    // webhook.
    for status in ["revoked", "granted", "disabled", "granted"] {
        update(KeyUpdate {
            status: Some(status.into()),
            ..KeyUpdate::default()
        });
    }
    update(KeyUpdate {
        expires_at: Some(Some("2020-01-01T00:00:00Z".into())),
        ..KeyUpdate::default()
    });
    update(KeyUpdate {
        limit_activations: Some(Some(7)),
        ..KeyUpdate::default()
    });
    assert!(polar.update_key(
        DEMO_KEY,
        KeyUpdate {
            usage: Some(4),
            ..KeyUpdate::default()
        }
    ));
    assert!(polar.cycle_key(DEMO_KEY));
    // Polar's cycle keeps the key as it is: its usage is not reset (§16.6).
    assert_eq!(polar.key(DEMO_KEY).expect("key")["usage"], 4);
    polar
        .add_key(SeedKey::new("NEW-0A1B2C3D"))
        .expect("a new key");
    let rotated = polar.rotate_key("NEW-0A1B2C3D").expect("rotated");
    // Nothing changes: no event.
    assert!(polar.update_key(DEMO_KEY, KeyUpdate::default()));

    let got = receiver.wait_for(8);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        receiver.received().len(),
        8,
        "one event per change, none for disabling, enabling or no change"
    );
    let kinds: Vec<String> = got
        .iter()
        .map(|r| {
            verify(&secret, r).expect("signature");
            r.json()["type"].as_str().expect("type").to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "benefit_grant.revoked", // revoked
            "benefit_grant.created", // granted again
            "benefit_grant.updated", // expired
            "benefit_grant.updated", // a new activation limit
            "benefit_grant.updated", // usage set
            "benefit_grant.cycled",  // a new period (usage kept)
            "benefit_grant.created", // a new key
            "benefit_grant.updated", // rotated
        ]
    );
    // The limit change is the key's, not its benefit's: the grant's `benefit` keeps the
    // benefit's own properties (Polar's `BenefitGrant.benefit`, `benefit/schemas.py`; issue
    // #78); the rotation's previous display key is the old string's.
    let limit = got[3].json();
    assert_eq!(
        limit["data"]["benefit"]["properties"]["activations"]["limit"],
        3
    );
    assert_eq!(
        limit["data"]["previous_properties"]["display_key"],
        "****-4C5B6A"
    );
    let rotation = got[7].json();
    assert_eq!(
        rotation["data"]["previous_properties"]["display_key"],
        "****-1B2C3D"
    );
    // The re-grant names the same key (id and string) the revocation did.
    let (revoked, regranted) = (got[0].json(), got[1].json());
    assert_eq!(
        regranted["data"]["properties"], revoked["data"]["properties"],
        "the same key granted again"
    );
    assert_eq!(
        regranted["data"]["properties"]["display_key"],
        "****-4C5B6A"
    );
    assert_eq!(
        polar.key(DEMO_KEY).expect("the same string")["key"],
        DEMO_KEY
    );
    let new_tail: String = rotated
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(
        rotation["data"]["properties"]["display_key"],
        format!("****-{new_tail}")
    );
}

/// polar-license-api.md §15: `customer.state_changed` is queued after every `benefit_grant.*`
/// webhook, not only a rotation's: a revocation and a re-grant by `PATCH`, a new limit, a new
/// period, a new key. Before, only a rotation queued it (a relay that watches the customer's
/// state never heard of a revocation in tests).
#[test]
fn every_grant_event_is_followed_by_the_customers_state_changed() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    let receiver = Receiver::start(|_, _| 200);
    register(&polar, &receiver.url, GRANT_AND_STATE_EVENTS, None);
    let id = polar.key(DEMO_KEY).expect("the key")["id"]
        .as_str()
        .expect("an id")
        .to_string();
    for status in ["revoked", "granted"] {
        let body = json!({ "status": status });
        let r = api(
            &polar,
            "PATCH",
            &format!("/v1/license-keys/{id}"),
            Some(&body),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(polar.update_key(
        DEMO_KEY,
        KeyUpdate {
            limit_activations: Some(Some(7)),
            ..KeyUpdate::default()
        }
    ));
    assert!(polar.cycle_key(DEMO_KEY));
    polar
        .add_key(SeedKey::new("STATE-0A1B2C3D"))
        .expect("a new key");
    let got = receiver.wait_for(10);
    thread::sleep(Duration::from_millis(300));
    let kinds: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().expect("type").to_string())
        .collect();
    assert_eq!(got.len(), 10, "{kinds:?}");
    let state = "customer.state_changed";
    assert_eq!(
        kinds,
        [
            "benefit_grant.revoked",
            state,
            "benefit_grant.created",
            state,
            "benefit_grant.updated",
            state,
            "benefit_grant.cycled",
            state,
            "benefit_grant.created",
            state,
        ]
    );
}

/// polar-license-api.md §15 (#13977): a rotation sends `benefit_grant.updated` and queues
/// `customer.state_changed`. Rotated twice (the emulator's own route over HTTP, then the
/// native call; the customer portal's route calls the same rotation): each time both events,
/// signed, the state naming the customer and its keys' grants, the rotated one under its new
/// display key.
/// Before, only `benefit_grant.updated` came.
#[test]
fn a_rotation_queues_the_customers_state_changed() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    let receiver = Receiver::start(|_, _| 200);
    let (_, secret) = register(&polar, &receiver.url, GRANT_AND_STATE_EVENTS, None);
    let customer = polar.key(DEMO_KEY).expect("the key")["customer_id"].clone();
    let r = api(
        &polar,
        "POST",
        &format!("/__emulator/keys/{DEMO_KEY}/rotate"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r.json()["key"].as_str().expect("the new key").to_string();
    let second = polar.rotate_key(&first).expect("rotated again");

    let got = receiver.wait_for(4);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.received().len(), 4, "two events per rotation");
    let payloads: Vec<Value> = got
        .iter()
        .map(|r| {
            verify(&secret, r).expect("signature");
            r.json()
        })
        .collect();
    let kinds: Vec<&str> = payloads
        .iter()
        .map(|p| p["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        [
            "benefit_grant.updated",
            "customer.state_changed",
            "benefit_grant.updated",
            "customer.state_changed",
        ]
    );
    let tail = |key: &str| format!("****-{}", &key[key.len() - 6..]);
    let license_key_id = payloads[0]["data"]["properties"]["license_key_id"].clone();
    assert!(license_key_id.is_string());
    for (state, key) in [(&payloads[1], &first), (&payloads[3], &second)] {
        let data = &state["data"];
        assert_eq!(data["id"], customer, "{state}");
        assert_eq!(data["organization_id"], DEMO_ORGANIZATION_ID);
        assert!(data["email"].is_string(), "{state}");
        // Every key of the demo customer's is a grant; the rotated one under its new string.
        let grants = data["granted_benefits"].as_array().expect("grants");
        assert!(grants.iter().all(|g| g["benefit_type"] == "license_keys"));
        let rotated: Vec<&Value> = grants
            .iter()
            .filter(|g| g["properties"]["license_key_id"] == license_key_id)
            .collect();
        assert_eq!(rotated.len(), 1, "{state}");
        assert_eq!(rotated[0]["properties"]["display_key"], tail(key));
        assert_eq!(data["active_subscriptions"], json!([]));
        assert_eq!(data["active_meters"], json!([]));
    }
}

/// A payload's `timestamp`.
fn stamp(payload: &Value) -> time::OffsetDateTime {
    let text = payload["timestamp"].as_str().expect("timestamp");
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

/// `GET path` on `polar`'s API (the demo token), which must answer 200: its JSON.
fn get(polar: &Emulator, path: &str) -> Value {
    let r = api(polar, "GET", path, None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn deliveries(polar: &Emulator, endpoint: &str) -> Vec<Value> {
    let page = get(
        polar,
        &format!("/v1/webhooks/deliveries?endpoint_id={endpoint}&limit=100"),
    );
    let items = page["items"].as_array().expect("items").clone();
    assert_eq!(page["pagination"]["total_count"], items.len());
    items
}

/// How many deliveries (tries) of `endpoint` `GET /v1/webhooks/deliveries` counts.
fn delivery_count(polar: &Emulator, endpoint: &str) -> u64 {
    get(
        polar,
        &format!("/v1/webhooks/deliveries?endpoint_id={endpoint}&limit=1"),
    )["pagination"]["total_count"]
        .as_u64()
        .expect("total_count")
}

fn endpoint(polar: &Emulator, id: &str) -> Value {
    get(polar, &format!("/v1/webhooks/endpoints/{id}"))
}

#[test]
fn polars_own_schedule_and_timeout_are_the_default() {
    let default = WebhookOptions::default();
    assert_eq!(default.schedule_scale, 1.0);
    assert_eq!(default.timeout, Duration::from_secs(10));
    assert_eq!(Options::default().webhooks, default);
}

#[test]
fn a_failing_receiver_gets_ten_tries_on_polars_backoff_and_one_failed_event_disables_nothing() {
    // 512 s is 512 ms here: the ten tries take about 0.8 s.
    let scale = 0.001;
    let polar = Emulator::start(seed(), webhooks(scale, Duration::from_secs(5))).expect("emulator");
    let receiver = Receiver::start(|_, _| 500);
    let (id, secret) = register(&polar, &receiver.url, GRANT_EVENTS, None);
    revoke(&polar, DEMO_KEY);
    let got = receiver.wait_for(10);
    // Every try is the same event: one webhook-id, each signed.
    for r in &got {
        assert_eq!(r.id(), got[0].id());
        verify(&secret, r).expect("signature");
    }
    // Backoff: each wait is Polar's (2 s, 4 s, … 512 s, scaled), with 50-100 % jitter.
    let gaps: Vec<Duration> = got.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert_schedule(&gaps, scale);
    // Ten tries in all: no eleventh (it would come within 1.2 s if the schedule went on).
    thread::sleep(Duration::from_millis(1_200));
    assert_eq!(receiver.received().len(), 10, "ten tries in all");
    let list = deliveries(&polar, &id);
    assert_eq!(list.len(), 10, "every try shows");
    for d in &list {
        assert_eq!(d["succeeded"], false);
        assert_eq!(d["http_code"], 500);
        assert_eq!(
            d["webhook_event"]["id"].as_str(),
            Some(got[0].id().as_str())
        );
        assert_eq!(d["webhook_event"]["type"], "benefit_grant.revoked");
    }
    // One event that failed every try is not ten: the endpoint stays enabled.
    assert_eq!(endpoint(&polar, &id)["enabled"], true);
    // Unknown ids: Polar's 404; a bad one: its 422.
    let r = call(
        &agent(),
        "POST",
        &format!(
            "{}/v1/webhooks/events/{}/redeliver",
            polar.url(),
            "6f0e2a8b-1c3d-4e5f-8a9b-0c1d2e3f4a5b"
        ),
        DEMO_TOKEN,
        None,
    );
    assert_error(&r, 404, "ResourceNotFound", "Not found");
    let r = api(&polar, "GET", "/v1/webhooks/endpoints/not-a-uuid", None);
    assert_eq!(r.status, 422);
}

/// The number of distinct events (by `webhook-id`) among `got`, in the order they came.
fn events_of(got: &[Received]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for r in got {
        if !ids.contains(&r.id()) {
            ids.push(r.id());
        }
    }
    ids
}

#[test]
fn an_endpoint_is_disabled_once_its_ten_most_recent_events_each_failed_every_try() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    // Every try fails but the first try of the tenth event: nine failed events, a success,
    // then failed events again.
    let seen: Mutex<Vec<String>> = Mutex::default();
    let receiver = Receiver::start(move |_, r| {
        let mut seen = seen.lock().expect("lock");
        let first_try = !seen.contains(&r.id());
        if first_try {
            seen.push(r.id());
        }
        if first_try && seen.len() == 10 {
            200
        } else {
            500
        }
    });
    let (id, _) = register(&polar, &receiver.url, GRANT_EVENTS, None);
    // Twenty events at once: each waits for the one before (in order per endpoint).
    for usage in 1..=20 {
        bump_usage(&polar, usage);
    }
    // 9 events x 10 tries, 1 success, 9 x 10 more, and the first try of the twentieth: the
    // nine failed events after the success are not ten, so the endpoint is still enabled (the
    // 182nd try is sent only once the 181st is done).
    let got = receiver.wait_for(182);
    assert_eq!(events_of(&got).len(), 20);
    assert_eq!(
        endpoint(&polar, &id)["enabled"],
        true,
        "nine failed events since a success disable nothing"
    );
    // The twentieth event fails every try too: ten in a row, the endpoint is disabled.
    let got = receiver.wait_for(191);
    assert!(got[181..].iter().all(|r| r.id() == got[181].id()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while endpoint(&polar, &id)["enabled"] == true && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let disabled = endpoint(&polar, &id);
    assert_eq!(disabled["enabled"], false, "{disabled}");
    assert_eq!(delivery_count(&polar, &id), 191, "every try shows");
    // Disabled: nothing more is delivered, a new change's event included.
    bump_usage(&polar, 21);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.received().len(), 191, "nothing sent once disabled");
    // Enabled again (as Polar lets a member do, `PATCH {"enabled": true}`), a redelivery
    // goes out with the event's own webhook-id.
    let r = api(
        &polar,
        "PATCH",
        &format!("/v1/webhooks/endpoints/{id}"),
        Some(&json!({"enabled": true})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["enabled"], true);
    let event = got[0].id();
    let r = api(
        &polar,
        "POST",
        &format!("/v1/webhooks/events/{event}/redeliver"),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let again = receiver.wait_for(192);
    assert_eq!(again[191].id(), event, "a redelivery keeps its webhook-id");
    // Enabled again, the count starts over: this one event failing every try (ten tries)
    // does not disable it.
    receiver.wait_for(201);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.received().len(), 201);
    assert_eq!(endpoint(&polar, &id)["enabled"], true);
}

#[test]
fn a_redirect_is_a_failed_try_and_is_not_followed() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    // Where the redirect points: a receiver that would accept the event.
    let elsewhere = Receiver::start(|_, _| 200);
    let receiver = Receiver::start_with(Some(elsewhere.url.clone()), |_, _| 307);
    let (id, _) = register(&polar, &receiver.url, GRANT_EVENTS, None);
    revoke(&polar, DEMO_KEY);
    let got = receiver.wait_for(10);
    assert!(
        got.iter().all(|r| r.id() == got[0].id()),
        "one event, ten tries"
    );
    thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.received().len(), 10);
    assert!(
        elsewhere.received().is_empty(),
        "the redirect is not followed"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while deliveries(&polar, &id).len() < 10 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let list = deliveries(&polar, &id);
    assert_eq!(list.len(), 10);
    for d in &list {
        assert_eq!(
            (&d["succeeded"], &d["http_code"]),
            (&json!(false), &json!(307))
        );
    }
}

#[test]
fn a_large_event_arrives_whole_and_signed() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    let receiver = Receiver::start(|_, _| 200);
    let (_, secret) = register(&polar, &receiver.url, GRANT_EVENTS, None);
    // Past the 64 KiB a receiver's general body cap often is.
    polar.set_webhook_fault(Some(WebhookFault::Large { bytes: 200_000 }));
    revoke(&polar, DEMO_KEY);
    let got = receiver.wait_for(1);
    let big = &got[0];
    assert!(big.body.len() >= 200_000, "{} bytes", big.body.len());
    assert!(big.body.len() < 201_100, "{} bytes", big.body.len());
    verify(&secret, big).expect("signed over the whole body");
    let payload = big.json();
    assert_eq!(payload["type"], "benefit_grant.revoked");
    assert_eq!(
        payload["data"]["customer"]["id"],
        payload["data"]["customer_id"]
    );
    let metadata = payload["data"]["customer"]["metadata"]
        .as_object()
        .expect("metadata");
    assert!(metadata.len() > 300, "{}", metadata.len());
    // The fault was for one change: the next event is its usual size.
    bump_usage(&polar, 7);
    let got = receiver.wait_for(2);
    assert!(got[1].body.len() < 10_000, "{} bytes", got[1].body.len());
    verify(&secret, &got[1]).expect("signed");
}

#[test]
fn an_answer_after_the_timeout_is_a_failed_attempt_and_is_retried() {
    let polar =
        Emulator::start(seed(), webhooks(SCALE, Duration::from_millis(300))).expect("emulator");
    // The first attempt is answered 200, but after 2 s; the retry at once.
    let receiver = Receiver::start(|n, _| {
        if n == 0 {
            thread::sleep(Duration::from_secs(2));
        }
        200
    });
    let (id, secret) = register(&polar, &receiver.url, GRANT_EVENTS, None);
    revoke(&polar, DEMO_KEY);
    let first = receiver.wait_for(1);
    // The attempt is given up at the timeout, while the receiver still holds its answer.
    let deadline = first[0].at + Duration::from_millis(1_500);
    let mut list = deliveries(&polar, &id);
    while list.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        list = deliveries(&polar, &id);
    }
    assert!(
        Instant::now() < first[0].at + Duration::from_secs(2),
        "the attempt is recorded before the receiver answered"
    );
    // Newest first: the first attempt is the last one listed (its retry may follow at once).
    let oldest = list.last().expect("an attempt recorded");
    assert_eq!(oldest["succeeded"], false);
    assert_eq!(
        oldest["http_code"],
        Value::Null,
        "no answer in time: {oldest}"
    );
    assert!(
        oldest["response"].is_string(),
        "the error is kept: {oldest}"
    );
    // Retried: the same event, and this time it succeeds.
    let got = receiver.wait_for(2);
    assert_eq!(got[1].id(), got[0].id());
    verify(&secret, &got[1]).expect("signed");
    let deadline = Instant::now() + Duration::from_secs(5);
    while deliveries(&polar, &id).len() < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let list = deliveries(&polar, &id);
    let outcomes: Vec<(Value, Value)> = list
        .iter()
        .map(|d| (d["succeeded"].clone(), d["http_code"].clone()))
        .collect();
    // Newest first.
    assert_eq!(
        outcomes,
        [(json!(true), json!(200)), (json!(false), Value::Null)]
    );
    assert_eq!(endpoint(&polar, &id)["enabled"], true);
}

/// A receiver that fails the first `fails` attempts of each event (by `webhook-id`), then
/// answers 200.
fn failing_first(fails: usize) -> Receiver {
    let attempts: Mutex<std::collections::HashMap<String, usize>> = Mutex::default();
    Receiver::start(move |_, r| {
        let mut attempts = attempts.lock().expect("lock");
        let n = attempts.entry(r.id()).or_insert(0);
        *n += 1;
        if *n <= fails {
            500
        } else {
            200
        }
    })
}

fn bump_usage(polar: &Emulator, usage: i64) {
    assert!(polar.update_key(
        DEMO_KEY,
        KeyUpdate {
            usage: Some(usage),
            ..KeyUpdate::default()
        }
    ));
}

#[test]
fn a_success_resets_the_count_of_consecutive_failures() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    // Seven failures, then a success, for each event: fourteen failed tries in all, no event
    // that failed every try.
    let receiver = failing_first(7);
    let (id, _) = register(&polar, &receiver.url, GRANT_EVENTS, None);
    bump_usage(&polar, 1);
    let got = receiver.wait_for(8);
    assert_eq!(got[7].id(), got[0].id());
    bump_usage(&polar, 2);
    let got = receiver.wait_for(16);
    assert_ne!(got[8].id(), got[0].id(), "the second event");
    assert_eq!(got[15].id(), got[8].id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while deliveries(&polar, &id).len() < 16 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let list = deliveries(&polar, &id);
    assert_eq!(list.len(), 16);
    assert_eq!(list.iter().filter(|d| d["succeeded"] == false).count(), 14);
    assert_eq!(
        endpoint(&polar, &id)["enabled"],
        true,
        "no event failed every try"
    );
}

#[test]
fn events_arrive_in_order_one_at_a_time_even_to_a_slow_receiver() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    let receiver = Receiver::start(|_, _| {
        thread::sleep(Duration::from_millis(30));
        200
    });
    register(&polar, &receiver.url, GRANT_EVENTS, None);
    for usage in 1..=5 {
        assert!(polar.update_key(
            DEMO_KEY,
            KeyUpdate {
                usage: Some(usage),
                ..KeyUpdate::default()
            }
        ));
    }
    let got = receiver.wait_for(5);
    let stamps: Vec<time::OffsetDateTime> = got
        .iter()
        .map(|r| {
            let p = r.json();
            assert_eq!(p["type"], "benefit_grant.updated");
            stamp(&p)
        })
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort();
    // One at a time: each arrived after the one before was answered (30 ms each).
    for w in got.windows(2) {
        assert!(w[1].at - w[0].at >= Duration::from_millis(25));
    }
    assert_eq!(stamps, sorted, "in the order they happened");
}

#[test]
fn injected_faults_a_receiver_must_survive() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    // The receiver accepts only what verifies (as a real one must), so a faulted attempt fails
    // and is retried.
    let secret_cell: Arc<Mutex<String>> = Arc::default();
    let secret_for = Arc::clone(&secret_cell);
    let receiver = Receiver::start(move |_, r| {
        let secret = secret_for.lock().expect("lock").clone();
        if verify(&secret, r).is_ok() {
            200
        } else {
            400
        }
    });
    let (_, secret) = register(&polar, &receiver.url, GRANT_EVENTS, None);
    *secret_cell.lock().expect("lock") = secret.clone();
    let bump = |usage: i64| bump_usage(&polar, usage);

    // Duplicate: the same webhook-id twice, both valid.
    polar.set_webhook_fault(Some(WebhookFault::Duplicate));
    bump(1);
    let got = receiver.wait_for(2);
    assert_eq!(got[0].id(), got[1].id());
    assert_eq!(got[0].body, got[1].body);
    verify(&secret, &got[1]).expect("both valid");

    // Wrong signature first, then the right one (same id).
    polar.set_webhook_fault(Some(WebhookFault::BadSignature));
    bump(2);
    let got = receiver.wait_for(4);
    assert!(verify(&secret, &got[2]).is_err());
    assert_eq!(got[3].id(), got[2].id());
    verify(&secret, &got[3]).expect("the retry is signed right");

    // A stale timestamp (signed right for it), then a fresh one.
    polar.set_webhook_fault(Some(WebhookFault::StaleTimestamp { seconds: 600 }));
    bump(3);
    let got = receiver.wait_for(6);
    let stale: i64 = got[4].header("webhook-timestamp").parse().expect("ts");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(now - stale >= 599, "{now} - {stale}");
    assert!(verify(&secret, &got[4]).unwrap_err().contains("off"));
    assert_eq!(got[5].id(), got[4].id());
    verify(&secret, &got[5]).expect("fresh");

    // Two events out of order: the second change's event comes first.
    polar.set_webhook_fault(Some(WebhookFault::Reorder));
    bump(4);
    thread::sleep(Duration::from_millis(150));
    assert_eq!(receiver.received().len(), 6, "held until the next event");
    bump(5);
    let got = receiver.wait_for(8);
    let first = got[6].json();
    let second = got[7].json();
    assert!(
        stamp(&first) > stamp(&second),
        "the later change's event came first"
    );

    // Delayed.
    polar.set_webhook_fault(Some(WebhookFault::Delay { ms: 400 }));
    let start = Instant::now();
    bump(6);
    let got = receiver.wait_for(9);
    assert!(got[8].at - start >= Duration::from_millis(390));
}

#[test]
fn endpoint_routes_need_a_webhooks_scope_and_refuse_bad_bodies() {
    let polar = Emulator::start(seed(), fast()).expect("emulator");
    let a = agent();
    let url = format!("{}/v1/webhooks/endpoints", polar.url());
    let r = call(&a, "GET", &url, "polar_oat_unknown", None);
    assert_eq!(r.status, 401);
    let r = call(
        &a,
        "POST",
        &url,
        polar_license_emulator::DEMO_TOKEN_READ_ONLY,
        Some(&json!({"url": "http://127.0.0.1:9/x", "format": "raw", "events": []})),
    );
    assert_eq!(r.status, 403);
    assert!(r
        .header("www-authenticate")
        .unwrap_or("")
        .contains("webhooks:write"));
    let r = call(
        &a,
        "POST",
        &url,
        DEMO_TOKEN,
        Some(&json!({"url": "nope", "format": "discord", "events": ["benefit_grant.nope"]})),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let locs = r.detail_locs();
    assert_eq!(
        locs,
        vec![
            json!(["body", "url"]),
            json!(["body", "format"]),
            json!(["body", "events", 0])
        ]
    );
    let r = call(&a, "POST", &url, DEMO_TOKEN, Some(&json!({})));
    assert_eq!(r.status, 422);
    // Another organization's token sees none of this organization's endpoints.
    let (id, secret) = register(&polar, "http://127.0.0.1:9/x", GRANT_EVENTS, None);
    let r = call(&a, "GET", &format!("{url}/{id}"), OTHER_TOKEN, None);
    assert_eq!(r.status, 404);
    let r = call(&a, "GET", &url, OTHER_TOKEN, None);
    assert_eq!(r.json()["pagination"]["total_count"], 0);
    // A new secret, then the endpoint deleted.
    let r = call(&a, "PATCH", &format!("{url}/{id}/secret"), DEMO_TOKEN, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(r.json()["secret"].as_str(), Some(secret.as_str()));
    let r = call(&a, "DELETE", &format!("{url}/{id}"), DEMO_TOKEN, None);
    assert_eq!(r.status, 204);
    let r = call(&a, "GET", &format!("{url}/{id}"), DEMO_TOKEN, None);
    assert_eq!(r.status, 404);
}
