//! The order of a check's steps, owned by the core (issue #44): one sans-IO machine per
//! operation that every shell drives with one loop, as `ureq-proto` drives an HTTP call and
//! the relay drives its answers (`begin` → `Step` → `finish`).
//!
//! A machine is given the options and the inputs, and says what it wants next
//! ([`check::Want`]): take or release the slot's lock, mark that it asks Polar, read the slot,
//! write one entry, remove one, send a request, or done. The shell does that IO and gives back
//! what happened ([`check::Given`]). Every rule (signed mode, the clock note, the recorded
//! answer, the fallback to the grace cache) is a step of the machine, so a shell that skips one
//! cannot finish: the native blocking `Licensing` and the Rust-on-wasm `AsyncLicensing` are the
//! same loop over different IO.

pub mod check;
mod memo;

pub use memo::Memo;

/// The stored bytes of one key: its record, its ledger and its clock note.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    /// The sealed record.
    pub record: Option<Vec<u8>>,
    /// The ledger: the highest sequence number written.
    pub ledger: Option<Vec<u8>>,
    /// The clock note (a note that cannot be read is given as none: the next cached answer is
    /// then written durably).
    pub clock: Option<Vec<u8>>,
}
