//! The native server: hyper's HTTP/1.1 server on a tokio runtime of its own (one thread for
//! the connections, a few for the calls to Polar), driving each request's exchange
//! ([`crate::flow::Exchange`], the core's one request machine) with one loop
//! (`Server::drive`), with the relay's transport ([`polar_license::UreqTransport`]) to Polar
//! and the system clock. The decisions are the exchange's; the server moves bytes and time.
//!
//! Every wait on a client is bounded ([`ServeOptions`]): its headers, its body, its reading of
//! the answer. The connections open at once are capped (in all and per address), and the
//! calls to Polar (each blocks a thread while Polar answers) run a few at a time, on slots the
//! exchange asks for. So a slow or silent client holds a connection until its timeout, never
//! the server.

use crate::clock::Now;
use crate::flow::{Exchange, ExchangeOptions, Given, Need};
use crate::locked::locked;
use crate::relay::Relay;
use crate::stored::Flight;
use crate::types::{RelayRequest, RelayResponse};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use polar_license::{HttpResponse, TransportError, TransportErrorKind};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How long the accept loop waits after an error that is not the client's (out of file
/// descriptors, of memory) before it tries again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The most of a body past the cap read (and dropped) after its 413 has been sent, so that a
/// client still sending it reads the answer rather than a reset; past it the connection is
/// closed.
const DRAIN_MAX: u64 = 1 << 20;

/// [`ServeOptions::max_connections_per_address`]'s default: a sixteenth of the default
/// [`ServeOptions::max_connections`], so that it takes sixteen addresses (sixteen /64s in
/// IPv6) to hold every connection, while a client behind a shared address (an office's NAT)
/// still has room for its apps' short requests.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 16;

/// The largest request head (line and headers) the server reads: 64 KiB (a larger one is
/// 431). The relay's requests carry a few short headers.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How [`serve_with`] treats its clients: every wait on one is bounded, and so are the
/// connections held open and the requests answered at once. Start from
/// [`ServeOptions::default`] and set the fields to change.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How long a client has to send a request's headers, counted from when its connection
    /// opens or from the previous answer on it: the read timeout and the keep-alive idle
    /// timeout at once (default 10 s). Past it the connection is closed, without an answer.
    pub header_timeout: Duration,
    /// How long a client has to send a request's whole body once its headers are in (default
    /// 10 s). Past it the answer is 408 Request Timeout and the connection is closed.
    pub body_timeout: Duration,
    /// How long an answer may wait for a client that does not read it: a write that makes no
    /// progress for this long closes the connection (default 10 s).
    pub write_timeout: Duration,
    /// Connections open at once (default 256; at least 1). One more is closed as soon as it is
    /// accepted, without a byte, and the others carry on.
    pub max_connections: usize,
    /// One client address's share of the connections open at once (default
    /// [`DEFAULT_MAX_CONNECTIONS_PER_ADDRESS`]; 0: no share, only
    /// [`ServeOptions::max_connections`]): an IPv6 client counts by its /64 (one host picks any
    /// address of its /64), an IPv4-mapped one as IPv4. The share bites only when others wait
    /// (issue #62: an office of 40 behind one address got 16 answers on an idle relay): an
    /// address may hold more while there is room, but the last sixteenth of
    /// `max_connections` (at least one) is kept for addresses holding none (an address
    /// holding one already gets another only while that many stay free); and when an address
    /// within its share arrives with none free, the address holding the most beyond its share
    /// has one connection closed (gracefully: an idle one at once, one with a request under
    /// way once it is answered), and the newcomer is served in its place. An address at or past
    /// its share finding none free is closed at once, without a byte. So one client holding
    /// idle keep-alive connections never keeps the others out, and sixteen addresses within
    /// their shares do not take every connection from a client arriving. Behind a reverse
    /// proxy ([`crate::RelayConfig::client_ip_header`] set) every connection comes from the
    /// proxy, so no share is applied: the proxy's own limits per client stand in.
    pub max_connections_per_address: usize,
    /// Calls to Polar at once (default 8; at least 1): each holds a thread while Polar
    /// answers, and a call past them waits for one to end. Answers with no call (from the
    /// store, every local refusal) have as many threads of their own, webhooks two more, and
    /// never wait behind a call to Polar.
    pub concurrent_requests: usize,
    /// How long a check with a stored answer (within `--stale-for`) waits for Polar before
    /// it gets that answer, `stale` (default 0.8 s); the call goes on and its answer updates
    /// the store (stale-while-revalidate).
    pub stale_after: Duration,
    /// Where to serve the relay's metrics (`GET /metrics`, Prometheus' text format) on a
    /// listener of its own, `HOST:PORT` (default `None`: no metrics listener). Keep it off
    /// the public network: the counters are the seller's.
    pub metrics_addr: Option<String>,
    /// The bearer token the metrics listener asks for (`authorization: Bearer <token>`; 401
    /// without it), as the npm relay's `metricsToken` on its metrics route: the same answer
    /// (the core's), the same headers. `None` (the default): the listener of its own is the
    /// operator's private network and asks for none.
    pub metrics_token: Option<String>,
    /// How long a connection open when the server is told to stop may still bring a request
    /// (default 0.5 s): each answer meanwhile says `connection: close`, so a client that
    /// reuses its connection (keep-alive) reads its answer and opens a fresh one, which the
    /// next server on a kept listener answers. Past it a connection with no request under way
    /// is closed; one whose request is under way is answered first. With none (zero), an idle
    /// connection is closed at once, and a request its client sends at that moment is lost
    /// (a broken pipe, or the connection closed without an answer).
    pub drain: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            concurrent_requests: 8,
            stale_after: Duration::from_millis(crate::types::STALE_AFTER_MS),
            metrics_addr: None,
            metrics_token: None,
            drain: Duration::from_millis(500),
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("concurrent_requests", &self.concurrent_requests)
            .field("stale_after", &self.stale_after)
            .field("metrics_addr", &self.metrics_addr)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "****"),
            )
            .field("drain", &self.drain)
            .finish()
    }
}

/// A running relay server.
pub struct Running {
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    thread: JoinHandle<()>,
    /// The relay's own reads of Polar (the roster's and the reconcile's: one machine,
    /// crate::flow::background, driven by [`drive_background`] on this thread).
    background: JoinHandle<()>,
}

debug_some!(Running, r => { "addr": r.addr });

