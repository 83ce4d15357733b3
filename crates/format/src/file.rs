//! The sealed file envelope used by config, index and snapshot files:
//!
//! ```text
//! file := magic[4] | version:u8 | nonce[24] | ciphertext | tag[16]
//! ```
//! The plaintext is a [`super::blob`] envelope.

use super::FORMAT_VERSION;
use super::blob::{self, Compression, Padding};
use super::crypto::{Keys, ObjectKind};
use super::error::{FormatError, Result};

pub(crate) const MAGIC_CONFIG: &[u8; 4] = b"VLTc";
pub(crate) const MAGIC_INDEX: &[u8; 4] = b"VLTi";
pub(crate) const MAGIC_SNAPSHOT: &[u8; 4] = b"VLTs";
pub(crate) const MAGIC_PACK: &[u8; 4] = b"VLTp";
pub(crate) const MAGIC_CHECK: &[u8; 4] = b"VLTk";
pub(crate) const MAGIC_ANNOUNCEMENT: &[u8; 4] = b"VLTa";
pub(crate) const MAGIC_CONDEMNATION: &[u8; 4] = b"VLTd";
pub(crate) const MAGIC_WAIT: &[u8; 4] = b"VLTw";
pub(crate) const MAGIC_TOMBSTONE: &[u8; 4] = b"VLTf";

/// Largest plaintext accepted for a sealed file (index files are the largest).
pub(crate) const MAX_FILE_PLAINTEXT: usize = 512 * 1024 * 1024;

#[derive(Clone, Copy, Debug)]
/// What tells one kind of sealed file from another: its magic, its AEAD object kind and its name in errors.
pub struct FileKind {
    /// The four bytes a file of this kind starts with.
    pub magic: &'static [u8; 4],
    /// The object kind its seal is bound to.
    pub object: ObjectKind,
    /// Its name in messages.
    pub name: &'static str,
}

/// The repository config.
pub const CONFIG: FileKind = FileKind { magic: MAGIC_CONFIG, object: ObjectKind::Config, name: "config" };
/// An index file.
pub const INDEX: FileKind = FileKind { magic: MAGIC_INDEX, object: ObjectKind::Index, name: "index" };
/// A snapshot.
pub const SNAPSHOT: FileKind = FileKind { magic: MAGIC_SNAPSHOT, object: ObjectKind::Snapshot, name: "snapshot" };
pub(crate) const CHECK_RECORD: FileKind =
    FileKind { magic: MAGIC_CHECK, object: ObjectKind::CheckRecord, name: "check record" };
pub(crate) const ANNOUNCEMENT: FileKind =
    FileKind { magic: MAGIC_ANNOUNCEMENT, object: ObjectKind::Announcement, name: "writer announcement" };
pub(crate) const CONDEMNATION: FileKind =
    FileKind { magic: MAGIC_CONDEMNATION, object: ObjectKind::Condemnation, name: "condemnation" };
pub(crate) const WAIT_RECORD: FileKind =
    FileKind { magic: MAGIC_WAIT, object: ObjectKind::WaitRecord, name: "wait record" };
pub(crate) const TOMBSTONE: FileKind =
    FileKind { magic: MAGIC_TOMBSTONE, object: ObjectKind::Tombstone, name: "tombstone" };

/// A JSON document sealed as a file of one kind, with a `version` field.
pub trait SealedDocument: serde::Serialize + serde::de::DeserializeOwned {
    /// Its file kind (magic, sealing purpose, name in errors).
    const KIND: FileKind;
    /// The one `version` this build reads and writes.
    const VERSION: u32;
    /// The document's `version` field.
    fn version(&self) -> u32;

    /// Its JSON plaintext.
    fn to_json(&self) -> Vec<u8> {
        to_json(self)
    }

    /// Seals it (zstd; these documents are small and repetitive).
    fn encode(&self, keys: &Keys) -> Result<Vec<u8>, getrandom::Error> {
        seal_json(keys, Self::KIND, self, Compression::default())
    }

