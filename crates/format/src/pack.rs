//! Pack files: sealed blobs of one kind, followed by a sealed header and its length.
//!
//! ```text
//! pack   := magic "VLTp" | version:u8 | sealed_blob* | sealed_header | header_len:u32le
//! header := version:u8 | kind:u8 | count:varint | (id[32] | length:varint | raw_length:varint)*
//! ```
//! Blobs lie back to back from offset 5 in header order, so offsets are implicit.

use serde::{Deserialize, Serialize};

use super::FORMAT_VERSION;
use super::blob::{self, Compression, Padding};
use super::codec::{Reader, Writer};
use super::crypto::{Keys, ObjectKind, SEAL_OVERHEAD};
use super::error::{FormatError, Result};
use super::file::{MAGIC_PACK, check_header};
use super::id::BlobId;

/// Bytes before a pack's first blob (magic and version).
pub const PACK_PREFIX_LEN: usize = 5;
/// Largest blob plaintext accepted (a directory with millions of entries stays below it).
pub(crate) const MAX_BLOB_LEN: u32 = 1 << 30;
const ENTRY_MIN_LEN: usize = 32 + 1 + 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// Which of the two kinds a blob is; packs hold one kind only.
pub enum BlobKind {
    /// File content.
    Data,
    /// A directory listing.
    Tree,
}

impl BlobKind {
    /// The object kind its seal is bound to.
    pub fn object_kind(self) -> ObjectKind {
        match self {
            BlobKind::Data => ObjectKind::DataBlob,
            BlobKind::Tree => ObjectKind::TreeBlob,
        }
    }

    /// Its byte in index files and pack headers.
    pub fn to_byte(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Result<Self> {
        match b {
            0 => Ok(BlobKind::Data),
            1 => Ok(BlobKind::Tree),
            _ => Err(FormatError::invalid("blob kind", format!("{b}"))),
        }
    }

    /// The directory that holds packs of this kind.
    pub fn dir(self) -> &'static str {
        match self {
            BlobKind::Data => "data",
            BlobKind::Tree => "tree",
        }
    }
}

/// One blob's place inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// The blob.
    pub id: BlobId,
    /// Offset of its sealed bytes in the pack file.
    pub offset: u32,
    /// Sealed length in the pack.
    pub length: u32,
    /// Plaintext length after decompression.
    pub raw_length: u32,
}

/// Seals `raw` as a blob of `kind` named `id`.
pub fn seal_blob(
    keys: &Keys,
    kind: BlobKind,
    id: &BlobId,
    raw: &[u8],
    compression: Compression,
    padding: Padding,
) -> Result<Vec<u8>, getrandom::Error> {
    keys.seal_with(kind.object_kind(), Some(id), raw.len() + 8, |out| blob::encode_into(out, raw, compression, padding))
}

/// Decrypts a blob and checks that its plaintext hashes to `id`.
pub fn open_blob(keys: &Keys, kind: BlobKind, id: &BlobId, sealed: &[u8], raw_length: u32) -> Result<Vec<u8>> {
    open_blob_bytes(keys, kind, id, sealed, raw_length).map(blob::BlobBytes::into_vec)
}

/// [`open_blob`], its bytes left where decryption put them.
pub fn open_blob_bytes(
    keys: &Keys,
    kind: BlobKind,
    id: &BlobId,
    sealed: &[u8],
    raw_length: u32,
) -> Result<blob::BlobBytes> {
    let env = keys.open(kind.object_kind(), Some(id), sealed)?;
    let raw = blob::decode_owned(env, raw_length as usize)?;
    check_plaintext(keys, id, &raw, raw_length)?;
    Ok(raw)
}

/// A blob's plaintext has the length the index gives and hashes to its id.
fn check_plaintext(keys: &Keys, id: &BlobId, raw: &[u8], raw_length: u32) -> Result<()> {
    if raw.len() != raw_length as usize {
        return Err(FormatError::invalid("blob", format!("{} bytes, expected {raw_length}", raw.len())));
    }
    if keys.blob_id(raw) != *id {
        return Err(FormatError::invalid("blob", format!("content does not hash to {id}")));
    }
    Ok(())
}

