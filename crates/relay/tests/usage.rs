//! Usage through the relay (issue #68 item 3, docs/entitlements.md): `POST /v1/usage/record`
//! against the native relay in front of the emulator over loopback. A report is proven by its
//! key's verdict, kept in the store, ingested to Polar in the background
//! (`POST /v1/events/ingest`); a retried report counts once, a report while Polar answers 503
//! is ingested once after, a balance is consumed to zero with and without the seller's
//! refusal rule, a flood on one key is bounded and other keys are served, and the buffer
//! outlives a restart of a durable store.

mod rig;

use std::sync::Arc;
use std::time::{Duration, Instant};

use polar_license::lease::SigningKey;
use polar_license_emulator::{Emulator, Options, Seed, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_relay::store::{Backend, RedbBackend, StoreOptions};
use polar_license_relay::{Running, ServeOptions, MAX_PENDING_PER_KEY, USAGE_ROUTE};
use polar_license_testkit::ids::{CREDIT, CUSTOMER, LICENSE, SUBSCRIPTION};
use polar_license_testkit::{
    consumed_units, meter, meter_credit, poll, subscribed_key, ScratchDir,
};
use serde_json::{json, Value};

const TOKENS: &str = "4b1d2c3e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
const OTHER_CUSTOMER: &str = "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f";
const KEY: &str = "USE-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";
const OTHER: &str = "USE-9F8E7D6C-5B4A-4392-8180-7F6E5D4C3B2A";
/// The event the meter counts (a sum of `units`).
const EVENT: &str = "tokens_used";

/// Ten credited units of a meter summing `units`, on two customers' keys.
fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.meters.push(meter(
        TOKENS,
        "Tokens",
        EVENT,
        Some(json!({"func": "sum", "property": "units"})),
    ));
    seed.benefits.push(meter_credit(CREDIT, TOKENS, 10));
    for (key, customer, sub) in [
        (KEY, CUSTOMER, SUBSCRIPTION),
        (
            OTHER,
            OTHER_CUSTOMER,
            "8d9e0f1a-2b3c-4d4e-9f5a-6b7c8d9e0f1a",
        ),
    ] {
        seed.license_keys
            .push(subscribed_key(key, LICENSE, customer, sub, &[CREDIT]));
    }
    seed
}

/// The emulator, which goes down (its port refuses connections) and comes back on the same
/// port with what it counted (its state file).
struct Polar {
    emulator: Option<Emulator>,
    port: u16,
    state: std::path::PathBuf,
    _dir: ScratchDir,
}

impl Polar {
    fn start() -> Polar {
        let dir = ScratchDir::new("relay-usage-polar");
        let state = dir.path().join("polar.json");
        let emulator = Emulator::start(
            seed(),
            Options {
                state: Some(state.clone()),
                ..Options::default()
            },
        )
        .expect("starts");
        Polar {
            port: emulator.port(),
            emulator: Some(emulator),
            state,
            _dir: dir,
        }
    }

    fn down(&mut self) {
        if let Some(e) = self.emulator.take() {
            e.stop();
        }
    }

    fn up(&mut self) {
        let options = Options {
            port: self.port,
            state: Some(self.state.clone()),
            ..Options::default()
        };
        self.emulator = Some(Emulator::start(seed(), options).expect("restarts"));
    }
}

impl std::ops::Deref for Polar {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        self.emulator.as_ref().expect("Polar is up")
    }
}

/// The relay over `backend` in front of `polar` with usage on (and entitlements, for the
/// balance), the seller's rule as `refuse`.
fn relay_on(polar: &Emulator, backend: Arc<dyn Backend>, refuse: bool) -> Running {
    let signer = SigningKey::generate(Some("usage-test")).expect("a key");
    let mut config = rig::config_with(polar.url(), DEMO_TOKEN, signer);
    config.limits = rig::unlimited();
    let mut store = StoreOptions::default();
    store.entitlements = true;
    store.usage = true;
    store.refuse_at_zero_credits = refuse;
    store.reconcile_every = 0;
    store.roster = false;
    config.store = rig::store(backend, store, None);
    let upstream = rig::upstream(Duration::from_secs(5));
    rig::listen(rig::relay(config, upstream), ServeOptions::default())
}

