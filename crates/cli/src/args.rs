//! The command-line surface (docs/interfaces.md §2), parsed with clap.
//!
//! Every global option can also come from its environment variable. The global options are
//! accepted before or after the command name.

use clap::builder::FalseyValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use polar_license::MetaValue;
use std::path::PathBuf;
use std::time::Duration;

/// Gate features on a Polar (polar.sh) license key from scripts, CI and installers.
#[derive(Debug, Parser)]
#[command(
    name = "polar-license",
    version,
    about = "Validate, activate and deactivate Polar (polar.sh) license keys",
    long_about = "Validate, activate and deactivate Polar (polar.sh) license keys, \
        or run a local Polar emulator to try it all out.\n\n\
        Talks to Polar's public license-key routes (the license key is the credential), or to \
        the token-authenticated ones when --access-token is given.\n\n\
        `activate` remembers the activation in the offline cache; `check` is the grace-aware \
        verdict: a good verdict younger than --revalidate-after (default 1 hour) answers with \
        no request; an older one is re-validated online, and when Polar gives no verdict \
        (offline, rate limited, 5xx, or an answer that is not Polar's: a login page, a proxy, \
        a bare 404) the cache still licenses until --grace-period (default 7 days) after the \
        last good online verdict, and says why. An online denial (also one `validate` sees) \
        is never overridden by the cache; a clock set back more than --clock-tolerance \
        (default 10 minutes), or held still across many answers, is `clock_rollback`.",
    after_help = "Exit codes: 0 licensed or done, 1 denied, 2 invalid input or usage, \
        3 unverified or error (offline, rate limited, server error, protocol error, grace \
        expired, clock rollback, cache error); `entitlement` only: 4 not granted, 5 not known \
        (values need the seller's relay).\n\
        With --json, stdout holds exactly one JSON object with at least: outcome, reason, \
        detail, source, activation_id, grace_remaining_seconds, license.\n\n\
        Try it offline: polar-license demo"
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command; each also read from the environment.
#[derive(Debug, Args)]
pub struct Global {
    /// The seller organization's id (a UUID v4)
    #[arg(
        long,
        global = true,
        env = "POLAR_ORGANIZATION_ID",
        value_name = "UUID"
    )]
    pub org: Option<String>,

    /// Which Polar to talk to
    #[arg(
        long,
        global = true,
        env = "POLAR_SERVER",
        value_enum,
        default_value_t = ServerChoice::Production,
        value_name = "SERVER"
    )]
    pub server: ServerChoice,

    /// Talk to this base URL instead (overrides --server); plain http:// only for loopback hosts
    #[arg(long, global = true, env = "POLAR_API_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// Ask Polar's customer portal and checkouts (sign-in, devices, recover, buy) at this base
    /// URL instead of --base-url's: in signed mode --base-url is the seller's relay, which
    /// serves neither (https://api.polar.sh; plain http:// only for loopback hosts)
    #[arg(
        long,
        global = true,
        env = "POLAR_LICENSE_PORTAL_URL",
        value_name = "URL"
    )]
    pub portal_url: Option<String>,

    /// Where the offline cache lives (default: this command's own directory, the platform's
    /// local data dir plus `polar-license/polar-license`, e.g.
    /// ~/.local/share/polar-license/polar-license; an app built on the library has its own)
    #[arg(
        long,
        global = true,
        env = "POLAR_LICENSE_CACHE_DIR",
        value_name = "DIR"
    )]
    pub cache_dir: Option<PathBuf>,

    /// Use the default cache directory of the app with this id (what the app set with
    /// `.app_id(…)`, or its executable's name), e.g. to inspect or repair an app's records
    /// with `status`, `check` or `deactivate`; --cache-dir wins over it
    #[arg(long, global = true, env = "POLAR_LICENSE_APP_ID", value_name = "ID")]
    pub app_id: Option<String>,

    /// Whole-request timeout in seconds, fractions allowed (default 10)
    #[arg(
        long,
        global = true,
        env = "POLAR_TIMEOUT",
        value_name = "SECONDS",
        value_parser = parse_timeout
    )]
    pub timeout: Option<Duration>,

    /// The HTTP(S) proxy to reach Polar through (`http://host:port`, with `user:password@` when
    /// needed), or `direct`; default: as the environment says (ALL_PROXY, HTTPS_PROXY,
    /// HTTP_PROXY with NO_PROXY; on Windows the system's proxy setting)
    #[arg(
        long,
        global = true,
        env = "POLAR_LICENSE_PROXY",
        hide_env_values = true,
        value_name = "URL|direct"
    )]
    pub proxy: Option<String>,

    /// Which certificates Polar's TLS certificate is checked against: `system`, the OS trust
    /// store (a company's TLS-inspecting proxy CA works), or `bundled`, only the roots built in
    #[arg(
        long,
        global = true,
        env = "POLAR_LICENSE_TLS_ROOTS",
        value_name = "ROOTS",
        default_value = "system"
    )]
    pub tls_roots: RootsChoice,

    /// Use the token-authenticated /v1/license-keys/… routes with this organization access
    /// token (for backends and CI; never ship a token inside an app)
    #[arg(
        long,
        global = true,
        env = "POLAR_ACCESS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub access_token: Option<String>,

    /// Signed mode: trust leases signed by this relay key, `KID=k4.public.…` as `relay keygen`
    /// prints it (repeatable, or comma-separated in the variable; two while rotating). Point
    /// --base-url at the seller's relay: the cache then licenses only with a lease that
    /// verifies, and an online grant without one is protocol_error
    #[arg(
        long = "relay-key",
        global = true,
        env = "POLAR_LICENSE_RELAY_KEYS",
        value_delimiter = ',',
        value_name = "KID=PUBLIC"
    )]
    pub relay_keys: Vec<String>,

    /// Grace policy: a good verdict younger than this answers `check` with no request
    /// (seconds; default 3600 = 1 hour)
    #[arg(
        long,
        global = true,
        env = "POLAR_REVALIDATE_AFTER",
        value_name = "SECONDS",
        value_parser = parse_seconds
    )]
    pub revalidate_after: Option<Duration>,

    /// Grace policy: how long after the last good online verdict an unreachable server still
    /// licenses (seconds; default 604800 = 7 days)
    #[arg(
        long,
        global = true,
        env = "POLAR_GRACE_PERIOD",
        value_name = "SECONDS",
        value_parser = parse_seconds
    )]
    pub grace_period: Option<Duration>,

    /// Grace policy: how far the clock may move back before `clock_rollback` (seconds;
    /// default 600 = 10 minutes)
    #[arg(
        long,
        global = true,
        env = "POLAR_CLOCK_TOLERANCE",
        value_name = "SECONDS",
        value_parser = parse_seconds
    )]
    pub clock_tolerance: Option<Duration>,

    /// A secret of the app's, mixed into the cache's seal (the same secret must be given to
    /// every command that reads the cache)
    #[arg(
        long,
        global = true,
        env = "POLAR_LICENSE_APP_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub app_secret: Option<String>,

    /// The feature map for `check --feature`: JSON such as
    /// `{"pro_export": ["<benefit uuid>"], "api_calls": {"benefits": ["<uuid>"], "metered": true}}`,
    /// or `@FILE` to read it from a file
    #[arg(
        long,
        global = true,
        env = "POLAR_LICENSE_ENTITLEMENTS",
        value_name = "JSON|@FILE"
    )]
    pub entitlements: Option<String>,

    /// Do not bind activations to this machine (by default `activate` adds the condition
    /// `machine_fingerprint`, a hash of the OS machine id). It is also part of the cache's
    /// seal: use it for every command on that cache
    #[arg(
        long,
        global = true,
        env = "POLAR_LICENSE_NO_MACHINE_BINDING",
        action = ArgAction::SetTrue,
        value_parser = FalseyValueParser::new()
    )]
    pub no_machine_binding: bool,

    /// Make `check` refuse (invalid input, `activation_id`, no request) a key that has no
    /// activation remembered in the cache: never activated on this machine, or deactivated.
    /// Without it, a bare key that Polar validates is licensed even when it has activation slots
    #[arg(
        long,
        global = true,
        env = "POLAR_LICENSE_REQUIRE_ACTIVATION",
        action = ArgAction::SetTrue,
        value_parser = FalseyValueParser::new()
    )]
    pub require_activation: bool,

    /// Print exactly one JSON object on stdout (and nothing else)
    #[arg(long, global = true)]
    pub json: bool,
}

