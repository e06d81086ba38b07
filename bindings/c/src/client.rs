//! `polar_license_client`: grace-aware licensing for one organization, shared by any number of
//! threads.

use super::config::{polar_license_config, status_of};
use super::enums::{polar_license_outcome, polar_license_source, polar_license_status};
use super::feature::polar_license_feature_access;
use super::out;
use super::request::polar_license_request;
use super::result::polar_license_result;
use super::strings::to_cstring;
use polar_license::error::{Error, Verdict};
use polar_license::grace::{CheckOutcome, CheckReport};
use polar_license::key::Key;
use polar_license::licensing::{system_clock, Licensing, MachineBinding};
use polar_license::metadata::check_key;
use polar_license::portal::PortalError;
use polar_license::proto::{ActivateRequest, ValidateRequest};
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A client (opaque): the online client, the offline cache and the grace policy of one
/// organization. Made by `polar_license_client_new`, freed by `polar_license_client_free`.
///
/// Thread-safe: any number of threads may use one client at once. The last-error message is
/// kept per thread (each thread reads its own).
pub struct polar_license_client {
    licensing: Licensing,
    fingerprint: CString,
    errors: Mutex<HashMap<u64, CString>>,
    /// The customer-portal session (issue #64; `devices.rs`): kept in the client's memory
    /// only (never written, never logged).
    session: Mutex<Option<polar_license::portal::SessionToken>>,
    /// The seats' grace past a lease's end (`polar_license_config_set_seat_grace_ms`).
    seat_grace: std::time::Duration,
}

// The thread rules in bindings/c/README.md rest on this (checked at compile time).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<polar_license_client>();
};

/// A number for the calling thread, never reused (C threads included). A plain thread-local
/// counter rather than `std::thread::current()`, which allocates a handle that is never freed
/// on the main thread (valgrind calls that "possibly lost").
fn thread_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static KEY: Cell<u64> = const { Cell::new(0) };
    }
    KEY.with(|key| {
        if key.get() == 0 {
            key.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        key.get()
    })
}

impl polar_license_client {
    fn errors(&self) -> MutexGuard<'_, HashMap<u64, CString>> {
        self.errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The licensing the client wraps.
    pub(crate) fn licensing(&self) -> &Licensing {
        &self.licensing
    }

    /// The terms every seat of this client is held under: its relay keys and organization
    /// (`invalid_input` naming `relay_keys` without keys), and the config's seat grace.
    pub(crate) fn hold_terms(
        &self,
    ) -> Result<polar_license::seat_hold::HoldTerms, polar_license::Error> {
        Ok(self.licensing.hold_terms()?.with_grace(self.seat_grace))
    }

