//! A device listing as the relay reads it (issue #64): which key, and which activation is
//! the caller's. Route data ([`crate::route::Route::Devices`]), so that a route can carry one
//! without depending on the listing's rules ([`crate::devices`]).

use polar_license::Key;

/// A device listing, read from its body.
#[derive(Clone)]
pub(crate) struct DevicesAsk {
    pub(crate) key: Key,
    pub(crate) organization_id: crate::ids::OrgId,
    /// The activation the caller holds (a UUID), marked in the answer.
    pub(crate) activation_id: Option<String>,
}

debug_some!(DevicesAsk, a => { "key": a.key, "activation_id": a.activation_id });
