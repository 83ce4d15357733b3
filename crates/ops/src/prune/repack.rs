//! Copying the live blobs of packs into new packs, as they are stored: authenticated, not
//! decompressed; re-encrypted only for `prune --reencrypt`, and then only what an older key
//! epoch sealed.

use std::sync::Arc;

use rayon::prelude::*;

use vault_format::PackId;
use vault_format::index::IndexPack;
use vault_format::pack::{BlobKind, PackEntry};
use vault_repo::{PackWriter, Repository, WriterStats};

use crate::error::Result;
use crate::progress::Progress;

/// A pack to repack and the entries of it to keep.
pub(crate) struct RepackJob {
    pub(crate) id: PackId,
    pub(crate) kind: BlobKind,
    /// Its size as the index states it.
    pub(crate) size: u64,
    pub(crate) keep: Vec<PackEntry>,
}

/// Copies the kept blobs into new packs; returns the new packs' entries, which no index
/// lists yet.
pub(crate) fn repack(
    repo: &Arc<Repository>,
    jobs: &[RepackJob],
    reencrypt: bool,
    progress: &dyn Progress,
) -> Result<(WriterStats, Vec<IndexPack>)> {
    let writer = PackWriter::unindexed(repo.clone())?;
    jobs.par_iter().try_for_each(|job| -> Result<()> {
        let data = repo.read_pack(job.kind, &job.id, job.size)?;
        for e in &job.keep {
            let sealed = if reencrypt {
                repo.resealed_blob_in(job.kind, &job.id, &data, e)?
            } else {
                repo.sealed_blob_in(job.kind, &job.id, &data, e)?
            };
            writer.add_sealed(job.kind, e.id, sealed, e.raw_length)?;
            progress.add_bytes(u64::from(e.length));
        }
        progress.add_files(1);
        Ok(())
    })?;
    Ok(writer.finish_unindexed()?)
}
