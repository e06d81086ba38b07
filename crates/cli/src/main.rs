//! `polar-license`: validate, activate and deactivate Polar license keys from the command
//! line, check them with the offline grace cache, or run the local Polar emulator
//! (docs/interfaces.md §2).

#![deny(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod args;
mod buy;
mod demo;
mod devices;
mod doctor;
mod output;
mod relay;
mod run;
mod seat;
mod seat_child;
mod serve;
mod usage;

use args::{Cli, Command};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // `seat run`'s launcher and watchdog (seat_child.rs): this binary started by `seat run`
    // itself, before anything else is read.
    if let Some(code) = seat_child::internal(&std::env::args_os().collect::<Vec<_>>()) {
        return ExitCode::from(code);
    }
    // `--json` must hold even when the command line itself is wrong, so look for it first.
    let wants_json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    // A `check` (the command run at every launch) is read without building the whole
    // parser; anything else, help and errors included, by the whole parser.
    let cli = match args::check_line(std::env::args_os()) {
        Some(cli) => cli,
        None => match Cli::try_parse() {
            Ok(cli) => cli,
            Err(e) => return ExitCode::from(usage_error(&e, wants_json)),
        },
    };
    let g = &cli.global;
    let code = match &cli.command {
        Command::Validate(a) => run::validate(g, a).print(g.json),
        Command::Activate(a) => run::activate(g, a).print(g.json),
        Command::Check(a) => run::check(g, a).print(g.json),
        Command::Entitlement(a) => run::entitlement(g, a).print(g.json),
        Command::Deactivate(a) => run::deactivate(g, a).print(g.json),
        Command::Status(a) => run::status(g, a).print(g.json),
        Command::Remember(a) => run::remember(g, a).print(g.json),
        Command::ForgetKey => run::forget_key(g).print(g.json),
        Command::SignIn(a) => devices::sign_in(g, a).print(g.json),
        Command::Devices(a) => devices::devices(g, a).print(g.json),
        Command::Free(a) => devices::free(g, a).print(g.json),
        Command::Recover(a) => devices::recover(g, a).print(g.json),
        Command::Buy(a) => buy::buy(g, a).print(g.json),
        Command::FollowRotation(a) => devices::follow_rotation(g, a).print(g.json),
        Command::Emulator(a) => serve::run(g, a),
        Command::Demo => demo::run(g),
        Command::Lease(c) => run::lease(g, c).print(g.json),
        Command::Relay(c) => relay::run(g, c),
        Command::Seat(c) => seat::run(g, c),
        Command::Usage(a) => usage::usage(g, a).print(g.json),
        Command::Doctor(a) => doctor::doctor(g, a).print(g.json),
    };
    ExitCode::from(code)
}

/// Prints a clap error: help and version as usual (exit 0); anything else is a usage error,
/// exit 2, as one JSON object when `--json` was given.
fn usage_error(e: &clap::Error, wants_json: bool) -> u8 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            output::print_out(&e.render().to_string());
            return 0;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand if !wants_json => {
            output::print_err(&e.render().to_string());
            return 2;
        }
        _ => {}
    }
    if !wants_json {
        output::print_err(&e.render().to_string());
        return 2;
    }
    // clap's first paragraph, on one line: "the following required arguments were not
    // provided: --label <LABEL>".
    let rendered = e.render().to_string();
    let message = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.trim_start_matches("error: ");
    let message = if message.is_empty() {
        "invalid command line"
    } else {
        message
    };
    let field = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => field_name(s),
        Some(ContextValue::Strings(v)) => v.first().and_then(|s| field_name(s)),
        _ => None,
    };
    let command = std::env::args().skip(1).find(|a| {
        [
            "activate",
            "validate",
            "check",
            "entitlement",
            "deactivate",
            "status",
            "emulator",
            "demo",
            "relay",
            "seat",
            "sign-in",
            "devices",
            "free",
            "doctor",
        ]
        .contains(&a.as_str())
    });
    output::usage_report(command.as_deref(), field.as_deref(), message).print(true)
}

/// `--label <LABEL>` → `label`; `--increment-usage <N>` → `increment_usage`; a stray value
/// such as `-5` (read as a flag) names no field.
fn field_name(arg: &str) -> Option<String> {
    let name = arg
        .split_whitespace()
        .next()
        .unwrap_or(arg)
        .trim_start_matches('-')
        .replace('-', "_");
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        .then_some(name)
}

#[cfg(test)]
mod words_check;
