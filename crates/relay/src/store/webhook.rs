//! Webhooks: a delivery verified ([`verify_webhook`]) and what its event narrows
//! ([`narrowing`], [`narrowed`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Entry, Mark};

/// How far a webhook's timestamp may be from the relay's clock (Standard Webhooks: 300 s).
pub const WEBHOOK_TOLERANCE: i64 = 300;

/// Why a webhook was refused (a 4xx; nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookRefusal {
    /// A header is missing or malformed.
    Headers,
    /// The timestamp is more than 300 s from the relay's clock.
    Timestamp,
    /// No signature verifies with the secret.
    Signature,
}

/// Whether a webhook secret is one a signature can be checked with: an empty one, or `whsec_`
/// with nothing after it, is a key everyone knows (anyone could sign with it).
pub fn webhook_secret_usable(secret: &str) -> bool {
    let secret = secret.trim();
    !secret.is_empty() && !secret.strip_prefix("whsec_").is_some_and(str::is_empty)
}

/// The most entries `webhook-signature` may hold (space-separated, of any version). Standard
/// Webhooks sends one signature per secret the endpoint has: one, or two while a secret is
/// rotated (old and new); eight leaves room for that and for asymmetric `v1a,` entries beside
/// them. A header with more is refused before any HMAC is computed.
pub const WEBHOOK_MAX_SIGNATURES: usize = 8;

/// The longest `webhook-signature` read, in bytes: eight entries of the longest kind Standard
/// Webhooks defines (`v1a,` and 88 characters of an Ed25519 signature) fit in 760. A longer
/// header is refused before any HMAC is computed.
pub const WEBHOOK_MAX_SIGNATURE_HEADER: usize = 1024;

/// Whether `webhook-signature` is within [`WEBHOOK_MAX_SIGNATURES`] entries and
/// [`WEBHOOK_MAX_SIGNATURE_HEADER`] bytes (a header over either is refused as malformed).
pub fn webhook_signatures_within_limits(signatures: &str) -> bool {
    signatures.len() <= WEBHOOK_MAX_SIGNATURE_HEADER
        && signatures.split(' ').filter(|s| !s.is_empty()).count() <= WEBHOOK_MAX_SIGNATURES
}

/// Verifies a delivery per Standard Webhooks before anything reads its body: a `v1,` signature
/// of `{id}.{timestamp}.{body}` under the secret in either form Polar's SDK accepts (the base64
/// after `whsec_`, or the secret's UTF-8 bytes), and a timestamp within 300 s of `now`.
///
/// Its work is bounded whatever the headers hold: a `webhook-signature` over
/// [`WEBHOOK_MAX_SIGNATURES`] entries or [`WEBHOOK_MAX_SIGNATURE_HEADER`] bytes is refused
/// ([`WebhookRefusal::Headers`]) before any HMAC; otherwise the expected MAC is computed once
/// per form of the secret (at most two HMACs over the body) and every offered signature is
/// compared with both in constant time.
pub fn verify_webhook(
    secret: &str,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookRefusal> {
    let (id, timestamp, signatures) = webhook_headers(secret, id, timestamp, signatures, now)?;
    if webhook_signed(secret, id, timestamp, signatures, body) {
        Ok(())
    } else {
        Err(WebhookRefusal::Signature)
    }
}

/// The checks of [`verify_webhook`] that cost no HMAC (headers present and within limits, a
/// usable secret, the timestamp): the three headers on success.
pub(crate) fn webhook_headers<'a>(
    secret: &str,
    id: Option<&'a str>,
    timestamp: Option<&'a str>,
    signatures: Option<&'a str>,
    now: i64,
) -> Result<(&'a str, &'a str, &'a str), WebhookRefusal> {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Err(WebhookRefusal::Headers);
    };
    if !webhook_signatures_within_limits(signatures) {
        return Err(WebhookRefusal::Headers);
    }
    if !webhook_secret_usable(secret) {
        return Err(WebhookRefusal::Signature);
    }
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookRefusal::Headers)?;
    if now.abs_diff(ts) > WEBHOOK_TOLERANCE.unsigned_abs() {
        return Err(WebhookRefusal::Timestamp);
    }
    Ok((id, timestamp, signatures))
}

