//! The restore target, worked on through descriptors only.
//!
//! Every path below the target is resolved from the target's open descriptor with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: no symbolic link is followed on the
//! way, nothing resolves outside the target, and what is created, opened, changed or
//! removed is what a descriptor names, whatever another user renames or swaps in the
//! meantime. A link swapped in for a directory on the way makes that one entry fail
//! (`ELOOP`); it never redirects the restore. Kernels without `openat2` (before 5.6, or
//! behind a seccomp filter that refuses it) get the same guarantee from a walk that
//! opens one component at a time with `O_NOFOLLOW`.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::{UnlinkatFlags, linkat, unlinkat};

pub(super) fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// An entry named by its parent directory's descriptor and its name there.
pub(crate) struct At {
    pub(crate) dir: OwnedFd,
    pub(crate) name: OsString,
}

/// The restore target's open descriptor.
pub(super) struct Beneath {
    /// `None`: the target of a dry run that does not exist yet (everything is missing).
    root: Option<OwnedFd>,
    path: PathBuf,
    /// `openat2` was refused as unknown: walk instead.
    walk: AtomicBool,
}

impl Beneath {
    /// Opens the target directory (following the path given, which was vetted).
    pub(super) fn open(target: &Path) -> io::Result<Beneath> {
        let root = File::open(target)?;
        if !root.metadata()?.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(Beneath { root: Some(root.into()), path: target.to_path_buf(), walk: AtomicBool::new(false) })
    }

    /// A target that does not exist (a dry run into a new directory).
    pub(super) fn missing(target: &Path) -> Beneath {
        Beneath { root: None, path: target.to_path_buf(), walk: AtomicBool::new(false) }
    }

    #[cfg(test)]
    pub(super) fn force_walk(&self) {
        self.walk.store(true, Ordering::Relaxed);
    }

