//! The async transport seam and its `fetch` implementation.
//!
//! Why `fetch` over web-sys rather than gloo-net (`gloo_net::http`, made for this; measured
//! with gloo-net 0.7.0 in node 20 and Chromium 156, sending the same requests both ways: ok,
//! 500, redirect, refused, unknown host, reset, truncated and stalled bodies, huge bodies with
//! and without `content-length`, a body exactly at the cap, a bad header value):
//!
//! - gloo-net's `Request::send` and `Response::binary` keep only a rejection's `name` and
//!   `message`; the `cause`, where node's fetch (undici) puts the socket error code, is lost.
//!   An unknown host (`ENOTFOUND`, here [`TransportErrorKind::Dns`]) and a reset connection
//!   (`UND_ERR_SOCKET`, [`TransportErrorKind::Reset`]) both became a bare `TypeError: fetch
//!   failed`, and a truncated body lost its code.
//! - `send` consumes the request, and in node a `Request` follows its signal through a
//!   `WeakRef`: once the request was collected, the timeout's abort no longer reached the body
//!   read (a stalled body was still pending 6 s after a 1.5 s timeout). Here the init, and so
//!   the signal, live until the exchange is over.
//! - Its `Headers::set` and `append` throw a JS exception on a value `fetch` refuses (a token
//!   with a line break); here that is a [`TransportErrorKind::Other`] error.
//! - It has no timeout: the `AbortController` and `setTimeout` below would stay either way.
//!
//! What gloo-net would have done for us (building the request, reading the status) is the few
//! lines below, so the crate is not a dependency of the library (its tests use it to drive the
//! emulator's admin routes).

use super::js::{describe, LocalFuture};
use crate::portal::{Method, PortalRequest};
use crate::proto::{HttpRequest, HttpResponse};
use crate::transport::{TransportError, TransportErrorKind};
use std::future::Future;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, RequestInit, RequestRedirect, Response, ResponseType};

/// Sends one request and returns the whole response, asynchronously.
///
/// Any `Fn(HttpRequest) -> impl Future<Output = Result<HttpResponse, TransportError>>` is one,
/// so a test can script answers and assert on the requests it gets.
pub trait AsyncTransport {
    /// Sends `request`; any HTTP status is an `Ok` response.
    fn send<'a>(
        &'a self,
        request: &'a HttpRequest,
    ) -> LocalFuture<'a, Result<HttpResponse, TransportError>>;

    /// Sends a customer-portal request ([`crate::portal`]: a `GET` with its headers, the
    /// session's bearer among them, or a `POST` with its body); any HTTP status is an `Ok`
    /// response. The default sends nothing and fails, as the native
    /// [`Transport::send_portal`](crate::transport::Transport::send_portal)'s does: a transport
    /// made for the license routes alone (a closure) has no portal.
    fn send_portal<'a>(
        &'a self,
        request: &'a PortalRequest,
    ) -> LocalFuture<'a, Result<HttpResponse, TransportError>> {
        let _ = request;
        Box::pin(async {
            Err(TransportError::new(
                TransportErrorKind::Other,
                "this transport sends no customer-portal requests",
            ))
        })
    }
}

impl<F, Fut> AsyncTransport for F
where
    F: Fn(HttpRequest) -> Fut,
    Fut: Future<Output = Result<HttpResponse, TransportError>> + 'static,
{
    fn send<'a>(
        &'a self,
        request: &'a HttpRequest,
    ) -> LocalFuture<'a, Result<HttpResponse, TransportError>> {
        Box::pin(self(request.clone()))
    }
}

#[wasm_bindgen]
extern "C" {
    // The global `fetch` (browsers, workers, node >= 18), not `window.fetch`.
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(url: &str, init: &RequestInit) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &js_sys::Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

/// The `fetch` transport: a whole-request timeout through an `AbortController`, no redirects
/// followed, a cap on the body, status codes as data.
///
/// Browsers hide response headers a CORS server does not expose, so `Date` and `Retry-After`
/// may be missing there (the first is informational, the second falls back to 60 s).
#[derive(Debug, Clone)]
pub struct FetchTransport {
    timeout: Duration,
    max_response_bytes: u64,
}

impl FetchTransport {
    /// A transport with this whole-request timeout and body cap.
    pub fn new(timeout: Duration, max_response_bytes: u64) -> FetchTransport {
        FetchTransport {
            timeout,
            max_response_bytes,
        }
    }
}

/// Clears the timer when the request ends or its future is dropped.
struct Timer {
    id: JsValue,
    _callback: Closure<dyn FnMut()>,
}

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(&self.id);
    }
}

fn kind_of(value: &JsValue) -> TransportErrorKind {
    let cause = js_sys::Reflect::get(value, &JsValue::from_str("cause")).unwrap_or_default();
    let code = js_sys::Reflect::get(&cause, &JsValue::from_str("code"))
        .ok()
        .and_then(|c| c.as_string())
        .unwrap_or_default();
    match code.as_str() {
        "ENOTFOUND" | "EAI_AGAIN" => TransportErrorKind::Dns,
        "ECONNRESET" | "EPIPE" | "UND_ERR_SOCKET" => TransportErrorKind::Reset,
        c if c.starts_with("ERR_TLS") || c.contains("CERT") => TransportErrorKind::Tls,
        // Browsers say only "Failed to fetch": refused, DNS, TLS and CORS look the same.
        _ => TransportErrorKind::Connect,
    }
}

