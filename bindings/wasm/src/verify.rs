//! Signed mode's signatures, verified by the host (issue #38).
//!
//! A lease's Ed25519 signature is the one part of its verification this engine does not do
//! itself: the package loads no signature verifier unless a relay key is configured. The
//! core still decides everything else ([`polar_license::lease::verify_signed_with`]: the
//! token's format, the key its `kid` names, the bytes that are signed, the claims and what
//! they must match, the times); it asks `HostEd25519` only whether a signature verifies.
//!
//! The host answers asynchronously (`crypto.subtle.verify`, or the separately loaded wasm
//! verifier), and every step is synchronous, so a step that meets a signature it has no
//! answer for treats that lease as no lease, and [`crate::engine::Engine::call`] answers
//! `{"verify": [[id, public key, message, signature]…]}` (hex) instead of the step's result.
//! `license.js` verifies each, hands the answers in (`call('verified', [id, 1 or 0, …])`) and
//! runs the very same step again, which now finds them. A step is a pure function of its
//! arguments and these answers, so running it again is safe.
//!
//! What a lying host can do: a host that answers "valid" for any signature makes a forged
//! lease verify when its claims match the check (organization, the key's SHA-256, activation,
//! benefit, status, times), as natively a patched binary could; it owns the process that runs
//! the check. The machine a lease is bound to is only in the signed bytes, so such a lease
//! may be another machine's. It cannot make a check license without a lease, nor with a lease
//! for another key, organization, activation or benefit, one that is not a grant, nor past a
//! lease's expiry: those the core checks itself (`tests/js/verifier.test.mjs` tries each).

use polar_license::lease::{Checked, Ed25519};
use sha2::{Digest, Sha256};
use std::cell::RefCell;

/// The most answers kept (a client checks a handful of keys; each has one lease at a time).
const KEEP: usize = 16;

/// One signature to verify, as asked of the host.
pub(crate) struct Ask {
    /// SHA-256 of what is verified: the id the answer comes back under.
    pub id: [u8; 32],
    pub public_key: [u8; 32],
    pub message: Vec<u8>,
    pub signature: [u8; 64],
}

/// The host's Ed25519 as the core sees it: the answers the host gave, and what this call asked.
#[derive(Default)]
pub(crate) struct HostEd25519 {
    /// Answers by id, the oldest first (at most [`KEEP`]).
    known: RefCell<Vec<([u8; 32], bool)>>,
    /// Asked and not answered yet: only these ids take an answer.
    pending: RefCell<Vec<[u8; 32]>>,
    /// Asked during the current call.
    asked: RefCell<Vec<Ask>>,
}

fn id_of(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(public_key);
    h.update(signature);
    h.update(message);
    h.finalize().into()
}

impl Ed25519 for HostEd25519 {
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Checked {
        let id = id_of(public_key, message, signature);
        if let Some((_, valid)) = self.known.borrow().iter().find(|(k, _)| *k == id) {
            return if *valid {
                Checked::Valid
            } else {
                Checked::Invalid
            };
        }
        let mut asked = self.asked.borrow_mut();
        if !asked.iter().any(|a| a.id == id) {
            asked.push(Ask {
                id,
                public_key: *public_key,
                message: message.to_vec(),
                signature: *signature,
            });
        }
        Checked::Pending
    }

    fn defers(&self) -> bool {
        true
    }

    fn pending(&self) -> bool {
        !self.asked.borrow().is_empty()
    }
}

impl HostEd25519 {
    /// What the call that just ran asked (and remembers their ids as pending).
    pub(crate) fn take_asked(&self) -> Vec<Ask> {
        let asked = std::mem::take(&mut *self.asked.borrow_mut());
        let mut pending = self.pending.borrow_mut();
        for a in &asked {
            if !pending.contains(&a.id) {
                pending.push(a.id);
            }
        }
        // Asks nobody answered (a host that gave up) are forgotten, the oldest first.
        let over = pending.len().saturating_sub(4 * KEEP);
        pending.drain(..over);
        asked
    }

    /// The host's answer for the ask `id` (hex): taken only for an id this engine asked.
    pub(crate) fn answer(&self, id: &str, valid: bool) {
        let Some(id) = unhex32(id) else {
            return;
        };
        let mut pending = self.pending.borrow_mut();
        let Some(at) = pending.iter().position(|p| *p == id) else {
            return;
        };
        pending.remove(at);
        let mut known = self.known.borrow_mut();
        known.retain(|(k, _)| *k != id);
        if known.len() >= KEEP {
            known.remove(0);
        }
        known.push((id, valid));
    }
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    let bytes = polar_license::cache::install_secret_from_hex(text)?;
    bytes.try_into().ok()
}
