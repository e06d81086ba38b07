//! `sign-in`, `devices` and `free` (issue #64): out of activations, see the key's devices and
//! free one from here, then `activate`.
//!
//! `sign-in` exchanges the code Polar emails for a customer session (one hour, no refresh),
//! sealed beside the cache for that hour ([`Licensing::remember_session`]: never in plain text,
//! never printed). `devices` reads the key's live activations through it, this machine's
//! marked; `free` is the public deactivate, which needs no session. The steps and the rules
//! (which list is "device management off", which activation is this machine's) are the core's
//! ([`Licensing::list_devices`], [`polar_license::portal::ListDevices`]); this module only
//! renders.

use crate::args::{
    ActivateArgs, AskedKeyArg, DevicesArgs, FollowRotationArgs, FreeArgs, Global, RecoverArgs,
    SignInArgs,
};
use crate::output::{base_object, error_report, report, steps, unix_when, Op, Report};
use crate::run::{key_or_remembered, licensing_with};
use polar_license::portal::{Device, PortalError, SessionToken};
use polar_license::{Error, Key, Licensing, Reason};
use serde_json::{json, Value};

/// How long Polar's customer session lasts (docs/polar-api.md §16.1): one hour, no refresh.
const SESSION_SECONDS: i64 = 3600;

/// A failure that is no portal answer (bad input, the cache, the network), as every command
/// renders it, named for `command`.
pub(crate) fn plain_error(command: &str, error: &Error) -> Report {
    let mut r = error_report(None, None, error);
    r.json.insert("command".into(), json!(command));
    input_words(&mut r);
    r
}

/// The words for a refused input these commands take from the person at the terminal (the
/// generic `user_message` of an `invalid_input` speaks of an app's settings): the core's
/// sentence and next step for the field typed here (`Steps::typed`, its ids named by where
/// this command line lists them).
fn input_words(r: &mut Report) {
    if r.json.get("reason") != Some(&json!(Reason::InvalidInput.code())) {
        return;
    }
    let field = r
        .json
        .get("field")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(said) = steps(false).typed(field) else {
        return;
    };
    r.json.insert("user_message".into(), json!(said.text()));
    r.json.insert("next_step".into(), json!(said.next_step()));
    r.lines.push(format!("  what to do: {}", said.next_step()));
}

/// A portal step's failure: one sentence, its next step, and the exit code of contract §2
/// (Polar refused: 1; refused before sending: 2; no answer: 3). `portal_error` names the
/// failure for scripts (the core's `PortalError::code`).
pub(crate) fn portal_failure(command: &str, error: &PortalError) -> Report {
    let (outcome, exit): (&str, u8) = match error {
        PortalError::Invalid(e) | PortalError::Offline(e) | PortalError::Protocol(e) => {
            return plain_error(command, e)
        }
        PortalError::CodeInvalidOrExpired
        | PortalError::SessionExpired
        | PortalError::NotFound
        | PortalError::DeviceManagementOff => ("denied", 1),
        PortalError::NotSignedIn | PortalError::CustomerSelectionRequired(_) => ("error", 2),
        PortalError::RateLimited(_) => ("unverified", 3),
        _ => ("error", 3),
    };
    let kind = error.code();
    let reason = error.reason();
    // What to tell the person is the core's one sentence and next step
    // (`PortalError::message`, every face's words, issue #80), and the same step said with
    // this command line's commands and flags (`PortalError::message_with`), as `from_here`:
    // none of the words are this module's. `devices` alone has another way in: the seller's
    // relay needs no session.
    let said = error.message();
    let here = error.message_with(&steps(command == "devices"));
    let step = here.next_step();
    let mut m = base_object(Some(command), outcome);
    let detail = error.to_string();
    m.insert("reason".into(), json!(reason.map(Reason::code)));
    m.insert("detail".into(), json!(detail));
    m.insert("portal_error".into(), json!(kind));
    m.insert("user_message".into(), json!(said.text()));
    m.insert("next_step".into(), json!(said.next_step()));
    m.insert("from_here".into(), json!(step));
    match error {
        PortalError::RateLimited(wait) => {
            m.insert("retry_after".into(), json!(wait));
        }
        PortalError::NotSignedIn => {
            m.insert("field".into(), json!("session"));
        }
        PortalError::CustomerSelectionRequired(customers) => {
            m.insert("field".into(), json!("customer_id"));
            let list: Vec<Value> = customers
                .iter()
                .map(|(id, name)| json!({ "id": id, "name": name }))
                .collect();
            m.insert("customers".into(), Value::Array(list));
        }
        PortalError::Refused { status, error, .. } => {
            m.insert("status".into(), json!(status));
            m.insert("error".into(), json!(error));
        }
        _ => {}
    }
    Report {
        json: m,
        lines: vec![
            format!("{outcome}: {kind} — {}", said.sentence()),
            format!("  what to do: {}", said.next_step()),
            format!("  from here: {step}"),
        ],
        to_stderr: true,
        exit,
    }
}

