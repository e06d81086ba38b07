//! Checkouts as Polar plays them (issue #80, docs/polar-api.md §20): a checkout made with an
//! organization token (`POST /v1/checkouts/`) or from a checkout link (`GET
//! /v1/checkout-links/{client_secret}/redirect`), read and confirmed by its client secret
//! (`GET /v1/checkouts/client/{client_secret}`, `POST …/confirm`), the customer-session token
//! the confirmation hands back (none when the buyer's email matched an existing customer: an
//! anti-takeover rule of Polar's), and the order's license key issued a while after (Polar
//! grants benefits in a background job, so a key can answer 404 at first).
//!
//! Where the emulator departs from Polar: no payment (a confirmation pays at once, as a free
//! checkout does, and the checkout is `succeeded` from then on), no hosted checkout page (the
//! `url` is where it would be), no confirm rate limit, no custom fields, discounts, prices or
//! amounts, and checkouts are not kept by `--state`. The seller's products and links come from
//! the seed (`products`, `checkout_links`).

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{method_not_allowed, Auth, Core, Exchange, Pending, Resp, Step, Time};
use crate::json::{obj, opt_s, s, J};
use crate::util::fmt_ts;
use crate::validate::error_body;
use crate::SeedKey;

/// `CHECKOUT_TTL_SECONDS`: a checkout expires 24 hours after it was made.
const CHECKOUT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The prefix of a checkout's client secret (`CHECKOUT_CLIENT_SECRET_PREFIX`).
const CLIENT_SECRET_PREFIX: &str = "polar_c_";
/// Checkouts kept at most (the oldest dropped first).
const MAX_CHECKOUTS: usize = 10_000;
const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const EXPIRED: &str = "This checkout session has expired.";

/// A product a checkout sells.
#[derive(Debug, Clone)]
struct Product {
    id: Uuid,
    name: String,
    benefit_id: Uuid,
    limit_activations: Option<i64>,
}

/// A checkout link.
#[derive(Debug, Clone)]
struct Link {
    client_secret: String,
    product_id: Uuid,
    success_url: Option<String>,
}

/// One checkout session.
#[derive(Clone)]
struct Checkout {
    id: Uuid,
    client_secret: String,
    organization_id: Uuid,
    product_id: Uuid,
    status: &'static str,
    customer_email: Option<String>,
    customer_name: Option<String>,
    /// The customer the order goes to (set at confirmation).
    customer_id: Option<Uuid>,
    success_url: Option<String>,
    metadata: J,
    created_at: OffsetDateTime,
    modified_at: Option<OffsetDateTime>,
    expires_at: OffsetDateTime,
    /// When the order's key is issued (the emulator's clock), until it is.
    issue_at: Option<OffsetDateTime>,
}

/// The checkouts' state: the seed's products and links, the checkouts made, and the delay
/// before an order's key is issued.
#[derive(Default)]
pub(crate) struct Checkouts {
    products: Vec<Product>,
    links: Vec<Link>,
    list: Vec<Checkout>,
    issue_delay: Duration,
}

impl std::fmt::Debug for Checkouts {
    /// Counts only: client secrets are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkouts")
            .field("products", &self.products.len())
            .field("links", &self.links.len())
            .field("checkouts", &self.list.len())
            .field("issue_delay", &self.issue_delay)
            .finish()
    }
}

impl Checkouts {
    /// The products, links and delay of a (normalized) seed.
    pub(crate) fn from_seed(seed: &crate::Seed) -> Result<Checkouts, String> {
        let mut products = Vec::with_capacity(seed.products.len());
        for p in &seed.products {
            let id = crate::util::parse_uuid4(&p.id, "id of a product")?;
            let benefit_id = crate::util::parse_uuid4(&p.benefit_id, "benefit_id of a product")?;
            let limit_activations = p.limit_activations.or_else(|| {
                seed.benefits
                    .iter()
                    .find(|b| crate::util::parse_uuid4(&b.id, "id").is_ok_and(|i| i == benefit_id))
                    .and_then(|b| b.limit_activations)
                    .filter(|n| *n > 0)
            });
            products.push(Product {
                id,
                name: p.name.clone().unwrap_or_else(|| "Product".to_string()),
                benefit_id,
                limit_activations,
            });
        }
        let mut links = Vec::with_capacity(seed.checkout_links.len());
        for l in &seed.checkout_links {
            links.push(Link {
                client_secret: l.client_secret.clone(),
                product_id: crate::util::parse_uuid4(&l.product_id, "product_id of a link")?,
                success_url: l.success_url.clone(),
            });
        }
        Ok(Checkouts {
            products,
            links,
            list: Vec::new(),
            issue_delay: Duration::from_millis(seed.key_issue_delay_ms.unwrap_or(0)),
        })
    }
}

