//! The values and balances a relay signs into a lease (issue #68): a key's Feature Flag values
//! and its customer's meter balances as Polar gave them, and how the claims carry them.

#[cfg(feature = "entitlements")]
use serde::{Deserialize, Serialize};

/// An entitlement's value, typed as Polar's metadata values are (a string, an integer, a
/// float or a boolean): a Feature Flag benefit's `metadata` value (issue #68).
pub type EntitlementValue = crate::metadata::MetaValue;

/// The values and balances a relay signed into a lease (issue #68,
/// docs/entitlements.md): the key's Feature Flag values by name, and its customer's meter
/// balances (credited − consumed units, as Polar computes them) by meter name.
#[derive(Debug, Clone, Default)]
pub struct EntitlementClaims {
    /// The Feature Flag values granted with the key's purchase, by metadata key.
    pub values: std::collections::BTreeMap<String, EntitlementValue>,
    /// The customer's meter balances, by meter name.
    pub balances: std::collections::BTreeMap<String, f64>,
}

/// Floats compared by their bits, so that equality is an equivalence (`Eq`, as the claims).
fn same_float(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

impl PartialEq for EntitlementClaims {
    fn eq(&self, other: &EntitlementClaims) -> bool {
        use crate::metadata::MetaValue as V;
        let value = |a: &V, b: &V| match (a, b) {
            (V::Float(x), V::Float(y)) => same_float(*x, *y),
            (a, b) => a == b,
        };
        self.values.len() == other.values.len()
            && self.balances.len() == other.balances.len()
            && self
                .values
                .iter()
                .zip(&other.values)
                .all(|((ka, a), (kb, b))| ka == kb && value(a, b))
            && self
                .balances
                .iter()
                .zip(&other.balances)
                .all(|((ka, a), (kb, b))| ka == kb && same_float(*a, *b))
    }
}

impl Eq for EntitlementClaims {}

impl EntitlementClaims {
    /// The value of the entitlement `name`, when the key is granted one.
    pub fn value(&self, name: &str) -> Option<&EntitlementValue> {
        self.values.get(name)
    }

    /// The customer's balance of the meter named `meter`, when Polar has one.
    pub fn balance(&self, meter: &str) -> Option<f64> {
        self.balances.get(meter).copied()
    }
}

/// [`EntitlementClaims`] as the token writes them (`ent`).
#[cfg(feature = "entitlements")]
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WireEntitlements {
    pub(super) values: std::collections::BTreeMap<String, EntitlementValue>,
    pub(super) balances: std::collections::BTreeMap<String, f64>,
}

#[cfg(feature = "entitlements")]
impl From<EntitlementClaims> for WireEntitlements {
    fn from(e: EntitlementClaims) -> WireEntitlements {
        WireEntitlements {
            values: e.values,
            balances: e.balances,
        }
    }
}

#[cfg(feature = "entitlements")]
/// The `ent` member: an object of `values` (metadata values) and `balances` (numbers), no
/// other member, every balance finite.
pub(super) fn read_entitlements(v: &crate::strict::Value) -> Option<EntitlementClaims> {
    use crate::json::JsonIn;
    let known = v
        .members()?
        .iter()
        .all(|(k, _)| k == "values" || k == "balances");
    if !known {
        return None;
    }
    let values = crate::json::read_metadata(&v.member("values")?)?;
    let mut balances = std::collections::BTreeMap::new();
    for (name, n) in v.member("balances")?.members()? {
        let units = match n.number()? {
            crate::json::Num::Int(i) => i as f64,
            crate::json::Num::Float(f) => f,
        };
        if !units.is_finite() {
            return None;
        }
        balances.insert(name, units);
    }
    Some(EntitlementClaims { values, balances })
}

/// The `ent` member's `values` as JSON text (the `entitlement-text` feature: the npm engine's,
/// whose host reads it with `JSON.parse`): the same rules as the `entitlements` feature's (only
/// `values` and `balances`, each value a metadata value, each balance a finite number), the
/// values written in name order as [`crate::json::JsonOut::meta`] writes them, the balances
/// checked and left out (the check's answer exposes values only). No typed map is built: the
/// signature covers the whole token, so the text is as trusted as the typed claim.
#[cfg(feature = "entitlement-text")]
pub(super) fn entitlement_text(v: &crate::strict::Value) -> Option<String> {
    use crate::json::JsonIn;
    let mut values = None;
    let mut balances = false;
    for (k, member) in v.members()? {
        match k.as_str() {
            "values" => values = Some(member),
            "balances" => {
                for (_, n) in member.members()? {
                    let finite = match n.number()? {
                        crate::json::Num::Int(_) => true,
                        crate::json::Num::Float(f) => f.is_finite(),
                    };
                    if !finite {
                        return None;
                    }
                }
                balances = true;
            }
            _ => return None,
        }
    }
    if !balances {
        return None;
    }
    let mut j = crate::json::JsonOut::new();
    j.raw("{");
    for (name, value) in values?.members()? {
        j.key(&name)
            .meta_value(&crate::json::read_meta_value(&value)?);
    }
    Some(j.raw("}").done())
}
