//! The relay's plain types, shared by all its parts: its configuration ([`RelayConfig`]),
//! a request and an answer as data ([`RelayRequest`], [`RelayResponse`]), a call's end
//! ([`Finished`]), its routes and headers, and the small helpers that build Polar-shaped
//! answers. A leaf: it names no part that runs and no route (a check under way, which holds
//! its route, is [`crate::pending`]; the crate root re-exports what is public here,
//! unchanged).

use std::sync::Arc;

use polar_license::lease::{RelayKeys, SigningKey, UnsignedLease, LEASE_HEADER};
use polar_license::metadata::{MetaValue, Metadata};
use polar_license::proto::{
    error_body, ActivateRequest, Api, DeactivateRequest, HttpRequest, HttpResponse, Operation,
    Server, ValidateRequest,
};
use polar_license::{AccessToken, Error, Key};
use polar_license_rules::CheckedBody;

use crate::breaker::BreakerOptions;
use crate::ids::{canonical_uuid, OrgId};
use crate::limit::Rate;
use crate::logged;
use crate::store::{Backend, StoreOptions};

/// The default of [`crate::RelayConfig::webhook_silence`]: a day.
pub const DEFAULT_WEBHOOK_SILENCE: u64 = 86_400;

/// The health route on the relay's own listener.
pub const HEALTH_ROUTE: &str = "/healthz";

/// The metrics route on the metrics listener.
pub const METRICS_ROUTE: &str = "/metrics";

/// The seat routes' prefix: `acquire`, `heartbeat`, `release` follow it.
pub const SEATS_PREFIX: &str = "/v1/seats/";

/// The route an app sends its daily ping to (`POST`, JSON: `organization_id`, `install`,
/// `app_version`, `os`, `arch` and `face`).
pub const ANALYTICS_ROUTE: &str = "/v1/analytics/install";

/// A checkout made through the relay (issue #80, the checkout route's part): `POST` with the
/// product, the app's metadata and optionally the buyer's e-mail and a success URL in a JSON
/// body; answered with the checkout's `url` and `client_secret`. Off (404) unless the seller
/// allows products (`relay serve --checkout-product`).
pub const CHECKOUT_ROUTE: &str = "/v1/checkouts/create";

/// A key's devices through the relay (issue #64, `crate::devices`): `POST` with the key, the
/// organization and optionally this machine's activation id in a JSON body.
pub const DEVICES_ROUTE: &str = "/v1/devices/list";

/// Usage reports through the relay (issue #68 item 3, `crate::usage`): `POST` a report with
/// the key, the meter, the units and the report's idempotency id in a JSON body.
pub const USAGE_ROUTE: &str = "/v1/usage/record";

/// The JSON object of a relay route's body (a seat request, a device listing, a usage
/// report), its members only `key`, `organization_id` and those of `fields`, with its key and
/// its organization parsed once, here, into its canonical form ([`OrgId`]); else `refuse`'s
/// answer (the route's `422`) saying what is wrong: not JSON, not an object, the first unknown
/// member (escaped), or a missing key or organization. A key or an organization Polar's rules
/// refuse is refused here with Polar's own answer (its 422, byte for byte: the validate that
/// would follow is checked now), before any state is read or written.
pub(crate) fn ask_object(
    body: &[u8],
    fields: &[&str],
    refuse: impl Fn(&str) -> RelayResponse,
) -> Result<(serde_json::Map<String, serde_json::Value>, Key, OrgId), RelayResponse> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| refuse("the body is not JSON"))?;
    let serde_json::Value::Object(obj) = v else {
        return Err(refuse("the body is not an object"));
    };
    let known = |k: &str| ["key", "organization_id"].contains(&k) || fields.contains(&k);
    if let Some(k) = obj.keys().find(|k| !known(k)) {
        return Err(refuse(&format!(
            "unknown member {}",
            crate::logged::escaped(k)
        )));
    }
    let text = |name: &str| obj.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let key = text("key").ok_or_else(|| refuse("key is missing"))?;
    let organization_id =
        text("organization_id").ok_or_else(|| refuse("organization_id is missing"))?;
    // Polar's checks of the validate this body stands for: the same 422 a validate gets.
    let validate = object(&[
        ("key", string(&key)),
        ("organization_id", string(&organization_id)),
    ]);
    match polar_license_rules::check_body("validate", None, validate.as_bytes()) {
        Some(Ok(checked)) => Ok((obj, Key::new(key), OrgId::checked(&checked))),
        Some(Err(refusal)) => {
            let mut r = RelayResponse::json(refusal.status, refusal.body);
            r.set("content-type", refusal.content_type);
            Err(private(r))
        }
        None => Err(refuse("organization_id is not read")),
    }
}