/// `--tls-roots` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RootsChoice {
    /// The operating system's trust store
    System,
    /// Only the roots built into the program
    Bundled,
}

/// `--server` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerChoice {
    /// https://api.polar.sh
    Production,
    /// https://sandbox-api.polar.sh (separate data)
    Sandbox,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Activate the key on this machine (takes one activation slot per call) and remember
    /// the activation in the offline cache
    Activate(ActivateArgs),
    /// Validate the key online (no cache answer; the answer updates the key's cache record)
    Validate(ValidateArgs),
    /// The grace-aware verdict: validates the remembered activation, answering from the
    /// offline cache as the grace policy allows
    Check(CheckArgs),
    /// The value of the entitlement NAME (a Feature Flag value the seller's relay signed into
    /// the lease, docs/entitlements.md), from the grace-aware check: printed alone, exit 0,
    /// when granted; exit 4 when Polar grants the key no such value; exit 5 when no values are
    /// known (unsigned mode, or a relay without --sign-entitlements); else check's own exit
    Entitlement(EntitlementArgs),
    /// Deactivate an activation (default: the remembered one), freeing its slot, and forget
    /// it in the cache
    Deactivate(DeactivateArgs),
    /// Show what the offline cache holds (no network); without --key, the remembered key's
    /// record, else list the cache dir
    Status(StatusArgs),
    /// Remember the key on this machine (sealed beside the cache; off unless asked), so
    /// check, deactivate and status need no --key
    Remember(RememberArgs),
    /// Forget the remembered key (its cache record and activation stay)
    ForgetKey,
    /// Sign in to the customer portal with the code Polar emails (asked on the terminal, not
    /// shown; or --code for scripts), for `devices`; the session is sealed beside the cache
    /// for its hour
    SignIn(SignInArgs),
    /// List the key's devices (its live activations: id, label, when activated, this machine
    /// marked) through the signed-in customer session, or without one through the seller's
    /// relay (--relay)
    Devices(DevicesArgs),
    /// Free one device of the key by its activation id (no sign-in needed), e.g. a machine
    /// that is gone; then `activate` here
    Free(FreeArgs),
    /// Lost the key? List the signed-in customer's keys this machine can activate (shown
    /// redacted, by id), or activate one of them here by its id (the whole key never shown)
    Recover(RecoverArgs),
    /// Buy in the app (issue #80): open a checkout (--link, the seller's checkout link; or
    /// --checkout, one already made), print its URL to pay at, follow it until paid, then find
    /// the key bought and activate it here, remembered: no key to type. The key comes through
    /// the customer session Polar hands to the success URL (--success-url, the page the browser
    /// landed on after paying); without one, Polar emails a sign-in code to the checkout's
    /// address (typed on the terminal, or --code). A key Polar is still issuing (up to two
    /// minutes after paying) is waited for; past that, key_issuing (exit 3): run it again
    Buy(BuyArgs),
    /// The seller rotated the key (its old string is now `not_found`)? Follow it through the
    /// signed-in customer session: the same key's new string, with this machine's activation
    /// (no slot taken), remembered in the old one's place (shown redacted only)
    FollowRotation(FollowRotationArgs),
    /// Run the local Polar emulator until killed; the first stdout line is
    /// `listening on http://127.0.0.1:PORT`, then the organization, keys and tokens
    /// (--json only changes how startup errors are printed)
    Emulator(EmulatorArgs),
    /// A self-contained walkthrough on the embedded emulator (also a smoke test)
    Demo,
    /// Air-gapped activation in signed mode: `request` on the machine with no network,
    /// `fetch` on any online machine (through the seller's relay at --base-url), `install`
    /// back on the first machine
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// The seller's relay (signed offline leases): `keygen` writes a signing key, `serve`
    /// runs the relay in front of the Polar chosen by --server/--base-url
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Floating and CI seats through the seller's relay (--base-url; its --relay-key
    /// required: a seat holds only with a seat lease that verifies): `run` holds one of the
    /// key's seats while a command runs
    #[command(subcommand)]
    Seat(SeatCommand),
    /// Report UNITS of METER (the event name the seller's meter counts) used with the key to
    /// the seller's relay (--relay; `relay serve --record-usage`): one idempotency id, sent
    /// again with the same id when the relay cannot be reached, so it counts once; prints the
    /// meter's balance the relay knows. Exit 1 when refused (credits_exhausted, the key
    /// denied), 2 for bad input, 3 when the relay could not take it
    Usage(UsageArgs),
    /// Check the seller's Polar set-up with the organization token (--access-token; --org
    /// and --benefit-id for the app's ids): the license-key benefits' activation limit and
    /// device management, the webhook endpoints (one delivering to --relay-url, enabled, raw,
    /// with the events the relay reads, on an API version not due for removal), the token's
    /// scopes, a sandbox/production mix-up, the app's ids against the organization's. One
    /// finding a line with its fix. Exit 0: nothing found; 1: findings; 2: bad input; 3:
    /// nothing found but Polar could not be read whole. Reads only: the write scopes are
    /// probed with an empty body Polar refuses
    Doctor(DoctorArgs),
}

/// `doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A license-key benefit id the app uses (repeatable): each checked to be the
    /// organization's and a license-key benefit, and only these benefits' settings checked
    /// (default: every license-key benefit of the organization)
    #[arg(long = "benefit-id", value_name = "ID")]
    pub benefit_ids: Vec<String>,

    /// The relay's public base URL: a webhook endpoint must deliver to its
    /// /v1/webhooks/polar, and the token needs the store's scopes
    #[arg(long, value_name = "URL", env = "POLAR_LICENSE_RELAY_URL")]
    pub relay_url: Option<String>,

    /// The relay keeps a store (relay serve --store): the token needs license_keys:read and
    /// an endpoint must deliver webhooks (implied by --relay-url)
    #[arg(long)]
    pub store: bool,

    /// The relay signs entitlements (relay serve --sign-entitlements): the token needs
    /// benefits:read and customer_meters:read
    #[arg(long)]
    pub sign_entitlements: bool,

    /// The relay ingests usage (relay serve --record-usage): the token needs events:write
    #[arg(long)]
    pub record_usage: bool,
}