impl Running {
    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://IP:PORT/metrics`, when [`ServeOptions::metrics_addr`] was given.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics
            .map(|addr| format!("http://{addr}{}", crate::types::METRICS_ROUTE))
    }

    /// Blocks until the server stops (it does not on its own: serve until killed). Dropping a
    /// `Running` without calling this or [`Running::stop`] leaves the server serving.
    pub fn wait(self) {
        let Running {
            stop,
            thread,
            background,
            ..
        } = self;
        let _ = thread.join();
        stop.send_replace(true);
        let _ = background.join();
        drop(stop);
    }

    /// Stops accepting and returns once the requests under way are answered: a connection
    /// waiting for a request gets [`ServeOptions::drain`] to bring one (answered with
    /// `connection: close`) and is then closed, one whose body is arriving gets until its
    /// deadline, and each call to Polar under way ends (the transport's own timeouts), the
    /// roster's read under way too (at most 10 s).
    pub fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.thread.join();
        let _ = self.background.join();
    }
}

/// Listens on `addr` (e.g. `127.0.0.1:0`) and answers with `relay`, with the default
/// [`ServeOptions`].
pub fn serve(relay: Arc<Relay>, addr: &str) -> io::Result<Running> {
    serve_with(relay, addr, ServeOptions::default())
}

/// Listens on `addr` (e.g. `127.0.0.1:0`) and answers with `relay` on a thread of its own (a
/// tokio runtime: one thread for the connections, [`ServeOptions::concurrent_requests`] for
/// the steps of the requests and the calls to Polar).
pub fn serve_with(relay: Arc<Relay>, addr: &str, options: ServeOptions) -> io::Result<Running> {
    serve_on(relay, std::net::TcpListener::bind(addr)?, options)
}

/// [`serve_with`] on a listener already bound and listening: one handed over by systemd's
/// socket activation, or one kept across a restart. While no server accepts on it (one
/// stopped, the next not yet started), the kernel queues the connections that arrive, up to
/// the listener's backlog, and the next server answers them: a restart refuses none. The
/// server closes its copy of the socket when it stops; keep a clone
/// ([`std::net::TcpListener::try_clone`]) to serve on it again.
pub fn serve_on(
    relay: Arc<Relay>,
    listener: std::net::TcpListener,
    options: ServeOptions,
) -> io::Result<Running> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let metrics_listener = match options.metrics_addr.as_deref() {
        Some(at) => {
            let named =
                |e: io::Error| io::Error::new(e.kind(), format!("the metrics address {at}: {e}"));
            let l = std::net::TcpListener::bind(at).map_err(named)?;
            l.set_nonblocking(true).map_err(named)?;
            Some(l)
        }
        None => None,
    };
    let metrics = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let server = Server::new(relay, options);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // The calls' threads, as many for the answers without a call, and two more that only
        // `/healthz` and `/metrics` use (the others are capped by their semaphores): those
        // never wait behind a slow Polar.
        .max_blocking_threads(
            server
                .options
                .concurrent_requests
                .saturating_mul(2)
                .saturating_add(2),
        )
        .thread_name("relay-handle")
        .build()?;
    let (listener, metrics_listener) = {
        let _entered = runtime.enter();
        let metrics_listener = metrics_listener.map(TcpListener::from_std).transpose()?;
        (TcpListener::from_std(listener)?, metrics_listener)
    };
    let (stop, stopped) = watch::channel(false);
    // The roster's reads (crate::roster), the reconcile's (crate::reconcile) and the webhooks'
    // silence: one machine on a thread of its own, start-up never waits.
    let background = {
        let relay = Arc::clone(&server.relay);
        let started = server.started;
        let stopped = stopped.clone();
        std::thread::Builder::new()
            .name("relay-background".to_string())
            .spawn(move || drive_background(&relay, &|| now(started), &|| *stopped.borrow()))?
    };
    let thread = std::thread::Builder::new()
        .name("relay".to_string())
        .spawn(move || {
            let (relay, started) = (Arc::clone(&server.relay), server.started);
            runtime.block_on(async move {
                if let Some(l) = metrics_listener {
                    tokio::spawn(Arc::clone(&server).run_metrics(l, stopped.clone()));
                }
                server.run(listener, stopped).await;
            });
            // Dropping the runtime waits for the steps and the calls to Polar still running;
            // then the seats' ends held in memory are written (crate::seats::Live).
            drop(runtime);
            relay.flush_seats(now(started));
        })?;
    Ok(Running {
        addr,
        metrics,
        stop,
        thread,
        background,
    })
}

/// The native host's one loop over the background machine (crate::flow::background): sends
/// each `GET` it asks for with its own agent (the relay's transport only posts) and hands the
/// answer back; between reads it sleeps what the machine says, 200 ms at most (a grant
/// webhook's refetch is asked for at the next poll), until the machine is done or `stopped`.
fn drive_background(relay: &Relay, clock: &dyn Fn() -> Now, stopped: &dyn Fn() -> bool) {
    use crate::flow::background::{Background, Given, Poll as Next};
    let agent = crate::agent::agent(relay.base_url());
    let mut machine = Background::new(None);
    while !stopped() {
        match machine.poll(relay, clock()) {
            Next::Send(read) => {
                let answer = match read.body() {
                    // A batch of usage reports (crate::usage): a POST of its JSON.
                    Some(body) => post(&agent, read.url(), read.headers(), body),
                    None => get(&agent, read.url(), read.headers()),
                };
                machine.answered(relay, read.id(), Given::Polar(answer), clock());
            }
            Next::Wait(ms) => std::thread::sleep(Duration::from_millis(ms.clamp(10, 200))),
            Next::Done => return,
            // A store read per key is Workers' alone: nothing to load or list natively.
            Next::Load { id, .. } => {
                machine.answered(relay, id, Given::Loaded(true), clock());
            }
            Next::List { id, .. } => {
                machine.answered(relay, id, Given::Rows(Ok(Vec::new())), clock());
            }
        }
    }
}

/// A `GET` of `url` with `headers`: Polar's status, `retry-after` and body
/// ([`crate::types::MAX_READ_BYTES`] at most).
fn get(agent: &ureq::Agent, url: &str, headers: &[(&str, String)]) -> crate::roster::ReadAnswer {
    let mut req = agent.get(url);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    read_answer(req.call())
}

