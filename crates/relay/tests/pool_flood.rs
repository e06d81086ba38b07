//! Issue #76 finding 1: one key filled the relay's store for good. A seat pool was named by the
//! organization id as the request spelled it (upper case, braces, no hyphens, `urn:uuid:`: all
//! one organization to Polar), a refused step wrote a pool too, pools were never deleted and
//! never left room for anything else. Here, through the relay's one door in front of the
//! emulator over loopback (the rig's blocking host; the Workers host's paged store driven as
//! its handler drives it): every spelling is one pool and one per-key bucket, a refused step
//! writes nothing, an empty pool goes, a flood of pools keeps the store within its byte cap
//! with another customer's grant still stored (memory, redb, and redb after a restart), seats
//! switched off answer 404 and keep nothing, and a relay for one organization refuses another's
//! seat, usage and device requests before anything is written.

mod rig;

use std::sync::Arc;
use std::time::Duration;

use polar_license::lease::SigningKey;
use polar_license_emulator::{Emulator, DEMO_ORGANIZATION_ID as ORG, DEMO_TOKEN};
use polar_license_relay::store::{Backend, MemoryBackend, RedbBackend};
use polar_license_relay::Rate;
use polar_license_relay::{
    Now, RelayResponse, SeatOptions, DEVICES_ROUTE, SEATS_PREFIX, SOURCE_HEADER, USAGE_ROUTE,
};
use polar_license_testkit::ScratchDir;
use serde_json::{json, Value};

/// The store's byte cap in the floods: 128 KiB (the least a store keeps is one entry of the
/// largest size, 120 KiB and its overhead; seat and usage state: a quarter of it).
const CAP: u64 = 128 * 1024;

/// Five spellings Polar reads as the demo organization.
fn spellings() -> Vec<String> {
    vec![
        ORG.to_string(),
        ORG.to_ascii_uppercase(),
        format!("{{{ORG}}}"),
        ORG.replace('-', ""),
        format!("urn:uuid:{ORG}"),
    ]
}

/// The `n`th of many spellings of the demo organization (the testkit's, about a million).
fn spelling(n: usize) -> String {
    polar_license_testkit::ids::spelling(ORG, n as u64)
}

fn relay_with(
    polar: &Emulator,
    backend: Arc<dyn Backend>,
    seats: SeatOptions,
    tune: impl FnOnce(&mut polar_license_relay::RelayConfig),
) -> rig::Relayed {
    let signer = SigningKey::generate(Some("flood")).expect("a key");
    let mut config = rig::config_with(polar.url(), DEMO_TOKEN, signer);
    config.limits = rig::unlimited();
    let mut options = rig::flood_options(100_000, CAP);
    options.usage = true;
    options.reconcile_every = 0;
    config.store = rig::store(backend, options, None);
    tune(&mut config);
    rig::relay(config, rig::upstream(Duration::from_secs(5)))
        .with_seats(seats)
        .expect("seat options")
}

fn relay_on(polar: &Emulator, backend: Arc<dyn Backend>) -> rig::Relayed {
    relay_with(polar, backend, SeatOptions::default(), |_| {})
}

fn call(relay: &rig::Relayed, path: &str, body: &Value, now: Now) -> (RelayResponse, Value) {
    let req = rig::request(path, &[], &body.to_string());
    let r = relay.handle(&req, now);
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r, v)
}

fn seat(
    relay: &rig::Relayed,
    op: &str,
    key: &str,
    org: &str,
    machine: &str,
    seat: Option<&str>,
    now: Now,
) -> (RelayResponse, Value) {
    let mut body = json!({"key": key, "organization_id": org, "machine": machine});
    if let Some(s) = seat {
        body["seat"] = json!(s);
    }
    call(relay, &format!("{SEATS_PREFIX}{op}"), &body, now)
}

fn validate(relay: &rig::Relayed, key: &str, now: Now) -> RelayResponse {
    let body = json!({"key": key, "organization_id": ORG});
    call(
        relay,
        "/v1/customer-portal/license-keys/validate",
        &body,
        now,
    )
    .0
}

fn source(r: &RelayResponse) -> Option<&str> {
    r.header(SOURCE_HEADER)
}

fn len(b: &dyn Backend) -> usize {
    b.len().expect("the store answers")
}

