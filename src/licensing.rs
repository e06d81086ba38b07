//! Grace-aware licensing for native apps: the blocking client, a cache store, the grace policy
//! and the clock, put together.
//!
//! [`Licensing::check`] is the call an app makes at launch: it answers from the cache while the
//! last good verdict is fresh, asks Polar when it is stale, and falls back to the cache within
//! the grace period only when Polar cannot be reached (see [`crate::grace`] for the rules).
//! [`Licensing::activate`] remembers the activation (and the conditions it was made with) so
//! later checks validate it; [`Licensing::deactivate`] forgets it.

use crate::cache::{self, MacKey, Untrusted};
use crate::error::{Error, Verdict};
use crate::features::{Entitlements, FeatureAccess};
use crate::fingerprint::{fingerprint_from, machine_fingerprint, MACHINE_CONDITION};
use crate::grace::{
    self, CheckOutcome, GracePolicy, Plan, Query, Record, Source, StoreAction, StoredActivation,
};
use crate::key::Key;
use crate::metadata::MetaValue;
use crate::model::LicenseKeyActivationRead;
use crate::native::{BlockingClient, ClientBuilder};
use crate::proto::{ActivateRequest, DeactivateRequest, Server, ValidateRequest};
use crate::reason::Reason;
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

/// What the cache holds for a key, read without any request.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheState {
    /// Nothing stored.
    Empty,
    /// Something is stored but cannot be trusted (edited, copied from another install, another
    /// format version); it is treated as no cache.
    Untrusted(Untrusted),
    /// A trusted record.
    Present(Box<Record>),
}

/// The answer to [`Licensing::status`].
#[derive(Debug, Clone, PartialEq)]
pub struct CacheStatus {
    /// What is stored.
    pub state: CacheState,
    /// The clock reading used.
    pub now: i64,
    /// How long the cache could still license if Polar were unreachable now.
    pub grace_remaining: Option<Duration>,
    /// How far the clock moved back past the tolerance, if it did.
    pub clock_rollback: Option<u64>,
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
struct Slot {
    name: String,
    mac: MacKey,
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
        // The machine fingerprint and the app's secret both go into the MAC key: a cache
        // directory copied to another machine (install secret included) is not trusted there.
        let mut extra = Vec::new();
        for part in [
            self.seal.as_deref().map(str::as_bytes),
            self.app_secret.as_deref(),
        ] {
            let part = part.unwrap_or_default();
            extra.extend_from_slice(&(part.len() as u64).to_be_bytes());
            extra.extend_from_slice(part);
        }
        Ok(Slot {
            name: cache::slot_name(self.org(), key.expose()),
            mac: MacKey::derive(key.expose(), self.org(), &secret, Some(&extra)),
        })
    }

    /// The validate request a plain `check` sends: the remembered activation with its
    /// conditions, the machine fingerprint replaced by this machine's current one (so an
    /// activation carried to another machine fails with `conditions_mismatch`).
    fn remembered_request(&self, key: &Key, record: Option<&Record>) -> ValidateRequest {
        let mut req = ValidateRequest::new(key.clone());
        if let Some(a) = record.and_then(|r| r.activation.as_ref()) {
            req.activation_id = Some(a.id.clone());
            req.conditions = a.conditions.clone();
            if req.conditions.contains_key(MACHINE_CONDITION) {
                match &self.machine {
                    Some(fp) => {
                        req.conditions
                            .insert(MACHINE_CONDITION.to_string(), MetaValue::Str(fp.clone()));
                    }
                    // Binding turned off since: the server will answer conditions_mismatch.
                    None => {
                        req.conditions.remove(MACHINE_CONDITION);
                    }
                }
            }
        }
        req
    }

    /// The trusted record of `key`, if any (untrusted bytes count as none).
    fn load(&self, slot: &Slot, key: &Key) -> Result<Option<Record>, Error> {
        Ok(self
            .store
            .load(&slot.name)?
            .and_then(|bytes| cache::decode(&bytes, &slot.mac).ok())
            .filter(|r| r.is_for(self.org(), key)))
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
        let mut req = req.clone();
        if let Some(fp) = &self.machine {
            req.conditions
                .entry(MACHINE_CONDITION.to_string())
                .or_insert_with(|| MetaValue::Str(fp.clone()));
        }
        let key = req
            .key
            .clone()
            .ok_or_else(|| Error::invalid("key", "is required"))?;
        let verdict = self.client.activate(&req)?;
        if let Verdict::Accepted(read) = &verdict {
            let remembered = StoredActivation {
                id: read.activation.id.clone(),
                label: read.activation.label.clone(),
                conditions: req.conditions.clone(),
                created_at: (self.clock)(),
            };
            self.remember(&key, remembered).map_err(|e| Error::Cache {
                detail: format!(
                    "activated as {}, but the cache could not remember it: {e}",
                    read.activation.id
                ),
            })?;
        }
        Ok(verdict)
    }

    fn remember(&self, key: &Key, activation: StoredActivation) -> Result<(), Error> {
        let slot = self.slot(key)?;
        let _lock = self.store.lock(&slot.name)?;
        let now = (self.clock)();
        let record = match self.load(&slot, key)? {
            Some(mut r) => {
                // A successful activate proves the key is granted and unexpired now.
                r.denied = None;
                r.latest_seen = r.latest_seen.max(now);
                r.activation = Some(activation);
                r
            }
            None => Record::with_activation(self.org(), key, activation, now),
        };
        self.save(&slot, &record)
    }

