//! Polar's webhook deliveries at the door: each verified once per request, whatever host
//! drives the relay, and an address whose posts keep failing verification refused before any
//! HMAC is computed.
//!
//! **Once per request.** A request whose host reads the store before the request begins (the
//! npm relay over a Durable Object: its exchange asks the relay what the request touches for
//! the loads, then begins the request) is looked at two or three times. The first look keeps its
//! outcome here (the request's headers and body, compared byte for byte: as cheap as a copy,
//! and as binding as the HMAC itself); later looks at the same request read it, and the begin
//! takes it out. The native hosts look once and keep nothing.
//!
//! **Failures limited per address, never a genuine delivery.** An address (an IPv6 client's
//! /64) with [`MAX_FAILURES`] refused deliveries within [`FAILURE_WINDOW`] seconds is
//! *limited* until the window ends: its deliveries are still verified, but only those of at
//! most [`LIMITED_BODY_BYTES`] (the body cap of every other route; Polar's events are a few
//! KiB), and a larger one (or one that does not say its length) gets 429 with no HMAC computed
//! and, where the host asks first, its body unread. So the limit bounds the CPU an attacker
//! can spend (a forged delivery past it costs two HMACs over 64 KiB at most, as much as any
//! request's body), while a delivery whose signature verifies is never refused for its
//! address's forged ones: behind a proxy whose client header is not configured every client is
//! the proxy, Polar included (issue #62).
//!
//! **Many addresses.** The map of addresses holds at most [`PRUNE_AT`] in their window; when
//! it is full, the addresses not in it are counted together, as one, and limited together.
//! And all failures together have a budget per window, [`GLOBAL_MAX_FAILURES`]: past it every
//! address is limited. Before, a full map stopped counting new addresses: each forged MiB then
//! cost 4.3 ms of CPU, without limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::locked::locked;
use crate::store::{self, WebhookRefusal};
use crate::types::{RelayRequest, RelayResponse};

/// Refused deliveries an address may send within [`FAILURE_WINDOW`] before it gets 429.
pub const MAX_FAILURES: u32 = 10;

/// The window the failures of an address are counted in (seconds).
pub const FAILURE_WINDOW: i64 = 60;

/// Outcomes kept between the looks at one request (a host that looks once keeps none).
const KEPT: usize = 4;

/// Above this many addresses counted, those whose window ended are dropped; while it stays
/// full, new addresses are counted together ([`Inner::others`]).
const PRUNE_AT: usize = 10_000;

/// The largest delivery a limited address (or any, past the global budget) still has verified.
pub const LIMITED_BODY_BYTES: usize = 64 * 1024;

/// Failed verifications of every address together within [`FAILURE_WINDOW`] before every
/// address is limited: at most about 4.3 s of CPU a minute on 1 MiB forgeries.
pub const GLOBAL_MAX_FAILURES: u32 = 1_000;

/// A window of failures: its start (unix seconds) and the failures in it.
type Window = (i64, u32);

/// One look's outcome, for the next look at the same request.
struct Looked {
    id: String,
    timestamp: String,
    signatures: String,
    body: Vec<u8>,
    signed: bool,
}

#[derive(Default)]
struct Inner {
    /// By address: the window's start (unix seconds) and the failures in it.
    failed: HashMap<String, Window>,
    /// The addresses the full map has no room for, together (limited at [`MAX_FAILURES`]).
    others: Window,
    /// Every failure (limited at [`GLOBAL_MAX_FAILURES`]).
    all: Window,
    kept: VecDeque<Looked>,
}

impl Inner {
    /// `Some(seconds until its window ends)` when `client` is limited at `now`: over its own
    /// failures, or (the map full, `client` not in it) the others over theirs, or every
    /// address over the global budget.
    fn limited(&self, client: &str, now: i64) -> Option<u64> {
        let own = match self.failed.get(client) {
            Some(w) => over(*w, MAX_FAILURES, now),
            None if self.failed.len() >= PRUNE_AT => over(self.others, MAX_FAILURES, now),
            None => None,
        };
        own.or_else(|| over(self.all, GLOBAL_MAX_FAILURES, now))
    }

    /// One more failure of `client` at `now`: its own (the map holds at most [`PRUNE_AT`]
    /// addresses; when it is full of addresses still in their window, a new address counts
    /// with the others) and the global count.
    fn count(&mut self, client: &str, now: i64) {
        bump(&mut self.all, now);
        let failed = &mut self.failed;
        if failed.len() >= PRUNE_AT && !failed.contains_key(client) {
            failed.retain(|_, (start, _)| start.saturating_add(FAILURE_WINDOW) > now);
            if failed.len() >= PRUNE_AT {
                bump(&mut self.others, now);
                return;
            }
        }
        bump(failed.entry(client.to_string()).or_insert((now, 0)), now);
    }
}

/// Whether a limited address's delivery is too large to verify (or does not say its size):
/// `length`, the body's length or, before it is read, its `content-length`.
fn too_large_when_limited(length: Option<usize>) -> bool {
    length.is_none_or(|n| n > LIMITED_BODY_BYTES)
}

/// The deliveries' state: failures by address, and outcomes kept between looks.
#[derive(Default)]
pub(crate) struct Deliveries {
    inner: Mutex<Inner>,
}

