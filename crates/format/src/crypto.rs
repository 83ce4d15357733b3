//! Key hierarchy and authenticated encryption.
//!
//! One random 256-bit master key per repository. Every purpose gets its own sub-key,
//! derived with BLAKE3 `derive_key` and a versioned context string, so no key ever serves
//! two purposes. Objects are sealed with XChaCha20-Poly1305 under a random 192-bit nonce;
//! the associated data binds the format version, the object kind and, for blobs, the blob id.

use std::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::FORMAT_VERSION;
use super::error::{FormatError, Result};
use super::id::BlobId;
pub use super::object_kind::ObjectKind;

/// Length of every symmetric key, in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a sealed object's nonce.
pub const NONCE_LEN: usize = 24;
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext.
pub(crate) const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// BLAKE3 derive-key context of the encryption subkey.
pub const CONTEXT_ENCRYPTION: &str = "vault repository v1 2026-11 encryption key";
/// BLAKE3 derive-key context of the blob id subkey.
pub const CONTEXT_BLOB_ID: &str = "vault repository v1 2026-11 blob id key";
/// BLAKE3 derive-key context of the chunker's gear-table subkey.
pub const CONTEXT_CHUNKER: &str = "vault repository v1 2026-11 chunker gear key";

/// 32 secret bytes that are wiped on drop and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Takes ownership of key bytes; they are zeroized when the key drops.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(bytes)
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut k = [0u8; KEY_LEN];
        getrandom::fill(&mut k)?;
        Ok(SecretKey(k))
    }

    /// The raw key bytes, for the few places that must hash or wrap them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Serialises a secret key as 64 hex digits without leaving unwiped copies of them.
pub(crate) fn serialize_secret<S: serde::Serializer>(key: &SecretKey, s: S) -> std::result::Result<S::Ok, S::Error> {
    let mut digits = zeroize::Zeroizing::new([0u8; 2 * KEY_LEN]);
    // Cannot fail: the buffer is exactly twice the key's length.
    let _ = hex::encode_to_slice(key.expose(), &mut digits[..]);
    s.serialize_str(std::str::from_utf8(&digits[..]).unwrap_or_default())
}

/// Reads 64 hex digits borrowed from the (wiped) plaintext, so no copy of them is left.
pub(crate) fn deserialize_secret<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<SecretKey, D::Error> {
    let digits: &'de str = serde::Deserialize::deserialize(d)?;
    let mut k = [0u8; KEY_LEN];
    hex::decode_to_slice(digits, &mut k).map_err(|_| serde::de::Error::custom("a key must be 64 hex digits"))?;
    Ok(SecretKey(k))
}

/// The sub-keys that decide blob ids and chunk boundaries. A repository initialised to
/// deduplicate with another (`init --copy-chunker-params`) stores that one's in its
/// config, so the same content has the same chunks and ids in both; its encryption key
/// stays its own.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentKeys {
    /// The blob id key.
    #[serde(serialize_with = "serialize_secret", deserialize_with = "deserialize_secret")]
    pub blob_id: SecretKey,
    /// The chunker gear key.
    #[serde(serialize_with = "serialize_secret", deserialize_with = "deserialize_secret")]
    pub chunker: SecretKey,
}

impl fmt::Debug for ContentKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKeys(<redacted>)")
    }
}

impl ContentKeys {
    /// A public name for these keys: equal keys give equal fingerprints, and the
    /// fingerprint reveals nothing of the keys.
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new_derive_key(CONTEXT_FINGERPRINT);
        h.update(self.blob_id.expose());
        h.update(self.chunker.expose());
        h.finalize().to_hex().to_string()
    }
}

/// BLAKE3 derive-key context of the public fingerprint of content keys.
pub const CONTEXT_FINGERPRINT: &str = "vault repository v1 2026-12 content keys fingerprint";

/// BLAKE3 derive-key context of the metadata key (index files and writer announcements,
/// which write-only keys read and write too).
pub const CONTEXT_METADATA: &str = "vault repository v2 2026-12 metadata key";
/// BLAKE3 derive-key context of the authority key: full keys tag what only they may write.
pub const CONTEXT_AUTHORITY: &str = "vault repository v2 2026-12 authority key";
/// BLAKE3 derive-key context of a sealing key's public id.
pub const CONTEXT_KEY_ID: &str = "vault repository v2 2026-12 key id";
/// Bytes of a sealing key's id, which starts the nonce of everything sealed with it.
pub const SEAL_KEY_ID_LEN: usize = 8;

