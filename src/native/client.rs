//! The native blocking client over ureq (rustls): one online call each, no cache.

use super::transport::{ProxySetting, TlsRoots, UreqTransport};
use crate::error::{Error, Verdict};
use crate::key::Key;
use crate::lease::LEASE_HEADER;
use crate::model::{LicenseKeyActivationRead, LicenseKeyRead, ValidatedLicenseKey};
use crate::options::{client_setters, ClientOptions};
use crate::portal::{
    parse_authenticate, parse_key_page, parse_key_with_activations, parse_request_code, KeyDevices,
    KeyWithActivations, ListDevices, Portal, PortalError, PortalRequest, SessionToken,
    MAX_PORTAL_PAGES,
};
use crate::proto::{
    parse_activate, parse_activate_for, parse_deactivate_for, parse_validate, parse_validate_for,
    ActivateRequest, Api, DeactivateRequest, Expect, HttpRequest, HttpResponse, Stamp,
    ValidateRequest, USER_AGENT,
};
use crate::transport::Transport;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An answer, its `Date` in unix seconds, and the relay's lease header when there was one.
pub(crate) type Leased<T> = ((Verdict<T>, Stamp), Option<String>);

/// The lease a relay sent with an answer: the header's single value (two read as none).
fn lease_header(response: &HttpResponse) -> Option<String> {
    response.single(LEASE_HEADER).map(str::to_string)
}

/// Builds a [`BlockingClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    // The grace-aware `LicensingBuilder` sets these too.
    pub(super) options: ClientOptions,
    tls_roots: TlsRoots,
    proxy: ProxySetting,
}

impl ClientBuilder {
    client_setters!(options);

    /// Connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Which certificates Polar's is checked against (default [`TlsRoots::System`], the
    /// operating system's trust store).
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls_roots = roots;
        self
    }

    /// How requests reach Polar (default [`ProxySetting::Environment`]). A URL that is not an
    /// HTTP(S) proxy's fails `build` with `invalid_input` (field `proxy`).
    pub fn proxy(mut self, proxy: ProxySetting) -> Self {
        self.proxy = proxy;
        self
    }

    /// Checks the configuration and builds the client over ureq.
    pub fn build(self) -> Result<BlockingClient, Error> {
        let proxy = self.proxy.resolve()?;
        let transport = UreqTransport::with_network(
            self.options.connect_timeout,
            self.options.timeout,
            self.options.max_response_bytes,
            self.tls_roots,
            proxy,
        );
        self.build_with_transport(transport)
    }

    /// Builds the client over another transport (tests, proxies, custom TLS).
    pub fn build_with_transport(
        self,
        transport: impl Transport + 'static,
    ) -> Result<BlockingClient, Error> {
        Ok(BlockingClient {
            api: self.options.api(Some(USER_AGENT))?,
            transport: Arc::new(transport),
        })
    }
}

/// A blocking Polar license-key client. Cheap to clone; `Send + Sync`.
///
/// ```no_run
/// use polar_license::{BlockingClient, ValidateRequest, Verdict};
///
/// let client = BlockingClient::builder("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10").build()?;
/// match client.validate(&ValidateRequest::new("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415"))? {
///     Verdict::Accepted(license) => println!("licensed, usage {}", license.license_key.usage),
///     Verdict::Denied(denial) => println!("denied: {} ({})", denial.reason, denial.detail),
/// }
/// # Ok::<(), polar_license::Error>(())
/// ```
#[derive(Clone)]
pub struct BlockingClient {
    api: Api,
    transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient")
            .field("api", &self.api)
            .finish()
    }
}

