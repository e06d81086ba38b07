//! Why a key stopped (issue #68 item 4), over loopback: the native relay in front of the
//! emulator, each lifecycle case driven by the emulator's control routes (docs/polar-api.md
//! §16.6, §15) and Polar's webhooks delivered by the emulator to the relay, ending in the
//! relay's typed detail beside Polar's denial (`polar-license-stopped`), and in signed mode
//! inside the signed denial for the request whose nonce asks for it. A resumed subscription
//! licenses again at the next check; a refund without revocation explains nothing (the key
//! still licenses). A relay restarted over its file store still explains a denial.

mod rig;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use polar_license::grace::{CheckOutcome, GracePolicy};
use polar_license::lease::{
    nonce_text, verify_denial, DenialExpect, RelayKeys, SigningKey, DENIAL_HEADER, NONCE_HEADER,
};
use polar_license::proto::{HttpRequest, HttpResponse, ValidateRequest};
use polar_license::stopped::{StopKind, Stopped, STOPPED_HEADER};
use polar_license::{Key, Licensing, MachineBinding, Transport, TransportError, UreqTransport};
use polar_license_emulator::{
    Emulator, Seed, SeedKey, SeedMember, SeedOrder, SeedSubscription, DEMO_ORGANIZATION_ID,
    DEMO_TOKEN,
};
use polar_license_relay::store::{Backend, RedbBackend, StoreOptions};
use polar_license_relay::{Running, ServeOptions};
use polar_license_testkit::http::json_request;
use polar_license_testkit::ids::{CUSTOMER, LICENSE};
use polar_license_testkit::{customers_key, ScratchDir, LIFECYCLE_EVENTS};
use serde_json::{json, Value};

const PAUSED: &str = "LIFE-PAUSE-1B2C3D";
const CANCELED: &str = "LIFE-CANCEL-2C3D4E";
const PAST_DUE: &str = "LIFE-PASTDUE-3D4E5F";
const SEAT: &str = "LIFE-SEAT-4E5F6A";
const ONCE: &str = "LIFE-ONCE-5F6A7B";
const KEPT: &str = "LIFE-KEPT-6A7B8C";
const ROTATED: &str = "LIFE-ROTATE-7B8C9D";
const RESUMES_AT: &str = "2031-06-03T00:00:00Z";

fn subscribed(key: &str, n: u8) -> SeedKey {
    SeedKey {
        subscription: Some(SeedSubscription {
            id: Some(format!("9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a{n:02x}")),
            ..SeedSubscription::default()
        }),
        ..customers_key(key, LICENSE, CUSTOMER)
    }
}

fn ordered(key: &str, n: u8) -> SeedKey {
    SeedKey {
        order: Some(SeedOrder {
            id: Some(format!("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c{n:02x}")),
            ..SeedOrder::default()
        }),
        ..customers_key(key, LICENSE, CUSTOMER)
    }
}

fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.license_keys.extend([
        subscribed(PAUSED, 1),
        subscribed(CANCELED, 2),
        subscribed(PAST_DUE, 3),
        SeedKey {
            member: Some(SeedMember {
                id: Some("3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f".into()),
                email: Some("seat@example.com".into()),
                ..SeedMember::default()
            }),
            ..subscribed(SEAT, 4)
        },
        ordered(ONCE, 5),
        ordered(KEPT, 6),
        customers_key(ROTATED, LICENSE, CUSTOMER),
    ]);
    seed
}

/// The emulator with the cases' keys, its webhooks sent at once, and the relay (a memory
/// store, signing, no rate limits) its endpoint delivers to, verifying with its secret.
fn start() -> (Emulator, Running, String) {
    start_with(StoreOptions::default())
}

/// [`start`] with the store's options `store`.
fn start_with(store: StoreOptions) -> (Emulator, Running, String) {
    let (polar, endpoint, secret) = polar();
    let (relay, public) = relay_over(&polar, rig::memory(1_000), store, &secret);
    rig::point_endpoint_at(&polar, &endpoint, &relay);
    (polar, relay, public)
}

