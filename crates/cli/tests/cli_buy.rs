//! `buy` (issue #80): a purchase from the command line unlocks the app with no key typed, with
//! the customer session Polar adds to the success URL, and without one (the code Polar emails
//! to the checkout's address); the key is issued after a delay, so it is missing at first and
//! waited for. The buyer pays as Polar's hosted page would (the test confirms the checkout);
//! real processes, the emulator on loopback.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use polar_license_emulator::{Emulator, DEMO_CHECKOUT_LINK};
use polar_license_testkit::http::raw_exchange;
use polar_license_testkit::{shop_issuing_after, ScratchDir};
use serde_json::Value;

mod common;
use common::{cli, cli_at};

const NEW_BUYER: &str = "new.buyer@example.com";
const KNOWN_BUYER: &str = "jane.doe@gmail.com";

fn http(
    polar: &Emulator,
    method: &str,
    path: &str,
    body: &str,
) -> polar_license_testkit::http::HttpAnswer {
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw_exchange(polar.port(), &text)
}

/// A checkout opened from the demo link, as a browser would: its URL.
fn open(polar: &Emulator) -> String {
    let r = http(
        polar,
        "GET",
        &format!("/v1/checkout-links/{DEMO_CHECKOUT_LINK}/redirect"),
        "",
    );
    assert_eq!(r.status, 307, "{}", r.text());
    r.header("location").expect("location").to_string()
}

