//! The emulator's data (keys, activations, tokens), the license-key service
//! logic of `docs/polar-api.md` §5, and the response bodies of its §4.

use time::OffsetDateTime;
use uuid::Uuid;

use super::ids::Ids;
use super::json::{obj, opt_s, py_dict_eq, s, J};
use super::seed::{Seed, SeedKey};
use super::util::{fmt_ts, parse_ts, parse_uuid4};
use super::validate::{ActivateReq, DeactivateReq, ValidateReq};
use super::KeyUpdate;

// The organization's benefits as its token lists them (issue #78).
mod catalog;
mod customers;
mod entitlements;
#[cfg(feature = "billing")]
pub(crate) mod lifecycle;
#[cfg(feature = "billing")]
mod meters;
#[cfg(not(target_arch = "wasm32"))]
mod persist;
#[cfg(feature = "billing")]
mod quantities;
mod render;
mod views;
pub(crate) use crate::webhooks::GrantView;
pub(crate) use catalog::Listed;
pub(crate) use customers::{page_of, CustomerRef, RotateError, KEY_NOT_FOUND};
pub(crate) use entitlements::GrantFilter;
use entitlements::{field_str, BenefitRec, FlagGrant};
#[cfg(feature = "billing")]
pub(crate) use meters::{CustomerMeter, NewEvent, Who};
#[cfg(feature = "billing")]
pub(crate) use quantities::{Interval, QuantityQuery};
use render::{
    display_key, render_activation, render_customer, render_key, render_key_fields, render_read,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Granted,
    Revoked,
    Disabled,
}

