//! The handle operations work on: an opened repository together with its loaded index.

use std::sync::Arc;

use vault_format::pack::{BlobKind, PackEntry};
use vault_format::tree::Tree;
use vault_format::{BlobId, PackId};

use super::error::{RepoError, Result};
use super::master_index::{BlobLocation, MasterIndex};
use super::object_bytes::ObjectBytes;
use super::pack_writer::PackWriter;
use super::repository::Repository;

/// An opened repository with its index loaded: everything an operation needs to read
/// trees and blobs, and to start a [`PackWriter`] that deduplicates against the whole
/// repository. Cheap to clone (two `Arc`s).
///
/// The index is a snapshot of the index files at load time; a command that must see
/// what other writers committed since then loads a new handle.
#[derive(Clone, Debug)]
pub struct IndexedRepository {
    repo: Arc<Repository>,
    index: Arc<MasterIndex>,
    /// Damaged index files skipped while loading (their blobs are unknown).
    index_problems: Arc<Vec<RepoError>>,
}

impl IndexedRepository {
    /// Loads every (non-superseded) index file of `repo`.
    pub fn load(repo: Arc<Repository>) -> Result<Self> {
        let (index, problems) = repo.load_index()?;
        Ok(IndexedRepository { repo, index: Arc::new(index), index_problems: Arc::new(problems) })
    }

    /// A handle over an index built elsewhere (by `repair`, from pack headers).
    pub fn with_index(repo: Arc<Repository>, index: MasterIndex) -> Self {
        IndexedRepository { repo, index: Arc::new(index), index_problems: Arc::default() }
    }

    /// The repository underneath: snapshots, index files, config.
    pub fn repo(&self) -> &Arc<Repository> {
        &self.repo
    }

    /// The loaded index.
    pub fn index(&self) -> &MasterIndex {
        &self.index
    }

    /// Damaged index files that were skipped while loading.
    pub fn index_problems(&self) -> &[RepoError] {
        &self.index_problems
    }

    /// Where the index places a blob.
    pub fn locate(&self, kind: BlobKind, id: &BlobId) -> Option<BlobLocation> {
        self.index.get(kind, id)
    }

    /// Whether the index knows a blob.
    pub fn contains(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.index.contains(kind, id)
    }

    /// Reads, decrypts and verifies one blob.
    pub fn read_blob(&self, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
        self.repo.read_blob(&self.index, kind, id)
    }

    /// Reads and decodes one tree.
    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        self.repo.load_tree(&self.index, id)
    }

    /// Reads a whole pack (unverified: its blobs are verified as they are opened).
    pub fn read_pack(&self, kind: BlobKind, id: &PackId) -> Result<ObjectBytes> {
        self.repo.read_pack(kind, id)
    }

    /// Opens the blob `id` out of its pack held whole.
    pub fn open_blob_in(&self, loc: &BlobLocation, id: &BlobId, data: &ObjectBytes) -> Result<Vec<u8>> {
        let entry = PackEntry { id: *id, offset: loc.offset, length: loc.length, raw_length: loc.raw_length };
        self.repo.open_blob_in(loc.kind, &loc.pack, data, &entry)
    }

    /// A pack writer that skips blobs this index (or the writer itself) already holds.
    pub fn writer(&self) -> Result<PackWriter> {
        PackWriter::new(self.repo.clone(), self.index.clone())
    }

    /// The id a blob with these bytes has in this repository.
    pub fn blob_id(&self, raw: &[u8]) -> BlobId {
        self.repo.blob_id(raw)
    }
}

/// Snapshots, index files and the config are the repository's; the handle lends them.
impl std::ops::Deref for IndexedRepository {
    type Target = Repository;

    fn deref(&self) -> &Repository {
        &self.repo
    }
}
