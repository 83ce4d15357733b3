//! `repair index` and `repair snapshots`: bring a damaged repository back to a state that
//! `check` passes, keeping every piece of data that still exists.
//!
//! Run `repair index` first (it rebuilds the index from the packs that are really there),
//! then `repair snapshots` (it writes new snapshots without the files whose data is lost).
//! Nothing is deleted: old index files are superseded, damaged snapshots are kept and
//! marked as replaced by their repaired versions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use super::check::{CheckOptions, Subset, check};
use super::error::Result;
use super::progress::Progress;
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::{self, BlobKind};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{ContentItem, NodeKind, Tree};
use crate::format::{BlobId, IndexId, PackId, SnapshotId};
use crate::repo::repository::{INDEX_DIR, pack_path};
use crate::repo::{MasterIndex, PackWriter, RepoError, Repository};

/// Packs per rebuilt index file.
const PACKS_PER_INDEX_FILE: usize = 4096;

#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairIndexReport {
    pub packs_indexed: usize,
    pub blobs_indexed: usize,
    pub index_files_written: usize,
    pub index_files_superseded: usize,
    /// Packs whose header could not be read; their blobs are no longer indexed.
    pub unreadable_packs: Vec<String>,
    /// Intact blobs copied out of damaged packs (with `read_data`).
    pub blobs_salvaged: usize,
    pub blobs_lost: usize,
}

enum PackState {
    Good(IndexPack),
    /// Damaged pack: the blobs that still verify, to be copied into new packs.
    Salvage {
        object: String,
        blobs: Vec<(BlobKind, BlobId, Vec<u8>)>,
        lost: usize,
    },
    Unreadable(String),
}

pub fn repair_index(repo: Arc<Repository>, read_data: bool, progress: &dyn Progress) -> Result<RepairIndexReport> {
    let old: Vec<IndexId> = repo.list_files(INDEX_DIR)?.into_iter().map(|(id, _)| IndexId(id)).collect();
    let packs = repo.list_packs()?;
    progress.set_totals(packs.len() as u64, if read_data { packs.iter().map(|p| p.2).sum() } else { 0 });
    let states: Vec<std::result::Result<PackState, RepoError>> = packs
        .par_iter()
        .map(|(kind, id, size)| {
            let object = pack_path(*kind, id);
            let r = if read_data {
                inspect_whole(&repo, *kind, id, *size, object)
            } else {
                inspect_header(&repo, *kind, id, *size, object)
            };
            progress.add_files(1);
            if read_data {
                progress.add_bytes(*size);
            }
            r
        })
        .collect();
    let mut report = RepairIndexReport::default();
    let mut good = Vec::new();
    let mut salvage = Vec::new();
    for s in states {
        match s? {
            PackState::Good(p) => good.push(p),
            PackState::Salvage { object, blobs, lost } => {
                report.blobs_lost += lost;
                report.unreadable_packs.push(format!("{object} (damaged; intact blobs copied)"));
                salvage.extend(blobs);
            }
            PackState::Unreadable(m) => report.unreadable_packs.push(m),
        }
    }
    report.packs_indexed = good.len();
    report.blobs_indexed = good.iter().map(|p| p.blobs.len()).sum();
    // New index files first: each supersedes every old one, so readers never see a moment
    // without an index for a pack that exists.
    good.sort_by_key(|p| p.id);
    for chunk in good.chunks(PACKS_PER_INDEX_FILE) {
        repo.save_index(&IndexFile { supersedes: old.clone(), packs: chunk.to_vec() })?;
        report.index_files_written += 1;
    }
    if good.is_empty() {
        repo.save_index(&IndexFile { supersedes: old.clone(), packs: Vec::new() })?;
        report.index_files_written += 1;
    }
    report.index_files_superseded = old.len();
    if !salvage.is_empty() {
        let mut index = MasterIndex::new();
        for p in &good {
            index.add_pack(p.id, p.kind, p.size, &p.blobs);
        }
        index.compact();
        let writer = PackWriter::new(repo.clone(), Arc::new(index))?;
        for (kind, id, raw) in &salvage {
            if writer.add(*kind, *id, raw)? {
                report.blobs_salvaged += 1;
            }
        }
        report.index_files_written += writer.finish()?.index_files_written as usize;
    }
    Ok(report)
}

