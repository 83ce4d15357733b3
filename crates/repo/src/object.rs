//! The stored objects of a repository, as types: which kind of file, and where it lives.
//!
//! Layout: `config`, `keys/<id>`, `snapshots/<id>`, `index/<id>`, `checks/<id>`,
//! `data/<xx>/<id>`, `tree/<xx>/<id>`, `writers/<id>`, `condemned/<id>`, `waiting/<id>`,
//! `forgotten/<id>`, `keyring/<id>`, `members/<id>`, `grants/<id>`, where every `<id>` is the BLAKE3 hash of the file's
//! bytes. Nothing above this module spells a directory name.

use std::fmt;

use vault_format::pack::BlobKind;
use vault_format::{BlobId, Id, IndexId, KeyId, PackId, SnapshotId};

/// A kind of stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoredKind {
    /// The one file with a fixed name: `config`.
    Config,
    /// Key files (`keys/`).
    Key,
    /// Snapshots (`snapshots/`).
    Snapshot,
    /// Index files (`index/`).
    Index,
    /// Records of verified packs (`checks/`).
    CheckRecord,
    /// Packs of one blob kind (`data/`, `tree/`).
    Pack(BlobKind),
    /// Announcements of running writers (`writers/`).
    Announcement,
    /// What a prune will delete (`condemned/`).
    Condemnation,
    /// Whom a condemnation waits for (`waiting/`).
    WaitRecord,
    /// Traces of forgotten snapshots (`forgotten/`).
    Tombstone,
    /// Write-only keys' data keys, for full keys (`keyring/`).
    KeyRecord,
    /// Key files' agreement keys, for full keys (`members/`).
    MemberRecord,
    /// Key epochs granted to key files (`grants/`).
    Grant,
}

impl StoredKind {
    /// The largest file of this kind a reader reads (spec §2): far above what vault
    /// writes, so that a storage server's junk under these names is refused unread
    /// instead of filling memory. Packs are bounded by the size the index states.
    pub(crate) const fn max_stored_size(self) -> u64 {
        const MIB: u64 = 1 << 20;
        match self {
            StoredKind::Config
            | StoredKind::Key
            | StoredKind::KeyRecord
            | StoredKind::MemberRecord
            | StoredKind::Grant => 64 * 1024,
            StoredKind::Announcement | StoredKind::WaitRecord => MIB,
            StoredKind::Snapshot => 16 * MIB,
            StoredKind::Index | StoredKind::CheckRecord | StoredKind::Condemnation | StoredKind::Tombstone => 256 * MIB,
            StoredKind::Pack(_) => u64::MAX,
        }
    }

    /// The directory (or, for the config, the file name) of this kind.
    pub const fn dir(self) -> &'static str {
        match self {
            StoredKind::Config => "config",
            StoredKind::Key => "keys",
            StoredKind::Snapshot => "snapshots",
            StoredKind::Index => "index",
            StoredKind::CheckRecord => "checks",
            StoredKind::Pack(BlobKind::Data) => "data",
            StoredKind::Pack(BlobKind::Tree) => "tree",
            StoredKind::Announcement => "writers",
            StoredKind::Condemnation => "condemned",
            StoredKind::WaitRecord => "waiting",
            StoredKind::Tombstone => "forgotten",
            StoredKind::KeyRecord => "keyring",
            StoredKind::MemberRecord => "members",
            StoredKind::Grant => "grants",
        }
    }
}

/// One stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoredObject {
    /// `config`.
    Config,
    /// `keys/<id>`.
    Key(KeyId),
    /// `snapshots/<id>`.
    Snapshot(SnapshotId),
    /// `index/<id>`.
    Index(IndexId),
    /// `checks/<id>`.
    CheckRecord(Id),
    /// `data/<xx>/<id>` or `tree/<xx>/<id>`.
    Pack(BlobKind, PackId),
    /// `writers/<id>`, `condemned/<id>`, `waiting/<id>`, `forgotten/<id>`, `keyring/<id>`.
    Record(StoredKind, Id),
}

