//! The local trial as a machine of the core (issue #77): its steps (take the slot's lock, load
//! the app's slot and, while it holds nothing, the shared one, store the sealed record, let
//! go) are [`Want`]s, so every shell drives it with the loop it drives a check with, and no
//! face orders them itself: the native `Licensing`, the Rust-on-wasm `AsyncLicensing` and the
//! npm package's trial add-on (through the package's one drive loop, `pkg-template/drive.js`)
//! only do the IO it asks for.
//!
//! It needs none of a client's context beyond what it is built with (the seal, the days, the
//! clock reading, the grace policy's tolerance): it is [`Standalone`], and so a
//! [`Machine`](crate::flow::Machine) for any context.
//!
//! A store whose lock is not shared by every writer (node's processes over the file store)
//! may see two first checks at once: the first record is written with a compare (stored only
//! while the app's slot still holds nothing, [`Want::Write`]'s `compare`); a check that loses
//! it loads the slot again and answers from the record the other stored, twice at most, then
//! answers as it computed.

use super::{local, LocalAnswer, TrialDays, TrialSeal};
use crate::error::Error;
use crate::flow::{Compare, Given, Keep, Standalone, Want};
use crate::grace::{CheckOutcome, CheckReport, GracePolicy};
use crate::key::Key;

/// How many times a first record that lost its compare is loaded and answered again.
const ROUNDS: u8 = 2;

/// Where the machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Lock,
    LoadOwn,
    LoadShared,
    Clock,
    Write,
    Unlock,
    Done,
}

/// A local trial's check ([`super::local`] with its slot's IO as steps): built with the trial's
/// seal, the app's secret (which names the app's own slot), the days, the clock reading (unix
/// seconds) and the grace policy; driven to [`Want::Done`], then [`LocalTrial::report`].
#[derive(Debug)]
pub struct LocalTrial {
    seal: TrialSeal,
    /// The app's own slot ([`TrialSeal::app_slot`]).
    slot: String,
    days: TrialDays,
    /// The clock reading (unix seconds); `None` until the shell's clock is read.
    now: Option<i64>,
    policy: GracePolicy,
    step: Step,
    /// What the app's slot held when loaded.
    own: Option<Vec<u8>>,
    /// What the shared slot held, when it was loaded.
    shared: Option<Vec<u8>>,
    /// The sealed record to store.
    bytes: Vec<u8>,
    answer: Option<LocalAnswer>,
    /// Why the store could not be used (`cache_error`: no trial is given that cannot be kept).
    failed: Option<Error>,
    /// First records that lost their compare.
    rounds: u8,
    /// A trial is of no key: [`Standalone::key`]'s, empty (never logged: it sends nothing).
    no_key: Key,
}

impl LocalTrial {
    /// The trial of `days` at `now` (unix seconds) under `seal`, in the slot of the app whose
    /// secret is `app_secret` (as `seal` was made with), with `policy`'s clock tolerance.
    /// `now` `None`: the machine asks the shell's clock ([`Want::Clock`]) once the slots are
    /// loaded, so that the reading falls between its load and its write (the npm package's
    /// file store, whose processes share no lock: its race test meets there).
    pub fn new(
        seal: TrialSeal,
        app_secret: Option<&[u8]>,
        days: TrialDays,
        now: Option<i64>,
        policy: GracePolicy,
    ) -> LocalTrial {
        LocalTrial {
            slot: seal.app_slot(app_secret),
            seal,
            days,
            now,
            policy,
            step: Step::Lock,
            own: None,
            shared: None,
            bytes: Vec::new(),
            answer: None,
            failed: None,
            rounds: 0,
            no_key: Key::new(String::new()),
        }
    }

    /// The trial's answer once done: the answer ([`super::local`]'s), or why the store could
    /// not be used. `None` before it is done.
    pub fn answer(&self) -> Option<Result<&LocalAnswer, &Error>> {
        if self.step != Step::Done {
            return None;
        }
        match (&self.failed, &self.answer) {
            (Some(e), _) => Some(Err(e)),
            (None, Some(a)) => Some(Ok(a)),
            // Done without an answer only after a failure; said as one, never as a trial.
            (None, None) => None,
        }
    }

