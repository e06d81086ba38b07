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
mod tests;
