//! Meters and credits (docs/polar-api.md §16.5): the seed's meters, the units a `meter_credit`
//! grant credits, the events `POST /v1/events/ingest` takes (each counted by the meters that
//! match it, an `external_id` seen once per organization) and the customer meters the
//! organization token (`GET /v1/customer-meters/`) and the customer portal
//! (`GET /v1/customer-portal/meters/`) read: balance = credited − consumed.
//!
//! The emulator's simplifications, documented in docs/interfaces.md §3: a meter matches one
//! event name (Polar's filters take any clause) and counts or sums one metadata property; a
//! grant credits its units each time it is made (a seed grant at start, a grant made again
//! later), takes them back when it is revoked, and a new cycle resets the meter and credits
//! again (Polar's `benefit/strategies/meter_credit/service.py`); events are kept as their
//! sums per customer and meter, and their `external_id`s.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;
use uuid::Uuid;

use super::{render_customer, KeyRec, Store};
use crate::json::{obj, s, J};
use crate::seed::{Aggregation, SeedMeter};
use crate::util::{fmt_ts, parse_uuid4};
use crate::webhooks::derived_id;

/// A meter of the seed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MeterRec {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) name: String,
    pub(crate) event_name: String,
    pub(crate) aggregation: Aggregation,
    pub(crate) created_at: OffsetDateTime,
}

impl MeterRec {
    pub(crate) fn from_seed(
        m: &SeedMeter,
        organization_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<MeterRec, String> {
        Ok(MeterRec {
            id: parse_uuid4(&m.id, "id of a meter")?,
            organization_id,
            name: m.name.clone(),
            event_name: m.event_name.clone(),
            aggregation: m.aggregation()?,
            created_at: now,
        })
    }

    /// The units an event adds to this meter (`None`: the meter does not count it).
    fn units_of(&self, name: &str, metadata: &[(String, J)]) -> Option<f64> {
        if name != self.event_name {
            return None;
        }
        match &self.aggregation {
            Aggregation::Count => Some(1.0),
            // Only a JSON number counts (`jsonb_typeof(...) = 'number'`): not a bool, not text.
            Aggregation::Sum(p) => {
                metadata
                    .iter()
                    .find(|(k, _)| k == p)
                    .and_then(|(_, v)| match v {
                        J::Int(i) => Some(*i as f64),
                        J::Float(f) => Some(*f),
                        _ => None,
                    })
            }
            // Not summable (`is_summable` is false in Polar's aggregation.py): a customer's
            // meter keeps no running units of it; `GET /v1/meters/{id}/quantities` counts the
            // distinct values from the events kept ([`Store::meter_quantities`]).
            Aggregation::Unique(_) => None,
        }
    }

    /// The full `Meter` (the organization token's `meter`).
    fn render(&self) -> J {
        let aggregation = match &self.aggregation {
            Aggregation::Count => obj(vec![("func", s("count"))]),
            Aggregation::Sum(p) => obj(vec![("func", s("sum")), ("property", s(p))]),
            Aggregation::Unique(p) => obj(vec![("func", s("unique")), ("property", s(p))]),
        };
        obj(vec![
            ("metadata", J::Obj(Vec::new())),
            ("created_at", s(&fmt_ts(self.created_at))),
            ("modified_at", J::Null),
            ("id", s(&self.id.to_string())),
            ("name", s(&self.name)),
            (
                "filter",
                obj(vec![
                    ("conjunction", s("and")),
                    (
                        "clauses",
                        J::Arr(vec![obj(vec![
                            ("property", s("name")),
                            ("operator", s("eq")),
                            ("value", s(&self.event_name)),
                        ])]),
                    ),
                ]),
            ),
            ("aggregation", aggregation),
            ("organization_id", s(&self.organization_id.to_string())),
        ])
    }

    /// The portal's short `meter`: `{id, created_at, modified_at, name}`.
    fn render_short(&self) -> J {
        obj(vec![
            ("id", s(&self.id.to_string())),
            ("created_at", s(&fmt_ts(self.created_at))),
            ("modified_at", J::Null),
            ("name", s(&self.name)),
        ])
    }
}

/// Who an event names: a customer by id, or by its external id (not checked to exist).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Who {
    Id(Uuid),
    External(String),
}