/// A route's `activation_id` (optional, `null` as absent), canonical ([`canonical_uuid`]); else `refuse`'s answer.
pub(crate) fn activation_id_of(
    obj: &serde_json::Map<String, serde_json::Value>,
    refuse: impl Fn(&str) -> RelayResponse,
) -> Result<Option<String>, RelayResponse> {
    match obj.get("activation_id") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(id)) => canonical_uuid(id)
            .map(Some)
            .ok_or_else(|| refuse("activation_id must be an activation's id (a UUID)")),
        Some(_) => Err(refuse("activation_id must be an activation's id (a UUID)")),
    }
}

/// Where a [`Route`] is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Listener {
    /// The relay's own listener (natively `relay serve`'s address; on Workers the Worker's).
    Public,
    /// The metrics listener (natively `ServeOptions::metrics_addr`; on Workers the handler's
    /// `metricsPath` on the Worker's own).
    Metrics,
}

/// One route a relay answers from outside: its path, the methods it serves (a CORS preflight,
/// `OPTIONS`, is answered on the three license routes too), whether it reads a body, and its
/// listener. Every other path is 404, every other method 405 or 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path (no query).
    pub path: &'static str,
    /// The methods that reach the route's rules.
    pub methods: &'static [&'static str],
    /// Whether the route reads a JSON body (capped: [`Limits::max_body_bytes`], the webhook's
    /// [`WEBHOOK_MAX_BODY_BYTES`]).
    pub reads_body: bool,
    /// Where it is answered.
    pub listener: Listener,
}

