//! What a prune means to delete (`condemned/<id>`), and whom it must wait for before it
//! may (`waiting/<id>`).
//!
//! A prune writes the condemnation before the index that stops listing the condemned
//! packs, and the wait record after that index: the writers the wait record names are
//! exactly those that may have loaded the old index. See `repo-format/SPEC.md` §14.

use serde::{Deserialize, Serialize};

use super::file::{CONDEMNATION, FileKind, SealedDocument, WAIT_RECORD};
use super::id::{Id, IndexId, PackId, SnapshotId};

/// Packs and index files one prune run decided to delete.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condemnation {
    /// Record format version (1).
    pub version: u32,
    /// RFC 3339, UTC (informational).
    pub time: String,
    /// Host the prune ran on.
    pub hostname: String,
    /// The snapshots whose trees decided what is live. Snapshots stored later are walked
    /// again before anything is deleted.
    pub snapshots: Vec<SnapshotId>,
    /// Data packs to delete.
    pub data_packs: Vec<PackId>,
    /// Tree packs to delete.
    pub tree_packs: Vec<PackId>,
    /// Index files the new index supersedes; deleted once superseded by a stored index.
    pub indexes: Vec<IndexId>,
    /// Names under `tmp/` that were there before the prune started writing.
    #[serde(default)]
    pub tmp: Vec<String>,
}

impl SealedDocument for Condemnation {
    const KIND: FileKind = CONDEMNATION;
    const VERSION: u32 = 1;
    fn version(&self) -> u32 {
        self.version
    }
}

/// The writers a condemnation waits for: those announced when the index that stops
/// listing its packs was already stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitRecord {
    /// Record format version (1).
    pub version: u32,
    /// RFC 3339, UTC (informational).
    pub time: String,
    /// Host the prune ran on.
    pub hostname: String,
    /// The condemnation's id (its file name).
    pub condemnation: Id,
    /// Names of the announcements (`writers/<id>`) listed then.
    pub writers: Vec<Id>,
}

impl SealedDocument for WaitRecord {
    const KIND: FileKind = WAIT_RECORD;
    const VERSION: u32 = 1;
    fn version(&self) -> u32 {
        self.version
    }
}
