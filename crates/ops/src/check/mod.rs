//! `check`: prove that every snapshot can be restored.
//!
//! Without `read_data`, nothing but the tail of tree packs is downloaded: key files, index
//! files, pack existence and sizes, tree pack headers against the index, and every
//! snapshot's tree graph. With `read_data`, chosen packs are downloaded in full, hashed,
//! and every blob is decrypted and verified. Problems are tied back to the snapshots and
//! paths they affect.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rayon::prelude::*;
use serde::Serialize;

mod damage;
mod read_data;

use damage::{Damage, DamageFold};
use read_data::*;

use super::error::Result;
use super::progress::Progress;
use super::select::time_of;
use super::walk::{Flow, TreeFold, Visit, fold, subtree, walk_tree};
use vault_format::check_record::CheckRecord;
use vault_format::index::IndexFile;
use vault_format::pack::{BlobKind, PackEntry};
use vault_format::tree::{ContentItem, Node, Tree};
use vault_format::xorshift::Xorshift64;
use vault_format::{BlobId, PackId, SnapshotId};
use vault_repo::backend::BackendErrorKind;
use vault_repo::repository::superseded_index_files;
use vault_repo::{
    IndexedRepository, MasterIndex, ObjectBytes, RepoError, Repository, StoredKind, StoredObject, StoredPack,
};

/// Which packs `--read-data` reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Subset {
    /// Every pack.
    All,
    /// Deterministic part `n` (1-based) of `m`.
    Part {
        /// Which part.
        n: u64,
        /// Of how many.
        m: u64,
    },
    /// A random share of the packs.
    Percent(f64),
    /// Random packs up to a byte budget.
    Bytes(u64),
    /// The packs verified longest ago (never-verified first), within a budget.
    Rotate {
        /// Stop after reading this many bytes.
        max_bytes: Option<u64>,
        /// Stop after this long.
        max_duration: Option<Duration>,
    },
}