fn relay(polar: &Emulator, refuse: bool) -> Running {
    relay_on(polar, rig::memory(1_000), refuse)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// A report of `units` with idempotency id `id` for `key`: the status and the body read.
fn report(relay: &Running, key: &str, units: f64, id: &str) -> (u16, Value) {
    let body = json!({
        "key": key,
        "organization_id": DEMO_ORGANIZATION_ID,
        "meter": EVENT,
        "units": units,
        "id": id,
    });
    let a = rig::post_with(
        &agent(),
        &format!("{}{USAGE_ROUTE}", relay.url()),
        &body.to_string(),
        &[],
    );
    let v = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    (a.status, v)
}

/// The units Polar's meter shows consumed by `customer` (the organization's read).
fn consumed(polar: &Emulator, customer: &str) -> f64 {
    consumed_units(polar.port(), customer, TOKENS)
}

/// Waits (10 s at most) until Polar's meter shows `want` consumed by `customer`.
fn until_consumed(polar: &Emulator, customer: &str, want: f64) {
    poll(
        &format!("Polar's meter showing {want} consumed by {customer}"),
        Duration::from_secs(10),
        Duration::from_millis(25),
        || consumed(polar, customer),
        |got| (got - want).abs() < 1e-6,
    );
}

/// Reports until the relay's answer knows the balance (its first read of the customer's
/// meters), each report of `units` with a new id; the reports made and the last answer.
fn until_balance_known(relay: &Running, key: &str, units: f64, tag: &str) -> (usize, Value) {
    let start = Instant::now();
    for n in 1.. {
        let (status, v) = report(relay, key, units, &format!("{tag}-{n}"));
        assert_eq!(status, 200, "{v}");
        if !v["balance"].is_null() {
            return (n, v);
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no balance: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    unreachable!()
}

/// The emulator, a relay in front of it (refusing usage at zero when `refuse`), and the units
/// `KEY` reported (one at a time, ids tagged `tag`) until the relay's answer knew the balance.
fn balance_known(refuse: bool, tag: &str) -> (Emulator, Running, f64) {
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let relay = relay(&polar, refuse);
    let (n, _) = until_balance_known(&relay, KEY, 1.0, tag);
    (polar, relay, n as f64)
}

/// Reports of `units` of `KEY` through `relay` (ids tagged `tag`) from `used` until at least
/// `to` are used, each answered 200 (`why`) with the balance after it: the units used then.
fn use_until(relay: &Running, mut used: f64, to: f64, units: f64, tag: &str, why: &str) -> f64 {
    while used < to {
        let (status, v) = report(relay, KEY, units, &format!("{tag}-{used}"));
        assert_eq!(status, 200, "{why}: {v}");
        used += units;
        assert_eq!(v["balance"].as_f64(), Some(10.0 - used), "{v}");
    }
    used
}

#[test]
fn a_retried_report_counts_once_and_the_answer_carries_the_balance_after_it() {
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let relay = relay(&polar, false);
    let (status, first) = report(&relay, KEY, 3.0, "retry-1");
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["recorded"], true);
    assert_eq!(first["duplicate"], false);
    until_consumed(&polar, CUSTOMER, 3.0);
    // Sent again (the client did not read the first answer): a duplicate, not kept again.
    let (status, again) = report(&relay, KEY, 3.0, "retry-1");
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true, "{again}");
    // A second report; once the relay knows the balance, it is Polar's less what it holds.
    let (n, known) = until_balance_known(&relay, KEY, 1.0, "more");
    let total = 3.0 + n as f64;
    until_consumed(&polar, CUSTOMER, total);
    assert_eq!(known["balance"].as_f64(), Some(10.0 - total), "{known}");
    // Polar counted each report once: the duplicate never reached its meter.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(consumed(&polar, CUSTOMER), total);
}

#[test]
fn a_report_while_polar_is_down_is_kept_and_ingested_once_after() {
    let mut polar = Polar::start();
    let relay = relay(&polar, false);
    // The key's verdict is stored (fresh for 300 s): later reports need no call.
    assert_eq!(report(&relay, KEY, 1.0, "up-1").0, 200);
    until_consumed(&polar, CUSTOMER, 1.0);
    polar.down();
    let (status, v) = report(&relay, KEY, 2.0, "down-1");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["recorded"], true);
    // Polar unreachable: the batch is tried, kept, tried again after a backoff.
    std::thread::sleep(Duration::from_millis(1_200));
    polar.up();
    assert_eq!(
        consumed(&polar, CUSTOMER),
        1.0,
        "nothing reached Polar while it was down"
    );
    until_consumed(&polar, CUSTOMER, 3.0);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(consumed(&polar, CUSTOMER), 3.0, "ingested once");
}

