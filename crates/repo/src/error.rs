//! Errors of the repository layer. Each says which stored object it is about.

use thiserror::Error;

use super::backend::BackendError;
use super::object::Damaged;

/// An error of the repository layer.
#[derive(Debug, Error)]
pub enum RepoError {
    /// No config file: there is no repository here.
    #[error("repository {0} does not exist (no config file found); create it with `vault init`")]
    NotFound(String),
    /// `init` found a repository already.
    #[error("repository {0} already exists; refusing to initialise it again")]
    AlreadyExists(String),
    /// Every key file decrypted cleanly but none opened with the password.
    #[error("wrong password: no key file in {0} opens with it")]
    WrongPassword(String),
    /// No key file could be used at all (damaged, unreadable, none present).
    #[error("no usable key file in {repo}: {reason}")]
    NoUsableKey {
        /// The repository.
        repo: String,
        /// Why each key file failed.
        reason: String,
    },
    /// The stored bytes of an object are not what was written: authentication failure,
    /// hash mismatch or undecodable content. Never retried.
    #[error("{object} is damaged: {reason}")]
    Integrity {
        /// The damaged object.
        object: Damaged,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob that the index does not know.
    #[error("blob {0} is not in the index")]
    BlobNotIndexed(String),
    /// Options or parameters that cannot be used (a usage error, not damage).
    #[error("invalid {what}: {reason}")]
    InvalidOptions {
        /// Which option.
        what: String,
        /// Why.
        reason: String,
    },
    /// The repository differs from what this user saw before in a way no vault command
    /// makes (a re-sealed config, say).
    #[error("possible tampering: {0}")]
    Tampering(String),
    /// Another command changed the same thing at the same time; nothing was lost.
    #[error("{0}")]
    Concurrent(String),
    /// A write-only key met an object another key sealed (not its to read).
    #[error("{0} is sealed with a key that this write-only key does not hold")]
    ForeignKey(String),
    /// The command needs a full key.
    #[error("{0}")]
    WriteOnly(String),
    /// The storage backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The system could not give a resource the operation needs (a thread, say).
    #[error("cannot {what}: {source}")]
    System {
        /// What could not be done.
        what: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(#[from] getrandom::Error),
}

impl RepoError {
    /// An integrity error about `object`.
    pub fn integrity(object: Damaged, reason: impl std::fmt::Display) -> Self {
        RepoError::Integrity { object, reason: reason.to_string() }
    }

    /// A usage error about option `what`.
    pub fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        RepoError::InvalidOptions { what: what.into(), reason: reason.to_string() }
    }
}

/// The repository layer's result.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;
