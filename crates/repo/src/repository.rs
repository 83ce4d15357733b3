//! Opening, creating and reading a repository: key files, the config, content-addressed
//! files and blobs. Where each kind of file lives is [`crate::object`]'s business.

use std::collections::HashSet;

use rayon::prelude::*;

use super::backend::{Backend, BackendErrorKind};
use super::cache::Cache;
use super::error::{RepoError, Result};
use super::key_files::{self, OpenOptions};
use super::master_index::MasterIndex;
use super::object::{Damaged, StoredKind, StoredObject};
use super::pack_reads::TREE_PACK_CACHE_DIR;
use vault_format::blob::{Compression, Padding};
use vault_format::check_record::CheckRecord;
use vault_format::chunker::{Chunker, ChunkerParams};
use vault_format::condemnation::Condemnation;
use vault_format::config::Config;
use vault_format::crypto::{ContentKeys, Keys, ObjectKind, SecretKey};
use vault_format::file::SealedDocument;
use vault_format::index::IndexFile;
use vault_format::keyfile::{KdfParams, KeyFile, KeyMeta};
use vault_format::pack::BlobKind;
use vault_format::snapshot::Snapshot;
use vault_format::{BlobId, Id, IndexId, KeyId, PackId, SnapshotId};

/// Snapshots with their ids.
pub type SnapshotList = Vec<(SnapshotId, Snapshot)>;

/// Every index file with its id, decoded, or the error that kept it from decoding.
pub(crate) type IndexFiles = Vec<(IndexId, Result<IndexFile>)>;

/// The index as readers see it: see [`Repository::load_index_views`].
#[derive(Debug, Default)]
pub(crate) struct IndexViews {
    /// The union of the live (not superseded) index files.
    pub live: MasterIndex,
    /// Packs listed only by superseded index files.
    pub condemned: MasterIndex,
    /// Damaged live index files (their blobs are unknown).
    pub problems: Vec<RepoError>,
}

/// Kinds of file the local cache keeps (tree packs are cached apart, by
/// [`Repository::read_blob_at`]).
const CACHED_KINDS: [StoredKind; 3] = [StoredKind::Snapshot, StoredKind::Index, StoredKind::Tombstone];

/// A pack file as listed by the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredPack {
    /// Data or tree.
    pub kind: BlobKind,
    /// Its id (the hash of its bytes).
    pub id: PackId,
    /// Its size as stored.
    pub size: u64,
}

/// The ids of index files that a newer index file supersedes (it lists them).
pub fn superseded_index_files(files: &IndexFiles) -> HashSet<IndexId> {
    files.iter().filter_map(|(_, r)| r.as_ref().ok()).flat_map(|f| f.supersedes.iter().copied()).collect()
}

/// Choices made once, when a repository is created.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Argon2id cost of the first key file.
    pub kdf: KdfParams,
    /// Chunk size bounds.
    pub chunker: ChunkerParams,
    /// How blobs are compressed.
    pub compression: Compression,
    /// How sealed blobs are padded.
    pub padding: Padding,
    /// Another repository's content keys, so that the same data has the same chunks and
    /// blob ids in both (`init --copy-chunker-params`; set `chunker` to its bounds too).
    pub content_keys: Option<ContentKeys>,
}

/// An opened repository: its backend, keys and config, and the local cache.
#[derive(Debug)]
pub struct Repository {
    backend: Backend,
    keys: Keys,
    /// The keys with index files and records sealed for write-only keys too, once this
    /// repository turned out to have some (see [`Repository::sealing_keys`]).
    shared_keys: std::sync::OnceLock<Keys>,
    config: Config,
    key_id: KeyId,
    cache: Option<Cache>,
    open_notes: Vec<String>,
    /// Write-only keys' records (full keys only).
    writer_keys: Vec<crate::access::WriterKey>,
    /// A write-only key: what its key file wraps.
    payload: Option<Box<vault_format::access::WriteOnlyPayload>>,
    /// The public agreement key of the key file that opened (spec §3.2).
    agreement_public: Option<[u8; 32]>,
}

