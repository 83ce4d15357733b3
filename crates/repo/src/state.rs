//! What vault remembers between runs, for one user: per repository location, the key file
//! that opened it last (tried first next time, so a run pays for one Argon2id). Kept
//! under `$VAULT_STATE_DIR`, else `$XDG_STATE_HOME/vault`, else `~/.local/state/vault`, in
//! a directory only its owner can enter. Unlike the cache it is not content-addressed and
//! not to be shared; losing it only costs time.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vault_format::KeyId;

/// The state directory of this user.
#[derive(Debug)]
pub struct LocalState {
    root: PathBuf,
}

/// The platform's state directory for vault.
pub fn default_base() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|x| !x.is_empty()).map(PathBuf::from);
    if let Some(x) = var("VAULT_STATE_DIR") {
        return Some(x);
    }
    if let Some(x) = var("XDG_STATE_HOME") {
        return Some(x.join("vault"));
    }
    var("HOME").map(|h| h.join(".local/state/vault"))
}

impl LocalState {
    /// Opens (creating) the state directory `base`, private to this user.
    pub fn open(base: &Path) -> std::io::Result<LocalState> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(base)?;
        let meta = std::fs::symlink_metadata(base)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other(format!("{} is not a directory", base.display())));
        }
        // Another user must not plant hints or remembered repository states here.
        if meta.permissions().mode() & 0o022 != 0 {
            std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(LocalState { root: base.to_path_buf() })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn location_file(&self, location: &str) -> PathBuf {
        self.root.join("locations").join(blake3::hash(location.as_bytes()).to_hex().as_str())
    }

    /// The key file that opened the repository at `location` last time.
    pub fn key_hint(&self, location: &str) -> Option<KeyId> {
        let text = std::fs::read_to_string(self.location_file(location)).ok()?;
        text.trim().parse().ok().map(KeyId)
    }

    /// Remembers that key file `id` opened the repository at `location`.
    pub fn remember_key(&self, location: &str, id: KeyId) -> std::io::Result<()> {
        if self.key_hint(location) == Some(id) {
            return Ok(());
        }
        self.write_atomic(&self.location_file(location), format!("{}\n", id.0.to_hex()).as_bytes())
    }

    /// Replaces `path` (below the root) in one step, so a crash leaves the old or the new.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_per_location_in_a_private_directory() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("state");
        let s = LocalState::open(&base).unwrap();
        assert_eq!(std::fs::metadata(&base).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(s.key_hint("/a"), None);
        let id = KeyId(vault_format::Id([3; 32]));
        s.remember_key("/a", id).unwrap();
        assert_eq!(s.key_hint("/a"), Some(id));
        assert_eq!(s.key_hint("/b"), None);
        // A group-writable directory is made private again.
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        LocalState::open(&base).unwrap();
        assert_eq!(std::fs::metadata(&base).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