impl Status {
    fn parse(text: &str) -> Option<Status> {
        match text {
            "granted" => Some(Status::Granted),
            "revoked" => Some(Status::Revoked),
            "disabled" => Some(Status::Disabled),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Status::Granted => "granted",
            Status::Revoked => "revoked",
            Status::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Customer {
    id: Uuid,
    email: Option<String>,
    /// The seller's id for the customer (`external_id`).
    external_id: Option<String>,
    created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct KeyRec {
    id: Uuid,
    organization_id: Uuid,
    key: String,
    status: Status,
    limit_activations: Option<i64>,
    limit_usage: Option<i64>,
    usage: i64,
    validations: i64,
    last_validated_at: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    modified_at: Option<OffsetDateTime>,
    benefit_id: Uuid,
    customer: Customer,
    /// 2027-01's `member`, `subscription` and `order`: each its id and its object.
    member: Option<(String, J)>,
    subscription: Option<(String, J)>,
    order: Option<(String, J)>,
    /// The other benefits the key's purchase granted (Feature Flags), one grant each.
    grants: Vec<FlagGrant>,
    /// The prefix, activation limit and usage limit the key was made with: its benefit's
    /// `properties` when it is the benefit's first key (a key's later changes are not the
    /// benefit's).
    made_with: (Option<String>, Option<i64>, Option<i64>),
}

/// The prefix of a key string (`POLAR` of `POLAR-…`), as a benefit's `prefix`.
/// The prefix a generated key was made with (polar-license-api.md: a benefit's `prefix`,
/// stripped and upper-cased, `-`, an upper-case UUID4): what stands before a trailing `-UUID`.
/// `None` for a bare UUID (a benefit with no prefix) and for a key of no generated shape.
fn key_prefix(key: &str) -> Option<String> {
    let (prefix, tail) = key
        .len()
        .checked_sub(37)
        .and_then(|at| key.split_at_checked(at))?;
    let uuid = tail.strip_prefix('-')?;
    Uuid::parse_str(uuid).ok()?;
    Some(prefix.trim().to_ascii_uppercase()).filter(|p| !p.is_empty())
}

/// Whether an answer carries the fields API version 2027-01 added (docs/polar-api.md §13).
pub(crate) fn extended(version: &str) -> bool {
    version >= "2027-01"
}

#[derive(Debug, Clone)]
pub(crate) struct Activation {
    id: Uuid,
    license_key_id: Uuid,
    label: String,
    conditions: Vec<(String, J)>,
    meta: Vec<(String, J)>,
    created_at: OffsetDateTime,
    modified_at: Option<OffsetDateTime>,
    deleted_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub token: String,
    pub organization_id: Uuid,
    pub scopes: Vec<String>,
}

/// Everything the emulator stores.
#[derive(Debug)]
pub(crate) struct Store {
    default_org: Option<Uuid>,
    keys: Vec<KeyRec>,
    activations: Vec<Activation>,
    /// The seed's benefits (license-key settings, Feature Flags and their metadata).
    benefits: Vec<BenefitRec>,
    /// Meters, credits and the events' sums (docs/polar-api.md §16.5).
    #[cfg(feature = "billing")]
    usage: meters::Usage,
    pub tokens: Vec<Token>,
    /// Where new ids come from.
    ids: Ids,
}

/// A license route's call: the token's organization that limits the lookup (`scope`; `None`
/// on the public routes), the emulator's time, and the API version to answer in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) scope: Option<Uuid>,
    pub(crate) now: OffsetDateTime,
    pub(crate) version: &'a str,
}

/// A service failure, rendered as Polar's `{"error","detail"}` bodies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SvcError {
    NotFound(String),
    NotPermitted(String),
    BadRequest(String),
    /// A database-level failure (int32 overflow, non-finite JSON): a plain 500.
    Internal,
}

/// A successful service answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SvcOk {
    Json(J),
    NoContent,
}

const NOT_FOUND: &str = "Not found";

/// Why a key cannot be validated or activated ([`Store::usable_key`]).
enum Unusable {
    /// Not in the organization, or outside the token's scope.
    Missing,
    /// Revoked or disabled.
    Inactive,
    Expired,
}

impl Store {
    /// The store of a seed, its keys created at `now` (UTC, microseconds), its ids from `ids`.
    pub(crate) fn from_seed(seed: &Seed, ids: Ids, now: OffsetDateTime) -> Result<Store, String> {
        let seed = seed.normalized()?;
        let org = parse_uuid4(&seed.organization_id, "organization_id")?;
        let mut store = Store {
            default_org: Some(org),
            keys: Vec::new(),
            activations: Vec::new(),
            benefits: Vec::new(),
            #[cfg(feature = "billing")]
            usage: meters::Usage::default(),
            tokens: Vec::new(),
            ids,
        };
        #[cfg(feature = "billing")]
        for m in &seed.meters {
            store
                .usage
                .meters
                .push(meters::MeterRec::from_seed(m, org, now)?);
        }
        for b in &seed.benefits {
            store.benefits.push(BenefitRec::from_seed(b, org, now)?);
        }
        for key in &seed.license_keys {
            store.add_key(key, now)?;
        }
        for token in &seed.access_tokens {
            let organization_id = match &token.organization_id {
                Some(o) => parse_uuid4(o, "organization_id of an access token")?,
                None => org,
            };
            store.tokens.push(Token {
                token: token.token.clone(),
                organization_id,
                scopes: token.scopes.clone(),
            });
        }
        Ok(store)
    }

