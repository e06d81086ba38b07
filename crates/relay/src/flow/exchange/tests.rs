//! The request machine's unit tests (kept beside flow/exchange.rs, out of its library code).

// Test code only (the module is `#[cfg(test)]` in flow/exchange.rs; said again here for the hostile
// suite's scan of the routers' paths, which reads a file's code up to its first such line).
#[cfg(test)]
use super::*;
use crate::flow::Asks;
use crate::locked::locked;
use crate::relay::Relay;
use polar_license::TransportErrorKind;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The lines logged in this test binary, by level (the only logger it installs).
struct Captured(std::sync::Mutex<Vec<(log::Level, String)>>);

impl log::Log for Captured {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let mut lines = locked(&self.0);
        lines.push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

static CAPTURED: Captured = Captured(std::sync::Mutex::new(Vec::new()));

#[test]
fn a_warning_or_an_error_asked_of_a_host_is_logged_at_its_level() {
    if log::set_logger(&CAPTURED).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    Need::Warn("w-7f3a".into()).log();
    Need::Error("e-7f3a".into()).log();
    Need::Done.log();
    let lines = locked(&CAPTURED.0);
    let ours: Vec<_> = lines.iter().filter(|(_, l)| l.contains("7f3a")).collect();
    assert_eq!(
        ours,
        [
            &(log::Level::Warn, "relay: w-7f3a".to_string()),
            &(log::Level::Error, "relay: e-7f3a".to_string()),
        ]
    );
}

const NOW: Now = crate::clock::at(0);

/// A relay whose transport counts its calls (the exchange never uses it: the host sends).
/// A relay on a fetch host (no slots asked; its calls counted by the core).
fn relay(calls: Arc<AtomicU32>) -> Relay {
    relay_on(calls, crate::types::Host::Fetch)
}

fn relay_on(calls: Arc<AtomicU32>, host: crate::types::Host) -> Relay {
    let mut config = crate::types::RelayConfig::for_tests();
    config.host = host;
    let transport = move |_: &HttpRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        Err(TransportError::new(TransportErrorKind::Connect, "none"))
    };
    Relay::with_entropy(config, Box::new(transport), Box::new(|| Some([7; 16]))).expect("a relay")
}

fn head(method: &str, path: &str) -> RelayRequest {
    RelayRequest {
        method: method.into(),
        path: path.into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Vec::new(),
        client_ip: "192.0.2.1".into(),
    }
}

/// Drives an exchange as a host would, answering each need with `answer`; the needs seen.
fn drive(relay: &Relay, req: RelayRequest, answer: impl Fn(&Need) -> Option<Given>) -> Vec<Need> {
    drive_with(relay, req, ExchangeOptions::default(), answer)
}

fn responded(needs: &[Need]) -> &RelayResponse {
    needs
        .iter()
        .find_map(|n| match n {
            Need::Respond(r) => Some(r),
            _ => None,
        })
        .expect("an answer")
}

/// The customer-portal validate route and a body it reads.
const VALIDATE: &str = "/v1/customer-portal/license-keys/validate";
const VALIDATE_BODY: &[u8] =
    br#"{"key":"POLAR-ABC","organization_id":"d2fcbff8-108b-411e-bf2b-6383e0a8802d"}"#;