impl BlockingClient {
    /// Starts building a client for the seller organization `organization_id` (a UUID v4).
    pub fn builder(organization_id: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            options: ClientOptions::new(organization_id),
            tls_roots: TlsRoots::default(),
            proxy: ProxySetting::default(),
        }
    }

    /// The request builder this client uses.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Validates a key online. Inputs are checked first; a bad one sends nothing. A 200 that
    /// contradicts the request (another key, organization, benefit, customer or activation)
    /// or says the license is not valid (not granted, expired) is `protocol_error`.
    pub fn validate(&self, req: &ValidateRequest) -> Result<Verdict<ValidatedLicenseKey>, Error> {
        self.validate_dated(req).map(|(verdict, _)| verdict)
    }

    /// Like [`BlockingClient::validate`], also returning the response's `Date` header in unix
    /// seconds when it had one (the grace cache records it).
    pub fn validate_dated(
        &self,
        req: &ValidateRequest,
    ) -> Result<(Verdict<ValidatedLicenseKey>, Option<i64>), Error> {
        self.validate_at(req, super::clock::system_clock())
            .map(|(verdict, stamp)| (verdict, stamp.date))
    }

    /// [`BlockingClient::validate_dated`] with the local clock reading `now` (for expiry).
    pub(crate) fn validate_at(
        &self,
        req: &ValidateRequest,
        now: i64,
    ) -> Result<(Verdict<ValidatedLicenseKey>, Stamp), Error> {
        self.validate_leased(req, now).map(|(answer, _)| answer)
    }

    /// [`BlockingClient::validate_at`], with the relay's lease header (signed mode).
    pub(crate) fn validate_leased(
        &self,
        req: &ValidateRequest,
        now: i64,
    ) -> Result<Leased<ValidatedLicenseKey>, Error> {
        let request = self.api.validate_request(req)?;
        let expect = Expect::validate(self.api.organization_id(), req, now);
        self.send_validate(&request, expect.as_ref(), req.key.as_ref())
    }

    /// Sends a request as it is and gives the response (any status): the core reads it.
    pub(crate) fn send(&self, request: &HttpRequest) -> Result<HttpResponse, Error> {
        self.transport.send(request).map_err(Error::from)
    }

    /// Sends a validate request built (and so checked) by [`Api::validate_request`], holding
    /// a 200 to `expect`; with the relay's lease header, if any.
    pub(crate) fn send_validate(
        &self,
        request: &HttpRequest,
        expect: Option<&Expect<'_>>,
        key: Option<&Key>,
    ) -> Result<Leased<ValidatedLicenseKey>, Error> {
        let started = Instant::now();
        let result = (|| {
            let response = self.transport.send(request)?;
            let stamp = response.stamp();
            let verdict = match expect {
                Some(expect) => parse_validate_for(&response, expect)?,
                None => parse_validate(&response)?,
            };
            let verdict = crate::proto::read_stopped_unsigned(verdict, &response);
            Ok(((verdict, stamp), lease_header(&response)))
        })();
        super::events::request("validate", key, started, result.as_ref().map(|a| &a.0 .0));
        result
    }

    /// Activates a key (takes one activation slot per call, even with the same label). A 200
    /// that is not a valid activation of this key is `protocol_error`.
    pub fn activate(
        &self,
        req: &ActivateRequest,
    ) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
        self.activate_dated(req, super::clock::system_clock())
            .map(|(verdict, _)| verdict)
    }

    /// [`BlockingClient::activate`] at the local clock reading `now`, with the response's
    /// `Date` in unix seconds.
    pub(crate) fn activate_dated(
        &self,
        req: &ActivateRequest,
        now: i64,
    ) -> Result<(Verdict<LicenseKeyActivationRead>, Stamp), Error> {
        self.activate_leased(req, now).map(|(answer, _)| answer)
    }

    /// [`BlockingClient::activate_dated`], with the relay's lease header (signed mode).
    pub(crate) fn activate_leased(
        &self,
        req: &ActivateRequest,
        now: i64,
    ) -> Result<Leased<LicenseKeyActivationRead>, Error> {
        let request = self.api.activate_request(req)?;
        let started = Instant::now();
        let result = (|| {
            let response = self.transport.send(&request)?;
            let stamp = response.stamp();
            let verdict = match Expect::activate(self.api.organization_id(), req, now) {
                Some(expect) => parse_activate_for(&response, &expect)?,
                None => parse_activate(&response)?,
            };
            Ok(((verdict, stamp), lease_header(&response)))
        })();
        let verdict = result.as_ref().map(|a| &a.0 .0);
        super::events::request("activate", req.key.as_ref(), started, verdict);
        result
    }

    /// Air-gapped activation, step 2, on any online machine: sends the request line of
    /// [`crate::Licensing::lease_request`] to the seller's relay (this client's base URL) as
    /// an activate, and gives the response line to carry back
    /// ([`crate::Licensing::lease_install`]); a denial as it is. The request must be for this
    /// client's organization. A grant without a lease is `protocol_error` (the base URL is
    /// not a relay): a response without one could never be installed.
    pub fn lease_fetch(&self, line: &str) -> Result<Verdict<String>, Error> {
        let (org, req) = crate::airgap::read_request(line)?;
        if !org.eq_ignore_ascii_case(self.api.organization_id()) {
            return Err(Error::invalid(
                "organization_id",
                format!("the request is for organization {org}, not this client's"),
            ));
        }
        let ((verdict, _), lease) = self.activate_leased(&req, super::clock::system_clock())?;
        let read = match verdict {
            Verdict::Accepted(read) => read,
            Verdict::Denied(denial) => return Ok(Verdict::Denied(denial)),
        };
        let lease = lease.ok_or_else(|| Error::Protocol {
            status: Some(200),
            detail: "the activation came without a lease: is the base URL the seller's relay?"
                .to_string(),
        })?;
        let activation = serde_json::to_value(&read)
            .map_err(|_| Error::invalid("response", "could not be written"))?;
        crate::airgap::response_line(&activation, &lease, &req).map(Verdict::Accepted)
    }

    /// A seat request (issue #67) to the seller's relay at this client's base URL: acquire,
    /// heartbeat or release one of the key's floating or CI seats
    /// ([`crate::seat::seat_request`], [`crate::seat::read_seat_answer`]).
    ///
    /// The core's [`crate::seat_beat::SeatCall`], driven by the one loop: a `429` is asked
    /// again after its `Retry-After` while the waits fit
    /// [`crate::flow::timed::RETRY_BUDGET`], but for a heartbeat, sent once: the hold it
    /// keeps retries it on its own schedule ([`crate::seat_hold::SeatHold`], never past the
    /// lease's end).
    pub fn seat(&self, ask: &crate::seat::SeatAsk) -> Result<crate::seat::SeatAnswer, Error> {
        let call = match ask.op {
            crate::seat::SeatOp::Heartbeat => crate::seat_beat::SeatCall::once(
                self.api.base_url(),
                self.api.organization_id(),
                ask,
            ),
            _ => self.seat_call(ask, None),
        };
        self.drive(call).outcome()
    }

    /// The machine of one seat request to this client's base URL (`days`: a borrowing).
    pub fn seat_call(
        &self,
        ask: &crate::seat::SeatAsk,
        days: Option<u32>,
    ) -> crate::seat_beat::SeatCall {
        let (base, org) = (self.api.base_url(), self.api.organization_id());
        match days {
            Some(days) => crate::seat_beat::SeatCall::borrow(base, org, ask, days),
            None => crate::seat_beat::SeatCall::new(base, org, ask),
        }
    }

    /// The base URL requests go to (the seller's relay, for seats and usage).
    pub fn base_url(&self) -> &str {
        self.api.base_url()
    }

    /// Reports `units` of `meter` (the event name the seller's meter counts) used with `key`
    /// to the seller's relay at this client's base URL (issue #68 item 3: its
    /// `POST /v1/usage/record`, `relay serve --record-usage`). The report gets one
    /// idempotency id here; when the relay cannot be reached, answers 5xx or asks to wait, the
    /// same report (the same id) is sent again, [`crate::usage::USAGE_SENDS`] times in all,
    /// so it counts once. The answer: recorded (with the meter's balance as the relay knows
    /// it), `credits_exhausted` (the seller's rule at zero), a backlog, or Polar's denial of
    /// the key.
    pub fn record_usage(
        &self,
        key: &Key,
        meter: &str,
        units: f64,
    ) -> Result<crate::usage::UsageAnswer, Error> {
        self.send_usage(&Self::usage_report(key, meter, units, None)?)
    }

    /// A report of `units` of `meter` for `key` with `id` as its idempotency id (an app's
    /// own: a report it sends again later with the same id counts once), or, `None`, a new
    /// random one (a UUID v4). Its input is checked when it is sent.
    pub fn usage_report(
        key: &Key,
        meter: &str,
        units: f64,
        id: Option<&str>,
    ) -> Result<crate::usage::UsageReport, Error> {
        let mut entropy = [0u8; 16];
        if id.is_none() {
            getrandom::fill(&mut entropy)
                .map_err(|e| Error::invalid("usage", format!("no random id: {e}")))?;
        }
        let mut report = crate::usage::UsageReport::new(key.clone(), meter, units, entropy);
        if let Some(id) = id {
            report.id = id.to_string();
        }
        Ok(report)
    }

    /// Sends `report` (its own id: an app's own idempotency id, or one a retry of the
    /// app's keeps) through the core's machine ([`crate::usage::RecordUsage`]): again with
    /// the same id while the core says so, [`crate::usage::USAGE_SENDS`] times at most.
    pub fn send_usage(
        &self,
        report: &crate::usage::UsageReport,
    ) -> Result<crate::usage::UsageAnswer, Error> {
        self.send_usage_via(None, report)
    }

    /// [`BlockingClient::send_usage`] to the seller's relay at `relay_url` (`None`: this
    /// client's base URL), through this client's transport.
    pub fn send_usage_via(
        &self,
        relay_url: Option<&str>,
        report: &crate::usage::UsageReport,
    ) -> Result<crate::usage::UsageAnswer, Error> {
        let base = relay_url.unwrap_or(self.api.base_url());
        let machine = crate::usage::RecordUsage::new(base, self.api.organization_id(), report)?;
        self.drive_usage(machine)
    }

    /// [`BlockingClient::send_usage_via`] in signed mode (issue #76): each send carries a
    /// fresh nonce and the answer is believed (`recorded`, the balance) only with the relay's
    /// acknowledgement that verifies under `keys` and names that nonce and this report
    /// ([`crate::usage::RecordUsage::signed`]); an answer without one is `protocol_error`,
    /// never recorded.
    pub fn send_usage_signed(
        &self,
        relay_url: Option<&str>,
        report: &crate::usage::UsageReport,
        keys: &crate::lease::RelayKeys,
    ) -> Result<crate::usage::UsageAnswer, Error> {
        let base = relay_url.unwrap_or(self.api.base_url());
        let mut entropy = [0u8; 16];
        getrandom::fill(&mut entropy)
            .map_err(|e| Error::invalid("usage", format!("no random nonce: {e}")))?;
        let machine = crate::usage::RecordUsage::signed(
            base,
            self.api.organization_id(),
            report,
            keys.clone(),
            entropy,
        )?;
        self.drive_usage(machine)
    }

    /// The report's machine driven by the one loop ([`BlockingClient::drive`]): its sends,
    /// its waits (a `429`'s `Retry-After` among them) are the machine's.
    fn drive_usage(
        &self,
        machine: crate::usage::RecordUsage,
    ) -> Result<crate::usage::UsageAnswer, Error> {
        self.drive(machine).outcome()
    }

    /// Borrows one of the key's floating seats for offline use for `days` days from the
    /// seller's relay ([`crate::seat::borrow_request`]): its answer, a seat whose lease
    /// licenses offline until its end ([`crate::seat::Seat::verify_borrowed`]).
    pub fn borrow_seat(
        &self,
        ask: &crate::seat::SeatAsk,
        days: u32,
    ) -> Result<crate::seat::SeatAnswer, Error> {
        self.drive(self.seat_call(ask, Some(days))).outcome()
    }

    /// Deactivates an activation, freeing its slot. A second deactivate is `not_found`.
    pub fn deactivate(&self, req: &DeactivateRequest) -> Result<Verdict<()>, Error> {
        let request = self.api.deactivate_request(req)?;
        let started = Instant::now();
        let result = self
            .transport
            .send(&request)
            .map_err(Error::from)
            .and_then(|response| parse_deactivate_for(&response, req.key.as_ref()));
        super::events::request("deactivate", req.key.as_ref(), started, result.as_ref());
        result
    }
}

