//! The emulator's sans-IO core: a request in, a response out. Routing, Polar's middleware
//! stack, the JSON bodies, validation, the store, the rate limiter, the faults and the admin
//! routes live here; no socket, thread or clock does. Time comes in with every call
//! ([`Time`]), ids from the source the core was made with.
//!
//! Polar's middleware stack in its real order, outermost first, as `server/polar/app.py`
//! builds it (the last middleware added is the outermost): Starlette's ServerErrorMiddleware
//! (bare 500) · APIVersionMiddleware (404 for a bad `Polar-Version`, else adds
//! `polar-version`) · CORS · MaxBodySize (411/413) · PathRewrite (`/api/v1`) · rate limit
//! (429) · AuthSubject (401 `invalid_token`) · CacheControl · Sandbox · the router and
//! endpoints.
//!
//! A layer either answers or passes the request inward, and adds its headers to the answer
//! on the way out. The body is read only by an endpoint (or an admin route) that needs it:
//! the pipeline stops there ([`Step::Body`]) so that the native server reads it with no lock
//! held and only when it must (a `100 Continue` is sent only then), and [`Core::finish`]
//! runs the endpoint and the layers' outward steps.

use std::time::Duration;

use time::OffsetDateTime;

use crate::ids::Ids;
use crate::json::{loads_bytes, write_str, LoadError, J};
use crate::ratelimit::{in_login_zone, in_public_zone, RateLimiter, TokenBudget};
use crate::state::{Call, GrantView, KeyFilter, Store, SvcError, SvcOk};
use crate::util::{http_date, micros, parse_uuid4, percent_decode};
use crate::validate::{self, error_body, json_invalid, path_uuid_error};
use crate::webhooks::{
    grant_event_type, render_grant, GrantChange, WebhookFault, WebhookOutcome, WebhookRequest,
    Webhooks,
};
use polar_license_rules::is_json_content_type;

// The organization and its benefits as its token reads them (issue #78).
mod admin;
mod catalog;
mod checkouts;
mod http;
pub(crate) use http::{framing, route_of, Exchange, Framing, Head, Op, Resp, Route};
pub use http::{huge_body_parts, Delivery, Request, Response, Time};
mod entitlements;
mod key_writes;
#[cfg(feature = "billing")]
mod lifecycle;
#[cfg(feature = "billing")]
mod meters;
mod portal;
#[cfg(feature = "billing")]
mod quantities;
mod reads;
mod sessions;
mod versions;
mod webhook_routes;
use crate::{Fault, KeyUpdate, Options, Seed, SeedKey};
pub(crate) use sessions::SessionAuth;
use sessions::{SessionOp, Sessions, SESSION_COLLECTIONS};
pub use versions::{ApiVersions, ApiVersionsChange, SeenRequest, DUE_FOR_REMOVAL};
use webhook_routes::WebhookOp;

/// The list route of the organization's keys (`GET`; FastAPI's path, slash included).
const LIST_PATH: &str = "/v1/license-keys/";

/// The largest page of `GET /v1/license-keys/`.
const MAX_PAGE_LIMIT: u64 = 100;

/// `API_MAX_REQUEST_BODY_SIZE`.
pub(crate) const MAX_BODY: u64 = 10 * 1024 * 1024;

const DEPRECATION_NOTICE: &str =
    "The API root has moved from /api/v1 to /v1. Please update your integration.";
const INVALID_TOKEN_DESCRIPTION: &str =
    "The access token provided is expired, revoked, malformed, or invalid for other reasons.";
const INSUFFICIENT_SCOPE_DESCRIPTION: &str =
    "The request requires higher privileges than provided by the access token.";
const ALLOW_METHODS: &str = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT";
const ALL_METHODS: [&str; 7] = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];
const ALLOW_HEADERS: &str =
    "Accept, Accept-Language, Authorization, Content-Language, Content-Type, Polar-Version";
/// What the ASGI server answers a request it cannot parse.
pub(crate) const BAD_REQUEST: &str = "Invalid HTTP request received.";
/// The body of [`Fault::Truncated`], of which the first half is sent.
const TRUNCATED_BODY: &str = "{\"id\":\"f7d9ba8a-dd63-4db8-bb8b-015006335825\",\"created_at\":\"2026-08-01T10:15:30.412907Z\",\"modified_at\":null,\"organization_id\":\"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10\"}";

/// Who is calling, as the auth middleware resolved it.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    Anonymous,
    Token {
        organization_id: uuid::Uuid,
        scopes: Vec<String>,
    },
}

impl Auth {
    /// The organization of a token holding one of `scopes`, or the 401 (no token) or 403 (none
    /// of them) to answer.
    pub(crate) fn organization_with(&self, scopes: &[&str]) -> Result<uuid::Uuid, Resp> {
        match self {
            Auth::Anonymous => Err(unauthorized()),
            Auth::Token { scopes: held, .. }
                if !scopes.iter().any(|n| held.iter().any(|s| s == n)) =>
            {
                Err(insufficient_scope(&scopes.join(" ")))
            }
            Auth::Token {
                organization_id, ..
            } => Ok(*organization_id),
        }
    }
}

/// What waits for the body.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    /// A license endpoint (`auth`: the token routes' caller; `None` on the public ones).
    Endpoint { op: Op, auth: Option<Auth> },
    /// `POST /__emulator/fault`.
    SetFault,
    /// `POST /__emulator/clock`.
    SetClock,
    /// `POST /__emulator/rate-limit`.
    SetRateLimit,
    /// `POST /__emulator/api-versions` (service/versions.rs).
    SetApiVersions,
    /// `POST /__emulator/keys`.
    AddKey,
    /// `PATCH /__emulator/keys/{key}`.
    UpdateKey(String),
    /// A webhook route's body (`POST /v1/webhooks/endpoints`, `PATCH …/endpoints/{id}`).
    Webhook {
        op: WebhookOp,
        organization_id: uuid::Uuid,
    },
    /// `POST /__emulator/webhooks/fault`.
    SetWebhookFault,
    /// `PATCH /__emulator/webhooks/endpoints/{id}`: how the endpoint's deliveries are signed.
    EndpointSignature(uuid::Uuid),
    /// A customer-session route's body (service/sessions.rs).
    Session(SessionOp),
    /// `PATCH /v1/license-keys/{id}` (service/key_writes.rs).
    KeyPatch {
        organization_id: uuid::Uuid,
        id: uuid::Uuid,
    },
    /// `PATCH /__emulator/benefits/{id}`: a Feature Flag's new metadata.
    BenefitMetadata(String),
    /// `PATCH /__emulator/keys/{key}/benefits/{benefit_id}`: a flag grant revoked or granted.
    FlagGrant { key: String, benefit_id: String },
    /// A checkout route's body (service/checkouts.rs; its settings are a control route's).
    Checkout(checkouts::CheckoutOp),
    /// `POST /v1/events/ingest` (service/meters.rs), its caller.
    #[cfg(feature = "billing")]
    Ingest(Auth),
    /// `POST /__emulator/keys/{key}/subscription`: a lifecycle change (service/lifecycle.rs).
    #[cfg(feature = "billing")]
    Subscription(String),
    /// `POST /__emulator/keys/{key}/refund`: the key's order refunded.
    #[cfg(feature = "billing")]
    Refund(String),
}