/// The public name of a sealing key other than the repository's own encryption key: the
/// first 8 bytes of a BLAKE3 derive-key over it. Objects sealed with such a key start
/// their nonce with it, so a reader knows which key to use without trying them all.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SealKeyId(pub [u8; SEAL_KEY_ID_LEN]);

impl SealKeyId {
    /// The id of `key`.
    pub fn of(key: &SecretKey) -> SealKeyId {
        let d = blake3::derive_key(CONTEXT_KEY_ID, key.expose());
        let mut id = [0u8; SEAL_KEY_ID_LEN];
        id.copy_from_slice(&d[..SEAL_KEY_ID_LEN]);
        SealKeyId(id)
    }

    /// The first bytes of a sealed object's nonce (which name its key, if it has one).
    pub fn of_sealed(sealed: &[u8]) -> Option<SealKeyId> {
        let b: [u8; SEAL_KEY_ID_LEN] = sealed.get(..SEAL_KEY_ID_LEN)?.try_into().ok()?;
        Some(SealKeyId(b))
    }

    /// 16 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for SealKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKeyId({})", self.to_hex())
    }
}

/// Which key sealed an object, as far as the reader can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sealer {
    /// The repository's encryption key: only full keys hold it.
    Full,
    /// The metadata key, which write-only keys hold too.
    Metadata,
    /// One write-only key's own data key.
    Writer(SealKeyId),
}

/// What an object of a kind may be sealed with (spec §5.1): a reader refuses the rest, so
/// a write-only key cannot forge what it must not write.
fn allowed(kind: ObjectKind, sealer: Sealer) -> bool {
    use ObjectKind::*;
    match sealer {
        Sealer::Full => true,
        Sealer::Writer(_) => matches!(kind, DataBlob | TreeBlob | PackHeader | Snapshot),
        // A write-only key publishes its own agreement key (spec §3.2).
        Sealer::Metadata => metadata_kind(kind) || kind == MemberRecord,
    }
}

/// The kinds the metadata key may seal: what write-only keys read (index files,
/// announcements) and what a full key's authority tag vouches for (the prune's and
/// forget's records). A full key seals them with it once the repository has write-only keys.
pub fn metadata_kind(kind: ObjectKind) -> bool {
    use ObjectKind::*;
    matches!(kind, Index | Announcement | Condemnation | WaitRecord | Tombstone)
}

/// The keys of an epoch before the current one (spec §3.2).
#[derive(Clone)]
struct PastEpoch {
    encryption: Option<SecretKey>,
    encryption_id: Option<SealKeyId>,
    authority: Option<SecretKey>,
    metadata: SecretKey,
    metadata_id: SealKeyId,
}

/// The sub-keys derived from a repository's master key, or, for a write-only key, the
/// few keys it is given (spec §3.1).
#[derive(Clone)]
pub struct Keys {
    /// The master key of epoch 1, which full key files wrap; `None` for a write-only key.
    master: Option<SecretKey>,
    /// The master keys of epochs 2, 3, … (full keys), which grants give (spec §3.2).
    epoch_masters: Vec<SecretKey>,
    /// The current key epoch: 1 until the repository's key is rotated.
    epoch: u32,
    /// The keys of earlier epochs, oldest first: they open what was sealed then.
    past: Vec<PastEpoch>,
    /// The current encryption key of full keys; `None` for a write-only key.
    encryption: Option<SecretKey>,
    /// Its id: none in epoch 1, whose objects have random nonces.
    encryption_id: Option<SealKeyId>,
    authority: Option<SecretKey>,
    blob_id: SecretKey,
    chunker: SecretKey,
    metadata: SecretKey,
    metadata_id: SealKeyId,
    /// Write-only keys' data keys this reader holds, by id.
    writers: Vec<(SealKeyId, SecretKey)>,
    /// A write-only key: the id of its own data key, which seals all it writes.
    own_writer: Option<SealKeyId>,
    /// Whether index files and the prune's records are sealed with the metadata key (once
    /// the repository has write-only keys, so that they can read them).
    shared: bool,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    /// Derives the subkeys from the master key.
    pub fn from_master(master: SecretKey) -> Self {
        let derive = |ctx: &str| SecretKey(blake3::derive_key(ctx, master.expose()));
        let metadata = derive(CONTEXT_METADATA);
        Keys {
            encryption: Some(derive(CONTEXT_ENCRYPTION)),
            authority: Some(derive(CONTEXT_AUTHORITY)),
            blob_id: derive(CONTEXT_BLOB_ID),
            chunker: derive(CONTEXT_CHUNKER),
            metadata_id: SealKeyId::of(&metadata),
            metadata,
            writers: Vec::new(),
            own_writer: None,
            shared: false,
            master: Some(master),
            epoch_masters: Vec::new(),
            epoch: 1,
            past: Vec::new(),
            encryption_id: None,
        }
    }

