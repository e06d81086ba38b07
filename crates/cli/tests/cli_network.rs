//! The command line behind a proxy: `--proxy` carries its requests (a CONNECT proxy on
//! loopback counts its tunnels), `direct` bypasses it, and a bad one is a usage error that never
//! shows the password. (The library's side of it is tests/network.rs at the repository root.)

use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};
use polar_license_testkit::{clean_command, ConnectProxy, Launch, ScratchDir};
use std::sync::atomic::Ordering;

/// The command line: `--proxy` carries its requests; a bad one is a usage error that never
/// shows the password.
#[test]
fn the_command_line_takes_a_proxy() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let proxy = ConnectProxy::start(Some("user:s3cret"));
    let dir = ScratchDir::new("cli-network");
    let run = |proxy_arg: &str| {
        clean_command(env!("CARGO_BIN_EXE_polar-license"))
            .args([
                "--json",
                "--org",
                &polar.organization_id(),
                "--base-url",
                &polar.url(),
            ])
            .args(["--cache-dir", dir.arg(), "--proxy", proxy_arg])
            .args(["validate", "--key", DEMO_KEY])
            .launch()
    };
    let out = run(&proxy.url);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 1);
    let out = run("direct");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        proxy.tunnels.load(Ordering::SeqCst),
        1,
        "direct: not through the proxy"
    );
    let out = run("ftp://user:s3cret@proxy.corp");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("proxy") && !text.contains("s3cret"), "{text}");
}
