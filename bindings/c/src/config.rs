//! `polar_license_config`: the settings a client is built from.

use super::enums::{polar_license_server, polar_license_status, polar_license_tls_roots};
use super::out;
use super::strings::to_cstring;
use polar_license::error::Error;
use polar_license::features::Entitlements;
use polar_license::grace::GracePolicy;
use polar_license::lease::RelayKeys;
use polar_license::metadata::check_uuid_v4;
use polar_license::proto::{check_base_url, Server};
use std::ffi::{c_char, CString};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The settings a client is built from (opaque). Made by `polar_license_config_new`, changed
/// by the `polar_license_config_set_*` functions, read (never consumed) by
/// `polar_license_client_new`, freed by `polar_license_config_free`.
pub struct polar_license_config {
    pub(crate) organization_id: Option<String>,
    pub(crate) server: Server,
    pub(crate) timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) policy: GracePolicy,
    pub(crate) app_secret: Option<Vec<u8>>,
    pub(crate) machine_binding: bool,
    /// This id instead of the OS's machine id (hashed the same way).
    pub(crate) machine_id: Option<String>,
    /// The seller's relay for the heal at the activation limit (issue #80).
    pub(crate) relay_url: Option<String>,
    /// Where the customer portal is, apart from the base URL (signed mode: Polar, where the
    /// base URL is the relay; `polar_license_config_set_portal_url`).
    pub(crate) portal_url: Option<String>,
    pub(crate) require_activation: bool,
    pub(crate) remember_keys: bool,
    /// Perpetual fallback: this build's release date (`polar_license_config_set_released`).
    pub(crate) released: Option<polar_license::perpetual::ReleaseDate>,
    /// Trials: the local trial's days (`polar_license_config_set_trial`).
    pub(crate) trial: Option<polar_license::trial::TrialDays>,
    /// Trials: the trial benefit ids (`polar_license_config_add_trial_benefit`).
    pub(crate) trial_benefits: Vec<String>,
    pub(crate) clock_offset: i64,
    pub(crate) proxy: polar_license::ProxySetting,
    pub(crate) tls_roots: polar_license::TlsRoots,
    /// The entitlement map from `polar_license_config_set_entitlements_json`, as written.
    entitlements_json: Option<String>,
    /// The features from `polar_license_config_add_feature`, in the order first named.
    features: Vec<(String, FeatureEntry)>,
    /// The relay keys (`KID=k4.public.…`) as written by `polar_license_config_add_relay_key`
    /// and `_set_relay_keys`, refused ones included (so `polar_license_client_new` refuses the
    /// config: signed mode is never silently off).
    relay_keys: Vec<String>,
    /// Seats: how long a hold stays held past its lease's end with no renewal
    /// (`polar_license_config_set_seat_grace_ms`; none by default).
    pub(crate) seat_grace: Duration,
    last_error: Mutex<CString>,
}

/// One feature as the `polar_license_config_*_feature*` calls wrote it: entries are kept even
/// when refused, so that `polar_license_client_new` refuses the map too (a map is never
/// silently smaller than the one written).
#[derive(Debug, Clone, Default)]
struct FeatureEntry {
    benefits: Vec<String>,
    metered: bool,
}

impl polar_license_config {
    fn new() -> Self {
        polar_license_config {
            organization_id: None,
            server: Server::Production,
            timeout: None,
            connect_timeout: None,
            cache_dir: None,
            policy: GracePolicy::default(),
            app_secret: None,
            machine_binding: true,
            machine_id: None,
            relay_url: None,
            portal_url: None,
            require_activation: false,
            remember_keys: false,
            released: None,
            trial: None,
            trial_benefits: Vec::new(),
            clock_offset: 0,
            proxy: polar_license::ProxySetting::default(),
            tls_roots: polar_license::TlsRoots::default(),
            entitlements_json: None,
            features: Vec::new(),
            relay_keys: Vec::new(),
            seat_grace: Duration::ZERO,
            last_error: Mutex::new(CString::default()),
        }
    }

