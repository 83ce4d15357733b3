//! Injected storage faults, for tests that prove vault never lies or loses data when its
//! storage misbehaves: an OpenDAL layer below the retry layer (so injected temporary
//! faults are retried as real ones are) that, at a chosen rate, fails a request before
//! it reaches the storage, delays it, cuts a read short, tears a write (half of it
//! reaches the storage, then the connection "dies"), or loses a response (the request
//! took effect, the client is told it failed).
//!
//! Enabled only by `VAULT_DEBUG_FAULTS=RATE[:SEED]` (see `BackendOptions`); never in
//! normal use.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opendal::raw::*;
use opendal::*;

static INJECTED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Faults injected by every backend of this process.
pub fn injected_total() -> u64 {
    INJECTED_TOTAL.load(Ordering::Relaxed)
}

/// What to inject: a fault on a share `rate` of requests, from a seeded generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultSpec {
    /// Faults per million requests.
    pub per_million: u32,
    /// Seed of the generator, so a run can be repeated.
    pub seed: u64,
}

impl FaultSpec {
    /// `RATE` or `RATE:SEED`, the rate between 0 and 0.5.
    pub fn parse(s: &str) -> Option<FaultSpec> {
        let (rate, seed) = match s.split_once(':') {
            Some((r, seed)) => (r, seed.parse().ok()?),
            None => (s, 0x5eed),
        };
        let rate: f64 = rate.parse().ok()?;
        (0.0..=0.5).contains(&rate).then_some(FaultSpec { per_million: (rate * 1e6).round() as u32, seed })
    }
}

/// The layer, and the count of faults it injected (shared with the backend's statistics).
#[derive(Clone)]
pub(crate) struct FaultLayer {
    state: Arc<FaultState>,
}

impl fmt::Debug for FaultLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultLayer({})", self.state.rate)
    }
}

pub(crate) struct FaultState {
    rate: f64,
    rng: AtomicU64,
    pub(crate) injected: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Fails before the storage sees the request (temporary: retried).
    Error,
    /// Delays the request.
    Latency,
    /// A read that delivers less than asked.
    Short,
    /// A write of which only a part arrives, then the connection fails.
    Torn,
    /// The request took effect, but the client sees a failure.
    LostResponse,
}

