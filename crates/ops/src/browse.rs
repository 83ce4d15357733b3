//! The read model behind `vault mount`: every snapshot as a directory tree, with inodes
//! allocated as entries are first seen, and file reads served from a bounded cache of
//! decrypted blobs. No FUSE types here; the adapter lives in the CLI layer.
//!
//! ```text
//! /snapshots/<YYYY-MM-DDTHH:MM:SS>[-N]/…   one directory per snapshot (local time)
//! /ids/<short id>       → ../snapshots/<name>
//! /hosts/<host>/<name>  → ../../snapshots/<name>
//! /tags/<tag>/<name>    → ../../snapshots/<name>
//! /latest               → snapshots/<newest>
//! ```

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use std::time::{Duration, Instant};

use super::error::Result;
use super::select::{self, SnapshotFilter};
use vault_format::BlobId;
use vault_format::pack::BlobKind;
use vault_format::tree::{ContentItem, Node, NodeKind, Timestamp};
use vault_repo::{IndexedRepository, MasterIndex, Repository};

pub(crate) const ROOT: u64 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The type of a mounted entry.
pub enum EntryType {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDev,
    /// A block device.
    BlockDev,
    /// A Unix socket.
    Socket,
}

#[derive(Clone, Debug)]
/// The attributes of a mounted entry.
pub struct Attr {
    /// Inode number within the mount.
    pub ino: u64,
    /// Its type.
    pub kind: EntryType,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
    /// Link count.
    pub nlink: u32,
    /// Device number of a device node.
    pub rdev: u64,
}

#[derive(Clone, Debug)]
enum Kind {
    /// A directory that vault makes up (root, snapshots/, hosts/<h>/ …).
    Virtual,
    Symlink(Vec<u8>),
    Node(Box<Node>),
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    mtime: Timestamp,
    /// Children, once listed.
    children: Option<Vec<(OsString, u64)>>,
    by_name: HashMap<OsString, u64>,
    /// Cumulative end offsets of a file's content items, once opened.
    offsets: Option<Arc<Vec<u64>>>,
}

impl Entry {
    fn new(kind: Kind, mtime: Timestamp) -> Entry {
        Entry { kind, mtime, children: None, by_name: HashMap::new(), offsets: None }
    }
}

struct State {
    entries: Vec<Entry>,
    /// The repository with the index loaded at the last refresh.
    index: IndexedRepository,
    refreshed: Option<Instant>,
    snapshot_count: usize,
}

/// A least-recently-used cache of decrypted blobs, bounded in bytes.
struct BlobCache {
    limit: usize,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    /// Blob → (data, last use).
    map: HashMap<BlobId, (Arc<Vec<u8>>, u64)>,
    bytes: usize,
    tick: u64,
}

impl BlobCache {
    fn get(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        let mut g = self.inner.lock();
        g.tick += 1;
        let tick = g.tick;
        g.map.get_mut(id).map(|e| {
            e.1 = tick;
            e.0.clone()
        })
    }

    fn put(&self, id: BlobId, data: Arc<Vec<u8>>) {
        let mut g = self.inner.lock();
        g.tick += 1;
        let tick = g.tick;
        let len = data.len();
        if g.map.insert(id, (data, tick)).is_none() {
            g.bytes += len;
        }
        while g.bytes > self.limit && g.map.len() > 1 {
            let Some(oldest) = g.map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) else { break };
            if let Some((d, _)) = g.map.remove(&oldest) {
                g.bytes -= d.len();
            }
        }
    }
}

/// The read-only file system `vault mount` shows: snapshots by id, host and tag, their trees loaded on demand, file content read through a bounded blob cache.
pub struct Browser {
    repo: Arc<Repository>,
    state: RwLock<State>,
    cache: BlobCache,
    refresh_every: Duration,
}

fn snapshot_dir_name(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local).format("%Y-%m-%dT%H:%M:%S").to_string()
}

impl Browser {
    /// A browser over `repo`, caching up to `cache_bytes` of blobs and looking for new snapshots every `refresh_every`.
    pub fn new(repo: Arc<Repository>, cache_bytes: usize, refresh_every: Duration) -> Result<Browser> {
        let root = Entry::new(Kind::Virtual, Timestamp::default());
        let b = Browser {
            repo: repo.clone(),
            state: RwLock::new(State {
                entries: vec![root],
                index: IndexedRepository::with_index(repo.clone(), MasterIndex::new()),
                refreshed: None,
                snapshot_count: 0,
            }),
            cache: BlobCache { limit: cache_bytes, inner: Mutex::default() },
            refresh_every,
        };
        b.refresh(true)?;
        Ok(b)
    }

