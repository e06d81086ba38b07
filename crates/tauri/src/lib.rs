//! A Tauri 2 plugin that gates an app's features on a [Polar](https://polar.sh) license key,
//! over the `polar-license` crate's [`Licensing`]: one call at start-up,
//!
//! ```no_run
//! // In the app's `main`: `tauri::Builder::default().plugin(…)`, here for any runtime.
//! fn with_licensing<R: tauri::Runtime>(app: tauri::Builder<R>) -> tauri::Builder<R> {
//!     app.plugin(polar_license_tauri::init(
//!         "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10", // your Polar organization id
//!         polar_license_tauri::Options::default(),
//!     ))
//! }
//! ```
//!
//! and the webview gets the commands `check`, `checkInBackground` (with its later
//! `polar-license://checked` event), `activate`, `deactivate`, `validate`, `status`,
//! `rememberedKey`, `forgetKey`, `hasFeature`, `entitlement` (a value the seller's relay signed
//! into the lease, issue #68) and, out of activations (a customer session
//! signed in with the code Polar emails, kept in memory), `requestSignInCode`, `signIn`,
//! `signOut`, `listDevices`, `freeDevice`, `recoverableKeys` and `recoverKey`, floating and CI
//! seats, and `recordUsage` (usage reported to the seller's relay, issue #68) through the guest
//! package `@polar-license/tauri` (the capability `polar-license:default` allows them all). Every
//! answer and error crosses as typed data ([`answers`]): a reason code and its class, a
//! sentence for the user, a hint, the grace's end, the features it unlocks; never a bare
//! string, never the whole key.
//!
//! The offline cache lives in the app's own directory, named by its Tauri identifier
//! (`<data dir>/polar-license/<identifier>`, where `polar-license status --app-id
//! <identifier>` reads it too). No command blocks Tauri's runtime. The app's Rust side reaches
//! the same [`Licensing`] through [`PolarLicenseExt`]. The guide: docs/guides/tauri.md.

pub mod answers;
pub mod buy;
mod commands;
mod seats;
mod usage;

pub use answers::{
    Activated, CustomerChoice, Deactivated, DeviceError, DeviceInfo, DeviceList, EntitlementState,
    FeatureState, Followed, LicenseError, LicenseState, LicenseSummary, MemberInfo, OrderInfo,
    PerpetualState, RecoverError, RecoverableKey, RememberedKey, StatusState, StoppedInfo,
    SubscriptionInfo, TrialInfo, Validated,
};
pub use buy::{Bought, BuyError, PurchaseFailure, PurchaseSignIn};
pub use polar_license::features::Entitlements;
pub use polar_license::perpetual::ReleaseDate;
pub use polar_license::trial::TrialDays;
pub use polar_license::{Licensing, LicensingBuilder};
pub use seats::{SeatEnded, SeatError, SeatInfo, SeatReleased};
pub use usage::{UsageError, UsageRecorded};

use polar_license::portal::SessionToken;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tauri::plugin::{Builder, TauriPlugin};
use tauri::{Manager, Runtime};

/// The plugin's name: commands are `plugin:polar-license|<command>`, permissions
/// `polar-license:<permission>`.
pub const PLUGIN_NAME: &str = "polar-license";

/// The event `check_in_background` emits with the fresh [`LicenseState`] once Polar answered.
pub const CHECKED_EVENT: &str = "polar-license://checked";

/// The event the plugin emits when a held seat's hold ends without a release (issue #76):
/// a [`SeatEnded`], `lost` (its lease ended with no renewal the relay signed: `seat_lost`)
/// or `gone` (the relay freed it, or Polar denied the key).
pub const SEAT_ENDED_EVENT: &str = "polar-license://seat-ended";

/// Every command, as the webview invokes it (build.rs generates a permission for each).
pub const COMMANDS: &[&str] = include!("command_names.rs");

type Configure = Box<dyn FnOnce(LicensingBuilder) -> LicensingBuilder + Send>;

