//! Tombstones (`forgotten/<id>`): the authenticated trace of a deletion of snapshots.
//! Written before the snapshot files are deleted, so a snapshot that vanishes without one
//! was not forgotten by a key holder; a snapshot still stored that a tombstone names is
//! being forgotten (an interrupted `forget`) and is not listed.

use serde::{Deserialize, Serialize};

use super::file::{FileKind, SealedDocument, TOMBSTONE};
use super::id::SnapshotId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// A forget's record of the snapshots it removed, so readers can tell deletion from rollback.
pub struct Tombstone {
    /// Record format version (1).
    pub version: u32,
    /// RFC 3339, UTC (informational).
    pub time: String,
    /// Host the forget ran on.
    pub hostname: String,
    /// What removed them: `forget`, `tag`, `rewrite`.
    pub command: String,
    /// The snapshots removed.
    pub snapshots: Vec<SnapshotId>,
}

impl SealedDocument for Tombstone {
    const KIND: FileKind = TOMBSTONE;
    const VERSION: u32 = 1;
    fn version(&self) -> u32 {
        self.version
    }
}