#[test]
fn healthz_is_answered_without_reading_a_body_or_asking_polar() {
    let calls = Arc::new(AtomicU32::new(0));
    let relay = relay(calls.clone());
    let needs = drive(&relay, head("GET", "/healthz"), |n| match n {
        Need::Persist => Some(Given::Persisted(true)),
        _ => None,
    });
    assert_eq!(responded(&needs).status, 200);
    assert!(!needs
        .iter()
        .any(|n| matches!(n, Need::Body { .. } | Need::Send { .. })));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_validate_reads_its_body_once_asks_polar_through_the_host_and_passes_its_failure_on() {
    let calls = Arc::new(AtomicU32::new(0));
    let relay = relay(calls.clone());
    let body = VALIDATE_BODY;
    let needs = drive(&relay, head("POST", VALIDATE), |n| match n {
        Need::Body { max } => {
            assert!(*max > body.len());
            Some(Given::Body(body.to_vec()))
        }
        Need::Send { request, .. } => {
            assert!(
                request.url.ends_with("/v1/license-keys/validate"),
                "{}",
                request.url
            );
            Some(Given::Upstream(Err(TransportError::new(
                TransportErrorKind::Connect,
                "down",
            ))))
        }
        Need::Persist => Some(Given::Persisted(true)),
        _ => None,
    });
    assert_eq!(
        needs
            .iter()
            .filter(|n| matches!(n, Need::Body { .. }))
            .count(),
        1
    );
    assert_eq!(
        needs
            .iter()
            .filter(|n| matches!(n, Need::Send { .. }))
            .count(),
        1
    );
    assert_eq!(responded(&needs).status, 502);
    // The relay's own transport is never used: the host made the call.
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// A host that answers a call with a flight's landing (the npm host's bug that read
/// `{send, flight}` as a wait) is not asked for ever: the exchange ends with a 500.
#[test]
fn a_host_that_keeps_answering_another_need_ends_the_exchange_with_a_500() {
    let relay = relay(Arc::new(AtomicU32::new(0)));
    let body = VALIDATE_BODY;
    let needs = drive(&relay, head("POST", VALIDATE), |n| match n {
        Need::Body { .. } => Some(Given::Body(body.to_vec())),
        Need::Send { .. } => Some(Given::Landed),
        Need::Persist => Some(Given::Persisted(true)),
        _ => None,
    });
    let sends = needs
        .iter()
        .filter(|n| matches!(n, Need::Send { .. }))
        .count();
    assert_eq!(sends, MISMATCHES as usize);
    assert_eq!(responded(&needs).status, 500);
    assert!(needs.iter().any(|n| matches!(n, Need::Error(_))));
    assert_eq!(metric(&relay, "polar_license_relay_requests_in_flight "), 0);
}

/// The metric's value in the relay's Prometheus text (0 when absent).
fn metric(relay: &Relay, line_start: &str) -> u64 {
    relay
        .metrics(NOW)
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_blocking_handle_runs_the_exchange_its_call_made_once_and_counted_once() {
    let calls = Arc::new(AtomicU32::new(0));
    // The blocking host is the native one: its calls through the relay's transport.
    let relay = relay_on(calls.clone(), crate::types::Host::Native);
    let mut req = head("POST", VALIDATE);
    req.body = VALIDATE_BODY.to_vec();
    let r = relay.handle(&req, NOW);
    // Polar unreachable through the relay's own transport: the relay's 502, CORS granted.
    assert_eq!(r.status, 502);
    assert!(r.header("access-control-allow-origin").is_some());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The transport counts its call; the exchange does not count it again.
    assert_eq!(metric(&relay, "polar_license_relay_polar_calls_total "), 1);
    assert_eq!(metric(&relay, "polar_license_relay_requests_in_flight "), 0);
    // The operator's route, as every host answers it: no call.
    let health = relay.handle(&head("GET", "/healthz"), NOW);
    assert_eq!(health.status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A body over the cap: 413, no call.
    let mut big = head("POST", "/v1/customer-portal/license-keys/activate");
    big.body = vec![b' '; relay.limits().max_body_bytes + 10];
    assert_eq!(relay.handle(&big, NOW).status, 413);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A relay with a store (its budget counts the calls routed to Polar), on a fetch host.
fn stored_relay() -> Relay {
    stored_relay_on(crate::types::Host::Fetch)
}

fn stored_relay_on(host: crate::types::Host) -> Relay {
    let mut config = crate::types::RelayConfig::stored_for_tests(
        Arc::new(crate::store::MemoryBackend::new(100)),
        crate::store::StoreOptions::default(),
    );
    config.host = host;
    Relay::never_calling(config)
}

/// The calls the store's budget counts now.
fn budget_used(relay: &Relay) -> usize {
    relay
        .store
        .as_ref()
        .expect("a store")
        .budget(NOW)
        .used(NOW.monotonic_ms)
}

/// [`drive`] with `options`.
fn drive_with(
    relay: &Relay,
    req: RelayRequest,
    options: ExchangeOptions,
    answer: impl Fn(&Need) -> Option<Given>,
) -> Vec<Need> {
    let mut ex = Exchange::new(req, options);
    let mut seen = Vec::new();
    for _ in 0..64 {
        let need = ex.want(relay, NOW, Some([1; 16]));
        if matches!(need, Need::Done) {
            return seen;
        }
        if let Some(given) = answer(&need) {
            ex.give(given);
        }
        seen.push(need);
    }
    panic!("the exchange never ended: {seen:?}");
}

/// With slots, a call is asked for its slot first; once it has one it goes, unless the
/// breaker opened while it waited: then Polar is not asked, the check gets the relay's
/// 502, and the budget the call took is given back.
#[test]
fn a_call_whose_breaker_opened_while_it_waited_for_its_slot_is_not_made() {
    let opens = |relay: &Relay| {
        for _ in 0..crate::breaker::BreakerOptions::default().failures {
            relay.breaker.record(
                &Err(TransportError::new(TransportErrorKind::Timeout, "slow")),
                Some(crate::breaker::Ticket::Call),
                NOW,
            );
        }
    };
    for breaker_opens in [false, true] {
        let relay = stored_relay_on(crate::types::Host::Native);
        let needs = drive(&relay, head("POST", VALIDATE), |n| match n {
            Need::Body { .. } => Some(Given::Body(VALIDATE_BODY.to_vec())),
            Need::Slot { .. } => {
                // The call was routed (its budget taken) before it got its slot.
                assert_eq!(budget_used(&relay), 1);
                if breaker_opens {
                    opens(&relay);
                }
                Some(Given::Slot)
            }
            Need::Send { .. } => Some(Given::Upstream(Err(TransportError::new(
                TransportErrorKind::Timeout,
                "slow",
            )))),
            Need::Persist => Some(Given::Persisted(true)),
            _ => None,
        });
        let slots = needs.iter().position(|n| matches!(n, Need::Slot { .. }));
        let sends = needs.iter().position(|n| matches!(n, Need::Send { .. }));
        assert!(slots.is_some(), "{needs:?}");
        assert_eq!(responded(&needs).status, 502);
        if breaker_opens {
            assert_eq!(sends, None, "{needs:?}");
            assert_eq!(budget_used(&relay), 0, "the budget went back");
        } else {
            assert!(sends > slots, "{needs:?}");
            // A timed-out call may have reached Polar: it keeps its place.
            assert_eq!(budget_used(&relay), 1);
        }
    }
}

/// A call whose connection the relay's own transport saw refused (Polar's port closed, or
/// dropped by the host before it went) reached no Polar: its budget goes back (the native
/// host); one that timed out may have reached it and keeps its place, and so does a host's
/// own fetch that failed (a Worker's cannot tell a refusal from a connection closed after
/// the call was read).
#[test]
fn a_refused_calls_budget_goes_back() {
    for (kind, host, used) in [
        (TransportErrorKind::Connect, crate::types::Host::Native, 0),
        (TransportErrorKind::Connect, crate::types::Host::Fetch, 1),
        (TransportErrorKind::Connect, crate::types::Host::Workers, 1),
        (TransportErrorKind::Timeout, crate::types::Host::Native, 1),
        (TransportErrorKind::Timeout, crate::types::Host::Workers, 1),
    ] {
        {
            let relay = stored_relay_on(host);
            let needs = drive(&relay, head("POST", VALIDATE), |n| match n {
                Need::Body { .. } => Some(Given::Body(VALIDATE_BODY.to_vec())),
                Need::Slot { .. } => Some(Given::Slot),
                Need::Send { .. } => {
                    assert_eq!(budget_used(&relay), 1);
                    Some(Given::Upstream(Err(TransportError::new(kind, "no"))))
                }
                Need::Persist => Some(Given::Persisted(true)),
                _ => None,
            });
            assert_eq!(responded(&needs).status, 502);
            assert_eq!(budget_used(&relay), used, "{kind:?} {host:?}");
        }
    }
}

/// On a fetch host (node, Deno, Bun, Workers) no slot is ever asked for.
#[test]
fn no_slot_is_asked_without_call_slots() {
    let relay = stored_relay();
    let needs = drive(&relay, head("POST", VALIDATE), |n| match n {
        Need::Body { .. } => Some(Given::Body(VALIDATE_BODY.to_vec())),
        Need::Send { .. } => Some(Given::Upstream(Err(TransportError::new(
            TransportErrorKind::Timeout,
            "slow",
        )))),
        Need::Persist => Some(Given::Persisted(true)),
        _ => None,
    });
    assert!(needs.iter().any(|n| matches!(n, Need::Send { .. })));
    assert!(!needs.iter().any(|n| matches!(n, Need::Slot { .. })));
}

#[test]
fn an_oversized_body_is_refused_without_polar() {
    let relay = relay(Arc::new(AtomicU32::new(0)));
    let needs = drive(
        &relay,
        head("POST", "/v1/customer-portal/license-keys/activate"),
        |n| match n {
            Need::Body { max } => Some(Given::Body(vec![b' '; *max])),
            Need::Persist => Some(Given::Persisted(true)),
            _ => None,
        },
    );
    assert_eq!(responded(&needs).status, 413);
    assert!(!needs.iter().any(|n| matches!(n, Need::Send { .. })));
}