/// The error for a stored object that did not decode: damage, or (for a write-only key)
/// an object sealed with a key it does not hold.
pub(crate) fn undecodable(object: StoredObject, e: vault_format::FormatError) -> RepoError {
    match e {
        vault_format::FormatError::ForeignKey => RepoError::ForeignKey(object.to_string()),
        e => RepoError::integrity(Damaged::Object(object), e),
    }
}

/// Files read after a listing: those gone meanwhile are left out, and a storage failure
/// ends the call (it is not damage of the file).
pub(crate) fn keep_present<K, T>(loaded: Vec<(K, Result<T>)>) -> Result<Vec<(K, Result<T>)>> {
    let mut out = Vec::with_capacity(loaded.len());
    for (id, r) in loaded {
        match r {
            Err(RepoError::Backend(e)) if e.kind == BackendErrorKind::NotFound => {}
            Err(RepoError::Backend(e)) => return Err(RepoError::Backend(e)),
            r => out.push((id, r)),
        }
    }
    Ok(out)
}

/// A key file's JSON, parsed and its KDF parameters checked (key files are not sealed:
/// `_keys` only gives it the shape of the other decoders).
fn decode_key_file(_keys: &Keys, bytes: &[u8]) -> vault_format::error::Result<KeyFile> {
    let kf = KeyFile::from_json(bytes)?;
    kf.validate()?;
    Ok(kf)
}

/// Ids of the files directly in `dir` whose names are 64 hex digits; other names are not
/// vault's and are ignored.
/// (Files in subdirectories are not vault's either: the spec's directories are flat.)
pub(crate) fn parse_listing(dir: &str, entries: Vec<super::backend::ListEntry>) -> Vec<(Id, u64)> {
    entries
        .into_iter()
        .filter_map(|e| {
            let name = e.path.strip_prefix(dir)?.strip_prefix('/')?;
            if name.len() != 64 {
                return None;
            }
            name.parse::<Id>().ok().map(|id| (id, e.size))
        })
        .collect()
}

impl Repository {
    /// Creates a repository: a new master key wrapped in a key file, then the config.
    pub fn init(backend: Backend, password: &[u8], opts: &InitOptions, meta: KeyMeta) -> Result<Repository> {
        if backend.stat(StoredObject::Config.path().as_str())?.is_some()
            || !backend.list(StoredKind::Key.dir())?.is_empty()
        {
            return Err(RepoError::AlreadyExists(backend.name().to_string()));
        }
        let master = Keys::from_master(SecretKey::random()?);
        let (key_id, key_bytes, agreement) = key_files::wrap_key(&master, password, opts.kdf, meta)?;
        let mut repo_id = [0u8; 32];
        getrandom::fill(&mut repo_id)?;
        let mut config = Config::new(Id(repo_id));
        config.chunker = opts.chunker;
        config.compression = opts.compression;
        config.padding = opts.padding;
        if let Some(shared) = &opts.content_keys {
            config.share_content_keys(shared.clone());
        }
        config.validate().map_err(|e| RepoError::invalid("repository options", e))?;
        let keys = config.keys(master);
        // Key first, config last: the config's presence is what makes a repository exist.
        let key_path = StoredObject::Key(key_id).path();
        backend.write(&key_path, key_bytes)?;
        // The config is the one object with a fixed name: two inits at once must not both
        // believe they created the repository. Create it exclusively where the backend
        // can, and read it back where it cannot; the loser takes its key file away.
        let config_path = StoredObject::Config.path();
        let config_bytes = config.encode(&keys)?;
        let exclusive = backend.creates_exclusively()?;
        let ours = || -> Result<bool> { Ok(backend.read(&config_path)?.as_ref() == config_bytes.as_slice()) };
        let mut won = backend.write_new(&config_path, config_bytes.clone())? && ours()?;
        if won && !exclusive {
            // Another init that checked for the config before ours was stored writes its
            // own within a round trip: wait that out and look again. The last one stored
            // wins; everyone else reports the repository as taken.
            std::thread::sleep(INIT_SETTLE);
            won = ours()?;
        }
        if !won {
            let _ = backend.delete(&key_path);
            return Err(RepoError::AlreadyExists(format!(
                "{} (another init created it at the same time)",
                backend.name()
            )));
        }
        let mut repo = Repository::assemble(backend, keys, config, key_id, Vec::new());
        repo.agreement_public = Some(agreement);
        // So that a later `key rotate` can grant this key file the next epoch; a repository
        // without it still opens, and `vault key list` writes it.
        let _ = repo.ensure_member_record();
        Ok(repo)
    }

