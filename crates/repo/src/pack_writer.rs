//! Adds blobs to a repository: dedup against the index, seal, pack, upload, index.
//!
//! Blobs are spread at random over several open packs per kind (so pack contents do not
//! mirror file order, which would help a chunk-size fingerprinting attacker). Full packs go
//! through a bounded channel to uploader threads. Index files are written as checkpoints
//! after 4, 8, 16, 32 and then every 64 packs (or every 5 minutes), and at the end, so an
//! interrupted backup leaves packs that the next one reuses, while a long backup does not
//! leave thousands of tiny index files. Nothing is ever locked in the repository.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use serde::Serialize;

use super::backend::StreamingWrite;
use super::error::{RepoError, Result};
use super::master_index::MasterIndex;
use super::object::StoredObject;
use super::repository::Repository;
use vault_format::blob::Compression;
use vault_format::index::{IndexFile, IndexPack};
use vault_format::pack::{self, BlobKind, PackBuilder};
use vault_format::tree::Tree;
use vault_format::xorshift::Xorshift64;
use vault_format::{BlobId, Id, IndexId, PackId};

pub(crate) const OPEN_PACKS_PER_KIND: usize = 3;
/// Packs per index checkpoint: the first checkpoint comes early, later ones grow to this.
pub(crate) const INDEX_FLUSH_MAX_PACKS: usize = 64;
pub(crate) const INDEX_FLUSH_FIRST_PACKS: usize = 4;
pub(crate) const INDEX_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
/// What a [`PackWriter`] stored.
pub struct WriterStats {
    /// Blobs stored (not deduplicated away).
    pub blobs_added: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Bytes written to packs (sealed blobs and headers).
    pub stored_bytes_added: u64,
    /// Pack files written.
    pub packs_written: u64,
    /// Index files written.
    pub index_files_written: u64,
}

/// A pack being filled. Data packs on backends that can rename are streamed to a
/// temporary object as blobs arrive, so memory does not hold open packs whole; tree packs
/// (which also go to the local cache) and packs for object stores are built in memory.
enum OpenPack {
    Memory(PackBuilder),
    Streaming(Box<StreamingPack>),
}

struct StreamingPack {
    kind: BlobKind,
    out: StreamingWrite,
    hasher: blake3::Hasher,
    len: u64,
    entries: Vec<pack::PackEntry>,
    /// Bytes not yet handed to `out`.
    piece: Vec<u8>,
}

impl OpenPack {
    fn len(&self) -> u64 {
        match self {
            OpenPack::Memory(b) => b.len() as u64,
            OpenPack::Streaming(s) => s.len,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            OpenPack::Memory(b) => b.is_empty(),
            OpenPack::Streaming(s) => s.entries.is_empty(),
        }
    }
}

/// Blobs go out in pieces of exactly this size (the last one of a pack excepted): a write
/// per 3 KB blob made a backup of many small files four times slower, and writes shaped by
/// blob boundaries would show the storage server each chunk's length (spec §9).
const STREAM_PIECE: usize = 1 << 20;

/// Adds `bytes` to `piece` and hands every piece that reaches `size` bytes to `emit`, so
/// what goes out never depends on where one blob ends and the next begins.
fn shape_pieces<E>(
    piece: &mut Vec<u8>,
    mut bytes: &[u8],
    size: usize,
    mut emit: impl FnMut(Vec<u8>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    while !bytes.is_empty() {
        let take = (size - piece.len()).min(bytes.len());
        piece.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if piece.len() == size {
            emit(std::mem::replace(piece, Vec::with_capacity(size)))?;
        }
    }
    Ok(())
}

impl StreamingPack {
    fn append(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.hasher.update(&bytes);
        self.len += bytes.len() as u64;
        let out = &mut self.out;
        shape_pieces(&mut self.piece, &bytes, STREAM_PIECE, |p| out.append(p))?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.piece.is_empty() {
            let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(STREAM_PIECE));
            self.out.append(piece)?;
        }
        Ok(())
    }

    fn add(&mut self, id: BlobId, sealed: Vec<u8>, raw_length: u32) -> Result<()> {
        let entry = pack::PackEntry { id, offset: self.len as u32, length: sealed.len() as u32, raw_length };
        self.append(sealed)?;
        self.entries.push(entry);
        Ok(())
    }
}

