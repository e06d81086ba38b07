//! Hostile inputs as a table (issue #62 item 5), shared by the relay's and the emulator's
//! suites: every shape an attacker sends to one route (a body nested 10,000 deep, 64 KiB of
//! duplicate keys, huge numbers, bytes that are not UTF-8, NUL bytes, overlong strings, wrong
//! content types, absurd paths and query strings, methods not allowed, oversized or broken
//! headers, broken chunked framing, and requests that never end: slow headers, a chunked body
//! without its last chunk, a body shorter than its length, a webhook delivery whose signature
//! is forged or a genuine one replayed past the tolerance), each as the raw bytes sent over one connection, and the exchange that sends them
//! and reads the answer with a bound; and the crowds ([`crowds`]): many connections at once
//! from many addresses, preflight-only or never ending, while another client must be served.
//!
//! A suite crosses [`shapes`] with its crate's own list of routes, so that a route added to
//! that list is attacked without the suite being edited. Native only.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Headers for a body (a webhook's signature, computed over the bytes sent), signed `age`
/// seconds ago (0: now; a delivery captured and replayed later is signed in the past).
pub type Sign = Arc<dyn Fn(&[u8], i64) -> Vec<(String, String)> + Send + Sync>;

/// How long ago the replayed delivery of [`shapes`] was signed: an hour, past Polar's five
/// minutes (Standard Webhooks' tolerance, the relay's `WEBHOOK_TOLERANCE`).
pub const REPLAYED_AGE: i64 = 3_600;

/// One route to attack.
#[derive(Clone)]
pub struct Target {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The method that reaches its rules.
    pub method: String,
    /// Its path, parameters filled.
    pub path: String,
    /// Headers every request to it carries (a token), beside `host`, `connection: close` and
    /// the shape's own.
    pub headers: Vec<(String, String)>,
    /// Whether it reads a JSON body.
    pub reads_body: bool,
    /// Headers computed over each body (a signature), so that the body is read.
    pub sign: Option<Sign>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// How a shape is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// All at once: an answer is due.
    Whole,
    /// The request never completes (slow headers, a chunked body without its end, a body
    /// shorter than its length): the server must go on serving others meanwhile and end this
    /// connection itself (an answer or a close) within its timeout.
    Unending,
}

/// What a shape must be answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A 4xx: the input is refused.
    Refused,
    /// Any answer but a 5xx (the route does not read what the shape spoils: a body on a route
    /// that reads none, a query string it ignores).
    NoFault,
}

/// One hostile request.
#[derive(Debug, Clone)]
pub struct Shape {
    /// What it is, for the failure message and the figures.
    pub name: &'static str,
    /// How it is sent.
    pub pace: Pace,
    /// What it must be answered with (for [`Pace::Whole`]).
    pub expect: Expect,
    /// The bytes sent.
    pub bytes: Vec<u8>,
    /// Its body is well-formed JSON (hostile in size or content, not in grammar): a route that
    /// takes any JSON document (a signed webhook acknowledged, a control route) may accept it.
    pub json: bool,
}

/// The head of a request: `method target`, `host`, `connection: close`, the target's headers
/// and `extra`, without the blank line.
fn head(t: &Target, method: &str, path: &str, extra: &[(String, String)]) -> Vec<u8> {
    let mut h = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
        t.addr
    );
    for (k, v) in t.headers.iter().chain(extra) {
        h.push_str(k);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    }
    h.into_bytes()
}

/// A whole request to `t` with `body` (its length framed) and `content_type`.
fn with_body(t: &Target, body: &[u8], content_type: &str) -> Vec<u8> {
    let mut extra = vec![
        ("content-type".to_string(), content_type.to_string()),
        ("content-length".to_string(), body.len().to_string()),
    ];
    if let Some(sign) = &t.sign {
        extra.extend(sign(body, 0));
    }
    let mut bytes = head(t, &t.method, &t.path, &extra);
    bytes.extend(b"\r\n");
    bytes.extend(body);
    bytes
}

