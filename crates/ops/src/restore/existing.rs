//! Restoring into a target that holds files already: what to do with each entry found
//! there (`--overwrite`), what to remove (`--delete`), and reading written files back
//! (`--verify`).
//!
//! Nothing found in the target is followed: entries are looked at and opened through
//! the target's descriptor (`beneath.rs`), and files are compared by descriptor. A file is changed in place
//! only while it is a regular file with one link (a hard link would carry the change
//! out of the target); anything else is removed and created anew.

use std::fs::{File, Metadata};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use serde::Serialize;

use super::beneath::Beneath;
use super::write::{Piece, pieces};
use vault_format::tree::{ContentItem, Node, NodeKind};
use vault_repo::IndexedRepository;

/// What a restore does with an entry that the target holds already.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace it.
    Always,
    /// Keep a file whose size and modification time match the snapshot's; otherwise
    /// compare its content chunk by chunk and write only the chunks that differ.
    IfChanged,
    /// Replace it only when the snapshot's entry is newer (by modification time).
    IfNewer,
    /// Keep it.
    Never,
}

/// What happens to one file of the plan.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FileAction {
    /// Nothing is there: create it.
    Create,
    /// Something else is there: remove it, then create the file.
    Replace,
    /// It is there and stays; `metadata`: the snapshot's metadata is applied to it;
    /// `equal`: its content is known to equal the snapshot's (not just kept by choice).
    Keep { metadata: bool, equal: bool },
    /// It is there with some of the right content: write only `pieces`, then set the
    /// length.
    Update { pieces: Vec<Piece> },
}

impl FileAction {
    /// The data this action needs from the repository.
    pub(super) fn needed(&self, node: &Node) -> Vec<Piece> {
        match self {
            FileAction::Create | FileAction::Replace => pieces(node),
            FileAction::Keep { .. } => Vec::new(),
            FileAction::Update { pieces } => pieces.clone(),
        }
    }
}

/// The modification time of `m` as the tree records it.
fn mtime(m: &Metadata) -> (i64, u32) {
    (m.mtime(), m.mtime_nsec().clamp(0, 999_999_999) as u32)
}

fn node_mtime(node: &Node) -> (i64, u32) {
    (node.mtime.sec, node.mtime.nsec)
}

/// What the restored metadata of a file must be, to tell whether a kept file needs it
/// applied again.
#[derive(Clone, Copy)]
pub(super) struct Wanted {
    /// Owners are restored (root).
    pub(super) ownership: bool,
    /// Setuid and setgid bits are cleared.
    pub(super) clear_setuid: bool,
}

impl Wanted {
    /// Whether `m` already has the metadata restore would give `node` (attributes are
    /// always applied again when the node has any).
    fn holds(self, m: &Metadata, node: &Node) -> bool {
        let mode = if self.clear_setuid { node.mode & !0o6000 } else { node.mode };
        m.mode() & 0o7777 == mode & 0o7777
            && (!self.ownership || (m.uid() == node.uid && m.gid() == node.gid))
            && node.xattrs.is_empty()
    }
}

/// Decides what to do with the file `node` at `path`. Reads the existing file (never
/// the repository) when `IfChanged` has to compare content.
pub(super) fn decide_file(
    repo: &IndexedRepository,
    target: &Beneath,
    path: &Path,
    node: &Node,
    overwrite: Option<Overwrite>,
    wanted: Wanted,
) -> std::io::Result<FileAction> {
    // Without `overwrite` the target was empty (checked before planning): a fresh restore
    // costs no lstat per file, and a name that appeared meanwhile makes the create fail.
    let Some(overwrite) = overwrite else { return Ok(FileAction::Create) };
    let Some(m) = target.lstat(path)? else { return Ok(FileAction::Create) };
    let is_file = m.file_type().is_file();
    match overwrite {
        Overwrite::Never => Ok(FileAction::Keep { metadata: false, equal: false }),
        Overwrite::Always => Ok(FileAction::Replace),
        Overwrite::IfNewer => {
            if is_file && mtime(&m) >= node_mtime(node) {
                Ok(FileAction::Keep { metadata: false, equal: false })
            } else {
                Ok(FileAction::Replace)
            }
        }
        Overwrite::IfChanged => {
            if !is_file || m.nlink() != 1 {
                return Ok(FileAction::Replace);
            }
            if m.len() == node.size && mtime(&m) == node_mtime(node) {
                return Ok(FileAction::Keep { metadata: !wanted.holds(&m, node), equal: true });
            }
            // Holes would need their old bytes checked and zeroed: rare enough (sparse
            // files) to write whole.
            if node.content.iter().any(|c| matches!(c, ContentItem::Hole { .. })) {
                return Ok(FileAction::Replace);
            }
            let f = match open_same(target, path, &m) {
                Some(f) => f,
                None => return Ok(FileAction::Replace),
            };
            let differ = differing_pieces(repo, &f, m.len(), node)?;
            if differ.is_empty() && m.len() == node.size {
                Ok(FileAction::Keep { metadata: true, equal: true })
            } else {
                Ok(FileAction::Update { pieces: differ })
            }
        }
    }
}

