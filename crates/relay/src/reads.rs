//! The background reads' steps on the store (driven by [`crate::flow::background`], each
//! host's one loop): the roster's pages and grant refetches ([`crate::roster`]), and the
//! reconcile's listing and checks by id ([`crate::reconcile`]). Each takes the parts of the
//! relay it reads ([`Reads`]): the store, the breaker in front of Polar, and where Polar is
//! with which token.

use polar_license::lease::key_hash;
use polar_license::{AccessToken, Key};

use crate::breaker::Breaker;
use crate::clock::Now;
use crate::reconcile::{
    key_wants, list_cap, uuid_of, Check, ListPage, Outcome, IDLE_ROOM, KEY_ROWS, LIST_PAGE, POLL_MS,
};
use crate::roster::{usable, Job, Phase, Read, ReadAnswer, BACKOFF_MS, PAGE_LIMIT, UNREADABLE};
use crate::store::{self, Entry, Mark, Narrow, Use, Wants};
use crate::stored::Stored;

/// The parts of the relay a background read uses. `pub` in name only (this module is the
/// crate's own): the machines' sealed `flow::Asks` hands it out.
pub struct Reads<'a> {
    pub(crate) store: Option<&'a Stored>,
    pub(crate) breaker: &'a Breaker,
    /// Polar's base URL.
    pub(crate) base_url: &'a str,
    /// The organization the relay is for, when set (a page of keys names it).
    pub(crate) organization_id: Option<&'a str>,
    /// The seller's token (never logged).
    pub(crate) token: &'a AccessToken,
    /// The set-up's check, when on (crate::doctor).
    pub(crate) setup_watch: Option<&'a crate::doctor::watch::Watch>,
    /// The install analytics' events waiting (crate::analytics).
    pub(crate) analytics: &'a crate::analytics::Analytics,
    /// When each activation was last seen, and its retirements (crate::last_seen).
    pub(crate) last_seen: &'a crate::last_seen::LastSeen,
}

/// The roster's next read at `now` (its call taken from the budget: a refetch from the
/// reserve, it is a customer who just bought; a page only while the budget has half its
/// room, so the customers' checks come first), `Err(Some(ms))` to wait (nothing to read
/// before then but a grant webhook's refetch, which the webhook queues), `Err(None)` when
/// there is no roster. The background machine (crate::flow::background) asks, driven by
/// each host's one loop.
pub(crate) fn roster_read(relay: &Reads<'_>, now: Now) -> Result<Read, Option<u64>> {
    let Some(s) = relay.store.as_ref() else {
        return Err(None);
    };
    // No read while the breaker in front of Polar stops calls (crate::breaker).
    if relay.breaker.is_open(now) {
        return Err(Some(1_000));
    }
    // A refetch is a customer who just bought when its webhook came within the budget's
    // window and since the breaker last closed: one that came while calls were stopped
    // was answered then (Polar could not be asked), and is a backlog.
    let recent_since = now
        .monotonic_ms
        .checked_sub(s.options.budget_window_ms)
        .map_or(0, |t| t.saturating_add(1))
        .max(relay.breaker.closed_at());
    let job = s.roster.next(now.monotonic_ms, recent_since);
    let url = match &job {
        Job::Stop => return Err(None),
        Job::Wait(ms) => return Err(Some(*ms)),
        Job::Refetch(id, tries, since) => {
            let Ok(id) = polar_license::metadata::check_uuid_v4("license_key_id", id) else {
                log::warn!("relay: a grant webhook named a license key id that is no UUID");
                return Err(Some(0));
            };
            // A customer who just bought (its webhook within the budget's window) is
            // refetched from the reserve; a backlog (webhooks that came while Polar could
            // not be asked, their customers long answered) only with idle budget, behind
            // the known grants' refreshes: after an outage it took half the window those
            // needed (the attack benchmark's Polar back), and so did the refetches of
            // webhooks that came in the outage's last window, had they counted as recent.
            let recent = *since >= recent_since;
            // In the window after an outage (the breaker closed less than a window ago)
            // every known grant may need its refresh: the backlog waits it out whatever
            // the room (at the window's start it has room, and took 12 to 19 of the
            // calls the refreshes needed in the benchmark).
            let closed = relay.breaker.closed_at();
            let after_outage =
                closed > 0 && now.monotonic_ms.saturating_sub(closed) < s.options.budget_window_ms;
            if !recent && (after_outage || s.budget(now).room(now.monotonic_ms) <= 0.5) {
                s.roster.again(id, tries + 1, *since);
                return Err(Some(200));
            }
            let what = if recent { Use::Reserved } else { Use::Shared };
            if let Err(secs) = s.take(now, what) {
                s.roster.again(id, tries + 1, *since);
                s.roster.hold(now.monotonic_ms, secs * 1000);
                return Err(Some(secs * 1000));
            }
            format!("{}/v1/license-keys/{id}", relay.base_url)
        }
        Job::Page(page) => {
            // Not now, but nothing held: a grant webhook's refetch (from the reserve) must
            // not wait behind a page the shared part has no room for (the relay's attack
            // benchmark: a second's hold here, new customers activating 0.3 s after they
            // bought were first-seen and refused).
            if s.budget(now).room(now.monotonic_ms) <= 0.5 {
                return Err(Some(1_000));
            }
            if let Err(secs) = s.take(now, Use::Shared) {
                return Err(Some(secs * 1000));
            }
            let org = relay
                .organization_id
                .map(|o| format!("&organization_id={o}"))
                .unwrap_or_default();
            format!(
                "{}/v1/license-keys/?limit={PAGE_LIMIT}&page={page}{org}",
                relay.base_url
            )
        }
    };
    Ok(Read {
        url,
        headers: read_headers(relay),
        job,
        started: now,
    })
}

