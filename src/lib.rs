//! # polar-license
//!
//! Gate your software's features on a [Polar](https://polar.sh) license key with one small,
//! boring client: typed answers for every server reply, local input checks before any request,
//! timeouts, an offline grace cache that never lets a revoked key through, and the same core
//! behind four faces: this Rust crate (native, blocking), a WebAssembly build shipped as an npm
//! package, a C ABI (`bindings/c`), and the `polar-license` command line.
//!
//! It talks to Polar's public, no-auth routes
//! `POST /v1/customer-portal/license-keys/{validate,activate,deactivate}`, so an app ships no
//! secret: the license key is the credential. Backends holding an access token can use the
//! token-authenticated twins `/v1/license-keys/…` (`ClientBuilder::access_token` natively).
//!
//! ## Which type to use
//!
//! * `Licensing` (native) / `wasm::AsyncLicensing` (wasm32): the grace-aware face an app calls
//!   at launch: `activate` once per machine, `check` at every launch, `deactivate`, `status`,
//!   `has_feature`. See [`grace`] for the state machine and its diagram.
//! * `BlockingClient` (native) / `wasm::AsyncClient` (wasm32): one online call each, no cache.
//! * [`proto`]: the sans-IO core, for your own transport.
//!
//! ## Verdicts and errors
//!
//! Every call returns `Result<Verdict<T>, Error>`:
//!
//! * `Ok(Verdict::Accepted(T))`: the server said yes.
//! * `Ok(Verdict::Denied(Denial))`: the server said no. A denial is a normal answer with a
//!   [`Reason`] of class [`ReasonClass::Denied`] (`not_found`, `inactive`, `expired`,
//!   `conditions_mismatch`, …) and Polar's exact `detail` text.
//! * `Err(Error)`: no trustworthy answer: `offline`, `rate_limited`, `server_error`
//!   (class [`ReasonClass::Unverified`]), or `protocol_error`, `invalid_input`
//!   (class [`ReasonClass::Error`]). A grace-aware check answers from its cache after the
//!   unverified ones and `protocol_error` (an answer that is not Polar's: a login page, a
//!   proxy, garbage), never after a denial, `invalid_input` or `cache_error`.
//!
//! The reason codes are stable and shared with the C ABI and the JS package; see [`Reason`].
//!
//! ## Example
//!
//! ```
//! // A dev-dependency on polar-license-emulator (or this crate's `emulator` feature).
//! use polar_license_emulator::{Emulator, Options, Seed};
//! use polar_license::{ActivateRequest, BlockingClient, Reason, ValidateRequest, Verdict};
//!
//! // A local Polar with the demo seed (use `.server(Server::Production)` in real life).
//! let polar = Emulator::start(Seed::demo(), Options::default()).unwrap();
//! let client = BlockingClient::builder(polar.organization_id())
//!     .base_url(polar.url())
//!     .build()?;
//! let key = "DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A";
//!
//! // Activate this machine, binding the activation to a machine id.
//! let activation = match client.activate(
//!     &ActivateRequest::new(key, "build-box").condition("machine", "c0ffee42"),
//! )? {
//!     Verdict::Accepted(a) => a.activation,
//!     Verdict::Denied(d) => panic!("activation refused: {d}"),
//! };
//!
//! // Validate with the same conditions: licensed.
//! let ok = client.validate(
//!     &ValidateRequest::new(key).activation_id(&activation.id).condition("machine", "c0ffee42"),
//! )?;
//! assert!(ok.is_accepted());
//!
//! // From another machine the conditions differ: denied, with a typed reason.
//! let other = client.validate(
//!     &ValidateRequest::new(key).activation_id(&activation.id).condition("machine", "deadbeef"),
//! )?;
//! assert_eq!(other.denial().map(|d| d.reason), Some(Reason::ConditionsMismatch));
//!
//! // Bad input never leaves the machine.
//! let err = client.validate(&ValidateRequest::new("")).unwrap_err();
//! assert_eq!(err.reason(), Reason::InvalidInput);
//! # Ok::<(), polar_license::Error>(())
//! ```
//!
//! ## Local checks
//!
//! Before sending anything the client checks what Polar would reject with 422: organization,
//! activation, benefit and customer ids are UUID version 4; the key is non-empty; no string
//! holds a NUL; `increment_usage` is 0 to 2³¹−1; `conditions` and `meta` have at most 50 keys of
//! 1–40 characters with values that are booleans, integers, finite floats or 1–500 character
//! strings. A violation is [`Error::InvalidInput`] naming the field, and no request is sent.
//!
//! ## Secrets
//!
//! A [`Key`]'s `Debug` shows only `****-6ED415` (Polar's `display_key` form), as do access
//! tokens; request bodies are never printed by [`HttpRequest`]'s `Debug`.
//!
//! ## Layout
//!
//! A sans-IO core ([`proto`]: request builders and response classifiers; [`grace`] and
//! [`cache`]: the grace state machine and the sealed record format; [`flow`]: the machines
//! every face drives, folding with the core's private flows; no IO, no clock), a [`Transport`] seam (any closure is one), and two
//! shells around it: the native one (`src/native/`: `BlockingClient` over ureq with rustls,
//! `Licensing`, the file store) and the wasm32 one (`src/wasm/`: `AsyncClient` over `fetch`,
//! `AsyncLicensing`, Web Storage). The other faces are crates of the same workspace, built on
//! this one: the local Polar emulator (`polar-license-emulator`, re-exported here as
//! `emulator` with the feature of that name), the `polar-license` command line
//! (`polar-license-cli`), the C ABI (`polar-license-c`) and the npm package's engine
//! (`polar-license-wasm`).
//!
//! ## Logging
//!
//! The library logs nothing and prints nothing: every outcome is a value you can log yourself.
//! Keys and tokens redact themselves in `Debug`, so logging a request, a verdict or an error
//! never leaks a key.
//!
//! ## Versioning
//!
//! Semantic versioning. The reason codes and their C numbers, the CLI's options, exit codes and
//! `--json` fields, the emulator's seed format and the cache format are stable interfaces:
//! they change only by adding. A cache written by a newer format version is "no cache" to an
//! older library, never an error.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![deny(unsafe_code)] // unsafe belongs only to the C layer
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The sans-IO core: requests as data, answers classified, the grace rules, the sealed record
// and remembered-key formats, the flows every face shares. No IO, no clock (`now` is an
// argument), the same code on every target.
pub mod airgap;
pub mod analytics;
pub mod answers;
pub mod cache;
pub mod decimal;
pub mod device_label;
pub mod error;
pub mod features;
pub mod fingerprint;
pub mod flow;
pub mod grace;
// Signed mode's hold on what a client reads: private to the core, its machines' step.
mod held;
mod hex;
pub mod json;
pub mod key;
pub mod keyseal;
pub mod lease;
pub mod message;
pub mod metadata;
pub mod model;
pub mod options;
pub mod perpetual;
pub mod portal;
pub mod proto;
pub mod purchase;
pub mod reason;
mod release;
pub mod rfc3339;
pub mod schema;
pub mod seat;
pub mod seat_beat;
pub mod seat_hold;
pub mod stopped;
// A key's entries in a store, opened and sealed: private to the core (its types are `flow`'s).
mod slot;
pub mod strict;
pub mod transport;
pub mod trial;
// Usage reported through the seller's relay (issue #68 item 3).
pub mod usage;