/// Where the pipeline stopped.
#[derive(Debug)]
pub(crate) enum Step {
    /// The answer.
    Done(Resp),
    /// The body is needed: read it, then [`Core::finish`].
    Body(Pending),
    /// A fault is set and this is a license route: the transport applies it.
    Fault(Fault),
}

impl Step {
    /// A layer's outward step, applied to an answer (a pending endpoint gets it in `finish`).
    fn map(self, f: impl FnOnce(Resp) -> Resp) -> Step {
        match self {
            Step::Done(r) => Step::Done(f(r)),
            other => other,
        }
    }
}

// ---- The core ------------------------------------------------------------------------

/// The emulator without a server: Polar's answers to requests handed to it, with every time
/// passed in. [`crate::Emulator`] is this core behind a std HTTP server; the npm package's
/// `polar-license/emulator` is this core compiled to WebAssembly behind `node:http`.
///
/// ```
/// use polar_license_emulator::{Core, Options, Request, Seed, Time, DEMO_KEY, DEMO_ORGANIZATION_ID};
///
/// let now = Time::from_millis(1_790_000_000_000.0, 0.0).ok_or("time")?;
/// let mut polar = Core::with_entropy(Seed::demo(), Options::default(), now, [7; 32])?;
/// let body = format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{DEMO_ORGANIZATION_ID}"}}"#);
/// let answer = polar.handle(
///     &Request {
///         method: "POST".into(),
///         target: "/v1/customer-portal/license-keys/validate".into(),
///         headers: vec![
///             ("content-type".into(), "application/json".into()),
///             ("content-length".into(), body.len().to_string()),
///         ],
///         body: body.into_bytes(),
///         peer: "127.0.0.1".into(),
///     },
///     now,
/// );
/// assert_eq!(answer.status, 200);
/// # Ok::<(), String>(())
/// ```
pub struct Core {
    store: Store,
    fault: Option<Fault>,
    requests: u64,
    open_streams: u64,
    /// Seconds added to the wall clock (see [`Core::set_clock_offset`]).
    clock_offset: i64,
    options: Options,
    limiter: RateLimiter,
    /// The organization tokens' budget: (calls per window or 0, the window), and its counters.
    budget: (u32, Duration),
    token_budget: TokenBudget,
    webhooks: Webhooks,
    organization_id: String,
    /// Customer sessions: email codes, `polar_cst_` tokens, device-management benefits.
    sessions: Sessions,
    /// The seed's license-key benefit settings (`GET /v1/benefits/`).
    catalog: catalog::Catalog,
    /// The versions due for removal and the requests seen (service/versions.rs).
    rotation: versions::Rotation,
    /// Checkouts, the seed's products and links, the delay before an order's key
    /// (service/checkouts.rs).
    checkouts: checkouts::Checkouts,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("organization_id", &self.organization_id)
            .field("requests", &self.requests)
            .field("fault", &self.fault)
            .field("clock_offset", &self.clock_offset)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core serving `seed`, its keys created at `now`, its ids (activations, keys, customers
    /// the seed leaves out) random from the operating system. Native only; see
    /// [`Core::with_entropy`].
    ///
    /// Fails when the options or the seed are inconsistent (the default API version not
    /// served, bad UUIDs, an unknown status, duplicate keys…).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(seed: Seed, options: Options, now: Time) -> Result<Core, String> {
        Core::build(seed, options, now, Ids::System)
    }

    /// The same, with every generated id derived from `entropy` (SHA-256 in counter mode):
    /// give it 32 random bytes (`crypto.getRandomValues` on wasm32), or fixed ones for the
    /// same ids on every run.
    pub fn with_entropy(
        seed: Seed,
        options: Options,
        now: Time,
        entropy: [u8; 32],
    ) -> Result<Core, String> {
        let ids = Ids::Seeded {
            key: entropy,
            counter: 0,
        };
        Core::build(seed, options, now, ids)
    }

    fn build(seed: Seed, options: Options, now: Time, ids: Ids) -> Result<Core, String> {
        if !options.api_versions.contains(&options.api_version) {
            return Err(format!(
                "the default API version {} is not among the served ones ({})",
                options.api_version,
                options.api_versions.join(", ")
            ));
        }
        let store = Store::from_seed(&seed, ids, micros(now.wall))?;
        let sessions = Sessions::from_seed(&seed)?;
        let catalog = catalog::Catalog::from_seed(&seed, micros(now.wall))?;
        let checkouts = checkouts::Checkouts::from_seed(&seed)?;
        let organization_id = parse_uuid4(&seed.organization_id, "organization_id")?.to_string();
        let limit = options
            .token_budget
            .or(seed.token_budget)
            .unwrap_or(if options.sandbox {
                crate::SANDBOX_TOKEN_BUDGET
            } else {
                crate::TOKEN_BUDGET
            });
        let window = options
            .token_window
            .or(seed.token_window_seconds.map(Duration::from_secs))
            .unwrap_or(Duration::from_secs(60));
        if window.is_zero() {
            return Err("the token budget's window must be longer than 0".to_string());
        }
        Ok(Core {
            store,
            fault: None,
            requests: 0,
            open_streams: 0,
            clock_offset: 0,
            options,
            limiter: RateLimiter::default(),
            budget: (limit, window),
            token_budget: TokenBudget::default(),
            webhooks: Webhooks::default(),
            organization_id,
            sessions,
            catalog,
            rotation: versions::Rotation::default(),
            checkouts,
        })
    }

