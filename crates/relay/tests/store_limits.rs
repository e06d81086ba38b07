//! Issue #52: a store whose storage refuses cannot be turned against the relay's customers. An
//! answer of Polar's larger than a Durable Object's value (128 KiB), which a customer can make
//! (an activation with large escaped metadata), is answered and never written (a storage that
//! refused it would refuse every later save holding it); and a stored entry the host could not
//! read is never taken as absent (a revocation a webhook left is not written over with a grant:
//! the check is refused 503, and nothing is asked of Polar).

mod rig;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use polar_license::Transport;
use polar_license_emulator::{Emulator, KeyUpdate, DEMO_ORGANIZATION_ID};
use polar_license_relay::flow::{ExchangeOptions, Given, Need};
use polar_license_relay::store::{
    Backend, Entry, Mark, MemoryBackend, PagedBackend, StoreError, StoreOptions,
};
use polar_license_relay::{Relay, RelayRequest, RelayResponse, ServeOptions};
use rig::host::Host;
use rig::{at, ids_of, now, rfc3339, validate_request, PUBLIC};
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A Durable Object's limit per value.
const VALUE_CAP: usize = 128 * 1024;

/// A storage whose values are capped as a Durable Object's key-value storage caps them (an
/// entry's JSON past 128 KiB is refused, as `put` refuses it there): the hook of the rig's
/// [`rig::Hooked`] store, each refusal counted.
#[derive(Default)]
struct Capped {
    refused: AtomicUsize,
}

impl rig::Hook for Capped {
    fn takes(&self, entry: &Entry) -> Result<(), StoreError> {
        let size = serde_json::to_string(entry).map_or(usize::MAX, |t| t.len());
        if size > VALUE_CAP {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError(
                "Values cannot be larger than 131072 bytes".into(),
            ));
        }
        Ok(())
    }
}

/// An activation of `key` made directly at Polar (the emulator) with the most metadata Polar
/// takes (50 values of 500 characters), each character one JSON escapes (`\u0001`, six
/// bytes): its id.
fn activate_with_large_metadata(polar: &Emulator, key: &str) -> String {
    let value: String = "\u{1}".repeat(500);
    let meta: serde_json::Map<String, Value> = (0..50)
        .map(|i| (format!("m{i:02}"), Value::String(value.clone())))
        .collect();
    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID,
                      "label": "large", "meta": meta});
    let answer = rig::post_with(
        &rig::agent(Duration::from_secs(30)),
        &format!("{}{PUBLIC}activate", polar.url()),
        &body.to_string(),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let activation: Value = serde_json::from_str(&answer.body).expect("JSON");
    activation["id"].as_str().expect("an id").to_string()
}

