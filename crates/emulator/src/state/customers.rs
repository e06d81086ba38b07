//! The store as customer sessions see it (docs/polar-api.md §16): customers looked up by
//! email, a customer's own keys (the customer portal's list, get and rotate) and an
//! activation read by id (the organization token's `GET …/activations/{id}`). A child of
//! `state` so that it reads the store's records without widening them.

use uuid::Uuid;

use super::{extended, render_activation, render_customer, render_read, Store, NOT_FOUND};
use crate::json::{obj, J};

/// A customer of an organization, as the seed's keys name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CustomerRef {
    pub(crate) id: Uuid,
    pub(crate) email: Option<String>,
}

/// Why a portal rotation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RotateError {
    NotFound,
    /// The key's status (`revoked`): Polar's `RotateNotPermitted`.
    Status(&'static str),
}

/// One page of keys: `{"items": […], "pagination": {"total_count", "max_page"}}`. Only the
/// page's items are taken from `items` (a lazy map renders only those).
pub(crate) fn page_of<I>(items: I, page: u64, limit: u64) -> J
where
    I: IntoIterator<Item = J>,
    I::IntoIter: ExactSizeIterator,
{
    let items = items.into_iter();
    let total = items.len() as u64;
    let skip = usize::try_from(page.saturating_sub(1).saturating_mul(limit)).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let items = items.skip(skip).take(take).collect();
    obj(vec![
        ("items", J::Arr(items)),
        (
            "pagination",
            obj(vec![
                ("total_count", J::Int(i128::from(total))),
                ("max_page", J::Int(i128::from(total.div_ceil(limit.max(1))))),
            ]),
        ),
    ])
}

impl Store {
    /// The distinct customers of `organization_id` whose email is `email`, compared without
    /// case (Polar's lookup), in the order the seed gave them.
    pub(crate) fn customers_by_email(
        &self,
        organization_id: Uuid,
        email: &str,
    ) -> Vec<CustomerRef> {
        let wanted = email.to_lowercase();
        let mut found: Vec<CustomerRef> = Vec::new();
        for k in self
            .keys
            .iter()
            .filter(|k| k.organization_id == organization_id)
        {
            let matches = k
                .customer
                .email
                .as_deref()
                .is_some_and(|e| e.to_lowercase() == wanted);
            if matches && !found.iter().any(|c| c.id == k.customer.id) {
                found.push(CustomerRef {
                    id: k.customer.id,
                    email: k.customer.email.clone(),
                });
            }
        }
        found
    }

    /// A customer of `organization_id`, with its `Customer` object, if any key names it.
    pub(crate) fn customer(&self, organization_id: Uuid, id: Uuid) -> Option<(CustomerRef, J)> {
        let k = self
            .keys
            .iter()
            .find(|k| k.organization_id == organization_id && k.customer.id == id)?;
        let customer = CustomerRef {
            id,
            email: k.customer.email.clone(),
        };
        Some((customer, render_customer(k)))
    }

    /// A customer of `organization_id` by the seller's id for it (`external_id`, compared
    /// exactly, as Polar's `get_by_external_id_and_organization`), with its `Customer` object.
    pub(crate) fn customer_by_external(
        &self,
        organization_id: Uuid,
        external_id: &str,
    ) -> Option<(CustomerRef, J)> {
        let k = self.keys.iter().find(|k| {
            k.organization_id == organization_id
                && k.customer.external_id.as_deref() == Some(external_id)
        })?;
        let customer = CustomerRef {
            id: k.customer.id,
            email: k.customer.email.clone(),
        };
        Some((customer, render_customer(k)))
    }

    /// `GET /v1/customer-portal/license-keys/`: the customer's keys of every status, whole,
    /// in the order they were made (`created_at` ascending), `benefit_id` filtering.
    pub(crate) fn customer_keys(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
        benefit_id: Option<Uuid>,
        page: u64,
        limit: u64,
        version: &str,
    ) -> J {
        let mut keys: Vec<_> = self
            .keys
            .iter()
            .filter(|k| k.organization_id == organization_id && k.customer.id == customer_id)
            .filter(|k| benefit_id.is_none_or(|b| b == k.benefit_id))
            .collect();
        // A stable sort: keys made in the same microsecond keep the seed's order.
        keys.sort_by_key(|k| k.created_at);
        let items = keys
            .into_iter()
            .map(|k| J::Obj(render_read(k, extended(version))));
        page_of(items, page, limit)
    }