    /// The customer-portal session this client holds, if any.
    pub(crate) fn session(&self) -> Option<polar_license::portal::SessionToken> {
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Holds `session` in place of any earlier one (`None`: forgets it).
    pub(crate) fn set_session(&self, session: Option<polar_license::portal::SessionToken>) {
        *self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = session;
    }

    /// `call` with this client's session (none: `not_signed_in`). When Polar no longer knows
    /// it (`session_expired`) it is forgotten, unless another thread signed in meanwhile: the
    /// session that thread holds is kept.
    pub(crate) fn signed_in<T>(
        &self,
        call: impl FnOnce(&polar_license::portal::SessionToken) -> Result<T, PortalError>,
    ) -> Result<T, PortalError> {
        let Some(session) = self.session() else {
            return Err(PortalError::NotSignedIn);
        };
        let answer = call(&session);
        if matches!(answer, Err(PortalError::SessionExpired)) {
            let mut held = self
                .session
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if held.as_ref() == Some(&session) {
                *held = None;
            }
        }
        answer
    }

    /// Starts a call: this thread's last error is cleared.
    pub(crate) fn begin(&self) {
        self.errors().remove(&thread_key());
    }

    /// Records this thread's last error and returns `status`.
    pub(crate) fn fail(&self, status: polar_license_status, message: &str) -> polar_license_status {
        self.errors().insert(thread_key(), to_cstring(message));
        status
    }

    /// Writes `result` to `*out` (checked not NULL by the caller) and returns OK.
    fn deliver(
        &self,
        out: *mut *mut polar_license_result,
        result: polar_license_result,
    ) -> polar_license_status {
        out::give(out, result);
        polar_license_status::Ok
    }
}

/// A non-NULL pointer argument, or an early return of NULL_ARGUMENT with this thread's last
/// error set.
macro_rules! arg_ref {
    ($client:expr, $ptr:expr, $name:literal) => {{
        let ptr = $ptr;
        // SAFETY: NULL is checked by `as_ref`; a non-NULL pointer is a live object made by
        // this library (the documented contract).
        match unsafe { ptr.as_ref() } {
            Some(r) => r,
            None => {
                return $client.fail(
                    polar_license_status::NullArgument,
                    concat!($name, " is NULL"),
                )
            }
        }
    }};
}

/// Checks the out-pointer, with this thread's last error set when it is NULL.
macro_rules! arg_out {
    ($client:expr, $ptr:expr) => {
        if $ptr.is_null() {
            return $client.fail(polar_license_status::NullArgument, "out_result is NULL");
        }
    };
}

/// The body of a call that answers with a result, in the order every such call keeps: the
/// client (NULL: NULL_ARGUMENT), this thread's last error cleared, the arguments read in turn
/// (`[…]`: each an early return with the last error set), `out_result` checked, then the
/// result the block makes is written to `*out_result` (OK). The block may return a status early
/// (with `client.fail`).
macro_rules! result_call {
    ($client:ident, $out:ident, [$($args:tt)*] $body:block) => {
        ffi_boundary! {
            let $client = try_ref!($client);
            $client.begin();
            $($args)*
            arg_out!($client, $out);
            let result: polar_license_result = $body;
            $client.deliver($out, result)
        }
    };
}

/// Builds a client from `config` (which is only read: it may be reused or freed afterwards)
/// and writes it to `*out_client`. On failure nothing is written, and
/// `polar_license_config_last_error(config)` says why: `INVALID_INPUT` for a bad or missing
/// setting (an entitlement map entry is named as `entitlements.<feature>`), `CACHE_ERROR`
/// when no cache directory was set and the platform has none.
#[no_mangle]
pub extern "C" fn polar_license_client_new(
    config: *const polar_license_config,
    out_client: *mut *mut polar_license_client,
) -> polar_license_status {
    ffi_boundary! {
        let config = try_ref!(config);
        if out_client.is_null() {
            return config.fail(polar_license_status::NullArgument, "out_client is NULL");
        }
        let Some(org) = config.organization_id.as_deref() else {
            return config.fail(
                polar_license_status::InvalidInput,
                "invalid input: organization_id: is required: call polar_license_config_set_organization",
            );
        };
        let entitlements = match config.entitlements() {
            Ok(map) => map,
            Err(e) => return config.fail(status_of(&e), &e.to_string()),
        };
        let relay_keys = match config.relay_keys() {
            Ok(keys) => keys,
            Err(e) => return config.fail(status_of(&e), &e.to_string()),
        };
        let mut builder = Licensing::builder(org)
            .server(config.server.clone())
            .proxy(config.proxy.clone())
            .tls_roots(config.tls_roots)
            .policy(config.policy)
            .require_activation(config.require_activation)
            .remember_keys(config.remember_keys)
            .entitlements(entitlements)
            .relay_keys(relay_keys);
        if let Some(date) = config.released {
            builder = builder.released(date);
        }
        if let Some(days) = config.trial {
            builder = builder.trial(days);
        }
        for id in &config.trial_benefits {
            builder = builder.trial_benefit(id.clone());
        }
        if let Some(t) = config.timeout {
            builder = builder.timeout(t);
        }
        if let Some(t) = config.connect_timeout {
            builder = builder.connect_timeout(t);
        }
        if let Some(dir) = &config.cache_dir {
            builder = builder.cache_dir(dir.clone());
        }
        if let Some(secret) = &config.app_secret {
            builder = builder.app_secret(secret.clone());
        }
        if let Some(id) = &config.machine_id {
            builder = builder.machine_binding(MachineBinding::Id(id.clone()));
        }
        if !config.machine_binding {
            builder = builder.machine_binding(MachineBinding::Off);
        }
        if let Some(url) = &config.portal_url {
            builder = builder.portal_base_url(url.clone());
        }
        if let Some(relay) = &config.relay_url {
            builder = builder.relay_url(relay.clone());
        }
        if config.clock_offset != 0 {
            let offset = config.clock_offset;
            builder = builder.clock(move || system_clock().saturating_add(offset));
        }
        match builder.build() {
            Ok(licensing) => {
                let fingerprint = to_cstring(licensing.machine_fingerprint().unwrap_or_default());
                let client = polar_license_client {
                    licensing,
                    fingerprint,
                    errors: Mutex::new(HashMap::new()),
                    session: Mutex::new(None),
                    seat_grace: config.seat_grace,
                };
                out::give(out_client, client);
                config.ok()
            }
            Err(e) => config.fail(status_of(&e), &e.to_string()),
        }
    }
}

/// Frees a client. NULL is a no-op. No other thread may be using it, and results made by it
/// stay valid (free them separately).
#[no_mangle]
pub extern "C" fn polar_license_client_free(client: *mut polar_license_client) {
    ffi_boundary! { out::free(client) }
}

/// The message of the last call on this client from the calling thread that did not return
/// `POLAR_LICENSE_STATUS_OK` (`""` when the thread's last call succeeded). Valid until this
/// thread's next call on the client, or the client's free. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_client_last_error(
    client: *const polar_license_client,
) -> *const c_char {
    ffi_boundary! {
        let client = try_ref!(client);
        match client.errors().get(&thread_key()) {
            // The CString's buffer does not move when the map does; only this thread
            // replaces or removes its own entry.
            Some(message) => message.as_ptr(),
            None => c"".as_ptr(),
        }
    }
}