/// [`open_blob`] where the sealed bytes lie, so a restore writes a stored blob straight
/// from the buffer it was downloaded into. `Ok(None)` when the bytes were spoiled by a key
/// that turned out wrong and [`open_blob`] must decide on a fresh copy (see
/// [`Keys::open_in_place`]).
pub fn open_blob_in_place<'a>(
    keys: &Keys,
    kind: BlobKind,
    id: &BlobId,
    sealed: &'a mut [u8],
    raw_length: u32,
) -> Result<Option<std::borrow::Cow<'a, [u8]>>> {
    let Some(env) = keys.open_in_place(kind.object_kind(), Some(id), sealed)? else {
        return Ok(None);
    };
    let sealed: &'a [u8] = sealed;
    let raw = blob::decode_borrowed(&sealed[env], raw_length as usize)?;
    check_plaintext(keys, id, &raw, raw_length)?;
    Ok(Some(raw))
}

/// Builds one pack in memory: sealed blobs, then the sealed header listing them.
pub struct PackBuilder {
    kind: BlobKind,
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
    padding: Padding,
}

impl PackBuilder {
    /// An empty pack of `kind` with room for `capacity` bytes.
    pub fn new(kind: BlobKind, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(MAGIC_PACK);
        buf.push(FORMAT_VERSION);
        PackBuilder { kind, buf, entries: Vec::new(), padding: Padding::None }
    }

    /// Pads the sealed header (spec §9): its length then tells the blob count only to
    /// within the padding's size class.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// The kind of blob this pack holds.
    pub fn kind(&self) -> BlobKind {
        self.kind
    }

    /// Bytes so far, without the header.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a sealed blob.
    pub fn add(&mut self, id: BlobId, sealed: &[u8], raw_length: u32) {
        self.entries.push(PackEntry { id, offset: self.buf.len() as u32, length: sealed.len() as u32, raw_length });
        self.buf.extend_from_slice(sealed);
    }

    fn header_plaintext(&self) -> Vec<u8> {
        header_plaintext(self.kind, &self.entries, self.padding)
    }

    /// The complete pack file and its entries.
    pub fn finish(self, keys: &Keys) -> Result<(Vec<u8>, Vec<PackEntry>), getrandom::Error> {
        let sealed = keys.seal(ObjectKind::PackHeader, None, &self.header_plaintext())?;
        Ok(self.append_header(&sealed))
    }

    /// [`PackBuilder::finish`] with a given header nonce, for golden vectors.
    pub fn finish_with_nonce(self, keys: &Keys, nonce: &[u8; 24]) -> (Vec<u8>, Vec<PackEntry>) {
        let sealed = keys.seal_with_nonce(nonce, ObjectKind::PackHeader, None, &self.header_plaintext());
        self.append_header(&sealed)
    }

    fn append_header(mut self, sealed: &[u8]) -> (Vec<u8>, Vec<PackEntry>) {
        self.buf.extend_from_slice(sealed);
        self.buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        (self.buf, self.entries)
    }
}

fn header_plaintext(kind: BlobKind, entries: &[PackEntry], padding: Padding) -> Vec<u8> {
    let mut w = Writer { buf: Vec::with_capacity(3 + entries.len() * 40) };
    w.u8(FORMAT_VERSION);
    w.u8(kind.to_byte());
    w.varint(entries.len() as u64);
    for e in entries {
        w.id(&e.id.0);
        w.varint(u64::from(e.length));
        w.varint(u64::from(e.raw_length));
    }
    blob::encode(&w.finish(), Compression::Off, padding)
}