/// Every spelling of one organization is one pool (the seats in use count up in it, the store
/// grows by one value) and one per-key bucket (refusals of a full pool meet the key's rate
/// whatever the spelling).
#[test]
fn spellings_of_one_organization_make_one_pool_and_one_bucket() {
    let polar = rig::budgeted_emulator(100_000);
    let k = rig::add_key(&polar, "FLOOD-SPELL-4A5B6C".into(), Some(50));
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new(1_000_000));
    let relay = relay_on(&polar, Arc::clone(&backend));
    let t = rig::now();
    let mut stored = None;
    for (i, org) in spellings().iter().enumerate() {
        let (r, v) = seat(
            &relay,
            "acquire",
            &k,
            org,
            &format!("m-{i}"),
            None,
            rig::at(t),
        );
        assert_eq!(r.status, 200, "{org}: {v}");
        assert_eq!(v["in_use"], json!(i + 1), "{org}: one pool: {v}");
        let n = len(backend.as_ref());
        assert!(
            stored.is_none_or(|s| s == n),
            "{org}: {n} values, before {stored:?}"
        );
        stored = Some(n);
    }
    // A seat given under one spelling is heartbeaten and released under another.
    let (r, v) = seat(&relay, "acquire", &k, &spelling(7), "m-x", None, rig::at(t));
    assert_eq!(r.status, 200, "{v}");
    let id = v["seat"].as_str().expect("a seat").to_ascii_uppercase();
    let (r, v) = seat(
        &relay,
        "heartbeat",
        &k,
        &spelling(9),
        "m-x",
        Some(&id),
        rig::at(t + 1),
    );
    assert_eq!(r.status, 200, "{v}");
    let (r, v) = seat(
        &relay,
        "release",
        &k,
        &spelling(10),
        "m-x",
        Some(&id),
        rig::at(t + 2),
    );
    assert_eq!((r.status, &v["released"]), (200, &json!(true)), "{v}");

    // One bucket: a full key's refusals are counted in one per-key bucket, whatever the
    // spelling (burst 3: the key's first verdict, then two refusals, then 429).
    let polar = rig::budgeted_emulator(100_000);
    let k = rig::add_key(&polar, "FLOOD-BUCKET-4A5B6C".into(), Some(1));
    let relay = relay_with(&polar, rig::memory(1_000), SeatOptions::default(), |c| {
        c.limits = rig::limits(Rate::new(1_000, 1_000), Rate::new(1, 3));
    });
    let (r, v) = seat(&relay, "acquire", &k, ORG, "m-0", None, rig::at(t));
    assert_eq!(r.status, 200, "{v}");
    let statuses: Vec<u16> = spellings()[1..]
        .iter()
        .enumerate()
        .map(|(i, org)| {
            seat(
                &relay,
                "acquire",
                &k,
                org,
                &format!("n-{i}"),
                None,
                rig::at(t),
            )
            .0
            .status
        })
        .collect();
    assert_eq!(
        statuses,
        [409, 409, 429, 429],
        "one bucket for every spelling"
    );
}

/// A refused acquisition, a heartbeat or a release of no seat, under any spelling, writes
/// nothing; a pool left empty is deleted, but not while a churn stamp is inside its window
/// (deleting it would reset the churn limit).
#[test]
fn refused_seat_requests_write_nothing_and_an_empty_pool_goes() {
    let polar = rig::budgeted_emulator(100_000);
    let none = rig::add_key(&polar, "FLOOD-NONE-4A5B6C".into(), Some(0));
    let k = rig::add_key(&polar, "FLOOD-ONE-4A5B6C".into(), Some(1));
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new(1_000_000));
    let quiet = SeatOptions {
        churn: 0,
        ..SeatOptions::default()
    };
    let relay = relay_with(&polar, Arc::clone(&backend), quiet, |_| {});
    let t = rig::now();
    // The verdicts stored first: what follows may only add pools.
    assert_eq!(validate(&relay, &none, rig::at(t)).status, 200);
    assert_eq!(validate(&relay, &k, rig::at(t)).status, 200);
    let before = len(backend.as_ref());
    for i in 0..200 {
        let org = spelling(i);
        let (r, v) = seat(&relay, "acquire", &none, &org, "m", None, rig::at(t));
        assert_eq!(r.status, 409, "{i}: {v}");
        let ghost = format!("6b0c1f4e-2a3d-4e5f-8a9b-{i:012}");
        let (r, v) = seat(&relay, "release", &k, &org, "m", Some(&ghost), rig::at(t));
        assert_eq!((r.status, &v["released"]), (200, &json!(false)), "{i}: {v}");
        let (r, v) = seat(&relay, "heartbeat", &k, &org, "m", Some(&ghost), rig::at(t));
        assert_eq!(r.status, 404, "{i}: {v}");
    }
    assert_eq!(len(backend.as_ref()), before, "refused steps wrote nothing");
    // A pool made by a grant, then emptied: deleted.
    let (r, v) = seat(&relay, "acquire", &k, ORG, "m", None, rig::at(t));
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(len(backend.as_ref()), before + 1);
    let id = v["seat"].as_str().expect("a seat").to_string();
    let (r, _) = seat(&relay, "release", &k, ORG, "m", Some(&id), rig::at(t + 1));
    assert_eq!(r.status, 200);
    assert_eq!(len(backend.as_ref()), before, "an empty pool is deleted");

    // With the churn limit on (2 an hour), the pool's stamps keep it: released, it stays, and
    // the third acquisition within the hour still meets the limit.
    let churned = SeatOptions {
        churn: 2,
        churn_seconds: 3_600,
        ..SeatOptions::default()
    };
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new(1_000_000));
    let relay = relay_with(&polar, Arc::clone(&backend), churned, |_| {});
    for round in 0..2 {
        let (r, v) = seat(&relay, "acquire", &k, ORG, "m", None, rig::at(t + round));
        assert_eq!(r.status, 200, "{round}: {v}");
        let id = v["seat"].as_str().expect("a seat").to_string();
        let (r, _) = seat(
            &relay,
            "release",
            &k,
            ORG,
            "m",
            Some(&id),
            rig::at(t + round),
        );
        assert_eq!(r.status, 200);
    }
    let (r, v) = seat(
        &relay,
        "acquire",
        &k,
        &spelling(3),
        "m",
        None,
        rig::at(t + 10),
    );
    assert_eq!(
        r.status, 429,
        "the churn limit holds after the pool emptied: {v}"
    );
}

