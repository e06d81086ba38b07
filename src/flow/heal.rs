//! The heal machine: an activation that reclaims its own seat (issue #80, self-healing
//! activations), as one order of steps every shell drives.
//!
//! Polar never merges a repeat activation from one machine: a reinstall, a wiped app-data
//! folder or a second install takes another activation, and at the limit Polar answers `403`
//! `activation_limit`. Every activation records this machine's per-organization fingerprint
//! in its `meta` ([`crate::fingerprint::MACHINE_META`]; the same hash the `conditions` carry,
//! which Polar compares but never lists), so at the limit:
//!
//! 1. the activation ([`Update::activation`]) is driven as ever; any answer but
//!    `activation_limit`, or no way to list the key's activations, is the answer;
//! 2. the key's activations are listed ([`ListDevices`]: through the seller's relay, or a
//!    customer session), this machine's rows marked by the fingerprint;
//! 3. when one row's `meta` records this machine's fingerprint, it is adopted: a validate of
//!    the key with that activation id and the activate's conditions (fingerprint included,
//!    so Polar itself holds the row to this machine), the update machine carrying it
//!    ([`Update::carrying`]) so the key's record remembers it as an activation's own, and no
//!    activation is taken. Polar's grant is the answer, as an activation
//!    ([`LicenseKeyActivationRead`]: the activation the validate names, the key as it reads);
//! 4. otherwise (no row of this machine, the listing failed, or Polar refused the adoption)
//!    the limit answer stands, and the listing (when there is one) is kept for the app's
//!    "which device to free" ([`Heal::devices`]), this machine's row and the others told
//!    apart.
//!
//! A forged `meta` can adopt only an activation of a key its holder already has (the validate
//! needs the whole key, and Polar compares the conditions): docs/threat-model.md.

use super::check::Validated as License;
use super::ctx::Ctx;
use super::step::{Given, Heard, Machine, Want};
use super::timed::Standalone;
use super::update::{Activated, Update};
use crate::answers::{SchemaActivation, SchemaLicense};
use crate::error::{Error, Verdict};
use crate::grace::StoredActivation;
use crate::key::Key;
use crate::model::{LicenseKeyActivation, LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::portal::{Device, KeyDevices, ListDevices};
use crate::proto::{ActivateRequest, ValidateRequest};
use crate::reason::Reason;
use crate::slot::Slot;
use std::sync::Arc;

/// How the machine has a slot for the key (the adoption's validate opens it anew).
pub type Slots<'a> = Box<dyn Fn(&Key) -> Result<Arc<Slot>, Error> + 'a>;

/// A license representation a heal adopts with: the activation answer it makes of the
/// adoption's validate (Polar's grant, with the activation it names) and the listed row.
pub trait Adopts: License {
    /// The activate's answer for `row`, adopted with a validate that granted `license`
    /// (`meta`: what the activate would have recorded, when the answer names no activation).
    fn adopted(license: Self, row: &Device, meta: &crate::metadata::Metadata) -> Self::Activation;
}

impl Adopts for ValidatedLicenseKey {
    fn adopted(
        v: ValidatedLicenseKey,
        row: &Device,
        meta: &crate::metadata::Metadata,
    ) -> LicenseKeyActivationRead {
        let activation = v.activation.unwrap_or_else(|| LicenseKeyActivation {
            id: row.id.clone(),
            license_key_id: v.license_key.id.clone(),
            label: row.label.clone(),
            meta: meta.clone(),
            created_at: row.activated_at,
            modified_at: None,
        });
        LicenseKeyActivationRead {
            activation,
            license_key: v.license_key,
        }
    }
}

impl Adopts for SchemaLicense {
    fn adopted(v: SchemaLicense, row: &Device, _: &crate::metadata::Metadata) -> SchemaActivation {
        // The license as the validate read it, with the activation it names (its own JSON).
        SchemaActivation::adopted(v, &row.id, &row.label)
    }
}

enum Phase<L: License> {
    /// The activation (no row), or the adoption's validate of the row: one phase, so that a
    /// shell's drive has one call of the update machine's steps (the npm engine's wasm would
    /// otherwise carry them twice).
    Update(Box<Update<L>>, Option<Box<Device>>),
    List(Box<ListDevices>),
    Done,
}

/// One activation that adopts this machine's own activation at the limit.
pub struct Heal<'a, L: Adopts = ValidatedLicenseKey> {
    key: Key,
    /// The activate request as bound to this machine (its conditions are the adoption's).
    req: ActivateRequest,
    /// The listing of the key's activations at the limit, as the shell made it: through the
    /// seller's relay ([`ListDevices::via_relay`]: every live activation, whatever the
    /// product's device management), or a customer session ([`ListDevices::new`]: Polar's
    /// portal, which lists them only with device management on). Made by the shell, so a
    /// shell that lists only through the relay (the npm engine) links no session reading.
    listing: Option<ListDevices>,
    slots: Slots<'a>,
    now: i64,
    phase: Phase<L>,
    /// The activation's own answer, kept while the heal tries: it stands when no row is
    /// adopted.
    limit: Option<Activated<L::Activation>>,
    answer: Option<Activated<L::Activation>>,
    devices: Option<KeyDevices>,
    adopted: Option<String>,
}

