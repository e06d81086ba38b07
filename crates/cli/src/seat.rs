//! `polar-license seat run -- COMMAND` (issue #67): one of the key's seats held through the
//! seller's relay (`--base-url`) while a command runs. The seat is acquired first (a CI seat
//! with `--ci`), heartbeated on a thread of its own while the command runs, and released when
//! it exits, whatever its exit; the command's own exit code is returned. No Polar activation
//! is made: a seat is the relay's, and one not heard from (this process killed) frees within
//! its life. The rules are the relay's and the core's (`polar_license::seat`); this command
//! only schedules the heartbeat.
//!
//! A seat is held only while the relay says so in a seat lease it signed (issue #76): every
//! seat command that holds or extends a seat needs the relay's keys (`--relay-key`, or
//! `POLAR_LICENSE_RELAY_KEYS`; without them `invalid_input`, exit 2, nothing sent), and an
//! answer whose lease does not verify holds nothing (`protocol_error`, exit 3). While COMMAND
//! runs, the core's hold (`polar_license::seat_hold::SeatHold`) says when to heartbeat and
//! when to try again; when the lease ends with no renewal (the relay out of reach), and
//! `--seat-grace` after it, COMMAND is stopped (SIGTERM, then SIGKILL 10 s later) and `seat
//! run` exits with `seat_lost` (exit 3): the relay may already have given the seat to another
//! machine. A heartbeat the relay answers `seat_gone` stops COMMAND the same way, at once
//! (exit 1, as `seat heartbeat`'s `seat_gone`).
//!
//! SIGINT and SIGTERM sent to `seat run` are passed on to COMMAND (Unix), and the seat is
//! released once COMMAND exits; a terminal's Ctrl-C, which reaches COMMAND itself (the same
//! process group), is not passed on a second time (Linux tells it apart); on Windows a console's Ctrl-C or Ctrl-Break reaches every
//! process of the console, COMMAND with it, and `seat run` waits for COMMAND and releases. An
//! acquisition or a release the relay refuses with `429` is asked again after its wait, for
//! at most `polar_license::flow::timed::RETRY_BUDGET` in all (the core's machine's rule, the
//! same on every face).
//!
//! `seat borrow --days N` borrows a floating seat for offline use (its signed lease licenses
//! until its end, with no heartbeat); the relay counts it until then, whatever `seat return
//! --seat ID` says (the lease cannot be called back: the return frees nothing, exit 1).
//!
//! `seat acquire`, `seat heartbeat --seat ID` and `seat release --seat ID` are the three
//! steps one at a time, for a script that schedules its own heartbeat: nothing holds an
//! acquired seat between them, and one not heard from within its life frees by itself.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use polar_license::lease::RelayKeys;
use polar_license::seat::{Seat, SeatAnswer, SeatAsk, SeatOp};
use polar_license::seat_beat::{SeatBeat, SeatCall};
use polar_license::seat_hold::{HoldState, HoldTerms, SeatHold};
use polar_license::{system_clock_ms, BlockingClient, Error, Key, Reason};

use crate::args::{
    Global, KeyArg, SeatAcquireArgs, SeatBorrowArgs, SeatCommand, SeatReturnArgs, SeatRunArgs,
};

/// Runs `seat …`: the exit code.
pub fn run(g: &Global, c: &SeatCommand) -> u8 {
    match c {
        SeatCommand::Run(a) => seat_run(g, a),
        SeatCommand::Borrow(a) => seat_borrow(g, a),
        SeatCommand::Return(a) => seat_return(g, a, "return"),
        SeatCommand::Release(a) => seat_return(g, a, "release"),
        SeatCommand::Acquire(a) => seat_acquire(g, a),
        SeatCommand::Heartbeat(a) => seat_heartbeat(g, a),
    }
}

