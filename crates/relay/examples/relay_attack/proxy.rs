//! Polar's front door for the phased run: a TCP forwarder on a port of its own between the
//! relay and the emulator. Down, its port refuses connections (the listener closed, open
//! connections cut) while the emulator keeps its state (keys, activations, its budget's
//! window, the webhook endpoint, which it keeps delivering to the relay); up again, it
//! listens on the same port. It also counts what reached Polar: each request's time (a request
//! line ending `HTTP/1.1`), and Polar's 429s (a status line `HTTP/1.1 429`), on every route
//! the relay calls (the roster's reads included).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counts `pattern` in a stream read in chunks (a match split between two chunks included).
struct Scanner {
    pattern: &'static [u8],
    tail: Vec<u8>,
}

impl Scanner {
    fn new(pattern: &'static [u8]) -> Scanner {
        Scanner {
            pattern,
            tail: Vec::new(),
        }
    }

    fn count(&mut self, chunk: &[u8]) -> usize {
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        let n = buf
            .windows(self.pattern.len())
            .filter(|w| *w == self.pattern)
            .count();
        let keep = buf.len().min(self.pattern.len() - 1);
        self.tail = buf[buf.len() - keep..].to_vec();
        n
    }
}

#[derive(Default)]
struct Shared {
    up: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every open connection (by a number of its own), to cut when Polar goes.
    open: Mutex<HashMap<u64, [TcpStream; 2]>>,
    next: AtomicU64,
    /// When each request reached Polar.
    calls: Mutex<Vec<Instant>>,
    polar_429: AtomicU64,
}

pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A forwarder to `target` on a loopback port of its own, up.
    pub fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared::default());
        shared.up.store(true, Ordering::SeqCst);
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || accept_loop(listener, port, target, s));
        Ok(Proxy {
            port,
            shared,
            accept: Some(accept),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polar gone (`false`: connections refused) or back (`true`).
    pub fn set_up(&self, up: bool) {
        self.shared.up.store(up, Ordering::SeqCst);
    }

    /// Whether its port accepts connections now (the accept loop follows `set_up` within
    /// milliseconds).
    pub fn listening(&self) -> bool {
        TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(500),
        )
        .is_ok()
    }

    /// The times requests reached Polar.
    pub fn calls(&self) -> Vec<Instant> {
        lock(&self.shared.calls).clone()
    }

    /// Polar's 429s seen so far.
    pub fn polar_429(&self) -> u64 {
        self.shared.polar_429.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        cut(&self.shared);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn cut(shared: &Shared) {
    for pair in lock(&shared.open).drain().map(|(_, pair)| pair) {
        for s in pair {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(first: TcpListener, port: u16, target: SocketAddr, shared: Arc<Shared>) {
    let mut listener = Some(first);
    if let Some(l) = &listener {
        let _ = l.set_nonblocking(true);
    }
    while !shared.stop.load(Ordering::SeqCst) {
        let up = shared.up.load(Ordering::SeqCst);
        match (&listener, up) {
            (Some(_), false) => {
                // Gone: the port refuses from now on, and what was open is cut.
                listener = None;
                cut(&shared);
            }
            (None, true) => {
                // Back on the same port (std sets SO_REUSEADDR on Unix).
                if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                    let _ = l.set_nonblocking(true);
                    listener = Some(l);
                }
            }
            _ => {}
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                if let Ok(upstream) = TcpStream::connect(target) {
                    forward(client, upstream, &shared);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Copies both ways on two threads, counting requests one way and 429s the other.
fn forward(client: TcpStream, upstream: TcpStream, shared: &Arc<Shared>) {
    let clones = [client.try_clone(), upstream.try_clone()];
    let ([Ok(c2), Ok(u2)], Ok(c3), Ok(u3)) = (clones, client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let id = shared.next.fetch_add(1, Ordering::Relaxed);
    lock(&shared.open).insert(id, [c3, u3]);
    let s = Arc::clone(shared);
    std::thread::spawn(move || {
        let mut requests = Scanner::new(b" HTTP/1.1\r\n");
        pump(client, u2, |chunk| {
            let n = requests.count(chunk);
            if n > 0 {
                let now = Instant::now();
                lock(&s.calls).extend(std::iter::repeat_n(now, n));
            }
        });
        // The relay's side ended: the connection is done with.
        lock(&s.open).remove(&id);
    });
    let s = Arc::clone(shared);
    std::thread::spawn(move || {
        let mut refused = Scanner::new(b"HTTP/1.1 429 ");
        pump(upstream, c2, |chunk| {
            let n = refused.count(chunk) as u64;
            s.polar_429.fetch_add(n, Ordering::Relaxed);
        });
    });
}

/// `from` to `to` until either ends, each chunk shown to `seen` first.
fn pump(mut from: TcpStream, mut to: TcpStream, mut seen: impl FnMut(&[u8])) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
