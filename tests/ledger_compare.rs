//! The ledger's compare-and-set is the machines' step (issue #63 item 5): every write of a
//! slot's record or ledger carries the ledger as the machine last read or wrote it
//! ([`Compare`]), and a write whose compare fails (another writer's newer ledger, where the
//! lock is not shared: another tab or process) stores nothing, ends as the cache's error, and
//! leaves the other writer's record where it is (a denial's tombstone that lost is not followed
//! by removing the record).
//!
//! A shell over a map of entries and the emulator (real HTTP over loopback) does the compare as
//! the machine asks (as license.js and the Rust-on-wasm shell do); at the first ordered write,
//! "another writer" stores its own record and ledger first. A shell that writes without the
//! compare is the control: there the other writer's record is lost.

#![cfg(not(target_arch = "wasm32"))]

use polar_license::flow::check::Check;
use polar_license::flow::update::Update;
use polar_license::flow::{Compare, Ctx, Given, Machine, Memo, Stored, Want};
use polar_license::flow::{LeaseMemo, Slot};
use polar_license::lease::{Builtin, RelayKeys};
use polar_license::proto::{Api, Server};
use polar_license::{GracePolicy, Key, Transport, UreqTransport, ValidateRequest};
use polar_license_emulator::DEMO_KEY;
use polar_license_testkit::World;
use std::collections::HashMap;
use std::sync::Arc;

const OTHER_RECORD: &[u8] = b"another writer's record";
const OTHER_LEDGER: &[u8] = b"another writer's ledger";

/// A slot's entries by name.
type Entries = HashMap<String, Vec<u8>>;

struct Client {
    api: Api,
    policy: GracePolicy,
    keys: RelayKeys,
    polar: UreqTransport,
    url: String,
    org: String,
}

/// How the shell stores what a machine writes.
#[derive(Clone, Copy, PartialEq)]
enum Writes {
    /// The compare first, as the machine asks (as license.js and the Rust-on-wasm shell do).
    Compared,
    /// As if there were no compare (the control).
    Uncompared,
    /// Every write fails (a full disk): not late.
    Fail,
}

/// What one drive saw.
#[derive(Default)]
struct Seen {
    /// The compares of the ordered writes, as (entry written, the ledger's bytes compared).
    compares: Vec<(String, Option<Vec<u8>>)>,
    /// Writes of the record or ledger that came without a compare.
    uncompared: Vec<String>,
    removed: Vec<String>,
    late: usize,
}

impl Client {
    fn new(world: &World) -> Client {
        let url = world.polar.url();
        let org = world.polar.organization_id();
        Client {
            api: Api::new(&org, &Server::Custom(url.clone())).expect("the emulator's routes"),
            policy: GracePolicy::default(),
            keys: RelayKeys::default(),
            polar: UreqTransport::default(),
            url,
            org,
        }
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        Arc::new(Slot::new(
            &self.url,
            &self.org,
            &Key::new(key),
            b"install",
            None,
            None,
        ))
    }

