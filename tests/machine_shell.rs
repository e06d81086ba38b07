//! The check machine against a shell that does not do as it is asked (issue #44: the order of a
//! check's steps is the core's, so a shell that answers another question than the one asked, or
//! stops before the end, cannot come away with a grant).
//!
//! A shell over a map of entries and the emulator (real HTTP over loopback) drives checks of
//! three slots (no record; a fresh record; a record past `revalidate_after`), both as the
//! native clients drive them and as the browser's does (`unlocked_read`). Played again with, at
//! every step in turn, an answer of every other kind: Polar's real 200 where a read was asked,
//! the slot's real bytes where a response was, a lock, a write… Every such check must end
//! unverified, saying which answer came in which state, with no lock left held. A shell that
//! stops at any step and takes the report licenses only where Polar's 200 had come, or once a
//! cached answer's writes were all done. A validate's machine, the same way: no lock left held,
//! and no grant where Polar's answer was not given.

#![cfg(not(target_arch = "wasm32"))]

use polar_license::flow::check::Check;
use polar_license::flow::update::Update;
use polar_license::flow::{Ctx, Given, Machine, Memo, Stored, Want};
use polar_license::flow::{Keep, LeaseMemo, Slot};
use polar_license::lease::{Builtin, RelayKeys};
use polar_license::proto::{Api, Server};
use polar_license::{
    CheckOutcome, GracePolicy, HttpResponse, Key, Reason, Source, Transport, UreqTransport,
    ValidateRequest, Verdict,
};
use polar_license_emulator::DEMO_KEY;
use polar_license_testkit::World;
use std::collections::HashMap;
use std::sync::Arc;

/// Every kind of answer a shell can give, by the name the machine reports it under.
const KINDS: [&str; 9] = [
    "locked", "unlocked", "marked", "read", "loaded", "written", "removed", "response", "verified",
];

