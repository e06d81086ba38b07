//! The native HTTP/1.1 server around the core ([`crate::Core`]): one thread per connection,
//! requests parsed with `httparse`, responses written by hand (which is what makes the
//! transport faults possible: hangs, slow and truncated bodies, closed connections). The
//! core is locked only while it computes: a body is read, and a fault's pause taken, with no
//! lock held.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::service::{
    framing, huge_body_parts, Core, Delivery, Exchange, Framing, Head, Resp, Step, Time, MAX_BODY,
};
use super::util::{http_date, lock};
use super::Fault;

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// How long an idle keep-alive connection is kept.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(120);
/// How long a client may stall in the middle of a request.
const REQUEST_STALL: Duration = Duration::from_secs(30);
/// How long a `Hang` fault holds a connection at most.
const HANG_LIMIT: Duration = Duration::from_secs(60);
/// Socket read timeout: how often a blocked reader checks the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// A parsed request head and its HTTP version (`1.0` or `1.1`).
struct WireHead {
    head: Head,
    minor_version: u8,
}

impl WireHead {
    fn keep_alive(&self) -> bool {
        if self.minor_version == 0 {
            self.head.has_token("connection", "keep-alive")
        } else {
            !self.head.has_token("connection", "close")
        }
    }

    fn expects_continue(&self) -> bool {
        self.minor_version == 1 && self.head.has_token("expect", "100-continue")
    }
}

/// A request's body, read only when the core asks for it.
struct Body {
    framing: Framing,
    expects_continue: bool,
    read: Option<Vec<u8>>,
    continue_sent: bool,
    /// Its read failed (the client stopped sending, or closed): never waited for again.
    failed: bool,
}

/// State shared by the accept loop and the connection threads.
pub(crate) struct Shared {
    /// Everything Polar's answers depend on; locked only while it computes.
    pub(crate) core: Mutex<Core>,
    pub(crate) stop: AtomicBool,
    pub(crate) conns: Mutex<HashMap<u64, TcpStream>>,
    pub(crate) next_conn: AtomicU64,
    /// Wakes the webhook dispatcher (`native.rs`) after anything that may have emitted an
    /// event or finished an attempt.
    pub(crate) wake: Condvar,
    /// [`crate::Options::state`]: where the keys and activations are kept.
    pub(crate) state: Option<crate::statefile::StateFile>,
}

/// The accept loop; returns when the emulator stops.
pub(crate) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(_) => continue,
        };
        let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.conns).insert(id, clone);
        }
        let worker = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("polar-emulator-conn".to_string())
            .spawn(move || {
                serve_connection(&worker, stream, peer);
                lock(&worker.conns).remove(&id);
            });
        if spawned.is_err() {
            lock(&shared.conns).remove(&id);
        }
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(REQUEST_STALL));
    let mut conn = Conn {
        shared,
        stream,
        buf: Vec::new(),
    };
    loop {
        let head = match conn.read_head() {
            HeadRead::Head(head) => head,
            HeadRead::Closed => return,
            HeadRead::Bad => {
                let _ = conn.write_response(&Resp::bad_request(), false);
                conn.linger();
                return;
            }
        };
        if !conn.serve(head, peer.ip()) {
            conn.linger();
            return;
        }
    }
}

enum HeadRead {
    Head(WireHead),
    Closed,
    Bad,
}

struct Conn<'s> {
    shared: &'s Shared,
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Counts a fault body (`SlowBody`, `Huge`) as open while it is being written: see
/// [`super::Emulator::open_streams`].
struct OpenStream<'s>(&'s Shared);

impl<'s> OpenStream<'s> {
    fn new(shared: &'s Shared) -> OpenStream<'s> {
        lock(&shared.core).stream_started();
        OpenStream(shared)
    }
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        lock(&self.0.core).stream_ended();
    }
}