    /// Adds a key, created at `now`.
    pub(crate) fn add_key(&mut self, key: &SeedKey, now: OffsetDateTime) -> Result<(), String> {
        let key = key.normalized()?;
        let organization_id = match &key.organization_id {
            Some(o) => parse_uuid4(o, "organization_id")?,
            None => self
                .default_org
                .ok_or_else(|| "no organization for the key".to_string())?,
        };
        if self
            .keys
            .iter()
            .any(|k| k.key == key.key && k.organization_id == organization_id)
        {
            return Err(format!(
                "key {} already exists in organization {organization_id}",
                key.key
            ));
        }
        let status = match &key.status {
            Some(st) => Status::parse(st).ok_or_else(|| format!("unknown status `{st}`"))?,
            None => Status::Granted,
        };
        let expires_at = key.expires_at.as_deref().map(parse_ts).transpose()?;
        let benefit_id = match &key.benefit_id {
            Some(b) => parse_uuid4(b, "benefit_id")?,
            None => self.ids.next_id(),
        };
        let customer_id = match &key.customer_id {
            Some(c) => parse_uuid4(c, "customer_id")?,
            None => self.ids.next_id(),
        };
        let mut grants = Vec::with_capacity(key.benefits.len());
        for b in &key.benefits {
            let b = parse_uuid4(b, "a benefit of the key")?;
            self.check_grantable(b, organization_id, &key.key)?;
            grants.push(FlagGrant::new(b, status == Status::Revoked, now));
        }
        if self
            .benefit(benefit_id)
            .is_some_and(|b| !b.is_license_keys())
        {
            return Err(format!(
                "benefit_id {benefit_id} of key {} names a benefit that is not of type license_keys",
                key.key
            ));
        }
        let (member, subscription, order) = extras(&key, now, &mut self.ids)?;
        // A customer shared by several keys keeps one creation time and one external id.
        let earlier = self.keys.iter().find(|k| k.customer.id == customer_id);
        let customer_created = earlier.map(|k| k.customer.created_at).unwrap_or(now);
        let external_id = match (earlier, &key.customer_external_id) {
            (Some(k), Some(given)) if k.customer.external_id.as_ref() != Some(given) => {
                return Err(format!(
                    "key {} gives customer {customer_id} another external id than an earlier key",
                    key.key
                ))
            }
            (Some(k), _) => k.customer.external_id.clone(),
            (None, given) => given.clone(),
        };
        if let Some(x) = &external_id {
            if self
                .keys
                .iter()
                .any(|k| k.customer.id != customer_id && k.customer.external_id.as_ref() == Some(x))
            {
                return Err(format!(
                    "the customer external id {x} of key {} is another customer's",
                    key.key
                ));
            }
        }
        #[cfg(feature = "billing")]
        for g in grants.iter().filter(|g| g.granted_at.is_some()) {
            self.credit_grant(customer_id, g.benefit_id, now);
        }
        let id = self.ids.next_id();
        self.keys.push(KeyRec {
            id,
            organization_id,
            key: key.key.clone(),
            status,
            limit_activations: key.limit_activations,
            limit_usage: key.limit_usage,
            usage: key.usage,
            validations: 0,
            last_validated_at: None,
            expires_at,
            created_at: now,
            modified_at: None,
            benefit_id,
            customer: Customer {
                id: customer_id,
                email: key.customer_email.clone(),
                external_id,
                created_at: customer_created,
            },
            member,
            subscription,
            order,
            grants,
            made_with: (key_prefix(&key.key), key.limit_activations, key.limit_usage),
        });
        Ok(())
    }

    fn find_key(&self, organization_id: Uuid, key: &str, scope: Option<Uuid>) -> Option<usize> {
        if scope.is_some_and(|org| org != organization_id) {
            return None;
        }
        self.keys
            .iter()
            .position(|k| k.organization_id == organization_id && k.key == key)
    }

    /// The index of `key` for a validate or an activate at `now` (docs/polar-api.md §5.1,
    /// §5.2): found in the organization (and the token's `scope`), granted, not expired. Each
    /// route words the refusal its own way.
    fn usable_key(
        &self,
        organization_id: Uuid,
        key: &str,
        scope: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<usize, Unusable> {
        let ki = self
            .find_key(organization_id, key, scope)
            .ok_or(Unusable::Missing)?;
        let k = &self.keys[ki];
        if k.status != Status::Granted {
            return Err(Unusable::Inactive);
        }
        if k.expires_at.is_some_and(|e| now >= e) {
            return Err(Unusable::Expired);
        }
        Ok(ki)
    }

    fn find_any(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|k| k.key == key)
    }

    fn live_activation(&self, key_id: Uuid, activation_id: Uuid) -> Option<usize> {
        self.activations.iter().position(|a| {
            a.id == activation_id && a.license_key_id == key_id && a.deleted_at.is_none()
        })
    }