/// The customer portal (docs/polar-api.md §16, issue #64): sign in with the emailed code, then
/// the customer's keys and a key's devices. Free a device with [`BlockingClient::deactivate`]
/// (the whole key, from [`BlockingClient::devices`], and the device's activation id).
impl BlockingClient {
    /// Sends one customer-portal request for a machine of the core ([`crate::flow::Want::Portal`]).
    pub(crate) fn portal_response(&self, request: &PortalRequest) -> Result<HttpResponse, Error> {
        self.transport.send_portal(request).map_err(Error::from)
    }

    pub(crate) fn send_portal(
        &self,
        request: Result<PortalRequest, Error>,
    ) -> Result<HttpResponse, PortalError> {
        let request = request.map_err(PortalError::Invalid)?;
        self.transport
            .send_portal(&request)
            .map_err(|e| PortalError::Offline(Error::from(e)))
    }

    /// Asks Polar to email a sign-in code to `email`. `Ok` whether or not the email is a
    /// customer's (Polar does not say): tell the user a code is on its way if it is.
    pub fn request_sign_in_code(&self, email: &str) -> Result<(), PortalError> {
        let portal = Portal::for_api(&self.api);
        parse_request_code(&self.send_portal(portal.request_code(email))?)
    }

    /// [`BlockingClient::request_sign_in_code`] naming one of several customers with this
    /// email (after [`PortalError::CustomerSelectionRequired`]).
    pub fn request_sign_in_code_for(
        &self,
        email: &str,
        customer_id: Option<&str>,
    ) -> Result<(), PortalError> {
        let portal = Portal::for_api(&self.api);
        parse_request_code(&self.send_portal(portal.request_code_for(email, customer_id))?)
    }

