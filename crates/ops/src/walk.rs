//! The one tree walker. Every command that goes through snapshot trees (ls, find, stats,
//! dump, restore, diff, check, repair) does it here, in two shapes:
//!
//! - [`walk`]: depth first, in name order, with paths; the visitor may skip a subtree or
//!   stop. Generic over where listings come from ([`Lister`]), so `diff` walks two sides
//!   at once with the same code.
//! - [`fold`]: a value per tree computed from its subtrees' values, each tree read once
//!   (memoised by tree id) however often it occurs.
//!
//! Neither recurses on the call stack, so no depth overflows it. Trees are
//! content-addressed and authenticated, so they cannot form a cycle; but a key holder can
//! craft a chain of 10,000 trees, or a DAG of 41 trees in which every tree holds its child
//! twice (2^40 paths). [`WalkLimits`] bounds what a path walk expands: paths longer than any
//! real file system allows, and entries listed again under a tree already expanded in the
//! same walk. A fold needs no bound: its work is one step per distinct tree.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use vault_format::BlobId;
use vault_format::tree::{Node, NodeKind, Tree};
use vault_repo::IndexedRepository;

use super::error::{OpError, Result};

/// Longest path a walk builds, in bytes. Backups go through the kernel, whose paths end
/// at 4096 bytes (PATH_MAX), so no honest snapshot comes near it.
pub(crate) const MAX_PATH_BYTES: usize = 16 * 1024;

/// Entries a path walk may list again under trees it already expanded, beyond
/// [`REPEAT_FACTOR`] times the entries it listed for the first time. Honest snapshots
/// rarely repeat a tree (nodes carry inode numbers and times; a bind mount backed up
/// twice does); a crafted DAG repeats without end. So what a walk expands stays
/// proportional to what is stored.
pub(crate) const MAX_REPEATED_ENTRIES: u64 = 100_000;

/// See [`MAX_REPEATED_ENTRIES`].
pub(crate) const REPEAT_FACTOR: u64 = 8;

/// Bounds on what a path walk expands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkLimits {
    /// See [`MAX_PATH_BYTES`].
    pub max_path_bytes: usize,
    /// See [`MAX_REPEATED_ENTRIES`].
    pub max_repeated_entries: u64,
    /// See [`REPEAT_FACTOR`].
    pub repeat_factor: u64,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            max_path_bytes: MAX_PATH_BYTES,
            max_repeated_entries: MAX_REPEATED_ENTRIES,
            repeat_factor: REPEAT_FACTOR,
        }
    }
}

/// What the visitor of [`walk`] is shown.
pub enum Visit<'a, I> {
    /// An entry, with its path (`prefix/…/name`).
    Entry {
        /// The entry's path.
        path: &'a str,
        /// The entry.
        item: &'a I,
    },
    /// All entries below the directory entered last have been visited.
    Leave,
}

/// What the walk does after a visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on, into the entry's subtree if it has one.
    Continue,
    /// Go on, but not into this entry's subtree.
    Skip,
    /// End the walk.
    Stop,
}

/// Where a walk's listings come from.
pub trait Lister {
    /// What names a directory to list.
    type Dir;
    /// One entry of a listing.
    type Item;
    /// What tells a directory listed twice (a tree id); `None` for ones never repeated.
    type Key: Hash + Eq;
    /// The entries of `dir`, in the order they are visited.
    fn list(&mut self, dir: &Self::Dir) -> Result<Vec<Self::Item>>;
    /// An entry's name.
    fn name(item: &Self::Item) -> String;
    /// The directory below an entry, if it has one.
    fn child(item: &Self::Item) -> Option<Self::Dir>;
    /// The repetition key of a directory.
    fn key(dir: &Self::Dir) -> Option<Self::Key>;
}

struct Frame<I> {
    items: std::vec::IntoIter<I>,
    /// Length of this directory's path in the walk's path buffer.
    path_len: usize,
    /// Inside a tree that this walk expanded before.
    repeated: bool,
}