/// A `POST` of `body` to `url` with `headers`, read as [`get`] reads.
fn post(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> crate::roster::ReadAnswer {
    let mut req = agent.post(url);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    read_answer(req.send(body))
}

/// Polar's status, `retry-after` and body ([`crate::types::MAX_READ_BYTES`] at most).
fn read_answer(
    answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> crate::roster::ReadAnswer {
    match answer {
        Ok(mut r) => {
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let status = r.status().as_u16();
            r.body_mut()
                .with_config()
                .limit(crate::types::MAX_READ_BYTES as u64)
                .read_to_vec()
                .map(|body| (status, retry_after, body))
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// How [`Server::accept`] serves a listener.
struct Listening {
    /// Connections open at most.
    max: usize,
    /// Connections open at most from one address (by [`address_of`]); 0: no such cap.
    per_address: usize,
    /// Whether a client that shuts down its sending side still gets its answer.
    half_close: bool,
    /// What its connections are called in the log.
    what: &'static str,
}

struct Server {
    relay: Arc<Relay>,
    options: ServeOptions,
    /// One permit per call to Polar under way.
    requests: Arc<Semaphore>,
    /// One permit per answer made without a call (routing, the store).
    local: Arc<Semaphore>,
    /// One permit per webhook delivery verified and applied: never one of `local`'s, so a
    /// flood of forged deliveries (each an HMAC over up to 1 MiB) holds no check's stored
    /// answer back (issue #52). Polar delivers one event at a time per endpoint.
    hooks: Arc<Semaphore>,
    started: Instant,
}

/// Webhook deliveries verified at once ([`Server`]'s `hooks`).
const WEBHOOK_SLOTS: usize = 2;

impl Server {
    fn new(relay: Arc<Relay>, mut options: ServeOptions) -> Arc<Server> {
        // Semaphore sizes: at least 1, at most what a semaphore holds and `acquire_many` asks.
        let most = Semaphore::MAX_PERMITS.min(usize::try_from(u32::MAX).unwrap_or(usize::MAX));
        options.max_connections = options.max_connections.clamp(1, most);
        options.concurrent_requests = options.concurrent_requests.clamp(1, most);
        Arc::new(Server {
            relay,
            requests: Arc::new(Semaphore::new(options.concurrent_requests)),
            local: Arc::new(Semaphore::new(options.concurrent_requests)),
            hooks: Arc::new(Semaphore::new(WEBHOOK_SLOTS)),
            options,
            started: Instant::now(),
        })
    }

    /// The relay's listener: [`Server::answer`] on each connection, until told to stop; then
    /// waits for the connections to end.
    async fn run(self: Arc<Self>, listener: TcpListener, stopped: watch::Receiver<bool>) {
        // Behind a proxy every connection is the proxy's: no cap per address there.
        let per_address = if self.relay.client_ip_header.is_some() {
            0
        } else {
            self.options.max_connections_per_address
        };
        let listening = Listening {
            max: self.options.max_connections,
            per_address,
            // A client that shuts down its sending side after its request still gets the answer.
            half_close: true,
            what: "connections",
        };
        let server = Arc::clone(&self);
        let told = stopped.clone();
        self.accept(listener, stopped, listening, move |peer| {
            let (server, told) = (Arc::clone(&server), told.clone());
            hyper::service::service_fn(move |req| {
                let (server, told) = (Arc::clone(&server), told.clone());
                async move {
                    let mut answer = server.answer(req, peer).await?;
                    // Stopping: the client opens its next connection afresh (the drain).
                    if *told.borrow() {
                        answer
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    Ok(answer)
                }
            })
        })
        .await;
    }

    /// The metrics listener: `GET /metrics` only ([`Server::metrics`]), a few connections at
    /// once, until told to stop.
    async fn run_metrics(self: Arc<Self>, listener: TcpListener, stopped: watch::Receiver<bool>) {
        let listening = Listening {
            max: 16,
            per_address: 0,
            half_close: false,
            what: "metrics connections",
        };
        let server = Arc::clone(&self);
        self.accept(listener, stopped, listening, move |_| {
            let server = Arc::clone(&server);
            hyper::service::service_fn(move |req| Arc::clone(&server).metrics(req))
        })
        .await;
    }

    /// Accepts on `listener` until told to stop, each connection served by what `service`
    /// makes for its peer, at most `listening.max` at once (past it new ones are closed); on
    /// stop, each connection ends gracefully (its request under way answered) and this waits
    /// for them.
    async fn accept<S>(
        &self,
        listener: TcpListener,
        stopped: watch::Receiver<bool>,
        listening: Listening,
        service: impl Fn(SocketAddr) -> S,
    ) where
        S: hyper::service::Service<
                Request<Incoming>,
                Response = Response<Full<Bytes>>,
                Error = Infallible,
            > + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let Listening {
            max,
            per_address,
            half_close,
            what,
        } = listening;
        let connections = Arc::new(Semaphore::new(max));
        // With a cap per address, the connections kept for addresses holding none.
        let kept_free = if per_address > 0 {
            (max / 16).max(1)
        } else {
            0
        };
        let by_address = Arc::new(Mutex::new(Open::default()));
        let mut refusing_address = false;
        let mut http = hyper::server::conn::http1::Builder::new();
        // A request's head (line and headers) of at most 64 KiB, as the emulator's and near
        // Cloudflare's 32 KiB: hyper's default (its buffer, about 400 KiB) let each connection
        // hold 400 KiB of headers the relay never reads (issue #62 item 5's table); a larger
        // head is answered 431.
        http.timer(TokioTimer::new())
            .header_read_timeout(self.options.header_timeout)
            .max_header_size(MAX_HEAD_BYTES)
            .half_close(half_close);
        let mut stop = pin!(stop_requested(stopped.clone()));
        let mut refusing = false;
        let mut last_error: Option<Instant> = None;
        loop {
            let Some(accepted) = unless(stop.as_mut(), listener.accept()).await else {
                break;
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                // The client gave up before the accept: nothing to do.
                Err(e) if is_the_clients(&e) => continue,
                // Out of file descriptors and the like: never a reason to stop serving.
                Err(e) => {
                    if last_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        log::warn!("relay: cannot accept {what} ({e}); trying again");
                        last_error = Some(Instant::now());
                    }
                    let pause = tokio::time::sleep(ACCEPT_RETRY);
                    if unless(stop.as_mut(), pause).await.is_none() {
                        break;
                    }
                    continue;
                }
            };
            let free = connections.available_permits();
            // A connection is admitted now, or once a hog's connection told to close ends
            // (its permit then comes to this one first: the semaphore is fair), or refused.
            let (held, permit) = match Held::take(&by_address, &peer, per_address, free, kept_free)
            {
                Admit::Now(held) => match Arc::clone(&connections).try_acquire_owned() {
                    Ok(permit) => (held, Some(permit)),
                    Err(_) => (held, None),
                },
                Admit::AfterCut(held) => (held, None),
                Admit::Refused if free == 0 => {
                    drop(stream);
                    if !refusing {
                        log::warn!("relay: {max} {what} open; closing new ones until one ends");
                        refusing = true;
                    }
                    continue;
                }
                Admit::Refused => {
                    drop(stream);
                    if !refusing_address {
                        log::warn!(
                            "relay: {per_address} {what} open from {} and no room for more (only the {kept_free} kept for addresses holding none are free); closing its new ones until one ends",
                            address_of(&peer)
                        );
                        refusing_address = true;
                    }
                    continue;
                }
            };
            refusing = false;
            refusing_address = false;
            // Nagle's algorithm off: when an answer leaves in more than one write, a client
            // reusing its connection would otherwise wait out its delayed ACK before the rest
            // (tiny_http, the server before this one, wrote head and body apart: 90 requests/s
            // on loopback against thousands; `cargo run --release -p polar-license-relay
            // --example load`). hyper writes both in one vectored write when it can, so on
            // that benchmark it makes no difference now; it still does when a write is split.
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("relay: TCP_NODELAY on a connection from {peer}: {e}");
            }
            let io = TokioIo::new(WriteTimeout::new(stream, self.options.write_timeout));
            let conn = http.serve_connection(io, service(peer));
            let stopped = stopped.clone();
            let drain = self.options.drain;
            let (connections, wait) = (Arc::clone(&connections), self.options.header_timeout);
            tokio::spawn(async move {
                // Admitted after a cut: the hog's connection's permit, within the time a
                // client has for its headers anyway.
                let _permit = match permit {
                    Some(permit) => permit,
                    None => match tokio::time::timeout(wait, connections.acquire_owned()).await {
                        Ok(Ok(permit)) => permit,
                        _ => return,
                    },
                };
                let cut = Arc::clone(&held.cut);
                let _held = held;
                let mut cutting = pin!(cut.notified());
                let mut conn = pin!(conn);
                // Told to stop: the drain, then the graceful shutdown (an idle connection
                // closed, one with a request under way answered first). Meanwhile the answers
                // say `connection: close` (the service reads `stopped` itself).
                let mut drained = pin!(async {
                    stop_requested(stopped).await;
                    tokio::time::sleep(drain).await;
                });
                let mut closing = false;
                // Cut (its address holds more than its share and another waits): the same
                // graceful end, at once.
                let ended = poll_fn(|cx| {
                    if !closing
                        && (drained.as_mut().poll(cx).is_ready()
                            || cutting.as_mut().poll(cx).is_ready())
                    {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    conn.as_mut().poll(cx)
                })
                .await;
                if let Err(e) = ended {
                    log::debug!("relay: connection from {peer}: {e}");
                }
            });
        }
        drop(listener);
        // Every permit back: every connection ended.
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        let _ = connections.acquire_many(all).await;
    }

    /// `GET /metrics`: the core's metrics answer (the npm relay's too: Prometheus' text
    /// format, with [`ServeOptions::metrics_token`] its bearer), on a thread of its own; any
    /// other path 404.
    async fn metrics(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        if req.uri().path() != crate::types::METRICS_ROUTE {
            return Ok(to_response(RelayResponse {
                status: 404,
                headers: Vec::new(),
                body: Vec::new(),
            }));
        }
        let head = RelayRequest {
            method: req.method().as_str().to_string(),
            path: crate::types::METRICS_ROUTE.to_string(),
            headers: req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| {
                    let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    vec![("authorization".to_string(), value)]
                })
                .unwrap_or_default(),
            ..RelayRequest::default()
        };
        let relay = Arc::clone(&self.relay);
        let token = self.options.metrics_token.clone();
        let started = self.started;
        let answer = tokio::task::spawn_blocking(move || {
            crate::flow::metrics_answer(&*relay, &head, token.as_deref(), now(started))
        });
        Ok(match answer.await {
            Ok(answer) => to_response(answer),
            Err(_) => self.closing(&RelayRequest::default(), StatusCode::INTERNAL_SERVER_ERROR),
        })
    }

    /// One request: its exchange driven on a task of its own ([`Server::drive`], so that a
    /// client gone never cuts its call to Polar short), and the answer that loop sends back.
    async fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = request.into_parts();
        // `connection: close` on `/healthz`: a monitor polling it keeps no idle connection
        // open, and no client holds connections alive with it.
        let health = crate::route::target::Target::of(parts.uri.path())
            == crate::route::target::Target::Health
            && matches!(parts.method, hyper::Method::GET | hyper::Method::HEAD);
        let expects_continue = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let head = RelayRequest {
            method: parts.method.as_str().to_string(),
            // The request target as sent (origin form: the path and query).
            path: parts.uri.to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_string(), value)
                })
                .collect(),
            body: Vec::new(),
            client_ip: peer.ip().to_string(),
        };
        // The head as a failure answer reads it (its origin, for CORS).
        let origin = RelayRequest {
            headers: head
                .headers
                .iter()
                .filter(|(name, _)| name == "origin")
                .cloned()
                .collect(),
            ..RelayRequest::default()
        };
        let (reply, replied) = tokio::sync::oneshot::channel();
        tokio::spawn(Arc::clone(&self).drive(head, body, expects_continue, reply));
        Ok(match replied.await {
            Ok(Reply::Answer(answer)) => {
                let mut answer = to_response(answer);
                if health {
                    answer
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                answer
            }
            Ok(Reply::Closing(status)) => self.closing(&origin, status),
            Err(_) => self.closing(&origin, StatusCode::INTERNAL_SERVER_ERROR),
        })
    }

    /// An answer after which the connection closes (a body that did not arrive whole or in
    /// time, a fault): the core's failure answer ([`crate::host::failure`]: the relay's, with
    /// the CORS grant every answer carries), `connection: close`.
    fn closing(&self, req: &RelayRequest, status: StatusCode) -> Response<Full<Bytes>> {
        let detail = match status {
            StatusCode::REQUEST_TIMEOUT => "the request's body did not arrive in time",
            StatusCode::BAD_REQUEST => "the request's body could not be read",
            _ => "the relay's host failed",
        };
        let mut out = to_response(self.relay.failure(req, status.as_u16(), detail));
        out.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        out
    }

    /// The server's one loop over a request's exchange ([`crate::flow::Exchange`]: every
    /// decision, and the order of the steps, are the core's). Its steps run on a blocking
    /// thread of the request's kind ([`Server::steps_for`]) up to a need that waits
    /// ([`Server::want`]: the others are met there, the answer sent to `reply` among them);
    /// the body is read under its deadline; a wait for another check's call is polled (no thread held); a call to Polar
    /// waits for one of [`ServeOptions::concurrent_requests`] slots and runs on it, given the
    /// check's patience and going on past the answer (stale-while-revalidate). The answer
    /// goes to `reply` when the exchange gives it; the loop ends when the exchange is done.
    async fn drive(
        self: Arc<Self>,
        head: RelayRequest,
        body: Incoming,
        expects_continue: bool,
        reply: tokio::sync::oneshot::Sender<Reply>,
    ) {
        let options = ExchangeOptions {
            stale_after_ms: self.stale_after_ms(),
            ..ExchangeOptions::default()
        };
        let steps = self.steps_for(&head).map(Arc::clone);
        let mut exchange = Exchange::new(head, options);
        let mut body = Some(body);
        let mut reply = Some(reply);
        // The slot granted (held until the exchange has taken its call's answer, so that the
        // breaker has counted a failure before a call queued behind it gets the slot), the
        // wait for one, the call under way (its slot with it).
        let mut slot: Option<OwnedSemaphorePermit> = None;
        let mut waiting: Option<
            Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>,
        > = None;
        let mut call: Option<tokio::task::JoinHandle<Called>> = None;
        loop {
            let Some((back, replying, io)) = self.want(exchange, reply, steps.as_ref()).await
            else {
                return;
            };
            (exchange, reply) = (back, replying);
            if !matches!(io, Io::Send { .. }) {
                // A slot that no call uses (any more) is free again.
                slot = None;
            }
            let given = match io {
                Io::Body { max } => {
                    match self.read_body(body.take(), max, expects_continue).await {
                        Ok(bytes) => Given::Body(bytes),
                        Err(status) => {
                            if let Some(reply) = reply.take() {
                                let _ = reply.send(Reply::Closing(status));
                            }
                            return;
                        }
                    }
                }
                Io::Flight {
                    flight,
                    patience_ms,
                } => {
                    let limit = patience_ms.map_or(FLIGHT_WAIT, Duration::from_millis);
                    match self.relay.flight(&flight) {
                        Some(f) if !landed_within(&f, limit).await => Given::Patience,
                        _ => Given::Landed,
                    }
                }
                Io::Slot { patience_ms } => {
                    let wait = waiting.get_or_insert_with(|| {
                        let requests = Arc::clone(&self.requests);
                        Box::pin(async move { requests.acquire_owned().await.ok() })
                    });
                    let got = match patience_ms {
                        Some(ms) => tokio::time::timeout(Duration::from_millis(ms), wait.as_mut())
                            .await
                            .ok(),
                        None => Some(wait.as_mut().await),
                    };
                    match got {
                        Some(permit) => {
                            waiting = None;
                            slot = permit;
                            Given::Slot
                        }
                        // The wait goes on: the exchange asks for the same slot again.
                        None => Given::Patience,
                    }
                }
                Io::Send {
                    request,
                    method,
                    patience_ms,
                } => {
                    let permit = slot.take();
                    let relay = Arc::clone(&self.relay);
                    let mut sent = tokio::task::spawn_blocking(move || {
                        // Held until the call ends, even when the client has gone.
                        let sent = crate::flow::send(&*relay.transport, &request, method);
                        (sent, permit)
                    });
                    let answered = match patience_ms {
                        Some(ms) => tokio::time::timeout(Duration::from_millis(ms), &mut sent)
                            .await
                            .ok(),
                        None => Some((&mut sent).await),
                    };
                    match answered {
                        Some(joined) => Given::Upstream(called(joined, &mut slot)),
                        None => {
                            call = Some(sent);
                            Given::Patience
                        }
                    }
                }
                Io::Call => Given::Upstream(match call.take() {
                    Some(sent) => called(sent.await, &mut slot),
                    None => Err(TransportError::new(
                        TransportErrorKind::Other,
                        "no call under way",
                    )),
                }),
                Io::Done => return,
            };
            exchange.give(given);
        }
    }

    /// The threads a request's steps run on, by its kind: `/healthz` on threads of its own,
    /// never one of the requests' (`None`: a relay whose slots all wait for a slow Polar
    /// still says how it is); a webhook on its own slots (each verified with an HMAC over up
    /// to 1 MiB: a flood of forged deliveries holds no check's stored answer back); every
    /// other request on those of the answers made without a call, never behind a call.
    fn steps_for(&self, head: &RelayRequest) -> Option<&Arc<Semaphore>> {
        use crate::route::target::Target;
        let target = Target::of(&head.path);
        if target == Target::Health && (head.method == "GET" || head.method == "HEAD") {
            None
        } else if target == Target::Webhook {
            Some(&self.hooks)
        } else {
            Some(&self.local)
        }
    }

    /// The exchange's steps on a blocking thread (once `steps` gives it a permit) up to its
    /// next need that waits ([`Io`]), with `reply`; the needs met at once are met there: the
    /// store (the relay's own) neither loaded nor saved by the host, a lease never left to
    /// sign (the relay signs its own), the log lines written, the answer sent to `reply`.
    /// `None` when the thread failed (logged).
    async fn want(
        &self,
        mut exchange: Exchange,
        mut reply: Option<tokio::sync::oneshot::Sender<Reply>>,
        steps: Option<&Arc<Semaphore>>,
    ) -> Option<(Exchange, Option<tokio::sync::oneshot::Sender<Reply>>, Io)> {
        let permit = match steps {
            Some(steps) => Some(Arc::clone(steps).acquire_owned().await.ok()?),
            None => None,
        };
        let relay = Arc::clone(&self.relay);
        let started = self.started;
        let step = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            loop {
                let io = match exchange.want(&*relay, now(started), (relay.entropy)()) {
                    Need::Body { max } => Io::Body { max },
                    Need::Flight {
                        flight,
                        patience_ms,
                    } => Io::Flight {
                        flight,
                        patience_ms,
                    },
                    Need::Slot { patience_ms } => Io::Slot { patience_ms },
                    Need::Send {
                        request,
                        method,
                        patience_ms,
                        ..
                    } => Io::Send {
                        request,
                        method,
                        patience_ms,
                    },
                    Need::Call => Io::Call,
                    Need::Done => Io::Done,
                    Need::Load(_) => {
                        exchange.give(Given::Loaded);
                        continue;
                    }
                    Need::Persist => {
                        exchange.give(Given::Persisted(true));
                        continue;
                    }
                    Need::Sign(_) => {
                        exchange.give(Given::Signature(Vec::new()));
                        continue;
                    }
                    // The flight's waiters poll it.
                    Need::Landed(_) => continue,
                    log @ (Need::Warn(_) | Need::Error(_)) => {
                        log.log();
                        continue;
                    }
                    Need::Respond(answer) => {
                        if let Some(reply) = reply.take() {
                            let _ = reply.send(Reply::Answer(answer));
                        }
                        continue;
                    }
                };
                return (exchange, reply, io);
            }
        });
        match step.await {
            Ok(out) => Some(out),
            Err(e) => {
                log::error!("relay: answering a request failed: {e}");
                None
            }
        }
    }

    /// The request's body, at most `max` bytes (the cap and one more, so that the core sees
    /// a body past it: never read whole, and one whose declared length is past it not read at
    /// all), within [`ServeOptions::body_timeout`]; what is left past it is drained while the
    /// answer goes out. `Err`: the status that closes the connection (a body broken off, 400;
    /// one not in within its deadline, 408).
    async fn read_body(
        &self,
        body: Option<Incoming>,
        max: usize,
        expects_continue: bool,
    ) -> Result<Vec<u8>, StatusCode> {
        let Some(mut body) = body else {
            return Ok(Vec::new());
        };
        let cap = u64::try_from(max.saturating_sub(1)).unwrap_or(u64::MAX);
        if body.size_hint().exact().is_some_and(|n| n > cap) {
            if !expects_continue {
                self.drain(body);
            }
            return Ok(vec![0; max]);
        }
        let read = tokio::time::timeout(self.options.body_timeout, read_at_most(&mut body, max));
        match read.await {
            Ok(Ok(bytes)) => {
                if bytes.len() >= max {
                    self.drain(body);
                }
                Ok(bytes)
            }
            Ok(Err(_)) => Err(StatusCode::BAD_REQUEST),
            Err(_) => {
                log::info!(
                    "relay: 408 (a body not in within {:?})",
                    self.options.body_timeout
                );
                Err(StatusCode::REQUEST_TIMEOUT)
            }
        }
    }

    /// [`ServeOptions::stale_after`] as [`crate::flow::ExchangeOptions::stale_after_ms`] reads
    /// it (at least 1 ms: 0 there is the default).
    fn stale_after_ms(&self) -> u64 {
        u64::try_from(self.options.stale_after.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Reads and drops what is left of a body (at most [`DRAIN_MAX`] bytes, within the body
    /// deadline) while its answer goes out, as a client that sends a body before it reads
    /// the answer otherwise meets a reset instead of its 413. What is left past that closes
    /// the connection.
    fn drain(&self, mut body: Incoming) {
        let deadline = self.options.body_timeout;
        tokio::spawn(tokio::time::timeout(deadline, async move {
            let mut read = 0u64;
            while read <= DRAIN_MAX {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        let n = frame.data_ref().map_or(0, Bytes::len);
                        read = read.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                    }
                    Some(Err(_)) | None => break,
                }
            }
        }));
    }
}

