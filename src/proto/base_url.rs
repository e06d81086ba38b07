//! Which Polar a client talks to ([`Server`]) and the base URL it is given, checked: `https://`,
//! or `http://` on a loopback host only (an emulator, a test proxy), read as std reads an
//! address so that no spelling of a remote host passes for the loopback.

use crate::error::Error;

/// Polar's production API.
pub const PRODUCTION_URL: &str = "https://api.polar.sh";
/// Polar's sandbox API (separate data: a sandbox key is `not_found` on production).
pub const SANDBOX_URL: &str = "https://sandbox-api.polar.sh";
/// The `User-Agent` the native client sends.
pub const USER_AGENT: &str = concat!("polar-license/", env!("CARGO_PKG_VERSION"), " (rust)");

/// Which Polar to talk to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Server {
    /// `https://api.polar.sh` (the default).
    #[default]
    Production,
    /// `https://sandbox-api.polar.sh`.
    Sandbox,
    /// Any `https://` URL, or `http://` on a loopback host (an emulator, a test proxy).
    Custom(String),
}

impl Server {
    /// Parses `production`, `sandbox` or a URL.
    pub fn parse(text: &str) -> Server {
        match text {
            "production" => Server::Production,
            "sandbox" => Server::Sandbox,
            url => Server::Custom(url.to_string()),
        }
    }

    /// The checked base URL, without a trailing slash.
    pub fn base_url(&self) -> Result<String, Error> {
        match self {
            Server::Production => Ok(PRODUCTION_URL.to_string()),
            Server::Sandbox => Ok(SANDBOX_URL.to_string()),
            Server::Custom(url) => check_base_url(url),
        }
    }

    /// [`Server::base_url`], a refusal naming `field` (a relay's URL, the portal's) instead of
    /// `base_url`.
    pub fn base_url_of(&self, field: &str) -> Result<String, Error> {
        self.base_url().map_err(|e| match e {
            Error::InvalidInput { message, .. } => Error::invalid(field, message),
            other => other,
        })
    }
}

