//! What vault remembers between runs, for one user: per repository location, the key file
//! that opened it last (tried first next time, so a run pays for one Argon2id); per
//! repository, the snapshots and tombstones it has seen (so that a storage server rolling
//! the repository back, or files vanishing without a forget, is noticed). Kept
//! under `$VAULT_STATE_DIR`, else `$XDG_STATE_HOME/vault`, else `~/.local/state/vault`, in
//! a directory only its owner can enter. Unlike the cache it is not content-addressed and
//! not to be shared; losing it only costs time.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use vault_format::{Id, KeyId, SnapshotId};

/// What this user has seen of one repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Snapshot files listed (and not since named by a tombstone).
    pub snapshots: BTreeSet<SnapshotId>,
    /// Tombstones listed (they are never deleted).
    pub tombstones: BTreeSet<Id>,
}

const SEEN_MAGIC: &[u8] = b"vault seen v1\n";

impl Seen {
    fn encode(&self) -> Vec<u8> {
        let mut out = SEEN_MAGIC.to_vec();
        for set in [self.snapshots.iter().map(|s| s.0).collect::<Vec<_>>(), self.tombstones.iter().copied().collect()] {
            out.extend_from_slice(&(set.len() as u64).to_le_bytes());
            for id in set {
                out.extend_from_slice(&id.0);
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Seen> {
        let mut rest = bytes.strip_prefix(SEEN_MAGIC)?;
        let mut sets = Vec::new();
        for _ in 0..2 {
            let (n, tail) = rest.split_first_chunk::<8>()?;
            let n = usize::try_from(u64::from_le_bytes(*n)).ok()?;
            let len = n.checked_mul(32).filter(|l| *l <= tail.len())?;
            let (ids, tail) = tail.split_at(len);
            sets.push(ids.chunks_exact(32).map(|c| Id(c.try_into().unwrap_or_default())).collect::<BTreeSet<_>>());
            rest = tail;
        }
        if !rest.is_empty() {
            return None;
        }
        let tombstones = sets.pop()?;
        let snapshots = sets.pop()?.into_iter().map(SnapshotId).collect();
        Some(Seen { snapshots, tombstones })
    }
}

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
        // Another user must not plant hints or remembered repository states here.
        crate::private_dir::ensure_private_dir(base)?;
        Ok(LocalState { root: base.to_path_buf() })
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
        self.write_if_changed(&self.location_file(location), format!("{}\n", id.0.to_hex()).as_bytes())
    }

    fn repository_dir(&self, repo: &Id) -> PathBuf {
        self.root.join("repositories").join(repo.to_hex())
    }

    /// What was seen of repository `repo` (empty the first time; a damaged record counts
    /// as none, which only loses detection).
    pub fn seen(&self, repo: &Id) -> Seen {
        std::fs::read(self.repository_dir(repo).join("seen")).ok().and_then(|b| Seen::decode(&b)).unwrap_or_default()
    }

    /// The config (as JSON) that this user last opened repository `repo` with.
    pub fn config_seen(&self, repo: &Id) -> Option<Vec<u8>> {
        std::fs::read(self.repository_dir(repo).join("config.json")).ok()
    }

    /// Remembers the config of repository `repo`.
    pub fn remember_config(&self, repo: &Id, json: &[u8]) -> std::io::Result<()> {
        self.write_if_changed(&self.repository_dir(repo).join("config.json"), json)
    }

    /// The key epoch (number and key id) that key file `key` last used in repository `repo`.
    pub fn epoch_seen(&self, repo: &Id, key: &KeyId) -> Option<(u32, String)> {
        let text = std::fs::read_to_string(self.epoch_file(repo, key)).ok()?;
        let (n, id) = text.trim().split_once(' ')?;
        Some((n.parse().ok()?, id.to_string()))
    }

    /// Remembers the key epoch that key file `key` used in repository `repo`.
    pub fn remember_epoch(&self, repo: &Id, key: &KeyId, epoch: u32, key_id: &str) -> std::io::Result<()> {
        self.write_if_changed(&self.epoch_file(repo, key), format!("{epoch} {key_id}\n").as_bytes())
    }

    fn epoch_file(&self, repo: &Id, key: &KeyId) -> PathBuf {
        self.repository_dir(repo).join(format!("epoch-{}", key.0.to_hex()))
    }

    /// Changes what was seen of `repo` under a lock, so that two vault processes of this
    /// user never drop each other's observations.
    pub fn update_seen(&self, repo: &Id, change: impl FnOnce(&mut Seen)) -> std::io::Result<()> {
        let dir = self.repository_dir(repo);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| std::io::Error::from(e))?;
        let mut seen = self.seen(repo);
        let before = seen.clone();
        change(&mut seen);
        if seen != before {
            self.write_atomic(&dir.join("seen"), &seen.encode())?;
        }
        Ok(())
    }

    /// Writes `bytes` to `path` unless it holds them already (most runs change nothing).
    fn write_if_changed(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        if std::fs::read(path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        self.write_atomic(path, bytes)
    }

    /// Replaces `path` (below the root) in one step, so a crash leaves the old or the new.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
    use std::os::unix::fs::PermissionsExt;

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

    #[test]
    fn seen_round_trips_and_damage_counts_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalState::open(dir.path()).unwrap();
        let repo = Id([1; 32]);
        assert_eq!(s.seen(&repo), Seen::default());
        s.update_seen(&repo, |seen| {
            seen.snapshots.insert(SnapshotId(Id([2; 32])));
            seen.tombstones.insert(Id([3; 32]));
        })
        .unwrap();
        let seen = s.seen(&repo);
        assert_eq!(seen.snapshots.len(), 1);
        assert_eq!(seen.tombstones.len(), 1);
        assert_eq!(Seen::decode(&seen.encode()), Some(seen.clone()));
        let bytes = seen.encode();
        for cut in 0..bytes.len() {
            assert_eq!(Seen::decode(&bytes[..cut]), None);
        }
        let mut long = bytes.clone();
        long[SEEN_MAGIC.len()] = 0xff;
        assert_eq!(Seen::decode(&long), None);
    }
}
