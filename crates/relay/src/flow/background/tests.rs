//! The background machine's unit tests (kept beside flow/background.rs, out of its library code).

// Test code only (the module is `#[cfg(test)]` in flow/background.rs; said again here for the hostile
// suite's scan of the routers' paths, which reads a file's code up to its first such line).
#[cfg(test)]
use super::*;
use crate::reconcile::tests::{at, lk};
use crate::relay::Relay;
use crate::roster::tests::{relay_on, relay_with};
use crate::store::{Backend, Entry, Mark, StoreOptions};

/// The reconcile's clock (2027-01), unix seconds.
const NOW: i64 = 1_800_000_000;

/// Polar's grant of license key `n`, answered at `answered_at`, marked `mark`.
fn grant(n: u8, answered_at: i64, mark: Mark) -> Entry {
    Entry::test_grant(lk(n), answered_at, mark, None)
}

/// A relay over a store read per key (Workers) caching 2 entries and rows, with a budget of
/// 100 calls, none kept, its reconcile asking each key once a minute (no roster), and its
/// background machine.
fn paged_relay() -> (Arc<PagedBackend>, Relay, Background) {
    let (paged, r) = crate::reconcile::tests::paged_relay(2, false);
    let m = Background::new(Some(paged.clone()));
    (paged, r, m)
}

fn polar(status: &str) -> Given {
    let body = serde_json::json!({"key": "K-1", "status": status});
    Given::Polar(Ok((200, None, body.to_string().into_bytes())))
}

/// The `GET` a poll must ask for.
fn send(poll: Poll) -> Request {
    match poll {
        Poll::Send(read) => read,
        other => panic!("a read, not {other:?}"),
    }
}

/// A host runs at most `JOBS_PER_RUN` jobs in a row: the machine then says `Wait(0)` (the
/// host yields: a Durable Object answers requests between slices) and goes on after it.
#[test]
fn a_run_is_sliced_after_its_jobs_in_a_row() {
    let (_, r, mut m) = paged_relay();
    m.ran = JOBS_PER_RUN - 1;
    let Poll::List { id, .. } = m.poll(&r, at(NOW, 0)) else {
        panic!("the listing first")
    };
    let row = format!("l:{}|{}", lk(1), "01".repeat(32));
    m.answered(&r, id, Given::Rows(Ok(vec![row])), at(NOW, 1));
    assert!(matches!(m.poll(&r, at(NOW, 2)), Poll::Wait(0)));
    // The job due comes at the next poll, the count from 0 again.
    assert!(matches!(m.poll(&r, at(NOW + 60, 3)), Poll::Load { .. }));
    assert_eq!(m.ran, 1);
}

/// A store read per key (Workers), caching `cached` entries and rows, its reconcile asking
/// each key once a minute (no roster): the stored keys are listed first, the due key's
/// rows loaded before its read, and an answer whose rows the cache let go meanwhile is
/// held until they are loaded again: a revocation Polar gave is never lost to the cache.
#[test]
fn a_paged_store_lists_then_loads_before_a_read_and_before_its_answer() {
    let (paged, r, mut m) = paged_relay();
    // The listing first: one short page, the last.
    let hex = "01".repeat(32);
    let row = format!("l:{}", lk(1));
    let Poll::List { id, page } = m.poll(&r, at(NOW, 0)) else {
        panic!("the listing first")
    };
    assert_eq!((page.prefix, page.after), ("l:", None));
    m.answered(
        &r,
        id,
        Given::Rows(Ok(vec![format!("{row}|{hex}")])),
        at(NOW, 1),
    );
    // Nothing due before a minute on; then the key's rows are loaded before its read.
    assert!(matches!(m.poll(&r, at(NOW, 2)), Poll::Wait(_)));
    let Poll::Load { id, missing } = m.poll(&r, at(NOW + 60, 3)) else {
        panic!("the due key's rows loaded first")
    };
    assert_eq!(missing.tags, vec![row.clone()]);
    paged.load(Vec::new(), vec![(row.clone(), vec![hex.clone()])]);
    m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 4));
    let Poll::Load { id, missing } = m.poll(&r, at(NOW + 60, 5)) else {
        panic!("then its entry")
    };
    assert_eq!(missing.entries, vec![hex.clone()]);
    let entry = || vec![(hex.clone(), Some(grant(1, 100, Mark::None)))];
    paged.load(entry(), Vec::new());
    m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 6));
    let read = send(m.poll(&r, at(NOW + 60, 7)));
    assert!(read.url().ends_with(&lk(1)), "{}", read.url());
    assert!(!format!("{read:?}").contains("Bearer"), "{read:?}");
    // The cache lets the row go while Polar is asked: the answer waits for it.
    paged.load(Vec::new(), vec![("l:other".into(), Vec::new())]);
    paged.trim();
    m.answered(&r, read.id(), polar("revoked"), at(NOW + 60, 8));
    let mark = || paged.get(&[1; 32]).expect("get").map(|e| e.mark);
    let Poll::Load { id, missing } = m.poll(&r, at(NOW + 60, 9)) else {
        panic!("the answer's rows loaded before it is applied")
    };
    assert_eq!(missing.tags, vec![row.clone()]);
    paged.load(entry(), vec![(row, vec![hex.clone()])]);
    m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 10));
    assert_eq!(mark(), Some(Mark::Revoked), "applied once loaded");
}

