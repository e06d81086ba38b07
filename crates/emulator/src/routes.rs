//! Every route the emulator answers, as a list (issue #62 item 5): the table its hostile-input
//! suite (`crates/emulator/tests/hostile.rs`) crosses with every hostile shape, so that a route
//! added here is attacked without a test being edited. A route the router answers must be here:
//! that suite's `every_route_in_the_code_is_in_the_list` reads the router's files for paths
//! and fails on one no route here names.

/// Who a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Caller {
    /// Anyone (Polar's public customer-portal routes).
    Anyone,
    /// An organization access token (`Authorization: Bearer polar_oat_…`).
    Token,
    /// A customer session's token.
    Session,
    /// The emulator's own control routes (`/__emulator/…`), open on loopback.
    Admin,
}

/// One route: its path with `{name}` for each path parameter, the methods it serves, whether
/// it reads a JSON body, and who it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path template (`{id}`, `{key}`, … where a parameter goes).
    pub path: &'static str,
    /// The methods it serves (`HEAD` with `GET`).
    pub methods: &'static [&'static str],
    /// Whether it reads a JSON body (with its methods other than `GET` and `HEAD`).
    pub reads_body: bool,
    /// Who it answers.
    pub caller: Caller,
}

const fn route(
    path: &'static str,
    methods: &'static [&'static str],
    reads_body: bool,
    caller: Caller,
) -> Route {
    Route {
        path,
        methods,
        reads_body,
        caller,
    }
}

use Caller::{Admin, Anyone, Session, Token};

