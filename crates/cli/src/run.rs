//! The commands that talk to Polar or read the cache: build the client (or the grace-aware
//! [`Licensing`]), send, render.

use crate::args::{
    ActivateArgs, CheckArgs, DeactivateArgs, EntitlementArgs, Global, LeaseCommand,
    LeaseRequestArgs, RememberArgs, ServerChoice, StatusArgs, ValidateArgs,
};
use crate::output::{
    cache_write, check_report, dir_report, entitlement_report, entitlements_field, error_report,
    feature_report, key_report, lease_field, line_report, report, status_report, trial_field,
    trial_report, Op, Report,
};
use polar_license::features::Entitlements;
use polar_license::lease::RelayKeys;
use polar_license::perpetual::ReleaseDate;
use polar_license::trial::TrialDays;
use polar_license::{
    system_clock, ActivateRequest, BlockingClient, CacheState, CheckReport, Clock, Error,
    FileStore, GracePolicy, Key, Licensing, MachineBinding, MetaValue, Metadata, Reason, Server,
    ValidateRequest, Verdict, DEFAULT_CONNECT_TIMEOUT,
};
use std::path::PathBuf;
use std::sync::Arc;

/// A testing hook, deliberately undocumented in `--help`: whole seconds (may be negative)
/// added to the system clock for every cache decision. It simulates the user moving the
/// clock, so the CLI tests can age the cache without sleeping. It weakens nothing: anyone can
/// move the real clock just as well, moving it forward only ages the cache (towards
/// `grace_expired`), and moving it back past the tolerance is detected as `clock_rollback`.
const CLOCK_OFFSET_VAR: &str = "POLAR_LICENSE_CLOCK_OFFSET";

/// The same kind of testing hook: the clock held at these unix seconds for every cache
/// decision (a clock that does not move, as a user could hold it; the tests play that attack
/// with it). Not with [`CLOCK_OFFSET_VAR`].
const CLOCK_AT_VAR: &str = "POLAR_LICENSE_CLOCK_AT";

/// The organization id from the global options, or `invalid_input`.
pub(crate) fn org(g: &Global) -> Result<&str, Error> {
    g.org.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::invalid(
            "organization_id",
            "is required: pass --org or set POLAR_ORGANIZATION_ID",
        )
    })
}

/// Applies the connection options (server or base URL, timeouts, access token) to a
/// [`polar_license::ClientBuilder`] or a [`polar_license::LicensingBuilder`].
macro_rules! connect {
    ($builder:expr, $g:expr) => {{
        let g: &Global = $g;
        let mut builder = match g.base_url.as_deref().filter(|s| !s.is_empty()) {
            Some(url) => $builder.base_url(url),
            None => $builder.server(match g.server {
                ServerChoice::Production => Server::Production,
                ServerChoice::Sandbox => Server::Sandbox,
            }),
        };
        if let Some(url) = g.portal_url.as_deref().filter(|s| !s.is_empty()) {
            builder = builder.portal_base_url(url);
        }
        if let Some(t) = g.timeout {
            builder = builder
                .timeout(t)
                .connect_timeout(t.min(DEFAULT_CONNECT_TIMEOUT));
        }
        if let Some(token) = g.access_token.as_deref().filter(|s| !s.is_empty()) {
            builder = builder.access_token(token);
        }
        builder = builder.tls_roots(match g.tls_roots {
            crate::args::RootsChoice::System => polar_license::TlsRoots::System,
            crate::args::RootsChoice::Bundled => polar_license::TlsRoots::Bundled,
        });
        match g.proxy.as_deref().map(str::trim) {
            None | Some("") => builder,
            Some(p) if p.eq_ignore_ascii_case("direct") => {
                builder.proxy(polar_license::ProxySetting::Direct)
            }
            Some(url) => builder.proxy(polar_license::ProxySetting::Url(url.to_string())),
        }
    }};
}

