//! The relay itself ([`Relay`]): it composes its parts (the gate's limits, the verdict
//! store, the leases, the breaker, the operator's counters) and answers a request with them.
//! Every method of the relay is here; what each part does is the part's own.

use crate::clock::Now;
use crate::flow::{Asks, Moment, Upstream};
#[cfg(test)]
use crate::flow::{Exchange, ExchangeOptions, Given, Need};
use crate::host::Host;
use crate::leases::Leases;
use crate::limit::Buckets;
use crate::roster::RosterChange;
use crate::routes::{Door, Route, Target};
use crate::store::{Budget, Wants};
#[cfg(not(target_arch = "wasm32"))]
use crate::types::os_entropy;
use crate::types::{
    Entropy, Finished, Limits, OrgId, Pending, RelayConfig, RelayRequest, RelayResponse,
    FLIGHT_WAITS, MAX_LEASE_DAYS, USER_AGENT,
};
use polar_license::lease::{
    is_nonce, key_hash, prepare, signature_verifies, LeaseClaims, LEASE_HEADER, NONCE_HEADER,
};
use polar_license::proto::{Api, HttpResponse, Operation, Server};
#[cfg(test)]
use polar_license::TransportErrorKind;
use polar_license::{AccessToken, Error, Key, Transport, TransportError};
use polar_license_rules::CheckedBody;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::locked::locked;
use crate::stored::{Flight, Stored};
use crate::types::Holder;
use crate::types::{
    add_cors, breaker_refused, check_origin, invalid, machine_of, private, refuses_token,
    with_version, Call, Routed, SignWith, Unsigned, DUMMY_ORG, PASSED_HEADERS,
};

