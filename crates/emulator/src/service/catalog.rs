//! What an organization token reads of its own organization (issue #78, the reads
//! `polar-license doctor` makes), as Polar answers them (docs/polar-api.md §18):
//!
//! * `GET /v1/organizations/` and `GET /v1/organizations/{id}` (`server/polar/organization/
//!   endpoints.py`, `organization/auth.py`, `authz/dependencies.py`'s `OrgPolicyGuard`): scope
//!   `organizations:read` or `:write`; a token sees its own organization only, any other id
//!   (another organization's, the other environment's) is `404 ResourceNotFound`, an id that
//!   is no UUID a 422.
//! * `GET /v1/benefits/` (`server/polar/benefit/endpoints.py`, `benefit/auth.py`): scope
//!   `benefits:read` or `:write`; the organization's benefits, filtered by `type` and `id`
//!   (each repeatable), in pages. A license-key benefit's `properties` are the benefit's
//!   settings (`benefit/strategies/license_keys/schemas.py`): `activations` `{limit,
//!   enable_customer_admin}` or `null` when it has no activation limit.

use time::OffsetDateTime;
use uuid::Uuid;

use super::portal::{query_pairs, Paging};
use super::{Auth, Core, Exchange, Resp, Step};
use crate::json::{obj, s, J};
use crate::seed::Seed;
use crate::state::{page_of, Listed};
use crate::util::{fmt_ts, parse_uuid4};
use crate::validate::{error_body, path_uuid_error, VErr};

/// The organizations' collection route.
pub(super) const ORGANIZATIONS_PATH: &str = "/v1/organizations/";
/// The benefits' collection route.
pub(super) const BENEFITS_PATH: &str = "/v1/benefits/";

const ORG_SCOPES: &[&str] = &["organizations:read", "organizations:write"];
const BENEFIT_SCOPES: &[&str] = &["benefits:read", "benefits:write"];

/// The seed's license-key benefit settings the keys do not carry: each benefit's own
/// activation limit (`limit_activations`; 0: none) and whether customers manage their devices.
#[derive(Debug)]
pub(crate) struct Catalog {
    limits: Vec<(Uuid, i64)>,
    admin: Vec<Uuid>,
    /// The organization's `created_at`: when the emulator started.
    created_at: OffsetDateTime,
}

impl Catalog {
    /// The settings of `seed`'s benefits.
    pub(crate) fn from_seed(seed: &Seed, now: OffsetDateTime) -> Result<Catalog, String> {
        let mut catalog = Catalog {
            limits: Vec::new(),
            admin: Vec::new(),
            created_at: now,
        };
        for b in &seed.benefits {
            let id = parse_uuid4(&b.id, "id of a benefit")?;
            if let Some(limit) = b.limit_activations {
                if !(0..=i64::from(i32::MAX)).contains(&limit) {
                    return Err(format!(
                        "limit_activations of the benefit {id} must be 0 (none) or more"
                    ));
                }
                catalog.limits.push((id, limit));
            }
            if b.enable_customer_admin {
                catalog.admin.push(id);
            }
        }
        Ok(catalog)
    }
}

fn verr(loc: &str, value: &str, msg: &str, typ: &'static str) -> VErr {
    VErr {
        typ,
        loc: vec![J::Str("query".into()), J::Str(loc.into())],
        msg: msg.into(),
        input: J::Str(value.to_string()),
        ctx: None,
    }
}

/// The benefit types Polar has (`BenefitType`), for the `type` filter's 422.
const BENEFIT_TYPES: &[&str] = &[
    "custom",
    "discord",
    "github_repository",
    "downloadables",
    "license_keys",
    "meter_credit",
    "feature_flag",
];

impl Core {
    /// The routes of this module (`None`: not one of them).
    pub(super) fn catalog_route(&self, ex: &Exchange, auth: &Auth) -> Option<Step> {
        let get = matches!(ex.method(), "GET" | "HEAD");
        let org_id = ex
            .path
            .strip_prefix(ORGANIZATIONS_PATH)
            .filter(|rest| !rest.contains('/'));
        let answer = if ex.path == BENEFITS_PATH {
            get.then(|| self.benefits_list(ex, auth))
        } else if let Some(id) = org_id {
            get.then(|| self.organization(ex, auth, id))
        } else {
            return None;
        };
        Some(Step::Done(
            answer.unwrap_or_else(|| super::method_not_allowed("GET")),
        ))
    }

    /// The `Organization` object of `id` (the fields Polar's schema has; the emulator's
    /// organization has a name and slug of its own and Polar's defaults for the rest).
    fn organization_json(&self, id: Uuid) -> J {
        let created = fmt_ts(self.catalog.created_at);
        obj(vec![
            ("created_at", s(&created)),
            ("modified_at", J::Null),
            ("id", s(&id.to_string())),
            ("name", s("Emulator")),
            ("slug", s("emulator")),
            ("avatar_url", J::Null),
            ("proration_behavior", s("prorate")),
            ("allow_customer_updates", J::Bool(true)),
            ("email", J::Null),
            ("website", J::Null),
            ("socials", J::Arr(Vec::new())),
            ("status", s("active")),
            ("details_submitted_at", J::Null),
            ("default_presentment_currency", s("usd")),
            ("feature_settings", J::Null),
        ])
    }

