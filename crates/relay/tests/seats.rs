//! Floating and CI seats (issue #67) through the relay's one door: the rig's blocking host of
//! the request machine (`rig::Relayed::handle`) in front of the emulator over loopback, the relay's
//! clock given by the test (no sleeping: a seat's life passes by moving `now`).

mod rig;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use polar_license::lease::{verify_seat, SeatExpect, SigningKey, SEAT_HEADER};
use polar_license::Key;
use polar_license_emulator::{Emulator, DEMO_ORGANIZATION_ID};
use polar_license_relay::store::{Backend, RedbBackend, StoreOptions};
use polar_license_relay::{Now, Relay, RelayResponse, SeatOptions, SEATS_PREFIX};
use polar_license_testkit::ScratchDir;
use serde_json::{json, Value};

struct Seats {
    relay: rig::Relayed,
    signer: SigningKey,
}

fn relay_over(polar: &Emulator, backend: Arc<dyn Backend>, seats: SeatOptions) -> Seats {
    relay_over_with(polar, backend, StoreOptions::default(), seats)
}

/// [`relay_over`] with the store's `options`.
fn relay_over_with(
    polar: &Emulator,
    backend: Arc<dyn Backend>,
    options: StoreOptions,
    seats: SeatOptions,
) -> Seats {
    let signer = SigningKey::generate(Some("seats")).expect("a key");
    let copy = SigningKey::from_file_text(&signer.to_file_text()).expect("the key");
    let mut config = rig::config_with(polar.url(), polar_license_emulator::DEMO_TOKEN, copy);
    config.limits = rig::unlimited();
    config.store = rig::store(backend, options, None);
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)))
        .with_seats(seats)
        .expect("seat options");
    Seats { relay, signer }
}

fn seat_body(key: &str, machine: &str, seat: Option<&str>, kind: Option<&str>) -> String {
    let mut body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "machine": machine});
    if let Some(seat) = seat {
        body["seat"] = json!(seat);
    }
    if let Some(kind) = kind {
        body["kind"] = json!(kind);
    }
    body.to_string()
}

fn call(relay: &rig::Relayed, op: &str, body: &str, now: Now) -> (RelayResponse, Value) {
    let req = rig::request(&format!("{SEATS_PREFIX}{op}"), &[], body);
    let r = relay.handle(&req, now);
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r, v)
}

fn acquire(s: &Seats, key: &str, machine: &str, now: Now) -> (RelayResponse, Value) {
    call(
        &s.relay,
        "acquire",
        &seat_body(key, machine, None, None),
        now,
    )
}

fn heartbeat(s: &Seats, key: &str, machine: &str, seat: &str, now: Now) -> (RelayResponse, Value) {
    on_seat(s, "heartbeat", key, machine, seat, now)
}

fn release(s: &Seats, key: &str, machine: &str, seat: &str, now: Now) -> (RelayResponse, Value) {
    on_seat(s, "release", key, machine, seat, now)
}

/// `op` (`heartbeat`, `release`) on the seat `seat` that `machine` holds with `key`.
fn on_seat(
    s: &Seats,
    op: &str,
    key: &str,
    machine: &str,
    seat: &str,
    now: Now,
) -> (RelayResponse, Value) {
    let body = seat_body(key, machine, Some(seat), None);
    call(&s.relay, op, &body, now)
}

/// The seat's id, its lease verified offline for `machine` at `now`.
fn held(s: &Seats, key: &str, machine: &str, answer: &(RelayResponse, Value), now: i64) -> String {
    let (r, v) = answer;
    assert_eq!(r.status, 200, "{v}");
    let token = r.header(SEAT_HEADER).expect("a seat lease");
    let k = Key::new(key);
    let expect = SeatExpect {
        organization_id: DEMO_ORGANIZATION_ID,
        key: &k,
        machine,
    };
    let claims = verify_seat(token, &s.signer.relay_keys(), &expect, now).expect("it verifies");
    assert_eq!(claims.seat, v["seat"].as_str().expect("seat"));
    claims.seat
}

/// A seat acquired by `machine` at `now` and [`held`].
fn acquired(s: &Seats, key: &str, machine: &str, now: i64) -> String {
    let answer = acquire(s, key, machine, rig::at(now));
    held(s, key, machine, &answer, now)
}

fn key(polar: &Emulator, name: &str, limit: i64) -> String {
    rig::add_key(polar, format!("SEATS-{name}-4A5B6C"), Some(limit))
}

/// The emulator, a key `name` of `limit` seats on it, and a relay over a memory store with
/// the default seat options.
fn seats_of(name: &str, limit: i64) -> (Emulator, String, Seats) {
    let polar = rig::emulator();
    let k = key(&polar, name, limit);
    let s = relay_over(&polar, rig::memory(1_000), SeatOptions::default());
    (polar, k, s)
}

/// The emulator, a key `name` of the demo benefit (one activation) on it, and a relay over a
/// memory store whose seat options give that benefit `size` seats and CI seats `ci_cap`.
fn benefit_seats(name: &str, size: u32, ci_cap: Option<u32>) -> (Emulator, String, Seats) {
    let polar = rig::emulator();
    let benefit = polar_license_emulator::DEMO_BENEFIT_ID.to_string();
    let k = format!("SEATS-{name}-4A5B6C");
    polar
        .add_key(polar_license_emulator::SeedKey {
            limit_activations: Some(1),
            benefit_id: Some(benefit.clone()),
            ..polar_license_emulator::SeedKey::new(&k)
        })
        .expect("a key");
    let options = SeatOptions {
        per_benefit: vec![(benefit, size)],
        ci_cap,
        ..SeatOptions::default()
    };
    let s = relay_over(&polar, rig::memory(1_000), options);
    (polar, k, s)
}

