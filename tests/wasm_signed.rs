//! Signed mode on the Rust-on-wasm client (issue #44): `AsyncLicensing` built with relay keys
//! drives the core's check machine, so it has signed mode exactly as the native `Licensing`.
//! A stand-in relay in front of the emulator (`POLAR_WASM_EMULATOR_URL`) adds a lease to every
//! grant, signed by the relay's key of the shared fixture (tests/vectors/lease-relay.json) or,
//! on purpose, by another key under the same kid, or bound to another machine.
//!
//! `the_signed_mode_table` plays every row of tests/signed/rows.tsv, the table the native
//! suite (tests/signed_mode.rs) and the npm package's (tests/js/signed.test.mjs) play too: a
//! valid lease licenses offline only until it ends; a record forged with the secrets on the
//! machine (the install secret, the app secret, this crate's own sealing code) licenses an app
//! without relay keys and is refused in signed mode; a lease signed by another key, or for
//! another machine, is no lease. The tests after it hold what the table does not.
//!
//! Issue #62 (tests/signed_facts.rs on this face): with `signs_denials` the stand-in signs
//! Polar's denials for their request as the relay does, and as the attacker's proxy it answers
//! validates with an unsigned "expired" (`forged_expiry`) or adds an unsigned cancelled
//! subscription to the genuine grant (`inject`): neither makes a revoked key a fallback in
//! signed mode, online or offline, and the denial is kept.
//!
//! Issue #68: `through_a_real_relay` asks the native relay itself (`relay serve
//! --sign-entitlements`, `POLAR_WASM_USAGE_RELAY_URL`) over the client's own `fetch`
//! transport, no stand-in: the relay's headers must reach the core. The signed lease with its
//! values verifies offline (the relay unreachable: licensed from the cache, the same values), and
//! a lease whose values were altered after the relay signed them is refused (`protocol_error`,
//! no value) while the app holding the good lease keeps its values.
#![cfg(target_arch = "wasm32")]

use polar_license::cache::install_secret_from_hex;
use polar_license::fingerprint::fingerprint_from;
use polar_license::flow::Stored;
use polar_license::grace::GracePolicy;
use polar_license::grace::Source;
use polar_license::lease::{RelayKeys, SigningKey, DENIAL_HEADER, LEASE_HEADER, NONCE_HEADER};
use polar_license::perpetual::ReleaseDate;
use polar_license::testing::{self, Slot};
use polar_license::wasm::{
    AsyncLicensing, AsyncLicensingBuilder, AsyncStore, AsyncTransport, FetchTransport, MemoryStore,
    SECRET_NAME, STORAGE_PREFIX,
};
use polar_license::{
    ActivateRequest, HttpRequest, HttpResponse, Key, Reason, Standing, TransportError,
    TransportErrorKind,
};
use polar_license_testkit::fetch::{self, emulator};
use polar_license_testkit::leases::{self, edit_payload, DAY};
use polar_license_testkit::signed_rows::{self, Row, Signs, Then, OTHER_KEY};
use polar_license_testkit::{from_cache, rfc3339};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const MACHINE_ID: &str = "machine-a";
const APP_SECRET: &[u8] = b"the app's own secret";
/// The relay's key (the fixture every face's signed-mode tests share).
const FIXTURE: &str = include_str!("vectors/lease-relay.json");

/// A fresh granted key on the emulator (so node and browser runs never share state).
async fn new_key() -> String {
    fetch::new_key(emulator(), "WASM-SIGNED", json!({ "limit_activations": 3 })).await
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
    /// The machine the leases are bound to, when not the one asked for.
    machine: Rc<RefCell<Option<String>>>,
    /// The user's recording proxy (issue #53): the last 200 of a validate, as it came.
    tape: Rc<RefCell<Option<HttpResponse>>>,
    /// Replaying: that 200 answers, and nothing is passed on.
    replay: Rc<Cell<bool>>,
    /// Issue #62: denials signed for their request (a `-facts` nonce), as the relay signs them.
    signs_denials: Rc<Cell<bool>>,
    /// Issue #62, the attacker's proxy: every validate answered with an unsigned
    /// `404 "License key has expired."`, nothing passed on (a fake relay).
    forged_expiry: Rc<Cell<bool>>,
    /// Issue #62, the attacker's proxy: an unsigned cancelled `subscription` that ended the day
    /// before `now` added to every validate's 200, the relay's lease kept.
    inject: Rc<Cell<bool>>,
}