/// Walks depth first from `root`, calling `visit` for every entry (and when a directory
/// is done). Paths start with `prefix` (without a trailing `/`).
pub fn walk<L: Lister>(
    lister: &mut L,
    root: L::Dir,
    prefix: &str,
    limits: WalkLimits,
    visit: &mut dyn FnMut(Visit<'_, L::Item>) -> Result<Flow>,
) -> Result<()> {
    let mut path = prefix.trim_end_matches('/').to_string();
    let mut expanded: HashSet<L::Key> = HashSet::new();
    let mut repeated_entries = 0u64;
    if let Some(k) = L::key(&root) {
        expanded.insert(k);
    }
    let items = lister.list(&root)?;
    let mut distinct_entries = items.len() as u64;
    let mut stack = vec![Frame { items: items.into_iter(), path_len: path.len(), repeated: false }];
    while let Some(frame) = stack.last_mut() {
        let Some(item) = frame.items.next() else {
            let done = stack.pop();
            if let (Some(done), false) = (done, stack.is_empty()) {
                path.truncate(done.path_len);
                if visit(Visit::Leave)? == Flow::Stop {
                    return Ok(());
                }
            }
            continue;
        };
        let (parent_len, parent_repeated) = (frame.path_len, frame.repeated);
        path.truncate(parent_len);
        path.push('/');
        path.push_str(&L::name(&item));
        if path.len() > limits.max_path_bytes {
            return Err(OpError::TreeLimit(format!(
                "a path below {prefix}/ is longer than {} bytes (a crafted or damaged snapshot?)",
                limits.max_path_bytes
            )));
        }
        match visit(Visit::Entry { path: &path, item: &item })? {
            Flow::Stop => return Ok(()),
            Flow::Skip => continue,
            Flow::Continue => {}
        }
        let Some(dir) = L::child(&item) else { continue };
        let key = L::key(&dir);
        let repeated = parent_repeated || key.is_some_and(|k| !expanded.insert(k));
        let items = lister.list(&dir)?;
        if repeated {
            repeated_entries += items.len() as u64;
            let allowed =
                limits.max_repeated_entries.saturating_add(limits.repeat_factor.saturating_mul(distinct_entries));
            if repeated_entries > allowed {
                return Err(OpError::TreeLimit(format!(
                    "the trees below {prefix}/ repeat more than {allowed} entries (a crafted tree graph?)"
                )));
            }
        } else {
            distinct_entries += items.len() as u64;
        }
        stack.push(Frame { items: items.into_iter(), path_len: path.len(), repeated });
    }
    Ok(())
}

/// Snapshot trees as a [`Lister`]: directories are tree ids, entries are nodes.
pub struct Trees<'a> {
    repo: &'a IndexedRepository,
}

impl<'a> Trees<'a> {
    /// Listings read through `repo`.
    pub fn new(repo: &'a IndexedRepository) -> Self {
        Trees { repo }
    }
}

impl Lister for Trees<'_> {
    type Dir = BlobId;
    type Item = Node;
    type Key = BlobId;

    fn list(&mut self, dir: &BlobId) -> Result<Vec<Node>> {
        Ok(self.repo.load_tree(dir)?.nodes)
    }

    fn name(item: &Node) -> String {
        item.name_lossy()
    }

    fn child(item: &Node) -> Option<BlobId> {
        subtree(item)
    }

    fn key(dir: &BlobId) -> Option<BlobId> {
        Some(*dir)
    }
}

/// The subtree of a directory node.
pub fn subtree(n: &Node) -> Option<BlobId> {
    match (n.kind, n.subtree) {
        (NodeKind::Dir, Some(t)) => Some(t),
        _ => None,
    }
}

/// Walks a snapshot tree from `root` with default limits.
pub(crate) fn walk_tree(
    repo: &IndexedRepository,
    root: BlobId,
    prefix: &str,
    visit: &mut dyn FnMut(Visit<'_, Node>) -> Result<Flow>,
) -> Result<()> {
    walk(&mut Trees::new(repo), root, prefix, WalkLimits::default(), visit)
}

/// A computation over trees for [`fold`].
pub(crate) trait TreeFold {
    /// The value of one tree.
    type Value: Clone;
    /// Reads a tree, or gives the value of a tree that cannot be read.
    fn open(&mut self, id: &BlobId) -> Result<std::result::Result<Tree, Self::Value>>;
    /// The value of tree `id` from its nodes and, for each node in order, its subtree's
    /// value (`None` for nodes without one).
    fn combine(&mut self, id: &BlobId, tree: Tree, subtrees: Vec<Option<Self::Value>>) -> Result<Self::Value>;
}

struct FoldFrame<V> {
    id: BlobId,
    tree: Tree,
    next: usize,
    values: Vec<Option<V>>,
}

/// The value of tree `root`, computing each tree's value once: `memo` keeps them across
/// calls (across the snapshots of one command, say).
pub(crate) fn fold<F: TreeFold>(f: &mut F, root: BlobId, memo: &mut HashMap<BlobId, F::Value>) -> Result<F::Value> {
    if let Some(v) = memo.get(&root) {
        return Ok(v.clone());
    }
    let tree = match f.open(&root)? {
        Ok(t) => t,
        Err(v) => {
            memo.insert(root, v.clone());
            return Ok(v);
        }
    };
    let mut stack = vec![FoldFrame { id: root, values: Vec::with_capacity(tree.nodes.len()), tree, next: 0 }];
    while let Some(top) = stack.last_mut() {
        if let Some(node) = top.tree.nodes.get(top.next) {
            top.next += 1;
            let Some(sub) = subtree(node) else {
                top.values.push(None);
                continue;
            };
            if let Some(v) = memo.get(&sub) {
                top.values.push(Some(v.clone()));
                continue;
            }
            match f.open(&sub)? {
                Err(v) => {
                    memo.insert(sub, v.clone());
                    top.values.push(Some(v));
                }
                Ok(tree) => {
                    stack.push(FoldFrame { id: sub, values: Vec::with_capacity(tree.nodes.len()), tree, next: 0 })
                }
            }
            continue;
        }
        let Some(done) = stack.pop() else { break };
        let v = f.combine(&done.id, done.tree, done.values)?;
        memo.insert(done.id, v.clone());
        if let Some(parent) = stack.last_mut() {
            parent.values.push(Some(v));
        }
    }
    // The root was the last frame done.
    memo.get(&root).cloned().ok_or_else(|| OpError::TreeLimit("tree fold ended without its root".into()))
}
