//! Issue #52: who a client is, over loopback HTTP through the native server behind a trusted
//! proxy header. An `X-Forwarded-For` entry written `IP:port` is the IP whatever the port (one
//! client writing a new port each time gets no new per-IP bucket), and a value that is no
//! address is the proxy's own bucket, never a fresh one.

mod rig;

use std::time::Duration;

use polar_license_relay::{Rate, ServeOptions};
use rig::Answer;

fn relay(polar: &polar_license_emulator::Emulator) -> polar_license_relay::Running {
    let mut config = rig::config(polar.url(), "clients");
    config.limits = rig::limits(Rate::new(1, 3), Rate::new(0, 0));
    config.client_ip_header = Some("x-forwarded-for".into());
    rig::listen_with(config, ServeOptions::default())
}

fn statuses(answers: &[Answer]) -> Vec<u16> {
    answers.iter().map(|a| a.status).collect()
}

/// One address behind the proxy with a new port on each request: its burst of 3, then 429,
/// as one client; the same for `[IPv6]:port` across its /64. Garbage and `unknown` are the
/// proxy itself: one bucket between them and a request with no header at all.
#[test]
fn a_port_is_no_new_client_and_garbage_is_the_proxy() {
    let polar = rig::emulator();
    let key = rig::add_key(&polar, "CLIENTS-4A5B6C".into(), None);
    let relay = relay(&polar);
    let agent = rig::agent(Duration::from_secs(30));
    let via = |value: Option<String>| {
        let headers: Vec<(&str, &str)> = value
            .as_deref()
            .map(|v| vec![("x-forwarded-for", v)])
            .unwrap_or_default();
        rig::validate_at(&agent, &relay.url(), &key, &headers)
    };
    let v4: Vec<Answer> = (0..6)
        .map(|port| via(Some(format!("203.0.113.9, 198.51.100.7:{}", 40_000 + port))))
        .collect();
    assert_eq!(statuses(&v4), vec![200, 200, 200, 429, 429, 429]);
    let v6: Vec<Answer> = (0..6)
        .map(|n| via(Some(format!("[2001:db8:5:6::{n:x}]:{}", 50_000 + n))))
        .collect();
    assert_eq!(statuses(&v6), vec![200, 200, 200, 429, 429, 429]);
    let garbage: Vec<Answer> = [
        Some("garbage-1".to_string()),
        Some("198.51.100.8:port".into()),
        Some("unknown".into()),
        Some("for=_hidden".into()),
        None,
    ]
    .into_iter()
    .map(via)
    .collect();
    assert_eq!(statuses(&garbage), vec![200, 200, 200, 429, 429]);
    relay.stop();
}