/// The relay: configuration, rate-limit state and the upstream transport. Share it between
/// threads behind an `Arc`; the machines ([`crate::flow::Exchange`], the one door) ask it
/// through `&self`.
pub struct Relay {
    token: AccessToken,
    base_url: String,
    organization_id: Option<String>,
    pub(crate) leases: Leases,
    pub(crate) limits: Limits,
    pub(crate) client_ip_header: Option<String>,
    per_ip: Mutex<Buckets>,
    pub(crate) per_key: Mutex<Buckets>,
    /// The native server's calls and lease ids (a host of its own gives the machine both).
    #[cfg_attr(
        not(all(feature = "server", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) transport: Box<dyn Transport>,
    #[cfg_attr(
        not(all(feature = "server", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) entropy: Entropy,
    pub(crate) store: Option<Stored>,
    cors_origins: Option<Vec<String>>,
    host: Host,
    /// The operator's counters (`GET /metrics`, `GET /healthz`).
    ops: Arc<crate::ops::Ops>,
    pub(crate) breaker: crate::breaker::Breaker,
    /// The seller's seat settings (issue #67, [`Relay::with_seats`]).
    pub(crate) seats: crate::seats::SeatOptions,
    /// The activations and deactivations let through per key (their churn limit, issue #67).
    pub(crate) churned: crate::seats::Churned,
    /// The seller's set-up checked in the background (issue #78,
    /// [`RelayConfig::check_setup_every`]); `None`: off.
    pub(crate) setup_watch: Option<crate::doctor::Watch>,
}

// Never the seller's token nor the signing key.
debug_some!(Relay, r => {
    "base_url": r.base_url,
    "organization_id": r.organization_id,
    "kid": r.leases.signer.kid(),
    "lease_seconds": r.leases.seconds,
    "limits": r.limits,
});

impl Relay {
    /// Keeps the roster in the host's storage (a Durable Object's, read per key), at most
    /// `cached` digests of it in memory: from now on [`Relay::roster_changes`] says what to
    /// save, [`Relay::roster_wants`] what to read. Nothing without a store or a roster.
    pub fn keep_roster_in_host(&self, cached: usize) {
        if let Some(s) = self.store.as_ref() {
            s.roster.keep_in_host(cached);
        }
    }

    /// The roster's changes since the last call, for the host to save in order.
    pub fn roster_changes(&self) -> Vec<RosterChange> {
        self.store
            .as_ref()
            .map(|s| s.roster.take_changes())
            .unwrap_or_default()
    }

    /// At start, the next page the host saved (`r:phase`; `0`: the roster was current, so it
    /// is not paged in again before its hourly relist, counted from `now`).
    pub fn roster_restore(&self, page: u32, now: Now) {
        if let Some(s) = self.store.as_ref() {
            s.roster.restore(page, now.monotonic_ms);
        }
    }

    /// The digest (hex, the storage key `r:<hex>`) of `req`'s license key that the host must
    /// read before the request is answered, when the roster is kept in the host and has not
    /// read it yet; else `None`.
    pub fn roster_wants(&self, req: &RelayRequest) -> Option<String> {
        self.roster_wants_of(&self.route_of(req))
    }

    /// [`Relay::roster_wants`] of a route read already: the digest of the key whose verdict
    /// it asks ([`Route::roster_key`]).
    pub(crate) fn roster_wants_of(&self, route: &Route) -> Option<String> {
        let roster = &self.store.as_ref()?.roster;
        roster.wants(route.roster_key()?)
    }

    /// What the host read of a digest [`Relay::roster_wants`] named: the organization's
    /// (`true`: the storage holds `r:<hex>`) or not.
    pub fn roster_load(&self, hex_digest: &str, known: bool) {
        if let Some(s) = self.store.as_ref() {
            s.roster.load(hex_digest, known);
        }
    }

    /// The parts a background read uses ([`crate::flow::background`]).
    pub(crate) fn reads(&self) -> crate::reads::Reads<'_> {
        crate::reads::Reads {
            store: self.store.as_ref(),
            breaker: &self.breaker,
            base_url: &self.base_url,
            organization_id: self.organization_id.as_deref(),
            token: &self.token,
            setup_watch: self.setup_watch.as_ref(),
        }
    }

    /// Reads the last webhook's time from the store again, for a host that restores the store
    /// after the relay is made (the npm relay's `restore`).
    pub fn reload_last_webhook(&self) {
        self.ops.reload_last_webhook(self.store.as_ref());
    }

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
        if secret.is_some_and(|s| !crate::store::webhook_secret_usable(s)) {
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
                crate::roster::FirstSeen::new(
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
            reserve: Mutex::new(crate::roster::Reserve::new(
                s.options.reserve.min(s.options.budget),
                s.options.budget_window_ms,
            )),
            budget_restored: std::sync::atomic::AtomicBool::new(false),
            refused: std::sync::atomic::AtomicU64::new(0),
            // On with an interval: the native server drives it, on Workers the host does.
            reconcile: crate::reconcile::Reconcile::new(s.options.reconcile_every > 0),
            seats_seen: crate::seats::Seen::default(),
            seats_live: crate::seats::Live::default(),
            #[cfg(feature = "entitlements")]
            entitled: crate::entitled::Entitled::new(s.options.entitlements),
            // Only with the `usage` feature (`relay serve`'s and the npm relay's wasm build it).
            usage: crate::usage::Usage::new(
                cfg!(feature = "usage") && s.options.usage,
                s.options.refuse_at_zero_credits,
            ),
            backend: s.backend,
            options: s.options,
            webhook_secret: s.webhook_secret,
            flights: Mutex::new(HashMap::new()),
            roster: crate::roster::Roster::new(roster_on),
            first_seen: Mutex::new(first_seen),
            revoked: Mutex::new(crate::stored::Revocations::default()),
            deliveries: crate::deliveries::Deliveries::default(),
            lifecycle: crate::lifecycle::Lifecycle::default(),
        });
        // What the relay's features need of the token, for its own set-up check.
        let setup_watch = crate::doctor::Watch::new(
            crate::doctor::Setup {
                base_url: base_url.clone(),
                token: config.access_token.clone(),
                organization_id: organization_id.clone(),
                benefit_ids: Vec::new(),
                relay_url: None,
                needs: crate::doctor::Needs {
                    store: store.is_some(),
                    webhooks: store.as_ref().is_some_and(|s| s.webhook_secret.is_some()),
                    entitlements: store.as_ref().is_some_and(|s| s.options.entitlements),
                    usage: store.as_ref().is_some_and(|s| s.usage.on()),
                },
            },
            config.check_setup_every,
        );
        let ops = Arc::new(crate::ops::Ops::new(config.webhook_silence));
        if let Some(s) = &store {
            ops.restore_last_webhook(s.backend.as_ref());
            s.backend.cap_bytes(s.options.max_bytes);
        }
        let transport = Box::new(crate::ops::Counted {
            inner: transport,
            ops: Arc::clone(&ops),
        });
        Ok(Relay {
            store,
            ops,
            breaker: crate::breaker::Breaker::new(config.breaker),
            token: config.access_token,
            base_url,
            organization_id,
            leases: Leases {
                signer: SignWith::of(config.signer)?,
                seconds: i64::from(config.lease_days) * 86_400,
            },
            limits: config.limits,
            client_ip_header: config.client_ip_header,
            per_ip: Mutex::new(Buckets::new(config.limits.per_ip)),
            per_key: Mutex::new(Buckets::new(config.limits.per_key)),
            transport,
            entropy,
            cors_origins: config.cors_origins,
            host: config.host,
            seats: crate::seats::SeatOptions::default(),
            churned: crate::seats::Churned::default(),
            setup_watch,
        })
    }

    /// The relay with the seller's seat settings (issue #67: a seat's life, pool sizes by
    /// benefit, the CI cap); refused when [`crate::SeatOptions::problem`] finds one.
    pub fn with_seats(mut self, seats: crate::seats::SeatOptions) -> Result<Relay, Error> {
        if let Some((field, why)) = seats.problem() {
            return Err(Error::invalid(field, why));
        }
        self.seats = seats;
        Ok(self)
    }