/// Polar's validate answer of 150 KB and more (an activation's large escaped metadata) through
/// the native server on a store capped at 128 KiB a value: answered whole, with its lease,
/// every time, and never written (no write refused); a webhook after it is answered 200, and
/// another key's answer is stored as ever.
#[test]
fn an_answer_past_a_storage_value_is_answered_and_never_written() {
    let polar = rig::webhook_emulator();
    let big = rig::add_key(&polar, "LIMIT-BIG-4A5B6C".into(), Some(3));
    let small = rig::add_key(&polar, "LIMIT-SMALL-4A5B6C".into(), Some(3));
    let activation = activate_with_large_metadata(&polar, &big);
    let store = Arc::new(rig::Hooked {
        inner: Arc::new(MemoryBackend::new(100)),
        hook: Capped::default(),
    });
    let mut config = rig::config(polar.url(), "limits");
    config.limits = rig::unlimited();
    config.store = rig::store(
        Arc::clone(&store) as Arc<dyn Backend>,
        StoreOptions::default(),
        Some(SECRET.into()),
    );
    let relay = rig::listen_with(config, ServeOptions::default());
    let agent = rig::agent(Duration::from_secs(30));
    let body = json!({"key": big, "organization_id": DEMO_ORGANIZATION_ID,
                      "activation_id": activation})
    .to_string();
    let url = format!("{}{PUBLIC}validate", relay.url());
    polar.reset_request_count();
    for n in 1..=3u64 {
        let answer = rig::post_with(&agent, &url, &body, &[]);
        assert_eq!(
            answer.status,
            200,
            "{}",
            &answer.body[..200.min(answer.body.len())]
        );
        assert!(
            answer.body.len() > VALUE_CAP,
            "Polar's answer is {} bytes",
            answer.body.len()
        );
        assert!(answer.lease.is_some(), "a grant carries its lease");
        assert_eq!(answer.source.as_deref(), Some("polar"));
        // Not stored: each check is Polar's.
        assert_eq!(polar.request_count(), n);
    }
    assert_eq!(
        store.hook.refused.load(Ordering::SeqCst),
        0,
        "the relay tried to store an entry past the storage's limit"
    );
    // No answer stored: only when the relay last saw the activation (crate::last_seen, a
    // value of a few bytes, written once an hour at most).
    assert_eq!(store.len().expect("len"), 1);

    // A webhook after it: answered, not refused for a write that cannot be made.
    let event = json!({"type": "benefit_grant.updated", "timestamp": rfc3339(now()),
                       "data": {"id": "g", "customer_id": "c", "modified_at": rfc3339(now())}})
    .to_string();
    let headers = rig::signed(SECRET, "evt-after-large", now(), &event);
    assert_eq!(rig::deliver_at(&agent, &relay.url(), &headers, &event), 200);

    // Another key's answer is stored and answers the next check without a call.
    let first = rig::validate_at(&agent, &relay.url(), &small, &[]);
    assert_eq!(first.status, 200);
    let calls = polar.request_count();
    let again = rig::validate_at(&agent, &relay.url(), &small, &[]);
    assert_eq!(
        (again.status, again.source.as_deref()),
        (200, Some("store"))
    );
    assert_eq!(polar.request_count(), calls);
    assert_eq!(
        store.len().expect("len"),
        2,
        "its answer beside the last-seen value"
    );
    relay.stop();
}

/// A restarted host (the rig's): a backend that knows the count of entries only.
fn start(host: &Host) -> Arc<PagedBackend> {
    Arc::new(host.start_capped(1_000, 16))
}

/// `req` answered by the request machine as the Workers handler drives it: what the machine
/// asks to load is loaded (the handler's `fill`), unless `fails`: then the storage's read
/// throws and nothing is loaded (the handler logs it and goes on). Polar is asked over HTTP.
fn fill_and_answer(
    host: &mut Host,
    relay: &Relay,
    b: &PagedBackend,
    req: &RelayRequest,
    when: i64,
    fails: bool,
) -> RelayResponse {
    let polar = rig::upstream(Duration::from_secs(10));
    // A paged store: the machine asks its host to load it (no flag says so).
    rig::Drive::with(relay, req.clone(), at(when), ExchangeOptions::default()).run_with(
        |x, need| match need {
            Need::Load(load) => {
                if let (Some(wants), false) = (&load.store, fails) {
                    host.fill(b, wants);
                }
                x.give(Given::Loaded);
            }
            Need::Send { request, .. } => x.give(Given::Upstream(polar.send(&request))),
            other => x.as_host(other),
        },
    )
}

/// The marks of every entry stored.
fn marks(host: &Host) -> Vec<Mark> {
    host.kv
        .iter()
        .filter(|(k, _)| k.starts_with("e:"))
        .map(|(_, v)| {
            serde_json::from_value::<Entry>(v.clone())
                .expect("an entry")
                .mark
        })
        .collect()
}

