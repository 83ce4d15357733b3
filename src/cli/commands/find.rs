use anyhow::{Result, bail};
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::open_repo;
use crate::cli::ExitCode;
use crate::cli::args::{FindArgs, GlobalArgs};
use crate::cli::output::{count, print_messages, printable};
use crate::cli::progress::bytes;
use vault_ops::find::{FindOptions, find};
use vault_ops::select::{self, SnapshotFilter};

/// `2026-01-02`, `2026-01-02 10:30[:15]` (local time) or RFC 3339.
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M"))
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default()));
    match naive.ok().and_then(|n| Local.from_local_datetime(&n).earliest()) {
        Some(t) => Ok(t.with_timezone(&Utc)),
        None => bail!("invalid time {s:?} (examples: 2026-01-31, \"2026-01-31 14:00\", 2026-01-31T14:00:00Z)"),
    }
}

pub(crate) fn run(g: &GlobalArgs, a: &FindArgs) -> Result<ExitCode> {
    let opts = FindOptions {
        patterns: a.patterns.clone(),
        path: a.path.clone(),
        newer: a.newer.as_deref().map(parse_time).transpose()?,
        older: a.older.as_deref().map(parse_time).transpose()?,
    };
    let repo = open_repo(g)?;
    let filter = SnapshotFilter {
        hosts: a.hosts.clone(),
        tags: a.tags.iter().map(|t| t.split(',').map(String::from).collect()).collect(),
        paths: Vec::new(),
    };
    let snaps = if a.snapshots.is_empty() {
        select::list(&repo, &filter)?.0
    } else {
        a.snapshots.iter().map(|s| select::find(&repo, s, &filter)).collect::<Result<Vec<_>, _>>()?
    };
    let repo = vault_repo::IndexedRepository::load(repo)?;
    let found = find(&repo, &snaps, &opts)?;
    if g.json {
        print_messages("found", &found)?;
    } else {
        for f in &found {
            println!("{}", printable(&f.path));
            for v in &f.versions {
                let mark = if v.changed { "*" } else { " " };
                println!("  {mark} {}  {}  {:>10}  modified {}", v.snapshot, v.snapshot_time, bytes(v.size), v.mtime);
            }
        }
        println!(
            "{} found in {} (* = a new version)",
            count(found.len(), "path", "paths"),
            count(snaps.len(), "snapshot", "snapshots")
        );
    }
    Ok(ExitCode::Ok)
}
