//! The `vault` binary: layer 4 (command line and FUSE adapter) over the library crates.
#![warn(unreachable_pub)]

mod cli;

use crate::cli::ExitCode;
use crate::cli::args::Command;
use crate::cli::commands;
use crate::cli::exit::classify;

/// `vault … | head` closes stdout early; printing then fails with EPIPE, which `println!`
/// turns into a panic. That is the reader's choice, not an error: end quietly, as Unix
/// tools do. Every other panic keeps the default report.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Prints an error as one line (`exit_error` JSON on stderr with `--json`).
fn report_error(json: bool, code: ExitCode, message: &str) {
    if json {
        // Scripts that asked for JSON get the error as JSON too (restic's exit_error).
        let error = serde_json::json!({ "message_type": "exit_error", "code": code.code(), "message": message });
        eprintln!("{error}");
    } else {
        eprintln!("vault: error: {message}");
    }
}

/// Reports an error that stops vault before the command runs, and exits.
fn fail(json: bool, code: ExitCode, message: &str) -> ! {
    report_error(json, code, &cli::output::printable(message));
    std::process::exit(code.code());
}

fn main() {
    // The master key lives in this process's memory: no core dump may carry it to disk,
    // and no other process of this user may attach to read it.
    let _ = nix::sys::prctl::set_dumpable(false);
    quiet_broken_pipe();
    // A panic inside the storage library is caught where the request was made and
    // reported as a storage error (see vault_repo::backend); its default message on
    // stderr would only repeat it in another form.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.location().is_some_and(|l| l.file().contains("/opendal")) {
            default_hook(info);
        }
    }));
    let parsed = cli::args::parse_with_all_options(std::env::args_os());
    let (mut cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { ExitCode::Usage.code() } else { 0 };
            let flag = match (e.kind(), e.get(clap::error::ContextKind::InvalidArg)) {
                (clap::error::ErrorKind::UnknownArgument, Some(clap::error::ContextValue::String(f))) => {
                    Some(f.clone())
                }
                _ => None,
            };
            match flag.as_deref().and_then(|f| Some((f, cli::restic_flags::instead_of(f)?))) {
                Some((f, instead)) => eprintln!("vault: error: {f} is not available in vault: {instead}"),
                None => {
                    let _ = e.print();
                }
            }
            std::process::exit(code);
        }
    };
    let command_name = matches.subcommand_name().unwrap_or_default().to_string();
    cli::commands::set_command(&command_name);
    let profile = match cli.global.profile.clone() {
        // `schedule` names its profile itself; the others take --profile's settings.
        Some(name) if !matches!(cli.command, Command::Schedule(_)) => match cli::profile::load(&name) {
            Ok(loaded) => {
                loaded.profile.apply(&mut cli);
                Some(loaded)
            }
            Err(e) => fail(cli.global.json, ExitCode::Usage, &format!("{e:#}")),
        },
        _ => None,
    };
    let hooks = profile.as_ref().filter(|_| {
        !matches!(cli.command, Command::Config(_) | Command::Generate(_) | Command::Version | Command::Schedule(_))
    });
    let g = &cli.global;
    if let Some(p) = hooks
        && let Err(e) = p.run_before(&command_name)
    {
        p.run_after(&command_name, ExitCode::Error.code(), Some(&format!("{e:#}")));
        fail(g.json, ExitCode::Error, &format!("{e:#}"));
    }
    let result = match &cli.command {
        Command::Init(a) => commands::init::run(g, a),
        Command::Backup(a) => commands::backup::run(g, a),
        Command::Snapshots(a) => commands::snapshots::run(g, a),
        Command::Ls(a) => commands::ls::run(g, a),
        Command::Restore(a) => commands::restore::run(g, a),
        Command::Copy(a) => commands::copy::run(g, a),
        Command::Generate(a) => commands::generate::run(g, a),
        Command::Config(_) => commands::config::show(g, profile.as_ref()),
        Command::Schedule(a) => commands::schedule::run(g, a),
        Command::Version => commands::generate::version(g),
        Command::Cat(a) => commands::cat::run(g, a),
        Command::Check(a) => commands::check::run(g, a),
        Command::Repair(a) => commands::repair::run(g, a),
        Command::Mount(a) => commands::mount::run(g, a),
        Command::Diff(a) => commands::diff::run(g, a),
        Command::Find(a) => commands::find::run(g, a),
        Command::Dump(a) => commands::dump::run(g, a),
        Command::Stats(a) => commands::stats::run(g, a),
        Command::Forget(a) => commands::forget::run(g, a),
        Command::Prune(a) => commands::prune::run(g, a),
        Command::Writers(a) => commands::writers::run(g, a),
        Command::Key(a) => commands::key::run(g, a),
        Command::Tag(a) => commands::rewrite::run_tag(g, a),
        Command::Rewrite(a) => commands::rewrite::run_rewrite(g, a),
        Command::BenchPrimitives => commands::bench::run(g),
        Command::BenchIndex(a) => commands::bench_index::run(g, a),
    };
    let (code, error) = match result {
        // Data the repository lost outranks success and unreadable source files.
        Ok(ExitCode::Ok | ExitCode::PartialBackup) if cli::exit::tampering_seen() => (ExitCode::Tampering, None),
        Ok(code) => (code, None),
        Err(e) => {
            // One line: the error and its causes, joined.
            // Errors name paths and labels that others chose: shown, never obeyed.
            let message = cli::output::printable(&format!("{e:#}")).into_owned();
            let code = classify(&e);
            report_error(g.json, code, &message);
            (code, Some(message))
        }
    };
    if let Some(p) = hooks {
        p.run_after(&command_name, code.code(), error.as_deref());
    }
    if std::env::var_os("VAULT_DEBUG_FAULTS").is_some() {
        eprintln!("debug: {} storage faults injected", vault_repo::faults::injected_total());
    }
    std::process::exit(code.code());
}
