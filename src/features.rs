//! Feature gating: "may this copy use feature X?", from a verdict and an entitlement map.
//!
//! On Polar a tier is a license-key benefit, so a key's `benefit_id` says what a customer
//! bought. An [`Entitlements`] map says which benefits grant which features (a feature can come
//! from several tiers; a tier grants several features). A feature may be *metered*: granted only
//! while the key's `usage` is below its `limit_usage` (when it has one).
//!
//! The answer comes from a verdict, so a cached verdict within the grace period answers exactly
//! as an online one, and a verdict that does not license never grants anything.

use crate::error::Error;
use crate::grace::{CheckOutcome, LicenseData, Source};
use crate::metadata::{check_no_nul, check_uuid_v4};
use crate::model::LicenseKeyRead;
use crate::reason::Reason;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Longest feature name, in characters.
pub const MAX_FEATURE_NAME_CHARS: usize = 64;

// The message spells the limit out (no `core::fmt`): keep them in step.
const _: () = assert!(MAX_FEATURE_NAME_CHARS == 64);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Feature {
    name: String,
    /// Canonical (lowercase) benefit ids, sorted, no duplicates.
    benefits: Vec<String>,
    metered: bool,
}

/// Which benefits grant which features. Every entry is checked when it is added.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entitlements {
    /// Sorted by name (a few entries: a sorted `Vec` is all the map this needs, and keeps the
    /// npm package's wasm free of a second `BTreeMap`).
    features: Vec<Feature>,
}

/// The JSON form of one entry: a list of benefit ids, or `{"benefits": [...], "metered": true}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum EntryJson {
    Benefits(Vec<String>),
    Full {
        benefits: Vec<String>,
        #[serde(default)]
        metered: bool,
    },
}

impl Entitlements {
    /// An empty map (every feature is unknown).
    pub fn new() -> Entitlements {
        Entitlements::default()
    }

    /// Adds `feature`, granted by any of `benefit_ids` (UUID v4s, at least one).
    pub fn grant<I, S>(self, feature: &str, benefit_ids: I) -> Result<Entitlements, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.add(feature, benefit_ids, false)
    }

    /// Adds a metered `feature`: granted by any of `benefit_ids` while the key's usage is below
    /// its `limit_usage` (always, when the key has no limit).
    pub fn grant_metered<I, S>(self, feature: &str, benefit_ids: I) -> Result<Entitlements, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.add(feature, benefit_ids, true)
    }

    fn add<I, S>(mut self, feature: &str, benefit_ids: I, metered: bool) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let field = ["entitlements.", feature].concat();
        let chars = feature.chars().count();
        if chars == 0 || chars > MAX_FEATURE_NAME_CHARS {
            return Err(Error::invalid(
                field,
                "feature names must have 1-64 characters",
            ));
        }
        if feature.trim() != feature {
            return Err(Error::invalid(
                field,
                "feature names must not start or end with spaces",
            ));
        }
        check_no_nul(&field, feature)?;
        let at = match self.position(feature) {
            Ok(_) => return Err(Error::invalid(field, "feature listed twice")),
            Err(at) => at,
        };
        let mut benefits = Vec::new();
        for id in benefit_ids {
            let id = id.as_ref();
            let canonical = check_uuid_v4(&field, id).map_err(|_| {
                Error::invalid(
                    field.clone(),
                    ["benefit id `", id, "` is not a UUID v4"].concat(),
                )
            })?;
            if let Err(i) = benefits.binary_search(&canonical) {
                benefits.insert(i, canonical);
            }
        }
        if benefits.is_empty() {
            return Err(Error::invalid(field, "needs at least one benefit id"));
        }
        let name = feature.to_string();
        self.features.insert(
            at,
            Feature {
                name,
                benefits,
                metered,
            },
        );
        Ok(self)
    }

    /// Where `feature` is in the sorted list (`Err`: where it would go).
    fn position(&self, feature: &str) -> Result<usize, usize> {
        self.features
            .binary_search_by(|f| f.name.as_str().cmp(feature))
    }

    /// Reads a map from JSON: `{"pro_export": ["<benefit uuid>", ...],
    /// "api_calls": {"benefits": ["<benefit uuid>"], "metered": true}}`.
    pub fn from_json(text: &str) -> Result<Entitlements, Error> {
        let entries: BTreeMap<String, EntryJson> = serde_json::from_str(text).map_err(|e| {
            Error::invalid(
                "entitlements",
                format!("expected {{\"feature\": [\"benefit uuid\", ...]}}: {e}"),
            )
        })?;
        entries
            .into_iter()
            .try_fold(Entitlements::new(), |map, (name, entry)| match entry {
                EntryJson::Benefits(ids) => map.grant(&name, ids),
                EntryJson::Full { benefits, metered } => map.add(&name, benefits, metered),
            })
    }

    /// The feature names, sorted.
    pub fn features(&self) -> impl Iterator<Item = &str> {
        self.features.iter().map(|f| f.name.as_str())
    }

    /// Whether `feature` is granted by a license Polar accepted.
    pub fn check_license(&self, feature: &str, license: &LicenseKeyRead) -> FeatureAccess {
        self.check_benefit(feature, &license.benefit_id, license.remaining_usage())
    }

    /// Whether `feature` is granted to a key of `benefit_id` with `remaining` usages left
    /// (`None`: no limit). The one rule behind every face's answer.
    fn check_benefit(
        &self,
        feature: &str,
        benefit_id: &str,
        remaining: Option<i64>,
    ) -> FeatureAccess {
        let Some(rule) = self
            .position(feature)
            .ok()
            .and_then(|i| self.features.get(i))
        else {
            return FeatureAccess::no(feature, FeatureWhy::UnknownFeature, None);
        };
        let benefit = benefit_id.to_ascii_lowercase();
        if rule.benefits.binary_search(&benefit).is_err() {
            return FeatureAccess::no(feature, FeatureWhy::NotGrantedByBenefit, None);
        }
        if rule.metered && remaining.is_some_and(|left| left <= 0) {
            return FeatureAccess {
                remaining_usage: remaining,
                ..FeatureAccess::no(feature, FeatureWhy::UsageExhausted, None)
            };
        }
        FeatureAccess {
            feature: feature.to_string(),
            granted: true,
            why: FeatureWhy::Granted,
            license_reason: None,
            remaining_usage: if rule.metered { remaining } else { None },
            source: None,
        }
    }

    /// Whether `feature` is granted by a check's verdict: a licensed verdict (online, or from
    /// the cache within the grace period) is looked at; anything else grants nothing.
    pub fn check<L: LicenseData>(&self, feature: &str, verdict: &CheckOutcome<L>) -> FeatureAccess {
        match verdict {
            CheckOutcome::Licensed {
                license, source, ..
            } => FeatureAccess {
                source: Some(*source),
                ..self.check_benefit(feature, license.benefit_id(), license.remaining_usage())
            },
            CheckOutcome::Denied(d) => {
                FeatureAccess::no(feature, FeatureWhy::LicenseNotValid, Some(d.reason))
            }
            CheckOutcome::Unverified(e) => {
                FeatureAccess::no(feature, FeatureWhy::LicenseNotValid, Some(e.reason()))
            }
        }
    }
}

