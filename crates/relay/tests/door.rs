//! The relay's door against requests that cost it without a call to Polar (issue #62, item 4),
//! over loopback: CORS preflights take their client's token as any request does, a delivery
//! whose signature verifies is heard beside its address's forged ones, and failures from many
//! addresses are limited together.

mod rig;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use polar_license_emulator::{Emulator, Fault, KeyUpdate, SeedKey};
use polar_license_relay::{Limits, Running};
use serde_json::{json, Value};

const SECRET: &str = "whsec_b3BzLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";

/// The relay in front of `polar` with a store and the webhook secret, the default limits
/// (per-IP 5/s, bursts of 10) unless `limits`, and the client's address read from
/// `x-forwarded-for` when `proxied`.
fn start(polar: &Emulator, limits: Option<Limits>, proxied: bool) -> Running {
    let mut config = rig::config(polar.url(), "door");
    if let Some(limits) = limits {
        config.limits = limits;
    }
    if proxied {
        config.client_ip_header = Some("x-forwarded-for".into());
    }
    rig::listen_stored(config, SECRET)
}

/// One request, raw, on a connection of its own from `from` (a 127.0.0.N address): its status
/// (0: the connection failed).
fn raw_from(
    runtime: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
    head: &str,
    body: &[u8],
) -> u16 {
    let Some(mut stream) = rig::connect_from(runtime, from, to, Duration::from_secs(20)) else {
        return 0;
    };
    let request = format!(
        "{head}\r\nhost: {to}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let _ = stream.write_all(body);
    rig::status_of(&mut stream)
}

/// A browser's preflight of a validate, from `from`.
fn preflight_from(runtime: &tokio::runtime::Runtime, from: Ipv4Addr, to: SocketAddr) -> u16 {
    let head = format!(
        "OPTIONS {}validate HTTP/1.1\r\norigin: https://app.example\r\n\
         access-control-request-method: POST\r\naccess-control-request-headers: content-type",
        rig::PUBLIC
    );
    raw_from(runtime, from, to, &head, b"")
}

/// A validate of `key` from `from`.
fn validate_from(
    runtime: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
    key: &str,
) -> u16 {
    let body = json!({"key": key, "organization_id": polar_license_emulator::DEMO_ORGANIZATION_ID});
    rig::post_from(
        runtime,
        from,
        to,
        &format!("{}validate", rig::PUBLIC),
        &body,
    )
    .map_or(0, |(status, _)| status)
}

/// Issue #62: preflights skipped the per-address bucket, so 16 addresses held all 256
/// connections with them for free (a victim got 0 of 25 answers for 25 s). A flood of
/// preflights from one address now gets 429 past its burst (10), with no call to Polar, while
/// another address's validate is answered; a later preflight of the flooding address is
/// answered again once its bucket refills. On the code before, all 60 were 204.
#[test]
fn a_flood_of_preflights_is_limited_per_address_and_another_address_is_answered() {
    let polar = rig::webhook_emulator();
    let key = rig::add_key(&polar, "DOOR-PREFLIGHT-4A5B6C".into(), Some(3));
    let relay = start(&polar, None, false);
    let to = rig::address(&relay);
    let rt = rig::runtime();
    polar.reset_request_count();
    let flooder = Ipv4Addr::new(127, 0, 0, 2);
    let statuses: Vec<u16> = (0..60).map(|_| preflight_from(&rt, flooder, to)).collect();
    let answered = statuses.iter().filter(|s| **s == 204).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(answered + limited, statuses.len(), "{statuses:?}");
    // The burst (10), and what came back at 5/s while the flood was sent.
    assert!((10..30).contains(&answered), "{statuses:?}");
    assert!(limited >= 30, "{statuses:?}");
    assert_eq!(polar.request_count(), 0, "a preflight never calls Polar");
    // The flooding address's own validate waits for its bucket too (asked at once: a token
    // comes back every 200 ms, and another address's call to Polar first could take that long
    // on a loaded machine).
    assert_eq!(validate_from(&rt, flooder, to, &key), 429);
    // Another address: its own bucket, its validate answered by Polar.
    assert_eq!(
        validate_from(&rt, Ipv4Addr::new(127, 0, 0, 3), to, &key),
        200
    );
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(preflight_from(&rt, flooder, to), 204);
    relay.stop();
}

/// Issue #62: 16 addresses holding their 16 connections each took all 256, and a client
/// arriving was closed at once. The last sixteenth (at least one) is kept for addresses
/// holding none: here 8 connections, 4 per address, two addresses holding idle connections
/// (the second's fourth closed at once, as it would leave none free), and a third address's
/// validate is answered. On the code before, the third address's connection was closed.
#[test]
fn addresses_holding_connections_leave_one_for_an_address_holding_none() {
    let (_polar, key, config, options) = rig::capped("door", "DOOR-SHARE-4A5B6C", 8, 4);
    let relay = rig::listen_with(config, options);
    let to = rig::address(&relay);
    let rt = rig::runtime();
    // Each hog's connection answers a preflight first (so it is surely counted), then idles.
    let mut held = Vec::new();
    let mut answered = Vec::new();
    for hog in [2u8, 3] {
        for _ in 0..4 {
            let (status, stream) = rig::held_from(&rt, Ipv4Addr::new(127, 0, 0, hog), to);
            answered.push(status);
            held.extend(stream);
        }
    }
    let victim = validate_from(&rt, Ipv4Addr::new(127, 0, 0, 4), to, &key);
    assert_eq!(victim, 200, "the hogs' connections: {answered:?}");
    // Seven held (the second hog's fourth closed at once, without an answer).
    assert_eq!(answered, [204, 204, 204, 204, 204, 204, 204, 0]);
    drop(held);
    relay.stop();
}

/// A forged delivery (`n` its id) of a `len`-byte body to the relay at `to`, from `from`
/// (`x-forwarded-for` when given; the socket's own address is 127.0.0.1): its status. It asks
/// `expect: 100-continue` and sends the body only when the relay asks for it, so that an
/// answer given on the head alone (429, the body unread) is read whole, never lost to a reset.
fn forge(to: SocketAddr, n: usize, len: usize, from: Option<&str>) -> u16 {
    let mut body = br#"{"type":"benefit_grant.revoked","data":{"pad":""#.to_vec();
    body.resize(len - 3, b'x');
    body.extend(b"\"}}");
    let forwarded = from.map_or(String::new(), |f| format!("x-forwarded-for: {f}\r\n"));
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {to}\r\ncontent-type: application/json\r\n\
         webhook-id: msg_forged_{n}\r\nwebhook-timestamp: {}\r\n\
         webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\r\n{forwarded}\
         content-length: {len}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        rig::WEBHOOK,
        rig::now(),
    );
    let status_of = |raw: &[u8]| -> u16 {
        String::from_utf8_lossy(raw)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let Ok(mut stream) = std::net::TcpStream::connect(to) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let mut first = [0u8; 64];
    let Ok(got) = stream.read(&mut first) else {
        return 0;
    };
    let mut raw = first[..got].to_vec();
    if status_of(&raw) == 100 {
        if stream.write_all(&body).is_err() {
            return 0;
        }
        raw.clear();
        let _ = stream.read_to_end(&mut raw);
        // The answer after the interim `100 Continue` (its rest may have come with it).
        let text = String::from_utf8_lossy(&first[..got]).into_owned();
        let rest = text
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        raw = [rest, raw].concat();
    } else {
        let _ = stream.read_to_end(&mut raw);
    }
    status_of(&raw)
}

/// Issue #62: behind a proxy whose client header is not configured, every client is the
/// proxy; 10 forged deliveries a minute made the relay answer Polar's genuine ones 429 (a
/// revocation never heard). Forged deliveries from the relay's one address up to its limit
/// and past it: small ones are still verified (401, two HMACs over at most 64 KiB), a 1 MiB
/// one past the limit gets 429 with no HMAC; then Polar's signed revocation from the same
/// address is applied, and the key is refused from the store, Polar down. On the code before,
/// the revocation got 429.
#[test]
fn a_genuine_delivery_is_heard_beside_its_addresss_forged_ones() {
    let polar = rig::webhook_emulator();
    let key = rig::add_key(&polar, "DOOR-REVOKED-4A5B6C".into(), Some(3));
    let relay = start(&polar, Some(rig::unlimited()), false);
    let (url, to) = (relay.url(), rig::address(&relay));
    let agent = rig::agent(Duration::from_secs(30));
    let first = rig::validate_at(&agent, &url, &key, &[]);
    assert_eq!(first.status, 200, "{}", first.body);
    let license: Value = serde_json::from_str(&first.body).expect("JSON");
    let lid = license["id"].as_str().expect("an id").to_string();

    // The limit is 10 failures a minute per address: 15 forged, 2 KiB each, all verified.
    let small: Vec<u16> = (0..15).map(|n| forge(to, n, 2_048, None)).collect();
    // Past the limit a large one is not verified (its cost bounded): 429.
    let large = forge(to, 99, 1 << 20, None);

    // Polar revokes the key, and delivers the event from the same address.
    assert!(polar.update_key(
        &key,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        }
    ));
    let body = rig::revocation(&lid);
    let headers = rig::signed(SECRET, "msg_revoked", rig::now(), &body);
    assert_eq!(rig::deliver_at(&agent, &url, &headers, &body), 200);
    assert_eq!((small, large), (vec![401; 15], 429));
    // Heard: the key is refused from the store, Polar not asked (it is down).
    polar.reset_request_count();
    polar.set_fault(Some(Fault::Status {
        status: 503,
        body: "Service Unavailable".into(),
    }));
    let after = rig::validate_at(&agent, &url, &key, &[]);
    assert_eq!(
        (after.status, after.lease.is_none()),
        (404, true),
        "{}",
        after.body
    );
    assert_eq!(polar.request_count(), 0, "refused from the store");
    relay.stop();
}