/// Bodies that fill `cap` bytes, by shape (each at most `cap` long).
fn bodies(cap: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut dup = String::from("{");
    while dup.len() + 8 < cap {
        dup.push_str("\"a\":0,");
    }
    dup.push_str("\"a\":1}");
    let mut distinct = String::from("{");
    let mut n = 0;
    while distinct.len() + 16 < cap {
        distinct.push_str(&format!("\"k{n}\":0,"));
        n += 1;
    }
    distinct.push_str("\"z\":0}");
    let mut not_utf8 = b"{\"key\":\"".to_vec();
    not_utf8.resize(cap - 2, 0xff);
    not_utf8.extend(b"\"}");
    let mut nul = b"{\"key\":\"".to_vec();
    nul.resize(cap - 2, 0);
    nul.extend(b"\"}");
    let escaped_nul = format!("{{\"key\":\"{}\"}}", "\\u0000".repeat((cap - 12) / 6));
    vec![
        ("10,000 [", "[".repeat(10_000).into_bytes()),
        ("10,000 {\"a\":", "{\"a\":".repeat(10_000).into_bytes()),
        ("[ to the cap", "[".repeat(cap).into_bytes()),
        (
            "balanced to the cap",
            format!("{}{}", "[".repeat(cap / 2), "]".repeat(cap / 2)).into_bytes(),
        ),
        ("one key repeated to the cap", dup.into_bytes()),
        ("distinct keys to the cap", distinct.into_bytes()),
        (
            "a huge integer",
            format!("{{\"key\":{}}}", "9".repeat(cap - 10)).into_bytes(),
        ),
        (
            "a huge exponent",
            b"{\"key\":1e999999999999999999,\"limit\":-1e-999999999}".to_vec(),
        ),
        ("bytes that are not UTF-8", not_utf8),
        ("NUL bytes", nul),
        ("escaped NULs", escaped_nul.into_bytes()),
        (
            "an overlong string",
            format!("{{\"key\":\"{}\"}}", "K".repeat(cap - 12)).into_bytes(),
        ),
        (
            "a lone surrogate",
            b"{\"key\":\"\\ud800\",\"label\":\"\\udfff\\ud800x\"}".to_vec(),
        ),
        ("truncated", b"{\"key\":\"abc".to_vec()),
        ("empty", Vec::new()),
    ]
}

