//! Progress reporting from operations to whatever renders it.

use std::path::Path;

pub trait Progress: Send + Sync {
    /// Totals found by a scan running beside the operation; may grow while it runs.
    fn set_totals(&self, _files: u64, _bytes: u64) {}
    fn add_files(&self, _n: u64) {}
    fn add_bytes(&self, _n: u64) {}
    /// A problem that does not stop the operation (an unreadable file, a damaged blob).
    fn warn(&self, _path: &Path, _message: &str) {}
}

pub struct NoProgress;

impl Progress for NoProgress {}
