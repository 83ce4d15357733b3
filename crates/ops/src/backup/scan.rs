//! Counting files and bytes of the sources beside a backup, for a progress bar with an
//! ETA. Metadata only, iterative (any depth), stopped when the backup is done.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::filter::Filters;
use crate::progress::Progress;

/// Counts files and bytes of the sources for the progress bar. Metadata only.
pub(super) fn scan_totals(
    roots: &[PathBuf],
    filters: &Filters,
    one_fs: bool,
    progress: &dyn Progress,
    stop: &AtomicBool,
) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack: Vec<(PathBuf, u64)> = Vec::new();
    for r in roots {
        if let Ok(m) = std::fs::symlink_metadata(r) {
            stack.push((r.clone(), m.dev()));
        }
    }
    let mut last = Instant::now();
    while let Some((p, dev)) = stack.pop() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if filters.excludes_entry(&p, &m) {
            continue;
        }
        if m.is_dir() {
            if one_fs && m.dev() != dev {
                continue;
            }
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    let child = e.path();
                    if !filters.excludes_path(&child) {
                        stack.push((child, dev));
                    }
                }
            }
        } else {
            files += 1;
            if m.is_file() {
                bytes += m.len();
            }
        }
        if last.elapsed() > Duration::from_millis(200) {
            progress.set_totals(files, bytes);
            last = Instant::now();
        }
    }
    progress.set_totals(files, bytes);
}
