//! Meters and credits over HTTP (docs/polar-api.md §16.5): `POST /v1/events/ingest` (scope
//! `events:write`), `GET /v1/customer-meters/` and `…/{id}` (scope `customer_meters:read`) and
//! the customer portal's `GET /v1/customer-portal/meters/` and `…/{id}` (a customer session).
//!
//! The ingest's refusals: a body that is not JSON, then the token, then the schema (every
//! entry of every event, each event checked against both members of Polar's
//! `EventCreateCustomer | EventCreateExternalCustomer` union, as pydantic reports a union that
//! fails: the member's name in the `loc`) and then the service's own checks, the first bad
//! event rejecting the whole batch with one `PolarRequestValidationError` entry (Polar's
//! `organization_token`, `customer_id` and `member_id` entries, word for word). The schema
//! entries the emulator writes: `missing`, `string_type`, `string_too_long` (a `name` over 128
//! characters), `dict_type` (`metadata`), `uuid_parsing`, `timezone_aware`, the future
//! timestamp's `value_error` (Polar's words); a timestamp that is no RFC 3339 date-time gets
//! `datetime_parsing` (pydantic words its reason in more ways than the emulator does).

use time::OffsetDateTime;
use uuid::Uuid;

use super::method_not_allowed;
use super::portal::{query_pairs, Paging};
use super::{unauthorized, Auth, Core, Exchange, Resp, Step, Time};
use crate::json::{obj, s, J};
use crate::state::{page_of, CustomerMeter, NewEvent, Who};
use crate::util::parse_ts;
use crate::validate::{
    body_missing, body_not_object, error_body, path_uuid_error, query_uuid_error, uuid_error, VErr,
};

/// The ingest route.
pub(super) const INGEST_PATH: &str = "/v1/events/ingest";
/// The organization token's customer meters (FastAPI's path, slash included).
pub(super) const ORG_METERS: &str = "/v1/customer-meters/";
/// The customer portal's meters.
pub(super) const PORTAL_METERS: &str = "/v1/customer-portal/meters/";
/// The longest event `name`.
const MAX_NAME: usize = 128;
/// The two members of Polar's `EventCreate` union, in its order.
const MEMBERS: [&str; 2] = ["EventCreateCustomer", "EventCreateExternalCustomer"];

fn event_loc(index: usize, rest: &[&str]) -> Vec<J> {
    let mut loc = vec![s("body"), s("events"), J::Int(index as i128)];
    loc.extend(rest.iter().map(|p| s(p)));
    loc
}

fn field<'a>(items: &'a [(String, J)], name: &str) -> Option<&'a J> {
    items.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// One of the service's 422 entries: Polar's `ingest` checks every event, keeps the first
/// refusal of each (its organization, then its customer, then its member: each check raises)
/// and answers them all at once (`server/polar/event/service.py`, `ingest`).
fn service_error(typ: &'static str, index: usize, name: &str, msg: &str, input: &J) -> VErr {
    VErr::new(typ, event_loc(index, &[name]), msg, input, None)
}

/// `PolarRequestValidationError` with the service's entries.
fn service_errors(errors: &[VErr]) -> Resp {
    Resp::json(
        422,
        &obj(vec![
            ("error", s("PolarRequestValidationError")),
            ("detail", J::Arr(errors.iter().map(VErr::to_j).collect())),
        ]),
    )
}

