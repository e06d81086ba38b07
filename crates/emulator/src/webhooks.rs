//! Polar's webhooks (`docs/polar-api.md` §14), sans-IO: the endpoints an organization
//! registers (`/v1/webhooks/endpoints`), the events a change to a key emits, and their
//! delivery as Polar does it: Standard Webhooks signatures, at least once, in order per
//! endpoint, one attempt in flight per endpoint, a timeout per attempt, ten attempts on Polar's
//! backoff schedule, the endpoint disabled after ten consecutive failures, every attempt kept
//! for `GET /v1/webhooks/deliveries`.
//!
//! The core never sends: the host asks for what is due ([`crate::Core::webhooks_due`]), sends
//! each [`WebhookRequest`] with its own HTTP client, and reports how it went
//! ([`crate::Core::webhook_finished`]).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::json::{obj, opt_i, opt_s, s, J};
use crate::state::GrantView;
use crate::util::fmt_ts;

/// Every event type of Polar's webhooks (the SDK's `WebhookEventType`, 1.0.x).
pub(crate) const EVENT_TYPES: &[&str] = &[
    "checkout.created",
    "checkout.updated",
    "checkout.expired",
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.state_changed",
    "customer_seat.assigned",
    "customer_seat.claimed",
    "customer_seat.revoked",
    "member.created",
    "member.updated",
    "member.deleted",
    "order.created",
    "order.updated",
    "order.paid",
    "order.refunded",
    "subscription.created",
    "subscription.updated",
    "subscription.active",
    "subscription.canceled",
    "subscription.uncanceled",
    "subscription.cycled",
    "subscription.revoked",
    "subscription.past_due",
    "subscription.paused",
    "subscription.resumed",
    "subscription.migrated",
    "refund.created",
    "refund.updated",
    "product.created",
    "product.updated",
    "discount.created",
    "discount.updated",
    "discount.deleted",
    "benefit.created",
    "benefit.updated",
    "benefit_grant.created",
    "benefit_grant.cycled",
    "benefit_grant.updated",
    "benefit_grant.revoked",
    "organization.updated",
];

/// Polar's retry schedule in seconds: the delay before attempt n+1 (about "at once, 30 s,
/// 1 min, 5 min, 15 min, …", docs/polar-api.md §14), ten attempts in all.
const SCHEDULE: [u64; 10] = [0, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800];
/// Attempts of one event before it is given up.
pub(crate) const MAX_ATTEMPTS: u32 = 10;
/// Consecutive failures after which an endpoint is disabled.
pub(crate) const DISABLE_AFTER: u32 = 10;
/// How much of a receiver's answer a delivery keeps.
const RESPONSE_KEPT: usize = 2048;

/// A failure to inject into the next events' deliveries, for testing a receiver. It applies
/// to the events of the next change (every endpoint's), then clears itself.
///
/// As JSON (`POST /__emulator/webhooks/fault`): `{"kind":"duplicate"}`, `{"kind":"reorder"}`,
/// `{"kind":"delay","ms":1500}`, `{"kind":"stale_timestamp","seconds":600}`,
/// `{"kind":"bad_signature"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WebhookFault {
    /// Deliver the event twice (the same `webhook-id`), the second right after the first
    /// succeeded: at least once means a receiver sees repeats.
    Duplicate,
    /// Hold the next event until the one after it is emitted, and deliver the later first.
    Reorder,
    /// Send the event this much later (the endpoint's later events wait behind it).
    Delay {
        /// The delay in milliseconds.
        ms: u64,
    },
    /// Sign the first attempt with a `webhook-timestamp` this many seconds in the past (the
    /// signature is right for it): a receiver must refuse it; the retry is fresh.
    StaleTimestamp {
        /// How old the timestamp is, in seconds.
        seconds: u64,
    },
    /// Sign the first attempt with a wrong key: a receiver must refuse it; the retry is right.
    BadSignature,
}

