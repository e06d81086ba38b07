//! Polar's webhooks (`docs/polar-api.md` §14), sans-IO: the endpoints an organization
//! registers (`/v1/webhooks/endpoints`), the events a change to a key emits, and their
//! delivery as Polar does it: Standard Webhooks signatures, at least once, in order per
//! endpoint, one attempt in flight per endpoint, a timeout per attempt (10 s), ten tries in all
//! on Polar's backoff (2 s doubling, 50–100 % jitter, capped at 20 minutes), the endpoint
//! disabled once its ten most recent events each failed every try, every attempt kept for
//! `GET /v1/webhooks/deliveries`.
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
use crate::util::fmt_ts;

/// What a key's webhooks say of it (`benefit_grant.*`'s `data`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GrantView {
    pub(crate) key_id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) benefit_id: Uuid,
    pub(crate) customer_id: Uuid,
    /// The customer as the key's answers show it (`CustomerIndividual`).
    pub(crate) customer: J,
    pub(crate) key_created_at: OffsetDateTime,
    pub(crate) status: &'static str,
    pub(crate) limit_activations: Option<i64>,
    pub(crate) limit_usage: Option<i64>,
    pub(crate) usage: i64,
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) display_key: String,
    pub(crate) prefix: Option<String>,
    pub(crate) subscription_id: Option<String>,
    pub(crate) order_id: Option<String>,
    /// id, email, external id.
    pub(crate) member: Option<(String, Option<String>, Option<String>)>,
    /// The license-key benefit's own `properties` (not the key's: a key's limits changed
    /// later leave its benefit as it was).
    pub(crate) benefit: LicenseBenefitProps,
}

/// A `license_keys` benefit's `properties` as the emulator knows them: the limits and prefix of
/// the first key made of it, and the seed benefit's `enable_customer_admin`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LicenseBenefitProps {
    pub(crate) prefix: Option<String>,
    pub(crate) limit_activations: Option<i64>,
    pub(crate) limit_usage: Option<i64>,
    pub(crate) enable_customer_admin: bool,
}

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

/// The wait after an event's first failed try (docs/polar-api.md §14): 2 s, doubling after
/// each further failure.
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two tries: 20 minutes.
const MAX_RETRY: Duration = Duration::from_secs(20 * 60);
/// Tries of one event (the first and nine retries) before it is given up.
pub(crate) const MAX_ATTEMPTS: u32 = 10;
/// An endpoint whose this many most recent events each failed every try is disabled.
pub(crate) const DISABLE_AFTER: u32 = 10;
/// The longest value Polar's `metadata` takes (500 characters): the unit a
/// [`WebhookFault::Large`] event is padded in.
const METADATA_VALUE_MAX: usize = 500;

/// The wait before the next try of an event that failed `failed` tries (1 ..= 9), unscaled:
/// 2 s doubled for each failure after the first, capped at 20 minutes, times `jitter`
/// (Polar's 50–100 %: `jitter` is clamped to 0.5 ..= 1).
pub(crate) fn retry_delay(failed: u32, jitter: f64) -> Duration {
    let doublings = failed.saturating_sub(1).min(20);
    let full = FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_RETRY);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.5, 1.0)
    } else {
        1.0
    };
    full.mul_f64(jitter)
}

/// A jitter in 0.5 ..= 1 drawn from `random` (a fresh random id: the core's only source of
/// randomness, the OS's natively, the host's entropy on wasm32).
fn jitter_of(random: Uuid) -> f64 {
    let bytes = random.as_bytes();
    let word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    0.5 + 0.5 * (f64::from(word) / f64::from(u32::MAX))
}
/// How much of a receiver's answer a delivery keeps.
const RESPONSE_KEPT: usize = 2048;

