//! The one place that turns an answer into the `--json` object, the human text and the exit
//! code (docs/interfaces.md §2).
//!
//! The full license key is never printed here except inside `license.key` of the JSON object
//! (the user's own key, in the object Polar returned); everything else uses the redacted form.

use polar_license::features::{FeatureAccess, FeatureWhy};
use polar_license::grace::LeaseWindow;
use polar_license::lease::{EntitlementClaims, EntitlementValue};
use polar_license::portal::Steps;
use polar_license::proto::Relayed;
use polar_license::stopped::Stopped;
use polar_license::trial::{Trial, TrialState};
use polar_license::{
    CacheState, CacheStatus, CheckOutcome, CheckReport, EntitlementState, Error, GracePolicy, Key,
    LicenseKeyActivation, LicenseKeyActivationRead, LicenseKeyRead, Reason, ReasonClass, Source,
    Standing, ValidatedLicenseKey, Verdict,
};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The operation an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Validate,
    Activate,
    Deactivate,
    Check,
    Status,
    Remember,
    ForgetKey,
    LeaseRequest,
    LeaseFetch,
    LeaseInstall,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Validate => "validate",
            Op::Activate => "activate",
            Op::Deactivate => "deactivate",
            Op::Check => "check",
            Op::Status => "status",
            Op::Remember => "remember",
            Op::ForgetKey => "forget-key",
            Op::LeaseRequest => "lease request",
            Op::LeaseFetch => "lease fetch",
            Op::LeaseInstall => "lease install",
        }
    }

    /// What an accepted answer is called: `licensed` for validate and check, `done`
    /// otherwise.
    fn success_outcome(self) -> &'static str {
        match self {
            Op::Validate | Op::Check => "licensed",
            Op::Activate
            | Op::Deactivate
            | Op::Status
            | Op::Remember
            | Op::ForgetKey
            | Op::LeaseRequest
            | Op::LeaseFetch
            | Op::LeaseInstall => "done",
        }
    }

    /// The HTTP status of an accepted answer.
    fn success_status(self) -> u16 {
        match self {
            Op::Deactivate => 204,
            _ => 200,
        }
    }

    /// `true` for the answers that say where the verdict came from (`source`).
    fn has_source(self) -> bool {
        matches!(self, Op::Validate | Op::Check)
    }
}

/// What a successful answer carries, for the renderer.
pub trait Answer {
    /// The license-key object Polar returned, if any.
    fn license(&self) -> Option<&LicenseKeyRead>;
    /// The activation Polar returned, if any.
    fn activation(&self) -> Option<&LicenseKeyActivation>;
}

impl Answer for ValidatedLicenseKey {
    fn license(&self) -> Option<&LicenseKeyRead> {
        Some(&self.license_key)
    }
    fn activation(&self) -> Option<&LicenseKeyActivation> {
        self.activation.as_ref()
    }
}

impl Answer for LicenseKeyActivationRead {
    fn license(&self) -> Option<&LicenseKeyRead> {
        Some(&self.license_key)
    }
    fn activation(&self) -> Option<&LicenseKeyActivation> {
        Some(&self.activation)
    }
}

impl Answer for () {
    fn license(&self) -> Option<&LicenseKeyRead> {
        None
    }
    fn activation(&self) -> Option<&LicenseKeyActivation> {
        None
    }
}

/// A rendered answer: the JSON object, the human lines, where they go, and the exit code.
#[derive(Debug, Clone)]
pub struct Report {
    /// The `--json` object.
    pub json: Map<String, Value>,
    /// Human output; the first line is the verdict line.
    pub lines: Vec<String>,
    /// Human output goes to stderr (unverified answers and errors).
    pub to_stderr: bool,
    /// The process exit code.
    pub exit: u8,
}

impl Report {
    /// An answer that exits 0: `json`, and `lines` on stdout.
    pub fn ok(json: Map<String, Value>, lines: Vec<String>) -> Report {
        Report {
            json,
            lines,
            to_stderr: false,
            exit: 0,
        }
    }

    /// The verdict line (the first human line).
    pub fn headline(&self) -> &str {
        self.lines.first().map(String::as_str).unwrap_or_default()
    }