/// An HTTP request the host must send for the core: one attempt at one event.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// The attempt's number, to hand back to [`crate::Core::webhook_finished`].
    pub id: u64,
    /// The endpoint's URL.
    pub url: String,
    /// The headers (`content-type`, `webhook-id`, `webhook-timestamp`, `webhook-signature`).
    pub headers: Vec<(String, String)>,
    /// The body: the event's JSON.
    pub body: Vec<u8>,
    /// How long the attempt may take (the answer's status and body included).
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookRequest {
    /// The header names and the body's length only: the body names a key's display form and
    /// ids, the signature is a MAC under the endpoint's secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("WebhookRequest")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// How an attempt went, as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The receiver answered: a 2xx is a success, anything else a failure.
    Answered {
        /// The status code.
        status: u16,
        /// The body (kept, shortened, in the delivery's `response`).
        body: String,
    },
    /// No answer: refused, reset, timed out, or a URL the host cannot reach.
    Failed {
        /// What went wrong (kept in the delivery's `response`).
        error: String,
    },
}

/// A registered endpoint (`WebhookEndpoint`).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) url: String,
    pub(crate) name: Option<String>,
    pub(crate) api_version: String,
    pub(crate) format: String,
    pub(crate) secret: String,
    pub(crate) events: Vec<String>,
    pub(crate) enabled: bool,
    /// Signed with the base64-decoded secret (Standard Webhooks) rather than its UTF-8 bytes.
    pub(crate) standard_signature: bool,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) modified_at: Option<OffsetDateTime>,
    /// Consecutive failed attempts (reset by a success or a re-enable).
    failures: u32,
    /// An attempt of this endpoint is being sent.
    in_flight: bool,
}

/// One event for one endpoint (`WebhookEvent`): its id is the `webhook-id` of every attempt.
#[derive(Debug, Clone)]
struct Event {
    id: Uuid,
    endpoint_id: Uuid,
    kind: String,
    api_version: String,
    payload: String,
    created_at: OffsetDateTime,
    modified_at: Option<OffsetDateTime>,
    last_http_code: Option<u16>,
    succeeded: Option<bool>,
    /// Still to be delivered (or redelivered).
    pending: bool,
    /// Attempts made since it was (re)scheduled.
    attempts: u32,
    /// The monotonic time of the next attempt.
    next_at: Duration,
    /// [`WebhookFault::Reorder`]: waits for the next event of its endpoint.
    held: bool,
    /// [`WebhookFault::Duplicate`]: one more send after a success.
    duplicate: bool,
    /// [`WebhookFault::StaleTimestamp`] of the first attempt.
    stale_by: Option<u64>,
    /// [`WebhookFault::BadSignature`] on the first attempt.
    bad_signature: bool,
}

/// One attempt (`WebhookDelivery`).
#[derive(Debug, Clone)]
struct DeliveryRec {
    id: Uuid,
    event_id: Uuid,
    endpoint_id: Uuid,
    created_at: OffsetDateTime,
    succeeded: bool,
    http_code: Option<u16>,
    response: Option<String>,
}

/// An attempt being sent.
#[derive(Debug, Clone)]
struct InFlight {
    token: u64,
    event_id: Uuid,
    endpoint_id: Uuid,
}

/// A change to a key, as webhooks tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GrantChange {
    /// A new grant, or a revoked one granted again: `benefit_grant.created`.
    Created,
    /// The grant's key changed (status, limits, expiry, usage, string): `benefit_grant.updated`
    /// with the properties before (`display_key` of the old string after a rotation).
    Updated { previous_display_key: String },
    /// `benefit_grant.revoked`.
    Revoked,
    /// A new billing period (usage reset): `benefit_grant.cycled`.
    Cycled,
}

/// Webhook endpoints, events and deliveries of every organization.
#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    pub(crate) endpoints: Vec<Endpoint>,
    events: Vec<Event>,
    deliveries: Vec<DeliveryRec>,
    in_flight: Vec<InFlight>,
    next_token: u64,
    pub(crate) fault: Option<WebhookFault>,
    /// The second half of a [`WebhookFault::Reorder`]: endpoints whose held event waits.
    reorder_waiting: bool,
}

