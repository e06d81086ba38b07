//! The npm package's devices module (`polar-license/devices`, issue #64): the core's
//! customer-portal steps for `wasm32-unknown-unknown` only (natively this crate is empty).
//!
//! Out of activations, an app signs in with the code Polar emails, lists the key's devices
//! (this machine's marked), frees one by id and activates here. Every request is built and
//! every answer read by the core (`polar_license::portal`: `Portal`, the `ListDevices` machine,
//! `devices_of`; `proto`'s public deactivate); `devices.js` only sends what this module asks
//! over the host's `fetch` and hands the answer back. The default entry's wasm carries none of
//! it: this module is loaded on the first call of `polar-license/devices`.
//!
//! Every function answers JSON: `{"send": {method, url, headers: [[name, value]], body}}` (a
//! request for the host to send), `{"done": …}`, or `{"error": {code, reason, message,
//! retryAfter?, customers?}}` (`code`: the CLI's `portal_error`, docs/interfaces.md §2).

#![cfg(target_arch = "wasm32")]

use polar_license::error::{Error, Verdict};
use polar_license::key::Key;
use polar_license::portal::{
    parse_authenticate, parse_request_code, DevicesStep, ListDevices, Portal, PortalError,
    PortalRequest, SessionToken,
};
use polar_license::proto::{parse_deactivate, Api, DeactivateRequest, HttpResponse, Server};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

/// The organization and server of the module's options (JSON: `organizationId`, and `baseUrl`,
/// else `server`, else production), checked as the client checks them.
fn api(options: &str) -> Result<Api, Error> {
    let o: Value = serde_json::from_str(options).unwrap_or(Value::Null);
    let text = |name: &str| o.get(name).and_then(Value::as_str).map(str::to_string);
    let server = match (text("baseUrl"), text("server")) {
        (Some(url), _) => Server::Custom(url),
        (None, Some(server)) => Server::parse(&server),
        (None, None) => Server::Production,
    };
    Api::new(&text("organizationId").unwrap_or_default(), &server)
}

fn portal(options: &str) -> Result<Portal, PortalError> {
    api(options)
        .map(|api| Portal::for_api(&api))
        .map_err(PortalError::Invalid)
}

fn send(request: &PortalRequest) -> Value {
    let headers: Vec<Value> = request.headers.iter().map(|(k, v)| json!([k, v])).collect();
    json!({ "send": {
        "method": request.method.as_str(),
        "url": request.url,
        "headers": headers,
        "body": String::from_utf8_lossy(&request.body),
    }})
}

fn error(e: &PortalError) -> Value {
    let mut o = json!({
        "code": e.code(),
        "reason": e.reason().map(|r| r.code()),
        "message": e.to_string(),
    });
    if let PortalError::Invalid(Error::InvalidInput { field, .. }) = e {
        o["field"] = json!(field);
    }
    if let PortalError::RateLimited(wait) = e {
        o["retryAfter"] = json!(wait);
    }
    if let PortalError::CustomerSelectionRequired(customers) = e {
        o["customers"] = customers
            .iter()
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect();
    }
    json!({ "error": o })
}

fn answer(v: Result<Value, PortalError>) -> String {
    match v {
        Ok(v) => v,
        Err(e) => error(&e),
    }
    .to_string()
}

/// The response the host got (`headers`: JSON `[[name, value]]`), or the failure it had
/// (`status` 0: no answer; `body` the host's description of why).
fn response(status: u16, headers: &str, body: &str) -> Result<HttpResponse, PortalError> {
    if status == 0 {
        return Err(PortalError::Offline(Error::Offline {
            timeout: body.contains("timed out"),
            detail: body.to_string(),
        }));
    }
    let pairs: Vec<(String, String)> = serde_json::from_str(headers).unwrap_or_default();
    let mut r = HttpResponse::new(status, body.as_bytes().to_vec());
    for (name, value) in pairs {
        r = r.with_header(&name.to_ascii_lowercase(), &value);
    }
    Ok(r)
}

/// The request asking Polar to email a sign-in code to `email` (`customer_id`: one of a
/// `customer_selection_required` answer's, or none).
#[wasm_bindgen(js_name = requestCode)]
pub fn request_code(options: &str, email: &str, customer_id: Option<String>) -> String {
    answer(portal(options).and_then(|p| {
        p.request_code_for(email, customer_id.as_deref())
            .map(|r| send(&r))
            .map_err(PortalError::Invalid)
    }))
}

/// Polar's answer to [`request_code`]: `{"done": true}` or the typed error.
#[wasm_bindgen(js_name = requestCodeAnswer)]
pub fn request_code_answer(status: u16, headers: &str, body: &str) -> String {
    answer(
        response(status, headers, body)
            .and_then(|r| parse_request_code(&r))
            .map(|()| json!({ "done": true })),
    )
}

