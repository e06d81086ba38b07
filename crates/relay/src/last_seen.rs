//! When the relay last saw each activation (issue #80, "self-healing activations"): a customer
//! at the activation limit picks which device to free from a list whose rows say when each was
//! last seen, and a seller may have the relay retire activations unseen for a number of days.
//!
//! **What counts as seen.** A validate through the relay that names an activation id and that
//! Polar answered as a grant for that activation: the answer's `200`, its `status` `granted`
//! and its `activation.id` the one asked (Polar's answer through a call, or the store's copy of
//! Polar's answer to that same request; a signed lease's renewal is such a validate). A client
//! cannot make a record for an activation Polar did not answer for: a wrong key, an unknown or
//! another key's activation id is Polar's 404, and nothing is recorded. An activation is only
//! ever known here by what Polar said of it.
//!
//! **What a record holds.** The activation's id, its license key's id and organization id (all
//! Polar's UUIDs), and the time it was last seen, to the hour: a record moves at most once per
//! activation per [`WRITE_EVERY_SECONDS`], so a chatty client does not rewrite it on every
//! check. No key, no label, no address, no machine.
//!
//! **The bound.** At most [`DEFAULT_MAX_RECORDS`] records; past it the one seen longest ago is
//! dropped for the new one. A request makes at most one record (its own activation's). The
//! record lives in the relay's memory: a restart (or a Durable Object's eviction, on Workers)
//! forgets it, and an activation is then known again from its next validate; what is forgotten
//! is never retired.
//!
//! **Retiring** (off by default: [`crate::RelayConfig::retire_unseen_days`]). The background
//! machine deactivates an activation this relay recorded and has not seen for that many days
//! and one hour more (the record's hour of slack: never one seen within the window). The relay
//! keeps no key, and Polar's deactivate needs the key's string (polar-license-api.md §16.3: no
//! route deactivates by id), so each retirement is two calls made with the organization token,
//! each from the budget's shared part and through the breaker: the activation read by id
//! (`GET /v1/license-keys/{key id}/activations/{activation id}`, whose `license_key` carries the
//! key: a 404 means it is gone already), then `POST /v1/license-keys/deactivate` with it. The
//! key is held in memory only between the two calls and never logged; the record is looked at
//! again before the second (seen meanwhile: not retired). At most
//! [`RETIREMENTS_PER_ROUND`] are begun per minute, one at a time.

use std::collections::HashMap;
use std::sync::Mutex;

use polar_license::Key;

use crate::clock::Now;
use crate::locked::locked;
use crate::roster::ReadAnswer;

/// Records kept at most; past it the one seen longest ago is dropped.
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// A record's time moves at most once in this many seconds (an hour).
pub const WRITE_EVERY_SECONDS: i64 = 3_600;

/// The most days [`crate::RelayConfig::retire_unseen_days`] may be (ten years).
pub const MAX_RETIRE_UNSEEN_DAYS: u32 = 3_650;

/// Retirements begun per minute, at most.
pub const RETIREMENTS_PER_ROUND: u32 = 4;

/// A round of retirements.
const ROUND_MS: u64 = 60_000;

/// The wait after Polar could not be asked (a 429 with no `Retry-After`, a 5xx, no answer).
const RETRY_MS: u64 = 60_000;

/// The wait after the token was refused (it lacks `license_keys:read` or `:write`).
const REFUSED_MS: u64 = 3_600_000;

/// The longest wait between looks when nothing is due (a new record is never due before the
/// oldest, so the wait is to the oldest's time, capped).
const LOOK_MS: u64 = 3_600_000;

/// One activation as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    key_id: String,
    organization_id: String,
    /// Unix seconds.
    seen: i64,
}

/// A retirement under way.
enum Retiring {
    /// The activation's read sent.
    Reading(String),
    /// Read: the deactivate to send, with the key Polar handed back (held until then only).
    Read(String, Key),
    /// The deactivate sent.
    Deactivating(String),
}