    /// Opens a sealed document and checks its version.
    fn decode(keys: &Keys, bytes: &[u8]) -> Result<Self> {
        let d: Self = open_json(keys, Self::KIND, bytes)?;
        check_json_version(Self::KIND, d.version(), Self::VERSION)?;
        Ok(d)
    }
}

/// A sealed file of `kind`: header, then `plaintext` compressed and sealed.
pub fn seal(
    keys: &Keys,
    kind: FileKind,
    plaintext: &[u8],
    compression: Compression,
) -> Result<Vec<u8>, getrandom::Error> {
    let env = blob::encode(plaintext, compression, Padding::None);
    let sealed = keys.seal(kind.object, None, &env)?;
    Ok(frame(kind, &sealed))
}

/// [`seal`] with a given nonce, for golden vectors.
pub fn seal_with_nonce(
    keys: &Keys,
    kind: FileKind,
    plaintext: &[u8],
    compression: Compression,
    nonce: &[u8; 24],
) -> Vec<u8> {
    let env = blob::encode(plaintext, compression, Padding::None);
    frame(kind, &keys.seal_with_nonce(nonce, kind.object, None, &env))
}

fn frame(kind: FileKind, sealed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + sealed.len());
    out.extend_from_slice(kind.magic);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(sealed);
    out
}

/// Checks the header of a sealed file of `kind`, then opens and decompresses it.
pub fn open(keys: &Keys, kind: FileKind, bytes: &[u8]) -> Result<Vec<u8>> {
    check_header(kind.magic, kind.name, bytes)?;
    let env = keys.open(kind.object, None, &bytes[5..])?;
    blob::decode(&env, MAX_FILE_PLAINTEXT)
}

/// [`seal`] of an uncompressed plaintext that holds secrets: the copy made on the way is
/// wiped.
pub(crate) fn seal_secret(keys: &Keys, kind: FileKind, plaintext: &[u8]) -> Result<Vec<u8>, getrandom::Error> {
    let env = zeroize::Zeroizing::new(blob::encode(plaintext, Compression::Off, Padding::None));
    let sealed = keys.seal(kind.object, None, &env)?;
    Ok(frame(kind, &sealed))
}

/// [`open`] of a file whose plaintext holds secrets: every copy is wiped when dropped.
pub(crate) fn open_secret(keys: &Keys, kind: FileKind, bytes: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    check_header(kind.magic, kind.name, bytes)?;
    let env = zeroize::Zeroizing::new(keys.open(kind.object, None, &bytes[5..])?);
    Ok(zeroize::Zeroizing::new(blob::decode(&env, MAX_FILE_PLAINTEXT)?))
}

/// Seals a JSON document (config, snapshot, check record) as a file of `kind`.
pub(crate) fn seal_json<T: serde::Serialize>(
    keys: &Keys,
    kind: FileKind,
    value: &T,
    compression: Compression,
) -> Result<Vec<u8>, getrandom::Error> {
    seal(keys, kind, &to_json(value), compression)
}

/// The JSON bytes of a document. Serialising vault's own types (string keys only) cannot
/// fail; an empty document would be refused when read back, so nothing is hidden.
pub fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Opens a sealed JSON document of `kind`.
pub(crate) fn open_json<T: serde::de::DeserializeOwned>(keys: &Keys, kind: FileKind, bytes: &[u8]) -> Result<T> {
    let plain = open(keys, kind, bytes)?;
    serde_json::from_slice(&plain).map_err(|e| FormatError::invalid(kind.name, e.to_string()))
}

/// Checks the version field inside a JSON document.
pub(crate) fn check_json_version(kind: FileKind, version: u32, supported: u32) -> Result<()> {
    if version != supported {
        return Err(FormatError::UnsupportedVersion { what: kind.name, version: u64::from(version) });
    }
    Ok(())
}

pub(crate) fn check_header(magic: &[u8; 4], what: &'static str, bytes: &[u8]) -> Result<()> {
    if bytes.len() < 5 {
        return Err(FormatError::Truncated(what));
    }
    if &bytes[..4] != magic {
        return Err(FormatError::invalid(what, "wrong magic bytes"));
    }
    if bytes[4] != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion { what, version: u64::from(bytes[4]) });
    }
    Ok(())
}
