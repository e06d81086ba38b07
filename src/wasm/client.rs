//! The async client over `fetch` (the wasm twin of the native `BlockingClient`).

use super::transport::{AsyncTransport, FetchTransport};
use crate::error::{Error, Verdict};
use crate::key::Key;
use crate::model::{LicenseKeyActivationRead, LicenseKeyRead, ValidatedLicenseKey};
use crate::options::{client_setters, ClientOptions};
use crate::portal::{
    parse_authenticate, parse_key_page, parse_key_with_activations, parse_request_code, KeyDevices,
    KeyWithActivations, ListDevices, Portal, PortalError, PortalRequest, SessionToken,
    MAX_PORTAL_PAGES,
};
use crate::proto::{
    parse_activate, parse_activate_for, parse_deactivate_for, parse_validate, parse_validate_for,
    ActivateRequest, Api, DeactivateRequest, Expect, HttpRequest, Stamp, ValidateRequest,
};
use std::rc::Rc;

pub use crate::options::{DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};

/// A verdict and the response's `Date` header (unix seconds), when readable.
type Dated<T> = (Verdict<T>, Stamp);

/// Builds an [`AsyncClient`].
#[derive(Debug, Clone)]
pub struct AsyncClientBuilder {
    // The grace-aware `AsyncLicensingBuilder` sets these too.
    pub(super) options: ClientOptions,
}

impl AsyncClientBuilder {
    client_setters!(options);

    /// Checks the configuration and builds the client over `fetch` (the timeout enforced with
    /// an `AbortController`).
    pub fn build(self) -> Result<AsyncClient, Error> {
        let transport = FetchTransport::new(self.options.timeout, self.options.max_response_bytes);
        self.build_with_transport(transport)
    }

    /// Builds the client over another transport (tests, proxies).
    pub fn build_with_transport(
        self,
        transport: impl AsyncTransport + 'static,
    ) -> Result<AsyncClient, Error> {
        Ok(AsyncClient {
            // No User-Agent: browsers forbid setting it.
            api: self.options.api(None)?,
            transport: Rc::new(transport),
        })
    }
}

/// An async Polar license-key client over `fetch`. Cheap to clone; single-threaded (`!Send`),
/// like everything on the JS event loop.
#[derive(Clone)]
pub struct AsyncClient {
    api: Api,
    transport: Rc<dyn AsyncTransport>,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient")
            .field("api", &self.api)
            .finish()
    }
}

impl AsyncClient {
    /// Starts building a client for the seller organization `organization_id` (a UUID v4).
    pub fn builder(organization_id: impl Into<String>) -> AsyncClientBuilder {
        AsyncClientBuilder {
            options: ClientOptions::new(organization_id),
        }
    }

    /// The request builder this client uses.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Validates a key online. Inputs are checked first; a bad one sends nothing. A 200 that
    /// contradicts the request (another key, organization, benefit, customer or activation)
    /// or says the license is not valid (not granted, expired) is `protocol_error`.
    pub async fn validate(
        &self,
        req: &ValidateRequest,
    ) -> Result<Verdict<ValidatedLicenseKey>, Error> {
        self.validate_dated(req).await.map(|(verdict, _)| verdict)
    }

    /// Like [`AsyncClient::validate`], also returning the response's `Date` header in unix
    /// seconds when it had one and the browser exposed it.
    pub async fn validate_dated(
        &self,
        req: &ValidateRequest,
    ) -> Result<(Verdict<ValidatedLicenseKey>, Option<i64>), Error> {
        self.validate_at(req, super::js::date_now())
            .await
            .map(|(verdict, stamp)| (verdict, stamp.date))
    }

    /// [`AsyncClient::validate_dated`] with the local clock reading `now` (for expiry).
    pub(crate) async fn validate_at(
        &self,
        req: &ValidateRequest,
        now: i64,
    ) -> Result<Dated<ValidatedLicenseKey>, Error> {
        let request = self.api.validate_request(req)?;
        let expect = Expect::validate(self.api.organization_id(), req, now);
        self.send_validate(&request, expect.as_ref()).await
    }

    /// Sends a request as it is and gives the response (any status): the core reads it.
    pub(crate) async fn send(
        &self,
        request: &HttpRequest,
    ) -> Result<crate::proto::HttpResponse, Error> {
        self.transport.send(request).await.map_err(Error::from)
    }

    /// Sends a validate request built (and so checked) by [`Api::validate_request`], holding
    /// a 200 to `expect`.
    pub(crate) async fn send_validate(
        &self,
        request: &HttpRequest,
        expect: Option<&Expect<'_>>,
    ) -> Result<Dated<ValidatedLicenseKey>, Error> {
        let response = self.transport.send(request).await?;
        let stamp = response.stamp();
        let verdict = match expect {
            Some(expect) => parse_validate_for(&response, expect)?,
            None => parse_validate(&response)?,
        };
        let verdict = crate::proto::read_stopped_unsigned(verdict, &response);
        Ok((verdict, stamp))
    }

    /// Activates a key (takes one activation slot per call, even with the same label). A 200
    /// that is not a valid activation of this key is `protocol_error`.
    pub async fn activate(
        &self,
        req: &ActivateRequest,
    ) -> Result<Verdict<LicenseKeyActivationRead>, Error> {
        self.activate_dated(req, super::js::date_now())
            .await
            .map(|(verdict, _)| verdict)
    }

    /// [`AsyncClient::activate`] at the local clock reading `now`, with the response's `Date`
    /// in unix seconds.
    pub(crate) async fn activate_dated(
        &self,
        req: &ActivateRequest,
        now: i64,
    ) -> Result<Dated<LicenseKeyActivationRead>, Error> {
        let request = self.api.activate_request(req)?;
        let response = self.transport.send(&request).await?;
        let stamp = response.stamp();
        let verdict = match Expect::activate(self.api.organization_id(), req, now) {
            Some(expect) => parse_activate_for(&response, &expect)?,
            None => parse_activate(&response)?,
        };
        Ok((verdict, stamp))
    }

