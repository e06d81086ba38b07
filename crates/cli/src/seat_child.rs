//! `seat run`'s command, started so that it does not outlive `seat run` (issue #76, finding
//! 4): a `seat run` killed outright (SIGKILL: an out-of-memory kill, a runner's hard cancel)
//! cannot release its seat, and before this its command ran on with no seat at all, for ever.
//!
//! What stops the command when `seat run` dies by a signal it cannot catch, Unix:
//! - **The command itself** (Linux): started through this binary (`/proc/self/exe`, which
//!   outlives an upgrade that replaced the file), which asks the kernel for SIGTERM when its
//!   parent dies (`prctl(PR_SET_PDEATHSIG)`, kept across `exec`), checks that the parent is
//!   still the one that started it (it may have died before the ask), and then becomes the
//!   command (`exec`: the same process id, the signals go where they went). The parent the
//!   kernel watches is the thread that started the command: `seat run` starts it from its
//!   main thread, which ends only with the process.
//! - **What the command started** (every Unix): the command leads a process group of its own,
//!   which its children join unless they leave it (a daemon's `setsid`); a watchdog (this
//!   binary again, in a group of its own too, so that a kill of `seat run`'s group spares it)
//!   holds a pipe whose other end only `seat run` has: when `seat run` dies the pipe ends, and
//!   the watchdog sends SIGTERM to the command's group. Once the command has exited `seat run`
//!   tells the watchdog so and it stops watching: a normal end changes nothing, and a group
//!   id the system might hand out again is never signalled. The signals `seat run` catches
//!   (SIGINT, SIGTERM, SIGHUP) go to the whole group.
//!
//! The one exception is an interactive run: `seat run` in the foreground of a terminal (one
//! of its standard streams is a terminal whose foreground group is `seat run`'s). There the
//! command stays in `seat run`'s group, as a shell's job: the terminal's Ctrl-C and Ctrl-Z
//! reach it, and it can read the terminal (a command in a group of its own would be stopped by
//! SIGTTIN at its first read). The parent-death signal still stops the command itself; what
//! it started is the terminal's to stop (its hangup's SIGHUP reaches the whole foreground
//! group). Not covered anywhere: a watchdog killed by SIGKILL at the same moment as `seat
//! run`, and a child that left the group; macOS has no parent-death signal (the watchdog
//! stops the group there, the command included). Windows starts the command as before.

use std::ffi::OsString;
use std::process::{Child, Command};

/// The first argument that makes this binary the command's launcher (Linux): `__seat-run-exec
/// PARENT -- COMMAND…`. Not a command of the interface: only `seat run` starts it.
#[cfg(any(target_os = "linux", target_os = "android"))]
const EXEC: &str = "__seat-run-exec";

/// The first argument that makes this binary the command group's watchdog (Unix):
/// `__seat-run-watch GROUP`, the pipe from `seat run` on its standard input.
#[cfg(unix)]
const WATCH: &str = "__seat-run-watch";

/// What `seat run` writes to the watchdog once the command has exited: stop watching.
#[cfg(unix)]
const DONE: &[u8] = b"done\n";

/// The command, started.
pub struct Started {
    pub child: Child,
    /// The command leads a process group of its own (its id is the command's): signals go to
    /// the group.
    pub leads_group: bool,
    #[cfg(unix)]
    watchdog: Option<Child>,
}

impl Started {
    /// The command has exited (and was waited for): the watchdog stops watching, and is
    /// waited for.
    pub fn exited(&mut self) {
        #[cfg(unix)]
        if let Some(mut watchdog) = self.watchdog.take() {
            use std::io::Write;
            if let Some(mut pipe) = watchdog.stdin.take() {
                let _ = pipe.write_all(DONE);
            }
            let _ = watchdog.wait();
        }
    }
}

/// Starts `command` (its name first) as the module's notes say.
pub fn spawn(command: &[String]) -> std::io::Result<Started> {
    let (name, args) = match command.split_first() {
        Some(split) => split,
        None => return Err(std::io::ErrorKind::InvalidInput.into()),
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let leads_group = !interactive();
        let child = launched(command, leads_group);
        let child = match child {
            Some(child) => child,
            None => {
                let mut direct = Command::new(name);
                direct.args(args);
                if leads_group {
                    direct.process_group(0);
                }
                direct.spawn()?
            }
        };
        let watchdog = if leads_group {
            watchdog(child.id())
        } else {
            None
        };
        Ok(Started {
            child,
            leads_group,
            watchdog,
        })
    }
    #[cfg(not(unix))]
    {
        Ok(Started {
            child: Command::new(name).args(args).spawn()?,
            leads_group: false,
        })
    }
}

