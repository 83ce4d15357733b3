//! `stats`: restore size, file count, unique and stored data, dedup and compression ratios
//! for chosen snapshots or the whole repository.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::error::Result;
use vault_format::pack::BlobKind;
use vault_format::snapshot::Snapshot;
use vault_format::tree::{ContentItem, Tree};
use vault_format::{BlobId, SnapshotId};
use vault_repo::IndexedRepository;

use super::walk::{TreeFold, fold};

#[derive(Clone, Debug, Default, Serialize)]
/// What `stats` counts over the chosen snapshots.
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: usize,
    /// Bytes a full restore of every chosen snapshot would write.
    pub restore_size: u64,
    /// Files in all of them (a file in two snapshots counts twice).
    pub files: u64,
    /// Directories in all of them.
    pub dirs: u64,
    /// Distinct data (plaintext) the chosen snapshots need.
    pub unique_data_size: u64,
    /// Distinct data blobs they need.
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

/// Totals per tree, and every blob the trees need.
struct Totals<'a> {
    repo: &'a IndexedRepository,
    blobs: HashSet<(BlobKind, BlobId)>,
}

impl TreeFold for Totals<'_> {
    type Value = TreeTotals;

    fn open(&mut self, id: &BlobId) -> Result<std::result::Result<Tree, TreeTotals>> {
        self.blobs.insert((BlobKind::Tree, *id));
        Ok(Ok(self.repo.load_tree(id)?))
    }

    fn combine(&mut self, _: &BlobId, tree: Tree, subtrees: Vec<Option<TreeTotals>>) -> Result<TreeTotals> {
        // Saturating: a crafted tree graph may hold more paths than a u64 counts.
        let mut sum = TreeTotals::default();
        for (n, sub) in tree.nodes.iter().zip(subtrees) {
            match sub {
                Some(s) => {
                    sum.files = sum.files.saturating_add(s.files);
                    sum.dirs = sum.dirs.saturating_add(s.dirs).saturating_add(1);
                    sum.bytes = sum.bytes.saturating_add(s.bytes);
                }
                None => {
                    sum.files = sum.files.saturating_add(1);
                    sum.bytes = sum.bytes.saturating_add(n.size);
                    for c in &n.content {
                        if let ContentItem::Data { id, .. } = c {
                            self.blobs.insert((BlobKind::Data, *id));
                        }
                    }
                }
            }
        }
        Ok(sum)
    }
}

/// Statistics of `snapshots` (each tree read once however many snapshots share it).
pub fn stats(repo: &IndexedRepository, snapshots: &[(SnapshotId, Snapshot)]) -> Result<Stats> {
    let mut w = Totals { repo, blobs: HashSet::new() };
    let mut memo = HashMap::new();
    let mut st = Stats { snapshots: snapshots.len(), ..Default::default() };
    for (_, s) in snapshots {
        let t = fold(&mut w, s.tree, &mut memo)?;
        st.files = st.files.saturating_add(t.files);
        st.dirs = st.dirs.saturating_add(t.dirs);
        st.restore_size = st.restore_size.saturating_add(t.bytes);
    }
    let index = repo.index();
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
