//! `check`: prove that every snapshot can be restored.
//!
//! Without `read_data`, nothing but the tail of tree packs is downloaded: key files, index
//! files, pack existence and sizes, tree pack headers against the index, and every
//! snapshot's tree graph. With `read_data`, chosen packs are downloaded in full, hashed,
//! and every blob is decrypted and verified. Problems are tied back to the snapshots and
//! paths they affect.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde::Serialize;

use super::error::Result;
use super::progress::Progress;
use super::select::time_of;
use crate::format::check_record::CheckRecord;
use crate::format::index::IndexFile;
use crate::format::pack::{self, BlobKind, PackEntry};
use crate::format::tree::NodeKind;
use crate::format::{BlobId, IndexId, PackId, SnapshotId};
use crate::repo::repository::{INDEX_DIR, KEYS_DIR, SNAPSHOTS_DIR, pack_path};
use crate::repo::{MasterIndex, ObjectBytes, RepoError, Repository};

/// Which packs `--read-data` reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Subset {
    All,
    /// Deterministic part `n` (1-based) of `m`.
    Part {
        n: u64,
        m: u64,
    },
    /// A random share of the packs.
    Percent(f64),
    /// Random packs up to a byte budget.
    Bytes(u64),
    /// The packs verified longest ago (never-verified first), within a budget.
    Rotate {
        max_bytes: Option<u64>,
        max_duration: Option<Duration>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// `None`: structure only.
    pub read_data: Option<Subset>,
    /// Threads that download and verify packs at once.
    pub read_threads: usize,
    pub hostname: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    KeyFile,
    IndexFile,
    Snapshot,
    PackMissing,
    PackSize,
    PackDamaged,
    PackHeaderMismatch,
    TreeMissing,
    TreeDamaged,
    DataMissing,
    BlobDamaged,
}

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The damaged or missing object, as a repository path or blob id.
    pub object: String,
    pub message: String,
    /// Short ids of the snapshots that cannot be fully restored because of it.
    pub snapshots: Vec<String>,
    /// Affected paths, as `<short id>:<path>` (at most 100 listed).
    pub paths: Vec<String>,
    pub paths_total: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Info {
    pub kind: &'static str,
    pub object: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Coverage {
    pub packs_total: usize,
    pub packs_verified: usize,
    pub bytes_total: u64,
    pub bytes_verified: u64,
    /// When every pack has been verified: how many check runs and days that took.
    pub all_verified_within_runs: Option<usize>,
    pub all_verified_within_days: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    pub info: Vec<Info>,
    pub snapshots: usize,
    pub replaced_snapshots: usize,
    pub trees: usize,
    pub blobs: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    /// Packs read in full and found intact by this run.
    pub verified_packs: Vec<PackId>,
    pub duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
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

pub fn check(repo: &Repository, opts: &CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    let started = Instant::now();
    let mut report = CheckReport::default();
    let mut problems = Problems { list: Vec::new(), by_object: HashMap::new() };
    // Blob → problem that makes it unreadable.
    let mut bad_blobs: HashMap<(BlobKind, BlobId), usize> = HashMap::new();

    // Key files: name matches bytes, and the JSON is well formed.
    for (id, _) in repo.list_files(KEYS_DIR)? {
        if let Err(e) = repo
            .read_key_file(&crate::format::KeyId(id))
            .and_then(|k| k.validate().map_err(|e| RepoError::integrity(format!("{KEYS_DIR}/{id}"), e)))
        {
            problems.add(ProblemKind::KeyFile, format!("{KEYS_DIR}/{id}"), e.to_string());
        }
    }

    // Index files.
    let files = repo.load_index_files()?;
    let superseded: HashSet<IndexId> =
        files.iter().filter_map(|(_, r)| r.as_ref().ok()).flat_map(|f| f.supersedes.iter().copied()).collect();
    let mut indexed: HashMap<PackId, IndexedPack> = HashMap::new();
    let mut index = MasterIndex::new();
    let mut seen_blobs: HashMap<(BlobKind, BlobId), u32> = HashMap::new();
    for (id, r) in &files {
        if superseded.contains(id) {
            report.info.push(Info {
                kind: "superseded_index",
                object: format!("{INDEX_DIR}/{id}"),
                message: "replaced by a newer index file".into(),
            });
            continue;
        }
        match r {
            Ok(f) => add_index_file(f, &mut indexed, &mut index, &mut seen_blobs),
            Err(e) => {
                problems.add(ProblemKind::IndexFile, format!("{INDEX_DIR}/{id}"), e.to_string());
            }
        }
    }
    index.compact();
    let dups = seen_blobs.values().filter(|&&n| n > 1).count();
    if dups > 0 {
        report.info.push(Info {
            kind: "duplicate_blobs",
            object: String::new(),
            message: format!("{dups} blobs are stored in more than one pack (harmless; prune will reclaim the space)"),
        });
    }
    report.blobs = seen_blobs.len();

    // Packs: existence and size.
    let stored: HashMap<PackId, (BlobKind, u64)> =
        repo.list_packs()?.into_iter().map(|(k, id, size)| (id, (k, size))).collect();
    report.packs = indexed.len();
    let mut usable: Vec<(PackId, BlobKind, u64)> = Vec::new();
    for (id, p) in &indexed {
        let object = pack_path(p.kind, id);
        let problem = match stored.get(id) {
            None => Some(problems.add(ProblemKind::PackMissing, object, "listed in the index but not stored".into())),
            Some((kind, _)) if *kind != p.kind => {
                Some(problems.add(ProblemKind::PackMissing, object, "stored under the wrong kind".into()))
            }
            Some((_, size)) if *size != p.size => Some(problems.add(
                ProblemKind::PackSize,
                object,
                format!("stored size {size}, the index says {}", p.size),
            )),
            Some(_) => None,
        };
        match problem {
            Some(i) => {
                for b in &p.blobs {
                    bad_blobs.insert((p.kind, b.id), i);
                }
            }
            None => usable.push((*id, p.kind, p.size)),
        }
    }
    for (id, (kind, size)) in &stored {
        if !indexed.contains_key(id) {
            report.info.push(Info {
                kind: "unreferenced_pack",
                object: pack_path(*kind, id),
                message: format!("{size} bytes not in any index (left by an interrupted backup, or repaired away)"),
            });
        }
    }

    // Tree pack headers against the index (only the tail of each tree pack is read).
    let tree_packs: Vec<_> = usable.iter().filter(|(_, k, _)| *k == BlobKind::Tree).collect();
    let header_results: Vec<_> =
        tree_packs.par_iter().map(|(id, k, size)| (*id, repo.read_pack_header(*k, id, *size))).collect();
    for (id, r) in header_results {
        let p = &indexed[&id];
        let object = pack_path(p.kind, &id);
        let problem = match r {
            Ok((kind, entries)) => {
                header_mismatch(kind, &entries, p).map(|m| problems.add(ProblemKind::PackHeaderMismatch, object, m))
            }
            Err(RepoError::Backend(e)) => return Err(RepoError::Backend(e).into()),
            Err(e) => Some(problems.add(ProblemKind::PackDamaged, object, e.to_string())),
        };
        if let Some(i) = problem {
            for b in &p.blobs {
                bad_blobs.insert((p.kind, b.id), i);
            }
        }
    }

    // Full data reads.
    if let Some(subset) = &opts.read_data {
        let records = repo.load_check_records()?;
        let chosen = choose_packs(&usable, subset, &records)?;
        let budget_time = match subset {
            Subset::Rotate { max_duration, .. } => *max_duration,
            _ => None,
        };
        progress.set_totals(chosen.len() as u64, chosen.iter().map(|(_, _, s)| s).sum());
        let read = read_packs(repo, &chosen, &indexed, opts.read_threads.max(1), budget_time, progress)?;
        report.packs_read = read.verified.len() + read.failed.len();
        report.bytes_read = read.bytes;
        for (id, kind, message, blobs) in read.failed {
            let i = problems.add(kind, id, message);
            for b in blobs {
                bad_blobs.insert(b, i);
            }
        }
        if !read.verified.is_empty() {
            let record = CheckRecord {
                version: 1,
                time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                hostname: opts.hostname.clone(),
                packs: read.verified.clone(),
            };
            repo.save_check_record(&record)?;
        }
        report.verified_packs = read.verified;
        let records = repo.load_check_records()?;
        report.coverage = Some(coverage(&usable, &records));
    }

    // Snapshots and their trees.
    let (mut snaps, bad_snaps) = repo.load_all_snapshots()?;
    snaps.sort_by_key(|a| time_of(&a.1));
    for (id, e) in bad_snaps {
        problems.add(ProblemKind::Snapshot, format!("{SNAPSHOTS_DIR}/{id}"), e.to_string());
    }
    let replaced: HashSet<SnapshotId> = snaps.iter().filter_map(|(_, s)| s.original).collect();
    let mut walker =
        TreeWalker { repo, index: &index, bad_blobs: &bad_blobs, memo: HashMap::new(), problems: &mut problems };
    for (id, snap) in &snaps {
        let bad = walker.scan(snap.tree);
        if replaced.contains(id) {
            report.replaced_snapshots += 1;
            if !bad.is_empty() {
                report.info.push(Info {
                    kind: "replaced_snapshot",
                    object: format!("{SNAPSHOTS_DIR}/{id}"),
                    message: "damaged, but replaced by a repaired snapshot".into(),
                });
            }
            continue;
        }
        let mut touched = HashSet::new();
        for (path, i) in bad.iter() {
            let p = &mut walker.problems.list[*i];
            if touched.insert(*i) {
                p.snapshots.push(id.short());
            }
            p.paths_total += 1;
            if p.paths.len() < MAX_PATHS {
                p.paths.push(format!("{}:/{}", id.short(), path));
            }
        }
    }
    report.trees = walker.memo.len();
    // Trees and blobs that only replaced (repaired-away) snapshots reach are history, not
    // problems.
    let mut problem_list = Vec::new();
    for p in std::mem::take(&mut problems.list) {
        let walk_only =
            matches!(p.kind, ProblemKind::DataMissing | ProblemKind::TreeMissing | ProblemKind::TreeDamaged);
        if walk_only && p.snapshots.is_empty() {
            report.info.push(Info {
                kind: "replaced_snapshot_data",
                object: p.object,
                message: format!("{} (only replaced snapshots need it)", p.message),
            });
        } else {
            problem_list.push(p);
        }
    }
    problems.list = problem_list;
    report.snapshots = snaps.len();
    report.lost_blobs = bad_blobs.keys().copied().collect();
    // Missing blobs found during the walk are lost too.
    for p in &problems.list {
        if matches!(p.kind, ProblemKind::DataMissing | ProblemKind::TreeMissing | ProblemKind::TreeDamaged)
            && let Ok(id) = p.object.parse::<BlobId>()
        {
            let kind = if p.kind == ProblemKind::DataMissing { BlobKind::Data } else { BlobKind::Tree };
            report.lost_blobs.insert((kind, id));
        }
    }
    report.problems = problems.list;
    report.duration_seconds = started.elapsed().as_secs_f64();
    Ok(report)
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

/// Walks tree graphs once per tree id, remembering which paths below each tree are
/// unreadable and why.
struct TreeWalker<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    bad_blobs: &'a HashMap<(BlobKind, BlobId), usize>,
    memo: HashMap<BlobId, std::sync::Arc<Vec<(String, usize)>>>,
    problems: &'a mut Problems,
}

impl TreeWalker<'_> {
    fn scan(&mut self, tree: BlobId) -> std::sync::Arc<Vec<(String, usize)>> {
        if let Some(r) = self.memo.get(&tree) {
            return r.clone();
        }
        let mut bad: Vec<(String, usize)> = Vec::new();
        let key = (BlobKind::Tree, tree);
        if let Some(&i) = self.bad_blobs.get(&key) {
            bad.push((String::new(), i));
        } else if !self.index.contains(BlobKind::Tree, &tree) {
            let i = self.problems.add(ProblemKind::TreeMissing, tree.to_hex(), "tree blob is not in the index".into());
            bad.push((String::new(), i));
        } else {
            match self.repo.load_tree(self.index, &tree) {
                Err(RepoError::Backend(e)) => {
                    let i = self.problems.add(ProblemKind::TreeDamaged, tree.to_hex(), e.to_string());
                    bad.push((String::new(), i));
                }
                Err(e) => {
                    let i = self.problems.add(ProblemKind::TreeDamaged, tree.to_hex(), e.to_string());
                    bad.push((String::new(), i));
                }
                Ok(t) => {
                    for n in &t.nodes {
                        let name = n.name_lossy();
                        match (n.kind, n.subtree) {
                            (NodeKind::Dir, Some(sub)) => {
                                for (p, i) in self.scan(sub).iter() {
                                    let path = if p.is_empty() { name.clone() } else { format!("{name}/{p}") };
                                    bad.push((path, *i));
                                }
                            }
                            _ => {
                                for item in &n.content {
                                    if let crate::format::tree::ContentItem::Data { id, .. } = item {
                                        let i = match self.bad_blobs.get(&(BlobKind::Data, *id)) {
                                            Some(&i) => Some(i),
                                            None if !self.index.contains(BlobKind::Data, id) => {
                                                Some(self.problems.add(
                                                    ProblemKind::DataMissing,
                                                    id.to_hex(),
                                                    "data blob is not in the index".into(),
                                                ))
                                            }
                                            None => None,
                                        };
                                        if let Some(i) = i {
                                            bad.push((name.clone(), i));
                                            break;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let r = std::sync::Arc::new(bad);
        self.memo.insert(tree, r.clone());
        r
    }
}

/// The packs `--read-data` reads, in the order it reads them.
fn choose_packs(
    usable: &[(PackId, BlobKind, u64)],
    subset: &Subset,
    records: &[CheckRecord],
) -> Result<Vec<(PackId, BlobKind, u64)>> {
    let mut packs = usable.to_vec();
    packs.sort_by_key(|(id, _, _)| *id);
    let random = |packs: &mut Vec<(PackId, BlobKind, u64)>| -> Result<()> {
        // Fisher–Yates with OS randomness: no two hosts pick the same subset by accident.
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(RepoError::from)?;
        let mut x = u64::from_le_bytes(seed) | 1;
        for i in (1..packs.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            packs.swap(i, (x % (i as u64 + 1)) as usize);
        }
        Ok(())
    };
    Ok(match subset {
        Subset::All => packs,
        Subset::Part { n, m } => packs
            .into_iter()
            .filter(|(id, _, _)| u64::from_le_bytes(id.0.0[..8].try_into().unwrap_or_default()) % m == n - 1)
            .collect(),
        Subset::Percent(p) => {
            random(&mut packs)?;
            let k = ((packs.len() as f64) * p / 100.0).ceil() as usize;
            packs.truncate(k.min(packs.len()));
            packs
        }
        Subset::Bytes(budget) => {
            random(&mut packs)?;
            take_budget(packs, Some(*budget))
        }
        Subset::Rotate { max_bytes, .. } => {
            let last = last_verified(records);
            // Never verified first, then oldest verification; ties by id, so every pack
            // is read once before any pack is read twice.
            packs.sort_by_key(|(id, _, _)| (last.get(id).copied(), *id));
            take_budget(packs, *max_bytes)
        }
    })
}

fn take_budget(packs: Vec<(PackId, BlobKind, u64)>, budget: Option<u64>) -> Vec<(PackId, BlobKind, u64)> {
    let Some(budget) = budget else { return packs };
    let mut used = 0u64;
    let mut out = Vec::new();
    for p in packs {
        if !out.is_empty() && used + p.2 > budget {
            break;
        }
        used += p.2;
        out.push(p);
    }
    out
}

fn last_verified(records: &[CheckRecord]) -> HashMap<PackId, DateTime<Utc>> {
    let mut last: HashMap<PackId, DateTime<Utc>> = HashMap::new();
    for r in records {
        let t = DateTime::parse_from_rfc3339(&r.time).map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        for p in &r.packs {
            let e = last.entry(*p).or_insert(t);
            if t > *e {
                *e = t;
            }
        }
    }
    last
}

fn coverage(usable: &[(PackId, BlobKind, u64)], records: &[CheckRecord]) -> Coverage {
    let last = last_verified(records);
    let mut c = Coverage { packs_total: usable.len(), ..Default::default() };
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut all = true;
    for (id, _, size) in usable {
        c.bytes_total += size;
        match last.get(id) {
            Some(t) => {
                c.packs_verified += 1;
                c.bytes_verified += size;
                oldest = Some(oldest.map_or(*t, |o| o.min(*t)));
            }
            None => all = false,
        }
    }
    if all && let Some(o) = oldest {
        c.all_verified_within_runs = Some(
            records
                .iter()
                .filter(|r| DateTime::parse_from_rfc3339(&r.time).map(|t| t.with_timezone(&Utc) >= o).unwrap_or(false))
                .count(),
        );
        c.all_verified_within_days = Some((Utc::now() - o).num_seconds().max(0) as f64 / 86400.0);
    }
    c
}

#[derive(Default)]
struct ReadResult {
    verified: Vec<PackId>,
    #[allow(clippy::type_complexity)]
    failed: Vec<(String, ProblemKind, String, Vec<(BlobKind, BlobId)>)>,
    bytes: u64,
}

fn read_packs(
    repo: &Repository,
    packs: &[(PackId, BlobKind, u64)],
    indexed: &HashMap<PackId, IndexedPack>,
    threads: usize,
    max_duration: Option<Duration>,
    progress: &dyn Progress,
) -> Result<ReadResult> {
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let bytes = AtomicU64::new(0);
    let out = Mutex::new(ReadResult::default());
    let fatal: Mutex<Option<RepoError>> = Mutex::new(None);
    // Downloads wait on the network, so more threads than cores keep the pipe full;
    // verification inside each thread uses the CPU.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| RepoError::integrity("thread pool", e))?;
    pool.install(|| {
        packs.par_iter().for_each(|(id, kind, size)| {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if let Some(limit) = max_duration
                && started.elapsed() >= limit
            {
                stop.store(true, Ordering::Relaxed);
                return;
            }
            let p = &indexed[id];
            let object = pack_path(*kind, id);
            let all_blobs = || p.blobs.iter().map(|b| (*kind, b.id)).collect::<Vec<_>>();
            let result = match repo.backend().read_parts(&object) {
                Err(e) if e.kind != crate::repo::backend::BackendErrorKind::NotFound => {
                    let mut f = fatal.lock().unwrap_or_else(|p| p.into_inner());
                    f.get_or_insert(RepoError::Backend(e));
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                Err(e) => Err((object, ProblemKind::PackMissing, e.to_string(), all_blobs())),
                Ok(data) => {
                    let name_ok = data.stored_id() == id.0;
                    match (verify_pack(repo, *kind, &data, p), name_ok) {
                        (Ok(()), true) => Ok(()),
                        // Damage outside any blob (padding, header copy): every blob still
                        // verifies, but the stored bytes are not what was written.
                        (Ok(()), false) => Err((
                            object,
                            ProblemKind::PackDamaged,
                            "its bytes do not match its name, though every blob verifies".into(),
                            Vec::new(),
                        )),
                        (Err((k, m, blobs)), true) => Err((object, k, m, blobs)),
                        (Err((_, m, blobs)), false) => Err((
                            object,
                            ProblemKind::PackDamaged,
                            format!("its bytes do not match its name; {m}"),
                            blobs,
                        )),
                    }
                }
            };
            bytes.fetch_add(*size, Ordering::Relaxed);
            progress.add_bytes(*size);
            progress.add_files(1);
            let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(()) => o.verified.push(*id),
                Err(f) => o.failed.push(f),
            }
        })
    });
    if let Some(e) = fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e.into());
    }
    let mut r = out.into_inner().unwrap_or_else(|p| p.into_inner());
    r.bytes = bytes.load(Ordering::Relaxed);
    Ok(r)
}

#[allow(clippy::type_complexity)]
fn verify_pack(
    repo: &Repository,
    kind: BlobKind,
    data: &ObjectBytes,
    p: &IndexedPack,
) -> Result<(), (ProblemKind, String, Vec<(BlobKind, BlobId)>)> {
    let (hkind, entries) = repo.parse_pack_header(data).map_err(|e| {
        (ProblemKind::PackDamaged, format!("header: {e}"), p.blobs.iter().map(|b| (kind, b.id)).collect())
    })?;
    if let Some(m) = header_mismatch(hkind, &entries, p) {
        return Err((ProblemKind::PackHeaderMismatch, m, p.blobs.iter().map(|b| (kind, b.id)).collect()));
    }
    let damaged: Vec<(BlobKind, BlobId)> = entries
        .par_iter()
        .filter(|e| {
            let sealed = data.slice(e.offset as usize..(e.offset + e.length) as usize).unwrap_or_default();
            pack::open_blob(repo.keys(), kind, &e.id, &sealed, e.raw_length).is_err()
        })
        .map(|e| (kind, e.id))
        .collect();
    if damaged.is_empty() {
        Ok(())
    } else {
        Err((
            ProblemKind::BlobDamaged,
            format!("{} of {} blobs fail verification", damaged.len(), entries.len()),
            damaged,
        ))
    }
}
