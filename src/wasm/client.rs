//! The async client over `fetch` (the wasm twin of the native `BlockingClient`).

use super::transport::{AsyncTransport, FetchTransport};
use crate::error::{Error, Verdict};
use crate::model::{LicenseKeyActivationRead, ValidatedLicenseKey};
use crate::options::{client_setters, ClientOptions};
use crate::proto::{
    parse_activate, parse_activate_for, parse_deactivate, parse_validate, parse_validate_for,
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
        parse_deactivate(&self.transport.send(&request).await?)
    }
}