/// The request signing in with the emailed `code`.
#[wasm_bindgen(js_name = signIn)]
pub fn sign_in(options: &str, code: &str) -> String {
    answer(portal(options).and_then(|p| {
        p.authenticate(code)
            .map(|r| send(&r))
            .map_err(PortalError::Invalid)
    }))
}

/// Polar's answer to [`sign_in`]: `{"done": {"session": TOKEN}}` (the host keeps it in memory
/// only, never logs it) or the typed error.
#[wasm_bindgen(js_name = signInAnswer)]
pub fn sign_in_answer(status: u16, headers: &str, body: &str) -> String {
    answer(
        response(status, headers, body)
            .and_then(|r| parse_authenticate(&r))
            .map(|token| json!({ "done": { "session": token.expose() } })),
    )
}

/// The core's device listing (`polar_license::portal::ListDevices`), one step at a time.
#[wasm_bindgen]
pub struct Listing {
    machine: Option<ListDevices>,
    first: Option<PortalError>,
}

fn step(step: DevicesStep) -> String {
    answer(match step {
        DevicesStep::Send(request) => Ok(send(&request)),
        DevicesStep::Done(Ok(found)) => {
            let devices: Vec<Value> = found
                .devices
                .iter()
                .map(|d| {
                    json!({
                        "id": d.id,
                        "label": d.label,
                        "activatedAt": d.activated_at.unix_timestamp(),
                        "thisMachine": d.this_machine,
                    })
                })
                .collect();
            Ok(json!({ "done": {
                "keyId": found.key_id,
                "limitActivations": found.limit_activations,
                "devices": devices,
            }}))
        }
        DevicesStep::Done(Err(e)) => Err(e),
    })
}

#[wasm_bindgen]
impl Listing {
    /// The listing of `key`'s devices through `session`, `this_activation` (the activation
    /// this machine holds) marked.
    #[wasm_bindgen(constructor)]
    pub fn new(
        options: &str,
        session: &str,
        key: &str,
        this_activation: Option<String>,
    ) -> Listing {
        match portal(options) {
            Ok(p) => Listing {
                machine: Some(ListDevices::new(
                    p,
                    SessionToken::new(session),
                    Key::new(key),
                    this_activation,
                )),
                first: None,
            },
            Err(e) => Listing {
                machine: None,
                first: Some(e),
            },
        }
    }

    /// The first step.
    pub fn start(&mut self) -> String {
        match (&mut self.machine, self.first.take()) {
            (Some(m), _) => step(m.start()),
            (None, Some(e)) => error(&e).to_string(),
            (None, None) => error(&PortalError::NotSignedIn).to_string(),
        }
    }

    /// The answer to the last step's request (`status` 0: none came, `body` says why).
    pub fn answer(&mut self, status: u16, headers: &str, body: &str) -> String {
        match &mut self.machine {
            Some(m) => step(m.answer(response(status, headers, body))),
            None => error(&PortalError::NotSignedIn).to_string(),
        }
    }
}

/// The public deactivate of `activation_id` of `key` (frees a device; no session needed).
#[wasm_bindgen(js_name = free)]
pub fn free(options: &str, key: &str, activation_id: &str) -> String {
    let made = api(options).and_then(|api| {
        polar_license::metadata::check_key(key)?;
        api.deactivate_request(&DeactivateRequest::new(key, activation_id))
    });
    answer(match made {
        Ok(r) => {
            let headers: Vec<Value> = r.headers.iter().map(|(k, v)| json!([k, v])).collect();
            Ok(json!({ "send": {
                "method": "POST",
                "url": r.url,
                "headers": headers,
                "body": String::from_utf8_lossy(&r.body),
            }}))
        }
        Err(e) => Err(PortalError::Invalid(e)),
    })
}

/// Polar's answer to [`free`]: `{"done": true}`, or `{"denied": {reason, detail, userMessage,
/// status}}` (Polar's refusal: `not_found` when the device is already freed or not this
/// key's), or the error (`offline`, `rate_limited`, …).
#[wasm_bindgen(js_name = freeAnswer)]
pub fn free_answer(status: u16, headers: &str, body: &str) -> String {
    let read = response(status, headers, body).and_then(|r| {
        parse_deactivate(&r).map_err(|e| match e {
            Error::RateLimited { retry_after, .. } => PortalError::RateLimited(retry_after),
            e => PortalError::Offline(e),
        })
    });
    answer(read.map(|v| match v {
        Verdict::Accepted(()) => json!({ "done": true }),
        Verdict::Denied(d) => json!({ "denied": {
            "reason": d.reason.code(),
            "detail": d.detail,
            "userMessage": d.user_message(),
            "status": d.status,
        }}),
    }))
}

/// The module's allocator (single-threaded wasm: no atomics), as the engine's.
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