/// A checkout route that reads its body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CheckoutOp {
    /// `POST /v1/checkouts/` by this organization's token.
    Create(Uuid),
    /// `POST /v1/checkouts/client/{client_secret}/confirm`, the checkout's index.
    Confirm(usize),
    /// `POST /__emulator/checkouts`: the control knob.
    Settings,
}

fn plus(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.checked_add(time::Duration::milliseconds(
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
    ))
    .unwrap_or(t)
}

/// Polar's service-raised 422 (`PolarRequestValidationError`).
fn polar_validation_error(typ: &str, loc: &[&str], msg: &str, input: J) -> Resp {
    let loc = J::Arr(loc.iter().map(|l| s(l)).collect());
    Resp::json(
        422,
        &obj(vec![
            ("error", s("PolarRequestValidationError")),
            (
                "detail",
                J::Arr(vec![obj(vec![
                    ("type", s(typ)),
                    ("loc", loc),
                    ("msg", s(msg)),
                    ("input", input),
                ])]),
            ),
        ]),
    )
}

fn field<'a>(body: &'a J, name: &str) -> Option<&'a J> {
    match body {
        J::Obj(items) => items.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

fn field_str(body: &J, name: &str) -> Option<String> {
    match field(body, name) {
        Some(J::Str(v)) => Some(v.clone()),
        _ => None,
    }
}

/// The scheme and host the request came to (the checkout's `url` is built on it).
fn origin(ex: &Exchange) -> String {
    format!("http://{}", ex.head.get("host").unwrap_or("127.0.0.1"))
}

impl Core {
    /// The routes of this module (`None`: not one of them).
    pub(super) fn checkout_route(&mut self, ex: &Exchange, auth: &Auth, now: Time) -> Option<Step> {
        let method = ex.method();
        let get = matches!(method, "GET" | "HEAD");
        let path = ex.path.clone();
        if path == "/v1/checkouts/" {
            return Some(match method {
                "POST" => match auth.organization_with(&["checkouts:write"]) {
                    Ok(org) => Step::Body(Pending::Checkout(CheckoutOp::Create(org))),
                    Err(r) => Step::Done(r),
                },
                _ => Step::Done(method_not_allowed("POST")),
            });
        }
        if let Some(rest) = path.strip_prefix("/v1/checkouts/client/") {
            let (secret, confirm) = match rest.strip_suffix("/confirm") {
                Some(secret) => (secret, true),
                None => (rest, false),
            };
            if secret.is_empty() || secret.contains('/') {
                return None;
            }
            let found = match self.checkout_by_secret(secret, now) {
                Ok(at) => at,
                Err(r) => return Some(Step::Done(r)),
            };
            return Some(match (confirm, method) {
                (false, _) if get => Step::Done(self.checkout_public(found, &origin(ex), None)),
                (false, _) => Step::Done(method_not_allowed("GET")),
                (true, "POST") => Step::Body(Pending::Checkout(CheckoutOp::Confirm(found))),
                (true, _) => Step::Done(method_not_allowed("POST")),
            });
        }
        if let Some(rest) = path.strip_prefix("/v1/checkout-links/") {
            let secret = rest.strip_suffix("/redirect")?;
            if secret.contains('/') {
                return None;
            }
            if !get {
                return Some(Step::Done(method_not_allowed("GET")));
            }
            return Some(Step::Done(self.link_redirect(ex, secret, now)));
        }
        None
    }

    /// `GET /__emulator/checkouts`: the checkouts (id, status, email, whether the order's key
    /// is still to be issued; no secrets) and the delay before an order's key is issued.
    pub(super) fn checkouts_listed(&self) -> Resp {
        let listed: Vec<J> = self
            .checkouts
            .list
            .iter()
            .map(|c| {
                obj(vec![
                    ("id", s(&c.id.to_string())),
                    ("status", s(c.status)),
                    ("customer_email", opt_s(c.customer_email.as_deref())),
                    ("key_pending", J::Bool(c.issue_at.is_some())),
                ])
            })
            .collect();
        let delay = i128::try_from(self.checkouts.issue_delay.as_millis()).unwrap_or(0);
        Resp::json(
            200,
            &obj(vec![
                ("key_issue_delay_ms", J::Int(delay)),
                ("checkouts", J::Arr(listed)),
            ]),
        )
    }

    /// `POST /__emulator/checkouts` `{"key_issue_delay_ms": N}`: the delay before an order's
    /// key is issued, from the next confirmation on.
    pub(super) fn checkout_settings(&mut self, raw: &[u8]) -> Resp {
        let delay = crate::json::loads_bytes(raw).ok().and_then(|body| {
            match field(&body, "key_issue_delay_ms") {
                Some(J::Int(ms)) => u64::try_from(*ms).ok(),
                _ => None,
            }
        });
        match delay {
            Some(ms) => {
                self.checkouts.issue_delay = Duration::from_millis(ms);
                Resp::new(204)
            }
            None => Resp::detail(
                400,
                "invalid checkout settings: key_issue_delay_ms must be an integer, 0 or more",
            ),
        }
    }

    /// Runs a checkout route with its body read as JSON.
    pub(super) fn checkout_with_body(
        &mut self,
        ex: &Exchange,
        op: CheckoutOp,
        body: J,
        now: Time,
    ) -> Resp {
        match op {
            CheckoutOp::Create(org) => self.checkout_create(ex, org, &body, now),
            CheckoutOp::Confirm(at) => self.checkout_confirm(ex, at, &body, now),
            // Answered by the control routes (`checkout_settings`).
            CheckoutOp::Settings => Resp::internal_error(),
        }
    }

    /// The checkout of `secret`: 404 `ResourceNotFound` for none, 410 once expired.
    fn checkout_by_secret(&mut self, secret: &str, now: Time) -> Result<usize, Resp> {
        let clock = self.clock(now);
        let Some(at) = self
            .checkouts
            .list
            .iter()
            .position(|c| c.client_secret == secret)
        else {
            return Err(Resp::error(404, "ResourceNotFound", "Not found"));
        };
        let c = &mut self.checkouts.list[at];
        if c.expires_at < clock {
            if c.status == "open" {
                c.status = "expired";
            }
            return Err(Resp::error(410, "ExpiredCheckoutError", EXPIRED));
        }
        Ok(at)
    }

    /// A new open checkout of `product` for `organization_id`.
    fn new_checkout(
        &mut self,
        organization_id: Uuid,
        product_id: Uuid,
        email: Option<String>,
        success_url: Option<String>,
        metadata: J,
        now: Time,
    ) -> usize {
        let clock = self.clock(now);
        let secret = [CLIENT_SECRET_PREFIX, &self.random_text(TOKEN_ALPHABET, 37)].concat();
        let checkout = Checkout {
            id: self.store.next_id(),
            client_secret: secret,
            organization_id,
            product_id,
            status: "open",
            customer_email: email,
            customer_name: None,
            customer_id: None,
            success_url,
            metadata,
            created_at: clock,
            modified_at: None,
            expires_at: plus(clock, CHECKOUT_TTL),
            issue_at: None,
        };
        let list = &mut self.checkouts.list;
        if list.len() >= MAX_CHECKOUTS {
            list.remove(0);
        }
        list.push(checkout);
        list.len() - 1
    }

    /// `POST /v1/checkouts/` (`CheckoutProductsCreate`: `products`, or the older
    /// `product_id`) → 201 `Checkout`, with its metadata.
    fn checkout_create(&mut self, ex: &Exchange, org: Uuid, body: &J, now: Time) -> Resp {
        if !matches!(body, J::Obj(_)) {
            return Resp::json(422, &error_body(&[crate::validate::body_missing()]));
        }
        let first = match field(body, "products") {
            Some(J::Arr(items)) => match items.first() {
                Some(J::Str(id)) => Some(id.clone()),
                _ => None,
            },
            _ => field_str(body, "product_id"),
        };
        let product = first
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok())
            .and_then(|id| self.checkouts.products.iter().find(|p| p.id == id))
            .map(|p| p.id);
        let Some(product) = product else {
            return polar_validation_error(
                "value_error",
                &["body", "products"],
                "Product does not exist.",
                first.map_or(J::Null, |f| s(&f)),
            );
        };
        let email = field_str(body, "customer_email");
        let success_url = field_str(body, "success_url");
        let metadata = field(body, "metadata")
            .cloned()
            .unwrap_or_else(|| J::Obj(Vec::new()));
        let at = self.new_checkout(org, product, email, success_url, metadata, now);
        self.checkout_public(at, &origin(ex), Some(201))
    }

    /// `GET /v1/checkout-links/{client_secret}/redirect`: a new checkout of the link's
    /// product (`customer_email` in the query prefills it), then `307` to its `url`. An
    /// unknown link: 404 `ResourceNotFound`.
    fn link_redirect(&mut self, ex: &Exchange, secret: &str, now: Time) -> Resp {
        let Some(link) = self
            .checkouts
            .links
            .iter()
            .find(|l| l.client_secret == secret)
            .cloned()
        else {
            return Resp::error(404, "ResourceNotFound", "Not found");
        };
        let email = super::portal::query_pairs(&ex.head.target)
            .into_iter()
            .find(|(k, v)| k == "customer_email" && !v.is_empty())
            .map(|(_, v)| v);
        let org = match uuid::Uuid::parse_str(&self.organization_id) {
            Ok(o) => o,
            Err(_) => return Resp::internal_error(),
        };
        let at = self.new_checkout(
            org,
            link.product_id,
            email,
            link.success_url,
            J::Obj(Vec::new()),
            now,
        );
        let url = self.checkout_url(at, &origin(ex));
        let mut r = Resp::new(307);
        r.set("location", &url);
        r
    }

    fn checkout_url(&self, at: usize, origin: &str) -> String {
        let secret = self
            .checkouts
            .list
            .get(at)
            .map_or("", |c| c.client_secret.as_str());
        format!("{origin}/checkout/{secret}")
    }

    /// `POST /v1/checkouts/client/{client_secret}/confirm` (`CheckoutConfirm`: the public
    /// update's fields, here `customer_email` and `customer_name`): the customer is the one
    /// the checkout's email matches, or a new one; `CheckoutPublicConfirmed` with
    /// `customer_session_token` for a new customer, `null` for a matched one. The order's key
    /// is issued after the delay.
    fn checkout_confirm(&mut self, ex: &Exchange, at: usize, body: &J, now: Time) -> Resp {
        let clock = self.clock(now);
        let delay = self.checkouts.issue_delay;
        let Some(c) = self.checkouts.list.get(at).cloned() else {
            return Resp::error(404, "ResourceNotFound", "Not found");
        };
        if c.status != "open" {
            return Resp::error(
                403,
                "NotOpenCheckout",
                &format!("Checkout {} is not open: {}", c.id, c.status),
            );
        }
        let email = match field(body, "customer_email") {
            Some(J::Str(e)) => match crate::email::check(e) {
                Ok(normalized) => Some(normalized),
                Err(reason) => {
                    return polar_validation_error(
                        "value_error",
                        &["body", "customer_email"],
                        &format!("value is not a valid email address: {reason}"),
                        s(e),
                    )
                }
            },
            _ => c.customer_email.clone(),
        };
        let Some(email) = email else {
            return polar_validation_error(
                "missing",
                &["body", "customer_email"],
                "Field required",
                J::Null,
            );
        };
        let matched = self
            .store
            .customers_by_email(c.organization_id, &email)
            .first()
            .map(|m| m.id);
        let (customer_id, token) = match matched {
            // "Don't automatically create a session for customer associated by email."
            Some(id) => (id, None),
            None => {
                let id = self.store.next_id();
                let token = self.new_session(id, c.organization_id, clock, None);
                (id, Some(token))
            }
        };
        if let Some(c) = self.checkouts.list.get_mut(at) {
            c.status = "confirmed";
            c.customer_email = Some(email);
            c.customer_name = field_str(body, "customer_name").or(c.customer_name.take());
            c.customer_id = Some(customer_id);
            c.modified_at = Some(clock);
            c.issue_at = Some(plus(clock, delay));
        }
        let r = self.checkout_public(at, &origin(ex), None);
        // The answer says `confirmed` and carries the token; paid at once, the checkout is
        // `succeeded` from the next read on.
        if let Some(c) = self.checkouts.list.get_mut(at) {
            c.status = "succeeded";
        }
        let body = match crate::json::loads_bytes(&r.body) {
            Ok(J::Obj(mut items)) => {
                items.push((
                    "customer_session_token".to_string(),
                    opt_s(token.as_deref()),
                ));
                J::Obj(items)
            }
            _ => return Resp::internal_error(),
        };
        self.issue_due_keys(now);
        Resp::json(200, &body)
    }

    /// Issues the keys of the orders whose delay has passed by `now` (every request calls
    /// this first: the emulator has no background jobs of its own).
    pub(super) fn issue_due_keys(&mut self, now: Time) {
        let clock = self.clock(now);
        let due: Vec<usize> = self
            .checkouts
            .list
            .iter()
            .enumerate()
            .filter(|(_, c)| c.issue_at.is_some_and(|t| t <= clock))
            .map(|(i, _)| i)
            .collect();
        for at in due {
            let Some(c) = self.checkouts.list.get_mut(at) else {
                continue;
            };
            c.issue_at = None;
            let c = c.clone();
            let Some(product) = self
                .checkouts
                .products
                .iter()
                .find(|p| p.id == c.product_id)
                .cloned()
            else {
                continue;
            };
            let key = SeedKey {
                key: self.store.next_id().to_string().to_uppercase(),
                organization_id: Some(c.organization_id.to_string()),
                limit_activations: product.limit_activations,
                benefit_id: Some(product.benefit_id.to_string()),
                customer_id: c.customer_id.map(|id| id.to_string()),
                customer_email: c.customer_email.clone(),
                ..SeedKey::default()
            };
            // A key string drawn from fresh UUIDs never repeats; nothing else can refuse it.
            let _ = self.add_key(&key, now);
        }
    }

    /// `CheckoutPublic` (the fields the emulator plays) of the checkout at `at`, with
    /// `status` (200, or `created` for a new one made with a token: `Checkout`, which adds
    /// `metadata`).
    fn checkout_public(&self, at: usize, origin: &str, created: Option<u16>) -> Resp {
        let Some(c) = self.checkouts.list.get(at) else {
            return Resp::error(404, "ResourceNotFound", "Not found");
        };
        let product = self
            .checkouts
            .products
            .iter()
            .find(|p| p.id == c.product_id);
        let product_j = product.map_or(J::Null, |p| {
            obj(vec![
                ("id", s(&p.id.to_string())),
                ("name", s(&p.name)),
                ("is_recurring", J::Bool(false)),
                ("organization_id", s(&c.organization_id.to_string())),
                (
                    "benefits",
                    J::Arr(vec![obj(vec![
                        ("id", s(&p.benefit_id.to_string())),
                        ("type", s("license_keys")),
                    ])]),
                ),
            ])
        });
        let success_url = c.success_url.clone().map_or_else(
            || format!("{origin}/checkout/{}/confirmation", c.client_secret),
            |u| u.replace("{CHECKOUT_ID}", &c.id.to_string()),
        );
        let mut pairs = vec![
            ("id", s(&c.id.to_string())),
            ("created_at", s(&fmt_ts(c.created_at))),
            (
                "modified_at",
                c.modified_at.map_or(J::Null, |t| s(&fmt_ts(t))),
            ),
            ("payment_processor", s("stripe")),
            ("status", s(c.status)),
            ("client_secret", s(&c.client_secret)),
            ("url", s(&self.checkout_url(at, origin))),
            ("expires_at", s(&fmt_ts(c.expires_at))),
            ("success_url", s(&success_url)),
            ("return_url", J::Null),
            ("embed_origin", J::Null),
            ("product_id", s(&c.product_id.to_string())),
            (
                "customer_id",
                opt_s(c.customer_id.map(|i| i.to_string()).as_deref()),
            ),
            ("customer_email", opt_s(c.customer_email.as_deref())),
            ("customer_name", opt_s(c.customer_name.as_deref())),
            ("organization_id", s(&c.organization_id.to_string())),
            ("products", J::Arr(vec![product_j.clone()])),
            ("product", product_j),
        ];
        if created.is_some() {
            pairs.push(("metadata", c.metadata.clone()));
        }
        Resp::json(created.unwrap_or(200), &obj(pairs))
    }
}
