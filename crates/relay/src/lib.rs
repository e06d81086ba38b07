//! A seller-run relay in front of Polar's license-key API (issue #25): clients talk to it as
//! they would to Polar, it asks Polar with the seller's organization token, and every grant
//! comes back with a signed **lease** ([`polar_license::lease`]) that lets a client in signed
//! mode license offline.
//!
//! * **Polar's routes, Polar's answers.** `POST /v1/customer-portal/license-keys/{validate,
//!   activate,deactivate}` with Polar's bodies, so a client switches by base URL. The relay
//!   calls the token-authenticated twins (`/v1/license-keys/…`: the public routes allow 3
//!   requests per second per IP, which a relay serving every customer would hit) and passes
//!   Polar's status, body and `content-type`, `retry-after`, `date`, `polar-version`,
//!   `cache-control` back unchanged: denials, 429s and 5xx alike.
//! * **A lease on grants only.** A 200 of validate or activate gets a lease in the
//!   [`LEASE_HEADER`] header only when the core ([`polar_license::proto::parse_validate_for`],
//!   [`parse_activate_for`]) classifies it as a grant
//!   for the request asked (same key and organization, status `granted`, not expired at `now`).
//!   Anything else (a denial, a login page's 200, a 200 saying "revoked") passes through with
//!   none.
//! * **The seller's token is protected.** Bodies are capped ([`Limits::max_body_bytes`], 413);
//!   Polar's own input checks ([`polar_license_rules::check_body`]: the same 422 bytes
//!   Polar sends) and the core's stricter ones run before any call; a body naming another
//!   organization than the configured one is Polar's 404 "Not found" without a call; each
//!   client IP and each license key has a token bucket ([`Limits`]; 429 with `Retry-After`,
//!   no call). The token is never logged nor sent to a client; keys are logged redacted
//!   (`****-6ED415`).
//! * **Errors that are the seller's, not the customer's.** Polar unreachable: 502
//!   `{"detail": …}` (a client falls back to its cache, as for any 5xx). Polar refusing the
//!   seller's token (401, or a 403 that is not a license denial): an error log line and 502,
//!   never passed on, because a customer must not read the seller's credential problem as a
//!   denial of their license.
//! * **CORS** on every answer (`Access-Control-Allow-Origin: *`, the lease, `retry-after` and
//!   `date` exposed), preflights answered without a call.
//!
//! The core ([`Relay::handle`]) is sans-IO: a request as data, `now` as an argument, the
//! upstream [`Transport`] injected; the native server ([`serve`], feature `server`) wraps it
//! with hyper's HTTP/1.1 server (a limit on every wait on a client and on the connections
//! open: [`ServeOptions`]) and [`polar_license::UreqTransport`].

#![deny(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod address;
mod breaker;
mod clock;
mod deliveries;
// The relay's machines: a request's exchange and the background reads (`flow`, public for the
// hosts outside this crate: the Workers binding).
pub mod flow;
mod limit;
mod logged;
mod ops;
// The roster: its state and its reads' decisions (asked by `flow::background`).
mod roster;
// The reconcile: its queue and its reads' decisions (asked by `flow::background`).
mod reconcile;
mod revalidate;
mod scrub;
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
mod server;
pub mod store;
mod stored;
mod verdicts;
mod wants;

pub use breaker::BreakerOptions;
pub use clock::Now;
pub use limit::Rate;
pub use ops::{DEFAULT_WEBHOOK_SILENCE, HEALTH_ROUTE, METRICS_ROUTE};
pub use reconcile::ListPage as ReconcileListPage;
pub use roster::{ReadAnswer as RosterAnswer, RosterChange};
#[cfg(all(feature = "server", not(target_arch = "wasm32")))]
pub use server::{
    log_to_stderr, log_to_stderr_as, serve, serve_on, serve_with, LogFormat, Running, ServeOptions,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
};

use limit::Buckets;
use polar_license::lease::{
    is_nonce, key_hash, prepare, signature_verifies, LeaseClaims, RelayKeys, SigningKey,
    UnsignedLease, LEASE_HEADER, NONCE_HEADER,
};
use polar_license::metadata::{MetaValue, Metadata};
use polar_license::proto::{
    error_body, parse_activate_for, parse_validate_for, ActivateRequest, Api, DeactivateRequest,
    Expect, HttpRequest, HttpResponse, Operation, Server, ValidateRequest,
};
use polar_license::{AccessToken, Error, Key, Transport, TransportError, Verdict};
use polar_license_rules::{check_body, CheckedBody};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use store::{Backend, Budget, Entry, EntryId, StoreOptions};

/// A lease to be signed elsewhere, with the machine it binds (see [`Finished`]).
type Unsigned = Option<(UnsignedLease, Option<String>)>;
use stored::{Flight, Holder, Stored};

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

impl store::StoreOptions {
    /// What is wrong with these options, if anything: the field at fault (`fresh_for`,
    /// `budget`) and why. [`Relay::new`] refuses them; every host (`relay serve`'s flags, the
    /// npm relay's `store` options) checks them with this, so both refuse the same values.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.fresh_for == 0 || self.stale_for < self.fresh_for {
            return Some((
                "fresh_for",
                "must be at least 1 second, and stale_for at least fresh_for",
            ));
        }
        if self.budget == 0 || self.reserve >= self.budget {
            return Some((
                "budget",
                "must be at least 1 call a minute, and the reserve below it",
            ));
        }
        None
    }
}

/// How many times a check waits for another check's call to Polar about the same entry
/// ([`Step::Wait`]) before it asks Polar itself, on every host.
pub const FLIGHT_WAITS: u32 = 2;

/// How long a check with a stored answer within its stale window waits for Polar (its own call
/// or another check's of the same entry) before it is given that answer, `stale`, while the
/// call goes on and its answer updates the store (stale-while-revalidate): on every host
/// ([`Pending::patience_ms`]; natively `ServeOptions::stale_after`'s default).
pub const STALE_AFTER_MS: u64 = 800;

/// The routes a relay answers (Polar's customer-portal ones).
pub const ROUTE_PREFIX: &str = "/v1/customer-portal/license-keys/";

/// The `User-Agent` of the relay's calls to Polar.
pub const USER_AGENT: &str = concat!("polar-license-relay/", env!("CARGO_PKG_VERSION"));

/// Polar's response headers passed back to the client unchanged.
const PASSED_HEADERS: [&str; 6] = [
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
    /// The verdict store ([`store`]): validates answered from Polar's earlier answers, the
    /// token's budget kept, Polar's webhooks acted on. `None`: every check is forwarded.
    pub store: Option<StoreConfig>,
    /// The web origins (`https://app.example.com`: scheme, host and port, no path) whose
    /// pages may read the relay's answers: a request whose `Origin` is one of them gets it
    /// back in `access-control-allow-origin` (with `vary: origin`); any other origin gets no
    /// CORS grant, so a browser hides the answer from that page. `None` (the default): any
    /// origin (`*`), as Polar's public routes. Servers and apps outside a browser send no
    /// `Origin` and are not affected.
    pub cors_origins: Option<Vec<String>>,
    /// With webhooks on: after this many seconds without one, [`Relay::check_webhooks`] logs a
    /// warning and [`Relay::health`] says so (default [`DEFAULT_WEBHOOK_SILENCE`], a day; 0:
    /// never).
    pub webhook_silence: u64,
    /// The breaker in front of Polar ([`BreakerOptions`]: 5 failed calls in a row stop calls,
    /// the first probe after 3.75 s, at most 30 s apart; stored answers given meanwhile).
    pub breaker: BreakerOptions,
}

