//! Trials (issue #54 item 4) on the Rust-on-wasm client (`AsyncLicensing`), in node and in
//! headless Chromium (`scripts/test-wasm.sh`), as tests/trials.rs holds the native face: a
//! local trial of N days starts at the first check with no key, counts down, ends; a clock set
//! back during it is `clock_rollback`; an edited or copied trial record is refused (never
//! restarted); wiping the storage restarts it; a key from a trial product (a named benefit, a
//! 2027-01 `trialing` subscription) is reported as a trial with its end, a revoked one is not;
//! with no trial stated, nothing changes. The clock is the builder's (`clock`); Polar is the
//! emulator at `POLAR_WASM_EMULATOR_URL`, a fresh key each test.
#![cfg(target_arch = "wasm32")]

use polar_license::trial::{TrialDays, TrialState};
use polar_license::wasm::{date_now, AsyncLicensing, AsyncStore, LocalFuture};
use polar_license::{ActivateRequest, CheckReport, Error, Reason};
use polar_license_testkit::fetch::{emulator, new_key, patch_key, Versioned};
use polar_license_testkit::rfc3339;
use polar_license_testkit::seller_rows::{DAY, PAID_BENEFIT, TRIAL_BENEFIT};
use polar_license_testkit::trials::{
    key_trial, local, no_trial, refused, revoked, rolled_back, trialing,
};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";

/// A store in memory whose names the test can list and whose values it can edit (clones
/// share it: the app launched again over the same storage).
#[derive(Clone, Default)]
struct Shelf(Rc<RefCell<BTreeMap<String, String>>>);

impl Shelf {
    /// The names that hold a local trial's record.
    fn trial_names(&self) -> Vec<String> {
        self.0
            .borrow()
            .keys()
            .filter(|k| k.starts_with("polar-license.trial-"))
            .cloned()
            .collect()
    }

    /// The one trial record's name and text.
    fn trial_record(&self) -> (String, String) {
        let names = self.trial_names();
        assert_eq!(names.len(), 1, "{names:?}");
        let text = self.0.borrow()[&names[0]].clone();
        (names[0].clone(), text)
    }
}

impl AsyncStore for Shelf {
    fn get<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<Option<String>, Error>> {
        let value = self.0.borrow().get(name).cloned();
        Box::pin(async move { Ok(value) })
    }

    fn set<'a>(&'a self, name: &'a str, value: &'a str) -> LocalFuture<'a, Result<(), Error>> {
        self.0
            .borrow_mut()
            .insert(name.to_string(), value.to_string());
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<(), Error>> {
        self.0.borrow_mut().remove(name);
        Box::pin(async { Ok(()) })
    }
}

/// A clock the test moves (unix seconds).
#[derive(Clone)]
struct Clock(Rc<Cell<i64>>);

impl Clock {
    fn new(at: i64) -> Clock {
        Clock(Rc::new(Cell::new(at)))
    }
    fn set(&self, at: i64) {
        self.0.set(at);
    }
}

