//! Key hierarchy and authenticated encryption.
//!
//! One random 256-bit master key per repository. Every purpose gets its own sub-key,
//! derived with BLAKE3 `derive_key` and a versioned context string, so no key ever serves
//! two purposes. Objects are sealed with XChaCha20-Poly1305 under a random 192-bit nonce;
//! the associated data binds the format version, the object kind and, for blobs, the blob id.

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::FORMAT_VERSION;
use super::error::{FormatError, Result};
use super::id::BlobId;

/// Length of every symmetric key, in bytes.
pub const KEY_LEN: usize = 32;
pub(crate) const NONCE_LEN: usize = 24;
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

/// The kinds of sealed object. The byte value enters the associated data, so an object of
/// one kind never decrypts as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjectKind {
    /// A key file's wrapped master key.
    KeyFile = 1,
    /// The repository config.
    Config = 2,
    /// An index file.
    Index = 3,
    /// A snapshot.
    Snapshot = 4,
    /// A pack's header.
    PackHeader = 5,
    /// A data blob (file content).
    DataBlob = 6,
    /// A tree blob (a directory listing).
    TreeBlob = 7,
    /// A check record.
    CheckRecord = 8,
    /// A writer's announcement.
    Announcement = 9,
    /// A prune's condemnation.
    Condemnation = 10,
    /// A prune's wait record.
    WaitRecord = 11,
    /// A forget's tombstone.
    Tombstone = 12,
}

/// Serialises a secret key as 64 hex digits without leaving unwiped copies of them.
fn serialize_secret<S: serde::Serializer>(key: &SecretKey, s: S) -> std::result::Result<S::Ok, S::Error> {
    let mut digits = zeroize::Zeroizing::new([0u8; 2 * KEY_LEN]);
    // Cannot fail: the buffer is exactly twice the key's length.
    let _ = hex::encode_to_slice(key.expose(), &mut digits[..]);
    s.serialize_str(std::str::from_utf8(&digits[..]).unwrap_or_default())
}

/// Reads 64 hex digits borrowed from the (wiped) plaintext, so no copy of them is left.
fn deserialize_secret<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<SecretKey, D::Error> {
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

/// The sub-keys derived from a repository's master key.
#[derive(Clone)]
pub struct Keys {
    master: SecretKey,
    encryption: SecretKey,
    blob_id: SecretKey,
    chunker: SecretKey,
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
        Keys {
            encryption: derive(CONTEXT_ENCRYPTION),
            blob_id: derive(CONTEXT_BLOB_ID),
            chunker: derive(CONTEXT_CHUNKER),
            master,
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

    /// The master key (wrapped into key files).
    pub fn master(&self) -> &SecretKey {
        &self.master
    }

    /// The subkey the chunker's gear table comes from.
    pub fn chunker_key(&self) -> &SecretKey {
        &self.chunker
    }

    /// Keyed BLAKE3-256 of a blob's plaintext. Keyed, so that a storage provider cannot
    /// confirm that a known file is present by hashing it.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(super::Id(*blake3::keyed_hash(self.blob_id.expose(), plaintext).as_bytes()))
    }

    /// Encrypts `plaintext` with a fresh random nonce, bound to `kind` and, for blobs, to the blob's id.
    pub fn seal(&self, kind: ObjectKind, blob: Option<&BlobId>, plaintext: &[u8]) -> Result<Vec<u8>, getrandom::Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        Ok(seal_with_nonce(&self.encryption, &nonce, kind, blob, plaintext))
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
        let mut buf = Vec::with_capacity(NONCE_LEN + capacity + TAG_LEN);
        buf.resize(NONCE_LEN, 0);
        getrandom::fill(&mut buf[..NONCE_LEN])?;
        write(&mut buf);
        seal_in_place(&self.encryption, &mut buf, kind, blob);
        Ok(buf)
    }

    /// Decrypts what [`Keys::seal`] sealed with the same `kind` and `blob`; any change is an authentication error.
    pub fn open(&self, kind: ObjectKind, blob: Option<&BlobId>, sealed: &[u8]) -> Result<Vec<u8>> {
        open(&self.encryption, kind, blob, sealed)
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
        seal_with_nonce(&self.encryption, nonce, kind, blob, plaintext)
    }
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
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ad = associated_data(kind, blob);
    let (nonce, msg) = buf.split_at_mut(NONCE_LEN);
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(nonce), &ad, msg)
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    buf.extend_from_slice(&tag);
}

/// Opens `nonce || ciphertext || tag` with `key` directly (used with the key-file wrapping key).
pub fn open(key: &SecretKey, kind: ObjectKind, blob: Option<&BlobId>, sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(FormatError::Truncated("sealed object"));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ad = associated_data(kind, blob);
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &ad }).map_err(|_| FormatError::Authentication)
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
        assert_eq!(format!("{:?}", k.master()), "<redacted>");
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
        assert_ne!(k.encryption.expose(), k.blob_id.expose());
        assert_ne!(k.blob_id.expose(), k.chunker.expose());
        assert_ne!(k.master.expose(), k.encryption.expose());
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
