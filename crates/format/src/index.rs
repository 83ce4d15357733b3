//! Index files: which blobs live in which pack, at which offset.
//!
//! ```text
//! index := version:u8 | supersedes_count:varint | index_id[32]* | pack_count:varint | pack*
//! pack  := pack_id[32] | kind:u8 | pack_size:varint | blob_count:varint | blob*
//! blob  := blob_id[32] | offset:varint | length:varint | raw_length:varint
//! ```

use super::FORMAT_VERSION;
use super::blob::Compression;
use super::codec::{Reader, Writer};
use super::crypto::Keys;
use super::error::{FormatError, Result};
use super::file;
use super::id::{BlobId, IndexId, PackId};
use super::pack::{BlobKind, PackEntry};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
/// One index file: where the blobs of some packs lie.
pub struct IndexFile {
    /// Index files whose content this one replaces (written by repair and prune).
    pub supersedes: Vec<IndexId>,
    /// The packs this file indexes.
    pub packs: Vec<IndexPack>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// One pack's entry in an index file.
pub struct IndexPack {
    /// The pack.
    pub id: PackId,
    /// Whether the pack holds data or tree blobs.
    pub kind: BlobKind,
    /// Stored size of the pack file in bytes.
    pub size: u64,
    /// Its blobs, as its header lists them.
    pub blobs: Vec<PackEntry>,
}

impl IndexFile {
    /// Blobs in all packs of this file.
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }

    /// The plaintext encoding (before sealing).
    pub fn encode_plain(&self) -> Vec<u8> {
        let mut w = Writer { buf: Vec::with_capacity(64 + self.blob_count() * 42) };
        w.u8(FORMAT_VERSION);
        w.varint(self.supersedes.len() as u64);
        for s in &self.supersedes {
            w.id(&s.0);
        }
        w.varint(self.packs.len() as u64);
        for p in &self.packs {
            w.id(&p.id.0);
            w.u8(p.kind.to_byte());
            w.varint(p.size);
            w.varint(p.blobs.len() as u64);
            for b in &p.blobs {
                w.id(&b.id.0);
                w.varint(u64::from(b.offset));
                w.varint(u64::from(b.length));
                w.varint(u64::from(b.raw_length));
            }
        }
        w.finish()
    }

    /// Decodes and validates a plaintext encoding.
    pub fn decode_plain(plain: &[u8]) -> Result<IndexFile> {
        let mut r = Reader::new(plain, "index");
        let v = r.u8()?;
        if v != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion { what: "index", version: u64::from(v) });
        }
        let n = r.count(32)?;
        let mut supersedes = Vec::with_capacity(n);
        for _ in 0..n {
            supersedes.push(IndexId(r.id()?));
        }
        let n = r.count(35)?;
        let mut packs = Vec::with_capacity(n);
        for _ in 0..n {
            let id = PackId(r.id()?);
            let kind = BlobKind::from_byte(r.u8()?)?;
            let size = r.varint()?;
            let m = r.count(35)?;
            let mut blobs = Vec::with_capacity(m);
            for _ in 0..m {
                let bid = BlobId(r.id()?);
                let offset = r.varint_u32()?;
                let length = r.varint_u32()?;
                let raw_length = r.varint_u32()?;
                if u64::from(offset) + u64::from(length) > size {
                    return Err(FormatError::invalid("index", format!("blob {bid} lies outside pack {id}")));
                }
                blobs.push(PackEntry { id: bid, offset, length, raw_length });
            }
            packs.push(IndexPack { id, kind, size, blobs });
        }
        r.expect_end()?;
        Ok(IndexFile { supersedes, packs })
    }

    /// The sealed index file.
    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, getrandom::Error> {
        file::seal(keys, file::INDEX, &self.encode_plain(), Compression::Off)
    }

    /// Opens and decodes a sealed index file. A full key ignores `supersedes` in an index
    /// file that a full key did not write (spec §10): a write-only key must not be able to
    /// hide others' index files, whose packs a prune would then delete.
    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<IndexFile> {
        let (origin, plain) = file::open_origin(keys, file::INDEX, bytes)?;
        let mut idx = Self::decode_plain(&plain)?;
        if keys.is_full() && origin != file::Origin::Full {
            idx.supersedes.clear();
        }
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Id;
    use proptest::prelude::*;

    fn arb_index() -> impl Strategy<Value = IndexFile> {
        let blob = (any::<[u8; 32]>(), 0u32..1_000_000, 40u32..100_000, any::<u32>())
            .prop_map(|(id, offset, length, raw_length)| PackEntry { id: BlobId(Id(id)), offset, length, raw_length });
        let pack =
            (any::<[u8; 32]>(), any::<bool>(), proptest::collection::vec(blob, 0..20)).prop_map(|(id, tree, blobs)| {
                IndexPack {
                    id: PackId(Id(id)),
                    kind: if tree { BlobKind::Tree } else { BlobKind::Data },
                    size: 2_000_000,
                    blobs,
                }
            });
        (proptest::collection::vec(any::<[u8; 32]>(), 0..3), proptest::collection::vec(pack, 0..8))
            .prop_map(|(s, packs)| IndexFile { supersedes: s.into_iter().map(|i| IndexId(Id(i))).collect(), packs })
    }

    proptest! {
        #[test]
        fn round_trip(idx in arb_index()) {
            let plain = idx.encode_plain();
            prop_assert_eq!(IndexFile::decode_plain(&plain).unwrap(), idx);
        }

        #[test]
        fn decode_never_panics(bytes: Vec<u8>) {
            let _ = IndexFile::decode_plain(&bytes);
        }
    }
}
