//! Which writes must survive a power cut (issue #26: a cached launch fsyncs three times, not
//! four; issue #38: none when only the clock moved, a little). A cached answer's record is
//! stored durably and its ledger revertibly ([`Store::save_revertible`]: the directory's fsync
//! left out), then a clock note ([`Store::save_volatile`]: no fsync, no rename); a cached
//! answer within a tenth of the clock tolerance of the record's own clock writes the note
//! alone; every verdict keeps both durable. A power cut cannot be made in a test, so what it
//! may leave is put there by hand: the ledger's previous bytes after a cached answer must still
//! trust the record (an offline user keeps the grace), a note lost, torn or deleted must not
//! let a held clock ride, and the record's previous bytes must still be refused after a denial
//! (a revoked key never rides the grace window).
#![cfg(not(target_arch = "wasm32"))]

use polar_license::grace::{CheckOutcome, Source};
use polar_license::store::{FileStore, SlotLock, Store};
use polar_license::{ActivateRequest, Error, Licensing, Reason};
use polar_license_emulator::{Fault, DEMO_KEY};
use polar_license_testkit::World;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const HOUR: i64 = 3600;

/// How a slot was written: `save` (durable) or `save_revertible`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Durable,
    Revertible,
    Volatile,
}

/// Which slot: a record, its ledger (`…-seq`) or its clock note (`…-clock`), or anything
/// else (the remembered key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Record,
    Ledger,
    Clock,
    Other,
}

fn what(slot: &str) -> What {
    if slot.ends_with("-seq") {
        What::Ledger
    } else if slot.ends_with("-clock") {
        What::Clock
    } else if slot.starts_with("v2-") {
        What::Record
    } else {
        What::Other
    }
}

/// A real file store that notes every write.
#[derive(Clone)]
struct Noting {
    files: FileStore,
    writes: Arc<Mutex<Vec<(What, How)>>>,
}

impl Noting {
    fn take(&self) -> Vec<(What, How)> {
        std::mem::take(&mut *self.writes.lock().unwrap())
    }

    /// Notes a write of `slot`, and how it was asked for.
    fn record(&self, slot: &str, how: How) {
        self.writes.lock().unwrap().push((what(slot), how));
    }
}

impl Store for Noting {
    fn load(&self, slot: &str) -> Result<Option<Vec<u8>>, Error> {
        self.files.load(slot)
    }
    fn save(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        self.record(slot, How::Durable);
        self.files.save(slot, bytes)
    }
    fn save_revertible(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        self.record(slot, How::Revertible);
        self.files.save_revertible(slot, bytes)
    }
    fn save_volatile(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        self.record(slot, How::Volatile);
        self.files.save_volatile(slot, bytes)
    }
    fn remove(&self, slot: &str) -> Result<(), Error> {
        self.files.remove(slot)
    }
    fn install_secret(&self) -> Result<Vec<u8>, Error> {
        self.files.install_secret()
    }
    fn lock(&self, slot: &str) -> Result<SlotLock, Error> {
        self.files.lock(slot)
    }
    fn try_lock(&self, slot: &str) -> Result<Option<SlotLock>, Error> {
        self.files.try_lock(slot)
    }
}

/// This suite's world: the testkit's, its directory named for the test.
fn world(name: &str) -> World {
    World::new(&format!("durability-{name}"))
}

/// This suite's helpers on the testkit's world.
trait Here {
    fn licensing(&self, store: Option<Noting>) -> Licensing;
    fn noting(&self) -> Noting;
    fn files(&self) -> (PathBuf, PathBuf);
    fn note(&self) -> PathBuf;
}

impl Here for World {
    /// A client on machine-A, over the file store of the world's directory or `store`.
    fn licensing(&self, store: Option<Noting>) -> Licensing {
        let builder = self.builder(&self.dir, "machine-A");
        match store {
            Some(store) => builder.store(store),
            None => builder,
        }
        .build()
        .expect("licensing builds")
    }

    fn noting(&self) -> Noting {
        Noting {
            files: FileStore::new(PathBuf::from(&*self.dir)),
            writes: Arc::default(),
        }
    }

    /// The record's and the ledger's paths.
    fn files(&self) -> (PathBuf, PathBuf) {
        let mut record = None;
        let mut ledger = None;
        for entry in std::fs::read_dir(&*self.dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("v2-") && name.ends_with("-seq.cache") {
                ledger = Some(path);
            } else if name.ends_with("-clock.cache") {
                continue;
            } else if name.starts_with("v2-") && name.ends_with(".cache") {
                record = Some(path);
            }
        }
        (record.expect("a record"), ledger.expect("a ledger"))
    }

