//! The license key's, its activations' and its customer's JSON bodies as the routes show them
//! (docs/polar-api.md §4): a child of `state`, reading its records as they are.

use time::OffsetDateTime;

use super::{Activation, KeyRec};
use crate::json::{obj, opt_i, opt_s, s, J};
use crate::util::{fmt_ts, sha256_hex};

/// Domains whose customers get a Gravatar (others get a logo.dev company logo).
const PERSONAL_EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "outlook.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "yahoo.co.uk",
    "ymail.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "protonmail.com",
    "proton.me",
    "pm.me",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
    "126.com",
    "zoho.com",
    "fastmail.com",
    "hey.com",
    "tutanota.com",
];

fn avatar_url(email: Option<&str>) -> Option<String> {
    let email = email?;
    let domain = email.rsplit('@').next()?.to_ascii_lowercase();
    if domain.is_empty() {
        return None;
    }
    if PERSONAL_EMAIL_DOMAINS.contains(&domain.as_str()) {
        let hash = sha256_hex(email.to_lowercase().as_bytes());
        Some(format!("https://www.gravatar.com/avatar/{hash}?d=404"))
    } else {
        Some(format!(
            "https://img.logo.dev/{domain}?size=64&retina=true&token=pk_emulator&fallback=404"
        ))
    }
}

fn public_name(email: Option<&str>) -> String {
    email
        .and_then(|e| e.chars().next())
        .map(|c| c.to_string())
        .unwrap_or_else(|| "?".to_string())
}

pub(super) fn render_customer(k: &KeyRec) -> J {
    let c = &k.customer;
    let email = c.email.as_deref();
    obj(vec![
        ("id", s(&c.id.to_string())),
        ("created_at", s(&fmt_ts(c.created_at))),
        ("modified_at", J::Null),
        ("metadata", J::Obj(Vec::new())),
        ("external_id", opt_s(c.external_id.as_deref())),
        ("email", opt_s(email)),
        ("email_verified", J::Bool(true)),
        ("type", s("individual")),
        ("name", J::Null),
        ("billing_name", J::Null),
        ("billing_address", J::Null),
        ("tax_id", J::Null),
        ("locale", J::Null),
        ("organization_id", s(&k.organization_id.to_string())),
        ("default_payment_method_id", J::Null),
        ("deleted_at", J::Null),
        ("first_user_event_at", J::Null),
        ("avatar_url", opt_s(avatar_url(email).as_deref())),
    ])
}

pub(super) fn display_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(6)..].iter().collect();
    format!("****-{tail}")
}

/// An id and its object, or two nulls.
fn pair(v: &Option<(String, J)>) -> (J, J) {
    match v {
        Some((id, j)) => (s(id), j.clone()),
        None => (J::Null, J::Null),
    }
}

/// The fields of `LicenseKeyRead` (docs/polar-api.md §4.1); with `extended` (API version 2027-01
/// and later), those of `ValidatedLicenseKey` / `GrantedLicenseKey` besides: `member_id`/`member`
/// after `customer`, `subscription_id`/`subscription`/`order_id`/`order` after `expires_at` (the
/// order of the 2027-01 OpenAPI's properties; the server's own order is not in the snapshot).
pub(super) fn render_key_fields(
    k: &KeyRec,
    modified_at: Option<OffsetDateTime>,
    extended: bool,
) -> Vec<(String, J)> {
    let customer_id = k.customer.id.to_string();
    let email = k.customer.email.as_deref();
    let mut items = vec![
        ("id", s(&k.id.to_string())),
        ("created_at", s(&fmt_ts(k.created_at))),
        ("modified_at", opt_s(modified_at.map(fmt_ts).as_deref())),
        ("organization_id", s(&k.organization_id.to_string())),
        ("user_id", s(&customer_id)),
        ("customer_id", s(&customer_id)),
        (
            "user",
            obj(vec![
                ("id", s(&customer_id)),
                ("email", opt_s(email)),
                ("public_name", J::Str(public_name(email))),
                ("avatar_url", opt_s(avatar_url(email).as_deref())),
            ]),
        ),
        ("customer", render_customer(k)),
    ];
    if extended {
        let (member_id, member) = pair(&k.member);
        items.push(("member_id", member_id));
        items.push(("member", member));
    }
    items.extend([
        ("benefit_id", s(&k.benefit_id.to_string())),
        ("key", s(&k.key)),
        ("display_key", J::Str(display_key(&k.key))),
        ("status", s(k.status.as_str())),
        ("limit_activations", opt_i(k.limit_activations)),
        ("usage", J::Int(i128::from(k.usage))),
        ("limit_usage", opt_i(k.limit_usage)),
        ("validations", J::Int(i128::from(k.validations))),
        (
            "last_validated_at",
            opt_s(k.last_validated_at.map(fmt_ts).as_deref()),
        ),
        ("expires_at", opt_s(k.expires_at.map(fmt_ts).as_deref())),
    ]);
    if extended {
        let (subscription_id, subscription) = pair(&k.subscription);
        let (order_id, order) = pair(&k.order);
        items.push(("subscription_id", subscription_id));
        items.push(("subscription", subscription));
        items.push(("order_id", order_id));
        items.push(("order", order));
    }
    items
        .into_iter()
        .map(|(name, v)| (name.to_string(), v))
        .collect()
}

/// `LicenseKeyRead` as `GET /v1/license-keys` serves it: 2027-01 adds `member_id` and `member`
/// only (after `customer`; docs/polar-api.md §13).
pub(super) fn render_read(k: &KeyRec, extended: bool) -> Vec<(String, J)> {
    let mut fields = render_key_fields(k, k.modified_at, false);
    if extended {
        let (member_id, member) = pair(&k.member);
        let at = fields
            .iter()
            .position(|(name, _)| name == "customer")
            .map_or(fields.len(), |i| i + 1);
        fields.insert(at, ("member".to_string(), member));
        fields.insert(at, ("member_id".to_string(), member_id));
    }
    fields
}

/// `LicenseKeyRead`, as the admin routes show it.
pub(super) fn render_key(k: &KeyRec) -> J {
    J::Obj(render_key_fields(k, k.modified_at, false))
}

/// `LicenseKeyActivationBase` (no conditions).
pub(super) fn render_activation(a: &Activation) -> J {
    obj(vec![
        ("id", s(&a.id.to_string())),
        ("license_key_id", s(&a.license_key_id.to_string())),
        ("label", s(&a.label)),
        ("meta", J::Obj(a.meta.clone())),
        ("created_at", s(&fmt_ts(a.created_at))),
        ("modified_at", opt_s(a.modified_at.map(fmt_ts).as_deref())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_key_is_last_six() {
        assert_eq!(
            display_key("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415"),
            "****-6ED415"
        );
        assert_eq!(display_key("ABC"), "****-ABC");
    }

    #[test]
    fn gravatar_for_personal_mail() {
        assert_eq!(
            avatar_url(Some("jane.doe@gmail.com")).as_deref(),
            Some("https://www.gravatar.com/avatar/831f6494ad6be4fcb3a724c3d5fef22d3ceffa3c62ef3a7984e45a0ea177f982?d=404")
        );
        assert!(avatar_url(Some("a@acme.io"))
            .is_some_and(|u| u.starts_with("https://img.logo.dev/acme.io?")));
        assert_eq!(avatar_url(None), None);
    }
}
