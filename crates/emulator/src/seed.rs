//! The emulator's seed file (`docs/interfaces.md` §3) plus the optional
//! `access_tokens` array for the token-authenticated twins.

use serde::{Deserialize, Serialize};

use super::util::{parse_ts, parse_uuid4};

/// The organization of [`Seed::demo`].
pub const DEMO_ORGANIZATION_ID: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
/// The demo key of the seed example in docs/interfaces.md §3: granted, `limit_activations` 3.
pub const DEMO_KEY: &str = "DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A";
/// A demo key without activations (`limit_activations` null).
pub const DEMO_KEY_NO_ACTIVATIONS: &str = "DEMO-NOACT-2B8E6F1A-3C4D-4E5F-8A9B-0C1D2E3F4A5B";
/// A demo key with status `revoked`.
pub const DEMO_KEY_REVOKED: &str = "DEMO-REVOKED-7A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D";
/// A demo key with status `disabled`.
pub const DEMO_KEY_DISABLED: &str = "DEMO-DISABLED-1F2E3D4C-5B6A-4978-8695-A4B3C2D1E0F9";
/// A demo key that expired on 2024-01-01.
pub const DEMO_KEY_EXPIRED: &str = "DEMO-EXPIRED-0A9B8C7D-6E5F-4D3C-B2A1-908172635445";
/// A demo key with `limit_usage` 10 (and `limit_activations` 3).
pub const DEMO_KEY_USAGE: &str = "DEMO-USAGE-5E4D3C2B-1A09-4F8E-9D7C-6B5A49382716";
/// The demo benefit of every demo key.
pub const DEMO_BENEFIT_ID: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";
/// The demo customer of every demo key.
pub const DEMO_CUSTOMER_ID: &str = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d";
/// An organization access token of the demo organization with every scope.
pub const DEMO_TOKEN: &str = "polar_oat_emulator_demo_0123456789abcdef";
/// An organization access token of the demo organization with only `license_keys:read`.
pub const DEMO_TOKEN_READ_ONLY: &str = "polar_oat_emulator_readonly_0123456789ab";

/// The demo product (issue #80): a checkout of it is ordered with a key of
/// [`DEMO_BENEFIT_ID`], 3 activation slots.
pub const DEMO_PRODUCT_ID: &str = "3f9e1c2d-7b4a-4e8f-9a1b-2c3d4e5f6a7b";
/// The demo checkout link, selling [`DEMO_PRODUCT_ID`]: `GET
/// /v1/checkout-links/{DEMO_CHECKOUT_LINK}/redirect` opens a checkout.
pub const DEMO_CHECKOUT_LINK: &str = "polar_cl_emulatorDemoLink0123456789abcdefghijk";

/// Every scope a seed token gets when its `scopes` are not given.
pub const ALL_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "user:read",
    "organizations:read",
    "organizations:write",
    "products:read",
    "products:write",
    "checkouts:read",
    "checkouts:write",
    "benefits:read",
    "benefits:write",
    "customers:read",
    "customers:write",
    "customer_sessions:write",
    "customer_meters:read",
    "meters:read",
    "meters:write",
    "events:read",
    "events:write",
    "orders:read",
    "subscriptions:read",
    "subscriptions:write",
    "license_keys:read",
    "license_keys:write",
    "webhooks:read",
    "webhooks:write",
];

