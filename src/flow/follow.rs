//! The follow machine: following a rotated key (issue #64 item 4) as one order of steps every
//! shell drives. Rotation keeps a key's record id, its limits and its activations, and Polar
//! answers the old string `404` at once; the new string is found through a customer session:
//!
//! 1. read the old string's slot: the record id of its license and the activation it
//!    remembers (nothing cached of a license: [`PortalError::Invalid`], nothing sent);
//! 2. the signed-in customer's keys, a page at a time ([`Want::Portal`], at most
//!    [`MAX_PORTAL_PAGES`]) until the one with that record id is listed: when its string is
//!    no longer the old one ([`crate::portal::rotated_key`]), the new string (else
//!    [`PortalError::NotFound`]);
//! 3. validate the new string with that activation ([`crate::portal::follow_request`]), the
//!    update machine carrying it ([`Update::carrying`]), so the new string's record remembers
//!    it and no slot is taken;
//! 4. once Polar grants it, the old string's record forgotten (under its lock).
//!
//! A shell that remembers a key ([`crate::keyseal`]: the native one) puts the new string in
//! the old one's place after the machine ([`Follow::forgot`] says whether the old record was
//! forgotten): the remembered key is the shell's own entry, not the slot's.

use super::check::Validated;
use super::ctx::{status_of, Ctx};
use super::step::{Given, Heard, Machine, Want};
use super::update::Update;
use crate::error::{Error, Verdict};
use crate::flow::CacheState;
use crate::grace::StoredActivation;
use crate::key::Key;
use crate::model::ValidatedLicenseKey;
use crate::portal::{
    follow_request, parse_key_page, rotated_key, Portal, PortalError, PortalRequest, SessionToken,
    MAX_PORTAL_PAGES,
};
use crate::slot::Slot;
use std::sync::Arc;

/// How the machine has a slot for a key (the new string's, once it is known).
pub type Slots<'a> = Box<dyn Fn(&Key) -> Result<Arc<Slot>, Error> + 'a>;

/// Where the follow is.
enum Phase<L: Validated> {
    Read,
    /// Asking for this page of the customer's keys.
    Page(u32, PortalRequest),
    Validate(Box<Update<L>>),
    Lock,
    Remove,
    Unlock,
    Done,
}

/// One follow of a rotated key. `L` is how the slot's records hold a license (the Rust
/// clients' typed model; the npm devices module's schema reading, as the npm engine's).
pub struct Follow<'a, L: Validated = ValidatedLicenseKey> {
    old: Key,
    slot: Result<Arc<Slot>, Error>,
    session: SessionToken,
    portal: Portal,
    slots: Slots<'a>,
    now: i64,
    phase: Phase<L>,
    /// What the old string's record holds: its license's record id, its activation.
    key_id: String,
    activation: Option<StoredActivation>,
    answer: Option<Result<(Key, Verdict<L>), PortalError>>,
    forgot: bool,
}

impl<L: Validated> std::fmt::Debug for Follow<'_, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow")
            .field("old", &self.old)
            .finish_non_exhaustive()
    }
}

/// Nothing of the old string's license is cached here.
fn nothing_cached() -> PortalError {
    PortalError::Invalid(Error::invalid(
        "key",
        "no license of this key is cached here: nothing to follow",
    ))
}

