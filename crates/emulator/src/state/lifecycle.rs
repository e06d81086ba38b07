//! A key's subscription as its lifecycle changes it (docs/polar-api.md §16.6): the seed's
//! subscription object changed in place (so the 2027-01 answers show it), and the
//! `Subscription` a `subscription.*` webhook carries.

use time::OffsetDateTime;
use uuid::Uuid;

use super::Store;
use crate::json::{obj, s, J};
use crate::util::fmt_ts;
use crate::webhooks::derived_id;

/// A key's subscription: its organization, customer, id and object.
pub(crate) struct SubscriptionOf {
    pub(crate) organization_id: Uuid,
    pub(crate) customer_id: Uuid,
    pub(crate) id: String,
    pub(crate) object: J,
    pub(crate) key_created_at: OffsetDateTime,
}

/// A key's purchase: what a refund or a seat's revocation reads of it.
pub(crate) struct PurchaseOf {
    pub(crate) organization_id: Uuid,
    pub(crate) customer_id: Uuid,
    pub(crate) customer_email: Option<String>,
    pub(crate) key_id: Uuid,
    pub(crate) key_created_at: OffsetDateTime,
    /// The order's id and object.
    pub(crate) order: Option<(String, J)>,
    pub(crate) subscription_id: Option<String>,
    pub(crate) member_id: Option<String>,
}

pub(crate) fn get<'a>(j: &'a J, name: &str) -> Option<&'a J> {
    match j {
        J::Obj(items) => items.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

impl Store {
    /// The subscription of `key` (`None`: unknown key, or a key of no subscription).
    pub(crate) fn subscription_of(&self, key: &str) -> Option<SubscriptionOf> {
        let k = self.keys.iter().find(|k| k.key == key)?;
        let (id, object) = k.subscription.clone()?;
        Some(SubscriptionOf {
            organization_id: k.organization_id,
            customer_id: k.customer.id,
            id,
            object,
            key_created_at: k.created_at,
        })
    }

    /// The keys of subscription `id`, in the order they were made: each key string and whether
    /// it is a seat's (has a member).
    pub(crate) fn subscription_keys(&self, id: &str) -> Vec<(String, bool)> {
        self.keys
            .iter()
            .filter(|k| k.subscription.as_ref().is_some_and(|(sid, _)| sid == id))
            .map(|k| (k.key.clone(), k.member.is_some()))
            .collect()
    }

    /// Every benefit of `key`'s purchase besides its own (granted or not).
    pub(crate) fn purchase_benefits(&self, key: &str) -> Vec<Uuid> {
        self.keys
            .iter()
            .find(|k| k.key == key)
            .map(|k| k.grants.iter().map(|g| g.benefit_id).collect())
            .unwrap_or_default()
    }

    /// What a refund or a seat's revocation reads of `key`: its purchase (`None`: unknown key).
    pub(crate) fn purchase_of(&self, key: &str) -> Option<PurchaseOf> {
        let k = self.keys.iter().find(|k| k.key == key)?;
        Some(PurchaseOf {
            organization_id: k.organization_id,
            customer_id: k.customer.id,
            customer_email: k.customer.email.clone(),
            key_id: k.id,
            key_created_at: k.created_at,
            order: k.order.clone(),
            subscription_id: k.subscription.as_ref().map(|(id, _)| id.clone()),
            member_id: k.member.as_ref().map(|(id, _)| id.clone()),
        })
    }

    /// Sets fields of order `id`'s object, on every key of it.
    pub(crate) fn set_order(&mut self, id: &str, fields: &[(&str, J)]) {
        for k in &mut self.keys {
            if let Some((oid, J::Obj(items))) = &mut k.order {
                if oid == id {
                    for (name, value) in fields {
                        match items.iter_mut().find(|(k, _)| k == name) {
                            Some(slot) => slot.1 = value.clone(),
                            None => items.push((name.to_string(), value.clone())),
                        }
                    }
                }
            }
        }
    }

    /// Sets fields of subscription `id`'s object, on every key of it.
    pub(crate) fn set_subscription(&mut self, id: &str, fields: &[(&str, J)]) {
        for k in &mut self.keys {
            let Some((sid, J::Obj(items))) = &mut k.subscription else {
                continue;
            };
            if sid != id {
                continue;
            }
            for (name, value) in fields {
                match items.iter_mut().find(|(k, _)| k == name) {
                    Some(slot) => slot.1 = value.clone(),
                    None => items.push((name.to_string(), value.clone())),
                }
            }
        }
    }
}

/// The `Subscription` of a `subscription.*` webhook: the seed's fields (id, status, period,
/// cancellation, end) and the lifecycle's (`pause_at_period_end`, `paused_at`, `resumes_at`,
/// `ended_at`, `canceled_at`), with the customer and a product id derived from the
/// subscription's, as the customer state shows it. Polar's `Subscription` has more (prices,
/// discount, custom fields): the emulator sends what identifies the change.
pub(crate) fn render_subscription(s_of: &SubscriptionOf) -> J {
    let o = &s_of.object;
    let f = |name: &str| get(o, name).cloned().unwrap_or(J::Null);
    let b = |name: &str| get(o, name).cloned().unwrap_or(J::Bool(false));
    let product = Uuid::parse_str(&s_of.id)
        .map(|u| derived_id("product", u).to_string())
        .unwrap_or_default();
    obj(vec![
        ("created_at", s(&fmt_ts(s_of.key_created_at))),
        ("modified_at", f("modified_at")),
        ("id", s(&s_of.id)),
        ("amount", J::Int(0)),
        ("currency", s("usd")),
        ("recurring_interval", s("month")),
        ("status", f("status")),
        ("current_period_start", f("current_period_start")),
        ("current_period_end", f("current_period_end")),
        ("cancel_at_period_end", b("cancel_at_period_end")),
        ("canceled_at", f("canceled_at")),
        ("started_at", s(&fmt_ts(s_of.key_created_at))),
        ("ends_at", f("ends_at")),
        ("ended_at", f("ended_at")),
        ("pause_at_period_end", b("pause_at_period_end")),
        ("paused_at", f("paused_at")),
        ("resumes_at", f("resumes_at")),
        ("customer_id", s(&s_of.customer_id.to_string())),
        ("product_id", s(&product)),
        ("discount_id", J::Null),
        ("metadata", J::Obj(Vec::new())),
    ])
}