/// With a store read per key ([`crate::store::PagedBackend`], Workers): what the answer to
/// `read` may touch in the store, for the host to load before [`roster_answered`]:
/// a refetch that may end a stored revocation (a re-grant's, polar-license-api.md §15)
/// narrows the key's index row and every entry of it, which the cache may have let go
/// since the webhook read them. `None` when the answer touches no entry.
pub(crate) fn refetch_wants(relay: &Reads<'_>, read: &Read) -> Option<crate::store::Wants> {
    let s = relay.store.as_ref()?;
    match &read.job {
        Job::Refetch(id, ..) if s.roster.may_lift_now(id) => Some(crate::store::Wants {
            entries: Vec::new(),
            tags: vec![format!("l:{id}")],
            all: true,
            later: Vec::new(),
        }),
        _ => None,
    }
}

/// The warning of a roster the token cannot read, once (the log has it too): for a host
/// whose log the core does not reach (the npm relay's `console.warn`).
pub(crate) fn roster_warning(relay: &Reads<'_>) -> Option<String> {
    relay.store.as_ref()?.roster.lock().warning.take()
}

/// The headers of a read of Polar's with the seller's token (never logged).
pub(crate) fn read_headers(relay: &Reads<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {}", relay.token.expose())),
        ("accept", "application/json".to_string()),
        ("user-agent", crate::types::USER_AGENT.to_string()),
    ]
}

