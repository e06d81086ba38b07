//! The seller's Polar set-up, checked (issue #78): `polar-license doctor` and the relay's
//! health field both ask this module, so a finding reads the same wherever it is shown.
//!
//! Sans IO, as the relay's machines are: [`calls`] says which reads of Polar's the check
//! needs (a few `GET`s with the seller's organization token, and for a write scope a `POST`
//! of `{}`, which Polar refuses with 403 when the token lacks the scope and with 422 after
//! its scope check otherwise: nothing is written), a host makes them, and [`examine`] turns
//! the answers into [`Finding`]s: typed values, each with its sentence ([`Finding::message`])
//! and what to do about it ([`Finding::fix`]). No host composes a message of its own.
//!
//! What is checked (docs/polar-setup.md, "Checking your set-up"):
//! * the token: refused by this Polar (a token of the other environment), or without a scope
//!   a feature of the relay reads with;
//! * the app's organization id against the token's organization (a sandbox id in a
//!   production build, or the reverse);
//! * the license-key benefits (the app's, or every one of the organization's): an
//!   activation limit, and `enable_customer_admin` (customers managing their own devices);
//!   the app's benefit ids against the organization's;
//! * the webhook endpoints: one pointing at the relay, enabled, in the raw format, with the
//!   events the relay reads, on an API version that is not due for removal.
//!
//! One page of each listing is read ([`PAGE_LIMIT`] items): an organization with more
//! benefits or endpoints than that has the rest unchecked, said in [`Report::truncated`].

use std::fmt;

use polar_license::AccessToken;
use serde_json::{json, Value};

use crate::payload_versions::{DUE_FOR_REMOVAL, PAYLOAD_VERSIONS};

/// The items one listing read asks for (Polar's largest page).
pub const PAGE_LIMIT: u32 = 100;

/// The events the relay's webhook intake reads to narrow what it stored (a revocation heard at
/// once, a re-grant or a rotation asked again): an endpoint without one of them leaves that
/// change unheard until the reconcile's next read.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "benefit_grant.created",
    "benefit_grant.updated",
    "benefit_grant.revoked",
    "benefit_grant.cycled",
];

/// When Polar removes the versions of [`DUE_FOR_REMOVAL`] (docs/polar-versions.md): a webhook
/// endpoint on one of them gets a bare 404 for its payload's version once it is gone. The
/// versions themselves are the relay's one list, `payload_versions`.
pub const REMOVED_AT: &str = "January 2027";

/// The oldest API version Polar still serves (the first the relay reads): an endpoint on an
/// older one is on a removed version already.
fn oldest_served() -> &'static str {
    PAYLOAD_VERSIONS.first().copied().unwrap_or_default()
}

/// Which Polar the check read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `api.polar.sh`.
    Production,
    /// `sandbox-api.polar.sh` (or a Polar that answers `x-polar-sandbox: 1`).
    Sandbox,
    /// Another base URL (the emulator, a proxy) that did not say it is a sandbox.
    Other,
}

impl Environment {
    /// The environment of `base_url` by its host alone.
    pub fn of_base_url(base_url: &str) -> Environment {
        let host = base_url
            .split("://")
            .nth(1)
            .unwrap_or(base_url)
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        match host {
            "api.polar.sh" => Environment::Production,
            "sandbox-api.polar.sh" => Environment::Sandbox,
            _ => Environment::Other,
        }
    }

    /// Its name in the output (`production`, `sandbox`, `other`).
    pub fn name(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Sandbox => "sandbox",
            Environment::Other => "other",
        }
    }

    /// How a sentence names this Polar.
    fn phrase(self) -> &'static str {
        match self {
            Environment::Production => "Polar's production (api.polar.sh)",
            Environment::Sandbox => "Polar's sandbox (sandbox-api.polar.sh)",
            Environment::Other => "this Polar",
        }
    }

    /// The likely mix-up, said after a thing this Polar does not know.
    fn mix_up(self) -> &'static str {
        match self {
            Environment::Production => " (a sandbox id or token in a production build?)",
            Environment::Sandbox => " (a production id or token in a sandbox build?)",
            Environment::Other => {
                " (an id or token of the other environment, sandbox or production?)"
            }
        }
    }
}