/// A client of the emulator over `store` on `machine`, on `clock`, in API version `api`, with
/// a local trial of `days` (none: no trial stated) and the trial benefits `benefits`.
fn app(
    store: &(impl AsyncStore + Clone + 'static),
    machine: &str,
    clock: &Clock,
    api: &str,
    days: Option<u32>,
    benefits: &[&str],
) -> AsyncLicensing {
    let reading = clock.0.clone();
    let mut b = AsyncLicensing::builder(ORG)
        .base_url(emulator())
        .store(store.clone())
        .machine_id(machine)
        .clock(move || reading.get());
    if let Some(days) = days {
        b = b.trial(TrialDays::new(days).unwrap());
    }
    for id in benefits {
        b = b.trial_benefit(*id);
    }
    b.build_with_transport(Versioned::new(api)).unwrap()
}

fn local_app(store: &Shelf, clock: &Clock, days: Option<u32>) -> AsyncLicensing {
    app(store, "machine-A", clock, "2026-10", days, &[])
}

/// A local trial's set-up: the start (now), an empty storage, the clock at the start, and the
/// app (2026-10) with a trial of `days`.
fn local_trial(days: Option<u32>) -> (i64, Shelf, Clock, AsyncLicensing) {
    let start = date_now();
    let store = Shelf::default();
    let clock = Clock::new(start);
    let l = local_app(&store, &clock, days);
    (start, store, clock, l)
}

/// [`local_trial`] started: its first check, with no key, starts the trial of `days`.
async fn started_trial(days: u32) -> (i64, Shelf, Clock, AsyncLicensing) {
    let set_up = local_trial(Some(days));
    local(
        &set_up.3.check_trial_report().await,
        TrialState::Active,
        days,
    );
    set_up
}

#[wasm_bindgen_test]
async fn a_local_trial_starts_at_the_first_check_counts_down_and_ends() {
    let (start, store, clock, l) = local_trial(Some(14));

    // No key: the first check starts the trial; the outcome still asks for a key.
    let first = l.check_trial_report().await;
    let t = local(&first, TrialState::Active, 14);
    assert_eq!(t.started_at, Some(start));
    assert_eq!(t.ends_at, Some(start + 14 * DAY));
    assert_eq!(first.outcome.reason(), Some(Reason::InvalidInput));
    assert_eq!(first.outcome.field(), Some("key"));
    // Sealed in the storage beside the records.
    let (_, text) = store.trial_record();
    assert!(text.starts_with("polar-license-trial v1\n"), "{text}");

    // It counts down from the sealed start, not from each launch.
    clock.set(start + 3 * DAY + 60);
    let later = l.check_trial_report().await;
    let t = local(&later, TrialState::Active, 11);
    assert_eq!(t.started_at, Some(start));
    // Another client of the same storage (the app launched again) sees the same trial.
    let again = local_app(&store, &clock, Some(14))
        .check_trial_report()
        .await;
    assert_eq!(again.trial, later.trial);

    // On its last day, one day left; at its end: ended.
    clock.set(start + 14 * DAY - 60);
    local(&l.check_trial_report().await, TrialState::Active, 1);
    clock.set(start + 14 * DAY);
    let t = local(&l.check_trial_report().await, TrialState::Ended, 0);
    assert_eq!(t.ends_at, Some(start + 14 * DAY));
    clock.set(start + 40 * DAY);
    local(&l.check_trial_report().await, TrialState::Ended, 0);

    // Wiping the app's storage restarts the trial (the docs say so).
    let (name, _) = store.trial_record();
    store.remove(&name).await.unwrap();
    let fresh = local(&l.check_trial_report().await, TrialState::Active, 14);
    assert_eq!(fresh.started_at, Some(start + 40 * DAY));
}

/// A view of a [`Shelf`] whose first read of the trial's slot is held, the read done and the
/// write not yet, until [`Held::go`]; [`Held::read`] says what it read (`Some(true)`: a record).
#[derive(Clone)]
struct Held {
    shelf: Shelf,
    read: Rc<Cell<Option<bool>>>,
    gate: js_sys::Promise,
    open: js_sys::Function,
}

impl Held {
    fn new(shelf: &Shelf) -> Held {
        let mut open = None;
        let gate = js_sys::Promise::new(&mut |resolve, _| open = Some(resolve));
        Held {
            shelf: shelf.clone(),
            read: Rc::default(),
            gate,
            open: open.expect("a promise's resolve"),
        }
    }

    fn read(&self) -> Option<bool> {
        self.read.get()
    }

    fn go(&self) {
        self.open.call0(&JsValue::NULL).unwrap();
    }
}

impl AsyncStore for Held {
    fn get<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<Option<String>, Error>> {
        let value = self.shelf.0.borrow().get(name).cloned();
        let first = name.starts_with("polar-license.trial-") && self.read.get().is_none();
        if first {
            self.read.set(Some(value.is_some()));
        }
        let gate = first.then(|| JsFuture::from(self.gate.clone()));
        Box::pin(async move {
            if let Some(gate) = gate {
                gate.await.unwrap();
            }
            Ok(value)
        })
    }

    fn set<'a>(&'a self, name: &'a str, value: &'a str) -> LocalFuture<'a, Result<(), Error>> {
        self.shelf.set(name, value)
    }

    fn remove<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<(), Error>> {
        self.shelf.remove(name)
    }
}

/// Waits until `ready()`, `ms` milliseconds at most (the host's timer, 10 ms a turn); whether
/// it came.
async fn until(ms: i32, ready: impl Fn() -> bool) -> bool {
    let nap = js_sys::Function::new_with_args("ms", "return new Promise((r) => setTimeout(r, ms))");
    for _ in 0..ms / 10 {
        if ready() {
            return true;
        }
        let promise = nap.call1(&JsValue::NULL, &10.into()).unwrap();
        JsFuture::from(js_sys::Promise::from(promise))
            .await
            .unwrap();
    }
    ready()
}

