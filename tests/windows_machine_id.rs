//! Issue #13 item 2 on Windows (run under wine by scripts/test-windows.sh): the machine id is
//! `MachineGuid` read through the registry API, so a `reg.exe` planted in the application's
//! directory, the working directory or first on `PATH` (an attacker's, answering its own
//! GUID; scripts/windows/fake_reg.c) changes nothing.
#![cfg(windows)]

use polar_license::fingerprint::fingerprint_from;
use polar_license::{Licensing, MachineBinding};
use polar_license_testkit::Launch;
use std::path::PathBuf;
use std::process::Command;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";

/// The real MachineGuid, from the system's own reg.exe by its absolute path.
fn real_machine_guid() -> String {
    let system = std::env::var("SystemRoot").unwrap_or_else(|_| r"C:\windows".into());
    let reg = PathBuf::from(system).join("system32").join("reg.exe");
    let out = Command::new(&reg)
        .args([
            "query",
            r"HKLM\SOFTWARE\Microsoft\Cryptography",
            "/v",
            "MachineGuid",
        ])
        .launch();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains("MachineGuid"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no MachineGuid in {text:?}"))
        .to_string()
}

#[test]
fn a_planted_reg_exe_does_not_set_the_machine_id() {
    let fake = std::env::var_os("POLAR_LICENSE_TEST_FAKE_REG")
        .map(PathBuf::from)
        .expect("POLAR_LICENSE_TEST_FAKE_REG: run scripts/test-windows.sh");
    // The fake answers an attacker's GUID, as reg.exe would print it.
    let planted = String::from_utf8_lossy(&Command::new(&fake).launch().stdout).into_owned();
    assert!(planted.contains("bad0"), "{planted}");

    // Planted where a spawned `reg` would be found first: beside this program, in the working
    // directory, and first on PATH.
    let exe_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let work = std::env::temp_dir().join(format!("polar-license-reg-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    for dir in [&exe_dir, &work] {
        std::fs::copy(&fake, dir.join("reg.exe")).unwrap();
    }
    std::env::set_current_dir(&work).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![work.clone()];
    dirs.extend(std::env::split_paths(&path));
    std::env::set_var("PATH", std::env::join_paths(dirs).unwrap());

    let licensing = Licensing::builder(ORG)
        .cache_dir(work.join("cache"))
        .machine_binding(MachineBinding::Os)
        .build()
        .expect("builds");
    let fingerprint = licensing.machine_fingerprint().map(str::to_string);

    let _ = std::fs::remove_file(exe_dir.join("reg.exe"));
    let _ = std::fs::remove_dir_all(&work);
    let real = real_machine_guid();
    assert_eq!(
        fingerprint,
        Some(fingerprint_from(&real, ORG)),
        "MachineGuid {real}"
    );
    assert_ne!(
        fingerprint,
        Some(fingerprint_from(
            "00000000-0000-4000-8000-00000000bad0",
            ORG
        ))
    );
}