    fn entry_idx(ino: u64) -> usize {
        (ino - 1) as usize
    }

    /// Re-reads the snapshot list (and the index) when it may have changed.
    fn refresh(&self, force: bool) -> Result<()> {
        {
            let st = self.state.read();
            if !force && st.refreshed.is_some_and(|t| t.elapsed() < self.refresh_every) {
                return Ok(());
            }
        }
        let (snaps, _) = select::list(&self.repo, &SnapshotFilter::default())?;
        let mut st = self.state.write();
        st.refreshed = Some(Instant::now());
        if !force && snaps.len() == st.snapshot_count {
            return Ok(());
        }
        st.index = IndexedRepository::load(self.repo.clone())?;
        st.snapshot_count = snaps.len();
        // Keep the inodes of snapshots already seen; rebuild the virtual directories.
        let mut names: Vec<(String, vault_format::SnapshotId, vault_format::snapshot::Snapshot)> = Vec::new();
        let mut used: HashMap<String, usize> = HashMap::new();
        for (id, s) in snaps {
            let base = snapshot_dir_name(select::time_of(&s));
            let n = used.entry(base.clone()).or_insert(0);
            let name = if *n == 0 { base.clone() } else { format!("{base}-{n}") };
            *n += 1;
            names.push((name, id, s));
        }
        let root_children = {
            let mut v = Vec::new();
            for d in ["snapshots", "ids", "hosts", "tags"] {
                v.push((
                    OsString::from(d),
                    Self::child_of(&mut st, ROOT, d, || Entry::new(Kind::Virtual, Timestamp::default())),
                ));
            }
            if let Some((name, _, _)) = names.last() {
                let target = format!("snapshots/{name}").into_bytes();
                let ino = Self::child_of(&mut st, ROOT, "latest", || {
                    Entry::new(Kind::Symlink(Vec::new()), Timestamp::default())
                });
                st.entries[Self::entry_idx(ino)].kind = Kind::Symlink(target);
                v.push((OsString::from("latest"), ino));
            }
            v
        };
        Self::set_children(&mut st, ROOT, root_children.clone());
        let ino_of = |name: &str| root_children.iter().find(|(n, _)| n == name).map(|(_, i)| *i).unwrap_or(ROOT);
        let (snap_dir, ids_dir, hosts_dir, tags_dir) =
            (ino_of("snapshots"), ino_of("ids"), ino_of("hosts"), ino_of("tags"));
        let mut snap_children = Vec::new();
        let mut id_children = Vec::new();
        let mut hosts: HashMap<String, Vec<(OsString, u64)>> = HashMap::new();
        let mut tags: HashMap<String, Vec<(OsString, u64)>> = HashMap::new();
        for (name, id, s) in &names {
            let t = select::time_of(s);
            let mtime = Timestamp { sec: t.timestamp(), nsec: t.timestamp_subsec_nanos() };
            let tree = s.tree;
            let ino = Self::child_of(&mut st, snap_dir, name, || {
                let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
                n.mode = 0o755;
                n.mtime = mtime;
                n.subtree = Some(tree);
                Entry::new(Kind::Node(Box::new(n)), mtime)
            });
            snap_children.push((OsString::from(name), ino));
            let link = |st: &mut State, parent: u64, up: &str| {
                let target = format!("{up}snapshots/{name}").into_bytes();
                Self::child_of(st, parent, &id.short(), || Entry::new(Kind::Symlink(target.clone()), mtime))
            };
            id_children.push((OsString::from(id.short()), link(&mut st, ids_dir, "../")));
            let host_dir = Self::child_of(&mut st, hosts_dir, &s.hostname, || Entry::new(Kind::Virtual, mtime));
            let l = Self::child_of(&mut st, host_dir, name, || {
                Entry::new(Kind::Symlink(format!("../../snapshots/{name}").into_bytes()), mtime)
            });
            hosts.entry(s.hostname.clone()).or_default().push((OsString::from(name), l));
            for tag in &s.tags {
                let tag_dir = Self::child_of(&mut st, tags_dir, tag, || Entry::new(Kind::Virtual, mtime));
                let l = Self::child_of(&mut st, tag_dir, name, || {
                    Entry::new(Kind::Symlink(format!("../../snapshots/{name}").into_bytes()), mtime)
                });
                tags.entry(tag.clone()).or_default().push((OsString::from(name), l));
            }
        }
        Self::set_children(&mut st, snap_dir, snap_children);
        Self::set_children(&mut st, ids_dir, id_children);
        for (dir, map) in [(hosts_dir, hosts), (tags_dir, tags)] {
            let mut list = Vec::new();
            for (name, children) in map {
                let ino = Self::child_of(&mut st, dir, &name, || Entry::new(Kind::Virtual, Timestamp::default()));
                Self::set_children(&mut st, ino, children);
                list.push((OsString::from(name), ino));
            }
            Self::set_children(&mut st, dir, list);
        }
        Ok(())
    }

