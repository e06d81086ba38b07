//! The checkout route's part (issue #80, [`crate::types::CHECKOUT_ROUTE`]): an app asks the
//! seller's relay for a checkout, and the relay makes it with the seller's token (Polar's
//! `POST /v1/checkouts/`, which needs `checkouts:write`: a token an app never holds), then
//! answers the checkout's `url` and `client_secret`, which the core's purchase machine follows
//! as it follows a checkout opened from a link (`polar_license::purchase`).
//!
//! What a client cannot do through it: choose a product the seller did not allow
//! ([`CheckoutOptions::products`]; none allowed, the route is off and answers 404 as an unknown
//! path does), set a price, an amount, a discount or anything else of Polar's checkout (the
//! body's members are `product_id`, `metadata`, `customer_email` and `success_url`, nothing
//! else), send the buyer anywhere after paying but to an origin the seller allows
//! ([`CheckoutOptions::success_origins`]), or send metadata past Polar's limits (the core's
//! own checks, `polar_license::metadata::check_metadata`) or a body past
//! [`MAX_CHECKOUT_BODY`]. One request costs at most one call of Polar's, within the per-IP
//! limit, the breaker and, with a store, the token's budget; nothing of it is kept (the
//! checkout is Polar's, and expires there after a day).

use polar_license::metadata::{check_metadata, check_uuid_v4, Metadata};
use polar_license::proto::{HttpRequest, Operation};
use polar_license::Error;

use super::{Begin, Door, Part, Refused};
use crate::flow::{Moment, Upstream};
use crate::pending::{Pending, Routed};
use crate::relay::Relay;
use crate::route::{Checkout, Route};
use crate::types::{add_cors, private, Finished, RelayRequest, RelayResponse};

use crate::checkouts::CheckoutOptions;

/// The most bytes of a checkout request's body (4 KiB, under the relay's own cap): a product
/// id, an e-mail, a success URL and a few metadata entries fit many times over; the metadata
/// an app sends is small (an app version, a platform, a campaign), never a document.
pub const MAX_CHECKOUT_BODY: usize = 4 * 1024;

/// The longest success URL taken.
const MAX_URL_BYTES: usize = 2_048;

/// The longest e-mail address taken (RFC 5321's path limit).
const MAX_EMAIL_BYTES: usize = 254;

impl Relay {
    /// The relay with the seller's checkout settings (issue #80: the products an app may buy
    /// through the relay, the success URLs' origins); refused when
    /// [`CheckoutOptions::problem`] finds one. No product: the checkout route stays off.
    pub fn with_checkouts(mut self, options: CheckoutOptions) -> Result<Relay, Error> {
        if let Some((field, why)) = options.problem() {
            return Err(Error::invalid(field, why));
        }
        let products = options
            .products
            .iter()
            .map(|p| check_uuid_v4("checkout_products", p))
            .collect::<Result<Vec<_>, _>>()?;
        self.checkouts = CheckoutOptions {
            products,
            success_origins: options.success_origins,
        };
        Ok(self)
    }
}

/// A body's refusal: 422 `InvalidCheckoutRequest` saying why.
fn refuse(detail: &str) -> RelayResponse {
    private(RelayResponse::error(422, "InvalidCheckoutRequest", detail))
}

impl Checkout {
    /// The route's checks in the relay's order (taken only when the seller allows products):
    /// the method (405), the body's size (413), the body (422 `InvalidCheckoutRequest`), the
    /// product (403 `CheckoutProductNotAllowed`), the success URL's origin (403
    /// `CheckoutOriginNotAllowed`).
    pub(super) fn parse(req: &RelayRequest, door: &Door<'_>) -> Result<Checkout, Refused> {
        let refused = super::refusal("checkout");
        let Some(options) = door.checkouts else {
            return Err(refused(RelayResponse::detail(404, "Not Found")));
        };
        let max = door.max_body.min(MAX_CHECKOUT_BODY);
        let ask = super::posted(req, max, &refused, read_ask)?;
        if !options.products.contains(&ask.product_id) {
            log::info!("relay: checkout 403 (a product the seller does not allow)");
            return Err(refused(private(RelayResponse::error(
                403,
                "CheckoutProductNotAllowed",
                "The seller does not sell this product through the relay.",
            ))));
        }
        if let Some(url) = &ask.success_url {
            if !options.success_origins.iter().any(|o| on_origin(url, o)) {
                log::info!("relay: checkout 403 (a success URL on an origin not allowed)");
                return Err(refused(private(RelayResponse::error(
                    403,
                    "CheckoutOriginNotAllowed",
                    "The success URL is not on an origin the seller allows.",
                ))));
            }
        }
        Ok(Checkout {
            polar_body: ask.polar_body(),
        })
    }
}

/// A checkout request, read.
struct Ask {
    product_id: String,
    metadata: Metadata,
    customer_email: Option<String>,
    success_url: Option<String>,
}

