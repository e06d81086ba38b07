//! The emulator's state as a file (`--state FILE`): the keys as they stand now (status,
//! limits, usage, validations, rotations, customers) and every activation, so a restart keeps
//! them. One JSON object, `{"format": FORMAT, "keys": […], "activations": […], "benefits": […]}`
//! (each key with the `grants` of its purchase's other benefits); the access tokens and the
//! organization stay the seed's. A file without `benefits` (or a key without `grants`, as
//! written before they existed) keeps the seed's.

use super::{Activation, BenefitRec, Customer, FlagGrant, KeyRec, Status, Store};
use crate::json::{loads, obj, opt_i, opt_s, s, LoadError, J};
use crate::util::{fmt_ts, parse_ts, parse_uuid4};
use time::OffsetDateTime;
use uuid::Uuid;

/// The format's name and version, the file's first field.
pub(crate) const FORMAT: &str = "polar-license-emulator-state/1";

fn ts(t: OffsetDateTime) -> J {
    s(&fmt_ts(t))
}

fn opt_ts(t: Option<OffsetDateTime>) -> J {
    t.map_or(J::Null, ts)
}

fn pairs(p: &[(String, J)]) -> J {
    J::Obj(p.to_vec())
}

fn extra(e: &Option<(String, J)>) -> J {
    match e {
        Some((id, j)) => obj(vec![("id", s(id)), ("object", j.clone())]),
        None => J::Null,
    }
}

impl Store {
    /// The state file's text.
    pub(crate) fn state_text(&self) -> String {
        let keys = self.keys.iter().map(key_json).collect();
        let activations = self.activations.iter().map(activation_json).collect();
        let benefits = self.benefits.iter().map(benefit_json).collect();
        #[allow(unused_mut)]
        let mut doc = vec![
            ("format", s(FORMAT)),
            ("keys", J::Arr(keys)),
            ("activations", J::Arr(activations)),
            ("benefits", J::Arr(benefits)),
        ];
        #[cfg(feature = "billing")]
        doc.push(("usage", super::meters::file::write(&self.usage)));
        let doc = obj(doc);
        // A float of the state (a flag's value) came from JSON: a non-finite one cannot occur.
        doc.to_json().unwrap_or_default()
    }