    /// For test suites only: a seat's life of `seconds` (1 to 3,600), under the 30 s that
    /// [`crate::SeatOptions::problem`] allows a seller, so that a suite waits out a vanished
    /// holder's seat in a few seconds, not 30 (`relay serve` takes it from
    /// `POLAR_LICENSE_RELAY_TEST_ONLY_SEAT_SECONDS`, the npm relay from
    /// `seats.testOnlySeconds`). A life this short would cull a real client's seat between two
    /// heartbeats over a slow network: never for production.
    #[doc(hidden)]
    pub fn with_test_only_seat_seconds(mut self, seconds: u32) -> Result<Relay, Error> {
        if !(1..=3_600).contains(&seconds) {
            return Err(Error::invalid(
                "test_only_seat_seconds",
                "must be 1 to 3600 seconds",
            ));
        }
        log::warn!("relay: a seat's life of {seconds} s, for tests only");
        self.seats.seconds = seconds;
        Ok(self)
    }

    /// For test suites and benchmarks only: Polar's budget window (the store's budget, its
    /// reserve and the roster's first-seen share: [`crate::store::StoreOptions::budget_window_ms`])
    /// of `seconds` (1 to 3,600) instead of Polar's minute, so that a run facing an emulator
    /// whose token window is scaled down (its `token_window`) spends and regains the budget as
    /// fast as that Polar does (`relay serve` takes it from
    /// `POLAR_LICENSE_RELAY_TEST_ONLY_BUDGET_SECONDS`, the npm relay from
    /// `store.testOnlyBudgetSeconds`). Against Polar itself a window not its minute lets the
    /// relay spend past Polar's budget (429s) or leave it unused: never for production. Without
    /// a store, it changes nothing.
    #[doc(hidden)]
    pub fn with_test_only_budget_seconds(mut self, seconds: u32) -> Result<Relay, Error> {
        if !(1..=3_600).contains(&seconds) {
            return Err(Error::invalid(
                "test_only_budget_seconds",
                "must be 1 to 3600 seconds",
            ));
        }
        log::warn!("relay: a budget window of {seconds} s, not Polar's minute, for tests only");
        if let Some(s) = self.store.as_mut() {
            let window_ms = u64::from(seconds) * 1_000;
            s.options.budget_window_ms = window_ms;
            // As `new` builds them, with the window given.
            s.budget = Mutex::new(Budget::with_window(
                s.options.budget,
                s.options.reserve,
                window_ms,
            ));
            s.reserve = Mutex::new(crate::roster::Reserve::new(
                s.options.reserve.min(s.options.budget),
                window_ms,
            ));
            s.first_seen = Mutex::new(crate::roster::FirstSeen::new(
                s.options.budget,
                s.options.first_seen_share,
                window_ms,
            ));
        }
        Ok(self)
    }

    /// Writes the seat pools' ends held in the relay's memory since their last snapshot
    /// (heartbeats are kept there between snapshots): a host calls it when it stops cleanly,
    /// so that a restart loses no heartbeat (a crash loses at most
    /// [`SNAPSHOT_SECONDS`](crate::SNAPSHOT_SECONDS) of them). The native server calls it.
    pub fn flush_seats(&self, now: Now) {
        if let Some(s) = &self.store {
            let n = s.seats_live.flush(s.backend.as_ref(), now.unix_seconds);
            if n > 0 {
                log::info!("relay: {n} seat pools written at the stop");
            }
        }
    }

