//! The seller's checkout settings (issue #80): which products an app may have the relay make
//! a checkout of, and where a paid checkout may send the buyer. Below the relay and its
//! checkout route (crates/relay/src/routes/checkout.rs), which both read them.

use polar_license::metadata::check_uuid_v4;

use crate::types::check_origin;

/// The seller's checkout settings (`relay serve --checkout-product`, `--checkout-origin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutOptions {
    /// The products a checkout may be made of (their ids; none, the default: the route is
    /// off).
    pub products: Vec<String>,
    /// The origins a checkout's success URL may be on (`https://app.example.com`; none: a
    /// request with a success URL is refused, and Polar's own confirmation page is used).
    pub success_origins: Vec<String>,
}

impl CheckoutOptions {
    /// What is wrong with these options, if anything (`(field, why)`).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self
            .products
            .iter()
            .any(|p| check_uuid_v4("checkout_products", p).is_err())
        {
            return Some(("checkout_products", "each must be a product's id (a UUID)"));
        }
        self.success_origins
            .iter()
            .any(|o| check_origin(o).is_err())
            .then_some((
                "checkout_origins",
                "each must be an origin such as https://app.example.com (scheme, host and port; no path)",
            ))
    }
}