/// A relay's verdict store: where it keeps entries, how it answers from them, and the secret
/// of Polar's webhooks.
pub struct StoreConfig {
    /// Where the entries live ([`store::MemoryBackend`], [`store::RedbBackend`]).
    pub backend: Arc<dyn Backend>,
    /// How long answers last, and the budget.
    pub options: StoreOptions,
    /// The webhook endpoint's secret (`whsec_…`): turns on `POST /v1/webhooks/polar`.
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("options", &self.options)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "****"),
            )
            .finish_non_exhaustive()
    }
}

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
        }
    }
}

/// Who signs a relay's leases.
#[derive(Debug)]
pub enum Signer {
    /// This key, here: [`Relay::finish`] answers with the lease signed.
    Key(SigningKey),
    /// A key held elsewhere (WebCrypto's non-extractable key in the npm package's relay):
    /// [`Relay::finish`] hands back the lease to sign ([`Finished::pre_auth`]), and
    /// [`Relay::assemble`] adds it once its signature verifies with `public_key`.
    External {
        /// The key's id, in the lease's footer.
        kid: String,
        /// Its public key, PASERK `k4.public.…`.
        public_key: String,
    },
}

/// What a signer verifies with (and, for a key held here, signs with).
enum SignWith {
    Key(SigningKey),
    External { kid: String, keys: RelayKeys },
}

impl SignWith {
    fn of(signer: Signer) -> Result<SignWith, Error> {
        Ok(match signer {
            Signer::Key(key) => SignWith::Key(key),
            Signer::External { kid, public_key } => {
                let mut keys = RelayKeys::new();
                keys.add(&kid, &public_key)?;
                SignWith::External { kid, keys }
            }
        })
    }

    fn kid(&self) -> &str {
        match self {
            SignWith::Key(key) => key.kid(),
            SignWith::External { kid, .. } => kid,
        }
    }
}

/// [`Relay::begin`]'s outcome.
#[derive(Debug)]
pub enum Step {
    /// The answer, with no call to Polar (a preflight, a 404, a 413, a 422, a 429, or one
    /// from the store).
    Answer(RelayResponse),
    /// Ask Polar [`Pending::request`], then give its answer to [`Relay::finish`].
    Ask(Box<Pending>),
    /// An answer from the store whose lease waits for an external signature
    /// ([`Finished::pre_auth`], then [`Relay::assemble`]): only with [`Signer::External`].
    Sign(Finished),
    /// Only from [`Relay::begin_with`]: another check of the same entry is asking Polar; begin
    /// again once that call's [`Relay::finish`] has run (the flight is named, so a host can
    /// wait for it). The check itself comes with it: when it has a stored answer
    /// ([`Pending::patience_ms`]), it waits at most that long, then is given
    /// [`Relay::stale_answer`].
    Wait(String, Box<Pending>),
}

/// A request that passed every local check, waiting for Polar's answer.
pub struct Pending {
    op: Operation,
    key: Key,
    checked: CheckedBody,
    call: Call,
    request: HttpRequest,
    /// With a store, a validate's entry: its id, what it held, and whether this call leads
    /// its single flight.
    stored: Option<(EntryId, Option<Entry>)>,
    flight: Option<EntryId>,
    /// What the breaker let through (`None` until it was asked).
    ticket: Option<breaker::Ticket>,
    /// The client it came from, as the per-IP limit counts it (an IPv6 address by its /64).
    client: String,
    /// A stored grant asked again ahead of the end of its freshness: until Polar answers (or
    /// when it cannot), the grant still answers as fresh (`store`).
    early: bool,
    /// The client's [`NONCE_HEADER`], when it sent one that is a nonce: signed into the
    /// lease's claims, whoever answers (Polar now, or the store).
    nonce: Option<String>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("operation", &self.op.as_str())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// A grant's claims with the client's nonce, if it sent one (contract §5, freshness).
    fn claims(&self, mut claims: LeaseClaims) -> LeaseClaims {
        claims.nonce.clone_from(&self.nonce);
        claims
    }

    /// The call to Polar's token-authenticated route (it holds the seller's token and the
    /// license key: never log it).
    pub fn request(&self) -> &HttpRequest {
        &self.request
    }

    /// The flight this call leads ([`Relay::begin_with`]): checks that got [`Step::Wait`] with
    /// this name begin again once its [`Relay::finish`] has run.
    pub fn flight(&self) -> Option<String> {
        self.flight.as_ref().map(store::hex_id)
    }
}

/// [`Relay::finish`]'s outcome: the answer, and with an external signer the lease to sign.
#[derive(Debug)]
pub struct Finished {
    response: RelayResponse,
    unsigned: Option<(UnsignedLease, Option<String>)>,
}

impl Finished {
    /// The answer as it stands (without the lease while one waits for its signature).
    pub fn response(&self) -> &RelayResponse {
        &self.response
    }

    /// The bytes to sign with Ed25519, when a lease waits for an external signature.
    pub fn pre_auth(&self) -> Option<&[u8]> {
        self.unsigned.as_ref().map(|(u, _)| u.pre_auth())
    }

    /// The answer, without any lease still unsigned.
    pub fn into_response(self) -> RelayResponse {
        self.response
    }
}

/// A well-formed organization id, to check the server and token with before any request.
const DUMMY_ORG: &str = "00000000-0000-4000-8000-000000000000";

/// The default lease length, in days.
pub const DEFAULT_LEASE_DAYS: u32 = 7;
/// The longest lease, in days.
pub const MAX_LEASE_DAYS: u32 = 366;

/// A request as the server received it.
#[derive(Clone, PartialEq, Eq)]
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

impl std::fmt::Debug for RelayRequest {
    /// The body's length only: it holds a license key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}

impl RelayRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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
    fn new(status: u16) -> RelayResponse {
        RelayResponse {
            status,
            ..RelayResponse::default()
        }
    }

    fn json(status: u16, body: impl Into<Vec<u8>>) -> RelayResponse {
        let mut r = RelayResponse::new(status);
        r.set("content-type", "application/json");
        r.body = body.into();
        r
    }

    /// Polar's `{"error":…,"detail":…}`, in Polar's member order.
    fn error(status: u16, error: &str, detail: &str) -> RelayResponse {
        RelayResponse::json(
            status,
            object(&[("error", string(error)), ("detail", string(detail))]),
        )
    }

    /// `{"detail":…}` (Starlette's 404 and 405, and the relay's own 502s).
    fn detail(status: u16, detail: &str) -> RelayResponse {
        RelayResponse::json(status, object(&[("detail", string(detail))]))
    }

    /// The relay's own 502 (the breaker open, Polar out of reach or refusing the relay's
    /// token): `{"detail":…}`, said to be the relay's (`polar-license-source: relay`): Polar
    /// gave no answer.
    fn unreached(detail: &str) -> RelayResponse {
        sourced(RelayResponse::detail(502, detail), RELAY_SOURCE)
    }

    /// Polar's 429: an empty body and `retry-after`.
    /// The relay's own 429 (its per-IP or per-key rate, the budget, the first-seen share),
    /// said to be the relay's (`polar-license-source: relay`), not Polar's.
    fn rate_limited(retry_after: u64) -> RelayResponse {
        let mut r = RelayResponse::new(429);
        r.set("retry-after", &retry_after.to_string());
        r.set(SOURCE_HEADER, RELAY_SOURCE);
        r
    }

