use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use super::{filter, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, OverwriteArg, RestoreArgs};
use crate::cli::output::{count, print_json};
use crate::cli::progress::{BarProgress, bytes};
use vault_ops::fsmeta::XattrFilter;
use vault_ops::restore::{Overwrite, RestoreOptions, restore};
use vault_ops::select;

pub(crate) fn run(g: &GlobalArgs, a: &RestoreArgs) -> Result<ExitCode> {
    let (spec, subpath) = match a.snapshot.split_once(':') {
        Some((s, p)) => (s.to_string(), p.to_string()),
        None => (a.snapshot.clone(), String::new()),
    };
    let repo = open_repo(g)?;
    let (id, snap) = select::find(&repo, &spec, &filter(&a.filter))?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        subpath,
        includes: a.includes.clone(),
        excludes: a.excludes.clone(),
        ownership: nix::unistd::geteuid().is_root(),
        insecure_target: a.insecure_target,
        no_special: a.no_special,
        no_setuid: a.no_setuid,
        xattrs: XattrFilter { includes: a.xattr_include.clone(), excludes: a.xattr_exclude.clone() },
        overwrite: a.overwrite.map(|o| match o {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::IfNewer => Overwrite::IfNewer,
            OverwriteArg::Never => Overwrite::Never,
        }),
        delete: a.delete,
        dry_run: a.dry_run,
        verify: a.verify,
    };
    let started = Instant::now();
    let progress = BarProgress::new(!g.quiet && !g.json, "restored").with_json_status(g.json && !g.quiet);
    let repo = vault_repo::IndexedRepository::load(repo)?;
    let result = restore(&repo, snap.tree, &id.short(), &opts, &progress);
    progress.finish();
    let r = result?;
    let secs = started.elapsed().as_secs_f64();
    if g.json {
        print_json(&json!({
            "message_type": "summary",
            "snapshot_id": id,
            "files": r.files, "dirs": r.dirs, "other": r.other, "hard_links": r.hard_links,
            "bytes": r.bytes, "files_updated": r.files_updated, "unchanged": r.unchanged,
            "bytes_unchanged": r.bytes_unchanged, "deleted": r.deleted, "verified": r.verified,
            "dry_run": r.dry_run, "duration_seconds": secs, "errors": r.problems,
            "requests": repo.repo().backend().stats(),
            "privileged": r.privileged,
        }))?;
    } else if !g.quiet {
        println!(
            "{} snapshot {} to {}: {}, {}, {} other, {} in {secs:.2}s",
            if r.dry_run { "would restore" } else { "restored" },
            id.short(),
            a.target.display(),
            count(r.files, "file", "files"),
            count(r.dirs, "directory", "directories"),
            r.other + r.hard_links,
            bytes(r.bytes)
        );
        if a.overwrite.is_some() || a.delete {
            println!(
                "{} updated in place, {} unchanged ({}), {} removed",
                count(r.files_updated, "file", "files"),
                count(r.unchanged, "entry", "entries"),
                bytes(r.bytes_unchanged),
                count(r.deleted, "entry", "entries")
            );
        }
        if a.verify {
            println!("{} read back and verified", count(r.verified, "file", "files"));
        }
        let p = &r.privileged;
        let made: Vec<String> = [
            (p.devices, "device nodes"),
            (p.setuid_files, "setuid/setgid files"),
            (p.capabilities, "files with capabilities"),
            (p.trusted_xattrs, "entries with trusted.* attributes"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if !made.is_empty() {
            println!("privileged objects created: {}", made.join(", "));
        }
        if p.special_skipped > 0 || p.xattrs_skipped > 0 {
            println!(
                "left out: {} special files (--no-special), {} privileged attributes (see --xattr-include)",
                p.special_skipped, p.xattrs_skipped
            );
        }
    }
    if r.integrity_errors > 0 {
        eprintln!("error: {} files could not be restored because repository data is damaged", r.integrity_errors);
        Ok(ExitCode::Integrity)
    } else if r.storage_errors > 0 {
        eprintln!(
            "error: {} files could not be restored because the storage failed to deliver their data",
            r.storage_errors
        );
        Ok(ExitCode::Backend)
    } else if !r.problems.is_empty() {
        eprintln!("error: {} problems during restore", r.problems.len());
        Ok(ExitCode::Error)
    } else {
        Ok(ExitCode::Ok)
    }
}