/// Builds the client from the global options (the seat commands' requests to the relay). A
/// bad option is `invalid_input`, before any request.
pub fn client(g: &Global) -> Result<BlockingClient, Error> {
    connect!(BlockingClient::builder(org(g)?), g).build()
}

/// The grace policy: the defaults of docs/interfaces.md §4a, overridden by the global options.
fn policy(g: &Global) -> GracePolicy {
    let default = GracePolicy::default();
    GracePolicy {
        revalidate_after: g.revalidate_after.unwrap_or(default.revalidate_after),
        grace_period: g.grace_period.unwrap_or(default.grace_period),
        clock_tolerance: g.clock_tolerance.unwrap_or(default.clock_tolerance),
    }
}

/// The application id of the command's own cache directory. Fixed, not the executable's name:
/// a copy of the command renamed after an app still never shares that app's records.
const APP_ID: &str = "polar-license";

/// `--cache-dir`, else the directory of the app `--app-id` names, else this command's own
/// directory under the platform's data directory (`<data dir>/polar-license/polar-license`:
/// never an app's unless asked).
pub fn cache_dir(g: &Global) -> Result<PathBuf, Error> {
    match g.cache_dir.as_ref().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => Ok(dir.clone()),
        None => match g.app_id.as_deref().filter(|id| !id.is_empty()) {
            Some(app) => FileStore::dir_for_app(app),
            None => FileStore::dir_for_app(APP_ID),
        },
    }
}

/// A hidden clock variable of whole seconds, when set.
fn clock_var(var: &str) -> Result<Option<i64>, Error> {
    match std::env::var(var) {
        Ok(text) if !text.trim().is_empty() => text.trim().parse().map(Some).map_err(|_| {
            Error::invalid(
                "clock_offset",
                format!("{var} must be whole seconds, found `{text}`"),
            )
        }),
        _ => Ok(None),
    }
}

/// The clock the testing hooks ask for ([`CLOCK_OFFSET_VAR`], [`CLOCK_AT_VAR`]), if any.
fn test_clock() -> Result<Option<Clock>, Error> {
    let clock: Clock = match (clock_var(CLOCK_OFFSET_VAR)?, clock_var(CLOCK_AT_VAR)?) {
        (None, None) => return Ok(None),
        (Some(offset), None) => Arc::new(move || system_clock().saturating_add(offset)),
        (None, Some(at)) => Arc::new(move || at),
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "clock_offset",
                format!("set {CLOCK_OFFSET_VAR} or {CLOCK_AT_VAR}, not both"),
            ))
        }
    };
    Ok(Some(clock))
}

/// Builds the grace-aware licensing from the global options. An invalid policy is
/// `invalid_input` (field `grace_period`, `revalidate_after` or `clock_tolerance`).
pub fn licensing(g: &Global) -> Result<Licensing, Error> {
    licensing_with(g, false)
}

/// [`licensing`], remembering the keys it activates when `remember_keys`.
pub(crate) fn licensing_with(g: &Global, remember_keys: bool) -> Result<Licensing, Error> {
    licensing_for(g, remember_keys, None, None, NoCacheDir::Fail)
}

/// What a command does when its cache directory cannot be had.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NoCacheDir {
    /// It fails with that error.
    Fail,
    /// Its machine runs with no cache ([`polar_license::LicensingBuilder::no_cache`]).
    Answer,
}

/// What `check` states about trials: the local trial's days and the trial benefit ids.
type Trials<'a> = (Option<TrialDays>, &'a [String]);