/// `call` driven by the client's one loop: the core's machine waits out the relay's `429`s
/// (each one's `Retry-After`, within its budget, `polar_license::flow::timed`); this only
/// says on stderr that it waits.
fn patiently(client: &BlockingClient, what: &str, call: SeatCall) -> Result<SeatAnswer, Error> {
    let call = Mutex::new(call);
    let noted = |wait: Duration| {
        err(&format!(
            "polar-license seat: the relay limits requests: the {what} is asked again in {} s",
            wait.as_secs()
        ));
        std::thread::sleep(wait);
        true
    };
    client.drive_shared(&call, noted, |_| true);
    call.into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .outcome()
}

fn fail(what: &str, e: &Error) -> u8 {
    err(&format!(
        "polar-license seat {what}: {} ({})",
        e.text(),
        e.reason().code()
    ));
    u8::try_from(e.reason().exit_code()).unwrap_or(3)
}

/// A seat whose lease does not verify (`why`): `protocol_error`, the exit code.
fn no_lease(what: &str, why: String) -> u8 {
    fail(
        what,
        &Error::Protocol {
            status: Some(200),
            detail: why,
        },
    )
}

/// An answer to `asked` that is not one of its answers: `protocol_error`, the exit code.
fn unexpected(what: &str, asked: &str, answer: &str) -> u8 {
    fail(
        what,
        &Error::Protocol {
            status: None,
            detail: format!("the relay answered {asked} with {answer}"),
        },
    )
}

/// What every seat command starts from: the relay's client, the key and this machine's
/// binding. `Err` is the exit code, its line written.
fn seat_parts(
    g: &Global,
    what: &str,
    key: &KeyArg,
    machine_given: Option<&str>,
) -> Result<(BlockingClient, Key, String), u8> {
    let client = relay_client(g).map_err(|e| fail(what, &e))?;
    Ok((client, Key::new(key.key.clone()), machine(g, machine_given)))
}

/// The ask of `op` for `key` on `machine` (not a CI seat), of the seat `seat` when given.
fn seat_ask(op: SeatOp, key: &Key, machine: &str, seat: Option<&str>) -> SeatAsk {
    SeatAsk {
        op,
        key: key.clone(),
        machine: machine.to_string(),
        ci: false,
        seat: seat.map(str::to_string),
    }
}

/// With `--relay-key`, the relay's keys (or why they are not); without it, `None`.
fn relay_keys(g: &Global) -> Option<Result<RelayKeys, String>> {
    (!g.relay_keys.is_empty())
        .then(|| RelayKeys::parse(&g.relay_keys.join(",")).map_err(|e| e.text()))
}

/// The terms a seat is held under: the relay's keys (`--relay-key`: required, `invalid_input`
/// naming `relay_keys` without them) and the organization.
fn hold_terms(g: &Global) -> Result<HoldTerms, Error> {
    let keys = match relay_keys(g) {
        Some(keys) => keys.map_err(|why| Error::invalid("relay_keys", why))?,
        None => RelayKeys::new(),
    };
    HoldTerms::new(keys, g.org.as_deref().unwrap_or_default()).map_err(|e| match e.field() {
        Some("relay_keys") => Error::invalid(
            "relay_keys",
            "a seat is held only with the seller's relay keys (--relay-key, or \
             POLAR_LICENSE_RELAY_KEYS), to verify the relay's seat lease",
        ),
        _ => e,
    })
}

/// `at` (Unix seconds) as RFC 3339.
fn rfc3339(at: i64) -> String {
    let mut text = String::new();
    polar_license::rfc3339::DateTime::from_unix(at).write(&mut text);
    text
}

fn machine(g: &Global, given: Option<&str>) -> String {
    if let Some(m) = given.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let org = g.org.as_deref().unwrap_or_default();
    if let Ok(Some(f)) = polar_license::fingerprint::machine_fingerprint(org) {
        return f;
    }
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unbound".to_string())
}

/// The client of the seller's relay (`--base-url` required).
fn relay_client(g: &Global) -> Result<BlockingClient, Error> {
    if g.base_url.as_deref().is_none_or(str::is_empty) {
        return Err(Error::invalid(
            "base_url",
            "is required: the seller's relay (--base-url)",
        ));
    }
    crate::run::client(g)
}

