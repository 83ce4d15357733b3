//! The sealed file envelope used by config, index and snapshot files:
//!
//! ```text
//! file := magic[4] | version:u8 | nonce[24] | ciphertext | tag[16]
//! ```
//! The plaintext is a [`super::blob`] envelope; in version 2 (a full key sealing with the
//! metadata key) an authority tag of 32 bytes precedes it.

use super::FORMAT_VERSION;
use super::blob::{self, Compression, Padding};
use super::crypto::{Keys, ObjectKind, Sealer};
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
pub(crate) const MAGIC_KEY_RECORD: &[u8; 4] = b"VLTr";
pub(crate) const MAGIC_MEMBER_RECORD: &[u8; 4] = b"VLTm";
/// Version byte of a file that carries an authority tag (spec §7.1).
pub const VERSION_TAGGED: u8 = 2;
const TAG_LEN: usize = 32;

/// Who wrote a sealed file, as far as the reader can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A full key: sealed with the encryption key, or tagged with the authority key.
    Full,
    /// The write-only key with this data key id.
    Writer(super::crypto::SealKeyId),
    /// Sealed with the metadata key, without an authority tag this reader could check:
    /// any key holder may have written it.
    Unverified,
}

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
/// A write-only key's record.
pub const KEY_RECORD: FileKind =
    FileKind { magic: MAGIC_KEY_RECORD, object: ObjectKind::KeyRecord, name: "key record" };
/// A key file's member record (spec §3.2).
pub const MEMBER_RECORD: FileKind =
    FileKind { magic: MAGIC_MEMBER_RECORD, object: ObjectKind::MemberRecord, name: "member record" };

/// Kinds that full readers accept from the metadata key only with an authority tag:
/// a write-only key must not be able to hide snapshots or condemn packs.
fn needs_authority(kind: FileKind) -> bool {
    matches!(kind.object, ObjectKind::Condemnation | ObjectKind::WaitRecord | ObjectKind::Tombstone)
}

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
    seal_envelope(keys, kind, &env, None)
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
    // Cannot fail: the nonce is given.
    seal_envelope(keys, kind, &env, Some(nonce)).unwrap_or_default()
}

/// Seals an envelope; a full key sealing with the metadata key puts its authority tag in
/// front (version 2), so that full readers can tell its files from a write-only key's.
fn seal_envelope(
    keys: &Keys,
    kind: FileKind,
    env: &[u8],
    nonce: Option<&[u8; 24]>,
) -> Result<Vec<u8>, getrandom::Error> {
    let tagged = keys.is_full() && keys.seals_with_metadata(kind.object);
    let seal = |plain: &[u8]| match nonce {
        Some(n) => Ok(keys.seal_with_nonce(n, kind.object, None, plain)),
        None => keys.seal(kind.object, None, plain),
    };
    match keys.authority_tag(kind.object, env).filter(|_| tagged) {
        Some(tag) => {
            let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(TAG_LEN + env.len()));
            plain.extend_from_slice(&tag);
            plain.extend_from_slice(env);
            Ok(frame(kind, VERSION_TAGGED, &seal(&plain)?))
        }
        None => Ok(frame(kind, FORMAT_VERSION, &seal(env)?)),
    }
}

fn frame(kind: FileKind, version: u8, sealed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + sealed.len());
    out.extend_from_slice(kind.magic);
    out.push(version);
    out.extend_from_slice(sealed);
    out
}

/// Checks the header of a sealed file of `kind`, then opens and decompresses it.
pub fn open(keys: &Keys, kind: FileKind, bytes: &[u8]) -> Result<Vec<u8>> {
    open_origin(keys, kind, bytes).map(|(_, p)| p)
}

/// [`open`], also saying who wrote the file.
pub fn open_origin(keys: &Keys, kind: FileKind, bytes: &[u8]) -> Result<(Origin, Vec<u8>)> {
    let (origin, env) = open_envelope(keys, kind, bytes)?;
    Ok((origin, blob::decode(&env, MAX_FILE_PLAINTEXT)?))
}

/// Opens a file to its (wiped) envelope and judges its origin (spec §7.1).
fn open_envelope(keys: &Keys, kind: FileKind, bytes: &[u8]) -> Result<(Origin, zeroize::Zeroizing<Vec<u8>>)> {
    let version = check_header(kind.magic, kind.name, bytes)?;
    let (sealer, plain) = keys.open_from(kind.object, None, &bytes[5..])?;
    let mut plain = zeroize::Zeroizing::new(plain);
    let origin = match (sealer, version) {
        (Sealer::Full, FORMAT_VERSION) => Origin::Full,
        (Sealer::Writer(id), FORMAT_VERSION) => Origin::Writer(id),
        (Sealer::Metadata, FORMAT_VERSION) => Origin::Unverified,
        (Sealer::Metadata, _) => {
            if plain.len() < TAG_LEN {
                return Err(FormatError::Truncated(kind.name));
            }
            let env = plain.split_off(TAG_LEN);
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&plain[..]);
            plain = zeroize::Zeroizing::new(env);
            match keys.verify_authority(kind.object, &bytes[5..], &plain, &tag) {
                Some(true) => Origin::Full,
                Some(false) => {
                    return Err(FormatError::invalid(kind.name, "its authority tag does not verify"));
                }
                None => Origin::Unverified,
            }
        }
        (_, v) => return Err(FormatError::UnsupportedVersion { what: kind.name, version: u64::from(v) }),
    };
    if origin == Origin::Unverified && keys.is_full() && needs_authority(kind) {
        return Err(FormatError::invalid(kind.name, "it was not written by a full key"));
    }
    Ok((origin, plain))
}

/// [`seal`] of an uncompressed plaintext that holds secrets: the copy made on the way is
/// wiped.
pub(crate) fn seal_secret(keys: &Keys, kind: FileKind, plaintext: &[u8]) -> Result<Vec<u8>, getrandom::Error> {
    let env = zeroize::Zeroizing::new(blob::encode(plaintext, Compression::Off, Padding::None));
    seal_envelope(keys, kind, &env, None)
}

/// [`open`] of a file whose plaintext holds secrets: every copy is wiped when dropped.
pub(crate) fn open_secret(keys: &Keys, kind: FileKind, bytes: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let (_, env) = open_envelope(keys, kind, bytes)?;
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

/// Checks magic and version; returns the version (1, or 2 for a tagged file).
pub(crate) fn check_header(magic: &[u8; 4], what: &'static str, bytes: &[u8]) -> Result<u8> {
    if bytes.len() < 5 {
        return Err(FormatError::Truncated(what));
    }
    if &bytes[..4] != magic {
        return Err(FormatError::invalid(what, "wrong magic bytes"));
    }
    // Version 2 (an authority tag) exists only for the kinds the metadata key seals.
    let tagged_kind =
        [MAGIC_INDEX, MAGIC_ANNOUNCEMENT, MAGIC_CONDEMNATION, MAGIC_WAIT, MAGIC_TOMBSTONE].contains(&magic);
    if bytes[4] != FORMAT_VERSION && !(tagged_kind && bytes[4] == VERSION_TAGGED) {
        return Err(FormatError::UnsupportedVersion { what, version: u64::from(bytes[4]) });
    }
    Ok(bytes[4])
}
