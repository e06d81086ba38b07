//! The API version of each webhook delivery (issue #78). Polar sends an endpoint's payloads in
//! the endpoint's own API version, fixed when the seller created it (`WebhookEndpointCreate.
//! api_version`, Polar PR #14141; each event records it, PR #14145): an endpoint made before
//! October 2026 sends `2026-04` payloads, and `2026-04` is removed at Polar's January 2027
//! release. What Polar then does to such an endpoint is not documented, so the relay says so
//! before the day: the version each verified delivery came with is counted (`/healthz`'s
//! `webhooks.payload_versions`, `/metrics`' `webhook_payload_versions_total`), and one due for
//! removal turns `/healthz` to `"status": "warning"` with the fix in `webhooks.version_warning`,
//! logged once per version.
//!
//! The readers of a delivery (the store's narrowing, the lifecycle, the roster, the
//! entitlements) read only fields every supported version carries (`type`, `data.id`,
//! `data.customer_id`, `data.benefit_id`, `data.properties`, `data.previous_properties`,
//! `data.benefit`): a version adds or removes optional fields, which they ignore. The
//! relay's suite delivers each version's payload to prove it.
//!
//! Where the version is read: the body's top-level `api_version` (every webhook payload of
//! Polar's TypeScript SDK 1.0.1 is `{type, timestamp, api_version, data}`, and the emulator
//! sends it so), else a `polar-version` header, else the delivery is
//! counted as `unstated` (a Polar release or an endpoint before #14141). Only the verified
//! deliveries are counted, and a value that is not `YYYY-MM` counts as `other`, so no sender
//! can grow the labels.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::locked::locked;
use crate::types::RelayRequest;

/// The payload versions this relay was built to read (Polar's deprecated, current and next
/// versions of late 2026).
pub const PAYLOAD_VERSIONS: &[&str] = &["2026-04", "2026-10", "2027-01"];

/// The versions Polar has announced it removes at its next quarterly release (`2026-04`, at
/// the January 2027 release): an endpoint on one of them must be moved to a current version.
pub const DUE_FOR_REMOVAL: &[&str] = &["2026-04"];

/// A delivery that names no version.
const UNSTATED: &str = "unstated";
/// A delivery whose version is not `YYYY-MM`.
const OTHER: &str = "other";
/// The most distinct versions counted (the rest count as `other`).
const MOST_VERSIONS: usize = 16;

/// The versions the verified deliveries came with, since the relay started.
#[derive(Debug, Default)]
pub(crate) struct PayloadVersions {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Deliveries by version.
    counts: BTreeMap<String, u64>,
    /// The version of the last delivery.
    last: Option<String>,
}

/// A version as Polar writes one: `YYYY-MM`.
fn well_formed(version: &str) -> bool {
    let bytes = version.as_bytes();
    bytes.len() == 7
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
}

/// The API version a delivery came with: the body's `api_version`, else its `polar-version`
/// header, else `unstated`; `other` for what is not a version.
pub(crate) fn of_delivery(req: &RelayRequest) -> String {
    #[derive(serde::Deserialize)]
    struct Versioned {
        api_version: Option<String>,
    }
    let stated = serde_json::from_slice::<Versioned>(&req.body)
        .ok()
        .and_then(|v| v.api_version)
        .or_else(|| req.header("polar-version").map(str::to_string));
    match stated {
        None => UNSTATED.to_string(),
        Some(v) if well_formed(&v) => v,
        Some(_) => OTHER.to_string(),
    }
}

