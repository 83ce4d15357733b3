use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use super::{hostname, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{BackupArgs, GlobalArgs, MissingSourceArg};
use crate::cli::output::print_json;
use crate::cli::progress::{BarProgress, bytes};
use vault_ops::backup::{BackupOptions, BackupReport, LeaveOut, MissingSource, ParentChoice, backup, backup_stream};
use vault_ops::pattern::read_pattern_file;
use vault_ops::select::{self, SnapshotFilter};

pub(crate) fn run(g: &GlobalArgs, a: &BackupArgs) -> Result<ExitCode> {
    let mut excludes = a.excludes.clone();
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read exclude file {}", f.display()))?;
        excludes.extend(read_pattern_file(&text));
    }
    // `-` and `/dev/stdin` as the one source mean standard input (`/dev/stdin` would
    // otherwise be stored as the symlink it is, not as what it reads).
    let stdin_alias =
        !a.stdin_from_command && a.paths.iter().any(|p| p.as_os_str() == "-" || p.as_os_str() == "/dev/stdin");
    if stdin_alias && (a.paths.len() > 1 || !a.files_from.is_empty() || !a.files_from_raw.is_empty()) {
        return Err(usage("`-` (standard input) is backed up on its own; give no other paths"));
    }
    let stdin = a.stdin || stdin_alias;
    let stream = stdin || a.stdin_from_command;
    if a.stdin && !a.paths.is_empty() {
        return Err(usage("--stdin backs up standard input; give no paths (name the file with --stdin-filename)"));
    }
    if a.stdin_from_command && a.paths.is_empty() {
        return Err(usage("--stdin-from-command needs the command to run, after `--`"));
    }
    let mut sources = if stream { Vec::new() } else { a.paths.clone() };
    for f in &a.files_from {
        sources.extend(paths_from(f, b'\n')?);
    }
    for f in &a.files_from_raw {
        sources.extend(paths_from(f, 0)?);
    }
    if !stream && sources.is_empty() {
        return Err(usage(if a.files_from.is_empty() && a.files_from_raw.is_empty() {
            "no paths to back up: give PATH..., --files-from, --stdin or a profile with [backup] sources"
        } else {
            "no paths to back up (the --files-from lists are empty)"
        }));
    }
    let exclude_larger_than = match &a.exclude_larger_than {
        Some(s) => Some(super::check::parse_size(s).map_err(|e| usage(&format!("--exclude-larger-than: {e}")))?),
        None => None,
    };
    let repo = open_repo(g)?;
    let parent = if a.force {
        ParentChoice::None
    } else if let Some(p) = &a.parent {
        ParentChoice::Snapshot(select::find(&repo, p, &SnapshotFilter::default())?.0)
    } else {
        ParentChoice::Auto
    };
    let stop = stop_on_signals()?;
    let progress = BarProgress::new(!g.quiet && !g.json, "processed").with_json_status(g.json && !g.quiet);
    let progress = if a.verbose { progress.with_listing(g.json) } else { progress };
    let opts = BackupOptions {
        sources,
        host: a.host.clone().unwrap_or_else(hostname),
        tags: split_tags(&a.tags),
        excludes,
        iexcludes: a.iexcludes.clone(),
        exclude_if_present: a.exclude_if_present.clone(),
        exclude_caches: a.exclude_caches,
        exclude_larger_than,
        missing_source: match a.missing_source {
            MissingSourceArg::Warn => MissingSource::Warn,
            MissingSourceArg::Fail => MissingSource::Fail,
        },
        skip_if_unchanged: a.skip_if_unchanged,
        dry_run: a.dry_run,
        stop: Some(stop),
        one_file_system: a.one_file_system,
        parent,
        scan_totals: progress.is_visible(),
        compression: a.compression.map(|c| c.compression()),
        leave_out: own_directories(g)?,
        threads: a.read_concurrency.map(usize::from),
    };
    // Announced before the index is loaded, so that a prune's deletion waits for this
    // backup if it may have deduplicated against what the prune condemns.
    let announced = vault_repo::announce(&repo, "backup")?;
    let repo_for_state = std::sync::Arc::clone(&repo);
    let mut command = if a.stdin_from_command { Some(CommandOutput::spawn(&a.paths)?) } else { None };
    let result = vault_repo::IndexedRepository::load_present(repo).map_err(Into::into).and_then(|(r, missing)| {
        if !missing.is_empty() {
            progress.suspend(|| {
                eprintln!(
                    "warning: {} packs the index lists are missing from storage; their data is stored again if still present in the source",
                    missing.len()
                )
            });
        }
        if stdin {
            backup_stream(&r, &opts, &a.stdin_filename, &mut std::io::stdin().lock(), &progress)
        } else if let Some(command) = command.as_mut() {
            backup_stream(&r, &opts, &a.stdin_filename, command, &progress)
        } else {
            backup(&r, &opts, &progress)
        }
    });
    progress.finish();
    if let Err(vault_ops::OpError::Interrupted) = result {
        if let Err(e) = announced.end() {
            eprintln!("warning: could not remove this backup's announcement ({e})");
        }
        eprintln!(
            "interrupted: no snapshot was stored; the data stored so far is kept and indexed, so the next backup does not upload it again"
        );
        return Ok(ExitCode::Interrupted);
    }
    let report = result?;
    // The snapshot is stored: a storage that refuses deletions (append-only credentials)
    // leaves the announcement behind, which a prune on this host removes later.
    let writer = announced.id();
    if let Err(e) = announced.end() {
        eprintln!(
            "warning: could not remove this backup's announcement writers/{} ({e}); a prune on this host removes it, elsewhere `vault writers remove`",
            writer.short()
        );
    }
    // So that the storage hiding this snapshot later is noticed by the next command.
    if let Some(state) = super::local_state()
        && let Some(id) = report.snapshot_id
    {
        let _ = vault_ops::rollback::remember_snapshot(&repo_for_state, &state, id);
    }
    if !g.quiet {
        for l in &report.left_out {
            eprintln!("note: left out {}: {}", l.path.display(), l.reason);
        }
    }
    for p in &report.index_problems {
        eprintln!("warning: skipped a damaged index file: {p}");
    }
    if g.json {
        print_json(&summary_json(&report))?;
    } else {
        crate::cli::output::keep_result(&summary_json(&report));
        if !g.quiet {
            print_summary(&report, a.dry_run);
        }
    }
    if report.problems.is_empty() {
        Ok(ExitCode::Ok)
    } else {
        let stored = report.problems.iter().filter(|p| p.stored).count();
        let left_out = report.problems.len() - stored;
        if left_out > 0 {
            eprintln!("warning: {left_out} source entries could not be read; the snapshot lacks them");
        }
        if stored > 0 {
            eprintln!("warning: {stored} files changed while they were read; the snapshot holds them as read");
        }
        Ok(ExitCode::PartialBackup)
    }
}