impl Relay {
    fn new() -> Relay {
        let start = (js_sys::Date::now() / 1000.0) as i64;
        Relay {
            now: Rc::new(Cell::new(start)),
            offline: Rc::new(Cell::new(false)),
            signer: Rc::new(RefCell::new(Rc::new(relay_key()))),
            machine: Rc::new(RefCell::new(None)),
            tape: Rc::new(RefCell::new(None)),
            replay: Rc::new(Cell::new(false)),
            signs_denials: Rc::new(Cell::new(false)),
            forged_expiry: Rc::new(Cell::new(false)),
            inject: Rc::new(Cell::new(false)),
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
                if relay.replay.get() {
                    if let Some(captured) = relay.tape.borrow().clone() {
                        return Ok(captured);
                    }
                }
                if relay.forged_expiry.get() && request.url.ends_with("/validate") {
                    return Ok(HttpResponse::new(
                        404,
                        r#"{"error":"ResourceNotFound","detail":"License key has expired."}"#,
                    )
                    .with_header("content-type", "application/json"));
                }
                if relay.offline.get() {
                    return Err(TransportError::new(
                        TransportErrorKind::Connect,
                        "offline (test)",
                    ));
                }
                let fetch = FetchTransport::new(Duration::from_secs(5), 1 << 20);
                // A relay keeps the client's nonce for the lease it signs and asks Polar
                // without it (a browser's preflight to Polar would refuse the header).
                let mut upstream = request.clone();
                upstream
                    .headers
                    .retain(|(name, _)| !name.eq_ignore_ascii_case(NONCE_HEADER));
                let response = fetch.send(&upstream).await?;
                let signer = Rc::clone(&relay.signer.borrow());
                let answer = match leases::facts(&request, &response) {
                    Some(f) => {
                        let claims = leases::claims(&f, relay.now.get(), 3);
                        let other = relay.machine.borrow().clone();
                        let machine = other.as_deref().or(f.machine.as_deref());
                        let lease = signer.sign(&claims, machine).unwrap();
                        let leased = response.with_header(LEASE_HEADER, &lease);
                        if request.url.ends_with("/validate") {
                            *relay.tape.borrow_mut() = Some(leased.clone());
                        }
                        leased
                    }
                    None if relay.signs_denials.get() => {
                        match leases::denial(&request, &response, relay.now.get(), 3) {
                            Some((claims, machine)) => {
                                let token =
                                    signer.sign_denial(&claims, machine.as_deref()).unwrap();
                                response.with_header(DENIAL_HEADER, &token)
                            }
                            None => response,
                        }
                    }
                    None => response,
                };
                if relay.inject.get() && request.url.ends_with("/validate") && answer.status == 200
                {
                    return Ok(injected(answer, relay.now.get()));
                }
                Ok(answer)
            }
        }
    }

    /// The app's builder over `store` and this relay's clock, in signed mode when `keys` is
    /// not empty.
    fn builder(&self, store: &MemoryStore, keys: RelayKeys) -> AsyncLicensingBuilder {
        let now = Rc::clone(&self.now);
        AsyncLicensing::builder(ORG)
            .base_url(emulator())
            .timeout(Duration::from_secs(5))
            .store(store.clone())
            .machine_id(MACHINE_ID)
            .app_secret(APP_SECRET.to_vec())
            .relay_keys(keys)
            .clock(move || now.get())
    }

    /// The app over `store`, in signed mode when `keys` is not empty.
    fn app(&self, store: &MemoryStore, keys: RelayKeys) -> AsyncLicensing {
        self.builder(store, keys)
            .build_with_transport(self.transport())
            .unwrap()
    }
}