enum Upload {
    Memory {
        kind: BlobKind,
        bytes: Vec<u8>,
        entries: Vec<pack::PackEntry>,
    },
    /// Complete but unnamed: the upload thread flushes and names it.
    Streamed {
        kind: BlobKind,
        out: Box<StreamingWrite>,
        id: PackId,
        size: u64,
        entries: Vec<pack::PackEntry>,
    },
}

struct Shared {
    repo: Arc<Repository>,
    index: Arc<MasterIndex>,
    added: Mutex<HashSet<(BlobKind, BlobId)>>,
    /// One lock per open pack, so that threads filling different packs do not wait.
    open: [Vec<Mutex<Option<OpenPack>>>; 2],
    rng: Mutex<Xorshift64>,
    pending: Mutex<IndexFile>,
    error: Mutex<Option<RepoError>>,
    written_indexes: Mutex<Vec<IndexId>>,
    /// Whether packs are indexed by index files of the writer's own (else the caller
    /// takes their entries from [`PackWriter::finish_unindexed`]).
    writes_index: bool,
    /// A write-only key deduplicates trees only against those it could read (its own):
    /// one it cannot read would leave its next backup without that part of its parent.
    readable_trees: Option<Mutex<std::collections::HashSet<BlobId>>>,
    last_flush: Mutex<std::time::Instant>,
    blobs_added: AtomicU64,
    bytes_added: AtomicU64,
    stored_bytes: AtomicU64,
    packs_written: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

impl Shared {
    /// Whether a stored blob makes storing this one unnecessary.
    fn indexed(&self, kind: BlobKind, id: &BlobId) -> bool {
        match (&self.readable_trees, kind) {
            (Some(t), BlobKind::Tree) => lock(t).contains(id) && self.index.contains(kind, id),
            _ => self.index.contains(kind, id),
        }
    }
}

/// Packs new blobs: deduplicates against the index and the blobs of this run, seals and batches them into packs, uploads packs on background threads and writes index files for them.
pub struct PackWriter {
    shared: Arc<Shared>,
    /// For new data blobs; the repository's default unless a command overrides it.
    compression: Compression,
    tx: Option<Sender<Upload>>,
    uploaders: Vec<JoinHandle<()>>,
    /// Seal and count new blobs, store nothing (`backup --dry-run`).
    dry_run: bool,
}

impl PackWriter {
    /// A writer adding to `repo`, deduplicating against `index`.
    pub fn new(repo: Arc<Repository>, index: Arc<MasterIndex>) -> Result<PackWriter> {
        Self::build(repo, index, true)
    }

    fn build(repo: Arc<Repository>, index: Arc<MasterIndex>, writes_index: bool) -> Result<PackWriter> {
        // Repacking copies blobs already spread at random: one open pack per kind fills
        // packs to their target size instead of leaving several part-filled ones.
        let slots = if writes_index { OPEN_PACKS_PER_KIND } else { 1 };
        let repo_is_full = repo.is_full();
        let shared = Arc::new(Shared {
            repo,
            index,
            added: Mutex::default(),
            open: [(0..slots).map(|_| Mutex::new(None)).collect(), (0..slots).map(|_| Mutex::new(None)).collect()],
            rng: Mutex::new(Xorshift64::from_os()?),
            pending: Mutex::default(),
            error: Mutex::default(),
            written_indexes: Mutex::default(),
            writes_index,
            readable_trees: (!repo_is_full).then(Mutex::default),
            last_flush: Mutex::new(std::time::Instant::now()),
            blobs_added: AtomicU64::new(0),
            bytes_added: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            packs_written: AtomicU64::new(0),
        });
        let (tx, rx) = bounded::<Upload>(1);
        let uploaders = (0..shared.repo.backend().upload_threads())
            .map(|i| {
                let rx = rx.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("vault-upload-{i}"))
                    .spawn(move || {
                        for job in rx {
                            if let Err(e) = shared.upload(job) {
                                shared.fail(e);
                            }
                        }
                    })
                    .map_err(|source| RepoError::System { what: "start an upload thread", source })
            })
            .collect::<Result<Vec<_>>>()?;
        let compression = shared.repo.config().compression;
        Ok(PackWriter { shared, compression, tx: Some(tx), uploaders, dry_run: false })
    }

