//! Stable, documented exit codes (docs/user-guide.md lists them).

use vault_ops::OpError;
use vault_repo::RepoError;
use vault_repo::backend::{BackendError, BackendErrorKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitCode {
    Ok = 0,
    Error = 1,
    Usage = 2,
    /// The backup finished, but some source files could not be read.
    PartialBackup = 3,
    RepositoryNotFound = 10,
    WrongPassword = 12,
    /// Stored data is damaged (failed authentication or verification).
    Integrity = 13,
    /// The storage backend failed: unreachable, access denied, misconfigured, out of space.
    Backend = 14,
    /// The command ran, but the repository lost snapshots or tombstones this user saw
    /// before, without a forget: rollback or deletion by the storage.
    Tampering = 15,
    /// The key that opened the repository cannot do this (a write-only key).
    NotPermitted = 16,
    /// Stopped by SIGINT or SIGTERM (a backup keeps and indexes what it stored first).
    Interrupted = 130,
}

impl ExitCode {
    pub(crate) fn code(self) -> i32 {
        self as i32
    }
}

/// What the repository lost since this user last looked (see `vault_ops::rollback`): it
/// turns a run that otherwise succeeded into exit 15.
static TAMPERING: std::sync::Mutex<Option<vault_ops::rollback::History>> = std::sync::Mutex::new(None);

pub(crate) fn record_tampering(h: vault_ops::rollback::History) {
    *TAMPERING.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(h);
}

/// What was recorded, taking it (after `check --accept-missing`, nothing is left to report).
pub(crate) fn take_tampering() -> Option<vault_ops::rollback::History> {
    TAMPERING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
}

pub(crate) fn tampering_seen() -> bool {
    TAMPERING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
}

/// The exit code an error deserves: its most specific cause decides.
pub(crate) fn classify(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        match cause.downcast_ref::<OpError>() {
            Some(OpError::Pattern { .. } | OpError::Usage(_)) => return ExitCode::Usage,
            Some(OpError::PruneRefused(_)) => return ExitCode::Integrity,
            _ => {}
        }
        // A reader (dump's content stream) carries a repository error inside an io::Error,
        // whose `source` skips it.
        let in_io = || {
            let io = cause.downcast_ref::<std::io::Error>().or_else(|| match cause.downcast_ref::<OpError>() {
                Some(OpError::Output(e)) => Some(e),
                _ => None,
            });
            io.and_then(|e| e.get_ref()).and_then(|e| e.downcast_ref::<RepoError>())
        };
        let repo = cause
            .downcast_ref::<RepoError>()
            .or_else(|| match cause.downcast_ref::<OpError>() {
                Some(OpError::Repo(r)) => Some(r),
                _ => None,
            })
            .or_else(in_io);
        if let Some(r) = repo {
            return match r {
                RepoError::NotFound(_) => ExitCode::RepositoryNotFound,
                RepoError::WrongPassword(_) => ExitCode::WrongPassword,
                RepoError::Integrity { .. } => ExitCode::Integrity,
                RepoError::InvalidOptions { .. } => ExitCode::Usage,
                RepoError::Backend(b) => backend_code(b),
                RepoError::Tampering(_) => ExitCode::Tampering,
                RepoError::WriteOnly(_) | RepoError::ForeignKey(_) => ExitCode::NotPermitted,
                _ => ExitCode::Error,
            };
        }
        if let Some(b) = cause.downcast_ref::<BackendError>() {
            return backend_code(b);
        }
        // An invalid `-o key=value` is bad usage, as the exit code table says.
        if cause.downcast_ref::<vault_repo::OptionError>().is_some() {
            return ExitCode::Usage;
        }
    }
    ExitCode::Error
}

fn backend_code(b: &BackendError) -> ExitCode {
    if b.kind == BackendErrorKind::NotFound && b.path.is_empty() {
        ExitCode::RepositoryNotFound
    } else {
        ExitCode::Backend
    }
}
