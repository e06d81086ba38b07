//! Typed models of Polar's license-key responses (docs/polar-api.md §4).
//!
//! Unknown fields, and the deprecated `user_id` / `user` fields, are accepted and ignored.
//! Timestamps accept RFC 3339 with or without fractional seconds.

use crate::key::Key;
use crate::metadata::Metadata;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Serde impls that read a struct from a JSON object only, for structs derived with
/// `#[serde(remote = "Self")]` (which makes derive's impls inherent functions): derive's
/// sequence form (a struct as a JSON array, which Polar never sends and nothing here writes) is
/// refused, as the core's schema table ([`crate::schema`]) refuses it. `map_only!(serialize: …)` also
/// forwards `Serialize` to derive's.
macro_rules! map_only {
    ($($t:ident),*) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($t)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<$t, A::Error> {
                        $t::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                d.deserialize_map(V)
            }
        }
    )*};
    (serialize: $($t:ident),*) => {
        map_only!($($t),*);
        $(
            impl serde::Serialize for $t {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    $t::serialize(self, s)
                }
            }
        )*
    };
}

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
#[serde(remote = "Self")]
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

/// The customer who owns a key (`LicenseKeyCustomer`, docs/polar-api.md §4.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
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

// Polar's nested objects are read as JSON objects only (what Polar sends and the cache holds),
// never in derive's array form: the same rule as the core's schema table (`crate::schema`).
map_only!(
    serialize: Address,
    LicenseKeyCustomer,
    LicenseKeyRead,
    LicenseKeyActivation,
    LicenseKeyMember,
    LicenseKeySubscription,
    LicenseKeyOrder
);

fn individual() -> CustomerType {
    CustomerType::Individual
}

/// The seat holder a key is assigned to (`member`, API version 2027-01 and later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[non_exhaustive]
pub struct LicenseKeyMember {
    /// Member id.
    pub id: String,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// The merchant's id for the member.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// The subscription a key was granted through (`subscription`, API version 2027-01 and
/// later). Its period end says when the customer's paid time ends; the grace policy never
/// extends past what it says (it does not read it at all: only Polar's verdicts grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[non_exhaustive]
pub struct LicenseKeySubscription {
    /// Subscription id.
    pub id: String,
    /// `active`, `trialing`, `past_due`, `canceled`, … (kept as Polar sent it).
    pub status: String,
    /// Start of the current billing period.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub current_period_start: Option<OffsetDateTime>,
    /// End of the current billing period.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub current_period_end: Option<OffsetDateTime>,
    /// The subscription ends at the period end (the customer cancelled).
    #[serde(default)]
    pub cancel_at_period_end: bool,
    /// When the subscription ends (or ended), if known.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
}

/// The order a key was granted through (`order`, API version 2027-01 and later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[non_exhaustive]
pub struct LicenseKeyOrder {
    /// Order id.
    pub id: String,
    /// When the order was made.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    /// `paid`, `pending`, `refunded`, `partially_refunded`, … (kept as Polar sent it).
    pub status: String,
    /// Whether the order is paid.
    #[serde(default)]
    pub paid: bool,
}

/// A license key as Polar returns it (`LicenseKeyRead`, docs/polar-api.md §4.1). Its `Debug`
/// redacts `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
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
    /// The seat holder's id (API version 2027-01 and later; `None` when Polar sent none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// The seat holder (2027-01 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<LicenseKeyMember>,
    /// The subscription's id (2027-01 and later, in validate's and activate's answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// The subscription the key was granted through (2027-01 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<LicenseKeySubscription>,
    /// The order's id (2027-01 and later, in validate's and activate's answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The order the key was granted through (2027-01 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<LicenseKeyOrder>,
}

impl LicenseKeyRead {
    /// Usages left before `limit_usage` (`None` when unlimited). Polar's validate answers 200
    /// even when usage is at or over the limit, so check this for metered features.
    pub fn remaining_usage(&self) -> Option<i64> {
        self.limit_usage
            .map(|limit| limit.saturating_sub(self.usage))
    }
}

/// An activation (`LicenseKeyActivationBase`, docs/polar-api.md §4.3). Polar never returns its
/// `conditions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
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

/// The answer to a successful validate (`ValidatedLicenseKey`, docs/polar-api.md §4.4).
///
/// On the wire the key's fields and `activation` are one flat object; it is read and written
/// through a flat wire struct (no `#[serde(flatten)]`, whose buffering costs the WebAssembly
/// build ~13 KB), with the same JSON either way.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedLicenseKey {
    /// The key's fields, after this validation's counters were applied.
    pub license_key: LicenseKeyRead,
    /// The activation, when an `activation_id` was sent.
    pub activation: Option<LicenseKeyActivation>,
}