    fn ctx<'a>(&'a self, memo: &'a Memo, lease: &'a LeaseMemo) -> Ctx<'a> {
        Ctx {
            api: &self.api,
            policy: &self.policy,
            relay_keys: &self.keys,
            lease_memo: lease,
            ed25519: &Builtin,
            memo,
            machine: None,
            bound: true,
            require_activation: false,
            random: None,
            clock: None,
        }
    }

    /// Drives `machine` over `entries`; with `meanwhile`, another writer stores its record and
    /// ledger just before the first write of the slot's record or ledger; `writes`: how the
    /// shell stores.
    fn drive<M: Machine>(
        &self,
        ctx: &Ctx<'_>,
        machine: &mut M,
        slot: &Slot,
        entries: &mut Entries,
        meanwhile: bool,
        writes: Writes,
    ) -> Seen {
        let mut seen = Seen::default();
        let mut other = meanwhile;
        for _ in 0..100 {
            let given = match machine.want() {
                Want::Lock(_) => Given::Locked(Ok(())),
                Want::Unlock => Given::Unlocked,
                Want::Mark(_) => Given::Marked(true),
                Want::Read(slot) => Given::Read(Ok(stored(entries, slot))),
                Want::Load(name) => Given::Loaded(Ok(entries.get(name).cloned())),
                Want::Write {
                    name,
                    bytes,
                    compare,
                    ..
                } => {
                    let ordered = name == slot.name || name == slot.ledger;
                    if ordered && std::mem::take(&mut other) {
                        entries.insert(slot.name.clone(), OTHER_RECORD.to_vec());
                        entries.insert(slot.ledger.clone(), OTHER_LEDGER.to_vec());
                    }
                    match compare {
                        Some(c) => {
                            assert_eq!(c.ledger, slot.ledger, "the compare names the ledger");
                            seen.compares
                                .push((name.to_string(), c.holds.map(<[u8]>::to_vec)));
                        }
                        None if ordered => seen.uncompared.push(name.to_string()),
                        None => {}
                    }
                    let late = compare.filter(|_| writes == Writes::Compared).is_some_and(
                        |c: Compare<'_>| !c.holds(entries.get(c.ledger).map(|v| &v[..])),
                    );
                    if writes == Writes::Fail {
                        Given::Written(Err(polar_license::Error::Cache {
                            detail: "disk full".to_string(),
                        }))
                    } else if late {
                        seen.late += 1;
                        Given::Late
                    } else {
                        entries.insert(name.to_string(), bytes.to_vec());
                        Given::Written(Ok(()))
                    }
                }
                Want::Remove(name) => {
                    seen.removed.push(name.to_string());
                    entries.remove(name);
                    Given::Removed
                }
                Want::Send(request) => {
                    Given::Response(self.polar.send(request).map_err(Into::into))
                }
                Want::Verify | Want::Portal(_) | Want::Wait(_) | Want::Clock => Given::Verified,
                Want::Done => return seen,
            };
            machine.give(ctx, given);
        }
        panic!("a machine that never ends");
    }

    /// `op` of `key` over `entries`: its cache error, and what the drive saw.
    fn run(
        &self,
        key: &str,
        entries: &mut Entries,
        op: Op,
        (meanwhile, writes): How,
    ) -> (Option<String>, Seen) {
        let (memo, lease) = (Memo::default(), LeaseMemo::default());
        let ctx = self.ctx(&memo, &lease);
        let slot = self.slot(key);
        let (key, now) = (Key::new(key), unix_now());
        match op {
            Op::Check { browser } => {
                let check = Check::new(&ctx, key, None, Ok(Arc::clone(&slot)), now, 0);
                let mut check = if browser {
                    check.unlocked_read()
                } else {
                    check
                };
                let seen = self.drive(&ctx, &mut check, &slot, entries, meanwhile, writes);
                (check.report().cache_error.map(|e| e.detail()), seen)
            }
            Op::Validate => {
                let req = ValidateRequest::new(key);
                let mut update = Update::validate(&ctx, req, |_| Ok(Arc::clone(&slot)), now);
                let seen = self.drive(&ctx, &mut update, &slot, entries, meanwhile, writes);
                (update.validated().cache_error.map(|e| e.detail()), seen)
            }
        }
    }
}

/// Whether another writer stores its record and ledger before the first ordered write, and
/// how the shell stores.
type How = (bool, Writes);
/// Nobody else writes; the shell compares as asked.
const ALONE: How = (false, Writes::Compared);
/// Another writer stores first; the shell compares as asked.
const RACED: How = (true, Writes::Compared);

/// What a drive runs: a check (read as the browser reads, or as the native clients do), or a
/// validate.
#[derive(Clone, Copy)]
enum Op {
    Check { browser: bool },
    Validate,
}

