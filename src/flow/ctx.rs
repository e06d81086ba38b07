//! What every machine of one client is given besides its inputs, and how it opens a slot.

use super::memo::{Memo, Stored};
use super::standing::{status, CacheStatus};
use crate::grace::{GracePolicy, LicenseData};
use crate::held::{self, LeaseMemo};
use crate::key::Key;
use crate::lease::{self, RelayKeys};
use crate::model::ValidatedLicenseKey;
use crate::proto::Api;
use crate::slot::{open, Opened, Slot};
use std::sync::Arc;

/// What a machine is given besides its inputs: the client's options and memos, fixed when the
/// client was built. `L` is how its records hold a license (the Rust clients' typed model,
/// the npm engine's schema reading).
pub struct Ctx<'a, L = ValidatedLicenseKey> {
    /// Polar's routes for the organization.
    pub api: &'a Api,
    /// The grace policy.
    pub policy: &'a GracePolicy,
    /// Signed mode: the relay keys (empty: unsigned).
    pub relay_keys: &'a RelayKeys,
    /// The last lease verified.
    pub lease_memo: &'a LeaseMemo,
    /// The Ed25519 verification leases are checked with.
    pub ed25519: &'a dyn lease::Ed25519,
    /// The last slot opened and the last cached answer recorded.
    pub memo: &'a Memo<L>,
    /// This machine's fingerprint, when activations are machine-bound.
    pub machine: Option<&'a str>,
    /// This machine's identity could be read (else a check without its cache refuses: a
    /// bare-key check would skip the binding).
    pub bound: bool,
    /// A plain check needs a remembered activation.
    pub require_activation: bool,
    /// Signed mode's freshness (contract §5): 16 random bytes for each online request's
    /// nonce, from the host's randomness (`None` from it: none could be had). `None`: this
    /// face sends no nonce, and its grants are held to the stored lease and denial only.
    pub random: Option<fn() -> Option<[u8; 16]>>,
    /// The shell's clock (unix seconds), read again by a check once a slot's bytes are read:
    /// the check's `now` is then never older than what another writer (a tab, a process)
    /// stored before that read, so a record written meanwhile by a check that started later
    /// is no clock moved back. `None`: the clock reading the check was made with stands.
    pub clock: Option<&'a dyn Fn() -> i64>,
}

impl<'a, L> Ctx<'a, L> {
    /// What signed mode holds an online answer with: the relay keys, the policy (its clock
    /// tolerance) and the Ed25519 verification.
    pub(crate) fn signing(&self) -> held::Signing<'a> {
        held::Signing {
            keys: self.relay_keys,
            policy: self.policy,
            ed25519: self.ed25519,
        }
    }

    /// Signed mode: a fresh nonce for one online request ([`lease::NONCE_HEADER`]), when the
    /// face has randomness for one. Unsigned mode sends none.
    pub fn nonce(&self) -> Option<String> {
        if self.relay_keys.is_empty() {
            return None;
        }
        let bytes = (self.random?)()?;
        Some(lease::nonce_text(&bytes))
    }
}

/// `http` with the nonce `nonce` (when there is one) among its headers.
pub fn with_nonce(http: &mut crate::proto::HttpRequest, nonce: Option<&str>) {
    if let Some(nonce) = nonce {
        http.headers.push((lease::NONCE_HEADER, nonce.to_string()));
    }
}

impl<L> Clone for Ctx<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L> Copy for Ctx<'_, L> {}

/// A slot's bytes opened as every machine opens them: bound to the slot's origin, organization
/// and key, the clock note added, signed mode's gate on the record's lease (the memo's when the
/// bytes are the same: opening is a pure function of them and of the client).
///
/// An opening whose lease signature the verifier has yet to answer ([`lease::Ed25519::pending`])
/// is not remembered: it is made again once the answer is in.
pub fn open_slot<L: LicenseData>(
    ctx: &Ctx<'_, L>,
    slot: &Slot,
    key: &Key,
    stored: &Stored,
) -> Arc<Opened<L>> {
    if let Some(opened) = ctx.memo.opened(slot, stored) {
        return opened;
    }
    let org = ctx.api.organization_id();
    let mut opened = open(
        stored.record.as_deref(),
        stored.ledger.as_deref(),
        slot,
        org,
        key,
    )
    .with_clock(stored.clock.as_deref(), slot);
    held::gate_lease(
        &mut opened,
        ctx.relay_keys,
        org,
        key,
        ctx.lease_memo,
        ctx.ed25519,
    );
    let opened = Arc::new(opened);
    if ctx.ed25519.pending() {
        return opened;
    }
    ctx.memo.remember_opened(slot, stored.clone(), &opened);
    opened
}

/// What `status` says of a slot's bytes at the clock reading `now`, with no request: the slot
/// opened as every machine opens it ([`open_slot`]), and the bytes that opened to no record
/// told apart from none stored. One rule for every shell's `status`.
pub fn status_of<L: LicenseData>(
    ctx: &Ctx<'_, L>,
    slot: &Slot,
    key: &Key,
    stored: &Stored,
    now: i64,
) -> CacheStatus<L> {
    let opened = open_slot(ctx, slot, key, stored);
    status(
        Arc::unwrap_or_clone(opened),
        stored.record.is_some(),
        now,
        ctx.policy,
    )
}
