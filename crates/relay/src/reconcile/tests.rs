//! The reconcile's unit tests (kept beside reconcile/mod.rs, out of its library code).

// Test code only (the module is `#[cfg(test)]` in reconcile/mod.rs; said again here for the hostile
// suite's scan of the routers' paths, which reads a file's code up to its first such line).
#[cfg(test)]
use super::*;
use crate::clock::Now;
use crate::reads::*;
use crate::relay::Relay;
use crate::roster::ReadAnswer;
use crate::store::StoreOptions;
use crate::store::{Entry, Mark, Use};
use polar_license::lease::key_hash;
use polar_license::Key;
use serde_json::json;

const ORG: &str = "11111111-1111-4111-8111-111111111111";
/// The clock of the reconcile's reads (2027-01).
const NOW: i64 = 1_800_000_000;

/// A relay with a memory store (a budget of `budget` calls a minute, none kept, the
/// roster on) whose reconcile asks each key once a minute.
fn relay(budget: u32) -> Relay {
    crate::roster::tests::relay_with(StoreOptions {
        budget,
        reserve: 0,
        reconcile_every: 60,
        roster: true,
        ..StoreOptions::default()
    })
}

pub(crate) fn at(unix: i64, ms: u64) -> Now {
    Now {
        unix_seconds: unix,
        monotonic_ms: ms,
    }
}

pub(crate) fn lk(n: u8) -> String {
    format!("{n:08}-0000-4000-8000-000000000000")
}

fn tag(key: &str) -> String {
    store::key_tag(ORG, &key_hash(&Key::new(key.to_string())))
}

/// Polar's grant of `key` (license key `n`), kept at `answered_at`, marked `mark`.
fn grant(n: u8, key: &str, answered_at: i64, mark: Mark) -> Entry {
    Entry::test_grant(lk(n), answered_at, mark, Some(tag(key)))
}

/// A relay over a store read per key (Workers) that holds `cached` entries and rows in
/// memory, with a budget of 100 calls, none kept, its reconcile asking each key once a
/// minute, the roster on or off.
pub(crate) fn paged_relay(
    cached: usize,
    roster: bool,
) -> (std::sync::Arc<crate::store::PagedBackend>, Relay) {
    let paged = std::sync::Arc::new(crate::store::PagedBackend::new(100, cached));
    let r = crate::roster::tests::relay_on(
        paged.clone(),
        StoreOptions {
            budget: 100,
            reserve: 0,
            reconcile_every: 60,
            roster,
            ..StoreOptions::default()
        },
    );
    (paged, r)
}

fn polar_key(key: &str, status: &str, expires_at: Option<&str>) -> ReadAnswer {
    let body = json!({"id": "x", "organization_id": ORG, "key": key, "status": status,
        "expires_at": expires_at});
    Ok((200, None, body.to_string().into_bytes()))
}