/// What the relay's features need of the token, and whether webhooks are expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// A verdict store: the roster, the reconcile and the device list read keys
    /// (`license_keys:read`).
    pub store: bool,
    /// Webhooks: an endpoint must point at the relay.
    pub webhooks: bool,
    /// Entitlements signed into leases: grants and meters (`benefits:read`,
    /// `customer_meters:read`).
    pub entitlements: bool,
    /// Usage ingested to Polar's meters (`events:write`).
    pub usage: bool,
}

/// What to check: where Polar is, the seller's token, the app's ids, the relay.
#[derive(Clone)]
pub struct Setup {
    /// Polar's base URL (no trailing `/`).
    pub base_url: String,
    /// The seller's organization access token (never logged).
    pub token: AccessToken,
    /// The app's organization id, when known: checked against the token's organization.
    pub organization_id: Option<String>,
    /// The app's license-key benefit ids: each checked to be the organization's, and only
    /// these benefits' settings checked (none given: every license-key benefit's).
    pub benefit_ids: Vec<String>,
    /// The relay's public base URL, when known: an endpoint must deliver to its webhook route
    /// ([`crate::WEBHOOK_ROUTE`]).
    pub relay_url: Option<String>,
    /// What the relay's features need.
    pub needs: Needs,
}

debug_some!(Setup, s => {
    "base_url": s.base_url,
    "organization_id": s.organization_id,
    "benefit_ids": s.benefit_ids,
    "relay_url": s.relay_url,
    "needs": s.needs,
});

/// One read of Polar's a check makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Probe {
    /// `GET /v1/organizations/{id}` (the app's id), or `GET /v1/organizations/` without one.
    Organization,
    /// `GET /v1/benefits/`: the organization's benefits.
    Benefits,
    /// `GET /v1/webhooks/endpoints`: its webhook endpoints.
    Webhooks,
    /// `POST /v1/license-keys/validate` of `{}`: `license_keys:write` (every check).
    LicenseKeysWrite,
    /// `GET /v1/license-keys/?limit=1`: `license_keys:read` (the store's reads).
    LicenseKeysRead,
    /// `GET /v1/customer-meters/?limit=1`: `customer_meters:read` (entitlements).
    CustomerMeters,
    /// `POST /v1/events/ingest` of `{}`: `events:write` (usage).
    EventsWrite,
}

impl Probe {
    /// The scope the probe shows, and what of the relay's needs it.
    fn scope(self) -> (&'static str, &'static str) {
        match self {
            Probe::Organization => ("organizations:read", "this check of the organization id"),
            Probe::Benefits => (
                "benefits:read",
                "this check of the benefits, and entitlements (--sign-entitlements)",
            ),
            Probe::Webhooks => ("webhooks:read", "this check of the webhook endpoints"),
            Probe::LicenseKeysWrite => (
                "license_keys:write",
                "every validate, activate and deactivate the relay makes",
            ),
            Probe::LicenseKeysRead => (
                "license_keys:read",
                "the store's roster, reconcile and device list",
            ),
            Probe::CustomerMeters => (
                "customer_meters:read",
                "meter balances signed into leases (--sign-entitlements)",
            ),
            Probe::EventsWrite => ("events:write", "usage ingested to Polar (--record-usage)"),
        }
    }

    /// Its name in the output.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Organization => "organization",
            Probe::Benefits => "benefits",
            Probe::Webhooks => "webhooks",
            Probe::LicenseKeysWrite => "license_keys_write",
            Probe::LicenseKeysRead => "license_keys_read",
            Probe::CustomerMeters => "customer_meters",
            Probe::EventsWrite => "events_write",
        }
    }
}

/// One call to make: its method, URL, headers (the token among them: never log them) and
/// body (`None`: a `GET`).
#[derive(Clone)]
pub struct Call {
    /// What the call shows.
    pub probe: Probe,
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The whole URL.
    pub url: String,
    /// The request's headers; they hold the seller's token.
    pub headers: Vec<(&'static str, String)>,
    /// A `POST`'s JSON body.
    pub body: Option<Vec<u8>>,
}

debug_some!(Call, c => {
    "probe": c.probe,
    "method": c.method,
    "url": c.url,
});

/// Polar's answer to a [`Call`]: its status and body, and whether it said it is a sandbox
/// (`x-polar-sandbox: 1`; `false` when the host does not read headers).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// `x-polar-sandbox: 1` was on the answer.
    pub sandbox: bool,
}

