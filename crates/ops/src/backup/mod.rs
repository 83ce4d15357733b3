//! `backup`: walk the sources, store new data, write a snapshot.
//!
//! The walk is parallel (rayon over the entries of each directory, recursively). A file
//! whose size, mtime, ctime and inode match its node in the parent snapshot is not read:
//! its content list is reused. Other files are chunked in a stream; each batch of chunks
//! is hashed, compressed and sealed in parallel. Commit order: packs → index → snapshot.

mod file;
pub(crate) mod filter;
mod scan;
mod stream;
mod walk;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use super::error::{OpError, Result};
use super::fsmeta::OwnerNames;
use super::progress::Progress;
use super::select;
use super::source;
use filter::Filters;
use scan::scan_totals;
pub use stream::backup_stream;
use vault_format::blob::Compression;
use vault_format::chunker::Chunker;
use vault_format::snapshot::{Snapshot, SnapshotFilters, SnapshotSummary};
use vault_format::tree::{Node, NodeKind, Tree};
use vault_format::{BlobId, SnapshotId};
use vault_repo::backend::RequestStats;
use vault_repo::{IndexedRepository, PackWriter, RepoError, WriterStats};
use walk::archive_virtual;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
/// Which snapshot a backup compares files against, to skip reading unchanged ones.
pub enum ParentChoice {
    /// The newest snapshot of the same host and the same paths (else the newest of the
    /// same host whose paths include all of these).
    #[default]
    Auto,
    /// None: read every file.
    None,
    /// This snapshot.
    Snapshot(SnapshotId),
}

#[derive(Clone, Debug, Default)]
/// What to back up and how.
pub struct BackupOptions {
    /// Files and directories to back up.
    pub sources: Vec<PathBuf>,
    /// Host name recorded in the snapshot.
    pub host: String,
    /// Tags recorded in the snapshot.
    pub tags: Vec<String>,
    /// Patterns of entries to leave out.
    pub excludes: Vec<String>,
    /// Patterns of entries to leave out, matched regardless of case.
    pub iexcludes: Vec<String>,
    /// Leave out directories that hold a file of this name (`NAME`, or `NAME:HEADER`
    /// when the file must start with HEADER).
    pub exclude_if_present: Vec<String>,
    /// Leave out directories tagged as caches (a `CACHEDIR.TAG` with its signature).
    pub exclude_caches: bool,
    /// Leave out files larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
    /// What happens when a source does not exist.
    pub missing_source: MissingSource,
    /// Store no snapshot when nothing changed since the parent snapshot.
    pub skip_if_unchanged: bool,
    /// Read, chunk and count everything, store nothing.
    pub dry_run: bool,
    /// Set (by a signal handler) to stop the backup: the packs in flight are finished and
    /// indexed, so that the next backup does not store their data again, and the backup
    /// ends with [`OpError::Interrupted`], storing no snapshot.
    pub stop: Option<Arc<AtomicBool>>,
    /// Do not cross into other file systems below a source.
    pub one_file_system: bool,
    /// Which snapshot unchanged files are taken from.
    pub parent: ParentChoice,
    /// Count files and bytes beside the backup, for a progress bar with an ETA.
    pub scan_totals: bool,
    /// Compression of new data for this backup (`None`: the repository's default).
    pub compression: Option<Compression>,
    /// Directories never stored, wherever they appear below the sources (found by device
    /// and inode, so another path to them is caught too): the repository itself, vault's
    /// cache. A backup that stored its own repository would double it each run.
    pub leave_out: Vec<LeaveOut>,
    /// Threads that read, chunk and seal files (`None`: one per core).
    pub threads: Option<usize>,
}

/// What a backup does about a source that does not exist (an unmounted disk, say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingSource {
    /// Back up the other sources, report it, and end with exit code 3.
    #[default]
    Warn,
    /// Fail the whole backup.
    Fail,
}