#[test]
fn what_polar_says_narrows_and_never_grants() {
    let r = relay(100);
    let s = r.store.as_ref().expect("a store");
    let put = |id: u8, e: Entry| s.backend.put(&[id; 32], &e).expect("put");
    put(1, grant(1, "K-1", 100, Mark::None));
    // Answered after the reconcile's read began: newer than what it says.
    put(11, grant(1, "K-1", NOW + 1, Mark::None));
    put(2, grant(2, "K-2", 100, Mark::None));
    put(3, grant(3, "K-3", 100, Mark::None));
    put(4, grant(4, "K-4", 100, Mark::None));
    put(5, grant(5, "K-5", 100, Mark::None));
    put(15, grant(5, "K-5", 100, Mark::Stale));
    put(6, grant(6, "K-6-OLD", 100, Mark::None));
    put(16, grant(6, "K-6-NEW", 100, Mark::None));
    // The roster knows K-1 (Polar granted it once).
    s.roster.learn(&Key::new("K-1".to_string()), 0);
    assert!(!s.roster.first_seen(&Key::new("K-1".to_string())));
    let answers: Vec<(u8, ReadAnswer)> = vec![
        (1, polar_key("K-1", "revoked", None)),
        (2, polar_key("K-2", "disabled", None)),
        (3, polar_key("K-3", "granted", Some("2020-01-01T00:00:00Z"))),
        (
            4,
            Ok((
                404,
                None,
                br#"{"error":"ResourceNotFound","detail":"Not found"}"#.to_vec(),
            )),
        ),
        (5, polar_key("K-5", "granted", None)),
        (
            6,
            polar_key("K-6-NEW", "granted", Some("2099-01-01T00:00:00Z")),
        ),
    ];
    for (n, answer) in answers {
        s.reconcile.saw(&lk(n), 100);
        let check = reconcile_read(&r.reads(), at(NOW, u64::from(n))).expect("due");
        assert_eq!(
            check.url,
            format!("http://127.0.0.1:9/v1/license-keys/{}", lk(n))
        );
        assert!(!format!("{check:?}").contains("Bearer"));
        reconcile_answered(&r.reads(), check, answer, at(NOW, u64::from(n)));
    }
    let mark = |id: u8| s.backend.get(&[id; 32]).expect("get").expect("held").mark;
    assert_eq!(mark(1), Mark::Revoked, "revoked");
    assert_eq!(mark(11), Mark::None, "answered after the read began");
    assert_eq!(mark(2), Mark::Revoked, "disabled");
    assert_eq!(mark(3), Mark::Stale, "expired");
    assert_eq!(mark(4), Mark::Stale, "gone");
    assert_eq!(mark(5), Mark::None, "granted: left alone");
    assert_eq!(mark(15), Mark::Stale, "granted: a mark is never lifted");
    assert_eq!(mark(6), Mark::Stale, "rotated: the old string's grant");
    assert_eq!(mark(16), Mark::None, "rotated: the new string's grant");
    let e = s.backend.get(&[1; 32]).expect("get").expect("held");
    assert_eq!(e.marked_at, NOW);
    assert!(
        s.roster.first_seen(&Key::new("K-1".to_string())),
        "revoked: not known"
    );
    // Granted: known (again), as a key Polar's refusals took out of the roster must be
    // once a reconcile says granted (issue #62).
    for granted in ["K-5", "K-6-NEW"] {
        assert!(
            !s.roster.first_seen(&Key::new(granted.to_string())),
            "{granted}"
        );
    }
    // The expired and gone keys are dropped; the granted and rotated ones are checked again
    // later, and so are the revoked and disabled ones while their revocation refuses
    // without a call (a re-grant is heard within the interval).
    assert_eq!(s.reconcile.len(), 4);
    let families = s.reconcile.families();
    let calls = &families[0].3;
    for outcome in ["inactive", "expired", "gone", "granted", "rotated"] {
        let n = calls
            .iter()
            .find(|(l, _)| l.contains(outcome))
            .map(|(_, v)| v.as_str());
        let want = if outcome == "inactive" { "2" } else { "1" };
        assert_eq!(n, Some(want), "{outcome}");
    }
    assert_eq!(families[1].3[0].1, "5", "entries narrowed");
}