/// The calls a check of `setup` makes, in order.
pub fn calls(setup: &Setup) -> Vec<Call> {
    let base = setup.base_url.trim_end_matches('/');
    let headers = |json: bool| {
        let mut h = vec![
            ("authorization", format!("Bearer {}", setup.token.expose())),
            ("accept", "application/json".to_string()),
            ("user-agent", crate::types::USER_AGENT.to_string()),
        ];
        if json {
            h.push(("content-type", "application/json".to_string()));
        }
        h
    };
    let get = |probe, url: String| Call {
        probe,
        method: "GET",
        url,
        headers: headers(false),
        body: None,
    };
    let post = |probe, url: String| Call {
        probe,
        method: "POST",
        url,
        headers: headers(true),
        body: Some(b"{}".to_vec()),
    };
    let organization = match &setup.organization_id {
        Some(id) => format!("{base}/v1/organizations/{}", encode(id)),
        None => format!("{base}/v1/organizations/?limit=10"),
    };
    let mut out = vec![
        get(Probe::Organization, organization),
        post(
            Probe::LicenseKeysWrite,
            format!("{base}/v1/license-keys/validate"),
        ),
        get(
            Probe::Benefits,
            format!("{base}/v1/benefits/?limit={PAGE_LIMIT}"),
        ),
        get(
            Probe::Webhooks,
            format!("{base}/v1/webhooks/endpoints?limit={PAGE_LIMIT}"),
        ),
    ];
    if setup.needs.store {
        out.push(get(
            Probe::LicenseKeysRead,
            format!("{base}/v1/license-keys/?limit=1"),
        ));
    }
    if setup.needs.entitlements {
        out.push(get(
            Probe::CustomerMeters,
            format!("{base}/v1/customer-meters/?limit=1"),
        ));
    }
    if setup.needs.usage {
        out.push(post(Probe::EventsWrite, format!("{base}/v1/events/ingest")));
    }
    out
}

/// A path segment as typed (an id is a UUID; anything else is percent-encoded, so a stray
/// `/` or `?` cannot reach another route).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One mistake found, with what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// Polar refused the token itself (401): revoked, mistyped, or of the other environment.
    TokenRefused {
        /// The Polar that refused it.
        environment: Environment,
    },
    /// The token lacks a scope a feature reads with.
    ScopeMissing {
        /// The scope (`license_keys:write`, …).
        scope: &'static str,
        /// What needs it.
        needed_for: &'static str,
    },
    /// The app's organization id is not the token's organization here.
    OrganizationNotFound {
        /// The app's id.
        id: String,
        /// Where it was looked for.
        environment: Environment,
    },
    /// The organization has no license-key benefit at all.
    NoLicenseKeyBenefit,
    /// One of the app's benefit ids is not among the organization's benefits.
    BenefitNotFound {
        /// The app's id.
        id: String,
        /// Where it was looked for.
        environment: Environment,
    },
    /// One of the app's benefit ids names a benefit of another type.
    BenefitNotLicenseKeys {
        /// The id.
        id: String,
        /// Its type (`feature_flag`, …).
        kind: String,
    },
    /// A license-key benefit without an activation limit (or a limit of 0): every
    /// activation is refused (`activations_not_supported`).
    ActivationLimitMissing {
        /// The benefit's id.
        benefit_id: String,
        /// Its description.
        description: String,
    },
    /// A license-key benefit whose customers cannot manage their devices
    /// (`enable_customer_admin` off).
    CustomerAdminOff {
        /// The benefit's id.
        benefit_id: String,
        /// Its description.
        description: String,
    },
    /// No webhook endpoint delivers to the relay (`url`: where one was expected, when known).
    WebhookEndpointMissing {
        /// The relay's webhook URL, when the relay's URL was given.
        url: Option<String>,
    },
    /// An endpoint is disabled (Polar disables one after 10 events that failed every try).
    WebhookEndpointDisabled {
        /// The endpoint's id.
        endpoint_id: String,
        /// Its URL.
        url: String,
    },
    /// An endpoint delivers another format than `raw` (Discord's, Slack's).
    WebhookFormatNotRaw {
        /// The endpoint's id.
        endpoint_id: String,
        /// Its URL.
        url: String,
        /// Its format.
        format: String,
    },
    /// An endpoint does not subscribe to events the relay reads.
    WebhookEventsMissing {
        /// The endpoint's id.
        endpoint_id: String,
        /// Its URL.
        url: String,
        /// The events it lacks, of [`WEBHOOK_EVENTS`].
        events: Vec<String>,
    },
    /// An endpoint's API version is due for removal (or removed already).
    WebhookVersionDue {
        /// The endpoint's id.
        endpoint_id: String,
        /// Its URL.
        url: String,
        /// Its `api_version`.
        version: String,
        /// When Polar removes it (`None`: removed already).
        removed: Option<&'static str>,
    },
}

