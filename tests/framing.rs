//! HTTP answers that are not plain ones (a proxy's 407, a body exactly at the cap, a length
//! sent twice, odd statuses, folded headers, bare LF, repeated Retry-After and Date headers),
//! served byte for byte by a raw server, and what the native face reads in them. The cases and
//! their expected readings are one file, `tests/framing/cases.json`, which the npm package's
//! twin (`tests/js/framing.test.mjs`) reads too: the two faces are held to one table.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::{BlockingClient, Error, ValidateRequest, Verdict};
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY, DEMO_ORGANIZATION_ID};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::Duration;

/// The emulator's real answer to a validate of the demo key: what `valid` stands for.
fn real_answer() -> Vec<u8> {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let url = format!("{}/v1/customer-portal/license-keys/validate", polar.url());
    let body = format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{DEMO_ORGANIZATION_ID}"}}"#);
    let mut answer = ureq::post(&url)
        .header("content-type", "application/json")
        .send(body.as_bytes())
        .expect("the emulator answers");
    answer.body_mut().read_to_vec().expect("a body")
}

/// The bytes of a case's body.
fn body(spec: &str, valid: &[u8]) -> Vec<u8> {
    if let Some(text) = spec.strip_prefix("text:") {
        return text.as_bytes().to_vec();
    }
    let mut bytes = valid.to_vec();
    if let Some(size) = spec.strip_prefix("valid+") {
        let size: usize = size.parse().expect("a size");
        bytes.resize(size, b' '); // JSON allows trailing whitespace
    }
    bytes
}

/// Serves `answer` to the next connection after reading its request, then closes it; the
/// request as it came.
fn serve_once(listener: &TcpListener, answer: Vec<u8>) -> std::thread::JoinHandle<String> {
    let listener = listener.try_clone().expect("listener");
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return String::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        // The request: headers, then a body of its Content-Length.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    break;
                }
            }
        }
        let _ = stream.write_all(&answer);
        let _ = stream.flush();
        let _ = stream.shutdown(Shutdown::Both);
        String::from_utf8_lossy(&seen).into_owned()
    })
}

/// What the native face read: `licensed`, or the reason code, with the error's retry-after and
/// status.
fn reading(
    result: Result<Verdict<polar_license::ValidatedLicenseKey>, Error>,
) -> (String, Value, Value) {
    match result {
        Ok(Verdict::Accepted(_)) => ("licensed".into(), Value::Null, Value::Null),
        Ok(Verdict::Denied(d)) => (d.reason.code().into(), Value::Null, d.status.into()),
        Err(e) => {
            let retry = match &e {
                Error::RateLimited { retry_after } => retry_after.map_or(Value::Null, Value::from),
                _ => Value::Null,
            };
            let status = e.status().map_or(Value::Null, Value::from);
            (e.reason().code().into(), retry, status)
        }
    }
}

#[test]
fn odd_http_answers_read_as_the_table_says() {
    let table: Value = serde_json::from_str(include_str!("framing/cases.json")).expect("JSON");
    let valid = real_answer();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let client = BlockingClient::builder(DEMO_ORGANIZATION_ID)
        .base_url(&url)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut wrong = Vec::new();
    let cases = table["cases"].as_array().expect("cases");
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let body = body(case["body"].as_str().expect("body"), &valid);
        let head = case["head"]
            .as_str()
            .expect("head")
            .replace("{len}", &body.len().to_string());
        let mut answer = head.into_bytes();
        answer.extend_from_slice(&body);
        let server = serve_once(&listener, answer);
        let got = reading(client.validate(&ValidateRequest::new(DEMO_KEY)));
        let _ = server.join();
        let expect = match &case["expect"] {
            Value::String(s) => s.clone(),
            per_face => per_face["native"].as_str().expect("native").to_string(),
        };
        let mut want = (expect, Value::Null, Value::Null);
        if case.get("retry_after").is_some() {
            want.1 = case["retry_after"].clone();
        } else {
            want.1 = got.1.clone();
        }
        if case.get("status").is_some() {
            want.2 = case["status"].clone();
        } else {
            want.2 = got.2.clone();
        }
        if got != want {
            wrong.push(format!("{name}: read {got:?}, the table says {want:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    println!("framing: {} cases read as the table says", cases.len());
}

/// A body compressed although this face asked for none (`Accept-Encoding: identity`) is not
/// Polar's JSON: `protocol_error`. (The npm package's `fetch` asks for gzip and reads it
/// decoded: a different request, answered differently by an honest server.)
#[test]
fn a_compressed_body_that_was_not_asked_for_is_not_polars_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    // The start of a gzip stream: not JSON, whatever follows.
    let body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage";
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    let server = serve_once(&listener, answer);
    let client = BlockingClient::builder(DEMO_ORGANIZATION_ID)
        .base_url(&url)
        .build()
        .expect("client");
    let got = reading(client.validate(&ValidateRequest::new(DEMO_KEY)));
    let request = server.join().expect("the server");
    assert!(
        request
            .to_ascii_lowercase()
            .contains("\r\naccept-encoding: identity\r\n"),
        "{request}"
    );
    assert_eq!(got.0, "protocol_error", "{got:?}");
}
