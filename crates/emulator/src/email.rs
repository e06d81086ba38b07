//! Email addresses as Polar's `EmailStr`/`EmailStrDNS` check them (docs/polar-api.md §16.1):
//! pydantic's `validate_email` (a `Name <addr>` form unwrapped, the text stripped, 2,048
//! characters at most), then `email_validator` 2.3.0's syntax rules (`syntax.py`:
//! `split_email`, `validate_email_local_part`, `validate_email_domain_name`,
//! `validate_email_length`) with Polar's settings: no quoted local part, no bracketed IP
//! address, no display name, globally deliverable domains only (special-use names refused).
//! Sources: `server/polar/kit/email.py` (`EmailStrDNS`), `server/uv.lock` (email-validator
//! 2.3.0, pydantic 2.13.4).
//!
//! Each message is `email_validator`'s own, checked against it (the table in the tests below
//! was printed by email-validator 2.3.0). What the emulator leaves out: the DNS deliverability
//! check (`EmailStrDNS`'s second step: a domain without mail servers, such as `example.com`,
//! passes here where Polar answers `… is not a valid email address: The domain name … does not
//! accept email.`), and the Unicode rules (normalization, IDNA): a non-ASCII character is taken
//! as valid where `email_validator` allows international text at all.

/// pydantic's `MAX_EMAIL_LENGTH`.
const MAX_EMAIL_LENGTH: usize = 2048;
/// `EMAIL_MAX_LENGTH`, `DOMAIN_MAX_LENGTH`, `DNS_LABEL_LENGTH_LIMIT`.
const EMAIL_MAX: usize = 254;
const DOMAIN_MAX: usize = 253;
const LABEL_MAX: usize = 63;
/// `SPECIAL_USE_DOMAIN_NAMES` (`test` too: Polar's production is no test environment).
const SPECIAL_USE: [&str; 6] = ["arpa", "invalid", "local", "localhost", "onion", "test"];

/// The address as Polar keeps it (`ValidatedEmail.normalized`: the domain lower-cased), or
/// the reason it is refused (the `reason` of pydantic's `value is not a valid email address:
/// {reason}`).
pub(crate) fn check(value: &str) -> Result<String, String> {
    if value.chars().count() > MAX_EMAIL_LENGTH {
        return Err(format!(
            "Length must not exceed {MAX_EMAIL_LENGTH} characters"
        ));
    }
    let value = unwrap_pretty(value).unwrap_or(value).trim();
    let (display, local, domain, quoted) = split(value)?;
    if local.is_empty() {
        return Err("There must be something before the @-sign.".into());
    }
    if !quoted {
        check_local(local)?;
    }
    if quoted {
        return Err("Quoting the part before the @-sign is not allowed here.".into());
    }
    if domain.is_empty() {
        return Err("There must be something after the @-sign.".into());
    }
    if domain.starts_with('[') && domain.ends_with(']') {
        return Err("A bracketed IP address after the @-sign is not allowed here.".into());
    }
    let domain = check_domain(domain)?;
    let normalized = format!("{local}@{domain}");
    let length = normalized.chars().count();
    if length > EMAIL_MAX {
        return Err(format!(
            "The email address is too long {}.",
            too_many(length - EMAIL_MAX)
        ));
    }
    if display {
        return Err(
            "A display name and angle brackets around the email address are not permitted here."
                .into(),
        );
    }
    Ok(normalized)
}

/// pydantic's pretty-email pattern (`Name <addr>` with spaces around): the address inside.
fn unwrap_pretty(value: &str) -> Option<&str> {
    let t = value.trim();
    let t = t.strip_suffix('>')?;
    let open = t.find('<')?;
    let name = t[..open].trim();
    let inner = &t[open + 1..];
    let unquoted = |n: &str| {
        n.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || !c.is_ascii()
                || c.is_ascii_whitespace()
                || "!#$%&'*+-/=?^_`{|}~".contains(c)
        })
    };
    let quoted = name.len() >= 2 && name.starts_with('"') && name.ends_with('"');
    (!inner.is_empty() && (name.is_empty() || quoted || unquoted(name))).then_some(inner)
}

/// `get_length_reason`'s text.
fn too_many(diff: usize) -> String {
    let s = if diff > 1 { "s" } else { "" };
    format!("({diff} character{s} too many)")
}