impl Finding {
    /// Its code in the output (`token_refused`, `scope_missing`, …): stable, for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Finding::TokenRefused { .. } => "token_refused",
            Finding::ScopeMissing { .. } => "scope_missing",
            Finding::OrganizationNotFound { .. } => "organization_not_found",
            Finding::NoLicenseKeyBenefit => "no_license_key_benefit",
            Finding::BenefitNotFound { .. } => "benefit_not_found",
            Finding::BenefitNotLicenseKeys { .. } => "benefit_not_license_keys",
            Finding::ActivationLimitMissing { .. } => "activation_limit_missing",
            Finding::CustomerAdminOff { .. } => "customer_admin_off",
            Finding::WebhookEndpointMissing { .. } => "webhook_endpoint_missing",
            Finding::WebhookEndpointDisabled { .. } => "webhook_endpoint_disabled",
            Finding::WebhookFormatNotRaw { .. } => "webhook_format_not_raw",
            Finding::WebhookEventsMissing { .. } => "webhook_events_missing",
            Finding::WebhookVersionDue { .. } => "webhook_version_due",
        }
    }

    /// What is wrong, in one sentence.
    pub fn message(&self) -> String {
        match self {
            Finding::TokenRefused { environment } => format!(
                "{} refuses the token (401){}",
                environment.phrase(),
                environment.mix_up()
            ),
            Finding::ScopeMissing { scope, needed_for } => {
                format!("the token lacks the scope {scope}, needed for {needed_for}")
            }
            Finding::OrganizationNotFound { id, environment } => format!(
                "the organization {id} is not the token's organization in {}{}",
                environment.phrase(),
                environment.mix_up()
            ),
            Finding::NoLicenseKeyBenefit => {
                "the organization has no license-key benefit: no purchase issues a key".to_string()
            }
            Finding::BenefitNotFound { id, environment } => format!(
                "the benefit {id} is not one of the organization's in {}{}",
                environment.phrase(),
                environment.mix_up()
            ),
            Finding::BenefitNotLicenseKeys { id, kind } => {
                format!("the benefit {id} is a {kind} benefit, not a license-key one")
            }
            Finding::ActivationLimitMissing {
                benefit_id,
                description,
            } => format!(
                "the license-key benefit \"{description}\" ({benefit_id}) has no activation \
                 limit: every activation is refused (activations_not_supported)"
            ),
            Finding::CustomerAdminOff {
                benefit_id,
                description,
            } => format!(
                "the license-key benefit \"{description}\" ({benefit_id}) does not let customers \
                 manage their devices (enable_customer_admin is off): a customer cannot see \
                 which device to free"
            ),
            Finding::WebhookEndpointMissing { url: Some(url) } => {
                format!("no webhook endpoint delivers to {url}: revocations are not heard at once")
            }
            Finding::WebhookEndpointMissing { url: None } => {
                "the organization has no webhook endpoint: revocations are not heard at once"
                    .to_string()
            }
            Finding::WebhookEndpointDisabled { url, .. } => format!(
                "the webhook endpoint {url} is disabled (Polar disables one after 10 events \
                 that failed every try): nothing is delivered"
            ),
            Finding::WebhookFormatNotRaw { url, format, .. } => format!(
                "the webhook endpoint {url} delivers the {format} format: the relay reads only \
                 raw events"
            ),
            Finding::WebhookEventsMissing { url, events, .. } => format!(
                "the webhook endpoint {url} does not send {}: those changes wait for the \
                 reconcile",
                events.join(", ")
            ),
            Finding::WebhookVersionDue {
                url,
                version,
                removed: Some(when),
                ..
            } => format!(
                "the webhook endpoint {url} is on API version {version}, which Polar removes \
                 in {when}"
            ),
            Finding::WebhookVersionDue {
                url,
                version,
                removed: None,
                ..
            } => format!(
                "the webhook endpoint {url} is on API version {version}, which Polar no longer \
                 serves"
            ),
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            Finding::TokenRefused { .. } => "create an organization access token in this \
                environment's dashboard (Settings, Developers) and give it to the relay"
                .to_string(),
            Finding::ScopeMissing { scope, .. } => format!(
                "create a new organization access token with {scope} (Settings, Developers; a \
                 token's scopes cannot be changed) and give it to the relay"
            ),
            Finding::OrganizationNotFound { .. } => "use the organization id shown in this \
                environment's dashboard settings (sandbox and production each have their own), \
                and a token of that organization"
                .to_string(),
            Finding::NoLicenseKeyBenefit => "in the dashboard, Benefits, + New Benefit, type \
                License Keys, and attach it to the products that sell the app"
                .to_string(),
            Finding::BenefitNotFound { .. } => "use the benefit_id of a key this organization \
                issued (docs/polar-setup.md, \"Reading the ids from a key\")"
                .to_string(),
            Finding::BenefitNotLicenseKeys { .. } => "use the id of the License Keys benefit \
                (a key's benefit_id)"
                .to_string(),
            Finding::ActivationLimitMissing { .. } => "set the benefit's activation limit \
                (for example 3 devices) in the dashboard, or have the app validate without \
                activating"
                .to_string(),
            Finding::CustomerAdminOff { .. } => "turn on \"Let customers manage their \
                activations\" in the benefit's settings"
                .to_string(),
            Finding::WebhookEndpointMissing { url } => format!(
                "add an endpoint in the dashboard (Settings, Webhooks) delivering to {}, format \
                 raw, with the events {} (docs/guides/relay-webhooks.md)",
                url.as_deref()
                    .unwrap_or("the relay's https://…/v1/webhooks/polar"),
                WEBHOOK_EVENTS.join(", ")
            ),
            Finding::WebhookEndpointDisabled { .. } => "fix what made its deliveries fail (the \
                relay's address, its secret), then enable the endpoint again in the dashboard"
                .to_string(),
            Finding::WebhookFormatNotRaw { .. } => "set the endpoint's format to raw".to_string(),
            Finding::WebhookEventsMissing { events, .. } => {
                format!("add {} to the endpoint's events", events.join(", "))
            }
            Finding::WebhookVersionDue { .. } => format!(
                "move the endpoint to a current API version (newer than {}; \
                 docs/polar-versions.md) in its settings; the relay reads every served \
                 version's payload",
                oldest_served()
            ),
        }
    }

    /// The finding as one JSON object: `code`, `message`, `fix` and what it names.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "code": self.code(),
            "message": self.message(),
            "fix": self.fix(),
        });
        let extra = match self {
            Finding::TokenRefused { environment } => json!({"environment": environment.name()}),
            Finding::ScopeMissing { scope, needed_for } => {
                json!({"scope": scope, "needed_for": needed_for})
            }
            Finding::OrganizationNotFound { id, environment }
            | Finding::BenefitNotFound { id, environment } => {
                json!({"id": id, "environment": environment.name()})
            }
            Finding::NoLicenseKeyBenefit => json!({}),
            Finding::BenefitNotLicenseKeys { id, kind } => json!({"id": id, "type": kind}),
            Finding::ActivationLimitMissing { benefit_id, .. }
            | Finding::CustomerAdminOff { benefit_id, .. } => json!({"benefit_id": benefit_id}),
            Finding::WebhookEndpointMissing { url } => json!({"url": url}),
            Finding::WebhookEndpointDisabled { endpoint_id, url } => {
                json!({"endpoint_id": endpoint_id, "url": url})
            }
            Finding::WebhookFormatNotRaw {
                endpoint_id,
                url,
                format,
            } => json!({"endpoint_id": endpoint_id, "url": url, "format": format}),
            Finding::WebhookEventsMissing {
                endpoint_id,
                url,
                events,
            } => json!({"endpoint_id": endpoint_id, "url": url, "events": events}),
            Finding::WebhookVersionDue {
                endpoint_id,
                url,
                version,
                removed,
            } => json!({"endpoint_id": endpoint_id, "url": url, "version": version,
                        "removed": removed}),
        };
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    }
}

