//! Why a key stopped (issue #68 item 4): per key, the last lifecycle event Polar's webhooks told
//! of and its dates, read to explain a denial with a typed detail ([`polar_license::stopped`]).
//!
//! Polar answers a paused subscription, a cancellation that ended, a removed seat, a refund
//! with revocation and a rotated key all with the same 404 (docs/polar-api.md §16.6, §15).
//! The webhooks tell them apart, but no single one names both the key and the cause: a
//! `subscription.*` event names its subscription and no key, `order.refunded` its order,
//! `customer_seat.revoked` its subscription with the member nulled; only the
//! `benefit_grant.*` events that follow name the key (`properties.license_key_id`) and its
//! purchase (`subscription_id`, `order_id`, `member_id`). So this module keeps three small
//! maps (subscriptions, orders, keys) from the events, and joins them when a denial is
//! explained; and, from Polar's grants the relay passes on, each key string's digest to its
//! key's id (a denial names no id).
//!
//! **It never grants.** A record is read only for an answer that is a denial already (Polar's,
//! or a stored one); it adds a detail beside Polar's body and changes no verdict, no status
//! and no reason code. Nothing here changes what the store answers.
//!
//! **Bounded.** Each map holds at most [`MAX_RECORDS`] records, the oldest written dropped
//! first: a webhook adds at most one record to each, a grant one digest.
//!
//! **Outlives a restart.** The maps are held in memory; what they explain of each key string
//! the relay learned is also kept in the store ([`Lifecycle::keep`]): one value per key
//! string (`EntryKind::Lifecycle`, its id a digest of the organization and the string's
//! SHA-256, no index tag), written when a webhook changes what explains it. A relay restarted
//! over the same store (a deploy, a crash, a Durable Object evicted) that has not learned the
//! string since reads it there ([`Lifecycle::explain`]): on Workers it is read with the
//! request's own entries (`crate::wants`), no storage call of its own. Such a value is the
//! cheapest to lose under the store's byte cap (evicted as a denial is: its denial then comes
//! without detail); one per key string a webhook stopped, so bounded by the keys sold.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use polar_license::lease::DenialClaims;
use polar_license::proto::{HttpResponse, Operation};
use polar_license::stopped::{StopKind, Stopped, STOPPED_HEADER};
use polar_license::Key;

use crate::locked::locked;
use crate::pending::Pending;
use crate::store::{Backend, Entry, EntryId, EntryKind};
use crate::types::{Answered, RelayResponse};
use serde_json::Value as Json;

/// The most records each map holds (about 200 bytes each: a few MB at most).
pub const MAX_RECORDS: usize = 20_000;

/// How far apart a `customer_seat.revoked` and the member's `benefit_grant.revoked` may be
/// (seconds, by their own dates) for the key to count as a removed seat.
const SEAT_WINDOW: i64 = 3_600;

/// The most key strings one webhook's change is kept for in the store (a subscription's
/// seats each have a key): past it, the rest explain from memory only until a restart.
const MAX_KEPT_PER_EVENT: usize = 256;

/// A bounded map: the oldest inserted key dropped first when full.
#[derive(Debug)]
struct Bounded<V> {
    map: HashMap<String, V>,
    order: VecDeque<String>,
}