/// What a read got, kept: a page's keys, a refetched key, Polar's 429 learned, a token
/// that cannot read keys turning the roster off.
pub(crate) fn roster_answered(relay: &Reads<'_>, read: Read, answer: ReadAnswer, now: Now) {
    let Some(s) = relay.store.as_ref() else {
        return;
    };
    let retry = || {
        if let Job::Refetch(id, tries, since) = &read.job {
            s.roster.again(id.clone(), *tries, *since);
        }
    };
    let (status, retry_after, body) = match answer {
        Ok(a) => a,
        Err(why) => {
            log::warn!("relay: the roster's read of Polar failed ({why}); again in 5 s");
            s.roster.hold(now.monotonic_ms, BACKOFF_MS);
            retry();
            return;
        }
    };
    match status {
        200 => {}
        429 => {
            let ms = s.learn_429(now, retry_after);
            s.roster.hold(now.monotonic_ms, ms);
            if let Job::Refetch(id, tries, since) = &read.job {
                s.roster.again(id.clone(), tries + 1, *since);
            }
            return;
        }
        401 | 403 => {
            if s.roster.unreadable() {
                let warning = format!(
                    "the roster cannot be read ({status}): {UNREADABLE}; give the token \
                     license_keys:read and start the relay again"
                );
                log::warn!("relay: {warning}");
                s.roster.lock().warning = Some(warning);
            }
            return;
        }
        404 if matches!(read.job, Job::Refetch(..)) => return,
        _ => {
            log::warn!("relay: the roster's read of Polar got {status}; again in 5 s");
            s.roster.hold(now.monotonic_ms, BACKOFF_MS);
            retry();
            return;
        }
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        log::warn!("relay: the roster's read of Polar is not JSON; again in 5 s");
        s.roster.hold(now.monotonic_ms, BACKOFF_MS);
        retry();
        return;
    };
    let key_of = |v: &serde_json::Value| v.get("key").and_then(|k| k.as_str()).map(String::from);
    match &read.job {
        Job::Page(page) => {
            // The list holds every status (§16): a key revoked, disabled or expired is not
            // known (issue #62: known keys' activations take the reserve), and leaves the
            // roster when a relist finds it so.
            let items = value.get("items").and_then(|i| i.as_array());
            let listed_usable =
                |v: &serde_json::Value| v.get("status").is_none() || usable(v, now.unix_seconds);
            let (keys, refused): (Vec<_>, Vec<_>) = items
                .map(|items| items.iter().partition(|v| listed_usable(v)))
                .unwrap_or_default();
            let keys: Vec<String> = keys.into_iter().filter_map(key_of).collect();
            // Unless Polar granted it since the page was asked for (a re-grant's refetch
            // while a relist ran: this page is older than that grant).
            for k in refused.into_iter().filter_map(key_of) {
                s.roster
                    .forget_read(&Key::new(k), read.started.monotonic_ms);
            }
            let max_page = value
                .pointer("/pagination/max_page")
                .and_then(|m| m.as_u64())
                .unwrap_or(0);
            s.roster.page_read(*page, &keys, max_page, now.monotonic_ms);
            if matches!(s.roster.phase(), Phase::Current { .. }) {
                log::info!(
                    "relay: the roster holds the organization's {} license keys",
                    s.roster.len()
                );
            }
        }
        Job::Refetch(id, ..) => {
            if let Some(key) = key_of(&value) {
                let key = Key::new(key);
                if usable(&value, now.unix_seconds) {
                    s.roster.learn(&key, now.monotonic_ms);
                    log::info!("relay: a new grant's license key joined the roster");
                    // A revoked key granted again (§15: the same string; its re-grant's
                    // event queued this read): its stored revocation ends, Polar's read by
                    // id says so (never the webhook).
                    if s.roster.take_lift(id) && s.lift_revoked(id, read.started, now).is_none() {
                        // The store failed (on Workers: the key's entries not loaded):
                        // read again once it may have recovered, not at once (each
                        // read is a call from the token's budget).
                        s.roster.may_lift(id);
                        s.roster.hold(now.monotonic_ms, BACKOFF_MS);
                        retry();
                    }
                } else {
                    // A revocation's refetch (or a grant disabled since): no longer known,
                    // unless Polar granted it since this read began.
                    if s.roster.forget_read(&key, read.started.monotonic_ms) {
                        log::info!("relay: a license key Polar no longer grants left the roster");
                    }
                }
            }
        }
        _ => {}
    }
    if let Err(e) = s.backend.flush_budget() {
        log::error!("relay: {e}: the token budget's state is written with the next change");
    }
}

/// With a store read per key ([`crate::store::PagedBackend`]): what the reconcile's next
/// read at `now` touches (the due key's index row and its entries), for the host to load
/// before [`reconcile_read`]; `None` when no key is due (or no reconcile).
pub(crate) fn reconcile_wants(relay: &Reads<'_>, now: Now) -> Option<Wants> {
    let s = relay.store.as_ref()?;
    let q = s.reconcile.lock();
    if !q.on {
        return None;
    }
    let (_, id) = q
        .due(
            now.unix_seconds,
            now.monotonic_ms,
            s.options.reconcile_every,
        )
        .ok()?;
    Some(key_wants(id))
}