    /// Opens a repository with the first key file that `password` opens and whose master
    /// key authenticates the config, trying key files in the default order.
    pub fn open(backend: Backend, password: &[u8]) -> Result<Repository> {
        Repository::open_with(backend, password, &OpenOptions::default())
    }

    /// Opens a repository, trying key files in the order and within the limits of `opts`
    /// (see [`crate::key_files`]).
    pub fn open_with(backend: Backend, password: &[u8], opts: &OpenOptions) -> Result<Repository> {
        let o = key_files::open_keys(&backend, password, opts)?;
        let mut repo = Repository::assemble(backend, o.keys, o.config, o.key_id, o.notes);
        repo.payload = o.payload;
        repo.agreement_public = Some(o.agreement.public());
        repo.load_epochs(&o.agreement)?;
        repo.load_writer_keys()?;
        Ok(repo)
    }

    fn assemble(backend: Backend, keys: Keys, config: Config, key_id: KeyId, notes: Vec<String>) -> Repository {
        Repository {
            backend,
            keys,
            shared_keys: std::sync::OnceLock::new(),
            config,
            key_id,
            cache: None,
            open_notes: notes,
            writer_keys: Vec::new(),
            payload: None,
            agreement_public: None,
        }
    }

    /// The public agreement key of the key file that opened.
    pub(crate) fn agreement_public(&self) -> Option<[u8; 32]> {
        self.agreement_public
    }

    pub(crate) fn set_agreement_public(&mut self, public: [u8; 32]) {
        self.agreement_public = Some(public);
    }

    /// After `key rotate`: the new epoch's keys seal from now on.
    pub(crate) fn replace_keys(&mut self, keys: Keys) {
        self.keys = keys;
        self.shared_keys = std::sync::OnceLock::new();
    }

    pub(crate) fn keys_mut(&mut self) -> &mut Keys {
        &mut self.keys
    }

    pub(crate) fn set_writer_keys(&mut self, w: Vec<crate::access::WriterKey>) {
        self.writer_keys = w;
    }

    pub(crate) fn write_only_payload(&self) -> Option<&vault_format::access::WriteOnlyPayload> {
        self.payload.as_deref()
    }

    pub(crate) fn writer_keys_slice(&self) -> &[crate::access::WriterKey] {
        &self.writer_keys
    }

    pub(crate) fn shared_keys_cell(&self) -> &std::sync::OnceLock<Keys> {
        &self.shared_keys
    }

    pub(crate) fn push_note(&mut self, note: String) {
        self.open_notes.push(note);
    }

    /// Key files that `open` passed over (asking for more work than allowed), for a warning.
    pub fn open_notes(&self) -> &[String] {
        &self.open_notes
    }

    /// The storage backend (for request statistics and the CLI's plumbing; operations
    /// go through the typed methods).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The decoded config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The key file that opened the repository.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// After a password change, the key file that opens the repository now.
    pub(crate) fn set_key_id(&mut self, id: KeyId) {
        self.key_id = id;
    }

    /// The keys that decide this repository's chunk boundaries and blob ids, for a
    /// repository initialised to deduplicate with it.
    pub fn content_keys(&self) -> ContentKeys {
        self.keys.content_keys()
    }

    /// Whether the same data has the same chunks and blob ids here and in `other` (same
    /// content keys and chunker bounds), so blobs can be copied between them as they are.
    pub fn same_chunks_as(&self, other: &Repository) -> bool {
        self.config.chunker == other.config.chunker && self.keys.content_keys() == other.keys.content_keys()
    }