/// Every hostile shape for `t`, bodies up to `cap` bytes (the route's body cap). `full`: the
/// bigger matrix (`FULL=1`): more methods, larger heads.
pub fn shapes(t: &Target, cap: usize, full: bool) -> Vec<Shape> {
    let body_expect = if t.reads_body {
        Expect::Refused
    } else {
        Expect::NoFault
    };
    let whole = |name, expect, bytes| Shape {
        name,
        pace: Pace::Whole,
        expect,
        bytes,
        json: false,
    };
    let mut out: Vec<Shape> = bodies(cap)
        .into_iter()
        .map(|(name, body)| Shape {
            // Nested past any parser's depth is not counted (every reader refuses it).
            json: [
                "one key repeated to the cap",
                "distinct keys to the cap",
                "a huge integer",
                "a huge exponent",
                "escaped NULs",
                "an overlong string",
                "a lone surrogate",
            ]
            .contains(&name),
            ..whole(name, body_expect, with_body(t, &body, "application/json"))
        })
        .collect();
    // Past the cap by a byte (413 where `cap` is the server's own; nested past any parser's
    // depth where the server's cap is larger).
    out.push(whole(
        "over the body cap",
        body_expect,
        with_body(t, &vec![b'['; cap + 1], "application/json"),
    ));
    for (name, ct, body) in [
        ("text/plain", "text/plain", &b"{\"key\":\"a\"}"[..]),
        (
            "a form",
            "application/x-www-form-urlencoded",
            b"key=a&key=b",
        ),
        (
            "multipart",
            "multipart/form-data; boundary=x",
            b"--x\r\ncontent-disposition: form-data; name=\"key\"\r\n\r\na\r\n--x--",
        ),
        ("no type", "", b"{\"key\":\"a\"}"),
    ] {
        out.push(Shape {
            // A JSON body under another type: a route that reads JSON whatever the type says
            // may take it.
            json: body.starts_with(b"{"),
            ..whole(
                match name {
                    "text/plain" => "content-type text/plain",
                    "a form" => "content-type form",
                    "multipart" => "content-type multipart",
                    _ => "content-type empty",
                },
                body_expect,
                with_body(t, body, ct),
            )
        });
    }
    // Paths and query strings (the route's method, no body).
    let bare = |path: &str, method: &str, extra: &[(String, String)]| {
        let mut b = head(t, method, path, extra);
        b.extend(b"content-length: 0\r\n\r\n");
        b
    };
    let long = if full { 60_000 } else { 8_000 };
    out.push(whole(
        "a long path",
        Expect::Refused,
        bare(&format!("{}/{}", t.path, "a".repeat(long)), &t.method, &[]),
    ));
    out.push(whole(
        "dots, NUL and bad escapes in the path",
        Expect::Refused,
        bare(
            &format!("{}/%00/../..%2f..%ff%/%u0000", t.path),
            &t.method,
            &[],
        ),
    ));
    out.push(whole(
        "a long query string",
        // The route may ignore a query it does not read; a body route still needs its body.
        Expect::NoFault,
        bare(
            &format!("{}?{}", t.path, "a=1&".repeat(long / 4)),
            &t.method,
            &[],
        ),
    ));
    out.push(whole(
        "a query of escapes",
        Expect::NoFault,
        bare(
            &format!("{}?%ff%00=%zz&&=&a[]=%C0%80", t.path),
            &t.method,
            &[],
        ),
    ));
    let mut methods = vec!["DELETE", "PUT", "FOO"];
    if full {
        methods.extend([
            "TRACE", "PATCH", "CONNECT", "OPTIONS", "GET", "POST", "M-SEARCH",
        ]);
    }
    for m in methods {
        if m == t.method || (m == "DELETE" && t.path.contains("/endpoints/")) {
            continue;
        }
        out.push(whole(
            match m {
                "DELETE" => "method DELETE",
                "PUT" => "method PUT",
                "FOO" => "method FOO",
                "TRACE" => "method TRACE",
                "PATCH" => "method PATCH",
                "CONNECT" => "method CONNECT",
                "OPTIONS" => "method OPTIONS",
                "GET" => "method GET",
                "POST" => "method POST",
                _ => "method M-SEARCH",
            },
            if matches!(m, "OPTIONS" | "GET" | "POST" | "PATCH") {
                Expect::NoFault
            } else {
                Expect::Refused
            },
            bare(&t.path, m, &[]),
        ));
    }
    // Heads.
    let big = if full { 1 << 20 } else { 100 * 1024 };
    out.push(whole(
        "one huge header",
        Expect::Refused,
        bare(&t.path, &t.method, &[("x-big".into(), "a".repeat(big))]),
    ));
    let many: Vec<(String, String)> = (0..(big / 40))
        .map(|i| (format!("x-h{i}"), "v".repeat(30)))
        .collect();
    out.push(whole(
        "thousands of headers",
        Expect::Refused,
        bare(&t.path, &t.method, &many),
    ));
    let mut bad_header = head(t, &t.method, &t.path, &[]);
    bad_header.extend(b"x-bad: a\0b\xff\r\nno colon here\r\ncontent-length: 0\r\n\r\n");
    out.push(whole("a broken header", Expect::Refused, bad_header));
    let mut two_lengths = head(t, &t.method, &t.path, &[]);
    two_lengths.extend(b"content-length: 2\r\ncontent-length: 5\r\n\r\n{}");
    out.push(whole("two content lengths", Expect::Refused, two_lengths));
    let mut bad_chunk = head(t, &t.method, &t.path, &[]);
    bad_chunk.extend(b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n");
    out.push(whole(
        "a chunk size that is not hex",
        body_expect,
        bad_chunk,
    ));
    let mut huge_chunk = head(t, &t.method, &t.path, &[]);
    huge_chunk.extend(b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}\r\n0\r\n\r\n");
    out.push(whole("a chunk of 2^72 bytes", body_expect, huge_chunk));
    let mut garbage = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec();
    garbage.extend(vec![0u8; 64]);
    garbage.extend(b"\r\n\r\n");
    out.push(whole("TLS bytes instead of HTTP", Expect::Refused, garbage));
    // A delivery whose signature is forged: the headers of another body's signature (a valid
    // form, a wrong MAC), on a body that would be read.
    if let Some(sign) = &t.sign {
        // (Signed, this event is acknowledged: it names no key.)
        let body = br#"{"type":"benefit_grant.updated","timestamp":"2026-01-01T00:00:00Z","data":{"id":"g","customer_id":"c"}}"#;
        let mut extra = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("content-length".to_string(), body.len().to_string()),
        ];
        extra.extend(sign(b"{\"another\":\"body\"}", 0));
        let mut bytes = head(t, &t.method, &t.path, &extra);
        bytes.extend(b"\r\n");
        bytes.extend(body);
        out.push(whole("a forged signature", Expect::Refused, bytes));
        // A genuine delivery captured and replayed an hour later: its signature verifies over
        // its bytes, but its signed time is past the tolerance, so it is refused unread by the
        // rules that would act on it (a replayed revocation or grant changes nothing).
        let mut extra = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("content-length".to_string(), body.len().to_string()),
        ];
        extra.extend(sign(body, REPLAYED_AGE));
        let mut bytes = head(t, &t.method, &t.path, &extra);
        bytes.extend(b"\r\n");
        bytes.extend(body);
        out.push(whole(
            "a genuine signature replayed an hour later",
            Expect::Refused,
            bytes,
        ));
    }
    // Requests that never end.
    let mut slow = head(t, &t.method, &t.path, &[]);
    slow.extend(b"x-slow: a");
    out.push(Shape {
        name: "headers that never end",
        pace: Pace::Unending,
        expect: Expect::Refused,
        bytes: slow,
        json: false,
    });
    let mut chunked = head(t, &t.method, &t.path, &[]);
    chunked.extend(
        b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n",
    );
    out.push(Shape {
        name: "a chunked body without its end",
        pace: Pace::Unending,
        // A route that reads no body may answer before it.
        expect: body_expect,
        bytes: chunked,
        json: false,
    });
    let mut short = head(t, &t.method, &t.path, &[]);
    short.extend(b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"key\":");
    out.push(Shape {
        name: "a body shorter than its length",
        pace: Pace::Unending,
        // A route that reads no body may answer before it.
        expect: body_expect,
        bytes: short,
        json: false,
    });
    out
}

