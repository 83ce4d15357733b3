//! The data pass of a restore, taken pack by pack: every pack the files need is read
//! once, and each of its blobs is opened, verified and written into every file (at every
//! offset) that needs it. Memory is one pack per worker however a backup interleaved its
//! files in packs, and no pack is fetched twice.
//!
//! A file is created when its first blob arrives and is finished (length set, then
//! handed back for its metadata) by whichever worker writes its last piece. Files partly
//! written stay open up to a limit; past it a file is closed and opened again for its
//! next piece, and only if it is still the inode the restore created (`Beneath` resolves
//! the name; the inode check refuses a swapped file). A pack the restore needs little of
//! is read blob by blob (by range); a pack that cannot be read whole falls back to that,
//! so its intact blobs still restore; a pack a prune deleted meanwhile is looked up in
//! the index as it is now.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use rayon::prelude::*;

use super::super::progress::Progress;
use super::beneath::Beneath;
use super::write::{Piece, WriteError, open_for_writing};
use vault_format::pack::BlobKind;
use vault_format::{BlobId, PackId};
use vault_repo::backend::BackendErrorKind;
use vault_repo::{BlobLocation, IndexedRepository, RepoError};

/// Packs read at once from remote storage (each is itself read in up to four ranges at
/// once): enough requests in flight to hide the round trip behind the others' work.
const WORKERS_REMOTE: usize = 6;
/// The same from a local directory, where a read costs no round trip: one per core and
/// one reading.
const WORKERS_LOCAL: usize = 3;
/// Files kept open between their pieces.
const OPEN_FILES: usize = 256;

/// How a file of the data pass is opened for its first piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Opening {
    /// Created new (nothing is there).
    Create,
    /// What is there is removed first.
    Replace,
    /// The existing file is written in place.
    InPlace,
}

/// One file of the data pass.
pub(super) struct FileJob<'a> {
    pub(super) path: &'a Path,
    pub(super) size: u64,
    pub(super) pieces: &'a [Piece],
    pub(super) opening: Opening,
}

/// A file's outcome: written (and open, for its metadata), or what went wrong.
pub(super) type Finished = Result<Option<Arc<File>>, WriteError>;

enum Handle {
    Unopened,
    Open(Arc<File>),
    /// Closed to stay under the limit of open files; opened again only as this inode.
    Closed {
        dev: u64,
        ino: u64,
    },
    Failed(String),
    Finished,
}

#[derive(Default)]
struct Problems {
    /// Pieces that could not be restored: offset, message, whether the storage (not
    /// damage) failed it.
    missing: Vec<(u64, String, bool)>,
    /// The first write that failed.
    write: Option<String>,
}

struct FileState {
    /// Pieces still to be written (or given up).
    left: AtomicUsize,
    handle: Mutex<Handle>,
    problems: Mutex<Problems>,
}

/// A place one blob goes.
struct Target {
    file: usize,
    offset: u64,
    length: u64,
}

/// One pack's share of the data pass.
struct PackWork {
    pack: PackId,
    kind: BlobKind,
    /// Bytes of the distinct blobs needed from it.
    needed: u64,
    blobs: Vec<(BlobLocation, BlobId, Vec<Target>)>,
}

/// Where a file's data starts (pack and offset): files sorted by it put the packs in the
/// order in which a backup wrote them.
pub(super) fn first_location(repo: &IndexedRepository, pieces: &[Piece]) -> Option<(PackId, u32)> {
    pieces.iter().find_map(|(_, id, _)| repo.locate(BlobKind::Data, id).map(|l| (l.pack, l.offset)))
}

/// Reads of the data pass, for tests and measurements.
#[derive(Debug, Default)]
pub(super) struct FillStats {
    pub(super) packs_whole: AtomicUsize,
    pub(super) blobs_alone: AtomicUsize,
}

pub(super) struct Filler<'a> {
    repo: &'a IndexedRepository,
    target: &'a Beneath,
    jobs: &'a [FileJob<'a>],
    files: Vec<FileState>,
    packs: Vec<PackWork>,
    open: AtomicUsize,
    max_open: usize,
    progress: &'a dyn Progress,
    /// The index loaded again after a pack vanished (a prune moved its blobs meanwhile).
    fresh: OnceLock<Option<IndexedRepository>>,
    pub(super) stats: FillStats,
}

