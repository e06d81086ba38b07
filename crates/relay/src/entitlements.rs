//! What Polar knows of a key's customer, joined as the relay will sign it into a lease (issue
//! #68 item 2; docs/polar-api.md §16.4–16.5): a key's Feature Flag values and its customer's
//! meter balances, read from an organization token's `GET /v1/benefit-grants/` and
//! `GET /v1/customer-meters/` answers. Pure steps on Polar's JSON: the host reads the pages
//! (within the token's budget), these join them.
//!
//! The join (§16.4): a validate answer's `benefit_id` is the license-key benefit's, never a
//! flag's, so the key is found by its grant (`properties.license_key_id` = the key's id), and
//! its purchase by that grant's scope (`subscription_id`, `order_id`, `member_id`); the
//! granted `feature_flag` grants of the same scope are the key's, their `benefit.metadata` its
//! values. A key whose grant is absent or revoked has none.
//!
//! Wired (with [`crate::store::StoreOptions::entitlements`] on): a granted validate or
//! activate whose client asks ([`polar_license::lease::ENTITLEMENTS_MARK`]) gets the key's
//! values and balances signed into its lease (the relay's cache, `crate::entitled`, read by the
//! background machine within the token's budget, kept fresh by the webhooks).

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// One entitlement value, typed as Polar's metadata values are (`kit/metadata.py`).
#[derive(Debug, Clone, PartialEq)]
pub enum Entitlement {
    /// A string value (1–500 characters in Polar).
    Str(String),
    /// An integer value.
    Int(i64),
    /// A float value.
    Float(f64),
    /// A boolean value.
    Bool(bool),
}

impl Entitlement {
    /// A metadata value as Polar answers it; `None` for what Polar's metadata cannot hold
    /// (null, a list, an object, an integer past 64 bits).
    pub fn from_json(v: &Json) -> Option<Entitlement> {
        match v {
            Json::String(s) => Some(Entitlement::Str(s.clone())),
            Json::Bool(b) => Some(Entitlement::Bool(*b)),
            Json::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Some(Entitlement::Int(i)),
                // An integer past i64 reads as a float: refused, it is not one Polar sent.
                (None, Some(_)) if n.is_u64() => None,
                (None, Some(f)) => Some(Entitlement::Float(f)),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Why an answer could not be joined: it is not the list Polar sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAList(pub &'static str);

impl std::fmt::Display for NotAList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not Polar's list: {}", self.0)
    }
}

impl std::error::Error for NotAList {}

/// The `items` of a `ListResource` page.
pub fn page_items(page: &Json) -> Result<&[Json], NotAList> {
    page.get("items")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .ok_or(NotAList("no \"items\" list"))
}

fn text<'a>(j: &'a Json, name: &str) -> Option<&'a str> {
    j.get(name).and_then(Json::as_str)
}

/// The grant's scope: the purchase that made it.
fn scope(g: &Json) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        text(g, "subscription_id"),
        text(g, "order_id"),
        text(g, "member_id"),
    )
}

/// The Feature Flag values of license key `license_key_id`, joined from the grants of its
/// customer (every page's `items` of `GET /v1/benefit-grants/?customer_id=…`, in Polar's
/// order). A name two flags of the purchase both set keeps the first grant's value. Empty
/// when the key's own grant is not among them or is revoked.
pub fn key_entitlements(grants: &[Json], license_key_id: &str) -> BTreeMap<String, Entitlement> {
    let granted = |g: &&Json| g.get("is_granted") == Some(&Json::Bool(true));
    let mut out = BTreeMap::new();
    let Some(own) = grants.iter().filter(granted).find(|g| {
        g.get("properties")
            .and_then(|p| text(p, "license_key_id"))
            .is_some_and(|id| id == license_key_id)
    }) else {
        return out;
    };
    let purchase = scope(own);
    for g in grants.iter().filter(granted) {
        let Some(benefit) = g.get("benefit") else {
            continue;
        };
        if text(benefit, "type") != Some("feature_flag") || scope(g) != purchase {
            continue;
        }
        let Some(metadata) = benefit.get("metadata").and_then(Json::as_object) else {
            continue;
        };
        for (name, v) in metadata {
            if let Some(value) = Entitlement::from_json(v) {
                out.entry(name.clone()).or_insert(value);
            }
        }
    }
    out
}

/// A customer's meter balances by meter name (every page's `items` of
/// `GET /v1/customer-meters/?customer_id=…`): credited − consumed, as Polar computes it.
/// Items of another customer are left out.
pub fn meter_balances(meters: &[Json], customer_id: &str) -> BTreeMap<String, f64> {
    meters
        .iter()
        .filter(|m| text(m, "customer_id") == Some(customer_id))
        .filter_map(|m| {
            let name = m.get("meter").and_then(|meter| text(meter, "name"))?;
            let balance = m.get("balance").and_then(Json::as_f64)?;
            Some((name.to_string(), balance))
        })
        .collect()
}
