//! Check records: which packs a `check --read-data` run verified, and when. Written as new
//! immutable files under `checks/` (shared by every host), so rotating verification needs
//! no mutable state: a pack's last verification is the newest record that lists it.

use serde::{Deserialize, Serialize};

use super::blob::Compression;
use super::crypto::Keys;
use super::error::Result;
use super::file;
use super::id::PackId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub version: u32,
    /// RFC 3339, UTC, when the run finished.
    pub time: String,
    pub hostname: String,
    /// Packs read in full and found intact by this run.
    pub packs: Vec<PackId>,
}

impl CheckRecord {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("check record serialises")
    }

    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, getrandom::Error> {
        file::seal_json(keys, file::CHECK_RECORD, self, Compression::default())
    }

    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<CheckRecord> {
        let r: CheckRecord = file::open_json(keys, file::CHECK_RECORD, bytes)?;
        file::check_json_version(file::CHECK_RECORD, r.version, 1)?;
        Ok(r)
    }
}
