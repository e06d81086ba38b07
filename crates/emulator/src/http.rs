//! The HTTP/1.1 server: one thread per connection, requests parsed with
//! `httparse`, responses written by hand (which is what makes the faults
//! possible), and Polar's middleware stack reproduced in its real order.
//!
//! Outermost first, as `server/polar/app.py` builds it (the last middleware
//! added is the outermost): Starlette's ServerErrorMiddleware (bare 500) ·
//! APIVersionMiddleware (404 for a bad `Polar-Version`, else adds
//! `polar-version`) · CORS · MaxBodySize (411/413) · PathRewrite (`/api/v1`) ·
//! rate limit (429) · AuthSubject (401 `invalid_token`) · CacheControl ·
//! Sandbox · the router and endpoints.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::json::{loads_bytes, obj, s, LoadError, J};
use super::ratelimit::in_public_zone;
use super::state::{SvcError, SvcOk};
use super::util::{http_date, lock, percent_decode};
use super::validate::{self, error_body, json_invalid, path_uuid_error};
use super::{Fault, KeyUpdate, SeedKey, Shared};

/// `API_MAX_REQUEST_BODY_SIZE`.
const MAX_BODY: u64 = 10 * 1024 * 1024;
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

/// The three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Validate,
    Activate,
    Deactivate,
}

/// Which license route a (rewritten) path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Public(Op),
    Token(Op),
}

fn route_of(path: &str) -> Option<Route> {
    let op = |name: &str| match name {
        "validate" => Some(Op::Validate),
        "activate" => Some(Op::Activate),
        "deactivate" => Some(Op::Deactivate),
        _ => None,
    };
    if let Some(rest) = path.strip_prefix("/v1/customer-portal/license-keys/") {
        return op(rest).map(Route::Public);
    }
    if let Some(rest) = path.strip_prefix("/v1/license-keys/") {
        return op(rest).map(Route::Token);
    }
    None
}

/// A response being built.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Produced outside every middleware (bad `Polar-Version`, 500): no headers get added.
    bare: bool,
    /// The connection must close after this response.
    close: bool,
}

impl Resp {
    fn new(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            bare: false,
            close: false,
        }
    }

    fn json(status: u16, value: &J) -> Resp {
        match value.to_json() {
            Ok(text) => Resp::json_text(status, &text),
            Err(_) => Resp::internal_error(),
        }
    }

    fn json_text(status: u16, text: &str) -> Resp {
        let mut r = Resp::new(status);
        r.set("content-type", "application/json");
        r.body = text.as_bytes().to_vec();
        r
    }

    fn text(status: u16, text: &str) -> Resp {
        let mut r = Resp::new(status);
        r.set("content-type", "text/plain; charset=utf-8");
        r.body = text.as_bytes().to_vec();
        r
    }

    /// Starlette's ServerErrorMiddleware answer.
    fn internal_error() -> Resp {
        let mut r = Resp::text(500, "Internal Server Error");
        r.bare = true;
        r
    }

    fn error(status: u16, error: &str, detail: &str) -> Resp {
        Resp::json(
            status,
            &obj(vec![("error", s(error)), ("detail", s(detail))]),
        )
    }

    fn detail(status: u16, detail: &str) -> Resp {
        Resp::json(status, &obj(vec![("detail", s(detail))]))
    }

    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: &str, value: &str) {
        if let Some(slot) = self
            .headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            slot.1 = value.to_string();
        } else {
            self.headers.push((name.to_string(), value.to_string()));
        }
    }
}

/// A parsed request head. Header names are lower-case; values are Latin-1 decoded.
#[derive(Debug, Clone)]
struct Head {
    method: String,
    target: String,
    minor_version: u8,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Neither `Content-Length` nor `Transfer-Encoding`.
    Empty,
    Length(u64),
    /// `Transfer-Encoding` without `Content-Length`: never read (411 for POST).
    Chunked,
}