/// Issue #63 (the store's protocol in Rust): the host saves after a read of Polar's, never
/// between a load and the job that uses it, and a save then (the run's end) leaves the
/// cache as the load left it: a cache of two never lets go of the row just loaded for the
/// reconcile's next job, which asks for the entry next, not the row again.
#[test]
fn no_save_trims_what_a_load_read_before_its_use() {
    let (paged, r, mut m) = paged_relay();
    let hex = "01".repeat(32);
    let row = format!("l:{}", lk(1));
    let Poll::List { id, .. } = m.poll(&r, at(NOW, 0)) else {
        panic!("the listing first")
    };
    m.answered(
        &r,
        id,
        Given::Rows(Ok(vec![format!("{row}|{hex}")])),
        at(NOW, 1),
    );
    assert!(!m.saves_now(), "no save after a listing");
    assert!(matches!(m.poll(&r, at(NOW, 2)), Poll::Wait(_)));
    let Poll::Load { id, .. } = m.poll(&r, at(NOW + 60, 3)) else {
        panic!("the due key's rows loaded first")
    };
    paged.load(Vec::new(), vec![(row.clone(), vec![hex.clone()])]);
    m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 4));
    assert!(m.holds_loads() && !m.saves_now(), "no save after a load");
    // Another request's load meanwhile: the cache is past its bound of two.
    paged.load(
        Vec::new(),
        vec![("l:a".into(), Vec::new()), ("l:b".into(), Vec::new())],
    );
    let writes = crate::store::saves::take_writes(&paged, &[], m.holds_loads());
    assert!(writes.is_empty(), "{writes:?}");
    let Poll::Load { id, missing } = m.poll(&r, at(NOW + 60, 5)) else {
        panic!("then its entry")
    };
    assert!(missing.tags.is_empty(), "the row was kept: {missing:?}");
    assert_eq!(missing.entries, vec![hex.clone()]);
    // Used: the next save may trim again.
    assert!(!m.holds_loads());
    paged.load(
        vec![(hex.clone(), Some(grant(1, 100, Mark::None)))],
        Vec::new(),
    );
    m.answered(&r, id, Given::Loaded(true), at(NOW + 60, 6));
    let read = send(m.poll(&r, at(NOW + 60, 7)));
    m.answered(&r, read.id(), polar("granted"), at(NOW + 60, 8));
    assert!(
        m.saves_now(),
        "saved after Polar's answer (the budget's call spent)"
    );
}

/// A load that fails: the reconcile's read waits a second (no read of a key whose entries
/// would read as gone), an answer is applied as it is (narrowing nothing; the key is asked
/// again), and a listing that fails is tried again a second later.
#[test]
fn a_failed_load_or_listing_waits_a_second() {
    let (_paged, r, mut m) = paged_relay();
    let Poll::List { id, .. } = m.poll(&r, at(NOW, 0)) else {
        panic!("the listing first")
    };
    m.answered(&r, id, Given::Rows(Err("refused".into())), at(NOW, 1));
    assert!(
        matches!(m.poll(&r, at(NOW, 2)), Poll::Wait(999)),
        "no page within a second"
    );
    let Poll::List { id, .. } = m.poll(&r, at(NOW, 1_001)) else {
        panic!("the page again")
    };
    let rows = vec![format!("l:{}|{}", lk(1), "01".repeat(32))];
    m.answered(&r, id, Given::Rows(Ok(rows)), at(NOW, 1_002));
    let Poll::Load { id, .. } = m.poll(&r, at(NOW + 60, 1_003)) else {
        panic!("the due key's rows")
    };
    m.answered(&r, id, Given::Loaded(false), at(NOW + 60, 1_004));
    assert!(
        matches!(m.poll(&r, at(NOW + 60, 1_005)), Poll::Wait(999)),
        "no read within a second of the failed load"
    );
    assert!(matches!(m.poll(&r, at(NOW + 60, 2_004)), Poll::Load { .. }));
}

