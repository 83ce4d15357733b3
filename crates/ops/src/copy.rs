//! `copy`: snapshots from one repository into another (an offsite copy without a second
//! backup of the sources).
//!
//! Two repositories initialised apart have different keys, so their blob ids differ:
//! each file's data is read from the source and chunked again with the destination's
//! chunker, and every tree is written anew. (A repository made with `init
//! --copy-chunker-params` shares the source's chunker and blob id keys: then blobs are
//! the same in both, and only those the destination lacks are read and stored, as they
//! are.) What makes a copy between different keys cheap is the destination's history: a
//! file whose device, inode, size and times match a file of the newest snapshot of the
//! same host and paths already copied is taken from there without reading it (the rule
//! backup uses against its parent), and the destination stores only chunks it lacks. A
//! snapshot already in the destination (same time, host, user, paths and tags) is not
//! copied again, so an interrupted copy resumes where it stopped.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use super::error::{OpError, Result};
use super::progress::Progress;
use super::select;
use super::walk::{TreeFold, fold};
use vault_format::chunker::Chunker;
use vault_format::pack::BlobKind;
use vault_format::snapshot::Snapshot;
use vault_format::tree::{ContentItem, Node, NodeKind, Timestamp, Tree};
use vault_format::{BlobId, SnapshotId};
use vault_repo::{IndexedRepository, PackWriter, RepoError, WriterStats};

/// One snapshot copied.
#[derive(Clone, Debug, Serialize)]
pub struct Copied {
    /// The snapshot in the source.
    pub source: SnapshotId,
    /// Its copy in the destination.
    pub copy: SnapshotId,
}

/// What `copy` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots copied.
    pub copied: Vec<Copied>,
    /// Snapshots the destination holds already.
    pub already_there: Vec<SnapshotId>,
    /// File bytes read from the source (files not found unchanged in the destination).
    pub bytes_read: u64,
    /// What the destination's pack writer stored.
    pub writer: WriterStats,
    /// Whether file data was chunked again (the repositories chunk or name data
    /// differently); otherwise blobs were copied as they are.
    pub rechunked: bool,
}

/// What tells a snapshot and its copy apart from other snapshots.
fn identity(s: &Snapshot) -> (String, String, String, Vec<String>, Vec<String>) {
    let mut tags = s.tags.clone();
    tags.sort();
    (s.time.clone(), s.hostname.clone(), s.username.clone(), s.paths.clone(), tags)
}

/// What tells an unchanged file: its host and the backup rule (device, inode, size,
/// times).
type FileKey = (String, u64, u64, u64, Timestamp, Timestamp);

fn file_key(host: &str, n: &Node) -> FileKey {
    (host.to_string(), n.device, n.inode, n.size, n.mtime, n.ctime)
}

/// Copies `snaps` (oldest first) from `src` into `dst`. The data and trees of all of
/// them are stored and indexed first, then the snapshots are saved in order.
pub fn copy(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    snaps: &[(SnapshotId, Snapshot)],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let (committed, _) = dst.repo().load_all_snapshots()?;
    let same_chunks = src.repo().same_chunks_as(dst.repo());
    let mut report = CopyReport { rechunked: !same_chunks, ..Default::default() };
    let writer = dst.writer()?;
    let chunker = dst.repo().chunker()?;
    // Source tree → its copy, across the snapshots (unchanged subtrees are copied once).
    let mut memo: HashMap<BlobId, BlobId> = HashMap::new();
    let mut known: HashMap<FileKey, Vec<ContentItem>> = HashMap::new();
    let mut parents_read: Vec<SnapshotId> = Vec::new();
    let mut pending: Vec<(SnapshotId, Snapshot)> = Vec::new();
    let mut bytes_read = 0u64;
    // What the destination holds, and what this run copies, by identity.
    let mut there: HashSet<_> = committed.iter().map(|(_, d)| identity(d)).collect();
    for (id, s) in snaps {
        if !there.insert(identity(s)) {
            report.already_there.push(*id);
            continue;
        }
        // The newest stored copy of the same host and paths: its files need not be read
        // again.
        let parent =
            select::newest(committed.iter().filter(|(_, d)| d.hostname == s.hostname && d.paths == s.paths).cloned());
        if let Some((pid, p)) = &parent
            && !same_chunks
            && !parents_read.contains(pid)
        {
            known_files(dst, p, &mut known)?;
            parents_read.push(*pid);
        }
        let mut copier = Copier {
            src,
            host: &s.hostname,
            writer: &writer,
            chunker: &chunker,
            same_chunks,
            known: &mut known,
            bytes_read: AtomicU64::new(0),
            progress,
        };
        let tree = fold(&mut copier, s.tree, &mut memo)?;
        bytes_read += copier.bytes_read.into_inner();
        pending.push((*id, Snapshot { tree, parent: None, original: None, ..s.clone() }));
    }
    report.writer = writer.finish()?;
    let roots: Vec<BlobId> = pending.iter().map(|(_, s)| s.tree).collect();
    crate::commit::keep_referenced_live(dst.repo(), dst.index(), &roots)?;
    let mut saved: Vec<(SnapshotId, Snapshot)> = committed;
    for (id, mut copy) in pending {
        copy.parent =
            select::newest(saved.iter().filter(|(_, d)| d.hostname == copy.hostname && d.paths == copy.paths).cloned())
                .map(|(p, _)| p);
        let copy_id = dst.repo().save_snapshot(&copy)?;
        report.copied.push(Copied { source: id, copy: copy_id });
        saved.push((copy_id, copy));
    }
    report.bytes_read = bytes_read;
    Ok(report)
}

