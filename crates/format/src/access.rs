//! Write-only keys (spec §3.1, §4.1): what such a key file wraps, and the key record that
//! lets full keys read what the write-only key wrote.
//!
//! A write-only key seals its packs, trees and snapshots with a data key of its own. It
//! holds the repository's metadata key (index files, announcements) and content keys (so
//! its chunks deduplicate against everyone's), but not the encryption key: it cannot open
//! what full keys or other write-only keys sealed. Full keys find its data key in its key
//! record, which only they can open (and only they can write).

use serde::{Deserialize, Serialize};

use super::config::Config;
use super::crypto::{ContentKeys, Keys, SealKeyId, SecretKey, deserialize_secret, serialize_secret};
use super::error::{FormatError, Result};
use super::file::{self, KEY_RECORD};
use super::id::Id;

/// The `access` label of a write-only key file.
pub const WRITE_ONLY: &str = "write-only";

/// `keyring/<id>`: one write-only key's data key, sealed with the encryption key (so only
/// full keys read or write it). Never deleted: what the key wrote stays readable after its
/// key file is removed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Record format version (1).
    pub version: u32,
    /// RFC 3339, UTC.
    pub created: String,
    /// The host label the key was made for.
    pub host: String,
    /// The user label the key was made for.
    pub username: String,
    /// The write-only key's data key.
    #[serde(serialize_with = "serialize_secret", deserialize_with = "deserialize_secret")]
    pub key: SecretKey,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRecord({} {}@{})", self.key_id().to_hex(), self.username, self.host)
    }
}

impl KeyRecord {
    /// The id objects sealed with this data key carry.
    pub fn key_id(&self) -> SealKeyId {
        SealKeyId::of(&self.key)
    }

    /// The sealed record; its plaintext is wiped.
    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, getrandom::Error> {
        file::seal_secret(keys, KEY_RECORD, &secret_json(self))
    }

    /// Opens a sealed record (only a full key can).
    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<KeyRecord> {
        let plain = file::open_secret(keys, KEY_RECORD, bytes)?;
        let r: KeyRecord =
            serde_json::from_slice(&plain).map_err(|e| FormatError::invalid(KEY_RECORD.name, e.to_string()))?;
        file::check_json_version(KEY_RECORD, r.version, 1)?;
        Ok(r)
    }
}

/// What a write-only key file wraps: every key and setting a backup needs, and no more.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteOnlyPayload {
    /// Payload format version (1).
    pub version: u32,
    /// Always [`WRITE_ONLY`].
    pub access: String,
    /// Its own data key (packs, trees, snapshots).
    #[serde(serialize_with = "serialize_secret", deserialize_with = "deserialize_secret")]
    pub writer_key: SecretKey,
    /// The repository's metadata key (index files, announcements).
    #[serde(serialize_with = "serialize_secret", deserialize_with = "deserialize_secret")]
    pub metadata_key: SecretKey,
    /// The repository's blob id and chunker keys.
    pub content_keys: ContentKeys,
    /// The repository's config, which a write-only key cannot open itself.
    pub config: Config,
    /// BLAKE3 of the stored config file: the config this payload copies.
    pub config_file: Id,
}

impl std::fmt::Debug for WriteOnlyPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriteOnlyPayload({})", SealKeyId::of(&self.writer_key).to_hex())
    }
}

impl WriteOnlyPayload {
    /// The keys it gives.
    pub fn keys(&self) -> Keys {
        Keys::write_only(self.writer_key.clone(), self.metadata_key.clone(), self.content_keys.clone())
    }

    /// Checks version, label and config.
    pub fn validate(&self) -> Result<()> {
        if self.version != 1 {
            return Err(FormatError::UnsupportedVersion { what: "write-only key", version: u64::from(self.version) });
        }
        if self.access != WRITE_ONLY {
            return Err(FormatError::invalid("write-only key", format!("access {:?}", self.access)));
        }
        self.config.validate()
    }

    /// Its JSON, in a buffer that is wiped when dropped.
    pub fn to_secret_json(&self) -> zeroize::Zeroizing<Vec<u8>> {
        secret_json(self)
    }

    /// Parses and validates its JSON.
    pub fn from_json(bytes: &[u8]) -> Result<WriteOnlyPayload> {
        let p: WriteOnlyPayload =
            serde_json::from_slice(bytes).map_err(|e| FormatError::invalid("write-only key", e.to_string()))?;
        p.validate()?;
        Ok(p)
    }
}

