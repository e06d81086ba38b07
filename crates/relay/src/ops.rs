//! What an operator reads of a running relay (contract §5b): its health (`Relay::health`,
//! `GET /healthz`), its counters in Prometheus' text format (`Relay::metrics`, `GET /metrics`
//! on a listener of its own) and the warning when Polar's webhooks stop arriving
//! (`Ops::watch_webhooks`, a step of the background machine). Nothing here names a key, a
//! customer or the token: every label is one of a few fixed words or an HTTP status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use polar_license::proto::{HttpRequest, HttpResponse};
use polar_license::{Transport, TransportError, TransportErrorKind};

use crate::breaker::Breaker;
use crate::clock::Now;
use crate::locked::locked;
use crate::stored::Stored;
use crate::types::{RelayRequest, RelayResponse, SOURCE_HEADER};

/// The relay's counters (shared with the transport wrapper that counts Polar's calls).
#[derive(Debug, Default)]
pub(crate) struct Ops {
    /// Answers by (route, source, status).
    answers: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    /// Calls to Polar made.
    polar_calls: AtomicU64,
    /// Calls to Polar that failed, by kind.
    polar_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Webhook deliveries by outcome.
    webhooks: Mutex<BTreeMap<&'static str, u64>>,
    /// Unix seconds of the last webhook that verified (0: none since the start).
    last_webhook: AtomicI64,
    /// Unix seconds of the relay's first clock reading (0: none yet).
    started: AtomicI64,
    /// Unix seconds of the last silence warning (0: none since the last webhook).
    warned: AtomicI64,
    /// Requests a server has read and not yet answered.
    in_flight: AtomicI64,
    /// [`crate::RelayConfig::webhook_silence`], in seconds (0: never).
    webhook_silence: u64,
    /// The API version each verified delivery came with (crate::payload_versions).
    payload_versions: crate::payload_versions::PayloadVersions,
}

impl Ops {
    /// Counters at zero, warning after `webhook_silence` seconds without a webhook.
    pub(crate) fn new(webhook_silence: u64) -> Ops {
        Ops {
            webhook_silence,
            ..Ops::default()
        }
    }

