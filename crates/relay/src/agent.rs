//! The native agent of the relay's own reads of Polar: one configuration, taken by the
//! native server's reads between requests and by the set-up check's blocking host.

use std::time::Duration;

/// The agent of the relay's own reads of Polar (the native server's roster and reconcile
/// reads, `polar-license doctor`'s check): 5 s to connect, [`crate::types::CALL_TIMEOUT_MS`]
/// in all, no proxy for a Polar on loopback.
pub(crate) fn agent(base_url: &str) -> ureq::Agent {
    let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| base_url.starts_with(p));
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_millis(crate::types::CALL_TIMEOUT_MS)));
    if local {
        config = config.proxy(None);
    }
    config.build().into()
}
