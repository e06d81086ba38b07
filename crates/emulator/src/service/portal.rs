//! The customer portal's license-key routes with a customer session (docs/polar-api.md
//! §16.2: list, get with activations, rotate) and the organization token's activation read
//! (§16.3: `GET /v1/license-keys/{id}/activations/{activation_id}`).

use uuid::Uuid;

use super::sessions::SessionAuth;
use super::{
    insufficient_scope, method_not_allowed, route_of, unauthorized, Auth, Core, Exchange, Resp,
    Step, Time, MAX_PAGE_LIMIT,
};
use crate::state::{RotateError, KEY_NOT_FOUND};
use crate::util::percent_decode;
use crate::validate::{error_body, path_uuid_error, query_positive_int, query_uuid_error, VErr};

const PORTAL_KEYS: &str = "/v1/customer-portal/license-keys/";

fn not_found() -> Resp {
    Resp::error(404, "ResourceNotFound", KEY_NOT_FOUND)
}

/// The query's pairs, percent-decoded (`+` a space).
pub(super) fn query_pairs(target: &str) -> Vec<(String, String)> {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or("");
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&name.replace('+', " ")),
                percent_decode(&value.replace('+', " ")),
            )
        })
        .collect()
}

/// A list's `page` and `limit` as FastAPI reads them (each a positive integer, by default 1
/// and 10): every list route's one reader of them.
#[derive(Clone, Copy)]
pub(super) struct Paging {
    /// The page asked for.
    pub(super) page: u64,
    limit: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Paging { page: 1, limit: 10 }
    }
}

impl Paging {
    /// Reads `name=value` when it is `page` or `limit` (a bad value's 422 error into
    /// `errors`, in the query's order); false for any other parameter, left to the caller.
    pub(super) fn take(&mut self, name: &str, value: &str, errors: &mut Vec<VErr>) -> bool {
        let slot = match name {
            "page" => &mut self.page,
            "limit" => &mut self.limit,
            _ => return false,
        };
        match query_positive_int(name, value) {
            Ok(n) => *slot = n,
            Err(e) => errors.push(*e),
        }
        true
    }

    /// The page's size: "Size of a page, defaults to 10. Maximum is 100." (a larger limit
    /// gets 100).
    pub(super) fn limit(&self) -> u64 {
        self.limit.min(MAX_PAGE_LIMIT)
    }
}