    /// Deactivates an activation, freeing its slot. A second deactivate is `not_found`.
    pub async fn deactivate(&self, req: &DeactivateRequest) -> Result<Verdict<()>, Error> {
        let request = self.api.deactivate_request(req)?;
        parse_deactivate_for(&self.transport.send(&request).await?, req.key.as_ref())
    }
}

/// The customer portal (docs/polar-api.md §16, issue #64), the twin of the native
/// `BlockingClient`'s: sign in with the emailed code, then the customer's keys and a key's
/// devices, each request a `fetch` with the session's bearer. Free a device with
/// [`AsyncClient::deactivate`] (the whole key and the device's activation id; no session).
impl AsyncClient {
    /// This shell's one loop for the client's timed machines ([`crate::flow::Standalone`]:
    /// devices, usage): sends what they ask over `fetch`, waits on the host's `setTimeout`,
    /// reads `Date.now()`, until done (as the native `BlockingClient::drive`).
    pub async fn drive<M: crate::flow::Standalone>(&self, mut machine: M) -> M {
        use crate::flow::{Given, Want};
        loop {
            let given = match machine.want() {
                Want::Send(request) => Given::Response(self.send(request).await),
                Want::Portal(request) => Given::Response(self.portal_response(request).await),
                Want::Wait(wait) => {
                    super::js::sleep(wait).await;
                    Given::Waited
                }
                Want::Clock => Given::Clock(super::js::now_ms()),
                // A timed machine asks for no store.
                _ => return machine,
            };
            machine.give(given);
        }
    }

    /// Sends one customer-portal request for a machine of the core ([`crate::flow::Want::Portal`]).
    pub(crate) async fn portal_response(
        &self,
        request: &PortalRequest,
    ) -> Result<crate::proto::HttpResponse, Error> {
        self.transport
            .send_portal(request)
            .await
            .map_err(Error::from)
    }

    async fn send_portal(
        &self,
        request: Result<PortalRequest, Error>,
    ) -> Result<crate::proto::HttpResponse, PortalError> {
        let request = request.map_err(PortalError::Invalid)?;
        self.transport
            .send_portal(&request)
            .await
            .map_err(|e| PortalError::Offline(Error::from(e)))
    }

    /// Asks Polar to email a sign-in code to `email`. `Ok` whether or not the email is a
    /// customer's (Polar does not say): tell the user a code is on its way if it is.
    pub async fn request_sign_in_code(&self, email: &str) -> Result<(), PortalError> {
        self.request_sign_in_code_for(email, None).await
    }

    /// [`AsyncClient::request_sign_in_code`] naming one of several customers with this email
    /// (after [`PortalError::CustomerSelectionRequired`]).
    pub async fn request_sign_in_code_for(
        &self,
        email: &str,
        customer_id: Option<&str>,
    ) -> Result<(), PortalError> {
        let portal = Portal::for_api(&self.api);
        parse_request_code(
            &self
                .send_portal(portal.request_code_for(email, customer_id))
                .await?,
        )
    }

    /// Signs in with the emailed code (any case): a session of one hour. Keep it in memory;
    /// never log it.
    pub async fn sign_in(&self, code: &str) -> Result<SessionToken, PortalError> {
        let portal = Portal::for_api(&self.api);
        parse_authenticate(&self.send_portal(portal.authenticate(code)).await?)
    }

    /// Every key of the signed-in customer, whole and of every status, oldest first (key
    /// recovery: offer [`crate::portal::recoverable_keys`] of them); at most
    /// [`MAX_PORTAL_PAGES`] pages of 100.
    pub async fn customer_keys(
        &self,
        session: &SessionToken,
    ) -> Result<Vec<LicenseKeyRead>, PortalError> {
        let portal = Portal::for_api(&self.api);
        let mut keys = Vec::new();
        for page in 1..=MAX_PORTAL_PAGES {
            let answer = parse_key_page(&self.send_portal(portal.list_keys(session, page)).await?)?;
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
    pub async fn devices(
        &self,
        session: &SessionToken,
        key_id: &str,
    ) -> Result<KeyWithActivations, PortalError> {
        let portal = Portal::for_api(&self.api);
        parse_key_with_activations(&self.send_portal(portal.get_key(session, key_id)).await?)
    }

    /// The devices of `key` (its string) through the signed-in customer's session, this
    /// machine's (`this_activation`) marked: the core's [`ListDevices`] driven over this
    /// client's transport, as the native client drives it. Typed failures:
    /// [`PortalError::NotFound`] (not the customer's key), [`PortalError::DeviceManagementOff`],
    /// [`PortalError::SessionExpired`], ….
    pub async fn list_devices(
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
        self.drive(machine).await.outcome()
    }

    /// The devices of `key` through the seller's relay at `relay_url` (issue #64: no session;
    /// the key proves it is the caller's), this machine's (`this_activation`) marked: the
    /// core's [`ListDevices::via_relay`] over `fetch`, as the native client drives it.
    pub async fn list_devices_via_relay(
        &self,
        relay_url: &str,
        key: &Key,
        this_activation: Option<&str>,
    ) -> Result<KeyDevices, PortalError> {
        let portal = Portal::for_relay(&self.api, relay_url).map_err(PortalError::Invalid)?;
        let machine =
            ListDevices::via_relay(portal, key.clone(), this_activation.map(str::to_string));
        self.drive(machine).await.outcome()
    }
}