    /// `outcome` of the JSON object.
    pub fn outcome(&self) -> &str {
        self.json
            .get("outcome")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `reason` of the JSON object (`None` when null).
    pub fn reason(&self) -> Option<&str> {
        self.json.get("reason").and_then(Value::as_str)
    }

    /// Prints the report (one JSON object on stdout, or the human text) and returns the exit
    /// code.
    pub fn print(&self, as_json: bool) -> u8 {
        if as_json {
            let text = serde_json::to_string(&self.json)
                .unwrap_or_else(|_| r#"{"outcome":"error","reason":null}"#.to_string());
            print_out(&format!("{text}\n"));
        } else {
            let mut text = self.lines.join("\n");
            text.push('\n');
            if self.to_stderr {
                print_err(&text);
            } else {
                print_out(&text);
            }
        }
        self.exit
    }
}

/// Writes to stdout, ignoring a closed pipe (`polar-license … | head` must not panic).
pub fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes to stderr, ignoring errors.
pub fn print_err(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// The JSON object with every key of docs/interfaces.md §2 present (null when not applicable).
pub(crate) fn base_object(command: Option<&str>, outcome: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("outcome".into(), json!(outcome));
    m.insert("reason".into(), Value::Null);
    m.insert("detail".into(), Value::Null);
    m.insert("source".into(), Value::Null);
    m.insert("activation_id".into(), Value::Null);
    m.insert("grace_remaining_seconds".into(), Value::Null);
    m.insert("license".into(), Value::Null);
    m.insert("command".into(), json!(command));
    m
}

/// Renders an answer of `op` for `key`. `requested_activation` is the activation id the user
/// named, reported when the answer itself carries none.
pub fn report<T: Answer>(
    op: Op,
    key: &Key,
    requested_activation: Option<&str>,
    result: &Result<Verdict<T>, Error>,
) -> Report {
    let shown = key.redacted();
    match result {
        Ok(Verdict::Accepted(answer)) => accepted(op, &shown, requested_activation, answer),
        Ok(Verdict::Denied(denial)) => {
            let mut m = base_object(Some(op.name()), "denied");
            m.insert("reason".into(), json!(denial.reason.code()));
            m.insert("detail".into(), json!(denial.detail));
            if op.has_source() {
                // `check` never answers a denial from the cache: it is always Polar's.
                m.insert("source".into(), json!("online"));
            }
            m.insert("activation_id".into(), json!(requested_activation));
            m.insert("status".into(), json!(denial.status));
            m.insert("remaining_usages".into(), json!(denial.remaining_usages));
            m.insert("previously_valid".into(), json!(denial.previously_valid));
            m.insert("activation_gone".into(), json!(denial.activation_gone));
            // Issue #68 (an addition): why the key stopped, when the relay told.
            m.insert("stopped".into(), stopped_json(denial.stopped.as_ref()));
            m.insert("hint".into(), json!(denial.hint()));
            // The core's one sentence and one next step (every face's words, none of ours).
            let said = denial.message();
            m.insert("user_message".into(), json!(said.text()));
            m.insert("next_step".into(), json!(said.next_step()));
            let mut lines = vec![format!(
                "denied: {} — {}",
                denial.reason.code(),
                denial.detail
            )];
            lines.push(format!("  {}", said.sentence()));
            if let Some(s) = &denial.stopped {
                lines.push(format!("  stopped: {}", stopped_text(s)));
            }
            lines.push(format!("  what to do: {}", said.next_step()));
            lines.push(fact("key", &shown));
            if let Some(id) = requested_activation {
                lines.push(fact("activation", id));
            }
            if let Some(n) = denial.remaining_usages {
                lines.push(fact("usages left", &n.to_string()));
            }
            Report {
                json: m,
                lines,
                to_stderr: false,
                exit: exit_code(denial.reason),
            }
        }
        Err(error) => error_report(Some(op), requested_activation, error),
    }
}

fn accepted<T: Answer>(op: Op, shown: &str, requested: Option<&str>, answer: &T) -> Report {
    let mut m = base_object(Some(op.name()), op.success_outcome());
    if op.has_source() {
        m.insert("source".into(), json!("online"));
    }
    let activation = answer.activation();
    let activation_id = activation.map(|a| a.id.as_str()).or(requested);
    m.insert("activation_id".into(), json!(activation_id));
    if let Some(license) = answer.license() {
        m.insert("license".into(), to_value(license));
    }
    m.insert(
        "activation".into(),
        activation.map_or(Value::Null, to_value),
    );
    m.insert("status".into(), json!(op.success_status()));
    if let Some(license) = answer.license() {
        m.insert("remaining_usages".into(), json!(license.remaining_usage()));
    }
    // The core's words for a licensed answer and a freed seat (issue #80), as every face says
    // them (a check's, online or from the cache, are its report's: `check_report`).
    match op {
        Op::Validate => {
            m.insert(
                "user_message".into(),
                json!(polar_license::message::LICENSED),
            );
        }
        Op::Deactivate => {
            let said = polar_license::message::DEACTIVATED;
            m.insert("user_message".into(), json!(said.text()));
            m.insert("next_step".into(), json!(said.next_step()));
        }
        _ => {}
    }

    let mut lines = vec![match op {
        Op::Validate | Op::Check => format!("licensed {shown}"),
        Op::Activate => format!("activated {shown}"),
        Op::Deactivate => format!("deactivated {shown}"),
        Op::Status => format!("cache for {shown}"),
        Op::Remember => format!("remembered {shown}"),
        Op::ForgetKey => format!("forgot {shown}"),
        Op::LeaseRequest | Op::LeaseFetch => format!("activation of {shown}"),
        Op::LeaseInstall => format!("installed the activation of {shown}"),
    }];
    if let Some(a) = activation {
        lines.push(fact("activation", &format!("{} ({:?})", a.id, a.label)));
    } else if op == Op::Deactivate {
        if let Some(id) = requested {
            lines.push(fact("activation", &format!("{id} (slot freed)")));
        }
    }
    if let Some(license) = answer.license() {
        lines.extend(license_facts(license));
    }
    Report::ok(m, lines)
}

/// Renders an error (no trustworthy answer). `op` is `None` outside the operations.
///
/// For `check`, `source` stays null: an unverified answer (`offline`, `grace_expired`,
/// `clock_rollback`, a `rate_limited` block…) is no verdict from either side.
pub fn error_report(op: Option<Op>, requested_activation: Option<&str>, error: &Error) -> Report {
    let reason = error.reason();
    let outcome = match reason.class() {
        ReasonClass::Unverified => "unverified",
        ReasonClass::Denied | ReasonClass::Error => "error",
    };
    let mut m = base_object(op.map(Op::name), outcome);
    m.insert("reason".into(), json!(reason.code()));
    m.insert("detail".into(), json!(error.detail()));
    let said = error.message();
    m.insert("user_message".into(), json!(said.text()));
    m.insert("next_step".into(), json!(said.next_step()));
    // A request left only when the input was good.
    if op == Some(Op::Validate) && reason != Reason::InvalidInput {
        m.insert("source".into(), json!("online"));
    }
    m.insert("activation_id".into(), json!(requested_activation));
    m.insert("status".into(), json!(error.status()));
    match error {
        Error::InvalidInput { field, .. } => {
            m.insert("field".into(), json!(field));
        }
        Error::RateLimited { retry_after } => {
            m.insert("retry_after".into(), json!(retry_after));
        }
        Error::Offline { timeout, .. } => {
            m.insert("timeout".into(), json!(timeout));
        }
        _ => {}
    }
    // The core's one sentence and one next step (every face's words, none of ours); a refused
    // input is said by its first line, which names the flag (the core's words for it speak to
    // an app's user of its settings).
    let mut lines = vec![format!("{outcome}: {} — {}", reason.code(), error.detail())];
    if reason != Reason::InvalidInput {
        lines.push(format!("  {}", said.sentence()));
        lines.push(format!("  what to do: {}", said.next_step()));
    }
    Report {
        json: m,
        lines,
        to_stderr: true,
        exit: exit_code(reason),
    }
}

/// A denial's detail in `--json` (issue #68): `{"kind", "at", "until"}` (dates RFC 3339 or
/// null), or null.
fn stopped_json(s: Option<&Stopped>) -> serde_json::Value {
    match s {
        None => serde_json::Value::Null,
        Some(s) => json!({
            "kind": s.kind.code(),
            "at": s.at.map(unix_when),
            "until": s.until.map(unix_when),
        }),
    }
}

/// A denial's detail in the text output: what stopped the key and its dates (its words are
/// the `what to do:` line's, the core's sentence).
fn stopped_text(s: &Stopped) -> String {
    let mut dates = Vec::new();
    if let Some(at) = s.at {
        dates.push(format!("since {}", unix_when(at)));
    }
    if let Some(until) = s.until {
        dates.push(format!("resumes {}", unix_when(until)));
    }
    if dates.is_empty() {
        s.kind.code().to_string()
    } else {
        format!("{} ({})", s.kind.code(), dates.join(", "))
    }
}

/// A usage error (clap's, or ours before any client exists): `invalid_input`, exit 2.
pub fn usage_report(command: Option<&str>, field: Option<&str>, message: &str) -> Report {
    let mut m = base_object(command, "error");
    m.insert("reason".into(), json!(Reason::InvalidInput.code()));
    m.insert("detail".into(), json!(message));
    m.insert("field".into(), json!(field));
    Report {
        json: m,
        lines: vec![format!("error: invalid_input — {message}")],
        to_stderr: true,
        exit: exit_code(Reason::InvalidInput),
    }
}

/// The exit code of a reason, as a process status byte.
fn exit_code(reason: Reason) -> u8 {
    u8::try_from(reason.exit_code()).unwrap_or(3)
}

fn to_value<S: serde::Serialize>(value: &S) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn fact(name: &str, value: &str) -> String {
    format!("  {name:<12} {value}")
}

fn when(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Unix seconds as RFC 3339 (UTC).
pub fn unix_when(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).map_or_else(|_| t.to_string(), |t| when(&t))
}

/// `6d 23h`, `2h 5m`, `4m 10s`, `42s`.
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Renders a `check` answer. `remembered` is the activation the cache remembers for the key.
///
/// `--json` adds to the keys of docs/interfaces.md §2: `verified_at` (RFC 3339, when the verdict
/// was obtained online; null unless licensed), `cache_refreshed` (false when the cache could not be
/// written: the answer stands but the record was not refreshed) and `cache_error` (its detail, or
/// null), and, like `validate`, `activation`, `status` (of an online answer) and
/// `remaining_usages`. `grace_remaining_seconds` is set for a cache answer only. A licensed answer
/// from the cache after Polar was asked carries what happened online in `reason` and `detail`
/// (docs/interfaces.md §4: `offline`, `rate_limited`, `server_error` or `protocol_error`).
/// `relay_source` says where a relay took an online verdict from (`polar`, `store` or
/// `stale`; null without a relay or for the cache's answers).
pub fn check_report(
    key: &Key,
    checked: &CheckReport,
    remembered: Option<&str>,
    policy: &GracePolicy,
) -> Report {
    let shown = key.redacted();
    let mut r = match &checked.outcome {
        CheckOutcome::Licensed {
            source,
            license,
            grace_remaining,
            verified_at,
        } => {
            let mut r = accepted(Op::Check, &shown, remembered, license.as_ref());
            r.json.insert("source".into(), json!(source.as_str()));
            r.json
                .insert("verified_at".into(), json!(unix_when(*verified_at)));
            // Signed mode: never past the end of the lease the report carries.
            let ends = checked.grace_ends_at(policy).map(unix_when);
            r.json.insert("grace_ends_at".into(), json!(ends));
            r.json
                .insert("user_message".into(), json!(checked.licensed_message()));
            if let Some(why) = &checked.fallback {
                r.json.insert("reason".into(), json!(why.reason().code()));
                r.json.insert("detail".into(), json!(why.detail()));
            }
            let after = checked.fallback.as_ref().map_or(String::new(), |why| {
                format!(" after {}", why.reason().code())
            });
            let headline = match (source, grace_remaining) {
                (Source::Cache, Some(left)) => {
                    r.json
                        .insert("grace_remaining_seconds".into(), json!(left.as_secs()));
                    r.json.insert("status".into(), Value::Null);
                    format!(
                        "licensed {shown} (from cache{after}, grace {} left)",
                        span(*left)
                    )
                }
                (Source::Cache, None) => format!("licensed {shown} (from cache{after})"),
                (Source::Online, _) => format!("licensed {shown} (online)"),
            };
            r.lines[0] = headline;
            if let Some(why) = &checked.fallback {
                r.lines.push(fact(
                    "online",
                    &format!("{} — {}", why.reason().code(), why.detail()),
                ));
            }
            r.lines.push(fact("verified", &unix_when(*verified_at)));
            r
        }
        CheckOutcome::Denied(denial) => report(
            Op::Check,
            key,
            remembered,
            &Ok(Verdict::<()>::Denied(denial.clone())),
        ),
        CheckOutcome::Unverified(error) => error_report(Some(Op::Check), remembered, error),
    };
    r.json.entry("verified_at").or_insert(Value::Null);
    perpetual_fields(&mut r, checked);
    // Through a relay: where it took Polar's verdict from (`polar`, `store`, `stale`).
    let relayed = checked.relayed.map(Relayed::as_str);
    r.json.insert("relay_source".into(), json!(relayed));
    match checked.relayed {
        Some(Relayed::Store) => r
            .lines
            .push(fact("relay", "Polar's answer from the relay's store")),
        Some(Relayed::Stale) => r.lines.push(fact(
            "relay",
            "a stale grant from the relay's store (Polar could not be asked)",
        )),
        _ => {}
    }
    cache_write(&mut r, checked.cache_error.as_ref());
    r
}

/// The report of `lease request` and `lease fetch`: the one line to carry across, alone on
/// stdout (so it can be piped or redirected), and as `line` in the JSON.
pub fn line_report(op: Op, line: &str) -> Report {
    let mut m = base_object(Some(op.name()), "done");
    m.insert("line".into(), json!(line));
    Report::ok(m, vec![line.to_string()])
}

/// Adds `lease` to a report (`{"kid":…,"expires_at":…}` or null, contract §5) and, when there
/// is one, a human line with its key and end.
pub fn lease_field(r: &mut Report, lease: Option<&LeaseWindow>) {
    let value = lease.map(|w| json!({"kid": w.kid, "expires_at": unix_when(w.expires_at)}));
    r.json.insert("lease".into(), value.unwrap_or(Value::Null));
    if let Some(w) = lease {
        r.lines.push(fact(
            "lease",
            &format!(
                "signed by {}, good offline until {}",
                w.kid,
                unix_when(w.expires_at)
            ),
        ));
    }
}

/// Adds `cache_refreshed` and `cache_error` to a report, and a warning line when the cache
/// could not be written.
pub fn cache_write(r: &mut Report, error: Option<&Error>) {
    r.json
        .insert("cache_refreshed".into(), json!(error.is_none()));
    r.json
        .insert("cache_error".into(), json!(error.map(Error::detail)));
    if let Some(e) = error {
        r.lines.push(fact(
            "warning",
            &format!("the cache was not refreshed: {}", e.detail()),
        ));
    }
}

/// Adds the answer of `check --feature` to a check report: a `feature` object in the JSON, a
/// first human line, and the exit code (0 granted, 1 not granted, 3 when the license could
/// not be verified at all).
pub fn feature_report(mut r: Report, access: &FeatureAccess) -> Report {
    r.json.insert(
        "feature".into(),
        json!({
            "name": access.feature,
            "granted": access.granted,
            "why": access.why.code(),
            "remaining_usage": access.remaining_usage,
        }),
    );
    let line = match (access.granted, access.remaining_usage) {
        (true, Some(left)) => format!("feature {}: granted ({left} uses left)", access.feature),
        (true, None) => format!("feature {}: granted", access.feature),
        (false, _) => format!(
            "feature {}: not granted ({})",
            access.feature,
            access.why.code()
        ),
    };
    r.lines.insert(0, line);
    // Not granted: the license's own failure keeps its exit; otherwise 1 (a licensed key
    // whose benefit does not grant it, or a local trial running: no feature is granted by it).
    r.exit = match (access.granted, access.why) {
        (true, _) => 0,
        (false, FeatureWhy::LicenseNotValid) if r.exit != 0 => r.exit,
        (false, _) => 1,
    };
    r
}

/// Renders `status --key`: what the cache holds for the key, read with no request.
///
/// `outcome` is `done` (exit 0) whatever the cache holds; `reason` stays null, also for an
/// untrusted record, which is no error (docs/interfaces.md §1: it is treated as no cache):
/// `cache.state` says `empty`, `untrusted` (with `cache.untrusted`: `bad_mac`, `malformed`,
/// `unknown_version` or `replayed`) or `present`. Only a cache that cannot be read at all is an
/// error (`cache_error`, exit 3). The top-level `activation_id` is the remembered activation (also
/// one an untrusted record still names: the next check validates it online) and
/// `grace_remaining_seconds` how long the cache could license if Polar were unreachable now.
/// `cache.stalled_answers` counts the cached answers given at a clock that did not move.
/// `standing` (top level and in `cache`) says it in one word: `licensed` (a check would
/// license from the cache now), `denied` (Polar's last answer about the key, from any command,
/// was a denial: then `license_status` is null and `revalidate_in_seconds` 0, the good verdict
/// before it only history), `lapsed` or `none`.
pub fn status_report(key: &Key, dir: &Path, s: &CacheStatus, policy: &GracePolicy) -> Report {
    let shown = key.redacted();
    let mut m = base_object(Some(Op::Status.name()), "done");
    m.insert("standing".into(), json!(s.standing.as_str()));
    let mut c = Map::new();
    c.insert("standing".into(), json!(s.standing.as_str()));
    for field in [
        "state",
        "untrusted",
        "verified_at",
        "verified_seconds_ago",
        "grace_remaining_seconds",
        "revalidate_in_seconds",
        "activation",
        "denied",
        "blocked_until",
        "clock_rollback_seconds",
        "license_status",
        "expires_at",
        "stalled_answers",
    ] {
        c.insert(field.into(), Value::Null);
    }
    c.insert("dir".into(), json!(dir.display().to_string()));
    c.insert("display_key".into(), json!(shown));
    let mut lines = Vec::new();
    let detail = match &s.state {
        CacheState::Empty => {
            c.insert("state".into(), json!("empty"));
            lines.push(format!(
                "cache for {shown}: empty (the next check asks Polar)"
            ));
            "empty".to_string()
        }
        CacheState::Untrusted(why) => {
            c.insert("state".into(), json!("untrusted"));
            c.insert("untrusted".into(), json!(why.as_str()));
            let text = "present but not trusted: treated as no cache";
            lines.push(format!("cache for {shown}: {text}"));
            lines.push(fact("why", &format!("{} ({why})", why.as_str())));
            if let Some(a) = &s.activation {
                // An activation id is no secret: the next check validates it online rather
                // than the app taking a new slot.
                m.insert("activation_id".into(), json!(a.id));
                c.insert(
                    "activation".into(),
                    json!({"id": a.id, "label": a.label, "created_at": unix_when(a.created_at)}),
                );
                lines.push(fact(
                    "activation",
                    &format!(
                        "{} ({:?}), named by the untrusted record: the next check validates it \
                         online",
                        a.id, a.label
                    ),
                ));
            }
            text.to_string()
        }
        CacheState::Present(record) => {
            c.insert("state".into(), json!("present"));
            lines.push(format!(
                "cache for {shown}: present, {}",
                s.standing.as_str()
            ));
            match &record.good {
                Some(good) => {
                    let age = s.now.saturating_sub(good.verified_at);
                    c.insert("verified_at".into(), json!(unix_when(good.verified_at)));
                    c.insert("verified_seconds_ago".into(), json!(age));
                    let denied = s.standing == Standing::Denied;
                    let revalidate = if denied {
                        0 // the next check asks Polar
                    } else {
                        i64::try_from(policy.revalidate_after.as_secs())
                            .unwrap_or(i64::MAX)
                            .saturating_sub(age)
                            .max(0)
                    };
                    c.insert("revalidate_in_seconds".into(), json!(revalidate));
                    let l = &good.license.license_key;
                    // What the license said when it was last good: not its status since a
                    // denial was seen.
                    let status = (!denied).then(|| l.status.as_str());
                    c.insert("license_status".into(), json!(status));
                    c.insert("expires_at".into(), json!(l.expires_at.as_ref().map(when)));
                    let ago = Duration::from_secs(u64::try_from(age).unwrap_or(0));
                    lines.push(fact(
                        "verified",
                        &format!("{} ({} ago)", unix_when(good.verified_at), span(ago)),
                    ));
                }
                None => lines.push(fact("verified", "never (no good online verdict yet)")),
            }
            lines.push(fact(
                "grace",
                &s.grace_remaining.map_or_else(
                    || "none: the cache cannot license now".to_string(),
                    |left| format!("{} left", span(left)),
                ),
            ));
            match &record.activation {
                Some(a) => {
                    m.insert("activation_id".into(), json!(a.id));
                    c.insert(
                        "activation".into(),
                        json!({"id": a.id, "label": a.label, "created_at": unix_when(a.created_at)}),
                    );
                    lines.push(fact("activation", &format!("{} ({:?})", a.id, a.label)));
                }
                None => lines.push(fact("activation", "none remembered")),
            }
            if let (Some(d), Some(denial)) = (&record.denied, record.denial()) {
                c.insert(
                    "denied".into(),
                    json!({"reason": d.reason.code(), "detail": d.detail, "status": d.status,
                           "at": unix_when(d.at), "previously_valid": denial.previously_valid,
                           "hint": denial.hint()}),
                );
                lines.push(fact(
                    "denied",
                    &format!("{} — {} ({})", d.reason.code(), d.detail, unix_when(d.at)),
                ));
            }
            if let Some(until) = record.blocked_until {
                c.insert("blocked_until".into(), json!(unix_when(until)));
                let left = until.saturating_sub(s.now);
                lines.push(fact(
                    "blocked",
                    &if left > 0 {
                        format!(
                            "rate limited: no request before {} ({left} s)",
                            unix_when(until)
                        )
                    } else {
                        format!("rate limited until {} (over)", unix_when(until))
                    },
                ));
            }
            c.insert("stalled_answers".into(), json!(record.stalled));
            if record.is_stalled(s.now) {
                lines.push(fact(
                    "clock",
                    &format!(
                        "has not moved across {} answers from the cache: the next check asks \
                         Polar",
                        record.stalled
                    ),
                ));
            }
            "present".to_string()
        }
    };
    if let Some(by) = s.clock_rollback {
        c.insert("clock_rollback_seconds".into(), json!(by));
        lines.push(fact(
            "clock",
            &format!("moved back {by} s: clock_rollback until Polar answers"),
        ));
    }
    if let Some(left) = s.grace_remaining {
        m.insert("grace_remaining_seconds".into(), json!(left.as_secs()));
        c.insert("grace_remaining_seconds".into(), json!(left.as_secs()));
        if let CacheState::Present(record) = &s.state {
            if let Some(good) = &record.good {
                let ends = policy.grace_end_leased(good.verified_at, record.lease_gate.window());
                c.insert("grace_ends_at".into(), json!(unix_when(ends)));
            }
        }
    }
    lines.push(fact("dir", &dir.display().to_string()));
    m.insert("detail".into(), json!(detail));
    m.insert("cache".into(), Value::Object(c));
    Report::ok(m, lines)
}

/// Renders `status` without a key: how many records the cache directory holds. They are
/// sealed per key, so nothing more can be read (or verified) without one.
pub fn dir_report(dir: &Path) -> Report {
    let records = match std::fs::read_dir(dir) {
        Ok(entries) => Some(
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".cache")
                        && !name.starts_with('.')
                        && !name.starts_with("key-")
                        && !name.starts_with("session-")
                        && !name.ends_with("-seq.cache")
                        && !name.ends_with("-clock.cache")
                })
                .count(),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            let error = Error::Cache {
                detail: format!("read {}: {e}", dir.display()),
            };
            return error_report(Some(Op::Status), None, &error);
        }
    };
    let count = records.unwrap_or(0);
    let detail = format!(
        "{count} record(s); each is sealed with its license key and cannot be read or verified \
         without it: pass --key"
    );
    let mut m = base_object(Some(Op::Status.name()), "done");
    m.insert("detail".into(), json!(detail));
    m.insert(
        "cache".into(),
        json!({"dir": dir.display().to_string(), "exists": records.is_some(), "records": count}),
    );
    let headline = match records {
        Some(_) => format!("cache dir {}: {count} record(s)", dir.display()),
        None => format!("cache dir {}: not created yet", dir.display()),
    };
    Report::ok(
        m,
        vec![
            headline,
            "  records are sealed per license key: pass --key KEY to read one".into(),
        ],
    )
}