/// One request in flight.
struct Exchange {
    head: Head,
    /// Percent-decoded path after the `/api/v1` → `/v1` rewrite.
    path: String,
    /// Whether the `/api/v1` alias was used.
    deprecated: bool,
    /// The resolved `Polar-Version` (set by the outermost middleware).
    version: String,
    peer: IpAddr,
    framing: Framing,
    body: Option<Vec<u8>>,
    continue_sent: bool,
}

impl Exchange {
    fn method(&self) -> &str {
        &self.head.method
    }

    fn expects_continue(&self) -> bool {
        self.head.minor_version == 1 && self.head.has_token("expect", "100-continue")
    }

    fn is_preflight(&self) -> bool {
        self.method() == "OPTIONS"
            && self.head.has("origin")
            && self.head.has("access-control-request-method")
    }
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
                let mut r = Resp::text(400, "Invalid HTTP request received.");
                r.close = true;
                let _ = conn.write_response(&r, false);
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
    Head(Head),
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
struct OpenStream<'s>(&'s AtomicU64);

impl<'s> OpenStream<'s> {
    fn new(counter: &'s AtomicU64) -> OpenStream<'s> {
        counter.fetch_add(1, Ordering::SeqCst);
        OpenStream(counter)
    }
}

impl Drop for OpenStream<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
                            minor_version: req.version.unwrap_or(1),
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
                        self.buf.drain(..n);
                        return HeadRead::Head(head);
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

    /// Reads the body for an endpoint (sending `100 Continue` first when asked).
    fn body(&mut self, ex: &mut Exchange) -> Result<Vec<u8>, ()> {
        if let Some(body) = &ex.body {
            return Ok(body.clone());
        }
        let body = match ex.framing {
            Framing::Empty | Framing::Chunked => Vec::new(),
            Framing::Length(n) => {
                let n = usize::try_from(n).map_err(|_| ())?;
                if ex.expects_continue() && !ex.continue_sent && n > 0 && self.buf.len() < n {
                    ex.continue_sent = true;
                    self.stream
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .map_err(|_| ())?;
                }
                self.read_exact_body(n)?
            }
        };
        ex.body = Some(body.clone());
        Ok(body)
    }