    /// The seed's top-level organization ID.
    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }

    /// The options it was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Answers one request. A [`Response`] whose [`Delivery`] is not `Whole` carries a fault
    /// that the transport applies; for `Delay`, it answers [`Core::resume`] after the wait.
    pub fn handle(&mut self, req: &Request, now: Time) -> Response {
        let Some(mut ex) = exchange(req) else {
            return self.respond(Resp::bad_request(), Delivery::Whole, now);
        };
        match self.begin(&mut ex, now) {
            Step::Done(r) => self.respond(r, Delivery::Whole, now),
            Step::Body(pending) => {
                let body = body_of(req, ex.framing);
                let r = self.finish(&mut ex, pending, Some(body), now);
                self.respond(r, Delivery::Whole, now)
            }
            Step::Fault(fault) => self.apply_fault(fault, &mut ex, req, now),
        }
    }

    /// The answer to a request whose [`Delivery::Delay`] has passed: Polar's answer as of
    /// `now`, neither counted again nor faulted.
    pub fn resume(&mut self, req: &Request, now: Time) -> Response {
        let Some(mut ex) = exchange(req) else {
            return self.respond(Resp::bad_request(), Delivery::Whole, now);
        };
        let r = self.answer(&mut ex, req, now);
        self.respond(r, Delivery::Whole, now)
    }

    /// The pipeline to the end, the body taken from `req`.
    fn answer(&mut self, ex: &mut Exchange, req: &Request, now: Time) -> Resp {
        match self.pipeline(ex, now) {
            Step::Done(r) => r,
            Step::Body(pending) => {
                let body = body_of(req, ex.framing);
                self.finish(ex, pending, Some(body), now)
            }
            // The pipeline never faults.
            Step::Fault(_) => Resp::internal_error(),
        }
    }

    fn apply_fault(
        &mut self,
        fault: Fault,
        ex: &mut Exchange,
        req: &Request,
        now: Time,
    ) -> Response {
        match fault {
            Fault::Hang => Response::nothing(Delivery::Hang),
            Fault::CloseImmediately => Response::nothing(Delivery::Close),
            Fault::Delay { ms } => Response::nothing(Delivery::Delay { ms }),
            Fault::SlowBody { ms_per_byte } => {
                let r = self.answer(ex, req, now);
                self.respond(r, Delivery::SlowBody { ms_per_byte }, now)
            }
            other => match self.fault_response(&other, ex) {
                Some((r, delivery)) => self.respond(r, delivery, now),
                None => Response::nothing(Delivery::Close),
            },
        }
    }

    /// The response to send: the `date` header first, then the core's.
    fn respond(&self, r: Resp, delivery: Delivery, now: Time) -> Response {
        let mut headers = Vec::with_capacity(r.headers.len() + 1);
        headers.push(("date".to_string(), self.date(now)));
        headers.extend(r.headers);
        Response {
            status: r.status,
            headers,
            body: r.body,
            close: r.close,
            delivery,
        }
    }

    /// The `date` header's value at `now`: the emulator's clock, IMF-fixdate.
    pub fn date(&self, now: Time) -> String {
        http_date(self.clock(now))
    }

    /// The emulator's clock at `now`: the wall clock, to the microsecond, plus the offset.
    pub fn clock(&self, now: Time) -> OffsetDateTime {
        let wall = micros(now.wall);
        wall.checked_add(time::Duration::seconds(self.clock_offset))
            .unwrap_or(wall)
    }

    /// Injects a fault on every following request to the license routes (`None` clears it).
    pub fn set_fault(&mut self, fault: Option<Fault>) {
        self.fault = fault;
    }

    /// The fault set, if any.
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// Requests received on the six license routes (any answer, faults and 4xx/429 included;
    /// CORS preflights and admin routes excluded).
    pub fn request_count(&self) -> u64 {
        self.requests
    }

    /// Sets [`Core::request_count`] back to 0.
    pub fn reset_request_count(&mut self) {
        self.requests = 0;
    }

    /// Fault bodies being written ([`Delivery::SlowBody`], [`Delivery::Huge`]), as the
    /// transport reports them with [`Core::stream_started`] and [`Core::stream_ended`]
    /// (`GET /__emulator/streams` answers it).
    pub fn open_streams(&self) -> u64 {
        self.open_streams
    }

    /// The transport started writing a fault body.
    pub fn stream_started(&mut self) {
        self.open_streams = self.open_streams.saturating_add(1);
    }

    /// The transport stopped writing a fault body (done, or the client went away).
    pub fn stream_ended(&mut self) {
        self.open_streams = self.open_streams.saturating_sub(1);
    }

    /// Moves the emulator's clock by `seconds` from the wall clock it is given (its `date`
    /// header, expiry checks, `last_validated_at`).
    pub fn set_clock_offset(&mut self, seconds: i64) {
        self.clock_offset = seconds;
    }

    /// Turns Polar's per-IP rate limits on or off on a running emulator, as
    /// [`Options::rate_limit`] does at start (the public license-key zone, 3 a second then
    /// [`Options::rate_limit_block`]; the email-code zone, 6 a minute and 12 an hour then 900 s),
    /// and forgets every window and block counted so far: a test that shares one emulator
    /// starts its rate-limited part afresh and, turning it off, leaves no address blocked. The
    /// statuses, headers and bodies are the limiter's own (`POST /__emulator/rate-limit`).
    pub fn set_rate_limit(&mut self, enabled: bool) {
        self.options.rate_limit = enabled;
        self.limiter = RateLimiter::default();
    }

    /// Whether Polar's per-IP rate limits are on ([`Core::set_rate_limit`]).
    pub fn rate_limit(&self) -> bool {
        self.options.rate_limit
    }

    /// The clock offset, in seconds.
    pub fn clock_offset(&self) -> i64 {
        self.clock_offset
    }

    /// The current `LicenseKeyRead` JSON of a key (first match in any organization).
    pub fn key(&self, key: &str) -> Option<serde_json::Value> {
        self.store.key_json(key).map(|j| j.to_value())
    }

    /// The keys and activations as a state file's text ([`Options::state`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn state_text(&self) -> String {
        self.store.state_text()
    }

    /// Takes the keys and activations of a state file's text; nothing changes on an error.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn restore_state(&mut self, text: &str) -> Result<(), String> {
        self.store.restore_text(text)
    }

    /// The live (not deactivated) activations of a key, each
    /// `{id, license_key_id, label, meta, conditions, created_at, modified_at}`.
    pub fn activations(&self, key: &str) -> Vec<serde_json::Value> {
        self.store
            .activations_json(key)
            .iter()
            .map(|j| j.to_value())
            .collect()
    }

    /// Changes a key like Polar's `PATCH /v1/license-keys/{id}` (`modified_at` set to `now`'s
    /// wall clock). Returns `false` when the key is unknown or a value is invalid (nothing
    /// changes then).
    pub fn update_key(&mut self, key: &str, update: &KeyUpdate, now: Time) -> bool {
        matches!(self.update_key_json(key, update, now), Ok(Some(_)))
    }

    /// [`Core::update_key`] with the key's new `LicenseKeyRead` (`Ok(None)`: unknown key), and
    /// the webhooks it makes, as Polar since September 2026 (polar-license-api.md §15): only
    /// `revoked` moves the grant: `benefit_grant.revoked` when the key is revoked,
    /// `benefit_grant.created` when a revoked key is granted again (the same string); setting
    /// a key to `disabled`, or from `disabled`, leaves the grant alone and fires no grant
    /// webhook (#13621); `benefit_grant.updated` for any other change (limits, usage, expiry);
    /// after a grant's webhook, `customer.state_changed`.
    fn update_key_json(
        &mut self,
        key: &str,
        update: &KeyUpdate,
        now: Time,
    ) -> Result<Option<J>, String> {
        let (answer, granted) = self.update_key_grant(key, update, now)?;
        if let Some((organization_id, customer_id)) = granted {
            self.customer_changed(organization_id, customer_id, now);
        }
        Ok(answer)
    }

    /// [`Core::update_key_json`] without the customer's state after it (a change of several
    /// keys sends it once, after them all): also the organization and customer whose grant's
    /// webhook it sent, if it sent one.
    pub(crate) fn update_key_grant(
        &mut self,
        key: &str,
        update: &KeyUpdate,
        now: Time,
    ) -> Result<(Option<J>, Option<GrantOf>), String> {
        let before = self.store.grant_view(key);
        let answer = self.store.update_key(key, update, micros(now.wall))?;
        if let (Some(before), Some(after)) = (before, self.store.grant_view(key)) {
            // Whether anything besides the status changed (a status to or from `disabled`
            // is no grant event of its own).
            let others_changed = GrantView {
                status: after.status,
                ..before.clone()
            } != after;
            let updated = || {
                others_changed.then(|| GrantChange::Updated {
                    previous_display_key: before.display_key.clone(),
                })
            };
            let change = match (before.status, after.status) {
                ("revoked", "revoked")
                | ("granted" | "disabled", "granted" | "disabled")
                | ("revoked", "disabled") => updated(),
                (_, "revoked") => Some(GrantChange::Revoked),
                _ => Some(GrantChange::Created),
            };
            if let Some(change) = change {
                self.emit_grant(key, &change, now);
                return Ok((answer, Some((after.organization_id, after.customer_id))));
            }
        }
        Ok((answer, None))
    }

    /// Emits the `benefit_grant.*` event of `change` to a key's key organization's endpoints.
    fn emit_grant(&mut self, key: &str, change: &GrantChange, now: Time) {
        let Some(view) = self.store.grant_view(key) else {
            return;
        };
        let wall = self.clock(now);
        let data = render_grant(&view, change, wall);
        let store = &mut self.store;
        self.webhooks.emit(
            view.organization_id,
            grant_event_type(change),
            &data,
            wall,
            now.monotonic,
            || store.next_id(),
        );
    }

    /// `customer.state_changed` for the customer `customer_id` of `organization_id`, the
    /// customer's state as it is now: Polar queues it after every `benefit_grant.*` webhook
    /// (polar-license-api.md §15, #13977).
    pub(crate) fn customer_changed(
        &mut self,
        organization_id: uuid::Uuid,
        customer_id: uuid::Uuid,
        now: Time,
    ) {
        let wall = self.clock(now);
        if let Some(data) = self.store.customer_state(None, customer_id, wall) {
            let store = &mut self.store;
            self.webhooks.emit(
                organization_id,
                "customer.state_changed",
                &data,
                wall,
                now.monotonic,
                || store.next_id(),
            );
        }
    }

    /// A new billing period for a key, as when Polar cycles a subscription:
    /// `benefit_grant.cycled` is sent, the key unchanged (its usage is not reset: §16.6); the
    /// purchase's meter credits cycle too (their meters reset and credited again, each its
    /// own `benefit_grant.cycled`).
    /// `false`: unknown key.
    pub fn cycle_key(&mut self, key: &str, now: Time) -> bool {
        if !self.store.cycle_key(key) {
            return false;
        }
        self.emit_grant(key, &GrantChange::Cycled, now);
        // The purchase's meter credits cycle too: each meter reset and credited again
        // (docs/polar-api.md §16.5), `benefit_grant.cycled` each.
        #[cfg(feature = "billing")]
        {
            let wall = self.clock(now);
            for (organization_id, grant) in self.store.cycle_credit_grants(key, wall) {
                let store = &mut self.store;
                self.webhooks.emit(
                    organization_id,
                    "benefit_grant.cycled",
                    &grant,
                    wall,
                    now.monotonic,
                    || store.next_id(),
                );
            }
        }
        if let Some(view) = self.store.grant_view(key) {
            self.customer_changed(view.organization_id, view.customer_id, now);
        }
        true
    }

    /// Sets the failure to inject into the next change's webhook deliveries (`None` clears it).
    pub fn set_webhook_fault(&mut self, fault: Option<WebhookFault>) {
        self.webhooks.fault = fault;
    }

    /// The webhook fault waiting for the next change, if any.
    pub fn webhook_fault(&self) -> Option<&WebhookFault> {
        self.webhooks.fault.as_ref()
    }

    /// The webhook attempts due at `now`, for the host to send (each endpoint's oldest pending
    /// event, one in flight per endpoint). Report each with [`Core::webhook_finished`].
    pub fn webhooks_due(&mut self, now: Time) -> Vec<WebhookRequest> {
        let wall = self.clock(now);
        let timeout = self.options.webhooks.timeout;
        self.webhooks.due(wall, now.monotonic, timeout)
    }

    /// How attempt `id` of [`Core::webhooks_due`] went: a 2xx succeeds; a failure (a 3xx
    /// included) is retried on Polar's schedule (ten tries in all), and an endpoint whose ten
    /// most recent events each failed every try is disabled.
    pub fn webhook_finished(&mut self, id: u64, outcome: WebhookOutcome, now: Time) {
        let wall = self.clock(now);
        let scale = self.options.webhooks.schedule_scale;
        let delivery_id = self.store.next_id();
        self.webhooks
            .finished(id, outcome, wall, now.monotonic, scale, delivery_id);
    }

    /// When the next webhook attempt is due, on the monotonic clock of [`Time`] (`None`:
    /// nothing is waiting but, perhaps, attempts in flight).
    pub fn webhooks_next_at(&self) -> Option<Duration> {
        self.webhooks.next_at()
    }

    /// Rotates a key like Polar's `POST /v1/license-keys/{id}/rotate`: returns its new
    /// string; the old one answers 404 "Not found" from now on. `None` when the key is unknown.
    pub fn rotate_key(&mut self, key: &str, now: Time) -> Option<String> {
        let before = self.store.grant_view(key)?;
        let rotated = self.store.rotate_key(key, micros(now.wall))?;
        let change = GrantChange::Updated {
            previous_display_key: before.display_key,
        };
        self.emit_grant(&rotated, &change, now);
        self.customer_changed(before.organization_id, before.customer_id, now);
        Some(rotated)
    }

    /// Adds a key (in the seed's organization unless it names another), created at `now`: a
    /// granted or disabled one sends `benefit_grant.created`, then one for each Feature Flag
    /// its purchase granted (its `benefits`).
    pub fn add_key(&mut self, key: &SeedKey, now: Time) -> Result<(), String> {
        self.store.add_key(key, micros(now.wall))?;
        if self
            .store
            .grant_view(&key.key)
            .is_some_and(|v| v.status != "revoked")
        {
            self.emit_grant(&key.key, &GrantChange::Created, now);
            // The purchase's other benefits: each grant's own `benefit_grant.created`.
            let wall = self.clock(now);
            for b in &key.benefits {
                let Ok(b) = parse_uuid4(b, "a benefit") else {
                    continue;
                };
                let Some(made) = self.store.set_flag_grant(&key.key, b, true, wall) else {
                    continue;
                };
                let store = &mut self.store;
                self.webhooks.emit(
                    made.organization_id,
                    "benefit_grant.created",
                    &made.grant,
                    wall,
                    now.monotonic,
                    || store.next_id(),
                );
            }
            if let Some(view) = self.store.grant_view(&key.key) {
                self.customer_changed(view.organization_id, view.customer_id, now);
            }
        }
        Ok(())
    }

    // ---- The steps the native server drives -------------------------------------------

    /// A request's first step: the admin routes, else the count and the fault of a license
    /// route, else Polar's pipeline.
    pub(crate) fn begin(&mut self, ex: &mut Exchange, now: Time) -> Step {
        self.issue_due_keys(now);
        if ex.decoded == "/__emulator" || ex.decoded.starts_with("/__emulator/") {
            return self.admin(ex, now);
        }
        self.rotation.saw(&ex.head, &ex.path);
        if route_of(&ex.path).is_some() && !ex.is_preflight() {
            self.requests = self.requests.saturating_add(1);
            if let Some(fault) = self.fault.clone() {
                return Step::Fault(fault);
            }
        }
        self.pipeline(ex, now)
    }

    /// Runs what waited for the body (`None`: it could not be read) and the layers' outward
    /// steps.
    pub(crate) fn finish(
        &mut self,
        ex: &mut Exchange,
        pending: Pending,
        body: Option<&[u8]>,
        now: Time,
    ) -> Resp {
        let r = match pending {
            Pending::Webhook {
                op,
                organization_id,
            } => self.webhook_with_body(ex, op, organization_id, body, now),
            Pending::Endpoint { .. } | Pending::Session(_) | Pending::KeyPatch { .. } => {
                self.json_with_body(ex, pending, body, now)
            }
            Pending::Checkout(op) if !matches!(op, checkouts::CheckoutOp::Settings) => {
                self.json_with_body(ex, pending, body, now)
            }
            #[cfg(feature = "billing")]
            Pending::Ingest(_) => self.json_with_body(ex, pending, body, now),
            admin => {
                let r = match body {
                    Some(raw) => self.admin_with_body(admin, raw, now),
                    None => Resp::bad_request(),
                };
                return post_admin(ex, r);
            }
        };
        let r = self.post_auth(r);
        let r = post_max_body(ex, r);
        let r = post_cors(ex, r);
        post_version(ex, r)
    }

    /// Runs a Polar route that reads its body as JSON (`None`: it could not be read), the
    /// body's own refusal first.
    fn json_with_body(
        &mut self,
        ex: &Exchange,
        pending: Pending,
        raw: Option<&[u8]>,
        now: Time,
    ) -> Resp {
        let body = match read_body(ex, raw) {
            Ok(body) => body,
            Err(r) => return r,
        };
        match pending {
            Pending::Endpoint { op, auth } => self.endpoint(ex, op, auth.as_ref(), body, now),
            #[cfg(feature = "billing")]
            Pending::Ingest(auth) => self.ingest(&auth, body, now),
            Pending::Session(op) => self.session_with_body(op, body, now),
            Pending::Checkout(op) => self.checkout_with_body(ex, op, body, now),
            Pending::KeyPatch {
                organization_id,
                id,
            } => self.key_patch(organization_id, id, &body, &ex.version, now),
            // Never pending here.
            _ => Resp::internal_error(),
        }
    }

    // ---- Polar's middleware stack, outermost first -------------------------------------

    pub(crate) fn pipeline(&mut self, ex: &mut Exchange, now: Time) -> Step {
        let version = match api_version(&ex.head, &self.options) {
            Some(v) => v,
            None => {
                let mut r = Resp::detail(404, "Not Found");
                r.bare = true;
                return Step::Done(r);
            }
        };
        ex.version = version;
        let step = self.cors_layer(ex, now);
        step.map(|r| post_version(ex, r))
    }

    fn cors_layer(&mut self, ex: &mut Exchange, now: Time) -> Step {
        if !ex.head.has("origin") {
            return self.max_body_layer(ex, now);
        }
        if ex.is_preflight() {
            return Step::Done(preflight(&ex.head));
        }
        let step = self.max_body_layer(ex, now);
        step.map(|r| post_cors(ex, r))
    }

    fn max_body_layer(&mut self, ex: &mut Exchange, now: Time) -> Step {
        let needs_length = matches!(ex.method(), "POST" | "PUT" | "PATCH");
        match ex.framing {
            Framing::Length(n) if n > MAX_BODY => {
                return Step::Done(Resp::error(
                    413,
                    "RequestBodyTooLarge",
                    "Request body exceeded the maximum allowed size of 10485760 bytes.",
                ));
            }
            Framing::Empty | Framing::Chunked if needs_length => {
                return Step::Done(Resp::error(
                    411,
                    "LengthRequired",
                    "A Content-Length header is required.",
                ));
            }
            _ => {}
        }
        let step = self.rate_limit_layer(ex, now);
        step.map(|r| post_max_body(ex, r))
    }

    fn rate_limit_layer(&mut self, ex: &mut Exchange, now: Time) -> Step {
        let (limit, window) = self.budget;
        if limit > 0 && ex.path.starts_with("/v1") && !in_public_zone(&ex.path) {
            if let Some(org) = self.token_organization(ex) {
                if let Some(secs) = self.token_budget.check(&org, limit, window, now.monotonic) {
                    let mut r = Resp::new(429);
                    r.set("retry-after", &secs.to_string());
                    return Step::Done(r);
                }
            }
        }
        if self.options.rate_limit && ex.path.starts_with("/v1") {
            let identity = self.rate_limit_identity(ex);
            // The email-code zone (6/min, 12/h, 900 s block) rides the same switch as the
            // public zone: both are per-IP rules of Polar's production and sandbox only.
            let retry_after = if in_login_zone(&ex.path) {
                self.limiter.check_login(&identity, now.monotonic)
            } else {
                self.limiter.check(
                    &identity,
                    in_public_zone(&ex.path),
                    self.options.rate_limit_block,
                    now.monotonic,
                )
            };
            if let Some(secs) = retry_after {
                let mut r = Resp::new(429);
                r.set("retry-after", &secs.to_string());
                return Step::Done(r);
            }
        }
        self.auth_layer(ex, now)
    }

    /// The organization of a known bearer token (the identity `organization:<id>` of the
    /// budget), `None` for anonymous calls and unknown tokens.
    fn token_organization(&self, ex: &Exchange) -> Option<String> {
        let token = bearer_token(&ex.head)?;
        self.store
            .tokens
            .iter()
            .find(|t| t.token == token)
            .map(|t| t.organization_id.to_string())
    }

    /// The token budget: calls per window per organization (0: off) and the window.
    pub fn token_budget(&self) -> (u32, Duration) {
        self.budget
    }

    fn rate_limit_identity(&self, ex: &Exchange) -> String {
        match bearer_token(&ex.head) {
            Some(token) => match self.store.tokens.iter().find(|t| t.token == token) {
                Some(t) => format!("organization:{}", t.organization_id),
                None => format!("token:{token}"),
            },
            None => match ex.head.get("true-client-ip") {
                Some(ip) => ip.to_string(),
                None => ex.peer.clone(),
            },
        }
    }

    fn auth_layer(&mut self, ex: &mut Exchange, now: Time) -> Step {
        let auth = match bearer_token(&ex.head) {
            None => Auth::Anonymous,
            Some(token) => match self.store.tokens.iter().find(|t| t.token == token) {
                Some(t) => Auth::Token {
                    organization_id: t.organization_id,
                    scopes: t.scopes.clone(),
                },
                None => match self.session_of(&token, now) {
                    Some(session) => {
                        ex.session = Some(session);
                        Auth::Anonymous
                    }
                    None => {
                        return Step::Done(oauth2_error(
                            401,
                            "invalid_token",
                            INVALID_TOKEN_DESCRIPTION,
                            None,
                        ))
                    }
                },
            },
        };
        let step = self.router(ex, auth, now);
        step.map(|r| self.post_auth(r))
    }

    /// CacheControl and Sandbox, on the way out.
    fn post_auth(&self, mut r: Resp) -> Resp {
        if !r.bare {
            if !r.has("cache-control") {
                r.set("cache-control", "private, no-store");
            }
            if self.options.sandbox {
                r.set("x-polar-sandbox", "1");
            }
        }
        r
    }

    // ---- The router and the endpoints ---------------------------------------------------

    fn router(&mut self, ex: &mut Exchange, auth: Auth, now: Time) -> Step {
        if let Some(step) = self.session_route(ex, &auth) {
            return step;
        }
        if let Some(step) = self.checkout_route(ex, &auth, now) {
            return step;
        }
        if let Some(step) = self.portal_route(ex, &auth, now) {
            return step;
        }
        if ex.path == "/v1/webhooks" || ex.path.starts_with("/v1/webhooks/") {
            return self.webhook_route(ex, auth, now);
        }
        if let Some(step) = self.key_write_route(ex, &auth, now) {
            return step;
        }
        if let Some(step) = self.entitlement_route(ex, &auth, now) {
            return step;
        }
        if let Some(step) = self.catalog_route(ex, &auth) {
            return step;
        }
        #[cfg(feature = "billing")]
        if let Some(step) = self.meter_route(ex, &auth) {
            return step;
        }
        if let Some(step) = self.read_more_route(ex, &auth) {
            return step;
        }
        if matches!(ex.method(), "GET" | "HEAD") {
            if let Some(r) = self.read_route(ex, &auth) {
                return Step::Done(r);
            }
        }
        match route_of(&ex.path) {
            Some(Route::Public(op)) => match ex.method() {
                "POST" => Step::Body(Pending::Endpoint { op, auth: None }),
                // GET /v1/customer-portal/license-keys/{id} needs a customer session.
                "GET" | "HEAD" => Step::Done(unauthorized()),
                _ => Step::Done(method_not_allowed("POST")),
            },
            Some(Route::Token(op)) => match ex.method() {
                "POST" => Step::Body(Pending::Endpoint {
                    op,
                    auth: Some(auth),
                }),
                // GET and PATCH /v1/license-keys/{id}.
                m @ ("GET" | "HEAD" | "PATCH") => {
                    let needed: &[&str] = if m == "PATCH" {
                        &["license_keys:write"]
                    } else {
                        &["license_keys:read", "license_keys:write"]
                    };
                    Step::Done(match auth {
                        Auth::Anonymous => unauthorized(),
                        Auth::Token { scopes, .. }
                            if !needed.iter().any(|n| scopes.iter().any(|s| s == n)) =>
                        {
                            insufficient_scope(&needed.join(" "))
                        }
                        Auth::Token { .. } => {
                            let id = ex.path.rsplit('/').next().unwrap_or("");
                            match path_uuid_error("id", id) {
                                Some(e) => Resp::json(422, &error_body(&[e])),
                                None => Resp::error(404, "ResourceNotFound", "Not found"),
                            }
                        }
                    })
                }
                _ => Step::Done(method_not_allowed("POST")),
            },
            None => {
                // Starlette's redirect_slashes.
                let alternative = match ex.path.strip_suffix('/') {
                    Some(trimmed) => trimmed.to_string(),
                    None => format!("{}/", ex.path),
                };
                Step::Done(
                    if route_of(&alternative).is_some()
                        || alternative == LIST_PATH
                        || alternative == entitlements::GRANTS_PATH
                        || alternative == catalog::BENEFITS_PATH
                        || alternative == catalog::ORGANIZATIONS_PATH
                        || billing_collection(&alternative)
                        || SESSION_COLLECTIONS.contains(&alternative.as_str())
                        || reads::read_collection(&alternative)
                    {
                        let mut r = Resp::new(307);
                        let host = ex.head.get("host").unwrap_or("127.0.0.1");
                        let query = ex
                            .head
                            .target
                            .split_once('?')
                            .map(|(_, q)| format!("?{q}"))
                            .unwrap_or_default();
                        r.set("location", &format!("http://{host}{alternative}{query}"));
                        r
                    } else {
                        Resp::detail(404, "Not Found")
                    },
                )
            }
        }
    }

    /// The read routes of an organization token (scope `license_keys:read` or `:write`):
    /// `GET /v1/license-keys/` (the list, with its filters and pages) and
    /// `GET /v1/license-keys/{id}` (one key and its activations). `None`: not one of them.
    fn read_route(&self, ex: &Exchange, auth: &Auth) -> Option<Resp> {
        let id = match ex.path.strip_prefix("/v1/license-keys/") {
            Some("") => None,
            Some(rest) if !rest.contains('/') && route_of(&ex.path).is_none() => Some(rest),
            _ => return None,
        };
        let organization_id = match auth {
            Auth::Anonymous => return Some(unauthorized()),
            Auth::Token { scopes, .. }
                if !scopes
                    .iter()
                    .any(|s| s == "license_keys:read" || s == "license_keys:write") =>
            {
                return Some(insufficient_scope("license_keys:read license_keys:write"));
            }
            Auth::Token {
                organization_id, ..
            } => *organization_id,
        };
        if let Some(id) = id {
            if let Some(e) = path_uuid_error("id", id) {
                return Some(Resp::json(422, &error_body(&[e])));
            }
            let found = uuid::Uuid::parse_str(id)
                .ok()
                .and_then(|id| self.store.key_by_id(organization_id, id, &ex.version));
            return Some(match found {
                Some(key) => Resp::json(200, &key),
                None => Resp::error(404, "ResourceNotFound", "Not found"),
            });
        }
        let query = ex.head.target.split_once('?').map_or("", |(_, q)| q);
        let query = query.split('#').next().unwrap_or("");
        let mut filter = KeyFilter::default();
        let mut paging = portal::Paging::default();
        let mut errors = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(&value.replace('+', " "));
            match percent_decode(name).as_str() {
                "organization_id" => match validate::query_uuid_error("organization_id", &value) {
                    Some(e) => errors.push(e),
                    None => filter
                        .organization_ids
                        .extend(uuid::Uuid::parse_str(&value).ok()),
                },
                "benefit_id" => match validate::query_uuid_error("benefit_id", &value) {
                    Some(e) => errors.push(e),
                    None => filter
                        .benefit_ids
                        .extend(uuid::Uuid::parse_str(&value).ok()),
                },
                "status" => match validate::query_status_error(&value) {
                    Some(e) => errors.push(e),
                    None => filter.statuses.push(value),
                },
                n if paging.take(n, &value, &mut errors) => {}
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Some(Resp::json(422, &error_body(&errors)));
        }
        let list = self.store.list_keys(
            organization_id,
            &filter,
            paging.page,
            paging.limit(),
            &ex.version,
        );
        Some(Resp::json(200, &list))
    }

    fn endpoint(
        &mut self,
        ex: &Exchange,
        op: Op,
        token_auth: Option<&Auth>,
        body: J,
        now: Time,
    ) -> Resp {
        let scope = match token_auth.map(|auth| auth.organization_with(&["license_keys:write"])) {
            None => None,
            Some(Ok(organization_id)) => Some(organization_id),
            Some(Err(r)) => return r,
        };
        let call = Call {
            scope,
            now: self.clock(now),
            version: &ex.version,
        };
        let result = match op {
            Op::Validate => match validate::validate_req(&body) {
                Ok(req) => self.store.validate(&req, call),
                Err(errors) => return Resp::json(422, &error_body(&errors)),
            },
            Op::Activate => match validate::activate_req(&body) {
                Ok(req) => self.store.activate(&req, call),
                Err(errors) => return Resp::json(422, &error_body(&errors)),
            },
            Op::Deactivate => match validate::deactivate_req(&body) {
                Ok(req) => self.store.deactivate(&req, call),
                Err(errors) => return Resp::json(422, &error_body(&errors)),
            },
        };
        match result {
            Ok(SvcOk::Json(value)) => Resp::json(200, &value),
            Ok(SvcOk::NoContent) => Resp::new(204),
            Err(SvcError::NotFound(d)) => Resp::error(404, "ResourceNotFound", &d),
            Err(SvcError::NotPermitted(d)) => Resp::error(403, "NotPermitted", &d),
            Err(SvcError::BadRequest(d)) => Resp::error(400, "BadRequest", &d),
            Err(SvcError::Internal) => Resp::internal_error(),
        }
    }

    // ---- Faults ------------------------------------------------------------------------

    /// The answer of a fault that is a response (`Status`, `Respond`, `RateLimited`,
    /// `Malformed`, `Truncated`, `Huge`), and how to send it; `None` for the others (`Hang`,
    /// `CloseImmediately`, `Delay`, `SlowBody`: the transport's own).
    pub(crate) fn fault_response(&self, fault: &Fault, ex: &Exchange) -> Option<(Resp, Delivery)> {
        let decorate = |r: &mut Resp, version: bool| {
            if let Some(origin) = ex.head.get("origin") {
                add_simple_cors(r, &ex.head, origin);
            }
            if version {
                let version = api_version(&ex.head, &self.options);
                r.set(
                    "polar-version",
                    version.as_deref().unwrap_or(&self.options.api_version),
                );
            }
        };
        let answer = match fault {
            Fault::Hang
            | Fault::CloseImmediately
            | Fault::Delay { .. }
            | Fault::SlowBody { .. } => return None,
            Fault::Status { status, body } => {
                let mut r = if serde_json::from_str::<serde_json::Value>(body).is_ok() {
                    Resp::json_text(*status, body)
                } else {
                    Resp::text(*status, body)
                };
                decorate(&mut r, false);
                (r, Delivery::Whole)
            }
            Fault::Respond {
                status,
                headers,
                body,
            } => {
                let mut r = Resp::new(*status);
                r.bare = true;
                for (name, value) in headers {
                    r.set(name, value);
                }
                r.body = body.as_bytes().to_vec();
                (r, Delivery::Whole)
            }
            Fault::RateLimited { retry_after } => {
                let mut r = Resp::new(429);
                if let Some(secs) = retry_after {
                    r.set("retry-after", &secs.to_string());
                }
                decorate(&mut r, true);
                (r, Delivery::Whole)
            }
            Fault::Malformed => {
                let mut r = Resp::json_text(200, "{\"id\": this is not JSON <html>");
                decorate(&mut r, true);
                r.set("cache-control", "private, no-store");
                (r, Delivery::Whole)
            }
            Fault::Truncated => {
                let full = TRUNCATED_BODY.as_bytes();
                let mut r = Resp::json_text(200, "");
                decorate(&mut r, true);
                r.set("cache-control", "private, no-store");
                r.body = full.get(..full.len() / 2).unwrap_or(full).to_vec();
                r.close = true;
                let content_length = full.len() as u64;
                (r, Delivery::Truncated { content_length })
            }
            Fault::Huge { bytes } => {
                let mut r = Resp::json_text(200, "");
                decorate(&mut r, true);
                r.set("cache-control", "private, no-store");
                (r, Delivery::Huge { bytes: *bytes })
            }
        };
        Some(answer)
    }
}

