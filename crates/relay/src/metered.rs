//! What a usage report may name (issue #68 item 3, issue #76): the rule for a meter's (an
//! event's) name and the most names a seller's list holds. A leaf, because two parts check
//! it: the store's options (the seller's `usage_events`, checked when the relay is made) and
//! the usage route's read of a report.

/// The most event names a seller's list ([`crate::store::StoreOptions::usage_events`]) holds.
pub const MAX_EVENTS: usize = 64;

/// The longest meter (event) name, in bytes (Polar's `name` ≤ 128).
const MAX_METER_BYTES: usize = 128;

/// Whether `name` is a well-formed event (meter) name: 1 to 128 bytes, no control character.
pub(crate) fn is_event_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_METER_BYTES && !name.chars().any(char::is_control)
}