/// `split_email`: (whether a display name came first, local part, domain, quoted local part).
fn split(email: &str) -> Result<(bool, &str, &str, bool), String> {
    let no_at = || Err("An email address must have an @-sign.".to_string());
    let Some(at) = unquoted_special(email, &['<', '@']) else {
        return no_at();
    };
    let (left, right) = email.split_at(at);
    let (display, local, domain) = if right.starts_with('<') {
        if !right.contains('>') {
            return Err("An open angle bracket at the start of the email address has to be followed by a close angle bracket at the end.".into());
        }
        let right = right.trim_end_matches(' ');
        if !right.ends_with('>') {
            return Err("There can't be anything after the email address.".into());
        }
        let spec = right[1..].trim_end_matches('>');
        let Some(at) = unquoted_special(spec, &['@']) else {
            return no_at();
        };
        let (local, domain) = spec.split_at(at);
        (!left.trim().is_empty(), local, domain)
    } else {
        (false, left, right)
    };
    let domain = domain.strip_prefix('@').unwrap_or(domain);
    let quoted = local.starts_with('"');
    let local = if quoted {
        local.trim_matches('"')
    } else {
        local
    };
    Ok((display, local, domain, quoted))
}

/// The byte offset of the first of `specials` outside double quotes.
fn unquoted_special(text: &str, specials: &[char]) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && specials.contains(&c) {
            return Some(i);
        }
    }
    None
}

/// `safe_character_display` for the characters the rules can name.
fn display(c: char) -> String {
    match c {
        '\\' => "\"\\\"".to_string(),
        '\'' => "\"'\"".to_string(),
        ' ' => "SPACE".to_string(),
        c if c.is_ascii_graphic() || !c.is_ascii() => format!("'{c}'"),
        c => format!("U+{:04X}", u32::from(c)),
    }
}

fn bad(chars: impl Iterator<Item = char>) -> Option<String> {
    let mut shown: Vec<String> = chars.map(display).collect();
    shown.sort();
    shown.dedup();
    (!shown.is_empty()).then(|| shown.join(", "))
}

/// `ATEXT` (and, outside ASCII, `ATEXT_INTL`).
fn atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_!#$%&'*+-/=?^`{|}~".contains(c) || !c.is_ascii()
}

/// `validate_email_local_part` for an unquoted, non-empty local part.
fn check_local(local: &str) -> Result<(), String> {
    let dot_atom = !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext));
    if dot_atom {
        return Ok(());
    }
    if let Some(chars) = bad(local.chars().filter(|c| *c != '.' && !atext(*c))) {
        return Err(format!(
            "The email address contains invalid characters before the @-sign: {chars}."
        ));
    }
    check_dot_atom(
        local,
        "An email address cannot start with a {}.",
        "An email address cannot have a {} immediately before the @-sign.",
        false,
    )?;
    Err("The email address contains invalid characters before the @-sign.".into())
}

/// `check_dot_atom`.
fn check_dot_atom(label: &str, start: &str, end: &str, hostname: bool) -> Result<(), String> {
    let say = |form: &str, what: &str| Err(form.replace("{}", what));
    if label.ends_with('.') {
        return say(end, "period");
    }
    if label.starts_with('.') {
        return say(start, "period");
    }
    if label.contains("..") {
        return Err("An email address cannot have two periods in a row.".into());
    }
    if hostname {
        if label.ends_with('-') {
            return say(end, "hyphen");
        }
        if label.starts_with('-') {
            return say(start, "hyphen");
        }
        if label.contains(".-") || label.contains("-.") {
            return Err(
                "An email address cannot have a period and a hyphen next to each other.".into(),
            );
        }
    }
    Ok(())
}

