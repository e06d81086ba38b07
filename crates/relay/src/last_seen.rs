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
//! dropped for the new one. A request makes at most one record (its own activation's).
//!
//! **Kept in the store** (when the relay has one). Each time a record moves, the key's
//! activations are written to the store too, one value per key (`EntryKind::LastSeen`, its id a
//! digest of its own domain, the organization and the key's SHA-256; at most
//! [`MAX_STORED_PER_KEY`] activations, the one seen longest ago dropped past it): one write
//! per activation an hour at most, as the record moves. So a restarted relay (or a Durable Object woken
//! again, on Workers, which loads the value with the request's own) knows a key's activations
//! again as soon as any request of that key reads them: a device listing shows their times, and
//! a validate brings the key's other activations back into the record, where the retirements
//! find them. An activation whose key is never asked of the relay again is not known again (the
//! relay keeps no list of keys), so it is not retired until then. A deactivation through the
//! relay drops its activation from the value too. The value is evicted first under the store's
//! byte cap, as a denial is: lost, a row shows no time until it is seen again.
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

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use polar_license::Key;

use crate::clock::Now;
use crate::locked::locked;
use crate::roster::ReadAnswer;
use crate::store::{Backend, Entry, EntryId, EntryKind};

/// Records kept at most; past it the one seen longest ago is dropped.
pub const DEFAULT_MAX_RECORDS: usize = 100_000;

/// A key's activations its stored value keeps at most (a key's activations are bounded by its
/// limit, far under this); past it the one seen longest ago is dropped.
pub const MAX_STORED_PER_KEY: usize = 64;

/// The status a key's last-seen value is stored with: no answer of Polar's has it (its kind,
/// [`EntryKind::LastSeen`], says what it is).
const LAST_SEEN_STATUS: u16 = 0;

/// The store's id of the last-seen value of the key string `key_sha256` (of
/// `organization_id`): a digest of its own domain, no verdict's, pool's or lifecycle's id.
pub(crate) fn stored_id(organization_id: &str, key_sha256: &str) -> EntryId {
    crate::store::key_digest("last_seen", organization_id, key_sha256)
}

/// A stored last-seen value read: its key's id and each activation's time (canonical ids, at
/// most [`MAX_STORED_PER_KEY`]); `None` for another kind of value or one that does not read.
fn stored_of(entry: Option<&Entry>) -> Option<(String, Vec<(String, i64)>)> {
    let e = entry.filter(|e| e.kind() == EntryKind::LastSeen)?;
    let v: serde_json::Value = serde_json::from_str(&e.body).ok()?;
    let key_id = crate::ids::canonical_uuid(v.get("key_id")?.as_str()?)?;
    let seen = v
        .get("seen")?
        .as_object()?
        .iter()
        .filter_map(|(a, t)| Some((crate::ids::canonical_uuid(a)?, t.as_i64()?)))
        .take(MAX_STORED_PER_KEY)
        .collect();
    Some((key_id, seen))
}

/// [`stored_of`] when the value is the key `key_id`'s (another key's, which its id's digest
/// tells apart, never in practice, reads as none).
fn stored_for(entry: Option<&Entry>, key_id: &str) -> Option<Vec<(String, i64)>> {
    stored_of(entry)
        .filter(|(k, _)| k.eq_ignore_ascii_case(key_id))
        .map(|(_, seen)| seen)
}

/// The value that keeps `seen` of the key `key_id`, written at `now`: `{"key_id": ID,
/// "seen": {ACTIVATION: UNIX SECONDS, …}}`, written by hand (every id canonical: hex digits and
/// hyphens only, nothing to escape).
fn stored_entry(key_id: &str, seen: &[(String, i64)], now: i64) -> Entry {
    let mut body = format!("{{\"key_id\":\"{key_id}\",\"seen\":{{");
    for (n, (activation, at)) in seen.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&format!("\"{activation}\":{at}"));
    }
    body.push_str("}}");
    Entry {
        answered_at: now,
        status: LAST_SEEN_STATUS,
        body,
        kind: Some(EntryKind::LastSeen),
        ..Entry::default()
    }
}

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

/// The records by activation id, and in the order they were seen: the oldest is found at once
/// (a new record past the cap, the retirement's look), never by a pass over them all, which a
/// device listing's adopted times would make at every insert of a full record.
#[derive(Default)]
struct Records {
    by_id: HashMap<String, Record>,
    by_seen: BTreeSet<(i64, String)>,
}

