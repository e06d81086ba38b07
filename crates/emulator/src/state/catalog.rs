//! What an organization token reads of its organization's catalog (issue #78, the doctor's
//! reads): the organization's benefits as `GET /v1/benefits/` lists them. The seed's benefits,
//! and the license-key benefit each key names that the seed does not list (Polar has the
//! benefit a key was issued by), oldest first.

use time::OffsetDateTime;
use uuid::Uuid;

use super::Store;
use crate::json::J;

/// A benefit of an organization, as the listing needs it.
#[derive(Debug, Clone)]
pub(crate) enum Listed {
    /// A benefit the seed lists with a type other than `license_keys`: its `Benefit` object.
    Rendered(J),
    /// A license-key benefit: its id, when it was made, and the largest activation limit of
    /// the keys it issued (the seed's benefit may set its own).
    LicenseKeys {
        id: Uuid,
        created_at: OffsetDateTime,
        description: String,
        keys_limit: Option<i64>,
    },
}

impl Store {
    /// The benefits of `organization_id`, the seed's first (in its order), then those only
    /// keys name (in the keys' order).
    pub(crate) fn organization_benefits(&self, organization_id: Uuid) -> Vec<Listed> {
        let keys_limit = |id: Uuid| {
            self.keys
                .iter()
                .filter(|k| k.benefit_id == id)
                .filter_map(|k| k.limit_activations)
                .max()
        };
        let mut out = Vec::new();
        let mut seen: Vec<Uuid> = Vec::new();
        for b in self
            .benefits
            .iter()
            .filter(|b| b.organization_id == organization_id)
        {
            seen.push(b.id);
            out.push(if b.is_license_keys() {
                Listed::LicenseKeys {
                    id: b.id,
                    created_at: b.created_at,
                    description: b.description.clone(),
                    keys_limit: keys_limit(b.id),
                }
            } else {
                Listed::Rendered(b.render())
            });
        }
        for k in self
            .keys
            .iter()
            .filter(|k| k.organization_id == organization_id)
        {
            if seen.contains(&k.benefit_id) {
                continue;
            }
            seen.push(k.benefit_id);
            out.push(Listed::LicenseKeys {
                id: k.benefit_id,
                created_at: k.created_at,
                description: "License key".to_string(),
                keys_limit: keys_limit(k.benefit_id),
            });
        }
        out
    }
}