/// `answer` (a validate's 200, its lease kept) with an unsigned cancelled subscription that
/// ended the day before `now` added to its body.
fn injected(answer: HttpResponse, now: i64) -> HttpResponse {
    let mut body: Value = serde_json::from_slice(&answer.body).unwrap();
    let ended = rfc3339(now - DAY);
    body["subscription"] = json!({
        "id": "7b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
        "status": "canceled",
        "current_period_start": rfc3339(now - 31 * DAY),
        "current_period_end": ended,
        "cancel_at_period_end": true,
        "ends_at": ended,
    });
    let mut forged = HttpResponse::new(200, serde_json::to_vec(&body).unwrap());
    forged.headers = answer.headers;
    forged
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
    let writes = testing::forge(
        &Stored {
            record: record.map(String::into_bytes),
            ledger: ledger.map(String::into_bytes),
            clock: None,
        },
        &slot,
        (org, &key),
        |record: &mut polar_license::Record| {
            record.good.as_mut().unwrap().verified_at = now;
            record.latest_seen = now;
            record.denied = None;
        },
    )
    .expect("a trusted record to start from");
    for (entry, bytes) in writes {
        let text = String::from_utf8(bytes).unwrap();
        store.set(&name(&entry), &text).await.unwrap();
    }
}

/// One row of the table in a fresh world: the relay signs as the row says, the key is
/// activated in signed mode, the row's steps happen, and the row's app checks.
async fn play(row: &Row) -> Result<(), String> {
    let relay = Relay::new();
    match row.signs {
        Signs::Honest => {}
        Signs::OtherKey => {
            *relay.signer.borrow_mut() = Rc::new(SigningKey::from_file_text(OTHER_KEY).unwrap())
        }
        Signs::OtherMachine => *relay.machine.borrow_mut() = Some("another machine".into()),
    }
    let key = new_key().await;
    let store = MemoryStore::new();
    let signed = relay.app(&store, relay.keys());
    let activated = signed
        .activate(&ActivateRequest::new(key.as_str(), "laptop"))
        .await;
    row.activate.activated(&activated)?;
    for step in &row.then {
        match *step {
            Then::Offline => relay.offline.set(true),
            Then::Advance(seconds) => relay.advance(seconds),
            Then::Forge => forge(&store, &key, relay.now.get()).await,
        }
    }
    let app = match row.relay_keys {
        true => signed,
        false => relay.app(&store, RelayKeys::new()),
    };
    row.expect.check(&app.check(key.as_str()).await)
}