/// Units credited to a customer's meter by one grant (Polar's `meter.credited` system
/// event: negative when a grant is revoked), or the meter reset (`meter.reset`, `reset`: a
/// new cycle starts the meter afresh, its `units` 0).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Credit {
    pub(crate) customer_id: Uuid,
    pub(crate) meter_id: Uuid,
    pub(crate) units: i64,
    pub(crate) at: OffsetDateTime,
    /// Credited by a benefit with `rollover` (what is left of it carries over a reset).
    pub(crate) rollover: bool,
    /// A `meter.reset`: the credits and usage before it no longer count.
    pub(crate) reset: bool,
}

/// `non_negative_running_sum`: a running sum that never goes below 0.
fn non_negative_running_sum(units: impl Iterator<Item = i64>) -> i64 {
    units.fold(0, |sum, u| sum.saturating_add(u).max(0))
}

/// The units the events of one customer (as they named it) added to one meter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Consumed {
    pub(crate) who: Who,
    pub(crate) meter_id: Uuid,
    pub(crate) units: f64,
    pub(crate) first_at: OffsetDateTime,
    pub(crate) last_at: OffsetDateTime,
}

/// Everything of meters the store keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Usage {
    pub(crate) meters: Vec<MeterRec>,
    pub(crate) credits: Vec<Credit>,
    /// By who the events named and the meter: one lookup per event and meter.
    pub(crate) consumed: BTreeMap<(Who, Uuid), Consumed>,
    /// The `external_id`s of the events taken, per organization (unique there).
    pub(crate) external_ids: BTreeSet<(Uuid, String)>,
    /// The latest events taken, oldest first (not kept by `--state`).
    pub(crate) events: std::collections::VecDeque<EventRec>,
}

/// One event of a batch, checked.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) name: String,
    pub(crate) who: Who,
    pub(crate) external_id: Option<String>,
    pub(crate) metadata: Vec<(String, J)>,
    /// The event's own time (`None`: when it was taken).
    pub(crate) timestamp: Option<OffsetDateTime>,
    pub(crate) member_id: Option<String>,
    pub(crate) external_member_id: Option<String>,
}

/// An event taken, as `GET /v1/events/` lists it (the latest [`MAX_EVENTS`], in memory only).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRec {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) timestamp: OffsetDateTime,
    pub(crate) name: String,
    pub(crate) who: Who,
    pub(crate) member_id: Option<String>,
    pub(crate) external_member_id: Option<String>,
    pub(crate) metadata: Vec<(String, J)>,
}

/// The events kept for `GET /v1/events/` at most (the oldest dropped first): the balances
/// are kept as sums, the events themselves only for reading them back.
pub(crate) const MAX_EVENTS: usize = 10_000;

/// A customer's meter, as both lists show it.
#[derive(Debug, Clone)]
pub(crate) struct CustomerMeter {
    pub(crate) id: Uuid,
    pub(crate) customer_id: Uuid,
    pub(crate) meter: MeterRec,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) modified_at: OffsetDateTime,
    pub(crate) consumed: f64,
    pub(crate) credited: i64,
}

impl CustomerMeter {
    pub(crate) fn balance(&self) -> f64 {
        self.credited as f64 - self.consumed
    }

    /// The fields both lists share (`CustomerCustomerMeter` without its `meter`).
    fn base(&self) -> Vec<(&'static str, J)> {
        vec![
            ("id", s(&self.id.to_string())),
            ("created_at", s(&fmt_ts(self.created_at))),
            ("modified_at", s(&fmt_ts(self.modified_at))),
            ("customer_id", s(&self.customer_id.to_string())),
            ("meter_id", s(&self.meter.id.to_string())),
            ("consumed_units", J::Float(self.consumed)),
            ("credited_units", J::Int(i128::from(self.credited))),
            ("balance", J::Float(self.balance())),
        ]
    }

