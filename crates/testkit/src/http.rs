//! An HTTP answer as the suites read it (status, headers, body), over `ureq` against the
//! emulator, a relay or the command line's servers on loopback, or read off a raw socket; and
//! the agent they share. Native only.

use serde_json::Value;
use std::time::Duration;

/// An agent for loopback servers: every status is an answer (never an `Err`), no proxy from
/// the host's settings, and `timeout` for the whole call.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// One HTTP answer, read whole.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The headers in the order sent, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as sent.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// Reads `response` whole (an unreadable body reads as empty).
    pub fn read(mut response: ureq::http::Response<ureq::Body>) -> HttpAnswer {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = response.body_mut().read_to_vec().unwrap_or_default();
        HttpAnswer {
            status,
            headers,
            body,
        }
    }

    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The status and the values of the headers `a` and `b`: one row of a table of answers.
    pub fn status_and(&self, a: &str, b: &str) -> (u16, Option<String>, Option<String>) {
        let header = |name: &str| self.header(name).map(str::to_string);
        (self.status, header(a), header(b))
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics, showing it, when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `loc` of each error of a 422's `detail` list, in order; panics, showing the body,
    /// when `detail` is no list.
    pub fn detail_locs(&self) -> Vec<Value> {
        let body = self.json();
        let Some(detail) = body["detail"].as_array() else {
            panic!("no detail list: {body}")
        };
        detail.iter().map(|e| e["loc"].clone()).collect()
    }
}

/// An HTTP message's head (its first line, the headers, the blank line) read from `stream` a
/// byte at a time, so that nothing past it is consumed; `Err` with what was read when the
/// stream ended or failed before the blank line.
pub fn read_head(stream: &mut impl std::io::Read) -> Result<Vec<u8>, Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return Err(head),
        }
    }
    Ok(head)
}

/// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) to `127.0.0.1:port` over a
/// raw socket and reads the answer to its end: for the tests that need bytes a client library
/// would not send, and every header exactly as the server wrote it.
pub fn raw_exchange(port: u16, request: &str) -> HttpAnswer {
    raw_exchange_bytes(port, request.as_bytes())
}

/// [`raw_exchange`] of a request given as bytes (its body any bytes).
pub fn raw_exchange_bytes(port: u16, request: &[u8]) -> HttpAnswer {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').expect("a header");
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut body = Vec::new();
    reader.read_to_end(&mut body).expect("body");
    HttpAnswer {
        status,
        headers,
        body,
    }
}

/// `method path` sent to `127.0.0.1:port` by [`raw_exchange`] (`Host: 127.0.0.1`,
/// `Connection: close`), with `Authorization: Bearer token` when there is a token and `body`
/// as `application/json` with its length when there is a body: the emulator suites' plain
/// client, every byte of it visible here.
pub fn json_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> HttpAnswer {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(token) = token {
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("Connection: close\r\n\r\n");
    text.push_str(body.unwrap_or(""));
    raw_exchange(port, &text)
}

/// `method url` with `Authorization: Bearer token` and `body` as JSON, over [`agent`] (30 s):
/// the suites' call to the emulator's owner routes and the relay's, read whole.
pub fn bearer_call(method: &str, url: &str, token: &str, body: Option<Value>) -> HttpAnswer {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .expect("a request");
    HttpAnswer::read(
        agent(Duration::from_secs(30))
            .run(request)
            .expect("an answer"),
    )
}

/// A raw webhook endpoint for `events` registered (201) with Polar's emulator at `polar_url`,
/// pointed at a closed port until [`point_endpoint`] names its receiver: its secret and id.
pub fn webhook_endpoint(polar_url: &str, token: &str, events: &[&str]) -> (String, String) {
    let answer = bearer_call(
        "POST",
        &format!("{polar_url}/v1/webhooks/endpoints"),
        token,
        Some(
            serde_json::json!({"url": "http://127.0.0.1:9/later", "format": "raw", "events": events}),
        ),
    );
    assert_eq!(answer.status, 201, "{}", answer.text());
    let endpoint = answer.json();
    let field = |name: &str| endpoint[name].as_str().expect(name).to_string();
    (field("secret"), field("id"))
}

/// Points the emulator's webhook endpoint `id` at the relay at `relay_url` (its
/// `/v1/webhooks/polar`); the emulator must answer 200.
pub fn point_endpoint(polar_url: &str, token: &str, id: &str, relay_url: &str) {
    let answer = bearer_call(
        "PATCH",
        &format!("{polar_url}/v1/webhooks/endpoints/{id}"),
        token,
        Some(serde_json::json!({"url": format!("{relay_url}/v1/webhooks/polar")})),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// A server on loopback that answers every request with `status`, `headers` and `body`, as
/// anything between a client and its relay could (or no relay at all): the base URL
/// (`http://127.0.0.1:PORT`) and the count of requests answered. It lives as long as the
/// test. Issue #76: a forged `200` seat answer.
pub fn fixed_answer(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut answer = format!(
        "HTTP/1.1 {status} Answer\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        answer.push_str(&format!("{name}: {value}\r\n"));
    }
    answer.push_str("\r\n");
    answer.push_str(body);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = read_body(&stream);
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, count)
}

/// A webhook endpoint on loopback: the URL to register (`http://127.0.0.1:PORT/hooks`) and
/// every delivery's JSON body in the order received (a body that is not JSON is not recorded);
/// each delivery is answered `204 No Content`. The listener lives as long as the test.
pub fn json_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let got: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = std::sync::Arc::default();
    let record = std::sync::Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if let Some(body) = read_body(&stream) {
                if let Ok(v) = serde_json::from_slice(&body) {
                    record.lock().expect("lock").push(v);
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// What a [`json_receiver`] has received once `n` deliveries have come (or 20 seconds have
/// passed), after a further `settle` for any that should not come; the list emptied.
pub fn take_deliveries(
    got: &std::sync::Mutex<Vec<Value>>,
    n: usize,
    settle: Duration,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.lock().expect("lock").len() < n && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(settle);
    std::mem::take(&mut *got.lock().expect("lock"))
}

/// One HTTP/1.1 request read from `stream`: its headers skipped, its body (by its
/// `content-length`) returned; `None` when the body did not arrive whole.
fn read_body(stream: &std::net::TcpStream) -> Option<Vec<u8>> {
    let mut reader = std::io::BufReader::new(stream.try_clone().ok()?);
    read_message(&mut reader).map(|(_, body)| body)
}

/// One HTTP message from `r`: its head as sent (start line and headers, through the blank
/// line) and its body by its `content-length` (none: empty); `None` when the stream ended
/// first. The loopback proxies' and receivers' one reader.
pub fn read_message(r: &mut impl std::io::BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}
