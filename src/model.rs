//! Typed models of Polar's license-key responses (polar-license-api.md §4).
//!
//! Unknown fields, and the deprecated `user_id` / `user` fields, are accepted and ignored.
//! Timestamps accept RFC 3339 with or without fractional seconds.

use crate::key::Key;
use crate::metadata::Metadata;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `granted`, `revoked` or `disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseKeyStatus {
    /// The key is live.
    Granted,
    /// The benefit was revoked (subscription ended, refund…).
    Revoked,
    /// The merchant disabled the key.
    Disabled,
}

impl LicenseKeyStatus {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LicenseKeyStatus::Granted => "granted",
            LicenseKeyStatus::Revoked => "revoked",
            LicenseKeyStatus::Disabled => "disabled",
        }
    }
}

/// `individual` or `team`; anything newer is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerType {
    /// A person.
    Individual,
    /// A team.
    Team,
    /// A type this version does not know.
    #[serde(other)]
    Other,
}

/// A billing address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street line 1.
    #[serde(default)]
    pub line1: Option<String>,
    /// Street line 2.
    #[serde(default)]
    pub line2: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// State or region.
    #[serde(default)]
    pub state: Option<String>,
    /// ISO country code.
    pub country: String,
}

/// The customer who owns a key (`LicenseKeyCustomer`, §4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseKeyCustomer {
    /// Customer id.
    pub id: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub modified_at: Option<OffsetDateTime>,
    /// The merchant's metadata on the customer.
    #[serde(default)]
    pub metadata: Metadata,
    /// The merchant's id for the customer.
    #[serde(default)]
    pub external_id: Option<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the e-mail is verified.
    #[serde(default)]
    pub email_verified: bool,
    /// `individual` or `team`.
    #[serde(rename = "type", default = "individual")]
    pub customer_type: CustomerType,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Billing name.
    #[serde(default)]
    pub billing_name: Option<String>,
    /// Billing address.
    #[serde(default)]
    pub billing_address: Option<Address>,
    /// Tax id as `[value, format]`.
    #[serde(default)]
    pub tax_id: Option<(String, String)>,
    /// Locale.
    #[serde(default)]
    pub locale: Option<String>,
    /// The seller organization.
    pub organization_id: String,
    /// Default payment method.
    #[serde(default)]
    pub default_payment_method_id: Option<String>,
    /// Deletion time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    /// First usage event.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_user_event_at: Option<OffsetDateTime>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
}

fn individual() -> CustomerType {
    CustomerType::Individual
}

/// A license key as Polar returns it (`LicenseKeyRead`, §4.1). Its `Debug` redacts `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseKeyRead {
    /// License key record id.
    pub id: String,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub modified_at: Option<OffsetDateTime>,
    /// The seller organization.
    pub organization_id: String,
    /// The customer's id.
    pub customer_id: String,
    /// The customer.
    pub customer: LicenseKeyCustomer,
    /// The license-key benefit (the "tier").
    pub benefit_id: String,
    /// The full key.
    pub key: Key,
    /// `****-` and the last 6 characters of the key.
    pub display_key: String,
    /// `granted`, `revoked` or `disabled`.
    pub status: LicenseKeyStatus,
    /// Activation slots; `None` means activations are not supported.
    pub limit_activations: Option<i64>,
    /// Usage counter.
    pub usage: i64,
    /// Usage limit; `None` means unlimited.
    pub limit_usage: Option<i64>,
    /// Successful validations so far.
    pub validations: i64,
    /// Last successful validation.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_validated_at: Option<OffsetDateTime>,
    /// Expiry; `None` means none.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl LicenseKeyRead {
    /// Usages left before `limit_usage` (`None` when unlimited). Polar's validate answers 200
    /// even when usage is at or over the limit, so check this for metered features.
    pub fn remaining_usage(&self) -> Option<i64> {
        self.limit_usage.map(|limit| limit - self.usage)
    }
}

/// An activation (`LicenseKeyActivationBase`, §4.3). Polar never returns its `conditions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseKeyActivation {
    /// Activation id: store it and send it with every validate.
    pub id: String,
    /// The license key record it belongs to.
    pub license_key_id: String,
    /// The label given at activation.
    pub label: String,
    /// The meta given at activation.
    #[serde(default)]
    pub meta: Metadata,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub modified_at: Option<OffsetDateTime>,
}

/// The answer to a successful validate (`ValidatedLicenseKey`, §4.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidatedLicenseKey {
    /// The key's fields, after this validation's counters were applied.
    #[serde(flatten)]
    pub license_key: LicenseKeyRead,
    /// The activation, when an `activation_id` was sent.
    pub activation: Option<LicenseKeyActivation>,
}

/// The answer to a successful activate (`LicenseKeyActivationRead`, §4.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseKeyActivationRead {
    /// The new activation.
    #[serde(flatten)]
    pub activation: LicenseKeyActivation,
    /// The key it belongs to.
    pub license_key: LicenseKeyRead,
}