/// The slot's bytes as `entries` hold them.
fn stored(entries: &Entries, slot: &Slot) -> Stored {
    let entry = |name: &String| entries.get(name).cloned();
    Stored {
        record: entry(&slot.name),
        ledger: entry(&slot.ledger),
        clock: entry(&slot.clock),
    }
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The other writer's record and ledger are still the slot's.
fn kept(client: &Client, key: &str, entries: &Entries) -> bool {
    let slot = client.slot(key);
    entries.get(&slot.name).map(Vec::as_slice) == Some(OTHER_RECORD)
        && entries.get(&slot.ledger).map(Vec::as_slice) == Some(OTHER_LEDGER)
}

#[test]
fn every_write_of_the_record_or_ledger_compares_the_ledger_as_last_read_or_written() {
    let world = World::new("ledger-compare-honest");
    let client = Client::new(&world);
    for browser in [false, true] {
        let mut entries = Entries::new();
        let (error, first) = client.run(DEMO_KEY, &mut entries, Op::Check { browser }, ALONE);
        assert_eq!(error, None, "browser {browser}");
        assert!(first.uncompared.is_empty(), "{:?}", first.uncompared);
        // The first record and its ledger: none read, then the ledger the machine wrote.
        let slot = client.slot(DEMO_KEY);
        let ledger = entries.get(&slot.ledger).cloned();
        assert!(ledger.is_some(), "the ledger was written");
        assert!(
            !first.compares.is_empty(),
            "browser {browser}: no compare asked"
        );
        assert_eq!(first.compares[0].1, None, "browser {browser}");
        assert_eq!(first.late, 0);
        // A validate after it compares with the ledger it reads.
        let (error, again) = client.run(DEMO_KEY, &mut entries, Op::Validate, ALONE);
        assert_eq!(error, None, "browser {browser}");
        assert!(again.uncompared.is_empty(), "{:?}", again.uncompared);
        assert_eq!(again.compares.first().map(|c| c.1.clone()), Some(ledger));
        assert_eq!(again.late, 0);
    }
}

#[test]
fn a_write_after_another_writer_stored_a_newer_ledger_stores_nothing() {
    let world = World::new("ledger-compare-late");
    let client = Client::new(&world);
    let late = |what: &str, error: Option<String>, seen: &Seen, entries: &Entries| {
        let error = error.unwrap_or_default();
        assert!(
            error.contains("a newer record of this key was stored meanwhile"),
            "{what}: {error:?}"
        );
        assert_eq!(seen.late, 1, "{what}");
        assert!(
            kept(&client, DEMO_KEY, entries),
            "{what}: the other writer's record was overwritten"
        );
        assert!(seen.removed.is_empty(), "{what}: {:?}", seen.removed);
    };
    for browser in [false, true] {
        let mut entries = Entries::new();
        let (error, seen) = client.run(DEMO_KEY, &mut entries, Op::Check { browser }, RACED);
        late(&format!("check, browser {browser}"), error, &seen, &entries);
    }
    let mut entries = Entries::new();
    let (error, seen) = client.run(DEMO_KEY, &mut entries, Op::Validate, RACED);
    late("validate", error, &seen, &entries);

    // The control: a shell that writes without the compare loses the other writer's record.
    let mut entries = Entries::new();
    let (error, seen) = client.run(
        DEMO_KEY,
        &mut entries,
        Op::Check { browser: true },
        (true, Writes::Uncompared),
    );
    assert_eq!(error, None);
    assert_eq!(seen.late, 0);
    assert!(
        !kept(&client, DEMO_KEY, &entries),
        "the other writer's record stayed without a compare"
    );
}

#[test]
fn a_denial_that_lost_its_compare_leaves_the_newer_record() {
    let world = World::new("ledger-compare-denial");
    let client = Client::new(&world);
    // A key Polar does not know: its denial is a tombstone the check writes, and removes the
    // record when the tombstone cannot be written.
    let key = "POLAR-UNKNOWN-KEY-0000";
    for browser in [false, true] {
        let mut entries = Entries::new();
        let (error, seen) = client.run(key, &mut entries, Op::Check { browser }, RACED);
        let error = error.unwrap_or_default();
        assert!(
            error.contains("stored meanwhile"),
            "browser {browser}: {error:?}"
        );
        assert_eq!(seen.late, 1);
        assert!(
            seen.removed.is_empty(),
            "browser {browser}: removed {:?}",
            seen.removed
        );
        assert!(kept(&client, key, &entries), "browser {browser}");
    }
    // A write that fails otherwise (not late) still removes the record: the rule is the
    // compare's alone.
    let (error, seen) = client.run(
        key,
        &mut Entries::new(),
        Op::Check { browser: false },
        (false, Writes::Fail),
    );
    assert_eq!(error.as_deref(), Some("disk full"));
    assert_eq!(seen.removed, vec![client.slot(key).name.clone()]);
}
