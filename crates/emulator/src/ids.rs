//! Where the emulator's generated ids (keys, activations, customers, rotated key strings) come
//! from: the operating system's randomness natively, or a stream derived from 32 bytes given
//! once (for wasm32, where the host's `crypto.getRandomValues` supplies them; and for tests
//! that want the same ids on every run).

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A source of version 4 UUIDs.
pub(crate) enum Ids {
    /// `Uuid::new_v4()`: the OS's randomness (getrandom). Not on wasm32-unknown-unknown, where
    /// there is no OS to ask.
    #[cfg(not(target_arch = "wasm32"))]
    System,
    /// SHA-256 in counter mode over 32 bytes of entropy: id n is the first 16 bytes of
    /// `SHA-256(entropy || n as u64 little-endian)`, with the version and variant bits set.
    Seeded {
        /// The entropy the stream is derived from.
        key: [u8; 32],
        /// Ids given so far.
        counter: u64,
    },
}

impl std::fmt::Debug for Ids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Ids::System => f.write_str("Ids::System"),
            Ids::Seeded { counter, .. } => f
                .debug_struct("Ids::Seeded")
                .field("counter", counter)
                .finish_non_exhaustive(),
        }
    }
}

impl Ids {
    /// The next id.
    pub(crate) fn next_id(&mut self) -> Uuid {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Ids::System => Uuid::new_v4(),
            Ids::Seeded { key, counter } => {
                let digest = Sha256::new()
                    .chain_update(&key[..])
                    .chain_update(counter.to_le_bytes())
                    .finalize();
                *counter = counter.wrapping_add(1);
                let mut bytes = [0u8; 16];
                for (out, byte) in bytes.iter_mut().zip(digest.iter()) {
                    *out = *byte;
                }
                uuid::Builder::from_random_bytes(bytes).into_uuid()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_are_v4_distinct_and_repeatable() {
        let mut a = Ids::Seeded {
            key: [7; 32],
            counter: 0,
        };
        let mut b = Ids::Seeded {
            key: [7; 32],
            counter: 0,
        };
        let first: Vec<Uuid> = (0..100).map(|_| a.next_id()).collect();
        let again: Vec<Uuid> = (0..100).map(|_| b.next_id()).collect();
        assert_eq!(first, again);
        let mut sorted = first.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 100);
        for id in &first {
            assert_eq!(id.get_version_num(), 4);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
        let mut other = Ids::Seeded {
            key: [8; 32],
            counter: 0,
        };
        assert_ne!(other.next_id(), first[0]);
    }
}
