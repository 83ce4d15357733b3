//! Reading packs and blobs: whole packs, pack headers, single blobs (verified against their
//! ids), and the blob reads that tree listings go through (via the local tree-pack cache).

use super::error::{RepoError, Result};
use super::master_index::{BlobLocation, MasterIndex};
use super::object::{Damaged, StoredObject};
use super::object_bytes::ObjectBytes;
use super::repository::Repository;
use vault_format::blob::BlobBytes;
use vault_format::pack::{self, BlobKind, PackEntry};
use vault_format::tree::Tree;
use vault_format::{BlobId, Id, PackId};

/// An integrity error about blob `entry` of `pack`.
fn damaged_blob(kind: BlobKind, pack: &PackId, entry: &PackEntry, reason: impl std::fmt::Display) -> RepoError {
    RepoError::integrity(Damaged::Blob { kind, id: entry.id, pack: Some(*pack) }, reason)
}

/// Where blob `entry`'s bytes lie in its pack (`None` past the address space).
fn blob_range(entry: &PackEntry) -> Option<std::ops::Range<usize>> {
    let start = entry.offset as usize;
    Some(start..start.checked_add(entry.length as usize)?)
}

fn outside(kind: BlobKind, pack: &PackId, entry: &PackEntry) -> RepoError {
    damaged_blob(kind, pack, entry, "it lies outside the pack")
}

/// Blob `entry`'s bytes within a pack held whole.
fn blob_slice(kind: BlobKind, pack: &PackId, data: &ObjectBytes, entry: &PackEntry) -> Result<bytes::Bytes> {
    blob_range(entry).and_then(|r| data.slice(r)).ok_or_else(|| outside(kind, pack, entry))
}

/// Cache directory for tree packs (data packs are never cached).
pub(crate) const TREE_PACK_CACHE_DIR: &str = "tree";

/// Single blobs are read from remote storage in windows aligned to this many bytes.
pub const READ_ALIGN: u64 = 64 * 1024;

/// `offset..offset + len` widened to [`READ_ALIGN`] boundaries within a pack of `size`
/// bytes; `None` when the range does not fit the pack (the exact read then reports it).
fn aligned_window(offset: u64, len: u64, size: u64) -> Option<(u64, u64)> {
    let end = offset.checked_add(len).filter(|e| *e <= size)?;
    let start = offset / READ_ALIGN * READ_ALIGN;
    Some((start, end.div_ceil(READ_ALIGN).saturating_mul(READ_ALIGN).min(size)))
}

impl Repository {
    /// A whole pack, not checked against its name: its blobs are authenticated one by one as
    /// they are opened, and hashing 16 MiB again cost restore a tenth of its CPU time.
    /// ([`ObjectBytes::stored_id`] hashes it when a caller needs that.)
    /// `size` is what the index or the listing says the pack holds: only that much is
    /// read, so a pack the storage enlarged (a "16 MiB" pack padded to 2 GiB) costs no
    /// more than the real one, and its hash check fails on what was read.
    pub fn read_pack(&self, kind: BlobKind, id: &PackId, size: u64) -> Result<ObjectBytes> {
        self.read_pack_range(kind, id, 0, size)
    }

    /// `len` bytes of a pack from `offset`, unverified like [`Repository::read_pack`]:
    /// its blobs are authenticated as they are opened (at offsets less `offset`).
    pub fn read_pack_range(&self, kind: BlobKind, id: &PackId, offset: u64, len: u64) -> Result<ObjectBytes> {
        Ok(self.backend().read_range_parts(&StoredObject::Pack(kind, *id).path(), offset, len)?)
    }

    /// The header of a whole pack as read by [`Repository::read_pack`] (in pieces).
    pub fn parse_pack_header(
        &self,
        kind: BlobKind,
        id: &PackId,
        data: &ObjectBytes,
    ) -> Result<(BlobKind, Vec<PackEntry>)> {
        let len = data.len();
        let prefix = data.slice(0..len.min(pack::PACK_PREFIX_LEN)).unwrap_or_default();
        let trailer = data.slice(len.saturating_sub(4)..len).unwrap_or_default();
        let bad = |e| RepoError::integrity(Damaged::Object(StoredObject::Pack(kind, *id)), format!("header: {e}"));
        let span = pack::header_span(&prefix, len, &trailer).map_err(bad)?;
        let sealed = data.slice(span.clone()).unwrap_or_default();
        pack::decode_header(self.keys(), &sealed, span.start as u64).map_err(bad)
    }

    /// The sealed bytes of blob `entry` out of a pack held whole, authenticated (opened,
    /// not decompressed): prune copies them into a new pack as they are.
    pub fn sealed_blob_in(
        &self,
        kind: BlobKind,
        pack: &PackId,
        data: &ObjectBytes,
        entry: &PackEntry,
    ) -> Result<Vec<u8>> {
        let (sealed, _) = self.authenticated_blob_in(kind, pack, data, entry)?;
        Ok(sealed.to_vec())
    }