impl<'a> Filler<'a> {
    /// Groups the pieces of `jobs` by the packs that hold them, in order of first use.
    pub(super) fn new(
        repo: &'a IndexedRepository,
        target: &'a Beneath,
        jobs: &'a [FileJob<'a>],
        progress: &'a dyn Progress,
    ) -> Self {
        let mut packs: Vec<PackWork> = Vec::new();
        let mut pack_at: HashMap<PackId, usize> = HashMap::new();
        let mut blob_at: HashMap<BlobId, (usize, usize)> = HashMap::new();
        let mut files = Vec::with_capacity(jobs.len());
        for (file, job) in jobs.iter().enumerate() {
            let mut problems = Problems::default();
            let mut located = 0;
            for &(offset, id, length) in job.pieces {
                let (p, b) = match blob_at.get(&id) {
                    Some(&at) => at,
                    None => {
                        let Some(loc) = repo.locate(BlobKind::Data, &id) else {
                            let e = RepoError::BlobNotIndexed(id.to_hex());
                            problems.missing.push((offset, format!("bytes {offset}..{}: {e}", offset + length), false));
                            continue;
                        };
                        let p = *pack_at.entry(loc.pack).or_insert_with(|| {
                            packs.push(PackWork { pack: loc.pack, kind: loc.kind, needed: 0, blobs: Vec::new() });
                            packs.len() - 1
                        });
                        packs[p].needed += u64::from(loc.length);
                        packs[p].blobs.push((loc, id, Vec::new()));
                        let at = (p, packs[p].blobs.len() - 1);
                        blob_at.insert(id, at);
                        at
                    }
                };
                packs[p].blobs[b].2.push(Target { file, offset, length });
                located += 1;
            }
            files.push(FileState {
                left: AtomicUsize::new(located),
                handle: Mutex::new(Handle::Unopened),
                problems: Mutex::new(problems),
            });
        }
        for p in &mut packs {
            // Read front to back: by range, neighbouring blobs share aligned windows.
            p.blobs.sort_by_key(|(loc, _, _)| loc.offset);
        }
        Filler {
            repo,
            target,
            jobs,
            files,
            packs,
            open: AtomicUsize::new(0),
            max_open: OPEN_FILES,
            progress,
            fresh: OnceLock::new(),
            stats: FillStats::default(),
        }
    }

    /// Writes every file, calling `finish` once for each (by its place in the jobs) when
    /// its last piece is written or given up.
    pub(super) fn run(&self, finish: &(dyn Fn(usize, Finished) + Sync)) {
        // Files without a piece to fetch (empty, all holes, or only to be shortened).
        (0..self.jobs.len())
            .into_par_iter()
            .filter(|&i| self.files[i].left.load(Ordering::Acquire) == 0)
            .for_each(|i| finish(i, self.finalize(i)));
        let workers = if self.repo.repo().backend().is_local() { WORKERS_LOCAL } else { WORKERS_REMOTE };
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..workers.min(self.packs.len()) {
                scope.spawn(|| {
                    while let Some(work) = self.packs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        self.fill_from(work, finish);
                    }
                });
            }
        });
    }

    /// Reads one pack (whole, or the blobs needed one by one) and writes its blobs.
    fn fill_from(&self, work: &PackWork, finish: &(dyn Fn(usize, Finished) + Sync)) {
        let whole = self.repo.pack_size(&work.pack).is_some_and(|size| work.needed * 2 >= size);
        let data = if whole { self.repo.read_pack(work.kind, &work.pack).ok() } else { None };
        if data.is_some() {
            self.stats.packs_whole.fetch_add(1, Ordering::Relaxed);
        }
        for (loc, id, targets) in &work.blobs {
            let blob = match &data {
                Some(data) => self.repo.open_blob_in(loc, id, data),
                None => {
                    self.stats.blobs_alone.fetch_add(1, Ordering::Relaxed);
                    self.read_alone(loc, id)
                }
            };
            for t in targets {
                match &blob {
                    Ok(bytes) => self.write_piece(t, id, bytes),
                    Err(e) => {
                        let storage = matches!(e, RepoError::Backend(b) if b.kind != BackendErrorKind::NotFound);
                        self.missing(t, e, storage);
                    }
                }
                self.progress.add_bytes(t.length);
                self.piece_done(t.file, finish);
            }
        }
    }

    /// One blob by range; from the index as it is now if its pack has gone.
    fn read_alone(&self, loc: &BlobLocation, id: &BlobId) -> Result<Vec<u8>, RepoError> {
        match self.repo.repo().read_blob_within(loc, id, self.repo.pack_size(&loc.pack)) {
            Err(RepoError::Backend(e)) if e.kind == BackendErrorKind::NotFound => {
                // A prune deleted the pack after this restore loaded the index: the index
                // as it is now says where the blob went (repacked, or kept for rescue).
                let fresh = self.fresh.get_or_init(|| IndexedRepository::load(self.repo.repo().clone()).ok());
                match fresh {
                    Some(f) => f.read_blob(BlobKind::Data, id),
                    None => Err(RepoError::Backend(e)),
                }
            }
            r => r,
        }
    }

    fn missing(&self, t: &Target, e: impl std::fmt::Display, storage: bool) {
        let message = format!("bytes {}..{}: {e}", t.offset, t.offset + t.length);
        self.files[t.file].problems.lock().missing.push((t.offset, message, storage));
    }

    fn write_piece(&self, t: &Target, id: &BlobId, data: &[u8]) {
        // A blob of another length than the content list says would shift or overlap
        // the pieces after it.
        let len = u32::try_from(t.length).unwrap_or(u32::MAX);
        if let Err(e) = vault_repo::indexed::check_item_length(id, data, len, None) {
            return self.missing(t, e, false);
        }
        let Some(f) = self.handle(t.file) else { return };
        if let Err(e) = f.write_all_at(data, t.offset) {
            self.files[t.file].problems.lock().write.get_or_insert_with(|| format!("cannot write: {e}"));
        }
    }

    /// The file open for writing: created (or opened again) if need be; `None` when it
    /// could not be.
    fn handle(&self, file: usize) -> Option<Arc<File>> {
        let mut h = self.files[file].handle.lock();
        let opened = match &*h {
            Handle::Open(f) => return Some(f.clone()),
            Handle::Failed(_) | Handle::Finished => return None,
            Handle::Unopened => self.open_first(file),
            Handle::Closed { dev, ino } => self.reopen(file, *dev, *ino),
        };
        match opened {
            Ok(f) => {
                let f = Arc::new(f);
                self.open.fetch_add(1, Ordering::AcqRel);
                *h = Handle::Open(f.clone());
                Some(f)
            }
            Err(m) => {
                *h = Handle::Failed(m);
                None
            }
        }
    }

    fn open_first(&self, file: usize) -> Result<File, String> {
        let job = &self.jobs[file];
        if job.opening == Opening::Replace {
            match self.target.remove(job.path) {
                // Gone meanwhile, or a file where the snapshot has a directory on the way.
                Err(e) if e.kind() != std::io::ErrorKind::NotFound && e.raw_os_error() != Some(libc::ENOTDIR) => {
                    return Err(format!("cannot remove what is there: {e}"));
                }
                _ => {}
            }
        }
        open_for_writing(self.target, job.path, job.opening == Opening::InPlace)
    }

    fn reopen(&self, file: usize, dev: u64, ino: u64) -> Result<File, String> {
        let f = self.target.open_file(self.jobs[file].path, true).map_err(|e| format!("cannot open file: {e}"))?;
        let m = f.metadata().map_err(|e| format!("cannot stat file: {e}"))?;
        if m.dev() != dev || m.ino() != ino || m.nlink() != 1 {
            return Err("changed while being restored".into());
        }
        Ok(f)
    }

    /// One piece of `file` is written or given up: the last one finishes the file; with
    /// too many files open, this one is closed until its next piece.
    fn piece_done(&self, file: usize, finish: &(dyn Fn(usize, Finished) + Sync)) {
        if self.files[file].left.fetch_sub(1, Ordering::AcqRel) == 1 {
            return finish(file, self.finalize(file));
        }
        if self.open.load(Ordering::Acquire) <= self.max_open {
            return;
        }
        let mut h = self.files[file].handle.lock();
        if let Handle::Open(f) = &*h
            && let Ok(m) = f.metadata()
        {
            *h = Handle::Closed { dev: m.dev(), ino: m.ino() };
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Sets the length of a file whose pieces are all done, and says how it went.
    fn finalize(&self, file: usize) -> Finished {
        let io = |m: String| Err(WriteError::Io(m));
        // A file with no piece written (none to fetch, or none delivered) is made now.
        let f = match self.handle(file) {
            Some(f) => f,
            None => match std::mem::replace(&mut *self.files[file].handle.lock(), Handle::Finished) {
                Handle::Failed(m) => return io(m),
                _ => return io("finished twice".into()),
            },
        };
        if let Handle::Open(_) = std::mem::replace(&mut *self.files[file].handle.lock(), Handle::Finished) {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
        let mut problems = std::mem::take(&mut *self.files[file].problems.lock());
        if let Some(m) = problems.write {
            return io(m);
        }
        // Holes (and damaged ranges) stay unallocated: extending the length creates them.
        if let Err(e) = f.set_len(self.jobs[file].size) {
            return io(format!("cannot set length: {e}"));
        }
        problems.missing.sort_by_key(|(offset, _, _)| *offset);
        let (unread, damaged): (Vec<_>, Vec<_>) = problems.missing.into_iter().partition(|(_, _, storage)| *storage);
        let join = |v: Vec<(u64, String, bool)>| v.into_iter().map(|(_, m, _)| m).collect::<Vec<_>>().join("; ");
        if !damaged.is_empty() {
            return Err(WriteError::Integrity(format!("data could not be restored, {}", join(damaged))));
        }
        if !unread.is_empty() {
            return Err(WriteError::Storage(format!("data could not be read from storage, {}", join(unread))));
        }
        Ok(Some(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::backup;
    use crate::ls::list;
    use crate::progress::NoProgress;
    use crate::tests::{backup_opts, memory_repo};
    use vault_format::xorshift::xorshift_bytes;

    /// Files whose blobs a backup interleaved in shared packs, and one file repeated:
    /// every pack is read exactly once, each file is finished once, byte for byte, and
    /// with one file allowed open at a time files are closed and opened again between
    /// pieces.
    #[test]
    fn every_pack_is_read_once_and_every_file_finished_once() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let mut want = HashMap::new();
        for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            let data = xorshift_bytes((3 << 20) + i * 7919, i as u64 + 1);
            std::fs::write(src.join(name), &data).unwrap();
            want.insert(name.to_string(), data);
        }
        std::fs::write(src.join("a-again"), &want["a"]).unwrap();
        want.insert("a-again".into(), want["a"].clone());
        std::fs::write(src.join("empty"), b"").unwrap();
        want.insert("empty".into(), Vec::new());
        let repo = memory_repo("fill-once");
        let handle = IndexedRepository::load(repo.clone()).unwrap();
        let snap = backup(&handle, &backup_opts(&src), &NoProgress).unwrap();
        let handle = IndexedRepository::load(repo).unwrap();
        let mut nodes = Vec::new();
        list(&handle, snap.snapshot.tree, "", &mut |p, n| {
            if n.kind == vault_format::tree::NodeKind::File {
                nodes.push((p.rsplit('/').next().unwrap().to_string(), n.size, super::super::write::pieces(n)));
            }
        })
        .unwrap();
        assert_eq!(nodes.len(), 7);
        for max_open in [OPEN_FILES, 1] {
            let out = tempfile::tempdir().unwrap();
            let target = Beneath::open(out.path()).unwrap();
            let paths: Vec<_> = nodes.iter().map(|(name, _, _)| out.path().join(name)).collect();
            let jobs: Vec<FileJob> = nodes
                .iter()
                .zip(&paths)
                .map(|((_, size, pieces), path)| FileJob { path, size: *size, pieces, opening: Opening::Create })
                .collect();
            let mut filler = Filler::new(&handle, &target, &jobs, &NoProgress);
            filler.max_open = max_open;
            let finished = Mutex::new(vec![0; jobs.len()]);
            filler.run(&|i, r| {
                assert!(r.is_ok(), "{}", nodes[i].0);
                finished.lock()[i] += 1;
            });
            assert!(finished.lock().iter().all(|n| *n == 1), "{:?}", finished.lock());
            let packs: std::collections::HashSet<PackId> = nodes
                .iter()
                .flat_map(|(_, _, p)| p)
                .map(|(_, id, _)| handle.locate(BlobKind::Data, id).unwrap().pack)
                .collect();
            assert_eq!(filler.stats.packs_whole.load(Ordering::Relaxed), packs.len());
            assert_eq!(filler.stats.blobs_alone.load(Ordering::Relaxed), 0);
            assert_eq!(filler.open.load(Ordering::Relaxed), 0);
            for (name, data) in &want {
                assert_eq!(&std::fs::read(out.path().join(name)).unwrap(), data, "{name}");
            }
        }
    }
}
