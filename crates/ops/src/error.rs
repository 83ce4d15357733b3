use std::path::PathBuf;

use thiserror::Error;

use vault_repo::RepoError;

#[derive(Debug, Error)]
/// Why an operation failed.
pub enum OpError {
    #[error(transparent)]
    /// The repository failed (storage, damage, keys).
    Repo(#[from] RepoError),
    #[error("no snapshot matches {0:?}")]
    /// No snapshot matches the given id or name.
    SnapshotNotFound(String),
    #[error("snapshot id {prefix:?} is ambiguous: it matches {matches}")]
    /// An id prefix names more than one snapshot.
    AmbiguousSnapshot {
        /// The prefix given.
        prefix: String,
        /// The snapshots it matches.
        matches: String,
    },
    #[error("path {path:?} does not exist in snapshot {snapshot}")]
    /// A path given is not in the snapshot.
    PathNotInSnapshot {
        /// The path.
        path: String,
        /// The snapshot.
        snapshot: String,
    },
    #[error("source {}: {reason}", path.display())]
    /// A backup source cannot be used.
    Source {
        /// The source.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    #[error("target {}: {reason}", path.display())]
    /// A restore target cannot be used.
    Target {
        /// The target.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    #[error("cannot write the output: {0}")]
    /// Writing the output (stdout, a dump file) failed.
    Output(std::io::Error),
    #[error("{0}")]
    /// A snapshot's trees exceed what a walk expands (a crafted snapshot).
    TreeLimit(String),
    #[error("invalid pattern {pattern:?}: {reason}")]
    /// An include or exclude pattern does not parse.
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A request that cannot be carried out as given (a usage error, exit 2).
    #[error("{0}")]
    Usage(String),
    /// The repository changed under every attempt (check beside a running prune).
    #[error("{0}")]
    Unsettled(String),
    /// The user's local state (what was seen of the repository) cannot be kept.
    #[error("cannot keep the local record of what this repository held: {0}")]
    LocalState(String),
    /// Prune will not delete anything: what it would judge from is damaged or missing.
    #[error("prune refused: {0}")]
    PruneRefused(String),
    /// The operation was asked to stop (SIGINT, SIGTERM); what it stored is kept.
    #[error("interrupted")]
    Interrupted,
}

pub type Result<T, E = OpError> = std::result::Result<T, E>;