    /// The keys of a write-only key: its own data key, the repository's metadata key and
    /// its content keys. It reads nothing others sealed but index files and announcements.
    pub fn write_only(writer: SecretKey, metadata: SecretKey, content: ContentKeys) -> Self {
        let id = SealKeyId::of(&writer);
        Keys {
            master: None,
            epoch_masters: Vec::new(),
            epoch: 1,
            past: Vec::new(),
            encryption: None,
            encryption_id: None,
            authority: None,
            blob_id: content.blob_id.clone(),
            chunker: content.chunker.clone(),
            metadata_id: SealKeyId::of(&metadata),
            metadata,
            writers: vec![(id, writer)],
            own_writer: Some(id),
            shared: true,
        }
    }

    /// Adds a write-only key's data key (from its key record), so that what it sealed opens.
    pub fn add_writer_key(&mut self, key: SecretKey) -> SealKeyId {
        let id = SealKeyId::of(&key);
        if !self.writers.iter().any(|(i, _)| *i == id) {
            self.writers.push((id, key));
        }
        id
    }

    /// Seal index files, announcements and the prune's and forget's records with the
    /// metadata key (a repository with write-only keys), or with the encryption key.
    pub fn set_shared(&mut self, shared: bool) {
        if self.encryption.is_some() {
            self.shared = shared;
        }
    }

    /// Whether these are a full key's keys (the master key and everything derived).
    pub fn is_full(&self) -> bool {
        self.encryption.is_some()
    }

    /// A write-only key: the id of the data key it seals with.
    pub fn own_writer(&self) -> Option<SealKeyId> {
        self.own_writer
    }

    /// The metadata key, which a new write-only key is given.
    pub fn metadata_key(&self) -> &SecretKey {
        &self.metadata
    }

    /// The id of the metadata key.
    pub fn metadata_id(&self) -> SealKeyId {
        self.metadata_id
    }

    /// The tag that marks a file as written by a full key (spec §7.1); `None` for a
    /// write-only key, which cannot make one.
    pub fn authority_tag(&self, kind: ObjectKind, envelope: &[u8]) -> Option<[u8; 32]> {
        let a = self.authority.as_ref()?;
        let mut h = blake3::Hasher::new_keyed(a.expose());
        h.update(&[kind as u8]);
        h.update(envelope);
        Some(*h.finalize().as_bytes())
    }

    /// Whether `tag` is the authority tag of `envelope`: `None` when these keys cannot tell
    /// (a write-only key), else whether it matches (in constant time).
    /// The tag is checked with the authority key of the epoch whose metadata key sealed
    /// `sealed`: an old epoch's authority key proves nothing about a newer epoch's files.
    pub fn verify_authority(&self, kind: ObjectKind, sealed: &[u8], envelope: &[u8], tag: &[u8; 32]) -> Option<bool> {
        let id = SealKeyId::of_sealed(sealed);
        let a = if id == Some(self.metadata_id) {
            self.authority.as_ref()?
        } else {
            self.past.iter().find(|p| Some(p.metadata_id) == id).and_then(|p| p.authority.as_ref())?
        };
        let mut h = blake3::Hasher::new_keyed(a.expose());
        h.update(&[kind as u8]);
        h.update(envelope);
        Some(h.finalize() == blake3::Hash::from_bytes(*tag))
    }

    /// Whether objects of `kind` are sealed with the metadata key.
    pub fn seals_with_metadata(&self, kind: ObjectKind) -> bool {
        self.sealing_key(kind).1 == Some(self.metadata_id)
    }

