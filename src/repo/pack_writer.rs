//! Adds blobs to a repository: dedup against the index, seal, pack, upload, index.
//!
//! Blobs are spread at random over several open packs per kind (so pack contents do not
//! mirror file order, which would help a chunk-size fingerprinting attacker). Full packs go
//! through a bounded channel to uploader threads. Index files are written as checkpoints
//! after 4, 8, 16, 32 and then every 64 packs (or every 5 minutes), and at the end, so an
//! interrupted backup leaves packs that the next one reuses, while a long backup does not
//! leave thousands of tiny index files. Nothing is ever locked in the repository.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use serde::Serialize;

use super::error::{RepoError, Result};
use super::master_index::MasterIndex;
use super::repository::{Repository, TREE_PACK_CACHE_DIR, pack_path};
use crate::format::blob::{Compression, Padding};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::{self, BlobKind, PackBuilder};
use crate::format::{BlobId, Id, IndexId, PackId};

pub const OPEN_PACKS_PER_KIND: usize = 3;
pub const UPLOAD_THREADS: usize = 3;
/// Packs per index checkpoint: the first checkpoint comes early, later ones grow to this.
pub const INDEX_FLUSH_MAX_PACKS: usize = 64;
pub const INDEX_FLUSH_FIRST_PACKS: usize = 4;
pub const INDEX_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct WriterStats {
    pub blobs_added: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Bytes written to packs (sealed blobs and headers).
    pub stored_bytes_added: u64,
    pub packs_written: u64,
    pub index_files_written: u64,
}

struct Upload {
    kind: BlobKind,
    bytes: Vec<u8>,
    entries: Vec<pack::PackEntry>,
}

struct Shared {
    repo: Arc<Repository>,
    index: Arc<MasterIndex>,
    added: Mutex<HashSet<(BlobKind, BlobId)>>,
    open: Mutex<[Vec<Option<PackBuilder>>; 2]>,
    rng: Mutex<u64>,
    pending: Mutex<IndexFile>,
    error: Mutex<Option<RepoError>>,
    written_indexes: Mutex<Vec<IndexId>>,
    last_flush: Mutex<std::time::Instant>,
    blobs_added: AtomicU64,
    bytes_added: AtomicU64,
    stored_bytes: AtomicU64,
    packs_written: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means another thread panicked; its data is still consistent for our
    // purposes (every critical section is a few field updates), so carry on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct PackWriter {
    shared: Arc<Shared>,
    /// For new data blobs; the repository's default unless a command overrides it.
    compression: Compression,
    tx: Option<Sender<Upload>>,
    uploaders: Vec<JoinHandle<()>>,
}