/// The emailed code: `--code`, else asked on the terminal (not echoed), else `None` (no
/// terminal: the command stops once the code is sent).
pub(crate) fn code_asked() -> Result<Option<String>, Error> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let typed = rpassword::prompt_password("Code from the email (not shown as you type): ")
        .map_err(|e| Error::invalid("code", format!("could not be read from the terminal: {e}")))?;
    Ok(Some(typed.trim().to_string()))
}

/// Signs in with `code` and seals the session beside the cache for its hour.
fn authenticate(licensing: &Licensing, code: &str) -> Result<i64, PortalError> {
    // The hour runs from Polar's answer: counted from before the request, it ends no later.
    let expires_at = licensing.now().saturating_add(SESSION_SECONDS);
    let token = licensing.client().sign_in(code)?;
    licensing
        .remember_session(&token, expires_at)
        .map_err(PortalError::Offline)?;
    Ok(expires_at)
}

/// `sign-in`: asks Polar to email a code (unless `--code` is given), then signs in with the
/// code typed on the terminal or given with `--code`.
pub fn sign_in(g: &Global, a: &SignInArgs) -> Report {
    const COMMAND: &str = "sign-in";
    let licensing = match licensing_with(g, false) {
        Ok(l) => l,
        Err(e) => return plain_error(COMMAND, &e),
    };
    let mut code = a.code.clone();
    let mut sent = false;
    if code.is_none() {
        let Some(email) = a.email.as_deref() else {
            return plain_error(
                COMMAND,
                &Error::invalid("email", "is required: pass --email (or --code)"),
            );
        };
        let asked = licensing
            .client()
            .request_sign_in_code_for(email, a.customer_id.as_deref());
        if let Err(e) = asked {
            return portal_failure(COMMAND, &e);
        }
        sent = true;
        code = match code_asked() {
            Ok(c) => c,
            Err(e) => return plain_error(COMMAND, &e),
        };
    }
    let Some(code) = code else {
        // No terminal to type it on: the code is on its way; the script passes it next.
        let mut m = base_object(Some(COMMAND), "done");
        m.insert("code_sent".into(), json!(true));
        m.insert("signed_in".into(), json!(false));
        let said = steps(false).code_sent();
        return Report::ok(
            m,
            vec![
                format!("done: {}", said.sentence()),
                format!("  what to do: {}", said.next_step()),
            ],
        );
    };
    let expires_at = match authenticate(&licensing, &code) {
        Ok(t) => t,
        // A cache that cannot hold the session is the cache's error, as every command says it.
        Err(PortalError::Offline(e)) if e.reason() == Reason::CacheError => {
            return plain_error(COMMAND, &e)
        }
        Err(e) => return portal_failure(COMMAND, &e),
    };
    let mut m = base_object(Some(COMMAND), "done");
    m.insert("code_sent".into(), json!(sent));
    m.insert("signed_in".into(), json!(true));
    m.insert("session_expires_at".into(), json!(unix_when(expires_at)));
    let said = steps(false).signed_in();
    Report::ok(
        m,
        vec![
            format!("done: {}", said.sentence()),
            format!("  {:<12} {}", "until", unix_when(expires_at)),
            format!("  what to do: {}", said.next_step()),
        ],
    )
}