    /// After a response that left the body unread: discard it when that is
    /// safe, else report that the connection must close.
    fn settle_body(&mut self, ex: &mut Exchange) -> bool {
        if ex.body.is_some() {
            return true;
        }
        match ex.framing {
            Framing::Empty => true,
            Framing::Chunked => false,
            Framing::Length(n) => {
                if n > MAX_BODY || (ex.expects_continue() && !ex.continue_sent) {
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
        let mut out = format!("HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
        out.push_str(&format!("date: {}\r\n", http_date(self.shared.now())));
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
    fn serve(&mut self, head: Head, peer: IpAddr) -> bool {
        let keep_alive = if head.minor_version == 0 {
            head.has_token("connection", "keep-alive")
        } else {
            !head.has_token("connection", "close")
        };
        let framing = match framing(&head) {
            Some(f) => f,
            None => {
                let mut r = Resp::text(400, "Invalid HTTP request received.");
                r.close = true;
                let _ = self.write_response(&r, false);
                return false;
            }
        };
        let raw_path = head.target.split(['?', '#']).next().unwrap_or("");
        let raw_path = strip_absolute_form(raw_path);
        let decoded = percent_decode(raw_path);
        let (path, deprecated) = match decoded.strip_prefix("/api/v1") {
            Some(rest) => (format!("/v1{rest}"), true),
            None => (decoded.clone(), false),
        };
        let mut ex = Exchange {
            head,
            path,
            deprecated,
            version: String::new(),
            peer,
            framing,
            body: None,
            continue_sent: false,
        };
        let head_only = ex.method() == "HEAD";

        if decoded == "/__emulator" || decoded.starts_with("/__emulator/") {
            let mut r = self.admin(&mut ex, &decoded);
            let settled = self.settle_body(&mut ex);
            r.close |= !keep_alive || !settled;
            return self.write_response(&r, head_only).is_ok() && !r.close;
        }

        if route_of(&ex.path).is_some() && !ex.is_preflight() {
            self.shared.requests.fetch_add(1, Ordering::SeqCst);
            let fault = lock(&self.shared.fault).clone();
            if let Some(fault) = fault {
                return self.apply_fault(fault, &mut ex, keep_alive, head_only);
            }
        }

        let mut r = self.pipeline(&mut ex);
        let settled = self.settle_body(&mut ex);
        r.close |= !keep_alive || !settled;
        self.write_response(&r, head_only).is_ok() && !r.close
    }

    // ---- Polar's middleware stack, outermost first -------------------------------------

    fn pipeline(&mut self, ex: &mut Exchange) -> Resp {
        let version = match api_version(&ex.head, &self.shared.options) {
            Some(v) => v,
            None => {
                let mut r = Resp::detail(404, "Not Found");
                r.bare = true;
                return r;
            }
        };
        ex.version.clone_from(&version);
        let mut r = self.cors_layer(ex);
        if !r.bare {
            r.set("polar-version", &version);
        }
        r
    }

    fn cors_layer(&mut self, ex: &mut Exchange) -> Resp {
        let Some(origin) = ex.head.get("origin").map(str::to_string) else {
            return self.max_body_layer(ex);
        };
        if ex.is_preflight() {
            return preflight(&ex.head);
        }
        let mut r = self.max_body_layer(ex);
        if !r.bare {
            add_simple_cors(&mut r, &ex.head, &origin);
        }
        r
    }

    fn max_body_layer(&mut self, ex: &mut Exchange) -> Resp {
        let needs_length = matches!(ex.method(), "POST" | "PUT" | "PATCH");
        match ex.framing {
            Framing::Length(n) if n > MAX_BODY => {
                return Resp::error(
                    413,
                    "RequestBodyTooLarge",
                    "Request body exceeded the maximum allowed size of 10485760 bytes.",
                );
            }
            Framing::Empty | Framing::Chunked if needs_length => {
                return Resp::error(
                    411,
                    "LengthRequired",
                    "A Content-Length header is required.",
                );
            }
            _ => {}
        }
        let mut r = self.rate_limit_layer(ex);
        if ex.deprecated && !r.bare {
            r.set("x-polar-deprecation-notice", DEPRECATION_NOTICE);
        }
        r
    }

    fn rate_limit_layer(&mut self, ex: &mut Exchange) -> Resp {
        let options = &self.shared.options;
        if options.rate_limit && ex.path.starts_with("/v1") {
            let identity = self.rate_limit_identity(ex);
            let retry_after = lock(&self.shared.limiter).check(
                &identity,
                in_public_zone(&ex.path),
                options.rate_limit_block,
                Instant::now(),
            );
            if let Some(secs) = retry_after {
                let mut r = Resp::new(429);
                r.set("retry-after", &secs.to_string());
                return r;
            }
        }
        self.auth_layer(ex)
    }

    fn rate_limit_identity(&self, ex: &Exchange) -> String {
        match bearer_token(&ex.head) {
            Some(token) => {
                let store = lock(&self.shared.store);
                match store.tokens.iter().find(|t| t.token == token) {
                    Some(t) => format!("organization:{}", t.organization_id),
                    None => format!("token:{token}"),
                }
            }
            None => match ex.head.get("true-client-ip") {
                Some(ip) => ip.to_string(),
                None => ex.peer.to_string(),
            },
        }
    }

    fn auth_layer(&mut self, ex: &mut Exchange) -> Resp {
        let auth = match bearer_token(&ex.head) {
            None => Auth::Anonymous,
            Some(token) => {
                let store = lock(&self.shared.store);
                match store.tokens.iter().find(|t| t.token == token) {
                    Some(t) => Auth::Token {
                        organization_id: t.organization_id,
                        scopes: t.scopes.clone(),
                    },
                    None => {
                        return oauth2_error(401, "invalid_token", INVALID_TOKEN_DESCRIPTION, None)
                    }
                }
            }
        };
        let mut r = self.router(ex, &auth);
        if !r.bare {
            if !r.has("cache-control") {
                r.set("cache-control", "private, no-store");
            }
            if self.shared.options.sandbox {
                r.set("x-polar-sandbox", "1");
            }
        }
        r
    }

    // ---- The router and the endpoints ---------------------------------------------------

    fn router(&mut self, ex: &mut Exchange, auth: &Auth) -> Resp {
        match route_of(&ex.path) {
            Some(Route::Public(op)) => match ex.method() {
                "POST" => self.endpoint(ex, op, None),
                // GET /v1/customer-portal/license-keys/{id} needs a customer session.
                "GET" | "HEAD" => unauthorized(),
                _ => method_not_allowed(),
            },
            Some(Route::Token(op)) => match ex.method() {
                "POST" => self.endpoint(ex, op, Some(auth)),
                // GET and PATCH /v1/license-keys/{id}.
                m @ ("GET" | "HEAD" | "PATCH") => {
                    let needed: &[&str] = if m == "PATCH" {
                        &["license_keys:write"]
                    } else {
                        &["license_keys:read", "license_keys:write"]
                    };
                    match auth {
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
                    }
                }
                _ => method_not_allowed(),
            },
            None => {
                // Starlette's redirect_slashes.
                let alternative = match ex.path.strip_suffix('/') {
                    Some(trimmed) => trimmed.to_string(),
                    None => format!("{}/", ex.path),
                };
                if route_of(&alternative).is_some() {
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
                }
            }
        }
    }

    fn endpoint(&mut self, ex: &mut Exchange, op: Op, token_auth: Option<&Auth>) -> Resp {
        let raw = match self.body(ex) {
            Ok(raw) => raw,
            Err(()) => {
                let mut r = Resp::text(400, "Invalid HTTP request received.");
                r.bare = true;
                r.close = true;
                return r;
            }
        };
        // FastAPI: an empty body is `None`; JSON is parsed only for a JSON content type.
        let body = if raw.is_empty() {
            J::Null
        } else if is_json_content_type(ex.head.get("content-type")) {
            match loads_bytes(&raw) {
                Ok(v) => v,
                Err(LoadError::Decode { msg, pos }) => {
                    return Resp::json(422, &error_body(&[json_invalid(msg, pos)]));
                }
                Err(LoadError::Other) => {
                    return Resp::detail(400, "There was an error parsing the body");
                }
            }
        } else {
            J::Str(String::from_utf8_lossy(&raw).into_owned())
        };
        let scope = match token_auth {
            None => None,
            Some(Auth::Anonymous) => return unauthorized(),
            Some(Auth::Token { scopes, .. })
                if !scopes.iter().any(|s| s == "license_keys:write") =>
            {
                return insufficient_scope("license_keys:write");
            }
            Some(Auth::Token {
                organization_id, ..
            }) => Some(*organization_id),
        };
        let now = self.shared.now();
        let result = match op {
            Op::Validate => match validate::validate_req(&body) {
                Ok(req) => lock(&self.shared.store).validate(&req, scope, now, &ex.version),
                Err(errors) => return Resp::json(422, &error_body(&errors)),
            },
            Op::Activate => match validate::activate_req(&body) {
                Ok(req) => lock(&self.shared.store).activate(&req, scope, now, &ex.version),
                Err(errors) => return Resp::json(422, &error_body(&errors)),
            },
            Op::Deactivate => match validate::deactivate_req(&body) {
                Ok(req) => lock(&self.shared.store).deactivate(&req, scope, now),
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
        keep_alive: bool,
        head_only: bool,
    ) -> bool {
        // Take the whole request in first when it is of a sane size.
        if matches!(ex.framing, Framing::Length(n) if n <= MAX_BODY) && self.body(ex).is_err() {
            return false;
        }
        let settled = ex.body.is_some() || ex.framing == Framing::Empty;
        let keep = keep_alive && settled;
        let decorate = |r: &mut Resp, ex: &Exchange, version: bool| {
            if let Some(origin) = ex.head.get("origin") {
                add_simple_cors(r, &ex.head, origin);
            }
            if version {
                let options = &self.shared.options;
                let version = api_version(&ex.head, options);
                r.set(
                    "polar-version",
                    version.as_deref().unwrap_or(&options.api_version),
                );
            }
        };
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
                let mut r = self.pipeline(ex);
                r.close |= !keep;
                self.write_response(&r, head_only).is_ok() && !r.close
            }
            Fault::SlowBody { ms_per_byte } => {
                let shared = self.shared;
                let _open = OpenStream::new(&shared.open_streams);
                let mut r = self.pipeline(ex);
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
            Fault::Status { status, body } => {
                let mut r = if serde_json::from_str::<serde_json::Value>(&body).is_ok() {
                    Resp::json_text(status, &body)
                } else {
                    Resp::text(status, &body)
                };
                decorate(&mut r, ex, false);
                r.close = !keep;
                self.write_response(&r, head_only).is_ok() && keep
            }
            Fault::Respond {
                status,
                headers,
                body,
            } => {
                let mut r = Resp::new(status);
                r.bare = true;
                for (name, value) in &headers {
                    r.set(name, value);
                }
                r.body = body.into_bytes();
                r.close = !keep;
                self.write_response(&r, head_only).is_ok() && keep
            }
            Fault::RateLimited { retry_after } => {
                let mut r = Resp::new(429);
                if let Some(secs) = retry_after {
                    r.set("retry-after", &secs.to_string());
                }
                decorate(&mut r, ex, true);
                r.close = !keep;
                self.write_response(&r, head_only).is_ok() && keep
            }
            Fault::Malformed => {
                let mut r = Resp::json_text(200, "{\"id\": this is not JSON <html>");
                decorate(&mut r, ex, true);
                r.set("cache-control", "private, no-store");
                r.close = !keep;
                self.write_response(&r, head_only).is_ok() && keep
            }
            Fault::Truncated => {
                let full = "{\"id\":\"f7d9ba8a-dd63-4db8-bb8b-015006335825\",\"created_at\":\"2026-08-01T10:15:30.412907Z\",\"modified_at\":null,\"organization_id\":\"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10\"}";
                let mut r = Resp::json_text(200, full);
                decorate(&mut r, ex, true);
                r.set("cache-control", "private, no-store");
                let mut bytes = self.head_bytes(&r, Some(full.len() as u64), true);
                if !head_only {
                    bytes.extend_from_slice(&full.as_bytes()[..full.len() / 2]);
                }
                let _ = self.stream.write_all(&bytes);
                let _ = self.stream.flush();
                false
            }
            Fault::Huge { bytes } => {
                let shared = self.shared;
                let _open = OpenStream::new(&shared.open_streams);
                let mut r = Resp::json_text(200, "");
                decorate(&mut r, ex, true);
                r.set("cache-control", "private, no-store");
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
        }
    }

    /// Writes `{"p":"xxx…"}` of exactly `total` bytes, in chunks.
    fn stream_huge_body(&mut self, total: u64) -> io::Result<()> {
        let (prefix, suffix): (&[u8], &[u8]) = if total >= 8 {
            (b"{\"p\":\"", b"\"}")
        } else {
            (b"", b"")
        };
        self.stream.write_all(prefix)?;
        let mut left = total - (prefix.len() + suffix.len()) as u64;
        let chunk = vec![b'x'; 64 * 1024];
        while left > 0 {
            if self.stopped() {
                return Err(io::Error::other("stopped"));
            }
            let n = left.min(chunk.len() as u64) as usize;
            self.stream.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        self.stream.write_all(suffix)
    }

    // ---- Admin routes (`/__emulator/…`) -------------------------------------------------

    fn admin(&mut self, ex: &mut Exchange, path: &str) -> Resp {
        let origin = ex.head.get("origin").map(str::to_string);
        if ex.is_preflight() {
            let mut r = Resp::text(200, "OK");
            r.set("access-control-allow-origin", "*");
            r.set("access-control-allow-methods", ALLOW_METHODS);
            let requested = ex
                .head
                .get("access-control-request-headers")
                .unwrap_or("*")
                .to_string();
            r.set("access-control-allow-headers", &requested);
            r.set("access-control-max-age", "600");
            return r;
        }
        let mut r = self.admin_route(ex, path);
        if origin.is_some() {
            r.set("access-control-allow-origin", "*");
        }
        r.set("cache-control", "no-store");
        r
    }

    fn admin_body(&mut self, ex: &mut Exchange) -> Result<Vec<u8>, Resp> {
        match ex.framing {
            Framing::Chunked => Err(Resp::error(
                411,
                "LengthRequired",
                "A Content-Length header is required.",
            )),
            Framing::Length(n) if n > MAX_BODY => Err(Resp::error(
                413,
                "RequestBodyTooLarge",
                "Request body exceeded the maximum allowed size of 10485760 bytes.",
            )),
            _ => self.body(ex).map_err(|()| {
                let mut r = Resp::text(400, "Invalid HTTP request received.");
                r.close = true;
                r
            }),
        }
    }

    fn admin_route(&mut self, ex: &mut Exchange, path: &str) -> Resp {
        let sub = path.strip_prefix("/__emulator").unwrap_or("");
        let method = ex.method().to_string();
        let get = method == "GET" || method == "HEAD";
        match sub {
            "/health" if get => Resp::json_text(200, "{\"ok\":true}"),
            "/requests" if get => Resp::json_text(
                200,
                &format!(
                    "{{\"count\":{}}}",
                    self.shared.requests.load(Ordering::SeqCst)
                ),
            ),
            "/streams" if get => Resp::json_text(
                200,
                &format!(
                    "{{\"open\":{}}}",
                    self.shared.open_streams.load(Ordering::SeqCst)
                ),
            ),
            "/requests/reset" if method == "POST" => {
                self.shared.requests.store(0, Ordering::SeqCst);
                Resp::new(204)
            }
            "/fault" if get => {
                let fault = lock(&self.shared.fault).clone();
                match serde_json::to_string(&fault) {
                    Ok(text) => Resp::json_text(200, &text),
                    Err(_) => Resp::internal_error(),
                }
            }
            "/fault" if method == "POST" => {
                let raw = match self.admin_body(ex) {
                    Ok(raw) => raw,
                    Err(r) => return r,
                };
                let text = String::from_utf8_lossy(&raw);
                let parsed = if text.trim().is_empty() {
                    Ok(None)
                } else {
                    serde_json::from_str::<Option<Fault>>(&text)
                };
                match parsed {
                    Ok(fault) => {
                        *lock(&self.shared.fault) = fault;
                        Resp::new(204)
                    }
                    Err(e) => Resp::detail(400, &format!("invalid fault: {e}")),
                }
            }
            "/keys" if method == "POST" => {
                let raw = match self.admin_body(ex) {
                    Ok(raw) => raw,
                    Err(r) => return r,
                };
                let key: SeedKey = match serde_json::from_slice(&raw) {
                    Ok(key) => key,
                    Err(e) => return Resp::detail(400, &format!("invalid key: {e}")),
                };
                let mut store = lock(&self.shared.store);
                match store.add_key(&key) {
                    Ok(()) => match store.key_json(&key.key) {
                        Some(j) => Resp::json(201, &j),
                        None => Resp::internal_error(),
                    },
                    Err(e) => Resp::detail(400, &e),
                }
            }
            _ => {
                let Some(rest) = sub.strip_prefix("/keys/") else {
                    return if matches!(
                        sub,
                        "/health"
                            | "/requests"
                            | "/requests/reset"
                            | "/streams"
                            | "/fault"
                            | "/keys"
                    ) {
                        Resp::detail(405, "Method Not Allowed")
                    } else {
                        Resp::detail(404, "Not Found")
                    };
                };
                if let Some(key) = rest.strip_suffix("/rotate") {
                    if method != "POST" {
                        return Resp::detail(405, "Method Not Allowed");
                    }
                    return match lock(&self.shared.store).rotate_key(key) {
                        Some(new) => {
                            Resp::json(200, &J::Obj(vec![("key".to_string(), J::Str(new))]))
                        }
                        None => Resp::detail(404, "Not Found"),
                    };
                }
                if let Some(key) = rest.strip_suffix("/activations") {
                    if !get {
                        return Resp::detail(405, "Method Not Allowed");
                    }
                    let store = lock(&self.shared.store);
                    if store.key_json(key).is_none() {
                        return Resp::detail(404, "Not Found");
                    }
                    return Resp::json(200, &J::Arr(store.activations_json(key)));
                }
                match method.as_str() {
                    "GET" | "HEAD" => match lock(&self.shared.store).key_json(rest) {
                        Some(j) => Resp::json(200, &j),
                        None => Resp::detail(404, "Not Found"),
                    },
                    "PATCH" => {
                        let raw = match self.admin_body(ex) {
                            Ok(raw) => raw,
                            Err(r) => return r,
                        };
                        let update: KeyUpdate = match serde_json::from_slice(&raw) {
                            Ok(u) => u,
                            Err(e) => return Resp::detail(400, &format!("invalid update: {e}")),
                        };
                        match lock(&self.shared.store).update_key(rest, &update) {
                            Ok(Some(j)) => Resp::json(200, &j),
                            Ok(None) => Resp::detail(404, "Not Found"),
                            Err(e) => Resp::detail(400, &e),
                        }
                    }
                    _ => Resp::detail(405, "Method Not Allowed"),
                }
            }
        }
    }
}

/// Who is calling, as the auth middleware resolved it.
enum Auth {
    Anonymous,
    Token {
        organization_id: uuid::Uuid,
        scopes: Vec<String>,
    },
}

/// Body framing from the headers; `None` for a malformed or contradictory head.
fn framing(head: &Head) -> Option<Framing> {
    let lengths: Vec<&str> = head
        .headers
        .iter()
        .filter(|(k, _)| k == "content-length")
        .map(|(_, v)| v.trim())
        .collect();
    let chunked = head.has("transfer-encoding");
    let length = match lengths.first() {
        None => None,
        Some(first) => {
            if lengths.iter().any(|l| l != first)
                || first.is_empty()
                || !first.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            Some(first.parse::<u64>().ok()?)
        }
    };
    match (length, chunked) {
        (Some(_), true) => None,
        (Some(n), false) => Some(Framing::Length(n)),
        (None, true) => Some(Framing::Chunked),
        (None, false) => Some(Framing::Empty),
    }
}

fn strip_absolute_form(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            return rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
        }
    }
    target
}

/// The resolved API version, or `None` when the header is invalid or not served (unknown,
/// or removed: docs/polar-api.md §13).
fn api_version(head: &Head, options: &super::Options) -> Option<String> {
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

/// FastAPI parses the body as JSON when the content type is absent, `application/json`
/// or `application/*+json` (parsed like `email.message.Message`).
fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else {
        return true;
    };
    let main = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if main.matches('/').count() != 1 {
        return false;
    }
    match main.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

/// authlib's OAuth2 error response (`invalid_token`, `insufficient_scope`), serialized
/// with `json.dumps` defaults (spaces after separators).
fn oauth2_error(status: u16, error: &str, description: &str, scope: Option<&str>) -> Resp {
    let mut body = String::from("{");
    super::json::write_str(&mut body, "error");
    body.push_str(": ");
    super::json::write_str(&mut body, error);
    body.push_str(", ");
    super::json::write_str(&mut body, "error_description");
    body.push_str(": ");
    super::json::write_str(&mut body, description);
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

fn method_not_allowed() -> Resp {
    let mut r = Resp::detail(405, "Method Not Allowed");
    r.set("allow", "POST");
    r
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
