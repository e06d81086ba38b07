//! Grace-aware licensing for native apps: the blocking client, a cache store, the grace policy
//! and the clock, put together.
//!
//! [`Licensing::check`] is the call an app makes at launch: it answers from the cache while the
//! last good verdict is fresh, asks Polar when it is stale, and falls back to the cache within
//! the grace period only when Polar cannot be reached (see [`crate::grace`] for the rules).
//! [`Licensing::activate`] remembers the activation (and the conditions it was made with) so
//! later checks validate it; [`Licensing::deactivate`] forgets it.

use crate::cache::{self, MacKey};
use crate::error::{Error, Verdict};
use crate::features::{Entitlements, FeatureAccess};
use crate::fingerprint::{fingerprint_from, machine_fingerprint};
use crate::grace::{self, CheckOutcome, GracePolicy, Plan, Query, Record, StoredActivation};
use crate::key::Key;
use crate::model::LicenseKeyActivationRead;
use crate::native::{BlockingClient, ClientBuilder};
use crate::proto::{ActivateRequest, DeactivateRequest, Server, ValidateRequest};
use crate::session::{self, CacheStatus, Prepared, Write};
use crate::store::{FileStore, MemoryStore, Store};
use crate::transport::Transport;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock: unix seconds. Tests pass a fake one.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock in unix seconds (0 before 1970).
pub fn system_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How activations are bound to this machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MachineBinding {
    /// The OS machine id, hashed with the organization (the default). When the OS has none,
    /// activations are not bound.
    #[default]
    Os,
    /// This id instead of the OS's (hashed the same way): for tests and for apps with their own.
    Id(String),
    /// No binding.
    Off,
}

/// Builds a [`Licensing`].
pub struct LicensingBuilder {
    client: ClientBuilder,
    store: Option<Arc<dyn Store>>,
    cache_dir: Option<PathBuf>,
    policy: GracePolicy,
    app_secret: Option<Vec<u8>>,
    machine: MachineBinding,
    require_activation: bool,
    entitlements: Entitlements,
    clock: Clock,
}

impl std::fmt::Debug for LicensingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicensingBuilder")
            .field("client", &self.client)
            .field("cache_dir", &self.cache_dir)
            .field("policy", &self.policy)
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl LicensingBuilder {
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

    /// Connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.connect_timeout(timeout);
        self
    }

    /// Use the token-authenticated routes (backends only).
    pub fn access_token(mut self, token: impl Into<String>) -> Self {
        self.client = self.client.access_token(token);
        self
    }

    /// The grace policy (default: contract §4).
    pub fn policy(mut self, policy: GracePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Keep the cache in this directory (default: the platform's data directory).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Keep the cache in this store instead of files.
    pub fn store(mut self, store: impl Store + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A secret of the app's, mixed into the cache MAC key (optional; makes the cache
    /// unreadable to anything without the app binary).
    pub fn app_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.app_secret = Some(secret.into());
        self
    }

    /// How activations are bound to the machine (default: the OS machine id).
    pub fn machine_binding(mut self, binding: MachineBinding) -> Self {
        self.machine = binding;
        self
    }

    /// Makes [`Licensing::check`] refuse, with `invalid_input` (field `activation_id`) and no
    /// request, when no activation is remembered for the key. Polar validates a bare key even
    /// when it has activation slots, so an app that licenses per machine turns this on: a
    /// deleted or tampered cache then means "activate again", not a key-only check.
    pub fn require_activation(mut self, required: bool) -> Self {
        self.require_activation = required;
        self
    }

    /// The feature map [`Licensing::has_feature`] answers from (checked when it is made:
    /// see [`Entitlements::grant`] and [`Entitlements::from_json`]).
    pub fn entitlements(mut self, entitlements: Entitlements) -> Self {
        self.entitlements = entitlements;
        self
    }

    /// The clock (default: the system clock). For tests.
    pub fn clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn finish(self, client: BlockingClient) -> Result<Licensing, Error> {
        self.policy.validate()?;
        let org = client.api().organization_id().to_string();
        let store: Arc<dyn Store> = match (self.store, self.cache_dir) {
            (Some(store), _) => store,
            (None, Some(dir)) => Arc::new(FileStore::new(dir)),
            (None, None) => Arc::new(FileStore::open_default()?),
        };
        // The seal always carries this machine's identity, whatever the binding: turning the
        // binding on or off does not invalidate the cache, and a copied cache stays untrusted.
        let seal = match &self.machine {
            MachineBinding::Id(id) => Some(fingerprint_from(id, &org)),
            MachineBinding::Os | MachineBinding::Off => machine_fingerprint(&org),
        };
        let machine = match self.machine {
            MachineBinding::Os => machine_fingerprint(&org),
            MachineBinding::Id(id) => Some(fingerprint_from(&id, &org)),
            MachineBinding::Off => None,
        };
        Ok(Licensing {
            client,
            store,
            policy: self.policy,
            app_secret: self.app_secret.map(Arc::from),
            machine,
            seal,
            require_activation: self.require_activation,
            entitlements: Arc::new(self.entitlements),
            clock: self.clock,
            memo: Arc::default(),
        })
    }

    /// Checks everything and builds over ureq.
    pub fn build(self) -> Result<Licensing, Error> {
        let client = self.client.clone().build()?;
        self.finish(client)
    }

    /// Builds over another transport (tests, proxies).
    pub fn build_with_transport(
        self,
        transport: impl Transport + 'static,
    ) -> Result<Licensing, Error> {
        let client = self.client.clone().build_with_transport(transport)?;
        self.finish(client)
    }

    /// Uses an in-memory store (nothing survives the process).
    pub fn memory_store(self) -> Result<Self, Error> {
        Ok(self.store(MemoryStore::new()?))
    }
}

/// Grace-aware licensing for one organization. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Licensing {
    client: BlockingClient,
    store: Arc<dyn Store>,
    policy: GracePolicy,
    app_secret: Option<Arc<[u8]>>,
    machine: Option<String>,
    seal: Option<String>,
    require_activation: bool,
    entitlements: Arc<Entitlements>,
    clock: Clock,
    memo: Arc<Memo>,
}