/// The bytes every pack starts with; blobs follow from offset [`PACK_PREFIX_LEN`].
pub fn pack_prefix() -> [u8; PACK_PREFIX_LEN] {
    let mut p = [0u8; PACK_PREFIX_LEN];
    p[..4].copy_from_slice(MAGIC_PACK);
    p[4] = FORMAT_VERSION;
    p
}

/// What follows a pack's last blob: the sealed header and its length. For writers that
/// stream blobs out as they come (see [`PackBuilder`] for the in-memory form).
pub fn pack_trailer(
    keys: &Keys,
    kind: BlobKind,
    entries: &[PackEntry],
    padding: Padding,
) -> Result<Vec<u8>, getrandom::Error> {
    let mut sealed = keys.seal(ObjectKind::PackHeader, None, &header_plaintext(kind, entries, padding))?;
    let len = sealed.len() as u32;
    sealed.extend_from_slice(&len.to_le_bytes());
    Ok(sealed)
}

/// Length of the sealed header, from the pack's last 4 bytes.
pub fn header_len_from_tail(tail: &[u8]) -> Result<u32> {
    let b: [u8; 4] = tail.try_into().map_err(|_| FormatError::Truncated("pack trailer"))?;
    Ok(u32::from_le_bytes(b))
}

/// Decodes a sealed header found at `header_offset` in a pack; offsets are reconstructed
/// and checked to end exactly where the header begins.
pub fn decode_header(keys: &Keys, sealed: &[u8], header_offset: u64) -> Result<(BlobKind, Vec<PackEntry>)> {
    let env = keys.open(ObjectKind::PackHeader, None, sealed)?;
    let plain = blob::decode(&env, sealed.len())?;
    decode_header_plain(&plain, header_offset)
}

/// Decodes a header's plaintext (after decryption and the envelope).
pub(crate) fn decode_header_plain(plain: &[u8], header_offset: u64) -> Result<(BlobKind, Vec<PackEntry>)> {
    let mut r = Reader::new(plain, "pack header");
    let v = r.u8()?;
    if v != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion { what: "pack header", version: u64::from(v) });
    }
    let kind = BlobKind::from_byte(r.u8()?)?;
    let n = r.count(ENTRY_MIN_LEN)?;
    let mut entries = Vec::with_capacity(n);
    let mut offset = PACK_PREFIX_LEN as u64;
    for _ in 0..n {
        let id = BlobId(r.id()?);
        let length = r.varint_u32()?;
        let raw_length = r.varint_u32()?;
        if (length as usize) < SEAL_OVERHEAD || raw_length > MAX_BLOB_LEN {
            return Err(FormatError::invalid("pack header", format!("blob {id} has impossible length")));
        }
        entries.push(PackEntry { id, offset: offset as u32, length, raw_length });
        offset += u64::from(length);
    }
    r.expect_end()?;
    if offset != header_offset {
        return Err(FormatError::invalid(
            "pack header",
            format!("blobs end at {offset}, header starts at {header_offset}"),
        ));
    }
    Ok((kind, entries))
}

/// Reads the header of a whole pack held in memory.
pub fn parse_pack(keys: &Keys, bytes: &[u8]) -> Result<(BlobKind, Vec<PackEntry>)> {
    let trailer = bytes.get(bytes.len().saturating_sub(4)..).unwrap_or_default();
    let span = header_span(bytes, bytes.len(), trailer)?;
    decode_header(keys, &bytes[span.clone()], span.start as u64)
}