    /// The keyed chunker of this repository.
    pub fn chunker(&self) -> Result<Chunker> {
        Chunker::new(self.keys.chunker_key(), self.config.chunker)
            .map_err(|e| RepoError::integrity(Damaged::Object(StoredObject::Config), e))
    }

    /// The id a blob with these bytes has in this repository (a keyed hash).
    pub fn blob_id(&self, raw: &[u8]) -> BlobId {
        self.keys.blob_id(raw)
    }

    /// Writes a content-addressed file of `kind` and returns its id.
    pub fn write_file(&self, kind: StoredKind, bytes: Vec<u8>) -> Result<Id> {
        let id = Id::of_stored_bytes(&bytes);
        if CACHED_KINDS.contains(&kind)
            && let Some(c) = &self.cache
        {
            // A freshly written file goes to the cache too, so the next run needs no download.
            c.put(kind.dir(), &id, &bytes);
        }
        let path = StoredObject::new(kind, id).path();
        let len = bytes.len() as u64;
        match self.backend.write(&path, bytes) {
            Ok(()) => Ok(id),
            // The write may have taken effect although its answer was lost (the server
            // stored it, then the connection failed). The name is the hash of the content,
            // so a file of that name and length is this file: the write succeeded, and a
            // backup reporting failure here would leave a snapshot its user was told is
            // not there (and a retry would store a second one).
            Err(e) => match self.backend.stat(&path) {
                Ok(Some(n)) if n == len => Ok(id),
                _ => Err(e.into()),
            },
        }
    }

    /// Reads a file whose listing gave `size`: refused unread above its kind's limit, and
    /// read no further than `size` (a longer file fails its hash check).
    pub(crate) fn read_listed_file(&self, object: StoredObject, size: u64) -> Result<Vec<u8>> {
        let kind = object.kind();
        let max = kind.max_stored_size();
        if size > max || size == 0 {
            return Err(RepoError::integrity(
                Damaged::Object(object),
                format!("it is {size} bytes; no {} file vault writes is empty or over {max}; not read", kind.dir()),
            ));
        }
        self.read_file_upto(object, Some(size))
    }

    /// Reads a content-addressed file and checks its bytes against its name.
    pub(crate) fn read_file(&self, object: StoredObject) -> Result<Vec<u8>> {
        self.read_file_upto(object, None)
    }

    /// Reads a file (from the cache when it holds it), no further than `size` when given.
    fn read_file_upto(&self, object: StoredObject, size: Option<u64>) -> Result<Vec<u8>> {
        let kind = object.kind();
        let id = object.id().unwrap_or_default();
        let cached = self.cache.as_ref().filter(|_| CACHED_KINDS.contains(&kind));
        if let Some(bytes) = cached.and_then(|c| c.get(kind.dir(), &id)) {
            return Ok(bytes);
        }
        let path = object.path();
        let bytes = match size {
            Some(size) => self.backend.read_range(&path, 0, size)?,
            None => self.backend.read(&path)?,
        };
        if Id::of_stored_bytes(&bytes) != id {
            return Err(RepoError::integrity(Damaged::Object(object), "its bytes do not match its name"));
        }
        if let Some(c) = cached {
            c.put(kind.dir(), &id, &bytes);
        }
        Ok(bytes.into())
    }

    /// Uses a local cache for snapshots, index files and tree packs from now on.
    pub fn attach_cache(&mut self, cache: Cache) {
        self.cache = Some(cache);
    }

    /// The local cache, when one is attached.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// Lists a cached kind and forgets cache entries the repository no longer has.
    fn list_cached(&self, kind: StoredKind) -> Result<Vec<(Id, u64)>> {
        let files = self.list_files(kind)?;
        if let Some(c) = &self.cache {
            c.retain(kind.dir(), &files.iter().map(|(id, _)| *id).collect());
        }
        Ok(files)
    }

    /// The files of `kind` (not packs: see [`Repository::list_packs`]) with their sizes.
    pub fn list_files(&self, kind: StoredKind) -> Result<Vec<(Id, u64)>> {
        Ok(parse_listing(kind.dir(), self.backend.list(kind.dir())?))
    }

