use std::path::PathBuf;

use thiserror::Error;

use vault_repo::RepoError;

#[derive(Debug, Error)]
pub enum OpError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    #[error("snapshot id {prefix:?} is ambiguous: it matches {matches}")]
    AmbiguousSnapshot { prefix: String, matches: String },
    #[error("path {path:?} does not exist in snapshot {snapshot}")]
    PathNotInSnapshot { path: String, snapshot: String },
    #[error("source {}: {reason}", path.display())]
    Source { path: PathBuf, reason: String },
    #[error("target {}: {reason}", path.display())]
    Target { path: PathBuf, reason: String },
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error("{0}")]
    TreeLimit(String),
    #[error("invalid pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
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
}

pub type Result<T, E = OpError> = std::result::Result<T, E>;
