//! `polar-license seat run -- COMMAND` (issue #67) as a real process, through
//! `polar-license relay serve` in front of `polar-license emulator`: the command's own exit
//! code returned, the seat released whatever that code, `seats_full` while another job holds
//! the only CI seat, no Polar activation (no call at all past the key's one validate) for a
//! run of CI jobs, and signed mode's seat lease verified.

use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::http::{self, HttpAnswer};
use polar_license_testkit::{clean_command, relay_keygen, relay_serve, Launch, ScratchDir, Served};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

fn requests(polar: &Served) -> u64 {
    let request = ureq::http::Request::builder()
        .method("GET")
        .uri(format!("{}/__emulator/requests", polar.url))
        .body(String::new())
        .expect("a request");
    let answer = HttpAnswer::read(
        http::agent(Duration::from_secs(10))
            .run(request)
            .expect("an answer"),
    );
    let v: Value = serde_json::from_slice(&answer.body).expect("JSON");
    v["count"].as_u64().expect("count")
}

struct World {
    polar: Served,
    relay: Served,
    pair: String,
    _dir: ScratchDir,
}

/// The emulator, and a relay in front of it with one CI seat per key.
fn world() -> World {
    let dir = ScratchDir::new("cli-seats");
    let polar = Served::start(clean_command(BIN).args(["emulator", "--port", "0"]));
    let (key, pair) = relay_keygen(BIN, &dir, "relay.key");
    let relay = Served::start_with_banner(
        relay_serve(BIN, &polar.url, &key)
            .args(["--port", "0", "--store", "memory", "--seat-ci-cap", "1"])
            // Jobs in a row from one address, faster than CI runs them.
            .args(["--per-ip", "100/200"])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN),
        "serving until killed",
    )
    .0;
    World {
        polar,
        relay,
        pair,
        _dir: dir,
    }
}

fn seat_run(w: &World, extra: &[&str], command: &[&str]) -> Command {
    let mut cmd = clean_command(BIN);
    cmd.args(["--base-url", &w.relay.url, "--org", DEMO_ORGANIZATION_ID])
        .args(extra)
        .args(["seat", "run", "--ci", "--machine", "job-runner", "--"])
        .args(command)
        .env("POLAR_LICENSE_KEY", DEMO_KEY);
    cmd
}

fn run(w: &World, extra: &[&str], command: &[&str]) -> Output {
    seat_run(w, extra, command).launch()
}

/// A run of `true` exits 0: it got the seat (`why`).
fn succeeds(w: &World, why: &str) {
    let o = run(w, &[], &["true"]);
    assert_eq!(o.status.code(), Some(0), "{why}: {o:?}");
}

#[test]
fn the_commands_exit_code_is_returned_and_its_seat_released_whatever_it_was() {
    let w = world();
    // One CI seat: each run below gets it only if the one before gave it back.
    let failed = run(&w, &[], &["false"]);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let seven = run(&w, &[], &["sh", "-c", "exit 7"]);
    assert_eq!(seven.status.code(), Some(7), "{seven:?}");
    let fine = run(&w, &[], &["sh", "-c", "echo from the job"]);
    assert_eq!(fine.status.code(), Some(0), "{fine:?}");
    assert_eq!(
        String::from_utf8_lossy(&fine.stdout),
        "from the job\n",
        "the command's own output"
    );
    let missing = run(&w, &[], &["/nonexistent/command"]);
    assert_eq!(missing.status.code(), Some(127), "{missing:?}");
    succeeds(&w, "released after a command that could not start");
}

#[test]
fn a_second_job_gets_seats_full_while_the_first_holds_the_seat() {
    let w = world();
    // The holder's command runs only once its seat is held: it says so with a file, then
    // waits until the test lets it go (at most 60 s), so no timing decides who holds the seat.
    let held = w._dir.path().join("held");
    let go = w._dir.path().join("go");
    let script = format!(
        "touch '{}'; i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done",
        held.display(),
        go.display()
    );
    let mut holder = seat_run(&w, &["--timeout", "5"], &["sh", "-c", &script]).start();
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while !held.exists() {
        assert!(
            std::time::Instant::now() < until,
            "the holder never got its seat"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = run(&w, &[], &["true"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "refused while the seat is held: {refused:?}"
    );
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("seats_full"), "{text}");
    assert!(text.contains("1 of 1"), "{text}");
    std::fs::write(&go, b"").expect("the go file");
    assert_eq!(holder.wait().expect("the holder ends").code(), Some(0));
    succeeds(&w, "free once the holder exits");
}

#[test]
fn twenty_ci_jobs_in_a_row_make_no_polar_activation_and_leave_no_seat_held() {
    let w = world();
    let before = requests(&w.polar);
    for job in 0..20 {
        let o = run(&w, &[], &["true"]);
        assert_eq!(o.status.code(), Some(0), "job {job}: {o:?}");
    }
    // The key's verdict was asked of Polar once (a validate), then answered by the relay's
    // store: no activation, nothing per job.
    assert_eq!(requests(&w.polar) - before, 1);
}

#[test]
fn in_signed_mode_the_seat_holds_only_with_a_lease_that_verifies() {
    let w = world();
    let signed = run(&w, &["--relay-key", &w.pair], &["true"]);
    assert_eq!(signed.status.code(), Some(0), "{signed:?}");
    // Another relay's key: the seat is no seat; the command does not run, the seat is given
    // back (the next run gets the only CI seat).
    let stranger = "other=k4.public.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let o = run(&w, &["--relay-key", stranger], &["sh", "-c", "echo ran"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(o.stdout.is_empty(), "the command did not run");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no lease"),
        "{o:?}"
    );
    assert_eq!(run(&w, &[], &["true"]).status.code(), Some(0));
}
