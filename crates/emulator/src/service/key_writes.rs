//! The organization token's writes to one license key (docs/polar-api.md §16.3, §17):
//! `PATCH /v1/license-keys/{id}` (`LicenseKeyUpdate`) and `POST /v1/license-keys/{id}/rotate`,
//! both scope `license_keys:write`, both answering `LicenseKeyRead` in the caller's API version.
//! Source: `server/polar/license_key/endpoints.py` (`update`, `rotate`), `service.py`
//! (`update`, `rotate`, `RotateNotPermitted`), `schemas.py` (`LicenseKeyUpdate`).

use uuid::Uuid;

use super::{insufficient_scope, unauthorized, Auth, Core, Exchange, Pending, Resp, Step, Time};
use crate::json::{obj, s, J};
use crate::state::KEY_NOT_FOUND;
use crate::util::parse_ts;
use crate::validate::{body_missing, body_not_object, error_body, path_uuid_error, VErr};
use crate::KeyUpdate;

/// `Int32`'s bound.
const INT32_MAX: i128 = 2_147_483_647;
const INT32_MIN: i128 = -2_147_483_648;

fn not_found() -> Resp {
    Resp::error(404, "ResourceNotFound", KEY_NOT_FOUND)
}

/// `RotateNotPermitted` (400): the service's message names the key's status
/// (`service.py`; the OpenAPI's description leaves the current status out).
pub(super) fn rotate_not_permitted(status: &str) -> Resp {
    Resp::error(
        400,
        "RotateNotPermitted",
        &format!(
            "License key cannot be rotated in its current status. Current status: {status}. Allowed statuses: disabled, granted."
        ),
    )
}

fn verr(typ: &'static str, name: &str, msg: &str, input: &J, ctx: Option<J>) -> VErr {
    VErr::new(typ, vec![s("body"), s(name)], msg, input, ctx)
}

/// An `Int32` field (with `gt=0` when `positive`), or its pydantic error.
fn int32(name: &str, v: &J, positive: bool) -> Result<i64, Box<VErr>> {
    let fail =
        |typ: &'static str, msg: &str, ctx: Option<J>| Err(Box::new(verr(typ, name, msg, v, ctx)));
    let n = match v {
        J::Int(n) => *n,
        J::Float(f) if f.fract() == 0.0 && f.is_finite() => *f as i128,
        J::Float(_) => {
            return fail(
                "int_from_float",
                "Input should be a valid integer, got a number with a fractional part",
                None,
            )
        }
        J::Str(t) => match t.trim().parse::<i128>() {
            Ok(n) => n,
            Err(_) => {
                return fail(
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                    None,
                )
            }
        },
        J::Bool(b) => i128::from(*b),
        _ => return fail("int_type", "Input should be a valid integer", None),
    };
    if positive && n <= 0 {
        return fail(
            "greater_than",
            "Input should be greater than 0",
            Some(obj(vec![("gt", J::Int(0))])),
        );
    }
    if n > INT32_MAX {
        return fail(
            "less_than_equal",
            "Input should be less than or equal to 2147483647",
            Some(obj(vec![("le", J::Int(INT32_MAX))])),
        );
    }
    if n < INT32_MIN {
        return fail(
            "greater_than_equal",
            "Input should be greater than or equal to -2147483648",
            Some(obj(vec![("ge", J::Int(INT32_MIN))])),
        );
    }
    Ok(n as i64)
}