    fn set(&mut self, name: &str, value: &str) {
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
}

/// Where a lease's `jti` comes from: 16 random bytes.
pub type Entropy = Box<dyn Fn() -> Option<[u8; 16]> + Send + Sync>;

/// The relay: configuration, rate-limit state and the upstream transport. Share it between
/// threads behind an `Arc`; [`Relay::handle`] takes `&self`.
pub struct Relay {
    token: AccessToken,
    base_url: String,
    organization_id: Option<String>,
    signer: SignWith,
    lease_seconds: i64,
    limits: Limits,
    client_ip_header: Option<String>,
    per_ip: Mutex<Buckets>,
    per_key: Mutex<Buckets>,
    transport: Box<dyn Transport>,
    entropy: Entropy,
    store: Option<Stored>,
    cors_origins: Option<Vec<String>>,
    /// The operator's counters ([`Relay::metrics`], [`Relay::health`]).
    pub(crate) ops: Arc<ops::Ops>,
    webhook_silence: u64,
    pub(crate) breaker: breaker::Breaker,
}

/// What routing decided.
enum Routed {
    Answer(RelayResponse),
    /// From the store, its lease to sign elsewhere (an external signer).
    Stored(Finished),
    Ask(Box<Pending>),
    /// Another check of the same entry is asking Polar: wait for it, then route again (the
    /// check, with its entry as read, to route again or answer stale from).
    Wait(EntryId, Box<Pending>),
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("base_url", &self.base_url)
            .field("organization_id", &self.organization_id)
            .field("kid", &self.signer.kid())
            .field("lease_seconds", &self.lease_seconds)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The operating system's randomness (native).
#[cfg(not(target_arch = "wasm32"))]
pub fn os_entropy() -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes)
}

