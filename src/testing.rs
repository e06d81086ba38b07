//! For the repository's own tests and record forgers only: hidden, no part of the API, changed
//! at will. The flows of the core (`session`) are private to it; what the tests need of them
//! is here, and one forger serves every test that forges a record (`forge`: the attack tests
//! show a client refusing what someone without the seal's inputs cannot make).

use crate::cache::Untrusted;
use crate::grace::{LicenseData, Record};
use crate::key::Key;
use crate::shared as session;
pub use crate::shared::{activated, deactivated, seal, validated, Opened, Slot};

/// The trusted record the slot's stored bytes hold (`record`, `ledger`: the slot's entries, as
/// read), changed by `edit`, then sealed as the next write a client of this slot would make:
/// the writes, in order. Without a trusted record to start from, why the stored one is not
/// trusted (`None`: nothing stored).
#[allow(clippy::type_complexity)]
pub fn forge<L: LicenseData>(
    record: Option<&[u8]>,
    ledger: Option<&[u8]>,
    slot: &Slot,
    organization_id: &str,
    key: &Key,
    edit: impl FnOnce(&mut Record<L>),
) -> Result<Vec<(String, Vec<u8>)>, Option<Untrusted>> {
    let opened: Opened<L> = session::open(record, ledger, slot, organization_id, key);
    let Some(mut record) = opened.record.clone() else {
        return Err(opened.untrusted);
    };
    edit(&mut record);
    Ok(session::seal(&opened, record, slot))
}