/// `l`'s trial check, run beside the test; its report lands in the cell.
fn spawn_check(l: AsyncLicensing) -> Rc<RefCell<Option<CheckReport>>> {
    let done = Rc::new(RefCell::new(None));
    let out = done.clone();
    wasm_bindgen_futures::spawn_local(async move {
        *out.borrow_mut() = Some(l.check_trial_report().await);
    });
    done
}

#[wasm_bindgen_test]
async fn two_first_checks_held_between_the_read_and_the_write_start_one_trial() {
    // Two clients of one storage (two tabs of the app) in this instance: the slot's lock is
    // the origin's Web Lock in a browser, the instance's in node. The early one reads no record
    // and is held before its write; the late one (its clock 20 days on) starts meanwhile. It
    // must not read before the early one wrote: it finds the trial of 14 days ended and does
    // not restart it; both answer one start and end, and a later check sees that trial.
    let start = date_now();
    let shelf = Shelf::default();
    let (early, late) = (Held::new(&shelf), Held::new(&shelf));
    let early_app = app(
        &early,
        "machine-A",
        &Clock::new(start),
        "2026-10",
        Some(14),
        &[],
    );
    let late_clock = Clock::new(start + 20 * DAY);
    let late_app = app(&late, "machine-A", &late_clock, "2026-10", Some(14), &[]);

    let first = spawn_check(early_app);
    assert!(until(30_000, || early.read().is_some()).await);
    let second = spawn_check(late_app);
    // The late client's read, if it comes while the early one is held (it must not).
    let met = until(500, || late.read().is_some()).await;
    early.go();
    assert!(until(30_000, || first.borrow().is_some()).await);
    assert!(until(30_000, || late.read().is_some()).await);
    late.go();
    assert!(until(30_000, || second.borrow().is_some()).await);

    let first = first.borrow_mut().take().unwrap();
    let second = second.borrow_mut().take().unwrap();
    let why = format!(
        "met {met}, read {:?}: {first:?} {second:?}",
        (early.read(), late.read())
    );
    let t = local(&first, TrialState::Active, 14);
    assert_eq!(
        (t.started_at, t.ends_at),
        (Some(start), Some(start + 14 * DAY)),
        "{why}"
    );
    let t = local(&second, TrialState::Ended, 0);
    assert_eq!(
        (t.started_at, t.ends_at),
        (Some(start), Some(start + 14 * DAY)),
        "{why}"
    );
    // The late client waited for the lock: it read the early one's record.
    assert_eq!(
        (met, early.read(), late.read()),
        (false, Some(false), Some(true)),
        "{why}"
    );
    // A later check: the one trial, ended; one record.
    late_clock.set(start + 21 * DAY);
    let again = local_app(&shelf, &late_clock, Some(14))
        .check_trial_report()
        .await;
    let t = local(&again, TrialState::Ended, 0);
    assert_eq!(t.started_at, Some(start), "{why}");
    assert_eq!(shelf.trial_names().len(), 1);
}

#[wasm_bindgen_test]
async fn no_trial_stated_changes_nothing() {
    let (_, store, _clock, l) = local_trial(None);
    let asked = l.check_trial_report().await;
    assert_eq!(asked.outcome.reason(), Some(Reason::InvalidInput));
    assert_eq!(asked.outcome.field(), Some("trial"), "{asked:?}");
    assert_eq!(asked.trial, None);
    assert!(store.trial_names().is_empty());
}

#[wasm_bindgen_test]
async fn a_clock_set_back_during_a_trial_is_clock_rollback() {
    let (start, _store, clock, l) = started_trial(7).await;
    clock.set(start + 6 * DAY);
    local(&l.check_trial_report().await, TrialState::Active, 1);

    // Set back five days to stretch the trial: refused, clock_rollback.
    clock.set(start + DAY);
    rolled_back(&l.check_trial_report().await);
    // Within the tolerance (10 minutes): no rollback, and no day regained.
    clock.set(start + 6 * DAY - 300);
    local(&l.check_trial_report().await, TrialState::Active, 1);
    // Forward again past the end: ended.
    clock.set(start + 7 * DAY + 1);
    local(&l.check_trial_report().await, TrialState::Ended, 0);
}