/// The emulator with the cases' keys, its webhooks sent at once, and its endpoint for the
/// cases' events: the emulator, the endpoint's id and its secret.
fn polar() -> (Emulator, String, String) {
    let polar = rig::webhook_emulator_with(seed());
    // The emulator's lifecycle suite's events, and those the relay's store also reads.
    let events = [
        &LIFECYCLE_EVENTS[..],
        &[
            "subscription.uncanceled",
            "benefit_grant.created",
            "benefit_grant.updated",
            "benefit_grant.revoked",
            "benefit_grant.cycled",
        ],
    ]
    .concat();
    let (endpoint, secret) = rig::endpoint(&polar, &events);
    (polar, endpoint, secret)
}

/// A relay in front of `polar` (signing, no rate limits) over `backend` with the store's
/// options `store`, verifying webhooks with `secret`: the relay and its public key.
fn relay_over(
    polar: &Emulator,
    backend: Arc<dyn Backend>,
    store: StoreOptions,
    secret: &str,
) -> (Running, String) {
    let signer = SigningKey::generate(Some("life")).expect("a key");
    let public = signer.public_pair();
    let mut config = rig::config_with(polar.url(), DEMO_TOKEN, signer);
    config.limits = rig::unlimited();
    config.store = rig::store(backend, store, Some(secret.into()));
    (rig::listen_with(config, ServeOptions::default()), public)
}

/// A validate's status, detail header and signed denial.
struct Checked {
    status: u16,
    stopped: Option<String>,
    denial: Option<String>,
}

fn validate(relay: &Running, key: &str, nonce: Option<&str>) -> Checked {
    let agent = rig::agent(Duration::from_secs(10));
    let mut req = agent
        .post(&format!("{}{}validate", relay.url(), rig::PUBLIC))
        .header("content-type", "application/json");
    if let Some(n) = nonce {
        req = req.header(NONCE_HEADER, n);
    }
    let mut r = req
        .send(json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID}).to_string())
        .expect("an answer");
    let _ = r.body_mut().read_to_string();
    Checked {
        status: r.status().as_u16(),
        stopped: rig::header_of(&r, STOPPED_HEADER),
        denial: rig::header_of(&r, DENIAL_HEADER),
    }
}

/// An admin control route of the emulator: its status and JSON.
fn control(polar: &Emulator, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let r = json_request(
        polar.port(),
        "POST",
        path,
        body.as_deref(),
        Some(DEMO_TOKEN),
    );
    let json = serde_json::from_str(&r.text()).unwrap_or(Value::Null);
    (r.status, json)
}

fn change(polar: &Emulator, key: &str, body: Value) {
    let (status, answer) = control(
        polar,
        &format!("/__emulator/keys/{key}/subscription"),
        Some(body),
    );
    assert!(status < 300, "{key}: {status} {answer}");
}

/// `key` validated through `relay` every 100 ms until `done` says yes of an answer or `limit`
/// has passed: whether it did, and the last answer's status and detail.
fn validate_until(
    relay: &Running,
    key: &str,
    limit: Duration,
    done: impl Fn(&Checked) -> bool,
) -> (bool, (u16, Option<String>)) {
    let mut last = None;
    let ended = rig::wait_until(limit, Duration::from_millis(100), || {
        let c = validate(relay, key, None);
        let ended = done(&c);
        last = Some((c.status, c.stopped));
        ended
    });
    (ended, last.expect("asked"))
}

/// `key` validated through `relay` until it is denied with a detail (the webhooks arrive
/// within seconds), which is returned read.
fn stopped(relay: &Running, key: &str) -> Stopped {
    let (done, (status, text)) = validate_until(relay, key, Duration::from_secs(15), |c| {
        c.status == 404 && c.stopped.is_some()
    });
    assert!(done, "{key}: no detail ({status}, {text:?})");
    Stopped::from_text(&text.expect("a detail")).expect("a detail the client reads")
}

