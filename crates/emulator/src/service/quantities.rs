//! `GET /v1/meters/{id}/quantities` (docs/polar-api.md §16.7; Polar's `meter/endpoints.py`
//! `quantities`, scope `meters:read` or `:write`): the query read as FastAPI reads it
//! (`start_timestamp`, `end_timestamp` and `interval` required; `timezone`, `customer_id`,
//! `external_customer_id` and `metadata[key]` filters), the range checked as
//! `kit/time_queries.py`'s `is_under_limits`, the meter's quantities evaluated by the store
//! (state/quantities.rs). The emulator takes only the `UTC` time zone (Polar's default), and
//! not `customer_aggregation_function`.

use uuid::Uuid;

use super::portal::query_pairs;
use super::{Core, Exchange, Resp};
use crate::json::{obj, s, J};
use crate::state::{Interval, QuantityQuery};
use crate::util::fmt_ts;
use crate::validate::{error_body, path_uuid_error, query_uuid_error, VErr};

fn missing(name: &str) -> VErr {
    VErr::new(
        "missing",
        vec![s("query"), s(name)],
        "Field required",
        &J::Null,
        None,
    )
}

impl Core {
    /// The meter `id`'s quantities for `organization_id`.
    pub(super) fn meter_quantities(&self, ex: &Exchange, organization_id: Uuid, id: &str) -> Resp {
        if let Some(e) = path_uuid_error("id", id) {
            return Resp::json(422, &error_body(&[e]));
        }
        let pairs = query_pairs(&ex.head.target);
        let last = |name: &str| super::portal::last_value(&pairs, name);
        let mut errors = Vec::new();
        let mut bounds = [None, None];
        for (slot, name) in bounds.iter_mut().zip(["start_timestamp", "end_timestamp"]) {
            match last(name) {
                None => errors.push(missing(name)),
                Some(v) => match super::reads::query_timestamp(name, &v) {
                    Ok(t) => *slot = Some(t),
                    Err(e) => errors.push(*e),
                },
            }
        }
        // `ge=MIN_DATETIME` (2023-01-01, "Before that, Polar didn't even exist").
        let min = time::Date::from_calendar_date(2023, time::Month::January, 1)
            .map(|d| d.midnight().assume_utc())
            .ok();
        if let Some(start) = bounds[0].filter(|t| min.is_some_and(|min| *t < min)) {
            errors.push(VErr::new(
                "greater_than_equal",
                vec![s("query"), s("start_timestamp")],
                "Input should be greater than or equal to 2023-01-01T00:00:00Z",
                &J::Str(fmt_ts(start)),
                Some(obj(vec![("ge", s("2023-01-01T00:00:00Z"))])),
            ));
        }
        let interval = match last("interval") {
            None => {
                errors.push(missing("interval"));
                None
            }
            Some(v) => {
                let parsed = Interval::parse(&v);
                if parsed.is_none() {
                    errors.push(VErr::new(
                        "enum",
                        vec![s("query"), s("interval")],
                        "Input should be 'year', 'month', 'week', 'day' or 'hour'",
                        &J::Str(v.clone()),
                        Some(obj(vec![(
                            "expected",
                            s("'year', 'month', 'week', 'day' or 'hour'"),
                        )])),
                    ));
                }
                parsed
            }
        };
        if let Some(tz) = last("timezone").filter(|tz| tz != "UTC") {
            errors.push(VErr::new(
                "value_error",
                vec![s("query"), s("timezone")],
                "Value error, the emulator takes only the UTC time zone",
                &J::Str(tz),
                None,
            ));
        }
        let mut customers = Vec::new();
        let mut externals = Vec::new();
        let mut metadata: Vec<(String, Vec<String>)> = Vec::new();
        for (name, value) in &pairs {
            if name == "customer_id" {
                match query_uuid_error(name, value) {
                    Some(e) => errors.push(e),
                    None => customers.extend(Uuid::parse_str(value).ok()),
                }
            } else if name == "external_customer_id" {
                externals.push(value.clone());
            } else if let Some(key) = name
                .strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .filter(|k| !k.is_empty() && !k.contains(']'))
            {
                match metadata.iter_mut().find(|(k, _)| k == key) {
                    Some((_, values)) => values.push(value.clone()),
                    None => metadata.push((key.to_string(), vec![value.clone()])),
                }
            }
        }
        if !errors.is_empty() {
            return Resp::json(422, &error_body(&errors));
        }
        let ([Some(start), Some(end)], Some(interval)) = (bounds, interval) else {
            return Resp::internal_error();
        };
        let Some(meter) = Uuid::parse_str(id).ok() else {
            return Resp::error(404, "ResourceNotFound", "Not found");
        };
        if !self
            .store
            .org_meters(organization_id)
            .iter()
            .any(|(m, _, _)| *m == meter)
        {
            return Resp::error(404, "ResourceNotFound", "Not found");
        }
        // `is_under_limits`: by their dates, the start not after the end and the range within
        // the interval's most days.
        let days = i64::from(end.date().to_julian_day()) - i64::from(start.date().to_julian_day());
        if start.date() > end.date() || days > interval.max_days() {
            let input = J::Arr(vec![
                s(&fmt_ts(start)),
                s(&fmt_ts(end)),
                s(match interval {
                    Interval::Year => "year",
                    Interval::Month => "month",
                    Interval::Week => "week",
                    Interval::Day => "day",
                    Interval::Hour => "hour",
                }),
            ]);
            let e = VErr::new(
                "value_error",
                vec![s("query")],
                "The interval is too small for the given date range. Use a larger interval or \
                 reduce the date range.",
                &input,
                None,
            );
            return Resp::json(422, &error_body(&[e]));
        }
        let query = QuantityQuery {
            start,
            end,
            interval,
            customers,
            externals,
            metadata,
        };
        let Some((rows, total)) = self.store.meter_quantities(organization_id, meter, &query)
        else {
            return Resp::error(404, "ResourceNotFound", "Not found");
        };
        let quantities = rows
            .into_iter()
            .map(|(at, q)| {
                obj(vec![
                    ("timestamp", s(&fmt_ts(at))),
                    ("quantity", J::Float(q)),
                ])
            })
            .collect();
        Resp::json(
            200,
            &obj(vec![
                ("quantities", J::Arr(quantities)),
                ("total", J::Float(total)),
            ]),
        )
    }
}
