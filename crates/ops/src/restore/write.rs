//! Writing entries: a file's pieces, how a file is opened for them, special files.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::beneath::{At, Beneath, io_err};
use nix::sys::stat::{Mode, SFlag, mknodat};
use nix::unistd::{mkfifoat, symlinkat};
use vault_format::BlobId;
use vault_format::tree::{ContentItem, Node, NodeKind};

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

/// Opens `path` for a restore's writes: created new (never through a link), or the
/// existing file to be updated in place.
pub(super) fn open_for_writing(target: &Beneath, path: &Path, in_place: bool) -> Result<File, String> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    if in_place {
        let f = target.open_file(path, true).map_err(|e| io("cannot open file", e))?;
        // Written in place only while it is still the single-link regular file that was
        // compared: a link elsewhere would carry the change out of the target.
        let m = f.metadata().map_err(|e| io("cannot stat file", e))?;
        if !m.file_type().is_file() || m.nlink() != 1 {
            return Err("changed while being restored".into());
        }
        Ok(f)
    } else {
        target.create_file(path).map_err(|e| io("cannot create file", e))
    }
}
