//! `backup`: walk the sources, store new data, write a snapshot.
//!
//! The walk is parallel (rayon over the entries of each directory, recursively). A file
//! whose size, mtime, ctime and inode match its node in the parent snapshot is not read:
//! its content list is reused. Other files are chunked in a stream; each batch of chunks
//! is hashed, compressed and sealed in parallel. Commit order: packs → index → snapshot.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use super::error::{OpError, Result};
use super::fsmeta::{OwnerNames, node_from_metadata};
use super::pattern::PatternSet;
use super::progress::Progress;
use super::select;
use super::source::{self, VirtualDir, VirtualNode};
use crate::format::blob::Compression;
use crate::format::chunker::Chunker;
use crate::format::pack::BlobKind;
use crate::format::snapshot::{Snapshot, SnapshotSummary};
use crate::format::tree::{ContentItem, Node, NodeKind, Tree};
use crate::format::{BlobId, SnapshotId};
use crate::repo::backend::RequestStats;
use crate::repo::{MasterIndex, PackWriter, Repository, WriterStats};

/// Chunks hashed and sealed together in parallel; bounds memory per large file.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest snapshot of the same host and the same paths.
    Auto,
    None,
    Snapshot(SnapshotId),
}

#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub sources: Vec<PathBuf>,
    pub host: String,
    pub tags: Vec<String>,
    pub excludes: Vec<String>,
    pub one_file_system: bool,
    pub parent: ParentChoice,
    /// Count files and bytes beside the backup, for a progress bar with an ETA.
    pub scan_totals: bool,
    /// Compression of new data for this backup (`None`: the repository's default).
    pub compression: Option<Compression>,
}

/// A source entry that could not be backed up. The backup goes on without it.
#[derive(Clone, Debug, Serialize)]
pub struct SourceProblem {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Debug)]
pub struct BackupReport {
    pub snapshot_id: SnapshotId,
    pub snapshot: Snapshot,
    pub parent: Option<SnapshotId>,
    pub problems: Vec<SourceProblem>,
    /// Damaged index files that were skipped (their blobs were stored again if needed).
    pub index_problems: Vec<String>,
    pub writer: WriterStats,
    pub requests: RequestStats,
    pub duration: Duration,
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    other: AtomicU64,
    bytes_read: AtomicU64,
    total_bytes: AtomicU64,
}

struct Ctx<'a> {
    repo: &'a Repository,
    index: Arc<MasterIndex>,
    writer: PackWriter,
    chunker: Chunker,
    owners: OwnerNames,
    excludes: PatternSet,
    one_file_system: bool,
    progress: &'a dyn Progress,
    problems: Mutex<Vec<SourceProblem>>,
    counters: Counters,
}

impl Ctx<'_> {
    fn problem(&self, path: &Path, message: String) {
        self.progress.warn(path, &message);
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SourceProblem { path: path.to_path_buf(), message });
    }

    fn parent_subtree(&self, node: Option<&Node>) -> Option<Tree> {
        let id = node.filter(|n| n.kind == NodeKind::Dir)?.subtree?;
        // An unreadable parent tree only costs speed: the directory is read in full.
        self.repo.load_tree(&self.index, &id).ok()
    }

    fn save_tree(&self, mut tree: Tree) -> Result<BlobId> {
        tree.canonicalize();
        let bytes = tree.encode();
        let id = self.repo.keys().blob_id(&bytes);
        self.writer.add(BlobKind::Tree, id, &bytes)?;
        Ok(id)
    }
}

