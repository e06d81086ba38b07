//! Polar's webhook routes for organization tokens (`/v1/webhooks/…`, the official SDK's
//! `webhooks.*` calls): endpoints (list, create, get, update, delete, reset the secret), the
//! deliveries list and a redelivery. Bodies follow the SDK's `WebhookEndpoint`,
//! `WebhookEndpointCreate`, `WebhookEndpointUpdate` and `WebhookDelivery`.

use uuid::Uuid;

use super::portal::query_pairs;
use super::{Auth, Core, Exchange, Pending, Resp, Step, Time};
use crate::json::{loads_bytes, s, J};
use crate::util::micros;
use crate::validate::{error_body, path_uuid_error, VErr};
use crate::webhooks::{new_secret, page, render_endpoint, EVENT_TYPES};

/// A webhook route that waits for its body.
#[derive(Debug, Clone)]
pub(crate) enum WebhookOp {
    Create,
    Update(Uuid),
}

const READ: &[&str] = &["webhooks:read", "webhooks:write"];
const WRITE: &[&str] = &["webhooks:write"];

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn verr(typ: &'static str, loc: &[&str], msg: &str, input: &J) -> VErr {
    VErr::new(typ, loc.iter().map(|p| s(p)).collect(), msg, input, None)
}

/// pydantic's message for a value outside an enum: `Input should be 'a', 'b' or 'c'`.
fn enum_msg(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("Input should be {} or {last}", rest.join(", "))
        }
        Some((last, _)) => format!("Input should be {last}"),
        None => "Input should be a valid value".to_string(),
    }
}

fn get<'a>(items: &'a [(String, J)], name: &str) -> Option<&'a J> {
    items.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The fields of a create or update body, checked; `errors` collects pydantic's entries.
#[derive(Debug, Default)]
struct Fields {
    url: Option<String>,
    name: Option<Option<String>>,
    api_version: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
}

impl Core {
    /// `/v1/webhooks/…` after the auth layer: the answer, or the body to read.
    pub(super) fn webhook_route(&mut self, ex: &Exchange, auth: Auth, now: Time) -> Step {
        let rest = ex.path.strip_prefix("/v1/webhooks").unwrap_or("");
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let method = ex.method();
        let (allowed, scopes): (&[&str], &[&str]) = match parts.as_slice() {
            ["endpoints"] => (
                &["GET", "POST"],
                if method == "POST" { WRITE } else { READ },
            ),
            ["endpoints", _] => (
                &["GET", "PATCH", "DELETE"],
                if method == "GET" || method == "HEAD" {
                    READ
                } else {
                    WRITE
                },
            ),
            ["endpoints", _, "secret"] => (&["PATCH"], WRITE),
            ["deliveries"] => (&["GET"], READ),
            ["events", _, "redeliver"] => (&["POST"], WRITE),
            _ => return Step::Done(Resp::detail(404, "Not Found")),
        };
        let method = if method == "HEAD" { "GET" } else { method };
        if !allowed.contains(&method) {
            let mut r = Resp::detail(405, "Method Not Allowed");
            r.set("allow", &allowed.join(", "));
            return Step::Done(r);
        }
        let organization_id = match auth.organization_with(scopes) {
            Ok(org) => org,
            Err(r) => return Step::Done(r),
        };
        // A path id must be a UUID v4 (pydantic's 422 otherwise).
        let path_id = match parts.as_slice() {
            ["endpoints", id] | ["endpoints", id, "secret"] | ["events", id, "redeliver"] => {
                if let Some(e) = path_uuid_error("id", id) {
                    return Step::Done(Resp::json(422, &error_body(&[e])));
                }
                Uuid::parse_str(id).ok()
            }
            _ => None,
        };
        let not_found = || Resp::error(404, "ResourceNotFound", "Not found");
        let r = match (parts.as_slice(), method, path_id) {
            (["endpoints"], "GET", _) => {
                let params = query_pairs(&ex.head.target);
                let wanted = param(&params, "organization_id");
                let items = self
                    .webhooks
                    .endpoints
                    .iter()
                    .filter(|e| e.organization_id == organization_id)
                    .filter(|e| wanted.is_none_or(|w| w == e.organization_id.to_string()))
                    .map(render_endpoint)
                    .collect();
                let (page_no, limit) = paging(&params);
                Resp::json(200, &page(items, page_no, limit))
            }
            (["endpoints"], "POST", _) => {
                return Step::Body(Pending::Webhook {
                    op: WebhookOp::Create,
                    organization_id,
                })
            }
            (["endpoints", _], "GET", Some(id)) => {
                match self.webhooks.endpoint(organization_id, id) {
                    Some(e) => Resp::json(200, &render_endpoint(e)),
                    None => not_found(),
                }
            }
            (["endpoints", _], "PATCH", Some(id)) => {
                if self.webhooks.endpoint(organization_id, id).is_none() {
                    not_found()
                } else {
                    return Step::Body(Pending::Webhook {
                        op: WebhookOp::Update(id),
                        organization_id,
                    });
                }
            }
            (["endpoints", _], "DELETE", Some(id)) => {
                if self.webhooks.delete_endpoint(organization_id, id) {
                    Resp::new(204)
                } else {
                    not_found()
                }
            }
            (["endpoints", _, "secret"], "PATCH", Some(id)) => {
                let secret = self.new_webhook_secret();
                let wall = micros(self.clock(now));
                match self.webhooks.endpoint_mut(organization_id, id) {
                    Some(e) => {
                        e.secret = secret;
                        e.modified_at = Some(wall);
                        Resp::json(200, &render_endpoint(e))
                    }
                    None => not_found(),
                }
            }
            (["deliveries"], "GET", _) => {
                let params = query_pairs(&ex.head.target);
                let endpoint_id =
                    param(&params, "endpoint_id").and_then(|v| Uuid::parse_str(v).ok());
                let succeeded = match param(&params, "succeeded") {
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    _ => None,
                };
                let items = self.webhooks.deliveries(
                    organization_id,
                    endpoint_id,
                    succeeded,
                    param(&params, "event_type"),
                );
                let (page_no, limit) = paging(&params);
                Resp::json(200, &page(items, page_no, limit))
            }
            (["events", _, "redeliver"], "POST", Some(id)) => {
                if self.webhooks.redeliver(organization_id, id, now.monotonic) {
                    Resp::json_text(202, "null")
                } else {
                    not_found()
                }
            }
            _ => Resp::detail(404, "Not Found"),
        };
        Step::Done(r)
    }