    /// `POST …/validate` (docs/polar-api.md §5.1).
    pub(crate) fn validate(&mut self, req: &ValidateReq, call: Call) -> Result<SvcOk, SvcError> {
        let ki = self
            .usable_key(req.organization_id, &req.key, call.scope, call.now)
            .map_err(|unusable| {
                SvcError::NotFound(
                    match unusable {
                        Unusable::Missing => NOT_FOUND,
                        Unusable::Inactive => "License key is no longer active.",
                        Unusable::Expired => "License key has expired.",
                    }
                    .to_string(),
                )
            })?;
        let k = &self.keys[ki];
        let activation = match req.activation_id {
            Some(aid) => {
                let ai = self
                    .live_activation(k.id, aid)
                    .ok_or_else(|| SvcError::NotFound(NOT_FOUND.to_string()))?;
                let a = &self.activations[ai];
                if !a.conditions.is_empty() && !py_dict_eq(&a.conditions, &req.conditions) {
                    return Err(SvcError::NotFound(
                        "License key does not match required conditions".to_string(),
                    ));
                }
                Some(ai)
            }
            None => None,
        };
        if req.benefit_id.is_some_and(|b| b != k.benefit_id) {
            return Err(SvcError::NotFound(
                "License key does not match given benefit.".to_string(),
            ));
        }
        if req.customer_id.is_some_and(|c| c != k.customer.id) {
            return Err(SvcError::NotFound(
                "License key does not match given user.".to_string(),
            ));
        }
        let increment = req.increment_usage.unwrap_or(0);
        if increment > 0 {
            // Python truthiness: a limit of 0 is no limit.
            if let Some(limit) = k.limit_usage.filter(|l| *l != 0) {
                let remaining = i128::from(limit) - i128::from(k.usage);
                if increment > remaining {
                    return Err(SvcError::BadRequest(format!(
                        "License key only has {remaining} more usages."
                    )));
                }
            }
        }
        let new_usage = i128::from(k.usage) + increment.max(0);
        let new_validations = i128::from(k.validations) + 1;
        let int32 = i128::from(i32::MIN)..=i128::from(i32::MAX);
        if !int32.contains(&new_usage) || !int32.contains(&new_validations) {
            return Err(SvcError::Internal);
        }
        let previous_modified = k.modified_at;
        let k = &mut self.keys[ki];
        k.usage = new_usage as i64;
        k.validations = new_validations as i64;
        k.last_validated_at = Some(call.now);
        // The ORM bumps modified_at at flush, after the response was serialized.
        let mut body = render_key_fields(k, previous_modified, extended(call.version));
        k.modified_at = Some(call.now);
        let activation = match activation {
            Some(ai) => render_activation(&self.activations[ai]),
            None => J::Null,
        };
        body.push(("activation".to_string(), activation));
        Ok(SvcOk::Json(J::Obj(body)))
    }

    /// `POST …/activate` (docs/polar-api.md §5.2).
    pub(crate) fn activate(&mut self, req: &ActivateReq, call: Call) -> Result<SvcOk, SvcError> {
        let ki = self
            .usable_key(req.organization_id, &req.key, call.scope, call.now)
            .map_err(|unusable| match unusable {
                Unusable::Missing => SvcError::NotFound(NOT_FOUND.to_string()),
                Unusable::Inactive => SvcError::NotPermitted(
                    "License key is no longer active. This license key can not be activated."
                        .to_string(),
                ),
                Unusable::Expired => SvcError::NotPermitted("License key has expired.".to_string()),
            })?;
        let k = &self.keys[ki];
        let limit = match k.limit_activations {
            Some(l) if l != 0 => l,
            _ => {
                return Err(SvcError::NotPermitted(
                "This license key does not support activations. Use the /validate endpoint instead to check license validity."
                    .to_string(),
            ))
            }
        };
        let live = self
            .activations
            .iter()
            .filter(|a| a.license_key_id == k.id && a.deleted_at.is_none())
            .count() as i64;
        if live >= limit {
            return Err(SvcError::NotPermitted(
                "License key activation limit already reached".to_string(),
            ));
        }
        // PostgreSQL's JSONB cannot store NaN or Infinity: the insert fails.
        if J::Obj(req.conditions.clone()).to_json().is_err()
            || J::Obj(req.meta.clone()).to_json().is_err()
        {
            return Err(SvcError::Internal);
        }
        let activation = Activation {
            id: self.ids.next_id(),
            license_key_id: k.id,
            label: req.label.clone(),
            conditions: req.conditions.clone(),
            meta: req.meta.clone(),
            created_at: call.now,
            modified_at: None,
            deleted_at: None,
        };
        let mut body = match render_activation(&activation) {
            J::Obj(items) => items,
            _ => Vec::new(),
        };
        // 2027-01 names it `LicenseKeyActivationCreated`, its key a `GrantedLicenseKey`.
        let license_key = J::Obj(render_key_fields(k, k.modified_at, extended(call.version)));
        body.push(("license_key".to_string(), license_key));
        self.activations.push(activation);
        Ok(SvcOk::Json(J::Obj(body)))
    }