    /// Reads and parses one key file.
    pub fn read_key_file(&self, id: &KeyId) -> Result<KeyFile> {
        let object = StoredObject::Key(*id);
        let bytes = self.read_file(object)?;
        decode_key_file(&self.keys, &bytes).map_err(|e| undecodable(object, e))
    }

    /// Every key file, each parsed or with the error that kept it from parsing; files over
    /// the key file size limit are not read. As with [`Repository::load_documents`], a key
    /// file removed between the listing and the read (`key remove`) is left out, and any
    /// other storage failure ends the call: neither is damage.
    pub fn load_key_files(&self) -> Result<Vec<(KeyId, Result<KeyFile>)>> {
        let listed = self.list_files(StoredKind::Key)?;
        let loaded: Vec<(KeyId, Result<KeyFile>)> = listed
            .par_iter()
            .map(|(id, size)| (KeyId(*id), self.load_listed(StoredObject::Key(KeyId(*id)), *size, decode_key_file)))
            .collect();
        keep_present(loaded)
    }

    /// The ids of all snapshots.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotId>> {
        Ok(self.list_cached(StoredKind::Snapshot)?.into_iter().map(|(id, _)| SnapshotId(id)).collect())
    }

    /// One snapshot file's stored bytes.
    pub(crate) fn read_snapshot_file(&self, id: &SnapshotId) -> Result<Vec<u8>> {
        self.read_file(StoredObject::Snapshot(*id))
    }

    /// Reads and decrypts one snapshot.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let object = StoredObject::Snapshot(*id);
        let bytes = self.read_file(object)?;
        Snapshot::decode(&self.keys, &bytes).map_err(|e| undecodable(object, e))
    }

    /// Loads every snapshot; damaged ones are returned apart so a listing can go on.
    pub fn load_all_snapshots(&self) -> Result<(SnapshotList, Vec<(SnapshotId, RepoError)>)> {
        let listed = self.list_cached(StoredKind::Snapshot)?;
        let results: Vec<_> = listed
            .par_iter()
            .map(|(id, size)| {
                (SnapshotId(*id), self.load_listed(StoredObject::Snapshot(SnapshotId(*id)), *size, Snapshot::decode))
            })
            .collect();
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for (id, r) in results {
            match r {
                Ok(s) => ok.push((id, s)),
                // A write-only key lists only its own snapshots.
                Err(RepoError::ForeignKey(_)) => {}
                // Forgotten between the listing and the read.
                Err(RepoError::Backend(e)) if e.kind == BackendErrorKind::NotFound => {}
                Err(e @ RepoError::Backend(_)) => return Err(e),
                Err(e) => bad.push((id, e)),
            }
        }
        Ok((ok, bad))
    }

    /// Writes a snapshot: the commit point of a backup.
    pub fn save_snapshot(&self, s: &Snapshot) -> Result<SnapshotId> {
        Ok(SnapshotId(self.write_file(StoredKind::Snapshot, s.encode(self.sealing_keys(ObjectKind::Snapshot)?)?)?))
    }

    /// Reads and decrypts one index file.
    pub fn load_index_file(&self, id: &IndexId) -> Result<IndexFile> {
        let object = StoredObject::Index(*id);
        let bytes = self.read_file(object)?;
        IndexFile::decode(&self.keys, &bytes).map_err(|e| undecodable(object, e))
    }

    /// Writes an index file.
    pub fn save_index(&self, idx: &IndexFile) -> Result<IndexId> {
        Ok(IndexId(self.write_file(StoredKind::Index, idx.encode(self.sealing_keys(ObjectKind::Index)?)?)?))
    }

    /// Every index file, decoded, or the error that kept it from decoding.
    pub fn load_index_files(&self) -> Result<IndexFiles> {
        let ids = self.list_cached(StoredKind::Index)?;
        let loaded: IndexFiles = ids
            .par_iter()
            .map(|(id, size)| {
                (IndexId(*id), self.load_listed(StoredObject::Index(IndexId(*id)), *size, IndexFile::decode))
            })
            .collect();
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
        let loaded = self.load_index_views()?;
        Ok((loaded.live, loaded.problems))
    }

    /// The live index, and apart from it the packs that only superseded index files still
    /// list: packs a prune has condemned and not yet deleted. Readers fall back to those
    /// (a writer that loaded the index before the prune may have referenced them, and the
    /// prune keeps such packs); writers never deduplicate against them.
    pub(crate) fn load_index_views(&self) -> Result<IndexViews> {
        self.load_index_views_where(|_, _| true)
    }

    /// [`Repository::load_index_views`], with only the packs `keep` accepts (called with
    /// whether the pack is live, or only condemned).
    pub(crate) fn load_index_views_where(&self, keep: impl FnMut(&PackId, bool) -> bool) -> Result<IndexViews> {
        self.index_views(self.load_index_files()?, keep)
    }

    /// The views of [`Repository::load_index_views_where`] over index files already loaded.
    pub(crate) fn index_views(
        &self,
        files: IndexFiles,
        mut keep: impl FnMut(&PackId, bool) -> bool,
    ) -> Result<IndexViews> {
        let superseded = superseded_index_files(&files);
        let mut live = MasterIndex::new();
        let mut problems = Vec::new();
        let mut old = Vec::new();
        for (id, r) in files {
            match r {
                Ok(f) if superseded.contains(&id) => old.push(f),
                Ok(f) => {
                    for p in f.packs.iter().filter(|p| keep(&p.id, true)) {
                        live.add_pack(p.id, p.kind, p.size, &p.blobs);
                    }
                }
                Err(_) if superseded.contains(&id) => {}
                // Written before this write-only key existed: not its to read.
                Err(RepoError::ForeignKey(_)) => {}
                Err(e) => problems.push(e),
            }
        }
        live.compact();
        let mut condemned = MasterIndex::new();
        // Only packs a prune condemned: an index file superseded by `repair index` may list
        // damaged blobs that the repair meant to leave out.
        let doomed = if old.is_empty() { HashSet::new() } else { self.condemned_packs()? };
        for f in &old {
            for p in f.packs.iter().filter(|p| doomed.contains(&p.id) && !live.has_pack(&p.id) && keep(&p.id, false)) {
                condemned.add_pack(p.id, p.kind, p.size, &p.blobs);
            }
        }
        condemned.compact();
        Ok(IndexViews { live, condemned, problems })
    }

    /// The packs that readable condemnations (`condemned/`) name.
    pub fn condemned_packs(&self) -> Result<HashSet<PackId>> {
        Ok(self
            .load_documents::<Condemnation>(StoredKind::Condemnation)?
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .flat_map(|c| c.data_packs.into_iter().chain(c.tree_packs))
            .collect())
    }

    /// Every pack file in the repository, with its kind and size.
    pub fn list_packs(&self) -> Result<Vec<StoredPack>> {
        let mut out = Vec::new();
        for kind in [BlobKind::Data, BlobKind::Tree] {
            for e in self.backend.list(StoredKind::Pack(kind).dir())? {
                let name = e.path.rsplit('/').next().unwrap_or_default();
                // Only `data/<xx>/<id>` as the spec places it; anything else is not a pack.
                if let Ok(id) = name.parse::<Id>()
                    && StoredObject::Pack(kind, PackId(id)).path() == e.path
                {
                    out.push(StoredPack { kind, id: PackId(id), size: e.size });
                }
            }
        }
        Ok(out)
    }

    /// Writes a record of the packs a `check --read-data` run verified.
    pub fn save_check_record(&self, r: &CheckRecord) -> Result<Id> {
        self.save_document(StoredKind::CheckRecord, r)
    }

    /// All readable check records (damaged ones only cost coverage, so they are skipped).
    pub fn load_check_records(&self) -> Result<Vec<CheckRecord>> {
        Ok(self.load_documents(StoredKind::CheckRecord)?.into_iter().filter_map(|(_, r)| r.ok()).collect())
    }

    /// Seals and writes a document as a content-addressed file of `kind`.
    pub fn save_document<T: SealedDocument>(&self, kind: StoredKind, doc: &T) -> Result<Id> {
        self.write_file(kind, doc.encode(self.sealing_keys(T::KIND.object)?)?)
    }

    /// Reads (as listed with `size`) and opens one document.
    pub(crate) fn load_listed<T>(
        &self,
        object: StoredObject,
        size: u64,
        decode: impl Fn(&Keys, &[u8]) -> vault_format::error::Result<T>,
    ) -> Result<T> {
        let bytes = self.read_listed_file(object, size)?;
        decode(&self.keys, &bytes).map_err(|e| undecodable(object, e))
    }

    /// Every document of `kind`, each opened or with the error that kept it from opening.
    /// A file that vanished between the listing and the read (removed by its writer, or
    /// by a prune) is left out; any other storage failure ends the call.
    pub fn load_documents<T: SealedDocument + Send>(&self, kind: StoredKind) -> Result<Vec<(Id, Result<T>)>> {
        let ids = if CACHED_KINDS.contains(&kind) { self.list_cached(kind)? } else { self.list_files(kind)? };
        let loaded: Vec<(Id, Result<T>)> = ids
            .par_iter()
            .map(|(id, size)| (*id, self.load_listed(StoredObject::new(kind, *id), *size, T::decode)))
            .collect();
        keep_present(loaded)
    }

    /// Names of the files in `tmp/` (writes in progress, or left by interrupted ones).
    pub fn list_tmp(&self) -> Result<Vec<String>> {
        Ok(self.list_tmp_sized()?.into_iter().map(|(n, _)| n).collect())
    }

    /// The same, with each file's size.
    pub fn list_tmp_sized(&self) -> Result<Vec<(String, u64)>> {
        Ok(self
            .backend
            .list("tmp")?
            .into_iter()
            .filter_map(|e| Some((e.path.strip_prefix("tmp/")?.to_string(), e.size)))
            .filter(|(n, _)| is_tmp_name(n))
            .collect())
    }

    /// Deletes `tmp/<name>` (a name [`Repository::list_tmp`] gave).
    pub fn delete_tmp(&self, name: &str) -> Result<()> {
        if !is_tmp_name(name) {
            return Err(RepoError::invalid("temporary file name", name));
        }
        match self.backend.delete(&format!("tmp/{name}")) {
            Err(e) if e.kind != BackendErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Fails when the storage refuses deletions (append-only credentials), before a
    /// command that deletes writes anything: it deletes a name that does not exist, which
    /// storage that allows deleting accepts and append-only storage refuses.
    pub fn check_can_delete(&self) -> Result<()> {
        let mut r = [0u8; 16];
        getrandom::fill(&mut r)?;
        let probe = format!("tmp/delete-probe-{}", hex::encode(r));
        match self.backend.delete(&probe) {
            Err(mut e) if e.kind != BackendErrorKind::NotFound => {
                e.message.push_str(
                    "; the storage refuses deletions here: forget, prune, tag and rewrite need credentials that may delete",
                );
                Err(RepoError::Backend(e))
            }
            _ => Ok(()),
        }
    }

    /// Deletes a stored file; one that is already gone counts as deleted.
    pub fn delete_file(&self, object: StoredObject) -> Result<()> {
        match self.backend.delete(&object.path()) {
            Err(e) if e.kind != BackendErrorKind::NotFound => Err(e.into()),
            _ => {
                if let (Some(c), Some(id)) = (&self.cache, object.id()) {
                    if CACHED_KINDS.contains(&object.kind()) {
                        c.remove(object.kind().dir(), &id);
                    } else if object.kind() == StoredKind::Pack(BlobKind::Tree) {
                        c.remove(TREE_PACK_CACHE_DIR, &id);
                    }
                }
                Ok(())
            }
        }
    }
}

/// A file directly in `tmp/` with a name a writer gives (hex digits, `-`, and the `.` of
/// the names earlier versions' local writes used), nothing that could leave `tmp/`.
fn is_tmp_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// How long `init` waits before reading its config back a second time on storage that
/// cannot create an object exclusively.
const INIT_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
#[path = "repository_tests.rs"]
mod tests;
