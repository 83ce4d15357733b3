//! `prune`: deleting what no snapshot references, beside running backups, without locks
//! and without trusting any clock.
//!
//! Phase 1 ([`prune`]) marks what the snapshots reference, decides each pack's fate
//! ([`plan`]), copies live blobs out of packs it repacks, and then writes, in this order:
//! the condemnation (packs and index files to delete), the new index (listing every kept
//! and new pack, superseding every index file read), and the wait record (the writers
//! announced once that index was stored). Phase 2 ([`complete`]) deletes a condemnation's
//! files once no writer its wait record names is still running: those are the only writers
//! that can have loaded the old index. Before deleting, it walks the snapshots stored since
//! phase 1 and keeps (indexes again) any condemned pack they reference. The order argument
//! is spelled out in `repo-format/SPEC.md` §14 and `docs/ARCHITECTURE.md`.

mod complete;
mod mark;
pub mod plan;
mod repack;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use vault_format::condemnation::{Condemnation, WaitRecord};
use vault_format::index::{IndexFile, IndexPack};
use vault_format::pack::BlobKind;
use vault_format::{BlobId, Id, IndexId, PackId, SnapshotId};
use vault_repo::repository::superseded_index_files;
use vault_repo::writers::{self, now_rfc3339, this_host};
use vault_repo::{IndexedRepository, MasterIndex, RepoError, Repository, StoredKind, StoredObject};

use super::error::{OpError, Result};
use super::forget;
use super::progress::Progress;
pub use complete::{Completed, Waiting};
use plan::{Fate, Limits, PackUse, UnusedLimit};

/// Index files prune writes hold at most this many blobs each (about 40 MiB of plaintext).
const BLOBS_PER_INDEX_FILE: usize = 1 << 20;

/// What to do.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// How much unused data a pack may hold before it is repacked.
    pub max_unused: UnusedLimit,
    /// Repack at most this many bytes in one run.
    pub max_repack: Option<u64>,
    /// Decide and report, write and delete nothing.
    pub dry_run: bool,
    /// Rewrite every pack and index file sealed with an older key epoch than the current
    /// one (after `key rotate`), so that an old key opens none of them.
    pub reencrypt: bool,
}

/// Pack counts by fate.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PackCounts {
    /// Packs kept as they are.
    pub kept: u64,
    /// Packs whose used blobs are copied to new packs.
    pub repacked: u64,
    /// Indexed packs no snapshot uses.
    pub unused: u64,
    /// Stored packs no live index lists (left by interrupted writers).
    pub unindexed: u64,
    /// Packs the index lists that storage does not have (dropped from the new index).
    pub missing: u64,
    /// Condemned packs that a snapshot still references, indexed again.
    pub rescued: u64,
    /// Packs written by repacking.
    pub written: u64,
    /// Packs sealed with an older key epoch that are rewritten (`--reencrypt`).
    pub reencrypted: u64,
    /// Packs sealed with an older key epoch left for a later run (over `--max-repack`).
    pub old_epoch_left: u64,
}

/// Byte figures (as stored).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ByteCounts {
    /// All pack bytes before.
    pub total: u64,
    /// Bytes of blobs the snapshots reference.
    pub used: u64,
    /// Bytes of blobs nothing references (in indexed packs) before.
    pub unused_before: u64,
    /// Unused bytes that stay in kept packs.
    pub unused_after: u64,
    /// Live bytes copied into new packs.
    pub repacked: u64,
    /// Bytes of the packs condemned (deleted now or once the writers are done).
    pub condemned: u64,
    /// Pack bytes written (repacked blobs and headers).
    pub written: u64,
    /// Live bytes of packs sealed with an older key epoch, rewritten (`--reencrypt`).
    pub reencrypted: u64,
}

/// What a prune run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Snapshots whose blobs were kept.
    pub snapshots: usize,
    /// Distinct trees read.
    pub trees_read: u64,
    /// Packs by fate.
    pub packs: PackCounts,
    /// Bytes by fate.
    pub bytes: ByteCounts,
    /// Snapshot files removed that a tombstone already named (an interrupted forget).
    pub forgotten_files_removed: u64,
    /// The condemnation this run wrote.
    pub condemnation: Option<Id>,
    /// Condemnations carried out.
    pub completed: Vec<Completed>,
    /// Condemnations that wait for writers.
    pub waiting: Vec<Waiting>,
}

