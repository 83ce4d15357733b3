//! Opening, creating and reading a repository.
//!
//! Layout: `config`, `keys/<id>`, `snapshots/<id>`, `index/<id>`, `data/<xx>/<id>`,
//! `tree/<xx>/<id>`, where every `<id>` is the BLAKE3 hash of the file's bytes.

use std::sync::Arc;

use rayon::prelude::*;

use super::backend::{Backend, BackendErrorKind};
use super::cache::Cache;
use super::error::{RepoError, Result};
use super::master_index::{BlobLocation, MasterIndex};
use super::object_bytes::ObjectBytes;
use crate::format::blob::{Compression, Padding};
use crate::format::check_record::CheckRecord;
use crate::format::chunker::{Chunker, ChunkerParams};
use crate::format::config::Config;
use crate::format::crypto::{Keys, SecretKey};
use crate::format::index::IndexFile;
use crate::format::keyfile::{KdfParams, KeyFile, KeyMeta, SALT_LEN, Unwrap};
use crate::format::pack::{self, BlobKind};
use crate::format::snapshot::Snapshot;
use crate::format::tree::Tree;
use crate::format::{BlobId, Id, IndexId, KeyId, PackId, SnapshotId};

/// Snapshots with their ids.
pub type SnapshotList = Vec<(SnapshotId, Snapshot)>;

pub const CONFIG_PATH: &str = "config";
pub const KEYS_DIR: &str = "keys";
pub const SNAPSHOTS_DIR: &str = "snapshots";
pub const INDEX_DIR: &str = "index";
pub const CHECKS_DIR: &str = "checks";
/// Cache directory for tree packs (data packs are never cached).
pub const TREE_PACK_CACHE_DIR: &str = "tree";
const CACHED_DIRS: [&str; 2] = [SNAPSHOTS_DIR, INDEX_DIR];

#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub chunker: ChunkerParams,
    pub compression: Compression,
    pub padding: Padding,
}

#[derive(Debug)]
pub struct Repository {
    backend: Backend,
    keys: Keys,
    config: Config,
    key_id: KeyId,
    cache: Option<Cache>,
}

pub fn pack_path(kind: BlobKind, id: &PackId) -> String {
    let hex = id.to_hex();
    format!("{}/{}/{}", kind.dir(), &hex[..2], hex)
}

fn file_path(dir: &str, id: &Id) -> String {
    format!("{dir}/{id}")
}

/// Ids of the files directly in `dir` whose names are 64 hex digits; other names are not
/// vault's and are ignored.
fn parse_listing(entries: Vec<super::backend::ListEntry>) -> Vec<(Id, u64)> {
    entries
        .into_iter()
        .filter_map(|e| {
            let name = e.path.rsplit('/').next()?;
            if name.len() != 64 {
                return None;
            }
            name.parse::<Id>().ok().map(|id| (id, e.size))
        })
        .collect()
}