    /// [`Repository::sealed_blob_in`], sealed again with the current epoch's key when an
    /// older epoch's sealed it (`prune --reencrypt`); a write-only key's blobs stay as they are.
    pub fn resealed_blob_in(
        &self,
        kind: BlobKind,
        pack: &PackId,
        data: &ObjectBytes,
        entry: &PackEntry,
    ) -> Result<Vec<u8>> {
        let (sealed, envelope) = self.authenticated_blob_in(kind, pack, data, entry)?;
        match self.keys().epoch_of(&sealed) {
            Some(e) if e < self.keys().epoch() => {
                Ok(self.keys().seal(kind.object_kind(), Some(&entry.id), &envelope)?)
            }
            _ => Ok(sealed.to_vec()),
        }
    }

    /// Blob `entry`'s sealed bytes in a pack held whole, and its envelope (opened, still
    /// compressed and padded): an error when it does not authenticate.
    fn authenticated_blob_in(
        &self,
        kind: BlobKind,
        pack: &PackId,
        data: &ObjectBytes,
        entry: &PackEntry,
    ) -> Result<(bytes::Bytes, zeroize::Zeroizing<Vec<u8>>)> {
        let sealed = blob_slice(kind, pack, data, entry)?;
        let envelope = self
            .keys()
            .open(kind.object_kind(), Some(&entry.id), &sealed)
            .map_err(|e| damaged_blob(kind, pack, entry, e))?;
        Ok((sealed, zeroize::Zeroizing::new(envelope)))
    }

    /// Opens one blob of a pack held whole (as read by [`Repository::read_pack`]):
    /// decrypts it and verifies it against its id.
    pub fn open_blob_in(
        &self,
        kind: BlobKind,
        pack: &PackId,
        data: &ObjectBytes,
        entry: &PackEntry,
    ) -> Result<BlobBytes> {
        if let Some(why) = self.implausible_blob(kind, entry.length, entry.raw_length) {
            return Err(damaged_blob(kind, pack, entry, why));
        }
        let sealed = blob_slice(kind, pack, data, entry)?;
        pack::open_blob_bytes(self.keys(), kind, &entry.id, &sealed, entry.raw_length)
            .map_err(|e| damaged_blob(kind, pack, entry, e))
    }