    /// Compresses new data blobs this way instead of the repository's default.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// A writer that deduplicates, seals and counts like this one but stores nothing:
    /// its stats say what a real run would add.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The repository written to.
    pub fn repo(&self) -> &Arc<Repository> {
        &self.shared.repo
    }

    /// Whether the repository (or this writer) already holds the blob.
    pub fn has(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.shared.indexed(kind, id) || lock(&self.shared.added).contains(&(kind, *id))
    }

    /// A tree this key read (a write-only key deduplicates trees only against those).
    pub fn mark_readable_tree(&self, id: BlobId) {
        if let Some(t) = &self.shared.readable_trees {
            lock(t).insert(id);
        }
    }

    /// Stores a blob under its id unless it is already present. Returns the id and
    /// whether the blob was new.
    pub fn save_blob(&self, kind: BlobKind, raw: &[u8]) -> Result<(BlobId, bool)> {
        let id = self.shared.repo.blob_id(raw);
        Ok((id, self.add(kind, id, raw)?))
    }

    /// Stores a directory's tree (canonicalised first, so that an unchanged directory
    /// gives the same tree blob) and returns its id.
    pub fn save_tree(&self, mut tree: Tree) -> Result<BlobId> {
        tree.canonicalize();
        Ok(self.save_blob(BlobKind::Tree, &tree.encode())?.0)
    }

    /// Stores a blob whose id the caller has already verified (a blob salvaged from a
    /// damaged pack, say) unless it is already present. Returns whether it was new.
    pub fn add(&self, kind: BlobKind, id: BlobId, raw: &[u8]) -> Result<bool> {
        self.check_failed()?;
        if self.shared.indexed(kind, &id) || !lock(&self.shared.added).insert((kind, id)) {
            return Ok(false);
        }
        let cfg = self.shared.repo.config();
        let (compression, padding) = match kind {
            BlobKind::Data => (self.compression, cfg.padding),
            // Trees are padded too: a directory's listing length tells its entry count.
            BlobKind::Tree => (cfg.compression, cfg.padding),
        };
        let sealed = pack::seal_blob(self.shared.repo.keys(), kind, &id, raw, compression, padding)?;
        self.place(kind, id, sealed, raw.len() as u32)?;
        Ok(true)
    }

    /// Copies a blob as it is stored (sealed, compressed) into a new pack, without opening
    /// it: prune's repacking. The caller has authenticated `sealed` as blob `id` of `kind`.
    /// Returns whether it was new to this writer.
    pub fn add_sealed(&self, kind: BlobKind, id: BlobId, sealed: Vec<u8>, raw_length: u32) -> Result<bool> {
        self.check_failed()?;
        if self.shared.index.contains(kind, &id) || !lock(&self.shared.added).insert((kind, id)) {
            return Ok(false);
        }
        self.place(kind, id, sealed, raw_length)?;
        Ok(true)
    }

    fn place(&self, kind: BlobKind, id: BlobId, sealed: Vec<u8>, raw_length: u32) -> Result<()> {
        let cfg = self.shared.repo.config();
        self.shared.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.shared.bytes_added.fetch_add(u64::from(raw_length), Ordering::Relaxed);
        self.shared.stored_bytes.fetch_add(sealed.len() as u64, Ordering::Relaxed);
        if self.dry_run {
            return Ok(());
        }
        let target = match kind {
            BlobKind::Data => cfg.data_pack_size,
            BlobKind::Tree => cfg.tree_pack_size,
        } as usize;
        let full = {
            let slots = &self.shared.open[kind.to_byte() as usize];
            let slot = self.shared.next_random() as usize % slots.len();
            let mut open = lock(&slots[slot]);
            let pack = match open.take() {
                Some(p) => p,
                None => self.shared.new_pack(kind, target)?,
            };
            let pack = open.insert(pack);
            match pack {
                OpenPack::Memory(b) => b.add(id, &sealed, raw_length),
                OpenPack::Streaming(s) => {
                    if let Err(e) = s.add(id, sealed, raw_length) {
                        // A stream that failed midway is abandoned (dropping it removes it).
                        open.take();
                        return Err(e);
                    }
                }
            }
            if pack.len() >= target as u64 { open.take() } else { None }
        };
        if let Some(p) = full {
            self.ship(p)?;
        }
        Ok(())
    }