    fn error_slot(&self) -> MutexGuard<'_, CString> {
        self.last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `error` as the last error and returns `status`.
    pub(crate) fn fail(&self, status: polar_license_status, error: &str) -> polar_license_status {
        *self.error_slot() = to_cstring(error);
        status
    }

    /// Clears the last error and returns `POLAR_LICENSE_STATUS_OK`.
    pub(crate) fn ok(&self) -> polar_license_status {
        *self.error_slot() = CString::default();
        polar_license_status::Ok
    }

    /// The entitlement map, checked: the JSON map's features, then the added ones (a feature
    /// named in both is refused as listed twice). The error names the entry at fault.
    pub(crate) fn entitlements(&self) -> Result<Entitlements, Error> {
        let mut map = match &self.entitlements_json {
            Some(json) => Entitlements::from_json(json)?,
            None => Entitlements::new(),
        };
        for (name, entry) in &self.features {
            map = if entry.metered {
                map.grant_metered(name, &entry.benefits)?
            } else {
                map.grant(name, &entry.benefits)?
            };
        }
        Ok(map)
    }

    /// The relay public keys, checked: empty (signed mode off) when none was given. The
    /// error names `relay_keys`.
    pub(crate) fn relay_keys(&self) -> Result<RelayKeys, Error> {
        let mut keys = RelayKeys::new();
        for pair in &self.relay_keys {
            keys.add_pair(pair)?;
        }
        Ok(keys)
    }

    /// The added feature `name`, made empty when first named.
    fn feature_entry(&mut self, name: &str) -> &mut FeatureEntry {
        let at = match self.features.iter().position(|(n, _)| n == name) {
            Some(at) => at,
            None => {
                self.features
                    .push((name.to_string(), FeatureEntry::default()));
                self.features.len() - 1
            }
        };
        &mut self.features[at].1
    }

    /// `OK` for `Ok`, else the error's status with its message recorded.
    fn settle(&self, result: Result<(), Error>) -> polar_license_status {
        match result {
            Ok(()) => self.ok(),
            Err(e) => self.fail(status_of(&e), &e.to_string()),
        }
    }
}

/// The call status for a library error met while building or configuring.
pub(crate) fn status_of(e: &Error) -> polar_license_status {
    match e {
        Error::Cache { .. } => polar_license_status::CacheError,
        _ => polar_license_status::InvalidInput,
    }
}

/// Makes a config with every setting at its default (production server, 10 s timeout, 5 s
/// connect timeout, the platform's cache directory, the grace policy of docs/interfaces.md §4a,
/// machine binding on) and writes it to `*out_config`. The organization must still be set.
#[no_mangle]
pub extern "C" fn polar_license_config_new(
    out_config: *mut *mut polar_license_config,
) -> polar_license_status {
    ffi_boundary! {
        check_out!(out_config);
        out::give(out_config, polar_license_config::new());
        polar_license_status::Ok
    }
}

/// Frees a config. NULL is a no-op. Clients already built from it are not affected.
#[no_mangle]
pub extern "C" fn polar_license_config_free(config: *mut polar_license_config) {
    ffi_boundary! { out::free(config) }
}

/// The message of the last failed call on this config (`""` after a successful one). Valid
/// until the next call with this config, or its free. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_config_last_error(
    config: *const polar_license_config,
) -> *const c_char {
    ffi_boundary! {
        let config = try_ref!(config);
        // The CString's buffer stays put until the slot is replaced by a later call.
        config.error_slot().as_ptr()
    }
}

/// Sets the seller organization's id (a UUID v4). Required.
#[no_mangle]
pub extern "C" fn polar_license_config_set_organization(
    config: *mut polar_license_config,
    organization_id: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let org = arg_str!(config, organization_id, "organization_id");
        let checked = check_uuid_v4("organization_id", org);
        if checked.is_ok() {
            config.organization_id = Some(org.to_string());
        }
        config.settle(checked.map(|_| ()))
    }
}

