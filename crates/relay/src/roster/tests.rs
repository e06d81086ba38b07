//! The roster's unit tests (kept beside roster.rs, out of its library code).

// Test code only (the module is `#[cfg(test)]` in roster.rs; said again here for the hostile
// suite's scan of the routers' paths, which reads a file's code up to its first such line).
#[cfg(test)]
use super::*;
use crate::clock::at;
use crate::reads::{refetch_wants, roster_answered, roster_read, roster_warning};
use crate::relay::Relay;
use crate::store::Use;

#[test]
fn ipv6_clients_count_by_their_64() {
    assert_eq!(client_group("127.0.0.7"), "127.0.0.7");
    assert_eq!(
        client_group("2001:db8:1:2:aaaa::1"),
        client_group("2001:db8:1:2:bbbb:cccc:dddd:eeee")
    );
    assert_ne!(
        client_group("2001:db8:1:2::1"),
        client_group("2001:db8:1:3::1")
    );
    assert_eq!(client_group("::ffff:10.0.0.1"), "10.0.0.1");
    assert_eq!(client_group("not an address"), "not an address");
}

#[test]
fn the_share_is_capped_and_divided_between_the_clients() {
    // 10 % of 100 calls a second: 10 first-seen calls.
    let mut s = FirstSeen::new(100, 10, 1_000);
    // One client alone may take the whole share.
    for _ in 0..10 {
        assert_eq!(s.take("a", 0), Ok(()));
    }
    assert_eq!(s.take("a", 0), Err(1));
    assert_eq!(s.take("b", 0), Err(1), "the share is spent");
    // The window over: a and b share it; a flood from a leaves b its part.
    let mut s = FirstSeen::new(100, 10, 1_000);
    assert_eq!(s.take("b", 0), Ok(()));
    let a_got = (0..20).filter(|_| s.take("a", 0).is_ok()).count();
    assert_eq!(a_got, 5, "a holds half the share with b in it");
    assert_eq!(s.take("b", 0), Ok(()));
    // Many clients: each at most its part, the share never exceeded.
    let mut s = FirstSeen::new(100, 10, 1_000);
    let got = (0..64)
        .flat_map(|c| (0..10).map(move |_| c))
        .filter(|c| s.take(&format!("127.0.0.{c}"), 0).is_ok())
        .count();
    assert_eq!(got, 10);
    // No share: every first-seen key waits a window.
    let mut none = FirstSeen::new(100, 0, 60_000);
    assert_eq!(none.take("a", 0), Err(60));
}

#[test]
fn the_roster_pages_then_is_current_and_learns() {
    let r = Roster::new(true);
    let k = Key::new("K-1".to_string());
    assert!(r.first_seen(&k));
    assert_eq!(r.next(0, 0), Job::Page(1));
    r.page_read(1, &["K-1".to_string()], 2, 0);
    assert!(!r.first_seen(&k));
    assert_eq!(r.next(0, 0), Job::Page(2));
    r.page_read(2, &["K-2".to_string()], 2, 0);
    assert_eq!(r.phase(), Phase::Current { since_ms: 0 });
    r.refetch("id-1", 0);
    r.refetch("id-1", 0);
    assert_eq!(r.next(0, 0), Job::Refetch("id-1".into(), REFETCH_TRIES, 0));
    assert_eq!(r.next(0, 0), Job::Wait(RELIST_MS), "idle until the relist");
    assert_eq!(r.next(1_000, 0), Job::Wait(RELIST_MS - 1_000));
    r.hold(0, 1_000);
    assert_eq!(r.next(10, 0), Job::Wait(990));
    // An hour on, it is paged in again, the keys it holds kept meanwhile.
    assert_eq!(r.next(RELIST_MS, 0), Job::Page(1));
    assert!(!r.first_seen(&k));
    let off = Roster::new(false);
    assert!(!off.first_seen(&k));
    assert_eq!(off.next(0, 0), Job::Stop);
    // A token that cannot list the keys: nothing more read, the keys known kept, every
    // other key still first-seen (the protection is not turned off by a missing scope).
    assert!(r.unreadable(), "the first time: the caller's one warning");
    assert!(!r.unreadable(), "once");
    assert!(r.first_seen(&Key::new("K-9".to_string())));
    assert!(!r.first_seen(&k));
    assert_eq!(r.next(RELIST_MS * 2, 0), Job::Stop);
    r.learn(&Key::new("K-9".to_string()), 0);
    assert!(
        !r.first_seen(&Key::new("K-9".to_string())),
        "granted by Polar"
    );
    r.refetch("id-2", 0);
    assert_eq!(r.next(0, 0), Job::Stop, "no refetch the token cannot read");
}