/// The address a connection counts for in [`ServeOptions::max_connections_per_address`]:
/// IPv4, an IPv4-mapped IPv6 address as IPv4, any other IPv6 address by its /64.
fn address_of(peer: &SocketAddr) -> String {
    crate::roster::client_group(&peer.ip().to_string())
}

/// The connections open, by address ([`address_of`]), each with the signal that cuts it.
#[derive(Default)]
struct Open {
    next: u64,
    by_address: HashMap<String, Vec<Conn>>,
}

/// An open connection as [`Open`] counts it.
struct Conn {
    id: u64,
    cut: Arc<tokio::sync::Notify>,
    /// Told to close ([`Open::cut_a_hog`]), not yet closed.
    told: bool,
}

impl Open {
    /// Tells one connection of the address holding the most beyond `cap` (counting only
    /// those not told already) to close: `false` when no address holds more than `cap`.
    fn cut_a_hog(&mut self, cap: usize) -> bool {
        let untold = |conns: &Vec<Conn>| conns.iter().filter(|c| !c.told).count();
        let hog = self
            .by_address
            .values_mut()
            .filter(|conns| untold(conns) > cap)
            .max_by_key(|conns| untold(conns));
        let Some(conn) = hog.and_then(|conns| conns.iter_mut().find(|c| !c.told)) else {
            return false;
        };
        conn.told = true;
        conn.cut.notify_one();
        true
    }
}