/// A store read per key (Workers): the host loads what [`reconcile_wants`] and
/// [`Check::wants`] name; an answer whose entries left the cache meanwhile narrows nothing
/// and the key is asked again (never dropped with its revocation unheard).
#[test]
fn a_store_read_per_key_is_loaded_first_and_a_revocation_is_never_lost() {
    // Room for two: the key's row and its entry.
    let (paged, r) = paged_relay(2, true);
    let s = r.store.as_ref().expect("a store");
    s.reconcile.saw(&lk(1), 100);
    let row = format!("l:{}", lk(1));
    assert_eq!(reconcile_wants(&r.reads(), at(159, 0)), None, "not due yet");
    let wants = reconcile_wants(&r.reads(), at(NOW, 0)).expect("due");
    assert_eq!(wants.tags, vec![row.clone()]);
    assert!(wants.all);
    assert_eq!(paged.missing(&wants).tags, vec![row.clone()]);
    // The host loads the row, then its entry.
    let hex = "01".repeat(32);
    paged.load(Vec::new(), vec![(row.clone(), vec![hex.clone()])]);
    assert_eq!(paged.missing(&wants).entries, vec![hex.clone()]);
    let entry = || Some(grant(1, "K-1", 100, Mark::None));
    paged.load(vec![(hex.clone(), entry())], Vec::new());
    assert!(paged.missing(&wants).is_empty());
    let check = reconcile_read(&r.reads(), at(NOW, 1)).expect("a read");
    // The row leaves the cache while Polar is asked (another read trims it).
    paged.load(Vec::new(), vec![("l:other".into(), Vec::new())]);
    paged.trim();
    assert_eq!(paged.missing(&check.wants()).tags, vec![row.clone()]);
    reconcile_answered(
        &r.reads(),
        check,
        polar_key("K-1", "revoked", None),
        at(NOW, 2),
    );
    let mark = || s.backend.get(&[1; 32]).expect("get").map(|e| e.mark);
    assert_eq!(mark(), Some(Mark::None), "nothing narrowed");
    assert_eq!(s.reconcile.len(), 1, "the key kept");
    // After the backoff, loaded again: revoked.
    assert_eq!(reconcile_wants(&r.reads(), at(NOW, 3)), None, "backing off");
    let wants = reconcile_wants(&r.reads(), at(NOW, 10_000)).expect("due again");
    paged.load(vec![(hex.clone(), entry())], vec![(row, vec![hex])]);
    assert!(paged.missing(&wants).is_empty());
    let check = reconcile_read(&r.reads(), at(NOW, 10_001)).expect("a read");
    assert!(paged.missing(&check.wants()).is_empty());
    reconcile_answered(
        &r.reads(),
        check,
        polar_key("K-1", "revoked", None),
        at(NOW, 10_002),
    );
    assert_eq!(mark(), Some(Mark::Revoked));
    assert_eq!(
        s.reconcile.len(),
        1,
        "asked again while its revocation refuses"
    );
}

/// Polar as it is now (polar-license-api.md §15): a revoked key granted again keeps its
/// string. A stored revocation that still refuses without a call is asked about once an
/// interval, and ends (the entry stale: the next check asks Polar) when Polar's read by id
/// says granted, unless the revocation was applied after the read began; one no longer
/// refusing (past `denial_for`) costs no read.
#[test]
fn a_revocation_ends_when_polars_read_by_id_says_granted_again() {
    let r = relay(100);
    let s = r.store.as_ref().expect("a store");
    let revoked = |n: u8, marked_at: i64| Entry {
        marked_at,
        ..grant(n, &format!("K-{n}"), 100, Mark::Revoked)
    };
    let mark = |id: u8| s.backend.get(&[id; 32]).expect("get").expect("held").mark;
    // Revoked 10 s ago (denial_for is 60 s): asked, granted again, lifted.
    s.backend.put(&[1; 32], &revoked(1, NOW - 10)).expect("put");
    s.reconcile.saw(&lk(1), 100);
    let check = reconcile_read(&r.reads(), at(NOW, 1)).expect("due");
    reconcile_answered(
        &r.reads(),
        check,
        polar_key("K-1", "granted", None),
        at(NOW, 2),
    );
    assert_eq!(
        mark(1),
        Mark::Stale,
        "the revocation ended: Polar decides next"
    );
    let e = s.backend.get(&[1; 32]).expect("get").expect("held");
    assert_eq!(e.marked_at, NOW);
    // A revocation applied while the read was under way stays.
    s.backend.put(&[2; 32], &revoked(2, NOW - 10)).expect("put");
    s.reconcile.saw(&lk(2), 100);
    let check = reconcile_read(&r.reads(), at(NOW, 3)).expect("due");
    s.note_revoked(&lk(2), at(NOW, 4));
    reconcile_answered(
        &r.reads(),
        check,
        polar_key("K-2", "granted", None),
        at(NOW, 5),
    );
    assert_eq!(mark(2), Mark::Revoked, "revoked after the read began");
    // Revoked long ago (past denial_for, a check asks Polar anyway): no read for it.
    s.backend
        .put(&[3; 32], &revoked(3, NOW - 600))
        .expect("put");
    s.reconcile.saw(&lk(3), 100);
    assert!(reconcile_read(&r.reads(), at(NOW, 6)).is_err(), "no read");
    assert_eq!(mark(3), Mark::Revoked);
}

