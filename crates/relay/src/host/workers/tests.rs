//! The Workers host's order, driven natively: a Durable Object's storage stood in for by a map
//! (its keys in order, its alarm), Polar by a closure, the clock given.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use polar_license_testkit::answers::{license_text, KEY, ORG};
use serde_json::json;

use super::*;
use crate::store::layout::LAYOUT_KEY;

/// The clock: 2026-09-21 on the wall, `ms` on the monotonic one.
const fn at(ms: u64) -> Time {
    Time {
        unix_ms: 1_790_000_000_000 + ms,
        monotonic_ms: 1_000 + ms,
    }
}

/// A Durable Object's storage: its keys in order and its alarm.
#[derive(Debug, Default, Clone, PartialEq)]
struct Stand {
    kv: BTreeMap<String, Value>,
    alarm: Option<u64>,
}

impl Stand {
    /// What `read` names, as the host hands it back.
    fn read(&self, read: &StorageRead) -> Value {
        let values: Vec<Value> = read
            .gets
            .iter()
            .flatten()
            .map(|k| json!([k, self.kv.get(k).cloned().unwrap_or(Value::Null)]))
            .collect();
        let lists: Vec<Value> = read.lists.iter().map(|l| json!(self.list(l))).collect();
        json!({"values": values, "lists": lists})
    }