    /// The last webhook's time as the store kept it (the silence counts from it after a
    /// restart, not from the start).
    pub(crate) fn restore_last_webhook(&self, backend: &dyn crate::store::Backend) {
        match backend.last_webhook_at() {
            Ok(Some(at)) => {
                self.last_webhook.fetch_max(at, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => log::error!("relay: {e}: webhook silence counts from the start"),
        }
    }

    /// Counts one call to Polar and how it ended.
    fn called(&self, outcome: &Result<HttpResponse, TransportError>) {
        self.polar_calls.fetch_add(1, Ordering::Relaxed);
        let kind = match outcome {
            Err(e) if e.kind == TransportErrorKind::Timeout => Some("timeout"),
            Err(_) => Some("unreachable"),
            Ok(r) if r.status == 429 => Some("rate_limited"),
            Ok(r) if r.status >= 500 => Some("server_error"),
            Ok(r) if r.status == 401 => Some("unauthorized"),
            Ok(_) => None,
        };
        if let Some(kind) = kind {
            *locked(&self.polar_errors).entry(kind).or_default() += 1;
        }
    }

    /// Notes the relay's first clock reading (what webhook silence counts from before the
    /// first webhook).
    pub(crate) fn seen(&self, now: Now) {
        let _ = self.started.compare_exchange(
            0,
            now.unix_seconds.max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Counts an answer of the request machine.
    pub(crate) fn answered(&self, req: &RelayRequest, r: &RelayResponse, now: Now) {
        let route = crate::route::target::Target::of(&req.path).label();
        let source = match r.header(SOURCE_HEADER) {
            Some("polar") => "polar",
            Some("store") => "store",
            Some("stale") => "stale",
            Some(crate::types::RELAY_SOURCE) => "relay",
            Some(_) => "other",
            None => "relay",
        };
        *locked(&self.answers)
            .entry((route, source, r.status))
            .or_default() += 1;
        if route == "webhook" {
            let outcome = match r.status {
                200 => "accepted",
                400 => "bad_body",
                401 => "bad_signature",
                404 => "off",
                405 => "bad_method",
                413 => "too_large",
                429 => "limited",
                500 => "store_failed",
                _ => "other",
            };
            *locked(&self.webhooks).entry(outcome).or_default() += 1;
            if r.status == 200 {
                self.payload_versions
                    .delivered(crate::payload_versions::of_delivery(req));
                self.last_webhook
                    .fetch_max(now.unix_seconds, Ordering::Relaxed);
                self.warned.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// The relay's transport, counting every call to Polar and its failures in [`Ops`].
pub(crate) struct Counted {
    pub(crate) inner: Box<dyn Transport>,
    pub(crate) ops: Arc<Ops>,
}

impl Transport for Counted {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let outcome = self.inner.send(request);
        self.ops.called(&outcome);
        outcome
    }

    fn send_portal(
        &self,
        request: &polar_license::portal::PortalRequest,
    ) -> Result<HttpResponse, TransportError> {
        let outcome = self.inner.send_portal(request);
        self.ops.called(&outcome);
        outcome
    }
}

/// What `Relay::health` finds of the webhooks.
struct Silence {
    /// Seconds since the last webhook, when one came since the start.
    since_last: Option<i64>,
    /// Seconds counted toward the silence (since the last webhook, else since the start).
    quiet_for: i64,
    silent: bool,
}

impl Ops {
    /// Webhook silence, when webhooks are on (a store and a secret) and a limit is set.
    fn silence(&self, store: Option<&Stored>, now: Now) -> Option<Silence> {
        let on = store.is_some_and(|s| s.webhook_secret.is_some());
        if !on {
            return None;
        }
        self.seen(now);
        let last = self.last_webhook.load(Ordering::Relaxed);
        let since = if last > 0 {
            last
        } else {
            self.started.load(Ordering::Relaxed)
        };
        let quiet_for = now.unix_seconds.saturating_sub(since).max(0);
        let limit = i64::try_from(self.webhook_silence).unwrap_or(i64::MAX);
        Some(Silence {
            since_last: (last > 0).then(|| now.unix_seconds.saturating_sub(last).max(0)),
            quiet_for,
            silent: self.webhook_silence > 0 && quiet_for >= limit,
        })
    }

    /// The webhooks' silence at `now`, as the background machine asks it at each of its polls
    /// (crate::flow::background, on every host): with webhooks on and a limit set, the warning
    /// when one is due now (none arrived for [`crate::RelayConfig::webhook_silence`] seconds;
    /// again after each such period while the silence lasts), and in how many ms the question
    /// is worth asking again (the silence's end, or the next period's); `(None, None)` when
    /// webhooks are off or the limit is 0.
    pub(crate) fn watch_webhooks(
        &self,
        store: Option<&Stored>,
        now: Now,
    ) -> (Option<String>, Option<u64>) {
        let Some(s) = self.silence(store, now) else {
            return (None, None);
        };
        if self.webhook_silence == 0 {
            return (None, None);
        }
        let every = i64::try_from(self.webhook_silence).unwrap_or(i64::MAX);
        let secs = |s: i64| u64::try_from(s.max(1)).unwrap_or(1).saturating_mul(1_000);
        if !s.silent {
            return (None, Some(secs(every.saturating_sub(s.quiet_for))));
        }
        let warned = self.warned.load(Ordering::Relaxed);
        let since_warned = now.unix_seconds.saturating_sub(warned);
        if warned != 0 && since_warned < every {
            return (None, Some(secs(every.saturating_sub(since_warned))));
        }
        self.warned.store(now.unix_seconds, Ordering::Relaxed);
        let last = match s.since_last {
            Some(_) => "the last one",
            None => "the relay's start",
        };
        let warning = format!(
            "no webhook from Polar for {} s (since {last}; the limit is {every} s): is the \
             endpoint disabled in Polar (after 10 events that failed every try), or its secret \
             changed? Revocations are not heard until it is fixed",
            s.quiet_for
        );
        (Some(warning), Some(secs(every)))
    }

    /// Counts the answer the request machine gave to `req` (its status and its source header),
    /// on every host, for `Relay::metrics` and the last webhook's time.
    pub(crate) fn count_answer(&self, req: &RelayRequest, r: &RelayResponse, now: Now) {
        self.seen(now);
        self.answered(req, r, now);
    }

    /// For such a host: counts a call to Polar that it made, and how it ended (the relay's
    /// own transport counts its calls itself).
    pub(crate) fn count_call(&self, outcome: &Result<HttpResponse, TransportError>) {
        self.called(outcome);
    }

    /// For such a host: a request read (`+1`) or answered (`-1`), for the in-flight gauge.
    pub(crate) fn count_in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// Reads the last webhook's time from the store again, for a host that restores the store
    /// after the relay is made (the npm relay's `restore`).
    pub(crate) fn reload_last_webhook(&self, store: Option<&Stored>) {
        if let Some(s) = store {
            self.restore_last_webhook(s.backend.as_ref());
        }
    }

    /// `GET /healthz`: 200 with a small JSON body while the relay can answer, 503 when it
    /// cannot (its store does not read). The body says whether the store is open, how many
    /// entries it holds and the bytes they are counted for against its byte cap (`bytes`,
    /// `max_bytes`), the token budget's state, and with webhooks on how long since the
    /// last one and whether that is past the silence limit (`"status": "warning"`, still
    /// 200: the relay answers). No key, no token, no customer.
    pub(crate) fn health(
        &self,
        stored: Option<&Stored>,
        breaker: &Breaker,
        setup: Option<serde_json::Value>,
        last_seen: serde_json::Value,
        now: Now,
    ) -> RelayResponse {
        self.seen(now);
        let mut failing = false;
        let (store, budget) = match stored {
            None => (serde_json::Value::Null, serde_json::Value::Null),
            Some(s) => {
                let store = match s.backend.len() {
                    // The bytes its entries are counted for, against the byte cap in force
                    // (the option as the backends clamp it, `store::byte_cap`): what an
                    // operator (and the attack benchmark, from outside) reads of the cap.
                    Ok(n) => match s.backend.stored_bytes() {
                        Some(bytes) => serde_json::json!({"open": true, "entries": n,
                            "bytes": bytes,
                            "max_bytes": crate::store::byte_cap(s.options.max_bytes)}),
                        None => serde_json::json!({"open": true, "entries": n}),
                    },
                    Err(e) => {
                        log::error!("relay: /healthz: {e}");
                        failing = true;
                        serde_json::json!({"open": false})
                    }
                };
                let mut b = s.budget(now);
                let used = b.used(now.monotonic_ms);
                let room = b.room(now.monotonic_ms);
                drop(b);
                let budget = serde_json::json!({
                    "per_minute": s.options.budget,
                    "reserve": s.options.reserve,
                    "used": used,
                    "room": (room * 100.0).round() / 100.0,
                    "refused": s.refused.load(Ordering::Relaxed),
                });
                (store, budget)
            }
        };
        let silence = self.silence(stored, now);
        // The endpoint's payload version due for removal (or unknown to this relay): a
        // warning with its fix (crate::payload_versions).
        let version_warning = silence
            .as_ref()
            .and_then(|_| self.payload_versions.warning());
        let webhooks = match &silence {
            None => serde_json::Value::Null,
            Some(s) => {
                let (versions, last) = self.payload_versions.reading();
                serde_json::json!({
                    "seconds_since_last": s.since_last,
                    "silence_seconds": self.webhook_silence,
                    "silent": s.silent,
                    "payload_versions": versions,
                    "last_payload_version": last,
                    "version_warning": version_warning,
                })
            }
        };
        // A token that cannot list the organization's keys: the roster unreadable (its
        // `why` below), a warning as webhooks' silence is (the relay still answers).
        let unreadable = stored.is_some_and(|s| s.roster.is_unreadable());
        let status = if failing {
            "unavailable"
        } else if unreadable
            || version_warning.is_some()
            || silence.as_ref().is_some_and(|s| s.silent)
        {
            "warning"
        } else {
            "ok"
        };
        let breaker = breaker.reading();
        let body = serde_json::json!({
            "status": status,
            "store": store,
            "budget": budget,
            "reconcile": stored
                .map_or(serde_json::Value::Null, |s| s.reconcile.reading(s.options.reconcile_every)),
            "roster": stored
                .map_or(serde_json::Value::Null, |s| s.roster.reading()),
            "seats": stored.map_or(serde_json::Value::Null, |s| {
                let r = s.seats_seen.reading(now.unix_seconds);
                serde_json::json!({
                    "in_use": r.in_use,
                    "pools_in_use": r.pools,
                    "most_in_a_pool": r.most,
                    "borrowed": r.borrowed,
                    // Counted from the pools stepped since this relay started (its memory, no
                    // store read per look): after a restart a pool counts again at its next
                    // step, and a borrowed seat not heard from since is not counted.
                    "since_start": true,
                })
            }),
            "webhooks": webhooks,
            // The activations' last-seen record and its retirements (crate::last_seen).
            "last_seen": last_seen,
            // The seller's set-up as the relay last checked it (crate::doctor; null: off).
            "setup": setup,
            "breaker": {
                "state": breaker.state,
                "failures": breaker.failures,
                "opened": breaker.opened,
            },
        });
        let mut r = RelayResponse::json(if failing { 503 } else { 200 }, body.to_string());
        r.set("cache-control", "no-store");
        r
    }

    /// The relay's counters and gauges in Prometheus' text format (version 0.0.4), for
    /// `GET /metrics`: answers by route, source and status; Polar's calls and their errors;
    /// the token budget (used, refused); webhooks by outcome and the time since the last;
    /// the store's entries and bytes. No label names a key or a customer.
    pub(crate) fn metrics(&self, store: Option<&Stored>, breaker: &Breaker, now: Now) -> String {
        self.seen(now);
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP polar_license_relay_{name} {help}");
            let _ = writeln!(out, "# TYPE polar_license_relay_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "polar_license_relay_{name}{labels} {value}");
            }
        };
        let answers: Vec<(String, String)> = locked(&self.answers)
            .iter()
            .map(|((route, source, status), n)| {
                (
                    format!("{{route=\"{route}\",source=\"{source}\",status=\"{status}\"}}"),
                    n.to_string(),
                )
            })
            .collect();
        family(
            "answers_total",
            "counter",
            "Answers given, by route (validate, activate, deactivate, devices, usage, seats, webhook, other), source (polar, store, stale) and HTTP status.",
            &answers,
        );
        family(
            "requests_in_flight",
            "gauge",
            "Requests the server has read and not yet answered (waiting for a slot, or for Polar).",
            &[(
                String::new(),
                self.in_flight.load(Ordering::Relaxed).max(0).to_string(),
            )],
        );
        family(
            "polar_calls_total",
            "counter",
            "Calls made to Polar.",
            &[(
                String::new(),
                self.polar_calls.load(Ordering::Relaxed).to_string(),
            )],
        );
        let errors: Vec<(String, String)> = [
            "rate_limited",
            "server_error",
            "timeout",
            "unauthorized",
            "unreachable",
        ]
        .iter()
        .map(|kind| {
            let n = locked(&self.polar_errors).get(kind).copied().unwrap_or(0);
            (format!("{{kind=\"{kind}\"}}"), n.to_string())
        })
        .collect();
        family(
            "polar_errors_total",
            "counter",
            "Calls to Polar that failed, by kind (unreachable, timeout, rate_limited: its 429, server_error: its 5xx, unauthorized: the token refused).",
            &errors,
        );
        let breaker = breaker.reading();
        family(
            "breaker_open",
            "gauge",
            "1 while the breaker in front of Polar stops calls (open or half-open), else 0.",
            &[(
                String::new(),
                u8::from(breaker.state != "closed").to_string(),
            )],
        );
        family(
            "breaker_opened_total",
            "counter",
            "Times the breaker opened (failed calls to Polar in a row, or a failed probe).",
            &[(String::new(), breaker.opened.to_string())],
        );
        if let Some(s) = store {
            let mut b = s.budget(now);
            let used = b.used(now.monotonic_ms);
            drop(b);
            family(
                "budget_limit",
                "gauge",
                "The organization token's calls per minute the relay may spend.",
                &[(String::new(), s.options.budget.to_string())],
            );
            family(
                "budget_reserve",
                "gauge",
                "Of the budget, the calls kept for activate, deactivate and usage increments.",
                &[(String::new(), s.options.reserve.to_string())],
            );
            family(
                "budget_used",
                "gauge",
                "Calls to Polar in the budget's current window.",
                &[(String::new(), used.to_string())],
            );
            family(
                "budget_refused_total",
                "counter",
                "Calls to Polar the budget refused (answered stale from the store, or 429).",
                &[(String::new(), s.refused.load(Ordering::Relaxed).to_string())],
            );
            let seats = s.seats_seen.reading(now.unix_seconds);
            family(
                "seats_in_use",
                "gauge",
                "Seats held now (issue #67), in all of the keys' pools; of them borrowed for offline use (kind=\"borrowed\") and the others (kind=\"held\").",
                &[
                    (
                        "{kind=\"held\"}".to_string(),
                        (seats.in_use - seats.borrowed).to_string(),
                    ),
                    ("{kind=\"borrowed\"}".to_string(), seats.borrowed.to_string()),
                ],
            );
            family(
                "seat_pools_in_use",
                "gauge",
                "Keys' seat pools with a seat held now (no label names a key).",
                &[(String::new(), seats.pools.to_string())],
            );
            family(
                "seats_in_use_most_in_a_pool",
                "gauge",
                "The most seats held now in one key's pool.",
                &[(String::new(), seats.most.to_string())],
            );
            let (up, entries) = match s.backend.len() {
                Ok(n) => (1, Some(n)),
                Err(_) => (0, None),
            };
            family(
                "store_up",
                "gauge",
                "1 while the verdict store reads, else 0.",
                &[(String::new(), up.to_string())],
            );
            if let Some(n) = entries {
                family(
                    "store_entries",
                    "gauge",
                    "Entries held by the verdict store.",
                    &[(String::new(), n.to_string())],
                );
            }
            family(
                "roster_unreadable",
                "gauge",
                "1 when the organization token cannot list its license keys (it needs license_keys:read): keys Polar has not granted through the relay get only the first-seen share; else 0.",
                &[(String::new(), u8::from(s.roster.is_unreadable()).to_string())],
            );
            if s.roster.phase() != crate::roster::Phase::Off {
                family(
                    "roster_keys",
                    "gauge",
                    "License keys the roster knows of (their SHA-256).",
                    &[(String::new(), s.roster.len().to_string())],
                );
            }
            for (name, kind, help, samples) in s.reconcile.families() {
                family(name, kind, help, &samples);
            }
            if let Some(bytes) = s.backend.bytes() {
                family(
                    "store_bytes",
                    "gauge",
                    "Bytes of the verdict store's file.",
                    &[(String::new(), bytes.to_string())],
                );
            }
        }
        if let Some(silence) = self.silence(store, now) {
            let outcomes: Vec<(String, String)> = locked(&self.webhooks)
                .iter()
                .map(|(outcome, n)| (format!("{{outcome=\"{outcome}\"}}"), n.to_string()))
                .collect();
            family(
                "webhooks_total",
                "counter",
                "Webhook deliveries, by outcome (accepted, bad_signature, bad_body, limited, store_failed, …).",
                &outcomes,
            );
            family(
                "webhook_quiet_seconds",
                "gauge",
                "Seconds since the last webhook that verified (since the relay's start when none came).",
                &[(String::new(), silence.quiet_for.to_string())],
            );
            family(
                "webhook_silent",
                "gauge",
                "1 when no webhook came for the configured silence limit, else 0.",
                &[(String::new(), u8::from(silence.silent).to_string())],
            );
            let (versions, _) = self.payload_versions.reading();
            let versions: Vec<(String, String)> = versions
                .iter()
                .map(|(v, n)| (format!("{{version=\"{v}\"}}"), n.to_string()))
                .collect();
            family(
                "webhook_payload_versions_total",
                "counter",
                "Verified webhook deliveries, by the API version of their payload (unstated: none named; other: not a version).",
                &versions,
            );
            family(
                "webhook_version_warning",
                "gauge",
                "1 when the last delivery's API version is due for removal at Polar's next release (or unknown to this relay): see /healthz's webhooks.version_warning; else 0.",
                &[(
                    String::new(),
                    u8::from(self.payload_versions.warning().is_some()).to_string(),
                )],
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{DEVICES_ROUTE, ROUTE_PREFIX, WEBHOOK_ROUTE};

    fn request(path: &str) -> RelayRequest {
        RelayRequest {
            method: "POST".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            client_ip: "127.0.0.1".into(),
        }
    }

    /// Each route the metrics name has its own label (issue #64's devices route among them,
    /// a query ignored); any other path is `other`.
    #[test]
    fn answers_are_labelled_by_route() {
        let ops = Ops::new(0);
        let now = Now {
            unix_seconds: 1,
            monotonic_ms: 1,
        };
        for path in [
            format!("{ROUTE_PREFIX}validate"),
            DEVICES_ROUTE.to_string(),
            format!("{DEVICES_ROUTE}?x=1"),
            format!("{}acquire", crate::types::SEATS_PREFIX),
            format!("{}release", crate::types::SEATS_PREFIX),
            WEBHOOK_ROUTE.to_string(),
            "/v1/elsewhere".to_string(),
        ] {
            ops.answered(&request(&path), &RelayResponse::new(200), now);
        }
        let counted: Vec<(&str, u64)> = locked(&ops.answers)
            .iter()
            .map(|((route, _, _), n)| (*route, *n))
            .collect();
        assert_eq!(
            counted,
            [
                ("devices", 2),
                ("other", 1),
                ("seats", 2),
                ("validate", 1),
                ("webhook", 1)
            ]
        );
    }
}
