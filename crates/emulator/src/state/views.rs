//! The store as the routes issue #78 added read it (docs/polar-api.md §19): the customer
//! portal's customer, benefit grants, subscriptions and seats, and the organization token's
//! single reads of a benefit, a customer and a subscription. A child of `state` so that it
//! reads the store's records without widening them.

use uuid::Uuid;

#[cfg(feature = "billing")]
use super::lifecycle::{render_subscription, SubscriptionOf};
use super::{render_customer, KeyRec, Store};
use crate::json::{obj, opt_s, s, J};
use crate::util::fmt_ts;
use crate::webhooks::{derived_id, grant_items, license_benefit, GrantParts};

/// The organization a subscriber's benefit names (`BenefitSubscriberOrganization`): the
/// emulator keeps no organization record, so its public fields are the emulator's own (the
/// slug is the one of the customer portal's URL).
fn subscriber_organization(organization_id: Uuid) -> J {
    obj(vec![
        ("created_at", s("2024-01-01T00:00:00Z")),
        ("modified_at", J::Null),
        ("id", s(&organization_id.to_string())),
        ("name", s("Emulator")),
        ("slug", s("emulator")),
        ("avatar_url", J::Null),
        ("proration_behavior", s("prorate")),
        ("allow_customer_updates", J::Bool(true)),
    ])
}

/// A `Benefit` object made a subscriber's (`Benefit…Subscriber`): `metadata`, `visibility`
/// and `visibility_configurable` dropped, `organization` added.
fn subscriber_benefit(benefit: J, organization_id: Uuid) -> J {
    match benefit {
        J::Obj(items) => {
            let mut items: Vec<(String, J)> = items
                .into_iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "metadata" | "visibility" | "visibility_configurable"
                    )
                })
                .collect();
            items.push((
                "organization".to_string(),
                subscriber_organization(organization_id),
            ));
            J::Obj(items)
        }
        other => other,
    }
}

/// `CustomerPortalCustomer` of a key's customer.
fn portal_customer_of(k: &KeyRec) -> J {
    let c = &k.customer;
    obj(vec![
        ("created_at", s(&fmt_ts(c.created_at))),
        ("modified_at", J::Null),
        ("id", s(&c.id.to_string())),
        ("email", opt_s(c.email.as_deref())),
        ("email_verified", J::Bool(true)),
        ("name", J::Null),
        ("billing_name", J::Null),
        ("billing_address", J::Null),
        ("tax_id", J::Null),
        ("oauth_accounts", J::Obj(Vec::new())),
        ("default_payment_method_id", J::Null),
        ("type", s("individual")),
        ("locale", J::Null),
    ])
}