/// The roster and the reconcile take turns: a run of grant webhooks' refetches never holds
/// a due reconcile back, nor the other way; with neither on the machine is done.
#[test]
fn the_roster_and_the_reconcile_take_turns_and_none_is_done() {
    let r = relay_with(StoreOptions {
        budget: 1_000,
        reserve: 100,
        reconcile_every: 60,
        roster: true,
        ..StoreOptions::default()
    });
    let s = r.store.as_ref().expect("a store");
    let mut m = Background::new(None);
    let page = send(m.poll(&r, at(NOW, 0)));
    assert!(page.url().contains("page=1"), "{}", page.url());
    let body = serde_json::json!({"items": [{"key": "K-1"}], "pagination": {"max_page": 1}});
    m.answered(
        &r,
        page.id(),
        Given::Polar(Ok((200, None, body.to_string().into_bytes()))),
        at(NOW, 1),
    );
    s.backend
        .put(&[1; 32], &grant(1, 100, Mark::None))
        .expect("put");
    s.reconcile.saw(&lk(1), 100);
    for n in 10..14u8 {
        let event = serde_json::json!({"type": "benefit_grant.created",
            "data": {"properties": {"license_key_id": lk(n)}}});
        crate::roster::on_event(&s.roster, &event, 2);
    }
    let urls: Vec<String> = (0..3)
        .map(|i| send(m.poll(&r, at(NOW, 3 + i))).url().to_string())
        .collect();
    assert!(urls[0].ends_with(&lk(1)), "the reconcile's turn: {urls:?}");
    assert!(urls[1].ends_with(&lk(10)), "then the roster's: {urls:?}");
    assert!(urls[2].ends_with(&lk(11)), "{urls:?}");
    // Neither on: done (the native loop ends).
    let off = relay_with(StoreOptions {
        reconcile_every: 0,
        roster: false,
        ..StoreOptions::default()
    });
    assert!(matches!(
        Background::new(None).poll(&off, at(NOW, 0)),
        Poll::Done
    ));
}

/// Issue #68: with values signed (`entitlements`) and a store read per key (Workers), no
/// customer's values due asks for no wake-up (a Durable Object's alarm is an invocation);
/// a customer wanted is read at the next poll, its pages one after the other, and once
/// read the machine is done again. Natively it waits 200 ms instead (no request wakes the
/// native loop once it has ended).
#[cfg(feature = "entitlements")]
#[test]
fn values_with_nothing_due_ask_no_wake_up_on_a_paged_store() {
    let (r, mut m) = values_relay();
    let s = r.store.as_ref().expect("a store");
    assert!(matches!(m.poll(&r, at(NOW, 0)), Poll::Done));
    // A usage batch ingested (or a lease's ask) wants the customer: read at once.
    s.entitled.ingested(CUSTOMER);
    let grants = send(m.poll(&r, at(NOW, 1)));
    assert!(
        grants.url().contains("/v1/benefit-grants/"),
        "{}",
        grants.url()
    );
    m.answered(&r, grants.id(), empty_page(), at(NOW, 2));
    let meters = send(m.poll(&r, at(NOW, 3)));
    assert!(
        meters.url().contains("/v1/customer-meters/"),
        "{}",
        meters.url()
    );
    m.answered(&r, meters.id(), empty_page(), at(NOW, 4));
    assert!(matches!(m.poll(&r, at(NOW, 5)), Poll::Done));
    // Natively: the loop polls on (200 ms), as before.
    let native = relay_with(values_options());
    assert!(matches!(
        Background::new(None).poll(&native, at(NOW, 0)),
        Poll::Wait(200)
    ));
}

/// The customer whose values the back-off tests read.
#[cfg(feature = "entitlements")]
const CUSTOMER: &str = "7d3c1e2a-4b5f-4c6d-8e9f-0a1b2c3d4e5f";

/// A store with values on (no reconcile, no roster).
#[cfg(feature = "entitlements")]
fn values_options() -> StoreOptions {
    StoreOptions {
        entitlements: true,
        reconcile_every: 0,
        roster: false,
        ..StoreOptions::default()
    }
}

/// A relay over a store read per key (Workers) of [`values_options`], and its background
/// machine.
#[cfg(feature = "entitlements")]
fn values_relay() -> (Relay, Background) {
    let paged = Arc::new(PagedBackend::new(100, 2));
    let r = relay_on(paged.clone(), values_options());
    (r, Background::new(Some(paged)))
}

