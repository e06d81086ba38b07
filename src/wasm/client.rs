//! The async client over `fetch` (the wasm twin of the native `BlockingClient`).

use super::transport::{AsyncTransport, FetchTransport};
use crate::error::{Error, Verdict};
use crate::key::AccessToken;
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::proto::{
    parse_activate, parse_activate_for, parse_deactivate, parse_validate, parse_validate_for,
    ActivateRequest, Api, DeactivateRequest, Expect, HttpRequest, Server, ValidateRequest,
};
use std::rc::Rc;
use std::time::Duration;

/// Default whole-request timeout (the native default too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on a response body. Polar's answers are a few KB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// A verdict and the response's `Date` header (unix seconds), when readable.
type Dated<T> = (Verdict<T>, Option<i64>);

/// Builds an [`AsyncClient`].
#[derive(Debug, Clone)]
pub struct AsyncClientBuilder {
    organization_id: String,
    server: Server,
    timeout: Duration,
    max_response_bytes: u64,
    access_token: Option<AccessToken>,
}

impl AsyncClientBuilder {
    /// Talk to `server` (default: production).
    pub fn server(mut self, server: Server) -> Self {
        self.server = server;
        self
    }

    /// Talk to this base URL (`https://`, or `http://` on loopback only).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.server = Server::Custom(url.into());
        self
    }

    /// Whole-request timeout (default 10 s), enforced with an `AbortController`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on a response body (default 1 MiB); a larger answer is `protocol_error`.
    pub fn max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Use the token-authenticated `/v1/license-keys/…` routes with this access token
    /// (for backends, e.g. a node server; never ship a token to a browser).
    pub fn access_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = Some(AccessToken::new(token));
        self
    }

    fn api(&self) -> Result<Api, Error> {
        if self.timeout.is_zero() {
            return Err(Error::invalid("timeout", "must be greater than zero"));
        }
        // No User-Agent: browsers forbid setting it.
        let api = Api::new(&self.organization_id, &self.server)?;
        match &self.access_token {
            Some(token) => api.with_access_token(token.clone()),
            None => Ok(api),
        }
    }

    /// Checks the configuration and builds the client over `fetch`.
    pub fn build(self) -> Result<AsyncClient, Error> {
        let transport = FetchTransport::new(self.timeout, self.max_response_bytes);
        self.build_with_transport(transport)
    }

    /// Builds the client over another transport (tests, proxies).
    pub fn build_with_transport(
        self,
        transport: impl AsyncTransport + 'static,
    ) -> Result<AsyncClient, Error> {
        Ok(AsyncClient {
            api: self.api()?,
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
            organization_id: organization_id.into(),
            server: Server::Production,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            access_token: None,
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
    ) -> Result<Dated<ValidatedLicenseKey>, Error> {
        self.validate_at(req, super::js::date_now()).await
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

    /// Sends a validate request built (and so checked) by [`Api::validate_request`], holding
    /// a 200 to `expect`.
    pub(crate) async fn send_validate(
        &self,
        request: &HttpRequest,
        expect: Option<&Expect<'_>>,
    ) -> Result<Dated<ValidatedLicenseKey>, Error> {
        let response = self.transport.send(request).await?;
        let date = response.header("date").and_then(crate::grace::http_date);
        let verdict = match expect {
            Some(expect) => parse_validate_for(&response, expect)?,
            None => parse_validate(&response)?,
        };
        Ok((verdict, date))
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
        let date = response.header("date").and_then(crate::grace::http_date);
        let verdict = match Expect::activate(self.api.organization_id(), req, now) {
            Some(expect) => parse_activate_for(&response, &expect)?,
            None => parse_activate(&response)?,
        };
        Ok((verdict, date))
    }

    /// Deactivates an activation, freeing its slot. A second deactivate is `not_found`.
    pub async fn deactivate(&self, req: &DeactivateRequest) -> Result<Verdict<()>, Error> {
        let request = self.api.deactivate_request(req)?;
        parse_deactivate(&self.transport.send(&request).await?)
    }
}