    /// The key and the nonce prefix that objects of `kind` are sealed with.
    fn sealing_key(&self, kind: ObjectKind) -> (&SecretKey, Option<SealKeyId>) {
        use ObjectKind::*;
        let meta = (&self.metadata, Some(self.metadata_id));
        if let Some(own) = self.own_writer {
            return match kind {
                DataBlob | TreeBlob | PackHeader | Snapshot => match self.writers.iter().find(|(i, _)| *i == own) {
                    Some((_, k)) => (k, Some(own)),
                    None => meta,
                },
                // What a write-only key may not write is sealed where no reader accepts it.
                _ => meta,
            };
        }
        match &self.encryption {
            Some(_) if self.shared && metadata_kind(kind) => meta,
            Some(e) => (e, self.encryption_id),
            None => meta,
        }
    }

    /// These keys with the blob id and chunker keys replaced by `shared` (those of a
    /// repository whose config carries another's, §3 of the spec).
    pub fn with_content_keys(mut self, shared: Option<&ContentKeys>) -> Keys {
        if let Some(c) = shared {
            self.blob_id = c.blob_id.clone();
            self.chunker = c.chunker.clone();
        }
        self
    }

    /// The keys that decide blob ids and chunk boundaries, for a repository meant to
    /// deduplicate with this one.
    pub fn content_keys(&self) -> ContentKeys {
        ContentKeys { blob_id: self.blob_id.clone(), chunker: self.chunker.clone() }
    }

    /// The master key of epoch 1 (wrapped into key files); `None` for a write-only key.
    pub fn master(&self) -> Option<&SecretKey> {
        self.master.as_ref()
    }

    /// The current key epoch: 1, and one more with each rotation this key holds a grant of.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The master keys of epochs 2 to the current one (full keys).
    pub fn epoch_masters(&self) -> &[SecretKey] {
        &self.epoch_masters
    }

    /// The metadata keys of epoch 1 to the current one.
    pub fn metadata_keys(&self) -> Vec<SecretKey> {
        let mut v: Vec<SecretKey> = self.past.iter().map(|p| p.metadata.clone()).collect();
        v.push(self.metadata.clone());
        v
    }

    /// Names the current epoch's keys (the metadata key's id, which full and write-only
    /// keys of one epoch share) without revealing them.
    pub fn epoch_key_id(&self) -> SealKeyId {
        self.metadata_id
    }

    /// The data key of the write-only key with id `id`, if these keys hold it.
    pub fn writer_key(&self, id: SealKeyId) -> Option<&SecretKey> {
        self.writers.iter().find(|(i, _)| *i == id).map(|(_, k)| k)
    }

    /// The metadata key of epoch 1, which write-only key files wrap.
    pub fn base_metadata_key(&self) -> &SecretKey {
        self.past.first().map_or(&self.metadata, |p| &p.metadata)
    }

    fn push_past(&mut self) {
        self.past.push(PastEpoch {
            encryption: self.encryption.take(),
            encryption_id: self.encryption_id,
            authority: self.authority.take(),
            metadata: self.metadata.clone(),
            metadata_id: self.metadata_id,
        });
        self.epoch += 1;
    }

    /// Moves a full key into the next epoch, whose master key a grant gave (spec §3.2):
    /// new objects are sealed with that epoch's keys; every earlier epoch's still open.
    pub fn enter_epoch(&mut self, master: SecretKey) {
        if self.master.is_none() {
            return;
        }
        self.push_past();
        let derive = |ctx: &str| SecretKey(blake3::derive_key(ctx, master.expose()));
        let encryption = derive(CONTEXT_ENCRYPTION);
        self.encryption_id = Some(SealKeyId::of(&encryption));
        self.encryption = Some(encryption);
        self.authority = Some(derive(CONTEXT_AUTHORITY));
        self.metadata = derive(CONTEXT_METADATA);
        self.metadata_id = SealKeyId::of(&self.metadata);
        self.epoch_masters.push(master);
    }

    /// Moves a write-only key into the next epoch: its metadata key.
    pub fn enter_metadata_epoch(&mut self, metadata: SecretKey) {
        if self.master.is_some() {
            return;
        }
        self.push_past();
        self.metadata_id = SealKeyId::of(&metadata);
        self.metadata = metadata;
    }

