//! `find`: which snapshots hold a matching path, and that file's versions over time.
//! Each tree is walked once however many snapshots share it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::Result;
use super::pattern::PatternSet;
use super::select::time_of;
use super::walk::{Flow, Visit, subtree, walk_tree};
use vault_format::snapshot::Snapshot;
use vault_format::tree::{Node, NodeKind, Timestamp};
use vault_format::{BlobId, SnapshotId};
use vault_repo::IndexedRepository;

#[derive(Clone, Debug, Default)]
/// What `find` looks for.
pub struct FindOptions {
    /// Name or path patterns; an entry matching any one is found.
    pub patterns: Vec<String>,
    /// Only below this path (inside the snapshot).
    pub path: Option<String>,
    /// Only entries modified after / before these times.
    pub newer: Option<DateTime<Utc>>,
    /// See `newer`.
    pub older: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize)]
/// One snapshot's version of a found path.
pub struct Version {
    /// The snapshot's id.
    pub snapshot: String,
    /// The snapshot's time.
    pub snapshot_time: String,
    #[serde(rename = "type")]
    /// The entry's type.
    pub kind: NodeKind,
    /// Its size.
    pub size: u64,
    /// Its modification time.
    pub mtime: String,
    /// Whether content or metadata differ from the previous version listed.
    pub changed: bool,
}

#[derive(Clone, Debug, Serialize)]
/// A found path with its versions across snapshots.
pub struct Found {
    /// The path.
    pub path: String,
    /// Its versions, oldest snapshot first.
    pub versions: Vec<Version>,
}

fn ts(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.sec, t.nsec).unwrap_or_default()
}

/// Where the matches below one directory were recorded: `(snapshot, start, end)` in the
/// per-snapshot match lists. A later snapshot that holds the same tree at the same path
/// copies them instead of walking it again.
type MemoRange = (usize, usize, usize);

/// The matches of every snapshot, in order.
pub fn find(repo: &IndexedRepository, snapshots: &[(SnapshotId, Snapshot)], opts: &FindOptions) -> Result<Vec<Found>> {
    let patterns = PatternSet::new(&opts.patterns)?;
    let scope = opts.path.as_deref().map(|p| p.trim_end_matches('/'));
    let mut results: Vec<Vec<(String, Node)>> = Vec::with_capacity(snapshots.len());
    let mut memo: HashMap<(BlobId, String), MemoRange> = HashMap::new();
    for (k, (_, s)) in snapshots.iter().enumerate() {
        let done = &results;
        let mut out: Vec<(String, Node)> = Vec::new();
        // Directories being walked: their memo key and where their matches start.
        let mut open: Vec<((BlobId, String), usize)> = Vec::new();
        walk_tree(repo, s.tree, "", &mut |v| {
            let (path, n) = match v {
                Visit::Leave => {
                    if let Some((key, start)) = open.pop() {
                        memo.insert(key, (k, start, out.len()));
                    }
                    return Ok(Flow::Continue);
                }
                Visit::Entry { path, item } => (path, item),
            };
            let in_scope = scope.is_none_or(|p| path.starts_with(p));
            let inside = in_scope || scope.is_some_and(|p| p.starts_with(path));
            let m = ts(n.mtime);
            let time_ok = opts.newer.is_none_or(|t| m > t) && opts.older.is_none_or(|t| m < t);
            if in_scope && time_ok && patterns.matches(Path::new(path)) {
                out.push((path.to_string(), n.clone()));
            }
            let Some(sub) = subtree(n) else { return Ok(Flow::Continue) };
            if !inside {
                return Ok(Flow::Skip);
            }
            let key = (sub, path.to_string());
            if let Some(&(j, a, b)) = memo.get(&key) {
                out.extend(done[j][a..b].iter().cloned());
                return Ok(Flow::Skip);
            }
            open.push((key, out.len()));
            Ok(Flow::Continue)
        })?;
        results.push(out);
    }
    let mut by_path: BTreeMap<String, Vec<(DateTime<Utc>, String, Node)>> = BTreeMap::new();
    for ((id, s), found) in snapshots.iter().zip(results) {
        for (path, node) in found {
            by_path.entry(path).or_default().push((time_of(s), id.short(), node));
        }
    }
    Ok(by_path
        .into_iter()
        .map(|(path, mut v)| {
            v.sort_by_key(|(t, _, _)| *t);
            let mut prev: Option<Node> = None;
            let versions = v
                .into_iter()
                .map(|(t, snap, n)| {
                    let changed = prev.as_ref().is_none_or(|p| {
                        p.content != n.content || p.mtime != n.mtime || p.kind != n.kind || p.mode != n.mode
                    });
                    let v = Version {
                        snapshot: snap,
                        snapshot_time: crate::time::rfc3339(t),
                        kind: n.kind,
                        size: n.size,
                        mtime: crate::time::timestamp(n.mtime),
                        changed,
                    };
                    prev = Some(n);
                    v
                })
                .collect();
            Found { path, versions }
        })
        .collect())
}
