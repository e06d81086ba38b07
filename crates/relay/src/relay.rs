//! The relay itself ([`Relay`]): it composes its parts (the gate's limits, the verdict
//! store, the leases, the breaker, the operator's counters) and answers a request with them.
//! Every method of the relay is here; what each part does is the part's own.

use crate::clock::Now;
use crate::flow::{Asks, Moment, Upstream};
use crate::leases::Leases;
use crate::limit::Buckets;
use crate::pending::Pending;
use crate::route::target::Target;
use crate::route::Route;
use crate::store::layout::RosterChange;
use crate::store::{Budget, Wants};
#[cfg(not(target_arch = "wasm32"))]
use crate::types::os_entropy;
use crate::types::Host;
use crate::types::{
    Entropy, Finished, Limits, RelayConfig, RelayRequest, RelayResponse, MAX_LEASE_DAYS,
};
use polar_license::lease::signature_verifies;
use polar_license::proto::Api;
use polar_license::{AccessToken, Error, Transport};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::locked::locked;
use crate::pending::Routed;
use crate::stored::{Flight, Stored};
use crate::types::{add_cors, check_origin, SignWith, DUMMY_ORG};

/// The relay: configuration, rate-limit state and the upstream transport. Share it between
/// threads behind an `Arc`; the machines ([`crate::flow::Exchange`], the one door) ask it
/// through `&self`.
pub struct Relay {
    token: AccessToken,
    base_url: String,
    pub(crate) organization_id: Option<String>,
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
    pub(crate) setup_watch: Option<crate::doctor::watch::Watch>,
    /// Install analytics (issue #80, [`Relay::with_analytics`]); off by default.
    pub(crate) analytics: crate::analytics::Analytics,
    /// The products a checkout may be made of, and the success URLs' origins (issue #80,
    /// [`Relay::with_checkouts`]); none: the checkout route is off.
    pub(crate) checkouts: crate::checkouts::CheckoutOptions,
    /// When each activation was last seen, and its retirement (issue #80, crate::last_seen).
    pub(crate) last_seen: crate::last_seen::LastSeen,
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
    pub(crate) fn keep_roster_in_host(&self, cached: usize) {
        if let Some(s) = self.store.as_ref() {
            s.roster.keep_in_host(cached);
        }
    }

    /// The roster's changes since the last call, for the host to save in order.
    pub(crate) fn roster_changes(&self) -> Vec<RosterChange> {
        self.store
            .as_ref()
            .map(|s| s.roster.take_changes())
            .unwrap_or_default()
    }

    /// At start, the next page the host saved (`r:phase`; `0`: the roster was current, so it
    /// is not paged in again before its hourly relist, counted from `now`).
    pub(crate) fn roster_restore(&self, page: u32, now: Now) {
        if let Some(s) = self.store.as_ref() {
            s.roster.restore(page, now.monotonic_ms);
        }
    }

    /// The digest (hex, the storage key `r:<hex>`) of `req`'s license key that the host must
    /// read before the request is answered, when the roster is kept in the host and has not
    /// read it yet; else `None`.
    pub(crate) fn roster_wants(&self, req: &RelayRequest) -> Option<String> {
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
    pub(crate) fn roster_load(&self, hex_digest: &str, known: bool) {
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
            analytics: &self.analytics,
            last_seen: &self.last_seen,
        }
    }