/// The data an emulator starts with.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Seed {
    /// The seller organization (UUID v4); the default organization of every key and token.
    pub organization_id: String,
    /// The license keys.
    #[serde(default)]
    pub license_keys: Vec<SeedKey>,
    /// Access tokens accepted by the token-authenticated `/v1/license-keys/*` twins
    /// (an emulator addition to the seed format of docs/interfaces.md §3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_tokens: Vec<SeedToken>,
    /// The organization token's budget, calls per window per organization (an emulator addition
    /// to the seed format: [`crate::Options::token_budget`] wins; absent: Polar's 500, or 100
    /// for a sandbox; 0 turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u32>,
    /// The budget's window in seconds (absent: 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_window_seconds: Option<u64>,
    /// The benefits' settings that change the customer portal's answers (an emulator addition
    /// to the seed format, docs/polar-api.md §16.2); a benefit left out has them off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub benefits: Vec<SeedBenefit>,
    /// The organization's meters (docs/polar-api.md §16.5; an emulator addition to the seed
    /// format): what each counts of the events `POST /v1/events/ingest` takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // Without the `billing` feature (the npm emulator) the meters are counted, not read: a seed
    // with any is refused ([`Seed::normalized`]), and their reader stays out of the wasm.
    #[cfg_attr(not(feature = "billing"), serde(deserialize_with = "meters_counted"))]
    pub meters: Vec<SeedMeter>,
    /// The products a checkout sells (issue #80, an emulator addition to the seed format,
    /// docs/polar-api.md §20): each names the license-key benefit its order grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<SeedProduct>,
    /// The organization's checkout links (`polar_cl_…` client secrets): `GET
    /// /v1/checkout-links/{client_secret}/redirect` opens a checkout of the link's product.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkout_links: Vec<SeedCheckoutLink>,
    /// How long after a checkout's confirmation its order's license key is issued, in
    /// milliseconds (absent: 0, at once). Polar grants benefits in a background job after the
    /// order (§20), so a key can answer 404 for a while; `POST /__emulator/checkouts` changes
    /// it at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_issue_delay_ms: Option<u64>,
}

/// A product of the seed's organization that a checkout sells (an emulator addition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeedProduct {
    /// The product (UUID v4).
    pub id: String,
    /// Its name (absent: `Product`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The license-key benefit its order grants (UUID v4).
    pub benefit_id: String,
    /// The issued key's `limit_activations` (absent: the benefit's `limit_activations` when
    /// the seed sets one above 0, else none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_activations: Option<i64>,
}

/// A checkout link of the seed's organization (an emulator addition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeedCheckoutLink {
    /// The link's client secret (Polar's are `polar_cl_…`): non-empty ASCII, no `/`.
    pub client_secret: String,
    /// The product it sells (one of the seed's `products`).
    pub product_id: String,
    /// Where the checkout's buyer goes after paying (absent: the checkout's confirmation page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_url: Option<String>,
}

/// A meter of the seed's organization. Polar's meters filter events by any clause; the
/// emulator's match one event name (a documented simplification) and aggregate as Polar's
/// `count`, `sum` of a metadata property (only numeric values count, as Polar's
/// `jsonb_typeof = 'number'`) or `unique` of one (its distinct values, read through
/// `GET /v1/meters/{id}/quantities`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SeedMeter {
    /// The meter (UUID v4), as a `meter_credit` benefit's `meter_id` names it.
    pub id: String,
    /// The meter's name (Polar: at least 3 characters).
    pub name: String,
    /// The event name it counts (its filter: `name` equals this).
    pub event_name: String,
    /// `{"func": "count"}` (absent: the default), `{"func": "sum", "property": "tokens"}` or
    /// `{"func": "unique", "property": "install"}` (a `metadata.` prefix is dropped, as Polar
    /// does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<serde_json::Value>,
}

/// As many default meters as the seed lists, each read as anything (no `billing` feature).
#[cfg(not(feature = "billing"))]
fn meters_counted<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SeedMeter>, D::Error> {
    let seen: Vec<serde::de::IgnoredAny> = Deserialize::deserialize(d)?;
    Ok(vec![SeedMeter::default(); seen.len()])
}

/// A meter's aggregation, as the seed names it.
#[cfg(feature = "billing")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Aggregation {
    Count,
    /// The sum of this metadata property (numbers only).
    Sum(String),
    /// The count of the distinct values of this metadata property (Polar's `unique`:
    /// `count(distinct …)`, any JSON type; issue #80's active installs).
    Unique(String),
}