    /// A fresh `whsec_…` secret (32 random bytes from the core's id source).
    fn new_webhook_secret(&mut self) -> String {
        let a = self.store.next_id();
        let b = self.store.next_id();
        let mut random = [0u8; 32];
        random[..16].copy_from_slice(a.as_bytes());
        random[16..].copy_from_slice(b.as_bytes());
        new_secret(random)
    }

    /// A create or update body, read.
    pub(super) fn webhook_with_body(
        &mut self,
        ex: &Exchange,
        op: WebhookOp,
        organization_id: Uuid,
        raw: Option<&[u8]>,
        now: Time,
    ) -> Resp {
        let Some(raw) = raw else {
            return Resp::bad_request();
        };
        let body = if raw.is_empty() {
            J::Null
        } else {
            match loads_bytes(raw) {
                Ok(v) => v,
                Err(_) => {
                    let e = verr(
                        "json_invalid",
                        &["body"],
                        "JSON decode error",
                        &J::Obj(Vec::new()),
                    );
                    return Resp::json(422, &error_body(&[e]));
                }
            }
        };
        let create = matches!(op, WebhookOp::Create);
        let fields = match self.webhook_fields(&body, create) {
            Ok(f) => f,
            Err(errors) => return Resp::json(422, &error_body(&errors)),
        };
        let wall = micros(self.clock(now));
        match op {
            WebhookOp::Create => {
                let id = self.store.next_id();
                let secret = self.new_webhook_secret();
                let api_version = fields.api_version.unwrap_or_else(|| ex.version.clone());
                let endpoint = self.webhooks.add_endpoint(
                    id,
                    organization_id,
                    fields.url.unwrap_or_default(),
                    fields.name.flatten(),
                    api_version,
                    fields.events.unwrap_or_default(),
                    secret,
                    wall,
                );
                Resp::json(201, &render_endpoint(endpoint))
            }
            WebhookOp::Update(id) => {
                let reenable = fields.enabled == Some(true);
                let Some(e) = self.webhooks.endpoint_mut(organization_id, id) else {
                    return Resp::error(404, "ResourceNotFound", "Not found");
                };
                if let Some(url) = fields.url {
                    e.url = url;
                }
                if let Some(name) = fields.name {
                    e.name = name;
                }
                if let Some(v) = fields.api_version {
                    e.api_version = v;
                }
                if let Some(events) = fields.events {
                    e.events = events;
                }
                if let Some(enabled) = fields.enabled {
                    e.enabled = enabled;
                }
                e.modified_at = Some(wall);
                let answer = render_endpoint(e);
                if reenable {
                    self.webhooks.reset_failures(id);
                }
                Resp::json(200, &answer)
            }
        }
    }

