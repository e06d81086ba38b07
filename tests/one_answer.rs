//! One answer, one verdict (issue #28): every generated answer (`polar_license_testkit::answers`,
//! Polar's answers mutated at the text level, and what is not Polar's) is classified the same
//! way by serde's typed model (`proto::parse_*_for`: the Rust, C and command-line faces) and by
//! the core's schema table (`answers::*_answer`: the npm engine), and a grant is written byte
//! for byte alike, the sealed record it leaves included (`polar_license_testkit::readings`).
//!
//! 6,000 cases over fixed seeds by default (a few seconds); `POLAR_LICENSE_ONE_ANSWER_CASES=N`
//! reads N per seed instead, and `POLAR_LICENSE_ONE_ANSWER_SEED=S` adds a seed. Prints its
//! tally (`one answer: N cases, …, 0 disagreements`) and every disagreement's case.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::proto::Operation;
use polar_license_testkit::answers::{activated_text, activation_text, cases, license_text, Case};
use polar_license_testkit::readings::{read_both, Reading, Tally};
use std::time::Instant;

/// The seeds every run reads (cases per seed: 1,500, or the variable's).
const SEEDS: [u64; 4] = [1, 2, 0x5eed, 28];

fn per_seed() -> usize {
    std::env::var("POLAR_LICENSE_ONE_ANSWER_CASES")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1_500)
}

#[test]
fn every_answer_gets_one_verdict_on_both_paths() {
    let started = Instant::now();
    let mut seeds = SEEDS.to_vec();
    if let Some(seed) = std::env::var("POLAR_LICENSE_ONE_ANSWER_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        seeds.push(seed);
    }
    let mut tally = Tally::default();
    for &seed in &seeds {
        for case in cases(seed).take(per_seed()) {
            tally.add(&case);
        }
    }
    for d in &tally.disagreements {
        eprintln!("{d}\n");
    }
    println!(
        "{tally} (seeds {seeds:?}, {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(tally.cases >= 5_000 || per_seed() < 1_500, "{tally}");
    assert_eq!(tally.disagreeing, 0, "{tally}: the cases are printed above");
    // The run means something only if it reaches every kind of verdict.
    assert!(
        tally.grants > 300 && tally.denials > 50 && tally.errors > 1000,
        "{tally}"
    );
}

/// A case of this test's own, for a regression: `(op, status, headers, body)`.
fn case(op: Operation, status: u16, headers: &[(&str, &str)], body: &str, asked: bool) -> Case {
    Case {
        op,
        status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
        activation_asked: asked,
        what: "a regression".into(),
    }
}

/// The harness can fail: two readings that differ are a disagreement, printed with the case.
#[test]
fn a_disagreement_is_caught_and_printed() {
    let c = case(
        Operation::Validate,
        429,
        &[("retry-after", "30")],
        "",
        false,
    );
    let (typed, schema) = read_both(&c);
    assert_eq!(typed, schema);
    assert_eq!(typed.kind(), "error");
    let other = match schema {
        Reading::Failed {
            code,
            status,
            detail,
            record,
            ..
        } => Reading::Failed {
            code,
            status,
            retry_after: Some(31),
            detail,
            record,
        },
        r => r,
    };
    let mut tally = Tally::default();
    tally.count(&c, typed, other);
    assert_eq!(tally.disagreeing, 1);
    let text = tally.disagreements[0].to_string();
    assert!(
        text.contains("validate 429, headers [retry-after: \"30\"]"),
        "{text}"
    );
    assert!(text.contains("retry_after: Some(\n        31"), "{text}");
    assert!(tally.to_string().ends_with("1 disagreements"), "{tally}");
}

/// What the first runs found, each a minimal case (fixed in the same change as this test).
#[test]
fn what_the_harness_found_stays_fixed() {
    let plain = license_text(false, Some("null"));
    let activated = activated_text(false);
    let status = |text: &str, status: &str| text.replace(r#""status":"granted""#, status);
    let found = [
        // serde reads an enum also as `{"name": null}`, and so does the schema table; the
        // schema path then held the license to the request with its status read as a string
        // only, "": granted natively, protocol_error in the npm engine. Now both grant.
        (
            Operation::Validate,
            status(&plain, r#""status":{"granted":null}"#),
            "grant",
        ),
        (
            Operation::Activate,
            status(&activated, r#""status":{"granted":null}"#),
            "grant",
        ),
        // ... and a revoked one was "its status is " there, "its status is revoked" natively.
        (
            Operation::Validate,
            status(&plain, r#""status":{"revoked":null}"#),
            "error",
        ),
        // `limit_usage - usage` overflowed in the typed model (a panic in a debug build, a
        // wrapped, huge count of usages left in a release one, which a metered feature
        // granted on); the schema path saturates. Now both saturate.
        (
            Operation::Validate,
            plain.replace(
                r#""limit_usage":10"#,
                r#""limit_usage":-9223372036854775808"#,
            ),
            "grant",
        ),
        (
            Operation::Validate,
            plain.replace(r#""usage":2"#, r#""usage":-9223372036854775808"#),
            "grant",
        ),
    ];
    for (op, body, kind) in found {
        let c = case(op, 200, &[], &body, false);
        let (typed, schema) = read_both(&c);
        assert_eq!(typed, schema, "{c}");
        assert_eq!(typed.kind(), kind, "{c}: {typed}");
    }
    let with_activation = license_text(true, Some(&activation_text()));
    let c = case(
        Operation::Validate,
        200,
        &[],
        &status(&with_activation, r#""status":{"granted":null}"#),
        true,
    );
    let (typed, schema) = read_both(&c);
    assert_eq!((typed.kind(), &typed), ("grant", &schema), "{c}");
}