/// Whether one `v1,` entry of `signatures` is the HMAC of `{id}.{timestamp}.{body}` under
/// either form of `secret`: each expected MAC computed once, every entry compared with each in
/// constant time (no early end). A header without a readable `v1,` entry costs no HMAC.
fn webhook_signed(secret: &str, id: &str, timestamp: &str, signatures: &str, body: &[u8]) -> bool {
    use ct_codecs::Decoder;
    use hmac::digest::{generic_array::GenericArray, CtOutput};
    let offered: Vec<[u8; 32]> = signatures
        .split(' ')
        .take(WEBHOOK_MAX_SIGNATURES)
        .filter_map(|sig| sig.strip_prefix("v1,"))
        .filter_map(|b64| {
            let mut raw = [0u8; 64];
            let tag = ct_codecs::Base64::decode(&mut raw, b64, None).ok()?;
            <[u8; 32]>::try_from(tag).ok()
        })
        .collect();
    if offered.is_empty() {
        return false;
    }
    let mut keys: Vec<Vec<u8>> = vec![secret.as_bytes().to_vec()];
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let mut buf = vec![0u8; encoded.len()];
    if let Ok(decoded) = ct_codecs::Base64::decode(&mut buf, encoded, None) {
        if !decoded.is_empty() && decoded != secret.as_bytes() {
            keys.push(decoded.to_vec());
        }
    }
    let mut matched = false;
    for key in &keys {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            continue;
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.trim().as_bytes());
        mac.update(b".");
        mac.update(body);
        #[cfg(test)]
        HMACS.with(|n| n.set(n.get() + 1));
        let expected = mac.finalize();
        for tag in &offered {
            // CtOutput's equality is constant-time (subtle).
            let offered = CtOutput::<Hmac<Sha256>>::new(GenericArray::clone_from_slice(tag));
            matched |= expected == offered;
        }
    }
    matched
}