pub fn backup(repo: Arc<Repository>, opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupReport> {
    let started = Instant::now();
    let cwd = std::env::current_dir()
        .map_err(|e| OpError::Source { path: ".".into(), reason: format!("cannot read the current directory: {e}") })?;
    if opts.sources.is_empty() {
        return Err(OpError::Source { path: PathBuf::new(), reason: "no source paths given".into() });
    }
    for s in &opts.sources {
        if let Err(e) = std::fs::symlink_metadata(s) {
            return Err(OpError::Source { path: s.clone(), reason: e.to_string() });
        }
    }
    let excludes = PatternSet::new(&opts.excludes)?;
    let vroot = source::build(&opts.sources, &cwd)?;
    let mut abs_paths: Vec<String> =
        opts.sources.iter().map(|s| source::absolute(s, &cwd).to_string_lossy().into_owned()).collect();
    abs_paths.sort();
    abs_paths.dedup();

    let (index, bad_index) = repo.load_index()?;
    let index = Arc::new(index);
    let parent = match &opts.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(id) => Some((*id, repo.load_snapshot(id)?)),
        ParentChoice::Auto => {
            let (snaps, _) = repo.load_all_snapshots()?;
            select::newest(snaps.into_iter().filter(|(_, s)| s.hostname == opts.host && s.paths == abs_paths))
        }
    };
    let parent_root = match &parent {
        Some((_, s)) => repo.load_tree(&index, &s.tree).ok(),
        None => None,
    };

    let ctx = Ctx {
        repo: &repo,
        index: index.clone(),
        writer: match opts.compression {
            Some(c) => PackWriter::new(repo.clone(), index)?.with_compression(c),
            None => PackWriter::new(repo.clone(), index)?,
        },
        chunker: repo.chunker()?,
        owners: OwnerNames::default(),
        excludes,
        one_file_system: opts.one_file_system,
        progress,
        problems: Mutex::default(),
        counters: Counters::default(),
    };

    let stop_scan = AtomicBool::new(false);
    let tree_id = std::thread::scope(|scope| {
        if opts.scan_totals {
            let (excludes, stop) = (&ctx.excludes, &stop_scan);
            let roots: Vec<PathBuf> = opts.sources.iter().map(|s| source::absolute(s, &cwd)).collect();
            scope.spawn(move || scan_totals(&roots, excludes, opts.one_file_system, progress, stop));
        }
        let r = archive_virtual(&ctx, &vroot, parent_root.as_ref());
        stop_scan.store(true, Ordering::Relaxed);
        r
    })?;

    let Ctx { writer, counters, problems, owners, .. } = ctx;
    let writer_stats = writer.finish()?;
    let problems = problems.into_inner().unwrap_or_else(|p| p.into_inner());
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let summary = SnapshotSummary {
        files_new: c(&counters.files_new),
        files_changed: c(&counters.files_changed),
        files_unchanged: c(&counters.files_unchanged),
        dirs: c(&counters.dirs),
        other: c(&counters.other),
        errors: problems.len() as u64,
        bytes_read: c(&counters.bytes_read),
        total_bytes: c(&counters.total_bytes),
        blobs_added: writer_stats.blobs_added,
        bytes_added: writer_stats.bytes_added,
        stored_bytes_added: writer_stats.stored_bytes_added,
    };
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let snapshot = Snapshot {
        version: 1,
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        tree: tree_id,
        paths: abs_paths,
        hostname: opts.host.clone(),
        username: String::from_utf8_lossy(&owners.user(uid)).into_owned(),
        uid,
        gid,
        tags: opts.tags.clone(),
        parent: parent.as_ref().map(|(id, _)| *id),
        program_version: concat!("vault ", env!("CARGO_PKG_VERSION")).to_string(),
        summary: Some(summary),
        original: None,
    };
    let snapshot_id = repo.save_snapshot(&snapshot)?;
    Ok(BackupReport {
        snapshot_id,
        snapshot,
        parent: parent.map(|(id, _)| id),
        problems,
        index_problems: bad_index.iter().map(ToString::to_string).collect(),
        writer: writer_stats,
        requests: repo.backend().stats(),
        duration: started.elapsed(),
    })
}

