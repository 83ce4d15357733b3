use thiserror::Error;

/// A stored object could not be decoded. Authentication failures are kept apart from other
/// decoding errors: they mean corruption or tampering and are never retried.
#[derive(Debug, Error)]
pub enum FormatError {
    #[error("authentication failed (the object is corrupt or was tampered with)")]
    Authentication,
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: u64 },
    #[error("decompression failed: {0}")]
    Decompression(String),
}

impl FormatError {
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        FormatError::Invalid { what, reason: reason.into() }
    }
}

pub type Result<T, E = FormatError> = std::result::Result<T, E>;