#[cfg(feature = "billing")]
impl SeedMeter {
    /// The meter's aggregation, or why the seed's is not one the emulator takes.
    pub(crate) fn aggregation(&self) -> Result<Aggregation, String> {
        let what = format!("the aggregation of meter {}", self.id);
        let Some(agg) = &self.aggregation else {
            return Ok(Aggregation::Count);
        };
        let func = agg.get("func").and_then(|f| f.as_str());
        match func {
            Some("count") => Ok(Aggregation::Count),
            Some(f @ ("sum" | "unique")) => match agg.get("property").and_then(|p| p.as_str()) {
                Some(p) => {
                    let p = p.strip_prefix("metadata.").unwrap_or(p);
                    if p.is_empty() {
                        Err(format!("{what} aggregates an empty property"))
                    } else if f == "sum" {
                        Ok(Aggregation::Sum(p.to_string()))
                    } else {
                        Ok(Aggregation::Unique(p.to_string()))
                    }
                }
                None => Err(format!("{what} is a {f} without a \"property\"")),
            },
            _ => Err(format!(
                "{what} is not {{\"func\": \"count\"}}, or \"sum\" or \"unique\" with a \"property\""
            )),
        }
    }
}

/// A benefit of the seed's organization: a license-key benefit's settings
/// (`properties.activations` in Polar), or a Feature Flag benefit and its values
/// (docs/polar-api.md §16.4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeedBenefit {
    /// The benefit (UUID v4), as the keys' `benefit_id` (or `benefits`) names it.
    pub id: String,
    /// `properties.activations.enable_customer_admin` (license-key benefits): a customer
    /// session's `GET /v1/customer-portal/license-keys/{id}` lists the key's activations
    /// (default false: it answers `"activations": []`).
    #[serde(default)]
    pub enable_customer_admin: bool,
    /// `properties.activations.limit` of a license-key benefit, as `GET /v1/benefits/` lists
    /// it (issue #78): absent, the largest `limit_activations` of the keys it issued; `0`, no
    /// activation limit (`activations` `null`: Polar refuses every activation of its keys).
    /// Its keys' own limits stay as the keys give them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_activations: Option<i64>,
    /// The benefit's `type`: `license_keys` (absent: the default) or `feature_flag`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The benefit's `metadata` (a Feature Flag's values): at most 50 keys, each 1–40
    /// characters, each value a string of 1–500 characters, an integer, a float or a boolean.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The benefit's `description` (absent: `License key` or `Feature flag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A `meter_credit` benefit's meter (UUID v4, one of the seed's `meters`). Without the
    /// `billing` feature this and the next two are not read (a `meter_credit` benefit is
    /// refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(not(feature = "billing"), serde(skip_deserializing))]
    pub meter_id: Option<String>,
    /// A `meter_credit` benefit's units, credited at each grant (int32, more than 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(not(feature = "billing"), serde(skip_deserializing))]
    pub units: Option<i64>,
    /// A `meter_credit` benefit's `rollover`: at a new cycle, what is left of its credits
    /// (the balance, at most what they credited) is credited again after the reset.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[cfg_attr(not(feature = "billing"), serde(skip_deserializing))]
    pub rollover: bool,
}

/// The benefit types the seed takes.
pub(crate) const BENEFIT_TYPES: &[&str] = &["license_keys", "feature_flag", "meter_credit"];

/// Polar's `metadata` rules (`kit/metadata.py`): at most 50 keys, a key 1–40 characters, a value
/// a string of 1–500 characters, an integer, a float or a boolean. The pairs come back in the
/// order PostgreSQL's JSONB keeps an object's keys (shorter keys first, then by bytes), as
/// Polar answers them. `what` names the owner in the error.
pub(crate) fn check_metadata(
    metadata: &serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> Result<Vec<(String, crate::json::J)>, String> {
    use crate::json::J;
    use serde_json::Value;
    if metadata.len() > 50 {
        return Err(format!(
            "the metadata of {what} has {} keys: at most 50",
            metadata.len()
        ));
    }
    let mut pairs = Vec::with_capacity(metadata.len());
    for (key, value) in metadata {
        let len = key.chars().count();
        if !(1..=40).contains(&len) {
            return Err(format!(
                "the metadata key `{key}` of {what} has {len} characters: 1 to 40"
            ));
        }
        let v = match value {
            Value::String(text) => {
                let n = text.chars().count();
                if !(1..=500).contains(&n) {
                    return Err(format!(
                        "the metadata value of `{key}` of {what} has {n} characters: 1 to 500"
                    ));
                }
                J::Str(text.clone())
            }
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => J::Int(i128::from(i)),
                (None, Some(u), _) => J::Int(i128::from(u)),
                (None, None, Some(f)) => J::Float(f),
                _ => return Err(format!("the metadata value of `{key}` of {what} is not a number")),
            },
            Value::Null | Value::Array(_) | Value::Object(_) => {
                return Err(format!(
                    "the metadata value of `{key}` of {what} must be a string, an integer, a float or a boolean"
                ))
            }
        };
        pairs.push((key.clone(), v));
    }
    pairs.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    Ok(pairs)
}