/// Where a pack's sealed header lies, from the pack's first bytes (at least
/// [`PACK_PREFIX_LEN`]), its length and its last 4 bytes; the pack itself need not be in
/// one piece.
pub fn header_span(prefix: &[u8], len: usize, trailer: &[u8]) -> Result<std::ops::Range<usize>> {
    check_header(MAGIC_PACK, "pack", prefix)?;
    if len < PACK_PREFIX_LEN + 4 {
        return Err(FormatError::Truncated("pack"));
    }
    let hlen = header_len_from_tail(trailer)? as usize;
    let body_end = len - 4;
    if hlen > body_end - PACK_PREFIX_LEN {
        return Err(FormatError::invalid("pack", "header length exceeds pack"));
    }
    Ok(body_end - hlen..body_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::from_master(SecretKey::from_bytes([5u8; 32]))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..12)) {
            let k = keys();
            let mut b = PackBuilder::new(BlobKind::Data, 0);
            for raw in &blobs {
                let id = k.blob_id(raw);
                let sealed = seal_blob(&k, BlobKind::Data, &id, raw, Compression::default(), Padding::Padme).unwrap();
                b.add(id, &sealed, raw.len() as u32);
            }
            let (bytes, entries) = b.finish(&k).unwrap();
            let (kind, parsed) = parse_pack(&k, &bytes).unwrap();
            prop_assert_eq!(kind, BlobKind::Data);
            prop_assert_eq!(&parsed, &entries);
            for (e, raw) in parsed.iter().zip(&blobs) {
                let s = &bytes[e.offset as usize..(e.offset + e.length) as usize];
                prop_assert_eq!(&open_blob(&k, BlobKind::Data, &e.id, s, e.raw_length).unwrap(), raw);
                let mut in_place = s.to_vec();
                let opened = open_blob_in_place(&k, BlobKind::Data, &e.id, &mut in_place, e.raw_length).unwrap();
                prop_assert_eq!(opened.as_deref(), Some(&raw[..]));
                let mut wrong_kind = s.to_vec();
                prop_assert!(open_blob_in_place(&k, BlobKind::Tree, &e.id, &mut wrong_kind, e.raw_length).is_err());
                prop_assert!(open_blob(&k, BlobKind::Tree, &e.id, s, e.raw_length).is_err());
            }
        }

        /// The streamed form (prefix, blobs as they come, trailer) is the same format.
        #[test]
        fn streamed_pack_parses(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..8)) {
            let k = keys();
            let mut bytes = pack_prefix().to_vec();
            let mut entries = Vec::new();
            for raw in &blobs {
                let id = k.blob_id(raw);
                let sealed = seal_blob(&k, BlobKind::Data, &id, raw, Compression::default(), Padding::None).unwrap();
                entries.push(PackEntry { id, offset: bytes.len() as u32, length: sealed.len() as u32, raw_length: raw.len() as u32 });
                bytes.extend_from_slice(&sealed);
            }
            bytes.extend_from_slice(&pack_trailer(&k, BlobKind::Data, &entries, Padding::Padme).unwrap());
            let (kind, parsed) = parse_pack(&k, &bytes).unwrap();
            prop_assert_eq!(kind, BlobKind::Data);
            prop_assert_eq!(parsed, entries);
        }

        #[test]
        fn parse_never_panics(bytes: Vec<u8>) {
            let _ = parse_pack(&keys(), &bytes);
        }

        #[test]
        fn damage_is_detected(pos: usize, bit in 0u8..8) {
            let k = keys();
            let mut b = PackBuilder::new(BlobKind::Tree, 0);
            let raw = b"tree bytes".to_vec();
            let id = k.blob_id(&raw);
            b.add(id, &seal_blob(&k, BlobKind::Tree, &id, &raw, Compression::Off, Padding::None).unwrap(), raw.len() as u32);
            let (mut bytes, entries) = b.finish(&k).unwrap();
            let i = pos % bytes.len();
            bytes[i] ^= 1 << bit;
            let e = entries[0];
            let header_ok = parse_pack(&k, &bytes).map(|(_, p)| p == entries).unwrap_or(false);
            let blob_ok = bytes.get(e.offset as usize..(e.offset + e.length) as usize)
                .map(|s| open_blob(&k, BlobKind::Tree, &e.id, s, e.raw_length).is_ok())
                .unwrap_or(false);
            prop_assert!(!(header_ok && blob_ok));
        }
    }
}