/// Every header of a response as `fetch` gives them (names lowercased; one sent twice joined
/// with ", ", which the core's [`HttpResponse::single`] reads as none), as the native transport
/// keeps every header: the core decides which it reads. Not a list of names: the one this kept
/// before (`Date`, `Retry-After`, `Age` and the content headers) dropped a relay's lease,
/// signed denial, why a key stopped and the answer's source, so signed mode through a real
/// relay answered `protocol_error` (issue #68). A browser gives only the headers the server
/// exposes (CORS), the relay's among them.
fn every_header(headers: &Headers) -> Vec<(String, String)> {
    let Ok(Some(entries)) = js_sys::try_iter(headers) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pair: js_sys::Array = entry.ok()?.dyn_into().ok()?;
            Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
        })
        .collect()
}

impl FetchTransport {
    async fn exchange(
        &self,
        url: &str,
        init: &RequestInit,
    ) -> Result<HttpResponse, (JsValue, bool)> {
        let promise = global_fetch(url, init).map_err(|e| (e, false))?;
        let response: Response = JsFuture::from(promise)
            .await
            .map_err(|e| (e, false))?
            .dyn_into()
            .map_err(|e| (e, false))?;
        let status = response.status();
        let headers = response.headers();
        let kept = every_header(&headers);
        if response.type_() == ResponseType::Opaqueredirect {
            // A redirect was not followed (the native client does not follow them either):
            // report it as the 3xx it was, which the core classifies as protocol_error.
            return Ok(HttpResponse {
                status: 302,
                headers: kept,
                body: b"redirect not followed".to_vec(),
            });
        }
        let announced = headers
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > self.max_response_bytes) {
            return Err((JsValue::from_str("too large"), true));
        }
        let buffer = response.array_buffer().map_err(|e| (e, true))?;
        let buffer = JsFuture::from(buffer).await.map_err(|e| (e, true))?;
        let bytes = js_sys::Uint8Array::new(&buffer);
        if u64::from(bytes.length()) > self.max_response_bytes {
            return Err((JsValue::from_str("too large"), true));
        }
        Ok(HttpResponse {
            status,
            headers: kept,
            body: bytes.to_vec(),
        })
    }

    /// One exchange: `GET` (no body) or `POST` (the body, its length sent by `fetch`).
    async fn send_fetch(
        &self,
        method: Method,
        url: &str,
        request_headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<HttpResponse, TransportError> {
        let setup = |e: JsValue| TransportError::new(TransportErrorKind::Other, describe(&e));
        let controller = AbortController::new().map_err(setup)?;
        let signal = controller.signal();
        let headers = Headers::new().map_err(setup)?;
        for (name, value) in request_headers {
            headers.append(name, value).map_err(setup)?;
        }
        let init = RequestInit::new();
        init.set_method(method.as_str());
        init.set_headers(&headers);
        if method == Method::Post {
            // Even an empty body: `fetch` then sends `Content-Length: 0` (Polar answers 411
            // to a POST without one).
            init.set_body(&js_sys::Uint8Array::from(body));
        }
        init.set_redirect(RequestRedirect::Manual);
        init.set_signal(Some(&signal));

        let aborter = controller.clone();
        let callback = Closure::once(move || aborter.abort());
        let ms = self.timeout.as_secs_f64() * 1000.0;
        let id = set_timeout(callback.as_ref().unchecked_ref(), ms);
        let timer = Timer {
            id,
            _callback: callback,
        };
        let result = self.exchange(url, &init).await;
        drop(timer);
        result.map_err(|(e, reading_body)| {
            let too_large = e.as_string().is_some_and(|s| s == "too large");
            let timed_out = !too_large && signal.aborted();
            if too_large {
                // Cancel the unread body: otherwise the connection stays open (and busy, one of
                // a browser's few per host) while the server keeps streaming into it.
                controller.abort();
            }
            let (kind, detail) = if timed_out {
                (
                    TransportErrorKind::Timeout,
                    format!("no complete answer within {} ms", self.timeout.as_millis()),
                )
            } else if too_large {
                (
                    TransportErrorKind::TooLarge,
                    format!(
                        "response body larger than the cap of {} bytes",
                        self.max_response_bytes
                    ),
                )
            } else if reading_body {
                (
                    TransportErrorKind::Truncated,
                    format!("truncated response body: {}", describe(&e)),
                )
            } else {
                (kind_of(&e), describe(&e))
            };
            TransportError::new(kind, detail)
        })
    }
}

impl AsyncTransport for FetchTransport {
    fn send<'a>(
        &'a self,
        request: &'a HttpRequest,
    ) -> LocalFuture<'a, Result<HttpResponse, TransportError>> {
        Box::pin(self.send_fetch(Method::Post, &request.url, &request.headers, &request.body))
    }

    fn send_portal<'a>(
        &'a self,
        request: &'a PortalRequest,
    ) -> LocalFuture<'a, Result<HttpResponse, TransportError>> {
        Box::pin(self.send_fetch(
            request.method,
            &request.url,
            &request.headers,
            &request.body,
        ))
    }
}
