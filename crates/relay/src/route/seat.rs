//! A seat request as the relay reads it (issue #67): what it asks and of which key. Route data
//! ([`crate::route::Route::Seat`]), so that a route can carry one without depending on the
//! seats' rules ([`crate::seats`]).

use polar_license::Key;

/// What a seat request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeatOp {
    Acquire,
    Heartbeat,
    Release,
}

impl SeatOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SeatOp::Acquire => "acquire",
            SeatOp::Heartbeat => "heartbeat",
            SeatOp::Release => "release",
        }
    }
}

/// A seat request, read.
#[derive(Clone)]
pub(crate) struct SeatAsk {
    pub(crate) op: SeatOp,
    pub(crate) key: Key,
    pub(crate) organization_id: crate::ids::OrgId,
    /// The machine binding as sent (signed into the seat lease as its implicit assertion).
    pub(crate) machine: String,
    /// The seat's id, canonical (a UUID, hyphenated, lower case).
    pub(crate) seat: Option<String>,
    pub(crate) ci: bool,
    /// An acquisition to borrow the seat for offline use, for this many days.
    pub(crate) borrow_days: Option<u32>,
}

debug_some!(SeatAsk, a => { "op": a.op.as_str(), "key": a.key, "seat": a.seat, "borrow_days": a.borrow_days });