fn inspect_header(
    repo: &Repository,
    kind: BlobKind,
    id: &PackId,
    size: u64,
    object: String,
) -> Result<PackState, RepoError> {
    match repo.read_pack_header(kind, id, size) {
        Ok((hkind, blobs)) if hkind == kind => Ok(PackState::Good(IndexPack { id: *id, kind, size, blobs })),
        Ok(_) => Ok(PackState::Unreadable(format!("{object}: header kind does not match its directory"))),
        Err(RepoError::Backend(e)) => Err(RepoError::Backend(e)),
        Err(e) => Ok(PackState::Unreadable(format!("{object}: {e}"))),
    }
}

fn inspect_whole(
    repo: &Repository,
    kind: BlobKind,
    id: &PackId,
    size: u64,
    object: String,
) -> Result<PackState, RepoError> {
    let data = repo.read_pack(kind, id)?;
    let name_ok = data.stored_id() == id.0;
    let entries = match repo.parse_pack_header(&data) {
        Ok((hkind, e)) if hkind == kind => e,
        _ => return Ok(PackState::Unreadable(format!("{object}: header is damaged; its blobs cannot be located"))),
    };
    let checked: Vec<(BlobId, Option<Vec<u8>>)> = entries
        .par_iter()
        .map(|e| {
            let sealed = data.slice(e.offset as usize..(e.offset + e.length) as usize).unwrap_or_default();
            (e.id, pack::open_blob(repo.keys(), kind, &e.id, &sealed, e.raw_length).ok())
        })
        .collect();
    let lost = checked.iter().filter(|(_, r)| r.is_none()).count();
    if name_ok && lost == 0 && data.len() as u64 == size {
        return Ok(PackState::Good(IndexPack { id: *id, kind, size, blobs: entries }));
    }
    let blobs = checked.into_iter().filter_map(|(id, r)| r.map(|raw| (kind, id, raw))).collect();
    Ok(PackState::Salvage { object, blobs, lost })
}

