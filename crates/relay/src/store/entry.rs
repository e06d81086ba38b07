//! An entry: one stored answer of Polar's, its id, and the index tags it is found by.

use polar_license_rules::CheckedBody;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::hex_id;

/// An entry's id: SHA-256 of the organization, the key's SHA-256 and the request's shape.
pub type EntryId = [u8; 32];
/// What a webhook did to an entry: a webhook only narrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Mark {
    /// Polar's answer, untouched.
    #[default]
    None,
    /// A change Polar told of: ask Polar at the next check.
    Stale,
    /// The key was revoked: a denial, at once, until Polar says otherwise.
    Revoked,
}

/// The largest entry the store keeps, in bytes as [`entry_size`] counts them: 120 KiB, so
/// that an entry with its storage key and the storage's own overhead stays under 128 KiB
/// (131,072 bytes), the limit per value of a Cloudflare Durable Object's key-value storage.
/// Polar's answer past it (a key whose activation holds 50 metadata values of 500 escaped
/// characters answers about 160 KB) is passed on to the client and not stored, on every
/// host: a storage that refused it would refuse it again with every save after it.
pub const MAX_ENTRY_BYTES: usize = 120 * 1024;

/// The bytes `entry` takes as the hosts store it, counted high: its JSON text's UTF-8 bytes
/// (what the native stores hold), or, when a string of it holds a character past Latin-1,
/// two bytes per UTF-16 unit of that text, as V8's structured clone (a Durable Object's
/// storage) writes such a string, whichever is more.
pub fn entry_size(entry: &Entry) -> usize {
    let Ok(text) = serde_json::to_string(entry) else {
        return usize::MAX;
    };
    let wide = text.chars().any(|c| u32::from(c) > 0xff);
    let utf16 = if wide {
        text.encode_utf16().count().saturating_mul(2)
    } else {
        0
    };
    text.len().max(utf16)
}

/// One stored answer of Polar's (or, by its [`EntryKind`], a value of the relay's own: its
/// default is nothing of Polar's, nothing marked, no kind).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Entry {
    /// The license key's id in Polar (its `id`): what webhooks name.
    pub license_key_id: Option<String>,
    /// The customer's id (purchase webhooks name the customer).
    pub customer_id: Option<String>,
    /// When Polar answered (unix seconds): a lease's time of verification.
    pub answered_at: i64,
    /// Polar's status and body, and the headers passed back.
    pub status: u16,
    /// Polar's body (UTF-8 JSON) without the license key and without emails (the key's value
    /// `""`, the emails `null`): the client's key goes back in at [`Entry::key_at`] when the
    /// answer is replayed.
    pub body: String,
    /// `content-type`, `polar-version`, `cache-control`, `x-polar-sandbox`.
    pub headers: Vec<(String, String)>,
    /// Whether the core read the answer as a grant of the request.
    pub grant: bool,
    /// What webhooks said since.
    pub mark: Mark,
    /// The newest customer-level event applied (a purchase event, or a license-key grant
    /// event naming no key: its `modified_at` or `timestamp`, unix seconds): an older one,
    /// delivered late, changes nothing. It never hides an event about the key (stored as
    /// `last_event_at`, which an older relay advanced for every event).
    #[serde(rename = "last_event_at")]
    pub customer_event_at: i64,
    /// The newest event applied that names this entry's key (a grant of it created, updated,
    /// cycled or revoked): only such an event, newer, makes a late revocation of the key a
    /// re-check instead of a denial (0 in an older relay's entries: every revocation denies).
    #[serde(default)]
    pub key_event_at: i64,
    /// When the relay applied the mark (its clock): a call to Polar that began before it does
    /// not lift it, and a revocation refuses without a call for `denial_for` from then.
    #[serde(default)]
    pub marked_at: i64,
    /// Where, in `body`, the requesting client's key goes back (a byte offset): a grant
    /// stored without one (an older store's, holding the key) is never replayed.
    #[serde(default)]
    pub key_at: Option<usize>,
    /// The index tag of its key ([`key_tag`]: a digest of the organization and the key's
    /// SHA-256, never the key): what the relay's own deactivations and increments narrow, and
    /// what [`MAX_ENTRIES_PER_KEY`] counts (`None` in an older relay's entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_tag: Option<String>,
    /// With an activation: the digest of the `conditions` Polar's answer was given for
    /// (hex SHA-256, the members in key order), which Polar compares with the activation's; the answer is
    /// replayed only to a request sending the same conditions (a webhook's revocation refuses
    /// whatever they are). `None` without an activation (Polar ignores them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<String>,
    /// What the value is ([`EntryKind`]): `None` in an answer of Polar's (written so since
    /// the store began), `Some(SeatPool)` in a key's seat pool. Read with [`Entry::kind`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EntryKind>,
}