fn paged_relay(polar: &Emulator, backend: &Arc<PagedBackend>) -> rig::Relayed {
    let mut config = rig::config(polar.url(), "paged");
    config.limits = rig::unlimited();
    config.store = rig::store(
        Arc::clone(backend) as Arc<dyn Backend>,
        StoreOptions::default(),
        Some(SECRET.into()),
    );
    rig::relay(config, rig::upstream(Duration::from_secs(10)))
}

/// A key granted through a relay over a fresh Workers store, the grant saved.
struct Granted {
    k: String,
    host: Host,
    b: Arc<PagedBackend>,
    relay: rig::Relayed,
    /// When the key was checked.
    t0: i64,
    /// Its validate.
    check: RelayRequest,
    /// Its license key's id and customer's id.
    ids: (String, String),
}

/// The key `name` (`limit` activations) added to `polar` and checked through a relay over a
/// fresh host's store: Polar's grant, saved.
fn granted(polar: &Emulator, name: &str, limit: Option<i64>) -> Granted {
    let k = rig::add_key(polar, name.into(), limit);
    let mut host = Host::default();
    let b = start(&host);
    let relay = paged_relay(polar, &b);
    let t0 = now();
    let check = validate_request(&k);
    let first = fill_and_answer(&mut host, &relay, &b, &check, t0, false);
    assert_eq!(first.status, 200);
    host.save(&b);
    let ids = ids_of(&first);
    Granted {
        k,
        host,
        b,
        relay,
        t0,
        check,
        ids,
    }
}

impl Granted {
    /// The key's check at `when`, refused (Polar's 404, no lease) by its stored revocation.
    fn refused_by_revocation(&mut self, when: i64) -> RelayResponse {
        let answer = fill_and_answer(
            &mut self.host,
            &self.relay,
            &self.b,
            &self.check,
            when,
            false,
        );
        rig::assert_refused(&answer, "the stored revocation");
        answer
    }
}

/// The webhook `body` (its id `id`) signed with the secret and delivered at `when`: answered
/// 200, and the store saved.
fn deliver(host: &mut Host, relay: &Relay, b: &PagedBackend, id: &str, when: i64, body: &str) {
    let hook = rig::hook(SECRET, id, when, body);
    assert_eq!(
        fill_and_answer(host, relay, b, &hook, when, false).status,
        200
    );
    host.save(b);
}

