//! Progress reporting from operations to whatever renders it.

use std::path::Path;

/// How an operation reports progress; the CLI draws it, tests ignore it.
pub trait Progress: Send + Sync {
    /// Totals found by a scan running beside the operation; may grow while it runs.
    fn set_totals(&self, _files: u64, _bytes: u64) {}
    /// Files done.
    fn add_files(&self, _n: u64) {}
    /// Bytes done.
    fn add_bytes(&self, _n: u64) {}
    /// A problem that does not stop the operation (an unreadable file, a damaged blob).
    fn warn(&self, _path: &Path, _message: &str) {}
    /// A file a backup is done with: how it compared with the parent snapshot, and its
    /// size (for `backup -v`).
    fn file_done(&self, _path: &Path, _status: FileStatus, _size: u64) {}
}

/// How a backed-up file compared with the parent snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// Not in the parent.
    New,
    /// In the parent, but changed: read again.
    Changed,
    /// As in the parent: not read.
    Unchanged,
}

impl FileStatus {
    /// Its name in listings.
    pub fn name(self) -> &'static str {
        match self {
            FileStatus::New => "new",
            FileStatus::Changed => "changed",
            FileStatus::Unchanged => "unchanged",
        }
    }
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
