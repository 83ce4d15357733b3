//! The handle operations work on: an opened repository together with its loaded index.

use std::sync::Arc;

use vault_format::pack::{BlobKind, PackEntry};
use vault_format::tree::Tree;
use vault_format::{BlobId, PackId};

use super::error::{RepoError, Result};
use super::master_index::{BlobLocation, MasterIndex};
use super::object::Damaged;
use super::object_bytes::ObjectBytes;
use super::pack_writer::PackWriter;
use super::repository::Repository;

/// `data` is the blob `id` that a file's content list says holds `length` bytes.
pub fn check_item_length(id: &BlobId, data: &[u8], length: u32, pack: Option<PackId>) -> Result<()> {
    if data.len() as u64 == u64::from(length) {
        return Ok(());
    }
    Err(RepoError::integrity(
        Damaged::Blob { kind: BlobKind::Data, id: *id, pack },
        format!("it holds {} bytes where the file's content list says {length}", data.len()),
    ))
}

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
    /// Packs only superseded index files list (condemned by a prune, not yet deleted):
    /// readers fall back to them, writers never deduplicate against them.
    condemned: Arc<MasterIndex>,
    /// Damaged index files skipped while loading (their blobs are unknown).
    index_problems: Arc<Vec<RepoError>>,
}

impl IndexedRepository {
    /// Loads every (non-superseded) index file of `repo`.
    pub fn load(repo: Arc<Repository>) -> Result<Self> {
        let views = repo.load_index_views()?;
        Ok(IndexedRepository {
            repo,
            index: Arc::new(views.live),
            condemned: Arc::new(views.condemned),
            index_problems: Arc::new(views.problems),
        })
    }

    /// Loads the index as [`IndexedRepository::load`] does, leaving out packs that storage
    /// does not have (one listing): a writer must not deduplicate against a blob whose pack
    /// has vanished, or its snapshot would reference nothing. Returns the packs left out.
    pub fn load_present(repo: Arc<Repository>) -> Result<(Self, Vec<PackId>)> {
        // Packs are listed after the index files are read: packs are stored before any
        // index lists them, so a pack missing from this listing is really gone.
        let files = repo.load_index_files()?;
        let stored: std::collections::HashSet<PackId> = repo.list_packs()?.into_iter().map(|p| p.id).collect();
        let mut missing = Vec::new();
        let views = repo.index_views(files, |p, live| {
            let here = stored.contains(p);
            // A condemned pack that is gone was deleted by a prune, as it should be.
            if !here && live {
                missing.push(*p);
            }
            here
        })?;
        missing.sort();
        missing.dedup();
        let handle = Self::with_views(repo, views.live, views.condemned);
        Ok((IndexedRepository { index_problems: Arc::new(views.problems), ..handle }, missing))
    }

    /// A handle over a live index and condemned packs built elsewhere (by prune).
    pub fn with_views(repo: Arc<Repository>, live: MasterIndex, condemned: MasterIndex) -> Self {
        IndexedRepository {
            repo,
            index: Arc::new(live),
            condemned: Arc::new(condemned),
            index_problems: Arc::default(),
        }
    }

    /// A handle over an index built elsewhere (by `repair`, from pack headers).
    pub fn with_index(repo: Arc<Repository>, index: MasterIndex) -> Self {
        IndexedRepository { repo, index: Arc::new(index), condemned: Arc::default(), index_problems: Arc::default() }
    }

    /// The repository underneath: snapshots, index files, config.
    pub fn repo(&self) -> &Arc<Repository> {
        &self.repo
    }

    /// The loaded index (live index files only).
    pub fn index(&self) -> &MasterIndex {
        &self.index
    }

    /// Packs that only superseded index files list (see [`Repository::load_index_views`]).
    pub fn condemned(&self) -> &MasterIndex {
        &self.condemned
    }

    /// Damaged index files that were skipped while loading.
    pub fn index_problems(&self) -> &[RepoError] {
        &self.index_problems
    }

    /// Where a blob is: the live index's place, or else a condemned pack's.
    pub fn locate(&self, kind: BlobKind, id: &BlobId) -> Option<BlobLocation> {
        self.index.get(kind, id).or_else(|| self.condemned.get(kind, id))
    }

    /// The size of a pack the live index or a condemned pack's index lists.
    pub fn pack_size(&self, id: &PackId) -> Option<u64> {
        self.index.pack(id).or_else(|| self.condemned.pack(id)).map(|p| p.size)
    }

    /// Whether the blob can be read (the live index or a condemned pack holds it).
    pub fn contains(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.index.contains(kind, id) || self.condemned.contains(kind, id)
    }

    /// Reads, decrypts and verifies one blob.
    pub fn read_blob(&self, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.locate(kind, id).ok_or_else(|| RepoError::BlobNotIndexed(id.to_hex()))?;
        self.repo.read_blob_within(&loc, id, self.pack_size(&loc.pack))
    }

    /// Reads one data blob of a file's content list, which says it holds `length` bytes.
    /// Any other length is damage: readers would otherwise disagree about the file (and
    /// an archive built from it would hold more than its header says).
    pub fn read_data_item(&self, id: &BlobId, length: u32) -> Result<Vec<u8>> {
        let data = self.read_blob(BlobKind::Data, id)?;
        check_item_length(id, &data, length, self.locate(BlobKind::Data, id).map(|l| l.pack))?;
        Ok(data)
    }

    /// Reads and decodes one tree.
    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        let loc = self.locate(BlobKind::Tree, id).ok_or_else(|| RepoError::BlobNotIndexed(id.to_hex()))?;
        self.repo.load_tree_at(&loc, id, self.pack_size(&loc.pack))
    }

    /// Reads a whole pack (unverified: its blobs are verified as they are opened).
    pub fn read_pack(&self, kind: BlobKind, id: &PackId) -> Result<ObjectBytes> {
        let info = self.index.pack(id).or_else(|| self.condemned.pack(id));
        let size = info.ok_or_else(|| RepoError::BlobNotIndexed(format!("pack {}", id.to_hex())))?.size;
        self.repo.read_pack(kind, id, size)
    }

    /// Opens the blob `id` out of its pack held whole.
    pub fn open_blob_in(
        &self,
        loc: &BlobLocation,
        id: &BlobId,
        data: &ObjectBytes,
    ) -> Result<vault_format::blob::BlobBytes> {
        let entry = PackEntry { id: *id, offset: loc.offset, length: loc.length, raw_length: loc.raw_length };
        self.repo.open_blob_in(loc.kind, &loc.pack, data, &entry)
    }

    /// [`Repository::open_blob_in_place`] of the blob `id` at `loc` (its offset relative
    /// to `data`).
    pub fn open_blob_in_place<'a>(
        &self,
        loc: &BlobLocation,
        id: &BlobId,
        data: &'a mut [u8],
    ) -> Result<Option<std::borrow::Cow<'a, [u8]>>> {
        let entry = PackEntry { id: *id, offset: loc.offset, length: loc.length, raw_length: loc.raw_length };
        self.repo.open_blob_in_place(loc.kind, &loc.pack, data, &entry)
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
