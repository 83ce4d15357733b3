//! Where restore gets blobs from.
//!
//! Packs that the plan needs mostly are downloaded whole; blobs of other packs are fetched
//! by range. The whole packs are put in the order files will need them (files are taken
//! in that order), and background threads download a window of them ahead of the files
//! being written, so that the storage's latency hides behind decryption and writing. A
//! pack leaves memory when the last blob read that needs it is done (or, past
//! [`PACKS_IN_MEMORY`], when it has been held longest); downloads pause while a few packs
//! are in memory and never fetch a pack again that the writers have read, so memory is
//! bounded whatever the restore's size. A pack that cannot be read whole falls back to
//! range reads, so its intact blobs still restore.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};

use super::write::Piece;
use vault_format::pack::BlobKind;
use vault_format::{BlobId, PackId};
use vault_repo::{IndexedRepository, ObjectBytes, RepoError};

/// Downloads pause while this many packs are in memory (fetched ahead, or in use).
const PACKS_AHEAD: usize = 4;
/// At most this many packs stay in memory: beyond it the one held longest is dropped,
/// even if some of its blobs are still to be read (they are then fetched again). Backups
/// interleave the blobs of files read at the same time in the same packs, so files
/// written one after the other can need one pack at very different times.
const PACKS_IN_MEMORY: usize = 8;
/// The same from a local directory, where fetching a pack again costs little.
const PACKS_IN_MEMORY_LOCAL: usize = 4;
/// Threads that download them (each pack is itself read in up to four ranges at once).
const PREFETCH_THREADS: usize = 2;

/// A pack being fetched or fetched: `None` when it could not be read whole.
type PackSlot = Arc<OnceLock<Option<ObjectBytes>>>;

/// The whole packs, in the order of first use.
struct Schedule {
    packs: Vec<PackId>,
    kind: Vec<BlobKind>,
    position: HashMap<PackId, usize>,
    /// Blob reads still to come from each pack; at zero the pack is dropped.
    reads_left: Vec<AtomicU32>,
    /// The pack in memory (or being fetched), by position.
    slots: Vec<Mutex<Option<PackSlot>>>,
    /// The packs in `slots`, oldest first (the slot itself, so that an entry never stands
    /// for a later fetch of the same position).
    held: Mutex<std::collections::VecDeque<(usize, PackSlot)>>,
    /// How many packs may be held ([`PACKS_IN_MEMORY`]).
    max_held: usize,
    window: Mutex<Window>,
    moved: Condvar,
}

#[derive(Default)]
struct Window {
    /// The first position whose pack is still needed.
    oldest: usize,
    /// The next position a prefetch thread takes.
    next: usize,
    /// The restore has finished with data: prefetch threads stop.
    closed: bool,
}

pub(super) struct BlobSource<'a> {
    repo: &'a IndexedRepository,
    schedule: Schedule,
    /// The index loaded again after a pack vanished (a prune moved its blobs meanwhile).
    fresh: OnceLock<Option<IndexedRepository>>,
}