/// `lease …`
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// On the machine with no network: prints an activation request (one line of text; it
    /// holds the license key, so carry it as you would the key)
    Request(LeaseRequestArgs),
    /// On any online machine: reads a request on stdin, asks the relay at --base-url, and
    /// prints the response (one line)
    Fetch,
    /// On the first machine: reads the response on stdin, verifies it with the --relay-key
    /// keys for this machine, and stores the activation and its lease
    Install,
}

/// `lease request`
#[derive(Debug, Args)]
pub struct LeaseRequestArgs {
    #[command(flatten)]
    pub key: KeyArg,

    /// A label for the activation, e.g. the machine's name (may be empty)
    #[arg(long, value_name = "LABEL")]
    pub label: String,

    /// A condition stored on the activation (repeatable; typed as for activate)
    #[arg(long = "condition", value_name = "K=V", value_parser = parse_kv)]
    pub conditions: Vec<(String, MetaValue)>,
}

/// `relay …`
#[derive(Debug, Subcommand)]
pub enum RelayCommand {
    /// Write a new lease signing key (owner-only file) and print `KID=k4.public.…` on stdout,
    /// the form clients take (--relay-key, POLAR_LICENSE_RELAY_KEYS)
    Keygen(RelayKeygenArgs),
    /// Run the relay until killed; the first stdout line is `listening on
    /// http://127.0.0.1:PORT`; log lines (keys redacted, never the token) go to stderr
    Serve(Box<RelayServeArgs>),
}

/// `relay keygen`
#[derive(Debug, Args)]
pub struct RelayKeygenArgs {
    /// The key file to write (refused when it exists, unless --force)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// The key's id (default: its PASERK id, `k4.pid.…`); 1 to 100 printable ASCII
    /// characters without `=` or `,`
    #[arg(long, value_name = "ID")]
    pub kid: Option<String>,

    /// Replace an existing file
    #[arg(long)]
    pub force: bool,
}

/// `relay serve`
#[derive(Debug, Args)]
pub struct RelayServeArgs {
    /// The signing key file `relay keygen` wrote
    #[arg(long, value_name = "FILE", env = "POLAR_LICENSE_RELAY_SIGNING_KEY")]
    pub signing_key: PathBuf,

    /// The port on 127.0.0.1; 0 picks a free one (read it from the first line)
    #[arg(long, value_name = "P", default_value_t = 8788)]
    pub port: u16,

    /// The address to listen on (put a TLS-terminating proxy in front of anything but
    /// loopback: clients take plain http:// only for loopback hosts)
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub host: String,

    /// How long a lease lasts, in days (never past the license's own expiry)
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub lease_days: u32,

    /// Per client IP: requests per second, and the burst (RATE or RATE/BURST; 0 turns it off)
    #[arg(long, value_name = "RATE[/BURST]", default_value = "5/10", value_parser = parse_rate)]
    pub per_ip: (u32, u32),

    /// Per license key: requests per second, and the burst (RATE or RATE/BURST; 0 turns it off)
    #[arg(long, value_name = "RATE[/BURST]", default_value = "3/6", value_parser = parse_rate)]
    pub per_key: (u32, u32),

    /// Behind a reverse proxy: the header it writes the client's address in (its last entry
    /// is the per-IP limit's identity); never set it when clients connect directly
    #[arg(long, value_name = "NAME")]
    pub client_ip_header: Option<String>,