    fn list(&self, l: &Listing) -> Vec<(String, Value)> {
        self.kv
            .range(l.prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&l.prefix))
            .filter(|(k, _)| l.after.as_ref().is_none_or(|a| k.as_str() > a.as_str()))
            .take(l.limit.unwrap_or(usize::MAX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn call(&mut self, call: &StorageCall) {
        assert!(
            match call {
                StorageCall::Put(p) => p.len(),
                StorageCall::Delete(d) => d.len(),
                StorageCall::Write(w) => w.len(),
            } <= KEYS_PER_CALL
        );
        match call {
            StorageCall::Put(pairs) => {
                for (k, v) in pairs {
                    self.kv.insert(k.clone(), v.clone());
                }
            }
            StorageCall::Delete(keys) => {
                for k in keys {
                    self.kv.remove(k);
                }
            }
            StorageCall::Write(writes) => {
                for (k, v) in writes {
                    match v {
                        Some(v) => self.kv.insert(k.clone(), v.clone()),
                        None => self.kv.remove(k),
                    };
                }
            }
        }
    }

    fn keys(&self, prefix: &str) -> Vec<String> {
        self.kv
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// A relay over a paged storage woken by its alarm (a Durable Object's), the roster off;
/// `reconcile`: its re-reads' period in seconds (0: off).
fn workers(reconcile: u64) -> Workers {
    workers_on(reconcile, Wake::Alarm)
}

fn workers_on(reconcile: u64, wake: Wake) -> Workers {
    let options = StoreOptions {
        roster: false,
        reconcile_every: reconcile,
        ..StoreOptions::default()
    };
    Workers::new(Config {
        relay: RelayConfig::for_tests(),
        store: Some(Kept {
            options,
            webhook_secret: None,
            cached: None,
        }),
        storage: Some(Storage {
            paged: true,
            writes: false,
            wake,
        }),
        seats: SeatOptions::default(),
        test_only_seat_seconds: None,
        test_only_budget_seconds: None,
        timeout_ms: 10_000,
        metrics: None,
        checkouts: crate::CheckoutOptions {
            products: vec![PRODUCT.into()],
            ..crate::CheckoutOptions::default()
        },
    })
    .expect("a relay")
}

/// The product the tests' relay sells through its checkout route.
const PRODUCT: &str = "3f9e1c2d-7b4a-4e8f-9a1b-2c3d4e5f6a7b";

/// The store opened from `stand`, each step's calls made: the steps' calls, in order.
fn open(w: &mut Workers, stand: &mut Stand) -> Vec<StorageCall> {
    let mut made = Vec::new();
    let mut step = w.open(None, at(0));
    for _ in 0..100 {
        match step {
            Opened::Read { calls, read } => {
                for call in &calls {
                    stand.call(call);
                }
                made.extend(calls);
                step = w.open(Some(stand.read(&read)), at(0));
            }
            Opened::LoadWhole => panic!("a paged store is read key by key"),
            Opened::Done => return made,
        }
    }
    panic!("the opening never ended")
}

/// A save run to its end, `fail` deciding which calls fail.
fn save(w: &mut Workers, stand: &mut Stand, fail: &mut dyn FnMut(&StorageCall) -> bool) -> Saved {
    let mut step = w.save(None);
    for _ in 0..1_000 {
        match step {
            Saved::Call(call) => {
                let outcome = if fail(&call) {
                    Outcome::Error {
                        name: "Error".into(),
                        message: "the object was reset".into(),
                    }
                } else {
                    stand.call(&call);
                    Outcome::Done
                };
                step = w.save(Some(outcome));
            }
            Saved::Whole(_) => panic!("a paged store saves key by key"),
            other => return other,
        }
    }
    panic!("the save never ended")
}

/// Polar's grant of the testkit's key.
fn grant() -> HttpResponse {
    let mut r = HttpResponse::new(200, license_text(false, Some("null")));
    r.headers = vec![("content-type".into(), "application/json".into())];
    r
}

/// What a request went through: its answer, the calls to Polar, and the steps' names.
struct Driven {
    answer: RelayResponse,
    calls: u32,
    steps: Vec<&'static str>,
}

/// A validate of the testkit's key through the driver at `time`, the storage `stand`, each
/// save's calls failing as `fail` says.
fn validate(
    w: &mut Workers,
    stand: &mut Stand,
    time: Time,
    fail: &mut dyn FnMut(&StorageCall) -> bool,
) -> Driven {
    let id = w.start(RelayRequest {
        method: "POST".into(),
        path: "/v1/customer-portal/license-keys/validate".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Vec::new(),
        client_ip: "192.0.2.8".into(),
    });
    let mut got = None;
    let mut answer = None;
    let mut calls = 0;
    let mut steps = Vec::new();
    for _ in 0..100 {
        match w.want(id, got.take(), time, Some([7; 16])) {
            Step::Body { .. } => {
                steps.push("body");
                let body = json!({"key": KEY, "organization_id": ORG}).to_string();
                got = Some(Got::Body(body.into_bytes()));
            }
            Step::Load(read) => {
                steps.push("load");
                got = Some(Got::Loaded(Some(stand.read(&read))));
            }
            Step::Send { .. } => {
                steps.push("send");
                calls += 1;
                got = Some(Got::Upstream(Ok(grant())));
            }
            Step::Flight { .. } => got = Some(Got::Landed),
            Step::Call => panic!("no patience was given"),
            Step::Sign(_) => got = Some(Got::Signature(Ok(vec![0; 64]))),
            Step::Persist => {
                steps.push("persist");
                let saved = save(w, stand, fail) == Saved::Done;
                got = Some(Got::Persisted(saved));
            }
            Step::Landed(_) => {}
            Step::Respond(r) => {
                steps.push("respond");
                answer = Some(r);
            }
            Step::Last(r) => panic!("the request was lost: {}", r.status),
            Step::Done => {
                return Driven {
                    answer: answer.expect("an answer"),
                    calls,
                    steps,
                }
            }
        }
    }
    panic!("the request never ended")
}

fn never(_: &StorageCall) -> bool {
    false
}

/// A request goes through its loads, the call and the save of what it learnt before it is
/// answered; a relay started again on the same storage answers it from there, with no call.
#[test]
fn a_request_is_saved_before_its_answer_and_read_back_after_a_restart() {
    let mut stand = Stand::default();
    let mut first = workers(0);
    open(&mut first, &mut stand);
    let driven = validate(&mut first, &mut stand, at(0), &mut never);
    assert_eq!((driven.answer.status, driven.calls), (200, 1));
    let persist = driven.steps.iter().position(|s| *s == "persist");
    let respond = driven.steps.iter().position(|s| *s == "respond");
    assert!(
        persist.is_some() && persist < respond,
        "saved before the answer: {:?}",
        driven.steps
    );
    assert!(driven.steps.contains(&"load"), "{:?}", driven.steps);
    assert!(!stand.keys("e:").is_empty(), "the entry saved: {stand:?}");
    drop(first);
    // The object evicted and started again: the entry is read from the storage.
    let mut again = workers(0);
    open(&mut again, &mut stand);
    let driven = validate(&mut again, &mut stand, at(5_000), &mut never);
    assert_eq!((driven.answer.status, driven.calls), (200, 0));
}

/// A storage written before index links is migrated when the store opens (its links written,
/// then the layout's version); a crash between those writes leaves a storage the next
/// opening migrates again, to the same keys.
#[test]
fn an_older_storage_is_migrated_on_open_and_again_after_a_crash_between_its_writes() {
    let mut stand = Stand::default();
    let mut first = workers(0);
    open(&mut first, &mut stand);
    validate(&mut first, &mut stand, at(0), &mut never);
    let current = stand.clone();
    assert_eq!(current.kv.get(LAYOUT_KEY), Some(&json!(layout::LAYOUT)));
    assert!(!current.keys("i:").is_empty(), "{current:?}");
    // The older layout: entries without their links or the layout's version.
    let mut older = current.clone();
    older
        .kv
        .retain(|k, _| !k.starts_with("i:") && k != LAYOUT_KEY);
    // A crash after the migration's first write.
    let mut crashed = older.clone();
    let mut w = workers(0);
    let mut step = w.open(None, at(0));
    let mut wrote = 0;
    'open: for _ in 0..100 {
        match step {
            Opened::Read { calls, read } => {
                if let Some(call) = calls.first() {
                    crashed.call(call);
                    wrote += 1;
                    break 'open;
                }
                step = w.open(Some(crashed.read(&read)), at(0));
            }
            _ => break,
        }
    }
    drop(w);
    assert_eq!(wrote, 1, "the migration writes");
    assert_ne!(crashed, current, "the crash left it half migrated");
    for mut stand in [older, crashed] {
        let mut w = workers(0);
        let calls = open(&mut w, &mut stand);
        assert!(!calls.is_empty(), "migrated");
        assert_eq!(stand, current, "the same keys as a store written now");
        // And the entry answers, with no call.
        let driven = validate(&mut w, &mut stand, at(5_000), &mut never);
        assert_eq!((driven.answer.status, driven.calls), (200, 0));
    }
}

/// A save whose call fails fails whole: the answer waits for it and goes on, the changes are
/// kept (a second request reads them), and the next save writes them all.
#[test]
fn a_failed_save_is_kept_and_written_whole_by_the_next() {
    let mut clean = Stand::default();
    let mut w = workers(0);
    open(&mut w, &mut clean);
    validate(&mut w, &mut clean, at(0), &mut never);

    let mut stand = Stand::default();
    let mut w = workers(0);
    open(&mut w, &mut stand);
    let opened = stand.clone();
    // Every call fails (the object reset under it).
    let driven = validate(&mut w, &mut stand, at(0), &mut |_| true);
    assert_eq!(driven.answer.status, 200, "a check's answer is passed on");
    assert_eq!(stand, opened, "nothing written");
    // The changes not saved are the relay's still: the next check is answered with no call.
    let driven = validate(&mut w, &mut stand, at(5_000), &mut |_| true);
    assert_eq!((driven.answer.status, driven.calls), (200, 0));
    assert_eq!(save(&mut w, &mut stand, &mut never), Saved::Done);
    assert_eq!(stand, clean, "the next save wrote the failed ones' changes");
}

/// What the background needs, done: each job answered (Polar unreachable, reads from
/// `stand`), until a job that ends the run, which is returned with the jobs' names.
fn run(w: &mut Workers, stand: &mut Stand, time: Time) -> (Job, Vec<&'static str>) {
    let mut got = None;
    let mut seen = Vec::new();
    for _ in 0..200 {
        let job = w.poll(got.take(), time);
        match job {
            Job::Send { id, .. } => {
                seen.push("send");
                let answer = HttpResponse::new(503, "{}");
                got = Some((id, JobGot::Polar(Ok(answer))));
            }
            Job::Load { id, read } => {
                seen.push("load");
                got = Some((id, JobGot::Loaded(Some(stand.read(&read)))));
            }
            Job::List { id, list } => {
                seen.push("list");
                let keys = stand.list(&list).into_iter().map(|(k, _)| k).collect();
                got = Some((id, JobGot::Rows(Ok(keys))));
            }
            Job::Save => {
                seen.push("save");
                assert_eq!(save(w, stand, &mut never), Saved::Done);
            }
            other => return (other, seen),
        }
    }
    panic!("the run never ended: {seen:?}")
}

/// The background's wait sets the storage's alarm: read first (another instance may have set
/// one), set unless one rings soon enough, and not read again by the instance that set it.
#[test]
fn the_background_wait_reads_then_sets_the_alarm_once() {
    let mut stand = Stand::default();
    let mut w = workers(600);
    open(&mut w, &mut stand);
    let (job, _) = run(&mut w, &mut stand, at(0));
    assert!(matches!(job, Job::ReadAlarm), "{job:?}");
    let job = w.poll(Some((0, JobGot::Alarm(None))), at(0));
    let Job::SetAlarm(set) = job else {
        panic!("no alarm set: {job:?}");
    };
    let now = at(0).unix_ms;
    assert!(set > now && set <= now + 600_000, "{set} after {now}");
    // Asked again: the alarm it set rings soon enough, and no storage call.
    let (job, _) = run(&mut w, &mut stand, at(10));
    assert!(matches!(job, Job::Done), "{job:?}");

    // Another instance's alarm, later than the work: set sooner.
    let mut other = workers(600);
    open(&mut other, &mut Stand::default());
    let (job, _) = run(&mut other, &mut Stand::default(), at(0));
    assert!(matches!(job, Job::ReadAlarm), "{job:?}");
    let later = now + 86_400_000;
    let job = other.poll(Some((0, JobGot::Alarm(Some(later)))), at(0));
    assert!(matches!(job, Job::SetAlarm(s) if s == set), "{job:?}");

    // With no alarm, a timer, at most a timer's longest wait.
    let mut timed = workers_on(600, Wake::Timer);
    open(&mut timed, &mut Stand::default());
    let (job, _) = run(&mut timed, &mut Stand::default(), at(0));
    assert!(
        matches!(job, Job::Timer(ms) if ms > 0 && ms <= LONGEST_TIMER_MS),
        "{job:?}"
    );
}

/// The background saves after a read of Polar's, never between a load and the job that uses
/// it (a save trims the cache, which could let go of what was loaded).
#[test]
fn the_background_saves_after_polar_never_between_a_load_and_its_use() {
    let mut stand = Stand::default();
    let mut w = workers(1);
    open(&mut w, &mut stand);
    validate(&mut w, &mut stand, at(0), &mut never);
    // A relay started again later: the reconcile lists the stored keys, loads the due one's
    // entries, then reads it of Polar.
    let mut w = workers(1);
    open(&mut w, &mut stand);
    // Two runs: the listing, then (its wait over) the due key's loads and its read.
    let (_, mut seen) = run(&mut w, &mut stand, at(3_600_000));
    seen.extend(run(&mut w, &mut stand, at(3_700_000)).1);
    assert!(seen.contains(&"load"), "{seen:?}");
    for pair in seen.windows(2) {
        assert_ne!(
            pair,
            ["load", "save"],
            "a save between a load and its use: {seen:?}"
        );
    }
    let sends = seen.iter().filter(|s| **s == "send").count();
    assert!(sends > 0, "{seen:?}");
    assert!(
        seen.windows(2).any(|p| p == ["send", "save"]),
        "saved after Polar's answer: {seen:?}"
    );
}

/// A request's warnings and errors go to the log (the one channel), never to the host; a
/// request the driver no longer holds is the relay's 502.
#[test]
fn a_lost_request_is_a_502_and_no_step_is_a_log_line() {
    let mut w = workers(0);
    open(&mut w, &mut Stand::default());
    match w.want(99, None, at(0), None) {
        Step::Last(r) => assert_eq!(r.status, 502),
        other => panic!("{other:?}"),
    }
    // A body that broke off: the relay's 400, the exchange ended.
    let id = w.start(RelayRequest {
        method: "POST".into(),
        path: "/v1/customer-portal/license-keys/validate".into(),
        ..RelayRequest::default()
    });
    assert!(matches!(w.want(id, None, at(0), None), Step::Body { .. }));
    match w.want(id, Some(Got::BodyBroken), at(0), None) {
        Step::Last(r) => assert_eq!(r.status, 400),
        other => panic!("{other:?}"),
    }
    assert!(matches!(w.want(id, None, at(0), None), Step::Last(r) if r.status == 502));
}

/// A checkout asked of the driver with `body`: its answer, and each call's URL and body (Polar
/// answering a made checkout).
fn checkout(w: &mut Workers, body: &Value) -> (RelayResponse, Vec<(String, Value)>) {
    let id = w.start(RelayRequest {
        method: "POST".into(),
        path: crate::CHECKOUT_ROUTE.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Vec::new(),
        client_ip: "192.0.2.8".into(),
    });
    let mut got = None;
    let mut answer = None;
    let mut calls = Vec::new();
    for _ in 0..100 {
        match w.want(id, got.take(), at(0), Some([7; 16])) {
            Step::Body { .. } => got = Some(Got::Body(body.to_string().into_bytes())),
            Step::Send { request, .. } => {
                let sent = serde_json::from_slice(&request.body).expect("JSON");
                calls.push((request.url.clone(), sent));
                let made = json!({"id": "c1", "url": "https://polar.sh/checkout/polar_c_abc", "client_secret": "polar_c_abc", "status": "open"});
                got = Some(Got::Upstream(Ok(HttpResponse::new(201, made.to_string()))));
            }
            Step::Respond(r) => answer = Some(r),
            Step::Done => return (answer.expect("an answer"), calls),
            Step::Persist => got = Some(Got::Persisted(true)),
            Step::Load(_) => panic!("a checkout reads nothing of the store"),
            other => panic!("a step a checkout does not take: {other:?}"),
        }
    }
    panic!("the request never ended")
}

/// The Workers host runs the checkout route's part as the native server does: one call of
/// Polar's with the seller's token for an allowed product (its answer's url and secret), none
/// for a product the seller does not sell.
#[test]
fn a_checkout_runs_the_same_part_on_the_workers_host() {
    let mut w = workers(0);
    let mut stand = Stand::default();
    open(&mut w, &mut stand);
    let (answer, calls) = checkout(
        &mut w,
        &json!({"product_id": PRODUCT, "metadata": {"app_version": "1.4.2"}}),
    );
    assert_eq!(answer.status, 201);
    let made: Value = serde_json::from_slice(&answer.body).expect("JSON");
    assert_eq!(made["client_secret"], "polar_c_abc");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "http://127.0.0.1:9/v1/checkouts/");
    assert_eq!(
        calls[0].1,
        json!({"products": [PRODUCT], "metadata": {"app_version": "1.4.2"}})
    );
    let (refused, calls) = checkout(
        &mut w,
        &json!({"product_id": "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"}),
    );
    assert_eq!(refused.status, 403);
    assert!(calls.is_empty());
}
