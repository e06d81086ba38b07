//! Every committed fuzz input (`fuzz/corpus/<target>`, what libFuzzer kept for its coverage,
//! and the hand-made `fuzz/seeds/<target>`) through the same target bodies libFuzzer runs
//! (`fuzz/fuzz_targets`), on stable, in the ordinary test stage: a change that makes a body
//! panic (a failed oracle, an out-of-bounds index, ...) on any input the fuzzer ever kept fails
//! here, without the nightly build. Finding new inputs is the fuzzer's job (`scripts/fuzz.sh`,
//! the `fuzz` stage of `FULL=1 bash scripts/test.sh`).

use polar_license_fuzz_bodies::TARGETS;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>`, sorted (none if the directory is absent).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| {
                e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .path()
            })
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs one target over its corpus and seeds; fails naming every input that panicked.
fn replay(target: &str) {
    let run = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"))
        .1;
    let files: Vec<PathBuf> = inputs("corpus", target)
        .into_iter()
        .chain(inputs("seeds", target))
        .collect();
    assert!(
        !files.is_empty(),
        "no committed input for {target} under fuzz/corpus or fuzz/seeds"
    );
    // The bodies' panics are the findings: keep the default hook's message quiet per input and
    // name the files instead.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let failed: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            match catch_unwind(AssertUnwindSafe(|| run(&data))) {
                Ok(()) => None,
                Err(cause) => {
                    let why = cause
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| cause.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Some(format!("{}: {why}", path.display()))
                }
            }
        })
        .collect();
    std::panic::set_hook(hook);
    println!("{target}: {} inputs replayed", files.len());
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs panicked:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

macro_rules! replays {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*
        /// The tests above are every target: one added to `TARGETS` without a test here fails.
        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($target)),*];
            let named: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
            assert_eq!(named, tested);
        }
    };
}

replays!(
    cache_decode,
    cache_roundtrip,
    lease,
    one_answer,
    parse_response,
    requests,
    rules_input
);

/// `TARGETS`, fuzz/Cargo.toml's binaries and the corpus and seed directories name the same
/// targets (a target renamed on one side only would replay nothing).
#[test]
fn the_targets_agree_with_the_fuzz_crate_and_its_directories() {
    let named: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut bins: Vec<&str> = manifest
        .lines()
        .zip(manifest.lines().skip(1))
        .filter(|(header, _)| *header == "[[bin]]")
        .filter_map(|(_, name)| name.strip_prefix("name = \"")?.strip_suffix('"'))
        .collect();
    bins.sort_unstable();
    assert_eq!(bins, named, "fuzz/Cargo.toml's [[bin]] names");
    for kind in ["corpus", "seeds"] {
        for entry in std::fs::read_dir(fuzz_dir().join(kind)).expect("fuzz dir") {
            let name = entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8 name");
            // fuzz/seeds/bodies: JSON bodies that seeds.py reads to write the others' seeds.
            if kind == "seeds" && name == "bodies" {
                continue;
            }
            assert!(
                named.contains(&name.as_str()),
                "fuzz/{kind}/{name} names no target"
            );
        }
    }
}
