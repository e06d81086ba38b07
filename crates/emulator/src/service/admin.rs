//! The control routes under `/__emulator/…` (docs/emulator.md): faults, clock, rate limit,
//! keys, webhooks, API versions and the state a test sets or reads. Polar has no such routes;
//! they are the emulator's own, kept apart from the routes that play Polar.

/// `PUT`/`POST` of a fault (`what`): the body's JSON sets `slot`, an empty body or `null`
/// clears it (204); anything else is a 400 naming `what`.
/// A control route's body read as `T`, or the 400 saying what was `invalid`.
pub(super) fn admin_body<T: serde::de::DeserializeOwned>(
    raw: &[u8],
    what: &str,
) -> Result<T, Resp> {
    serde_json::from_slice(raw).map_err(|e| Resp::detail(400, &format!("invalid {what}: {e}")))
}

/// A control route's change answered: what it changed, 404 when nothing has that name, 400
/// with the reason it was refused.
fn changed<T>(result: Result<Option<T>, String>, answer: impl FnOnce(T) -> Resp) -> Resp {
    match result {
        Ok(Some(changed)) => answer(changed),
        Ok(None) => Resp::detail(404, "Not Found"),
        Err(e) => Resp::detail(400, &e),
    }
}

fn set_from_body<T: serde::de::DeserializeOwned>(
    slot: &mut Option<T>,
    raw: &[u8],
    what: &str,
) -> Resp {
    let text = String::from_utf8_lossy(raw);
    let parsed = if text.trim().is_empty() {
        Ok(None)
    } else {
        serde_json::from_str::<Option<T>>(&text)
    };
    match parsed {
        Ok(value) => {
            *slot = value;
            Resp::new(204)
        }
        Err(e) => Resp::detail(400, &format!("invalid {what}: {e}")),
    }
}

#[cfg(feature = "billing")]
use super::lifecycle;
use super::{
    post_admin, Core, Exchange, Framing, Pending, Resp, Step, Time, ALLOW_METHODS, MAX_BODY,
};
use crate::json::J;
use crate::webhooks::{render_endpoint, WebhookFault};
use crate::{Fault, KeyUpdate, SeedKey};

impl Core {
    pub(super) fn admin(&mut self, ex: &mut Exchange, now: Time) -> Step {
        if ex.is_preflight() {
            let mut r = Resp::text(200, "OK");
            r.set("access-control-allow-origin", "*");
            r.set("access-control-allow-methods", ALLOW_METHODS);
            let requested = ex
                .head
                .get("access-control-request-headers")
                .unwrap_or("*")
                .to_string();
            r.set("access-control-allow-headers", &requested);
            r.set("access-control-max-age", "600");
            return Step::Done(r);
        }
        let step = self.admin_route(ex, now);
        step.map(|r| post_admin(ex, r))
    }

    /// An admin route that reads a body: its framing checked first.
    fn admin_body(ex: &Exchange, pending: Pending) -> Step {
        match ex.framing {
            Framing::Chunked => Step::Done(Resp::error(
                411,
                "LengthRequired",
                "A Content-Length header is required.",
            )),
            Framing::Length(n) if n > MAX_BODY => Step::Done(Resp::error(
                413,
                "RequestBodyTooLarge",
                "Request body exceeded the maximum allowed size of 10485760 bytes.",
            )),
            _ => Step::Body(pending),
        }
    }

    pub(super) fn admin_with_body(&mut self, pending: Pending, raw: &[u8], now: Time) -> Resp {
        self.admin_change(pending, raw, now)
            .unwrap_or_else(|refused| refused)
    }

