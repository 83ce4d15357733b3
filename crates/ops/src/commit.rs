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

/// Copies into new packs every blob below `root` that the live index no longer lists,
/// when a pack of `view` (the index the writer loaded) has left it. Returns how many
/// blobs were copied.
pub fn keep_referenced_live(repo: &Arc<Repository>, view: &MasterIndex, root: BlobId) -> Result<u64> {
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
    let mut seen: HashSet<BlobId> = HashSet::from([root]);
    let mut todo = vec![root];
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
