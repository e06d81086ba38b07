//! The customer portal, sans-IO (docs/polar-api.md §16.1, §16.2; issue #64): sign in with the
//! emailed code, then read the customer's keys and a key's devices (its activations).
//!
//! Each step is a request to build ([`Portal`]) and an answer to read (`parse_*`); a transport
//! sends the [`PortalRequest`] in between. The session token ([`SessionToken`]) is a
//! credential: its `Debug` redacts it, and nothing here logs it.
//!
//! The flow an app runs when a key is out of activations: [`Portal::request_code`] (Polar mails
//! a 6-character code), [`Portal::authenticate`] with what the user typed, then
//! [`Portal::list_keys`] (key recovery: the customer's keys, whole) and [`Portal::get_key`] (its
//! live activations, when the seller turned on `enable_customer_admin` for the benefit), then
//! the public deactivate ([`crate::proto::DeactivateRequest`]) frees one.

use crate::error::Error;
use crate::json::JsonIn;
use crate::key::Key;
use crate::metadata::check_uuid_v4;
use crate::model::{LicenseKeyActivation, LicenseKeyRead};
use crate::proto::{error_body, retry_after, Api, HttpResponse, Server};

mod error;
mod steps;
pub use error::PortalError;
pub use steps::Steps;

/// `GET` or `POST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET` (no body).
    Get,
    /// `POST` with a JSON body.
    Post,
}

impl Method {
    /// The method's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A portal request ready for a transport. Its body (an email, a code) and its
/// `authorization` header are redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PortalRequest {
    /// The method.
    pub method: Method,
    /// The full URL.
    pub url: String,
    /// Headers to send besides `Content-Length` (a `POST` always sends one, even for an empty
    /// body: Polar answers 411 without it).
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body (empty for a `GET`).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for PortalRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers = crate::proto::redacted_headers(&self.headers);
        f.debug_struct("PortalRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &headers)
            .field(
                "body",
                &format_args!("<{} bytes, redacted>", self.body.len()),
            )
            .finish()
    }
}

/// A customer session token (`polar_cst_…`, or `polar_mst_…` for a member): one hour from
/// when Polar made it, no refresh. `Debug` shows its kind only.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// Wraps a token (`polar_cst_…` or `polar_mst_…`, as Polar's answers give it).
    pub fn new(token: impl Into<String>) -> SessionToken {
        SessionToken(token.into())
    }

    /// The token itself: send it, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.0.get(..10).filter(|p| p.ends_with('_')).unwrap_or("");
        write!(f, "SessionToken({kind}****)")
    }
}

/// One page of the customer's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPage {
    /// The keys, whole (every status), oldest first.
    pub items: Vec<LicenseKeyRead>,
    /// The customer's keys in all.
    pub total_count: u64,
    /// The last page (0 when there are none).
    pub max_page: u64,
}

/// A key and its live activations (`LicenseKeyWithActivations`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyWithActivations {
    /// The key.
    pub license_key: LicenseKeyRead,
    /// Its live activations; always empty when the seller has not turned on device management
    /// (`enable_customer_admin`) for the key's benefit.
    pub activations: Vec<LicenseKeyActivation>,
}

/// The portal's requests for one organization and server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    base_url: String,
    organization_id: String,
}

/// The seller's relay's device-listing route (issue #64; the relay's `DEVICES_ROUTE`).
pub const RELAY_DEVICES_PATH: &str = "/v1/devices/list";

/// The largest page Polar serves.
const PAGE_LIMIT: u32 = 100;

/// The most pages a client reads of the customer's keys (100 keys each): a customer with more
/// keys than that is cut off, never an unbounded walk.
pub const MAX_PORTAL_PAGES: u32 = 10;

impl Portal {
    /// Checks the organization id (UUID v4) and the server's URL.
    pub fn new(organization_id: &str, server: &Server) -> Result<Portal, Error> {
        Ok(Portal {
            base_url: server.base_url()?,
            organization_id: check_uuid_v4("organization_id", organization_id)?,
        })
    }

    /// The portal of a client's organization and server (both checked when the [`Api`] was).
    pub fn for_api(api: &Api) -> Portal {
        Portal {
            base_url: api.portal_base_url().to_string(),
            organization_id: api.organization_id().to_string(),
        }
    }

    fn post(&self, path: &str, body: String, token: Option<&SessionToken>) -> PortalRequest {
        let mut request = json_post([self.base_url.as_str(), path].concat(), body.into_bytes());
        if let Some(token) = token {
            request
                .headers
                .push(("authorization", ["Bearer ", token.expose()].concat()));
        }
        request
    }

    fn get(&self, path: &str, token: &SessionToken) -> PortalRequest {
        PortalRequest {
            method: Method::Get,
            url: [self.base_url.as_str(), path].concat(),
            headers: vec![
                ("accept", "application/json".to_string()),
                ("authorization", ["Bearer ", token.expose()].concat()),
            ],
            body: Vec::new(),
        }
    }

    /// Asks Polar to email a sign-in code to `email` (read with [`parse_request_code`]). Polar
    /// answers the same for an unknown email: the app cannot tell, and says "if this email
    /// bought a license, a code is on its way".
    pub fn request_code(&self, email: &str) -> Result<PortalRequest, Error> {
        self.request_code_for(email, None)
    }

