//! `find`: which snapshots hold a matching path, and that file's versions over time.
//! Each tree is walked once however many snapshots share it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::Result;
use super::pattern::PatternSet;
use super::select::time_of;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, Timestamp};
use crate::format::{BlobId, SnapshotId};
use crate::repo::{MasterIndex, Repository};

#[derive(Clone, Debug, Default)]
pub struct FindOptions {
    pub patterns: Vec<String>,
    /// Only below this path (inside the snapshot).
    pub path: Option<String>,
    /// Only entries modified after / before these times.
    pub newer: Option<DateTime<Utc>>,
    pub older: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Version {
    pub snapshot: String,
    pub snapshot_time: String,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    pub size: u64,
    pub mtime: String,
    /// Whether content or metadata differ from the previous version listed.
    pub changed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Found {
    pub path: String,
    pub versions: Vec<Version>,
}

fn ts(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.sec, t.nsec).unwrap_or_default()
}

type Matches = Arc<Vec<(String, Node)>>;

struct Finder<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    opts: &'a FindOptions,
    patterns: PatternSet,
    memo: HashMap<(BlobId, String), Matches>,
}

impl Finder<'_> {
    fn walk(&mut self, tree: BlobId, prefix: &str) -> Result<Matches> {
        let key = (tree, prefix.to_string());
        if let Some(m) = self.memo.get(&key) {
            return Ok(m.clone());
        }
        let t = self.repo.load_tree(self.index, &tree)?;
        let mut out = Vec::new();
        for n in t.nodes {
            let path = format!("{prefix}/{}", n.name_lossy());
            let inside = self
                .opts
                .path
                .as_deref()
                .is_none_or(|p| path.starts_with(p.trim_end_matches('/')) || p.starts_with(&path));
            let in_scope = self.opts.path.as_deref().is_none_or(|p| path.starts_with(p.trim_end_matches('/')));
            let m = ts(n.mtime);
            let time_ok = self.opts.newer.is_none_or(|t| m > t) && self.opts.older.is_none_or(|t| m < t);
            if inside && in_scope && time_ok && self.patterns.matches(Path::new(&path)) {
                out.push((path.clone(), n.clone()));
            }
            if let (NodeKind::Dir, Some(sub), true) = (n.kind, n.subtree, inside) {
                out.extend(self.walk(sub, &path)?.iter().cloned());
            }
        }
        let r = Arc::new(out);
        self.memo.insert(key, r.clone());
        Ok(r)
    }
}

pub fn find(
    repo: &Repository,
    index: &MasterIndex,
    snapshots: &[(SnapshotId, Snapshot)],
    opts: &FindOptions,
) -> Result<Vec<Found>> {
    let mut f = Finder { repo, index, opts, patterns: PatternSet::new(&opts.patterns)?, memo: HashMap::new() };
    let mut by_path: BTreeMap<String, Vec<(DateTime<Utc>, String, Node)>> = BTreeMap::new();
    for (id, s) in snapshots {
        for (path, node) in f.walk(s.tree, "")?.iter() {
            by_path.entry(path.clone()).or_default().push((time_of(s), id.short(), node.clone()));
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
                        snapshot_time: t.to_rfc3339(),
                        kind: n.kind,
                        size: n.size,
                        mtime: ts(n.mtime).to_rfc3339(),
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
