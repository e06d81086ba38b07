//! A faithful local emulator of Polar's license-key HTTP API: the crate every test suite of
//! polar-license runs against (a dev-dependency), and what `polar-license emulator` serves.
//!
//! It answers the three public routes
//! `POST /v1/customer-portal/license-keys/{validate,activate,deactivate}`, their
//! token-authenticated twins `POST /v1/license-keys/{…}` and the legacy
//! `/api/v1/…` alias exactly as `docs/polar-api.md` describes Polar's
//! server: the same status codes, bodies (field order included), error strings,
//! check order, pydantic-style 422s, CORS, `Polar-Version` handling and,
//! optionally, the 3-requests-per-second rate limit with its block. An organization token
//! (scope `license_keys:read` or `:write`) also reads its organization's keys as Polar serves
//! them: `GET /v1/license-keys/` (pages of up to 100, each key whole) and
//! `GET /v1/license-keys/{id}` (with its activations), on the token budget.
//!
//! Customer sessions (docs/polar-api.md §16): the email code's two routes, the organization
//! token's `POST /v1/customer-sessions/`, the `polar_cst_` tokens' hour, and the customer
//! portal's key list, get (activations when the seed's benefit has `enable_customer_admin`)
//! and rotate.
//!
//! Entitlements (docs/polar-api.md §16.4): Feature Flag benefits with their metadata, the grants
//! a key's purchase made (`GET /v1/benefit-grants/`) and the customer's state
//! (`GET /v1/customers/{id}/state`), read with an organization token.
//!
//! Meters and credits (docs/polar-api.md §16.5, the `billing` feature, on by default): the
//! seed's meters, `meter_credit` benefits crediting units at grant, `POST /v1/events/ingest`,
//! `GET /v1/customer-meters/` and the customer portal's `GET /v1/customer-portal/meters/`.
//!
//! ```no_run
//! use polar_license_emulator::{Emulator, Options, Seed};
//!
//! let emulator = Emulator::start(Seed::demo(), Options::default())?;
//! println!("listening on {}", emulator.url());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! It is a plain `std` server: one thread per connection and responses written
//! by hand, so tests can inject faults ([`Fault`]) such as hangs, truncated
//! bodies or 5xx answers. Dropping the [`Emulator`] (or calling
//! [`Emulator::stop`]) closes the listener, so later connections are refused.
//!
//! Besides Polar's routes it serves admin routes under `/__emulator/` for
//! tests that run it as a separate process (never counted, never rate-limited,
//! CORS `*`): `POST /__emulator/fault` (a [`Fault`] as JSON, or `null`),
//! `GET|POST /__emulator/clock` (`{"offset_seconds": N}`: see [`Emulator::set_clock_offset`]),
//! `GET|POST /__emulator/rate-limit` (`{"enabled": bool}`: Polar's per-IP limits on or off,
//! every window and block forgotten; see [`Core::set_rate_limit`]),
//! `GET /__emulator/requests`, `POST /__emulator/requests/reset`,
//! `GET /__emulator/streams` (`{"open": N}`: see [`Emulator::open_streams`]),
//! `GET|PATCH /__emulator/keys/{key}` (a [`KeyUpdate`]),
//! `GET /__emulator/keys/{key}/activations`, `POST /__emulator/keys/{key}/rotate`
//! (`{"key": "<new key>"}`: see [`Emulator::rotate_key`]), `POST /__emulator/keys/{key}/cycle`
//! (see [`Emulator::cycle_key`]), `POST /__emulator/keys` (a [`SeedKey`]),
//! `GET /__emulator/customer-session/codes` (the customer-session email codes not yet used or
//! expired: see [`Core::customer_session_codes`]),
//! `GET|POST /__emulator/webhooks/fault` (a [`WebhookFault`] as JSON, or `null`),
//! `GET|PATCH /__emulator/benefits/{id}` (`{"metadata": {…}}`: see
//! [`Emulator::set_benefit_metadata`]), `PATCH /__emulator/keys/{key}/benefits/{benefit_id}`
//! (`{"is_granted": false}`: see [`Emulator::set_flag_grant`]),
//! `POST /__emulator/keys/{key}/subscription` (`{"action": "cancel_at_period_end" |
//! "pause_at_period_end" | "period_end" | "past_due" | "grace_end" | "resume"}`: the
//! subscription's lifecycle), `POST /__emulator/keys/{key}/refund` (`{"revoke_benefits":
//! bool}`), `POST /__emulator/keys/{key}/seat/revoke` (these three the `billing` feature's),
//! `GET|POST /__emulator/api-versions` (an [`ApiVersionsChange`]: Polar's quarterly rotation
//! at run time, see [`Core::set_api_versions`]), `GET /__emulator/requests/seen` (each
//! request's `User-Agent` and `Polar-Version`: [`Core::seen_requests`]),
//! `PATCH /__emulator/webhooks/endpoints/{id}` (`{"uses_standard_webhook_signature": false}`:
//! that endpoint signed in Polar's original form, the HMAC key the UTF-8 bytes of the whole
//! `whsec_…` secret) and `GET /__emulator/health` (docs/interfaces.md §3 lists them).