    /// [`Portal::request_code`] naming one of several customers with this email (after
    /// [`PortalError::CustomerSelectionRequired`]).
    pub fn request_code_for(
        &self,
        email: &str,
        customer_id: Option<&str>,
    ) -> Result<PortalRequest, Error> {
        let email = email.trim();
        if email.is_empty()
            || !email.contains('@')
            || email.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Error::invalid("email", "must be an email address"));
        }
        let customer_id = customer_id
            .map(|id| check_uuid_v4("customer_id", id))
            .transpose()?;
        let mut body = serde_json::json!({
            "email": email,
            "organization_id": self.organization_id,
        });
        if let (Some(id), Some(object)) = (customer_id, body.as_object_mut()) {
            object.insert("customer_id".to_string(), serde_json::Value::String(id));
        }
        Ok(self.post(
            "/v1/customer-portal/customer-session/request",
            body.to_string(),
            None,
        ))
    }

    /// Exchanges the emailed code for a session (read with [`parse_authenticate`]). The code
    /// is upper-cased and trimmed first, as Polar's own page does (the server compares it
    /// case-sensitively); anything but 6 letters and digits is refused here, unsent.
    pub fn authenticate(&self, code: &str) -> Result<PortalRequest, Error> {
        let code = code.trim().to_ascii_uppercase();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::invalid(
                "code",
                "must be the 6 letters and digits of the email",
            ));
        }
        let body = serde_json::json!({ "code": code }).to_string();
        Ok(self.post(
            "/v1/customer-portal/customer-session/authenticate",
            body,
            None,
        ))
    }

    /// The requests of a client's organization sent to the seller's relay at `relay_url`
    /// (`https://`, or `http://` on loopback only: checked as a base URL is), for
    /// [`Portal::relay_devices`].
    pub fn for_relay(api: &Api, relay_url: &str) -> Result<Portal, Error> {
        Ok(Portal {
            base_url: relay_base(relay_url)?,
            organization_id: api.organization_id().to_string(),
        })
    }

    /// A key's devices through the seller's relay (its `POST` [`RELAY_DEVICES_PATH`], read with
    /// [`parse_relay_devices`]; issue #64): the key, the organization and this machine's
    /// activation id (marked in the answer) in the body, never in the URL. No session: the
    /// key proves it is the caller's, as at Polar, and the relay reads the key's activations
    /// with the seller's token (every live one, whatever `enable_customer_admin` says). A bad
    /// key or activation id is refused here, unsent.
    pub fn relay_devices(
        &self,
        key: &Key,
        this_activation: Option<&str>,
    ) -> Result<PortalRequest, Error> {
        crate::metadata::check_key(key.expose())?;
        // Written with the core's JSON writer, not serde's: the npm engine's heal sends it
        // (issue #80), and its wasm links no serde.
        let mut body = crate::json::JsonOut::new();
        body.raw("{").key("key").str(key.expose());
        body.key("organization_id").str(&self.organization_id);
        if let Some(id) = this_activation {
            let id = check_uuid_v4("activation_id", id)?;
            body.key("activation_id").str(&id);
        }
        Ok(self.post(RELAY_DEVICES_PATH, body.raw("}").done(), None))
    }

    /// Page `page` (from 1) of the session's customer's keys, 100 a page (read with
    /// [`parse_key_page`]).
    pub fn list_keys(&self, token: &SessionToken, page: u32) -> Result<PortalRequest, Error> {
        if page == 0 {
            return Err(Error::invalid("page", "starts at 1"));
        }
        let path = [
            "/v1/customer-portal/license-keys/?page=",
            &page.to_string(),
            "&limit=",
            &PAGE_LIMIT.to_string(),
        ]
        .concat();
        Ok(self.get(&path, token))
    }

    /// One key of the session's customer and its devices (read with
    /// [`parse_key_with_activations`]). `key_id` is the key record's id (`LicenseKeyRead::id`).
    pub fn get_key(&self, token: &SessionToken, key_id: &str) -> Result<PortalRequest, Error> {
        let id = check_uuid_v4("key_id", key_id)?;
        Ok(self.get(&["/v1/customer-portal/license-keys/", &id].concat(), token))
    }
}

/// The seller's relay a client knows, one rule for every face: the one it names (`relay_url`),
/// else, in signed mode (`signed`: relay keys set), its base URL, since signed mode's base URL is
/// the relay; `None`: none known. Where the heal at the activation limit lists a key's
/// activations, devices are listed without a session and a checkout is asked for
/// ([`crate::purchase::CheckoutAsk`]).
pub fn known_relay<'a>(
    relay_url: Option<&'a str>,
    signed: bool,
    base_url: &'a str,
) -> Option<&'a str> {
    relay_url.or(signed.then_some(base_url))
}

/// The base URL of the seller's relay at `relay_url` (`https://`, or `http://` on loopback only:
/// checked as a base URL is), a refusal naming `relay_url`.
pub(crate) fn relay_base(relay_url: &str) -> Result<String, Error> {
    Server::Custom(relay_url.to_string()).base_url_of("relay_url")
}

/// A `POST` of the JSON `body` to `url`, with no credential (a session's is added by the
/// portal's own requests).
pub(crate) fn json_post(url: String, body: Vec<u8>) -> PortalRequest {
    PortalRequest {
        method: Method::Post,
        url,
        headers: vec![
            ("content-type", "application/json".to_string()),
            ("accept", "application/json".to_string()),
        ],
        body,
    }
}

/// The typed failure of a non-success answer: only Polar's own envelope is one of the typed
/// refusals; anything else is a protocol error.
pub(crate) fn failure(what: &str, resp: &HttpResponse) -> PortalError {
    if resp.status == 429 {
        return PortalError::RateLimited(retry_after(resp));
    }
    let body = error_body(resp);
    let error = body.as_ref().and_then(|b| b.error.clone());
    match (resp.status, error.as_deref()) {
        (401, Some("CustomerSessionCodeInvalidOrExpired")) => PortalError::CodeInvalidOrExpired,
        (401, Some("invalid_token")) => PortalError::SessionExpired,
        (401, Some("Unauthorized")) => PortalError::NotSignedIn,
        (404, Some("ResourceNotFound")) => PortalError::NotFound,
        (409, Some("customer_selection_required")) => {
            // The strict reader (as every failure's): the npm engine's heal links this.
            let customers = crate::strict::parse(&resp.body)
                .ok()
                .and_then(|v| v.member("customers")?.items())
                .unwrap_or_default()
                .iter()
                .filter_map(|c| {
                    let id = c.member("id")?.string()?;
                    let name = c.member("name").and_then(|n| n.string());
                    Some((id, name))
                })
                .collect();
            PortalError::CustomerSelectionRequired(customers)
        }
        (status, Some(error)) => {
            let detail = body
                .as_ref()
                .and_then(|b| {
                    b.detail
                        .clone()
                        .or_else(|| b.invalid.as_ref().and_then(|(_, msg)| msg.clone()))
                        .or_else(|| b.error_description.clone())
                })
                .unwrap_or_default();
            PortalError::Refused {
                status,
                error: error.to_string(),
                detail,
            }
        }
        (status, None) => PortalError::Protocol(Error::protocol(
            Some(status),
            [
                &status.to_string(),
                " for ",
                what,
                " without Polar's error envelope (a wrong base URL or a proxy's page)",
            ]
            .concat(),
        )),
    }
}

fn malformed(what: &str, why: &str) -> PortalError {
    PortalError::Protocol(Error::protocol(
        Some(200),
        ["malformed ", what, " response: ", why].concat(),
    ))
}

/// The body of a success as Polar's JSON (the strict reading every face does first).
fn success_json(what: &str, resp: &HttpResponse) -> Result<serde_json::Value, PortalError> {
    crate::strict::parse(&resp.body).map_err(|e| malformed(what, &e.text()))?;
    serde_json::from_slice(&resp.body).map_err(|e| malformed(what, &e.to_string()))
}