#[test]
fn seats_to_full_then_seats_full_and_a_release_frees_one_with_one_call_to_polar() {
    let (polar, k, s) = seats_of("FULL", 2);
    polar.reset_request_count();
    let t = rig::now();
    let a = acquired(&s, &k, "m-a", t);
    let _b = acquired(&s, &k, "m-b", t + 1);
    let (r, v) = acquire(&s, &k, "m-c", rig::at(t + 2));
    assert_eq!(r.status, 409, "{v}");
    assert_eq!(v["reason"], "seats_full");
    assert_eq!(
        (v["in_use"].as_u64(), v["size"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        v["frees_at"],
        rig::rfc3339(t + 300),
        "the soonest seat's end"
    );
    assert_eq!(r.header("retry-after"), Some("298"));
    // Another machine cannot give a seat back.
    let (_, v) = release(&s, &k, "m-c", &a, rig::at(t + 3));
    assert_eq!(v["released"], false);
    let (r, v) = release(&s, &k, "m-a", &a, rig::at(t + 3));
    assert_eq!((r.status, &v["released"]), (200, &json!(true)));
    acquired(&s, &k, "m-c", t + 4);
    assert_eq!(
        polar.request_count(),
        1,
        "the key's verdict asked once, then the store's"
    );
}

#[test]
fn a_seat_not_heard_from_within_its_life_is_culled_and_a_heartbeat_keeps_one() {
    let (_polar, k, s) = seats_of("CULL", 1);
    let t = rig::now();
    let a = acquired(&s, &k, "m-a", t);
    // A heartbeat at +200: held until +500, its new lease saying so.
    let (r, v) = heartbeat(&s, &k, "m-a", &a, rig::at(t + 200));
    assert_eq!(held(&s, &k, "m-a", &(r, v.clone()), t + 200), a);
    assert_eq!(v["expires_at"], rig::rfc3339(t + 500));
    assert_eq!(acquire(&s, &k, "m-b", rig::at(t + 499)).0.status, 409);
    // Not heard from by +500: free for the next machine; the late heartbeat finds it gone.
    acquired(&s, &k, "m-b", t + 500);
    let (r, v) = heartbeat(&s, &k, "m-a", &a, rig::at(t + 501));
    assert_eq!((r.status, &v["reason"]), (404, &json!("seat_gone")));
}

#[test]
fn a_heartbeat_from_another_machine_is_not_the_seats() {
    let (_polar, k, s) = seats_of("OTHER", 1);
    let t = rig::now();
    let a = acquired(&s, &k, "m-a", t);
    assert_eq!(heartbeat(&s, &k, "m-b", &a, rig::at(t + 1)).0.status, 404);
    assert_eq!(heartbeat(&s, &k, "m-a", &a, rig::at(t + 2)).0.status, 200);
}

#[test]
fn a_key_polar_denies_gets_polars_denial_and_no_seat() {
    let polar = rig::emulator();
    let s = relay_over(&polar, rig::memory(1_000), SeatOptions::default());
    let t = rig::now();
    let (r, v) = acquire(&s, "SEATS-NOBODY-4A5B6C", "m-a", rig::at(t));
    assert_eq!(r.status, 404, "{v}");
    assert!(r.header(SEAT_HEADER).is_none());
    assert_eq!(v["error"], "ResourceNotFound", "Polar's own answer");
}

#[test]
fn bad_seat_requests_are_refused_before_anything_is_asked() {
    let (polar, k, s) = seats_of("BAD", 2);
    polar.reset_request_count();
    let now = rig::at(rig::now());
    for (op, body) in [
        ("acquire", "not json".to_string()),
        (
            "acquire",
            json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID}).to_string(),
        ),
        ("acquire", seat_body(&k, "", None, None)),
        ("acquire", seat_body(&k, "m\u{7}", None, None)),
        ("acquire", seat_body(&k, "m", None, Some("team"))),
        (
            "acquire",
            seat_body(&k, "m", Some("6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b"), None),
        ),
        ("heartbeat", seat_body(&k, "m", None, None)),
        ("heartbeat", seat_body(&k, "m", Some("not-a-uuid"), None)),
        ("release", seat_body(&k, "m", None, None)),
        (
            "acquire",
            json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID, "machine": "m", "x": 1})
                .to_string(),
        ),
    ] {
        let (r, v) = call(&s.relay, op, &body, now);
        assert_eq!(r.status, 422, "{op} {body}: {v}");
    }
    let (r, _) = call(&s.relay, "borrow", &seat_body(&k, "m", None, None), now);
    assert_eq!(r.status, 404);
    assert_eq!(polar.request_count(), 0);
}

#[test]
fn ci_seats_have_their_own_cap_and_a_benefit_its_own_size() {
    let (_polar, k, s) = benefit_seats("CI", 3, Some(1));
    let t = rig::now();
    let ci = |machine: &str| {
        call(
            &s.relay,
            "acquire",
            &seat_body(&k, machine, None, Some("ci")),
            rig::at(t),
        )
    };
    assert_eq!(ci("job-1").0.status, 200);
    let (r, v) = ci("job-2");
    assert_eq!(
        (r.status, v["in_use"].as_u64(), v["size"].as_u64()),
        (409, Some(1), Some(1))
    );
    // Floating seats: the seller's 3 for the benefit, not the key's limit of 1.
    assert_eq!(acquire(&s, &k, "m-a", rig::at(t)).0.status, 200);
    assert_eq!(acquire(&s, &k, "m-b", rig::at(t)).0.status, 200);
    assert_eq!(acquire(&s, &k, "m-c", rig::at(t)).0.status, 409);
}

/// N clients racing for k seats get exactly k, on the store in memory and on the file.
#[test]
fn clients_racing_for_the_last_seats_get_exactly_as_many_as_there_are() {
    let dir = ScratchDir::new("seats-race");
    let backends: Vec<Arc<dyn Backend>> = vec![
        rig::memory(1_000),
        Arc::new(RedbBackend::open(&dir.path().join("race.redb"), 1_000).expect("a store")),
    ];
    for backend in backends {
        let polar = rig::emulator();
        let k = key(&polar, "RACE", 3);
        let s = Arc::new(relay_over(&polar, backend, SeatOptions::default()));
        let t = rig::now();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (s, k) = (Arc::clone(&s), k.clone());
                std::thread::spawn(move || acquire(&s, &k, &format!("m-{i}"), rig::at(t)).0.status)
            })
            .collect();
        let statuses: Vec<u16> = threads
            .into_iter()
            .map(|h| h.join().expect("a thread"))
            .collect();
        assert_eq!(
            statuses.iter().filter(|&&c| c == 200).count(),
            3,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|&&c| c == 409).count(),
            13,
            "{statuses:?}"
        );
    }
}

fn redb(path: &Path) -> Arc<dyn Backend> {
    Arc::new(RedbBackend::open(path, 1_000).expect("a store"))
}

#[test]
fn a_relay_restarted_mid_hold_keeps_every_seat() {
    let polar = rig::emulator();
    let k = key(&polar, "RESTART", 2);
    let dir = ScratchDir::new("seats-restart");
    let path = dir.path().join("seats.redb");
    let t = rig::now();
    let (a, b) = {
        let s = relay_over(&polar, redb(&path), SeatOptions::default());
        let a = acquired(&s, &k, "m-a", t);
        let b = acquired(&s, &k, "m-b", t);
        (a, b)
    };
    let s = relay_over(&polar, redb(&path), SeatOptions::default());
    assert_eq!(
        acquire(&s, &k, "m-c", rig::at(t + 10)).0.status,
        409,
        "both seats held"
    );
    assert_eq!(heartbeat(&s, &k, "m-a", &a, rig::at(t + 20)).0.status, 200);
    assert_eq!(
        release(&s, &k, "m-b", &b, rig::at(t + 30)).1["released"],
        true
    );
    assert_eq!(acquire(&s, &k, "m-c", rig::at(t + 40)).0.status, 200);
}

/// A store written before entries had kinds (a pool told apart by its status 0 alone, as
/// the relay wrote it until issue #67's store kind): its pools load as pools, never evicted,
/// their seats held; the pool's next step writes it with its kind (`"kind":"seat_pool"`).
#[test]
fn a_store_written_before_entry_kinds_keeps_its_pools() {
    use polar_license_relay::store::{Entry, EntryKind, Mark};
    use sha2::{Digest, Sha256};
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let polar = rig::emulator();
    let k = key(&polar, "OLDPOOL", 1);
    let dir = ScratchDir::new("seats-old-format");
    let path = dir.path().join("seats.redb");
    let t = rig::now();
    let seat = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
    let mut h = Sha256::new();
    for part in [
        "seats",
        DEMO_ORGANIZATION_ID,
        &polar_license::lease::key_hash(&Key::new(k.clone())),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let pool_id: [u8; 32] = h.finalize().into();
    // The pool as the relay wrote it before kinds: no `kind` member, status 0.
    let old = json!({
        "license_key_id": null, "customer_id": null, "answered_at": t, "status": 0,
        "body": json!({"seats": [{"id": seat, "machine": hex(&Sha256::digest(b"m-old")),
            "ci": false, "until": t + 300}]}).to_string(),
        "headers": [], "grant": false, "mark": "None", "last_event_at": 0,
        "key_event_at": 0, "marked_at": 0, "key_at": null,
    });
    let entry: Entry = serde_json::from_value(old.clone()).expect("an old entry reads");
    assert_eq!((entry.kind, entry.kind()), (None, EntryKind::SeatPool));
    assert_eq!(entry.mark, Mark::None);
    assert_eq!(
        serde_json::to_value(&entry).expect("JSON"),
        old,
        "the old format, as written then"
    );
    redb(&path).put(&pool_id, &entry).expect("written");

    let store = redb(&path);
    let s = relay_over(&polar, Arc::clone(&store), SeatOptions::default());
    let (r, v) = acquire(&s, &k, "m-new", rig::at(t + 10));
    assert_eq!(
        (r.status, v["reason"].as_str()),
        (409, Some("seats_full")),
        "{v}"
    );
    let (r, v) = heartbeat(&s, &k, "m-old", seat, rig::at(t + 20));
    assert_eq!(r.status, 200, "{v}");
    let written = store.get(&pool_id).expect("read").expect("the pool");
    assert_eq!(
        (written.kind, written.status),
        (Some(EntryKind::SeatPool), 0),
        "written with its kind at its next step (its status kept for an older relay)"
    );
}

#[test]
fn the_seat_options_are_checked() {
    let polar = rig::emulator();
    let config = rig::config(polar.url(), "k");
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)));
    let bad = SeatOptions {
        seconds: 5,
        ..SeatOptions::default()
    };
    assert!(relay.with_seats(bad).is_err());
}

