//! A proxy on loopback in front of a relay that alters its leases (issue #68: "a lease whose
//! values were altered is refused"), or answers nothing (the relay unreachable), for the native
//! faces' tests (the CLI's, C's).

use crate::http::read_message;
use crate::leases::edit_payload;
use polar_license::lease::LEASE_HEADER;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;

/// What the proxy below does with each request.
/// Every answer passed on as it came.
pub const PASS: u8 = 0;
/// The relay's lease edited inside its signed payload.
pub const ALTER: u8 = 1;
/// Each connection closed unanswered.
pub const DOWN: u8 = 2;

/// A proxy on loopback in front of `upstream`: in PASS, every answer as it came; in ALTER, the
/// relay's lease edited (`from` replaced by `to`, as long, inside its signed payload), counted
/// in `edited`; in DOWN, each connection closed unanswered (the relay unreachable).
pub struct Proxy {
    /// Where the app is pointed.
    pub url: String,
    /// PASS, ALTER or DOWN.
    pub mode: Arc<AtomicU8>,
    /// How many leases were edited.
    pub edited: Arc<AtomicU32>,
}

impl Proxy {
    /// What it does with the next requests.
    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// How many leases it edited so far.
    pub fn edited(&self) -> u32 {
        self.edited.load(Ordering::SeqCst)
    }
}

/// The proxy in front of `upstream` (`http://host:port`), in PASS.
pub fn proxy(upstream: &str, from: &'static [u8], to: &'static [u8]) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mode = Arc::new(AtomicU8::new(PASS));
    let edited = Arc::new(AtomicU32::new(0));
    let (m, e) = (Arc::clone(&mode), Arc::clone(&edited));
    let upstream = upstream.trim_start_matches("http://").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (upstream, m, e) = (upstream.clone(), Arc::clone(&m), Arc::clone(&e));
            std::thread::spawn(move || match m.load(Ordering::SeqCst) {
                DOWN => drop(client),
                mode => {
                    let _ = pass_one(client, &upstream, (mode == ALTER).then_some((from, to)), &e);
                }
            });
        }
    });
    Proxy { url, mode, edited }
}

/// One request from `client` to `upstream` and its answer back, the lease edited when `edit`.
fn pass_one(
    client: TcpStream,
    upstream: &str,
    edit: Option<(&[u8], &[u8])>,
    edited: &AtomicU32,
) -> Option<()> {
    let (head, body) = read_message(&mut BufReader::new(client.try_clone().ok()?))?;
    let head = head.replacen("\r\n", "\r\nconnection: close\r\n", 1);
    let mut up = TcpStream::connect(upstream).ok()?;
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(&body).ok()?;
    let (answer, body) = read_message(&mut BufReader::new(up))?;
    let mut out = String::new();
    for line in answer.split_inclusive("\r\n") {
        match (line.split_once(':'), edit) {
            (Some((name, value)), Some((from, to))) if name.eq_ignore_ascii_case(LEASE_HEADER) => {
                let token = match edit_payload(value.trim(), from, to) {
                    Some(t) => {
                        edited.fetch_add(1, Ordering::SeqCst);
                        t
                    }
                    None => value.trim().to_string(),
                };
                out.push_str(&format!("{name}: {token}\r\n"));
            }
            _ => out.push_str(line),
        }
    }
    let mut client = client;
    client.write_all(out.as_bytes()).ok()?;
    client.write_all(&body).ok()
}
