//! Bandwidth limits (`--limit-upload`, `--limit-download`): every transfer books its
//! bytes on one clock per direction shared by all threads, and waits until a link of the
//! given rate would have carried them. The rate holds on average over transfers (a pack
//! is one transfer), not within one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One direction's limit, in bytes per second.
#[derive(Debug)]
pub(crate) struct Pacer {
    bytes_per_second: u64,
    /// When the link is free again: the end of everything booked so far.
    free_at: Mutex<Instant>,
}

impl Pacer {
    pub(crate) fn new(bytes_per_second: u64) -> Pacer {
        Pacer { bytes_per_second: bytes_per_second.max(1), free_at: Mutex::new(Instant::now()) }
    }

    /// Books `n` bytes and returns when the link would have carried them.
    fn book(&self, n: u64) -> Instant {
        let cost = Duration::from_secs_f64(n as f64 / self.bytes_per_second as f64);
        let mut free = self.free_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // An idle link does not save up: a pause is not credit for a later burst.
        let start = (*free).max(Instant::now());
        *free = start + cost;
        *free
    }

    /// Waits until `n` more bytes fit within the limit.
    pub(crate) fn pace(&self, n: u64) {
        let until = self.book(n);
        let now = Instant::now();
        if until > now {
            std::thread::sleep(until - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_from_several_threads_share_the_rate() {
        let p = std::sync::Arc::new(Pacer::new(1_000_000));
        let t = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        p.pace(10_000);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // 200 kB at 1 MB/s: 0.2 s, not 0.05 s (each thread alone) and not much more.
        let took = t.elapsed().as_secs_f64();
        assert!((0.19..5.0).contains(&took), "{took}");
    }

    #[test]
    fn an_idle_link_saves_no_credit() {
        let p = Pacer::new(1_000_000);
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        p.pace(100_000);
        assert!(t.elapsed() >= Duration::from_millis(95));
    }
}