/// JSON of a value holding keys, written into a buffer large enough not to move.
fn secret_json<T: Serialize>(v: &T) -> zeroize::Zeroizing<Vec<u8>> {
    let mut json = zeroize::Zeroizing::new(Vec::with_capacity(4096));
    // Serialising vault's own structs into memory cannot fail.
    let _ = serde_json::to_writer(&mut *json, v);
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ObjectKind;

    fn full() -> Keys {
        Keys::from_master(SecretKey::from_bytes([3; 32]))
    }

    fn payload(full: &Keys) -> WriteOnlyPayload {
        WriteOnlyPayload {
            version: 1,
            access: WRITE_ONLY.into(),
            writer_key: SecretKey::from_bytes([4; 32]),
            metadata_key: full.metadata_key().clone(),
            content_keys: full.content_keys(),
            config: Config::new(Id([1; 32])),
            config_file: Id([2; 32]),
        }
    }

    #[test]
    fn a_write_only_key_reads_only_its_own_and_the_metadata() {
        let mut full = full();
        let p = payload(&full);
        let w = p.keys();
        // Its own objects open for itself and, once the record is known, for full keys.
        let snap = w.seal(ObjectKind::Snapshot, None, b"mine").unwrap();
        assert_eq!(w.open(ObjectKind::Snapshot, None, &snap).unwrap(), b"mine");
        assert!(matches!(full.open(ObjectKind::Snapshot, None, &snap), Err(FormatError::Authentication)));
        full.add_writer_key(p.writer_key.clone());
        assert_eq!(full.open(ObjectKind::Snapshot, None, &snap).unwrap(), b"mine");
        // What full keys seal is not its to read.
        let theirs = full.seal(ObjectKind::Snapshot, None, b"theirs").unwrap();
        assert!(matches!(w.open(ObjectKind::Snapshot, None, &theirs), Err(FormatError::ForeignKey)));
        // Index files: full keys in a shared repository seal them for both.
        full.set_shared(true);
        let idx = full.seal(ObjectKind::Index, None, b"i").unwrap();
        assert_eq!(w.open(ObjectKind::Index, None, &idx).unwrap(), b"i");
        assert_eq!(w.blob_id(b"x"), full.blob_id(b"x"));
    }

    #[test]
    fn a_write_only_key_cannot_forge_what_it_may_not_write() {
        let mut full = full();
        let p = payload(&full);
        full.add_writer_key(p.writer_key.clone());
        let w = p.keys();
        // Sealed with its data key or the metadata key, none of these is accepted.
        for kind in [ObjectKind::Config, ObjectKind::CheckRecord, ObjectKind::KeyRecord] {
            let forged = w.seal(kind, None, b"forged").unwrap();
            assert!(matches!(full.open(kind, None, &forged), Err(FormatError::Authentication)), "{kind:?}");
        }
        // A snapshot sealed with the metadata key (which every write-only key holds).
        let meta_only = Keys::write_only(full.metadata_key().clone(), full.metadata_key().clone(), full.content_keys());
        let forged = meta_only.seal(ObjectKind::Snapshot, None, b"forged").unwrap();
        assert!(matches!(full.open(ObjectKind::Snapshot, None, &forged), Err(FormatError::Authentication)));
        // Tombstones without the authority tag.
        let t = crate::tombstone::Tombstone {
            version: 1,
            time: String::new(),
            hostname: String::new(),
            command: "forget".into(),
            snapshots: Vec::new(),
        };
        use crate::file::SealedDocument;
        let forged = t.encode(&w).unwrap();
        let err = crate::tombstone::Tombstone::decode(&full, &forged).unwrap_err();
        assert!(err.to_string().contains("not written by a full key"), "{err}");
        assert!(crate::tombstone::Tombstone::decode(&w, &forged).is_ok());
        full.set_shared(true);
        let genuine = t.encode(&full).unwrap();
        assert_eq!(genuine[4], file::VERSION_TAGGED);
        assert!(crate::tombstone::Tombstone::decode(&full, &genuine).is_ok());
        assert!(crate::tombstone::Tombstone::decode(&w, &genuine).is_ok());
    }

    #[test]
    fn a_random_nonce_that_starts_like_a_key_id_still_opens() {
        // The 2^-64 case: the encryption key's random nonce begins with the metadata id.
        let full = full();
        let mut nonce = [7u8; 24];
        nonce[..8].copy_from_slice(&full.metadata_id().0);
        let sealed = full.seal_with_nonce(&nonce, ObjectKind::Snapshot, None, b"s");
        assert_eq!(full.sealer_of(&sealed), Some(crate::crypto::Sealer::Metadata));
        let (sealer, plain) = full.open_from(ObjectKind::Snapshot, None, &sealed).unwrap();
        assert_eq!((sealer, plain.as_slice()), (crate::crypto::Sealer::Full, &b"s"[..]));
        // In place: the metadata key may not open a snapshot, so the bytes are intact
        // for the epoch-1 key.
        let mut in_place = sealed.clone();
        let range = full.open_in_place(ObjectKind::Snapshot, None, &mut in_place).unwrap().unwrap();
        assert_eq!(&in_place[range], b"s");
        // An index the metadata key may open: its failed attempt spoils the bytes, and
        // the caller is told to open a fresh copy, which succeeds.
        let index = full.seal_with_nonce(&nonce, ObjectKind::Index, None, b"i");
        let mut in_place = index.clone();
        assert_eq!(full.open_in_place(ObjectKind::Index, None, &mut in_place).unwrap(), None);
        assert_eq!(full.open(ObjectKind::Index, None, &index).unwrap(), b"i");
        // A damaged object whose nonce names no fallback is an authentication failure.
        let mut bad = full.seal(ObjectKind::Index, None, b"i").unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            full.open_in_place(ObjectKind::Index, None, &mut bad),
            Err(crate::error::FormatError::Authentication)
        ));
    }

    #[test]
    fn records_and_payloads_round_trip_without_showing_keys() {
        let full = full();
        let r = KeyRecord {
            version: 1,
            created: "2026-12-02T00:00:00Z".into(),
            host: "h".into(),
            username: "u".into(),
            key: SecretKey::from_bytes([9; 32]),
        };
        let back = KeyRecord::decode(&full, &r.encode(&full).unwrap()).unwrap();
        assert_eq!(back.key, r.key);
        assert!(!format!("{r:?}").contains("0909"));
        let p = payload(&full);
        let json = p.to_secret_json();
        let back = WriteOnlyPayload::from_json(&json).unwrap();
        assert_eq!(back.writer_key, p.writer_key);
        assert!(!format!("{p:?}").contains("0404"));
        // A write-only key cannot open a record.
        assert!(KeyRecord::decode(&p.keys(), &r.encode(&full).unwrap()).is_err());
    }
}