/// A store read per key (Workers) reads none of its keys at start: the host lists its
/// index rows a bounded page at a time, and each key of a stored grant is learned, due one
/// interval after (as natively after a restart); a key Polar answered meanwhile keeps its
/// own last check, and the listing ends with a short page (or one that does not move on).
#[test]
fn a_store_read_per_key_lists_its_keys_a_bounded_page_at_a_time() {
    let (_, r) = paged_relay(4, true);
    let s = r.store.as_ref().expect("a store");
    // The start's read of the keys (natively all of them) finds none here.
    assert_eq!(
        reconcile_read(&r.reads(), at(NOW, 0)).err(),
        Some(Some(60_000))
    );
    assert_eq!(s.reconcile.len(), 0);
    // Polar answered key 1 since the start (at NOW + 30).
    s.reconcile.saw(&lk(1), NOW + 30);
    let first = reconcile_list(&r.reads()).expect("a page wanted");
    assert_eq!((first.prefix, first.after.as_deref()), ("l:", None));
    assert_eq!(first.limit, LIST_PAGE);
    let row = |n: u8, entry: u8| format!("l:{}|{}", lk(n), format!("{entry:02x}").repeat(32));
    // A full page: key 1, key 2 (two entries), a row that names no UUID, then keys 10-133.
    let mut page = vec![row(1, 1), row(2, 2), row(2, 3), "l:lk-a|04".to_string()];
    page.extend((10..134).map(|n| row(n, n)));
    assert_eq!(page.len(), LIST_PAGE);
    reconcile_listed(&r.reads(), &page, at(NOW, 1));
    let second = reconcile_list(&r.reads()).expect("another page wanted");
    assert_eq!(second.after.as_deref(), page.last().map(String::as_str));
    // A short page: the last.
    reconcile_listed(&r.reads(), &[row(200, 200)], at(NOW + 5, 2));
    assert_eq!(reconcile_list(&r.reads()), None, "listed");
    reconcile_listed(&r.reads(), &[row(201, 201)], at(NOW + 5, 3));
    {
        let q = s.reconcile.lock();
        let last = |n: u8| q.checked.get(&uuid_of(&lk(n)).expect("a uuid")).copied();
        assert_eq!(last(1), Some(NOW + 30), "answered meanwhile: its own check");
        assert_eq!(last(2), Some(NOW));
        assert_eq!(last(133), Some(NOW));
        assert_eq!(last(200), Some(NOW + 5));
        assert_eq!(last(201), None, "after the listing's end: not read");
        assert_eq!(q.checked.len(), 1 + 1 + 124 + 1);
    }
    // Due one interval after it was learned, the lowest id of the oldest first.
    assert_eq!(reconcile_wants(&r.reads(), at(NOW + 59, 4)), None);
    let due = reconcile_wants(&r.reads(), at(NOW + 60, 5)).expect("due");
    assert_eq!(due.tags, vec![format!("l:{}", lk(2))]);

    // A host that hands the same full page again ends the listing (never a loop).
    let again = crate::roster::tests::relay_with(StoreOptions {
        reconcile_every: 60,
        ..StoreOptions::default()
    });
    reconcile_listed(&again.reads(), &page, at(NOW, 0));
    assert!(reconcile_list(&again.reads()).is_some());
    reconcile_listed(&again.reads(), &page, at(NOW, 1));
    assert_eq!(reconcile_list(&again.reads()), None);
    // No reconcile, no listing.
    let off = crate::roster::tests::relay_with(StoreOptions {
        reconcile_every: 0,
        ..StoreOptions::default()
    });
    assert_eq!(reconcile_list(&off.reads()), None);
}

