//! What a machine of the core and its shell say to each other: what the machine wants
//! ([`Want`]), what happened ([`Given`]), the slot's bytes ([`Stored`]), and the one trait
//! every machine has ([`Machine`]) so a shell has one drive loop for all of them.

use super::ctx::Ctx;
pub use super::memo::Stored;
use crate::error::{Denial, Error, Verdict};
use crate::grace::{LeaseWindow, Record};
use crate::model::ValidatedLicenseKey;
use crate::proto::{HttpRequest, HttpResponse};
use crate::slot::{Keep, Opened, Slot};

/// A machine a shell drives: it says what it wants, the shell does that IO and gives back what
/// happened, until it wants nothing more ([`Want::Done`]); then the shell takes its answer.
pub trait Machine<L = ValidatedLicenseKey> {
    /// What the machine wants next.
    fn want(&self) -> Want<'_>;
    /// What happened, in answer to the last [`Want`].
    fn give(&mut self, ctx: &Ctx<'_, L>, given: Given);
    /// The key it is about (for the shell's log lines: redacted there).
    fn key(&self) -> &crate::key::Key;
    /// What Polar answered the request just sent, as the machine read it (for the shell's log
    /// lines): the operation, and `None` accepted, else the denial; `None` before an answer.
    fn heard(&self) -> Option<Heard<'_>>;
}

/// What a machine heard from Polar ([`Machine::heard`]).
pub type Heard<'a> = (&'static str, Result<Option<&'a Denial>, &'a Error>);

/// How a verdict reads in a log line: `None` accepted, else its denial.
pub(crate) fn heard<'a, T>(
    operation: &'static str,
    answer: Result<&'a Verdict<T>, &'a Error>,
) -> Heard<'a> {
    let answer = answer.map(|verdict| match verdict {
        Verdict::Accepted(_) => None,
        Verdict::Denied(d) => Some(d),
    });
    (operation, answer)
}

/// What a machine wants next.
pub enum Want<'m> {
    /// Take the slot's lock (wait for it): [`Given::Locked`].
    Lock(&'m str),
    /// Release the slot's lock: [`Given::Unlocked`].
    Unlock,
    /// Try to take the mark that this check asks Polar, without waiting, and hold it until the
    /// check is done: [`Given::Marked`].
    Mark(&'m str),
    /// Read the slot's record, ledger and clock note: [`Given::Read`].
    Read(&'m Slot),
    /// Store one entry as `keep` says: [`Given::Written`].
    Write {
        /// The entry's name.
        name: &'m str,
        /// Its bytes.
        bytes: &'m [u8],
        /// How it must be kept.
        keep: Keep,
    },
    /// Remove an entry (a denial that could not be stored must not leave an old grant):
    /// [`Given::Removed`].
    Remove(&'m str),
    /// Send this validate request: [`Given::Response`].
    Send(&'m HttpRequest),
    /// The lease verifier asked its host to verify signatures ([`crate::lease::Ed25519::defers`],
    /// the npm engine's): have them verified, then [`Given::Verified`]. Never wanted with the
    /// core's own verifier, which answers at once.
    Verify,
    /// The machine is done: take its answer.
    Done,
}

/// What happened, in answer to a [`Want`].
#[derive(Debug, Clone)]
pub enum Given {
    /// The lock was taken, or could not be.
    Locked(Result<(), Error>),
    /// The lock was released.
    Unlocked,
    /// The mark was taken (or could not be for an error: the others then cannot see this check
    /// asking), or another check holds it (`false`).
    Marked(bool),
    /// The slot's bytes, or why they could not be read.
    Read(Result<Stored, Error>),
    /// The entry was stored, or why not.
    Written(Result<(), Error>),
    /// The entry was removed (or could not be: the next read then fails too).
    Removed,
    /// Polar's response (any status), or why there was none.
    Response(Result<HttpResponse, Error>),
    /// The verifier has the host's answers to what it asked.
    Verified,
}

impl Given {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Given::Locked(_) => "locked",
            Given::Unlocked => "unlocked",
            Given::Marked(_) => "marked",
            Given::Read(_) => "read",
            Given::Written(_) => "written",
            Given::Removed => "removed",
            Given::Response(_) => "response",
            Given::Verified => "verified",
        }
    }
}

/// The key's slot as a machine leaves it, for its report (so that no shell reads the cache
/// again after a call): the lease the record holds, when it verifies (signed mode), and the
/// activation it remembers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Left {
    pub(crate) lease: Option<LeaseWindow>,
    pub(crate) activation_id: Option<String>,
}

impl Left {
    /// The slot as opened (its gated record, the activation even an untrusted one names).
    pub(crate) fn of<L>(opened: &Opened<L>) -> Left {
        Left {
            lease: opened
                .record
                .as_ref()
                .and_then(|r| r.lease_gate.window().cloned()),
            activation_id: opened.remembered.as_ref().map(|a| a.id.clone()),
        }
    }

    /// The slot once `record` is stored (gated as it will be read: `held::with_lease`).
    pub(crate) fn written<L>(record: &Record<L>) -> Left {
        Left {
            lease: record.lease_gate.window().cloned(),
            activation_id: record.activation.as_ref().map(|a| a.id.clone()),
        }
    }
}
