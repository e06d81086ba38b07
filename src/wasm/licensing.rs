//! Grace-aware licensing in JS hosts: the async client, a storage, the grace policy and the
//! `Date.now()` clock, put together. A check is the core's machine ([`crate::flow::check`]),
//! the same the native `Licensing` drives, signed mode and clock notes included; this shell
//! only does the IO it asks for:
//! [`AsyncLicensing::activate`] remembers the activation (and the conditions it was made with)
//! with the verdict it is, [`AsyncLicensing::check`] validates it with those conditions,
//! answering from the cache as [`crate::grace`] says, [`AsyncLicensing::validate`] updates the
//! key's record with what Polar said, [`AsyncLicensing::deactivate`] forgets the activation,
//! [`AsyncLicensing::status`] reads the cache without any request, and
//! [`AsyncLicensing::has_feature`] answers "may this copy use feature X?" from a verdict.
//!
//! A key's cache is two entries in the storage, each sealed: its record
//! (`polar-license.v2-<32 hex>`) and its ledger (the same name and `-seq`), the highest
//! sequence number written, so that a saved copy of an older record put back is not trusted.

use super::client::{AsyncClient, AsyncClientBuilder};
use super::js::describe;
use super::store::{lock, try_lock, AsyncStore, MemoryStore, WebStorage};
use super::transport::AsyncTransport;
use crate::cache::{hex, install_secret_from_hex, INSTALL_SECRET_LEN};
use crate::error::{Error, Verdict};
use crate::features::{Entitlements, FeatureAccess};
use crate::fingerprint::fingerprint_from;
use crate::flow::CacheStatus;
use crate::flow::{
    self, check::Check, follow::Follow, update::Update, Compare, Given, Machine, Stored, Want,
};
use crate::flow::{LeaseMemo, Slot};
use crate::grace::{CheckOutcome, CheckReport, GracePolicy};
use crate::key::Key;
use crate::lease::RelayKeys;
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::options::{client_setters, licensing_setters, LicensingOptions};
use crate::proto::{ActivateRequest, ValidateRequest};
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::{JsCast, JsValue};

/// A clock: unix seconds. Tests pass a fake one.
pub type Clock = Rc<dyn Fn() -> i64>;

/// Names in the storage start with this (`polar-license.v2-<32 hex>` for a record, the same
/// and `-seq` for its ledger).
pub const STORAGE_PREFIX: &str = "polar-license.";

/// The storage name of the per-install secret (64 hex digits).
pub const SECRET_NAME: &str = "polar-license.install-secret";

/// Builds an [`AsyncLicensing`].
pub struct AsyncLicensingBuilder {
    client: AsyncClientBuilder,
    options: LicensingOptions,
    store: Option<Rc<dyn AsyncStore>>,
    machine_id: Option<String>,
    clock: Clock,
    crypto: Option<JsValue>,
}

impl std::fmt::Debug for AsyncLicensingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLicensingBuilder")
            .field("client", &self.client)
            .field("policy", &self.options.policy)
            .finish_non_exhaustive()
    }
}

impl AsyncLicensingBuilder {
    client_setters!(client.options);
    licensing_setters!(options);

    /// Keep the cache in this store (default: `localStorage` when the host has one, else
    /// memory).
    pub fn store(mut self, store: impl AsyncStore + 'static) -> Self {
        self.store = Some(Rc::new(store));
        self
    }

    /// Keeps the cache in memory (nothing survives the page or process).
    pub fn memory_store(self) -> Self {
        self.store(MemoryStore::new())
    }

    /// Binds activations to this machine id (hashed with the organization, as on native;
    /// sent as the `machine_fingerprint` condition). JS hosts have no OS machine id, so by
    /// default activations are not bound; an Electron app can pass one.
    pub fn machine_id(mut self, id: impl Into<String>) -> Self {
        self.machine_id = Some(id.into());
        self
    }

    /// The clock (default: `Date.now()`). For tests.
    pub fn clock(mut self, clock: impl Fn() -> i64 + 'static) -> Self {
        self.clock = Rc::new(clock);
        self
    }

    /// The object whose `getRandomValues` makes the install secret (default:
    /// `globalThis.crypto`; node 18 has it only as `require('node:crypto').webcrypto`).
    pub fn crypto(mut self, crypto: JsValue) -> Self {
        self.crypto = Some(crypto);
        self
    }

