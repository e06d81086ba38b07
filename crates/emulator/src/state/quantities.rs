//! A meter's quantities over time (docs/polar-api.md §16.7; Polar's `meter/service.py`
//! `get_quantities`): the events a meter matches, bucketed by `date_trunc(interval, timestamp)`
//! along `generate_series(start, end, '1 interval')`, each bucket aggregated by the meter's
//! function, and the total: for `count` and `sum` the running sum of the buckets (its last
//! row's), for `unique` the distinct values of every event the meter matches, whatever its
//! time (Polar's total subquery has no time clause).
//!
//! The emulator evaluates the events it keeps (the latest [`super::meters::MAX_EVENTS`], in
//! memory), in UTC only.

use std::collections::BTreeSet;

use time::{Date, Duration, Month, OffsetDateTime, Time};
use uuid::Uuid;

use super::meters::{EventRec, Who};
use super::Store;
use crate::json::J;
use crate::seed::Aggregation;

/// Polar's `TimeInterval` (`kit/time_queries.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interval {
    Year,
    Month,
    Week,
    Day,
    Hour,
}

impl Interval {
    /// The interval a query names (`None`: not one of Polar's).
    pub(crate) fn parse(text: &str) -> Option<Interval> {
        Some(match text {
            "year" => Interval::Year,
            "month" => Interval::Month,
            "week" => Interval::Week,
            "day" => Interval::Day,
            "hour" => Interval::Hour,
            _ => return None,
        })
    }

    /// `MAX_INTERVAL_DAYS`: the longest range this interval may cover, in days.
    pub(crate) fn max_days(self) -> i64 {
        match self {
            Interval::Hour => 7,
            Interval::Day => 366,
            Interval::Week => 7 * 53,
            Interval::Month => 365 * 4,
            Interval::Year => 365 * 10,
        }
    }

    /// Postgres's `date_trunc` in UTC (a week starts on Monday).
    fn trunc(self, t: OffsetDateTime) -> OffsetDateTime {
        let date = t.date();
        let at = |d: Date| d.with_time(Time::MIDNIGHT).assume_utc();
        match self {
            Interval::Hour => t
                .replace_minute(0)
                .and_then(|t| t.replace_second(0))
                .and_then(|t| t.replace_nanosecond(0))
                .unwrap_or(t),
            Interval::Day => at(date),
            Interval::Week => {
                let back = i64::from(date.weekday().number_days_from_monday());
                at(date - Duration::days(back))
            }
            Interval::Month => at(date.replace_day(1).unwrap_or(date)),
            Interval::Year => {
                at(Date::from_calendar_date(date.year(), Month::January, 1).unwrap_or(date))
            }
        }
    }

    /// `start + n * '1 interval'`, as Postgres adds a calendar month (the day clamped to the
    /// month's last).
    fn nth(self, start: OffsetDateTime, n: i64) -> Option<OffsetDateTime> {
        let months = match self {
            Interval::Hour => return start.checked_add(Duration::hours(n)),
            Interval::Day => return start.checked_add(Duration::days(n)),
            Interval::Week => return start.checked_add(Duration::weeks(n)),
            Interval::Month => n,
            Interval::Year => n.checked_mul(12)?,
        };
        let date = start.date();
        let index = i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1 + months;
        let year = i32::try_from(index.div_euclid(12)).ok()?;
        let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
        let day = date.day().min(month.length(year));
        let date = Date::from_calendar_date(year, month, day).ok()?;
        Some(date.with_time(start.time()).assume_offset(start.offset()))
    }
}

/// What `GET /v1/meters/{id}/quantities` asks, checked.
#[derive(Debug, Clone)]
pub(crate) struct QuantityQuery {
    pub(crate) start: OffsetDateTime,
    pub(crate) end: OffsetDateTime,
    pub(crate) interval: Interval,
    /// `customer_id` (repeatable; empty: any).
    pub(crate) customers: Vec<Uuid>,
    /// `external_customer_id` (repeatable; empty: any).
    pub(crate) externals: Vec<String>,
    /// `metadata[key]=value` (each key: any of its values; every key must match).
    pub(crate) metadata: Vec<(String, Vec<String>)>,
}

/// The most buckets a query may ask (Polar's own limits keep a day's series within 367; an
/// hour's within 7 × 24 + 1).
const MAX_BUCKETS: usize = 10_000;