impl<'a> BlobSource<'a> {
    /// A source for the pieces of `files`, which will be written in this order.
    pub(super) fn new<'p>(repo: &'a IndexedRepository, files: impl Iterator<Item = &'p [Piece]>) -> Self {
        let files: Vec<&[Piece]> = files.collect();
        // Per pack: bytes of distinct blobs, and reads (one per piece).
        let mut needed: HashMap<PackId, (u64, u32)> = HashMap::new();
        let mut order = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (_, id, _) in files.iter().flat_map(|f| f.iter()) {
            if let Some(l) = repo.locate(BlobKind::Data, id) {
                let e = needed.entry(l.pack).or_insert_with(|| {
                    order.push((l.pack, l.kind));
                    (0, 0)
                });
                // Bytes are counted once per blob, reads once per piece.
                if seen.insert(*id) {
                    e.0 += u64::from(l.length);
                }
                e.1 += 1;
            }
        }
        let sizes: HashMap<PackId, u64> =
            repo.index().packs().iter().chain(repo.condemned().packs()).map(|p| (p.id, p.size)).collect();
        let mut schedule = Schedule {
            packs: Vec::new(),
            kind: Vec::new(),
            position: HashMap::new(),
            reads_left: Vec::new(),
            slots: Vec::new(),
            held: Mutex::default(),
            max_held: if repo.repo().backend().is_local() { PACKS_IN_MEMORY_LOCAL } else { PACKS_IN_MEMORY },
            window: Mutex::default(),
            moved: Condvar::new(),
        };
        for (pack, kind) in order {
            let (bytes, reads) = needed.get(&pack).copied().unwrap_or_default();
            if sizes.get(&pack).is_some_and(|s| bytes * 2 >= *s) {
                schedule.position.insert(pack, schedule.packs.len());
                schedule.packs.push(pack);
                schedule.kind.push(kind);
                schedule.reads_left.push(AtomicU32::new(reads));
                schedule.slots.push(Mutex::new(None));
            }
        }
        BlobSource { repo, schedule, fresh: OnceLock::new() }
    }

    /// Where a file's data starts (pack and offset), to order files so that each pack
    /// is used while it is in memory.
    pub(super) fn first_location(repo: &IndexedRepository, pieces: &[Piece]) -> Option<(PackId, u32)> {
        pieces.iter().find_map(|(_, id, _)| repo.locate(BlobKind::Data, id).map(|l| (l.pack, l.offset)))
    }

    /// Downloads whole packs ahead of the writers until [`BlobSource::close`]. Not from
    /// a local directory: there a read costs no round trip, and the writers read each
    /// pack when they come to it, with fewer packs in memory.
    pub(super) fn prefetch<'s>(&'s self, scope: &'s std::thread::Scope<'s, '_>) {
        if self.repo.repo().backend().is_local() {
            return;
        }
        let threads = PREFETCH_THREADS.min(self.schedule.packs.len());
        for _ in 0..threads {
            scope.spawn(move || {
                while let Some(i) = self.next_to_prefetch() {
                    let _ = self.pack_at(i);
                    // Read to the end meanwhile by writers that fetched it themselves:
                    // nobody else would free it.
                    if self.schedule.reads_left[i].load(Ordering::Acquire) == 0 {
                        self.free(i);
                    }
                }
            });
        }
    }

    /// No more data will be read: prefetch threads stop after their current download.
    pub(super) fn close(&self) {
        self.schedule.window.lock().closed = true;
        self.schedule.moved.notify_all();
    }

    fn next_to_prefetch(&self) -> Option<usize> {
        let s = &self.schedule;
        let mut w = s.window.lock();
        loop {
            if w.closed || w.next >= s.packs.len() {
                return None;
            }
            if w.next < w.oldest {
                w.next = w.oldest;
                continue;
            }
            // A pack the writers already read (fetching it themselves) is not fetched again.
            if s.reads_left[w.next].load(Ordering::Acquire) == 0 {
                w.next += 1;
                continue;
            }
            if s.held.lock().len() < PACKS_AHEAD {
                w.next += 1;
                return Some(w.next - 1);
            }
            s.moved.wait(&mut w);
        }
    }

    /// The pack at position `i`, fetched by whoever asks first.
    fn pack_at(&self, i: usize) -> Option<ObjectBytes> {
        let s = &self.schedule;
        let (slot, created) = {
            let mut g = s.slots[i].lock();
            match &*g {
                Some(slot) => (slot.clone(), false),
                None => (g.insert(PackSlot::default()).clone(), true),
            }
        };
        if created {
            let evicted = {
                let mut held = s.held.lock();
                held.push_back((i, slot.clone()));
                if held.len() > s.max_held { held.pop_front() } else { None }
            };
            if let Some((j, old)) = evicted {
                let mut g = s.slots[j].lock();
                if g.as_ref().is_some_and(|x| Arc::ptr_eq(x, &old)) {
                    *g = None;
                }
            }
        }
        slot.get_or_init(|| self.repo.read_pack(self.schedule.kind[i], &self.schedule.packs[i]).ok()).clone()
    }

    /// One read that needed the pack at `i` is done; the last one frees it.
    fn done_with(&self, i: usize) {
        let s = &self.schedule;
        let left = s.reads_left[i].fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if left != Ok(1) {
            return;
        }
        let mut w = s.window.lock();
        while w.oldest < s.packs.len() && s.reads_left[w.oldest].load(Ordering::Acquire) == 0 {
            w.oldest += 1;
        }
        drop(w);
        self.free(i);
    }

    /// Drops the pack at `i` from memory, and lets the prefetch go on.
    fn free(&self, i: usize) {
        let s = &self.schedule;
        let taken = s.slots[i].lock().take();
        if let Some(slot) = taken {
            s.held.lock().retain(|(_, held)| !Arc::ptr_eq(held, &slot));
        }
        // Under the window's lock, so that a prefetch thread about to wait sees it.
        let _w = s.window.lock();
        s.moved.notify_all();
    }

    /// The pieces of a file that will not be read after all (it could not be created).
    pub(super) fn skip(&self, pieces: &[Piece]) {
        for (_, id, _) in pieces {
            if let Some(l) = self.repo.locate(BlobKind::Data, id)
                && let Some(&i) = self.schedule.position.get(&l.pack)
            {
                self.done_with(i);
            }
        }
    }

    /// The blob `id`, read once for one piece of a file.
    pub(super) fn read(&self, id: &BlobId) -> Result<Vec<u8>, RepoError> {
        let loc = self.repo.locate(BlobKind::Data, id).ok_or_else(|| RepoError::BlobNotIndexed(id.to_hex()))?;
        if let Some(&i) = self.schedule.position.get(&loc.pack) {
            let whole = self.pack_at(i);
            let opened = whole.map(|data| self.repo.open_blob_in(&loc, id, &data));
            self.done_with(i);
            if let Some(r) = opened {
                return r;
            }
        }
        match self.repo.repo().read_blob_within(&loc, id, self.repo.pack_size(&loc.pack)) {
            Err(RepoError::Backend(e)) if e.kind == vault_repo::backend::BackendErrorKind::NotFound => {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::backup;
    use crate::ls::list;
    use crate::progress::NoProgress;
    use crate::tests::{backup_opts, memory_repo};

    /// Every pack leaves memory once its last read (or skip) is done, and the window
    /// moves to the end: what bounds a restore's memory.
    #[test]
    fn packs_leave_memory_after_their_last_read() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let big = vault_format::xorshift::xorshift_bytes(5 << 20, 3);
        for name in ["one", "same-as-one", "skipped"] {
            std::fs::write(src.join(name), &big).unwrap();
        }
        std::fs::write(src.join("other"), vault_format::xorshift::xorshift_bytes(3 << 20, 4)).unwrap();
        let repo = memory_repo("blob-source-window");
        let handle = IndexedRepository::load(repo.clone()).unwrap();
        let snap = backup(&handle, &backup_opts(&src), &NoProgress).unwrap();
        let handle = IndexedRepository::load(repo).unwrap();
        let mut files = Vec::new();
        list(&handle, snap.snapshot.tree, "", &mut |p, n| {
            if n.kind == vault_format::tree::NodeKind::File {
                files.push((p.to_string(), super::super::write::pieces(n)));
            }
        })
        .unwrap();
        files.sort();
        assert_eq!(files.len(), 4);
        let source = BlobSource::new(&handle, files.iter().map(|(_, p)| p.as_slice()));
        assert!(!source.schedule.packs.is_empty(), "the files' packs are read whole");
        std::thread::scope(|scope| {
            source.prefetch(scope);
            for (path, pieces) in &files {
                if path.ends_with("skipped") {
                    source.skip(pieces);
                    continue;
                }
                for (_, id, len) in pieces {
                    assert_eq!(source.read(id).unwrap().len() as u64, *len);
                }
            }
            source.close();
        });
        let s = &source.schedule;
        assert!(s.slots.iter().all(|slot| slot.lock().is_none()), "a pack stayed in memory");
        assert!(s.held.lock().is_empty());
        assert!(s.reads_left.iter().all(|n| n.load(Ordering::Relaxed) == 0));
        assert_eq!(s.window.lock().oldest, s.packs.len());
    }
}
