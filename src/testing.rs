//! For the repository's own tests and record forgers only: hidden, no part of the API, changed
//! at will. The flows of the core are private to it; what the tests need of them
//! is here, and one forger serves every test that forges a record (`forge`: the attack tests
//! show a client refusing what someone without the seal's inputs cannot make).

use crate::cache::Untrusted;
pub use crate::flow::answer::{activated, deactivated, validated};
use crate::flow::Stored;
use crate::grace::{LicenseData, Record};
use crate::key::Key;
use crate::slot::open;
pub use crate::slot::{seal, Opened, Slot};

/// The trusted record the slot's `stored` entries hold (as read: the record and its ledger),
/// changed by `edit`, then sealed as the next write a client of `slot` would make for `key` of
/// the organization: the writes, in order. Without a trusted record to start from, why the
/// stored one is not trusted (`None`: nothing stored).
#[allow(clippy::type_complexity)]
pub fn forge<L: LicenseData>(
    stored: &Stored,
    slot: &Slot,
    (organization_id, key): (&str, &Key),
    edit: impl FnOnce(&mut Record<L>),
) -> Result<Vec<(String, Vec<u8>)>, Option<Untrusted>> {
    let (record, ledger) = (stored.record.as_deref(), stored.ledger.as_deref());
    let opened: Opened<L> = open(record, ledger, slot, organization_id, key);
    let Some(mut record) = opened.record.clone() else {
        return Err(opened.untrusted);
    };
    edit(&mut record);
    Ok(seal(&opened, record, slot))
}

/// [`forge`] in a store: the slot's entries read from `store`, the writes stored there, in
/// order (the native forgers' store is the cache directory's `FileStore`). The error says
/// which step failed.
#[cfg(not(target_arch = "wasm32"))]
pub fn forge_in<L: LicenseData>(
    store: &dyn crate::store::Store,
    slot: &Slot,
    whose: (&str, &Key),
    edit: impl FnOnce(&mut Record<L>),
) -> Result<(), String> {
    let read = |name: &str| store.load(name).map_err(|e| format!("reading {name}: {e}"));
    let stored = Stored {
        record: read(&slot.name)?,
        ledger: read(&slot.ledger)?,
        clock: None,
    };
    let writes = forge(&stored, slot, whose, edit).map_err(|untrusted| {
        format!(
            "no trusted record to start from ({untrusted:?}: wrong secret, machine or base URL?)"
        )
    })?;
    for (name, bytes) in writes {
        store
            .save(&name, &bytes)
            .map_err(|e| format!("writing {name}: {e}"))?;
    }
    Ok(())
}
