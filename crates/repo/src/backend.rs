//! The storage boundary: a blocking facade over one OpenDAL `Operator` and one Tokio
//! runtime. Everything above this file is synchronous; OpenDAL's async API stays here.

use std::fmt;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};
use serde::Serialize;
use thiserror::Error;

use super::faults::{FaultLayer, FaultState};
use super::location::{BackendOptions, KnownHosts, Location};
use super::object_bytes::ObjectBytes;
use super::pacer::Pacer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// What kind of storage failure a [`BackendError`] is; decides the exit code and whether retrying can help.
pub enum BackendErrorKind {
    /// The object (or the repository's root) does not exist.
    NotFound,
    /// The server or file system refused access.
    PermissionDenied,
    /// The object exists already.
    AlreadyExists,
    /// The storage is full (no space left, quota exceeded).
    StorageFull,
    /// A failure that might heal (timeouts, throttling, 5xx), still failing after the retries.
    Temporary,
    /// Invalid configuration and everything else that will not heal by retrying.
    Other,
}

#[derive(Clone, Debug, Error)]
#[error("{backend}: cannot {op}{}{path}: {message}", if path.is_empty() { "" } else { " " })]
/// A failed storage request, naming the backend, the operation and the object.
pub struct BackendError {
    /// The backend's name: its repository string (`local:/srv/repo`, `s3://bucket/prefix` …).
    pub backend: String,
    /// The operation (`read`, `write`, `list` …).
    pub op: &'static str,
    /// The object's path in the repository.
    pub path: String,
    /// What kind of failure.
    pub kind: BackendErrorKind,
    /// The storage's own message, cleaned of library noise.
    pub message: String,
}

/// Requests and bytes that crossed the storage boundary.
#[derive(Debug, Default)]
pub struct Counters {
    /// Read requests.
    pub reads: AtomicU64,
    /// Write requests.
    pub writes: AtomicU64,
    /// List requests.
    pub lists: AtomicU64,
    /// Stat requests.
    pub stats: AtomicU64,
    /// Delete requests.
    pub deletes: AtomicU64,
    /// Bytes written.
    pub bytes_up: AtomicU64,
    /// Bytes read.
    pub bytes_down: AtomicU64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
/// A snapshot of [`Counters`], for reports and `--json`.
pub struct RequestStats {
    /// Read requests.
    pub reads: u64,
    /// Write requests.
    pub writes: u64,
    /// List requests.
    pub lists: u64,
    /// Stat requests.
    pub stats: u64,
    /// Delete requests.
    pub deletes: u64,
    /// Bytes written.
    pub bytes_up: u64,
    /// Bytes read.
    pub bytes_down: u64,
    /// Storage faults injected for a test (`VAULT_DEBUG_FAULTS`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faults_injected: Option<u64>,
}

/// One listed object: its path relative to the repository root and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// Its path in the repository.
    pub path: String,
    /// Its size as the storage reports it.
    pub size: u64,
}

#[derive(Clone)]
/// The repository's storage: local disk, SFTP, S3, WebDAV, Azure Blob or memory through OpenDAL, with timeouts, retries, atomic writes and request counters.
pub struct Backend {
    op: Operator,
    rt: Arc<tokio::runtime::Runtime>,
    name: String,
    counters: Arc<Counters>,
    /// Files, SFTP and WebDAV are written in place, so writes go to `tmp/` and are renamed.
    rename_writes: bool,
    /// Creating a file fails when the name exists (local disks, SFTP's `O_EXCL`); a
    /// WebDAV `PUT` replaces what is there.
    exclusive_create: bool,
    /// The backend can rename (local, SFTP), so an object can be written piece by piece
    /// under a temporary name ([`StreamingWrite`]).
    streams: bool,
    /// Called before every write, delete and listing (tests pause or fail operations here
    /// to prove the order of a protocol's steps).
    hook: Option<Hook>,
    /// A local repository's root directory ([`Backend::write_new`] links files into place).
    local_root: Option<std::path::PathBuf>,
    /// Written into the names of temporary files (the writer's announcement), so that
    /// the leftovers of a writer that died can be told apart and removed.
    tmp_tag: Arc<parking_lot::Mutex<Option<String>>>,
    /// Injected faults, when a test asked for them (`VAULT_DEBUG_FAULTS`).
    faults: Option<Arc<FaultState>>,
    /// The longest any one request may take, retries included (see [`Backend::wait`]).
    ceiling: Duration,
    /// `--limit-upload`: bytes written wait for it.
    up: Option<Arc<Pacer>>,
    /// Packs a writer uploads at once.
    upload_threads: usize,
    /// Ranges a restore reads at once.
    download_threads: usize,
    /// Remote reads are copied into buffers of their own as they arrive (one per range,
    /// one per 4 MiB piece of a whole pack): every piece the service hands over would pin
    /// the buffer it was cut from (SFTP's reader reserves 2 MiB for each reply of at most
    /// 256 KiB), and a restore's range arrives in one buffer it may decrypt in place.
    copy_reads: bool,
    /// `--limit-download`: bytes read wait for it.
    down: Option<Arc<Pacer>>,
}

