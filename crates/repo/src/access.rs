//! Write-only keys (spec §3.1): their records, which full keys load to read what those keys
//! wrote; making a new one; and which keys seal index files and the prune's and forget's
//! records, so that write-only keys can read them but not forge them.

use rayon::prelude::*;

use vault_format::access::{KeyRecord, WRITE_ONLY, WriteOnlyPayload};
use vault_format::crypto::{Keys, ObjectKind, SealKeyId, Sealer, SecretKey, metadata_kind};
use vault_format::file::Origin;
use vault_format::index::IndexFile;
use vault_format::keyfile::{KdfParams, KeyFile, KeyMeta, SALT_LEN};
use vault_format::{Id, IndexId, KeyId};

use super::error::{RepoError, Result};
use super::object::{StoredKind, StoredObject};
use super::repository::{Repository, keep_present, superseded_index_files, undecodable};

/// An index file and the key that sealed it.
type SealedIndex = (Option<Sealer>, IndexFile);

/// One write-only key, as its record names it.
#[derive(Clone, Debug)]
pub struct WriterKey {
    /// The id its objects carry.
    pub id: SealKeyId,
    /// Its record, `keyring/<record>`.
    pub record: Id,
    /// Host label.
    pub host: String,
    /// User label.
    pub username: String,
    /// When it was made.
    pub created: String,
}

/// What `key add --write-only` did.
#[derive(Clone, Debug)]
pub struct WriteOnlyKeyAdded {
    /// The new key file.
    pub key_file: KeyId,
    /// The id of its data key.
    pub writer: SealKeyId,
    /// Its record.
    pub record: Id,
    /// Index files sealed again so that write-only keys can read them.
    pub index_files_resealed: usize,
}

impl Repository {
    /// Loads the key records (a full key): what write-only keys wrote opens from now on,
    /// and index files and records are sealed so that they can read them.
    pub(crate) fn load_writer_keys(&mut self) -> Result<()> {
        if !self.keys().is_full() {
            return Ok(());
        }
        let loaded = self.load_key_records()?;
        if loaded.is_empty() {
            return Ok(());
        }
        let mut writers = Vec::new();
        for (record, r) in loaded {
            match r {
                Ok(r) => {
                    let id = self.keys_mut().add_writer_key(r.key.clone());
                    writers.push(WriterKey { id, record, host: r.host, username: r.username, created: r.created });
                }
                Err(e) => self.push_note(format!("{e}; what that write-only key wrote cannot be read")),
            }
        }
        self.keys_mut().set_shared(true);
        writers.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        self.set_writer_keys(writers);
        Ok(())
    }

    /// Every key record, opened or with the error that kept it from opening (damaged, or
    /// not written by a full key); read afresh, so one stored since the repository was
    /// opened is there too. Records gone meanwhile are left out.
    pub fn load_key_records(&self) -> Result<Vec<(Id, Result<KeyRecord>)>> {
        let listed = self.list_files(StoredKind::KeyRecord)?;
        let loaded: Vec<(Id, Result<KeyRecord>)> = listed
            .par_iter()
            .map(|(id, size)| {
                (*id, self.load_listed(StoredObject::new(StoredKind::KeyRecord, *id), *size, KeyRecord::decode))
            })
            .collect();
        keep_present(loaded)
    }

    /// Whether this is a full key (everything readable); `false` for a write-only key.
    pub fn is_full(&self) -> bool {
        self.keys().is_full()
    }

    /// A write-only key: the id of its data key.
    pub fn own_writer(&self) -> Option<SealKeyId> {
        self.keys().own_writer()
    }

    /// The write-only keys that full keys know of.
    pub fn writer_keys(&self) -> &[WriterKey] {
        self.writer_keys_slice()
    }

    /// Fails with a one-line error unless this is a full key.
    pub fn require_full(&self, what: &str) -> Result<()> {
        if self.is_full() {
            return Ok(());
        }
        Err(RepoError::WriteOnly(format!(
            "{what} needs a full key; the password opened a write-only key, which can only run `backup`, `snapshots` (its own), `key list` and `key passwd`"
        )))
    }

    /// Who wrote an object of this origin, in a few words: `full key`, or the write-only
    /// key's labels and id.
    pub fn describe_origin(&self, origin: Option<Origin>) -> String {
        match origin {
            Some(Origin::Full) | None => "full key".into(),
            Some(Origin::Writer(id)) => match self.writer_keys().iter().find(|w| w.id == id) {
                Some(w) => format!("write-only {}@{} ({})", w.username, w.host, id.to_hex()),
                None => format!("write-only ({})", id.to_hex()),
            },
            Some(Origin::Unverified) => "unverified".into(),
        }
    }

    /// Whether a snapshot of this origin is one this key wrote (the only ones a backup takes
    /// as its parent): full keys' for a full key, its own for a write-only key.
    pub fn wrote(&self, origin: Option<Origin>) -> bool {
        match (self.own_writer(), origin) {
            (None, Some(Origin::Full) | None) => true,
            (Some(own), Some(Origin::Writer(id))) => own == id,
            _ => false,
        }
    }

