//! No lost acknowledgement (issue #45, item 2): the store's read-modify-writes run
//! concurrently, one held between its read and its write (a gate in a test backend wrapped
//! around each real backend), while another commits. A revocation acknowledged while a grant
//! is being kept, and two webhook deliveries racing, never end in a grant: on the memory
//! backend, the journal backend (the Workers relay's) and the redb file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod rig;

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polar_license::{Transport, UreqTransport};
use polar_license_emulator::Emulator;
use polar_license_relay::flow::Given;
use polar_license_relay::store::{
    Backend, JournalBackend, MemoryBackend, RedbBackend, StoreOptions,
};
use polar_license_relay::RelayRequest;
use polar_license_testkit::ScratchDir;
use rig::{at, ids_of, now, rfc3339, validate_request, webhook_emulator as emulator, Call};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A gate armed once: the step it holds says so (`reached`) and waits for `release`.
struct Gate {
    reached: Sender<()>,
    release: Receiver<()>,
}

/// The gates of a backend that holds one step of the relay's between its read and its write:
/// the next read-modify-write of an entry (an answer kept) when `keep` is armed, the next
/// webhook's narrowing when `webhook` is armed. Everything else goes straight to the backend
/// inside (the rig's [`rig::Hooked`], its hook these gates).
#[derive(Default)]
struct Gates {
    keep: Mutex<Option<Gate>>,
    webhook: Mutex<Option<Gate>>,
}

/// A backend behind its gates.
struct Gated {
    gates: Arc<Gates>,
    store: Arc<dyn Backend>,
}

/// The test's side of an armed gate.
struct Held {
    reached: Receiver<()>,
    release: Sender<()>,
}

fn arm(slot: &Mutex<Option<Gate>>) -> Held {
    let (reached_tx, reached_rx) = channel();
    let (release_tx, release_rx) = channel();
    *slot.lock().unwrap() = Some(Gate {
        reached: reached_tx,
        release: release_rx,
    });
    Held {
        reached: reached_rx,
        release: release_tx,
    }
}

/// Holds the caller here if the gate is armed (once).
fn pass(slot: &Mutex<Option<Gate>>) {
    let gate = slot.lock().unwrap().take();
    if let Some(g) = gate {
        let _ = g.reached.send(());
        let _ = g.release.recv_timeout(Duration::from_secs(60));
    }
}

fn key(polar: &Emulator, name: &str) -> String {
    rig::add_key(polar, format!("RACE-{name}-4A5B6C"), Some(3))
}

fn upstream() -> UreqTransport {
    rig::upstream(Duration::from_secs(5))
}

fn relay(polar: &Emulator, backend: Arc<dyn Backend>) -> rig::Relayed {
    let mut config = rig::config(polar.url(), "race");
    config.limits = rig::unlimited();
    let mut options = StoreOptions::default();
    options.fresh_for = 5;
    config.store = rig::store(backend, options, Some(SECRET.to_string()));
    rig::relay(config, upstream())
}

/// One backend's race: a relay over it, with a key of its own granted through it and stored
/// at `t0`.
struct Race<'a> {
    /// The backend's name.
    name: &'static str,
    /// Its gates.
    gates: &'a Gates,
    relay: &'a rig::Relayed,
    key: &'a str,
    /// The key's license key id.
    lid: &'a str,
    /// Its customer's id.
    customer: &'a str,
    t0: i64,
}