    /// The clock note's path (it may not exist yet).
    fn note(&self) -> PathBuf {
        let (record, _) = self.files();
        let name = record.file_name().unwrap().to_string_lossy().into_owned();
        record.with_file_name(name.replace(".cache", "-clock.cache"))
    }
}

/// A world whose client activated a minute ago and has checked from the cache since.
fn activated_and_cached(name: &str) -> (World, Licensing) {
    let w = world(name);
    let l = w.licensing(None);
    activate(&l);
    w.clock.advance(60);
    from_cache(&l.check(DEMO_KEY));
    (w, l)
}

fn activate(l: &Licensing) {
    l.activate(&ActivateRequest::new(DEMO_KEY, "laptop"))
        .expect("activate answers")
        .accepted()
        .expect("activated");
}

#[track_caller]
fn from_cache(outcome: &CheckOutcome) {
    match outcome {
        CheckOutcome::Licensed { source, .. } => assert_eq!(*source, Source::Cache),
        other => panic!("expected licensed from the cache, got {other:?}"),
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn only_a_cached_answers_ledger_is_written_revertibly() {
    let w = world("which");
    let store = w.noting();
    let l = w.licensing(Some(store.clone()));

    // An activation is a verdict: everything durable (the ledger first: the slot had none).
    activate(&l);
    let writes = store.take();
    assert!(!writes.is_empty());
    assert!(
        writes.iter().all(|(_, how)| *how == How::Durable),
        "{writes:?}"
    );
    assert!(writes.contains(&(What::Ledger, How::Durable)), "{writes:?}");

    // A cached answer a minute later: the record durably, then its ledger revertibly, then
    // the clock note (there was none: the activation wrote the record).
    w.clock.advance(60);
    from_cache(&l.check(DEMO_KEY));
    let durable = [
        (What::Record, How::Durable),
        (What::Ledger, How::Revertible),
        (What::Clock, How::Volatile),
    ];
    assert_eq!(store.take(), durable);

    // Cached answers within a minute (a tenth of the clock tolerance) past the record's own
    // clock change only the clock: the note alone, no fsync, no rename. So does an answer at a
    // clock that did not move (counted in the note).
    for step in [1, 20, 38, 0] {
        w.clock.advance(step);
        // A new process each time: nothing remembered in memory.
        from_cache(&w.licensing(Some(store.clone())).check(DEMO_KEY));
        assert_eq!(store.take(), [(What::Clock, How::Volatile)], "+{step}");
    }
    // A minute past the record's clock: written durably again, and noted.
    w.clock.advance(1);
    from_cache(&w.licensing(Some(store.clone())).check(DEMO_KEY));
    assert_eq!(store.take(), durable);

    // An online success (the record is stale): a verdict, both durable.
    w.clock.advance(2 * HOUR);
    match l.check(DEMO_KEY) {
        CheckOutcome::Licensed { source, .. } => assert_eq!(source, Source::Online),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.take(),
        [(What::Record, How::Durable), (What::Ledger, How::Durable)]
    );

    // A denial: both durable.
    w.revoke();
    w.clock.advance(2 * HOUR);
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Inactive));
    assert_eq!(
        store.take(),
        [(What::Record, How::Durable), (What::Ledger, How::Durable)]
    );
}

/// What a power cut may leave after a cached answer: the new record with the ledger it had
/// before. The record is still trusted: offline, the next launches are licensed from the
/// cache with the grace, and the held clock goes on being counted from there.
#[test]
fn a_ledger_come_back_after_a_cached_answer_still_trusts_the_record() {
    let (w, l) = activated_and_cached("ledger-back");

    let (record, ledger) = w.files();
    let ledger_before = read(&ledger);
    w.clock.advance(60);
    from_cache(&l.check(DEMO_KEY));
    assert_ne!(
        read(&ledger),
        ledger_before,
        "a cached answer bumps the ledger"
    );
    std::fs::write(&ledger, &ledger_before).unwrap();

    // A new process (a fresh client: no memo), Polar out of reach, the record stale.
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.advance(2 * HOUR);
    let l = w.licensing(None);
    from_cache(&l.check(DEMO_KEY));
    // And it was counted: the record and the ledger moved on together.
    let after = read(&record);
    from_cache(&l.check(DEMO_KEY));
    assert_ne!(read(&record), after);
}

