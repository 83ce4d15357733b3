//! The last step before a writer commits a snapshot: making sure every blob the snapshot
//! references is listed by the live index.
//!
//! A writer loads the index when it starts. If a prune condemned packs after that, blobs
//! the writer deduplicated against may now sit only in condemned packs (which stay until
//! this writer ends: the prune's wait record names it). Copying those blobs into a new
//! pack of the writer's own before the snapshot is written keeps the invariant that a
//! snapshot only references live blobs; the prune's rescue step is then never needed for
//! a writer that got this far. When no pack of the writer's view left the index (the usual
//! case), this costs one reload of the index.

use std::collections::HashSet;
use std::sync::Arc;

use vault_format::BlobId;
use vault_format::pack::BlobKind;
use vault_format::tree::{ContentItem, Tree};
use vault_repo::{IndexedRepository, MasterIndex, PackWriter, Repository};

use super::error::Result;

/// Copies into new packs every blob below `roots` that the live index no longer lists,
/// when a pack of `view` (the index the writer loaded) has left it. Returns how many
/// blobs were copied.
///
/// A pack leaves the live index only when a prune condemns it, and the condemnation stays
/// stored until this writer has ended (the prune waits for it). So when no condemnation
/// names a pack of `view` (one listing of `condemned/`, usually empty), nothing is to do
/// and the index is not loaded again.
pub(crate) fn keep_referenced_live(repo: &Arc<Repository>, view: &MasterIndex, roots: &[BlobId]) -> Result<u64> {
    let doomed = repo.condemned_packs()?;
    if view.packs().iter().all(|p| !doomed.contains(&p.id)) {
        return Ok(0);
    }
    let now = IndexedRepository::load(repo.clone())?;
    if view.packs().iter().all(|p| now.index().has_pack(&p.id)) {
        return Ok(0);
    }
    let writer = PackWriter::new(repo.clone(), Arc::new(MasterIndex::new()))?;
    let mut copied = 0u64;
    let mut copy = |kind: BlobKind, id: &BlobId, raw: Option<&[u8]>| -> Result<()> {
        if now.index().contains(kind, id) {
            return Ok(());
        }
        let owned;
        let raw = match raw {
            Some(r) => r,
            None => {
                owned = now.read_blob(kind, id)?;
                &owned
            }
        };
        if writer.add(kind, *id, raw)? {
            copied += 1;
        }
        Ok(())
    };
    let mut seen: HashSet<BlobId> = roots.iter().copied().collect();
    let mut todo: Vec<BlobId> = seen.iter().copied().collect();
    while let Some(t) = todo.pop() {
        let raw = now.read_blob(BlobKind::Tree, &t)?;
        copy(BlobKind::Tree, &t, Some(&raw))?;
        let tree = Tree::decode(&raw).map_err(|e| {
            vault_repo::RepoError::integrity(vault_repo::Damaged::Blob { kind: BlobKind::Tree, id: t, pack: None }, e)
        })?;
        for node in &tree.nodes {
            for item in &node.content {
                if let ContentItem::Data { id, .. } = item {
                    copy(BlobKind::Data, id, None)?;
                }
            }
            if let Some(sub) = node.subtree
                && seen.insert(sub)
            {
                todo.push(sub);
            }
        }
    }
    writer.finish()?;
    Ok(copied)
}
