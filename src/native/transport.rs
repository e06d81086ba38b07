//! The native transport: ureq over rustls, the OS trust store or bundled roots, the
//! environment's proxy or the app's, no redirects, a body cap, status codes as data.

use crate::error::Error;
use crate::portal::{Method, PortalRequest};
use crate::proto::{HttpRequest, HttpResponse, USER_AGENT};
use crate::transport::{Transport, TransportError, TransportErrorKind};
use std::io::ErrorKind;
use std::time::Duration;

pub use crate::options::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};

/// Which certificates Polar's TLS certificate is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TlsRoots {
    /// The operating system's trust store, through rustls-platform-verifier (Windows and
    /// macOS verify with the system's own APIs; Linux reads the system's CA bundle): a
    /// company's TLS-inspecting proxy whose CA the company installed works, as it does in the
    /// browser. The default.
    #[default]
    System,
    /// Only the Mozilla roots compiled into the library (webpki-roots): a CA installed on the
    /// machine, a company's or a malicious one, is not trusted; behind a TLS-inspecting proxy
    /// Polar is unreachable (`offline`, TLS failure) and the grace period runs out.
    Bundled,
}

/// How requests reach Polar.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ProxySetting {
    /// `ALL_PROXY`, `HTTPS_PROXY` or `HTTP_PROXY` (with `NO_PROXY`), else, on Windows, the
    /// system's proxy setting; directly when none is set. The default.
    #[default]
    Environment,
    /// This HTTP(S) proxy, `http://host:port` or `https://host:port`, with
    /// `user:password@` when it needs them (percent-encoded): requests go through it with
    /// `CONNECT`, whatever the environment says.
    Url(String),
    /// Directly, whatever the environment says.
    Direct,
}

impl std::fmt::Debug for ProxySetting {
    /// Never prints a proxy's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxySetting::Environment => f.write_str("Environment"),
            ProxySetting::Direct => f.write_str("Direct"),
            ProxySetting::Url(url) => f.debug_tuple("Url").field(&redact_userinfo(url)).finish(),
        }
    }
}

/// `scheme://***@host:port` for a URL with credentials, the URL itself otherwise.
fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    match rest.split_once('@') {
        Some((_, host)) if !host.contains('/') || rest.find('@') < rest.find('/') => {
            format!("{scheme}://***@{host}")
        }
        _ => url.to_string(),
    }
}

impl ProxySetting {
    /// `invalid_input` (field `proxy`) for a URL that is not an HTTP(S) proxy's (what `build`
    /// would say; the C config checks at once, when the proxy is set).
    pub fn check(&self) -> Result<(), Error> {
        match self {
            ProxySetting::Url(_) => self.resolve().map(drop),
            _ => Ok(()),
        }
    }

    /// The ureq proxy, or `invalid_input` (field `proxy`) for a URL that is not an HTTP(S)
    /// proxy's.
    pub(super) fn resolve(&self) -> Result<Option<ureq::Proxy>, Error> {
        match self {
            ProxySetting::Environment => Ok(ureq::Proxy::try_from_env()),
            ProxySetting::Direct => Ok(None),
            ProxySetting::Url(url) => {
                let shown = redact_userinfo(url);
                let lower = url.trim().to_ascii_lowercase();
                if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                    return Err(Error::invalid(
                        "proxy",
                        format!("`{shown}` is not an http:// or https:// proxy URL"),
                    ));
                }
                ureq::Proxy::new(url.trim()).map(Some).map_err(|e| {
                    Error::invalid("proxy", format!("`{shown}` is not a proxy URL: {e}"))
                })
            }
        }
    }
}

/// The ureq transport: rustls, no redirects followed, a body cap, status codes as data.
#[derive(Debug, Clone)]
pub struct UreqTransport {
    agent: ureq::Agent,
    max_response_bytes: u64,
}

impl UreqTransport {
    /// A transport with these timeouts and body cap, the system's trust store and the
    /// environment's proxy.
    pub fn new(connect_timeout: Duration, timeout: Duration, max_response_bytes: u64) -> Self {
        UreqTransport::with_network(
            connect_timeout,
            timeout,
            max_response_bytes,
            TlsRoots::System,
            ureq::Proxy::try_from_env(),
        )
    }

    /// A transport with these timeouts and body cap, trust roots and proxy (what
    /// `ClientBuilder::tls_roots` / `proxy` give a client; `polar-license relay serve` asks
    /// Polar through one). A proxy URL that is not an HTTP(S) proxy's is `invalid_input`
    /// (field `proxy`).
    pub fn configured(
        connect_timeout: Duration,
        timeout: Duration,
        max_response_bytes: u64,
        roots: TlsRoots,
        proxy: &ProxySetting,
    ) -> Result<Self, Error> {
        Ok(UreqTransport::with_network(
            connect_timeout,
            timeout,
            max_response_bytes,
            roots,
            proxy.resolve()?,
        ))
    }

    pub(super) fn with_network(
        connect_timeout: Duration,
        timeout: Duration,
        max_response_bytes: u64,
        roots: TlsRoots,
        proxy: Option<ureq::Proxy>,
    ) -> Self {
        let roots = match roots {
            TlsRoots::System => ureq::tls::RootCerts::PlatformVerifier,
            TlsRoots::Bundled => ureq::tls::RootCerts::WebPki,
        };
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(USER_AGENT)
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .proxy(proxy)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            LiteralFirstResolver::default(),
        );
        UreqTransport {
            agent,
            max_response_bytes,
        }
    }
}

impl Default for UreqTransport {
    fn default() -> Self {
        UreqTransport::new(
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_TIMEOUT,
            DEFAULT_MAX_RESPONSE_BYTES,
        )
    }
}