/// What happens to the slot's files after every launch of [`held_clock_answers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Between {
    Nothing,
    /// The ledger put back as it was before the launch (what a power cut may do each time).
    LedgerBack,
    /// The clock note lost (a crash before the page cache reached the disk, or deleted).
    NoteLost,
    /// The clock note torn: half of it written.
    NoteTorn,
}

/// Launches (a new client each) at a clock that does not move, Polar out of reach, until the
/// cache stops answering: how many it licensed. `held_after` seconds after the activation: a
/// clock held right at the record's own clock (0), or a little past it (inside the span a
/// clock note alone records).
fn held_clock_answers(name: &str, held_after: i64, between: Between) -> usize {
    let w = world(name);
    activate(&w.licensing(None));
    let (_, ledger) = w.files();
    let note = w.note();
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.advance(held_after);
    let mut answers = 0;
    loop {
        let previous = read(&ledger);
        let outcome = w.licensing(None).check(DEMO_KEY);
        if !outcome.is_licensed() {
            assert_eq!(outcome.reason(), Some(Reason::ClockRollback), "{outcome:?}");
            return answers;
        }
        answers += 1;
        assert!(
            answers <= 100,
            "a held clock was never stopped ({between:?})"
        );
        match between {
            Between::Nothing => {}
            Between::LedgerBack => std::fs::write(&ledger, &previous).unwrap(),
            Between::NoteLost => {
                let _ = std::fs::remove_file(&note);
            }
            Between::NoteTorn => {
                let bytes = read(&note);
                std::fs::write(&note, &bytes[..bytes.len() / 2]).unwrap();
            }
        }
    }
}

/// A held clock is counted across ledgers that came back, and across clock notes lost or
/// torn: it is stopped after as many answers as without them, held at the record's clock or
/// a little past it.
#[test]
fn a_ledger_come_back_or_a_lost_note_does_not_reset_the_held_clock() {
    let plain = held_clock_answers("held-plain", 0, Between::Nothing);
    assert!((2..=40).contains(&plain), "{plain}");
    for (name, after, between) in [
        ("held-back", 0, Between::LedgerBack),
        ("held-lost", 0, Between::NoteLost),
        ("held-torn", 0, Between::NoteTorn),
        ("held-past", 30, Between::Nothing),
        ("held-past-lost", 30, Between::NoteLost),
        ("held-past-torn", 30, Between::NoteTorn),
        ("held-past-back", 30, Between::LedgerBack),
    ] {
        // Held past the record's clock, the first answer moved the clock: one more.
        let expected = plain + usize::from(after > 0);
        assert_eq!(
            held_clock_answers(name, after, between),
            expected,
            "{name}: held {after} s past the record's clock, {between:?}"
        );
    }
}

/// The clock a note records counts for the rollback rule as the record's own does: a clock
/// set back more than the tolerance from the last answer's (noted only) is `clock_rollback`,
/// though it is within the tolerance of the clock the record itself holds.
#[test]
fn a_noted_clock_counts_for_rollback() {
    let w = world("noted-rollback");
    let store = w.noting();
    activate(&w.licensing(Some(store.clone())));
    w.clock.advance(10);
    from_cache(&w.licensing(Some(store.clone())).check(DEMO_KEY)); // durable, noted
    w.clock.advance(50);
    from_cache(&w.licensing(Some(store.clone())).check(DEMO_KEY));
    assert_eq!(store.take().last(), Some(&(What::Clock, How::Volatile)));
    // 601 s before the noted clock, 551 s before the record's own: past the tolerance (600 s)
    // only as the note tells it.
    w.clock.advance(-601);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let outcome = w.licensing(Some(store.clone())).check(DEMO_KEY);
    assert_eq!(outcome.reason(), Some(Reason::ClockRollback), "{outcome:?}");
}

/// A denial's writes stay durable, and a record put back after one is still refused.
#[test]
fn a_record_put_back_after_a_denial_is_still_refused() {
    let (w, l) = activated_and_cached("denial");
    let (record, _) = w.files();
    let good = read(&record);

    w.revoke();
    w.clock.advance(2 * HOUR);
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Inactive));
    std::fs::write(&record, &good).unwrap();
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.clock.advance(60);
    let outcome = w.licensing(None).check(DEMO_KEY);
    assert!(!outcome.is_licensed(), "{outcome:?}");
}
