//! The order of a check's steps, owned by the core (issue #44): one sans-IO machine per
//! operation that every shell drives with one loop, as `ureq-proto` drives an HTTP call and as
//! the relay's hosts drive its machines (`polar_license_relay::flow::Exchange`: `want` a need,
//! `give` what came of it).
//!
//! A machine is given the options and the inputs, and says what it wants next
//! ([`Want`]): take or release the slot's lock, mark that it asks Polar, read the slot,
//! write one entry, remove one, send a request, or done. The shell does that IO and gives back
//! what happened ([`Given`]). Every rule (signed mode, the clock note, the recorded
//! answer, the fallback to the grace cache) is a step of the machine, so a shell that skips one
//! cannot finish: the native blocking `Licensing` and the Rust-on-wasm `AsyncLicensing` are the
//! same loop over different IO, and the npm package's license.js drives the same machines
//! through its engine. (The steps the machines fold with are private: a check's phases
//! (`phases.rs`), what an update's answer makes of the record (`answer.rs`), what `status`
//! reports (`standing.rs`), and the core's slot (`src/slot.rs`: open, seal) and signed mode's
//! hold (`src/held.rs`); docs/architecture.md in the repository maps the machines, their
//! shells and where the code still differs from the design.)

pub(crate) mod answer;
pub mod check;
mod ctx;
pub mod follow;
pub mod heal;
mod keystep;
mod memo;
mod phases;
pub(crate) mod standing;
mod step;
pub mod timed;
pub mod update;

/// What a shell names around its machines: a key's entries in a store ([`Slot`]) and how a
/// write must be kept ([`Keep`]), the slot as opened ([`Opened`]), the lease memo its context
/// holds ([`LeaseMemo`]), and what `status` reports of an opened slot ([`status`],
/// [`CacheStatus`], [`CacheState`]).
pub use crate::held::LeaseMemo;
pub use crate::slot::{Keep, Opened, Slot};
pub use ctx::Ctx;
pub use ctx::{open_slot, status_of};
pub use memo::Memo;
pub use standing::{status, CacheState, CacheStatus};
pub use step::{Compare, Given, Heard, Machine, Stored, Want};
pub use timed::{portal_want, Patience, Standalone};