/// The command's licensing (`remember_keys` as it needs), then its key: `key`, else the
/// remembered one.
fn licensing_and_key(
    g: &Global,
    remember_keys: bool,
    key: Option<&str>,
) -> Result<(Licensing, Key), Error> {
    let licensing = licensing_with(g, remember_keys)?;
    let key = key_or_remembered(&licensing, key)?;
    Ok((licensing, key))
}

/// `read` through the remembered session; a session Polar no longer knows is forgotten
/// (nothing is kept that cannot be used).
fn with_session<T>(
    licensing: &Licensing,
    read: impl FnOnce(&SessionToken) -> Result<T, PortalError>,
) -> Result<T, PortalError> {
    let session: SessionToken = licensing
        .remembered_session()
        .map_err(PortalError::Offline)?
        .ok_or(PortalError::NotSignedIn)?;
    let answer = read(&session);
    if matches!(answer, Err(PortalError::SessionExpired)) {
        let _ = licensing.forget_session();
    }
    answer
}

/// The key's devices through the remembered session, or without one through the seller's
/// relay (`relay`), this machine's marked: the core's choice and order of steps
/// ([`Licensing::list_devices_any`], the sans-IO `ListDevices` every face drives).
fn list(
    licensing: &Licensing,
    key: &Key,
    relay: Option<&str>,
) -> Result<(Vec<Device>, Option<i64>), PortalError> {
    let session = licensing
        .remembered_session()
        .map_err(PortalError::Offline)?;
    let found = match session {
        Some(_) => with_session(licensing, |session| {
            licensing.list_devices_any(Some(session), relay, key.clone())
        })?,
        None => licensing.list_devices_any(None, relay, key.clone())?,
    };
    Ok((found.devices, found.limit_activations))
}

/// `devices`: the key's live activations through the customer session.
pub fn devices(g: &Global, a: &DevicesArgs) -> Report {
    const COMMAND: &str = "devices";
    let (licensing, key) = match licensing_and_key(g, false, a.key.key.as_deref()) {
        Ok(had) => had,
        Err(e) => return plain_error(COMMAND, &e),
    };
    let (devices, limit) = match list(&licensing, &key, a.relay.as_deref()) {
        Ok(found) => found,
        Err(e) => {
            let mut r = portal_failure(COMMAND, &e);
            r.json.insert("key".into(), json!(key.redacted()));
            return r;
        }
    };
    let here = devices
        .iter()
        .find(|d| d.this_machine)
        .map(|d| d.id.clone());
    let mut m = base_object(Some(COMMAND), "done");
    m.insert("activation_id".into(), json!(here));
    m.insert("key".into(), json!(key.redacted()));
    m.insert("limit_activations".into(), json!(limit));
    let listed: Vec<Value> = devices
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "label": d.label,
                "activated_at": unix_when(d.activated_at.unix_timestamp()),
                "this_machine": d.this_machine,
                "platform": d.platform,
                "last_seen": d.last_seen.map(|t| unix_when(t.unix_timestamp())),
            })
        })
        .collect();
    m.insert("devices".into(), Value::Array(listed));
    let in_use = match limit {
        Some(n) => format!("{} of {n} activations in use", devices.len()),
        None => format!("{} activations", devices.len()),
    };
    let mut lines = vec![format!("done: {in_use} for {}", key.redacted())];
    for d in &devices {
        // What tells the rows apart besides the label (issue #80): the platform and when the
        // relay last saw the device, when known.
        let platform = d
            .platform
            .as_deref()
            .map(|p| format!(", {p}"))
            .unwrap_or_default();
        let seen = d
            .last_seen
            .map(|t| format!(", last seen {}", unix_when(t.unix_timestamp())))
            .unwrap_or_default();
        lines.push(format!(
            "  {}  {:<24} activated {}{platform}{seen}{}",
            d.id,
            d.label,
            unix_when(d.activated_at.unix_timestamp()),
            if d.this_machine {
                "  (this machine)"
            } else {
                ""
            }
        ));
    }
    if !devices.is_empty() {
        lines.push(format!("  what to do: {}", steps(false).free_one()));
    }
    Report::ok(m, lines)
}