#[derive(Clone, Debug, Default)]
/// What `check` verifies.
pub struct CheckOptions {
    /// `None`: structure only.
    pub read_data: Option<Subset>,
    /// Threads that download and verify packs at once.
    pub read_threads: usize,
    /// Host recorded in the check record.
    pub hostname: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
/// The kinds of damage `check` reports (the `kind` field of `--json`).
pub enum ProblemKind {
    /// A key file does not parse.
    KeyFile,
    /// An index file does not open or decode.
    IndexFile,
    /// A snapshot does not open or decode.
    Snapshot,
    /// An indexed pack is not stored.
    PackMissing,
    /// A pack's stored size differs from the index.
    PackSize,
    /// A pack's header or blobs do not authenticate.
    PackDamaged,
    /// A pack's header lists other blobs than the index.
    PackHeaderMismatch,
    /// A snapshot needs a tree no index lists.
    TreeMissing,
    /// A tree does not open or decode.
    TreeDamaged,
    /// A file needs a data blob no index lists.
    DataMissing,
    /// A file's content list gives a data blob another length than the index.
    ContentLength,
    /// A blob read with `--read-data` does not open or hash to its id.
    BlobDamaged,
    /// A tombstone, condemnation, wait record or key record does not open: damaged, or
    /// forged by a key that may not write it (a write-only key's tombstone, say).
    Record,
}

impl ProblemKind {
    /// The kind as `check` prints it (kebab-case, as `key-file`).
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::KeyFile => "key-file",
            ProblemKind::IndexFile => "index-file",
            ProblemKind::Snapshot => "snapshot",
            ProblemKind::PackMissing => "pack-missing",
            ProblemKind::PackSize => "pack-size",
            ProblemKind::PackDamaged => "pack-damaged",
            ProblemKind::PackHeaderMismatch => "pack-header-mismatch",
            ProblemKind::TreeMissing => "tree-missing",
            ProblemKind::TreeDamaged => "tree-damaged",
            ProblemKind::DataMissing => "data-missing",
            ProblemKind::ContentLength => "content-length",
            ProblemKind::BlobDamaged => "blob-damaged",
            ProblemKind::Record => "record",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
/// One piece of damage.
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The damaged or missing object, as a repository path or blob id.
    pub object: String,
    /// What is wrong.
    pub message: String,
    /// Short ids of the snapshots that cannot be fully restored because of it.
    pub snapshots: Vec<String>,
    /// Affected paths, as `<short id>:<path>` (at most 100 listed).
    pub paths: Vec<String>,
    /// Affected paths in all, listed or not.
    pub paths_total: u64,
}

#[derive(Clone, Debug, Serialize)]
/// Something `check` found that is not damage (leftover temporary files, for example).
pub struct Info {
    /// What kind (the `kind` field of `--json`).
    pub kind: &'static str,
    /// The object it is about.
    pub object: String,
    /// What was found.
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize)]
/// How much of the repository `check --read-data` runs have verified.
pub struct Coverage {
    /// Packs in the repository.
    pub packs_total: usize,
    /// Packs verified by this or an earlier run.
    pub packs_verified: usize,
    /// Bytes in all packs.
    pub bytes_total: u64,
    /// Bytes in verified packs.
    pub bytes_verified: u64,
    /// When every pack has been verified: how many check runs and days that took.
    pub all_verified_within_runs: Option<usize>,
    /// See `all_verified_within_runs`.
    pub all_verified_within_days: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
/// What `check` found.
pub struct CheckReport {
    /// Damage; empty when the repository is intact.
    pub problems: Vec<Problem>,
    /// Findings that are not damage.
    pub info: Vec<Info>,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Snapshots left out because a rewrite or repair replaced them.
    pub replaced_snapshots: usize,
    /// Distinct trees read.
    pub trees: usize,
    /// Blobs indexed.
    pub blobs: usize,
    /// Packs indexed.
    pub packs: usize,
    /// Packs read with `--read-data`.
    pub packs_read: usize,
    /// Bytes read with `--read-data`.
    pub bytes_read: u64,
    /// Packs read in full and found intact by this run.
    pub verified_packs: Vec<PackId>,
    /// Wall-clock time.
    pub duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Verification coverage, with `--read-data`.
    pub coverage: Option<Coverage>,
    /// Files in `tmp/`: left by writers that were interrupted, or being written now.
    pub tmp_files: usize,
    /// Their total size.
    pub tmp_bytes: u64,
    /// Why the record of the verified packs could not be stored (a read-only repository,
    /// say): the results stand, but the next rotating check will not know of this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_record_error: Option<String>,
    /// Blobs that cannot be read back (missing or damaged); repair uses this.
    #[serde(skip)]
    pub lost_blobs: HashSet<(BlobKind, BlobId)>,
}

const MAX_PATHS: usize = 100;

struct Problems {
    list: Vec<Problem>,
    by_object: HashMap<String, usize>,
}

impl Problems {
    fn add(&mut self, kind: ProblemKind, object: String, message: String) -> usize {
        if let Some(&i) = self.by_object.get(&object) {
            return i;
        }
        self.list.push(Problem {
            kind,
            object: object.clone(),
            message,
            snapshots: Vec::new(),
            paths: Vec::new(),
            paths_total: 0,
        });
        self.by_object.insert(object, self.list.len() - 1);
        self.list.len() - 1
    }
}

/// Expected content of one pack according to the (non-superseded) index.
struct IndexedPack {
    kind: BlobKind,
    size: u64,
    blobs: Vec<PackEntry>,
}

/// A pack that the index lists and the backend stores with the listed size.
#[derive(Clone, Copy, Debug)]
struct UsablePack {
    id: PackId,
    kind: BlobKind,
    size: u64,
}

/// Checks made again when the repository changed under a run that found problems.
const MAX_RECHECKS: usize = 5;

/// Checks the repository as `opts` say; see the module documentation.
///
/// Other commands may run meanwhile. Only deletions can make a run report a problem that
/// is not there (a prune deletes packs and index files, a forget snapshots, after the run
/// listed them). So when a run finds problems and a file it listed in `index/`,
/// `snapshots/` or `condemned/` is gone by its end, the check runs again (data already
/// verified is not read again); what a run during which nothing was deleted finds is
/// real. If deletions go on through every run, the check says so instead of reporting
/// damage it cannot tell from a prune's work.
pub fn check(repo: &Arc<Repository>, opts: &CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    let started = Instant::now();
    let mut opts = opts.clone();
    let mut verified: Vec<PackId> = Vec::new();
    let mut reruns = 0;
    loop {
        let before = state(repo)?;
        let grants = repo.list_files(StoredKind::Grant)?.len();
        let result = check_once(repo, &opts, progress);
        let after: HashSet<vault_format::Id> = state(repo)?.into_iter().collect();
        let moved = before.iter().any(|name| !after.contains(name));
        let failed = match &result {
            Ok(r) => !r.problems.is_empty(),
            // A file that vanished while being read is what a concurrent prune causes.
            Err(crate::OpError::Repo(RepoError::Backend(e))) => e.kind == BackendErrorKind::NotFound,
            Err(_) => false,
        };
        if failed && repo.list_files(StoredKind::Grant)?.len() != grants {
            // A `key rotate` meanwhile: what was sealed since needs keys this run was not
            // given when it opened, which is no damage.
            return Err(crate::OpError::Unsettled(
                "the repository's key was rotated during the check, and files sealed with the new key cannot be read by this run; run check again".into(),
            ));
        }
        if !(failed && moved) {
            let mut report = result?;
            report.verified_packs.extend(verified);
            if reruns > 0 {
                report.info.push(Info {
                    kind: "rechecked",
                    object: String::new(),
                    message: format!(
                        "files were deleted during the check (a prune or forget ran); checked {reruns} more time(s)"
                    ),
                });
            }
            report.duration_seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        if reruns == MAX_RECHECKS {
            return Err(crate::OpError::Unsettled(format!(
                "files were deleted during each of {} check runs (prunes or forgets running?), so the problems found may be their work; run check again",
                reruns + 1
            )));
        }
        reruns += 1;
        if let Ok(r) = result {
            // Packs already verified need no second download.
            verified.extend(r.verified_packs);
        }
        opts.read_data = None;
    }
}

/// What a concurrent command deletes that a check depends on: the names in `index/`,
/// `snapshots/` and `condemned/`.
fn state(repo: &Repository) -> Result<Vec<vault_format::Id>> {
    let mut names = Vec::new();
    for kind in [StoredKind::Index, StoredKind::Snapshot, StoredKind::Condemnation] {
        names.extend(repo.list_files(kind)?.into_iter().map(|(id, _)| id));
    }
    Ok(names)
}

fn check_once(repo: &Arc<Repository>, opts: &CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    let mut c = Checker {
        repo,
        report: CheckReport::default(),
        problems: Problems { list: Vec::new(), by_object: HashMap::new() },
        bad_blobs: HashMap::new(),
    };
    c.check_keys()?;
    c.check_records()?;
    c.check_tmp()?;
    // Snapshots before the index: a snapshot is written after the index files that list
    // its blobs, so every snapshot listed now has its index entries stored already. (The
    // other order reports the snapshot of a backup that finished meanwhile as damaged.)
    let snapshots = repo.load_all_snapshots()?;
    c.flag_future_snapshots(&snapshots.0);
    let (indexed, index, old) = c.check_index()?;
    let (usable, condemned) = c.check_packs(&indexed, &old)?;
    c.check_tree_headers(&indexed, &usable)?;
    if let Some(subset) = &opts.read_data {
        c.read_data(subset, opts, &indexed, &usable, progress)?;
    }
    c.check_trees(&IndexedRepository::with_views(repo.clone(), index, condemned), snapshots)?;
    Ok(c.report)
}

/// The state of one check run, phase by phase.
struct Checker<'a> {
    repo: &'a Arc<Repository>,
    report: CheckReport,
    problems: Problems,
    /// Blob → problem that makes it unreadable.
    bad_blobs: HashMap<(BlobKind, BlobId), usize>,
}

impl Checker<'_> {
    fn mark_lost(&mut self, kind: BlobKind, blobs: &[PackEntry], problem: usize) {
        for b in blobs {
            self.bad_blobs.insert((kind, b.id), problem);
        }
    }

