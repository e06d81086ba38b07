//! The relay's tests' one rig (issue #44, "one test World", for this crate): what the suites
//! of `crates/relay/tests` had each written for themselves. The emulator and the relay started
//! in process over loopback, the HTTP calls to them, Polar's Standard-Webhooks signature of an
//! event, the core's requests and clocks, and the polling waits. Each suite includes it with
//! `mod rig;` and keeps its own scenarios, keys and secrets.
//!
//! Not every suite uses every helper.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ct_codecs::{Base64, Decoder, Encoder};
use hmac::{Hmac, Mac};
use polar_license::lease::{LeaseExpect, SigningKey, LEASE_HEADER};
use polar_license::proto::Server;
use polar_license::{
    AccessToken, HttpRequest, Key, Transport, TransportError, TransportErrorKind, UreqTransport,
};
use polar_license_emulator::{
    Emulator, Options, Seed, SeedKey, WebhookOptions, DEMO_ORGANIZATION_ID, DEMO_TOKEN,
};
use polar_license_relay::flow::background::Background;
use polar_license_relay::flow::{Exchange, ExchangeOptions, Given, Need};
use polar_license_relay::store::{
    Backend, BudgetState, Entry, EntryId, JournalItem, MemoryBackend, Narrow, Narrower,
    PagedBackend, StoreError, StoreOptions, Updater, Wants, Writes,
};
use polar_license_relay::{
    serve_with, Limits, Now, Rate, Relay, RelayConfig, RelayRequest, RelayResponse, Running,
    ServeOptions, StoreConfig, SOURCE_HEADER,
};
use serde_json::{json, Value};
use sha2::Sha256;

/// The paged store's host, as its unit tests have it.
#[path = "../../src/store/paged/host.rs"]
pub mod host;

/// The public routes' prefix.
pub const PUBLIC: &str = "/v1/customer-portal/license-keys/";
/// The relay's webhook route.
pub const WEBHOOK: &str = "/v1/webhooks/polar";

// ---- The emulator ----------------------------------------------------------------------------

/// The emulator with the demo seed and its default options.
pub fn emulator() -> Emulator {
    Emulator::start(Seed::demo(), Options::default()).expect("emulator")
}

/// The emulator with the demo seed, its token allowed `budget` calls a minute (its 429 past
/// them, as Polar's).
pub fn budgeted_emulator(budget: u32) -> Emulator {
    let options = Options {
        token_budget: Some(budget),
        ..Options::default()
    };
    Emulator::start(Seed::demo(), options).expect("emulator")
}

/// The emulator with the demo seed, its webhooks scheduled at once (their retry schedule
/// scaled down) and given 5 s each.
pub fn webhook_emulator() -> Emulator {
    webhook_emulator_with(Seed::demo())
}

/// [`webhook_emulator`] with the seed `seed`.
pub fn webhook_emulator_with(seed: Seed) -> Emulator {
    let options = Options {
        webhooks: WebhookOptions {
            schedule_scale: 0.0001,
            timeout: Duration::from_secs(5),
        },
        ..Options::default()
    };
    Emulator::start(seed, options).expect("emulator")
}

/// `key` added to `polar`'s seed, with `limit_activations`.
pub fn add_key(polar: &Emulator, key: String, limit_activations: Option<i64>) -> String {
    polar
        .add_key(SeedKey {
            limit_activations,
            ..SeedKey::new(&key)
        })
        .expect("a key");
    key
}

/// A webhook endpoint registered in Polar (the emulator) as a seller would, at a placeholder
/// URL, for `events`: its id and its secret.
pub fn endpoint(polar: &Emulator, events: &[&str]) -> (String, String) {
    let mut created = agent(Duration::from_secs(10))
        .post(&format!("{}/v1/webhooks/endpoints", polar.url()))
        .header("authorization", &format!("Bearer {DEMO_TOKEN}"))
        .header("content-type", "application/json")
        .send(
            json!({"url": "http://127.0.0.1:9/placeholder", "format": "raw", "events": events})
                .to_string(),
        )
        .expect("created");
    let endpoint: Value =
        serde_json::from_str(&created.body_mut().read_to_string().expect("body")).expect("JSON");
    (
        endpoint["id"].as_str().expect("id").to_string(),
        endpoint["secret"].as_str().expect("secret").to_string(),
    )
}

/// Polar's endpoint `id` pointed at `relay`'s webhook route.
pub fn point_endpoint_at(polar: &Emulator, id: &str, relay: &Running) {
    let hook = format!("{}{WEBHOOK}", relay.url());
    let status = agent(Duration::from_secs(10))
        .patch(&format!("{}/v1/webhooks/endpoints/{id}", polar.url()))
        .header("authorization", &format!("Bearer {DEMO_TOKEN}"))
        .header("content-type", "application/json")
        .send(json!({"url": hook}).to_string())
        .expect("updated")
        .status();
    assert_eq!(status.as_u16(), 200);
}

