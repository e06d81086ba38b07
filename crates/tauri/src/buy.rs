//! Buying in the app (issue #80): `open_checkout_link`, `open_relay_checkout`, `buy` and
//! `buy_signed_in`. The steps are the core's purchase machine ([`Licensing::buy`],
//! [`Licensing::buy_signed_in`]: the checkout read until paid, the customer's keys listed
//! through the session Polar handed back, the key bought asked for until Polar has issued it,
//! then activated and remembered); here its answers only become typed data for the webview.
//! The whole key never crosses to the webview.

use crate::answers::{Activated, DeviceError, LicenseError};
use crate::PolarLicense;
use polar_license::metadata::Metadata;
use polar_license::purchase::{session_from_success_url, CheckoutAsk, PurchaseError, Receipt};
use polar_license::{Error, Licensing, Purchased};
use serde::{Deserialize, Serialize};
use tauri::State;

/// `buy`'s answer: the key bought, activated here, or the sign-in that finishes the purchase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bought {
    /// The key bought, redacted (`****-4C5B6A`); `null` with `signIn`.
    pub display_key: Option<String>,
    /// Its activation here (remembered); `null` with `signIn`.
    pub activated: Option<Activated>,
    /// Paid, but Polar handed back no customer session (the buyer's email matched an existing
    /// customer): the code was asked for at the checkout's address; `signIn(code)`, then
    /// `buySignedIn(signIn)`.
    pub sign_in: Option<PurchaseSignIn>,
}

/// A purchase that needs the emailed code: what `buySignedIn` takes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseSignIn {
    /// The checkout's id.
    pub checkout_id: String,
    /// The checkout's address, where the code went.
    pub email: Option<String>,
    /// When the checkout was made, unix seconds.
    pub created_at: Option<i64>,
    /// The license-key benefits of the product bought.
    pub benefit_ids: Vec<String>,
    /// The core's sentence and next step.
    pub user_message: String,
    /// The next step alone.
    pub next_step: String,
}

/// Why a purchase ended without a key: the purchase's own failure (`purchaseError`:
/// `key_issuing`, `checkout_expired`, `checkout_failed`, `checkout_not_found`, `not_paid`),
/// a portal step's ([`DeviceError`]) or the activation's ([`LicenseError`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BuyError {
    /// The checkout or the key bought.
    Purchase(PurchaseFailure),
    /// A step of the customer portal, or no answer (boxed: the core's words make it large).
    Portal(Box<DeviceError>),
    /// The activation of the key bought.
    License(Box<LicenseError>),
}

/// A purchase's own failure, in the core's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseFailure {
    /// The core's name for it (`key_issuing`: paid, Polar still issuing the key two minutes
    /// later: try again; never `not_found`).
    pub purchase_error: String,
    /// The sentence and its next step, for the person using the app.
    pub user_message: String,
    /// The next step alone.
    pub next_step: String,
}

impl BuyError {
    fn of(e: &PurchaseError) -> BuyError {
        if let PurchaseError::Portal(p) = e {
            return BuyError::Portal(Box::new(DeviceError::of(p)));
        }
        let said = e.message();
        BuyError::Purchase(PurchaseFailure {
            purchase_error: e.code().to_string(),
            user_message: said.text(),
            next_step: said.next_step().to_string(),
        })
    }
}

impl std::fmt::Display for BuyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuyError::Purchase(p) => write!(f, "{}: {}", p.purchase_error, p.user_message),
            BuyError::Portal(e) => e.fmt(f),
            BuyError::License(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BuyError {}

/// Runs `work` on the blocking pool (the purchase waits between its reads).
async fn blocking<T: Send + 'static>(
    licensing: &Licensing,
    work: impl FnOnce(Licensing) -> Result<T, BuyError> + Send + 'static,
) -> Result<T, BuyError> {
    let licensing = licensing.clone();
    tauri::async_runtime::spawn_blocking(move || work(licensing))
        .await
        .map_err(|e| {
            BuyError::License(Box::new(LicenseError::of(&Error::Cache {
                detail: format!("the purchase task stopped: {e}"),
            })))
        })?
}