/// With a store read per key (Workers), the keys of the grants stored before this relay
/// started, learned a page at a time as natively [`crate::store::Backend::tags_with_prefix`]
/// gives them at once: the next page of index rows for the host to list and hand to
/// [`reconcile_listed`] (each bounded, never one read of the whole store, so start-up
/// time does not grow with it), `None` once the listing is done (or with no reconcile).
pub(crate) fn reconcile_list(relay: &Reads<'_>) -> Option<ListPage> {
    let s = relay.store.as_ref()?;
    let q = s.reconcile.lock();
    (q.on && !q.listed_all).then(|| ListPage {
        prefix: KEY_ROWS,
        after: q.listed_after.clone(),
        limit: LIST_PAGE,
    })
}

/// A page of [`reconcile_list`] listed at `now`: its rows (`l:<license key id>|<entry
/// id>`, in order). Each key not in the reconcile's queue yet is due one interval from
/// `now`, as the keys read at a native start are; a key Polar answered meanwhile keeps its
/// own last check. A page shorter than its limit (or one that does not move on) ends the
/// listing.
pub(crate) fn reconcile_listed(relay: &Reads<'_>, rows: &[String], now: Now) {
    let Some(s) = relay.store.as_ref() else {
        return;
    };
    let cap = list_cap(&s.options);
    let mut q = s.reconcile.lock();
    if !q.on || q.listed_all {
        return;
    }
    let mut full = false;
    for id in rows
        .iter()
        .filter_map(|r| r.strip_prefix(KEY_ROWS)?.split_once('|'))
        .filter_map(|(id, _)| uuid_of(id))
    {
        if q.checked.len() >= cap {
            full = true;
            break;
        }
        q.learn(id, now.unix_seconds);
    }
    let moved = rows
        .last()
        .filter(|r| Some(*r) > q.listed_after.as_ref())
        .cloned();
    match moved {
        Some(last) if rows.len() >= LIST_PAGE && !full => q.listed_after = Some(last),
        _ => {
            q.listed_all = true;
            if full {
                log::warn!(
                    "relay: reconcile: {} keys of stored grants listed, as many as it can \
                     check within --stale-for; the others are checked once Polar answers \
                     a check of theirs",
                    q.checked.len()
                );
            } else {
                log::info!(
                    "relay: reconcile: the stored grants listed, {} keys",
                    q.checked.len()
                );
            }
        }
    }
}

/// The reconcile's next read of Polar at `now` (`GET /v1/license-keys/{id}`), its call
/// taken from the budget's idle room; `Err(Some(ms))` to wait (a key answered by Polar
/// meanwhile may come due sooner: ask again after each request), `Err(None)` when there
/// is no reconcile. Its answer goes to [`reconcile_answered`]. The background
/// machine (crate::flow::background) asks, with a store read per key having loaded
/// [`reconcile_wants`] first.
pub(crate) fn reconcile_read(relay: &Reads<'_>, now: Now) -> Result<Check, Option<u64>> {
    let Some(s) = relay.store.as_ref() else {
        return Err(None);
    };
    if !s.reconcile.lock().on {
        return Err(None);
    }
    if !s.reconcile.lock().loaded {
        // The keys of the entries held at start, each due one interval from now.
        let tags = s.backend.tags_with_prefix("l:").unwrap_or_else(|e| {
            log::error!("relay: {e}: the reconcile starts with the keys answered from now");
            Vec::new()
        });
        let mut q = s.reconcile.lock();
        for id in tags
            .iter()
            .filter_map(|t| t.strip_prefix("l:"))
            .filter_map(uuid_of)
        {
            q.learn(id, now.unix_seconds);
        }
        q.loaded = true;
        log::info!(
            "relay: reconcile on: every {} s, {} keys of stored grants",
            s.options.reconcile_every,
            q.checked.len()
        );
    }
    if relay.breaker.is_open(now) {
        return Err(Some(POLL_MS));
    }
    let (before, id) = s
        .reconcile
        .lock()
        .due(
            now.unix_seconds,
            now.monotonic_ms,
            s.options.reconcile_every,
        )
        .map_err(Some)?;
    let license_key_id = uuid::Uuid::from_u128(id).hyphenated().to_string();
    // No call for a key whose grants are gone (evicted), or all revoked already and no
    // longer refused without a call (past `denial_for` the next check asks Polar, whose
    // answer decides). A revocation that still refuses is asked about: a key granted
    // again (§15: the same string) has its revocation ended within the interval.
    let tag = format!("l:{license_key_id}");
    let refusing =
        |e: &Entry| store::refuses_without_call(e, now.unix_seconds, s.options.denial_for);
    let live = s.backend.index(&tag).ok().is_some_and(|ids| {
        ids.iter().any(|e| {
            s.backend
                .get(e)
                .ok()
                .flatten()
                .is_some_and(|e| e.grant && (e.mark != Mark::Revoked || refusing(&e)))
        })
    });
    if !live {
        s.reconcile.lock().drop_key(id);
        return Err(Some(0));
    }
    if s.budget(now).room(now.monotonic_ms) <= IDLE_ROOM {
        return Err(Some(POLL_MS));
    }
    if let Err(secs) = s.take(now, Use::Shared) {
        return Err(Some(secs.saturating_mul(1000).min(POLL_MS)));
    }
    // Checked now: it goes to the back (put back where it was if the call fails).
    s.reconcile.lock().set(id, now.unix_seconds);
    Ok(Check {
        url: format!("{}/v1/license-keys/{license_key_id}", relay.base_url),
        headers: read_headers(relay),
        id,
        started: now.unix_seconds,
        started_ms: now.monotonic_ms,
        before,
    })
}

