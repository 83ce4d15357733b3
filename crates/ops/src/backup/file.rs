//! Backing up one regular file: reused from the parent snapshot when its metadata says
//! it is unchanged, otherwise chunked in a stream (holes of sparse files kept), each
//! batch of chunks hashed, compressed and sealed in parallel.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::Ctx;
use crate::error::Result;
use crate::progress::FileStatus;
use vault_format::pack::BlobKind;
use vault_format::tree::{ContentItem, Node, NodeKind, Timestamp};

/// Chunks hashed and sealed together in parallel; bounds memory per large file.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

pub(super) fn archive_file(ctx: &Ctx<'_>, path: &Path, mut node: Node, parent: Option<&Node>) -> Result<Option<Node>> {
    if let Some(p) = parent
        && node.same_file_stat(p)
        && p.content.iter().all(|c| match c {
            ContentItem::Data { id, .. } => ctx.writer.has(BlobKind::Data, id),
            ContentItem::Hole { .. } => true,
        })
    {
        node.content = p.content.clone();
        ctx.counters.files_unchanged.fetch_add(1, Ordering::Relaxed);
        ctx.counters.total_bytes.fetch_add(node.size, Ordering::Relaxed);
        ctx.progress.add_files(1);
        ctx.progress.add_bytes(node.size);
        ctx.progress.file_done(path, FileStatus::Unchanged, node.size);
        return Ok(Some(node));
    }
    let (file, opened) = match open_for_reading(path) {
        Ok(f) => f,
        Err(e) => {
            ctx.problem(path, format!("cannot open: {e}"));
            return Ok(None);
        }
    };
    // A file changed while it is read would be stored as a mix of its states (a log cut
    // short during the read, stored at its old length): its size and times are compared
    // before and after, and a changed file is read again.
    let mut attempt = 0;
    let mut first = Some(opened);
    loop {
        attempt += 1;
        let before = match first.take().map_or_else(|| file.metadata(), Ok) {
            Ok(m) => m,
            Err(e) => {
                ctx.problem(path, format!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        let sparse = before.blocks() * 512 < before.len();
        let (content, size) = match read_content(ctx, &file, before.len(), sparse)? {
            FileRead::Stored { content, size } => (content, size),
            FileRead::Unreadable(e) => {
                ctx.problem(path, format!("cannot read: {e}"));
                return Ok(None);
            }
        };
        // The node describes the file as it was opened and read, not as the walk saw it.
        node.mtime = Timestamp { sec: before.mtime(), nsec: before.mtime_nsec() as u32 };
        node.ctime = Timestamp { sec: before.ctime(), nsec: before.ctime_nsec() as u32 };
        node.inode = before.ino();
        node.content = content;
        node.size = size;
        let changed = match file.metadata() {
            Ok(after) => FileState::of(&before) != FileState::of(&after),
            Err(_) => true,
        };
        if !changed {
            break;
        }
        if attempt < READS {
            // One change is seen in steps (ext4 shrinks a file's size first and sets its
            // times in updates some milliseconds apart, further apart on a busy machine):
            // let it settle before reading again, or that read sees the rest of the same
            // change.
            settle(&file);
        } else {
            ctx.problem_kept(
                path,
                format!(
                    "changed while it was read ({READS} times); stored as read ({size} bytes), which may mix its states"
                ),
            );
            break;
        }
    }
    let (counter, status) = if parent.is_some_and(|p| p.kind == NodeKind::File) {
        (&ctx.counters.files_changed, FileStatus::Changed)
    } else {
        (&ctx.counters.files_new, FileStatus::New)
    };
    counter.fetch_add(1, Ordering::Relaxed);
    ctx.counters.total_bytes.fetch_add(node.size, Ordering::Relaxed);
    ctx.progress.add_files(1);
    ctx.progress.file_done(path, status, node.size);
    Ok(Some(node))
}

/// What tells a changed file apart: size, modification and change times.
#[derive(PartialEq, Eq)]
struct FileState {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileState {
    fn of(m: &Metadata) -> FileState {
        FileState { size: m.len(), mtime: (m.mtime(), m.mtime_nsec()), ctime: (m.ctime(), m.ctime_nsec()) }
    }
}

/// Waits (at most half a second) until the file's size and times stay the same for 60 ms.
fn settle(file: &File) {
    let state = || file.metadata().ok().map(|m| FileState::of(&m));
    let mut last = state();
    let mut still = 0;
    for _ in 0..25 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = state();
        if now == last {
            still += 1;
            if still == SETTLED_POLLS {
                return;
            }
        } else {
            still = 0;
        }
        last = now;
    }
}

/// How often a file that changes while it is read is read, at most.
const READS: u32 = 3;
/// Polls 20 ms apart that must see the same size and times before a file counts as
/// settled.
const SETTLED_POLLS: u32 = 3;

/// Opens a file the walk saw as regular. Someone may have swapped it since for a FIFO
/// (whose open would block forever), a device (`/dev/zero` reads forever) or a link:
/// O_NONBLOCK and O_NOFOLLOW keep the open from hanging or following, and what was opened
/// must still be a regular file. Returns it with its metadata (the state before the first
/// read).
fn open_for_reading(path: &Path) -> io::Result<(File, Metadata)> {
    let open =
        |flags| OpenOptions::new().read(true).custom_flags(flags | libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
    // O_NOATIME keeps backups from touching access times; only the owner (or root) may
    // use it, so fall back without it.
    let file = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        r => r,
    }?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other("it is no longer a regular file (replaced while the backup ran)"));
    }
    Ok((file, meta))
}

/// Data extents of a sparse file as (offset, length), from SEEK_DATA/SEEK_HOLE.
fn data_extents(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    use nix::unistd::{Whence, lseek};
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    let end = size as i64;
    while pos < end {
        let data = match lseek(file, pos, Whence::SeekData) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = lseek(file, data, Whence::SeekHole).map_err(io::Error::from)?.min(end);
        if hole > data {
            out.push((data as u64, (hole - data) as u64));
        }
        pos = hole;
    }
    Ok(out)
}

/// What reading a file's content came to. An error of the repository is not here: it
/// stops the backup (`Err` of the outer `Result`).
enum FileRead {
    /// The content list, and the size actually read.
    Stored { content: Vec<ContentItem>, size: u64 },
    /// The file could not be read; it is reported and the backup goes on.
    Unreadable(io::Error),
}

fn read_content(ctx: &Ctx<'_>, file: &File, size: u64, sparse: bool) -> Result<FileRead> {
    let extents = if sparse {
        match data_extents(file, size) {
            Ok(e) => e,
            Err(_) => vec![(0, u64::MAX)],
        }
    } else {
        vec![(0, u64::MAX)]
    };
    let mut items = Vec::new();
    let mut pos = 0u64;
    // Files whose reported size is not what reading gives (/proc, /sys) end where reading
    // ends: a short extent means no trailing hole is added.
    let mut short = false;
    for (start, len) in extents {
        if start > pos {
            items.push(ContentItem::Hole { length: start - pos });
        }
        let mut f = file;
        if let Err(e) = f.seek(SeekFrom::Start(start)) {
            return Ok(FileRead::Unreadable(e));
        }
        let read = match store_stream(ctx, f.take(len), len.min(size), &mut items)? {
            Ok(n) => n,
            Err(e) => return Ok(FileRead::Unreadable(e)),
        };
        pos = start + read;
        short |= len != u64::MAX && read < len;
    }
    if sparse && !short && size > pos {
        items.push(ContentItem::Hole { length: size - pos });
        pos = size;
    }
    Ok(FileRead::Stored { content: items, size: pos })
}

/// Chunks and stores everything `reader` yields (`size_hint` bytes expected), appending
/// the content items; the bytes read, or the read error that ended it.
pub(super) fn store_stream(
    ctx: &Ctx<'_>,
    reader: impl Read,
    size_hint: u64,
    items: &mut Vec<ContentItem>,
) -> Result<io::Result<u64>> {
    let mut stream = ctx.chunker.stream_sized(reader, size_hint);
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut read = 0u64;
    loop {
        ctx.check_stop()?;
        let chunk = match stream.next_chunk() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let done = chunk.is_none();
        if let Some(c) = chunk {
            read += c.len() as u64;
            ctx.counters.bytes_read.fetch_add(c.len() as u64, Ordering::Relaxed);
            ctx.progress.add_bytes(c.len() as u64);
            batch_bytes += c.len();
            batch.push(c);
        }
        if done || batch_bytes >= BATCH_BYTES {
            items.extend(store_batch(ctx, std::mem::take(&mut batch))?);
            batch_bytes = 0;
        }
        if done {
            return Ok(Ok(read));
        }
    }
}

fn store_batch(ctx: &Ctx<'_>, batch: Vec<Vec<u8>>) -> Result<Vec<ContentItem>> {
    let store = |c: &Vec<u8>| -> Result<ContentItem> {
        let (id, _) = ctx.writer.save_blob(BlobKind::Data, c)?;
        Ok(ContentItem::Data { id, length: c.len() as u32 })
    };
    if batch.len() <= 1 { batch.iter().map(store).collect() } else { batch.par_iter().map(store).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_device_in_a_files_place_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("was-a-file");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Without O_NONBLOCK this open waits for a writer forever.
        let e = open_for_reading(&fifo).unwrap_err();
        assert!(e.to_string().contains("no longer a regular file"), "{e}");
        assert!(open_for_reading(Path::new("/dev/zero")).is_err());
        let link = d.path().join("link");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(open_for_reading(&link).is_err());
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        assert!(open_for_reading(&f).is_ok());
    }
}