/// [`licensing_with`] for a build released on `released` (perpetual fallback), with the
/// trials `trials` states.
fn licensing_for(
    g: &Global,
    remember_keys: bool,
    released: Option<ReleaseDate>,
    trials: Option<Trials<'_>>,
    no_dir: NoCacheDir,
) -> Result<Licensing, Error> {
    let mut builder = connect!(Licensing::builder(org(g)?), g)
        .policy(policy(g))
        .require_activation(g.require_activation)
        .remember_keys(remember_keys);
    builder = match cache_dir(g) {
        Ok(dir) => builder.cache_dir(dir),
        Err(e) if no_dir == NoCacheDir::Answer && e.reason() != Reason::InvalidInput => {
            builder.no_cache(e)
        }
        Err(e) => return Err(e),
    };
    if let Some(secret) = g.app_secret.as_deref().filter(|s| !s.is_empty()) {
        builder = builder.app_secret(secret.as_bytes().to_vec());
    }
    if g.no_machine_binding {
        builder = builder.machine_binding(MachineBinding::Off);
    }
    if let Some(clock) = test_clock()? {
        builder = builder.clock(move || clock());
    }
    if let Some(map) = entitlements(g)? {
        builder = builder.entitlements(map);
    }
    if let Some(date) = released {
        builder = builder.released(date);
    }
    if let Some((days, benefits)) = trials {
        if let Some(days) = days {
            builder = builder.trial(days);
        }
        for id in benefits {
            builder = builder.trial_benefit(id.clone());
        }
    }
    let keys = g.relay_keys.iter().map(String::as_str).collect::<Vec<_>>();
    if !keys.is_empty() {
        builder = builder.relay_keys(RelayKeys::parse(&keys.join(","))?);
    }
    builder.build()
}

/// The `--relay-key`s given (`None`: none, unsigned mode).
pub fn relay_keys_of(g: &Global) -> Result<Option<RelayKeys>, Error> {
    if g.relay_keys.is_empty() {
        return Ok(None);
    }
    RelayKeys::parse(&g.relay_keys.join(",")).map(Some)
}

/// The `--entitlements` map: inline JSON or `@FILE`.
fn entitlements(g: &Global) -> Result<Option<Entitlements>, Error> {
    let Some(text) = g.entitlements.as_deref() else {
        return Ok(None);
    };
    let json = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Error::invalid("entitlements", format!("cannot read {path}: {e}")))?,
        None => text.to_string(),
    };
    Entitlements::from_json(&json).map(Some)
}

fn metadata(pairs: &[(String, MetaValue)]) -> Metadata {
    pairs.iter().cloned().collect()
}

/// `validate`: one online call, no cache answer (docs/interfaces.md §2). It sends this machine's
/// fingerprint among the conditions when it names an activation (the conditions `activate`
/// stored), and its answer updates the key's record (a revocation it sees is the next
/// check's too). When the cache cannot be used it validates online all the same, and says
/// so: `--json` adds `cache_refreshed` and `cache_error` as `check` does.
pub fn validate(g: &Global, a: &ValidateArgs) -> Report {
    let key = Key::new(a.key.key.as_str());
    let requested = a.activation_id.as_deref();
    let req = ValidateRequest {
        key: Some(key.clone()),
        activation_id: a.activation_id.clone(),
        benefit_id: a.benefit_id.clone(),
        customer_id: a.customer_id.clone(),
        increment_usage: a.increment_usage,
        conditions: metadata(&a.conditions),
    };
    // No cache directory here: the validate machine runs all the same, with no cache (the
    // answer needs none, and says the cache did not learn it). The lease the record holds
    // after it is the machine's answer too.
    let validated = match licensing_for(g, false, None, None, NoCacheDir::Answer) {
        Ok(licensing) => licensing.validate_update(&req),
        Err(e) => return error_report(Some(Op::Validate), requested, &e),
    };
    let mut r = report(Op::Validate, &key, requested, &validated.online);
    cache_write(&mut r, validated.cache_error.as_ref());
    lease_field(&mut r, validated.lease.as_ref());
    // The values the relay signed into the lease of a licensed answer (issue #68), as the
    // core reads them; null when none are known, or the answer does not license.
    entitlements_field(&mut r, validated.entitlements());
    r
}