/// A failure to inject into the next events' deliveries, for testing a receiver. It applies
/// to the events of the next change (every endpoint's), then clears itself.
///
/// As JSON (`POST /__emulator/webhooks/fault`): `{"kind":"duplicate"}`, `{"kind":"reorder"}`,
/// `{"kind":"delay","ms":1500}`, `{"kind":"stale_timestamp","seconds":600}`,
/// `{"kind":"bad_signature"}`, `{"kind":"large","bytes":100000}`.
///
/// Read through `WebhookFaultFields`, as [`crate::Fault`] is (an internally tagged enum's
/// derive is about 8 KB of the npm emulator's wasm).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    try_from = "WebhookFaultFields"
)]
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
    /// Make each event at least this many bytes long, as Polar's large events are (an order
    /// or subscription event carries the customer, the product with its description, prices,
    /// benefits and their metadata, the order's items, custom field data: well over 64 KiB
    /// can happen). The event stays the same event, correctly signed: its
    /// `data.customer.metadata` gains `pad_0000`, `pad_0001`, … entries of 500 characters
    /// (the longest metadata value Polar takes) until the body reaches `bytes`. A receiver
    /// must read and verify it whole.
    Large {
        /// The least size of the body, in bytes.
        bytes: usize,
    },
}

/// A [`WebhookFault`] as JSON, every kind's fields optional.
#[derive(Deserialize)]
struct WebhookFaultFields {
    kind: String,
    ms: Option<u64>,
    seconds: Option<u64>,
    bytes: Option<usize>,
}

impl TryFrom<WebhookFaultFields> for WebhookFault {
    type Error = String;