mod email;
#[cfg(not(target_arch = "wasm32"))]
mod http;
mod ids;
mod ratelimit;
pub mod routes;
mod seed;
mod service;
mod state;
mod util;
mod webhooks;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
mod statefile;

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

pub use polar_license_rules::{check_body, CheckedBody, Refusal};
// Polar's JSON and body validation live in polar-license-rules (shared with the relay); the
// emulator's modules name them as they did when they were its own.
pub use crate::service::{huge_body_parts, Core, Delivery, Request, Response, Time};
pub use crate::service::{ApiVersions, ApiVersionsChange, SeenRequest, DUE_FOR_REMOVAL};
pub use crate::webhooks::{WebhookFault, WebhookOutcome, WebhookRequest};
#[cfg(not(target_arch = "wasm32"))]
pub use native::Emulator;
use polar_license_rules::{json, validate};

pub use seed::{
    Seed, SeedBenefit, SeedCheckoutLink, SeedKey, SeedMember, SeedMeter, SeedOrder, SeedProduct,
    SeedSubscription, SeedToken, ALL_SCOPES, DEMO_BENEFIT_ID, DEMO_CHECKOUT_LINK, DEMO_CUSTOMER_ID,
    DEMO_KEY, DEMO_KEY_DISABLED, DEMO_KEY_EXPIRED, DEMO_KEY_NO_ACTIVATIONS, DEMO_KEY_REVOKED,
    DEMO_KEY_USAGE, DEMO_ORGANIZATION_ID, DEMO_PRODUCT_ID, DEMO_TOKEN, DEMO_TOKEN_READ_ONLY,
};

/// How an [`Emulator`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The port to bind on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Turns on Polar's public rate limit: 3 calls per second per client IP
    /// (the socket peer, or the `True-Client-IP` header) shared by the three
    /// public routes, then a block of [`Options::rate_limit_block`]; and the email-code
    /// routes' limit (6 a minute and 12 an hour for both, then 900 s blocked).
    pub rate_limit: bool,
    /// How long a client stays blocked after exceeding the limit (Polar: 60 s).
    pub rate_limit_block: Duration,
    /// Answers like `sandbox-api.polar.sh`: adds `X-Polar-Sandbox: 1`.
    pub sandbox: bool,
    /// The `Polar-Version`s served (default [`API_VERSIONS`]): any other, a removed one
    /// included, answers a bare `404 {"detail":"Not Found"}` (docs/polar-api.md §13).
    pub api_versions: Vec<String>,
    /// The version of a request that sends no `Polar-Version` (Polar's "current" one, which
    /// changes every quarter; default [`CURRENT_API_VERSION`]). It must be served.
    pub api_version: String,
    /// The organization token's budget (docs/polar-api.md §8, §14): calls per window for all the
    /// tokens of one organization together, on every authenticated `/v1` route but the public
    /// license-key zone (the token twins `/v1/license-keys/*`, the webhook routes). A fixed
    /// window, no block: the call past it gets a 429 with an empty body and `retry-after`, the
    /// window's remaining seconds. `None`: the seed's `token_budget`, else Polar's (500 in
    /// production, 100 with [`Options::sandbox`]); `Some(0)` turns it off.
    pub token_budget: Option<u32>,
    /// The budget's window (`None`: the seed's `token_window_seconds`, else Polar's 60 s).
    pub token_window: Option<Duration>,
    /// How Polar's webhooks go out ([`WebhookOptions`]).
    pub webhooks: WebhookOptions,
    /// Keeps the keys and activations in this file ([`Emulator::start`], native only): loaded
    /// at start when it exists (a file that cannot be read whole is an error, never ignored),
    /// written after every request that changed them (a temporary file beside it, synced,
    /// then renamed over it). `None` (the default): a restart forgets every activation.
    pub state: Option<std::path::PathBuf>,
}

