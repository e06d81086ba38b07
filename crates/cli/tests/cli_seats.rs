//! `polar-license seat run -- COMMAND` (issue #67) as a real process, through
//! `polar-license relay serve` in front of `polar-license emulator`: the command's own exit
//! code returned, the seat released whatever that code, `seats_full` while another job holds
//! the only CI seat, no Polar activation (no call at all past the key's one validate) for a
//! run of CI jobs, and signed mode's seat lease verified.

use polar_license::lease::{verify_seat, NoLease, RelayKeys, SeatClaims, SeatExpect};
use polar_license_emulator::{DEMO_KEY, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_testkit::http::{self, HttpAnswer};
use polar_license_testkit::{clean_command, relay_keygen, relay_serve, Launch, ScratchDir, Served};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");
/// Another relay's public key: its leases are not this relay's.
const STRANGER: &str = "other=k4.public.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn requests(polar: &Served) -> u64 {
    let url = format!("{}/__emulator/requests", polar.url);
    let v = http::bearer_call("GET", &url, DEMO_TOKEN, None).json();
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
    world_with(&["--seat-ci-cap", "1", "--per-ip", "100/200"])
}

/// The emulator, and a relay in front of it with `seats` options (`--per-ip 100/200` among
/// them: jobs in a row from one address, faster than CI runs them).
fn world_with(seats: &[&str]) -> World {
    world_env(seats, &[])
}

