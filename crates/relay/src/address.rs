//! A client's address as the relay counts it: from the socket peer, or behind a reverse
//! proxy from the header it writes (`x-forwarded-for`, `x-real-ip`, `cf-connecting-ip`,
//! RFC 7239's `forwarded`). A port is never part of the identity, and a value that is no
//! address is the proxy's own: a client cannot pick a fresh bucket per request by writing
//! `IP:port` with a new port each time, or any text at all.

use std::net::{IpAddr, SocketAddr};

/// The address in one entry of a proxy header: `IP`, `IP:port`, `[IPv6]`, `[IPv6]:port`,
/// quoted or not, or a `forwarded` element's `for=` value; `None` for anything else (`unknown`,
/// an obfuscated identifier, garbage).
pub(crate) fn address_in(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    // RFC 7239: `for=192.0.2.60;proto=http;by=203.0.113.43`, `for="[2001:db8::1]:4711"`.
    let value = if entry.contains('=') {
        entry.split(';').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            name.trim().eq_ignore_ascii_case("for").then_some(value)
        })?
    } else {
        entry
    };
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
        .trim();
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = value.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .and_then(|v| v.parse::<IpAddr>().ok())
}

/// The client a request counts for: the last entry of `header`'s value (the one the proxy
/// itself added) when a proxy header is configured and it holds an address, else the socket
/// peer `peer` (its port stripped when it has one; as given when it is no address).
pub(crate) fn client_address(header: Option<&str>, peer: &str) -> String {
    let from_header = header
        .and_then(|value| value.rsplit(',').next())
        .and_then(address_in);
    match from_header.or_else(|| address_in(peer)) {
        Some(ip) => ip.to_string(),
        None => peer.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_stripped_and_garbage_is_the_peer() {
        let peer = "10.0.0.254";
        let via = |value: &str| client_address(Some(value), peer);
        for (value, client) in [
            ("198.51.100.7", "198.51.100.7"),
            ("198.51.100.7:1234", "198.51.100.7"),
            (" 6.6.6.6, 198.51.100.7:65535 ", "198.51.100.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("\"[2001:db8::1]:4711\"", "2001:db8::1"),
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("For=192.0.2.43, for=198.51.100.17:80", "198.51.100.17"),
            // No address: the proxy itself.
            ("unknown", peer),
            ("", peer),
            ("198.51.100.7:port", peer),
            ("198.51.100.7:99999", peer),
            ("[2001:db8::1", peer),
            ("for=_hidden", peer),
            ("proto=https", peer),
            ("1.2.3.4 5.6.7.8", peer),
            ("\u{0}\n", peer),
        ] {
            assert_eq!(via(value), client, "{value:?}");
        }
        assert_eq!(client_address(None, peer), peer);
        assert_eq!(client_address(None, "192.0.2.1:5555"), "192.0.2.1");
        assert_eq!(client_address(None, "unknown"), "unknown");
    }
}
