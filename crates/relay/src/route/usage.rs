//! A usage report as the relay reads it (issue #68 item 3): which key, which meter, how many
//! units, under which id. A leaf of its own, so that a request's route
//! ([`crate::route::Route`]) can carry one without depending on the usage buffer's rules
//! ([`crate::usage`]).

use polar_license::Key;

/// A usage report as the relay reads it.
#[derive(Clone)]
pub(crate) struct UsageAsk {
    pub(crate) key: Key,
    pub(crate) organization_id: crate::ids::OrgId,
    pub(crate) meter: String,
    pub(crate) units: f64,
    pub(crate) id: String,
}

debug_some!(UsageAsk, a => { "key": a.key, "meter": a.meter, "units": a.units, "id": a.id });
