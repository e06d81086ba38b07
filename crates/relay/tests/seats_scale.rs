//! Seats at scale (issue #76, finding 6): a heartbeat changes its seat's end in the relay's
//! memory, and the store gets the pool at most once every `SNAPSHOT_SECONDS` (a key of 500
//! seats used to rewrite its ~70 KB pool at every heartbeat: a p99 of 15 ms in memory and
//! 23 ms on redb at 1,000 seats). What may not change with it: an acquisition, a release, a
//! seat culled or shed are written before their answer; an acquisition sees the ends held in
//! memory; a restart without a clean stop re-learns a live seat from its next heartbeat; a
//! clean stop writes what memory held. The rig's blocking host, the clock given by the test.

mod rig;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polar_license_emulator::{Emulator, DEMO_ORGANIZATION_ID};
use polar_license_relay::store::{
    Backend, BudgetState, Entry, EntryId, EntryKind, MemoryBackend, Narrow, Narrower, StoreError,
    StoreOptions, Updater, Writes,
};
use polar_license_relay::{RelayResponse, SeatOptions, SEATS_PREFIX, SNAPSHOT_SECONDS};
use serde_json::{json, Value};

/// A memory store that counts the seat pools it is given to write, and keeps the last.
#[derive(Default)]
struct Counting {
    inner: MemoryBackend,
    pool_writes: AtomicU64,
    last_pool: Mutex<Option<String>>,
}

impl Counting {
    fn writes(&self) -> u64 {
        self.pool_writes.load(Ordering::SeqCst)
    }

    /// The seats' ends in the pool as last written.
    fn stored_ends(&self) -> Vec<i64> {
        let last = self.last_pool.lock().expect("the last pool").clone();
        let pool: Value = serde_json::from_str(&last.expect("a pool written")).expect("JSON");
        pool["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .map(|s| s["until"].as_i64().expect("until"))
            .collect()
    }
}

impl Backend for Counting {
    fn get(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        self.inner.get(id)
    }
    fn index(&self, tag: &str) -> Result<Vec<EntryId>, StoreError> {
        self.inner.index(tag)
    }
    fn apply_webhook(&self, hook: &str, at: i64, updates: Writes<'_>) -> Result<bool, StoreError> {
        self.inner.apply_webhook(hook, at, updates)
    }
    fn update(&self, id: &EntryId, f: Updater<'_>) -> Result<Option<Entry>, StoreError> {
        let r = self.inner.update(id, f)?;
        if let Some(e) = r.as_ref().filter(|e| e.kind() == EntryKind::SeatPool) {
            self.pool_writes.fetch_add(1, Ordering::SeqCst);
            *self.last_pool.lock().expect("the last pool") = Some(e.body.clone());
        }
        Ok(r)
    }
    fn update_lazily(&self, id: &EntryId, f: Updater<'_>) -> Result<Option<Entry>, StoreError> {
        self.update(id, f)
    }
    fn narrow(&self, what: Narrow<'_>, f: Narrower<'_>) -> Result<Option<usize>, StoreError> {
        self.inner.narrow(what, f)
    }
    fn len(&self) -> Result<usize, StoreError> {
        self.inner.len()
    }
    fn cap_bytes(&self, max_bytes: u64) {
        self.inner.cap_bytes(max_bytes);
    }
    fn stored_bytes(&self) -> Option<u64> {
        self.inner.stored_bytes()
    }
    fn stage_budget(&self, state: BudgetState) {
        self.inner.stage_budget(state);
    }
    fn flush_budget(&self) -> Result<(), StoreError> {
        self.inner.flush_budget()
    }
    fn load_budget(&self) -> Result<Option<BudgetState>, StoreError> {
        self.inner.load_budget()
    }
}

fn relay_over(polar: &Emulator, backend: Arc<dyn Backend>) -> rig::Relayed {
    let mut config = rig::config(polar.url(), "seats-scale");
    config.limits = rig::unlimited();
    config.store = rig::store(backend, StoreOptions::default(), None);
    rig::relay(config, rig::upstream(Duration::from_secs(5)))
        .with_seats(SeatOptions::default())
        .expect("seat options")
}

/// The emulator, a key `SEATSCALE-{name}-…` of `limit` seats on it, a [`Counting`] store, and
/// a relay over that store.
fn counted(name: &str, limit: i64) -> (Emulator, String, Arc<Counting>, rig::Relayed) {
    let polar = rig::emulator();
    let key = rig::add_key(&polar, format!("SEATSCALE-{name}-4A5B6C"), Some(limit));
    let store = Arc::new(Counting::default());
    let relay = relay_over(&polar, Arc::clone(&store) as Arc<dyn Backend>);
    (polar, key, store, relay)
}

fn call(relay: &rig::Relayed, op: &str, body: Value, at: i64) -> (RelayResponse, Value) {
    let req = rig::request(&format!("{SEATS_PREFIX}{op}"), &[], &body.to_string());
    let r = relay.handle(&req, rig::at(at));
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r, v)
}

fn acquire(relay: &rig::Relayed, key: &str, machine: &str, at: i64) -> (RelayResponse, Value) {
    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "machine": machine});
    call(relay, "acquire", body, at)
}