/// This machine's fingerprint for the client's organization: the value of the
/// `machine_fingerprint` condition that activate adds when machine binding is on (`""` when it
/// is off, when the OS has no machine id, or when it has one that cannot be read: then the
/// calls that need it answer `cache_error`). `polar_license_client_check` and
/// `polar_license_client_validate` of an activation send it by themselves. Owned by the
/// client, valid until it is freed. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_client_machine_fingerprint(
    client: *const polar_license_client,
) -> *const c_char {
    ffi_boundary! {
        let client = try_ref!(client);
        client.fingerprint.as_ptr()
    }
}

/// Refuses, as `invalid_input`, a field set on a request for an operation that ignores it.
fn unused_fields(req: &polar_license_request, activate: bool) -> Result<(), Error> {
    let op = if activate { "activate" } else { "validate" };
    let unused: &[(&str, bool)] = if activate {
        &[
            ("activation_id", req.activation_id.is_some()),
            ("benefit_id", req.benefit_id.is_some()),
            ("customer_id", req.customer_id.is_some()),
            ("increment_usage", req.increment_usage.is_some()),
        ]
    } else {
        &[
            ("label", req.label.is_some()),
            ("meta", !req.meta.is_empty()),
        ]
    };
    match unused.iter().find(|(_, set)| *set) {
        Some((field, _)) => Err(Error::invalid(*field, format!("is not used by {op}"))),
        None => Ok(()),
    }
}

fn validate_request(req: &polar_license_request) -> ValidateRequest {
    ValidateRequest {
        key: Some(Key::new(req.key.as_str())),
        activation_id: req.activation_id.clone(),
        benefit_id: req.benefit_id.clone(),
        customer_id: req.customer_id.clone(),
        increment_usage: req.increment_usage,
        conditions: req.conditions.clone(),
    }
}