/// How the emulator delivers webhooks (docs/polar-api.md §14).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookOptions {
    /// Multiplies Polar's retry schedule (ten tries in all: the first at once, then waits of
    /// 2 s doubling after each failure, 50–100 % jitter, capped at 20 minutes: 1–2 s, 2–4 s, …
    /// 256–512 s): `0.001` turns 512 s into 512 ms for a test. Default 1 (Polar's).
    pub schedule_scale: f64,
    /// How long one attempt may take before it counts as failed (default 10 s, Polar's).
    pub timeout: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            schedule_scale: 1.0,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Polar's token budget in production: 500 calls a minute per organization (docs/polar-api.md §8).
pub const TOKEN_BUDGET: u32 = 500;
/// Polar's token budget in the sandbox: 100 calls a minute per organization.
pub const SANDBOX_TOKEN_BUDGET: u32 = 100;

/// The API versions Polar serves at this snapshot (docs/polar-api.md §13: deprecated, current,
/// next). Only `2027-01` changes the license answers (`member`, `subscription`, `order`).
pub const API_VERSIONS: &[&str] = &["2026-04", "2026-10", "2027-01"];

/// The version Polar answers a request without `Polar-Version` with: the current one of
/// [`API_VERSIONS`] (the middle of deprecated, current, next).
pub const CURRENT_API_VERSION: &str = "2026-10";

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            rate_limit: false,
            rate_limit_block: Duration::from_secs(60),
            sandbox: false,
            api_versions: API_VERSIONS.iter().map(|v| v.to_string()).collect(),
            api_version: CURRENT_API_VERSION.to_string(),
            token_budget: None,
            token_window: None,
            webhooks: WebhookOptions::default(),
            state: None,
        }
    }
}

fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A merchant-side change to a key, like Polar's `PATCH /v1/license-keys/{id}`.
///
/// `None` leaves a field unchanged; for the nullable fields `Some(None)` (JSON
/// `null`) clears it. Values must fit in an int32, `status` must be
/// `granted`, `revoked` or `disabled` and `expires_at` RFC 3339.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct KeyUpdate {
    /// New status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// New usage counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<i64>,
    /// New activation limit (`Some(None)`: activations not supported).
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit_activations: Option<Option<i64>>,
    /// New usage limit (`Some(None)`: unlimited).
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit_usage: Option<Option<i64>>,
    /// New expiry, RFC 3339 (`Some(None)`: never expires).
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<Option<String>>,
}

/// A failure to inject on the six license routes (public and token twins,
/// `/api/v1` alias included), for every request until cleared.
///
/// As JSON (admin route): `{"kind":"status","status":500,"body":"Internal Server Error"}`,
/// `{"kind":"hang"}`, `{"kind":"delay","ms":1500}`, …
///
/// Read through `FaultFields` (a plain struct's derive, then the kind's fields taken from
/// it): serde's internally tagged enum buffers every member and cost the npm emulator's wasm
/// about 15 KB.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "FaultFields")]
pub enum Fault {
    /// Read the request, never answer; the socket stays open until the
    /// emulator stops or 60 s pass.
    Hang,
    /// Answer normally after a delay.
    Delay {
        /// The delay in milliseconds.
        ms: u64,
    },
    /// Send the (normal) headers at once, then the body one byte at a time.
    SlowBody {
        /// Pause before each body byte, in milliseconds.
        ms_per_byte: u64,
    },
    /// Answer with this status and body (`application/json` when the body is
    /// JSON, else `text/plain; charset=utf-8`, like Starlette's 500).
    Status {
        /// The status code.
        status: u16,
        /// The body.
        body: String,
    },
    /// 429 with an empty body and, when given, `retry-after`.
    RateLimited {
        /// The `retry-after` seconds.
        retry_after: Option<u64>,
    },
    /// 200 with `content-type: application/json` and a body that is not JSON.
    Malformed,
    /// 200 whose `content-length` is larger than the bytes sent, then close.
    Truncated,
    /// 200 with a valid JSON body of exactly this many bytes, streamed.
    Huge {
        /// The body size in bytes.
        bytes: u64,
    },
    /// Read the request, then close the connection without answering.
    CloseImmediately,
    /// Answer exactly this, as something between the app and Polar would (a captive portal's
    /// login page, a proxy's 407, a redirect, a CDN's 404): this status, these headers and
    /// this body, with none of Polar's headers.
    Respond {
        /// The status code.
        status: u16,
        /// The headers, as sent (`content-length` is added).
        #[serde(default)]
        headers: Vec<(String, String)>,
        /// The body.
        #[serde(default)]
        body: String,
    },
}