/// Talks to Polar's production or sandbox server (`POLAR_LICENSE_SERVER_*`), replacing any
/// base URL. An unknown number is `POLAR_LICENSE_STATUS_INVALID_INPUT`.
#[no_mangle]
pub extern "C" fn polar_license_config_set_server(
    config: *mut polar_license_config,
    server: u32,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        if server == polar_license_server::Production as u32 {
            config.server = Server::Production;
        } else if server == polar_license_server::Sandbox as u32 {
            config.server = Server::Sandbox;
        } else {
            return config.fail(
                polar_license_status::InvalidInput,
                &format!("invalid input: server: unknown server number {server}"),
            );
        }
        config.ok()
    }
}

/// How requests reach Polar: through the HTTP(S) proxy `proxy` (`http://host:port` or
/// `https://host:port`, with `user:password@` when needed, percent-encoded), directly with
/// `""` (whatever the environment says), or, with NULL, as the environment says (the default:
/// `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` with `NO_PROXY`, and on Windows the system's proxy
/// setting). A URL that is not a proxy's is `POLAR_LICENSE_STATUS_INVALID_INPUT`; the error
/// never shows its password.
#[no_mangle]
pub extern "C" fn polar_license_config_set_proxy(
    config: *mut polar_license_config,
    proxy: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let setting = if proxy.is_null() {
            polar_license::ProxySetting::Environment
        } else {
            match arg_str!(config, proxy, "proxy") {
                "" => polar_license::ProxySetting::Direct,
                url => polar_license::ProxySetting::Url(url.to_string()),
            }
        };
        let checked = setting.check();
        if checked.is_ok() {
            config.proxy = setting;
        }
        config.settle(checked)
    }
}

/// Which certificates Polar's TLS certificate is checked against
/// (`POLAR_LICENSE_TLS_ROOTS_SYSTEM`, the default, or `_BUNDLED`). An unknown number is
/// `POLAR_LICENSE_STATUS_INVALID_INPUT`.
#[no_mangle]
pub extern "C" fn polar_license_config_set_tls_roots(
    config: *mut polar_license_config,
    roots: u32,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let roots = if roots == polar_license_tls_roots::System as u32 {
            polar_license::TlsRoots::System
        } else if roots == polar_license_tls_roots::Bundled as u32 {
            polar_license::TlsRoots::Bundled
        } else {
            return config.fail(
                polar_license_status::InvalidInput,
                &format!("invalid input: tls_roots: unknown number {roots}"),
            );
        };
        config.tls_roots = roots;
        config.ok()
    }
}

/// Talks to this base URL instead (`https://…`, or `http://` for a loopback host such as the
/// emulator), replacing the server choice.
#[no_mangle]
pub extern "C" fn polar_license_config_set_base_url(
    config: *mut polar_license_config,
    base_url: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let url = arg_str!(config, base_url, "base_url");
        let checked = check_base_url(url);
        if checked.is_ok() {
            config.server = Server::Custom(url.to_string());
        }
        config.settle(checked.map(|_| ()))
    }
}

/// The longest app secret a config takes, in bytes.
const MAX_APP_SECRET: usize = 65_536;

