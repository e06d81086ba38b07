//! No lost acknowledgement (issue #45, item 2): the store's read-modify-writes run
//! concurrently, one held between its read and its write (a gate in a test backend wrapped
//! around each real backend), while another commits. A revocation acknowledged while a grant
//! is being kept, and two webhook deliveries racing, never end in a grant: on the memory
//! backend, the journal backend (the Workers relay's) and the redb file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ct_codecs::{Base64, Decoder, Encoder};
use hmac::{Hmac, Mac};
use polar_license::lease::SigningKey;
use polar_license::proto::Server;
use polar_license::{AccessToken, Transport, UreqTransport};
use polar_license_emulator::{
    Emulator, Options, Seed, SeedKey, WebhookOptions, DEMO_ORGANIZATION_ID, DEMO_TOKEN,
};
use polar_license_relay::store::{
    Backend, BudgetState, Entry, EntryId, JournalBackend, MemoryBackend, RedbBackend, StoreError,
    StoreOptions,
};
use polar_license_relay::{Limits, Now, Rate, Relay, RelayConfig, RelayRequest, Step, StoreConfig};
use polar_license_testkit::ScratchDir;
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A gate armed once: the step it holds says so (`reached`) and waits for `release`.
struct Gate {
    reached: Sender<()>,
    release: Receiver<()>,
}

/// A backend that holds one step of the relay's between its read and its write: the next
/// read-modify-write of an entry (an answer kept) when `keep` is armed, the next webhook's
/// narrowing when `webhook` is armed. Everything else goes straight to the backend inside.
struct Gated {
    inner: Arc<dyn Backend>,
    keep: Mutex<Option<Gate>>,
    webhook: Mutex<Option<Gate>>,
}

/// The test's side of an armed gate.
struct Held {
    reached: Receiver<()>,
    release: Sender<()>,
}

fn arm(slot: &Mutex<Option<Gate>>) -> Held {
    let (reached_tx, reached_rx) = channel();
    let (release_tx, release_rx) = channel();
    *slot.lock().unwrap() = Some(Gate {
        reached: reached_tx,
        release: release_rx,
    });
    Held {
        reached: reached_rx,
        release: release_tx,
    }
}

/// Holds the caller here if the gate is armed (once).
fn pass(slot: &Mutex<Option<Gate>>) {
    let gate = slot.lock().unwrap().take();
    if let Some(g) = gate {
        let _ = g.reached.send(());
        let _ = g.release.recv_timeout(Duration::from_secs(60));
    }
}

impl Backend for Gated {
    fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        self.inner.get(id)
    }
    fn put(&self, id: &EntryId, entry: &Entry) -> Result<(), StoreError> {
        self.inner.put(id, entry)
    }
    fn update(
        &self,
        id: &EntryId,
        f: &mut dyn FnMut(Option<&Entry>) -> Option<Entry>,
    ) -> Result<Option<Entry>, StoreError> {
        // Inside the backend's transaction: after its read, before its write.
        self.inner.update(id, &mut |current| {
            pass(&self.keep);
            f(current)
        })
    }
    fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        self.inner.index(tag)
    }
    fn apply_webhook(
        &self,
        webhook_id: &str,
        at: i64,
        updates: &[(EntryId, Entry)],
    ) -> Result<bool, StoreError> {
        self.inner.apply_webhook(webhook_id, at, updates)
    }
    fn narrow(
        &self,
        webhook: Option<(&str, i64)>,
        tags: &[String],
        f: &mut dyn FnMut(&Entry) -> Option<Entry>,
    ) -> Result<Option<usize>, StoreError> {
        self.inner.narrow(webhook, tags, &mut |entry| {
            pass(&self.webhook);
            f(entry)
        })
    }
    fn len(&self) -> Result<usize, StoreError> {
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

fn emulator() -> Emulator {
    let options = Options {
        webhooks: WebhookOptions {
            schedule_scale: 0.0001,
            timeout: Duration::from_secs(5),
        },
        ..Options::default()
    };
    Emulator::start(Seed::demo(), options).expect("emulator")
}

fn key(polar: &Emulator, name: &str) -> String {
    let key = format!("RACE-{name}-4A5B6C");
    polar
        .add_key(SeedKey {
            limit_activations: Some(3),
            ..SeedKey::new(&key)
        })
        .expect("a key");
    key
}

fn upstream() -> UreqTransport {
    UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1 << 20)
}

