//! What an organization token reads of a customer's entitlements (docs/polar-api.md §16.4):
//! the seed's benefits (Feature Flags and their metadata), the grants a key's purchase made
//! (`GET /v1/benefit-grants/`) and the customer's state (`GET /v1/customers/{id}/state`).
//!
//! A key's own license-key grant is the key (its status); the other benefits of the same
//! purchase are [`FlagGrant`]s kept on the key: the same customer, member, subscription and
//! order, each granted or revoked on its own.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{KeyRec, Store};
use crate::json::{obj, opt_s, s, J};
use crate::seed::{check_metadata, SeedBenefit};
use crate::util::{fmt_ts, parse_uuid4};
use crate::webhooks::{
    derived_id, grant_items, key_state_grant, render_grant, GrantChange, GrantParts,
};

/// A benefit of the seed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BenefitRec {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    /// `license_keys` or `feature_flag`.
    pub(crate) kind: String,
    pub(crate) description: String,
    /// In JSONB's order ([`check_metadata`]).
    pub(crate) metadata: Vec<(String, J)>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) modified_at: Option<OffsetDateTime>,
    /// A `meter_credit` benefit's properties: its meter, units and rollover.
    pub(crate) credit: Option<MeterCredit>,
    /// A `license_keys` benefit's `properties.activations.enable_customer_admin`.
    pub(crate) enable_customer_admin: bool,
    /// A `license_keys` benefit's own activation limit, when the seed sets it (0: none).
    pub(crate) limit_activations: Option<i64>,
}

/// A `meter_credit` benefit's properties (docs/polar-api.md §16.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MeterCredit {
    pub(crate) meter_id: Uuid,
    pub(crate) units: i64,
    pub(crate) rollover: bool,
}

impl MeterCredit {
    /// The benefit's `properties`.
    pub(crate) fn render(&self) -> J {
        obj(vec![
            ("meter_id", s(&self.meter_id.to_string())),
            ("units", J::Int(i128::from(self.units))),
            ("rollover", J::Bool(self.rollover)),
        ])
    }
}

impl BenefitRec {
    pub(crate) fn from_seed(
        b: &SeedBenefit,
        organization_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<BenefitRec, String> {
        let id = parse_uuid4(&b.id, "id of a benefit")?;
        let kind = b.kind.clone().unwrap_or_else(|| "license_keys".to_string());
        let description = b
            .description
            .clone()
            .unwrap_or_else(|| match kind.as_str() {
                "feature_flag" => "Feature flag".to_string(),
                "meter_credit" => "Meter credit".to_string(),
                _ => "License key".to_string(),
            });
        #[cfg(feature = "billing")]
        let credit = match (&b.meter_id, b.units) {
            (Some(meter), Some(units)) if kind == "meter_credit" => Some(MeterCredit {
                meter_id: parse_uuid4(meter, "meter_id of a benefit")?,
                units,
                rollover: b.rollover,
            }),
            _ => None,
        };
        #[cfg(not(feature = "billing"))]
        let credit = None;
        Ok(BenefitRec {
            id,
            organization_id,
            metadata: check_metadata(&b.metadata, &format!("benefit {id}"))?,
            kind,
            description,
            created_at: now,
            modified_at: None,
            credit,
            enable_customer_admin: b.enable_customer_admin,
            limit_activations: b.limit_activations,
        })
    }

    pub(crate) fn is_license_keys(&self) -> bool {
        self.kind == "license_keys"
    }

    /// The `Benefit` object of a Feature Flag (`BenefitFeatureFlag`: `properties` `{}`) or a
    /// meter credit (`properties` its meter, units and rollover), as
    /// `benefit.updated` and a grant's `benefit` carry it.
    pub(crate) fn render(&self) -> J {
        obj(vec![
            ("id", s(&self.id.to_string())),
            ("created_at", s(&fmt_ts(self.created_at))),
            (
                "modified_at",
                opt_s(self.modified_at.map(fmt_ts).as_deref()),
            ),
            ("type", s(&self.kind)),
            ("description", s(&self.description)),
            ("selectable", J::Bool(true)),
            ("deletable", J::Bool(true)),
            ("is_deleted", J::Bool(false)),
            ("organization_id", s(&self.organization_id.to_string())),
            ("metadata", J::Obj(self.metadata.clone())),
            ("visibility", s("private")),
            (
                "properties",
                self.credit
                    .as_ref()
                    .map_or_else(|| J::Obj(Vec::new()), MeterCredit::render),
            ),
            ("visibility_configurable", J::Bool(true)),
        ])
    }
}

impl Store {
    /// A grant's `properties`: `{}` for a Feature Flag; a granted meter credit's
    /// `{last_credited_meter_id, last_credited_units, last_credited_at}` (it credits at each
    /// grant, so the last credit is the grant's time).
    #[cfg(feature = "billing")]
    fn grant_properties(&self, g: &FlagGrant) -> J {
        let credit = self.benefit(g.benefit_id).and_then(|b| b.credit);
        match (credit, g.granted_at) {
            (Some(c), Some(at)) => obj(vec![
                ("last_credited_meter_id", s(&c.meter_id.to_string())),
                ("last_credited_units", J::Int(i128::from(c.units))),
                ("last_credited_at", s(&fmt_ts(at))),
            ]),
            _ => J::Obj(Vec::new()),
        }
    }

