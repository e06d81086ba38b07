//! `emulator`: runs the local Polar emulator until killed.

use crate::args::{EmulatorArgs, Global};
use crate::output::{print_out, usage_report, Report};
use polar_license_emulator::{Emulator, Options, Seed, WebhookOptions};
use serde_json::{json, Value};

/// Starts the emulator, prints `listening on http://127.0.0.1:PORT` first, then the
/// organization and the seeded keys, and serves until the process is killed.
pub fn run(g: &Global, a: &EmulatorArgs) -> u8 {
    let seed = match load_seed(a) {
        Ok(seed) => seed,
        Err(report) => return report.print(g.json),
    };
    let first_key = seed.license_keys.first().map(|k| k.key.clone());
    let options = Options {
        port: a.port,
        rate_limit: a.rate_limit,
        sandbox: a.sandbox,
        api_version: a.api_version.clone(),
        token_budget: a.token_budget,
        token_window: a.token_window.map(std::time::Duration::from_secs),
        webhooks: WebhookOptions {
            schedule_scale: a.webhook_time_scale,
            timeout: a.webhook_timeout,
        },
        state: a.state.clone(),
        ..Options::default()
    };
    let options = Options {
        api_versions: if a.api_versions.is_empty() {
            options.api_versions
        } else {
            a.api_versions.clone()
        },
        ..options
    };
    if !options.api_versions.contains(&options.api_version) {
        let served = options.api_versions.join(",");
        let why = format!(
            "{} is not among the served versions ({served})",
            options.api_version
        );
        return usage_report(Some("emulator"), Some("api-version"), &why).print(g.json);
    }
    let emulator = match Emulator::start(seed.clone(), options) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return usage_report(Some("emulator"), Some("seed"), &format!("bad seed: {e}"))
                .print(g.json);
        }
        Err(e) if e.to_string().starts_with("the state file") => {
            let mut report = usage_report(Some("emulator"), Some("state"), &e.to_string());
            if e.kind() != std::io::ErrorKind::InvalidData {
                // Not the file's content: the environment (a directory that cannot be written).
                report.json.insert("outcome".into(), json!("error"));
                report.json.insert("reason".into(), Value::Null);
                report.exit = 3;
            }
            report.lines = vec![format!("error: {e}")];
            return report.print(g.json);
        }
        Err(e) => {
            let mut report = usage_report(
                Some("emulator"),
                Some("port"),
                &format!("cannot listen on 127.0.0.1:{}: {e}", a.port),
            );
            // Not the user's input: an environment problem (port taken, no permission).
            report.json.insert("outcome".into(), json!("error"));
            report.json.insert("reason".into(), Value::Null);
            report.lines = vec![format!("error: cannot listen on 127.0.0.1:{}: {e}", a.port)];
            report.exit = 3;
            return report.print(g.json);
        }
    };
    let url = emulator.url();
    let org = emulator.organization_id();
    // After the start: a key's benefit id is generated then when the seed names none.
    let banner = seed_banner(&seed, &emulator);
    let mut text = format!("listening on {url}\n");
    text.push_str(&format!("organization {org}\n"));
    text.push_str(&banner);
    text.push_str(&format!(
        "try: polar-license --base-url {url} --org {org} validate --key {}\n",
        first_key.as_deref().unwrap_or("KEY")
    ));
    if a.rate_limit {
        text.push_str("rate limit on: 3 requests per second, then a 60 s block\n");
    }
    let (budget, window) = emulator.token_budget();
    if budget == 0 {
        text.push_str("token budget off\n");
    } else {
        text.push_str(&format!(
            "token budget: {budget} calls per {}s per organization (429 past it)\n",
            window.as_secs_f64()
        ));
    }
    match &a.state {
        Some(path) => text.push_str(&format!(
            "state kept in {}: activations survive a restart\n",
            path.display()
        )),
        None => text.push_str(
            "state in memory only: a restart forgets every activation (--state FILE keeps them)\n",
        ),
    }
    text.push_str("serving until killed (Ctrl-C)\n");
    print_out(&text);
    loop {
        std::thread::park();
    }
}

fn load_seed(a: &EmulatorArgs) -> Result<Seed, Report> {
    let Some(path) = &a.seed else {
        return Ok(Seed::demo());
    };
    let bad = |why: String| usage_report(Some("emulator"), Some("seed"), &why);
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("cannot read seed file {}: {e}", path.display())))?;
    Seed::from_json(&text).map_err(|e| bad(format!("bad seed file {}: {e}", path.display())))
}

/// One line per seeded key and access token, with each key's benefit id (what
/// `--entitlements` maps features to): [`Seed::banner`], the npm package's emulator's too.
fn seed_banner(seed: &Seed, emulator: &Emulator) -> String {
    seed.banner(|key| {
        emulator
            .key(key)
            .and_then(|v| v["benefit_id"].as_str().map(str::to_string))
    })
}