/// The key facts of a license: status, usage, activations, validations, expiry.
pub fn license_facts(l: &LicenseKeyRead) -> Vec<String> {
    let mut lines = vec![fact("status", l.status.as_str())];
    lines.push(fact(
        "usage",
        &match l.limit_usage {
            Some(limit) => format!(
                "{} of {limit} ({} left)",
                l.usage,
                limit.saturating_sub(l.usage)
            ),
            None => format!("{} (no limit)", l.usage),
        },
    ));
    lines.push(fact(
        "activations",
        &match l.limit_activations {
            Some(n) if n > 0 => format!("limit {n}"),
            _ => "not supported (validate only)".to_string(),
        },
    ));
    lines.push(fact(
        "validations",
        &match &l.last_validated_at {
            Some(t) => format!("{} (last {})", l.validations, when(t)),
            None => l.validations.to_string(),
        },
    ));
    lines.push(fact(
        "expires",
        &l.expires_at
            .as_ref()
            .map_or_else(|| "never".to_string(), when),
    ));
    if let Some(m) = &l.member {
        lines.push(fact("member", m.email.as_deref().unwrap_or(&m.id)));
    }
    if let Some(s) = &l.subscription {
        let period = match (s.cancel_at_period_end, &s.current_period_end) {
            (true, Some(end)) => format!(", ends {}", when(end)),
            (false, Some(end)) => format!(", renews {}", when(end)),
            (_, None) => String::new(),
        };
        lines.push(fact("subscription", &format!("{}{period}", s.status)));
    }
    if let Some(o) = &l.order {
        lines.push(fact("order", &format!("{} ({})", o.id, o.status)));
    }
    lines
}