/// The block of the email-code routes' rate limit (zone `customer-session-login`: 6 a minute
/// and 12 an hour per address for both routes, then 900 s; docs/polar-api.md §16.1).
pub const CODE_BLOCK_SECONDS: u64 = 900;

/// A failure of the email-code routes: [`failure`], with the wait of a 429 whose `retry-after`
/// the client could not read (a browser: Polar exposes no `Retry-After` to CORS callers) taken
/// as the zone's block, [`CODE_BLOCK_SECONDS`], the longest it can be.
fn code_failure(what: &str, resp: &HttpResponse) -> PortalError {
    match failure(what, resp) {
        PortalError::RateLimited(None) => PortalError::RateLimited(Some(CODE_BLOCK_SECONDS)),
        other => other,
    }
}

/// Reads the answer to [`Portal::request_code`]: `Ok` when Polar took it (202), whether or not
/// the email is a customer's.
pub fn parse_request_code(resp: &HttpResponse) -> Result<(), PortalError> {
    match resp.status {
        202 => Ok(()),
        _ => Err(code_failure("request code", resp)),
    }
}

/// Reads the answer to [`Portal::authenticate`]: the session token.
pub fn parse_authenticate(resp: &HttpResponse) -> Result<SessionToken, PortalError> {
    if resp.status != 200 {
        return Err(code_failure("authenticate", resp));
    }
    let body = success_json("authenticate", resp)?;
    match body.get("token").and_then(|t| t.as_str()) {
        Some(t)
            if (t.starts_with("polar_cst_") || t.starts_with("polar_mst_"))
                && t.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(SessionToken::new(t))
        }
        _ => Err(malformed(
            "authenticate",
            "no polar_cst_ or polar_mst_ token",
        )),
    }
}

/// Reads the answer to [`Portal::list_keys`].
pub fn parse_key_page(resp: &HttpResponse) -> Result<KeyPage, PortalError> {
    if resp.status != 200 {
        return Err(failure("list keys", resp));
    }
    let mut body = success_json("list keys", resp)?;
    let count = |name: &str| {
        body.get("pagination")
            .and_then(|p| p.get(name))
            .and_then(|n| n.as_u64())
            .ok_or_else(|| malformed("list keys", &["no pagination.", name].concat()))
    };
    let total_count = count("total_count")?;
    let max_page = count("max_page")?;
    let items = body
        .get_mut("items")
        .map(serde_json::Value::take)
        .ok_or_else(|| malformed("list keys", "no items"))?;
    let items: Vec<LicenseKeyRead> =
        serde_json::from_value(items).map_err(|e| malformed("list keys", &e.to_string()))?;
    Ok(KeyPage {
        items,
        total_count,
        max_page,
    })
}

/// Reads the answer to [`Portal::get_key`].
pub fn parse_key_with_activations(resp: &HttpResponse) -> Result<KeyWithActivations, PortalError> {
    if resp.status != 200 {
        return Err(failure("get key", resp));
    }
    let mut body = success_json("get key", resp)?;
    let activations = body
        .as_object_mut()
        .and_then(|o| o.remove("activations"))
        .ok_or_else(|| malformed("get key", "no activations"))?;
    let activations: Vec<LicenseKeyActivation> =
        serde_json::from_value(activations).map_err(|e| malformed("get key", &e.to_string()))?;
    let license_key: LicenseKeyRead =
        serde_json::from_value(body).map_err(|e| malformed("get key", &e.to_string()))?;
    Ok(KeyWithActivations {
        license_key,
        activations,
    })
}

/// Reads the seller's relay's answer to [`Portal::relay_devices`]: the key's devices, oldest
/// first, this machine's (`this_activation`) marked. A key the relay (Polar) does not know is
/// [`PortalError::NotFound`]; its rates or its token's budget, [`PortalError::RateLimited`]
/// with the wait; the relay's 5xx (Polar out of its reach), [`PortalError::Offline`]. Device
/// management never matters here: the relay reads with the seller's token.
pub fn parse_relay_devices(
    resp: &HttpResponse,
    this_activation: Option<&str>,
) -> Result<KeyDevices, PortalError> {
    if resp.status >= 500 {
        return Err(PortalError::Offline(Error::ServerError {
            status: resp.status,
            detail: String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)]).into_owned(),
        }));
    }
    if resp.status != 200 {
        return Err(failure("relay devices", resp));
    }
    // Read with the strict reader and the schema's RFC 3339 reader, not serde's and `time`'s
    // parser: the npm engine's heal reads it too (issue #80), and its wasm links neither.
    let body =
        crate::strict::parse(&resp.body).map_err(|e| malformed("relay devices", &e.text()))?;
    let bad = |why: &str| malformed("relay devices", why);
    // The time, and its order as (seconds, nanoseconds): sorting by them, not by the
    // `OffsetDateTime`, keeps `time`'s comparisons and 128-bit arithmetic out of that wasm.
    let time = |text: Option<String>| {
        let t = crate::rfc3339::DateTime::parse(&text?)?;
        let at = time::OffsetDateTime::from_unix_timestamp(t.unix_timestamp()).ok()?;
        Some((
            at.replace_nanosecond(t.nanosecond()).ok()?,
            (t.unix_timestamp(), t.nanosecond()),
        ))
    };
    let key_id = body
        .member("license_key_id")
        .and_then(|v| v.string())
        .ok_or_else(|| bad("no license_key_id"))?;
    let limit_activations = match body.member("limit_activations") {
        None => None,
        Some(v) if v.is_null() => None,
        Some(v) => match v.number() {
            Some(crate::json::Num::Int(n)) => Some(n),
            _ => return Err(bad("limit_activations")),
        },
    };
    let listed = body
        .member("activations")
        .and_then(|v| v.items())
        .ok_or_else(|| bad("no activations"))?;
    let mut devices = Vec::with_capacity(listed.len());
    for a in listed {
        let named = |name: &str| a.member(name).and_then(|v| v.string());
        let text =
            |name: &str| named(name).ok_or_else(|| bad(&["an activation without ", name].concat()));
        let id = text("id")?;
        let (activated_at, order) =
            time(Some(text("created_at")?)).ok_or_else(|| bad("an activation's created_at"))?;
        // What the activation recorded of its machine (issue #80; none from a relay that
        // predates it), and when the relay last saw it.
        let last_seen = match a.member("last_seen") {
            None => None,
            Some(v) if v.is_null() => None,
            Some(v) => Some(
                time(v.string())
                    .ok_or_else(|| bad("an activation's last_seen"))?
                    .0,
            ),
        };
        devices.push((
            order,
            Device {
                this_machine: this_activation.is_some_and(|here| here.eq_ignore_ascii_case(&id)),
                id,
                label: text("label")?,
                activated_at,
                machine: named(crate::fingerprint::MACHINE_META),
                platform: named(crate::fingerprint::PLATFORM_META),
                last_seen,
            },
        ));
    }
    devices.sort_by_key(|(order, _)| *order);
    let devices = devices.into_iter().map(|(_, d)| d).collect();
    Ok(KeyDevices {
        key_id,
        limit_activations,
        devices,
    })
}

