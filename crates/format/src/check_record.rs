//! Check records: which packs a `check --read-data` run verified, and when. Written as new
//! immutable files under `checks/` (shared by every host), so rotating verification needs
//! no mutable state: a pack's last verification is the newest record that lists it.

use serde::{Deserialize, Serialize};

use super::file::{self, FileKind, SealedDocument};
use super::id::PackId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// What one `check --read-data` run verified, so that prune can trust those packs.
pub struct CheckRecord {
    /// Record format version (1).
    pub version: u32,
    /// RFC 3339, UTC, when the run finished.
    pub time: String,
    /// Host that ran the check.
    pub hostname: String,
    /// Packs read in full and found intact by this run.
    pub packs: Vec<PackId>,
}

impl SealedDocument for CheckRecord {
    const KIND: FileKind = file::CHECK_RECORD;
    const VERSION: u32 = 1;
    fn version(&self) -> u32 {
        self.version
    }
}