/// Renders `remember` and `forget-key`: done, with the key redacted (`key`: its display form,
/// or null when none was remembered) and where it is kept.
pub fn key_report(op: Op, key: Option<&Key>, dir: &Path) -> Report {
    let shown = key.map(Key::redacted);
    let detail = match (op, &shown) {
        (Op::Remember, Some(k)) => format!("{k} remembered, sealed in {}", dir.display()),
        (_, Some(k)) => format!("{k} forgotten (its cache record stays)"),
        (_, None) => "no license key was remembered".to_string(),
    };
    let mut m = base_object(Some(op.name()), "done");
    m.insert("detail".into(), json!(detail));
    m.insert("key".into(), json!(shown));
    m.insert("dir".into(), json!(dir.display().to_string()));
    Report::ok(m, vec![detail])
}

/// Perpetual fallback (`check --released`): `released` (the build's date), `paid_through` (RFC
/// 3339, or null when no end is known) and `fallback` (true when the answer licenses only
/// because the build is not newer than the paid time), and `fallback_refused` (signed mode: why
/// no fallback was taken for want of a signature, issue #62; else null). Absent without
/// `--released`.
fn perpetual_fields(r: &mut Report, checked: &CheckReport) {
    let Some(p) = checked.perpetual else {
        return;
    };
    let paid = p.paid_through.map(unix_when);
    r.json
        .insert("released".into(), json!(p.released.to_string()));
    r.json.insert("paid_through".into(), json!(paid));
    r.json.insert("fallback".into(), json!(p.fallback));
    r.json.insert("fallback_refused".into(), json!(p.refused));
    if let Some(why) = p.refused {
        r.lines.push(fact("no fallback", why));
    }
    if p.fallback {
        r.lines.push(fact(
            "fallback",
            &format!(
                "the key's paid time ended {}; this build (released {}) stays licensed, newer ones need a renewal",
                paid.as_deref().unwrap_or("?"),
                p.released
            ),
        ));
    } else if let Some(paid) = paid.as_deref() {
        r.lines.push(fact("paid through", paid));
    }
}