#[test]
fn without_a_store_there_are_no_seats() {
    let polar = rig::emulator();
    let k = key(&polar, "NOSTORE", 2);
    let config = rig::config(polar.url(), "k");
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)));
    let (r, _) = call(
        &relay,
        "acquire",
        &seat_body(&k, "m", None, None),
        rig::at(rig::now()),
    );
    assert_eq!(r.status, 404);
}

/// The Workers relay's way: a paged store the host loads before the core reads it (what a
/// seat request touches: its key's verdict and its pool), the journal saved to the host's
/// storage after each request, the seat lease signed outside the relay (WebCrypto's stand-in:
/// ed25519-compact with the key's secret), and a restart between requests (a new
/// `PagedBackend` over the same storage): the seats are kept.
#[test]
fn on_the_workers_path_a_seat_is_signed_elsewhere_and_outlives_a_restart() {
    use ct_codecs::Decoder;
    use polar_license::Transport;
    use polar_license_relay::flow::{ExchangeOptions, Given, Need};
    use polar_license_relay::store::PagedBackend;
    use polar_license_relay::{RelayConfig, Signer};

    let polar = rig::emulator();
    let k = key(&polar, "WORKERS", 1);
    let signing = SigningKey::generate(Some("ext")).expect("a key");
    let text = signing.to_file_text();
    let b64 = text.trim().split_once("=k4.secret.").expect("a key line").1;
    let raw = ct_codecs::Base64UrlSafeNoPadding::decode_to_vec(b64, None).expect("base64url");
    let secret = ed25519_compact::SecretKey::from_slice(&raw).expect("64 bytes");
    let relay_on = |b: &Arc<PagedBackend>| {
        let mut config = RelayConfig::with_signer(
            polar_license::proto::Server::Custom(polar.url()),
            polar_license::AccessToken::new(polar_license_emulator::DEMO_TOKEN),
            Signer::External {
                kid: "ext".into(),
                public_key: signing.public_paserk(),
            },
        );
        config.limits = rig::unlimited();
        config.store = rig::store(
            Arc::clone(b) as Arc<dyn Backend>,
            StoreOptions::default(),
            None,
        );
        rig::relay(config, rig::upstream(Duration::from_secs(5)))
    };
    let polar_http = rig::upstream(Duration::from_secs(5));
    let mut host = rig::host::Host::default();
    let mut signed = 0;
    let mut answer = |host: &mut rig::host::Host,
                      b: &PagedBackend,
                      relay: &Relay,
                      op: &str,
                      body: String,
                      when: i64,
                      id: u8|
     -> (RelayResponse, Value) {
        // A seat route by its name, any other by its path.
        let path = if op.starts_with('/') {
            op.to_string()
        } else {
            format!("{SEATS_PREFIX}{op}")
        };
        let req = rig::request(&path, &[], &body);
        // The paged store is loaded by its host (`Backend::host_loads`): the exchange asks.
        let mut drive = rig::Drive::with(relay, req, rig::at(when), ExchangeOptions::default());
        drive.entropy = Some([id; 16]);
        let r = drive.run_with(|x, need| match need {
            Need::Load(load) => {
                if let Some(wants) = &load.store {
                    host.fill(b, wants);
                }
                x.give(Given::Loaded);
            }
            Need::Send { request, .. } => x.give(Given::Upstream(polar_http.send(&request))),
            Need::Sign(bytes) => {
                signed += 1;
                x.give(Given::Signature(secret.sign(&bytes, None).to_vec()));
            }
            other => x.as_host(other),
        });
        host.save(b);
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r, v)
    };
    let t = rig::now();
    let b = Arc::new(host.start(16));
    let relay = relay_on(&b);
    let body = seat_body(&k, "m-a", None, None);
    let (r, v) = answer(&mut host, &b, &relay, "acquire", body, t, 1);
    assert_eq!(r.status, 200, "{v}");
    let key = Key::new(k.clone());
    let expect = SeatExpect {
        organization_id: DEMO_ORGANIZATION_ID,
        key: &key,
        machine: "m-a",
    };
    let token = r
        .header(SEAT_HEADER)
        .expect("a seat lease signed elsewhere");
    let seat = verify_seat(token, &signing.relay_keys(), &expect, t).expect("it verifies");
    drop(relay);

    // Restarted: the pool is read back from the host's storage.
    let b = Arc::new(host.start(16));
    let relay = relay_on(&b);
    let body = seat_body(&k, "m-b", None, None);
    let (r, v) = answer(&mut host, &b, &relay, "acquire", body, t + 5, 2);
    assert_eq!((r.status, &v["reason"]), (409, &json!("seats_full")), "{v}");
    let body = seat_body(&k, "m-a", Some(&seat.seat), None);
    let (r, v) = answer(&mut host, &b, &relay, "heartbeat", body, t + 6, 3);
    assert_eq!(r.status, 200, "{v}");
    drop(relay);

    let b = Arc::new(host.start(16));
    let relay = relay_on(&b);
    let body = seat_body(&k, "m-a", Some(&seat.seat), None);
    let (_, v) = answer(&mut host, &b, &relay, "release", body, t + 7, 4);
    assert_eq!(v["released"], true);
    let b = Arc::new(host.start(16));
    let relay = relay_on(&b);
    let body = seat_body(&k, "m-b", None, None);
    let (r, _) = answer(&mut host, &b, &relay, "acquire", body, t + 8, 5);
    assert_eq!(r.status, 200);

    // The key's ordinary activations through the relay are counted in its pool here too
    // (the pool read with the activation, and with the deactivation's key entries), and an
    // activation is refused while seats held fill what was sold.
    let k2 = rig::add_key(&polar, "SEATS-WORKERS-ACTS-4A5B6C".into(), Some(2));
    const ACTIVATE: &str = "/v1/customer-portal/license-keys/activate";
    const DEACTIVATE: &str = "/v1/customer-portal/license-keys/deactivate";
    let activation = |label: &str| {
        json!({"key": k2, "organization_id": DEMO_ORGANIZATION_ID, "label": label}).to_string()
    };
    let (r, v) = answer(
        &mut host,
        &b,
        &relay,
        "acquire",
        seat_body(&k2, "m-a", None, None),
        t + 10,
        6,
    );
    assert_eq!((r.status, v["size"].as_u64()), (200, Some(2)), "{v}");
    let first = v["seat"].as_str().expect("seat").to_string();
    let (r, v) = answer(
        &mut host,
        &b,
        &relay,
        ACTIVATE,
        activation("laptop"),
        t + 11,
        7,
    );
    assert_eq!(r.status, 200, "{v}");
    let activation_id = v["id"].as_str().expect("an activation id").to_string();
    let b = Arc::new(host.start(16));
    let relay = relay_on(&b);
    let (r, v) = answer(
        &mut host,
        &b,
        &relay,
        "acquire",
        seat_body(&k2, "m-b", None, None),
        t + 12,
        8,
    );
    assert_eq!(
        (r.status, v["reason"].as_str(), v["size"].as_u64()),
        (409, Some("seats_full"), Some(1)),
        "2 sold, 1 activated, 1 seat held, after a restart: {v}"
    );
    let (r, v) = answer(
        &mut host,
        &b,
        &relay,
        ACTIVATE,
        activation("desktop"),
        t + 13,
        9,
    );
    assert_eq!(
        (r.status, v["detail"].as_str()),
        (403, Some("License key activation limit already reached")),
        "{v}"
    );
    let body =
        json!({"key": k2, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": activation_id});
    let (r, _) = answer(
        &mut host,
        &b,
        &relay,
        DEACTIVATE,
        body.to_string(),
        t + 14,
        10,
    );
    assert_eq!(r.status, 204);
    let (r, v) = answer(
        &mut host,
        &b,
        &relay,
        "acquire",
        seat_body(&k2, "m-b", None, None),
        t + 15,
        11,
    );
    assert_eq!((r.status, v["size"].as_u64()), (200, Some(2)), "{v}");
    let (_, v) = answer(
        &mut host,
        &b,
        &relay,
        "release",
        seat_body(&k2, "m-a", Some(&first), None),
        t + 16,
        12,
    );
    assert_eq!(v["released"], true);
    assert_eq!(
        signed, 6,
        "each seat given or extended signed outside the relay (3 of the first key, 2 of the second; the activation's lease)"
    );
}

/// A seat request is a request of the relay's like any other: its client's per-IP limit is
/// taken before anything is read or asked (a flood of seat requests from one address costs
/// no store read and no call to Polar), and another address is served meanwhile.
#[test]
fn seat_requests_take_their_clients_per_ip_limit() {
    let polar = rig::emulator();
    let k = key(&polar, "FLOOD", 50);
    let signer = SigningKey::generate(Some("seats")).expect("a key");
    let mut config = rig::config_with(polar.url(), polar_license_emulator::DEMO_TOKEN, signer);
    config.limits = rig::limits(
        polar_license_relay::Rate::new(1, 2),
        polar_license_relay::Rate::new(0, 0),
    );
    config.store = rig::store(rig::memory(1_000), StoreOptions::default(), None);
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)));
    polar.reset_request_count();
    let t = rig::at(rig::now());
    let from = |ip: &str, machine: &str| {
        let mut req = rig::request(
            &format!("{SEATS_PREFIX}acquire"),
            &[],
            &seat_body(&k, machine, None, None),
        );
        req.client_ip = ip.into();
        relay.handle(&req, t)
    };
    let statuses: Vec<u16> = (0..10)
        .map(|i| from("192.0.2.1", &format!("m-{i}")).status)
        .collect();
    assert_eq!(statuses[..2], [200, 200], "{statuses:?}");
    assert!(statuses[2..].iter().all(|&s| s == 429), "{statuses:?}");
    assert_eq!(
        from("198.51.100.7", "m-other").status,
        200,
        "another client served"
    );
    assert_eq!(polar.request_count(), 1, "the flood asked Polar nothing");
}

