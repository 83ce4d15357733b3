use anyhow::Result;
use serde_json::json;

use super::{filter, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, SnapshotsArgs};
use crate::cli::output::{local_time, print_json, printable, table};
use crate::cli::progress::bytes;
use vault_format::SnapshotId;
use vault_format::snapshot::Snapshot;
use vault_ops::OpError;
use vault_ops::forget::{GroupBy, GroupKey, describe_group, key_of};
use vault_ops::rollback::is_future;
use vault_ops::select::{list, time_of};

pub(crate) fn run(g: &GlobalArgs, a: &SnapshotsArgs) -> Result<ExitCode> {
    let by: Option<GroupBy> = match &a.group_by {
        Some(f) => Some(f.parse().map_err(|e: String| OpError::Usage(format!("--group-by: {e}")))?),
        None => None,
    };
    if a.latest == Some(0) {
        return Err(OpError::Usage("--latest: expected 1 or more".into()).into());
    }
    let repo = open_repo(g)?;
    let (snaps, bad) = list(&repo, &filter(&a.filter))?;
    for b in &bad {
        eprintln!("warning: skipped a damaged snapshot: {b}");
    }
    // Groups in the order of their newest snapshot; snapshots oldest first within each.
    let grouping = by.unwrap_or_default();
    let mut groups: Vec<(GroupKey, Vec<(SnapshotId, Snapshot)>)> = Vec::new();
    for (id, s) in snaps {
        let key = if by.is_some() || a.latest.is_some() { key_of(&s, grouping) } else { GroupKey::default() };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push((id, s)),
            None => groups.push((key, vec![(id, s)])),
        }
    }
    if let Some(n) = a.latest {
        for (_, v) in &mut groups {
            let drop = v.len().saturating_sub(n);
            v.drain(..drop);
        }
    }
    let now = chrono::Utc::now();
    let to_json = |id: &SnapshotId, s: &Snapshot| {
        let mut o = serde_json::to_value(s).unwrap_or_default();
        if let Some(m) = o.as_object_mut() {
            m.insert("message_type".into(), json!("snapshot"));
            m.insert("id".into(), json!(id));
            m.insert("short_id".into(), json!(id.short()));
            m.insert("future".into(), json!(is_future(s, now)));
            m.insert("written_by".into(), json!(repo.describe_origin(s.written_by)));
        }
        o
    };
    if g.json {
        if by.is_some() {
            let v: Vec<_> = groups
                .iter()
                .map(|(k, v)| json!({"message_type": "snapshot_group", "group_key": k, "snapshots": v.iter().map(|(id, s)| to_json(id, s)).collect::<Vec<_>>()}))
                .collect();
            print_json(&v)?;
        } else {
            let v: Vec<_> = groups.iter().flat_map(|(_, v)| v.iter().map(|(id, s)| to_json(id, s))).collect();
            print_json(&v)?;
        }
        return Ok(ExitCode::Ok);
    }
    let mut total = 0;
    for (i, (key, v)) in groups.iter().enumerate() {
        if by.is_some() {
            if i > 0 {
                println!();
            }
            println!("{}", printable(&format!("group: {}", describe_group(key))));
        }
        total += v.len();
        // Which key wrote each matters once there are write-only keys.
        let keys = (!repo.writer_keys().is_empty()).then_some(&*repo);
        print!("{}", render(v, a.compact, now, keys));
    }
    println!("{total} snapshots");
    if !repo.is_full() {
        println!("(a write-only key lists only the snapshots it wrote)");
    }
    Ok(ExitCode::Ok)
}

fn render(
    snaps: &[(SnapshotId, Snapshot)],
    compact: bool,
    now: chrono::DateTime<chrono::Utc>,
    keys: Option<&vault_repo::Repository>,
) -> String {
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|(id, s)| {
            let time = if is_future(s, now) {
                // A date ahead of the clock is suspicious (see `vault check`).
                format!("{} (future!)", local_time(time_of(s)))
            } else {
                local_time(time_of(s))
            };
            let mut row = vec![id.short(), time, s.hostname.clone(), s.tags.join(",")];
            if let Some(r) = keys {
                row.push(r.describe_origin(s.written_by));
            }
            if !compact {
                row.push(s.summary.as_ref().map(|x| bytes(x.total_bytes)).unwrap_or_default());
                row.push(s.paths.join(", "));
            }
            row
        })
        .collect();
    let mut head = vec!["ID", "Time", "Host", "Tags"];
    if keys.is_some() {
        head.push("Written by");
    }
    if !compact {
        head.extend(["Size", "Paths"]);
    }
    table(&head, &rows)
}
