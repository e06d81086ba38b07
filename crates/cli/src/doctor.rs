//! `polar-license doctor` (issue #78): the seller's Polar set-up checked with their
//! organization token. The checks and every sentence are the relay crate's
//! (`polar_license_relay::doctor`); this prints them, one finding a line, and picks the exit.

use polar_license::{AccessToken, Server};
use polar_license_relay::doctor::{self, Needs, Report as Found, Setup};
use serde_json::{json, Map, Value};

use crate::args::{DoctorArgs, Global, ServerChoice};
use crate::output::{usage_report, Report};

const CMD: &str = "doctor";

/// The exit code when something was found (docs/interfaces.md): 1, as a denial's.
pub const EXIT_FOUND: u8 = 1;
/// The exit code when nothing was found but some reads could not be made: 3, as an error's.
pub const EXIT_UNCHECKED: u8 = 3;

/// `doctor`: reads the organization with the token, prints what it found.
pub fn doctor(g: &Global, a: &DoctorArgs) -> Report {
    let Some(token) = g.access_token.as_deref().filter(|t| !t.is_empty()) else {
        let why = "is required: pass --access-token or set POLAR_ACCESS_TOKEN (the organization \
                   access token the relay uses)";
        return usage_report(Some(CMD), Some("access_token"), why);
    };
    let server = match g.base_url.as_deref().filter(|s| !s.is_empty()) {
        Some(url) => Server::Custom(url.to_string()),
        None => match g.server {
            ServerChoice::Production => Server::Production,
            ServerChoice::Sandbox => Server::Sandbox,
        },
    };
    let base_url = match server.base_url() {
        Ok(url) => url,
        Err(e) => return usage_report(Some(CMD), Some("base_url"), &e.to_string()),
    };
    if let Some(url) = &a.relay_url {
        if polar_license::proto::check_base_url(url).is_err() {
            let why = "is no base URL (https://, or http:// on a loopback host)";
            return usage_report(Some(CMD), Some("relay_url"), why);
        }
    }
    let setup = Setup {
        base_url,
        token: AccessToken::new(token),
        organization_id: g.org.clone().filter(|s| !s.is_empty()),
        benefit_ids: a.benefit_ids.clone(),
        relay_url: a.relay_url.clone(),
        needs: Needs {
            store: a.relay_url.is_some() || a.store,
            webhooks: a.relay_url.is_some() || a.store,
            entitlements: a.sign_entitlements,
            usage: a.record_usage,
        },
    };
    report(&doctor::check(&setup))
}

/// What was found as the command's output: a line per finding (`code: message`, then its fix
/// indented), the unchecked reads, and a last line; `--json` the relay crate's report with
/// `command` and `outcome`.
fn report(found: &Found) -> Report {
    let mut lines = Vec::new();
    for f in &found.findings {
        lines.push(format!("{}: {}", f.code(), f.message()));
        lines.push(format!("  fix: {}", f.fix()));
    }
    for u in &found.unchecked {
        lines.push(u.message());
    }
    if found.truncated {
        lines
            .push("more than one page of benefits or endpoints: only the first was checked".into());
    }
    let (outcome, exit) = if !found.findings.is_empty() {
        ("denied", EXIT_FOUND)
    } else if !found.unchecked.is_empty() {
        ("unverified", EXIT_UNCHECKED)
    } else {
        ("done", 0)
    };
    lines.push(match exit {
        0 => {
            let mut about: Vec<String> = Vec::new();
            if let Some(o) = &found.organization {
                about.push(format!("organization {o}"));
            }
            if found.environment != doctor::Environment::Other {
                about.push(format!("Polar's {}", found.environment.name()));
            }
            match about.is_empty() {
                true => "no mistakes found".to_string(),
                false => format!("no mistakes found ({})", about.join(", ")),
            }
        }
        EXIT_FOUND => format!("{} to fix", plural(found.findings.len(), "finding")),
        _ => "nothing found, but not everything could be checked".to_string(),
    });
    let mut json = Map::new();
    json.insert("command".into(), json!(CMD));
    json.insert("outcome".into(), json!(outcome));
    json.insert("reason".into(), Value::Null);
    if let Value::Object(m) = found.to_json() {
        json.extend(m);
    }
    Report {
        json,
        lines,
        to_stderr: false,
        exit,
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
