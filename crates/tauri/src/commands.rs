//! The commands the webview invokes (`plugin:polar-license|<name>`). None blocks Tauri's
//! runtime: the requests run through the library's async API (each on a thread of its own),
//! or, for the calls whose answer carries the lease the key's record holds after them
//! (`activate`, `validate`), on the runtime's blocking pool, as the cache reads do.

use crate::answers::{
    Activated, Deactivated, DeviceError, DeviceList, EntitlementState, FeatureState, Followed,
    LeaseInfo, LicenseError, LicenseState, LicenseSummary, RecoverError, RecoverableKey,
    RememberedKey, StatusState, Validated,
};
use crate::{PolarLicense, CHECKED_EVENT};
use polar_license::grace::{CheckOutcome, CheckReport};
use polar_license::portal::{PortalError, SessionToken};
use polar_license::{ActivateRequest, Error, Key, Licensing, ValidateRequest, Verdict};
use std::future::Future;
use tauri::{AppHandle, Emitter, Runtime, State};

type Answer<T> = Result<T, LicenseError>;

/// Polar's accepted answer to `request`, or why not: its denial or the error, as the
/// promise rejects.
async fn accepted<T>(request: impl Future<Output = Result<Verdict<T>, Error>>) -> Answer<T> {
    match request.await? {
        Verdict::Accepted(value) => Ok(value),
        Verdict::Denied(denial) => Err(LicenseError::denied(&denial)),
    }
}

/// Runs `work` on the runtime's blocking pool (file reads and locks of the cache).
async fn blocking<T: Send + 'static>(
    licensing: &Licensing,
    work: impl FnOnce(Licensing) -> T + Send + 'static,
) -> Result<T, Error> {
    let licensing = licensing.clone();
    tauri::async_runtime::spawn_blocking(move || work(licensing))
        .await
        .map_err(|e| Error::Cache {
            detail: format!("the license task stopped: {e}"),
        })
}

/// The key given, or the remembered one (none remembered: `invalid_input`, field `key`).
async fn key_or_remembered(licensing: &Licensing, key: Option<String>) -> Result<Key, Error> {
    match key {
        Some(key) => Ok(Key::new(key)),
        None => blocking(licensing, |l| l.remembered_or_error()).await?,
    }
}

/// The answer of a check with no key to check (`e`): the local trial's when one is stated
/// and no key is remembered (`e` names the field `key`), else `e` itself.
async fn no_key(state: &PolarLicense, e: Error) -> CheckReport {
    if state.trial && e.field() == Some("key") {
        match blocking(state.licensing(), |l| l.check_trial_report()).await {
            Ok(report) => report,
            Err(e) => CheckReport::of(CheckOutcome::refused(e)),
        }
    } else {
        CheckReport::of(CheckOutcome::refused(e))
    }
}

/// The grace-aware verdict for `key` (default: the remembered key): the cache within its
/// rules, else Polar. Never rejects: an answer that does not license is a state.
#[tauri::command]
pub(crate) async fn check(
    state: State<'_, PolarLicense>,
    key: Option<String>,
) -> Answer<LicenseState> {
    let licensing = state.licensing();
    let report = match key_or_remembered(licensing, key).await {
        // The report carries the lease the key's record holds as the check left it.
        Ok(key) => licensing.check_report_async(key).await,
        Err(e) => no_key(&state, e).await,
    };
    Ok(LicenseState::of(licensing, &report, false))
}

/// Answers at once from the cache (`pending` when Polar is being asked) and emits
/// `polar-license://checked` with the fresh state when Polar's answer is in.
#[tauri::command]
pub(crate) async fn check_in_background<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, PolarLicense>,
    key: Option<String>,
) -> Answer<LicenseState> {
    let licensing = state.licensing();
    let key = match key_or_remembered(licensing, key).await {
        Ok(key) => key,
        Err(e) => {
            let report = no_key(&state, e).await;
            return Ok(LicenseState::of(licensing, &report, false));
        }
    };
    let answer = blocking(licensing, move |l| {
        let fresh_for = l.clone();
        let (now, thread) = l.check_report_in_background(key, move |fresh| {
            let state = LicenseState::of(&fresh_for, &fresh, false);
            if let Err(e) = app.emit(CHECKED_EVENT, state) {
                log::warn!(target: "polar_license", "could not emit {CHECKED_EVENT}: {e}");
            }
        });
        LicenseState::of(&l, &now, thread.is_some())
    })
    .await;
    answer.map_err(LicenseError::from)
}