/// How [`Held::take`] admits a connection.
enum Admit {
    /// There is room: at once.
    Now(Held),
    /// Once the connection of a hog it told to close has ended.
    AfterCut(Held),
    /// Closed at once.
    Refused,
}

/// One connection counted against its address's share, given back when dropped.
struct Held {
    open: Arc<Mutex<Open>>,
    address: String,
    id: u64,
    /// Notified when the connection is to close (a hog's, [`Open::cut_a_hog`]).
    cut: Arc<tokio::sync::Notify>,
}

impl Held {
    /// Counts a connection from `peer`, with `free` connections free before it. With a share
    /// per address (`cap`, 0: none), the share bites only when others wait (issue #62: an
    /// office of 40 behind one address got 16 answers on an idle relay): an address may hold
    /// more than `cap` while there is room, but one already holding some never takes the last
    /// `kept_free` (kept for addresses holding none); and when there is no room for an address
    /// within its share, one connection of the address holding the most beyond its share is
    /// cut and this one admitted once it has ended ([`Admit::AfterCut`]). Otherwise, and
    /// always without a share, no room means [`Admit::Refused`].
    fn take(
        open: &Arc<Mutex<Open>>,
        peer: &SocketAddr,
        cap: usize,
        free: usize,
        kept_free: usize,
    ) -> Admit {
        let address = address_of(peer);
        let mut o = locked(open);
        let count = o.by_address.get(&address).map_or(0, Vec::len);
        let room = free > 0 && (cap == 0 || count == 0 || free > kept_free);
        let after_cut = !room && cap > 0 && count < cap && o.cut_a_hog(cap);
        if !room && !after_cut {
            return Admit::Refused;
        }
        let id = o.next;
        o.next = o.next.wrapping_add(1);
        let cut = Arc::new(tokio::sync::Notify::new());
        o.by_address.entry(address.clone()).or_default().push(Conn {
            id,
            cut: Arc::clone(&cut),
            told: false,
        });
        let held = Held {
            open: Arc::clone(open),
            address,
            id,
            cut,
        };
        if room {
            Admit::Now(held)
        } else {
            Admit::AfterCut(held)
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = locked(&self.open);
        if let Some(conns) = open.by_address.get_mut(&self.address) {
            conns.retain(|c| c.id != self.id);
            if conns.is_empty() {
                open.by_address.remove(&self.address);
            }
        }
    }
}

/// How long a check with no stored answer waits for another's call for the same entry.
const FLIGHT_WAIT: Duration = Duration::from_secs(30);

/// Whether `flight` lands within `limit` (polled: the core's flights block no thread here).
async fn landed_within(flight: &Flight, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if flight.landed() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// At most `limit` bytes of `body`.
async fn read_at_most(body: &mut Incoming, limit: usize) -> Result<Vec<u8>, hyper::Error> {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            let take = data.len().min(limit - bytes.len());
            bytes.extend_from_slice(&data[..take]);
        }
    }
    Ok(bytes)
}