impl PackWriter {
    pub fn new(repo: Arc<Repository>, index: Arc<MasterIndex>) -> Result<PackWriter> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed)?;
        let shared = Arc::new(Shared {
            repo,
            index,
            added: Mutex::default(),
            open: Mutex::new([
                (0..OPEN_PACKS_PER_KIND).map(|_| None).collect(),
                (0..OPEN_PACKS_PER_KIND).map(|_| None).collect(),
            ]),
            rng: Mutex::new(u64::from_le_bytes(seed) | 1),
            pending: Mutex::default(),
            error: Mutex::default(),
            written_indexes: Mutex::default(),
            last_flush: Mutex::new(std::time::Instant::now()),
            blobs_added: AtomicU64::new(0),
            bytes_added: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            packs_written: AtomicU64::new(0),
        });
        let (tx, rx) = bounded::<Upload>(1);
        let uploaders = (0..UPLOAD_THREADS)
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
                    .map_err(|e| RepoError::integrity("upload thread", e))
            })
            .collect::<Result<Vec<_>>>()?;
        let compression = shared.repo.config().compression;
        Ok(PackWriter { shared, compression, tx: Some(tx), uploaders })
    }

    /// Compresses new data blobs this way instead of the repository's default.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    pub fn repo(&self) -> &Arc<Repository> {
        &self.shared.repo
    }

    /// Whether the repository (or this writer) already holds the blob.
    pub fn has(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.shared.index.contains(kind, id) || lock(&self.shared.added).contains(&(kind, *id))
    }

    /// Stores a blob unless it is already present. Returns whether it was new.
    pub fn add(&self, kind: BlobKind, id: BlobId, raw: &[u8]) -> Result<bool> {
        self.check_failed()?;
        if self.shared.index.contains(kind, &id) || !lock(&self.shared.added).insert((kind, id)) {
            return Ok(false);
        }
        let cfg = self.shared.repo.config();
        let (compression, padding) = match kind {
            BlobKind::Data => (self.compression, cfg.padding),
            BlobKind::Tree => (cfg.compression, Padding::None),
        };
        let sealed = pack::seal_blob(self.shared.repo.keys(), kind, &id, raw, compression, padding)?;
        self.shared.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.shared.bytes_added.fetch_add(raw.len() as u64, Ordering::Relaxed);
        self.shared.stored_bytes.fetch_add(sealed.len() as u64, Ordering::Relaxed);
        let target = match kind {
            BlobKind::Data => cfg.data_pack_size,
            BlobKind::Tree => cfg.tree_pack_size,
        } as usize;
        let full = {
            let slot = self.shared.next_random() as usize % OPEN_PACKS_PER_KIND;
            let mut open = lock(&self.shared.open);
            let builder =
                open[kind.to_byte() as usize][slot].get_or_insert_with(|| PackBuilder::new(kind, target + target / 8));
            builder.add(id, &sealed, raw.len() as u32);
            if builder.len() >= target { open[kind.to_byte() as usize][slot].take() } else { None }
        };
        if let Some(b) = full {
            self.ship(b)?;
        }
        Ok(true)
    }

    fn ship(&self, builder: PackBuilder) -> Result<()> {
        let kind = builder.kind();
        let (bytes, entries) = builder.finish(self.shared.repo.keys())?;
        let tx = self.tx.as_ref().ok_or_else(|| RepoError::integrity("pack writer", "used after finish"))?;
        if tx.send(Upload { kind, bytes, entries }).is_err() {
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

    /// Uploads every open pack, waits for the uploads and writes the final index file.
    /// Only after this returns may a snapshot that references the blobs be written.
    pub fn finish(mut self) -> Result<WriterStats> {
        let open: Vec<PackBuilder> = {
            let mut open = lock(&self.shared.open);
            open.iter_mut().flat_map(|slots| slots.iter_mut().filter_map(Option::take)).collect()
        };
        for b in open.into_iter().filter(|b| !b.is_empty()) {
            self.ship(b)?;
        }
        self.tx = None;
        for h in self.uploaders.drain(..) {
            let _ = h.join();
        }
        self.check_failed()?;
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
        let mut x = lock(&self.rng);
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    fn fail(&self, e: RepoError) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn upload(&self, job: Upload) -> Result<()> {
        let id = PackId(Id::of_stored_bytes(&job.bytes));
        let size = job.bytes.len() as u64;
        let header = size - job.entries.iter().map(|e| u64::from(e.length)).sum::<u64>();
        if job.kind == BlobKind::Tree {
            self.repo.cache_written(TREE_PACK_CACHE_DIR, &id.0, &job.bytes);
        }
        self.repo.backend().write(&pack_path(job.kind, &id), job.bytes)?;
        self.stored_bytes.fetch_add(header, Ordering::Relaxed);
        self.packs_written.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending).packs.push(IndexPack { id, kind: job.kind, size, blobs: job.entries });
        self.flush_index(false)
    }

    /// Writes the pending index entries when a checkpoint is due (or `always`).
    fn flush_index(&self, always: bool) -> Result<()> {
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
    use crate::format::keyfile::{KdfParams, KeyMeta};
    use crate::repo::backend::{Backend, OpenMode};
    use crate::repo::location::Location;
    use crate::repo::repository::InitOptions;

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
}