/// What Polar said about a reconciled key (`answer`, as a roster read's), applied: its
/// entries narrowed (never granted), its 429 learned, the key dropped or checked again
/// later. With a store read per key, the host loads [`Check::wants`] first (an entry
/// not loaded is not narrowed: the key is asked again after a backoff).
pub(crate) fn reconcile_answered(relay: &Reads<'_>, check: Check, answer: ReadAnswer, now: Now) {
    let Some(s) = relay.store.as_ref() else {
        return;
    };
    let outcome = reconciled(s, &check, answer, now);
    {
        let mut q = s.reconcile.lock();
        *q.calls.entry(outcome).or_default() += 1;
        match outcome {
            // A rotated key's new string keeps being checked; a revoked or disabled key
            // while its revocation refuses without a call (see `reconcile_read`).
            Outcome::Granted | Outcome::Rotated | Outcome::Inactive => {}
            Outcome::RateLimited | Outcome::Failed => {
                // Not checked after all: first again once the wait is over.
                if q.checked.get(&check.id) == Some(&check.started) {
                    q.set(check.id, check.before);
                }
            }
            _ => q.drop_key(check.id),
        }
    }
    if let Err(e) = s.backend.flush_budget() {
        log::error!("relay: {e}: the token budget's state is written with the next change");
    }
}