    /// `GET /v1/organizations/` (the token's own) and `GET /v1/organizations/{id}`.
    fn organization(&self, ex: &Exchange, auth: &Auth, id: &str) -> Resp {
        let organization_id = match auth.organization_with(ORG_SCOPES) {
            Ok(org) => org,
            Err(r) => return r,
        };
        if id.is_empty() {
            let mut paging = Paging::default();
            let mut errors = Vec::new();
            for (name, value) in query_pairs(&ex.head.target) {
                paging.take(&name, &value, &mut errors);
            }
            if !errors.is_empty() {
                return Resp::json(422, &error_body(&errors));
            }
            let items = vec![self.organization_json(organization_id)];
            return Resp::json(200, &page_of(items, paging.page, paging.limit()));
        }
        if let Some(e) = path_uuid_error("id", id) {
            return Resp::json(422, &error_body(&[e]));
        }
        match Uuid::parse_str(id) {
            Ok(asked) if asked == organization_id => {
                Resp::json(200, &self.organization_json(organization_id))
            }
            _ => Resp::error(404, "ResourceNotFound", "Not found"),
        }
    }

    /// `GET /v1/benefits/`: `ListResource[Benefit]` of the token's organization.
    fn benefits_list(&self, ex: &Exchange, auth: &Auth) -> Resp {
        let organization_id = match auth.organization_with(BENEFIT_SCOPES) {
            Ok(org) => org,
            Err(r) => return r,
        };
        let mut paging = Paging::default();
        let (mut types, mut ids) = (Vec::new(), Vec::new());
        let mut errors = Vec::new();
        for (name, value) in query_pairs(&ex.head.target) {
            match name.as_str() {
                n if paging.take(n, &value, &mut errors) => {}
                "type" if BENEFIT_TYPES.contains(&value.as_str()) => types.push(value),
                "type" => errors.push(verr(
                    "type",
                    &value,
                    "Input should be 'custom', 'discord', 'github_repository', 'downloadables', \
                     'license_keys', 'meter_credit' or 'feature_flag'",
                    "enum",
                )),
                "id" => match Uuid::parse_str(&value) {
                    Ok(u) => ids.push(u),
                    Err(_) => errors.push(verr(
                        "id",
                        &value,
                        "Input should be a valid UUID",
                        "uuid_parsing",
                    )),
                },
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Resp::json(422, &error_body(&errors));
        }
        let items: Vec<J> = self
            .store
            .organization_benefits(organization_id)
            .into_iter()
            .map(|b| self.benefit_json(organization_id, b))
            .filter(|(id, kind, _)| {
                (types.is_empty() || types.iter().any(|t| t == kind))
                    && (ids.is_empty() || ids.contains(id))
            })
            .map(|(_, _, j)| j)
            .collect();
        Resp::json(200, &page_of(items, paging.page, paging.limit()))
    }

    /// A listed benefit's id, type and `Benefit` object.
    pub(super) fn benefit_json(&self, organization_id: Uuid, b: Listed) -> (Uuid, String, J) {
        match b {
            Listed::Rendered(j) => {
                let field = |name: &str| match &j {
                    J::Obj(items) => {
                        items
                            .iter()
                            .find(|(k, _)| k == name)
                            .and_then(|(_, v)| match v {
                                J::Str(t) => Some(t.clone()),
                                _ => None,
                            })
                    }
                    _ => None,
                };
                let id = field("id")
                    .and_then(|i| Uuid::parse_str(&i).ok())
                    .unwrap_or_default();
                let kind = field("type").unwrap_or_default();
                (id, kind, j)
            }
            Listed::LicenseKeys {
                id,
                created_at,
                description,
                keys_limit,
            } => {
                let limit = self
                    .catalog
                    .limits
                    .iter()
                    .find(|(b, _)| *b == id)
                    .map(|(_, l)| *l)
                    .or(keys_limit);
                let activations = match limit {
                    Some(limit) if limit > 0 => obj(vec![
                        ("limit", J::Int(i128::from(limit))),
                        (
                            "enable_customer_admin",
                            J::Bool(self.catalog.admin.contains(&id)),
                        ),
                    ]),
                    _ => J::Null,
                };
                let j = obj(vec![
                    ("id", s(&id.to_string())),
                    ("created_at", s(&fmt_ts(created_at))),
                    ("modified_at", J::Null),
                    ("type", s("license_keys")),
                    ("description", s(&description)),
                    ("selectable", J::Bool(true)),
                    ("deletable", J::Bool(true)),
                    ("is_deleted", J::Bool(false)),
                    ("organization_id", s(&organization_id.to_string())),
                    ("metadata", J::Obj(Vec::new())),
                    ("visibility", s("private")),
                    (
                        "properties",
                        obj(vec![
                            ("prefix", J::Null),
                            ("expires", J::Null),
                            ("activations", activations),
                            ("limit_usage", J::Null),
                        ]),
                    ),
                    ("visibility_configurable", J::Bool(true)),
                ]);
                (id, "license_keys".to_string(), j)
            }
        }
    }
}