/// One device (a live activation) of a key, as a device list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// The activation id (what the public deactivate frees).
    pub id: String,
    /// The label it was activated with.
    pub label: String,
    /// When it was activated.
    pub activated_at: time::OffsetDateTime,
    /// `true` for the activation this machine holds: the one its cache remembers, or the one
    /// whose `meta` records this machine's fingerprint ([`KeyDevices::mark_machine`]), so a
    /// reinstall (its cache gone) still knows its own row.
    pub this_machine: bool,
    /// The per-organization machine fingerprint the activation recorded in its `meta`
    /// ([`crate::fingerprint::MACHINE_META`], issue #80): a salted hash, never the machine
    /// id; `None` for an activation made without one (an older client, binding off).
    pub machine: Option<String>,
    /// The platform family it recorded ([`crate::fingerprint::PLATFORM_META`]: `linux/x86_64`,
    /// `macos/aarch64`, or what a JavaScript face named), to tell devices apart.
    pub platform: Option<String>,
    /// When the seller's relay last saw the activation validated (its own record); `None`
    /// when there is no relay or it keeps no record of it (Polar records no such time).
    pub last_seen: Option<time::OffsetDateTime>,
}

impl Device {
    /// The activation's `meta` read into a device's `machine` and `platform` (string values
    /// only; anything else is none).
    fn recorded(meta: &crate::metadata::Metadata) -> (Option<String>, Option<String>) {
        let text = |name: &str| match meta.get(name) {
            Some(crate::metadata::MetaValue::Str(s)) => Some(s.clone()),
            _ => None,
        };
        (
            text(crate::fingerprint::MACHINE_META),
            text(crate::fingerprint::PLATFORM_META),
        )
    }
}

impl KeyDevices {
    /// Marks this machine's row by its fingerprint too (`machine`, what
    /// [`crate::fingerprint`] makes for the organization): the cache's activation id marks it
    /// only while the cache remembers it, and a reinstall's cache remembers nothing.
    pub fn mark_machine(&mut self, machine: Option<&str>) {
        let Some(here) = machine else { return };
        for d in &mut self.devices {
            if d.machine.as_deref() == Some(here) {
                d.this_machine = true;
            }
        }
    }

    /// The live activation whose `meta` records `machine` (this machine's fingerprint), the
    /// oldest when more than one does: the one a reinstall at the limit adopts.
    pub fn of_machine(&self, machine: &str) -> Option<&Device> {
        self.devices
            .iter()
            .find(|d| d.machine.as_deref() == Some(machine))
    }
}

/// The devices of a key that [`Portal::get_key`] read, this machine's marked by its
/// activation id (`this_activation`, what the cache remembers), oldest first.
///
/// Polar lists no activation at all when the seller has not turned on device management
/// (`enable_customer_admin`): an empty list while this machine holds a live activation of the
/// key is that, [`PortalError::DeviceManagementOff`]. An empty list with no activation known
/// here is an empty list (Polar does not say which of the two it is).
pub fn devices_of(
    key: &KeyWithActivations,
    this_activation: Option<&str>,
) -> Result<Vec<Device>, PortalError> {
    if key.activations.is_empty() && this_activation.is_some() {
        return Err(PortalError::DeviceManagementOff);
    }
    let mut devices: Vec<Device> = key
        .activations
        .iter()
        .map(|a| {
            let (machine, platform) = Device::recorded(&a.meta);
            Device {
                id: a.id.clone(),
                label: a.label.clone(),
                activated_at: a.created_at,
                this_machine: Some(a.id.as_str()) == this_activation,
                machine,
                platform,
                last_seen: None,
            }
        })
        .collect();
    devices.sort_by_key(|d| d.activated_at);
    Ok(devices)
}

/// The key to free a device with, from a key the portal read: the public deactivate takes the
/// whole key, the organization and the activation id (no session needed).
pub fn key_of(key: &KeyWithActivations) -> &Key {
    &key.license_key.key
}

/// Key recovery ("I lost my key"): of the signed-in customer's keys (a
/// [`Portal::list_keys`] walk), the ones this machine can activate: granted and not expired at
/// `now_unix`, newest first. Show them by their `display_key` (`****-6ED415`) and record id;
/// the whole key goes only into the activation, never on screen.
pub fn recoverable_keys(keys: Vec<LicenseKeyRead>, now_unix: i64) -> Vec<LicenseKeyRead> {
    let mut offered: Vec<LicenseKeyRead> = keys
        .into_iter()
        .filter(|k| k.status == crate::model::LicenseKeyStatus::Granted)
        .filter(|k| k.expires_at.is_none_or(|e| e.unix_timestamp() > now_unix))
        .collect();
    offered.sort_by_key(|k| std::cmp::Reverse(k.created_at));
    offered
}

/// A rotated key's new string (issue #64 item 4): rotation keeps a key's record id, its limits
/// and every activation id, and the old string is `404` at once. Of the signed-in customer's
/// keys (a [`Portal::list_keys`] walk), the one with the record id `key_id` (what this
/// machine's cache remembers of the old string's license), when its string is no longer `old`;
/// `None` when the customer has no such key or it was not rotated.
pub fn rotated_key(keys: &[LicenseKeyRead], key_id: &str, old: &Key) -> Option<Key> {
    keys.iter()
        .find(|k| k.id.eq_ignore_ascii_case(key_id))
        .filter(|k| k.key.expose() != old.expose())
        .map(|k| k.key.clone())
}

/// The validate that follows a rotated key: the new string with the activation the old
/// string's cache remembers (its id and the conditions it was made with), which rotation
/// keeps; run it through the update machine carrying that activation
/// ([`crate::flow::update::Update::carrying`]) so the new string's record remembers it.
pub fn follow_request(
    new_key: &Key,
    activation: Option<&crate::grace::StoredActivation>,
) -> crate::proto::ValidateRequest {
    let mut req = crate::proto::ValidateRequest::new(new_key.clone());
    if let Some(a) = activation {
        req.activation_id = Some(a.id.clone());
        req.conditions = a.conditions.clone();
    }
    req
}