#[cfg(test)]
thread_local! {
    /// HMACs computed over a body on this thread (the tests count the work a header costs).
    pub(crate) static HMACS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What an event asks of the store: the entries it names, and how to narrow them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowing {
    /// `l:<license key id>` and `c:<customer id>` tags.
    pub tags: Vec<String>,
    /// [`Mark::Revoked`] or [`Mark::Stale`].
    pub mark: Mark,
    /// When the change happened (unix seconds).
    pub at: i64,
}

/// Reads an event (after its signature verified): `None` for a type that changes nothing a
/// check answers (answered 2xx, nothing done).
pub fn narrowing(event: &serde_json::Value) -> Option<Narrowing> {
    let kind = event.get("type")?.as_str()?;
    let data = event.get("data")?;
    let at = ["modified_at", "revoked_at", "created_at"]
        .iter()
        .find_map(|f| {
            data.get(*f)
                .and_then(|v| v.as_str())
                .and_then(crate::clock::unix_of)
        })
        .or_else(|| {
            event
                .get("timestamp")
                .and_then(|v| v.as_str())
                .and_then(crate::clock::unix_of)
        })
        .unwrap_or(0);
    let mut tags = Vec::new();
    let license = |v: Option<&serde_json::Value>| {
        v.and_then(|p| p.get("license_key_id"))
            .and_then(|l| l.as_str())
            .map(|l| format!("l:{l}"))
    };
    let mark = match kind {
        "benefit_grant.revoked" => Mark::Revoked,
        "benefit_grant.created" | "benefit_grant.updated" | "benefit_grant.cycled" => Mark::Stale,
        "subscription.canceled"
        | "subscription.revoked"
        | "subscription.active"
        | "subscription.past_due"
        | "subscription.updated"
        | "order.refunded"
        | "customer_seat.assigned"
        | "customer_seat.claimed"
        | "customer_seat.revoked" => Mark::Stale,
        _ => return None,
    };
    let customer = data
        .get("customer_id")
        .and_then(|c| c.as_str())
        .map(|c| format!("c:{c}"));
    if !kind.starts_with("benefit_grant.") {
        // A purchase event: every entry of the customer, asked again (never denied: what it
        // did to the customer's license keys is Polar's to say).
        return customer.map(|c| Narrowing {
            tags: vec![c],
            mark: Mark::Stale,
            at,
        });
    }
    // A grant of another benefit (Discord, a repository, downloads…) says nothing of keys.
    let benefit_type = data
        .get("benefit")
        .and_then(|b| b.get("type"))
        .and_then(|t| t.as_str());
    if benefit_type.is_some_and(|t| t != "license_keys") {
        return None;
    }
    // Only a license-key grant names a key, and only what it names is narrowed as it says.
    tags.extend(license(data.get("properties")));
    tags.extend(license(data.get("previous_properties")));
    if tags.is_empty() {
        // A license-key grant without its key's id (or of a benefit not named): the
        // customer's entries are asked again, never denied.
        return customer.map(|c| Narrowing {
            tags: vec![c],
            mark: Mark::Stale,
            at,
        });
    }
    Some(Narrowing { tags, mark, at })
}

/// Whether an event tells of a key's rotation (polar-license-api.md §15): a
/// `benefit_grant.updated` whose `previous_properties.display_key` is not its
/// `properties.display_key`. The string in use before it answers 404 "Not found" from then on:
/// its stored answers are retired (asked of Polar at the next check, never given in its
/// stead), not only marked stale.
pub fn rotation(event: &serde_json::Value) -> bool {
    let display = |p: &str| {
        event
            .pointer(&format!("/data/{p}/display_key"))
            .and_then(|d| d.as_str())
    };
    event.get("type").and_then(|t| t.as_str()) == Some("benefit_grant.updated")
        && display("previous_properties").is_some_and(|old| display("properties") != Some(old))
}

/// Applies a narrowing to an entry: `None` when it changes nothing. A webhook never clears a
/// mark and never makes a denial a grant.
///
/// Polar delivers at least once and in any order (all the more to a relay that was down), so
/// an event is read against the newest applied about the same thing: an event naming the
/// entry's key against [`Entry::key_event_at`], any other (the customer's) against
/// [`Entry::customer_event_at`]. An older one changes nothing, except a revocation: older than
/// a newer event about its own key (a re-grant, an update), it still makes the entry stale (the
/// next check asks Polar), and no newer event about anything else (another key, the customer's
/// purchase) keeps it from denying.
pub fn narrowed(entry: &Entry, n: &Narrowing) -> Option<Entry> {
    let mut e = entry.clone();
    let names_key = entry
        .license_key_id
        .as_deref()
        .is_some_and(|l| n.tags.iter().any(|t| t.strip_prefix("l:") == Some(l)));
    let newest = if names_key {
        &mut e.key_event_at
    } else {
        &mut e.customer_event_at
    };
    let mark = if n.at >= *newest {
        *newest = n.at;
        n.mark
    } else if n.mark == Mark::Revoked {
        Mark::Stale
    } else {
        return None;
    };
    e.mark = match (entry.mark, mark) {
        (Mark::Revoked, _) | (_, Mark::Revoked) => Mark::Revoked,
        _ => Mark::Stale,
    };
    if mark == Mark::Revoked {
        // A revocation (again): it refuses without a call from now (the caller stamps it).
        if e.marked_at == RECHECK_MARKED_AT {
            e.marked_at = 0;
        }
    } else if entry.mark == Mark::Revoked && n.at >= entry.key_event_at {
        // A change Polar told of since the key's revocation (a grant created again, a
        // subscription resumed, issue #68): the revocation becomes a re-check. It stays a
        // revocation (a webhook never grants: while Polar cannot be asked it refuses), but
        // no longer refuses without a call: the next check asks Polar, whose answer decides.
        e.marked_at = RECHECK_MARKED_AT;
    }
    (e != *entry).then_some(e)
}

/// [`Entry::marked_at`] of a revocation a newer event made a re-check ([`narrowed`]): its
/// time without a call is over (a second after the epoch, older than any `denial_for`), and
/// a read of Polar by id lifts it as it would any revocation.
pub const RECHECK_MARKED_AT: i64 = 1;

/// Whether a revoked `entry` still refuses without a call at `now` (`denial_for` seconds from
/// when it was marked, not once a newer event made it a re-check).
pub fn refuses_without_call(entry: &Entry, now: i64, denial_for: u64) -> bool {
    if entry.marked_at == RECHECK_MARKED_AT {
        return false;
    }
    let marked = if entry.marked_at > 0 {
        entry.marked_at
    } else {
        entry.key_event_at.max(entry.customer_event_at)
    };
    now.saturating_sub(marked.max(entry.answered_at))
        < i64::try_from(denial_for).unwrap_or(i64::MAX)
}
