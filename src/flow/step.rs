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

/// [`Machine`]'s `want`, `give` and `key` answered by the machine's own methods of the same
/// names (which its shells call without the trait in scope), for a machine that has all three.
macro_rules! by_own_methods {
    ($machine:ident) => {
        fn want(&self) -> Want<'_> {
            $machine::want(self)
        }
        fn give(&mut self, ctx: &Ctx<'_, L>, given: Given) {
            $machine::give(self, ctx, given);
        }
        fn key(&self) -> &Key {
            $machine::key(self)
        }
    };
}
pub(crate) use by_own_methods;

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
    /// Read one plain entry of the store, by its name (not a key's slot: a local trial's
    /// record, [`crate::trial::LocalTrial`]): [`Given::Loaded`]. Its write is [`Want::Write`].
    Load(&'m str),
    /// Store one entry as `keep` says: [`Given::Written`]; with `compare`, only while the
    /// entry it names still holds what it says, else store nothing: [`Given::Late`].
    Write {
        /// The entry's name.
        name: &'m str,
        /// Its bytes.
        bytes: &'m [u8],
        /// How it must be kept.
        keep: Keep,
        /// The compare before the write, when the write is the slot's record or ledger.
        compare: Option<Compare<'m>>,
    },
    /// Remove an entry (a denial that could not be stored must not leave an old grant):
    /// [`Given::Removed`].
    Remove(&'m str),
    /// Send this validate request: [`Given::Response`].
    Send(&'m HttpRequest),
    /// Send this customer-portal request (the follow of a rotated key, [`super::follow`]):
    /// [`Given::Response`].
    Portal(&'m crate::portal::PortalRequest),
    /// The lease verifier asked its host to verify signatures ([`crate::lease::Ed25519::defers`],
    /// the npm engine's): have them verified, then [`Given::Verified`]. Never wanted with the
    /// core's own verifier, which answers at once.
    Verify,
    /// Wait this long, then [`Given::Waited`]: the machine's schedule (a heartbeat's interval,
    /// a `429`'s `Retry-After`, a backoff) as a step, so that no shell keeps one. A shell that
    /// is stopped meanwhile (its app gave the seat back) stops driving instead.
    Wait(core::time::Duration),
    /// Read the shell's clock: [`Given::Clock`] (unix milliseconds). The core reads no clock
    /// itself; a machine whose rules are timed (a seat's lease) asks for it at each step.
    Clock,
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
    /// The entry's bytes (`None`: no entry), or why it could not be read ([`Want::Load`]).
    Loaded(Result<Option<Vec<u8>>, Error>),
    /// The entry was stored, or why not.
    Written(Result<(), Error>),
    /// The entry was not stored: the compare's entry held something else (another writer's
    /// ledger, where the lock is not shared by every writer).
    Late,
    /// The entry was removed (or could not be: the next read then fails too).
    Removed,
    /// Polar's response (any status), or why there was none.
    Response(Result<HttpResponse, Error>),
    /// The verifier has the host's answers to what it asked.
    Verified,
    /// The wait asked for ([`Want::Wait`]) is over.
    Waited,
    /// The shell's clock, unix milliseconds ([`Want::Clock`]).
    Clock(u64),
}

impl Given {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Given::Locked(_) => "locked",
            Given::Unlocked => "unlocked",
            Given::Marked(_) => "marked",
            Given::Read(_) => "read",
            Given::Loaded(_) => "loaded",
            Given::Written(_) => "written",
            Given::Late => "late",
            Given::Removed => "removed",
            Given::Response(_) => "response",
            Given::Verified => "verified",
            Given::Waited => "waited",
            Given::Clock(_) => "clock",
        }
    }
}

/// The compare of an ordered write ([`Want::Write`]): the slot's record or ledger is stored
/// only while the slot's ledger holds what the machine last read or wrote there, so that a
/// writer whose lock another writer does not share (another tab, window or process of a
/// browser's storage) loses rather than put an older answer over a newer one, a denial among
/// them. The shell reads the entry `ledger` names and compares its bytes; a shell whose lock
/// every writer shares finds it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compare<'m> {
    /// The slot's ledger entry.
    pub ledger: &'m str,
    /// What it held (`None`: no entry).
    pub holds: Option<&'m [u8]>,
}

impl Compare<'_> {
    /// Whether the ledger as read now (`now`) is still the one compared against.
    pub fn holds(&self, now: Option<&[u8]>) -> bool {
        self.holds == now
    }
}

/// The slot's ledger as a machine last read or wrote it: the compares of its ordered writes
/// ([`Compare`]), and whether its last write lost one (then a record it would remove after
/// a failed write is another writer's, newer: it stays).
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    /// `None` before the machine read the slot (no compare then).
    seen: Option<Option<Vec<u8>>>,
    late: bool,
}

impl Ledger {
    /// The compare of a write of `name` in `slot`, when it is the record or the ledger.
    pub(crate) fn compare<'a>(&'a self, slot: Option<&'a Slot>, name: &str) -> Option<Compare<'a>> {
        let slot = slot.filter(|s| name == s.name || name == s.ledger)?;
        let seen = self.seen.as_ref()?;
        Some(Compare {
            ledger: &slot.ledger,
            holds: seen.as_deref(),
        })
    }

    /// A write of `name` in `slot` stored `bytes`: the ledger written is the one compared next.
    pub(crate) fn wrote(&mut self, slot: Option<&Slot>, name: &str, bytes: &[u8]) {
        if slot.is_some_and(|s| name == s.ledger) {
            self.seen = Some(Some(bytes.to_vec()));
        }
    }

    /// What `given` says of the ledger: a read's ledger, or a write that lost its compare
    /// (given on as the write's error, nothing stored).
    pub(crate) fn take(&mut self, given: Given) -> Given {
        match given {
            Given::Read(Ok(stored)) => {
                self.seen = Some(stored.ledger.clone());
                self.late = false;
                Given::Read(Ok(stored))
            }
            Given::Late => {
                self.late = true;
                Given::Written(Err(Error::Cache {
                    detail: "a newer record of this key was stored meanwhile (by another tab or \
                             process)"
                        .to_string(),
                }))
            }
            given => given,
        }
    }

    /// The last write lost its compare: a record removed now would be the newer writer's.
    pub(crate) fn late(&self) -> bool {
        self.late
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