    /// A grant's `properties`: `{}` (no meter credits without the `billing` feature).
    #[cfg(not(feature = "billing"))]
    fn grant_properties(&self, _: &FlagGrant) -> J {
        J::Obj(Vec::new())
    }
}

/// A grant of a Feature Flag benefit, made by a key's purchase.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FlagGrant {
    pub(crate) benefit_id: Uuid,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) modified_at: Option<OffsetDateTime>,
    pub(crate) granted_at: Option<OffsetDateTime>,
    pub(crate) revoked_at: Option<OffsetDateTime>,
}

impl FlagGrant {
    /// A grant made at `now`, revoked at once when the key's purchase is (a `revoked` key).
    pub(crate) fn new(benefit_id: Uuid, revoked: bool, now: OffsetDateTime) -> FlagGrant {
        FlagGrant {
            benefit_id,
            created_at: now,
            modified_at: None,
            granted_at: (!revoked).then_some(now),
            revoked_at: revoked.then_some(now),
        }
    }

    /// The grant's id: derived from the key's and the benefit's, the same on every run.
    pub(crate) fn id(&self, key_id: Uuid) -> Uuid {
        derived_id(&format!("benefit_grant:{}", self.benefit_id), key_id)
    }
}

/// The filters of `GET /v1/benefit-grants/` (each: any of these; empty: no filter).
#[derive(Debug, Clone, Default)]
pub(crate) struct GrantFilter {
    pub(crate) organization_ids: Vec<Uuid>,
    pub(crate) customer_ids: Vec<Uuid>,
    pub(crate) external_customer_ids: Vec<String>,
    pub(crate) is_granted: Option<bool>,
}

impl Store {
    /// The customer of `organization_id` whose `external_id` is `external_id`, if a key names it.
    pub(crate) fn customer_by_external_id(
        &self,
        organization_id: Uuid,
        external_id: &str,
    ) -> Option<Uuid> {
        self.keys
            .iter()
            .find(|k| {
                k.organization_id == organization_id
                    && k.customer.external_id.as_deref() == Some(external_id)
            })
            .map(|k| k.customer.id)
    }

    /// A benefit of the seed.
    pub(crate) fn benefit(&self, id: Uuid) -> Option<&BenefitRec> {
        self.benefits.iter().find(|b| b.id == id)
    }