/// Opens the regular file at `path` for reading, if it is still the one `m` describes.
fn open_same(target: &Beneath, path: &Path, m: &Metadata) -> Option<File> {
    let f = target.open_file(path, false).ok()?;
    let now = f.metadata().ok()?;
    (now.file_type().is_file() && now.ino() == m.ino() && now.dev() == m.dev()).then_some(f)
}

/// The data pieces of `node` whose bytes in `f` (of length `len`) do not hash to the
/// piece's blob id.
fn differing_pieces(repo: &IndexedRepository, f: &File, len: u64, node: &Node) -> std::io::Result<Vec<Piece>> {
    let mut differ = Vec::new();
    let mut buf = Vec::new();
    for piece in pieces(node) {
        let (offset, id, length) = piece;
        if offset + length > len {
            differ.push(piece);
            continue;
        }
        buf.resize(length as usize, 0);
        f.read_exact_at(&mut buf, offset)?;
        if repo.blob_id(&buf) != id {
            differ.push(piece);
        }
    }
    Ok(differ)
}

/// Whether an existing non-file entry (`m`) stays in place of `node`.
pub(super) fn keep_other(
    target: &Beneath,
    path: &Path,
    m: &Metadata,
    node: &Node,
    overwrite: Option<Overwrite>,
) -> bool {
    match overwrite {
        None | Some(Overwrite::Always) => false,
        Some(Overwrite::Never) => true,
        Some(Overwrite::IfNewer) => mtime(m) >= node_mtime(node),
        Some(Overwrite::IfChanged) => {
            let ft = m.file_type();
            match node.kind {
                NodeKind::Symlink => {
                    ft.is_symlink() && target.read_link(path).is_ok_and(|t| t.as_encoded_bytes() == node.target)
                }
                NodeKind::Fifo => {
                    use std::os::unix::fs::FileTypeExt;
                    ft.is_fifo()
                }
                _ => false,
            }
        }
    }
}

/// Reads the restored file at `path` back and compares it with `node`: its length, and
/// every data piece against its blob id. `Err` names the first difference.
pub(super) fn verify_file(repo: &IndexedRepository, target: &Beneath, path: &Path, node: &Node) -> Result<(), String> {
    let f = target.open_file(path, false).map_err(|e| format!("verify: cannot open: {e}"))?;
    let m = f.metadata().map_err(|e| format!("verify: cannot stat: {e}"))?;
    if !m.file_type().is_file() || m.len() != node.size {
        return Err(format!("verify: {} bytes, the snapshot has {}", m.len(), node.size));
    }
    let mut buf = Vec::new();
    let mut offset = 0u64;
    let read = |buf: &mut Vec<u8>, len: u64, at: u64| {
        buf.resize(len as usize, 0);
        f.read_exact_at(buf, at).map_err(|e| format!("verify: cannot read: {e}"))
    };
    for item in &node.content {
        let length = item.len();
        let same = match item {
            ContentItem::Data { id, .. } => {
                read(&mut buf, length, offset)?;
                repo.blob_id(&buf) == *id
            }
            // A hole may be large: read in windows.
            ContentItem::Hole { .. } => {
                let mut at = offset;
                let mut zero = true;
                while zero && at < offset + length {
                    let n = (offset + length - at).min(1 << 20);
                    read(&mut buf, n, at)?;
                    zero = buf.iter().all(|b| *b == 0);
                    at += n;
                }
                zero
            }
        };
        if !same {
            return Err(format!("verify: bytes {offset}..{} differ from the snapshot", offset + length));
        }
        offset += length;
    }
    Ok(())
}
