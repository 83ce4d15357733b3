//! Check records: which packs a `check --read-data` run verified, and when. Written as new
//! immutable files under `checks/` (shared by every host), so rotating verification needs
//! no mutable state: a pack's last verification is the newest record that lists it.

use serde::{Deserialize, Serialize};

use super::blob::Compression;
use super::crypto::Keys;
use super::error::{FormatError, Result};
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
        file::seal(keys, file::CHECK_RECORD, &self.to_json(), Compression::default())
    }

    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<CheckRecord> {
        let plain = file::open(keys, file::CHECK_RECORD, bytes)?;
        let r: CheckRecord =
            serde_json::from_slice(&plain).map_err(|e| FormatError::invalid("check record", e.to_string()))?;
        if r.version != 1 {
            return Err(FormatError::UnsupportedVersion { what: "check record", version: u64::from(r.version) });
        }
        Ok(r)
    }
}