impl FaultLayer {
    pub(crate) fn new(spec: FaultSpec) -> FaultLayer {
        FaultLayer {
            state: Arc::new(FaultState {
                rate: f64::from(spec.per_million) / 1e6,
                rng: AtomicU64::new(spec.seed ^ 0x9e37_79b9_7f4a_7c15),
                injected: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn injected(&self) -> Arc<FaultState> {
        self.state.clone()
    }
}

impl FaultState {
    /// splitmix64 over a shared counter: reproducible for one seed and one order of
    /// requests, and lock-free.
    fn next(&self) -> u64 {
        let mut z = self.rng.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Whether to inject, and which of `kinds`.
    fn draw(&self, kinds: &[Fault]) -> Option<Fault> {
        let r = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        if r >= self.rate || kinds.is_empty() {
            return None;
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        INJECTED_TOTAL.fetch_add(1, Ordering::Relaxed);
        Some(kinds[(self.next() % kinds.len() as u64) as usize])
    }

    async fn delay(&self) {
        tokio::time::sleep(Duration::from_millis(1 + self.next() % 30)).await;
    }
}

fn injected(what: &str, temporary: bool) -> Error {
    let e = Error::new(ErrorKind::Unexpected, format!("injected fault: {what}"));
    if temporary { e.set_temporary() } else { e }
}

impl Layer for FaultLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(FaultService { inner, state: self.state.clone() })
    }
}

#[derive(Debug)]
struct FaultService {
    inner: Servicer,
    state: Arc<FaultState>,
}

impl fmt::Debug for FaultState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultState({})", self.rate)
    }
}

impl FaultService {
    /// Faults of a request that is answered as a whole (stat, rename, create_dir), drawn
    /// from `kinds`; a lost response is returned for the caller to apply after the request.
    async fn before(&self, kinds: &[Fault]) -> Result<Option<Fault>> {
        match self.state.draw(kinds) {
            Some(Fault::Error) => Err(injected("request failed", true)),
            Some(Fault::Latency) => {
                self.state.delay().await;
                Ok(None)
            }
            other => Ok(other),
        }
    }
}

impl Service for FaultService {
    type Reader = FaultWrapper<oio::Reader>;
    type Writer = FaultWrapper<oio::Writer>;
    type Lister = FaultWrapper<oio::Lister>;
    type Deleter = FaultWrapper<oio::Deleter>;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(&self, ctx: &OperationContext, path: &str, args: OpCreateDir) -> Result<RpCreateDir> {
        let lost = self.before(&[Fault::Error, Fault::Latency, Fault::LostResponse]).await?;
        let r = self.inner.create_dir(ctx, path, args).await?;
        if lost.is_some() { Err(injected("response lost", true)) } else { Ok(r) }
    }

    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> Result<RpStat> {
        // A stat changes nothing, so it has no response to lose.
        self.before(&[Fault::Error, Fault::Latency]).await?;
        self.inner.stat(ctx, path, args).await
    }

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<Self::Reader> {
        self.inner.read(ctx, path, args).map(|r| FaultWrapper::new(r, &self.state))
    }

    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> Result<Self::Writer> {
        self.inner.write(ctx, path, args).map(|w| FaultWrapper::new(w, &self.state))
    }

    fn copy(&self, ctx: &OperationContext, from: &str, to: &str, args: OpCopy) -> Result<Self::Copier> {
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(&self, ctx: &OperationContext, to: &str, args: OpCompose) -> Result<Self::Composer> {
        self.inner.compose(ctx, to, args)
    }

    async fn rename(&self, ctx: &OperationContext, from: &str, to: &str, args: OpRename) -> Result<RpRename> {
        let lost = self.before(&[Fault::Error, Fault::Latency, Fault::LostResponse]).await?;
        let r = self.inner.rename(ctx, from, to, args).await?;
        // Not temporary: a retried rename would find its source gone, as a real client
        // whose answer was lost does.
        if lost.is_some() { Err(injected("response lost after rename", false)) } else { Ok(r) }
    }

    async fn restore(&self, ctx: &OperationContext, path: &str, args: OpRestore) -> Result<RpRestore> {
        self.inner.restore(ctx, path, args).await
    }

    fn delete(&self, ctx: &OperationContext) -> Result<Self::Deleter> {
        self.inner.delete(ctx).map(|d| FaultWrapper::new(d, &self.state))
    }

    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> Result<Self::Lister> {
        self.inner.list(ctx, path, args).map(|l| FaultWrapper::new(l, &self.state))
    }

    async fn presign(&self, ctx: &OperationContext, path: &str, args: OpPresign) -> Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

#[doc(hidden)]
pub(crate) struct FaultWrapper<R> {
    inner: R,
    state: Arc<FaultState>,
    /// A stream that delivered a short piece: its connection is gone.
    broken: bool,
}

impl<R> FaultWrapper<R> {
    fn new(inner: R, state: &Arc<FaultState>) -> FaultWrapper<R> {
        FaultWrapper { inner, state: state.clone(), broken: false }
    }
}

impl<R: oio::ReadStream> oio::ReadStream for FaultWrapper<R> {
    async fn read(&mut self) -> Result<Buffer> {
        if self.broken {
            return Err(injected("connection reset after a short read", true));
        }
        match self.state.draw(&[Fault::Error, Fault::Latency, Fault::Short]) {
            Some(Fault::Error) => Err(injected("connection reset while reading", true)),
            // The connection drops in the middle of a piece: the piece is lost and the
            // stream fails. (Delivering half of it first, as a real reset may, makes
            // OpenDAL 0.59.5's retrying reader panic on S3 — "BytesRange::advance
            // underflow" — so that variant waits for an upstream fix; `broken` keeps
            // the stream failed after it.)
            Some(Fault::Short) => {
                let _ = self.inner.read().await?;
                self.broken = true;
                Err(injected("connection reset in the middle of a piece", true))
            }
            Some(Fault::Latency) => {
                self.state.delay().await;
                self.inner.read().await
            }
            _ => self.inner.read().await,
        }
    }
}

impl<R: oio::Read> oio::Read for FaultWrapper<R> {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        if self.state.draw(&[Fault::Error]).is_some() {
            return Err(injected("read request failed", true));
        }
        let (rp, stream) = self.inner.open(range).await?;
        Ok((rp, Box::new(FaultWrapper::new(stream, &self.state)) as Box<dyn oio::ReadStreamDyn>))
    }

    async fn read(&self, range: BytesRange) -> Result<(RpRead, Buffer)> {
        match self.state.draw(&[Fault::Error, Fault::Latency, Fault::Short]) {
            Some(Fault::Error) => Err(injected("read request failed", true)),
            Some(Fault::Latency) => {
                self.state.delay().await;
                self.inner.read(range).await
            }
            // A bounded read that comes back short is caught by its length, as HTTP
            // clients catch a body shorter than announced.
            Some(Fault::Short) => {
                let _ = self.inner.read(range).await?;
                Err(injected("response body shorter than announced", true))
            }
            _ => self.inner.read(range).await,
        }
    }
}

impl<R: oio::Write> oio::Write for FaultWrapper<R> {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        match self.state.draw(&[Fault::Error, Fault::Latency, Fault::Torn]) {
            Some(Fault::Error) => Err(injected("connection reset while writing", true)),
            Some(Fault::Torn) => {
                let half = bs.len() / 2;
                self.inner.write(bs.slice(0..half)).await?;
                Err(injected("connection reset in the middle of a write", false))
            }
            Some(Fault::Latency) => {
                self.state.delay().await;
                self.inner.write(bs).await
            }
            _ => self.inner.write(bs).await,
        }
    }

    async fn copy_from(&mut self, path: &str, args: OpRead, range: BytesRange) -> Result<()> {
        self.inner.copy_from(path, args, range).await
    }

    async fn close(&mut self) -> Result<Metadata> {
        match self.state.draw(&[Fault::Error, Fault::LostResponse]) {
            Some(Fault::Error) => Err(injected("connection reset before the write completed", true)),
            Some(Fault::LostResponse) => {
                self.inner.close().await?;
                Err(injected("response lost after the write completed", false))
            }
            _ => self.inner.close().await,
        }
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

impl<R: oio::List> oio::List for FaultWrapper<R> {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        match self.state.draw(&[Fault::Error, Fault::Latency]) {
            Some(Fault::Error) => Err(injected("listing failed", true)),
            Some(Fault::Latency) => {
                self.state.delay().await;
                self.inner.next().await
            }
            _ => self.inner.next().await,
        }
    }
}

impl<R: oio::Delete> oio::Delete for FaultWrapper<R> {
    async fn delete(&mut self, path: &str, args: OpDelete) -> Result<()> {
        match self.state.draw(&[Fault::Error, Fault::LostResponse]) {
            Some(Fault::Error) => Err(injected("delete request failed", true)),
            Some(Fault::LostResponse) => {
                self.inner.delete(path, args).await?;
                Err(injected("response lost after delete", true))
            }
            _ => self.inner.delete(path, args).await,
        }
    }

    async fn close(&mut self) -> Result<()> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_rates_hold() {
        assert_eq!(FaultSpec::parse("0.1"), Some(FaultSpec { per_million: 100_000, seed: 0x5eed }));
        assert_eq!(FaultSpec::parse("0.25:7"), Some(FaultSpec { per_million: 250_000, seed: 7 }));
        assert_eq!(FaultSpec::parse("0.9"), None);
        assert_eq!(FaultSpec::parse("x"), None);
        let layer = FaultLayer::new(FaultSpec { per_million: 100_000, seed: 1 });
        let hits = (0..100_000).filter(|_| layer.state.draw(&[Fault::Error]).is_some()).count();
        assert!((9_000..11_000).contains(&hits), "{hits}");
        assert_eq!(layer.state.injected.load(Ordering::Relaxed), hits as u64);
    }
}
