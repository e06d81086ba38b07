//! The command line behind a proxy: `--proxy` carries its requests (a CONNECT proxy on
//! loopback counts its tunnels), `direct` bypasses it, and a bad one is a usage error that never
//! shows the password. (The library's side of it is tests/network.rs at the repository root.)

use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};
use polar_license_testkit::{clean_command, ConnectProxy, Launch, ScratchDir};
use std::process::Output;
use std::sync::atomic::Ordering;

/// A bad `--proxy` (`ftp://user:s3cret@…`): a usage error (exit 2) that names the proxy and
/// never shows its password, on stdout or stderr.
#[track_caller]
fn refused_without_the_password(out: &Output) {
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("proxy") && !text.contains("s3cret"), "{text}");
}

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
    refused_without_the_password(&out);
}

/// `relay serve --proxy`: the relay's calls to Polar go through the proxy (each counted as a
/// tunnel); a bad one is a usage error at start that never shows the password. Not in the
/// Windows stage: `relay serve` as a process is tested on Linux only, like cli_relay.rs.
#[cfg(not(windows))]
#[test]
fn relay_serve_asks_polar_through_the_proxy() {
    use polar_license_emulator::{DEMO_ORGANIZATION_ID, DEMO_TOKEN};
    use polar_license_testkit::Served;
    const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let proxy = ConnectProxy::start(Some("user:s3cret"));
    let dir = ScratchDir::new("cli-network-relay");
    let key = dir.path().join("relay.key");
    let key_arg = key.to_str().expect("a UTF-8 path");
    let made = clean_command(BIN)
        .args(["relay", "keygen", "--out", key_arg, "--kid", "k1"])
        .launch();
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    let serve = |proxy_arg: &str| {
        let mut cmd = clean_command(BIN);
        cmd.args(["--base-url", &polar.url(), "--proxy", proxy_arg])
            .args(["relay", "serve", "--signing-key", key_arg, "--port", "0"])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN);
        cmd
    };
    let relay = Served::start(&mut serve(&proxy.url));
    let out = clean_command(BIN)
        .args([
            "--json",
            "--org",
            DEMO_ORGANIZATION_ID,
            "--base-url",
            &relay.url,
        ])
        .args(["--cache-dir", dir.arg(), "--proxy", "direct"])
        .args(["validate", "--key", DEMO_KEY])
        .launch();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        proxy.tunnels.load(Ordering::SeqCst),
        1,
        "the relay's call to Polar went through the proxy"
    );
    drop(relay);
    let bad = serve("ftp://user:s3cret@proxy.corp").launch();
    refused_without_the_password(&bad);
}