impl fmt::Display for Finding {
    /// `message; fix: fix`, one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; fix: {}", self.message(), self.fix())
    }
}

/// A read that could not be made or answered (Polar down, 429, 5xx): what it would have
/// checked stays unchecked. Not a finding: nothing is known to be wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchecked {
    /// The read.
    pub probe: Probe,
    /// Why (`status 503`, the transport's error).
    pub why: String,
}

impl Unchecked {
    /// One line for a person.
    pub fn message(&self) -> String {
        format!("could not check {}: {}", self.probe.name(), self.why)
    }

    /// As JSON: `probe`, `why`.
    pub fn to_json(&self) -> Value {
        json!({"probe": self.probe.name(), "why": self.why})
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Which Polar was read.
    pub environment: Environment,
    /// The token's organization, when read (`GET /v1/organizations/…`).
    pub organization: Option<String>,
    /// The mistakes, in the order checked.
    pub findings: Vec<Finding>,
    /// The reads that could not be made.
    pub unchecked: Vec<Unchecked>,
    /// A listing had more than one page: its later items were not checked.
    pub truncated: bool,
}

impl Report {
    /// Nothing found and everything checked.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.unchecked.is_empty()
    }

    /// As JSON: `environment`, `organization`, `findings`, `unchecked`, `truncated`.
    pub fn to_json(&self) -> Value {
        json!({
            "environment": self.environment.name(),
            "organization": self.organization,
            "findings": self.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "unchecked": self.unchecked.iter().map(Unchecked::to_json).collect::<Vec<_>>(),
            "truncated": self.truncated,
        })
    }
}