    /// Signs in with the emailed code (any case): a session of one hour. Keep it in memory;
    /// never log it.
    pub fn sign_in(&self, code: &str) -> Result<SessionToken, PortalError> {
        let portal = Portal::for_api(&self.api);
        parse_authenticate(&self.send_portal(portal.authenticate(code))?)
    }

    /// Every key of the signed-in customer, whole and of every status, oldest first (key
    /// recovery); at most [`MAX_PORTAL_PAGES`] pages of 100.
    pub fn customer_keys(
        &self,
        session: &SessionToken,
    ) -> Result<Vec<LicenseKeyRead>, PortalError> {
        let portal = Portal::for_api(&self.api);
        let mut keys = Vec::new();
        for page in 1..=MAX_PORTAL_PAGES {
            let answer = parse_key_page(&self.send_portal(portal.list_keys(session, page))?)?;
            keys.extend(answer.items);
            if u64::from(page) >= answer.max_page {
                break;
            }
        }
        Ok(keys)
    }

    /// One key of the signed-in customer (`key_id`: its record's id) and its live devices.
    /// Always no device when the seller has not turned on device management
    /// (`enable_customer_admin`) for the key's benefit.
    pub fn devices(
        &self,
        session: &SessionToken,
        key_id: &str,
    ) -> Result<KeyWithActivations, PortalError> {
        let portal = Portal::for_api(&self.api);
        parse_key_with_activations(&self.send_portal(portal.get_key(session, key_id))?)
    }