/// Validates a key online, once, never answering from the cache (Polar's `validate`): the key,
/// and the activation id, benefit id, customer id, usage increment and conditions the request
/// has; when it names an activation and machine binding is on, this machine's fingerprint is
/// added to the conditions (the `machine_fingerprint` condition activate stored, unless the
/// request sets it). A label or meta on the request is `invalid_input`.
///
/// The answer updates the key's cache record (one truth per key): a denial about the key
/// (revoked, expired, not found) removes the cache's power to grant, so the next
/// `polar_license_client_check` does not license from the cache; a good answer to the question
/// `check` asks refreshes it. An answer that is not Polar's (`protocol_error`) or none at all
/// (`offline`, `server_error`) changes nothing; a 429 records its block (at most an hour), so
/// checks send nothing until it ends. When the record could not be updated the answer stands
/// and `polar_license_result_cache_refreshed` is `false`. When this machine's id exists but
/// cannot be read (the cache is sealed with it, and activations are bound to it), a request
/// naming an activation is answered `cache_error` with that message and nothing is sent; any
/// other request is answered online, with `polar_license_result_cache_refreshed` `false`.
///
/// Returns `POLAR_LICENSE_STATUS_OK` and writes a result to `*out_result` whatever the
/// license answer (licensed, denied, unverified, error); any other status means the call
/// itself was refused (see `polar_license_client_last_error`) and nothing was written.
#[no_mangle]
pub extern "C" fn polar_license_client_validate(
    client: *const polar_license_client,
    request: *const polar_license_request,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let req = arg_ref!(client, request, "request");] {
        let requested = req.activation_id.as_deref();
        // Through the grace-aware face: this machine's fingerprint is sent when an activation
        // is named (the conditions activate stored), and the answer updates the key's record
        // (one truth per key); when the record could not be updated, the result says so.
        // The result carries the lease the record holds after it (signed mode), as the
        // validate machine answers it: the cache is not read again.
        // The outcome is the machine's (a grant verified at the clock reading it was made at),
        // passed through: the C face builds none.
        let (verdict, cache_error, lease) = match unused_fields(req, false) {
            Ok(()) => {
                let mut validated = client.licensing.validate_update(&validate_request(req));
                let (cache_error, lease) = (validated.cache_error.take(), validated.lease.take());
                (validated.outcome(), cache_error, lease)
            }
            Err(e) => (CheckOutcome::refused(e), None, None),
        };
        let mut result = polar_license_result::of_outcome(verdict);
        result.set_cache_error(cache_error.as_ref());
        result.default_activation_id(requested);
        result.set_lease(lease.as_ref());
        result
    })
}

/// Activates the request's key on this machine with its label (none set, or `""`: this
/// machine's host name and OS, e.g. `jane-laptop (Linux)`), conditions and meta, and
/// remembers the activation in the offline cache (so `polar_license_client_check` validates
/// it). With machine binding on, the `machine_fingerprint` condition is added. An activation
/// id, benefit id, customer id or usage increment on the request is `invalid_input`.
///
/// On success the outcome is `POLAR_LICENSE_OUTCOME_DONE` and the result carries the new
/// activation id. A good activation is a verdict (docs/interfaces.md §4): it starts the grace
/// period, so a check right after it answers from the cache (with no request while it is fresh),
/// online or not. A denial about the key (`not_found`, `inactive`, `expired`) removes the cache's
/// power to grant. The cache is opened first: when it cannot be (or this machine's id cannot be
/// read), the answer is `cache_error` and no activation slot is taken; when Polar activated but the
/// cache could not remember it, the answer is `cache_error`, its detail names the new activation id
/// and `polar_license_result_activation_id` is that id. Status and out-pointer as for
/// `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_activate(
    client: *const polar_license_client,
    request: *const polar_license_request,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let req = arg_ref!(client, request, "request");] {
        let activate = activate_request(req);
        let licensing = &client.licensing;
        // Fields activate ignores first; Licensing::activate then checks the request and opens
        // the cache before it takes a slot (none is taken that the cache would then forget),
        // and stores the answer as a verdict.
        let activated = match unused_fields(req, true) {
            // At the limit, this machine's own activation (a reinstall's) is found through
            // the client's session (else signed mode's relay) and used (issue #80).
            Ok(()) => licensing.activate_via(&activate, client.session().as_ref(), None).0,
            Err(e) => polar_license::flow::update::Activated::failed(e),
        };
        polar_license_result::activated(activated)
    })
}

/// The activate request a request object describes.
fn activate_request(req: &polar_license_request) -> ActivateRequest {
    ActivateRequest {
        key: Some(Key::new(req.key.as_str())),
        // No label from the app (never set, or ""): the core's default for this machine, its
        // host name and OS, so the customer's device list tells machines apart.
        label: polar_license::device_label::label_or_default(req.label.as_deref()),
        conditions: req.conditions.clone(),
        meta: req.meta.clone(),
    }
}