    /// `POST …/deactivate` (docs/polar-api.md §5.3): no status or expiry check.
    pub(crate) fn deactivate(
        &mut self,
        req: &DeactivateReq,
        call: Call,
    ) -> Result<SvcOk, SvcError> {
        let ki = self
            .find_key(req.organization_id, &req.key, call.scope)
            .ok_or_else(|| SvcError::NotFound(NOT_FOUND.to_string()))?;
        let key_id = self.keys[ki].id;
        let ai = self
            .live_activation(key_id, req.activation_id)
            .ok_or_else(|| SvcError::NotFound(NOT_FOUND.to_string()))?;
        let a = &mut self.activations[ai];
        a.deleted_at = Some(call.now);
        a.modified_at = Some(call.now);
        Ok(SvcOk::NoContent)
    }

    /// A new random id.
    pub(crate) fn next_id(&mut self) -> Uuid {
        self.ids.next_id()
    }

    /// What a key's webhooks say of it (first match in any organization).
    pub(crate) fn grant_view(&self, key: &str) -> Option<GrantView> {
        self.grant_view_of(&self.keys[self.find_any(key)?])
    }

    /// What a key's webhooks say of it.
    pub(crate) fn grant_view_of(&self, k: &KeyRec) -> Option<GrantView> {
        let member = k.member.as_ref().map(|(id, j)| {
            let field = |name: &str| field_str(j, name).map(str::to_string);
            (id.clone(), field("email"), field("external_id"))
        });
        Some(GrantView {
            key_id: k.id,
            organization_id: k.organization_id,
            benefit_id: k.benefit_id,
            customer_id: k.customer.id,
            customer: render_customer(k),
            key_created_at: k.created_at,
            status: k.status.as_str(),
            limit_activations: k.limit_activations,
            limit_usage: k.limit_usage,
            usage: k.usage,
            expires_at: k.expires_at,
            display_key: display_key(&k.key),
            prefix: key_prefix(&k.key),
            subscription_id: k.subscription.as_ref().map(|(id, _)| id.clone()),
            order_id: k.order.as_ref().map(|(id, _)| id.clone()),
            member,
            benefit: self.license_benefit_props(k),
        })
    }

    /// The `properties` of key `k`'s license-key benefit: the limits and prefix of the first
    /// key made of that benefit, as it was made (a later `PATCH` of a key changes the key, not
    /// its benefit), and the seed benefit's `enable_customer_admin`.
    fn license_benefit_props(&self, k: &KeyRec) -> crate::webhooks::LicenseBenefitProps {
        let first = self
            .keys
            .iter()
            .find(|o| o.benefit_id == k.benefit_id && o.organization_id == k.organization_id)
            .unwrap_or(k);
        crate::webhooks::LicenseBenefitProps {
            prefix: first.made_with.0.clone(),
            // The seed benefit's own limit when it sets one (0: none), else its first key's.
            limit_activations: match self.benefit(k.benefit_id).and_then(|b| b.limit_activations) {
                Some(0) => None,
                Some(limit) => Some(limit),
                None => first.made_with.1,
            },
            limit_usage: first.made_with.2,
            enable_customer_admin: self
                .benefit(k.benefit_id)
                .is_some_and(|b| b.enable_customer_admin),
        }
    }

    /// A new billing period for a key (Polar's `benefit_grant.cycled`): whether the key is
    /// known (`false`: unknown key). The key itself is unchanged: Polar's license-key
    /// benefit's `cycle` returns the grant's properties as they are, `usage` is not reset
    /// (docs/polar-api.md §16.6).
    pub(crate) fn cycle_key(&self, key: &str) -> bool {
        self.find_any(key).is_some()
    }

    /// The keys of `organization_id` (the token's), in the order they were made: none unless
    /// it is one of `organization_ids` when that filter is given.
    fn keys_in<'a>(
        &'a self,
        organization_id: Uuid,
        organization_ids: &'a [Uuid],
    ) -> impl Iterator<Item = &'a KeyRec> + 'a {
        self.keys.iter().filter(move |k| {
            k.organization_id == organization_id
                && (organization_ids.is_empty() || organization_ids.contains(&k.organization_id))
        })
    }