impl Records {
    fn get(&self, activation: &str) -> Option<&Record> {
        self.by_id.get(activation)
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// `change` made to `activation`'s record, if there is one, its place in the order kept.
    fn change<T>(&mut self, activation: &str, change: impl FnOnce(&mut Record) -> T) -> Option<T> {
        let r = self.by_id.get_mut(activation)?;
        self.by_seen.remove(&(r.seen, activation.to_string()));
        let out = change(r);
        self.by_seen.insert((r.seen, activation.to_string()));
        Some(out)
    }

    fn insert(&mut self, activation: &str, record: Record) {
        self.remove(activation);
        self.by_seen.insert((record.seen, activation.to_string()));
        self.by_id.insert(activation.to_string(), record);
    }

    fn remove(&mut self, activation: &str) {
        if let Some(r) = self.by_id.remove(activation) {
            self.by_seen.remove(&(r.seen, activation.to_string()));
        }
    }

    /// The record seen longest ago: its time and activation id.
    fn oldest(&self) -> Option<(i64, String)> {
        self.by_seen.first().cloned()
    }
}

#[derive(Default)]
struct State {
    records: Records,
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
        let moved = s.records.change(activation, |r| {
            if now.saturating_sub(r.seen) < WRITE_EVERY_SECONDS && r.key_id == key_id {
                return false;
            }
            r.seen = now;
            r.key_id = key_id.to_string();
            r.organization_id = organization_id.to_string();
            true
        });
        if let Some(moved) = moved {
            return moved;
        }
        self.insert(
            s,
            activation,
            Record {
                key_id: key_id.to_string(),
                organization_id: organization_id.to_string(),
                seen: now,
            },
        );
        true
    }

    /// A new record: past the cap, the one seen longest ago dropped (only an activation Polar
    /// granted can make one: a flood needs as many real activations), and the floor moved
    /// down to it.
    fn insert(&self, s: &mut State, activation: &str, record: Record) {
        if s.records.len() >= self.max_records {
            if let Some((_, oldest)) = s.records.oldest() {
                s.records.remove(&oldest);
                s.counts.dropped += 1;
            }
        }
        if s.records.is_empty() {
            s.floor = record.seen;
        }
        s.floor = s.floor.min(record.seen);
        s.records.insert(activation, record);
    }

    /// After [`LastSeen::saw`] wrote: `activation` of the key `key_id` seen at `now` kept in
    /// `store` too, in the key's value (its string's SHA-256 `key_sha256`, of
    /// `organization_id`), which is read in the same step; the key's other activations it kept
    /// are known here again (for the list and the retirements). A store that fails keeps what
    /// it had (the record here goes on).
    pub(crate) fn keep(
        &self,
        store: &dyn Backend,
        organization_id: &str,
        key_sha256: &str,
        activation: &str,
        key_id: &str,
        now: i64,
    ) {
        let mut kept = Vec::new();
        let written = store.update(&stored_id(organization_id, key_sha256), &mut |current| {
            // Another key's value is written over, as one that does not read.
            let mut seen = stored_for(current, key_id).unwrap_or_default();
            seen.retain(|(a, _)| a != activation);
            if seen.len() >= MAX_STORED_PER_KEY {
                if let Some(at) = (0..seen.len()).min_by_key(|&i| seen[i].1) {
                    seen.remove(at);
                }
            }
            seen.push((activation.to_string(), now));
            kept.clone_from(&seen);
            Some(stored_entry(key_id, &seen, now))
        });
        match written {
            Ok(_) => self.adopt(key_id, organization_id, &kept),
            Err(e) => log::debug!("relay: when an activation was last seen is not kept ({e})"),
        }
    }

    /// The key's activations `store` kept (its string's SHA-256 `key_sha256`, of
    /// `organization_id`, the key `key_id` as Polar named it), known here again: a device
    /// listing reads them before it answers.
    pub(crate) fn load(
        &self,
        store: &dyn Backend,
        organization_id: &str,
        key_sha256: &str,
        key_id: &str,
    ) {
        match store.get(&stored_id(organization_id, key_sha256)) {
            Ok(entry) => {
                let seen = crate::ids::canonical_uuid(key_id)
                    .and_then(|k| Some((stored_for(entry.as_ref(), &k)?, k)));
                if let Some((seen, k)) = seen {
                    self.adopt(&k, organization_id, &seen);
                }
            }
            Err(e) => log::debug!("relay: when activations were last seen is not read ({e})"),
        }
    }

