//! `diff`: what changed between two snapshots, or between a snapshot and a live directory.
//! Identical subtrees (same tree id) are skipped without being read.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::backup::filter::Filters;
use super::error::Result;
use super::fsmeta::{OwnerNames, node_from_metadata};
use vault_format::BlobId;
use vault_format::snapshot::SnapshotFilters;
use vault_format::tree::{ContentItem, Node, NodeKind};
use vault_repo::IndexedRepository;

use super::walk::{Flow, Lister, Visit, WalkLimits, walk};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
/// How an entry differs between two snapshots.
pub enum Change {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// Content differs.
    Modified,
    /// Same content; mode, owner, times or xattrs differ.
    Metadata,
    /// A file became a directory, a symlink a file, …
    TypeChanged,
}

#[derive(Clone, Debug, Serialize)]
/// One changed entry.
pub struct DiffEntry {
    /// How it changed.
    pub change: Change,
    /// Its path.
    pub path: String,
    #[serde(rename = "type")]
    /// Its type (in the second snapshot, if there).
    pub kind: NodeKind,
    /// Size in the first snapshot.
    pub old_size: Option<u64>,
    /// Size in the second snapshot.
    pub new_size: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
/// Counts of a diff.
pub struct DiffSummary {
    /// Entries added.
    pub added: u64,
    /// Entries removed.
    pub removed: u64,
    /// Files with other content.
    pub modified: u64,
    /// Entries with other metadata only.
    pub metadata: u64,
    /// Entries that changed type.
    pub type_changed: u64,
    /// Bytes of added files.
    pub bytes_added: u64,
    /// Bytes of removed files.
    pub bytes_removed: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
/// What `diff` found.
pub struct DiffReport {
    /// Changed entries, in path order.
    pub changes: Vec<DiffEntry>,
    /// Their counts.
    pub summary: DiffSummary,
}

impl DiffReport {
    fn push(&mut self, change: Change, path: String, kind: NodeKind, old: Option<&Node>, new: Option<&Node>) {
        let size = |n: Option<&Node>| n.map(|n| n.size);
        let s = &mut self.summary;
        match change {
            Change::Added => s.added += 1,
            Change::Removed => s.removed += 1,
            Change::Modified => s.modified += 1,
            Change::Metadata => s.metadata += 1,
            Change::TypeChanged => s.type_changed += 1,
        }
        if change != Change::Metadata {
            s.bytes_added += size(new).unwrap_or(0);
            s.bytes_removed += size(old).unwrap_or(0);
        }
        self.changes.push(DiffEntry { change, path, kind, old_size: size(old), new_size: size(new) });
    }
}

fn same_metadata(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.xattrs == b.xattrs
        && a.target == b.target
        && a.rdev == b.rdev
}

/// One side of a comparison: a snapshot tree or a live directory.
#[derive(Clone, Debug)]
pub enum Side {
    /// A tree (`None`: a side where the directory does not exist).
    Tree(Option<BlobId>),
    /// A live directory.
    Dir(PathBuf),
}

impl Side {
    /// The same side one level down, at `name` (node `n` on this side).
    fn child(&self, name: &[u8], n: &Node) -> Side {
        match self {
            Side::Tree(_) => Side::Tree(n.subtree),
            Side::Dir(d) => Side::Dir(d.join(OsStr::from_bytes(name))),
        }
    }
}

/// One name of a directory compared on both sides.
struct Pair {
    name: Vec<u8>,
    old: Option<Node>,
    new: Option<Node>,
    /// The live file behind `new`, when the new side is a directory.
    live: Option<PathBuf>,
    /// Both sides one level down, when the walk should go there.
    below: Option<(Side, Side)>,
}

/// Compares snapshot trees and live directories.
pub struct Differ<'a> {
    repo: &'a IndexedRepository,
    /// Compare live file contents even when metadata matches.
    always_content: bool,
    owners: OwnerNames,
    /// What the snapshot's backup left out of live directories, and the directory live
    /// paths are relative to (patterns match absolute paths, as in backup).
    live_filters: Option<(Filters, PathBuf)>,
}

struct PairLister<'a, 'b> {
    differ: &'b Differ<'a>,
}

impl Lister for PairLister<'_, '_> {
    type Dir = (Side, Side);
    type Item = Pair;
    type Key = (Option<BlobId>, Option<BlobId>);

    fn list(&mut self, (old, new): &(Side, Side)) -> Result<Vec<Pair>> {
        // Identical subtrees (same tree id) are skipped without being read.
        if let (Side::Tree(a), Side::Tree(b)) = (old, new)
            && a == b
        {
            return Ok(Vec::new());
        }
        let d = self.differ;
        let mut names: BTreeMap<Vec<u8>, (Option<Node>, Option<Node>)> = BTreeMap::new();
        for n in d.nodes(old)? {
            let slot = names.entry(n.name.clone()).or_default();
            slot.0 = Some(n);
        }
        for n in d.nodes(new)? {
            let slot = names.entry(n.name.clone()).or_default();
            slot.1 = Some(n);
        }
        Ok(names
            .into_iter()
            .map(|(name, (a, b))| {
                let below = match (&a, &b) {
                    (None, Some(b)) if b.kind == NodeKind::Dir => Some((Side::Tree(None), new.child(&name, b))),
                    (Some(a), None) if a.kind == NodeKind::Dir => Some((old.child(&name, a), Side::Tree(None))),
                    (Some(a), Some(b)) if a.kind == NodeKind::Dir && b.kind == NodeKind::Dir => {
                        Some((old.child(&name, a), new.child(&name, b)))
                    }
                    _ => None,
                };
                let live = match new {
                    Side::Dir(dir) => Some(dir.join(OsStr::from_bytes(&name))),
                    Side::Tree(_) => None,
                };
                Pair { name, old: a, new: b, live, below }
            })
            .collect())
    }

