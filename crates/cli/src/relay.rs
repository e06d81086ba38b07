//! `relay keygen` and `relay serve` (issue #25; docs/interfaces.md §5): a thin shell over
//! `polar-license-relay`.

use crate::args::{Global, RelayCommand, RelayKeygenArgs, RelayServeArgs, ServerChoice};
use crate::output::{print_err, print_out, usage_report, Report};
use polar_license::lease::SigningKey;
use polar_license::{AccessToken, Server, UreqTransport, DEFAULT_CONNECT_TIMEOUT};
use polar_license_relay::host::{CALL_TIMEOUT_MS, MAX_UPSTREAM_BYTES};
use polar_license_relay::{Limits, Rate, Relay, RelayConfig};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// Where `--webhook-secret` is read from when the option is not given.
const WEBHOOK_SECRET_ENV: &str = "POLAR_WEBHOOK_SECRET";

/// Runs a `relay` subcommand; returns the exit code.
pub fn run(g: &Global, c: &RelayCommand) -> u8 {
    match c {
        RelayCommand::Keygen(a) => keygen(g, a),
        RelayCommand::Serve(a) => serve(g, a),
    }
}

/// An environment problem (a file, a port): `outcome` error, exit 3.
fn env_error(command: &str, field: &str, message: &str) -> Report {
    let mut report = usage_report(Some(command), Some(field), message);
    report.json.insert("outcome".into(), json!("error"));
    report.json.insert("reason".into(), Value::Null);
    report.lines = vec![format!("error: {message}")];
    report.exit = 3;
    report
}

fn keygen(g: &Global, a: &RelayKeygenArgs) -> u8 {
    let key = match SigningKey::generate(a.kid.as_deref()) {
        Ok(key) => key,
        Err(e) => return usage_report(Some("relay keygen"), Some("kid"), &e.text()).print(g.json),
    };
    if let Err(e) = write_owner_only(&a.out, key.to_file_text().as_bytes(), a.force) {
        let message = if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists already (a signing key?): pass --force to replace it",
                a.out.display()
            )
        } else {
            format!("cannot write {}: {e}", a.out.display())
        };
        return env_error("relay keygen", "out", &message).print(g.json);
    }
    if g.json {
        let mut m = serde_json::Map::new();
        m.insert("outcome".into(), json!("done"));
        m.insert("reason".into(), Value::Null);
        m.insert("detail".into(), Value::Null);
        m.insert("kid".into(), json!(key.kid()));
        m.insert("public_key".into(), json!(key.public_paserk()));
        m.insert("file".into(), json!(a.out.display().to_string()));
        print_out(&format!("{}\n", Value::Object(m)));
    } else {
        let pair = key.public_pair();
        print_out(&format!("{pair}\n"));
        print_err(&format!(
            "wrote the signing key to {} (readable by its owner only: it is the secret)\n\
             give clients the public key above:\n  \
             command line: --relay-key {pair}\n  \
             environment:  POLAR_LICENSE_RELAY_KEYS={pair}\n  \
             Rust:         RelayKeys::parse(\"{pair}\")\n\
             run the relay: polar-license relay serve --signing-key {} --access-token <TOKEN>\n",
            a.out.display(),
            a.out.display()
        ));
    }
    0
}