/// The deliveries Polar (the emulator) made to its endpoint `id`.
pub fn deliveries(polar: &Emulator, id: &str) -> Vec<Value> {
    let mut r = agent(Duration::from_secs(10))
        .get(&format!(
            "{}/v1/webhooks/deliveries?endpoint_id={id}",
            polar.url()
        ))
        .header("authorization", &format!("Bearer {DEMO_TOKEN}"))
        .call()
        .expect("deliveries");
    let list: Value =
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("JSON");
    list["items"].as_array().expect("items").clone()
}

/// Waits (at most `within`) until at least `count` of the deliveries to endpoint `id` succeeded:
/// whether they did. The emulator records a delivery once it has read the relay's answer, a
/// moment after the relay acted on it, so a test that saw the effect waits for the record.
pub fn delivered(polar: &Emulator, id: &str, count: usize, within: Duration) -> bool {
    wait_until(within, Duration::from_millis(50), || {
        deliveries(polar, id)
            .iter()
            .filter(|d| d["succeeded"] == true)
            .count()
            >= count
    })
}

// ---- The relay -------------------------------------------------------------------------------

/// No per-IP or per-key limit (the store's budget is the test's limit).
pub fn unlimited() -> Limits {
    limits(Rate::new(0, 0), Rate::new(0, 0))
}

/// The per-IP limit `per_ip` and the per-key limit `per_key` (`Rate::new(0, 0)`: none), the
/// other limits the defaults.
pub fn limits(per_ip: Rate, per_key: Rate) -> Limits {
    Limits {
        per_ip,
        per_key,
        ..Limits::default()
    }
}

/// The relay's configuration for Polar at `polar_url` with the demo token, signing with a new
/// key named `kid`, with the default limits and no store.
pub fn config(polar_url: String, kid: &str) -> RelayConfig {
    let signer = SigningKey::generate(Some(kid)).expect("a key");
    config_with(polar_url, DEMO_TOKEN, signer)
}

/// The relay's configuration for Polar at `polar_url` with `token`, signing with `signer`,
/// with the default limits and no store.
pub fn config_with(polar_url: String, token: &str, signer: SigningKey) -> RelayConfig {
    RelayConfig::new(Server::Custom(polar_url), AccessToken::new(token), signer)
}

/// The configuration of a relay for Polar at `polar_url` with the demo token whose leases are
/// signed outside it (`Signer::External`, kid `ext`), as the npm package's relay's are: the
/// configuration, the signing key (its public half the configuration's), and its Ed25519
/// secret read from the key file's text, for ed25519-compact (WebCrypto's stand-in) to sign
/// what the machine asks.
pub fn externally_signed(
    polar_url: String,
) -> (RelayConfig, SigningKey, ed25519_compact::SecretKey) {
    let signing = SigningKey::generate(Some("ext")).expect("a key");
    let text = signing.to_file_text();
    let b64 = text.trim().split_once("=k4.secret.").expect("a key line").1;
    let raw = ct_codecs::Base64UrlSafeNoPadding::decode_to_vec(b64, None).expect("base64url");
    let secret = ed25519_compact::SecretKey::from_slice(&raw).expect("64 bytes");
    let signer = polar_license_relay::Signer::External {
        kid: "ext".into(),
        public_key: signing.public_paserk(),
    };
    let config = RelayConfig::with_signer(
        Server::Custom(polar_url),
        AccessToken::new(DEMO_TOKEN),
        signer,
    );
    (config, signing, secret)
}

/// A store over `backend` with `options`, verifying webhooks with `secret`.
pub fn store(
    backend: Arc<dyn Backend>,
    options: StoreOptions,
    secret: Option<String>,
) -> Option<StoreConfig> {
    Some(StoreConfig {
        backend,
        options,
        webhook_secret: secret,
    })
}

/// A memory store of `capacity` entries.
pub fn memory(capacity: usize) -> Arc<dyn Backend> {
    Arc::new(MemoryBackend::new(capacity))
}

/// The relay's calls to Polar over HTTP: a 2 s connect, `timeout` for the call, 1 MiB bodies.
pub fn upstream(timeout: Duration) -> UreqTransport {
    UreqTransport::new(Duration::from_secs(2), timeout, 1 << 20)
}

/// The relay of `config` calling Polar through `upstream`, with the tests' blocking host of
/// its request machine ([`Relayed::handle`]).
pub fn relay(config: RelayConfig, upstream: impl Transport + 'static) -> Relayed {
    let polar: Arc<dyn Transport> = Arc::new(upstream);
    let relay = Relay::new(config, Box::new(Through(Arc::clone(&polar)))).expect("the relay");
    Relayed {
        relay,
        polar,
        flying: Default::default(),
    }
}

/// The relay of `config` with a memory store of 1,000 entries verifying webhooks with
/// `secret`, calling Polar with a 10 s timeout, served with the default options.
pub fn listen_stored(mut config: RelayConfig, secret: &str) -> Running {
    config.store = store(memory(1_000), StoreOptions::default(), Some(secret.into()));
    listen_with(config, ServeOptions::default())
}

