//! Buying in the app on the native shell (issue #80): the core's [`Purchase`] machine driven by
//! the one loop ([`BlockingClient::drive`]), then the key it found activated here as
//! [`Licensing::activate_update`] does (remembered when remembering is on), so the buyer never
//! types a key. Every step, wait and retry is the machine's; nothing here decides.

use crate::flow::update::Activated;
use crate::model::LicenseKeyRead;
use crate::portal::{PortalError, SessionToken};
use crate::proto::ActivateRequest;
use crate::purchase::{
    checkout_of_link, checkout_of_relay, open_link, Bought, CheckoutAsk, Purchase, PurchaseError,
    Receipt,
};

use super::{BlockingClient, Licensing};

/// How a purchase in the app ended well.
#[derive(Debug)]
pub enum Purchased {
    /// The key bought, activated here (`activated` says how Polar answered: a limit, say),
    /// the key itself (show its `display_key`, never the key whole).
    Activated {
        /// The key bought.
        key: Box<LicenseKeyRead>,
        /// Its activation here.
        activated: Box<Activated>,
    },
    /// Paid, but Polar gave no customer session (the buyer's email matched an existing
    /// customer): ask Polar to email a sign-in code to [`Receipt::email`]
    /// ([`BlockingClient::request_sign_in_code`]), sign in with it
    /// ([`BlockingClient::sign_in`]), then [`Licensing::buy_signed_in`].
    SignIn(Receipt),
}

impl BlockingClient {
    /// Opens a checkout from a checkout link (its URL or its `polar_cl_…` secret), the buyer's
    /// email prefilled when given: the new checkout's URL, to show the buyer (and to follow,
    /// [`Licensing::buy`]).
    pub fn open_checkout_link(
        &self,
        link: &str,
        email: Option<&str>,
    ) -> Result<String, PurchaseError> {
        let request = open_link(self.api(), link, email)
            .map_err(|e| PurchaseError::Portal(PortalError::Invalid(e)))?;
        let response = self
            .portal_response(&request)
            .map_err(|e| PurchaseError::Portal(PortalError::Offline(e)))?;
        checkout_of_link(&response)
    }

    /// Asks the seller's relay at `relay_url` to make a checkout (`ask`: a product the seller
    /// allows there, the app's metadata; issue #80): the new checkout's URL, to show the buyer
    /// and to follow ([`Licensing::buy`]), as [`BlockingClient::open_checkout_link`]'s.
    pub fn open_relay_checkout(
        &self,
        relay_url: &str,
        ask: &CheckoutAsk,
    ) -> Result<String, PurchaseError> {
        let request = ask
            .request(relay_url)
            .map_err(|e| PurchaseError::Portal(PortalError::Invalid(e)))?;
        let response = self
            .portal_response(&request)
            .map_err(|e| PurchaseError::Portal(PortalError::Offline(e)))?;
        checkout_of_relay(&response)
    }
}

impl Licensing {
    /// Asks the seller's relay this licensing knows (the builder's
    /// [`super::LicensingBuilder::relay_url`], else signed mode's base URL) to make a checkout
    /// ([`BlockingClient::open_relay_checkout`]): the new checkout's URL. No relay known:
    /// `invalid_input` naming `relay_url`, nothing sent.
    pub fn open_relay_checkout(&self, ask: &CheckoutAsk) -> Result<String, PurchaseError> {
        let Some(relay) = self.known_relay() else {
            return Err(PurchaseError::Portal(PortalError::Invalid(
                crate::Error::invalid(
                    "relay_url",
                    "no seller's relay: name it with LicensingBuilder::relay_url (in signed mode the base URL is the relay)",
                ),
            )));
        };
        self.client().open_relay_checkout(relay, ask)
    }

    /// Buys in the app: follows the checkout (`checkout`: its URL or client secret) until the
    /// buyer has paid, finds the key bought through the customer `session` Polar handed back
    /// (the confirmation's answer, or the success URL's `customer_session_token`:
    /// [`crate::purchase::session_from_success_url`]), waits while Polar is still issuing it,
    /// and activates it here with `label`. Without a session, [`Purchased::SignIn`].
    ///
    /// Failures typed ([`PurchaseError`]): the checkout unknown, expired, failed or unpaid, the
    /// key still being issued two minutes after the purchase (`key_issuing`, never
    /// `not_found`), or the portal's own.
    pub fn buy(
        &self,
        checkout: &str,
        session: Option<&SessionToken>,
        label: &str,
    ) -> Result<Purchased, PurchaseError> {
        let machine = Purchase::new(self.client().api(), checkout, session.cloned());
        self.bought(machine, label)
    }

    /// The rest of a purchase that ended with [`Purchased::SignIn`], once the buyer signed in
    /// with the emailed code: the key bought found through `session` and activated here.
    pub fn buy_signed_in(
        &self,
        receipt: Receipt,
        session: &SessionToken,
        label: &str,
    ) -> Result<Purchased, PurchaseError> {
        let machine = Purchase::signed_in(self.client().api(), receipt, session.clone());
        self.bought(machine, label)
    }

    fn bought(&self, machine: Purchase, label: &str) -> Result<Purchased, PurchaseError> {
        match self.client().drive(machine).outcome()? {
            Bought::SignIn(receipt) => Ok(Purchased::SignIn(receipt)),
            Bought::Key(key) => {
                let activated = self.activate_update(&ActivateRequest::new(key.key.clone(), label));
                Ok(Purchased::Activated {
                    key,
                    activated: Box::new(activated),
                })
            }
        }
    }
}