/// Issue #62: the failure map stopped counting once 10,000 addresses were in its window (then
/// each forged MiB cost 4.3 ms of CPU, without limit). All failures together have a budget per
/// window (1,000 a minute): forged deliveries from 1,000 addresses (one each, none of them over
/// its own limit), then a 1 MiB forgery from an address never seen gets 429 unverified, while
/// Polar's signed delivery from another new address is still verified and applied. On the code
/// before, the last forgery was verified (401).
#[test]
fn failures_from_many_addresses_are_limited_together() {
    let polar = rig::webhook_emulator();
    polar
        .add_key(SeedKey::new("DOOR-MANY-4A5B6C"))
        .expect("a key");
    let relay = start(&polar, Some(rig::unlimited()), true);
    let (url, to) = (relay.url(), rig::address(&relay));
    let agent = rig::agent(Duration::from_secs(30));
    for n in 0..1_000usize {
        let from = format!("10.{}.{}.1", n / 256, n % 256);
        assert_eq!(forge(to, n, 256, Some(&from)), 401, "{n}");
    }
    // A new address, a forged MiB: not verified.
    assert_eq!(forge(to, 1_000, 1 << 20, Some("10.200.0.1")), 429);
    // A small forgery is still verified (and refused), Polar's delivery applied.
    assert_eq!(forge(to, 1_001, 256, Some("10.200.0.2")), 401);
    let body = rig::grant_updated();
    let headers = rig::signed(SECRET, "msg_polar", rig::now(), &body);
    let mut req = agent
        .post(&format!("{url}{}", rig::WEBHOOK))
        .header("content-type", "application/json")
        .header("x-forwarded-for", "10.200.0.3");
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let status = req.send(body).map_or(0, |r| r.status().as_u16());
    assert_eq!(status, 200);
    relay.stop();
}