/// A flood of acquisitions on a full key (issue #62): each refusal counts against the key's
/// per-key limit, so past its burst the flood meets `429` (`rate_limited`) with the wait, its
/// pool not read; the holder's heartbeat is answered meanwhile, Polar is asked once, and once
/// the wait has passed the key's next acquisition is answered from its pool again. Before,
/// every refusal was a `409` at the flood's rate, counted by no limit.
#[test]
fn a_flood_of_acquisitions_on_a_full_key_meets_the_per_key_limit() {
    let polar = rig::emulator();
    let k = key(&polar, "FULLFLOOD", 1);
    let signer = SigningKey::generate(Some("seats")).expect("a key");
    let copy = SigningKey::from_file_text(&signer.to_file_text()).expect("the key");
    let mut config = rig::config_with(polar.url(), polar_license_emulator::DEMO_TOKEN, copy);
    config.limits = rig::limits(
        polar_license_relay::Rate::new(0, 0),
        polar_license_relay::Rate::new(1, 3),
    );
    config.store = rig::store(rig::memory(1_000), StoreOptions::default(), None);
    let s = Seats {
        relay: rig::relay(config, rig::upstream(Duration::from_secs(5))),
        signer,
    };
    polar.reset_request_count();
    let t = rig::now();
    let mine = acquired(&s, &k, "m-a", t);
    // The verdict asked of Polar took one token of three; the flood's refusals take the rest.
    let flood: Vec<(u16, Value, Option<String>)> = (0..40)
        .map(|i| {
            let (r, v) = acquire(&s, &k, &format!("m-{i}"), rig::at(t));
            let wait = r.header("retry-after").map(str::to_string);
            (r.status, v, wait)
        })
        .collect();
    let statuses: Vec<u16> = flood.iter().map(|f| f.0).collect();
    assert_eq!(statuses[..2], [409, 409], "{statuses:?}");
    assert!(statuses[2..].iter().all(|&s| s == 429), "{statuses:?}");
    for (_, v, wait) in &flood[2..] {
        assert_eq!(v["reason"], "rate_limited", "{v}");
        assert_eq!(
            wait.as_deref(),
            Some("1"),
            "the wait for the key's next token"
        );
    }
    let (r, v) = heartbeat(&s, &k, "m-a", &mine, rig::at(t));
    assert_eq!(r.status, 200, "the holder is still answered: {v}");
    assert_eq!(polar.request_count(), 1, "the flood asked Polar nothing");
    // A second on, one token is back: the next acquisition is the pool's answer again.
    let (r, v) = acquire(&s, &k, "m-late", rig::at(t + 1));
    assert_eq!((r.status, &v["reason"]), (409, &json!("seats_full")), "{v}");
    let (r, _) = acquire(&s, &k, "m-late", rig::at(t + 1));
    assert_eq!(r.status, 429, "and the flood meets the limit again");
}

/// A churn loop (acquire, release, again) meets the seller's limit: `429`, Polar's reading of
/// a rate limit (`rate_limited`) with the wait until the oldest acquisition leaves the window.
#[test]
fn a_churn_loop_meets_its_limit_with_the_wait() {
    let polar = rig::emulator();
    let k = key(&polar, "CHURN", 1);
    let options = SeatOptions {
        churn: 3,
        churn_seconds: 600,
        ..SeatOptions::default()
    };
    let s = relay_over(&polar, rig::memory(1_000), options);
    let t = rig::now();
    for i in 0..3 {
        let at = t + i * 10;
        let seat = acquired(&s, &k, "m-a", at);
        assert_eq!(
            release(&s, &k, "m-a", &seat, rig::at(at + 1)).1["released"],
            true
        );
    }
    let (r, v) = acquire(&s, &k, "m-a", rig::at(t + 30));
    assert_eq!(
        (r.status, &v["reason"]),
        (429, &json!("rate_limited")),
        "{v}"
    );
    assert_eq!(r.header("retry-after"), Some("570"));
    let client = polar_license::proto::HttpResponse {
        status: r.status,
        headers: r.headers.clone(),
        body: r.body.clone(),
    };
    let read = polar_license::seat::read_seat_answer(polar_license::seat::SeatOp::Acquire, &client);
    assert_eq!(
        read.expect_err("no seat").reason(),
        polar_license::Reason::RateLimited
    );
    acquired(&s, &k, "m-a", t + 601);
}