    /// The check's report once done: the outcome of a check with no key (`invalid_input`,
    /// field `key`: ask for a key) or `clock_rollback`, with the trial; a store that could not
    /// be used is `cache_error` with no trial.
    pub fn report<L>(&self) -> CheckReport<L> {
        match self.answer() {
            Some(Ok(answer)) => {
                let error = answer
                    .error
                    .clone()
                    .unwrap_or_else(Error::no_remembered_key);
                CheckReport {
                    trial: Some(Box::new(answer.trial)),
                    ..CheckReport::of(CheckOutcome::Unverified(error))
                }
            }
            Some(Err(e)) => CheckReport::of(CheckOutcome::Unverified(e.clone())),
            None => CheckReport::of(CheckOutcome::Unverified(Error::Cache {
                detail: "the trial's machine was not driven to its end".to_string(),
            })),
        }
    }

    /// The slots are loaded: the clock asked, else the answer.
    fn loaded(&mut self) {
        match self.now {
            Some(now) => self.decide(now),
            None => self.step = Step::Clock,
        }
    }

    /// The slot's bytes are loaded and the clock read: the answer, and the record to store.
    fn decide(&mut self, now: i64) {
        let stored = self
            .seal
            .stored(self.own.as_deref(), self.shared.as_deref());
        let answer = local(stored.record, self.days, now, &self.policy);
        self.step = match stored.write(&answer) {
            Some(record) => {
                self.bytes = self.seal.seal(&record);
                Step::Write
            }
            None => Step::Unlock,
        };
        self.answer = Some(answer);
    }

    /// The store failed: no trial, the lock let go.
    fn fail(&mut self, e: Error) {
        self.failed = Some(e);
        self.answer = None;
        self.step = Step::Unlock;
    }
}