fn millis(
    config: &polar_license_config,
    ms: u64,
    field: &str,
) -> Result<Duration, polar_license_status> {
    if ms == 0 {
        return Err(config.fail(
            polar_license_status::InvalidInput,
            &format!("invalid input: {field}: must be greater than zero"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Sets the whole-request timeout in milliseconds (default 10000; 0 is refused).
#[no_mangle]
pub extern "C" fn polar_license_config_set_timeout_ms(
    config: *mut polar_license_config,
    timeout_ms: u64,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        match millis(config, timeout_ms, "timeout") {
            Ok(d) => {
                config.timeout = Some(d);
                config.ok()
            }
            Err(status) => status,
        }
    }
}

/// Sets the connect timeout (TCP and TLS handshake) in milliseconds (default 5000; 0 is
/// refused).
#[no_mangle]
pub extern "C" fn polar_license_config_set_connect_timeout_ms(
    config: *mut polar_license_config,
    timeout_ms: u64,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        match millis(config, timeout_ms, "connect_timeout") {
            Ok(d) => {
                config.connect_timeout = Some(d);
                config.ok()
            }
            Err(status) => status,
        }
    }
}

/// Keeps the offline cache in this directory (UTF-8 path; created when first written).
/// Default: the platform's local data directory plus `polar-license` (the command line's).
#[no_mangle]
pub extern "C" fn polar_license_config_set_cache_dir(
    config: *mut polar_license_config,
    cache_dir: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let dir = arg_str!(config, cache_dir, "cache_dir");
        if dir.is_empty() {
            return config.fail(
                polar_license_status::InvalidInput,
                "invalid input: cache_dir: must not be empty",
            );
        }
        config.cache_dir = Some(PathBuf::from(dir));
        config.ok()
    }
}

/// Sets the grace policy, in seconds (docs/interfaces.md §4a defaults: 3600, 604800, 600).
/// `grace_period_seconds` must be above zero, and the other two must not exceed it.
#[no_mangle]
pub extern "C" fn polar_license_config_set_grace_policy(
    config: *mut polar_license_config,
    revalidate_after_seconds: u64,
    grace_period_seconds: u64,
    clock_tolerance_seconds: u64,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let policy = GracePolicy {
            revalidate_after: Duration::from_secs(revalidate_after_seconds),
            grace_period: Duration::from_secs(grace_period_seconds),
            clock_tolerance: Duration::from_secs(clock_tolerance_seconds),
        };
        let checked = policy.validate();
        if checked.is_ok() {
            config.policy = policy;
        }
        config.settle(checked)
    }
}

/// Mixes a secret of the app's into the cache's seal (`secret_len` bytes are copied; any
/// bytes, at most 65536: a longer length is refused with `POLAR_LICENSE_STATUS_INVALID_INPUT`
/// before anything is read). Every program that reads the same cache must use the same secret
/// (the command line's `--app-secret` gives the bytes of its text).
#[no_mangle]
pub extern "C" fn polar_license_config_set_app_secret(
    config: *mut polar_license_config,
    secret: *const u8,
    secret_len: usize,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        if secret.is_null() {
            return config.fail(polar_license_status::NullArgument, "secret is NULL");
        }
        // A length past any secret's (a `(size_t)-1` by mistake) is refused unread.
        if secret_len > MAX_APP_SECRET {
            return config.fail(
                polar_license_status::InvalidInput,
                "invalid input: app_secret: at most 65536 bytes",
            );
        }
        // SAFETY: `secret` is not NULL and, per the contract, points to `secret_len`
        // readable bytes for the duration of the call; they are copied.
        let bytes = unsafe { std::slice::from_raw_parts(secret, secret_len) };
        config.app_secret = Some(bytes.to_vec());
        config.ok()
    }
}

/// Turns machine binding on (the default: activations carry a hash of the OS machine id as
/// the `machine_fingerprint` condition, so a copied cache or activation fails elsewhere) or
/// off.
#[no_mangle]
pub extern "C" fn polar_license_config_set_machine_binding(
    config: *mut polar_license_config,
    enabled: bool,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        config.machine_binding = enabled;
        config.ok()
    }
}

/// Binds activations to this id instead of the OS machine id (hashed with the organization
/// the same way: never sent as it is): for an app with its own notion of a machine, and for
/// tests that play several machines on one. Binding stays on (a later
/// `polar_license_config_set_machine_binding(config, false)` turns it off).
#[no_mangle]
pub extern "C" fn polar_license_config_set_machine_id(
    config: *mut polar_license_config,
    machine_id: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let id = arg_str!(config, machine_id, "machine_id");
        let checked = if id.trim().is_empty() {
            Err(polar_license::Error::invalid("machine_id", "is empty"))
        } else {
            config.machine_id = Some(id.to_string());
            Ok(())
        };
        config.settle(checked)
    }
}