    /// The web pages that may read the relay's answers, by origin (https://app.example.com;
    /// repeatable, or comma-separated): any other page's browser hides the answers from it.
    /// Without it, any origin (`*`), as Polar's public routes
    #[arg(
        long = "cors-origin",
        value_delimiter = ',',
        value_name = "ORIGIN",
        env = "POLAR_LICENSE_RELAY_CORS_ORIGINS"
    )]
    pub cors_origins: Vec<String>,

    /// The verdict store: Polar's answers kept so that validates are answered without a call
    /// (FILE: a crash-safe file; `memory`: nothing on disk; the option alone: relay-store.redb
    /// in the data directory). Without it every check is forwarded
    #[arg(long, value_name = "FILE|memory", env = "POLAR_LICENSE_RELAY_STORE",
          num_args = 0..=1, default_missing_value = "default")]
    pub store: Option<String>,

    /// With --store: a stored grant younger than this answers a validate with no call to Polar
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 300,
        env = "POLAR_LICENSE_RELAY_FRESH_FOR"
    )]
    pub fresh_for: u64,

    /// With --store: when Polar cannot be asked (its budget, 429, 5xx, unreachable), a stored
    /// grant younger than this still answers, marked stale
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 86_400,
        env = "POLAR_LICENSE_RELAY_STALE_FOR"
    )]
    pub stale_for: u64,

    /// With --store: a stored denial younger than this answers with no call
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        env = "POLAR_LICENSE_RELAY_DENIAL_FOR"
    )]
    pub denial_for: u64,

    /// With --store: the organization token's calls per minute, never exceeded
    /// [default: 500, or 100 with --server sandbox]
    #[arg(long, value_name = "N", env = "POLAR_LICENSE_RELAY_BUDGET")]
    pub budget: Option<u32>,

    /// With --store: of the budget, the calls kept for activate, deactivate and usage
    /// increments [default: a quarter]
    #[arg(long, value_name = "N", env = "POLAR_LICENSE_RELAY_BUDGET_RESERVE")]
    pub budget_reserve: Option<u32>,

    /// With --store, on by default: know the organization's license keys (the token needs
    /// license_keys:read; without it, one warning, and only keys Polar granted through the
    /// relay count as known): their SHA-256 paged in from Polar at start with spare budget,
    /// kept current from the grant webhooks; a key it does not know gets only
    /// --first-seen-share of the budget. `--roster` alone (as before) says on; see --no-roster
    #[arg(
        long,
        env = "POLAR_LICENSE_RELAY_ROSTER",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = FalseyValueParser::new()
    )]
    pub roster: Option<bool>,

    /// With --store: no roster (or POLAR_LICENSE_RELAY_ROSTER=0): every key counts as known
    /// and may spend the whole budget and its reserve, so random keys from a few addresses
    /// can take every call Polar allows and leave new customers' activations 429
    #[arg(long)]
    pub no_roster: bool,

    /// With --roster: the percent of the budget keys it does not know may spend, shared
    /// fairly per client address (per /64 for IPv6); past it they are answered 429 (0 to 100:
    /// the relay core's check, StoreOptions::problem)
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 10,
        env = "POLAR_LICENSE_RELAY_FIRST_SEEN_SHARE"
    )]
    pub first_seen_share: u32,

    /// With --store: an entry marked stale (a webhook's change, a deactivation or usage
    /// increment through the relay) answers while Polar cannot be asked for at most this long
    /// after its mark, instead of --stale-for
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = polar_license_relay::store::MARKED_STALE_SECONDS,
        env = "POLAR_LICENSE_RELAY_MARKED_STALE_FOR"
    )]
    pub marked_stale_for: u64,

    /// With --store: a stored grant's key is asked of Polar again by id once its last check is
    /// this old (with idle budget only; the token needs license_keys:read), and its entries
    /// narrowed when Polar says it is revoked, disabled, expired, rotated or gone: a missed
    /// webhook's revocation is heard within about this long; 0 turns it off
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 600,
        env = "POLAR_LICENSE_RELAY_RECONCILE_EVERY"
    )]
    pub reconcile_every: u64,

    /// With --store: sign each key's Feature Flag values and its customer's meter balances
    /// into its leases, for clients that ask (docs/entitlements.md); the token then needs
    /// benefits:read and customer_meters:read. Off by default
    #[arg(long, env = "POLAR_LICENSE_RELAY_SIGN_ENTITLEMENTS")]
    pub sign_entitlements: bool,

    /// With --store: take usage reports (POST /v1/usage/record), keep them in the store and
    /// ingest them to Polar in batches within the budget (docs/entitlements.md); the token
    /// then needs events:write. Off by default
    #[arg(long, env = "POLAR_LICENSE_RELAY_RECORD_USAGE")]
    pub record_usage: bool,

    /// With --record-usage and --sign-entitlements: refuse a usage report whose meter's
    /// balance is at or below zero (402, reason credits_exhausted). Off by default: Polar
    /// never refuses usage
    #[arg(long, env = "POLAR_LICENSE_RELAY_REFUSE_AT_ZERO_CREDITS")]
    pub refuse_at_zero_credits: bool,

    /// With --record-usage: the event names (meters) usage reports may name, comma-separated
    /// (at most 64); a report naming another is refused, 422, before anything is kept. Unset:
    /// any well-formed name
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "EVENT,…",
        env = "POLAR_LICENSE_RELAY_USAGE_EVENTS"
    )]
    pub usage_events: Vec<String>,

    /// Take the apps' install analytics pings (POST /v1/analytics/install, issue #80) and
    /// ingest at most one event per install per UTC day into your Polar
    /// (docs/guides/analytics.md); the token then needs events:write. Off by default: the pings
    /// are answered and dropped unread
    #[arg(long, env = "POLAR_LICENSE_RELAY_INSTALL_ANALYTICS")]
    pub install_analytics: bool,

    /// With --install-analytics: the distinct installs taken per UTC day, at most; the day's
    /// further installs are dropped (what a flood of made-up installs can cost)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..=10_000_000),
        env = "POLAR_LICENSE_RELAY_MAX_INSTALLS_PER_DAY"
    )]
    pub max_installs_per_day: u64,

    /// With --install-analytics: the new installs one client address (an IPv6 one by its /64)
    /// brings per UTC day, at most; its further ones are dropped, so one client's flood of
    /// made-up installs cannot fill the day's cap
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(1..=10_000_000),
        env = "POLAR_LICENSE_RELAY_MAX_INSTALLS_PER_ADDRESS"
    )]
    pub max_installs_per_address: u64,

    /// Make checkouts for the apps (POST /v1/checkouts/create, issue #80) of these products
    /// only, with your token (which then needs checkouts:write): an app's Buy opens one with
    /// its metadata and follows it to the key. None (the default): the route is off (404)
    #[arg(
        long = "checkout-product",
        value_delimiter = ',',
        value_name = "PRODUCT_ID,…",
        env = "POLAR_LICENSE_RELAY_CHECKOUT_PRODUCTS"
    )]
    pub checkout_products: Vec<String>,

    /// With --checkout-product: the origins a checkout's success URL may be on
    /// (https://app.example.com); none: a request naming a success URL is refused
    #[arg(
        long = "checkout-origin",
        value_delimiter = ',',
        value_name = "ORIGIN,…",
        env = "POLAR_LICENSE_RELAY_CHECKOUT_ORIGINS"
    )]
    pub checkout_origins: Vec<String>,

    /// With --store: how long a check with a stored answer (within --stale-for) waits for a
    /// slow Polar before it gets that answer, stale (the call goes on and updates the store)
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 800,
        value_parser = clap::value_parser!(u64).range(0..=10_000),
        env = "POLAR_LICENSE_RELAY_STALE_AFTER_MS"
    )]
    pub stale_after_ms: u64,

    /// With --store: entries kept at most (the oldest answers go first)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000_000,
        env = "POLAR_LICENSE_RELAY_STORE_MAX_ENTRIES"
    )]
    pub store_max_entries: usize,

    /// With --store: the store's bytes at most (default 64 MiB; each entry counted with its
    /// index links). Past it refused and unknown keys' stored denials go first, then the oldest
    /// grants; a revocation a webhook told of is never evicted
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = polar_license_relay::store::DEFAULT_MAX_BYTES,
        env = "POLAR_LICENSE_RELAY_STORE_MAX_BYTES"
    )]
    pub store_max_bytes: u64,

    /// With --store: the secret of the webhook endpoint registered in Polar (whsec_…); turns
    /// on POST /v1/webhooks/polar. [env: POLAR_WEBHOOK_SECRET] (prefer it to the option; set
    /// without a store, it is ignored with a warning: the relay runs as before, webhooks off)
    #[arg(long, value_name = "SECRET")]
    pub webhook_secret: Option<String>,

    /// With webhooks on: after this many seconds without a webhook from Polar, a warning (a
    /// log line, and /healthz says so); 0 turns it off
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 86_400,
        env = "POLAR_LICENSE_RELAY_WEBHOOK_SILENCE"
    )]
    pub webhook_silence: u64,

    /// Check the seller's Polar set-up (as `polar-license doctor` does, for the features on)
    /// at the start and every this many seconds; /healthz reports what it found (`setup`)
    /// and the log warns of each finding. Each check spends about 6 calls of the token's
    /// budget; 0 (the default) turns it off. E.g. 21600 (six hours)
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        env = "POLAR_LICENSE_RELAY_CHECK_SETUP_EVERY"
    )]
    pub check_setup_every: u64,

    /// Deactivate, through Polar, activations this relay saw validated and has not seen for
    /// this many days (and an hour more); a few a minute from the token's budget. Only those
    /// the relay itself recorded (its memory since it started), never one seen within the
    /// window; the token then needs license_keys:write. 0 (the default) turns it off; at most
    /// 3650
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = 0,
        env = "POLAR_LICENSE_RELAY_RETIRE_UNSEEN_DAYS"
    )]
    pub retire_unseen_days: u32,

    /// Calls to Polar in a row that failed (unreachable, timed out, a 502, 503 or 504) before
    /// the breaker stops calls: stored answers are then given at once, others get 502; 0 turns
    /// it off
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        env = "POLAR_LICENSE_RELAY_BREAKER_FAILURES"
    )]
    pub breaker_failures: u32,

    /// The longest the breaker stops calls to Polar once open; then one call probes (the first
    /// probe after an eighth of it, each failed probe doubling the wait up to it; a probe
    /// whose connection was refused keeps the eighth); 1 to 3600 (the relay core's range,
    /// polar_license_relay::host::breaker_open_for)
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        env = "POLAR_LICENSE_RELAY_BREAKER_OPEN_FOR"
    )]
    pub breaker_open_for: u64,

    /// Prometheus metrics (GET /metrics, text format) on a listener of its own, HOST:PORT
    /// (keep it off the public network); off by default
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "POLAR_LICENSE_RELAY_METRICS_ADDR"
    )]
    pub metrics_addr: Option<String>,

    /// The bearer token the metrics listener asks for (`authorization: Bearer TOKEN`, at
    /// least 16 characters), as the npm relay's metricsToken; none by default
    #[arg(
        long,
        value_name = "TOKEN",
        env = "POLAR_LICENSE_RELAY_METRICS_TOKEN",
        hide_env_values = true,
        requires = "metrics_addr"
    )]
    pub metrics_token: Option<String>,

    /// The log lines on stderr: `text` (LEVEL message) or `json` (one object a line: time,
    /// level, message, and an answer's route, key (redacted), status, source and detail)
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"],
          env = "POLAR_LICENSE_RELAY_LOG_FORMAT")]
    pub log_format: String,

    /// The largest request body read, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, env = "POLAR_LICENSE_RELAY_MAX_BODY_BYTES")]
    pub max_body_bytes: usize,

    /// Connections open at once (one more is closed at once)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 256,
        env = "POLAR_LICENSE_RELAY_MAX_CONNECTIONS"
    )]
    pub max_connections: usize,

    /// One client address's share of the connections open at once (an IPv6 client by its
    /// /64), biting only when others wait: past it an address's connection is cut when
    /// another address finds none free; 0: no share but --max-connections. Not applied with
    /// --client-ip-header (every connection is then the proxy's)
    #[arg(
        long,
        value_name = "N",
        default_value_t = polar_license_relay::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        env = "POLAR_LICENSE_RELAY_MAX_CONNECTIONS_PER_ADDRESS"
    )]
    pub max_connections_per_address: usize,

    /// Calls to Polar under way at once (each holds a thread while Polar answers); answers
    /// without a call (the store, webhooks) have as many threads of their own
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8,
        env = "POLAR_LICENSE_RELAY_CONCURRENT_REQUESTS"
    )]
    pub concurrent_requests: usize,

    /// How long a client has to send a request's headers (and the keep-alive idle time)
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout,
          env = "POLAR_LICENSE_RELAY_HEADER_TIMEOUT")]
    pub header_timeout: Duration,

    /// How long a client has to send a request's body
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout,
          env = "POLAR_LICENSE_RELAY_BODY_TIMEOUT")]
    pub body_timeout: Duration,

    /// How long an answer may wait for a client that does not read it
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout,
          env = "POLAR_LICENSE_RELAY_WRITE_TIMEOUT")]
    pub write_timeout: Duration,

    /// On stop, how long open connections may still bring a request (each answer saying
    /// `connection: close`) before the idle ones are closed; 0: closed at once
    #[arg(long, value_name = "SECONDS", default_value = "0.5", value_parser = parse_seconds,
          env = "POLAR_LICENSE_RELAY_DRAIN")]
    pub drain: Duration,

    /// Seats off: the seat routes (/v1/seats/…) answer 404 and keep nothing (default: on)
    #[arg(long)]
    pub no_seats: bool,

    /// Seats (issue #67): a seat's life without a heartbeat, in seconds (30 to 3600)
    #[arg(long, value_name = "SECONDS", default_value_t = polar_license_relay::SEAT_SECONDS,
          env = "POLAR_LICENSE_RELAY_SEAT_SECONDS")]
    pub seat_seconds: u32,

    /// Seats: CI seats per key at once, within the key's seats (default: no cap of their own)
    #[arg(long, value_name = "N", env = "POLAR_LICENSE_RELAY_SEAT_CI_CAP")]
    pub seat_ci_cap: Option<u32>,

    /// Seats: a benefit's keys get N seats each instead of their limit_activations
    /// (repeatable: `BENEFIT_ID=N`; N at most 512, the seats one key's pool holds: a key
    /// whose limit_activations is higher gets 512, its `seats_full` says `max_seats`)
    #[arg(long = "seats", value_name = "BENEFIT_ID=N", value_parser = parse_seats)]
    pub seats: Vec<(String, u32)>,

    /// Seats: at most N acquisitions per key in any SECONDS (0 turns it off; default 120 an
    /// hour): an acquire-release loop gets `rate_limited` with the wait
    #[arg(long, value_name = "N[/SECONDS]", default_value = "120/3600", value_parser = parse_churn,
          env = "POLAR_LICENSE_RELAY_SEAT_CHURN")]
    pub seat_churn: (u32, u32),

    /// At most N activations and deactivations together per key in any SECONDS, taken toward
    /// Polar (0 turns it off; default 30 an hour): a deactivate-activate loop gets
    /// `rate_limited` with the wait
    #[arg(long, value_name = "N[/SECONDS]", default_value = "30/3600", value_parser = parse_churn,
          env = "POLAR_LICENSE_RELAY_ACTIVATION_CHURN")]
    pub activation_churn: (u32, u32),

    /// Seats: lend a floating seat for offline use for at most N days (1 to 90; default 0,
    /// no borrowing): `seat borrow --days N`. A borrowed seat stays counted until its end
    /// whatever a release says (its signed lease licenses offline until then)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        env = "POLAR_LICENSE_RELAY_SEAT_BORROW_DAYS"
    )]
    pub seat_borrow_days: u32,
}