impl std::fmt::Debug for Licensing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Licensing")
            .field("client", &self.client)
            .field("policy", &self.policy)
            .field("machine_bound", &self.machine.is_some())
            .finish_non_exhaustive()
    }
}

/// The slot and MAC key of one key's record.
#[derive(Clone)]
struct Slot {
    name: String,
    mac: MacKey,
}

/// What the last check of this `Licensing` (and its clones) worked out, so that a warm
/// check repeats none of the costly pure steps (issue #6 measured HMAC-SHA256 and the JSON
/// parse at about three quarters of a cached check).
///
/// Both entries are exact, never a guess: the slot is reused only for the same license key
/// and the same install secret bytes (the MAC key is a pure function of those and of fields
/// fixed at build time), and a record only for byte-for-byte the same stored bytes under
/// the same slot and MAC key (decoding is a pure function of those). The store is still
/// read on every check, so a record another process replaced, removed or tampered with is
/// seen at once.
#[derive(Default)]
struct Memo {
    slot: std::sync::Mutex<Option<(String, Vec<u8>, Slot)>>,
    record: std::sync::Mutex<Option<(Slot, Vec<u8>, Record)>>,
}

impl Memo {
    fn slot(&self, key: &Key, secret: &[u8]) -> Option<Slot> {
        let memo = self.slot.lock().ok()?;
        let (k, s, slot) = memo.as_ref()?;
        (k == key.expose() && s == secret).then(|| slot.clone())
    }

    fn remember_slot(&self, key: &Key, secret: Vec<u8>, slot: &Slot) {
        if let Ok(mut memo) = self.slot.lock() {
            *memo = Some((key.expose().to_string(), secret, slot.clone()));
        }
    }

    fn record(&self, slot: &Slot, bytes: &[u8]) -> Option<Record> {
        let memo = self.record.lock().ok()?;
        let (s, b, record) = memo.as_ref()?;
        (s.name == slot.name && s.mac == slot.mac && b == bytes).then(|| record.clone())
    }

    fn remember_record(&self, slot: &Slot, bytes: Vec<u8>, record: &Record) {
        if let Ok(mut memo) = self.record.lock() {
            *memo = Some((slot.clone(), bytes, record.clone()));
        }
    }
}

impl Licensing {
    /// Starts building for the seller organization `organization_id` (a UUID v4).
    pub fn builder(organization_id: impl Into<String>) -> LicensingBuilder {
        LicensingBuilder {
            client: BlockingClient::builder(organization_id),
            store: None,
            cache_dir: None,
            policy: GracePolicy::default(),
            app_secret: None,
            machine: MachineBinding::default(),
            require_activation: false,
            entitlements: Entitlements::new(),
            clock: Arc::new(system_clock),
        }
    }

