//! The webhook deliveries at the door's unit tests (kept beside deliveries.rs, out of its library code).

// Test code only (the module is `#[cfg(test)]` in deliveries.rs; said again here for the hostile
// suite's scan of the routers' paths, which reads a file's code up to its first such line).
#[cfg(test)]
use super::*;

#[test]
fn the_failures_map_never_holds_more_than_its_bound_and_counts_the_rest_together() {
    let mut inner = Inner::default();
    let address = |n: usize| format!("10.{}.{}.{}", n / 65_536, n / 256 % 256, n % 256);
    // Every address in its window: pruning frees nothing, and new ones count together.
    for n in 0..PRUNE_AT {
        inner.count(&address(n), AT);
    }
    assert_eq!(inner.failed.len(), PRUNE_AT);
    // (The global budget is spent too: put aside here, it has a test of its own.)
    assert!(inner.limited("192.0.2.1", AT).is_some());
    inner.all = (0, 0);
    assert_eq!(inner.limited("192.0.2.1", AT), None);
    for n in 0..MAX_FAILURES as usize {
        inner.count(&address(PRUNE_AT + n), AT);
    }
    assert_eq!(inner.failed.len(), PRUNE_AT);
    assert_eq!(inner.others, (AT, MAX_FAILURES));
    inner.all = (0, 0);
    // Any address the map has no room for is now limited, those in it are not.
    assert_eq!(inner.limited("192.0.2.1", AT), Some(FAILURE_WINDOW as u64));
    assert_eq!(inner.limited(&address(7), AT), None);
    // A minute on, the old windows are over: the new address is counted alone again.
    inner.count("192.0.2.1", AT + FAILURE_WINDOW);
    assert_eq!(inner.failed.len(), 1);
    assert_eq!(inner.limited("192.0.2.2", AT + FAILURE_WINDOW), None);
    // An address already held is still counted when the map is full.
    let mut full = Inner {
        failed: (0..PRUNE_AT).map(|n| (format!("a{n}"), (AT, 1))).collect(),
        ..Inner::default()
    };
    full.count("a7", AT);
    assert_eq!(full.failed["a7"], (AT, 2));
}

/// Past the global budget every address is limited, one that never failed included.
#[test]
fn the_global_budget_limits_every_address() {
    let mut inner = Inner::default();
    for n in 0..GLOBAL_MAX_FAILURES {
        assert_eq!(inner.limited("192.0.2.1", AT), None, "{n}");
        inner.count(&format!("10.0.{}.{}", n / 256, n % 256), AT + 1);
    }
    assert_eq!(inner.limited("192.0.2.1", AT + 1), Some(60));
    assert_eq!(inner.limited("192.0.2.1", AT + FAILURE_WINDOW + 1), None);
}

use crate::clock::Now;
use crate::flow::Asks;
use crate::relay::Relay;
use crate::store::{MemoryBackend, StoreOptions};
use crate::types::{RelayConfig, StoreConfig, WEBHOOK_ROUTE};
use hmac::{Hmac, Mac};
use std::sync::Arc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const AT: i64 = 1_790_000_000;

fn relay() -> Relay {
    let mut config = RelayConfig::for_tests();
    config.store = Some(StoreConfig {
        backend: Arc::new(MemoryBackend::new(100)),
        options: StoreOptions::default(),
        webhook_secret: Some(SECRET.into()),
    });
    Relay::never_calling(config)
}

fn hmacs() -> usize {
    crate::store::HMACS.with(std::cell::Cell::get)
}

fn now(unix_seconds: i64) -> Now {
    Now {
        unix_seconds,
        monotonic_ms: 0,
    }
}

/// A delivery of a 1 MiB event from `client`, signed with `SECRET` unless `forged`.
fn delivery(client: &str, id: &str, forged: bool) -> RelayRequest {
    delivery_of(client, id, forged, 1024 * 1024)
}

/// [`delivery`] of a `len`-byte event.
fn delivery_of(client: &str, id: &str, forged: bool, len: usize) -> RelayRequest {
    use ct_codecs::{Decoder, Encoder};
    let mut body = br#"{"type":"benefit_grant.updated","timestamp":"2026-01-01T00:00:00Z","data":{"id":"g","customer_id":"c"},"pad":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', len - body.len() - 2));
    body.extend(b"\"}");
    let mut raw = [0u8; 64];
    let key = ct_codecs::Base64::decode(&mut raw, &SECRET[6..], None).expect("b64");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("key");
    mac.update(format!("{id}.{AT}.").as_bytes());
    mac.update(&body);
    if forged {
        mac.update(b"!");
    }
    let sig = ct_codecs::Base64::encode_to_string(mac.finalize().into_bytes()).expect("b64");
    RelayRequest {
        method: "POST".into(),
        path: WEBHOOK_ROUTE.into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), id.into()),
            ("webhook-timestamp".into(), AT.to_string()),
            ("webhook-signature".into(), format!("v1,{sig}")),
            ("content-length".into(), len.to_string()),
        ],
        body,
        client_ip: client.into(),
    }
}

