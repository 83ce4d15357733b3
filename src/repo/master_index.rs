//! The in-memory union of all index files: where each blob lives.

use std::collections::HashMap;

use crate::format::index::IndexFile;
use crate::format::pack::{BlobKind, PackEntry};
use crate::format::{BlobId, PackId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub kind: BlobKind,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    pub id: PackId,
    pub kind: BlobKind,
    pub size: u64,
}

/// Blobs are keyed by kind as well as id: a data chunk whose bytes equal a tree's encoding
/// has the same id but lives in a different pack under a different associated data.
#[derive(Default, Debug)]
pub struct MasterIndex {
    data: HashMap<BlobId, Entry>,
    tree: HashMap<BlobId, Entry>,
    packs: Vec<PackInfo>,
    pack_pos: HashMap<PackId, u32>,
}

impl MasterIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self, kind: BlobKind) -> &HashMap<BlobId, Entry> {
        match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.tree,
        }
    }

    pub fn add_pack(&mut self, id: PackId, kind: BlobKind, size: u64, blobs: &[PackEntry]) {
        let pos = *self.pack_pos.entry(id).or_insert_with(|| {
            self.packs.push(PackInfo { id, kind, size });
            (self.packs.len() - 1) as u32
        });
        let map = match kind {
            BlobKind::Data => &mut self.data,
            BlobKind::Tree => &mut self.tree,
        };
        for b in blobs {
            map.entry(b.id).or_insert(Entry {
                pack: pos,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
            });
        }
    }

    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, p.kind, p.size, &p.blobs);
        }
    }

    pub fn get(&self, kind: BlobKind, id: &BlobId) -> Option<BlobLocation> {
        self.map(kind).get(id).map(|e| {
            let p = &self.packs[e.pack as usize];
            BlobLocation { pack: p.id, kind, offset: e.offset, length: e.length, raw_length: e.raw_length }
        })
    }

    pub fn contains(&self, kind: BlobKind, id: &BlobId) -> bool {
        self.map(kind).contains_key(id)
    }

    pub fn blob_count(&self) -> usize {
        self.data.len() + self.tree.len()
    }

    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    pub fn has_pack(&self, id: &PackId) -> bool {
        self.pack_pos.contains_key(id)
    }
}