    /// The customer portal's item.
    pub(crate) fn render_portal(&self) -> J {
        let mut items = self.base();
        items.push(("meter", self.meter.render_short()));
        obj(items)
    }

    /// The customer state's `active_meters` entry.
    pub(crate) fn render_state(&self) -> J {
        obj(vec![
            ("id", s(&self.id.to_string())),
            ("created_at", s(&fmt_ts(self.created_at))),
            ("modified_at", s(&fmt_ts(self.modified_at))),
            ("meter_id", s(&self.meter.id.to_string())),
            ("consumed_units", J::Float(self.consumed)),
            ("credited_units", J::Int(i128::from(self.credited))),
            ("balance", J::Float(self.balance())),
        ])
    }
}

impl Store {
    /// Credits what a `meter_credit` grant of `benefit_id` gives `customer_id`, at `at`.
    pub(crate) fn credit_grant(&mut self, customer_id: Uuid, benefit_id: Uuid, at: OffsetDateTime) {
        self.push_credit(customer_id, benefit_id, at, 1);
    }

    /// Takes back what a revoked `meter_credit` grant credited (Polar's `revoke`: a
    /// `meter.credited` of minus the units; the customer's meter stays).
    pub(crate) fn uncredit_grant(
        &mut self,
        customer_id: Uuid,
        benefit_id: Uuid,
        at: OffsetDateTime,
    ) {
        self.push_credit(customer_id, benefit_id, at, -1);
    }

    fn push_credit(&mut self, customer_id: Uuid, benefit_id: Uuid, at: OffsetDateTime, sign: i64) {
        let Some(credit) = self.benefit(benefit_id).and_then(|b| b.credit) else {
            return;
        };
        self.usage.credits.push(Credit {
            customer_id,
            meter_id: credit.meter_id,
            units: sign * credit.units,
            at,
            rollover: credit.rollover,
            reset: false,
        });
    }

    /// A new cycle of a granted `meter_credit` grant (Polar's `cycle`): the meter reset (the
    /// usage and credits before no longer count), what is left of rollover credits credited
    /// again (`get_rollover_units`: the balance, at most the rollover credits, at least 0), then
    /// the benefit's units.
    pub(crate) fn cycle_credit(&mut self, customer_id: Uuid, benefit_id: Uuid, at: OffsetDateTime) {
        let Some(credit) = self.benefit(benefit_id).and_then(|b| b.credit) else {
            return;
        };
        let meter_id = credit.meter_id;
        let (rollover, _, _) = self.window(customer_id, meter_id);
        let reset = Credit {
            customer_id,
            meter_id,
            units: 0,
            at,
            rollover: false,
            reset: true,
        };
        self.usage.credits.push(reset);
        // The usage since the last reset: the events' sums start again from 0.
        let external = self.external_id_of(customer_id);
        for c in self.usage.consumed.values_mut() {
            let ours = match &c.who {
                Who::Id(id) => *id == customer_id,
                Who::External(x) => external.as_ref() == Some(x),
            };
            if ours && c.meter_id == meter_id {
                c.units = 0.0;
            }
        }
        if rollover > 0 {
            self.usage.credits.push(Credit {
                customer_id,
                meter_id,
                units: rollover,
                at,
                rollover: true,
                reset: false,
            });
        }
        self.credit_grant(customer_id, benefit_id, at);
    }