/// SIGINT and SIGTERM ask the backup to stop cleanly; a second one ends vault at once.
fn stop_on_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, ExitCode::Interrupted.code(), stop.clone())
            .context("cannot handle signals")?;
        signal_hook::flag::register(sig, stop.clone()).context("cannot handle signals")?;
    }
    Ok(stop)
}

fn usage(message: &str) -> anyhow::Error {
    vault_ops::OpError::Usage(message.to_string()).into()
}

/// `--tag a,b --tag c`: three tags.
fn split_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> =
        tags.iter().flat_map(|t| t.split(',')).map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
    out.sort();
    out.dedup();
    out
}

/// The paths listed in `file` (`-`: standard input), separated by `sep`. Newline lists
/// skip empty lines and `#` comments; NUL lists are taken as they are.
fn paths_from(file: &Path, sep: u8) -> Result<Vec<PathBuf>> {
    let bytes = if file == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin().lock().read_to_end(&mut b).context("cannot read the path list from standard input")?;
        b
    } else {
        std::fs::read(file).map_err(|e| usage(&format!("cannot read the path list {}: {e}", file.display())))?
    };
    Ok(bytes
        .split(|b| *b == sep)
        .map(|l| if sep == b'\n' { l.strip_suffix(b"\r").unwrap_or(l) } else { l })
        .filter(|l| !(l.is_empty() || sep == b'\n' && l.starts_with(b"#")))
        .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l)))
        .collect())
}