/// What the record counted (the operator's view, `/healthz`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    /// Records dropped for the cap.
    dropped: u64,
    /// Activations the relay deactivated.
    retired: u64,
}

#[derive(Default)]
struct State {
    records: HashMap<String, Record>,
    /// No record was seen before this (unix seconds): a lower bound of the oldest's time, as
    /// records only move forward or go (so the oldest is looked for only once one may be due).
    floor: i64,
    retiring: Option<Retiring>,
    round_at: u64,
    round_begun: u32,
    not_before: u64,
    counts: Counts,
}

/// The relay's last-seen record and its retirements.
pub(crate) struct LastSeen {
    /// Retire activations unseen for this many seconds (`None`: off).
    retire_after: Option<i64>,
    max_records: usize,
    state: Mutex<State>,
}

debug_some!(LastSeen, l => {
    "retire_after": l.retire_after,
    "max_records": l.max_records,
});

impl Default for LastSeen {
    fn default() -> Self {
        LastSeen::new(0, DEFAULT_MAX_RECORDS)
    }
}

/// What a validate's answer says was seen: `(activation id, key id)` when it is Polar's grant
/// for the activation asked (`asked`, canonical).
pub(crate) fn seen_in(asked: &str, status: u16, body: &[u8]) -> Option<(String, String)> {
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v.get("status")?.as_str()? != "granted" {
        return None;
    }
    let activation = crate::ids::canonical_uuid(v.get("activation")?.get("id")?.as_str()?)?;
    let key_id = crate::ids::canonical_uuid(v.get("id")?.as_str()?)?;
    (activation == asked).then_some((activation, key_id))
}