/// Reads from remote storage this long or longer go as several requests at once (see
/// [`Backend::read_range_parts`]); a restore's ranges stay below it and arrive whole.
const SPLIT_READS_FROM: u64 = 8 << 20;
/// Pieces of such a read (2 MiB pieces, 8 at once, measured no faster than these).
const PARALLEL_READ_PIECE: u64 = 4 << 20;
/// How many of them are in flight at once.
const PARALLEL_READS_PER_OBJECT: usize = 4;

/// See [`Backend::with_hook`]: `(operation, path)`; an `Err` fails the operation.
pub type Hook = Arc<dyn Fn(&'static str, &str) -> Result<(), String> + Send + Sync>;

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Backend({})", self.name)
    }
}

/// Whether opening may create the repository's root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The root must exist already.
    Existing,
    /// Create the root (for `init`).
    Create,
}

impl Backend {
    /// Opens the storage at `location`.
    pub fn open(location: &Location, options: &BackendOptions, mode: OpenMode) -> Result<Backend, BackendError> {
        let name = location.to_string();
        let fail = |op: &'static str, e: String| BackendError {
            backend: name.clone(),
            op,
            path: String::new(),
            kind: BackendErrorKind::Other,
            message: e,
        };
        let mut local_root = None;
        let op = match location {
            Location::Local(path) => {
                let root = absolute(path).map_err(|e| fail("resolve", e.to_string()))?;
                local_root = Some(root.clone());
                match std::fs::metadata(&root) {
                    Ok(m) if !m.is_dir() => return Err(fail("open", "not a directory".into())),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && mode == OpenMode::Existing => {
                        return Err(BackendError {
                            backend: name,
                            op: "open",
                            path: String::new(),
                            kind: BackendErrorKind::NotFound,
                            message: "no such directory".into(),
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        // A new repository is private to its owner: its key files allow an
                        // offline password search, its sizes tell what changed when.
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o700)
                            .create(&root)
                            .map_err(|e| fail("create", e.to_string()))?;
                    }
                    Err(e) => return Err(fail("open", e.to_string())),
                }
                let root_s = root.to_str().ok_or_else(|| fail("open", "repository path is not valid UTF-8".into()))?;
                // Writes go to tmp/ and are renamed into place after fsync (OpenDAL's fs
                // writer syncs on close): a crash never leaves a partial file under a
                // final name.
                Operator::new(opendal::services::Fs::default().root(root_s)).map_err(|e| fail("open", e.to_string()))?
            }
            Location::Sftp { user, host, port, path } => {
                let mut b = opendal::services::Sftp::default()
                    .endpoint(&format!("ssh://{host}:{port}"))
                    .root(path)
                    .known_hosts_strategy(match options.sftp_known_hosts {
                        KnownHosts::Strict => "strict",
                        KnownHosts::AcceptNew => "add",
                        KnownHosts::Accept => "accept",
                    });
                if let Some(u) = user {
                    b = b.user(u);
                }
                if let Some(k) = &options.sftp_key {
                    let k = k.to_str().ok_or_else(|| fail("open", "sftp.key path is not valid UTF-8".into()))?;
                    b = b.key(k);
                }
                Operator::new(b).map_err(|e| fail("open", e.to_string()))?
            }
            Location::S3 { bucket, prefix } => {
                let (Some(key), Some(secret)) = (&options.s3_access_key_id, &options.s3_secret_access_key) else {
                    return Err(fail(
                        "open",
                        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
                    ));
                };
                let mut b = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(options.s3_region.as_deref().unwrap_or("us-east-1"))
                    .access_key_id(key)
                    .secret_access_key(secret)
                    .disable_config_load()
                    .disable_ec2_metadata();
                if let Some(e) = &options.s3_endpoint {
                    b = b.endpoint(e);
                }
                if let Some(t) = &options.s3_session_token {
                    b = b.session_token(t);
                }
                Operator::new(b).map_err(|e| fail("open", e.to_string()))?
            }
            Location::WebDav { endpoint, user, path } => {
                open_webdav(endpoint, user, path, options).map_err(|e| fail("open", e))?
            }
            Location::Azure { container, prefix } => {
                open_azure(container, prefix, options).map_err(|e| fail("open", e))?
            }
            Location::Memory(_) => {
                Operator::new(opendal::services::Memory::default()).map_err(|e| fail("open", e.to_string()))?
            }
        };
        let timeout = Duration::from_secs(options.timeout_secs.unwrap_or(15));
        // Injected faults sit below the timeout and retry layers, where real ones arise.
        let mut faults = None;
        let op = match options.debug_faults {
            Some(spec) => {
                let layer = FaultLayer::new(spec);
                faults = Some(layer.injected());
                op.layer(layer)
            }
            None => op,
        };
        let op = op
            .layer(TimeoutLayer::new().with_timeout(timeout).with_io_timeout(timeout.max(Duration::from_secs(30))))
            // Only errors OpenDAL marks temporary (timeouts, 5xx, resets) are retried.
            .layer(RetryLayer::new().with_max_times(2).with_jitter().with_min_delay(Duration::from_millis(300)));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vault-io")
            .enable_all()
            .build()
            .map_err(|e| fail("start I/O runtime", e.to_string()))?;
        // A WebDAV server may write a PUT in place (RFC 4918 leaves it open), so objects
        // go to tmp/ and are moved into place, as on SFTP.
        let rename_writes = matches!(location, Location::Local(_) | Location::Sftp { .. } | Location::WebDav { .. });
        let streams = matches!(location, Location::Local(_) | Location::Sftp { .. });
        // A local read costs no round trip: a reader per core and one more. Remote ones
        // hold a range each (up to 4 MiB); an SFTP range is a chain of 256 KiB requests,
        // each waiting a round trip, so more of them are in flight.
        let download_threads = options.download_threads.unwrap_or(match location {
            Location::Local(_) => 3,
            Location::Sftp { .. } => 16,
            _ => 12,
        });
        Ok(Backend {
            op,
            rt: Arc::new(rt),
            name,
            counters: Arc::default(),
            rename_writes,
            exclusive_create: matches!(location, Location::Local(_) | Location::Sftp { .. }),
            streams,
            hook: None,
            local_root,
            tmp_tag: Arc::default(),
            faults,
            // Generous: a whole pack on a slow link is one request. (`read_afresh` takes
            // the request timeout back out of it.)
            ceiling: timeout * 40,
            up: options.limit_upload.map(|r| Arc::new(Pacer::new(r))),
            upload_threads: options.upload_threads.unwrap_or(DEFAULT_UPLOAD_THREADS),
            download_threads,
            copy_reads: !matches!(location, Location::Local(_) | Location::Memory(_)),
            down: options.limit_download.map(|r| Arc::new(Pacer::new(r))),
        })
    }

