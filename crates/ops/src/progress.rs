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
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