    /// The benefit of a customer's key `id` (`None`: no such key of this customer).
    pub(crate) fn customer_key_benefit(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
        id: Uuid,
    ) -> Option<Uuid> {
        self.keys
            .iter()
            .find(|k| {
                k.id == id && k.organization_id == organization_id && k.customer.id == customer_id
            })
            .map(|k| k.benefit_id)
    }

    /// `LicenseKeyWithActivations` of key `id` of `organization_id` (and of `customer_id`
    /// when given): its live activations when `with_activations`, else `[]`.
    pub(crate) fn key_with_activations(
        &self,
        organization_id: Uuid,
        customer_id: Option<Uuid>,
        id: Uuid,
        with_activations: bool,
        version: &str,
    ) -> Option<J> {
        let k = self.keys.iter().find(|k| {
            k.id == id
                && k.organization_id == organization_id
                && customer_id.is_none_or(|c| c == k.customer.id)
        })?;
        let mut fields = render_read(k, extended(version));
        let activations = if with_activations {
            self.activations
                .iter()
                .filter(|a| a.license_key_id == k.id && a.deleted_at.is_none())
                .map(render_activation)
                .collect()
        } else {
            Vec::new()
        };
        fields.push(("activations".to_string(), J::Arr(activations)));
        Some(J::Obj(fields))
    }

    /// `GET /v1/license-keys/{id}/activations/{activation_id}`: `LicenseKeyActivationRead`
    /// (the activation and its `license_key`), `None` when the key is not the organization's,
    /// or the activation unknown, deactivated or another key's.
    pub(crate) fn activation_read(
        &self,
        organization_id: Uuid,
        id: Uuid,
        activation_id: Uuid,
        version: &str,
    ) -> Option<J> {
        let k = self
            .keys
            .iter()
            .find(|k| k.id == id && k.organization_id == organization_id)?;
        let a = self.activations.iter().find(|a| {
            a.id == activation_id && a.license_key_id == k.id && a.deleted_at.is_none()
        })?;
        let mut fields = match render_activation(a) {
            J::Obj(items) => items,
            _ => Vec::new(),
        };
        fields.push((
            "license_key".to_string(),
            J::Obj(render_read(k, extended(version))),
        ));
        Some(J::Obj(fields))
    }

    /// The key string of a customer's key `id`, for a rotation through the customer portal:
    /// refused for a revoked key (Polar allows `granted` and `disabled`).
    pub(crate) fn rotatable_key(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
        id: Uuid,
    ) -> Result<String, RotateError> {
        let k = self
            .keys
            .iter()
            .find(|k| {
                k.id == id && k.organization_id == organization_id && k.customer.id == customer_id
            })
            .ok_or(RotateError::NotFound)?;
        match k.status {
            super::Status::Revoked => Err(RotateError::Status(k.status.as_str())),
            _ => Ok(k.key.clone()),
        }
    }

    /// The string and status of key `id` of `organization_id` (the organization token's
    /// writes: `PATCH` and rotate).
    pub(crate) fn key_and_status(
        &self,
        organization_id: Uuid,
        id: Uuid,
    ) -> Option<(String, &'static str)> {
        self.keys
            .iter()
            .find(|k| k.id == id && k.organization_id == organization_id)
            .map(|k| (k.key.clone(), k.status.as_str()))
    }

    /// `LicenseKeyRead` of key `id` (after a rotation: its new string).
    pub(crate) fn key_read_by_id(&self, id: Uuid, version: &str) -> Option<J> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| J::Obj(render_read(k, extended(version))))
    }
}

/// Polar's "Not found" detail, for the callers' 404s.
pub(crate) const KEY_NOT_FOUND: &str = NOT_FOUND;