/// A directory the backup leaves out, and why.
#[derive(Clone, Debug, Serialize)]
pub struct LeaveOut {
    /// The entry left out.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// A source entry that could not be backed up. The backup goes on without it.
#[derive(Clone, Debug, Serialize)]
pub struct SourceProblem {
    /// The entry.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
    /// The entry is in the snapshot nevertheless (as read), not left out.
    pub stored: bool,
}

#[derive(Debug)]
/// What a backup stored and what it could not read.
pub struct BackupReport {
    /// The new snapshot; `None` when none was stored (a dry run, or nothing changed
    /// with `skip_if_unchanged`).
    pub snapshot_id: Option<SnapshotId>,
    /// Its content.
    pub snapshot: Snapshot,
    /// The snapshot unchanged files were taken from.
    pub parent: Option<SnapshotId>,
    /// Entries that could not be read (the snapshot holds the rest).
    pub problems: Vec<SourceProblem>,
    /// Directories of [`BackupOptions::leave_out`] found below the sources and left out.
    pub left_out: Vec<LeaveOut>,
    /// Damaged index files that were skipped (their blobs were stored again if needed).
    pub index_problems: Vec<String>,
    /// What the pack writer stored.
    pub writer: WriterStats,
    /// Blobs stored again because a prune condemned their packs during the backup.
    pub recopied: u64,
    /// Storage requests made.
    pub requests: RequestStats,
    /// Wall-clock time.
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

/// Directories nested deeper than this below a source are reported and left out. The
/// kernel refuses paths past 4096 bytes (PATH_MAX) long before, so only a crafted or
/// runaway tree gets here; the limit keeps the walk's stack bounded.
pub(crate) const MAX_DIR_DEPTH: usize = 4096;

/// Stack of the backup's walker threads: the walk recurses once per directory level, in
/// parallel (rayon), so a deep tree needs more than the default 2 MiB. Only the pages
/// used are ever touched.
const WALK_STACK_BYTES: usize = 256 * 1024 * 1024;

struct Ctx<'a> {
    repo: &'a IndexedRepository,
    writer: PackWriter,
    chunker: Chunker,
    owners: OwnerNames,
    filters: Filters,
    one_file_system: bool,
    progress: &'a dyn Progress,
    problems: Mutex<Vec<SourceProblem>>,
    counters: Counters,
    /// (device, inode) → why, for [`BackupOptions::leave_out`].
    leave_out: HashMap<(u64, u64), String>,
    left_out: Mutex<Vec<LeaveOut>>,
    stop: Option<Arc<AtomicBool>>,
}

impl Ctx<'_> {
    /// `Err(Interrupted)` once the backup was asked to stop.
    fn check_stop(&self) -> Result<()> {
        match &self.stop {
            Some(s) if s.load(Ordering::Relaxed) => Err(OpError::Interrupted),
            _ => Ok(()),
        }
    }

    /// An entry left out of the snapshot.
    fn problem(&self, path: &Path, message: String) {
        self.progress.warn(path, &message);
        self.problems.lock().push(SourceProblem { path: path.to_path_buf(), message, stored: false });
    }

    /// An entry stored, but perhaps not as it ever was on disk (it changed while read).
    fn problem_kept(&self, path: &Path, message: String) {
        self.progress.warn(path, &message);
        self.problems.lock().push(SourceProblem { path: path.to_path_buf(), message, stored: true });
    }

    /// Whether the directory at `path` is one to leave out (it is then recorded).
    fn leaves_out(&self, path: &Path, meta: &std::fs::Metadata) -> bool {
        match self.leave_out.get(&(meta.dev(), meta.ino())) {
            Some(reason) => {
                self.left_out.lock().push(LeaveOut { path: path.to_path_buf(), reason: reason.clone() });
                true
            }
            None => false,
        }
    }

    fn parent_subtree(&self, node: Option<&Node>) -> Option<Tree> {
        let id = node.filter(|n| n.kind == NodeKind::Dir)?.subtree?;
        // An unreadable parent tree only costs speed: the directory is read in full.
        let tree = self.repo.load_tree(&id).ok()?;
        self.writer.mark_readable_tree(id);
        Some(tree)
    }
}

