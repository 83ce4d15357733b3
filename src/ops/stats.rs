//! `stats`: restore size, file count, unique and stored data, dedup and compression ratios
//! for chosen snapshots or the whole repository.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::error::Result;
use crate::format::pack::BlobKind;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{ContentItem, NodeKind};
use crate::format::{BlobId, SnapshotId};
use crate::repo::{MasterIndex, Repository};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub snapshots: usize,
    /// Bytes a full restore of every chosen snapshot would write.
    pub restore_size: u64,
    pub files: u64,
    pub dirs: u64,
    /// Distinct data (plaintext) the chosen snapshots need.
    pub unique_data_size: u64,
    pub unique_blobs: u64,
    /// Bytes stored for that data (after compression and encryption), trees included.
    pub stored_size: u64,
    /// restore size / unique data size.
    pub dedup_ratio: f64,
    /// unique data size / stored size.
    pub compression_ratio: f64,
    /// Blobs the snapshots need that the index does not know (a `check` problem).
    pub missing_blobs: u64,
}

#[derive(Clone, Copy, Default)]
struct TreeTotals {
    files: u64,
    dirs: u64,
    bytes: u64,
}

struct Walker<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    totals: HashMap<BlobId, TreeTotals>,
    blobs: HashSet<(BlobKind, BlobId)>,
}

impl Walker<'_> {
    fn walk(&mut self, tree: BlobId) -> Result<TreeTotals> {
        if let Some(t) = self.totals.get(&tree) {
            return Ok(*t);
        }
        self.blobs.insert((BlobKind::Tree, tree));
        let t = self.repo.load_tree(self.index, &tree)?;
        let mut sum = TreeTotals::default();
        for n in &t.nodes {
            match (n.kind, n.subtree) {
                (NodeKind::Dir, Some(sub)) => {
                    let s = self.walk(sub)?;
                    sum.files += s.files;
                    sum.dirs += s.dirs + 1;
                    sum.bytes += s.bytes;
                }
                _ => {
                    sum.files += 1;
                    sum.bytes += n.size;
                    for c in &n.content {
                        if let ContentItem::Data { id, .. } = c {
                            self.blobs.insert((BlobKind::Data, *id));
                        }
                    }
                }
            }
        }
        self.totals.insert(tree, sum);
        Ok(sum)
    }
}

pub fn stats(repo: &Repository, index: &MasterIndex, snapshots: &[(SnapshotId, Snapshot)]) -> Result<Stats> {
    let mut w = Walker { repo, index, totals: HashMap::new(), blobs: HashSet::new() };
    let mut st = Stats { snapshots: snapshots.len(), ..Default::default() };
    for (_, s) in snapshots {
        let t = w.walk(s.tree)?;
        st.files += t.files;
        st.dirs += t.dirs;
        st.restore_size += t.bytes;
    }
    for (kind, id) in &w.blobs {
        match index.get(*kind, id) {
            Some(loc) => {
                if *kind == BlobKind::Data {
                    st.unique_data_size += u64::from(loc.raw_length);
                    st.unique_blobs += 1;
                }
                st.stored_size += u64::from(loc.length);
            }
            None => st.missing_blobs += 1,
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    st.dedup_ratio = ratio(st.restore_size, st.unique_data_size);
    st.compression_ratio = ratio(st.unique_data_size, st.stored_size);
    Ok(st)
}
