//! Read routes issue #78 added (docs/polar-api.md §19), each answering as Polar's endpoint
//! does:
//!
//! - with a customer session: `GET /v1/customer-portal/customer-session/introspect` and
//!   `…/user` (`customer_portal/endpoints/customer_session.py`), `…/customers/me`
//!   (`customer.py`), `…/benefit-grants/` and `…/benefit-grants/{id}` (`benefit_grant.py`),
//!   `…/subscriptions/` and `…/subscriptions/{id}` (`subscription.py`), `…/seats`
//!   (`customer_seat.py`);
//! - with an organization token: `GET /v1/benefits/{id}` (`benefit/endpoints.py`, scope
//!   `benefits:read`), `GET /v1/customers/{id}` (`customer/endpoints.py`, `customers:read`),
//!   `GET /v1/subscriptions/{id}` (`subscription/endpoints.py`, `subscriptions:read`),
//!   `GET /v1/meters/` and `GET /v1/meters/{id}` (`meter/endpoints.py`, `meters:read`),
//!   `GET /v1/meters/{id}/quantities` (its own file, quantities.rs),
//!   `GET /v1/events/` (`event/endpoints.py`, `events:read`).
//!
//! Each of their `:write` scopes is accepted too; a portal route answers 401 `Unauthorized`
//! without a session (§16.0). Subscriptions, seats and meters are the `billing` feature's.

use uuid::Uuid;

use super::method_not_allowed;
use super::portal::{query_pairs, Paging};
use super::sessions::SessionAuth;
use super::{bearer_token, unauthorized, Auth, Core, Exchange, Resp, Step};
use crate::json::{obj, opt_s, s, J};
use crate::state::page_of;
use crate::util::fmt_ts;
use crate::validate::{error_body, path_uuid_error, query_uuid_error, VErr};

const PORTAL: &str = "/v1/customer-portal/";

/// The collection routes of this module (Starlette's slash redirect names them).
pub(super) const READ_COLLECTIONS: [&str; 4] = [
    "/v1/customer-portal/benefit-grants/",
    "/v1/customer-portal/subscriptions/",
    "/v1/meters/",
    "/v1/events/",
];

fn not_found() -> Resp {
    Resp::error(404, "ResourceNotFound", "Not found")
}

/// A list's query: `page`, `limit` (over 100: 100) and the other pairs, or the 422.
struct ListQuery {
    page: u64,
    limit: u64,
    rest: Vec<(String, String)>,
}

fn list_query(ex: &Exchange) -> Result<ListQuery, Resp> {
    let mut paging = Paging::default();
    let mut errors: Vec<VErr> = Vec::new();
    let mut rest = Vec::new();
    for (name, value) in query_pairs(&ex.head.target) {
        match name.as_str() {
            n if paging.take(n, &value, &mut errors) => {}
            _ => rest.push((name, value)),
        }
    }
    if !errors.is_empty() {
        return Err(Resp::json(422, &error_body(&errors)));
    }
    Ok(ListQuery {
        page: paging.page,
        limit: paging.limit(),
        rest,
    })
}

/// A repeatable UUID filter's values, or its 422.
fn uuid_filter(q: &ListQuery, name: &str) -> Result<Vec<Uuid>, Resp> {
    let mut out = Vec::new();
    for (n, v) in q.rest.iter().filter(|(n, _)| n == name) {
        match query_uuid_error(n, v) {
            Some(e) => return Err(Resp::json(422, &error_body(&[e]))),
            None => out.extend(Uuid::parse_str(v).ok()),
        }
    }
    Ok(out)
}

/// A query `bool` as pydantic reads it, or its 422.
#[cfg(feature = "billing")]
fn bool_filter(q: &ListQuery, name: &str) -> Result<Option<bool>, Resp> {
    let Some((_, v)) = q.rest.iter().rev().find(|(n, _)| n == name) else {
        return Ok(None);
    };
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Some(true)),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(Some(false)),
        _ => Err(Resp::json(
            422,
            &error_body(&[VErr::new(
                "bool_parsing",
                vec![s("query"), s(name)],
                "Input should be a valid boolean, unable to interpret input",
                &J::Str(v.clone()),
                None,
            )]),
        )),
    }
}

