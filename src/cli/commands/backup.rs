use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use super::{hostname, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{BackupArgs, GlobalArgs};
use crate::cli::output::print_json;
use crate::cli::progress::{BarProgress, bytes};
use vault_ops::backup::{BackupOptions, BackupReport, LeaveOut, ParentChoice, backup};
use vault_ops::pattern::read_pattern_file;
use vault_ops::select::{self, SnapshotFilter};

pub(crate) fn run(g: &GlobalArgs, a: &BackupArgs) -> Result<ExitCode> {
    let mut excludes = a.excludes.clone();
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read exclude file {}", f.display()))?;
        excludes.extend(read_pattern_file(&text));
    }
    let repo = open_repo(g)?;
    let parent = if a.force {
        ParentChoice::None
    } else if let Some(p) = &a.parent {
        ParentChoice::Snapshot(select::find(&repo, p, &SnapshotFilter::default())?.0)
    } else {
        ParentChoice::Auto
    };
    let progress = BarProgress::new(!g.quiet && !g.json, "processed");
    let opts = BackupOptions {
        sources: a.paths.clone(),
        host: a.host.clone().unwrap_or_else(hostname),
        tags: a.tags.clone(),
        excludes,
        one_file_system: a.one_file_system,
        parent,
        scan_totals: progress.is_visible(),
        compression: a.compression.map(|c| c.compression()),
        leave_out: own_directories(g)?,
    };
    // Announced before the index is loaded, so that a prune's deletion waits for this
    // backup if it may have deduplicated against what the prune condemns.
    let announced = vault_repo::announce(&repo, "backup")?;
    let repo_for_state = std::sync::Arc::clone(&repo);
    let result = vault_repo::IndexedRepository::load_present(repo).map_err(Into::into).and_then(|(r, missing)| {
        if !missing.is_empty() {
            progress.suspend(|| {
                eprintln!(
                    "warning: {} packs the index lists are missing from storage; their data is stored again if still present in the source",
                    missing.len()
                )
            });
        }
        backup(&r, &opts, &progress)
    });
    progress.finish();
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
    if let Some(state) = super::local_state() {
        let _ = vault_ops::rollback::remember_snapshot(&repo_for_state, &state, report.snapshot_id);
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
    } else if !g.quiet {
        print_summary(&report);
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

fn print_summary(r: &BackupReport) {
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
    println!("snapshot {} saved", r.snapshot_id.short());
}