/// Parses `N` or `N/SECONDS` (the window defaults to an hour).
fn parse_churn(text: &str) -> Result<(u32, u32), String> {
    let (n, window) = text.split_once('/').unwrap_or((text, "3600"));
    let n = n
        .trim()
        .parse::<u32>()
        .map_err(|_| "N must be a whole number".to_string())?;
    let window = window
        .trim()
        .parse::<u32>()
        .map_err(|_| "SECONDS must be a whole number".to_string())?;
    Ok((n, window))
}

/// Parses `BENEFIT_ID=N`.
fn parse_seats(text: &str) -> Result<(String, u32), String> {
    let (benefit, n) = text
        .split_once('=')
        .ok_or_else(|| "BENEFIT_ID=N".to_string())?;
    let n = n
        .trim()
        .parse::<u32>()
        .map_err(|_| "N must be a whole number".to_string())?;
    if n > polar_license_relay::MAX_SEATS {
        return Err(format!(
            "N must be at most {} (the seats one key's pool holds)",
            polar_license_relay::MAX_SEATS
        ));
    }
    Ok((benefit.trim().to_string(), n))
}

/// Parses `RATE` or `RATE/BURST` (the burst defaults to twice the rate).
fn parse_rate(text: &str) -> Result<(u32, u32), String> {
    polar_license_relay::Rate::parse(text).map(|r| (r.per_second, r.burst))
}