/// Writes a new file readable and writable by its owner only (0600 on unix; on Windows the
/// directory's ACL applies). Refuses an existing one unless `force`.
fn write_owner_only(path: &Path, bytes: &[u8], force: bool) -> std::io::Result<()> {
    use std::io::Write;
    if force && path.exists() {
        std::fs::remove_file(path)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// An option the relay core refused (its typed error names the field): the flag it came
/// from named (`breaker_open_for` is `--breaker-open-for`), then the core's reason.
fn option_refused(cmd: &str, e: &polar_license::Error) -> Report {
    let (field, why) = match e {
        polar_license::Error::InvalidInput { field, message } => (field.as_str(), message.clone()),
        _ => ("relay", e.text()),
    };
    let message = format!("--{}: {why}", field.replace('_', "-"));
    usage_report(Some(cmd), Some(field), &message)
}

fn serve(g: &Global, a: &RelayServeArgs) -> u8 {
    const CMD: &str = "relay serve";
    // First, before any thread starts: reading it removes the variables.
    let handed = match handed_listener() {
        Ok(handed) => handed,
        Err(e) => return env_error(CMD, "port", &e).print(g.json),
    };
    let text = match std::fs::read_to_string(&a.signing_key) {
        Ok(text) => text,
        Err(e) => {
            let message = format!("cannot read {}: {e}", a.signing_key.display());
            return env_error(CMD, "signing_key", &message).print(g.json);
        }
    };
    let signing_key = match SigningKey::from_file_text(&text) {
        Ok(key) => key,
        Err(e) => return usage_report(Some(CMD), Some("signing_key"), &e.text()).print(g.json),
    };
    warn_if_readable_by_others(&a.signing_key);
    let Some(token) = g.access_token.as_deref().filter(|t| !t.is_empty()) else {
        let why = "is required: pass --access-token or set POLAR_ACCESS_TOKEN (an organization \
                   access token with the license_keys:write scope)";
        return usage_report(Some(CMD), Some("access_token"), why).print(g.json);
    };
    let server = match g.base_url.as_deref().filter(|s| !s.is_empty()) {
        Some(url) => Server::Custom(url.to_string()),
        None => match g.server {
            ServerChoice::Production => Server::Production,
            ServerChoice::Sandbox => Server::Sandbox,
        },
    };
    let kid = signing_key.kid().to_string();
    let pair = signing_key.public_pair();
    let mut config = RelayConfig::new(server, AccessToken::new(token), signing_key);
    config.organization_id = g.org.clone().filter(|s| !s.is_empty());
    config.lease_days = a.lease_days;
    config.client_ip_header = a.client_ip_header.clone();
    config.cors_origins = (!a.cors_origins.is_empty()).then(|| a.cors_origins.clone());
    config.webhook_silence = a.webhook_silence;
    config.check_setup_every = a.check_setup_every;
    config.retire_unseen_days = a.retire_unseen_days;
    // The option's range is the core's (the npm relay's breakerOpenFor reads it the same).
    let open_for_ms = match polar_license_relay::host::breaker_open_for(a.breaker_open_for) {
        Ok(ms) => ms,
        Err(e) => return option_refused(CMD, &e).print(g.json),
    };
    // The body cap's range is the core's too (the npm relay's maxBodyBytes reads it the same).
    let max_body_bytes = match polar_license_relay::host::max_body_bytes(a.max_body_bytes as u64) {
        Ok(max) => max,
        Err(e) => return option_refused(CMD, &e).print(g.json),
    };
    config.breaker = polar_license_relay::BreakerOptions {
        failures: a.breaker_failures,
        open_for_ms,
    };
    config.limits = Limits {
        per_ip: Rate::new(a.per_ip.0, a.per_ip.1),
        per_key: Rate::new(a.per_key.0, a.per_key.1),
        max_body_bytes,
    };
    let sandbox = matches!(config.server, Server::Sandbox);
    let store_line = match store_config(a, sandbox) {
        Ok(None) => None,
        Ok(Some((store, line))) => {
            config.store = Some(store);
            Some(line)
        }
        Err(report) => return report.print(g.json),
    };
    let webhooks = config
        .store
        .as_ref()
        .is_some_and(|s| s.webhook_secret.is_some());
    // The relay's caps and timeouts are the core's (polar_license_relay::host), as on npm.
    let timeout = g
        .timeout
        .unwrap_or(std::time::Duration::from_millis(CALL_TIMEOUT_MS));
    // --proxy and --tls-roots reach the relay's calls to Polar as they reach a client's.
    let proxy = match g.proxy.as_deref().map(str::trim) {
        None | Some("") => polar_license::ProxySetting::Environment,
        Some(p) if p.eq_ignore_ascii_case("direct") => polar_license::ProxySetting::Direct,
        Some(url) => polar_license::ProxySetting::Url(url.to_string()),
    };
    let roots = match g.tls_roots {
        crate::args::RootsChoice::System => polar_license::TlsRoots::System,
        crate::args::RootsChoice::Bundled => polar_license::TlsRoots::Bundled,
    };
    let transport = match UreqTransport::configured(
        timeout.min(DEFAULT_CONNECT_TIMEOUT),
        timeout,
        MAX_UPSTREAM_BYTES as u64,
        roots,
        &proxy,
    ) {
        Ok(transport) => transport,
        Err(e) => return usage_report(Some(CMD), Some("proxy"), &e.text()).print(g.json),
    };
    let seats = polar_license_relay::SeatOptions {
        enabled: !a.no_seats,
        seconds: a.seat_seconds,
        per_benefit: a.seats.clone(),
        ci_cap: a.seat_ci_cap,
        churn: a.seat_churn.0,
        churn_seconds: a.seat_churn.1,
        borrow_days: a.seat_borrow_days,
        activation_churn: a.activation_churn.0,
        activation_churn_seconds: a.activation_churn.1,
    };
    // For test suites only (never documented for sellers): a seat's life under 30 s.
    let test_life = test_only_var("POLAR_LICENSE_RELAY_TEST_ONLY_SEAT_SECONDS");
    // For test suites and benchmarks only (never documented for sellers): Polar's budget
    // window under its minute, to face an emulator whose token window is scaled.
    let test_window = test_only_var("POLAR_LICENSE_RELAY_TEST_ONLY_BUDGET_SECONDS");
    let analytics = polar_license_relay::analytics::AnalyticsOptions {
        enabled: a.install_analytics,
        max_installs_per_day: usize::try_from(a.max_installs_per_day).unwrap_or(usize::MAX),
        max_installs_per_address: usize::try_from(a.max_installs_per_address).unwrap_or(usize::MAX),
    };
    let mut relay = Relay::new(config, Box::new(transport))
        .and_then(|r| r.with_seats(seats))
        .and_then(|r| r.with_analytics(analytics))
        .and_then(|r| {
            r.with_checkouts(polar_license_relay::CheckoutOptions {
                products: a.checkout_products.clone(),
                success_origins: a.checkout_origins.clone(),
            })
        });
    if let Some(s) = test_life {
        relay = relay.and_then(|r| r.with_test_only_seat_seconds(s));
    }
    if let Some(s) = test_window {
        relay = relay.and_then(|r| r.with_test_only_budget_seconds(s));
    }
    let relay = match relay {
        Ok(relay) => relay,
        Err(e) => {
            let field = match &e {
                polar_license::Error::InvalidInput { field, .. } => field.clone(),
                _ => "relay".to_string(),
            };
            return usage_report(Some(CMD), Some(&field), &e.text()).print(g.json);
        }
    };
    let upstream = relay.base_url().to_string();
    let addr = format!("{}:{}", a.host, a.port);
    let mut options = polar_license_relay::ServeOptions::default();
    options.max_connections = a.max_connections;
    options.max_connections_per_address = a.max_connections_per_address;
    options.concurrent_requests = a.concurrent_requests;
    options.header_timeout = a.header_timeout;
    options.body_timeout = a.body_timeout;
    options.write_timeout = a.write_timeout;
    options.drain = a.drain;
    options.metrics_addr = a.metrics_addr.clone().filter(|m| !m.is_empty());
    options.metrics_token = a.metrics_token.clone().filter(|t| !t.is_empty());
    // The token's rule is the core's (the npm relay's metricsToken reads it the same).
    if let Some(Err(e)) = options
        .metrics_token
        .as_deref()
        .map(polar_license_relay::host::metrics_token)
    {
        return option_refused(CMD, &e).print(g.json);
    }
    options.stale_after = std::time::Duration::from_millis(a.stale_after_ms);
    let options_metrics = options.metrics_addr.clone();
    let socket_line = if handed.is_some() {
        "socket: handed in by the service manager (LISTEN_FDS); --host and --port not used\n"
    } else {
        ""
    };
    // Listened for before the relay serves (a signal while it starts stops it cleanly too).
    let signals = StopSignals::listen();
    let served = match handed {
        Some(listener) => polar_license_relay::serve_on(Arc::new(relay), listener, options),
        None => polar_license_relay::serve_with(Arc::new(relay), &addr, options),
    };
    let running = match served {
        Ok(running) => running,
        Err(e) => {
            // The metrics listener's error names its address (`serve_with`).
            let metrics = options_metrics
                .as_deref()
                .is_some_and(|m| e.to_string().contains(&format!("metrics address {m}")));
            let (field, message) = if metrics {
                ("metrics_addr", format!("cannot listen for metrics: {e}"))
            } else {
                ("port", format!("cannot listen on {addr}: {e}"))
            };
            return env_error(CMD, field, &message).print(g.json);
        }
    };
    let format = if a.log_format == "json" {
        polar_license_relay::LogFormat::Json
    } else {
        polar_license_relay::LogFormat::Text
    };
    polar_license_relay::log_to_stderr_as(log::LevelFilter::Info, format);
    let url = running.url();
    let org = g.org.as_deref().filter(|s| !s.is_empty()).unwrap_or("any");
    let store_line = match store_line {
        Some(line) => {
            let hooks = if webhooks {
                format!(
                    "; Polar's webhooks: {url}{}",
                    polar_license_relay::WEBHOOK_ROUTE
                )
            } else {
                String::new()
            };
            format!("{line}{hooks}\n")
        }
        None => "no verdict store: every check is forwarded to Polar (see --store)\n".to_string(),
    };
    let metrics_line = running
        .metrics_url()
        .map(|m| {
            format!(
                "metrics: {m}; health: {url}{}\n",
                polar_license_relay::HEALTH_ROUTE
            )
        })
        .unwrap_or_default();
    print_out(&format!(
        "listening on {url}\n\
         relay for {upstream} (organization {org}), leases of {} days signed by {kid}\n\
         clients: --base-url {url} --relay-key {pair}\n\
         {socket_line}\
         {store_line}\
         {metrics_line}\
         serving until killed (Ctrl-C)\n",
        a.lease_days
    ));
    match signals.and_then(StopSignals::wait) {
        Some(signal) => {
            log::info!("relay: {signal}: no new connections; answering the requests under way");
            // Returns once they are answered; the relay and its store are dropped with the
            // server, so a store file is closed as a clean shutdown leaves it.
            running.stop();
            log::info!("relay: stopped");
        }
        // No signal can be waited for here: serve until killed, as a `kill -9` ends it.
        None => running.wait(),
    }
    0
}

/// The listening socket systemd's socket activation handed in (`LISTEN_FDS`, and
/// `LISTEN_PID` this process's), if any: the relay serves on it, so the connections that
/// arrive while it restarts wait in the socket's queue instead of being refused. Reading it
/// removes both variables.
#[cfg(unix)]
fn handed_listener() -> Result<Option<std::net::TcpListener>, String> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    match fds.take_tcp_listener(0) {
        Ok(Some(listener)) => Ok(Some(listener)),
        Ok(None) => Err("the socket handed in (LISTEN_FDS) was taken already".to_string()),
        Err(e) => Err(format!(
            "the socket handed in (LISTEN_FDS) is not a listening TCP socket: {e}"
        )),
    }
}

/// No socket activation off unix.
#[cfg(not(unix))]
fn handed_listener() -> Result<Option<std::net::TcpListener>, String> {
    Ok(None)
}

/// SIGTERM (what `systemctl stop`, `docker stop` and Kubernetes send) and Ctrl-C (SIGINT),
/// listened for from before the relay serves: one sent while it starts (a service manager that
/// stops it at once, a test that signals as soon as it answered) stops it as one sent later
/// does, its requests answered and its store closed, not by the signal's default action
/// (killed, the store file left as a crash leaves it).
struct StopSignals {
    runtime: tokio::runtime::Runtime,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(windows)]
    interrupt: Option<tokio::signal::windows::CtrlC>,
}