/// [`values_relay`] with [`CUSTOMER`]'s values due.
#[cfg(feature = "entitlements")]
fn values_due() -> (Relay, Background) {
    let (r, m) = values_relay();
    let s = r.store.as_ref().expect("a store");
    s.entitled.ingested(CUSTOMER);
    (r, m)
}

/// The clock `ms` milliseconds after [`NOW`].
#[cfg(feature = "entitlements")]
fn clock(ms: u64) -> Now {
    at(NOW + (ms / 1_000) as i64, ms)
}

/// A values page Polar answered: no items, the last page.
#[cfg(feature = "entitlements")]
fn empty_page() -> Given {
    let body = serde_json::json!({"items": [], "pagination": {"max_page": 1}});
    Given::Polar(Ok((200, None, body.to_string().into_bytes())))
}

/// On Workers each wait is the Durable Object's alarm: while Polar's values reads fail
/// (grants read refused by the network), the machine waits longer after each failure in a
/// row (5 s doubled, at most 5 min: the core's rule, the native loop's too), so an hour of
/// failures rings the alarm about 18 times, not 720; Polar back, the read goes through and
/// the machine is done.
#[cfg(feature = "entitlements")]
#[test]
fn failing_values_reads_back_off_and_ring_the_alarm_less_and_less() {
    let (r, mut m) = values_due();
    let s = r.store.as_ref().expect("a store");
    // An hour of Polar failing: each alarm rings at its wait's end (as a Durable Object's).
    let (mut t, mut reads, mut rings, mut waits) = (0_u64, 0, 0, Vec::new());
    while t < 3_600_000 {
        match m.poll(&r, clock(t)) {
            Poll::Send(read) => {
                assert!(read.url().contains("/v1/benefit-grants/"), "{}", read.url());
                reads += 1;
                let failed = Given::Polar(Err("connection refused".into()));
                m.answered(&r, read.id(), failed, clock(t));
            }
            Poll::Wait(ms) => {
                assert!(ms > 0, "a wait at {t} ms");
                rings += 1;
                waits.push(ms);
                t += ms;
            }
            other => panic!("at {t} ms: {other:?}"),
        }
    }
    assert_eq!(
        &waits[..7],
        &[5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000]
    );
    assert!(waits.iter().all(|&w| w <= 300_000), "{waits:?}");
    assert!((15..=20).contains(&reads), "{reads} reads in an hour");
    assert!(rings <= reads + 1, "{rings} rings for {reads} reads");
    // Polar back: the read goes through (its two pages), then nothing is due.
    for _ in 0..2 {
        let read = send(m.poll(&r, clock(t)));
        m.answered(&r, read.id(), empty_page(), clock(t));
    }
    assert!(matches!(m.poll(&r, clock(t)), Poll::Done));
    // A failure after a success waits 5 s again (the backoff starts over).
    s.entitled.ingested(CUSTOMER);
    let read = send(m.poll(&r, clock(t)));
    m.answered(&r, read.id(), Given::Polar(Err("reset".into())), clock(t));
    assert!(matches!(m.poll(&r, clock(t)), Poll::Wait(5_000)));
}

/// A values read whose first pages Polar answers and whose later one fails each time (the
/// grants read, the meters refused: what a workerd test met, its alarm ringing every 5 s)
/// is a failure in a row each time: a page answered does not start the backoff over, only
/// a read done whole does.
#[cfg(feature = "entitlements")]
#[test]
fn values_reads_failing_at_a_later_page_back_off_too() {
    let (r, mut m) = values_due();
    let (mut t, mut waits) = (0_u64, Vec::new());
    while waits.len() < 5 {
        match m.poll(&r, clock(t)) {
            Poll::Send(read) if read.url().contains("/v1/benefit-grants/") => {
                m.answered(&r, read.id(), empty_page(), clock(t));
            }
            Poll::Send(read) => {
                assert!(
                    read.url().contains("/v1/customer-meters/"),
                    "{}",
                    read.url()
                );
                let failed = Given::Polar(Ok((404, None, b"{}".to_vec())));
                m.answered(&r, read.id(), failed, clock(t));
            }
            Poll::Wait(ms) => {
                waits.push(ms);
                t += ms;
            }
            other => panic!("at {t} ms: {other:?}"),
        }
    }
    assert_eq!(waits, [5_000, 10_000, 20_000, 40_000, 80_000]);
}
