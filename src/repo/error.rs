use thiserror::Error;

use super::backend::BackendError;
use crate::format::FormatError;

#[derive(Debug, Error)]
pub enum RepoError {
    #[error("repository {0} does not exist (no config file found); create it with `vault init`")]
    NotFound(String),
    #[error("repository {0} already exists; refusing to initialise it again")]
    AlreadyExists(String),
    #[error("wrong password: no key file in {0} opens with it")]
    WrongPassword(String),
    #[error("no usable key file in {repo}: {reason}")]
    NoUsableKey { repo: String, reason: String },
    /// The stored bytes of an object are not what was written: authentication failure,
    /// hash mismatch or undecodable content. Never retried.
    #[error("{what} is damaged: {reason}")]
    Integrity { what: String, reason: String },
    #[error("blob {0} is not in the index")]
    BlobNotIndexed(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the operating system's random number generator failed: {0}")]
    Random(#[from] getrandom::Error),
}

impl RepoError {
    pub fn integrity(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        RepoError::Integrity { what: what.into(), reason: reason.to_string() }
    }

    pub fn corrupt(what: impl Into<String>, err: FormatError) -> Self {
        RepoError::integrity(what, err)
    }

    pub fn is_integrity(&self) -> bool {
        matches!(self, RepoError::Integrity { .. })
    }
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;