/// The store's byte cap (issue #62) never evicts a key's seat pool: a flood of other keys'
/// answers past the cap leaves every held seat held (its heartbeat answered) and a full pool
/// full. Before, a pool was stored as an answer of status 0 with no grant, so the cap evicted
/// it among the first, and the flood took the seat from its holder at the next heartbeat.
#[test]
fn a_flood_past_the_stores_byte_cap_keeps_every_held_seat() {
    const CAP: u64 = 256 * 1024;
    let polar = rig::budgeted_emulator(100_000);
    let k = key(&polar, "CAPPED", 1);
    let signer = SigningKey::generate(Some("seats")).expect("a key");
    let copy = SigningKey::from_file_text(&signer.to_file_text()).expect("the key");
    let mut config = rig::config_with(polar.url(), polar_license_emulator::DEMO_TOKEN, copy);
    config.limits = rig::unlimited();
    // 256 KiB: the cap is never below one largest entry (about 120 KiB).
    let options = rig::flood_options(100_000, CAP);
    let backend = Arc::new(polar_license_relay::store::MemoryBackend::new(1_000_000));
    let stored: Arc<dyn Backend> = backend.clone();
    config.store = rig::store(stored, options, None);
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)))
        .with_seats(SeatOptions::default())
        .expect("seat options");
    let s = Seats { relay, signer };
    let t = rig::now();
    let seat = acquired(&s, &k, "m-a", t);
    // Unknown keys' denials, each stored: well past the cap (about 400 bytes each, counted).
    for i in 0..800 {
        let body =
            json!({"key": format!("FLOOD-{i:04}-4A5B6C"), "organization_id": DEMO_ORGANIZATION_ID});
        let req = rig::request(
            "/v1/customer-portal/license-keys/validate",
            &[],
            &body.to_string(),
        );
        let r = s.relay.handle(&req, rig::at(t + 1));
        assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    }
    let bytes = backend.stored_bytes().expect("counted");
    assert!(
        bytes <= CAP && bytes > CAP / 2,
        "the cap holds and the store is full: {bytes} bytes"
    );
    let (r, v) = heartbeat(&s, &k, "m-a", &seat, rig::at(t + 2));
    assert_eq!(r.status, 200, "the held seat is still held: {v}");
    let (r, v) = acquire(&s, &k, "m-b", rig::at(t + 3));
    assert_eq!(
        (r.status, v["reason"].as_str()),
        (409, Some("seats_full")),
        "{v}"
    );
}

/// `route` of Polar's customer portal (`activate`, `deactivate`) asked of the relay with `body`.
fn portal(s: &Seats, route: &str, body: &Value, now: Now) -> RelayResponse {
    let path = format!("/v1/customer-portal/license-keys/{route}");
    s.relay
        .handle(&rig::request(&path, &[], &body.to_string()), now)
}

/// The body of an ordinary activation of `k` (`label` its machine).
fn activation(k: &str, label: &str) -> Value {
    json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID, "label": label})
}

/// An ordinary activation of `k` through the relay (`label` its machine): the activation id.
fn activate(s: &Seats, k: &str, label: &str, now: Now) -> String {
    let r = portal(s, "activate", &activation(k, label), now);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).expect("JSON");
    v["id"].as_str().expect("an activation id").to_string()
}

/// The deactivation of `k`'s activation `id` through the relay.
fn deactivate(s: &Seats, k: &str, id: &str, at: i64) -> RelayResponse {
    let body = json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": id});
    portal(s, "deactivate", &body, rig::at(at))
}

/// The activation churn limit of the tests below: 3 within 600 s.
fn activation_churn() -> SeatOptions {
    SeatOptions {
        activation_churn: 3,
        activation_churn_seconds: 600,
        ..SeatOptions::default()
    }
}

/// `r` is the churn limit's refusal with the wait left of its 600 s window (its fourth
/// request 30 s after its first), and Polar was not asked for it.
fn churn_refused(polar: &Emulator, r: &RelayResponse) {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    assert_eq!(
        (r.status, &v["reason"]),
        (429, &json!("rate_limited")),
        "{v}"
    );
    assert_eq!(r.header("retry-after"), Some("570"));
    assert_eq!(
        polar.request_count(),
        0,
        "Polar is not asked past the limit"
    );
}

/// Seats in use plus the key's ordinary activations never exceed what the seller sold: a
/// 3-activation key with 2 ordinary activations (made through the relay) has 1 seat, and a
/// deactivation gives one back.
#[test]
fn a_keys_ordinary_activations_are_taken_from_its_seats() {
    let (_polar, k, s) = seats_of("ACTS", 3);
    let t = rig::now();
    // The pool made by a first seat, given back.
    let seat = acquired(&s, &k, "m-a", t);
    release(&s, &k, "m-a", &seat, rig::at(t + 1));
    let first = activate(&s, &k, "laptop", rig::at(t + 2));
    activate(&s, &k, "desktop", rig::at(t + 3));
    let (r, v) = acquire(&s, &k, "m-a", rig::at(t + 4));
    assert_eq!((r.status, v["size"].as_u64()), (200, Some(1)), "{v}");
    let (r, v) = acquire(&s, &k, "m-b", rig::at(t + 5));
    assert_eq!(
        (r.status, v["reason"].as_str(), v["size"].as_u64()),
        (409, Some("seats_full"), Some(1)),
        "3 sold, 2 activated, 1 seat held: {v}"
    );
    let body = json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": first});
    let req = rig::request(
        "/v1/customer-portal/license-keys/deactivate",
        &[],
        &body.to_string(),
    );
    assert_eq!(s.relay.handle(&req, rig::at(t + 6)).status, 204);
    let (r, v) = acquire(&s, &k, "m-b", rig::at(t + 7));
    assert_eq!((r.status, v["size"].as_u64()), (200, Some(2)), "{v}");
}

/// An ordinary activation through the relay while seats are held: refused, Polar not asked,
/// when seats in use plus the key's activations already reach its `limit_activations`, in
/// Polar's own words for an activation past the limit (every client reads it as
/// `activation_limit`); once a seat is released, the activation is Polar's again. A seller's
/// number for the benefit is the seats' own: no activation is refused for it.
#[test]
fn an_activation_is_refused_while_seats_held_fill_what_was_sold() {
    let (polar, k, s) = seats_of("ROOM", 3);
    let t = rig::now();
    let a = acquired(&s, &k, "m-a", t);
    acquired(&s, &k, "m-b", t + 1);
    // 2 seats and 0 activations of 3: one activation fits.
    activate(&s, &k, "laptop", rig::at(t + 2));
    // 2 seats and 1 activation of 3: the next is refused before Polar is asked.
    polar.reset_request_count();
    let body = json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID, "label": "desktop"});
    let req = rig::request(
        "/v1/customer-portal/license-keys/activate",
        &[],
        &body.to_string(),
    );
    let r = s.relay.handle(&req, rig::at(t + 3));
    let v: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(
        (r.status, &v["error"], &v["detail"], &v["reason"]),
        (
            403,
            &json!("NotPermitted"),
            &json!("License key activation limit already reached"),
            &json!("activation_limit")
        ),
        "{v}"
    );
    assert_eq!(
        (
            v["seats_in_use"].as_u64(),
            v["activations"].as_u64(),
            v["limit_activations"].as_u64()
        ),
        (Some(2), Some(1), Some(3)),
        "{v}"
    );
    assert_eq!(polar.request_count(), 0, "Polar is not asked");
    // A seat released: the activation is Polar's to make again.
    release(&s, &k, "m-a", &a, rig::at(t + 4));
    activate(&s, &k, "desktop", rig::at(t + 5));

    // A benefit with the seller's own number of seats: activations are not counted in them,
    // nor refused for them.
    let (_polar, k, s) = benefit_seats("OWN", 2, None);
    acquired(&s, &k, "m-a", t);
    activate(&s, &k, "laptop", rig::at(t + 1));
}