    /// Checks a `WebhookEndpointCreate` (`create`) or `WebhookEndpointUpdate` body as pydantic
    /// would: every error, in field order.
    fn webhook_fields(&self, body: &J, create: bool) -> Result<Fields, Vec<VErr>> {
        let items = match body {
            J::Obj(items) => items,
            J::Null if create => {
                return Err(vec![verr("missing", &["body"], "Field required", &J::Null)])
            }
            J::Null => return Ok(Fields::default()),
            other => {
                return Err(vec![verr(
                    "model_attributes_type",
                    &["body"],
                    "Input should be a valid dictionary or object to extract fields from",
                    other,
                )])
            }
        };
        let mut errors = Vec::new();
        let mut fields = Fields::default();
        // A create body's required field that is absent (its error pushed).
        let missing = |name: &str, errors: &mut Vec<VErr>| {
            let absent = create && get(items, name).is_none();
            if absent {
                errors.push(verr("missing", &["body", name], "Field required", body));
            }
            absent
        };
        // url
        if !missing("url", &mut errors) {
            match get(items, "url") {
                None => {}
                Some(J::Null) if !create => {}
                Some(J::Str(url)) if url.starts_with("https://") || url.starts_with("http://") => {
                    fields.url = Some(url.clone());
                }
                Some(J::Str(url)) => errors.push(verr(
                    "url_parsing",
                    &["body", "url"],
                    "Input should be a valid URL, relative URL without a base",
                    &J::Str(url.clone()),
                )),
                Some(other) => errors.push(verr(
                    "url_type",
                    &["body", "url"],
                    "URL input should be a string or URL",
                    other,
                )),
            }
        }
        // name
        match get(items, "name") {
            None => {}
            Some(J::Null) => fields.name = Some(None),
            Some(J::Str(name)) => fields.name = Some(Some(name.clone())),
            Some(other) => errors.push(verr(
                "string_type",
                &["body", "name"],
                "Input should be a valid string",
                other,
            )),
        }
        // api_version
        match get(items, "api_version") {
            None | Some(J::Null) => {}
            Some(J::Str(v)) if self.options.api_versions.iter().any(|a| a == v) => {
                fields.api_version = Some(v.clone());
            }
            Some(other) => {
                let served: Vec<&str> = self
                    .options
                    .api_versions
                    .iter()
                    .map(String::as_str)
                    .collect();
                errors.push(verr(
                    "enum",
                    &["body", "api_version"],
                    &enum_msg(&served),
                    other,
                ));
            }
        }
        // format: only `raw` is delivered here.
        if !missing("format", &mut errors) {
            match get(items, "format") {
                None => {}
                Some(J::Null) if !create => {}
                Some(J::Str(f)) if f == "raw" => {}
                Some(J::Str(f)) if f == "discord" || f == "slack" => errors.push(verr(
                    "value_error",
                    &["body", "format"],
                    "Value error, the emulator delivers only the raw format",
                    &J::Str(f.clone()),
                )),
                Some(other) => errors.push(verr(
                    "enum",
                    &["body", "format"],
                    &enum_msg(&["raw", "discord", "slack"]),
                    other,
                )),
            }
        }
        // events
        if !missing("events", &mut errors) {
            match get(items, "events") {
                None => {}
                Some(J::Null) if !create => {}
                Some(J::Arr(list)) => {
                    let mut events = Vec::new();
                    for (i, v) in list.iter().enumerate() {
                        match v {
                            J::Str(t) if EVENT_TYPES.contains(&t.as_str()) => {
                                if !events.contains(t) {
                                    events.push(t.clone());
                                }
                            }
                            other => errors.push(VErr {
                                typ: "enum",
                                loc: vec![s("body"), s("events"), J::Int(i as i128)],
                                msg: enum_msg(EVENT_TYPES),
                                input: other.clone(),
                                ctx: None,
                            }),
                        }
                    }
                    fields.events = Some(events);
                }
                Some(other) => errors.push(verr(
                    "list_type",
                    &["body", "events"],
                    "Input should be a valid list",
                    other,
                )),
            }
        }
        // enabled (update only)
        if !create {
            match get(items, "enabled") {
                None | Some(J::Null) => {}
                Some(J::Bool(b)) => fields.enabled = Some(*b),
                Some(other) => errors.push(verr(
                    "bool_type",
                    &["body", "enabled"],
                    "Input should be a valid boolean",
                    other,
                )),
            }
        }
        if errors.is_empty() {
            Ok(fields)
        } else {
            Err(errors)
        }
    }
}

/// `page` (default 1) and `limit` (default 10, at most 100) of a list route's query.
fn paging(params: &[(String, String)]) -> (usize, usize) {
    let page = param(params, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let limit = param(params, "limit")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|l| *l >= 1)
        .unwrap_or(10)
        .min(100);
    (page, limit)
}