    /// A control route's change, its body read as JSON (`Err`: the 400 refusing the body).
    fn admin_change(&mut self, pending: Pending, raw: &[u8], now: Time) -> Result<Resp, Resp> {
        Ok(match pending {
            Pending::SetFault => set_from_body::<Fault>(&mut self.fault, raw, "fault"),
            Pending::SetClock => {
                #[derive(serde::Deserialize)]
                struct Clock {
                    offset_seconds: i64,
                }
                let clock: Clock = admin_body(raw, "clock")?;
                self.set_clock_offset(clock.offset_seconds);
                Resp::new(204)
            }
            Pending::SetApiVersions => self.rotation_post(raw)?,
            Pending::SetRateLimit => {
                #[derive(serde::Deserialize)]
                struct RateLimit {
                    enabled: bool,
                }
                let limit: RateLimit = admin_body(raw, "rate limit")?;
                self.set_rate_limit(limit.enabled);
                Resp::new(204)
            }
            Pending::AddKey => {
                let key: SeedKey = admin_body(raw, "key")?;
                match self.add_key(&key, now) {
                    Ok(()) => match self.store.key_json(&key.key) {
                        Some(j) => Resp::json(201, &j),
                        None => Resp::internal_error(),
                    },
                    Err(e) => Resp::detail(400, &e),
                }
            }
            Pending::UpdateKey(key) => {
                let update: KeyUpdate = admin_body(raw, "update")?;
                changed(self.update_key_json(&key, &update, now), |j| {
                    Resp::json(200, &j)
                })
            }
            Pending::SetWebhookFault => {
                set_from_body::<WebhookFault>(&mut self.webhooks.fault, raw, "webhook fault")
            }
            Pending::EndpointSignature(id) => {
                #[derive(serde::Deserialize)]
                struct Signature {
                    uses_standard_webhook_signature: bool,
                }
                let change: Signature = admin_body(raw, "change")?;
                match self.webhooks.endpoints.iter_mut().find(|e| e.id == id) {
                    Some(e) => {
                        e.standard_signature = change.uses_standard_webhook_signature;
                        Resp::json(200, &render_endpoint(e))
                    }
                    None => Resp::detail(404, "Not Found"),
                }
            }
            Pending::BenefitMetadata(id) => {
                #[derive(serde::Deserialize)]
                struct Change {
                    metadata: serde_json::Map<String, serde_json::Value>,
                }
                let change: Change = admin_body(raw, "change")?;
                changed(
                    self.set_benefit_metadata(&id, &change.metadata, now),
                    |benefit| Resp::json_text(200, &benefit.to_string()),
                )
            }
            Pending::FlagGrant { key, benefit_id } => {
                #[derive(serde::Deserialize)]
                struct Change {
                    is_granted: bool,
                }
                let change: Change = admin_body(raw, "change")?;
                changed(
                    self.set_flag_grant(&key, &benefit_id, change.is_granted, now),
                    |grant| Resp::json_text(200, &grant.to_string()),
                )
            }
            // Never pending here.
            Pending::Checkout(_) => self.checkout_settings(raw),
            Pending::Endpoint { .. }
            | Pending::Webhook { .. }
            | Pending::Session(_)
            | Pending::KeyPatch { .. } => Resp::internal_error(),
            #[cfg(feature = "billing")]
            Pending::Ingest(_) => Resp::internal_error(),
            #[cfg(feature = "billing")]
            Pending::Subscription(key) => {
                let change: lifecycle::SubscriptionChange = admin_body(raw, "change")?;
                changed(self.change_subscription(&key, &change, now), |j| {
                    Resp::json(200, &j)
                })
            }
            #[cfg(feature = "billing")]
            Pending::Refund(key) => {
                let change: lifecycle::RefundChange = admin_body(raw, "refund")?;
                match self.refund(&key, &change, now) {
                    Ok(Some(j)) => Resp::json(200, &j),
                    Ok(None) => Resp::detail(404, "Not Found"),
                    Err(lifecycle::RefundRefusal::Polar(error, detail)) => {
                        Resp::error(400, error, detail)
                    }
                    Err(lifecycle::RefundRefusal::Control(e)) => Resp::detail(400, &e),
                }
            }
        })
    }