fn items(list: Vec<J>, q: &ListQuery) -> Resp {
    Resp::json(200, &page_of(list, q.page, q.limit))
}

impl Core {
    /// The routes of this module (`None`: not one of them).
    pub(super) fn read_more_route(&mut self, ex: &Exchange, auth: &Auth) -> Option<Step> {
        let get = matches!(ex.method(), "GET" | "HEAD");
        if let Some(rest) = ex.path.strip_prefix(PORTAL) {
            let parts: Vec<&str> = rest.split('/').collect();
            let known = matches!(
                parts.as_slice(),
                ["customer-session", "introspect" | "user"]
                    | ["customers", "me"]
                    | ["benefit-grants", _]
                    | ["seats"]
            ) || (cfg!(feature = "billing")
                && matches!(parts.as_slice(), ["subscriptions", _]));
            if !known {
                return None;
            }
            if !get {
                return Some(Step::Done(method_not_allowed("GET")));
            }
            let Some(session) = ex.session else {
                return Some(Step::Done(unauthorized()));
            };
            let r = match parts.as_slice() {
                ["customer-session", "introspect"] => self.introspect(ex),
                ["customer-session", "user"] => self.portal_user(session),
                ["customers", "me"] => match self
                    .store
                    .portal_customer(session.organization_id, session.customer_id)
                {
                    Some(c) => Resp::json(200, &c),
                    None => not_found(),
                },
                ["benefit-grants", id] => self.portal_grants(ex, session, id),
                #[cfg(feature = "billing")]
                ["subscriptions", id] => self.portal_subscriptions(ex, session, id),
                #[cfg(feature = "billing")]
                ["seats"] => self.portal_seats(ex, session),
                #[cfg(not(feature = "billing"))]
                ["seats"] => Resp::error(
                    403,
                    "FeatureNotEnabled",
                    "Seat-based pricing is not enabled for this organization",
                ),
                _ => return None,
            };
            return Some(Step::Done(r));
        }
        let rest = ex.path.strip_prefix("/v1/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let (scopes, what): (&[&str], _) = match parts.as_slice() {
            ["benefits", id] if !id.is_empty() => (&["benefits:read", "benefits:write"], 'b'),
            ["customers", id] if !id.is_empty() => (&["customers:read", "customers:write"], 'c'),
            #[cfg(feature = "billing")]
            ["subscriptions", id] if !id.is_empty() => {
                (&["subscriptions:read", "subscriptions:write"], 's')
            }
            #[cfg(feature = "billing")]
            ["meters", _] => (&["meters:read", "meters:write"], 'm'),
            #[cfg(feature = "billing")]
            ["meters", id, "quantities"] if !id.is_empty() => {
                (&["meters:read", "meters:write"], 'q')
            }
            #[cfg(feature = "billing")]
            ["events", ""] => (&["events:read", "events:write"], 'e'),
            _ => return None,
        };
        if !get {
            // Polar's other methods on these paths (updates, deletes) are not the emulator's.
            return Some(Step::Done(method_not_allowed("GET")));
        }
        let organization_id = match auth.organization_with(scopes) {
            Ok(org) => org,
            Err(r) => return Some(Step::Done(r)),
        };
        let id = parts.get(1).copied().unwrap_or("");
        let r = match what {
            #[cfg(feature = "billing")]
            'm' => self.meter_reads(ex, organization_id, id),
            #[cfg(feature = "billing")]
            'e' => self.event_reads(ex, organization_id),
            #[cfg(feature = "billing")]
            'q' => self.meter_quantities(ex, organization_id, id),
            _ => {
                if let Some(e) = path_uuid_error("id", id) {
                    return Some(Step::Done(Resp::json(422, &error_body(&[e]))));
                }
                let Ok(uid) = Uuid::parse_str(id) else {
                    return Some(Step::Done(not_found()));
                };
                let found = match what {
                    // The same object `GET /v1/benefits/` lists (service/catalog.rs).
                    'b' => self
                        .store
                        .organization_benefits(organization_id)
                        .into_iter()
                        .map(|b| self.benefit_json(organization_id, b))
                        .find(|(id, _, _)| *id == uid)
                        .map(|(_, _, j)| j),
                    'c' => self.store.org_customer(organization_id, uid),
                    #[cfg(feature = "billing")]
                    's' => self
                        .store
                        .org_subscription(organization_id, &uid.to_string()),
                    _ => None,
                };
                match found {
                    Some(j) => Resp::json(200, &j),
                    None => not_found(),
                }
            }
        };
        Some(Step::Done(r))
    }