    /// `path` relative to the target; the plan only holds paths below it.
    fn rel<'a>(&self, path: &'a Path) -> io::Result<&'a Path> {
        let rel = path
            .strip_prefix(&self.path)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not below the restore target"))?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a plain path below the restore target"));
        }
        Ok(rel)
    }

    fn root(&self) -> io::Result<BorrowedFd<'_>> {
        self.root.as_ref().map(|r| r.as_fd()).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// Opens `rel` with `flags` (plus `O_NOFOLLOW | O_CLOEXEC`), following no link.
    fn resolve(&self, rel: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
        let root = self.root()?;
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if !self.walk.load(Ordering::Relaxed) {
            let how = OpenHow::new()
                .flags(flags)
                .mode(mode)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            match openat2(root, rel, how) {
                Ok(fd) => return Ok(fd),
                Err(Errno::ENOSYS) => self.walk.store(true, Ordering::Relaxed),
                // A seccomp filter may answer EPERM for a call it does not know; EAGAIN
                // is a rename racing the resolution. The walk answers both for good.
                Err(Errno::EPERM | Errno::EAGAIN) => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        walk(root, rel, flags, mode)
    }

    /// The entry at `path`'s parent directory and name, for the `*at` calls.
    pub(super) fn at(&self, path: &Path) -> io::Result<At> {
        let rel = self.rel(path)?;
        let name = rel.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no name"))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = self.resolve(parent, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?;
        Ok(At { dir, name: name.to_owned() })
    }

    /// What is at `path`, not followed; `None` when nothing is (or a non-directory sits
    /// where the path needs one).
    pub(super) fn lstat(&self, path: &Path) -> io::Result<Option<Metadata>> {
        match self.resolve(self.rel(path)?, OFlag::O_PATH, Mode::empty()) {
            Ok(fd) => Ok(Some(File::from(fd).metadata()?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the existing file at `path` for reading (or writing), never a link; a FIFO
    /// does not block the open.
    pub(super) fn open_file(&self, path: &Path, write: bool) -> io::Result<File> {
        let access = if write { OFlag::O_WRONLY } else { OFlag::O_RDONLY };
        Ok(File::from(self.resolve(self.rel(path)?, access | OFlag::O_NONBLOCK, Mode::empty())?))
    }

    /// Creates a new file at `path` (0600): never an existing one, never through a link.
    pub(super) fn create_file(&self, path: &Path) -> io::Result<File> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        Ok(File::from(self.resolve(self.rel(path)?, flags, Mode::from_bits_truncate(0o600))?))
    }

    /// Opens the directory at `path` (the target itself for the target's path).
    pub(super) fn open_dir(&self, path: &Path) -> io::Result<File> {
        Ok(File::from(self.resolve(self.rel(path)?, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?))
    }

    /// Gives the directory at `path` (not a link) `mode`, without reading it.
    pub(super) fn chmod_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::PermissionsExt;
        let dir = File::from(self.resolve(self.rel(path)?, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?);
        // The descriptor's /proc link names this inode, whatever is at `path` by now.
        let inode = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string());
        std::fs::set_permissions(inode, std::fs::Permissions::from_mode(mode))
    }

    /// Creates the directory `path` with `mode`.
    pub(super) fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        let at = self.at(path)?;
        nix::sys::stat::mkdirat(&at.dir, at.name.as_os_str(), Mode::from_bits_truncate(mode)).map_err(io_err)
    }

    /// Makes `path` a hard link to `first` (both below the target), following neither.
    pub(super) fn hard_link(&self, first: &Path, path: &Path) -> io::Result<()> {
        let (from, to) = (self.at(first)?, self.at(path)?);
        linkat(&from.dir, from.name.as_os_str(), &to.dir, to.name.as_os_str(), AtFlags::empty()).map_err(io_err)
    }

    /// The target of the symbolic link at `path`.
    pub(super) fn read_link(&self, path: &Path) -> io::Result<OsString> {
        let at = self.at(path)?;
        nix::fcntl::readlinkat(&at.dir, at.name.as_os_str()).map_err(io_err)
    }

    /// The names in the directory at `path`.
    pub(super) fn names(&self, path: &Path) -> io::Result<Vec<OsString>> {
        names_in(self.open_dir(path)?.into())
    }

    /// Removes the entry at `path`: a directory with all it holds, anything else by
    /// unlinking it. Nothing inside is followed.
    pub(super) fn remove(&self, path: &Path) -> io::Result<()> {
        let at = self.at(path)?;
        remove_at(at.dir.as_fd(), &at.name)
    }
}

/// Opens `rel` below `root` one component at a time, none followed.
fn walk(root: BorrowedFd<'_>, rel: &Path, flags: OFlag, mode: Mode) -> io::Result<OwnedFd> {
    let names: Vec<&OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Ok(n)),
            Component::CurDir => None,
            _ => Some(Err(io::Error::new(io::ErrorKind::InvalidInput, "not a plain path"))),
        })
        .collect::<io::Result<_>>()?;
    let Some((last, dirs)) = names.split_last() else {
        return openat(root, ".", flags, mode).map_err(io_err);
    };
    let mut dir: Option<OwnedFd> = None;
    for name in dirs {
        let at = dir.as_ref().map_or(root, |d| d.as_fd());
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(at, *name, flags, Mode::empty()) {
            Ok(fd) => dir = Some(fd),
            // As openat2 reports it: a link on the way, not a file.
            Err(Errno::ENOTDIR)
                if fstatat(at, *name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK) =>
            {
                return Err(io_err(Errno::ELOOP));
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    openat(dir.as_ref().map_or(root, |d| d.as_fd()), *last, flags, mode).map_err(io_err)
}

fn names_in(dir: OwnedFd) -> io::Result<Vec<OsString>> {
    let mut dir = Dir::from_fd(dir).map_err(io_err)?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

/// Removes `name` in `parent`: unlinked, or (a directory) emptied through its own
/// descriptor and removed.
fn remove_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(io_err(e)),
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dir = openat(parent, name, flags, Mode::empty()).map_err(io_err)?;
    let handle = dir.try_clone()?;
    for child in names_in(dir)? {
        remove_at(handle.as_fd(), &child)?;
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, symlink};

    fn both(dir: &Path) -> [Beneath; 2] {
        let walked = Beneath::open(dir).unwrap();
        walked.force_walk();
        [Beneath::open(dir).unwrap(), walked]
    }

    #[test]
    fn never_follows_a_link_on_the_way() {
        let t = tempfile::tempdir().unwrap();
        let (target, outside) = (t.path().join("target"), t.path().join("outside"));
        std::fs::create_dir_all(target.join("d")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        symlink(&outside, target.join("link")).unwrap();
        for b in both(&target) {
            let through = target.join("link/secret");
            assert_eq!(b.lstat(&through).unwrap_err().raw_os_error(), Some(libc::ELOOP));
            assert!(b.create_file(&target.join("link/new")).is_err());
            assert!(b.mkdir(&target.join("link/newdir"), 0o700).is_err());
            assert!(b.open_file(&through, true).is_err());
            // The link itself is an entry like any other.
            assert!(b.lstat(&target.join("link")).unwrap().unwrap().file_type().is_symlink());
            assert!(b.open_file(&target.join("link"), false).is_err());
            assert!(b.lstat(&target.join("../outside")).is_err());
            b.create_file(&target.join("d/f")).unwrap();
            assert!(b.create_file(&target.join("d/f")).is_err(), "never an existing file");
            std::fs::remove_file(target.join("d/f")).unwrap();
        }
        assert!(!outside.join("new").exists() && !outside.join("newdir").exists());
    }

    #[test]
    fn removes_a_tree_without_following_links_inside() {
        let t = tempfile::tempdir().unwrap();
        let (target, outside) = (t.path().join("target"), t.path().join("outside"));
        std::fs::create_dir_all(target.join("d/e")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"k").unwrap();
        std::fs::write(target.join("d/e/f"), b"f").unwrap();
        symlink(&outside, target.join("d/link")).unwrap();
        let b = Beneath::open(&target).unwrap();
        b.remove(&target.join("d")).unwrap();
        assert!(!target.join("d").exists());
        assert!(outside.join("keep").exists());
        std::fs::write(target.join("g"), b"g").unwrap();
        std::fs::hard_link(target.join("g"), target.join("h")).unwrap();
        b.hard_link(&target.join("g"), &target.join("i")).unwrap();
        assert_eq!(std::fs::metadata(target.join("i")).unwrap().nlink(), 3);
        let mut names = b.names(&target).unwrap();
        names.sort();
        assert_eq!(names, ["g", "h", "i"].map(OsString::from));
    }

    #[test]
    fn a_directory_mode_is_set_without_reading_it_or_following_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (target, outside) = (t.path().join("target"), t.path().join("outside"));
        std::fs::create_dir_all(target.join("d")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::set_permissions(target.join("d"), std::fs::Permissions::from_mode(0o311)).unwrap();
        symlink(&outside, target.join("link")).unwrap();
        let b = Beneath::open(&target).unwrap();
        b.chmod_dir(&target.join("d"), 0o700).unwrap();
        assert_eq!(std::fs::metadata(target.join("d")).unwrap().mode() & 0o7777, 0o700);
        assert!(b.chmod_dir(&target.join("link"), 0o777).is_err());
        assert_ne!(std::fs::metadata(&outside).unwrap().mode() & 0o777, 0o777);
    }

    #[test]
    fn a_missing_target_holds_nothing() {
        let t = tempfile::tempdir().unwrap();
        let b = Beneath::missing(&t.path().join("new"));
        assert!(b.lstat(&t.path().join("new/x")).unwrap().is_none());
        assert!(b.lstat(Path::new("/etc/passwd")).is_err(), "only paths below the target");
    }
}