/// Activations made at Polar directly (not through the relay) are read by id with the key's
/// first seat (the reconcile's `GET /v1/license-keys/{id}`, in the relay's background): the
/// pool shrinks to what is left of the limit.
#[test]
fn activations_made_elsewhere_are_read_by_id_with_the_first_seat() {
    let polar = rig::emulator();
    let k = key(&polar, "READ", 3);
    let a = rig::agent(Duration::from_secs(10));
    for label in ["laptop", "desktop"] {
        let body = json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID, "label": label});
        let r = rig::post_with(
            &a,
            &format!("{}/v1/customer-portal/license-keys/activate", polar.url()),
            &body.to_string(),
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let signer = SigningKey::generate(Some("seats")).expect("a key");
    let mut config = rig::config_with(polar.url(), polar_license_emulator::DEMO_TOKEN, signer);
    config.limits = rig::unlimited();
    config.store = rig::store(rig::memory(1_000), StoreOptions::default(), None);
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)))
        .with_seats(SeatOptions::default())
        .expect("seat options");
    let running = rig::listen(relay, polar_license_relay::ServeOptions::default());
    let url = format!("{}{SEATS_PREFIX}acquire", running.url());
    let first = rig::post_with(&a, &url, &seat_body(&k, "m-a", None, None), &[]);
    assert_eq!(first.status, 200, "{}", first.body);
    let shrunk = rig::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let r = rig::post_with(&a, &url, &seat_body(&k, "m-b", None, None), &[]);
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        r.status == 409 && v["size"] == 1
    });
    assert!(shrunk, "the pool is 3 less 2 activations read by id");
}

/// Borrowing (offline use): a floating seat lent for the days asked, at most the seller's;
/// its lease says `borrowed` and licenses offline until its end and not after; the pool
/// counts it until then (no heartbeat needed), or until it is given back early. A relay lends
/// nothing by default.
#[test]
fn a_borrowed_seat_licenses_offline_until_its_end_and_frees_by_itself() {
    let polar = rig::emulator();
    let k = key(&polar, "BORROW", 1);
    let s = relay_over(
        &polar,
        rig::memory(1_000),
        SeatOptions {
            borrow_days: 7,
            ..SeatOptions::default()
        },
    );
    let borrow = |machine: &str, days: u64, kind: Option<&str>, at: i64| {
        let mut body: Value = serde_json::from_str(&seat_body(&k, machine, None, kind)).unwrap();
        body["borrow_days"] = json!(days);
        call(&s.relay, "acquire", &body.to_string(), rig::at(at))
    };
    let t = rig::now();
    let week = 7 * 86_400;
    for (days, kind) in [(8, None), (0, None), (7, Some("ci"))] {
        let (r, v) = borrow("m-a", days, kind, t);
        assert_eq!(r.status, 422, "{days} days, {kind:?}: {v}");
    }
    let answer = borrow("m-a", 7, None, t);
    assert_eq!(answer.1["borrowed"], true, "{}", answer.1);
    assert_eq!(answer.1["expires_in"], week);
    let seat = held(&s, &k, "m-a", &answer, t);
    let token = answer.0.header(SEAT_HEADER).expect("a lease");
    let key = Key::new(&k);
    let expect = SeatExpect {
        organization_id: DEMO_ORGANIZATION_ID,
        key: &key,
        machine: "m-a",
    };
    let keys = s.signer.relay_keys();
    let claims = verify_seat(token, &keys, &expect, t + week - 1).expect("offline, to its end");
    assert!(claims.borrowed);
    assert_eq!(claims.expires_at, t + week);
    assert_eq!(
        verify_seat(token, &keys, &expect, t + week),
        Err(polar_license::lease::NoLease::Expired)
    );
    // Held for the week with no heartbeat; a heartbeat does not shorten it.
    let (r, v) = heartbeat(&s, &k, "m-a", &seat, rig::at(t + 10));
    assert_eq!(
        (r.status, &v["expires_at"]),
        (200, &json!(rig::rfc3339(t + week)))
    );
    let (r, v) = acquire(&s, &k, "m-b", rig::at(t + week - 1));
    assert_eq!(
        (r.status, v["reason"].as_str()),
        (409, Some("seats_full")),
        "{v}"
    );
    // Its end passed: free by itself.
    let other = acquired(&s, &k, "m-b", t + week);
    release(&s, &k, "m-b", &other, rig::at(t + week + 1));
    // A relay lends nothing by default.
    let plain = relay_over(&polar, rig::memory(1_000), SeatOptions::default());
    let mut body: Value = serde_json::from_str(&seat_body(&k, "m-c", None, None)).unwrap();
    body["borrow_days"] = json!(1);
    let (r, v) = call(&plain.relay, "acquire", &body.to_string(), rig::at(t));
    assert_eq!(r.status, 422, "{v}");
}

/// Issue #76, finding 3: a borrowed seat's lease licenses offline until its end whatever the
/// relay is told, so its release frees nothing early: it answers `released: false` with
/// `counted_until` (the lease's end), and the pool counts the seat until then. Ten machines
/// borrowing and giving back at once in turn on a one-seat key: one offline licence, not ten.
#[test]
fn a_released_borrow_still_counts_until_its_end() {
    let polar = rig::emulator();
    let k = key(&polar, "LENT", 1);
    let s = relay_over(
        &polar,
        rig::memory(1_000),
        SeatOptions {
            borrow_days: 30,
            ..SeatOptions::default()
        },
    );
    let borrow = |machine: &str, at: i64| {
        let mut body: Value = serde_json::from_str(&seat_body(&k, machine, None, None)).unwrap();
        body["borrow_days"] = json!(30);
        call(&s.relay, "acquire", &body.to_string(), rig::at(at))
    };
    let t = rig::now();
    let end = t + 30 * 86_400;
    let seat = held(&s, &k, "m-0", &borrow("m-0", t), t);
    let (r, v) = release(&s, &k, "m-0", &seat, rig::at(t + 1));
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(v["released"], false, "{v}");
    assert_eq!(v["borrowed"], true, "{v}");
    assert_eq!(v["counted_until"], json!(rig::rfc3339(end)), "{v}");
    let mut lent = 1;
    for i in 1..10 {
        let machine = format!("m-{i}");
        let at = t + 2 + i;
        let (r, v) = borrow(&machine, at);
        if r.status == 200 {
            lent += 1;
            let seat = v["seat"].as_str().unwrap_or_default().to_string();
            release(&s, &k, &machine, &seat, rig::at(at));
        } else {
            assert_eq!(v["reason"], "seats_full", "{v}");
            assert_eq!(v["frees_at"], json!(rig::rfc3339(end)), "{v}");
        }
        let (r, v) = acquire(&s, &k, &machine, rig::at(at));
        assert_eq!((r.status, v["reason"].as_str()), (409, Some("seats_full")));
    }
    assert_eq!(lent, 1, "one seat, one offline licence");
    // Its end passed: free by itself.
    acquired(&s, &k, "m-9", end);
}