    /// Whether a key of `organization_id` may be granted benefit `id` besides its own: a
    /// Feature Flag of the same organization.
    pub(crate) fn check_grantable(
        &self,
        id: Uuid,
        organization_id: Uuid,
        key: &str,
    ) -> Result<(), String> {
        match self.benefit(id) {
            None => Err(format!(
                "benefit {id} of key {key} is not among the seed's benefits"
            )),
            Some(b) if b.is_license_keys() => Err(format!(
                "benefit {id} of key {key} is a license_keys benefit: a key has one, its benefit_id"
            )),
            Some(b) if b.organization_id != organization_id => Err(format!(
                "benefit {id} of key {key} is another organization's"
            )),
            Some(_) => Ok(()),
        }
    }

    /// The grant objects (`BenefitGrant`) of `organization_id` that pass `filter`: each key's
    /// license-key grant, then the grants its purchase made besides, keys in the order they
    /// were made.
    pub(crate) fn benefit_grants(&self, organization_id: Uuid, filter: &GrantFilter) -> Vec<J> {
        let mut keys: Vec<&KeyRec> = self
            .keys_in(organization_id, &filter.organization_ids)
            .filter(|k| {
                filter.customer_ids.is_empty() || filter.customer_ids.contains(&k.customer.id)
            })
            .filter(|k| {
                filter.external_customer_ids.is_empty()
                    || k.customer
                        .external_id
                        .as_ref()
                        .is_some_and(|x| filter.external_customer_ids.contains(x))
            })
            .collect();
        keys.sort_by_key(|k| k.created_at);
        let mut items = Vec::new();
        for k in keys {
            let Some(view) = self.grant_view_of(k) else {
                continue;
            };
            let granted = view.status != "revoked";
            if filter.is_granted.is_none_or(|want| want == granted) {
                let at = k.modified_at.unwrap_or(k.created_at);
                items.push(render_grant(&view, &GrantChange::Created, at));
            }
            for g in &k.grants {
                if filter
                    .is_granted
                    .is_none_or(|want| want == g.granted_at.is_some())
                {
                    items.push(self.flag_grant(k, g));
                }
            }
        }
        items
    }

    /// The `BenefitGrant` of a Feature Flag grant of key `k`.
    pub(super) fn flag_grant(&self, k: &KeyRec, g: &FlagGrant) -> J {
        let benefit = self
            .benefit(g.benefit_id)
            .map_or(J::Null, BenefitRec::render);
        let view = self.grant_view_of(k);
        match view {
            Some(view) => obj(grant_items(
                &view,
                GrantParts {
                    id: g.id(k.id),
                    benefit_id: g.benefit_id,
                    created_at: g.created_at,
                    modified_at: g.modified_at.unwrap_or(g.created_at),
                    granted_at: g.granted_at,
                    revoked_at: g.revoked_at,
                    benefit,
                    properties: self.grant_properties(g),
                },
            )),
            None => J::Null,
        }
    }