/// The flood: one granted key's acquisitions under 400 spellings, then 80 granted keys' pools,
/// against a 128 KiB store holding another customer's grant. The store stays within its cap
/// throughout, the other grant is still answered from the store after the spellings' flood,
/// pools past the seats' share are refused (503 `SeatsUnavailable`) while the pools held go on
/// working; on redb the same holds after a restart.
fn pool_flood(backend: impl Fn() -> Arc<dyn Backend>, restart: bool) {
    let polar = rig::budgeted_emulator(100_000);
    let other = rig::add_key(&polar, "FLOOD-OTHER-4A5B6C".into(), Some(3));
    let attacker = rig::add_key(&polar, "FLOOD-ATTACK-4A5B6C".into(), Some(1));
    let store = backend();
    let relay = relay_on(&polar, Arc::clone(&store));
    let t = rig::now();
    let under = |b: &dyn Backend, what: &str| {
        let bytes = b.stored_bytes().expect("counted");
        assert!(bytes <= CAP, "{what}: {bytes} bytes, past {CAP}");
    };
    assert_eq!(validate(&relay, &other, rig::at(t)).status, 200);
    let (r, v) = seat(&relay, "acquire", &attacker, ORG, "m-0", None, rig::at(t));
    assert_eq!(r.status, 200, "{v}");
    for i in 0..400 {
        let (r, v) = seat(
            &relay,
            "acquire",
            &attacker,
            &spelling(i),
            "m-i",
            None,
            rig::at(t),
        );
        assert_eq!(r.status, 409, "{i}: {v}");
        if i % 50 == 0 {
            under(store.as_ref(), "the spellings' flood");
        }
    }
    under(store.as_ref(), "after the spellings' flood");
    let r = validate(&relay, &other, rig::at(t + 1));
    assert_eq!(
        (r.status, source(&r)),
        (200, Some("store")),
        "the other grant is kept"
    );

    // Many granted keys, a pool each: past the seats' share, new pools are refused.
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..80 {
        let k = rig::add_key(&polar, format!("FLOOD-KEY-{i:03}-4A5B6C"), Some(2));
        let (r, v) = seat(&relay, "acquire", &k, ORG, "m", None, rig::at(t + 2));
        match r.status {
            200 => held.push((k, v["seat"].as_str().expect("a seat").to_string())),
            503 => {
                assert_eq!(v["error"], "SeatsUnavailable", "{v}");
                assert!(r.header("retry-after").is_some());
                refused += 1;
            }
            other => panic!("{i}: {other} {v}"),
        }
        under(store.as_ref(), "the keys' flood");
    }
    assert!(
        refused > 0 && held.len() > 5,
        "{} held, {refused} refused",
        held.len()
    );
    drop(relay);
    let store = if restart {
        drop(store);
        backend()
    } else {
        store
    };
    let relay = relay_on(&polar, Arc::clone(&store));
    // The pools held go on working; a new one is still refused.
    for (k, id) in &held {
        let (r, v) = seat(&relay, "heartbeat", k, ORG, "m", Some(id), rig::at(t + 60));
        assert_eq!(r.status, 200, "{v}");
    }
    let k = rig::add_key(&polar, "FLOOD-LATE-4A5B6C".into(), Some(2));
    let (r, v) = seat(&relay, "acquire", &k, ORG, "m", None, rig::at(t + 61));
    assert_eq!(
        (r.status, &v["error"]),
        (503, &json!("SeatsUnavailable")),
        "{v}"
    );
    under(store.as_ref(), "after the flood");
    // Released, a pool goes, and its room serves the next key.
    let (k0, id0) = &held[0];
    let (r, _) = seat(&relay, "release", k0, ORG, "m", Some(id0), rig::at(t + 62));
    assert_eq!(r.status, 200);
}