    /// Snapshots dated ahead of this computer's clock: not damage, but one would be
    /// `latest` until its date comes (a key holder planting a parent for another host).
    fn flag_future_snapshots(&mut self, snapshots: &[(SnapshotId, vault_format::snapshot::Snapshot)]) {
        let now = chrono::Utc::now();
        for (id, s) in snapshots.iter().filter(|(_, s)| crate::rollback::is_future(s, now)) {
            self.report.info.push(Info {
                kind: "future_snapshot",
                object: StoredObject::Snapshot(*id).path(),
                message: format!(
                    "dated {} (host {}), ahead of this computer's clock; backups do not take it as their parent",
                    s.time, s.hostname
                ),
            });
        }
    }

    /// Key files: name matches bytes, and the JSON is well formed.
    fn check_keys(&mut self) -> Result<()> {
        for (id, r) in self.repo.load_key_files()? {
            if let Err(e) = r {
                self.problems.add(ProblemKind::KeyFile, StoredObject::Key(id).path(), e.to_string());
            }
        }
        Ok(())
    }

    /// The deletion protocol's records and the key records: each must open (a tombstone
    /// that does not is ignored by every reader, but someone wrote it).
    fn check_records(&mut self) -> Result<()> {
        use vault_format::condemnation::{Condemnation, WaitRecord};
        use vault_format::tombstone::Tombstone;
        let mut bad: Vec<(StoredObject, String)> = Vec::new();
        let mut collect = |kind: StoredKind, errs: Vec<(vault_format::Id, String)>| {
            bad.extend(errs.into_iter().map(|(id, e)| (StoredObject::new(kind, id), e)));
        };
        fn errors<T>(v: Vec<(vault_format::Id, vault_repo::error::Result<T>)>) -> Vec<(vault_format::Id, String)> {
            v.into_iter().filter_map(|(id, r)| r.err().map(|e| (id, e.to_string()))).collect()
        }
        collect(StoredKind::Tombstone, errors(self.repo.load_documents::<Tombstone>(StoredKind::Tombstone)?));
        collect(StoredKind::Condemnation, errors(self.repo.load_documents::<Condemnation>(StoredKind::Condemnation)?));
        collect(StoredKind::WaitRecord, errors(self.repo.load_documents::<WaitRecord>(StoredKind::WaitRecord)?));
        collect(StoredKind::KeyRecord, errors(self.repo.load_key_records()?));
        for (object, e) in bad {
            self.problems.add(ProblemKind::Record, object.path(), e);
        }
        Ok(())
    }

