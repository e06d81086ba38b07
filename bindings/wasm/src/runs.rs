//! The core's machines the npm engine drives ([`crate::machines`]: checks, validates,
//! activates, deactivates), kept by id: each one's machine and what the engine keeps beside
//! it. A table of its own, so the engine holds it without importing the functions that drive
//! it.

use polar_license::answers::SchemaLicense;
use polar_license::flow::check::Check;
use polar_license::flow::heal::Heal;
use polar_license::flow::update::Update;
use polar_license::flow::{Ctx, Given, Slot, Stored, Want};
use polar_license::key::Key;
use std::sync::Arc;

/// The most machines kept at once: one the JS gave up on (an exception) is dropped, the
/// oldest first.
const LIVE: usize = 64;

/// A machine of the core, over the schema's license.
pub(crate) enum Flow {
    Check(Check<SchemaLicense>),
    Validate(Update<SchemaLicense>),
    /// An activate, which heals at the limit (issue #80) when the client names a relay.
    Activate(Box<Heal<'static, SchemaLicense>>),
    Deactivate(Update<SchemaLicense>),
    /// Taken out of its run to answer (it is done).
    Taken,
}

impl Flow {
    /// What the machine wants next.
    pub(crate) fn want(&self) -> Want<'_> {
        match self {
            Flow::Check(check) => check.want(),
            Flow::Validate(u) | Flow::Deactivate(u) => u.want(),
            Flow::Activate(heal) => heal.want(),
            Flow::Taken => Want::Done,
        }
    }

    /// Gives the machine what happened.
    pub(crate) fn give(&mut self, ctx: &Ctx<'_, SchemaLicense>, given: Given) {
        match self {
            Flow::Check(check) => check.give(ctx, given),
            Flow::Validate(u) | Flow::Deactivate(u) => u.give(ctx, given),
            Flow::Activate(heal) => heal.give(ctx, given),
            Flow::Taken => {}
        }
    }
}

/// One machine being driven.
pub(crate) struct Run {
    /// The host's random bytes for this run's request nonce (signed mode), if it gave any.
    pub(crate) random: Option<[u8; 16]>,
    pub(crate) flow: Flow,
    pub(crate) feature: Option<String>,
    pub(crate) background: bool,
    /// The run's clock reading (unix seconds): a trial key's days left are counted from it.
    pub(crate) now: i64,
}

/// What the last [`Engine::check`](crate::engine::Engine::check) was handed: the slot of its key
/// and install secret (its seal derived once, not on every check) and the slot's bytes as the
/// host read them. The host says "the same bytes again" instead of handing them over when its
/// reads compare equal to what it handed last; any change is handed anew (and kept), so the
/// machine is always given exactly what the storage holds.
pub(crate) struct Kept {
    pub(crate) key: Key,
    pub(crate) secret: String,
    pub(crate) slot: Arc<Slot>,
    pub(crate) stored: Stored,
    /// The last check of these bytes that the machine answered at once, without any IO.
    pub(crate) again: Option<Again>,
}

/// A check the machine answered at once from the kept bytes (no write, no lock, no request):
/// the same check again (the same bytes, clock second and feature) is the same answer, as long
/// as the core's memo still calls it an answer given again (`recorded`: it was one; else the
/// machine answered without it, from the record and the clock second alone).
pub(crate) struct Again {
    pub(crate) now: i64,
    pub(crate) feature: Option<String>,
    pub(crate) recorded: bool,
    pub(crate) text: String,
}

impl Kept {
    /// Whether this is `key`'s slot under the install secret `secret`.
    pub(crate) fn is(&self, key: &Key, secret: &str) -> bool {
        self.key.expose() == key.expose() && self.secret == secret
    }
}

/// The machines being driven, by id.
#[derive(Default)]
pub(crate) struct Runs {
    next: u32,
    live: Vec<(u32, Run)>,
}

impl Runs {
    /// Keeps `run` under a new id (the oldest dropped past [`LIVE`]).
    pub(crate) fn start(&mut self, run: Run) -> u32 {
        self.next = self.next.wrapping_add(1);
        let id = self.next;
        if self.live.len() >= LIVE {
            self.live.remove(0);
        }
        self.live.push((id, run));
        id
    }

    fn position(&self, id: &str) -> Option<usize> {
        let id = u32::try_from(polar_license::decimal::parse_u64(id)?).ok()?;
        self.live.iter().position(|(n, _)| *n == id)
    }

    /// The machine `id`, if it is running.
    pub(crate) fn get(&self, id: &str) -> Option<&Run> {
        self.position(id).map(|at| &self.live[at].1)
    }

    /// The machine `id`, if it is running, to give it what happened.
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Run> {
        self.position(id).map(|at| &mut self.live[at].1)
    }

    /// The machine `id` out of the table (it is done).
    pub(crate) fn take(&mut self, id: &str) -> Option<Run> {
        self.position(id).map(|at| self.live.remove(at).1)
    }
}