/// [`world_with`], the relay started with `env` besides.
fn world_env(seats: &[&str], env: &[(&str, &str)]) -> World {
    let dir = ScratchDir::new("cli-seats");
    let polar = Served::start(clean_command(BIN).args(["emulator", "--port", "0"]));
    let (key, pair) = relay_keygen(BIN, &dir, "relay.key");
    let relay = Served::start_with_banner(
        relay_serve(BIN, &polar.url, &key)
            .args(["--port", "0", "--store", "memory"])
            .args(seats)
            .envs(env.iter().copied())
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

impl World {
    /// `polar-license EXTRA seat ARGS` through the relay, the demo key in `POLAR_LICENSE_KEY`
    /// and the relay's key in `POLAR_LICENSE_RELAY_KEYS` (a `--relay-key` among `extra` or
    /// `args` overrides it).
    fn seat(&self, extra: &[&str], args: &[&str]) -> Command {
        let mut cmd = clean_command(BIN);
        cmd.args(["--base-url", &self.relay.url, "--org", DEMO_ORGANIZATION_ID])
            .args(extra)
            .arg("seat")
            .args(args)
            .env("POLAR_LICENSE_KEY", DEMO_KEY)
            .env("POLAR_LICENSE_RELAY_KEYS", &self.pair);
        cmd
    }

    /// The relay killed (and waited for): the time it was gone.
    #[cfg(unix)]
    fn relay_stopped(&mut self) -> std::time::Instant {
        let _ = self.relay.child.kill();
        let _ = self.relay.child.wait();
        std::time::Instant::now()
    }

    /// The signed seat lease of a `seat` command's JSON `v`, verified with the relay's key
    /// for the demo key on `machine` at the time `now`: its claims.
    fn seat_claims(&self, v: &Value, machine: &str, now: i64) -> Result<SeatClaims, NoLease> {
        let keys = RelayKeys::parse(&self.pair).expect("the relay's key");
        let key = polar_license::Key::new(DEMO_KEY);
        let expect = SeatExpect {
            organization_id: DEMO_ORGANIZATION_ID,
            key: &key,
            machine,
        };
        verify_seat(v["lease"].as_str().expect("a lease"), &keys, &expect, now)
    }
}

/// `seat run --ci --machine job-runner -- COMMAND` through `w`'s relay, `extra` options first.
fn seat_run(w: &World, extra: &[&str], command: &[&str]) -> Command {
    let mut cmd = w.seat(extra, &["run", "--ci", "--machine", "job-runner", "--"]);
    cmd.args(command);
    cmd
}

/// Waits (at most 60 s) until `file` exists: the command says so once it holds its seat.
fn wait_for(file: &Path, what: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while !file.exists() {
        assert!(std::time::Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
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
    wait_for(&held, "the holder never got its seat");
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

/// The key's live activations at Polar (the emulator's own view).
fn activations(polar: &Served) -> usize {
    let url = format!("{}/__emulator/keys/{DEMO_KEY}/activations", polar.url);
    let v = http::bearer_call("GET", &url, DEMO_TOKEN, None).json();
    v.as_array().expect("a list").len()
}

/// A seat of the demo key acquired at the relay for `machine`: the status.
fn acquire_at(w: &World, machine: &str) -> u16 {
    let body = serde_json::json!({
        "key": DEMO_KEY, "organization_id": DEMO_ORGANIZATION_ID, "machine": machine,
    });
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{}/v1/seats/acquire", w.relay.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .expect("a request");
    HttpAnswer::read(
        http::agent(Duration::from_secs(10))
            .run(request)
            .expect("an answer"),
    )
    .status
}

#[test]
fn fifty_ci_jobs_in_a_row_on_a_two_seat_key_make_no_polar_activation_and_leave_no_seat_held() {
    let benefit = format!("{}=2", polar_license_emulator::DEMO_BENEFIT_ID);
    let w = world_with(&["--seats", &benefit, "--per-ip", "1000/2000"]);
    let before = (requests(&w.polar), activations(&w.polar));
    for job in 0..50 {
        let o = run(&w, &[], &["true"]);
        assert_eq!(o.status.code(), Some(0), "job {job}: {o:?}");
    }
    assert_eq!(activations(&w.polar), before.1, "no Polar activation");
    // The key's verdict asked of Polar once (a validate) and its activations read once by id
    // (the pool's count), then the relay's store: nothing per job.
    let calls = requests(&w.polar) - before.0;
    assert!((1..=2).contains(&calls), "{calls} calls to Polar");
    // Both seats free: no job left one held.
    assert_eq!(
        (acquire_at(&w, "after-1"), acquire_at(&w, "after-2")),
        (200, 200)
    );
    assert_eq!(acquire_at(&w, "after-3"), 409, "the key has 2 seats");
}

/// The core's hold (`SeatHold`) decides what a heartbeat's answer does: Polar's denial of
/// the key at a heartbeat (revoked while the command runs) ends the hold, said once on
/// stderr, and no heartbeat is sent after it; the command runs on and its exit code is
/// returned. Before, `seat run` kept its own loop, which went on beating a denied key at every
/// interval (each a call the relay answered again).
#[test]
fn a_key_denied_at_a_heartbeat_ends_the_hold_and_no_heartbeat_follows() {
    let w = world_with(&[
        "--per-ip",
        "100/200",
        "--per-key",
        "0",
        "--fresh-for",
        "1",
        "--stale-for",
        "1",
    ]);
    let ready = w._dir.path().join("ready-denied");
    let script = format!("touch '{}'; sleep 3; exit 4", ready.display());
    // The heartbeat every 0.4 s (the seat's own would be a third of its 5 minutes).
    let mut with_beat = w.seat(
        &[],
        &[
            "run",
            "--ci",
            "--machine",
            "job-runner",
            "--heartbeat",
            "0.4",
        ],
    );
    with_beat
        .args(["--", "sh", "-c", &script])
        .stderr(std::process::Stdio::piped());
    let holder = with_beat.spawn().expect("seat run starts");
    wait_for(&ready, "the holder never got its seat");
    let url = format!("{}/__emulator/keys/{DEMO_KEY}", w.polar.url);
    let revoked = http::bearer_call(
        "PATCH",
        &url,
        DEMO_TOKEN,
        Some(serde_json::json!({ "status": "revoked" })),
    );
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    let out = holder.wait_with_output().expect("seat run ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "the command's own exit: {stderr}"
    );
    assert_eq!(
        stderr.matches("the seat ended at a heartbeat").count(),
        1,
        "the hold ends once: {stderr}"
    );
    assert!(
        stderr.contains("no longer active"),
        "Polar's denial: {stderr}"
    );
    assert!(
        !stderr.contains("a heartbeat answered"),
        "no heartbeat after the denial: {stderr}"
    );
}

/// `text` in single quotes for `sh`.
#[cfg(target_os = "linux")]
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A terminal's Ctrl-C during `seat run` (a real pseudo-terminal: util-linux `script`, the
/// byte 0x03 typed into it, the kernel's SIGINT to the terminal's foreground process group,
/// `seat run` and its command in it): the command gets one SIGINT, not two (`seat run` does
/// not pass on what the terminal sent the command already), its exit code is returned and
/// the seat released. Before, `seat run` passed every SIGINT on, and the command counted two.
#[cfg(target_os = "linux")]
#[test]
fn a_terminals_ctrl_c_reaches_the_command_once_and_the_seat_is_released() {
    use std::io::Write;
    let w = world();
    let count = w._dir.path().join("sigints");
    let ready = w._dir.path().join("ready");
    // The command counts its SIGINTs (perl's handler runs once a signal), says when it holds
    // the seat, and after its first SIGINT waits half a second for a second one, then exits 7.
    let perl = r#"$SIG{INT} = sub { open my $f, ">>", $ARGV[0]; print $f "INT\n"; close $f; $got = 1 };
        open my $r, ">", $ARGV[1]; close $r;
        for (1 .. 1200) { last if $got; select(undef, undef, undef, 0.05) }
        select(undef, undef, undef, 0.5);
        exit($got ? 7 : 9);"#;
    let inner = seat_run(
        &w,
        &[],
        &[
            "perl",
            "-e",
            perl,
            &count.display().to_string(),
            &ready.display().to_string(),
        ],
    );
    let mut line = String::from("exec");
    for part in std::iter::once(inner.get_program()).chain(inner.get_args()) {
        line.push(' ');
        line.push_str(&quoted(&part.to_string_lossy()));
    }
    let mut cmd = clean_command("script");
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("POLAR_LICENSE_KEY", DEMO_KEY)
        .env("POLAR_LICENSE_RELAY_KEYS", &w.pair)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut terminal = cmd.spawn().expect("script runs");
    wait_for(&ready, "the command never got its seat");
    let mut keys = terminal.stdin.take().expect("the terminal's input");
    keys.write_all(&[0x03]).expect("Ctrl-C typed");
    keys.flush().expect("typed");
    let out = terminal.wait_with_output().expect("the terminal ends");
    drop(keys);
    assert_eq!(
        std::fs::read_to_string(&count).unwrap_or_default(),
        "INT\n",
        "the command's SIGINTs: {out:?}"
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "the command's own exit: {out:?}"
    );
    succeeds(&w, "released after Ctrl-C");
}

#[cfg(unix)]
#[test]
fn sigterm_is_passed_on_to_the_command_and_the_seat_released_after_it() {
    let w = world();
    let held = w._dir.path().join("held-term");
    // The command says when it holds the seat, and exits 5 on SIGTERM.
    let script = format!(
        "trap 'echo got TERM; exit 5' TERM; touch '{}'; i=0; while [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done",
        held.display()
    );
    let mut cmd = seat_run(&w, &[], &["sh", "-c", &script]);
    cmd.stdout(std::process::Stdio::piped());
    let holder = cmd.spawn().expect("seat run starts");
    wait_for(&held, "the holder never got its seat");
    let killed = Command::new("kill")
        .args(["-TERM", &holder.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let out = holder.wait_with_output().expect("seat run ends");
    assert_eq!(
        out.status.code(),
        Some(5),
        "the command's own exit: {out:?}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got TERM\n");
    succeeds(&w, "released after the signal");
}

/// Whether the process `pid` is gone (no such process, or a zombie: ended, not yet reaped).
#[cfg(target_os = "linux")]
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// The process ids a command wrote to `file` (one a line), once it has.
#[cfg(target_os = "linux")]
fn pids(file: &Path) -> Vec<u32> {
    wait_for(file, "the command never wrote its process ids");
    std::fs::read_to_string(file)
        .expect("the process ids")
        .lines()
        .map(|l| l.trim().parse().expect("a process id"))
        .collect()
}

/// Those of `pids` still running after a wait of at most 10 s for every one to be gone; each
/// is killed then (SIGKILL), so that none is left running past the test, whatever it found.
#[cfg(target_os = "linux")]
fn still_running_after_10_s(pids: &[u32]) -> Vec<u32> {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < until && !pids.iter().all(|&p| gone(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let running: Vec<u32> = pids.iter().copied().filter(|&p| !gone(p)).collect();
    for p in pids {
        let _ = Command::new("kill")
            .args(["-KILL", &p.to_string()])
            .status();
    }
    running
}

/// A shell command for `seat run` that starts a child of its own (`sleep`, in the
/// background), writes its own process id and the child's to `pids`, one a line, and waits.
#[cfg(target_os = "linux")]
fn a_command_with_a_child(pids: &Path) -> String {
    format!(
        "sleep 300 & echo $$ > '{0}.part'; echo $! >> '{0}.part'; mv '{0}.part' '{0}'; wait",
        pids.display()
    )
}

/// Issue #76, finding 4: `seat run` killed outright (SIGKILL: nothing of it runs after) stops
/// its command all the same, and what the command started: the command by its parent-death
/// signal, its child by the watchdog's SIGTERM to the command's process group. Before, both
/// ran on with no seat, for ever.
#[cfg(target_os = "linux")]
#[test]
fn seat_run_killed_by_sigkill_stops_its_command_and_what_the_command_started() {
    let w = world();
    let file = w._dir.path().join("pids-kill");
    let mut holder = seat_run(&w, &[], &["sh", "-c", &a_command_with_a_child(&file)])
        .spawn()
        .expect("seat run starts");
    let started = pids(&file);
    assert_eq!(started.len(), 2, "{started:?}");
    assert!(!started.iter().any(|&p| gone(p)), "running: {started:?}");
    holder.kill().expect("SIGKILL sent");
    let _ = holder.wait();
    let running = still_running_after_10_s(&started);
    assert!(
        running.is_empty(),
        "still running 10 s after seat run was killed: {running:?} (the command, its child: {started:?})"
    );
}

/// Issue #76, finding 4: SIGHUP (a closed terminal, a session's end) is passed on to the
/// command's process group, the command and its child stopped, and the seat released after
/// (the relay's one CI seat is free at once). Before, SIGHUP's default ended `seat run` alone:
/// the command ran on, the seat held until its life ended.
#[cfg(target_os = "linux")]
#[test]
fn sighup_is_passed_on_to_the_commands_group_and_the_seat_released_after_it() {
    let w = world();
    let file = w._dir.path().join("pids-hup");
    let mut cmd = seat_run(&w, &[], &["sh", "-c", &a_command_with_a_child(&file)]);
    cmd.stderr(std::process::Stdio::piped());
    let holder = cmd.spawn().expect("seat run starts");
    let started = pids(&file);
    let killed = Command::new("kill")
        .args(["-HUP", &holder.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let running = still_running_after_10_s(&started);
    let out = holder.wait_with_output().expect("seat run ends");
    assert!(
        running.is_empty(),
        "still running 10 s after SIGHUP: {running:?} (the command, its child: {started:?}): {out:?}"
    );
    // The shell ended by SIGHUP: 128 + 1.
    assert_eq!(
        out.status.code(),
        Some(129),
        "the command's own exit: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("release"), "released cleanly: {stderr}");
    succeeds(&w, "released after SIGHUP");
}

#[test]
fn an_acquisition_and_a_release_refused_429_are_asked_again_after_the_wait() {
    // One request a second per address: each job's release (and the next acquisition) is
    // refused 429 first, then asked again after the relay's wait.
    let w = world_with(&["--seat-ci-cap", "1", "--per-ip", "1/1"]);
    let mut waited = false;
    for job in 0..3 {
        let o = run(&w, &[], &["true"]);
        assert_eq!(o.status.code(), Some(0), "job {job}: {o:?}");
        waited |= said(&o, "asked again");
    }
    assert!(waited, "a 429 was met and waited out");
}

#[test]
fn a_seat_borrowed_for_offline_use_holds_until_its_end_whatever_a_return_says() {
    let benefit = format!("{}=1", polar_license_emulator::DEMO_BENEFIT_ID);
    let w = world_with(&[
        "--seats",
        &benefit,
        "--seat-borrow-days",
        "7",
        "--per-ip",
        "100/200",
    ]);
    let seat_cmd = |args: &[&str]| w.seat(&[], args).launch();
    let refused = seat_cmd(&["borrow", "--days", "8", "--machine", "laptop"]);
    assert_ne!(refused.status.code(), Some(0), "{refused:?}");
    assert!(said(&refused, "borrow_days"), "{refused:?}");
    let o = seat_cmd(&[
        "borrow",
        "--days",
        "3",
        "--machine",
        "laptop",
        "--relay-key",
        &w.pair,
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let seat = v["seat"].as_str().expect("a seat id");
    let claims = w
        .seat_claims(&v, "laptop", polar_license_testkit::unix_now() + 2 * 86_400)
        .expect("licenses offline two days on");
    assert!(claims.borrowed);
    // The key's one seat is lent: a job is refused.
    assert_eq!(run(&w, &[], &["true"]).status.code(), Some(1));
    // Issue #76: its lease licenses offline until its end, so a return frees nothing early
    // and says so; the job is still refused.
    let back = seat_cmd(&["return", "--seat", seat, "--machine", "laptop"]);
    assert_eq!(back.status.code(), Some(1), "{back:?}");
    assert!(said(&back, "borrowed seat"), "{back:?}");
    assert_eq!(run(&w, &[], &["true"]).status.code(), Some(1));
}

#[test]
fn in_signed_mode_the_seat_holds_only_with_a_lease_that_verifies() {
    let w = world();
    let signed = run(&w, &["--relay-key", &w.pair], &["true"]);
    assert_eq!(signed.status.code(), Some(0), "{signed:?}");
    // Another relay's key: the seat is no seat; the command does not run, the seat is given
    // back (the next run gets the only CI seat).
    let o = run(&w, &["--relay-key", STRANGER], &["sh", "-c", "echo ran"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(o.stdout.is_empty(), "the command did not run");
    assert!(said(&o, "no lease"), "{o:?}");
    assert_eq!(run(&w, &[], &["true"]).status.code(), Some(0));
}

/// Issue #67 item 5's CLI steps one at a time (`seat acquire|heartbeat|release`), for a script
/// that schedules its own heartbeat: the acquired seat outlives the command that took it (a
/// job is refused while it is held), its lease verifies, a heartbeat extends it, a release
/// frees it for the next job, and a heartbeat or a release after that finds no seat. In signed
/// mode a lease that does not verify gives the seat back.
#[test]
fn seat_acquire_heartbeat_and_release_one_at_a_time() {
    let benefit = format!("{}=1", polar_license_emulator::DEMO_BENEFIT_ID);
    let w = world_with(&["--seats", &benefit, "--per-ip", "100/200"]);
    let seat_cmd = |args: &[&str]| w.seat(&[], args).launch();
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    // Another relay's key: no seat kept (the next acquisition gets the key's one seat).
    let o = seat_cmd(&["acquire", "--machine", "script", "--relay-key", STRANGER]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(o.stdout.is_empty(), "{o:?}");
    assert!(stderr(&o).contains("no lease"), "{o:?}");

    let o = seat_cmd(&["acquire", "--machine", "script", "--relay-key", &w.pair]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let seat = v["seat"].as_str().expect("a seat id").to_string();
    assert_eq!(
        (&v["in_use"], &v["size"], &v["ci"], &v["machine"]),
        (
            &Value::from(1),
            &Value::from(1),
            &Value::from(false),
            &Value::from("script")
        ),
        "{v}"
    );
    // The relay's default life, 300 s: a heartbeat every third of it.
    assert_eq!(v["heartbeat_every"], 100, "{v}");
    let claims = w
        .seat_claims(&v, "script", polar_license_testkit::unix_now())
        .expect("the seat's lease verifies");
    assert_eq!(claims.seat, seat);

    // Held after `seat acquire` exited: a job and another acquisition are refused.
    assert_eq!(run(&w, &[], &["true"]).status.code(), Some(1));
    let other = seat_cmd(&["acquire", "--machine", "another"]);
    assert_eq!(other.status.code(), Some(1), "{other:?}");
    assert!(stderr(&other).contains("seats_full"), "{other:?}");

    let beat = seat_cmd(&["heartbeat", "--seat", &seat, "--machine", "script"]);
    assert_eq!(beat.status.code(), Some(0), "{beat:?}");
    let b: Value = serde_json::from_slice(&beat.stdout).expect("JSON");
    assert_eq!(b["seat"], seat.as_str(), "{b}");
    // Another machine's heartbeat is not the seat's.
    let stolen = seat_cmd(&["heartbeat", "--seat", &seat, "--machine", "another"]);
    assert_eq!(stolen.status.code(), Some(1), "{stolen:?}");
    assert!(stderr(&stolen).contains("seat_gone"), "{stolen:?}");
    assert_eq!(run(&w, &[], &["true"]).status.code(), Some(1), "still held");

    let back = seat_cmd(&["release", "--seat", &seat, "--machine", "script"]);
    assert_eq!(back.status.code(), Some(0), "{back:?}");
    succeeds(&w, "free once released");
    let late = seat_cmd(&["heartbeat", "--seat", &seat, "--machine", "script"]);
    assert_eq!(late.status.code(), Some(1), "{late:?}");
    assert!(stderr(&late).contains("seat_gone"), "{late:?}");
    let again = seat_cmd(&["release", "--seat", &seat, "--machine", "script"]);
    assert_ne!(
        again.status.code(),
        Some(0),
        "not released twice: {again:?}"
    );
}

/// `seat run --ci --heartbeat EVERY` (seconds) of a command that says when it holds the seat
/// (it touches `dir/ready`), then runs 90 s unless stopped (exit 9 then, with `stopped` on
/// stdout): the holder, once its command runs.
#[cfg(unix)]
fn stoppable_holder(w: &World, ready: &str, every: &str) -> std::process::Child {
    let ready = w._dir.path().join(ready);
    let script = format!(
        "trap 'echo stopped; exit 9' TERM; touch '{}'; i=0; while [ $i -lt 1800 ]; do sleep 0.05; i=$((i+1)); done; echo ran out",
        ready.display()
    );
    let run = [
        "run",
        "--ci",
        "--machine",
        "job-runner",
        "--heartbeat",
        every,
    ];
    let mut cmd = w.seat(&[], &run);
    cmd.args(["--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let holder = cmd.spawn().expect("seat run starts");
    wait_for(&ready, "the holder never got its seat");
    holder
}

/// Whether a command's stderr says `words`.
fn said(o: &std::process::Output, words: &str) -> bool {
    String::from_utf8_lossy(&o.stderr).contains(words)
}

/// A [`stoppable_holder`]'s end: `seat run` exited with `code`, `(reason)` and `words` on
/// stderr, its command stopped (not run out), within `window` of `since`.
#[cfg(unix)]
fn stopped_with(
    holder: std::process::Child,
    (since, window): (std::time::Instant, std::ops::RangeInclusive<Duration>),
    (code, reason): (i32, &str),
    words: &str,
) {
    let out = holder.wait_with_output().expect("seat run ends");
    let took = since.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{reason}'s exit: {stderr}");
    assert!(stderr.contains(&format!("({reason})")), "{stderr}");
    assert!(stderr.contains(words), "{words:?}: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "stopped\n", "stopped, not run out: {stderr}");
    assert!(window.contains(&took), "ended {took:?} after: {stderr}");
}

/// Issue #76 finding 2: `seat run` never outlives its seat's lease. The relay is killed while
/// the command runs (heartbeats every 0.5 s, the seat's life 6 s, a test's only): the command is stopped
/// (SIGTERM) at the lease's end, not before and not long after, and `seat run` exits with the
/// core's `seat_lost` (exit 3), not the command's code. Before, the hold stayed `held` for
/// ever and the command ran on while the relay gave the seat to another job.
#[cfg(unix)]
#[test]
fn seat_run_stops_its_command_at_the_leases_end_when_the_relay_is_out_of_reach() {
    let mut w = world_env(
        &["--seat-ci-cap", "1", "--per-ip", "100/200"],
        &[("POLAR_LICENSE_RELAY_TEST_ONLY_SEAT_SECONDS", "6")],
    );
    let holder = stoppable_holder(&w, "ready-lost", "0.5");
    // A few heartbeats answered, then the relay is gone.
    std::thread::sleep(Duration::from_secs(2));
    let killed = w.relay_stopped();
    // Lost at the lease's end (6 s after the last renewal, at most 0.5 s before the kill; the
    // lease's end is in whole seconds).
    let lease_end = Duration::from_secs(4)..=Duration::from_secs(10);
    let words = "seat lost: the seat's lease ended at";
    stopped_with(holder, (killed, lease_end), (3, "seat_lost"), words);
}

/// Issue #76: `seat run` holds its seat only while the relay says so. The relay is restarted
/// on its port with a fresh memory store while the command runs (heartbeats every 0.4 s, the
/// seat's life the relay's 300 s): the next heartbeat answers `seat_gone` (404: the seat may
/// be another machine's already), and the command is stopped then (SIGTERM), long before its
/// lease's end, and `seat run` exits 1 with `seat_gone` as `seat heartbeat` does. Before, the
/// command ran on without a seat.
#[cfg(unix)]
#[test]
fn seat_run_stops_its_command_when_the_relay_says_the_seat_is_gone() {
    let mut w = world();
    let holder = stoppable_holder(&w, "ready-gone", "0.4");
    std::thread::sleep(Duration::from_secs(1));
    // The same relay (its key, its port) with a store that holds no seat.
    let port = w.relay.url.rsplit(':').next().expect("a port").to_string();
    let key = w._dir.path().join("relay.key");
    let restarted = w.relay_stopped();
    let _again = Served::start_with_banner(
        relay_serve(BIN, &w.polar.url, key.to_str().expect("UTF-8"))
            .args(["--port", &port, "--store", "memory", "--seat-ci-cap", "1"])
            .args(["--per-ip", "100/200"])
            .env("POLAR_ACCESS_TOKEN", DEMO_TOKEN),
        "serving until killed",
    )
    .0;
    // Stopped at the next heartbeat, long before the lease's end.
    let at_once = Duration::ZERO..=Duration::from_secs(20);
    let words = "the command is stopped";
    stopped_with(holder, (restarted, at_once), (1, "seat_gone"), words);
}

/// A seat of the relay's key's kid (`w.pair`'s), signed by another key: a forged lease.
fn forged_lease(w: &World, machine: &str) -> String {
    let kid = w.pair.split('=').next().expect("KID=");
    polar_license_testkit::forged_seat_lease(kid, DEMO_KEY, (FORGED_SEAT, "ci"), machine)
}

const FORGED_SEAT: &str = "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b";

/// Issue #76 finding 2: a `200` forged by no relay at all (a loopback server that answers
/// every request with a seat) holds nothing: with no lease, or a lease signed by another key
/// under the relay's kid, `seat acquire` prints no seat (`protocol_error`, exit 3) and `seat
/// run` does not run its command; without the relay's keys nothing is even sent
/// (`invalid_input` naming relay_keys, exit 2). Before, the bare 200 was a seat.
#[test]
fn a_forged_200_holds_no_seat_and_no_relay_keys_send_nothing() {
    let w = world();
    let body = format!(
        r#"{{"seat":"{FORGED_SEAT}","kind":"ci","expires_at":"2099-01-15T08:00:00Z","expires_in":300,"in_use":1,"size":1}}"#
    );
    let lease = forged_lease(&w, "job-runner");
    for (why, headers) in [
        ("no lease", vec![]),
        (
            "a lease by another key",
            vec![("polar-license-seat", lease.as_str())],
        ),
    ] {
        let (forger, asked) = http::fixed_answer(200, &headers, &body);
        let forged = |args: &[&str]| {
            let mut cmd = clean_command(BIN);
            cmd.args(["--base-url", &forger, "--org", DEMO_ORGANIZATION_ID, "seat"])
                .args(args)
                .env("POLAR_LICENSE_KEY", DEMO_KEY)
                .env("POLAR_LICENSE_RELAY_KEYS", &w.pair);
            cmd.launch()
        };
        let o = forged(&["acquire", "--ci", "--machine", "job-runner"]);
        assert_eq!(o.status.code(), Some(3), "{why}: {o:?}");
        assert!(o.stdout.is_empty(), "{why}: no seat printed: {o:?}");
        assert!(said(&o, "protocol_error"), "{why}: {o:?}");
        let o = forged(&[
            "run",
            "--ci",
            "--machine",
            "job-runner",
            "--",
            "sh",
            "-c",
            "echo ran",
        ]);
        assert_eq!(o.status.code(), Some(3), "{why}: {o:?}");
        assert!(o.stdout.is_empty(), "{why}: the command did not run: {o:?}");
        assert!(
            asked.load(std::sync::atomic::Ordering::SeqCst) >= 2,
            "{why}"
        );
    }
    // No relay keys: refused before anything is sent.
    let (forger, asked) = http::fixed_answer(200, &[], &body);
    for args in [
        vec!["acquire", "--ci"],
        vec!["run", "--ci", "--", "sh", "-c", "echo ran"],
        vec!["heartbeat", "--seat", FORGED_SEAT],
    ] {
        let o = clean_command(BIN)
            .args(["--base-url", &forger, "--org", DEMO_ORGANIZATION_ID, "seat"])
            .args(&args)
            .env("POLAR_LICENSE_KEY", DEMO_KEY)
            .launch();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(o.stdout.is_empty(), "{args:?}: {o:?}");
        assert!(said(&o, "relay_keys"), "{args:?}: {o:?}");
    }
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing sent"
    );
}