    /// The inode of `parent`/`name`, created by `make` when new.
    fn child_of(st: &mut State, parent: u64, name: &str, make: impl FnOnce() -> Entry) -> u64 {
        let key = OsString::from(name);
        if let Some(&ino) = st.entries[Self::entry_idx(parent)].by_name.get(&key) {
            return ino;
        }
        st.entries.push(make());
        let ino = st.entries.len() as u64;
        st.entries[Self::entry_idx(parent)].by_name.insert(key, ino);
        ino
    }

    fn set_children(st: &mut State, ino: u64, mut children: Vec<(OsString, u64)>) {
        children.sort();
        let e = &mut st.entries[Self::entry_idx(ino)];
        e.by_name = children.iter().cloned().collect();
        e.children = Some(children);
    }

    fn is_top_level(ino: u64, st: &State) -> bool {
        ino == ROOT || st.entries[Self::entry_idx(ROOT)].by_name.values().any(|&i| i == ino)
    }

    /// Loads a snapshot directory's entries on first use.
    fn ensure_children(&self, ino: u64) -> Result<bool> {
        let tree = {
            let st = self.state.read();
            let Some(e) = st.entries.get(Self::entry_idx(ino)) else { return Ok(false) };
            if e.children.is_some() {
                return Ok(true);
            }
            match &e.kind {
                Kind::Node(n) if n.kind == NodeKind::Dir => match n.subtree {
                    Some(t) => (t, st.index.clone()),
                    None => return Ok(false),
                },
                Kind::Virtual => return Ok(true),
                _ => return Ok(false),
            }
        };
        let t = tree.1.load_tree(&tree.0)?;
        let mut st = self.state.write();
        if st.entries[Self::entry_idx(ino)].children.is_some() {
            return Ok(true);
        }
        let mut children = Vec::with_capacity(t.nodes.len());
        for n in t.nodes {
            let name = OsStr::from_bytes(&n.name).to_os_string();
            let mtime = n.mtime;
            st.entries.push(Entry::new(Kind::Node(Box::new(n)), mtime));
            children.push((name, st.entries.len() as u64));
        }
        Self::set_children(&mut st, ino, children);
        Ok(true)
    }

    fn attr_of(ino: u64, e: &Entry) -> Attr {
        match &e.kind {
            Kind::Virtual => Attr {
                ino,
                kind: EntryType::Dir,
                size: 0,
                mode: 0o555,
                uid: 0,
                gid: 0,
                mtime: e.mtime,
                ctime: e.mtime,
                nlink: 2,
                rdev: 0,
            },
            Kind::Symlink(t) => Attr {
                ino,
                kind: EntryType::Symlink,
                size: t.len() as u64,
                mode: 0o777,
                uid: 0,
                gid: 0,
                mtime: e.mtime,
                ctime: e.mtime,
                nlink: 1,
                rdev: 0,
            },
            Kind::Node(n) => Attr {
                ino,
                kind: match n.kind {
                    NodeKind::Dir => EntryType::Dir,
                    NodeKind::File => EntryType::File,
                    NodeKind::Symlink => EntryType::Symlink,
                    NodeKind::Fifo => EntryType::Fifo,
                    NodeKind::CharDev => EntryType::CharDev,
                    NodeKind::BlockDev => EntryType::BlockDev,
                    NodeKind::Socket => EntryType::Socket,
                },
                size: match n.kind {
                    NodeKind::File => n.size,
                    NodeKind::Symlink => n.target.len() as u64,
                    _ => 0,
                },
                mode: n.mode,
                uid: n.uid,
                gid: n.gid,
                mtime: n.mtime,
                ctime: n.ctime,
                nlink: if n.kind == NodeKind::Dir { 2 } else { n.links.clamp(1, u64::from(u32::MAX)) as u32 },
                rdev: n.rdev,
            },
        }
    }

    /// Makes a directory's children available: the top-level views first re-read the
    /// snapshot list when it may have changed, snapshot directories load their tree.
    fn open_dir(&self, ino: u64) -> Result<bool> {
        let top = Self::is_top_level(ino, &self.state.read());
        if top {
            self.refresh(false)?;
        }
        self.ensure_children(ino)
    }

    /// The attributes of inode `ino`, if it exists.
    pub fn attr(&self, ino: u64) -> Option<Attr> {
        let st = self.state.read();
        st.entries.get(Self::entry_idx(ino)).map(|e| Self::attr_of(ino, e))
    }