fn reconciled(s: &Stored, check: &Check, answer: ReadAnswer, now: Now) -> Outcome {
    let backoff = |why: &str| {
        log::warn!("relay: the reconcile's read of Polar {why}; again in 5 s");
        let mut q = s.reconcile.lock();
        q.not_before = q
            .not_before
            .max(now.monotonic_ms.saturating_add(BACKOFF_MS));
        Outcome::Failed
    };
    let (status, retry_after, body) = match answer {
        Ok(a) => a,
        Err(why) => return backoff(&format!("failed ({why})")),
    };
    let license_key_id = uuid::Uuid::from_u128(check.id).hyphenated().to_string();
    let (outcome, mark, current_tag) = match status {
        200 => {
            let Ok(key) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return backoff("is not JSON");
            };
            let Some(status) = key.get("status").and_then(|v| v.as_str()) else {
                return backoff("has no status");
            };
            let string = key.get("key").and_then(|v| v.as_str()).map(Key::new);
            let org = key.get("organization_id").and_then(|v| v.as_str());
            if crate::roster::usable(&key, now.unix_seconds) {
                // Granted: known again if Polar's refusals took it out of the roster.
                if let Some(k) = &string {
                    s.roster.learn(k, now.monotonic_ms);
                }
                // Granted (again): a stored revocation applied before this read ends
                // (§15); Polar's own read by id says so, never a webhook.
                let started = Now {
                    unix_seconds: check.started,
                    monotonic_ms: check.started_ms,
                };
                if s.lift_revoked(&license_key_id, started, now).is_none() {
                    return backoff("was not applied (the store could not lift)");
                }
                // The key's ordinary activations, counted in its seats (issue #67).
                if let (Some(k), Some(org), Some(live)) = (
                    &string,
                    org.and_then(crate::ids::OrgId::parse),
                    key.get("activations").and_then(|a| a.as_array()),
                ) {
                    let live = u32::try_from(live.len()).unwrap_or(u32::MAX);
                    crate::seats::set_activations(
                        s.backend.as_ref(),
                        &s.seats_live,
                        &org,
                        k,
                        live,
                        now.unix_seconds,
                    );
                }
                // Rotated: the grants of any other string than the key's now are stale.
                match (string, org) {
                    (Some(k), Some(org)) => {
                        let tag = store::key_tag(org, &key_hash(&k));
                        (Outcome::Rotated, Mark::Stale, Some(tag))
                    }
                    _ => return Outcome::Granted,
                }
            } else {
                if let Some(k) = &string {
                    s.roster.forget_read(k, check.started_ms);
                }
                if matches!(status, "revoked" | "disabled") {
                    // Noted before it is written: a read by id under way does not lift it.
                    s.note_revoked(&license_key_id, now);
                    (Outcome::Inactive, Mark::Revoked, None)
                } else {
                    (Outcome::Expired, Mark::Stale, None)
                }
            }
        }
        404 => (Outcome::Gone, Mark::Stale, None),
        429 => {
            let ms = s.learn_429(now, retry_after);
            let mut q = s.reconcile.lock();
            q.not_before = q.not_before.max(now.monotonic_ms.saturating_add(ms));
            return Outcome::RateLimited;
        }
        401 | 403 => {
            log::warn!(
                "relay: the token cannot read license keys by id ({status}; it needs the \
                 scope license_keys:read): no reconcile, a missed webhook's revocation is \
                 heard when the entry ages out"
            );
            s.reconcile.lock().on = false;
            return Outcome::Failed;
        }
        other => return backoff(&format!("got {other}")),
    };
    let Some(narrowed) = narrow_key(s, &license_key_id, check.started, mark, current_tag, now)
    else {
        return backoff("was not applied (the store could not narrow)");
    };
    if outcome == Outcome::Rotated && narrowed == 0 {
        return Outcome::Granted;
    }
    s.reconcile.lock().narrowed += narrowed as u64;
    log::info!(
        "relay: reconcile: Polar says a stored grant's key is {}: {narrowed} entries marked {}",
        outcome.label(),
        if mark == Mark::Revoked {
            "revoked"
        } else {
            "stale"
        }
    );
    outcome
}

/// Marks the grants of `license_key_id` that Polar answered by `started` (and, with
/// `keep_tag`, only those of another key string than it): `mark`, never weaker than what they
/// hold. How many changed; `None` when the store failed (nothing narrowed).
fn narrow_key(
    s: &Stored,
    license_key_id: &str,
    started: i64,
    mark: Mark,
    keep_tag: Option<String>,
    now: Now,
) -> Option<usize> {
    let narrowed = s.backend.narrow(
        Narrow::own(&[format!("l:{license_key_id}")]),
        &mut |e: &Entry| {
            if !e.grant || e.answered_at > started || e.mark == Mark::Revoked {
                return None;
            }
            if let Some(tag) = &keep_tag {
                if e.key_tag.as_ref().is_none_or(|t| t == tag) {
                    return None;
                }
            }
            if mark == Mark::Stale && e.mark == Mark::Stale {
                return None;
            }
            Some(Entry {
                mark,
                marked_at: now.unix_seconds,
                ..e.clone()
            })
        },
    );
    match narrowed {
        Ok(n) => Some(n.unwrap_or(0)),
        Err(e) => {
            log::error!("relay: {e}: the reconcile narrowed nothing (asked again next time)");
            None
        }
    }
}
