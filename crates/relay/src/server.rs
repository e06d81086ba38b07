//! The native server: `tiny_http` (a small, well-kept threaded HTTP/1.1 server; no async
//! runtime to carry for a handful of requests per second) around [`Relay::handle`], with
//! [`polar_license::UreqTransport`] to Polar and the system clock.

use crate::{Now, Relay, RelayRequest, RelayResponse};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Worker threads answering requests (each blocks on its call to Polar).
const WORKERS: usize = 8;

/// A running relay server.
pub struct Running {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Blocks until the server stops (it does not on its own: serve until killed).
    pub fn wait(self) {
        for worker in self.workers {
            let _ = worker.join();
        }
    }

    /// Stops accepting and answering, and waits for the workers.
    pub fn stop(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        self.wait();
    }
}

/// A listener whose accepted connections have Nagle's algorithm off (Linux copies
/// `TCP_NODELAY` from the listening socket to the connections it accepts). tiny_http writes an answer's head, its
/// `Content-Length` and its body in three writes: with Nagle on, a client reusing its
/// connection waits out its delayed ACK before the body (measured: 90 requests/s on
/// loopback, against thousands with it off; `cargo run --release -p polar-license-relay
/// --example load`).
fn nodelay_listener(addr: &str) -> io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other("no address to listen on"))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// Listens on `addr` (e.g. `127.0.0.1:0`) and answers with `relay` on worker threads.
pub fn serve(relay: Arc<Relay>, addr: &str) -> io::Result<Running> {
    let server = tiny_http::Server::from_listener(nodelay_listener(addr)?, None)
        .map_err(io::Error::other)?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("not an IP listener"))?;
    let server = Arc::new(server);
    let started = Instant::now();
    let workers = (0..WORKERS)
        .map(|i| {
            let server = Arc::clone(&server);
            let relay = Arc::clone(&relay);
            std::thread::Builder::new()
                .name(format!("relay-{i}"))
                .spawn(move || {
                    for request in server.incoming_requests() {
                        answer(&relay, request, started);
                    }
                })
        })
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Running {
        server,
        addr,
        workers,
    })
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

fn answer(relay: &Relay, mut request: tiny_http::Request, started: Instant) {
    let max = relay.limits().max_body_bytes;
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_string(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    // Never read more than the cap (+1, so that the core sees the body is too large); a
    // declared length past it is not read at all.
    let mut body = Vec::new();
    let declared_too_large = request.body_length().is_some_and(|n| n > max);
    if declared_too_large {
        body.resize(max.saturating_add(1), 0);
    } else {
        let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
        if request
            .as_reader()
            .take(limit)
            .read_to_end(&mut body)
            .is_err()
        {
            let _ = request.respond(tiny_http::Response::empty(400));
            return;
        }
    }
    let req = RelayRequest {
        method: request.method().as_str().to_string(),
        path: request.url().to_string(),
        headers,
        body,
        client_ip: request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string()),
    };
    let resp = relay.handle(&req, now(started));
    let _ = request.respond(to_tiny(resp));
}

fn to_tiny(resp: RelayResponse) -> tiny_http::Response<io::Cursor<Vec<u8>>> {
    let mut out = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
    for (name, value) in &resp.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(h);
        }
    }
    out
}

/// A logger writing `LEVEL message` lines to stderr (the relay's events; keys redacted, the
/// token never written), for a command line that has none. `false` when one is set already.
pub fn log_to_stderr(level: log::LevelFilter) -> bool {
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_err() {
        return false;
    }
    log::set_max_level(level);
    true
}

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("polar_license") {
            eprintln!("{} {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}