impl<V> Default for Bounded<V> {
    fn default() -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V: Default> Bounded<V> {
    fn entry(&mut self, key: &str) -> &mut V {
        if !self.map.contains_key(key) {
            while self.map.len() >= MAX_RECORDS {
                match self.order.pop_front() {
                    Some(old) => {
                        self.map.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(key.to_string());
        }
        self.map.entry(key.to_string()).or_default()
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }
}

/// A subscription as its newest `subscription.*` event showed it.
#[derive(Debug, Default, Clone)]
struct Subscription {
    /// The event's date (`modified_at`, else the delivery's `timestamp`): an older one
    /// delivered late changes nothing.
    at: i64,
    status: String,
    paused_at: Option<i64>,
    resumes_at: Option<i64>,
    ended_at: Option<i64>,
    /// When a `subscription.past_due` came (its date).
    past_due_at: Option<i64>,
    /// The newest `customer_seat.revoked` of the subscription.
    seat_revoked_at: Option<i64>,
}

/// An order's refund (`order.refunded`), and its seats' revocations.
#[derive(Debug, Default, Clone)]
struct Order {
    refunded_at: Option<i64>,
    seat_revoked_at: Option<i64>,
}

/// A license key as its grant's events showed it.
#[derive(Debug, Default, Clone)]
struct KeyRecord {
    subscription_id: Option<String>,
    order_id: Option<String>,
    member: bool,
    /// The newest grant event's date, and whether it revoked the grant.
    at: i64,
    revoked: bool,
    /// A rotation (§15): the display form of the string used before, and when.
    rotated_from: Option<(String, i64)>,
}

/// A key string Polar granted: its key's id, the organization it was asked of, and its
/// display form (what a rotation names).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Learned {
    id: String,
    organization_id: String,
    display: String,
}

#[derive(Debug, Default)]
struct Inner {
    subscriptions: Bounded<Subscription>,
    orders: Bounded<Order>,
    keys: Bounded<KeyRecord>,
    /// A key string's SHA-256 (hex) to its key's id, as Polar's grants named it.
    ids: Bounded<Learned>,
}

/// The store's id of what explains the key string `key_sha256` (of `organization_id`): a
/// digest of its own domain, no verdict's or pool's id.
pub(crate) fn stored_id(organization_id: &str, key_sha256: &str) -> EntryId {
    crate::store::key_digest("lifecycle", organization_id, key_sha256)
}

/// The lifecycle records of the relay's store (see the module's documentation).
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    inner: Mutex<Inner>,
}

fn text<'a>(data: &'a Json, name: &str) -> Option<&'a str> {
    data.get(name)
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
}

fn date(data: &Json, name: &str) -> Option<i64> {
    text(data, name).and_then(polar_license::schema::rfc3339)
}

/// The key's display form as Polar writes it (`****-` and its last six characters).
fn display(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(6)..].iter().collect();
    format!("****-{tail}")
}

impl Lifecycle {
    /// Polar granted `key`, whose id is `license_key_id`: a later denial of the same string is
    /// explained by that key's records (the string held as its SHA-256, never in clear).
    pub(crate) fn learn(&self, organization_id: &str, key: &Key, license_key_id: &str) {
        let mut inner = locked(&self.inner);
        let learned = inner.ids.entry(&polar_license::lease::key_hash(key));
        if learned.id != license_key_id || learned.organization_id != organization_id {
            *learned = Learned {
                id: license_key_id.to_string(),
                organization_id: organization_id.to_string(),
                display: display(key.expose()),
            };
        }
    }