/// The standard output of a command, read to its end; a command that exits unsuccessfully
/// (or cannot be waited for) ends the stream with an error, so the backup stores nothing.
struct CommandOutput {
    child: std::process::Child,
    out: std::process::ChildStdout,
    name: String,
}

impl CommandOutput {
    fn spawn(argv: &[PathBuf]) -> Result<CommandOutput> {
        let name = argv[0].to_string_lossy().into_owned();
        let mut child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| usage(&format!("cannot run {name}: {e}")))?;
        let out = child.stdout.take().context("the command's output is not connected")?;
        Ok(CommandOutput { child, out, name })
    }
}

impl std::io::Read for CommandOutput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.out.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let status = self.child.wait()?;
            if !status.success() {
                return Err(std::io::Error::other(format!("the command {} failed ({status})", self.name)));
            }
        }
        Ok(n)
    }
}

impl Drop for CommandOutput {
    fn drop(&mut self) {
        // A backup that failed before the end: the command is not left running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn summary_json(r: &BackupReport) -> serde_json::Value {
    let s = r.snapshot.summary.clone().unwrap_or_default();
    json!({
        "message_type": "summary",
        "snapshot_id": r.snapshot_id,
        "parent": r.parent,
        "files_new": s.files_new,
        "files_changed": s.files_changed,
        "files_unchanged": s.files_unchanged,
        "dirs": s.dirs,
        "other": s.other,
        "total_bytes": s.total_bytes,
        "bytes_read": s.bytes_read,
        "blobs_added": s.blobs_added,
        "bytes_added": s.bytes_added,
        "stored_bytes_added": r.writer.stored_bytes_added,
        "packs_written": r.writer.packs_written,
        "index_files_written": r.writer.index_files_written,
        "blobs_stored_again": r.recopied,
        "duration_seconds": r.duration.as_secs_f64(),
        "requests": r.requests,
        "errors": r.problems,
        "left_out": r.left_out,
    })
}

/// The repository (when it is on a local disk) and vault's cache: never stored, even when
/// a source holds them (`vault backup ~` with the cache in `~/.cache/vault`).
fn own_directories(g: &GlobalArgs) -> Result<Vec<LeaveOut>> {
    let mut out = Vec::new();
    if let vault_repo::Location::Local(path) = super::location(g)? {
        out.push(LeaveOut { path, reason: "it is the repository this backup writes to".into() });
    }
    if let Some(base) = g.cache_dir.clone().or_else(vault_repo::cache::default_base) {
        out.push(LeaveOut { path: base, reason: "it is vault's cache".into() });
    }
    Ok(out)
}

fn rate(b: u64, d: Duration) -> String {
    let secs = d.as_secs_f64().max(1e-3);
    format!("{}/s", bytes((b as f64 / secs) as u64))
}

fn print_summary(r: &BackupReport, dry_run: bool) {
    let s = r.snapshot.summary.clone().unwrap_or_default();
    if let Some(p) = &r.parent {
        println!("using parent snapshot {}", p.short());
    }
    println!("Files:       {} new, {} changed, {} unchanged", s.files_new, s.files_changed, s.files_unchanged);
    println!("Dirs:        {}", s.dirs);
    println!("Read:        {} of {} ({})", bytes(s.bytes_read), bytes(s.total_bytes), rate(s.bytes_read, r.duration));
    println!("Added:       {} ({} stored after compression)", bytes(s.bytes_added), bytes(r.writer.stored_bytes_added));
    if r.recopied > 0 {
        println!("Stored again: {} blobs whose packs a prune condemned during the backup", r.recopied);
    }
    println!("Duration:    {:.2}s", r.duration.as_secs_f64());
    match &r.snapshot_id {
        Some(id) => println!("snapshot {} saved", id.short()),
        None if dry_run => println!("dry run: nothing was stored"),
        None => println!(
            "nothing changed since snapshot {}: no snapshot saved",
            r.parent.map(|p| p.short()).unwrap_or_default()
        ),
    }
}