/// The command started through the launcher (Linux), in a group of its own when
/// `leads_group`; none when it cannot be (no /proc in a chroot: the command is then started
/// directly, the watchdog alone stopping it).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn launched(command: &[String], leads_group: bool) -> Option<Child> {
    use std::os::unix::process::CommandExt;
    let mut launcher = Command::new("/proc/self/exe");
    launcher
        .arg(EXEC)
        .arg(std::process::id().to_string())
        .arg("--")
        .args(command);
    if leads_group {
        launcher.process_group(0);
    }
    launcher.spawn().ok()
}

/// No parent-death signal here: the command is started directly.
#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn launched(_: &[String], _: bool) -> Option<Child> {
    None
}

/// Whether `seat run` is in the foreground of a terminal: one of its standard streams is a
/// terminal whose foreground process group is this process's.
#[cfg(unix)]
fn interactive() -> bool {
    use rustix::process::getpgrp;
    use rustix::termios::tcgetpgrp;
    use std::os::fd::AsFd;
    let ours = getpgrp();
    let on = |fd: std::os::fd::BorrowedFd<'_>| matches!(tcgetpgrp(fd), Ok(group) if group == ours);
    on(std::io::stdin().as_fd()) || on(std::io::stdout().as_fd()) || on(std::io::stderr().as_fd())
}

/// The watchdog of the command's group `group`, started (none when it cannot be: the
/// parent-death signal still stops the command itself).
#[cfg(unix)]
fn watchdog(group: u32) -> Option<Child> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let me = std::path::PathBuf::from("/proc/self/exe");
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let me = std::env::current_exe().ok()?;
    Command::new(me)
        .arg(WATCH)
        .arg(group.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()
}

/// This binary started as the launcher or the watchdog (`args`: the whole command line): its
/// exit code; none for any other command line.
pub fn internal(args: &[OsString]) -> Option<u8> {
    #[cfg(unix)]
    {
        let role = args.get(1)?.to_str()?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if role == EXEC {
            return Some(launch(&args[2..]));
        }
        if role == WATCH {
            return Some(watch(&args[2..]));
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = args;
        None
    }
}

/// The launcher: `PARENT -- COMMAND…`. SIGTERM asked for when the parent dies, the parent
/// checked to be alive still, then the command run in this process's place; 127 when it
/// cannot be (said on stderr as `seat run` says it), 143 (SIGTERM's) when the parent is gone.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn launch(args: &[OsString]) -> u8 {
    use rustix::process::{getppid, set_parent_process_death_signal, Pid, Signal};
    use std::os::unix::process::CommandExt;
    let parent = args
        .first()
        .and_then(|p| p.to_str())
        .and_then(|p| p.parse::<i32>().ok())
        .and_then(Pid::from_raw);
    let (Some(parent), Some(name)) = (parent, args.get(2)) else {
        return 2;
    };
    if set_parent_process_death_signal(Some(Signal::TERM)).is_err() {
        // Not stopped on its parent's death: still started (the watchdog stops its group).
        crate::output::print_err(
            "polar-license seat run: no parent-death signal for the command\n",
        );
    }
    // The parent died before the ask: the signal will never come.
    if getppid() != Some(parent) {
        return 143;
    }
    let e = Command::new(name).args(&args[3..]).exec();
    crate::output::print_err(&format!(
        "polar-license seat run: {} could not be run: {e}\n",
        name.to_string_lossy()
    ));
    127
}

/// The watchdog: `GROUP`, the pipe on standard input. The pipe ending without `seat run`'s
/// word that the command exited means `seat run` died: SIGTERM to the group.
#[cfg(unix)]
fn watch(args: &[OsString]) -> u8 {
    use rustix::process::{kill_process_group, Pid, Signal};
    use std::io::Read;
    let Some(group) = args
        .first()
        .and_then(|g| g.to_str())
        .and_then(|g| g.parse::<i32>().ok())
        .and_then(Pid::from_raw)
    else {
        return 2;
    };
    let mut said = Vec::new();
    // Blocks until `seat run` writes its word and closes, or dies (which closes it too).
    let _ = std::io::stdin()
        .take(DONE.len() as u64)
        .read_to_end(&mut said);
    if said != DONE {
        let _ = kill_process_group(group, Signal::TERM);
    }
    0
}
