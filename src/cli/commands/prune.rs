use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::open_repo;
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, PruneArgs, PruneOptsArgs};
use crate::cli::output::{count, print_message};
use crate::cli::progress::{BarProgress, bytes};
use vault_ops::OpError;
use vault_ops::prune::plan::{UnusedLimit, parse_size};
use vault_ops::prune::{PruneOptions, PruneReport, complete_pending, prune};
use vault_repo::Repository;

/// How often `prune --wait` looks again at the writers it waits for.
const WAIT_POLL: Duration = Duration::from_secs(5);

pub(crate) fn options(a: &PruneOptsArgs, dry_run: bool) -> Result<PruneOptions> {
    options_with(a, dry_run, false)
}

fn options_with(a: &PruneOptsArgs, dry_run: bool, reencrypt: bool) -> Result<PruneOptions> {
    let max_unused: UnusedLimit =
        a.max_unused.parse().map_err(|e: String| OpError::Usage(format!("--max-unused: {e}")))?;
    let max_repack = a
        .max_repack
        .as_deref()
        .map(|s| parse_size(s).map_err(|e| OpError::Usage(format!("--max-repack: {e}"))))
        .transpose()?;
    Ok(PruneOptions { max_unused, max_repack, dry_run, reencrypt })
}

pub(crate) fn run(g: &GlobalArgs, a: &PruneArgs) -> Result<ExitCode> {
    let opts = options_with(&a.opts, a.dry_run, a.reencrypt)?;
    let repo = open_repo(g)?;
    if a.reencrypt {
        reencrypt_snapshots(g, &repo, a.dry_run)?;
    }
    if a.reencrypt && !a.dry_run && !g.json && !g.quiet {
        // The cost first: what the re-encryption will rewrite.
        let plan = prune(&repo, &PruneOptions { dry_run: true, ..opts.clone() }, &vault_ops::NoProgress)?;
        println!(
            "re-encryption: {} sealed with older keys (epoch < {}), {} of live data to rewrite{}",
            count(plan.packs.reencrypted, "pack", "packs"),
            repo.epoch(),
            bytes(plan.bytes.reencrypted),
            if plan.packs.old_epoch_left > 0 {
                format!("; {} more left for a later run (--max-repack)", plan.packs.old_epoch_left)
            } else {
                String::new()
            }
        );
    }
    let (code, mut report) = run_prune(g, &repo, &opts)?;
    while a.wait && !a.dry_run && !report.waiting.is_empty() {
        std::thread::sleep(WAIT_POLL);
        // Only the deletion step is left.
        let (done, waiting) = complete_pending(&repo, &vault_ops::NoProgress)?;
        report.completed.extend(done);
        report.waiting = waiting;
        if !g.quiet && !g.json {
            print_waiting(&report);
        }
    }
    if g.json {
        print_message("summary", &report)?;
    }
    Ok(code)
}

/// Seals again with the current key every snapshot an older key epoch sealed (each gets a
/// new id; the old ones are removed with a tombstone), before the prune rewrites the packs.
fn reencrypt_snapshots(g: &GlobalArgs, repo: &Arc<Repository>, dry_run: bool) -> Result<()> {
    if repo.epoch() == 1 {
        // Never rotated: nothing is sealed with an older key.
        return Ok(());
    }
    let (snaps, bad) = vault_ops::select::list(repo, &vault_ops::select::SnapshotFilter::default())?;
    if !bad.is_empty() {
        return Err(OpError::PruneRefused(format!(
            "{}; re-encryption needs every snapshot readable (forget or repair it first)",
            bad[0]
        ))
        .into());
    }
    // A dry run writes nothing, not even an announcement.
    let announced = if dry_run { None } else { Some(vault_repo::announce(repo, "prune")?) };
    let handle = vault_repo::IndexedRepository::load(repo.clone())?;
    let r = vault_ops::rewrite::reencrypt_snapshots(&handle, &snaps, dry_run)?;
    if let Some(a) = announced {
        a.end()?;
    }
    if !g.json && !g.quiet && !r.replaced.is_empty() {
        let verb = if dry_run { "would seal" } else { "sealed" };
        println!(
            "{verb} {} again with the current key (new ids: `vault snapshots` lists them)",
            count(r.replaced.len(), "snapshot", "snapshots")
        );
    }
    Ok(())
}

/// Runs prune with a progress bar and prints its summary (unless `--json`, whose caller
/// prints the report).
pub(crate) fn run_prune(
    g: &GlobalArgs,
    repo: &Arc<Repository>,
    opts: &PruneOptions,
) -> Result<(ExitCode, PruneReport)> {
    let progress = BarProgress::new(!g.quiet && !g.json, "repacked").with_json_status(g.json && !g.quiet);
    let result = prune(repo, opts, &progress);
    progress.finish();
    let report = result?;
    if !g.quiet && !g.json {
        print_summary(&report);
    }
    Ok((ExitCode::Ok, report))
}

fn print_summary(r: &PruneReport) {
    let b = &r.bytes;
    let p = &r.packs;
    println!("{}, {} read", count(r.snapshots, "snapshot", "snapshots"), count(r.trees_read, "tree", "trees"));
    println!("packs: {} stored in all ({})", p.kept + p.repacked + p.unused + p.unindexed, bytes(b.total));
    println!("  used data:    {}", bytes(b.used));
    println!("  unused data:  {} before, {} left in kept packs", bytes(b.unused_before), bytes(b.unused_after));
    println!(
        "  keep {} packs, repack {} ({} of live data), delete {} unused and {} unindexed",
        p.kept,
        p.repacked,
        bytes(b.repacked),
        p.unused,
        p.unindexed
    );
    if p.missing > 0 {
        println!("  {} packs the index lists are missing from storage; the new index leaves them out", p.missing);
    }
    if p.rescued > 0 {
        println!("  {} condemned packs are referenced by newer snapshots: indexed again", p.rescued);
    }
    if r.forgotten_files_removed > 0 {
        println!("removed {} of earlier forgets", count(r.forgotten_files_removed, "snapshot file", "snapshot files"));
    }
    if p.reencrypted > 0 || p.old_epoch_left > 0 {
        println!(
            "  re-encrypt {} sealed with older keys ({}); {} left",
            count(p.reencrypted, "pack", "packs"),
            bytes(b.reencrypted),
            p.old_epoch_left
        );
    }
    if r.dry_run {
        println!(
            "dry run: would condemn {} ({} to rewrite); nothing was changed",
            bytes(b.condemned),
            bytes(b.repacked)
        );
        for w in &r.waiting {
            println!("pending condemnation {} waits for: {}", w.condemnation.short(), w.writers.join("; "));
        }
        return;
    }
    if p.written > 0 {
        println!("wrote {} ({})", count(p.written, "new pack", "new packs"), bytes(b.written));
    }
    let deleted: u64 = r.completed.iter().map(|c| c.bytes_deleted).sum();
    let packs: u64 = r.completed.iter().map(|c| c.packs_deleted).sum();
    let files: u64 = r.completed.iter().map(|c| c.index_files_deleted).sum();
    if !r.completed.is_empty() {
        println!("deleted {packs} packs ({}) and {files} index files", bytes(deleted));
    }
    print_waiting(r);
}

fn print_waiting(r: &PruneReport) {
    for w in &r.waiting {
        println!(
            "deletion of condemnation {} waits for writers that started before it: {}",
            w.condemnation.short(),
            w.writers.join("; ")
        );
        println!("  (the next prune deletes it once they are done; `vault writers` lists them)");
    }
}