/// One license key of a [`Seed`]. Every field but `key` is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SeedKey {
    /// The key string, matched exactly (case-sensitive).
    pub key: String,
    /// The owning organization; defaults to the seed's top-level one.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// `granted` (default), `revoked` or `disabled`.
    #[serde(default)]
    pub status: Option<String>,
    /// Activation slots; null (default) or 0 means activations are not supported.
    #[serde(default)]
    pub limit_activations: Option<i64>,
    /// Usage limit; null (default) means unlimited.
    #[serde(default)]
    pub limit_usage: Option<i64>,
    /// Current usage (default 0).
    #[serde(default)]
    pub usage: i64,
    /// RFC 3339 expiry; null (default) means no expiry.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The benefit (UUID v4); generated when absent.
    #[serde(default)]
    pub benefit_id: Option<String>,
    /// The customer (UUID v4); generated when absent.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The customer's email (shown in the `customer` and `user` objects).
    #[serde(default)]
    pub customer_email: Option<String>,
    /// The customer's `external_id` (the seller's id for it; an addition to the seed format of
    /// docs/interfaces.md §3): `GET /v1/customers/external/{id}/state`, the
    /// `external_customer_id` filters and events name the customer by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_external_id: Option<String>,
    /// The seat holder (answered from API version 2027-01 on; an addition to the seed format of
    /// docs/interfaces.md §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<SeedMember>,
    /// The subscription the key was granted through (2027-01 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SeedSubscription>,
    /// The order the key was granted through (2027-01 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<SeedOrder>,
    /// The other benefits the same purchase granted (UUID v4s of the seed's `feature_flag`
    /// benefits): one grant each, of the key's customer, member, subscription and order,
    /// granted unless the key is `revoked` (an addition to the seed format of
    /// docs/interfaces.md §3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub benefits: Vec<String>,
}

/// A key's seat holder (`member`, API version 2027-01 and later).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeedMember {
    /// Member id (UUID v4); generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// The merchant's id for the member.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// A key's subscription (`subscription`, API version 2027-01 and later).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeedSubscription {
    /// Subscription id (UUID v4); generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// `active` (default), `trialing`, `past_due`, `canceled`, …
    #[serde(default)]
    pub status: Option<String>,
    /// RFC 3339; defaults to the emulator's start.
    #[serde(default)]
    pub current_period_start: Option<String>,
    /// RFC 3339; defaults to 30 days after the period start.
    #[serde(default)]
    pub current_period_end: Option<String>,
    /// The customer cancelled: the subscription ends at the period end (default false).
    #[serde(default)]
    pub cancel_at_period_end: bool,
    /// RFC 3339, when the subscription ends; null (default) when it renews.
    #[serde(default)]
    pub ends_at: Option<String>,
}

/// A key's order (`order`, API version 2027-01 and later).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeedOrder {
    /// Order id (UUID v4); generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// RFC 3339; defaults to the emulator's start.
    #[serde(default)]
    pub created_at: Option<String>,
    /// `paid` (default), `pending`, `refunded`, `partially_refunded`.
    #[serde(default)]
    pub status: Option<String>,
    /// Whether the order is paid (default: `status` is `paid` or `partially_refunded`).
    #[serde(default)]
    pub paid: Option<bool>,
}

fn all_scopes() -> Vec<String> {
    ALL_SCOPES.iter().map(|s| s.to_string()).collect()
}

