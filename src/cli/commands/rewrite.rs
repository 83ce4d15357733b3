use std::sync::Arc;

use anyhow::Result;

use super::{filter, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{FilterArgs, GlobalArgs, RewriteArgs, TagArgs};
use crate::cli::output::{count, print_message};
use vault_format::SnapshotId;
use vault_format::snapshot::Snapshot;
use vault_ops::OpError;
use vault_ops::rewrite::{RewriteOptions, RewriteReport, TagChange, rewrite, tag};
use vault_ops::select::{self, SnapshotFilter};
use vault_repo::{IndexedRepository, Repository};

/// The snapshots named, or every listed one the filters match.
fn chosen(repo: &Repository, names: &[String], f: &FilterArgs) -> Result<Vec<(SnapshotId, Snapshot)>> {
    if names.is_empty() {
        let (snaps, bad) = select::list(repo, &filter(f))?;
        for b in &bad {
            eprintln!("warning: skipped a damaged snapshot: {b}");
        }
        return Ok(snaps);
    }
    let mut out: Vec<(SnapshotId, Snapshot)> = Vec::new();
    for n in names {
        let s = select::find(repo, n, &SnapshotFilter::default())?;
        if !out.iter().any(|(id, _)| *id == s.0) {
            out.push(s);
        }
    }
    Ok(out)
}

fn split(v: &[String]) -> Vec<String> {
    v.iter().flat_map(|t| t.split(',')).map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
}

/// Announces a writer, then loads the index (in that order: see `vault prune`).
fn writer_handle(repo: &Arc<Repository>, command: &str) -> Result<(vault_repo::Announced, IndexedRepository)> {
    let announced = vault_repo::announce(repo, command)?;
    Ok((announced, IndexedRepository::load(repo.clone())?))
}

fn print(g: &GlobalArgs, r: &RewriteReport, dry_run: bool) -> Result<()> {
    if g.json {
        return print_message("summary", r);
    }
    if g.quiet {
        return Ok(());
    }
    for x in &r.replaced {
        let new = x.new.map(|i| i.short()).unwrap_or_else(|| "(dry run)".into());
        if x.removed_entries > 0 {
            println!(
                "snapshot {} → {new}: {} left out",
                x.original.short(),
                count(x.removed_entries, "entry", "entries")
            );
            for p in &x.removed_paths {
                println!("  {p}");
            }
        } else {
            println!("snapshot {} → {new}", x.original.short());
        }
    }
    let verb = if dry_run { "would replace" } else { "replaced" };
    println!("{verb} {}, {} unchanged", count(r.replaced.len(), "snapshot", "snapshots"), r.unchanged);
    if r.tombstone.is_some() {
        println!("removed the {} original snapshots", r.replaced.len());
    }
    Ok(())
}

pub(crate) fn run_tag(g: &GlobalArgs, a: &TagArgs) -> Result<ExitCode> {
    let change =
        TagChange { add: split(&a.add), remove: split(&a.remove), set: (!a.set.is_empty()).then(|| split(&a.set)) };
    if change.is_empty() {
        return Err(OpError::Usage("nothing to change: give --add, --remove or --set".into()).into());
    }
    let repo = open_repo(g)?;
    let snaps = chosen(&repo, &a.snapshots, &a.filter)?;
    let (announced, handle) = writer_handle(&repo, "tag")?;
    let r = tag(&handle, &snaps, &change, a.dry_run)?;
    announced.end()?;
    print(g, &r, a.dry_run)?;
    Ok(ExitCode::Ok)
}

pub(crate) fn run_rewrite(g: &GlobalArgs, a: &RewriteArgs) -> Result<ExitCode> {
    let repo = open_repo(g)?;
    let snaps = chosen(&repo, &a.snapshots, &a.filter)?;
    let (announced, handle) = writer_handle(&repo, "rewrite")?;
    let opts = RewriteOptions { excludes: a.excludes.clone(), forget: a.forget, dry_run: a.dry_run };
    let r = rewrite(&handle, &snaps, &opts)?;
    announced.end()?;
    print(g, &r, a.dry_run)?;
    Ok(ExitCode::Ok)
}