/// `free ID`: the public deactivate of one activation of the key (no session); when it is
/// this machine's, the cache forgets it, as `deactivate` does.
pub fn free(g: &Global, a: &FreeArgs) -> Report {
    const COMMAND: &str = "free";
    let (licensing, key) = match licensing_and_key(g, true, a.key.key.as_deref()) {
        Ok(had) => had,
        Err(e) => return plain_error(COMMAND, &e),
    };
    let here = licensing
        .status(key.clone())
        .ok()
        .and_then(|s| s.activation.map(|a| a.id));
    let freed = licensing.deactivate_update(key.clone(), Some(a.id.as_str()));
    let mut r = report(Op::Deactivate, &key, Some(a.id.as_str()), &freed.answer);
    r.json.insert("command".into(), json!(COMMAND));
    input_words(&mut r);
    if r.exit == 0 {
        let this_machine = here.as_deref() == Some(a.id.as_str());
        r.json.insert("this_machine".into(), json!(this_machine));
        r.lines[0] = format!("done: freed activation {} of {}", a.id, key.redacted());
        let said = steps(false).freed(this_machine, here.is_some());
        r.lines.push(format!("  {}", said.sentence()));
        r.lines.push(format!("  what to do: {}", said.next_step()));
    } else if r.json.get("reason") == Some(&json!(Reason::NotFound.code())) {
        // Polar's 404 to a deactivate: no such live activation of this key (the core's words).
        let said = steps(false).already_freed();
        // In place of the denial's sentence (the line after the outcome's) and its step.
        r.lines.retain(|l| !l.starts_with("  what to do:"));
        if r.lines.len() > 1 {
            r.lines[1] = format!("  {}", said.sentence());
        }
        r.lines.insert(
            2.min(r.lines.len()),
            format!("  what to do: {}", said.next_step()),
        );
        r.json.insert("user_message".into(), json!(said.text()));
        r.json.insert("next_step".into(), json!(said.next_step()));
    }
    r
}

/// `follow-rotation`: the key the seller rotated (Polar answers its old string `not_found`),
/// followed through the signed-in customer session by the core's follow machine
/// (`Licensing::follow_rotation`): the same key's new string validated with this machine's
/// activation (no slot taken), the old record forgotten, and the new string remembered in the
/// old one's place when the old one was remembered. The new string is shown redacted only.
pub fn follow_rotation(g: &Global, a: &FollowRotationArgs) -> Report {
    const COMMAND: &str = "follow-rotation";
    let (licensing, old) = match licensing_and_key(g, true, a.key.key.as_deref()) {
        Ok(had) => had,
        Err(e) => return plain_error(COMMAND, &e),
    };
    let (new, verdict) =
        match with_session(&licensing, |s| licensing.follow_rotation(s, old.clone())) {
            Ok(followed) => followed,
            Err(e) => {
                let mut r = portal_failure(COMMAND, &e);
                r.json.insert("key".into(), json!(old.redacted()));
                return r;
            }
        };
    let accepted = verdict.is_accepted();
    let remembered = licensing.remembered_key().ok().flatten();
    let was_remembered = accepted && remembered.is_some_and(|k| k.expose() == new.expose());
    let mut r = report(Op::Validate, &new, None, &Ok(verdict));
    r.json.insert("command".into(), json!(COMMAND));
    r.json.insert("key".into(), json!(new.redacted()));
    r.json.insert("followed_from".into(), json!(old.redacted()));
    r.json
        .insert("remembered".into(), json!(accepted && was_remembered));
    // The new string is never shown whole.
    if let Some(license) = r.json.get_mut("license").and_then(Value::as_object_mut) {
        license.insert("key".into(), json!(new.redacted()));
    }
    if accepted {
        r.lines[0] = format!(
            "done: {} was rotated; followed to {} (this machine's activation kept)",
            old.redacted(),
            new.redacted()
        );
        if was_remembered {
            r.lines
                .push("  the new key is remembered in the old one's place".to_string());
        } else {
            let said = steps(false).followed_unremembered();
            r.lines.push(format!("  {}", said.sentence()));
            r.lines.push(format!("  what to do: {}", said.next_step()));
        }
    }
    r
}