/// `seats_full`, or Polar's denial, or another answer than a seat, on stderr: the exit code.
/// The words are the core's ([`SeatAnswer::user_message`]), the code after them.
fn not_held(what: &str, answer: SeatAnswer) -> u8 {
    let reason = match &answer {
        SeatAnswer::Full(_) => Reason::SeatsFull,
        SeatAnswer::Denied(d) => d.reason,
        other => return unexpected(what, "an acquisition", &format!("{other:?}")),
    };
    let said = answer.user_message().unwrap_or_default();
    err(&format!(
        "polar-license seat {what}: {said} ({})",
        reason.code()
    ));
    u8::try_from(reason.exit_code()).unwrap_or(1)
}

fn seat_borrow(g: &Global, a: &SeatBorrowArgs) -> u8 {
    let (client, key, machine) = match seat_parts(g, "borrow", &a.key, a.machine.as_deref()) {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    let keys = match hold_terms(g) {
        // The keys checked as a hold's (present, well formed) before anything is sent.
        Ok(_) => relay_keys(g),
        Err(e) => return fail("borrow", &e),
    };
    let ask = seat_ask(SeatOp::Acquire, &key, &machine, None);
    let seat = match patiently(&client, "borrowing", client.seat_call(&ask, Some(a.days))) {
        Ok(SeatAnswer::Held(seat)) => seat,
        Ok(other) => return not_held("borrow", other),
        Err(e) => return fail("borrow", &e),
    };
    if let Some(keys) = keys {
        let verified = keys.and_then(|keys| {
            let org = g.org.as_deref().unwrap_or_default();
            seat.verify_borrowed(&keys, org, &key, &machine, now())
                .map_err(|why| format!("the seat's lease is no borrowed seat ({})", why.as_str()))
        });
        if let Err(why) = verified {
            send_release(&client, &release_ask(&ask, &seat.id));
            return no_lease("borrow", why);
        }
    }
    let out = serde_json::json!({
        "seat": seat.id,
        "machine": machine,
        "expires_at": rfc3339(seat.expires_at),
        "lease": seat.lease,
    });
    crate::output::print_out(&format!("{out}\n"));
    0
}

fn release_ask(ask: &SeatAsk, seat: &str) -> SeatAsk {
    SeatAsk {
        op: SeatOp::Release,
        seat: Some(seat.to_string()),
        ..ask.clone()
    }
}

/// `seat return` and `seat release` (`what`): the seat given back.
fn seat_return(g: &Global, a: &SeatReturnArgs, what: &str) -> u8 {
    let (client, key, machine) = match seat_parts(g, what, &a.key, a.machine.as_deref()) {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    let ask = seat_ask(SeatOp::Release, &key, &machine, Some(&a.seat));
    match patiently(&client, what, client.seat_call(&ask, None)) {
        Ok(SeatAnswer::Released(true)) => 0,
        Ok(SeatAnswer::Released(false)) => {
            err(&format!("polar-license seat {what}: no seat was freed: it is not held on this machine (its end passed, or it was given back), or it is a borrowed seat, which the relay counts until its end (its lease licenses offline until then)"));
            u8::try_from(Reason::NotFound.exit_code()).unwrap_or(1)
        }
        Ok(other) => unexpected(what, "a release", &summary(&other)),
        Err(e) => fail(what, &e),
    }
}

/// The seat's lease verified offline with the relay's keys for this key and machine (the
/// failure in words).
fn lease_verifies(
    keys: &RelayKeys,
    g: &Global,
    seat: &Seat,
    key: &Key,
    machine: &str,
) -> Result<(), String> {
    let org = g.org.as_deref().unwrap_or_default();
    seat.verify(keys, org, key, machine, now())
        .map(|_| ())
        .map_err(|why| format!("the seat's lease is no lease ({})", why.as_str()))
}

/// A seat as `seat acquire` and `seat heartbeat` print it: one JSON line.
fn print_seat(seat: &Seat, machine: &str) {
    let out = serde_json::json!({
        "seat": seat.id,
        "machine": machine,
        "ci": seat.ci,
        "expires_at": rfc3339(seat.expires_at),
        "heartbeat_every": seat.heartbeat_every().as_secs(),
        "in_use": seat.in_use,
        "size": seat.size,
        "lease": seat.lease,
    });
    crate::output::print_out(&format!("{out}\n"));
}

/// A seat acquired through the core's hold under `terms`: held only with a lease that
/// verifies (else given back): how `seat acquire` and `seat run` start. The relay's client,
/// the hold and this machine's binding; `Err` is the command's exit code, its line written.
fn acquire_verified(
    g: &Global,
    terms: &HoldTerms,
    what: &str,
    key: &KeyArg,
    machine_given: Option<&str>,
    ci: bool,
) -> Result<(BlockingClient, SeatHold, String), u8> {
    let (client, key, machine) = seat_parts(g, what, key, machine_given)?;
    let ask = SeatHold::acquire_ask(key, machine.clone(), ci);
    let answer = patiently(&client, "acquisition", client.seat_call(&ask, None))
        .map_err(|e| fail(what, &e))?;
    match SeatHold::acquire(terms, &ask, &answer, system_clock_ms()) {
        Ok(Ok(hold)) => Ok((client, hold, machine)),
        Ok(Err(other)) => Err(not_held(what, other)),
        Err(e) => {
            if let Some(back) = SeatHold::release_unheld(&ask, &answer) {
                send_release(&client, &back);
            }
            Err(fail(what, &e))
        }
    }
}

/// `seat acquire`: a seat taken and printed; nothing holds it after this process.
fn seat_acquire(g: &Global, a: &SeatAcquireArgs) -> u8 {
    let terms = match hold_terms(g) {
        Ok(terms) => terms,
        Err(e) => return fail("acquire", &e),
    };
    let (_, hold, machine) =
        match acquire_verified(g, &terms, "acquire", &a.key, a.machine.as_deref(), a.ci) {
            Ok(held) => held,
            Err(code) => return code,
        };
    print_seat(hold.seat(), &machine);
    0
}

/// `seat heartbeat`: the seat's life extended and the seat printed again.
fn seat_heartbeat(g: &Global, a: &SeatReturnArgs) -> u8 {
    let (client, key, machine) = match seat_parts(g, "heartbeat", &a.key, a.machine.as_deref()) {
        Ok(parts) => parts,
        Err(code) => return code,
    };
    let keys = match hold_terms(g) {
        Ok(_) => match relay_keys(g) {
            Some(Ok(keys)) => keys,
            _ => RelayKeys::new(),
        },
        Err(e) => return fail("heartbeat", &e),
    };
    let ask = seat_ask(SeatOp::Heartbeat, &key, &machine, Some(&a.seat));
    match patiently(&client, "heartbeat", client.seat_call(&ask, None)) {
        Ok(SeatAnswer::Held(seat)) => {
            if let Err(why) = lease_verifies(&keys, g, &seat, &key, &machine) {
                return no_lease("heartbeat", why);
            }
            print_seat(&seat, &machine);
            0
        }
        Ok(SeatAnswer::Gone) => {
            err("polar-license seat heartbeat: the seat is no longer held on this machine (not heard from within its life, or given back): acquire again (seat_gone)");
            u8::try_from(Reason::NotFound.exit_code()).unwrap_or(1)
        }
        Ok(other @ SeatAnswer::Denied(_)) => not_held("heartbeat", other),
        Ok(other) => unexpected("heartbeat", "a heartbeat", &summary(&other)),
        Err(e) => fail("heartbeat", &e),
    }
}

fn seat_run(g: &Global, a: &SeatRunArgs) -> u8 {
    // The core's hold says whether the seat is held, what to send, when, and when the seat
    // is lost; this command only sends, sleeps as told, and stops COMMAND when it is lost.
    let mut terms = match hold_terms(g) {
        Ok(terms) => terms.with_grace(Duration::from_secs(u64::from(a.seat_grace))),
        Err(e) => return fail("run", &e),
    };
    if let Some(every) = a.heartbeat {
        terms = terms.with_heartbeat(every);
    }
    let (client, hold, _) = match acquire_verified(
        g,
        &terms,
        "run",
        &a.seat.key,
        a.seat.machine.as_deref(),
        a.seat.ci,
    ) {
        Ok(held) => held,
        Err(code) => return code,
    };
    let beat = Arc::new(Mutex::new(SeatBeat::new(hold, client.base_url())));
    // COMMAND's process id once it runs, and whether it leads a process group of its own
    // (seat_child.rs): the heartbeat thread stops it (its group) when the seat is lost.
    let command_pid: Arc<Mutex<Option<(u32, bool)>>> = Arc::default();
    let (stop, stopped) = mpsc::channel::<()>();
    let beating = {
        let beat = Arc::clone(&beat);
        let command_pid = Arc::clone(&command_pid);
        let client = client.clone();
        std::thread::spawn(move || heartbeat_loop(&client, &beat, &command_pid, &stopped))
    };
    // Signals caught from here on: passed on to the command, the seat released after it.
    // The command is started so that it does not outlive this process (seat_child.rs).
    let passing = signals::catch();
    let status = crate::seat_child::spawn(&a.command).and_then(|mut started| {
        *command_pid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((started.child.id(), started.leads_group));
        if let Some(passing) = &passing {
            passing.to(started.child.id(), started.leads_group);
        }
        let status = started.child.wait();
        started.exited();
        status
    });
    let _ = stop.send(());
    let ended = beating.join().ok().flatten();
    release(&client, lock(&beat).hold_mut());
    match ended {
        // The seat's end, not the command's exit, is the answer: the core's words and code.
        Some(Ended::Lost(lost)) => return fail("run", &lost),
        // Told when it happened; the exit is `seat heartbeat`'s for the same answer.
        Some(Ended::Gone) => return u8::try_from(Reason::NotFound.exit_code()).unwrap_or(1),
        None => {}
    }
    match status {
        Ok(status) => exit_of(status),
        Err(e) => {
            err(&format!(
                "polar-license seat run: {} could not be run: {e}",
                a.command[0]
            ));
            127
        }
    }
}

/// Why `seat run` stopped COMMAND: its seat ended while COMMAND ran.
enum Ended {
    /// The lease ended (and the grace) with no renewal from the relay: `seat_lost`.
    Lost(Error),
    /// The relay answered a heartbeat that it no longer holds the seat (`seat_gone`: not
    /// heard from within its life, released from elsewhere, shed from a shrunk pool): it may
    /// already be another machine's.
    Gone,
}

/// `seat run`'s heartbeat thread: the core's [`SeatBeat`] driven by the client's one loop
/// (its heartbeats, its waits: every rule and every wait is the machine's) until `stopped`
/// (the command exited) or the hold ends; this tells what each heartbeat got. When the hold
/// is lost (its lease ended, and the grace, with no renewal) or the relay says the seat is
/// gone, COMMAND is stopped and why returned: `seat run` exits with it (issue #76: a seat is
/// held only while the relay says so).
fn heartbeat_loop(
    client: &BlockingClient,
    beat: &Mutex<SeatBeat>,
    command_pid: &Mutex<Option<(u32, bool)>>,
    stopped: &mpsc::Receiver<()>,
) -> Option<Ended> {
    let mut gone = false;
    let waited = |wait| {
        matches!(
            stopped.recv_timeout(wait),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    };
    let told = |m: &mut SeatBeat| {
        let Some(b) = m.take_beat() else {
            return true;
        };
        match (&b.state, &b.answer) {
            (Ok(HoldState::Held), _) => true,
            (Ok(_), Ok(SeatAnswer::Denied(d))) => {
                err(&format!(
                    "polar-license seat run: the seat ended at a heartbeat: {} ({}): the command goes on without it",
                    d.detail,
                    d.reason.code()
                ));
                false
            }
            (Ok(_), Ok(SeatAnswer::Gone)) => {
                err(
                    "polar-license seat run: the relay no longer holds the seat (not heard from within its life, or given back): the command is stopped (seat_gone)",
                );
                gone = true;
                false
            }
            // Lost: told below, when the machine ends.
            (Ok(_), _) => true,
            (Err(_), Ok(other)) if !matches!(other, SeatAnswer::Held(_)) => {
                err(&format!(
                    "polar-license seat run: a heartbeat answered {}",
                    summary(other)
                ));
                true
            }
            (Err(e), _) => {
                err(&format!(
                    "polar-license seat run: a heartbeat failed: {} (tried again while the seat's lease runs)",
                    e.text()
                ));
                true
            }
        }
    };
    let done = client.drive_shared(beat, waited, told);
    if gone {
        stop_started(command_pid, stopped);
        return Some(Ended::Gone);
    }
    let lost = lock(beat).hold().lost(system_clock_ms());
    if !done || lost.is_none() {
        return None;
    }
    err("polar-license seat run: the seat's lease ended with no renewal from the relay: the command is stopped (seat_lost)");
    stop_started(command_pid, stopped);
    lost.map(Ended::Lost)
}

/// COMMAND stopped ([`stop_command`]), even one that starts only now; none left when it
/// could not be started (`stopped` hears of it then).
fn stop_started(command_pid: &Mutex<Option<(u32, bool)>>, stopped: &mpsc::Receiver<()>) {
    loop {
        let pid = *command_pid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((pid, group)) = pid {
            stop_command(pid, group, stopped);
            return;
        }
        if !matches!(
            stopped.recv_timeout(Duration::from_millis(50)),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            return;
        }
    }
}

/// How long COMMAND has to exit after SIGTERM, when its seat is lost, before SIGKILL.
#[cfg(unix)]
const STOP_WAIT: Duration = Duration::from_secs(10);

/// COMMAND (`pid`) stopped: SIGTERM, then SIGKILL when it has not exited (`exited` heard)
/// within [`STOP_WAIT`]; to its whole process group when it leads one (`group`, seat_child.rs:
/// what the command started goes with it). Windows: ended at once (`taskkill /T /F`).
fn stop_command(pid: u32, group: bool, exited: &mpsc::Receiver<()>) {
    #[cfg(unix)]
    {
        use rustix::process::{kill_process, kill_process_group, Pid, Signal};
        let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return;
        };
        let kill = |sig: Signal| {
            let _ = if group {
                kill_process_group(pid, sig)
            } else {
                kill_process(pid, sig)
            };
        };
        kill(Signal::TERM);
        if matches!(
            exited.recv_timeout(STOP_WAIT),
            Err(mpsc::RecvTimeoutError::Timeout)
        ) {
            kill(Signal::KILL);
        }
    }
    #[cfg(windows)]
    {
        let _ = (exited, group);
        let _ = std::process::Command::new("taskkill")
            .args(["/PID", &pid.to_string(), "/T", "/F"])
            .output();
    }
}

/// The hold's machine, whatever a panicking holder left it as.
fn lock(beat: &Mutex<SeatBeat>) -> std::sync::MutexGuard<'_, SeatBeat> {
    beat.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn summary(answer: &SeatAnswer) -> String {
    match answer.code() {
        Some(code) => code.to_string(),
        None => format!("{answer:?}"),
    }
}

/// The hold's release sent (none when it was released already); the hold released whatever
/// came of it (a seat the relay was not told of frees by itself within its life).
fn release(client: &BlockingClient, hold: &mut SeatHold) {
    if let Some(ask) = hold.release_ask() {
        send_release(client, &ask);
        hold.released();
    }
}

/// A release sent (asked again after a `429`'s wait): its answer, what went wrong on stderr.
fn send_release(client: &BlockingClient, ask: &SeatAsk) -> Option<SeatAnswer> {
    match patiently(client, "release", client.seat_call(ask, None)) {
        Ok(answer @ SeatAnswer::Released(_)) => Some(answer),
        Ok(other) => {
            err(&format!(
                "polar-license seat run: the release answered {}",
                summary(&other)
            ));
            Some(other)
        }
        Err(e) => {
            err(&format!(
                "polar-license seat run: the release failed: {} (the seat frees by itself within its life)",
                e.text()
            ));
            None
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The command's exit code as this command's: its own, or 128 and the signal that ended it.
fn exit_of(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from((128 + signal) & 0xff).unwrap_or(1);
        }
    }
    1
}

/// A line on stderr.
fn err(text: &str) {
    crate::output::print_err(&format!("{text}\n"));
}

/// SIGINT, SIGTERM and SIGHUP caught while the command runs and passed on to it (Unix: to its
/// process group when it leads one); a console's Ctrl-C and Ctrl-Break caught (Windows: the
/// command, on the same console, gets its own).
mod signals {
    use std::sync::{Arc, Mutex, MutexGuard};

    /// Where the caught signals go: the command, once its process id is known. One caught
    /// before (the command started, its id not yet stored: a `kill` sent the moment the
    /// command showed it runs) waits here and is passed on then, never lost.
    #[derive(Default)]
    struct Target {
        pid: Option<u32>,
        /// The command leads a process group of its own: the signals go to the group (what
        /// the command started with them), and a terminal's go too (they reached
        /// `seat run`'s group, not the command's).
        #[cfg(unix)]
        group: bool,
        /// Each with whether the terminal sent it.
        #[cfg(unix)]
        waiting: Vec<(rustix::process::Signal, bool)>,
    }

    /// The most signals kept waiting (one of each kind is what a command can act on).
    #[cfg(unix)]
    const MAX_WAITING: usize = 8;

    fn target(t: &Mutex<Target>) -> MutexGuard<'_, Target> {
        t.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The caught signals' thread: where they go once the command runs.
    pub struct Passing {
        target: Arc<Mutex<Target>>,
    }

    impl Passing {
        /// The command's process id (and whether it leads its own process group): the
        /// signals go to it from now on, those caught before first.
        pub fn to(&self, pid: u32, group: bool) {
            let mut t = target(&self.target);
            t.pid = Some(pid);
            #[cfg(unix)]
            {
                t.group = group;
                for (sig, by_terminal) in std::mem::take(&mut t.waiting) {
                    if group || !by_terminal {
                        send(pid, group, sig);
                    }
                }
            }
            #[cfg(not(unix))]
            let _ = group;
        }

        /// A caught signal: to the command, or kept until its id is known. One the terminal
        /// sent (`by_terminal`) reached the command already when it shares `seat run`'s
        /// group, and is passed on only when it does not.
        #[cfg(unix)]
        fn pass(&self, sig: rustix::process::Signal, by_terminal: bool) {
            let mut t = target(&self.target);
            match t.pid {
                Some(_) if by_terminal && !t.group => {}
                Some(pid) => send(pid, t.group, sig),
                None if t.waiting.len() < MAX_WAITING => t.waiting.push((sig, by_terminal)),
                None => {}
            }
        }
    }

    /// `sig` to the command `pid`, or to its group (`group`: `pid` leads it).
    #[cfg(unix)]
    fn send(pid: u32, group: bool, sig: rustix::process::Signal) {
        use rustix::process::{kill_process, kill_process_group, Pid};
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            let _ = if group {
                kill_process_group(pid, sig)
            } else {
                kill_process(pid, sig)
            };
        }
    }

    /// Unix: the signals read with who sent them, on a thread of their own. A terminal's
    /// Ctrl-C (SIGINT, `si_code` SI_KERNEL: the kernel's, from the terminal) or hangup
    /// (SIGHUP, the same) went to the whole foreground process group: when the command is in
    /// it (`seat run` a terminal's foreground job) it is not passed on, the command gets one
    /// SIGINT, not two; when the command leads a group of its own it is. A signal a process
    /// sent (`kill`, a CI runner's cancel, a closing session's SIGHUP) to this process only is
    /// passed on to the command. Where the sender cannot be read (macOS fills in no cause) it
    /// is passed on, as before. SIGHUP is caught too (issue #76): its default would end
    /// `seat run` with the seat held and the command running.
    #[cfg(unix)]
    pub fn catch() -> Option<Passing> {
        use rustix::process::Signal;
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::iterator::exfiltrator::WithOrigin;
        use signal_hook::iterator::SignalsInfo;
        use signal_hook::low_level::siginfo::Cause;
        let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP]).ok()?;
        let passing = Passing {
            target: Arc::default(),
        };
        let to = Passing {
            target: Arc::clone(&passing.target),
        };
        std::thread::Builder::new()
            .name("seat-run-signals".into())
            .spawn(move || {
                for origin in signals.forever() {
                    let sig = match origin.signal {
                        SIGINT => Signal::INT,
                        SIGHUP => Signal::HUP,
                        _ => Signal::TERM,
                    };
                    let by_terminal = origin.signal != SIGTERM && origin.cause == Cause::Kernel;
                    to.pass(sig, by_terminal);
                }
            })
            .ok()?;
        Some(passing)
    }

    /// Windows: a console's Ctrl-C and Ctrl-Break caught (the command, on the same console,
    /// gets its own) so that this process outlives the command and releases the seat.
    #[cfg(windows)]
    pub fn catch() -> Option<Passing> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .ok()?;
        let waiting = {
            let _entered = runtime.enter();
            waiting()?
        };
        std::thread::Builder::new()
            .name("seat-run-signals".into())
            .spawn(move || runtime.block_on(waiting))
            .ok()?;
        Some(Passing {
            target: Arc::default(),
        })
    }

    /// A signal caught before the command's id is known reaches the command once it is; one
    /// caught after, at once. Real processes, real signals.
    #[cfg(all(test, unix))]
    #[allow(clippy::expect_used)] // tests: a panic is the failure report
    mod tests {
        use super::*;
        use rustix::process::Signal;
        use std::os::unix::process::ExitStatusExt;

        fn sleeper() -> std::process::Child {
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("sleep starts")
        }

        #[test]
        fn a_signal_caught_before_the_command_is_known_is_passed_on_once_it_is() {
            let passing = Passing {
                target: Arc::default(),
            };
            let mut child = sleeper();
            passing.pass(Signal::TERM, false);
            // Not sent anywhere yet: the command runs on.
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(child.try_wait().expect("wait").is_none());
            passing.to(child.id(), false);
            let status = child.wait().expect("wait");
            assert_eq!(status.signal(), Some(Signal::TERM.as_raw()), "{status:?}");
            // Passed on once: nothing left waiting.
            assert!(target(&passing.target).waiting.is_empty());
        }

        #[test]
        fn a_signal_caught_after_goes_at_once_and_too_many_early_ones_are_not_kept() {
            let passing = Passing {
                target: Arc::default(),
            };
            for _ in 0..MAX_WAITING + 5 {
                passing.pass(Signal::INT, false);
            }
            assert_eq!(target(&passing.target).waiting.len(), MAX_WAITING);
            let mut child = sleeper();
            let mut later = sleeper();
            passing.to(later.id(), false);
            assert_eq!(
                later.wait().expect("wait").signal(),
                Some(Signal::INT.as_raw())
            );
            passing.to(child.id(), false);
            passing.pass(Signal::TERM, false);
            assert_eq!(
                child.wait().expect("wait").signal(),
                Some(Signal::TERM.as_raw())
            );
        }
    }

    #[cfg(windows)]
    fn waiting() -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        use tokio::signal::windows::{ctrl_break, ctrl_c};
        let mut c = ctrl_c().ok()?;
        let mut brk = ctrl_break().ok()?;
        Some(async move {
            // The command shares the console: it gets the event itself. Caught here so that
            // this process outlives it and releases the seat.
            loop {
                tokio::select! {
                    Some(()) = c.recv() => {}
                    Some(()) = brk.recv() => {}
                    else => return,
                }
            }
        })
    }
}
