#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn the_budget_never_spends_more_than_its_minute_and_keeps_the_reserve() {
    let mut b = Budget::new(10, 2);
    for i in 0..8 {
        assert_eq!(b.take(i, Use::Shared), Ok(()));
    }
    // Validates are out: the reserve is for activations.
    assert!(b.take(100, Use::Shared).is_err());
    assert_eq!(b.take(100, Use::Reserved), Ok(()));
    assert_eq!(b.take(100, Use::Reserved), Ok(()));
    assert_eq!(b.take(100, Use::Reserved), Err(60));
    // Reserved calls count against the whole budget: a minute after the first validates,
    // only the two reserved calls remain in the window, and validates pass again.
    assert_eq!(b.take(60_000, Use::Shared), Err(1));
    assert_eq!(b.take(60_050, Use::Shared), Ok(()));
    // Polar's 429 stops everything for its Retry-After.
    b.learn(61_000, Some(30));
    assert!(b.take(200_000, Use::Reserved).is_ok());
    let mut c = Budget::new(10, 2);
    c.learn(0, Some(30));
    assert_eq!(c.take(1_000, Use::Reserved), Err(29));
    assert_eq!(c.take(30_000, Use::Reserved), Ok(()));
}

/// Spend `n` calls (validates) from monotonic ms `from`, one a ms.
fn spent(limit: u32, reserve: u32, n: u64, from: u64) -> Budget {
    let mut b = Budget::new(limit, reserve);
    for i in 0..n {
        assert_eq!(b.take(from + i, Use::Shared), Ok(()));
    }
    b
}

/// Validates taken until one is refused.
fn validates_left(b: &mut Budget, now_ms: u64) -> u32 {
    let mut n = 0;
    while b.take(now_ms, Use::Shared).is_ok() {
        n += 1;
    }
    n
}