/// A key revoked by Polar's webhook while Polar still grants it, its revocation in the host's
/// storage; after a restart the storage's read fails (the Workers handler's `fill` throws and
/// goes on): the check is refused 503 with no call to Polar, and the revocation stays stored
/// (read as absent, the check asked Polar, which granted, and the grant was written over the
/// revocation). With the read back, the revocation answers.
#[test]
fn a_failed_read_never_writes_over_a_stored_revocation() {
    let polar = rig::webhook_emulator();
    let mut g = granted(&polar, "LIMIT-READ-4A5B6C", Some(3));
    let t0 = g.t0;
    let revoked = rig::key_event("benefit_grant.revoked", t0, "c", &g.ids.0, "****-4A5B6C");
    deliver(&mut g.host, &g.relay, &g.b, "evt-revoked", t0, &revoked);
    assert_eq!(marks(&g.host), vec![Mark::Revoked]);

    // A restart, and the read of the entry fails.
    g.b = start(&g.host);
    g.relay = paged_relay(&polar, &g.b);
    polar.reset_request_count();
    for when in [t0 + 1, t0 + 2] {
        let answer = fill_and_answer(&mut g.host, &g.relay, &g.b, &g.check, when, true);
        g.host.save(&g.b);
        assert_eq!(
            (answer.status, answer.lease().is_some()),
            (503, false),
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(polar.request_count(), 0, "Polar asked after a failed read");
        assert_eq!(
            marks(&g.host),
            vec![Mark::Revoked],
            "the revocation written over"
        );
    }
    // Read back: the revocation answers, still without a call.
    g.refused_by_revocation(t0 + 3);
    assert_eq!(polar.request_count(), 0);
}

/// Issue #68, on the Workers store (paged, loaded per request as the Durable Object loads it):
/// a check asks Polar while the key is being revoked, Polar answers its denial (404, which names
/// no key or customer) and the revocation's webhook lands while that call is under way. The
/// denial is stored with the revocation's mark and still reachable by the key's webhooks: once
/// Polar grants the key again (a resumed subscription), the grant's webhook makes it a re-check
/// and the next check is Polar's own 200 (the webhook grants nothing by itself: before Polar
/// grants again, the revocation refuses). Before the fix the stored denial dropped the key's
/// ids, no webhook reached it, and it refused from the store for the whole `denial_for`.
#[test]
fn a_denial_stored_while_a_revocation_lands_is_reached_by_the_keys_later_webhooks() {
    let polar = rig::webhook_emulator();
    let mut g = granted(&polar, "RESUME-RACE-5B6C7D", None);
    let t0 = g.t0;
    let (license_key_id, customer_id) = g.ids.clone();
    let event = |kind: &str, at: i64| {
        rig::key_event(kind, at, &customer_id, &license_key_id, "****-5B6C7D")
    };
    let k = g.k.clone();
    let set = |status: &str| {
        assert!(polar.update_key(
            &k,
            KeyUpdate {
                status: Some(status.to_string()),
                ..KeyUpdate::default()
            }
        ));
    };
    // The subscription changes (a purchase event: the key's answer is asked again).
    let updated = event("benefit_grant.updated", t0 + 1);
    deliver(&mut g.host, &g.relay, &g.b, "evt-updated", t0 + 1, &updated);
    // Polar revokes the key; the check asks Polar, and the revocation's webhook is applied
    // while the call is under way.
    set("revoked");
    let revoked = event("benefit_grant.revoked", t0 + 2);
    let revoked = rig::hook(SECRET, "evt-revoked", t0 + 2, &revoked);
    let upstream = rig::upstream(Duration::from_secs(10));
    let mut landed = false;
    let denied = rig::Drive::with(
        &g.relay,
        g.check.clone(),
        at(t0 + 2),
        ExchangeOptions::default(),
    )
    .run_with(|x, need| match need {
        Need::Load(load) => {
            if let Some(wants) = &load.store {
                g.host.fill(&g.b, wants);
            }
            x.give(Given::Loaded);
        }
        Need::Send { request, .. } => {
            let answer = upstream.send(&request);
            if !landed {
                landed = true;
                let hooked = fill_and_answer(&mut g.host, &g.relay, &g.b, &revoked, t0 + 2, false);
                assert_eq!(hooked.status, 200);
            }
            x.give(Given::Upstream(answer));
        }
        other => x.as_host(other),
    });
    g.host.save(&g.b);
    assert!(landed, "the check asked Polar");
    rig::assert_refused(&denied, "Polar's denial");
    assert_eq!(
        marks(&g.host),
        vec![Mark::Revoked],
        "the revocation's mark kept"
    );
    // Refused from the store meanwhile (a webhook alone never grants).
    let refused = g.refused_by_revocation(t0 + 3);
    assert_eq!(refused.header("polar-license-source"), Some("store"));
    // Granted again (the resume): its webhook reaches the stored denial, the next check is
    // Polar's grant, well within `denial_for` (60 s).
    set("granted");
    let created = event("benefit_grant.created", t0 + 4);
    deliver(&mut g.host, &g.relay, &g.b, "evt-created", t0 + 4, &created);
    let again = fill_and_answer(&mut g.host, &g.relay, &g.b, &g.check, t0 + 5, false);
    g.host.save(&g.b);
    assert_eq!(
        (again.status, again.header("polar-license-source")),
        (200, Some("polar")),
        "licensed again by Polar's answer: {}",
        String::from_utf8_lossy(&again.body)
    );
    assert!(again.lease().is_some(), "Polar's grant is leased");
    assert_eq!(marks(&g.host), vec![Mark::None]);
}