#[test]
fn a_pool_flood_keeps_the_memory_store_within_its_cap_with_another_grant_stored() {
    let store: Arc<dyn Backend> = Arc::new(MemoryBackend::new(1_000_000));
    pool_flood(|| Arc::clone(&store), false);
}

#[test]
fn a_pool_flood_keeps_the_redb_store_within_its_cap_after_a_restart_too() {
    let dir = ScratchDir::new("pool-flood-redb");
    let path = dir.path().join("flood.redb");
    pool_flood(
        || Arc::new(RedbBackend::open(&path, 1_000_000).expect("a store")),
        true,
    );
}

/// Seats switched off: every seat route 404, nothing written.
#[test]
fn seats_switched_off_answer_404_and_keep_nothing() {
    let polar = rig::budgeted_emulator(100_000);
    let k = rig::add_key(&polar, "FLOOD-OFF-4A5B6C".into(), Some(5));
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new(1_000_000));
    let off = SeatOptions {
        enabled: false,
        ..SeatOptions::default()
    };
    let relay = relay_with(&polar, Arc::clone(&backend), off, |_| {});
    let t = rig::now();
    let ghost = "6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b";
    for (op, s) in [
        ("acquire", None),
        ("heartbeat", Some(ghost)),
        ("release", Some(ghost)),
    ] {
        let (r, v) = seat(&relay, op, &k, ORG, "m", s, rig::at(t));
        assert_eq!(r.status, 404, "{op}: {v}");
    }
    assert_eq!(len(backend.as_ref()), 0, "nothing kept");
    // The license routes still answer.
    assert_eq!(validate(&relay, &k, rig::at(t)).status, 200);
}

/// A relay started for one organization refuses another's seat, usage and device requests
/// before anything is written, and serves its own under any spelling (a release too).
#[test]
fn a_relay_for_one_organization_refuses_another_before_any_write() {
    let polar = rig::budgeted_emulator(100_000);
    let k = rig::add_key(&polar, "FLOOD-ORG-4A5B6C".into(), Some(5));
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new(1_000_000));
    let relay = relay_with(&polar, Arc::clone(&backend), SeatOptions::default(), |c| {
        c.organization_id = Some(ORG.to_ascii_uppercase());
    });
    let t = rig::now();
    let other = "9b1d3c5e-7f2a-4b6c-8d0e-1f3a5b7c9d2e";
    let ghost = "6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b";
    for (op, s) in [
        ("acquire", None),
        ("heartbeat", Some(ghost)),
        ("release", Some(ghost)),
    ] {
        let (r, v) = seat(&relay, op, &k, other, "m", s, rig::at(t));
        assert_eq!(r.status, 404, "{op}: {v}");
    }
    let usage = json!({"key": k, "organization_id": other, "meter": "m", "units": 1, "id": "u-1"});
    let (r, v) = call(&relay, USAGE_ROUTE, &usage, rig::at(t));
    assert_eq!(r.status, 404, "usage: {v}");
    let devices = json!({"key": k, "organization_id": other});
    let (r, v) = call(&relay, DEVICES_ROUTE, &devices, rig::at(t));
    assert_eq!(r.status, 404, "devices: {v}");
    assert_eq!(
        len(backend.as_ref()),
        0,
        "nothing written for another organization"
    );
    // Its own, spelled otherwise than its configuration: served, released.
    let (r, v) = seat(&relay, "acquire", &k, &spelling(5), "m", None, rig::at(t));
    assert_eq!(r.status, 200, "{v}");
    let id = v["seat"].as_str().expect("a seat").to_string();
    let (r, v) = seat(
        &relay,
        "release",
        &k,
        &spelling(6),
        "m",
        Some(&id),
        rig::at(t + 1),
    );
    assert_eq!((r.status, &v["released"]), (200, &json!(true)), "{v}");
}