/// The kind of answer `want` asks for (`None`: done).
fn asked(want: &Want<'_>) -> Option<&'static str> {
    Some(match want {
        Want::Lock(_) => "locked",
        Want::Unlock => "unlocked",
        Want::Mark(_) => "marked",
        Want::Read(_) => "read",
        Want::Load(_) => "loaded",
        Want::Write { .. } => "written",
        Want::Remove(_) => "removed",
        Want::Send(_) => "response",
        Want::Verify => "verified",
        Want::Portal(_) => "response",
        Want::Wait(_) => "waited",
        Want::Clock => "clock",
        Want::Done => return None,
    })
}

/// What the client is: the emulator's routes, the default policy, unsigned.
struct Client {
    api: Api,
    policy: GracePolicy,
    keys: RelayKeys,
    slot: Arc<Slot>,
    polar: UreqTransport,
}

/// What one drive did.
struct Drive {
    /// The shell stopped before the end ([`Fault::Stop`]).
    stopped: bool,
    /// The slot's lock is still held at the end.
    held: bool,
    /// Polar's 200 was given to the machine.
    granted: bool,
    /// The kinds asked, in order.
    asked: Vec<&'static str>,
    steps: usize,
}

/// How a drive goes wrong on purpose.
#[derive(Clone, Copy)]
enum Fault {
    None,
    /// At this step, an answer of this kind instead of the one asked.
    Answer(usize, &'static str),
    /// The shell stops before this step and takes the report.
    Stop(usize),
    /// From this step on, every answer is of another kind than the one asked.
    WrongFrom(usize),
}

/// Real answers of each kind, for the wrong-answer drives: a record and Polar's 200.
struct Loot {
    stored: Stored,
    granted: HttpResponse,
}

/// A slot's entries by name.
type Entries = HashMap<String, Vec<u8>>;

/// How a drive goes wrong, and the real answers a wrong one is made of.
type Faulty<'a> = (Fault, Option<&'a Loot>);

/// A check's outcome and its drive.
type Checked = (CheckOutcome, Drive);

/// What a drive is given besides the machine: the client's memos, fresh for each.
#[derive(Default)]
struct Memos {
    memo: Memo,
    lease: LeaseMemo,
}

impl Client {
    fn ctx<'a>(&'a self, memos: &'a Memos) -> Ctx<'a> {
        Ctx {
            api: &self.api,
            policy: &self.policy,
            relay_keys: &self.keys,
            lease_memo: &memos.lease,
            ed25519: &Builtin,
            memo: &memos.memo,
            machine: None,
            bound: true,
            require_activation: false,
            random: None,
            clock: None,
        }
    }

    /// A check of the demo key, read as the browser reads (`unlocked_read`) or as the native
    /// clients do, driven over `entries` at `now`.
    fn check(&self, entries: &mut Entries, now: i64, browser: bool, fault: Faulty<'_>) -> Checked {
        let memos = Memos::default();
        let ctx = self.ctx(&memos);
        let slot = Ok(Arc::clone(&self.slot));
        let check = Check::new(&ctx, Key::new(DEMO_KEY), None, slot, now, 0);
        let mut check = if browser {
            check.unlocked_read()
        } else {
            check
        };
        let drive = self.drive(&ctx, &mut check, entries, fault);
        (check.report().outcome, drive)
    }

    /// A validate of the demo key: whether Polar's grant was its answer.
    fn validate(&self, entries: &mut Entries, now: i64, fault: Faulty<'_>) -> (bool, Drive) {
        let memos = Memos::default();
        let ctx = self.ctx(&memos);
        let req = ValidateRequest::new(Key::new(DEMO_KEY));
        let mut update = Update::validate(&ctx, req, |_| Ok(Arc::clone(&self.slot)), now);
        let drive = self.drive(&ctx, &mut update, entries, fault);
        let accepted = matches!(update.validated().online, Ok(Verdict::Accepted(_)));
        (accepted, drive)
    }

    /// The shell: does what `machine` asks over `entries` and the emulator, but for `fault`.
    fn drive<M: Machine>(
        &self,
        ctx: &Ctx<'_>,
        machine: &mut M,
        entries: &mut Entries,
        (fault, loot): Faulty<'_>,
    ) -> Drive {
        let mut d = Drive {
            stopped: false,
            held: false,
            granted: false,
            asked: Vec::new(),
            steps: 0,
        };
        loop {
            assert!(d.steps < 100, "a machine that never ends: {:?}", d.asked);
            if matches!(fault, Fault::Stop(at) if at == d.steps) {
                d.stopped = true;
                return d;
            }
            let want = machine.want();
            let Some(kind) = asked(&want) else {
                return d;
            };
            d.asked.push(kind);
            let given = match fault {
                Fault::Answer(at, wrong) if at == d.steps => {
                    wrong_answer(wrong, loot.expect("what a wrong answer gives"))
                }
                Fault::WrongFrom(from) if d.steps >= from => {
                    let wrong = if kind == "response" {
                        "read"
                    } else {
                        "response"
                    };
                    wrong_answer(wrong, loot.expect("what a wrong answer gives"))
                }
                _ => match want {
                    Want::Lock(_) => {
                        d.held = true;
                        Given::Locked(Ok(()))
                    }
                    Want::Unlock => {
                        d.held = false;
                        Given::Unlocked
                    }
                    Want::Mark(_) => Given::Marked(true),
                    Want::Read(slot) => Given::Read(Ok(Stored {
                        record: entries.get(&slot.name).cloned(),
                        ledger: entries.get(&slot.ledger).cloned(),
                        clock: entries.get(&slot.clock).cloned(),
                    })),
                    Want::Load(name) => Given::Loaded(Ok(entries.get(name).cloned())),
                    Want::Write {
                        name, bytes, keep, ..
                    } => {
                        assert!(
                            d.held || keep == Keep::Volatile,
                            "a {keep:?} write of {name} without the lock: {:?}",
                            d.asked
                        );
                        entries.insert(name.to_string(), bytes.to_vec());
                        Given::Written(Ok(()))
                    }
                    Want::Remove(name) => {
                        entries.remove(name);
                        Given::Removed
                    }
                    Want::Send(request) => {
                        Given::Response(self.polar.send(request).map_err(Into::into))
                    }
                    Want::Verify | Want::Done | Want::Portal(_) | Want::Wait(_) | Want::Clock => {
                        Given::Verified
                    }
                },
            };
            if let Given::Response(Ok(r)) = &given {
                d.granted |= r.status == 200;
            }
            machine.give(ctx, given);
            d.steps += 1;
        }
    }
}

/// An answer of `kind`, as real as the shell can make it.
fn wrong_answer(kind: &str, loot: &Loot) -> Given {
    match kind {
        "locked" => Given::Locked(Ok(())),
        "unlocked" => Given::Unlocked,
        "marked" => Given::Marked(true),
        "read" => Given::Read(Ok(loot.stored.clone())),
        "loaded" => Given::Loaded(Ok(loot.stored.record.clone())),
        "written" => Given::Written(Ok(())),
        "removed" => Given::Removed,
        "response" => Given::Response(Ok(loot.granted.clone())),
        _ => Given::Verified,
    }
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// A slot's entries as a check finds them, named, with the clock reading it is checked at.
type Scenario = (&'static str, Entries, i64);

/// The three slots (no record, a fresh one, one to revalidate) with the clock reading of each.
fn scenarios(client: &Client) -> (Vec<Scenario>, Loot) {
    let now = unix_now();
    let mut entries = HashMap::new();
    let (first, drive) = client.check(&mut entries, now, false, (Fault::None, None));
    assert!(first.is_licensed(), "{:?}", first.reason());
    assert!(drive.asked.contains(&"response"), "{:?}", drive.asked);
    let stored = Stored {
        record: entries.get(&client.slot.name).cloned(),
        ledger: entries.get(&client.slot.ledger).cloned(),
        clock: entries.get(&client.slot.clock).cloned(),
    };
    assert!(stored.record.is_some(), "the grant was not written");
    let request = ValidateRequest::new(Key::new(DEMO_KEY));
    let http = client.api.validate_request(&request).expect("a request");
    let granted = client.polar.send(&http).expect("Polar's answer");
    assert_eq!(granted.status, 200);
    let stale = now + i64::try_from(client.policy.revalidate_after.as_secs()).unwrap_or(0) + 60;
    let scenarios = vec![
        ("no record", HashMap::new(), now),
        ("a fresh record", entries.clone(), now + 1),
        ("a record to revalidate", entries, stale),
    ];
    (scenarios, Loot { stored, granted })
}

fn client(world: &World) -> Client {
    let url = world.polar.url();
    let org = world.polar.organization_id();
    let api = Api::new(&org, &Server::Custom(url.clone())).expect("the emulator's routes");
    let slot = Slot::new(&url, &org, &Key::new(DEMO_KEY), b"install", None, None);
    Client {
        api,
        policy: GracePolicy::default(),
        keys: RelayKeys::default(),
        slot: Arc::new(slot),
        polar: UreqTransport::default(),
    }
}

/// One check played: a scenario's slot, read as the browser or the native clients read it, and
/// its honest drive.
struct Case<'a> {
    name: &'a str,
    entries: &'a Entries,
    now: i64,
    browser: bool,
    honest: Drive,
}

impl Case<'_> {
    /// The check again, with `fault`.
    fn check(&self, client: &Client, fault: Faulty<'_>) -> Checked {
        client.check(&mut self.entries.clone(), self.now, self.browser, fault)
    }

    /// Where a failure is, for its message.
    fn at(&self, what: &str) -> String {
        format!("{} (browser {}), {what}", self.name, self.browser)
    }
}

/// Plays `play` for each scenario read both ways, after an honest check of it that licenses
/// and leaves no lock held.
fn each_check(label: &str, mut play: impl FnMut(&Client, &Loot, &Case<'_>)) {
    let world = World::new(label);
    let client = client(&world);
    let (scenarios, loot) = scenarios(&client);
    for browser in [false, true] {
        for (name, entries, now) in &scenarios {
            let honest = client.check(&mut entries.clone(), *now, browser, (Fault::None, None));
            let (outcome, honest) = honest;
            assert!(outcome.is_licensed(), "{name}: {:?}", outcome.reason());
            assert!(!honest.held, "{name}: the lock left held");
            let case = Case {
                name,
                entries,
                now: *now,
                browser,
                honest,
            };
            play(&client, &loot, &case);
        }
    }
}

#[test]
fn an_answer_of_another_kind_at_any_step_ends_the_check_unverified_and_unlocked() {
    let mut played = 0;
    each_check("machine-shell-answers", |client, loot, case| {
        for (step, right) in case.honest.asked.iter().enumerate() {
            for wrong in KINDS.iter().filter(|k| *k != right) {
                let at = case.at(&format!("step {step} ({right}): {wrong}"));
                let (outcome, d) = case.check(client, (Fault::Answer(step, wrong), Some(loot)));
                let CheckOutcome::Unverified(e) = &outcome else {
                    panic!("{at}: {:?} after {:?}", outcome.reason(), d.asked);
                };
                let detail = e.detail();
                assert!(
                    detail.contains(&format!("answered {wrong} in ")),
                    "{at}: {detail}"
                );
                assert!(!d.held, "{at}: the lock left held after {:?}", d.asked);
                played += 1;
            }
        }
    });
    // At least a read and an answer at each of six drives, seven wrong kinds each.
    assert!(played >= 6 * 2 * 7, "{played}");
}

#[test]
fn a_shell_that_answers_everything_wrong_from_any_step_on_still_ends_the_check() {
    each_check("machine-shell-wrong", |client, loot, case| {
        for from in 0..case.honest.steps {
            // `drive` also fails a machine that asks a hundred times.
            let (outcome, d) = case.check(client, (Fault::WrongFrom(from), Some(loot)));
            let at = case.at(&format!("wrong from step {from}"));
            assert!(!outcome.is_licensed(), "{at}: licensed after {:?}", d.asked);
            // The wrong answer, and at most its release asked again.
            assert!(d.steps <= from + 2, "{at}: {:?}", d.asked);
        }
    });
}

#[test]
fn a_shell_that_stops_early_licenses_only_on_polars_grant_or_a_cached_answer_written() {
    each_check("machine-shell-stops", |client, _, case| {
        for stop in 0..case.honest.steps {
            let (outcome, d) = case.check(client, (Fault::Stop(stop), None));
            assert!(d.stopped && d.steps == stop);
            let at = case.at(&format!("stopped before step {stop}"));
            // Without Polar's 200, a license only once nothing but the lock's release is
            // left: a cached answer is given after its writes.
            let only_release_left = case.honest.asked[stop..].iter().all(|k| *k == "unlocked");
            assert!(
                !outcome.is_licensed() || d.granted || only_release_left,
                "{at}: licensed without Polar's grant after {:?} of {:?}",
                d.asked,
                case.honest.asked
            );
        }
    });
}

#[test]
fn a_validate_answered_otherwise_leaves_no_lock_and_grants_only_on_polars_answer() {
    let world = World::new("machine-shell-validate");
    let client = client(&world);
    let (scenarios, loot) = scenarios(&client);
    let fault = |f| (f, Some(&loot));
    for (name, entries, now) in &scenarios {
        let (accepted, honest) = client.validate(&mut entries.clone(), *now, (Fault::None, None));
        assert!(accepted && honest.granted && !honest.held, "{name}");
        assert!(
            honest.asked.contains(&"written"),
            "{name}: {:?}",
            honest.asked
        );
        let polar_at = honest.asked.iter().position(|k| *k == "response");
        for (step, right) in honest.asked.iter().enumerate() {
            for wrong in KINDS.iter().filter(|k| *k != right) {
                let at = format!("{name}, step {step} ({right}): {wrong}");
                let answer = fault(Fault::Answer(step, wrong));
                let (accepted, d) = client.validate(&mut entries.clone(), *now, answer);
                assert!(!d.held, "{at}: the lock left held after {:?}", d.asked);
                // Polar's answer is the validate's: none came when the request was answered
                // otherwise, whatever was given instead.
                if *right == "response" {
                    assert!(!accepted, "{at}: accepted without Polar's answer");
                }
            }
            // Every answer wrong from here on: it still ends (the wrong answer, and at most
            // its release asked again), with no grant where Polar's answer never came.
            let from = fault(Fault::WrongFrom(step));
            let (accepted, d) = client.validate(&mut entries.clone(), *now, from);
            let at = format!("{name}, wrong from step {step}");
            assert!(d.steps <= step + 2, "{at}: {:?}", d.asked);
            if polar_at.is_some_and(|p| step <= p) {
                assert!(!accepted, "{at}: accepted without Polar's answer");
            }
        }
    }
}

/// Issue #63 item 5: a validate's outcome is the core's, which every face passes through:
/// Polar's grant licensed online with no grace counted, verified at the clock reading the
/// machine was given (not one a face reads itself); input refused is unverified, as a
/// check's.
#[test]
fn a_validates_outcome_is_the_cores_at_the_machines_clock() {
    let world = World::new("machine-shell-validate-outcome");
    let client = client(&world);
    let memos = Memos::default();
    let ctx = client.ctx(&memos);
    let now = unix_now() + 12_345;
    let validate = |key: &str| {
        let req = ValidateRequest::new(Key::new(key));
        let mut update = Update::validate(&ctx, req, |_| Ok(Arc::clone(&client.slot)), now);
        let drive = client.drive(&ctx, &mut update, &mut HashMap::new(), (Fault::None, None));
        assert!(!drive.held, "the lock left held");
        update.validated()
    };
    let validated = validate(DEMO_KEY);
    assert_eq!(validated.verified_at, now);
    match validated.outcome() {
        CheckOutcome::Licensed {
            source,
            grace_remaining,
            verified_at,
            ..
        } => {
            assert_eq!(source, Source::Online);
            assert_eq!(grace_remaining, None);
            assert_eq!(verified_at, now);
        }
        other => panic!("not licensed: {other:?}"),
    }
    let refused = validate("").outcome();
    assert_eq!(refused.reason(), Some(Reason::InvalidInput), "{refused:?}");
}

/// Two checkers of one key at once (two tabs, two processes), both asking Polar
/// (`revalidate_after: 0`, a zero clock tolerance) and neither reaching it: the first read its
/// clock and the slot, and while its request was out the second, a second later, fell back to
/// the cache and stored its answer. The first folds its failure into the slot read again under
/// the lock: that record's latest time is a second past the reading the first began with, but
/// the clock read after it is not, and no clock moved back: the grace answers. Before, the
/// fold judged the record at the first reading: `clock_rollback` (CI of 2026-11-28, 1 of 600
/// page-rounds of the browser tabs test over IndexedDB). Both as the native clients read and as
/// the browser does.
#[test]
fn a_record_stored_while_a_check_asked_polar_is_no_clock_moved_back() {
    use polar_license_emulator::Fault as PolarFault;
    use std::cell::Cell;
    let world = World::new("machine-shell-clock-race");
    let mut client = client(&world);
    let (scenarios, _) = scenarios(&client);
    client.policy = GracePolicy {
        clock_tolerance: std::time::Duration::ZERO,
        revalidate_after: std::time::Duration::ZERO,
        ..GracePolicy::default()
    };
    world.polar.set_fault(Some(PolarFault::CloseImmediately));
    let (_, fresh, t0) = &scenarios[1];
    for browser in [false, true] {
        let at = format!("browser {browser}");
        let reading = Cell::new(*t0);
        let clock = || reading.get();
        let memos = Memos::default();
        let ctx = Ctx {
            clock: Some(&clock),
            ..client.ctx(&memos)
        };
        let start = || {
            let slot = Ok(Arc::clone(&client.slot));
            let check = Check::new(&ctx, Key::new(DEMO_KEY), None, slot, *t0, 0);
            if browser {
                check.unlocked_read()
            } else {
                check
            }
        };
        // Where the first check sends its request, from an honest drive of the same slot.
        let (_, honest) = client.check(&mut fresh.clone(), *t0, browser, (Fault::None, None));
        let send = honest.asked.iter().position(|k| *k == "response");
        let send = send.unwrap_or_else(|| panic!("{at}: no request in {:?}", honest.asked));
        let mut entries = fresh.clone();
        let mut first = start();
        let before = client.drive(&ctx, &mut first, &mut entries, (Fault::Stop(send), None));
        assert!(before.stopped && !before.held, "{at}: {:?}", before.asked);
        // The second checker, a second later, offline too: the cache answers and is noted.
        reading.set(t0 + 1);
        let (second, _) = client.check(&mut entries, t0 + 1, browser, (Fault::None, None));
        assert!(second.is_licensed(), "{at}: the second checker: {second:?}");
        // The first check's request fails; it reads the slot again and falls back.
        let after = client.drive(&ctx, &mut first, &mut entries, (Fault::None, None));
        assert!(!after.held, "{at}: the lock left held");
        match first.report().outcome {
            CheckOutcome::Licensed { source, .. } => assert_eq!(source, Source::Cache, "{at}"),
            other => panic!("{at}: the first check, offline: {other:?}"),
        }
    }
}
