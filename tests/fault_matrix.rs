//! The fault matrix (issue #6, item 3) through the Rust API: thirteen server faults against
//! the in-process emulator, each checked the same way on every face (the C ABI in
//! bindings/c/tests/test_faults.c, the npm package in tests/js/faults.test.mjs):
//!
//! 1. an online `validate` gives the reason code of docs/interfaces.md §1, with exactly one request;
//! 2. with no cache, `check` does not grant (same code, one request);
//! 3. with a valid cached verdict, `check` answers as the grace policy says: licensed from the
//!    cache for every one of them (`offline`, `rate_limited`, `server_error`, and
//!    `protocol_error`: an answer that is not Polar's verdict falls back too, docs/interfaces.md §4),
//!    with one request;
//! 4. the cached verdict survives: `status` still holds the same good verdict, and once the
//!    fault is cleared a check is licensed again;
//! 5. after a 429 the block holds: the next checks send nothing until it ends;
//! 6. the client lets go of every faulted connection: no fault body (slow, 50 MB) is still
//!    being written once the calls returned (an abandoned but open connection would keep the
//!    server streaming into it, and hold one of a browser's few connections per host).
//!
//! Each row runs on its own emulator (so request counts are exact), all rows at once. The rows
//! are written to target/fault-matrix/rust.tsv for scripts/fault-table.sh; the test fails when
//! any check of any row fails.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::grace::{CheckOutcome, GracePolicy, Source};
use polar_license::{CacheState, CacheStatus, Error, Licensing, Reason, ValidateRequest, Verdict};
use polar_license_emulator::{Emulator, Fault, DEMO_KEY, DEMO_KEY_USAGE};
use polar_license_testkit::{each_on_a_thread, World};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole-request timeout of the hang and slow-body rows, where it is the fault's
/// mechanism (each faulted call costs this much).
const SHORT_TIMEOUT: Duration = Duration::from_secs(1);
/// The timeout of every other row (the default): a loaded machine never turns their answers
/// into `offline`.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The 50 MB body of the `huge_body` row (the native client caps bodies at 1 MiB).
const HUGE: u64 = 50 * 1024 * 1024;
/// The `retry-after` of the `rate_limited_retry_after` row.
const RETRY_AFTER: u64 = 600;
/// Polar's block when `retry-after` is missing (grace::DEFAULT_RETRY_AFTER).
const DEFAULT_BLOCK: i64 = 60;
const WEEK: u64 = 7 * 24 * 3600;

/// One row: its id (shared with the other faces and scripts/fault-table.sh), the fault
/// (`None`: the server is down, connections are refused) and the expected reason.
struct Row {
    id: &'static str,
    fault: Option<Fault>,
    expected: Reason,
}

fn status(status: u16, body: &str) -> Option<Fault> {
    Some(Fault::Status {
        status,
        body: body.to_string(),
    })
}