    /// `…/customer-session/introspect`: `CustomerCustomerSession` `{expires_at, return_url}`.
    fn introspect(&self, ex: &Exchange) -> Resp {
        let token = bearer_token(&ex.head).unwrap_or_default();
        match self.sessions.details(&token) {
            Some((expires_at, return_url)) => Resp::json(
                200,
                &obj(vec![
                    ("expires_at", s(&fmt_ts(expires_at))),
                    ("return_url", opt_s(return_url.as_deref())),
                ]),
            ),
            None => unauthorized(),
        }
    }

    /// `…/customer-session/user`: `PortalAuthenticatedUser` of a customer session; a
    /// customer without an email is a team customer's, refused.
    fn portal_user(&self, session: SessionAuth) -> Resp {
        match self
            .store
            .customer_email(session.organization_id, session.customer_id)
        {
            Some(Some(email)) => Resp::json(
                200,
                &obj(vec![
                    ("type", s("customer")),
                    ("name", J::Null),
                    ("email", s(&email)),
                    ("customer_id", s(&session.customer_id.to_string())),
                    ("member_id", J::Null),
                    ("role", J::Null),
                ]),
            ),
            Some(None) => Resp::json(
                422,
                &obj(vec![
                    ("error", s("PolarRequestValidationError")),
                    (
                        "detail",
                        J::Arr(vec![VErr::new(
                            "value_error",
                            vec![s("body")],
                            "Team customers must use member sessions. Create a customer session via the API with a member_id.",
                            &J::Null,
                            None,
                        )
                        .to_j()]),
                    ),
                ]),
            ),
            None => not_found(),
        }
    }

    /// `…/benefit-grants/` (`id` empty: the list, filters `type`, `benefit_id`,
    /// `subscription_id`) and `…/benefit-grants/{id}`.
    fn portal_grants(&self, ex: &Exchange, session: SessionAuth, id: &str) -> Resp {
        let grants = self
            .store
            .portal_grants(session.organization_id, session.customer_id);
        if !id.is_empty() {
            if let Some(e) = path_uuid_error("id", id) {
                return Resp::json(422, &error_body(&[e]));
            }
            let wanted = Uuid::parse_str(id).ok();
            return match grants
                .into_iter()
                .find(|(_, _, gid, _)| Some(*gid) == wanted)
            {
                Some((_, _, _, j)) => Resp::json(200, &j),
                None => not_found(),
            };
        }
        let q = match list_query(ex) {
            Ok(q) => q,
            Err(r) => return r,
        };
        let benefit_ids = match uuid_filter(&q, "benefit_id") {
            Ok(v) => v,
            Err(r) => return r,
        };
        let types: Vec<&str> = q
            .rest
            .iter()
            .filter(|(n, _)| n == "type")
            .map(|(_, v)| v.as_str())
            .collect();
        let list = grants
            .into_iter()
            .filter(|(kind, b, _, _)| {
                (types.is_empty() || types.contains(&kind.as_str()))
                    && (benefit_ids.is_empty() || benefit_ids.contains(b))
            })
            .map(|(_, _, _, j)| j)
            .collect();
        items(list, &q)
    }

    /// `…/subscriptions/` (filter `active`, newest first) and `…/subscriptions/{id}`.
    #[cfg(feature = "billing")]
    fn portal_subscriptions(&self, ex: &Exchange, session: SessionAuth, id: &str) -> Resp {
        let subs = self
            .store
            .customer_subscriptions(session.organization_id, session.customer_id);
        if !id.is_empty() {
            if let Some(e) = path_uuid_error("id", id) {
                return Resp::json(422, &error_body(&[e]));
            }
            return match subs.into_iter().find(|(sid, _, _)| sid == id) {
                Some((_, _, j)) => Resp::json(200, &j),
                None => not_found(),
            };
        }
        let q = match list_query(ex) {
            Ok(q) => q,
            Err(r) => return r,
        };
        let active = match bool_filter(&q, "active") {
            Ok(a) => a,
            Err(r) => return r,
        };
        let list = subs
            .into_iter()
            .filter(|(_, a, _)| active.is_none_or(|want| want == *a))
            .map(|(_, _, j)| j)
            .collect();
        items(list, &q)
    }

