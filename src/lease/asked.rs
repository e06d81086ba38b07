//! An Ed25519 verifier that asks its host (issue #38's protocol, as the npm engine's and
//! `polar-license/seat`'s): a signature it has no answer for is [`Checked::Pending`] and
//! remembered; the host takes the questions ([`AskedEd25519::take_asked`]), verifies each with
//! its own Ed25519 (WebCrypto, node:crypto, the package's add-on) and hands the answers back
//! ([`AskedEd25519::answer`]); the machine that asked then runs again with the same input and
//! meets the answers. A wasm module that checks signatures this way carries no Ed25519 code.
//! Used by `polar-license/usage`'s acknowledgements (issue #76).

use super::{Checked, Ed25519};
use crate::json::JsonOut;
use std::cell::{Cell, RefCell};

/// The most answers (and unanswered questions) kept: an answer holds one token at a time.
const KEEP: usize = 8;

/// One signature: the public key, the message, the signature.
#[derive(Clone, PartialEq, Eq)]
struct Signed {
    key: [u8; 32],
    message: Vec<u8>,
    signature: [u8; 64],
}

/// The host's Ed25519 as the core sees it: the answers the host gave, and the signatures asked
/// since the host last took them.
#[derive(Default)]
pub struct AskedEd25519 {
    /// Answers, the oldest first (at most [`KEEP`]).
    known: RefCell<Vec<(Signed, bool)>>,
    /// Asked and not answered yet, by id: only these take an answer.
    pending: RefCell<Vec<(u32, Signed)>>,
    /// Asked during the current step.
    asked: RefCell<Vec<Signed>>,
    /// The next question's id.
    next_id: Cell<u32>,
}

impl std::fmt::Debug for AskedEd25519 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AskedEd25519")
            .field("known", &self.known.borrow().len())
            .field("asked", &self.asked.borrow().len())
            .finish()
    }
}

impl Ed25519 for AskedEd25519 {
    fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Checked {
        let signed = Signed {
            key: *public_key,
            message: message.to_vec(),
            signature: *signature,
        };
        if let Some((_, valid)) = self.known.borrow().iter().find(|(k, _)| *k == signed) {
            return if *valid {
                Checked::Valid
            } else {
                Checked::Invalid
            };
        }
        let mut asked = self.asked.borrow_mut();
        if !asked.contains(&signed) {
            asked.push(signed);
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

impl AskedEd25519 {
    /// Forgets what the last step asked (a step whose result is used asked nothing).
    pub fn clear(&self) {
        self.asked.borrow_mut().clear();
    }

    /// `{"verify": [[id, key, message, signature]…]}` (hex) for what the step asked, each
    /// remembered as pending under its id.
    pub fn take_asked(&self) -> String {
        let asked = std::mem::take(&mut *self.asked.borrow_mut());
        let mut pending = self.pending.borrow_mut();
        let mut o = JsonOut::new();
        o.raw("{\"verify\":[");
        for (n, signed) in asked.into_iter().enumerate() {
            let id = self.next_id.get();
            self.next_id.set(id.wrapping_add(1));
            if n > 0 {
                o.raw(",");
            }
            o.raw("[")
                .uint(u64::from(id))
                .raw(",")
                .str(&crate::hex::hex(&signed.key))
                .raw(",")
                .str(&crate::hex::hex(&signed.message))
                .raw(",")
                .str(&crate::hex::hex(&signed.signature))
                .raw("]");
            pending.push((id, signed));
        }
        let over = pending.len().saturating_sub(KEEP);
        pending.drain(..over);
        o.raw("]}").done()
    }

    /// The host's answer to the question `id`: taken only for an id asked here.
    pub fn answer(&self, id: u32, valid: bool) {
        let mut pending = self.pending.borrow_mut();
        let Some(at) = pending.iter().position(|(p, _)| *p == id) else {
            return;
        };
        let (_, signed) = pending.remove(at);
        let mut known = self.known.borrow_mut();
        known.retain(|(k, _)| *k != signed);
        if known.len() >= KEEP {
            known.remove(0);
        }
        known.push((signed, valid));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A question is asked once, answered by its id only, and its answer is what the next
    /// verification meets; an id never asked changes nothing.
    #[test]
    fn a_signature_is_asked_then_answered_by_its_id() {
        let host = AskedEd25519::default();
        let (key, sig) = ([1u8; 32], [2u8; 64]);
        assert_eq!(host.verify(&key, b"m", &sig), Checked::Pending);
        assert_eq!(host.verify(&key, b"m", &sig), Checked::Pending);
        assert!(host.pending());
        let asked = host.take_asked();
        assert!(asked.starts_with("{\"verify\":[[0,\"0101"), "{asked}");
        assert_eq!(asked.matches("],[").count(), 0, "asked once: {asked}");
        assert!(!host.pending());
        host.answer(7, true);
        assert_eq!(host.verify(&key, b"m", &sig), Checked::Pending);
        host.clear();
        host.answer(0, false);
        assert_eq!(host.verify(&key, b"m", &sig), Checked::Invalid);
        assert_eq!(host.verify(&key, b"other", &sig), Checked::Pending);
    }
}
