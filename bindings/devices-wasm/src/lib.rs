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
//! A rotated key's follow (`Follower`, issue #64 item 4) is the core's follow machine, whose
//! reads and writes of the client's cache and requests are done by the app's `LicenseClient`
//! (its drive loop, through the door `license.js` keeps for this module): see `follow.rs`.
//!
//! Every function answers JSON: `{"send": {method, url, headers: [[name, value]], body}}` (a
//! request for the host to send), `{"done": …}`, or `{"error": {code, reason, message,
//! retryAfter?, customers?}}` (`code`: the CLI's `portal_error`, docs/interfaces.md §2),
//! written with the core's `JsonOut`; the options come as three strings and an answer's
//! headers as `name\nvalue\n…` (fetch's header names and values hold no line break), so this
//! module parses no JSON of its own (serde_json's readers stay out of its wasm).

#![cfg(target_arch = "wasm32")]

use polar_license::error::{Error, Verdict};
use polar_license::json::JsonOut;
use polar_license::key::Key;
use polar_license::model::LicenseKeyRead;
use polar_license::portal::{
    parse_authenticate, parse_key_page, parse_request_code, recoverable_keys, DevicesStep,
    ListDevices, Portal, PortalError, PortalRequest, SessionToken, MAX_PORTAL_PAGES,
};
use polar_license::proto::{parse_deactivate, Api, DeactivateRequest, HttpResponse, Server};
use wasm_bindgen::prelude::*;

mod follow;
pub use follow::Follower;

/// The organization and server of the module's options (`organizationId`, and `baseUrl`,
/// else `server`, else production), checked as the client checks them.
fn api(
    organization_id: &str,
    base_url: Option<String>,
    server: Option<String>,
) -> Result<Api, Error> {
    let server = match (base_url, server) {
        (Some(url), _) => Server::Custom(url),
        (None, Some(server)) => Server::parse(&server),
        (None, None) => Server::Production,
    };
    Api::new(organization_id, &server)
}

fn portal(
    org: &str,
    base_url: Option<String>,
    server: Option<String>,
) -> Result<Portal, PortalError> {
    api(org, base_url, server)
        .map(|api| Portal::for_api(&api))
        .map_err(PortalError::Invalid)
}

/// `{"send": …}`: a request for the host to send.
fn send_parts<K: AsRef<str>>(
    method: &str,
    url: &str,
    headers: &[(K, String)],
    body: &[u8],
) -> String {
    let mut o = JsonOut::new();
    o.raw("{").key("send").request(method, url, headers, body);
    o.raw("}").done()
}

fn send(request: &PortalRequest) -> String {
    send_parts(
        request.method.as_str(),
        &request.url,
        &request.headers,
        &request.body,
    )
}

fn error(e: &PortalError) -> String {
    let mut o = JsonOut::new();
    o.raw("{").key("error").raw("{").key("code").str(e.code());
    o.key("reason").opt_str(e.reason().map(|r| r.code()));
    o.key("message").str(&e.to_string());
    if let PortalError::Invalid(Error::InvalidInput { field, .. }) = e {
        o.key("field").str(field);
    }
    if let PortalError::RateLimited(wait) = e {
        o.key("retryAfter")
            .opt_int(wait.and_then(|w| i64::try_from(w).ok()));
    }
    if let PortalError::CustomerSelectionRequired(customers) = e {
        o.key("customers").raw("[");
        for (i, (id, name)) in customers.iter().enumerate() {
            o.raw(if i == 0 { "{" } else { ",{" });
            o.key("id")
                .str(id)
                .key("name")
                .opt_str(name.as_deref())
                .raw("}");
        }
        o.raw("]");
    }
    o.raw("}}").done()
}

/// `{"done": DONE}` (DONE already JSON), or the error.
fn answer(v: Result<String, PortalError>) -> String {
    match v {
        Ok(done) => ["{\"done\":", &done, "}"].concat(),
        Err(e) => error(&e),
    }
}

/// A request's answer, or the error.
fn sent(v: Result<String, PortalError>) -> String {
    v.unwrap_or_else(|e| error(&e))
}

