//! A machine fingerprint for binding activations to one machine.
//!
//! The OS machine id (Linux `/etc/machine-id`, macOS `IOPlatformUUID`, Windows `MachineGuid`)
//! is hashed with the organization id, so the raw id never leaves the machine and two sellers
//! see unrelated fingerprints for the same machine.

use sha2::{Digest, Sha256};

/// The condition name the fingerprint is sent under.
pub const MACHINE_CONDITION: &str = "machine_fingerprint";

/// The `meta` name the same fingerprint is recorded under on each activation (issue #80):
/// Polar compares `conditions` but never lists them, while its listings of a key's
/// activations return `meta`, so a reinstall at the activation limit can find the activation
/// this machine already holds and adopt it instead of taking another. The value is the
/// per-organization salted hash [`fingerprint_from`] makes, never the machine id itself.
pub const MACHINE_META: &str = "machine";

/// The `meta` name of the activation's platform family ([`platform`]): what tells one
/// device from another in a device list, and identifies no one.
pub const PLATFORM_META: &str = "platform";

/// This build's platform family, `os/arch` as Rust names them (`linux/x86_64`,
/// `macos/aarch64`, `windows/x86_64`): `None` in WebAssembly, whose host the face names
/// itself (a browser's or Node's platform is not the build's).
pub fn platform() -> Option<String> {
    if cfg!(target_arch = "wasm32") {
        return None;
    }
    Some([std::env::consts::OS, "/", std::env::consts::ARCH].concat())
}

/// Hashes a raw machine id with the organization: 32 lowercase hex characters.
pub fn fingerprint_from(machine_id: &str, organization_id: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"polar-license machine v1\0");
    hash.update(organization_id.as_bytes());
    hash.update(b"\0");
    hash.update(machine_id.trim().as_bytes());
    crate::hex::hex(&hash.finalize()[..16])
}

/// This machine's fingerprint for `organization_id`: `Ok(None)` when the OS has no machine id
/// at all (then activations are not machine-bound), and an error (`cache_error`, with its own
/// message) when it has one that could not be read this time: a fingerprint that silently
/// changes would make the cache untrusted and take a new activation slot.
#[cfg(not(target_arch = "wasm32"))]
pub fn machine_fingerprint(organization_id: &str) -> Result<Option<String>, crate::error::Error> {
    os_machine_id()
        .map(|id| id.map(|id| fingerprint_from(&id, organization_id)))
        .map_err(|why| crate::error::Error::Cache {
            detail: format!(
                "this machine's id could not be read ({why}); activations and the cache are \
                 bound to it"
            ),
        })
}