    /// Whether the repository is a local directory, where a read costs no round trip.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// How many ranges a restore reads at once (`-o download-threads=N`).
    pub fn download_threads(&self) -> usize {
        self.download_threads
    }

    /// How many packs a writer uploads at once (`-o upload-threads=N`).
    pub fn upload_threads(&self) -> usize {
        self.upload_threads
    }

    /// This backend, calling `hook` before every write (`"write"`, with the final path),
    /// delete (`"delete"`) and listing (`"list"`).
    pub fn with_hook(mut self, hook: Hook) -> Backend {
        self.hook = Some(hook);
        self
    }

    /// Runs one storage request to its end, within a hard ceiling: OpenDAL's timeout and
    /// retry layers bound each attempt, but a request that never answers must not hang
    /// vault whatever happens below (seen once in ~250 runs under injected faults).
    ///
    /// A panic inside the storage library (OpenDAL 0.59.5's retrying reader panics on
    /// some resumed S3 reads: "BytesRange::advance underflow") becomes an error of this
    /// request, not the end of vault.
    fn wait<T>(&self, fut: impl std::future::Future<Output = opendal::Result<T>>) -> opendal::Result<T> {
        let ceiling = self.ceiling;
        let run = std::panic::AssertUnwindSafe(|| {
            self.rt.block_on(async move {
                tokio::time::timeout(ceiling, fut).await.unwrap_or_else(|_| {
                    Err(opendal::Error::new(ErrorKind::Unexpected, format!("no answer within {} s", ceiling.as_secs()))
                        .set_persistent())
                })
            })
        });
        std::panic::catch_unwind(run).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(opendal::Error::new(ErrorKind::Unexpected, format!("the storage library failed: {what}")))
        })
    }

    /// A read, started afresh up to twice more when it fails for a reason other than a
    /// missing object or a refusal. OpenDAL retries within a read by resuming the
    /// stream; on S3 a resumed stream sometimes ends in "reader got too much data",
    /// which a new request does not.
    ///
    /// Only a read that failed quickly starts again: one that took longer than a request
    /// timeout has met a server that does not answer, and OpenDAL has retried it already.
    fn read_afresh<T>(&self, path: &str, read: impl Fn() -> opendal::Result<T>) -> Result<T, BackendError> {
        let mut attempt = 0;
        loop {
            let started = std::time::Instant::now();
            match read() {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let err = self.err("read", path, e);
                    attempt += 1;
                    if attempt > 2
                        || started.elapsed() > self.ceiling / 40
                        || matches!(err.kind, BackendErrorKind::NotFound | BackendErrorKind::PermissionDenied)
                    {
                        return Err(err);
                    }
                }
            }
        }
    }

    fn call_hook(&self, op: &'static str, path: &str) -> Result<(), BackendError> {
        match &self.hook {
            Some(h) => h(op, path).map_err(|message| BackendError {
                backend: self.name.clone(),
                op,
                path: path.to_string(),
                kind: BackendErrorKind::Other,
                message,
            }),
            None => Ok(()),
        }
    }

    /// The backend's name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Requests made so far.
    pub fn stats(&self) -> RequestStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestStats {
            reads: g(&c.reads),
            writes: g(&c.writes),
            lists: g(&c.lists),
            stats: g(&c.stats),
            deletes: g(&c.deletes),
            bytes_up: g(&c.bytes_up),
            bytes_down: g(&c.bytes_down),
            faults_injected: self.faults.as_ref().map(|f| g(&f.injected)),
        }
    }

    fn err(&self, op: &'static str, path: &str, e: opendal::Error) -> BackendError {
        let status = http_status(&e);
        let kind = match e.kind() {
            ErrorKind::NotFound => BackendErrorKind::NotFound,
            ErrorKind::PermissionDenied => BackendErrorKind::PermissionDenied,
            // OpenDAL's WebDAV service leaves 401 unclassified.
            _ if status.as_deref() == Some("401") => BackendErrorKind::PermissionDenied,
            ErrorKind::AlreadyExists => BackendErrorKind::AlreadyExists,
            _ if is_storage_full(&e) => BackendErrorKind::StorageFull,
            _ if e.is_temporary() || e.kind() == ErrorKind::RateLimited => BackendErrorKind::Temporary,
            _ => BackendErrorKind::Other,
        };
        let message = short_message(&e, status.as_deref(), &self.name);
        BackendError { backend: self.name.clone(), op, path: path.to_string(), kind, message }
    }

    /// A whole object, in one piece.
    pub fn read(&self, path: &str) -> Result<Bytes, BackendError> {
        Ok(self.read_parts(path)?.to_bytes())
    }

    /// A whole object, in the pieces the backend delivered (for packs, see [`ObjectBytes`]).
    pub(crate) fn read_parts(&self, path: &str) -> Result<ObjectBytes, BackendError> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let buf = self.read_afresh(path, || self.wait(self.op.read(path)))?;
        self.counters.bytes_down.fetch_add(buf.len() as u64, Ordering::Relaxed);
        // A whole object's size is known once it is read: it waits afterwards.
        pace(&self.down, buf.len());
        Ok(ObjectBytes::new(buf))
    }

    /// Reads `len` bytes of `path` from `offset`; fewer bytes than asked for is an error.
    pub fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes, BackendError> {
        Ok(self.read_range_parts(path, offset, len)?.to_bytes())
    }

    /// Exactly `len` bytes at `offset`, in the pieces the backend delivered. A longer
    /// object is not read past them; a shorter one is an error.
    pub(crate) fn read_range_parts(&self, path: &str, offset: u64, len: u64) -> Result<ObjectBytes, BackendError> {
        // A large read from remote storage goes as several range requests at once: one
        // stream is bound by the round trip and one connection's window, not by the link.
        let split = self.local_root.is_none() && len >= SPLIT_READS_FROM;
        let piece = if split { PARALLEL_READ_PIECE } else { len.max(1) };
        let requests = len.div_ceil(piece).max(1);
        self.counters.reads.fetch_add(requests, Ordering::Relaxed);
        pace(&self.down, len as usize);
        let buf = self.read_afresh(path, || {
            let buf = if self.copy_reads {
                // Each piece is copied into a buffer of its own as it arrives, and several
                // are in flight at once for a large read.
                let pieces = (0..requests).map(|i| {
                    let start = offset + i * piece;
                    let end = (start + piece).min(offset + len);
                    async move {
                        // The length comes from the index; what arrives decides the rest.
                        let mut into = Vec::with_capacity((end - start).min(16 << 20) as usize);
                        self.op.reader(path).await?.read_into(&mut into, start..end).await?;
                        Ok::<_, opendal::Error>(Bytes::from(into))
                    }
                });
                self.wait(async {
                    use futures::{StreamExt, TryStreamExt};
                    let parts: Vec<Bytes> =
                        futures::stream::iter(pieces).buffered(PARALLEL_READS_PER_OBJECT).try_collect().await?;
                    Ok(match <[Bytes; 1]>::try_from(parts) {
                        Ok([one]) => opendal::Buffer::from(one),
                        Err(parts) => opendal::Buffer::from(parts),
                    })
                })?
            } else {
                let read = self.op.read_with(path).range(offset..offset + len);
                let read = if split {
                    read.concurrent(PARALLEL_READS_PER_OBJECT).chunk(PARALLEL_READ_PIECE as usize)
                } else {
                    read
                };
                self.wait(async { read.await })?
            };
            self.counters.bytes_down.fetch_add(buf.len() as u64, Ordering::Relaxed);
            if (buf.len() as u64) != len {
                return Err(opendal::Error::new(
                    ErrorKind::Unexpected,
                    format!("short read: {} of {len} bytes at offset {offset}", buf.len()),
                ));
            }
            Ok(buf)
        })?;
        Ok(ObjectBytes::new(buf))
    }

    /// Writes a whole object at once. On fs this is temp file + fsync + rename; on object
    /// storage a single PUT, which is atomic.
    pub fn write(&self, path: &str, data: Vec<u8>) -> Result<(), BackendError> {
        self.call_hook("write", path)?;
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
        pace(&self.up, data.len());
        if !self.rename_writes {
            self.wait(self.op.write(path, data)).map_err(|e| self.err("write", path, e))?;
            return Ok(());
        }
        let tmp = self.temp_name(path)?;
        self.wait(self.op.write(&tmp, data)).map_err(|e| self.write_err(&tmp, e))?;
        self.rename_into_place(&tmp, path)
    }

    /// Writes an object only if nothing exists under its name yet; `Ok(false)` when
    /// something does (and nothing was written). A local disk links a complete temporary
    /// file into place (the link fails if the name exists); SFTP opens with `O_EXCL` (the
    /// content then arrives in place, so a crash can leave it short); S3 and Azure send
    /// `If-None-Match: *`, which some servers ignore; WebDAV moves a complete temporary
    /// file into place, replacing a rival's. Each checks for the name first.
    /// Whether the create is truly exclusive: [`Backend::creates_exclusively`].
    pub(crate) fn write_new(&self, path: &str, data: Vec<u8>) -> Result<bool, BackendError> {
        self.call_hook("write", path)?;
        if self.stat(path)?.is_some() {
            return Ok(false);
        }
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
        pace(&self.up, data.len());
        if let Some(root) = &self.local_root {
            let tmp = self.temp_name(path)?;
            self.wait(self.op.write(&tmp, data)).map_err(|e| self.write_err(&tmp, e))?;
            self.set_local_mode(&tmp);
            let linked = std::fs::hard_link(root.join(&tmp), root.join(path));
            let _ = std::fs::remove_file(root.join(&tmp));
            return match linked {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(BackendError {
                    backend: self.name.clone(),
                    op: "write",
                    path: path.to_string(),
                    kind: BackendErrorKind::Other,
                    message: e.to_string(),
                }),
            };
        }
        let written = if self.op.info().capability().write_with_if_not_exists {
            self.wait(async { self.op.write_with(path, data).if_not_exists(true).await })
        } else if self.rename_writes && !self.exclusive_create {
            // Not exclusive (see creates_exclusively), but never seen half-written.
            let tmp = self.temp_name(path)?;
            self.wait(self.op.write(&tmp, data)).map_err(|e| self.write_err(&tmp, e))?;
            return self.rename_into_place(&tmp, path).map(|()| true);
        } else {
            self.wait(self.op.write(path, data))
        };
        match written {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(false),
            Err(e) => Err(self.err("write", path, e)),
        }
    }

    /// Whether [`Backend::write_new`] can never replace an object another client wrote
    /// at the same moment. Local disks and SFTP can, WebDAV cannot (OpenDAL moves with
    /// `Overwrite: T`); an S3 or Azure server is asked by writing a probe object twice
    /// (Garage, for one, ignores `If-None-Match`).
    pub(crate) fn creates_exclusively(&self) -> Result<bool, BackendError> {
        if self.exclusive_create {
            return Ok(true);
        }
        if !self.op.info().capability().write_with_if_not_exists {
            return Ok(false);
        }
        let probe = self.temp_name("tmp")?;
        let write =
            |data: &'static [u8]| self.wait(async { self.op.write_with(&probe, data).if_not_exists(true).await });
        write(b"1").map_err(|e| self.err("write", &probe, e))?;
        let second = write(b"2");
        let _ = self.wait(self.op.delete(&probe));
        match second {
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(self.err("write", &probe, e)),
        }
    }

    /// Names this process's temporary files `tmp/<tag>-<random>` from now on (`None`:
    /// `tmp/<random>`). The tag is the writer's announcement id, so that when it dies,
    /// the next writer on its host can remove what it left.
    pub(crate) fn set_tmp_tag(&self, tag: Option<String>) {
        *self.tmp_tag.lock() = tag;
    }

    fn temp_name(&self, path: &str) -> Result<String, BackendError> {
        let mut r = [0u8; 16];
        getrandom::fill(&mut r).map_err(|e| BackendError {
            backend: self.name.clone(),
            op: "write",
            path: path.to_string(),
            kind: BackendErrorKind::Other,
            message: e.to_string(),
        })?;
        Ok(match self.tmp_tag.lock().as_deref() {
            Some(tag) => format!("tmp/{tag}-{}", hex::encode(r)),
            None => format!("tmp/{}", hex::encode(r)),
        })
    }

    fn write_err(&self, tmp: &str, e: opendal::Error) -> BackendError {
        let mut err = self.err("write", tmp, e);
        if err.kind == BackendErrorKind::NotFound {
            err.message.push_str(" (is the repository path a directory on the server?)");
        }
        err
    }

    /// On a local disk, gives a finished temporary file the repository's file mode:
    /// readable by the owner, and by the group when the repository's root is.
    fn set_local_mode(&self, tmp: &str) {
        use std::os::unix::fs::PermissionsExt;
        if let Some(root) = &self.local_root {
            let group = std::fs::metadata(root).map(|m| m.permissions().mode() & 0o040).unwrap_or(0);
            let _ = std::fs::set_permissions(root.join(tmp), std::fs::Permissions::from_mode(0o600 | group));
        }
    }

    fn rename_into_place(&self, tmp: &str, path: &str) -> Result<(), BackendError> {
        self.set_local_mode(tmp);
        if let Err(e) = self.wait(self.op.rename(tmp, path)) {
            // Names are content-addressed: if the target appeared meanwhile, it holds the
            // same bytes, and the write has succeeded.
            let exists = self.stat(path).ok().flatten().is_some();
            let _ = self.wait(self.op.delete(tmp));
            if !exists {
                return Err(self.err("rename", path, e));
            }
        }
        Ok(())
    }

    /// Whether [`Backend::start_streaming_write`] is available.
    pub(crate) fn can_stream(&self) -> bool {
        self.streams
    }

    /// Starts an object that is written piece by piece and named when it is complete.
    pub(crate) fn start_streaming_write(&self) -> Result<StreamingWrite, BackendError> {
        let tmp = self.temp_name("tmp")?;
        let writer = self.wait(self.op.writer(&tmp)).map_err(|e| self.write_err(&tmp, e))?;
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        Ok(StreamingWrite { backend: self.clone(), tmp, writer: Some(writer) })
    }

    /// Size of an object, or `None` when it does not exist.
    pub fn stat(&self, path: &str) -> Result<Option<u64>, BackendError> {
        self.counters.stats.fetch_add(1, Ordering::Relaxed);
        match self.wait(self.op.stat(path)) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("stat", path, e)),
        }
    }

    /// Every object below `dir` (recursively), with sizes. A missing directory lists empty.
    pub fn list(&self, dir: &str) -> Result<Vec<ListEntry>, BackendError> {
        self.call_hook("list", dir)?;
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        // OpenDAL emulates a recursive listing where the service has none (WebDAV, SFTP)
        // with a lister whose state a retried or timed-out step corrupts: a directory
        // taken off its queue when a request failed is skipped silently, so a pack went
        // missing from listings under load. Walk those one directory per request instead;
        // a failed request is retried whole.
        let native = self.op.info().capability().list_with_recursive;
        let listed = if native {
            self.wait(async { self.op.list_with(&prefix).recursive(true).await })
        } else {
            self.wait(list_walk(&self.op, &prefix))
        };
        let entries = match listed {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", &prefix, e)),
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if e.metadata().is_dir() || e.path().ends_with('/') {
                continue;
            }
            let path = e.path().to_string();
            let size = e.metadata().content_length();
            out.push(ListEntry { path, size });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes `path`.
    pub fn delete(&self, path: &str) -> Result<(), BackendError> {
        self.call_hook("delete", path)?;
        self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        self.wait(self.op.delete(path)).map_err(|e| self.err("delete", path, e))
    }
}

/// Every object below `prefix`, listed one directory per request (8 at a time).
async fn list_walk(op: &Operator, prefix: &str) -> opendal::Result<Vec<opendal::Entry>> {
    let mut pending = vec![prefix.to_string()];
    let mut running = tokio::task::JoinSet::new();
    let mut out = Vec::new();
    loop {
        while running.len() < 8
            && let Some(dir) = pending.pop()
        {
            let op = op.clone();
            running.spawn(async move {
                let listed = op.list(&dir).await;
                (dir, listed)
            });
        }
        let Some(done) = running.join_next().await else { break };
        let (dir, listed) = done.map_err(|e| opendal::Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let entries = match listed {
            Ok(v) => v,
            // A directory removed after its parent was listed holds nothing.
            Err(e) if e.kind() == ErrorKind::NotFound && dir != prefix => continue,
            Err(e) => return Err(e),
        };
        for e in entries {
            if e.metadata().is_dir() || e.path().ends_with('/') {
                if e.path() != dir {
                    pending.push(e.path().to_string());
                }
            } else {
                out.push(e);
            }
        }
    }
    Ok(out)
}

#[cfg(feature = "webdav")]
fn open_webdav(
    endpoint: &str,
    user: &Option<String>,
    path: &str,
    options: &BackendOptions,
) -> Result<Operator, String> {
    let mut b = opendal::services::Webdav::default().endpoint(endpoint).root(path);
    if let Some(u) = user.as_ref().or(options.webdav_user.as_ref()) {
        b = b.username(u);
    }
    if let Some(p) = &options.webdav_password {
        b = b.password(p);
    }
    Operator::new(b).map_err(|e| e.to_string())
}

#[cfg(not(feature = "webdav"))]
fn open_webdav(_: &str, _: &Option<String>, _: &str, _: &BackendOptions) -> Result<Operator, String> {
    Err("this vault was built without WebDAV support (cargo feature `webdav`)".into())
}

#[cfg(feature = "azure")]
fn open_azure(container: &str, prefix: &str, options: &BackendOptions) -> Result<Operator, String> {
    let Some(account) = &options.azure_account else {
        return Err("no Azure account: set AZURE_ACCOUNT_NAME and AZURE_ACCOUNT_KEY (or AZURE_ACCOUNT_SAS)".into());
    };
    let Some(endpoint) = &options.azure_endpoint else {
        return Err("no Azure endpoint: set -o azure.endpoint=URL".into());
    };
    let mut b = opendal::services::Azblob::default()
        .container(container)
        .root(&format!("/{prefix}"))
        .endpoint(endpoint)
        .account_name(account);
    match (&options.azure_key, &options.azure_sas) {
        (Some(k), _) => b = b.account_key(k),
        (None, Some(sas)) => b = b.sas_token(sas),
        (None, None) => return Err("no Azure credentials: set AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS".into()),
    }
    Operator::new(b).map_err(|e| e.to_string())
}

#[cfg(not(feature = "azure"))]
fn open_azure(_: &str, _: &str, _: &BackendOptions) -> Result<Operator, String> {
    Err("this vault was built without Azure Blob support (cargo feature `azure`)".into())
}

/// Packs uploaded at once unless `-o upload-threads=N` says otherwise: enough to hide one
/// request's latency behind the others without holding many packs in memory.
pub const DEFAULT_UPLOAD_THREADS: usize = 3;

/// Waits for a bandwidth limit, if there is one.
fn pace(limit: &Option<Arc<Pacer>>, bytes: usize) {
    if let Some(p) = limit {
        p.pace(bytes as u64);
    }
}

/// An object being written under a temporary name (see [`Backend::start_streaming_write`]).
/// Dropped unfinished, it removes what it wrote.
pub(crate) struct StreamingWrite {
    backend: Backend,
    tmp: String,
    writer: Option<opendal::Writer>,
}

impl StreamingWrite {
    pub fn append(&mut self, data: Vec<u8>) -> Result<(), BackendError> {
        let b = &self.backend;
        let Some(w) = self.writer.as_mut() else {
            return Err(b.err("write", &self.tmp, opendal::Error::new(ErrorKind::Unexpected, "write after finish")));
        };
        b.counters.bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
        pace(&b.up, data.len());
        b.wait(w.write(data)).map_err(|e| b.write_err(&self.tmp, e))
    }

    /// Completes the object (on a local disk: flushed with fsync) and gives it its name.
    pub fn finish(mut self, path: &str) -> Result<(), BackendError> {
        let b = self.backend.clone();
        if let Some(mut w) = self.writer.take() {
            b.wait(w.close()).map_err(|e| b.write_err(&self.tmp, e))?;
        }
        let tmp = std::mem::take(&mut self.tmp);
        b.call_hook("write", path)?;
        b.rename_into_place(&tmp, path)
    }
}

impl Drop for StreamingWrite {
    fn drop(&mut self) {
        if let Some(mut w) = self.writer.take() {
            let _ = self.backend.rt.block_on(w.abort());
        }
        if !self.tmp.is_empty() {
            let _ = self.backend.rt.block_on(self.backend.op.delete(&self.tmp));
        }
    }
}

/// Out of space on a file system (ENOSPC, EDQUOT) or a server's quota.
fn is_storage_full(e: &opendal::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        {
            return true;
        }
        source = s.source();
    }
    let text = e.to_string();
    ["No space left on device", "Disk quota exceeded", "QuotaExceeded", "InsufficientStorage", "StorageFull"]
        .iter()
        .any(|m| text.contains(m))
}

fn absolute(p: &Path) -> std::io::Result<std::path::PathBuf> {
    if p.is_absolute() { Ok(p.to_path_buf()) } else { Ok(std::env::current_dir()?.join(p)) }
}

/// The HTTP status an OpenDAL error carries in its context, if any.
fn http_status(e: &opendal::Error) -> Option<String> {
    let full = e.to_string();
    let i = full.find("status: ")?;
    full[i + 8..].split(|c: char| !c.is_ascii_digit()).next().filter(|s| !s.is_empty()).map(String::from)
}

/// Where the credentials of the storage named `backend` come from, for a hint.
fn credentials_hint(backend: &str) -> &'static str {
    if backend.starts_with("azure:") {
        "AZURE_ACCOUNT_NAME, AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS"
    } else if backend.starts_with("webdav:") {
        "VAULT_WEBDAV_USER, VAULT_WEBDAV_PASSWORD"
    } else {
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"
    }
}