/// Issue #62: a known key Polar refuses three times in a row (no grant between) leaves the
/// known set; a grant ends a run of refusals, and makes a key known again; other answers
/// (Polar's 5xx, 429, a 422) and unknown keys count for nothing.
#[test]
fn a_known_key_polar_keeps_refusing_leaves_the_roster_until_it_is_granted() {
    let r = Roster::new(true);
    let k = Key::new("K-1".to_string());
    r.page_read(1, &["K-1".to_string()], 1, 0);
    assert!(!r.first_seen(&k));
    assert!(!r.answered(&k, 403));
    assert!(!r.answered(&k, 404));
    assert!(!r.answered(&k, 200), "a grant ends the run");
    assert!(!r.answered(&k, 404));
    for other in [500, 502, 429, 422, 401] {
        assert!(!r.answered(&k, other), "{other}");
    }
    assert!(!r.answered(&k, 403));
    assert!(!r.first_seen(&k), "two in a row: still known");
    assert!(r.answered(&k, 403), "the third in a row");
    assert!(r.first_seen(&k));
    assert!(!r.answered(&k, 403), "unknown keys count for nothing");
    r.learn(&k, 0);
    assert!(!r.first_seen(&k), "granted again: known");
    assert!(!r.answered(&k, 404));
    assert!(!r.answered(&k, 404));
    assert!(!r.first_seen(&k), "counted afresh after the grant");
    // Without a roster nothing is forgotten (every key counts as known).
    let off = Roster::new(false);
    for _ in 0..5 {
        assert!(!off.answered(&k, 403));
    }
    assert!(!off.first_seen(&k));
}

/// Issue #62: Polar's list holds every status; a key revoked, disabled or expired is not
/// known (its activations would take the reserve), and a relist that finds a known key so
/// takes it out.
#[test]
fn a_page_knows_only_keys_polar_grants() {
    let r = relay();
    let s = r.store.as_ref().expect("a store");
    let items = serde_json::json!({"items": [
        {"key": "K-GRANTED", "status": "granted"},
        {"key": "K-LATER", "status": "granted", "expires_at": "2099-01-01T00:00:00Z"},
        {"key": "K-REVOKED", "status": "revoked"},
        {"key": "K-DISABLED", "status": "disabled"},
        {"key": "K-EXPIRED", "status": "granted", "expires_at": "2020-01-01T00:00:00Z"},
    ], "pagination": {"total_count": 5, "max_page": 1}});
    s.roster.learn(&Key::new("K-DISABLED".to_string()), 0);
    let read = read_at(&r, 5).expect("page 1");
    roster_answered(
        &r.reads(),
        read,
        Ok((200, None, items.to_string().into_bytes())),
        at(10),
    );
    let known = |k: &str| !s.roster.first_seen(&Key::new(k.to_string()));
    assert!(known("K-GRANTED") && known("K-LATER"));
    assert!(!known("K-REVOKED") && !known("K-EXPIRED"));
    assert!(!known("K-DISABLED"), "known before, disabled since: out");
}