/// Deactivates `activation_id`, or, when it is NULL, the activation the cache remembers for
/// `key` (none remembered: `invalid_input`, field `activation_id`), and forgets it. With an
/// explicit id and a cache that cannot be opened, it deactivates online only. On success the
/// outcome is `POLAR_LICENSE_OUTCOME_DONE`. Status and out-pointer as for
/// `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_deactivate(
    client: *const polar_license_client,
    key: *const c_char,
    activation_id: *const c_char,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [
        let key = arg_str!(client, key, "key");
        let activation_id = if activation_id.is_null() {
            None
        } else {
            Some(arg_str!(client, activation_id, "activation_id"))
        };
    ] {
        // Through the deactivate machine: the key (and the id given) checked first; an
        // explicit id needs no cache (when it cannot be opened, it is deactivated online
        // only); the activation it was about is the machine's.
        let deactivated = client.licensing.deactivate_update(key, activation_id);
        polar_license_result::deactivated(
            deactivated.answer,
            deactivated.activation_id.as_deref(),
        )
    })
}

/// The grace-aware verdict for `key`, the call an app makes at launch: validates the
/// activation the cache remembers (with the conditions it was made with), answering from the
/// cache while the last good verdict is fresh, and, when Polar cannot be reached, within the
/// grace period (`POLAR_LICENSE_SOURCE_CACHE`, the reason saying what happened online:
/// `offline`, `rate_limited`, `server_error` or `protocol_error`, an answer that is not
/// Polar's). A denial is never overridden by the cache. The cache's lock is never held while
/// Polar is asked: other threads and processes checking the key meanwhile answer from the
/// cache at once when it can license. Every answer from the cache is recorded before it is
/// given; `polar_license_result_cache_refreshed` is `false` when the cache could not be
/// written. Status and out-pointer as for `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_check(
    client: *const polar_license_client,
    key: *const c_char,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let key = arg_str!(client, key, "key");] {
        let licensing = &client.licensing;
        // Bad input is refused by the check machine before the cache is touched.
        leased(&licensing.check_report(key), licensing)
    })
}

/// The callback of `polar_license_client_check_in_background`: called once, on a background
/// thread the library started, with the app's `user_data` and the fresh answer, which the
/// callback owns (free it with `polar_license_result_free`, from any thread).
pub type polar_license_check_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, result: *mut polar_license_result)>;

/// The app's `user_data`, carried to the background thread.
struct UserData(*mut c_void);

// SAFETY: the library never dereferences the pointer: it only hands it back to the app's
// callback, on a background thread, which the documented contract of
// polar_license_client_check_in_background tells the app to expect.
unsafe impl Send for UserData {}

/// The launch check that never waits for Polar: answers at once from the cache and, when the
/// policy wants a fresh verdict, revalidates on a background thread and calls `on_fresh`
/// with that answer.
///
/// The immediate answer (`*out_result`, the caller's to free) is decided as
/// `polar_license_client_check` decides before it asks Polar: licensed from the cache within
/// the grace period, the cached denial, a refusal of bad input or of `require_activation`
/// with nothing remembered, or "not verified yet" when nothing is usable (start in a limited
/// mode and upgrade when `on_fresh` arrives). `*out_pending` (when not NULL) says whether a
/// revalidation was started: then `on_fresh` is called exactly once, on a background thread,
/// with the fresh answer, which it owns; otherwise (a fresh cache, a refusal) it is never
/// called. The client may be freed before the callback runs. `on_fresh` NULL is
/// `NULL_ARGUMENT`. Status and out-pointer as for `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_check_in_background(
    client: *const polar_license_client,
    key: *const c_char,
    on_fresh: polar_license_check_callback,
    user_data: *mut c_void,
    out_pending: *mut bool,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let key = arg_str!(client, key, "key");] {
        let Some(callback) = on_fresh else {
            return client.fail(polar_license_status::NullArgument, "on_fresh is NULL");
        };
        let licensing = &client.licensing;
        let data = UserData(user_data);
        let policy = *licensing.policy();
        // Bad input is refused by the check machine at once (no thread, no cache touched).
        // The fresh answer carries the lease as the check left it (signed mode).
        let (now, thread) = licensing.check_report_in_background(key, move |fresh| {
            let data = data;
            let mut result = polar_license_result::check(&fresh, &policy);
            result.set_lease(fresh.lease.as_ref());
            let result = Box::into_raw(Box::new(result));
            // SAFETY: `callback` is the app's function of the documented type, called once
            // with its own user_data and a result it now owns.
            unsafe { callback(data.0, result) };
        });
        let (result, pending) = (leased(&now, licensing), thread.is_some());
        // NULL: the caller does not ask.
        out::write(out_pending, pending);
        result
    })
}