/// A metadata value as Postgres's `->>` gives it (`as_string()`): a string as it is, a number
/// or a boolean as its JSON text.
fn as_text(v: &J) -> Option<String> {
    match v {
        J::Str(x) => Some(x.clone()),
        J::Int(i) => Some(i.to_string()),
        J::Float(f) => Some(crate::json::py_float_repr(*f)),
        J::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn metadata<'a>(e: &'a EventRec, key: &str) -> Option<&'a J> {
    e.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

impl Store {
    /// The quantities of meter `meter_id` of `organization_id` (`None`: no such meter): each
    /// bucket's `(timestamp, quantity)`, and the total.
    pub(crate) fn meter_quantities(
        &self,
        organization_id: Uuid,
        meter_id: Uuid,
        q: &QuantityQuery,
    ) -> Option<(Vec<(OffsetDateTime, f64)>, f64)> {
        let meter = self
            .usage
            .meters
            .iter()
            .find(|m| m.id == meter_id && m.organization_id == organization_id)?;
        let number = |e: &EventRec, p: &str| match metadata(e, p) {
            Some(J::Int(i)) => Some(*i as f64),
            Some(J::Float(f)) => Some(*f),
            _ => None,
        };
        // The meter's clause (its name filter, and a sum's numbers only), the customer and
        // metadata filters.
        let matched: Vec<&EventRec> = self
            .usage
            .events
            .iter()
            .filter(|e| e.organization_id == organization_id && e.name == meter.event_name)
            .filter(|e| match &meter.aggregation {
                Aggregation::Sum(p) => number(e, p).is_some(),
                Aggregation::Count | Aggregation::Unique(_) => true,
            })
            .filter(|e| {
                let any = q.customers.is_empty() && q.externals.is_empty();
                any || match &e.who {
                    Who::Id(id) => q.customers.contains(id),
                    Who::External(x) => q.externals.contains(x),
                }
            })
            .filter(|e| {
                q.metadata.iter().all(|(key, values)| {
                    metadata(e, key)
                        .and_then(as_text)
                        .is_some_and(|v| values.contains(&v))
                })
            })
            .collect();
        let aggregate = |events: &[&EventRec]| -> f64 {
            match &meter.aggregation {
                Aggregation::Count => events.len() as f64,
                Aggregation::Sum(p) => events.iter().filter_map(|e| number(e, p)).sum(),
                // `count(distinct attr)`: the JSON values, NULL (absent) not counted.
                Aggregation::Unique(p) => events
                    .iter()
                    .filter_map(|e| metadata(e, p).and_then(|v| v.to_json().ok()))
                    .collect::<BTreeSet<String>>()
                    .len() as f64,
            }
        };
        let mut rows = Vec::new();
        let mut running = 0.0;
        for n in 0.. {
            let Some(at) = q.interval.nth(q.start, n).filter(|t| *t <= q.end) else {
                break;
            };
            if rows.len() >= MAX_BUCKETS {
                break;
            }
            let bucket = q.interval.trunc(at);
            let inside: Vec<&EventRec> = matched
                .iter()
                .copied()
                .filter(|e| q.interval.trunc(e.timestamp) == bucket)
                .collect();
            let quantity = aggregate(&inside);
            running += quantity;
            rows.push((at, quantity));
        }
        let total = match meter.aggregation {
            Aggregation::Unique(_) => aggregate(&matched),
            Aggregation::Count | Aggregation::Sum(_) => running,
        };
        Some((rows, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> OffsetDateTime {
        crate::util::parse_ts(text).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn truncation_and_steps_are_postgres_s() {
        let at = t("2026-11-29T13:45:10Z");
        assert_eq!(Interval::Hour.trunc(at), t("2026-11-29T13:00:00Z"));
        assert_eq!(Interval::Day.trunc(at), t("2026-11-29T00:00:00Z"));
        // 2026-11-29 is a Sunday: its week began on Monday the 23rd.
        assert_eq!(Interval::Week.trunc(at), t("2026-11-23T00:00:00Z"));
        assert_eq!(Interval::Month.trunc(at), t("2026-11-01T00:00:00Z"));
        assert_eq!(Interval::Year.trunc(at), t("2026-01-01T00:00:00Z"));
        let jan31 = t("2027-01-31T08:00:00Z");
        assert_eq!(
            Interval::Month.nth(jan31, 1),
            Some(t("2027-02-28T08:00:00Z"))
        );
        assert_eq!(
            Interval::Year.nth(jan31, 2),
            Some(t("2029-01-31T08:00:00Z"))
        );
        assert_eq!(Interval::Day.nth(jan31, 3), Some(t("2027-02-03T08:00:00Z")));
    }
}