/// The answer to a successful activate (`LicenseKeyActivationRead`, docs/polar-api.md §4.5): the
/// activation's fields and `license_key`, one flat object on the wire (read and written through a
/// flat wire struct).
#[derive(Debug, Clone, PartialEq)]
pub struct LicenseKeyActivationRead {
    /// The new activation.
    pub activation: LicenseKeyActivation,
    /// The key it belongs to.
    pub license_key: LicenseKeyRead,
}

/// Reads `T` from a JSON object only (as `#[serde(flatten)]` did: no array form), through
/// its flat wire struct `W`.
fn from_map<'de, D, W, T>(d: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    W: Deserialize<'de> + Into<T>,
{
    struct MapOnly<W, T>(&'static str, std::marker::PhantomData<(W, T)>);
    impl<'de, W: Deserialize<'de> + Into<T>, T> serde::de::Visitor<'de> for MapOnly<W, T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            W::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Into::into)
        }
    }
    d.deserialize_map(MapOnly::<W, T>(expecting, std::marker::PhantomData))
}

impl<'de> Deserialize<'de> for ValidatedLicenseKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_map::<D, wire::Validated, _>(d, "struct ValidatedLicenseKey")
    }
}

impl Serialize for ValidatedLicenseKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::ValidatedRef::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LicenseKeyActivationRead {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_map::<D, wire::ActivationRead, _>(d, "struct LicenseKeyActivationRead")
    }
}

impl Serialize for LicenseKeyActivationRead {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::ActivationReadRef::from(self).serialize(s)
    }
}

/// The flat wire forms of [`ValidatedLicenseKey`] and [`LicenseKeyActivationRead`]: the
/// fields of [`LicenseKeyRead`] (resp. [`LicenseKeyActivation`]) written out, with the same
/// attributes, in the same order.
mod wire {
    use super::*;

    /// `ValidatedLicenseKey` as read: every field of [`LicenseKeyRead`], then `activation`.
    #[derive(Deserialize)]
    pub struct Validated {
        id: String,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        #[serde(default, with = "time::serde::rfc3339::option")]
        modified_at: Option<OffsetDateTime>,
        organization_id: String,
        customer_id: String,
        customer: LicenseKeyCustomer,
        benefit_id: String,
        key: Key,
        display_key: String,
        status: LicenseKeyStatus,
        limit_activations: Option<i64>,
        usage: i64,
        limit_usage: Option<i64>,
        validations: i64,
        #[serde(default, with = "time::serde::rfc3339::option")]
        last_validated_at: Option<OffsetDateTime>,
        #[serde(default, with = "time::serde::rfc3339::option")]
        expires_at: Option<OffsetDateTime>,
        #[serde(default)]
        member_id: Option<String>,
        #[serde(default)]
        member: Option<LicenseKeyMember>,
        #[serde(default)]
        subscription_id: Option<String>,
        #[serde(default)]
        subscription: Option<LicenseKeySubscription>,
        #[serde(default)]
        order_id: Option<String>,
        #[serde(default)]
        order: Option<LicenseKeyOrder>,
        activation: Option<LicenseKeyActivation>,
    }

    impl From<Validated> for ValidatedLicenseKey {
        fn from(w: Validated) -> Self {
            ValidatedLicenseKey {
                license_key: LicenseKeyRead {
                    id: w.id,
                    created_at: w.created_at,
                    modified_at: w.modified_at,
                    organization_id: w.organization_id,
                    customer_id: w.customer_id,
                    customer: w.customer,
                    benefit_id: w.benefit_id,
                    key: w.key,
                    display_key: w.display_key,
                    status: w.status,
                    limit_activations: w.limit_activations,
                    usage: w.usage,
                    limit_usage: w.limit_usage,
                    validations: w.validations,
                    last_validated_at: w.last_validated_at,
                    expires_at: w.expires_at,
                    member_id: w.member_id,
                    member: w.member,
                    subscription_id: w.subscription_id,
                    subscription: w.subscription,
                    order_id: w.order_id,
                    order: w.order,
                },
                activation: w.activation,
            }
        }
    }

