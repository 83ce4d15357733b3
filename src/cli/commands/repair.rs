use anyhow::Result;

use super::{hostname, open_repo_with};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, RepairArgs, RepairWhat};
use crate::cli::output::{count, print_message};
use crate::cli::progress::BarProgress;
use vault_ops::repair::{repair_index, repair_snapshots};

pub(crate) fn run(g: &GlobalArgs, a: &RepairArgs) -> Result<ExitCode> {
    let repo = open_repo_with(g, false)?;
    let progress = BarProgress::new(!g.quiet && !g.json, "packs");
    match &a.what {
        RepairWhat::Index { read_data } => {
            let r = repair_index(repo, *read_data, &progress);
            progress.finish();
            let r = r?;
            if g.json {
                print_message("summary", &r)?;
            } else if !g.quiet {
                for u in &r.unreadable_packs {
                    println!("warning: {u}");
                }
                println!(
                    "indexed {} blobs in {} packs into {} new index files (superseding {}); salvaged {} blobs, lost {}",
                    r.blobs_indexed,
                    r.packs_indexed,
                    r.index_files_written,
                    r.index_files_superseded,
                    r.blobs_salvaged,
                    r.blobs_lost
                );
            }
        }
        RepairWhat::Snapshots { read_data, dry_run } => {
            let r = repair_snapshots(repo, *read_data, &hostname(), *dry_run, &progress);
            progress.finish();
            let r = r?;
            if g.json {
                print_message("summary", &r)?;
            } else if !g.quiet {
                for s in &r.snapshots {
                    let new = s.repaired.map(|i| i.short()).unwrap_or_else(|| "(dry run)".into());
                    println!(
                        "snapshot {} → {new}: {} files dropped, {} directories emptied",
                        s.original.short(),
                        s.dropped.len(),
                        s.emptied.len()
                    );
                    for p in &s.dropped {
                        println!("  dropped /{p}");
                    }
                    for p in &s.emptied {
                        println!("  emptied /{p}");
                    }
                }
                println!("{} repaired, {} intact", count(r.snapshots.len(), "snapshot", "snapshots"), r.unchanged);
            }
        }
    }
    Ok(ExitCode::Ok)
}
