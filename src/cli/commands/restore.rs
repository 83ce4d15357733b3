use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use super::{filter, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, RestoreArgs};
use crate::cli::output::print_json;
use crate::cli::progress::{BarProgress, bytes};
use vault_ops::fsmeta::XattrFilter;
use vault_ops::restore::{RestoreOptions, restore};
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
    };
    let started = Instant::now();
    let progress = BarProgress::new(!g.quiet && !g.json, "restored");
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
            "bytes": r.bytes, "duration_seconds": secs, "errors": r.problems,
            "privileged": r.privileged,
        }))?;
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} dirs, {} other, {} in {secs:.2}s",
            id.short(),
            a.target.display(),
            r.files,
            r.dirs,
            r.other + r.hard_links,
            bytes(r.bytes)
        );
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