/// An access token for the token-authenticated twins.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SeedToken {
    /// The bearer token value.
    pub token: String,
    /// The organization the token belongs to; defaults to the seed's top-level one.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// The token's scopes; defaults to [`ALL_SCOPES`]. The twins need `license_keys:write`.
    #[serde(default = "all_scopes")]
    pub scopes: Vec<String>,
}

impl Default for SeedToken {
    fn default() -> Self {
        SeedToken {
            token: String::new(),
            organization_id: None,
            scopes: all_scopes(),
        }
    }
}

/// The seed example in docs/interfaces.md §3 documents optional fields with values such as
/// `"optional UUID v4"`; such placeholders count as absent.
fn placeholder(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("optional"))
}

fn clear_placeholder(value: &mut Option<String>) {
    if placeholder(value) {
        *value = None;
    }
}

impl SeedKey {
    /// A granted key with every other field at its default.
    pub fn new(key: impl Into<String>) -> SeedKey {
        SeedKey {
            key: key.into(),
            ..SeedKey::default()
        }
    }

    /// Drops documentation placeholders and checks every field.
    pub(crate) fn normalized(&self) -> Result<SeedKey, String> {
        let mut k = self.clone();
        clear_placeholder(&mut k.organization_id);
        clear_placeholder(&mut k.status);
        clear_placeholder(&mut k.expires_at);
        clear_placeholder(&mut k.benefit_id);
        clear_placeholder(&mut k.customer_id);
        clear_placeholder(&mut k.customer_email);
        clear_placeholder(&mut k.customer_external_id);
        if k.key.is_empty() {
            return Err("a license key has an empty `key`".to_string());
        }
        let name = &k.key;
        if let Some(org) = &k.organization_id {
            parse_uuid4(org, &format!("organization_id of key {name}"))?;
        }
        if let Some(status) = &k.status {
            if !matches!(status.as_str(), "granted" | "revoked" | "disabled") {
                return Err(format!(
                    "status `{status}` of key {name} is not granted, revoked or disabled"
                ));
            }
        }
        for (field, value) in [
            ("limit_activations", k.limit_activations),
            ("limit_usage", k.limit_usage),
            ("usage", Some(k.usage)),
        ] {
            if let Some(v) = value {
                if i32::try_from(v).is_err() {
                    return Err(format!(
                        "{field} {v} of key {name} is outside the int32 range"
                    ));
                }
            }
        }
        if let Some(t) = &k.expires_at {
            parse_ts(t).map_err(|e| format!("expires_at of key {name}: {e}"))?;
        }
        if let Some(id) = &k.benefit_id {
            parse_uuid4(id, &format!("benefit_id of key {name}"))?;
        }
        if let Some(id) = &k.customer_id {
            parse_uuid4(id, &format!("customer_id of key {name}"))?;
        }
        let ids = [
            ("member.id", k.member.as_ref().and_then(|m| m.id.as_ref())),
            (
                "subscription.id",
                k.subscription.as_ref().and_then(|m| m.id.as_ref()),
            ),
            ("order.id", k.order.as_ref().and_then(|m| m.id.as_ref())),
        ];
        for (field, id) in ids {
            if let Some(id) = id {
                parse_uuid4(id, &format!("{field} of key {name}"))?;
            }
        }
        let sub = k.subscription.as_ref();
        let order = k.order.as_ref();
        let times = [
            (
                "subscription.current_period_start",
                sub.and_then(|s| s.current_period_start.as_ref()),
            ),
            (
                "subscription.current_period_end",
                sub.and_then(|s| s.current_period_end.as_ref()),
            ),
            ("subscription.ends_at", sub.and_then(|s| s.ends_at.as_ref())),
            (
                "order.created_at",
                order.and_then(|o| o.created_at.as_ref()),
            ),
        ];
        for (field, t) in times {
            if let Some(t) = t {
                parse_ts(t).map_err(|e| format!("{field} of key {name}: {e}"))?;
            }
        }
        for (i, b) in k.benefits.iter().enumerate() {
            let id = parse_uuid4(b, &format!("benefits[{i}] of key {name}"))?;
            if k.benefits[..i]
                .iter()
                .any(|seen| parse_uuid4(seen, "").is_ok_and(|s| s == id))
            {
                return Err(format!(
                    "benefit {id} appears twice in the benefits of key {name}"
                ));
            }
        }
        Ok(k)
    }
}