/// The relay of `config`, calling Polar with a 10 s timeout, served with `options`.
pub fn listen_with(config: RelayConfig, options: ServeOptions) -> Running {
    listen(relay(config, upstream(Duration::from_secs(10))), options)
}

/// The connection caps' set-up: the webhook emulator with a key `key` of 3 activations, a
/// relay config signed as `kid` with no rate limits, and serve options of `max` connections,
/// `per_address` of them per address (for the test to adjust, then [`listen_with`]).
pub fn capped(
    kid: &str,
    key: &str,
    max: usize,
    per_address: usize,
) -> (Emulator, String, RelayConfig, ServeOptions) {
    let polar = webhook_emulator();
    let key = add_key(&polar, key.into(), Some(3));
    let mut config = config(polar.url(), kid);
    config.limits = unlimited();
    let mut options = ServeOptions::default();
    options.max_connections = max;
    options.max_connections_per_address = per_address;
    (polar, key, config, options)
}

/// The status of a whole answer read from `stream` to its end (0: none, the connection reset
/// or closed).
pub fn status_of(stream: &mut impl Read) -> u16 {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `relay` served on a loopback port of its own with `options`.
pub fn listen(relay: impl Into<Relay>, options: ServeOptions) -> Running {
    serve_with(Arc::new(relay.into()), "127.0.0.1:0", options).expect("it listens")
}

/// One transport shared by the relay (its own calls: the background's, the native server's)
/// and the tests' blocking host ([`Relayed::handle`]).
struct Through(Arc<dyn Transport>);

impl Transport for Through {
    fn send(
        &self,
        request: &HttpRequest,
    ) -> Result<polar_license::proto::HttpResponse, TransportError> {
        self.0.send(request)
    }

    // A device listing's read (issue #64) is a GET.
    fn send_portal(
        &self,
        request: &polar_license::portal::PortalRequest,
    ) -> Result<polar_license::proto::HttpResponse, TransportError> {
        self.0.send_portal(request)
    }
}

/// A relay and the transport its calls to Polar go through: the tests' blocking host of the
/// request machine, on the caller's thread (the door every host goes through: [`Exchange`],
/// driven by [`Drive`]). Everything else is the relay's (`Deref`).
pub struct Relayed {
    relay: Relay,
    polar: Arc<dyn Transport>,
    /// The flights a check of this host leads, until the machine says they landed.
    flying: (Mutex<HashSet<String>>, Condvar),
}

impl std::ops::Deref for Relayed {
    type Target = Relay;
    fn deref(&self) -> &Relay {
        &self.relay
    }
}

impl From<Relayed> for Relay {
    fn from(relayed: Relayed) -> Relay {
        relayed.relay
    }
}

impl Relayed {
    /// [`Relay::with_seats`] on the relay this host drives.
    pub fn with_seats(
        self,
        seats: polar_license_relay::SeatOptions,
    ) -> Result<Relayed, polar_license::Error> {
        let Relayed {
            relay,
            polar,
            flying,
        } = self;
        Ok(Relayed {
            relay: relay.with_seats(seats)?,
            polar,
            flying,
        })
    }

    /// Answers `req` at `now` as a blocking host does: the request machine driven to its end,
    /// each call to Polar made through the relay's transport and waited for (no patience, so
    /// no stale answer while a call runs), another check's call waited for until the machine
    /// that leads it says it landed (at most 30 s), the store saving itself, a lease signed
    /// by the relay (no host signature).
    pub fn handle(&self, req: &RelayRequest, now: Now) -> RelayResponse {
        let polar = &*self.polar;
        let mut drive = Drive::new(&self.relay, req.clone(), now);
        drive.entropy = polar_license_relay::os_entropy();
        loop {
            let need = drive.next();
            self.landed(&mut drive);
            match need {
                Need::Done => break,
                Need::Send {
                    request,
                    method,
                    flight,
                    ..
                } => {
                    if let Some(flight) = flight {
                        self.lock().insert(flight);
                    }
                    let answer = match method {
                        polar_license::portal::Method::Get => {
                            polar.send_portal(&polar_license::portal::PortalRequest {
                                method,
                                url: request.url.clone(),
                                headers: request.headers.clone(),
                                body: Vec::new(),
                            })
                        }
                        polar_license::portal::Method::Post => polar.send(&request),
                    };
                    drive.give(Given::Upstream(answer));
                }
                Need::Call => {
                    let answer = polar.send(drive.sent());
                    drive.give(Given::Upstream(answer));
                }
                Need::Flight { flight, .. } => {
                    self.wait(&flight);
                    drive.give(Given::Landed);
                }
                other => drive.as_host(other),
            }
        }
        self.landed(&mut drive);
        drive.answer.expect("the exchange answered")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.flying.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The flights `drive`'s machine said landed: their waiters wake.
    fn landed(&self, drive: &mut Drive<'_>) {
        if drive.landed.is_empty() {
            return;
        }
        let mut flying = self.lock();
        for flight in drive.landed.drain(..) {
            flying.remove(&flight);
        }
        self.flying.1.notify_all();
    }

    /// Blocks while `flight` is led by a check of this host (a moment first: the leading
    /// check's host may not have been handed its call yet), at most 30 s.
    fn wait(&self, flight: &str) {
        std::thread::sleep(Duration::from_millis(5));
        let flying = self.lock();
        let _ = self
            .flying
            .1
            .wait_timeout_while(flying, Duration::from_secs(30), |f| f.contains(flight));
    }
}

/// The store's options of a flood against its byte cap `max_bytes`: Polar's budget `budget` a
/// minute (1,000 of it kept for known keys), no roster (every new key is Polar's to answer).
pub fn flood_options(budget: u32, max_bytes: u64) -> StoreOptions {
    let mut options = StoreOptions::default();
    options.roster = false;
    options.budget = budget;
    options.reserve = 1_000;
    options.max_bytes = max_bytes;
    options
}

// ---- Calls over HTTP -------------------------------------------------------------------------

/// An agent that reads every status as an answer, uses no proxy and gives up after a timeout:
/// the testkit's, which every suite shares.
pub use polar_license_testkit::http::agent;

/// An answer over HTTP: its status, `polar-license-source`, lease, `Age` and body.
pub struct Answer {
    pub status: u16,
    pub source: Option<String>,
    pub lease: Option<String>,
    pub age: Option<i64>,
    pub body: String,
}

/// `body` posted as JSON to `url` with `headers`, by `agent`.
pub fn post_with(agent: &ureq::Agent, url: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = agent.post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body.to_string()).expect("an answer");
    let header = |n: &str| header_of(&resp, n);
    let (source, lease) = (header(SOURCE_HEADER), header(LEASE_HEADER));
    let age = header("age").and_then(|a| a.parse().ok());
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status,
        source,
        lease,
        age,
        body,
    }
}