    fn finish(self, client: AsyncClient) -> Result<AsyncLicensing, Error> {
        self.options.policy.validate()?;
        let org = client.api().organization_id().to_string();
        let store: Rc<dyn AsyncStore> = match self.store {
            Some(store) => store,
            None => match WebStorage::local() {
                Some(web) => Rc::new(web),
                None => Rc::new(MemoryStore::new()),
            },
        };
        Ok(AsyncLicensing {
            client,
            store,
            policy: self.options.policy,
            app_secret: self.options.app_secret.map(Rc::from),
            machine: self.machine_id.map(|id| fingerprint_from(&id, &org)),
            clock: self.clock,
            crypto: self.crypto,
            require_activation: self.options.require_activation,
            released: self.options.released,
            trial: self.options.trial,
            trial_benefits: (self.options.trial.is_some()
                || !self.options.trial_benefits.is_empty())
            .then(|| Rc::from(self.options.trial_benefits)),
            entitlements: Rc::new(self.options.entitlements),
            memo: Rc::default(),
            relay_keys: Rc::new(self.options.relay_keys),
            lease_memo: Rc::default(),
            last_entitlements: Rc::default(),
        })
    }

    /// Checks everything and builds over `fetch`.
    pub fn build(self) -> Result<AsyncLicensing, Error> {
        let client = self.client.clone().build()?;
        self.finish(client)
    }

    /// Builds over another transport (tests, proxies).
    pub fn build_with_transport(
        self,
        transport: impl AsyncTransport + 'static,
    ) -> Result<AsyncLicensing, Error> {
        let client = self.client.clone().build_with_transport(transport)?;
        self.finish(client)
    }
}

/// Grace-aware licensing for one organization in a JS host. Cheap to clone; single-threaded.
#[derive(Clone)]
pub struct AsyncLicensing {
    client: AsyncClient,
    store: Rc<dyn AsyncStore>,
    policy: GracePolicy,
    app_secret: Option<Rc<[u8]>>,
    machine: Option<String>,
    clock: Clock,
    crypto: Option<JsValue>,
    require_activation: bool,
    released: Option<crate::perpetual::ReleaseDate>,
    /// The local trial's days, when the app stated one.
    trial: Option<crate::trial::TrialDays>,
    /// The trial benefit ids when the app stated a trial (local or by benefit); `None`: the
    /// check reports no trial.
    trial_benefits: Option<Rc<[String]>>,
    entitlements: Rc<Entitlements>,
    memo: Rc<flow::Memo>,
    /// Signed mode: the relay keys (empty: unsigned).
    relay_keys: Rc<RelayKeys>,
    lease_memo: Rc<LeaseMemo>,
    /// The entitlements of the last check's answer ([`AsyncLicensing::entitlement`]).
    last_entitlements: Rc<std::cell::RefCell<Option<crate::lease::EntitlementClaims>>>,
}

impl std::fmt::Debug for AsyncLicensing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLicensing")
            .field("client", &self.client)
            .field("policy", &self.policy)
            .field("machine_bound", &self.machine.is_some())
            .finish_non_exhaustive()
    }
}

/// Milliseconds by `Date.now()` (the core's memo of the last cached answer).
fn monotonic_ms() -> u64 {
    let ms = js_sys::Date::now();
    if ms.is_finite() && ms > 0.0 {
        // Truncation is the point: whole milliseconds since 1970 fit a u64 for ever.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = ms as u64;
        ms
    } else {
        0
    }
}

/// The storage name of a slot (a record's, or a ledger's).
fn storage_name(slot: &str) -> String {
    format!("{STORAGE_PREFIX}{slot}")
}

impl AsyncLicensing {
    /// Starts building for the seller organization `organization_id` (a UUID v4).
    pub fn builder(organization_id: impl Into<String>) -> AsyncLicensingBuilder {
        AsyncLicensingBuilder {
            client: AsyncClient::builder(organization_id),
            options: LicensingOptions::default(),
            store: None,
            machine_id: None,
            clock: Rc::new(super::js::date_now),
            crypto: None,
        }
    }

    /// The online client underneath (no cache).
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// The grace policy.
    pub fn policy(&self) -> &GracePolicy {
        &self.policy
    }