#[derive(Clone, Debug, Serialize)]
pub struct RepairedSnapshot {
    pub original: SnapshotId,
    pub repaired: Option<SnapshotId>,
    /// Files dropped because their data is lost.
    pub dropped: Vec<String>,
    /// Directories whose listing is lost; restored as empty directories.
    pub emptied: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairSnapshotsReport {
    pub snapshots: Vec<RepairedSnapshot>,
    pub unchanged: usize,
}

/// Writes a repaired copy of every snapshot that references lost data.
pub fn repair_snapshots(
    repo: Arc<Repository>,
    read_data: bool,
    hostname: &str,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<RepairSnapshotsReport> {
    let opts =
        CheckOptions { read_data: read_data.then_some(Subset::All), read_threads: 4, hostname: hostname.to_string() };
    let checked = check(&repo, &opts, progress)?;
    let lost = checked.lost_blobs;
    let (index, _) = repo.load_index()?;
    let index = Arc::new(index);
    let writer = PackWriter::new(repo.clone(), index.clone())?;
    let (snaps, _) = repo.load_all_snapshots()?;
    let replaced: HashSet<SnapshotId> = snaps.iter().filter_map(|(_, s)| s.original).collect();
    let mut rw = Rewriter { repo: &repo, index: &index, lost: &lost, writer: &writer, memo: HashMap::new(), dry_run };
    let mut report = RepairSnapshotsReport::default();
    let mut new_snaps: Vec<(SnapshotId, Snapshot, RepairedSnapshot)> = Vec::new();
    for (id, snap) in snaps {
        if replaced.contains(&id) {
            continue;
        }
        let r = rw.rewrite(snap.tree)?;
        if r.tree == snap.tree {
            report.unchanged += 1;
            continue;
        }
        let mut s = snap.clone();
        s.tree = r.tree;
        s.original = Some(id);
        s.parent = None;
        s.summary = None;
        if !s.tags.iter().any(|t| t == "repaired") {
            s.tags.push("repaired".into());
        }
        let info =
            RepairedSnapshot { original: id, repaired: None, dropped: r.dropped.to_vec(), emptied: r.emptied.to_vec() };
        new_snaps.push((id, s, info));
    }
    // Commit order: the new trees' packs and index first, then the snapshots.
    writer.finish()?;
    for (_, s, mut info) in new_snaps {
        if !dry_run {
            info.repaired = Some(repo.save_snapshot(&s)?);
        }
        report.snapshots.push(info);
    }
    Ok(report)
}

#[derive(Clone)]
struct Rewritten {
    tree: BlobId,
    dropped: Arc<Vec<String>>,
    emptied: Arc<Vec<String>>,
}

struct Rewriter<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    lost: &'a HashSet<(BlobKind, BlobId)>,
    writer: &'a PackWriter,
    memo: HashMap<BlobId, Rewritten>,
    dry_run: bool,
}

impl Rewriter<'_> {
    fn save(&self, mut tree: Tree) -> Result<BlobId> {
        tree.canonicalize();
        let bytes = tree.encode();
        let id = self.repo.keys().blob_id(&bytes);
        if !self.dry_run {
            self.writer.add(BlobKind::Tree, id, &bytes)?;
        }
        Ok(id)
    }

    fn rewrite(&mut self, id: BlobId) -> Result<Rewritten> {
        if let Some(r) = self.memo.get(&id) {
            return Ok(r.clone());
        }
        let readable = !self.lost.contains(&(BlobKind::Tree, id)) && self.index.contains(BlobKind::Tree, &id);
        let tree = if readable { self.repo.load_tree(self.index, &id).ok() } else { None };
        let r = match tree {
            None => Rewritten {
                tree: self.save(Tree::default())?,
                dropped: Arc::default(),
                emptied: Arc::new(vec![String::new()]),
            },
            Some(mut t) => {
                let mut dropped = Vec::new();
                let mut emptied = Vec::new();
                let mut keep = Vec::with_capacity(t.nodes.len());
                for mut n in std::mem::take(&mut t.nodes) {
                    let name = n.name_lossy();
                    match (n.kind, n.subtree) {
                        (NodeKind::Dir, Some(sub)) => {
                            let r = self.rewrite(sub)?;
                            dropped.extend(r.dropped.iter().map(|p| join(&name, p)));
                            emptied.extend(r.emptied.iter().map(|p| join(&name, p)));
                            n.subtree = Some(r.tree);
                            keep.push(n);
                        }
                        _ => {
                            let bad = n.content.iter().any(|c| match c {
                                ContentItem::Data { id, .. } => {
                                    self.lost.contains(&(BlobKind::Data, *id))
                                        || !self.index.contains(BlobKind::Data, id)
                                }
                                ContentItem::Hole { .. } => false,
                            });
                            if bad {
                                dropped.push(name);
                            } else {
                                keep.push(n);
                            }
                        }
                    }
                }
                t.nodes = keep;
                let changed = !dropped.is_empty() || !emptied.is_empty();
                let tree = if changed { self.save(t)? } else { id };
                Rewritten { tree, dropped: Arc::new(dropped), emptied: Arc::new(emptied) }
            }
        };
        self.memo.insert(id, r.clone());
        Ok(r)
    }
}

fn join(a: &str, b: &str) -> String {
    if b.is_empty() { a.to_string() } else { format!("{a}/{b}") }
}