/// The header `name` of an answer, when it has one that is text.
pub fn header_of(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// What a lease of `key` in the demo organization must say to verify: its activation and
/// machine (`None`: none), no benefit.
pub fn expect_lease<'a>(
    key: &'a Key,
    activation_id: Option<&'a str>,
    machine: Option<&'a str>,
) -> LeaseExpect<'a> {
    LeaseExpect {
        organization_id: DEMO_ORGANIZATION_ID,
        key,
        activation_id,
        benefit_id: None,
        machine,
    }
}

/// A validate of `key` in the demo organization, posted to the relay at `base` with `headers`.
pub fn validate_at(agent: &ureq::Agent, base: &str, key: &str, headers: &[(&str, &str)]) -> Answer {
    post_with(
        agent,
        &format!("{base}{PUBLIC}validate"),
        &json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID}).to_string(),
        headers,
    )
}

/// A webhook `body` with `headers` delivered to the relay at `base`: its status.
pub fn deliver_at(
    agent: &ureq::Agent,
    base: &str,
    headers: &[(String, String)],
    body: &str,
) -> u16 {
    let mut req = agent
        .post(&format!("{base}{WEBHOOK}"))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send(body.to_string())
        .expect("an answer")
        .status()
        .as_u16()
}

/// The native client of the demo organization, its server the relay at `base`.
pub fn client(base: &str, timeout: Duration) -> polar_license::BlockingClient {
    polar_license::BlockingClient::builder(DEMO_ORGANIZATION_ID)
        .base_url(base)
        .timeout(timeout)
        .build()
        .expect("a client")
}

/// The relay's `/healthz` at `base` (`Null` where it did not answer with JSON).
pub fn health(agent: &ureq::Agent, base: &str) -> Value {
    agent
        .get(&format!("{base}/healthz"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|b| serde_json::from_str(&b).ok())
        .unwrap_or_default()
}

/// A JSON object of distinct keys (`"kN":0`, 6,664 of them in 64 KiB) filling at most `cap`
/// bytes: a body that costs its parser, not its nesting.
pub fn distinct_keys(cap: usize) -> String {
    filled("{", |n| format!("\"k{n}\":0,"), "\"z\":0}", cap - 16)
}

/// `head`, then `item(0)`, `item(1)`, … while the text is shorter than `until`, then `tail`: a
/// body filled to its cap (`until` leaving room for the last item and `tail`).
pub fn filled(head: &str, item: impl Fn(usize) -> String, tail: &str, until: usize) -> String {
    let mut text = head.to_string();
    let mut n = 0;
    while text.len() < until {
        text.push_str(&item(n));
        n += 1;
    }
    text.push_str(tail);
    text
}

// ---- Polar's webhooks ------------------------------------------------------------------------

/// The headers of a delivery of `body` signed with `secret` as Polar signs it (Standard
/// Webhooks: HMAC-SHA256 of `id.ts.body` under the secret's base64 after `whsec_`), computed
/// by the tests' own code.
pub fn signed(secret: &str, id: &str, ts: i64, body: &str) -> Vec<(String, String)> {
    let encoded = secret.strip_prefix("whsec_").expect("whsec_");
    let mut buf = vec![0u8; encoded.len()];
    let key = Base64::decode(&mut buf, encoded, None).expect("b64");
    signed_with_key(key, id, ts, body)
}

/// The headers of a delivery of `body` signed with the HMAC key `key` itself (a secret's
/// bytes, as Polar's UTF-8 form of a secret is used).
pub fn signed_with_key(key: &[u8], id: &str, ts: i64, body: &str) -> Vec<(String, String)> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let sig = Base64::encode_to_string(mac.finalize().into_bytes()).expect("b64");
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{sig}")),
    ]
}

