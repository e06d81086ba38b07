//! Issue #80's "`git grep` finds no user message composed outside the core", for this command
//! line: its sources are read and every string literal checked, so that a sentence or a next
//! step written here again (as `from_here`, the sign-in's and `free`'s steps and the refused
//! inputs' words were before they moved into the core's `portal::Steps`) fails here. The
//! command line prints the core's words; it may name its own commands and flags (handed to the
//! core) and say data (counts, ids, dates), a detail for logs, and its own `--help`.

/// Words that open an instruction to the person: a literal that starts with one is a next
/// step composed here.
const OPENERS: [&str; 17] = [
    "sign in",
    "ask for",
    "wait ",
    "try again",
    "copy ",
    "list ",
    "free ",
    "activate ",
    "type ",
    "check ",
    "renew ",
    "connect ",
    "enter ",
    "choose ",
    "run ",
    "pass ",
    "remember ",
];

/// The labels of a text line that says what to do: its words must be an argument (the core's).
const STEP_LABELS: [&str; 2] = ["what to do: ", "from here: "];

/// The string literals of `src` outside comments and its tests, each with its line: escapes
/// kept as written, a `\` line continuation joined as Rust joins it.
fn literals(src: &str) -> Vec<(usize, String)> {
    let src = src.split("#[cfg(test)]").next().unwrap_or_default();
    let b = src.as_bytes();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            // A char literal ('"' among them); a lifetime has no closing quote two on.
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
            }
            // A raw string (`r#"…"#`): its text up to the closing quote and hashes.
            b'r' if (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
                && matches!(b.get(i + 1), Some(b'#' | b'"')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) == Some(&b'"') {
                    let open = i + 2 + hashes;
                    let close = format!("\"{}", "#".repeat(hashes));
                    let end = src[open..].find(&close).map_or(b.len(), |e| open + e);
                    let text = &src[open..end];
                    out.push((line, text.to_string()));
                    line += text.matches('\n').count();
                    i = end + close.len();
                    continue;
                }
            }
            b'"' => {
                let (start, mut text) = (line, Vec::new());
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    match b[i] {
                        b'\\' if b.get(i + 1) == Some(&b'\n') => {
                            i += 1;
                            while i < b.len() && b[i].is_ascii_whitespace() {
                                line += usize::from(b[i] == b'\n');
                                i += 1;
                            }
                            continue;
                        }
                        b'\\' => {
                            text.extend_from_slice(&b[i..(i + 2).min(b.len())]);
                            i += 2;
                            continue;
                        }
                        b'\n' => line += 1,
                        _ => {}
                    }
                    text.push(b[i]);
                    i += 1;
                }
                out.push((start, String::from_utf8_lossy(&text).into_owned()));
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// What is wrong with the literal `s` of `file`, if it is a user message composed here.
fn composed(file: &str, s: &str) -> Option<&'static str> {
    for label in STEP_LABELS {
        if let Some(at) = s.find(label) {
            if !s[at + label.len()..].starts_with('{') {
                return Some("a step line whose words are not an argument (the core's)");
            }
        }
    }
    let t = s.trim_start();
    let lower = t.to_ascii_lowercase();
    // The demo narrates its own steps by their commands (`Activate this key on machine A`):
    // the walkthrough's titles, not a message about a license.
    if file != "demo.rs" && t.trim().contains(' ') && OPENERS.iter().any(|o| lower.starts_with(o)) {
        return Some("an instruction to the person (a next step: the core's)");
    }
    // The core's shape, a sentence with a capital and a period; `--help` is the command
    // line's own (args.rs).
    let sentence = t.starts_with(|c: char| c.is_ascii_uppercase())
        && t.chars().nth(1).is_some_and(|c| c.is_ascii_lowercase())
        && t.matches(' ').count() >= 3
        && t.trim_end().ends_with('.');
    if file != "args.rs" && sentence {
        return Some("a sentence for the person (the core's)");
    }
    None
}

/// Every literal of `dir`'s `.rs` files that [`composed`] refuses, as `file:line: why: text`.
fn composed_in(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "words_check.rs" {
            continue;
        }
        let src = std::fs::read_to_string(&path)?;
        for (line, s) in literals(&src) {
            if let Some(why) = composed(&name, &s) {
                found.push(format!("{name}:{line}: {why}: {s:?}"));
            }
        }
    }
    Ok(found)
}

/// No sentence, next step or step line of this command line's is its own: each is the core's
/// (`Reason`, `Error`, `PortalError::message_with`, `portal::Steps`, `Trial::message`, …).
#[test]
fn the_command_line_composes_no_user_message() -> std::io::Result<()> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = composed_in(&src)?;
    assert!(
        found.is_empty(),
        "user messages composed in the command line (say them in the core):\n{}",
        found.join("\n")
    );
    Ok(())
}

/// The check itself: each kind of message this command line used to compose is caught.
#[test]
fn each_kind_of_composed_message_is_caught() {
    let src = r##"
        // "Ask for a new code." in a comment is no message.
        let a = format!("ask for a new code ({sign_in}), then type it");
        let b = "  what to do: polar-license devices";
        let c = ("That is not an email address.", x);
        let d = format!("  what to do: {}", said.next_step());
        let e = "sign in again: \
                 {sign_in}";
        let f = '"';
        let g = "done: 3 keys";
        let h = r#"{"a":"b"}"#;
        let i = r"Wait a moment, then try again.";
    "##;
    let got: Vec<(usize, Option<&str>)> = literals(src)
        .iter()
        .map(|(line, s)| (*line, composed("devices.rs", s)))
        .collect();
    let caught: Vec<usize> = got
        .iter()
        .filter(|(_, why)| why.is_some())
        .map(|(l, _)| *l)
        .collect();
    assert_eq!(caught, [3, 4, 5, 7, 12], "{got:?}");
    // `--help` may speak in sentences; the demo names its own steps.
    assert_eq!(
        composed("args.rs", "The key to check, or the remembered one."),
        None
    );
    assert_eq!(composed("demo.rs", "Activate this key on machine A"), None);
}
