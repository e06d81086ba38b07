//! A machine fingerprint for binding activations to one machine.
//!
//! The OS machine id (Linux `/etc/machine-id`, macOS `IOPlatformUUID`, Windows `MachineGuid`)
//! is hashed with the organization id, so the raw id never leaves the machine and two sellers
//! see unrelated fingerprints for the same machine.

use sha2::{Digest, Sha256};

/// The condition name the fingerprint is sent under.
pub const MACHINE_CONDITION: &str = "machine_fingerprint";

/// Hashes a raw machine id with the organization: 32 lowercase hex characters.
pub fn fingerprint_from(machine_id: &str, organization_id: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"polar-license machine v1\0");
    hash.update(organization_id.as_bytes());
    hash.update(b"\0");
    hash.update(machine_id.trim().as_bytes());
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// This machine's fingerprint for `organization_id`, or `None` when the OS offers no
/// machine id (then activations are not machine-bound).
#[cfg(not(target_arch = "wasm32"))]
pub fn machine_fingerprint(organization_id: &str) -> Option<String> {
    os_machine_id().map(|id| fingerprint_from(&id, organization_id))
}

#[cfg(not(target_arch = "wasm32"))]
fn os_machine_id() -> Option<String> {
    let usable = |s: String| {
        let s = s.trim().to_string();
        (!s.is_empty()).then_some(s)
    };
    if cfg!(target_os = "linux") || cfg!(target_os = "freebsd") {
        for path in ["/etc/machine-id", "/var/lib/dbus/machine-id", "/etc/hostid"] {
            if let Some(id) = std::fs::read_to_string(path).ok().and_then(usable) {
                return Some(id);
            }
        }
        return None;
    }
    if cfg!(target_os = "macos") {
        let out = std::process::Command::new("ioreg")
            .args(["-rd1", "-c", "IOPlatformExpertDevice"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains("IOPlatformUUID"))?;
        return line.split('"').nth(3).map(str::to_string).and_then(usable);
    }
    if cfg!(windows) {
        let out = std::process::Command::new("reg")
            .args([
                "query",
                r"HKLM\SOFTWARE\Microsoft\Cryptography",
                "/v",
                "MachineGuid",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().find(|l| l.contains("MachineGuid"))?;
        return line
            .split_whitespace()
            .last()
            .map(str::to_string)
            .and_then(usable);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