/// An event `kind` about the license key `license_key_id` (shown as `display_key`) of the
/// customer `customer_id`, as Polar sends it, modified at `at` (unix seconds).
pub fn key_event(
    kind: &str,
    at: i64,
    customer_id: &str,
    license_key_id: &str,
    display_key: &str,
) -> String {
    let at = rfc3339(at);
    json!({
        "type": kind,
        "timestamp": at,
        "api_version": "2026-10",
        "data": {"modified_at": at, "customer_id": customer_id,
                 "properties": {"license_key_id": license_key_id, "display_key": display_key}}
    })
    .to_string()
}

/// A revocation (`benefit_grant.revoked`) of the license key `license_key_id` as Polar sends
/// it, now.
pub fn revocation(license_key_id: &str) -> String {
    key_event(
        "benefit_grant.revoked",
        now(),
        "c",
        license_key_id,
        "****-4A5B6C",
    )
}

/// A `benefit_grant.updated` event that names no key (it changes no stored answer).
pub fn grant_updated() -> String {
    json!({"type": "benefit_grant.updated", "timestamp": "2026-01-01T00:00:00Z",
           "data": {"id": "g", "customer_id": "c"}})
    .to_string()
}

// ---- The core, driven as a host drives it ----------------------------------------------------

/// A JSON `POST` to `path` with `headers` from 192.0.2.9, as the core receives it.
pub fn request(path: &str, headers: &[(String, String)], body: &str) -> RelayRequest {
    let mut all = vec![("content-type".to_string(), "application/json".to_string())];
    all.extend(headers.iter().cloned());
    RelayRequest {
        method: "POST".into(),
        path: path.into(),
        headers: all,
        body: body.as_bytes().to_vec(),
        client_ip: "192.0.2.9".into(),
    }
}

/// A validate of `key` in the demo organization, as the core receives it.
pub fn validate_request(key: &str) -> RelayRequest {
    request(
        &format!("{PUBLIC}validate"),
        &[],
        &json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID}).to_string(),
    )
}

/// A `GET` of `path` from 192.0.2.9 (the operator's `/healthz`), as the core receives it.
pub fn get(path: &str) -> RelayRequest {
    RelayRequest {
        method: "GET".into(),
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        client_ip: "192.0.2.9".into(),
    }
}

/// A delivery of `body` signed with `secret` at `ts` (id `id`), as the core receives it.
pub fn hook(secret: &str, id: &str, ts: i64, body: &str) -> RelayRequest {
    request(WEBHOOK, &signed(secret, id, ts, body), body)
}

/// A license key's body, as the relay passed it on: its `id` and `customer_id`.
pub fn ids_of(answer: &polar_license_relay::RelayResponse) -> (String, String) {
    let license: Value = serde_json::from_slice(&answer.body).expect("JSON");
    let field = |name: &str| license[name].as_str().expect(name).to_string();
    (field("id"), field("customer_id"))
}

/// Asserts that `answer` is Polar's refusal (404) with no lease; `what` names it, and its
/// body is shown when it is not.
pub fn assert_refused(answer: &polar_license_relay::RelayResponse, what: &str) {
    assert_eq!(
        (answer.status, answer.lease().is_some()),
        (404, false),
        "{what}: {}",
        String::from_utf8_lossy(&answer.body)
    );
}

// ---- The tests' one host of the request machine ----------------------------------------------

/// The relay's tests' one host of the request machine ([`Exchange`]), as the native server and
/// the npm relay are hosts of it: the test holds the clock, the randomness and what Polar
/// answers, and sees each need the machine asks that a host decides (a call to make, a
/// flight's landing, a slot, a signature, a load, the answer). The body, the store's save, a
/// flight that landed and the log lines it answers as the blocking host does, by itself.
/// [`Drive::next`] steps to the next such need; [`Drive::run`] goes to the end.
pub struct Drive<'r> {
    relay: &'r Relay,
    exchange: Exchange,
    body: Vec<u8>,
    /// The time given to the machine at each step.
    pub now: Now,
    /// The 16 random bytes given at each step (a lease's id; `None`: no lease can be made).
    pub entropy: Option<[u8; 16]>,
    /// The call the machine last asked to send ([`Need::Call`] asks for its answer).
    sent: Option<HttpRequest>,
    /// The answer the machine gave the client, once it gave one.
    pub answer: Option<RelayResponse>,
    /// The warnings and errors the machine asked to log.
    pub logged: Vec<String>,
    /// The flights the machine said landed ([`Need::Landed`]), for a host whose other checks
    /// wait on them.
    pub landed: Vec<String>,
}

