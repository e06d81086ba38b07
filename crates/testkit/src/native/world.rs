//! The one test world every suite runs in: the emulator (a Polar that goes down and comes back,
//! or answers with a fault), a fake clock, a scratch store directory, the relay rig (a stand-in
//! relay transport in front of the emulator that signs leases, right or wrong on purpose) and
//! the forger (a record re-sealed with the secrets on the machine, as the threat model says
//! anyone can). Built with [`World::new`] and options (`.with_seed(..)`, `.signed()`); the
//! suites add their own helper functions of `&World`, never their own world.

use super::{
    clean_command, cli_against, expect_answer_keys, json_answer, licensing_builder, Launch,
    ScratchDir, Served,
};
use crate::FakeClock;
use polar_license::fingerprint::fingerprint_from;
use polar_license::lease::{self, key_hash, LeaseClaims, RelayKeys, SigningKey, LEASE_HEADER};
use polar_license::store::Store;
use polar_license::testing::{self, Slot};
use polar_license::{
    ActivateRequest, FileStore, HttpRequest, HttpResponse, Key, Licensing, LicensingBuilder,
    MachineBinding, Transport, TransportError, UreqTransport,
};
use polar_license_emulator::{Emulator, Fault, Options, Seed, DEMO_KEY, DEMO_TOKEN};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::leases::{claims, facts, DAY};

/// The app secret of [`World::app`] and of the forger's default (what an app ships).
pub const APP_SECRET: &[u8] = b"the app's own secret";

/// The machine id [`World::app`] binds to (the forger seals for it).
pub const MACHINE: &str = "machine-A";

/// The local Polar: the emulator while it is up; down, its port refuses connections until it
/// comes back on the same port with the same seed (so a cache made against it is the one a
/// client of it reads). Derefs to the running [`Emulator`] (panics while down).
pub struct Polar {
    emulator: Option<Emulator>,
    seed: Seed,
    port: u16,
    url: String,
    organization_id: String,
}

impl Polar {
    fn start(seed: Seed, options: Options) -> Polar {
        let emulator = match Emulator::start(seed.clone(), options) {
            Ok(polar) => polar,
            Err(e) => panic!("emulator: {e}"),
        };
        Polar {
            port: emulator.port(),
            url: emulator.url(),
            organization_id: emulator.organization_id(),
            emulator: Some(emulator),
            seed,
        }
    }