/// Forged deliveries sent one after another from one address before a genuine one.
pub const FORGED_BEFORE_GENUINE: usize = 12;

/// A delivery whose signature verifies after its address's forged ones (issue #62 item 4:
/// behind a proxy whose client header is not configured, 10 forged deliveries a minute made the
/// relay answer Polar's genuine ones 429): for a target that signs (`t.sign`, the webhook
/// route), [`FORGED_BEFORE_GENUINE`] forged deliveries (refused, each a 4xx), then Polar's
/// signed one (acknowledged, a 2xx: it names no key), all from one address (`cf-connecting-ip`,
/// where Workers read it; the native relay reads each socket's own, all from this process).
/// `None` for a target that does not sign.
pub fn genuine_after_forged(t: &Target) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
    let sign = t.sign.as_ref()?;
    let body = br#"{"type":"benefit_grant.updated","timestamp":"2026-01-01T00:00:00Z","data":{"id":"g","customer_id":"c"}}"#;
    let request = |signature: Vec<(String, String)>| {
        let mut extra = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("content-length".to_string(), body.len().to_string()),
            ("cf-connecting-ip".to_string(), "198.51.100.62".to_string()),
        ];
        extra.extend(signature);
        let mut bytes = head(t, &t.method, &t.path, &extra);
        bytes.extend(b"\r\n");
        bytes.extend(body);
        bytes
    };
    let forged = (0..FORGED_BEFORE_GENUINE)
        .map(|_| request(sign(b"{\"another\":\"body\"}", 0)))
        .collect();
    Some((forged, request(sign(body, 0))))
}