/// `activate`: activates and remembers the activation (and the conditions it was made with,
/// the machine fingerprint included) so `check` validates it. `--json` adds `remembered`
/// (true) and `machine_bound` (whether the condition `machine_fingerprint` was added).
pub fn activate(g: &Global, a: &ActivateArgs) -> Report {
    let key = match key_or_asked(a.key.key.as_deref()) {
        Ok(key) => key,
        Err(e) => return error_report(Some(Op::Activate), None, &e),
    };
    let licensing = match licensing_with(g, a.remember) {
        Ok(l) => l,
        Err(e) => return error_report(Some(Op::Activate), None, &e),
    };
    let label = a
        .label
        .clone()
        .unwrap_or_else(polar_license::device_label::default_device_label);
    let req = ActivateRequest {
        key: Some(key.clone()),
        label,
        conditions: metadata(&a.conditions),
        meta: metadata(&a.meta),
    };
    // The activate machine checks the input, then reads the key's slot before it sends (no
    // slot is taken on Polar for a cache that cannot be opened), and says which activation
    // the record remembered before this one. A cache that can be read but not written fails
    // after Polar activated, with the new activation id in the error, so nothing is lost.
    // At the limit, this machine's own activation (a reinstall's) is found through the
    // relay or the signed-in session and used instead (issue #80).
    let session = licensing.remembered_session().ok().flatten();
    let (activated, adopted, _) =
        licensing.activate_via(&req, session.as_ref(), a.relay.as_deref());
    let previous = activated.replaced_activation_id.clone();
    let result = match activated.unremembered() {
        Some(e) => Err(e),
        None => activated.online,
    };
    let mut r = report(Op::Activate, &key, None, &result);
    crate::output::limit_steps(&mut r);
    if r.exit == 0 {
        let bound = licensing.machine_fingerprint().is_some();
        r.json.insert("remembered".into(), true.into());
        r.json.insert("machine_bound".into(), bound.into());
        r.json.insert("key_remembered".into(), a.remember.into());
        if let Some(id) = &adopted {
            r.lines.push(format!(
                "  {:<12} this machine's activation {id} was in use already: no new one taken",
                "reclaimed"
            ));
        }
        if a.remember {
            r.lines.push(format!(
                "  {:<12} the key is remembered here: check needs no --key",
                "key"
            ));
        }
        r.lines.push(format!(
            "  {:<12} remembered for `check`{}",
            "cache",
            if bound { ", bound to this machine" } else { "" }
        ));
        // Polar does not de-duplicate: the activation the cache forgot still takes a slot.
        if let Some(old) = &previous {
            r.lines.push(format!(
                "  {:<12} replaced activation {old}, which still takes a slot on Polar \
                 (free it: deactivate --activation-id {old})",
                "note"
            ));
        }
    }
    r.json.insert(
        "adopted_activation_id".into(),
        adopted.filter(|_| r.exit == 0).into(),
    );
    r.json.insert(
        "replaced_activation_id".into(),
        previous.filter(|_| r.exit == 0).into(),
    );
    lease_field(&mut r, activated.lease.as_ref());
    r
}

/// The key `activate` names (`--key`, `POLAR_LICENSE_KEY`), else one asked for on the terminal
/// when stdin is one (typed without echo, the prompt on the terminal, never on stdout); with
/// neither, `invalid_input` naming `key`, and no request.
fn key_or_asked(key: Option<&str>) -> Result<Key, Error> {
    use std::io::IsTerminal;
    if let Some(key) = key {
        return Ok(Key::new(key));
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::invalid(
            "key",
            "is required: pass --key (or POLAR_LICENSE_KEY), or run activate in a terminal to \
             be asked for it",
        ));
    }
    let typed = rpassword::prompt_password("License key (not shown as you type): ")
        .map_err(|e| Error::invalid("key", format!("could not be read from the terminal: {e}")))?;
    Ok(Key::new(typed.trim()))
}

