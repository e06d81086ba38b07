//! Grace-aware licensing in JS hosts: the async client, a storage, the grace policy and the
//! `Date.now()` clock, put together. The behaviour is the native `Licensing`'s, step for step:
//! [`AsyncLicensing::activate`] remembers the activation (and the conditions it was made with),
//! [`AsyncLicensing::check`] validates it with those conditions, answering from the cache as
//! [`crate::grace`] says, [`AsyncLicensing::deactivate`] forgets it,
//! [`AsyncLicensing::status`] reads the cache without any request, and
//! [`AsyncLicensing::has_feature`] answers "may this copy use feature X?" from a verdict.

use crate::cache::{self, MacKey};
use crate::error::{Error, Verdict};
use crate::features::{Entitlements, FeatureAccess};
use crate::fingerprint::fingerprint_from;
use crate::grace::{CheckOutcome, GracePolicy, Record, StoredActivation};
use crate::key::Key;
use crate::model::LicenseKeyActivationRead;
use crate::proto::{ActivateRequest, DeactivateRequest, Server, ValidateRequest};
use crate::session::{self, CacheStatus, Prepared, Write};
use crate::wasm::client::{AsyncClient, AsyncClientBuilder};
use crate::wasm::store::{lock, AsyncStore, MemoryStore, WebStorage};
use crate::wasm::transport::{describe, AsyncTransport};
use crate::wasm::{unhex, INSTALL_SECRET_LEN};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};

/// A clock: unix seconds. Tests pass a fake one.
pub type Clock = Rc<dyn Fn() -> i64>;

/// Names in the storage start with this (`polar-license.v1-<32 hex>` for a record).
pub const STORAGE_PREFIX: &str = "polar-license.";

/// The storage name of the per-install secret (64 hex digits).
pub const SECRET_NAME: &str = "polar-license.install-secret";

/// Builds an [`AsyncLicensing`].
pub struct AsyncLicensingBuilder {
    client: AsyncClientBuilder,
    store: Option<Rc<dyn AsyncStore>>,
    policy: GracePolicy,
    app_secret: Option<Vec<u8>>,
    machine_id: Option<String>,
    require_activation: bool,
    entitlements: Entitlements,
    clock: Clock,
    crypto: Option<JsValue>,
}