/// Issue #62: a key re-granted (its grant webhook's refetch says granted) while an hourly
/// relist runs is not taken out by the relist's page, which Polar read before the re-grant
/// (the key still revoked in it); a page begun after the grant that says revoked does.
#[test]
fn a_relists_stale_page_does_not_undo_a_regrant_made_while_it_ran() {
    // The relist's time (a little past the hour: reads are paced).
    const T: u64 = RELIST_MS + 1_000;
    let r = relay();
    let s = r.store.as_ref().expect("a store");
    let key = Key::new("K-NEW".to_string());
    let read = read_at(&r, 0).expect("page 1");
    roster_answered(&r.reads(), read, page(&["K-NEW"], 1), at(10));
    assert!(!s.roster.first_seen(&key));
    // Revoked: its webhook's refetch takes it out.
    event(&s.roster, "benefit_grant.revoked", NEW_KEY_ID, 100);
    let refetch = refetch_of(&r, at(100), NEW_KEY_ID);
    let body = |status: &str| {
        let key = serde_json::json!({"id": NEW_KEY_ID, "key": "K-NEW", "status": status});
        Ok((200, None, key.to_string().into_bytes()))
    };
    roster_answered(&r.reads(), refetch, body("revoked"), at(110));
    assert!(s.roster.first_seen(&key), "revoked: out");
    // The hourly relist asks for its page (Polar still lists the key revoked) ...
    let relist = read_at(&r, T).expect("the relist's page");
    assert!(relist.url.contains("page=1"), "{}", relist.url);
    // ... the seller grants the key again meanwhile: its webhook's refetch says granted.
    event(&s.roster, "benefit_grant.updated", NEW_KEY_ID, T + 50);
    let refetch = refetch_of(&r, at(T + 50), NEW_KEY_ID);
    roster_answered(&r.reads(), refetch, body("granted"), at(T + 60));
    assert!(!s.roster.first_seen(&key), "re-granted: known");
    // The relist's page lands, older than the grant: the key stays known.
    let stale = serde_json::json!({"items": [{"key": "K-NEW", "status": "revoked"}],
        "pagination": {"total_count": 1, "max_page": 1}});
    roster_answered(
        &r.reads(),
        relist,
        Ok((200, None, stale.to_string().into_bytes())),
        at(T + 70),
    );
    assert!(
        !s.roster.first_seen(&key),
        "a page read before the re-grant took the key out"
    );
    // A later relist begun after the grant that finds it revoked again takes it out.
    let later = read_at(&r, 2 * T + 1_000).expect("the next relist");
    roster_answered(
        &r.reads(),
        later,
        Ok((200, None, stale.to_string().into_bytes())),
        at(2 * T + 1_010),
    );
    assert!(s.roster.first_seen(&key), "revoked again: out");
}