fn relay(polar: &Emulator, backend: Arc<dyn Backend>) -> Relay {
    let signer = SigningKey::generate(Some("race")).expect("a key");
    let mut config = RelayConfig::new(
        Server::Custom(polar.url()),
        AccessToken::new(DEMO_TOKEN),
        signer,
    );
    config.limits = Limits {
        per_ip: Rate::new(0, 0),
        per_key: Rate::new(0, 0),
        ..Limits::default()
    };
    let mut options = StoreOptions::default();
    options.fresh_for = 5;
    config.store = Some(StoreConfig {
        backend,
        options,
        webhook_secret: Some(SECRET.to_string()),
    });
    Relay::new(config, Box::new(upstream())).expect("the relay")
}

fn request(path: &str, headers: &[(String, String)], body: &str) -> RelayRequest {
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

fn validate_request(key: &str) -> RelayRequest {
    request(
        "/v1/customer-portal/license-keys/validate",
        &[],
        &json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID}).to_string(),
    )
}

fn at(unix_seconds: i64) -> Now {
    Now {
        unix_seconds,
        monotonic_ms: u64::try_from(unix_seconds).unwrap_or(0) * 1000,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

fn signed(id: &str, ts: i64, body: &str) -> Vec<(String, String)> {
    let encoded = SECRET.strip_prefix("whsec_").expect("whsec_");
    let mut buf = vec![0u8; encoded.len()];
    let key = Base64::decode(&mut buf, encoded, None).expect("b64");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let sig = Base64::encode_to_string(mac.finalize().into_bytes()).expect("b64");
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{sig}")),
    ]
}

/// A signed delivery of `body`, as the relay's core receives it.
fn hook(id: &str, ts: i64, body: &str) -> RelayRequest {
    request("/v1/webhooks/polar", &signed(id, ts, body), body)
}

fn revocation(license_key_id: &str, customer: &str, at: i64) -> String {
    json!({"type": "benefit_grant.revoked", "timestamp": rfc3339(at),
           "data": {"modified_at": rfc3339(at), "customer_id": customer,
                    "benefit": {"type": "license_keys"},
                    "properties": {"license_key_id": license_key_id}}})
    .to_string()
}

fn subscription_updated(customer: &str, at: i64) -> String {
    json!({"type": "subscription.updated", "timestamp": rfc3339(at),
           "data": {"modified_at": rfc3339(at), "customer_id": customer, "status": "active"}})
    .to_string()
}

fn ids_of(answer: &polar_license_relay::RelayResponse) -> (String, String) {
    let license: Value = serde_json::from_slice(&answer.body).expect("JSON");
    let field = |name: &str| license[name].as_str().expect(name).to_string();
    (field("id"), field("customer_id"))
}

/// The backends under test, each behind its gate: memory, the journal (the Workers relay's),
/// the redb file.
fn backends(dir: &ScratchDir) -> Vec<(&'static str, Arc<Gated>)> {
    let gated = |inner: Arc<dyn Backend>| {
        Arc::new(Gated {
            inner,
            keep: Mutex::new(None),
            webhook: Mutex::new(None),
        })
    };
    vec![
        ("memory", gated(Arc::new(MemoryBackend::new(1_000)))),
        ("journal", gated(Arc::new(JournalBackend::new(1_000)))),
        (
            "redb",
            gated(Arc::new(
                RedbBackend::open(&dir.path().join("race.redb"), 1_000).expect("the file"),
            )),
        ),
    ]
}

/// Runs `second` while `held` holds the first step between its read and its write: waits
/// until the first step is held, starts `second`, lets it finish when it can (a backend
/// whose step is one transaction makes it wait for the first: it is released after a
/// generous while), then releases the first.
fn while_held<T: Send>(
    held: Held,
    first: impl FnOnce() -> T + Send,
    second: impl FnOnce() + Send,
) -> T {
    std::thread::scope(|scope| {
        let first = scope.spawn(first);
        held.reached
            .recv_timeout(Duration::from_secs(60))
            .expect("the first step reached its write");
        let (done_tx, done_rx) = channel();
        let second = scope.spawn(move || {
            second();
            let _ = done_tx.send(());
        });
        // Committed meanwhile (the race today's code loses), or waiting for the first's
        // transaction (the fix): either way, the first goes on.
        let _ = done_rx.recv_timeout(Duration::from_secs(2));
        let _ = held.release.send(());
        second.join().expect("the second step");
        first.join().expect("the first step")
    })
}

/// A revocation acknowledged (200 sent to Polar) while the relay keeps Polar's grant of the
/// same key, the grant's write held after its read: the next check is refused, on every
/// backend.
#[test]
fn a_revocation_acknowledged_while_a_grant_is_kept_is_never_lost() {
    let polar = emulator();
    let dir = ScratchDir::new("race-keep");
    for (name, backend) in backends(&dir) {
        let k = key(&polar, &format!("KEEP-{name}").to_uppercase());
        let relay = relay(&polar, backend.clone());
        let t0 = now();
        let first = relay.handle(&validate_request(&k), at(t0));
        assert_eq!(first.status, 200, "{name}");
        let (lid, customer) = ids_of(&first);
        // Past its freshness: Polar is asked again, and grants.
        let later = t0 + 10;
        let pending = match relay.begin(&validate_request(&k), at(later)) {
            Step::Ask(pending) => pending,
            other => panic!("{name}: expected a call to Polar: {other:?}"),
        };
        let answer = upstream().send(pending.request());
        let held = arm(&backend.keep);
        let revoke = revocation(&lid, &customer, later);
        let kept = while_held(
            held,
            || relay.finish(pending, answer, at(later)).into_response(),
            || {
                let r = relay.handle(
                    &hook(&format!("evt-keep-{name}"), later, &revoke),
                    at(later),
                );
                assert_eq!(r.status, 200, "{name}: the revocation acknowledged");
            },
        );
        assert_eq!(kept.status, 200, "{name}: Polar's grant, passed on");
        let next = relay.handle(&validate_request(&k), at(later + 1));
        assert_eq!(
            (next.status, next.lease().is_some()),
            (404, false),
            "{name}: the acknowledged revocation refuses: {}",
            String::from_utf8_lossy(&next.body)
        );
    }
}

/// Two deliveries at once (a retry after Polar's timeout and the next event): the customer's
/// subscription updated, its narrowing held after its read, while the key's revocation is
/// delivered. The revocation stands: the key is refused at once, on every backend.
#[test]
fn two_webhook_deliveries_racing_never_turn_a_revocation_into_a_grant() {
    let polar = emulator();
    let dir = ScratchDir::new("race-hooks");
    for (name, backend) in backends(&dir) {
        let k = key(&polar, &format!("HOOKS-{name}").to_uppercase());
        let relay = relay(&polar, backend.clone());
        let t0 = now();
        let first = relay.handle(&validate_request(&k), at(t0));
        assert_eq!(first.status, 200, "{name}");
        let (lid, customer) = ids_of(&first);
        let later = t0 + 1;
        let held = arm(&backend.webhook);
        let update = subscription_updated(&customer, later);
        let revoke = revocation(&lid, &customer, later);
        let status = while_held(
            held,
            || {
                relay
                    .handle(&hook(&format!("evt-sub-{name}"), later, &update), at(later))
                    .status
            },
            || {
                let r = relay.handle(&hook(&format!("evt-rev-{name}"), later, &revoke), at(later));
                assert_eq!(r.status, 200, "{name}: the revocation acknowledged");
            },
        );
        assert_eq!(status, 200, "{name}: the update acknowledged");
        let calls = polar.request_count();
        let next = relay.handle(&validate_request(&k), at(later + 1));
        assert_eq!(
            (next.status, next.lease().is_some()),
            (404, false),
            "{name}: the acknowledged revocation refuses: {}",
            String::from_utf8_lossy(&next.body)
        );
        assert_eq!(
            polar.request_count(),
            calls,
            "{name}: refused without a call"
        );
    }
}