/// Whether a 403's body is OAuth2's `insufficient_scope` (Polar's answer to a token without
/// the route's scope); another 403 is a refusal of another kind.
fn insufficient_scope(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .is_some_and(|e| e == "insufficient_scope")
}

/// The `items` of a `ListResource` answer, and whether it has more pages.
fn items(body: &[u8]) -> Option<(Vec<Value>, bool)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let items = v.get("items")?.as_array()?.clone();
    let more = v
        .pointer("/pagination/max_page")
        .and_then(Value::as_u64)
        .is_some_and(|m| m > 1);
    Some((items, more))
}

fn text(v: &Value, name: &str) -> String {
    v.get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The findings of `setup`'s check from the answers to its [`calls`] (each by its probe; a
/// probe with no answer is unchecked).
pub fn examine(setup: &Setup, answers: &[(Probe, Result<Answer, String>)]) -> Report {
    let mut environment = Environment::of_base_url(&setup.base_url);
    if environment == Environment::Other
        && answers
            .iter()
            .any(|(_, a)| a.as_ref().is_ok_and(|a| a.sandbox))
    {
        environment = Environment::Sandbox;
    }
    let mut report = Report {
        environment,
        organization: None,
        findings: Vec::new(),
        unchecked: Vec::new(),
        truncated: false,
    };
    // The token refused by any read: said once, and nothing else can be known.
    if answers
        .iter()
        .any(|(_, a)| a.as_ref().is_ok_and(|a| a.status == 401))
    {
        report.findings.push(Finding::TokenRefused { environment });
        return report;
    }
    let answer_of = |probe: Probe| answers.iter().find(|(p, _)| *p == probe).map(|(_, a)| a);
    let readable = |probe: Probe, report: &mut Report| -> Option<Answer> {
        let answer = match answer_of(probe) {
            // A call of the check that got no answer at all (the host lost it).
            None if calls(setup).iter().any(|c| c.probe == probe) => {
                report.unchecked.push(Unchecked {
                    probe,
                    why: "no answer".to_string(),
                });
                return None;
            }
            None => return None,
            Some(Err(why)) => {
                report.unchecked.push(Unchecked {
                    probe,
                    why: why.clone(),
                });
                return None;
            }
            Some(Ok(a)) => a,
        };
        if answer.status == 403 && insufficient_scope(&answer.body) {
            let (scope, needed_for) = probe.scope();
            report
                .findings
                .push(Finding::ScopeMissing { scope, needed_for });
            return None;
        }
        Some(answer.clone())
    };
    for probe in [
        Probe::LicenseKeysWrite,
        Probe::LicenseKeysRead,
        Probe::CustomerMeters,
        Probe::EventsWrite,
    ] {
        if let Some(a) = readable(probe, &mut report) {
            // 200 (a read) or 422 (a write's `{}` refused past its scope check): the scope
            // is there. Anything else leaves it unknown.
            if !matches!(a.status, 200 | 422) {
                report.unchecked.push(Unchecked {
                    probe,
                    why: format!("status {}", a.status),
                });
            }
        }
    }
    if let Some(a) = readable(Probe::Organization, &mut report) {
        match (a.status, &setup.organization_id) {
            (200, Some(id)) => report.organization = Some(id.clone()),
            (200, None) => {
                report.organization = items(&a.body)
                    .and_then(|(items, _)| items.first().map(|o| text(o, "id")))
                    .filter(|id| !id.is_empty());
            }
            // 404: not the token's organization (or none such here); 422: no UUID at all.
            (404 | 422, Some(id)) => report.findings.push(Finding::OrganizationNotFound {
                id: id.clone(),
                environment,
            }),
            (status, _) => report.unchecked.push(Unchecked {
                probe: Probe::Organization,
                why: format!("status {status}"),
            }),
        }
    }
    if let Some(a) = readable(Probe::Benefits, &mut report) {
        match items(&a.body).filter(|_| a.status == 200) {
            Some((benefits, more)) => {
                report.truncated |= more;
                benefit_findings(setup, &benefits, environment, &mut report.findings);
            }
            None => report.unchecked.push(Unchecked {
                probe: Probe::Benefits,
                why: format!("status {}", a.status),
            }),
        }
    }
    if let Some(a) = readable(Probe::Webhooks, &mut report) {
        match items(&a.body).filter(|_| a.status == 200) {
            Some((endpoints, more)) => {
                report.truncated |= more;
                webhook_findings(setup, &endpoints, &mut report.findings);
            }
            None => report.unchecked.push(Unchecked {
                probe: Probe::Webhooks,
                why: format!("status {}", a.status),
            }),
        }
    }
    report
}

fn benefit_findings(
    setup: &Setup,
    benefits: &[Value],
    environment: Environment,
    out: &mut Vec<Finding>,
) {
    let license = |b: &&Value| text(b, "type") == "license_keys";
    let mut checked: Vec<&Value> = Vec::new();
    for id in &setup.benefit_ids {
        match benefits.iter().find(|b| text(b, "id") == *id) {
            None => out.push(Finding::BenefitNotFound {
                id: id.clone(),
                environment,
            }),
            Some(b) if !license(&b) => out.push(Finding::BenefitNotLicenseKeys {
                id: id.clone(),
                kind: text(b, "type"),
            }),
            Some(b) => checked.push(b),
        }
    }
    if setup.benefit_ids.is_empty() {
        checked = benefits.iter().filter(license).collect();
        if checked.is_empty() {
            out.push(Finding::NoLicenseKeyBenefit);
        }
    }
    for b in checked {
        let benefit_id = text(b, "id");
        let description = text(b, "description");
        let activations = b
            .pointer("/properties/activations")
            .filter(|a| !a.is_null());
        let limit = activations
            .and_then(|a| a.get("limit"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if limit <= 0 {
            out.push(Finding::ActivationLimitMissing {
                benefit_id,
                description,
            });
            continue;
        }
        let admin = activations
            .and_then(|a| a.get("enable_customer_admin"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !admin {
            out.push(Finding::CustomerAdminOff {
                benefit_id,
                description,
            });
        }
    }
}

fn webhook_findings(setup: &Setup, endpoints: &[Value], out: &mut Vec<Finding>) {
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    let target = setup
        .relay_url
        .as_deref()
        .map(|u| format!("{}{}", u.trim_end_matches('/'), crate::types::WEBHOOK_ROUTE));
    let relevant: Vec<&Value> = match &target {
        Some(t) => endpoints
            .iter()
            .filter(|e| same(&text(e, "url"), t))
            .collect(),
        // The relay's URL unknown: the endpoints delivering to a relay's route (another
        // endpoint of the organization's may serve anything else, in any format).
        None => endpoints
            .iter()
            .filter(|e| {
                text(e, "url")
                    .trim_end_matches('/')
                    .ends_with(crate::types::WEBHOOK_ROUTE)
            })
            .collect(),
    };
    if relevant.is_empty() {
        if target.is_some() || setup.needs.webhooks {
            out.push(Finding::WebhookEndpointMissing { url: target });
        }
        return;
    }
    for e in relevant {
        let endpoint_id = text(e, "id");
        let url = text(e, "url");
        if e.get("enabled").and_then(Value::as_bool) == Some(false) {
            out.push(Finding::WebhookEndpointDisabled {
                endpoint_id: endpoint_id.clone(),
                url: url.clone(),
            });
        }
        let format = text(e, "format");
        if !format.is_empty() && format != "raw" {
            out.push(Finding::WebhookFormatNotRaw {
                endpoint_id: endpoint_id.clone(),
                url: url.clone(),
                format,
            });
        }
        let has: Vec<&str> = e
            .get("events")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let missing: Vec<String> = WEBHOOK_EVENTS
            .iter()
            .filter(|w| !has.contains(w))
            .map(|w| w.to_string())
            .collect();
        if !missing.is_empty() {
            out.push(Finding::WebhookEventsMissing {
                endpoint_id: endpoint_id.clone(),
                url: url.clone(),
                events: missing,
            });
        }
        let version = text(e, "api_version");
        if DUE_FOR_REMOVAL.contains(&version.as_str()) {
            out.push(Finding::WebhookVersionDue {
                endpoint_id,
                url,
                version,
                removed: Some(REMOVED_AT),
            });
        } else if !version.is_empty() && version.as_str() < oldest_served() {
            out.push(Finding::WebhookVersionDue {
                endpoint_id,
                url,
                version,
                removed: None,
            });
        }
    }
}

// The check's two hosts beside it: the running relay's (its background machine re-checks, the
// health field reads the last report) and `polar-license doctor`'s blocking one.
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
mod native;
pub(crate) mod watch;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub use native::check;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn setup() -> Setup {
        Setup {
            base_url: "https://sandbox-api.polar.sh".into(),
            token: AccessToken::new("polar_oat_secret_never_shown"),
            organization_id: None,
            benefit_ids: Vec::new(),
            relay_url: None,
            needs: Needs::default(),
        }
    }

    fn ok(status: u16, body: Value) -> Result<Answer, String> {
        Ok(Answer {
            status,
            body: body.to_string().into_bytes(),
            sandbox: false,
        })
    }

    #[test]
    fn an_endpoint_in_another_format_is_found_and_the_token_never_shows() {
        let mut s = setup();
        s.relay_url = Some("https://r.example".into());
        let endpoints = json!({"items": [{"id": "e1", "url": "https://r.example/v1/webhooks/polar",
            "format": "discord", "enabled": true, "api_version": "2026-10",
            "events": WEBHOOK_EVENTS}], "pagination": {"max_page": 1}});
        let r = examine(&s, &[(Probe::Webhooks, ok(200, endpoints))]);
        assert_eq!(r.environment, Environment::Sandbox);
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        assert_eq!(r.findings[0].code(), "webhook_format_not_raw");
        for c in calls(&s) {
            assert!(!format!("{c:?}").contains("secret_never_shown"));
        }
        assert!(!format!("{s:?}").contains("secret_never_shown"));
    }

    #[test]
    fn a_version_older_than_any_served_is_removed_already() {
        let endpoints = json!({"items": [{"id": "e1", "url": "https://r.example/v1/webhooks/polar", "format": "raw",
            "enabled": true, "api_version": "2025-10", "events": WEBHOOK_EVENTS}]});
        let r = examine(&setup(), &[(Probe::Webhooks, ok(200, endpoints))]);
        assert!(
            matches!(
                &r.findings[..],
                [Finding::WebhookVersionDue { removed: None, .. }]
            ),
            "{:?}",
            r.findings
        );
    }

    #[test]
    fn polar_down_leaves_things_unchecked_with_no_finding() {
        let r = examine(
            &setup(),
            &[
                (Probe::Benefits, Err("connection refused".into())),
                (Probe::Webhooks, ok(503, json!({}))),
            ],
        );
        assert!(r.findings.is_empty());
        // The two that failed, and the two calls of the check that got no answer at all.
        assert_eq!(r.unchecked.len(), 4, "{:?}", r.unchecked);
        assert!(r.unchecked.iter().any(|u| u.why == "no answer"));
        assert!(!r.is_clean());
    }

    #[test]
    fn a_more_than_one_page_listing_is_said_truncated() {
        let benefits = json!({"items": [], "pagination": {"max_page": 2}});
        let r = examine(&setup(), &[(Probe::Benefits, ok(200, benefits))]);
        assert!(r.truncated);
    }

    #[test]
    fn without_the_relays_url_only_endpoints_at_a_relays_route_are_checked() {
        let endpoints = json!({"items": [
            {"id": "e1", "url": "https://chat.example/hook", "format": "discord", "enabled": true,
             "api_version": DUE_FOR_REMOVAL[0], "events": ["order.created"]}]});
        let mut s = setup();
        let r = examine(&s, &[(Probe::Webhooks, ok(200, endpoints.clone()))]);
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        s.needs.webhooks = true;
        let r = examine(&s, &[(Probe::Webhooks, ok(200, endpoints))]);
        assert_eq!(r.findings, [Finding::WebhookEndpointMissing { url: None }]);
    }

    #[test]
    fn a_segment_is_percent_encoded() {
        assert_eq!(encode("a/b?c"), "a%2Fb%3Fc");
    }
}
