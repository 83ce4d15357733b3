//! The backup's walk of the file system: the virtual root built from the sources, then
//! each directory's entries in parallel (rayon), compared with the parent snapshot's
//! tree. Every directory becomes a tree blob, children first.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::file::archive_file;
use super::{Ctx, MAX_DIR_DEPTH};
use crate::error::Result;
use crate::fsmeta::node_from_metadata;
use crate::source::{VirtualDir, VirtualNode};
use vault_format::BlobId;
use vault_format::tree::{Node, NodeKind, Tree};

pub(super) fn archive_virtual(ctx: &Ctx<'_>, vdir: &VirtualDir, parent: Option<&Tree>) -> Result<BlobId> {
    let mut nodes: Vec<Node> = vdir
        .children
        .par_iter()
        .map(|(name, child)| -> Result<Option<Node>> {
            let parent_node = parent.and_then(|t| t.find(name.as_bytes()));
            match child {
                VirtualNode::Source(path) => {
                    let dev = std::fs::symlink_metadata(path).map(|m| m.dev()).unwrap_or(0);
                    archive_entry(ctx, path, name, parent_node, dev, 0, None)
                }
                VirtualNode::Dir(sub) => {
                    let mut node = match sub.meta_path.as_deref().map(|p| (p, std::fs::symlink_metadata(p))) {
                        Some((p, Ok(m))) if m.is_dir() => node_from_metadata(name, p, &m, &ctx.owners),
                        _ => {
                            let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
                            n.mode = 0o755;
                            n
                        }
                    };
                    let ptree = ctx.parent_subtree(parent_node);
                    node.subtree = Some(archive_virtual(ctx, sub, ptree.as_ref())?);
                    ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
                    Ok(Some(node))
                }
            }
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    if let Some(dir) = &vdir.contents {
        let dev = std::fs::symlink_metadata(dir).map(|m| m.dev()).unwrap_or(0);
        let extra = archive_dir_entries(ctx, dir, parent, dev, 0, None)?.unwrap_or_default();
        nodes.extend(extra.into_iter().filter(|n| !vdir.children.contains_key(OsStr::from_bytes(&n.name))));
    }
    Ok(ctx.writer.save_tree(Tree { nodes })?)
}

/// A directory's device and inode.
type Identity = (u64, u64);

/// What a directory about to be listed must be: the one `lstat` saw, below the directory
/// whose listing named it. Someone may swap it for a link (to `/root`, say) in between;
/// the backup would then store another tree under its name.
#[derive(Clone, Copy)]
struct Expected {
    this: Identity,
    parent: Option<Identity>,
}

enum Listing {
    Names(Identity, Vec<OsString>),
    /// Not the directory the walk saw: left out, with this reason.
    Replaced(String),
    Failed(std::io::Error),
}

/// Lists `dir` through a descriptor opened without following a link, after checking that
/// it is the directory expected.
fn list_dir(dir: &Path, expected: Option<Expected>) -> Listing {
    use nix::fcntl::{AtFlags, OFlag};
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let fd = match nix::fcntl::open(dir, flags, nix::sys::stat::Mode::empty()) {
        Ok(fd) => fd,
        Err(nix::Error::ELOOP | nix::Error::ENOTDIR) if expected.is_some() => {
            return Listing::Replaced("was replaced by a link or a file while the backup ran; left out".into());
        }
        Err(e) => return Listing::Failed(e.into()),
    };
    let st = match nix::sys::stat::fstat(&fd) {
        Ok(s) => s,
        Err(e) => return Listing::Failed(e.into()),
    };
    let this = (st.st_dev, st.st_ino);
    if let Some(x) = expected {
        if x.this != this {
            return Listing::Replaced("was replaced by another directory while the backup ran; left out".into());
        }
        let above = nix::sys::stat::fstatat(&fd, "..", AtFlags::AT_SYMLINK_NOFOLLOW);
        if let (Some(p), Ok(a)) = (x.parent, above)
            && p != (a.st_dev, a.st_ino)
        {
            return Listing::Replaced(
                "is no longer below the directory the backup listed (a directory on its path was replaced); left out"
                    .into(),
            );
        }
    }
    let mut d = match nix::dir::Dir::from_fd(fd) {
        Ok(d) => d,
        Err(e) => return Listing::Failed(e.into()),
    };
    let mut names = Vec::new();
    for entry in d.iter() {
        match entry {
            Ok(e) => {
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(OsString::from_vec(n.to_vec()));
                }
            }
            Err(e) => return Listing::Failed(e.into()),
        }
    }
    Listing::Names(this, names)
}

/// The entries of `dir`, which lies `depth` levels below its source; `None` when it is
/// not the directory the walk saw (see [`Expected`]).
fn archive_dir_entries(
    ctx: &Ctx<'_>,
    dir: &Path,
    parent: Option<&Tree>,
    dev: u64,
    depth: usize,
    expected: Option<Expected>,
) -> Result<Option<Vec<Node>>> {
    let (this, names) = match list_dir(dir, expected) {
        Listing::Names(this, names) => (Some(this), names),
        Listing::Replaced(why) => {
            ctx.problem(dir, why);
            return Ok(None);
        }
        Listing::Failed(e) => {
            ctx.problem(dir, format!("cannot list directory: {e}"));
            (None, Vec::new())
        }
    };
    Ok(Some(
        names
            .par_iter()
            .map(|name| {
                let parent_node = parent.and_then(|t| t.find(name.as_bytes()));
                archive_entry(ctx, &dir.join(name), name, parent_node, dev, depth + 1, this)
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect(),
    ))
}

/// One entry, `depth` levels below its source (listed in the directory `listed_in`);
/// `None` when it is excluded or unreadable.
fn archive_entry(
    ctx: &Ctx<'_>,
    path: &Path,
    name: &OsStr,
    parent: Option<&Node>,
    dev: u64,
    depth: usize,
    listed_in: Option<Identity>,
) -> Result<Option<Node>> {
    ctx.check_stop()?;
    if ctx.filters.excludes_path(path) {
        return Ok(None);
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            ctx.problem(path, format!("cannot stat: {e}"));
            return Ok(None);
        }
    };
    if ctx.filters.excludes_entry(path, &meta) {
        return Ok(None);
    }
    if meta.is_dir() && ctx.leaves_out(path, &meta) {
        return Ok(None);
    }
    let mut node = node_from_metadata(name, path, &meta, &ctx.owners);
    match node.kind {
        NodeKind::Dir if depth >= MAX_DIR_DEPTH => {
            ctx.problem(path, format!("directory nested more than {MAX_DIR_DEPTH} levels deep; left out"));
            return Ok(None);
        }
        NodeKind::Dir => {
            let entries = if ctx.one_file_system && meta.dev() != dev {
                // A mount point: kept as an empty directory so that restore recreates it.
                Vec::new()
            } else {
                let ptree = ctx.parent_subtree(parent);
                let expected = Expected { this: (meta.dev(), meta.ino()), parent: listed_in };
                match archive_dir_entries(ctx, path, ptree.as_ref(), dev, depth, Some(expected))? {
                    Some(entries) => entries,
                    None => return Ok(None),
                }
            };
            node.subtree = Some(ctx.writer.save_tree(Tree { nodes: entries })?);
            ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
        }
        NodeKind::File => return archive_file(ctx, path, node, parent),
        NodeKind::Symlink => match std::fs::read_link(path) {
            Ok(t) => {
                node.target = t.into_os_string().into_vec();
                ctx.counters.other.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                ctx.problem(path, format!("cannot read symlink: {e}"));
                return Ok(None);
            }
        },
        _ => {
            ctx.counters.other.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(Some(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(p: &Path) -> Identity {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.dev(), m.ino())
    }

    #[test]
    fn a_directory_swapped_after_the_walk_saw_it_is_not_listed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("p");
        let a = p.join("a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("mine"), b"x").unwrap();
        let secret = d.path().join("secret");
        std::fs::create_dir(&secret).unwrap();
        std::fs::write(secret.join("root-only"), b"s").unwrap();
        let expected = Expected { this: identity(&a), parent: Some(identity(&p)) };
        match list_dir(&a, Some(expected)) {
            Listing::Names(_, names) => assert_eq!(names, vec![OsString::from("mine")]),
            _ => panic!("the real directory is listed"),
        }
        // Swapped for a link to another directory.
        std::fs::rename(&a, d.path().join("a-moved")).unwrap();
        std::os::unix::fs::symlink(&secret, &a).unwrap();
        assert!(matches!(list_dir(&a, Some(expected)), Listing::Replaced(_)));
        // Swapped for another directory.
        std::fs::remove_file(&a).unwrap();
        std::fs::create_dir(&a).unwrap();
        assert!(matches!(list_dir(&a, Some(expected)), Listing::Replaced(_)));
        // The same directory, but reached through a replaced ancestor.
        std::fs::remove_dir(&a).unwrap();
        std::fs::rename(&p, d.path().join("p-old")).unwrap();
        std::fs::create_dir(&p).unwrap();
        std::fs::rename(d.path().join("a-moved"), &a).unwrap();
        assert_eq!(identity(&a), expected.this);
        match list_dir(&a, Some(expected)) {
            Listing::Replaced(why) => assert!(why.contains("no longer below"), "{why}"),
            _ => panic!("listed through a replaced ancestor"),
        }
    }
}