    /// The epoch of the encryption or metadata key that sealed `sealed`, judged by its
    /// nonce; `None` for a write-only key's data key or a key these keys do not hold.
    pub fn epoch_of(&self, sealed: &[u8]) -> Option<u32> {
        let id = SealKeyId::of_sealed(sealed)?;
        if Some(id) == self.encryption_id || id == self.metadata_id {
            return Some(self.epoch);
        }
        if let Some(i) = self.past.iter().position(|p| Some(id) == p.encryption_id || id == p.metadata_id) {
            return Some(i as u32 + 1);
        }
        if self.writers.iter().any(|(w, _)| *w == id) {
            return None;
        }
        // Epoch 1's encryption key seals with random nonces.
        self.base_encryption().map(|_| 1)
    }

    /// Epoch 1's encryption key.
    fn base_encryption(&self) -> Option<&SecretKey> {
        match self.past.first() {
            Some(p) => p.encryption.as_ref(),
            None => self.encryption.as_ref(),
        }
    }

    /// The subkey the chunker's gear table comes from.
    pub fn chunker_key(&self) -> &SecretKey {
        &self.chunker
    }

    /// The sealer of `sealed` by its nonce, and the key to open it with, if these keys hold it.
    /// The third value tells whether the key was chosen by the id the nonce starts with.
    fn opening_key(&self, sealed: &[u8]) -> Option<(Sealer, &SecretKey, bool)> {
        if let Some(id) = SealKeyId::of_sealed(sealed) {
            if id == self.metadata_id {
                return Some((Sealer::Metadata, &self.metadata, true));
            }
            if let (Some(e), true) = (&self.encryption, self.encryption_id == Some(id)) {
                return Some((Sealer::Full, e, true));
            }
            if let Some((_, k)) = self.writers.iter().find(|(i, _)| *i == id) {
                return Some((Sealer::Writer(id), k, true));
            }
            for p in self.past.iter().rev() {
                if p.metadata_id == id {
                    return Some((Sealer::Metadata, &p.metadata, true));
                }
                if let (Some(e), true) = (&p.encryption, p.encryption_id == Some(id)) {
                    return Some((Sealer::Full, e, true));
                }
            }
        }
        self.base_encryption().map(|e| (Sealer::Full, e, false))
    }

    /// Which key sealed `sealed`, judged by its nonce alone (unauthenticated: the object
    /// still has to open).
    pub fn sealer_of(&self, sealed: &[u8]) -> Option<Sealer> {
        self.opening_key(sealed).map(|(s, _, _)| s)
    }