/// Issue #52: on Workers a delivery was verified by `store_wants` (the host's `missing`,
/// asked until it names nothing) and again by the begin: two or three times the HMACs.
/// Each request now costs one verification (two HMACs, the secret's two forms) however
/// often it is looked at, forged or not.
#[test]
fn a_delivery_is_verified_once_per_request_however_often_it_is_looked_at() {
    let relay = relay();
    for (id, forged, status) in [("msg_ok", false, 200), ("msg_forged", true, 401)] {
        let req = delivery("192.0.2.1", id, forged);
        let before = hmacs();
        for _ in 0..3 {
            assert_eq!(
                relay.store_wants(&req, &relay.route_of(&req), AT).is_some(),
                !forged,
                "{id}"
            );
        }
        let answer = relay.handle(&req, now(AT));
        assert_eq!(answer.status, status, "{id}");
        assert_eq!(hmacs() - before, 2, "{id}: one verification");
        // The begin took the outcome: the same request again is verified again.
        let before = hmacs();
        assert_eq!(relay.handle(&req, now(AT)).status, status, "{id}");
        assert_eq!(hmacs() - before, 2, "{id}");
    }
    // An outcome kept is read only for the same request: another body under the same
    // headers is verified (and refused).
    let req = delivery("192.0.2.1", "msg_same", false);
    assert!(relay.store_wants(&req, &relay.route_of(&req), AT).is_some());
    let mut edited = req.clone();
    edited.body[200] = b'y';
    assert_eq!(relay.handle(&edited, now(AT)).status, 401);
    // And the kept outcome's timestamp is checked again at the later look.
    assert_eq!(relay.handle(&req, now(AT + 301)).status, 401);
}

/// An address that sent MAX_FAILURES deliveries that did not verify gets 429 with no HMAC
/// computed until its window ends; other addresses, Polar's among them, are verified and
/// served as before.
#[test]
fn failures_are_limited_per_address_before_any_hmac() {
    let relay = relay();
    let before = hmacs();
    for i in 0..MAX_FAILURES {
        let r = relay.handle(&delivery("192.0.2.66", &format!("f{i}"), true), now(AT));
        assert_eq!(r.status, 401, "{i}");
    }
    assert_eq!(hmacs() - before, 2 * MAX_FAILURES as usize);
    let before = hmacs();
    for i in 0..50 {
        let req = delivery("192.0.2.66", &format!("g{i}"), true);
        assert!(relay.store_wants(&req, &relay.route_of(&req), AT).is_none());
        let r = relay.handle(&req, now(AT + 1));
        assert_eq!(r.status, 429, "{i}");
        assert!(r.header("retry-after").is_some());
    }
    // A large delivery that would verify too: not verified while the address is limited.
    let r = relay.handle(&delivery("192.0.2.66", "ok-1", false), now(AT + 1));
    assert_eq!(r.status, 429);
    assert_eq!(
        hmacs() - before,
        0,
        "nothing computed for a limited address's large deliveries"
    );
    // One within the body cap is verified (two HMACs over at most 64 KiB): a forged one
    // refused, a genuine one applied, never refused for the address's forged ones.
    let small = LIMITED_BODY_BYTES;
    let r = relay.handle(&delivery_of("192.0.2.66", "f-s", true, small), now(AT + 1));
    assert_eq!(r.status, 401);
    let r = relay.handle(
        &delivery_of("192.0.2.66", "ok-s", false, small),
        now(AT + 1),
    );
    assert_eq!(r.status, 200);
    assert_eq!(hmacs() - before, 4);
    let r = relay.handle(
        &delivery_of("192.0.2.66", "f-l", true, small + 1),
        now(AT + 1),
    );
    assert_eq!(r.status, 429);
    assert_eq!(hmacs() - before, 4);
    // Polar's address (another) is not limited: its delivery verifies and is applied.
    let r = relay.handle(&delivery("192.0.2.7", "ok-2", false), now(AT + 1));
    assert_eq!(r.status, 200);
    // Successes count nothing: Polar's address never reaches the limit.
    for i in 0..(2 * MAX_FAILURES) {
        let r = relay.handle(
            &delivery("192.0.2.7", &format!("ok-p{i}"), false),
            now(AT + 2),
        );
        assert_eq!(r.status, 200, "{i}");
    }
    // An IPv6 attacker's /64 is one address.
    for i in 0..MAX_FAILURES {
        let client = format!("2001:db8:1:2::{i:x}");
        let r = relay.handle(&delivery(&client, &format!("v6-{i}"), true), now(AT));
        assert_eq!(r.status, 401, "{i}");
    }
    let r = relay.handle(&delivery("2001:db8:1:2::ffff", "v6-x", true), now(AT));
    assert_eq!(r.status, 429);
    // The window ends: the address is verified again.
    let at = AT + FAILURE_WINDOW;
    let mut late = delivery("192.0.2.66", "late", false);
    late.headers[2].1 = at.to_string();
    let r = relay.handle(&late, now(at));
    assert_eq!(
        r.status, 401,
        "verified again (its signature is for another time)"
    );
}