    /// [`Repository::open_blob_in`] where the sealed bytes lie in `data` (a range of the
    /// pack read with [`ObjectBytes::into_mut`], `entry.offset` relative to it): a stored
    /// blob is handed out as a slice of `data`, not copied. The blob's own bytes are
    /// overwritten. `Ok(None)`: a key that turned out wrong spoiled them, and the blob must
    /// be read afresh and opened with [`Repository::open_blob_in`] (one nonce in 2^64).
    pub fn open_blob_in_place<'a>(
        &self,
        kind: BlobKind,
        pack: &PackId,
        data: &'a mut [u8],
        entry: &PackEntry,
    ) -> Result<Option<std::borrow::Cow<'a, [u8]>>> {
        if let Some(why) = self.implausible_blob(kind, entry.length, entry.raw_length) {
            return Err(damaged_blob(kind, pack, entry, why));
        }
        let sealed = blob_range(entry).and_then(|r| data.get_mut(r)).ok_or_else(|| outside(kind, pack, entry))?;
        pack::open_blob_in_place(self.keys(), kind, &entry.id, sealed, entry.raw_length)
            .map_err(|e| damaged_blob(kind, pack, entry, e))
    }

    /// A pack's header, read from its tail without downloading the blobs.
    pub fn read_pack_header(&self, kind: BlobKind, id: &PackId, size: u64) -> Result<(BlobKind, Vec<PackEntry>)> {
        let object = StoredObject::Pack(kind, *id);
        let path = object.path();
        let bad = |e: String| RepoError::integrity(Damaged::Object(object), e);
        if size < (pack::PACK_PREFIX_LEN + 4) as u64 {
            return Err(bad("too short".into()));
        }
        let guess = size.min(16 * 1024);
        let tail = self.backend().read_range(&path, size - guess, guess)?;
        let hlen = u64::from(pack::header_len_from_tail(&tail[tail.len() - 4..]).map_err(|e| bad(e.to_string()))?);
        if hlen + 4 + pack::PACK_PREFIX_LEN as u64 > size {
            return Err(bad("header length exceeds the pack".into()));
        }
        let start = size - 4 - hlen;
        let sealed = if hlen + 4 <= guess {
            tail.slice((guess - 4 - hlen) as usize..(guess - 4) as usize)
        } else {
            self.backend().read_range(&path, start, hlen)?
        };
        pack::decode_header(self.keys(), &sealed, start).map_err(|e| bad(e.to_string()))
    }

    /// Why an index entry's lengths cannot be those of a data blob of this repository: its
    /// chunker never cuts more than `max_size` bytes, and sealing adds little. Checked
    /// before anything is read or decompressed, so a crafted entry costs no gigabyte.
    pub(crate) fn implausible_blob(&self, kind: BlobKind, length: u32, raw_length: u32) -> Option<String> {
        let max = self.config().chunker.max_size;
        let sealed_max = u64::from(max) + u64::from(max) / 8 + 4096;
        (kind == BlobKind::Data && (raw_length > max || u64::from(length) > sealed_max)).then(|| {
            format!(
                "the index says it holds {raw_length} bytes ({length} stored); this repository's chunks are at most {max}"
            )
        })
    }

    /// Reads, decrypts and verifies one blob.
    pub fn read_blob_at(&self, loc: &BlobLocation, id: &BlobId) -> Result<Vec<u8>> {
        self.read_blob_within(loc, id, None)
    }

    /// [`Repository::read_blob_at`] from a pack of `pack_size` bytes: from remote storage,
    /// the range asked for is widened to [`READ_ALIGN`] boundaries, so that requests do not
    /// give the server each blob's offset and exact length (spec §9).
    pub fn read_blob_within(&self, loc: &BlobLocation, id: &BlobId, pack_size: Option<u64>) -> Result<Vec<u8>> {
        let object = StoredObject::Pack(loc.kind, loc.pack);
        let path = object.path();
        let (offset, len) = (u64::from(loc.offset), u64::from(loc.length));
        let damaged =
            |e: String| RepoError::integrity(Damaged::Blob { kind: loc.kind, id: *id, pack: Some(loc.pack) }, e);
        if let Some(why) = self.implausible_blob(loc.kind, loc.length, loc.raw_length) {
            return Err(damaged(why));
        }
        let open = |sealed: &[u8]| pack::open_blob(self.keys(), loc.kind, id, sealed, loc.raw_length);
        let cache = self.cache().filter(|_| loc.kind == BlobKind::Tree);
        let Some(cache) = cache else {
            let window = pack_size.filter(|_| !self.backend().is_local()).and_then(|s| aligned_window(offset, len, s));
            let sealed = match window {
                Some((start, end)) => {
                    let w = self.backend().read_range(&path, start, end - start)?;
                    let at = (offset - start) as usize;
                    w.slice(at..at + len as usize)
                }
                None => self.backend().read_range(&path, offset, len)?,
            };
            return open(&sealed).map_err(|e| damaged(e.to_string()));
        };
        let tree_packs = TREE_PACK_CACHE_DIR;
        let pack_id = &loc.pack.0;
        if let Some(sealed) = cache.read_range(tree_packs, pack_id, offset, len) {
            match open(&sealed) {
                Ok(raw) => return Ok(raw),
                // A damaged cache entry is never trusted: drop it and fetch the pack again.
                Err(_) => cache.remove(tree_packs, pack_id),
            }
        }
        let bytes = self.backend().read(&path)?;
        if Id::of_stored_bytes(&bytes) != *pack_id {
            return Err(RepoError::integrity(Damaged::Object(object), "its bytes do not match its name"));
        }
        let sealed = bytes
            .get(offset as usize..(offset + len) as usize)
            .ok_or_else(|| damaged("it lies outside the pack".into()))?;
        let raw = open(sealed).map_err(|e| damaged(e.to_string()))?;
        cache.put(tree_packs, pack_id, &bytes);
        Ok(raw)
    }

    /// Reads, decrypts and verifies the blob `id` wherever the index places it.
    pub fn read_blob(&self, index: &MasterIndex, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
        let loc = index.get(kind, id).ok_or_else(|| RepoError::BlobNotIndexed(id.to_hex()))?;
        self.read_blob_within(&loc, id, index.pack(&loc.pack).map(|p| p.size))
    }

    /// Reads and decodes one tree.
    pub fn load_tree(&self, index: &MasterIndex, id: &BlobId) -> Result<Tree> {
        let loc = index.get(BlobKind::Tree, id).ok_or_else(|| RepoError::BlobNotIndexed(id.to_hex()))?;
        self.load_tree_at(&loc, id, index.pack(&loc.pack).map(|p| p.size))
    }

    /// Reads and decodes the tree `id` stored at `loc`.
    pub(crate) fn load_tree_at(&self, loc: &BlobLocation, id: &BlobId, pack_size: Option<u64>) -> Result<Tree> {
        let raw = self.read_blob_within(loc, id, pack_size)?;
        Tree::decode(&raw)
            .map_err(|e| RepoError::integrity(Damaged::Blob { kind: BlobKind::Tree, id: *id, pack: None }, e))
    }

    /// Stores a tree pack in the local cache (it is written by the pack writer).
    pub(crate) fn cache_tree_pack(&self, id: &PackId, bytes: &[u8]) {
        if let Some(c) = self.cache() {
            c.put(TREE_PACK_CACHE_DIR, &id.0, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_stay_in_the_pack() {
        assert_eq!(aligned_window(70_000, 10, 1 << 20), Some((65_536, 131_072)));
        assert_eq!(aligned_window(0, 5, 100), Some((0, 100)));
        assert_eq!(aligned_window(131_072, 65_536, 200_000), Some((131_072, 196_608)));
        assert_eq!(aligned_window(131_072, 65_537, 200_000), Some((131_072, 200_000)));
        assert_eq!(aligned_window(90, 20, 100), None);
        assert_eq!(aligned_window(u64::MAX, 2, u64::MAX), None);
    }
}