/// Activates `key` on this machine (label: `label`, default the core's device label, the
/// machine's host name and OS, e.g. `jane-laptop (Linux)`) and remembers the activation (and
/// the key, unless `Options::remember_keys(false)`).
#[tauri::command]
pub(crate) async fn activate(
    state: State<'_, PolarLicense>,
    key: String,
    label: Option<String>,
) -> Answer<Activated> {
    let label = label.unwrap_or_else(polar_license::device_label::default_device_label);
    let licensing = state.licensing();
    let request = ActivateRequest::new(key, label);
    // On the blocking pool: the activate machine's answer carries the lease the record holds
    // after it (no read of the cache again). At the limit, this machine's own activation (a
    // reinstall's) is found through the plugin's session (else the relay set in its options,
    // or signed mode's) and used (issue #80).
    let session = state.session();
    let activated = blocking(licensing, move |l| {
        l.activate_via(&request, session.as_ref(), None).0
    })
    .await?;
    let answer = match activated.unremembered() {
        Some(e) => Err(e),
        None => activated.online,
    };
    let read = accepted(std::future::ready(answer)).await?;
    Ok(Activated::of(&read, activated.lease.as_ref()))
}

/// Deactivates the activation (default: the remembered one) of `key` (default: the
/// remembered key), freeing its slot, and forgets it.
#[tauri::command]
pub(crate) async fn deactivate(
    state: State<'_, PolarLicense>,
    key: Option<String>,
    activation_id: Option<String>,
) -> Answer<Deactivated> {
    let licensing = state.licensing();
    let key = key_or_remembered(licensing, key).await?;
    accepted(licensing.deactivate_async(key, activation_id.as_deref())).await?;
    Ok(Deactivated::said())
}

/// One online validation with no cache answer (its answer still updates the cache).
#[tauri::command]
pub(crate) async fn validate(
    state: State<'_, PolarLicense>,
    key: Option<String>,
    activation_id: Option<String>,
    benefit_id: Option<String>,
) -> Answer<Validated> {
    let licensing = state.licensing();
    let key = key_or_remembered(licensing, key).await?;
    let mut request = ValidateRequest::new(key.clone());
    if let Some(id) = activation_id {
        request = request.activation_id(id);
    }
    if let Some(id) = benefit_id {
        request = request.benefit_id(id);
    }
    // On the blocking pool: the validate machine's answer carries the lease the record holds
    // after it (no read of the cache again).
    let update = blocking(licensing, move |l| l.validate_update(&request)).await?;
    let validated = accepted(std::future::ready(update.online)).await?;
    let activation = validated.activation.as_ref().map(|a| a.id.as_str());
    let lease = update.lease;
    Ok(Validated {
        license: crate::answers::LicenseSummary::of(&validated.license_key, activation),
        lease: lease.as_ref().map(LeaseInfo::of),
    })
}

/// What the cache holds for `key` (default: the remembered key), with no request.
#[tauri::command]
pub(crate) async fn status(
    state: State<'_, PolarLicense>,
    key: Option<String>,
) -> Answer<StatusState> {
    let licensing = state.licensing();
    let key = key_or_remembered(licensing, key).await?;
    let status = blocking(licensing, move |l| {
        l.status(key).map(|s| StatusState::of(&l, &s))
    });
    Ok(status.await??)
}

/// Whether a key is remembered on this machine, and its redacted form.
#[tauri::command]
pub(crate) async fn remembered_key(state: State<'_, PolarLicense>) -> Answer<RememberedKey> {
    let key = blocking(state.licensing(), |l| l.remembered_key()).await??;
    Ok(RememberedKey {
        remembered: key.is_some(),
        display_key: key.map(|k| k.redacted()),
    })
}

/// Forgets the remembered key (its activation stays: `deactivate` frees it).
#[tauri::command]
pub(crate) async fn forget_key(state: State<'_, PolarLicense>) -> Answer<()> {
    Ok(blocking(state.licensing(), |l| l.forget_key()).await??)
}