#[wasm_bindgen_test]
async fn an_edited_or_copied_trial_record_is_refused_not_restarted() {
    let (start, store, clock, l) = started_trial(14).await;
    clock.set(start + 20 * DAY);
    local(&l.check_trial_report().await, TrialState::Ended, 0);

    // Move the start forward by 19 days in the storage: the seal no longer matches.
    let (name, text) = store.trial_record();
    let edited = text.replacen(&start.to_string(), &(start + 19 * DAY).to_string(), 1);
    assert_ne!(edited, text);
    store.set(&name, &edited).await.unwrap();
    refused(&l.check_trial_report().await);
    // Refused, and left as it is: the next check refuses too (no fresh trial written).
    assert_eq!(store.trial_record().1, edited);
    assert_eq!(
        l.check_trial_report().await.trial.map(|t| t.state),
        Some(TrialState::Refused)
    );

    // The storage copied to another machine (another machine id): refused.
    let copied = Shelf::default();
    let a = local_app(&copied, &clock, Some(14));
    local(&a.check_trial_report().await, TrialState::Active, 14);
    let other = app(&copied, "machine-B", &clock, "2026-10", Some(14), &[]);
    assert_eq!(
        other.check_trial_report().await.trial.map(|t| t.state),
        Some(TrialState::Refused)
    );
}

/// A fresh key on the emulator granted through a subscription with `status`, its period
/// ending at `end`, of the benefit `benefit`, expiring at `expires` when given.
async fn subscribed(status: &str, end: i64, benefit: &str, expires: Option<i64>) -> String {
    let mut fields = json!({
        "benefit_id": benefit,
        "limit_activations": 3,
        "subscription": { "status": status, "current_period_end": rfc3339(end) },
    });
    if let Some(at) = expires {
        fields["expires_at"] = json!(rfc3339(at));
    }
    new_key(emulator(), "TRIAL", fields).await
}

async fn activate(l: &AsyncLicensing, key: &str) {
    let v = l
        .activate(&ActivateRequest::new(key, "laptop"))
        .await
        .unwrap();
    assert!(v.is_accepted(), "{v:?}");
}

#[wasm_bindgen_test]
async fn a_trialing_subscription_is_a_trial_with_its_end_and_a_revoked_key_is_not() {
    let start = date_now();
    let end = start + 5 * DAY + 3600;
    let key = subscribed("trialing", end, PAID_BENEFIT, None).await;
    let store = Shelf::default();
    let clock = Clock::new(start);
    let l = app(&store, "machine-A", &clock, "2027-01", Some(14), &[]);
    let unstated = app(&store, "machine-A", &clock, "2027-01", None, &[]);
    activate(&l, &key).await;
    let r = l.check_report(key.as_str()).await;
    assert!(r.outcome.is_licensed(), "{r:?}");
    assert_eq!(r.trial.as_deref(), Some(&trialing(end, 6)));
    // No trial stated: the same answer, no trial field.
    no_trial(&unstated.check_report(key.as_str()).await);

    // Revoked (a refund): denied, and no trial.
    patch_key(emulator(), &key, json!({ "status": "revoked" })).await;
    clock.set(start + 2 * 3600); // past the fresh window: the check asks Polar
    revoked(&l.check_report(key.as_str()).await);
}

#[wasm_bindgen_test]
async fn a_key_of_a_named_trial_benefit_is_a_trial_and_a_paid_one_is_not() {
    let start = date_now();
    let expires = start + 10 * DAY;
    let key = subscribed("active", start + 30 * DAY, TRIAL_BENEFIT, Some(expires)).await;
    let store = Shelf::default();
    let clock = Clock::new(start);
    let l = app(
        &store,
        "machine-A",
        &clock,
        "2027-01",
        None,
        &[TRIAL_BENEFIT],
    );
    activate(&l, &key).await;
    // The earlier of the key's expiry and the period's end.
    key_trial(&l.check_report(key.as_str()).await, expires, 10);

    // A key of another (paid) benefit, same client: licensed, no trial.
    let paid = subscribed("active", start + 30 * DAY, PAID_BENEFIT, None).await;
    activate(&l, &paid).await;
    no_trial(&l.check_report(paid.as_str()).await);
}