/// Many connections at once to one route, from many addresses (issue #62 item 4): each
/// connection's request sent and the connection held open, while another client (an address
/// holding none) must be served; then all let go.
#[derive(Debug, Clone)]
pub struct Crowd {
    /// What it is, for the failure message and the figures.
    pub name: &'static str,
    /// Each connection: the address it comes from (a loopback one: Linux routes all of 127/8
    /// to lo; a host that reads the client's address from a header is told it in
    /// `cf-connecting-ip`, written in the bytes) and the bytes it sends.
    pub connections: Vec<(Ipv4Addr, Vec<u8>)>,
    /// [`Pace::Whole`]: each request is answered (anything but a 5xx) or its connection closed,
    /// and the connection is held after the answer (keep-alive); [`Pace::Unending`]: the
    /// requests never end, each connection held until the server ends it.
    pub pace: Pace,
}

/// The crowds for `t`: `addresses` addresses (`127.0.0.20` on) of `per_address` connections
/// each, every connection holding a CORS preflight answered (a browser's `OPTIONS`, which
/// reads no body and asks Polar nothing), or a request whose headers never end.
pub fn crowds(t: &Target, addresses: u8, per_address: usize) -> Vec<Crowd> {
    let from = |a: u8| Ipv4Addr::new(127, 0, 0, 20u8.saturating_add(a));
    let each = |bytes: &dyn Fn(Ipv4Addr) -> Vec<u8>| {
        (0..addresses)
            .flat_map(|a| (0..per_address).map(move |_| from(a)))
            .map(|ip| (ip, bytes(ip)))
            .collect::<Vec<_>>()
    };
    let ip_header = |ip: Ipv4Addr| ("cf-connecting-ip".to_string(), ip.to_string());
    let preflight = |ip: Ipv4Addr| {
        let mut b = format!(
            "OPTIONS {} HTTP/1.1\r\nhost: {}\r\norigin: https://app.example\r\n\
             access-control-request-method: {}\r\naccess-control-request-headers: content-type\r\n",
            t.path, t.addr, t.method
        )
        .into_bytes();
        let (k, v) = ip_header(ip);
        b.extend(format!("{k}: {v}\r\ncontent-length: 0\r\n\r\n").as_bytes());
        b
    };
    let never = |ip: Ipv4Addr| {
        let mut b = head(t, &t.method, &t.path, &[ip_header(ip)]);
        b.extend(b"x-slow: a");
        b
    };
    vec![
        Crowd {
            name: "preflight-only connections from many addresses",
            connections: each(&preflight),
            pace: Pace::Whole,
        },
        Crowd {
            name: "many addresses holding requests that never end",
            connections: each(&never),
            pace: Pace::Unending,
        },
    ]
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer: its status and body.
    Answered {
        /// The status code.
        status: u16,
        /// The body (as far as read).
        body: Vec<u8>,
    },
    /// The server closed the connection (or reset it) without an answer.
    Closed,
    /// Nothing within the bound.
    Silent,
    /// The connection could not be made.
    Refused(String),
}