/// The last value of the query parameter `name` among `pairs` (a repeated parameter: the last
/// one wins, as Polar's FastAPI reads a scalar). Its readers are Polar's billing routes.
#[cfg(feature = "billing")]
pub(super) fn last_value(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

impl Core {
    /// The routes of this module (`None`: not one of them).
    pub(super) fn portal_route(&mut self, ex: &Exchange, auth: &Auth, now: Time) -> Option<Step> {
        let method = ex.method();
        let get = matches!(method, "GET" | "HEAD");
        if let Some(rest) = ex.path.strip_prefix(PORTAL_KEYS) {
            // The three public routes are the license routes' own.
            if route_of(&ex.path).is_some() {
                return None;
            }
            let parts: Vec<&str> = rest.split('/').collect();
            let r = match parts.as_slice() {
                [""] if get => self.portal_list(ex),
                [""] => method_not_allowed("GET"),
                [id] if get => self.portal_get(ex, id),
                [_] => method_not_allowed("GET"),
                [id, "rotate"] if method == "POST" => self.portal_rotate(ex, id, now),
                [_, "rotate"] => method_not_allowed("POST"),
                _ => return None,
            };
            return Some(Step::Done(r));
        }
        let rest = ex.path.strip_prefix("/v1/license-keys/")?;
        let [id, "activations", activation_id] = rest.split('/').collect::<Vec<_>>()[..] else {
            return None;
        };
        if !get {
            return Some(Step::Done(method_not_allowed("GET")));
        }
        Some(Step::Done(self.activation_get(ex, auth, id, activation_id)))
    }

    /// `GET /v1/customer-portal/license-keys/`: the session's customer's keys.
    fn portal_list(&self, ex: &Exchange) -> Resp {
        let Some(session) = ex.session else {
            return unauthorized();
        };
        let (mut paging, mut benefit_id) = (Paging::default(), None);
        let mut errors = Vec::new();
        // A parameter given twice: the last one counts (Starlette's `QueryParams.get`).
        let mut last: Vec<(String, String)> = Vec::new();
        for (name, value) in query_pairs(&ex.head.target) {
            last.retain(|(n, _)| *n != name);
            last.push((name, value));
        }
        for (name, value) in &last {
            match name.as_str() {
                n if paging.take(n, value, &mut errors) => {}
                "benefit_id" => match query_uuid_error("benefit_id", value) {
                    Some(e) => errors.push(e),
                    None => benefit_id = Uuid::parse_str(value).ok(),
                },
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Resp::json(422, &error_body(&errors));
        }
        // "> 100 silently clamped to 100".
        let list = self.store.customer_keys(
            session.organization_id,
            session.customer_id,
            benefit_id,
            paging.page,
            paging.limit(),
            &ex.version,
        );
        Resp::json(200, &list)
    }

    /// `GET /v1/customer-portal/license-keys/{id}`: the key with its live activations when its
    /// benefit has `enable_customer_admin`, else `"activations": []`.
    fn portal_get(&self, ex: &Exchange, id: &str) -> Resp {
        let (session, id) = match session_and_key(ex, id) {
            Ok(found) => found,
            Err(r) => return r,
        };
        let Some(benefit) =
            self.store
                .customer_key_benefit(session.organization_id, session.customer_id, id)
        else {
            return not_found();
        };
        let admin = self.sessions.admin_benefits.contains(&benefit);
        match self.store.key_with_activations(
            session.organization_id,
            Some(session.customer_id),
            id,
            admin,
            &ex.version,
        ) {
            Some(key) => Resp::json(200, &key),
            None => not_found(),
        }
    }

    /// `POST /v1/customer-portal/license-keys/{id}/rotate`: a new key string, everything else
    /// kept; the old string is "Not found" at once.
    fn portal_rotate(&mut self, ex: &Exchange, id: &str, now: Time) -> Resp {
        let (session, id) = match session_and_key(ex, id) {
            Ok(found) => found,
            Err(r) => return r,
        };
        let key = match self
            .store
            .rotatable_key(session.organization_id, session.customer_id, id)
        {
            Ok(key) => key,
            Err(RotateError::NotFound) => return not_found(),
            Err(RotateError::Status(status)) => {
                return super::key_writes::rotate_not_permitted(status)
            }
        };
        if self.rotate_key(&key, now).is_none() {
            return not_found();
        }
        match self.store.key_read_by_id(id, &ex.version) {
            Some(read) => Resp::json(200, &read),
            None => not_found(),
        }
    }

    /// `GET /v1/license-keys/{id}/activations/{activation_id}` (organization token, scope
    /// `license_keys:read` or `:write`): `LicenseKeyActivationRead`.
    fn activation_get(&self, ex: &Exchange, auth: &Auth, id: &str, activation_id: &str) -> Resp {
        let organization_id = match auth {
            Auth::Anonymous => return unauthorized(),
            Auth::Token { scopes, .. }
                if !scopes
                    .iter()
                    .any(|s| s == "license_keys:read" || s == "license_keys:write") =>
            {
                return insufficient_scope("license_keys:read license_keys:write");
            }
            Auth::Token {
                organization_id, ..
            } => *organization_id,
        };
        let errors: Vec<_> = [("id", id), ("activation_id", activation_id)]
            .iter()
            .filter_map(|(name, value)| path_uuid_error(name, value))
            .collect();
        if !errors.is_empty() {
            return Resp::json(422, &error_body(&errors));
        }
        let (Ok(id), Ok(activation_id)) = (Uuid::parse_str(id), Uuid::parse_str(activation_id))
        else {
            return not_found();
        };
        match self
            .store
            .activation_read(organization_id, id, activation_id, &ex.version)
        {
            Some(read) => Resp::json(200, &read),
            None => not_found(),
        }
    }
}

/// A portal key route's customer session and `{id}`: 401 without a session, the 422 of an
/// id that is no UUID, or "Not found".
fn session_and_key(ex: &Exchange, id: &str) -> Result<(SessionAuth, Uuid), Resp> {
    let Some(session) = ex.session else {
        return Err(unauthorized());
    };
    if let Some(e) = path_uuid_error("id", id) {
        return Err(Resp::json(422, &error_body(&[e])));
    }
    let Ok(id) = Uuid::parse_str(id) else {
        return Err(not_found());
    };
    Ok((session, id))
}