/// Adds the content of every file of the stored snapshot `snap` to `known`.
fn known_files(dst: &IndexedRepository, snap: &Snapshot, known: &mut HashMap<FileKey, Vec<ContentItem>>) -> Result<()> {
    struct Collect<'a> {
        dst: &'a IndexedRepository,
        host: &'a str,
        known: &'a mut HashMap<FileKey, Vec<ContentItem>>,
    }
    impl TreeFold for Collect<'_> {
        type Value = ();
        fn open(&mut self, id: &BlobId) -> Result<std::result::Result<Tree, ()>> {
            Ok(Ok(self.dst.load_tree(id)?))
        }
        fn combine(&mut self, _: &BlobId, tree: Tree, _: Vec<Option<()>>) -> Result<()> {
            for n in tree.nodes.into_iter().filter(|n| n.kind == NodeKind::File) {
                self.known.insert(file_key(self.host, &n), n.content);
            }
            Ok(())
        }
    }
    fold(&mut Collect { dst, host: &snap.hostname, known }, snap.tree, &mut HashMap::new())
}

struct Copier<'a> {
    src: &'a IndexedRepository,
    /// The host of the snapshot being copied.
    host: &'a str,
    writer: &'a PackWriter,
    chunker: &'a Chunker,
    /// Blob ids mean the same in both repositories: blobs are copied, not re-chunked.
    same_chunks: bool,
    known: &'a mut HashMap<FileKey, Vec<ContentItem>>,
    bytes_read: AtomicU64,
    progress: &'a dyn Progress,
}

/// Chunks gathered before they are sealed and stored in parallel.
const BATCH_BYTES: usize = 16 << 20;