/// ureq's resolver, except that an IP-literal host (`127.0.0.1`, `[::1]`) is answered inline.
///
/// With a timeout configured, ureq's default resolver runs every lookup on a new thread so
/// that a hung DNS query can be abandoned; for an address that needs no lookup, that thread
/// is pure cost (it dominated a loopback validate in `benches/validate.rs`). Host names still
/// go through the default resolver and its timeout.
#[derive(Debug, Default)]
struct LiteralFirstResolver {
    fallback: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for LiteralFirstResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        if let Some(addr) = literal_socket_addr(uri) {
            let mut addrs = self.empty();
            addrs.push(addr);
            return Ok(addrs);
        }
        self.fallback.resolve(uri, config, timeout)
    }
}

/// The socket address of a URI whose host is an IP literal, with the scheme's default port.
fn literal_socket_addr(uri: &ureq::http::Uri) -> Option<std::net::SocketAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: std::net::IpAddr = host.parse().ok()?;
    let port = match (uri.port_u16(), uri.scheme_str()) {
        (Some(port), _) => port,
        (None, Some("http")) => 80,
        (None, Some("https")) => 443,
        (None, _) => return None,
    };
    Some(std::net::SocketAddr::new(ip, port))
}

fn map_ureq_error(e: ureq::Error, reading_body: bool) -> TransportError {
    use TransportErrorKind as K;
    let kind = match &e {
        ureq::Error::Timeout(_) => K::Timeout,
        ureq::Error::HostNotFound => K::Dns,
        ureq::Error::ConnectionFailed => K::Connect,
        ureq::Error::BodyExceedsLimit(_) => K::TooLarge,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => K::Tls,
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock => K::Timeout,
            ErrorKind::ConnectionRefused => K::Connect,
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
                if reading_body =>
            {
                K::Truncated
            }
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => K::Reset,
            _ => K::Other,
        },
        ureq::Error::Protocol(_) if reading_body => K::Truncated,
        ureq::Error::Protocol(_) => K::Malformed,
        _ => K::Other,
    };
    let detail = match kind {
        K::Truncated => format!("truncated response body: {e}"),
        K::TooLarge => format!("response body larger than the cap: {e}"),
        _ => e.to_string(),
    };
    TransportError::new(kind, detail)
}

impl Transport for UreqTransport {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut builder = self.agent.post(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        // No compression: without this header a server may pick any coding (RFC 9110 §12.5.3),
        // and this transport decodes none; a body compressed all the same is not Polar's JSON
        // (protocol_error). (`fetch` asks for and decodes the codings its host knows.)
        builder = builder.header("accept-encoding", "identity");
        // A byte slice has a known length, so ureq sends Content-Length (never chunked).
        let response = builder
            .send(&request.body[..])
            .map_err(|e| map_ureq_error(e, false))?;
        self.read(response)
    }

    fn send_portal(&self, request: &PortalRequest) -> Result<HttpResponse, TransportError> {
        let response = match request.method {
            Method::Get => {
                let mut builder = self.agent.get(&request.url);
                for (name, value) in &request.headers {
                    builder = builder.header(*name, value);
                }
                builder.header("accept-encoding", "identity").call()
            }
            Method::Post => {
                let mut builder = self.agent.post(&request.url);
                for (name, value) in &request.headers {
                    builder = builder.header(*name, value);
                }
                // A slice, even empty, has a known length: Content-Length is always sent.
                builder
                    .header("accept-encoding", "identity")
                    .send(&request.body[..])
            }
        }
        .map_err(|e| map_ureq_error(e, false))?;
        self.read(response)
    }
}

impl UreqTransport {
    /// A response read whole, as [`Transport::send`] reads it: one length, the body capped.
    fn read(
        &self,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<HttpResponse, TransportError> {
        // A length sent twice (even twice the same) is no answer, as `fetch` reads it (ureq
        // refuses two that differ itself).
        let lengths = response.headers().get_all("content-length");
        if lengths.iter().count() > 1 || lengths.iter().any(|v| v.as_bytes().contains(&b',')) {
            return Err(TransportError::new(
                TransportErrorKind::Malformed,
                "a content-length sent more than once",
            ));
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        // The cap is inclusive (a body of exactly the cap is read, as `fetch` reads it): ureq's
        // limit refuses a body that reaches it.
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_response_bytes.saturating_add(1))
            .read_to_vec()
            .map_err(|e| map_ureq_error(e, true))?;
        if body.len() as u64 > self.max_response_bytes {
            return Err(TransportError::new(
                TransportErrorKind::TooLarge,
                "response body larger than the cap",
            ));
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::literal_socket_addr;

    fn addr(uri: &str) -> Option<String> {
        let uri: ureq::http::Uri = uri.parse().ok()?;
        literal_socket_addr(&uri).map(|a| a.to_string())
    }

    #[test]
    fn ip_literals_resolve_inline_with_the_scheme_port() {
        assert_eq!(
            addr("http://127.0.0.1:8080/v1").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(addr("http://127.0.0.1/v1").as_deref(), Some("127.0.0.1:80"));
        assert_eq!(addr("https://10.1.2.3/v1").as_deref(), Some("10.1.2.3:443"));
        assert_eq!(addr("http://[::1]:9/x").as_deref(), Some("[::1]:9"));
        assert_eq!(addr("https://[::1]/x").as_deref(), Some("[::1]:443"));
    }

    #[test]
    fn host_names_go_to_the_default_resolver() {
        assert_eq!(addr("https://api.polar.sh/v1"), None);
        assert_eq!(addr("http://localhost:8000/v1"), None);
        assert_eq!(addr("http://127.0.0.1.nip.io/v1"), None);
    }
}