    /// `GET /v1/customers/{id}/state` and `customer.state_changed`'s `data`: the customer
    /// `customer_id` of `organization_id` (`None`: no key names it), its active subscriptions
    /// (its keys' `active` or `trialing` ones), its granted benefits (each granted grant, the
    /// flags' `benefit_metadata` their values) and its active meters. `now`: the license-key
    /// grants' `modified_at`, as the webhooks always sent it.
    pub(crate) fn customer_state(
        &self,
        organization_id: Option<Uuid>,
        customer_id: Uuid,
        now: OffsetDateTime,
    ) -> Option<J> {
        let keys: Vec<&KeyRec> = self
            .keys
            .iter()
            .filter(|k| k.customer.id == customer_id)
            .filter(|k| organization_id.is_none_or(|o| o == k.organization_id))
            .collect();
        let first = self.grant_view_of(keys.first()?)?;
        let mut subscriptions: Vec<J> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        let mut granted = Vec::new();
        for k in &keys {
            if let Some((id, sub)) = &k.subscription {
                let status = field_str(sub, "status").unwrap_or("active");
                if matches!(status, "active" | "trialing") && !seen.contains(&id.as_str()) {
                    seen.push(id);
                    subscriptions.push(state_subscription(k, id, sub));
                }
            }
            if let Some(view) = self.grant_view_of(k) {
                if view.status != "revoked" {
                    granted.push(key_state_grant(&view, now));
                }
            }
            for g in k.grants.iter().filter(|g| g.granted_at.is_some()) {
                let metadata = self
                    .benefit(g.benefit_id)
                    .map_or_else(Vec::new, |b| b.metadata.clone());
                let kind = self
                    .benefit(g.benefit_id)
                    .map_or("feature_flag", |b| b.kind.as_str());
                let created = fmt_ts(g.created_at);
                granted.push(obj(vec![
                    ("id", s(&g.id(k.id).to_string())),
                    ("created_at", s(&created)),
                    (
                        "modified_at",
                        s(&fmt_ts(g.modified_at.unwrap_or(g.created_at))),
                    ),
                    ("granted_at", opt_s(g.granted_at.map(fmt_ts).as_deref())),
                    ("benefit_id", s(&g.benefit_id.to_string())),
                    ("benefit_type", s(kind)),
                    ("benefit_metadata", J::Obj(metadata)),
                    ("properties", self.grant_properties(g)),
                ]));
            }
        }
        #[cfg(feature = "billing")]
        let meters = match organization_id {
            Some(org) => self.customer_meters(org, customer_id),
            None => keys
                .first()
                .map(|k| self.customer_meters(k.organization_id, customer_id))
                .unwrap_or_default(),
        }
        .iter()
        .map(super::CustomerMeter::render_state)
        .collect();
        #[cfg(not(feature = "billing"))]
        let meters = Vec::new();
        crate::webhooks::render_customer_state(&first, subscriptions, granted, meters)
    }

    /// Sets a Feature Flag's metadata (checked as the seed's), its `modified_at` `now`:
    /// the benefit's new `Benefit` object and its organization. `Ok(None)`: no such benefit.
    pub(crate) fn set_benefit_metadata(
        &mut self,
        id: Uuid,
        metadata: &serde_json::Map<String, serde_json::Value>,
        now: OffsetDateTime,
    ) -> Result<Option<(Uuid, J)>, String> {
        let pairs = check_metadata(metadata, &format!("benefit {id}"))?;
        let Some(b) = self.benefits.iter_mut().find(|b| b.id == id) else {
            return Ok(None);
        };
        b.metadata = pairs;
        b.modified_at = Some(now);
        Ok(Some((b.organization_id, b.render())))
    }

    /// The `Benefit` object of a benefit of the seed.
    pub(crate) fn benefit_json(&self, id: Uuid) -> Option<J> {
        self.benefit(id).map(BenefitRec::render)
    }
}

pub(super) fn field_str<'a>(j: &'a J, name: &str) -> Option<&'a str> {
    match j {
        J::Obj(items) => items
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| match v {
                J::Str(text) => Some(text.as_str()),
                _ => None,
            }),
        _ => None,
    }
}

fn field(j: &J, name: &str) -> J {
    match j {
        J::Obj(items) => items
            .iter()
            .find(|(k, _)| k == name)
            .map_or(J::Null, |(_, v)| v.clone()),
        _ => J::Null,
    }
}

/// A `CustomerStateSubscription` of a key's subscription. The seed names its id, status,
/// period, cancellation and end; the rest is the emulator's: no price (`amount` 0, `usd`,
/// monthly), a product id derived from the subscription's, no metadata, no meters.
fn state_subscription(k: &KeyRec, id: &str, sub: &J) -> J {
    let product = Uuid::parse_str(id)
        .map(|u| derived_id("product", u).to_string())
        .unwrap_or_default();
    let created = fmt_ts(k.created_at);
    obj(vec![
        ("id", s(id)),
        ("created_at", s(&created)),
        ("modified_at", J::Null),
        ("metadata", J::Obj(Vec::new())),
        ("custom_field_data", J::Obj(Vec::new())),
        ("status", field(sub, "status")),
        ("amount", J::Int(0)),
        ("currency", s("usd")),
        ("recurring_interval", s("month")),
        ("current_period_start", field(sub, "current_period_start")),
        ("current_period_end", field(sub, "current_period_end")),
        ("trial_start", J::Null),
        ("trial_end", J::Null),
        ("cancel_at_period_end", field(sub, "cancel_at_period_end")),
        ("canceled_at", field(sub, "canceled_at")),
        ("started_at", s(&created)),
        ("ends_at", field(sub, "ends_at")),
        ("product_id", s(&product)),
        ("discount_id", J::Null),
        ("meters", J::Arr(Vec::new())),
    ])
}