/// The key a command names (`--key`), else the remembered one; with neither,
/// `invalid_input` naming `key`.
pub(crate) fn key_or_remembered(licensing: &Licensing, key: Option<&str>) -> Result<Key, Error> {
    if let Some(key) = key {
        return Ok(Key::new(key));
    }
    licensing.remembered_key()?.ok_or_else(|| {
        Error::invalid(
            "key",
            "is required: pass --key (or POLAR_LICENSE_KEY); no key is remembered here \
             (activate --remember, or remember --key)",
        )
    })
}

/// `--feature` needs the feature map (`--entitlements`): `invalid_input` without it.
fn feature_needs_map(g: &Global, a: &CheckArgs) -> Result<(), Error> {
    if a.feature.is_some() && g.entitlements.is_none() {
        return Err(Error::invalid(
            "entitlements",
            "--feature needs --entitlements (the feature map)",
        ));
    }
    Ok(())
}

/// `check`: the grace-aware verdict, of `--key` or the remembered key.
pub fn check(g: &Global, a: &CheckArgs) -> Report {
    let released = match a.released.as_deref().map(ReleaseDate::parse).transpose() {
        Ok(date) => date,
        Err(e) => return error_report(Some(Op::Check), None, &e),
    };
    let days = match a.trial.map(TrialDays::new).transpose() {
        Ok(days) => days,
        Err(e) => return error_report(Some(Op::Check), None, &e),
    };
    let stated = (days.is_some() || !a.trial_benefit.is_empty())
        .then_some((days, a.trial_benefit.as_slice()));
    let licensing = match licensing_for(g, false, released, stated, NoCacheDir::Fail) {
        Ok(l) => l,
        Err(e) => return error_report(Some(Op::Check), None, &e),
    };
    let key = match key_or_remembered(&licensing, a.key.key.as_deref()) {
        Ok(key) => key,
        // No key: the local trial answers, when one is stated; with `--feature`, the feature
        // rule on the trial's answer, as the Rust face's `has_feature` answers it (a local
        // trial is no license: no feature is granted by it, `license_not_valid`).
        Err(e) if days.is_some() && e.field() == Some("key") => {
            if let Err(e) = feature_needs_map(g, a) {
                return error_report(Some(Op::Check), None, &e);
            }
            let checked = licensing.check_trial_report();
            let report = trial_report(&checked);
            return match &a.feature {
                Some(name) => {
                    feature_report(report, &licensing.has_feature(&checked.outcome, name))
                }
                None => report,
            };
        }
        Err(e) => return error_report(Some(Op::Check), None, &e),
    };
    if let Err(e) = feature_needs_map(g, a) {
        return error_report(Some(Op::Check), None, &e);
    }
    // The machine checks the input before it touches the cache (bad input is `invalid_input`,
    // nothing read or written), and its report says how the check left the cache (its
    // activation, its lease): no read before or after it.
    let (checked, mut report) = checked_and_reported(&licensing, &key);
    // Its lease as the check left it (contract §5; null in unsigned mode); beside a lease,
    // `grace_ends_at` is always there (null when not licensed).
    lease_field(&mut report, checked.lease.as_ref());
    if checked.lease.is_some() {
        report
            .json
            .entry("grace_ends_at")
            .or_insert(serde_json::Value::Null);
    }
    entitlements_field(&mut report, checked.entitlements());
    if stated.is_some() {
        trial_field(&mut report, checked.trial.as_deref());
    }
    match &a.feature {
        Some(name) => feature_report(report, &licensing.has_feature(&checked.outcome, name)),
        None => report,
    }
}

/// The grace-aware check of `key` and its report, which says how the check left the cache
/// (its activation).
fn checked_and_reported(licensing: &Licensing, key: &Key) -> (CheckReport, Report) {
    let checked = licensing.check_report(key.clone());
    let report = check_report(
        key,
        &checked,
        checked.activation_id.as_deref(),
        licensing.policy(),
    );
    (checked, report)
}