    /// `…/seats?subscription_id=` → `SeatsList`; neither it nor `order_id`: 400
    /// `BadRequest`; a subscription that is not the customer's: 404 `Subscription not found`;
    /// one without seats: 403 `FeatureNotEnabled` (the organization has no seat-based
    /// pricing).
    #[cfg(feature = "billing")]
    fn portal_seats(&self, ex: &Exchange, session: SessionAuth) -> Resp {
        let pairs = query_pairs(&ex.head.target);
        let last = |name: &str| super::portal::last_value(&pairs, name);
        let mut errors = Vec::new();
        for name in ["subscription_id", "order_id"] {
            if let Some(v) = last(name) {
                errors.extend(query_uuid_error(name, &v));
            }
        }
        if !errors.is_empty() {
            return Resp::json(422, &error_body(&errors));
        }
        let Some(subscription_id) = last("subscription_id") else {
            return match last("order_id") {
                // The emulator's orders carry no seats.
                Some(_) => Resp::error(404, "ResourceNotFound", "Order not found"),
                None => Resp::error(
                    400,
                    "BadRequest",
                    "Either subscription_id or order_id must be provided",
                ),
            };
        };
        let Some(seats) = self.store.subscription_seats(
            session.organization_id,
            session.customer_id,
            &subscription_id.to_lowercase(),
        ) else {
            return Resp::error(404, "ResourceNotFound", "Subscription not found");
        };
        if seats.is_empty() {
            return Resp::error(
                403,
                "FeatureNotEnabled",
                "Seat-based pricing is not enabled for this organization",
            );
        }
        let total = seats.len();
        let taken = seats.iter().filter(|(revoked, _)| !revoked).count();
        Resp::json(
            200,
            &obj(vec![
                ("seats", J::Arr(seats.into_iter().map(|(_, j)| j).collect())),
                ("available_seats", J::Int((total - taken) as i128)),
                ("total_seats", J::Int(total as i128)),
            ]),
        )
    }

    /// `GET /v1/meters/` (filters `query` on the name, `is_archived`; sorted by name) and
    /// `GET /v1/meters/{id}`.
    #[cfg(feature = "billing")]
    fn meter_reads(&self, ex: &Exchange, organization_id: Uuid, id: &str) -> Resp {
        let meters = self.store.org_meters(organization_id);
        if !id.is_empty() {
            if let Some(e) = path_uuid_error("id", id) {
                return Resp::json(422, &error_body(&[e]));
            }
            let wanted = Uuid::parse_str(id).ok();
            return match meters.into_iter().find(|(mid, _, _)| Some(*mid) == wanted) {
                Some((_, _, j)) => Resp::json(200, &j),
                None => not_found(),
            };
        }
        let q = match list_query(ex) {
            Ok(q) => q,
            Err(r) => return r,
        };
        let archived = match bool_filter(&q, "is_archived") {
            Ok(a) => a,
            Err(r) => return r,
        };
        let query = q
            .rest
            .iter()
            .rev()
            .find(|(n, _)| n == "query")
            .map(|(_, v)| v.to_lowercase());
        let mut list: Vec<(Uuid, String, J)> = meters
            .into_iter()
            .filter(|(_, name, _)| {
                query
                    .as_ref()
                    .is_none_or(|q| name.to_lowercase().contains(q))
            })
            // The seed's meters are never archived.
            .filter(|_| archived != Some(true))
            .collect();
        list.sort_by(|a, b| a.1.cmp(&b.1));
        items(list.into_iter().map(|(_, _, j)| j).collect(), &q)
    }
}

