//! Signed mode on the Rust-on-wasm client (issue #44): `AsyncLicensing` built with relay keys
//! drives the core's check machine, so it has signed mode exactly as the native `Licensing`
//! (tests/signed_mode.rs plays the same rows there). A stand-in relay in front of the emulator
//! (`POLAR_WASM_EMULATOR_URL`) adds a lease to every grant, signed by the relay's key of the
//! shared fixture (tests/vectors/lease-relay.json) or, on purpose, by another key under the
//! same kid. The rows:
//! - a valid lease licenses offline, and only until it ends (inside the 7-day grace);
//! - a record forged with the secrets on the machine (the install secret, the app secret, this
//!   crate's own sealing code) licenses an app without relay keys and is refused in signed mode;
//! - a lease signed by another key is no lease: the online grant is not taken, and nothing
//!   licenses offline after it.
#![cfg(target_arch = "wasm32")]

use gloo_net::http::Request;
use polar_license::cache::install_secret_from_hex;
use polar_license::fingerprint::fingerprint_from;
use polar_license::grace::{CheckOutcome, Source};
use polar_license::lease::{RelayKeys, SigningKey, LEASE_HEADER};
use polar_license::session::{self, Slot};
use polar_license::wasm::{
    AsyncLicensing, AsyncStore, AsyncTransport, FetchTransport, MemoryStore, SECRET_NAME,
    STORAGE_PREFIX,
};
use polar_license::{
    ActivateRequest, HttpRequest, Key, Reason, TransportError, TransportErrorKind,
};
use polar_license_testkit::leases::{self, DAY};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const MACHINE_ID: &str = "machine-a";
const APP_SECRET: &[u8] = b"the app's own secret";
/// The relay's key (the fixture every face's signed-mode tests share).
const FIXTURE: &str = include_str!("vectors/lease-relay.json");
/// Another key under the relay's kid: PASERK's official `k4.secret-2` test vector.
const OTHER_KEY: &str = "relay-2026=k4.secret.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8c5WpIyC_5kWKhS8VEYSZ05dYfuTF-ZdQFV4D9vLTcNQ";

fn emulator() -> &'static str {
    match option_env!("POLAR_WASM_EMULATOR_URL") {
        Some(url) => url,
        None => {
            panic!("POLAR_WASM_EMULATOR_URL was not set at compile time: run scripts/test-wasm.sh")
        }
    }
}

fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", (js_sys::Math::random() * 16.0) as u8 & 15))
        .collect()
}

/// A fresh granted key on the emulator (so node and browser runs never share state).
async fn new_key() -> String {
    let key = format!("WASM-SIGNED-{}", random_hex(20).to_uppercase());
    let resp = Request::post(&format!("{}/__emulator/keys", emulator()))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "key": key, "limit_activations": 3 }).to_string())
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    key
}

fn relay_key() -> SigningKey {
    let doc: Value = serde_json::from_str(FIXTURE).unwrap();
    SigningKey::from_file_text(doc["signing_key"].as_str().unwrap()).unwrap()
}

/// The stand-in relay's state: the clock, whether Polar is reachable, and who signs.
#[derive(Clone)]
struct Relay {
    now: Rc<Cell<i64>>,
    offline: Rc<Cell<bool>>,
    signer: Rc<RefCell<Rc<SigningKey>>>,
}

impl Relay {
    fn new() -> Relay {
        let start = (js_sys::Date::now() / 1000.0) as i64;
        Relay {
            now: Rc::new(Cell::new(start)),
            offline: Rc::new(Cell::new(false)),
            signer: Rc::new(RefCell::new(Rc::new(relay_key()))),
        }
    }

    fn keys(&self) -> RelayKeys {
        RelayKeys::parse(&relay_key().public_pair()).unwrap()
    }

    fn advance(&self, secs: i64) {
        self.now.set(self.now.get() + secs);
    }

    /// The transport: the emulator over fetch, a 3-day lease added to every grant.
    fn transport(&self) -> impl AsyncTransport + 'static {
        let relay = self.clone();
        move |request: HttpRequest| {
            let relay = relay.clone();
            async move {
                if relay.offline.get() {
                    return Err(TransportError::new(
                        TransportErrorKind::Connect,
                        "offline (test)",
                    ));
                }
                let fetch = FetchTransport::new(Duration::from_secs(5), 1 << 20);
                let response = fetch.send(&request).await?;
                let signer = Rc::clone(&relay.signer.borrow());
                Ok(match leases::facts(&request, &response) {
                    Some(f) => {
                        let claims = leases::claims(&f, relay.now.get(), 3);
                        let lease = signer.sign(&claims, f.machine.as_deref()).unwrap();
                        response.with_header(LEASE_HEADER, &lease)
                    }
                    None => response,
                })
            }
        }
    }

    /// The app over `store`, in signed mode when `keys` is not empty.
    fn app(&self, store: &MemoryStore, keys: RelayKeys) -> AsyncLicensing {
        let now = Rc::clone(&self.now);
        AsyncLicensing::builder(ORG)
            .base_url(emulator())
            .timeout(Duration::from_secs(5))
            .store(store.clone())
            .machine_id(MACHINE_ID)
            .app_secret(APP_SECRET.to_vec())
            .relay_keys(keys)
            .clock(move || now.get())
            .build_with_transport(self.transport())
            .unwrap()
    }
}

fn from_cache(outcome: &CheckOutcome) -> Option<Duration> {
    match outcome {
        CheckOutcome::Licensed {
            source: Source::Cache,
            grace_remaining,
            ..
        } => *grace_remaining,
        _ => None,
    }
}