impl Repository {
    pub fn init(backend: Backend, password: &[u8], opts: &InitOptions, meta: KeyMeta) -> Result<Repository> {
        if backend.stat(CONFIG_PATH)?.is_some() || !backend.list(KEYS_DIR)?.is_empty() {
            return Err(RepoError::AlreadyExists(backend.name().to_string()));
        }
        let master = SecretKey::random()?;
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)?;
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce)?;
        let kf = KeyFile::wrap(&master, password, opts.kdf, salt, nonce, meta)
            .map_err(|e| RepoError::integrity("new key file", e))?;
        let keys = Keys::from_master(master);
        let mut repo_id = [0u8; 32];
        getrandom::fill(&mut repo_id)?;
        let mut config = Config::new(Id(repo_id));
        config.chunker = opts.chunker;
        config.compression = opts.compression;
        config.padding = opts.padding;
        config.validate().map_err(|e| RepoError::integrity("new config", e))?;
        // Key first, config last: the config's presence is what makes a repository exist.
        let key_bytes = kf.to_json();
        let key_id = KeyId(Id::of_stored_bytes(&key_bytes));
        backend.write(&file_path(KEYS_DIR, &key_id.0), key_bytes)?;
        backend.write(CONFIG_PATH, config.encode(&keys)?)?;
        Ok(Repository { backend, keys, config, key_id, cache: None })
    }

    pub fn open(backend: Backend, password: &[u8]) -> Result<Repository> {
        let name = backend.name().to_string();
        if backend.stat(CONFIG_PATH)?.is_none() {
            return Err(RepoError::NotFound(name));
        }
        let key_ids = parse_listing(backend.list(KEYS_DIR)?);
        if key_ids.is_empty() {
            return Err(RepoError::NoUsableKey { repo: name, reason: "the keys/ directory is empty".into() });
        }
        let mut problems = Vec::new();
        let mut wrong_password = false;
        let mut opened = None;
        for (id, _) in key_ids {
            let path = file_path(KEYS_DIR, &id);
            let bytes = match backend.read(&path) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            // The name check tells a damaged key file apart from a wrong password.
            if Id::of_stored_bytes(&bytes) != id {
                problems.push(format!("key file {path} is damaged (its bytes do not match its name)"));
                continue;
            }
            let kf = match KeyFile::from_json(&bytes) {
                Ok(k) => k,
                Err(e) => {
                    problems.push(format!("key file {path}: {e}"));
                    continue;
                }
            };
            match kf.unwrap_master(password) {
                Ok(keys) => {
                    opened = Some((KeyId(id), keys));
                    break;
                }
                Err(Unwrap::WrongPassword) => wrong_password = true,
                Err(Unwrap::Invalid(e)) => problems.push(format!("key file {path}: {e}")),
            }
        }
        let (key_id, keys) = match opened {
            Some(k) => k,
            None if wrong_password => return Err(RepoError::WrongPassword(name)),
            None => {
                return Err(RepoError::NoUsableKey { repo: name, reason: problems.join("; ") });
            }
        };
        let bytes = backend.read(CONFIG_PATH)?;
        let config = Config::decode(&keys, &bytes).map_err(|e| RepoError::integrity(format!("{name}: config"), e))?;
        Ok(Repository { backend, keys, config, key_id, cache: None })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn chunker(&self) -> Result<Chunker> {
        Chunker::new(self.keys.chunker_key(), self.config.chunker).map_err(|e| RepoError::integrity("config", e))
    }

    /// Writes a content-addressed file into `dir` and returns its id.
    pub fn write_file(&self, dir: &str, bytes: Vec<u8>) -> Result<Id> {
        let id = Id::of_stored_bytes(&bytes);
        self.backend.write(&file_path(dir, &id), bytes)?;
        Ok(id)
    }

    /// Reads a content-addressed file and checks its bytes against its name.
    pub fn read_file(&self, dir: &str, id: &Id) -> Result<Vec<u8>> {
        let cached = self.cache.as_ref().filter(|_| CACHED_DIRS.contains(&dir));
        if let Some(bytes) = cached.and_then(|c| c.get(dir, id)) {
            return Ok(bytes);
        }
        let path = file_path(dir, id);
        let bytes = self.backend.read(&path)?;
        if Id::of_stored_bytes(&bytes) != *id {
            return Err(RepoError::integrity(path, "its bytes do not match its name"));
        }
        if let Some(c) = cached {
            c.put(dir, id, &bytes);
        }
        Ok(bytes.into())
    }

    /// Uses a local cache for snapshots, index files and tree packs from now on.
    pub fn attach_cache(&mut self, cache: Cache) {
        self.cache = Some(cache);
    }

    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// Lists a cached directory and forgets cache entries the repository no longer has.
    fn list_cached(&self, dir: &str) -> Result<Vec<(Id, u64)>> {
        let files = self.list_files(dir)?;
        if let Some(c) = &self.cache {
            c.retain(dir, &files.iter().map(|(id, _)| *id).collect());
        }
        Ok(files)
    }

    /// Stores a freshly written file in the cache too, so the next run needs no download.
    pub fn cache_written(&self, dir: &str, id: &Id, bytes: &[u8]) {
        if let Some(c) = &self.cache {
            c.put(dir, id, bytes);
        }
    }

    pub fn list_files(&self, dir: &str) -> Result<Vec<(Id, u64)>> {
        Ok(parse_listing(self.backend.list(dir)?))
    }

    pub fn read_key_file(&self, id: &KeyId) -> Result<KeyFile> {
        let bytes = self.read_file(KEYS_DIR, &id.0)?;
        KeyFile::from_json(&bytes).map_err(|e| RepoError::integrity(file_path(KEYS_DIR, &id.0), e))
    }

    pub fn list_snapshots(&self) -> Result<Vec<SnapshotId>> {
        Ok(self.list_cached(SNAPSHOTS_DIR)?.into_iter().map(|(id, _)| SnapshotId(id)).collect())
    }

    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let bytes = self.read_file(SNAPSHOTS_DIR, &id.0)?;
        Snapshot::decode(&self.keys, &bytes).map_err(|e| RepoError::integrity(file_path(SNAPSHOTS_DIR, &id.0), e))
    }

    /// Loads every snapshot; damaged ones are returned apart so a listing can go on.
    pub fn load_all_snapshots(&self) -> Result<(SnapshotList, Vec<(SnapshotId, RepoError)>)> {
        let ids = self.list_snapshots()?;
        let results: Vec<_> = ids.par_iter().map(|id| (*id, self.load_snapshot(id))).collect();
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for (id, r) in results {
            match r {
                Ok(s) => ok.push((id, s)),
                Err(e @ RepoError::Backend(_)) => return Err(e),
                Err(e) => bad.push((id, e)),
            }
        }
        Ok((ok, bad))
    }

    pub fn save_snapshot(&self, s: &Snapshot) -> Result<SnapshotId> {
        Ok(SnapshotId(self.write_cached(SNAPSHOTS_DIR, s.encode(&self.keys)?)?))
    }

    fn write_cached(&self, dir: &str, bytes: Vec<u8>) -> Result<Id> {
        let id = Id::of_stored_bytes(&bytes);
        self.cache_written(dir, &id, &bytes);
        self.backend.write(&file_path(dir, &id), bytes)?;
        Ok(id)
    }

    pub fn load_index_file(&self, id: &IndexId) -> Result<IndexFile> {
        let bytes = self.read_file(INDEX_DIR, &id.0)?;
        IndexFile::decode(&self.keys, &bytes).map_err(|e| RepoError::integrity(file_path(INDEX_DIR, &id.0), e))
    }

    pub fn save_index(&self, idx: &IndexFile) -> Result<IndexId> {
        Ok(IndexId(self.write_cached(INDEX_DIR, idx.encode(&self.keys)?)?))
    }

    /// Every index file, decoded, or the error that kept it from decoding.
    pub fn load_index_files(&self) -> Result<Vec<(IndexId, Result<IndexFile>)>> {
        let ids = self.list_cached(INDEX_DIR)?;
        let loaded: Vec<_> =
            ids.par_iter().map(|(id, _)| (IndexId(*id), self.load_index_file(&IndexId(*id)))).collect();
        for (_, r) in &loaded {
            if let Err(RepoError::Backend(e)) = r
                && e.kind != BackendErrorKind::NotFound
            {
                return Err(RepoError::Backend(e.clone()));
            }
        }
        Ok(loaded)
    }

    /// Loads all index files, skipping those that a newer index file supersedes. A damaged
    /// index file does not stop the load: its blobs are simply unknown (a backup stores
    /// them again; `check` reports the damage).
    pub fn load_index(&self) -> Result<(MasterIndex, Vec<RepoError>)> {
        let files = self.load_index_files()?;
        let superseded: std::collections::HashSet<IndexId> =
            files.iter().filter_map(|(_, r)| r.as_ref().ok()).flat_map(|f| f.supersedes.iter().copied()).collect();
        let mut index = MasterIndex::new();
        let mut bad = Vec::new();
        for (id, r) in files {
            if superseded.contains(&id) {
                continue;
            }
            match r {
                Ok(f) => index.add_file(&f),
                Err(e) => bad.push(e),
            }
        }
        index.compact();
        Ok((index, bad))
    }

    /// Every pack file in the repository, with its kind and size.
    pub fn list_packs(&self) -> Result<Vec<(BlobKind, PackId, u64)>> {
        let mut out = Vec::new();
        for kind in [BlobKind::Data, BlobKind::Tree] {
            for e in self.backend.list(kind.dir())? {
                let name = e.path.rsplit('/').next().unwrap_or_default();
                if let Ok(id) = name.parse::<Id>() {
                    out.push((kind, PackId(id), e.size));
                }
            }
        }
        Ok(out)
    }

    /// A whole pack, not checked against its name: its blobs are authenticated one by one as
    /// they are opened, and hashing 16 MiB again cost restore a tenth of its CPU time.
    pub fn read_pack(&self, kind: BlobKind, id: &PackId) -> Result<ObjectBytes> {
        Ok(self.backend.read_parts(&pack_path(kind, id))?)
    }

    /// The header of a whole pack as read by [`Repository::read_pack`] (in pieces).
    pub fn parse_pack_header(
        &self,
        data: &ObjectBytes,
    ) -> std::result::Result<(BlobKind, Vec<pack::PackEntry>), crate::format::FormatError> {
        let len = data.len();
        let prefix = data.slice(0..len.min(pack::PACK_PREFIX_LEN)).unwrap_or_default();
        let trailer = data.slice(len.saturating_sub(4)..len).unwrap_or_default();
        let span = pack::header_span(&prefix, len, &trailer)?;
        let sealed = data.slice(span.clone()).unwrap_or_default();
        pack::decode_header(&self.keys, &sealed, span.start as u64)
    }

    /// A pack's header, read from its tail without downloading the blobs.
    pub fn read_pack_header(&self, kind: BlobKind, id: &PackId, size: u64) -> Result<(BlobKind, Vec<pack::PackEntry>)> {
        let path = pack_path(kind, id);
        let bad = |e: crate::format::FormatError| RepoError::integrity(format!("pack {path}"), e);
        if size < (pack::PACK_PREFIX_LEN + 4) as u64 {
            return Err(RepoError::integrity(format!("pack {path}"), "too short"));
        }
        let guess = size.min(16 * 1024);
        let tail = self.backend.read_range(&path, size - guess, guess)?;
        let hlen = u64::from(pack::header_len_from_tail(&tail[tail.len() - 4..]).map_err(bad)?);
        if hlen + 4 + pack::PACK_PREFIX_LEN as u64 > size {
            return Err(RepoError::integrity(format!("pack {path}"), "header length exceeds the pack"));
        }
        let start = size - 4 - hlen;
        let sealed = if hlen + 4 <= guess {
            tail.slice((guess - 4 - hlen) as usize..(guess - 4) as usize)
        } else {
            self.backend.read_range(&path, start, hlen)?
        };
        pack::decode_header(&self.keys, &sealed, start).map_err(bad)
    }

    pub fn save_check_record(&self, r: &CheckRecord) -> Result<Id> {
        self.write_file(CHECKS_DIR, r.encode(&self.keys)?)
    }

    /// All readable check records (damaged ones only cost coverage, so they are skipped).
    pub fn load_check_records(&self) -> Result<Vec<CheckRecord>> {
        let ids = self.list_files(CHECKS_DIR)?;
        Ok(ids
            .par_iter()
            .filter_map(|(id, _)| {
                self.read_file(CHECKS_DIR, id).ok().and_then(|b| CheckRecord::decode(&self.keys, &b).ok())
            })
            .collect())
    }

    /// Reads, decrypts and verifies one blob.
    pub fn read_blob_at(&self, loc: &BlobLocation, id: &BlobId) -> Result<Vec<u8>> {
        let path = pack_path(loc.kind, &loc.pack);
        let (offset, len) = (u64::from(loc.offset), u64::from(loc.length));
        let open = |sealed: &[u8]| pack::open_blob(&self.keys, loc.kind, id, sealed, loc.raw_length);
        let cache = self.cache.as_ref().filter(|_| loc.kind == BlobKind::Tree);
        let Some(cache) = cache else {
            let sealed = self.backend.read_range(&path, offset, len)?;
            return open(&sealed).map_err(|e| RepoError::integrity(format!("blob {id} in pack {path}"), e));
        };
        let pack_id = &loc.pack.0;
        if let Some(sealed) = cache.read_range(TREE_PACK_CACHE_DIR, pack_id, offset, len) {
            match open(&sealed) {
                Ok(raw) => return Ok(raw),
                // A damaged cache entry is never trusted: drop it and fetch the pack again.
                Err(_) => cache.remove(TREE_PACK_CACHE_DIR, pack_id),
            }
        }
        let bytes = self.backend.read(&path)?;
        if Id::of_stored_bytes(&bytes) != *pack_id {
            return Err(RepoError::integrity(path, "its bytes do not match its name"));
        }
        let sealed = bytes
            .get(offset as usize..(offset + len) as usize)
            .ok_or_else(|| RepoError::integrity(&path, format!("blob {id} lies outside the pack")))?;
        let raw = open(sealed).map_err(|e| RepoError::integrity(format!("blob {id} in pack {path}"), e))?;
        cache.put(TREE_PACK_CACHE_DIR, pack_id, &bytes);
        Ok(raw)
    }

    pub fn read_blob(&self, index: &MasterIndex, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
        let loc = index.get(kind, id).ok_or_else(|| RepoError::BlobNotIndexed(id.to_hex()))?;
        self.read_blob_at(&loc, id)
    }

    pub fn load_tree(&self, index: &MasterIndex, id: &BlobId) -> Result<Tree> {
        let raw = self.read_blob(index, BlobKind::Tree, id)?;
        Tree::decode(&raw).map_err(|e| RepoError::integrity(format!("tree {id}"), e))
    }
}