    /// Stored times of the key `key_id`'s activations taken into the record: a new one
    /// recorded (within the cap), a recorded one moved forward only.
    fn adopt(&self, key_id: &str, organization_id: &str, seen: &[(String, i64)]) {
        let mut s = locked(&self.state);
        let s = &mut *s;
        for (activation, at) in seen {
            let known = s.records.change(activation, |r| {
                if r.key_id.eq_ignore_ascii_case(key_id) && *at > r.seen {
                    r.seen = *at;
                }
            });
            if known.is_some() {
                continue;
            }
            self.insert(
                s,
                activation,
                Record {
                    key_id: key_id.to_string(),
                    organization_id: organization_id.to_string(),
                    seen: *at,
                },
            );
        }
    }

    /// `activation` deactivated through the relay: dropped from its key's stored value too
    /// (the value removed once it keeps none).
    pub(crate) fn forget_kept(
        &self,
        store: &dyn Backend,
        organization_id: &str,
        key_sha256: &str,
        activation: &str,
    ) {
        self.forget(activation);
        let written = store.update(&stored_id(organization_id, key_sha256), &mut |current| {
            let (key_id, mut seen) = stored_of(current)?;
            let before = seen.len();
            seen.retain(|(a, _)| a != activation);
            if seen.len() == before {
                return None;
            }
            let now = current.map_or(0, |e| e.answered_at);
            Some(if seen.is_empty() {
                Entry::removal()
            } else {
                stored_entry(&key_id, &seen, now)
            })
        });
        if let Err(e) = written {
            log::debug!("relay: a deactivated activation's last-seen time is not dropped ({e})");
        }
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
            // The record is the relay's memory since it started, with the activations of the
            // keys asked since, which the store kept (when it has one).
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
                    oldest = s.records.oldest();
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

    /// The order by time follows every move (seen again, adopted later, forgotten): the
    /// record dropped past the cap is always the one seen longest ago, and the order holds
    /// exactly the records.
    #[test]
    fn the_oldest_follows_every_move() {
        let l = LastSeen::new(0, 4);
        for n in 0..4 {
            l.saw(&id(n), KEY_ID, ORG, 10_000 + i64::from(n) * 10_000);
        }
        // id(0) seen again: id(1) is now the oldest.
        l.saw(&id(0), KEY_ID, ORG, 100_000);
        // Adopted times: id(1) moved past id(2), an older one for id(3) ignored.
        l.adopt(KEY_ID, ORG, &[(id(1), 60_000), (id(3), 1)]);
        l.forget(&id(2));
        l.saw(&id(4), KEY_ID, ORG, 110_000);
        l.saw(&id(5), KEY_ID, ORG, 120_000);
        // Full at 4: id(3) (40,000) went, the oldest; then id(1) (60,000).
        l.saw(&id(6), KEY_ID, ORG, 130_000);
        assert_eq!(l.of(KEY_ID, &id(3)), None);
        assert_eq!(l.of(KEY_ID, &id(1)), None);
        for (n, at) in [(0, 100_000), (4, 110_000), (5, 120_000), (6, 130_000)] {
            assert_eq!(l.of(KEY_ID, &id(n)), Some(at), "{n}");
        }
        let s = locked(&l.state);
        let order: Vec<i64> = s.records.by_seen.iter().map(|(t, _)| *t).collect();
        assert_eq!(order, [100_000, 110_000, 120_000, 130_000]);
        assert_eq!(s.records.by_id.len(), 4);
    }

    const DIGEST: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    /// What `store` keeps of the key `DIGEST` of `ORG`: each activation's time.
    fn kept(store: &dyn Backend) -> Vec<(String, i64)> {
        let e = store.get(&stored_id(ORG, DIGEST)).expect("read");
        let mut seen = stored_of(e.as_ref()).map(|(_, s)| s).unwrap_or_default();
        seen.sort();
        seen
    }

    #[test]
    fn the_store_keeps_what_a_restarted_relay_knows_again() {
        let store = crate::store::MemoryBackend::new(100);
        let l = LastSeen::new(2, 100);
        for (n, t) in [(1, 10_000), (2, 20_000)] {
            assert!(l.saw(&id(n), KEY_ID, ORG, t));
            l.keep(&store, ORG, DIGEST, &id(n), KEY_ID, t);
        }
        assert_eq!(kept(&store), vec![(id(1), 10_000), (id(2), 20_000)]);
        // Started again: nothing known until the key's value is read.
        let again = LastSeen::new(2, 100);
        assert_eq!(again.of(KEY_ID, &id(1)), None);
        // Read for another key id (a value that is not this key's): nothing adopted.
        again.load(&store, ORG, DIGEST, "3d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10");
        assert_eq!(again.of(KEY_ID, &id(1)), None);
        again.load(&store, ORG, DIGEST, KEY_ID);
        assert_eq!(again.of(KEY_ID, &id(1)), Some(10_000));
        assert_eq!(again.of(KEY_ID, &id(2)), Some(20_000));
        // Known again, the one unseen is retired in its turn: its read is the first call.
        let (url, body) = again
            .next_call(
                "https://api.polar.sh",
                || false,
                || Ok(()),
                at(10_000 + 2 * 86_400 + 3_600),
            )
            .expect("a retirement due");
        assert!(url.ends_with(&format!("/activations/{}", id(1))), "{url}");
        assert!(body.is_none());
        // A newer time here is never moved back by an older one kept.
        assert!(again.saw(&id(2), KEY_ID, ORG, 30_000));
        again.load(&store, ORG, DIGEST, KEY_ID);
        assert_eq!(again.of(KEY_ID, &id(2)), Some(30_000));
        // A deactivation drops it from the store, and the last one removes the value.
        again.forget_kept(&store, ORG, DIGEST, &id(1));
        assert_eq!(kept(&store), vec![(id(2), 20_000)]);
        assert_eq!(again.of(KEY_ID, &id(1)), None);
        again.forget_kept(&store, ORG, DIGEST, &id(2));
        assert_eq!(store.get(&stored_id(ORG, DIGEST)).expect("read"), None);
    }

    #[test]
    fn a_key_s_stored_value_is_bounded() {
        let store = crate::store::MemoryBackend::new(100);
        let l = LastSeen::new(0, 1_000);
        let many = u32::try_from(MAX_STORED_PER_KEY).unwrap() + 10;
        for n in 0..many {
            l.keep(&store, ORG, DIGEST, &id(n), KEY_ID, 1_000 + i64::from(n));
        }
        let seen = kept(&store);
        assert_eq!(seen.len(), MAX_STORED_PER_KEY);
        assert!(
            !seen.iter().any(|(a, _)| *a == id(0)),
            "the one seen longest ago went first"
        );
        assert!(seen.iter().any(|(a, _)| *a == id(many - 1)));
        // What the store holds of another kind at that id is no record.
        let other = Entry {
            body: "{\"key_id\":\"x\"}".to_string(),
            kind: Some(EntryKind::Lifecycle),
            ..Entry::default()
        };
        assert_eq!(stored_of(Some(&other)), None);
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

    /// Two requests of one key's activations kept at the same moment (two threads held at a
    /// barrier, each keeping its own activation into the key's one value): neither write is
    /// lost, on the memory store and on the redb file. A keep that read the value and wrote it
    /// back in two steps loses one of each pair here.
    fn keeps_at_once_lose_nothing(store: &dyn Backend) {
        let l = LastSeen::new(2, 1_000);
        let rounds: u32 = 32; // 64 activations: MAX_STORED_PER_KEY, none dropped by the cap
        for r in 0..rounds {
            let gate = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                for n in [2 * r, 2 * r + 1] {
                    let (l, gate) = (&l, &gate);
                    s.spawn(move || {
                        gate.wait();
                        l.keep(store, ORG, DIGEST, &id(n), KEY_ID, 1_000 + i64::from(n));
                    });
                }
            });
        }
        let all: Vec<(String, i64)> = (0..2 * rounds)
            .map(|n| (id(n), 1_000 + i64::from(n)))
            .collect();
        assert_eq!(kept(store), all);
    }

    #[test]
    fn keeps_at_once_lose_nothing_in_memory() {
        keeps_at_once_lose_nothing(&crate::store::MemoryBackend::new(1_000));
    }

    #[cfg(feature = "durable")]
    #[test]
    fn keeps_at_once_lose_nothing_in_the_file() {
        let dir = polar_license_testkit::ScratchDir::new("last-seen-at-once");
        let store =
            crate::store::RedbBackend::open(&dir.path().join("seen.redb"), 1_000).expect("opened");
        keeps_at_once_lose_nothing(&store);
    }
}
