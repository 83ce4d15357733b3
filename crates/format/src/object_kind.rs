//! The kinds of sealed object (spec §5): what the associated data names.

/// The kinds of sealed object. The byte value enters the associated data, so an object of
/// one kind never decrypts as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjectKind {
    /// A key file's wrapped master key.
    KeyFile = 1,
    /// The repository config.
    Config = 2,
    /// An index file.
    Index = 3,
    /// A snapshot.
    Snapshot = 4,
    /// A pack's header.
    PackHeader = 5,
    /// A data blob (file content).
    DataBlob = 6,
    /// A tree blob (a directory listing).
    TreeBlob = 7,
    /// A check record.
    CheckRecord = 8,
    /// A writer's announcement.
    Announcement = 9,
    /// A prune's condemnation.
    Condemnation = 10,
    /// A prune's wait record.
    WaitRecord = 11,
    /// A forget's tombstone.
    Tombstone = 12,
    /// A write-only key's record (its data key, for full keys to read what it wrote).
    KeyRecord = 13,
    /// A key file's member record (its agreement key, spec §3.2).
    MemberRecord = 14,
    /// A grant of key epochs to one key file (spec §3.2).
    Grant = 15,
}
