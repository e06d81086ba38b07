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
//! Every machine here speaks the package's one step protocol (`polar-license-wasm-steps`,
//! driven by `pkg-template/drive.js`, the loop every face of the package shares): `start()` and
//! `give(given, body)` answer what it wants next, `{"send": {method, url, headers: [[name,
//! value]], body}}` or `{"done": …}`: the step's value, `{"error": {code, reason, message,
//! retryAfter?, customers?}}` (`code`: the CLI's `portal_error`, docs/interfaces.md §2) or, for
//! a free, Polar's `{"denied": …}`; written with the core's `JsonOut`. Every machine is made
//! from the module's options read once (`Settings`).

#![cfg(target_arch = "wasm32")]

use polar_license::error::{Error, Verdict};
use polar_license::json::JsonOut;
use polar_license::key::Key;
use polar_license::model::LicenseKeyRead;
use polar_license::portal::{
    parse_authenticate, parse_key_page, parse_request_code, recoverable_keys, DevicesStep,
    ListDevices, Portal, PortalError, PortalRequest, SessionToken, MAX_PORTAL_PAGES,
};
use polar_license::proto::{parse_deactivate_for, Api, DeactivateRequest, HttpResponse, Server};
use polar_license_wasm_steps as steps;
use wasm_bindgen::prelude::*;

mod buy;
mod follow;
pub use buy::{Buying, RelayCheckout};
pub use follow::Follower;

/// The module's options, read once (issue #77): the organization and server (`organizationId`,
/// and `baseUrl`, else `server`, else production; `portalUrl`: where the portal and checkouts
/// are when `baseUrl` is the relay, signed mode), checked as the client checks them, and the
/// seller's relay (`relay`, and whether the client is in signed mode, whose base URL is the
/// relay). `devices.js` makes one per `Devices` and every machine here is made from it.
#[wasm_bindgen]
pub struct Settings {
    api: Result<Api, Error>,
    relay_url: Option<String>,
    signed: bool,
}

#[wasm_bindgen]
impl Settings {
    /// The options as the host's `Devices` took them (a bad one is each machine's first end,
    /// `invalid_input` with its field, before anything is sent).
    #[wasm_bindgen(constructor)]
    pub fn new(
        org: &str,
        base_url: Option<String>,
        server: Option<String>,
        portal_url: Option<String>,
        relay_url: Option<String>,
        signed: bool,
    ) -> Settings {
        let server = match (base_url, server) {
            (Some(url), _) => Server::Custom(url),
            (None, Some(server)) => Server::parse(&server),
            (None, None) => Server::Production,
        };
        let api = Api::new(org, &server).and_then(|api| match portal_url {
            Some(url) => api.with_portal(&Server::Custom(url)),
            None => Ok(api),
        });
        Settings {
            api,
            relay_url,
            signed,
        }
    }
}

impl Settings {
    /// The requests' builder, or why the options are refused.
    fn api(&self) -> Result<&Api, Error> {
        self.api.as_ref().map_err(Clone::clone)
    }

    /// Polar's customer portal at the options' server.
    fn portal(&self) -> Result<Portal, PortalError> {
        self.api()
            .map(Portal::for_api)
            .map_err(PortalError::Invalid)
    }

    /// The seller's relay the core's `known_relay` picks: `relay`, else in signed mode the
    /// base URL; `None`: no relay known.
    fn relay(&self) -> Result<Option<&str>, Error> {
        let api = self.api()?;
        Ok(polar_license::portal::known_relay(
            self.relay_url.as_deref(),
            self.signed,
            api.base_url(),
        ))
    }
}

fn send(request: &PortalRequest) -> String {
    steps::send(
        request.method.as_str(),
        &request.url,
        &request.headers,
        &request.body,
        None,
    )
}