/// Issue #76, finding 3: every heartbeat reads the pool again against the key's size now:
/// activations made at Polar directly (not through the relay) are learned by id (the
/// reconcile's read, asked by a heartbeat at most once per freshness window), and the newest
/// seats past what is left of the limit are shed (their next heartbeat `seat_gone`, as a
/// culled seat's), so seats and activations never stay above what was sold. Within one
/// window the heartbeats ask Polar nothing.
#[test]
fn heartbeats_past_a_shrunk_key_lose_the_newest_seats() {
    use polar_license_relay::flow::background::Background;
    let polar = rig::emulator();
    let k = key(&polar, "SHRINK", 2);
    let s = relay_over(&polar, rig::memory(1_000), SeatOptions::default());
    let fresh = i64::try_from(StoreOptions::default().fresh_for).unwrap();
    let mut background = Background::new(None);
    let t = rig::now();
    let a = acquired(&s, &k, "m-a", t);
    let b = acquired(&s, &k, "m-b", t + 1);
    // The first seat's read by id: no activation yet.
    rig::background_run(&s.relay, &mut background, rig::at(t + 1));
    let direct = rig::agent(Duration::from_secs(10));
    let activate_at_polar = |label: &str| {
        let body = json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID, "label": label});
        let r = rig::post_with(
            &direct,
            &format!("{}/v1/customer-portal/license-keys/activate", polar.url()),
            &body.to_string(),
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    activate_at_polar("laptop");
    // Within the window (before the verdict's own refresh, in its last quarter): held, and
    // no call to Polar for them.
    polar.reset_request_count();
    for at in [t + 10, t + 100, t + fresh * 3 / 4 - 1] {
        for (m, seat) in [("m-a", &a), ("m-b", &b)] {
            let (r, v) = heartbeat(&s, &k, m, seat, rig::at(at));
            assert_eq!(r.status, 200, "{v}");
        }
        rig::background_run(&s.relay, &mut background, rig::at(at));
    }
    assert_eq!(polar.request_count(), 0, "one read per key per window");
    // Past it: a heartbeat asks the key's activations again; the next loses the newest seat.
    let mut shed = |at: i64| {
        heartbeat(&s, &k, "m-a", &a, rig::at(at));
        rig::background_run(&s.relay, &mut background, rig::at(at));
        let b_answer = heartbeat(&s, &k, "m-b", &b, rig::at(at + 1));
        let a_answer = heartbeat(&s, &k, "m-a", &a, rig::at(at + 1));
        (b_answer, a_answer)
    };
    let ((rb, vb), (ra, va)) = shed(t + fresh + 1);
    assert_eq!((rb.status, vb["reason"].as_str()), (404, Some("seat_gone")));
    assert_eq!(ra.status, 200, "the oldest seat stays: {va}");
    assert_eq!(va["size"], 1, "2 sold, 1 activation: {va}");
    assert_eq!(va["in_use"], 1, "{va}");
    // A second activation at Polar: the last seat goes within the next window.
    activate_at_polar("desktop");
    let (_, (ra, va)) = shed(t + 2 * fresh + 2);
    assert_eq!((ra.status, va["reason"].as_str()), (404, Some("seat_gone")));
    let (r, v) = acquire(&s, &k, "m-c", rig::at(t + 2 * fresh + 4));
    assert_eq!((r.status, v["size"].as_u64()), (409, Some(0)), "{v}");
}

/// A deactivate-activate loop meets the churn limit on a key's activations and deactivations:
/// `429`, `rate_limited`, with the wait until the oldest leaves the window (no call to Polar
/// past it); another key is not held back; the window passed, the key is let through again.
#[test]
fn an_activation_churn_loop_meets_its_limit_with_the_wait() {
    let polar = rig::emulator();
    let k = key(&polar, "ACHURN", 5);
    let other = key(&polar, "ACHURN2", 5);
    let s = relay_over(&polar, rig::memory(1_000), activation_churn());
    let t = rig::now();
    let first = activate(&s, &k, "m", rig::at(t));
    assert_eq!(deactivate(&s, &k, &first, t + 10).status, 204);
    activate(&s, &k, "m", rig::at(t + 20));
    polar.reset_request_count();
    let r = portal(&s, "activate", &activation(&k, "m"), rig::at(t + 30));
    churn_refused(&polar, &r);
    let client = polar_license::proto::HttpResponse {
        status: r.status,
        headers: r.headers.clone(),
        body: r.body.clone(),
    };
    let read = polar_license::proto::parse_activate(&client);
    assert_eq!(
        read.expect_err("no activation").reason(),
        polar_license::Reason::RateLimited
    );
    assert_eq!(
        deactivate(&s, &k, &first, t + 31).status,
        429,
        "deactivations count with them"
    );
    activate(&s, &other, "m", rig::at(t + 32));
    activate(&s, &k, "m", rig::at(t + 601));
}

/// `/healthz` and `/metrics` report the seats in use (no key named): held, borrowed, the
/// pools with one held, the most in one pool; a seat's end passed or a release, and it no
/// longer counts.
#[test]
fn health_and_metrics_report_the_seats_in_use() {
    let polar = rig::emulator();
    let a = key(&polar, "HEALTH-A", 3);
    let b = key(&polar, "HEALTH-B", 3);
    let s = relay_over(
        &polar,
        rig::memory(1_000),
        SeatOptions {
            borrow_days: 2,
            ..SeatOptions::default()
        },
    );
    let t = rig::now();
    let health = |at: i64| -> Value {
        let r = s.relay.handle(&rig::get("/healthz"), rig::at(at));
        serde_json::from_slice::<Value>(&r.body).expect("JSON")["seats"].clone()
    };
    assert_eq!(health(t)["in_use"], 0);
    let a1 = acquired(&s, &a, "m1", t);
    acquired(&s, &a, "m2", t);
    let mut body: Value = serde_json::from_str(&seat_body(&b, "m3", None, None)).unwrap();
    body["borrow_days"] = json!(2);
    let (r, v) = call(&s.relay, "acquire", &body.to_string(), rig::at(t + 1));
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(
        health(t + 2),
        json!({"in_use": 3, "pools_in_use": 2, "most_in_a_pool": 2, "borrowed": 1, "since_start": true})
    );
    // The metrics route as the Workers host serves it (a path and its bearer).
    let mut get = rig::get("/metrics");
    get.headers
        .push(("authorization".into(), "Bearer metrics-token".into()));
    let options = polar_license_relay::flow::ExchangeOptions {
        metrics: Some(("/metrics".into(), "metrics-token".into())),
        ..Default::default()
    };
    let mut drive = rig::Drive::with(&s.relay, get, rig::at(t + 2), options);
    let metrics = drive.expect_answer();
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        "polar_license_relay_seats_in_use{kind=\"held\"} 2",
        "polar_license_relay_seats_in_use{kind=\"borrowed\"} 1",
        "polar_license_relay_seat_pools_in_use 2",
        "polar_license_relay_seats_in_use_most_in_a_pool 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    release(&s, &a, "m1", &a1, rig::at(t + 3));
    // m2's life (5 minutes) ends: only the borrowed seat is left.
    assert_eq!(
        health(t + 301),
        json!({"in_use": 1, "pools_in_use": 1, "most_in_a_pool": 1, "borrowed": 1, "since_start": true})
    );
}

