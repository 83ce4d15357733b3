//! What a backup leaves out: exclude patterns (case-sensitive or not), directories that
//! hold a marker file (`--exclude-if-present`, `--exclude-caches`), and files above a
//! size.

use std::fs::{Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::super::error::{OpError, Result};
use super::super::pattern::PatternSet;
use vault_format::snapshot::SnapshotFilters;

/// The signature a `CACHEDIR.TAG` file starts with (the Cache Directory Tagging
/// Specification); a file of that name without it marks nothing.
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// A file whose presence leaves its directory out.
#[derive(Clone, Debug)]
struct Marker {
    name: String,
    /// What the file must start with, if anything.
    header: Option<Vec<u8>>,
}

pub(crate) struct Filters {
    excludes: PatternSet,
    iexcludes: PatternSet,
    markers: Vec<Marker>,
    larger_than: Option<u64>,
}

impl Filters {
    /// The filters of a backup (or the ones a snapshot records).
    pub(crate) fn new(opts: &SnapshotFilters) -> Result<Filters> {
        let mut markers = Vec::new();
        for spec in &opts.exclude_if_present {
            let (name, header) = match spec.split_once(':') {
                Some((n, h)) => (n, Some(h.as_bytes().to_vec())),
                None => (spec.as_str(), None),
            };
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(OpError::Usage(format!(
                    "--exclude-if-present {spec:?}: expected a file name, optionally followed by :HEADER"
                )));
            }
            markers.push(Marker { name: name.to_string(), header });
        }
        if opts.exclude_caches {
            markers.push(Marker { name: "CACHEDIR.TAG".into(), header: Some(CACHEDIR_SIGNATURE.to_vec()) });
        }
        Ok(Filters {
            excludes: PatternSet::new(&opts.excludes)?,
            iexcludes: PatternSet::new_case_insensitive(&opts.iexcludes)?,
            markers,
            larger_than: opts.exclude_larger_than,
        })
    }

    /// Whether a pattern leaves `path` out (decided before it is even stat'ed).
    pub(crate) fn excludes_path(&self, path: &Path) -> bool {
        self.excludes.matches(path) || self.iexcludes.matches(path)
    }

    /// Whether the entry at `path`, with metadata `meta`, is left out for its size or
    /// for a marker file it holds.
    pub(crate) fn excludes_entry(&self, path: &Path, meta: &Metadata) -> bool {
        if meta.is_file() {
            return self.larger_than.is_some_and(|max| meta.len() > max);
        }
        meta.is_dir() && self.markers.iter().any(|m| m.marks(path))
    }
}

impl Marker {
    /// Whether `dir` holds this marker (a regular file, not a link to one).
    fn marks(&self, dir: &Path) -> bool {
        let path = dir.join(&self.name);
        let Some(header) = &self.header else {
            return std::fs::symlink_metadata(&path).is_ok();
        };
        let Ok(f) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path) else {
            return false;
        };
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            return false;
        }
        let mut start = vec![0u8; header.len()];
        let mut f = f;
        f.read_exact(&mut start).is_ok() && start == *header
    }
}