/// May this copy use `feature`? A check of `key` (default: the remembered key), then the
/// app's entitlement map.
#[tauri::command]
pub(crate) async fn has_feature(
    state: State<'_, PolarLicense>,
    feature: String,
    key: Option<String>,
) -> Answer<FeatureState> {
    let licensing = state.licensing();
    let outcome = match key_or_remembered(licensing, key).await {
        Ok(key) => licensing.check_async(key).await,
        Err(e) => CheckOutcome::refused(e),
    };
    Ok(FeatureState::of(&licensing.has_feature(&outcome, &feature)))
}

/// The entitlement value `name` of `key` (default: the remembered key), issue #68: a check
/// (from the cache within its rules, else Polar through the seller's relay), then the value
/// the relay signed into the lease that answer stands on, read offline. Never rejects: a value
/// not granted, not known or of a key that does not license is a state.
#[tauri::command]
pub(crate) async fn entitlement(
    state: State<'_, PolarLicense>,
    name: String,
    key: Option<String>,
) -> Answer<EntitlementState> {
    let licensing = state.licensing();
    let report = match key_or_remembered(licensing, key).await {
        Ok(key) => licensing.check_report_async(key).await,
        Err(e) => CheckReport::of(CheckOutcome::refused(e)),
    };
    Ok(EntitlementState::of(&report, &name))
}

// Devices and key recovery (issue #64): out of activations, the user signs in with the code
// Polar emails, sees the key's devices, frees one and activates here; or recovers a lost key.
// The steps and their rules are the core's (`Licensing::list_devices`, `recover_key`, the
// public deactivate); the session lives in the plugin's state, in memory only.

type PortalAnswer<T> = Result<T, DeviceError>;

/// Runs a portal step on the blocking pool; a task that stopped is an error of no answer.
async fn portal_blocking<T: Send + 'static>(
    licensing: &Licensing,
    work: impl FnOnce(Licensing) -> Result<T, PortalError> + Send + 'static,
) -> PortalAnswer<T> {
    blocking(licensing, work)
        .await
        .map_err(PortalError::of_error)
        .and_then(|answer| answer)
        .map_err(|e| DeviceError::of(&e))
}

/// `read` through the session signed in; one Polar no longer knows (`session_expired`) is
/// forgotten, so nothing is kept that cannot be used.
async fn with_session<T: Send + 'static>(
    state: &PolarLicense,
    read: impl FnOnce(Licensing, &SessionToken) -> Result<T, PortalError> + Send + 'static,
) -> PortalAnswer<T> {
    let Some(session) = state.session() else {
        return Err(DeviceError::of(&PortalError::NotSignedIn));
    };
    let answer = portal_blocking(state.licensing(), move |l| read(l, &session)).await;
    if matches!(&answer, Err(e) if e.portal_error == PortalError::SessionExpired.code()) {
        state.set_session(None);
    }
    answer
}

/// Asks Polar to email a 6-character sign-in code to `email` (`customerId`: one of several
/// customers with that email, after `customer_selection_required`).
#[tauri::command]
pub(crate) async fn request_sign_in_code(
    state: State<'_, PolarLicense>,
    email: String,
    customer_id: Option<String>,
) -> PortalAnswer<()> {
    portal_blocking(state.licensing(), move |l| {
        l.client()
            .request_sign_in_code_for(&email, customer_id.as_deref())
    })
    .await
}

/// Signs in with the emailed code: the customer session (one hour) is kept in the plugin's
/// memory, never written, never sent to the webview.
#[tauri::command]
pub(crate) async fn sign_in(state: State<'_, PolarLicense>, code: String) -> PortalAnswer<()> {
    let session = portal_blocking(state.licensing(), move |l| l.client().sign_in(&code)).await?;
    state.set_session(Some(session));
    Ok(())
}

/// Forgets the customer session.
#[tauri::command]
pub(crate) async fn sign_out(state: State<'_, PolarLicense>) -> PortalAnswer<()> {
    state.set_session(None);
    Ok(())
}

