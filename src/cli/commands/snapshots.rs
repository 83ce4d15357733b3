use anyhow::Result;
use serde_json::json;

use super::{filter, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, SnapshotsArgs};
use crate::cli::output::{local_time, print_json, table};
use crate::cli::progress::bytes;
use vault_ops::rollback::is_future;
use vault_ops::select::{list, time_of};

pub(crate) fn run(g: &GlobalArgs, a: &SnapshotsArgs) -> Result<ExitCode> {
    let repo = open_repo(g)?;
    let (snaps, bad) = list(&repo, &filter(&a.filter))?;
    for b in &bad {
        eprintln!("warning: skipped a damaged snapshot: {b}");
    }
    let now = chrono::Utc::now();
    if g.json {
        let v: Vec<_> = snaps
            .iter()
            .map(|(id, s)| {
                let mut o = serde_json::to_value(s).unwrap_or_default();
                if let Some(m) = o.as_object_mut() {
                    m.insert("id".into(), json!(id));
                    m.insert("short_id".into(), json!(id.short()));
                    m.insert("future".into(), json!(is_future(s, now)));
                }
                o
            })
            .collect();
        print_json(&v)?;
        return Ok(ExitCode::Ok);
    }
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|(id, s)| {
            vec![
                id.short(),
                // A date ahead of the clock is suspicious (see `vault check`).
                if is_future(s, now) {
                    format!("{} (future!)", local_time(time_of(s)))
                } else {
                    local_time(time_of(s))
                },
                s.hostname.clone(),
                s.tags.join(","),
                s.summary.as_ref().map(|x| bytes(x.total_bytes)).unwrap_or_default(),
                s.paths.join(", "),
            ]
        })
        .collect();
    print!("{}", table(&["ID", "Time", "Host", "Tags", "Size", "Paths"], &rows));
    println!("{} snapshots", snaps.len());
    Ok(ExitCode::Ok)
}
