//! What an organization token reads of a customer's entitlements (docs/polar-api.md §16.4):
//! `GET /v1/benefit-grants/` (scope `benefits:read` or `:write`) and
//! `GET /v1/customers/{id}/state` (scope `customers:read` or `:write`), and the Feature Flag
//! metadata change a seller makes (`benefit.updated` only).

use uuid::Uuid;

use super::portal::{query_pairs, Paging};
use super::{Auth, Core, Exchange, Resp, Step, Time};
use crate::json::J;
use crate::state::{page_of, GrantFilter};
use crate::validate::{error_body, path_uuid_error, query_uuid_error, VErr};

/// The benefit grants' list route (FastAPI's path, slash included).
pub(super) const GRANTS_PATH: &str = "/v1/benefit-grants/";

/// pydantic's lax boolean of a query string (`bool_parsing` otherwise).
fn query_bool(name: &str, value: &str) -> Result<bool, Box<VErr>> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
        "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
        _ => Err(Box::new(VErr {
            typ: "bool_parsing",
            loc: vec![J::Str("query".into()), J::Str(name.into())],
            msg: "Input should be a valid boolean, unable to interpret input".into(),
            input: J::Str(value.to_string()),
            ctx: None,
        })),
    }
}

impl Core {
    /// The routes of this module (`None`: not one of them).
    pub(super) fn entitlement_route(&self, ex: &Exchange, auth: &Auth, now: Time) -> Option<Step> {
        let get = matches!(ex.method(), "GET" | "HEAD");
        if ex.path == GRANTS_PATH {
            if !get {
                return Some(Step::Done(super::method_not_allowed("GET")));
            }
            return Some(Step::Done(self.grants_list(ex, auth)));
        }
        let id = ex
            .path
            .strip_prefix("/v1/customers/")
            .and_then(|rest| rest.strip_suffix("/state"))?;
        let external = match id.strip_prefix("external/") {
            Some(x) if !x.contains('/') => Some(x),
            _ if id.contains('/') => return None,
            _ => None,
        };
        if !get {
            return Some(Step::Done(super::method_not_allowed("GET")));
        }
        Some(Step::Done(match external {
            Some(x) => self.customer_state_external(auth, x, now),
            None => self.customer_state_get(ex, auth, id, now),
        }))
    }

    /// `GET /v1/customers/external/{external_id}/state`: the same `CustomerState`, the
    /// customer named by its `external_id`; 404 `Not found` for any other.
    fn customer_state_external(&self, auth: &Auth, external_id: &str, now: Time) -> Resp {
        let organization_id = match auth.organization_with(&["customers:read", "customers:write"]) {
            Ok(org) => org,
            Err(r) => return r,
        };
        let state = self
            .store
            .customer_by_external_id(organization_id, external_id)
            .and_then(|id| {
                self.store
                    .customer_state(Some(organization_id), id, self.clock(now))
            });
        match state {
            Some(state) => Resp::json(200, &state),
            None => Resp::error(404, "ResourceNotFound", "Not found"),
        }
    }