    /// The online client underneath (no cache).
    pub fn client(&self) -> &BlockingClient {
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

    /// May this copy use `feature`, given a verdict from [`Licensing::check`]? A cached
    /// verdict within the grace answers as an online one; a verdict that does not license
    /// grants nothing.
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

    fn slot(&self, key: &Key) -> Result<Slot, Error> {
        let secret = self.store.install_secret()?;
        if let Some(slot) = self.memo.slot(key, &secret) {
            return Ok(slot);
        }
        let slot = Slot {
            name: cache::slot_name(self.org(), key.expose()),
            mac: session::mac_key(
                key,
                self.org(),
                &secret,
                self.seal.as_deref(),
                self.app_secret.as_deref(),
            ),
        };
        self.memo.remember_slot(key, secret, &slot);
        Ok(slot)
    }

    /// The trusted record of `key`, if any (untrusted bytes count as none).
    fn load(&self, slot: &Slot, key: &Key) -> Result<Option<Record>, Error> {
        let Some(bytes) = self.store.load(&slot.name)? else {
            return Ok(None);
        };
        if let Some(record) = self.memo.record(slot, &bytes) {
            return Ok(Some(record));
        }
        let record = session::trusted(Some(&bytes), &slot.mac, self.org(), key);
        if let Some(record) = &record {
            self.memo.remember_record(slot, bytes, record);
        }
        Ok(record)
    }

    fn save(&self, slot: &Slot, record: &Record) -> Result<(), Error> {
        self.store
            .save(&slot.name, &cache::encode(record, &slot.mac))
    }

    /// Activates `req.key` on this machine and remembers the activation, so later
    /// [`check`](Licensing::check)s validate it. The machine fingerprint is added to the
    /// conditions (as `machine_fingerprint`) unless binding is off.
    ///
    /// If Polar activated but the cache cannot remember it, the error is `cache_error` and its
    /// detail names the new activation id, so nothing is lost.
    pub fn activate(
        &self,
        req: &ActivateRequest,
    ) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
        let (req, key) = session::bound_activation(req, self.machine.as_deref())?;
        let verdict = self.client.activate(&req)?;
        if let Verdict::Accepted(read) = &verdict {
            let activation = session::stored_activation(read, &req, (self.clock)());
            self.remember(&key, activation)
                .map_err(|e| session::unremembered(read, &e))?;
        }
        Ok(verdict)
    }

    fn remember(&self, key: &Key, activation: StoredActivation) -> Result<(), Error> {
        let slot = self.slot(key)?;
        let _lock = self.store.lock(&slot.name)?;
        let record = self.load(&slot, key)?;
        let record = session::remember(record, self.org(), key, activation, (self.clock)());
        self.save(&slot, &record)
    }

    /// The grace-aware verdict for `key`: validates the remembered activation (if any) with
    /// the conditions it was made with, answering from the cache as the policy allows.
    pub fn check(&self, key: impl Into<Key>) -> CheckOutcome {
        self.run_check(&key.into(), None)
    }

    /// The grace-aware verdict for an explicit validate request (the cache is used only for
    /// an identical request).
    pub fn check_request(&self, req: &ValidateRequest) -> CheckOutcome {
        let Some(key) = req.key.clone() else {
            return CheckOutcome::Unverified(Error::invalid("key", "is required"));
        };
        self.run_check(&key, Some(req))
    }