/// Backs up `opts.sources` and writes a snapshot (the commit point: packs → index →
/// snapshot).
pub fn backup(repo: &IndexedRepository, opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupReport> {
    let started = Instant::now();
    let cwd = std::env::current_dir()
        .map_err(|e| OpError::Source { path: ".".into(), reason: format!("cannot read the current directory: {e}") })?;
    if opts.sources.is_empty() {
        return Err(OpError::Source { path: PathBuf::new(), reason: "no source paths given".into() });
    }
    // A source that is not there (an unmounted disk) costs its own part of the
    // snapshot, not the others'.
    let mut missing = Vec::new();
    let mut sources = Vec::new();
    for s in &opts.sources {
        match std::fs::symlink_metadata(s) {
            Ok(_) => sources.push(s.clone()),
            Err(e) if opts.missing_source == MissingSource::Warn => {
                let message = format!("source left out: {e}");
                progress.warn(s, &message);
                missing.push(SourceProblem { path: s.clone(), message, stored: false });
            }
            Err(e) => return Err(OpError::Source { path: s.clone(), reason: e.to_string() }),
        }
    }
    if sources.is_empty() {
        return Err(OpError::Source {
            path: opts.sources[0].clone(),
            reason: "no source can be read, so there is nothing to back up".into(),
        });
    }
    let vroot = source::build(&sources, &cwd)?;
    let mut abs_paths: Vec<String> =
        sources.iter().map(|s| source::absolute(s, &cwd).to_string_lossy().into_owned()).collect();
    abs_paths.sort();
    abs_paths.dedup();

    let parent = choose_parent(repo, opts, &abs_paths)?;
    let parent_root = match &parent {
        Some((_, s)) => repo.load_tree(&s.tree).ok(),
        None => None,
    };
    let ctx = new_ctx(repo, opts, progress)?;
    if let (Some((_, s)), Some(_)) = (&parent, &parent_root) {
        ctx.writer.mark_readable_tree(s.tree);
    }
    ctx.problems.lock().extend(missing);

    let stop_scan = AtomicBool::new(false);
    let tree_id = std::thread::scope(|scope| {
        if opts.scan_totals {
            let (filters, stop) = (&ctx.filters, &stop_scan);
            let roots: Vec<PathBuf> = sources.iter().map(|s| source::absolute(s, &cwd)).collect();
            scope.spawn(move || scan_totals(&roots, filters, opts.one_file_system, progress, stop));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            // 0 is rayon's "one per core".
            .num_threads(opts.threads.unwrap_or(0))
            .stack_size(WALK_STACK_BYTES)
            .thread_name(|i| format!("vault-walk-{i}"))
            .build()
            .map_err(|e| RepoError::System { what: "start the backup threads", source: std::io::Error::other(e) })?;
        let r = pool.install(|| archive_virtual(&ctx, &vroot, parent_root.as_ref()));
        stop_scan.store(true, Ordering::Relaxed);
        r
    });
    let tree_id = match tree_id {
        Ok(id) => id,
        Err(OpError::Interrupted) => return Err(keep_what_is_stored(ctx)),
        Err(e) => return Err(e),
    };
    commit(repo, opts, ctx, Committing { tree_id, paths: abs_paths, parent, started })
}

/// After an interruption: the packs in flight are finished and indexed, so that the
/// next backup finds their blobs; the error to end with.
fn keep_what_is_stored(ctx: Ctx<'_>) -> OpError {
    match ctx.writer.finish() {
        Ok(_) => OpError::Interrupted,
        Err(e) => e.into(),
    }
}

/// The exclusion rules to record in the snapshot.
fn recorded_filters(opts: &BackupOptions) -> SnapshotFilters {
    SnapshotFilters {
        excludes: opts.excludes.clone(),
        iexcludes: opts.iexcludes.clone(),
        exclude_if_present: opts.exclude_if_present.clone(),
        exclude_caches: opts.exclude_caches,
        exclude_larger_than: opts.exclude_larger_than,
    }
}

/// The snapshot unchanged files are taken from.
fn choose_parent(
    repo: &IndexedRepository,
    opts: &BackupOptions,
    abs_paths: &[String],
) -> Result<Option<(SnapshotId, Snapshot)>> {
    Ok(match &opts.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(id) => Some((*id, repo.repo().load_snapshot(id)?)),
        ParentChoice::Auto => {
            // A snapshot dated in the future would stay `latest` (and every backup's
            // parent) until that date: someone with the key planted it, or a clock ran wild.
            let (snaps, _) = repo.repo().load_all_snapshots()?;
            let now = chrono::Utc::now();
            let candidates: Vec<(SnapshotId, Snapshot)> = snaps
                .into_iter()
                .filter(|(_, s)| {
                    // Only a snapshot this key could have written: a write-only key (or,
                    // for a write-only key, another one) must not choose what this host's
                    // unchanged files are taken from.
                    s.hostname == opts.host && repo.repo().wrote(s.written_by) && !crate::rollback::is_future(s, now)
                })
                .collect();
            let same = candidates.iter().filter(|(_, s)| s.paths == abs_paths).cloned();
            // A backup of fewer sources than before (one left out, or missing today)
            // still finds its unchanged files in a snapshot of more.
            select::newest(same).or_else(|| {
                select::newest(candidates.into_iter().filter(|(_, s)| abs_paths.iter().all(|p| s.paths.contains(p))))
            })
        }
    })
}

fn new_ctx<'a>(repo: &'a IndexedRepository, opts: &BackupOptions, progress: &'a dyn Progress) -> Result<Ctx<'a>> {
    let writer = repo.writer()?;
    let writer = match opts.compression {
        Some(c) => writer.with_compression(c),
        None => writer,
    };
    Ok(Ctx {
        repo,
        writer: if opts.dry_run { writer.dry_run() } else { writer },
        chunker: repo.repo().chunker()?,
        owners: OwnerNames::default(),
        filters: Filters::new(&recorded_filters(opts))?,
        one_file_system: opts.one_file_system,
        progress,
        problems: Mutex::default(),
        counters: Counters::default(),
        leave_out: opts
            .leave_out
            .iter()
            .filter_map(|l| {
                let m = std::fs::metadata(&l.path).ok().filter(|m| m.is_dir())?;
                Some(((m.dev(), m.ino()), l.reason.clone()))
            })
            .collect(),
        left_out: Mutex::default(),
        stop: opts.stop.clone(),
    })
}

/// What a finished walk hands to [`commit`].
struct Committing {
    tree_id: BlobId,
    /// The snapshot's source paths.
    paths: Vec<String>,
    parent: Option<(SnapshotId, Snapshot)>,
    started: Instant,
}

/// Flushes the writer and stores the snapshot (unless a dry run, or nothing changed and
/// `skip_if_unchanged`).
fn commit(repo: &IndexedRepository, opts: &BackupOptions, ctx: Ctx<'_>, c: Committing) -> Result<BackupReport> {
    let Committing { tree_id, paths, parent, started } = c;
    let Ctx { writer, counters, problems, owners, left_out, .. } = ctx;
    let writer_stats = writer.finish()?;
    // A prune may have condemned packs this backup deduplicated against since it loaded
    // the index: such blobs are stored again before the snapshot commits.
    let recopied =
        if opts.dry_run { 0 } else { crate::commit::keep_referenced_live(repo.repo(), repo.index(), &[tree_id])? };
    let problems = problems.into_inner();
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
        paths,
        hostname: opts.host.clone(),
        username: String::from_utf8_lossy(&owners.user(uid)).into_owned(),
        uid,
        gid,
        tags: opts.tags.clone(),
        parent: parent.as_ref().map(|(id, _)| *id),
        program_version: concat!("vault ", env!("CARGO_PKG_VERSION")).to_string(),
        summary: Some(summary),
        filters: Some(recorded_filters(opts)).filter(|f| !f.is_empty()),
        original: None,
        written_by: None,
    };
    let unchanged = parent.as_ref().is_some_and(|(_, p)| p.tree == tree_id && p.paths == snapshot.paths);
    let snapshot_id = if opts.dry_run || (opts.skip_if_unchanged && unchanged) {
        None
    } else {
        Some(repo.repo().save_snapshot(&snapshot)?)
    };
    Ok(BackupReport {
        snapshot_id,
        snapshot,
        parent: parent.map(|(id, _)| id),
        problems,
        left_out: left_out.into_inner(),
        index_problems: repo.index_problems().iter().map(ToString::to_string).collect(),
        writer: writer_stats,
        recopied,
        requests: repo.repo().backend().stats(),
        duration: started.elapsed(),
    })
}