/// Kept in the host (the npm relay's Durable Object): what a page, a grant and a revocation
/// change is saved per key, a restarted roster reads no page again and asks the host for a
/// request's digest before it is answered.
#[test]
fn a_roster_kept_in_the_host_saves_per_key_and_is_not_paged_in_again_after_a_restart() {
    use crate::store::layout::RosterChange::{Key as Saved, Page};
    let r = relay();
    r.keep_roster_in_host(100);
    let s = r.store.as_ref().expect("a store");
    let hex = |k: &str| kept_hex(&digest(&Key::new(k.to_string())));
    let read = read_at(&r, 0).expect("page 1");
    roster_answered(&r.reads(), read, page(&["K-1", "K-2"], 1), at(10));
    assert_eq!(
        r.roster_changes(),
        [Saved(hex("K-1"), true), Saved(hex("K-2"), true), Page(0)]
    );
    assert!(r.roster_changes().is_empty(), "taken once");
    // Learned again (a grant of Polar's): already saved, nothing new; a revocation deletes.
    s.roster.learn(&Key::new("K-1".to_string()), 0);
    s.roster.forget(&Key::new("K-2".to_string()));
    assert_eq!(r.roster_changes(), [Saved(hex("K-2"), false)]);

    // A restart: the saved page says current; nothing to page in before the relist.
    let again = relay();
    again.keep_roster_in_host(100);
    again.roster_restore(0, at(5_000));
    assert_eq!(
        roster_read(&again.reads(), at(5_000)).err(),
        Some(Some(RELIST_MS))
    );
    let validate = |key: &str| {
        crate::types::RelayRequest {
        method: "POST".into(),
        path: format!("{}validate", crate::types::ROUTE_PREFIX),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::json!({"key": key, "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"})
            .to_string()
            .into_bytes(),
        client_ip: "127.0.0.1".into(),
    }
    };
    let st = again.store.as_ref().expect("a store");
    // K-1 is first-seen until the host read its digest; then known, and not asked again.
    assert_eq!(again.roster_wants(&validate("K-1")), Some(hex("K-1")));
    assert!(st.roster.first_seen(&Key::new("K-1".to_string())));
    again.roster_load(&hex("K-1"), true);
    assert!(!st.roster.first_seen(&Key::new("K-1".to_string())));
    assert_eq!(again.roster_wants(&validate("K-1")), None);
    // A guess: read once, absent, first-seen.
    again.roster_load(&hex("GUESS"), false);
    assert_eq!(again.roster_wants(&validate("GUESS")), None);
    assert!(st.roster.first_seen(&Key::new("GUESS".to_string())));
    // A restart mid-way through the pages goes on from the saved page.
    let mid = relay();
    mid.keep_roster_in_host(100);
    mid.roster_restore(3, at(0));
    let read = roster_read(&mid.reads(), at(0)).expect("page 3");
    assert!(read.url.ends_with("page=3"), "{}", read.url);
    // Not kept in the host (natively): nothing to save, nothing to read.
    let native = relay();
    roster_answered(
        &native.reads(),
        roster_read(&native.reads(), at(0)).expect("page 1"),
        page(&["K-1"], 1),
        at(10),
    );
    assert!(native.roster_changes().is_empty());
    assert_eq!(native.roster_wants(&validate("K-9")), None);
    // A token that can no longer read the keys (a refetch's 403): unreadable (nothing more
    // read of Polar, a guess still first-seen), and the next start pages in again.
    event(&st.roster, "benefit_grant.created", NEW_KEY_ID, 6_000);
    let refetch = roster_read(&again.reads(), at(6_000)).expect("the refetch");
    roster_answered(
        &again.reads(),
        refetch,
        Ok((403, None, Vec::new())),
        at(6_010),
    );
    assert_eq!(again.roster_changes(), [Page(1)]);
    assert!(st.roster.first_seen(&Key::new("GUESS".to_string())));
    assert!(!st.roster.first_seen(&Key::new("K-1".to_string())));
    assert_eq!(again.roster_wants(&validate("K-2")), Some(hex("K-2")));
    assert_eq!(roster_read(&again.reads(), at(7_000)).err(), Some(None));
}

/// A re-grant's refetch (a grant event other than a revocation) names what its answer may
/// narrow, the key's index row with every entry of it, for a host whose store is read per
/// key to load first (Workers: the cache may have let them go since the webhook); a
/// revocation's refetch and a page touch no entry.
#[test]
fn a_regrants_refetch_wants_the_keys_row_and_entries_loaded() {
    let r = relay();
    let s = r.store.as_ref().expect("a store");
    let read = read_at(&r, 0).expect("page 1");
    assert_eq!(refetch_wants(&r.reads(), &read), None, "a page");
    roster_answered(&r.reads(), read, page(&["K-1"], 1), at(10));
    event(&s.roster, "benefit_grant.revoked", NEW_KEY_ID, 1_000);
    let revoked = read_at(&r, 1_000).expect("the revocation's refetch");
    assert_eq!(
        refetch_wants(&r.reads(), &revoked),
        None,
        "a revocation's refetch lifts nothing"
    );
    roster_answered(&r.reads(), revoked, Ok((404, None, Vec::new())), at(1_010));
    event(&s.roster, "benefit_grant.created", NEW_KEY_ID, 2_000);
    let regrant = read_at(&r, 2_000).expect("the re-grant's refetch");
    assert_eq!(
        refetch_wants(&r.reads(), &regrant),
        Some(crate::store::Wants {
            entries: Vec::new(),
            tags: vec![format!("l:{NEW_KEY_ID}")],
            all: true,
            later: Vec::new(),
        })
    );
}