/// `entitlement NAME`: the grace-aware check of `--key` or the remembered key, answered with
/// the value of the entitlement NAME its lease signed (docs/entitlements.md).
pub fn entitlement(g: &Global, a: &EntitlementArgs) -> Report {
    let licensing = match licensing_for(g, false, None, None, NoCacheDir::Fail) {
        Ok(l) => l,
        Err(e) => return error_report(Some(Op::Check), None, &e),
    };
    let key = match key_or_remembered(&licensing, a.key.key.as_deref()) {
        Ok(key) => key,
        Err(e) => return error_report(Some(Op::Check), None, &e),
    };
    let (checked, mut report) = checked_and_reported(&licensing, &key);
    report
        .json
        .insert("command".into(), serde_json::Value::from("entitlement"));
    lease_field(&mut report, checked.lease.as_ref());
    entitlements_field(&mut report, checked.entitlements());
    let (state, value) = checked.entitlement_state(&a.name);
    entitlement_report(report, &a.name, state, value)
}

/// `deactivate`: the named activation, or the remembered one; the cache forgets it.
/// `--json` adds `forgotten`: false only when an explicit `--activation-id` was deactivated
/// online while the cache could not be opened.
pub fn deactivate(g: &Global, a: &DeactivateArgs) -> Report {
    let requested = a.activation_id.as_deref();
    // A good deactivation of the remembered key forgets it too.
    let licensing = match licensing_with(g, true) {
        Ok(l) => l,
        Err(e) => return error_report(Some(Op::Deactivate), requested, &e),
    };
    let key = match key_or_remembered(&licensing, a.key.key.as_deref()) {
        Ok(key) => key,
        Err(e) => return error_report(Some(Op::Deactivate), requested, &e),
    };
    // Through the deactivate machine: the input checked first, and an explicit id needs no
    // cache (when it cannot be opened, it is deactivated online only, and not forgotten).
    let deactivated = licensing.deactivate_update(key.clone(), requested);
    let used = deactivated.activation_id.as_deref();
    let mut r = report(Op::Deactivate, &key, used, &deactivated.answer);
    let online_only = deactivated.cache_error.is_some();
    if r.exit == 0 || online_only {
        r.json.insert("forgotten".into(), (!online_only).into());
    }
    r
}

/// `status`: what the cache holds, with no request.
pub fn status(g: &Global, a: &StatusArgs) -> Report {
    let dir = match cache_dir(g) {
        Ok(d) => d,
        Err(e) => return error_report(Some(Op::Status), None, &e),
    };
    let built = licensing(g);
    let key = match (a.key.key.as_deref(), &built) {
        (Some(key), _) => Key::new(key),
        (None, Ok(licensing)) => match licensing.remembered_key() {
            Ok(Some(key)) => key,
            // No key remembered (or none that can be read here): the directory listing.
            Ok(None) | Err(_) => return dir_report(&dir),
        },
        // The listing needs no organization or server.
        (None, Err(_)) => return dir_report(&dir),
    };
    let licensing = match built {
        Ok(l) => l,
        Err(e) => return error_report(Some(Op::Status), None, &e),
    };
    match licensing.status(key.clone()) {
        Ok(status) => {
            let window = match &status.state {
                CacheState::Present(record) => record.lease_gate.window().cloned(),
                _ => None,
            };
            let mut r = status_report(&key, &dir, &status, licensing.policy());
            lease_field(&mut r, window.as_ref());
            r
        }
        Err(e) => error_report(Some(Op::Status), None, &e),
    }
}

/// `remember`: seals the key beside the cache (checked first; no request).
pub fn remember(g: &Global, a: &RememberArgs) -> Report {
    let key = Key::new(a.key.key.as_str());
    let done = cache_dir(g).and_then(|dir| {
        licensing(g)?.remember_key(key.clone())?;
        Ok(dir)
    });
    match done {
        Ok(dir) => key_report(Op::Remember, Some(&key), &dir),
        Err(e) => error_report(Some(Op::Remember), None, &e),
    }
}