/// One event checked against one member of the union: its errors, in the fields' order.
fn member_errors(
    index: usize,
    member: &str,
    event: &J,
    items: &[(String, J)],
    now: OffsetDateTime,
) -> Vec<VErr> {
    let at = |name: &str| event_loc(index, &[member, name]);
    let mut errors = Vec::new();
    if let Some(ts) = field(items, "timestamp") {
        match ts {
            J::Str(text) => match parse_ts(text) {
                Ok(t) if t > now => errors.push(VErr::new(
                    "value_error",
                    at("timestamp"),
                    "Value error, Timestamp must be in the past.",
                    ts,
                    Some(obj(vec![("error", J::Obj(Vec::new()))])),
                )),
                Ok(_) => {}
                // A date-time without an offset parses as a naive one in pydantic.
                Err(_) if naive_datetime(text) => errors.push(VErr::new(
                    "timezone_aware",
                    at("timestamp"),
                    "Input should have timezone info",
                    ts,
                    None,
                )),
                Err(_) => errors.push(VErr::new(
                    "datetime_parsing",
                    at("timestamp"),
                    "Input should be a valid datetime",
                    ts,
                    None,
                )),
            },
            _ => errors.push(VErr::new(
                "datetime_type",
                at("timestamp"),
                "Input should be a valid datetime",
                ts,
                None,
            )),
        }
    }
    match field(items, "name") {
        None => errors.push(VErr::new(
            "missing",
            at("name"),
            "Field required",
            event,
            None,
        )),
        Some(J::Str(text)) if text.chars().count() > MAX_NAME => errors.push(VErr::new(
            "string_too_long",
            at("name"),
            "String should have at most 128 characters",
            &J::Str(text.clone()),
            Some(obj(vec![("max_length", J::Int(MAX_NAME as i128))])),
        )),
        Some(J::Str(_)) => {}
        Some(other) => errors.push(VErr::new(
            "string_type",
            at("name"),
            "Input should be a valid string",
            other,
            None,
        )),
    }
    match field(items, "metadata") {
        None | Some(J::Obj(_)) => {}
        Some(other) => errors.push(VErr::new(
            "dict_type",
            at("metadata"),
            "Input should be a valid dictionary",
            other,
            None,
        )),
    }
    if member == MEMBERS[0] {
        match field(items, "customer_id") {
            None => errors.push(VErr::new(
                "missing",
                at("customer_id"),
                "Field required",
                event,
                None,
            )),
            Some(J::Str(text)) => {
                if let Some(problem) = uuid_error(text) {
                    errors.push(VErr::new(
                        "uuid_parsing",
                        at("customer_id"),
                        &format!("Input should be a valid UUID, {problem}"),
                        &J::Str(text.clone()),
                        Some(obj(vec![("error", J::Str(problem))])),
                    ));
                }
            }
            Some(other) => errors.push(VErr::new(
                "uuid_type",
                at("customer_id"),
                "UUID input should be a string, bytes or UUID object",
                other,
                None,
            )),
        }
    } else {
        match field(items, "external_customer_id") {
            None => errors.push(VErr::new(
                "missing",
                at("external_customer_id"),
                "Field required",
                event,
                None,
            )),
            Some(J::Str(_)) => {}
            Some(other) => errors.push(VErr::new(
                "string_type",
                at("external_customer_id"),
                "Input should be a valid string",
                other,
                None,
            )),
        }
    }
    errors
}

/// `2026-01-01T00:00:00` and the like: a date-time with no offset.
fn naive_datetime(text: &str) -> bool {
    parse_ts(&format!("{}Z", text.trim())).is_ok()
}

/// An event's schema errors: none when one member of the union takes it.
fn event_errors(index: usize, event: &J, now: OffsetDateTime) -> Vec<VErr> {
    let J::Obj(items) = event else {
        return MEMBERS
            .iter()
            .map(|m| {
                VErr::new(
                    "model_attributes_type",
                    event_loc(index, &[m]),
                    "Input should be a valid dictionary or object to extract fields from",
                    event,
                    None,
                )
            })
            .collect();
    };
    let mut all = Vec::new();
    for member in MEMBERS {
        let errors = member_errors(index, member, event, items, now);
        if errors.is_empty() {
            return Vec::new();
        }
        all.extend(errors);
    }
    all
}

