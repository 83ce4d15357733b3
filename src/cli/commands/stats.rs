use anyhow::Result;

use super::{filter, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, StatsArgs};
use crate::cli::output::{count, print_message};
use crate::cli::progress::bytes;
use vault_ops::select;
use vault_ops::stats::stats;

pub(crate) fn run(g: &GlobalArgs, a: &StatsArgs) -> Result<ExitCode> {
    let repo = open_repo(g)?;
    let f = filter(&a.filter);
    let snaps = if a.snapshots.is_empty() {
        select::list(&repo, &f)?.0
    } else {
        a.snapshots.iter().map(|s| select::find(&repo, s, &f)).collect::<Result<Vec<_>, _>>()?
    };
    let repo = vault_repo::IndexedRepository::load(repo)?;
    let s = stats(&repo, &snaps)?;
    if g.json {
        print_message("stats", &s)?;
    } else {
        println!("Snapshots:          {}", s.snapshots);
        println!("Files:              {} (and {})", s.files, count(s.dirs, "directory", "directories"));
        println!("Restore size:       {}", bytes(s.restore_size));
        println!("Unique data:        {} in {} blobs", bytes(s.unique_data_size), s.unique_blobs);
        println!("Stored:             {}", bytes(s.stored_size));
        println!("Dedup ratio:        {:.2}x", s.dedup_ratio);
        println!("Compression ratio:  {:.2}x", s.compression_ratio);
        if s.missing_blobs > 0 {
            println!("warning: {} blobs are not in the index; run `vault check`", s.missing_blobs);
        }
    }
    Ok(ExitCode::Ok)
}