/// Trials (`check --trial`, `--trial-benefit`): `trial` is null for a key that is not a
/// trial, else `{local, state, started_at, ends_at, days_left}` (times RFC 3339 or null).
pub fn trial_field(r: &mut Report, trial: Option<&Trial>) {
    let Some(t) = trial else {
        r.json.insert("trial".into(), Value::Null);
        return;
    };
    r.json.insert(
        "trial".into(),
        json!({
            "local": t.local,
            "state": t.state.as_str(),
            "started_at": t.started_at.map(unix_when),
            "ends_at": t.ends_at.map(unix_when),
            "days_left": t.days_left,
        }),
    );
    let ends = t.ends_at.map(unix_when);
    let line = match (t.state, ends.as_deref()) {
        (TrialState::Active, Some(end)) => {
            format!("{} day(s) left, ends {end}", t.days_left)
        }
        (TrialState::Active, None) => "running".to_string(),
        (TrialState::Ended, Some(end)) => format!("ended {end}"),
        (TrialState::Ended, None) => "ended".to_string(),
        (TrialState::Refused, _) => {
            "refused: its record was edited or copied, or the clock set back".to_string()
        }
    };
    r.lines.push(fact("trial", &line));
}

/// `check --trial` with no key: the local trial's answer. While it runs, outcome `trial`
/// (reason null, exit 0); once ended or refused, the check's own answer with no key
/// (`invalid_input`, field `key`, exit 2) or `clock_rollback` (exit 3); `trial` in each.
pub fn trial_report(checked: &CheckReport) -> Report {
    let mut r = match (&checked.outcome, checked.trial.as_deref().copied()) {
        (_, Some(t)) if t.is_active() => {
            let mut r = Report::ok(
                base_object(Some(Op::Check.name()), "trial"),
                vec![format!("trial: {} day(s) left", t.days_left)],
            );
            r.json.insert("verified_at".into(), Value::Null);
            r
        }
        (CheckOutcome::Unverified(e), trial) => {
            let mut r = error_report(Some(Op::Check), None, e);
            // The trial's words in place of the missing key's (the core's, `Trial::message`).
            if let Some(said) = trial.and_then(|t| t.message()) {
                r.json.insert("user_message".into(), json!(said.text()));
                r.json.insert("next_step".into(), json!(said.next_step()));
                r.lines[0] = format!("trial ended: {}", said.sentence());
                r.lines.truncate(1);
                r.lines.push(format!("  what to do: {}", said.next_step()));
            }
            r
        }
        (outcome, _) => error_report(
            Some(Op::Check),
            None,
            &Error::Cache {
                detail: format!("unexpected trial answer: {}", outcome.kind()),
            },
        ),
    };
    trial_field(&mut r, checked.trial.as_deref());
    r
}