    /// `GET /v1/license-keys/` (docs/polar-api.md §14): `ListResource[LicenseKeyRead]` of the
    /// keys of `organization_id` (the token's) that match the filters (none given: all), in
    /// the order they were made, page `page` (from 1) of `limit` items, each with its full key.
    pub(crate) fn list_keys(
        &self,
        organization_id: Uuid,
        filter: &KeyFilter,
        page: u64,
        limit: u64,
        version: &str,
    ) -> J {
        let matching: Vec<&KeyRec> = self
            .keys_in(organization_id, &filter.organization_ids)
            .filter(|k| filter.benefit_ids.is_empty() || filter.benefit_ids.contains(&k.benefit_id))
            .filter(|k| {
                filter.statuses.is_empty() || filter.statuses.iter().any(|s| s == k.status.as_str())
            })
            .collect();
        let items = matching
            .iter()
            .map(|k| J::Obj(render_read(k, extended(version))));
        page_of(items, page, limit)
    }

    /// `GET /v1/license-keys/{id}`: `LicenseKeyWithActivations` of a key of `organization_id`
    /// (its live activations), `None` for a key of no such id in that organization.
    pub(crate) fn key_by_id(&self, organization_id: Uuid, id: Uuid, version: &str) -> Option<J> {
        let k = self
            .keys
            .iter()
            .find(|k| k.id == id && k.organization_id == organization_id)?;
        let mut fields = render_read(k, extended(version));
        let activations = self
            .activations
            .iter()
            .filter(|a| a.license_key_id == k.id && a.deleted_at.is_none())
            .map(render_activation)
            .collect();
        fields.push(("activations".to_string(), J::Arr(activations)));
        Some(J::Obj(fields))
    }

    /// The `LicenseKeyRead` body of a key (first match in any organization).
    pub(crate) fn key_json(&self, key: &str) -> Option<J> {
        self.find_any(key).map(|i| render_key(&self.keys[i]))
    }

    /// Live activations of a key, including their stored conditions.
    pub(crate) fn activations_json(&self, key: &str) -> Vec<J> {
        let Some(ki) = self.find_any(key) else {
            return Vec::new();
        };
        let key_id = self.keys[ki].id;
        self.activations
            .iter()
            .filter(|a| a.license_key_id == key_id && a.deleted_at.is_none())
            .map(|a| {
                obj(vec![
                    ("id", s(&a.id.to_string())),
                    ("license_key_id", s(&a.license_key_id.to_string())),
                    ("label", s(&a.label)),
                    ("meta", J::Obj(a.meta.clone())),
                    ("conditions", J::Obj(a.conditions.clone())),
                    ("created_at", s(&fmt_ts(a.created_at))),
                    ("modified_at", opt_s(a.modified_at.map(fmt_ts).as_deref())),
                ])
            })
            .collect()
    }

    /// A key rotated (`POST /v1/license-keys/{id}/rotate`, or the customer portal): the key
    /// gets a new string (its prefix kept) and the old one answers "Not found" at once, like
    /// an unknown key. Everything else (activations, usage, status) stays. `None`: unknown.
    /// `now`: the key's new `modified_at`.
    pub(crate) fn rotate_key(&mut self, key: &str, now: OffsetDateTime) -> Option<String> {
        let ki = self.find_any(key)?;
        let fresh = self.ids.next_id().to_string().to_ascii_uppercase();
        // The benefit's current prefix (its first key's), imported keys too: none, a bare UUID.
        let rotated = match self.license_benefit_props(&self.keys[ki]).prefix {
            Some(prefix) => format!("{prefix}-{fresh}"),
            None => fresh,
        };
        let k = &mut self.keys[ki];
        k.key.clone_from(&rotated);
        k.modified_at = Some(now);
        Some(rotated)
    }