    /// The key strings whose explanation `event` may change (before it is applied: the
    /// strings of the keys it names, or of its subscription's or order's keys), as
    /// (organization, SHA-256) pairs, at most [`MAX_KEPT_PER_EVENT`]: those it keeps in the
    /// store ([`Lifecycle::keep`]), and a host-loaded store loads with the webhook.
    pub(crate) fn affected(&self, event: &Json) -> Vec<(String, String)> {
        let (Some(kind), Some(data)) =
            (event.get("type").and_then(Json::as_str), event.get("data"))
        else {
            return Vec::new();
        };
        let inner = locked(&self.inner);
        let of = |f: &dyn Fn(&KeyRecord) -> bool| -> Vec<String> {
            inner
                .keys
                .map
                .iter()
                .filter(|(_, k)| f(k))
                .map(|(id, _)| id.clone())
                .collect()
        };
        let is = |have: &Option<String>, id: Option<&str>| id.is_some() && have.as_deref() == id;
        let keys: Vec<String> = if kind.starts_with("subscription.") {
            let sub = text(data, "id");
            of(&|k| is(&k.subscription_id, sub))
        } else if kind == "order.refunded" {
            let order = text(data, "id");
            of(&|k| is(&k.order_id, order))
        } else if kind == "customer_seat.revoked" {
            let (sub, order) = (text(data, "subscription_id"), text(data, "order_id"));
            of(&|k| is(&k.subscription_id, sub) || is(&k.order_id, order))
        } else if kind.starts_with("benefit_grant.") {
            data.pointer("/properties/license_key_id")
                .and_then(Json::as_str)
                .map(|id| vec![id.to_string()])
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if keys.is_empty() {
            return Vec::new();
        }
        inner
            .ids
            .map
            .iter()
            .filter(|(_, l)| keys.contains(&l.id))
            .take(MAX_KEPT_PER_EVENT)
            .map(|(digest, l)| (l.organization_id.clone(), digest.clone()))
            .collect()
    }

    /// What explains each of `affected` (after the event is applied) kept in the store, so
    /// that a restarted relay still explains it: written only when it changed. A store that
    /// fails (or a host-loaded one that did not load it) keeps the previous one; the denial
    /// is then explained from memory until a restart, as before.
    pub(crate) fn keep(&self, store: &dyn Backend, affected: &[(String, String)], now: i64) {
        for (organization_id, digest) in affected {
            let text = {
                let inner = locked(&self.inner);
                inner
                    .ids
                    .get(digest)
                    .and_then(|l| explained(&inner, &l.id, &l.display))
                    .map(|s| s.to_text())
                    .unwrap_or_default()
            };
            let written = store.update(&stored_id(organization_id, digest), &mut |current| {
                let same = match current {
                    Some(e) => e.kind() == EntryKind::Lifecycle && e.body == text,
                    None => text.is_empty(),
                };
                (!same).then(|| Entry {
                    answered_at: now,
                    status: LIFECYCLE_STATUS,
                    body: text.clone(),
                    kind: Some(EntryKind::Lifecycle),
                    ..Entry::default()
                })
            });
            if let Err(e) = written {
                log::debug!("relay: why a key stopped is not kept in the store ({e})");
            }
        }
    }

    /// A verified webhook's event (after its signature verified): what it tells of a
    /// subscription, an order, a seat or a key's grant is recorded; anything else is ignored.
    pub(crate) fn on_event(&self, event: &Json) {
        let (Some(kind), Some(data)) =
            (event.get("type").and_then(Json::as_str), event.get("data"))
        else {
            return;
        };
        let at = date(data, "modified_at")
            .or_else(|| date(data, "revoked_at"))
            .or_else(|| date(data, "created_at"))
            .or_else(|| date(event, "timestamp"))
            .unwrap_or(0);
        let mut inner = locked(&self.inner);
        match kind {
            "subscription.updated"
            | "subscription.canceled"
            | "subscription.revoked"
            | "subscription.uncanceled"
            | "subscription.active"
            | "subscription.paused"
            | "subscription.resumed"
            | "subscription.past_due" => {
                let Some(id) = text(data, "id") else { return };
                let s = inner.subscriptions.entry(id);
                if at < s.at {
                    return;
                }
                s.at = at;
                s.status = text(data, "status").unwrap_or_default().to_string();
                s.paused_at = date(data, "paused_at");
                s.resumes_at = date(data, "resumes_at");
                s.ended_at = date(data, "ended_at").or_else(|| date(data, "ends_at"));
                if s.status == "past_due" {
                    s.past_due_at = s.past_due_at.or(Some(at));
                } else {
                    s.past_due_at = None;
                }
            }
            "order.refunded" => {
                let Some(id) = text(data, "id") else { return };
                let o = inner.orders.entry(id);
                o.refunded_at = Some(at);
            }
            "customer_seat.revoked" => {
                // Its member and customer are nulled before sending (§16.6): the seat's
                // purchase is what is left to join the member's grant revoked after it.
                let at = date(data, "revoked_at").unwrap_or(at);
                if let Some(id) = text(data, "subscription_id") {
                    let s = inner.subscriptions.entry(id);
                    s.seat_revoked_at = s.seat_revoked_at.max(Some(at));
                } else if let Some(id) = text(data, "order_id") {
                    let o = inner.orders.entry(id);
                    o.seat_revoked_at = o.seat_revoked_at.max(Some(at));
                }
            }
            "benefit_grant.created"
            | "benefit_grant.updated"
            | "benefit_grant.revoked"
            | "benefit_grant.cycled" => {
                let benefit = data.pointer("/benefit/type").and_then(Json::as_str);
                if benefit.is_some_and(|t| t != "license_keys") {
                    return;
                }
                let Some(id) = data
                    .pointer("/properties/license_key_id")
                    .and_then(Json::as_str)
                else {
                    return;
                };
                let k = inner.keys.entry(id);
                k.subscription_id = text(data, "subscription_id").map(str::to_string);
                k.order_id = text(data, "order_id").map(str::to_string);
                k.member = text(data, "member_id").is_some();
                let old = data
                    .pointer("/previous_properties/display_key")
                    .and_then(Json::as_str);
                let new = data
                    .pointer("/properties/display_key")
                    .and_then(Json::as_str);
                if kind == "benefit_grant.updated" {
                    if let Some(old) = old.filter(|old| Some(*old) != new) {
                        k.rotated_from = Some((old.to_string(), at));
                    }
                }
                if at >= k.at {
                    k.at = at;
                    k.revoked = kind == "benefit_grant.revoked";
                }
            }
            _ => {}
        }
    }

    /// Polar's answer to `pending` as the store saw it: a grant naming its key's id teaches
    /// the string's digest that id.
    pub(crate) fn learn_from(&self, pending: &Pending, seen: Option<&Answered>) {
        if let Some(id) = seen
            .filter(|a| a.status == 200)
            .and_then(|a| a.license_key_id.as_deref())
        {
            self.learn(&pending.checked.organization_id, &pending.key, id);
        }
    }

    /// The detail of Polar's answer `upstream` to `pending` when it is a denial of the key
    /// (validate 404; activate 403, or 404 for a string no longer the key's, a rotated one)
    /// the records explain.
    pub(crate) fn denied(
        &self,
        store: &dyn Backend,
        pending: &Pending,
        upstream: &HttpResponse,
    ) -> Option<Stopped> {
        let denial = match pending.op {
            Operation::Validate => upstream.status == 404,
            Operation::Activate => matches!(upstream.status, 403 | 404),
            Operation::Deactivate => false,
        };
        if denial {
            self.explain(store, &pending.checked.organization_id, &pending.key)
        } else {
            None
        }
    }

    /// The detail of a denial of `key` (its string: the relay holds it for the request, asked
    /// of `organization_id`), when the records explain it; `None` otherwise (the denial goes
    /// as before). A string not learned since the relay started is explained as the store
    /// kept it ([`Lifecycle::keep`]).
    pub(crate) fn explain(
        &self,
        store: &dyn Backend,
        organization_id: &str,
        key: &Key,
    ) -> Option<Stopped> {
        let digest = polar_license::lease::key_hash(key);
        {
            let inner = locked(&self.inner);
            if let Some(l) = inner.ids.get(&digest) {
                return explained(&inner, &l.id, &display(key.expose()));
            }
        }
        let entry = match store.get(&stored_id(organization_id, &digest)) {
            Ok(entry) => entry?,
            Err(e) => {
                log::debug!("relay: why a key stopped is not read from the store ({e})");
                return None;
            }
        };
        (entry.kind() == EntryKind::Lifecycle)
            .then(|| Stopped::from_text(&entry.body))
            .flatten()
    }
}

/// The status a key string's lifecycle value is stored with: no answer of Polar's has it (its
/// kind, [`EntryKind::Lifecycle`], says what it is).
const LIFECYCLE_STATUS: u16 = 0;

/// What the records explain of the key `id`'s string shown as `shown` (its display form).
fn explained(inner: &Inner, id: &str, shown: &str) -> Option<Stopped> {
    let k = inner.keys.get(id)?;
    // A string replaced by another: Polar answers it 404 "Not found" from then on.
    if let Some((old, at)) = &k.rotated_from {
        if old == shown {
            return Some(Stopped {
                kind: StopKind::Rotated,
                at: Some(*at),
                until: None,
            });
        }
    }
    if !k.revoked {
        return None;
    }
    let stopped = |kind, at, until| Some(Stopped { kind, at, until });
    let sub = k
        .subscription_id
        .as_deref()
        .and_then(|s| inner.subscriptions.get(s));
    if let Some(s) = sub {
        match s.status.as_str() {
            "paused" => return stopped(StopKind::Paused, s.paused_at, s.resumes_at),
            "canceled" => return stopped(StopKind::Canceled, s.ended_at, None),
            "past_due" => return stopped(StopKind::PastDue, s.past_due_at, None),
            _ => {}
        }
    }
    let order = k.order_id.as_deref().and_then(|o| inner.orders.get(o));
    let seat_at = sub
        .and_then(|s| s.seat_revoked_at)
        .max(order.and_then(|o| o.seat_revoked_at));
    if let Some(at) = seat_at.filter(|at| k.member && (k.at - at).abs() <= SEAT_WINDOW) {
        return stopped(StopKind::SeatRevoked, Some(at), None);
    }
    if let Some(at) = order.and_then(|o| o.refunded_at) {
        return stopped(StopKind::Refunded, Some(at), None);
    }
    None
}

/// Writes the detail beside a denial: its [`STOPPED_HEADER`] (an unsigned client's reading;
/// in signed mode only the signed denial's claim is believed).
pub(crate) fn tell(r: &mut RelayResponse, stop: Option<Stopped>) {
    if let Some(stop) = stop {
        r.set(STOPPED_HEADER, &stop.to_text());
    }
}

/// A signed denial's claims with the detail, only for a request whose nonce asks for it
/// ([`polar_license::stopped::STOP_MARK`]): a client older than the claim refuses a denial
/// with a member it does not know.
pub(crate) fn with_stop(mut denial: DenialClaims, stop: Option<Stopped>) -> DenialClaims {
    denial.stop = stop.filter(|_| polar_license::stopped::asks_stop(&denial.nonce));
    denial
}

/// [`with_stop`] of a denial, when there is one.
pub(crate) fn signed(denial: Option<DenialClaims>, stop: Option<Stopped>) -> Option<DenialClaims> {
    denial.map(|d| with_stop(d, stop))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::store::MemoryBackend;
    use serde_json::json;

    const KEY: &str = "KEY-AAAA-BBBBBB";

    /// Whose grant an event is: a subscription's, a seat's of a subscription, an order's.
    #[derive(Clone, Copy)]
    enum Of {
        Subscription(&'static str),
        Seat(&'static str),
        Order(&'static str),
    }

    fn grant(kind: &str, at: &str, of: Of) -> Json {
        let (sub, order, member) = match of {
            Of::Subscription(s) => (Some(s), None, false),
            Of::Seat(s) => (Some(s), None, true),
            Of::Order(o) => (None, Some(o), false),
        };
        json!({"type": kind, "timestamp": at, "data": {
            "modified_at": at, "subscription_id": sub, "order_id": order,
            "member_id": if member { json!("m1") } else { Json::Null },
            "benefit": {"type": "license_keys"},
            "properties": {"license_key_id": "lk1", "display_key": "****-BBBBBB"},
            "previous_properties": null}})
    }

    /// Why `l` says `key` (of "org") stopped, from its memory alone.
    fn stop_of(l: &Lifecycle, key: &str) -> Option<Stopped> {
        l.explain(&MemoryBackend::default(), "org", &Key::new(key))
    }

    /// Subscription s1 paused on 2026-06-01 until 2026-06-03.
    fn paused() -> Json {
        json!({"type": "subscription.paused", "data": {"id": "s1",
            "modified_at": "2026-06-01T00:00:00Z", "status": "paused",
            "paused_at": "2026-06-01T00:00:00Z", "resumes_at": "2026-06-03T00:00:00Z"}})
    }

    /// Subscription s1 resumed on 2026-06-03.
    fn resumed() -> Json {
        json!({"type": "subscription.resumed", "data": {"id": "s1",
            "modified_at": "2026-06-03T00:00:00Z", "status": "active"}})
    }

    /// `events` told to `l` at `now`, what each changed kept in `store` as a host keeps it:
    /// how many key strings each affected.
    fn kept(l: &Lifecycle, store: &MemoryBackend, events: &[Json], now: i64) -> Vec<usize> {
        events
            .iter()
            .map(|event| {
                let affected = l.affected(event);
                l.on_event(event);
                l.keep(store, &affected, now);
                affected.len()
            })
            .collect()
    }

    fn learned() -> Lifecycle {
        let l = Lifecycle::default();
        l.learn("org", &Key::new(KEY), "lk1");
        l
    }

    #[test]
    fn a_paused_subscription_explains_its_key_and_a_resume_ends_it() {
        let l = learned();
        l.on_event(&paused());
        assert_eq!(stop_of(&l, KEY), None, "the grant is not revoked yet");
        l.on_event(&grant(
            "benefit_grant.revoked",
            "2026-06-01T00:00:01Z",
            Of::Subscription("s1"),
        ));
        let s = stop_of(&l, KEY).expect("explained");
        assert_eq!(s.kind, StopKind::Paused);
        assert_eq!((s.at, s.until), (Some(1_780_272_000), Some(1_780_444_800)));
        // Another string (unknown digest) is not explained.
        assert_eq!(stop_of(&l, "KEY-OTHER-BBBBBB"), None);
        // A late, older subscription event changes nothing.
        l.on_event(&json!({"type": "subscription.updated", "data": {"id": "s1",
            "modified_at": "2026-05-01T00:00:00Z", "status": "active"}}));
        assert_eq!(stop_of(&l, KEY).map(|s| s.kind), Some(StopKind::Paused));
        l.on_event(&resumed());
        l.on_event(&grant(
            "benefit_grant.created",
            "2026-06-03T00:00:01Z",
            Of::Subscription("s1"),
        ));
        assert_eq!(stop_of(&l, KEY), None);
    }

    #[test]
    fn a_seat_a_refund_and_a_rotation_each_explain() {
        let l = learned();
        l.on_event(
            &json!({"type": "customer_seat.revoked", "data": {"id": "seat",
            "subscription_id": "s1", "customer_id": null, "member_id": null, "email": null,
            "revoked_at": "2026-06-01T00:00:00Z"}}),
        );
        l.on_event(&grant(
            "benefit_grant.revoked",
            "2026-06-01T00:00:02Z",
            Of::Seat("s1"),
        ));
        assert_eq!(
            stop_of(&l, KEY).map(|s| s.kind),
            Some(StopKind::SeatRevoked)
        );
        let l = learned();
        l.on_event(&json!({"type": "order.refunded", "data": {"id": "o1",
            "modified_at": "2026-06-01T00:00:00Z", "status": "refunded"}}));
        l.on_event(&grant(
            "benefit_grant.revoked",
            "2026-06-01T00:00:02Z",
            Of::Order("o1"),
        ));
        assert_eq!(stop_of(&l, KEY).map(|s| s.kind), Some(StopKind::Refunded));
        let l = learned();
        let mut rotated = grant(
            "benefit_grant.updated",
            "2026-06-01T00:00:02Z",
            Of::Order("o1"),
        );
        rotated["data"]["properties"]["display_key"] = json!("****-CCCCCC");
        rotated["data"]["previous_properties"] =
            json!({"license_key_id": "lk1", "display_key": "****-BBBBBB"});
        l.on_event(&rotated);
        assert_eq!(stop_of(&l, KEY).map(|s| s.kind), Some(StopKind::Rotated));
        // The new string (same id) is not the rotated one.
        l.learn("org", &Key::new("KEY-AAAA-CCCCCC"), "lk1");
        assert_eq!(stop_of(&l, "KEY-AAAA-CCCCCC"), None);
    }

    #[test]
    fn every_map_is_bounded() {
        let l = Lifecycle::default();
        for n in 0..(MAX_RECORDS + 50) {
            l.learn("org", &Key::new(format!("K-{n}")), "lk");
            l.on_event(&json!({"type": "order.refunded", "data": {"id": format!("o{n}")}}));
        }
        let inner = locked(&l.inner);
        assert_eq!(inner.ids.map.len(), MAX_RECORDS);
        assert_eq!(inner.orders.map.len(), MAX_RECORDS);
        assert_eq!(inner.orders.order.len(), MAX_RECORDS);
        assert!(inner.orders.get("o0").is_none() && inner.orders.get("o20049").is_some());
    }

    /// What a webhook changed is kept in the store: a relay restarted over it (its memory
    /// empty) still explains the key string's denial, and a resume kept there ends it.
    #[test]
    fn a_restarted_relay_explains_from_the_store() {
        let store = MemoryBackend::default();
        let l = learned();
        let revoked = grant(
            "benefit_grant.revoked",
            "2026-06-01T00:00:01Z",
            Of::Subscription("s1"),
        );
        kept(&l, &store, &[paused(), revoked], 10);
        assert_eq!(store.len().unwrap(), 1, "one value for the key string");
        let restarted = Lifecycle::default();
        let s = restarted
            .explain(&store, "org", &Key::new(KEY))
            .expect("explained from the store");
        assert_eq!(s.kind, StopKind::Paused);
        assert_eq!((s.at, s.until), (Some(1_780_272_000), Some(1_780_444_800)));
        // Another organization's string of the same text is another value.
        assert_eq!(restarted.explain(&store, "other", &Key::new(KEY)), None);
        // The resume, told the relay that learned the string, is kept too.
        let created = grant(
            "benefit_grant.created",
            "2026-06-03T00:00:01Z",
            Of::Subscription("s1"),
        );
        assert_eq!(
            kept(&l, &store, &[resumed(), created], 20),
            [1, 1],
            "the subscription's key string"
        );
        assert_eq!(
            Lifecycle::default().explain(&store, "org", &Key::new(KEY)),
            None
        );
        // An event of a subscription no key learned names none.
        assert!(l
            .affected(&json!({"type": "subscription.paused", "data": {"id": "s9"}}))
            .is_empty());
    }
}
