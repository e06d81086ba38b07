//! What a request touches in the verdict store, computed before it is answered: a host whose
//! store is read per key ([`store::PagedBackend`], the npm package's relay over a Durable
//! Object's storage) loads that much, then the core answers.

use polar_license::lease::key_hash;
use polar_license_emulator::{check_body, CheckedBody};

use crate::store::{self, EntryId, Wants};
use crate::{Relay, RelayRequest, ROUTE_PREFIX, WEBHOOK_ROUTE};

/// The id of a validate's entry: the organization, the key's SHA-256, the API version asked
/// and every field that shapes Polar's answer. Polar ignores conditions sent without an
/// activation (they are compared with an activation's only): they are no part of the id, so
/// random ones make no new entries.
pub(crate) fn entry_of(checked: &CheckedBody, key_sha256: &str, version: Option<&str>) -> EntryId {
    let conditions: &[(String, serde_json::Value)] = if checked.activation_id.is_some() {
        &checked.conditions
    } else {
        &[]
    };
    store::entry_id(
        &checked.organization_id,
        key_sha256,
        version,
        checked.activation_id.as_deref(),
        checked.benefit_id.as_deref(),
        checked.customer_id.as_deref(),
        conditions,
    )
}

impl Relay {
    /// What `req` reads or narrows in the store: a validate its entry and its key's index row
    /// (with every entry of it after an increment, which narrows them); a deactivation its
    /// key's row and entries; a webhook the rows of the key id or customer it names, and their
    /// entries. `None` without a store, or for a request that touches nothing stored (an
    /// activation, a request refused before the store, a webhook whose signature does not
    /// verify at `now_unix` seconds: it reads nothing). Nothing is spent here: the request is
    /// answered by [`Relay::begin_after`] as before.
    pub fn store_wants(&self, req: &RelayRequest, now_unix: i64) -> Option<Wants> {
        let s = self.store.as_ref()?;
        let path = req.path.split('?').next().unwrap_or_default();
        if path == WEBHOOK_ROUTE {
            store::verify_webhook(
                s.webhook_secret.as_deref()?,
                req.header("webhook-id"),
                req.header("webhook-timestamp"),
                req.header("webhook-signature"),
                &req.body,
                now_unix,
            )
            .ok()?;
            let event = serde_json::from_slice::<serde_json::Value>(&req.body).ok()?;
            let tags = store::narrowing(&event)?.tags;
            return Some(Wants {
                entries: Vec::new(),
                tags,
                all: true,
            });
        }
        let op = path.strip_prefix(ROUTE_PREFIX)?;
        if op != "validate" && op != "deactivate" {
            return None;
        }
        let checked = check_body(op, req.header("content-type"), &req.body)?.ok()?;
        let key = key_hash(&polar_license::Key::new(checked.key.clone()));
        let tags = vec![store::key_tag(&checked.organization_id, &key)];
        if op == "deactivate" {
            return Some(Wants {
                entries: Vec::new(),
                tags,
                all: true,
            });
        }
        let id = entry_of(
            &checked,
            &key,
            crate::passed_version(req.header("polar-version")),
        );
        Some(Wants {
            entries: vec![id],
            tags,
            all: checked.increment_usage.unwrap_or(0) > 0,
        })
    }
}
