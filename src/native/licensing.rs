//! Grace-aware licensing for native apps: the blocking client, a cache store, the grace policy
//! and the clock, put together.
//!
//! [`Licensing::check`] is the call an app makes at launch: it answers from the cache while the
//! last good verdict is fresh, asks Polar when it is stale, and falls back to the cache within
//! the grace period only when Polar gave no verdict (unreachable, rate limited, a 5xx, an
//! answer that is not Polar's; see [`crate::grace`] for the rules).
//! [`Licensing::activate`] remembers the activation (and the conditions it was made with) so
//! later checks validate it, and its answer is a verdict; [`Licensing::deactivate`] forgets it.
//!
//! Every call reads the store and takes its lock only around reading and writing: a check
//! never holds the lock while Polar is asked, so the other threads and processes checking the
//! key answer from the cache meanwhile (the check machine's phases: [`crate::flow::check`]).

use super::blocking::Blocking;
use super::client::{BlockingClient, ClientBuilder};
use super::store::{FileStore, MemoryStore, SlotLock, Store};
use super::transport::{ProxySetting, TlsRoots};
// Re-exported here too: `polar_license::licensing::{system_clock, Clock}` is where they were.
pub use super::clock::{system_clock, Clock};
use crate::error::{Error, Verdict};
use crate::features::{Entitlements, FeatureAccess};
use crate::fingerprint::fingerprint_from;
use crate::flow::CacheStatus;
use crate::flow::{
    self, check::Check, follow::Follow, update::Update, Given, Machine, Stored, Want,
};
use crate::flow::{Keep, LeaseMemo, Slot};
use crate::grace::{CheckOutcome, CheckReport, GracePolicy};
use crate::key::Key;
use crate::keyseal::KeySeal;
use crate::lease::RelayKeys;
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::options::{client_setters, licensing_setters, LicensingOptions};
use crate::proto::{ActivateRequest, ValidateRequest};
use crate::transport::Transport;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How activations are bound to this machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MachineBinding {
    /// The OS machine id, hashed with the organization (the default). When the OS has none,
    /// activations are not bound; when it has one that cannot be read, the calls that need it
    /// fail with `cache_error` (never a silently different fingerprint).
    #[default]
    Os,
    /// This id instead of the OS's (hashed the same way): for tests and for apps with their own.
    /// A blank one is refused when the licensing is built (`invalid_input`, field `machine_id`).
    Id(String),
    /// No binding.
    Off,
    /// For tests: an OS whose machine id cannot be read, for this reason.
    #[doc(hidden)]
    Unreadable(String),
}

/// This machine's identity for an organization: the fingerprint sent as a condition (when
/// activations are bound) and the one the cache is sealed with (always, when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    machine: Option<String>,
    seal: Option<String>,
}

impl Identity {
    fn of(binding: &MachineBinding, org: &str) -> Result<Identity, Error> {
        let os = || crate::fingerprint::machine_fingerprint(org);
        Ok(match binding {
            MachineBinding::Os => {
                let fp = os()?;
                Identity {
                    machine: fp.clone(),
                    seal: fp,
                }
            }
            MachineBinding::Id(id) => {
                let fp = Some(fingerprint_from(id, org));
                Identity {
                    machine: fp.clone(),
                    seal: fp,
                }
            }
            // The seal always carries this machine's identity, whatever the binding: turning
            // the binding on or off does not invalidate the cache, and a copied cache stays
            // untrusted.
            MachineBinding::Off => Identity {
                machine: None,
                seal: os()?,
            },
            MachineBinding::Unreadable(why) => {
                return Err(Error::Cache {
                    detail: format!(
                        "this machine's id could not be read ({why}); activations and the \
                         cache are bound to it"
                    ),
                })
            }
        })
    }
}

/// Builds a [`Licensing`]: the organization, then what differs from the defaults (the
/// production server, a file cache in the app's own directory, the machine binding, the
/// default grace policy of docs/interfaces.md §4a, the OS trust store and the environment's proxy).
///
/// ```no_run
/// use polar_license::{GracePolicy, Licensing};
/// use std::time::Duration;
///
/// fn main() -> Result<(), polar_license::Error> {
///     let _licensing = Licensing::builder("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10")
///         .app_id("com.example.editor") // its cache directory: <data dir>/polar-license/com.example.editor
///         .require_activation(true)     // a bare key licenses no machine it was not activated on
///         .policy(GracePolicy {
///             grace_period: Duration::from_secs(3 * 24 * 3600),
///             ..GracePolicy::default()
///         })
///         .build()?;
///     Ok(())
/// }
/// ```
pub struct LicensingBuilder {
    client: ClientBuilder,
    options: LicensingOptions,
    store: Option<Arc<dyn Store>>,
    cache_dir: Option<PathBuf>,
    app_id: Option<String>,
    machine: MachineBinding,
    clock: Clock,
    remember_keys: bool,
    install_analytics: bool,
    relay_url: Option<String>,
}

impl std::fmt::Debug for LicensingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicensingBuilder")
            .field("client", &self.client)
            .field("cache_dir", &self.cache_dir)
            .field("policy", &self.options.policy)
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

impl LicensingBuilder {
    client_setters!(client.options);
    licensing_setters!(options);