impl LastSeen {
    /// The record, retiring activations unseen for `retire_unseen_days` days (0: never), with
    /// at most `max_records` records.
    pub(crate) fn new(retire_unseen_days: u32, max_records: usize) -> LastSeen {
        LastSeen {
            retire_after: (retire_unseen_days > 0).then(|| i64::from(retire_unseen_days) * 86_400),
            max_records: max_records.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether `activation`'s record moved less than [`WRITE_EVERY_SECONDS`] before `now`: a
    /// grant of it now would write nothing, so its answer need not be read (a validate's hot
    /// path: a chatty client's answers are parsed at most once an hour).
    pub(crate) fn fresh(&self, activation: &str, now: i64) -> bool {
        locked(&self.state)
            .records
            .get(activation)
            .is_some_and(|r| now.saturating_sub(r.seen) < WRITE_EVERY_SECONDS)
    }

    /// `activation` of the key `key_id` in `organization_id` seen at `now` (unix seconds), as a
    /// grant of Polar's said ([`seen_in`]): a new record (the oldest dropped past the cap), or
    /// its time moved when the last move is [`WRITE_EVERY_SECONDS`] old. Whether it wrote.
    pub(crate) fn saw(
        &self,
        activation: &str,
        key_id: &str,
        organization_id: &str,
        now: i64,
    ) -> bool {
        let mut s = locked(&self.state);
        let s = &mut *s;
        if let Some(r) = s.records.get_mut(activation) {
            if now.saturating_sub(r.seen) < WRITE_EVERY_SECONDS && r.key_id == key_id {
                return false;
            }
            r.seen = now;
            r.key_id = key_id.to_string();
            r.organization_id = organization_id.to_string();
            return true;
        }
        // Past the cap, the one seen longest ago dropped: a pass over the records, which only
        // an activation Polar granted can make (a flood needs as many real activations).
        if s.records.len() >= self.max_records {
            if let Some(oldest) = oldest_of(&s.records) {
                s.records.remove(&oldest.1);
                s.counts.dropped += 1;
            }
        }
        if s.records.is_empty() {
            s.floor = now;
        }
        s.floor = s.floor.min(now);
        s.records.insert(
            activation.to_string(),
            Record {
                key_id: key_id.to_string(),
                organization_id: organization_id.to_string(),
                seen: now,
            },
        );
        true
    }

    /// When `activation` of the key `key_id` was last seen (unix seconds), if recorded.
    pub(crate) fn of(&self, key_id: &str, activation: &str) -> Option<i64> {
        let s = locked(&self.state);
        let id = crate::ids::canonical_uuid(activation)?;
        s.records
            .get(&id)
            .filter(|r| r.key_id.eq_ignore_ascii_case(key_id))
            .map(|r| r.seen)
    }

    /// `activation` deactivated (through the relay, or retired): its record dropped.
    pub(crate) fn forget(&self, activation: &str) {
        locked(&self.state).records.remove(activation);
    }

    /// The operator's view (`/healthz`'s `last_seen`).
    pub(crate) fn reading(&self) -> serde_json::Value {
        let s = locked(&self.state);
        serde_json::json!({
            "records": s.records.len(),
            "max_records": self.max_records,
            "dropped": s.counts.dropped,
            "retire_unseen_days": self.retire_after.map(|a| a / 86_400),
            "retired": s.counts.retired,
            // The record is the relay's memory since it started.
            "since_start": true,
        })
    }

    /// Whether `r` is unseen for the retirement's window and the record's hour of slack.
    fn due(&self, r: &Record, now: i64) -> bool {
        self.retire_after
            .is_some_and(|after| now.saturating_sub(r.seen) >= after + WRITE_EVERY_SECONDS)
    }

    /// The next call of a retirement (`url`, and the body of a `POST`; `None`: a `GET`), when
    /// one is due, the breaker lets calls through and the budget gives one (`take`); else how
    /// long to wait (`None`: retiring is off).
    pub(crate) fn next_call(
        &self,
        base_url: &str,
        breaker_open: impl FnOnce() -> bool,
        take: impl FnOnce() -> Result<(), u64>,
        now: Now,
    ) -> Result<(String, Option<Vec<u8>>), Option<u64>> {
        self.retire_after.ok_or(None)?;
        let base = base_url.trim_end_matches('/');
        let mut s = locked(&self.state);
        let s = &mut *s;
        if now.monotonic_ms < s.not_before {
            return Err(Some(s.not_before - now.monotonic_ms));
        }
        match s.retiring.take() {
            Some(Retiring::Read(activation, key)) => {
                // Seen (or forgotten) since it was read: not retired.
                let Some(r) = s
                    .records
                    .get(&activation)
                    .filter(|r| self.due(r, now.unix_seconds))
                else {
                    return Err(Some(0));
                };
                if breaker_open() {
                    s.retiring = Some(Retiring::Read(activation, key));
                    return Err(Some(1_000));
                }
                if let Err(secs) = take() {
                    s.retiring = Some(Retiring::Read(activation, key));
                    return Err(Some(secs.max(1) * 1_000));
                }
                let body = serde_json::json!({
                    "key": key.expose(),
                    "organization_id": r.organization_id,
                    "activation_id": activation,
                });
                s.retiring = Some(Retiring::Deactivating(activation));
                Ok((
                    format!("{base}/v1/license-keys/deactivate"),
                    Some(body.to_string().into_bytes()),
                ))
            }
            Some(under_way) => {
                s.retiring = Some(under_way);
                Err(Some(1_000))
            }
            None => {
                let after = self.retire_after.unwrap_or(0) + WRITE_EVERY_SECONDS;
                // The oldest looked for only once the floor says one may be due.
                let mut due_in = s
                    .floor
                    .saturating_add(after)
                    .saturating_sub(now.unix_seconds);
                let mut oldest = None;
                if due_in <= 0 {
                    oldest = oldest_of(&s.records);
                    let Some((seen, _)) = oldest else {
                        return Err(Some(LOOK_MS));
                    };
                    s.floor = seen;
                    due_in = seen.saturating_add(after).saturating_sub(now.unix_seconds);
                }
                let Some((_, activation)) = oldest.filter(|_| due_in <= 0) else {
                    let ms = u64::try_from(due_in).unwrap_or(0).saturating_mul(1_000);
                    return Err(Some(ms.min(LOOK_MS)));
                };
                if now.monotonic_ms.saturating_sub(s.round_at) >= ROUND_MS || s.round_at == 0 {
                    s.round_at = now.monotonic_ms.max(1);
                    s.round_begun = 0;
                }
                if s.round_begun >= RETIREMENTS_PER_ROUND {
                    return Err(Some(
                        (s.round_at + ROUND_MS)
                            .saturating_sub(now.monotonic_ms)
                            .max(1),
                    ));
                }
                if breaker_open() {
                    return Err(Some(1_000));
                }
                if let Err(secs) = take() {
                    return Err(Some(secs.max(1) * 1_000));
                }
                let Some(r) = s.records.get(&activation) else {
                    return Err(Some(0));
                };
                let url = format!(
                    "{base}/v1/license-keys/{}/activations/{activation}",
                    r.key_id
                );
                s.round_begun += 1;
                s.retiring = Some(Retiring::Reading(activation));
                Ok((url, None))
            }
        }
    }

    /// Polar's answer to the retirement's call under way, at `now`.
    pub(crate) fn answered(&self, answer: &ReadAnswer, now: Now) {
        let mut s = locked(&self.state);
        let s = &mut *s;
        let (reading, activation) = match s.retiring.take() {
            Some(Retiring::Reading(a)) => (true, a),
            Some(Retiring::Deactivating(a)) => (false, a),
            other => {
                s.retiring = other;
                return;
            }
        };
        let drop_record = |s: &mut State, activation: &str| {
            s.records.remove(activation);
        };
        match answer {
            Ok((200, _, body)) if reading => {
                let record = s.records.get(&activation);
                match record.and_then(|r| key_of(body, &activation, r)) {
                    Some(key) => s.retiring = Some(Retiring::Read(activation, key)),
                    None => {
                        log::warn!(
                            "relay: retiring activation {activation}: Polar's answer to its read \
                             did not read; its record dropped, not retired"
                        );
                        drop_record(s, &activation);
                    }
                }
            }
            Ok((200 | 204, _, _)) if !reading => {
                log::info!(
                    "relay: activation {activation} retired (unseen for {} days)",
                    self.retire_after.unwrap_or(0) / 86_400
                );
                s.counts.retired += 1;
                drop_record(s, &activation);
            }
            // Gone already (freed by its customer, its key revoked and gone): nothing to retire.
            Ok((404, _, _)) => drop_record(s, &activation),
            Ok((401 | 403, _, _)) => {
                log::warn!(
                    "relay: retiring unseen activations: Polar refused the token (it needs \
                     license_keys:write); trying again in an hour"
                );
                s.not_before = now.monotonic_ms.saturating_add(REFUSED_MS);
            }
            Ok((status, retry, _)) if *status == 429 || *status >= 500 => {
                let wait = retry.map_or(RETRY_MS, |r| r.saturating_mul(1_000).max(1_000));
                s.not_before = now.monotonic_ms.saturating_add(wait);
            }
            Err(_) => s.not_before = now.monotonic_ms.saturating_add(RETRY_MS),
            Ok((status, _, _)) => {
                log::warn!(
                    "relay: retiring activation {activation}: Polar answered {status}; its \
                     record dropped, not retired"
                );
                drop_record(s, &activation);
            }
        }
    }
}

/// The record seen longest ago: its time and activation id.
fn oldest_of(records: &HashMap<String, Record>) -> Option<(i64, String)> {
    records
        .iter()
        .min_by_key(|(_, r)| r.seen)
        .map(|(id, r)| (r.seen, id.clone()))
}

/// The key's string in Polar's `LicenseKeyActivationRead` (`body`) of `activation`, when it is
/// the recorded key's and organization's.
fn key_of(body: &[u8], activation: &str, r: &Record) -> Option<Key> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let same = |a: Option<&serde_json::Value>, b: &str| {
        a.and_then(serde_json::Value::as_str)
            .and_then(crate::ids::canonical_uuid)
            .is_some_and(|a| a == b)
    };
    let license = v.get("license_key")?;
    let ours = same(v.get("id"), activation)
        && same(license.get("id"), &r.key_id)
        && same(license.get("organization_id"), &r.organization_id);
    let key = license.get("key")?.as_str().filter(|k| !k.is_empty())?;
    ours.then(|| Key::new(key))
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn id(n: u32) -> String {
        format!("6b0c1f4e-2a3d-4e5f-8a9b-{n:012x}")
    }

    const KEY_ID: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
    const ORG: &str = "1d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";

    fn at(unix_seconds: i64) -> Now {
        Now {
            unix_seconds,
            monotonic_ms: u64::try_from(unix_seconds).unwrap() * 1_000,
        }
    }

    #[test]
    fn the_cap_holds_under_a_flood_the_oldest_dropped() {
        let l = LastSeen::new(0, 100);
        for n in 0..10_000 {
            l.saw(&id(n), KEY_ID, ORG, 1_000 + i64::from(n));
        }
        let s = locked(&l.state);
        assert_eq!(s.records.len(), 100);
        assert_eq!(s.counts.dropped, 9_900);
        drop(s);
        assert_eq!(l.of(KEY_ID, &id(9_999)), Some(1_000 + 9_999));
        assert_eq!(l.of(KEY_ID, &id(0)), None, "the oldest went first");
    }

    #[test]
    fn a_record_moves_at_most_once_an_hour() {
        let l = LastSeen::new(0, 100);
        assert!(l.saw(&id(1), KEY_ID, ORG, 10_000));
        for t in 10_001..10_000 + WRITE_EVERY_SECONDS {
            assert!(!l.saw(&id(1), KEY_ID, ORG, t));
        }
        assert_eq!(l.of(KEY_ID, &id(1)), Some(10_000));
        assert!(l.saw(&id(1), KEY_ID, ORG, 10_000 + WRITE_EVERY_SECONDS));
        assert_eq!(l.of(KEY_ID, &id(1)), Some(10_000 + WRITE_EVERY_SECONDS));
        // Another key's listing does not see it.
        assert_eq!(l.of(ORG, &id(1)), None);
    }

    #[test]
    fn only_polar_s_grant_of_the_activation_asked_is_seen() {
        let a = id(7);
        let body = |status: &str, activation: &str| {
            serde_json::json!({"id": KEY_ID, "status": status, "activation": {"id": activation}})
                .to_string()
                .into_bytes()
        };
        assert_eq!(
            seen_in(&a, 200, &body("granted", &a)),
            Some((a.clone(), KEY_ID.to_string()))
        );
        assert_eq!(seen_in(&a, 404, &body("granted", &a)), None);
        assert_eq!(seen_in(&a, 200, &body("revoked", &a)), None);
        assert_eq!(seen_in(&a, 200, &body("granted", &id(8))), None);
        assert_eq!(seen_in(&a, 200, br#"{"id":"x","status":"granted"}"#), None);
    }

    #[test]
    fn off_asks_nothing() {
        let l = LastSeen::default();
        l.saw(&id(1), KEY_ID, ORG, 0);
        assert_eq!(
            l.next_call("http://polar", || false, || Ok(()), at(100 * 86_400)),
            Err(None)
        );
    }

    #[test]
    fn a_retirement_reads_then_deactivates_and_never_one_seen_meanwhile() {
        let l = LastSeen::new(2, 100);
        let t0 = 1_000_000;
        l.saw(&id(1), KEY_ID, ORG, t0);
        // Within the window and its hour of slack: nothing due, a wait to the oldest's time.
        let early = at(t0 + 2 * 86_400 + WRITE_EVERY_SECONDS - 1);
        assert_eq!(
            l.next_call("http://polar", || false, || Ok(()), early),
            Err(Some(1_000))
        );
        let due = at(t0 + 2 * 86_400 + WRITE_EVERY_SECONDS);
        // The breaker open or the budget spent: nothing sent, nothing begun.
        assert_eq!(
            l.next_call("http://polar", || true, || Ok(()), due),
            Err(Some(1_000))
        );
        assert_eq!(
            l.next_call("http://polar", || false, || Err(3), due),
            Err(Some(3_000))
        );
        let (url, body) = l
            .next_call("http://polar/", || false, || Ok(()), due)
            .expect("the read");
        assert_eq!(
            url,
            format!(
                "http://polar/v1/license-keys/{KEY_ID}/activations/{}",
                id(1)
            )
        );
        assert_eq!(body, None);
        let read = serde_json::json!({"id": id(1), "license_key": {"id": KEY_ID, "organization_id": ORG, "key": "THE-KEY-1234567"}});
        l.answered(&Ok((200, None, read.to_string().into_bytes())), due);
        // Seen again between the read and the deactivate: not retired, the key let go.
        l.saw(&id(1), KEY_ID, ORG, due.unix_seconds);
        assert_eq!(
            l.next_call("http://polar", || false, || Ok(()), due),
            Err(Some(0))
        );
        assert!(locked(&l.state).retiring.is_none());
        // Unseen for the window again: read, then deactivated with the key read.
        let later = at(due.unix_seconds + 2 * 86_400 + WRITE_EVERY_SECONDS);
        l.next_call("http://polar", || false, || Ok(()), later)
            .expect("the read");
        l.answered(&Ok((200, None, read.to_string().into_bytes())), later);
        let (url, body) = l
            .next_call("http://polar", || false, || Ok(()), later)
            .expect("the deactivate");
        assert_eq!(url, "http://polar/v1/license-keys/deactivate");
        let body: serde_json::Value = serde_json::from_slice(&body.expect("a body")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"key": "THE-KEY-1234567", "organization_id": ORG, "activation_id": id(1)})
        );
        l.answered(&Ok((204, None, Vec::new())), later);
        assert_eq!(l.of(KEY_ID, &id(1)), None);
        assert_eq!(locked(&l.state).counts.retired, 1);
    }

    #[test]
    fn a_read_of_another_key_or_organization_retires_nothing() {
        let l = LastSeen::new(1, 100);
        l.saw(&id(1), KEY_ID, ORG, 0);
        let due = at(86_400 + WRITE_EVERY_SECONDS);
        l.next_call("http://polar", || false, || Ok(()), due)
            .expect("the read");
        let other = serde_json::json!({"id": id(1), "license_key": {"id": KEY_ID, "organization_id": KEY_ID, "key": "K"}});
        l.answered(&Ok((200, None, other.to_string().into_bytes())), due);
        assert!(locked(&l.state).retiring.is_none());
        assert_eq!(l.of(KEY_ID, &id(1)), None, "dropped, not retired");
    }

    #[test]
    fn a_few_retirements_a_minute() {
        let l = LastSeen::new(1, 100);
        for n in 0..10 {
            l.saw(&id(n), KEY_ID, ORG, 0);
        }
        let due = at(10 * 86_400);
        for _ in 0..RETIREMENTS_PER_ROUND {
            l.next_call("http://polar", || false, || Ok(()), due)
                .expect("a read");
            l.answered(&Ok((404, None, Vec::new())), due);
        }
        assert!(matches!(
            l.next_call("http://polar", || false, || Ok(()), due),
            Err(Some(_))
        ));
        let next = Now {
            unix_seconds: due.unix_seconds + 60,
            monotonic_ms: due.monotonic_ms + ROUND_MS,
        };
        assert!(l
            .next_call("http://polar", || false, || Ok(()), next)
            .is_ok());
    }
}
