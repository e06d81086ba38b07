//! `polar-license relay keygen` and `relay serve` as real processes (issue #25): the key file
//! and what keygen prints, serve's banner, and a validate end to end through `relay serve` in
//! front of `polar-license emulator`.

use polar_license::lease::{RelayKeys, SigningKey, LEASE_HEADER};
use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::http::{self, read_head, HttpAnswer};
use polar_license_testkit::{clean_command, expect_json_field, leases, Launch, ScratchDir, Served};
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

fn run(args: &[&str]) -> Output {
    clean_command(BIN).args(args).launch()
}

/// `relay serve` in front of the Polar at `polar`, signing with the key file `key`.
fn serve(polar: &str, key: &str) -> std::process::Command {
    let mut cmd = clean_command(BIN);
    cmd.args(["--base-url", polar, "relay", "serve", "--signing-key", key]);
    cmd
}

/// `relay keygen --out <a new scratch dir>/relay.key ARGS…`, exit 0: the directory and the
/// key file.
fn keygen(label: &str, args: &[&str]) -> (ScratchDir, std::path::PathBuf) {
    let dir = ScratchDir::new(label);
    let file = dir.path().join("relay.key");
    let out = file.to_str().expect("a UTF-8 path");
    let o = run(&[&["relay", "keygen", "--out", out][..], args].concat());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    (dir, file)
}