impl Core {
    /// The routes of this module (`None`: not one of them).
    pub(super) fn meter_route(&self, ex: &Exchange, auth: &Auth) -> Option<Step> {
        let get = matches!(ex.method(), "GET" | "HEAD");
        if ex.path == INGEST_PATH {
            return Some(match ex.method() {
                "POST" => Step::Body(super::Pending::Ingest(auth.clone())),
                _ => Step::Done(method_not_allowed("POST")),
            });
        }
        if let Some(rest) = ex.path.strip_prefix(ORG_METERS) {
            if rest.contains('/') {
                return None;
            }
            if !get {
                return Some(Step::Done(method_not_allowed("GET")));
            }
            return Some(Step::Done(self.org_meters(ex, auth, rest)));
        }
        let rest = ex.path.strip_prefix(PORTAL_METERS)?;
        if rest.contains('/') {
            return None;
        }
        if !get {
            return Some(Step::Done(method_not_allowed("GET")));
        }
        Some(Step::Done(self.portal_meters(ex, rest)))
    }

    /// `POST /v1/events/ingest` with its body read as JSON.
    pub(super) fn ingest(&mut self, auth: &Auth, body: J, now: Time) -> Resp {
        let organization_id = match auth.organization_with(&["events:write"]) {
            Ok(org) => org,
            Err(r) => return r,
        };
        let items = match &body {
            J::Obj(items) => items,
            J::Null => return Resp::json(422, &error_body(&[body_missing()])),
            other => return Resp::json(422, &error_body(&[body_not_object(other)])),
        };
        let events = match field(items, "events") {
            Some(J::Arr(events)) => events,
            None => {
                let e = VErr::new(
                    "missing",
                    vec![s("body"), s("events")],
                    "Field required",
                    &body,
                    None,
                );
                return Resp::json(422, &error_body(&[e]));
            }
            Some(other) => {
                let e = VErr::new(
                    "list_type",
                    vec![s("body"), s("events")],
                    "Input should be a valid list",
                    other,
                    None,
                );
                return Resp::json(422, &error_body(&[e]));
            }
        };
        let wall = self.clock(now);
        let errors: Vec<VErr> = events
            .iter()
            .enumerate()
            .flat_map(|(i, e)| event_errors(i, e, wall))
            .collect();
        if !errors.is_empty() {
            return Resp::json(422, &error_body(&errors));
        }
        // The service's checks: one entry per bad event, and any rejects the batch.
        let mut batch = Vec::with_capacity(events.len());
        let mut refused: Vec<VErr> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let J::Obj(items) = e else {
                return Resp::internal_error();
            };
            if let Some(org) = field(items, "organization_id").filter(|v| **v != J::Null) {
                refused.push(service_error(
                    "organization_token",
                    i,
                    "organization_id",
                    "Setting organization_id is disallowed when using an organization token.",
                    org,
                ));
                continue;
            }
            let who = match (
                field(items, "customer_id"),
                field(items, "external_customer_id"),
            ) {
                (Some(J::Str(id)), _) => {
                    let known = Uuid::parse_str(id)
                        .ok()
                        .filter(|id| self.store.has_customer(organization_id, *id));
                    let Some(id) = known else {
                        refused.push(service_error(
                            "customer_id",
                            i,
                            "customer_id",
                            "Customer not found.",
                            &J::Str(id.clone()),
                        ));
                        continue;
                    };
                    if let Some(member) = field(items, "member_id").filter(|v| **v != J::Null) {
                        let ok = matches!(member, J::Str(m) if self.store.is_member(id, m));
                        if !ok {
                            refused.push(service_error(
                                "member_id",
                                i,
                                "member_id",
                                "Member not found.",
                                member,
                            ));
                            continue;
                        }
                    }
                    Who::Id(id)
                }
                (_, Some(J::Str(x))) => Who::External(x.clone()),
                _ => return Resp::internal_error(),
            };
            let external_id = match field(items, "external_id") {
                Some(J::Str(x)) => Some(x.clone()),
                _ => None,
            };
            let metadata = match field(items, "metadata") {
                Some(J::Obj(m)) => m.clone(),
                _ => Vec::new(),
            };
            let name = match field(items, "name") {
                Some(J::Str(n)) => n.clone(),
                _ => return Resp::internal_error(),
            };
            let text = |name: &str| match field(items, name) {
                Some(J::Str(x)) => Some(x.clone()),
                _ => None,
            };
            // Checked above: a timestamp that is there parses.
            let timestamp = text("timestamp").and_then(|t| parse_ts(&t).ok());
            batch.push(NewEvent {
                name,
                who,
                external_id,
                metadata,
                timestamp,
                member_id: text("member_id"),
                external_member_id: text("external_member_id"),
            });
        }
        if !refused.is_empty() {
            return service_errors(&refused);
        }
        let (inserted, duplicates) = self.store.ingest(organization_id, batch, wall);
        Resp::json(
            200,
            &obj(vec![
                ("inserted", J::Int(i128::from(inserted))),
                ("duplicates", J::Int(i128::from(duplicates))),
            ]),
        )
    }

    /// `GET /v1/customer-meters/` (`id` empty) and `GET /v1/customer-meters/{id}`.
    fn org_meters(&self, ex: &Exchange, auth: &Auth, id: &str) -> Resp {
        let organization_id = match auth.organization_with(&["customer_meters:read"]) {
            Ok(org) => org,
            Err(r) => return r,
        };
        let all = self.store.all_customer_meters(organization_id);
        if !id.is_empty() {
            return self.one_meter(id, all, |cm| self.store.render_org_meter(cm));
        }
        let query = match MeterQuery::read(ex, true) {
            Ok(q) => q,
            Err(r) => return r,
        };
        let externals: Vec<Option<String>> = all
            .iter()
            .map(|cm| self.store.external_id_of(cm.customer_id))
            .collect();
        let mut picked: Vec<CustomerMeter> = all
            .into_iter()
            .zip(externals)
            .filter(|(cm, x)| {
                (query.organization_ids.is_empty()
                    || query.organization_ids.contains(&cm.meter.organization_id))
                    && (query.customer_ids.is_empty()
                        || query.customer_ids.contains(&cm.customer_id))
                    && (query.external_customer_ids.is_empty()
                        || x.as_ref()
                            .is_some_and(|x| query.external_customer_ids.contains(x)))
            })
            .map(|(cm, _)| cm)
            .filter(|cm| query.keeps(cm))
            .collect();
        query.sort(&mut picked);
        let items = picked.iter().map(|cm| self.store.render_org_meter(cm));
        Resp::json(200, &page_of(items, query.page, query.limit))
    }

    /// `GET /v1/customer-portal/meters/` (`id` empty) and `…/{id}`: the session's customer's.
    fn portal_meters(&self, ex: &Exchange, id: &str) -> Resp {
        let Some(session) = ex.session else {
            return unauthorized();
        };
        let all = self
            .store
            .portal_customer_meters(session.organization_id, session.customer_id);
        if !id.is_empty() {
            return self.one_meter(id, all, CustomerMeter::render_portal);
        }
        let query = match MeterQuery::read(ex, false) {
            Ok(q) => q,
            Err(r) => return r,
        };
        let mut picked: Vec<CustomerMeter> = all.into_iter().filter(|cm| query.keeps(cm)).collect();
        query.sort(&mut picked);
        let items = picked.iter().map(CustomerMeter::render_portal);
        Resp::json(200, &page_of(items, query.page, query.limit))
    }

    /// One customer meter by id, or 422 (not a UUID v4) or 404 `Not found`.
    fn one_meter(
        &self,
        id: &str,
        all: Vec<CustomerMeter>,
        render: impl Fn(&CustomerMeter) -> J,
    ) -> Resp {
        if let Some(e) = path_uuid_error("id", id) {
            return Resp::json(422, &error_body(&[e]));
        }
        let id = Uuid::parse_str(id).ok();
        match all.iter().find(|cm| Some(cm.id) == id) {
            Some(cm) => Resp::json(200, &render(cm)),
            None => Resp::error(404, "ResourceNotFound", "Not found"),
        }
    }
}