    /// The units a reset would carry over, and the credited and consumed units, of a
    /// customer's meter since its last reset.
    fn window(&self, customer_id: Uuid, meter_id: Uuid) -> (i64, i64, f64) {
        let credits: Vec<&Credit> = self
            .usage
            .credits
            .iter()
            .filter(|c| c.customer_id == customer_id && c.meter_id == meter_id)
            .collect();
        let since = credits.iter().rposition(|c| c.reset).map_or(0, |i| i + 1);
        let window = &credits[since..];
        let sum = |rollover: Option<bool>| {
            non_negative_running_sum(
                window
                    .iter()
                    .filter(|c| rollover.is_none_or(|r| c.rollover == r))
                    .map(|c| c.units),
            )
        };
        let external = self.external_id_of(customer_id);
        let consumed: f64 = self
            .usage
            .consumed
            .values()
            .filter(|c| c.meter_id == meter_id)
            .filter(|c| match &c.who {
                Who::Id(id) => *id == customer_id,
                Who::External(x) => external.as_ref() == Some(x),
            })
            .map(|c| c.units)
            // From +0.0: an empty `sum` of floats is -0.0.
            .fold(0.0, |a, b| a + b);
        let (plain, rolled) = (sum(Some(false)), sum(Some(true)));
        let balance = (plain + rolled) as f64 - consumed;
        let rollover = (balance as i64).min(rolled).max(0);
        (rollover, sum(None), consumed)
    }

    /// Whether `member_id` is a member of `customer_id` (a seat of one of its keys).
    pub(crate) fn is_member(&self, customer_id: Uuid, member_id: &str) -> bool {
        self.keys.iter().any(|k| {
            k.customer.id == customer_id && k.member.as_ref().is_some_and(|(id, _)| id == member_id)
        })
    }

    /// Whether `customer_id` is a customer of `organization_id`.
    pub(crate) fn has_customer(&self, organization_id: Uuid, customer_id: Uuid) -> bool {
        self.keys
            .iter()
            .any(|k| k.organization_id == organization_id && k.customer.id == customer_id)
    }

    /// Takes a checked batch: each event whose `external_id` the organization has not seen is
    /// counted by the meters it matches; the others are duplicates. `(inserted, duplicates)`.
    pub(crate) fn ingest(
        &mut self,
        organization_id: Uuid,
        events: Vec<NewEvent>,
        now: OffsetDateTime,
    ) -> (u64, u64) {
        let (mut inserted, mut duplicates) = (0u64, 0u64);
        for e in events {
            if let Some(x) = e.external_id {
                if !self.usage.external_ids.insert((organization_id, x)) {
                    duplicates += 1;
                    continue;
                }
            }
            inserted += 1;
            if self.usage.events.len() >= MAX_EVENTS {
                self.usage.events.pop_front();
            }
            let id = self.ids.next_id();
            self.usage.events.push_back(EventRec {
                id,
                organization_id,
                timestamp: e.timestamp.unwrap_or(now),
                name: e.name.clone(),
                who: e.who.clone(),
                member_id: e.member_id.clone(),
                external_member_id: e.external_member_id.clone(),
                metadata: e.metadata.clone(),
            });
            for m in self
                .usage
                .meters
                .iter()
                .filter(|m| m.organization_id == organization_id)
            {
                let Some(units) = m.units_of(&e.name, &e.metadata) else {
                    continue;
                };
                let slot = (e.who.clone(), m.id);
                match self.usage.consumed.get_mut(&slot) {
                    Some(c) => {
                        c.units += units;
                        c.last_at = now;
                    }
                    None => {
                        self.usage.consumed.insert(
                            slot,
                            Consumed {
                                who: e.who.clone(),
                                meter_id: m.id,
                                units,
                                first_at: now,
                                last_at: now,
                            },
                        );
                    }
                }
            }
        }
        (inserted, duplicates)
    }

    /// The meters of a customer as the organization sees them (`GET /v1/customer-meters/`,
    /// the customer state's `active_meters`): one per meter a `meter_credit` grant of its keys
    /// names, granted now or credited once (Polar keeps a customer's meter when the grant is
    /// revoked), in the meters' seed order.
    pub(crate) fn customer_meters(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
    ) -> Vec<CustomerMeter> {
        self.customer_meters_where(organization_id, customer_id, false)
    }