    /// The feature map.
    pub fn entitlements(&self) -> &Entitlements {
        &self.entitlements
    }

    /// May this copy use `feature`, given a verdict from [`AsyncLicensing::check`]? A cached
    /// verdict within the grace answers as an online one; a verdict that does not license
    /// grants nothing (as the native `Licensing::has_feature`).
    pub fn has_feature(&self, verdict: &CheckOutcome, feature: &str) -> FeatureAccess {
        self.entitlements.check(feature, verdict)
    }

    /// This machine's fingerprint for the organization, when activations are machine-bound.
    pub fn machine_fingerprint(&self) -> Option<&str> {
        self.machine.as_deref()
    }

    fn org(&self) -> &str {
        self.client.api().organization_id()
    }

    fn random_secret(&self) -> Result<Vec<u8>, Error> {
        let fail = |detail: String| Error::Cache { detail };
        let crypto = match &self.crypto {
            Some(c) => c.clone(),
            None => js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
                .map_err(|e| fail(format!("no crypto: {}", describe(&e))))?,
        };
        if !crypto.is_object() {
            return Err(fail("no crypto.getRandomValues in this host".to_string()));
        }
        // Duck-typed: node's webcrypto is not an instance of the browser's Crypto class.
        let crypto: web_sys::Crypto = crypto.unchecked_into();
        let bytes = js_sys::Uint8Array::new_with_length(INSTALL_SECRET_LEN as u32);
        crypto
            .get_random_values_with_js_u8_array(&bytes)
            .map_err(|e| fail(format!("crypto.getRandomValues failed: {}", describe(&e))))?;
        Ok(bytes.to_vec())
    }

    /// The per-install secret, created on first use. A malformed one is replaced, which only
    /// invalidates the cache (as on native).
    async fn install_secret(&self) -> Result<Vec<u8>, Error> {
        if let Some(secret) = self.stored_secret().await? {
            return Ok(secret);
        }
        let _lock = lock(SECRET_NAME).await?;
        // Another task may have created it while this one waited for the lock.
        if let Some(secret) = self.stored_secret().await? {
            return Ok(secret);
        }
        let secret = self.random_secret()?;
        self.store.set(SECRET_NAME, &hex(&secret)).await?;
        Ok(secret)
    }

    /// The stored per-install secret, when there is a well-formed one.
    async fn stored_secret(&self) -> Result<Option<Vec<u8>>, Error> {
        let stored = self.store.get(SECRET_NAME).await?;
        Ok(stored.and_then(|t| install_secret_from_hex(&t)))
    }

    /// The slot of `key`: bound to the server's origin, sealed with the install secret, this
    /// machine's fingerprint (when bound) and the app secret, as on native.
    async fn slot(&self, key: &Key) -> Result<Slot, Error> {
        let secret = self.install_secret().await?;
        Ok(self.slot_of(key, &secret))
    }

    /// `key`'s slot under the install secret `secret`.
    fn slot_of(&self, key: &Key, secret: &[u8]) -> Slot {
        Slot::new(
            self.client.api().base_url(),
            self.org(),
            key,
            secret,
            self.machine.as_deref(),
            self.app_secret.as_deref(),
        )
    }

    async fn read(&self, slot: &Slot) -> Result<Stored, Error> {
        let bytes = |text: Option<String>| text.map(String::into_bytes);
        // The ledger first: read while another tab writes a record and then its ledger, the
        // pair is never an older record behind a newer ledger (as license.js reads).
        let ledger = bytes(self.store.get(&storage_name(&slot.ledger)).await?);
        Ok(Stored {
            record: bytes(self.store.get(&storage_name(&slot.name)).await?),
            ledger,
            // A note that cannot be read is no note: the next cached answer is written durably.
            clock: bytes(
                self.store
                    .get(&storage_name(&slot.clock))
                    .await
                    .ok()
                    .flatten(),
            ),
        })
    }