/// A struct of one field, `key`: the license key, from `--key` or `POLAR_LICENSE_KEY` (its
/// value never shown by `--help`). The struct's name and doc, the field's help (its doc) and
/// its type (`String`: required; `Option<String>`: with a default the help names) are the
/// arguments; the argument's spelling is written once, here.
macro_rules! key_arg {
    ($(#[$doc:meta])* $name:ident { $(#[$help:meta])* key: $ty:ty }) => {
        $(#[$doc])*
        #[derive(Debug, Args)]
        pub struct $name {
            $(#[$help])*
            #[arg(
                long,
                env = "POLAR_LICENSE_KEY",
                hide_env_values = true,
                value_name = "KEY"
            )]
            pub key: $ty,
        }
    };
}

key_arg! {
    /// The license key, from `--key` or `POLAR_LICENSE_KEY`.
    KeyArg {
        /// The license key (prefer the environment variable: it stays out of the process list)
        key: String
    }
}

key_arg! {
    /// The license key, from `--key` or `POLAR_LICENSE_KEY`, else the remembered one.
    OptionalKeyArg {
        /// The license key (prefer the environment variable: it stays out of the process list);
        /// default: the key remembered by `activate --remember` or `remember`
        key: Option<String>
    }
}

/// `remember`
/// `sign-in`
#[derive(Debug, Args)]
pub struct SignInArgs {
    /// The email the license was bought with: Polar emails it a 6-character code (without
    /// --code: asked for on a terminal; otherwise the command stops once it is sent)
    #[arg(long, value_name = "EMAIL", required_unless_present = "code")]
    pub email: Option<String>,

    /// The emailed code, when it was already asked for (`sign-in --email E` without a
    /// terminal): signs in with it, no prompt
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,

    /// When several customers share the email: the one to sign in as (as the error lists)
    #[arg(long, value_name = "ID")]
    pub customer_id: Option<String>,
}

/// `devices`
#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[command(flatten)]
    pub key: OptionalKeyArg,

    /// The seller's relay (its URL): without a sign-in, list the devices through it (the key
    /// proves it is yours; no email code)
    #[arg(long, value_name = "URL", env = "POLAR_LICENSE_RELAY_URL")]
    pub relay: Option<String>,
}

/// `usage`
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The meter's event name, e.g. tokens_used
    #[arg(value_name = "METER")]
    pub meter: String,

    /// The units used (a number above 0)
    #[arg(value_name = "UNITS")]
    pub units: f64,

    #[command(flatten)]
    pub key: OptionalKeyArg,

    /// The seller's relay (its URL)
    #[arg(long, value_name = "URL", env = "POLAR_LICENSE_RELAY_URL")]
    pub relay: String,

    /// The report's idempotency id (1 to 64 of A-Z a-z 0-9 - _ .): a run sent again with the
    /// same id counts once; default a new one each run
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
}

/// `free`
#[derive(Debug, Args)]
pub struct FreeArgs {
    /// The activation id of the device to free (as `devices` lists it)
    #[arg(value_name = "ID")]
    pub id: String,

    #[command(flatten)]
    pub key: OptionalKeyArg,
}

/// `follow-rotation`
#[derive(Debug, Args)]
pub struct FollowRotationArgs {
    #[command(flatten)]
    pub key: OptionalKeyArg,
}

/// `recover`
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The id of the key to activate here (as `recover` lists it): activated with this
    /// machine's label and remembered, so `check` needs no --key; without it, the list
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    /// A label for the activation (default: this machine's host name and OS)
    #[arg(long, value_name = "LABEL", requires = "id")]
    pub label: Option<String>,
}

/// `buy`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("checkout_from").required(true).args(["link", "checkout", "relay"])))]
pub struct BuyArgs {
    /// The seller's checkout link (its URL, `…/v1/checkout-links/polar_cl_…/redirect`, or its
    /// `polar_cl_…` secret): a new checkout is opened from it
    #[arg(long, value_name = "LINK")]
    pub link: Option<String>,
    /// A checkout already made (its URL, `…/checkout/polar_c_…`, or its `polar_c_…` client
    /// secret), e.g. by the seller's backend or an earlier `buy`
    #[arg(long, value_name = "CHECKOUT")]
    pub checkout: Option<String>,
    /// The seller's relay (its URL): it makes the checkout of --product with the seller's
    /// token and your --meta (the seller allows the product there: `relay serve
    /// --checkout-product`)
    #[arg(long, value_name = "URL", requires = "product")]
    pub relay: Option<String>,
    /// With --relay: the product to buy (its id)
    #[arg(long, value_name = "PRODUCT_ID", requires = "relay")]
    pub product: Option<String>,
    /// With --relay: metadata kept on the checkout and its order at Polar, `K=V` (repeatable;
    /// V an integer, a float, true/false, or else a string)
    #[arg(long = "meta", value_name = "K=V", value_parser = parse_kv, requires = "relay")]
    pub meta: Vec<(String, MetaValue)>,
    /// The buyer's email, prefilled in a checkout opened from --link or --relay
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// The URL the browser landed on after paying: Polar adds the customer session to it
    /// (`customer_session_token=`), which finds the key bought with no email code
    #[arg(long, value_name = "URL")]
    pub success_url: Option<String>,
    /// The code Polar emailed, when no session came with the purchase (for scripts: without a
    /// terminal, `buy` stops once the code is sent; run it again with --checkout and --code)
    #[arg(long, value_name = "CODE")]
    pub code: Option<String>,
    /// A label for the activation (default: this machine's host name and OS)
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct RememberArgs {
    #[command(flatten)]
    pub key: KeyArg,
}

key_arg! {
    /// The license key, from `--key` or `POLAR_LICENSE_KEY`, else asked on the terminal.
    AskedKeyArg {
        /// The license key (prefer the environment variable: it stays out of the process list);
        /// default: asked on the terminal, not echoed, when stdin is one
        key: Option<String>
    }
}

/// `activate`
#[derive(Debug, Args)]
pub struct ActivateArgs {
    #[command(flatten)]
    pub key: AskedKeyArg,

    /// Also remember the key on this machine (sealed beside the cache), so check,
    /// deactivate and status need no --key
    #[arg(long)]
    pub remember: bool,

    /// A label for the activation, e.g. the machine's name (may be empty); default: this
    /// machine's host name and OS, e.g. `jane-laptop (Linux)`, so its device list tells
    /// machines apart
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,

    /// A condition stored on the activation and required on every validate naming it
    /// (repeatable; the value is an integer, a float, true/false, or else a string)
    #[arg(long = "condition", value_name = "K=V", value_parser = parse_kv)]
    pub conditions: Vec<(String, MetaValue)>,

    /// A meta entry stored on the activation and returned with it (repeatable, typed as
    /// for --condition)
    #[arg(long = "meta", value_name = "K=V", value_parser = parse_kv)]
    pub meta: Vec<(String, MetaValue)>,

    /// The seller's relay (its URL): at the activation limit, list the key's devices through
    /// it and, when one is this machine's (a reinstall), use that activation instead of
    /// taking another (without it: the signed-in session, if any)
    #[arg(long, value_name = "URL", env = "POLAR_LICENSE_RELAY_URL")]
    pub relay: Option<String>,
}

/// `validate`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub key: KeyArg,

    /// The activation to check (its stored conditions must then equal the --condition ones)
    #[arg(long, value_name = "ID")]
    pub activation_id: Option<String>,

    /// Require the key to belong to this benefit
    #[arg(long, value_name = "ID")]
    pub benefit_id: Option<String>,

    /// Require the key to belong to this customer
    #[arg(long, value_name = "ID")]
    pub customer_id: Option<String>,

    /// Add N to the key's usage (refused with usage_exhausted past its limit)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub increment_usage: Option<i64>,

    /// A condition to compare with the activation's (repeatable; typed as for activate)
    #[arg(long = "condition", value_name = "K=V", value_parser = parse_kv)]
    pub conditions: Vec<(String, MetaValue)>,
}