/// How a delivery was refused (the answer, and whether it counts as a failure).
fn refused(why: &WebhookRefusal, signatures: Option<&str>) -> RelayResponse {
    if signatures.is_some_and(|s| !store::webhook_signatures_within_limits(s)) {
        log::warn!(
            "relay: a webhook refused (webhook-signature over {} entries or {} bytes): nothing changed",
            store::WEBHOOK_MAX_SIGNATURES,
            store::WEBHOOK_MAX_SIGNATURE_HEADER
        );
        return RelayResponse::detail(
            400,
            &format!(
                "the webhook-signature header holds more than {} entries or {} bytes",
                store::WEBHOOK_MAX_SIGNATURES,
                store::WEBHOOK_MAX_SIGNATURE_HEADER
            ),
        );
    }
    log::warn!("relay: a webhook refused ({why:?}): nothing changed");
    RelayResponse::detail(401, "the webhook's signature does not verify")
}

impl Deliveries {
    /// The refusal of a delivery from `client` at `now` (unix seconds) that its headers and
    /// address decide alone, before its body is read (a host that reads up to 1 MiB of it
    /// first: the npm relay on Workers): 429 for an address over its failures, 400 or 401 for
    /// headers [`Deliveries::verify`] refuses with no HMAC (missing, over the signature
    /// header's limits, a timestamp out of its window), counted as a failure as `verify`
    /// counts it. `None` when only the body can decide: `verify` then runs as before.
    pub(crate) fn refuse_unread(
        &self,
        secret: &str,
        client: &str,
        req: &RelayRequest,
        now: i64,
    ) -> Option<RelayResponse> {
        let signatures = req.header("webhook-signature");
        let mut inner = locked(&self.inner);
        if let Some(secs) = inner.limited(client, now) {
            let length = req
                .header("content-length")
                .and_then(|n| n.trim().parse::<usize>().ok());
            if too_large_when_limited(length) {
                log::info!(
                    "relay: a webhook 429 (client {} limited: too many that did not verify, and this one over {LIMITED_BODY_BYTES} bytes), its body not read",
                    crate::logged::escaped(client)
                );
                return Some(RelayResponse::rate_limited(secs));
            }
        }
        let why = store::webhook_headers(
            secret,
            req.header("webhook-id"),
            req.header("webhook-timestamp"),
            signatures,
            now,
        )
        .err()?;
        inner.count(client, now);
        drop(inner);
        Some(refused(&why, signatures))
    }

    /// Verifies `req` (a delivery from `client`, an address or /64) at `now` (unix seconds):
    /// `Err` with the answer when it is refused (429 for an address over its failures, 400 for
    /// a signature header over its limits, 401 otherwise). `keep`: a later look at the same
    /// request will come (its outcome is kept for it); otherwise a kept outcome is taken.
    pub(crate) fn verify(
        &self,
        secret: &str,
        client: &str,
        req: &RelayRequest,
        now: i64,
        keep: bool,
    ) -> Result<(), RelayResponse> {
        let (id, timestamp, signatures) = (
            req.header("webhook-id"),
            req.header("webhook-timestamp"),
            req.header("webhook-signature"),
        );
        let looked = {
            let mut inner = locked(&self.inner);
            let at = inner.kept.iter().position(|l| {
                Some(l.id.as_str()) == id
                    && Some(l.timestamp.as_str()) == timestamp
                    && Some(l.signatures.as_str()) == signatures
                    && l.body == req.body
            });
            match at {
                Some(at) if keep => inner.kept.get(at).map(|l| l.signed),
                Some(at) => inner.kept.remove(at).map(|l| l.signed),
                None => {
                    // A limited address's delivery is verified only within the body cap.
                    if let Some(secs) = inner.limited(client, now) {
                        if too_large_when_limited(Some(req.body.len())) {
                            log::info!(
                                "relay: a webhook 429 (client {} limited: too many that did not verify, and this one over {LIMITED_BODY_BYTES} bytes)",
                                crate::logged::escaped(client)
                            );
                            return Err(RelayResponse::rate_limited(secs));
                        }
                    }
                    None
                }
            }
        };
        if let Some(signed) = looked {
            // Looked at already (and counted then): the cheap checks again (the clock moved).
            store::webhook_headers(secret, id, timestamp, signatures, now)
                .map_err(|why| refused(&why, signatures))?;
            return if signed {
                Ok(())
            } else {
                Err(refused(&WebhookRefusal::Signature, signatures))
            };
        }
        // Computed without the lock: other requests go on meanwhile.
        let outcome = store::verify_webhook(secret, id, timestamp, signatures, &req.body, now);
        let mut inner = locked(&self.inner);
        if outcome.is_err() {
            inner.count(client, now);
        }
        if keep {
            if let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) {
                if inner.kept.len() >= KEPT {
                    inner.kept.pop_front();
                }
                inner.kept.push_back(Looked {
                    id: id.to_string(),
                    timestamp: timestamp.to_string(),
                    signatures: signatures.to_string(),
                    body: req.body.clone(),
                    signed: outcome.is_ok(),
                });
            }
        }
        outcome.map_err(|why| refused(&why, signatures))
    }
}

/// `Some(seconds until its window ends)` when `window` holds `max` failures or more at `now`.
fn over(window: Window, max: u32, now: i64) -> Option<u64> {
    let (start, n) = window;
    let left = start.saturating_add(FAILURE_WINDOW).saturating_sub(now);
    (n >= max && left > 0).then(|| left.unsigned_abs().max(1))
}

/// One more failure in `window` at `now` (a window over, or from a clock set back, starts anew).
fn bump(window: &mut Window, now: i64) {
    if window.0.saturating_add(FAILURE_WINDOW) <= now || window.0 > now {
        *window = (now, 0);
    }
    window.1 = window.1.saturating_add(1);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
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
}