/// `activate` refused at the activation limit: the text adds how to free a seat from here
/// (`sign-in`, `devices`, `free`), after the refusal's own `what to do:` line.
pub fn limit_steps(r: &mut Report) {
    if r.json.get("reason") == Some(&json!(Reason::ActivationLimit.code())) {
        let at = r
            .lines
            .iter()
            .position(|l| l.starts_with("  what to do:"))
            .map_or(r.lines.len(), |i| i + 1);
        // The core words it around this command line's commands (`Steps::free_a_seat`).
        let step = steps(false).free_a_seat();
        r.lines.insert(at, format!("  or from here: {step}"));
    }
}

/// Adds `entitlements` to a report of `check` or `validate` (issue #68, docs/entitlements.md):
/// the Feature Flag values the relay signed into the lease of a licensed answer, by name, or
/// null when none are known (unsigned mode, a relay without `--sign-entitlements`, an answer
/// that does not license). A human line lists them when they are known.
pub fn entitlements_field(r: &mut Report, claims: Option<&EntitlementClaims>) {
    let Some(claims) = claims else {
        r.json.insert("entitlements".into(), Value::Null);
        return;
    };
    let values: Map<String, Value> = claims
        .values
        .iter()
        .map(|(name, value)| (name.clone(), json!(value)))
        .collect();
    r.json.insert("entitlements".into(), Value::Object(values));
    let listed = claims
        .values
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ");
    let listed = if listed.is_empty() {
        "none granted (signed by the relay)".to_string()
    } else {
        listed
    };
    r.lines.push(fact("entitlements", &listed));
}