impl Seed {
    /// Parses and checks a seed file (JSON, `docs/interfaces.md` §3).
    ///
    /// Optional fields whose value starts with `optional` (the seed
    /// example of docs/interfaces.md §3 uses such descriptions) are treated as absent.
    pub fn from_json(text: &str) -> Result<Seed, String> {
        let seed: Seed =
            serde_json::from_str(text).map_err(|e| format!("invalid seed file: {e}"))?;
        seed.normalized()
    }

    /// Drops documentation placeholders and checks every field and uniqueness.
    pub(crate) fn normalized(&self) -> Result<Seed, String> {
        parse_uuid4(&self.organization_id, "organization_id")?;
        let mut keys: Vec<SeedKey> = Vec::with_capacity(self.license_keys.len());
        for key in &self.license_keys {
            let key = key.normalized()?;
            let org = key
                .organization_id
                .as_deref()
                .unwrap_or(&self.organization_id);
            if keys.iter().any(|k| {
                k.key == key.key
                    && k.organization_id
                        .as_deref()
                        .unwrap_or(&self.organization_id)
                        == org
            }) {
                return Err(format!(
                    "key {} appears twice in organization {org}",
                    key.key
                ));
            }
            keys.push(key);
        }
        let mut tokens: Vec<SeedToken> = Vec::with_capacity(self.access_tokens.len());
        for token in &self.access_tokens {
            let mut token = token.clone();
            clear_placeholder(&mut token.organization_id);
            if token.token.is_empty() || !token.token.is_ascii() || token.token.contains(' ') {
                return Err("an access token must be non-empty ASCII without spaces".to_string());
            }
            if let Some(org) = &token.organization_id {
                parse_uuid4(org, "organization_id of an access token")?;
            }
            if tokens.iter().any(|t| t.token == token.token) {
                return Err("an access token appears twice".to_string());
            }
            tokens.push(token);
        }
        let mut benefits: Vec<SeedBenefit> = Vec::with_capacity(self.benefits.len());
        for b in &self.benefits {
            let id = parse_uuid4(&b.id, "id of a benefit")?;
            if benefits
                .iter()
                .any(|seen| parse_uuid4(&seen.id, "id").is_ok_and(|s| s == id))
            {
                return Err(format!("benefit {id} appears twice"));
            }
            let mut b = b.clone();
            clear_placeholder(&mut b.kind);
            if let Some(kind) = &b.kind {
                if !BENEFIT_TYPES.contains(&kind.as_str()) {
                    return Err(format!(
                        "the type `{kind}` of benefit {id} is not {}",
                        BENEFIT_TYPES.join(" or ")
                    ));
                }
            }
            check_metadata(&b.metadata, &format!("benefit {id}"))?;
            benefits.push(b);
        }
        // The meters' and credits' checks are the `billing` feature's: without it a seed with
        // either is refused whole (state.rs).
        #[cfg(feature = "billing")]
        let meters = self.checked_meters(&benefits)?;
        #[cfg(not(feature = "billing"))]
        let meters = {
            let credits = benefits
                .iter()
                .any(|b| b.kind.as_deref() == Some("meter_credit"));
            if !self.meters.is_empty() || credits {
                return Err(
                    "meters and meter_credit benefits need the emulator's `billing` feature (the npm package's emulator is built without it: use `polar-license emulator`)"
                        .to_string(),
                );
            }
            Vec::new()
        };
        self.check_checkouts()?;
        if self.token_window_seconds == Some(0) {
            return Err("token_window_seconds must be at least 1".to_string());
        }
        Ok(Seed {
            organization_id: self.organization_id.clone(),
            license_keys: keys,
            access_tokens: tokens,
            token_budget: self.token_budget,
            token_window_seconds: self.token_window_seconds,
            benefits,
            meters,
            products: self.products.clone(),
            checkout_links: self.checkout_links.clone(),
            key_issue_delay_ms: self.key_issue_delay_ms,
        })
    }

