use anyhow::Result;
use serde_json::json;

use super::{filter, open_from_repo, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{CopyArgs, GlobalArgs};
use crate::cli::output::{count, print_json};
use crate::cli::progress::{BarProgress, bytes};
use vault_ops::OpError;
use vault_ops::copy::copy;
use vault_ops::select::{self, time_of};
use vault_repo::IndexedRepository;

pub(crate) fn run(g: &GlobalArgs, a: &CopyArgs) -> Result<ExitCode> {
    let src = open_from_repo(g, &a.from_repo, &a.from_password, !g.no_cache)?;
    let dst = open_repo(g)?;
    if src.config().id == dst.config().id {
        return Err(OpError::Usage("--from-repo is the same repository as -r".into()).into());
    }
    let f = filter(&a.filter);
    let (listed, bad) = select::list(&src, &f)?;
    for b in &bad {
        eprintln!("warning: skipped a damaged snapshot of the source: {b}");
    }
    let mut snaps = if a.snapshots.is_empty() {
        listed
    } else {
        let mut chosen = Vec::new();
        for spec in &a.snapshots {
            let found = select::find(&src, spec, &f)?;
            if !chosen.iter().any(|(id, _)| *id == found.0) {
                chosen.push(found);
            }
        }
        chosen
    };
    snaps.sort_by(|x, y| time_of(&x.1).cmp(&time_of(&y.1)).then(x.0.cmp(&y.0)));
    // Announced before the index is loaded, like a backup: a prune of the destination
    // waits for this copy before deleting what it may deduplicate against.
    let announced = vault_repo::announce(&dst, "copy")?;
    let progress = BarProgress::new(!g.quiet && !g.json, "copied").with_json_status(g.json && !g.quiet);
    let result = IndexedRepository::load(src).and_then(|s| Ok((s, IndexedRepository::load(dst.clone())?)));
    let result = result.map_err(OpError::from).and_then(|(s, d)| copy(&s, &d, &snaps, &progress));
    progress.finish();
    let writer = announced.id();
    if let Err(e) = announced.end() {
        eprintln!("warning: could not remove this copy's announcement writers/{} ({e})", writer.short());
    }
    let r = result?;
    if let Some(state) = super::local_state() {
        for c in &r.copied {
            let _ = vault_ops::rollback::remember_snapshot(&dst, &state, c.copy);
        }
    }
    if g.json {
        print_json(&json!({
            "message_type": "summary",
            "copied": r.copied,
            "already_there": r.already_there,
            "bytes_read": r.bytes_read,
            "rechunked": r.rechunked,
            "blobs_added": r.writer.blobs_added,
            "bytes_added": r.writer.bytes_added,
            "stored_bytes_added": r.writer.stored_bytes_added,
            "requests_destination": dst.backend().stats(),
        }))?;
    } else if !g.quiet {
        for c in &r.copied {
            println!("copied snapshot {} as {}", c.source.short(), c.copy.short());
        }
        if !r.already_there.is_empty() {
            let n = r.already_there.len();
            println!(
                "{} {} in the destination already",
                count(n, "snapshot", "snapshots"),
                if n == 1 { "is" } else { "are" }
            );
        }
        if r.rechunked && r.bytes_read > 0 {
            println!(
                "the repositories chunk data differently: file data was read from the source and chunked again (a repository made with `vault init --from-repo SOURCE --copy-chunker-params` takes blobs as they are)"
            );
        }
        println!(
            "read {} of file data from the source; stored {} new ({} after compression)",
            bytes(r.bytes_read),
            bytes(r.writer.bytes_added),
            bytes(r.writer.stored_bytes_added)
        );
    }
    Ok(ExitCode::Ok)
}
