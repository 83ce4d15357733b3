//! `dump`: one file's content, or a directory as a tar or zip archive, written to any
//! `Write`. Blobs are fetched one at a time, so memory stays at one chunk per file.

use std::io::{self, Read, Write};

use super::error::Result;
use vault_format::BlobId;
use vault_format::tree::{ContentItem, Node, NodeKind};
use vault_repo::IndexedRepository;

use super::walk::{Flow, Visit, walk_tree};

/// Streams a file's content: blobs in order, holes as zeros.
pub struct ContentReader<'a> {
    repo: &'a IndexedRepository,
    items: std::slice::Iter<'a, ContentItem>,
    buf: Vec<u8>,
    pos: usize,
    zeros: u64,
    /// Bytes the node's size still allows: a reader never gives more than the size an
    /// archive header announced, and fewer is an error, not a silently short file.
    left: u64,
}

impl<'a> ContentReader<'a> {
    /// Reads `node`'s content through `repo`.
    pub fn new(repo: &'a IndexedRepository, node: &'a Node) -> Self {
        ContentReader { repo, items: node.content.iter(), buf: Vec::new(), pos: 0, zeros: 0, left: node.size }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let room = usize::try_from(self.left).unwrap_or(usize::MAX).min(out.len());
        let out = &mut out[..room];
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let n = if self.zeros > 0 {
                let n = (self.zeros.min(out.len() as u64)) as usize;
                out[..n].fill(0);
                self.zeros -= n as u64;
                n
            } else if self.pos < self.buf.len() {
                let n = (self.buf.len() - self.pos).min(out.len());
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                n
            } else {
                match self.items.next() {
                    None => {
                        return Err(io::Error::other(format!(
                            "the stored content ends {} bytes short of the file's size",
                            self.left
                        )));
                    }
                    Some(ContentItem::Hole { length }) => self.zeros = *length,
                    Some(ContentItem::Data { id, length }) => {
                        self.buf = self.repo.read_data_item(id, *length).map_err(io::Error::other)?;
                        self.pos = 0;
                    }
                }
                continue;
            };
            self.left -= n as u64;
            return Ok(n);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The archive format `dump` writes a directory as.
pub enum Archive {
    /// POSIX tar.
    Tar,
    /// Zip.
    Zip,
}

/// Writes the directory tree `tree` (named `root` inside the archive, with the metadata of
/// `root_node` when there is one) to `out`.
pub fn dump_dir<W: Write + Send>(
    repo: &IndexedRepository,
    tree: BlobId,
    root_node: Option<&Node>,
    root: &str,
    archive: Archive,
    out: W,
) -> Result<W> {
    match archive {
        Archive::Tar => {
            let mut b = tar::Builder::new(out);
            b.follow_symlinks(false);
            if let (Some(n), false) = (root_node, root.is_empty()) {
                let mut h = tar_header(n);
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{root}/"), io::empty()).map_err(io_err)?;
            }
            tar_dir(repo, tree, root, &mut b)?;
            Ok(b.into_inner().map_err(io_err)?)
        }
        Archive::Zip => {
            let mut z = zip::ZipWriter::new_stream(out);
            zip_dir(repo, tree, root, &mut z)?;
            Ok(z.finish().map_err(|e| io_err(io::Error::other(e)))?.into_inner())
        }
    }
}

fn io_err(e: io::Error) -> super::error::OpError {
    super::error::OpError::Output(e)
}

fn tar_header(n: &Node) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(n.mode);
    h.set_uid(u64::from(n.uid));
    h.set_gid(u64::from(n.gid));
    h.set_mtime(n.mtime.sec.max(0) as u64);
    let _ = h.set_username(&String::from_utf8_lossy(&n.user));
    let _ = h.set_groupname(&String::from_utf8_lossy(&n.group));
    h
}

/// Archive paths: below `root`, without a leading `/`.
fn walk_archive(
    repo: &IndexedRepository,
    tree: BlobId,
    root: &str,
    entry: &mut dyn FnMut(&str, &Node) -> Result<()>,
) -> Result<()> {
    walk_tree(repo, tree, root, &mut |v| {
        if let Visit::Entry { path, item } = v {
            entry(path.trim_start_matches('/'), item)?;
        }
        Ok(Flow::Continue)
    })
}

fn tar_dir<W: Write>(repo: &IndexedRepository, tree: BlobId, root: &str, b: &mut tar::Builder<W>) -> Result<()> {
    walk_archive(repo, tree, root, &mut |path, n| {
        let mut h = tar_header(n);
        let r = match n.kind {
            NodeKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{path}/"), io::empty())
            }
            NodeKind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(n.size);
                b.append_data(&mut h, path, ContentReader::new(repo, n))
            }
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, String::from_utf8_lossy(&n.target).as_ref())
            }
            NodeKind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_size(0);
                b.append_data(&mut h, path, io::empty())
            }
            NodeKind::CharDev | NodeKind::BlockDev => {
                h.set_entry_type(if n.kind == NodeKind::CharDev {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_size(0);
                let _ = h.set_device_major(libc::major(n.rdev as libc::dev_t));
                let _ = h.set_device_minor(libc::minor(n.rdev as libc::dev_t));
                b.append_data(&mut h, path, io::empty())
            }
            NodeKind::Socket => return Ok(()),
        };
        r.map_err(io_err)
    })
}

fn zip_dir<W: Write + io::Seek>(
    repo: &IndexedRepository,
    tree: BlobId,
    root: &str,
    z: &mut zip::ZipWriter<W>,
) -> Result<()> {
    walk_archive(repo, tree, root, &mut |path, n| {
        let opts = zip::write::SimpleFileOptions::default()
            .unix_permissions(n.mode)
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(n.size > u32::MAX as u64);
        let z_err = |e: zip::result::ZipError| io_err(io::Error::other(e));
        match n.kind {
            NodeKind::Dir => z.add_directory(format!("{path}/"), opts).map_err(z_err)?,
            NodeKind::File => {
                z.start_file(path, opts).map_err(z_err)?;
                io::copy(&mut ContentReader::new(repo, n), z).map_err(io_err)?;
            }
            NodeKind::Symlink => {
                z.add_symlink(path, String::from_utf8_lossy(&n.target), opts).map_err(z_err)?;
            }
            // Zip has no fifos or devices.
            _ => {}
        }
        Ok(())
    })
}