/// The exchange of a request handed over whole; `None` when its framing headers are
/// malformed or contradictory.
fn exchange(req: &Request) -> Option<Exchange> {
    let head = Head {
        method: req.method.clone(),
        target: req.target.clone(),
        headers: req
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
    };
    let framing = framing(&head)?;
    Some(Exchange::new(head, req.peer.clone(), framing))
}

/// The body a request handed over whole carries, as its framing delimits it.
fn body_of(req: &Request, framing: Framing) -> &[u8] {
    match framing {
        Framing::Length(_) => &req.body,
        Framing::Empty | Framing::Chunked => &[],
    }
}

// ---- The layers' outward steps ---------------------------------------------------------

/// APIVersionMiddleware: the resolved version on every answer it wraps.
fn post_version(ex: &Exchange, mut r: Resp) -> Resp {
    if !r.bare {
        r.set("polar-version", &ex.version);
    }
    r
}

/// CORS on an actual (non-preflight) cross-origin response.
fn post_cors(ex: &Exchange, mut r: Resp) -> Resp {
    if let Some(origin) = ex.head.get("origin") {
        if !r.bare {
            add_simple_cors(&mut r, &ex.head, origin);
        }
    }
    r
}

/// PathRewrite's deprecation notice for `/api/v1`.
fn post_max_body(ex: &Exchange, mut r: Resp) -> Resp {
    if ex.deprecated && !r.bare {
        r.set("x-polar-deprecation-notice", DEPRECATION_NOTICE);
    }
    r
}

