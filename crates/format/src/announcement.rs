//! Writer announcements (`writers/<id>`): every command that adds to the repository
//! (backup, repair, prune, tag, rewrite) writes one before it lists the index and removes it
//! when it ends. They are not locks: nothing waits on them but the deletion step of a
//! prune, which must not delete what a writer that saw the old index may still reference.

use serde::{Deserialize, Serialize};

use super::file::{ANNOUNCEMENT, FileKind, SealedDocument};

/// Who is writing, and how its host can tell that it has died.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// Record format version (1).
    pub version: u32,
    /// RFC 3339, UTC, when the writer started (the writer's clock: informational only).
    pub time: String,
    /// Host the writer runs on.
    pub hostname: String,
    /// Process id of the writer on that host.
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id` of the writer's host ("" when unknown): a
    /// different boot id on the same host means the writer died in an earlier boot.
    #[serde(default)]
    pub boot_id: String,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat`, field 22;
    /// 0 when unknown), so a reused pid is not taken for the writer.
    #[serde(default)]
    pub process_start: u64,
    /// The command, e.g. `backup` or `prune`.
    pub command: String,
    /// 16 random bytes (hex), so that two announcements never share a name.
    pub nonce: String,
}

impl SealedDocument for Announcement {
    const KIND: FileKind = ANNOUNCEMENT;
    const VERSION: u32 = 1;
    fn version(&self) -> u32 {
        self.version
    }
}