    /// Connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.connect_timeout(timeout);
        self
    }

    /// Which certificates Polar's is checked against (default: the operating system's trust
    /// store; see [`TlsRoots`]).
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.client = self.client.tls_roots(roots);
        self
    }

    /// How requests reach Polar (default: the environment's proxy; see [`ProxySetting`]).
    pub fn proxy(mut self, proxy: ProxySetting) -> Self {
        self.client = self.client.proxy(proxy);
        self
    }

    /// Keep the cache in this directory (default: the application's own directory under
    /// the platform's data directory, see [`LicensingBuilder::app_id`]).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Names the application for its default cache directory,
    /// `<platform data dir>/polar-license/<app_id>` (default: the executable's file name).
    /// Each application has its own records: one vendor's app, or the `polar-license`
    /// command, never shares them with another by accident. 1 to 64 ASCII letters, digits,
    /// `.`, `-` or `_` (a reverse-DNS id such as `com.example.editor` is a good choice).
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// Keep the cache in this store instead of files.
    pub fn store(mut self, store: impl Store + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// No cache at all, because of `why` (a cache directory that cannot be found, say): every
    /// call still runs its machine, with a key's slot that cannot be had. So
    /// [`Licensing::validate_update`] (and a deactivate of an explicit activation id) asks
    /// Polar and answers, its `cache_error` being `why` (the cache did not learn it), and so
    /// does a check (nothing to answer from: [`CheckReport::cache_error`] is `why`); an
    /// activate and [`Licensing::status`] answer `why`, and an activate takes no slot on
    /// Polar. The command line's `validate` runs this way when it has no cache directory.
    pub fn no_cache(mut self, why: Error) -> Self {
        self.store = Some(Arc::new(NoCache(why)));
        self
    }

    /// How activations are bound to the machine (default: the OS machine id).
    pub fn machine_binding(mut self, binding: MachineBinding) -> Self {
        self.machine = binding;
        self
    }

    /// Remember the key of every good activation (default: off), sealed beside the records, so
    /// [`Licensing::check_remembered`] needs no argument; a good deactivation of that key
    /// forgets it. [`Licensing::remember_key`] does the same for a key the app chooses.
    pub fn remember_keys(mut self, on: bool) -> Self {
        self.remember_keys = on;
        self
    }

    /// Install analytics (issue #80; default: off): with it on,
    /// [`Licensing::report_install`] sends the seller's relay this install's daily ping
    /// ([`crate::analytics`]: a hashed install id, the app's version, the OS, the architecture
    /// and the face, nothing personal); off, it sends nothing. Turn it on only with the
    /// user's consent where the law asks for it.
    pub fn install_analytics(mut self, on: bool) -> Self {
        self.install_analytics = on;
        self
    }

    /// The seller's relay (its URL) for what a relay answers with no customer session (issue
    /// #80): at the activation limit, [`Licensing::activate`] lists the key's activations
    /// through it (its devices route) and adopts the one this machine already holds. Signed
    /// mode needs none: its base URL is the relay. Checked by [`LicensingBuilder::build`] as a
    /// base URL is (`https://`, or `http://` on loopback only): `invalid_input`, field
    /// `relay_url`.
    pub fn relay_url(mut self, url: impl Into<String>) -> Self {
        self.relay_url = Some(url.into());
        self
    }

    /// The clock (default: the system clock). For tests.
    pub fn clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn finish(self, client: BlockingClient) -> Result<Licensing, Error> {
        self.options.policy.validate()?;
        if let Some(url) = &self.relay_url {
            crate::proto::Server::Custom(url.clone()).base_url_of("relay_url")?;
        }
        // A blank id is every machine's: the binding would bind nothing.
        if matches!(&self.machine, MachineBinding::Id(id) if id.trim().is_empty()) {
            return Err(Error::invalid("machine_id", "is empty"));
        }
        let org = client.api().organization_id().to_string();
        let store: Arc<dyn Store> = match (self.store, self.cache_dir, self.app_id) {
            (Some(store), _, _) => store,
            (None, Some(dir), _) => Arc::new(FileStore::new(dir)),
            (None, None, Some(app)) => Arc::new(FileStore::new(FileStore::dir_for_app(&app)?)),
            (None, None, None) => Arc::new(FileStore::open_default()?),
        };
        // Read once here; a machine id that cannot be read now is read again by each call
        // that needs it (and fails it with its own message until it can be).
        let identity = std::sync::OnceLock::new();
        if let Ok(id) = Identity::of(&self.machine, &org) {
            let _ = identity.set(id);
        }
        Ok(Licensing {
            client,
            store,
            policy: self.options.policy,
            app_secret: self.options.app_secret.map(Arc::from),
            binding: self.machine,
            identity: Arc::new(identity),
            require_activation: self.options.require_activation,
            released: self.options.released,
            trial: self.options.trial,
            trial_benefits: (self.options.trial.is_some()
                || !self.options.trial_benefits.is_empty())
            .then(|| Arc::from(self.options.trial_benefits)),
            entitlements: Arc::new(self.options.entitlements),
            clock: self.clock,
            memo: Arc::default(),
            remember_keys: self.remember_keys,
            install_analytics: self.install_analytics,
            relay_url: self.relay_url,
            relay_keys: Arc::new(self.options.relay_keys),
            lease_memo: Arc::default(),
            last_entitlements: Arc::default(),
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

/// The store of [`LicensingBuilder::no_cache`]: every step fails with why there is none.
struct NoCache(Error);

impl Store for NoCache {
    fn load(&self, _: &str) -> Result<Option<Vec<u8>>, Error> {
        Err(self.0.clone())
    }
    fn save(&self, _: &str, _: &[u8]) -> Result<(), Error> {
        Err(self.0.clone())
    }
    fn remove(&self, _: &str) -> Result<(), Error> {
        Err(self.0.clone())
    }
    fn install_secret(&self) -> Result<Vec<u8>, Error> {
        Err(self.0.clone())
    }
    fn lock(&self, _: &str) -> Result<SlotLock, Error> {
        Err(self.0.clone())
    }
}

/// Grace-aware licensing for one organization. Cheap to clone; `Send + Sync`.
///
/// Activate once per machine, check at every launch:
///
/// ```no_run
/// use polar_license::{ActivateRequest, Licensing, Verdict};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let licensing = Licensing::builder("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10")
///         .app_id("com.example.editor")
///         .build()?;
///     let key = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415"; // what the customer pasted
///
///     // Once per machine: each activate takes one of the key's slots.
///     if licensing.status(key)?.activation.is_none() {
///         if let Verdict::Denied(denial) =
///             licensing.activate(&ActivateRequest::new(key, "my laptop"))?
///         {
///             eprintln!("{}", denial.hint().unwrap_or(&denial.detail));
///             return Ok(());
///         }
///     }
///     // At every launch: online when stale, from the cache within the grace period.
///     let verdict = licensing.check(key);
///     if verdict.is_licensed() {
///         println!("licensed");
///     } else {
///         println!("not licensed: {:?}", verdict.reason());
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Licensing {
    client: BlockingClient,
    store: Arc<dyn Store>,
    policy: GracePolicy,
    app_secret: Option<Arc<[u8]>>,
    binding: MachineBinding,
    identity: Arc<std::sync::OnceLock<Identity>>,
    require_activation: bool,
    released: Option<crate::perpetual::ReleaseDate>,
    trial: Option<crate::trial::TrialDays>,
    /// The trial benefit ids when the app stated a trial (local or by benefit); `None`: the
    /// check reports no trial.
    trial_benefits: Option<Arc<[String]>>,
    entitlements: Arc<Entitlements>,
    clock: Clock,
    memo: Arc<Memo>,
    remember_keys: bool,
    install_analytics: bool,
    /// The seller's relay for device lists and the heal at the limit (issue #80).
    relay_url: Option<String>,
    relay_keys: Arc<RelayKeys>,
    lease_memo: Arc<LeaseMemo>,
    /// The entitlements of the last check's answer ([`Licensing::entitlement`]).
    last_entitlements: Arc<std::sync::Mutex<Option<crate::lease::EntitlementClaims>>>,
}

impl std::fmt::Debug for Licensing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Licensing")
            .field("client", &self.client)
            .field("policy", &self.policy)
            .field("machine_bound", &self.machine_fingerprint().is_some())
            .finish_non_exhaustive()
    }
}

/// What the last checks of this `Licensing` (and its clones) worked out, so that a warm
/// check repeats none of the costly pure steps (issue #6 measured HMAC-SHA256 and the JSON
/// parse at about three quarters of a cached check).
///
/// Every entry is exact, never a guess: the slot is reused only for the same license key and
/// the same install secret bytes (its seal is a pure function of those and of fields fixed at
/// build time), and an opened record only for byte-for-byte the same stored record and
/// ledger under the same slot (opening is a pure function of those). The store is still read
/// on every check, so a record another process replaced, removed or tampered with is seen at
/// once.
#[derive(Default)]
struct Memo {
    slot: Mutex<Option<SlotMemo>>,
    /// The last slot opened and the last cached answer recorded (the core's).
    flow: flow::Memo,
}

/// A license key, the install secret and the slot they seal.
type SlotMemo = (String, Vec<u8>, Arc<Slot>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Memo {
    fn slot(&self, key: &Key, secret: &[u8]) -> Option<Arc<Slot>> {
        let memo = lock(&self.slot);
        let (k, s, slot) = memo.as_ref()?;
        (k == key.expose() && s == secret).then(|| Arc::clone(slot))
    }

    fn remember_slot(&self, key: &Key, secret: Vec<u8>, slot: &Arc<Slot>) {
        *lock(&self.slot) = Some((key.expose().to_string(), secret, Arc::clone(slot)));
    }
}

/// Milliseconds on a monotonic clock (the core's memo of the last cached answer).
fn monotonic_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The locks a check holds while the core's machine says so.
#[derive(Default)]
struct Held {
    slot: Option<SlotLock>,
    mark: Option<SlotLock>,
}

impl Licensing {
    /// Starts building for the seller organization `organization_id` (a UUID v4).
    pub fn builder(organization_id: impl Into<String>) -> LicensingBuilder {
        LicensingBuilder {
            client: BlockingClient::builder(organization_id),
            options: LicensingOptions::default(),
            store: None,
            cache_dir: None,
            app_id: None,
            machine: MachineBinding::default(),
            clock: Arc::new(system_clock),
            remember_keys: false,
            install_analytics: false,
            relay_url: None,
        }
    }

    /// The online client underneath (no cache).
    pub fn client(&self) -> &BlockingClient {
        &self.client
    }

    /// The terms a seat held through this licensing's client is checked against
    /// ([`crate::seat_hold::HoldTerms`]): its relay keys and organization. No relay keys:
    /// `invalid_input` (field `relay_keys`): a floating seat is held only in signed mode.
    pub fn hold_terms(&self) -> Result<crate::seat_hold::HoldTerms, Error> {
        crate::seat_hold::HoldTerms::new((*self.relay_keys).clone(), self.org())
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

    /// This machine's fingerprint for the organization, when activations are machine-bound
    /// (and the machine id can be read).
    pub fn machine_fingerprint(&self) -> Option<&str> {
        self.identity().ok().and_then(|i| i.machine.as_deref())
    }

    fn identity(&self) -> Result<&Identity, Error> {
        if let Some(identity) = self.identity.get() {
            return Ok(identity);
        }
        let identity = Identity::of(&self.binding, self.org())?;
        Ok(self.identity.get_or_init(|| identity))
    }

    fn org(&self) -> &str {
        self.client.api().organization_id()
    }

    fn slot(&self, key: &Key) -> Result<Arc<Slot>, Error> {
        let identity = self.identity()?;
        let secret = self.store.install_secret()?;
        if let Some(slot) = self.memo.slot(key, &secret) {
            return Ok(slot);
        }
        let slot = Arc::new(Slot::new(
            self.client.api().base_url(),
            self.org(),
            key,
            &secret,
            identity.seal.as_deref(),
            self.app_secret.as_deref(),
        ));
        self.memo.remember_slot(key, secret, &slot);
        Ok(slot)
    }

    fn read(&self, slot: &Slot) -> Result<Stored, Error> {
        Ok(Stored {
            record: self.store.load(&slot.name)?,
            ledger: self.store.load(&slot.ledger)?,
            // A note that cannot be read is no note: the next cached answer is written durably.
            clock: self.store.load(&slot.clock).ok().flatten(),
        })
    }

    /// Activates `req.key` on this machine and remembers the activation, so later
    /// [`check`](Licensing::check)s validate it. The machine fingerprint is added to the
    /// conditions (as `machine_fingerprint`) unless binding is off.
    ///
    /// A good activation is a verdict: it starts the grace period like a good validate, so
    /// a check right after it answers from the cache, online or not. A denial about the key
    /// (`not_found`, `inactive`, `expired`) removes the cache's power to grant.
    ///
    /// The cache is opened first: when it cannot be, the error is `cache_error` and no slot
    /// is taken. If Polar activated but the cache cannot remember it, the error is
    /// `cache_error` and its detail names the new activation id, so nothing is lost
    /// ([`Licensing::activate_report`] gives the activation itself, with that error apart).
    pub fn activate(
        &self,
        req: &ActivateRequest,
    ) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
        let activated = self.activate_update(req);
        match activated.unremembered() {
            Some(e) => Err(e),
            None => activated.online,
        }
    }

    /// [`Licensing::activate`], with the `cache_error` apart when Polar activated but the
    /// cache (or the remembered key) could not be written: the activation stands, and is the
    /// answer; a later check does not know it, so keep its id (or deactivate it).
    pub fn activate_report(
        &self,
        req: &ActivateRequest,
    ) -> (
        Result<Verdict<LicenseKeyActivationRead>, Error>,
        Option<Error>,
    ) {
        let activated = self.activate_update(req);
        (activated.online, activated.cache_error)
    }

    /// [`Licensing::activate_report`] with the lease the key's record holds after it (signed
    /// mode: [`flow::update::Activated::lease`]), as the activate machine answers it: the
    /// request bound to this machine and checked, the cache opened, then Polar asked
    /// ([`Update::activation`]); a good activation remembers the key when remembering is on
    /// (when that fails, it is the `cache_error`).
    ///
    /// At the activation limit it heals (issue #80, [`flow::heal`]): the key's activations
    /// are listed through the seller's relay (the builder's [`LicensingBuilder::relay_url`],
    /// or the base URL in signed mode) or else the remembered customer session, and when one
    /// of them records this machine's fingerprint it is adopted (validated with its id, no new
    /// activation) and the answer is that activation. With no way to list, the limit stands.
    pub fn activate_update(&self, req: &ActivateRequest) -> flow::update::Activated {
        let session = self.remembered_session().ok().flatten();
        self.activate_via(req, session.as_ref(), None).0
    }

    /// [`Licensing::activate_update`] with the ways to list the key's activations at the
    /// limit given: the customer `session` (a face that keeps its session in memory passes
    /// it), the seller's relay at `relay_url` (else the builder's, or signed mode's base
    /// URL). Also the activation id adopted, when one was (this machine's own, found at the
    /// limit), and the key's devices as listed there (this machine's rows marked by the
    /// fingerprint), for a limit that stands.
    pub fn activate_via(
        &self,
        req: &ActivateRequest,
        session: Option<&crate::portal::SessionToken>,
        relay_url: Option<&str>,
    ) -> (
        flow::update::Activated,
        Option<String>,
        Option<crate::portal::KeyDevices>,
    ) {
        if let Err(e) = self.identity() {
            return (flow::update::Activated::failed(e), None, None);
        }
        let now = (self.clock)();
        // The key's seal is made once the machine has checked the input and wants the slot;
        // remembering it is the machine's last step.
        let mut remember = None;
        let slot = |key: &Key| {
            if self.remember_keys {
                remember = Some(self.sealed_key(key));
            }
            self.slot(key)
        };
        let ctx = self.ctx();
        let update = Update::activation(&ctx, req, slot, now);
        let update = match remember {
            Some(entry) => update.remembering(entry),
            None => update,
        };
        let listing = self.heal_listing(update.key(), session, relay_url);
        let slots = Box::new(|key: &Key| self.slot(key));
        let mut heal = flow::heal::Heal::new(&ctx, req, update, listing, slots, now);
        self.drive_machine(&mut heal, &mut Held::default(), |_| false);
        let mut activated = heal.activated();
        let adopted = heal.adopted().map(str::to_string);
        // The adoption was a validate: the key is remembered here, as an activation's is.
        if adopted.is_some() && self.remember_keys && activated.cache_error.is_none() {
            if let Some(key) = req.key.clone() {
                activated.cache_error = self.remember_key(key).err();
            }
        }
        let devices = heal.devices().cloned();
        (activated, adopted, devices)
    }

    /// The seller's relay this licensing knows: the builder's [`LicensingBuilder::relay_url`],
    /// else signed mode's base URL (the relay); `None`: no relay.
    pub(crate) fn known_relay(&self) -> Option<&str> {
        crate::portal::known_relay(
            self.relay_url.as_deref(),
            !self.relay_keys.is_empty(),
            self.client.api().base_url(),
        )
    }

    /// How a heal lists `key`'s activations: through the relay given, the one this licensing
    /// knows ([`Licensing::known_relay`]), else the customer session; `None`: nowhere.
    fn heal_listing(
        &self,
        key: &Key,
        session: Option<&crate::portal::SessionToken>,
        relay_url: Option<&str>,
    ) -> Option<crate::portal::ListDevices> {
        use crate::portal::{ListDevices, Portal};
        let api = self.client.api();
        let relay = relay_url.or(self.known_relay());
        if let Some(relay) = relay {
            if let Ok(portal) = Portal::for_relay(api, relay) {
                return Some(ListDevices::via_relay(portal, key.clone(), None));
            }
        }
        session.map(|s| ListDevices::new(Portal::for_api(api), s.clone(), key.clone(), None))
    }

    /// `key` sealed to be remembered: the entry's name and bytes ([`Licensing::remember_key`]).
    fn sealed_key(&self, key: &Key) -> Result<(String, Vec<u8>), Error> {
        let seal = self.key_seal()?;
        let bytes = seal.seal(key)?;
        Ok((seal.slot, bytes))
    }

    /// Air-gapped activation, step 1, on the machine with no network: the request line of
    /// `req` (bound to this machine as [`Licensing::activate`] binds it, and checked as it
    /// checks it). Nothing is sent. Carry the line to an online machine, which sends it to the
    /// seller's relay ([`BlockingClient::lease_fetch`]), and bring the response line back to
    /// [`Licensing::lease_install`]. The line holds the license key.
    pub fn lease_request(&self, req: &ActivateRequest) -> Result<String, Error> {
        // Bound and checked by the activate machine's rule, with this machine's identity.
        self.identity()?;
        let (req, _) = Update::activation_request(&self.ctx(), req)?;
        crate::airgap::request_line(self.client.api(), &req)
    }

    /// Air-gapped activation, step 3, back on the machine with no network: installs a
    /// response line. The answer in it is held to the request as an online activate is (this
    /// organization, a valid license), its lease must verify with the relay keys for this
    /// machine (signed mode is required: without a lease, a line is only a claim), and the
    /// activation is stored with its lease: checks license from the cache until the lease
    /// ends, with no network. A damaged line, another machine's, or one without a lease that
    /// verifies stores nothing.
    pub fn lease_install(&self, line: &str) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
        let installed = self.lease_install_update(line);
        match (installed.online, installed.cache_error) {
            (Ok(Verdict::Accepted(_)), Some(e)) => Err(e),
            (online, _) => online,
        }
    }

    /// [`Licensing::lease_install`] as the activate machine answers it, with the lease the
    /// key's record holds after it ([`flow::update::Activated::lease`]): the line's answer is
    /// given to the machine as Polar's answer to the activate the request line asked for,
    /// and folded as an online activate is (its lease held to the activation, a replay
    /// refused, the record written under the slot's lock). A store that fails is the
    /// `cache_error`; a denial in the line is the answer, and nothing is stored for it.
    pub fn lease_install_update(&self, line: &str) -> flow::update::Activated {
        let answered = flow::update::Activated::answered;
        let (req, answer) = match self.installed(line) {
            Ok(Ok(installed)) => installed,
            Ok(Err(denied)) => return answered(Ok(denied)),
            Err(e) => return answered(Err(e)),
        };
        let now = (self.clock)();
        // No request is sent: the answer is the line's, which carries no nonce.
        let ctx = flow::Ctx {
            random: None,
            ..self.ctx()
        };
        let mut update = Update::activation(&ctx, &req, |key| self.slot(key), now);
        let mut answer = Some(answer);
        let line_answer = |_: &crate::proto::HttpRequest| {
            answer.take().ok_or_else(|| Error::Protocol {
                status: None,
                detail: "the activation response line was given once already".to_string(),
            })
        };
        self.drive_with(
            &ctx,
            &mut update,
            &mut Held::default(),
            |_| false,
            line_answer,
        );
        update.activated()
    }

    /// The activate request a response line answers, and its answer with the lease among its
    /// headers (as a relay sends it); or the line's denial (nothing is stored for it).
    #[allow(clippy::type_complexity)]
    fn installed(
        &self,
        line: &str,
    ) -> Result<
        Result<(ActivateRequest, crate::proto::HttpResponse), Verdict<LicenseKeyActivationRead>>,
        Error,
    > {
        if self.relay_keys.is_empty() {
            return Err(Error::invalid(
                "relay_keys",
                "installing an activation response needs the relay's public keys (signed mode)",
            ));
        }
        let response = crate::airgap::read_response(line)?;
        let identity = self.identity()?;
        let this_machine = identity
            .machine
            .as_deref()
            .map(crate::metadata::MetaValue::from);
        let made_for = response
            .conditions
            .get(crate::fingerprint::MACHINE_CONDITION);
        if made_for != this_machine.as_ref() {
            return Err(Error::invalid(
                "response",
                "was made for another machine's request",
            ));
        }
        let key = match crate::proto::parse_activate(&response.answer)? {
            Verdict::Accepted(read) => read.license_key.key.clone(),
            Verdict::Denied(denial) => return Ok(Err(Verdict::Denied(denial))),
        };
        let req = ActivateRequest {
            key: Some(key),
            label: response.label.clone(),
            conditions: response.conditions.clone(),
            meta: crate::metadata::Metadata::new(),
        };
        if crate::proto::Expect::activate(self.org(), &req, (self.clock)()).is_none() {
            return Err(Error::invalid("response", "is not for this organization"));
        }
        Ok(Ok((req, crate::airgap::leased_answer(response))))
    }

    /// Validates online once, with no cache answer (Polar's `validate`): the request as given,
    /// with this machine's fingerprint among the conditions when it names an activation and
    /// activations are machine-bound (the conditions `activate` stored). The answer updates
    /// the key's record (one truth per key): a denial about the key removes the cache's power
    /// to grant, and a good answer to the question `check` asks refreshes it.
    pub fn validate(&self, req: &ValidateRequest) -> Result<Verdict<ValidatedLicenseKey>, Error> {
        self.validate_report(req).0
    }

    /// [`Licensing::validate`], with the `cache_error` when the key's record could not be
    /// opened or updated with the answer (the answer stands; a later check does not know it).
    /// Input refused before any request touches no cache.
    pub fn validate_report(
        &self,
        req: &ValidateRequest,
    ) -> (Result<Verdict<ValidatedLicenseKey>, Error>, Option<Error>) {
        let validated = self.validate_update(req);
        (validated.online, validated.cache_error)
    }

    /// [`Licensing::validate_report`] with the lease the key's record holds after it (signed
    /// mode: [`flow::update::Validated::lease`]), as the validate machine answers it (the
    /// request bound to this machine and checked there: [`Update::validate`]).
    pub fn validate_update(&self, req: &ValidateRequest) -> flow::update::Validated {
        let now = (self.clock)();
        // An activation named needs this machine's identity (its fingerprint is sent).
        if let (Err(e), Some(_), Some(_)) = (self.identity(), &req.key, &req.activation_id) {
            return flow::update::Validated {
                online: Err(e),
                cache_error: None,
                lease: None,
                verified_at: now,
            };
        }
        let mut update = Update::validate(&self.ctx(), req.clone(), |key| self.slot(key), now);
        self.drive_machine(&mut update, &mut Held::default(), |_| false);
        update.validated()
    }

    /// The grace-aware verdict for `key`: validates the remembered activation (if any) with
    /// the conditions it was made with, answering from the cache as the policy allows.
    pub fn check(&self, key: impl Into<Key>) -> CheckOutcome {
        self.check_report(key).outcome
    }

    /// [`Licensing::check`], with why a cached answer came from the cache although Polar was
    /// asked, and whether the cache could be updated ([`CheckReport`]).
    pub fn check_report(&self, key: impl Into<Key>) -> CheckReport {
        self.run_check(&key.into(), None)
    }

    /// The grace-aware verdict for an explicit validate request (the cache is used only for
    /// an identical request).
    pub fn check_request(&self, req: &ValidateRequest) -> CheckOutcome {
        self.check_request_report(req).outcome
    }

    /// [`Licensing::check_request`] with its [`CheckReport`].
    pub fn check_request_report(&self, req: &ValidateRequest) -> CheckReport {
        let Some(key) = req.key.clone() else {
            return CheckReport::of(CheckOutcome::Unverified(Error::invalid(
                "key",
                "is required",
            )));
        };
        self.run_check(&key, Some(req))
    }

    /// What every check of this client is given: its options and memos.
    fn ctx(&self) -> flow::Ctx<'_> {
        flow::Ctx {
            api: self.client.api(),
            policy: &self.policy,
            relay_keys: &self.relay_keys,
            lease_memo: &self.lease_memo,
            ed25519: &crate::lease::Builtin,
            memo: &self.memo.flow,
            machine: self.machine_fingerprint(),
            bound: self.identity().is_ok(),
            require_activation: self.require_activation,
            random: Some(random_nonce),
            clock: Some(&*self.clock),
        }
    }

    /// A check of `key` (of `explicit` as given, else of the remembered activation).
    fn start_check(&self, key: &Key, explicit: Option<&ValidateRequest>) -> Check {
        let ctx = self.ctx();
        // The input checked before the slot is had: refused input touches no cache.
        let slot = |key: &Key| self.slot(key);
        let clock = ((self.clock)(), monotonic_ms());
        Check::of_input(&ctx, key.clone(), explicit.cloned(), clock, slot)
            .released(&ctx, self.released)
    }

    /// Drives a check: does the IO its machine asks for, until it is done (or, with
    /// `before_asking`, until it would ask Polar: the slot's lock is then released).
    fn drive(&self, check: &mut Check, held: &mut Held, before_asking: bool) {
        self.drive_machine(check, held, |check| before_asking && check.asks_next());
    }

    /// The one drive loop of this shell: does the IO a machine asks for until it is done (or
    /// `pause` says to stop before its next step).
    fn drive_machine<M: Machine>(
        &self,
        machine: &mut M,
        held: &mut Held,
        pause: impl Fn(&M) -> bool,
    ) {
        let ctx = self.ctx();
        let send = |request: &crate::proto::HttpRequest| self.client.send(request);
        self.drive_with(&ctx, machine, held, pause, send);
    }

    /// [`Licensing::drive_machine`] with its context and its way of sending a request (the
    /// air gap's answer is a line's, never sent).
    fn drive_with<M: Machine>(
        &self,
        ctx: &flow::Ctx<'_>,
        machine: &mut M,
        held: &mut Held,
        pause: impl Fn(&M) -> bool,
        mut send: impl FnMut(&crate::proto::HttpRequest) -> Result<crate::proto::HttpResponse, Error>,
    ) {
        let check = machine;
        loop {
            if pause(check) {
                return;
            }
            let mut sent = None;
            let given = match check.want() {
                Want::Lock(name) => Given::Locked(self.store.lock(name).map(|lock| {
                    held.slot = Some(lock);
                })),
                Want::Unlock => {
                    held.slot = None;
                    Given::Unlocked
                }
                // An error taking the mark only means the others cannot see this check asking.
                Want::Mark(name) => Given::Marked(match self.store.try_lock(name) {
                    Ok(Some(mark)) => {
                        held.mark = Some(mark);
                        true
                    }
                    Ok(None) => false,
                    Err(_) => true,
                }),
                Want::Read(slot) => Given::Read(self.read(slot)),
                Want::Load(name) => Given::Loaded(self.store.load(name)),
                Want::Write {
                    name,
                    bytes,
                    keep,
                    compare,
                } => match compare.map(|c| (c, self.store.load(c.ledger))) {
                    Some((_, Err(e))) => Given::Written(Err(e)),
                    Some((c, Ok(now))) if !c.holds(now.as_deref()) => Given::Late,
                    _ => Given::Written(match keep {
                        Keep::Durable => self.store.save(name, bytes),
                        Keep::Revertible => self.store.save_revertible(name, bytes),
                        Keep::Volatile => self.store.save_volatile(name, bytes),
                    }),
                },
                Want::Remove(name) => {
                    // If even this fails, the store is broken and the next read fails too.
                    let _ = self.store.remove(name);
                    Given::Removed
                }
                Want::Send(request) => {
                    sent = Some(Instant::now());
                    Given::Response(send(request))
                }
                // The core's verifier answers at once: never wanted here.
                Want::Verify => Given::Verified,
                // The network and the clock as the client's own loop answers them.
                want @ (Want::Portal(_) | Want::Wait(_) | Want::Clock) => {
                    match self.client.answer(&super::drive::Io::of(want)) {
                        Some(given) => given,
                        None => return,
                    }
                }
                Want::Done => return,
            };
            check.give(ctx, given);
            if let (Some(started), Some((operation, answer))) = (sent, check.heard()) {
                super::events::heard(operation, Some(check.key()), started, answer);
            }
        }
    }

    /// A check's report with the key's trial, when the app stated a trial ([`crate::trial`]:
    /// the rule is pure and needs only the answer, so it runs here, in the shell, and a shell
    /// that states no trial, the npm engine's, links none of it).
    fn with_trial(&self, mut report: CheckReport) -> CheckReport {
        if let Some(benefits) = self.trial_benefits.as_deref() {
            crate::trial::apply(&mut report, benefits, (self.clock)());
        }
        report
    }

    fn run_check(&self, key: &Key, explicit: Option<&ValidateRequest>) -> CheckReport {
        let mut check = self.start_check(key, explicit);
        self.drive(&mut check, &mut Held::default(), false);
        let report = self.with_trial(check.report());
        super::events::decision(key, &report);
        *self
            .last_entitlements
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = report.entitlements().cloned();
        report
    }

    /// The value of the entitlement `name` as the last check's licensed answer read it from
    /// its verified lease, offline (issue #68, docs/entitlements.md): a Feature Flag value
    /// typed as Polar's metadata values (string, integer, float, boolean). `None` when the key
    /// is granted no such value, when the last check did not license, and whenever values are
    /// not known: **in unsigned mode** (no relay keys: Polar's answers to a client never carry
    /// a Feature Flag's values, only the seller's relay with its organization token can read
    /// them and sign them into the lease), or with a relay that does not sign them (started
    /// without `--sign-entitlements`) or had not read them yet. [`CheckReport::entitlements`] tells
    /// "granted none" (`Some`, empty) from "not known" (`None`).
    pub fn entitlement(&self, name: &str) -> Option<crate::lease::EntitlementValue> {
        self.last_entitlements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .value(name)
            .cloned()
    }

    /// Answers at once from the cache and, when the policy wants a fresh verdict, revalidates
    /// on a background thread, calling `on_fresh` with the result. Returns the immediate
    /// answer and the thread's handle (`None` when no request was needed).
    ///
    /// The immediate answer is decided exactly as [`Licensing::check`] decides before it
    /// asks Polar (so `require_activation` and bad input refuse here too): licensed from the
    /// cache within the grace period, or the cached denial, or `offline` ("not verified yet")
    /// when there is nothing usable: an app can start in a limited mode and upgrade when
    /// `on_fresh` arrives.
    pub fn check_in_background(
        &self,
        key: impl Into<Key>,
        on_fresh: impl FnOnce(CheckOutcome) + Send + 'static,
    ) -> (CheckOutcome, Option<std::thread::JoinHandle<()>>) {
        let (now, handle) =
            self.check_report_in_background(key, move |fresh| on_fresh(fresh.outcome));
        (now.outcome, handle)
    }

    /// [`Licensing::check_in_background`] with [`CheckReport`]s: the fresh answer says why it
    /// came from the cache although Polar was asked (`fallback`), and whether the cache could
    /// be written.
    pub fn check_report_in_background(
        &self,
        key: impl Into<Key>,
        on_fresh: impl FnOnce(CheckReport) + Send + 'static,
    ) -> (CheckReport, Option<std::thread::JoinHandle<()>>) {
        let key = key.into();
        let mut check = self.start_check(&key, None);
        self.drive(&mut check, &mut Held::default(), true);
        let Some(immediate) = check.pending(&self.ctx()) else {
            return (self.with_trial(check.report()), None);
        };
        // The slot as phase 1 left it: its lease and activation.
        let immediate = self.with_trial(CheckReport {
            lease: check.lease().cloned(),
            activation_id: check.activation_id().map(str::to_string),
            ..CheckReport::of(immediate)
        });
        let me = self.clone();
        let handle = std::thread::Builder::new()
            .name("polar-license-revalidate".into())
            .spawn(move || {
                me.drive(&mut check, &mut Held::default(), false);
                let fresh = me.with_trial(check.report());
                super::events::decision(&key, &fresh);
                on_fresh(fresh)
            });
        match handle {
            Ok(handle) => (immediate, Some(handle)),
            Err(e) => (
                CheckReport::of(CheckOutcome::Unverified(Error::Offline {
                    timeout: false,
                    detail: format!("could not start the background check: {e}"),
                })),
                None,
            ),
        }
    }

    /// [`Licensing::check`] as a future any executor can await (tokio, async-std, smol, a GUI
    /// toolkit's, `pollster::block_on`): the work runs on a thread of its own, so no executor
    /// thread waits while Polar answers. The library depends on no runtime. Dropping the
    /// future does not cancel the request: it ends within the client's timeouts and updates
    /// the cache as [`Licensing::check`] would.
    ///
    /// ```no_run
    /// # async fn command() -> Result<bool, polar_license::Error> {
    /// // In a Tauri command or an axum handler:
    /// let licensing = polar_license::Licensing::builder("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10")
    ///     .app_id("com.example.editor")
    ///     .build()?;
    /// let verdict = licensing.check_async("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415").await;
    /// Ok(verdict.is_licensed())
    /// # }
    /// ```
    pub fn check_async(&self, key: impl Into<Key>) -> Blocking<CheckOutcome> {
        let (me, key) = (self.clone(), key.into());
        Blocking::spawn(
            move || me.check(key),
            |e| CheckOutcome::Unverified(unstarted(e)),
        )
    }

    /// [`Licensing::check_report`] as a future (see [`Licensing::check_async`]).
    pub fn check_report_async(&self, key: impl Into<Key>) -> Blocking<CheckReport> {
        let (me, key) = (self.clone(), key.into());
        Blocking::spawn(
            move || me.check_report(key),
            |e| CheckReport::of(CheckOutcome::Unverified(unstarted(e))),
        )
    }

    /// [`Licensing::activate`] as a future (see [`Licensing::check_async`]). Takes the
    /// request as `activate` does (`&req`), or by value.
    pub fn activate_async(
        &self,
        req: impl Into<ActivateRequest>,
    ) -> Blocking<Result<Verdict<LicenseKeyActivationRead>, Error>> {
        let (me, req) = (self.clone(), req.into());
        Blocking::spawn(move || me.activate(&req), |e| Err(unstarted(e)))
    }

    /// [`Licensing::validate`] as a future (see [`Licensing::check_async`]). Takes the
    /// request as `validate` does (`&req`), or by value.
    pub fn validate_async(
        &self,
        req: impl Into<ValidateRequest>,
    ) -> Blocking<Result<Verdict<ValidatedLicenseKey>, Error>> {
        let (me, req) = (self.clone(), req.into());
        Blocking::spawn(move || me.validate(&req), |e| Err(unstarted(e)))
    }

    /// [`Licensing::deactivate`] as a future (see [`Licensing::check_async`]): the same
    /// arguments.
    pub fn deactivate_async(
        &self,
        key: impl Into<Key>,
        activation_id: Option<&str>,
    ) -> Blocking<Result<Verdict<()>, Error>> {
        let (me, key) = (self.clone(), key.into());
        let activation_id = activation_id.map(str::to_owned);
        Blocking::spawn(
            move || me.deactivate(key, activation_id.as_deref()),
            |e| Err(unstarted(e)),
        )
    }

    /// Deactivates `activation_id`, or the remembered activation when `None`, and forgets it.
    /// With neither, `invalid_input` (field `activation_id`).
    ///
    /// An explicit id needs no cache: when the key's slot cannot be had, it is deactivated
    /// online only ([`Licensing::deactivate_update`] says the cache was not told).
    pub fn deactivate(
        &self,
        key: impl Into<Key>,
        activation_id: Option<&str>,
    ) -> Result<Verdict<()>, Error> {
        self.deactivate_update(key, activation_id).answer
    }

    /// [`Licensing::deactivate`] as the deactivate machine answers it
    /// ([`Update::deactivation`]): with the activation it was about (the one given, else the
    /// remembered one), and whether the cache could not be told (an explicit id deactivated
    /// online only).
    pub fn deactivate_update(
        &self,
        key: impl Into<Key>,
        activation_id: Option<&str>,
    ) -> flow::update::Deactivated {
        let key = key.into();
        let now = (self.clock)();
        let id = activation_id.map(str::to_string);
        // The key is sealed as remembering it stores it once the machine has checked the
        // input and wants the slot; forgetting it is the machine's last step, when the
        // deactivation ends it, and only if the remembered key's entry, read under its lock
        // then, still holds this key (another process may have remembered another key while
        // Polar was asked). The slot is freed whatever the removal does: a key left behind
        // is only remembered, and forget_key removes it.
        let mut forget = None;
        let slot = |key: &Key| {
            if self.remember_keys {
                forget = self.sealed_key(key).ok();
            }
            self.slot(key)
        };
        let update = Update::deactivation(&self.ctx(), key, id, slot, now);
        let mut update = update.forgetting_sealed(forget);
        self.drive_machine(&mut update, &mut Held::default(), |_| false);
        update.deactivated()
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
        let stored = self.read(&slot)?;
        Ok(flow::status_of(
            &self.ctx(),
            &slot,
            &key,
            &stored,
            (self.clock)(),
        ))
    }

    /// Forgets everything cached for `key` (the server is not told), the remembered key too
    /// when it is this one.
    pub fn forget(&self, key: impl Into<Key>) -> Result<(), Error> {
        let key = key.into();
        let slot = self.slot(&key)?;
        {
            let _lock = self.store.lock(&slot.name)?;
            self.store.remove(&slot.name)?;
        }
        self.forget_remembered(&key)
    }

    /// A seal of this install, machine and app for this organization and server, made by
    /// `make` ([`KeySeal::new`], [`KeySeal::session`], [`crate::trial::TrialSeal::new`]).
    fn sealed<S>(&self, make: crate::keyseal::MakeSeal<S>) -> Result<S, Error> {
        let identity = self.identity()?;
        let secret = self.store.install_secret()?;
        Ok(make(
            self.client.api().base_url(),
            self.org(),
            &secret,
            identity.seal.as_deref(),
            self.app_secret.as_deref(),
        ))
    }

    fn key_seal(&self) -> Result<KeySeal, Error> {
        self.sealed(KeySeal::new)
    }

    /// Remembers `key` for this organization and server, sealed beside the records
    /// ([`crate::keyseal`]: not in plain text, and useless on another install or machine), in
    /// place of any key remembered before. The key is checked as a request checks it
    /// (`invalid_input`); a store that cannot be written is `cache_error`.
    pub fn remember_key(&self, key: impl Into<Key>) -> Result<(), Error> {
        let seal = self.key_seal()?;
        let bytes = seal.seal(&key.into())?;
        // Under the entry's lock, as a deactivate compares it before forgetting it.
        let _lock = self.store.lock(&seal.slot)?;
        self.store.save(&seal.slot, &bytes)
    }

    /// The remembered key, if there is one that this install and machine sealed (bytes that
    /// were edited or copied from elsewhere count as none). Its `Debug` is redacted.
    pub fn remembered_key(&self) -> Result<Option<Key>, Error> {
        let seal = self.key_seal()?;
        Ok(self
            .store
            .load(&seal.slot)?
            .and_then(|bytes| seal.open(&bytes).ok()))
    }

    /// Forgets the remembered key (its record and activation stay: see [`Licensing::forget`]).
    pub fn forget_key(&self) -> Result<(), Error> {
        let seal = self.key_seal()?;
        let _lock = self.store.lock(&seal.slot)?;
        self.store.remove(&seal.slot)
    }

    fn session_seal(&self) -> Result<KeySeal, Error> {
        self.sealed(KeySeal::session)
    }

    /// Remembers a customer-portal session (issue #64) beside the cache until `expires_at`
    /// (unix seconds; a session lasts one hour from when Polar made it), sealed as the
    /// remembered key is ([`crate::keyseal`]): never in plain text, useless on another install
    /// or machine. It replaces any session remembered before.
    pub fn remember_session(
        &self,
        token: &crate::portal::SessionToken,
        expires_at: i64,
    ) -> Result<(), Error> {
        let seal = self.session_seal()?;
        let plain = [expires_at.to_string().as_str(), ":", token.expose()].concat();
        let bytes = seal.seal(&Key::new(plain))?;
        let _lock = self.store.lock(&seal.slot)?;
        self.store.save(&seal.slot, &bytes)
    }

    /// The remembered session while its hour lasts by this licensing's clock. One past its
    /// hour counts as none and is forgotten; bytes that do not open here (sealed with another
    /// app secret or machine binding, or edited) count as none and are left alone, as the
    /// remembered key's are.
    pub fn remembered_session(&self) -> Result<Option<crate::portal::SessionToken>, Error> {
        let seal = self.session_seal()?;
        let Some(bytes) = self.store.load(&seal.slot)? else {
            return Ok(None);
        };
        let Some((expires, token)) = seal.open(&bytes).ok().and_then(|plain| {
            let (expires, token) = plain.expose().split_once(':')?;
            Some((expires.parse::<i64>().ok()?, token.to_string()))
        }) else {
            return Ok(None);
        };
        if expires > (self.clock)() {
            return Ok(Some(crate::portal::SessionToken::new(token)));
        }
        self.forget_session()?;
        Ok(None)
    }

    /// Forgets the remembered session (after Polar said it expired, or on sign-out).
    pub fn forget_session(&self) -> Result<(), Error> {
        let seal = self.session_seal()?;
        let _lock = self.store.lock(&seal.slot)?;
        self.store.remove(&seal.slot)
    }

    /// Forgets the remembered session when it is still `used` (the one Polar said expired):
    /// a sign-in made meanwhile, by another thread or process sharing this cache, is kept.
    pub fn forget_session_if(&self, used: &crate::portal::SessionToken) -> Result<(), Error> {
        let seal = self.session_seal()?;
        let _lock = self.store.lock(&seal.slot)?;
        let Some(bytes) = self.store.load(&seal.slot)? else {
            return Ok(());
        };
        let still = seal.open(&bytes).ok().is_some_and(|plain| {
            plain
                .expose()
                .split_once(':')
                .is_some_and(|(_, token)| token == used.expose())
        });
        match still {
            true => self.store.remove(&seal.slot),
            false => Ok(()),
        }
    }

    /// The activation this machine's cache remembers for `key` (none when the cache cannot
    /// be read): what a device listing marks as this machine.
    fn this_activation(&self, key: &Key) -> Option<String> {
        self.status(key.clone())
            .ok()
            .and_then(|s| s.activation.map(|a| a.id))
    }

    /// The devices of `key` through a customer session (issue #64), this machine's marked by
    /// the activation its cache remembers for the key (none when the cache cannot be read): the
    /// core's [`crate::portal::ListDevices`] over this licensing's client. Free one with
    /// [`Licensing::deactivate`] and its id (the public deactivate needs no session).
    pub fn list_devices(
        &self,
        session: &crate::portal::SessionToken,
        key: impl Into<Key>,
    ) -> Result<crate::portal::KeyDevices, crate::portal::PortalError> {
        let key = key.into();
        let here = self.this_activation(&key);
        let mut listed = self.client.list_devices(session, &key, here.as_deref())?;
        listed.mark_machine(self.machine_fingerprint());
        Ok(listed)
    }

    /// The devices of `key` through the seller's relay at `relay_url` (issue #64: the relay's
    /// `POST /v1/devices/list`; no session needed, the key proves it is the caller's, and the
    /// relay reads every live activation with the seller's token whatever the product's
    /// device-management setting), this machine's marked by the activation its cache
    /// remembers for the key. An app with a relay lists this way while the customer has not
    /// signed in; with a session, [`Licensing::list_devices`]. Free one with
    /// [`Licensing::deactivate`] and its id.
    pub fn list_devices_via_relay(
        &self,
        relay_url: &str,
        key: impl Into<Key>,
    ) -> Result<crate::portal::KeyDevices, crate::portal::PortalError> {
        let key = key.into();
        let here = self.this_activation(&key);
        let mut listed = self
            .client
            .list_devices_via_relay(relay_url, &key, here.as_deref())?;
        listed.mark_machine(self.machine_fingerprint());
        Ok(listed)
    }

    /// Reports `units` of `meter` used with `key` to the seller's relay at `relay_url` (`None`: the
    /// relay this licensing knows, the builder's [`LicensingBuilder::relay_url`] else signed mode's
    /// base URL; with neither, the base URL) (issue #68 item 3): the report's idempotency id (`id`,
    /// the app's own, or a new UUID v4) and the relay's answer, through the core's machine
    /// ([`crate::usage::RecordUsage`]: the same id sent again while the relay cannot be reached,
    /// answers 5xx or asks to wait). With relay keys (signed mode) the answer is believed only from
    /// the relay's signed acknowledgement (issue #76: an unsigned or forged `recorded` is
    /// `protocol_error`). The id is empty only when none could be made.
    pub fn record_usage(
        &self,
        relay_url: Option<&str>,
        key: &Key,
        meter: &str,
        units: f64,
        id: Option<&str>,
    ) -> (String, Result<crate::usage::UsageAnswer, Error>) {
        let relay_url = relay_url.or(self.known_relay());
        match BlockingClient::usage_report(key, meter, units, id) {
            Ok(report) => {
                // Signed mode (relay keys set): the answer only from the relay's signed
                // acknowledgement (issue #76).
                let answer = if self.relay_keys.is_empty() {
                    self.client.send_usage_via(relay_url, &report)
                } else {
                    self.client
                        .send_usage_signed(relay_url, &report, &self.relay_keys)
                };
                (report.id, answer)
            }
            Err(e) => (String::new(), Err(e)),
        }
    }

    /// Sends this install's analytics ping (issue #80, [`crate::analytics`]) to the seller's
    /// relay at `relay_url`, as the app at `app_version`: `Ok(false)` and nothing sent while
    /// [`LicensingBuilder::install_analytics`] is off (the default); `Ok(true)` once the relay
    /// took it. Call it at each start: the relay keeps one event per install per day, so more
    /// pings cost the seller nothing. A failure (offline, a refused field) is for the log
    /// only: never tell the user.
    pub fn report_install(&self, relay_url: &str, app_version: &str) -> Result<bool, Error> {
        self.report_install_as(relay_url, app_version, "rust")
    }

    /// [`Licensing::report_install`] naming the face (`cli`, `c`, `python`, `tauri`: each face
    /// passes its own).
    #[doc(hidden)]
    pub fn report_install_as(
        &self,
        relay_url: &str,
        app_version: &str,
        face: &str,
    ) -> Result<bool, Error> {
        if !self.install_analytics {
            return Ok(false);
        }
        let secret = self.store.install_secret()?;
        let install = crate::analytics::install_id(&secret, self.org());
        let ping = crate::analytics::InstallPing::here(install, app_version, face);
        let request = ping.request(self.org(), relay_url)?;
        let answer = self.client.send_portal(Ok(request)).map_err(|e| match e {
            crate::portal::PortalError::Offline(e) | crate::portal::PortalError::Invalid(e) => e,
            other => Error::protocol(None, other.to_string()),
        })?;
        match answer.status {
            200..=299 => Ok(true),
            status => Err(Error::protocol(
                Some(status),
                "the relay did not take the install analytics ping",
            )),
        }
    }

    /// The devices of `key` by the way the app has (issue #64): through the customer
    /// `session` when there is one ([`Licensing::list_devices`]), else through the seller's
    /// relay at `relay_url`, else the relay this licensing knows (the builder's
    /// [`LicensingBuilder::relay_url`], else signed mode's base URL, as npm's devices module
    /// picks: [`crate::portal::known_relay`]) ([`Licensing::list_devices_via_relay`]), else
    /// [`crate::portal::PortalError::NotSignedIn`] (sign in first). The one rule every face
    /// takes for "which way", written once.
    pub fn list_devices_any(
        &self,
        session: Option<&crate::portal::SessionToken>,
        relay_url: Option<&str>,
        key: impl Into<Key>,
    ) -> Result<crate::portal::KeyDevices, crate::portal::PortalError> {
        match (session, relay_url.or(self.known_relay())) {
            (Some(session), _) => self.list_devices(session, key),
            (None, Some(relay)) => self.list_devices_via_relay(relay, key),
            (None, None) => Err(crate::portal::PortalError::NotSignedIn),
        }
    }

    /// Key recovery ("I lost my key", issue #64 item 3): the signed-in customer's keys this
    /// machine can activate, granted and unexpired by this licensing's clock, newest first
    /// ([`crate::portal::recoverable_keys`]). Show them by `display_key` and `id`; the whole
    /// key goes only into [`Licensing::recover_key`].
    pub fn recoverable_keys(
        &self,
        session: &crate::portal::SessionToken,
    ) -> Result<Vec<crate::model::LicenseKeyRead>, crate::portal::PortalError> {
        let keys = self.client.customer_keys(session)?;
        Ok(crate::portal::recoverable_keys(keys, (self.clock)()))
    }

    /// Activates here the recoverable key whose record id is `key_id` (one
    /// [`Licensing::recoverable_keys`] listed), with `label`, as [`Licensing::activate_update`]
    /// does (the key remembered when remembering is on): the whole key never leaves the
    /// library. [`crate::portal::PortalError::NotFound`] when `key_id` is none of them (nothing
    /// activated).
    pub fn recover_key(
        &self,
        session: &crate::portal::SessionToken,
        key_id: &str,
        label: &str,
    ) -> Result<flow::update::Activated, crate::portal::PortalError> {
        let chosen = self
            .recoverable_keys(session)?
            .into_iter()
            .find(|k| k.id.eq_ignore_ascii_case(key_id.trim()))
            .ok_or(crate::portal::PortalError::NotFound)?;
        Ok(self.activate_update(&ActivateRequest::new(chosen.key, label)))
    }

    /// Follows a rotated key (issue #64 item 4): rotation keeps a key's record id, limits and
    /// activations, and Polar answers the old string `404` at once (a check of it is
    /// `not_found`). Through a customer session, the customer's keys are read for the record id
    /// this machine's cache remembers of `old`'s license ([`crate::portal::rotated_key`]); the
    /// new string is validated with the activation `old`'s cache remembers
    /// ([`crate::portal::follow_request`]), and the new string's record remembers that
    /// activation ([`Update::carrying`]), so later checks of the new string validate it: no
    /// slot is taken. Once Polar grants it, `old`'s record is forgotten and, when `old` was the
    /// remembered key, the new string is remembered in its place.
    ///
    /// `Ok((new key, Polar's verdict))`; failures typed: [`PortalError::Invalid`] when nothing
    /// of `old`'s license is cached here (no record id to follow), [`PortalError::NotFound`]
    /// when the customer has no key of that id or it was not rotated, the session's own
    /// failures, and a validate that got no answer (`Offline`, `Protocol`, or the cache that
    /// could not learn the grant, by its reason code).
    ///
    /// [`PortalError::Invalid`]: crate::portal::PortalError::Invalid
    /// [`PortalError::NotFound`]: crate::portal::PortalError::NotFound
    pub fn follow_rotation(
        &self,
        session: &crate::portal::SessionToken,
        old: impl Into<Key>,
    ) -> Result<(Key, Verdict<ValidatedLicenseKey>), crate::portal::PortalError> {
        let old = old.into();
        let now = (self.clock)();
        let slot = self.slot(&old);
        let slots = Box::new(|key: &Key| self.slot(key));
        let ctx = self.ctx();
        let mut follow = Follow::new(&ctx, old.clone(), slot, session.clone(), slots, now);
        self.drive_with(
            &ctx,
            &mut follow,
            &mut Held::default(),
            |_| false,
            |request| self.client.send(request),
        );
        let forgot = follow.forgot();
        let (new, verdict) = follow.answer()?;
        // The remembered key is this shell's own entry: the new string in the old one's place.
        if forgot {
            let of_error = crate::portal::PortalError::of_error;
            let remembered = self.remembered_key().ok().flatten();
            self.forget_remembered(&old).map_err(of_error)?;
            if remembered.is_some_and(|k| k.expose() == old.expose()) {
                self.remember_key(new.clone()).map_err(of_error)?;
            }
        }
        Ok((new, verdict))
    }

    /// This licensing's clock, in unix seconds (the test hooks' clock when one was set).
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Forgets the remembered key if it is `key` (one seal, one read, under the entry's lock:
    /// a key remembered meanwhile stays).
    fn forget_remembered(&self, key: &Key) -> Result<(), Error> {
        let seal = self.key_seal()?;
        let _lock = self.store.lock(&seal.slot)?;
        match self.store.load(&seal.slot)? {
            Some(bytes) if seal.open(&bytes).as_ref() == Ok(key) => self.store.remove(&seal.slot),
            _ => Ok(()),
        }
    }

    /// The remembered key, or the error a check of it answers: none remembered is
    /// `invalid_input` (field `key`).
    pub fn remembered_or_error(&self) -> Result<Key, Error> {
        self.remembered_key()?.ok_or_else(Error::no_remembered_key)
    }

    /// [`Licensing::check`] of the remembered key. With none remembered, `unverified` with
    /// `invalid_input` (field `key`): the app asks the user for a key.
    pub fn check_remembered(&self) -> CheckOutcome {
        self.check_remembered_report().outcome
    }

    /// [`Licensing::check_report`] of the remembered key (see [`Licensing::check_remembered`]).
    /// With none remembered and a local trial stated ([`LicensingBuilder::trial`]): the
    /// trial's answer ([`Licensing::check_trial_report`]).
    pub fn check_remembered_report(&self) -> CheckReport {
        match self.remembered_or_error() {
            Ok(key) => self.check_report(key),
            // No key remembered (not a store that cannot be read): the local trial.
            Err(e) if self.trial.is_some() && e.field() == Some("key") => self.check_trial_report(),
            Err(e) => CheckReport::of(CheckOutcome::Unverified(e)),
        }
    }

    /// The local trial's answer, for an app with no key ([`crate::trial`]): the first call
    /// starts the trial (sealed in the cache), later ones count it down. The outcome is the
    /// one of a check with no key (`invalid_input`, field `key`: ask for a key), or
    /// `clock_rollback` when the clock was set back past the tolerance during the trial; the
    /// report's [`CheckReport::trial`] says whether the trial runs, its end and the days left,
    /// or that it ended, or that its record was refused (edited or copied: never restarted).
    /// No trial stated: `invalid_input`, field `trial`. A store that cannot be read or written
    /// is `cache_error` with no trial (one that cannot be recorded is not given).
    pub fn check_trial_report(&self) -> CheckReport {
        let Some(days) = self.trial else {
            return CheckReport::of(CheckOutcome::Unverified(Error::invalid(
                "trial",
                "no trial was stated (LicensingBuilder::trial)",
            )));
        };
        match self.run_trial(days) {
            Ok(report) => report,
            Err(e) => CheckReport::of(CheckOutcome::Unverified(e)),
        }
    }

    /// The trial's machine ([`crate::trial::LocalTrial`]: its slot's lock, loads and write
    /// are its steps), driven by this shell's one loop.
    fn run_trial(&self, days: crate::trial::TrialDays) -> Result<CheckReport, Error> {
        let seal = self.sealed(crate::trial::TrialSeal::new)?;
        let (app, now) = (self.app_secret.as_deref(), Some((self.clock)()));
        let mut trial = crate::trial::LocalTrial::new(seal, app, days, now, self.policy);
        self.drive_machine(&mut trial, &mut Held::default(), |_| false);
        Ok(trial.report())
    }

    /// [`Licensing::check_remembered`] as a future (see [`Licensing::check_async`]).
    pub fn check_remembered_async(&self) -> Blocking<CheckOutcome> {
        let me = self.clone();
        Blocking::spawn(
            move || me.check_remembered(),
            |e| CheckOutcome::Unverified(unstarted(e)),
        )
    }
}

/// The error of an async call whose thread could not be started.
fn unstarted(e: std::io::Error) -> Error {
    Error::Offline {
        timeout: false,
        detail: format!("could not start a thread for the request: {e}"),
    }
}

/// 16 bytes of the OS's randomness, for signed mode's request nonces ([`flow::Ctx::random`]).
fn random_nonce() -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes)
}