impl<'r> Drive<'r> {
    /// An exchange of `req` on `relay` at `now`, with the default options.
    pub fn new(relay: &'r Relay, req: RelayRequest, now: Now) -> Drive<'r> {
        Drive::with(relay, req, now, ExchangeOptions::default())
    }

    /// An exchange of `req` on `relay` at `now`, run with `options`.
    pub fn with(
        relay: &'r Relay,
        req: RelayRequest,
        now: Now,
        options: ExchangeOptions,
    ) -> Drive<'r> {
        let body = req.body.clone();
        Drive {
            relay,
            exchange: Exchange::new(req, options),
            body,
            now,
            entropy: Some([7; 16]),
            sent: None,
            answer: None,
            logged: Vec::new(),
            landed: Vec::new(),
        }
    }

    /// The next need a host decides: [`Need::Send`] (its call kept for [`Drive::sent`]),
    /// [`Need::Call`], [`Need::Flight`], [`Need::Slot`], [`Need::Sign`], [`Need::Load`],
    /// [`Need::Respond`] (kept in [`Drive::answer`]) or [`Need::Done`]. The body is given whole
    /// (the machine cuts it at its cap), a save succeeds, a landing and a log line are noted.
    pub fn next(&mut self) -> Need {
        loop {
            match self.exchange.want(self.relay, self.now, self.entropy) {
                Need::Body { max } => {
                    let body = self.body[..self.body.len().min(max)].to_vec();
                    self.exchange.give(Given::Body(body));
                }
                Need::Persist => self.exchange.give(Given::Persisted(true)),
                Need::Landed(flight) => self.landed.push(flight),
                Need::Warn(text) | Need::Error(text) => self.logged.push(text),
                Need::Send {
                    request,
                    method,
                    flight,
                    patience_ms,
                } => {
                    self.sent = Some(request.clone());
                    return Need::Send {
                        request,
                        method,
                        flight,
                        patience_ms,
                    };
                }
                Need::Respond(r) => {
                    self.answer = Some(r.clone());
                    return Need::Respond(r);
                }
                need => return need,
            }
        }
    }

    /// Hands the machine what the host got for the need [`Drive::next`] returned.
    pub fn give(&mut self, given: Given) {
        self.exchange.give(given);
    }

    /// The call the machine last asked to send.
    pub fn sent(&self) -> &HttpRequest {
        self.sent.as_ref().expect("a call was asked for")
    }

    /// The next need, which must be a call to Polar (a slot to call on, which the native host
    /// asks for first, is given at once): its patience (ms) and the flight it leads.
    pub fn expect_send(&mut self) -> (Option<u64>, Option<String>) {
        loop {
            match self.next() {
                Need::Slot { .. } => self.give(Given::Slot),
                Need::Send {
                    flight,
                    patience_ms,
                    ..
                } => return (patience_ms, flight),
                other => panic!("expected a call to Polar: {other:?}"),
            }
        }
    }

    /// The next need, which must be the answer, with no call to Polar before it.
    pub fn expect_answer(&mut self) -> RelayResponse {
        match self.next() {
            Need::Respond(r) => r,
            other => panic!("expected the answer: {other:?}"),
        }
    }

    /// Runs to the end, each call to Polar sent through `polar`, a flight waited for taken as
    /// landed, a slot given at once, a load taken as done, a lease signed by no one (it goes
    /// without): the answer the client got.
    pub fn run(self, polar: &dyn Transport) -> RelayResponse {
        self.run_with(|x, need| match need {
            Need::Send { request, .. } => x.give(Given::Upstream(polar.send(&request))),
            Need::Call => {
                let answer = polar.send(x.sent());
                x.give(Given::Upstream(answer));
            }
            other => x.as_host(other),
        })
    }

    /// Runs to the end, each need [`Drive::next`] returns handed to `answer` (which may give
    /// the machine something with [`Drive::give`], or leave the need to [`Drive::as_host`]):
    /// the answer the client got.
    pub fn run_with(mut self, mut answer: impl FnMut(&mut Self, Need)) -> RelayResponse {
        loop {
            match self.next() {
                Need::Done => break,
                need => answer(&mut self, need),
            }
        }
        self.answer.expect("the exchange answered")
    }

    /// Driven as the Workers host drives it over its paged store `b`: a load filled from
    /// `host`'s saved keys, a call sent to Polar through `polar`, the rest as
    /// [`Drive::as_host`] gives it. The host saves `b`'s journal after, as it likes.
    pub fn run_paged(
        self,
        host: &mut host::Host,
        b: &PagedBackend,
        polar: &impl Transport,
    ) -> RelayResponse {
        self.run_with(|x, need| match need {
            Need::Load(load) => {
                if let Some(wants) = &load.store {
                    host.fill(b, wants);
                }
                x.give(Given::Loaded);
            }
            Need::Send { request, .. } => x.give(Given::Upstream(polar.send(&request))),
            other => x.as_host(other),
        })
    }

