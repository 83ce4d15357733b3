//! File system metadata ↔ tree nodes: reading `lstat`, owners and xattrs for backup, and
//! applying them again on restore.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, UtimensatFlags, futimens, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Group, Uid, User, fchownat};

use vault_format::tree::{Node, NodeKind, Timestamp};

/// uid/gid → name lookups are slow (NSS); a backup asks for the same few ids many times.
#[derive(Default)]
pub(crate) struct OwnerNames {
    users: Mutex<HashMap<u32, Vec<u8>>>,
    groups: Mutex<HashMap<u32, Vec<u8>>>,
}

impl OwnerNames {
    pub fn user(&self, uid: u32) -> Vec<u8> {
        let mut m = self.users.lock();
        m.entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name.into_bytes()).unwrap_or_default()
            })
            .clone()
    }

    pub fn group(&self, gid: u32) -> Vec<u8> {
        let mut m = self.groups.lock();
        m.entry(gid)
            .or_insert_with(|| {
                Group::from_gid(Gid::from_raw(gid)).ok().flatten().map(|g| g.name.into_bytes()).unwrap_or_default()
            })
            .clone()
    }
}

pub(crate) fn kind_of(meta: &Metadata) -> NodeKind {
    let t = meta.file_type();
    if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_char_device() {
        NodeKind::CharDev
    } else if t.is_block_device() {
        NodeKind::BlockDev
    } else if t.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

/// A node with every field that `lstat` and the xattrs give; content, subtree and symlink
/// target are filled in by the caller.
pub(crate) fn node_from_metadata(name: &OsStr, path: &Path, meta: &Metadata, owners: &OwnerNames) -> Node {
    let kind = kind_of(meta);
    let mut n = Node::new(name.as_bytes().to_vec(), kind);
    n.mode = meta.mode() & 0o7777;
    n.uid = meta.uid();
    n.gid = meta.gid();
    n.user = owners.user(n.uid);
    n.group = owners.group(n.gid);
    n.mtime = Timestamp { sec: meta.mtime(), nsec: meta.mtime_nsec() as u32 };
    n.ctime = Timestamp { sec: meta.ctime(), nsec: meta.ctime_nsec() as u32 };
    n.inode = meta.ino();
    n.device = meta.dev();
    n.links = meta.nlink();
    if kind == NodeKind::File {
        n.size = meta.len();
    }
    if matches!(kind, NodeKind::CharDev | NodeKind::BlockDev) {
        n.rdev = meta.rdev();
    }
    n.xattrs = read_xattrs(path);
    n
}

/// Extended attributes of `path` itself (not a symlink's target). A file system without
/// xattr support simply yields none.
pub(crate) fn read_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some((name.as_bytes().to_vec(), value))
        })
        .collect();
    out.sort();
    out
}

/// Which parts of a node's metadata to apply on restore.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ApplyOptions<'a> {
    /// chown to the stored uid/gid (only root may).
    pub ownership: bool,
    /// Clear setuid and setgid bits of files.
    pub clear_setuid: bool,
    /// Which extended attributes to set.
    pub xattrs: &'a XattrFilter,
}

/// Which extended attributes a restore sets, by name (`*` matches any run of characters).
/// Without includes, all but the privileged ones: `trusted.*` (root-only metadata of
/// overlay and other file systems) and `security.capability` (file capabilities grant
/// privileges like setuid does); those only when an include names them.
#[derive(Clone, Debug, Default)]
pub struct XattrFilter {
    /// Patterns of attribute names to restore (empty: all).
    pub includes: Vec<String>,
    /// Patterns of attribute names never to restore.
    pub excludes: Vec<String>,
}

/// Extended attributes that give privileges or that only root may read.
pub(crate) fn is_privileged_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.") || name == b"security.capability"
}

fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard(rest, &name[i..])),
        Some((c, rest)) => name.split_first().is_some_and(|(n, tail)| n == c && wildcard(rest, tail)),
    }
}

impl XattrFilter {
    /// Whether the attribute `name` is set on restore.
    pub fn allows(&self, name: &[u8]) -> bool {
        let any = |set: &[String]| set.iter().any(|p| wildcard(p.as_bytes(), name));
        if any(&self.excludes) {
            return false;
        }
        if self.includes.is_empty() { !is_privileged_xattr(name) } else { any(&self.includes) }
    }
}

