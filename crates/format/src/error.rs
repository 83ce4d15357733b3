use thiserror::Error;

/// A stored object could not be decoded. Authentication failures are kept apart from other
/// decoding errors: they mean corruption or tampering and are never retried.
#[derive(Debug, Error)]
pub enum FormatError {
    #[error("authentication failed (the object is corrupt or was tampered with)")]
    /// The AEAD tag did not verify.
    Authentication,
    #[error("sealed with a key this key does not hold")]
    /// A write-only key met an object that another key sealed: not its to read.
    ForeignKey,
    #[error("truncated: {0}")]
    /// The input ended inside the named structure.
    Truncated(&'static str),
    #[error("invalid {what}: {reason}")]
    /// A structure was well formed but held a value the format forbids.
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
    #[error("unsupported {what} version {version}")]
    /// Written by a format version this build does not read.
    UnsupportedVersion {
        /// What carried the version.
        what: &'static str,
        /// The version found.
        version: u64,
    },
    #[error("decompression failed: {0}")]
    /// zstd rejected the payload.
    Decompression(String),
}

impl FormatError {
    /// An [`FormatError::Invalid`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        FormatError::Invalid { what, reason: reason.into() }
    }
}

/// The format layer's result.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
