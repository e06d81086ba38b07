//! `polar-license seat run -- COMMAND` (issue #67): one of the key's seats held through the
//! seller's relay (`--base-url`) while a command runs. The seat is acquired first (a CI seat
//! with `--ci`), heartbeated on a thread of its own while the command runs, and released when
//! it exits, whatever its exit; the command's own exit code is returned. No Polar activation
//! is made: a seat is the relay's, and one not heard from (this process killed) frees within
//! its life. The rules are the relay's and the core's (`polar_license::seat`); this command
//! only schedules the heartbeat.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use polar_license::seat::{SeatAnswer, SeatAsk, SeatOp};
use polar_license::{BlockingClient, Error, Key};

use crate::args::{Global, SeatCommand, SeatRunArgs};

/// Runs `seat …`: the exit code.
pub fn run(g: &Global, c: &SeatCommand) -> u8 {
    match c {
        SeatCommand::Run(a) => seat_run(g, a),
    }
}

fn fail(what: &str, e: &Error) -> u8 {
    err(&format!(
        "polar-license seat {what}: {} ({})",
        e.text(),
        e.reason().code()
    ));
    u8::try_from(e.reason().exit_code()).unwrap_or(3)
}

fn machine(g: &Global, a: &SeatRunArgs) -> String {
    if let Some(m) = a.machine.as_deref().filter(|m| !m.is_empty()) {
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

fn seat_run(g: &Global, a: &SeatRunArgs) -> u8 {
    if g.base_url.as_deref().is_none_or(str::is_empty) {
        return fail(
            "run",
            &Error::invalid("base_url", "is required: the seller's relay (--base-url)"),
        );
    }
    let client = match crate::run::client(g) {
        Ok(client) => client,
        Err(e) => return fail("run", &e),
    };
    let key = Key::new(a.key.key.clone());
    let machine = machine(g, a);
    let ask = |op: SeatOp, seat: Option<String>| SeatAsk {
        op,
        key: key.clone(),
        machine: machine.clone(),
        ci: a.ci,
        seat,
    };
    let seat = match client.seat(&ask(SeatOp::Acquire, None)) {
        Ok(SeatAnswer::Held(seat)) => seat,
        Ok(SeatAnswer::Full {
            in_use,
            size,
            retry_after,
            ..
        }) => {
            let wait =
                retry_after.map_or(String::new(), |s| format!("; the soonest frees in {s} s"));
            err(&format!(
                "polar-license seat run: every seat is in use ({in_use} of {size}){wait} (seats_full)"
            ));
            return u8::try_from(polar_license::Reason::SeatsFull.exit_code()).unwrap_or(1);
        }
        Ok(SeatAnswer::Denied(d)) => {
            err(&format!(
                "polar-license seat run: {} ({})",
                d.detail,
                d.reason.code()
            ));
            return u8::try_from(d.reason.exit_code()).unwrap_or(1);
        }
        Ok(other) => {
            return fail(
                "run",
                &Error::Protocol {
                    status: None,
                    detail: format!("the relay answered an acquisition with {other:?}"),
                },
            )
        }
        Err(e) => return fail("run", &e),
    };
    // Signed mode: the seat holds only with a lease that verifies.
    if !g.relay_keys.is_empty() {
        let verified = polar_license::lease::RelayKeys::parse(&g.relay_keys.join(","))
            .map_err(|e| e.text())
            .and_then(|keys| {
                let org = g.org.as_deref().unwrap_or_default();
                seat.verify(&keys, org, &key, &machine, now())
                    .map_err(|why| format!("the seat's lease is no lease ({})", why.as_str()))
            });
        if let Err(why) = verified {
            release(&client, &ask(SeatOp::Release, Some(seat.id.clone())));
            return fail(
                "run",
                &Error::Protocol {
                    status: Some(200),
                    detail: why,
                },
            );
        }
    }
    let every = a
        .heartbeat
        .unwrap_or_else(|| Duration::from_secs(seat.expires_in.max(3) / 3));
    let (stop, stopped) = mpsc::channel::<()>();
    let beat = {
        let client = crate::run::client(g);
        let heartbeat = ask(SeatOp::Heartbeat, Some(seat.id.clone()));
        std::thread::spawn(move || {
            let Ok(client) = client else { return };
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                match client.seat(&heartbeat) {
                    Ok(SeatAnswer::Held(_)) => {}
                    Ok(SeatAnswer::Gone) => {
                        err(
                            "polar-license seat run: the seat was freed (not heard from within its life): the command goes on without it",
                        );
                        return;
                    }
                    Ok(other) => err(&format!(
                        "polar-license seat run: a heartbeat answered {}",
                        summary(&other)
                    )),
                    Err(e) => err(&format!(
                        "polar-license seat run: a heartbeat failed: {} (tried again)",
                        e.text()
                    )),
                }
            }
        })
    };
    let status = Command::new(&a.command[0]).args(&a.command[1..]).status();
    let _ = stop.send(());
    let _ = beat.join();
    release(&client, &ask(SeatOp::Release, Some(seat.id)));
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

fn summary(answer: &SeatAnswer) -> String {
    match answer {
        SeatAnswer::Denied(d) => d.reason.code().to_string(),
        SeatAnswer::Full { .. } => "seats_full".to_string(),
        other => format!("{other:?}"),
    }
}

fn release(client: &BlockingClient, ask: &SeatAsk) {
    match client.seat(ask) {
        Ok(SeatAnswer::Released(_)) => {}
        Ok(other) => err(&format!(
            "polar-license seat run: the release answered {}",
            summary(&other)
        )),
        Err(e) => err(&format!(
            "polar-license seat run: the release failed: {} (the seat frees by itself within its life)",
            e.text()
        )),
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