/// The buyer pays with `email`: the session token Polar's answer carries, if any.
fn pay(polar: &Emulator, url: &str, email: &str) -> Option<String> {
    let (_, secret) = url.rsplit_once("/checkout/").expect("a checkout url");
    let r = http(
        polar,
        "POST",
        &format!("/v1/checkouts/client/{secret}/confirm"),
        &format!(r#"{{"customer_email":"{email}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["customer_session_token"]
        .as_str()
        .map(str::to_string)
}

/// `buy` started with `args`, following its checkout while the test pays: the process, and the
/// checkout's URL it prints on stderr first.
fn buying(polar: &Emulator, dir: &ScratchDir, args: &[&str]) -> (std::process::Child, String) {
    let mut cmd = cli_at(polar, dir.path());
    cmd.args(args);
    buying_with(cmd)
}

/// [`buying`] with the whole command given (signed mode's, say).
fn buying_with(mut cmd: std::process::Command) -> (std::process::Child, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("buy starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("a line");
    let Some(url) = line.trim().strip_prefix("open this page to pay: ") else {
        let out = child.wait_with_output().expect("buy ends");
        panic!(
            "the checkout's URL first: {line}{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    (child, url.to_string())
}

/// The buyer, matched by email, pays at `url` while `child` (a `buy --json`) follows it: no
/// session, so the code goes to the checkout's address and `buy` stops once it is sent; the
/// next `buy --checkout --code` activates the key bought, and `check` finds it licensed.
fn paid_then_code(polar: &Emulator, dir: &ScratchDir, child: std::process::Child, url: &str) {
    assert_eq!(
        pay(polar, url, KNOWN_BUYER),
        None,
        "matched by email: no token"
    );
    let out = child.wait_with_output().expect("buy ends");
    assert_eq!(out.status.code(), Some(0));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(answer["code_sent"], true, "{answer}");
    assert_eq!(answer["activated"], false, "{answer}");
    // The code went to the checkout's address, not one typed.
    let codes = polar.customer_session_codes();
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0]["email"], KNOWN_BUYER);
    let code = codes[0]["code"].as_str().expect("code").to_string();
    let got = cli(
        polar,
        dir.path(),
        &["buy", "--checkout", url, "--code", &code],
    );
    bought(&got);
    unlocked(polar, dir);
}

/// `check` with no key: the remembered one, licensed.
fn unlocked(polar: &Emulator, dir: &ScratchDir) {
    let checked = cli(polar, dir.path(), &["check"]);
    assert_eq!(checked.0, 0, "{}", checked.2);
    assert_eq!(checked.1["outcome"], "licensed", "{}", checked.1);
}

/// A `buy` that activated: the key shown by its display form only, remembered.
fn bought(got: &(i32, Value, String)) -> String {
    assert_eq!(got.0, 0, "{}", got.2);
    assert_eq!(got.1["command"], "buy", "{}", got.1);
    assert_eq!(got.1["key_remembered"], true, "{}", got.1);
    let shown = got.1["license"]["key"].as_str().expect("the key shown");
    assert!(shown.starts_with("****-"), "never the whole key: {shown}");
    got.1["key_id"].as_str().expect("key_id").to_string()
}

#[test]
fn buy_with_the_success_urls_session_unlocks_with_no_key_typed() {
    let polar = shop_issuing_after(1_500);
    let dir = ScratchDir::new("cli-buy-session");
    let url = open(&polar);
    let token = pay(&polar, &url, NEW_BUYER).expect("a new buyer's token");
    let landed = format!("https://app.example/thanks?customer_session_token={token}");
    let got = cli(
        &polar,
        dir.path(),
        &[
            "buy",
            "--checkout",
            &url,
            "--success-url",
            &landed,
            "--label",
            "cli",
        ],
    );
    bought(&got);
    assert!(got.2.contains("open this page to pay: "), "{}", got.2);
    assert!(
        !got.2.contains(&token),
        "the session is a credential: never printed"
    );
    unlocked(&polar, &dir);
    polar.stop();
}

#[test]
fn buy_without_a_session_sends_the_code_to_the_checkouts_address_then_unlocks() {
    let polar = shop_issuing_after(0);
    let dir = ScratchDir::new("cli-buy-code");
    // `buy --link` prints the checkout's URL at once and follows it while the buyer pays.
    let (child, url) = buying(
        &polar,
        &dir,
        &["--json", "buy", "--link", DEMO_CHECKOUT_LINK],
    );
    paid_then_code(&polar, &dir, child, &url);
    polar.stop();
}

#[test]
fn buy_of_an_expired_checkout_says_so_with_exit_1() {
    let polar = shop_issuing_after(0);
    let dir = ScratchDir::new("cli-buy-expired");
    let url = open(&polar);
    polar.set_clock_offset(25 * 3600);
    let got = cli(&polar, dir.path(), &["buy", "--checkout", &url]);
    assert_eq!(got.0, 1, "{}", got.2);
    assert_eq!(got.1["purchase_error"], "checkout_expired", "{}", got.1);
    assert_eq!(got.1["next_step"], "Start the purchase again.", "{}", got.1);
    let none = cli(&polar, dir.path(), &["buy", "--checkout", "not a checkout"]);
    assert_eq!(none.0, 2, "{}", none.2);
    polar.stop();
}

/// The seller's relay in front of `polar`, selling the demo product with the seller's token,
/// served; and its public key pair (`KID=k4.public.…`, what `--relay-key` takes).
fn checkout_relay(polar: &Emulator) -> (polar_license_relay::Running, String) {
    use polar_license::lease::SigningKey;
    use polar_license::{AccessToken, Server, UreqTransport};
    use polar_license_relay::{serve_with, CheckoutOptions, Relay, RelayConfig, ServeOptions};
    let key = SigningKey::generate(Some("cli-buy")).expect("a key");
    let pair = key.public_pair();
    let config = RelayConfig::new(
        Server::Custom(polar.url()),
        AccessToken::new(polar_license_emulator::DEMO_TOKEN),
        key,
    );
    let transport = UreqTransport::new(
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(5),
        1 << 20,
    );
    let relay = Relay::new(config, Box::new(transport))
        .and_then(|r| {
            r.with_checkouts(CheckoutOptions {
                products: vec![polar_license_emulator::DEMO_PRODUCT_ID.into()],
                ..CheckoutOptions::default()
            })
        })
        .expect("the relay");
    let relay = serve_with(
        std::sync::Arc::new(relay),
        "127.0.0.1:0",
        ServeOptions::default(),
    )
    .expect("it listens");
    (relay, pair)
}

#[test]
fn buy_through_the_relay_makes_the_checkout_with_the_apps_metadata_then_unlocks() {
    let polar = shop_issuing_after(0);
    let dir = ScratchDir::new("cli-buy-relay");
    let (relay, _) = checkout_relay(&polar);
    let (child, url) = buying(
        &polar,
        &dir,
        &[
            "--json",
            "buy",
            "--relay",
            &relay.url(),
            "--product",
            polar_license_emulator::DEMO_PRODUCT_ID,
            "--meta",
            "campaign=autumn",
            "--email",
            KNOWN_BUYER,
        ],
    );
    paid_then_code(&polar, &dir, child, &url);
    // A product the relay does not sell: its refusal, rendered as a portal step's.
    let refused = cli(
        &polar,
        dir.path(),
        &[
            "buy",
            "--relay",
            &relay.url(),
            "--product",
            "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e",
        ],
    );
    assert_ne!(refused.0, 0, "{}", refused.2);
    relay.stop();
    polar.stop();
}

/// Signed mode (issue #80): `--base-url` is the seller's relay, which serves no checkout nor
/// customer portal. Without `--portal-url` the purchase reads its checkout at the relay and
/// ends `checkout_not_found`; with it (Polar, here the emulator) the checkout is Polar's, the
/// code goes to its address, the key bought is activated through the relay and the check is
/// the relay's, signed.
#[test]
fn buy_in_signed_mode_reads_the_checkout_at_the_portal_url() {
    let polar = shop_issuing_after(0);
    let dir = ScratchDir::new("cli-buy-signed");
    let (relay, pair) = checkout_relay(&polar);
    let signed = |portal: Option<&str>| {
        let mut cmd = polar_license_testkit::clean_command(common::BIN);
        cmd.args([
            "--base-url",
            &relay.url(),
            "--org",
            &polar.organization_id(),
        ])
        .args(["--relay-key", &pair, "--json"])
        .arg("--cache-dir")
        .arg(dir.path());
        if let Some(url) = portal {
            cmd.args(["--portal-url", url]);
        }
        cmd
    };
    let product = polar_license_emulator::DEMO_PRODUCT_ID;
    let ask = ["buy", "--relay", &relay.url(), "--product", product];

    // No portal URL: the checkout is looked for at the relay.
    let out = signed(None)
        .args(ask)
        .stdin(Stdio::null())
        .output()
        .expect("buy runs");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(answer["purchase_error"], "checkout_not_found", "{answer}");

    // A portal URL that is no base URL: refused, nothing sent.
    let out = signed(Some("http://polar.example.com"))
        .args(["check", "--key", "K"])
        .output()
        .expect("check runs");
    assert_eq!(out.status.code(), Some(2));
    let answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(answer["field"], "portal_base_url", "{answer}");

    // With it: Polar's checkout, paid by a buyer matched by email (the code path).
    let mut cmd = signed(Some(&polar.url()));
    cmd.args(ask).args(["--email", KNOWN_BUYER]);
    let (child, url) = buying_with(cmd);
    assert_eq!(pay(&polar, &url, KNOWN_BUYER), None, "matched by email");
    let out = child.wait_with_output().expect("buy ends");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(answer["code_sent"], true, "{answer}");
    let codes = polar.customer_session_codes();
    let code = codes
        .last()
        .and_then(|c| c["code"].as_str())
        .expect("a code");
    let out = signed(Some(&polar.url()))
        .args(["buy", "--checkout", &url, "--code", code])
        .output()
        .expect("buy runs");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(out.status.code(), Some(0), "{answer}");
    assert_eq!(answer["key_remembered"], true, "{answer}");
    let out = signed(Some(&polar.url()))
        .arg("check")
        .output()
        .expect("check runs");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(answer["outcome"], "licensed", "{answer}");
    assert!(
        answer["lease"].is_object(),
        "signed: the relay's lease: {answer}"
    );
    relay.stop();
    polar.stop();
}