/// What differs from the defaults: Polar itself (production), the cache in the app's own
/// directory, keys remembered on activation, no feature map.
pub struct Options {
    app_id: Option<String>,
    cache_dir: Option<PathBuf>,
    base_url: Option<String>,
    entitlements: Option<Entitlements>,
    remember_keys: bool,
    released: Option<ReleaseDate>,
    trial: Option<TrialDays>,
    trial_benefits: Vec<String>,
    configure: Option<Configure>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            app_id: None,
            cache_dir: None,
            base_url: None,
            entitlements: None,
            remember_keys: true,
            released: None,
            trial: None,
            trial_benefits: Vec::new(),
            configure: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("app_id", &self.app_id)
            .field("cache_dir", &self.cache_dir)
            .field("base_url", &self.base_url)
            .field("entitlements", &self.entitlements)
            .field("remember_keys", &self.remember_keys)
            .field("released", &self.released)
            .field("trial", &self.trial)
            .field("trial_benefits", &self.trial_benefits)
            .field("configure", &self.configure.is_some())
            .finish()
    }
}

impl Options {
    /// The same as `Options::default()`.
    pub fn new() -> Options {
        Options::default()
    }

    /// Names the cache directory `<data dir>/polar-license/<app_id>` (default: the app's
    /// Tauri identifier).
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// Keeps the cache in this directory instead (wins over `app_id`).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Talks to this server instead of Polar (a local emulator while developing).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The app's features and the Polar benefits that grant them: every [`LicenseState`]
    /// lists them, and `hasFeature` answers for them.
    pub fn entitlements(mut self, entitlements: Entitlements) -> Self {
        self.entitlements = Some(entitlements);
        self
    }

    /// Remember the key of a good activation, sealed on this machine, so `check` needs no
    /// key (default: on).
    pub fn remember_keys(mut self, on: bool) -> Self {
        self.remember_keys = on;
        self
    }

    /// Perpetual fallback (docs/perpetual.md): this build was released on `date`. A key whose
    /// paid time ran out keeps licensing it when the date is on or before the day the key was
    /// paid through; every [`LicenseState`] then carries `perpetual` (the date, the
    /// paid-through time, and `fallback: true` when it licenses only because of the date, so
    /// the app can offer the upgrade). A revoked or disabled key never falls back. Unset: no
    /// answer changes.
    pub fn released(mut self, date: ReleaseDate) -> Self {
        self.released = Some(date);
        self
    }

    /// A local trial of `days` (docs/trials.md): while no key is remembered, `check` and
    /// `checkInBackground` start it at their first call (sealed in the cache, a clock set back
    /// refused as `clock_rollback`) and every such answer carries `trial` with its days left;
    /// the answer still asks for a key (`needsKey`). Wiping the app's data restarts it.
    pub fn trial(mut self, days: TrialDays) -> Self {
        self.trial = Some(days);
        self
    }

    /// A benefit whose keys are trials (a trial product): a licensed answer for such a key
    /// carries `trial` with its end. A 2027-01 subscription with status `trialing` is one
    /// without being named.
    pub fn trial_benefit(mut self, benefit_id: impl Into<String>) -> Self {
        self.trial_benefits.push(benefit_id.into());
        self
    }

    /// Anything else of the [`LicensingBuilder`] (grace policy, timeouts, proxy, machine
    /// binding, `require_activation`), applied last.
    pub fn configure(
        mut self,
        configure: impl FnOnce(LicensingBuilder) -> LicensingBuilder + Send + 'static,
    ) -> Self {
        self.configure = Some(Box::new(configure));
        self
    }