/// A repository shared between the threads of one operation.
pub type SharedRepo = Arc<Repository>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::backend::OpenMode;
    use crate::repo::location::Location;

    fn fast() -> InitOptions {
        InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() }
    }

    #[test]
    fn init_open_and_errors() {
        let b = Backend::open(&Location::Memory("r".into()), &Default::default(), OpenMode::Create).unwrap();
        assert!(matches!(Repository::open(b.clone(), b"pw"), Err(RepoError::NotFound(_))));
        let r = Repository::init(b.clone(), b"pw", &fast(), KeyMeta::default()).unwrap();
        assert!(matches!(
            Repository::init(b.clone(), b"pw", &fast(), KeyMeta::default()),
            Err(RepoError::AlreadyExists(_))
        ));
        let r2 = Repository::open(b.clone(), b"pw").unwrap();
        assert_eq!(r.config(), r2.config());
        assert!(matches!(Repository::open(b.clone(), b"bad"), Err(RepoError::WrongPassword(_))));
        // A damaged key file is not a wrong password.
        let key = b.list(KEYS_DIR).unwrap().remove(0).path;
        let mut bytes = b.read(&key).unwrap().to_vec();
        bytes[10] ^= 1;
        b.write(&key, bytes).unwrap();
        assert!(matches!(Repository::open(b.clone(), b"pw"), Err(RepoError::NoUsableKey { .. })));
    }
}