fn rows() -> Vec<Row> {
    use Reason::*;
    let row = |id, fault, expected| Row {
        id,
        fault,
        expected,
    };
    vec![
        row("connection_refused", None, Offline),
        row("hang_timeout", Some(Fault::Hang), Offline),
        row(
            "slow_body",
            Some(Fault::SlowBody { ms_per_byte: 200 }),
            Offline,
        ),
        row(
            "status_500",
            status(500, "Internal Server Error"),
            ServerError,
        ),
        row(
            "status_502",
            status(502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
            ServerError,
        ),
        row(
            "status_503",
            status(503, "{\"detail\":\"Service Unavailable\"}"),
            ServerError,
        ),
        row(
            "rate_limited",
            Some(Fault::RateLimited { retry_after: None }),
            RateLimited,
        ),
        row(
            "rate_limited_retry_after",
            Some(Fault::RateLimited {
                retry_after: Some(RETRY_AFTER),
            }),
            RateLimited,
        ),
        row("malformed_json", Some(Fault::Malformed), ProtocolError),
        row("truncated_body", Some(Fault::Truncated), ProtocolError),
        row("huge_body", Some(Fault::Huge { bytes: HUGE }), ProtocolError),
        row(
            "unexpected_status",
            status(418, "{\"detail\":\"I'm a teapot\"}"),
            ProtocolError,
        ),
        row(
            "status_401",
            status(
                401,
                "{\"error\":\"invalid_token\",\"error_description\":\"The access token provided is expired, revoked, malformed, or invalid for other reasons.\"}",
            ),
            ProtocolError,
        ),
    ]
}

/// What a row found; `failures` empty means it passed.
struct Found {
    id: &'static str,
    expected: Reason,
    got: String,
    no_cache: String,
    cached: String,
    cache_kept: bool,
    requests: u64,
    expected_requests: u64,
    failures: Vec<String>,
}

impl Found {
    /// `what` sent `n` requests, and should have sent `expected`: `n`, to add up.
    fn sent(&mut self, what: &str, n: u64, expected: u64) -> u64 {
        self.check(n == expected, || {
            format!("{what} sent {n} requests, expected {expected}")
        });
        n
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) -> bool {
        if !ok {
            self.failures.push(what());
        }
        ok
    }

    /// A second `what` by `client`, a second on, within the 429 block: `ok` by its answer, and
    /// it sends no request. The requests it sent, to add up.
    fn again_in_the_block(
        &mut self,
        w: &World,
        (client, key): (&Licensing, &str),
        what: &str,
        ok: impl FnOnce(&CheckOutcome) -> bool,
    ) -> u64 {
        w.advance(1);
        let again = client.check(key);
        self.check(ok(&again), || {
            format!("second {what}: {}", describe(&again))
        });
        self.sent("a check in the 429 block", w.requests(), 0)
    }
}

/// The code of a validate answer: `licensed`, a denial's or an error's reason.
fn validate_code(answer: &Result<Verdict<impl std::fmt::Debug>, Error>) -> String {
    match answer {
        Ok(Verdict::Accepted(_)) => "licensed".into(),
        Ok(Verdict::Denied(d)) => d.reason.code().into(),
        Err(e) => e.reason().code().into(),
    }
}

/// `licensed/online`, `licensed/cache`, or the reason's code.
fn outcome_code(outcome: &CheckOutcome) -> String {
    match outcome {
        CheckOutcome::Licensed { source, .. } => format!("licensed/{}", source.as_str()),
        other => other
            .reason()
            .map_or_else(|| "none".into(), |r| r.code().into()),
    }
}

/// An outcome for a failure message (a license is summed up, an error shown whole).
fn describe(outcome: &CheckOutcome) -> String {
    match outcome {
        CheckOutcome::Licensed {
            source,
            grace_remaining,
            verified_at,
            ..
        } => format!(
            "licensed/{} (grace left {grace_remaining:?}, verified at {verified_at})",
            source.as_str()
        ),
        other => format!("{other:?}"),
    }
}

/// A cache status for a failure message.
fn status_of(status: &CacheStatus) -> String {
    match &status.state {
        CacheState::Present(r) => format!(
            "a record verified at {:?}, denied {:?}, grace left {:?}",
            r.good.as_ref().map(|g| g.verified_at),
            r.denied.as_ref().map(|d| d.reason),
            status.grace_remaining
        ),
        other => format!("{other:?}"),
    }
}

fn is_licensed_from(outcome: &CheckOutcome, want: Source) -> bool {
    matches!(outcome, CheckOutcome::Licensed { source, .. } if *source == want)
}

/// This suite's client on the testkit's world.
trait Here {
    fn licensing(&self, cache: &str, timeout: Duration) -> Licensing;
}

impl Here for World {
    /// A client with its cache in `cache` (under the world's directory), every check asking
    /// Polar (revalidate_after 0).
    fn licensing(&self, cache: &str, timeout: Duration) -> Licensing {
        self.builder(&self.dir.join(cache), "fault-matrix")
            .timeout(timeout)
            .policy(GracePolicy {
                revalidate_after: Duration::ZERO,
                ..GracePolicy::default()
            })
            .build()
            .expect("licensing builds")
    }
}

fn run_row(row: &Row) -> Found {
    let mut w = World::new(&format!("fault-matrix-{}", row.id));
    let down = row.fault.is_none();
    let falls_back = row.expected.class() == polar_license::ReasonClass::Unverified
        || row.expected == Reason::ProtocolError;
    let rate_limited = row.expected == Reason::RateLimited;
    let block = match &row.fault {
        Some(Fault::RateLimited {
            retry_after: Some(s),
        }) => *s as i64,
        _ => DEFAULT_BLOCK,
    };
    let want = row.expected.code();
    let mut f = Found {
        id: row.id,
        expected: row.expected,
        got: String::new(),
        no_cache: String::new(),
        cached: String::new(),
        cache_kept: false,
        requests: 0,
        expected_requests: if down { 0 } else { 3 },
        failures: Vec::new(),
    };

    // A valid cached verdict for DEMO_KEY, made against the healthy emulator.
    let healthy = w.licensing("cached", TIMEOUT);
    let seeded = healthy.check(DEMO_KEY);
    if !f.check(is_licensed_from(&seeded, Source::Online), || {
        format!("the healthy check is {}", describe(&seeded))
    }) {
        return f;
    }
    let verified_at = w.clock.now();
    w.requests();
    w.advance(10);

    match &row.fault {
        Some(fault) => w.polar.set_fault(Some(fault.clone())),
        None => w.down(),
    }
    let timeout = match row.fault {
        Some(Fault::Hang | Fault::SlowBody { .. }) => SHORT_TIMEOUT,
        _ => TIMEOUT,
    };
    let faulty = w.licensing("cached", timeout);
    let bare = w.licensing("empty", timeout);

    // 1. validate online: docs/interfaces.md §1's code, one request.
    let answer = faulty
        .client()
        .validate(&ValidateRequest::new(DEMO_KEY_USAGE));
    f.got = validate_code(&answer);
    f.check(f.got == want, || format!("validate: {answer:?}"));
    match (&answer, row.id) {
        (Err(e), "hang_timeout" | "slow_body") => {
            f.check(e.is_timeout(), || format!("not a timeout: {e:?}"));
        }
        (Err(e), "connection_refused") => {
            f.check(!e.is_timeout(), || format!("a timeout: {e:?}"));
        }
        // Refused for its size (not read to the end and then found malformed).
        (Err(e), "huge_body") => {
            f.check(e.detail().contains("larger than the cap"), || {
                format!("not refused for its size: {e:?}")
            });
        }
        (Err(e), "truncated_body") => {
            f.check(e.detail().contains("truncated"), || {
                format!("not reported as truncated: {e:?}")
            });
        }
        (Err(Error::RateLimited { retry_after }), _) => {
            let expected = (block != DEFAULT_BLOCK).then_some(RETRY_AFTER);
            f.check(*retry_after == expected, || {
                format!("retry_after {retry_after:?}, expected {expected:?}")
            });
        }
        _ => {}
    }
    let mut requests = w.requests();
    let expected = if down { 0 } else { 1 };
    f.check(requests == expected, || {
        format!("validate sent {requests} requests, expected {expected}")
    });

    // 2. No cache: check never grants.
    let first = bare.check(DEMO_KEY_USAGE);
    f.no_cache = outcome_code(&first);
    f.check(f.no_cache == want, || {
        format!("check without a cache: {}", describe(&first))
    });
    requests += f.sent("check without a cache", w.requests(), expected);
    if rate_limited {
        // Within the block: refused with no request.
        let still = |again: &CheckOutcome| outcome_code(again) == want;
        requests +=
            f.again_in_the_block(&w, (&bare, DEMO_KEY_USAGE), "check without a cache", still);
    }
    let empty = bare.status(DEMO_KEY_USAGE).expect("status answers");
    f.check(empty.grace_remaining.is_none(), || {
        format!(
            "the empty cache can grant after the fault: {}",
            status_of(&empty)
        )
    });

    // 3. A valid cache: licensed from it (every fault here falls back, docs/interfaces.md §4).
    let cached = faulty.check(DEMO_KEY);
    f.cached = outcome_code(&cached);
    if falls_back {
        if f.check(is_licensed_from(&cached, Source::Cache), || {
            format!("check with a cache: {}", describe(&cached))
        }) {
            if let CheckOutcome::Licensed {
                grace_remaining,
                verified_at: at,
                ..
            } = &cached
            {
                let left = grace_remaining.map(|d| d.as_secs());
                let age = (w.clock.now() - verified_at) as u64;
                f.check(left == Some(WEEK - age) && *at == verified_at, || {
                    format!("grace left {left:?} at age {age} s, verified at {at}")
                });
            }
        }
    } else {
        f.check(f.cached == want, || {
            format!("check with a cache: {}", describe(&cached))
        });
    }
    requests += f.sent("check with a cache", w.requests(), expected);
    if rate_limited {
        let from_cache = |again: &CheckOutcome| is_licensed_from(again, Source::Cache);
        requests += f.again_in_the_block(&w, (&faulty, DEMO_KEY), "check with a cache", from_cache);
    }
    f.requests = requests;

    // 6. Every faulted connection let go: the emulator's writes fail and its streams end.
    // (A bounded wait for that event, not a timing assertion: a kept connection would stay
    // open until the emulator's own 30 s write stall limit.)
    let streams = || w.polar.running().map_or(0, Emulator::open_streams);
    let released = wait_for(|| streams() == 0);
    f.check(released, || {
        format!(
            "{} fault bodies still streaming into connections the client gave up",
            streams()
        )
    });

    // 4. The cached verdict is still there, unchanged.
    let kept = faulty.status(DEMO_KEY).expect("status answers");
    let good_kept = match &kept.state {
        CacheState::Present(r) => {
            r.denied.is_none()
                && r.good
                    .as_ref()
                    .is_some_and(|g| g.verified_at == verified_at)
        }
        _ => false,
    };
    let mut cache_kept = f.check(good_kept && kept.grace_remaining.is_some(), || {
        format!("the cached verdict is gone: {}", status_of(&kept))
    });

    // 5. Fault cleared: licensed again (from the cache while a 429 block lasts, then online).
    match w.polar.running() {
        Some(polar) => polar.set_fault(None),
        None => w.up(),
    }
    w.requests();
    if rate_limited {
        let during = healthy.check(DEMO_KEY);
        let n = w.requests();
        cache_kept &= f.check(is_licensed_from(&during, Source::Cache) && n == 0, || {
            format!(
                "after the fault, within the block: {}, {n} requests",
                describe(&during)
            )
        });
        w.advance(block);
    }
    let after = healthy.check(DEMO_KEY);
    let n = w.requests();
    cache_kept &= f.check(is_licensed_from(&after, Source::Online) && n == 1, || {
        format!("after the fault: {}, {n} requests", describe(&after))
    });
    f.cache_kept = cache_kept;
    f
}

/// Polls `done` every 20 ms for up to 10 s.
fn wait_for(done: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// Where the rows go: `$POLAR_FAULT_MATRIX_DIR` (scripts/test-windows.sh keeps its own), else
/// target/fault-matrix.
fn matrix_dir() -> PathBuf {
    match std::env::var_os("POLAR_FAULT_MATRIX_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fault-matrix"),
    }
}

#[test]
fn fault_matrix() {
    let found = each_on_a_thread(&rows(), run_row);

    let mut tsv = String::from(
        "face\tfault\texpected\tgot\tno_cache\tcached\tcache_kept\trequests\texpected_requests\tresult\n",
    );
    let mut failures = String::new();
    for f in &found {
        let pass = f.failures.is_empty();
        let _ = writeln!(
            tsv,
            "rust\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            f.id,
            f.expected.code(),
            f.got,
            f.no_cache,
            f.cached,
            if f.cache_kept { "yes" } else { "no" },
            f.requests,
            f.expected_requests,
            if pass { "pass" } else { "FAIL" }
        );
        for why in &f.failures {
            let _ = writeln!(failures, "{}: {why}", f.id);
        }
    }
    let dir = matrix_dir();
    std::fs::create_dir_all(&dir).expect("target/fault-matrix");
    std::fs::write(dir.join("rust.tsv"), &tsv).expect("write rust.tsv");
    print!("{tsv}");
    assert_eq!(found.len(), 13);
    assert!(failures.is_empty(), "fault matrix failures:\n{failures}");
}