    /// The products' and checkout links' checks: UUIDs, each once, every link's product one of
    /// the seed's.
    fn check_checkouts(&self) -> Result<(), String> {
        let mut products: Vec<uuid::Uuid> = Vec::new();
        for p in &self.products {
            let id = parse_uuid4(&p.id, "id of a product")?;
            parse_uuid4(&p.benefit_id, "benefit_id of a product")?;
            if products.contains(&id) {
                return Err(format!("product {id} appears twice"));
            }
            if p.limit_activations
                .is_some_and(|n| !(1..=i64::from(i32::MAX)).contains(&n))
            {
                return Err(format!(
                    "limit_activations of the product {id} must be 1 or more"
                ));
            }
            products.push(id);
        }
        let mut secrets: Vec<&str> = Vec::new();
        for l in &self.checkout_links {
            let secret = l.client_secret.as_str();
            if secret.is_empty() || !secret.is_ascii() || secret.contains(['/', ' ', '?', '#']) {
                return Err("a checkout link's client_secret must be non-empty ASCII without `/`, spaces, `?` or `#`".to_string());
            }
            if secrets.contains(&secret) {
                return Err("a checkout link's client_secret appears twice".to_string());
            }
            let product = parse_uuid4(&l.product_id, "product_id of a checkout link")?;
            if !products.contains(&product) {
                return Err(format!(
                    "the checkout link's product {product} is not among the seed's products"
                ));
            }
            secrets.push(secret);
        }
        Ok(())
    }

    /// The seed's meters, checked, and its `meter_credit` benefits' properties checked
    /// against them.
    #[cfg(feature = "billing")]
    fn checked_meters(&self, benefits: &[SeedBenefit]) -> Result<Vec<SeedMeter>, String> {
        let mut meters: Vec<SeedMeter> = Vec::with_capacity(self.meters.len());
        for m in &self.meters {
            let id = parse_uuid4(&m.id, "id of a meter")?;
            if meters
                .iter()
                .any(|seen| parse_uuid4(&seen.id, "id").is_ok_and(|s| s == id))
            {
                return Err(format!("meter {id} appears twice"));
            }
            if m.name.chars().count() < 3 {
                return Err(format!(
                    "the name of meter {id} has fewer than 3 characters"
                ));
            }
            let n = m.event_name.chars().count();
            if !(1..=128).contains(&n) {
                return Err(format!(
                    "the event_name of meter {id} has {n} characters: 1 to 128"
                ));
            }
            m.aggregation()?;
            meters.push(m.clone());
        }
        for b in benefits {
            let id = &b.id;
            let credit = b.kind.as_deref() == Some("meter_credit");
            if !credit {
                if b.meter_id.is_some() || b.units.is_some() || b.rollover {
                    return Err(format!(
                        "benefit {id} has meter_id, units or rollover but is not of type meter_credit"
                    ));
                }
                continue;
            }
            let meter = b
                .meter_id
                .as_deref()
                .ok_or_else(|| format!("the meter_credit benefit {id} has no meter_id"))?;
            let meter = parse_uuid4(meter, &format!("meter_id of benefit {id}"))?;
            if !meters
                .iter()
                .any(|m| parse_uuid4(&m.id, "id").is_ok_and(|m| m == meter))
            {
                return Err(format!(
                    "the meter {meter} of benefit {id} is not among the seed's meters"
                ));
            }
            match b.units {
                Some(u) if u > 0 && i32::try_from(u).is_ok() => {}
                Some(u) => {
                    return Err(format!(
                        "the units {u} of benefit {id} are not an int32 above 0"
                    ))
                }
                None => return Err(format!("the meter_credit benefit {id} has no units")),
            }
        }
        Ok(meters)
    }

