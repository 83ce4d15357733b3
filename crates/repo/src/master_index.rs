//! The in-memory union of all index files: where each blob lives.
//!
//! Memory is the limit of every tool of this kind on large repositories (restic #1988,
//! #3844), so the index is compact: blobs sit in one array per kind, sorted by id, 36 bytes
//! each, with a small radix table over the leading id bits to start each search close to
//! its target. No hash table, so no empty slots and no doubling on growth. Packs are a
//! plain array too, found by id through a sorted array of their positions.
//!
//! Only the first 20 bytes (160 bits) of an id are kept. Two distinct blobs of one
//! repository share them with probability below 2^-90 even at ten billion blobs (the ids
//! are keyed hashes, so nobody can aim for a collision without the key), and a blob read
//! through the index is still checked against its full id.
//!
//! Blobs added (while loading, or by `repair`) are appended to a pending list, merged into
//! the sorted array whenever the list grows past an eighth of it and by `compact`. Lookups
//! see both, so forgetting to compact costs speed, never correctness.

use std::collections::HashMap;

use vault_format::index::IndexFile;
use vault_format::pack::{BlobKind, PackEntry};
use vault_format::{BlobId, PackId};

const KEY_LEN: usize = 20;
type Key = [u8; KEY_LEN];

fn key(id: &BlobId) -> Key {
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(&id.0.0[..KEY_LEN]);
    k
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key: Key,
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// Where one blob lies.
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: PackId,
    /// Its kind.
    pub kind: BlobKind,
    /// Offset of its sealed bytes in the pack.
    pub offset: u32,
    /// Length of its sealed bytes.
    pub length: u32,
    /// Its plaintext length.
    pub raw_length: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    pub id: PackId,
    pub kind: BlobKind,
    pub size: u64,
}

/// One kind's blobs.
#[derive(Default, Debug)]
struct Table {
    /// Sorted by key, one entry per key.
    sorted: Vec<Entry>,
    /// `radix[b]` is the first position whose key's top `bits` bits are `>= b`.
    radix: Vec<u32>,
    bits: u32,
    /// Added since the last compaction, in the order added.
    pending: Vec<Entry>,
}

/// Pending entries are merged once they are this many, or an eighth of the sorted ones:
/// loading stays near linear, and memory never holds much more than the final array.
/// (Small in unit tests, so that they exercise merges while loading.)
const PENDING_MIN: usize = if cfg!(test) { 64 } else { 1 << 16 };

impl Table {
    fn bucket(&self, k: &Key) -> usize {
        if self.bits == 0 { 0 } else { (u32::from_be_bytes([k[0], k[1], k[2], k[3]]) >> (32 - self.bits)) as usize }
    }

    fn find_sorted(&self, k: &Key) -> Option<&Entry> {
        self.position(k).map(|i| &self.sorted[i])
    }

    fn position(&self, k: &Key) -> Option<usize> {
        if self.sorted.is_empty() {
            return None;
        }
        let b = self.bucket(k);
        let (lo, hi) = (self.radix[b] as usize, self.radix[b + 1] as usize);
        if lo == hi {
            return None;
        }
        // Ids are uniform, so the bits after the bucket's say where in it to look: start
        // there and walk, a cache line or two instead of a binary search's many.
        let prefix = u64::from_be_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]]);
        let frac = (prefix << self.bits) >> 32;
        let mut i = lo + ((frac * (hi - lo) as u64) >> 32) as usize;
        while i > lo && self.sorted[i].key > *k {
            i -= 1;
        }
        while i + 1 < hi && self.sorted[i].key < *k {
            i += 1;
        }
        (self.sorted[i].key == *k).then_some(i)
    }

    /// The first location added for `k`.
    fn get(&self, k: &Key) -> Option<&Entry> {
        self.find_sorted(k).or_else(|| self.pending.iter().find(|e| e.key == *k))
    }

    fn insert(&mut self, e: Entry) {
        self.pending.push(e);
        if self.pending.len() > (self.sorted.len() / 8).max(PENDING_MIN) {
            self.compact();
        }
    }

    fn len(&self) -> usize {
        if self.pending.is_empty() {
            return self.sorted.len();
        }
        let mut keys: Vec<&Key> = self.pending.iter().map(|e| &e.key).collect();
        keys.sort_unstable();
        keys.dedup();
        self.sorted.len() + keys.into_iter().filter(|k| self.find_sorted(k).is_none()).count()
    }

    fn compact(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut fresh = std::mem::take(&mut self.pending);
        // Stable sort, then keep the first of equal keys: the first location added wins.
        fresh.sort_by_key(|e| e.key);
        fresh.dedup_by(|later, first| later.key == first.key);
        fresh.retain(|e| self.find_sorted(&e.key).is_none());
        // Merge from the back into the grown array, so the old entries are not copied to a
        // second array: the peak is the final array plus the fresh entries.
        let (a, b) = (self.sorted.len(), fresh.len());
        self.sorted.reserve_exact(b);
        self.sorted.extend_from_slice(&fresh);
        let (mut i, mut j) = (a, b);
        for k in (0..a + b).rev() {
            if j == 0 {
                break;
            }
            if i > 0 && self.sorted[i - 1].key > fresh[j - 1].key {
                self.sorted[k] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k] = fresh[j - 1];
                j -= 1;
            }
        }
        drop(fresh);
        // About 8–16 entries per bucket, at most 2^16 buckets.
        let n = self.sorted.len().max(1);
        self.bits = (usize::BITS - n.leading_zeros()).saturating_sub(4).min(16);
        let buckets = 1usize << self.bits;
        let mut radix = Vec::with_capacity(buckets + 1);
        let mut pos = 0usize;
        for b in 0..buckets {
            while pos < self.sorted.len() && self.bucket(&self.sorted[pos].key) < b {
                pos += 1;
            }
            radix.push(pos as u32);
        }
        radix.push(self.sorted.len() as u32);
        self.radix = radix;
    }

    fn heap_bytes(&self) -> usize {
        (self.sorted.capacity() + self.pending.capacity()) * size_of::<Entry>()
            + self.radix.capacity() * size_of::<u32>()
    }
}