    /// Temporary files are not damage (readers ignore them) but cost space: counted, so
    /// that space lost to interrupted writers is seen.
    fn check_tmp(&mut self) -> Result<()> {
        let tmp = self.repo.list_tmp_sized()?;
        if tmp.is_empty() {
            return Ok(());
        }
        self.report.tmp_files = tmp.len();
        self.report.tmp_bytes = tmp.iter().map(|(_, size)| size).sum();
        self.report.info.push(Info {
            kind: "tmp_files",
            object: "tmp/".into(),
            message: format!(
                "{} files, {} bytes, left by interrupted writers (or being written now); the next writer on their host or `vault prune` removes them",
                self.report.tmp_files, self.report.tmp_bytes
            ),
        });
        Ok(())
    }

    /// Index files: the packs each lists, and the index built from them; and apart, the
    /// packs that only superseded index files list.
    fn check_index(&mut self) -> Result<(HashMap<PackId, IndexedPack>, MasterIndex, Vec<IndexFile>)> {
        let files = self.repo.load_index_files()?;
        let superseded = superseded_index_files(&files);
        let mut indexed: HashMap<PackId, IndexedPack> = HashMap::new();
        let mut index = MasterIndex::new();
        let mut seen_blobs: HashMap<(BlobKind, BlobId), u32> = HashMap::new();
        let mut old = Vec::new();
        for (id, r) in &files {
            let object = StoredObject::Index(*id).path();
            if superseded.contains(id) {
                self.report.info.push(Info {
                    kind: "superseded_index",
                    object,
                    message: "replaced by a newer index file (prune deletes it)".into(),
                });
                if let Ok(f) = r {
                    old.push(f.clone());
                }
                continue;
            }
            match r {
                Ok(f) => add_index_file(f, &mut indexed, &mut index, &mut seen_blobs),
                Err(e) => {
                    self.problems.add(ProblemKind::IndexFile, object, e.to_string());
                }
            }
        }
        index.compact();
        let dups = seen_blobs.values().filter(|&&n| n > 1).count();
        if dups > 0 {
            self.report.info.push(Info {
                kind: "duplicate_blobs",
                object: String::new(),
                message: format!(
                    "{dups} blobs are stored in more than one pack (harmless; prune will reclaim the space)"
                ),
            });
        }
        self.report.blobs = seen_blobs.len();
        Ok((indexed, index, old))
    }