/// `PAUSED`'s subscription paused at its period's end (resuming at `RESUMES_AT`) and the period
/// ended: its detail once the relay has heard the webhooks.
fn pause(polar: &Emulator, relay: &Running) -> Stopped {
    change(
        polar,
        PAUSED,
        json!({"action": "pause_at_period_end", "resumes_at": RESUMES_AT}),
    );
    change(polar, PAUSED, json!({"action": "period_end"}));
    stopped(relay, PAUSED)
}

fn unix(text: &str) -> i64 {
    polar_license::schema::rfc3339(text).expect("a date")
}

#[test]
fn each_lifecycle_case_ends_in_its_detail_and_a_resume_licenses_again() {
    let (polar, relay, _) = start();
    // Every key licensed first, through the relay (it learns each string's key id).
    for key in [PAUSED, CANCELED, PAST_DUE, SEAT, ONCE, KEPT, ROTATED] {
        let c = validate(&relay, key, None);
        assert_eq!((c.status, c.stopped), (200, None), "{key}");
    }

    // Paused at period end, with the date it resumes.
    change(
        &polar,
        PAUSED,
        json!({"action": "pause_at_period_end", "resumes_at": RESUMES_AT}),
    );
    assert_eq!(
        validate(&relay, PAUSED, None).status,
        200,
        "until the period ends"
    );
    change(&polar, PAUSED, json!({"action": "period_end"}));
    let s = stopped(&relay, PAUSED);
    assert_eq!(s.kind, StopKind::Paused);
    assert_eq!(s.until, Some(unix(RESUMES_AT)));
    assert!(s.at.is_some(), "paused_at");

    // Canceled at period end: the period ends, and with it the key.
    change(&polar, CANCELED, json!({"action": "cancel_at_period_end"}));
    change(&polar, CANCELED, json!({"action": "period_end"}));
    let s = stopped(&relay, CANCELED);
    assert_eq!(s.kind, StopKind::Canceled);
    assert!(s.at.is_some(), "ended_at");

    // Past due with no grace: the grants go at once.
    change(
        &polar,
        PAST_DUE,
        json!({"action": "past_due", "grace_days": 0}),
    );
    assert_eq!(stopped(&relay, PAST_DUE).kind, StopKind::PastDue);

    // The team's admin removed the seat (the seat's webhook with its member nulled, then the
    // member's grant).
    let (status, _) = control(
        &polar,
        &format!("/__emulator/keys/{SEAT}/seat/revoke"),
        None,
    );
    assert!(status < 300, "{status}");
    assert_eq!(stopped(&relay, SEAT).kind, StopKind::SeatRevoked);

    // A refund with revocation stops its key; one without leaves the key licensed.
    let (status, _) = control(
        &polar,
        &format!("/__emulator/keys/{KEPT}/refund"),
        Some(json!({"revoke_benefits": false})),
    );
    assert!(status < 300, "{status}");
    let (status, _) = control(
        &polar,
        &format!("/__emulator/keys/{ONCE}/refund"),
        Some(json!({"revoke_benefits": true})),
    );
    assert!(status < 300, "{status}");
    assert_eq!(stopped(&relay, ONCE).kind, StopKind::Refunded);
    let c = validate(&relay, KEPT, None);
    assert_eq!((c.status, c.stopped), (200, None), "refunded, not revoked");

    // Rotated: the old string answers Polar's 404 "Not found", with its detail; the new one
    // licenses, with none.
    let new = polar.rotate_key(ROTATED).expect("rotated");
    assert_eq!(stopped(&relay, ROTATED).kind, StopKind::Rotated);
    let c = validate(&relay, &new, None);
    assert_eq!((c.status, c.stopped), (200, None));

    // The paused subscription resumes: the next checks license the same key again, and the
    // detail is gone with the denial.
    change(&polar, PAUSED, json!({"action": "resume"}));
    let (resumed, last) =
        validate_until(&relay, PAUSED, Duration::from_secs(15), |c| c.status == 200);
    assert!(resumed, "licensed again: {last:?}");
    assert_eq!(last, (200, None));
    // The other keys' denials are as they were (a resume is its subscription's only).
    assert_eq!(stopped(&relay, CANCELED).kind, StopKind::Canceled);
}