/// The devices of `key` (default: the remembered key) through the session, this machine's
/// marked; with no session, through the seller's relay at `relay` (default: the plugin's,
/// `relay_url`, or in signed mode its base URL; issue #64: the key proves it is the
/// customer's, no email code). Which way is the core's (`Licensing::list_devices_any`).
#[tauri::command]
pub(crate) async fn list_devices(
    state: State<'_, PolarLicense>,
    key: Option<String>,
    relay: Option<String>,
) -> PortalAnswer<DeviceList> {
    let key = key_or_remembered(state.licensing(), key)
        .await
        .map_err(|e| DeviceError::of(&PortalError::of_error(e)))?;
    // The session signed in, else the relay: the core picks (one order, written once).
    let session = state.session();
    let signed_in = session.is_some();
    let answer = portal_blocking(state.licensing(), move |l| {
        l.list_devices_any(session.as_ref(), relay.as_deref(), key.clone())
            .map(|found| DeviceList::of(&key, &found))
    })
    .await;
    if signed_in
        && matches!(&answer, Err(e) if e.portal_error == PortalError::SessionExpired.code())
    {
        state.set_session(None);
    }
    answer
}

/// Frees the device `activation_id` of `key` (default: the remembered key): the public
/// deactivate, which needs no session; when it is this machine's, the cache forgets it.
#[tauri::command]
pub(crate) async fn free_device(
    state: State<'_, PolarLicense>,
    activation_id: String,
    key: Option<String>,
) -> Answer<()> {
    let licensing = state.licensing();
    let key = key_or_remembered(licensing, key).await?;
    accepted(licensing.deactivate_async(key, Some(activation_id.as_str()))).await
}

/// The signed-in customer's keys this machine can activate, by id and display form (the whole
/// key never crosses to the webview).
#[tauri::command]
pub(crate) async fn recoverable_keys(
    state: State<'_, PolarLicense>,
) -> PortalAnswer<Vec<RecoverableKey>> {
    with_session(&state, |l, session| {
        l.recoverable_keys(session)
            .map(|keys| keys.iter().map(RecoverableKey::of).collect())
    })
    .await
}

/// Activates here the recoverable key `id` (label: `label`, default the core's device label,
/// the machine's host name and OS) and remembers it, as `activate` does: the whole key goes
/// only into the activation.
#[tauri::command]
pub(crate) async fn recover_key(
    state: State<'_, PolarLicense>,
    id: String,
    label: Option<String>,
) -> Result<Activated, RecoverError> {
    let label = label.unwrap_or_else(polar_license::device_label::default_device_label);
    let activated = with_session(&state, move |l, session| {
        l.recover_key(session, &id, &label)
    })
    .await
    .map_err(RecoverError::Portal)?;
    let answer = match activated.unremembered() {
        Some(e) => Err(e),
        None => activated.online,
    };
    let read = accepted(std::future::ready(answer))
        .await
        .map_err(RecoverError::License)?;
    Ok(Activated::of(&read, activated.lease.as_ref()))
}

/// Follows the rotated `key` (default: the remembered key) through the session signed in
/// (issue #64 item 4): the core's follow machine finds the same key id's new string among the
/// customer's keys and validates it with this machine's activation (no slot taken); the old
/// string's record is forgotten and, when it was the remembered key, the new one is remembered
/// in its place. A [`DeviceError`] for the session's step (`not_signed_in`, `session_expired`,
/// `key_not_found`: not rotated, `invalid_input`: nothing of the key cached here), a
/// [`LicenseError`] when Polar refuses the new string.
#[tauri::command]
pub(crate) async fn follow_rotation(
    state: State<'_, PolarLicense>,
    key: Option<String>,
) -> Result<Followed, RecoverError> {
    let old = key_or_remembered(state.licensing(), key)
        .await
        .map_err(|e| RecoverError::License(e.into()))?;
    let (verdict, remembered) = with_session(&state, move |l, session| {
        let (new, verdict) = l.follow_rotation(session, old)?;
        let remembered = l
            .remembered_key()
            .ok()
            .flatten()
            .is_some_and(|k| k.expose() == new.expose());
        Ok((verdict, remembered))
    })
    .await
    .map_err(RecoverError::Portal)?;
    let read = accepted(std::future::ready(Ok(verdict)))
        .await
        .map_err(RecoverError::License)?;
    let activation_id = read.activation.as_ref().map(|a| a.id.clone());
    Ok(Followed {
        license: LicenseSummary::of(&read.license_key, activation_id.as_deref()),
        activation_id,
        remembered,
    })
}