/// The admin routes' headers: CORS `*` when asked, never cached.
fn post_admin(ex: &Exchange, mut r: Resp) -> Resp {
    if ex.head.has("origin") {
        r.set("access-control-allow-origin", "*");
    }
    r.set("cache-control", "no-store");
    r
}

/// The resolved API version, or `None` when the header is invalid or not served (unknown,
/// or removed: docs/polar-api.md §13).
fn api_version(head: &Head, options: &Options) -> Option<String> {
    let raw = match head.get("polar-version") {
        None | Some("") => return Some(options.api_version.clone()),
        Some(v) => v,
    };
    let bytes = raw.as_bytes();
    let well_formed = bytes.len() == 7
        && bytes[4] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit());
    if !well_formed {
        return None;
    }
    options
        .api_versions
        .iter()
        .any(|v| v == raw)
        .then(|| raw.to_string())
}

/// `get_bearer_token`: a non-empty ASCII value after `Bearer ` (scheme case-insensitive).
fn bearer_token(head: &Head) -> Option<String> {
    let value = head.get("authorization")?;
    let (scheme, param) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.is_empty() || param.is_empty() || !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    if !param.is_ascii() {
        return None;
    }
    Some(param.to_string())
}

/// Starlette `CORSMiddleware.preflight_response` for Polar's catch-all config.
fn preflight(head: &Head) -> Resp {
    let mut failures = Vec::new();
    let method = head.get("access-control-request-method").unwrap_or("");
    if !ALL_METHODS.contains(&method) {
        failures.push("method");
    }
    if let Some(requested) = head.get("access-control-request-headers") {
        let allowed: Vec<String> = ALLOW_HEADERS
            .split(", ")
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if requested
            .to_ascii_lowercase()
            .split(',')
            .any(|h| !allowed.iter().any(|a| a == h.trim()))
        {
            failures.push("headers");
        }
    }
    let mut r = if failures.is_empty() {
        Resp::text(200, "OK")
    } else {
        Resp::text(400, &format!("Disallowed CORS {}", failures.join(", ")))
    };
    r.set("access-control-allow-origin", "*");
    r.set("access-control-allow-methods", ALLOW_METHODS);
    r.set("access-control-max-age", "600");
    r.set("access-control-allow-headers", ALLOW_HEADERS);
    // Starlette adds `Vary: Origin` to preflights only when it echoes the origin
    // (explicit origins or credentials); Polar's external config allows `*` without them.
    r
}