impl<'a, L: Validated> Follow<'a, L> {
    /// A follow of `old` (its slot, or why it cannot be had) through the customer `session`,
    /// the new string's slot had by `slots`, at the clock reading `now` (unix seconds).
    pub fn new(
        ctx: &Ctx<'_, L>,
        old: Key,
        slot: Result<Arc<Slot>, Error>,
        session: SessionToken,
        slots: Slots<'a>,
        now: i64,
    ) -> Follow<'a, L> {
        let mut follow = Follow {
            old,
            slot,
            session,
            portal: Portal::for_api(ctx.api),
            slots,
            now,
            phase: Phase::Read,
            key_id: String::new(),
            activation: None,
            answer: None,
            forgot: false,
        };
        if let Err(e) = &follow.slot {
            follow.end(Err(PortalError::of_error(e.clone())));
        }
        follow
    }

    /// The answer: `Ok((new key, Polar's verdict))`, or why not (as the native
    /// `Licensing::follow_rotation` types it).
    pub fn answer(self) -> Result<(Key, Verdict<L>), PortalError> {
        self.answer.unwrap_or_else(|| {
            Err(PortalError::of_error(Error::Cache {
                detail: "the follow was not driven to its end".to_string(),
            }))
        })
    }

    /// The old string's record was forgotten (Polar granted the new one).
    pub fn forgot(&self) -> bool {
        self.forgot
    }

    fn end(&mut self, answer: Result<(Key, Verdict<L>), PortalError>) {
        self.answer = Some(answer);
        self.phase = Phase::Done;
    }

    /// What the follow wants next.
    pub fn want(&self) -> Want<'_> {
        let slot = self.slot.as_deref().ok();
        match (&self.phase, slot) {
            (Phase::Read, Some(slot)) => Want::Read(slot),
            (Phase::Page(_, request), _) => Want::Portal(request),
            (Phase::Validate(update), _) => update.want(),
            (Phase::Lock, Some(slot)) => Want::Lock(&slot.name),
            (Phase::Remove, Some(slot)) => Want::Remove(&slot.name),
            (Phase::Unlock, _) => Want::Unlock,
            _ => Want::Done,
        }
    }

    /// Gives the follow what happened in answer to its last [`Want`].
    pub fn give(&mut self, ctx: &Ctx<'_, L>, given: Given) {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.phase = match (phase, given) {
            (Phase::Read, Given::Read(Ok(stored))) => {
                let Ok(slot) = &self.slot else {
                    return self.end(Err(nothing_cached()));
                };
                let status = status_of(ctx, slot, &self.old, &stored, self.now);
                let CacheState::Present(record) = &status.state else {
                    return self.end(Err(nothing_cached()));
                };
                let Some(good) = &record.good else {
                    return self.end(Err(nothing_cached()));
                };
                self.key_id = good.license.key_id();
                self.activation = status.activation;
                return self.page(1);
            }
            (Phase::Read, Given::Read(Err(e))) => {
                return self.end(Err(PortalError::of_error(e)));
            }
            (Phase::Page(page, _), Given::Response(response)) => {
                let listed = response
                    .map_err(PortalError::Offline)
                    .and_then(|r| parse_key_page(&r));
                let listed = match listed {
                    Ok(listed) => listed,
                    Err(e) => return self.end(Err(e)),
                };
                let found = listed
                    .items
                    .iter()
                    .any(|k| k.id.eq_ignore_ascii_case(&self.key_id));
                if !found && u64::from(page) < listed.max_page && page < MAX_PORTAL_PAGES {
                    return self.page(page + 1);
                }
                let Some(new) = rotated_key(&listed.items, &self.key_id, &self.old) else {
                    return self.end(Err(PortalError::NotFound));
                };
                let req = follow_request(&new, self.activation.as_ref());
                let mut update = Update::validate(ctx, req, |key| (self.slots)(key), self.now);
                if let Some(activation) = self.activation.take() {
                    update = update.carrying(activation);
                }
                self.step(Box::new(update))
            }
            (Phase::Validate(mut update), given) => {
                update.give(ctx, given);
                self.step(update)
            }
            (Phase::Lock, Given::Locked(Ok(()))) => Phase::Remove,
            (Phase::Lock, Given::Locked(Err(e))) => {
                self.answer = Some(Err(PortalError::of_error(e)));
                Phase::Done
            }
            (Phase::Remove, Given::Removed) => {
                self.forgot = true;
                Phase::Unlock
            }
            (Phase::Unlock, Given::Unlocked) => Phase::Done,
            (phase, given) => {
                let locked = matches!(phase, Phase::Remove);
                self.answer = Some(Err(PortalError::of_error(Error::Cache {
                    detail: ["the follow's shell answered ", given.name()].concat(),
                })));
                // Under the lock: asked to release it, once.
                if locked {
                    Phase::Unlock
                } else {
                    Phase::Done
                }
            }
        };
    }

    /// Asks for `page` of the customer's keys (a request that cannot be made: refused unsent).
    fn page(&mut self, page: u32) {
        match self.portal.list_keys(&self.session, page) {
            Ok(request) => self.phase = Phase::Page(page, request),
            Err(e) => self.end(Err(PortalError::Invalid(e))),
        }
    }

    /// The validate driven on, or its answer taken once it is done.
    fn step(&mut self, update: Box<Update<L>>) -> Phase<L> {
        if !matches!(update.want(), Want::Done) {
            return Phase::Validate(update);
        }
        let new = update.key().clone();
        let validated = update.validated();
        let verdict = match (validated.online, validated.cache_error) {
            (Ok(Verdict::Accepted(_)), Some(e)) | (Err(e), _) => {
                self.answer = Some(Err(PortalError::of_error(e)));
                return Phase::Done;
            }
            (Ok(verdict), _) => verdict,
        };
        let accepted = verdict.is_accepted();
        self.answer = Some(Ok((new, verdict)));
        if accepted {
            Phase::Lock
        } else {
            Phase::Done
        }
    }
}

impl<L: Validated> Machine<L> for Follow<'_, L> {
    fn want(&self) -> Want<'_> {
        Follow::want(self)
    }
    fn give(&mut self, ctx: &Ctx<'_, L>, given: Given) {
        Follow::give(self, ctx, given);
    }
    fn key(&self) -> &Key {
        &self.old
    }
    fn heard(&self) -> Option<Heard<'_>> {
        match &self.phase {
            Phase::Validate(update) => update.heard(),
            _ => None,
        }
    }
}
