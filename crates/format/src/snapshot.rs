//! Snapshots: the commit point of a backup. JSON inside a sealed file.

use serde::{Deserialize, Serialize};

use super::blob::Compression;
use super::crypto::Keys;
use super::error::Result;
use super::file;
use super::id::{BlobId, SnapshotId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    pub tree: BlobId,
    /// The absolute source paths given to `backup`.
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    pub program_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SnapshotSummary>,
    /// For a snapshot written by `repair snapshots`: the damaged snapshot it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub other: u64,
    pub errors: u64,
    pub bytes_read: u64,
    pub total_bytes: u64,
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub stored_bytes_added: u64,
}

impl Snapshot {
    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, getrandom::Error> {
        file::seal_json(keys, file::SNAPSHOT, self, Compression::default())
    }

    pub fn to_json(&self) -> Vec<u8> {
        file::to_json(self)
    }

    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<Snapshot> {
        let s: Snapshot = file::open_json(keys, file::SNAPSHOT, bytes)?;
        file::check_json_version(file::SNAPSHOT, s.version, 1)?;
        Ok(s)
    }
}
