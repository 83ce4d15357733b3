//! The FUSE adapter for `vault mount`: translates kernel requests into calls on the
//! read model in `ops::browse`. Read-only; every write is refused by the kernel (`ro`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyXattr, Request,
};

use vault_format::tree::Timestamp;
use vault_ops::browse::{Attr, Browser, EntryType};

const TTL: Duration = Duration::from_secs(1);

pub(crate) struct VaultFs {
    pub(crate) browser: Arc<Browser>,
}

fn time(t: Timestamp) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec.min(999_999_999))
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs())
    }
}

fn file_type(k: EntryType) -> FileType {
    match k {
        EntryType::Dir => FileType::Directory,
        EntryType::File => FileType::RegularFile,
        EntryType::Symlink => FileType::Symlink,
        EntryType::Fifo => FileType::NamedPipe,
        EntryType::CharDev => FileType::CharDevice,
        EntryType::BlockDev => FileType::BlockDevice,
        EntryType::Socket => FileType::Socket,
    }
}

impl VaultFs {
    fn fattr(&self, a: &Attr) -> FileAttr {
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: time(a.mtime),
            mtime: time(a.mtime),
            ctime: time(a.ctime),
            crtime: time(a.mtime),
            kind: file_type(a.kind),
            perm: (a.mode & 0o7777) as u16,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: a.rdev as u32,
            blksize: 4096,
            flags: 0,
        }
    }
}

fn io_error<E: std::fmt::Display>(e: E) -> Errno {
    eprintln!("vault mount: {e}");
    Errno::EIO
}

impl Filesystem for VaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.browser.lookup(parent.0, name) {
            Ok(Some(a)) => reply.entry(&TTL, &self.fattr(&a), Generation(0)),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(io_error(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.browser.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &self.fattr(&a)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.browser.readlink(ino.0) {
            Some(t) => reply.data(&t),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.browser.attr(ino.0) {
            // Contents never change: the kernel may keep its page cache between opens.
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.browser.read(ino.0, offset, size) {
            Ok(Some(d)) => reply.data(&d),
            Ok(None) => reply.error(Errno::EISDIR),
            Err(e) => reply.error(io_error(e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let entries = match self.browser.readdir(ino.0) {
            Ok(Some(e)) => e,
            Ok(None) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(io_error(e)),
        };
        let dots = [
            (ino.0, EntryType::Dir, OsStr::new(".").to_os_string()),
            (ino.0, EntryType::Dir, OsStr::new("..").to_os_string()),
        ];
        for (i, (child, kind, name)) in dots.into_iter().chain(entries).enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, file_type(kind), &name) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let Some((_, v)) = self.browser.xattrs(ino.0).into_iter().find(|(k, _)| k.as_slice() == name.as_bytes()) else {
            return reply.error(Errno::NO_XATTR);
        };
        if size == 0 {
            reply.size(v.len() as u32)
        } else if (size as usize) < v.len() {
            reply.error(Errno::ERANGE)
        } else {
            reply.data(&v)
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut names = Vec::new();
        for (k, _) in self.browser.xattrs(ino.0) {
            names.extend_from_slice(&k);
            names.push(0);
        }
        if size == 0 {
            reply.size(names.len() as u32)
        } else if (size as usize) < names.len() {
            reply.error(Errno::ERANGE)
        } else {
            reply.data(&names)
        }
    }
}
