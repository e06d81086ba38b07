//! The three online commands: build the client, send, render.

use crate::args::{ActivateArgs, DeactivateArgs, Global, ServerChoice, ValidateArgs};
use crate::output::{error_report, report, Op, Report};
use polar_license::{
    ActivateRequest, BlockingClient, DeactivateRequest, Error, Key, MetaValue, Metadata, Server,
    ValidateRequest, Verdict, DEFAULT_CONNECT_TIMEOUT,
};

/// Builds the client from the global options. A bad option is `invalid_input`, before any
/// request.
pub fn client(g: &Global) -> Result<BlockingClient, Error> {
    let org = g.org.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::invalid(
            "organization_id",
            "is required: pass --org or set POLAR_ORGANIZATION_ID",
        )
    })?;
    let mut builder = BlockingClient::builder(org);
    builder = match g.base_url.as_deref().filter(|s| !s.is_empty()) {
        Some(url) => builder.base_url(url),
        None => builder.server(match g.server {
            ServerChoice::Production => Server::Production,
            ServerChoice::Sandbox => Server::Sandbox,
        }),
    };
    if let Some(t) = g.timeout {
        builder = builder
            .timeout(t)
            .connect_timeout(t.min(DEFAULT_CONNECT_TIMEOUT));
    }
    if let Some(token) = g.access_token.as_deref().filter(|s| !s.is_empty()) {
        builder = builder.access_token(token);
    }
    builder.build()
}

fn metadata(pairs: &[(String, MetaValue)]) -> Metadata {
    pairs.iter().cloned().collect()
}

/// `validate`
pub fn validate(g: &Global, a: &ValidateArgs) -> Report {
    let key = Key::new(a.key.key.as_str());
    let requested = a.activation_id.as_deref();
    let client = match client(g) {
        Ok(c) => c,
        Err(e) => return error_report(Some(Op::Validate), requested, &e),
    };
    let req = ValidateRequest {
        key: Some(key.clone()),
        activation_id: a.activation_id.clone(),
        benefit_id: a.benefit_id.clone(),
        customer_id: a.customer_id.clone(),
        increment_usage: a.increment_usage,
        conditions: metadata(&a.conditions),
    };
    report(Op::Validate, &key, requested, &client.validate(&req))
}

/// `activate`
pub fn activate(g: &Global, a: &ActivateArgs) -> Report {
    let key = Key::new(a.key.key.as_str());
    let client = match client(g) {
        Ok(c) => c,
        Err(e) => return error_report(Some(Op::Activate), None, &e),
    };
    let req = ActivateRequest {
        key: Some(key.clone()),
        label: a.label.clone(),
        conditions: metadata(&a.conditions),
        meta: metadata(&a.meta),
    };
    report(Op::Activate, &key, None, &client.activate(&req))
}

/// `deactivate`
pub fn deactivate(g: &Global, a: &DeactivateArgs) -> Report {
    let key = Key::new(a.key.key.as_str());
    let requested = a.activation_id.as_deref();
    let result: Result<Verdict<()>, Error> = match (client(g), requested) {
        (Err(e), _) => Err(e),
        (Ok(_), None) => Err(Error::invalid(
            "activation_id",
            "is required: pass --activation-id (the offline cache that will remember it is not there yet)",
        )),
        (Ok(client), Some(id)) => client.deactivate(&DeactivateRequest::new(key.clone(), id)),
    };
    report(Op::Deactivate, &key, requested, &result)
}