impl Ask {
    /// The body of Polar's `POST /v1/checkouts/`: the one product, the metadata, the e-mail and
    /// the success URL as read, nothing else.
    fn polar_body(&self) -> Vec<u8> {
        let mut body = serde_json::Map::new();
        body.insert("products".into(), serde_json::json!([self.product_id]));
        if let Ok(metadata) = serde_json::to_value(&self.metadata) {
            body.insert("metadata".into(), metadata);
        }
        if let Some(email) = &self.customer_email {
            body.insert("customer_email".into(), email.as_str().into());
        }
        if let Some(url) = &self.success_url {
            body.insert("success_url".into(), url.as_str().into());
        }
        serde_json::Value::Object(body).to_string().into_bytes()
    }
}

/// The body read (JSON: `product_id`, and optionally `metadata`, `customer_email` and
/// `success_url`; nothing else), or its 422.
fn read_ask(body: &[u8]) -> Result<Ask, RelayResponse> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| refuse("the body is not JSON"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| refuse("the body is not a JSON object"))?;
    const FIELDS: [&str; 4] = ["product_id", "metadata", "customer_email", "success_url"];
    if obj.keys().any(|k| !FIELDS.contains(&k.as_str())) {
        // A price, an amount, a discount, another product: nothing the relay does not know
        // reaches Polar.
        return Err(refuse(
            "the body has a field the relay does not take (product_id, metadata, customer_email and success_url only)",
        ));
    }
    let product_id = obj
        .get("product_id")
        .and_then(|v| v.as_str())
        .and_then(|id| check_uuid_v4("product_id", id).ok())
        .ok_or_else(|| refuse("product_id must be a product's id (a UUID)"))?;
    let metadata: Metadata = match obj.get("metadata") {
        None | Some(serde_json::Value::Null) => Metadata::new(),
        Some(m) => serde_json::from_value(m.clone()).map_err(|_| {
            refuse("metadata must be an object of strings, integers, floats or booleans")
        })?,
    };
    check_metadata("metadata", &metadata).map_err(|e| refuse(&e.to_string()))?;
    let text = |name: &str| match obj.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(refuse(&[name, " must be a string"].concat())),
    };
    let customer_email = text("customer_email")?;
    if customer_email.as_deref().is_some_and(|e| !is_email(e)) {
        return Err(refuse("customer_email must be an e-mail address"));
    }
    let success_url = text("success_url")?;
    if success_url
        .as_deref()
        .is_some_and(|u| u.len() > MAX_URL_BYTES || u.bytes().any(|b| b <= b' ' || b == 0x7f))
    {
        return Err(refuse(
            "success_url must be a URL of at most 2048 characters, with no spaces",
        ));
    }
    Ok(Ask {
        product_id,
        metadata,
        customer_email,
        success_url,
    })
}