/// The lists' query: filters, sorting, page.
struct MeterQuery {
    organization_ids: Vec<Uuid>,
    customer_ids: Vec<Uuid>,
    external_customer_ids: Vec<String>,
    meter_ids: Vec<Uuid>,
    /// The portal's case-insensitive substring of the meter's name.
    name: Option<String>,
    /// (criterion, descending), in the order given; default `-modified_at`.
    sorting: Vec<(String, bool)>,
    page: u64,
    limit: u64,
}

const SORTING: &[&str] = &[
    "created_at",
    "modified_at",
    "meter_id",
    "meter_name",
    "consumed_units",
    "credited_units",
    "balance",
];

impl MeterQuery {
    fn read(ex: &Exchange, org: bool) -> Result<MeterQuery, Resp> {
        let mut q = MeterQuery {
            organization_ids: Vec::new(),
            customer_ids: Vec::new(),
            external_customer_ids: Vec::new(),
            meter_ids: Vec::new(),
            name: None,
            sorting: Vec::new(),
            page: 1,
            limit: 10,
        };
        let mut errors = Vec::new();
        let mut uuid_into =
            |name: &str, value: &str, into: &mut Vec<Uuid>| match query_uuid_error(name, value) {
                Some(e) => errors.push(e),
                None => into.extend(Uuid::parse_str(value).ok()),
            };
        let mut bad_sorting = None;
        let (mut paging, mut page_errors) = (Paging::default(), Vec::new());
        for (name, value) in query_pairs(&ex.head.target) {
            match name.as_str() {
                "organization_id" if org => {
                    uuid_into("organization_id", &value, &mut q.organization_ids)
                }
                "customer_id" if org => uuid_into("customer_id", &value, &mut q.customer_ids),
                "external_customer_id" if org => q.external_customer_ids.push(value),
                "meter_id" => uuid_into("meter_id", &value, &mut q.meter_ids),
                "query" if !org => q.name = Some(value.to_lowercase()),
                "sorting" => {
                    let (desc, criterion) = match value.strip_prefix('-') {
                        Some(c) => (true, c),
                        None => (false, value.as_str()),
                    };
                    if SORTING.contains(&criterion) {
                        q.sorting.push((criterion.to_string(), desc));
                    } else {
                        bad_sorting.get_or_insert(value.clone());
                    }
                }
                n if paging.take(n, &value, &mut page_errors) => {}
                _ => {}
            }
        }
        (q.page, q.limit) = (paging.page, paging.limit());
        errors.extend(page_errors);
        if let Some(value) = bad_sorting {
            errors.push(VErr::new(
                "value_error",
                vec![s("query"), s("sorting")],
                "Invalid sorting criterion.",
                &J::Str(value),
                None,
            ));
        }
        if !errors.is_empty() {
            return Err(Resp::json(422, &error_body(&errors)));
        }
        if q.sorting.is_empty() {
            q.sorting.push(("modified_at".to_string(), true));
        }
        Ok(q)
    }

    fn keeps(&self, cm: &CustomerMeter) -> bool {
        (self.meter_ids.is_empty() || self.meter_ids.contains(&cm.meter.id))
            && self
                .name
                .as_ref()
                .is_none_or(|n| cm.meter.name.to_lowercase().contains(n.as_str()))
    }

    /// A stable sort by each criterion in turn (the first given decides first).
    fn sort(&self, items: &mut [CustomerMeter]) {
        use std::cmp::Ordering;
        let cmp_f = |a: f64, b: f64| a.partial_cmp(&b).unwrap_or(Ordering::Equal);
        items.sort_by(|a, b| {
            for (criterion, desc) in &self.sorting {
                let o = match criterion.as_str() {
                    "created_at" => a.created_at.cmp(&b.created_at),
                    "modified_at" => a.modified_at.cmp(&b.modified_at),
                    "meter_id" => a.meter.id.cmp(&b.meter.id),
                    "meter_name" => a.meter.name.cmp(&b.meter.name),
                    "consumed_units" => cmp_f(a.consumed, b.consumed),
                    "credited_units" => a.credited.cmp(&b.credited),
                    _ => cmp_f(a.balance(), b.balance()),
                };
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
}
