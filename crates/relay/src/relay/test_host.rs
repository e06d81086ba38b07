//! The crate's unit tests' relay and blocking host.

#![allow(clippy::expect_used, clippy::panic)] // tests: a panic is the failure report

use polar_license::{HttpResponse, TransportError, TransportErrorKind};

use super::Relay;
use crate::clock::Now;
use crate::flow::{Exchange, ExchangeOptions, Given, Need};
use crate::types::{Limits, RelayConfig, RelayRequest, RelayResponse};

impl Relay {
    /// The unit tests' relay of `config` whose transport is never called (a machine's host
    /// sends), its leases' ids from `[7; 16]`.
    #[allow(clippy::expect_used, clippy::panic)] // tests: a panic is the failure report
    pub(crate) fn never_calling(config: RelayConfig) -> Relay {
        let never = |_: &polar_license::HttpRequest| -> Result<HttpResponse, TransportError> {
            panic!("the machines' host calls Polar, never the relay's transport")
        };
        Relay::with_entropy(config, Box::new(never), Box::new(|| Some([7; 16]))).expect("a relay")
    }

    /// The limits in force.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// The crate's unit tests' blocking host (the integration tests' is `Relayed` in
    /// tests/rig): one request through the request machine ([`crate::flow::Exchange`]), a
    /// call to Polar made through the relay's transport and waited for (no stale answer), a
    /// wait for another check's call blocking on its flight.
    pub(crate) fn handle(&self, req: &RelayRequest, now: Now) -> RelayResponse {
        let options = ExchangeOptions::default();
        let head = RelayRequest {
            body: Vec::new(),
            ..req.clone()
        };
        let mut exchange = Exchange::new(head, options);
        let mut answer = None;
        loop {
            let given = match exchange.want(self, now, (self.entropy)()) {
                Need::Body { max } => Given::Body(req.body[..req.body.len().min(max)].to_vec()),
                Need::Load(_) => Given::Loaded,
                Need::Flight { flight, .. } => {
                    self.wait_flight(&flight);
                    Given::Landed
                }
                Need::Send {
                    request, method, ..
                } => Given::Upstream(crate::flow::send(&*self.transport, &request, method)),
                // The calling thread is the slot.
                Need::Slot { .. } => Given::Slot,
                // Never asked: no patience is given, so no call goes on past its check.
                Need::Call => Given::Upstream(Err(TransportError::new(
                    TransportErrorKind::Other,
                    "no call under way",
                ))),
                // The relay signs its own leases natively; a lease it cannot sign goes without.
                Need::Sign(_) => Given::Signature(Vec::new()),
                Need::Persist => Given::Persisted(true),
                Need::Landed(_) => continue,
                log @ (Need::Warn(_) | Need::Error(_)) => {
                    log.log();
                    continue;
                }
                Need::Respond(r) => {
                    answer = Some(r);
                    continue;
                }
                Need::Done => break,
            };
            exchange.give(given);
        }
        answer.unwrap_or_else(|| RelayResponse::unreached("the relay could not answer"))
    }

    /// Blocks until the call for the entry `flight` (its hex id, as a [`crate::flow::Need::Flight`] names it)
    /// lands, at most 30 s; at once when there is none under way.
    fn wait_flight(&self, flight: &str) {
        if let Some(f) = self.flight(flight) {
            f.wait();
        }
    }
}