    /// The entry `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Option<Attr>> {
        if parent == 0 {
            return Ok(None);
        }
        if !self.open_dir(parent)? {
            return Ok(None);
        }
        let st = self.state.read();
        let Some(&ino) = st.entries.get(Self::entry_idx(parent)).and_then(|e| e.by_name.get(name)) else {
            return Ok(None);
        };
        Ok(Some(Self::attr_of(ino, &st.entries[Self::entry_idx(ino)])))
    }

    /// The entries of a directory: (inode, type, name).
    pub fn readdir(&self, ino: u64) -> Result<Option<Vec<(u64, EntryType, OsString)>>> {
        if ino == 0 {
            return Ok(None);
        }
        if !self.open_dir(ino)? {
            return Ok(None);
        }
        let st = self.state.read();
        let Some(children) = st.entries.get(Self::entry_idx(ino)).and_then(|e| e.children.as_ref()) else {
            return Ok(None);
        };
        Ok(Some(
            children
                .iter()
                .map(|(name, c)| (*c, Self::attr_of(*c, &st.entries[Self::entry_idx(*c)]).kind, name.clone()))
                .collect(),
        ))
    }

    /// The target of symlink `ino`.
    pub fn readlink(&self, ino: u64) -> Option<Vec<u8>> {
        let st = self.state.read();
        match &st.entries.get(Self::entry_idx(ino))?.kind {
            Kind::Symlink(t) => Some(t.clone()),
            Kind::Node(n) if n.kind == NodeKind::Symlink => Some(n.target.clone()),
            _ => None,
        }
    }

    /// The extended attributes of `ino`, as name and value.
    pub fn xattrs(&self, ino: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let st = self.state.read();
        match st.entries.get(Self::entry_idx(ino)).map(|e| &e.kind) {
            Some(Kind::Node(n)) => n.xattrs.clone(),
            _ => Vec::new(),
        }
    }

    /// Reads `size` bytes at `offset` of a file; fetches only the blobs that overlap.
    /// A data blob; when its pack has vanished (a prune moved the blob after the index was
    /// loaded), the index is loaded again and the read retried once.
    fn read_blob(&self, index: &IndexedRepository, id: &BlobId) -> Result<Vec<u8>> {
        match index.read_blob(BlobKind::Data, id) {
            Err(vault_repo::RepoError::Backend(e)) if e.kind == vault_repo::backend::BackendErrorKind::NotFound => {
                let fresh = IndexedRepository::load(self.repo.clone())?;
                self.state.write().index = fresh.clone();
                Ok(fresh.read_blob(BlobKind::Data, id)?)
            }
            r => Ok(r?),
        }
    }

    /// Up to `size` bytes of file `ino` from `offset`; `None` if `ino` is not a file.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Option<Vec<u8>>> {
        let (node, offsets, index) = {
            let mut st = self.state.write();
            let index = st.index.clone();
            let Some(e) = st.entries.get_mut(Self::entry_idx(ino)) else { return Ok(None) };
            let Kind::Node(n) = &e.kind else { return Ok(None) };
            if n.kind != NodeKind::File {
                return Ok(None);
            }
            let n = n.clone();
            let offsets = e
                .offsets
                .get_or_insert_with(|| {
                    let mut end = 0u64;
                    Arc::new(
                        n.content
                            .iter()
                            .map(|c| {
                                end += c.len();
                                end
                            })
                            .collect(),
                    )
                })
                .clone();
            (n, offsets, index)
        };
        let end = (offset + u64::from(size)).min(node.size);
        if offset >= end {
            return Ok(Some(Vec::new()));
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        // First item whose end lies past `offset`.
        let mut i = offsets.partition_point(|&e| e <= offset);
        let mut pos = offset;
        while pos < end && i < node.content.len() {
            let item_start = if i == 0 { 0 } else { offsets[i - 1] };
            let item_end = offsets[i];
            let from = (pos - item_start) as usize;
            let to = (end.min(item_end) - item_start) as usize;
            match &node.content[i] {
                ContentItem::Hole { .. } => out.resize(out.len() + (to - from), 0),
                ContentItem::Data { id, length } => {
                    let blob = match self.cache.get(id) {
                        Some(b) => b,
                        None => {
                            let b = self.read_blob(&index, id)?;
                            vault_repo::indexed::check_item_length(id, &b, *length, None)?;
                            let b = Arc::new(b);
                            self.cache.put(*id, b.clone());
                            b
                        }
                    };
                    out.extend_from_slice(blob.get(from..to).unwrap_or_default());
                }
            }
            pos = item_start + to as u64;
            i += 1;
        }
        Ok(Some(out))
    }
}