    /// The request a check sends: the explicit one, or the remembered activation's.
    fn request_for(
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

    fn run_check(&self, key: &Key, explicit: Option<&ValidateRequest>) -> CheckOutcome {
        let opened = self
            .slot(key)
            .and_then(|slot| Ok((self.store.lock(&slot.name)?, slot)))
            .and_then(|(lock, slot)| Ok((self.load(&slot, key)?, lock, slot)));
        let (record, _lock, slot) = match opened {
            Ok(opened) => opened,
            // Without the cache the remembered activation is unknown: a bare-key check would
            // skip the machine binding the app asked for.
            Err(cache_error) if explicit.is_none() && self.require_activation => {
                return CheckOutcome::Unverified(cache_error)
            }
            Err(cache_error) => {
                return match self.request_for(key, explicit, None) {
                    Ok(req) => session::online_only(
                        self.client.validate(&req),
                        &cache_error,
                        (self.clock)(),
                    ),
                    Err(e) => CheckOutcome::Unverified(e),
                }
            }
        };
        let req = match self.request_for(key, explicit, record.as_ref()) {
            Ok(req) => req,
            Err(e) => return CheckOutcome::Unverified(e),
        };
        let now = (self.clock)();
        match session::prepare(self.client.api(), record.as_ref(), &req, now, &self.policy) {
            Prepared::Done(outcome) => outcome,
            Prepared::Ask { query, http } => {
                let online = self.client.send_validate(&http);
                let (write, outcome) = session::conclude(record, &query, now, &self.policy, online);
                if let Write::Save {
                    record,
                    must_not_grant,
                } = write
                {
                    if self.save(&slot, &record).is_err() && must_not_grant {
                        // If even this fails, the store is broken and the next load fails too.
                        let _ = self.store.remove(&slot.name);
                    }
                }
                outcome
            }
        }
    }

    /// Answers at once from the cache and, when the policy wants a fresh verdict, revalidates
    /// on a background thread, calling `on_fresh` with the result. Returns the immediate
    /// answer and the thread's handle (`None` when no request was needed).
    ///
    /// The immediate answer is what the cache can say without asking: licensed from the cache
    /// within the grace period, or the cached denial, or `offline` ("not verified yet") when
    /// there is nothing usable: an app can start in a limited mode and upgrade when
    /// `on_fresh` arrives.
    pub fn check_in_background(
        &self,
        key: impl Into<Key>,
        on_fresh: impl FnOnce(CheckOutcome) + Send + 'static,
    ) -> (CheckOutcome, Option<std::thread::JoinHandle<()>>) {
        let key = key.into();
        let immediate = self.peek(&key);
        match immediate {
            Ok(outcome) => (outcome, None),
            Err(immediate) => {
                let me = self.clone();
                let handle = std::thread::Builder::new()
                    .name("polar-license-revalidate".into())
                    .spawn(move || on_fresh(me.check(key)));
                match handle {
                    Ok(handle) => (immediate, Some(handle)),
                    Err(e) => (
                        CheckOutcome::Unverified(Error::Offline {
                            timeout: false,
                            detail: format!("could not start the background check: {e}"),
                        }),
                        None,
                    ),
                }
            }
        }
    }

    /// `Ok(answer)` when the cache settles it with no request; `Err(best answer for now)`
    /// when a request is needed.
    fn peek(&self, key: &Key) -> Result<CheckOutcome, CheckOutcome> {
        let pending = || Error::Offline {
            timeout: false,
            detail: "not verified yet: revalidating in the background".into(),
        };
        let Ok(slot) = self.slot(key) else {
            return Err(CheckOutcome::Unverified(pending()));
        };
        let record = match self.load(&slot, key) {
            Ok(record) => record,
            Err(_) => return Err(CheckOutcome::Unverified(pending())),
        };
        let req = session::remembered_request(key, record.as_ref(), self.machine.as_deref());
        let Ok(query) = Query::from_request(self.org(), &req) else {
            return Err(CheckOutcome::Unverified(pending()));
        };
        let now = (self.clock)();
        match grace::plan(record.as_ref(), &query, now, &self.policy) {
            Plan::Cached(outcome) | Plan::Refuse(outcome) => Ok(outcome),
            Plan::Ask => {
                if let Some(denied) = record.as_ref().and_then(|r| r.denied.as_ref()) {
                    return Err(CheckOutcome::Denied(denied.to_denial()));
                }
                let (_, outcome) =
                    grace::settle(record, &query, now, &self.policy, Err(pending()), None);
                Err(outcome)
            }
        }
    }

    /// Deactivates `activation_id`, or the remembered activation when `None`, and forgets it.
    /// With neither, `invalid_input` (field `activation_id`).
    pub fn deactivate(
        &self,
        key: impl Into<Key>,
        activation_id: Option<&str>,
    ) -> Result<Verdict<()>, Error> {
        let key = key.into();
        let slot = self.slot(&key)?;
        let _lock = self.store.lock(&slot.name)?;
        let record = self.load(&slot, &key)?;
        let id = session::deactivation_target(activation_id, record.as_ref())?;
        let verdict = self
            .client
            .deactivate(&DeactivateRequest::new(key.clone(), id.as_str()))?;
        if let Some(record) = session::forget_activation(record, &id, &verdict) {
            self.save(&slot, &record)?;
        }
        Ok(verdict)
    }

    /// Recovers from fingerprint drift (new hardware, reinstalled OS): deactivates the
    /// remembered activation (a `not_found` is fine: it is gone already) and activates again
    /// with the current fingerprint.
    pub fn reactivate(
        &self,
        req: &ActivateRequest,
    ) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
        let key = req
            .key
            .clone()
            .ok_or_else(|| Error::invalid("key", "is required"))?;
        match self.deactivate(key, None) {
            Ok(_) => {}
            Err(Error::InvalidInput { ref field, .. }) if field == "activation_id" => {}
            Err(e) => return Err(e),
        }
        self.activate(req)
    }

    /// What the cache holds for `key`, with no request.
    pub fn status(&self, key: impl Into<Key>) -> Result<CacheStatus, Error> {
        let key = key.into();
        let slot = self.slot(&key)?;
        let bytes = self.store.load(&slot.name)?;
        Ok(session::status(
            bytes.as_deref(),
            &slot.mac,
            self.org(),
            &key,
            (self.clock)(),
            &self.policy,
        ))
    }

    /// Forgets everything cached for `key` (the server is not told).
    pub fn forget(&self, key: impl Into<Key>) -> Result<(), Error> {
        let key = key.into();
        let slot = self.slot(&key)?;
        let _lock = self.store.lock(&slot.name)?;
        self.store.remove(&slot.name)
    }
}
