//! indicatif progress bars on stderr, shown only when stderr is a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use vault_ops::Progress;

pub(crate) struct BarProgress {
    bar: Option<ProgressBar>,
    files: AtomicU64,
    total_files: AtomicU64,
    verb: &'static str,
    /// `backup -v`: a line per file on stdout (`Some(true)`: as JSON).
    listing: Option<bool>,
}

impl BarProgress {
    /// A bar when `enabled` and stderr is a terminal; otherwise warnings only.
    pub(crate) fn new(enabled: bool, verb: &'static str) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(8));
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        BarProgress { bar, files: AtomicU64::new(0), total_files: AtomicU64::new(0), verb, listing: None }
    }

    /// Also lists every file done on stdout, as text or (`json`) as JSON lines.
    pub(crate) fn with_listing(mut self, json: bool) -> Self {
        self.listing = Some(json);
        self
    }

    pub(crate) fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Runs `f` (which prints) with the bar hidden.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn update_msg(&self) {
        if let Some(b) = &self.bar {
            let done = self.files.load(Ordering::Relaxed);
            let total = self.total_files.load(Ordering::Relaxed);
            if total > 0 {
                b.set_message(format!("{done}/{total} files {}", self.verb));
            } else {
                b.set_message(format!("{done} files {}", self.verb));
            }
        }
    }
}

impl Progress for BarProgress {
    fn set_totals(&self, files: u64, bytes: u64) {
        self.total_files.store(files, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_length(bytes.max(b.position()));
        }
        self.update_msg();
    }

    fn add_files(&self, n: u64) {
        self.files.fetch_add(n, Ordering::Relaxed);
        self.update_msg();
    }

    fn add_bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
            if b.position() > b.length().unwrap_or(0) {
                b.set_length(b.position());
            }
        }
    }

    fn file_done(&self, path: &Path, status: vault_ops::FileStatus, size: u64) {
        let Some(json) = self.listing else { return };
        let line = if json {
            serde_json::json!({
                "message_type": "verbose_status",
                "action": status.name(),
                "item": path.to_string_lossy(),
                "size": size,
            })
            .to_string()
        } else {
            super::output::printable(&format!("{:<9} {} ({})", status.name(), path.display(), bytes(size))).into_owned()
        };
        self.suspend(|| println!("{line}"));
    }

    fn warn(&self, path: &Path, message: &str) {
        let line = super::output::printable(&format!("warning: {}: {message}", path.display())).into_owned();
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

pub(crate) fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}