    fn build(
        self,
        organization_id: String,
        identifier: &str,
    ) -> Result<Licensing, polar_license::Error> {
        let mut builder = Licensing::builder(organization_id).remember_keys(self.remember_keys);
        builder = match (self.cache_dir, self.app_id) {
            (Some(dir), _) => builder.cache_dir(dir),
            (None, Some(app_id)) => builder.app_id(app_id),
            (None, None) => builder.app_id(identifier),
        };
        if let Some(url) = self.base_url {
            builder = builder.base_url(url);
        }
        if let Some(entitlements) = self.entitlements {
            builder = builder.entitlements(entitlements);
        }
        if let Some(date) = self.released {
            builder = builder.released(date);
        }
        if let Some(days) = self.trial {
            builder = builder.trial(days);
        }
        for id in self.trial_benefits {
            builder = builder.trial_benefit(id);
        }
        if let Some(configure) = self.configure {
            builder = configure(builder);
        }
        builder.build()
    }
}

/// The plugin's state: the app's one [`Licensing`].
#[derive(Debug, Clone)]
pub struct PolarLicense {
    licensing: Licensing,
    /// A local trial was stated ([`Options::trial`]).
    trial: bool,
    /// The customer session `sign_in` got (issue #64): in memory only, never written, never
    /// sent to the webview; `Debug` shows its kind only.
    session: Arc<Mutex<Option<SessionToken>>>,
    /// The seats held through the relay (issue #67), by id, each with the core's heartbeat
    /// thread (`Beating`): in memory only.
    seats: seats::Seats,
}

impl PolarLicense {
    /// The app's [`Licensing`].
    pub fn licensing(&self) -> &Licensing {
        &self.licensing
    }

    /// The customer session signed in, if any.
    pub(crate) fn session(&self) -> Option<SessionToken> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The seats held (issue #67).
    pub(crate) fn seats(&self) -> &seats::Seats {
        &self.seats
    }

    /// Keeps (or, `None`, forgets) the customer session.
    pub(crate) fn set_session(&self, session: Option<SessionToken>) {
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = session;
    }
}

/// The app's [`Licensing`] from its Rust side (`app.polar_license()`), for gating in its own
/// commands. `None` before the plugin's set-up ran.
pub trait PolarLicenseExt<R: Runtime> {
    /// The plugin's [`Licensing`].
    fn polar_license(&self) -> Option<&Licensing>;
}

impl<R: Runtime, T: Manager<R>> PolarLicenseExt<R> for T {
    fn polar_license(&self) -> Option<&Licensing> {
        self.try_state::<PolarLicense>()
            .map(|state| state.inner().licensing())
    }
}

/// The plugin for `tauri::Builder::plugin`: licenses of the Polar organization
/// `organization_id`. Its set-up builds the [`Licensing`]; an organization id or option the
/// library refuses fails the app's start with that error (a mistake of the app, not of the
/// user's license).
pub fn init<R: Runtime>(organization_id: impl Into<String>, options: Options) -> TauriPlugin<R> {
    let organization_id = organization_id.into();
    Builder::new(PLUGIN_NAME)
        .invoke_handler(tauri::generate_handler![
            commands::check,
            commands::check_in_background,
            commands::activate,
            commands::deactivate,
            commands::validate,
            commands::status,
            commands::remembered_key,
            commands::forget_key,
            commands::has_feature,
            commands::entitlement,
            commands::request_sign_in_code,
            commands::sign_in,
            commands::sign_out,
            commands::list_devices,
            commands::free_device,
            commands::recoverable_keys,
            commands::recover_key,
            commands::follow_rotation,
            buy::open_checkout_link,
            buy::open_relay_checkout,
            buy::buy,
            buy::buy_signed_in,
            seats::seat_acquire,
            seats::seat_heartbeat,
            seats::seat_release,
            usage::record_usage,
        ])
        .setup(move |app, _api| {
            let identifier = app.config().identifier.clone();
            let trial = options.trial.is_some();
            let licensing = options.build(organization_id, &identifier)?;
            app.manage(PolarLicense {
                licensing,
                trial,
                session: Arc::default(),
                seats: seats::Seats::default(),
            });
            Ok(())
        })
        .build()
}