impl<L: Adopts> std::fmt::Debug for Heal<'_, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heal")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<'a, L: Adopts> Heal<'a, L> {
    /// A heal of `req`: `update` is its activation as the shell made it
    /// ([`Update::activation`] with its own remembering), `listing` how the key's activations
    /// are listed at the limit (`None`: nowhere, and the limit answer stands as before),
    /// `slots` how the key's slot is had, at `now` (unix seconds).
    pub fn new(
        ctx: &Ctx<'_, L>,
        req: &ActivateRequest,
        update: Update<L>,
        listing: Option<ListDevices>,
        slots: Slots<'a>,
        now: i64,
    ) -> Heal<'a, L> {
        // The request as the activation sent it (bound to this machine): a request the
        // activation refuses as input never gets to the limit, so the fallback is unused.
        let req = Update::<L>::activation_request(ctx, req)
            .map(|(req, _)| req)
            .unwrap_or_else(|_| req.clone());
        let mut heal = Heal {
            key: update.key().clone(),
            req,
            listing,
            slots,
            now,
            phase: Phase::Done,
            limit: None,
            answer: None,
            devices: None,
            adopted: None,
        };
        heal.phase = heal.activating(ctx, Box::new(update));
        heal
    }

    /// What the heal came to, as an activation: Polar's new activation, the adopted one (as
    /// Polar's validate granted it), or the limit.
    pub fn activated(&mut self) -> Activated<L::Activation> {
        self.answer
            .take()
            .or_else(|| self.limit.take())
            .unwrap_or_else(|| {
                Activated::failed(Error::Cache {
                    detail: "the activation was not driven to its end".to_string(),
                })
            })
    }

    /// The activation id adopted (this machine's own, found at the limit), when one was.
    pub fn adopted(&self) -> Option<&str> {
        self.adopted.as_deref()
    }

    /// The key's devices as the heal listed them at the limit (this machine's rows marked by
    /// the cached activation and the fingerprint), when it listed them.
    pub fn devices(&self) -> Option<&KeyDevices> {
        self.devices.as_ref()
    }

    /// What the heal wants next.
    pub fn want(&self) -> Want<'_> {
        match &self.phase {
            Phase::Update(update, _) => update.want(),
            Phase::List(list) => Standalone::want(list.as_ref()),
            Phase::Done => Want::Done,
        }
    }

    /// Gives the heal what happened in answer to its last [`Want`].
    pub fn give(&mut self, ctx: &Ctx<'_, L>, given: Given) {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.phase = match phase {
            Phase::Update(mut update, row) => {
                update.give(ctx, given);
                match row {
                    None => self.activating(ctx, update),
                    Some(row) => self.adopting(update, row),
                }
            }
            Phase::List(mut list) => {
                Standalone::give(list.as_mut(), given);
                self.listing(ctx, list)
            }
            Phase::Done => Phase::Done,
        };
    }

    /// The activation driven on; once done, its answer, or the listing at the limit.
    fn activating(&mut self, ctx: &Ctx<'_, L>, update: Box<Update<L>>) -> Phase<L> {
        if !matches!(update.want(), Want::Done) {
            return Phase::Update(update, None);
        }
        let activated = update.activated();
        let at_limit = matches!(
            &activated.online,
            Ok(Verdict::Denied(d)) if d.reason == Reason::ActivationLimit
        );
        let listing = self
            .listing
            .take()
            .filter(|_| at_limit && ctx.machine.is_some());
        let Some(list) = listing else {
            self.answer = Some(activated);
            return Phase::Done;
        };
        self.limit = Some(activated);
        self.listing(ctx, Box::new(list))
    }

    /// The listing driven on; once done, this machine's row adopted, or the limit.
    fn listing(&mut self, ctx: &Ctx<'_, L>, mut list: Box<ListDevices>) -> Phase<L> {
        if !matches!(Standalone::want(list.as_ref()), Want::Done) {
            return Phase::List(list);
        }
        // A listing that failed leaves the limit as it was.
        let Ok(mut devices) = list.outcome() else {
            return Phase::Done;
        };
        devices.mark_machine(ctx.machine);
        let row = ctx
            .machine
            .and_then(|here| devices.of_machine(here))
            .cloned();
        self.devices = Some(devices);
        let Some(row) = row else {
            return Phase::Done;
        };
        let mut req = ValidateRequest::new(self.key.clone());
        req.activation_id = Some(row.id.clone());
        req.conditions = self.req.conditions.clone();
        let carried = StoredActivation {
            id: row.id.clone(),
            label: row.label.clone(),
            conditions: self.req.conditions.clone(),
            created_at: row.activated_at.unix_timestamp(),
        };
        let update =
            Update::validate(ctx, req, |key| (self.slots)(key), self.now).carrying(carried);
        self.adopting(Box::new(update), Box::new(row))
    }

    /// The adoption's validate driven on; once done, its grant as the activation, or the
    /// limit (Polar refused it: another machine's conditions, a key gone meanwhile).
    fn adopting(&mut self, update: Box<Update<L>>, row: Box<Device>) -> Phase<L> {
        if !matches!(update.want(), Want::Done) {
            return Phase::Update(update, Some(row));
        }
        let validated = update.validated();
        let Ok(Verdict::Accepted(v)) = validated.online else {
            return Phase::Done;
        };
        let read = L::adopted(v, &row, &self.req.meta);
        self.adopted = Some(crate::grace::ActivationData::activation_id(&read).to_string());
        self.answer = Some(Activated {
            online: Ok(Verdict::Accepted(read)),
            cache_error: validated.cache_error,
            lease: validated.lease,
            replaced_activation_id: None,
        });
        Phase::Done
    }
}

impl<L: Adopts> Machine<L> for Heal<'_, L> {
    fn want(&self) -> Want<'_> {
        Heal::want(self)
    }
    fn give(&mut self, ctx: &Ctx<'_, L>, given: Given) {
        Heal::give(self, ctx, given);
    }
    fn key(&self) -> &Key {
        &self.key
    }
    fn heard(&self) -> Option<Heard<'_>> {
        match &self.phase {
            Phase::Update(update, _) => update.heard(),
            _ => None,
        }
    }
}