    /// What the blocking host gives for `need` when the test does not decide it: a flight
    /// landed, a slot free, a load done, no signature, Polar unreachable; an answer is kept.
    pub fn as_host(&mut self, need: Need) {
        let given = match need {
            Need::Flight { .. } => Given::Landed,
            Need::Slot { .. } => Given::Slot,
            Need::Load(_) => Given::Loaded,
            Need::Sign(_) => Given::Signature(Vec::new()),
            Need::Send { .. } | Need::Call => Given::Upstream(Err(TransportError::new(
                TransportErrorKind::Connect,
                "no Polar in this test",
            ))),
            _ => return,
        };
        self.give(given);
    }
}

// ---- The tests' one host of the background machine -------------------------------------------

/// One run of the relay's background machine ([`Background`]) at `now`, as a host's timer or
/// alarm runs it (the native server's thread, the npm relay's alarm): each read it asks of
/// Polar sent over loopback (`GET`, or `POST` with its body), a load or a listing answered as
/// the native host answers them (its store is the relay's own: nothing to load or list),
/// until the machine says wait (`Some(ms)`) or done (`None`). What it logs goes to the `log`
/// facade.
pub fn background_run(relay: &Relay, machine: &mut Background, now: Now) -> Option<u64> {
    use polar_license_relay::flow::background::{Given as Got, Poll};
    let agent = agent(Duration::from_secs(10));
    loop {
        match machine.poll(relay, now) {
            Poll::Send(read) => {
                let answer = match read.body() {
                    Some(body) => {
                        let mut req = agent.post(read.url());
                        for (name, value) in read.headers() {
                            req = req.header(*name, value);
                        }
                        req.send(body)
                    }
                    None => {
                        let mut req = agent.get(read.url());
                        for (name, value) in read.headers() {
                            req = req.header(*name, value);
                        }
                        req.call()
                    }
                };
                let answer = answer.map_err(|e| e.to_string()).and_then(|mut r| {
                    let status = r.status().as_u16();
                    let body = r.body_mut().read_to_vec().map_err(|e| e.to_string())?;
                    Ok((status, None, body))
                });
                machine.answered(relay, read.id(), Got::Polar(answer), now);
            }
            Poll::Load { id, .. } => {
                machine.answered(relay, id, Got::Loaded(true), now);
            }
            Poll::List { id, .. } => {
                machine.answered(relay, id, Got::Rows(Ok(Vec::new())), now);
            }
            Poll::Wait(ms) => return Some(ms),
            Poll::Done => return None,
        }
    }
}

// ---- Clocks and waits ------------------------------------------------------------------------

/// The wall clock's Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The core's clock at `unix_seconds` (its monotonic clock the same, in milliseconds).
pub fn at(unix_seconds: i64) -> Now {
    Now {
        unix_seconds,
        monotonic_ms: u64::try_from(unix_seconds).unwrap_or(0) * 1000,
    }
}

/// `unix` as RFC 3339.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

/// Asks `done` every `every` until it says yes or `limit` has passed: whether it said yes.
pub fn wait_until(limit: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let yes = done();
        if yes || Instant::now() > deadline {
            return yes;
        }
        std::thread::sleep(every);
    }
}

// ---- Calls from other loopback addresses -----------------------------------------------------

/// A blocking connection from `from` (a 127.0.0.N address: Linux routes all of 127/8 to lo) to
/// `to`, its socket bound on `runtime`, reads timing out after `read_timeout`; `None` where
/// it could not be made.
pub fn connect_from(
    runtime: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
    read_timeout: Duration,
) -> Option<std::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from.into(), 0)).ok()?;
    let stream = runtime.block_on(socket.connect(to)).ok()?;
    let stream = {
        let _entered = runtime.enter();
        stream.into_std().ok()?
    };
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(read_timeout)).ok()?;
    Some(stream)
}

/// A connection from `from` that answers a preflight (so the server surely counts it), then
/// stays open, idle: its status (0: refused) and the stream.
pub fn held_from(
    rt: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
) -> (u16, Option<std::net::TcpStream>) {
    let Some(mut stream) = connect_from(rt, from, to, Duration::from_secs(5)) else {
        return (0, None);
    };
    let head = format!("OPTIONS {}validate HTTP/1.1\r\nhost: {to}\r\n\r\n", PUBLIC);
    let mut got = [0u8; 512];
    let n = stream
        .write_all(head.as_bytes())
        .ok()
        .and_then(|()| stream.read(&mut got).ok())
        .unwrap_or(0);
    let status = String::from_utf8_lossy(&got[..n])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, Some(stream))
}

