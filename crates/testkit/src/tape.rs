//! The user's own recording proxy of issue #53, as a real loopback HTTP server between a client
//! and its upstream (the relay): every request passed on, the last 200 of a validate kept byte
//! for byte. Replaying, that 200 is the answer, verbatim, and nothing is passed on. Holding, the
//! next 200 of a validate waits until it is let go (a check's grant on its way while another
//! process records a denial: the late-grant race).
//!
//! The Rust suites drive it through its methods; a process that is not Rust (the C tests) runs
//! it as `polar-license-tape UPSTREAM` and drives it over HTTP on its own address:
//!
//! | request                 | answer                                                        |
//! |-------------------------|---------------------------------------------------------------|
//! | `POST /__tape/replay`   | body `on` or `off`: replaying or not (204)                    |
//! | `POST /__tape/hold`     | the next validate's 200 is held (204)                         |
//! | `GET /__tape/held`      | 200 once that answer is held (504 after 30 s)                 |
//! | `POST /__tape/release`  | the held answers go on (204)                                  |
//! | `GET /__tape/passed`    | how many requests were passed on since the last ask (200)    |
//! | `GET /__tape/captured`  | `yes` when a 200 is recorded, else `no` (200)                 |
//! | `POST /__tape/forge`    | body `expired` or `off`: every validate answered with an unsigned `404 "License key has expired."`, nothing passed on (a fake relay, issue #62) (204) |
//! | `POST /__tape/inject`   | body `on` or `off`: an unsigned cancelled `subscription` that ended a day ago added to every validate's 200, the relay's lease kept (issue #62) (204) |

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The proxy: `url` is its address; it runs until the process ends.
pub struct Tape {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<State>,
}

struct State {
    /// `host:port` of the upstream.
    upstream: String,
    captured: Mutex<Option<Vec<u8>>>,
    replay: AtomicBool,
    /// Issue #62: validates answered with a forged, unsigned expiry.
    forge: AtomicBool,
    /// Issue #62: an unsigned cancelled subscription added to validates' 200s.
    inject: AtomicBool,
    passed: AtomicUsize,
    hold: Mutex<Hold>,
    changed: Condvar,
}

#[derive(Default)]
struct Hold {
    /// The next validate's 200 is held.
    armed: bool,
    /// Answers held so far, and how many of them were let go.
    held: usize,
    released: usize,
}

/// How long a held answer waits at most, and how long `GET /__tape/held` waits for one.
const PATIENCE: Duration = Duration::from_secs(30);

/// One HTTP/1.1 message read whole from `r` (its head, then `content-length` bytes).
fn message(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        let end = line == "\r\n";
        head.extend_from_slice(line.as_bytes());
        if end {
            break;
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    head.extend_from_slice(&body);
    Some(head)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Tape {
    /// Starts the proxy in front of `upstream` (`http://host:port`) on a free loopback port.
    pub fn start(upstream: &str) -> Tape {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let state = Arc::new(State {
            upstream: upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string(),
            captured: Mutex::new(None),
            replay: AtomicBool::new(false),
            forge: AtomicBool::new(false),
            inject: AtomicBool::new(false),
            passed: AtomicUsize::new(0),
            hold: Mutex::new(Hold::default()),
            changed: Condvar::new(),
        });
        let serving = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = serving.clone();
                // A connection of its own: a held answer holds nothing else.
                std::thread::spawn(move || state.serve(client));
            }
        });
        Tape { url, state }
    }

    /// Replaying the recorded 200 (`on`), or passing requests on.
    pub fn replaying(&self, on: bool) {
        self.state.replay.store(on, SeqCst);
    }

    /// Issue #62: every validate answered with an unsigned `404 "License key has expired."`
    /// (`on`: a fake relay), or passed on.
    pub fn forging_expiry(&self, on: bool) {
        self.state.forge.store(on, SeqCst);
    }

    /// Issue #62: an unsigned cancelled subscription, ended a day ago, added to every
    /// validate's 200 (`on`), the relay's headers and lease kept.
    pub fn injecting_subscription(&self, on: bool) {
        self.state.inject.store(on, SeqCst);
    }

    /// How many requests were passed on since the last call.
    pub fn passed(&self) -> usize {
        self.state.passed.swap(0, SeqCst)
    }

    /// Whether a 200 of a validate is recorded.
    pub fn captured(&self) -> bool {
        lock(&self.state.captured).is_some()
    }

    /// Holds the next validate's 200 until [`Tape::release`].
    pub fn hold_next(&self) {
        self.state.hold_next();
    }

    /// Waits (at most `timeout`) until the answer [`Tape::hold_next`] asked for is held.
    pub fn wait_held(&self, timeout: Duration) -> bool {
        self.state.wait_held(timeout)
    }

    /// Lets the held answers go on.
    pub fn release(&self) {
        self.state.release();
    }
}

impl State {
    fn hold_next(&self) {
        lock(&self.hold).armed = true;
    }

    fn wait_held(&self, timeout: Duration) -> bool {
        let hold = lock(&self.hold);
        let (hold, _) = self
            .changed
            .wait_timeout_while(hold, timeout, |h| h.armed)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !hold.armed && hold.held > hold.released
    }