fn heartbeat(
    relay: &rig::Relayed,
    key: &str,
    machine: &str,
    seat: &str,
    at: i64,
) -> (RelayResponse, Value) {
    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "machine": machine,
                      "seat": seat});
    call(relay, "heartbeat", body, at)
}

fn seat_of(answer: &(RelayResponse, Value)) -> String {
    let (r, v) = answer;
    assert_eq!(r.status, 200, "{v}");
    v["seat"].as_str().expect("a seat").to_string()
}

/// Issue #76, finding 6: heartbeats within a snapshot's interval write nothing to the store
/// (before: each rewrote the whole pool), the next one after it writes the pool with every
/// end held in memory; an acquisition and a cull are written at once. Fails on main before
/// the fix: each of the heartbeats is a write.
#[test]
fn heartbeats_write_the_pool_once_a_snapshot() {
    let (_polar, key, store, relay) = counted("SNAP", 3);
    let t = rig::now();
    let a = seat_of(&acquire(&relay, &key, "m-a", t));
    let b = seat_of(&acquire(&relay, &key, "m-b", t));
    assert_eq!(
        store.writes(),
        2,
        "each acquisition is written before its answer"
    );
    assert_eq!(store.stored_ends(), [t + 300, t + 300]);
    for i in 1..SNAPSHOT_SECONDS {
        for (m, seat) in [("m-a", &a), ("m-b", &b)] {
            let (r, v) = heartbeat(&relay, &key, m, seat, t + i);
            assert_eq!(r.status, 200, "{v}");
            assert_eq!(v["expires_in"], 300, "{v}");
        }
    }
    assert_eq!(
        store.writes(),
        2,
        "no heartbeat within {SNAPSHOT_SECONDS} s of the pool's last write writes it"
    );
    let last = t + SNAPSHOT_SECONDS - 1;
    // The snapshot: the pool with both ends held in memory.
    let (r, _) = heartbeat(&relay, &key, "m-a", &a, t + SNAPSHOT_SECONDS);
    assert_eq!(r.status, 200);
    assert_eq!(store.writes(), 3);
    assert_eq!(
        store.stored_ends(),
        [t + SNAPSHOT_SECONDS + 300, last + 300]
    );
    // A third machine's acquisition is written at once.
    let c = seat_of(&acquire(&relay, &key, "m-c", t + SNAPSHOT_SECONDS + 1));
    assert_eq!(store.writes(), 4);
    // Seat c not heard from: culled at its end by a heartbeat, which writes the pool at once.
    let (r, _) = heartbeat(&relay, &key, "m-a", &a, t + SNAPSHOT_SECONDS + 250);
    assert_eq!(r.status, 200);
    let beyond = t + SNAPSHOT_SECONDS + 302;
    let (r, _) = heartbeat(&relay, &key, "m-a", &a, beyond);
    assert_eq!(r.status, 200);
    assert_eq!(
        store.stored_ends().len(),
        1,
        "c culled and b too, written at once"
    );
    let (r, v) = heartbeat(&relay, &key, "m-c", &c, beyond + 1);
    assert_eq!((r.status, v["reason"].as_str()), (404, Some("seat_gone")));
}

/// What memory holds counts: a seat heartbeated in memory only (its stored end passed) is
/// still held against another machine's acquisition; a restart that did not stop cleanly
/// (the relay's memory lost, the store as the last snapshot left it) re-learns the seat from
/// its next heartbeat; a clean stop writes the ends memory held.
#[test]
fn memory_ends_count_and_a_restart_relearns_its_seats() {
    let (polar, key, store, relay) = counted("ONE", 1);
    let t = rig::now();
    let a = seat_of(&acquire(&relay, &key, "m-a", t));
    let (r, _) = heartbeat(&relay, &key, "m-a", &a, t + 2);
    assert_eq!(r.status, 200);
    assert_eq!(
        store.stored_ends(),
        [t + 300],
        "the heartbeat is in memory only"
    );
    // Past the stored end, within the heartbeat's: the seat is held.
    let (r, v) = acquire(&relay, &key, "m-b", t + 301);
    assert_eq!(
        (r.status, v["reason"].as_str()),
        (409, Some("seats_full")),
        "{v}"
    );
    // A crash: a new relay over the store as it is. The seat's next heartbeat within its
    // stored end finds it.
    let restarted = relay_over(&polar, Arc::clone(&store) as Arc<dyn Backend>);
    let (r, v) = heartbeat(&restarted, &key, "m-a", &a, t + 20);
    assert_eq!(r.status, 200, "{v}");
    assert_eq!(
        store.stored_ends(),
        [t + 320],
        "its first step since the restart is written"
    );
    let (r, _) = heartbeat(&restarted, &key, "m-a", &a, t + 21);
    assert_eq!(r.status, 200);
    assert_eq!(store.stored_ends(), [t + 320]);
    // A clean stop writes what memory held.
    let n = store.writes();
    restarted.flush_seats(rig::at(t + 22));
    assert_eq!(store.writes(), n + 1);
    assert_eq!(store.stored_ends(), [t + 321]);
    restarted.flush_seats(rig::at(t + 23));
    assert_eq!(store.writes(), n + 1, "nothing left to write");
}
