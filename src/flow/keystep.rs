//! The remembered key's step, the last of an update ([`super::update`]): a good activation
//! writes its sealed key where the remembered key is kept; a good deactivation that ends the
//! remembered key's activation removes it, when, read under the entry's lock, it still holds
//! this key (another process may have remembered another key while Polar was asked).
//!
//! Its own small machine behind a trait object, set only by [`super::update::Update::remembering`]
//! and its siblings: a shell that never remembers a key (the npm engine, the Rust-on-wasm
//! client) never builds one, so none of it is linked into that shell (the npm default entry's
//! size budget).

use super::step::{Given, Stored, Want};
use crate::error::Error;
use crate::slot::{Keep, Slot};

/// The remembered key's step as an update drives it.
pub(super) trait KeyTail: Send + Sync {
    /// Whether it writes the key (an activation's), not removes it.
    fn remembers(&self) -> bool;
    /// Starts it, once the update's slot lock is released: `slot` is the update's slot (the
    /// entry is read as one whose record it is).
    fn begin(&mut self, slot: Option<&Slot>);
    /// What it wants next; [`Want::Done`] once done.
    fn want(&self) -> Want<'_>;
    /// Takes what the shell did: an error the update reports as its `cache_error`, if any.
    fn take(&mut self, given: Given) -> Option<Error>;
}

enum Phase {
    Lock,
    Write,
    Read,
    Remove,
    Unlock,
    Done,
}

/// The step: the entry's name, and the sealed key (written by a remember, compared by a
/// forget; a forget without it removes without comparing).
pub(super) struct KeyStep {
    entry: String,
    sealed: Option<Vec<u8>>,
    remember: bool,
    phase: Phase,
    /// The entry read as a slot's record (its other names the entry's too: the shells' one
    /// way of reading, so no shell learns another).
    read_as: Option<Slot>,
    misanswered: bool,
}

impl KeyStep {
    /// Writes `sealed` to `entry`.
    pub(super) fn remember(entry: String, sealed: Vec<u8>) -> KeyStep {
        KeyStep::new(entry, Some(sealed), true)
    }

    /// Removes `entry` when it holds `sealed` (`None`: whatever it holds).
    pub(super) fn forget(entry: String, sealed: Option<Vec<u8>>) -> KeyStep {
        KeyStep::new(entry, sealed, false)
    }

    fn new(entry: String, sealed: Option<Vec<u8>>, remember: bool) -> KeyStep {
        KeyStep {
            entry,
            sealed,
            remember,
            phase: Phase::Done,
            read_as: None,
            misanswered: false,
        }
    }
}

impl KeyTail for KeyStep {
    fn remembers(&self) -> bool {
        self.remember
    }

    fn begin(&mut self, slot: Option<&Slot>) {
        let name = &self.entry;
        self.read_as = slot.map(|slot| Slot {
            name: name.clone(),
            ledger: name.clone(),
            ask: name.clone(),
            clock: name.clone(),
            ..slot.clone()
        });
        self.phase = Phase::Lock;
    }