/// The response the host got, or the failure it had (no answer: `Offline`).
fn response(status: u16, headers: &str, body: &str) -> Result<HttpResponse, PortalError> {
    HttpResponse::from_host(status, headers, body).map_err(PortalError::Offline)
}

/// The request asking Polar to email a sign-in code to `email` (`customer_id`: one of a
/// `customer_selection_required` answer's, or none).
#[wasm_bindgen(js_name = requestCode)]
pub fn request_code(
    org: &str,
    base_url: Option<String>,
    server: Option<String>,
    email: &str,
    customer_id: Option<String>,
) -> String {
    sent(portal(org, base_url, server).and_then(|p| {
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
            .map(|()| "true".to_string()),
    )
}

/// The request signing in with the emailed `code`.
#[wasm_bindgen(js_name = signIn)]
pub fn sign_in(org: &str, base_url: Option<String>, server: Option<String>, code: &str) -> String {
    sent(portal(org, base_url, server).and_then(|p| {
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
            .map(|token| {
                let mut o = JsonOut::new();
                o.raw("{")
                    .key("session")
                    .str(token.expose())
                    .raw("}")
                    .done()
            }),
    )
}

/// The core's device listing (`polar_license::portal::ListDevices`), one step at a time.
#[wasm_bindgen]
pub struct Listing {
    machine: Option<ListDevices>,
    first: Option<PortalError>,
}

fn step(step: DevicesStep) -> String {
    match step {
        DevicesStep::Send(request) => send(&request),
        DevicesStep::Done(Ok(found)) => {
            let mut o = JsonOut::new();
            o.raw("{").key("keyId").str(&found.key_id);
            o.key("limitActivations").opt_int(found.limit_activations);
            o.key("devices").raw("[");
            for (i, d) in found.devices.iter().enumerate() {
                o.raw(if i == 0 { "{" } else { ",{" });
                o.key("id").str(&d.id).key("label").str(&d.label);
                o.key("activatedAt").int(d.activated_at.unix_timestamp());
                o.key("thisMachine").bool(d.this_machine).raw("}");
            }
            answer(Ok(o.raw("]}").done()))
        }
        DevicesStep::Done(Err(e)) => error(&e),
    }
}

#[wasm_bindgen]
impl Listing {
    /// The listing of `key`'s devices through `session`, `this_activation` (the activation
    /// this machine holds) marked.
    #[wasm_bindgen(constructor)]
    pub fn new(
        org: &str,
        base_url: Option<String>,
        server: Option<String>,
        session: &str,
        key: &str,
        this_activation: Option<String>,
    ) -> Listing {
        match portal(org, base_url, server) {
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

    /// The listing of `key`'s devices through the seller's relay at `relay_url` (issue #64: no
    /// session; the key proves it is the caller's), `this_activation` marked.
    #[wasm_bindgen(js_name = viaRelay)]
    pub fn via_relay(
        org: &str,
        base_url: Option<String>,
        server: Option<String>,
        relay_url: &str,
        key: &str,
        this_activation: Option<String>,
    ) -> Listing {
        let relayed = api(org, base_url, server).and_then(|api| Portal::for_relay(&api, relay_url));
        match relayed {
            Ok(p) => Listing {
                machine: Some(ListDevices::via_relay(p, Key::new(key), this_activation)),
                first: None,
            },
            Err(e) => Listing {
                machine: None,
                first: Some(PortalError::Invalid(e)),
            },
        }
    }

    /// The first step.
    pub fn start(&mut self) -> String {
        match (&mut self.machine, self.first.take()) {
            (Some(m), _) => step(m.start()),
            (None, Some(e)) => error(&e),
            (None, None) => error(&PortalError::NotSignedIn),
        }
    }

    /// The answer to the last step's request (`status` 0: none came, `body` says why).
    pub fn answer(&mut self, status: u16, headers: &str, body: &str) -> String {
        match &mut self.machine {
            Some(m) => step(m.answer(response(status, headers, body))),
            None => error(&PortalError::NotSignedIn),
        }
    }
}

/// Key recovery ("I lost my key"): the signed-in customer's keys, a page of 100 at a time (at
/// most [`MAX_PORTAL_PAGES`], as the native client's `customer_keys` walks them), then the
/// ones this machine can activate (the core's [`recoverable_keys`]: granted, unexpired at
/// `now`, newest first).
#[wasm_bindgen]
pub struct Recovery {
    portal: Result<Portal, Option<PortalError>>,
    session: SessionToken,
    now: i64,
    page: u32,
    keys: Vec<LicenseKeyRead>,
}

#[wasm_bindgen]
impl Recovery {
    /// The walk through `session`; `now`: the host's clock, unix seconds.
    #[wasm_bindgen(constructor)]
    pub fn new(
        org: &str,
        base_url: Option<String>,
        server: Option<String>,
        session: &str,
        now: f64,
    ) -> Recovery {
        // Seconds since 1970 from the host's clock: far inside i64 (a NaN is 0).
        #[allow(clippy::cast_possible_truncation)]
        let now = now as i64;
        Recovery {
            portal: portal(org, base_url, server).map_err(Some),
            session: SessionToken::new(session),
            now,
            page: 1,
            keys: Vec::new(),
        }
    }

    /// The first step (the first page's request).
    pub fn start(&mut self) -> String {
        self.page = 1;
        self.keys.clear();
        self.request()
    }

    fn request(&mut self) -> String {
        sent(match &mut self.portal {
            Ok(p) => p
                .list_keys(&self.session, self.page)
                .map(|r| send(&r))
                .map_err(PortalError::Invalid),
            Err(e) => Err(e.take().unwrap_or(PortalError::NotSignedIn)),
        })
    }

    /// The answer to the last page's request: the next page's request, or `{"done": {"keys":
    /// [{id, displayKey, key, benefitId, limitActivations, expiresAt}]}}` (`key` whole: for the
    /// activation only, never shown).
    pub fn answer(&mut self, status: u16, headers: &str, body: &str) -> String {
        let page = match response(status, headers, body).and_then(|r| parse_key_page(&r)) {
            Ok(page) => page,
            Err(e) => return error(&e),
        };
        self.keys.extend(page.items);
        if u64::from(self.page) < page.max_page && self.page < MAX_PORTAL_PAGES {
            self.page += 1;
            return self.request();
        }
        let mut o = JsonOut::new();
        o.raw("{").key("keys").raw("[");
        let keys = recoverable_keys(std::mem::take(&mut self.keys), self.now);
        for (i, k) in keys.iter().enumerate() {
            o.raw(if i == 0 { "{" } else { ",{" });
            o.key("id").str(&k.id).key("displayKey").str(&k.display_key);
            o.key("key")
                .str(k.key.expose())
                .key("benefitId")
                .str(&k.benefit_id);
            o.key("limitActivations").opt_int(k.limit_activations);
            o.key("expiresAt")
                .opt_int(k.expires_at.map(|e| e.unix_timestamp()))
                .raw("}");
        }
        answer(Ok(o.raw("]}").done()))
    }
}

/// The public deactivate of `activation_id` of `key` (frees a device; no session needed).
#[wasm_bindgen(js_name = free)]
pub fn free(
    org: &str,
    base_url: Option<String>,
    server: Option<String>,
    key: &str,
    activation_id: &str,
) -> String {
    let made = api(org, base_url, server).and_then(|api| {
        polar_license::metadata::check_key(key)?;
        api.deactivate_request(&DeactivateRequest::new(key, activation_id))
    });
    match made {
        Ok(r) => send_parts("POST", &r.url, &r.headers, &r.body),
        Err(e) => error(&PortalError::Invalid(e)),
    }
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
    match read {
        Ok(Verdict::Accepted(())) => answer(Ok("true".to_string())),
        Ok(Verdict::Denied(d)) => {
            let mut o = JsonOut::new();
            o.raw("{")
                .key("denied")
                .raw("{")
                .key("reason")
                .str(d.reason.code());
            o.key("detail")
                .str(&d.detail)
                .key("userMessage")
                // A portal answer never carries why a key stopped (its words stay out).
                .str(&d.reason_message());
            o.key("status").uint(u64::from(d.status)).raw("}}").done()
        }
        Err(e) => error(&e),
    }
}

/// The module's allocator (single-threaded wasm: no atomics), as the engine's.
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
