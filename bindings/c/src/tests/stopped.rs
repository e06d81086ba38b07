//! Why a key stopped (issue #68) through the C ABI: `polar_license_result_stopped` and its
//! dates. The relay's own behaviour (the detail from Polar's webhooks, signed mode) is tested
//! against the real relay in crates/relay/tests/lifecycle.rs; here a loopback server answers
//! every validate as that relay answers a paused key (Polar's 404 body, the detail beside it),
//! so the mapping from the core's denial to the C getters is what is under test.
#![allow(unsafe_code)] // calling the extern "C" functions

use super::{c, client_of, demo_config, text};
use crate::*;
use polar_license_testkit::ScratchDir;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::ptr;

/// A loopback server answering every request with Polar's `404 "License key is no longer
/// active."` and `stopped` as its `polar-license-stopped` header (none when `None`).
fn relay_answering(stopped: Option<&str>) -> String {
    let stopped = stopped.map(str::to_string);
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer =
                r#"{"error":"ResourceNotFound","detail":"License key is no longer active."}"#;
            let header = stopped
                .as_ref()
                .map(|s| format!("polar-license-stopped: {s}\r\n"))
                .unwrap_or_default();
            let response = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n{header}content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = reader.get_mut().write_all(response.as_bytes());
        }
    });
    url
}

/// A check of `key` through `url`: the outcome's reason, detail and its two dates.
fn checked(url: &str, dir: &ScratchDir) -> (polar_license_reason, polar_license_stopped, i64, i64) {
    let client = client_of(demo_config(url, dir.path()));
    let mut result = ptr::null_mut();
    let status = polar_license_client_check(client.0, c("LIFE-PAUSE-1B2C3D").as_ptr(), &mut result);
    assert_eq!(status, polar_license_status::Ok);
    let read = (
        polar_license_result_reason(result),
        polar_license_result_stopped(result),
        polar_license_result_stopped_at(result),
        polar_license_result_stopped_until(result),
    );
    polar_license_result_free(result);
    read
}

#[test]
fn a_denial_tells_why_the_key_stopped() {
    let dir = ScratchDir::new("c-stopped");
    let url = relay_answering(Some("paused; at=1780272000; until=1780444800"));
    assert_eq!(
        checked(&url, &dir),
        (
            polar_license_reason::Inactive,
            polar_license_stopped::Paused,
            1_780_272_000,
            1_780_444_800
        )
    );
    let dir = ScratchDir::new("c-stopped-rotated");
    let url = relay_answering(Some("rotated; at=5"));
    let (_, kind, at, until) = checked(&url, &dir);
    assert_eq!((kind, at, until), (polar_license_stopped::Rotated, 5, -1));
    // No detail, or one that does not read: none, the denial as before.
    for stopped in [None, Some("gone fishing")] {
        let dir = ScratchDir::new("c-stopped-none");
        let url = relay_answering(stopped);
        assert_eq!(
            checked(&url, &dir),
            (
                polar_license_reason::Inactive,
                polar_license_stopped::None,
                -1,
                -1
            )
        );
    }
    // NULL: the neutral values.
    assert_eq!(
        polar_license_result_stopped(ptr::null()),
        polar_license_stopped::None
    );
    assert_eq!(polar_license_result_stopped_at(ptr::null()), -1);
    assert_eq!(polar_license_result_stopped_until(ptr::null()), -1);
}

/// The sentence shown to the person using the app (`polar_license_result_user_message`) for each
/// detail, as the table every face reads says it (tests/vectors/stopped-messages.json): the
/// core's words for why the key stopped, not the generic "no longer active" sentence.
#[test]
fn the_user_message_says_why_the_key_stopped() {
    let doc: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../tests/vectors/stopped-messages.json"
    ))
    .expect("the table reads");
    let rows = doc["rows"].as_array().expect("its rows");
    assert!(rows.len() >= 6, "a row per kind at least");
    let said = |stopped: Option<&str>| {
        let dir = ScratchDir::new("c-stopped-said");
        let url = relay_answering(stopped);
        let client = client_of(demo_config(&url, dir.path()));
        let mut result = ptr::null_mut();
        let status =
            polar_license_client_check(client.0, c("LIFE-PAUSE-1B2C3D").as_ptr(), &mut result);
        assert_eq!(status, polar_license_status::Ok);
        let message = text(polar_license_result_user_message(result));
        polar_license_result_free(result);
        message
    };
    let plain = said(None);
    // The reason's sentence and step, the core's (`Reason::message`).
    assert_eq!(plain, polar_license::Reason::Inactive.message().text());
    for row in rows {
        let name = row["name"].as_str().expect("a name");
        let message = said(Some(row["stopped"].as_str().expect("a detail")));
        assert_eq!(
            message,
            row["user_message"].as_str().expect("its sentence"),
            "{name}"
        );
    }
}