/// `forget-key`: forgets the remembered key (the record stays; no request).
pub fn forget_key(g: &Global) -> Report {
    let done = cache_dir(g).and_then(|dir| {
        let licensing = licensing(g)?;
        let key = licensing.remembered_key()?;
        licensing.forget_key()?;
        Ok((dir, key))
    });
    match done {
        Ok((dir, key)) => key_report(Op::ForgetKey, key.as_ref(), &dir),
        Err(e) => error_report(Some(Op::ForgetKey), None, &e),
    }
}

/// `lease request|fetch|install`: air-gapped activation (contract §5).
pub fn lease(g: &Global, command: &LeaseCommand) -> Report {
    match command {
        LeaseCommand::Request(a) => lease_request(g, a),
        LeaseCommand::Fetch => lease_fetch(g),
        LeaseCommand::Install => lease_install(g),
    }
}

/// One line from stdin, at most what a line may hold (a longer input is refused unread).
fn stdin_line(field: &str) -> Result<String, Error> {
    use std::io::Read;
    let limit = polar_license::airgap::MAX_LINE_BYTES as u64 + 2;
    let mut text = String::new();
    std::io::stdin()
        .take(limit)
        .read_to_string(&mut text)
        .map_err(|e| Error::invalid(field, format!("could not be read from stdin: {e}")))?;
    let line = text.trim();
    if line.is_empty() {
        return Err(Error::invalid(
            field,
            "expected one line on stdin, found none",
        ));
    }
    Ok(line.to_string())
}

fn lease_request(g: &Global, a: &LeaseRequestArgs) -> Report {
    let req = ActivateRequest {
        key: Some(Key::new(a.key.key.as_str())),
        label: a.label.clone(),
        conditions: metadata(&a.conditions),
        meta: Metadata::new(),
    };
    match licensing(g).and_then(|l| l.lease_request(&req)) {
        Ok(line) => line_report(Op::LeaseRequest, &line),
        Err(e) => error_report(Some(Op::LeaseRequest), None, &e),
    }
}

fn lease_fetch(g: &Global) -> Report {
    let fetched = stdin_line("request").and_then(|line| {
        let (org, req) = polar_license::airgap::read_request(&line)?;
        // The request names its organization: --org is needed only to insist on one.
        let org = g.org.clone().filter(|o| !o.is_empty()).unwrap_or(org);
        let client = connect!(BlockingClient::builder(org), g).build()?;
        let key = req.key.unwrap_or_else(|| Key::new(""));
        Ok((key, client.lease_fetch(&line)?))
    });
    match fetched {
        Ok((_, Verdict::Accepted(line))) => line_report(Op::LeaseFetch, &line),
        Ok((key, Verdict::Denied(d))) => report::<polar_license::LicenseKeyActivationRead>(
            Op::LeaseFetch,
            &key,
            None,
            &Ok(Verdict::Denied(d)),
        ),
        Err(e) => error_report(Some(Op::LeaseFetch), None, &e),
    }
}

fn lease_install(g: &Global) -> Report {
    // Through the activate machine, with the line's answer as Polar's: its answer carries
    // the lease the record holds after it.
    let installed = stdin_line("response").and_then(|line| {
        let installed = licensing(g)?.lease_install_update(&line);
        let result = match (installed.online, installed.cache_error) {
            (Ok(Verdict::Accepted(_)), Some(e)) => Err(e),
            (online, _) => online,
        };
        Ok((result, installed.lease))
    });
    let (result, lease) = match installed {
        Ok(done) => done,
        Err(e) => return error_report(Some(Op::LeaseInstall), None, &e),
    };
    let key = match &result {
        Ok(Verdict::Accepted(read)) => read.license_key.key.clone(),
        _ => Key::new(""),
    };
    let mut r = report(Op::LeaseInstall, &key, None, &result);
    if r.exit == 0 {
        lease_field(&mut r, lease.as_ref());
    }
    r
}