/// A purchase's end as the webview gets it; with no session, the code asked for at the
/// checkout's address.
fn bought(
    licensing: &Licensing,
    end: Result<Purchased, PurchaseError>,
) -> Result<Bought, BuyError> {
    match end.map_err(|e| BuyError::of(&e))? {
        Purchased::Activated { key, activated } => {
            let answer = match activated.unremembered() {
                Some(e) => Err(e),
                None => activated.online.clone(),
            };
            let read = match answer {
                Ok(polar_license::Verdict::Accepted(read)) => read,
                Ok(polar_license::Verdict::Denied(d)) => {
                    return Err(BuyError::License(Box::new(LicenseError::denied(&d))))
                }
                Err(e) => return Err(BuyError::License(Box::new(LicenseError::of(&e)))),
            };
            Ok(Bought {
                display_key: Some(key.key.redacted()),
                activated: Some(Activated::of(&read, activated.lease.as_ref())),
                sign_in: None,
            })
        }
        Purchased::SignIn(receipt) => {
            if let Some(email) = receipt.email.as_deref() {
                licensing
                    .client()
                    .request_sign_in_code(email)
                    .map_err(|e| BuyError::Portal(Box::new(DeviceError::of(&e))))?;
            }
            let said = polar_license::message::purchase_sign_in(receipt.email.as_deref());
            Ok(Bought {
                display_key: None,
                activated: None,
                sign_in: Some(PurchaseSignIn {
                    created_at: receipt.created_at_unix(),
                    checkout_id: receipt.checkout_id,
                    email: receipt.email,
                    benefit_ids: receipt.benefit_ids,
                    user_message: said.text(),
                    next_step: said.next_step().to_string(),
                }),
            })
        }
    }
}

/// Opens a checkout from the seller's checkout link (its URL or `polar_cl_…` secret), `email`
/// prefilled: the new checkout's URL, to open for the buyer and to `buy`.
#[tauri::command]
pub(crate) async fn open_checkout_link(
    state: State<'_, PolarLicense>,
    link: String,
    email: Option<String>,
) -> Result<String, BuyError> {
    blocking(state.licensing(), move |l| {
        l.client()
            .open_checkout_link(&link, email.as_deref())
            .map_err(|e| BuyError::of(&e))
    })
    .await
}

/// Asks the seller's relay the plugin's [`Licensing`] knows (signed mode's base URL, or the
/// builder's `relay_url`: [`Licensing::open_relay_checkout`]) to make a checkout of `productId`
/// (a product the seller sells there) with the app's `metadata`, `email` prefilled and
/// `successUrl` (on an origin the seller allows): the new checkout's URL, to open for the buyer
/// and to `buy`. The core picks the relay and checks the ask before anything is sent.
#[tauri::command]
pub(crate) async fn open_relay_checkout(
    state: State<'_, PolarLicense>,
    product_id: String,
    metadata: Option<Metadata>,
    email: Option<String>,
    success_url: Option<String>,
) -> Result<String, BuyError> {
    let mut ask = CheckoutAsk::new(product_id);
    ask.metadata = metadata.unwrap_or_default();
    ask.customer_email = email;
    ask.success_url = success_url;
    blocking(state.licensing(), move |l| {
        l.open_relay_checkout(&ask).map_err(|e| BuyError::of(&e))
    })
    .await
}

/// Follows `checkout` (its URL or client secret) until paid, finds the key bought through the
/// session of `successUrl` (the URL the buyer landed on: `customer_session_token=…`), waits
/// while Polar is still issuing it, and activates it here (label: `label`, default the core's
/// device label) and remembers it. Without a session: `signIn`, the code sent.
#[tauri::command]
pub(crate) async fn buy(
    state: State<'_, PolarLicense>,
    checkout: String,
    success_url: Option<String>,
    label: Option<String>,
) -> Result<Bought, BuyError> {
    let label = label.unwrap_or_else(polar_license::device_label::default_device_label);
    blocking(state.licensing(), move |l| {
        let session = success_url.as_deref().and_then(session_from_success_url);
        if success_url.is_some() && session.is_none() {
            return Err(BuyError::License(Box::new(LicenseError::of(
                &Error::invalid(
                    "success_url",
                    "carries no customer_session_token: pass the whole URL the browser landed on",
                ),
            ))));
        }
        let end = l.buy(&checkout, session.as_ref(), &label);
        bought(&l, end)
    })
    .await
}

/// The rest of a purchase that ended with `signIn`, through the session `signIn(code)` opened.
#[tauri::command]
pub(crate) async fn buy_signed_in(
    state: State<'_, PolarLicense>,
    receipt: PurchaseSignIn,
    label: Option<String>,
) -> Result<Bought, BuyError> {
    let label = label.unwrap_or_else(polar_license::device_label::default_device_label);
    let Some(session) = state.session() else {
        return Err(BuyError::Portal(Box::new(DeviceError::of(
            &polar_license::portal::PortalError::NotSignedIn,
        ))));
    };
    blocking(state.licensing(), move |l| {
        let receipt = Receipt::from_parts(
            &receipt.checkout_id,
            receipt.email,
            receipt.created_at,
            receipt.benefit_ids,
        );
        let end = l.buy_signed_in(receipt, &session, &label);
        bought(&l, end)
    })
    .await
}