fn archive_virtual(ctx: &Ctx<'_>, vdir: &VirtualDir, parent: Option<&Tree>) -> Result<BlobId> {
    let mut nodes: Vec<Node> = vdir
        .children
        .par_iter()
        .map(|(name, child)| -> Result<Option<Node>> {
            let parent_node = parent.and_then(|t| t.find(name.as_bytes()));
            match child {
                VirtualNode::Source(path) => {
                    let dev = std::fs::symlink_metadata(path).map(|m| m.dev()).unwrap_or(0);
                    archive_entry(ctx, path, name, parent_node, dev)
                }
                VirtualNode::Dir(sub) => {
                    let mut node = match sub.meta_path.as_deref().map(|p| (p, std::fs::symlink_metadata(p))) {
                        Some((p, Ok(m))) if m.is_dir() => node_from_metadata(name, p, &m, &ctx.owners),
                        _ => {
                            let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
                            n.mode = 0o755;
                            n
                        }
                    };
                    let ptree = ctx.parent_subtree(parent_node);
                    node.subtree = Some(archive_virtual(ctx, sub, ptree.as_ref())?);
                    ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
                    Ok(Some(node))
                }
            }
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    if let Some(dir) = &vdir.contents {
        let dev = std::fs::symlink_metadata(dir).map(|m| m.dev()).unwrap_or(0);
        let extra = archive_dir_entries(ctx, dir, parent, dev)?;
        nodes.extend(extra.into_iter().filter(|n| !vdir.children.contains_key(OsStr::from_bytes(&n.name))));
    }
    ctx.save_tree(Tree { nodes })
}

fn archive_dir_entries(ctx: &Ctx<'_>, dir: &Path, parent: Option<&Tree>, dev: u64) -> Result<Vec<Node>> {
    let names: Vec<OsString> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| match e {
                Ok(e) => Some(e.file_name()),
                Err(err) => {
                    ctx.problem(dir, format!("cannot list directory: {err}"));
                    None
                }
            })
            .collect(),
        Err(e) => {
            ctx.problem(dir, format!("cannot list directory: {e}"));
            Vec::new()
        }
    };
    Ok(names
        .par_iter()
        .map(|name| archive_entry(ctx, &dir.join(name), name, parent.and_then(|t| t.find(name.as_bytes())), dev))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect())
}

fn archive_entry(ctx: &Ctx<'_>, path: &Path, name: &OsStr, parent: Option<&Node>, dev: u64) -> Result<Option<Node>> {
    if ctx.excludes.matches(path) {
        return Ok(None);
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            ctx.problem(path, format!("cannot stat: {e}"));
            return Ok(None);
        }
    };
    let mut node = node_from_metadata(name, path, &meta, &ctx.owners);
    match node.kind {
        NodeKind::Dir => {
            let entries = if ctx.one_file_system && meta.dev() != dev {
                // A mount point: kept as an empty directory so that restore recreates it.
                Vec::new()
            } else {
                let ptree = ctx.parent_subtree(parent);
                archive_dir_entries(ctx, path, ptree.as_ref(), dev)?
            };
            node.subtree = Some(ctx.save_tree(Tree { nodes: entries })?);
            ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
        }
        NodeKind::File => return archive_file(ctx, path, node, &meta, parent),
        NodeKind::Symlink => match std::fs::read_link(path) {
            Ok(t) => {
                node.target = t.into_os_string().into_vec();
                ctx.counters.other.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                ctx.problem(path, format!("cannot read symlink: {e}"));
                return Ok(None);
            }
        },
        _ => {
            ctx.counters.other.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(Some(node))
}

use std::os::unix::ffi::OsStringExt;

fn unchanged(node: &Node, parent: &Node) -> bool {
    parent.kind == NodeKind::File
        && parent.size == node.size
        && parent.mtime == node.mtime
        && parent.ctime == node.ctime
        && parent.inode == node.inode
}

fn archive_file(
    ctx: &Ctx<'_>,
    path: &Path,
    mut node: Node,
    meta: &Metadata,
    parent: Option<&Node>,
) -> Result<Option<Node>> {
    if let Some(p) = parent
        && unchanged(&node, p)
        && p.content.iter().all(|c| match c {
            ContentItem::Data { id, .. } => ctx.writer.has(BlobKind::Data, id),
            ContentItem::Hole { .. } => true,
        })
    {
        node.content = p.content.clone();
        ctx.counters.files_unchanged.fetch_add(1, Ordering::Relaxed);
        ctx.counters.total_bytes.fetch_add(node.size, Ordering::Relaxed);
        ctx.progress.add_files(1);
        ctx.progress.add_bytes(node.size);
        return Ok(Some(node));
    }
    let file = match open_for_reading(path) {
        Ok(f) => f,
        Err(e) => {
            ctx.problem(path, format!("cannot open: {e}"));
            return Ok(None);
        }
    };
    let sparse = meta.blocks() * 512 < meta.len();
    match read_content(ctx, &file, meta.len(), sparse)? {
        Ok((content, size)) => {
            node.content = content;
            node.size = size;
        }
        Err(e) => {
            ctx.problem(path, format!("cannot read: {e}"));
            return Ok(None);
        }
    }
    let counter = if parent.is_some_and(|p| p.kind == NodeKind::File) {
        &ctx.counters.files_changed
    } else {
        &ctx.counters.files_new
    };
    counter.fetch_add(1, Ordering::Relaxed);
    ctx.counters.total_bytes.fetch_add(node.size, Ordering::Relaxed);
    ctx.progress.add_files(1);
    Ok(Some(node))
}

fn open_for_reading(path: &Path) -> io::Result<File> {
    let open = |flags| OpenOptions::new().read(true).custom_flags(flags).open(path);
    // O_NOATIME keeps backups from touching access times; only the owner (or root) may
    // use it, so fall back without it.
    match open(libc::O_NOFOLLOW | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_NOFOLLOW),
        r => r,
    }
}