/// `--json relay serve --signing-key KEY --port 0`, to be given the rest.
fn json_serve(key: &str) -> std::process::Command {
    let mut cmd = clean_command(BIN);
    cmd.args([
        "--json",
        "relay",
        "serve",
        "--signing-key",
        key,
        "--port",
        "0",
    ]);
    cmd
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn keygen_writes_an_owner_only_key_and_prints_the_public_key_clients_take() {
    let dir = ScratchDir::new("relay-keygen");
    let file = dir.path().join("relay.key");
    let out = file.to_str().expect("a UTF-8 path");
    let o = run(&["relay", "keygen", "--out", out, "--kid", "k1"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let printed = stdout(&o);
    let line = printed.trim_end();
    assert_eq!(printed.lines().count(), 1, "{printed:?}");
    assert!(line.starts_with("k1=k4.public."), "{line}");
    let keys = RelayKeys::parse(line).expect("clients take what keygen prints");
    let key = SigningKey::from_file_text(&std::fs::read_to_string(&file).expect("the key file"))
        .expect("serve takes what keygen writes");
    assert_eq!((key.public_pair().as_str(), keys), (line, key.relay_keys()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // An existing file is refused (exit 3, the file untouched), replaced with --force.
    let before = std::fs::read(&file).expect("the key file");
    let o = run(&["--json", "relay", "keygen", "--out", out]);
    expect_json_field(&o, 3, "field", "out");
    assert_eq!(std::fs::read(&file).expect("the key file"), before);
    let o = run(&["--json", "relay", "keygen", "--out", out, "--force"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let kid = v["kid"].as_str().expect("kid");
    let public = v["public_key"].as_str().expect("public_key");
    assert!(
        kid.starts_with("k4.pid.") && public.starts_with("k4.public."),
        "{v}"
    );
    let key = SigningKey::from_file_text(&std::fs::read_to_string(&file).expect("the key file"))
        .expect("the new key");
    assert_eq!(key.public_pair(), format!("{kid}={public}"));
    assert_ne!(std::fs::read(&file).expect("the key file"), before);

    // A bad kid is a usage error.
    let o = run(&["relay", "keygen", "--out", out, "--force", "--kid", "a=b"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn serve_needs_a_token_and_a_readable_key() {
    let (dir, file) = keygen("relay-serve-args", &[]);
    let out = file.to_str().expect("a UTF-8 path");
    let o = json_serve(out).launch();
    expect_json_field(&o, 2, "field", "access_token");
    let missing = dir.path().join("none.key");
    let o = run(&[
        "--json",
        "relay",
        "serve",
        "--signing-key",
        missing.to_str().expect("a UTF-8 path"),
        "--access-token",
        "polar_oat_x",
    ]);
    expect_json_field(&o, 3, "field", "signing_key");
    assert!(!stdout(&o).contains("polar_oat_x"));
}

#[test]
fn a_validate_end_to_end_through_relay_serve_in_front_of_the_emulator() {
    let (dir, file) = keygen("relay-e2e", &["--kid", "k1"]);
    let out = file.to_str().expect("a UTF-8 path");
    let key = SigningKey::from_file_text(&std::fs::read_to_string(&file).expect("the key"))
        .expect("the key");

    let polar = Served::start(clean_command(BIN).args(["emulator", "--port", "0"]));
    let (relay, banner) = Served::start_with_banner(
        serve(&polar.url, out)
            .args(["--port", "0"])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN),
        "serving until killed",
    );
    assert!(relay.url.starts_with("http://127.0.0.1:"), "{}", relay.url);
    assert!(
        banner.iter().any(|l| l.contains(&key.public_pair())),
        "{banner:#?}"
    );

    // The command line's own validate, pointed at the relay: licensed.
    let cache = dir.path().join("cache");
    let o = clean_command(BIN)
        .args([
            "--base-url",
            &relay.url,
            "--org",
            DEMO_ORGANIZATION_ID,
            "--json",
        ])
        .args(["--cache-dir", cache.to_str().expect("a UTF-8 path")])
        .args(["validate", "--key", DEMO_KEY])
        .launch();
    expect_json_field(&o, 0, "outcome", "licensed");

    // The raw answer carries a lease that verifies with the key keygen printed.
    let agent = http::agent(Duration::from_secs(30));
    let body = format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{DEMO_ORGANIZATION_ID}"}}"#);
    let resp = agent
        .post(format!(
            "{}/v1/customer-portal/license-keys/validate",
            relay.url
        ))
        .header("content-type", "application/json")
        .send(body.as_str())
        .expect("an answer");
    let answer = HttpAnswer::read(resp);
    assert_eq!(answer.status, 200);
    let token = answer.header(LEASE_HEADER).expect("a lease").to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let keys = key.relay_keys();
    let lease =
        leases::verify_plain(&token, &keys, DEMO_ORGANIZATION_ID, DEMO_KEY, now).expect("verifies");
    assert_eq!(lease.kid, "k1");
    assert_eq!(lease.claims.expires_at - lease.claims.issued_at, 7 * 86_400);
}

/// `relay serve` under systemd's socket activation (`systemd-socket-activate`, which listens,
/// and on the first connection starts the relay with the socket as fd 3, `LISTEN_FDS=1` and
/// `LISTEN_PID` its pid, as a `.socket` unit does): the relay serves on that socket, not on
/// `--host`/`--port`, and answers the connection that woke it, which waited in its queue.
#[cfg(unix)]
#[test]
fn serve_takes_the_socket_systemd_hands_in() {
    let activate = [
        "/usr/bin/systemd-socket-activate",
        "/bin/systemd-socket-activate",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(activate) = activate else {
        // scripts/setup-c.sh installs it (systemd): under CI a machine without it fails here.
        assert!(
            std::env::var_os("CI").is_none(),
            "no systemd-socket-activate: scripts/setup-c.sh installs it (package systemd)"
        );
        eprintln!("skipped: no systemd-socket-activate on this machine");
        return;
    };
    let (_dir, file) = keygen("relay-socket", &[]);
    let out = file.to_str().expect("a UTF-8 path");
    let polar = Served::start(clean_command(BIN).args(["emulator", "--port", "0"]));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    // The first check, sent before the relay runs: it wakes it and waits in the queue.
    let first = {
        let url = url.clone();
        std::thread::spawn(move || {
            let agent = http::agent(Duration::from_secs(30));
            let body =
                format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{DEMO_ORGANIZATION_ID}"}}"#);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                // Refused until systemd-socket-activate listens.
                let sent = agent
                    .post(format!("{url}/v1/customer-portal/license-keys/validate"))
                    .header("content-type", "application/json")
                    .send(body.as_str());
                match sent {
                    Ok(resp) => return HttpAnswer::read(resp).status,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => panic!("never answered: {e}"),
                }
            }
        })
    };
    let mut cmd = clean_command(activate);
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), BIN])
        .args(["--base-url", &polar.url, "--access-token", DEMO_TOKEN])
        .args(["relay", "serve", "--signing-key", out])
        .args(["--host", "127.0.0.2", "--port", "0"]);
    let (relay, banner) = Served::start_with_banner(&mut cmd, "serving until killed");
    assert_eq!(relay.url, url, "{banner:#?}");
    assert!(
        banner
            .iter()
            .any(|l| l.contains("handed in by the service manager")),
        "{banner:#?}"
    );
    assert_eq!(first.join().expect("the first check"), 200);
}

/// `relay serve --cors-origin` (env `POLAR_LICENSE_RELAY_CORS_ORIGINS`) through the real
/// server: a named page's origin comes back, another page's gets no CORS grant (its browser
/// hides the answer), a preflight the same; a malformed origin is refused at start.
#[test]
fn serve_cors_origins_grant_only_the_pages_named() {
    let (_dir, file) = keygen("relay-cors", &[]);
    let out = file.to_str().expect("a UTF-8 path");
    let bad = json_serve(out)
        .args(["--cors-origin", "https://app.example.com/path"])
        .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
        .launch();
    expect_json_field(&bad, 2, "field", "cors_origins");

    let polar = Served::start(clean_command(BIN).args(["emulator", "--port", "0"]));
    let (relay, _) = Served::start_with_banner(
        serve(&polar.url, out)
            .args(["--port", "0", "--cors-origin", "https://app.example.com"])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN)
            .env("POLAR_LICENSE_RELAY_CORS_ORIGINS", "http://localhost:5173"),
        "serving until killed",
    );
    let agent = http::agent(Duration::from_secs(30));
    let url = format!("{}/v1/customer-portal/license-keys/validate", relay.url);
    let body = format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{DEMO_ORGANIZATION_ID}"}}"#);
    let grant = |origin: &str, preflight: bool| {
        let resp = if preflight {
            agent
                .options(&url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .call()
        } else {
            agent
                .post(&url)
                .header("origin", origin)
                .header("content-type", "application/json")
                .send(body.as_str())
        }
        .expect("an answer");
        HttpAnswer::read(resp).status_and("access-control-allow-origin", "vary")
    };
    // The flag wins over the variable (clap: a flag given replaces the environment's).
    for preflight in [false, true] {
        let (status, allow, vary) = grant("https://app.example.com", preflight);
        assert_eq!(status, if preflight { 204 } else { 200 });
        assert_eq!(allow.as_deref(), Some("https://app.example.com"));
        assert_eq!(vary.as_deref(), Some("origin"));
        for other in ["https://evil.example", "http://localhost:5173"] {
            let (status, allow, _) = grant(other, preflight);
            assert_eq!(status, if preflight { 204 } else { 200 }, "{other}");
            assert_eq!(allow, None, "{other} gets no grant");
        }
    }
}

/// A TCP connection to `url`'s `host:port` from the loopback address `from` (`127.0.0.x`).
fn connect_from(from: [u8; 4], url: &str) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let to: std::net::SocketAddr = url
        .strip_prefix("http://")
        .expect("an http URL")
        .parse()
        .expect("IP:PORT");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    let local = std::net::SocketAddr::from((from, 0));
    socket
        .bind(&local.into())
        .expect("bound to the loopback address");
    socket.connect(&to.into()).expect("connected");
    socket.into()
}

/// One HTTP/1.1 request on `stream` (`connection: close` unless `keep` is set) and the
/// answer's head (status line and headers, lowercase), read until its blank line; an empty
/// string when the connection was closed without an answer.
fn exchange(stream: &mut std::net::TcpStream, request: &str) -> String {
    use std::io::Write;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let head = read_head(stream).unwrap_or_else(|partial| partial);
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

/// Whether the server closed `stream` (a read sees the end or a reset; an open, idle
/// connection has nothing to read).
fn closed_by_server(stream: &std::net::TcpStream) -> bool {
    use std::io::Read;
    stream.set_nonblocking(true).expect("non-blocking");
    let mut byte = [0u8; 1];
    let closed = match (&*stream).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).expect("blocking");
    closed
}

/// Issue #52: one client address that opens and holds every connection it can (idle
/// keep-alive connections) never keeps the others out. With `--max-connections 32` and no
/// share per address, the hog's 48 connections took all 32 and every one of the other
/// client's requests went unanswered. Since issue #62 the share per address bites only when
/// others wait: with none waiting the hog holds all but the 2 kept for addresses holding none
/// (32 / 16), another address's requests are all answered from those, and a third address
/// holding connections gets its share, each connection past the free ones cut from the hog's
/// (an address within its share waits; one past it does not). The default share (16) and the
/// flag (4) both reach the server. `/healthz` answers `connection: close`: a monitor (or a
/// hog) keeps no idle connection with it.
#[test]
fn one_address_holding_connections_leaves_room_for_the_others() {
    let (_dir, file) = keygen("relay-hog", &[]);
    let out = file.to_str().expect("a UTF-8 path");
    let polar = Served::start(clean_command(BIN).args(["emulator", "--port", "0"]));
    let body = format!(r#"{{"key":"{DEMO_KEY}","organization_id":"{DEMO_ORGANIZATION_ID}"}}"#);
    let validate = format!(
        "POST /v1/customer-portal/license-keys/validate HTTP/1.1\r\nhost: relay\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    for (flag, cap) in [(None, 16), (Some("4"), 4)] {
        let mut cmd = serve(&polar.url, out);
        cmd.args([
            "--port",
            "0",
            "--max-connections",
            "32",
            "--per-ip",
            "0",
            "--per-key",
            "0",
        ])
        .args(["--header-timeout", "60"])
        .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN);
        if let Some(n) = flag {
            cmd.args(["--max-connections-per-address", n]);
        }
        let (relay, _) = Served::start_with_banner(&mut cmd, "serving until killed");

        // The hog: 48 connections from 127.0.0.2, held open without a request.
        let hog: Vec<std::net::TcpStream> = (0..48)
            .map(|_| connect_from([127, 0, 0, 2], &relay.url))
            .collect();
        // The server closes those past the room (the 2 kept for others) as it accepts them.
        let still_open = |conns: &[std::net::TcpStream], most: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let mut open = conns.len();
            while std::time::Instant::now() < deadline {
                open = conns.iter().filter(|s| !closed_by_server(s)).count();
                if open <= most {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            open
        };
        let open = still_open(&hog, 30);

        // Another client, meanwhile: each of its 25 requests answered.
        for i in 0..25 {
            let mut s = connect_from([127, 0, 0, 3], &relay.url);
            let head = exchange(&mut s, &validate);
            assert!(
                head.starts_with("http/1.1 200"),
                "request {i} of 127.0.0.3 (cap {cap}): {head:?}"
            );
        }
        assert_eq!(
            open, 30,
            "the hog's connections held open (share {cap}), none waiting"
        );
        // A third address holding connections: its share, each past the free ones cut from
        // the hog's; past its share, closed at once.
        let third: Vec<std::net::TcpStream> = (0..cap + 4)
            .map(|_| connect_from([127, 0, 0, 4], &relay.url))
            .collect();
        let third_open = still_open(&third, cap);
        // All but its first (which may have found one free) cut from the hog's.
        let hog_open = still_open(&hog, 31 - third_open);
        assert!(
            third_open <= cap && hog_open >= cap && hog_open + third_open >= 30,
            "third {third_open}, hog {hog_open} (share {cap})"
        );
        // The third address got its share, unless the hog is down to its own (never below).
        assert!(
            third_open == cap || hog_open == cap,
            "third {third_open}, hog {hog_open} (share {cap})"
        );
        assert!(hog_open < 30, "the hog was cut");
        // The hog's connections still open are still served: one asks for /healthz, is
        // answered `connection: close`, and the server closes it.
        let mut held = hog
            .into_iter()
            .find(|s| !closed_by_server(s))
            .expect("a connection of the hog's still open");
        let head = exchange(&mut held, "GET /healthz HTTP/1.1\r\nhost: relay\r\n\r\n");
        assert!(head.starts_with("http/1.1 200"), "{head:?}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head:?}");
        // Its body, then the end of the connection (kept alive, the read would time out).
        held.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        let mut rest = Vec::new();
        let ended = std::io::Read::read_to_end(&mut held, &mut rest);
        assert!(
            ended.is_ok(),
            "/healthz left its connection open: {ended:?}"
        );
    }
}

/// `relay serve` with a test-only variable set (a seat's life, the budget's window) says so on
/// stderr as it starts, one warning line for each, naming it; without them, none.
#[test]
fn serve_warns_of_each_test_only_variable_set() {
    use std::io::BufRead;
    let (dir, file) = keygen("relay-test-only", &[]);
    let out = file.to_str().expect("a UTF-8 path");
    const VARS: [&str; 2] = [
        "POLAR_LICENSE_RELAY_TEST_ONLY_SEAT_SECONDS",
        "POLAR_LICENSE_RELAY_TEST_ONLY_BUDGET_SECONDS",
    ];
    // The warnings printed by a relay started with `vars` set (stopped once it serves).
    let warnings = |vars: &[&str], label: &str| -> Vec<String> {
        let err_path = dir.path().join(format!("{label}.err"));
        let err = std::fs::File::create(&err_path).expect("a stderr file");
        let mut cmd = serve("http://127.0.0.1:9", out);
        cmd.args(["--port", "0"])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN);
        for v in vars {
            cmd.env(v, "5");
        }
        let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(err).start();
        let stdout = child.stdout.take().expect("stdout");
        let banner: Vec<String> = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.starts_with("serving until killed"))
            .collect();
        let _ = child.kill();
        let _ = child.wait();
        let text = std::fs::read_to_string(&err_path).expect("stderr");
        assert!(
            banner
                .first()
                .is_some_and(|l| l.starts_with("listening on ")),
            "{banner:?} {text}"
        );
        text.lines()
            .filter(|l| l.contains("TEST_ONLY"))
            .map(str::to_string)
            .collect()
    };
    let both = warnings(&VARS, "both");
    assert_eq!(both.len(), 2, "{both:#?}");
    for (line, var) in both.iter().zip(VARS) {
        assert!(
            line.starts_with("warning: ") && line.contains(var) && line.contains("for tests only"),
            "{line}"
        );
    }
    let one = warnings(&VARS[1..], "one");
    assert_eq!(one.len(), 1, "{one:#?}");
    assert!(one[0].contains(VARS[1]), "{one:?}");
    assert_eq!(warnings(&[], "none"), Vec::<String>::new());
}