/// Every row of tests/signed/rows.tsv; a failure names its row (a panic is preceded by the
/// row's name on the console).
#[wasm_bindgen_test]
async fn the_signed_mode_table() {
    let rows = signed_rows::rows();
    assert!(rows.len() >= 9, "{rows:?}");
    let mut failed = Vec::new();
    for row in &rows {
        wasm_bindgen_test::console_log!("signed-mode row: {}", row.name);
        if let Err(e) = play(row).await {
            failed.push(format!("row \"{}\": {e}", row.name));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The stand-in relay, a fresh key, and an app in signed mode over a store of its own.
async fn signed_app() -> (Relay, String, AsyncLicensing) {
    let relay = Relay::new();
    let key = new_key().await;
    let app = relay.app(&MemoryStore::new(), relay.keys());
    (relay, key, app)
}

/// [`signed_app`] with the key activated.
async fn signed_and_activated() -> (Relay, String, AsyncLicensing) {
    let (relay, key, app) = signed_app().await;
    app.activate(&ActivateRequest::new(key.as_str(), "laptop"))
        .await
        .expect("activate answers")
        .accepted()
        .expect("activated");
    (relay, key, app)
}

#[wasm_bindgen_test]
async fn a_lease_that_ended_is_renewed_online() {
    let (relay, key, app) = signed_and_activated().await;

    // Offline past the lease (the table's rows: licensed until day 3, not after).
    relay.offline.set(true);
    relay.advance(3 * DAY + 1);
    assert!(!app.check(key.as_str()).await.is_licensed());

    // Back online: a check takes a fresh lease, which licenses offline again.
    relay.offline.set(false);
    assert!(app.check(key.as_str()).await.is_licensed());
    relay.offline.set(true);
    relay.advance(DAY);
    assert!(from_cache(&app.check(key.as_str()).await).is_some());
}

#[wasm_bindgen_test]
async fn after_a_lease_signed_by_another_key_the_relays_own_key_licenses_again() {
    let (relay, key, app) = signed_app().await;
    *relay.signer.borrow_mut() = Rc::new(SigningKey::from_file_text(OTHER_KEY).unwrap());

    // The activation's grant comes with a lease that does not verify (the table's row); the
    // error names the activation Polar made (its slot is taken).
    let err = app
        .activate(&ActivateRequest::new(key.as_str(), "laptop"))
        .await
        .expect_err("a grant without a lease that verifies is no verdict");
    assert!(err.to_string().contains("deactivating"), "{err}");

    // The relay's own key again: licensed online, then offline from its lease.
    *relay.signer.borrow_mut() = Rc::new(relay_key());
    let outcome = app.check(key.as_str()).await;
    assert_eq!(outcome.source(), Some(Source::Online), "{outcome:?}");
    relay.offline.set(true);
    assert!(from_cache(&app.check(key.as_str()).await).is_some());
}

/// Issue #53 on the Rust-on-wasm client: the key revoked and denied online, the proxy replays
/// the relay's earlier 200 with its genuine lease: `replayed` (another request's nonce), and
/// the denial kept; a clock set back stays `clock_rollback` through the replay.
#[wasm_bindgen_test]
async fn a_replayed_relay_grant_undoes_neither_a_denial_nor_a_clock_set_back() {
    let (relay, key, app) = signed_and_activated().await;
    relay.advance(2 * 3600);
    let captured = app.check(key.as_str()).await;
    assert_eq!(captured.source(), Some(Source::Online), "{captured:?}");

    // The clock ahead and back, offline: clock_rollback, and the replay changes nothing.
    relay.offline.set(true);
    relay.advance(30 * DAY);
    assert!(!app.check(key.as_str()).await.is_licensed());
    relay.advance(-28 * DAY);
    let back = app.check(key.as_str()).await;
    assert_eq!(back.reason(), Some(Reason::ClockRollback), "{back:?}");
    relay.offline.set(false);
    relay.replay.set(true);
    let replayed = app.check(key.as_str()).await;
    assert_eq!(replayed.reason(), Some(Reason::Replayed), "{replayed:?}");
    relay.replay.set(false);
    relay.offline.set(true);
    let kept = app.check(key.as_str()).await;
    assert_eq!(kept.reason(), Some(Reason::ClockRollback), "{kept:?}");

    // Revoked and denied online; the replay is refused and the denial kept.
    relay.offline.set(false);
    fetch::patch_key(emulator(), key.as_str(), json!({ "status": "revoked" })).await;
    let denied = app.check(key.as_str()).await;
    assert_eq!(denied.reason(), Some(Reason::Inactive), "{denied:?}");
    relay.replay.set(true);
    let replayed = app.check(key.as_str()).await;
    assert_eq!(replayed.reason(), Some(Reason::Replayed), "{replayed:?}");
    relay.replay.set(false);
    relay.offline.set(true);
    relay.advance(3600);
    assert!(!app.check(key.as_str()).await.is_licensed());
    let status = app.status(key.as_str()).await.unwrap();
    assert_eq!(status.standing, Standing::Denied, "{status:?}");
}

// ---- issue #62: signed mode trusts only signed facts (tests/signed_facts.rs on wasm) --------

/// An app of `relay` over `store` for a build released at `released`, every check asking, in
/// signed mode when `keys` is not empty.
fn released_app(
    relay: &Relay,
    store: &MemoryStore,
    keys: RelayKeys,
    released: i64,
) -> AsyncLicensing {
    relay
        .builder(store, keys)
        .policy(GracePolicy {
            revalidate_after: Duration::ZERO,
            ..GracePolicy::default()
        })
        .released(ReleaseDate::from_unix(released))
        .build_with_transport(relay.transport())
        .unwrap()
}

/// Not licensed, and no fallback.
#[track_caller]
fn no_fallback(report: &polar_license::CheckReport) {
    assert!(!report.outcome.is_licensed(), "{report:?}");
    assert_eq!(
        report.perpetual.map(|p| p.fallback),
        Some(false),
        "{report:?}"
    );
}

/// The reason of the denial the record keeps.
async fn kept(app: &AsyncLicensing, key: &str) -> Option<Reason> {
    let status = app.status(key).await.unwrap();
    assert_eq!(status.standing, Standing::Denied, "{status:?}");
    match status.state {
        polar_license::CacheState::Present(record) => record.denied.map(|d| d.reason),
        other => panic!("{other:?}"),
    }
}

/// The key paid through 30 days from now, refunded (revoked); a fake relay answers an unsigned
/// "expired": in signed mode no fallback online, offline, nor 40 days later, and the denial
/// kept. An app without relay keys on the same answers falls back (nothing is signed there).
#[wasm_bindgen_test]
async fn a_forged_unsigned_expiry_never_licenses_a_revoked_key_in_signed_mode() {
    let relay = Relay::new();
    relay.signs_denials.set(true);
    let start = relay.now.get();
    let fields = json!({ "limit_activations": 3, "expires_at": rfc3339(start + 30 * DAY) });
    let key = fetch::new_key(emulator(), "WASM-FACTS", fields).await;
    let (signed_store, plain_store) = (MemoryStore::new(), MemoryStore::new());
    let signed = released_app(&relay, &signed_store, relay.keys(), start);
    let plain = released_app(&relay, &plain_store, RelayKeys::new(), start);
    for app in [&signed, &plain] {
        app.activate(&ActivateRequest::new(key.as_str(), "laptop"))
            .await
            .expect("activate answers")
            .accepted()
            .expect("activated");
    }
    relay.advance(3600);
    let first = signed.check_report(key.as_str()).await;
    assert_eq!(first.outcome.source(), Some(Source::Online), "{first:?}");

    fetch::patch_key(emulator(), &key, json!({ "status": "revoked" })).await;
    relay.forged_expiry.set(true);
    relay.advance(3600);
    let forged = signed.check_report(key.as_str()).await;
    assert_eq!(forged.outcome.reason(), Some(Reason::Expired), "{forged:?}");
    no_fallback(&forged);
    // Unsigned: the forgery is believed (the limit docs/threat-model.md states).
    let believed = plain.check_report(key.as_str()).await;
    assert!(believed.outcome.is_licensed(), "{believed:?}");
    assert_eq!(
        believed.perpetual.map(|p| p.fallback),
        Some(true),
        "{believed:?}"
    );

    // Offline, then 40 days later (the fake relay, then offline again).
    relay.forged_expiry.set(false);
    relay.offline.set(true);
    relay.advance(3600);
    no_fallback(&signed.check_report(key.as_str()).await);
    relay.offline.set(false);
    relay.forged_expiry.set(true);
    relay.advance(40 * DAY);
    no_fallback(&signed.check_report(key.as_str()).await);
    relay.forged_expiry.set(false);
    relay.offline.set(true);
    relay.advance(60);
    no_fallback(&signed.check_report(key.as_str()).await);
    assert_eq!(kept(&signed, &key).await, Some(Reason::Expired));
}

/// One unsigned cancelled subscription added to the relay's genuine grant, then Polar's own
/// "no longer active" (revoked): in signed mode no fallback on it, online or offline, and the
/// denial kept.
#[wasm_bindgen_test]
async fn an_injected_unsigned_subscription_never_makes_a_revoked_key_perpetual() {
    let relay = Relay::new();
    relay.signs_denials.set(true);
    let start = relay.now.get();
    let key = new_key().await;
    let store = MemoryStore::new();
    // A build released three days ago: before the injected subscription's end (yesterday).
    let app = released_app(&relay, &store, relay.keys(), start - 3 * DAY);
    app.activate(&ActivateRequest::new(key.as_str(), "laptop"))
        .await
        .expect("activate answers")
        .accepted()
        .expect("activated");
    relay.inject.set(true);
    relay.advance(2 * 3600);
    let injected = app.check_report(key.as_str()).await;
    assert_eq!(
        injected.outcome.source(),
        Some(Source::Online),
        "{injected:?}"
    );
    let polar_license::CheckOutcome::Licensed { license, .. } = &injected.outcome else {
        panic!("{injected:?}")
    };
    assert!(license.license_key.subscription.is_some(), "injected");
    assert_eq!(injected.paid_through(), None, "{injected:?}");
    relay.inject.set(false);

    fetch::patch_key(emulator(), &key, json!({ "status": "revoked" })).await;
    relay.advance(2 * 3600);
    let revoked = app.check_report(key.as_str()).await;
    assert_eq!(
        revoked.outcome.reason(),
        Some(Reason::Inactive),
        "{revoked:?}"
    );
    no_fallback(&revoked);
    relay.offline.set(true);
    relay.advance(3600);
    no_fallback(&app.check_report(key.as_str()).await);
    assert_eq!(kept(&app, &key).await, Some(Reason::Inactive));
}

/// The Feature Flag benefit scripts/test-wasm.sh seeds the usage emulator with, and its values.
const FLAG: &str = "7e4f5a6b-8c9d-4e0f-9a1b-3c4d5e6f7a8b";

/// What [`relay_path`] does with each request to the real relay.
const PASS: u8 = 0;
/// The relay's lease edited inside its signed payload (`"max_upload_size":10` made `90`).
const ALTER: u8 = 1;
/// The relay unreachable.
const DOWN: u8 = 2;

/// The client's own `fetch` transport to the real relay, through what `mode` says: every
/// answer as it came (PASS), the lease's values altered after the relay signed them (ALTER,
/// counted in `edited`), or no answer (DOWN).
fn relay_path(mode: Rc<Cell<u8>>, edited: Rc<Cell<u32>>) -> impl AsyncTransport + 'static {
    move |request: HttpRequest| {
        let (mode, edited) = (Rc::clone(&mode), Rc::clone(&edited));
        async move {
            if mode.get() == DOWN {
                return Err(TransportError::new(
                    TransportErrorKind::Connect,
                    "the relay unreachable (test)",
                ));
            }
            let fetch = FetchTransport::new(Duration::from_secs(10), 1 << 20);
            let mut response = fetch.send(&request).await?;
            if mode.get() == ALTER {
                for (name, value) in response.headers.iter_mut() {
                    if !name.eq_ignore_ascii_case(LEASE_HEADER) {
                        continue;
                    }
                    if let Some(token) =
                        edit_payload(value, b"\"max_upload_size\":10", b"\"max_upload_size\":90")
                    {
                        *value = token;
                        edited.set(edited.get() + 1);
                    }
                }
            }
            Ok(response)
        }
    }
}

/// An app in signed mode asking the real relay through `mode` (every check asks), over a
/// memory store of its own.
fn real_relay_app(mode: &Rc<Cell<u8>>, edited: &Rc<Cell<u32>>) -> AsyncLicensing {
    AsyncLicensing::builder(ORG)
        .base_url(fetch::usage_relay())
        .timeout(Duration::from_secs(10))
        .memory_store()
        .machine_id(MACHINE_ID)
        .relay_keys(RelayKeys::parse(fetch::usage_relay_pair()).unwrap())
        .policy(GracePolicy {
            revalidate_after: Duration::ZERO,
            ..GracePolicy::default()
        })
        .build_with_transport(relay_path(Rc::clone(mode), Rc::clone(edited)))
        .unwrap()
}

/// Signed mode through the real relay (issue #68): `relay serve --sign-entitlements` in front of
/// the usage emulator, the app over its own `fetch` transport (no stand-in relay). The
/// relay's headers reach the core: the lease (a grant licenses online, its values read), where
/// the answer came from. `FetchTransport` once kept five headers by name, none of the relay's:
/// every licensed check through a real relay was `protocol_error` ("the grant came without a
/// lease that verifies (missing)"), and no value was read.
///
/// Issue #68's "the signed lease with entitlements verifies offline; a lease whose values were
/// altered is refused" on this face: the relay unreachable, the check licenses from the cache
/// with the lease's values; the lease's values altered on the way after the relay signed them,
/// an app with nothing cached is refused (`protocol_error`, no value) and the app holding the
/// good lease keeps its values, never the altered ones.
#[wasm_bindgen_test]
async fn through_a_real_relay() {
    let customer = fetch::random_uuid4();
    let key = fetch::new_key(
        fetch::usage_polar(),
        "WASM-RELAY",
        json!({ "customer_id": customer, "benefits": [FLAG] }),
    )
    .await;
    let (mode, edited) = (Rc::new(Cell::new(PASS)), Rc::new(Cell::new(0)));
    let app = real_relay_app(&mode, &edited);
    // The relay reads a customer's values in the background at its first ask: the leases
    // before that carry none (10 s at most).
    let start = js_sys::Date::now();
    let report = loop {
        let report = app.check_report(key.as_str()).await;
        if app.entitlement("role").is_some() || js_sys::Date::now() - start > 10_000.0 {
            break report;
        }
        sleep_ms(100).await;
    };
    assert_eq!(report.outcome.source(), Some(Source::Online), "{report:?}");
    assert!(report.lease.is_some(), "the relay's lease: {report:?}");
    assert!(report.relayed.is_some(), "the relay's source: {report:?}");
    let value = |app: &AsyncLicensing, name: &str| app.entitlement(name).map(|v| v.to_string());
    assert_eq!(value(&app, "max_upload_size").as_deref(), Some("10"));
    assert_eq!(value(&app, "role").as_deref(), Some("editor"));
    assert_eq!(value(&app, "nothing"), None);

    // Offline: the relay unreachable, the cached lease verifies with the relay's public key
    // alone, and its values are read.
    mode.set(DOWN);
    let offline = app.check_report(key.as_str()).await;
    assert!(from_cache(&offline.outcome).is_some(), "{offline:?}");
    assert_eq!(value(&app, "max_upload_size").as_deref(), Some("10"));
    assert_eq!(value(&app, "role").as_deref(), Some("editor"));

    // Altered on the way: not the relay's lease. An app with nothing cached is refused and
    // reads no value.
    mode.set(ALTER);
    let fresh = real_relay_app(&mode, &edited);
    for _ in 0..2 {
        let refused = fresh.check_report(key.as_str()).await;
        assert!(!refused.outcome.is_licensed(), "{refused:?}");
        assert_eq!(
            refused.outcome.reason(),
            Some(Reason::ProtocolError),
            "{refused:?}"
        );
        assert_eq!(value(&fresh, "max_upload_size"), None);
        assert_eq!(value(&fresh, "role"), None);
    }
    // The app holding the earlier lease: the altered answer is not Polar's; it licenses from
    // its cache with the values it verified then, never the altered ones.
    let kept = app.check_report(key.as_str()).await;
    assert!(from_cache(&kept.outcome).is_some(), "{kept:?}");
    assert_eq!(value(&app, "max_upload_size").as_deref(), Some("10"));
    assert_eq!(value(&app, "role").as_deref(), Some("editor"));
    assert!(
        edited.get() >= 3,
        "the leases were altered: {}",
        edited.get()
    );
}

async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set: js_sys::Function = js_sys::Reflect::get(&global, &"setTimeout".into())
            .unwrap()
            .into();
        set.call2(&global, &resolve, &ms.into()).unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}