/// What a stored value is (issue #67): an answer of Polar's, or a key's seat pool
/// (`crate::seats`, written `"kind":"seat_pool"`). Other kinds may follow; an older relay
/// reading one ignores the member (and sees the status it is written with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An answer of Polar's, stored to be replayed (the default).
    Answer,
    /// A key's floating and CI seats (`crate::seats::pool`): never an answer, never evicted.
    SeatPool,
    /// A key's usage reports waiting to be ingested (`crate::usage`, issue #68 item 3,
    /// written `"kind":"usage_buffer"`): never an answer, never evicted.
    UsageBuffer,
    /// Why a key string stopped, as the webhooks told (`crate::lifecycle`, issue #68 item 4,
    /// written `"kind":"lifecycle"`): never an answer; evicted first, as a denial (lost, a
    /// denial comes without its detail).
    Lifecycle,
    /// When the relay last saw each of a key's activations (`crate::last_seen`, issue #80,
    /// written `"kind":"last_seen"`): never an answer; evicted first, as a denial (lost, a row
    /// shows no time until its activation is seen again, and nothing is retired for it).
    LastSeen,
    /// A key's seat pool that holds no seat and no counted activation, only the stamps of
    /// its churn (`crate::seats`: what an activation through the relay of a key that never
    /// asked for a seat leaves; written `"kind":"seat_churn"`, with a pool's status, and
    /// read as a pool): not held state, so keys activated once over the years never fill the
    /// seats' share; evicted first, as a denial (lost, the key's churn is counted afresh,
    /// the relay's memory still counting it while it runs).
    SeatChurn,
    /// Not a value: what a [`Backend::update`](super::Backend::update) step returns to delete
    /// the value it read ([`Entry::removal`]; issue #76, an empty seat pool). Every backend of
    /// this crate deletes the value and writes nothing; a backend of its own that writes it
    /// keeps a value no part of the relay reads as anything.
    Removed,
}

impl Entry {
    /// What an update step returns to delete the value it read ([`EntryKind::Removed`]).
    pub fn removal() -> Entry {
        Entry {
            kind: Some(EntryKind::Removed),
            ..Entry::default()
        }
    }

    /// Whether this is [`Entry::removal`]: the backend deletes instead of writing.
    pub fn removes(&self) -> bool {
        self.kind == Some(EntryKind::Removed)
    }

    /// What this value is: its `kind` as written, or, in a store written before kinds were
    /// (a pool then was told apart by its status, 0, which no answer of
    /// Polar's has), a pool by that status and an answer otherwise. Such a pool is written
    /// with its kind at its next step.
    pub fn kind(&self) -> EntryKind {
        match self.kind {
            Some(kind) => kind,
            None if self.status == SEAT_POOL_STATUS => EntryKind::SeatPool,
            None => EntryKind::Answer,
        }
    }
}

/// The digest (hex SHA-256) of the `conditions` of a validate with an activation, the
/// members in key order (Polar compares them as a dictionary: their order is not part of
/// it); `None` without an activation (Polar ignores them).
pub(crate) fn conditions_digest(
    activation_id: Option<&str>,
    conditions: &[(String, serde_json::Value)],
) -> Option<String> {
    activation_id?;
    let mut sorted: Vec<&(String, serde_json::Value)> = conditions.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    h.update(b"conditions\0");
    for (k, v) in sorted {
        h.update(k.as_bytes());
        h.update([0u8]);
        h.update(v.to_string().as_bytes());
        h.update([0u8]);
    }
    let digest: [u8; 32] = h.finalize().into();
    Some(hex_id(&digest))
}

/// What each entry is counted for beside its [`entry_size`] against the store's byte cap
/// ([`StoreOptions::max_bytes`](super::StoreOptions::max_bytes)): its id and its index links
/// (four of about 100 bytes in a Durable Object's storage) with the storage's own per-key
/// cost, counted high.
pub const ENTRY_OVERHEAD: usize = 512;

