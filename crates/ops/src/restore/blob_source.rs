//! Where restore gets blobs from.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::write::Piece;
use vault_format::pack::BlobKind;
use vault_format::{BlobId, PackId};
use vault_repo::{IndexedRepository, ObjectBytes, RepoError};

/// Where restore gets blobs from. Packs that the plan needs mostly are downloaded once,
/// whole, and kept in a small LRU; blobs of other packs are fetched by range. A pack
/// that cannot be read whole falls back to range reads, so its intact blobs still restore.
pub(super) struct BlobSource<'a> {
    repo: &'a IndexedRepository,
    whole: HashSet<PackId>,
    packs: Mutex<PackLru>,
    /// The index loaded again after a pack vanished (a prune moved its blobs meanwhile).
    fresh: std::sync::OnceLock<Option<IndexedRepository>>,
}

/// Packs kept in memory at once (16 MiB each by default).
const PACKS_IN_MEMORY: usize = 4;

/// A pack being fetched or fetched: `None` when it could not be read whole.
type PackSlot = Arc<OnceLock<Option<ObjectBytes>>>;

#[derive(Default)]
struct PackLru {
    slots: HashMap<PackId, PackSlot>,
    order: VecDeque<PackId>,
}

impl<'a> BlobSource<'a> {
    /// A source for the blobs `needed` (each once).
    pub(super) fn new(repo: &'a IndexedRepository, needed: impl Iterator<Item = BlobId>) -> Self {
        let mut per_pack: HashMap<PackId, u64> = HashMap::new();
        for id in needed {
            if let Some(l) = repo.locate(BlobKind::Data, &id) {
                *per_pack.entry(l.pack).or_insert(0) += u64::from(l.length);
            }
        }
        let sizes: HashMap<PackId, u64> =
            repo.index().packs().iter().chain(repo.condemned().packs()).map(|p| (p.id, p.size)).collect();
        let whole =
            per_pack.into_iter().filter(|(p, n)| sizes.get(p).is_some_and(|s| n * 2 >= *s)).map(|(p, _)| p).collect();
        BlobSource { repo, whole, packs: Mutex::default(), fresh: std::sync::OnceLock::new() }
    }

    /// Where a file's data starts (pack and offset), to order files so that each pack
    /// is used while it is in memory.
    pub(super) fn first_location(&self, pieces: &[Piece]) -> Option<(PackId, u32)> {
        pieces.iter().find_map(|(_, id, _)| self.repo.locate(BlobKind::Data, id).map(|l| (l.pack, l.offset)))
    }

    fn pack(&self, kind: BlobKind, id: PackId) -> Option<ObjectBytes> {
        let slot = {
            let mut lru = self.packs.lock();
            let slot = lru.slots.entry(id).or_default().clone();
            if !lru.order.contains(&id) {
                lru.order.push_back(id);
                while lru.order.len() > PACKS_IN_MEMORY {
                    if let Some(old) = lru.order.pop_front() {
                        lru.slots.remove(&old);
                    }
                }
            }
            slot
        };
        slot.get_or_init(|| self.repo.read_pack(kind, &id).ok()).clone()
    }

    pub(super) fn read(&self, id: &BlobId) -> Result<Vec<u8>, RepoError> {
        let loc = self.repo.locate(BlobKind::Data, id).ok_or_else(|| RepoError::BlobNotIndexed(id.to_hex()))?;
        if self.whole.contains(&loc.pack)
            && let Some(data) = self.pack(loc.kind, loc.pack)
        {
            return self.repo.open_blob_in(&loc, id, &data);
        }
        match self.repo.repo().read_blob_at(&loc, id) {
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