/// Every route the emulator answers (Polar's, then its own control routes).
pub const ROUTES: &[Route] = &[
    route(
        "/v1/customer-portal/license-keys/validate",
        &["POST"],
        true,
        Anyone,
    ),
    route(
        "/v1/customer-portal/license-keys/activate",
        &["POST"],
        true,
        Anyone,
    ),
    route(
        "/v1/customer-portal/license-keys/deactivate",
        &["POST"],
        true,
        Anyone,
    ),
    route("/v1/license-keys/validate", &["POST"], true, Token),
    route("/v1/license-keys/activate", &["POST"], true, Token),
    route("/v1/license-keys/deactivate", &["POST"], true, Token),
    route("/v1/license-keys/", &["GET"], false, Token),
    route("/v1/license-keys/{id}", &["GET", "PATCH"], true, Token),
    route("/v1/license-keys/{id}/rotate", &["POST"], false, Token),
    route(
        "/v1/license-keys/{id}/activations/{activation_id}",
        &["GET"],
        false,
        Token,
    ),
    route(
        "/v1/customer-portal/license-keys/",
        &["GET"],
        false,
        Session,
    ),
    route(
        "/v1/customer-portal/license-keys/{id}",
        &["GET"],
        false,
        Session,
    ),
    route(
        "/v1/customer-portal/license-keys/{id}/rotate",
        &["POST"],
        false,
        Session,
    ),
    route(
        "/v1/customer-portal/customer-session/request",
        &["POST"],
        true,
        Anyone,
    ),
    route(
        "/v1/customer-portal/customer-session/authenticate",
        &["POST"],
        true,
        Anyone,
    ),
    route("/v1/customer-sessions/", &["POST"], true, Token),
    route("/v1/benefit-grants/", &["GET"], false, Token),
    route("/v1/customers/{id}/state", &["GET"], false, Token),
    // The organization and its benefits (issue #78: `polar-license doctor`'s reads).
    route("/v1/organizations/", &["GET"], false, Token),
    route("/v1/organizations/{id}", &["GET"], false, Token),
    route("/v1/benefits/", &["GET"], false, Token),
    route("/v1/customers/external/{id}/state", &["GET"], false, Token),
    // Meters and credits (§16.5; the `billing` feature, which the npm emulator leaves out).
    #[cfg(feature = "billing")]
    route("/v1/events/ingest", &["POST"], true, Token),
    #[cfg(feature = "billing")]
    route("/v1/customer-meters/", &["GET"], false, Token),
    #[cfg(feature = "billing")]
    route("/v1/customer-meters/{id}", &["GET"], false, Token),
    #[cfg(feature = "billing")]
    route("/v1/customer-portal/meters/", &["GET"], false, Session),
    #[cfg(feature = "billing")]
    route("/v1/customer-portal/meters/{id}", &["GET"], false, Session),
    // Issue #78's reads (service/reads.rs): the customer portal's, then the organization's.
    route(
        "/v1/customer-portal/customer-session/introspect",
        &["GET"],
        false,
        Session,
    ),
    route(
        "/v1/customer-portal/customer-session/user",
        &["GET"],
        false,
        Session,
    ),
    route("/v1/customer-portal/customers/me", &["GET"], false, Session),
    route(
        "/v1/customer-portal/benefit-grants/",
        &["GET"],
        false,
        Session,
    ),
    route(
        "/v1/customer-portal/benefit-grants/{id}",
        &["GET"],
        false,
        Session,
    ),
    #[cfg(feature = "billing")]
    route(
        "/v1/customer-portal/subscriptions/",
        &["GET"],
        false,
        Session,
    ),
    #[cfg(feature = "billing")]
    route(
        "/v1/customer-portal/subscriptions/{id}",
        &["GET"],
        false,
        Session,
    ),
    route("/v1/customer-portal/seats", &["GET"], false, Session),
    route("/v1/benefits/{id}", &["GET"], false, Token),
    route("/v1/customers/{id}", &["GET"], false, Token),
    #[cfg(feature = "billing")]
    route("/v1/subscriptions/{id}", &["GET"], false, Token),
    #[cfg(feature = "billing")]
    route("/v1/meters/", &["GET"], false, Token),
    #[cfg(feature = "billing")]
    route("/v1/meters/{id}", &["GET"], false, Token),
    #[cfg(feature = "billing")]
    route("/v1/meters/{id}/quantities", &["GET"], false, Token),
    #[cfg(feature = "billing")]
    route("/v1/events/", &["GET"], false, Token),
    route("/v1/webhooks/endpoints", &["GET", "POST"], true, Token),
    route(
        "/v1/webhooks/endpoints/{id}",
        &["GET", "PATCH", "DELETE"],
        true,
        Token,
    ),
    route(
        "/v1/webhooks/endpoints/{id}/secret",
        &["PATCH"],
        true,
        Token,
    ),
    route("/v1/webhooks/deliveries", &["GET"], false, Token),
    route(
        "/v1/webhooks/events/{id}/redeliver",
        &["POST"],
        false,
        Token,
    ),
    // Checkouts (issue #80, service/checkouts.rs).
    route("/v1/checkouts/", &["POST"], true, Token),
    route(
        "/v1/checkouts/client/{client_secret}",
        &["GET"],
        false,
        Anyone,
    ),
    route(
        "/v1/checkouts/client/{client_secret}/confirm",
        &["POST"],
        true,
        Anyone,
    ),
    route(
        "/v1/checkout-links/{client_secret}/redirect",
        &["GET"],
        false,
        Anyone,
    ),
    route("/__emulator/health", &["GET"], false, Admin),
    route("/__emulator/requests", &["GET"], false, Admin),
    route("/__emulator/requests/reset", &["POST"], false, Admin),
    route("/__emulator/streams", &["GET"], false, Admin),
    route("/__emulator/fault", &["GET", "POST"], true, Admin),
    route("/__emulator/clock", &["GET", "POST"], true, Admin),
    route("/__emulator/rate-limit", &["GET", "POST"], true, Admin),
    route("/__emulator/api-versions", &["GET", "POST"], true, Admin),
    route("/__emulator/requests/seen", &["GET"], false, Admin),
    route("/__emulator/webhooks/fault", &["GET", "POST"], true, Admin),
    route("/__emulator/keys", &["POST"], true, Admin),
    route("/__emulator/customer-session/codes", &["GET"], false, Admin),
    route("/__emulator/checkouts", &["GET", "POST"], true, Admin),
    route("/__emulator/benefits/{id}", &["GET", "PATCH"], true, Admin),
    route(
        "/__emulator/webhooks/endpoints/{id}",
        &["PATCH"],
        true,
        Admin,
    ),
    route("/__emulator/keys/{key}", &["GET", "PATCH"], true, Admin),
    route(
        "/__emulator/keys/{key}/benefits/{benefit_id}",
        &["PATCH"],
        true,
        Admin,
    ),
    route("/__emulator/keys/{key}/cycle", &["POST"], false, Admin),
    // The subscription's lifecycle (§16.6; the `billing` feature).
    #[cfg(feature = "billing")]
    route(
        "/__emulator/keys/{key}/subscription",
        &["POST"],
        true,
        Admin,
    ),
    #[cfg(feature = "billing")]
    route("/__emulator/keys/{key}/refund", &["POST"], true, Admin),
    #[cfg(feature = "billing")]
    route(
        "/__emulator/keys/{key}/seat/revoke",
        &["POST"],
        false,
        Admin,
    ),
    route("/__emulator/keys/{key}/rotate", &["POST"], false, Admin),
    route("/__emulator/keys/{key}/activations", &["GET"], false, Admin),
];
