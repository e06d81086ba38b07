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
use polar_license_testkit::usage_forger::Answer;
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

/// A relay's usage answer `a` with its balance rewritten to a million (its token, if any,
/// kept): the forger's lie.
fn a_million(a: Answer) -> Answer {
    let mut v = a.json();
    v["balance"] = json!(1_000_000);
    Answer {
        body: v.to_string().into_bytes(),
        ..a
    }
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
    // (Nothing can reach a stopped emulator; what Polar shows right after it is up again is
    // a race with the relay's next try, which may land at once: only "once" is asserted.)
    std::thread::sleep(Duration::from_millis(1_200));
    polar.up();
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

// ---- Issue #76: usage within the budget, signed ---------------------------------------------

/// The relay in front of `polar` with usage and entitlements on, its limits, store and
/// budget as `edit` leaves them (the defaults: the per-IP and per-key limits on), clients
/// told apart by `x-forwarded-for`: the relay, its store, and the relay's public keys.
fn relay_edited(
    polar: &Emulator,
    edit: impl FnOnce(&mut polar_license_relay::RelayConfig, &mut StoreOptions),
) -> (Running, Arc<dyn Backend>, polar_license::lease::RelayKeys) {
    let signer = SigningKey::generate(Some("usage-76")).expect("a key");
    let keys = signer.relay_keys();
    let mut config = rig::config_with(polar.url(), DEMO_TOKEN, signer);
    config.client_ip_header = Some("x-forwarded-for".into());
    let mut store = StoreOptions::default();
    store.entitlements = true;
    store.usage = true;
    store.reconcile_every = 0;
    store.roster = false;
    edit(&mut config, &mut store);
    let backend = rig::memory(1_000);
    config.store = rig::store(Arc::clone(&backend), store, None);
    let upstream = rig::upstream(Duration::from_secs(5));
    let running = rig::listen(rig::relay(config, upstream), ServeOptions::default());
    (running, backend, keys)
}

/// A report's raw `body` posted from `address`: the status and the body read.
fn post_from(relay: &Running, address: &str, body: &str) -> (u16, Value) {
    let a = rig::post_with(
        &agent(),
        &format!("{}{USAGE_ROUTE}", relay.url()),
        body,
        &[("x-forwarded-for", address)],
    );
    (
        a.status,
        serde_json::from_str(&a.body).unwrap_or(Value::Null),
    )
}

/// One key's usage flood from four client addresses (each within the per-IP limit's burst,
/// all together four times it), tiny reports as fast as they go for three seconds, against a
/// budget of 20 calls a minute (16 shared): the key gets its per-key rate and no more, even
/// with its grant stored (issue #76: the stored grant skipped the per-key limit), and the
/// ingestion with the reads it asks take at most half the shared part, so another customer's
/// first validate, and then its device listing, are answered, not 429 (before the fix the
/// flood's batches, each followed by a read of the customer's meters, spent the whole shared
/// part within a second).
#[test]
fn a_usage_flood_from_one_key_over_four_addresses_cannot_starve_another_customers_first_validate() {
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let (relay, _, _) = relay_edited(&polar, |_, store| {
        store.budget = 20;
        store.reserve = 4;
    });
    let started = Instant::now();
    let flood = Duration::from_secs(3);
    let counts: Vec<(u32, u32)> = std::thread::scope(|s| {
        let threads: Vec<_> = (1..=4)
            .map(|a| {
                let relay = &relay;
                s.spawn(move || {
                    let address = format!("198.51.100.{a}");
                    let (mut kept, mut limited) = (0, 0);
                    for n in 0.. {
                        if started.elapsed() >= flood {
                            break;
                        }
                        let body = json!({
                            "key": KEY, "organization_id": DEMO_ORGANIZATION_ID,
                            "meter": EVENT, "units": 0.001, "id": format!("flood-{a}-{n}"),
                        });
                        match post_from(relay, &address, &body.to_string()) {
                            (200, _) => kept += 1,
                            (429, _) => limited += 1,
                            (status, v) => panic!("{status}: {v}"),
                        }
                    }
                    (kept, limited)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a flood thread"))
            .collect()
    });
    let kept: u32 = counts.iter().map(|c| c.0).sum();
    let limited: u32 = counts.iter().map(|c| c.1).sum();
    // The per-key limit (3 a second, bursts of 6) held over the four addresses: at most its
    // burst and three seconds of its rate (and a second's slack).
    let secs = started.elapsed().as_secs_f64().ceil() as u32;
    assert!(
        kept <= 6 + 3 * (secs + 1),
        "{kept} reports of one key kept in {secs} s ({limited} limited)"
    );
    assert!(limited > 0, "the flood was never limited");
    // Another customer's first validate, from an address of its own, while the flood's calls
    // are in the budget's window: Polar's answer, not the budget's 429.
    let other = rig::validate_at(
        &agent(),
        &relay.url(),
        OTHER,
        &[("x-forwarded-for", "203.0.113.9")],
    );
    assert_eq!(other.status, 200, "{}", other.body);
    let listing = rig::post_with(
        &agent(),
        &format!("{}{}", relay.url(), polar_license_relay::DEVICES_ROUTE),
        &json!({"key": OTHER, "organization_id": DEMO_ORGANIZATION_ID}).to_string(),
        &[("x-forwarded-for", "203.0.113.9")],
    );
    assert_eq!(listing.status, 200, "{}", listing.body);
}

/// Nonsense units (below a millionth, 1e-300, zero, negative, and the non-finite numbers JSON
/// can carry: huge exponents) and, with the seller's list set (`usage_events`), an event name
/// off it: each refused 422 `InvalidUsageRequest` with a detail saying what is wrong, and
/// nothing kept (no usage buffer in the store, nothing ingested); a report within the rules
/// still goes through.
#[test]
fn nonsense_units_and_unlisted_events_are_refused_422_and_nothing_is_kept() {
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let (relay, backend, _) = relay_edited(&polar, |config, store| {
        config.limits = rig::unlimited();
        store.usage_events = Some(vec![EVENT.to_string()]);
    });
    let body = |meter: &str, units: &str| {
        format!(
            r#"{{"key":"{KEY}","organization_id":"{DEMO_ORGANIZATION_ID}","meter":"{meter}","units":{units},"id":"n-1"}}"#
        )
    };
    for (meter, units, says) in [
        (EVENT, "1e-300", "units"),
        (EVENT, "0.0000009", "units"),
        (EVENT, "0", "units"),
        (EVENT, "-0", "units"),
        (EVENT, "-1", "units"),
        (EVENT, "1e400", ""),
        (EVENT, "-1e400", ""),
        (EVENT, "1e10", "units"),
        ("api_calls", "1", "meter"),
        ("tokens_used ", "1", "meter"),
    ] {
        let (status, v) = post_from(&relay, "198.51.100.1", &body(meter, units));
        assert_eq!(status, 422, "{meter} {units}: {v}");
        assert_eq!(v["error"], "InvalidUsageRequest", "{meter} {units}: {v}");
        let detail = v["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{meter} {units}: {detail}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        backend.tags_with_prefix("u:").expect("the store's tags"),
        Vec::<String>::new(),
        "no usage buffer was written"
    );
    assert_eq!(consumed(&polar, CUSTOMER), 0.0, "nothing was ingested");
    // The floor itself, and a listed name, are taken.
    let (status, v) = post_from(&relay, "198.51.100.1", &body(EVENT, "0.000001"));
    assert_eq!(status, 200, "{v}");
    until_consumed(&polar, CUSTOMER, 0.000001);
}

/// A client in signed mode (the core's `BlockingClient::send_usage_signed`) in front of a
/// relay that signs its acknowledgements (issue #76): through an honest path the answer is
/// the signed one; a proxy that rewrites the balance changes nothing the client reports (the
/// balance is the signed one); a proxy that turns the seller's refusal at zero credits into
/// `recorded` (so that `--refuse-at-zero-credits` would be void and the report never billed)
/// with the relay's token kept or stripped, a proxy that strips the token of a `recorded`
/// and writes a million credits into it, a fake relay answering `recorded` with a million
/// credits, and a genuine acknowledgement replayed to a later send of the same report are
/// each `protocol_error`, not recorded, their balance never read (every relay signs: the npm
/// relay on Workers too, `tests/js/relay-values.test.mjs`). The same fake answer to a client
/// without relay keys is taken, and says it is unsigned.
#[test]
fn a_forged_usage_acknowledgement_changes_no_balance_and_is_not_recorded_in_signed_mode() {
    use polar_license::usage::UsageAnswer;
    use polar_license::Error;
    use polar_license_testkit::usage_forger::usage_forger;
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let (relay, _, keys) = relay_edited(&polar, |config, store| {
        config.limits = rig::unlimited();
        store.refuse_at_zero_credits = true;
    });
    let client = |base: &str| rig::client(base, Duration::from_secs(5));
    let key = polar_license::Key::new(KEY);
    let report = |id: &str, units: f64| {
        polar_license::BlockingClient::usage_report(&key, EVENT, units, Some(id)).expect("a report")
    };
    let signed = |base: &str, r: &polar_license::usage::UsageReport| {
        client(base).send_usage_signed(None, r, &keys)
    };
    let not_recorded = |what: &str, got: Result<UsageAnswer, Error>| match got {
        Err(Error::Protocol { detail, .. }) => assert!(detail.contains("usage answer"), "{detail}"),
        other => panic!("{what}: {other:?}"),
    };
    // The balance known (the relay's first read of the customer's meters).
    let (n, _) = until_balance_known(&relay, KEY, 1.0, "warm");
    let used = n as f64;
    // Honest, through a proxy that passes everything: signed, the relay's balance.
    let honest = usage_forger(Some(&relay.url()), Box::new(|a, _| a));
    match signed(&honest.url, &report("honest-1", 1.0)) {
        Ok(UsageAnswer::Recorded {
            balance, signed, ..
        }) => {
            assert!(signed);
            assert_eq!(balance, Some(10.0 - used - 1.0));
        }
        other => panic!("honest: {other:?}"),
    }
    // The balance rewritten in the body: the client reports the signed one.
    let rich = usage_forger(Some(&relay.url()), Box::new(|a: Answer, _| a_million(a)));
    match signed(&rich.url, &report("rich-1", 1.0)) {
        Ok(UsageAnswer::Recorded { balance, .. }) => {
            assert_eq!(balance, Some(10.0 - used - 2.0), "the signed balance");
        }
        other => panic!("rewritten balance: {other:?}"),
    }
    // The token stripped and the balance rewritten: no acknowledgement, nothing believed.
    let stripped = usage_forger(
        Some(&relay.url()),
        Box::new(|a: Answer, _| a_million(a).with_header(polar_license::lease::USAGE_HEADER, None)),
    );
    not_recorded(
        "a stripped token with a rewritten balance",
        signed(&stripped.url, &report("stripped-1", 1.0)),
    );
    // Down past zero, then the relay refuses at zero: a proxy turning the 402 into
    // `recorded` (with the relay's signature kept, or dropped) is not believed.
    let (status, v) = report_of(&relay, 20.0, "spend-1");
    assert_eq!(status, 200, "{v}");
    for keep_signature in [true, false] {
        let free = usage_forger(
            Some(&relay.url()),
            Box::new(move |a: Answer, _| {
                assert_eq!(a.status, 402, "the relay refused at zero");
                let header = a
                    .header(polar_license::lease::USAGE_HEADER)
                    .filter(|_| keep_signature)
                    .map(str::to_string);
                Answer {
                    status: 200,
                    body: br#"{"recorded":true,"duplicate":false,"balance":5}"#.to_vec(),
                    ..a
                }
                .with_header(polar_license::lease::USAGE_HEADER, header.as_deref())
            }),
        );
        not_recorded(
            "a refusal turned into recorded",
            signed(&free.url, &report(&format!("free-{keep_signature}"), 1.0)),
        );
    }
    // The honest path says credits_exhausted, signed.
    match signed(&honest.url, &report("after-1", 1.0)) {
        Ok(UsageAnswer::CreditsExhausted { balance }) => assert!(balance <= 0.0),
        other => panic!("at zero: {other:?}"),
    }
    // A fake relay: `recorded`, a million credits, no signature.
    let fake = usage_forger(
        None,
        Box::new(|a: Answer, _| Answer {
            body: br#"{"recorded":true,"duplicate":false,"balance":1000000}"#.to_vec(),
            ..a
        }),
    );
    not_recorded("a fake relay", signed(&fake.url, &report("fake-1", 1.0)));
    // A genuine acknowledgement replayed: the proxy answers every later send with the
    // relay's first answer (its signature, its body).
    let replay = usage_forger(
        Some(&relay.url()),
        Box::new(|a: Answer, seen: &[Answer]| seen.first().cloned().unwrap_or(a)),
    );
    let first = signed(&replay.url, &report("replayed-1", 1.0));
    assert!(
        matches!(first, Ok(UsageAnswer::CreditsExhausted { .. })),
        "{first:?}"
    );
    let again = signed(&replay.url, &report("replayed-2", 1.0));
    not_recorded("a replayed acknowledgement", again);
    // Unsigned mode (no relay keys): the fake answer is taken, and says it is unsigned.
    match client(&fake.url).send_usage(&report("fake-2", 1.0)) {
        Ok(UsageAnswer::Recorded {
            signed, balance, ..
        }) => {
            assert!(!signed);
            assert_eq!(balance, Some(1_000_000.0));
        }
        other => panic!("unsigned: {other:?}"),
    }
}

/// A report of `units` of `KEY` with id `id` straight to the relay: the status and body.
fn report_of(relay: &Running, units: f64, id: &str) -> (u16, Value) {
    report(relay, KEY, units, id)
}

/// The Workers relay's way (issue #76): the npm relay's key is the host's (WebCrypto), so the
/// machine asks its host to sign the usage acknowledgement ([`Need::Sign`]) as it asks for a
/// lease's; here ed25519-compact with the key's secret stands in for WebCrypto. The client in
/// signed mode (the core's `RecordUsage::signed`, which every face drives) verifies that
/// acknowledgement: recorded, `signed: true`, the same claims the relay's own key file would
/// sign. A host whose signature is another key's, or none, gives the answer without a token:
/// the client then believes nothing of it (`protocol_error`), as for a proxy that strips it.
#[test]
fn on_the_workers_path_the_usage_acknowledgement_is_signed_by_the_host_and_verifies_in_the_client()
{
    use polar_license::proto::HttpResponse;
    use polar_license::usage::{RecordUsage, UsageAnswer, UsageStep};
    use polar_license::{Error, Transport};
    use polar_license_relay::flow::{Given, Need};
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let (mut config, signing, secret) = rig::externally_signed(polar.url());
    let impostor = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([9; 32]));
    config.limits = rig::unlimited();
    let mut store = StoreOptions::default();
    store.usage = true;
    store.reconcile_every = 0;
    store.roster = false;
    config.store = rig::store(rig::memory(1_000), store, None);
    let relay = rig::relay(config, rig::upstream(Duration::from_secs(5)));
    let polar_http = rig::upstream(Duration::from_secs(5));
    let keys = signing.relay_keys();
    let key = polar_license::Key::new(KEY);
    // One report from the client's signed machine through the relay's, the host signing what
    // it is asked with `sign`: how many signatures were asked, the token sent, the client's end.
    let send = |id: &str, sign: &dyn Fn(&[u8]) -> Vec<u8>| {
        let r = polar_license::BlockingClient::usage_report(&key, EVENT, 1.0, Some(id))
            .expect("a report");
        let mut machine = RecordUsage::signed(
            "http://relay.example",
            DEMO_ORGANIZATION_ID,
            &r,
            keys.clone(),
            [5; 16],
        )
        .expect("a machine");
        let UsageStep::Send { request, .. } = machine.start() else {
            panic!("no send")
        };
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("content-type"))
            .map(|(n, v)| ((*n).to_string(), v.clone()))
            .collect();
        let body = std::str::from_utf8(&request.body).expect("UTF-8");
        let req = rig::request(USAGE_ROUTE, &headers, body);
        let mut asked = 0;
        let answer =
            rig::Drive::new(&relay, req, rig::at(rig::now())).run_with(|x, need| match need {
                Need::Send { request, .. } => x.give(Given::Upstream(polar_http.send(&request))),
                Need::Sign(bytes) => {
                    asked += 1;
                    x.give(Given::Signature(sign(&bytes)));
                }
                other => x.as_host(other),
            });
        let token = answer
            .headers
            .iter()
            .find(|(n, _)| n == polar_license::lease::USAGE_HEADER)
            .map(|(_, v)| v.clone());
        let resp = HttpResponse {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        };
        match machine.answer(Ok(resp)) {
            UsageStep::Done(result) => (asked, token, result),
            UsageStep::Send { .. } => panic!("sent again"),
        }
    };
    let honest = |b: &[u8]| secret.sign(b, None).to_vec();
    let (asked, token, got) = send("workers-1", &honest);
    // The key's verdict's lease is signed (and left out of the usage answer), then the
    // acknowledgement: each is the host's to sign.
    assert!(asked >= 1, "the acknowledgement is the host's to sign");
    assert!(token.is_some(), "an acknowledgement: {got:?}");
    assert!(
        matches!(
            got,
            Ok(UsageAnswer::Recorded {
                signed: true,
                duplicate: false,
                ..
            })
        ),
        "{got:?}"
    );
    // Sent again with its id: a duplicate, signed too.
    let (_, _, again) = send("workers-1", &honest);
    assert!(
        matches!(
            again,
            Ok(UsageAnswer::Recorded {
                signed: true,
                duplicate: true,
                ..
            })
        ),
        "{again:?}"
    );
    // Another key's signature, or none: no token, and nothing believed.
    let other = |b: &[u8]| impostor.sk.sign(b, None).to_vec();
    let none = |_: &[u8]| Vec::new();
    for (what, sign) in [
        (
            "another key's signature",
            &other as &dyn Fn(&[u8]) -> Vec<u8>,
        ),
        ("no signature", &none),
    ] {
        let (asked, token, got) = send(
            &format!("workers-{what}")
                .replace(' ', "-")
                .replace('\'', ""),
            sign,
        );
        assert!(asked >= 1, "{what}");
        assert_eq!(token, None, "{what}");
        match got {
            Err(Error::Protocol { detail, .. }) => {
                assert!(detail.contains("usage answer"), "{detail}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}