    /// `ValidatedLicenseKey` as written: every field of [`LicenseKeyRead`], then `activation`.
    #[derive(Serialize)]
    pub struct ValidatedRef<'a> {
        id: &'a str,
        #[serde(serialize_with = "rfc3339")]
        created_at: &'a OffsetDateTime,
        #[serde(serialize_with = "rfc3339_option")]
        modified_at: &'a Option<OffsetDateTime>,
        organization_id: &'a str,
        customer_id: &'a str,
        customer: &'a LicenseKeyCustomer,
        benefit_id: &'a str,
        key: &'a Key,
        display_key: &'a str,
        status: LicenseKeyStatus,
        limit_activations: Option<i64>,
        usage: i64,
        limit_usage: Option<i64>,
        validations: i64,
        #[serde(serialize_with = "rfc3339_option")]
        last_validated_at: &'a Option<OffsetDateTime>,
        #[serde(serialize_with = "rfc3339_option")]
        expires_at: &'a Option<OffsetDateTime>,
        #[serde(skip_serializing_if = "absent")]
        member_id: &'a Option<String>,
        #[serde(skip_serializing_if = "absent")]
        member: &'a Option<LicenseKeyMember>,
        #[serde(skip_serializing_if = "absent")]
        subscription_id: &'a Option<String>,
        #[serde(skip_serializing_if = "absent")]
        subscription: &'a Option<LicenseKeySubscription>,
        #[serde(skip_serializing_if = "absent")]
        order_id: &'a Option<String>,
        #[serde(skip_serializing_if = "absent")]
        order: &'a Option<LicenseKeyOrder>,
        activation: &'a Option<LicenseKeyActivation>,
    }

    impl<'a> From<&'a ValidatedLicenseKey> for ValidatedRef<'a> {
        fn from(v: &'a ValidatedLicenseKey) -> Self {
            let l = &v.license_key;
            ValidatedRef {
                id: &l.id,
                created_at: &l.created_at,
                modified_at: &l.modified_at,
                organization_id: &l.organization_id,
                customer_id: &l.customer_id,
                customer: &l.customer,
                benefit_id: &l.benefit_id,
                key: &l.key,
                display_key: &l.display_key,
                status: l.status,
                limit_activations: l.limit_activations,
                usage: l.usage,
                limit_usage: l.limit_usage,
                validations: l.validations,
                last_validated_at: &l.last_validated_at,
                expires_at: &l.expires_at,
                member_id: &l.member_id,
                member: &l.member,
                subscription_id: &l.subscription_id,
                subscription: &l.subscription,
                order_id: &l.order_id,
                order: &l.order,
                activation: &v.activation,
            }
        }
    }

    /// `LicenseKeyActivationRead` as read: every field of [`LicenseKeyActivation`], then
    /// `license_key`.
    #[derive(Deserialize)]
    pub struct ActivationRead {
        id: String,
        license_key_id: String,
        label: String,
        #[serde(default)]
        meta: Metadata,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        #[serde(default, with = "time::serde::rfc3339::option")]
        modified_at: Option<OffsetDateTime>,
        license_key: LicenseKeyRead,
    }

    impl From<ActivationRead> for LicenseKeyActivationRead {
        fn from(w: ActivationRead) -> Self {
            LicenseKeyActivationRead {
                activation: LicenseKeyActivation {
                    id: w.id,
                    license_key_id: w.license_key_id,
                    label: w.label,
                    meta: w.meta,
                    created_at: w.created_at,
                    modified_at: w.modified_at,
                },
                license_key: w.license_key,
            }
        }
    }

    /// `LicenseKeyActivationRead` as written: every field of [`LicenseKeyActivation`], then
    /// `license_key`.
    #[derive(Serialize)]
    pub struct ActivationReadRef<'a> {
        id: &'a str,
        license_key_id: &'a str,
        label: &'a str,
        meta: &'a Metadata,
        #[serde(serialize_with = "rfc3339")]
        created_at: &'a OffsetDateTime,
        #[serde(serialize_with = "rfc3339_option")]
        modified_at: &'a Option<OffsetDateTime>,
        license_key: &'a LicenseKeyRead,
    }

    impl<'a> From<&'a LicenseKeyActivationRead> for ActivationReadRef<'a> {
        fn from(v: &'a LicenseKeyActivationRead) -> Self {
            let a = &v.activation;
            ActivationReadRef {
                id: &a.id,
                license_key_id: &a.license_key_id,
                label: &a.label,
                meta: &a.meta,
                created_at: &a.created_at,
                modified_at: &a.modified_at,
                license_key: &v.license_key,
            }
        }
    }

    /// A 2027-01 field Polar did not send is not written either.
    fn absent<T>(v: &&Option<T>) -> bool {
        v.is_none()
    }

    fn rfc3339<S: serde::Serializer>(t: &&OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::serialize(t, s)
    }

    fn rfc3339_option<S: serde::Serializer>(
        t: &&Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::option::serialize(t, s)
    }
}
