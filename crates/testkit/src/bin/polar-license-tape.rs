//! `polar-license-tape UPSTREAM`: the recording proxy of issue #53 ([`polar_license_testkit::Tape`])
//! as a process, for the C tests (bindings/c/tests/test_signed.c): prints `listening on URL`,
//! then passes every request on to `UPSTREAM` (`http://host:port`, the relay), records the last
//! 200 of a validate, replays it or holds the next one as its `/__tape/...` routes say (the
//! module's table). Runs until it is killed. A test tool: never shipped.

use polar_license_testkit::Tape;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(upstream) = std::env::args().nth(1) else {
        eprintln!("usage: polar-license-tape UPSTREAM");
        return ExitCode::from(2);
    };
    let tape = Tape::start(&upstream);
    let mut out = std::io::stdout();
    if writeln!(out, "listening on {}", tape.url)
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    loop {
        std::thread::park();
    }
}