/// What a request's exchange waits on (its other needs are met on the step's thread,
/// `Server::want`).
enum Io {
    /// Its body, at most `max` bytes.
    Body { max: usize },
    /// Another check's call landing, at most `patience_ms`.
    Flight {
        flight: String,
        patience_ms: Option<u64>,
    },
    /// A slot to call Polar on, at most `patience_ms`.
    Slot { patience_ms: Option<u64> },
    /// Polar's answer to `request`, at most `patience_ms` (the call goes on past it).
    Send {
        request: polar_license::HttpRequest,
        method: polar_license::portal::Method,
        patience_ms: Option<u64>,
    },
    /// The answer of the call under way.
    Call,
    /// Nothing more.
    Done,
}

/// What a request's drive loop sends its connection.
enum Reply {
    /// The relay's answer.
    Answer(RelayResponse),
    /// An empty answer with this status that closes the connection.
    Closing(StatusCode),
}

/// A call to Polar as its thread ends: Polar's answer (or why there is none), and its slot.
type Called = (
    Result<HttpResponse, TransportError>,
    Option<OwnedSemaphorePermit>,
);

/// A call's answer as its thread ended (one that failed: an error, logged), its slot kept in
/// `slot` until the exchange has taken the answer.
fn called(
    joined: Result<Called, tokio::task::JoinError>,
    slot: &mut Option<OwnedSemaphorePermit>,
) -> Result<HttpResponse, TransportError> {
    match joined {
        Ok((upstream, permit)) => {
            *slot = permit;
            upstream
        }
        Err(e) => {
            log::error!("relay: a call to Polar failed: {e}");
            Err(TransportError::new(
                TransportErrorKind::Other,
                "the call's thread failed",
            ))
        }
    }
}

