//! [`Emulator`]: the core ([`Core`]) behind the std HTTP server of `http.rs`, on 127.0.0.1.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::http::{self, Shared};
use crate::service::{Core, Time};
use crate::util::lock;
use crate::{
    Fault, KeyUpdate, Options, Seed, SeedKey, WebhookFault, WebhookOutcome, WebhookRequest,
};

/// A running emulator on 127.0.0.1. Dropping it stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    organization_id: String,
    accept: Option<JoinHandle<()>>,
    dispatcher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("organization_id", &self.organization_id)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Binds `127.0.0.1:options.port` and starts serving `seed`.
    ///
    /// Fails with `InvalidInput` when the seed is inconsistent (bad UUIDs,
    /// unknown status, duplicate keys…), or with the bind error.
    pub fn start(seed: Seed, options: Options) -> io::Result<Emulator> {
        let port = options.port;
        let state = options.state.clone();
        let mut core = Core::new(seed, options, Time::now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let state = match state {
            Some(path) => Some(crate::statefile::StateFile::open(path, &mut core)?),
            None => None,
        };
        let organization_id = core.organization_id().to_string();
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            wake: Condvar::new(),
            state,
        });
        let worker = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("polar-emulator-accept".to_string())
            .spawn(move || http::accept_loop(listener, worker))?;
        let worker = Arc::clone(&shared);
        let dispatcher = thread::Builder::new()
            .name("polar-emulator-webhooks".to_string())
            .spawn(move || dispatch_loop(worker))?;
        Ok(Emulator {
            shared,
            addr,
            organization_id,
            accept: Some(accept),
            dispatcher: Some(dispatcher),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The seed's top-level organization ID.
    pub fn organization_id(&self) -> String {
        self.organization_id.clone()
    }

    /// Injects a fault on every following request to the license routes
    /// (`None` clears it).
    pub fn set_fault(&self, fault: Option<Fault>) {
        lock(&self.shared.core).set_fault(fault);
    }

    /// Requests received on the six license routes (any answer, faults and
    /// 4xx/429 included; CORS preflights and admin routes excluded).
    pub fn request_count(&self) -> u64 {
        lock(&self.shared.core).request_count()
    }

    /// Fault bodies ([`Fault::SlowBody`], [`Fault::Huge`]) still being written. A client that
    /// gives up on one (a timeout, a size cap) must close its connection: the emulator's next
    /// write then fails and the count drops, where an abandoned but open connection keeps
    /// the server streaming into it (until its 30 s write stall limit).
    pub fn open_streams(&self) -> u64 {
        lock(&self.shared.core).open_streams()
    }

    /// Sets [`Emulator::request_count`] back to 0.
    pub fn reset_request_count(&self) {
        lock(&self.shared.core).reset_request_count();
    }

    /// Moves the emulator's clock by `seconds` from real time (its `Date` header, expiry
    /// checks, `last_validated_at`): for tests that move the client's clock to simulate time
    /// passing, so that server and client agree on it (the client anchors a verdict at the
    /// server's `Date` when its own clock runs ahead of it).
    pub fn set_clock_offset(&self, seconds: i64) {
        lock(&self.shared.core).set_clock_offset(seconds);
    }

    /// Turns Polar's per-IP rate limits on or off, every window and block forgotten (see
    /// [`Core::set_rate_limit`](crate::Core::set_rate_limit)).
    pub fn set_rate_limit(&self, enabled: bool) {
        lock(&self.shared.core).set_rate_limit(enabled);
    }

    /// Rotates the API versions while it runs (see
    /// [`Core::set_api_versions`](crate::Core::set_api_versions)): Polar's quarterly release
    /// between two requests.
    pub fn set_api_versions(
        &self,
        change: &crate::ApiVersionsChange,
    ) -> Result<crate::ApiVersions, String> {
        lock(&self.shared.core).set_api_versions(change)
    }

    /// What the most recent requests said of themselves (see
    /// [`Core::seen_requests`](crate::Core::seen_requests)).
    pub fn seen_requests(&self) -> Vec<crate::SeenRequest> {
        lock(&self.shared.core).seen_requests()
    }

    /// The current `LicenseKeyRead` JSON of a key (first match in any organization).
    pub fn key(&self, key: &str) -> Option<serde_json::Value> {
        lock(&self.shared.core).key(key)
    }

    /// The customer-session email codes not yet used or expired, oldest first, each
    /// `{code, email, customer_id, organization_id, expires_at}` (Polar would mail them;
    /// `GET /__emulator/customer-session/codes` answers the same).
    pub fn customer_session_codes(&self) -> Vec<serde_json::Value> {
        lock(&self.shared.core).customer_session_codes(Time::now())
    }

    /// The live (not deactivated) activations of a key, each
    /// `{id, license_key_id, label, meta, conditions, created_at, modified_at}`.
    pub fn activations(&self, key: &str) -> Vec<serde_json::Value> {
        lock(&self.shared.core).activations(key)
    }

    /// Changes a key like Polar's `PATCH /v1/license-keys/{id}`. Returns
    /// `false` when the key is unknown or a value is invalid (nothing changes then).
    pub fn update_key(&self, key: &str, update: KeyUpdate) -> bool {
        self.change(|core, now| core.update_key(key, &update, now))
    }

    /// A new billing period for a key: `benefit_grant.cycled` sent to
    /// the webhook endpoints. `false` when the key is unknown.
    pub fn cycle_key(&self, key: &str) -> bool {
        self.change(|core, now| core.cycle_key(key, now))
    }

    /// Sets the failure to inject into the webhook deliveries of the next change (`None`
    /// clears it): see [`WebhookFault`].
    pub fn set_webhook_fault(&self, fault: Option<WebhookFault>) {
        lock(&self.shared.core).set_webhook_fault(fault);
    }

    /// Rotates a key like Polar's `POST /v1/license-keys/{id}/rotate` (or a customer in the
    /// portal): returns its new string; the old one answers 404 "Not found" from now on.
    /// `None` when the key is unknown.
    pub fn rotate_key(&self, key: &str) -> Option<String> {
        self.change(|core, now| core.rotate_key(key, now))
    }

    /// Adds a key (in the seed's organization unless it names another).
    pub fn add_key(&self, key: SeedKey) -> Result<(), String> {
        self.change(|core, now| core.add_key(&key, now))
    }

    /// Sets a Feature Flag benefit's `metadata` as a seller edits it in Polar (the seed's rules:
    /// at most 50 keys, …) and sends `benefit.updated` only (docs/polar-api.md §16.4): the
    /// benefit's new `Benefit` object, `Ok(None)` for an unknown benefit, `Err` for metadata
    /// Polar would refuse (nothing changes then).
    pub fn set_benefit_metadata(
        &self,
        id: &str,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, String> {
        self.change(|core, now| core.set_benefit_metadata(id, &metadata, now))
    }

    /// Revokes (`granted` false) or grants again the Feature Flag grant of `benefit_id` made by
    /// `key`'s purchase: `benefit_grant.revoked` or `.created`, then `customer.state_changed`.
    /// The grant's `BenefitGrant`; `Ok(None)`: no such key, or no grant of that benefit from it.
    pub fn set_flag_grant(
        &self,
        key: &str,
        benefit_id: &str,
        granted: bool,
    ) -> Result<Option<serde_json::Value>, String> {
        self.change(|core, now| core.set_flag_grant(key, benefit_id, granted, now))
    }

    /// The `Benefit` object of a benefit of the seed (`None`: unknown).
    pub fn benefit(&self, id: &str) -> Option<serde_json::Value> {
        lock(&self.shared.core).benefit(id)
    }

    /// The organization tokens' budget: calls per window (0: off) and the window.
    pub fn token_budget(&self) -> (u32, Duration) {
        lock(&self.shared.core).token_budget()
    }

    /// A change of the core at this moment, then the webhook dispatcher woken (the change may
    /// have queued events) and the state saved (`--state FILE`): the change's answer.
    fn change<T>(&self, change: impl FnOnce(&mut Core, Time) -> T) -> T {
        let changed = change(&mut lock(&self.shared.core), Time::now());
        self.shared.wake.notify_all();
        http::save_state(&self.shared);
        changed
    }

    /// Stops the server: the listener closes (new connections are refused)
    /// and open connections are shut down.
    pub fn stop(self) {
        drop(self);
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        self.shared.wake.notify_all();
        if let Some(handle) = self.dispatcher.take() {
            let _ = handle.join();
        }
        for (_, stream) in lock(&self.shared.conns).drain() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// How long the dispatcher sleeps when nothing is scheduled (a change wakes it sooner).
const IDLE: Duration = Duration::from_secs(1);

/// Sends what the core's webhooks have due, each attempt on a thread of its own (at most one
/// per endpoint: the core keeps each endpoint's events in order), until the emulator stops.
fn dispatch_loop(shared: Arc<Shared>) {
    let mut core = lock(&shared.core);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = Time::now();
        let due = core.webhooks_due(now);
        if !due.is_empty() {
            drop(core);
            for request in due {
                let id = request.id;
                let worker = Arc::clone(&shared);
                let spawned = thread::Builder::new()
                    .name("polar-emulator-webhook".to_string())
                    .spawn(move || {
                        let outcome = send(request);
                        lock(&worker.core).webhook_finished(id, outcome, Time::now());
                        worker.wake.notify_all();
                    });
                if let Err(e) = spawned {
                    // No thread: the attempt fails (and is retried on the schedule).
                    let outcome = WebhookOutcome::Failed {
                        error: format!("the emulator could not start a thread: {e}"),
                    };
                    lock(&shared.core).webhook_finished(id, outcome, Time::now());
                }
            }
            core = lock(&shared.core);
            continue;
        }
        let wait = core
            .webhooks_next_at()
            .map(|at| at.saturating_sub(now.monotonic))
            .unwrap_or(IDLE)
            .min(IDLE);
        core = match shared.wake.wait_timeout(core, wait) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

/// One attempt: a `POST` to the endpoint's URL, the whole exchange within its timeout.
fn send(request: WebhookRequest) -> WebhookOutcome {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(request.timeout))
        .proxy(None)
        .max_redirects(0)
        .build()
        .into();
    let mut builder = agent.post(&request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    match builder.send(&request.body[..]) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default();
            WebhookOutcome::Answered { status, body }
        }
        Err(e) => WebhookOutcome::Failed {
            error: e.to_string(),
        },
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