    /// The devices of `key` (its string) through the signed-in customer's session, this
    /// machine's (`this_activation`) marked: the core's [`ListDevices`] driven over this
    /// client's transport. Typed failures: [`PortalError::NotFound`] (not the customer's key),
    /// [`PortalError::DeviceManagementOff`], [`PortalError::SessionExpired`], ….
    pub fn list_devices(
        &self,
        session: &SessionToken,
        key: &Key,
        this_activation: Option<&str>,
    ) -> Result<KeyDevices, PortalError> {
        let machine = ListDevices::new(
            Portal::for_api(&self.api),
            session.clone(),
            key.clone(),
            this_activation.map(str::to_string),
        );
        self.drive(machine).outcome()
    }

    /// The devices of `key` through the seller's relay at `relay_url` (issue #64: its
    /// `POST /v1/devices/list`; no session, the key proves it is the caller's and the relay
    /// reads with the seller's token), this machine's (`this_activation`) marked: the core's
    /// [`ListDevices::via_relay`] over this client's transport. Typed failures:
    /// [`PortalError::NotFound`] (a key Polar does not know), [`PortalError::RateLimited`] with
    /// the wait, [`PortalError::Offline`] (the relay, or Polar behind it, out of reach).
    pub fn list_devices_via_relay(
        &self,
        relay_url: &str,
        key: &Key,
        this_activation: Option<&str>,
    ) -> Result<KeyDevices, PortalError> {
        let portal = Portal::for_relay(&self.api, relay_url).map_err(PortalError::Invalid)?;
        let machine =
            ListDevices::via_relay(portal, key.clone(), this_activation.map(str::to_string));
        self.drive(machine).outcome()
    }
}