    fn ship(&self, pack: OpenPack) -> Result<()> {
        let job = match pack {
            OpenPack::Memory(builder) => {
                let kind = builder.kind();
                let (bytes, entries) = builder.finish(self.shared.repo.keys())?;
                Upload::Memory { kind, bytes, entries }
            }
            OpenPack::Streaming(mut s) => {
                let padding = self.shared.repo.config().padding;
                let trailer = pack::pack_trailer(self.shared.repo.keys(), s.kind, &s.entries, padding)?;
                s.append(trailer)?;
                s.flush()?;
                let id = PackId(Id(*s.hasher.finalize().as_bytes()));
                Upload::Streamed { kind: s.kind, out: Box::new(s.out), id, size: s.len, entries: s.entries }
            }
        };
        let tx = self.tx.as_ref().ok_or_else(|| RepoError::invalid("pack writer", "used after finish"))?;
        if tx.send(job).is_err() {
            self.check_failed()?;
        }
        Ok(())
    }

    fn check_failed(&self) -> Result<()> {
        match lock(&self.shared.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// What was stored so far.
    pub fn stats(&self) -> WriterStats {
        let s = &self.shared;
        WriterStats {
            blobs_added: s.blobs_added.load(Ordering::Relaxed),
            bytes_added: s.bytes_added.load(Ordering::Relaxed),
            stored_bytes_added: s.stored_bytes.load(Ordering::Relaxed),
            packs_written: s.packs_written.load(Ordering::Relaxed),
            index_files_written: lock(&s.written_indexes).len() as u64,
        }
    }

    /// A writer whose packs no index file of its own lists: the caller gets their entries
    /// from [`PackWriter::finish_unindexed`] and indexes them (prune's one new index).
    pub fn unindexed(repo: Arc<Repository>) -> Result<PackWriter> {
        Self::build(repo, Arc::new(MasterIndex::new()), false)
    }

    /// Uploads every open pack and returns their index entries (for [`PackWriter::unindexed`]).
    pub fn finish_unindexed(mut self) -> Result<(WriterStats, Vec<IndexPack>)> {
        self.upload_all()?;
        let packs = std::mem::take(&mut lock(&self.shared.pending).packs);
        Ok((self.stats(), packs))
    }

    fn upload_all(&mut self) -> Result<()> {
        let open: Vec<OpenPack> =
            self.shared.open.iter().flat_map(|slots| slots.iter().filter_map(|s| lock(s).take())).collect();
        for b in open.into_iter().filter(|b| !b.is_empty()) {
            self.ship(b)?;
        }
        self.tx = None;
        for h in self.uploaders.drain(..) {
            let _ = h.join();
        }
        self.check_failed()
    }

    /// Uploads every open pack, waits for the uploads and writes the final index file.
    /// Only after this returns may a snapshot that references the blobs be written.
    pub fn finish(mut self) -> Result<WriterStats> {
        self.upload_all()?;
        self.shared.flush_index(true)?;
        Ok(self.stats())
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        self.tx = None;
        for h in self.uploaders.drain(..) {
            let _ = h.join();
        }
    }
}

impl Shared {
    fn next_random(&self) -> u64 {
        lock(&self.rng).next_u64()
    }

    fn fail(&self, e: RepoError) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn new_pack(&self, kind: BlobKind, target: usize) -> Result<OpenPack> {
        if kind == BlobKind::Data && self.repo.backend().can_stream() {
            let mut s = StreamingPack {
                kind,
                out: self.repo.backend().start_streaming_write()?,
                hasher: blake3::Hasher::new(),
                len: 0,
                entries: Vec::new(),
                piece: Vec::with_capacity(STREAM_PIECE),
            };
            s.append(pack::pack_prefix().to_vec())?;
            return Ok(OpenPack::Streaming(Box::new(s)));
        }
        Ok(OpenPack::Memory(PackBuilder::new(kind, target + target / 8).with_padding(self.repo.config().padding)))
    }

    fn upload(&self, job: Upload) -> Result<()> {
        let (id, kind, size, entries) = match job {
            Upload::Memory { kind, bytes, entries } => {
                let id = PackId(Id::of_stored_bytes(&bytes));
                let size = bytes.len() as u64;
                if kind == BlobKind::Tree {
                    self.repo.cache_tree_pack(&id, &bytes);
                }
                self.repo.backend().write(&StoredObject::Pack(kind, id).path(), bytes)?;
                (id, kind, size, entries)
            }
            Upload::Streamed { kind, out, id, size, entries } => {
                out.finish(&StoredObject::Pack(kind, id).path())?;
                (id, kind, size, entries)
            }
        };
        let header = size - entries.iter().map(|e| u64::from(e.length)).sum::<u64>();
        self.stored_bytes.fetch_add(header, Ordering::Relaxed);
        self.packs_written.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending).packs.push(IndexPack { id, kind, size, blobs: entries });
        self.flush_index(false)
    }

    /// Writes the pending index entries when a checkpoint is due (or `always`).
    fn flush_index(&self, always: bool) -> Result<()> {
        if !self.writes_index {
            return Ok(());
        }
        let file = {
            let mut p = lock(&self.pending);
            let done = lock(&self.written_indexes).len() as u32;
            let threshold = (INDEX_FLUSH_FIRST_PACKS << done.min(8)).min(INDEX_FLUSH_MAX_PACKS);
            let due = always || p.packs.len() >= threshold || lock(&self.last_flush).elapsed() >= INDEX_FLUSH_INTERVAL;
            if p.packs.is_empty() || !due {
                return Ok(());
            }
            std::mem::take(&mut *p)
        };
        let id = self.repo.save_index(&file)?;
        lock(&self.written_indexes).push(id);
        *lock(&self.last_flush) = std::time::Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, OpenMode};
    use crate::location::Location;
    use crate::repository::InitOptions;
    use vault_format::keyfile::{KdfParams, KeyMeta};

    #[test]
    fn blobs_round_trip_and_dedup() {
        let b = Backend::open(&Location::Memory("w".into()), &Default::default(), OpenMode::Create).unwrap();
        let opts =
            InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
        let repo = Arc::new(Repository::init(b, b"pw", &opts, KeyMeta::default()).unwrap());
        let w = PackWriter::new(repo.clone(), Arc::new(MasterIndex::new())).unwrap();
        let blobs: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_le_bytes().repeat(1000)).collect();
        for raw in &blobs {
            let id = repo.keys().blob_id(raw);
            assert!(w.add(BlobKind::Data, id, raw).unwrap());
            assert!(!w.add(BlobKind::Data, id, raw).unwrap());
        }
        let stats = w.finish().unwrap();
        assert_eq!(stats.blobs_added, 50);
        assert_eq!(stats.index_files_written, 1);
        let (index, bad) = repo.load_index().unwrap();
        assert!(bad.is_empty());
        assert_eq!(index.blob_count(), 50);
        for raw in &blobs {
            let id = repo.keys().blob_id(raw);
            assert_eq!(&repo.read_blob(&index, BlobKind::Data, &id).unwrap(), raw);
            assert!(repo.read_blob(&index, BlobKind::Tree, &id).is_err());
        }
    }

    #[test]
    fn streamed_writes_never_follow_blob_boundaries() {
        // What a storage server that logs write sizes would see: every piece but the last
        // is exactly the piece size, whatever the blobs' lengths.
        let size = 1000;
        let mut piece = Vec::new();
        let mut written: Vec<usize> = Vec::new();
        let mut all = Vec::new();
        for (i, len) in [3usize, 1500, 700, 2200, 999, 1, 4000].into_iter().enumerate() {
            let blob = vec![i as u8; len];
            all.extend_from_slice(&blob);
            let mut out = |p: Vec<u8>| -> std::result::Result<(), ()> {
                written.push(p.len());
                Ok(())
            };
            shape_pieces(&mut piece, &blob, size, &mut out).unwrap();
        }
        assert!(written.iter().all(|&n| n == size), "{written:?}");
        assert_eq!(written.len() * size + piece.len(), all.len());
    }
}