/// Starlette's headers on an actual (non-preflight) cross-origin response.
fn add_simple_cors(r: &mut Resp, head: &Head, origin: &str) {
    r.set("access-control-allow-origin", "*");
    r.set("access-control-expose-headers", "Polar-Version");
    if head.has("cookie") {
        r.set("access-control-allow-origin", origin);
        let vary = match r.get("vary") {
            Some(v) => format!("{v}, Origin"),
            None => "Origin".to_string(),
        };
        r.set("vary", &vary);
    }
}

/// authlib's OAuth2 error response (`invalid_token`, `insufficient_scope`), serialized
/// with `json.dumps` defaults (spaces after separators).
fn oauth2_error(status: u16, error: &str, description: &str, scope: Option<&str>) -> Resp {
    let mut body = String::from("{");
    write_str(&mut body, "error");
    body.push_str(": ");
    write_str(&mut body, error);
    body.push_str(", ");
    write_str(&mut body, "error_description");
    body.push_str(": ");
    write_str(&mut body, description);
    body.push('}');
    let mut r = Resp::json_text(status, &body);
    r.set("cache-control", "no-store");
    r.set("pragma", "no-cache");
    let scope = scope
        .map(|s| format!("scope=\"{s}\", "))
        .unwrap_or_default();
    r.set(
        "www-authenticate",
        &format!(
            "Bearer realm=\"polar\", {scope}error=\"{error}\", error_description=\"{description}\""
        ),
    );
    r
}