/// The Workers host's store (`PagedBackend` over a Durable Object's storage, its handler's
/// loads and saves as `rig::host` does them), restarted between requests: every spelling is
/// one pool, held state counted in the storage (`n:held`), an emptied pool deleted from it.
#[test]
fn on_the_paged_store_spellings_make_one_pool_and_an_empty_one_is_deleted() {
    use polar_license_relay::flow::ExchangeOptions;
    use polar_license_relay::Relay;

    let polar = rig::budgeted_emulator(100_000);
    let k = rig::add_key(&polar, "FLOOD-PAGED-4A5B6C".into(), Some(50));
    let polar_http = rig::upstream(Duration::from_secs(5));
    let mut host = rig::host::Host::default();
    let quiet = SeatOptions {
        churn: 0,
        ..SeatOptions::default()
    };
    let answer = |host: &mut rig::host::Host, body: Value, op: &str, when: i64| {
        let b = Arc::new(host.start(16));
        let relay: Relay = relay_with(
            &polar,
            Arc::clone(&b) as Arc<dyn Backend>,
            quiet.clone(),
            |_| {},
        )
        .into();
        let req = rig::request(&format!("{SEATS_PREFIX}{op}"), &[], &body.to_string());
        let mut drive = rig::Drive::with(&relay, req, rig::at(when), ExchangeOptions::default());
        drive.entropy = Some([when as u8; 16]);
        let r = drive.run_paged(host, &b, &polar_http);
        host.save(&b);
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    };
    let entries = |host: &rig::host::Host| host.kv.keys().filter(|k| k.starts_with("e:")).count();
    let t = rig::now();
    let mut seats = Vec::new();
    let mut stored = None;
    for (i, org) in spellings().iter().enumerate() {
        let body = json!({"key": k, "organization_id": org, "machine": format!("m-{i}")});
        let (status, v) = answer(&mut host, body, "acquire", t + i as i64);
        assert_eq!(status, 200, "{org}: {v}");
        assert_eq!(v["in_use"], json!(i + 1), "{org}: one pool: {v}");
        seats.push(v["seat"].as_str().expect("a seat").to_string());
        let n = entries(&host);
        assert!(
            stored.is_none_or(|s| s == n),
            "{org}: {n} entries, before {stored:?}"
        );
        stored = Some(n);
    }
    assert!(host.kv.get("n:held").and_then(Value::as_u64).unwrap_or(0) > 0);
    for (i, id) in seats.iter().enumerate() {
        let body = json!({"key": k, "organization_id": spelling(i), "machine": format!("m-{i}"),
                          "seat": id});
        let (status, v) = answer(&mut host, body, "release", t + 10);
        assert_eq!((status, &v["released"]), (200, &json!(true)), "{v}");
    }
    assert_eq!(
        entries(&host),
        stored.unwrap_or(0) - 1,
        "the empty pool is deleted"
    );
    assert_eq!(host.kv.get("n:held").and_then(Value::as_u64), Some(0));
}

/// A key activated once through the relay (no seat ever asked) gets a record of its activation
/// churn (issue #67 item 4). Such a record holds no seat: it is not the seats' state, whose
/// share of the store it would fill for good (keys sold over the years, each activated once),
/// after which no new key could hold a seat or report usage. Here 60 keys are activated at
/// `t`; two hours on (their churn windows over) a 61st key's seat is given.
#[test]
fn churn_records_of_keys_activated_once_leave_the_seats_share_free() {
    let polar = rig::budgeted_emulator(100_000);
    let store: Arc<dyn Backend> = Arc::new(MemoryBackend::new(100_000));
    let relay = relay_on(&polar, Arc::clone(&store));
    let t = rig::now();
    for i in 0..60 {
        let k = rig::add_key(&polar, format!("CHURN-KEY-{i:03}-4A5B6C"), Some(2));
        let body = json!({"key": k, "organization_id": ORG, "label": "laptop"});
        let (r, v) = call(
            &relay,
            "/v1/customer-portal/license-keys/activate",
            &body,
            rig::at(t),
        );
        assert_eq!(r.status, 200, "{i}: {v}");
        let bytes = store.stored_bytes().expect("counted");
        assert!(bytes <= CAP, "{i}: {bytes} bytes, past {CAP}");
    }
    let k = rig::add_key(&polar, "CHURN-LATE-4A5B6C".into(), Some(2));
    let (r, v) = seat(&relay, "acquire", &k, ORG, "m", None, rig::at(t + 7_200));
    assert_eq!(r.status, 200, "{v}");
}