/// Data extents of a sparse file as (offset, length), from SEEK_DATA/SEEK_HOLE.
fn data_extents(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    let end = size as i64;
    while pos < end {
        // SAFETY: lseek on a valid, owned file descriptor has no memory-safety concerns.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break;
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let hole = hole.min(end);
        if hole > data {
            out.push((data as u64, (hole - data) as u64));
        }
        pos = hole;
    }
    Ok(out)
}

/// Outer error: the repository failed (fatal). Inner error: the file could not be read
/// (reported, the backup goes on).
#[allow(clippy::type_complexity)]
fn read_content(ctx: &Ctx<'_>, file: &File, size: u64, sparse: bool) -> Result<io::Result<(Vec<ContentItem>, u64)>> {
    let extents = if sparse {
        match data_extents(file, size) {
            Ok(e) => e,
            Err(_) => vec![(0, u64::MAX)],
        }
    } else {
        vec![(0, u64::MAX)]
    };
    let mut items = Vec::new();
    let mut pos = 0u64;
    for (start, len) in extents {
        if start > pos {
            items.push(ContentItem::Hole { length: start - pos });
        }
        let mut f = file;
        if let Err(e) = f.seek(SeekFrom::Start(start)) {
            return Ok(Err(e));
        }
        let mut stream = ctx.chunker.stream_sized(f.take(len), len.min(size));
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut read = 0u64;
        loop {
            let chunk = match stream.next_chunk() {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let done = chunk.is_none();
            if let Some(c) = chunk {
                read += c.len() as u64;
                ctx.counters.bytes_read.fetch_add(c.len() as u64, Ordering::Relaxed);
                ctx.progress.add_bytes(c.len() as u64);
                batch_bytes += c.len();
                batch.push(c);
            }
            if done || batch_bytes >= BATCH_BYTES {
                items.extend(store_batch(ctx, std::mem::take(&mut batch))?);
                batch_bytes = 0;
            }
            if done {
                break;
            }
        }
        pos = start + read;
    }
    if sparse && size > pos {
        items.push(ContentItem::Hole { length: size - pos });
        pos = size;
    }
    Ok(Ok((items, pos)))
}

fn store_batch(ctx: &Ctx<'_>, batch: Vec<Vec<u8>>) -> Result<Vec<ContentItem>> {
    let store = |c: &Vec<u8>| -> Result<ContentItem> {
        let id = ctx.repo.keys().blob_id(c);
        ctx.writer.add(BlobKind::Data, id, c)?;
        Ok(ContentItem::Data { id, length: c.len() as u32 })
    };
    if batch.len() <= 1 { batch.iter().map(store).collect() } else { batch.par_iter().map(store).collect() }
}

/// Counts files and bytes of the sources for the progress bar. Metadata only.
fn scan_totals(roots: &[PathBuf], excludes: &PatternSet, one_fs: bool, progress: &dyn Progress, stop: &AtomicBool) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack: Vec<(PathBuf, u64)> = Vec::new();
    for r in roots {
        if let Ok(m) = std::fs::symlink_metadata(r) {
            stack.push((r.clone(), m.dev()));
        }
    }
    let mut last = Instant::now();
    while let Some((p, dev)) = stack.pop() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            if one_fs && m.dev() != dev {
                continue;
            }
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    let child = e.path();
                    if !excludes.matches(&child) {
                        stack.push((child, dev));
                    }
                }
            }
        } else {
            files += 1;
            if m.is_file() {
                bytes += m.len();
            }
        }
        if last.elapsed() > Duration::from_millis(200) {
            progress.set_totals(files, bytes);
            last = Instant::now();
        }
    }
    progress.set_totals(files, bytes);
}