/// A request body as FastAPI reads it: an empty body is `None`, JSON is parsed only for a
/// JSON content type (else the text), and JSON that does not parse is its 422 (or 400); a body
/// that could not be read (`None`) is answered `Resp::unread`.
pub(super) fn read_body(ex: &Exchange, raw: Option<&[u8]>) -> Result<J, Resp> {
    let Some(raw) = raw else {
        return Err(Resp::unread());
    };
    if raw.is_empty() {
        return Ok(J::Null);
    }
    if !is_json_content_type(ex.head.get("content-type")) {
        return Ok(J::Str(String::from_utf8_lossy(raw).into_owned()));
    }
    match loads_bytes(raw) {
        Ok(v) => Ok(v),
        Err(LoadError::Decode { msg, pos }) => {
            Err(Resp::json(422, &error_body(&[json_invalid(msg, pos)])))
        }
        Err(LoadError::Other) => Err(Resp::detail(400, "There was an error parsing the body")),
    }
}

fn insufficient_scope(scope: &str) -> Resp {
    oauth2_error(
        403,
        "insufficient_scope",
        INSUFFICIENT_SCOPE_DESCRIPTION,
        Some(scope),
    )
}

fn unauthorized() -> Resp {
    let mut r = Resp::error(401, "Unauthorized", "Unauthorized");
    r.set("www-authenticate", "Bearer realm=\"polar\"");
    r
}

/// Whether `path` is a collection route of the meters (Starlette redirects its slashless form).
fn billing_collection(path: &str) -> bool {
    #[cfg(feature = "billing")]
    {
        path == meters::ORG_METERS || path == meters::PORTAL_METERS
    }
    #[cfg(not(feature = "billing"))]
    {
        let _ = path;
        false
    }
}

/// 405 with the `allow` header naming the one method the route takes (Starlette's answer).
fn method_not_allowed(allowed: &str) -> Resp {
    let mut r = Resp::detail(405, "Method Not Allowed");
    r.set("allow", allowed);
    r
}

/// The organization and the customer whose grant's webhook a key's change sent.
type GrantOf = (uuid::Uuid, uuid::Uuid);