/// The grace-aware verdict for an explicit request (key, activation id, benefit id, customer
/// id, usage increment, conditions); the cache answers only for an identical request. A label
/// or meta is `invalid_input`. Status and out-pointer as for `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_check_request(
    client: *const polar_license_client,
    request: *const polar_license_request,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let req = arg_ref!(client, request, "request");] {
        let validate = validate_request(req);
        let licensing = &client.licensing;
        // Fields a check ignores first; bad input is then refused by the check machine before
        // the cache is touched.
        let mut result = match unused_fields(req, false) {
            Ok(()) => {
                let report = licensing.check_request_report(&validate);
                let mut r = polar_license_result::check(&report, licensing.policy());
                r.set_lease(report.lease.as_ref());
                r
            }
            Err(e) => polar_license_result::refused(&e),
        };
        result.default_activation_id(req.activation_id.as_deref());
        result
    })
}

/// A check's result with what its report says of the slot as the check left it: the
/// activation the cache remembers (when the answer names none) and the lease (signed mode).
fn leased(report: &CheckReport, licensing: &Licensing) -> polar_license_result {
    let mut r = polar_license_result::check(report, licensing.policy());
    if !r.has_activation_id() {
        r.default_activation_id(report.activation_id.as_deref());
    }
    r.set_lease(report.lease.as_ref());
    r
}

/// The result of a local call with nothing to report: done, or its error.
fn done_or_error(done: Result<(), Error>) -> polar_license_result {
    match done {
        Ok(()) => polar_license_result::success(
            polar_license_outcome::Done,
            0,
            polar_license_source::None,
        ),
        Err(e) => polar_license_result::error(&e),
    }
}

/// Remembers `key` on this machine for this client's organization and server, sealed beside
/// the cache records (never in plain text; useless on another install or machine), in place
/// of any key remembered before; no request. Outcome `POLAR_LICENSE_OUTCOME_DONE`, or an
/// error: `POLAR_LICENSE_REASON_INVALID_INPUT` (field `key`) for a key every request would
/// refuse (empty, surrounding whitespace, over 1024 bytes), `POLAR_LICENSE_REASON_CACHE_ERROR`
/// when the cache directory cannot be written. Status and out-pointer as for
/// `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_remember_key(
    client: *const polar_license_client,
    key: *const c_char,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let key = arg_str!(client, key, "key");] {
        let done = client.licensing.remember_key(key);
        done_or_error(done)
    })
}

/// Forgets the remembered key (its cache record and activation stay); no request. Outcome
/// `POLAR_LICENSE_OUTCOME_DONE` also when none was remembered, or `cache_error`. Status and
/// out-pointer as for `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_forget_key(
    client: *const polar_license_client,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [] {
        let done = client.licensing.forget_key();
        done_or_error(done)
    })
}

/// Whether a key is remembered here that this client can open (one sealed by another install,
/// machine or app secret, or edited, is none). Writes `*out_remembered` and returns
/// `POLAR_LICENSE_STATUS_OK`; on a cache that cannot be read, another status and
/// `polar_license_client_last_error` says why.
#[no_mangle]
pub extern "C" fn polar_license_client_has_remembered_key(
    client: *const polar_license_client,
    out_remembered: *mut bool,
) -> polar_license_status {
    ffi_boundary! {
        let client = try_ref!(client);
        client.begin();
        if out_remembered.is_null() {
            return client.fail(polar_license_status::NullArgument, "out_remembered is NULL");
        }
        match client.licensing.remembered_key() {
            Ok(key) => {
                out::write(out_remembered, key.is_some());
                polar_license_status::Ok
            }
            Err(e) => client.fail(status_of(&e), &e.to_string()),
        }
    }
}

/// `polar_license_client_check` of the remembered key. With none remembered (or none this
/// client can open), `POLAR_LICENSE_OUTCOME_ERROR` with `POLAR_LICENSE_REASON_INVALID_INPUT`,
/// field `key`, and no request (as a check of a bad key): ask the user for a key. With a local
/// trial set (`polar_license_config_set_trial`), that answer carries the trial
/// (`polar_license_client_check_trial`). Status and out-pointer as for
/// `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_check_remembered(
    client: *const polar_license_client,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [] {
        let licensing = &client.licensing;
        // The key is read once: the check and the activation id are of the same key.
        leased(&licensing.check_remembered_report(), licensing)
    })
}