    /// Packs: existence and size. Returns the packs whose blobs can be read, and the
    /// stored packs that only superseded index files list (readers fall back to them).
    fn check_packs(
        &mut self,
        indexed: &HashMap<PackId, IndexedPack>,
        old: &[IndexFile],
    ) -> Result<(Vec<UsablePack>, MasterIndex)> {
        let condemnations = self.repo.condemned_packs()?;
        let stored: HashMap<PackId, StoredPack> = self.repo.list_packs()?.into_iter().map(|p| (p.id, p)).collect();
        self.report.packs = indexed.len();
        let mut usable = Vec::new();
        for (id, p) in indexed {
            let object = StoredObject::Pack(p.kind, *id).path();
            let problem = match stored.get(id) {
                None => Some((ProblemKind::PackMissing, "listed in the index but not stored".to_string())),
                Some(s) if s.kind != p.kind => Some((ProblemKind::PackMissing, "stored under the wrong kind".into())),
                Some(s) if s.size != p.size => {
                    Some((ProblemKind::PackSize, format!("stored size {}, the index says {}", s.size, p.size)))
                }
                Some(_) => None,
            };
            match problem {
                Some((kind, message)) => {
                    let i = self.problems.add(kind, object, message);
                    self.mark_lost(p.kind, &p.blobs, i);
                }
                None => usable.push(UsablePack { id: *id, kind: p.kind, size: p.size }),
            }
        }
        for s in stored.values() {
            if indexed.contains_key(&s.id) {
                continue;
            }
            let object = StoredObject::Pack(s.kind, s.id).path();
            self.report.info.push(if condemnations.contains(&s.id) {
                Info {
                    kind: "condemned_pack",
                    object,
                    message: format!(
                        "{} bytes condemned by prune; deleted once the writers its condemnation waits for are done",
                        s.size
                    ),
                }
            } else {
                Info {
                    kind: "unreferenced_pack",
                    object,
                    message: format!(
                        "{} bytes not in any index (left by an interrupted backup, or repaired away; prune deletes it)",
                        s.size
                    ),
                }
            });
        }
        let mut condemned = MasterIndex::new();
        for p in old.iter().flat_map(|f| &f.packs) {
            let intact = stored.get(&p.id).is_some_and(|s| s.size == p.size && s.kind == p.kind);
            if condemnations.contains(&p.id) && !indexed.contains_key(&p.id) && intact {
                condemned.add_pack(p.id, p.kind, p.size, &p.blobs);
            }
        }
        condemned.compact();
        Ok((usable, condemned))
    }

    /// Tree pack headers against the index (only the tail of each tree pack is read).
    fn check_tree_headers(&mut self, indexed: &HashMap<PackId, IndexedPack>, usable: &[UsablePack]) -> Result<()> {
        let tree_packs: Vec<_> = usable.iter().filter(|p| p.kind == BlobKind::Tree).collect();
        let repo = self.repo;
        let results: Vec<_> =
            tree_packs.par_iter().map(|p| (p.id, repo.read_pack_header(p.kind, &p.id, p.size))).collect();
        for (id, r) in results {
            let p = &indexed[&id];
            let object = StoredObject::Pack(p.kind, id).path();
            let problem = match r {
                Ok((kind, entries)) => header_mismatch(kind, &entries, p).map(|m| (ProblemKind::PackHeaderMismatch, m)),
                Err(RepoError::Backend(e)) => return Err(RepoError::Backend(e).into()),
                Err(e) => Some((ProblemKind::PackDamaged, e.to_string())),
            };
            if let Some((kind, message)) = problem {
                let i = self.problems.add(kind, object, message);
                self.mark_lost(p.kind, &p.blobs, i);
            }
        }
        Ok(())
    }

    /// Full data reads of the packs `subset` chooses, and a check record of those found intact.
    fn read_data(
        &mut self,
        subset: &Subset,
        opts: &CheckOptions,
        indexed: &HashMap<PackId, IndexedPack>,
        usable: &[UsablePack],
        progress: &dyn Progress,
    ) -> Result<()> {
        let records = self.repo.load_check_records()?;
        let chosen = choose_packs(usable, subset, &records)?;
        let budget_time = match subset {
            Subset::Rotate { max_duration, .. } => *max_duration,
            _ => None,
        };
        progress.set_totals(chosen.len() as u64, chosen.iter().map(|p| p.size).sum());
        let read = read_packs(self.repo, &chosen, indexed, opts.read_threads.max(1), budget_time, progress)?;
        self.report.packs_read = read.verified.len() + read.failed.len();
        self.report.bytes_read = read.bytes;
        for FailedPack { object, failure: f } in read.failed {
            let i = self.problems.add(f.kind, object, f.message);
            for b in f.blobs {
                self.bad_blobs.insert(b, i);
            }
        }
        if !read.verified.is_empty() {
            let record = CheckRecord {
                version: 1,
                time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                hostname: opts.hostname.clone(),
                packs: read.verified.clone(),
            };
            // The record is advisory: failing to store it must not hide what the run found.
            if let Err(e) = self.repo.save_check_record(&record) {
                self.report.check_record_error = Some(e.to_string());
            }
        }
        self.report.verified_packs = read.verified;
        let records = self.repo.load_check_records()?;
        self.report.coverage = Some(coverage(usable, &records));
        Ok(())
    }