/// On every backend, the race `label`: a relay over it with a key granted and stored, then
/// `race` (which returns when it is done, with its clock); then the key's next check is
/// refused, from the store with no call to Polar (the acknowledged revocation stands).
fn on_every_backend(label: &str, race: impl Fn(&Race<'_>) -> i64) {
    let polar = emulator();
    let dir = ScratchDir::new(&format!("race-{label}").to_lowercase());
    for (name, backend) in backends(&dir) {
        let key = key(&polar, &format!("{label}-{name}").to_uppercase());
        let relay = relay(&polar, Arc::clone(&backend.store));
        let t0 = now();
        let first = relay.handle(&validate_request(&key), at(t0));
        assert_eq!(first.status, 200, "{name}");
        let (lid, customer) = ids_of(&first);
        let later = race(&Race {
            name,
            gates: &backend.gates,
            relay: &relay,
            key: &key,
            lid: &lid,
            customer: &customer,
            t0,
        });
        let calls = polar.request_count();
        let next = relay.handle(&validate_request(&key), at(later + 1));
        rig::assert_refused(
            &next,
            &format!("{name}: the acknowledged revocation refuses"),
        );
        assert_eq!(
            polar.request_count(),
            calls,
            "{name}: refused without a call"
        );
    }
}

/// Delivers the revocation `body` as webhook `id` at `at_unix`, and asserts that it was
/// acknowledged (200).
fn acknowledged(relay: &rig::Relayed, id: &str, at_unix: i64, body: &str) {
    let r = relay.handle(&hook(id, at_unix, body), at(at_unix));
    assert_eq!(r.status, 200, "{id}: the revocation acknowledged");
}

/// A signed delivery of `body`, as the relay's core receives it.
fn hook(id: &str, ts: i64, body: &str) -> RelayRequest {
    rig::hook(SECRET, id, ts, body)
}

fn revocation(license_key_id: &str, customer: &str, at: i64) -> String {
    json!({"type": "benefit_grant.revoked", "timestamp": rfc3339(at),
           "data": {"modified_at": rfc3339(at), "customer_id": customer,
                    "benefit": {"type": "license_keys"},
                    "properties": {"license_key_id": license_key_id}}})
    .to_string()
}

fn subscription_updated(customer: &str, at: i64) -> String {
    json!({"type": "subscription.updated", "timestamp": rfc3339(at),
           "data": {"modified_at": rfc3339(at), "customer_id": customer, "status": "active"}})
    .to_string()
}

/// The backends under test, each behind its gate: memory, the journal (the Workers relay's),
/// the redb file.
fn backends(dir: &ScratchDir) -> Vec<(&'static str, Arc<Gated>)> {
    let gated = |inner: Arc<dyn Backend>| {
        let gates = Arc::new(Gates::default());
        let held = Arc::clone(&gates);
        let hook = move |call: Call| {
            match call {
                Call::Updating => pass(&held.keep),
                Call::Narrowing => pass(&held.webhook),
                _ => {}
            }
            Ok(())
        };
        let store: Arc<dyn Backend> = Arc::new(rig::Hooked { inner, hook });
        Arc::new(Gated { gates, store })
    };
    vec![
        ("memory", gated(Arc::new(MemoryBackend::new(1_000)))),
        ("journal", gated(Arc::new(JournalBackend::new(1_000)))),
        (
            "redb",
            gated(Arc::new(
                RedbBackend::open(&dir.path().join("race.redb"), 1_000).expect("the file"),
            )),
        ),
    ]
}

/// Runs `second` while `held` holds the first step between its read and its write: waits
/// until the first step is held, starts `second`, lets it finish when it can (a backend
/// whose step is one transaction makes it wait for the first: it is released after a
/// generous while), then releases the first.
fn while_held<T: Send>(
    held: Held,
    first: impl FnOnce() -> T + Send,
    second: impl FnOnce() + Send,
) -> T {
    std::thread::scope(|scope| {
        let first = scope.spawn(first);
        held.reached
            .recv_timeout(Duration::from_secs(60))
            .expect("the first step reached its write");
        let (done_tx, done_rx) = channel();
        let second = scope.spawn(move || {
            second();
            let _ = done_tx.send(());
        });
        // Committed meanwhile (the race today's code loses), or waiting for the first's
        // transaction (the fix): either way, the first goes on.
        let _ = done_rx.recv_timeout(Duration::from_secs(2));
        let _ = held.release.send(());
        second.join().expect("the second step");
        first.join().expect("the first step")
    })
}

/// A revocation acknowledged (200 sent to Polar) while the relay keeps Polar's grant of the
/// same key, the grant's write held after its read: the next check is refused, on every
/// backend.
#[test]
fn a_revocation_acknowledged_while_a_grant_is_kept_is_never_lost() {
    on_every_backend("KEEP", |race| {
        let Race { name, relay, .. } = race;
        // Past its freshness: Polar is asked again, and grants.
        let later = race.t0 + 10;
        let mut check = rig::Drive::new(relay, validate_request(race.key), at(later));
        check.expect_send();
        let answer = upstream().send(check.sent());
        let held = arm(&race.gates.keep);
        let revoke = revocation(race.lid, race.customer, later);
        let kept = while_held(
            held,
            || {
                check.give(Given::Upstream(answer));
                check.expect_answer()
            },
            || acknowledged(relay, &format!("evt-keep-{name}"), later, &revoke),
        );
        assert_eq!(kept.status, 200, "{name}: Polar's grant, passed on");
        later
    });
}

/// Two deliveries at once (a retry after Polar's timeout and the next event): the customer's
/// subscription updated, its narrowing held after its read, while the key's revocation is
/// delivered. The revocation stands: the key is refused at once, on every backend.
#[test]
fn two_webhook_deliveries_racing_never_turn_a_revocation_into_a_grant() {
    on_every_backend("HOOKS", |race| {
        let Race { name, relay, .. } = race;
        let later = race.t0 + 1;
        let held = arm(&race.gates.webhook);
        let update = subscription_updated(race.customer, later);
        let revoke = revocation(race.lid, race.customer, later);
        let status = while_held(
            held,
            || {
                relay
                    .handle(&hook(&format!("evt-sub-{name}"), later, &update), at(later))
                    .status
            },
            || acknowledged(relay, &format!("evt-rev-{name}"), later, &revoke),
        );
        assert_eq!(status, 200, "{name}: the update acknowledged");
        later
    });
}