    /// Takes the keys and activations of a state file's `text` in place of the seed's; the
    /// store is unchanged when the file cannot be read whole.
    pub(crate) fn restore_text(&mut self, text: &str) -> Result<(), String> {
        let doc = loads(text).map_err(|e| match e {
            LoadError::Decode { msg, pos } => format!("not JSON ({msg} at character {pos})"),
            LoadError::Other => "not JSON".to_string(),
        })?;
        let format = field(&doc, "format").and_then(as_str);
        if format != Some(FORMAT) {
            return Err(format!(
                "not an emulator state file (its \"format\" is not \"{FORMAT}\")"
            ));
        }
        let mut keys = array(&doc, "keys")?
            .iter()
            .enumerate()
            .map(|(i, k)| read_key(k).map_err(|e| format!("keys[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut benefits = self.benefits.clone();
        if let Some(J::Arr(list)) = field(&doc, "benefits") {
            for (i, b) in list.iter().enumerate() {
                let b = read_benefit(b).map_err(|e| format!("benefits[{i}]: {e}"))?;
                match benefits.iter_mut().find(|seen| seen.id == b.id) {
                    Some(seen) => *seen = b,
                    None => benefits.push(b),
                }
            }
        } else if field(&doc, "benefits").is_some() {
            return Err("\"benefits\" is not a list".to_string());
        }
        for (i, (k, grants)) in keys.iter_mut().enumerate() {
            match grants.take() {
                Some(grants) => {
                    for g in &grants {
                        if !benefits.iter().any(|b| b.id == g.benefit_id) {
                            return Err(format!(
                                "keys[{i}]: the benefit {} of a grant is not in the file or the seed",
                                g.benefit_id
                            ));
                        }
                    }
                    k.grants = grants;
                }
                // Written before grants were kept: the seed's, for the same key.
                None => {
                    k.grants = self
                        .keys
                        .iter()
                        .find(|seed| seed.id == k.id)
                        .map_or_else(Vec::new, |seed| seed.grants.clone());
                }
            }
        }
        let keys: Vec<KeyRec> = keys.into_iter().map(|(k, _)| k).collect();
        let activations = array(&doc, "activations")?
            .iter()
            .enumerate()
            .map(|(i, a)| read_activation(a).map_err(|e| format!("activations[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, a) in activations.iter().enumerate() {
            if !keys.iter().any(|k| k.id == a.license_key_id) {
                return Err(format!(
                    "activations[{i}]: its license key is not in the file"
                ));
            }
        }
        // A file without `usage` (written before meters, or without them) keeps the seed's.
        #[cfg(feature = "billing")]
        let usage = match field(&doc, "usage") {
            None => None,
            Some(u) => {
                Some(super::meters::file::read(u, &self.usage).map_err(|e| format!("usage: {e}"))?)
            }
        };
        self.keys = keys;
        self.activations = activations;
        self.benefits = benefits;
        #[cfg(feature = "billing")]
        if let Some(usage) = usage {
            self.usage = usage;
        }
        Ok(())
    }
}

fn key_json(k: &KeyRec) -> J {
    obj(vec![
        ("id", s(&k.id.to_string())),
        ("organization_id", s(&k.organization_id.to_string())),
        ("key", s(&k.key)),
        ("status", s(k.status.as_str())),
        ("limit_activations", opt_i(k.limit_activations)),
        ("limit_usage", opt_i(k.limit_usage)),
        ("usage", J::Int(i128::from(k.usage))),
        ("validations", J::Int(i128::from(k.validations))),
        ("last_validated_at", opt_ts(k.last_validated_at)),
        ("expires_at", opt_ts(k.expires_at)),
        ("created_at", ts(k.created_at)),
        ("modified_at", opt_ts(k.modified_at)),
        ("benefit_id", s(&k.benefit_id.to_string())),
        (
            "customer",
            obj(vec![
                ("id", s(&k.customer.id.to_string())),
                ("email", opt_s(k.customer.email.as_deref())),
                ("external_id", opt_s(k.customer.external_id.as_deref())),
                ("created_at", ts(k.customer.created_at)),
            ]),
        ),
        ("member", extra(&k.member)),
        ("subscription", extra(&k.subscription)),
        ("order", extra(&k.order)),
        ("grants", J::Arr(k.grants.iter().map(grant_json).collect())),
    ])
}

fn grant_json(g: &FlagGrant) -> J {
    obj(vec![
        ("benefit_id", s(&g.benefit_id.to_string())),
        ("created_at", ts(g.created_at)),
        ("modified_at", opt_ts(g.modified_at)),
        ("granted_at", opt_ts(g.granted_at)),
        ("revoked_at", opt_ts(g.revoked_at)),
    ])
}

fn benefit_json(b: &BenefitRec) -> J {
    obj(vec![
        ("id", s(&b.id.to_string())),
        ("organization_id", s(&b.organization_id.to_string())),
        ("type", s(&b.kind)),
        ("description", s(&b.description)),
        ("metadata", pairs(&b.metadata)),
        ("created_at", ts(b.created_at)),
        ("modified_at", opt_ts(b.modified_at)),
        (
            "properties",
            b.credit
                .as_ref()
                .map_or(J::Null, super::entitlements::MeterCredit::render),
        ),
        ("enable_customer_admin", J::Bool(b.enable_customer_admin)),
    ])
}

fn read_grant(g: &J) -> Result<FlagGrant, String> {
    Ok(FlagGrant {
        benefit_id: uuid(g, "benefit_id")?,
        created_at: time(g, "created_at")?,
        modified_at: opt_time(g, "modified_at")?,
        granted_at: opt_time(g, "granted_at")?,
        revoked_at: opt_time(g, "revoked_at")?,
    })
}

fn read_benefit(b: &J) -> Result<BenefitRec, String> {
    let kind = text(b, "type")?;
    if !crate::seed::BENEFIT_TYPES.contains(&kind) {
        return Err(format!("unknown benefit type `{kind}`"));
    }
    let metadata = object_pairs(b, "metadata")?;
    // The seed's rules hold in the file too.
    let as_map = J::Obj(metadata.clone()).to_value();
    if let serde_json::Value::Object(map) = as_map {
        crate::seed::check_metadata(&map, "the benefit")?;
    }
    Ok(BenefitRec {
        id: uuid(b, "id")?,
        organization_id: uuid(b, "organization_id")?,
        kind: kind.to_string(),
        description: text(b, "description")?.to_string(),
        metadata,
        created_at: time(b, "created_at")?,
        modified_at: opt_time(b, "modified_at")?,
        credit: match field(b, "properties") {
            None | Some(J::Null) => None,
            Some(p) => Some(super::entitlements::MeterCredit {
                meter_id: uuid(p, "meter_id")?,
                units: int(p, "units")?,
                rollover: matches!(field(p, "rollover"), Some(J::Bool(true))),
            }),
        },
        // Absent from files written before it was kept.
        enable_customer_admin: matches!(field(b, "enable_customer_admin"), Some(J::Bool(true))),
        // The seed's, not kept by the file: a restored benefit takes its keys' (`made_with`).
        limit_activations: None,
    })
}

fn activation_json(a: &Activation) -> J {
    obj(vec![
        ("id", s(&a.id.to_string())),
        ("license_key_id", s(&a.license_key_id.to_string())),
        ("label", s(&a.label)),
        ("conditions", pairs(&a.conditions)),
        ("meta", pairs(&a.meta)),
        ("created_at", ts(a.created_at)),
        ("modified_at", opt_ts(a.modified_at)),
        ("deleted_at", opt_ts(a.deleted_at)),
    ])
}

fn field<'a>(j: &'a J, name: &str) -> Option<&'a J> {
    match j {
        J::Obj(p) => p.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

fn as_str(j: &J) -> Option<&str> {
    match j {
        J::Str(v) => Some(v),
        _ => None,
    }
}

fn array<'a>(j: &'a J, name: &str) -> Result<&'a [J], String> {
    match field(j, name) {
        Some(J::Arr(a)) => Ok(a),
        _ => Err(format!("\"{name}\" is not a list")),
    }
}

fn text<'a>(j: &'a J, name: &str) -> Result<&'a str, String> {
    field(j, name)
        .and_then(as_str)
        .ok_or_else(|| format!("\"{name}\" is not a string"))
}

fn opt_text(j: &J, name: &str) -> Result<Option<String>, String> {
    match field(j, name) {
        None | Some(J::Null) => Ok(None),
        Some(J::Str(v)) => Ok(Some(v.clone())),
        Some(_) => Err(format!("\"{name}\" is not a string or null")),
    }
}

fn uuid(j: &J, name: &str) -> Result<Uuid, String> {
    parse_uuid4(text(j, name)?, name)
}

fn int(j: &J, name: &str) -> Result<i64, String> {
    match field(j, name) {
        Some(J::Int(i)) => i64::try_from(*i).map_err(|_| format!("\"{name}\" is out of range")),
        _ => Err(format!("\"{name}\" is not an integer")),
    }
}

fn opt_int(j: &J, name: &str) -> Result<Option<i64>, String> {
    match field(j, name) {
        None | Some(J::Null) => Ok(None),
        Some(_) => int(j, name).map(Some),
    }
}

fn time(j: &J, name: &str) -> Result<OffsetDateTime, String> {
    parse_ts(text(j, name)?)
}

fn opt_time(j: &J, name: &str) -> Result<Option<OffsetDateTime>, String> {
    opt_text(j, name)?.as_deref().map(parse_ts).transpose()
}

fn object_pairs(j: &J, name: &str) -> Result<Vec<(String, J)>, String> {
    match field(j, name) {
        Some(J::Obj(p)) => Ok(p.clone()),
        _ => Err(format!("\"{name}\" is not an object")),
    }
}

fn read_extra(j: &J, name: &str) -> Result<Option<(String, J)>, String> {
    match field(j, name) {
        None | Some(J::Null) => Ok(None),
        Some(e) => {
            let id = text(e, "id")?.to_string();
            let object = field(e, "object")
                .cloned()
                .ok_or_else(|| format!("\"{name}\" has no \"object\""))?;
            Ok(Some((id, object)))
        }
    }
}

/// A key of the file, and its `grants` when the file has them.
fn read_key(k: &J) -> Result<(KeyRec, Option<Vec<FlagGrant>>), String> {
    let status = text(k, "status")?;
    let customer = field(k, "customer").ok_or("\"customer\" is missing")?;
    let grants = match field(k, "grants") {
        None => None,
        Some(J::Arr(list)) => Some(
            list.iter()
                .enumerate()
                .map(|(i, g)| read_grant(g).map_err(|e| format!("grants[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err("\"grants\" is not a list".to_string()),
    };
    let key = KeyRec {
        id: uuid(k, "id")?,
        organization_id: uuid(k, "organization_id")?,
        key: text(k, "key")?.to_string(),
        status: Status::parse(status).ok_or_else(|| format!("unknown status `{status}`"))?,
        limit_activations: opt_int(k, "limit_activations")?,
        limit_usage: opt_int(k, "limit_usage")?,
        usage: int(k, "usage")?,
        validations: int(k, "validations")?,
        last_validated_at: opt_time(k, "last_validated_at")?,
        expires_at: opt_time(k, "expires_at")?,
        created_at: time(k, "created_at")?,
        modified_at: opt_time(k, "modified_at")?,
        benefit_id: uuid(k, "benefit_id")?,
        customer: Customer {
            id: uuid(customer, "id")?,
            email: opt_text(customer, "email")?,
            external_id: opt_text(customer, "external_id")?,
            created_at: time(customer, "created_at")?,
        },
        member: read_extra(k, "member")?,
        subscription: read_extra(k, "subscription")?,
        order: read_extra(k, "order")?,
        grants: Vec::new(),
        made_with: (None, None, None),
    };
    // The file keeps the key as it is now: its benefit's properties are taken from that.
    let made_with = (
        super::key_prefix(&key.key),
        key.limit_activations,
        key.limit_usage,
    );
    let key = KeyRec { made_with, ..key };
    Ok((key, grants))
}

fn read_activation(a: &J) -> Result<Activation, String> {
    Ok(Activation {
        id: uuid(a, "id")?,
        license_key_id: uuid(a, "license_key_id")?,
        label: text(a, "label")?.to_string(),
        conditions: object_pairs(a, "conditions")?,
        meta: object_pairs(a, "meta")?,
        created_at: time(a, "created_at")?,
        modified_at: opt_time(a, "modified_at")?,
        deleted_at: opt_time(a, "deleted_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Ids;
    use crate::Seed;

    fn store() -> Store {
        let ids = Ids::Seeded {
            key: [7; 32],
            counter: 0,
        };
        Store::from_seed(&Seed::demo(), ids, OffsetDateTime::UNIX_EPOCH).unwrap()
    }

    #[test]
    fn the_state_reads_back_as_it_was_written() {
        let a = store();
        let text = a.state_text();
        let mut b = store();
        b.keys.clear();
        b.restore_text(&text).unwrap();
        assert_eq!(b.state_text(), text);
    }

    #[test]
    fn a_torn_or_foreign_file_is_refused_and_changes_nothing() {
        let text = store().state_text();
        let mut b = store();
        let before = b.state_text();
        for bad in [
            &text[..text.len() / 2],
            "",
            "garbage",
            "{\"format\":\"other/1\",\"keys\":[],\"activations\":[]}",
            &text.replace("\"status\":\"granted\"", "\"status\":\"maybe\""),
        ] {
            assert!(b.restore_text(bad).is_err(), "{bad:.60}");
            assert_eq!(b.state_text(), before);
        }
    }
}
