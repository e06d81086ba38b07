//! The `requests` target under libFuzzer: its body is
//! `crates/fuzz-bodies/src/targets/requests.rs` (whose test replays this target's corpus on stable).
#![no_main]

use libfuzzer_sys::fuzz_target;
use polar_license_fuzz_bodies::targets::requests::run;

fuzz_target!(|data: &[u8]| run(data));