/// Runs a prune: finishes earlier condemnations that are ripe, condemns what is unused
/// now, and deletes it at once when no writer that could reference it is running.
pub fn prune(repo: &Arc<Repository>, opts: &PruneOptions, progress: &dyn Progress) -> Result<PruneReport> {
    if !opts.dry_run {
        repo.check_can_delete()?;
    }
    let me = if opts.dry_run { None } else { Some(writers::announce(repo, "prune")?) };
    let my_id = me.as_ref().map(|a| a.id());
    let mut report = PruneReport { dry_run: opts.dry_run, ..Default::default() };
    let (done, waiting) = complete::complete(repo, my_id, opts.dry_run, progress)?;
    report.completed.extend(done);
    report.waiting = waiting;
    condemn(repo, opts, progress, my_id, &mut report)?;
    if !opts.dry_run {
        let (done, waiting) = complete::complete(repo, my_id, false, progress)?;
        report.completed.extend(done);
        report.waiting = waiting;
    }
    if let Some(a) = me {
        a.end()?;
    }
    Ok(report)
}

/// Phase 2 alone: carries out the condemnations whose writers are gone (what `prune
/// --wait` repeats while it waits, without marking everything again).
pub fn complete_pending(repo: &Arc<Repository>, progress: &dyn Progress) -> Result<(Vec<Completed>, Vec<Waiting>)> {
    let me = writers::announce(repo, "prune")?;
    let r = complete::complete(repo, Some(me.id()), false, progress)?;
    me.end()?;
    Ok(r)
}

/// The index files as prune sees them.
struct Loaded {
    /// Every index file's id (all are superseded by the new index).
    all: Vec<IndexId>,
    /// How many of them are live (not superseded).
    live_files: usize,
    /// Live packs that storage has, with their entries (each pack once).
    live: HashMap<PackId, IndexPack>,
    /// Packs that only superseded index files list, that a condemnation names and that
    /// storage has (readers fall back to them; marking rescues those still referenced).
    condemned: HashMap<PackId, IndexPack>,
    missing: HashSet<PackId>,
}

fn load_index(repo: &Repository, stored: &mut HashMap<PackId, (BlobKind, u64)>) -> Result<Loaded> {
    let files = repo.load_index_files()?;
    // Packs are listed after the index files are read: packs are stored before an index
    // lists them, so a listed pack that this listing lacks is really gone (listed first,
    // a pack that a concurrent backup stored meanwhile would look missing).
    *stored = repo.list_packs()?.into_iter().map(|p| (p.id, (p.kind, p.size))).collect();
    let superseded = superseded_index_files(&files);
    let mut l = Loaded {
        all: Vec::new(),
        live_files: 0,
        live: HashMap::new(),
        condemned: HashMap::new(),
        missing: HashSet::new(),
    };
    let mut old = Vec::new();
    for (id, r) in files {
        l.all.push(id);
        match r {
            Ok(f) if superseded.contains(&id) => old.push(f),
            Ok(f) => {
                l.live_files += 1;
                for p in f.packs {
                    if stored.contains_key(&p.id) {
                        l.live.entry(p.id).or_insert(p);
                    } else {
                        l.missing.insert(p.id);
                    }
                }
            }
            Err(_) if superseded.contains(&id) => {}
            Err(e) => {
                return Err(OpError::PruneRefused(format!(
                    "{e}; without it prune cannot tell which packs are in use (run `vault repair index` first)"
                )));
            }
        }
    }
    // Readers fall back to packs a prune condemned (not to what `repair index` superseded).
    let doomed = if old.is_empty() { HashSet::new() } else { repo.condemned_packs()? };
    for p in old.into_iter().flat_map(|f| f.packs) {
        if doomed.contains(&p.id) && stored.contains_key(&p.id) && !l.live.contains_key(&p.id) {
            l.condemned.entry(p.id).or_insert(p);
        }
    }
    // A pack another copy of the index lists after all is not missing.
    l.missing.retain(|p| !l.live.contains_key(p));
    Ok(l)
}

fn master_of<'a>(packs: impl Iterator<Item = &'a IndexPack>) -> MasterIndex {
    let mut m = MasterIndex::new();
    for p in packs {
        m.add_pack(p.id, p.kind, p.size, &p.blobs);
    }
    m.compact();
    m
}