fn to_response(resp: RelayResponse) -> Response<Full<Bytes>> {
    let mut out = Response::new(Full::new(Bytes::from(resp.body)));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (name, value) in &resp.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        // The message's framing is the server's.
        if [
            header::CONNECTION,
            header::CONTENT_LENGTH,
            header::TRAILER,
            header::TRANSFER_ENCODING,
            header::UPGRADE,
        ]
        .contains(&name)
        {
            continue;
        }
        if name == header::CONTENT_TYPE {
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
    out
}

fn now(started: Instant) -> Now {
    let unix_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let monotonic_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Now {
        unix_seconds,
        monotonic_ms,
    }
}

/// An accept error that is one client's (it left before it was accepted), not the server's.
fn is_the_clients(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Resolves when [`Running::stop`] is called; never when the `Running` was dropped instead.
async fn stop_requested(mut stopped: watch::Receiver<bool>) {
    if stopped.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `work`'s output, or `None` when `stop` resolves first (`stop` must not have resolved yet).
async fn unless<S, W>(mut stop: Pin<&mut S>, work: W) -> Option<W::Output>
where
    S: Future<Output = ()>,
    W: Future,
{
    let mut work = pin!(work);
    poll_fn(|cx| {
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

/// A connection whose writes fail after [`ServeOptions::write_timeout`] without progress:
/// hyper has no write timeout, and an answer a client never reads would hold its connection
/// for good.
struct WriteTimeout {
    stream: TcpStream,
    limit: Duration,
    /// Started when a write could not go on; dropped when one does.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteTimeout {
    fn new(stream: TcpStream, limit: Duration) -> WriteTimeout {
        WriteTimeout {
            stream,
            limit,
            stalled: None,
        }
    }

    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of its answer within the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.progress(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.progress(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.progress(cx, poll)
    }
}

/// How [`log_to_stderr_as`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `LEVEL message` lines.
    #[default]
    Text,
    /// One JSON object a line: `time` (RFC 3339, UTC), `level`, `message` (the text line's),
    /// and for the line of an answer its parts: `route` (`validate`, `activate`,
    /// `deactivate`, `webhook`), `key` (redacted, when the line names one), `status`, `source`
    /// (`store` or `stale` when the answer came from the store, else `polar`, as the
    /// `polar-license-source` header says) and `detail` (the words in parentheses).
    Json,
}

/// A logger writing the relay's events to stderr in `format` (keys redacted, the token never
/// written), for a command line that has none. `false` when one is set already.
pub fn log_to_stderr_as(level: log::LevelFilter, format: LogFormat) -> bool {
    static TEXT: Stderr = Stderr(LogFormat::Text);
    static JSON: Stderr = Stderr(LogFormat::Json);
    let logger = match format {
        LogFormat::Text => &TEXT,
        LogFormat::Json => &JSON,
    };
    if log::set_logger(logger).is_err() {
        return false;
    }
    log::set_max_level(level);
    true
}

struct Stderr(LogFormat);

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        match self.0 {
            LogFormat::Text => {
                if let Some(text) = crate::logged::log_text(record) {
                    eprintln!("{} {text}", record.level());
                }
            }
            // JSON escapes the message itself.
            LogFormat::Json if record.target().starts_with("polar_license") => {
                eprintln!("{}", json_line(record.level(), &record.args().to_string()))
            }
            LogFormat::Json => {}
        }
    }

    fn flush(&self) {}
}

/// A log line as one JSON object (see [`LogFormat::Json`]).
fn json_line(level: log::Level, message: &str) -> String {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut line = serde_json::Map::new();
    line.insert("time".into(), time.into());
    line.insert("level".into(), level.as_str().into());
    line.insert("message".into(), message.into());
    for (name, value) in answer_fields(message) {
        line.insert(name.into(), value);
    }
    serde_json::Value::Object(line).to_string()
}

/// The parts of an answer's line, `relay: ROUTE [KEY] STATUS [(DETAIL)]` or `relay: webhook
/// …`; nothing for any other line.
fn answer_fields(message: &str) -> Vec<(&'static str, serde_json::Value)> {
    let mut out = Vec::new();
    let Some(rest) = message.strip_prefix("relay: ") else {
        return out;
    };
    let (head, detail) = match rest.split_once(" (") {
        Some((head, detail)) => (head, detail.strip_suffix(')').map(str::to_string)),
        None => (rest, None),
    };
    let mut words = head.split(' ');
    let route = words.next().unwrap_or_default();
    if route == "webhook" {
        out.push(("route", "webhook".into()));
        out.push(("detail", rest.trim_start_matches("webhook").trim().into()));
        return out;
    }
    if !matches!(route, "validate" | "activate" | "deactivate") {
        return out;
    }
    let mut key = None;
    let mut status = None;
    for word in words {
        if word.starts_with("****") {
            key = Some(word);
        } else if let Some(code) = word.parse::<u16>().ok().filter(|c| (100..600).contains(c)) {
            status = Some(code);
        } else {
            // Not an answer's line (`relay: validate … restored`): no parts.
            return Vec::new();
        }
    }
    let Some(status) = status else {
        return out;
    };
    out.push(("route", route.into()));
    if let Some(key) = key {
        out.push(("key", key.into()));
    }
    out.push(("status", status.into()));
    if let Some(detail) = detail {
        let source = ["store", "stale"]
            .into_iter()
            .find(|s| detail.starts_with(&format!("{s}:")));
        out.push(("source", source.unwrap_or("polar").into()));
        out.push(("detail", detail.into()));
    } else {
        out.push(("source", "polar".into()));
    }
    out
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn fields(message: &str) -> serde_json::Value {
        let line: serde_json::Value =
            serde_json::from_str(&json_line(log::Level::Info, message)).expect("JSON");
        assert_eq!(line["message"], message);
        assert_eq!(line["level"], "INFO");
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        line
    }

    impl Admit {
        fn now(self) -> Option<Held> {
            match self {
                Admit::Now(held) => Some(held),
                _ => None,
            }
        }
    }

    /// The share per address counts IPv4 as is, an IPv4-mapped IPv6 address as IPv4, and any
    /// other IPv6 address by its /64; a connection ended gives its place back.
    #[test]
    fn connections_count_per_address_and_per_64() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("an address");
        let open = Arc::new(Mutex::new(Open::default()));
        let take = |peer: &str, cap, free| Held::take(&open, &at(peer), cap, free, 1);
        let count = |address: &str| {
            let o = locked(&open);
            o.by_address.get(address).map_or(0, Vec::len)
        };
        let a = take("192.0.2.1:1000", 2, 100).now().expect("the first");
        let mapped = take("[::ffff:192.0.2.1]:1001", 2, 100)
            .now()
            .expect("the second");
        assert_eq!(count("192.0.2.1"), 2);
        let v6 = take("[2001:db8:1:2::1]:1", 2, 100)
            .now()
            .expect("a /64's first");
        let v6b = take("[2001:db8:1:2:ffff::9]:1", 2, 100)
            .now()
            .expect("its second");
        assert_eq!(count("2001:db8:1:2::/64"), 2);
        let other = take("[2001:db8:1:3::1]:1", 2, 100)
            .now()
            .expect("another /64");
        drop((v6, v6b, other));
        assert_eq!(count("2001:db8:1:2::/64"), 0);
        drop((a, mapped));
        assert!(locked(&open).by_address.is_empty());
        // 0: no share; no room is no room.
        let many: Vec<Held> = (0..100)
            .filter_map(|_| take("198.51.100.1:1", 0, 100).now())
            .collect();
        assert_eq!(many.len(), 100);
        assert!(matches!(take("198.51.100.1:1", 0, 0), Admit::Refused));
        drop(many);
        // With only the kept connections free, an address holding one gets no other; an
        // address holding none does.
        let _one = take("192.0.2.2:1001", 2, 5).now().expect("room");
        assert!(matches!(take("192.0.2.2:1002", 2, 1), Admit::Refused));
        assert!(take("192.0.2.2:1002", 2, 2).now().is_some());
        assert!(take("192.0.2.9:1", 2, 1).now().is_some());
    }

    /// Issue #62: the share per address bites only when others wait. An address holds more
    /// than its share while there is room; when an address within its share finds none, the
    /// address holding the most beyond its share has one connection cut (told once each),
    /// and the newcomer is admitted after it; an address at or past its share is refused.
    #[test]
    fn the_share_per_address_bites_only_when_others_wait() {
        let at = |s: &str| s.parse::<SocketAddr>().expect("an address");
        let open = Arc::new(Mutex::new(Open::default()));
        let take = |peer: &str, free| Held::take(&open, &at(peer), 2, free, 1);
        // An idle relay: one address holds 6, past its share of 2.
        let office: Vec<Held> = (0..6)
            .map(|n| take("192.0.2.1:1", 10 - n).now().expect("room"))
            .collect();
        let small: Vec<Held> = (0..3)
            .map(|n| take("192.0.2.2:1", 4 - n).now().expect("room"))
            .collect();
        // Full: the office past its share is refused, as is the small one (at its share).
        assert!(matches!(take("192.0.2.1:1", 0), Admit::Refused));
        assert!(matches!(take("192.0.2.2:1", 0), Admit::Refused));
        // A newcomer: the office (6 beyond a share of 2, more than the small one's 3) has
        // its first connection cut, and the newcomer waits for it.
        let told = |held: &[Held]| {
            let o = locked(&open);
            held.iter()
                .filter(|h| {
                    o.by_address[&h.address]
                        .iter()
                        .any(|c| c.id == h.id && c.told)
                })
                .count()
        };
        let mut waiting = Vec::new();
        for n in 0..5 {
            match take(&format!("192.0.2.{}:1", 10 + n), 0) {
                Admit::AfterCut(held) => waiting.push(held),
                _ => panic!("newcomer {n} refused"),
            }
        }
        assert_eq!(
            (told(&office), told(&small)),
            (4, 1),
            "6 → 2 held untold, 3 → 2"
        );
        // No one left beyond its share: the next newcomer is refused.
        assert!(matches!(take("192.0.2.30:1", 0), Admit::Refused));
        drop((office, small, waiting));
    }

    #[test]
    fn an_answers_line_as_json_has_its_parts() {
        let l = fields("relay: validate ****-6ED415 200 (store: Polar's answer of 3 s ago)");
        assert_eq!(
            (
                &l["route"],
                &l["key"],
                &l["status"],
                &l["source"],
                &l["detail"]
            ),
            (
                &"validate".into(),
                &"****-6ED415".into(),
                &200.into(),
                &"store".into(),
                &"store: Polar's answer of 3 s ago".into()
            )
        );
        let l = fields("relay: activate 429 (client 127.0.0.1 over its rate)");
        assert_eq!(
            (&l["route"], &l["status"], &l["source"]),
            (&"activate".into(), &429.into(), &"polar".into())
        );
        assert!(l.get("key").is_none());
        let l = fields("relay: validate ****-6ED415 404 (stale: revoked by a webhook)");
        assert_eq!(l["source"], "stale");
        let l = fields("relay: webhook order.paid: 0 entries narrowed");
        assert_eq!(
            (&l["route"], &l["detail"]),
            (&"webhook".into(), &"order.paid: 0 entries narrowed".into())
        );
        // Any other line: its message only.
        for other in [
            "relay: stopped",
            "relay: 3 calls to Polar of the last minute restored from the store",
            "relay: validate of nothing",
        ] {
            let l = fields(other);
            assert!(l.get("route").is_none() && l.get("status").is_none(), "{l}");
        }
    }
}