/// `check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub key: OptionalKeyArg,

    /// Answer "may this copy use FEATURE?" from the verdict and --entitlements: exit 0 when
    /// granted, 1 when not (the license is denied, its benefit does not grant it, or the
    /// feature is unknown), 3 when the license could not be verified
    #[arg(long, value_name = "NAME")]
    pub feature: Option<String>,

    /// Perpetual fallback: this build's release date (YYYY-MM-DD). A key whose paid time ran
    /// out (expired, or a cancelled subscription's end) still licenses a build released on or
    /// before the date it was paid through: `licensed` with `fallback: true` and
    /// `paid_through`. A revoked or disabled key never does
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub released: Option<String>,

    /// Trials: a local trial of DAYS days while there is no key (no --key, none remembered).
    /// The first such check starts it, sealed in the cache; `--json` adds `trial` (`state`
    /// active, ended or refused; `days_left`, `ends_at`). While it runs: outcome `trial`,
    /// exit 0; once ended: `invalid_input` (field `key`), exit 2; a clock set back during it:
    /// `clock_rollback`, exit 3. Wiping the cache directory restarts it. With --feature and
    /// no key: the same trial, and the feature not granted by it (`license_not_valid`; exit 1
    /// while it runs). With a key: a key from a trial product (a 2027-01 `trialing`
    /// subscription) adds `trial` with its end
    #[arg(long, value_name = "DAYS")]
    pub trial: Option<u32>,

    /// Trials: a key whose benefit is ID (a trial product) is reported as a trial with its
    /// end (`trial` in `--json`). Repeatable
    #[arg(long = "trial-benefit", value_name = "ID")]
    pub trial_benefit: Vec<String>,
}

/// `entitlement`
#[derive(Debug, Args)]
pub struct EntitlementArgs {
    /// The entitlement's name (a key of the Feature Flag's metadata, e.g. max_upload_size)
    #[arg(value_name = "NAME")]
    pub name: String,

    #[command(flatten)]
    pub key: OptionalKeyArg,
}

/// `deactivate`
#[derive(Debug, Args)]
pub struct DeactivateArgs {
    #[command(flatten)]
    pub key: OptionalKeyArg,

    /// The activation to free (default: the one `activate` remembered for this key)
    #[arg(long, value_name = "ID")]
    pub activation_id: Option<String>,
}

/// `status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Without a key (none given, none remembered), only the cache directory is listed:
    /// records are sealed per key
    #[command(flatten)]
    pub key: OptionalKeyArg,
}

/// `emulator`
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// A seed file (JSON: organization_id and license_keys); default: the demo seed
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,

    /// Keep the keys and activations in this file: loaded at start when it exists, written
    /// (atomically) after every change; without it a restart forgets every activation
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// The port on 127.0.0.1; 0 picks a free one (read it from the first line)
    #[arg(long, value_name = "P", default_value_t = 8787)]
    pub port: u16,

    /// Enforce Polar's public rate limit: 3 requests per second, then a 60 s block
    #[arg(long)]
    pub rate_limit: bool,

    /// Behave like Polar's sandbox (adds the `X-Polar-Sandbox: 1` header)
    #[arg(long)]
    pub sandbox: bool,

    /// The Polar-Version answered when a request sends none (Polar's current one)
    #[arg(long, value_name = "YYYY-MM", default_value = polar_license_emulator::CURRENT_API_VERSION)]
    pub api_version: String,

    /// The Polar-Versions served, comma-separated; any other (a removed one) answers a bare
    /// 404 {"detail":"Not Found"} [default: 2026-04,2026-10,2027-01]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub api_versions: Vec<String>,

    /// The organization token's budget: calls per window for all of one organization's tokens
    /// (the token twins /v1/license-keys/*, the webhook routes); 0 turns it off
    /// [default: the seed's token_budget, else 500, or 100 with --sandbox]
    #[arg(long, value_name = "N")]
    pub token_budget: Option<u32>,

    /// The token budget's window in seconds [default: the seed's token_window_seconds, else 60]
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub token_window: Option<u64>,

    /// Scales Polar's webhook retry schedule (ten tries: at once, then 2 s doubling, with
    /// jitter, capped at 20 min): 0.01 turns 2 s into 20 ms, for tests of a receiver
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, value_parser = parse_scale)]
    pub webhook_time_scale: f64,

    /// How long one webhook delivery attempt may take
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_timeout)]
    pub webhook_timeout: Duration,
}

/// Parses `--webhook-time-scale`: a finite number above 0.
fn parse_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a number above 0")),
    }
}

/// Parses `--timeout`: a positive, finite number of seconds.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err("must be a positive number of seconds".to_string());
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

/// Parses a grace-policy duration: a non-negative, finite number of seconds.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err("must be a number of seconds, zero or more".to_string());
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

/// A `check` command line read by a parser that holds only the global options and `check`:
/// clap builds its whole tree (every command's options) before it reads a word, which cost a
/// cached `check` 0.1-0.2 ms of its 1.5 (issue #38: `scripts/cli-ab.sh`). `None` for any other
/// line, and for anything this smaller parser refuses (help, version, a typo, another
/// command): the whole parser then reads it, so every answer but a well-formed `check` comes
/// from there. What it accepts, the whole parser reads the same (`check_line_agrees`).
pub fn check_line<I, T>(args: I) -> Option<Cli>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let parser = Global::augment_args(clap::Command::new("polar-license"))
        .subcommand(CheckArgs::augment_args(clap::Command::new("check")))
        .subcommand_required(true);
    let mut matches = parser.try_get_matches_from(args).ok()?;
    let (name, mut sub) = matches.remove_subcommand()?;
    if name != "check" {
        return None;
    }
    let global = Global::from_arg_matches_mut(&mut matches).ok()?;
    let check = CheckArgs::from_arg_matches_mut(&mut sub).ok()?;
    Some(Cli {
        global,
        command: Command::Check(check),
    })
}