    fn name(item: &Pair) -> String {
        String::from_utf8_lossy(&item.name).into_owned()
    }

    fn child(item: &Pair) -> Option<(Side, Side)> {
        item.below.clone()
    }

    fn key((old, new): &(Side, Side)) -> Option<(Option<BlobId>, Option<BlobId>)> {
        match (old, new) {
            (Side::Tree(a), Side::Tree(b)) => Some((*a, *b)),
            _ => None,
        }
    }
}

impl<'a> Differ<'a> {
    /// A differ reading trees through `repo`; `always_content` compares live files'
    /// contents even when their metadata matches.
    pub fn new(repo: &'a IndexedRepository, always_content: bool) -> Self {
        Differ { repo, always_content, owners: OwnerNames::default(), live_filters: None }
    }

    /// Leaves out of live directories what a backup with `filters` would have left out
    /// (`diff SNAP DIR` with the snapshot's recorded filters).
    pub fn with_live_filters(mut self, filters: &SnapshotFilters) -> Result<Self> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        self.live_filters = Some((Filters::new(filters)?, cwd));
        Ok(self)
    }

    fn nodes(&self, side: &Side) -> Result<Vec<Node>> {
        Ok(match side {
            Side::Tree(Some(id)) => self.repo.load_tree(id)?.nodes,
            Side::Tree(None) => Vec::new(),
            Side::Dir(d) => self.live(d),
        })
    }

    /// Nodes of a live directory, as a backup would record them (without content).
    fn live(&self, dir: &Path) -> Vec<Node> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if let Ok(m) = std::fs::symlink_metadata(&p) {
                    if let Some((f, cwd)) = &self.live_filters
                        && (f.excludes_path(&crate::source::absolute(&p, cwd)) || f.excludes_entry(&p, &m))
                    {
                        continue;
                    }
                    let mut n = node_from_metadata(&e.file_name(), &p, &m, &self.owners);
                    if n.kind == NodeKind::Symlink {
                        n.target =
                            std::fs::read_link(&p).map(|t| t.into_os_string().into_encoded_bytes()).unwrap_or_default();
                    }
                    out.push(n);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Whether a live file's bytes match a snapshot node's content. Files without holes
    /// are compared by chunk ids (no download); sparse ones byte by byte.
    fn live_content_matches(&self, path: &Path, node: &Node) -> Result<bool> {
        let Ok(f) = std::fs::File::open(path) else { return Ok(false) };
        if node.content.iter().any(|c| matches!(c, ContentItem::Hole { .. })) {
            let mut live = std::io::BufReader::new(f);
            let mut stored = super::dump::ContentReader::new(self.repo, node);
            let (mut a, mut b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
            loop {
                let n = read_full(&mut stored, &mut a)?;
                let m = read_full(&mut live, &mut b)?;
                if n != m || a[..n] != b[..m] {
                    return Ok(false);
                }
                if n == 0 {
                    return Ok(true);
                }
            }
        }
        let chunker = self.repo.repo().chunker()?;
        let mut items = node.content.iter();
        for chunk in chunker.stream(f) {
            let Ok(chunk) = chunk else { return Ok(false) };
            match items.next() {
                Some(ContentItem::Data { id, .. }) if *id == self.repo.blob_id(&chunk) => {}
                _ => return Ok(false),
            }
        }
        Ok(items.next().is_none())
    }

    /// Whether a file's content is the same on both sides.
    fn same_content(&self, a: &Node, b: &Node, live: Option<&Path>) -> Result<bool> {
        match live {
            Some(path) if a.kind == NodeKind::File => {
                if b.same_file_stat(a) && !self.always_content {
                    Ok(true)
                } else {
                    Ok(a.size == b.size && self.live_content_matches(path, a)?)
                }
            }
            _ => Ok(a.size == b.size && a.content == b.content),
        }
    }

    /// Adds to `out` what changed from `old` to `new`; paths start with `prefix`.
    pub fn diff(&self, old: Side, new: Side, prefix: &str, out: &mut DiffReport) -> Result<()> {
        let mut lister = PairLister { differ: self };
        walk(&mut lister, (old, new), prefix, WalkLimits::default(), &mut |v| {
            let Visit::Entry { path, item: p } = v else { return Ok(Flow::Continue) };
            let path = path.to_string();
            match (&p.old, &p.new) {
                (None, Some(b)) => out.push(Change::Added, path, b.kind, None, Some(b)),
                (Some(a), None) => out.push(Change::Removed, path, a.kind, Some(a), None),
                (Some(a), Some(b)) if a.kind != b.kind => out.push(Change::TypeChanged, path, b.kind, Some(a), Some(b)),
                (Some(a), Some(b)) if a.kind == NodeKind::Dir => {
                    if !same_metadata(a, b) {
                        out.push(Change::Metadata, path, b.kind, Some(a), Some(b));
                    }
                }
                (Some(a), Some(b)) => {
                    if !self.same_content(a, b, p.live.as_deref())? {
                        out.push(Change::Modified, path, b.kind, Some(a), Some(b));
                    } else if !same_metadata(a, b) {
                        out.push(Change::Metadata, path, b.kind, Some(a), Some(b));
                    }
                }
                (None, None) => {}
            }
            Ok(Flow::Continue)
        })
    }
}

fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(super::error::OpError::Output(e)),
        }
    }
    Ok(n)
}