    /// The ids of `key`'s live activations, in the emulator's order (`activations`).
    pub fn activation_ids(&self, key: &str) -> Vec<String> {
        self.activations(key)
            .iter()
            .filter_map(|a| a["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Its URL, up or down.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Its organization, up or down.
    pub fn organization_id(&self) -> String {
        self.organization_id.clone()
    }

    /// The emulator while it is up.
    pub fn running(&self) -> Option<&Emulator> {
        self.emulator.as_ref()
    }

    /// Polar goes down: its port refuses connections.
    pub fn down(&mut self) {
        if let Some(polar) = self.emulator.take() {
            polar.stop();
        }
    }

    /// Polar comes back on the same port, with the seed it started with.
    pub fn up(&mut self) {
        if self.emulator.is_some() {
            return;
        }
        let options = Options {
            port: self.port,
            ..Options::default()
        };
        self.emulator = match Emulator::start(self.seed.clone(), options) {
            Ok(polar) => Some(polar),
            Err(e) => panic!("emulator restarts: {e}"),
        };
    }
}

impl std::ops::Deref for Polar {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        match &self.emulator {
            Some(polar) => polar,
            None => panic!("Polar is down"),
        }
    }
}

/// What the relay rig puts in the lease header of a grant.
#[derive(Clone)]
pub enum Lease {
    /// A lease as the relay signs it, for `days`.
    Honest {
        /// How long it lasts.
        days: i64,
    },
    /// No header.
    Missing,
    /// This text.
    Text(String),
    /// Signed by this other key (under its own kid, or passing as the trusted one).
    OtherKey(Arc<SigningKey>),
    /// Bound to another machine.
    OtherMachine,
    /// For another license key.
    OtherKey2,
    /// Expired an hour ago.
    Expired,
    /// Valid from a day ahead.
    Future,
    /// Two headers, each a good lease.
    Twice,
    /// An honest lease without the request's nonce (a relay older than the claim).
    WithoutNonce,
    /// An honest lease of `days` as a relay older than signed facts (issue #62) signs it: no
    /// `sub_end` claim, and no signed denial.
    Older {
        /// How long it lasts.
        days: i64,
    },
}

/// The relay rig of a [`World::signed`] world: its signing key and what it signs.
pub struct Relay {
    /// The key the relay signs leases with (kid `relay-2026`).
    pub signer: Arc<SigningKey>,
    mode: Arc<Mutex<Lease>>,
}

/// The emulator behind a stand-in relay that adds a lease (as `mode` says) to every grant.
struct StandIn {
    inner: UreqTransport,
    signer: Arc<SigningKey>,
    clock: FakeClock,
    mode: Arc<Mutex<Lease>>,
}

fn signed(signer: &SigningKey, claims: &LeaseClaims, machine: Option<&str>) -> String {
    match signer.sign(claims, machine) {
        Ok(lease) => lease,
        Err(e) => panic!("sign a lease: {e:?}"),
    }
}

impl Transport for StandIn {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let response = self.inner.send(request)?;
        let now = self.clock.now();
        let mode = match self.mode.lock() {
            Ok(mode) => mode.clone(),
            Err(e) => panic!("the relay rig's mode: {e}"),
        };
        let Some(f) = facts(request, &response) else {
            // A denial, signed for its request as the relay signs it (issue #62).
            if let Lease::Honest { days } = mode {
                if let Some((c, machine)) = crate::leases::denial(request, &response, now, days) {
                    let token = match self.signer.sign_denial(&c, machine.as_deref()) {
                        Ok(token) => token,
                        Err(e) => panic!("sign a denial: {e:?}"),
                    };
                    return Ok(response.with_header(lease::DENIAL_HEADER, &token));
                }
            }
            return Ok(response);
        };
        let machine = f.machine.as_deref();
        let sign = |c: &LeaseClaims, m: Option<&str>| signed(&self.signer, c, m);
        let lease = match mode {
            Lease::Honest { days } => Some(sign(&claims(&f, now, days), machine)),
            Lease::Missing => None,
            Lease::Text(text) => Some(text),
            Lease::OtherKey(other) => Some(signed(&other, &claims(&f, now, 7), machine)),
            Lease::OtherMachine => Some(sign(&claims(&f, now, 7), Some("another machine"))),
            Lease::OtherKey2 => {
                let mut c = claims(&f, now, 7);
                c.key_sha256 = key_hash(&Key::new("MYAPP-ANOTHER-KEY"));
                Some(sign(&c, machine))
            }
            Lease::Expired => {
                let mut c = claims(&f, now - 8 * DAY, 7);
                c.expires_at = now - 3600;
                Some(sign(&c, machine))
            }
            Lease::Future => Some(sign(&claims(&f, now + DAY, 7), machine)),
            Lease::Older { days } => {
                let mut c = claims(&f, now, days);
                c.subscription_ends_at = None;
                Some(sign(&c, machine))
            }
            Lease::WithoutNonce => {
                let mut c = claims(&f, now, 7);
                c.nonce = None;
                Some(sign(&c, machine))
            }
            Lease::Twice => {
                let good = sign(&claims(&f, now, 7), machine);
                return Ok(response
                    .with_header(LEASE_HEADER, &good)
                    .with_header(LEASE_HEADER, &good));
            }
        };
        Ok(match lease {
            Some(lease) => response.with_header(LEASE_HEADER, &lease),
            None => response,
        })
    }
}

/// Where a forged record is: its cache directory, the base URL and organization it was made
/// against, the key, the machine seal it is bound to and the app's secret, all of which an
/// attacker on the machine can read.
pub struct Forgery<'a> {
    /// The cache directory.
    pub dir: &'a Path,
    /// The base URL the record was made against.
    pub base_url: &'a str,
    /// The organization.
    pub organization_id: &'a str,
    /// The license key.
    pub key: &'a str,
    /// The machine seal (`fingerprint_from` or `machine_fingerprint`), when bound.
    pub seal: Option<&'a str>,
    /// The app's secret, when it has one.
    pub app_secret: Option<&'a [u8]>,
}