/// The `stop` claim of a signed denial `token`, read from its payload without verifying: to
/// see whether the member is there at all (a client older than the claim refuses a denial
/// with it).
fn stop_member(token: &str) -> Option<Value> {
    let body = token.strip_prefix("v4.public.").expect("a v4.public token");
    let body = body.split('.').next().expect("a payload");
    let raw = Base64UrlSafeNoPadding::decode_to_vec(body, None).expect("base64url");
    let message = &raw[..raw.len() - 64];
    let claims: Value = serde_json::from_slice(message).expect("JSON claims");
    claims.get("stop").cloned()
}

#[test]
fn signed_mode_carries_the_detail_in_the_signed_denial_for_the_client_that_asks() {
    let (polar, relay, public) = start();
    let mut keys = RelayKeys::new();
    keys.add_pair(&public).expect("the relay's key");
    assert_eq!(validate(&relay, PAUSED, None).status, 200);
    let _ = pause(&polar, &relay);

    let key = Key::new(PAUSED);
    let expect = DenialExpect {
        organization_id: DEMO_ORGANIZATION_ID,
        key: &key,
        activation_id: None,
        machine: None,
    };
    // This client's nonce asks for the claim: the signed denial carries it, verified.
    let nonce = nonce_text(&[7; 16]);
    let c = validate(&relay, PAUSED, Some(&nonce));
    assert_eq!(c.status, 404);
    let token = c.denial.expect("a signed denial");
    let signed = verify_denial(&token, &keys, &expect).expect("it verifies");
    let s = signed.stopped().expect("the signed detail");
    assert_eq!(
        (s.kind, s.until),
        (StopKind::Paused, Some(unix(RESUMES_AT)))
    );
    assert_eq!(c.stopped.as_deref(), Some(s.to_text().as_str()));
    // A client older than the claim (its nonce only `-facts`) gets a denial without the
    // member it would refuse; the header beside it is as before, for anyone.
    let old = format!("{}-facts", "ab".repeat(16));
    let c = validate(&relay, PAUSED, Some(&old));
    let token = c.denial.expect("a signed denial");
    assert_eq!(stop_member(&token), None);
    let signed = verify_denial(&token, &keys, &expect).expect("it verifies");
    assert_eq!(signed.stopped(), None);
    assert!(c.stopped.is_some());
}

/// What the proxy between the app and the relay does to a validate's answer.
#[derive(Clone, Default)]
struct Proxy {
    /// A `polar-license-stopped` header written in (replacing the relay's), unsigned.
    forged: Arc<Mutex<Option<&'static str>>>,
    /// The relay's signed denial taken out.
    strip_signed: Arc<AtomicBool>,
}

struct Through {
    inner: UreqTransport,
    proxy: Proxy,
}

impl Transport for Through {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut r = self.inner.send(request)?;
        if let Some(forged) = *self.proxy.forged.lock().expect("lock") {
            r.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(STOPPED_HEADER));
            r.headers
                .push((STOPPED_HEADER.to_string(), forged.to_string()));
        }
        if self.proxy.strip_signed.load(Ordering::SeqCst) {
            r.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case(DENIAL_HEADER));
        }
        Ok(r)
    }
}

/// The app's `Licensing` (the native face; the CLI, C ABI, Python and Tauri share it) talking
/// to `relay` through `proxy`, in signed mode when `keys` has the relay's key.
fn app(relay: &Running, dir: &std::path::Path, keys: RelayKeys, proxy: &Proxy) -> Licensing {
    Licensing::builder(DEMO_ORGANIZATION_ID)
        .base_url(relay.url())
        .cache_dir(dir)
        .machine_binding(MachineBinding::Id("lifecycle-machine".into()))
        .app_secret(b"the lifecycle test's app secret".to_vec())
        .relay_keys(keys)
        // Every check asks (through the relay), as the cache's revalidation would in time.
        .policy(GracePolicy {
            revalidate_after: Duration::ZERO,
            ..GracePolicy::default()
        })
        .build_with_transport(Through {
            inner: rig::upstream(Duration::from_secs(10)),
            proxy: proxy.clone(),
        })
        .expect("the app builds")
}

