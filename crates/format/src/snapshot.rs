//! Snapshots: the commit point of a backup. JSON inside a sealed file.

use serde::{Deserialize, Serialize};

use super::blob::Compression;
use super::crypto::Keys;
use super::error::{FormatError, Result};
use super::file;
use super::id::{BlobId, SnapshotId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// A snapshot: one backup's root tree and where it came from.
pub struct Snapshot {
    /// Snapshot format version (1).
    pub version: u32,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// The root tree blob.
    pub tree: BlobId,
    /// The absolute source paths given to `backup`.
    pub paths: Vec<String>,
    /// Host the backup ran on.
    pub hostname: String,
    /// User who ran it.
    pub username: String,
    /// Its uid.
    pub uid: u32,
    /// Its gid.
    pub gid: u32,
    #[serde(default)]
    /// Tags given with `--tag`.
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The snapshot this backup compared files against.
    pub parent: Option<SnapshotId>,
    /// The vault version that wrote it.
    pub program_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Counts of the backup run.
    pub summary: Option<SnapshotSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// What the backup left out by rule, so that comparing the snapshot with the live
    /// directory (`diff SNAP DIR`) can leave out the same.
    pub filters: Option<SnapshotFilters>,
    /// For a snapshot written by `repair snapshots`: the damaged snapshot it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
    /// Which key sealed it (set when read; not stored in the JSON).
    #[serde(skip)]
    pub written_by: Option<file::Origin>,
}

/// The exclusion rules of a backup (see the backup options of the same names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFilters {
    /// Glob patterns of entries left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Glob patterns of entries left out, matched regardless of case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iexcludes: Vec<String>,
    /// Marker files (`NAME` or `NAME:HEADER`) whose directories were left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_if_present: Vec<String>,
    /// Directories tagged as caches were left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclude_caches: bool,
    /// Files larger than this many bytes were left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_larger_than: Option<u64>,
}

impl SnapshotFilters {
    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        *self == SnapshotFilters::default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
/// What a backup run found and stored.
pub struct SnapshotSummary {
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files read again because they changed.
    pub files_changed: u64,
    /// Files taken from the parent without reading.
    pub files_unchanged: u64,
    /// Directories.
    pub dirs: u64,
    /// Other entries (symlinks, devices, FIFOs, sockets).
    pub other: u64,
    /// Entries that could not be read.
    pub errors: u64,
    /// Bytes read from files.
    pub bytes_read: u64,
    /// Bytes of all files in the snapshot.
    pub total_bytes: u64,
    /// Blobs stored by this run.
    pub blobs_added: u64,
    /// Their plaintext bytes.
    pub bytes_added: u64,
    /// Their bytes as stored (compressed, sealed).
    pub stored_bytes_added: u64,
}

impl Snapshot {
    /// The sealed snapshot file.
    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, getrandom::Error> {
        file::seal_json(keys, file::SNAPSHOT, self, Compression::default())
    }

    /// The plaintext JSON (for `cat snapshot`).
    pub fn to_json(&self) -> Vec<u8> {
        file::to_json(self)
    }

    /// Opens and validates a sealed snapshot file.
    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<Snapshot> {
        let (origin, plain) = file::open_origin(keys, file::SNAPSHOT, bytes)?;
        let mut s: Snapshot =
            serde_json::from_slice(&plain).map_err(|e| FormatError::invalid(file::SNAPSHOT.name, e.to_string()))?;
        file::check_json_version(file::SNAPSHOT, s.version, 1)?;
        s.written_by = Some(origin);
        Ok(s)
    }
}