/// The seller's relay (its URL: `https://…`, or `http://` on loopback): at the activation
/// limit, `polar_license_client_activate` lists the key's devices through it and, when one is
/// this machine's own (a reinstall), uses that activation instead of taking another (issue
/// #80). Without it the client's session is used, when it holds one; signed mode needs none
/// (its base URL is the relay).
#[no_mangle]
pub extern "C" fn polar_license_config_set_relay_url(
    config: *mut polar_license_config,
    relay_url: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let url = arg_str!(config, relay_url, "relay_url");
        let checked = Server::Custom(url.to_string()).base_url_of("relay_url");
        if checked.is_ok() {
            config.relay_url = Some(url.to_string());
        }
        config.settle(checked.map(|_| ()))
    }
}

/// Asks the customer portal (the sign-in, devices through the session, the customer's keys,
/// key rotation) at this base URL instead of the base URL's (`https://…`, or `http://` for a
/// loopback host). In signed mode the base URL is the seller's relay, which serves no customer
/// portal: set this to Polar's (`https://api.polar.sh`, or the emulator while developing).
#[no_mangle]
pub extern "C" fn polar_license_config_set_portal_url(
    config: *mut polar_license_config,
    portal_url: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let url = arg_str!(config, portal_url, "portal_url");
        let checked = Server::Custom(url.to_string()).base_url_of("portal_url");
        if checked.is_ok() {
            config.portal_url = Some(url.to_string());
        }
        config.settle(checked.map(|_| ()))
    }
}

/// Makes `polar_license_client_check` refuse, with `POLAR_LICENSE_REASON_INVALID_INPUT`
/// (field `activation_id`) and no request, when the cache remembers no activation for the key
/// (never activated here, deactivated, or the cache was deleted). Off by default: Polar
/// validates a bare key even when it has activation slots, so an app that licenses one
/// activation per machine turns this on and activates when the check names `activation_id`.
#[no_mangle]
pub extern "C" fn polar_license_config_set_require_activation(
    config: *mut polar_license_config,
    required: bool,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        config.require_activation = required;
        config.ok()
    }
}

/// Perpetual fallback: this build was released on `date` (`YYYY-MM-DD`, UTC). A key whose paid
/// time ran out (Polar's "License key has expired.", a cached `expires_at` passed while Polar
/// cannot be asked, within the grace rules, or a cancelled subscription's end) still licenses a
/// build released on or before the date it was paid through: the check's result is
/// `POLAR_LICENSE_OUTCOME_LICENSED` with `polar_license_result_fallback` true and
/// `polar_license_result_paid_through` the date, so the app can offer the upgrade. A revoked
/// or disabled key never does. NULL or `""` clears it (the default: every answer exactly as
/// without it). A date that is no date is `POLAR_LICENSE_STATUS_INVALID_INPUT` (field
/// `released`), and the setting is left as it was.
#[no_mangle]
pub extern "C" fn polar_license_config_set_released(
    config: *mut polar_license_config,
    date: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        if date.is_null() {
            config.released = None;
            return config.ok();
        }
        let text = arg_str!(config, date, "date");
        if text.is_empty() {
            config.released = None;
            return config.ok();
        }
        match polar_license::perpetual::ReleaseDate::parse(text) {
            Ok(day) => {
                config.released = Some(day);
                config.ok()
            }
            Err(e) => config.fail(polar_license_status::InvalidInput, &e.to_string()),
        }
    }
}