    fn release(&self) {
        let mut hold = lock(&self.hold);
        hold.released = hold.held;
        self.changed.notify_all();
    }

    /// Holds `answer` when a hold is armed: until released (or `PATIENCE` passes).
    fn maybe_hold(&self) {
        let mut hold = lock(&self.hold);
        if !hold.armed {
            return;
        }
        hold.armed = false;
        hold.held += 1;
        let ticket = hold.held;
        self.changed.notify_all();
        let deadline = Instant::now() + PATIENCE;
        while hold.released < ticket {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            hold = self
                .changed
                .wait_timeout(hold, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// The answer to a control request (`/__tape/...`), or `None` for one to pass on.
    fn control(&self, request: &[u8]) -> Option<(u16, String)> {
        let head = String::from_utf8_lossy(request);
        let line = head.lines().next().unwrap_or("");
        let mut parts = line.split(' ');
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if !path.starts_with("/__tape/") {
            return None;
        }
        let body = head.split("\r\n\r\n").nth(1).unwrap_or("").trim();
        Some(match (method, path) {
            ("POST", "/__tape/replay") => {
                self.replay.store(body == "on", SeqCst);
                (204, String::new())
            }
            ("POST", "/__tape/hold") => {
                self.hold_next();
                (204, String::new())
            }
            ("GET", "/__tape/held") if self.wait_held(PATIENCE) => (200, "held".into()),
            ("GET", "/__tape/held") => (504, "nothing held".into()),
            ("POST", "/__tape/release") => {
                self.release();
                (204, String::new())
            }
            ("POST", "/__tape/forge") => {
                self.forge.store(body == "expired", SeqCst);
                (204, String::new())
            }
            ("POST", "/__tape/inject") => {
                self.inject.store(body == "on", SeqCst);
                (204, String::new())
            }
            ("GET", "/__tape/passed") => (200, self.passed.swap(0, SeqCst).to_string()),
            ("GET", "/__tape/captured") => {
                let yes = lock(&self.captured).is_some();
                (200, if yes { "yes" } else { "no" }.into())
            }
            _ => (404, "no such tape route".into()),
        })
    }

    fn serve(&self, client: TcpStream) {
        let Ok(reading) = client.try_clone() else {
            return;
        };
        let Some(request) = message(&mut BufReader::new(reading)) else {
            return;
        };
        let mut client = client;
        if let Some((status, body)) = self.control(&request) {
            let answer = format!(
                "HTTP/1.1 {status} Tape\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes());
            return;
        }
        let validate = request.starts_with(b"POST ")
            && String::from_utf8_lossy(&request[..64.min(request.len())]).contains("/validate");
        if validate && self.forge.load(SeqCst) {
            let body = r#"{"error":"ResourceNotFound","detail":"License key has expired."}"#;
            let answer = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(answer.as_bytes());
            return;
        }
        let kept = lock(&self.captured).clone();
        let answer = match kept.filter(|_| self.replay.load(SeqCst)) {
            Some(bytes) => bytes,
            None => {
                self.passed.fetch_add(1, SeqCst);
                // No faster than the relay's per-key rate (3 a second): its 429 is not what
                // the tests are about.
                std::thread::sleep(Duration::from_millis(400));
                let Some(answer) = self.pass_on(&request) else {
                    return;
                };
                let answer = if validate && self.inject.load(SeqCst) {
                    injected(answer)
                } else {
                    answer
                };
                if validate && answer.starts_with(b"HTTP/1.1 200") {
                    *lock(&self.captured) = Some(answer.clone());
                    self.maybe_hold();
                }
                answer
            }
        };
        // One answer per connection: the client reconnects for the next.
        let text = String::from_utf8_lossy(&answer).into_owned();
        let answer = text.replacen("\r\n", "\r\nconnection: close\r\n", 1);
        let _ = client.write_all(answer.as_bytes());
    }

    fn pass_on(&self, request: &[u8]) -> Option<Vec<u8>> {
        let mut upstream = TcpStream::connect(&self.upstream).ok()?;
        upstream.write_all(request).ok()?;
        message(&mut BufReader::new(upstream))
    }
}

/// `answer` (a validate's 200) with an unsigned cancelled subscription that ended a day ago
/// added to its JSON body (issue #62), its other headers kept and its length set anew;
/// anything else as it is.
fn injected(answer: Vec<u8>) -> Vec<u8> {
    let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer;
    };
    if !answer.starts_with(b"HTTP/1.1 200") {
        return answer;
    }
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&answer[at + 4..]) else {
        return answer;
    };
    let now = crate::unix_now();
    let ended = crate::rfc3339(now - 86_400);
    body["subscription"] = serde_json::json!({
        "id": "7b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
        "status": "canceled",
        "current_period_start": crate::rfc3339(now - 31 * 86_400),
        "current_period_end": ended,
        "cancel_at_period_end": true,
        "ends_at": ended,
    });
    let Ok(body) = serde_json::to_vec(&body) else {
        return answer;
    };
    let head = String::from_utf8_lossy(&answer[..at]);
    let mut out: Vec<u8> = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("content-length:"))
        .flat_map(|line| [line, "\r\n"])
        .collect::<String>()
        .into_bytes();
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out
}