/// A `start_timestamp` or `end_timestamp` query value (`name`) as FastAPI reads a datetime,
/// or its 422 error: the events' and the meters' quantities' one reader.
#[cfg(feature = "billing")]
pub(super) fn query_timestamp(name: &str, v: &str) -> Result<time::OffsetDateTime, Box<VErr>> {
    crate::util::parse_ts(v).map_err(|_| {
        Box::new(VErr::new(
            "datetime_from_date_parsing",
            vec![s("query"), s(name)],
            "Input should be a valid datetime or date, invalid character in year",
            &J::Str(v.to_string()),
            Some(obj(vec![("error", s("invalid character in year"))])),
        ))
    })
}

impl Core {
    /// `GET /v1/events/`: the events taken (`UserEvent`s; the emulator makes no system events),
    /// newest first (`-timestamp`, or `sorting=timestamp`), filters `customer_id`,
    /// `external_customer_id`, `name`, `source` (repeatable), `start_timestamp`,
    /// `end_timestamp`.
    #[cfg(feature = "billing")]
    fn event_reads(&self, ex: &Exchange, organization_id: Uuid) -> Resp {
        let q = match list_query(ex) {
            Ok(q) => q,
            Err(r) => return r,
        };
        let customers = match uuid_filter(&q, "customer_id") {
            Ok(v) => v,
            Err(r) => return r,
        };
        let all = |name: &str| -> Vec<String> {
            q.rest
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let (externals, names, sources) = (all("external_customer_id"), all("name"), all("source"));
        let mut errors = Vec::new();
        for v in &sources {
            if !matches!(v.as_str(), "system" | "user") {
                errors.push(VErr::new(
                    "enum",
                    vec![s("query"), s("source")],
                    "Input should be 'system' or 'user'",
                    &J::Str(v.clone()),
                    Some(obj(vec![("expected", s("'system' or 'user'"))])),
                ));
            }
        }
        let mut bounds = [None, None];
        for (slot, name) in bounds.iter_mut().zip(["start_timestamp", "end_timestamp"]) {
            if let Some(v) = all(name).pop() {
                match query_timestamp(name, &v) {
                    Ok(t) => *slot = Some(t),
                    Err(e) => errors.push(*e),
                }
            }
        }
        let mut ascending = false;
        // `SortingGetter` types the parameter `list[EventSortProperty]` (each with `-`), so
        // FastAPI refuses a bad value by its index before the getter runs (`kit/sorting.py`).
        for (i, v) in all("sorting").into_iter().enumerate() {
            match v.as_str() {
                "timestamp" => ascending = true,
                "-timestamp" => ascending = false,
                _ => errors.push(VErr::new(
                    "enum",
                    vec![s("query"), s("sorting"), J::Int(i as i128)],
                    "Input should be 'timestamp' or '-timestamp'",
                    &J::Str(v.clone()),
                    Some(obj(vec![("expected", s("'timestamp' or '-timestamp'"))])),
                )),
            }
        }
        if !errors.is_empty() {
            return Resp::json(422, &error_body(&errors));
        }
        let [start, end] = bounds;
        let mut events: Vec<_> = self
            .store
            .org_events(organization_id)
            .into_iter()
            .filter(|(e, _)| {
                let customer_ok = customers.is_empty()
                    || matches!(&e.who, crate::state::Who::Id(id) if customers.contains(id));
                let external_ok = externals.is_empty()
                    || matches!(&e.who, crate::state::Who::External(x) if externals.contains(x));
                customer_ok
                    && external_ok
                    && (names.is_empty() || names.contains(&e.name))
                    && (sources.is_empty() || sources.iter().any(|s| s == "user"))
                    && start.is_none_or(|t| e.timestamp >= t)
                    && end.is_none_or(|t| e.timestamp <= t)
            })
            .collect();
        // Stable: events of one instant keep the order they were taken in.
        events.sort_by_key(|(e, _)| e.timestamp);
        if !ascending {
            events.reverse();
        }
        items(events.into_iter().map(|(_, j)| j).collect(), &q)
    }
}

/// Whether `path` is a collection route of this module (Starlette redirects its slashless
/// form).
pub(super) fn read_collection(path: &str) -> bool {
    READ_COLLECTIONS.contains(&path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn collections_end_with_a_slash() {
        assert!(super::READ_COLLECTIONS.iter().all(|p| p.ends_with('/')));
    }
}
