//! indicatif progress bars on stderr, shown only when stderr is a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use vault_ops::Progress;

pub(crate) struct BarProgress {
    bar: Option<ProgressBar>,
    files: AtomicU64,
    total_files: AtomicU64,
    verb: &'static str,
    /// `backup -v`: a line per file on stdout (`Some(true)`: as JSON).
    listing: Option<bool>,
    /// `--json`: `status` lines on stdout, the first at the first progress, then at most
    /// one a second.
    status: Option<StatusLines>,
}

struct StatusLines {
    start: Instant,
    /// Milliseconds after `start` of the last line (`u64::MAX`: none yet).
    last_ms: AtomicU64,
    bytes: AtomicU64,
    total_bytes: AtomicU64,
    totals_known: AtomicBool,
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
        BarProgress { bar, files: AtomicU64::new(0), total_files: AtomicU64::new(0), verb, listing: None, status: None }
    }

    /// Also prints `status` JSON lines on stdout when `enabled` (`--json` without `--quiet`).
    pub(crate) fn with_json_status(mut self, enabled: bool) -> Self {
        self.status = enabled.then(|| StatusLines {
            start: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            bytes: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
            totals_known: AtomicBool::new(false),
        });
        self
    }

    fn status_line(&self) {
        let Some(s) = &self.status else { return };
        let now = s.start.elapsed().as_millis() as u64;
        let last = s.last_ms.load(Ordering::Relaxed);
        if last != u64::MAX && now < last.saturating_add(1000) {
            return;
        }
        if s.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        let known = s.totals_known.load(Ordering::Relaxed);
        let (bytes, total) = (s.bytes.load(Ordering::Relaxed), s.total_bytes.load(Ordering::Relaxed));
        let line = serde_json::json!({
            "message_type": "status",
            "action": self.verb,
            "seconds_elapsed": now as f64 / 1000.0,
            "files_done": self.files.load(Ordering::Relaxed),
            "bytes_done": bytes,
            "total_files": known.then(|| self.total_files.load(Ordering::Relaxed)),
            "total_bytes": known.then_some(total),
            "percent_done": (known && total > 0).then(|| (bytes as f64 / total as f64).min(1.0)),
        });
        println!("{line}");
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
        if let Some(s) = &self.status {
            s.total_bytes.store(bytes, Ordering::Relaxed);
            s.totals_known.store(true, Ordering::Relaxed);
        }
        if let Some(b) = &self.bar {
            b.set_length(bytes.max(b.position()));
        }
        self.update_msg();
    }

    fn add_files(&self, n: u64) {
        self.files.fetch_add(n, Ordering::Relaxed);
        self.update_msg();
        self.status_line();
    }

    fn add_bytes(&self, n: u64) {
        if let Some(s) = &self.status {
            s.bytes.fetch_add(n, Ordering::Relaxed);
            self.status_line();
        }
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