/// What a delivery of `version` asks of the seller, if anything.
pub(crate) fn warning_of(version: &str) -> Option<String> {
    if DUE_FOR_REMOVAL.contains(&version) {
        return Some(format!(
            "Polar's webhook endpoint sends API version {version} payloads, and Polar removes \
             {version} at its next quarterly release: in Polar's dashboard (Settings, Webhooks) \
             move the endpoint to version {} (or make a new endpoint with it, then delete this \
             one)",
            PAYLOAD_VERSIONS
                .last()
                .copied()
                .unwrap_or("the current one")
        ));
    }
    if well_formed(version) && !PAYLOAD_VERSIONS.contains(&version) {
        return Some(format!(
            "Polar's webhook endpoint sends API version {version} payloads, which this relay was \
             not built for (it reads {}): they are read as the latest it knows; upgrade the \
             relay",
            PAYLOAD_VERSIONS.join(", ")
        ));
    }
    None
}

impl PayloadVersions {
    /// Counts a verified delivery of `version`; logs the warning the first time a version
    /// that asks something of the seller comes.
    pub(crate) fn delivered(&self, version: String) {
        let mut seen = locked(&self.seen);
        let known = PAYLOAD_VERSIONS.contains(&version.as_str())
            || DUE_FOR_REMOVAL.contains(&version.as_str());
        let version =
            if known || seen.counts.contains_key(&version) || seen.counts.len() < MOST_VERSIONS {
                version
            } else {
                OTHER.to_string()
            };
        let count = seen.counts.entry(version.clone()).or_default();
        *count += 1;
        if *count == 1 {
            if let Some(warning) = warning_of(&version) {
                log::warn!("relay: {warning}");
            }
        }
        seen.last = Some(version);
    }

    /// Deliveries by version, and the last one's.
    pub(crate) fn reading(&self) -> (BTreeMap<String, u64>, Option<String>) {
        let seen = locked(&self.seen);
        (seen.counts.clone(), seen.last.clone())
    }

    /// The warning for the last delivery's version (the endpoint's version now: a seller who
    /// moved the endpoint sees the warning go with the next delivery).
    pub(crate) fn warning(&self) -> Option<String> {
        locked(&self.seen).last.as_deref().and_then(warning_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(body: &str, headers: &[(&str, &str)]) -> RelayRequest {
        RelayRequest {
            method: "POST".into(),
            path: crate::types::WEBHOOK_ROUTE.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            client_ip: "127.0.0.1".into(),
        }
    }

    #[test]
    fn the_version_is_the_bodys_else_the_headers_else_unstated() {
        let body = r#"{"type":"benefit_grant.updated","api_version":"2026-04","data":{}}"#;
        assert_eq!(of_delivery(&delivery(body, &[])), "2026-04");
        assert_eq!(
            of_delivery(&delivery(body, &[("Polar-Version", "2027-01")])),
            "2026-04"
        );
        let bare = r#"{"type":"benefit_grant.updated","data":{}}"#;
        assert_eq!(
            of_delivery(&delivery(bare, &[("Polar-Version", "2027-01")])),
            "2027-01"
        );
        assert_eq!(of_delivery(&delivery(bare, &[])), "unstated");
        let odd = r#"{"api_version":"2026-04\"}{","data":{}}"#;
        assert_eq!(of_delivery(&delivery(odd, &[])), "other");
    }

    #[test]
    fn only_a_version_due_for_removal_or_unknown_warns_and_labels_stay_bounded() {
        assert!(warning_of("2026-04").is_some_and(|w| w.contains("2027-01")));
        assert_eq!(warning_of("2026-10"), None);
        assert_eq!(warning_of("2027-01"), None);
        assert_eq!(warning_of("unstated"), None);
        assert!(warning_of("2027-04").is_some_and(|w| w.contains("upgrade")));
        let v = PayloadVersions::default();
        for year in 3000..3100 {
            v.delivered(format!("{year}-01"));
        }
        let (counts, last) = v.reading();
        assert_eq!(counts.len(), MOST_VERSIONS + 1, "{counts:?}");
        assert_eq!(last.as_deref(), Some("other"));
        assert_eq!(v.warning(), None);
        v.delivered("2026-04".into());
        assert!(v.warning().is_some());
        v.delivered("2026-10".into());
        assert_eq!(v.warning(), None, "the endpoint moved");
    }
}
