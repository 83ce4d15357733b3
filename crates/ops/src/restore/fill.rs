//! The data pass of a restore, taken pack by pack: what the files need of each pack is
//! read once, in ranges of up to [`RANGE`] bytes ([`RANGE_LOCAL`] from a local
//! directory), and each blob is opened, verified and written into every file (at every
//! offset) that needs it. Memory is a range per worker however a backup interleaved its
//! files in packs, and no pack is fetched twice.
//!
//! A file is created when its first blob arrives and is finished (length set, then
//! handed back for its metadata) by whichever worker writes its last piece. Files partly
//! written stay open up to a limit; past it a file is closed and opened again for its
//! next piece, and only if it is still the inode the restore created (`Beneath` resolves
//! the name; the inode check refuses a swapped file). A range spans the blobs needed
//! and the gaps between them up to [`GAP`], widened to [`READ_ALIGN`] boundaries so that
//! the storage does not learn each blob's place (spec §9). A range that cannot be read falls back
//! to reading its blobs one by one, so the intact ones still restore; a pack a prune
//! deleted meanwhile is looked up in the index as it is now.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use rayon::prelude::*;

use super::super::progress::Progress;
use super::beneath::Beneath;
use super::write::{Piece, WriteError, open_for_writing};
use vault_format::pack::BlobKind;
use vault_format::{BlobId, PackId};
use vault_repo::backend::BackendErrorKind;
use vault_repo::{BlobLocation, IndexedRepository, ObjectBytes, READ_ALIGN, RepoError};

/// The longest range read in one request from remote storage (unless one blob is
/// longer).
const RANGE: u64 = 4 << 20;
/// The same from a local directory: a read costs no round trip there, so a smaller
/// range holds less memory per worker for the same speed.
const RANGE_LOCAL: u64 = 1 << 20;
/// Blobs of a pack this far apart, or less, are read in one range (the bytes between are
/// read and dropped): cheaper than another request.
const GAP: u64 = 256 << 10;
/// Files kept open between their pieces.
const OPEN_FILES: usize = 256;
/// Bytes to read per worker before another one is worth starting: each worker holds a
/// connection of its own, and over SFTP each connection is an SSH handshake (a tenth of a
/// second of CPU and several round trips here), which a small restore does not repay.
const BYTES_PER_WORKER: u64 = 8 << 20;

/// How many workers read `work` when the storage allows `threads` requests at once.
fn workers_for(threads: usize, work: &[RangeWork]) -> usize {
    let bytes: u64 = work.iter().map(|w| w.len).sum();
    let by_bytes = usize::try_from(bytes.div_ceil(BYTES_PER_WORKER)).unwrap_or(usize::MAX);
    threads.min(work.len()).min(by_bytes.max(1))
}

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

/// The blobs needed from one pack, with where each goes.
struct PackNeed {
    pack: PackId,
    kind: BlobKind,
    blobs: Vec<(BlobLocation, BlobId, Vec<Target>)>,
}

/// One read of the data pass: `len` bytes of a pack from `start`, and its blobs (those of
/// `pack.blobs` in `blobs`).
struct RangeWork {
    pack: usize,
    start: u64,
    len: u64,
    blobs: std::ops::Range<usize>,
}

/// Where a blob's sealed bytes end in its pack.
fn end_of(loc: &BlobLocation) -> u64 {
    u64::from(loc.offset) + u64::from(loc.length)
}

/// Cuts a pack's needed blobs (sorted by offset) into ranges.
fn ranges(pack: usize, need: &PackNeed, size: Option<u64>, limit: u64, out: &mut Vec<RangeWork>) {
    // Widened to READ_ALIGN within the pack (unknown size: exactly the blobs).
    let widen = |start: u64, end: u64| match size {
        Some(size) if end <= size => {
            (start / READ_ALIGN * READ_ALIGN, end.div_ceil(READ_ALIGN).saturating_mul(READ_ALIGN).min(size))
        }
        _ => (start, end),
    };
    let mut first = 0;
    while first < need.blobs.len() {
        let start = u64::from(need.blobs[first].0.offset);
        let mut end = end_of(&need.blobs[first].0);
        let mut last = first + 1;
        while let Some((loc, _, _)) = need.blobs.get(last) {
            let next_end = end_of(loc);
            if u64::from(loc.offset) > end + GAP || next_end - start > limit {
                break;
            }
            end = end.max(next_end);
            last += 1;
        }
        // Two neighbouring ranges may share an aligned block (read twice, at most 64 KiB
        // per range): cutting between them exactly would show a blob's offset.
        let (from, to) = widen(start, end);
        out.push(RangeWork { pack, start: from, len: to - from, blobs: first..last });
        first = last;
    }
}