    /// What this relay serves, as a route's parse reads it ([`Route::parse`]).
    pub(crate) fn door(&self) -> Door<'_> {
        let store = self.store.as_ref();
        Door {
            seats: store.filter(|_| self.seats.enabled).map(|_| &self.seats),
            usage: store
                .filter(|s| s.usage.on())
                .map(|s| s.options.usage_events.as_deref()),
            webhook: store.is_some_and(|s| s.webhook_secret.is_some()),
            max_body: self.limits.max_body_bytes,
            organization: self.organization_id.as_deref(),
        }
    }

    /// `req` read into its route ([`Route::parse`]: the one place a request is read).
    pub(crate) fn route_of(&self, req: &RelayRequest) -> Route {
        Route::parse(req, &self.door())
    }

    /// The relay's answer to `req` when its host failed around the core (a request it could
    /// not read, its own fault): [`crate::host::failure`] with this relay's CORS origins.
    pub fn failure(&self, req: &RelayRequest, status: u16, detail: &str) -> RelayResponse {
        crate::host::failure(status, detail, self.cors_origins.as_deref(), req)
    }

    /// The Polar base URL asked.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The unit tests' relay of `config` whose transport is never called (a machine's host
    /// sends), its leases' ids from `[7; 16]`.
    #[cfg(test)]
    #[allow(clippy::expect_used, clippy::panic)] // tests: a panic is the failure report
    pub(crate) fn never_calling(config: RelayConfig) -> Relay {
        let never = |_: &polar_license::HttpRequest| -> Result<HttpResponse, TransportError> {
            panic!("the machines' host calls Polar, never the relay's transport")
        };
        Relay::with_entropy(config, Box::new(never), Box::new(|| Some([7; 16]))).expect("a relay")
    }

    /// The limits in force.
    #[cfg(test)]
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// The crate's unit tests' blocking host (the integration tests' is `Relayed` in
    /// tests/rig): one request through the request machine ([`crate::flow::Exchange`]), a
    /// call to Polar made through the relay's transport and waited for (no stale answer), a
    /// wait for another check's call blocking on its flight.
    #[cfg(test)]
    pub(crate) fn handle(&self, req: &RelayRequest, now: Now) -> RelayResponse {
        let options = ExchangeOptions::default();
        let head = RelayRequest {
            body: Vec::new(),
            ..req.clone()
        };
        let mut exchange = Exchange::new(head, options);
        let mut answer = None;
        loop {
            let given = match exchange.want(self, now, (self.entropy)()) {
                Need::Body { max } => Given::Body(req.body[..req.body.len().min(max)].to_vec()),
                Need::Load(_) => Given::Loaded,
                Need::Flight { flight, .. } => {
                    self.wait_flight(&flight);
                    Given::Landed
                }
                Need::Send {
                    request, method, ..
                } => Given::Upstream(crate::host::send(&*self.transport, &request, method)),
                // The calling thread is the slot.
                Need::Slot { .. } => Given::Slot,
                // Never asked: no patience is given, so no call goes on past its check.
                Need::Call => Given::Upstream(Err(TransportError::new(
                    TransportErrorKind::Other,
                    "no call under way",
                ))),
                // The relay signs its own leases natively; a lease it cannot sign goes without.
                Need::Sign(_) => Given::Signature(Vec::new()),
                Need::Persist => Given::Persisted(true),
                Need::Landed(_) => continue,
                log @ (Need::Warn(_) | Need::Error(_)) => {
                    log.log();
                    continue;
                }
                Need::Respond(r) => {
                    answer = Some(r);
                    continue;
                }
                Need::Done => break,
            };
            exchange.give(given);
        }
        answer.unwrap_or_else(|| RelayResponse::unreached("the relay could not answer"))
    }

    /// Blocks until the call for the entry `flight` (its hex id, as a [`crate::flow::Need::Flight`] names it)
    /// lands, at most 30 s; at once when there is none under way.
    #[cfg(test)]
    fn wait_flight(&self, flight: &str) {
        if let Some(f) = self.flight(flight) {
            f.wait();
        }
    }

    /// The call under way for the entry `flight` (its hex id, as a [`crate::flow::Need::Flight`] names it);
    /// `None` when none is (it landed, or there is no store).
    #[cfg_attr(
        not(all(feature = "server", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) fn flight(&self, flight: &str) -> Option<Arc<Flight>> {
        let s = self.store.as_ref()?;
        let flights = locked(&s.flights);
        flights
            .iter()
            .find(|(id, _)| crate::store::hex_id(id) == flight)
            .map(|(_, f)| Arc::clone(f))
    }

    /// Every check of a request [`Asks::admit`] let through, its route's ([`Part::begin`]),
    /// after `waited` waits for another check's call of the same entry (after
    /// [`FLIGHT_WAITS`] it no longer waits and asks Polar itself, so no host answers a 502 of
    /// its own): the answer, or the call to make.
    pub(crate) fn begin_admitted(
        &self,
        req: &RelayRequest,
        route: &Route,
        now: Now,
        entropy: Option<[u8; 16]>,
        waited: u32,
    ) -> Routed {
        match route.part().begin(self, req, now, waited, &move || entropy) {
            Routed::Answer(mut r) => {
                add_cors(&mut r);
                Routed::Answer(r)
            }
            routed => routed,
        }
    }

    /// A request past its local checks, through the store (or, without one, the per-key limit
    /// and the breaker): the answer, the call, or the wait. The per-key limit is taken there
    /// when `per_key` (`false`: the route took it already, a usage report's).
    pub(crate) fn route_pending(
        &self,
        pending: Pending,
        now: Now,
        waited: u32,
        entropy: &dyn Fn() -> Option<[u8; 16]>,
        per_key: bool,
    ) -> Routed {
        let may_wait = waited < FLIGHT_WAITS;
        let limited = per_key;
        match &self.store {
            Some(s) => {
                let per_key = |p: &Pending| {
                    if limited {
                        self.per_key_limit(p, now)
                    } else {
                        None
                    }
                };
                let around = crate::verdicts::Around {
                    leases: &self.leases,
                    breaker: &self.breaker,
                    per_key: &per_key,
                };
                s.routed(&around, pending, now, may_wait, entropy)
            }
            None => {
                if let Some(r) = limited.then(|| self.per_key_limit(&pending, now)).flatten() {
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
    pub(crate) fn per_key_limit(&self, pending: &Pending, now: Now) -> Option<RelayResponse> {
        let key_id = bucket_of(&OrgId::checked(&pending.checked), &pending.key);
        if matches!(pending.op, Operation::Activate | Operation::Deactivate) {
            let churn = self.seats.activation_churn();
            // The stored record (it outlives a restart, a Durable Object out of memory), and
            // the relay's memory (a host-loaded store may not have read the pool): the later
            // wait of the two.
            let stored = self.store.as_ref().and_then(|s| {
                crate::seats::activation_churned(
                    s.backend.as_ref(),
                    &s.seats_live,
                    &OrgId::checked(&pending.checked),
                    &pending.key,
                    churn,
                    now.unix_seconds,
                )
            });
            let remembered = self.churned.check(&key_id, churn, now.unix_seconds).err();
            if let Some(next) = stored.max(remembered) {
                log::info!(
                    "relay: {} {} 429 (churn: {} activations and deactivations in {} s)",
                    pending.op.as_str(),
                    crate::logged::key(&pending.key),
                    churn.count,
                    churn.window
                );
                return Some(crate::seats::churned(
                    "ActivationChurn",
                    "too many activations and deactivations of this key: wait for retry-after",
                    next.saturating_sub(now.unix_seconds),
                ));
            }
        }
        if pending.op == Operation::Activate {
            // Seats held plus the key's activations within what was sold (issue #67).
            if let Some(s) = &self.store {
                if let Some(r) = crate::seats::refuses_activation(
                    s.backend.as_ref(),
                    &s.seats_live,
                    &OrgId::checked(&pending.checked),
                    &pending.key,
                    now.unix_seconds,
                ) {
                    return Some(r);
                }
            }
        }
        let secs = take(&self.per_key, &key_id, now)?;
        log::info!(
            "relay: {} {} 429 (key over its rate)",
            pending.op.as_str(),
            crate::logged::key(&pending.key)
        );
        Some(RelayResponse::rate_limited(secs))
    }

    /// The per-IP bucket: 429 when `req`'s client is over its rate, else its token taken.
    /// `what`: the operation, or `preflight` (a CORS preflight takes a token as any request
    /// does, so that preflights alone cannot hold the relay's connections for free).
    fn per_ip_limit(&self, req: &RelayRequest, what: &str, now: Now) -> Option<RelayResponse> {
        let client = crate::roster::client_group(&self.client_of(req));
        let secs = take(&self.per_ip, &client, now)?;
        log::info!(
            "relay: {} 429 (client {} over its rate)",
            what,
            crate::logged::escaped(&client)
        );
        Some(RelayResponse::rate_limited(secs))
    }

    /// The call a route's checked body asks (`op` of `checked`, made on `req`'s head: its
    /// client, its version, its nonce), held with its `route`; or the refusal of a call that
    /// cannot be made of it.
    pub(crate) fn pending(
        &self,
        op: Operation,
        checked: &CheckedBody,
        req: &RelayRequest,
        route: Route,
    ) -> Result<Pending, RelayResponse> {
        let client = crate::roster::client_group(&self.client_of(req));
        let key = Key::new(checked.key.clone());
        let call = match Call::of(op, checked) {
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
            checked: checked.clone(),
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
            route: Box::new(route),
            read: false,
        })
    }

    /// The per-IP limit's identity: the address in the configured proxy header's last entry
    /// (its port stripped), else the peer; a value that is no address is the peer's (the
    /// proxy's) own ([`crate::address::client_address`]).
    pub(crate) fn client_of(&self, req: &RelayRequest) -> String {
        let header = self
            .client_ip_header
            .as_deref()
            .and_then(|name| req.header(name));
        crate::address::client_address(header, self.host.peer(req))
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

    /// Polar's answer to a verdict's call (or why there is none) kept in the store and passed
    /// back, with a lease on a grant (signed here, or to be signed elsewhere).
    pub(crate) fn verdict_of(&self, pending: &Pending, upstream: Upstream, at: Moment) -> Finished {
        let Moment { now, entropy } = at;
        let seen = self
            .store
            .as_ref()
            .map(|_| crate::stored::Seen::of(&upstream));
        let (mut response, mut unsigned, holder) = self.answer(pending, upstream, now, entropy);
        if let (Some(s), Some(seen)) = (&self.store, seen) {
            let seen = seen.held_by(holder);
            s.keep(
                &self.leases,
                pending,
                seen,
                now,
                entropy,
                &mut response,
                &mut unsigned,
            );
        }
        add_cors(&mut response);
        Finished { response, unsigned }
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
            // The setting named as the seller wrote it: `relay serve`'s option, or the npm
            // relay's `createRelay` option (a Worker's binding feeds the same option).
            let setting = match self.host {
                Host::Native => "--access-token (POLAR_ACCESS_TOKEN)",
                Host::Fetch | Host::Workers => "createRelay's accessToken",
            };
            log::error!(
                "relay: Polar refused the relay's access token ({}): check {setting} and its \
                 license_keys:write scope; answering 502",
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
        let verified_at = now.unix_seconds;
        let granted = self
            .leases
            .grant(op, checked, call, &upstream, now, verified_at, entropy);
        #[cfg_attr(not(feature = "entitlements"), allow(unused_mut))]
        let (mut lease, holder) = match granted {
            Ok((lease, holder)) => (pending.claims(lease), holder),
            Err(why) => {
                log::info!(
                    "relay: {} {} {} (no lease: {why})",
                    op.as_str(),
                    crate::logged::key(key),
                    upstream.status
                );
                // Why the key stopped, beside Polar's denial (crate::lifecycle).
                let stop = self
                    .store
                    .as_ref()
                    .and_then(|s| s.lifecycle.denied(s.backend.as_ref(), pending, &upstream));
                crate::lifecycle::tell(&mut r, stop);
                let denial = self.leases.denial(
                    checked,
                    call,
                    &upstream,
                    now,
                    pending.nonce.as_deref(),
                    entropy,
                );
                let denial = crate::lifecycle::signed(denial, stop);
                return match denial {
                    Some(denial) => {
                        let (r, unsigned) = self.leases.sign_denial(pending, r, &denial, false);
                        (r, unsigned, None)
                    }
                    None => (r, None, None),
                };
            }
        };
        #[cfg(feature = "entitlements")]
        if let Some(s) = &self.store {
            let nonce = pending.nonce.as_deref();
            s.entitled
                .sign_in(&mut lease, &holder, nonce, now, &s.options);
        }
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
        let signed = match &self.leases.signer {
            SignWith::Key(signing_key) => {
                signing_key.sign(lease, machine.as_deref()).map(|token| {
                    r.set(LEASE_HEADER, &token);
                    log::info!(
                        "relay: {} {} 200 (lease {} until {})",
                        op.as_str(),
                        crate::logged::key(key),
                        lease.id,
                        crate::logged::instant(lease.expires_at)
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
                        crate::logged::instant(lease.expires_at)
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
}

/// What the machines ask of the relay ([`crate::flow::Core`]): each answered by the part that
/// owns it, most through the relay's own methods of the same name. (Its steps are the crate's
/// own: the trait is sealed, see [`Asks`].)
#[allow(private_interfaces)]
impl Asks for Relay {
    fn health(&self, now: Now) -> RelayResponse {
        let setup = self.setup_watch.as_ref().map(crate::doctor::Watch::reading);
        self.ops
            .health(self.store.as_ref(), &self.breaker, setup, now)
    }

    fn metrics(&self, now: Now) -> String {
        self.ops.metrics(self.store.as_ref(), &self.breaker, now)
    }

    fn count_in_flight(&self, delta: i64) {
        self.ops.count_in_flight(delta);
    }

    fn count_answer(&self, req: &RelayRequest, r: &RelayResponse, now: Now) {
        self.ops.count_answer(req, r, now);
    }

    fn count_call(&self, outcome: &Upstream) {
        self.ops.count_call(outcome);
    }

    fn watch_webhooks(&self, now: Now) -> (Option<String>, Option<u64>) {
        self.ops.watch_webhooks(self.store.as_ref(), now)
    }

    /// The answer to `req` that its head decides alone, before its body is read (the body
    /// is ignored), else `None`: on [`WEBHOOK_ROUTE`] with a store and a webhook secret, a
    /// delivery from an address over its failed verifications (429) or whose headers are
    /// refused with no HMAC (400, 401; counted as a failure), the answers the route itself
    /// gives them (the relay's `deliveries` module). A host that reads the body before the core sees
    /// the request (the npm relay: up to 1 MiB for a webhook) asks this first, so a forged
    /// post's body costs no read. Every other request: `None`.
    fn refuse_unread(&self, req: &RelayRequest, target: Target, now: Now) -> Option<RelayResponse> {
        if target != Target::Webhook || req.method != "POST" {
            return None;
        }
        let s = self.store.as_ref()?;
        let secret = s.webhook_secret.as_deref()?;
        let client = crate::roster::client_group(&self.client_of(req));
        let mut r = s
            .deliveries
            .refuse_unread(secret, &client, req, now.unix_seconds)?;
        add_cors(&mut r);
        Some(r)
    }

    fn max_body_bytes(&self) -> usize {
        self.limits.max_body_bytes
    }

    /// The per-IP limit, which the request machine asks before anything is loaded from a
    /// host-kept store (the npm relay over a Durable Object's storage), so that a flood of
    /// requests past it costs no storage read. `Some` (429, with `Retry-After`) when the client
    /// is over its rate; otherwise its token is taken (`None`, also for a request the limit does
    /// not concern) and the request goes on with [`Relay::begin_admitted`], which does not take
    /// it again, also after waits.
    fn admit(&self, req: &RelayRequest, route: &Route, now: Now) -> Option<RelayResponse> {
        let mut r = self.per_ip_limit(req, route.what()?, now)?;
        add_cors(&mut r);
        Some(r)
    }

    fn cors(&self, req: &RelayRequest, r: &mut RelayResponse) {
        crate::host::narrow_cors(self.cors_origins.as_deref(), req, r);
    }

    fn host(&self) -> Host {
        self.host
    }

    fn host_loads(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.backend.host_loads())
    }

    fn route(&self, req: &RelayRequest) -> Route {
        self.route_of(req)
    }

    fn store_wants(&self, req: &RelayRequest, route: &Route, now_unix: i64) -> Option<Wants> {
        self.store.as_ref()?;
        route.part().wants(self, req, now_unix)
    }

    fn roster_wants(&self, route: &Route) -> Option<String> {
        self.roster_wants_of(route)
    }

    fn begin_admitted(&self, req: &RelayRequest, route: &Route, at: Moment, waited: u32) -> Routed {
        Relay::begin_admitted(self, req, route, at.now, at.entropy, waited)
    }

    fn still_allows(&self, pending: &Pending) -> bool {
        self.breaker.still_allows(pending.ticket)
    }

    fn stale_answer(&self, pending: &Pending, at: Moment) -> Option<Finished> {
        let s = self.store.as_ref()?;
        let f = s.stale_answer(&self.leases, pending, at.now, at.entropy)?;
        Some(pending.route.part().settle(self, f, at))
    }

    fn give_back(&self, now: Now) {
        if let Some(s) = &self.store {
            s.give_back(now);
        }
    }

    fn finish_made(
        &self,
        pending: &Pending,
        upstream: Upstream,
        at: Moment,
        made: bool,
    ) -> Finished {
        if made {
            self.breaker.record(&upstream, pending.ticket, at.now);
        }
        pending.route.part().finish(self, pending, upstream, at)
    }

    /// The answer with the externally made signature of [`Finished::pre_auth`]: the lease is
    /// added only when it verifies with the signer's public key (`true`); otherwise the answer
    /// goes without one, and an error is logged.
    fn assemble(&self, finished: Finished, signature: &[u8]) -> (RelayResponse, bool) {
        let Finished {
            mut response,
            unsigned,
        } = finished;
        let Some((unsigned, machine)) = unsigned else {
            return (response, false);
        };
        let keys = match &self.leases.signer {
            SignWith::External { keys, .. } => keys.clone(),
            SignWith::Key(key) => key.relay_keys(),
        };
        match unsigned.assemble(signature) {
            Ok(token) if signature_verifies(&token, &keys, machine.as_deref()) => {
                response.set(unsigned.header(), &token);
                (response, true)
            }
            _ => {
                log::error!(
                    "relay: a lease's signature does not verify with the public key of {}: \
                     answered without a lease (is the signing key the configured one?)",
                    self.leases.signer.kid()
                );
                (response, false)
            }
        }
    }

    fn follows(
        &self,
        req: &RelayRequest,
        route: &Route,
        answer: &RelayResponse,
        at: Moment,
    ) -> Option<Result<Box<Pending>, Finished>> {
        route.part().follow(self, req, answer, at)
    }

    fn reads(&self) -> crate::reads::Reads<'_> {
        Relay::reads(self)
    }
}

/// A key's id in the per-key buckets and the churn count: its organization and its SHA-256.
pub(crate) fn bucket_of(organization_id: &OrgId, key: &Key) -> String {
    [organization_id.as_str(), ":", &key_hash(key)].concat()
}

pub(crate) fn take(buckets: &Mutex<Buckets>, id: &str, now: Now) -> Option<u64> {
    // A poisoned lock (a panic elsewhere) still holds usable counts.
    let mut guard = locked(buckets);
    guard.take(id, now.monotonic_ms)
}

#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::clock::at;
    use crate::limit::Rate;
    use polar_license::lease::SigningKey;
    use polar_license::proto::HttpRequest;
    use polar_license::TransportError;
    use std::sync::Arc;

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";

    fn relay_over(
        transport: impl Fn(&HttpRequest) -> Result<HttpResponse, TransportError> + Send + Sync + 'static,
    ) -> Relay {
        Relay::with_entropy(
            RelayConfig::for_tests(),
            Box::new(transport),
            Box::new(|| Some([7; 16])),
        )
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

    const NOW: Now = crate::clock::at(0);

    #[test]
    fn it_asks_the_token_twin_with_the_token_and_the_checked_body() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let relay = relay_over(move |req: &HttpRequest| {
            locked(&log).push(req.clone());
            Ok(
                HttpResponse::new(404, r#"{"error":"ResourceNotFound","detail":"Not found"}"#)
                    .with_header("content-type", "application/json"),
            )
        });
        let body = format!(r#"{{"key":"K-1","organization_id":"{ORG}","increment_usage":"2"}}"#);
        let r = relay.handle(&validate(&body), NOW);
        assert_eq!((r.status, r.lease()), (404, None));
        let seen = locked(&seen);
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
            *locked(&count) += 1;
            Ok(HttpResponse::new(
                404,
                r#"{"error":"ResourceNotFound","detail":"Not found"}"#,
            ))
        };
        let mut config = RelayConfig::for_tests();
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
        let calls = *locked(&calls);
        (got, calls)
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

    /// One case of the rate limits: a relay limited `per_ip` and `per_key` (the client named
    /// by `ip_header` when given), asked `reqs` (each at its clock in ms), answers `statuses`
    /// (every 429 with `retry-after: 1`, nothing else with one) and makes `calls` calls.
    struct LimitCase {
        what: &'static str,
        per_ip: Rate,
        per_key: Rate,
        ip_header: Option<&'static str>,
        reqs: Vec<(RelayRequest, u64)>,
        statuses: Vec<u16>,
        calls: u32,
    }

    #[test]
    fn the_rate_limits_at_a_fixed_clock() {
        let a = |key: &str| for_key(key, "192.0.2.1");
        let cases = [
            LimitCase {
                what: "the per-IP bucket",
                per_ip: Rate::new(1, 2),
                per_key: OFF,
                ip_header: None,
                reqs: vec![
                    (a("K1"), 0),
                    (a("K2"), 0),
                    (a("K3"), 0),
                    (for_key("K3", "192.0.2.2"), 0),
                    (a("K3"), 999),
                    (a("K3"), 1000),
                ],
                statuses: vec![404, 404, 429, 404, 429, 404],
                calls: 4,
            },
            LimitCase {
                what: "an IPv6 client is one bucket across its /64",
                per_ip: Rate::new(1, 2),
                per_key: OFF,
                ip_header: None,
                reqs: vec![
                    (for_key("K1", "2001:db8:1:2::1"), 0),
                    (for_key("K2", "2001:db8:1:2:aaaa::7"), 0),
                    // A new address of the same /64: the same bucket.
                    (for_key("K3", "2001:db8:1:2:ffff:1:2:3"), 0),
                    // Another /64: its own.
                    (for_key("K4", "2001:db8:1:3::1"), 0),
                ],
                statuses: vec![404, 404, 429, 404],
                calls: 3,
            },
            LimitCase {
                what: "the per-key bucket",
                per_ip: OFF,
                per_key: Rate::new(2, 1),
                ip_header: None,
                reqs: vec![
                    (for_key("K1", "192.0.2.1"), 0),
                    (for_key("K1", "192.0.2.2"), 100),
                    (for_key("K2", "192.0.2.2"), 100),
                    (for_key("K1", "192.0.2.3"), 500),
                ],
                statuses: vec![404, 429, 404, 404],
                calls: 3,
            },
            LimitCase {
                what: "behind a proxy, its own entry names the client",
                per_ip: Rate::new(1, 1),
                per_key: OFF,
                ip_header: Some("x-forwarded-for"),
                reqs: vec![
                    (via("6.6.6.6, 198.51.100.7"), 0),
                    // The client's own entries change nothing: the proxy's (the last) is the
                    // same.
                    (via("7.7.7.7, 198.51.100.7"), 0),
                    (via("198.51.100.8"), 0),
                    // No header: the socket peer (the proxy itself).
                    (for_key("K1", "10.0.0.254"), 0),
                ],
                statuses: vec![404, 429, 404, 404],
                calls: 3,
            },
            // A proxy header's `IP:port` is the IP's bucket whatever the port (a client
            // writing a new port each time gets no new bucket), and a value that is no address
            // is the proxy's own bucket (the socket peer), never a fresh one.
            LimitCase {
                what: "behind a proxy, a port or garbage is no new identity",
                per_ip: Rate::new(1, 2),
                per_key: OFF,
                ip_header: Some("x-forwarded-for"),
                reqs: vec![
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
                statuses: vec![404, 404, 429, 404, 404, 429, 404, 404, 429, 429],
                calls: 6,
            },
        ];
        for case in cases {
            let (got, calls) = limited(case.per_ip, case.per_key, case.ip_header, &case.reqs);
            let want: Vec<(u16, Option<String>)> = case
                .statuses
                .iter()
                .map(|&s| (s, (s == 429).then(|| "1".to_string())))
                .collect();
            assert_eq!(got, want, "{}", case.what);
            assert_eq!(calls, case.calls, "{}", case.what);
        }
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

        let mut config = RelayConfig::for_tests();
        config.cors_origins = Some(vec![
            "https://app.example.com".into(),
            "http://localhost:5173".into(),
        ]);
        // Every request here comes from one client at one instant: preflights take their
        // token as posts do, and this test is about the origins, not the rate.
        config.limits.per_ip = crate::limit::Rate::new(0, 0);
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
            let mut config = RelayConfig::for_tests();
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

#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod test_only_budget {
    use crate::store::{StoreOptions, Use};

    /// The test-only budget window: refused outside 1 to 3,600 s; given, the budget spent in
    /// it is whole again after that window, where Polar's minute would still hold it.
    #[test]
    fn a_test_only_budget_window_is_bounded_and_replaces_polars_minute() {
        let options = || StoreOptions {
            budget: 4,
            reserve: 1,
            ..StoreOptions::default()
        };
        let relay = || crate::roster::tests::relay_with(options());
        for bad in [0, 3_601] {
            assert!(
                relay().with_test_only_budget_seconds(bad).is_err(),
                "{bad} s"
            );
        }
        let spent_then = |r: &super::Relay, later_ms: u64| {
            let s = r.store.as_ref().expect("a store");
            let mut budget = s.budget.lock().expect("the budget");
            while budget.take(0, Use::Reserved).is_ok() {}
            budget.take(later_ms, Use::Reserved).is_ok()
        };
        let short = relay()
            .with_test_only_budget_seconds(2)
            .expect("2 s is allowed");
        assert_eq!(
            short
                .store
                .as_ref()
                .expect("a store")
                .options
                .budget_window_ms,
            2_000
        );
        assert!(spent_then(&short, 2_001), "the 2 s window over");
        assert!(
            !spent_then(&relay(), 2_001),
            "Polar's minute still holds it"
        );
    }
}