#[cfg(not(target_arch = "wasm32"))]
fn usable(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The OS machine id: `Ok(None)` when the OS has none, `Err(why)` when it could not be read.
/// (A `Licensing` reads it once, when it first needs it.)
#[cfg(not(target_arch = "wasm32"))]
fn os_machine_id() -> Result<Option<String>, String> {
    read_os_machine_id()
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn read_os_machine_id() -> Result<Option<String>, String> {
    for path in ["/etc/machine-id", "/var/lib/dbus/machine-id", "/etc/hostid"] {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                if let Some(id) = usable(&text) {
                    return Ok(Some(id));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{path}: {e}")),
        }
    }
    Ok(None)
}

/// `IOPlatformUUID`, from `ioreg` at its absolute path (never one found through `PATH`).
#[cfg(target_os = "macos")]
fn read_os_machine_id() -> Result<Option<String>, String> {
    const IOREG: &str = "/usr/sbin/ioreg";
    let out = std::process::Command::new(IOREG)
        .args(["-rd1", "-c", "IOPlatformExpertDevice"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{IOREG}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{IOREG} failed ({})", out.status));
    }
    ioreg_platform_uuid(&String::from_utf8_lossy(&out.stdout))
        .map(Some)
        .ok_or_else(|| format!("{IOREG} printed no IOPlatformUUID"))
}

/// The `IOPlatformUUID` of `ioreg -rd1 -c IOPlatformExpertDevice`'s output: the value of the
/// line `"IOPlatformUUID" = "…"` (compiled everywhere for its tests: macOS code that Linux can
/// run).
#[cfg(any(target_os = "macos", all(test, not(target_arch = "wasm32"))))]
fn ioreg_platform_uuid(text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.trim_start().starts_with("\"IOPlatformUUID\""))
        .and_then(|line| line.split('"').nth(3))
        .and_then(usable)
}

/// `HKLM\SOFTWARE\Microsoft\Cryptography\MachineGuid` through the registry API, in the
/// 64-bit view also from a 32-bit process (the WOW64 view has no such value): no program is
/// spawned, so no console window flashes and no `reg.exe` beside the app can set it. Every
/// Windows install has one, so a missing value is an error too, never "unbound".
#[cfg(windows)]
fn read_os_machine_id() -> Result<Option<String>, String> {
    use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_QUERY_VALUE, KEY_WOW64_64KEY};
    const KEY: &str = r"SOFTWARE\Microsoft\Cryptography";
    let key = winreg::RegKey::predef(HKEY_LOCAL_MACHINE)
        .open_subkey_with_flags(KEY, KEY_QUERY_VALUE | KEY_WOW64_64KEY)
        .map_err(|e| format!("HKLM\\{KEY}: {e}"))?;
    let guid: String = key
        .get_value("MachineGuid")
        .map_err(|e| format!("HKLM\\{KEY}\\MachineGuid: {e}"))?;
    usable(&guid)
        .map(Some)
        .ok_or_else(|| format!("HKLM\\{KEY}\\MachineGuid is empty"))
}

/// Other systems have no machine id we read: activations are not machine-bound there.
#[cfg(not(any(
    target_arch = "wasm32",
    target_os = "linux",
    target_os = "freebsd",
    target_os = "macos",
    windows
)))]
fn read_os_machine_id() -> Result<Option<String>, String> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ioreg -rd1 -c IOPlatformExpertDevice` in the form an Apple-silicon MacBook Pro prints
    /// it (written from that format, not captured on a Mac here: ids and serials made up).
    #[cfg(not(target_arch = "wasm32"))]
    const IOREG_ARM: &str = r##"+-o J316sAP  <class IOPlatformExpertDevice, id 0x100000227, registered, matched, active, busy 0 (236 ms), retain 38>
  {
    "IOPolledInterface" = "AppleARMWatchdogTimerHibernateHandler is not serializable"
    "#address-cells" = <02000000>
    "AAPL,phandle" = <01000000>
    "IOBusyInterest" = "IOCommand is not serializable"
    "target-type" = <"J316s">
    "name" = <"device-tree">
    "manufacturer" = <"Apple Inc.">
    "compatible" = <"J316sAP","MacBookPro18,1","AppleARM">
    "IOPlatformSerialNumber" = "C02XX0XXXX00"
    "model" = <"MacBookPro18,1">
    "IOPlatformUUID" = "8A1E3C5F-1B2D-4E6F-9A8B-7C6D5E4F3A2B"
    "IOConsoleSecurityInterest" = "IOCommand is not serializable"
  }
"##;

    /// The same in an Intel Mac's form: other keys around it, deeper indentation, the same line.
    #[cfg(not(target_arch = "wasm32"))]
    const IOREG_INTEL: &str = r##"+-o MacBookPro16,1  <class IOPlatformExpertDevice, id 0x10000020f, registered, matched, active, busy 0 (130 ms), retain 35>
    {
      "IOPlatformSystemSleepPolicy" = <534c505402000a00640000006400000000000000000000000000000000000000>
      "compatible" = <"MacBookPro16,1">
      "version" = <"1.0">
      "board-id" = <"Mac-E1008331FDC96864">
      "IOInterruptSpecifiers" = (<0900000005000000>)
      "platform-feature" = <0200000000000000>
      "IOPlatformUUID" = "1F2E3D4C-5B6A-4978-8695-A4B3C2D1E0F9"
      "serial-number" = <00000000000000000000000000000000000000000000000000000000000000000000>
      "IOPlatformSerialNumber" = "C02XX1XXXX11"
    }
"##;

    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn ioreg_output_gives_the_platform_uuid() {
        assert_eq!(
            ioreg_platform_uuid(IOREG_ARM).as_deref(),
            Some("8A1E3C5F-1B2D-4E6F-9A8B-7C6D5E4F3A2B")
        );
        assert_eq!(
            ioreg_platform_uuid(IOREG_INTEL).as_deref(),
            Some("1F2E3D4C-5B6A-4978-8695-A4B3C2D1E0F9")
        );
        // No IOPlatformUUID line (a VM, a sandbox that hides it), an empty value, or the key only
        // inside another value: no id, never another field's value.
        let without = IOREG_ARM.replace(
            "\"IOPlatformUUID\" = \"8A1E3C5F-1B2D-4E6F-9A8B-7C6D5E4F3A2B\"\n",
            "",
        );
        assert_eq!(ioreg_platform_uuid(&without), None);
        let empty = IOREG_ARM.replace("8A1E3C5F-1B2D-4E6F-9A8B-7C6D5E4F3A2B", "");
        assert_eq!(ioreg_platform_uuid(&empty), None);
        let inside = "    \"IOPolledInterface\" = \"says IOPlatformUUID here\"\n";
        assert_eq!(ioreg_platform_uuid(inside), None);
        assert_eq!(ioreg_platform_uuid(""), None);
    }

    #[test]
    fn fingerprint_is_stable_hashed_and_per_organization() {
        let a = fingerprint_from("0123456789abcdef0123456789abcdef\n", "org-a");
        assert_eq!(
            a,
            fingerprint_from("0123456789abcdef0123456789abcdef", "org-a")
        );
        assert_ne!(
            a,
            fingerprint_from("0123456789abcdef0123456789abcdef", "org-b")
        );
        assert_eq!(a.len(), 32);
        assert!(!a.contains("0123456789abcdef"));
    }
}