/// Every route a relay answers from outside, on every host (the native server and the npm
/// package's handler answer the same list through the same core): the table the hostile-input
/// suites (`crates/relay/tests/hostile.rs`) cross with every hostile shape, so that a route
/// added here is attacked without a test being edited. A route answered anywhere must be here
/// (that suite's `every_route_in_the_code_is_in_the_list` reads the routers for paths).
pub const ROUTES: &[Route] = &[
    Route {
        path: "/v1/customer-portal/license-keys/validate",
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    Route {
        path: "/v1/customer-portal/license-keys/activate",
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    Route {
        path: "/v1/customer-portal/license-keys/deactivate",
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    // A key's seats (issue #67; `crate::types::SEATS_PREFIX`): with a store.
    Route {
        path: "/v1/seats/acquire",
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    Route {
        path: "/v1/seats/heartbeat",
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    Route {
        path: "/v1/seats/release",
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    // A key's devices (issue #64; `crate::devices`): the key proves it is the caller's, the
    // relay reads the key's activations with its token.
    Route {
        path: DEVICES_ROUTE,
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    // Usage reports (issue #68 item 3; `crate::usage`): with a store that takes them.
    Route {
        path: USAGE_ROUTE,
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    // Install analytics (issue #80; `crate::analytics`): always 202, kept only when the seller
    // turned it on.
    Route {
        path: ANALYTICS_ROUTE,
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    // Checkouts made with the seller's token (issue #80; `routes/checkout.rs`): with products
    // the seller allows.
    Route {
        path: CHECKOUT_ROUTE,
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    Route {
        path: WEBHOOK_ROUTE,
        methods: &["POST"],
        reads_body: true,
        listener: Listener::Public,
    },
    Route {
        path: HEALTH_ROUTE,
        methods: &["GET", "HEAD"],
        reads_body: false,
        listener: Listener::Public,
    },
    Route {
        path: METRICS_ROUTE,
        methods: &["GET", "HEAD"],
        reads_body: false,
        listener: Listener::Metrics,
    },
];

/// A lease to be signed elsewhere, with the machine it binds (see [`Finished`]).
pub(crate) type Unsigned = Option<(UnsignedLease, Option<String>)>;

/// The header that says where an answer of the three routes comes from: `polar` (Polar's
/// answer now, or the relay's by Polar's rules), `store` (Polar's earlier answer, fresh),
/// `stale` (Polar's earlier answer, kept while Polar cannot be asked) or `relay`
/// ([`RELAY_SOURCE`]: the relay's own 429, Polar not asked).
pub const SOURCE_HEADER: &str = "polar-license-source";

/// [`SOURCE_HEADER`]'s value on the relay's own 429s (its per-IP and per-key rates, the
/// token's budget, the first-seen share) and 502s (the breaker open, Polar out of reach or
/// refusing the relay's token): not Polar's answer, nor a verdict. An addition to `polar`,
/// `store` and `stale`; every client reads a value it does not know as no source (and a 429
/// or a 5xx as "not verified" in any case, its source never read).
pub const RELAY_SOURCE: &str = "relay";

/// The route Polar's webhooks are delivered to (with a store and a webhook secret).
pub const WEBHOOK_ROUTE: &str = "/v1/webhooks/polar";

/// The largest webhook body read on [`WEBHOOK_ROUTE`] (1 MiB), a cap of its own: Polar's
/// order and subscription events carry the customer, the product and its prices, and can be
/// far larger than any client's request ([`Limits::max_body_bytes`], 64 KiB by default, is
/// the clients' cap). A larger delivery is answered 413.
pub const WEBHOOK_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How many times a check waits for another check's call to Polar about the same entry
/// ([`Need::Flight`](crate::flow::Need::Flight)) before it asks Polar itself, on every host.
pub const FLIGHT_WAITS: u32 = 2;

/// How long a check with a stored answer within its stale window waits for Polar (its own call
/// or another check's of the same entry) before it is given that answer, `stale`, while the
/// call goes on and its answer updates the store (stale-while-revalidate): on every host
/// (the `patience_ms` of [`Need::Send`](crate::flow::Need::Send) and
/// [`Need::Flight`](crate::flow::Need::Flight); natively `ServeOptions::stale_after`'s default).
pub const STALE_AFTER_MS: u64 = 800;

/// The routes a relay answers (Polar's customer-portal ones).
pub const ROUTE_PREFIX: &str = "/v1/customer-portal/license-keys/";

/// The `User-Agent` of the relay's calls to Polar.
pub const USER_AGENT: &str = concat!("polar-license-relay/", env!("CARGO_PKG_VERSION"));

/// Polar's response headers passed back to the client unchanged.
pub(crate) const PASSED_HEADERS: [&str; 6] = [
    "content-type",
    "retry-after",
    "date",
    "polar-version",
    "cache-control",
    "x-polar-sandbox",
];

/// The relay's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per client IP, every request on the three routes (default 5 per second, bursts of 10).
    pub per_ip: Rate,
    /// Per license key, every request that passed the input checks (default 3 per second,
    /// bursts of 6).
    pub per_key: Rate,
    /// The largest request body read (default 64 KiB; Polar's own limit is 10 MiB, but no
    /// valid license request comes near 64 KiB: 50 conditions and 50 meta entries of 500
    /// characters are about 55 KB). Polar's webhooks have a cap of their own
    /// ([`WEBHOOK_MAX_BODY_BYTES`], or this if larger).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_ip: Rate::new(5, 10),
            per_key: Rate::new(3, 6),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Where a relay runs: the one place where the hosts differ, each difference with its reason.
/// Every other rule (routes, caps, limits, CORS, the operator's routes, the store's policy) is
/// the same on every host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Host {
    /// The native relay: `relay serve` (the hyper server), or a blocking host of its own. Its
    /// calls to Polar go through the relay's own transport, which counts each one in the
    /// metrics and tells a connection that was never made apart (that call's place in the
    /// token's budget goes back); each call holds a thread, so calls wait for one of a few
    /// slots ([`crate::flow::Need::Slot`]), and a call whose breaker opened while it waited is
    /// not made. The client's address is the socket peer.
    #[default]
    Native,
    /// The npm package's relay on a host with a socket peer the host hands over (node's
    /// `createNodeListener`, Deno, Bun). Its calls are the host's `fetch`: counted by the core
    /// when their answers are given (the fetch counts nothing), and a failed fetch keeps its
    /// place in the budget (a fetch fails the same way when Polar closed the connection after
    /// reading the call); a fetch holds no thread, so no slot is asked for.
    Fetch,
    /// The npm package's relay on Cloudflare Workers: as [`Host::Fetch`], and a Worker has no
    /// socket peer: the client's address is Cloudflare's `cf-connecting-ip`, which Cloudflare
    /// writes on every request (a client cannot set it on a Worker), read as the peer.
    Workers,
}

/// How a relay runs.
#[derive(Debug)]
pub struct RelayConfig {
    /// The Polar it asks (production, sandbox, or a base URL such as an emulator's).
    pub server: Server,
    /// When set, a request for any other organization is Polar's 404 "Not found", without a
    /// call (the token would only see its own organization's keys anyway).
    pub organization_id: Option<String>,
    /// The seller's organization access token (scope `license_keys:write`).
    pub access_token: AccessToken,
    /// Who signs the leases.
    pub signer: Signer,
    /// How long a lease lasts (default 7 days; never past the license's `expires_at`).
    pub lease_days: u32,
    /// Rate limits and the body cap.
    pub limits: Limits,
    /// Behind a reverse proxy (TLS in front of the relay), the header that proxy writes the
    /// client's address in (`x-real-ip`, `x-forwarded-for`, `cf-connecting-ip`, …): its last
    /// comma-separated entry, the one the proxy itself added, is the per-IP limit's identity
    /// instead of the socket peer (the proxy). Leave it `None` when clients connect directly:
    /// a client could then send the header to pick its own bucket.
    pub client_ip_header: Option<String>,
    /// The verdict store ([`crate::store`]): validates answered from Polar's earlier answers, the
    /// token's budget kept, Polar's webhooks acted on. `None`: every check is forwarded.
    pub store: Option<StoreConfig>,
    /// The web origins (`https://app.example.com`: scheme, host and port, no path) whose
    /// pages may read the relay's answers: a request whose `Origin` is one of them gets it
    /// back in `access-control-allow-origin` (with `vary: origin`); any other origin gets no
    /// CORS grant, so a browser hides the answer from that page. `None` (the default): any
    /// origin (`*`), as Polar's public routes. Servers and apps outside a browser send no
    /// `Origin` and are not affected.
    pub cors_origins: Option<Vec<String>>,
    /// With webhooks on: after this many seconds without one, the background machine
    /// ([`crate::flow::background::Background`], which every host drives, idle or not) logs a
    /// warning, again after each such period while the silence lasts, and the health route
    /// (`GET /healthz`) says so (default [`DEFAULT_WEBHOOK_SILENCE`], a day; 0: never).
    pub webhook_silence: u64,
    /// The breaker in front of Polar ([`BreakerOptions`]: 5 failed calls in a row stop calls,
    /// the first probe after 3.75 s, at most 30 s apart; stored answers given meanwhile).
    pub breaker: BreakerOptions,
    /// Where the relay runs ([`Host`]: the one place where hosts differ, each with its
    /// reason; default [`Host::Native`]).
    pub host: Host,
    /// Every this many seconds, and at the start, the background machine checks the seller's
    /// Polar set-up ([`crate::doctor`]: the token's scopes for the features on, the
    /// organization id, the license-key benefits, the webhook endpoints) and `GET /healthz`
    /// reports what it found (`setup`). Each check spends a few calls of the budget's shared
    /// part, none per request. 0 (the default): off.
    pub check_setup_every: u64,
    /// Deactivate, through Polar, activations this relay saw and has not seen for this many
    /// days (and an hour more: [`crate::last_seen`], which says what counts as seen); a few a
    /// minute from the budget's shared part. 0 (the default): never. At most
    /// [`crate::last_seen::MAX_RETIRE_UNSEEN_DAYS`].
    pub retire_unseen_days: u32,
}

/// A relay's verdict store: where it keeps entries, how it answers from them, and the secret
/// of Polar's webhooks.
pub struct StoreConfig {
    /// Where the entries live ([`crate::store::MemoryBackend`], [`crate::store::RedbBackend`]).
    pub backend: Arc<dyn Backend>,
    /// How long answers last, and the budget.
    pub options: StoreOptions,
    /// The webhook endpoint's secret (`whsec_…`): turns on `POST /v1/webhooks/polar`.
    pub webhook_secret: Option<String>,
}

debug_some!(StoreConfig, c => {
    "options": c.options,
    "webhook_secret": c.webhook_secret.as_ref().map(|_| "****"),
});

impl RelayConfig {
    /// A configuration with the default lease (7 days) and limits, for any organization,
    /// signing with `signing_key` here.
    pub fn new(server: Server, access_token: AccessToken, signing_key: SigningKey) -> Self {
        RelayConfig::with_signer(server, access_token, Signer::Key(signing_key))
    }

    /// [`RelayConfig::new`] with any [`Signer`].
    pub fn with_signer(server: Server, access_token: AccessToken, signer: Signer) -> Self {
        RelayConfig {
            server,
            organization_id: None,
            access_token,
            signer,
            lease_days: DEFAULT_LEASE_DAYS,
            limits: Limits::default(),
            client_ip_header: None,
            store: None,
            cors_origins: None,
            webhook_silence: DEFAULT_WEBHOOK_SILENCE,
            breaker: BreakerOptions::default(),
            host: Host::Native,
            check_setup_every: 0,
            retire_unseen_days: 0,
        }
    }
}

/// Who signs a relay's leases.
#[derive(Debug)]
pub enum Signer {
    /// This key, here: the answer comes with the lease signed.
    Key(SigningKey),
    /// A key held elsewhere (WebCrypto's non-extractable key in the npm package's relay): the
    /// request machine asks its host to sign the lease's bytes
    /// ([`Need::Sign`](crate::flow::Need::Sign)) and adds the lease once its signature
    /// verifies with `public_key`.
    External {
        /// The key's id, in the lease's footer.
        kid: String,
        /// Its public key, PASERK `k4.public.…`.
        public_key: String,
    },
}

/// What a signer verifies with (and, for a key held here, signs with).
pub(crate) enum SignWith {
    Key(SigningKey),
    External { kid: String, keys: RelayKeys },
}

impl SignWith {
    pub(crate) fn of(signer: Signer) -> Result<SignWith, Error> {
        Ok(match signer {
            Signer::Key(key) => SignWith::Key(key),
            Signer::External { kid, public_key } => {
                let mut keys = RelayKeys::new();
                keys.add(&kid, &public_key)?;
                SignWith::External { kid, keys }
            }
        })
    }

    pub(crate) fn kid(&self) -> &str {
        match self {
            SignWith::Key(key) => key.kid(),
            SignWith::External { kid, .. } => kid,
        }
    }
}

/// A call's or a stored answer's end: the answer, and with an external signer the lease to
/// sign.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) response: RelayResponse,
    pub(crate) unsigned: Option<(UnsignedLease, Option<String>)>,
}

impl Finished {
    /// The bytes to sign with Ed25519, when a lease waits for an external signature.
    pub(crate) fn pre_auth(&self) -> Option<&[u8]> {
        self.unsigned.as_ref().map(|(u, _)| u.pre_auth())
    }

    /// The answer, without any lease still unsigned.
    pub(crate) fn into_response(self) -> RelayResponse {
        self.response
    }
}

/// A well-formed organization id, to check the server and token with before any request.
pub(crate) const DUMMY_ORG: &str = "00000000-0000-4000-8000-000000000000";

/// The default lease length, in days.
pub const DEFAULT_LEASE_DAYS: u32 = 7;
/// The longest lease, in days.
pub const MAX_LEASE_DAYS: u32 = 366;

/// A request as the server received it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RelayRequest {
    /// `POST`, `OPTIONS`, …
    pub method: String,
    /// The request target's path (a query is ignored).
    pub path: String,
    /// The headers (any case).
    pub headers: Vec<(String, String)>,
    /// The body: the server reads at most [`Limits::max_body_bytes`] + 1 bytes of it.
    pub body: Vec<u8>,
    /// The client's IP (the socket peer), the per-IP limit's identity.
    pub client_ip: String,
}

// The body's length only: it holds a license key.
debug_some!(RelayRequest, r => {
    "method": r.method,
    "path": r.path,
    "body_len": r.body.len(),
    "client_ip": r.client_ip,
});

impl RelayRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The validate that proves `key` of `organization_id` for a route that is not one of
    /// Polar's (a seat, a device listing): this request's head (its client, its version), the
    /// key and the organization as a validate's body, nothing else.
    pub(crate) fn validate_of(&self, key: &Key, organization_id: &OrgId) -> RelayRequest {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
            .cloned()
            .collect();
        headers.push(("content-type".into(), "application/json".into()));
        RelayRequest {
            method: "POST".into(),
            path: format!("{ROUTE_PREFIX}validate"),
            headers,
            body: object(&[
                ("key", string(key.expose())),
                ("organization_id", string(organization_id.as_str())),
            ])
            .into_bytes(),
            client_ip: self.client_ip.clone(),
        }
    }
}

/// The relay's answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayResponse {
    /// The HTTP status.
    pub status: u16,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RelayResponse {
    pub(crate) fn new(status: u16) -> RelayResponse {
        RelayResponse {
            status,
            ..RelayResponse::default()
        }
    }

    pub(crate) fn json(status: u16, body: impl Into<Vec<u8>>) -> RelayResponse {
        let mut r = RelayResponse::new(status);
        r.set("content-type", "application/json");
        r.body = body.into();
        r
    }

    /// Polar's `{"error":…,"detail":…}`, in Polar's member order.
    pub(crate) fn error(status: u16, error: &str, detail: &str) -> RelayResponse {
        RelayResponse::json(
            status,
            object(&[("error", string(error)), ("detail", string(detail))]),
        )
    }

    /// `{"detail":…}` (Starlette's 404 and 405, and the relay's own 502s).
    pub(crate) fn detail(status: u16, detail: &str) -> RelayResponse {
        RelayResponse::json(status, object(&[("detail", string(detail))]))
    }

    /// The relay's own 502 (the breaker open, Polar out of reach or refusing the relay's
    /// token): `{"detail":…}`, said to be the relay's (`polar-license-source: relay`): Polar
    /// gave no answer.
    pub(crate) fn unreached(detail: &str) -> RelayResponse {
        sourced(RelayResponse::detail(502, detail), RELAY_SOURCE)
    }

    /// Polar's 429: an empty body and `retry-after`.
    /// The relay's own 429 (its per-IP or per-key rate, the budget, the first-seen share),
    /// said to be the relay's (`polar-license-source: relay`), not Polar's.
    pub(crate) fn rate_limited(retry_after: u64) -> RelayResponse {
        let mut r = RelayResponse::new(429);
        r.set("retry-after", &retry_after.to_string());
        r.set(SOURCE_HEADER, RELAY_SOURCE);
        r
    }

    pub(crate) fn set(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The lease, when this answer carries one.
    pub fn lease(&self) -> Option<&str> {
        self.header(LEASE_HEADER)
    }

    /// The UUID a validate's 200 names at `member` (`id`: the key record's, `customer_id`);
    /// `None`: not Polar's answer.
    pub(crate) fn uuid_at(&self, member: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let id = v.get(member)?.as_str()?;
        uuid::Uuid::try_parse(id).ok().map(|u| u.to_string())
    }
}

/// Where a lease's `jti` comes from: 16 random bytes.
pub type Entropy = Box<dyn Fn() -> Option<[u8; 16]> + Send + Sync>;

/// The operating system's randomness (native).
#[cfg(not(target_arch = "wasm32"))]
pub fn os_entropy() -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes)
}

/// The core's request, from a body Polar's checks accepted.
pub(crate) enum Call {
    Validate(ValidateRequest),
    Activate(ActivateRequest),
    Deactivate(DeactivateRequest),
}

impl Call {
    pub(crate) fn of(op: Operation, b: &CheckedBody) -> Result<Call, Error> {
        Ok(match op {
            Operation::Validate => {
                let mut req = ValidateRequest::new(b.key.as_str());
                req.activation_id = b.activation_id.clone();
                req.benefit_id = b.benefit_id.clone();
                req.customer_id = b.customer_id.clone();
                req.increment_usage = b
                    .increment_usage
                    .map(|n| {
                        i64::try_from(n)
                            .map_err(|_| Error::invalid("increment_usage", "must be <= 2147483647"))
                    })
                    .transpose()?;
                req.conditions = metadata("conditions", &b.conditions)?;
                Call::Validate(req)
            }
            Operation::Activate => {
                let mut req =
                    ActivateRequest::new(b.key.as_str(), b.label.clone().unwrap_or_default());
                req.conditions = metadata("conditions", &b.conditions)?;
                req.meta = metadata("meta", &b.meta)?;
                Call::Activate(req)
            }
            Operation::Deactivate => Call::Deactivate(DeactivateRequest::new(
                b.key.as_str(),
                b.activation_id.clone().unwrap_or_default(),
            )),
        })
    }

    /// The core's local checks, and the request to Polar's token twin.
    pub(crate) fn request(&self, api: &Api) -> Result<HttpRequest, Error> {
        match self {
            Call::Validate(req) => api.validate_request(req),
            Call::Activate(req) => api.activate_request(req),
            Call::Deactivate(req) => api.deactivate_request(req),
        }
    }
}

pub(crate) fn metadata(
    field: &str,
    pairs: &[(String, serde_json::Value)],
) -> Result<Metadata, Error> {
    pairs
        .iter()
        .map(|(k, v)| {
            serde_json::from_value::<MetaValue>(v.clone())
                .map(|v| (k.clone(), v))
                .map_err(|_| Error::invalid(field, "values are strings, numbers or booleans"))
        })
        .collect()
}

/// The machine a lease is bound to: the request's `conditions.machine_fingerprint`, when it
/// is a string ([`polar_license::fingerprint::MACHINE_CONDITION`]).
pub(crate) fn machine_of(b: &CheckedBody) -> Option<String> {
    b.conditions
        .iter()
        .rev()
        .find(|(k, _)| k == polar_license::fingerprint::MACHINE_CONDITION)
        .and_then(|(_, v)| v.as_str().map(str::to_string))
}

/// The client's `Polar-Version`, passed on when it has the `YYYY-MM` form (Polar answers
/// anything else with a bare 404, which the relay then passes back).
pub(crate) fn with_version(mut request: HttpRequest, version: Option<&str>) -> HttpRequest {
    if let Some(v) = passed_version(version) {
        request.headers.push(("polar-version", v.to_string()));
    }
    request
}

/// The client's `Polar-Version` as the relay passes it on (see [`with_version`]).
pub(crate) fn passed_version(version: Option<&str>) -> Option<&str> {
    version
        .map(str::trim)
        .filter(|v| v.len() <= 16 && v.bytes().all(|b| b.is_ascii_graphic()))
}

/// Polar refusing the seller's token: a 401, or a 403 that is not a license denial
/// (`NotPermitted`: activate's limits and statuses).
pub(crate) fn refuses_token(op: Operation, upstream: &HttpResponse) -> bool {
    match upstream.status {
        401 => true,
        403 => {
            let denial = op == Operation::Activate
                && error_body(upstream).and_then(|b| b.error).as_deref() == Some("NotPermitted");
            !denial
        }
        _ => false,
    }
}

/// The core refusing what Polar's checks let through (an empty key, one with spaces at its
/// ends, an `increment_usage` past 32 bits): a 422 in Polar's shape, `value_error` on the
/// field, with the core's message.
pub(crate) fn invalid(op: Operation, key: &Key, e: &Error) -> RelayResponse {
    let (field, message) = match e {
        Error::InvalidInput { field, message } => (field.clone(), message.clone()),
        other => ("body".to_string(), other.text()),
    };
    log::info!(
        "relay: {} {} 422 (local check: {})",
        op.as_str(),
        crate::logged::key(key),
        logged::escaped(&field)
    );
    let loc: Vec<String> = std::iter::once("body")
        .chain(field.split('.'))
        .map(string)
        .collect();
    let entry = object(&[
        ("type", string("value_error")),
        ("loc", ["[", &loc.join(","), "]"].concat()),
        ("msg", string(&["Value error, ", &message].concat())),
        ("input", "null".to_string()),
        ("ctx", r#"{"error":{}}"#.to_string()),
    ]);
    let body = object(&[
        ("error", string("RequestValidationError")),
        ("detail", ["[", &entry, "]"].concat()),
    ]);
    RelayResponse::json(422, body)
}

/// A JSON string.
pub(crate) fn string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A JSON object of already-written members, in this order (Polar's; serde_json's map
/// would sort them).
pub(crate) fn object(members: &[(&str, String)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(name, value)| [string(name).as_str(), ":", value].concat())
        .collect();
    ["{", &inner.join(","), "}"].concat()
}

/// `cache-control: private, no-store`, as Polar adds to its answers.
pub(crate) fn private(mut r: RelayResponse) -> RelayResponse {
    r.set("cache-control", "private, no-store");
    r
}

pub(crate) fn preflight() -> RelayResponse {
    let mut r = RelayResponse::new(204);
    r.set("access-control-allow-methods", "POST, OPTIONS");
    r.set(
        "access-control-allow-headers",
        "content-type, polar-version, accept, polar-license-nonce",
    );
    r.set("access-control-max-age", "600");
    r
}

pub(crate) fn add_cors(r: &mut RelayResponse) {
    r.set("access-control-allow-origin", "*");
    r.set(
        "access-control-expose-headers",
        "polar-license-lease, polar-license-denial, retry-after, date, age, polar-version, \
         polar-license-source, polar-license-stopped, polar-license-usage",
    );
    if r.header(SOURCE_HEADER).is_none() {
        r.set(SOURCE_HEADER, "polar");
    }
}

/// A web origin as a browser sends it in `Origin`: `http` or `https`, a host, an optional
/// port, nothing after (no path, no trailing slash).
pub(crate) fn check_origin(origin: &str) -> Result<(), Error> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let ok = rest.is_some_and(|host| {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "cors_origins",
            "each must be an origin such as https://app.example.com (scheme, host and port; no path)",
        ))
    }
}

/// The most bytes of an answer to the relay's own reads of Polar that a host reads (16 MiB):
/// a roster page of 100 keys, a key read by id.
pub const MAX_READ_BYTES: usize = 16 << 20;

/// How long a call to Polar may take before it fails as timed out (10 s), unless the seller
/// sets another (`relay serve --timeout`, `createRelay`'s `timeoutMs`): the relay's own reads
/// of Polar (the roster's, the reconcile's) take the same.
pub const CALL_TIMEOUT_MS: u64 = 10_000;

/// The relay's answer when its host failed around the core (a configuration that does not
/// start, a request the host could not read, a fault of the host): `status` with
/// `{"detail": …}`, said to be the relay's (`polar-license-source: relay`), with the CORS
/// grant every answer of the relay carries, narrowed to `cors_origins` as the core's own
/// answers are (`Relay::cors`, which the request machine applies to every answer). Every host
/// answers its own failures with this.
pub fn failure(
    status: u16,
    detail: &str,
    cors_origins: Option<&[String]>,
    req: &RelayRequest,
) -> RelayResponse {
    let mut r = RelayResponse::detail(status, detail);
    r.set(SOURCE_HEADER, RELAY_SOURCE);
    add_cors(&mut r);
    narrow_cors(cors_origins, req, &mut r);
    r
}

/// Narrows an answer's CORS grant to `origins` (see [`crate::RelayConfig::cors_origins`]):
/// `None`, nothing changes (`*`); otherwise the request's `Origin`, when it is one of them,
/// replaces `*` (and `vary: origin` is added, so no cache serves one origin's answer to
/// another), and any other origin gets no `access-control-*` grant at all.
pub(crate) fn narrow_cors(origins: Option<&[String]>, req: &RelayRequest, r: &mut RelayResponse) {
    let Some(origins) = origins else {
        return;
    };
    r.set("vary", "origin");
    let allowed = req.header("origin").filter(|o| {
        origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(o))
    });
    match allowed {
        Some(origin) => r.set("access-control-allow-origin", origin),
        None => r.headers.retain(|(k, _)| !k.starts_with("access-control-")),
    }
}

/// An answer marked with where it comes from ([`SOURCE_HEADER`]).
pub(crate) fn sourced(mut r: RelayResponse, source: &str) -> RelayResponse {
    r.set(SOURCE_HEADER, source);
    r
}

/// Polar's answer, as far as the store cares.
pub(crate) struct Answered {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<u64>,
    pub(crate) denial: bool,
    pub(crate) license_key_id: Option<String>,
    pub(crate) customer_id: Option<String>,
}

/// The license key and customer a grant names (read with the grant: `id` and `customer_id`).
pub(crate) struct Holder {
    pub(crate) license_key_id: String,
    pub(crate) customer_id: String,
}

#[cfg(test)]
impl RelayConfig {
    /// A unit test's relay: Polar on a closed local port, the token `polar_oat_secret`, a new
    /// signing key `k1`.
    #[allow(clippy::expect_used)]
    pub(crate) fn for_tests() -> RelayConfig {
        RelayConfig::new(
            polar_license::proto::Server::Custom("http://127.0.0.1:9".into()),
            AccessToken::new("polar_oat_secret"),
            SigningKey::generate(Some("k1")).expect("a key"),
        )
    }

    /// [`RelayConfig::for_tests`] with a store over `backend` (no webhook secret).
    pub(crate) fn stored_for_tests(
        backend: Arc<dyn Backend>,
        options: StoreOptions,
    ) -> RelayConfig {
        let mut config = RelayConfig::for_tests();
        config.store = Some(StoreConfig {
            backend,
            options,
            webhook_secret: None,
        });
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #76 finding 1: every spelling Polar reads as one organization is one id here, and
    /// what Polar refuses is refused at the door with Polar's own 422.
    #[test]
    #[allow(clippy::expect_used)] // tests: a panic is the failure report
    fn every_spelling_of_an_organization_is_one_canonical_id() {
        const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
        for spelling in [
            ORG.to_string(),
            ORG.to_ascii_uppercase(),
            format!("{{{ORG}}}"),
            ORG.replace('-', ""),
            format!("urn:uuid:{ORG}"),
            format!("urn:uuid:{}", ORG.to_ascii_uppercase()),
        ] {
            let body = format!(r#"{{"key":"K-1","organization_id":"{spelling}"}}"#);
            let refuse = |d: &str| RelayResponse::error(422, "Bad", d);
            let (_, _, org) = ask_object(body.as_bytes(), &[], refuse).expect(&spelling);
            assert_eq!(org.as_str(), ORG, "{spelling}");
            assert_eq!(OrgId::parse(&spelling).as_ref(), Some(&org));
        }
        // Not a UUID, and a UUID of another version: Polar's refusal, as a validate gets it.
        for bad in ["x", "2d4f1b7e-6c1a-1c39-9a55-0a4c1e2b7f10", ""] {
            let body = format!(r#"{{"key":"K-1","organization_id":"{bad}"}}"#);
            let r = ask_object(body.as_bytes(), &[], |d| {
                RelayResponse::error(422, "Bad", d)
            })
            .expect_err(bad);
            assert_eq!(r.status, 422);
            let text = String::from_utf8_lossy(&r.body).into_owned();
            assert!(text.contains("RequestValidationError"), "{text}");
            assert!(OrgId::parse(bad).is_none());
        }
        assert_eq!(
            canonical_uuid("{6B0C1F4E-2A3D-4E5F-8A9B-0C1D2E3F4A5B}").as_deref(),
            Some("6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b")
        );
    }

    /// `debug_some!`: the fields named, in order, as their values show, then `..` for the
    /// rest; what is left out (a body with a key, a webhook secret) never shows.
    #[test]
    fn debug_shows_the_fields_named_and_leaves_the_rest_out() {
        let req = RelayRequest {
            method: "POST".into(),
            path: "/v1/customer-portal/license-keys/validate".into(),
            headers: vec![("x-secret-header".into(), "h".into())],
            body: br#"{"key":"SECRET-KEY"}"#.to_vec(),
            client_ip: "192.0.2.1".into(),
        };
        assert_eq!(
            format!("{req:?}"),
            "RelayRequest { method: \"POST\", path: \"/v1/customer-portal/license-keys/validate\", \
             body_len: 20, client_ip: \"192.0.2.1\", .. }"
        );
        let config = StoreConfig {
            backend: Arc::new(crate::store::MemoryBackend::new(10)),
            options: StoreOptions::default(),
            webhook_secret: Some("whsec_very_secret".into()),
        };
        let shown = format!("{config:?}");
        assert!(
            shown.starts_with("StoreConfig { options: StoreOptions {"),
            "{shown}"
        );
        assert!(
            shown.ends_with(", webhook_secret: Some(\"****\"), .. }"),
            "{shown}"
        );
        assert!(!shown.contains("whsec_very_secret"), "{shown}");
    }
}
