//! The one place that turns an answer into the `--json` object, the human text and the exit
//! code (shared/contract.md §2).
//!
//! The full license key is never printed here except inside `license.key` of the JSON object
//! (the user's own key, in the object Polar returned); everything else uses the redacted form.

use polar_license::{
    Error, Key, LicenseKeyActivation, LicenseKeyActivationRead, LicenseKeyRead, Reason,
    ReasonClass, ValidatedLicenseKey, Verdict,
};
use serde_json::{json, Map, Value};
use std::io::Write;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The operation an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Validate,
    Activate,
    Deactivate,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Validate => "validate",
            Op::Activate => "activate",
            Op::Deactivate => "deactivate",
        }
    }

    /// What an accepted answer is called: `licensed` for validate, `done` otherwise.
    fn success_outcome(self) -> &'static str {
        match self {
            Op::Validate => "licensed",
            Op::Activate | Op::Deactivate => "done",
        }
    }

    /// The HTTP status of an accepted answer.
    fn success_status(self) -> u16 {
        match self {
            Op::Validate | Op::Activate => 200,
            Op::Deactivate => 204,
        }
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

/// The JSON object with every contract key present (null when not applicable).
fn base_object(command: Option<&str>, outcome: &str) -> Map<String, Value> {
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
            if op == Op::Validate {
                m.insert("source".into(), json!("online"));
            }
            m.insert("activation_id".into(), json!(requested_activation));
            m.insert("status".into(), json!(denial.status));
            m.insert("remaining_usages".into(), json!(denial.remaining_usages));
            let mut lines = vec![format!(
                "denied: {} — {}",
                denial.reason.code(),
                denial.detail
            )];
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
    if op == Op::Validate {
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

    let mut lines = vec![match op {
        Op::Validate => format!("licensed {shown}"),
        Op::Activate => format!("activated {shown}"),
        Op::Deactivate => format!("deactivated {shown}"),
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
    Report {
        json: m,
        lines,
        to_stderr: false,
        exit: 0,
    }
}

/// Renders an error (no trustworthy answer). `op` is `None` outside the three operations.
pub fn error_report(op: Option<Op>, requested_activation: Option<&str>, error: &Error) -> Report {
    let reason = error.reason();
    let outcome = match reason.class() {
        ReasonClass::Unverified => "unverified",
        ReasonClass::Denied | ReasonClass::Error => "error",
    };
    let mut m = base_object(op.map(Op::name), outcome);
    m.insert("reason".into(), json!(reason.code()));
    m.insert("detail".into(), json!(error.detail()));
    // A request left only when the input was good.
    if op == Some(Op::Validate) && reason != Reason::InvalidInput {
        m.insert("source".into(), json!("online"));
    }
    m.insert("activation_id".into(), json!(requested_activation));
    let status = match error {
        Error::Protocol { status, .. } => *status,
        Error::ServerError { status, .. } => Some(*status),
        Error::RateLimited { .. } => Some(429),
        _ => None,
    };
    m.insert("status".into(), json!(status));
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
    let mut lines = vec![format!("{outcome}: {} — {}", reason.code(), error.detail())];
    match reason {
        Reason::Offline => lines.push("  could not reach the server; nothing was decided".into()),
        Reason::RateLimited => {
            lines.push("  Polar allows 3 requests per second per IP, then blocks for 60 s".into())
        }
        _ => {}
    }
    Report {
        json: m,
        lines,
        to_stderr: true,
        exit: exit_code(reason),
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

/// The key facts of a license: status, usage, activations, validations, expiry.
pub fn license_facts(l: &LicenseKeyRead) -> Vec<String> {
    let mut lines = vec![fact("status", l.status.as_str())];
    lines.push(fact(
        "usage",
        &match l.limit_usage {
            Some(limit) => format!("{} of {limit} ({} left)", l.usage, limit - l.usage),
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
    lines
}