impl Outcome {
    /// The status, when answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The status and body in `buf` once the head and its `content-length` body are whole (or,
/// at the end of the stream, whatever came).
fn parse(buf: &[u8], ended: bool) -> Option<Outcome> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let Some(end) = end else {
        return ended.then(|| {
            status_of(buf).map_or(Outcome::Closed, |status| Outcome::Answered {
                status,
                body: Vec::new(),
            })
        });
    };
    let status = status_of(buf)?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let body = &buf[end + 4..];
    match length {
        Some(n) if body.len() >= n => Some(Outcome::Answered {
            status,
            body: body[..n].to_vec(),
        }),
        // A 204 (a preflight's) has no body: whole at its head, its connection kept.
        _ if ended || status == 100 || status == 204 => Some(Outcome::Answered {
            status,
            body: body.to_vec(),
        }),
        _ => None,
    }
}

fn status_of(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.strip_prefix("HTTP/1.")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A connection to `addr` with `bytes` written (as far as the server reads them).
pub fn open(addr: SocketAddr, bytes: &[u8]) -> Result<TcpStream, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    // A server that answers before the whole request is read (a 413, a 431) may close its
    // side: what was not written is not needed.
    let _ = s.write_all(bytes);
    let _ = s.flush();
    Ok(s)
}

/// Reads `s` until an answer is whole, the server closes, or `bound` passes.
pub fn read_answer(s: &mut TcpStream, bound: Duration) -> Outcome {
    let deadline = Instant::now() + bound;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return parse(&buf, true)
                .filter(|o| *o != Outcome::Closed)
                .unwrap_or(Outcome::Silent);
        }
        let _ = s.set_read_timeout(Some(left.min(Duration::from_millis(200))));
        match s.read(&mut chunk) {
            Ok(0) => return parse(&buf, true).unwrap_or(Outcome::Closed),
            Ok(n) => {
                buf.extend(&chunk[..n]);
                if let Some(done) = parse(&buf, false) {
                    if done.status() != Some(100) {
                        return done;
                    }
                    // `100 Continue` then the answer.
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return parse(&buf, true).unwrap_or(Outcome::Closed),
        }
    }
}

/// One whole exchange: `bytes` sent to `addr`, the answer read within `bound`, and how long it
/// took.
pub fn exchange(addr: SocketAddr, bytes: &[u8], bound: Duration) -> (Outcome, Duration) {
    let started = Instant::now();
    let outcome = match open(addr, bytes) {
        Ok(mut s) => read_answer(&mut s, bound),
        Err(e) => Outcome::Refused(e),
    };
    (outcome, started.elapsed())
}

/// This process's CPU time so far (user and system), from `/proc/self/stat` (Linux; zero
/// elsewhere): the servers under test run in the test's process.
pub fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The fields after the command's closing parenthesis: utime and stime are the 12th and
    // 13th of them, in clock ticks (100 a second on Linux).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A request that never ends, left open: what it is, what its answer must be, its connection,
/// and when it was opened.
pub type Unending = (String, Expect, TcpStream, Instant);

/// One shape sent to `t`: one that never ends is opened and put in `unending` (`None`); any
/// other is sent whole, its wall and CPU time added to `figures`, and its description, status
/// and outcome returned. Panics when the target cannot be reached or does not answer within
/// `bound`.
pub fn send_shape(
    t: &Target,
    shape: &Shape,
    bound: Duration,
    figures: &mut Figures,
    unending: &mut Vec<Unending>,
) -> Option<(String, u16, Outcome)> {
    let what = format!("{t:?}, {} ({} bytes)", shape.name, shape.bytes.len());
    if shape.pace == Pace::Unending {
        let conn = open(t.addr, &shape.bytes).expect(&what);
        unending.push((what, shape.expect, conn, Instant::now()));
        return None;
    }
    let cpu = cpu_time();
    let (outcome, took) = exchange(t.addr, &shape.bytes, bound);
    figures.add(shape.name, took, cpu_time().saturating_sub(cpu));
    let status = match &outcome {
        Outcome::Answered { status, .. } => *status,
        other => panic!("{what}: no answer within {bound:?}: {other:?}"),
    };
    Some((what, status, outcome))
}