    /// The grace-aware verdict for `key`: validates the remembered activation (if any) with
    /// the conditions it was made with, answering from the cache as the policy allows.
    pub fn check(&self, key: impl Into<Key>) -> CheckOutcome {
        let key = key.into();
        self.run_check(&key, true, |record| self.remembered_request(&key, record))
    }

    /// The grace-aware verdict for an explicit validate request (the cache is used only for
    /// an identical request).
    pub fn check_request(&self, req: &ValidateRequest) -> CheckOutcome {
        let Some(key) = req.key.clone() else {
            return CheckOutcome::Unverified(Error::invalid("key", "is required"));
        };
        self.run_check(&key, false, |_| req.clone())
    }

    fn run_check(
        &self,
        key: &Key,
        remembered: bool,
        build: impl FnOnce(Option<&Record>) -> ValidateRequest,
    ) -> CheckOutcome {
        let opened = self
            .slot(key)
            .and_then(|slot| Ok((self.store.lock(&slot.name)?, slot)))
            .and_then(|(lock, slot)| Ok((self.load(&slot, key)?, lock, slot)));
        let (record, _lock, slot) = match opened {
            Ok(opened) => opened,
            // Without the cache the remembered activation is unknown: a bare-key check would
            // skip the machine binding the app asked for.
            Err(cache_error) if remembered && self.require_activation => {
                return CheckOutcome::Unverified(cache_error)
            }
            Err(cache_error) => return self.online_only(&build(None), cache_error),
        };
        let req = build(record.as_ref());
        if remembered && self.require_activation && req.activation_id.is_none() {
            return CheckOutcome::Unverified(not_activated());
        }
        let http = match self.client.api().validate_request(&req) {
            Ok(http) => http,
            Err(e) => return CheckOutcome::Unverified(e),
        };
        let query = match Query::from_request(self.org(), &req) {
            Ok(q) => q,
            Err(e) => return CheckOutcome::Unverified(e),
        };
        let now = (self.clock)();
        match grace::plan(record.as_ref(), &query, now, &self.policy) {
            Plan::Cached(outcome) | Plan::Refuse(outcome) => outcome,
            Plan::Ask => {
                let (online, date) = match self.client.send_validate(&http) {
                    Ok((verdict, date)) => (Ok(verdict), date),
                    Err(e) => (Err(e), None),
                };
                let (action, outcome) =
                    grace::settle(record, &query, now, &self.policy, online, date);
                if let StoreAction::Write(record) = action {
                    if self.save(&slot, &record).is_err() && record.denied.is_some() {
                        // The tombstone could not be written: make sure the old good record
                        // cannot grant later either. If even that fails, the store is
                        // broken and the next load fails too.
                        let _ = self.store.remove(&slot.name);
                    }
                }
                outcome
            }
        }
    }

    /// A check when the cache cannot be used at all: online only.
    fn online_only(&self, req: &ValidateRequest, cache_error: Error) -> CheckOutcome {
        match self.client.validate(req) {
            Ok(Verdict::Accepted(license)) => CheckOutcome::Licensed {
                source: Source::Online,
                license: Box::new(license),
                grace_remaining: None,
                verified_at: (self.clock)(),
            },
            Ok(Verdict::Denied(denial)) => CheckOutcome::Denied(denial),
            Err(e) if e.is_unverified() => CheckOutcome::Unverified(Error::Cache {
                detail: format!("{cache_error}; and Polar could not be asked: {e}"),
            }),
            Err(e) => CheckOutcome::Unverified(e),
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
        let req = self.remembered_request(key, record.as_ref());
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
        let id = match (
            activation_id,
            record.as_ref().and_then(|r| r.activation.as_ref()),
        ) {
            (Some(id), _) => id.to_string(),
            (None, Some(a)) => a.id.clone(),
            (None, None) => {
                return Err(Error::invalid(
                    "activation_id",
                    "none given and no activation remembered for this key",
                ))
            }
        };
        let verdict = self
            .client
            .deactivate(&DeactivateRequest::new(key.clone(), id.as_str()))?;
        let gone = match &verdict {
            Verdict::Accepted(()) => true,
            Verdict::Denied(d) => d.reason == Reason::NotFound,
        };
        if let (true, Some(mut record)) = (gone, record) {
            let same = |other: &str| other.eq_ignore_ascii_case(&id);
            if record.activation.as_ref().is_some_and(|a| same(&a.id)) {
                record.activation = None;
            }
            if record
                .good
                .as_ref()
                .is_some_and(|g| g.activation_id.as_deref().is_some_and(same))
            {
                record.good = None;
            }
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
        let now = (self.clock)();
        let state = match self.store.load(&slot.name)? {
            None => CacheState::Empty,
            Some(bytes) => match cache::decode(&bytes, &slot.mac) {
                Ok(record) if record.is_for(self.org(), &key) => {
                    CacheState::Present(Box::new(record))
                }
                Ok(_) => CacheState::Untrusted(Untrusted::BadMac),
                Err(why) => CacheState::Untrusted(why),
            },
        };
        let (grace_remaining, clock_rollback) = match &state {
            CacheState::Present(r) => (
                r.grace_remaining(now, &self.policy),
                r.rollback(now, &self.policy),
            ),
            _ => (None, None),
        };
        Ok(CacheStatus {
            state,
            now,
            grace_remaining,
            clock_rollback,
        })
    }

    /// Forgets everything cached for `key` (the server is not told).
    pub fn forget(&self, key: impl Into<Key>) -> Result<(), Error> {
        let key = key.into();
        let slot = self.slot(&key)?;
        let _lock = self.store.lock(&slot.name)?;
        self.store.remove(&slot.name)
    }
}

fn not_activated() -> Error {
    Error::invalid(
        "activation_id",
        "no activation remembered on this machine: activate first",
    )
}