/// Parses `k=v` (split at the first `=`), typing the value as docs/interfaces.md §2 says.
fn parse_kv(text: &str) -> Result<(String, MetaValue), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("expected K=V, found `{text}` (no `=`)"))?;
    Ok((k.to_string(), MetaValue::parse_scalar(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    /// [`check_line`] against the whole parser: every line it takes, the whole parser reads
    /// the same (the same `Cli`, compared through `Debug`); every line the whole parser reads as
    /// a `check`, it takes too (else a `check` would pay for the whole tree); every other line
    /// (help, version, errors, other commands) it leaves to the whole parser. The lines are
    /// every global option in every position around `check`, with good and bad values, and
    /// the lines that differ only where a smaller parser could go wrong.
    #[test]
    fn check_line_agrees() {
        const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
        let options: &[&[&str]] = &[
            &["--org", ORG],
            &["--org=bad"],
            &["--server", "sandbox"],
            &["--server", "moon"],
            &["--base-url", "http://127.0.0.1:1"],
            &["--cache-dir", "/tmp/x y"],
            &["--app-id", "my-app"],
            &["--timeout", "0.5"],
            &["--timeout", "0"],
            &["--proxy", "direct"],
            &["--tls-roots", "webpki"],
            &["--tls-roots", "none-such"],
            &["--access-token", "polar_oat_x"],
            &["--relay-key", "k4.public.a", "--relay-key", "k4.public.b"],
            &["--revalidate-after", "0"],
            &["--grace-period", "-1"],
            &["--clock-tolerance", "600"],
            &["--app-secret", "s"],
            &["--entitlements", "{}"],
            &["--no-machine-binding"],
            &["--require-activation"],
            &["--json"],
            &["--key", "DEMO-1"],
            &["--key"],
            &["--feature", "export"],
            &["--feature=a", "--feature=b"],
            &["--activation-id", "x"],
            &["--label", "x"],
            &["--help"],
            &["-h"],
            &["--version"],
            &["-V"],
            &["--bogus"],
            &["extra"],
            &["--"],
            &["--", "check"],
            &["validate"],
            &["check"],
        ];
        let commands: &[&[&str]] = &[
            &["check"],
            &["chec"],
            &["validate"],
            &["status"],
            &["help", "check"],
            &[],
        ];
        let mut lines: Vec<Vec<&str>> = Vec::new();
        for command in commands {
            for (i, a) in options.iter().enumerate() {
                // One option before, one after, and a pair around the command.
                let b = options[(i * 7 + 3) % options.len()];
                let name: &[&str] = &["polar-license"];
                lines.push([name, a, command].concat());
                lines.push([name, command, a].concat());
                lines.push([name, a, command, b].concat());
                lines.push([name, b, a, command].concat());
            }
        }
        // Every pair of options around `check`, and both before it.
        for a in options {
            for b in options {
                lines.push([&["polar-license"], *a, &["check"], *b].concat());
                lines.push([&["polar-license"], *a, *b, &["check"]].concat());
            }
        }
        let (mut taken, mut checks) = (0, 0);
        for line in &lines {
            let fast = check_line(line.iter().copied());
            let full = Cli::try_parse_from(line.iter().copied());
            let is_check = matches!(
                full,
                Ok(Cli {
                    command: Command::Check(_),
                    ..
                })
            );
            // Taken exactly when the whole parser reads a check, and then read the same.
            assert_eq!(
                fast.is_some(),
                is_check,
                "{line:?}: {fast:?} against {full:?}"
            );
            if let (Some(fast), Ok(full)) = (&fast, &full) {
                assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line:?}");
                taken += 1;
            }
            checks += usize::from(is_check);
        }
        // The lines hold many of each kind (not a vacuous pass).
        assert_eq!(taken, checks);
        assert!(taken > 500, "{taken} lines taken");
        assert!(
            lines.len() - taken > 1000,
            "{} lines left to the whole parser",
            lines.len() - taken
        );
    }

    #[test]
    fn kv_and_timeout() {
        assert_eq!(
            parse_kv("machine=A=B"),
            Ok(("machine".to_string(), MetaValue::Str("A=B".to_string())))
        );
        assert_eq!(
            parse_kv("major=2"),
            Ok(("major".to_string(), MetaValue::Int(2)))
        );
        assert!(parse_kv("machine").is_err());
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("NaN").is_err());
        assert!(parse_timeout("soon").is_err());
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(parse_seconds("3600"), Ok(Duration::from_secs(3600)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("a week").is_err());
    }
}

/// `seat …`
#[derive(Debug, Subcommand)]
pub enum SeatCommand {
    /// Hold one of the key's seats through the seller's relay (--base-url) while COMMAND
    /// runs: acquired first, heartbeated while it runs, released when it exits (whatever its
    /// exit code, which is this command's); stopped at the seat's lease's end when the relay
    /// cannot be reached to renew it (exit 3, seat_lost); no Polar activation is made
    Run(SeatRunArgs),
    /// Borrow one of the key's floating seats for offline use for N days (the seller's relay
    /// lends at most its --seat-borrow-days): prints the seat's id, its end and its signed
    /// lease as JSON (the lease licenses offline until the end, not after)
    Borrow(SeatBorrowArgs),
    /// Give a held seat back before its end: free for others at once. A borrowed seat is not
    /// freed early (its lease licenses offline until its end): the relay keeps counting it
    /// until then, and this says so (exit 1, as for a seat not held)
    Return(SeatReturnArgs),
    /// Acquire one of the key's seats and print it as JSON (its id, its end, the heartbeat
    /// interval, its signed lease); nothing holds it after: `seat heartbeat` within its life
    /// keeps it, `seat release` gives it back, and one not heard from frees by itself
    Acquire(SeatAcquireArgs),
    /// Extend a seat's life (`seat acquire`'s): prints it again as JSON; a seat no longer held
    /// (not heard from within its life, given back) is `seat_gone`
    Heartbeat(SeatReturnArgs),
    /// Give a seat back (`seat acquire`'s): free for others at once (a borrowed seat stays
    /// counted until its end, as for `seat return`)
    Release(SeatReturnArgs),
}

/// `seat acquire`
#[derive(Debug, Args)]
pub struct SeatAcquireArgs {
    #[command(flatten)]
    pub key: KeyArg,

    /// A CI seat (the seller may cap CI seats apart from the others)
    #[arg(
        long,
        env = "POLAR_LICENSE_SEAT_CI",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub ci: bool,

    /// This machine's binding in the seat lease (default: the machine fingerprint, else the
    /// host's name)
    #[arg(long, value_name = "TEXT")]
    pub machine: Option<String>,
}

/// `seat borrow`
#[derive(Debug, Args)]
pub struct SeatBorrowArgs {
    #[command(flatten)]
    pub key: KeyArg,

    /// Days to borrow the seat for (1 to 90; the relay refuses more than its seller allows)
    #[arg(long, value_name = "N")]
    pub days: u32,

    /// This machine's binding in the seat lease (default: the machine fingerprint, else the
    /// host's name)
    #[arg(long, value_name = "TEXT")]
    pub machine: Option<String>,
}

/// `seat return`, `seat release`, `seat heartbeat`
#[derive(Debug, Args)]
pub struct SeatReturnArgs {
    #[command(flatten)]
    pub key: KeyArg,

    /// The seat's id, as `seat borrow` or `seat acquire` printed it
    #[arg(long, value_name = "ID")]
    pub seat: String,

    /// The machine binding the seat was taken with (default: as `seat borrow`'s and `seat
    /// acquire`'s)
    #[arg(long, value_name = "TEXT")]
    pub machine: Option<String>,
}

/// `seat run`
#[derive(Debug, Args)]
pub struct SeatRunArgs {
    /// The seat asked for, as `seat acquire` asks for it.
    #[command(flatten)]
    pub seat: SeatAcquireArgs,

    /// Seconds between heartbeats, fractions allowed (default, and at most: a third of the
    /// seat's life)
    #[arg(long, value_name = "SECONDS", hide = true, value_parser = parse_interval)]
    pub heartbeat: Option<Duration>,

    /// Seconds COMMAND may go on after the seat's lease ended with no renewal from the relay
    /// (it out of reach) before it is stopped and `seat run` exits with seat_lost (default 0:
    /// stopped at the lease's end, when the relay may give the seat to another machine)
    #[arg(long, value_name = "SECONDS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub seat_grace: u32,

    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3_600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "a number of seconds above 0, at most 3600".to_string())
}