/// What the threat model says an attacker can do: read the install secret beside the cache
/// and the app secret out of the app, and re-seal the record with this crate's own code,
/// freshly verified at `now`.
async fn forge(store: &MemoryStore, key: &str, now: i64) {
    let org = ORG;
    let key = Key::new(key);
    let secret = store.get(SECRET_NAME).await.unwrap().unwrap();
    let secret = install_secret_from_hex(&secret).unwrap();
    let seal = fingerprint_from(MACHINE_ID, org);
    let slot = Slot::new(
        emulator(),
        org,
        &key,
        &secret,
        Some(&seal),
        Some(APP_SECRET),
    );
    let name = |slot: &str| format!("{STORAGE_PREFIX}{slot}");
    let record = store.get(&name(&slot.name)).await.unwrap();
    let ledger = store.get(&name(&slot.ledger)).await.unwrap();
    let opened: session::Opened = session::open(
        record.as_deref().map(str::as_bytes),
        ledger.as_deref().map(str::as_bytes),
        &slot,
        org,
        &key,
    );
    let mut record = opened
        .record
        .clone()
        .expect("a trusted record to start from");
    let good = record.good.as_mut().unwrap();
    good.verified_at = now;
    record.latest_seen = now;
    record.denied = None;
    for (entry, bytes) in session::seal(&opened, record, &slot) {
        let text = String::from_utf8(bytes).unwrap();
        store.set(&name(&entry), &text).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn a_valid_lease_licenses_offline_until_it_ends() {
    let relay = Relay::new();
    let key = new_key().await;
    let store = MemoryStore::new();
    let app = relay.app(&store, relay.keys());
    app.activate(&ActivateRequest::new(key.as_str(), "laptop"))
        .await
        .expect("activate answers")
        .accepted()
        .expect("activated");

    // Offline two days later: licensed from the cache, the grace capped by the 3-day lease.
    relay.offline.set(true);
    relay.advance(2 * DAY);
    let left = from_cache(&app.check(key.as_str()).await).expect("licensed from the lease");
    assert_eq!(left, Duration::from_secs(DAY as u64));

    // Past the lease, well inside the 7-day grace: not licensed.
    relay.advance(DAY + 1);
    let outcome = app.check(key.as_str()).await;
    assert_eq!(outcome.reason(), Some(Reason::GraceExpired), "{outcome:?}");

    // The same record read without relay keys still has its 7-day grace.
    let unsigned = relay.app(&store, RelayKeys::new());
    assert!(from_cache(&unsigned.check(key.as_str()).await).is_some());

    // Back online: a check takes a fresh lease, which licenses offline again.
    relay.offline.set(false);
    assert!(app.check(key.as_str()).await.is_licensed());
    relay.offline.set(true);
    relay.advance(DAY);
    assert!(from_cache(&app.check(key.as_str()).await).is_some());
}

#[wasm_bindgen_test]
async fn a_record_forged_with_the_machines_secrets_is_refused_in_signed_mode() {
    let relay = Relay::new();
    let key = new_key().await;
    let store = MemoryStore::new();
    let signed = relay.app(&store, relay.keys());
    signed
        .activate(&ActivateRequest::new(key.as_str(), "laptop"))
        .await
        .unwrap()
        .accepted()
        .expect("activated");
    assert!(signed.check(key.as_str()).await.is_licensed());

    // A month on, Polar unreachable, the record re-sealed as freshly verified.
    relay.offline.set(true);
    relay.advance(30 * DAY);
    forge(&store, &key, relay.now.get()).await;

    // Without relay keys the app believes it (the ceiling of every client-side scheme).
    let unsigned = relay.app(&store, RelayKeys::new());
    assert!(
        from_cache(&unsigned.check(key.as_str()).await).is_some(),
        "the forged record licenses an app without relay keys"
    );
    // In signed mode the lease ended on day 3: not licensed, whatever the record says.
    let outcome = signed.check(key.as_str()).await;
    assert!(!outcome.is_licensed(), "{outcome:?}");
    assert_eq!(outcome.reason(), Some(Reason::GraceExpired));
}

#[wasm_bindgen_test]
async fn a_lease_signed_by_another_key_is_no_lease() {
    let relay = Relay::new();
    let key = new_key().await;
    let store = MemoryStore::new();
    let app = relay.app(&store, relay.keys());
    *relay.signer.borrow_mut() = Rc::new(SigningKey::from_file_text(OTHER_KEY).unwrap());

    // The activation's grant comes with a lease that does not verify: no verdict, and the
    // error names the activation Polar made (its slot is taken).
    let err = app
        .activate(&ActivateRequest::new(key.as_str(), "laptop"))
        .await
        .expect_err("a grant without a lease that verifies is no verdict");
    assert_eq!(err.reason(), Reason::ProtocolError, "{err:?}");
    assert!(err.to_string().contains("deactivating"), "{err}");

    // A check's grant with such a lease is not taken either, and nothing is cached to
    // license offline.
    let outcome = app.check(key.as_str()).await;
    assert!(!outcome.is_licensed(), "{outcome:?}");
    assert_eq!(outcome.reason(), Some(Reason::ProtocolError), "{outcome:?}");
    relay.offline.set(true);
    let outcome = app.check(key.as_str()).await;
    assert!(!outcome.is_licensed(), "{outcome:?}");

    // The relay's own key again: licensed online, then offline from its lease.
    *relay.signer.borrow_mut() = Rc::new(relay_key());
    relay.offline.set(false);
    let outcome = app.check(key.as_str()).await;
    assert!(
        matches!(
            outcome,
            CheckOutcome::Licensed {
                source: Source::Online,
                ..
            }
        ),
        "{outcome:?}"
    );
    relay.offline.set(true);
    assert!(from_cache(&app.check(key.as_str()).await).is_some());
}
