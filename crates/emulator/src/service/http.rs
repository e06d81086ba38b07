//! The exchange's vocabulary: the moment, the request and the response the core is handed
//! and hands back, the framing a request's headers declare, and the exchange a request
//! becomes inside the core.

use std::time::Duration;

use time::OffsetDateTime;

use super::{SessionAuth, BAD_REQUEST};
use crate::json::{obj, s, J};
use crate::util::percent_decode;

// ---- The public surface: time, request, response ---------------------------------------

/// A moment, as the core is told it (it never reads a clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Wall-clock time: Polar's timestamps, expiry checks and the `date` header (the core adds
    /// its clock offset, [`Core::set_clock_offset`](super::Core::set_clock_offset), and keeps microseconds, Python's precision).
    pub wall: OffsetDateTime,
    /// A monotonic reading, the time since any fixed origin (the rate limiter's clock: its
    /// one-second windows and its block).
    pub monotonic: Duration,
}

impl Time {
    /// A moment from milliseconds: `unix_ms` since the Unix epoch (`Date.now()`) and
    /// `monotonic_ms` since any fixed origin (`performance.now()`). `None` when either is not
    /// finite, negative (`monotonic_ms`) or out of range.
    pub fn from_millis(unix_ms: f64, monotonic_ms: f64) -> Option<Time> {
        if !unix_ms.is_finite() || !monotonic_ms.is_finite() || monotonic_ms < 0.0 {
            return None;
        }
        // Whole microseconds: within ±2^53 µs (285 years of the epoch) f64 is exact.
        let micros = (unix_ms * 1000.0).round();
        if micros.abs() > 9_007_199_254_740_992.0 {
            return None;
        }
        let wall =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros as i64) * 1000).ok()?;
        let monotonic = Duration::try_from_secs_f64(monotonic_ms / 1000.0).ok()?;
        Some(Time { wall, monotonic })
    }

    /// Now, from the system clocks (`OffsetDateTime::now_utc()` and a process-wide
    /// `Instant`). Native only: on wasm32 the host passes the time.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn now() -> Time {
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        Time {
            wall: OffsetDateTime::now_utc(),
            monotonic: origin.elapsed(),
        }
    }
}

/// A request as received: the head as sent and the whole body.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (`POST`).
    pub method: String,
    /// The request target: path and query, as sent (percent-escapes included); an
    /// absolute-form target (`http://host/path`) is accepted too.
    pub target: String,
    /// Every header line in order, repeated ones repeated (names in any case; values as
    /// Latin-1 text). `content-length` or `transfer-encoding` must be among them for a body:
    /// the body's framing is read from them, as Polar's server does (`POST` without
    /// `content-length` answers 411).
    pub headers: Vec<(String, String)>,
    /// The body (empty when there is none).
    pub body: Vec<u8>,
    /// The client's address (`127.0.0.1`): the rate limiter's identity when no
    /// `True-Client-IP` or token is sent.
    pub peer: String,
}

impl std::fmt::Debug for Request {
    /// The head's names only and the body's length: a body and headers can carry keys and
    /// tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// How a [`Response`] goes out: the faults that are about the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Send the response as it is.
    Whole,
    /// [`Fault::Delay`](crate::Fault::Delay): no response yet. Wait `ms`, then send what [`Core::resume`](super::Core::resume) answers
    /// for the same request (it is computed then, as Polar would).
    Delay {
        /// The delay in milliseconds.
        ms: u64,
    },
    /// [`Fault::SlowBody`](crate::Fault::SlowBody): send the head at once, then the body one byte at a time, pausing
    /// before each.
    SlowBody {
        /// The pause before each body byte, in milliseconds.
        ms_per_byte: u64,
    },
    /// [`Fault::Truncated`](crate::Fault::Truncated): send the head with this `content-length`, then the body (shorter
    /// than that), then close the connection.
    Truncated {
        /// The `content-length` to declare.
        content_length: u64,
    },
    /// [`Fault::Huge`](crate::Fault::Huge): declare `content-length: bytes` and stream a JSON body of exactly that
    /// many bytes: `{"p":"xxx…x"}` (8 bytes and more; below 8, that many `x`). The response's
    /// own body is empty.
    Huge {
        /// The body size in bytes.
        bytes: u64,
    },
    /// [`Fault::Hang`](crate::Fault::Hang): never answer; keep the connection open (the native server: until it
    /// stops or 60 s pass).
    Hang,
    /// [`Fault::CloseImmediately`](crate::Fault::CloseImmediately): close the connection without answering.
    Close,
}

/// The core's answer to a [`Request`].
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (0 when [`Response::delivery`] is `Delay`, `Hang` or `Close`: nothing
    /// to send yet, or ever).
    pub status: u16,
    /// The headers in order, `date` first (the emulator's clock). Never `content-length` nor
    /// `connection`: the transport adds `content-length` (the body's length, or the one
    /// [`Delivery`] names) to every status but 1xx, 204 and 304, as Polar's server does.
    pub headers: Vec<(String, String)>,
    /// The body (not sent for a `HEAD` request; its length is still the `content-length`).
    pub body: Vec<u8>,
    /// The connection must close after this response.
    pub close: bool,
    /// How to send it.
    pub delivery: Delivery,
}