/// A [`Fault`] as JSON, every kind's fields optional (what [`Fault`] is read through).
#[derive(Deserialize)]
struct FaultFields {
    kind: String,
    ms: Option<u64>,
    ms_per_byte: Option<u64>,
    status: Option<u16>,
    body: Option<String>,
    retry_after: Option<u64>,
    bytes: Option<u64>,
    headers: Option<Vec<(String, String)>>,
}

/// `missing field `NAME``, as serde's derive says it.
fn need<T>(value: Option<T>, name: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("missing field `{name}`"))
}

impl TryFrom<FaultFields> for Fault {
    type Error = String;

    fn try_from(f: FaultFields) -> Result<Fault, String> {
        Ok(match f.kind.as_str() {
            "hang" => Fault::Hang,
            "delay" => Fault::Delay {
                ms: need(f.ms, "ms")?,
            },
            "slow_body" => Fault::SlowBody {
                ms_per_byte: need(f.ms_per_byte, "ms_per_byte")?,
            },
            "status" => Fault::Status {
                status: need(f.status, "status")?,
                body: need(f.body, "body")?,
            },
            "rate_limited" => Fault::RateLimited {
                retry_after: f.retry_after,
            },
            "malformed" => Fault::Malformed,
            "truncated" => Fault::Truncated,
            "huge" => Fault::Huge {
                bytes: need(f.bytes, "bytes")?,
            },
            "close_immediately" => Fault::CloseImmediately,
            "respond" => Fault::Respond {
                status: need(f.status, "status")?,
                headers: f.headers.unwrap_or_default(),
                body: f.body.unwrap_or_default(),
            },
            other => {
                return Err(format!(
                    "unknown variant `{other}`, expected one of `hang`, `delay`, `slow_body`, \
                     `status`, `rate_limited`, `malformed`, `truncated`, `huge`, \
                     `close_immediately`, `respond`"
                ))
            }
        })
    }
}

// The README's example is a whole program that also uses the client crate (which this one
// does not depend on): tests/docs/run.mjs runs it as pasted, in a new project.

#[cfg(test)]
mod fault_tests {
    use super::{Fault, WebhookFault};

    /// Every kind as its JSON (what `Serialize` writes) reads back as itself; a missing field
    /// and an unknown kind are refused, naming them.
    #[test]
    fn faults_read_back_what_they_write_and_refuse_what_is_missing() {
        let faults = [
            Fault::Hang,
            Fault::Delay { ms: 1500 },
            Fault::SlowBody { ms_per_byte: 3 },
            Fault::Status {
                status: 503,
                body: "down".into(),
            },
            Fault::RateLimited { retry_after: None },
            Fault::RateLimited {
                retry_after: Some(30),
            },
            Fault::Malformed,
            Fault::Truncated,
            Fault::Huge { bytes: 9 },
            Fault::CloseImmediately,
            Fault::Respond {
                status: 302,
                headers: vec![("location".into(), "https://login.example".into())],
                body: "<html>sign in</html>".into(),
            },
        ];
        reads_back(&faults);
        let respond: Fault = serde_json::from_str(r#"{"kind":"respond","status":407}"#).unwrap();
        assert_eq!(
            respond,
            Fault::Respond {
                status: 407,
                headers: vec![],
                body: String::new()
            }
        );
        refused::<Fault>(r#"{"kind":"status","status":500}"#, "missing field `body`");
        refused::<Fault>(r#"{"kind":"nope"}"#, "unknown variant `nope`");
        assert!(serde_json::from_str::<Fault>(r#"{"ms":5}"#).is_err());

        let hooks = [
            WebhookFault::Duplicate,
            WebhookFault::Reorder,
            WebhookFault::Delay { ms: 10 },
            WebhookFault::StaleTimestamp { seconds: 600 },
            WebhookFault::BadSignature,
            WebhookFault::Large { bytes: 100_000 },
        ];
        reads_back(&hooks);
        refused::<WebhookFault>(r#"{"kind":"stale_timestamp"}"#, "missing field `seconds`");
        refused::<WebhookFault>(r#"{"kind":"lost"}"#, "unknown variant `lost`");
    }

    /// Each value's JSON reads back as itself.
    #[track_caller]
    fn reads_back<T>(values: &[T])
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        for value in values {
            let text = serde_json::to_string(value).unwrap();
            assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), value, "{text}");
        }
    }

    /// `json` is refused as a `T`, the error saying `says`.
    #[track_caller]
    fn refused<T: serde::de::DeserializeOwned>(json: &str, says: &str) {
        let error = serde_json::from_str::<T>(json).err().expect("refused");
        assert!(error.to_string().contains(says), "{error}");
    }
}