    /// The meters the customer portal lists (`customer_portal/repository/customer_meter.py`):
    /// only those of a `meter_credit` grant granted now.
    pub(crate) fn portal_customer_meters(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
    ) -> Vec<CustomerMeter> {
        self.customer_meters_where(organization_id, customer_id, true)
    }

    fn customer_meters_where(
        &self,
        organization_id: Uuid,
        customer_id: Uuid,
        granted_only: bool,
    ) -> Vec<CustomerMeter> {
        let keys: Vec<&KeyRec> = self
            .keys
            .iter()
            .filter(|k| k.organization_id == organization_id && k.customer.id == customer_id)
            .collect();
        let Some(first) = keys.first() else {
            return Vec::new();
        };
        let external = first.customer.external_id.clone();
        let mut out = Vec::new();
        for m in &self.usage.meters {
            let granted = keys.iter().any(|k| {
                k.grants.iter().any(|g| {
                    g.granted_at.is_some()
                        && self
                            .benefit(g.benefit_id)
                            .and_then(|b| b.credit)
                            .is_some_and(|c| c.meter_id == m.id)
                })
            });
            let credits: Vec<&Credit> = self
                .usage
                .credits
                .iter()
                .filter(|c| c.customer_id == customer_id && c.meter_id == m.id)
                .collect();
            if !granted && (granted_only || credits.is_empty()) {
                continue;
            }
            let (_, credited, consumed_now) = self.window(customer_id, m.id);
            let consumed: Vec<&Consumed> = self
                .usage
                .consumed
                .values()
                .filter(|c| c.meter_id == m.id)
                .filter(|c| match &c.who {
                    Who::Id(id) => *id == customer_id,
                    Who::External(x) => external.as_ref() == Some(x),
                })
                .collect();
            let times = credits
                .iter()
                .map(|c| c.at)
                .chain(consumed.iter().flat_map(|c| [c.first_at, c.last_at]));
            let created_at = times.clone().min().unwrap_or(m.created_at);
            let modified_at = times.max().unwrap_or(created_at);
            out.push(CustomerMeter {
                id: derived_id(&format!("customer_meter:{}", m.id), customer_id),
                customer_id,
                meter: m.clone(),
                created_at,
                modified_at,
                consumed: consumed_now,
                credited,
            });
        }
        out
    }

    /// Every customer meter of `organization_id`, customers in the order their keys were made.
    pub(crate) fn all_customer_meters(&self, organization_id: Uuid) -> Vec<CustomerMeter> {
        let mut seen: Vec<Uuid> = Vec::new();
        let mut out = Vec::new();
        for k in self
            .keys
            .iter()
            .filter(|k| k.organization_id == organization_id)
        {
            if !seen.contains(&k.customer.id) {
                seen.push(k.customer.id);
                out.extend(self.customer_meters(organization_id, k.customer.id));
            }
        }
        out
    }

    /// The organization token's item: the portal's with the `customer` and the full `meter`.
    pub(crate) fn render_org_meter(&self, cm: &CustomerMeter) -> J {
        let customer = self
            .keys
            .iter()
            .find(|k| k.customer.id == cm.customer_id)
            .map_or(J::Null, render_customer);
        let mut items = cm.base();
        items.push(("customer", customer));
        items.push(("meter", cm.meter.render()));
        obj(items)
    }

    /// The organization's meters (`GET /v1/meters/`): each its id, name and `Meter`.
    pub(crate) fn org_meters(&self, organization_id: Uuid) -> Vec<(Uuid, String, J)> {
        self.usage
            .meters
            .iter()
            .filter(|m| m.organization_id == organization_id)
            .map(|m| (m.id, m.name.clone(), m.render()))
            .collect()
    }

