//! The transport seam: a tiny trait that sends one [`HttpRequest`] and returns the response.
//!
//! Any `Fn(&HttpRequest) -> Result<HttpResponse, TransportError>` is a transport, so a test
//! can script answers and assert on the requests it gets.

use crate::error::Error;
use crate::portal::PortalRequest;
use crate::proto::{HttpRequest, HttpResponse};
use std::fmt;

/// What went wrong below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportErrorKind {
    /// The connection was refused or could not be made.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// A timeout ran out (connect or whole request).
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// The connection was reset or closed before a response.
    Reset,
    /// The response body ended before its announced length.
    Truncated,
    /// The response body exceeded the size cap.
    TooLarge,
    /// The response was not valid HTTP (`offline`: see the conversion to [`Error`]).
    Malformed,
    /// Anything else.
    Other,
}

/// A transport failure. Maps to `offline`, or to `protocol_error` for a bad response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// The kind.
    pub kind: TransportErrorKind,
    /// A description (never contains the request body).
    pub detail: String,
}

impl TransportError {
    /// A transport error.
    pub fn new(kind: TransportErrorKind, detail: impl Into<String>) -> TransportError {
        TransportError {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for TransportError {}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Error {
        use TransportErrorKind::*;
        match e.kind {
            // The body was not what its headers announced: an answer, but not Polar's.
            Truncated | TooLarge => Error::Protocol {
                status: None,
                detail: e.detail,
            },
            Timeout => Error::Offline {
                timeout: true,
                detail: e.detail,
            },
            // Bytes that are no HTTP answer (a bad status line or header, conflicting lengths)
            // are offline, as `fetch` reports them: it rejects before any status is known, and
            // a browser cannot tell them from a connection reset.
            Connect | Dns | Tls | Reset | Malformed | Other => Error::Offline {
                timeout: false,
                detail: e.detail,
            },
        }
    }
}

/// Sends one request and returns the whole response (blocking).
pub trait Transport: Send + Sync {
    /// Sends `request`; any HTTP status is an `Ok` response.
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;

    /// Sends a customer-portal request ([`crate::portal`]: a `GET`, or a `POST` with its
    /// `Content-Length`); any HTTP status is an `Ok` response. The default sends nothing and
    /// fails: a transport made for the license routes alone (a closure) has no portal.
    fn send_portal(&self, request: &PortalRequest) -> Result<HttpResponse, TransportError> {
        let _ = request;
        Err(TransportError::new(
            TransportErrorKind::Other,
            "this transport sends no customer-portal requests",
        ))
    }
}

impl<F> Transport for F
where
    F: Fn(&HttpRequest) -> Result<HttpResponse, TransportError> + Send + Sync,
{
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self(request)
    }
}