#[test]
fn a_restored_budget_has_the_room_its_last_run_left() {
    // 6 calls at wall second 1000 (monotonic 50_000 in that run); the state kept then.
    let mut old = spent(10, 2, 6, 50_000);
    let state = old.state(1_000, 50_010);
    assert_eq!(state.calls, vec![(0, 6)]);
    assert_eq!(state.blocked_ms, 0);
    let json = serde_json::to_string(&state).expect("json");
    assert_eq!(json, r#""1000 0 0:6""#);
    let state: BudgetState = serde_json::from_str(&json).expect("back");
    // A new process 10 s later: its monotonic clock at 0. The validates' share (8) less 6.
    let mut new = Budget::new(10, 2);
    new.restore(&state, 1_010, 0);
    assert_eq!(new.used(0), 6);
    assert_eq!(validates_left(&mut new, 0), 2);
    // Until the minute of those calls has passed (counted short by a second at most).
    let mut new = Budget::new(10, 2);
    new.restore(&state, 1_010, 0);
    assert_eq!(new.used(49_000), 6, "still within the minute of the calls");
    assert_eq!(new.used(51_000), 0, "the minute passed");
    // Restored after the window: nothing.
    let mut late = Budget::new(10, 2);
    late.restore(&state, 1_062, 0);
    assert_eq!(validates_left(&mut late, 0), 8);
    // A wall clock set back counts no time: the calls as just made.
    let mut back = Budget::new(10, 2);
    back.restore(&state, 900, 7);
    assert_eq!(back.used(59_000), 6);
    assert_eq!(back.used(60_007), 0);
}

#[test]
fn polars_429_is_restored_until_its_retry_after() {
    let mut b = Budget::new(10, 2);
    b.learn(5_000, Some(30));
    let state = b.state(2_000, 5_000);
    assert_eq!(state.blocked_ms, 30_000);
    let mut new = Budget::new(10, 2);
    new.restore(&state, 2_010, 0);
    // 10 s later by the wall clock (counted as 9): 21 s of the block remain.
    assert_eq!(new.take(0, Use::Reserved), Err(21));
    assert_eq!(new.take(20_999, Use::Reserved), Err(1));
    assert_eq!(new.take(21_000, Use::Reserved), Ok(()));
    // Past it, nothing blocks.
    let mut later = Budget::new(10, 2);
    later.restore(&state, 2_031, 0);
    assert_eq!(later.take(0, Use::Reserved), Ok(()));
}

#[test]
fn a_budgets_state_is_bounded_and_a_damaged_one_spends_no_more_than_the_budget() {
    // A call every 100 ms for a minute, of a budget of 1,000: at most one pair a second.
    let mut b = Budget::new(1_000, 0);
    for i in 0..600 {
        assert_eq!(b.take(i * 100, Use::Reserved), Ok(()));
    }
    let state = b.state(0, 59_999);
    assert_eq!(state.calls.len(), 60);
    assert_eq!(state.calls.iter().map(|(_, n)| n).sum::<u32>(), 600);
    assert!(serde_json::to_string(&state).expect("json").len() < 500);
    for bad in [
        "", "1", "1 x", "1 0 3", "1 0 3:", "1 0 :3", "1 0 3:-1", "1  0",
    ] {
        assert!(BudgetState::try_from(bad.to_string()).is_err(), "{bad:?}");
    }
    // A state claiming more calls than the budget and a block of days: the budget and an
    // hour at most.
    let damaged = BudgetState {
        at: 0,
        calls: vec![(3, u32::MAX), (1, u32::MAX)],
        blocked_ms: 86_400_000,
    };
    let mut b = Budget::new(10, 2);
    b.restore(&damaged, 0, 0);
    assert_eq!(b.used(0), 10);
    assert_eq!(b.take(0, Use::Reserved), Err(3_600));
}

#[test]
fn a_webhook_only_narrows_and_an_older_one_changes_nothing() {
    let entry = Entry {
        customer_id: None,
        ..key_entry()
    };
    let revoke = Narrowing {
        tags: vec!["l:L".into()],
        mark: Mark::Revoked,
        at: 50,
    };
    let revoked = narrowed(&entry, &revoke).expect("narrowed");
    assert_eq!(revoked.mark, Mark::Revoked);
    assert!(revoked.grant, "the stored answer is kept; the mark denies");
    // A later re-grant cannot lift a revocation: only Polar's own answer replaces it.
    let regrant = Narrowing {
        tags: vec!["l:L".into()],
        mark: Mark::Stale,
        at: 60,
    };
    assert_eq!(
        narrowed(&revoked, &regrant).map(|e| e.mark),
        Some(Mark::Revoked)
    );
    // An event older than the newest applied changes nothing.
    let old = Narrowing { at: 10, ..regrant };
    assert_eq!(narrowed(&revoked, &old), None);
}

/// A key's entry, untouched by webhooks.
fn key_entry() -> Entry {
    granted("L", "C", 100)
}

/// A grant of Polar's for the key id `key` and the customer id `customer`, answered at `at`,
/// untouched by webhooks.
pub(crate) fn granted(key: &str, customer: &str, at: i64) -> Entry {
    Entry {
        customer_id: Some(customer.into()),
        key_at: None,
        ..Entry::test_grant(key.into(), at, Mark::None, None)
    }
}

/// Polar's event of `kind` at `at` (unix seconds): about the key `L` when `key` is true,
/// else about the customer `C` (a purchase event, or a license-key grant without a key id).
fn about(kind: &str, key: bool, at: i64) -> Narrowing {
    let when = crate::clock::rfc3339(at);
    let properties = if key {
        serde_json::json!({"license_key_id": "L"})
    } else {
        serde_json::json!({})
    };
    narrowing(&serde_json::json!({"type": kind, "timestamp": when,
        "data": {"modified_at": when, "customer_id": "C",
                 "benefit": {"type": "license_keys"}, "properties": properties}}))
    .expect("a narrowing")
}

/// Applies events in the order delivered (an event that changes nothing leaves it).
fn delivered(entry: &Entry, events: &[Narrowing]) -> Entry {
    events
        .iter()
        .fold(entry.clone(), |e, n| narrowed(&e, n).unwrap_or(e))
}

/// Polar's answer stored since: its mark gone, what webhooks were applied kept (as the
/// relay stores an answer).
fn answered(entry: &Entry) -> Entry {
    Entry {
        mark: Mark::None,
        marked_at: 0,
        ..entry.clone()
    }
}

#[test]
fn a_revocation_is_ignored_only_for_a_newer_event_about_its_own_key() {
    let entry = key_entry();
    let (t1, t2) = (1_000, 2_000);
    // A customer-level event at t2 delivered first: the key's revocation at t1 denies,
    // whether or not Polar answered in between.
    for customer in [
        about("subscription.canceled", false, t2),
        about("order.refunded", false, t2),
        about("benefit_grant.updated", false, t2),
    ] {
        let after = delivered(&entry, &[customer]);
        for e in [after.clone(), answered(&after)] {
            let revoked = delivered(&e, &[about("benefit_grant.revoked", true, t1)]);
            assert_eq!(revoked.mark, Mark::Revoked, "{e:?}");
        }
    }
    // The same key re-granted at t2: its revocation at t1 is not a denial, only a re-check
    // (also once Polar answered after the re-grant).
    let regranted = delivered(&entry, &[about("benefit_grant.updated", true, t2)]);
    for e in [regranted.clone(), answered(&regranted)] {
        let late = delivered(&e, &[about("benefit_grant.revoked", true, t1)]);
        assert_eq!(late.mark, Mark::Stale, "{e:?}");
    }
    // Revoked at t2: no older event, about the key or the customer, undoes it.
    let revoked = delivered(&entry, &[about("benefit_grant.revoked", true, t2)]);
    for older in [
        about("benefit_grant.created", true, t1),
        about("benefit_grant.updated", true, t1),
        about("benefit_grant.cycled", true, t1),
        about("subscription.active", false, t1),
        about("benefit_grant.created", false, t1),
    ] {
        assert_eq!(delivered(&revoked, &[older]).mark, Mark::Revoked);
    }
    // An older event of the same kind as the newest applied changes nothing (as before):
    // an older update after a newer one, an older purchase event after a newer one.
    for (newer, older) in [
        (
            about("benefit_grant.updated", true, t2),
            about("benefit_grant.updated", true, t1),
        ),
        (
            about("subscription.updated", false, t2),
            about("subscription.updated", false, t1),
        ),
    ] {
        let e = answered(&delivered(&entry, &[newer]));
        assert_eq!(narrowed(&e, &older), None);
    }
}

/// An entry an older relay stored (one `last_event_at` for every event) reads back with
/// that time as the customer's: no revocation of the key is hidden by it.
#[test]
fn an_older_relays_entry_hides_no_revocation() {
    let mut old = serde_json::to_value(key_entry()).expect("json");
    let fields = old.as_object_mut().expect("an object");
    fields.remove("key_event_at");
    fields.insert("last_event_at".into(), 2_000.into());
    let e: Entry = serde_json::from_value(old).expect("read back");
    assert_eq!((e.customer_event_at, e.key_event_at), (2_000, 0));
    let late = delivered(&e, &[about("benefit_grant.revoked", true, 1_000)]);
    assert_eq!(late.mark, Mark::Revoked);
}

/// One key's entries past [`MAX_ENTRIES_PER_KEY`]: its oldest go (with their index
/// rows), its newest stay, other keys' entries stay.
pub(crate) fn caps_entries_per_key(b: &dyn Backend) {
    let tag = key_tag("org", "sha");
    let entry = |i: usize, tag: &str| Entry {
        answered_at: 1_000 + i as i64,
        key_tag: Some(tag.to_string()),
        conditions: None,
        ..key_entry()
    };
    let id = |i: usize, salt: u8| {
        let mut id = [salt; 32];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        id
    };
    let other = key_tag("org", "another");
    b.put(&id(0, 2), &entry(0, &other)).expect("put");
    let n = MAX_ENTRIES_PER_KEY + 10;
    for i in 0..n {
        b.put(&id(i, 1), &entry(i, &tag)).expect("put");
    }
    let kept = b.index(&tag).expect("index");
    assert_eq!(kept.len(), MAX_ENTRIES_PER_KEY);
    for i in 0..10 {
        assert_eq!(b.get(&id(i, 1)).expect("get"), None, "{i}: the oldest go");
        assert!(!kept.contains(&id(i, 1)));
    }
    for i in 10..n {
        assert!(
            b.get(&id(i, 1)).expect("get").is_some(),
            "{i}: the newest stay"
        );
    }
    assert_eq!(b.len().expect("len"), MAX_ENTRIES_PER_KEY + 1);
    assert!(
        b.get(&id(0, 2)).expect("get").is_some(),
        "another key's stays"
    );
    // The license key's own index row lost the evicted ids too.
    assert_eq!(
        b.index("l:L").expect("index").len(),
        MAX_ENTRIES_PER_KEY + 1
    );
}

/// The byte cap (issue #62): a flood of denials of distinct keys (what unknown and refused
/// keys leave), then of grants, keeps the store's bytes under its cap; denials go before
/// grants and the oldest first, so known keys' grants outlive the denials' flood; a
/// revocation a webhook marked is never evicted; and once only revocations are left to evict,
/// a new answer is not stored while every revocation stays.
pub(crate) fn caps_bytes(b: &dyn Backend) {
    let cap: usize = 256 * 1024;
    b.cap_bytes(cap as u64);
    let id = |i: usize, salt: u8| {
        let mut id = [salt; 32];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        id
    };
    let body = |n: usize| format!("{{\"detail\":\"{}\"}}", "x".repeat(n));
    let entry = |i: usize, grant: bool, at: i64| Entry {
        license_key_id: Some(format!("L{i}")),
        customer_id: Some(format!("C{i}")),
        grant,
        status: if grant { 200 } else { 404 },
        body: body(2_000),
        key_tag: Some(key_tag("org", &format!("sha{i}"))),
        ..granted("", "", at)
    };
    let under = |what: &str| {
        let bytes = b.stored_bytes().expect("counted") as usize;
        assert!(bytes <= cap, "{what}: {bytes} bytes past the cap of {cap}");
    };
    // A revocation, the oldest of all, and five known keys' grants.
    let mut revoked = entry(0, true, 1);
    revoked.mark = Mark::Revoked;
    b.put(&id(0, 9), &revoked).expect("put");
    for k in 1..=5 {
        b.put(&id(k, 1), &entry(k, true, 10 + k as i64))
            .expect("put");
    }
    // A flood of denials of distinct keys, newer than all of them.
    // (Each entry about 2.5 KB: some 100 fit, three times over.)
    for i in 0..300 {
        b.put(&id(i, 2), &entry(1_000 + i, false, 100 + i as i64))
            .expect("put");
        under("the denials' flood");
    }
    assert_eq!(b.get(&id(0, 9)).expect("get"), Some(revoked.clone()));
    for k in 1..=5 {
        assert!(b.get(&id(k, 1)).expect("get").is_some(), "grant {k} kept");
    }
    assert!(
        b.get(&id(0, 2)).expect("get").is_none(),
        "the oldest denial went"
    );
    assert!(
        b.get(&id(299, 2)).expect("get").is_some(),
        "the newest stays"
    );
    // A flood of grants: the denials go first, then the oldest grants; never the revocation.
    for i in 0..300 {
        b.put(&id(i, 3), &entry(5_000 + i, true, 10_000 + i as i64))
            .expect("put");
        under("the grants' flood");
    }
    assert_eq!(b.get(&id(0, 9)).expect("get"), Some(revoked.clone()));
    assert!(
        b.get(&id(299, 2)).expect("get").is_none(),
        "denials went first"
    );
    assert!(b.get(&id(299, 3)).expect("get").is_some());
    // Revocations alone fill the cap (they are always written: a webhook only narrows).
    let mut n = 0;
    while (b.stored_bytes().expect("counted") as usize) < cap {
        let mut r = entry(20_000 + n, true, 20_000 + n as i64);
        r.mark = Mark::Revoked;
        b.put(&id(n, 4), &r).expect("put");
        n += 1;
    }
    let held = b.len().expect("len");
    // Then a new answer finds no room: passed on, not stored; every revocation stays.
    let written = b
        .update(&id(1, 5), &mut |_| Some(entry(30_000, true, 30_000)))
        .expect("update");
    assert_eq!(written, None, "stored past the cap");
    assert!(b.get(&id(1, 5)).expect("get").is_none());
    assert_eq!(b.get(&id(0, 9)).expect("get"), Some(revoked));
    for i in 0..n {
        assert!(
            b.get(&id(i, 4)).expect("get").is_some(),
            "revocation {i} kept"
        );
    }
    assert!(b.len().expect("len") <= held);
}

/// The memory store's count cap (`max_entries`) spares what the byte cap spares: a key's seat
/// pool and a webhook's revocation, however old, while newer answers flood it. Before, it
/// evicted the oldest whatever they were: the flood took the held seats and the revocation
/// (a revoked key then asked of Polar again, or while Polar cannot answer, granted).
#[test]
fn the_count_cap_spares_seat_pools_and_revocations() {
    let b = MemoryBackend::new(8);
    let pool_id = [1u8; 32];
    let revoked_id = [2u8; 32];
    let pool = Entry {
        status: SEAT_POOL_STATUS,
        grant: false,
        key_tag: None,
        license_key_id: None,
        customer_id: None,
        body: r#"{"seats":[]}"#.into(),
        ..granted("", "", 0)
    };
    let revoked = Entry {
        mark: Mark::Revoked,
        marked_at: 1,
        ..granted("lk-revoked", "c", 1)
    };
    b.put(&pool_id, &pool).unwrap();
    b.put(&revoked_id, &revoked).unwrap();
    for i in 0..100u8 {
        let mut id = [0u8; 32];
        id[0] = 10;
        id[1] = i;
        b.put(&id, &granted(&format!("lk-{i}"), "c", 100 + i64::from(i)))
            .unwrap();
    }
    assert_eq!(b.get(&pool_id).unwrap(), Some(pool));
    assert_eq!(b.get(&revoked_id).unwrap(), Some(revoked));
    let held = (0..100u8)
        .filter(|i| {
            let mut id = [0u8; 32];
            id[0] = 10;
            id[1] = *i;
            b.get(&id).unwrap().is_some()
        })
        .count();
    assert!(
        held <= 6,
        "the cap holds for the others: {held} of 100 kept"
    );
}

#[test]
fn the_byte_cap_holds_in_memory_and_in_the_journal() {
    caps_bytes(&MemoryBackend::new(1_000_000));
    let journal = JournalBackend::new(1_000_000);
    caps_bytes(&journal);
    // What the journal recorded restores to the same bytes.
    let restored = JournalBackend::new(1_000_000);
    restored.restore(layout::latest_items(journal.take()));
    assert_eq!(restored.stored_bytes(), journal.stored_bytes());
    assert_eq!(restored.len().expect("len"), journal.len().expect("len"));
}

#[test]
fn a_keys_entries_are_capped_in_memory_and_in_the_journal() {
    caps_entries_per_key(&MemoryBackend::new(1_000));
    let journal = JournalBackend::new(1_000);
    caps_entries_per_key(&journal);
    let deleted = journal
        .take()
        .iter()
        .filter(|i| matches!(i, JournalItem::Delete { .. }))
        .count();
    assert_eq!(deleted, 10, "each eviction journaled");
}

#[test]
fn a_journal_restores_what_it_recorded() {
    let a = JournalBackend::new(10);
    let entry = granted("L", "C", 5);
    a.put(&[7; 32], &entry).expect("put");
    assert!(a.apply_webhook("evt", 9, &[]).expect("webhook"));
    let journal = a.take();
    assert_eq!(journal.len(), 2);
    assert!(a.take().is_empty(), "handed over once");
    let text = serde_json::to_string(&journal).expect("json");
    let b = JournalBackend::new(10);
    b.restore(serde_json::from_str(&text).expect("back"));
    assert_eq!(b.get(&[7; 32]).expect("get"), Some(entry));
    assert_eq!(b.index("l:L").expect("index"), vec![[7; 32]]);
    assert!(
        !b.apply_webhook("evt", 10, &[]).expect("seen"),
        "the id was restored"
    );
}

#[test]
fn a_journal_keeps_the_newest_budget_state_and_restores_it() {
    let a = JournalBackend::new(10);
    let state = |n: u32| BudgetState {
        at: 100,
        calls: vec![(0, n)],
        blocked_ms: 0,
    };
    a.stage_budget(state(1));
    a.stage_budget(state(2));
    assert!(a.apply_webhook("evt", 9, &[]).expect("webhook"));
    a.stage_budget(state(3));
    let journal = a.take();
    let budgets: Vec<_> = journal
        .iter()
        .filter(|i| matches!(i, JournalItem::Budget { .. }))
        .collect();
    assert_eq!(budgets, [&JournalItem::Budget { state: state(3) }]);
    let text = serde_json::to_string(&journal).expect("json");
    assert!(
        text.contains(r#"{"op":"budget","state":"100 0 0:3"}"#),
        "{text}"
    );
    let b = JournalBackend::new(10);
    assert_eq!(b.load_budget().expect("load"), None);
    b.restore(serde_json::from_str(&text).expect("back"));
    assert_eq!(b.load_budget().expect("load"), Some(state(3)));
    // A store in memory keeps nothing of it.
    let m = MemoryBackend::new(10);
    m.stage_budget(state(4));
    m.flush_budget().expect("flush");
    assert_eq!(m.load_budget().expect("load"), None);
}

#[test]
fn standard_webhooks_vector_and_both_secret_forms() {
    // The Standard Webhooks specification's example.
    let body = br#"{"test": 2432232314}"#;
    let ok = verify_webhook(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
        Some("1614265330"),
        Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        body,
        1_614_265_330,
    );
    assert_eq!(ok, Ok(()));
    let later = verify_webhook(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
        Some("1614265330"),
        Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        body,
        1_614_265_330 + 301,
    );
    assert_eq!(later, Err(WebhookRefusal::Timestamp));
    let tampered = verify_webhook(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
        Some("1614265330"),
        Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        br#"{"test": 2432232315}"#,
        1_614_265_330,
    );
    assert_eq!(tampered, Err(WebhookRefusal::Signature));
}

#[test]
fn a_timestamp_far_from_now_is_refused_without_overflowing() {
    let body = br#"{"test": 2432232314}"#;
    let sig = Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let id = Some("msg_p5jXN8AQM9LWM0D4loKWxJek");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    for (ts, now) in [
        ("-9223372036854775808", 1_614_265_330),
        ("9223372036854775807", -1_614_265_330),
        ("9223372036854775807", i64::MIN),
        ("1614265330", 1_614_265_330 - 301),
    ] {
        assert_eq!(
            verify_webhook(secret, id, Some(ts), sig, body, now),
            Err(WebhookRefusal::Timestamp),
            "{ts} at {now}"
        );
    }
    assert_eq!(
        verify_webhook(
            secret,
            id,
            Some("1614265330"),
            sig,
            body,
            1_614_265_330 - 300
        ),
        Ok(())
    );
}

#[test]
fn only_a_license_key_grant_names_keys_and_only_its_revocation_denies() {
    let event = |kind: &str, data: serde_json::Value| serde_json::json!({"type": kind, "timestamp": "2026-11-25T10:00:00Z", "data": data});
    // A license key's grant revoked: its key's entries, denied.
    let n = narrowing(&event(
        "benefit_grant.revoked",
        serde_json::json!({"customer_id": "C", "benefit": {"type": "license_keys"},
                           "properties": {"license_key_id": "L"}}),
    ))
    .expect("a narrowing");
    assert_eq!((n.tags, n.mark), (vec!["l:L".to_string()], Mark::Revoked));
    // Another benefit's grant revoked (no license key in it): nothing.
    for benefit in ["discord", "github_repository", "downloadables", "custom"] {
        let n = narrowing(&event(
            "benefit_grant.revoked",
            serde_json::json!({"customer_id": "C", "benefit": {"type": benefit},
                               "properties": {}}),
        ));
        assert_eq!(n, None, "{benefit}");
    }
    // A license-key grant without its key's id, or a purchase event: the customer's
    // entries, asked again (never denied).
    for (kind, data) in [
        (
            "benefit_grant.revoked",
            serde_json::json!({"customer_id": "C", "benefit": {"type": "license_keys"},
                               "properties": {}}),
        ),
        (
            "benefit_grant.revoked",
            serde_json::json!({"customer_id": "C", "properties": {}}),
        ),
        (
            "subscription.revoked",
            serde_json::json!({"customer_id": "C"}),
        ),
    ] {
        let n = narrowing(&event(kind, data)).expect("a narrowing");
        assert_eq!(
            (n.tags, n.mark),
            (vec!["c:C".to_string()], Mark::Stale),
            "{kind}"
        );
    }
}

/// A webhook id is remembered for [`WEBHOOK_MEMORY_SECONDS`] (a redelivery within it changes
/// nothing) and forgotten after, with the next webhook (journaled as `Forget` where there is a
/// journal): on the memory, journal and paged backends, which share the rule.
#[test]
fn a_webhook_id_is_forgotten_after_its_memory() {
    let journal = JournalBackend::new(10);
    let paged = PagedBackend::new(10, 10);
    let backends: [&dyn Backend; 3] = [&MemoryBackend::new(10), &journal, &paged];
    for b in backends {
        assert!(b.apply_webhook("evt-1", 1_000, &[]).expect("first"));
        let within = 1_000 + WEBHOOK_MEMORY_SECONDS - 1;
        assert!(b.apply_webhook("evt-2", within, &[]).expect("second"));
        assert!(!b.apply_webhook("evt-1", within, &[]).expect("redelivered"));
        assert!(b
            .apply_webhook("evt-3", 1_000 + WEBHOOK_MEMORY_SECONDS, &[])
            .expect("third"));
        assert!(
            b.apply_webhook("evt-1", 1_000 + WEBHOOK_MEMORY_SECONDS, &[])
                .expect("forgotten"),
            "an id older than the memory is forgotten"
        );
    }
    for items in [journal.take(), paged.take()] {
        assert!(
            items.contains(&JournalItem::Forget { id: "evt-1".into() }),
            "{items:?}"
        );
    }
}

/// The Standard Webhooks example's delivery with `signatures` as its `webhook-signature`: the
/// outcome and the HMACs over the body it cost (counted on this thread).
fn verified_with(signatures: &str) -> (Result<(), WebhookRefusal>, usize) {
    let before = webhook::HMACS.with(std::cell::Cell::get);
    let outcome = verify_webhook(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
        Some("1614265330"),
        Some(signatures),
        &vec![b'x'; 1024 * 1024],
        1_614_265_330,
    );
    (outcome, webhook::HMACS.with(std::cell::Cell::get) - before)
}

/// Issue #52: an 8,000-byte `webhook-signature` of `v1,` entries cost an HMAC over the whole
/// body (1 MiB) per entry and per form of the secret (4.7 s of CPU). A header over the
/// limits is refused before any HMAC; one within them costs at most two (one per form of the
/// secret), however many entries it holds.
#[test]
fn a_signature_header_costs_at_most_two_hmacs_whatever_it_holds() {
    let forged = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    // Thousands of entries, 8,000 bytes and more, of the old shape: refused, no HMAC.
    for n in [WEBHOOK_MAX_SIGNATURES + 1, 171, 3_000] {
        let header = vec![forged; n].join(" ");
        assert_eq!(
            verified_with(&header),
            (Err(WebhookRefusal::Headers), 0),
            "{n}"
        );
        assert!(!webhook_signatures_within_limits(&header));
    }
    // One entry, but longer than the header's limit: refused, no HMAC.
    let long = format!("v1,{}", "A".repeat(WEBHOOK_MAX_SIGNATURE_HEADER));
    assert_eq!(verified_with(&long), (Err(WebhookRefusal::Headers), 0));
    // Within the limits: every entry compared, two HMACs in all (the secret's two forms).
    let eight = [forged; WEBHOOK_MAX_SIGNATURES].join(" ");
    assert!(webhook_signatures_within_limits(&eight));
    assert_eq!(verified_with(&eight), (Err(WebhookRefusal::Signature), 2));
    // Entries that are no `v1,` signature (another version, bad base64, a wrong length) cost
    // nothing: no HMAC for a header without one.
    let none = "v1a,AAAA v2,abc v1,!!!! v1,AAAA";
    assert_eq!(verified_with(none), (Err(WebhookRefusal::Signature), 0));
    // Spaces count toward the header's bytes, not its entries.
    let spaced = format!("{forged}{}", " ".repeat(16));
    assert_eq!(verified_with(&spaced), (Err(WebhookRefusal::Signature), 2));
}

/// The right signature among others (a secret being rotated: the old one's first) still
/// verifies, wherever it stands, for two HMACs.
#[test]
fn the_right_signature_among_others_verifies_for_two_hmacs() {
    use hmac::{Hmac, Mac};
    let body = vec![b'x'; 1024 * 1024];
    let mut raw = [0u8; 64];
    let key = {
        use ct_codecs::Decoder;
        ct_codecs::Base64::decode(&mut raw, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", None)
            .expect("b64")
            .to_vec()
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.");
    mac.update(&body);
    let right = {
        use ct_codecs::Encoder;
        ct_codecs::Base64::encode_to_string(mac.finalize().into_bytes()).expect("b64")
    };
    let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    for at in 0..WEBHOOK_MAX_SIGNATURES {
        let mut entries = vec![wrong.to_string(); WEBHOOK_MAX_SIGNATURES];
        entries[at] = format!("v1,{right}");
        assert_eq!(verified_with(&entries.join(" ")), (Ok(()), 2), "at {at}");
    }
}

/// The budget's defaults, one place for every host: Polar's 500 a minute, the sandbox's 100, a
/// quarter kept for activations unless given.
#[test]
fn the_budgets_defaults_are_the_cores() {
    use super::{StoreOptions, POLAR_BUDGET, SANDBOX_BUDGET};
    let at = |sandbox, budget, reserve| {
        let o = StoreOptions::default().with_budget(sandbox, budget, reserve);
        (o.budget, o.reserve)
    };
    assert_eq!((POLAR_BUDGET, SANDBOX_BUDGET), (500, 100));
    assert_eq!(at(false, None, None), (500, 125));
    assert_eq!(at(true, None, None), (100, 25));
    assert_eq!(at(true, Some(40), None), (40, 10));
    assert_eq!(at(false, Some(40), Some(0)), (40, 0));
    let d = StoreOptions::default();
    assert_eq!((d.budget, d.reserve), at(false, None, None));
    // Given, then checked by the core: a reserve at the budget is refused.
    let o = StoreOptions::default().with_budget(false, Some(10), Some(10));
    assert_eq!(o.problem().map(|p| p.0), Some("budget"));
}
