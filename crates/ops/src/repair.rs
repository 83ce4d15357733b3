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
use super::walk::{MAX_PATH_BYTES, TreeFold, fold};
use vault_format::index::{IndexFile, IndexPack};
use vault_format::pack::BlobKind;
use vault_format::snapshot::Snapshot;
use vault_format::tree::{ContentItem, Tree};
use vault_format::{BlobId, IndexId, SnapshotId};
use vault_repo::{
    IndexedRepository, MasterIndex, PackWriter, RepoError, Repository, StoredKind, StoredObject, StoredPack,
};

/// Packs per rebuilt index file.
const PACKS_PER_INDEX_FILE: usize = 4096;
/// As prune's: about 40 MiB of index file.
const BLOBS_PER_INDEX_FILE: usize = 1 << 20;

#[derive(Clone, Debug, Default, Serialize)]
/// What `repair index` did.
pub struct RepairIndexReport {
    /// Packs read and indexed.
    pub packs_indexed: usize,
    /// Blobs they hold.
    pub blobs_indexed: usize,
    /// New index files stored.
    pub index_files_written: usize,
    /// Old index files they supersede.
    pub index_files_superseded: usize,
    /// Packs whose header could not be read; their blobs are no longer indexed.
    pub unreadable_packs: Vec<String>,
    /// Intact blobs copied out of damaged packs (with `read_data`).
    pub blobs_salvaged: usize,
    /// Blobs of damaged packs that could not be saved.
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

/// Rebuilds the index from the packs stored: every pack's header is read (with `read_data`, every blob too), and new index files supersede the old ones.
pub fn repair_index(repo: Arc<Repository>, read_data: bool, progress: &dyn Progress) -> Result<RepairIndexReport> {
    // A writer: its index lists packs that a prune may have condemned meanwhile.
    let _announced = vault_repo::announce(&repo, "repair index")?;
    let old: Vec<IndexId> = repo.list_files(StoredKind::Index)?.into_iter().map(|(id, _)| IndexId(id)).collect();
    let packs = repo.list_packs()?;
    progress.set_totals(packs.len() as u64, if read_data { packs.iter().map(|p| p.size).sum() } else { 0 });
    let states: Vec<std::result::Result<PackState, RepoError>> = packs
        .par_iter()
        .map(|p| {
            let r = if read_data { inspect_whole(&repo, p) } else { inspect_header(&repo, p) };
            progress.add_files(1);
            if read_data {
                progress.add_bytes(p.size);
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
    // Bounded in packs and in blobs, so that every index file stays far below the size
    // readers accept (spec §2).
    let mut start = 0;
    while start < good.len() {
        let mut end = start;
        let mut blobs = 0;
        while end < good.len()
            && end - start < PACKS_PER_INDEX_FILE
            && (end == start || blobs + good[end].blobs.len() <= BLOBS_PER_INDEX_FILE)
        {
            blobs += good[end].blobs.len();
            end += 1;
        }
        repo.save_index(&IndexFile { supersedes: old.clone(), packs: good[start..end].to_vec() })?;
        report.index_files_written += 1;
        start = end;
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
        let writer = IndexedRepository::with_index(repo.clone(), index).writer()?;
        for (kind, id, raw) in &salvage {
            if writer.add(*kind, *id, raw)? {
                report.blobs_salvaged += 1;
            }
        }
        report.index_files_written += writer.finish()?.index_files_written as usize;
    }
    Ok(report)
}

fn inspect_header(repo: &Repository, p: &StoredPack) -> Result<PackState, RepoError> {
    let object = StoredObject::Pack(p.kind, p.id);
    match repo.read_pack_header(p.kind, &p.id, p.size) {
        Ok((hkind, blobs)) if hkind == p.kind => {
            Ok(PackState::Good(IndexPack { id: p.id, kind: p.kind, size: p.size, blobs }))
        }
        Ok(_) => Ok(PackState::Unreadable(format!("{object}: header kind does not match its directory"))),
        Err(RepoError::Backend(e)) => Err(RepoError::Backend(e)),
        Err(e) => Ok(PackState::Unreadable(format!("{object}: {e}"))),
    }
}

fn inspect_whole(repo: &Repository, p: &StoredPack) -> Result<PackState, RepoError> {
    let object = StoredObject::Pack(p.kind, p.id).path();
    let data = repo.read_pack(p.kind, &p.id, p.size)?;
    let name_ok = data.stored_id() == p.id.0;
    let entries = match repo.parse_pack_header(p.kind, &p.id, &data) {
        Ok((hkind, e)) if hkind == p.kind => e,
        _ => return Ok(PackState::Unreadable(format!("{object}: header is damaged; its blobs cannot be located"))),
    };
    let checked: Vec<(BlobId, Option<Vec<u8>>)> = entries
        .par_iter()
        .map(|e| (e.id, repo.open_blob_in(p.kind, &p.id, &data, e).ok().map(|b| b.into_vec())))
        .collect();
    let lost = checked.iter().filter(|(_, r)| r.is_none()).count();
    if name_ok && lost == 0 && data.len() as u64 == p.size {
        return Ok(PackState::Good(IndexPack { id: p.id, kind: p.kind, size: p.size, blobs: entries }));
    }
    let blobs = checked.into_iter().filter_map(|(id, r)| r.map(|raw| (p.kind, id, raw))).collect();
    Ok(PackState::Salvage { object, blobs, lost })
}

#[derive(Clone, Debug, Serialize)]
/// One snapshot `repair snapshots` looked at.
pub struct RepairedSnapshot {
    /// The damaged snapshot.
    pub original: SnapshotId,
    /// Its repaired replacement (`None` in a dry run).
    pub repaired: Option<SnapshotId>,
    /// Files dropped because their data is lost (the first 100).
    pub dropped: Vec<String>,
    /// How many files were dropped.
    pub dropped_total: u64,
    /// Directories whose listing is lost; restored as empty directories (the first 100).
    pub emptied: Vec<String>,
    /// How many directories were emptied.
    pub emptied_total: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
/// What `repair snapshots` did.
pub struct RepairSnapshotsReport {
    /// Snapshots repaired.
    pub snapshots: Vec<RepairedSnapshot>,
    /// Snapshots found intact.
    pub unchanged: usize,
}

/// Paths listed per repaired tree (the totals count them all).
const MAX_LISTED: usize = 100;

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
    let _announced = if dry_run { None } else { Some(vault_repo::announce(&repo, "repair snapshots")?) };
    // The snapshots are listed before the check, which lists them again and then loads
    // the index: every snapshot judged here was judged against an index that covers it.
    // One committed later (a backup running beside) is not touched.
    let (snaps, _) = repo.load_all_snapshots()?;
    let checked = check(&repo, &opts, progress)?;
    let lost = checked.lost_blobs;
    let repo = IndexedRepository::load(repo)?;
    let writer = repo.writer()?;
    let replaced: HashSet<SnapshotId> = crate::select::replaced(&snaps);
    let mut rw = Rewriter { repo: &repo, lost: &lost, writer: &writer, dry_run };
    let mut memo = HashMap::new();
    let mut report = RepairSnapshotsReport::default();
    let mut new_snaps: Vec<(SnapshotId, Snapshot, RepairedSnapshot)> = Vec::new();
    for (id, snap) in snaps {
        if replaced.contains(&id) {
            continue;
        }
        let r = fold(&mut rw, snap.tree, &mut memo)?;
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
        let info = RepairedSnapshot {
            original: id,
            repaired: None,
            dropped: r.dropped.paths.to_vec(),
            dropped_total: r.dropped.total,
            emptied: r.emptied.paths.to_vec(),
            emptied_total: r.emptied.total,
        };
        new_snaps.push((id, s, info));
    }
    // Commit order: the new trees' packs and index first, then the snapshots.
    writer.finish()?;
    for (_, s, mut info) in new_snaps {
        if !dry_run {
            info.repaired = Some(repo.repo().save_snapshot(&s)?);
        }
        report.snapshots.push(info);
    }
    Ok(report)
}

/// Some paths (at most [`MAX_LISTED`]) and how many there are in all.
#[derive(Clone, Default)]
struct Listed {
    paths: Arc<Vec<String>>,
    total: u64,
}

impl Listed {
    fn one(path: String) -> Listed {
        Listed { paths: Arc::new(vec![path]), total: 1 }
    }

    /// Adds `below`'s paths under the directory `name`.
    fn extend_under(&mut self, name: &str, below: &Listed) {
        self.total = self.total.saturating_add(below.total);
        let room = MAX_LISTED.saturating_sub(self.paths.len());
        if room > 0 && !below.paths.is_empty() {
            let paths = Arc::make_mut(&mut self.paths);
            paths.extend(below.paths.iter().take(room).map(|p| join(name, p)).filter(|p| p.len() <= MAX_PATH_BYTES));
        }
    }

    fn push(&mut self, path: String) {
        self.total = self.total.saturating_add(1);
        if self.paths.len() < MAX_LISTED {
            Arc::make_mut(&mut self.paths).push(path);
        }
    }
}

#[derive(Clone)]
struct Rewritten {
    tree: BlobId,
    dropped: Listed,
    emptied: Listed,
}

struct Rewriter<'a> {
    repo: &'a IndexedRepository,
    lost: &'a HashSet<(BlobKind, BlobId)>,
    writer: &'a PackWriter,
    dry_run: bool,
}

impl Rewriter<'_> {
    fn save(&self, mut tree: Tree) -> Result<BlobId> {
        if self.dry_run {
            tree.canonicalize();
            return Ok(self.repo.blob_id(&tree.encode()));
        }
        Ok(self.writer.save_tree(tree)?)
    }

    fn readable(&self, kind: BlobKind, id: &BlobId) -> bool {
        !self.lost.contains(&(kind, *id)) && self.repo.contains(kind, id)
    }
}

impl TreeFold for Rewriter<'_> {
    type Value = Rewritten;

    fn open(&mut self, id: &BlobId) -> Result<std::result::Result<Tree, Rewritten>> {
        let tree = if self.readable(BlobKind::Tree, id) {
            match self.repo.load_tree(id) {
                Ok(t) => Some(t),
                // Storage failing is not damage: nothing is emptied for it.
                Err(e @ RepoError::Backend(_)) => return Err(e.into()),
                Err(_) => None,
            }
        } else {
            None
        };
        Ok(match tree {
            Some(t) => Ok(t),
            // The listing is lost: the directory is kept, empty.
            None => Err(Rewritten {
                tree: self.save(Tree::default())?,
                dropped: Listed::default(),
                emptied: Listed::one(String::new()),
            }),
        })
    }

    fn combine(&mut self, id: &BlobId, mut t: Tree, subtrees: Vec<Option<Rewritten>>) -> Result<Rewritten> {
        let mut dropped = Listed::default();
        let mut emptied = Listed::default();
        let mut keep = Vec::with_capacity(t.nodes.len());
        for (mut n, sub) in std::mem::take(&mut t.nodes).into_iter().zip(subtrees) {
            let name = n.name_lossy();
            match sub {
                Some(r) => {
                    dropped.extend_under(&name, &r.dropped);
                    emptied.extend_under(&name, &r.emptied);
                    n.subtree = Some(r.tree);
                    keep.push(n);
                }
                None => {
                    let bad = n.content.iter().any(|c| match c {
                        ContentItem::Data { id, .. } => !self.readable(BlobKind::Data, id),
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
        let changed = dropped.total > 0 || emptied.total > 0;
        let tree = if changed { self.save(t)? } else { *id };
        Ok(Rewritten { tree, dropped, emptied })
    }
}

fn join(a: &str, b: &str) -> String {
    if b.is_empty() { a.to_string() } else { format!("{a}/{b}") }
}