/// Trials: the local trial's answer, for an app with no key (`polar_license_config_set_trial`).
/// The first call starts it (sealed in the cache), later ones count it down; no request is
/// made. The outcome is a check's with no key (`POLAR_LICENSE_OUTCOME_ERROR`,
/// `POLAR_LICENSE_REASON_INVALID_INPUT`, field `key`: ask for a key), or
/// `POLAR_LICENSE_REASON_CLOCK_ROLLBACK` when the clock was set back during it;
/// `polar_license_result_trial` says whether it runs (`POLAR_LICENSE_TRIAL_ACTIVE`: the app may
/// be used), ended, or was refused, with `_trial_days_left` and `_trial_ends_at`. No trial set:
/// `POLAR_LICENSE_REASON_INVALID_INPUT`, field `trial`. Status and out-pointer as for
/// `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_check_trial(
    client: *const polar_license_client,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [] {
        let licensing = &client.licensing;
        polar_license_result::check(&licensing.check_trial_report(), licensing.policy())
    })
}

/// What the offline cache holds for `key`, with no request: outcome
/// `POLAR_LICENSE_OUTCOME_DONE`, the cache state, the remembered activation id, the last good
/// license, its verification time and the grace left (or `cache_error` when the cache cannot
/// be read). When Polar's last answer about the key (from any call) was a denial, the result
/// carries that denial's reason and detail, and no license: the last good one is not the key's
/// status any more (its verification time stays). Status and out-pointer as for
/// `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_status(
    client: *const polar_license_client,
    key: *const c_char,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let key = arg_str!(client, key, "key");] {
        match check_key(key).and_then(|()| client.licensing.status(key)) {
            Ok(status) => polar_license_result::status(&status),
            Err(e) => polar_license_result::error(&e),
        }
    })
}

/// May this copy use `feature`? The one question of feature gating, answered from a verdict
/// (`result`, from `polar_license_client_check`, `_check_request` or `_validate` of any client)
/// and this client's entitlement map (`polar_license_config_add_feature`,
/// `polar_license_config_set_entitlements_json`). A licensed verdict from the cache within the
/// grace period answers exactly as an online one; a verdict that does not license (denied,
/// unverified, error) grants nothing. No request is made.
///
/// Writes a new access to `*out_access` and returns `POLAR_LICENSE_STATUS_OK` whatever the
/// answer (granted or not: `polar_license_feature_access_granted`, then free it with
/// `polar_license_feature_access_free`). Any other status means the question itself was
/// refused and nothing was written (`polar_license_client_last_error` says why): NULL or
/// non-UTF-8 arguments, or `INVALID_INPUT` for a result that is not a verdict (activate,
/// deactivate, status).
#[no_mangle]
pub extern "C" fn polar_license_client_has_feature(
    client: *const polar_license_client,
    result: *const polar_license_result,
    feature: *const c_char,
    out_access: *mut *mut polar_license_feature_access,
) -> polar_license_status {
    ffi_boundary! {
        let client = try_ref!(client);
        client.begin();
        let result = arg_ref!(client, result, "result");
        let feature = arg_str!(client, feature, "feature");
        if out_access.is_null() {
            return client.fail(polar_license_status::NullArgument, "out_access is NULL");
        }
        let Some(verdict) = result.verdict() else {
            return client.fail(
                polar_license_status::InvalidInput,
                "invalid input: result: is not a verdict: ask with the result of \
                 polar_license_client_check, _check_request or _validate",
            );
        };
        let access = client.licensing.has_feature(verdict, feature);
        out::give(out_access, polar_license_feature_access::from(access));
        polar_license_status::Ok
    }
}