    /// The organization's events, each its `UserEvent` (`GET /v1/events/`): `customer` the
    /// customer an id names, or the one whose `external_id` an external id names (null when
    /// none has it yet).
    pub(crate) fn org_events(&self, organization_id: Uuid) -> Vec<(&EventRec, J)> {
        self.usage
            .events
            .iter()
            .filter(|e| e.organization_id == organization_id)
            .map(|e| {
                let (customer_id, external) = match &e.who {
                    Who::Id(id) => (Some(*id), None),
                    Who::External(x) => (None, Some(x.clone())),
                };
                let customer = self.keys.iter().find(|k| {
                    k.organization_id == organization_id
                        && match &e.who {
                            Who::Id(id) => k.customer.id == *id,
                            Who::External(x) => k.customer.external_id.as_ref() == Some(x),
                        }
                });
                let external =
                    external.or_else(|| customer.and_then(|k| k.customer.external_id.clone()));
                let j = obj(vec![
                    ("id", s(&e.id.to_string())),
                    ("timestamp", s(&fmt_ts(e.timestamp))),
                    ("organization_id", s(&organization_id.to_string())),
                    (
                        "customer_id",
                        customer_id.map_or(J::Null, |c| s(&c.to_string())),
                    ),
                    ("customer", customer.map_or(J::Null, render_customer)),
                    (
                        "external_customer_id",
                        crate::json::opt_s(external.as_deref()),
                    ),
                    ("member_id", crate::json::opt_s(e.member_id.as_deref())),
                    (
                        "external_member_id",
                        crate::json::opt_s(e.external_member_id.as_deref()),
                    ),
                    ("child_count", J::Int(0)),
                    ("parent_id", J::Null),
                    ("label", s(&e.name)),
                    ("name", s(&e.name)),
                    ("source", s("user")),
                    ("metadata", J::Obj(e.metadata.clone())),
                ]);
                (e, j)
            })
            .collect()
    }

    /// The external id of customer `id`, if it has one.
    pub(crate) fn external_id_of(&self, id: Uuid) -> Option<String> {
        self.keys
            .iter()
            .find(|k| k.customer.id == id)
            .and_then(|k| k.customer.external_id.clone())
    }
}