    /// The keys new objects of `kind` are sealed with. Index files, announcements and the
    /// prune's and forget's records are sealed for write-only keys once the repository has
    /// any: a full key that found no key record at open looks again (one listing) before
    /// each such file, since a write-only key made meanwhile must be able to read what
    /// this command writes after loading an index that key's making sealed again. Other
    /// kinds never depend on it and cost no listing.
    pub fn sealing_keys(&self, kind: ObjectKind) -> Result<&Keys> {
        let keys = self.keys();
        if !keys.is_full() || !metadata_kind(kind) || keys.seals_with_metadata(kind) {
            return Ok(keys);
        }
        if let Some(k) = self.shared_keys_cell().get() {
            return Ok(k);
        }
        if self.list_files(StoredKind::KeyRecord)?.is_empty() {
            return Ok(keys);
        }
        let mut shared = keys.clone();
        shared.set_shared(true);
        Ok(self.shared_keys_cell().get_or_init(|| shared))
    }

    /// Makes a write-only key opened by `password`: stores its record (for full keys),
    /// then its key file, then seals the index again for it.
    pub fn add_write_only_key(&self, password: &[u8], kdf: KdfParams, meta: KeyMeta) -> Result<WriteOnlyKeyAdded> {
        self.require_full("adding a write-only key")?;
        let writer_key = SecretKey::random()?;
        let record = KeyRecord {
            version: 1,
            created: meta.created.clone(),
            host: meta.host.clone(),
            username: meta.username.clone(),
            key: writer_key.clone(),
        };
        let record_id = self.write_file(StoredKind::KeyRecord, record.encode(self.keys())?)?;
        let config_bytes = self.backend().read(&StoredObject::Config.path())?;
        let payload = WriteOnlyPayload {
            version: 1,
            access: WRITE_ONLY.into(),
            writer_key: writer_key.clone(),
            // Epoch 1's: grants carry the later ones, certified from this one (spec §3.2).
            metadata_key: self.keys().base_metadata_key().clone(),
            content_keys: self.keys().content_keys(),
            config: self.config().clone(),
            config_file: Id::of_stored_bytes(&config_bytes),
        };
        let (key_file, _) = self.store_write_only_key_file(&payload, password, kdf, meta)?;
        let index_files_resealed = self.reseal_index()?;
        Ok(WriteOnlyKeyAdded { key_file, writer: SealKeyId::of(&writer_key), record: record_id, index_files_resealed })
    }

    /// Stores a write-only key file wrapping `payload` under `password`, after its member
    /// record and grant (see [`Repository::admit_key_file`]); returns its id and agreement key.
    pub(crate) fn store_write_only_key_file(
        &self,
        payload: &WriteOnlyPayload,
        password: &[u8],
        kdf: KdfParams,
        meta: KeyMeta,
    ) -> Result<(KeyId, [u8; 32])> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt)?;
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce)?;
        let (kf, agreement) = KeyFile::wrap_write_only_agreed(payload, password, kdf, salt, nonce, meta)
            .map_err(|e| RepoError::invalid("key derivation parameters", e))?;
        let bytes = kf.to_json();
        let key_file = KeyId(Id::of_stored_bytes(&bytes));
        self.admit_key_file(key_file, Some(&payload.writer_key), &agreement)?;
        self.backend().write(&StoredObject::Key(key_file).path(), bytes)?;
        Ok((key_file, agreement))
    }

    /// Seals every live index file that only full keys can read again, as a new file that
    /// supersedes it: write-only keys deduplicate against what it lists. Nothing is
    /// deleted (a prune removes superseded index files).
    fn reseal_index(&self) -> Result<usize> {
        let keys = self.sealing_keys(ObjectKind::Index)?;
        let listed = self.list_files(StoredKind::Index)?;
        let loaded: Vec<(IndexId, Result<SealedIndex>)> = listed
            .par_iter()
            .map(|(id, size)| {
                let object = StoredObject::Index(IndexId(*id));
                let r = self.read_listed_file(object, *size).and_then(|b| {
                    let sealer = b.get(5..).and_then(|s| keys.sealer_of(s));
                    IndexFile::decode(keys, &b).map(|f| (sealer, f)).map_err(|e| undecodable(object, e))
                });
                (IndexId(*id), r)
            })
            .collect();
        let mut files = Vec::new();
        let mut sealers = std::collections::HashMap::new();
        for (id, r) in loaded {
            match r {
                Ok((sealer, f)) => {
                    sealers.insert(id, sealer);
                    files.push((id, Ok(f)));
                }
                Err(RepoError::Backend(e)) if e.kind == super::backend::BackendErrorKind::NotFound => {}
                Err(RepoError::Backend(e)) => return Err(RepoError::Backend(e)),
                // Damage stays for check and repair to report.
                Err(e) => files.push((id, Err(e))),
            }
        }
        let superseded = superseded_index_files(&files);
        let mut n = 0;
        for (id, f) in files {
            let Ok(f) = f else { continue };
            if superseded.contains(&id) || sealers.get(&id) != Some(&Some(Sealer::Full)) {
                continue;
            }
            self.save_index(&IndexFile { supersedes: vec![id], packs: f.packs })?;
            n += 1;
        }
        Ok(n)
    }
}