#[test]
fn the_buffer_outlives_a_restart_of_a_durable_store() {
    let mut polar = Polar::start();
    let dir = ScratchDir::new("relay-usage-restart");
    let path = dir.path().join("store.redb");
    {
        let backend: Arc<dyn Backend> = Arc::new(RedbBackend::open(&path, 100).expect("store"));
        let relay = relay_on(&polar, backend, false);
        assert_eq!(report(&relay, KEY, 1.0, "first-1").0, 200);
        until_consumed(&polar, CUSTOMER, 1.0);
        polar.down();
        assert_eq!(report(&relay, KEY, 4.0, "kept-1").0, 200);
        relay.stop();
    }
    polar.up();
    assert_eq!(consumed(&polar, CUSTOMER), 1.0);
    let backend: Arc<dyn Backend> = Arc::new(RedbBackend::open(&path, 100).expect("reopened"));
    let _relay = relay_on(&polar, backend, false);
    until_consumed(&polar, CUSTOMER, 5.0);
}

#[test]
fn a_balance_is_consumed_to_zero_and_past_it_without_the_rule() {
    let (polar, relay, used) = balance_known(false, "free");
    let used = use_until(
        &relay,
        used,
        14.0,
        2.0,
        "past",
        "Polar never refuses usage, nor does the relay",
    );
    until_consumed(&polar, CUSTOMER, used);
}

#[test]
fn the_sellers_rule_refuses_usage_at_zero_with_credits_exhausted() {
    let (polar, relay, used) = balance_known(true, "rule");
    // Down to zero (a report crossing zero is kept: the usage happened).
    let used = use_until(&relay, used, 10.0, 3.0, "use", "kept above zero");
    // At or below zero: refused, typed, and not kept.
    let (status, v) = report(&relay, KEY, 1.0, "over-1");
    assert_eq!(status, 402, "{v}");
    assert_eq!(v["reason"], "credits_exhausted", "{v}");
    assert_eq!(v["balance"].as_f64(), Some(10.0 - used), "{v}");
    until_consumed(&polar, CUSTOMER, used);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        consumed(&polar, CUSTOMER),
        used,
        "the refused report was not ingested"
    );
    // Another customer's credits are their own.
    let (_, other) = until_balance_known(&relay, OTHER, 1.0, "other");
    assert!(
        other["balance"].as_f64().is_some_and(|b| b > 0.0),
        "{other}"
    );
}

#[test]
fn a_flood_on_one_key_is_bounded_and_other_keys_are_served() {
    let mut polar = Polar::start();
    let relay = relay(&polar, false);
    for key in [KEY, OTHER] {
        assert_eq!(report(&relay, key, 1.0, "warm-1").0, 200);
    }
    until_consumed(&polar, CUSTOMER, 1.0);
    until_consumed(&polar, OTHER_CUSTOMER, 1.0);
    // Polar down: nothing is ingested, the key's buffer fills to its bound.
    polar.down();
    let mut kept = 0;
    let mut refused = 0;
    for i in 0..MAX_PENDING_PER_KEY + 20 {
        let (status, v) = report(&relay, KEY, 0.01, &format!("flood-{i}"));
        match status {
            200 => kept += 1,
            429 => {
                assert_eq!(v["error"], "UsageBacklog", "{v}");
                refused += 1;
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!((kept, refused), (MAX_PENDING_PER_KEY, 20));
    // Another key is served meanwhile.
    let (status, v) = report(&relay, OTHER, 1.0, "served-1");
    assert_eq!(status, 200, "{v}");
    polar.up();
    until_consumed(&polar, OTHER_CUSTOMER, 2.0);
    until_consumed(&polar, CUSTOMER, 1.0 + MAX_PENDING_PER_KEY as f64 * 0.01);
}

#[test]
fn a_wrong_key_or_a_bad_body_keeps_nothing() {
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let relay = relay(&polar, false);
    let (status, v) = report(&relay, "USE-NOT-A-KEY", 1.0, "nope-1");
    assert_eq!(status, 404, "Polar's answer passed on: {v}");
    let a = rig::post_with(
        &agent(),
        &format!("{}{USAGE_ROUTE}", relay.url()),
        r#"{"key":"K","organization_id":"o","meter":"m","units":-1,"id":"x"}"#,
        &[],
    );
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(report(&relay, KEY, 1.0, "real-1").0, 200);
    until_consumed(&polar, CUSTOMER, 1.0);
}