    /// The start-up banner's lines about the seed, as `polar-license emulator` and the npm
    /// package's `polar-license-emulator` print them: one line per key (its status, its
    /// benefit id as `benefit_of` reports it, its limits, expiry and organization when not the
    /// seed's) and one per access token. The user's own test data: printed in full.
    pub fn banner(&self, benefit_of: impl Fn(&str) -> Option<String>) -> String {
        let mut text = String::new();
        for k in &self.license_keys {
            let mut parts = vec![k.status.clone().unwrap_or_else(|| "granted".to_string())];
            if let Some(benefit) = benefit_of(&k.key) {
                parts.push(format!("benefit {benefit}"));
            }
            match k.limit_activations {
                Some(n) if n > 0 => parts.push(format!("{n} activations")),
                _ => parts.push("no activations".to_string()),
            }
            if let Some(limit) = k.limit_usage {
                parts.push(format!("usage {}/{limit}", k.usage));
            }
            if let Some(t) = &k.expires_at {
                parts.push(format!("expires {t}"));
            }
            if let Some(org) = k
                .organization_id
                .as_deref()
                .filter(|o| *o != self.organization_id)
            {
                parts.push(format!("organization {org}"));
            }
            text.push_str(&format!("key {} ({})\n", k.key, parts.join(", ")));
        }
        for t in &self.access_tokens {
            let write = t.scopes.iter().any(|s| s == "license_keys:write");
            text.push_str(&format!(
                "access token {} ({})\n",
                t.token,
                if write {
                    "license_keys:write"
                } else {
                    "without license_keys:write"
                }
            ));
        }
        text
    }

    /// A ready-made seed: organization [`DEMO_ORGANIZATION_ID`] with
    /// [`DEMO_KEY`] (3 activation slots), a key without activations, a revoked,
    /// a disabled and an expired key, a key with `limit_usage` 10, and two
    /// access tokens ([`DEMO_TOKEN`] with every scope, [`DEMO_TOKEN_READ_ONLY`]).
    pub fn demo() -> Seed {
        let base = |key: &str| SeedKey {
            key: key.to_string(),
            benefit_id: Some(DEMO_BENEFIT_ID.to_string()),
            customer_id: Some(DEMO_CUSTOMER_ID.to_string()),
            customer_email: Some("jane.doe@gmail.com".to_string()),
            limit_activations: Some(3),
            ..SeedKey::default()
        };
        Seed {
            organization_id: DEMO_ORGANIZATION_ID.to_string(),
            license_keys: vec![
                base(DEMO_KEY),
                SeedKey {
                    limit_activations: None,
                    ..base(DEMO_KEY_NO_ACTIVATIONS)
                },
                SeedKey {
                    status: Some("revoked".to_string()),
                    ..base(DEMO_KEY_REVOKED)
                },
                SeedKey {
                    status: Some("disabled".to_string()),
                    ..base(DEMO_KEY_DISABLED)
                },
                SeedKey {
                    expires_at: Some("2024-01-01T00:00:00Z".to_string()),
                    ..base(DEMO_KEY_EXPIRED)
                },
                SeedKey {
                    limit_usage: Some(10),
                    ..base(DEMO_KEY_USAGE)
                },
            ],
            access_tokens: vec![
                SeedToken {
                    token: DEMO_TOKEN.to_string(),
                    organization_id: None,
                    scopes: all_scopes(),
                },
                SeedToken {
                    token: DEMO_TOKEN_READ_ONLY.to_string(),
                    organization_id: None,
                    scopes: vec!["license_keys:read".to_string()],
                },
            ],
            token_budget: None,
            token_window_seconds: None,
            // Device management on: a customer session lists the demo keys' activations.
            benefits: vec![SeedBenefit {
                id: DEMO_BENEFIT_ID.to_string(),
                enable_customer_admin: true,
                ..SeedBenefit::default()
            }],
            meters: Vec::new(),
            // A product to buy and a link to it (issue #80: buying in the app).
            products: vec![SeedProduct {
                id: DEMO_PRODUCT_ID.to_string(),
                name: Some("Demo app".to_string()),
                benefit_id: DEMO_BENEFIT_ID.to_string(),
                limit_activations: Some(3),
            }],
            checkout_links: vec![SeedCheckoutLink {
                client_secret: DEMO_CHECKOUT_LINK.to_string(),
                product_id: DEMO_PRODUCT_ID.to_string(),
                success_url: None,
            }],
            key_issue_delay_ms: None,
        }
    }
}