    /// Activates `req.key` and remembers the activation, so later
    /// [`check`](AsyncLicensing::check)s validate it. With a machine id, its fingerprint is
    /// added to the conditions (as `machine_fingerprint`).
    ///
    /// A good activation is a verdict: it starts the grace period like a good validate, so a
    /// check right after it answers from the cache, online or not. A denial about the key
    /// (`not_found`, `inactive`, `expired`) removes the cache's power to grant.
    ///
    /// The storage is read first: when it cannot be, the error is `cache_error` and no slot is
    /// taken. If Polar activated but the storage cannot remember it, the error is
    /// `cache_error` and its detail names the new activation id, so nothing is lost.
    pub async fn activate(
        &self,
        req: &ActivateRequest,
    ) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
        let ctx = self.ctx();
        // The machine binds and checks the request, then wants the key's slot; the storage is
        // async here, so the slot is had first for the key the machine will want (none when
        // it refuses the input: no storage touched).
        let slot = match Update::activation_request(&ctx, req) {
            Ok((_, key)) => Some(self.slot(&key).await.map(Arc::new)),
            Err(_) => None,
        };
        let mut update = Update::activation(&ctx, req, |_| had(slot), (self.clock)());
        self.drive(&mut update).await;
        let activated = update.activated();
        match activated.unremembered() {
            Some(e) => Err(e),
            None => activated.online,
        }
    }

    /// Validates online once, with no cache answer (Polar's `validate`): the request as given,
    /// with this machine's fingerprint among the conditions when it names an activation and
    /// activations are machine-bound (the conditions `activate` stored). The answer updates
    /// the key's record (one truth per key): a denial about the key removes the cache's power
    /// to grant, and a good answer to the question `check` asks refreshes it.
    pub async fn validate(
        &self,
        req: &ValidateRequest,
    ) -> Result<Verdict<ValidatedLicenseKey>, Error> {
        let ctx = self.ctx();
        // The machine binds and checks the request, then wants the key's slot (had first
        // here, as for activate: none for input it refuses). The answer stands whatever the
        // storage does (a denial that cannot be written removes the record).
        let slot = match Update::validation_request(&ctx, req) {
            Ok((_, key)) => Some(self.slot(&key).await.map(Arc::new)),
            Err(_) => None,
        };
        let mut update = Update::validate(&ctx, req.clone(), |_| had(slot), (self.clock)());
        self.drive(&mut update).await;
        update.validated().online
    }

    /// The grace-aware verdict for `key`: validates the remembered activation (if any) with
    /// the conditions it was made with, answering from the cache as the policy allows.
    pub async fn check(&self, key: impl Into<Key>) -> CheckOutcome {
        self.check_report(key).await.outcome
    }

    /// [`AsyncLicensing::check`], with why a cached answer came from the cache although Polar
    /// was asked, and whether the cache could be updated ([`CheckReport`]).
    pub async fn check_report(&self, key: impl Into<Key>) -> CheckReport {
        self.run_check(&key.into(), None).await
    }

    /// The grace-aware verdict for an explicit validate request (the cache is used only for
    /// an identical request).
    pub async fn check_request(&self, req: &ValidateRequest) -> CheckOutcome {
        self.check_request_report(req).await.outcome
    }

    /// [`AsyncLicensing::check_request`] with its [`CheckReport`].
    pub async fn check_request_report(&self, req: &ValidateRequest) -> CheckReport {
        let Some(key) = req.key.clone() else {
            return CheckReport::of(CheckOutcome::Unverified(Error::invalid(
                "key",
                "is required",
            )));
        };
        self.run_check(&key, Some(req)).await
    }

    /// What every check of this client is given: its options and memos.
    fn ctx(&self) -> flow::Ctx<'_> {
        flow::Ctx {
            api: self.client.api(),
            policy: &self.policy,
            relay_keys: &self.relay_keys,
            lease_memo: &self.lease_memo,
            ed25519: &crate::lease::Builtin,
            memo: &self.memo,
            machine: self.machine.as_deref(),
            bound: true,
            require_activation: self.require_activation,
            random: Some(random_nonce),
            clock: Some(&*self.clock),
        }
    }

    async fn run_check(&self, key: &Key, explicit: Option<&ValidateRequest>) -> CheckReport {
        let ctx = self.ctx();
        // The machine checks the input before it wants the slot (had first here, for input
        // it accepts: refused input touches no storage).
        let slot = match Check::refused(&ctx, key, explicit) {
            None => Some(self.slot(key).await.map(Arc::new)),
            Some(_) => None,
        };
        let clock = ((self.clock)(), monotonic_ms());
        let mut check = Check::of_input(&ctx, key.clone(), explicit.cloned(), clock, |_| had(slot))
            .released(&ctx, self.released);
        self.drive(&mut check).await;
        let mut report = check.report();
        // The key side of the trial rule (pure, the core's: `crate::trial`), as the native
        // shell applies it.
        if let Some(benefits) = self.trial_benefits.as_deref() {
            crate::trial::apply(&mut report, benefits, (self.clock)());
        }
        *self.last_entitlements.borrow_mut() = report.entitlements().cloned();
        report
    }

    /// The value of the entitlement `name` as the last check's licensed answer read it from
    /// its verified lease, offline (issue #68, docs/entitlements.md; as the native
    /// `Licensing::entitlement`). `None` when the key is granted no such value, when the last
    /// check did not license, and whenever values are not known: in unsigned mode (values need
    /// the seller's relay), or with a relay that does not sign them or had not read them yet
    /// ([`CheckReport::entitlements`] tells "none granted" from "not known").
    pub fn entitlement(&self, name: &str) -> Option<crate::lease::EntitlementValue> {
        self.last_entitlements
            .borrow()
            .as_ref()?
            .value(name)
            .cloned()
    }

    /// The local trial's answer, for an app with no key ([`crate::trial`], as the native
    /// `Licensing::check_trial_report`): the first call starts the trial (sealed in the
    /// storage), later ones count it down. The outcome is the one of a check with no key
    /// (`invalid_input`, field `key`: ask for a key), or `clock_rollback` when the clock was set
    /// back past the tolerance during the trial; the report's [`CheckReport::trial`] says
    /// whether the trial runs, its end and the days left, or that it ended, or that its record
    /// was refused (edited or copied: never restarted). No trial stated: `invalid_input`, field
    /// `trial`. A storage that cannot be read or written is `cache_error` with no trial.
    pub async fn check_trial_report(&self) -> CheckReport {
        let Some(days) = self.trial else {
            return CheckReport::of(CheckOutcome::Unverified(Error::invalid(
                "trial",
                "no trial was stated (AsyncLicensingBuilder::trial)",
            )));
        };
        match self.run_trial(days).await {
            Ok(report) => report,
            Err(e) => CheckReport::of(CheckOutcome::Unverified(e)),
        }
    }

    /// A seal of this install (`secret`), machine and app for this organization and server,
    /// made by `make` ([`crate::keyseal::KeySeal::new`], [`crate::trial::TrialSeal::new`]).
    fn sealed<S>(&self, secret: &[u8], make: crate::keyseal::MakeSeal<S>) -> S {
        make(
            self.client.api().base_url(),
            self.org(),
            secret,
            self.machine.as_deref(),
            self.app_secret.as_deref(),
        )
    }

    /// The trial's machine ([`crate::trial::LocalTrial`]), driven by this shell's one loop.
    async fn run_trial(&self, days: crate::trial::TrialDays) -> Result<CheckReport, Error> {
        let secret = self.install_secret().await?;
        let seal = self.sealed(&secret, crate::trial::TrialSeal::new);
        let (app, now) = (self.app_secret.as_deref(), Some((self.clock)()));
        let mut trial = crate::trial::LocalTrial::new(seal, app, days, now, self.policy);
        self.drive(&mut trial).await;
        Ok(trial.report())
    }

    /// The one drive loop of this shell: does the IO a machine of the core asks for (the
    /// storage, the locks, `fetch`) until it is done. A write with a compare is made only
    /// while the slot's ledger still holds what the machine says (the machine's rule, as in
    /// license.js: a late writer loses, where the lock is not shared by every writer).
    async fn drive<M: Machine>(&self, machine: &mut M) {
        let ctx = self.ctx();
        // The locks the machine holds (released when it says, or when it ends).
        let mut held = None;
        let mut mark = None;
        loop {
            let given = match machine.want() {
                Want::Lock(name) => Given::Locked(lock(&storage_name(name)).await.map(|guard| {
                    held = Some(guard);
                })),
                Want::Unlock => {
                    held = None;
                    Given::Unlocked
                }
                Want::Mark(name) => {
                    mark = try_lock(&storage_name(name)).await;
                    Given::Marked(mark.is_some())
                }
                Want::Read(slot) => Given::Read(self.read(slot).await),
                Want::Load(name) => Given::Loaded(
                    (self.store.get(&storage_name(name)).await).map(|t| t.map(String::into_bytes)),
                ),
                // The storage keeps every write as it is given (no durability to choose).
                Want::Write {
                    name,
                    bytes,
                    compare,
                    ..
                } => self.write(name, bytes, compare).await,
                Want::Remove(name) => {
                    // If even this fails, the storage is broken and the next read fails too.
                    let _ = self.store.remove(&storage_name(name)).await;
                    Given::Removed
                }
                Want::Send(request) => Given::Response(self.client.send(request).await),
                Want::Portal(request) => {
                    Given::Response(self.client.portal_response(request).await)
                }
                // The core's verifier answers at once: never wanted here.
                Want::Verify => Given::Verified,
                Want::Wait(wait) => {
                    super::js::sleep(wait).await;
                    Given::Waited
                }
                Want::Clock => Given::Clock(super::js::now_ms()),
                Want::Done => break,
            };
            machine.give(&ctx, given);
        }
        drop((held, mark));
    }

    /// Stores `bytes` under `name`, after `compare` when the machine asks for one.
    async fn write(&self, name: &str, bytes: &[u8], compare: Option<Compare<'_>>) -> Given {
        if let Some(c) = compare {
            match self.store.get(&storage_name(c.ledger)).await {
                Ok(now) if c.holds(now.as_deref().map(str::as_bytes)) => {}
                Ok(_) => return Given::Late,
                Err(e) => return Given::Written(Err(e)),
            }
        }
        // The cache format is UTF-8 text (a header, compact JSON and hex): lossless.
        let text = String::from_utf8_lossy(bytes);
        Given::Written(self.store.set(&storage_name(name), &text).await)
    }

    /// Deactivates `activation_id`, or the remembered activation when `None`, and forgets it.
    /// With neither, `invalid_input` (field `activation_id`).
    pub async fn deactivate(
        &self,
        key: impl Into<Key>,
        activation_id: Option<&str>,
    ) -> Result<Verdict<()>, Error> {
        let key = key.into();
        let slot = self.slot(&key).await.map(Arc::new);
        let id = activation_id.map(str::to_string);
        let mut update = Update::deactivate(key, id, slot, (self.clock)());
        self.drive(&mut update).await;
        update.deactivated().answer
    }

    /// What the cache holds for `key`, with no request.
    pub async fn status(&self, key: impl Into<Key>) -> Result<CacheStatus, Error> {
        let key = key.into();
        let slot = self.slot(&key).await?;
        let stored = self.read(&slot).await?;
        Ok(flow::status_of(
            &self.ctx(),
            &slot,
            &key,
            &stored,
            (self.clock)(),
        ))
    }

    /// The activation this machine's cache remembers for `key` (none when the cache cannot
    /// be read): what a device listing marks as this machine.
    async fn this_activation(&self, key: &Key) -> Option<String> {
        self.status(key.clone())
            .await
            .ok()
            .and_then(|s| s.activation.map(|a| a.id))
    }

    /// The devices of `key` through a customer session (issue #64), this machine's marked by
    /// the activation its cache remembers for the key (none when the cache cannot be read): the
    /// core's [`crate::portal::ListDevices`] over this licensing's client, as the native
    /// `Licensing::list_devices`. Free one with [`AsyncLicensing::deactivate`] and its id (the
    /// public deactivate needs no session), then [`AsyncLicensing::activate`] here.
    pub async fn list_devices(
        &self,
        session: &crate::portal::SessionToken,
        key: impl Into<Key>,
    ) -> Result<crate::portal::KeyDevices, crate::portal::PortalError> {
        let key = key.into();
        let here = self.this_activation(&key).await;
        self.client
            .list_devices(session, &key, here.as_deref())
            .await
    }

    /// The devices of `key` through the seller's relay at `relay_url` (issue #64: no session;
    /// the key proves it is the caller's), this machine's marked, as the native
    /// `Licensing::list_devices_via_relay`.
    pub async fn list_devices_via_relay(
        &self,
        relay_url: &str,
        key: impl Into<Key>,
    ) -> Result<crate::portal::KeyDevices, crate::portal::PortalError> {
        let key = key.into();
        let here = self.this_activation(&key).await;
        self.client
            .list_devices_via_relay(relay_url, &key, here.as_deref())
            .await
    }

    /// Key recovery ("I lost my key", issue #64 item 3): the signed-in customer's keys this
    /// machine can activate, granted and unexpired by this licensing's clock, newest first
    /// ([`crate::portal::recoverable_keys`]), as the native `Licensing::recoverable_keys`. Show
    /// them by `display_key`; the whole key goes only into [`AsyncLicensing::activate`].
    pub async fn recoverable_keys(
        &self,
        session: &crate::portal::SessionToken,
    ) -> Result<Vec<crate::model::LicenseKeyRead>, crate::portal::PortalError> {
        let keys = self.client.customer_keys(session).await?;
        Ok(crate::portal::recoverable_keys(keys, (self.clock)()))
    }

    /// Follows a rotated key (issue #64 item 4), as the native `Licensing::follow_rotation`
    /// does: the same record id's new string from the customer's keys
    /// ([`crate::portal::rotated_key`]), validated with the activation `old`'s cache remembers
    /// ([`crate::portal::follow_request`]), which the new string's record then remembers (the
    /// update machine carrying it); once Polar grants it, `old`'s record is forgotten.
    /// `Ok((new key, Polar's verdict))`; [`crate::portal::PortalError::Invalid`] when nothing
    /// of `old`'s license is cached here, [`crate::portal::PortalError::NotFound`] when the
    /// customer has no key of that id or it was not rotated.
    pub async fn follow_rotation(
        &self,
        session: &crate::portal::SessionToken,
        old: impl Into<Key>,
    ) -> Result<(Key, Verdict<ValidatedLicenseKey>), crate::portal::PortalError> {
        let old = old.into();
        let secret = self.install_secret().await;
        let slot = |key: &Key| {
            let secret = secret.as_ref().map_err(Clone::clone)?;
            Ok(Arc::new(self.slot_of(key, secret)))
        };
        let old_slot = slot(&old);
        let ctx = self.ctx();
        let mut follow = Follow::new(
            &ctx,
            old,
            old_slot,
            session.clone(),
            Box::new(slot),
            (self.clock)(),
        );
        self.drive(&mut follow).await;
        follow.answer()
    }

    /// The store entry of this organization's usage backlog ([`crate::usage::UsageBacklog`]),
    /// as a machine names it ([`storage_name`] makes it the storage's).
    fn usage_backlog_entry(&self) -> String {
        format!("usage-backlog-{}", self.org())
    }

    /// Reports `units` of `meter` used with `key` to the seller's relay at `relay_url`
    /// (`None`: this licensing's base URL) (issue #68 item 3), as the native
    /// `Licensing::record_usage` does, through the core's [`crate::usage::BufferedUsage`]: the
    /// reports waiting in this licensing's backlog go first, then this one (its id: `id`, the
    /// app's own, or a new UUID v4), each sent again with its id while the relay cannot be
    /// reached, answers 5xx or asks to wait. A report the relay cannot take now waits in the
    /// backlog, kept in this licensing's storage (its key sealed), and is answered
    /// [`crate::usage::UsageAnswer::Backlog`] (code [`crate::usage::BACKLOG_CODE`]); the next
    /// report or [`AsyncLicensing::flush_usage`] sends it, no sooner than the relay's
    /// `Retry-After`. With relay keys (signed mode) every answer is believed only from the
    /// relay's signed acknowledgement (issue #76: a missing or forged one is `protocol_error`).
    /// The report's id and the answer; the id is empty only when none could be made.
    pub async fn record_usage(
        &self,
        relay_url: Option<&str>,
        key: impl Into<Key>,
        meter: &str,
        units: f64,
        id: Option<&str>,
    ) -> (String, Result<crate::usage::UsageAnswer, Error>) {
        let entropy = match id {
            Some(_) => Some([0u8; 16]),
            None => random_nonce(),
        };
        let Some(entropy) = entropy else {
            return (
                String::new(),
                Err(Error::invalid(
                    "usage",
                    "no random id: this host has no crypto",
                )),
            );
        };
        let mut report = crate::usage::UsageReport::new(key.into(), meter, units, entropy);
        if let Some(id) = id {
            report.id = id.to_string();
        }
        let id = report.id.clone();
        (id, self.run_usage(relay_url, Some(report)).await.0)
    }

    /// Sends the reports waiting in this licensing's usage backlog to the seller's relay at
    /// `relay_url` (`None`: the base URL), oldest first, as [`AsyncLicensing::record_usage`]
    /// does before its own: the reports still waiting (`0`: none), or the storage's error.
    pub async fn flush_usage(&self, relay_url: Option<&str>) -> Result<usize, Error> {
        let (answer, waiting) = self.run_usage(relay_url, None).await;
        match answer {
            Err(e @ Error::Cache { .. }) => Err(e),
            _ => Ok(waiting),
        }
    }

    /// The reports waiting in this licensing's usage backlog (their ids, oldest first).
    pub async fn usage_backlog(&self) -> Result<Vec<String>, Error> {
        let stored = self
            .store
            .get(&storage_name(&self.usage_backlog_entry()))
            .await?;
        let backlog = crate::usage::UsageBacklog::read(stored.as_deref());
        Ok(backlog.ids().into_iter().map(str::to_string).collect())
    }

    /// Drives the core's [`crate::usage::BufferedUsage`] with this shell's one loop: the
    /// storage's read under the backlog's lock, then its waits, sends and writes as it asks
    /// ([`crate::usage::BufferedRun`]). Its answer and the reports left waiting.
    async fn run_usage(
        &self,
        relay_url: Option<&str>,
        report: Option<crate::usage::UsageReport>,
    ) -> (Result<crate::usage::UsageAnswer, Error>, usize) {
        use crate::usage::BufferedUsage;
        let secret = match self.install_secret().await {
            Ok(secret) => secret,
            Err(e) => return (Err(e), 0),
        };
        let seal = self.sealed(&secret, crate::keyseal::KeySeal::new);
        let entry = self.usage_backlog_entry();
        let name = storage_name(&entry);
        let _lock = match lock(&name).await {
            Ok(lock) => lock,
            Err(e) => return (Err(e), 0),
        };
        let stored = match self.store.get(&name).await {
            Ok(stored) => stored,
            Err(e) => return (Err(e), 0),
        };
        let base = relay_url.unwrap_or(self.client.api().base_url());
        let machine = BufferedUsage::new(
            base,
            self.org(),
            seal,
            stored.as_deref(),
            report,
            (self.clock)(),
        );
        let mut machine = match machine {
            Ok(m) => m,
            Err(e) => return (Err(e), 0),
        };
        // Signed mode (relay keys set): every answer believed only from the relay's signed
        // acknowledgement (issue #76), as the native `Licensing::record_usage`'s.
        if !self.relay_keys.is_empty() {
            let Some(nonce) = random_nonce() else {
                return (
                    Err(Error::invalid(
                        "usage",
                        "no random nonce: this host has no crypto",
                    )),
                    0,
                );
            };
            machine = machine.with_relay_keys((*self.relay_keys).clone(), nonce);
        }
        let mut run = machine.run(&entry);
        self.drive(&mut run).await;
        (run.outcome(), run.backlog().len())
    }

    /// Forgets everything cached for `key` (the server is not told).
    pub async fn forget(&self, key: impl Into<Key>) -> Result<(), Error> {
        let key = key.into();
        let slot = self.slot(&key).await?;
        let _lock = lock(&storage_name(&slot.name)).await?;
        self.store.remove(&storage_name(&slot.name)).await
    }
}

/// The slot had for a machine before it was started ([`AsyncLicensing::activate`],
/// `validate`, `check`): the machine wants a slot only for input it accepts, which is when one
/// was had.
fn had(slot: Option<Result<Arc<Slot>, Error>>) -> Result<Arc<Slot>, Error> {
    slot.unwrap_or_else(|| {
        Err(Error::Cache {
            detail: "no slot was had for this request".to_string(),
        })
    })
}

/// 16 bytes of the host's `crypto.getRandomValues`, for signed mode's request nonces
/// ([`flow::Ctx::random`]); `None` when the host has none (no nonce is sent then).
fn random_nonce() -> Option<[u8; 16]> {
    let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    if !crypto.is_object() {
        return None;
    }
    let crypto: web_sys::Crypto = crypto.unchecked_into();
    let bytes = js_sys::Uint8Array::new_with_length(16);
    crypto.get_random_values_with_js_u8_array(&bytes).ok()?;
    let mut out = [0u8; 16];
    bytes.copy_to(&mut out);
    Some(out)
}