/// Blobs are keyed by kind as well as id: a data chunk whose bytes equal a tree's encoding
/// has the same id but lives in a different pack under a different associated data.
#[derive(Default, Debug)]
pub struct MasterIndex {
    data: Table,
    tree: Table,
    packs: Vec<PackInfo>,
    /// Positions in `packs` up to `packs_sorted`, ordered by pack id.
    pack_order: Vec<u32>,
    packs_sorted: usize,
    /// Packs added since the last compaction.
    pack_pending: HashMap<PackId, u32>,
}

impl MasterIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self, kind: BlobKind) -> &Table {
        match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.tree,
        }
    }

    fn pack_position(&self, id: &PackId) -> Option<u32> {
        let sorted = self.pack_order.binary_search_by(|&i| self.packs[i as usize].id.cmp(id)).ok();
        sorted.map(|i| self.pack_order[i]).or_else(|| self.pack_pending.get(id).copied())
    }

    /// Adds one pack and its blobs.
    pub fn add_pack(&mut self, id: PackId, kind: BlobKind, size: u64, blobs: &[PackEntry]) {
        let pos = match self.pack_position(&id) {
            Some(pos) => pos,
            None => {
                self.packs.push(PackInfo { id, kind, size });
                let pos = (self.packs.len() - 1) as u32;
                self.pack_pending.insert(id, pos);
                if self.pack_pending.len() > (self.pack_order.len() / 8).max(PENDING_MIN) {
                    self.compact_packs();
                }
                pos
            }
        };
        let table = match kind {
            BlobKind::Data => &mut self.data,
            BlobKind::Tree => &mut self.tree,
        };
        for b in blobs {
            table.insert(Entry {
                key: key(&b.id),
                pack: pos,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
            });
        }
    }

    /// Adds every pack of an index file.
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, p.kind, p.size, &p.blobs);
        }
    }

    /// Moves blobs added since the last call into the compact sorted form.
    pub fn compact(&mut self) {
        self.data.compact();
        self.tree.compact();
        self.compact_packs();
        self.packs.shrink_to_fit();
        self.pack_order.shrink_to_fit();
    }

    fn compact_packs(&mut self) {
        if self.pack_pending.is_empty() {
            return;
        }
        self.pack_pending = HashMap::new();
        self.pack_order.extend(self.packs_sorted as u32..self.packs.len() as u32);
        self.packs_sorted = self.packs.len();
        let packs = &self.packs;
        self.pack_order.sort_unstable_by(|&a, &b| packs[a as usize].id.cmp(&packs[b as usize].id));
    }

    /// Where the blob `id` of `kind` lies, if it is indexed.
    pub fn get(&self, kind: BlobKind, id: &BlobId) -> Option<BlobLocation> {
        self.table(kind).get(&key(id)).map(|e| {
            let p = &self.packs[e.pack as usize];
            BlobLocation { pack: p.id, kind, offset: e.offset, length: e.length, raw_length: e.raw_length }
        })
    }

    /// Whether the blob `id` of `kind` is indexed.
    pub fn contains(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.table(kind).get(&key(id)).is_some()
    }

    /// Blobs indexed.
    pub fn blob_count(&self) -> usize {
        self.data.len() + self.tree.len()
    }

    /// Every pack indexed.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// A dense number for the blob among its kind's blobs (below [`MasterIndex::slots`]),
    /// for bitmaps over the index. Only blobs merged by [`MasterIndex::compact`] have one.
    pub fn slot(&self, kind: BlobKind, id: &BlobId) -> Option<usize> {
        self.table(kind).position(&key(id))
    }

    /// How many slots `kind` has (see [`MasterIndex::slot`]).
    pub fn slots(&self, kind: BlobKind) -> usize {
        self.table(kind).sorted.len()
    }

    /// The pack's kind and size, when the index lists it.
    pub fn pack(&self, id: &PackId) -> Option<PackInfo> {
        self.pack_position(id).map(|p| self.packs[p as usize])
    }

    /// Whether the pack `id` is indexed.
    pub fn has_pack(&self, id: &PackId) -> bool {
        self.pack_position(id).is_some()
    }

    /// Heap bytes held, for the memory benchmark's bytes-per-blob figure.
    pub fn heap_bytes(&self) -> usize {
        self.data.heap_bytes()
            + self.tree.heap_bytes()
            + self.packs.capacity() * size_of::<PackInfo>()
            + self.pack_order.capacity() * size_of::<u32>()
            + self.pack_pending.capacity() * (size_of::<(PackId, u32)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vault_format::Id;

    fn blob(n: u64) -> BlobId {
        BlobId(Id(*blake3::hash(&n.to_le_bytes()).as_bytes()))
    }

    fn entries(range: std::ops::Range<u64>) -> Vec<PackEntry> {
        range.map(|n| PackEntry { id: blob(n), offset: n as u32, length: 100 + n as u32, raw_length: 7 }).collect()
    }

    #[test]
    fn entries_are_36_bytes() {
        assert_eq!(size_of::<Entry>(), 36);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Whatever the order of adds and compactions, every blob is found where it was
        /// first added, nothing else is found, and kinds stay apart.
        #[test]
        fn lookups_survive_any_compaction_schedule(packs in proptest::collection::vec((0u64..3000, 1u64..400, any::<bool>()), 1..12)) {
            let mut idx = MasterIndex::new();
            let mut expected: HashMap<BlobId, (PackId, u32)> = HashMap::new();
            for (i, (start, len, compact)) in packs.iter().enumerate() {
                let pack = PackId(Id([i as u8 + 1; 32]));
                let es = entries(*start..start + len);
                idx.add_pack(pack, BlobKind::Data, 1 << 20, &es);
                for e in &es {
                    expected.entry(e.id).or_insert((pack, e.offset));
                }
                if *compact {
                    idx.compact();
                }
            }
            for final_compact in [false, true] {
                if final_compact {
                    idx.compact();
                    prop_assert!(idx.data.pending.is_empty());
                }
                prop_assert_eq!(idx.blob_count(), expected.len());
                for (id, (pack, offset)) in &expected {
                    let l = idx.get(BlobKind::Data, id).unwrap();
                    prop_assert_eq!((l.pack, l.offset), (*pack, *offset));
                    prop_assert!(!idx.contains(BlobKind::Tree, id));
                }
                for n in 5000..5100 {
                    prop_assert!(idx.get(BlobKind::Data, &blob(n)).is_none());
                }
                for i in 0..packs.len() {
                    prop_assert!(idx.has_pack(&PackId(Id([i as u8 + 1; 32]))));
                }
                prop_assert!(!idx.has_pack(&PackId(Id([0; 32]))));
                prop_assert_eq!(idx.packs().len(), packs.len());
            }
        }
    }

    #[test]
    fn compact_index_costs_about_40_bytes_per_blob() {
        let mut idx = MasterIndex::new();
        for p in 0..100u64 {
            let pack = PackId(Id(*blake3::hash(&p.to_be_bytes()).as_bytes()));
            idx.add_pack(pack, BlobKind::Data, 1 << 24, &entries(p * 1000..(p + 1) * 1000));
        }
        idx.compact();
        let per_blob = idx.heap_bytes() as f64 / idx.blob_count() as f64;
        assert!(per_blob < 40.0, "{per_blob} bytes per blob");
    }
}
