//! The parse's promises (issue #77): one route per request whatever the spelling of its ids,
//! a bad path or body refused with the relay's answer before anything of the store is read,
//! an unknown route answered as before; and what each route reads of a host-kept store is
//! what its begin reads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Test code only (the module is `#[cfg(test)]` in mod.rs; said again here for the hostile
// suite's scan of the routers' paths, which reads a file's code up to its first such line).
#[cfg(test)]
use super::*;
use crate::flow::Asks;
use crate::route::seat::SeatOp;
use crate::store::{EntryId, Keeper, MemoryBackend, StoreOptions};
use crate::types::RelayConfig;
use crate::types::ROUTE_PREFIX;
use std::sync::{Arc, Mutex};

const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
const SEAT: &str = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";

/// A store in memory that records the entries the relay reads.
#[derive(Default)]
struct Recording {
    memory: MemoryBackend,
    read: Mutex<Vec<EntryId>>,
}

impl Keeper for Recording {
    fn memory(&self) -> &MemoryBackend {
        &self.memory
    }
    fn read(&self, id: &EntryId) {
        self.read.lock().unwrap().push(*id);
    }
}

fn relay() -> (Relay, Arc<Recording>) {
    let backend = Arc::new(Recording::default());
    let config = RelayConfig::stored_for_tests(backend.clone(), StoreOptions::default());
    (Relay::never_calling(config), backend)
}

fn post(path: &str, body: &str) -> RelayRequest {
    RelayRequest {
        method: "POST".into(),
        path: path.into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
        client_ip: "192.0.2.1".into(),
    }
}