/// How a request that never ends (`what`, opened on `conn`) was ended, read within `bound`: a
/// close, or an answer as `expect` says (a 4xx for [`Expect::Refused`], anything under 500 for
/// [`Expect::NoFault`]); panics on anything else, silence included.
pub fn expect_cut(what: &str, expect: Expect, conn: &mut TcpStream, bound: Duration) {
    match read_answer(conn, bound) {
        Outcome::Closed => {}
        Outcome::Answered { status, .. } if expect == Expect::NoFault => {
            assert!(status < 500, "{what}: {status}")
        }
        Outcome::Answered { status, .. } => {
            assert!((400..500).contains(&status), "{what}: {status}")
        }
        other => panic!("{what}: not cut within {bound:?}: {other:?}"),
    }
}

/// Whether the bigger matrix was asked for (`FULL=1`).
pub fn full() -> bool {
    std::env::var("FULL").is_ok_and(|v| v == "1")
}

/// The figures of one shape across routes: the answers' count, the slowest answer, and the
/// CPU the process spent on them.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    rows: Vec<(&'static str, usize, Duration, Duration)>,
}

impl Figures {
    /// Adds one exchange of `shape` that took `wall` and `cpu`.
    pub fn add(&mut self, shape: &'static str, wall: Duration, cpu: Duration) {
        match self.rows.iter_mut().find(|r| r.0 == shape) {
            Some(r) => {
                r.1 += 1;
                r.2 = r.2.max(wall);
                r.3 += cpu;
            }
            None => self.rows.push((shape, 1, wall, cpu)),
        }
    }

    /// The table, one line a shape: exchanges, the slowest, CPU per exchange.
    pub fn table(&self) -> String {
        let mut out = String::from("shape | exchanges | slowest ms | cpu ms per exchange\n");
        for (shape, n, wall, cpu) in &self.rows {
            out.push_str(&format!(
                "{shape} | {n} | {} | {:.1}\n",
                wall.as_millis(),
                cpu.as_secs_f64() * 1000.0 / *n as f64
            ));
        }
        out
    }
}

/// Every `.rs` file under `dir` (recursively), with its path: a crate's sources, for
/// [`path_literals`] (a router file added later is read too).
pub fn sources(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    out.push((p.display().to_string(), text));
                }
            }
        }
    }
    out.sort();
    out
}

/// Every path a router of the crate at `manifest_dir` compares with: `(file, path)` for each
/// [`path_literals`] of each of [`sources`] under its `src` (a router file added later is read
/// too).
pub fn code_paths(manifest_dir: &str) -> Vec<(String, String)> {
    let src = std::path::Path::new(manifest_dir).join("src");
    let mut out = Vec::new();
    for (file, source) in sources(&src) {
        for path in path_literals(&source) {
            out.push((file.clone(), path));
        }
    }
    out
}

/// The string literals starting with `/` in `source`'s code (not its comments, not after its
/// first `#[cfg(test)]`): the paths a router compares with, for a suite to find each among its
/// crate's list of routes.
pub fn path_literals(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        // Comments, and JSON pointers (`.pointer("/data/…")`), are no paths.
        if line.starts_with("//") || line.contains(".pointer(") {
            continue;
        }
        let line = line.split(" //").next().unwrap_or(line);
        let mut parts = line.split('"');
        // Every second part is inside quotes (no escaped quotes in a path).
        parts.next();
        while let Some(inside) = parts.next() {
            // Not a format string's (`"/v1{rest}"`: a rewrite, not a route).
            if inside.starts_with('/') && !inside.contains(' ') && !inside.contains('{') {
                out.push(inside.to_string());
            }
            parts.next();
        }
    }
    out
}
