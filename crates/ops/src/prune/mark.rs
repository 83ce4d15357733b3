//! Live marking: which blobs the snapshots reference, each tree read once.
//!
//! Marks are bits over the index's dense blob slots ([`MasterIndex::slot`]), one bit per
//! indexed blob, so marking a repository of ten million blobs costs about 1.2 MiB beside
//! the index rather than a set of ids. Trees are read in parallel batches of bounded size.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use vault_format::pack::BlobKind;
use vault_format::tree::{ContentItem, Tree};
use vault_format::{BlobId, PackId};
use vault_repo::{IndexedRepository, MasterIndex};

use crate::error::Result;

/// Trees read at once: enough to keep both cores and the backend busy, few enough that
/// their decoded contents stay small.
const BATCH: usize = 256;

/// One bit per indexed blob of each kind.
pub(crate) struct Marks {
    bits: [Vec<AtomicU64>; 2],
}

impl Marks {
    pub(crate) fn new(index: &MasterIndex) -> Marks {
        let words = |k| (0..index.slots(k).div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        Marks { bits: [words(BlobKind::Data), words(BlobKind::Tree)] }
    }

    /// Sets the bit; returns whether it was clear.
    pub(crate) fn set(&self, kind: BlobKind, slot: usize) -> bool {
        let bit = 1u64 << (slot % 64);
        self.bits[kind.to_byte() as usize][slot / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    pub(crate) fn get(&self, kind: BlobKind, slot: usize) -> bool {
        self.bits[kind.to_byte() as usize][slot / 64].load(Ordering::Relaxed) & (1u64 << (slot % 64)) != 0
    }
}

/// What marking found.
pub(crate) struct Liveness {
    pub(crate) marks: Marks,
    /// Packs that only superseded index files list but that hold referenced blobs (a
    /// writer that loaded the index before an earlier prune used them): they are indexed
    /// again, whole.
    pub(crate) rescued: HashSet<PackId>,
    /// Referenced blobs found nowhere (the first few) and how many.
    pub(crate) missing: Vec<(BlobKind, BlobId)>,
    pub(crate) missing_count: u64,
    /// Distinct trees read.
    pub(crate) trees: u64,
}

const MISSING_SHOWN: usize = 10;

/// Marks everything reachable from `roots`. `repo`'s live index must be compacted; blobs
/// it lacks are looked up in its condemned packs.
pub(crate) fn mark(repo: &IndexedRepository, roots: impl IntoIterator<Item = BlobId>) -> Result<Liveness> {
    let mut st = Liveness {
        marks: Marks::new(repo.index()),
        rescued: HashSet::new(),
        missing: Vec::new(),
        missing_count: 0,
        trees: 0,
    };
    let mut outside: HashSet<BlobId> = HashSet::new();
    let mut todo: Vec<BlobId> = Vec::new();
    for root in roots {
        if st.visit(repo, BlobKind::Tree, &root, &mut outside) {
            todo.push(root);
        }
    }
    while !todo.is_empty() {
        let batch: Vec<BlobId> = todo.split_off(todo.len().saturating_sub(BATCH));
        let trees: Vec<Tree> = batch.par_iter().map(|id| repo.load_tree(id)).collect::<Result<_, _>>()?;
        st.trees += trees.len() as u64;
        for tree in &trees {
            for node in &tree.nodes {
                for item in &node.content {
                    if let ContentItem::Data { id, .. } = item {
                        st.visit(repo, BlobKind::Data, id, &mut outside);
                    }
                }
                if let Some(sub) = &node.subtree
                    && st.visit(repo, BlobKind::Tree, sub, &mut outside)
                {
                    todo.push(*sub);
                }
            }
        }
    }
    Ok(st)
}

impl Liveness {
    /// Marks one referenced blob; returns whether it was not seen before (a tree to read).
    fn visit(&mut self, repo: &IndexedRepository, kind: BlobKind, id: &BlobId, outside: &mut HashSet<BlobId>) -> bool {
        if let Some(slot) = repo.index().slot(kind, id) {
            return self.marks.set(kind, slot);
        }
        match repo.condemned().get(kind, id) {
            Some(loc) => {
                self.rescued.insert(loc.pack);
                outside.insert(*id)
            }
            None => {
                self.missing_count += 1;
                if self.missing.len() < MISSING_SHOWN {
                    self.missing.push((kind, *id));
                }
                false
            }
        }
    }
}
