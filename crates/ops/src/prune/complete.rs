//! Phase 2 of prune: carrying out condemnations whose writers are gone.
//!
//! A condemnation is ripe when its wait record exists and no writer it names is still
//! announced (or all of them died on this host). A condemnation without a wait record (the
//! prune that wrote it was interrupted) gets one now: any writer that loaded the index
//! before the condemned packs left it is either still announced, and so named, or done,
//! and then its snapshot is among those walked below.
//!
//! Before deleting, the snapshots stored since the condemnation's own were walked are
//! walked now: a condemned pack holding a blob they reference is indexed again and kept.
//! A pack is deleted only if no live index file lists it and no condemnation that is not
//! ripe names it; an index file only once a stored index file supersedes it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use vault_format::check_record::CheckRecord;
use vault_format::condemnation::{Condemnation, WaitRecord};
use vault_format::index::{IndexFile, IndexPack};
use vault_format::pack::BlobKind;
use vault_format::{Id, IndexId, PackId, SnapshotId};
use vault_repo::repository::superseded_index_files;
use vault_repo::writers::{self, Writer};
use vault_repo::{IndexedRepository, Repository, StoredKind, StoredObject};

use super::{mark, master_of, write_wait_record};
use crate::error::Result;
use crate::forget;
use crate::progress::Progress;

/// A condemnation carried out.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Completed {
    /// The condemnation completed.
    pub condemnation: Id,
    /// Packs deleted.
    pub packs_deleted: u64,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Index files deleted.
    pub index_files_deleted: u64,
    /// Condemned packs a newer snapshot references, kept and indexed again.
    pub packs_rescued: u64,
    /// Condemned packs kept because a live index lists them again (another writer's).
    pub packs_relisted: u64,
    /// Leftover temporary files deleted.
    pub tmp_files_deleted: u64,
    /// Check records deleted (they named only deleted packs).
    pub check_records_deleted: u64,
}

/// A condemnation that waits for writers.
#[derive(Clone, Debug, Serialize)]
pub struct Waiting {
    /// The condemnation waiting.
    pub condemnation: Id,
    /// The writers, described (command, host, pid, start).
    pub writers: Vec<String>,
}