impl std::fmt::Debug for Response {
    /// The body's length only: a body can carry a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("close", &self.close)
            .field("delivery", &self.delivery)
            .finish()
    }
}

impl Response {
    pub(super) fn nothing(delivery: Delivery) -> Response {
        Response {
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
            close: true,
            delivery,
        }
    }

    /// The value of a header (first match, any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The body of [`Delivery::Huge`] in three parts: a prefix, then `x` repeated, then a suffix,
/// `bytes` in all.
pub fn huge_body_parts(bytes: u64) -> (&'static [u8], u64, &'static [u8]) {
    if bytes >= 8 {
        (b"{\"p\":\"", bytes - 8, b"\"}")
    } else {
        (b"", bytes, b"")
    }
}

// ---- Internals shared with the native server ------------------------------------------

/// The three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Validate,
    Activate,
    Deactivate,
}

/// Which license route a (rewritten) path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Public(Op),
    Token(Op),
}

pub(crate) fn route_of(path: &str) -> Option<Route> {
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
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Produced outside every middleware (bad `Polar-Version`, 500): no headers get added.
    pub(crate) bare: bool,
    /// The connection must close after this response.
    pub(crate) close: bool,
}

impl Resp {
    pub(crate) fn new(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            bare: false,
            close: false,
        }
    }

    pub(super) fn json(status: u16, value: &J) -> Resp {
        match value.to_json() {
            Ok(text) => Resp::json_text(status, &text),
            Err(_) => Resp::internal_error(),
        }
    }

    pub(super) fn json_text(status: u16, text: &str) -> Resp {
        let mut r = Resp::new(status);
        r.set("content-type", "application/json");
        r.body = text.as_bytes().to_vec();
        r
    }

    pub(crate) fn text(status: u16, text: &str) -> Resp {
        let mut r = Resp::new(status);
        r.set("content-type", "text/plain; charset=utf-8");
        r.body = text.as_bytes().to_vec();
        r
    }

    /// What the ASGI server answers an unparseable request: 400, then close.
    pub(crate) fn bad_request() -> Resp {
        let mut r = Resp::text(400, BAD_REQUEST);
        r.close = true;
        r
    }

    /// A body that could not be read: the ASGI server's 400, past every middleware.
    pub(crate) fn unread() -> Resp {
        let mut r = Resp::bad_request();
        r.bare = true;
        r
    }

    /// Starlette's ServerErrorMiddleware answer.
    pub(crate) fn internal_error() -> Resp {
        let mut r = Resp::text(500, "Internal Server Error");
        r.bare = true;
        r
    }

    pub(super) fn error(status: u16, error: &str, detail: &str) -> Resp {
        Resp::json(
            status,
            &obj(vec![("error", s(error)), ("detail", s(detail))]),
        )
    }

    pub(super) fn detail(status: u16, detail: &str) -> Resp {
        Resp::json(status, &obj(vec![("detail", s(detail))]))
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn set(&mut self, name: &str, value: &str) {
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

/// A request head. Header names are lower-case; values are Latin-1 decoded.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether a comma-separated header (every line of it) holds `token`, any case (the native
    /// server's keep-alive and `Expect` handling).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Neither `Content-Length` nor `Transfer-Encoding`.
    Empty,
    Length(u64),
    /// `Transfer-Encoding` without `Content-Length`: never read (411 for POST).
    Chunked,
}

/// Body framing from the headers; `None` for a malformed or contradictory head.
pub(crate) fn framing(head: &Head) -> Option<Framing> {
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

pub(crate) fn strip_absolute_form(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            return rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
        }
    }
    target
}

/// One request in flight, as the core sees it.
pub(crate) struct Exchange {
    pub(crate) head: Head,
    /// The percent-decoded path, before the `/api/v1` rewrite.
    pub(super) decoded: String,
    /// Percent-decoded path after the `/api/v1` → `/v1` rewrite.
    pub(super) path: String,
    /// Whether the `/api/v1` alias was used.
    pub(super) deprecated: bool,
    /// The resolved `Polar-Version` (set by the outermost middleware).
    pub(super) version: String,
    pub(super) peer: String,
    pub(crate) framing: Framing,
    /// The customer of a valid session token (`polar_cst_…`), set by the auth layer; such a
    /// caller is anonymous to every other route (polar-api.md §16.0).
    pub(super) session: Option<SessionAuth>,
}

impl Exchange {
    pub(crate) fn new(head: Head, peer: String, framing: Framing) -> Exchange {
        let raw_path = head.target.split(['?', '#']).next().unwrap_or("");
        let raw_path = strip_absolute_form(raw_path);
        let decoded = percent_decode(raw_path);
        let (path, deprecated) = match decoded.strip_prefix("/api/v1") {
            Some(rest) => (format!("/v1{rest}"), true),
            None => (decoded.clone(), false),
        };
        Exchange {
            head,
            decoded,
            path,
            deprecated,
            version: String::new(),
            peer,
            framing,
            session: None,
        }
    }

    pub(super) fn method(&self) -> &str {
        &self.head.method
    }

    pub(super) fn is_preflight(&self) -> bool {
        self.method() == "OPTIONS"
            && self.head.has("origin")
            && self.head.has("access-control-request-method")
    }
}