/// `app`'s activation of `key`, refused: the denial's detail (its kind).
fn activated(app: &Licensing, key: &str) -> Option<StopKind> {
    let req = polar_license::proto::ActivateRequest::new(key, "lifecycle-machine");
    match app.activate(&req) {
        Ok(polar_license::Verdict::Denied(d)) => d.stopped.map(|s| s.kind),
        other => panic!("not a denial: {other:?}"),
    }
}

fn detail(outcome: &CheckOutcome) -> Option<Stopped> {
    match outcome {
        CheckOutcome::Denied(d) => d.stopped,
        other => panic!("not a denial: {other:?}"),
    }
}

/// The verdict carries the detail on the native face: unsigned from the header; in signed
/// mode only from the signed denial, never from a header a proxy wrote.
#[test]
fn the_verdict_carries_the_detail_and_signed_mode_believes_only_the_signed_one() {
    let (polar, relay, public) = start();
    let dir = polar_license_testkit::ScratchDir::new("lifecycle-faces");
    let mut keys = RelayKeys::new();
    keys.add_pair(&public).expect("the relay's key");
    let proxy = Proxy::default();
    let unsigned = app(
        &relay,
        &dir.path().join("unsigned"),
        RelayKeys::new(),
        &proxy,
    );
    let signed = app(&relay, &dir.path().join("signed"), keys, &proxy);
    assert!(unsigned.check(PAUSED).is_licensed());
    assert!(signed.check(PAUSED).is_licensed());
    let _ = pause(&polar, &relay);

    let paused = Some(StopKind::Paused);
    let outcome = unsigned.check(PAUSED);
    let s = detail(&outcome).expect("the detail");
    assert_eq!(
        (s.kind, s.until),
        (StopKind::Paused, Some(unix(RESUMES_AT)))
    );
    if let CheckOutcome::Denied(d) = &outcome {
        assert_eq!(
            d.reason,
            polar_license::Reason::Inactive,
            "the reason stays"
        );
    }
    assert_eq!(detail(&signed.check(PAUSED)).map(|s| s.kind), paused);

    // A proxy writes another detail: the unsigned app reads it (it has no way to tell), the
    // signed one still reads the relay's signed detail.
    *proxy.forged.lock().expect("lock") = Some("refunded; at=1");
    assert_eq!(
        detail(&unsigned.check(PAUSED)).map(|s| s.kind),
        Some(StopKind::Refunded)
    );
    assert_eq!(detail(&signed.check(PAUSED)).map(|s| s.kind), paused);
    // `validate` (the update flow) reads it alike.
    let validated = |app: &Licensing| match app.validate(&ValidateRequest::new(PAUSED)) {
        Ok(polar_license::Verdict::Denied(d)) => d.stopped.map(|s| s.kind),
        other => panic!("not a denial: {other:?}"),
    };
    assert_eq!(validated(&unsigned), Some(StopKind::Refunded));
    assert_eq!(validated(&signed), paused);
    // A refused activation carries it too (Polar's 403 for the paused key), read alike.
    assert_eq!(activated(&unsigned, PAUSED), Some(StopKind::Refunded));
    assert_eq!(activated(&signed, PAUSED), paused);
    // Without the signed denial, the signed app believes no detail at all.
    proxy.strip_signed.store(true, Ordering::SeqCst);
    let outcome = signed.check(PAUSED);
    assert_eq!(detail(&outcome), None);
    assert!(!outcome.is_licensed());
    assert_eq!(validated(&signed), None);
    assert_eq!(activated(&signed, PAUSED), None);
    // A detail that does not read is none.
    proxy.strip_signed.store(false, Ordering::SeqCst);
    *proxy.forged.lock().expect("lock") = Some("gone fishing");
    assert_eq!(detail(&unsigned.check(PAUSED)), None);
    assert_eq!(activated(&unsigned, PAUSED), None);
    *proxy.forged.lock().expect("lock") = None;
    // The relay's own detail on a refused activation, unsigned and signed.
    assert_eq!(activated(&unsigned, PAUSED), paused);
    assert_eq!(activated(&signed, PAUSED), paused);
    // A rotated string's activation: Polar's 404 "Not found", explained as `rotated`.
    assert!(unsigned.check(ROTATED).is_licensed());
    let _ = polar.rotate_key(ROTATED).expect("rotated");
    let _ = stopped(&relay, ROTATED);
    assert_eq!(activated(&unsigned, ROTATED), Some(StopKind::Rotated));
    assert_eq!(activated(&signed, ROTATED), Some(StopKind::Rotated));

    // Resumed: the same apps license again at their next checks.
    change(&polar, PAUSED, json!({"action": "resume"}));
    let again = rig::wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        unsigned.check(PAUSED).is_licensed() && signed.check(PAUSED).is_licensed()
    });
    assert!(again, "licensed again after the resume");
}