/// `{"error": …}`: the portal's typed error (a step's end: `{"done": {"error": …}}`).
fn error(e: &PortalError) -> String {
    let mut o = JsonOut::new();
    o.raw("{").key("error").raw("{").key("code").str(e.code());
    o.key("reason").opt_str(e.reason().map(|r| r.code()));
    o.key("message").str(&e.to_string());
    // What to tell the person, the core's (`PortalError::message`): a face keeps no words of
    // its own for the portal's failures (issue #80).
    let said = e.message();
    o.key("userMessage").str(&said.text());
    o.key("nextStep").str(said.next_step());
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

/// `{"done": …}` with the portal's typed error.
fn failed(e: &PortalError) -> String {
    steps::done(&error(e))
}

/// `{"done": DONE}` (DONE already JSON), or the error.
fn answer(v: Result<String, PortalError>) -> String {
    match v {
        Ok(done) => steps::done(&done),
        Err(e) => failed(&e),
    }
}

/// The request of a step, or its end with the error.
fn sent(v: Result<String, PortalError>) -> String {
    v.unwrap_or_else(|e| failed(&e))
}

/// The response the loop gave, or the failure it had (no answer: `Offline`); a given that is
/// no response is the loop's and this module's mismatch.
fn response(given: &str, body: Vec<u8>) -> Result<HttpResponse, PortalError> {
    match steps::given(given) {
        Some((kind, v)) if kind == "response" => {
            steps::response(&v, body).map_err(PortalError::Offline)
        }
        _ => Err(PortalError::Offline(Error::Protocol {
            status: None,
            detail: "the devices module was given what it did not ask for".to_string(),
        })),
    }
}

/// Which one-request step an [`Exchange`] is: how its answer is read.
enum Read {
    RequestCode,
    SignIn,
    /// A free of an activation of this key (kept out of the answer's words).
    Free(Key),
}

/// A one-request step of the portal (ask for a sign-in code, sign in, free a device): its
/// request, then its answer read.
#[wasm_bindgen]
pub struct Exchange {
    first: String,
    read: Read,
}

#[wasm_bindgen]
impl Exchange {
    /// The request asking Polar to email a sign-in code to `email` (`customer_id`: one of a
    /// `customer_selection_required` answer's, or none); its end `{"done": true}`.
    #[wasm_bindgen(js_name = requestCode)]
    pub fn request_code(settings: &Settings, email: &str, customer_id: Option<String>) -> Exchange {
        let first = sent(settings.portal().and_then(|p| {
            p.request_code_for(email, customer_id.as_deref())
                .map(|r| send(&r))
                .map_err(PortalError::Invalid)
        }));
        Exchange {
            first,
            read: Read::RequestCode,
        }
    }

    /// The request signing in with the emailed `code`; its end `{"done": {"session": TOKEN}}`
    /// (the host keeps it in memory only, never logs it).
    #[wasm_bindgen(js_name = signIn)]
    pub fn sign_in(settings: &Settings, code: &str) -> Exchange {
        let first = sent(settings.portal().and_then(|p| {
            p.authenticate(code)
                .map(|r| send(&r))
                .map_err(PortalError::Invalid)
        }));
        Exchange {
            first,
            read: Read::SignIn,
        }
    }

    /// The public deactivate of `activation_id` of `key` (frees a device; no session needed);
    /// its end `{"done": true}`, or `{"done": {"denied": {reason, detail, userMessage,
    /// status}}}` (Polar's refusal: `not_found` when the device is already freed or not this
    /// key's), or the error (`offline`, `rate_limited`, …).
    pub fn free(settings: &Settings, key: &str, activation_id: &str) -> Exchange {
        let made = settings.api().and_then(|api| {
            polar_license::metadata::check_key(key)?;
            api.deactivate_request(&DeactivateRequest::new(key, activation_id))
        });
        let first = match made {
            Ok(r) => steps::send("POST", &r.url, &r.headers, &r.body, None),
            Err(e) => failed(&PortalError::Invalid(e)),
        };
        Exchange {
            first,
            read: Read::Free(Key::new(key)),
        }
    }

    /// The step's request (or its end, for input refused before anything is sent).
    pub fn start(&self) -> String {
        self.first.clone()
    }

    /// Its answer read: the step's end.
    pub fn give(&self, given: &str, body: Vec<u8>) -> String {
        let r = response(given, body);
        match &self.read {
            Read::RequestCode => answer(
                r.and_then(|r| parse_request_code(&r))
                    .map(|()| "true".to_string()),
            ),
            Read::SignIn => answer(r.and_then(|r| parse_authenticate(&r)).map(|token| {
                let mut o = JsonOut::new();
                o.raw("{")
                    .key("session")
                    .str(token.expose())
                    .raw("}")
                    .done()
            })),
            Read::Free(key) => freed(r, key),
        }
    }
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
                // What tells devices apart (issue #80): the platform its meta records, when
                // the relay last saw it.
                match &d.platform {
                    Some(p) => o.key("platform").str(p),
                    None => o.key("platform").null(),
                };
                match d.last_seen {
                    Some(t) => o.key("lastSeen").int(t.unix_timestamp()),
                    None => o.key("lastSeen").null(),
                };
                o.key("thisMachine").bool(d.this_machine).raw("}");
            }
            o.raw("]");
            // An empty list says why and what to do, in the core's words (issue #80: the gate
            // kept its own).
            if found.devices.is_empty() {
                o.key("userMessage")
                    .str(&polar_license::message::NO_DEVICES.text());
            }
            answer(Ok(o.raw("}").done()))
        }
        DevicesStep::Done(Err(e)) => failed(&e),
    }
}