/// The HMAC key of a secret: the base64 after `whsec_` (Standard Webhooks) or, for an endpoint
/// that does not use Standard Webhooks signatures, the secret's UTF-8 bytes (Polar's original).
fn signing_key(secret: &str, standard: bool) -> Vec<u8> {
    use ct_codecs::Decoder;
    if standard {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let mut buf = vec![0u8; encoded.len()];
        if let Ok(bytes) = ct_codecs::Base64::decode(&mut buf, encoded, None) {
            return bytes.to_vec();
        }
    }
    secret.as_bytes().to_vec()
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
pub(crate) fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    use ct_codecs::Encoder;
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let encoded = ct_codecs::Base64::encode_to_string(tag).unwrap_or_default();
    format!("v1,{encoded}")
}

/// A new secret, `whsec_` and the base64 of 32 bytes from `random`.
pub(crate) fn new_secret(random: [u8; 32]) -> String {
    use ct_codecs::Encoder;
    let encoded = ct_codecs::Base64::encode_to_string(random).unwrap_or_default();
    format!("whsec_{encoded}")
}

/// A stable v4-shaped id derived from another (a key's grant, its benefit's record).
pub(crate) fn derived_id(label: &str, from: Uuid) -> Uuid {
    let digest = Sha256::new()
        .chain_update(label.as_bytes())
        .chain_update(from.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    for (out, byte) in bytes.iter_mut().zip(digest.iter()) {
        *out = *byte;
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn scaled(secs: u64, scale: f64) -> Duration {
    Duration::try_from_secs_f64(secs as f64 * scale).unwrap_or(Duration::MAX)
}

impl Webhooks {
    pub(crate) fn endpoint(&self, organization_id: Uuid, id: Uuid) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.id == id && e.organization_id == organization_id)
    }

    pub(crate) fn endpoint_mut(
        &mut self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Option<&mut Endpoint> {
        self.endpoints
            .iter_mut()
            .find(|e| e.id == id && e.organization_id == organization_id)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_endpoint(
        &mut self,
        id: Uuid,
        organization_id: Uuid,
        url: String,
        name: Option<String>,
        api_version: String,
        events: Vec<String>,
        secret: String,
        now: OffsetDateTime,
    ) -> &Endpoint {
        self.endpoints.push(Endpoint {
            id,
            organization_id,
            url,
            name,
            api_version,
            format: "raw".to_string(),
            secret,
            events,
            enabled: true,
            standard_signature: true,
            created_at: now,
            modified_at: None,
            failures: 0,
            in_flight: false,
        });
        let last = self.endpoints.len() - 1;
        &self.endpoints[last]
    }

    /// Removes an endpoint with its events and deliveries.
    pub(crate) fn delete_endpoint(&mut self, organization_id: Uuid, id: Uuid) -> bool {
        let before = self.endpoints.len();
        self.endpoints
            .retain(|e| !(e.id == id && e.organization_id == organization_id));
        if self.endpoints.len() == before {
            return false;
        }
        self.events.retain(|e| e.endpoint_id != id);
        self.deliveries.retain(|d| d.endpoint_id != id);
        self.in_flight.retain(|f| f.endpoint_id != id);
        true
    }

    /// An endpoint enabled again starts over: no failures counted.
    pub(crate) fn reset_failures(&mut self, id: Uuid) {
        if let Some(e) = self.endpoints.iter_mut().find(|e| e.id == id) {
            e.failures = 0;
        }
    }

    /// Emits `kind` with `data` to every enabled `raw` endpoint of `organization_id` that
    /// subscribed to it: one event each, rendered for the endpoint's API version.
    pub(crate) fn emit(
        &mut self,
        organization_id: Uuid,
        kind: &str,
        data: &J,
        wall: OffsetDateTime,
        monotonic: Duration,
        mut next_id: impl FnMut() -> Uuid,
    ) {
        let fault = self.fault.take();
        let reorder_second = std::mem::take(&mut self.reorder_waiting);
        let targets: Vec<(Uuid, String)> = self
            .endpoints
            .iter()
            .filter(|e| {
                e.organization_id == organization_id
                    && e.enabled
                    && e.format == "raw"
                    && e.events.iter().any(|t| t == kind)
            })
            .map(|e| (e.id, e.api_version.clone()))
            .collect();
        for (endpoint_id, api_version) in targets {
            let payload = obj(vec![
                ("type", s(kind)),
                ("timestamp", s(&fmt_ts(wall))),
                ("api_version", s(&api_version)),
                ("data", data.clone()),
            ]);
            let Ok(payload) = payload.to_json() else {
                continue;
            };
            let mut event = Event {
                id: next_id(),
                endpoint_id,
                kind: kind.to_string(),
                api_version,
                payload,
                created_at: wall,
                modified_at: None,
                last_http_code: None,
                succeeded: None,
                pending: true,
                attempts: 0,
                next_at: monotonic,
                held: false,
                duplicate: false,
                stale_by: None,
                bad_signature: false,
            };
            match &fault {
                Some(WebhookFault::Duplicate) => event.duplicate = true,
                Some(WebhookFault::Reorder) => event.held = true,
                Some(WebhookFault::Delay { ms }) => {
                    event.next_at = monotonic.saturating_add(Duration::from_millis(*ms));
                }
                Some(WebhookFault::StaleTimestamp { seconds }) => event.stale_by = Some(*seconds),
                Some(WebhookFault::BadSignature) => event.bad_signature = true,
                None => {}
            }
            let held_at = reorder_second
                .then(|| {
                    self.events
                        .iter()
                        .position(|e| e.endpoint_id == endpoint_id && e.held)
                })
                .flatten();
            match held_at {
                Some(i) => {
                    // The later event goes first; the held one follows it.
                    if let Some(held) = self.events.get_mut(i) {
                        held.held = false;
                        held.next_at = monotonic;
                    }
                    self.events.insert(i, event);
                }
                None => self.events.push(event),
            }
        }
        if fault == Some(WebhookFault::Reorder) {
            self.reorder_waiting = true;
        }
    }

    /// The attempts due at `monotonic`: per enabled endpoint with nothing in flight, its oldest
    /// pending event, when its time has come.
    pub(crate) fn due(
        &mut self,
        wall: OffsetDateTime,
        monotonic: Duration,
        timeout: Duration,
    ) -> Vec<WebhookRequest> {
        let mut out = Vec::new();
        for ei in 0..self.endpoints.len() {
            let endpoint = &self.endpoints[ei];
            if !endpoint.enabled || endpoint.in_flight {
                continue;
            }
            let endpoint_id = endpoint.id;
            let Some(event) = self
                .events
                .iter()
                .find(|e| e.endpoint_id == endpoint_id && e.pending)
            else {
                continue;
            };
            if event.held || event.next_at > monotonic {
                continue;
            }
            let first = event.attempts == 0;
            let mut timestamp = wall.unix_timestamp();
            if first {
                if let Some(stale) = event.stale_by {
                    timestamp = timestamp.saturating_sub(i64::try_from(stale).unwrap_or(i64::MAX));
                }
            }
            let key = if first && event.bad_signature {
                b"not the endpoint's secret".to_vec()
            } else {
                signing_key(&endpoint.secret, endpoint.standard_signature)
            };
            let id = event.id.to_string();
            let body = event.payload.as_bytes().to_vec();
            let headers = vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("webhook-id".to_string(), id.clone()),
                ("webhook-timestamp".to_string(), timestamp.to_string()),
                (
                    "webhook-signature".to_string(),
                    signature(&key, &id, timestamp, &body),
                ),
            ];
            self.next_token = self.next_token.wrapping_add(1);
            let token = self.next_token;
            self.in_flight.push(InFlight {
                token,
                event_id: event.id,
                endpoint_id,
            });
            out.push(WebhookRequest {
                id: token,
                url: endpoint.url.clone(),
                headers,
                body,
                timeout,
            });
            self.endpoints[ei].in_flight = true;
        }
        out
    }

    /// The monotonic time of the next attempt to make (`None`: nothing waits, or everything
    /// waits for an attempt in flight or a held event).
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.endpoints
            .iter()
            .filter(|e| e.enabled && !e.in_flight)
            .filter_map(|endpoint| {
                self.events
                    .iter()
                    .find(|e| e.endpoint_id == endpoint.id && e.pending)
                    .filter(|e| !e.held)
                    .map(|e| e.next_at)
            })
            .min()
    }

    /// Records how attempt `token` went and schedules what follows.
    pub(crate) fn finished(
        &mut self,
        token: u64,
        outcome: WebhookOutcome,
        wall: OffsetDateTime,
        monotonic: Duration,
        scale: f64,
        delivery_id: Uuid,
    ) {
        let Some(at) = self.in_flight.iter().position(|f| f.token == token) else {
            return;
        };
        let flight = self.in_flight.swap_remove(at);
        let (succeeded, http_code, response) = match outcome {
            WebhookOutcome::Answered { status, body } => {
                let kept: String = body.chars().take(RESPONSE_KEPT).collect();
                ((200..300).contains(&status), Some(status), Some(kept))
            }
            WebhookOutcome::Failed { error } => (
                false,
                None,
                Some(error.chars().take(RESPONSE_KEPT).collect()),
            ),
        };
        self.deliveries.push(DeliveryRec {
            id: delivery_id,
            event_id: flight.event_id,
            endpoint_id: flight.endpoint_id,
            created_at: wall,
            succeeded,
            http_code,
            response,
        });
        let endpoint = self
            .endpoints
            .iter_mut()
            .find(|e| e.id == flight.endpoint_id);
        if let Some(endpoint) = endpoint {
            endpoint.in_flight = false;
            if succeeded {
                endpoint.failures = 0;
            } else {
                endpoint.failures = endpoint.failures.saturating_add(1);
                if endpoint.failures >= DISABLE_AFTER && endpoint.enabled {
                    endpoint.enabled = false;
                    endpoint.modified_at = Some(wall);
                }
            }
        }
        let Some(event) = self.events.iter_mut().find(|e| e.id == flight.event_id) else {
            return;
        };
        event.attempts = event.attempts.saturating_add(1);
        event.last_http_code = http_code;
        event.modified_at = Some(wall);
        if succeeded {
            event.succeeded = Some(true);
            if event.duplicate {
                event.duplicate = false;
                event.next_at = monotonic;
            } else {
                event.pending = false;
            }
        } else if event.attempts >= MAX_ATTEMPTS {
            event.succeeded = Some(false);
            event.pending = false;
        } else {
            event.succeeded = Some(false);
            let delay = SCHEDULE
                .get(event.attempts as usize)
                .copied()
                .unwrap_or(SCHEDULE[SCHEDULE.len() - 1]);
            event.next_at = monotonic.saturating_add(scaled(delay, scale));
        }
    }

    /// `POST /v1/webhooks/events/{id}/redeliver`: the event is sent again (same `webhook-id`),
    /// in its place in the endpoint's order, with a fresh schedule. `false`: no such event of
    /// the organization.
    pub(crate) fn redeliver(
        &mut self,
        organization_id: Uuid,
        id: Uuid,
        monotonic: Duration,
    ) -> bool {
        let owned: Vec<Uuid> = self
            .endpoints
            .iter()
            .filter(|e| e.organization_id == organization_id)
            .map(|e| e.id)
            .collect();
        let Some(event) = self
            .events
            .iter_mut()
            .find(|e| e.id == id && owned.contains(&e.endpoint_id))
        else {
            return false;
        };
        event.pending = true;
        event.attempts = 0;
        event.held = false;
        event.next_at = monotonic;
        true
    }

    /// The deliveries of the organization's endpoints, newest first, filtered.
    pub(crate) fn deliveries(
        &self,
        organization_id: Uuid,
        endpoint_id: Option<Uuid>,
        succeeded: Option<bool>,
        event_type: Option<&str>,
    ) -> Vec<J> {
        let owned: Vec<Uuid> = self
            .endpoints
            .iter()
            .filter(|e| e.organization_id == organization_id)
            .map(|e| e.id)
            .collect();
        self.deliveries
            .iter()
            .rev()
            .filter(|d| owned.contains(&d.endpoint_id))
            .filter(|d| endpoint_id.is_none_or(|id| d.endpoint_id == id))
            .filter(|d| succeeded.is_none_or(|s| d.succeeded == s))
            .filter_map(|d| {
                let event = self.events.iter().find(|e| e.id == d.event_id)?;
                if event_type.is_some_and(|t| t != event.kind) {
                    return None;
                }
                Some(obj(vec![
                    ("created_at", s(&fmt_ts(d.created_at))),
                    ("modified_at", J::Null),
                    ("id", s(&d.id.to_string())),
                    ("succeeded", J::Bool(d.succeeded)),
                    ("http_code", opt_i(d.http_code.map(i64::from))),
                    ("response", opt_s(d.response.as_deref())),
                    ("webhook_event", render_event(event)),
                ]))
            })
            .collect()
    }
}

/// `WebhookEvent`.
fn render_event(e: &Event) -> J {
    obj(vec![
        ("created_at", s(&fmt_ts(e.created_at))),
        ("modified_at", opt_s(e.modified_at.map(fmt_ts).as_deref())),
        ("id", s(&e.id.to_string())),
        ("last_http_code", opt_i(e.last_http_code.map(i64::from))),
        (
            "succeeded",
            match e.succeeded {
                Some(b) => J::Bool(b),
                None => J::Null,
            },
        ),
        ("skipped", J::Bool(false)),
        ("api_version", s(&e.api_version)),
        ("payload", s(&e.payload)),
        ("type", s(&e.kind)),
        ("is_archived", J::Bool(false)),
    ])
}

/// `WebhookEndpoint`.
pub(crate) fn render_endpoint(e: &Endpoint) -> J {
    obj(vec![
        ("created_at", s(&fmt_ts(e.created_at))),
        ("modified_at", opt_s(e.modified_at.map(fmt_ts).as_deref())),
        ("id", s(&e.id.to_string())),
        ("url", s(&e.url)),
        ("name", opt_s(e.name.as_deref())),
        ("api_version", s(&e.api_version)),
        ("format", s(&e.format)),
        ("secret", s(&e.secret)),
        ("organization_id", s(&e.organization_id.to_string())),
        ("events", J::Arr(e.events.iter().map(|t| s(t)).collect())),
        ("enabled", J::Bool(e.enabled)),
        (
            "uses_standard_webhook_signature",
            J::Bool(e.standard_signature),
        ),
    ])
}

/// `ListResource…`: a page of `items` and the pagination of all of them.
pub(crate) fn page(items: Vec<J>, page: usize, limit: usize) -> J {
    let total = items.len();
    let limit = limit.max(1);
    let max_page = total.div_ceil(limit);
    let start = page.saturating_sub(1).saturating_mul(limit);
    let items: Vec<J> = items.into_iter().skip(start).take(limit).collect();
    obj(vec![
        ("items", J::Arr(items)),
        (
            "pagination",
            obj(vec![
                ("total_count", J::Int(total as i128)),
                ("max_page", J::Int(max_page as i128)),
            ]),
        ),
    ])
}

/// The `data` of a `benefit_grant.*` event: a `BenefitGrant` of a `license_keys` benefit
/// (the SDK's `BenefitGrantLicenseKeysWebhook`), as of `now`.
pub(crate) fn render_grant(g: &GrantView, change: &GrantChange, now: OffsetDateTime) -> J {
    let revoked = g.status == "revoked";
    let customer_id = g.customer_id.to_string();
    // The key's own `customer`; a webhook's `CustomerIndividual.email` is never null (the SDK's
    // type), so a seed customer without one gets a placeholder here.
    let customer = match &g.customer {
        J::Obj(items) => J::Obj(
            items
                .iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("email", J::Null) => (
                        k.clone(),
                        s(&format!("customer-{}@example.com", &customer_id[..8])),
                    ),
                    _ => (k.clone(), v.clone()),
                })
                .collect(),
        ),
        other => other.clone(),
    };
    let member = match &g.member {
        Some((id, email, external_id)) => obj(vec![
            ("id", s(id)),
            ("created_at", s(&fmt_ts(g.key_created_at))),
            ("modified_at", J::Null),
            ("customer_id", s(&customer_id)),
            (
                "email",
                s(email.as_deref().unwrap_or(&email_placeholder(id))),
            ),
            ("name", J::Null),
            ("external_id", opt_s(external_id.as_deref())),
            ("role", s("member")),
        ]),
        None => J::Null,
    };
    let activations = match g.limit_activations {
        Some(limit) if limit != 0 => obj(vec![
            ("limit", J::Int(i128::from(limit))),
            ("enable_customer_admin", J::Bool(false)),
        ]),
        _ => J::Null,
    };
    let benefit = obj(vec![
        ("id", s(&g.benefit_id.to_string())),
        ("created_at", s(&fmt_ts(g.key_created_at))),
        ("modified_at", J::Null),
        ("type", s("license_keys")),
        ("description", s("License key")),
        ("selectable", J::Bool(true)),
        ("deletable", J::Bool(true)),
        ("is_deleted", J::Bool(false)),
        ("organization_id", s(&g.organization_id.to_string())),
        ("metadata", J::Obj(Vec::new())),
        ("visibility", s("private")),
        (
            "properties",
            obj(vec![
                ("prefix", opt_s(g.prefix.as_deref())),
                ("expires", J::Null),
                ("activations", activations),
                ("limit_usage", opt_i(g.limit_usage)),
            ]),
        ),
        ("visibility_configurable", J::Bool(true)),
    ]);
    let properties = |display_key: &str| {
        obj(vec![
            ("license_key_id", s(&g.key_id.to_string())),
            ("display_key", s(display_key)),
        ])
    };
    let mut items = vec![
        ("created_at", s(&fmt_ts(g.key_created_at))),
        ("modified_at", s(&fmt_ts(now))),
        ("id", s(&derived_id("benefit_grant", g.key_id).to_string())),
        (
            "granted_at",
            if revoked {
                J::Null
            } else {
                s(&fmt_ts(g.key_created_at))
            },
        ),
        ("is_granted", J::Bool(!revoked)),
        (
            "revoked_at",
            if revoked { s(&fmt_ts(now)) } else { J::Null },
        ),
        ("is_revoked", J::Bool(revoked)),
        ("subscription_id", opt_s(g.subscription_id.as_deref())),
        ("order_id", opt_s(g.order_id.as_deref())),
        ("customer_id", s(&customer_id)),
        (
            "member_id",
            opt_s(g.member.as_ref().map(|(id, _, _)| id.as_str())),
        ),
        ("benefit_id", s(&g.benefit_id.to_string())),
        ("error", J::Null),
        ("customer", customer),
        ("member", member),
        ("benefit", benefit),
        ("properties", properties(&g.display_key)),
    ];
    if let GrantChange::Updated {
        previous_display_key,
    } = change
    {
        items.push(("previous_properties", properties(previous_display_key)));
    }
    obj(items)
}

fn email_placeholder(id: &str) -> String {
    format!("member-{}@example.com", id.get(..8).unwrap_or(id))
}

/// The event type of a change.
pub(crate) fn grant_event_type(change: &GrantChange) -> &'static str {
    match change {
        GrantChange::Created => "benefit_grant.created",
        GrantChange::Updated { .. } => "benefit_grant.updated",
        GrantChange::Revoked => "benefit_grant.revoked",
        GrantChange::Cycled => "benefit_grant.cycled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_test_vector() {
        // The Standard Webhooks specification's example (its README and every library's
        // tests): this secret, id, timestamp and body sign to this signature.
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true);
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn legacy_key_is_the_whole_secret() {
        assert_eq!(signing_key("whsec_abc", false), b"whsec_abc".to_vec());
        // Not base64 after the prefix: the bytes of the whole secret.
        assert_eq!(signing_key("whsec_!!", true), b"whsec_!!".to_vec());
    }
}