/// The state file's `usage` (state/persist.rs): the credits, the events' sums and the
/// `external_id`s seen; the meters stay the seed's.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod file {
    use super::{Consumed, Credit, Usage, Who};
    use crate::json::{obj, s, J};
    use crate::util::{fmt_ts, parse_ts, parse_uuid4};

    fn field<'a>(j: &'a J, name: &str) -> Result<&'a J, String> {
        match j {
            J::Obj(p) => p
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .ok_or_else(|| format!("\"{name}\" is missing")),
            _ => Err("not an object".to_string()),
        }
    }

    fn text<'a>(j: &'a J, name: &str) -> Result<&'a str, String> {
        match field(j, name)? {
            J::Str(t) => Ok(t),
            _ => Err(format!("\"{name}\" is not a string")),
        }
    }

    fn list<'a>(j: &'a J, name: &str) -> Result<&'a [J], String> {
        match field(j, name)? {
            J::Arr(a) => Ok(a),
            _ => Err(format!("\"{name}\" is not a list")),
        }
    }

    fn number(j: &J, name: &str) -> Result<f64, String> {
        match field(j, name)? {
            J::Int(i) => Ok(*i as f64),
            J::Float(f) => Ok(*f),
            _ => Err(format!("\"{name}\" is not a number")),
        }
    }

    pub(crate) fn write(u: &Usage) -> J {
        let credits = u
            .credits
            .iter()
            .map(|c| {
                obj(vec![
                    ("customer_id", s(&c.customer_id.to_string())),
                    ("meter_id", s(&c.meter_id.to_string())),
                    ("units", J::Int(i128::from(c.units))),
                    ("at", s(&fmt_ts(c.at))),
                    ("rollover", J::Bool(c.rollover)),
                    ("reset", J::Bool(c.reset)),
                ])
            })
            .collect();
        let consumed = u
            .consumed
            .values()
            .map(|c| {
                let (kind, who) = match &c.who {
                    Who::Id(id) => ("customer_id", id.to_string()),
                    Who::External(x) => ("external_customer_id", x.clone()),
                };
                obj(vec![
                    (kind, s(&who)),
                    ("meter_id", s(&c.meter_id.to_string())),
                    ("units", J::Float(c.units)),
                    ("first_at", s(&fmt_ts(c.first_at))),
                    ("last_at", s(&fmt_ts(c.last_at))),
                ])
            })
            .collect();
        let external_ids = u
            .external_ids
            .iter()
            .map(|(org, x)| J::Arr(vec![s(&org.to_string()), s(x)]))
            .collect();
        let meters = u
            .meters
            .iter()
            .map(|m| {
                obj(vec![
                    ("id", s(&m.id.to_string())),
                    ("created_at", s(&fmt_ts(m.created_at))),
                ])
            })
            .collect();
        obj(vec![
            ("meters", J::Arr(meters)),
            ("credits", J::Arr(credits)),
            ("consumed", J::Arr(consumed)),
            ("external_ids", J::Arr(external_ids)),
        ])
    }

    /// The usage of a file, over `into`'s meters.
    pub(crate) fn read(j: &J, into: &Usage) -> Result<Usage, String> {
        let mut u = Usage {
            meters: into.meters.clone(),
            ..Usage::default()
        };
        // The seed's meters keep the creation time the file has for them.
        for (i, m) in list(j, "meters")?.iter().enumerate() {
            let at = |e: String| format!("meters[{i}]: {e}");
            let id = parse_uuid4(text(m, "id").map_err(at)?, "id")?;
            let created_at = parse_ts(text(m, "created_at").map_err(at)?)?;
            if let Some(seed) = u.meters.iter_mut().find(|m| m.id == id) {
                seed.created_at = created_at;
            }
        }
        for (i, c) in list(j, "credits")?.iter().enumerate() {
            let at = |e: String| format!("credits[{i}]: {e}");
            u.credits.push(Credit {
                customer_id: parse_uuid4(text(c, "customer_id").map_err(at)?, "customer_id")?,
                meter_id: parse_uuid4(text(c, "meter_id").map_err(at)?, "meter_id")?,
                units: number(c, "units").map_err(at)? as i64,
                at: parse_ts(text(c, "at").map_err(at)?)?,
                // Both absent from files written before they were kept.
                rollover: matches!(field(c, "rollover"), Ok(J::Bool(true))),
                reset: matches!(field(c, "reset"), Ok(J::Bool(true))),
            });
        }
        for (i, c) in list(j, "consumed")?.iter().enumerate() {
            let at = |e: String| format!("consumed[{i}]: {e}");
            let who = match (text(c, "customer_id"), text(c, "external_customer_id")) {
                (Ok(id), _) => Who::Id(parse_uuid4(id, "customer_id")?),
                (_, Ok(x)) => Who::External(x.to_string()),
                (Err(e), _) => return Err(at(e)),
            };
            let meter_id = parse_uuid4(text(c, "meter_id").map_err(at)?, "meter_id")?;
            let consumed = Consumed {
                who: who.clone(),
                meter_id,
                units: number(c, "units").map_err(at)?,
                first_at: parse_ts(text(c, "first_at").map_err(at)?)?,
                last_at: parse_ts(text(c, "last_at").map_err(at)?)?,
            };
            u.consumed.insert((who, meter_id), consumed);
        }
        for (i, x) in list(j, "external_ids")?.iter().enumerate() {
            match x {
                J::Arr(pair) => match pair.as_slice() {
                    [J::Str(org), J::Str(x)] => {
                        u.external_ids
                            .insert((parse_uuid4(org, "organization_id")?, x.clone()));
                    }
                    _ => return Err(format!("external_ids[{i}] is not [organization, id]")),
                },
                _ => return Err(format!("external_ids[{i}] is not a list")),
            }
        }
        Ok(u)
    }
}