fn kept_hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A relay with a store (a budget of `budget` calls a minute, `reserve` of them kept) and
/// the roster on; its transport is never used here.
fn roster_relay(budget: u32, reserve: u32) -> Relay {
    relay_with(crate::store::StoreOptions {
        budget,
        reserve,
        roster: true,
        ..crate::store::StoreOptions::default()
    })
}

/// [`roster_relay`] with a budget of 4 calls a minute, 1 kept.
fn relay() -> Relay {
    roster_relay(4, 1)
}

/// A relay with a memory store of `options` whose transport is never used (the roster
/// and the reconcile read through the background machine's host).
pub(crate) fn relay_with(options: crate::store::StoreOptions) -> Relay {
    relay_on(
        std::sync::Arc::new(crate::store::MemoryBackend::new(100)),
        options,
    )
}

/// [`relay_with`] over `backend`.
pub(crate) fn relay_on(
    backend: std::sync::Arc<dyn crate::store::Backend>,
    options: crate::store::StoreOptions,
) -> Relay {
    Relay::never_calling(crate::types::RelayConfig::stored_for_tests(
        backend, options,
    ))
}

/// The license key id of the key bought in the tests (K-NEW).
const NEW_KEY_ID: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";

/// The relay's next read, which must be the refetch of the key `id` (no page before it).
fn refetch_of(r: &Relay, now: Now, id: &str) -> Read {
    let read = roster_read(&r.reads(), now).expect("the refetch, not held");
    assert!(
        read.url.ends_with(&format!("/v1/license-keys/{id}")),
        "{}",
        read.url
    );
    read
}

/// Polar's event `kind` about the license key `id`, delivered to `roster`.
fn event(roster: &Roster, kind: &str, id: &str, now_ms: u64) {
    on_event(
        roster,
        &serde_json::json!({"type": kind, "data": {"properties": {"license_key_id": id}}}),
        now_ms,
    );
}

fn page(keys: &[&str], max_page: u64) -> ReadAnswer {
    let items: Vec<serde_json::Value> =
        keys.iter().map(|k| serde_json::json!({"key": k})).collect();
    let body = serde_json::json!({"items": items,
        "pagination": {"total_count": 9, "max_page": max_page}});
    Ok((200, None, body.to_string().into_bytes()))
}

/// `r`'s roster read at `ms` ([`roster_read`]).
fn read_at(r: &Relay, ms: u64) -> Result<Read, Option<u64>> {
    roster_read(&r.reads(), at(ms))
}

/// Polar's `benefit_grant.created` naming the license key `id`, at `ms`.
fn grant_created(roster: &Roster, id: &str, ms: u64) {
    let event = serde_json::json!({"type": "benefit_grant.created",
        "data": {"properties": {"license_key_id": id}}});
    on_event(roster, &event, ms);
}