/// A `BenefitGrant` made a customer's (`CustomerBenefitGrant…`): the customer the portal's,
/// the benefit a subscriber's.
fn customer_grant(grant: Vec<(&'static str, J)>, k: &KeyRec) -> J {
    obj(grant
        .into_iter()
        .map(|(name, v)| match name {
            "customer" => (name, portal_customer_of(k)),
            "benefit" => (name, subscriber_benefit(v, k.organization_id)),
            _ => (name, v),
        })
        .collect())
}

impl Store {
    /// A customer's keys in the order they were made (the store's: no sort of its own, whose
    /// code would weigh on the npm package's emulator).
    fn customer_keys_of(&self, organization_id: Uuid, customer_id: Uuid) -> Vec<&KeyRec> {
        self.keys
            .iter()
            .filter(|k| k.organization_id == organization_id && k.customer.id == customer_id)
            .collect()
    }

    /// `GET /v1/customer-portal/customers/me`: `CustomerPortalCustomer` (`None`: no key
    /// names the customer).
    pub(crate) fn portal_customer(&self, organization_id: Uuid, customer_id: Uuid) -> Option<J> {
        self.customer_keys_of(organization_id, customer_id)
            .first()
            .map(|k| portal_customer_of(k))
    }

    /// The email of a session's customer (`Some(None)`: a customer without one).
    pub(crate) fn customer_email(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
    ) -> Option<Option<String>> {
        self.customer_keys_of(organization_id, customer_id)
            .first()
            .map(|k| k.customer.email.clone())
    }

    /// `GET /v1/customer-portal/benefit-grants/`: the customer's grants that are not revoked,
    /// of benefits the portal shows (`Benefit.visibility == public`: license keys and meter
    /// credits; a Feature Flag is private by default, `BenefitType.default_visibility`), keys
    /// in the order they were made, each key's own grant first. Each: its benefit's type, id
    /// and grant id, for the filters.
    pub(crate) fn portal_grants(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
    ) -> Vec<(String, Uuid, Uuid, J)> {
        let mut out = Vec::new();
        for k in self.customer_keys_of(organization_id, customer_id) {
            let Some(view) = self.grant_view_of(k) else {
                continue;
            };
            if view.status != "revoked" {
                let id = derived_id("benefit_grant", k.id);
                let at = k.modified_at.unwrap_or(k.created_at);
                let items = grant_items(
                    &view,
                    GrantParts {
                        id,
                        benefit_id: k.benefit_id,
                        created_at: k.created_at,
                        modified_at: at,
                        granted_at: Some(k.created_at),
                        revoked_at: None,
                        benefit: license_benefit(&view),
                        properties: obj(vec![
                            ("license_key_id", s(&k.id.to_string())),
                            ("display_key", s(&view.display_key)),
                        ]),
                    },
                );
                out.push((
                    "license_keys".to_string(),
                    k.benefit_id,
                    id,
                    customer_grant(items, k),
                ));
            }
            for g in k.grants.iter().filter(|g| g.granted_at.is_some()) {
                let Some(b) = self.benefit(g.benefit_id) else {
                    continue;
                };
                if b.kind == "feature_flag" {
                    continue;
                }
                let items = match self.flag_grant(k, g) {
                    J::Obj(items) => items,
                    _ => continue,
                };
                let items = items
                    .into_iter()
                    .map(|(name, v)| match name.as_str() {
                        "customer" => (name, portal_customer_of(k)),
                        "benefit" => (name, subscriber_benefit(v, k.organization_id)),
                        _ => (name, v),
                    })
                    .collect();
                out.push((b.kind.clone(), g.benefit_id, g.id(k.id), J::Obj(items)));
            }
        }
        out
    }

    #[cfg(feature = "billing")]
    /// The subscriptions of a customer's keys (each once), newest first (`-started_at`): each
    /// its id, whether it is active (`active`/`trialing`) and its `Subscription`.
    pub(crate) fn customer_subscriptions(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
    ) -> Vec<(String, bool, J)> {
        let mut out: Vec<(String, bool, J)> = Vec::new();
        let mut keys = self.customer_keys_of(organization_id, customer_id);
        keys.reverse();
        for k in keys {
            let Some((id, object)) = &k.subscription else {
                continue;
            };
            if out.iter().any(|(seen, _, _)| seen == id) {
                continue;
            }
            let of = SubscriptionOf {
                organization_id: k.organization_id,
                customer_id: k.customer.id,
                id: id.clone(),
                object: object.clone(),
                key_created_at: k.created_at,
            };
            let status = super::entitlements::field_str(object, "status").unwrap_or("active");
            let active = matches!(status, "active" | "trialing");
            out.push((id.clone(), active, render_subscription(&of)));
        }
        out
    }

    #[cfg(feature = "billing")]
    /// The seats of subscription `id` of a customer: one `CustomerSeat` per key of it with a
    /// member (`claimed`, or `revoked` with the key). `None`: no such subscription of the
    /// customer.
    pub(crate) fn subscription_seats(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
        id: &str,
    ) -> Option<Vec<(bool, J)>> {
        let keys: Vec<&KeyRec> = self
            .customer_keys_of(organization_id, customer_id)
            .into_iter()
            .filter(|k| k.subscription.as_ref().is_some_and(|(sid, _)| sid == id))
            .collect();
        if keys.is_empty() {
            return None;
        }
        let mut seats = Vec::new();
        for k in keys {
            let Some((member_id, member)) = &k.member else {
                continue;
            };
            let revoked = k.status == super::Status::Revoked;
            let at = s(&fmt_ts(k.created_at));
            let email = super::entitlements::field_str(member, "email").map(str::to_string);
            let seat_id = Uuid::parse_str(member_id)
                .map(|m| derived_id("customer_seat", m))
                .unwrap_or_else(|_| derived_id("customer_seat", k.id));
            seats.push((
                revoked,
                obj(vec![
                    ("created_at", at.clone()),
                    ("modified_at", J::Null),
                    ("id", s(&seat_id.to_string())),
                    ("subscription_id", s(id)),
                    ("order_id", J::Null),
                    ("status", s(if revoked { "revoked" } else { "claimed" })),
                    ("customer_id", s(&k.customer.id.to_string())),
                    ("member_id", s(member_id)),
                    ("member", member.clone()),
                    ("email", opt_s(email.as_deref())),
                    ("customer_email", opt_s(k.customer.email.as_deref())),
                    ("invitation_token_expires_at", J::Null),
                    ("claimed_at", at),
                    (
                        "revoked_at",
                        if revoked {
                            s(&fmt_ts(k.modified_at.unwrap_or(k.created_at)))
                        } else {
                            J::Null
                        },
                    ),
                    ("seat_metadata", J::Obj(Vec::new())),
                ]),
            ));
        }
        Some(seats)
    }

    /// `GET /v1/customers/{id}`: the `Customer` (`None`: not the organization's).
    pub(crate) fn org_customer(&self, organization_id: Uuid, id: Uuid) -> Option<J> {
        self.customer_keys_of(organization_id, id)
            .first()
            .map(|k| render_customer(k))
    }

    #[cfg(feature = "billing")]
    /// `GET /v1/subscriptions/{id}`: the `Subscription` (`None`: not the organization's).
    pub(crate) fn org_subscription(&self, organization_id: Uuid, id: &str) -> Option<J> {
        let k = self.keys.iter().find(|k| {
            k.organization_id == organization_id
                && k.subscription.as_ref().is_some_and(|(sid, _)| sid == id)
        })?;
        let (sid, object) = k.subscription.clone()?;
        Some(render_subscription(&SubscriptionOf {
            organization_id: k.organization_id,
            customer_id: k.customer.id,
            id: sid,
            object,
            key_created_at: k.created_at,
        }))
    }
}