/// `recover`: the signed-in customer's keys this machine can activate (the core's
/// `Licensing::recoverable_keys`), listed by id and redacted form; `recover ID` activates that
/// one here and remembers it, as `activate --remember` does, the whole key never printed.
pub fn recover(g: &Global, a: &RecoverArgs) -> Report {
    const COMMAND: &str = "recover";
    let licensing = match licensing_with(g, false) {
        Ok(l) => l,
        Err(e) => return plain_error(COMMAND, &e),
    };
    let keys = match with_session(&licensing, |session| licensing.recoverable_keys(session)) {
        Ok(keys) => keys,
        Err(e) => return portal_failure(COMMAND, &e),
    };
    if let Some(id) = a.id.as_deref() {
        let Some(chosen) = keys.into_iter().find(|k| k.id == id) else {
            // The core's words for an id typed here (`Steps::typed`, through plain_error).
            return plain_error(
                COMMAND,
                &Error::invalid("id", "is not one of the keys `polar-license recover` lists"),
            );
        };
        let activate = ActivateArgs {
            key: AskedKeyArg {
                key: Some(chosen.key.expose().to_string()),
            },
            remember: true,
            label: a.label.clone(),
            conditions: Vec::new(),
            meta: Vec::new(),
            relay: None,
        };
        let mut r = crate::run::activate(g, &activate);
        r.json.insert("command".into(), json!(COMMAND));
        // The customer lost the key and recovers it into this activation only: the license
        // object shows it as Polar's display form, never whole.
        if let Some(license) = r.json.get_mut("license").and_then(Value::as_object_mut) {
            license.insert("key".into(), json!(chosen.display_key));
        }
        r.json.insert("key_id".into(), json!(chosen.id));
        return r;
    }
    let mut m = base_object(Some(COMMAND), "done");
    let listed: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "id": k.id,
                "display_key": k.display_key,
                "benefit_id": k.benefit_id,
                "limit_activations": k.limit_activations,
                "expires_at": k.expires_at.map(|e| unix_when(e.unix_timestamp())),
            })
        })
        .collect();
    m.insert("keys".into(), Value::Array(listed));
    let mut lines = vec![match keys.len() {
        0 => "done: no key of this customer can be activated (none is granted and unexpired)"
            .to_string(),
        1 => "done: 1 key can be activated here".to_string(),
        n => format!("done: {n} keys can be activated here"),
    }];
    for k in &keys {
        let expires = k
            .expires_at
            .map_or("never".to_string(), |e| unix_when(e.unix_timestamp()));
        let limit = k
            .limit_activations
            .map_or("no activations".to_string(), |n| format!("{n} devices"));
        lines.push(format!(
            "  {}  {}  {limit:<15} expires {expires}",
            k.id, k.display_key
        ));
    }
    if !keys.is_empty() {
        lines.push(format!("  what to do: {}", steps(false).use_one()));
    }
    Report::ok(m, lines)
}