    fn want(&self) -> Want<'_> {
        match (&self.phase, &self.sealed, &self.read_as) {
            (Phase::Lock, ..) => Want::Lock(&self.entry),
            (Phase::Write, Some(bytes), _) => Want::Write {
                name: &self.entry,
                bytes,
                keep: Keep::Durable,
                compare: None,
            },
            (Phase::Read, _, Some(slot)) => Want::Read(slot),
            (Phase::Remove, ..) => Want::Remove(&self.entry),
            (Phase::Done, ..) => Want::Done,
            _ => Want::Unlock,
        }
    }

    fn take(&mut self, given: Given) -> Option<Error> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        let mut error = None;
        self.phase = match (phase, given) {
            (Phase::Lock, Given::Locked(Ok(()))) if self.remember => Phase::Write,
            (Phase::Lock, Given::Locked(Ok(()))) if self.sealed.is_some() => Phase::Read,
            (Phase::Lock, Given::Locked(Ok(()))) => Phase::Remove,
            (Phase::Lock, Given::Locked(Err(e))) => {
                // An activation whose key cannot be remembered says so; a deactivation frees
                // its slot whatever the remembered key does (a key left behind is only
                // remembered).
                error = self.remember.then_some(e);
                Phase::Done
            }
            (Phase::Write, Given::Written(written)) => {
                error = written.err();
                Phase::Unlock
            }
            // Read under the entry's lock: removed only while it still holds this key.
            (
                Phase::Read,
                Given::Read(Ok(Stored {
                    record: Some(stored),
                    ..
                })),
            ) if Some(&stored) == self.sealed.as_ref() => Phase::Remove,
            (Phase::Read, Given::Read(_)) => Phase::Unlock,
            (Phase::Remove, Given::Removed) => Phase::Unlock,
            (Phase::Unlock, Given::Unlocked) => Phase::Done,
            (phase, given) => {
                error = Some(Error::Cache {
                    detail: ["the update's shell answered ", given.name()].concat(),
                });
                // Under the entry's lock: its release asked for once more, never again.
                let again = !std::mem::replace(&mut self.misanswered, true);
                match phase {
                    Phase::Write | Phase::Read | Phase::Remove | Phase::Unlock if again => {
                        Phase::Unlock
                    }
                    _ => Phase::Done,
                }
            }
        };
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MacKey;
    use crate::flow::Stored;

    fn slot() -> Slot {
        Slot {
            name: "slot".into(),
            ledger: "slot.ledger".into(),
            ask: "slot.ask".into(),
            clock: "slot.clock".into(),
            mac: MacKey::derive("K", "org", b"install", None),
            origin: "http://127.0.0.1:1".into(),
        }
    }

    fn read(record: &[u8]) -> Given {
        Given::Read(Ok(Stored {
            record: Some(record.to_vec()),
            ledger: None,
            clock: None,
        }))
    }

    fn kind(want: &Want<'_>) -> &'static str {
        match want {
            Want::Lock(_) => "lock",
            Want::Unlock => "unlock",
            Want::Read(_) => "read",
            Want::Write { .. } => "write",
            Want::Remove(_) => "remove",
            Want::Done => "done",
            _ => "other",
        }
    }

    #[test]
    fn a_forget_removes_the_entry_only_while_it_holds_this_key() {
        for (held, removes) in [(&b"sealed-A"[..], true), (&b"sealed-B"[..], false)] {
            let mut step = KeyStep::forget("key-entry".into(), Some(b"sealed-A".to_vec()));
            step.begin(Some(&slot()));
            assert!(matches!(step.want(), Want::Lock("key-entry")));
            step.take(Given::Locked(Ok(())));
            assert!(matches!(step.want(), Want::Read(entry) if entry.name == "key-entry"));
            step.take(read(held));
            assert_eq!(
                matches!(step.want(), Want::Remove("key-entry")),
                removes,
                "{held:?}"
            );
            if removes {
                step.take(Given::Removed);
            }
            assert_eq!(kind(&step.want()), "unlock");
            step.take(Given::Unlocked);
            assert_eq!(kind(&step.want()), "done");
        }
    }

    #[test]
    fn a_wrong_answer_under_the_entrys_lock_asks_its_release_once_and_never_again() {
        let mut step = KeyStep::remember("key-entry".into(), b"sealed".to_vec());
        step.begin(None);
        let mut wants = vec![kind(&step.want())];
        let mut errors = 0;
        for given in [
            Given::Locked(Ok(())),
            Given::Removed,
            Given::Removed,
            Given::Removed,
        ] {
            errors += usize::from(step.take(given).is_some());
            wants.push(kind(&step.want()));
        }
        assert_eq!(wants, ["lock", "write", "unlock", "done", "done"]);
        assert_eq!(errors, 3, "each wrong answer reported");
    }
}
