//! Forged usage answers (issue #76): a server on loopback that stands where the seller's
//! relay should be, as a proxy in front of it that rewrites its answers, or as a fake relay
//! that answers every report itself, for the tests that a forged acknowledgement changes no
//! balance a client reports and is never `recorded` in signed mode (the core's, the CLI's).

use crate::http::read_message;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// An HTTP answer as the forger reads and writes it.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers (names lowercase), but `content-length` and `connection`, which the
    /// forger writes.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The header `name`'s value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `self` with the header `name` set to `value` (`None`: removed).
    pub fn with_header(mut self, name: &str, value: Option<&str>) -> Answer {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            self.headers.push((name.to_string(), v.to_string()));
        }
        self
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How the forger answers: from what the relay answered (or, as a fake relay, an empty 200)
/// and the relay's earlier answers, oldest first.
pub type Edit = dyn Fn(Answer, &[Answer]) -> Answer + Send + Sync;

/// The forger: where a client is pointed, and the relay's genuine answers it saw.
pub struct Forger {
    /// The base URL to point a client at.
    pub url: String,
    /// The relay's answers as they came, oldest first.
    pub seen: Arc<Mutex<Vec<Answer>>>,
}

/// A forger in front of `upstream` (`http://host:port`: each answer of the relay handed to
/// `edit` and its result sent), or, `None`, a fake relay (`edit` handed an empty 200).
pub fn usage_forger(upstream: Option<&str>, edit: Box<Edit>) -> Forger {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let edit: Arc<Edit> = Arc::from(edit);
    let upstream = upstream.map(|u| u.trim_start_matches("http://").to_string());
    let kept = Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let (upstream, edit, seen) = (upstream.clone(), Arc::clone(&edit), Arc::clone(&kept));
            std::thread::spawn(move || one(client, upstream.as_deref(), &*edit, &seen));
        }
    });
    Forger { url, seen }
}

fn answer_of(head: &str, body: Vec<u8>) -> Option<Answer> {
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| n != "content-length" && n != "connection" && n != "transfer-encoding")
        .collect();
    Some(Answer {
        status,
        headers,
        body,
    })
}

fn one(client: TcpStream, upstream: Option<&str>, edit: &Edit, seen: &Mutex<Vec<Answer>>) {
    let Ok(reader) = client.try_clone() else {
        return;
    };
    let Some((head, body)) = read_message(&mut BufReader::new(reader)) else {
        return;
    };
    let genuine = match upstream {
        Some(up) => {
            let head = head.replacen("\r\n", "\r\nconnection: close\r\n", 1);
            let Ok(mut conn) = TcpStream::connect(up) else {
                return;
            };
            if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&body).is_err() {
                return;
            }
            let Some((h, b)) = read_message(&mut BufReader::new(conn)) else {
                return;
            };
            let Some(a) = answer_of(&h, b) else { return };
            a
        }
        None => Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        },
    };
    let out = {
        let mut seen = seen.lock().expect("the forger's list");
        let out = edit(genuine.clone(), &seen);
        if upstream.is_some() {
            seen.push(genuine);
        }
        out
    };
    let mut text = format!("HTTP/1.1 {} Forged\r\n", out.status);
    for (n, v) in &out.headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        out.body.len()
    ));
    let mut client = client;
    let _ = client.write_all(text.as_bytes());
    let _ = client.write_all(&out.body);
}