    /// `PATCH /v1/license-keys/{id}`-like update, the key's `modified_at` set to `now`.
    /// `Ok(None)`: unknown key.
    pub(crate) fn update_key(
        &mut self,
        key: &str,
        update: &KeyUpdate,
        now: OffsetDateTime,
    ) -> Result<Option<J>, String> {
        let Some(ki) = self.find_any(key) else {
            return Ok(None);
        };
        let status = match &update.status {
            Some(st) => Some(
                Status::parse(st)
                    .ok_or_else(|| format!("status `{st}` is not granted, revoked or disabled"))?,
            ),
            None => None,
        };
        let int32 = |field: &str, v: i64| -> Result<i64, String> {
            i32::try_from(v)
                .map(i64::from)
                .map_err(|_| format!("{field} {v} is outside the int32 range"))
        };
        let usage = update.usage.map(|u| int32("usage", u)).transpose()?;
        let limit_activations = match update.limit_activations {
            Some(Some(v)) => Some(Some(int32("limit_activations", v)?)),
            other => other,
        };
        let limit_usage = match update.limit_usage {
            Some(Some(v)) => Some(Some(int32("limit_usage", v)?)),
            other => other,
        };
        let expires_at = match &update.expires_at {
            Some(Some(t)) => Some(Some(parse_ts(t)?)),
            Some(None) => Some(None),
            None => None,
        };
        let k = &mut self.keys[ki];
        if let Some(st) = status {
            k.status = st;
        }
        if let Some(u) = usage {
            k.usage = u;
        }
        if let Some(l) = limit_activations {
            k.limit_activations = l;
        }
        if let Some(l) = limit_usage {
            k.limit_usage = l;
        }
        if let Some(e) = expires_at {
            k.expires_at = e;
        }
        k.modified_at = Some(now);
        Ok(Some(render_key(k)))
    }
}

/// 2027-01's objects of a seed key, ids generated and times normalized.
type Extras = (
    Option<(String, J)>,
    Option<(String, J)>,
    Option<(String, J)>,
);

fn extras(key: &SeedKey, now: OffsetDateTime, ids: &mut Ids) -> Result<Extras, String> {
    let mut id =
        |given: &Option<String>| given.clone().unwrap_or_else(|| ids.next_id().to_string());
    let ts = |t: &Option<String>, or: OffsetDateTime| -> Result<OffsetDateTime, String> {
        t.as_deref()
            .map(parse_ts)
            .transpose()
            .map(|t| t.unwrap_or(or))
    };
    let member = key.member.as_ref().map(|m| {
        let mid = id(&m.id);
        let j = obj(vec![
            ("id", s(&mid)),
            ("email", opt_s(m.email.as_deref())),
            ("external_id", opt_s(m.external_id.as_deref())),
        ]);
        (mid, j)
    });
    let subscription = match &key.subscription {
        None => None,
        Some(sub) => {
            let sid = id(&sub.id);
            let start = ts(&sub.current_period_start, now)?;
            let end = ts(&sub.current_period_end, start + time::Duration::days(30))?;
            let ends_at = sub.ends_at.as_deref().map(parse_ts).transpose()?;
            let j = obj(vec![
                ("id", s(&sid)),
                ("status", s(sub.status.as_deref().unwrap_or("active"))),
                ("current_period_start", s(&fmt_ts(start))),
                ("current_period_end", s(&fmt_ts(end))),
                ("cancel_at_period_end", J::Bool(sub.cancel_at_period_end)),
                ("ends_at", opt_s(ends_at.map(fmt_ts).as_deref())),
            ]);
            Some((sid, j))
        }
    };
    let order = match &key.order {
        None => None,
        Some(o) => {
            let oid = id(&o.id);
            let status = o.status.as_deref().unwrap_or("paid");
            let paid = o
                .paid
                .unwrap_or(matches!(status, "paid" | "partially_refunded"));
            let j = obj(vec![
                ("id", s(&oid)),
                ("created_at", s(&fmt_ts(ts(&o.created_at, now)?))),
                ("status", s(status)),
                ("paid", J::Bool(paid)),
            ]);
            Some((oid, j))
        }
    };
    Ok((member, subscription, order))
}

/// The filters of `GET /v1/license-keys` (each: any of these; empty: no filter).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyFilter {
    pub(crate) organization_ids: Vec<Uuid>,
    pub(crate) benefit_ids: Vec<Uuid>,
    pub(crate) statuses: Vec<String>,
}