    /// Keyed BLAKE3-256 of a blob's plaintext. Keyed, so that a storage provider cannot
    /// confirm that a known file is present by hashing it.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(super::Id(*blake3::keyed_hash(self.blob_id.expose(), plaintext).as_bytes()))
    }

    /// Encrypts `plaintext` with a fresh random nonce, bound to `kind` and, for blobs, to
    /// the blob's id, under the key objects of `kind` are sealed with.
    pub fn seal(&self, kind: ObjectKind, blob: Option<&BlobId>, plaintext: &[u8]) -> Result<Vec<u8>, getrandom::Error> {
        let (key, id) = self.sealing_key(kind);
        let nonce = fresh_nonce(id)?;
        Ok(seal_with_nonce(key, &nonce, kind, blob, plaintext))
    }

    /// Seals the plaintext that `write` appends to the buffer it is handed, encrypting it
    /// where it lies: a blob's bytes are copied once on their way into a pack, not three
    /// times. `capacity` is a hint for the plaintext's length.
    pub(crate) fn seal_with(
        &self,
        kind: ObjectKind,
        blob: Option<&BlobId>,
        capacity: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Vec<u8>, getrandom::Error> {
        let (key, id) = self.sealing_key(kind);
        let mut buf = Vec::with_capacity(NONCE_LEN + capacity + TAG_LEN);
        buf.extend_from_slice(&fresh_nonce(id)?);
        write(&mut buf);
        seal_in_place(key, &mut buf, kind, blob);
        Ok(buf)
    }

    /// Decrypts what [`Keys::seal`] sealed with the same `kind` and `blob`; any change is an
    /// authentication error, and so is a key that may not seal objects of `kind`.
    pub fn open(&self, kind: ObjectKind, blob: Option<&BlobId>, sealed: &[u8]) -> Result<Vec<u8>> {
        self.open_from(kind, blob, sealed).map(|(_, p)| p)
    }

    /// [`Keys::open`], also saying which key sealed the object. An object sealed with a
    /// key these keys do not hold is [`FormatError::ForeignKey`] for a write-only key (it
    /// is not for it to read) and an authentication failure for a full key.
    pub fn open_from(&self, kind: ObjectKind, blob: Option<&BlobId>, sealed: &[u8]) -> Result<(Sealer, Vec<u8>)> {
        let Some((sealer, key, by_id)) = self.opening_key(sealed) else {
            return Err(FormatError::ForeignKey);
        };
        let first =
            if allowed(kind, sealer) { open(key, kind, blob, sealed) } else { Err(FormatError::Authentication) };
        match first {
            // One in 2^64 random nonces of the encryption key starts like another key's id.
            Err(FormatError::Authentication) if by_id => match self.base_encryption() {
                Some(e) => open(e, kind, blob, sealed).map(|p| (Sealer::Full, p)),
                None => Err(FormatError::Authentication),
            },
            r => r.map(|p| (sealer, p)),
        }
    }

    /// [`Keys::open`] where the bytes lie, so a large object is not copied first: the
    /// plaintext is `sealed[range]` afterwards. `Ok(None)` when the key its nonce named
    /// failed and the epoch-1 key may still open it (one random nonce in 2^64 starts like
    /// a key id): the failed attempt has spoiled the bytes, so [`Keys::open`] must decide
    /// on a fresh copy.
    pub fn open_in_place(
        &self,
        kind: ObjectKind,
        blob: Option<&BlobId>,
        sealed: &mut [u8],
    ) -> Result<Option<std::ops::Range<usize>>> {
        let Some((sealer, key, by_id)) = self.opening_key(sealed) else {
            return Err(FormatError::ForeignKey);
        };
        let fallback = if by_id { self.base_encryption() } else { None };
        if allowed(kind, sealer) {
            return match open_in_place(key, kind, blob, sealed) {
                Err(FormatError::Authentication) if fallback.is_some() => Ok(None),
                r => r.map(Some),
            };
        }
        // Nothing was decrypted: the bytes are intact for the epoch-1 key.
        match fallback {
            Some(e) => open_in_place(e, kind, blob, sealed).map(Some),
            None => Err(FormatError::Authentication),
        }
    }

    /// Sealing with a chosen nonce: only for golden vectors and tests. Reusing a nonce under
    /// one key breaks confidentiality, so production code goes through [`Keys::seal`].
    pub fn seal_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        kind: ObjectKind,
        blob: Option<&BlobId>,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let (key, id) = self.sealing_key(kind);
        let mut n = *nonce;
        if let Some(id) = id {
            n[..SEAL_KEY_ID_LEN].copy_from_slice(&id.0);
        }
        seal_with_nonce(key, &n, kind, blob, plaintext)
    }
}

/// 24 random bytes, or the key's id followed by 16 random bytes (128 random bits keep
/// nonces apart for far more objects than one key ever seals).
fn fresh_nonce(id: Option<SealKeyId>) -> Result<[u8; NONCE_LEN], getrandom::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)?;
    if let Some(id) = id {
        nonce[..SEAL_KEY_ID_LEN].copy_from_slice(&id.0);
    }
    Ok(nonce)
}

/// The associated data every seal binds: `vault`, the format version, the object kind and, for blobs, the blob id.
pub fn associated_data(kind: ObjectKind, blob: Option<&BlobId>) -> Vec<u8> {
    let mut ad = Vec::with_capacity(7 + 32);
    ad.extend_from_slice(b"vault");
    ad.push(FORMAT_VERSION);
    ad.push(kind as u8);
    if let Some(id) = blob {
        ad.extend_from_slice(&id.0.0);
    }
    ad
}

/// `nonce || ciphertext || tag`.
pub fn seal_with_nonce(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    kind: ObjectKind,
    blob: Option<&BlobId>,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    buf.extend_from_slice(nonce);
    buf.extend_from_slice(plaintext);
    seal_in_place(key, &mut buf, kind, blob);
    buf
}

/// `buf` holds a nonce and the plaintext after it; the plaintext is encrypted in place and
/// the tag appended, which gives the sealed form `nonce | ciphertext | tag`.
fn seal_in_place(key: &SecretKey, buf: &mut Vec<u8>, kind: ObjectKind, blob: Option<&BlobId>) {
    let ad = associated_data(kind, blob);
    let (nonce, msg) = buf.split_at_mut(NONCE_LEN);
    let tag = super::aead::seal_in_place(key, nonce, &ad, msg);
    buf.extend_from_slice(&tag);
}