    fn try_from(f: WebhookFaultFields) -> Result<WebhookFault, String> {
        let need =
            |value: Option<u64>, name: &str| value.ok_or_else(|| format!("missing field `{name}`"));
        Ok(match f.kind.as_str() {
            "duplicate" => WebhookFault::Duplicate,
            "reorder" => WebhookFault::Reorder,
            "delay" => WebhookFault::Delay {
                ms: need(f.ms, "ms")?,
            },
            "stale_timestamp" => WebhookFault::StaleTimestamp {
                seconds: need(f.seconds, "seconds")?,
            },
            "bad_signature" => WebhookFault::BadSignature,
            "large" => WebhookFault::Large {
                bytes: f.bytes.ok_or_else(|| "missing field `bytes`".to_string())?,
            },
            other => {
                return Err(format!(
                    "unknown variant `{other}`, expected one of `duplicate`, `reorder`, \
                     `delay`, `stale_timestamp`, `bad_signature`, `large`"
                ))
            }
        })
    }
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
    /// Its most recent events that each failed every try, in a row (reset by a success or a
    /// re-enable): at [`DISABLE_AFTER`] the endpoint is disabled.
    failed_events: u32,
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
    /// A new billing period (the key unchanged, usage not reset): `benefit_grant.cycled`.
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

fn scaled(delay: Duration, scale: f64) -> Duration {
    Duration::try_from_secs_f64(delay.as_secs_f64() * scale).unwrap_or(Duration::MAX)
}

/// `data` with its `customer.metadata` padded so that an event of `len` bytes (rendered from
/// `data`) grows to at least `bytes` ([`WebhookFault::Large`]); `None`: already that long, or
/// no customer to pad.
fn padded(data: &J, len: usize, bytes: usize) -> Option<J> {
    if len >= bytes {
        return None;
    }
    // Each entry adds `"pad_0000":"…",` (14 bytes and the value; one less for the first in an
    // empty object): this many, and one to spare, reach `bytes`.
    let per_entry = METADATA_VALUE_MAX + 14;
    let entries = (bytes - len).div_ceil(per_entry).saturating_add(1);
    let J::Obj(items) = data else {
        return None;
    };
    let mut items = items.clone();
    let (_, customer) = items.iter_mut().find(|(k, _)| k == "customer")?;
    let J::Obj(fields) = customer else {
        return None;
    };
    let value = "x".repeat(METADATA_VALUE_MAX);
    let pad: Vec<(String, J)> = (0..entries)
        .map(|i| (format!("pad_{i:04}"), s(&value)))
        .collect();
    match fields.iter_mut().find(|(k, _)| k == "metadata") {
        Some((_, J::Obj(metadata))) => metadata.extend(pad),
        Some((_, other)) => *other = J::Obj(pad),
        None => fields.push(("metadata".to_string(), J::Obj(pad))),
    }
    Some(J::Obj(items))
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
            failed_events: 0,
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

    /// An endpoint enabled again starts over: no failed events counted.
    pub(crate) fn reset_failures(&mut self, id: Uuid) {
        if let Some(e) = self.endpoints.iter_mut().find(|e| e.id == id) {
            e.failed_events = 0;
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
        // An event no endpoint takes delivers nothing: the fault waits for one that does.
        if targets.is_empty() {
            return;
        }
        let fault = self.fault.take();
        let reorder_second = std::mem::take(&mut self.reorder_waiting);
        let large = match &fault {
            Some(WebhookFault::Large { bytes }) => Some(*bytes),
            _ => None,
        };
        for (endpoint_id, api_version) in targets {
            let render = |data: J| {
                obj(vec![
                    ("type", s(kind)),
                    ("timestamp", s(&fmt_ts(wall))),
                    ("api_version", s(&api_version)),
                    ("data", data),
                ])
                .to_json()
            };
            let Ok(mut payload) = render(data.clone()) else {
                continue;
            };
            if let Some(bytes) = large {
                if let Some(padded) = padded(data, payload.len(), bytes) {
                    let Ok(big) = render(padded) else {
                        continue;
                    };
                    payload = big;
                }
            }
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
                Some(WebhookFault::Large { .. }) | None => {}
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
        // The event: retried on the schedule, or given up after its last try.
        let mut gave_up = false;
        if let Some(event) = self.events.iter_mut().find(|e| e.id == flight.event_id) {
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
                gave_up = true;
            } else {
                event.succeeded = Some(false);
                let delay = retry_delay(event.attempts, jitter_of(delivery_id));
                event.next_at = monotonic.saturating_add(scaled(delay, scale));
            }
        }
        // The endpoint: a success clears its run of failed events; an event that failed every
        // try lengthens it, and the tenth in a row disables the endpoint.
        if let Some(endpoint) = self
            .endpoints
            .iter_mut()
            .find(|e| e.id == flight.endpoint_id)
        {
            endpoint.in_flight = false;
            if succeeded {
                endpoint.failed_events = 0;
            } else if gave_up {
                endpoint.failed_events = endpoint.failed_events.saturating_add(1);
                if endpoint.failed_events >= DISABLE_AFTER && endpoint.enabled {
                    endpoint.enabled = false;
                    endpoint.modified_at = Some(wall);
                }
            }
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
        let owned = self.owned_endpoints(organization_id);
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

    /// The ids of the organization's endpoints.
    fn owned_endpoints(&self, organization_id: Uuid) -> Vec<Uuid> {
        self.endpoints
            .iter()
            .filter(|e| e.organization_id == organization_id)
            .map(|e| e.id)
            .collect()
    }

    /// The deliveries of the organization's endpoints, newest first, filtered.
    pub(crate) fn deliveries(
        &self,
        organization_id: Uuid,
        endpoint_id: Option<Uuid>,
        succeeded: Option<bool>,
        event_type: Option<&str>,
    ) -> Vec<J> {
        let owned = self.owned_endpoints(organization_id);
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
    let mut items = grant_items(
        g,
        GrantParts {
            id: derived_id("benefit_grant", g.key_id),
            benefit_id: g.benefit_id,
            created_at: g.key_created_at,
            modified_at: now,
            granted_at: (!revoked).then_some(g.key_created_at),
            revoked_at: revoked.then_some(now),
            benefit: license_benefit(g),
            properties: key_properties(g, &g.display_key),
        },
    );
    if let GrantChange::Updated {
        previous_display_key,
    } = change
    {
        items.push((
            "previous_properties",
            key_properties(g, previous_display_key),
        ));
    }
    obj(items)
}

/// A license-key grant's `properties`.
fn key_properties(g: &GrantView, display_key: &str) -> J {
    obj(vec![
        ("license_key_id", s(&g.key_id.to_string())),
        ("display_key", s(display_key)),
    ])
}

/// The license-key benefit of a key's grant (`BenefitLicenseKeys`).
pub(crate) fn license_benefit(g: &GrantView) -> J {
    let b = &g.benefit;
    // `BenefitLicenseKeyActivationProperties`: `{limit, enable_customer_admin}`, or null when
    // the benefit sets no activation limit.
    let activations = match b.limit_activations {
        Some(limit) if limit != 0 => obj(vec![
            ("limit", J::Int(i128::from(limit))),
            ("enable_customer_admin", J::Bool(b.enable_customer_admin)),
        ]),
        _ => J::Null,
    };
    obj(vec![
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
                ("prefix", opt_s(b.prefix.as_deref())),
                ("expires", J::Null),
                ("activations", activations),
                ("limit_usage", opt_i(b.limit_usage)),
            ]),
        ),
        ("visibility_configurable", J::Bool(true)),
    ])
}

/// What differs between the grants of one purchase: its own id, benefit, times and properties.
pub(crate) struct GrantParts {
    pub(crate) id: Uuid,
    pub(crate) benefit_id: Uuid,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) modified_at: OffsetDateTime,
    pub(crate) granted_at: Option<OffsetDateTime>,
    pub(crate) revoked_at: Option<OffsetDateTime>,
    /// The `Benefit` object.
    pub(crate) benefit: J,
    pub(crate) properties: J,
}

/// A `BenefitGrant`'s fields (docs/polar-api.md §16.6), the customer, member, subscription and
/// order those of the key `g` whose purchase made the grant.
pub(crate) fn grant_items(g: &GrantView, parts: GrantParts) -> Vec<(&'static str, J)> {
    let customer_id = g.customer_id.to_string();
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
    let ts = |t: Option<OffsetDateTime>| t.map_or(J::Null, |t| s(&fmt_ts(t)));
    vec![
        ("created_at", s(&fmt_ts(parts.created_at))),
        ("modified_at", s(&fmt_ts(parts.modified_at))),
        ("id", s(&parts.id.to_string())),
        ("granted_at", ts(parts.granted_at)),
        ("is_granted", J::Bool(parts.granted_at.is_some())),
        ("revoked_at", ts(parts.revoked_at)),
        ("is_revoked", J::Bool(parts.revoked_at.is_some())),
        ("subscription_id", opt_s(g.subscription_id.as_deref())),
        ("order_id", opt_s(g.order_id.as_deref())),
        ("customer_id", s(&customer_id)),
        (
            "member_id",
            opt_s(g.member.as_ref().map(|(id, _, _)| id.as_str())),
        ),
        ("benefit_id", s(&parts.benefit_id.to_string())),
        ("error", J::Null),
        ("customer", webhook_customer(g)),
        ("member", member),
        ("benefit", parts.benefit),
        ("properties", parts.properties),
    ]
}

/// The key's own `customer`; a webhook's `CustomerIndividual.email` is never null (the SDK's
/// type), so a seed customer without one gets a placeholder here.
fn webhook_customer(g: &GrantView) -> J {
    let customer_id = g.customer_id.to_string();
    match &g.customer {
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
    }
}

/// The `granted_benefits` entry of a key's license-key grant (`CustomerStateBenefitGrant`).
pub(crate) fn key_state_grant(g: &GrantView, now: OffsetDateTime) -> J {
    obj(vec![
        ("id", s(&derived_id("benefit_grant", g.key_id).to_string())),
        ("created_at", s(&fmt_ts(g.key_created_at))),
        ("modified_at", s(&fmt_ts(now))),
        ("granted_at", s(&fmt_ts(g.key_created_at))),
        ("benefit_id", s(&g.benefit_id.to_string())),
        ("benefit_type", s("license_keys")),
        ("benefit_metadata", J::Obj(Vec::new())),
        ("properties", key_properties(g, &g.display_key)),
    ])
}

/// A `CustomerState` (docs/polar-api.md §16.4): the customer of `first` (one of its keys) as
/// its keys show it, then its active subscriptions, granted benefits and active meters.
pub(crate) fn render_customer_state(
    first: &GrantView,
    subscriptions: Vec<J>,
    granted: Vec<J>,
    meters: Vec<J>,
) -> Option<J> {
    let mut items: Vec<(String, J)> = match webhook_customer(first) {
        J::Obj(items) => items,
        _ => return None,
    };
    items.push(("active_subscriptions".into(), J::Arr(subscriptions)));
    items.push(("granted_benefits".into(), J::Arr(granted)));
    items.push(("active_meters".into(), J::Arr(meters)));
    Some(J::Obj(items))
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
    fn polars_backoff_doubles_from_2_s_with_jitter_and_a_20_minute_cap() {
        // Without jitter (1): 2 s, 4 s, … 512 s after failures 1 ..= 9 (ten tries in all).
        let full: Vec<u64> = (1..MAX_ATTEMPTS)
            .map(|n| retry_delay(n, 1.0).as_secs())
            .collect();
        assert_eq!(full, [2, 4, 8, 16, 32, 64, 128, 256, 512]);
        // The cap: never more than 20 minutes, however many failures.
        assert_eq!(retry_delay(10, 1.0), Duration::from_secs(1024));
        assert_eq!(retry_delay(11, 1.0), Duration::from_secs(1200));
        assert_eq!(retry_delay(40, 1.0), Duration::from_secs(1200));
        // Jitter: 50 % to 100 % of the wait, never outside.
        assert_eq!(retry_delay(3, 0.5), Duration::from_secs(4));
        assert_eq!(retry_delay(3, 0.1), Duration::from_secs(4));
        assert_eq!(retry_delay(3, 7.0), Duration::from_secs(8));
        assert_eq!(retry_delay(3, f64::NAN), Duration::from_secs(8));
        // The jitter drawn from random ids covers the range, not one point of it.
        let draws: Vec<f64> = (0..200).map(|_| jitter_of(Uuid::new_v4())).collect();
        assert!(draws.iter().all(|j| (0.5..=1.0).contains(j)), "{draws:?}");
        assert!(draws.iter().any(|j| *j < 0.6) && draws.iter().any(|j| *j > 0.9));
    }

    #[test]
    fn a_large_event_is_padded_past_its_size_in_the_customers_metadata() {
        let data = obj(vec![
            ("id", s("g")),
            (
                "customer",
                obj(vec![
                    ("id", s("c")),
                    ("metadata", obj(vec![("plan", s("pro"))])),
                ]),
            ),
        ]);
        let len = data.to_json().map(|t| t.len()).unwrap_or(0);
        assert!(padded(&data, len, len).is_none(), "already that long");
        let big = padded(&data, len, 100_000).expect("padded");
        let text = big.to_json().expect("json");
        assert!(text.len() >= 100_000, "{}", text.len());
        assert!(text.len() < 100_000 + 2 * 514, "{}", text.len());
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let metadata = v["customer"]["metadata"].as_object().expect("metadata");
        assert_eq!(metadata["plan"], "pro", "what was there stays");
        assert!(metadata
            .iter()
            .filter(|(k, _)| k.starts_with("pad_"))
            .all(|(_, v)| v.as_str().map(str::len) == Some(METADATA_VALUE_MAX)));
    }

    #[test]
    fn legacy_key_is_the_whole_secret() {
        assert_eq!(signing_key("whsec_abc", false), b"whsec_abc".to_vec());
        // Not base64 after the prefix: the bytes of the whole secret.
        assert_eq!(signing_key("whsec_!!", true), b"whsec_!!".to_vec());
    }
}