/// Trials: a local trial of `days` days while the app has no key. The first
/// `polar_license_client_check_trial` (or `polar_license_client_check_remembered` with no key
/// remembered) starts it, sealed in the cache; every such check then tells it
/// (`polar_license_result_trial`, `_trial_days_left`, `_trial_ends_at`). A clock set back past
/// the tolerance during it is `POLAR_LICENSE_REASON_CLOCK_ROLLBACK`; an edited or copied trial
/// record is refused (never restarted). Wiping the cache directory restarts it. With it set, a
/// key from a trial product (a 2027-01 `trialing` subscription) is reported as a trial too.
/// `0` clears it (the default); more than 3650 is `POLAR_LICENSE_STATUS_INVALID_INPUT` (field
/// `trial`), and the setting is left as it was.
#[no_mangle]
pub extern "C" fn polar_license_config_set_trial(
    config: *mut polar_license_config,
    days: u32,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        if days == 0 {
            config.trial = None;
            return config.ok();
        }
        match polar_license::trial::TrialDays::new(days) {
            Ok(days) => {
                config.trial = Some(days);
                config.ok()
            }
            Err(e) => config.fail(polar_license_status::InvalidInput, &e.to_string()),
        }
    }
}

/// Trials: a key whose benefit is `benefit_id` (a seller's trial product) is reported as a
/// trial with its end (`polar_license_result_trial`), as is a 2027-01 `trialing` subscription.
/// Call once per benefit.
#[no_mangle]
pub extern "C" fn polar_license_config_add_trial_benefit(
    config: *mut polar_license_config,
    benefit_id: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let id = arg_str!(config, benefit_id, "benefit_id");
        config.trial_benefits.push(id.to_string());
        config.ok()
    }
}

/// Remembers the key of every good `polar_license_client_activate` on this machine, sealed
/// beside the cache records (never in plain text; bytes copied to another install or machine
/// open to nothing), so `polar_license_client_check_remembered` needs no key; a good
/// `polar_license_client_deactivate` of that key forgets it. Off by default
/// (`polar_license_client_remember_key` remembers a key the app chooses either way).
#[no_mangle]
pub extern "C" fn polar_license_config_set_remember_keys(
    config: *mut polar_license_config,
    enabled: bool,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        config.remember_keys = enabled;
        config.ok()
    }
}

/// Floating and CI seats (issue #76): how long, in milliseconds, a seat stays held past the
/// end of its signed lease when no renewal from the relay arrived (the relay out of reach):
/// heartbeats are still tried meanwhile, and the seat is lost (`SEAT_LOST`) at the grace's end
/// instead of the lease's. 0, the default, is none: the seat is lost at the lease's end. The
/// relay itself frees the seat at the lease's end and may give it to another machine at once,
/// so a grace lets this machine run on while another holds the seat: the seller's choice, keep
/// it short (as `seat run --seat-grace` and npm's `graceMs`). Read by
/// `polar_license_client_new`: it applies to every seat the client acquires.
#[no_mangle]
pub extern "C" fn polar_license_config_set_seat_grace_ms(
    config: *mut polar_license_config,
    grace_ms: u64,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        config.seat_grace = Duration::from_millis(grace_ms);
        config.ok()
    }
}

/// FOR TESTS ONLY: adds `offset_seconds` (may be negative) to the system clock for every
/// cache decision, to age a cache or simulate a clock set back without waiting. The same hook
/// as the command line's `POLAR_LICENSE_CLOCK_OFFSET`; it weakens nothing (anyone can move the
/// real clock, and moving it back past the tolerance is `clock_rollback`). Default 0.
#[no_mangle]
pub extern "C" fn polar_license_config_set_clock_offset_for_testing(
    config: *mut polar_license_config,
    offset_seconds: i64,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        config.clock_offset = offset_seconds;
        config.ok()
    }
}

/// Adds `benefit_id` (a UUID v4) to the benefits that grant `feature` (1-64 characters, no
/// spaces at either end) in the client's entitlement map: call it once per benefit, since a
/// feature can come from several tiers and a tier can grant several features. The entry is
/// checked at once (`INVALID_INPUT`, the last error naming it as `entitlements.<feature>`), and
/// kept even when refused, so that `polar_license_client_new` refuses the config as well.
/// `polar_license_client_has_feature` answers from the map.
#[no_mangle]
pub extern "C" fn polar_license_config_add_feature(
    config: *mut polar_license_config,
    feature: *const c_char,
    benefit_id: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let name = arg_str!(config, feature, "feature");
        let id = arg_str!(config, benefit_id, "benefit_id");
        let entry = config.feature_entry(name);
        entry.benefits.push(id.to_string());
        let checked = Entitlements::new().grant(name, &entry.benefits).map(|_| ());
        config.settle(checked)
    }
}