/// The seat routes, the device listing and the license operations, each with its ids in two
/// spellings (an organization's in capitals, braced or not; a seat's in capitals): one route,
/// one pool, one verdict, one store read (issue #77's high hole: a seat pool per spelling).
#[test]
fn an_id_spelled_two_ways_is_one_route() {
    let (relay, _) = relay();
    let loud = ORG.to_uppercase();
    let braced = format!("{{{ORG}}}");
    let seat_body = |org: &str, seat: &str| {
        format!(r#"{{"key":"K-1","organization_id":"{org}","machine":"m1","seat":"{seat}"}}"#)
    };
    let heartbeats = [
        seat_body(ORG, SEAT),
        seat_body(&loud, &SEAT.to_uppercase()),
        seat_body(&braced, SEAT),
    ];
    let mut seen = Vec::new();
    for body in &heartbeats {
        let req = post("/v1/seats/heartbeat?from=test", body);
        let route = relay.route_of(&req);
        let Route::Seat(seat) = &route else {
            panic!("{body}: {route:?}");
        };
        let wants = route.part().wants(&relay, &req, 0).expect("wants");
        seen.push((
            seat.ask.organization_id.clone(),
            seat.ask.seat.clone(),
            seat.ask.pool_id(),
            wants,
        ));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    assert_eq!(seen[0].0.as_str(), ORG);
    assert_eq!(seen[0].1.as_deref(), Some(SEAT));

    for path in [
        "/v1/devices/list",
        "/v1/customer-portal/license-keys/validate",
    ] {
        let wants: Vec<_> = [ORG, &loud]
            .iter()
            .map(|org| {
                let req = post(
                    path,
                    &format!(r#"{{"key":"K-1","organization_id":"{org}"}}"#),
                );
                let route = relay.route_of(&req);
                assert!(
                    !matches!(route, Route::Refused(_)),
                    "{path} {org}: {route:?}"
                );
                route.part().wants(&relay, &req, 0).expect("wants")
            })
            .collect();
        assert_eq!(wants[0], wants[1], "{path}");
    }
}

/// A bad path, method, size or body is refused at the parse with the answer the relay gave
/// before routes were typed (status, body, `allow`), and nothing of the store is read: neither
/// asked of a host-kept store ([`Part::wants`]) nor read by the request itself.
#[test]
fn a_bad_request_is_refused_before_the_store() {
    let (relay, backend) = relay();
    let seat = |body: &str| post("/v1/seats/acquire", body);
    let other_org = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let big = format!(
        r#"{{"key":"K-1","organization_id":"{ORG}","machine":"{}"}}"#,
        "m".repeat(70_000)
    );
    let mut get = post("/v1/seats/acquire", "");
    get.method = "GET".into();
    let mut get_validate = post("/v1/customer-portal/license-keys/validate", "");
    get_validate.method = "GET".into();
    let cases: Vec<(RelayRequest, u16, &str)> = vec![
        (seat("not json"), 422, "InvalidSeatRequest"),
        (
            seat(&format!(r#"{{"key":"K-1","organization_id":"{ORG}"}}"#)),
            422,
            "machine is missing",
        ),
        (
            seat(&format!(
                r#"{{"key":"K-1","organization_id":"{ORG}","machine":"m","seat":"{SEAT}"}}"#
            )),
            422,
            "an acquisition names no seat",
        ),
        (
            post(
                "/v1/seats/heartbeat",
                &format!(r#"{{"key":"K-1","organization_id":"{ORG}","machine":"m","seat":"x"}}"#),
            ),
            422,
            "seat must be the seat's id",
        ),
        (seat(&big), 413, "RequestBodyTooLarge"),
        (get, 405, "Method Not Allowed"),
        (get_validate, 405, "Method Not Allowed"),
        (
            post("/v1/devices/list", r#"{"key":"K-1"}"#),
            422,
            "InvalidDevicesRequest",
        ),
        (
            post(
                "/v1/customer-portal/license-keys/validate",
                r#"{"key":"K-1","organization_id":"nope"}"#,
            ),
            422,
            "organization_id",
        ),
        (
            post(
                "/v1/customer-portal/license-keys/validate",
                &format!(r#"{{"organization_id":"{ORG}"}}"#),
            ),
            422,
            "key",
        ),
        (post("/v1/seats/borrow", "{}"), 404, "Not Found"),
        (
            post("/v1/customer-portal/license-keys/list", "{}"),
            404,
            "Not Found",
        ),
        // A usage report on a relay that takes none: an unknown route, as before.
        (post("/v1/usage/record", "{}"), 404, "Not Found"),
    ];
    for (req, status, says) in cases {
        let route = relay.route_of(&req);
        let Route::Refused(refused) = &route else {
            panic!("{} {}: {route:?}", req.method, req.path);
        };
        assert_eq!(refused.answer.status, status, "{}", req.path);
        let body = String::from_utf8_lossy(&refused.answer.body).to_string();
        assert!(body.contains(says), "{}: {body}", req.path);
        if status == 405 {
            assert_eq!(refused.answer.header("allow"), Some("POST, OPTIONS"));
        }
        assert_eq!(relay.store_wants(&req, &route, 0), None, "{}", req.path);
        let answered = relay.handle(&req, crate::clock::at(0));
        assert_eq!(answered.status, status, "{}", req.path);
        assert!(backend.read.lock().unwrap().is_empty(), "{}", req.path);
    }
    // Another organization than the relay's: its private 404, before any state.
    let mut config = RelayConfig::stored_for_tests(backend.clone(), StoreOptions::default());
    config.organization_id = Some(ORG.into());
    let one_org = Relay::never_calling(config);
    for req in [
        seat(&format!(
            r#"{{"key":"K-1","organization_id":"{other_org}","machine":"m"}}"#
        )),
        post(
            "/v1/customer-portal/license-keys/activate",
            &format!(r#"{{"key":"K-1","organization_id":"{other_org}","label":"a"}}"#),
        ),
    ] {
        let route = one_org.route_of(&req);
        let Route::Refused(refused) = &route else {
            panic!("{}: {route:?}", req.path);
        };
        assert_eq!(refused.answer.status, 404);
        assert!(String::from_utf8_lossy(&refused.answer.body).contains("ResourceNotFound"));
        assert_eq!(one_org.handle(&req, crate::clock::at(0)).status, 404);
        assert!(backend.read.lock().unwrap().is_empty(), "{}", req.path);
    }
}

/// An unknown route is `404 {"detail":"Not Found"}` and takes no per-IP token (as before);
/// a preflight anywhere is the preflight's answer, and takes one.
#[test]
fn unknown_routes_and_preflights_answer_as_before() {
    let (relay, _) = relay();
    for path in [
        "/",
        "/v1/elsewhere",
        "/v1/seats/",
        "/v1/customer-portal/license-keys/",
    ] {
        let route = relay.route_of(&post(path, "{}"));
        let Route::Refused(refused) = &route else {
            panic!("{path}: {route:?}");
        };
        assert_eq!(
            refused.answer,
            RelayResponse::detail(404, "Not Found"),
            "{path}"
        );
        assert_eq!(route.what(), None, "{path}");
    }
    for path in ["/v1/seats/acquire", "/v1/devices/list", "/elsewhere"] {
        let mut req = post(path, "");
        req.method = "OPTIONS".into();
        let route = relay.route_of(&req);
        assert_eq!(route.what(), Some("preflight"), "{path}");
        let Route::Refused(refused) = &route else {
            panic!("{path}: {route:?}");
        };
        assert_eq!(refused.answer.status, preflight().status, "{path}");
    }
}

/// Where a path points: its query ignored (but `/healthz`'s, which is then no health check).
#[test]
fn a_path_is_split_from_its_query_once() {
    let cases = [
        (
            "/v1/customer-portal/license-keys/validate?x=1",
            Target::License(Operation::Validate),
        ),
        (
            "/v1/customer-portal/license-keys/activate",
            Target::License(Operation::Activate),
        ),
        ("/v1/seats/release?x", Target::Seat(SeatOp::Release)),
        ("/v1/devices/list?x=1", Target::Devices),
        ("/v1/usage/record", Target::Usage),
        ("/v1/checkouts/create?x", Target::Checkout),
        ("/v1/checkouts/", Target::Unknown),
        ("/v1/webhooks/polar?x", Target::Webhook),
        ("/healthz", Target::Health),
        ("/healthz?x", Target::Unknown),
        ("/v1/seats/acquire/more", Target::Unknown),
    ];
    for (path, target) in cases {
        assert_eq!(Target::of(path), target, "{path}");
    }
}

/// What a validate wants of a host-kept store is the entry its begin reads (moved from the
/// relay's `wants.rs`).
#[test]
fn what_a_validate_wants_is_the_entry_the_relay_reads() {
    let (relay, backend) = relay();
    let org = ORG;
    let bodies = [
        format!(r#"{{"key":"K-1","organization_id":"{org}"}}"#),
        format!(r#"{{"key":"K-1","organization_id":"{org}","conditions":{{"a":1}}}}"#),
        format!(
            r#"{{"key":"K-1","organization_id":"{org}","activation_id":"{SEAT}","conditions":{{"a":1}}}}"#
        ),
    ];
    let mut ids = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        for version in [None, Some(" 2026-10 "), Some("not a version, far too long")] {
            let mut headers = vec![("Content-Type".into(), "application/json".into())];
            if let Some(v) = version {
                headers.push(("Polar-Version".into(), v.to_string()));
            }
            let req = RelayRequest {
                method: "POST".into(),
                path: format!("{ROUTE_PREFIX}validate"),
                headers,
                body: body.as_bytes().to_vec(),
                client_ip: format!("192.0.2.{i}"),
            };
            let route = relay.route_of(&req);
            let wants = Asks::store_wants(&relay, &req, &route, 0)
                .unwrap_or_else(|| panic!("no wants for {body} {version:?}"));
            backend.read.lock().unwrap().clear();
            let now = crate::clock::at(0);
            let _ = relay.begin_admitted(&req, &route, now, None, 0);
            // The verdict read; what explains a denial (crate::lifecycle) and, for a validate
            // naming an activation, when the key's activations were last seen
            // (crate::last_seen) loaded beside it, read only for a denial and a grant that
            // moves the time.
            assert_eq!(
                *backend.read.lock().unwrap(),
                wants.entries[..1],
                "{body} {version:?}"
            );
            let digest = polar_license::lease::key_hash(&polar_license::Key::new("K-1"));
            let mut beside = vec![crate::lifecycle::stored_id(org, &digest)];
            // Only a validate naming an activation moves its last-seen time.
            if body.contains("activation_id") {
                beside.push(crate::last_seen::stored_id(org, &digest));
            }
            assert_eq!(wants.entries[1..], beside[..], "{body}");
            ids.push(wants.entries[0]);
        }
    }
    // Conditions without an activation are no part of the id; with one they are.
    assert_eq!(ids[0], ids[3]);
    assert_ne!(ids[0], ids[6]);
    assert_ne!(ids[0], ids[1], "the version asked is part of the id");
}
