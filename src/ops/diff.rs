//! `diff`: what changed between two snapshots, or between a snapshot and a live directory.
//! Identical subtrees (same tree id) are skipped without being read.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::Result;
use super::fsmeta::{OwnerNames, node_from_metadata};
use crate::format::BlobId;
use crate::format::tree::{ContentItem, Node, NodeKind, Tree};
use crate::repo::{MasterIndex, Repository};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    /// Content differs.
    Modified,
    /// Same content; mode, owner, times or xattrs differ.
    Metadata,
    /// A file became a directory, a symlink a file, …
    TypeChanged,
}

#[derive(Clone, Debug, Serialize)]
pub struct DiffEntry {
    pub change: Change,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DiffSummary {
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub metadata: u64,
    pub type_changed: u64,
    pub bytes_added: u64,
    pub bytes_removed: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DiffReport {
    pub changes: Vec<DiffEntry>,
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

fn same_content(a: &Node, b: &Node) -> bool {
    a.size == b.size && a.content == b.content
}

/// One side of a comparison: a snapshot tree or a live directory.
pub enum Side {
    Tree(Option<BlobId>),
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

pub struct Differ<'a> {
    pub repo: &'a Repository,
    pub index: &'a MasterIndex,
    /// Compare live file contents even when metadata matches.
    pub always_content: bool,
    owners: OwnerNames,
}

impl<'a> Differ<'a> {
    pub fn new(repo: &'a Repository, index: &'a MasterIndex, always_content: bool) -> Self {
        Differ { repo, index, always_content, owners: OwnerNames::default() }
    }

    fn load(&self, t: Option<BlobId>) -> Result<Tree> {
        Ok(match t {
            Some(id) => self.repo.load_tree(self.index, &id)?,
            None => Tree::default(),
        })
    }

    /// Nodes of a live directory, as a backup would record them (without content).
    fn live(&self, dir: &Path) -> Vec<Node> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if let Ok(m) = std::fs::symlink_metadata(&p) {
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
            let mut stored = super::dump::ContentReader::new(self.repo, self.index, node);
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
        let chunker = self.repo.chunker()?;
        let mut items = node.content.iter();
        for chunk in chunker.stream(f) {
            let Ok(chunk) = chunk else { return Ok(false) };
            match items.next() {
                Some(ContentItem::Data { id, .. }) if *id == self.repo.keys().blob_id(&chunk) => {}
                _ => return Ok(false),
            }
        }
        Ok(items.next().is_none())
    }

    pub fn diff(&self, old: Side, new: Side, prefix: &str, out: &mut DiffReport) -> Result<()> {
        if let (Side::Tree(a), Side::Tree(b)) = (&old, &new)
            && a == b
        {
            return Ok(());
        }
        let old_nodes = match &old {
            Side::Tree(t) => self.load(*t)?.nodes,
            Side::Dir(d) => self.live(d),
        };
        let new_nodes = match &new {
            Side::Tree(t) => self.load(*t)?.nodes,
            Side::Dir(d) => self.live(d),
        };
        let mut names: BTreeMap<&[u8], (Option<&Node>, Option<&Node>)> = BTreeMap::new();
        for n in &old_nodes {
            names.entry(&n.name).or_default().0 = Some(n);
        }
        for n in &new_nodes {
            names.entry(&n.name).or_default().1 = Some(n);
        }
        for (name, (a, b)) in names {
            let path = format!("{prefix}/{}", String::from_utf8_lossy(name));
            match (a, b) {
                (None, Some(b)) => {
                    out.push(Change::Added, path.clone(), b.kind, None, Some(b));
                    if b.kind == NodeKind::Dir {
                        self.diff(Side::Tree(None), new.child(name, b), &path, out)?;
                    }
                }
                (Some(a), None) => {
                    out.push(Change::Removed, path.clone(), a.kind, Some(a), None);
                    if a.kind == NodeKind::Dir {
                        self.diff(old.child(name, a), Side::Tree(None), &path, out)?;
                    }
                }
                (Some(a), Some(b)) if a.kind != b.kind => out.push(Change::TypeChanged, path, b.kind, Some(a), Some(b)),
                (Some(a), Some(b)) => {
                    if a.kind == NodeKind::Dir {
                        if !same_metadata(a, b) {
                            out.push(Change::Metadata, path.clone(), b.kind, Some(a), Some(b));
                        }
                        self.diff(old.child(name, a), new.child(name, b), &path, out)?;
                        continue;
                    }
                    let content_same = match &new {
                        Side::Dir(d) if a.kind == NodeKind::File => {
                            let unchanged =
                                a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime && a.inode == b.inode;
                            if unchanged && !self.always_content {
                                true
                            } else {
                                a.size == b.size && self.live_content_matches(&d.join(OsStr::from_bytes(name)), a)?
                            }
                        }
                        _ => same_content(a, b),
                    };
                    if !content_same {
                        out.push(Change::Modified, path, b.kind, Some(a), Some(b));
                    } else if !same_metadata(a, b) {
                        out.push(Change::Metadata, path, b.kind, Some(a), Some(b));
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
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
