//! What the workspace's test suites share (a dev-dependency of the root crate, the command
//! line, the C crate and, on wasm32, the npm engine; never published): the one test `World`
//! (the emulator, a Polar that goes down and comes back, a fake clock, a scratch store, the
//! relay rig, the forger; native only, no suite defines its own), scratch directories, a fake
//! clock, a `Licensing` builder against the emulator, the feature-gating seed and map,
//! docs/polar-api.md §6.2's validate answer, the `polar-license` binary with the host's
//! settings cleared (and its `emulator` command as a process), a CONNECT proxy on loopback,
//! the recording proxy of issue #53 that replays or holds a relay's answer ([`Tape`]),
//! an HTTP answer read whole with the agent the suites share (`http`), log records captured
//! in memory ([`logs`]), and a seeded generator of mutated answers ([`answers`]); on wasm32,
//! the emulators over `fetch` (the `fetch` module, built for wasm32 only).
//!
//! Everything that needs the host (files, processes, sockets, the emulator) is native only
//! (`native.rs`, re-exported here); the rest also builds for wasm32, where the npm engine's
//! tests hold it to the native faces.

use polar_license::grace::{CheckOutcome, Source};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod answers;
#[cfg(target_arch = "wasm32")]
pub mod fetch;
#[cfg(not(target_arch = "wasm32"))]
pub mod hostile;
#[cfg(not(target_arch = "wasm32"))]
pub mod http;
pub mod leases;
pub mod logs;
#[cfg(not(target_arch = "wasm32"))]
pub mod readings;
pub mod refused;
pub mod seller_rows;
pub mod signed_rows;
#[cfg(not(target_arch = "wasm32"))]
mod tape;
#[cfg(not(target_arch = "wasm32"))]
pub use tape::Tape;
pub mod trials;
pub mod values_rows;

/// A proxy that alters a relay's leases or answers nothing (issue #68).
#[cfg(not(target_arch = "wasm32"))]
pub mod lease_proxy;
#[cfg(not(target_arch = "wasm32"))]
mod native;
/// A proxy or fake relay that forges usage answers (issue #76).
#[cfg(not(target_arch = "wasm32"))]
pub mod usage_forger;
#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

/// The host's clock now, in unix seconds (0 before 1970).
pub fn unix_now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(since.map_or(0, |d| d.as_secs())).unwrap_or(0)
}

/// The unix time `at` as RFC 3339 text, as Polar writes its dates.
pub fn rfc3339(at: i64) -> String {
    let mut text = String::new();
    polar_license::rfc3339::DateTime::from_unix(at).write(&mut text);
    text
}

/// The grace left of an answer licensed from the cache; `None` for any other answer (online,
/// or not licensed) and for a cached one with no grace counted.
pub fn from_cache(outcome: &CheckOutcome) -> Option<Duration> {
    match outcome.source() {
        Some(Source::Cache) => outcome.grace_remaining(),
        _ => None,
    }
}

/// Where a [`FakeClock`] starts unless told otherwise (2026-09-21T14:13:20Z, in unix seconds).
pub const START: i64 = 1_790_000_000;

/// A clock the test moves by hand (unix seconds), shared with the clients it is given to:
/// time passes with [`FakeClock::advance`], never with sleeps.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    /// A clock that reads `at` until moved.
    pub fn new(at: i64) -> FakeClock {
        FakeClock(Arc::new(AtomicI64::new(at)))
    }

    /// What it reads now.
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Sets it to `at` (forward or back).
    pub fn set(&self, at: i64) {
        self.0.store(at, Ordering::SeqCst);
    }

    /// Moves it by `seconds` (negative: back).
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    /// A reader of this clock, for `LicensingBuilder::clock`.
    pub fn reader(&self) -> impl Fn() -> i64 + Send + Sync + 'static {
        let clock = Arc::clone(&self.0);
        move || clock.load(Ordering::SeqCst)
    }
}

impl Default for FakeClock {
    /// A clock at [`START`].
    fn default() -> FakeClock {
        FakeClock::new(START)
    }
}

/// docs/polar-api.md §6.2's validate answer (tests/core_protocol.rs and
/// tests/schema_agreement.rs): a full customer with `tax_id`, the deprecated `user`, an unknown
/// field, an activation with its `meta`.
pub const LICENSE_6_2: &str = r#"{
  "id": "f7d9ba8a-dd63-4db8-bb8b-015006335825",
  "created_at": "2026-08-01T10:15:30.412907Z",
  "modified_at": "2026-08-20T07:02:11Z",
  "organization_id": "d2fcbff8-108b-411e-bf2b-6383e0a8802d",
  "user_id": "854fa59b-860f-4262-a6ac-ae0388a7f579",
  "customer_id": "854fa59b-860f-4262-a6ac-ae0388a7f579",
  "user": {"id": "854fa59b-860f-4262-a6ac-ae0388a7f579", "email": "jane.doe@gmail.com", "public_name": "J", "avatar_url": null},
  "customer": {
    "id": "854fa59b-860f-4262-a6ac-ae0388a7f579",
    "created_at": "2026-08-01T10:14:58.120004Z",
    "modified_at": "2026-08-01T10:15:29.977121Z",
    "metadata": {},
    "external_id": null,
    "email": "jane.doe@gmail.com",
    "email_verified": true,
    "type": "individual",
    "name": "Jane Doe",
    "billing_name": "Jane Doe",
    "billing_address": {"line1": null, "line2": null, "postal_code": null, "city": null, "state": null, "country": "FR"},
    "tax_id": ["FR61954506077", "eu_vat"],
    "locale": null,
    "organization_id": "d2fcbff8-108b-411e-bf2b-6383e0a8802d",
    "default_payment_method_id": null,
    "deleted_at": null,
    "first_user_event_at": null,
    "avatar_url": null,
    "some_future_field": [1, 2, 3]
  },
  "benefit_id": "45f87221-45ae-4f65-8dbd-073318bc6372",
  "key": "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415",
  "display_key": "****-6ED415",
  "status": "granted",
  "limit_activations": 3,
  "usage": 8,
  "limit_usage": 100,
  "validations": 42,
  "last_validated_at": "2026-08-22T09:30:12.551023Z",
  "expires_at": null,
  "activation": {
    "id": "21bf892b-2e46-4f50-8060-8fdaf02aa482",
    "license_key_id": "f7d9ba8a-dd63-4db8-bb8b-015006335825",
    "label": "Jane's MacBook Pro",
    "meta": {"hostname": "janes-mbp", "os": "macOS 15.5", "cores": 10, "ratio": 1.5, "pro": true},
    "created_at": "2026-08-22T09:20:03.771298Z",
    "modified_at": null
  }
}"#;