/// The loopback address `relay` listens on.
pub fn address(relay: &Running) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], relay.port()))
}

/// A runtime of one thread for the sockets a test binds ([`connect_from`], [`post_from`]).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime")
}

/// One `POST` of `body` to `path` on a connection of its own from `from` (a 127.0.0.N address:
/// Linux routes all of 127/8 to lo) to `to`, its socket bound on `runtime`: the status and
/// `polar-license-source`, or `None` where the connection or the answer failed.
pub fn post_from(
    runtime: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
    path: &str,
    body: &Value,
) -> Option<(u16, Option<String>)> {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {to}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    send_from(runtime, from, to, &request)
}

/// `request` (whole, with `connection: close`) sent on a connection of its own from `from` to
/// `to`, as [`post_from`] sends its: the status and `polar-license-source`, or `None` where the
/// connection or the answer failed.
pub fn send_from(
    runtime: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
    request: &str,
) -> Option<(u16, Option<String>)> {
    let mut stream = connect_from(runtime, from, to, Duration::from_secs(20))?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let source = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case(SOURCE_HEADER)
            .then(|| value.trim().to_string())
    });
    Some((status, source))
}

// ---- A store with hooks -----------------------------------------------------------------------

/// What a [`Hooked`] store was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Get,
    Put,
    /// A read-modify-write of an entry, before its transaction.
    Update,
    /// Inside an update's transaction: after its read, before its write.
    Updating,
    Index,
    ApplyWebhook,
    /// A narrowing, before its transaction.
    Narrow,
    /// Inside a narrowing's transaction, at each entry it reads.
    Narrowing,
    Len,
}

/// What a [`Hooked`] store asks of its hook: a closure `Fn(Call) -> Result<(), StoreError>` is
/// one (it is called, and takes every write).
pub trait Hook: Send + Sync {
    /// Called first on every call (an error fails the call) and inside each transaction
    /// (there it may only hold the caller); `Ok` by default.
    fn call(&self, _call: Call) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether the storage takes `entry` (one whose values are capped refuses a large one):
    /// a refusal fails a put, an update or a webhook's updates, and leaves an entry a
    /// narrowing would write as it was. Every entry by default.
    fn takes(&self, _entry: &Entry) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<F: Fn(Call) -> Result<(), StoreError> + Send + Sync> Hook for F {
    fn call(&self, call: Call) -> Result<(), StoreError> {
        self(call)
    }
}

/// A store around another that calls its hook first on every call (a hook that fails fails
/// the call) and inside each transaction, and writes only what the hook takes: the suites'
/// broken disks, held steps and capped storages, one wrapper for all.
pub struct Hooked<H> {
    pub inner: Arc<dyn Backend>,
    pub hook: H,
}

impl<H: Hook> Hooked<H> {
    fn inside(&self, call: Call) {
        let _ = self.hook.call(call);
    }
}

impl<H: Hook> Backend for Hooked<H> {
    fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        self.hook.call(Call::Get)?;
        self.inner.get(id)
    }
    fn put(&self, id: &EntryId, entry: &Entry) -> Result<(), StoreError> {
        self.hook.call(Call::Put)?;
        self.hook.takes(entry)?;
        self.inner.put(id, entry)
    }
    fn update(&self, id: &EntryId, f: Updater<'_>) -> Result<Option<Entry>, StoreError> {
        self.hook.call(Call::Update)?;
        let mut refused = None;
        let written = self.inner.update(id, &mut |current| {
            self.inside(Call::Updating);
            let entry = f(current)?;
            match self.hook.takes(&entry) {
                Ok(()) => Some(entry),
                Err(e) => {
                    refused = Some(e);
                    None
                }
            }
        })?;
        refused.map_or(Ok(written), Err)
    }
    fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        self.hook.call(Call::Index)?;
        self.inner.index(tag)
    }
    fn apply_webhook(&self, hook: &str, at: i64, updates: Writes<'_>) -> Result<bool, StoreError> {
        self.hook.call(Call::ApplyWebhook)?;
        for (_, entry) in updates {
            self.hook.takes(entry)?;
        }
        self.inner.apply_webhook(hook, at, updates)
    }
    fn narrow(&self, what: Narrow<'_>, f: Narrower<'_>) -> Result<Option<usize>, StoreError> {
        self.hook.call(Call::Narrow)?;
        self.inner.narrow(what, &mut |entry| {
            self.inside(Call::Narrowing);
            let out = f(entry)?;
            self.hook.takes(&out).ok().map(|()| out)
        })
    }
    fn len(&self) -> Result<usize, StoreError> {
        self.hook.call(Call::Len)?;
        self.inner.len()
    }
    fn stage_budget(&self, state: BudgetState) {
        self.inner.stage_budget(state);
    }
    fn flush_budget(&self) -> Result<(), StoreError> {
        self.inner.flush_budget()
    }
    fn load_budget(&self) -> Result<Option<BudgetState>, StoreError> {
        self.inner.load_budget()
    }
}