    fn admin_route(&mut self, ex: &mut Exchange, now: Time) -> Step {
        let sub = ex
            .decoded
            .strip_prefix("/__emulator")
            .unwrap_or("")
            .to_string();
        let method = ex.method().to_string();
        let get = method == "GET" || method == "HEAD";
        let r = match sub.as_str() {
            "/health" if get => Resp::json_text(200, "{\"ok\":true}"),
            "/requests" if get => Resp::json_text(200, &format!("{{\"count\":{}}}", self.requests)),
            "/streams" if get => {
                Resp::json_text(200, &format!("{{\"open\":{}}}", self.open_streams))
            }
            "/requests/reset" if method == "POST" => {
                self.requests = 0;
                self.rotation.forget();
                Resp::new(204)
            }
            "/api-versions" | "/requests/seen" if get => match self.rotation_get(&sub) {
                Some(r) => r,
                None => Resp::internal_error(),
            },
            "/api-versions" if method == "POST" => {
                return Core::admin_body(ex, Pending::SetApiVersions)
            }
            "/fault" if get => match serde_json::to_string(&self.fault) {
                Ok(text) => Resp::json_text(200, &text),
                Err(_) => Resp::internal_error(),
            },
            "/fault" if method == "POST" => return Core::admin_body(ex, Pending::SetFault),
            "/clock" if get => Resp::json_text(
                200,
                &format!("{{\"offset_seconds\":{}}}", self.clock_offset),
            ),
            "/clock" if method == "POST" => return Core::admin_body(ex, Pending::SetClock),
            "/rate-limit" if get => {
                Resp::json_text(200, &format!("{{\"enabled\":{}}}", self.options.rate_limit))
            }
            "/rate-limit" if method == "POST" => {
                return Core::admin_body(ex, Pending::SetRateLimit)
            }
            "/webhooks/fault" if get => match serde_json::to_string(&self.webhooks.fault) {
                Ok(text) => Resp::json_text(200, &text),
                Err(_) => Resp::internal_error(),
            },
            "/webhooks/fault" if method == "POST" => {
                return Core::admin_body(ex, Pending::SetWebhookFault)
            }
            "/keys" if method == "POST" => return Core::admin_body(ex, Pending::AddKey),
            "/customer-session/codes" if get => self.codes_resp(now),
            "/checkouts" if get => self.checkouts_listed(),
            "/checkouts" if method == "POST" => {
                return Core::admin_body(
                    ex,
                    Pending::Checkout(super::checkouts::CheckoutOp::Settings),
                )
            }
            _ => {
                if let Some(id) = sub.strip_prefix("/benefits/") {
                    return match method.as_str() {
                        "GET" | "HEAD" => Step::Done(match self.benefit(id) {
                            Some(b) => Resp::json_text(200, &b.to_string()),
                            None => Resp::detail(404, "Not Found"),
                        }),
                        "PATCH" => Core::admin_body(ex, Pending::BenefitMetadata(id.to_string())),
                        _ => Step::Done(Resp::detail(405, "Method Not Allowed")),
                    };
                }
                if let Some(id) = sub.strip_prefix("/webhooks/endpoints/") {
                    if method != "PATCH" {
                        return Step::Done(Resp::detail(405, "Method Not Allowed"));
                    }
                    return match uuid::Uuid::parse_str(id) {
                        Ok(id) => Core::admin_body(ex, Pending::EndpointSignature(id)),
                        Err(_) => Step::Done(Resp::detail(404, "Not Found")),
                    };
                }
                let Some(rest) = sub.strip_prefix("/keys/") else {
                    return Step::Done(
                        if matches!(
                            sub.as_str(),
                            "/health"
                                | "/requests"
                                | "/requests/reset"
                                | "/requests/seen"
                                | "/api-versions"
                                | "/streams"
                                | "/fault"
                                | "/keys"
                                | "/webhooks/fault"
                                | "/customer-session/codes"
                        ) {
                            Resp::detail(405, "Method Not Allowed")
                        } else {
                            Resp::detail(404, "Not Found")
                        },
                    );
                };
                #[cfg(feature = "billing")]
                if let Some(key) = rest.strip_suffix("/subscription") {
                    if method != "POST" {
                        return Step::Done(Resp::detail(405, "Method Not Allowed"));
                    }
                    return Core::admin_body(ex, Pending::Subscription(key.to_string()));
                }
                #[cfg(feature = "billing")]
                if let Some(key) = rest.strip_suffix("/refund") {
                    if method != "POST" {
                        return Step::Done(Resp::detail(405, "Method Not Allowed"));
                    }
                    return Core::admin_body(ex, Pending::Refund(key.to_string()));
                }
                #[cfg(feature = "billing")]
                if let Some(key) = rest.strip_suffix("/seat/revoke") {
                    if method != "POST" {
                        return Step::Done(Resp::detail(405, "Method Not Allowed"));
                    }
                    return Step::Done(match self.revoke_seat(key, now) {
                        Ok(Some(j)) => Resp::json(200, &j),
                        Ok(None) => Resp::detail(404, "Not Found"),
                        Err(e) => Resp::detail(400, &e),
                    });
                }
                // A flag grant of the key's purchase, PATCH only.
                if let Some((key, benefit_id)) = rest.rsplit_once("/benefits/") {
                    if method != "PATCH" {
                        return Step::Done(Resp::detail(405, "Method Not Allowed"));
                    }
                    let pending = Pending::FlagGrant {
                        key: key.to_string(),
                        benefit_id: benefit_id.to_string(),
                    };
                    return Core::admin_body(ex, pending);
                }
                // The two changes of a key, POST only: `/cycle` (a new cycle of its benefit)
                // and `/rotate` (a new key in its place).
                let change = rest
                    .strip_suffix("/cycle")
                    .map(|key| (key, true))
                    .or_else(|| rest.strip_suffix("/rotate").map(|key| (key, false)));
                if let Some((key, cycle)) = change {
                    if method != "POST" {
                        return Step::Done(Resp::detail(405, "Method Not Allowed"));
                    }
                    let changed = if cycle {
                        self.cycle_key(key, now).then(|| self.store.key_json(key))
                    } else {
                        let new = self.rotate_key(key, now);
                        new.map(|new| Some(J::Obj(vec![("key".to_string(), J::Str(new))])))
                    };
                    return Step::Done(match changed {
                        Some(Some(j)) => Resp::json(200, &j),
                        Some(None) => Resp::internal_error(),
                        None => Resp::detail(404, "Not Found"),
                    });
                }
                if let Some(key) = rest.strip_suffix("/activations") {
                    if !get {
                        return Step::Done(Resp::detail(405, "Method Not Allowed"));
                    }
                    if self.store.key_json(key).is_none() {
                        return Step::Done(Resp::detail(404, "Not Found"));
                    }
                    return Step::Done(Resp::json(200, &J::Arr(self.store.activations_json(key))));
                }
                match method.as_str() {
                    "GET" | "HEAD" => match self.store.key_json(rest) {
                        Some(j) => Resp::json(200, &j),
                        None => Resp::detail(404, "Not Found"),
                    },
                    "PATCH" => return Core::admin_body(ex, Pending::UpdateKey(rest.to_string())),
                    _ => Resp::detail(405, "Method Not Allowed"),
                }
            }
        };
        Step::Done(r)
    }
}