/// What the threat model says an attacker can do: read the install secret beside the cache
/// and the app secret out of the app, and re-seal the record with this crate's own code,
/// after `edit`. Panics when there is no trusted record to start from.
pub fn forge(at: &Forgery<'_>, edit: impl FnOnce(&mut polar_license::Record)) {
    let key = Key::new(at.key);
    let secret = match FileStore::new(at.dir).install_secret() {
        Ok(secret) => secret,
        Err(e) => panic!("the install secret: {e:?}"),
    };
    let slot = Slot::new(
        at.base_url,
        at.organization_id,
        &key,
        &secret,
        at.seal,
        at.app_secret,
    );
    let whose = (at.organization_id, &key);
    if let Err(e) = testing::forge_in(&FileStore::new(at.dir), &slot, whose, edit) {
        panic!("a trusted record to forge from: {e}")
    }
}

/// What a test runs against: the emulator (the demo seed unless told otherwise) over
/// loopback, a scratch cache directory, a fake clock the test moves and, in a
/// [`World::signed`] world, the relay rig. The suites add their own helper functions.
pub struct World {
    /// The local Polar.
    pub polar: Polar,
    /// The relay as a process, in a [`World::with_relay_process`] world (declared before the
    /// directory its key is in, so it ends first).
    pub relay_process: Option<RelayProcess>,
    /// The cache directory.
    pub dir: ScratchDir,
    /// The clock every client built by [`World::builder`] reads.
    pub clock: crate::FakeClock,
    /// The relay rig, in a [`World::signed`] world.
    pub relay: Option<Relay>,
    /// Environment variables set on every command [`World::cli`] makes.
    pub env: Vec<(&'static str, &'static str)>,
}

/// `polar-license relay serve` as a process in front of the world's Polar, with a key made by
/// `polar-license relay keygen` (kid `relay-1`) in the world's directory.
pub struct RelayProcess {
    /// The process and its URL.
    pub served: Served,
    /// `KID=k4.public.…`, as keygen printed it.
    pub pair: String,
}

impl World {
    /// A new world with the demo seed; `label` names its scratch directory.
    pub fn new(label: &str) -> World {
        World::with_seed(label, Seed::demo())
    }

    /// A new world whose demo key expires `seconds` from now (the host's clock, whole seconds:
    /// Polar's RFC 3339 times have none smaller), and that expiry (unix seconds).
    pub fn with_key_expiring(label: &str, seconds: i64) -> (World, i64) {
        let world = World::new(label);
        let expires = crate::unix_now() + seconds;
        world.expire_at(expires);
        (world, expires)
    }

    /// A new world whose Polar starts with `seed`.
    pub fn with_seed(label: &str, seed: Seed) -> World {
        World {
            polar: Polar::start(seed, Options::default()),
            dir: ScratchDir::new(label),
            clock: crate::FakeClock::default(),
            relay: None,
            env: Vec::new(),
            relay_process: None,
        }
    }

    /// With the relay rig: a signing key (kid `relay-2026`) and honest 3-day leases until
    /// [`World::set_lease`] says otherwise.
    pub fn signed(mut self) -> World {
        let signer = match SigningKey::generate(Some("relay-2026")) {
            Ok(key) => key,
            Err(e) => panic!("a signing key: {e:?}"),
        };
        self.relay = Some(Relay {
            signer: Arc::new(signer),
            mode: Arc::new(Mutex::new(Lease::Honest { days: 3 })),
        });
        self
    }