/// OpenDAL's Display output carries a multi-line context dump; users get one line: what
/// kind of failure, the server's error code and message when it sent one, the HTTP status,
/// and a hint for the usual causes.
fn short_message(e: &opendal::Error, status: Option<&str>, backend: &str) -> String {
    let full = e.to_string();
    let quoted = |key: &str| {
        let start = full.find(&format!("{key}: \""))? + key.len() + 3;
        let end = full[start..].find('"')?;
        Some(full[start..start + end].to_string()).filter(|s| !s.is_empty())
    };
    let mut msg = match e.kind() {
        ErrorKind::NotFound => "not found".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ if status == Some("401") => "permission denied".to_string(),
        ErrorKind::ConfigInvalid => "invalid configuration".to_string(),
        ErrorKind::AlreadyExists => "already exists".to_string(),
        ErrorKind::RateLimited => "rate limited".to_string(),
        ErrorKind::IsADirectory => "is a directory".to_string(),
        ErrorKind::NotADirectory => "not a directory".to_string(),
        _ => "failed".to_string(),
    };
    match (quoted("code"), quoted("message")) {
        (Some(c), Some(m)) => msg.push_str(&format!(": {c}: {m}")),
        (Some(c), None) => msg.push_str(&format!(": {c}")),
        _ => {
            if let Some(src) = std::error::Error::source(e) {
                let src = src.to_string();
                let first = src.lines().next().unwrap_or_default().trim();
                if !first.is_empty() {
                    msg.push_str(&format!(": {first}"));
                }
            } else if status.is_none() && !e.message().is_empty() {
                msg.push_str(&format!(": {}", e.message()));
            }
        }
    }
    if let Some(st) = status {
        msg.push_str(&format!(" (HTTP {st})"));
        let s3 = backend.starts_with("s3:");
        match st {
            "401" | "403" => msg.push_str(&format!("; check the credentials ({})", credentials_hint(backend))),
            "400" if s3 => msg.push_str("; check s3.region and s3.endpoint"),
            "301" if s3 => msg.push_str("; the bucket is in another region: check s3.region"),
            "503" => msg.push_str("; the server is unavailable (in a cluster: too few nodes up)"),
            _ => {}
        }
    }
    if e.is_temporary() || e.is_persistent() {
        msg.push_str(" (gave up after retries)");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_conformance() {
        let b = Backend::open(&Location::Memory("t".into()), &BackendOptions::default(), OpenMode::Create).unwrap();
        assert_eq!(b.stat("a/x").unwrap(), None);
        b.write("a/x", b"hello".to_vec()).unwrap();
        b.write("a/b/y", b"world!".to_vec()).unwrap();
        assert_eq!(&b.read("a/x").unwrap()[..], b"hello");
        assert_eq!(&b.read_range("a/b/y", 1, 3).unwrap()[..], b"orl");
        assert_eq!(b.stat("a/b/y").unwrap(), Some(6));
        let l = b.list("a").unwrap();
        assert_eq!(l, vec![ListEntry { path: "a/b/y".into(), size: 6 }, ListEntry { path: "a/x".into(), size: 5 }]);
        b.write("a/x", b"replaced".to_vec()).unwrap();
        assert_eq!(&b.read("a/x").unwrap()[..], b"replaced");
        b.delete("a/x").unwrap();
        assert_eq!(b.stat("a/x").unwrap(), None);
        assert!(b.list("missing").unwrap().is_empty());
        let e = b.read("a/x").unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::NotFound);
        assert!(e.to_string().contains("a/x"), "{e}");
        assert!(b.stats().writes >= 3);
    }

    #[test]
    fn fs_conformance_and_missing_root() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = Backend::open(&Location::Local(missing.clone()), &BackendOptions::default(), OpenMode::Existing)
            .unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::NotFound);
        assert!(!missing.exists());
        let b = Backend::open(&Location::Local(missing.clone()), &BackendOptions::default(), OpenMode::Create).unwrap();
        b.write("data/ab/cd", vec![1; 100]).unwrap();
        assert_eq!(b.list("data").unwrap(), vec![ListEntry { path: "data/ab/cd".into(), size: 100 }]);
        assert_eq!(b.read_range("data/ab/cd", 90, 10).unwrap(), vec![1; 10]);
        assert!(b.read_range("data/ab/cd", 95, 10).is_err());
        // Nothing is left in the temporary directory after a completed write.
        let tmp: Vec<_> = std::fs::read_dir(missing.join("tmp")).unwrap().collect();
        assert!(tmp.is_empty());
    }
}