// The two shells around it: the native one (ureq, files, threads) and the wasm32 one (fetch,
// Web Storage, promises), file for file alike.
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
#[cfg_attr(docsrs, doc(cfg(target_arch = "wasm32")))]
pub mod wasm;

/// The local Polar emulator (feature `emulator`): the crate `polar-license-emulator`, also
/// re-exported here so `polar_license::emulator` keeps working. Tests take that crate as a
/// dev-dependency instead.
#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub use polar_license_emulator as emulator;

pub use cache::{MacKey, Untrusted};
pub use error::{Denial, Error, Verdict};
pub use flow::standing::Standing;
pub use flow::{CacheState, CacheStatus};
pub use grace::{
    CheckOutcome, CheckReport, EntitlementState, GracePolicy, Plan, Query, Record, Source,
    StoreAction,
};
pub use key::{AccessToken, Key};
pub use message::Message;
pub use metadata::{MetaValue, Metadata};
pub use model::{
    LicenseKeyActivation, LicenseKeyActivationRead, LicenseKeyCustomer, LicenseKeyMember,
    LicenseKeyOrder, LicenseKeyRead, LicenseKeyStatus, LicenseKeySubscription, ValidatedLicenseKey,
};
pub use proto::{
    ActivateRequest, Api, DeactivateRequest, HttpRequest, HttpResponse, Operation, Server,
    ValidateRequest,
};
pub use reason::{Reason, ReasonClass};

/// For the repository's tests and record forgers only: hidden, no part of the API.
#[doc(hidden)]
pub mod testing;
pub use transport::{Transport, TransportError, TransportErrorKind};

#[cfg(not(target_arch = "wasm32"))]
pub use native::{licensing, store};
#[cfg(not(target_arch = "wasm32"))]
pub use native::{
    system_clock, system_clock_ms, Beating, Blocking, BlockingClient, ClientBuilder, Clock,
    FileStore, Licensing, LicensingBuilder, MachineBinding, MemoryStore, ProxySetting, Purchased,
    SeatGuard, SlotLock, Store, TlsRoots, UreqTransport, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT,
};
#[cfg(target_arch = "wasm32")]
pub use wasm::{AsyncClient, AsyncLicensing, AsyncStore, AsyncTransport, FetchTransport};

// The README's examples are whole programs, run as pasted in a new project by
// tests/docs/run.mjs (the `docs` stage of scripts/test.sh), not as doctests.

#[cfg(test)]
mod assertions {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<crate::Error>();
        send_sync::<crate::Verdict<crate::ValidatedLicenseKey>>();
        #[cfg(not(target_arch = "wasm32"))]
        send_sync::<crate::BlockingClient>();
    }
}
