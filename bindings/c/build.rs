//! Gives the shared library the name programs record when they link it, the way cargo-c
//! (what rustls-ffi uses) does, so an app built against it can be shipped with the library
//! beside it instead of remembering its build path.
//!
//! The name is the installed one (`bindings/c/install.sh` installs `libpolar_license_c.so` as
//! `libpolar_license.so.X.Y.Z` with the links `libpolar_license.so.<sover>` and
//! `libpolar_license.so`), with cargo-c's version suffix: `0.0.Z` for a 0.0 release, `0.Y` for
//! another 0.x (each 0.x minor may break the ABI), else the major alone.
//!
//! * ELF (Linux, the BSDs, illumos, Haiku): `-soname libpolar_license.so.<sover>`; Android:
//!   `libpolar_license.so`, unversioned, as Android loads libraries by that name.
//! * macOS and iOS: the install name `@rpath/libpolar_license.<sover>.dylib` (cargo-c writes
//!   the install directory's absolute path there; `@rpath` keeps the library relocatable, as a
//!   program's rpath finds it), with current and compatibility versions.
//! * Windows: nothing; a DLL is found by its file name (`polar_license_c.dll`), which its
//!   import library records.
//!
//! Only the cdylib gets these arguments (`cargo:rustc-cdylib-link-arg`): the static library
//! and the crate's tests are linked as before.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let version = |part: &str| env::var(format!("CARGO_PKG_VERSION_{part}")).unwrap_or_default();
    let (major, minor, patch) = (version("MAJOR"), version("MINOR"), version("PATCH"));
    let sover = match (major.as_str(), minor.as_str()) {
        ("0", "0") => format!("0.0.{patch}"),
        ("0", _) => format!("0.{minor}"),
        _ => major.clone(),
    };
    let name = "polar_license";
    match os.as_str() {
        "linux" | "freebsd" | "dragonfly" | "netbsd" | "openbsd" | "illumos" | "haiku" => {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,lib{name}.so.{sover}");
        }
        "android" => println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,lib{name}.so"),
        // The compatibility version in three parts (`0.1.0` for sover `0.1`): Apple's ld reads
        // `0.1` and `0.1.0` as one version, but Zig's linker (the release's macOS builds off a
        // Mac, scripts/release.sh) refuses a two-part one ("unable to parse
        // -compatibility_version "0.1": InvalidVersion").
        "macos" | "ios" | "tvos" | "watchos" | "visionos" => {
            let parts = sover.split('.').count();
            let compat = [sover.as_str(), ".0", ".0"][..4 - parts.min(3)].concat();
            println!(
                "cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/lib{name}.{sover}.dylib,\
                 -current_version,{major}.{minor}.{patch},-compatibility_version,{compat}"
            )
        }
        _ => {}
    }
}