impl StoredObject {
    /// The object of `kind` named `id` (the config has no id; it is ignored).
    pub fn new(kind: StoredKind, id: Id) -> StoredObject {
        match kind {
            StoredKind::Config => StoredObject::Config,
            StoredKind::Key => StoredObject::Key(KeyId(id)),
            StoredKind::Snapshot => StoredObject::Snapshot(SnapshotId(id)),
            StoredKind::Index => StoredObject::Index(IndexId(id)),
            StoredKind::CheckRecord => StoredObject::CheckRecord(id),
            StoredKind::Pack(k) => StoredObject::Pack(k, PackId(id)),
            k @ (StoredKind::Announcement
            | StoredKind::Condemnation
            | StoredKind::WaitRecord
            | StoredKind::Tombstone
            | StoredKind::KeyRecord
            | StoredKind::MemberRecord
            | StoredKind::Grant) => StoredObject::Record(k, id),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> StoredKind {
        match self {
            StoredObject::Config => StoredKind::Config,
            StoredObject::Key(_) => StoredKind::Key,
            StoredObject::Snapshot(_) => StoredKind::Snapshot,
            StoredObject::Index(_) => StoredKind::Index,
            StoredObject::CheckRecord(_) => StoredKind::CheckRecord,
            StoredObject::Pack(k, _) => StoredKind::Pack(*k),
            StoredObject::Record(k, _) => *k,
        }
    }

    /// Its name, which is the hash of its bytes (`None` for the config).
    pub fn id(&self) -> Option<Id> {
        match self {
            StoredObject::Config => None,
            StoredObject::Key(i) => Some(i.0),
            StoredObject::Snapshot(i) => Some(i.0),
            StoredObject::Index(i) => Some(i.0),
            StoredObject::CheckRecord(i) => Some(*i),
            StoredObject::Pack(_, i) => Some(i.0),
            StoredObject::Record(_, i) => Some(*i),
        }
    }

    /// Its path inside the repository. Packs are spread over 256 subdirectories.
    pub fn path(&self) -> String {
        let dir = self.kind().dir();
        match (self, self.id()) {
            (StoredObject::Pack(..), Some(id)) => {
                let hex = id.to_hex();
                format!("{dir}/{}/{hex}", &hex[..2])
            }
            (_, Some(id)) => format!("{dir}/{id}"),
            (_, None) => dir.to_string(),
        }
    }
}

impl fmt::Display for StoredObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// What an integrity error is about: a stored file, or one blob (in a known pack or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damaged {
    /// A whole stored file.
    Object(StoredObject),
    /// One blob; `pack` when known.
    Blob {
        /// Data or tree.
        kind: BlobKind,
        /// The blob.
        id: BlobId,
        /// The pack it was read from.
        pack: Option<PackId>,
    },
}

impl fmt::Display for Damaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damaged::Object(o) if matches!(o, StoredObject::Pack(..)) => write!(f, "pack {o}"),
            Damaged::Object(o) => write!(f, "{o}"),
            Damaged::Blob { kind, id, pack: Some(p) } => {
                write!(f, "blob {id} in pack {}", StoredObject::Pack(*kind, *p))
            }
            Damaged::Blob { kind: BlobKind::Tree, id, pack: None } => write!(f, "tree {id}"),
            Damaged::Blob { kind: BlobKind::Data, id, pack: None } => write!(f, "data blob {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let id = Id([0xab; 32]);
        assert_eq!(StoredObject::Config.path(), "config");
        assert_eq!(StoredObject::new(StoredKind::Snapshot, id).path(), format!("snapshots/{id}"));
        assert_eq!(StoredObject::Pack(BlobKind::Tree, PackId(id)).path(), format!("tree/ab/{id}"));
        assert_eq!(StoredObject::new(StoredKind::Pack(BlobKind::Data), id).kind(), StoredKind::Pack(BlobKind::Data));
    }
}