/// Which of a range's blobs (sorted by offset) share bytes with another.
fn overlapping(blobs: &[(BlobLocation, BlobId, Vec<Target>)]) -> Vec<bool> {
    let mut out = vec![false; blobs.len()];
    let mut end_before = 0;
    for (i, (loc, _, _)) in blobs.iter().enumerate() {
        if i > 0 && u64::from(loc.offset) < end_before {
            out[i] = true;
            out[i - 1] = true;
        }
        end_before = end_before.max(end_of(loc));
    }
    out
}

/// Where a file's data starts (pack and offset): files sorted by it put the packs in the
/// order in which a backup wrote them.
pub(super) fn first_location(repo: &IndexedRepository, pieces: &[Piece]) -> Option<(PackId, u32)> {
    pieces.iter().find_map(|(_, id, _)| repo.locate(BlobKind::Data, id).map(|l| (l.pack, l.offset)))
}

/// Reads of the data pass, for tests and measurements.
#[derive(Debug, Default)]
pub(super) struct FillStats {
    /// Ranges read.
    pub(super) ranges: AtomicUsize,
    /// Their bytes.
    pub(super) bytes: AtomicU64,
    /// Blobs read one by one (their range could not be read).
    pub(super) blobs_alone: AtomicUsize,
}

pub(super) struct Filler<'a> {
    repo: &'a IndexedRepository,
    target: &'a Beneath,
    jobs: &'a [FileJob<'a>],
    files: Vec<FileState>,
    packs: Vec<PackNeed>,
    /// The reads, in order of first use.
    work: Vec<RangeWork>,
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
        let mut packs: Vec<PackNeed> = Vec::new();
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
                            packs.push(PackNeed { pack: loc.pack, kind: loc.kind, blobs: Vec::new() });
                            packs.len() - 1
                        });
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
        let mut work = Vec::new();
        let limit = if repo.repo().backend().is_local() { RANGE_LOCAL } else { RANGE };
        for (i, p) in packs.iter_mut().enumerate() {
            p.blobs.sort_by_key(|(loc, _, _)| loc.offset);
            ranges(i, p, repo.pack_size(&p.pack), limit, &mut work);
        }
        Filler {
            repo,
            target,
            jobs,
            files,
            packs,
            work,
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
        // Enough ranges in flight to hide the round trip behind the others' work.
        let workers = workers_for(self.repo.repo().backend().download_threads(), &self.work);
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while let Some(work) = self.work.get(next.fetch_add(1, Ordering::Relaxed)) {
                        self.fill_from(work, finish);
                    }
                });
            }
        });
    }

    /// Reads one range (or, if it cannot be read, its blobs one by one) and writes its
    /// blobs. Each blob is decrypted where it lies in the range's buffer and written from
    /// there, so the bytes are not copied on the way.
    fn fill_from(&self, work: &RangeWork, finish: &(dyn Fn(usize, Finished) + Sync)) {
        let need = &self.packs[work.pack];
        let mut data =
            self.repo.read_pack_range(need.kind, &need.pack, work.start, work.len).ok().map(ObjectBytes::into_mut);
        if data.is_some() {
            self.stats.ranges.fetch_add(1, Ordering::Relaxed);
            self.stats.bytes.fetch_add(work.len, Ordering::Relaxed);
        }
        let blobs = &need.blobs[work.blobs.clone()];
        let shared = overlapping(blobs);
        for (i, (loc, id, targets)) in blobs.iter().enumerate() {
            let within = u32::try_from(work.start)
                .ok()
                .and_then(|start| loc.offset.checked_sub(start))
                .map(|offset| BlobLocation { offset, ..*loc });
            let in_place = match (&mut data, within) {
                // Blobs whose bytes overlap (only a crafted index says so) are each read on
                // their own: opening one in place would spoil the other.
                (Some(data), Some(within)) if !shared[i] => self.repo.open_blob_in_place(&within, id, data).transpose(),
                _ => None,
            };
            let blob = match in_place {
                Some(opened) => opened,
                None => {
                    if data.is_none() {
                        self.stats.blobs_alone.fetch_add(1, Ordering::Relaxed);
                    }
                    self.read_alone(loc, id).map(Cow::Owned)
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

    /// The file closed between pieces, opened in place again (a single-link regular
    /// file), and only if it is still the inode this restore wrote.
    fn reopen(&self, file: usize, dev: u64, ino: u64) -> Result<File, String> {
        let f = open_for_writing(self.target, self.jobs[file].path, true)?;
        let m = f.metadata().map_err(|e| format!("cannot stat file: {e}"))?;
        if m.dev() != dev || m.ino() != ino {
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

    fn need(blobs: &[(u32, u32)]) -> PackNeed {
        let blobs = blobs
            .iter()
            .enumerate()
            .map(|(i, &(offset, length))| {
                let loc = BlobLocation {
                    pack: PackId(vault_format::Id([1; 32])),
                    kind: BlobKind::Data,
                    offset,
                    length,
                    raw_length: length,
                };
                (loc, BlobId(vault_format::Id([i as u8; 32])), Vec::new())
            })
            .collect();
        PackNeed { pack: PackId(vault_format::Id([1; 32])), kind: BlobKind::Data, blobs }
    }

    /// A small restore starts few workers (connections), a large one all it may.
    #[test]
    fn workers_follow_the_bytes_to_read() {
        let work = |n: usize, len: u64| -> Vec<RangeWork> {
            (0..n).map(|i| RangeWork { pack: i, start: 0, len, blobs: 0..1 }).collect()
        };
        assert_eq!(workers_for(16, &work(5, 4 << 20)), 3);
        assert_eq!(workers_for(16, &work(1, 100)), 1);
        assert_eq!(workers_for(16, &work(600, 4 << 20)), 16);
        assert_eq!(workers_for(3, &work(600, 1 << 20)), 3);
        assert_eq!(workers_for(16, &work(0, 0)), 0);
    }

    /// Every blob that shares a byte with another is found, wherever the other lies.
    #[test]
    fn overlapping_blobs_are_found() {
        let n = need(&[(0, 10), (10, 10), (20, 100), (30, 5), (90, 5), (200, 10), (205, 1)]);
        assert_eq!(overlapping(&n.blobs), [false, false, true, true, true, true, true]);
        let n = need(&[(0, 10), (10, 10), (20, 10)]);
        assert_eq!(overlapping(&n.blobs), [false; 3]);
    }

    /// Neighbours share a range, a wide gap or the size limit starts another, a blob
    /// longer than the limit is read alone; every range starts and ends on the alignment
    /// (or the pack's end), and neighbours share at most one aligned block.
    #[test]
    fn ranges_group_neighbours_and_align() {
        const K: u32 = 1024;
        let n = need(&[
            (9, 100 * K),               // 0: starts the first range
            (100 * K + 9, 200 * K),     // 1: adjacent
            (300 * K + 9 + 200 * K, K), // 2: a gap of 200 KiB: same range
            (1200 * K, 3000 * K),       // 3: a gap of 700 KiB: a new range
            (4200 * K, 1100 * K),       // 4: would pass 4 MiB from 3's start: a new range
            (5300 * K, 5000 * K),       // 5: longer than the limit: alone
        ]);
        let mut out = Vec::new();
        ranges(0, &n, Some(20 << 20), RANGE, &mut out);
        let spans: Vec<_> = out.iter().map(|r| (r.start, r.start + r.len, r.blobs.clone())).collect();
        let a = u64::from(64 * K);
        assert_eq!(spans[0], (0, (501 * 1024 + 9u64).div_ceil(a) * a, 0..3));
        assert_eq!(spans[1].2, 3..4);
        assert_eq!(spans[2].2, 4..5);
        assert_eq!(spans[3].2, 5..6);
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0 + a, "{spans:?}");
        }
        assert!(spans[1].1 > spans[2].0, "3 and 4 meet inside a block, which both read");
        for (from, to, blobs) in &spans {
            for (loc, _, _) in &n.blobs[blobs.clone()] {
                assert!(*from <= u64::from(loc.offset) && u64::from(loc.offset + loc.length) <= *to);
            }
            assert!(from % a == 0 && (to % a == 0 || *to == 20 << 20), "{from}..{to} is not aligned");
        }
        // A pack of unknown size: the blobs exactly.
        let mut out = Vec::new();
        ranges(0, &need(&[(9, 10)]), None, RANGE, &mut out);
        assert_eq!((out[0].start, out[0].len), (9, 10));
    }

    /// Files whose blobs a backup interleaved in shared packs, and one file repeated:
    /// every pack is read once, in few ranges, each file is finished once, byte for byte, and
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
            let pack_bytes: u64 = packs.iter().map(|p| handle.pack_size(p).unwrap()).sum();
            let ranges = filler.stats.ranges.load(Ordering::Relaxed);
            assert!(
                ranges >= packs.len() && ranges as u64 <= pack_bytes.div_ceil(RANGE_LOCAL) + packs.len() as u64,
                "{ranges}"
            );
            assert!(
                filler.stats.bytes.load(Ordering::Relaxed) <= pack_bytes + ranges as u64 * READ_ALIGN,
                "more than the packs and a block per range: {} of {pack_bytes} in {ranges}",
                filler.stats.bytes.load(Ordering::Relaxed)
            );
            assert_eq!(filler.stats.blobs_alone.load(Ordering::Relaxed), 0);
            assert_eq!(filler.open.load(Ordering::Relaxed), 0);
            for (name, data) in &want {
                assert_eq!(&std::fs::read(out.path().join(name)).unwrap(), data, "{name}");
            }
        }
    }
}