/// The snapshots that decide what is live (without those a tombstone names, whose files
/// are removed here), loaded; a damaged one stops the prune.
fn live_snapshots(repo: &Repository, report: &mut PruneReport, dry_run: bool) -> Result<Vec<(SnapshotId, BlobId)>> {
    let forgotten = forget::forgotten(repo)?;
    let ids = repo.list_snapshots()?;
    let (gone, ids): (Vec<SnapshotId>, Vec<SnapshotId>) = ids.into_iter().partition(|id| forgotten.contains(id));
    if !dry_run {
        for id in &gone {
            repo.delete_file(StoredObject::Snapshot(*id))?;
        }
    }
    report.forgotten_files_removed = gone.len() as u64;
    let loaded: Vec<(SnapshotId, Result<_, RepoError>)> =
        ids.par_iter().map(|id| (*id, repo.load_snapshot(id))).collect();
    let mut roots = Vec::new();
    for (id, r) in loaded {
        match r {
            Ok(s) => roots.push((id, s.tree)),
            // Forgotten meanwhile: its data may go.
            Err(RepoError::Backend(e)) if e.kind == vault_repo::backend::BackendErrorKind::NotFound => {}
            Err(e @ RepoError::Integrity { .. }) => {
                return Err(OpError::PruneRefused(format!(
                    "{e}; prune cannot tell what it references (forget it with `vault forget {}`, or repair it)",
                    id.short()
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(roots)
}

/// Phase 1.
fn condemn(
    repo: &Arc<Repository>,
    opts: &PruneOptions,
    progress: &dyn Progress,
    me: Option<Id>,
    report: &mut PruneReport,
) -> Result<()> {
    let pending = repo.condemned_packs()?;
    // tmp/ is listed before this run writes anything, so its own files are not in it.
    let tmp = repo.list_tmp()?;
    let roots = live_snapshots(repo, report, opts.dry_run)?;
    report.snapshots = roots.len();
    let mut stored: HashMap<PackId, (BlobKind, u64)> = HashMap::new();
    let loaded = load_index(repo, &mut stored)?;
    report.bytes.total = stored.values().map(|(_, s)| s).sum();
    report.packs.missing = loaded.missing.len() as u64;

    let handle = IndexedRepository::with_views(
        repo.clone(),
        master_of(loaded.live.values()),
        master_of(loaded.condemned.values()),
    );
    let life = mark::mark(&handle, roots.iter().map(|(_, t)| *t))?;
    report.trees_read = life.trees;
    if life.missing_count > 0 {
        let shown: Vec<String> = life.missing.iter().map(|(k, id)| format!("{} {}", k.dir(), id.short())).collect();
        return Err(OpError::PruneRefused(format!(
            "the snapshots reference {} blob(s) that no stored pack holds (e.g. {}); run `vault check` and `vault repair` first",
            life.missing_count,
            shown.join(", ")
        )));
    }

    // Usage of each live pack: a blob counts as used in the one pack the index reads it
    // from; other copies are unused.
    let index = handle.index();
    let mut usage: Vec<PackUse> = loaded
        .live
        .values()
        .map(|p| {
            let mut u = PackUse {
                id: p.id,
                kind: p.kind,
                size: p.size,
                used_blobs: 0,
                used_bytes: 0,
                unused_blobs: 0,
                unused_bytes: 0,
                old_epoch: false,
            };
            for b in &p.blobs {
                let used = index.slot(p.kind, &b.id).is_some_and(|s| life.marks.get(p.kind, s))
                    && index.get(p.kind, &b.id).is_some_and(|l| l.pack == p.id);
                if used {
                    u.used_blobs += 1;
                    u.used_bytes += u64::from(b.length);
                } else {
                    u.unused_blobs += 1;
                    u.unused_bytes += u64::from(b.length);
                }
            }
            u
        })
        .collect();
    usage.sort_by_key(|u| u.id);
    if opts.reencrypt {
        mark_old_epochs(repo, &loaded.live, &mut usage)?;
    }
    let config = repo.config();
    let limits = Limits {
        max_unused: opts.max_unused,
        max_repack: opts.max_repack,
        small: [u64::from(config.data_pack_size) / 4, u64::from(config.tree_pack_size) / 4],
    };
    let fates = plan::decide(&usage, &limits);

    let mut condemned: Vec<(PackId, BlobKind)> = Vec::new();
    let mut kept: Vec<&IndexPack> = Vec::new();
    let mut jobs = Vec::new();
    for (u, fate) in usage.iter().zip(&fates) {
        report.bytes.used += u.used_bytes;
        report.bytes.unused_before += u.unused_bytes;
        let p = &loaded.live[&u.id];
        match fate {
            Fate::Keep => {
                report.packs.kept += 1;
                report.packs.old_epoch_left += u64::from(u.old_epoch);
                report.bytes.unused_after += u.unused_bytes;
                kept.push(p);
            }
            Fate::Repack => {
                report.packs.repacked += 1;
                if u.old_epoch {
                    report.packs.reencrypted += 1;
                    report.bytes.reencrypted += u.used_bytes;
                }
                report.bytes.repacked += u.used_bytes;
                report.bytes.condemned += u.size;
                condemned.push((u.id, u.kind));
                let keep = p
                    .blobs
                    .iter()
                    .filter(|b| {
                        index.slot(p.kind, &b.id).is_some_and(|s| life.marks.get(p.kind, s))
                            && index.get(p.kind, &b.id).is_some_and(|l| l.pack == p.id)
                    })
                    .copied()
                    .collect();
                jobs.push(repack::RepackJob { id: u.id, kind: u.kind, size: u.size, keep });
            }
            Fate::Delete => {
                report.packs.unused += 1;
                report.bytes.condemned += u.size;
                condemned.push((u.id, u.kind));
            }
        }
    }
    let rescued: Vec<&IndexPack> = life.rescued.iter().filter_map(|p| loaded.condemned.get(p)).collect();
    report.packs.rescued = rescued.len() as u64;
    kept.extend(rescued.iter().copied());
    let rescued_ids: HashSet<PackId> = life.rescued;
    for (id, (kind, size)) in &stored {
        if !loaded.live.contains_key(id) && !rescued_ids.contains(id) && !pending.contains(id) {
            report.packs.unindexed += 1;
            report.bytes.condemned += size;
            condemned.push((*id, *kind));
        }
    }
    // Nothing to condemn, nothing to re-index and one index file already: no new state
    // (superseded files still stored belong to a pending condemnation, which deletes them).
    // (A re-encryption always writes the index anew: the old one may be sealed with an old key.)
    let settled = condemned.is_empty()
        && loaded.missing.is_empty()
        && rescued_ids.is_empty()
        && loaded.live_files <= 1
        && !opts.reencrypt;
    if opts.dry_run || settled {
        return Ok(());
    }

    progress.set_totals(jobs.len() as u64, report.bytes.repacked);
    let (stats, new_packs) = repack::repack(repo, &jobs, opts.reencrypt, progress)?;
    report.packs.written = new_packs.len() as u64;
    report.bytes.written = stats.stored_bytes_added;

    condemned.sort();
    let c = Condemnation {
        version: 1,
        time: now_rfc3339(),
        hostname: this_host(),
        snapshots: roots.iter().map(|(id, _)| *id).collect(),
        data_packs: condemned.iter().filter(|(_, k)| *k == BlobKind::Data).map(|(p, _)| *p).collect(),
        tree_packs: condemned.iter().filter(|(_, k)| *k == BlobKind::Tree).map(|(p, _)| *p).collect(),
        indexes: loaded.all.clone(),
        tmp,
    };
    // The condemnation before the index that stops listing its packs: whoever finds the
    // new index also finds what it condemns.
    let c_id = repo.save_document(StoredKind::Condemnation, &c)?;
    report.condemnation = Some(c_id);
    let mut packs: Vec<IndexPack> = kept.into_iter().cloned().collect();
    packs.extend(new_packs);
    write_index(repo, packs, loaded.all)?;
    // Only now, with the new index stored, are the writers that may hold the old one
    // exactly those announced.
    write_wait_record(repo, c_id, me)?;
    Ok(())
}

/// Marks the used packs whose blobs an older key epoch sealed (one small read each).
fn mark_old_epochs(repo: &Repository, live: &HashMap<PackId, IndexPack>, usage: &mut [PackUse]) -> Result<()> {
    let old: Vec<bool> = usage
        .par_iter()
        .map(|u| match live.get(&u.id).and_then(|p| p.blobs.first()) {
            Some(b) if u.used_blobs > 0 => repo.sealed_before_current_epoch(u.kind, &u.id, u64::from(b.offset)),
            _ => Ok(false),
        })
        .collect::<std::result::Result<_, _>>()?;
    for (u, o) in usage.iter_mut().zip(old) {
        u.old_epoch = o;
    }
    Ok(())
}

/// Writes `packs` as index files; the last one supersedes `supersedes`, so that no moment
/// exists at which a superseded file is ignored while its packs are not yet listed again.
fn write_index(repo: &Repository, packs: Vec<IndexPack>, supersedes: Vec<IndexId>) -> Result<()> {
    let mut current = IndexFile::default();
    for p in packs {
        if current.blob_count() + p.blobs.len() > BLOBS_PER_INDEX_FILE && !current.packs.is_empty() {
            repo.save_index(&std::mem::take(&mut current))?;
        }
        current.packs.push(p);
    }
    current.supersedes = supersedes;
    repo.save_index(&current)?;
    Ok(())
}

/// Lists the writers (removing those dead on this host) and records them as what
/// condemnation `c` waits for; `me` (the running prune) is left out.
fn write_wait_record(repo: &Repository, c: Id, me: Option<Id>) -> Result<WaitRecord> {
    let alive = writers::prune_dead_writers(repo)?;
    let w = WaitRecord {
        version: 1,
        time: now_rfc3339(),
        hostname: this_host(),
        condemnation: c,
        writers: alive.iter().map(|w| w.id).filter(|id| Some(*id) != me).collect(),
    };
    repo.save_document(StoredKind::WaitRecord, &w)?;
    Ok(w)
}