/// Air-gapped activation, step 1, on the machine with no network: the request line of an
/// activation of the request's key with its label, conditions and meta (bound to this machine
/// as `polar_license_client_activate` binds it, and checked as it checks it); nothing is sent.
/// Carry the line (`polar_license_result_line`) to any online machine, which sends it to the
/// seller's relay with `polar_license_client_lease_fetch`, and bring the response line back to
/// `polar_license_client_lease_install`. The line holds the license key: treat it as the key.
///
/// Outcome `POLAR_LICENSE_OUTCOME_DONE` with the line, or an error: `invalid_input` (with its
/// field) for a request activate would refuse (an activation id, benefit id, customer id or
/// usage increment on it included), `cache_error` when this machine's id cannot be read.
/// Status and out-pointer as for `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_lease_request(
    client: *const polar_license_client,
    request: *const polar_license_request,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let req = arg_ref!(client, request, "request");] {
        let made = unused_fields(req, true)
            .and_then(|()| client.licensing.lease_request(&activate_request(req)));
        match made {
            Ok(line) => polar_license_result::line(&line),
            Err(e) => polar_license_result::error(&e),
        }
    })
}

/// Air-gapped activation, step 2, on any online machine: sends the request line `line` (from
/// `polar_license_client_lease_request` on the other machine) to the seller's relay, which is
/// this client's base URL, as an activation, and gives the response line to carry back
/// (`polar_license_result_line`). This machine's own cache, fingerprint and relay keys play no
/// part; the request must be for this client's organization (else `invalid_input`, field
/// `organization_id`, and nothing is sent).
///
/// Outcome `POLAR_LICENSE_OUTCOME_DONE` with the line; a denial as Polar gave it (the key
/// revoked, its activation limit reached, …); `invalid_input` (field `request`) for a line that
/// is not a whole request line; `protocol_error` for a grant that came without a lease (the
/// base URL is Polar itself, not a relay: such a response could never be installed); the
/// network's reasons as for any call. Status and out-pointer as for
/// `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_lease_fetch(
    client: *const polar_license_client,
    line: *const c_char,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let line = arg_str!(client, line, "line");] {
        match client.licensing.client().lease_fetch(line) {
            Ok(Verdict::Accepted(response)) => polar_license_result::line(&response),
            Ok(Verdict::Denied(d)) => polar_license_result::denied(&d),
            Err(e) => polar_license_result::error(&e),
        }
    })
}

/// Air-gapped activation, step 3, back on the machine with no network: installs the response
/// line `line` (from `polar_license_client_lease_fetch`). Needs signed mode: the answer in the
/// line is held to this organization and machine as an online activate is, and its lease must
/// verify with the client's relay keys for this machine; then the activation is stored with
/// its lease, and checks license from the cache, with no network, until the lease ends
/// (`polar_license_result_lease_expires_at`).
///
/// Outcome `POLAR_LICENSE_OUTCOME_DONE` with the activation id, the license and the lease; a
/// denial the line carries, as Polar gave it; or an error, and then nothing is stored:
/// `invalid_input` for a client without relay keys (field `relay_keys`), a damaged or cut line
/// (field `response`) or one made for another machine's request; `protocol_error` for an answer
/// that does not license this key here or a lease that does not verify; `cache_error` when the
/// cache cannot be written. Status and out-pointer as for `polar_license_client_validate`.
#[no_mangle]
pub extern "C" fn polar_license_client_lease_install(
    client: *const polar_license_client,
    line: *const c_char,
    out_result: *mut *mut polar_license_result,
) -> polar_license_status {
    result_call!(client, out_result, [let line = arg_str!(client, line, "line");] {
        // Through the activate machine, with the line's answer as Polar's: the result
        // carries the lease the record holds after it.
        let installed = client.licensing.lease_install_update(line);
        match (installed.online, installed.cache_error) {
            (Ok(Verdict::Accepted(_)), Some(e)) => polar_license_result::error(&e),
            (Ok(Verdict::Accepted(read)), None) => {
                let mut r = polar_license_result::success(
                    polar_license_outcome::Done,
                    0,
                    polar_license_source::None,
                );
                r.set_license(&read.license_key);
                r.set_activation(Some(&read.activation));
                r.set_lease(installed.lease.as_ref());
                r
            }
            (Ok(Verdict::Denied(d)), _) => {
                let mut r = polar_license_result::denied(&d);
                // Polar's answer, carried in the line: not one this call had online.
                r.set_source(polar_license_source::None);
                r
            }
            (Err(e), _) => polar_license_result::error(&e),
        }
    })
}