impl std::fmt::Debug for AsyncLicensingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLicensingBuilder")
            .field("client", &self.client)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl AsyncLicensingBuilder {
    /// Talk to `server` (default: production).
    pub fn server(mut self, server: Server) -> Self {
        self.client = self.client.server(server);
        self
    }

    /// Talk to this base URL (`https://`, or `http://` on loopback only).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.client = self.client.base_url(url);
        self
    }

    /// Whole-request timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.timeout(timeout);
        self
    }

    /// The grace policy (default: contract §4).
    pub fn policy(mut self, policy: GracePolicy) -> Self {
        self.policy = policy;
        self
    }

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

    /// A secret of the app's, mixed into the cache MAC key (as on native).
    pub fn app_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.app_secret = Some(secret.into());
        self
    }

    /// Binds activations to this machine id (hashed with the organization, as on native;
    /// sent as the `machine_fingerprint` condition). JS hosts have no OS machine id, so by
    /// default activations are not bound; an Electron app can pass one.
    pub fn machine_id(mut self, id: impl Into<String>) -> Self {
        self.machine_id = Some(id.into());
        self
    }

    /// Makes [`AsyncLicensing::check`] refuse, with `invalid_input` (field `activation_id`)
    /// and no request, when no activation is remembered for the key (as the native
    /// `LicensingBuilder::require_activation`).
    pub fn require_activation(mut self, required: bool) -> Self {
        self.require_activation = required;
        self
    }

    /// The feature map [`AsyncLicensing::has_feature`] answers from (checked when it is made:
    /// see [`Entitlements::grant`] and [`Entitlements::from_json`]), as the native
    /// `LicensingBuilder::entitlements`.
    pub fn entitlements(mut self, entitlements: Entitlements) -> Self {
        self.entitlements = entitlements;
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
        self.policy.validate()?;
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
            policy: self.policy,
            app_secret: self.app_secret.map(Rc::from),
            machine: self.machine_id.map(|id| fingerprint_from(&id, &org)),
            clock: self.clock,
            crypto: self.crypto,
            require_activation: self.require_activation,
            entitlements: Rc::new(self.entitlements),
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
    entitlements: Rc<Entitlements>,
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

/// The slot and MAC key of one key's record.
struct Slot {
    name: String,
    mac: MacKey,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl AsyncLicensing {
    /// Starts building for the seller organization `organization_id` (a UUID v4).
    pub fn builder(organization_id: impl Into<String>) -> AsyncLicensingBuilder {
        AsyncLicensingBuilder {
            client: AsyncClient::builder(organization_id),
            store: None,
            policy: GracePolicy::default(),
            app_secret: None,
            machine_id: None,
            require_activation: false,
            entitlements: Entitlements::new(),
            clock: Rc::new(crate::wasm::date_now),
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
        if let Some(secret) = self.store.get(SECRET_NAME).await?.and_then(|t| unhex(&t)) {
            return Ok(secret);
        }
        let _lock = lock(SECRET_NAME).await;
        if let Some(secret) = self.store.get(SECRET_NAME).await?.and_then(|t| unhex(&t)) {
            return Ok(secret);
        }
        let secret = self.random_secret()?;
        self.store.set(SECRET_NAME, &hex(&secret)).await?;
        Ok(secret)
    }

    async fn slot(&self, key: &Key) -> Result<Slot, Error> {
        let secret = self.install_secret().await?;
        Ok(Slot {
            name: format!(
                "{STORAGE_PREFIX}{}",
                cache::slot_name(self.org(), key.expose())
            ),
            mac: session::mac_key(
                key,
                self.org(),
                &secret,
                self.machine.as_deref(),
                self.app_secret.as_deref(),
            ),
        })
    }

    async fn load(&self, slot: &Slot, key: &Key) -> Result<Option<Record>, Error> {
        let text = self.store.get(&slot.name).await?;
        Ok(session::trusted(
            text.as_deref().map(str::as_bytes),
            &slot.mac,
            self.org(),
            key,
        ))
    }

    async fn save(&self, slot: &Slot, record: &Record) -> Result<(), Error> {
        let bytes = cache::encode(record, &slot.mac);
        // The cache format is UTF-8 text (a header, compact JSON and hex), so this is lossless.
        let text = String::from_utf8_lossy(&bytes);
        self.store.set(&slot.name, &text).await
    }

    /// Activates `req.key` and remembers the activation, so later
    /// [`check`](AsyncLicensing::check)s validate it. With a machine id, its fingerprint is
    /// added to the conditions (as `machine_fingerprint`).
    ///
    /// If Polar activated but the storage cannot remember it, the error is `cache_error` and
    /// its detail names the new activation id, so nothing is lost.
    pub async fn activate(
        &self,
        req: &ActivateRequest,
    ) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
        let (req, key) = session::bound_activation(req, self.machine.as_deref())?;
        let verdict = self.client.activate(&req).await?;
        if let Verdict::Accepted(read) = &verdict {
            let activation = session::stored_activation(read, &req, (self.clock)());
            self.remember(&key, activation)
                .await
                .map_err(|e| session::unremembered(read, &e))?;
        }
        Ok(verdict)
    }

    async fn remember(&self, key: &Key, activation: StoredActivation) -> Result<(), Error> {
        let slot = self.slot(key).await?;
        let _lock = lock(&slot.name).await;
        let record = self.load(&slot, key).await?;
        let record = session::remember(record, self.org(), key, activation, (self.clock)());
        self.save(&slot, &record).await
    }

    /// The grace-aware verdict for `key`: validates the remembered activation (if any) with
    /// the conditions it was made with, answering from the cache as the policy allows.
    pub async fn check(&self, key: impl Into<Key>) -> CheckOutcome {
        let key = key.into();
        self.run_check(&key, None).await
    }

    /// The grace-aware verdict for an explicit validate request (the cache is used only for
    /// an identical request).
    pub async fn check_request(&self, req: &ValidateRequest) -> CheckOutcome {
        let Some(key) = req.key.clone() else {
            return CheckOutcome::Unverified(Error::invalid("key", "is required"));
        };
        self.run_check(&key, Some(req)).await
    }

    fn build_request(
        &self,
        key: &Key,
        explicit: Option<&ValidateRequest>,
        record: Option<&Record>,
    ) -> Result<ValidateRequest, Error> {
        match explicit {
            Some(req) => Ok(req.clone()),
            None => session::plain_check_request(
                key,
                record,
                self.machine.as_deref(),
                self.require_activation,
            ),
        }
    }

    async fn run_check(&self, key: &Key, explicit: Option<&ValidateRequest>) -> CheckOutcome {
        let slot = match self.slot(key).await {
            Ok(slot) => slot,
            Err(e) => return self.online_only(key, explicit, e).await,
        };
        let _lock = lock(&slot.name).await;
        let record = match self.load(&slot, key).await {
            Ok(record) => record,
            Err(e) => return self.online_only(key, explicit, e).await,
        };
        let req = match self.build_request(key, explicit, record.as_ref()) {
            Ok(req) => req,
            Err(e) => return CheckOutcome::Unverified(e),
        };
        let now = (self.clock)();
        match session::prepare(self.client.api(), record.as_ref(), &req, now, &self.policy) {
            Prepared::Done(outcome) => outcome,
            Prepared::Ask { query, http } => {
                let online = self.client.send_validate(&http).await;
                let (write, outcome) = session::conclude(record, &query, now, &self.policy, online);
                if let Write::Save {
                    record,
                    must_not_grant,
                } = write
                {
                    if self.save(&slot, &record).await.is_err() && must_not_grant {
                        // The tombstone could not be written: make sure the old good record
                        // cannot grant later either.
                        let _ = self.store.remove(&slot.name).await;
                    }
                }
                outcome
            }
        }
    }

    /// A check when the cache cannot be used at all: online only.
    async fn online_only(
        &self,
        key: &Key,
        explicit: Option<&ValidateRequest>,
        cache_error: Error,
    ) -> CheckOutcome {
        if explicit.is_none() && self.require_activation {
            // Without the cache the remembered activation is unknown.
            return CheckOutcome::Unverified(cache_error);
        }
        let req = match self.build_request(key, explicit, None) {
            Ok(req) => req,
            Err(e) => return CheckOutcome::Unverified(e),
        };
        let online = self.client.validate(&req).await;
        session::online_only(online, &cache_error, (self.clock)())
    }

    /// Deactivates `activation_id`, or the remembered activation when `None`, and forgets it.
    /// With neither, `invalid_input` (field `activation_id`).
    pub async fn deactivate(
        &self,
        key: impl Into<Key>,
        activation_id: Option<&str>,
    ) -> Result<Verdict<()>, Error> {
        let key = key.into();
        let slot = self.slot(&key).await?;
        let _lock = lock(&slot.name).await;
        let record = self.load(&slot, &key).await?;
        let id = session::deactivation_target(activation_id, record.as_ref())?;
        let verdict = self
            .client
            .deactivate(&DeactivateRequest::new(key.clone(), id.as_str()))
            .await?;
        if let Some(record) = session::forget_activation(record, &id, &verdict) {
            self.save(&slot, &record).await?;
        }
        Ok(verdict)
    }

    /// What the cache holds for `key`, with no request.
    pub async fn status(&self, key: impl Into<Key>) -> Result<CacheStatus, Error> {
        let key = key.into();
        let slot = self.slot(&key).await?;
        let text = self.store.get(&slot.name).await?;
        Ok(session::status(
            text.as_deref().map(str::as_bytes),
            &slot.mac,
            self.org(),
            &key,
            (self.clock)(),
            &self.policy,
        ))
    }

    /// Forgets everything cached for `key` (the server is not told).
    pub async fn forget(&self, key: impl Into<Key>) -> Result<(), Error> {
        let key = key.into();
        let slot = self.slot(&key).await?;
        let _lock = lock(&slot.name).await;
        self.store.remove(&slot.name).await
    }
}