    /// Reads the last webhook's time from the store again, for a host that restores the store
    /// after the relay is made (the npm relay's `restore`).
    pub(crate) fn reload_last_webhook(&self) {
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
        if config.retire_unseen_days > crate::last_seen::MAX_RETIRE_UNSEEN_DAYS {
            return Err(Error::invalid(
                "retire_unseen_days",
                "must be 0 (never) to 3650 days",
            ));
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
        let setup_watch = crate::doctor::watch::Watch::new(
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
            analytics: crate::analytics::Analytics::default(),
            checkouts: crate::checkouts::CheckoutOptions::default(),
            last_seen: crate::last_seen::LastSeen::new(
                config.retire_unseen_days,
                crate::last_seen::DEFAULT_MAX_RECORDS,
            ),
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

    /// The relay with the seller's install analytics (issue #80, [`crate::analytics`]: off by
    /// default); refused when [`crate::analytics::AnalyticsOptions::problem`] finds one.
    pub fn with_analytics(
        mut self,
        options: crate::analytics::AnalyticsOptions,
    ) -> Result<Relay, Error> {
        if let Some((field, why)) = options.problem() {
            return Err(Error::invalid(field, why));
        }
        self.analytics = crate::analytics::Analytics::new(options);
        Ok(self)
    }

    /// What the install analytics counted so far, and the state it holds (the installs kept
    /// for today, the events waiting): what its bounds are tested by.
    pub fn analytics_counts(&self) -> (crate::analytics::AnalyticsCounts, (usize, usize)) {
        (self.analytics.counts(), self.analytics.held())
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

    /// The relay's answer to `req` when its host failed around the core (a request it could
    /// not read, its own fault): [`crate::types::failure`] with this relay's CORS origins.
    pub(crate) fn failure(&self, req: &RelayRequest, status: u16, detail: &str) -> RelayResponse {
        crate::types::failure(status, detail, self.cors_origins.as_deref(), req)
    }

    /// The Polar base URL asked.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The call under way for the entry `flight` (its hex id, as a [`crate::flow::Need::Flight`]
    /// names it); `None` when none is (it landed, or there is no store).
    #[cfg_attr(
        not(all(feature = "server", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) fn flight(&self, flight: &str) -> Option<Arc<Flight>> {
        let s = self.store.as_ref()?;
        let flights = locked(&s.flights);
        flights
            .iter()
            .find(|(id, _)| crate::ids::hex_id(id) == flight)
            .map(|(_, f)| Arc::clone(f))
    }
}

/// What the machines ask of the relay ([`crate::flow::Core`]): each answered by the part that
/// owns it, most through the relay's own methods of the same name. (Its steps are the crate's
/// own: the trait is sealed, see [`Asks`].)
#[allow(private_interfaces)]
impl Asks for Relay {
    fn health(&self, now: Now) -> RelayResponse {
        let setup = self
            .setup_watch
            .as_ref()
            .map(crate::doctor::watch::Watch::reading);
        let last_seen = self.last_seen.reading();
        self.ops
            .health(self.store.as_ref(), &self.breaker, setup, last_seen, now)
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
    /// is ignored), else `None`: on [`WEBHOOK_ROUTE`](crate::types::WEBHOOK_ROUTE) with a store and
    /// a webhook secret, a delivery from an address over its failed verifications (429) or whose
    /// headers are refused with no HMAC (400, 401; counted as a failure), the answers the route
    /// itself gives them (the relay's `deliveries` module). A host that reads the body before the
    /// core sees the request (the npm relay: up to 1 MiB for a webhook) asks this first, so a
    /// forged post's body costs no read. Every other request: `None`.
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
        crate::types::narrow_cors(self.cors_origins.as_deref(), req, r);
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

    fn keep_made(&self, pending: &Pending, upstream: Upstream, at: Moment, made: bool) {
        if made {
            self.breaker.record(&upstream, pending.ticket, at.now);
        }
        pending.route.part().keep(self, pending, upstream, at);
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
        route.follows(self, req, answer, at)
    }

    fn reads(&self) -> crate::reads::Reads<'_> {
        Relay::reads(self)
    }

    #[cfg(feature = "entitlements")]
    fn first_read(
        &self,
        pending: &Pending,
        upstream: &Upstream,
        now: Now,
    ) -> Option<crate::flow::FirstRead> {
        self.first_read_of(pending, upstream, now)
    }

    #[cfg(feature = "entitlements")]
    fn first_answered(
        &self,
        read: crate::flow::FirstRead,
        answer: Upstream,
        now: Now,
    ) -> Option<crate::flow::FirstRead> {
        self.first_answered_of(read, answer, now)
    }
}

// The relay's parts kept beside it: how a request begins once its route is read, its limits,
// its verdicts made answers, and the unit tests' blocking host.
mod begin;
#[cfg(feature = "entitlements")]
mod first_read;
mod limits;
#[cfg(test)]
mod test_host;
#[cfg(test)]
mod tests;
mod verdict;

pub(crate) use limits::{bucket_of, take};