#[wasm_bindgen]
impl Listing {
    /// The listing of `key`'s devices through `session`, `this_activation` (the activation
    /// this machine holds) marked.
    #[wasm_bindgen(constructor)]
    pub fn new(
        settings: &Settings,
        session: &str,
        key: &str,
        this_activation: Option<String>,
    ) -> Listing {
        match settings.portal() {
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

    /// The listing of `key`'s devices through the seller's relay (issue #64: no session; the
    /// key proves it is the caller's), `this_activation` marked: the relay the settings know
    /// ([`Settings`]); none known ends `not_signed_in` (a sign-in first).
    #[wasm_bindgen(js_name = viaRelay)]
    pub fn via_relay(settings: &Settings, key: &str, this_activation: Option<String>) -> Listing {
        let relayed = settings.relay().and_then(|relay| {
            let api = settings.api()?;
            relay.map(|url| Portal::for_relay(api, url)).transpose()
        });
        match relayed {
            Ok(Some(p)) => Listing {
                machine: Some(ListDevices::via_relay(p, Key::new(key), this_activation)),
                first: None,
            },
            // No session and no relay known: a sign-in first.
            Ok(None) => Listing {
                machine: None,
                first: Some(PortalError::NotSignedIn),
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
            (None, Some(e)) => failed(&e),
            (None, None) => failed(&PortalError::NotSignedIn),
        }
    }

    /// What the loop gave for the last step's request: the next step.
    pub fn give(&mut self, given: &str, body: Vec<u8>) -> String {
        match &mut self.machine {
            Some(m) => step(m.answer(response(given, body))),
            None => failed(&PortalError::NotSignedIn),
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
    pub fn new(settings: &Settings, session: &str, now: f64) -> Recovery {
        // Seconds since 1970 from the host's clock: far inside i64 (a NaN is 0).
        #[allow(clippy::cast_possible_truncation)]
        let now = now as i64;
        Recovery {
            portal: settings.portal().map_err(Some),
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

    /// What the loop gave for the last page's request: the next page's request, or
    /// `{"done": {"keys": [{id, displayKey, key, benefitId, createdAt, limitActivations,
    /// expiresAt}]}}` (`key` whole: for the activation only, never shown; `createdAt`, unix
    /// seconds: with the benefit, what tells two keys of one customer apart on a screen).
    pub fn give(&mut self, given: &str, body: Vec<u8>) -> String {
        let page = match response(given, body).and_then(|r| parse_key_page(&r)) {
            Ok(page) => page,
            Err(e) => return failed(&e),
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
            o.key("createdAt").int(k.created_at.unix_timestamp());
            o.key("limitActivations").opt_int(k.limit_activations);
            o.key("expiresAt")
                .opt_int(k.expires_at.map(|e| e.unix_timestamp()))
                .raw("}");
        }
        o.raw("]");
        // None to activate here: why and what to do, in the core's words (issue #80).
        if keys.is_empty() {
            o.key("userMessage")
                .str(&polar_license::message::NO_KEYS.text());
        }
        answer(Ok(o.raw("}").done()))
    }
}

/// Polar's answer to a free: `{"done": true}`, or Polar's refusal, or the error.
fn freed(r: Result<HttpResponse, PortalError>, key: &Key) -> String {
    let read = r.and_then(|r| {
        parse_deactivate_for(&r, Some(key)).map_err(|e| match e {
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
            o.key("status").uint(u64::from(d.status)).raw("}}");
            steps::done(&o.done())
        }
        Err(e) => failed(&e),
    }
}

/// The module's allocator (single-threaded wasm: no atomics), as the engine's.
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