/// Carries out every ripe condemnation; returns those done and those waiting. `me` (the
/// running prune's announcement) never blocks. A dry run only reports.
pub(super) fn complete(
    repo: &Arc<Repository>,
    me: Option<Id>,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<(Vec<Completed>, Vec<Waiting>)> {
    let conds: Vec<(Id, Condemnation)> = repo
        .load_documents::<Condemnation>(StoredKind::Condemnation)?
        .into_iter()
        .filter_map(|(id, r)| r.ok().map(|c| (id, c)))
        .collect();
    if conds.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut waits: HashMap<Id, WaitRecord> = repo
        .load_documents::<WaitRecord>(StoredKind::WaitRecord)?
        .into_iter()
        .filter_map(|(_, r)| r.ok().map(|w| (w.condemnation, w)))
        .collect();
    let alive: Vec<Writer> = if dry_run {
        writers::list_writers(repo)?.into_iter().filter(Writer::may_be_running).collect()
    } else {
        writers::prune_dead_writers(repo)?
    };
    let running: HashMap<Id, &Writer> = alive.iter().filter(|w| Some(w.id) != me).map(|w| (w.id, w)).collect();

    let mut ripe = Vec::new();
    let mut waiting = Vec::new();
    for (id, c) in conds {
        let w = match waits.remove(&id) {
            Some(w) => w,
            None if dry_run => {
                WaitRecord { condemnation: id, writers: running.keys().copied().collect(), ..Default::default() }
            }
            None => write_wait_record(repo, id, me)?,
        };
        let blocking: Vec<String> = w.writers.iter().filter_map(|x| running.get(x)).map(|w| w.describe()).collect();
        if blocking.is_empty() {
            ripe.push((id, c));
        } else {
            waiting.push((Waiting { condemnation: id, writers: blocking }, c));
        }
    }
    let unripe: HashSet<PackId> =
        waiting.iter().flat_map(|(_, c)| c.data_packs.iter().chain(&c.tree_packs).copied()).collect();
    let waiting: Vec<Waiting> = waiting.into_iter().map(|(w, _)| w).collect();
    if ripe.is_empty() || dry_run {
        return Ok((Vec::new(), waiting));
    }

    let files = repo.load_index_files()?;
    let superseded = superseded_index_files(&files);
    let mut live: HashSet<PackId> = HashSet::new();
    let mut listed_by: HashMap<IndexId, Vec<PackId>> = HashMap::new();
    let mut condemned_entries: HashMap<PackId, IndexPack> = HashMap::new();
    let doomed: HashSet<PackId> =
        ripe.iter().flat_map(|(_, c)| c.data_packs.iter().chain(&c.tree_packs).copied()).collect();
    for (id, r) in &files {
        let f = match r {
            Ok(f) => f,
            Err(_) if superseded.contains(id) => continue,
            // A damaged live index file may list a condemned pack that a writer indexed
            // again: nothing is deleted until it is repaired.
            Err(e) => {
                return Err(crate::OpError::PruneRefused(format!(
                    "{e}; a condemned pack may be listed there, so nothing is deleted (run `vault repair index` first)"
                )));
            }
        };
        listed_by.insert(*id, f.packs.iter().map(|p| p.id).collect());
        for p in &f.packs {
            if !superseded.contains(id) {
                live.insert(p.id);
            } else if doomed.contains(&p.id) {
                condemned_entries.entry(p.id).or_insert_with(|| p.clone());
            }
        }
    }

    // Rescue: snapshots stored since each condemnation judged liveness.
    let forgotten = forget::forgotten(repo)?;
    let present: Vec<SnapshotId> = repo.list_snapshots()?;
    let judged_by: Vec<HashSet<SnapshotId>> = ripe.iter().map(|(_, c)| c.snapshots.iter().copied().collect()).collect();
    let mut roots = Vec::new();
    for sid in &present {
        let judged = judged_by.iter().all(|s| s.contains(sid));
        if judged || forgotten.contains(sid) {
            continue;
        }
        match repo.load_snapshot(sid) {
            Ok(s) => roots.push(s.tree),
            Err(vault_repo::RepoError::Backend(e)) if e.kind == vault_repo::backend::BackendErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut rescued: HashSet<PackId> = HashSet::new();
    if !roots.is_empty() {
        let (index, _) = repo.load_index()?;
        let condemned = master_of(condemned_entries.values().filter(|p| !live.contains(&p.id)));
        let handle = IndexedRepository::with_views(repo.clone(), index, condemned);
        rescued = mark::mark(&handle, roots)?.rescued;
    }
    if !rescued.is_empty() {
        let mut f = IndexFile::default();
        f.packs.extend(rescued.iter().filter_map(|p| condemned_entries.get(p)).cloned());
        repo.save_index(&f)?;
    }

    let stored: HashMap<PackId, u64> = repo.list_packs()?.into_iter().map(|p| (p.id, p.size)).collect();
    let mut done = Vec::new();
    let mut deleted_any = false;
    for (cid, c) in ripe {
        let mut r = Completed { condemnation: cid, ..Default::default() };
        let packs: Vec<(BlobKind, PackId)> = c
            .data_packs
            .iter()
            .map(|p| (BlobKind::Data, *p))
            .chain(c.tree_packs.iter().map(|p| (BlobKind::Tree, *p)))
            .collect();
        let mut doomed_here = Vec::new();
        for (kind, p) in packs {
            if rescued.contains(&p) {
                r.packs_rescued += 1;
            } else if live.contains(&p) {
                r.packs_relisted += 1;
            } else if !unripe.contains(&p) {
                doomed_here.push((kind, p));
            }
        }
        progress.set_totals(doomed_here.len() as u64, 0);
        doomed_here.par_iter().try_for_each(|(kind, p)| {
            progress.add_files(1);
            repo.delete_file(StoredObject::Pack(*kind, *p))
        })?;
        for (_, p) in &doomed_here {
            if let Some(size) = stored.get(p) {
                r.packs_deleted += 1;
                r.bytes_deleted += size;
            }
        }
        deleted_any |= !doomed_here.is_empty();
        for i in &c.indexes {
            let lists_unripe = listed_by.get(i).is_some_and(|ps| ps.iter().any(|p| unripe.contains(p)));
            if superseded.contains(i) && !lists_unripe {
                repo.delete_file(StoredObject::Index(*i))?;
                r.index_files_deleted += 1;
            }
        }
        for t in &c.tmp {
            // A name that is not vault's (not hex) is refused and left alone.
            if repo.delete_tmp(t).is_ok() {
                r.tmp_files_deleted += 1;
            }
        }
        delete_wait_records_of(repo, cid)?;
        repo.delete_file(StoredObject::Record(StoredKind::Condemnation, cid))?;
        done.push(r);
    }
    if deleted_any && let Some(first) = done.first_mut() {
        first.check_records_deleted = remove_stale_check_records(repo)?;
    }
    Ok((done, waiting))
}

fn delete_wait_records_of(repo: &Repository, cid: Id) -> Result<()> {
    for (id, r) in repo.load_documents::<WaitRecord>(StoredKind::WaitRecord)? {
        if r.is_ok_and(|w| w.condemnation == cid) {
            repo.delete_file(StoredObject::Record(StoredKind::WaitRecord, id))?;
        }
    }
    Ok(())
}

/// Deletes check records none of whose packs is stored any more (they can only cost
/// listing time now).
fn remove_stale_check_records(repo: &Repository) -> Result<u64> {
    let stored: HashSet<PackId> = repo.list_packs()?.into_iter().map(|p| p.id).collect();
    let mut n = 0;
    for (id, r) in repo.load_documents::<CheckRecord>(StoredKind::CheckRecord)? {
        if r.is_ok_and(|c| c.packs.iter().all(|p| !stored.contains(p))) {
            repo.delete_file(StoredObject::CheckRecord(id))?;
            n += 1;
        }
    }
    Ok(n)
}