impl StopSignals {
    /// Listens from now on; `None` when no runtime can be made to listen with.
    fn listen() -> Option<StopSignals> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .ok()?;
        // A signal's handler is installed when its stream is made (within the runtime).
        let entered = runtime.enter();
        #[cfg(unix)]
        let (terminate, interrupt) = {
            use tokio::signal::unix::{signal, SignalKind};
            (
                signal(SignalKind::terminate()).ok(),
                signal(SignalKind::interrupt()).ok(),
            )
        };
        #[cfg(windows)]
        let interrupt = tokio::signal::windows::ctrl_c().ok();
        drop(entered);
        Some(StopSignals {
            runtime,
            #[cfg(unix)]
            terminate,
            #[cfg(any(unix, windows))]
            interrupt,
        })
    }

    /// Waits for one and names it; `None` at once when none can be waited for.
    fn wait(self) -> Option<&'static str> {
        #[cfg(unix)]
        {
            let StopSignals {
                runtime,
                mut terminate,
                mut interrupt,
            } = self;
            if terminate.is_none() && interrupt.is_none() {
                return None;
            }
            runtime.block_on(async {
                // A signal that cannot be listened for never comes.
                let term = async {
                    match terminate.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let int = async {
                    match interrupt.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = term => Some("SIGTERM"),
                    _ = int => Some("SIGINT"),
                }
            })
        }
        #[cfg(windows)]
        {
            let StopSignals {
                runtime,
                mut interrupt,
            } = self;
            let ctrl_c = interrupt.as_mut()?;
            runtime.block_on(ctrl_c.recv()).map(|()| "Ctrl-C")
        }
        #[cfg(not(any(unix, windows)))]
        {
            drop(self);
            None
        }
    }
}