/// The bytes `entry` is counted for against the store's byte cap: [`entry_size`] and
/// [`ENTRY_OVERHEAD`].
pub fn stored_bytes(entry: &Entry) -> usize {
    entry_size(entry).saturating_add(ENTRY_OVERHEAD)
}

/// The status a key's seat pool is stored with (`crate::seats`): no answer of Polar's has it.
/// Its kind says what it is ([`EntryKind::SeatPool`]); the status stays, so that a relay older
/// than kinds reading a newer store still tells a pool apart (and a store written before kinds
/// reads its pools as pools, [`Entry::kind`]).
pub(crate) const SEAT_POOL_STATUS: u16 = 0;

/// Whether the byte cap may evict `entry`: every entry but a revocation a webhook (or Polar
/// read by id) marked, which only narrows (evicted, a revoked key would be asked of Polar
/// again, and while Polar cannot be asked, answered as if never revoked), and a key's seat
/// pool (evicted, its seats held now would be forgotten: a flood of other keys would take
/// every floating seat from its holder at the next heartbeat), nor a key's usage buffer. Those
/// stay bounded without it: one per key Polar granted and organization (its canonical id), at
/// most `seats::pool::MAX_SEATS` seats each, all together within [`held_share`].
pub(crate) fn evictable(entry: &Entry) -> bool {
    entry.mark != Mark::Revoked && !held(entry)
}

/// Whether `entry` is state the relay holds for a key (a seat pool, a usage buffer) rather
/// than an answer of Polar's: never evicted ([`evictable`]), and together held within their
/// share of the byte cap ([`held_share`]).
pub(crate) fn held(entry: &Entry) -> bool {
    matches!(entry.kind(), EntryKind::SeatPool | EntryKind::UsageBuffer)
}

/// The bytes of the store's byte cap `max_bytes` that seat pools and usage buffers may take
/// together (issue #76 finding 1): a quarter. Past it a new or grown one is not written (its
/// request is refused: a seat 503, a report 503), while those held shrink and go on working,
/// so that seat and usage state never evicts other customers' grants past three quarters of
/// the cap. At the 64 MiB default: 16 MiB, some 16,000 pools of a few seats.
pub(crate) fn held_share(max_bytes: usize) -> usize {
    max_bytes / 4
}

/// Whether writing `entry` over `old` (`old_size` bytes counted, `None`: absent) would pass
/// [`held_share`] with `held` bytes of held state stored now: only a held value that grows
/// can (one that shrinks or keeps its size always goes through).
pub(crate) fn passes_held_share(
    entry: &Entry,
    size: usize,
    old: Option<(&Entry, usize)>,
    held_now: usize,
    max_bytes: usize,
) -> bool {
    if !held(entry) {
        return false;
    }
    let before = old.filter(|(e, _)| held(e)).map_or(0, |(_, n)| n);
    size > before && held_now.saturating_sub(before).saturating_add(size) > held_share(max_bytes)
}

/// The order in which the byte cap evicts (smallest first): denials (what refused and unknown
/// keys left, answered only from the store) before grants, the oldest first in each.
pub(crate) fn eviction_rank(entry: &Entry) -> (bool, i64) {
    (entry.grant, entry.answered_at)
}

/// Entries kept per license key at most (64: every API version, activation, benefit and
/// customer a key is checked with, well past Polar's activation limits); past it the key's
/// oldest answer goes first. One key checked with endless activation ids (each a denial of
/// Polar's) cannot grow the store.
pub const MAX_ENTRIES_PER_KEY: usize = 64;

/// The default of [`StoreOptions::marked_stale_for`]: an entry marked stale (a webhook's
/// change, or a deactivation or increment through the relay) answers while Polar cannot be
/// asked for at most this long after its mark (one hour), instead of the whole `stale_for`.
///
/// [`StoreOptions::marked_stale_for`]: super::StoreOptions::marked_stale_for
pub const MARKED_STALE_SECONDS: u64 = 3_600;

/// The index tag of a key's entries: `k:` and the SHA-256 (hex) of the organization and the
/// key's SHA-256.
pub fn key_tag(organization_id: &str, key_sha256: &str) -> String {
    format!(
        "k:{}",
        hex_id(&key_digest("key", organization_id, key_sha256))
    )
}

/// The SHA-256 of a domain (`key`, `seats`, `usage`…), the organization and the key's
/// SHA-256: one key's id in that domain, no other domain's.
pub(crate) fn key_digest(domain: &str, organization_id: &str, key_sha256: &str) -> EntryId {
    let mut h = Sha256::new();
    for part in [domain, organization_id, key_sha256] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}