/// `LicenseKeyUpdate` read from a body: the fields set (`exclude_unset`), or pydantic's errors.
fn key_update(body: &J) -> Result<KeyUpdate, Vec<VErr>> {
    let items = match body {
        J::Obj(items) => items,
        J::Null => return Err(vec![body_missing()]),
        other => return Err(vec![body_not_object(other)]),
    };
    let mut update = KeyUpdate::default();
    let mut errors = Vec::new();
    for (name, v) in items {
        match name.as_str() {
            "status" => match v {
                J::Str(t) if matches!(t.as_str(), "granted" | "revoked" | "disabled") => {
                    update.status = Some(t.clone());
                }
                // `LicenseKeyStatus | None`: null leaves the status as it is.
                J::Null => {}
                other => {
                    let expected = "'granted', 'revoked' or 'disabled'";
                    errors.push(verr(
                        "enum",
                        "status",
                        &format!("Input should be {expected}"),
                        other,
                        Some(obj(vec![("expected", s(expected))])),
                    ));
                }
            },
            "usage" => match int32("usage", v, false) {
                Ok(n) => update.usage = Some(n),
                Err(e) => errors.push(*e),
            },
            "limit_activations" | "limit_usage" => {
                let value = match v {
                    J::Null => Ok(None),
                    other => int32(name, other, true).map(Some),
                };
                match (value, name.as_str()) {
                    (Ok(n), "limit_activations") => update.limit_activations = Some(n),
                    (Ok(n), _) => update.limit_usage = Some(n),
                    (Err(e), _) => errors.push(*e),
                }
            }
            "expires_at" => match v {
                J::Null => update.expires_at = Some(None),
                J::Str(t) if parse_ts(t).is_ok() => update.expires_at = Some(Some(t.clone())),
                other => errors.push(verr(
                    "datetime_from_date_parsing",
                    "expires_at",
                    "Input should be a valid datetime or date, invalid character in year",
                    other,
                    Some(obj(vec![("error", s("invalid character in year"))])),
                )),
            },
            // Polar's schemas ignore fields they do not name.
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(update)
    } else {
        Err(errors)
    }
}

impl Core {
    /// The routes of this module (`None`: not one of them).
    pub(super) fn key_write_route(
        &mut self,
        ex: &Exchange,
        auth: &Auth,
        now: Time,
    ) -> Option<Step> {
        let rest = ex.path.strip_prefix("/v1/license-keys/")?;
        let (id, rotate) = match rest.split('/').collect::<Vec<_>>()[..] {
            [id, "rotate"] => (id, true),
            [id] if ex.method() == "PATCH" => (id, false),
            _ => return None,
        };
        if rotate && ex.method() != "POST" {
            return Some(Step::Done(super::method_not_allowed("POST")));
        }
        let organization_id = match auth {
            Auth::Anonymous => return Some(Step::Done(unauthorized())),
            Auth::Token { scopes, .. } if !scopes.iter().any(|s| s == "license_keys:write") => {
                return Some(Step::Done(insufficient_scope("license_keys:write")));
            }
            Auth::Token {
                organization_id, ..
            } => *organization_id,
        };
        if let Some(e) = path_uuid_error("id", id) {
            return Some(Step::Done(Resp::json(422, &error_body(&[e]))));
        }
        let Ok(id) = Uuid::parse_str(id) else {
            return Some(Step::Done(not_found()));
        };
        if !rotate {
            return Some(Step::Body(Pending::KeyPatch {
                organization_id,
                id,
            }));
        }
        Some(Step::Done(self.org_rotate(
            organization_id,
            id,
            &ex.version,
            now,
        )))
    }

    /// `POST /v1/license-keys/{id}/rotate`: a new string for a `granted` or `disabled` key.
    fn org_rotate(&mut self, organization_id: Uuid, id: Uuid, version: &str, now: Time) -> Resp {
        let Some((key, status)) = self.store.key_and_status(organization_id, id) else {
            return not_found();
        };
        if status == "revoked" {
            return rotate_not_permitted(status);
        }
        if self.rotate_key(&key, now).is_none() {
            return not_found();
        }
        match self.store.key_read_by_id(id, version) {
            Some(read) => Resp::json(200, &read),
            None => not_found(),
        }
    }

    /// `PATCH /v1/license-keys/{id}` with its body read: the fields given set, the grant's
    /// webhooks as a status change makes them (§15), `LicenseKeyRead` after.
    pub(super) fn key_patch(
        &mut self,
        organization_id: Uuid,
        id: Uuid,
        body: &J,
        version: &str,
        now: Time,
    ) -> Resp {
        let update = match key_update(body) {
            Ok(u) => u,
            Err(errors) => return Resp::json(422, &error_body(&errors)),
        };
        let Some((key, _)) = self.store.key_and_status(organization_id, id) else {
            return not_found();
        };
        match self.update_key_json(&key, &update, now) {
            Ok(Some(_)) => match self.store.key_read_by_id(id, version) {
                Some(read) => Resp::json(200, &read),
                None => not_found(),
            },
            Ok(None) => not_found(),
            Err(_) => Resp::internal_error(),
        }
    }
}