/// Marks `feature` (one added with `polar_license_config_add_feature`, before or after this
/// call) as metered, or not (the default): a metered feature is granted only while the key's
/// `usage` is below its `limit_usage` (always, when the key has no limit), and its access
/// carries the usages left. Naming a feature that never gets a benefit makes
/// `polar_license_client_new` refuse the config.
#[no_mangle]
pub extern "C" fn polar_license_config_set_feature_metered(
    config: *mut polar_license_config,
    feature: *const c_char,
    metered: bool,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let name = arg_str!(config, feature, "feature");
        config.feature_entry(name).metered = metered;
        config.ok()
    }
}

/// Sets the entitlement map from JSON, replacing any earlier JSON map (features added with
/// `polar_license_config_add_feature` are kept, and may not repeat a feature of the JSON map):
/// `{"pro_export": ["<benefit uuid>", ...], "api_calls": {"benefits": ["<benefit uuid>"],
/// "metered": true}}` (the Rust API's and the command line's format). Checked at once
/// (`INVALID_INPUT`, the last error naming the entry as `entitlements.<feature>`), and kept even
/// when refused, so that `polar_license_client_new` refuses the config as well.
#[no_mangle]
pub extern "C" fn polar_license_config_set_entitlements_json(
    config: *mut polar_license_config,
    json: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let json = arg_str!(config, json, "json");
        config.entitlements_json = Some(json.to_string());
        let checked = Entitlements::from_json(json).map(|_| ());
        config.settle(checked)
    }
}

/// Signed mode (docs/interfaces.md §5): trusts the relay public key `kid_equals_public`, one
/// `KID=k4.public.…` pair as `polar-license relay keygen` prints it (spaces around either part
/// are ignored). Call it once per key: two at once is the rotation case, at most 8. With at
/// least one key the client licenses from its cache only within a lease that one of them
/// verifies, and takes an online grant only with one (point the base URL at the seller's
/// relay); a record without a lease never licenses offline.
///
/// Checked at once: a pair that is not `KID=PUBLIC`, a kid that is not 1 to 100 printable
/// ASCII characters without `=` or `,`, a key that is not PASERK `k4.public.` text, a kid
/// given twice or a ninth key is `POLAR_LICENSE_STATUS_INVALID_INPUT`, the last error naming
/// `relay_keys`. A refused pair is kept, so `polar_license_client_new` refuses the config too:
/// an app that ignores the status never runs unsigned by mistake.
#[no_mangle]
pub extern "C" fn polar_license_config_add_relay_key(
    config: *mut polar_license_config,
    kid_equals_public: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let pair = arg_str!(config, kid_equals_public, "kid_equals_public");
        config.relay_keys.push(pair.to_string());
        let checked = config.relay_keys().map(drop);
        config.settle(checked)
    }
}

/// Signed mode from a list: replaces the relay keys with the comma-separated
/// `KID=k4.public.…` pairs of `list` (the command line's `POLAR_LICENSE_RELAY_KEYS` form;
/// empty entries are skipped). `""` removes every key: signed mode off. Checked as
/// `polar_license_config_add_relay_key` checks each pair, and kept even when refused, so that
/// `polar_license_client_new` refuses the config as well.
#[no_mangle]
pub extern "C" fn polar_license_config_set_relay_keys(
    config: *mut polar_license_config,
    list: *const c_char,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_mut!(config);
        let list = arg_str!(config, list, "list");
        config.relay_keys = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(str::to_string)
            .collect();
        let checked = config.relay_keys().map(drop);
        config.settle(checked)
    }
}