pub(super) fn tags(entry: &Entry) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = &entry.license_key_id {
        out.push(format!("l:{l}"));
    }
    if let Some(c) = &entry.customer_id {
        out.push(format!("c:{c}"));
    }
    if let Some(k) = &entry.key_tag {
        out.push(k.clone());
    }
    out
}

/// The id of an entry: the organization, the key's SHA-256 and the fields given (the API
/// version asked, `None` when the client sent none; activation, benefit, customer, and the
/// `conditions` given, in order). The relay gives no conditions (issue #62: a client varying
/// them would mint an entry per value): the conditions a stored answer was given for are its
/// [`Entry::conditions`], compared when it is replayed.
pub(crate) fn entry_id(
    organization_id: &str,
    key_sha256: &str,
    polar_version: Option<&str>,
    activation_id: Option<&str>,
    benefit_id: Option<&str>,
    customer_id: Option<&str>,
    conditions: &[(String, serde_json::Value)],
) -> EntryId {
    let mut h = Sha256::new();
    for part in [
        organization_id,
        key_sha256,
        polar_version.unwrap_or(""),
        activation_id.unwrap_or(""),
        benefit_id.unwrap_or(""),
        customer_id.unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    for (k, v) in conditions {
        h.update(k.as_bytes());
        h.update([0u8]);
        h.update(v.to_string().as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

#[cfg(test)]
impl Entry {
    /// Polar's grant of the license key `license_key_id`, answered at `answered_at`, marked
    /// `mark`, its key's tag `key_tag` (the tests' one grant).
    pub(crate) fn test_grant(
        license_key_id: String,
        answered_at: i64,
        mark: Mark,
        key_tag: Option<String>,
    ) -> Entry {
        Entry {
            license_key_id: Some(license_key_id),
            answered_at,
            status: 200,
            body: "{}".into(),
            grant: true,
            mark,
            key_at: Some(0),
            key_tag,
            ..Entry::default()
        }
    }
}

/// The id of a validate's entry: the organization, the key's SHA-256, the API version asked
/// and the activation, benefit and customer, which shape Polar's answer. The `conditions` are
/// no part of it (issue #62: a client varying them minted an entry per value, each up to
/// 120 KiB): with an activation, Polar compares them with the activation's, and the entry
/// holds the digest of those its answer was given for ([`checked_conditions`]), replayed only to
/// the same; without one Polar ignores them.
pub(crate) fn checked_entry_id(
    checked: &CheckedBody,
    key_sha256: &str,
    version: Option<&str>,
) -> EntryId {
    entry_id(
        &checked.organization_id,
        key_sha256,
        version,
        checked.activation_id.as_deref(),
        checked.benefit_id.as_deref(),
        checked.customer_id.as_deref(),
        &[],
    )
}

/// What a stored answer to `checked` keeps of its `conditions` ([`Entry::conditions`]).
pub(crate) fn checked_conditions(checked: &CheckedBody) -> Option<String> {
    conditions_digest(checked.activation_id.as_deref(), &checked.conditions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store's tests' grant at 0 with `body`, and neither a key id nor a customer id.
    fn with_body(body: &str) -> Entry {
        Entry {
            license_key_id: None,
            customer_id: None,
            body: body.into(),
            ..crate::store::tests::granted("", "", 0)
        }
    }

    /// Counted high: escapes as written, and two bytes a UTF-16 unit once a character is past
    /// Latin-1 (as V8 writes the string); the limit leaves 8 KiB of a 128 KiB value.
    #[test]
    fn an_entrys_size_is_counted_as_the_largest_host_stores_it() {
        let empty = entry_size(&with_body(""));
        assert!(empty < 300, "{empty}");
        assert_eq!(entry_size(&with_body(&"a".repeat(1000))), empty + 1000);
        // `"` and control characters are escaped in the stored JSON.
        assert_eq!(entry_size(&with_body(&"\"".repeat(1000))), empty + 2000);
        assert_eq!(entry_size(&with_body(&"\u{1}".repeat(1000))), empty + 6000);
        // One character past Latin-1: the whole text in UTF-16.
        let wide = format!("{}\u{20ac}", "a".repeat(1000));
        assert_eq!(entry_size(&with_body(&wide)), 2 * (empty + 1001));
        assert_eq!(MAX_ENTRY_BYTES + 8 * 1024, 128 * 1024);
    }
}