    /// `GET /v1/benefit-grants/`: `ListResource[BenefitGrant]` of the token's organization,
    /// filtered by `organization_id`, `customer_id`, `external_customer_id` (each repeatable)
    /// and `is_granted`, in pages as `GET /v1/license-keys/`.
    fn grants_list(&self, ex: &Exchange, auth: &Auth) -> Resp {
        let organization_id = match auth.organization_with(&["benefits:read", "benefits:write"]) {
            Ok(org) => org,
            Err(r) => return r,
        };
        let mut filter = GrantFilter::default();
        let mut paging = Paging::default();
        let mut errors = Vec::new();
        for (name, value) in query_pairs(&ex.head.target) {
            match name.as_str() {
                "organization_id" => match query_uuid_error("organization_id", &value) {
                    Some(e) => errors.push(e),
                    None => filter.organization_ids.extend(Uuid::parse_str(&value).ok()),
                },
                "customer_id" => match query_uuid_error("customer_id", &value) {
                    Some(e) => errors.push(e),
                    None => filter.customer_ids.extend(Uuid::parse_str(&value).ok()),
                },
                "external_customer_id" => filter.external_customer_ids.push(value),
                // A single value: the last one counts.
                "is_granted" => match query_bool("is_granted", &value) {
                    Ok(b) => filter.is_granted = Some(b),
                    Err(e) => errors.push(*e),
                },
                n if paging.take(n, &value, &mut errors) => {}
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Resp::json(422, &error_body(&errors));
        }
        let items = self.store.benefit_grants(organization_id, &filter);
        Resp::json(200, &page_of(items, paging.page, paging.limit()))
    }

    /// `GET /v1/customers/{id}/state`: the `CustomerState` of a customer of the token's
    /// organization; 404 `Not found` for any other id.
    fn customer_state_get(&self, ex: &Exchange, auth: &Auth, id: &str, now: Time) -> Resp {
        let organization_id = match auth.organization_with(&["customers:read", "customers:write"]) {
            Ok(org) => org,
            Err(r) => return r,
        };
        if let Some(e) = path_uuid_error("id", id) {
            return Resp::json(422, &error_body(&[e]));
        }
        let state = Uuid::parse_str(id).ok().and_then(|id| {
            self.store
                .customer_state(Some(organization_id), id, self.clock(now))
        });
        let _ = ex;
        match state {
            Some(state) => Resp::json(200, &state),
            None => Resp::error(404, "ResourceNotFound", "Not found"),
        }
    }

    /// Sets a Feature Flag's `metadata` as a seller edits it in Polar (checked as the seed's:
    /// at most 50 keys, …) and sends `benefit.updated` (`data`: the `Benefit`), and nothing
    /// else: no grant changes (docs/polar-api.md §16.4). Returns the benefit's new `Benefit`
    /// object; `Ok(None)`: no such benefit.
    pub fn set_benefit_metadata(
        &mut self,
        id: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
        now: Time,
    ) -> Result<Option<serde_json::Value>, String> {
        let id = crate::util::parse_uuid4(id, "the benefit id")?;
        let wall = self.clock(now);
        let Some((organization_id, benefit)) =
            self.store.set_benefit_metadata(id, metadata, wall)?
        else {
            return Ok(None);
        };
        let store = &mut self.store;
        self.webhooks.emit(
            organization_id,
            "benefit.updated",
            &benefit,
            wall,
            now.monotonic,
            || store.next_id(),
        );
        Ok(Some(benefit.to_value()))
    }

    /// The `Benefit` object of a benefit of the seed (`None`: unknown).
    pub fn benefit(&self, id: &str) -> Option<serde_json::Value> {
        let id = Uuid::parse_str(id).ok()?;
        self.store.benefit_json(id).map(|j| j.to_value())
    }

    /// Revokes (`granted` false) or grants again the Feature Flag grant of `benefit_id` made by
    /// `key`'s purchase, as Polar's grant service does: `benefit_grant.revoked` or
    /// `benefit_grant.created` (`data`: the grant), then `customer.state_changed`; nothing when
    /// the grant is already so. Returns the grant's `BenefitGrant`; `Ok(None)`: no such key or
    /// no grant of that benefit from it.
    pub fn set_flag_grant(
        &mut self,
        key: &str,
        benefit_id: &str,
        granted: bool,
        now: Time,
    ) -> Result<Option<serde_json::Value>, String> {
        let benefit_id = crate::util::parse_uuid4(benefit_id, "the benefit id")?;
        let wall = self.clock(now);
        let Some(change) = self.store.set_flag_grant(key, benefit_id, granted, wall) else {
            return Ok(None);
        };
        if change.changed {
            let kind = if granted {
                "benefit_grant.created"
            } else {
                "benefit_grant.revoked"
            };
            let state = self.store.customer_state(None, change.customer_id, wall);
            let store = &mut self.store;
            self.webhooks.emit(
                change.organization_id,
                kind,
                &change.grant,
                wall,
                now.monotonic,
                || store.next_id(),
            );
            if let Some(state) = state {
                let store = &mut self.store;
                self.webhooks.emit(
                    change.organization_id,
                    "customer.state_changed",
                    &state,
                    wall,
                    now.monotonic,
                    || store.next_id(),
                );
            }
        }
        Ok(Some(change.grant.to_value()))
    }
}