/// Opens `nonce || ciphertext || tag` with `key` directly (used with the key-file wrapping key).
pub fn open(key: &SecretKey, kind: ObjectKind, blob: Option<&BlobId>, sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(FormatError::Truncated("sealed object"));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    super::aead::open(key, nonce, &associated_data(kind, blob), ct)
}

/// [`open`] where the bytes lie; the plaintext is `sealed[range]` afterwards.
fn open_in_place(
    key: &SecretKey,
    kind: ObjectKind,
    blob: Option<&BlobId>,
    sealed: &mut [u8],
) -> Result<std::ops::Range<usize>> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(FormatError::Truncated("sealed object"));
    }
    let (nonce, ct) = sealed.split_at_mut(NONCE_LEN);
    let len = super::aead::open_in_place(key, nonce, &associated_data(kind, blob), ct)?;
    Ok(NONCE_LEN..NONCE_LEN + len)
}

/// The RustCrypto XChaCha20-Poly1305 that [`seal_with_nonce`] must match byte for byte:
/// the reference for tests and for `vault bench-primitives`.
pub fn seal_reference(key: &SecretKey, nonce: &[u8; NONCE_LEN], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    buf.extend_from_slice(nonce);
    buf.extend_from_slice(plaintext);
    let (n, msg) = buf.split_at_mut(NONCE_LEN);
    // In-memory encryption cannot fail below ChaCha20's 256 GiB limit.
    if let Ok(tag) = cipher.encrypt_in_place_detached(XNonce::from_slice(n), ad, msg) {
        buf.extend_from_slice(&tag);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::from_master(SecretKey::from_bytes([7u8; 32]))
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let k = keys();
        assert_eq!(format!("{:?}", k.master().unwrap()), "<redacted>");
        assert!(!format!("{k:?}").contains('7'));
    }

    #[test]
    fn kinds_and_blob_ids_are_bound() {
        let k = keys();
        let id = k.blob_id(b"x");
        let sealed = k.seal(ObjectKind::DataBlob, Some(&id), b"x").unwrap();
        assert!(k.open(ObjectKind::DataBlob, Some(&id), &sealed).is_ok());
        assert!(matches!(k.open(ObjectKind::TreeBlob, Some(&id), &sealed), Err(FormatError::Authentication)));
        let other = k.blob_id(b"y");
        assert!(matches!(k.open(ObjectKind::DataBlob, Some(&other), &sealed), Err(FormatError::Authentication)));
    }

    #[test]
    fn sub_keys_differ() {
        let k = keys();
        let e = k.encryption.as_ref().unwrap();
        assert_ne!(e.expose(), k.blob_id.expose());
        assert_ne!(k.blob_id.expose(), k.chunker.expose());
        assert_ne!(k.master.as_ref().unwrap().expose(), e.expose());
        assert_ne!(k.metadata.expose(), e.expose());
        assert_ne!(k.authority.as_ref().unwrap().expose(), e.expose());
    }

    proptest! {
        #[test]
        fn round_trip(data: Vec<u8>) {
            let k = keys();
            let sealed = k.seal(ObjectKind::Snapshot, None, &data).unwrap();
            prop_assert_eq!(sealed.len(), data.len() + SEAL_OVERHEAD);
            prop_assert_eq!(k.open(ObjectKind::Snapshot, None, &sealed).unwrap(), data);
        }

        #[test]
        fn any_flipped_bit_is_an_integrity_error(data in proptest::collection::vec(any::<u8>(), 0..512), pos: usize, bit in 0u8..8) {
            let k = keys();
            let mut sealed = k.seal(ObjectKind::Index, None, &data).unwrap();
            let i = pos % sealed.len();
            sealed[i] ^= 1 << bit;
            prop_assert!(matches!(k.open(ObjectKind::Index, None, &sealed), Err(FormatError::Authentication)));
        }

        #[test]
        fn truncation_is_an_error(data in proptest::collection::vec(any::<u8>(), 0..256), cut: usize) {
            let k = keys();
            let sealed = k.seal(ObjectKind::Index, None, &data).unwrap();
            let n = cut % sealed.len();
            prop_assert!(k.open(ObjectKind::Index, None, &sealed[..n]).is_err());
        }
    }
}