/// `validate_email_domain_name` (ASCII rules; the domain lower-cased, as UTS-46 maps it).
fn check_domain(domain: &str) -> Result<String, String> {
    let hostname_char =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || !c.is_ascii();
    if let Some(chars) = bad(domain.chars().filter(|c| !hostname_char(*c))) {
        return Err(format!(
            "The part after the @-sign contains invalid characters: {chars}."
        ));
    }
    // UTS-46 lower-cases the domain; the emulator lower-cases its ASCII (the Unicode tables
    // would weigh on the npm package's emulator).
    let domain = domain.to_ascii_lowercase();
    check_dot_atom(
        &domain,
        "An email address cannot have a {} immediately after the @-sign.",
        "An email address cannot end with a {}.",
        true,
    )?;
    for label in domain.split('.') {
        let b = label.as_bytes();
        if b.len() >= 4 && &b[2..4] == b"--" && !label.starts_with("xn") {
            return Err("An email address cannot have two letters followed by two dashes immediately after the @-sign or after a period, except Punycode.".into());
        }
    }
    if domain.len() > DOMAIN_MAX {
        return Err(format!(
            "The email address is too long after the @-sign {}.",
            too_many(domain.len() - DOMAIN_MAX)
        ));
    }
    for label in domain.split('.') {
        if label.len() > LABEL_MAX {
            return Err(format!(
                "After the @-sign, periods cannot be separated by so many characters {}.",
                too_many(label.len() - LABEL_MAX)
            ));
        }
    }
    if !domain.contains('.') {
        return Err("The part after the @-sign is not valid. It should have a period.".into());
    }
    if !domain.ends_with(|c: char| c.is_ascii_alphabetic()) && domain.is_ascii() {
        return Err(
            "The part after the @-sign is not valid. It is not within a valid top-level domain."
                .into(),
        );
    }
    if SPECIAL_USE
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
    {
        return Err("The part after the @-sign is a special-use or reserved name that cannot be used with email.".into());
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::check;

    /// Each address and what email-validator 2.3.0 (`validate_email(…, check_deliverability=False)`,
    /// after pydantic's strip) answered: `Ok(normalized)` or `Err(message)`.
    #[test]
    fn matches_email_validator() {
        let ok = |a: &str, n: &str| assert_eq!(check(a), Ok(n.to_string()), "{a}");
        let err = |a: &str, m: &str| assert_eq!(check(a), Err(m.to_string()), "{a}");
        ok("jane@example.com", "jane@example.com");
        ok("JANE@EXAMPLE.COM", "JANE@example.com");
        ok("jane+tag@example.com", "jane+tag@example.com");
        ok("jane@example.c", "jane@example.c");
        ok(" jane@example.com ", "jane@example.com");
        ok("Jane Doe <jane@example.com>", "jane@example.com");
        err("jane", "An email address must have an @-sign.");
        err("@example.com", "There must be something before the @-sign.");
        err("jane@", "There must be something after the @-sign.");
        err(
            "jane@localhost",
            "The part after the @-sign is not valid. It should have a period.",
        );
        err(
            "a@b@c.com",
            "The part after the @-sign contains invalid characters: '@'.",
        );
        err(
            "jane doe@example.com",
            "The email address contains invalid characters before the @-sign: SPACE.",
        );
        err(
            "jane..doe@example.com",
            "An email address cannot have two periods in a row.",
        );
        err(
            ".jane@example.com",
            "An email address cannot start with a period.",
        );
        err(
            "jane.@example.com",
            "An email address cannot have a period immediately before the @-sign.",
        );
        err(
            "jane@example..com",
            "An email address cannot have two periods in a row.",
        );
        err(
            "jane@-example.com",
            "An email address cannot have a hyphen immediately after the @-sign.",
        );
        err(
            "jane@example-.com",
            "An email address cannot have a period and a hyphen next to each other.",
        );
        err(
            "jane@example.123",
            "The part after the @-sign is not valid. It is not within a valid top-level domain.",
        );
        err(
            "jane@1.2.3.4",
            "The part after the @-sign is not valid. It is not within a valid top-level domain.",
        );
        err(
            "jane@exa_mple.com",
            "The part after the @-sign contains invalid characters: '_'.",
        );
        for special in [
            "jane@example.test",
            "jane@example.local",
            "jane@site.invalid",
            "jane@example.onion",
            "jane@x.arpa",
        ] {
            err(
                special,
                "The part after the @-sign is a special-use or reserved name that cannot be used with email.",
            );
        }
        err(
            "jane@[127.0.0.1]",
            "A bracketed IP address after the @-sign is not allowed here.",
        );
        err(
            "\"jane\"@example.com",
            "Quoting the part before the @-sign is not allowed here.",
        );
        err(
            "jane(x)@example.com",
            "The email address contains invalid characters before the @-sign: '(', ')'.",
        );
        err(
            "jane,x@example.com",
            "The email address contains invalid characters before the @-sign: ','.",
        );
        err(
            &format!("jane@{}.com", "a".repeat(64)),
            "After the @-sign, periods cannot be separated by so many characters (1 character too many).",
        );
        err(
            "jane@example",
            "The part after the @-sign is not valid. It should have a period.",
        );
        err(
            "jane@.example.com",
            "An email address cannot have a period immediately after the @-sign.",
        );
        err(
            "jane@example.com.",
            "An email address cannot end with a period.",
        );
        err(
            "jane<x>@example.com",
            "There can't be anything after the email address.",
        );
        err(
            "jane@ex ample.com",
            "The part after the @-sign contains invalid characters: SPACE.",
        );
    }
}