/// A refetch whose webhook came over a window ago (a backlog from an outage: its customer
/// was answered long ago) waits for idle budget and takes the shared part, behind the known
/// grants' refreshes; a customer who just bought is refetched from the reserve meanwhile.
#[test]
fn a_backlog_of_refetches_waits_for_idle_budget_a_new_customers_goes_at_once() {
    let r = roster_relay(8, 2);
    let s = r.store.as_ref().expect("a store");
    let created = |id: &str, ms: u64| grant_created(&s.roster, id, ms);
    let old = "21bf892b-2e46-4f50-8060-8fdaf02aa482";
    let new = "41bf892b-2e46-4f50-8060-8fdaf02aa482";
    created(old, 0);
    // A window on: 4 of the 6 shared calls spent (a third of the room left).
    let now = 61_000;
    for _ in 0..4 {
        s.take(at(now), Use::Shared).expect("a call");
    }
    assert_eq!(read_at(&r, now).err(), Some(Some(200)), "the backlog waits");
    // A customer buys: its refetch goes first, the backlog ahead of it in the queue.
    created(new, now);
    let read = read_at(&r, now).expect("the new customer's refetch");
    assert!(read.url.ends_with(new), "{}", read.url);
    assert_eq!(s.budget(at(now)).used(now), 5);
    assert_eq!(read_at(&r, now).err(), Some(Some(200)), "still waiting");
    // The window over: idle budget, the backlog's refetch from the shared part.
    let later = now + 61_000;
    let read = read_at(&r, later).expect("the backlog's refetch");
    assert!(read.url.ends_with(old), "{}", read.url);
}

/// A refetch whose webhook came while the breaker stopped calls (its customer answered
/// then: Polar could not be asked) is a backlog once the breaker closes, even within the
/// window, and waits a whole window after the close, idle budget or not: the known grants'
/// refreshes come first. A customer who buys after the close is refetched from the
/// reserve at once. (The attack benchmark: the outage's webhooks took 12 to 19 of the 87
/// calls the refreshes needed when Polar came back.)
#[test]
fn a_refetch_from_while_the_breaker_was_open_is_a_backlog_once_it_closes() {
    use polar_license::{HttpResponse, TransportError, TransportErrorKind};
    let r = roster_relay(8, 2);
    let s = r.store.as_ref().expect("a store");
    let created = |id: &str, ms: u64| grant_created(&s.roster, id, ms);
    let refused = Err(TransportError::new(TransportErrorKind::Connect, "refused"));
    for ms in 0..5 {
        r.breaker
            .record(&refused, Some(crate::breaker::Ticket::Call), at(ms));
    }
    assert_eq!(r.breaker.reading().state, "open");
    let during = "21bf892b-2e46-4f50-8060-8fdaf02aa482";
    let after = "41bf892b-2e46-4f50-8060-8fdaf02aa482";
    created(during, 1_000);
    let answered = Ok(HttpResponse::new(404, ""));
    r.breaker
        .record(&answered, Some(crate::breaker::Ticket::Call), at(2_000));
    assert_eq!(r.breaker.reading().state, "closed");
    // Within the window after the close, the budget idle: the backlog waits.
    let now = 2_500;
    assert_eq!(
        read_at(&r, now).err(),
        Some(Some(200)),
        "the refetch from the outage waits"
    );
    created(after, now);
    let read = read_at(&r, now).expect("the new customer's refetch");
    assert!(read.url.ends_with(after), "{}", read.url);
    assert_eq!(
        read_at(&r, 61_999).err(),
        Some(Some(200)),
        "still the window after the close"
    );
    let read = read_at(&r, 62_000).expect("the backlog's refetch");
    assert!(read.url.ends_with(during), "{}", read.url);
}

