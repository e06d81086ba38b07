//! Polar's quarterly version rotation at run time (issue #78): the control route
//! `GET|POST /__emulator/api-versions` moves the served versions, the current one and the
//! versions due for removal while the emulator runs, so a test can rehearse the day a version
//! goes (`2026-04` removed, `2027-01` current) between two calls, as `--api-versions` and
//! `--api-version` set them at start. And what each request said of itself
//! (`GET /__emulator/requests/seen`: its method, path, `User-Agent` and `Polar-Version`), so a
//! test can check that every face names itself and pins no version due for removal.
//!
//! A version left out of the served ones answers the bare `404 {"detail":"Not Found"}` on every
//! route, as a removed one does at Polar (docs/polar-api.md §13): the pipeline reads
//! [`crate::Options::api_versions`] on each request, which this changes.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::admin::admin_body;
use super::{Core, Head, Resp};

/// The versions Polar has announced it removes at its next quarterly release (docs/polar-api.md
/// §17: `2026-04` goes at the January 2027 release). A face that sends one of these as its
/// `Polar-Version` stops working that day; the emulator lists them so that a test can check
/// the faces' requests against them.
pub const DUE_FOR_REMOVAL: &[&str] = &["2026-04"];

/// How many requests [`Core::seen_requests`] keeps (the most recent ones).
const SEEN_KEPT: usize = 1_000;

/// The versions served now, as `GET /__emulator/api-versions` answers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiVersions {
    /// The versions served: any other answers a bare 404 on every route.
    pub served: Vec<String>,
    /// The version of a request that sends no `Polar-Version` (Polar's current one).
    pub current: String,
    /// The versions announced for removal (a test checks no face sends one).
    pub due_for_removal: Vec<String>,
}

/// A change of [`ApiVersions`] (`POST /__emulator/api-versions`): each field given replaces
/// the one in force; the current version must be among the served ones after the change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiVersionsChange {
    /// The new served versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<Vec<String>>,
    /// The new current version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// The new list of versions due for removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_for_removal: Option<Vec<String>>,
}

/// What one request to one of Polar's routes said of itself (the control routes are not
/// kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenRequest {
    /// Its method.
    pub method: String,
    /// Its path, without the query.
    pub path: String,
    /// Its `User-Agent` header, when it sent one.
    pub user_agent: Option<String>,
    /// Its `Polar-Version` header, when it sent one.
    pub polar_version: Option<String>,
}

/// The rotation's state beside [`crate::Options`]: the versions due for removal and the
/// requests seen.
#[derive(Debug, Clone)]
pub(crate) struct Rotation {
    due_for_removal: Vec<String>,
    seen: VecDeque<SeenRequest>,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            due_for_removal: DUE_FOR_REMOVAL.iter().map(|v| v.to_string()).collect(),
            seen: VecDeque::new(),
        }
    }
}

impl Rotation {
    /// Keeps what a request to one of Polar's routes said of itself.
    pub(crate) fn saw(&mut self, head: &Head, path: &str) {
        if self.seen.len() >= SEEN_KEPT {
            self.seen.pop_front();
        }
        self.seen.push_back(SeenRequest {
            method: head.method.clone(),
            path: path.to_string(),
            user_agent: head.get("user-agent").map(str::to_string),
            polar_version: head.get("polar-version").map(str::to_string),
        });
    }

    /// Forgets the requests seen (with `POST /__emulator/requests/reset`).
    pub(crate) fn forget(&mut self) {
        self.seen.clear();
    }
}

/// A version as Polar's middleware accepts one: `YYYY-MM`.
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

impl Core {
    /// The versions served now, the current one and those due for removal.
    pub fn api_versions(&self) -> ApiVersions {
        ApiVersions {
            served: self.options.api_versions.clone(),
            current: self.options.api_version.clone(),
            due_for_removal: self.rotation.due_for_removal.clone(),
        }
    }

    /// Rotates the versions while the emulator runs, as Polar does at a quarterly release:
    /// a version no longer served answers a bare 404 on every route from the next request on,
    /// and a request without `Polar-Version` gets the new current one. Refused (nothing
    /// changed) when a version is not `YYYY-MM`, none would be served, or the current one
    /// would not be among them.
    pub fn set_api_versions(&mut self, change: &ApiVersionsChange) -> Result<ApiVersions, String> {
        let served = change
            .served
            .clone()
            .unwrap_or_else(|| self.options.api_versions.clone());
        let current = change
            .current
            .clone()
            .unwrap_or_else(|| self.options.api_version.clone());
        let due = change
            .due_for_removal
            .clone()
            .unwrap_or_else(|| self.rotation.due_for_removal.clone());
        if let Some(bad) = served
            .iter()
            .chain(due.iter())
            .chain(std::iter::once(&current))
            .find(|v| !well_formed(v))
        {
            return Err(format!("{bad:?} is not a version (YYYY-MM)"));
        }
        if served.is_empty() {
            return Err("at least one version must be served".to_string());
        }
        if !served.contains(&current) {
            return Err(format!(
                "the current version {current} is not among the served ones ({})",
                served.join(", ")
            ));
        }
        self.options.api_versions = served;
        self.options.api_version = current;
        self.rotation.due_for_removal = due;
        Ok(self.api_versions())
    }

    /// What the most recent requests to Polar's routes (up to 1,000, oldest first) said of
    /// themselves: method, path, `User-Agent`, `Polar-Version`.
    pub fn seen_requests(&self) -> Vec<SeenRequest> {
        self.rotation.seen.iter().cloned().collect()
    }

    /// `GET /__emulator/api-versions`, `GET /__emulator/requests/seen`: `None` for any other
    /// control route.
    pub(super) fn rotation_get(&self, sub: &str) -> Option<Resp> {
        let text = match sub {
            "/api-versions" => serde_json::to_string(&self.api_versions()),
            "/requests/seen" => serde_json::to_string(&self.seen_requests()),
            _ => return None,
        };
        Some(match text {
            Ok(text) => Resp::json_text(200, &text),
            Err(_) => Resp::internal_error(),
        })
    }

    /// `POST /__emulator/api-versions`: an [`ApiVersionsChange`]; 200 with the versions in
    /// force, or 400 saying why nothing changed.
    pub(super) fn rotation_post(&mut self, raw: &[u8]) -> Result<Resp, Resp> {
        let change: ApiVersionsChange = admin_body(raw, "api versions")?;
        Ok(match self.set_api_versions(&change) {
            Ok(now) => match serde_json::to_string(&now) {
                Ok(text) => Resp::json_text(200, &text),
                Err(_) => Resp::internal_error(),
            },
            Err(e) => Resp::detail(400, &e),
        })
    }
}
