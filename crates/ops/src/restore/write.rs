//! Writing one file: its data blobs fetched, verified and written at their offsets.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, mknodat};
use nix::unistd::{mkfifoat, symlinkat};
use rayon::prelude::*;

use super::super::progress::Progress;
use super::beneath::{At, Beneath, io_err};
use super::blob_source::BlobSource;
use vault_format::BlobId;
use vault_format::tree::{ContentItem, Node, NodeKind};
use vault_repo::RepoError;

/// One stretch of a file's data: its offset, its blob and its length.
pub(super) type Piece = (u64, BlobId, u64);

/// Every data stretch of `node`, in order.
pub(super) fn pieces(node: &Node) -> Vec<Piece> {
    let mut offset = 0u64;
    let mut pieces = Vec::with_capacity(node.content.len());
    for item in &node.content {
        if let ContentItem::Data { id, length } = item {
            pieces.push((offset, *id, u64::from(*length)));
        }
        offset += item.len();
    }
    pieces
}

/// A piece written (`None`), or the message of one that failed and whether the storage
/// (not damage) failed it.
type PieceResult = Result<Option<(String, bool)>, WriteError>;

pub(super) enum WriteError {
    Integrity(String),
    /// The storage failed to deliver data (an error of the backend, not damage).
    Storage(String),
    Io(String),
}

/// Creates the symbolic link, FIFO, device or socket `node` as `at` (never through a
/// link: the `*at` calls do not follow the name they create).
pub(super) fn create_special(at: &At, node: &Node) -> std::io::Result<()> {
    let perm = Mode::from_bits_truncate(node.mode & 0o777);
    let (dir, name) = (&at.dir, at.name.as_os_str());
    let r = match node.kind {
        NodeKind::Symlink => symlinkat(OsStr::from_bytes(&node.target), dir, name),
        NodeKind::Fifo => mkfifoat(dir, name, perm),
        NodeKind::CharDev => mknodat(dir, name, SFlag::S_IFCHR, perm, node.rdev as libc::dev_t),
        NodeKind::BlockDev => mknodat(dir, name, SFlag::S_IFBLK, perm, node.rdev as libc::dev_t),
        // A socket cannot be meaningfully recreated; an inode of the same type keeps `ls` right.
        NodeKind::Socket => mknodat(dir, name, SFlag::S_IFSOCK, perm, 0),
        NodeKind::File | NodeKind::Dir => Ok(()),
    };
    r.map_err(io_err)
}

/// Writes `pieces` of `node`'s data to `path`, a new file or (`in_place`) the existing
/// one whose other stretches already hold the right bytes, and sets its length. Returns
/// the file, open, for its metadata.
pub(super) fn write_file(
    source: &BlobSource<'_>,
    target: &Beneath,
    path: &Path,
    node: &Node,
    pieces: &[Piece],
    in_place: bool,
    progress: &dyn Progress,
) -> Result<File, WriteError> {
    let io = |what: &str, e: std::io::Error| WriteError::Io(format!("{what}: {e}"));
    let opened = open_for_writing(target, path, in_place);
    let f = match opened {
        Ok(f) => f,
        Err(e) => {
            source.skip(pieces);
            return Err(e);
        }
    };

    // A large file's blobs are fetched, verified and written in parallel (pwrite to
    // distinct offsets of one descriptor).
    let write_piece = |&(offset, id, length): &Piece| -> PieceResult {
        let r = match source.read(&id) {
            Ok(data) => {
                // A blob of another length than the content list says would shift or
                // overlap the pieces after it.
                let len = u32::try_from(length).unwrap_or(u32::MAX);
                if let Err(e) = vault_repo::indexed::check_item_length(&id, &data, len, None) {
                    return Err(WriteError::Integrity(format!("bytes {offset}..{}: {e}", offset + length)));
                }
                f.write_all_at(&data, offset).map_err(|e| io("cannot write", e))?;
                None
            }
            Err(e) => {
                let storage =
                    matches!(&e, RepoError::Backend(b) if b.kind != vault_repo::backend::BackendErrorKind::NotFound);
                Some((format!("bytes {offset}..{}: {e}", offset + length), storage))
            }
        };
        progress.add_bytes(length);
        Ok(r)
    };
    // Taken in order by whichever thread is free (not split by halves), so that a large
    // file reads its packs in the order they are prefetched.
    let mut results: Vec<(u64, PieceResult)> = if pieces.len() > 2 {
        pieces.iter().par_bridge().map(|p| (p.0, write_piece(p))).collect()
    } else {
        pieces.iter().map(|p| (p.0, write_piece(p))).collect()
    };
    results.sort_by_key(|(offset, _)| *offset);
    let results = results.into_iter().map(|(_, r)| r);
    let mut damaged = Vec::new();
    let mut unread = Vec::new();
    for r in results {
        match r? {
            Some((m, true)) => unread.push(m),
            Some((m, false)) => damaged.push(m),
            None => {}
        }
    }
    // Holes (and damaged ranges) stay unallocated: extending the length creates them.
    f.set_len(node.size).map_err(|e| io("cannot set length", e))?;
    if !damaged.is_empty() {
        return Err(WriteError::Integrity(format!("data could not be restored, {}", damaged.join("; "))));
    }
    if !unread.is_empty() {
        return Err(WriteError::Storage(format!("data could not be read from storage, {}", unread.join("; "))));
    }
    Ok(f)
}

/// Opens `path` for a restore's writes: created new (never through a link), or the
/// existing file to be updated in place.
fn open_for_writing(target: &Beneath, path: &Path, in_place: bool) -> Result<File, WriteError> {
    let io = |what: &str, e: std::io::Error| WriteError::Io(format!("{what}: {e}"));
    if in_place {
        let f = target.open_file(path, true).map_err(|e| io("cannot open file", e))?;
        // Written in place only while it is still the single-link regular file that was
        // compared: a link elsewhere would carry the change out of the target.
        let m = f.metadata().map_err(|e| io("cannot stat file", e))?;
        if !m.file_type().is_file() || m.nlink() != 1 {
            return Err(WriteError::Io("changed while being restored".into()));
        }
        Ok(f)
    } else {
        target.create_file(path).map_err(|e| io("cannot create file", e))
    }
}