/// Issue #67 item 5, the Rust face: a `SeatGuard` (`BlockingClient::hold_seat`) holds its seat
/// over HTTP (`relay serve`'s host on loopback, the real clock): a second machine gets
/// `seats_full` while it is held; dropping the guard gives the seat back at once (the other
/// machine's next acquisition gets it, long before the seat's 5-minute life would end); an
/// explicit release says how it went.
#[test]
fn a_seat_guard_holds_its_seat_and_gives_it_back_when_dropped() {
    use polar_license::seat::{SeatAnswer, SeatsFull};
    use polar_license::seat_hold::HoldState;
    use polar_license::seat_hold::HoldTerms;
    let polar = rig::emulator();
    let k = key(&polar, "guard", 1);
    let signer = SigningKey::generate(Some("guard")).expect("a key");
    let terms = HoldTerms::new(signer.relay_keys(), DEMO_ORGANIZATION_ID).expect("terms");
    let served = rig::listen_stored(
        rig::config_with(polar.url(), polar_license_emulator::DEMO_TOKEN, signer),
        "whsec_guard",
    );
    let client = rig::client(&served.url(), Duration::from_secs(10));
    let guard = client
        .hold_seat(&terms, Key::new(k.clone()), "machine-A", false)
        .expect("an answer")
        .expect("the seat");
    assert_eq!(guard.state(), HoldState::Held);
    assert_eq!((guard.seat().in_use, guard.seat().size), (1, 1));
    assert!(!format!("{guard:?}").contains(&k), "the key redacted");
    match client.hold_seat(&terms, Key::new(k.clone()), "machine-B", false) {
        Ok(Err(SeatAnswer::Full(SeatsFull { in_use, .. }))) => assert_eq!(in_use, 1),
        other => panic!("machine-B while A holds the one seat: {other:?}"),
    }
    drop(guard);
    let b = client
        .hold_seat(&terms, Key::new(k.clone()), "machine-B", false)
        .expect("an answer")
        .expect("the seat A's guard gave back");
    assert!(matches!(
        client.hold_seat(&terms, Key::new(k.clone()), "machine-A", false),
        Ok(Err(SeatAnswer::Full(_)))
    ));
    b.release().expect("released");
    let again = client
        .hold_seat(&terms, Key::new(k), "machine-A", false)
        .expect("an answer");
    assert!(again.is_ok(), "free again after the release: {again:?}");
}

/// The activation churn is a stored fact (issue #67 item 4): a deactivate-activate loop spaced
/// around restarts of the relay on its store (natively a redb file; on Workers a Durable
/// Object leaving memory) still meets the limit, with the wait from the first of the window.
/// Activations Polar refuses (a guessed key) store nothing: only a key Polar activated or
/// deactivated gets a record, never evicted but bounded by the keys sold.
#[test]
fn an_activation_churn_loop_around_restarts_still_meets_its_limit() {
    let polar = rig::emulator();
    let k = key(&polar, "ACHURN-RESTART", 5);
    let options = activation_churn();
    let dir = ScratchDir::new("achurn-restart");
    let path = dir.path().join("churn.redb");
    let t = rig::now();
    // Each step on a relay of its own over the same file: a restart between each.
    let restarted = || relay_over(&polar, redb(&path), options.clone());
    let first = activate(&restarted(), &k, "m", rig::at(t));
    assert_eq!(deactivate(&restarted(), &k, &first, t + 10).status, 204);
    activate(&restarted(), &k, "m", rig::at(t + 20));
    let s = restarted();
    polar.reset_request_count();
    let r = portal(&s, "activate", &activation(&k, "m"), rig::at(t + 30));
    churn_refused(&polar, &r);
    drop(s);
    assert_eq!(deactivate(&restarted(), &k, &first, t + 31).status, 429);
    // The window passed: let through again, after a restart too.
    activate(&restarted(), &k, "m", rig::at(t + 601));

    // Guessed keys (Polar's 404) leave nothing stored: no record per key Polar refused.
    let backend = redb(&path);
    let before = backend.len().expect("a count");
    let s = relay_over(&polar, Arc::clone(&backend), options);
    for n in 0..20 {
        let guess = activation(&format!("GUESS-{n}-4A5B6C"), "m");
        assert_eq!(portal(&s, "activate", &guess, rig::at(t + 700)).status, 404);
    }
    assert_eq!(backend.len().expect("a count"), before);
}

/// The same loop on the Workers relay's way (a paged store its host loads per request, the
/// journal saved after each; `rig::host` as `relay-handler.js` keeps a Durable Object's
/// storage): a new `PagedBackend` over the same storage before each step, as when the Durable
/// Object left memory between them; activate, deactivate (a key with no answer stored: its
/// pool read alone, `wants.rs`), activate, and the next within the window is still refused
/// with the wait, Polar not asked.
#[test]
fn on_the_workers_path_the_activation_churn_outlives_the_durable_object() {
    use polar_license_relay::flow::ExchangeOptions;

    let polar = rig::emulator();
    let k = key(&polar, "ACHURN-WORKERS", 5);
    let options = activation_churn();
    let polar_http = rig::upstream(Duration::from_secs(5));
    let mut host = rig::host::Host::default();
    let t = rig::now();
    let activation = activation(&k, "m");
    let mut after_a_restart = |route: &str, body: &Value, at: i64| -> (RelayResponse, Value) {
        let b = Arc::new(host.start(16));
        let s = relay_over(&polar, Arc::clone(&b) as Arc<dyn Backend>, options.clone());
        let path = format!("/v1/customer-portal/license-keys/{route}");
        let req = rig::request(&path, &[], &body.to_string());
        let drive = rig::Drive::with(&s.relay, req, rig::at(at), ExchangeOptions::default());
        let r = drive.run_paged(&mut host, &b, &polar_http);
        host.save(&b);
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r, v)
    };
    let (r, v) = after_a_restart("activate", &activation, t);
    assert_eq!(r.status, 200, "{v}");
    let deactivation =
        json!({"key": k, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": v["id"]});
    let (r, v) = after_a_restart("deactivate", &deactivation, t + 10);
    assert_eq!(r.status, 204, "{v}");
    let (r, v) = after_a_restart("activate", &activation, t + 20);
    assert_eq!(r.status, 200, "{v}");
    polar.reset_request_count();
    let (r, _) = after_a_restart("activate", &activation, t + 30);
    churn_refused(&polar, &r);
    let (r, v) = after_a_restart("activate", &activation, t + 601);
    assert_eq!(r.status, 200, "{v}");
}

/// An acquisition on a stored verdict past its refresh point is answered from the store at
/// once while the verdict's call goes on (stale-while-revalidate, as every host drives it).
/// The call's answer is then only kept: it takes no second seat, which no machine would hold
/// (its answer is thrown away) and none could release.
#[test]
fn an_acquisition_answered_while_its_call_goes_on_takes_one_seat() {
    use polar_license::Transport;
    use polar_license_relay::flow::{ExchangeOptions, Given, Need};
    let polar = rig::emulator();
    let k = key(&polar, "TAIL", 3);
    let mut options = StoreOptions::default();
    options.fresh_for = 4;
    let s = relay_over_with(&polar, rig::memory(1_000), options, SeatOptions::default());
    let t0 = rig::now();
    // The first acquisition asks Polar and keeps the key's verdict.
    acquired(&s, &k, "m-a", t0);
    // Past the verdict's refresh point (3 s of 4): the answer at once, the call after it.
    let req = rig::request(
        &format!("{SEATS_PREFIX}acquire"),
        &[],
        &seat_body(&k, "m-b", None, None),
    );
    let mut early = rig::Drive::with(&s.relay, req, rig::at(t0 + 3), ExchangeOptions::default());
    assert_eq!(early.expect_send().0, Some(0));
    early.give(Given::Patience);
    let answered = early.expect_answer();
    let v: Value = serde_json::from_slice(&answered.body).unwrap_or(Value::Null);
    held(&s, &k, "m-b", &(answered, v), t0 + 3);
    assert!(matches!(early.next(), Need::Call));
    early.entropy = Some([8; 16]);
    let polar_calls = rig::upstream(Duration::from_secs(5));
    early.give(Given::Upstream(polar_calls.send(early.sent())));
    assert!(matches!(early.next(), Need::Done));
    // Two machines hold two of the three seats: the third is free for a third machine.
    let (r, v) = acquire(&s, &k, "m-c", rig::at(t0 + 3));
    assert_eq!(r.status, 200, "{v}");
    let (r, v) = acquire(&s, &k, "m-d", rig::at(t0 + 3));
    assert_eq!(r.status, 409, "{v}");
    assert_eq!(v["in_use"], 3, "{v}");
}