/// The listing stops at the keys the reconcile can check within `--stale-for` (its memory
/// bounded in a Durable Object): 25 calls a minute of idle room for 6 minutes here.
#[test]
fn the_listing_stops_at_what_the_reconcile_can_check_within_stale_for() {
    assert_eq!(
        list_cap(&StoreOptions::default()),
        135_360,
        "94 a minute for a day"
    );
    let options = StoreOptions {
        budget: 100,
        reserve: 0,
        fresh_for: 60,
        stale_for: 360,
        reconcile_every: 60,
        ..StoreOptions::default()
    };
    assert_eq!(list_cap(&options), 150);
    let r = crate::roster::tests::relay_with(options);
    let s = r.store.as_ref().expect("a store");
    let page = |from: u32| -> Vec<String> {
        (from..from + LIST_PAGE as u32)
            .map(|n| format!("l:{n:08}-0000-4000-8000-000000000000|00"))
            .collect()
    };
    reconcile_listed(&r.reads(), &page(0), at(NOW, 0));
    assert!(reconcile_list(&r.reads()).is_some());
    reconcile_listed(&r.reads(), &page(1_000), at(NOW, 1));
    assert_eq!(s.reconcile.len(), 150);
    assert_eq!(reconcile_list(&r.reads()), None, "no more pages");
    // Polar's answers still add their keys (as before the listing).
    s.reconcile.saw(&lk(200), NOW);
    assert_eq!(s.reconcile.len(), 151);
}

#[test]
fn oldest_first_only_when_due_and_only_with_idle_budget() {
    let r = relay(8);
    let s = r.store.as_ref().expect("a store");
    for n in [1u8, 2] {
        s.backend
            .put(&[n; 32], &grant(n, &format!("K-{n}"), 0, Mark::None))
            .expect("put");
    }
    s.reconcile.saw(&lk(1), 100);
    s.reconcile.saw(&lk(2), 50);
    // Not due before a minute after its last check.
    assert_eq!(
        reconcile_read(&r.reads(), at(109, 0)).err(),
        Some(Some(1_000))
    );
    // The oldest checked first.
    let first = reconcile_read(&r.reads(), at(200, 0)).expect("due");
    assert!(first.url.ends_with(&lk(2)), "{}", first.url);
    // 1 of 8 used; a client's call makes 2: 6 of 8 free is not more than three quarters.
    s.take(at(200, 1), Use::Shared).expect("a client's call");
    assert_eq!(
        reconcile_read(&r.reads(), at(200, 2)).err(),
        Some(Some(1_000))
    );
    assert_eq!(s.budget(at(200, 3)).used(3), 2, "no unit taken");
    // Polar's 429: learned by the budget, nothing read before its Retry-After, the key
    // first again after it.
    reconcile_answered(
        &r.reads(),
        first,
        Ok((429, Some(30), Vec::new())),
        at(200, 4),
    );
    assert_eq!(s.budget(at(200, 5)).room(5), 0.0);
    let later = reconcile_read(&r.reads(), at(300, 70_000)).expect("due again");
    assert!(later.url.ends_with(&lk(2)), "{}", later.url);
    // A key whose grants are gone costs no call: dropped.
    reconcile_answered(
        &r.reads(),
        later,
        polar_key("K-2", "granted", None),
        at(300, 70_001),
    );
    s.backend
        .put(&[1; 32], &grant(1, "K-1", 0, Mark::Revoked))
        .expect("put");
    assert_eq!(
        reconcile_read(&r.reads(), at(300, 70_002)).err(),
        Some(Some(0))
    );
    assert_eq!(s.reconcile.len(), 1);
    // A token that cannot read keys: no reconcile.
    s.reconcile.saw(&lk(1), 0);
    s.backend
        .put(&[1; 32], &grant(1, "K-1", 0, Mark::None))
        .expect("put");
    let check = reconcile_read(&r.reads(), at(400, 140_000)).expect("due");
    reconcile_answered(
        &r.reads(),
        check,
        Ok((403, None, Vec::new())),
        at(400, 140_001),
    );
    assert_eq!(
        reconcile_read(&r.reads(), at(500, 200_000)).err(),
        Some(None)
    );
}
