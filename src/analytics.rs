//! Install analytics, opt-in (issue #80), sans-IO: the daily ping an app that turned it on
//! sends to the seller's relay, which ingests at most one event per install per day into the
//! seller's own Polar (the relay's `crate::analytics` in `polar-license-relay`; the meters that
//! count active installs and version adoption: docs/guides/analytics.md).
//!
//! Off by default: with it off a client sends nothing. What a ping holds, and nothing else
//! (Polar's events cannot be deleted, so nothing personal goes in):
//!
//! | field | what | example |
//! |---|---|---|
//! | `install` | this install's id hashed with the organization ([`install_id`]): two sellers see unrelated ids, and the id is not the machine's fingerprint | `3f9c…` (32 hex) |
//! | `app_version` | the version the app says it is | `1.4.0` |
//! | `os` | the OS family (`std::env::consts::OS`) | `linux` |
//! | `arch` | the CPU architecture (`std::env::consts::ARCH`) | `x86_64` |
//! | `face` | which of the library's faces the app uses | `rust` |
//!
//! No key, activation, label, host name, address or user name is in it, and the relay refuses
//! a ping with any other field or a value that is not a short token.

use crate::error::Error;
use crate::portal::PortalRequest;
use sha2::{Digest, Sha256};

/// The relay's route for the ping (the relay's `ANALYTICS_ROUTE`).
pub const ANALYTICS_PATH: &str = "/v1/analytics/install";

/// The most bytes of a field's value.
const MAX_FIELD_BYTES: usize = 40;

/// This install's id for `organization_id`: the install's own secret (random, made once per
/// install and kept in its store) hashed with the organization, 32 lowercase hex characters.
/// A domain of its own (`polar-license install v1`), so it never equals the machine
/// fingerprint an activation carries, and a reinstall is a new install.
pub fn install_id(install_secret: &[u8], organization_id: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"polar-license install v1\0");
    hash.update(organization_id.trim().to_ascii_lowercase().as_bytes());
    hash.update(b"\0");
    hash.update(install_secret);
    crate::cache::hex(&hash.finalize()[..16])
}

/// One install's daily ping (the table above).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPing {
    /// [`install_id`].
    pub install: String,
    /// The app's version.
    pub app_version: String,
    /// The OS family.
    pub os: String,
    /// The CPU architecture.
    pub arch: String,
    /// The face (`rust`, `cli`, `c`, `npm`, `python`, `tauri`).
    pub face: String,
}

impl InstallPing {
    /// The ping of this machine's OS and architecture.
    pub fn here(install: String, app_version: &str, face: &str) -> InstallPing {
        InstallPing {
            install,
            app_version: app_version.to_string(),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            face: face.to_string(),
        }
    }

    /// The `POST` of this ping for `organization_id` to the seller's relay at `relay_url`
    /// (`https://`, or `http://` on loopback only, as a base URL is checked). A field that is
    /// not 1 to 40 characters of `[A-Za-z0-9._+-]` is refused here, unsent (`invalid_input`
    /// naming it): the relay would refuse it too.
    pub fn request(&self, organization_id: &str, relay_url: &str) -> Result<PortalRequest, Error> {
        let organization_id = crate::metadata::check_uuid_v4("organization_id", organization_id)?;
        let base = crate::portal::relay_base(relay_url)?;
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if self.install.len() != 32 || !self.install.bytes().all(hex) {
            return Err(Error::invalid(
                "install",
                "must be 32 lowercase hex characters",
            ));
        }
        for (field, value) in [
            ("app_version", &self.app_version),
            ("os", &self.os),
            ("arch", &self.arch),
            ("face", &self.face),
        ] {
            let token = !value.is_empty()
                && value.len() <= MAX_FIELD_BYTES
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
            if !token {
                return Err(Error::invalid(
                    field,
                    "must be 1 to 40 characters of A-Z, a-z, 0-9, '.', '_', '+' or '-'",
                ));
            }
        }
        let body = serde_json::json!({
            "organization_id": organization_id,
            "install": self.install,
            "app_version": self.app_version,
            "os": self.os,
            "arch": self.arch,
            "face": self.face,
        });
        Ok(crate::portal::json_post(
            [base.as_str(), ANALYTICS_PATH].concat(),
            body.to_string().into_bytes(),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";

    #[test]
    fn the_install_id_is_salted_per_organization_and_not_the_fingerprint() {
        let secret = [7u8; 32];
        let a = install_id(&secret, ORG);
        let b = install_id(&secret, "11111111-2222-4333-8444-555555555555");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b, "two sellers see unrelated ids");
        assert_eq!(a, install_id(&secret, &ORG.to_ascii_uppercase()));
        assert_ne!(a, crate::fingerprint::fingerprint_from("07070707", ORG));
        assert_ne!(a, install_id(&[8u8; 32], ORG), "another install");
    }

    #[test]
    fn the_ping_holds_the_table_s_fields_and_nothing_else() {
        let ping = InstallPing::here(install_id(b"s", ORG), "1.4.0", "rust");
        let req = ping
            .request(ORG, "http://127.0.0.1:8080/")
            .expect("a request");
        assert_eq!(req.url, "http://127.0.0.1:8080/v1/analytics/install");
        let body: serde_json::Value = serde_json::from_slice(&req.body).expect("json");
        let mut fields: Vec<&str> = body
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "app_version",
                "arch",
                "face",
                "install",
                "organization_id",
                "os"
            ]
        );
        let bad = InstallPing {
            app_version: "jane@example.com".into(),
            ..ping.clone()
        };
        assert_eq!(
            bad.request(ORG, "http://127.0.0.1:8080")
                .map_err(|e| e.field().map(str::to_string)),
            Err(Some("app_version".to_string()))
        );
        assert!(
            ping.request(ORG, "http://relay.example.com").is_err(),
            "http off loopback"
        );
    }
}