impl Standalone for LocalTrial {
    fn want(&self) -> Want<'_> {
        match self.step {
            Step::Lock => Want::Lock(&self.slot),
            Step::LoadOwn => Want::Load(&self.slot),
            Step::LoadShared => Want::Load(&self.seal.slot),
            Step::Clock => Want::Clock,
            Step::Write => Want::Write {
                name: &self.slot,
                bytes: &self.bytes,
                keep: Keep::Durable,
                // A first record only where still none is (another writer's, stored
                // meanwhile, is loaded and answered instead).
                compare: self.own.is_none().then_some(Compare {
                    ledger: &self.slot,
                    holds: None,
                }),
            },
            Step::Unlock => Want::Unlock,
            Step::Done => Want::Done,
        }
    }

    fn give(&mut self, given: Given) {
        match (self.step, given) {
            (Step::Lock, Given::Locked(Ok(()))) => self.step = Step::LoadOwn,
            (Step::Lock, Given::Locked(Err(e))) => {
                self.fail(e);
                // Not taken: nothing to let go.
                self.step = Step::Done;
            }
            (Step::LoadOwn, Given::Loaded(Ok(own))) => {
                self.own = own;
                self.shared = None;
                // The slot every app of the organization shared before issue #62: read only
                // while the app's holds nothing.
                if self.own.is_none() && self.seal.slot != self.slot {
                    self.step = Step::LoadShared;
                } else {
                    self.loaded();
                }
            }
            (Step::LoadShared, Given::Loaded(Ok(shared))) => {
                self.shared = shared;
                self.loaded();
            }
            (Step::Clock, Given::Clock(ms)) => {
                self.decide(i64::try_from(ms / 1000).unwrap_or(i64::MAX));
            }
            (Step::LoadOwn | Step::LoadShared, Given::Loaded(Err(e))) => self.fail(e),
            (Step::Write, Given::Written(Ok(()))) => self.step = Step::Unlock,
            (Step::Write, Given::Written(Err(e))) => self.fail(e),
            (Step::Write, Given::Late) if self.rounds < ROUNDS => {
                // Another's first record, stored meanwhile: answered from it.
                self.rounds += 1;
                self.answer = None;
                self.step = Step::LoadOwn;
            }
            // Lost again and again: answered as computed (the store holds another's).
            (Step::Write, Given::Late) => self.step = Step::Unlock,
            (Step::Unlock, Given::Unlocked) => self.step = Step::Done,
            (Step::Done, _) => {}
            // A given this step did not ask for: the shell and the machine do not match.
            (_, given) => self.fail(Error::Cache {
                detail: ["the trial was given ", given.name(), " out of turn"].concat(),
            }),
        }
    }

    fn key(&self) -> &Key {
        &self.no_key
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is the failure report
mod tests {
    use super::super::{TrialRecord, TrialState, DAY};
    use super::*;
    use crate::reason::Reason;
    use std::collections::HashMap;

    const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
    const T0: i64 = 1_790_000_000;

    fn seal(secret: Option<&[u8]>) -> TrialSeal {
        TrialSeal::new("https://api.polar.sh/", ORG, b"install", Some("m"), secret)
    }

    fn trial(now: i64) -> LocalTrial {
        let days = TrialDays::new(14).unwrap();
        LocalTrial::new(
            seal(Some(b"app")),
            Some(b"app"),
            days,
            Some(now),
            GracePolicy::default(),
        )
    }

    /// A store as a shell's, and the wants it saw, in order.
    #[derive(Default)]
    struct Store {
        entries: HashMap<String, Vec<u8>>,
        locked: bool,
        seen: Vec<String>,
    }

    impl Store {
        /// Drives `t` to its end, answering each want; `late` answers the first writes with
        /// a compare as lost (another writer's record stored meanwhile: `other`).
        fn drive(&mut self, t: &mut LocalTrial, mut late: u8, other: &[u8]) {
            for _ in 0..32 {
                let given = match t.want() {
                    Want::Lock(name) => {
                        assert!(!self.locked, "the lock taken twice");
                        self.locked = true;
                        self.seen.push(["lock ", name].concat());
                        Given::Locked(Ok(()))
                    }
                    Want::Unlock => {
                        assert!(self.locked, "let go of a lock not held");
                        self.locked = false;
                        self.seen.push("unlock".into());
                        Given::Unlocked
                    }
                    Want::Load(name) => {
                        assert!(self.locked, "loaded without the lock");
                        self.seen.push(["load ", name].concat());
                        Given::Loaded(Ok(self.entries.get(name).cloned()))
                    }
                    Want::Write {
                        name,
                        bytes,
                        compare,
                        ..
                    } => {
                        assert!(self.locked, "written without the lock");
                        self.seen.push(["write ", name].concat());
                        if let Some(c) = compare {
                            if late > 0 {
                                late -= 1;
                                self.entries.insert(name.to_string(), other.to_vec());
                            }
                            let now = self.entries.get(c.ledger).map(Vec::as_slice);
                            if !c.holds(now) {
                                self.seen.push("late".into());
                                t.give(Given::Late);
                                continue;
                            }
                        }
                        self.entries.insert(name.to_string(), bytes.to_vec());
                        Given::Written(Ok(()))
                    }
                    Want::Done => return,
                    _ => panic!("a trial wants only its store"),
                };
                t.give(given);
            }
            panic!("the trial never ended");
        }
    }

    fn run(store: &mut Store, now: i64) -> LocalAnswer {
        let mut t = trial(now);
        store.drive(&mut t, 0, b"");
        assert!(!store.locked, "the lock is let go");
        t.answer().unwrap().unwrap().clone()
    }

    #[test]
    fn the_machine_starts_counts_down_ends_and_refuses_a_clock_set_back() {
        let mut store = Store::default();
        let app = seal(Some(b"app")).app_slot(Some(b"app"));
        let shared = seal(Some(b"app")).slot;
        // The first check: the app's slot is empty, the shared one read, the trial started.
        let first = run(&mut store, T0);
        assert_eq!(
            store.seen,
            [
                ["lock ", &app].concat(),
                ["load ", &app].concat(),
                ["load ", &shared].concat(),
                ["write ", &app].concat(),
                "unlock".to_string(),
            ]
        );
        assert_eq!(first.trial.state, TrialState::Active);
        assert_eq!(first.trial.days_left, 14);
        let stored = seal(Some(b"app")).open(&store.entries[&app]).unwrap();
        assert_eq!(
            stored,
            TrialRecord {
                started: T0,
                latest_seen: T0
            }
        );
        // Counted down: the shared slot not read again, the latest reading moved on.
        store.seen.clear();
        let later = run(&mut store, T0 + 3 * DAY + 1);
        assert_eq!(later.trial.days_left, 11);
        assert!(!store.seen.iter().any(|s| s.contains(&shared)));
        let stored = seal(Some(b"app")).open(&store.entries[&app]).unwrap();
        assert_eq!(stored.latest_seen, T0 + 3 * DAY + 1);
        // A clock set back past the tolerance: refused, clock_rollback, nothing written.
        store.seen.clear();
        let back = run(&mut store, T0 + DAY);
        assert_eq!(back.trial.state, TrialState::Refused);
        assert_eq!(
            back.error.as_ref().map(Error::reason),
            Some(Reason::ClockRollback)
        );
        assert!(!store.seen.iter().any(|s| s.starts_with("write")));
        // Ended.
        let ended = run(&mut store, T0 + 14 * DAY);
        assert_eq!(
            (ended.trial.state, ended.trial.days_left),
            (TrialState::Ended, 0)
        );
        // An edited record: refused, never restarted.
        let edited = String::from_utf8(store.entries[&app].clone())
            .unwrap()
            .replace(&T0.to_string(), &(T0 + DAY).to_string());
        store.entries.insert(app.clone(), edited.into_bytes());
        let refused = run(&mut store, T0 + 2 * DAY);
        assert_eq!(refused.trial.state, TrialState::Refused);
        let report: CheckReport = trial(T0 + 2 * DAY).report();
        assert!(
            report.trial.is_none(),
            "no trial before the machine is driven"
        );
    }

    #[test]
    fn the_machine_adopts_the_shared_record_and_loses_a_first_write_to_another() {
        let mut store = Store::default();
        let app = seal(Some(b"app")).app_slot(Some(b"app"));
        let shared = seal(Some(b"app")).slot;
        let record = TrialRecord {
            started: T0 - 5 * DAY,
            latest_seen: T0 - DAY,
        };
        store
            .entries
            .insert(shared.clone(), seal(Some(b"app")).seal(&record));
        let adopted = run(&mut store, T0);
        assert_eq!(adopted.trial.days_left, 9);
        assert_eq!(
            seal(Some(b"app"))
                .open(&store.entries[&app])
                .unwrap()
                .started,
            record.started
        );
        // Another process's first record stored between the load and the write: answered
        // from it (its start), never overwritten.
        let mut store = Store::default();
        let theirs = seal(Some(b"app")).seal(&TrialRecord {
            started: T0 - 2 * DAY,
            latest_seen: T0 - 2 * DAY,
        });
        let mut t = trial(T0);
        store.drive(&mut t, 1, &theirs);
        let answer = t.answer().unwrap().unwrap();
        assert_eq!(answer.trial.started_at, Some(T0 - 2 * DAY));
        assert_eq!(answer.trial.days_left, 12);
        assert_eq!(store.seen.iter().filter(|s| *s == "late").count(), 1);
        assert_eq!(
            seal(Some(b"app"))
                .open(&store.entries[&app])
                .unwrap()
                .started,
            T0 - 2 * DAY
        );
    }

    #[test]
    fn without_a_reading_the_machine_asks_the_clock_between_its_load_and_its_write() {
        let days = TrialDays::new(14).unwrap();
        let policy = GracePolicy::default();
        let mut t = LocalTrial::new(seal(Some(b"app")), Some(b"app"), days, None, policy);
        t.give(Given::Locked(Ok(())));
        t.give(Given::Loaded(Ok(None)));
        t.give(Given::Loaded(Ok(None)));
        assert!(matches!(t.want(), Want::Clock), "the clock after the loads");
        t.give(Given::Clock(u64::try_from(T0).unwrap() * 1000 + 999));
        let Want::Write { bytes, .. } = t.want() else {
            panic!("the first record written after the clock");
        };
        let record = seal(Some(b"app")).open(bytes).unwrap();
        assert_eq!(
            record,
            TrialRecord {
                started: T0,
                latest_seen: T0
            }
        );
    }

    #[test]
    fn a_store_that_fails_gives_no_trial_and_lets_go_of_its_lock() {
        let mut t = trial(T0);
        assert!(matches!(t.want(), Want::Lock(_)));
        t.give(Given::Locked(Ok(())));
        t.give(Given::Loaded(Err(Error::Cache {
            detail: "disk gone".into(),
        })));
        assert!(matches!(t.want(), Want::Unlock));
        t.give(Given::Unlocked);
        assert!(matches!(t.want(), Want::Done));
        let report: CheckReport = t.report();
        assert!(report.trial.is_none());
        assert_eq!(report.outcome.reason(), Some(Reason::CacheError));
        // A lock that cannot be taken: done at once, nothing to let go.
        let mut t = trial(T0);
        t.give(Given::Locked(Err(Error::Cache {
            detail: "no lock".into(),
        })));
        assert!(matches!(t.want(), Want::Done));
        // A given out of turn: the shell and the machine do not match; no trial.
        let mut t = trial(T0);
        t.give(Given::Locked(Ok(())));
        t.give(Given::Waited);
        assert!(matches!(t.want(), Want::Unlock));
    }
}
