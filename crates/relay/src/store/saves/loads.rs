//! A request's loads from a host-kept store (a Durable Object's storage read per key): what
//! the storage is asked to read for an exchange's [`crate::flow::Need::Load`], round by round
//! (a row names entries, which the next round reads), until nothing is missing or
//! [`MAX_LOAD_ROUNDS`] rounds were read; then the exchange goes on with what the cache holds
//! (the host gives [`crate::flow::Given::Loaded`]). The host only reads what it is handed.

use super::super::layout::{self, Reads};
use super::super::{PagedBackend, Wants};

/// Rounds of loads from a host's storage one job waits for before it goes on without them (a
/// row names entries, which a second round reads): a request's exchange on the npm relay and a
/// background read alike. A read whose entries were not all loaded narrows nothing: a
/// background one is asked again after a backoff, a request goes on with what the cache holds.
pub const MAX_LOAD_ROUNDS: u32 = 8;

/// One exchange's rounds of loads (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Loads {
    rounds: u32,
}

impl Loads {
    /// The reads for a load now: what `store` touches that `paged`'s cache lacks, and the
    /// roster's digest (`roster`: named until it is read, `Relay::roster_wants`); `None`
    /// when the exchange goes on without more (nothing missing, or the rounds spent).
    pub(crate) fn next(
        &mut self,
        paged: &PagedBackend,
        store: Option<&Wants>,
        roster: Option<String>,
    ) -> Option<Reads> {
        let missing = store.map(|w| paged.missing(w)).unwrap_or_default();
        let roster: Vec<String> = roster.into_iter().collect();
        let reads = layout::load_reads(&missing, &roster);
        if reads.is_empty() || self.rounds >= MAX_LOAD_ROUNDS {
            self.rounds = 0;
            return None;
        }
        self.rounds += 1;
        Some(reads)
    }

    /// Nothing could be read: the exchange goes on with what the cache holds, and its next
    /// load starts its rounds again.
    pub(crate) fn unread(&mut self) {
        self.rounds = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_roster_digest_never_read_is_asked_for_at_most_the_rounds_then_given_up() {
        let paged = PagedBackend::new(10, 10);
        let mut loads = Loads::default();
        for _ in 0..MAX_LOAD_ROUNDS {
            let reads = loads.next(&paged, None, Some("ab".into())).unwrap();
            assert!(!reads.is_empty());
        }
        assert_eq!(loads.next(&paged, None, Some("ab".into())), None);
        // The next load starts again.
        assert!(loads.next(&paged, None, Some("ab".into())).is_some());
        loads.unread();
        assert_eq!(loads.next(&paged, None, None), None, "nothing missing");
    }
}
