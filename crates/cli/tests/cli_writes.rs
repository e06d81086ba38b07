//! What a cached launch of the real binary asks of the disk (issue #38), counted by `strace`
//! (installed by scripts/setup-c.sh): a `check` answered from the cache whose clock moved less
//! than a tenth of the clock tolerance past the record's own writes its clock note only, with
//! no `fsync` and no `rename`; one a minute or more later writes the record durably again.
//! Every launch is a new process, the emulator is asked nothing, and the answer is the cache's.
#![cfg(target_os = "linux")]

use polar_license_emulator::DEMO_KEY;
use polar_license_testkit::{take_requests, wrapped, Launch, ScratchDir, World};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_polar-license");

/// The system calls that make a write durable or replace a file.
const DURABLE: &str = "fsync,fdatasync,sync_file_range,syncfs,sync,rename,renameat,renameat2";

/// One launch: the answer, and the durable system calls it made, by name.
struct Launched {
    answer: Value,
    calls: Vec<String>,
}

/// This suite's commands on the testkit's world.
trait Here {
    fn command(&self, offset: i64, args: &[&str]) -> Command;
    fn traced_check(&self, traces: &Path, offset: i64, n: usize) -> Launched;
}

impl Here for World {
    fn command(&self, offset: i64, args: &[&str]) -> Command {
        let mut cmd = self.cli(BIN, &self.dir, offset);
        cmd.arg("--json").args(args);
        cmd
    }

    /// `check` at clock offset `offset`, under `strace -f`, its trace in `traces`.
    fn traced_check(&self, traces: &Path, offset: i64, n: usize) -> Launched {
        let inner = self.command(offset, &["check", "--key", DEMO_KEY]);
        let trace = traces.join(format!("check-{n}.trace"));
        let filter = format!("trace={DURABLE}");
        let output = trace.to_string_lossy();
        let strace = ["-f", "-qq", "-e", &filter, "-o", &output];
        let out = wrapped("strace", &strace, &inner).launch();
        assert!(
            out.status.success(),
            "strace check: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer = serde_json::from_slice(&out.stdout).expect("--json answer");
        let text = std::fs::read_to_string(&trace).expect("strace wrote its trace");
        let calls = text
            .lines()
            .filter_map(|line| {
                // `PID name(args) = result`
                let call = line.split_once(' ').map_or(line, |(_, rest)| rest);
                call.split_once('(')
                    .map(|(name, _)| name.trim().to_string())
            })
            .filter(|name| DURABLE.split(',').any(|d| d == name))
            .collect();
        Launched { answer, calls }
    }
}

fn strace_present() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_cached_launch_near_the_records_clock_neither_fsyncs_nor_renames() {
    assert!(
        strace_present(),
        "strace is not installed: bash scripts/setup-c.sh installs it"
    );
    let w = World::new("cli-writes");
    let traces = ScratchDir::new("cli-writes-traces");
    let activated = w
        .command(0, &["activate", "--key", DEMO_KEY, "--label", "laptop"])
        .launch();
    assert!(activated.status.success(), "{activated:?}");
    take_requests(&w.polar);

    // (clock offset, durable calls expected): the first cached answer after the activation
    // writes the record (there is no clock note yet); the next ones, within a minute past
    // it, moving or held, write the note alone; a minute past it, the record again.
    let steps: [(i64, bool); 6] = [
        (10, true),
        (11, false),
        (40, false),
        (40, false),
        (55, false),
        (70, true),
    ];
    for (n, (offset, durable)) in steps.into_iter().enumerate() {
        let l = w.traced_check(&traces, offset, n);
        assert_eq!(l.answer["outcome"], "licensed", "+{offset}: {}", l.answer);
        assert_eq!(l.answer["source"], "cache", "+{offset}: {}", l.answer);
        assert_eq!(l.answer["cache_refreshed"], true, "+{offset}: {}", l.answer);
        if durable {
            for call in ["fsync", "rename"] {
                assert!(
                    l.calls.iter().any(|c| c.starts_with(call)),
                    "+{offset}: the record written durably: {call} expected in {:?}",
                    l.calls
                );
            }
        } else {
            assert!(
                l.calls.is_empty(),
                "+{offset}: only the clock moved: no fsync, no rename, got {:?}",
                l.calls
            );
        }
    }
    assert_eq!(take_requests(&w.polar), 0, "every answer was the cache's");
}