impl Store {
    /// Grants (`granted`) or revokes the Feature Flag grant of `benefit_id` made by `key`'s
    /// purchase, its times `now`: the grant's `BenefitGrant` after, whether it changed, its
    /// organization and customer. `None`: no such key or no such grant of it.
    pub(crate) fn set_flag_grant(
        &mut self,
        key: &str,
        benefit_id: Uuid,
        granted: bool,
        now: OffsetDateTime,
    ) -> Option<FlagGrantChange> {
        let ki = self.find_any(key)?;
        #[cfg(feature = "billing")]
        let customer_id = self.keys[ki].customer.id;
        let k = &mut self.keys[ki];
        let g = k.grants.iter_mut().find(|g| g.benefit_id == benefit_id)?;
        let changed = g.granted_at.is_some() != granted;
        if changed {
            g.granted_at = granted.then_some(now);
            g.revoked_at = (!granted).then_some(now);
            g.modified_at = Some(now);
        }
        // A meter credit grant made again credits its units again; revoked, it takes them back.
        #[cfg(feature = "billing")]
        if changed && granted {
            self.credit_grant(customer_id, benefit_id, now);
        }
        #[cfg(feature = "billing")]
        if changed && !granted {
            self.uncredit_grant(customer_id, benefit_id, now);
        }
        let k = &self.keys[ki];
        let g = k.grants.iter().find(|g| g.benefit_id == benefit_id)?;
        Some(FlagGrantChange {
            grant: self.flag_grant(k, g),
            changed,
            organization_id: k.organization_id,
            customer_id: k.customer.id,
        })
    }
}

impl Store {
    /// A new cycle of every granted `meter_credit` grant of `key`'s purchase (Polar's
    /// `meter_credit` `cycle`: the meter reset, the rollover and the units credited again):
    /// each grant's `BenefitGrant` after, for its `benefit_grant.cycled`, and the organization.
    #[cfg(feature = "billing")]
    pub(crate) fn cycle_credit_grants(&mut self, key: &str, now: OffsetDateTime) -> Vec<(Uuid, J)> {
        let Some(ki) = self.find_any(key) else {
            return Vec::new();
        };
        let customer_id = self.keys[ki].customer.id;
        let credits: Vec<Uuid> = self.keys[ki]
            .grants
            .iter()
            .filter(|g| g.granted_at.is_some())
            .map(|g| g.benefit_id)
            .filter(|b| self.benefit(*b).is_some_and(|b| b.credit.is_some()))
            .collect();
        let mut out = Vec::new();
        for b in credits {
            self.cycle_credit(customer_id, b, now);
            let k = &mut self.keys[ki];
            if let Some(g) = k.grants.iter_mut().find(|g| g.benefit_id == b) {
                g.modified_at = Some(now);
            }
            let k = &self.keys[ki];
            if let Some(g) = k.grants.iter().find(|g| g.benefit_id == b) {
                out.push((k.organization_id, self.flag_grant(k, g)));
            }
        }
        out
    }
}

/// What [`Store::set_flag_grant`] did.
pub(crate) struct FlagGrantChange {
    pub(crate) grant: J,
    pub(crate) changed: bool,
    pub(crate) organization_id: Uuid,
    pub(crate) customer_id: Uuid,
}