/// Applies ownership, mode, xattrs and times to the open file or directory `f`, in the
/// order that keeps each step from undoing an earlier one (chown clears setuid bits, so
/// chmod comes after it; times last). Returns a description of each step that failed.
///
/// Everything goes through the descriptor, so it lands on the inode that was opened,
/// whatever is at its path by now.
pub(crate) fn apply_to_open(f: &File, node: &Node, opts: ApplyOptions<'_>) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    use xattr::FileExt;
    let mut problems = Vec::new();
    if opts.ownership
        && let Err(e) = std::os::unix::fs::fchown(f, Some(node.uid), Some(node.gid))
    {
        problems.push(format!("chown: {e}"));
    }
    if let Err(e) = f.set_permissions(std::fs::Permissions::from_mode(wanted_mode(node, opts))) {
        problems.push(format!("chmod: {e}"));
    }
    for (k, v) in node.xattrs.iter().filter(|(k, _)| opts.xattrs.allows(k)) {
        if let Err(e) = f.set_xattr(OsStr::from_bytes(k), v) {
            problems.push(format!("xattr {}: {e}", String::from_utf8_lossy(k)));
        }
    }
    let t = TimeSpec::new(node.mtime.sec, i64::from(node.mtime.nsec));
    if let Err(e) = futimens(f, &t, &t) {
        problems.push(format!("set times: {e}"));
    }
    problems
}

/// Applies metadata to the entry `name` in the directory `dir`, of any kind, without
/// reading it (a kept file or a directory may deny that to its owner). It is opened
/// without following it (`O_PATH`) and must still be of the node's kind; ownership, mode,
/// xattrs and times then go to that inode (through its `/proc/self/fd` link, which names
/// the inode, not a path). A symbolic link's xattrs and times are set by name in `dir`,
/// not followed: no call sets them through a descriptor.
pub(crate) fn apply_at(dir: BorrowedFd<'_>, name: &OsStr, node: &Node, opts: ApplyOptions<'_>) -> Vec<String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let entry = match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(e) => return vec![format!("cannot open: {e}")],
    };
    match entry.metadata() {
        Ok(m) if kind_of(&m) == node.kind => {}
        Ok(_) => return vec!["changed while being restored".into()],
        Err(e) => return vec![format!("cannot stat: {e}")],
    }
    let mut problems = Vec::new();
    let (uid, gid) = (Some(Uid::from_raw(node.uid)), Some(Gid::from_raw(node.gid)));
    if opts.ownership
        && let Err(e) = fchownat(&entry, "", uid, gid, AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW)
    {
        problems.push(format!("chown: {e}"));
    }
    let t = TimeSpec::new(node.mtime.sec, i64::from(node.mtime.nsec));
    let xattrs = node.xattrs.iter().filter(|(k, _)| opts.xattrs.allows(k));
    if node.kind == NodeKind::Symlink {
        let by_name = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string()).join(name);
        for (k, v) in xattrs {
            if let Err(e) = xattr::set(&by_name, OsStr::from_bytes(k), v) {
                problems.push(format!("xattr {}: {e}", String::from_utf8_lossy(k)));
            }
        }
        if let Err(e) = utimensat(dir, name, &t, &t, UtimensatFlags::NoFollowSymlink) {
            problems.push(format!("set times: {e}"));
        }
        return problems;
    }
    let inode = Path::new("/proc/self/fd").join(entry.as_raw_fd().to_string());
    if let Err(e) = std::fs::set_permissions(&inode, std::fs::Permissions::from_mode(wanted_mode(node, opts))) {
        problems.push(format!("chmod: {e}"));
    }
    for (k, v) in xattrs {
        if let Err(e) = xattr::set_deref(&inode, OsStr::from_bytes(k), v) {
            problems.push(format!("xattr {}: {e}", String::from_utf8_lossy(k)));
        }
    }
    if let Err(e) = utimensat(nix::fcntl::AT_FDCWD, &inode, &t, &t, UtimensatFlags::FollowSymlink) {
        problems.push(format!("set times: {e}"));
    }
    problems
}

fn wanted_mode(node: &Node, opts: ApplyOptions<'_>) -> u32 {
    if opts.clear_setuid && node.kind == NodeKind::File { node.mode & !0o6000 } else { node.mode }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_filter() {
        let default = XattrFilter::default();
        assert!(default.allows(b"user.comment"));
        assert!(default.allows(b"security.selinux"));
        assert!(!default.allows(b"security.capability"));
        assert!(!default.allows(b"trusted.overlay.opaque"));
        let caps = XattrFilter { includes: vec!["user.*".into(), "security.capability".into()], excludes: vec![] };
        assert!(caps.allows(b"security.capability") && caps.allows(b"user.x") && !caps.allows(b"security.selinux"));
        let ex = XattrFilter { includes: vec!["*".into()], excludes: vec!["user.big*".into()] };
        assert!(ex.allows(b"trusted.x") && !ex.allows(b"user.bigdata") && ex.allows(b"user.small"));
    }
}