/// A key's devices as [`ListDevices`] found them.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDevices {
    /// The key record's id (what rotation keeps).
    pub key_id: String,
    /// The key's activation limit (`None`: no limit set).
    pub limit_activations: Option<i64>,
    /// Its live devices, oldest first, this machine's marked ([`devices_of`]).
    pub devices: Vec<Device>,
}

/// What [`ListDevices`] wants next.
#[derive(Debug, Clone, PartialEq)]
pub enum DevicesStep {
    /// Send this request and hand its answer to [`ListDevices::answer`].
    Send(PortalRequest),
    /// The end: the devices, or why not.
    Done(Result<KeyDevices, PortalError>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ListState {
    /// Reading the key's devices from the seller's relay.
    Relay,
    /// Reading page `n` of the customer's keys for the key.
    Page(u32),
    /// Reading the key's record (its activations).
    Key,
    /// Over.
    Done,
}

/// Lists a key's devices through a customer session, sans-IO: the order of steps every face
/// runs, written once. The customer's keys are read a page at a time (at most
/// [`MAX_PORTAL_PAGES`]) until the key is found by its string ([`PortalError::NotFound`] when
/// it is none of them), then the key's record with its activations, read with
/// [`devices_of`] (this machine's marked by `this_activation`, device management off told
/// apart).
///
/// A shell sends each [`DevicesStep::Send`] and hands the answer (or the transport's
/// failure, as [`PortalError::Offline`]) to [`ListDevices::answer`] until
/// [`DevicesStep::Done`].
#[derive(Debug, Clone)]
pub struct ListDevices {
    portal: Portal,
    /// `None`: through the seller's relay ([`ListDevices::via_relay`]).
    session: Option<SessionToken>,
    /// The session path's answers read ([`ListDevices::session_answer`]), held by a listing
    /// made with a session and called through this pointer: a shell that lists only through
    /// the seller's relay (the npm engine's heal, issue #80) never links Polar's typed key
    /// reading (serde's).
    session_answer: Option<fn(&mut ListDevices, &HttpResponse) -> DevicesStep>,
    key: Key,
    this_activation: Option<String>,
    state: ListState,
    /// As a [`crate::flow::Standalone`]: the request out, a wait before sending it again
    /// (a `429`'s), the answer once done, the waits so far.
    sending: Option<PortalRequest>,
    waiting: Option<core::time::Duration>,
    outcome: Option<Result<KeyDevices, PortalError>>,
    patience: crate::flow::Patience,
}

impl ListDevices {
    /// The listing of `key`'s devices through `session`; `this_activation` is the activation
    /// this machine holds (what its cache remembers), marked in the list.
    pub fn new(
        portal: Portal,
        session: SessionToken,
        key: Key,
        this_activation: Option<String>,
    ) -> ListDevices {
        ListDevices {
            portal,
            session: Some(session),
            session_answer: Some(ListDevices::session_answer),
            key,
            this_activation,
            state: ListState::Page(1),
            sending: None,
            waiting: None,
            outcome: None,
            patience: crate::flow::Patience::default(),
        }
        .begun()
    }

    /// The listing of `key`'s devices through the seller's relay (issue #64: no session; the
    /// key proves it is the caller's), `portal` made with [`Portal::for_relay`]; one request,
    /// [`Portal::relay_devices`], read with [`parse_relay_devices`]. `this_activation` is
    /// marked.
    pub fn via_relay(portal: Portal, key: Key, this_activation: Option<String>) -> ListDevices {
        ListDevices {
            portal,
            session: None,
            session_answer: None,
            key,
            this_activation,
            state: ListState::Relay,
            sending: None,
            waiting: None,
            outcome: None,
            patience: crate::flow::Patience::default(),
        }
        .begun()
    }

    /// The machine with its first step taken, for [`crate::flow::Standalone`].
    fn begun(mut self) -> ListDevices {
        let step = self.start();
        self.took(step);
        self
    }

    /// `step` kept for [`crate::flow::Standalone`]'s wants.
    fn took(&mut self, step: DevicesStep) {
        match step {
            DevicesStep::Send(request) => self.sending = Some(request),
            DevicesStep::Done(result) => {
                self.sending = None;
                self.outcome = Some(result);
            }
        }
    }

    /// The listing's end, once the machine wants nothing more ([`crate::flow::Want::Done`]);
    /// taken once.
    pub fn outcome(&mut self) -> Result<KeyDevices, PortalError> {
        self.outcome.take().unwrap_or_else(|| {
            Err(PortalError::Invalid(Error::invalid(
                "devices",
                "the listing is not done, or its answer was taken already",
            )))
        })
    }

    fn finish(&mut self, result: Result<KeyDevices, PortalError>) -> DevicesStep {
        self.state = ListState::Done;
        DevicesStep::Done(result)
    }

    fn request(&mut self, made: Result<PortalRequest, Error>) -> DevicesStep {
        match made {
            Ok(request) => DevicesStep::Send(request),
            Err(e) => self.finish(Err(PortalError::Invalid(e))),
        }
    }

    /// The first step: the key is checked (a bad one is refused unsent), then the first page
    /// of the customer's keys is asked for.
    pub fn start(&mut self) -> DevicesStep {
        if let Err(e) = crate::metadata::check_key(self.key.expose()) {
            return self.finish(Err(PortalError::Invalid(e)));
        }
        let Some(session) = &self.session else {
            self.state = ListState::Relay;
            let made = self
                .portal
                .relay_devices(&self.key, self.this_activation.as_deref());
            return self.request(made);
        };
        self.state = ListState::Page(1);
        let made = self.portal.list_keys(session, 1);
        self.request(made)
    }

    /// The answer to the last [`DevicesStep::Send`] (`Err`: none came, as the transport said).
    pub fn answer(&mut self, response: Result<HttpResponse, PortalError>) -> DevicesStep {
        let response = match response {
            Ok(r) => r,
            Err(e) => return self.finish(Err(e)),
        };
        match (&self.state, self.session_answer) {
            (ListState::Relay, _) => {
                let listed = parse_relay_devices(&response, self.this_activation.as_deref());
                self.finish(listed)
            }
            (ListState::Page(_) | ListState::Key, Some(read)) => read(self, &response),
            (ListState::Done, _) | (_, None) => self.finish(Err(PortalError::Protocol(
                Error::protocol(None, "an answer after the device list was done"),
            ))),
        }
    }

    /// The session path's answer ([`ListDevices::answer`]): a page of the customer's keys
    /// (the next page asked, or the key's record once the key is found), or the key's record
    /// with its activations.
    fn session_answer(&mut self, response: &HttpResponse) -> DevicesStep {
        let Some(session) = self.session.clone() else {
            return self.finish(Err(PortalError::NotSignedIn));
        };
        match self.state {
            ListState::Page(page) => {
                let answer = match parse_key_page(response) {
                    Ok(a) => a,
                    Err(e) => return self.finish(Err(e)),
                };
                let found = answer
                    .items
                    .iter()
                    .find(|k| k.key.expose() == self.key.expose())
                    .map(|k| k.id.clone());
                if let Some(id) = found {
                    self.state = ListState::Key;
                    let made = self.portal.get_key(&session, &id);
                    return self.request(made);
                }
                if u64::from(page) >= answer.max_page || page >= MAX_PORTAL_PAGES {
                    return self.finish(Err(PortalError::NotFound));
                }
                self.state = ListState::Page(page + 1);
                let made = self.portal.list_keys(&session, page + 1);
                self.request(made)
            }
            _ => {
                let listed = parse_key_with_activations(response).and_then(|read| {
                    let devices = devices_of(&read, self.this_activation.as_deref())?;
                    Ok(KeyDevices {
                        key_id: read.license_key.id.clone(),
                        limit_activations: read.license_key.limit_activations,
                        devices,
                    })
                });
                self.finish(listed)
            }
        }
    }
}

/// The listing as one of the client's timed machines ([`crate::flow::timed`]): a shell sends
/// each [`crate::flow::Want::Portal`], waits each [`crate::flow::Want::Wait`], and takes
/// [`ListDevices::outcome`] when done. A `429` (Polar's, or the relay's) is asked again after
/// its `Retry-After` while the waits fit [`crate::flow::timed::RETRY_BUDGET`]; past it the
/// listing ends with [`PortalError::RateLimited`] and the wait.
impl crate::flow::Standalone for ListDevices {
    fn want(&self) -> crate::flow::Want<'_> {
        crate::flow::portal_want(self.waiting, self.sending.as_ref())
    }

    fn give(&mut self, given: crate::flow::Given) {
        use crate::flow::Given;
        match given {
            Given::Waited => self.waiting = None,
            Given::Response(response) if self.waiting.is_none() && self.sending.is_some() => {
                let wait = match &response {
                    Ok(r) if r.status == 429 => self.patience.wait_for(retry_after(r)),
                    _ => None,
                };
                if wait.is_some() {
                    // The same request again after the wait.
                    self.waiting = wait;
                    return;
                }
                let step = self.answer(response.map_err(PortalError::Offline));
                self.took(step);
            }
            // Nothing else is asked of a shell.
            _ => {}
        }
    }

    fn key(&self) -> &Key {
        &self.key
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn portal() -> Portal {
        let server = Server::parse("http://127.0.0.1:8787");
        Portal::new("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10", &server).expect("portal")
    }

    #[test]
    fn debug_redacts_the_token_the_code_and_the_email() {
        let token = SessionToken::new("polar_cst_abcdefghijklmnopqrstuvwxyz0123456789A012345");
        assert_eq!(format!("{token:?}"), "SessionToken(polar_cst_****)");
        let req = portal().authenticate("ab12cd").expect("request");
        let shown = format!("{req:?}");
        assert!(!shown.contains("AB12CD"), "{shown}");
        let req = portal().list_keys(&token, 1).expect("request");
        let shown = format!("{req:?}");
        assert!(!shown.contains("abcdefghij"), "{shown}");
        let req = portal().request_code("jane@example.com").expect("request");
        assert!(!format!("{req:?}").contains("jane"));
    }

    #[test]
    fn bad_input_is_refused_unsent() {
        let p = portal();
        assert!(p.request_code("jane").is_err());
        assert!(p.request_code(" ").is_err());
        assert!(p.authenticate("ABC12").is_err());
        assert!(p.authenticate("ABC-12").is_err());
        let token = SessionToken::new("polar_cst_x");
        assert!(p.get_key(&token, "not-a-uuid").is_err());
        assert!(p.list_keys(&token, 0).is_err());
    }

    #[test]
    fn recovery_offers_granted_unexpired_keys_newest_first() {
        let key = |id: &str, created: &str, status: &str, expires: Option<&str>| {
            serde_json::from_value::<LicenseKeyRead>(serde_json::json!({
                "id": id,
                "created_at": created,
                "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
                "customer_id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
                "customer": serde_json::json!({
                    "id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
                    "created_at": "2026-01-01T00:00:00Z",
                    "email": "jane@example.com",
                    "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
                }),
                "benefit_id": "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d",
                "key": format!("KEY-{id}"),
                "display_key": "****-ABCDEF",
                "status": status,
                "limit_activations": 3,
                "usage": 0,
                "limit_usage": null,
                "validations": 0,
                "last_validated_at": null,
                "expires_at": expires,
            }))
            .expect("a key")
        };
        // 2026-06-01T00:00:00Z
        let now = 1_780_272_000;
        let keys = vec![
            key("1", "2026-01-01T00:00:00Z", "granted", None),
            key("2", "2026-02-01T00:00:00Z", "revoked", None),
            key("3", "2026-03-01T00:00:00Z", "disabled", None),
            key(
                "4",
                "2026-04-01T00:00:00Z",
                "granted",
                Some("2026-05-01T00:00:00Z"),
            ),
            key(
                "5",
                "2026-05-01T00:00:00Z",
                "granted",
                Some("2027-01-01T00:00:00Z"),
            ),
            key(
                "6",
                "2026-06-01T00:00:00Z",
                "granted",
                Some("2026-06-01T00:00:00Z"),
            ),
        ];
        let ids: Vec<String> = recoverable_keys(keys, now)
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(ids, ["5", "1"]);
    }

    #[test]
    fn devices_mark_this_machine_and_tell_management_off() {
        let key: LicenseKeyRead = serde_json::from_value(serde_json::json!({
            "id": "6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b",
            "created_at": "2026-01-01T00:00:00Z",
            "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
            "customer_id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
            "benefit_id": "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d",
            "key": "K", "display_key": "****-K", "status": "granted",
            "limit_activations": 3, "usage": 0, "limit_usage": null, "validations": 0,
            "last_validated_at": null, "expires_at": null,
            "customer": {"id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
                         "created_at": "2026-01-01T00:00:00Z",
                         "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"}
        }))
        .expect("a key");
        let activation = |id: &str, at: &str| LicenseKeyActivation {
            id: id.to_string(),
            license_key_id: key.id.clone(),
            label: id.to_string(),
            meta: Default::default(),
            created_at: time::OffsetDateTime::parse(
                at,
                &time::format_description::well_known::Rfc3339,
            )
            .expect("a time"),
            modified_at: None,
        };
        let mut with = KeyWithActivations {
            license_key: key.clone(),
            activations: vec![
                activation("b", "2026-02-01T00:00:00Z"),
                activation("a", "2026-01-01T00:00:00Z"),
            ],
        };
        let devices = devices_of(&with, Some("b")).expect("devices");
        let shown: Vec<_> = devices
            .iter()
            .map(|d| (d.id.as_str(), d.this_machine))
            .collect();
        assert_eq!(shown, [("a", false), ("b", true)]);
        assert_eq!(
            devices_of(&with, None)
                .expect("devices")
                .iter()
                .filter(|d| d.this_machine)
                .count(),
            0
        );
        with.activations.clear();
        assert_eq!(
            devices_of(&with, Some("b")),
            Err(PortalError::DeviceManagementOff)
        );
        assert_eq!(devices_of(&with, None), Ok(Vec::new()));
    }

    #[test]
    fn a_rotation_is_found_by_record_id_and_followed_with_the_activation() {
        let read = |id: &str, key: &str| {
            serde_json::from_value::<LicenseKeyRead>(key_json(id, key, 1)).expect("a key")
        };
        let id = "6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b";
        let other = "1b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b";
        let old = Key::new("OLD-1");
        let keys = vec![read(other, "OTHER-1"), read(id, "NEW-1")];
        // By record id (any case), whatever the other keys are.
        assert_eq!(
            rotated_key(&keys, &id.to_ascii_uppercase(), &old).map(|k| k.expose().to_string()),
            Some("NEW-1".to_string())
        );
        // Not rotated (the same string), or no key of that id: nothing to follow.
        assert_eq!(rotated_key(&[read(id, "OLD-1")], id, &old), None);
        assert_eq!(
            rotated_key(&keys, "9b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b", &old),
            None
        );
        // The follow names the activation and its conditions; none without one.
        let mut conditions = crate::metadata::Metadata::default();
        conditions.insert(
            "machine_fingerprint".to_string(),
            crate::metadata::MetaValue::from("abc"),
        );
        let activation = crate::grace::StoredActivation {
            id: "a1".to_string(),
            label: "This laptop".to_string(),
            conditions: conditions.clone(),
            created_at: 0,
        };
        let req = follow_request(&Key::new("NEW-1"), Some(&activation));
        assert_eq!(req.key.as_ref().map(Key::expose), Some("NEW-1"));
        assert_eq!(req.activation_id.as_deref(), Some("a1"));
        assert_eq!(req.conditions, conditions);
        let bare = follow_request(&Key::new("NEW-1"), None);
        assert_eq!(bare.activation_id, None);
    }

    /// A granted key of Polar's with the record id `id`, the string `key` and
    /// `limit_activations`, as Polar writes a `LicenseKeyRead`.
    fn key_json(id: &str, key: &str, limit_activations: u32) -> serde_json::Value {
        serde_json::json!({
            "id": id,
            "created_at": "2026-01-01T00:00:00Z",
            "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
            "customer_id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
            "benefit_id": "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d",
            "key": key, "display_key": "****-K", "status": "granted",
            "limit_activations": limit_activations, "usage": 0, "limit_usage": null,
            "validations": 0, "last_validated_at": null, "expires_at": null,
            "customer": {"id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
                         "created_at": "2026-01-01T00:00:00Z",
                         "organization_id": "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10"}
        })
    }

    /// A page of keys as Polar answers it, with one key named `key`.
    fn page(key: &str, max_page: u64) -> HttpResponse {
        let body = serde_json::json!({
            "items": [key_json("6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b", key, 3)],
            "pagination": {"total_count": max_page, "max_page": max_page}
        });
        HttpResponse::new(200, body.to_string())
    }

    fn url_of(step: &DevicesStep) -> String {
        match step {
            DevicesStep::Send(r) => r.url.clone(),
            DevicesStep::Done(d) => panic!("done early: {d:?}"),
        }
    }

    #[test]
    fn the_listing_reads_pages_until_the_key_then_the_key_and_is_bounded() {
        let session = SessionToken::new("polar_cst_x");
        let mut m = ListDevices::new(portal(), session.clone(), Key::new("MINE"), None);
        assert!(url_of(&m.start()).ends_with("/license-keys/?page=1&limit=100"));
        // Not on page 1 of 2: page 2; there: the key's record.
        assert!(url_of(&m.answer(Ok(page("OTHER", 2)))).ends_with("?page=2&limit=100"));
        assert!(url_of(&m.answer(Ok(page("MINE", 2))))
            .ends_with("/license-keys/6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b"));
        // On none of the pages: not found, after the last page.
        let mut m = ListDevices::new(portal(), session.clone(), Key::new("MINE"), None);
        m.start();
        assert_eq!(
            m.answer(Ok(page("OTHER", 1))),
            DevicesStep::Done(Err(PortalError::NotFound))
        );
        // A server that says there are always more pages: at most MAX_PORTAL_PAGES asked.
        let mut m = ListDevices::new(portal(), session.clone(), Key::new("MINE"), None);
        let mut step = m.start();
        let mut asked = 0;
        while let DevicesStep::Send(_) = step {
            asked += 1;
            step = m.answer(Ok(page("OTHER", 1_000_000)));
        }
        assert_eq!(asked, MAX_PORTAL_PAGES);
        assert_eq!(step, DevicesStep::Done(Err(PortalError::NotFound)));
        // A bad key is refused unsent; no answer ends it as the transport said.
        let mut m = ListDevices::new(portal(), session.clone(), Key::new(" padded"), None);
        assert!(matches!(
            m.start(),
            DevicesStep::Done(Err(PortalError::Invalid(_)))
        ));
        let mut m = ListDevices::new(portal(), session, Key::new("MINE"), None);
        m.start();
        let expired =
            HttpResponse::new(401, r#"{"error":"invalid_token","error_description":"x"}"#);
        assert_eq!(
            m.answer(Ok(expired)),
            DevicesStep::Done(Err(PortalError::SessionExpired))
        );
    }

    /// Issue #77: a `429` of the relay (or of Polar behind it) is waited out for its
    /// `Retry-After` as a step ([`crate::flow::Want::Wait`]) and the same request sent
    /// again, on every face alike; a wait past the budget ends the listing `rate_limited`.
    #[test]
    fn a_429s_retry_after_is_a_wait_step_then_the_same_request_again() {
        use crate::flow::{Given, Standalone, Want};
        let api = Api::new(
            "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
            &Server::parse("http://127.0.0.1:8787"),
        )
        .expect("api");
        let relay = Portal::for_relay(&api, "http://127.0.0.1:8788/").expect("relay");
        let limited = |secs: u64| {
            let mut resp = HttpResponse::new(429, r#"{"error":"TooManyRequests","detail":"x"}"#);
            resp.headers.push(("retry-after".into(), secs.to_string()));
            resp
        };
        let mut m = ListDevices::via_relay(relay.clone(), Key::new("MINE-1"), None);
        let Want::Portal(first) = m.want() else {
            panic!("a request")
        };
        let first = first.clone();
        m.give(Given::Response(Ok(limited(3))));
        assert!(matches!(m.want(), Want::Wait(w) if w == core::time::Duration::from_secs(3)));
        m.give(Given::Waited);
        let Want::Portal(again) = m.want() else {
            panic!("the same request again")
        };
        assert_eq!(*again, first);
        let listed = serde_json::json!({
            "license_key_id": "9b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b",
            "limit_activations": 2,
            "activations": []
        });
        m.give(Given::Response(Ok(HttpResponse::new(
            200,
            listed.to_string(),
        ))));
        assert!(matches!(m.want(), Want::Done));
        assert_eq!(m.outcome().expect("the devices").limit_activations, Some(2));

        let mut m = ListDevices::via_relay(relay, Key::new("MINE-1"), None);
        m.give(Given::Response(Ok(limited(600))));
        assert!(
            matches!(m.want(), Want::Done),
            "past the budget: not waited"
        );
        assert_eq!(m.outcome(), Err(PortalError::RateLimited(Some(600))));
    }

    #[test]
    fn through_a_relay_one_post_with_the_key_in_the_body_read_and_marked() {
        let api = Api::new(
            "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10",
            &Server::parse("http://127.0.0.1:8787"),
        )
        .expect("api");
        let relay = Portal::for_relay(&api, "http://127.0.0.1:8788/").expect("relay");
        assert!(Portal::for_relay(&api, "http://relay.example.com").is_err());
        let here = "6B0C1F4E-2A3D-4E5F-8A9B-0C1D2E3F4A5B";
        let mut m = ListDevices::via_relay(relay.clone(), Key::new("MINE-1"), Some(here.into()));
        let DevicesStep::Send(req) = m.start() else {
            panic!("a request")
        };
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.url, "http://127.0.0.1:8788/v1/devices/list");
        assert!(!req.url.contains("MINE"));
        let body: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON");
        assert_eq!(body["key"], "MINE-1");
        assert_eq!(body["activation_id"], here.to_ascii_lowercase());
        assert!(!req.headers.iter().any(|(k, _)| *k == "authorization"));
        let listed = serde_json::json!({
            "license_key_id": "9b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b",
            "limit_activations": 2,
            "activations": [
                {"id": here.to_ascii_lowercase(), "label": "new", "created_at": "2026-02-01T00:00:00Z", "this_machine": true},
                {"id": "1b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b", "label": "old", "created_at": "2026-01-01T00:00:00Z", "this_machine": false}
            ]
        });
        let DevicesStep::Done(Ok(found)) = m.answer(Ok(HttpResponse::new(200, listed.to_string())))
        else {
            panic!("the devices")
        };
        let shown: Vec<_> = found
            .devices
            .iter()
            .map(|d| (d.label.as_str(), d.this_machine))
            .collect();
        assert_eq!(shown, [("old", false), ("new", true)]);
        assert_eq!(found.limit_activations, Some(2));
        // The relay's refusals, typed.
        let typed = |resp: HttpResponse| parse_relay_devices(&resp, None).map(|_| ());
        let not_found = r#"{"error":"ResourceNotFound","detail":"Not found"}"#;
        assert_eq!(
            typed(HttpResponse::new(404, not_found)),
            Err(PortalError::NotFound)
        );
        assert_eq!(
            typed(HttpResponse::new(429, "").with_header("retry-after", "7")),
            Err(PortalError::RateLimited(Some(7)))
        );
        assert!(matches!(
            typed(HttpResponse::new(
                502,
                r#"{"detail":"the relay could not reach Polar"}"#
            )),
            Err(PortalError::Offline(_))
        ));
        assert!(matches!(
            typed(HttpResponse::new(200, r#"{"activations":[]}"#)),
            Err(PortalError::Protocol(_))
        ));
        // A bad activation id or key: refused unsent.
        let mut m = ListDevices::via_relay(relay.clone(), Key::new("MINE-1"), Some("x".into()));
        assert!(matches!(
            m.start(),
            DevicesStep::Done(Err(PortalError::Invalid(_)))
        ));
        let mut m = ListDevices::via_relay(relay, Key::new(""), None);
        assert!(matches!(
            m.start(),
            DevicesStep::Done(Err(PortalError::Invalid(_)))
        ));
    }

    #[test]
    fn failures_are_typed_from_polars_envelope_only() {
        let r = HttpResponse::new(401, r#"{"error":"invalid_token","error_description":"x"}"#);
        assert_eq!(failure("t", &r), PortalError::SessionExpired);
        let r = HttpResponse::new(429, "").with_header("retry-after", "900");
        assert_eq!(failure("t", &r), PortalError::RateLimited(Some(900)));
        let r = HttpResponse::new(404, "<html>not here</html>");
        assert!(matches!(failure("t", &r), PortalError::Protocol(_)));
        // The email-code routes' 429 without a readable `retry-after` (a browser): the zone's
        // 900 s block; with one, its seconds; elsewhere, no wait known.
        let blind = HttpResponse::new(429, "");
        assert_eq!(failure("t", &blind), PortalError::RateLimited(None));
        assert_eq!(
            parse_request_code(&blind),
            Err(PortalError::RateLimited(Some(900)))
        );
        assert!(matches!(
            parse_authenticate(&blind),
            Err(PortalError::RateLimited(Some(900)))
        ));
        let told = HttpResponse::new(429, "").with_header("retry-after", "301");
        assert_eq!(
            parse_request_code(&told),
            Err(PortalError::RateLimited(Some(301)))
        );
        let r = HttpResponse::new(200, r#"{"token":"nope"}"#);
        assert!(matches!(
            parse_authenticate(&r),
            Err(PortalError::Protocol(_))
        ));
    }
}