/// A header over the limits is answered 400 with no HMAC, and counts as a failure.
#[test]
fn a_signature_header_over_its_limits_is_a_400_with_no_hmac() {
    let relay = relay();
    let mut req = delivery("192.0.2.3", "big", false);
    let sig = req.headers[3].1.clone();
    req.headers[3].1 = vec![sig.as_str(); 2_000].join(" ");
    let before = hmacs();
    let r = relay.handle(&req, now(AT));
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("webhook-signature"));
    assert_eq!(hmacs() - before, 0);
}

/// Its head alone (the body unread: the npm relay asks before it reads up to 1 MiB) gives
/// the answer the route gives the whole request: 400 for a signature header over its
/// limits, 401 for a timestamp out of its window (both counted), 429 for an address over
/// its failures; a delivery its headers let through (a genuine one, a forged one whose
/// HMAC alone can tell) is `None`, and the route then verifies it as before.
#[test]
fn the_head_alone_refuses_what_the_route_would_with_no_body() {
    let relay = relay();
    let unread = |req: &RelayRequest, at: i64| {
        let head = RelayRequest {
            body: Vec::new(),
            ..req.clone()
        };
        relay.refuse_unread(&head, crate::route::target::Target::of(&head.path), now(at))
    };
    let mut big = delivery("192.0.2.3", "big", false);
    let sig = big.headers[3].1.clone();
    big.headers[3].1 = vec![sig.as_str(); 2_000].join(" ");
    let whole = relay.handle(&big, now(AT));
    let early = unread(&big, AT).expect("refused on its head");
    assert_eq!((early.status, &early.body), (whole.status, &whole.body));
    assert_eq!(early.status, 400);
    let late = delivery("192.0.2.4", "late", false);
    let whole = relay.handle(&late, now(AT + 301));
    let early = unread(&late, AT + 301).expect("a timestamp out of its window");
    assert_eq!((early.status, &early.body), (whole.status, &whole.body));
    assert_eq!(early.status, 401);
    // Neither the genuine delivery nor a forged one with headers in bounds is decided
    // without its body.
    assert!(unread(&delivery("192.0.2.5", "ok", false), AT).is_none());
    assert!(unread(&delivery("192.0.2.5", "forged", true), AT).is_none());
    // Counted as the route counts them: MAX_FAILURES refusals on the head, then 429.
    let before = hmacs();
    for i in 0..MAX_FAILURES {
        let mut req = delivery("192.0.2.66", &format!("h{i}"), false);
        req.headers[3].1 = [sig.as_str(); 9].join(" ");
        assert_eq!(unread(&req, AT).map(|r| r.status), Some(400), "{i}");
    }
    // Limited: a delivery that says no length, or one over the body cap, is refused
    // unread; one that says a length within it is read and verified.
    let genuine = delivery("192.0.2.66", "ok-1", false);
    let early = unread(&genuine, AT + 1).expect("limited");
    let whole = relay.handle(&genuine, now(AT + 1));
    assert_eq!((early.status, whole.status), (429, 429));
    assert!(early.header("retry-after").is_some());
    let small = delivery_of("192.0.2.66", "ok-small", false, 2_048);
    let mut unsaid = small.clone();
    unsaid.headers.retain(|(name, _)| name != "content-length");
    assert_eq!(unread(&unsaid, AT + 1).map(|r| r.status), Some(429));
    assert!(unread(&small, AT + 1).is_none());
    assert_eq!(hmacs() - before, 0, "no HMAC computed");
    assert_eq!(relay.handle(&small, now(AT + 1)).status, 200);
    // Another route, or no webhook secret: never decided here.
    let mut check = delivery("192.0.2.66", "ok-2", false);
    check.path = "/v1/customer-portal/license-keys/validate".into();
    assert!(unread(&check, AT).is_none());
}