/// Checks a custom base URL: `https://`, or `http://` only for a loopback host; no user info,
/// query or fragment. Returns it without trailing slashes.
pub fn check_base_url(url: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::invalid("base_url", why.to_string());
    let (scheme, rest) = url
        .split_once(':')
        .and_then(|(scheme, rest)| Some((scheme, rest.strip_prefix("//")?)))
        .ok_or_else(|| bad("must start with https:// or http://"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(bad("must start with https:// or http://"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("must not have a query or fragment"));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    let authority = before_slash(rest);
    if authority.contains('@') {
        return Err(bad("must not contain user info"));
    }
    let host = if let Some(inner) = authority.strip_prefix('[') {
        inner.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if scheme == "http" && !is_loopback_host(host) {
        return Err(bad(
            "plain http:// is only allowed for loopback hosts; use https://",
        ));
    }
    Ok([scheme.as_str(), "://", rest.trim_end_matches('/')].concat())
}

/// The origin of a checked base URL: its scheme, host and port, without the path
/// (`https://api.polar.sh/v1` → `https://api.polar.sh`); scheme and host lowercased.
pub fn origin(base_url: &str) -> String {
    let (scheme, rest) = base_url
        .split_once(':')
        .and_then(|(scheme, rest)| Some((scheme, rest.strip_prefix("//")?)))
        .unwrap_or(("", base_url));
    let authority = before_slash(rest);
    [
        scheme.to_ascii_lowercase(),
        "://".to_string(),
        authority.to_ascii_lowercase(),
    ]
    .concat()
}

/// `text` up to its first `/`.
fn before_slash(text: &str) -> &str {
    text.find('/').map_or(text, |i| &text[..i])
}

/// `localhost`, or an address literal of the loopback: std's `Ipv4Addr` or `Ipv6Addr` parsers'
/// answer with `is_loopback` (the tests hold these readers to it, spelling by spelling), read
/// by hand: those parsers were 0.76 KB of the npm engine gzipped, these readers 0.38 KB.
#[inline(never)] // one body, however many callers inline check_base_url
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || is_ipv4_loopback(host) || is_ipv6_loopback(host)
}

/// `127.x.y.z` as std reads an IPv4 address: four decimal parts (one to three digits, 0-255,
/// no leading zero) separated by dots.
fn is_ipv4_loopback(text: &str) -> bool {
    let mut parts = 0;
    text.split('.').all(|part| {
        parts += 1;
        (1..=3).contains(&part.len())
            && !(part.len() > 1 && part.starts_with('0'))
            && part
                .bytes()
                .try_fold(0, |n, c| {
                    c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
                })
                .is_some_and(|n| n < 256)
    }) && parts == 4
        && text.starts_with("127.")
}

/// `::1` in any spelling std reads: eight groups of one to four hex digits separated by
/// colons, one `::` at most for one or more zero groups, the last two groups maybe written
/// as an IPv4 address (`0.0.0.1` for the loopback's `0:1`). Only the loopback's digits are
/// read (every group zero but the last, one): any other digit is another address.
fn is_ipv6_loopback(text: &str) -> bool {
    let owned;
    let text = match text.strip_suffix("0.0.0.1") {
        Some(head) if head.ends_with(':') => {
            owned = [head, "0:1"].concat();
            &owned
        }
        _ => text,
    };
    let b = text.as_bytes();
    // Ends in the last group's 1, and starts with a group or `::`.
    if b.last() != Some(&b'1') || (b.first() == Some(&b':') && !b.starts_with(b"::")) {
        return false;
    }
    let (mut groups, mut digits, mut colons, mut doubles) = (0, 0, 0, 0);
    for (i, &c) in b.iter().enumerate() {
        if c == b':' {
            (colons, digits) = (colons + 1, 0);
            doubles += usize::from(colons == 2);
        } else if c == b'0' || i + 1 == b.len() {
            groups += usize::from(digits == 0);
            (colons, digits) = (0, digits + 1);
        } else {
            return false;
        }
        if colons > 2 || digits > 4 {
            return false;
        }
    }
    match doubles {
        0 => groups == 8,
        1 => groups < 8,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{is_ipv4_loopback, is_ipv6_loopback, is_loopback_host};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Both readers against std's parsers and `is_loopback`, on `host`.
    fn agrees(host: &str) {
        let v4 = host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
        let v6 = host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
        assert_eq!(is_ipv4_loopback(host), v4, "IPv4 {host:?}");
        assert_eq!(is_ipv6_loopback(host), v6, "IPv6 {host:?}");
    }

    #[test]
    fn loopback_hosts_are_what_std_parses_as_the_loopback() {
        for host in [
            "localhost",
            "LocalHost",
            "LOCALHOST",
            "localhost.",
            "127.0.0.1",
            "127.255.255.255",
            "127.0.0.0",
            "127.1",
            "127.0.1",
            "127.0.0.01",
            "127.0.0.256",
            "127.0.0.255",
            "127.0.0.300",
            "127.0.0.1000",
            "0127.0.0.1",
            "127.0.0.1.",
            ".127.0.0.1",
            "127..0.1",
            "128.0.0.1",
            "126.0.0.1",
            "127.0.0.+1",
            "127.0.0.1 ",
            " 127.0.0.1",
            "127.0.0.a",
            "::1",
            "0:0:0:0:0:0:0:1",
            "0000:0000:0000:0000:0000:0000:0000:0001",
            "::0001",
            "::00001",
            "0::1",
            "::0:1",
            "0:0:0::0:0:1",
            "0:0:0:0:0:0:0::1",
            "::0:0:0:0:0:0:1",
            "::0:0:0:0:0:0:0:1",
            ":0:0:0:0:0:0:0:1",
            "0:0:0:0:0:0:0:1:",
            "::1:",
            "::1::",
            "1::",
            "::",
            ":::1",
            "::0.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:0.0.0.1",
            "0:0:0:0:0:0:0.0.0.1",
            "0:0:0:0:0:0::0.0.0.1",
            "0:0:0:0:0::0.0.0.1",
            "::00.0.0.1",
            "::0.0.0.01",
            "0.0.0.1",
            "0.0.0.1::",
            "0.0.0.1::1",
            "::127.0.0.1",
            "::10",
            "::1:0",
            "::11",
            "1::1",
            "::01",
            "0:0:0:0:0:0:0:0:1",
            "0:0:0:0:0:0:1",
            "[::1]",
            "",
            ":",
            "1",
            "::1%lo",
            "::1 ",
            "::１",
            "::0:0.0.0.1",
            "::0:0:0:0:0:0.0.0.1",
            "::0:0:0:0:0:0:0.0.0.1",
        ] {
            agrees(host);
            let std = host.eq_ignore_ascii_case("localhost")
                || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
                || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
            assert_eq!(is_loopback_host(host), std, "{host:?}");
        }
        // Every text of up to seven characters of these.
        let alphabet = b"01:.72f";
        let mut text = Vec::new();
        for len in 1..=7u32 {
            for mut n in 0..alphabet.len().pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                agrees(std::str::from_utf8(&text).unwrap_or_default());
            }
        }
        // Longer texts from pieces of addresses (a fixed xorshift: the same texts every run).
        let pieces = [
            "0",
            "00",
            "000",
            "0000",
            "00000",
            "1",
            "01",
            "001",
            "0001",
            "10",
            "f",
            "ffff",
            "127",
            "255",
            "256",
            "7f00",
            ":",
            "::",
            ".",
            "0.0.0.1",
            "0.0.0.",
            "127.0.0.1",
            ":0",
            "0:",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % below as u64).unwrap_or_default()
        };
        let mut hits = 0;
        for _ in 0..300_000 {
            let text: String = (0..1 + next(16))
                .map(|_| pieces[next(pieces.len())])
                .collect();
            agrees(&text);
            hits += usize::from(is_ipv6_loopback(&text));
        }
        // The pieces do spell the loopback, often enough to mean something.
        assert!(hits > 100, "{hits} loopback spellings");
    }
}