/// Issue #68: without the roster (no read of Polar by id after a re-grant's webhook), a paused
/// subscription resumed licenses its key again at the next check after the resume's webhooks,
/// long before its revocation's `denial_for` (an hour here) ends: the webhook made the stored
/// revocation a re-check, and Polar's own answer decided. While Polar cannot be asked it would
/// still refuse (a webhook never grants: `webhooks.rs`'s forged and reordered cases).
#[test]
fn without_the_roster_a_resume_licenses_again_at_the_next_check() {
    let mut store = StoreOptions::default();
    store.roster = false;
    store.denial_for = 3_600;
    let (polar, relay, _) = start_with(store);
    assert_eq!(validate(&relay, PAUSED, None).status, 200, "licensed first");
    assert_eq!(pause(&polar, &relay).kind, StopKind::Paused);
    change(&polar, PAUSED, json!({"action": "resume"}));
    let (resumed, last) =
        validate_until(&relay, PAUSED, Duration::from_secs(10), |c| c.status == 200);
    assert!(resumed, "licensed again without the roster: {last:?}");
    assert_eq!(last, (200, None));
}

/// Why a key stopped survives the relay: the relay over its file store told by Polar's
/// webhooks that a key's subscription paused, then stopped and started again over the same
/// file, still answers the key's denial with its typed detail (`polar-license-stopped`): what
/// the webhooks explained is kept in the store, not only in the relay's memory.
#[test]
fn a_restarted_relay_still_explains_a_paused_keys_denial() {
    let dir = ScratchDir::new("relay-lifecycle-restart");
    let path = dir.path().join("store.redb");
    let file = || -> Arc<dyn Backend> {
        Arc::new(RedbBackend::open(&path, 1_000).expect("the file store"))
    };
    let (polar, endpoint, secret) = polar();
    let (relay, _) = relay_over(&polar, file(), StoreOptions::default(), &secret);
    rig::point_endpoint_at(&polar, &endpoint, &relay);
    // Licensed first, through the relay (it learns the string's key id).
    let c = validate(&relay, PAUSED, None);
    assert_eq!((c.status, c.stopped), (200, None));
    let before = pause(&polar, &relay);
    assert_eq!(before.kind, StopKind::Paused);
    // Stopped (its memory gone) and started again over the same file.
    relay.stop();
    let (relay, _) = relay_over(&polar, file(), StoreOptions::default(), &secret);
    // Its denial (and the next) answered with the detail the store kept.
    for _ in 0..2 {
        let c = validate(&relay, PAUSED, None);
        assert_eq!(c.status, 404);
        let after = Stopped::from_text(&c.stopped.expect("the detail after the restart"))
            .expect("a detail the client reads");
        assert_eq!(after, before);
        assert_eq!(after.until, Some(unix(RESUMES_AT)));
    }
    relay.stop();
}
