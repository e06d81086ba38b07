//! The native server's share of connections per address bites only when others wait (issue
//! #62, item 4), over loopback: an office of 40 behind one address is served whole by an idle
//! relay, and a hog holding more than its share has a connection cut when another address
//! finds no room. (crates/relay/tests/door.rs keeps last round's hole closed: addresses within
//! their share still leave the last connections to addresses holding none.)

mod rig;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use polar_license_emulator::DEMO_ORGANIZATION_ID;
use serde_json::json;

const SECRET: &str = "whsec_b2ZmaWNlLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";

/// The status of a whole answer read from `stream` (0: none, the connection reset or closed).
fn status_of(stream: &mut TcpStream) -> u16 {
    rig::status_of(stream)
}

/// A request on its own connection (`connection: close`): its raw bytes.
fn post(to: SocketAddr, path: &str, headers: &[(String, String)], body: &str) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {to}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    [head.into_bytes(), body.as_bytes().to_vec()].concat()
}

/// Issue #62: with the per-address request limits off (`--per-ip 0 --per-key 0`, as a seller
/// whose customers share offices sets them) and nothing else waiting, 40 customers checking at
/// once from one address (one office behind one NAT) got 16 answers and 24 reset connections,
/// and a webhook delivery from that address beside them was reset too. Now the relay, idle but
/// for them, serves them all: 40 connections open first, then 40 validates and Polar's signed
/// delivery, every one answered 200.
#[test]
fn forty_clients_at_once_from_one_address_on_an_idle_relay_are_all_answered() {
    let polar = rig::webhook_emulator();
    let keys: Vec<String> = (0..40)
        .map(|i| rig::add_key(&polar, format!("OFFICE-{i:02}-4A5B6C"), Some(3)))
        .collect();
    let mut config = rig::config(polar.url(), "office");
    config.limits = rig::unlimited();
    let relay = rig::listen_stored(config, SECRET);
    let to = rig::address(&relay);
    let rt = rig::runtime();
    let office = Ipv4Addr::new(127, 0, 0, 2);
    let open = |n: usize| {
        (0..n)
            .map(|_| {
                rig::connect_from(&rt, office, to, Duration::from_secs(30)).expect("connected")
            })
            .collect::<Vec<_>>()
    };
    let mut checks = open(keys.len());
    let mut hook = open(1);
    for (stream, key) in checks.iter_mut().zip(&keys) {
        let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID}).to_string();
        let _ = stream.write_all(&post(to, &format!("{}validate", rig::PUBLIC), &[], &body));
    }
    let body = rig::grant_updated();
    let headers = rig::signed(SECRET, "msg_office", rig::now(), &body);
    let _ = hook[0].write_all(&post(to, rig::WEBHOOK, &headers, &body));
    let statuses: Vec<u16> = checks.iter_mut().map(status_of).collect();
    let delivered = status_of(&mut hook[0]);
    assert_eq!(
        (statuses.iter().filter(|s| **s == 200).count(), delivered),
        (40, 200),
        "{statuses:?}"
    );
    relay.stop();
}

/// Issue #62, the other side: a hog is cut when another waits. 8 connections, a share of 2
/// per address (one kept for addresses holding none): an idle relay lets one address hold 7,
/// past its share; an address holding none takes the last; when a third address arrives with
/// none free, one of the hog's idle connections is closed and the third address's validate is
/// answered; the hog's next connection is refused (it is past its share and nothing is free).
/// On the code before, the hog's third connection was closed at once.
#[test]
fn a_hog_past_its_share_is_cut_when_another_address_waits() {
    let (_polar, key, config, mut options) = rig::capped("office", "OFFICE-WAITS-4A5B6C", 8, 2);
    // Idle connections stay open for the test's length (a slow machine's included).
    options.header_timeout = Duration::from_secs(60);
    let relay = rig::listen_with(config, options);
    let to = rig::address(&relay);
    let rt = rig::runtime();
    let hog_address = Ipv4Addr::new(127, 0, 0, 2);
    let (statuses, mut hog): (Vec<u16>, Vec<_>) =
        (0..7).map(|_| rig::held_from(&rt, hog_address, to)).unzip();
    assert_eq!(statuses, [204; 7], "an idle relay: the hog holds 7");
    let (status, _quiet) = rig::held_from(&rt, Ipv4Addr::new(127, 0, 0, 3), to);
    assert_eq!(
        status, 204,
        "the last connection, kept for an address holding none"
    );
    // None free: the third address waits for a hog's connection to be cut.
    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID});
    let third = rig::post_from(
        &rt,
        Ipv4Addr::new(127, 0, 0, 4),
        to,
        &format!("{}validate", rig::PUBLIC),
        &body,
    );
    assert_eq!(third.map(|a| a.0), Some(200));
    // One of the hog's connections was closed (its read ends), the others still open.
    let mut closed = 0;
    for stream in hog.iter_mut().flatten() {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut byte = [0u8; 1];
        if matches!(stream.read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 1);
    // The hog is past its share and nothing is free: its next connection is refused.
    assert_eq!(rig::held_from(&rt, hog_address, to).0, 0);
    relay.stop();
}
