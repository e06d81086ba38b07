//! One answer, one verdict: an arbitrary answer (operation, status, `date` and `retry-after`
//! headers, body; the layout of `crate::answer_case`) to one of the requests of
//! `polar_license_testkit::answers` is read by serde's typed model (`proto::parse_*_for`: the
//! Rust, C and command-line faces) and by the core's schema table (`answers::*_answer`: the npm
//! engine), and the two readings must be the same (`polar_license_testkit::readings`, which
//! tests/one_answer.rs runs on the generator's cases): the outcome, its reason code, status,
//! retry-after, remaining usages and detail, and for a grant the license, the activation and
//! the sealed record, byte for byte. Neither may panic.

use polar_license_testkit::readings::disagreement;

/// The target on one input, as libFuzzer gives it (a panic is a finding).
pub fn run(data: &[u8]) {
    let Some(case) = crate::answer_case(data) else {
        return;
    };
    if let Some(d) = disagreement(&case) {
        panic!("{d}");
    }
}