impl Conn<'_> {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Reads more bytes into the buffer; `Err` when closed, stalled past `limit` or stopping.
    fn fill(&mut self, limit: Duration) -> Result<(), ()> {
        let started = Instant::now();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.stopped() {
                return Err(());
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if started.elapsed() >= limit {
                        return Err(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
    }

    fn read_head(&mut self) -> HeadRead {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 128];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = Head {
                            method: req.method.unwrap_or("").to_string(),
                            target: req.path.unwrap_or("").to_string(),
                            headers: req
                                .headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.name.to_ascii_lowercase(),
                                        h.value.iter().map(|&b| b as char).collect(),
                                    )
                                })
                                .collect(),
                        };
                        let minor_version = req.version.unwrap_or(1);
                        self.buf.drain(..n);
                        return HeadRead::Head(WireHead {
                            head,
                            minor_version,
                        });
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() > MAX_HEAD {
                            return HeadRead::Bad;
                        }
                    }
                    Err(_) => return HeadRead::Bad,
                }
            }
            let limit = if self.buf.is_empty() {
                KEEPALIVE_IDLE
            } else {
                REQUEST_STALL
            };
            if self.fill(limit).is_err() {
                return HeadRead::Closed;
            }
        }
    }

    fn read_exact_body(&mut self, len: usize) -> Result<Vec<u8>, ()> {
        while self.buf.len() < len {
            self.fill(REQUEST_STALL)?;
        }
        Ok(self.buf.drain(..len).collect())
    }

    /// Reads the body (sending `100 Continue` first when asked); `Err` when it cannot be.
    fn body(&mut self, body: &mut Body) -> Result<Vec<u8>, ()> {
        if let Some(read) = &body.read {
            return Ok(read.clone());
        }
        if body.failed {
            return Err(());
        }
        let read = match body.framing {
            Framing::Empty | Framing::Chunked => Vec::new(),
            Framing::Length(n) => {
                let n = usize::try_from(n).map_err(|_| ())?;
                if body.expects_continue && !body.continue_sent && n > 0 && self.buf.len() < n {
                    body.continue_sent = true;
                    self.stream
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .map_err(|_| ())?;
                }
                match self.read_exact_body(n) {
                    Ok(read) => read,
                    Err(()) => {
                        body.failed = true;
                        return Err(());
                    }
                }
            }
        };
        body.read = Some(read.clone());
        Ok(read)
    }

    /// After a response that left the body unread: discard it when that is
    /// safe, else report that the connection must close.
    fn settle_body(&mut self, body: &mut Body) -> bool {
        if body.read.is_some() {
            return true;
        }
        // A body that stopped coming is not waited for a second time (a request shorter than
        // its `content-length` held its connection for twice the stall limit: issue #62 item
        // 5's table): the connection closes.
        if body.failed {
            return false;
        }
        match body.framing {
            Framing::Empty => true,
            Framing::Chunked => false,
            Framing::Length(n) => {
                if n > MAX_BODY || (body.expects_continue && !body.continue_sent) {
                    return false;
                }
                match usize::try_from(n) {
                    Ok(n) => self.read_exact_body(n).is_ok(),
                    Err(_) => false,
                }
            }
        }
    }

    /// Before closing: stop writing, then drain what the client still sends
    /// (briefly) so the close is not a reset that eats the response.
    fn linger(&mut self) {
        let _ = self.stream.flush();
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let started = Instant::now();
        let mut sink = [0u8; 16 * 1024];
        while started.elapsed() < Duration::from_millis(500) && !self.stopped() {
            match self.stream.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    }

    fn head_bytes(&self, r: &Resp, declared_length: Option<u64>, close: bool) -> Vec<u8> {
        let date = http_date(lock(&self.shared.core).clock(Time::now()));
        let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
        out.push_str(&format!("date: {date}\r\n"));
        for (k, v) in &r.headers {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        if r.status >= 200 && r.status != 204 && r.status != 304 {
            let len = declared_length.unwrap_or(r.body.len() as u64);
            out.push_str(&format!("content-length: {len}\r\n"));
        }
        if close {
            out.push_str("connection: close\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    fn write_response(&mut self, r: &Resp, head_only: bool) -> io::Result<()> {
        let mut bytes = self.head_bytes(r, None, r.close);
        if !head_only {
            bytes.extend_from_slice(&r.body);
        }
        self.stream.write_all(&bytes)?;
        self.stream.flush()
    }

    /// Serves one request; returns whether the connection stays open.
    fn serve(&mut self, wire: WireHead, peer: IpAddr) -> bool {
        let keep_alive = wire.keep_alive();
        let Some(framing) = framing(&wire.head) else {
            let _ = self.write_response(&Resp::bad_request(), false);
            return false;
        };
        let mut body = Body {
            framing,
            expects_continue: wire.expects_continue(),
            read: None,
            continue_sent: false,
            failed: false,
        };
        let head_only = wire.head.method == "HEAD";
        let mut ex = Exchange::new(wire.head, peer.to_string(), framing);
        let step = lock(&self.shared.core).begin(&mut ex, Time::now());
        if let Step::Fault(fault) = step {
            return self.apply_fault(fault, &mut ex, &mut body, keep_alive, head_only);
        }
        let mut r = self.complete(&mut ex, &mut body, step);
        // The emulator's log: each customer-session email code, since no email is sent.
        for line in lock(&self.shared.core).take_log() {
            eprintln!("polar-license emulator: {line}");
        }
        // A change (an admin route, an endpoint created or enabled) may have queued webhooks.
        self.shared.wake.notify_all();
        let settled = self.settle_body(&mut body);
        r.close |= !keep_alive || !settled;
        self.write_response(&r, head_only).is_ok() && !r.close
    }

    /// The answer of a step: the body read (with no lock held) when the core needs it.
    fn complete(&mut self, ex: &mut Exchange, body: &mut Body, step: Step) -> Resp {
        let r = self.answer(ex, body, step);
        save_state(self.shared);
        r
    }

    fn answer(&mut self, ex: &mut Exchange, body: &mut Body, step: Step) -> Resp {
        match step {
            Step::Done(r) => r,
            Step::Body(pending) => {
                let read = self.body(body).ok();
                lock(&self.shared.core).finish(ex, pending, read.as_deref(), Time::now())
            }
            // Only `begin` faults, and `serve` applies that one.
            Step::Fault(_) => Resp::internal_error(),
        }
    }

    // ---- Faults ------------------------------------------------------------------------

    /// Sleeps up to `d`; returns `false` when the emulator stopped meanwhile.
    fn pause(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stopped() {
                return false;
            }
            thread::sleep(end.saturating_duration_since(Instant::now()).min(POLL));
        }
        !self.stopped()
    }

    fn apply_fault(
        &mut self,
        fault: Fault,
        ex: &mut Exchange,
        body: &mut Body,
        keep_alive: bool,
        head_only: bool,
    ) -> bool {
        // Take the whole request in first when it is of a sane size.
        if matches!(body.framing, Framing::Length(n) if n <= MAX_BODY) && self.body(body).is_err() {
            return false;
        }
        let settled = body.read.is_some() || body.framing == Framing::Empty;
        let keep = keep_alive && settled;
        match fault {
            Fault::Hang => {
                let _ = self.pause(HANG_LIMIT);
                false
            }
            Fault::CloseImmediately => false,
            Fault::Delay { ms } => {
                if !self.pause(Duration::from_millis(ms)) {
                    return false;
                }
                let step = lock(&self.shared.core).pipeline(ex, Time::now());
                let mut r = self.complete(ex, body, step);
                r.close |= !keep;
                self.write_response(&r, head_only).is_ok() && !r.close
            }
            Fault::SlowBody { ms_per_byte } => {
                let shared = self.shared;
                let _open = OpenStream::new(shared);
                let step = lock(&shared.core).pipeline(ex, Time::now());
                let mut r = self.complete(ex, body, step);
                r.close |= !keep;
                let head = self.head_bytes(&r, None, r.close);
                if self.stream.write_all(&head).is_err() || self.stream.flush().is_err() {
                    return false;
                }
                if !head_only {
                    for byte in r.body.iter() {
                        if !self.pause(Duration::from_millis(ms_per_byte)) {
                            return false;
                        }
                        if self.stream.write_all(&[*byte]).is_err() || self.stream.flush().is_err()
                        {
                            return false;
                        }
                    }
                }
                !r.close
            }
            other => {
                let answer = lock(&self.shared.core).fault_response(&other, ex);
                let Some((mut r, delivery)) = answer else {
                    return false;
                };
                match delivery {
                    Delivery::Truncated { content_length } => {
                        let mut bytes = self.head_bytes(&r, Some(content_length), true);
                        if !head_only {
                            bytes.extend_from_slice(&r.body);
                        }
                        let _ = self.stream.write_all(&bytes);
                        let _ = self.stream.flush();
                        false
                    }
                    Delivery::Huge { bytes } => {
                        let shared = self.shared;
                        let _open = OpenStream::new(shared);
                        r.close = !keep;
                        let head = self.head_bytes(&r, Some(bytes), r.close);
                        if self.stream.write_all(&head).is_err() {
                            return false;
                        }
                        if !head_only && self.stream_huge_body(bytes).is_err() {
                            return false;
                        }
                        self.stream.flush().is_ok() && keep
                    }
                    _ => {
                        r.close = !keep;
                        self.write_response(&r, head_only).is_ok() && keep
                    }
                }
            }
        }
    }

    /// Writes `{"p":"xxx…"}` of exactly `total` bytes, in chunks.
    fn stream_huge_body(&mut self, total: u64) -> io::Result<()> {
        let (prefix, mut left, suffix) = huge_body_parts(total);
        self.stream.write_all(prefix)?;
        let chunk = vec![b'x'; 64 * 1024];
        while left > 0 {
            if self.stopped() {
                return Err(io::Error::other("stopped"));
            }
            let n = left.min(chunk.len() as u64) as usize;
            self.stream.write_all(chunk.get(..n).unwrap_or(&chunk))?;
            left -= n as u64;
        }
        self.stream.write_all(suffix)
    }
}

/// Reason phrases as Python 3.14's `http.HTTPStatus` spells them.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Writes the state file of [`Options::state`](crate::Options::state), when there is one and
/// the state changed (see [`StateFile::save`](crate::statefile::StateFile::save)).
pub(crate) fn save_state(shared: &Shared) {
    if let Some(state) = &shared.state {
        state.save(&shared.core);
    }
}