/// Exit code of `entitlement NAME` when the key is licensed but Polar grants it no such value.
pub const EXIT_ENTITLEMENT_ABSENT: u8 = 4;
/// Exit code of `entitlement NAME` when the key is licensed but no values are known.
pub const EXIT_ENTITLEMENT_UNKNOWN: u8 = 5;

/// The answer of `entitlement NAME` from its check's report `r` and the signed values of that
/// check (`claims`, the core's `CheckReport::entitlements`): the value alone on stdout, exit 0,
/// when granted; exit 4 and a line saying so when the key is granted no such value; exit 5 when
/// no values are known (`signed`: whether the command runs in signed mode, for what to do). An
/// answer that does not license stays the check's own (its exit, its lines). `--json` adds
/// `entitlement` `{name, value, state}` (state `granted`, `absent`, `unknown` or
/// `not_licensed`).
pub fn entitlement_report(
    mut r: Report,
    name: &str,
    state: EntitlementState,
    value: Option<&EntitlementValue>,
) -> Report {
    // `--json` says `unknown` for both kinds of "no values" (docs/interfaces.md); the text
    // says which.
    let code = match state {
        EntitlementState::Unsigned => EntitlementState::Unknown.code(),
        other => other.code(),
    };
    r.json.insert(
        "entitlement".into(),
        json!({"name": name, "value": value, "state": code}),
    );
    if let (EntitlementState::Granted, Some(v)) = (state, value) {
        r.lines = vec![v.to_string()];
        r.to_stderr = false;
        return r;
    }
    // The core's one sentence and one next step for the state (issue #80: the command line
    // kept its own wording, which told the seller to set a flag already set).
    let Some(said) = state.message() else {
        return r;
    };
    r.exit = match state {
        EntitlementState::Absent => EXIT_ENTITLEMENT_ABSENT,
        _ => EXIT_ENTITLEMENT_UNKNOWN,
    };
    let headline = format!("entitlement {name}: {}", said.text());
    r.to_stderr = true;
    r.lines.insert(0, headline);
    r
}

/// How this command line takes a portal step (its commands and flags), for the core to word
/// the step around (`PortalError::message_with`, `Steps::free_a_seat`): `relay` when the
/// failing command could list through the seller's relay instead (`devices`).
pub(crate) fn steps(relay: bool) -> Steps<'static> {
    Steps {
        sign_in: "polar-license sign-in --email EMAIL",
        code: "polar-license sign-in --code CODE",
        customer: "--customer-id ID",
        key: "--key KEY",
        devices: "polar-license devices",
        free: "polar-license free ID",
        activate: "polar-license activate",
        keys: "polar-license recover",
        use_key: "polar-license recover ID",
        relay: relay.then_some("--relay URL"),
    }
}