    /// With the relay as a process: `program` (the `polar-license` binary) makes a signing
    /// key and serves the relay in front of this world's Polar (with `POLAR_ACCESS_TOKEN` the
    /// emulator's demo token), signing leases for `lease_days`.
    pub fn with_relay_process(mut self, program: &str, lease_days: &str) -> World {
        let key_file = self.dir.join("relay.key");
        let Some(key_path) = key_file.to_str().map(str::to_string) else {
            panic!("not a UTF-8 path: {}", key_file.display())
        };
        let out = clean_command(program)
            .args(["relay", "keygen", "--out", &key_path, "--kid", "relay-1"])
            .launch();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let pair = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let served = Served::start(
            clean_command(program)
                .args(["--base-url", &self.polar.url(), "relay", "serve"])
                .args(["--signing-key", &key_path, "--port", "0"])
                .args(["--lease-days", lease_days])
                .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN),
        );
        self.relay_process = Some(RelayProcess { served, pair });
        self
    }

    /// The relay process of a [`World::with_relay_process`] world.
    pub fn relay_process(&self) -> &RelayProcess {
        match &self.relay_process {
            Some(relay) => relay,
            None => panic!("no relay process (World::with_relay_process)"),
        }
    }

    fn relay(&self) -> &Relay {
        match &self.relay {
            Some(relay) => relay,
            None => panic!("not a signed world (World::signed)"),
        }
    }

    /// A builder against this world's Polar (up or down), its cache in `dir`, bound to
    /// `machine`, with a 2 s timeout and the world's clock.
    pub fn builder(&self, dir: &Path, machine: &str) -> LicensingBuilder {
        Licensing::builder(self.polar.organization_id())
            .base_url(self.polar.url())
            .cache_dir(dir)
            .machine_binding(MachineBinding::Id(machine.to_string()))
            .timeout(Duration::from_secs(2))
            .clock(self.clock.reader())
    }

    /// [`licensing_builder`] for this world's cache and `machine`, with the world's clock (no
    /// timeout set).
    pub fn licensing_builder(&self, machine: MachineBinding) -> LicensingBuilder {
        licensing_builder(&self.polar, &self.dir, machine).clock(self.clock.reader())
    }

    /// The signed world's public key pair, as relay keys.
    pub fn relay_keys(&self) -> RelayKeys {
        match RelayKeys::parse(&self.relay().signer.public_pair()) {
            Ok(keys) => keys,
            Err(e) => panic!("the relay keys: {e:?}"),
        }
    }

    /// The app: through the relay rig, bound to [`MACHINE`], with [`APP_SECRET`], a 5 s
    /// timeout and the world's clock, in signed mode when `keys` is not empty.
    pub fn app(&self, keys: RelayKeys) -> Licensing {
        let built = licensing_builder(&self.polar, &self.dir, MachineBinding::Id(MACHINE.into()))
            .timeout(Duration::from_secs(5))
            .clock(self.clock.reader())
            .app_secret(APP_SECRET.to_vec())
            .relay_keys(keys)
            .build_with_transport(self.relay_transport());
        match built {
            Ok(app) => app,
            Err(e) => panic!("the app builds: {e:?}"),
        }
    }

    /// The relay rig as a transport: the emulator behind a stand-in relay that adds a lease to
    /// every grant, as [`World::set_lease`] says.
    pub fn relay_transport(&self) -> impl Transport + 'static {
        let relay = self.relay();
        StandIn {
            inner: UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1 << 20),
            signer: Arc::clone(&relay.signer),
            clock: self.clock.clone(),
            mode: Arc::clone(&relay.mode),
        }
    }

    /// The relay rig's signing key.
    pub fn signer(&self) -> &SigningKey {
        &self.relay().signer
    }

    /// A plain client through the relay rig (the online machine of an air-gapped activation).
    pub fn online_client(&self) -> polar_license::BlockingClient {
        let built = polar_license::BlockingClient::builder(self.polar.organization_id())
            .base_url(self.polar.url())
            .build_with_transport(self.relay_transport());
        match built {
            Ok(client) => client,
            Err(e) => panic!("the client builds: {e:?}"),
        }
    }

    /// An offline machine's app: bound to `machine`, its cache in `dir`, the world's clock, no
    /// network at all.
    pub fn offline_app(&self, machine: &str, dir: &Path, keys: RelayKeys) -> Licensing {
        let unreachable = |_: &HttpRequest| -> Result<HttpResponse, TransportError> {
            Err(TransportError::new(
                polar_license::TransportErrorKind::Connect,
                "no network on this machine",
            ))
        };
        let built = licensing_builder(&self.polar, dir, MachineBinding::Id(machine.into()))
            .clock(self.clock.reader())
            .relay_keys(keys)
            .build_with_transport(unreachable);
        match built {
            Ok(app) => app,
            Err(e) => panic!("the offline app builds: {e:?}"),
        }
    }

    /// What the relay rig signs from now on.
    pub fn set_lease(&self, lease: Lease) {
        match self.relay().mode.lock() {
            Ok(mut mode) => *mode = lease,
            Err(e) => panic!("the relay rig's mode: {e}"),
        }
    }

    /// Re-seals the record of [`World::app`] (the demo key) after `edit`: see [`forge`].
    pub fn forge(&self, edit: impl FnOnce(&mut polar_license::Record)) {
        let org = self.polar.organization_id();
        let seal = fingerprint_from(MACHINE, &org);
        forge(
            &Forgery {
                dir: self.dir.path(),
                base_url: &self.polar.url(),
                organization_id: &org,
                key: DEMO_KEY,
                seal: Some(&seal),
                app_secret: Some(APP_SECRET),
            },
            edit,
        );
    }

    /// Activates the demo key with `app` (label `laptop`); the activation's id.
    pub fn activate(&self, app: &Licensing) -> String {
        match app.activate(&ActivateRequest::new(DEMO_KEY, "laptop")) {
            Ok(v) => match v.accepted() {
                Some(a) => a.activation.id.clone(),
                None => panic!("not activated: {v:?}"),
            },
            Err(e) => panic!("activate answers: {e:?}"),
        }
    }

    /// Sets the clock to `at`.
    pub fn set_clock(&self, at: i64) {
        self.clock.set(at);
    }

    /// Moves the clock by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.clock.advance(seconds);
    }

    /// Requests the emulator received since the last call (none while it is down).
    pub fn requests(&self) -> u64 {
        self.polar.running().map_or(0, super::take_requests)
    }

    /// Polar answers every request with `fault` (`None`: healthily again).
    pub fn fault(&self, fault: Option<Fault>) {
        self.polar.set_fault(fault);
    }

    /// Polar closes every connection without answering.
    pub fn offline(&self) {
        self.fault(Some(Fault::CloseImmediately));
    }

    /// Polar answers again.
    pub fn online(&self) {
        self.fault(None);
    }

    /// Polar goes down: its port refuses connections.
    pub fn down(&mut self) {
        self.polar.down();
    }

    /// Polar comes back on the same port.
    pub fn up(&mut self) {
        self.polar.up();
    }

    /// Polar revokes the demo key (panics if Polar has no such key).
    pub fn revoke(&self) {
        crate::seller_rows::revoke(&self.polar);
    }

    /// Polar's demo key expires at `at` (unix seconds).
    pub fn expire_at(&self, at: i64) {
        crate::seller_rows::expire_at(&self.polar, at);
    }

    /// The cache files (`*.cache`) in the world's directory.
    pub fn cache_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "cache"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The record file in the world's directory (not its ledger `…-seq.cache` nor its clock
    /// note `…-clock.cache`).
    pub fn record_file(&self) -> PathBuf {
        let found = self.cache_files().into_iter().find(|p| {
            !p.to_string_lossy().ends_with("-seq.cache")
                && !p.to_string_lossy().ends_with("-clock.cache")
        });
        match found {
            Some(path) => path,
            None => panic!("a record file in {}", self.dir.display()),
        }
    }

    /// The record's ledger file (`…-seq.cache`) in the world's directory.
    pub fn ledger_file(&self) -> PathBuf {
        let found = self
            .cache_files()
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with("-seq.cache"));
        match found {
            Some(path) => path,
            None => panic!("a ledger file in {}", self.dir.display()),
        }
    }

    /// The path `name` in the world's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The `polar-license` binary `program` against this world's Polar (up or down), its
    /// cache in `cache`, the clock moved by `offset` seconds (Polar's too while it is up, so
    /// that its `Date` agrees with the client's clock): [`cli_against`] with
    /// `POLAR_LICENSE_CLOCK_OFFSET` and the world's [`World::env`].
    pub fn cli(&self, program: impl AsRef<std::ffi::OsStr>, cache: &Path, offset: i64) -> Command {
        if let Some(polar) = self.polar.running() {
            polar.set_clock_offset(offset);
        }
        let mut cmd = cli_against(
            program,
            &self.polar.url(),
            &self.polar.organization_id(),
            cache,
        );
        cmd.env("POLAR_LICENSE_CLOCK_OFFSET", offset.to_string())
            .envs(self.env.iter().copied());
        cmd
    }

    /// `program --json ARGS…` ([`World::cli`], its cache in the world's directory) at clock
    /// offset `offset`: the exit code and the answer, which must have every key an
    /// operation's answer promises ([`expect_answer_keys`]).
    pub fn cli_json(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        offset: i64,
        args: &[&str],
    ) -> (i32, serde_json::Value) {
        let mut cmd = self.cli(program, &self.dir, offset);
        cmd.arg("--json").args(args);
        let (code, v) = json_answer(&cmd.launch());
        expect_answer_keys(&v);
        (code, v)
    }
}