impl Copier<'_> {
    /// `node`'s content in the destination: taken from a known unchanged file whose
    /// chunks the destination holds (`None`), else read from the source and chunked
    /// again (`Some`).
    fn content(&self, node: &Node) -> Result<Option<Vec<ContentItem>>> {
        if self.same_chunks {
            self.copy_blobs(node)?;
            return Ok(None);
        }
        if let Some(c) = self.known.get(&file_key(self.host, node))
            && c.iter().all(|i| match i {
                ContentItem::Data { id, .. } => self.writer.has(BlobKind::Data, id),
                ContentItem::Hole { .. } => true,
            })
        {
            return Ok(None);
        }
        let mut out = Vec::new();
        let mut run: Vec<(BlobId, u32)> = Vec::new();
        for item in &node.content {
            match item {
                ContentItem::Data { id, length } => run.push((*id, *length)),
                // Holes stay holes; the data between them is chunked run by run.
                ContentItem::Hole { length } => {
                    self.chunk_run(std::mem::take(&mut run), &mut out)?;
                    out.push(ContentItem::Hole { length: *length });
                }
            }
        }
        self.chunk_run(run, &mut out)?;
        Ok(Some(out))
    }

    /// Stores the data blobs of `node` the destination lacks, as they are (their ids
    /// were verified as they were read, with keys both repositories share).
    fn copy_blobs(&self, node: &Node) -> Result<()> {
        let missing: Vec<(BlobId, u32)> = node
            .content
            .iter()
            .filter_map(|i| match i {
                ContentItem::Data { id, length } if !self.writer.has(BlobKind::Data, id) => Some((*id, *length)),
                _ => None,
            })
            .collect();
        missing.par_iter().try_for_each(|(id, length)| {
            let data = self.src.read_data_item(id, *length)?;
            self.bytes_read.fetch_add(data.len() as u64, Ordering::Relaxed);
            self.progress.add_bytes(data.len() as u64);
            self.writer.add(BlobKind::Data, *id, &data)?;
            Ok(())
        })
    }

    fn chunk_run(&self, run: Vec<(BlobId, u32)>, out: &mut Vec<ContentItem>) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let expected: u64 = run.iter().map(|(_, l)| u64::from(*l)).sum();
        let mut reader = SourceData { src: self.src, items: run.into_iter(), buf: Vec::new(), pos: 0, error: None };
        let mut stream = self.chunker.stream_sized(&mut reader, expected);
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut batch_bytes = 0;
        loop {
            let chunk = match stream.next_chunk() {
                Ok(c) => c,
                Err(e) => {
                    drop(stream);
                    return Err(match reader.error.take() {
                        Some(r) => r.into(),
                        None => OpError::Repo(RepoError::invalid("copy", e)),
                    });
                }
            };
            let done = chunk.is_none();
            if let Some(c) = chunk {
                self.bytes_read.fetch_add(c.len() as u64, Ordering::Relaxed);
                self.progress.add_bytes(c.len() as u64);
                batch_bytes += c.len();
                batch.push(c);
            }
            // Sealing (compression, encryption) is the costly part: a batch at a time,
            // in parallel.
            if done || batch_bytes >= BATCH_BYTES {
                let ids = std::mem::take(&mut batch)
                    .par_iter()
                    .map(|c| {
                        Ok(ContentItem::Data {
                            id: self.writer.save_blob(BlobKind::Data, c)?.0,
                            length: c.len() as u32,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.extend(ids);
                batch_bytes = 0;
            }
            if done {
                return Ok(());
            }
        }
    }
}

impl TreeFold for Copier<'_> {
    type Value = BlobId;

    fn open(&mut self, id: &BlobId) -> Result<std::result::Result<Tree, BlobId>> {
        Ok(Ok(self.src.load_tree(id)?))
    }

    fn combine(&mut self, _: &BlobId, mut tree: Tree, subtrees: Vec<Option<BlobId>>) -> Result<BlobId> {
        for (n, sub) in tree.nodes.iter_mut().zip(&subtrees) {
            if let Some(t) = sub {
                n.subtree = Some(*t);
            }
        }
        // The files of a directory are copied in parallel.
        let this = &*self;
        let contents = tree
            .nodes
            .par_iter()
            .zip(subtrees.par_iter())
            .map(|(n, sub)| match sub {
                None if n.kind == NodeKind::File => {
                    let c = this.content(n);
                    this.progress.add_files(1);
                    c
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        for (n, c) in tree.nodes.iter_mut().zip(contents) {
            match c {
                // A later snapshot's unchanged copy of this file is taken from here.
                Some(c) => {
                    self.known.insert(file_key(self.host, n), c.clone());
                    n.content = c;
                }
                None if n.kind == NodeKind::File && n.subtree.is_none() => {
                    if let Some(c) = self.known.get(&file_key(self.host, n)) {
                        n.content = c.clone();
                    }
                }
                None => {}
            }
        }
        Ok(self.writer.save_tree(tree)?)
    }
}

/// The bytes of a run of source data blobs, read blob by blob; a failure is kept (a
/// storage or integrity error of the source) and reported as an I/O error to the chunker.
struct SourceData<'a> {
    src: &'a IndexedRepository,
    items: std::vec::IntoIter<(BlobId, u32)>,
    buf: Vec<u8>,
    pos: usize,
    error: Option<RepoError>,
}

impl Read for SourceData<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some((id, length)) = self.items.next() else { return Ok(0) };
            match self.src.read_data_item(&id, length) {
                Ok(data) => {
                    self.buf = data;
                    self.pos = 0;
                }
                Err(e) => {
                    let message = e.to_string();
                    self.error = Some(e);
                    return Err(std::io::Error::other(message));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
