//! A warm cached `Licensing::check` from the file store, N times in one process, for
//! callgrind to count (`bash scripts/callgrind-check.sh`: instructions are repeatable where
//! wall-clock time on a shared 2-core machine is not). `cargo bench` runs it once with N = 0
//! (a smoke run); the script runs it with 0 and with N and divides the difference.

use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};
use polar_license_testkit::activated_bench_client;

fn main() {
    // `cargo bench` passes `--bench`; the script passes the count.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(0);
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator starts");
    let dir = std::env::temp_dir().join(format!("check-instructions-{}", std::process::id()));
    let licensing = activated_bench_client(&polar, &dir);
    assert!(licensing.check(DEMO_KEY).is_licensed(), "warm check");
    for _ in 0..n {
        let _ = std::hint::black_box(licensing.check(std::hint::black_box(DEMO_KEY)));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