#[test]
fn pages_spend_only_spare_budget_a_429_holds_and_a_refetch_uses_the_reserve() {
    let r = relay();
    let s = r.store.as_ref().expect("a store");
    let first = read_at(&r, 0).expect("page 1");
    assert!(!format!("{first:?}").contains("Bearer"), "{first:?}");
    assert_eq!(
        first.url,
        "http://127.0.0.1:9/v1/license-keys/?limit=100&page=1"
    );
    assert!(first
        .headers
        .iter()
        .any(|(n, v)| *n == "authorization" && v == "Bearer polar_oat_secret"));
    roster_answered(&r.reads(), first, page(&["K-1"], 3), at(10));
    assert!(!s.roster.first_seen(&Key::new("K-1".to_string())));
    assert!(s.roster.first_seen(&Key::new("K-2".to_string())));
    // 1 of the 3 shared calls spent: room for page 2, then not for page 3 (half the room
    // is the customers').
    let second = read_at(&r, 20).expect("page 2");
    assert!(second.url.ends_with("page=2"));
    assert_eq!(read_at(&r, 30).err(), Some(Some(1_000)));
    // Polar's 429 on page 2: nothing read before its Retry-After.
    roster_answered(&r.reads(), second, Ok((429, Some(5), Vec::new())), at(40));
    assert_eq!(read_at(&r, 1_100).err(), Some(Some(3_940)));
    // A grant webhook's key: refetched first, from the reserve (the shared part is spent:
    // Polar's 429 blocks the whole budget, so the refetch waits for it too).
    event(&s.roster, "benefit_grant.created", NEW_KEY_ID, 5_100);
    event(
        &s.roster,
        "order.paid",
        "31bf892b-2e46-4f50-8060-8fdaf02aa482",
        5_100,
    );
    let refetch = read_at(&r, 5_100).expect("the refetch");
    assert_eq!(
        refetch.url,
        format!("http://127.0.0.1:9/v1/license-keys/{NEW_KEY_ID}")
    );
    let body =
        serde_json::json!({"key": "K-NEW", "status": "granted", "activations": []}).to_string();
    roster_answered(
        &r.reads(),
        refetch,
        Ok((200, None, body.into_bytes())),
        at(5_200),
    );
    assert!(!s.roster.first_seen(&Key::new("K-NEW".to_string())));
    // No other event was queued: the next read is page 2 again (the budget now full).
    assert_eq!(read_at(&r, 5_300).err(), Some(Some(1_000)));
    // A grant webhook while a page waits for room: its refetch goes at once (the page
    // held nothing).
    let other = "41bf892b-2e46-4f50-8060-8fdaf02aa482";
    event(&s.roster, "benefit_grant.created", other, 5_310);
    let _not_answered = refetch_of(&r, at(5_310), other);
    // A revocation's webhook: the key refetched, and forgotten as Polar no longer grants
    // it (a disabled or expired key too); a grant of it later makes it known again.
    for (status, expires_at) in [
        ("revoked", None),
        ("disabled", None),
        ("granted", Some("2020-01-01T00:00:00Z")),
    ] {
        s.roster.learn(&Key::new("K-NEW".to_string()), 0);
        event(&s.roster, "benefit_grant.revoked", NEW_KEY_ID, 70_000);
        let refetch = refetch_of(&r, at(70_000), NEW_KEY_ID);
        let body = serde_json::json!({"key": "K-NEW", "status": status, "expires_at": expires_at});
        roster_answered(
            &r.reads(),
            refetch,
            Ok((200, None, body.to_string().into_bytes())),
            at(70_001),
        );
        assert!(
            s.roster.first_seen(&Key::new("K-NEW".to_string())),
            "{status}"
        );
    }
    // A token that cannot read keys: the worker ends, one warning, and a key Polar has not
    // granted through the relay is still first-seen (its share, fairly per client).
    let r = relay();
    let read = read_at(&r, 0).expect("page 1");
    roster_answered(&r.reads(), read, Ok((403, None, Vec::new())), at(10));
    let s = r.store.as_ref().expect("a store");
    assert!(s.roster.first_seen(&Key::new("ANY".to_string())));
    assert_eq!(read_at(&r, 20).err(), Some(None));
    let warning = roster_warning(&r.reads()).expect("a warning");
    assert!(warning.contains("license_keys:read"), "{warning}");
    assert_eq!(roster_warning(&r.reads()), None, "once");
    assert_eq!(s.roster.reading()["state"], "unreadable");
}