/// Whether `email` looks like an address (Polar checks it again): one `@` between a local part
/// and a domain with a dot, no spaces or control characters, at most [`MAX_EMAIL_BYTES`].
fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= MAX_EMAIL_BYTES
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `url` is on `origin` (the origin itself, or followed by a path, a query or a
/// fragment): `https://app.example.com.evil.test/` and `https://app.example.com@evil.test/`
/// are not on `https://app.example.com`.
fn on_origin(url: &str, origin: &str) -> bool {
    url.strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
}

impl Part for Checkout {
    // Nothing of the store (the default `wants`): a checkout is Polar's alone.

    /// One call of Polar's: through the breaker and, with a store, the token's budget, never
    /// past half its shared part (`Use::Checkout`: a flood of checkouts leaves licensing its
    /// room); a refusal of either answers at once: 502, 429 with `Retry-After`.
    fn begin(&self, b: &Begin<'_>) -> Routed {
        let (relay, req, now) = (b.relay, b.req, b.at.now);
        let Some(ticket) = relay.breaker.allow(now) else {
            log::info!("relay: checkout 502 (the breaker is open: Polar not asked)");
            return Routed::Answer(RelayResponse::unreached("the relay could not reach Polar"));
        };
        if let Some(s) = &relay.store {
            if let Err(secs) = s.take(now, crate::store::Use::Checkout) {
                relay.breaker.abandon(Some(ticket), now);
                log::info!("relay: checkout 429 (the token's budget is spent)");
                return Routed::Answer(RelayResponse::rate_limited(secs));
            }
        }
        let reads = relay.reads();
        let mut headers = crate::reads::read_headers(&reads);
        headers.push(("content-type", "application/json".to_string()));
        let request = HttpRequest {
            // For a transport's log only: the call is no license operation.
            operation: Operation::Validate,
            url: format!("{}/v1/checkouts/", relay.base_url().trim_end_matches('/')),
            headers,
            body: self.polar_body.clone(),
        };
        let client = crate::roster::client_group(&relay.client_of(req));
        let route = Route::Checkout(self.clone());
        Routed::Ask(Box::new(Pending::unkeyed(request, client, ticket, route)))
    }

    /// Polar's answer made the client's: a made checkout's `id`, `url`, `client_secret` and
    /// `expires_at` (201), nothing else of it; Polar's refusal of the body (a product it does
    /// not know, an e-mail it does not take) a 422; its 429 a 429; a token that may not make
    /// checkouts, or anything else, a 502 (logged: the seller's set-up, not the client's).
    fn finish(&self, relay: &Relay, _: &Pending, upstream: Upstream, at: Moment) -> Finished {
        // Polar's 429 blocks the token's every call for as long as it says, as a license
        // call's does: the others would meet it too.
        if let Some(s) = &relay.store {
            s.learn_answer(at.now, &upstream);
        }
        let mut response = answer(upstream);
        add_cors(&mut response);
        Finished {
            response,
            unsigned: None,
        }
    }

    /// Never: there is no stored answer to give.
    fn may_be_stale(&self) -> bool {
        false
    }
}

/// The client's answer to Polar's `upstream`.
fn answer(upstream: Upstream) -> RelayResponse {
    let a = match upstream {
        Ok(a) => a,
        Err(e) => {
            log::warn!("relay: checkout 502 (Polar not reached: {e})");
            return RelayResponse::unreached("the relay could not reach Polar");
        }
    };
    match a.status {
        200 | 201 => {
            let made: Option<serde_json::Value> = serde_json::from_slice(&a.body).ok();
            let text = |name: &str| {
                made.as_ref()
                    .and_then(|m| m.get(name))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            let (Some(url), Some(secret)) = (text("url"), text("client_secret")) else {
                log::warn!("relay: checkout 502 (Polar's answer names no url or client secret)");
                return RelayResponse::unreached("Polar's answer did not read");
            };
            let body = serde_json::json!({
                "id": text("id"),
                "url": url,
                "client_secret": secret,
                "expires_at": text("expires_at"),
            });
            private(RelayResponse::json(201, body.to_string().into_bytes()))
        }
        422 => {
            log::info!("relay: checkout 422 (Polar refused the checkout's body)");
            refuse("Polar refused the checkout (is the product archived, or the e-mail refused?)")
        }
        429 => RelayResponse::rate_limited(crate::stored::retry_after(&a).unwrap_or(60)),
        status => {
            log::warn!(
                "relay: checkout 502 (Polar answered {status}: does the token have checkouts:write?)"
            );
            RelayResponse::unreached("Polar refused the relay's checkout")
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const PRODUCT: &str = "0b1e7a52-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn a_success_url_is_on_its_origin_only() {
        let o = "https://app.example.com";
        assert!(on_origin("https://app.example.com/thanks?x=1", o));
        assert!(on_origin("https://app.example.com", o));
        assert!(!on_origin("https://app.example.com.evil.test/", o));
        assert!(!on_origin("https://app.example.com@evil.test/", o));
        assert!(!on_origin("https://app.example.com:8443/", o));
        assert!(!on_origin("http://app.example.com/", o));
    }

    #[test]
    fn the_body_names_one_product_and_nothing_of_the_price() {
        let ok = format!(
            r#"{{"product_id":"{PRODUCT}","metadata":{{"app_version":"1.2.0","seats":3}},"customer_email":"jane@example.com"}}"#
        );
        let ask = read_ask(ok.as_bytes()).map_err(|r| r.status).expect("read");
        let polar: serde_json::Value = serde_json::from_slice(&ask.polar_body()).expect("json");
        assert_eq!(polar["products"], serde_json::json!([PRODUCT]));
        assert_eq!(polar["metadata"]["seats"], 3);
        assert_eq!(polar["customer_email"], "jane@example.com");
        assert_eq!(polar.as_object().map(serde_json::Map::len), Some(3));
        for bad in [
            format!(r#"{{"product_id":"{PRODUCT}","amount":0}}"#),
            format!(r#"{{"product_id":"{PRODUCT}","discount_id":"{PRODUCT}"}}"#),
            format!(r#"{{"products":["{PRODUCT}"]}}"#),
            format!(r#"{{"product_id":"{PRODUCT}","metadata":{{"n":{{"deep":1}}}}}}"#),
            format!(
                r#"{{"product_id":"{PRODUCT}","metadata":{{"{}":1}}}}"#,
                "k".repeat(41)
            ),
            format!(r#"{{"product_id":"{PRODUCT}","customer_email":"not an e-mail"}}"#),
            format!(r#"{{"product_id":"{PRODUCT}","success_url":"https://a b"}}"#),
            "[]".to_string(),
            r#"{"product_id":"nope"}"#.to_string(),
        ] {
            assert_eq!(
                read_ask(bad.as_bytes()).map(|_| ()).map_err(|r| r.status),
                Err(422),
                "{bad}"
            );
        }
    }
}