impl Relay {
    /// Checks the configuration (the base URL, the token, the organization id, a lease of 1
    /// to [`MAX_LEASE_DAYS`] days) and builds a relay that asks Polar through `transport`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(config: RelayConfig, transport: Box<dyn Transport>) -> Result<Relay, Error> {
        Relay::with_entropy(config, transport, Box::new(os_entropy))
    }

    /// [`Relay::new`] with the lease ids' randomness given (a host without an OS source).
    pub fn with_entropy(
        config: RelayConfig,
        transport: Box<dyn Transport>,
        entropy: Entropy,
    ) -> Result<Relay, Error> {
        if !(1..=MAX_LEASE_DAYS).contains(&config.lease_days) {
            return Err(Error::invalid("lease_days", "must be 1 to 366 days"));
        }
        let organization_id = config
            .organization_id
            .as_deref()
            .map(|org| polar_license::metadata::check_uuid_v4("organization_id", org))
            .transpose()?;
        let base_url = config.server.base_url()?;
        if let Some(origins) = &config.cors_origins {
            if origins.is_empty() {
                return Err(Error::invalid("cors_origins", "names no origin"));
            }
            for origin in origins {
                check_origin(origin)?;
            }
        }
        // Checks the token (non-empty printable ASCII) once, here.
        Api::new(DUMMY_ORG, &config.server)?.with_access_token(config.access_token.clone())?;
        let secret = config
            .store
            .as_ref()
            .and_then(|s| s.webhook_secret.as_deref());
        if secret.is_some_and(|s| !store::webhook_secret_usable(s)) {
            return Err(Error::invalid(
                "webhook_secret",
                "is empty: give the whsec_… secret of the webhook endpoint in Polar (a signature \
                 made with an empty secret proves nothing)",
            ));
        }
        if let Some((field, why)) = config.store.as_ref().and_then(|s| s.options.problem()) {
            return Err(Error::invalid(field, why));
        }
        let store = config.store.map(|s| {
            (
                s.options.roster,
                roster::FirstSeen::new(
                    s.options.budget,
                    s.options.first_seen_share,
                    s.options.budget_window_ms,
                ),
                s,
            )
        });
        let store = store.map(|(roster_on, first_seen, s)| Stored {
            budget: Mutex::new(Budget::with_window(
                s.options.budget,
                s.options.reserve,
                s.options.budget_window_ms,
            )),
            budget_restored: std::sync::atomic::AtomicBool::new(false),
            refused: std::sync::atomic::AtomicU64::new(0),
            // On with an interval: the native server drives it, on Workers the host does.
            reconcile: reconcile::Reconcile::new(s.options.reconcile_every > 0),
            backend: s.backend,
            options: s.options,
            webhook_secret: s.webhook_secret,
            flights: Mutex::new(HashMap::new()),
            roster: roster::Roster::new(roster_on),
            first_seen: Mutex::new(first_seen),
            revoked: Mutex::new(stored::Revocations::default()),
            deliveries: deliveries::Deliveries::default(),
        });
        let ops = Arc::new(ops::Ops::default());
        if let Some(s) = &store {
            ops.restore_last_webhook(s.backend.as_ref());
        }
        let transport = Box::new(ops::Counted {
            inner: transport,
            ops: Arc::clone(&ops),
        });
        Ok(Relay {
            store,
            ops,
            webhook_silence: config.webhook_silence,
            breaker: breaker::Breaker::new(config.breaker),
            token: config.access_token,
            base_url,
            organization_id,
            signer: SignWith::of(config.signer)?,
            lease_seconds: i64::from(config.lease_days) * 86_400,
            limits: config.limits,
            client_ip_header: config.client_ip_header,
            per_ip: Mutex::new(Buckets::new(config.limits.per_ip)),
            per_key: Mutex::new(Buckets::new(config.limits.per_key)),
            transport,
            entropy,
            cors_origins: config.cors_origins,
        })
    }

    /// Narrows an answer's CORS grant to the configured origins ([`RelayConfig::cors_origins`]):
    /// with none configured, nothing changes (`*`). Otherwise the request's `Origin`, when it
    /// is one of them, replaces `*` (and `vary: origin` is added, so no cache serves one
    /// origin's answer to another); any other origin gets no `access-control-*` grant at all.
    /// [`Relay::handle`] applies it; a host that runs [`Relay::begin`] and [`Relay::finish`]
    /// applies it to the answer it sends.
    pub fn cors(&self, req: &RelayRequest, r: &mut RelayResponse) {
        let Some(origins) = &self.cors_origins else {
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

    /// The Polar base URL asked.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The signing key's `kid`.
    pub fn kid(&self) -> &str {
        self.signer.kid()
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Answers one request (see the crate docs for what it does, in order): the request
    /// path's machine ([`flow::Exchange`], as every host runs it), its calls made through the
    /// relay's transport and waited for. With a store, a check whose entry another check is
    /// asking Polar for waits for that answer (one call per entry). `GET /healthz` is
    /// answered ([`Relay::health`]) as every host answers it.
    pub fn handle(&self, req: &RelayRequest, now: Now) -> RelayResponse {
        // The request path's one machine (flow::Exchange), driven by the blocking host's loop.
        flow::drive_blocking(self, req, now)
    }

    /// Blocks until the call for the entry `flight` (its hex id, as [`Step::Wait`] names it)
    /// lands, at most 30 s; at once when there is none under way.
    pub(crate) fn wait_flight(&self, flight: &str) {
        if let Some(f) = self.flight(flight) {
            f.wait();
        }
    }

    /// The call under way for the entry `flight` (its hex id, as [`Step::Wait`] names it);
    /// `None` when none is (it landed, or there is no store).
    pub(crate) fn flight(&self, flight: &str) -> Option<Arc<Flight>> {
        let s = self.store.as_ref()?;
        let flights = s.flights.lock().unwrap_or_else(|e| e.into_inner());
        flights
            .iter()
            .find(|(id, _)| store::hex_id(id) == flight)
            .map(|(_, f)| Arc::clone(f))
    }

    /// The first half of [`Relay::handle`], for hosts whose call to Polar is asynchronous:
    /// every local check, and either the answer or the call to make. (Checks of one entry
    /// arriving together each ask Polar here: [`Relay::begin_with`] makes them wait.)
    pub fn begin(&self, req: &RelayRequest, now: Now) -> Step {
        self.step(self.routed(req, now, false, &*self.entropy, false))
    }

    /// [`Relay::begin`] with single flight and the host's randomness (for a lease made from
    /// the store): [`Step::Wait`] names the call under way for the same entry, and the call
    /// this step asks for (if any) is the one others wait on until its [`Relay::finish`].
    pub fn begin_with(&self, req: &RelayRequest, now: Now, entropy: Option<[u8; 16]>) -> Step {
        self.begin_after(req, now, entropy, 0)
    }

    /// [`Relay::begin_with`] for a request that has already waited `waited` times for another
    /// check's call ([`Step::Wait`]): after [`FLIGHT_WAITS`] waits it no longer waits and asks
    /// Polar itself, as [`Relay::handle`] does, so every host answers the same way (never a 502
    /// of its own).
    pub fn begin_after(
        &self,
        req: &RelayRequest,
        now: Now,
        entropy: Option<[u8; 16]>,
        waited: u32,
    ) -> Step {
        self.step(self.routed(req, now, waited < FLIGHT_WAITS, &move || entropy, false))
    }

    /// For a host that reads the store before it begins a request (the npm relay over a
    /// Durable Object's storage, [`Relay::store_wants`]): the per-IP limit first, so that a
    /// flood of requests past it costs no storage read. `Some` (429, with `Retry-After`) when
    /// the client is over its rate; otherwise its token is taken (`None`, also for a request
    /// the limit does not concern) and the request goes on with [`Relay::begin_admitted`],
    /// which does not take it again, also after waits (as the native server takes it once).
    pub fn admit(&self, req: &RelayRequest, now: Now) -> Option<RelayResponse> {
        let op = self.gate(req).ok()?;
        let mut r = self.per_ip_limit(req, op, now)?;
        add_cors(&mut r);
        Some(r)
    }

    /// The answer to `req` that its head decides alone, before its body is read (the body
    /// is ignored), else `None`: on [`WEBHOOK_ROUTE`] with a store and a webhook secret, a
    /// delivery from an address over its failed verifications (429) or whose headers are
    /// refused with no HMAC (400, 401; counted as a failure), the answers the route itself
    /// gives them (the relay's `deliveries` module). A host that reads the body before the core sees
    /// the request (the npm relay: up to 1 MiB for a webhook) asks this first, so a forged
    /// post's body costs no read. Every other request: `None`.
    pub fn refuse_unread(&self, req: &RelayRequest, now: Now) -> Option<RelayResponse> {
        let path = req.path.split('?').next().unwrap_or_default();
        if path != WEBHOOK_ROUTE || req.method != "POST" {
            return None;
        }
        let s = self.store.as_ref()?;
        let secret = s.webhook_secret.as_deref()?;
        let client = roster::client_group(&self.client_of(req));
        let mut r = s
            .deliveries
            .refuse_unread(secret, &client, req, now.unix_seconds)?;
        add_cors(&mut r);
        Some(r)
    }

    /// [`Relay::begin_after`] for a request [`Relay::admit`] let through.
    pub fn begin_admitted(
        &self,
        req: &RelayRequest,
        now: Now,
        entropy: Option<[u8; 16]>,
        waited: u32,
    ) -> Step {
        self.step(self.routed(req, now, waited < FLIGHT_WAITS, &move || entropy, true))
    }

    fn step(&self, routed: Routed) -> Step {
        match routed {
            Routed::Answer(mut r) => {
                add_cors(&mut r);
                Step::Answer(r)
            }
            Routed::Stored(f) if f.unsigned.is_some() => Step::Sign(f),
            Routed::Stored(f) => Step::Answer(f.into_response()),
            Routed::Ask(pending) => Step::Ask(pending),
            Routed::Wait(id, pending) => Step::Wait(store::hex_id(&id), pending),
        }
    }

    fn routed(
        &self,
        req: &RelayRequest,
        now: Now,
        may_wait: bool,
        entropy: &dyn Fn() -> Option<[u8; 16]>,
        admitted: bool,
    ) -> Routed {
        let path = req.path.split('?').next().unwrap_or_default();
        if path == WEBHOOK_ROUTE {
            if let Some(s) = self.store.as_ref().filter(|s| s.webhook_secret.is_some()) {
                return Routed::Answer(self.webhook(s, req, now));
            }
        }
        let pending = match self.route_checked(req, now, admitted) {
            Ok(pending) => pending,
            Err(answer) => return Routed::Answer(answer),
        };
        match &self.store {
            Some(s) => self.routed_with_store(s, pending, now, may_wait, entropy),
            None => {
                if let Some(r) = self.per_key_limit(&pending, now) {
                    return Routed::Answer(r);
                }
                let mut pending = pending;
                match self.breaker.allow(now) {
                    Some(ticket) => {
                        pending.ticket = Some(ticket);
                        Routed::Ask(Box::new(pending))
                    }
                    None => Routed::Answer(breaker_refused(&pending)),
                }
            }
        }
    }

    /// The per-key bucket (it protects Polar: answers from the store skip it).
    fn per_key_limit(&self, pending: &Pending, now: Now) -> Option<RelayResponse> {
        let key_id = [
            pending.checked.organization_id.as_str(),
            ":",
            &key_hash(&pending.key),
        ]
        .concat();
        let secs = take(&self.per_key, &key_id, now)?;
        log::info!(
            "relay: {} {} 429 (key over its rate)",
            pending.op.as_str(),
            crate::logged::key(&pending.key)
        );
        Some(RelayResponse::rate_limited(secs))
    }

    /// The checks before the per-IP limit (a preflight, the route, the method, the body's
    /// size): the operation asked, or the answer that ends the request there.
    fn gate(&self, req: &RelayRequest) -> Result<Operation, RelayResponse> {
        if req.method.eq_ignore_ascii_case("OPTIONS") {
            return Err(preflight());
        }
        let path = req.path.split('?').next().unwrap_or_default();
        let op = match path.strip_prefix(ROUTE_PREFIX) {
            Some("validate") => Operation::Validate,
            Some("activate") => Operation::Activate,
            Some("deactivate") => Operation::Deactivate,
            _ => return Err(RelayResponse::detail(404, "Not Found")),
        };
        if req.method != "POST" {
            let mut r = RelayResponse::detail(405, "Method Not Allowed");
            r.set("allow", "POST, OPTIONS");
            return Err(r);
        }
        let max = self.limits.max_body_bytes;
        if req.body.len() > max {
            log::info!("relay: {} 413 (body over {max} bytes)", op.as_str());
            return Err(RelayResponse::error(
                413,
                "RequestBodyTooLarge",
                &format!("Request body exceeded the maximum allowed size of {max} bytes."),
            ));
        }
        Ok(op)
    }

    /// The per-IP bucket: 429 when `req`'s client is over its rate, else its token taken.
    fn per_ip_limit(&self, req: &RelayRequest, op: Operation, now: Now) -> Option<RelayResponse> {
        let client = roster::client_group(&self.client_of(req));
        let secs = take(&self.per_ip, &client, now)?;
        log::info!(
            "relay: {} 429 (client {} over its rate)",
            op.as_str(),
            logged::escaped(&client)
        );
        Some(RelayResponse::rate_limited(secs))
    }

    /// Every local check of a request ([`Relay::gate`], the per-IP limit unless `admitted`
    /// took it already, Polar's input checks, the organization): the call it asks for.
    fn route_checked(
        &self,
        req: &RelayRequest,
        now: Now,
        admitted: bool,
    ) -> Result<Pending, RelayResponse> {
        let op = self.gate(req)?;
        if !admitted {
            if let Some(r) = self.per_ip_limit(req, op, now) {
                return Err(r);
            }
        }
        let client = roster::client_group(&self.client_of(req));
        let checked = match check_body(op.as_str(), req.header("content-type"), &req.body) {
            Some(Ok(checked)) => checked,
            Some(Err(refusal)) => {
                log::info!(
                    "relay: {} {} (Polar's input checks)",
                    op.as_str(),
                    refusal.status
                );
                let mut r = RelayResponse::json(refusal.status, refusal.body);
                r.set("content-type", refusal.content_type);
                return Err(private(r));
            }
            None => return Err(RelayResponse::detail(404, "Not Found")),
        };
        let key = Key::new(checked.key.clone());
        if self
            .organization_id
            .as_deref()
            .is_some_and(|org| org != checked.organization_id)
        {
            log::info!(
                "relay: {} {} 404 (another organization)",
                op.as_str(),
                crate::logged::key(&key)
            );
            return Err(private(RelayResponse::error(
                404,
                "ResourceNotFound",
                "Not found",
            )));
        }
        let call = match Call::of(op, &checked) {
            Ok(call) => call,
            Err(e) => return Err(private(invalid(op, &key, &e))),
        };
        let request = match self
            .api_for(&checked.organization_id)
            .and_then(|api| call.request(&api))
        {
            Ok(request) => request,
            Err(e) => return Err(private(invalid(op, &key, &e))),
        };
        let request = with_version(request, req.header("polar-version"));
        Ok(Pending {
            op,
            key,
            checked,
            call,
            request,
            stored: None,
            flight: None,
            ticket: None,
            client,
            early: false,
            nonce: req
                .header(NONCE_HEADER)
                .filter(|n| is_nonce(n))
                .map(str::to_string),
        })
    }

    /// The per-IP limit's identity: the address in the configured proxy header's last entry
    /// (its port stripped), else the peer; a value that is no address is the peer's (the
    /// proxy's) own ([`address::client_address`]).
    fn client_of(&self, req: &RelayRequest) -> String {
        let header = self
            .client_ip_header
            .as_deref()
            .and_then(|name| req.header(name));
        address::client_address(header, &req.client_ip)
    }

    /// An `Api` for the organization a request names (checked as a UUID v4 by Polar's checks
    /// already), on the token twins.
    fn api_for(&self, organization_id: &str) -> Result<Api, Error> {
        Ok(
            Api::new(organization_id, &Server::Custom(self.base_url.clone()))?
                .with_access_token(self.token.clone())?
                .with_user_agent(USER_AGENT),
        )
    }

    /// The second half of [`Relay::handle`]: Polar's answer (or why there is none) to the
    /// call [`Relay::begin`] asked for, passed back with a lease on a grant. The lease id's
    /// randomness comes from the relay's entropy source.
    pub fn finish(
        &self,
        pending: Box<Pending>,
        upstream: Result<HttpResponse, TransportError>,
        now: Now,
    ) -> Finished {
        let entropy = (self.entropy)();
        self.finish_with_entropy(pending, upstream, now, entropy)
    }

    /// [`Relay::finish`] with the lease id's 16 random bytes given (a host whose randomness
    /// is its own, such as WebCrypto's `getRandomValues`); `None`: no lease can be made.
    pub fn finish_with_entropy(
        &self,
        pending: Box<Pending>,
        upstream: Result<HttpResponse, TransportError>,
        now: Now,
        entropy: Option<[u8; 16]>,
    ) -> Finished {
        self.finish_made(&pending, upstream, now, entropy, true)
    }

    /// [`Relay::finish_with_entropy`]; `made`: whether the call was made (its outcome then
    /// tells the breaker), or skipped because the breaker opened meanwhile.
    fn finish_made(
        &self,
        pending: &Pending,
        upstream: Result<HttpResponse, TransportError>,
        now: Now,
        entropy: Option<[u8; 16]>,
        made: bool,
    ) -> Finished {
        if made {
            self.breaker.record(&upstream, pending.ticket, now);
        }
        let seen = self.store.as_ref().map(|_| stored::Seen::of(&upstream));
        let (mut response, mut unsigned, holder) = self.answer(pending, upstream, now, entropy);
        if let (Some(s), Some(seen)) = (&self.store, seen) {
            let seen = seen.held_by(holder);
            self.keep(s, pending, seen, now, entropy, &mut response, &mut unsigned);
        }
        add_cors(&mut response);
        Finished { response, unsigned }
    }

    /// The answer with the externally made signature of [`Finished::pre_auth`]: the lease is
    /// added only when it verifies with the signer's public key (`true`); otherwise the answer
    /// goes without one, and an error is logged.
    pub fn assemble(&self, finished: Finished, signature: &[u8]) -> (RelayResponse, bool) {
        let Finished {
            mut response,
            unsigned,
        } = finished;
        let Some((unsigned, machine)) = unsigned else {
            return (response, false);
        };
        let keys = match &self.signer {
            SignWith::External { keys, .. } => keys.clone(),
            SignWith::Key(key) => key.relay_keys(),
        };
        match unsigned.assemble(signature) {
            Ok(token) if signature_verifies(&token, &keys, machine.as_deref()) => {
                response.set(LEASE_HEADER, &token);
                (response, true)
            }
            _ => {
                log::error!(
                    "relay: a lease's signature does not verify with the public key of {}: \
                     answered without a lease (is the signing key the configured one?)",
                    self.signer.kid()
                );
                (response, false)
            }
        }
    }

    /// Polar's answer passed back, with the lease signed here, or to be signed elsewhere; and
    /// for a grant, its license key's and customer's ids as the grant's reading found them.
    fn answer(
        &self,
        pending: &Pending,
        upstream: Result<HttpResponse, TransportError>,
        now: Now,
        entropy: Option<[u8; 16]>,
    ) -> (RelayResponse, Unsigned, Option<Holder>) {
        let Pending {
            op,
            key,
            checked,
            call,
            ..
        } = pending;
        let op = *op;
        let upstream = match upstream {
            Ok(resp) => resp,
            Err(e) => {
                log::warn!(
                    "relay: {} {} 502 (Polar unreachable: {:?})",
                    op.as_str(),
                    crate::logged::key(key),
                    e.kind
                );
                return (
                    RelayResponse::unreached("the relay could not reach Polar"),
                    None,
                    None,
                );
            }
        };
        if refuses_token(op, &upstream) {
            log::error!(
                "relay: Polar refused the relay's access token ({}): check --access-token and \
                 its license_keys:write scope; answering 502",
                upstream.status
            );
            return (
                RelayResponse::unreached("the relay could not ask Polar"),
                None,
                None,
            );
        }
        let mut r = RelayResponse::new(upstream.status);
        for name in PASSED_HEADERS {
            if let Some(value) = upstream.header(name) {
                r.set(name, value);
            }
        }
        r.body = upstream.body.clone();
        let (lease, holder) = match self.grant(op, checked, call, &upstream, now, entropy) {
            Ok((lease, holder)) => (pending.claims(lease), holder),
            Err(why) => {
                log::info!(
                    "relay: {} {} {} (no lease: {why})",
                    op.as_str(),
                    crate::logged::key(key),
                    upstream.status
                );
                return (r, None, None);
            }
        };
        let (r, unsigned) = self.leased(pending, r, &lease);
        (r, unsigned, Some(holder))
    }

    /// A grant's answer with its lease signed here, or to be signed elsewhere.
    fn leased(
        &self,
        pending: &Pending,
        mut r: RelayResponse,
        lease: &LeaseClaims,
    ) -> (RelayResponse, Unsigned) {
        let Pending {
            op, key, checked, ..
        } = pending;
        let op = *op;
        let machine = machine_of(checked);
        let signed = match &self.signer {
            SignWith::Key(signing_key) => {
                signing_key.sign(lease, machine.as_deref()).map(|token| {
                    r.set(LEASE_HEADER, &token);
                    log::info!(
                        "relay: {} {} 200 (lease {} until {})",
                        op.as_str(),
                        crate::logged::key(key),
                        lease.id,
                        lease.expires_at
                    );
                    None
                })
            }
            SignWith::External { kid, .. } => {
                prepare(lease, kid, machine.as_deref()).map(|unsigned| {
                    log::info!(
                        "relay: {} {} 200 (lease {} until {}, to sign)",
                        op.as_str(),
                        crate::logged::key(key),
                        lease.id,
                        lease.expires_at
                    );
                    Some((unsigned, machine))
                })
            }
        };
        match signed {
            Ok(unsigned) => (r, unsigned),
            Err(e) => {
                log::error!(
                    "relay: {} {} 200 without a lease: {}",
                    op.as_str(),
                    crate::logged::key(key),
                    e.text()
                );
                (r, None)
            }
        }
    }

    /// The lease's claims when `upstream` is a grant the core accepts for the request, with the
    /// license key's and customer's ids it names, else why not.
    fn grant(
        &self,
        op: Operation,
        checked: &CheckedBody,
        call: &Call,
        upstream: &HttpResponse,
        now: Now,
        entropy: Option<[u8; 16]>,
    ) -> Result<(LeaseClaims, Holder), String> {
        self.grant_at(op, checked, call, upstream, now, now.unix_seconds, entropy)
    }

    /// [`Relay::grant`] for an answer Polar gave at `verified_at` (the store's): checked as of
    /// `now`, its lease issued at `verified_at`, so it never outlives what Polar said by more
    /// than the lease length.
    #[allow(clippy::too_many_arguments)]
    fn grant_at(
        &self,
        op: Operation,
        checked: &CheckedBody,
        call: &Call,
        upstream: &HttpResponse,
        now: Now,
        verified_at: i64,
        entropy: Option<[u8; 16]>,
    ) -> Result<(LeaseClaims, Holder), String> {
        if upstream.status != 200 {
            return Err("not a grant".into());
        }
        let org = checked.organization_id.as_str();
        let at = now.unix_seconds;
        let (license, activation_id) = match call {
            Call::Validate(req) => {
                let expect = Expect::validate(org, req, at).ok_or("no key")?;
                match parse_validate_for(upstream, &expect).map_err(|e| e.text())? {
                    Verdict::Accepted(v) => (v.license_key, v.activation.map(|a| a.id)),
                    Verdict::Denied(d) => return Err(d.detail),
                }
            }
            Call::Activate(req) => {
                let expect = Expect::activate(org, req, at).ok_or("no key")?;
                match parse_activate_for(upstream, &expect).map_err(|e| e.text())? {
                    Verdict::Accepted(a) => (a.license_key, Some(a.activation.id)),
                    Verdict::Denied(d) => return Err(d.detail),
                }
            }
            Call::Deactivate(_) => return Err(format!("{} is never leased", op.as_str())),
        };
        let license_expires_at = license.expires_at.map(|t| t.unix_timestamp());
        let at = verified_at.min(at);
        let expires_at = license_expires_at.map_or(at.saturating_add(self.lease_seconds), |l| {
            l.min(at.saturating_add(self.lease_seconds))
        });
        let id = entropy
            .map(|bytes| uuid::Builder::from_random_bytes(bytes).into_uuid())
            .ok_or("no randomness for the lease id")?;
        let holder = Holder {
            license_key_id: license.id,
            customer_id: license.customer_id,
        };
        let claims = LeaseClaims {
            organization_id: license.organization_id,
            key_sha256: key_hash(&license.key),
            activation_id,
            status: license.status.as_str().to_string(),
            license_expires_at,
            benefit_id: license.benefit_id,
            usage: license.usage,
            limit_usage: license.limit_usage,
            limit_activations: license.limit_activations,
            issued_at: at,
            not_before: at,
            expires_at,
            id: id.hyphenated().to_string(),
            nonce: None,
        };
        Ok((claims, holder))
    }
}

fn take(buckets: &Mutex<Buckets>, id: &str, now: Now) -> Option<u64> {
    // A poisoned lock (a panic elsewhere) still holds usable counts.
    let mut guard = buckets.lock().unwrap_or_else(|e| e.into_inner());
    guard.take(id, now.monotonic_ms)
}

/// The core's request, from a body Polar's checks accepted.
enum Call {
    Validate(ValidateRequest),
    Activate(ActivateRequest),
    Deactivate(DeactivateRequest),
}

impl Call {
    fn of(op: Operation, b: &CheckedBody) -> Result<Call, Error> {
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
    fn request(&self, api: &Api) -> Result<HttpRequest, Error> {
        match self {
            Call::Validate(req) => api.validate_request(req),
            Call::Activate(req) => api.activate_request(req),
            Call::Deactivate(req) => api.deactivate_request(req),
        }
    }
}

fn metadata(field: &str, pairs: &[(String, serde_json::Value)]) -> Result<Metadata, Error> {
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
fn machine_of(b: &CheckedBody) -> Option<String> {
    b.conditions
        .iter()
        .rev()
        .find(|(k, _)| k == polar_license::fingerprint::MACHINE_CONDITION)
        .and_then(|(_, v)| v.as_str().map(str::to_string))
}

/// The client's `Polar-Version`, passed on when it has the `YYYY-MM` form (Polar answers
/// anything else with a bare 404, which the relay then passes back).
fn with_version(mut request: HttpRequest, version: Option<&str>) -> HttpRequest {
    if let Some(v) = passed_version(version) {
        request.headers.push(("polar-version", v.to_string()));
    }
    request
}

/// The client's `Polar-Version` as the relay passes it on (see [`with_version`]).
fn passed_version(version: Option<&str>) -> Option<&str> {
    version
        .map(str::trim)
        .filter(|v| v.len() <= 16 && v.bytes().all(|b| b.is_ascii_graphic()))
}

/// Polar refusing the seller's token: a 401, or a 403 that is not a license denial
/// (`NotPermitted`: activate's limits and statuses).
fn refuses_token(op: Operation, upstream: &HttpResponse) -> bool {
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
fn invalid(op: Operation, key: &Key, e: &Error) -> RelayResponse {
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
fn string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A JSON object of already-written members, in this order (Polar's; serde_json's map
/// would sort them).
fn object(members: &[(&str, String)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(name, value)| [string(name).as_str(), ":", value].concat())
        .collect();
    ["{", &inner.join(","), "}"].concat()
}

/// `cache-control: private, no-store`, as Polar adds to its answers.
fn private(mut r: RelayResponse) -> RelayResponse {
    r.set("cache-control", "private, no-store");
    r
}

fn preflight() -> RelayResponse {
    let mut r = RelayResponse::new(204);
    r.set("access-control-allow-methods", "POST, OPTIONS");
    r.set(
        "access-control-allow-headers",
        "content-type, polar-version, accept, polar-license-nonce",
    );
    r.set("access-control-max-age", "600");
    r
}

fn add_cors(r: &mut RelayResponse) {
    r.set("access-control-allow-origin", "*");
    r.set(
        "access-control-expose-headers",
        "polar-license-lease, retry-after, date, age, polar-version, polar-license-source",
    );
    if r.header(SOURCE_HEADER).is_none() {
        r.set(SOURCE_HEADER, "polar");
    }
}

/// A web origin as a browser sends it in `Origin`: `http` or `https`, a host, an optional
/// port, nothing after (no path, no trailing slash).
fn check_origin(origin: &str) -> Result<(), Error> {
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

/// A call the breaker stops: the 502 of an unreachable Polar (a client falls back to its
/// cache, as for any 5xx), with no call.
fn breaker_refused(pending: &Pending) -> RelayResponse {
    log::info!(
        "relay: {} {} 502 (the breaker is open: Polar not asked)",
        pending.op.as_str(),
        crate::logged::key(&pending.key)
    );
    RelayResponse::unreached("the relay could not reach Polar")
}

/// An answer marked with where it comes from ([`SOURCE_HEADER`]).
fn sourced(mut r: RelayResponse, source: &str) -> RelayResponse {
    r.set(SOURCE_HEADER, source);
    r
}

#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use polar_license::TransportError;
    use std::sync::Arc;

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";

    fn relay_over(
        transport: impl Fn(&HttpRequest) -> Result<HttpResponse, TransportError> + Send + Sync + 'static,
    ) -> Relay {
        let key = SigningKey::generate(Some("k1")).expect("a key");
        let config = RelayConfig::new(
            Server::Custom("http://127.0.0.1:9".into()),
            AccessToken::new("polar_oat_secret"),
            key,
        );
        Relay::with_entropy(config, Box::new(transport), Box::new(|| Some([7; 16])))
            .expect("a relay")
    }

    fn validate(body: &str) -> RelayRequest {
        RelayRequest {
            method: "POST".into(),
            path: "/v1/customer-portal/license-keys/validate?x=1".into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Polar-Version".into(), "2026-10".into()),
            ],
            body: body.as_bytes().to_vec(),
            client_ip: "192.0.2.1".into(),
        }
    }

    const NOW: Now = Now {
        unix_seconds: 1_790_000_000,
        monotonic_ms: 0,
    };

    #[test]
    fn it_asks_the_token_twin_with_the_token_and_the_checked_body() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let relay = relay_over(move |req: &HttpRequest| {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(req.clone());
            Ok(
                HttpResponse::new(404, r#"{"error":"ResourceNotFound","detail":"Not found"}"#)
                    .with_header("content-type", "application/json"),
            )
        });
        let body = format!(r#"{{"key":"K-1","organization_id":"{ORG}","increment_usage":"2"}}"#);
        let r = relay.handle(&validate(&body), NOW);
        assert_eq!((r.status, r.lease()), (404, None));
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let req = seen.first().expect("one call");
        assert_eq!(seen.len(), 1);
        assert_eq!(req.url, "http://127.0.0.1:9/v1/license-keys/validate");
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("authorization"), Some("Bearer polar_oat_secret"));
        assert_eq!(header("polar-version"), Some("2026-10"));
        assert_eq!(header("user-agent"), Some(USER_AGENT));
        // Polar's lax "2" sent as the integer it means.
        let sent: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON");
        assert_eq!(
            sent,
            serde_json::json!({"key": "K-1", "organization_id": ORG, "increment_usage": 2})
        );
        assert!(!format!("{relay:?}").contains("polar_oat_secret"));
    }

    #[test]
    fn transport_errors_are_502_and_the_token_is_nowhere_in_the_answer() {
        let relay = relay_over(|_: &HttpRequest| {
            Err(TransportError::new(
                polar_license::TransportErrorKind::Connect,
                "connection refused",
            ))
        });
        let body = format!(r#"{{"key":"K-1","organization_id":"{ORG}"}}"#);
        let r = relay.handle(&validate(&body), NOW);
        assert_eq!(r.status, 502);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let all = format!("{r:?}{}", String::from_utf8_lossy(&r.body));
        assert!(!all.contains("polar_oat_secret"), "{all}");
    }

    /// A relay whose upstream grants nothing (404) and counts its calls.
    /// A relay limited `per_ip` and `per_key` (the client named by `ip_header` when given)
    /// whose Polar answers every call 404, asked `reqs` (each at its clock in ms): each
    /// answer's status and `retry-after`, and how many calls reached Polar.
    fn limited(
        per_ip: Rate,
        per_key: Rate,
        ip_header: Option<&str>,
        reqs: &[(RelayRequest, u64)],
    ) -> (Vec<(u16, Option<String>)>, u32) {
        let calls = Arc::new(Mutex::new(0u32));
        let count = Arc::clone(&calls);
        let transport = move |_: &HttpRequest| {
            *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            Ok(HttpResponse::new(
                404,
                r#"{"error":"ResourceNotFound","detail":"Not found"}"#,
            ))
        };
        let key = SigningKey::generate(Some("k1")).expect("a key");
        let mut config = RelayConfig::new(
            Server::Custom("http://127.0.0.1:9".into()),
            AccessToken::new("t"),
            key,
        );
        config.limits = Limits {
            per_ip,
            per_key,
            ..Limits::default()
        };
        config.client_ip_header = ip_header.map(str::to_string);
        let relay =
            Relay::with_entropy(config, Box::new(transport), Box::new(|| None)).expect("a relay");
        let got = reqs
            .iter()
            .map(|(req, ms)| {
                let r = relay.handle(req, at(*ms));
                (r.status, r.header("retry-after").map(str::to_string))
            })
            .collect();
        let calls = *calls.lock().unwrap_or_else(|e| e.into_inner());
        (got, calls)
    }

    fn at(ms: u64) -> Now {
        Now {
            unix_seconds: 1_790_000_000,
            monotonic_ms: ms,
        }
    }

    fn for_key(key: &str, ip: &str) -> RelayRequest {
        let mut req = validate(&format!(r#"{{"key":"{key}","organization_id":"{ORG}"}}"#));
        req.client_ip = ip.into();
        req
    }

    /// A check of `K1` through the proxy at 10.0.0.254, its `X-Forwarded-For` `value`.
    fn via(value: &str) -> RelayRequest {
        let mut req = for_key("K1", "10.0.0.254");
        req.headers.push(("X-Forwarded-For".into(), value.into()));
        req
    }

    /// No limit.
    const OFF: Rate = Rate::new(0, 0);
    /// 429, retry after a second.
    fn refused() -> (u16, Option<String>) {
        (429, Some("1".into()))
    }

    #[test]
    fn the_per_ip_bucket_at_a_fixed_clock() {
        let a = |key: &str| for_key(key, "192.0.2.1");
        let (got, calls) = limited(
            Rate::new(1, 2),
            OFF,
            None,
            &[
                (a("K1"), 0),
                (a("K2"), 0),
                (a("K3"), 0),
                (for_key("K3", "192.0.2.2"), 0),
                (a("K3"), 999),
                (a("K3"), 1000),
            ],
        );
        let none = |s: u16| (s, None);
        assert_eq!(
            got,
            vec![
                none(404),
                none(404),
                refused(),
                none(404),
                refused(),
                none(404)
            ]
        );
        assert_eq!(calls, 4);
    }

    #[test]
    fn an_ipv6_client_is_one_bucket_across_its_64() {
        let (got, calls) = limited(
            Rate::new(1, 2),
            OFF,
            None,
            &[
                (for_key("K1", "2001:db8:1:2::1"), 0),
                (for_key("K2", "2001:db8:1:2:aaaa::7"), 0),
                // A new address of the same /64: the same bucket.
                (for_key("K3", "2001:db8:1:2:ffff:1:2:3"), 0),
                // Another /64: its own.
                (for_key("K4", "2001:db8:1:3::1"), 0),
            ],
        );
        let statuses: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(statuses, vec![404, 404, 429, 404]);
        assert_eq!(calls, 3);
    }

    #[test]
    fn the_per_key_bucket_at_a_fixed_clock() {
        let (got, calls) = limited(
            OFF,
            Rate::new(2, 1),
            None,
            &[
                (for_key("K1", "192.0.2.1"), 0),
                (for_key("K1", "192.0.2.2"), 100),
                (for_key("K2", "192.0.2.2"), 100),
                (for_key("K1", "192.0.2.3"), 500),
            ],
        );
        assert_eq!(got, vec![(404, None), refused(), (404, None), (404, None)]);
        assert_eq!(calls, 3);
    }

    #[test]
    fn behind_a_proxy_its_own_entry_names_the_client() {
        let (got, calls) = limited(
            Rate::new(1, 1),
            OFF,
            Some("x-forwarded-for"),
            &[
                (via("6.6.6.6, 198.51.100.7"), 0),
                // The client's own entries change nothing: the proxy's (the last) is the same.
                (via("7.7.7.7, 198.51.100.7"), 0),
                (via("198.51.100.8"), 0),
                // No header: the socket peer (the proxy itself).
                (for_key("K1", "10.0.0.254"), 0),
            ],
        );
        assert_eq!(got, vec![(404, None), refused(), (404, None), (404, None)]);
        assert_eq!(calls, 3);
    }

    /// A proxy header's `IP:port` is the IP's bucket whatever the port (a client writing a
    /// new port each time gets no new bucket), and a value that is no address is the proxy's
    /// own bucket (the socket peer), never a fresh one.
    #[test]
    fn behind_a_proxy_a_port_or_garbage_is_no_new_identity() {
        let (got, calls) = limited(
            Rate::new(1, 2),
            OFF,
            Some("x-forwarded-for"),
            &[
                (via("198.51.100.7:1001"), 0),
                (via("198.51.100.7:1002"), 0),
                (via("6.6.6.6, 198.51.100.7:1003"), 0),
                (via("[2001:db8::1]:4711"), 0),
                (via("[2001:db8::2]:4712"), 0),
                (via("[2001:db8::3]:4713"), 0),
                (via("garbage-1"), 0),
                (via("198.51.100.7:port"), 0),
                (via("unknown"), 0),
                (for_key("K1", "10.0.0.254"), 0),
            ],
        );
        let statuses: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            statuses,
            vec![404, 404, 429, 404, 404, 429, 404, 404, 429, 429]
        );
        assert_eq!(calls, 6);
    }

    /// `cors_origins`: an allowed page gets its origin back (and `vary: origin`), any other
    /// origin, or none, gets no CORS grant; without the option every answer says `*`.
    #[test]
    fn cors_origins_narrow_the_grant_to_the_pages_named() {
        let answer = |relay: &Relay, method: &str, origin: Option<&str>| {
            let mut req = validate(&format!(r#"{{"key":"K-1","organization_id":"{ORG}"}}"#));
            req.method = method.into();
            if let Some(origin) = origin {
                req.headers.push(("Origin".into(), origin.into()));
            }
            relay.handle(&req, NOW)
        };
        let polar = |_: &HttpRequest| Ok(HttpResponse::new(404, r#"{"detail":"Not found"}"#));
        let any = relay_over(polar);
        for method in ["POST", "OPTIONS"] {
            let r = answer(&any, method, Some("https://evil.example"));
            assert_eq!(
                r.header("access-control-allow-origin"),
                Some("*"),
                "{method}"
            );
            assert_eq!(r.header("vary"), None);
        }

        let key = SigningKey::generate(Some("k1")).expect("a key");
        let mut config = RelayConfig::new(
            Server::Custom("http://127.0.0.1:9".into()),
            AccessToken::new("polar_oat_secret"),
            key,
        );
        config.cors_origins = Some(vec![
            "https://app.example.com".into(),
            "http://localhost:5173".into(),
        ]);
        let named = Relay::with_entropy(config, Box::new(polar), Box::new(|| Some([7; 16])))
            .expect("a relay");
        for method in ["POST", "OPTIONS"] {
            for origin in ["https://app.example.com", "http://localhost:5173"] {
                let r = answer(&named, method, Some(origin));
                assert_eq!(r.header("access-control-allow-origin"), Some(origin));
                assert_eq!(r.header("vary"), Some("origin"));
                let expose = r
                    .header("access-control-expose-headers")
                    .unwrap_or_default();
                assert!(method == "OPTIONS" || expose.contains("polar-license-lease"));
            }
            for origin in [
                Some("https://evil.example"),
                Some("https://app.example.com.evil"),
                None,
            ] {
                let r = answer(&named, method, origin);
                assert!(
                    !r.headers
                        .iter()
                        .any(|(k, _)| k.starts_with("access-control-")),
                    "{method} {origin:?}: {:?}",
                    r.headers
                );
                assert_eq!(r.header("vary"), Some("origin"));
            }
        }
        // The answer itself is unchanged: only the browser's permission to read it.
        assert_eq!(answer(&named, "POST", None).status, 404);

        for bad in [
            vec![],
            vec!["app.example.com".to_string()],
            vec!["https://app.example.com/".to_string()],
            vec!["https://app.example.com/path".to_string()],
            vec!["*".to_string()],
        ] {
            let mut config = RelayConfig::new(
                Server::Custom("http://127.0.0.1:9".into()),
                AccessToken::new("t"),
                SigningKey::generate(Some("k1")).expect("a key"),
            );
            config.cors_origins = Some(bad.clone());
            let transport = |_: &HttpRequest| Ok(HttpResponse::new(500, ""));
            let refused = Relay::with_entropy(config, Box::new(transport), Box::new(|| None));
            assert!(refused.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_configuration_is_refused() {
        let key = || SigningKey::generate(Some("k1")).expect("a key");
        let bad = [
            RelayConfig {
                lease_days: 0,
                ..RelayConfig::new(Server::Production, AccessToken::new("t"), key())
            },
            RelayConfig::new(Server::Production, AccessToken::new("has space"), key()),
            RelayConfig::new(
                Server::Custom("http://polar.example".into()),
                AccessToken::new("t"),
                key(),
            ),
            RelayConfig {
                organization_id: Some("not-a-uuid".into()),
                ..RelayConfig::new(Server::Production, AccessToken::new("t"), key())
            },
        ];
        for config in bad {
            let transport = |_: &HttpRequest| Ok(HttpResponse::new(500, ""));
            assert!(Relay::with_entropy(config, Box::new(transport), Box::new(|| None)).is_err());
        }
    }
}