/// The verdict store of `--store` (and the line the banner says of it), or none.
fn store_config(
    a: &RelayServeArgs,
    sandbox: bool,
) -> Result<Option<(polar_license_relay::StoreConfig, String)>, Report> {
    use polar_license_relay::store::{MemoryBackend, StoreOptions};
    const CMD: &str = "relay serve";
    // The option, else the environment: an environment variable may be set for another
    // purpose (a webhook receiver of the seller's own), so alone it never stops a relay started
    // as before (contract §5a: add, never break).
    let from_env = a.webhook_secret.is_none();
    let secret = a
        .webhook_secret
        .clone()
        .or_else(|| std::env::var(WEBHOOK_SECRET_ENV).ok());
    // On by default with a store; --no-roster (or the variable set to a false value) turns it
    // off.
    let roster = !a.no_roster && a.roster.unwrap_or(true);
    let Some(choice) = a.store.as_deref() else {
        if a.roster == Some(true) && !a.no_roster {
            let why = "needs --store: the roster decides which keys spend the store's budget";
            return Err(usage_report(Some(CMD), Some("roster"), why));
        }
        if secret.is_some() {
            if !from_env {
                let why = "needs --store: Polar's webhooks narrow what the store holds";
                return Err(usage_report(Some(CMD), Some("webhook_secret"), why));
            }
            print_err(&format!(
                "warning: {WEBHOOK_SECRET_ENV} is set but there is no --store: Polar's webhooks \
                 are off (POST {} answers 404) and every check is forwarded; give --store to \
                 turn them on\n",
                polar_license_relay::WEBHOOK_ROUTE
            ));
        }
        return Ok(None);
    };
    if secret
        .as_deref()
        .is_some_and(|s| !polar_license_relay::store::webhook_secret_usable(s))
    {
        let source = if from_env {
            WEBHOOK_SECRET_ENV
        } else {
            "--webhook-secret"
        };
        let why = format!(
            "{source} is empty: give the whsec_… secret of the webhook endpoint in Polar (a \
             signature made with an empty secret proves nothing)"
        );
        return Err(usage_report(Some(CMD), Some("webhook_secret"), &why));
    }
    if a.fresh_for == 0 || a.stale_for < a.fresh_for {
        let why = "--fresh-for must be at least 1 and --stale-for at least --fresh-for";
        return Err(usage_report(Some(CMD), Some("fresh_for"), why));
    }
    let mut options = StoreOptions::default().with_budget(sandbox, a.budget, a.budget_reserve);
    let (budget, reserve) = (options.budget, options.reserve);
    if budget == 0 || reserve >= budget {
        let why = "--budget must be at least 1 and --budget-reserve below it";
        return Err(usage_report(Some(CMD), Some("budget"), why));
    }
    options.fresh_for = a.fresh_for;
    options.stale_for = a.stale_for;
    options.denial_for = a.denial_for;
    options.first_seen_share = a.first_seen_share;
    options.marked_stale_for = a.marked_stale_for;
    options.reconcile_every = a.reconcile_every;
    options.refuse_at_zero_credits = a.refuse_at_zero_credits;
    options.max_entries = a.store_max_entries;
    options.max_bytes = a.store_max_bytes;
    options.roster = roster;
    options.entitlements = a.sign_entitlements;
    options.usage = a.record_usage;
    options.usage_events = (!a.usage_events.is_empty()).then(|| a.usage_events.clone());
    if let Some((field, why)) = options.problem() {
        let why = match field {
            "usage_events" => format!("--usage-events {why}"),
            "refuse_at_zero_credits" => {
                "--refuse-at-zero-credits needs --record-usage and --sign-entitlements (the \
                 balance is read with them)"
                    .to_string()
            }
            // The flag named, as clap names the ones it checks itself.
            _ => format!("--{}: {why}", field.replace('_', "-")),
        };
        return Err(usage_report(Some(CMD), Some(field), &why));
    }
    let (backend, place): (Arc<dyn polar_license_relay::store::Backend>, String) =
        if choice.eq_ignore_ascii_case("memory") {
            (
                Arc::new(MemoryBackend::new(a.store_max_entries)),
                "memory (nothing on disk)".into(),
            )
        } else {
            let path = if choice == "default" {
                match dirs::data_local_dir() {
                    Some(d) => d.join("polar-license").join("relay-store.redb"),
                    None => {
                        let why = "no data directory on this platform: give --store FILE";
                        return Err(usage_report(Some(CMD), Some("store"), why));
                    }
                }
            } else {
                std::path::PathBuf::from(choice)
            };
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if let Err(e) = std::fs::create_dir_all(parent) {
                    let message = format!("cannot create {}: {e}", parent.display());
                    return Err(env_error(CMD, "store", &message));
                }
            }
            match polar_license_relay::store::RedbBackend::open(&path, a.store_max_entries) {
                Ok(b) => (Arc::new(b), path.display().to_string()),
                Err(e) => return Err(env_error(CMD, "store", &e.to_string())),
            }
        };
    let held = backend.len().unwrap_or(0);
    let line = format!(
        "verdict store: {place} ({held} entries), fresh {} s, stale {} s, budget {budget} calls/min \
         ({reserve} kept for activations)",
        a.fresh_for, a.stale_for
    );
    let line = if roster {
        format!(
            "{line}; roster on (keys it does not know: {} % of the budget)",
            a.first_seen_share
        )
    } else {
        format!("{line}; roster off (every key may spend the whole budget: --no-roster)")
    };
    Ok(Some((
        polar_license_relay::StoreConfig {
            backend,
            options,
            webhook_secret: secret,
        },
        line,
    )))
}

/// A test-only variable's whole seconds (0 when not a number: the core refuses it), with one
/// warning line on stderr when it is set: the core's own warning is logged before the log
/// reaches stderr, and a production relay must never run with one by mistake.
fn test_only_var(name: &str) -> Option<u32> {
    let seconds = std::env::var(name).ok()?.trim().parse::<u32>().unwrap_or(0);
    print_err(&format!(
        "warning: {name} is set ({seconds} s): for tests only, never in production\n"
    ));
    Some(seconds)
}

/// A key file others can read is a leaked key waiting to happen: say so (unix).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                print_err(&format!(
                    "warning: {} is readable by others than its owner (chmod 600 it)\n",
                    path.display()
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