/// Why a feature is, or is not, granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureWhy {
    /// The key's benefit grants it (and, if metered, usages are left).
    Granted,
    /// The license itself is not valid (see [`FeatureAccess::license_reason`]).
    LicenseNotValid,
    /// The key's benefit is not one that grants this feature.
    NotGrantedByBenefit,
    /// The feature is not in the entitlement map.
    UnknownFeature,
    /// A metered feature whose key has no usages left.
    UsageExhausted,
}

impl FeatureWhy {
    /// The stable snake_case code: `granted`, `license_not_valid`, `not_granted_by_benefit`,
    /// `unknown_feature`, `usage_exhausted`.
    pub const fn code(self) -> &'static str {
        match self {
            FeatureWhy::Granted => "granted",
            FeatureWhy::LicenseNotValid => "license_not_valid",
            FeatureWhy::NotGrantedByBenefit => "not_granted_by_benefit",
            FeatureWhy::UnknownFeature => "unknown_feature",
            FeatureWhy::UsageExhausted => "usage_exhausted",
        }
    }
}

/// The answer to "may this copy use feature X?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureAccess {
    /// The feature asked about.
    pub feature: String,
    /// `true` only when granted.
    pub granted: bool,
    /// Why.
    pub why: FeatureWhy,
    /// When the license itself is not valid: its reason code.
    pub license_reason: Option<Reason>,
    /// For a metered feature on a key with a usage limit: usages left (may be 0 or negative).
    pub remaining_usage: Option<i64>,
    /// Where the licensed verdict came from (online or the cache), when there was one.
    pub source: Option<Source>,
}

impl FeatureAccess {
    fn no(feature: &str, why: FeatureWhy, license_reason: Option<Reason>) -> FeatureAccess {
        FeatureAccess {
            feature: feature.to_string(),
            granted: false,
            why,
            license_reason,
            remaining_usage: None,
            source: None,
        }
    }
}
