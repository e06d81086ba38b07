//! The default label of an activation (issue #64 item 6): the machine's host name and its
//! operating system, e.g. `jane-laptop (Linux)`, so that a customer reading the key's device
//! list can tell the dead laptop from the desktop. Never a secret: the host name is what the
//! machine tells its network anyway; the machine id (the fingerprint's source) is never used.

/// The longest default label, in characters (Polar has no limit; a device list stays legible).
pub const MAX_DEFAULT_LABEL_CHARS: usize = 64;

/// The operating system's name as people write it.
pub fn os_name() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "macOS",
        "windows" => "Windows",
        "freebsd" => "FreeBSD",
        "openbsd" => "OpenBSD",
        "netbsd" => "NetBSD",
        "android" => "Android",
        "ios" => "iOS",
        other => other,
    }
}

/// The label made of a host name (if any) and an OS name: `host (OS)`, or the OS name alone
/// when the host name is missing or empty. Control characters are dropped, whitespace runs
/// become one space, and the host name is cut so the label stays within
/// [`MAX_DEFAULT_LABEL_CHARS`].
pub fn label_from(host: Option<&str>, os: &str) -> String {
    let host = host
        .map(|h| {
            h.split(|c: char| c.is_whitespace() || c.is_control())
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|h| !h.is_empty());
    match host {
        None => os.to_string(),
        Some(host) => {
            let room = MAX_DEFAULT_LABEL_CHARS.saturating_sub(os.chars().count() + 3);
            let host: String = host.chars().take(room).collect();
            [host.trim_end(), " (", os, ")"].concat()
        }
    }
}

/// This machine's default activation label: its host name and OS (see [`label_from`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn default_device_label() -> String {
    label_from(host_name().as_deref(), os_name())
}

/// The label an activation carries when the app may give none: `label` when the app gave one,
/// else (`None`, or an empty label: a text field left empty, C's
/// `polar_license_request_set_label(request, "")`) this machine's default
/// ([`default_device_label`]). The one rule for a face whose app says "no label" that way.
#[cfg(not(target_arch = "wasm32"))]
pub fn label_or_default(label: Option<&str>) -> String {
    match label {
        Some(label) if !label.is_empty() => label.to_string(),
        _ => default_device_label(),
    }
}

/// The machine's host name, where it is read without running anything unusual: the kernel's
/// on Linux, the computer name people gave it on macOS (`scutil`, at its absolute path), the
/// `COMPUTERNAME` on Windows, else `HOSTNAME`.
#[cfg(not(target_arch = "wasm32"))]
fn host_name() -> Option<String> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let found = if cfg!(any(target_os = "linux", target_os = "android")) {
        read("/proc/sys/kernel/hostname").or_else(|| read("/etc/hostname"))
    } else if cfg!(target_os = "macos") {
        std::process::Command::new("/usr/sbin/scutil")
            .args(["--get", "ComputerName"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
    } else if cfg!(windows) {
        std::env::var("COMPUTERNAME").ok()
    } else {
        None
    };
    found
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn host_and_os_tell_machines_apart() {
        assert_eq!(
            label_from(Some("jane-laptop\n"), "Linux"),
            "jane-laptop (Linux)"
        );
        assert_ne!(
            label_from(Some("jane-laptop"), "Linux"),
            label_from(Some("build-box"), "Linux")
        );
        assert_eq!(
            label_from(Some("Jane's  MacBook\tPro"), "macOS"),
            "Jane's MacBook Pro (macOS)"
        );
        assert_eq!(label_from(None, "Windows"), "Windows");
        assert_eq!(label_from(Some(" \u{7}\n"), "Linux"), "Linux");
        let long = "x".repeat(500);
        let label = label_from(Some(&long), "Linux");
        assert_eq!(label.chars().count(), MAX_DEFAULT_LABEL_CHARS);
        assert!(label.ends_with(" (Linux)"), "{label}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine_has_its_host_name_in_the_label() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        let label = default_device_label();
        assert_eq!(label, label_from(Some(kernel.trim()), "Linux"));
        assert!(label.ends_with("(Linux)"), "{label}");
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn no_label_or_an_empty_one_is_the_default_label() {
        assert_eq!(label_or_default(None), default_device_label());
        assert_eq!(label_or_default(Some("")), default_device_label());
        assert_eq!(label_or_default(Some("desk")), "desk");
        assert_eq!(
            label_or_default(Some(" ")),
            " ",
            "a label of spaces is the app's"
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_request_for_this_machine_carries_the_default_label() {
        let req = crate::proto::ActivateRequest::for_this_machine("KEY");
        assert_eq!(req.label, default_device_label());
        assert!(!req.label.is_empty());
        assert!(!req.label.contains("KEY"), "{}", req.label);
    }
}