    /// Snapshots and their trees: every tree read once, problems tied to the snapshots
    /// and paths they make unreadable.
    fn check_trees(
        &mut self,
        repo: &IndexedRepository,
        (mut snaps, bad_snaps): (vault_repo::repository::SnapshotList, Vec<(SnapshotId, RepoError)>),
    ) -> Result<()> {
        // Forgotten snapshots whose files are not deleted yet (an interrupted forget) are
        // not checked: their data may be pruned.
        let forgotten = crate::forget::forgotten(repo.repo())?;
        snaps.retain(|(id, _)| !forgotten.contains(id));
        snaps.sort_by_key(|a| time_of(&a.1));
        for (id, e) in bad_snaps {
            self.problems.add(ProblemKind::Snapshot, StoredObject::Snapshot(id).path(), e.to_string());
        }
        let replaced: HashSet<SnapshotId> = crate::select::replaced(&snaps);
        let mut damage =
            DamageFold { repo, bad_blobs: &self.bad_blobs, problems: &mut self.problems, bad_trees: HashMap::new() };
        let mut memo: HashMap<BlobId, Damage> = HashMap::new();
        for (id, snap) in &snaps {
            let found = fold(&mut damage, snap.tree, &mut memo)?;
            if replaced.contains(id) {
                self.report.replaced_snapshots += 1;
                if !found.is_empty() {
                    self.report.info.push(Info {
                        kind: "replaced_snapshot",
                        object: StoredObject::Snapshot(*id).path(),
                        message: "damaged, but replaced by a repaired snapshot".into(),
                    });
                }
                continue;
            }
            for (&i, &count) in found.iter() {
                let p = &mut damage.problems.list[i];
                p.snapshots.push(id.short());
                p.paths_total = p.paths_total.saturating_add(count);
            }
            if !found.is_empty() {
                damage.example_paths(&id.short(), snap.tree, &found, &memo);
            }
        }
        self.report.trees = memo.len();
        self.report.snapshots = snaps.len();
        self.settle_problems();
        Ok(())
    }

    /// Problems that only replaced (repaired-away) snapshots reach are history, not
    /// problems; every blob behind a problem is lost (repair uses the list).
    fn settle_problems(&mut self) {
        let walk_only = |k: ProblemKind| {
            matches!(k, ProblemKind::DataMissing | ProblemKind::TreeMissing | ProblemKind::TreeDamaged)
        };
        let mut kept = Vec::new();
        for p in std::mem::take(&mut self.problems.list) {
            if walk_only(p.kind) && p.snapshots.is_empty() {
                self.report.info.push(Info {
                    kind: "replaced_snapshot_data",
                    object: p.object,
                    message: format!("{} (only replaced snapshots need it)", p.message),
                });
            } else {
                kept.push(p);
            }
        }
        self.report.lost_blobs = self.bad_blobs.keys().copied().collect();
        for p in &kept {
            if walk_only(p.kind)
                && let Ok(id) = p.object.parse::<BlobId>()
            {
                let kind = if p.kind == ProblemKind::DataMissing { BlobKind::Data } else { BlobKind::Tree };
                self.report.lost_blobs.insert((kind, id));
            }
        }
        self.report.problems = kept;
    }
}

fn add_index_file(
    f: &IndexFile,
    indexed: &mut HashMap<PackId, IndexedPack>,
    index: &mut MasterIndex,
    seen: &mut HashMap<(BlobKind, BlobId), u32>,
) {
    index.add_file(f);
    for p in &f.packs {
        if indexed.contains_key(&p.id) {
            continue;
        }
        for b in &p.blobs {
            *seen.entry((p.kind, b.id)).or_insert(0) += 1;
        }
        indexed.insert(p.id, IndexedPack { kind: p.kind, size: p.size, blobs: p.blobs.clone() });
    }
}

fn header_mismatch(kind: BlobKind, entries: &[PackEntry], p: &IndexedPack) -> Option<String> {
    if kind != p.kind {
        return Some(format!("header says {kind:?} blobs, the index says {:?}", p.kind));
    }
    let mut a: Vec<_> = entries.to_vec();
    let mut b: Vec<_> = p.blobs.clone();
    a.sort_by_key(|e| e.offset);
    b.sort_by_key(|e| e.offset);
    (a != b).then(|| format!("the header lists {} blobs, the index {} (or their places differ)", a.len(), b.len()))
}
