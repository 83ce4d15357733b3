//! The local cache of immutable repository files: snapshots, index files and tree packs,
//! under `<cache dir>/<repository id>/`. Everything cached is content-addressed, so an
//! entry never goes stale; it is only ever damaged. Damage is detected (hash of a cached
//! file against its name, authentication of a cached tree blob) and the entry is fetched
//! again, never trusted. Cache failures never fail an operation.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::private_dir::ensure_private_dir;
use vault_format::Id;

#[derive(Debug)]
/// The cache directory of one repository (see the module documentation).
pub struct Cache {
    root: PathBuf,
}

const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# This directory is a cache of vault (a backup tool); it can be deleted.\n";

/// `$VAULT_CACHE_DIR` is handled by the CLI; this is the platform default.
pub fn default_base() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("vault"));
    }
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".cache/vault"))
}

impl Cache {
    /// Opens the cache of repository `repo_id` below `base`. Both must be this user's own
    /// and writable by nobody else: the cache's content is verified on use, but a
    /// directory another user controls could redirect its writes and deletions.
    pub fn open(base: &Path, repo_id: &Id) -> std::io::Result<Cache> {
        ensure_private_dir(base)?;
        // Created once, never through a link someone planted.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(base.join("CACHEDIR.TAG"))
            .and_then(|mut f| f.write_all(TAG.as_bytes()));
        let root = base.join(repo_id.to_hex());
        ensure_private_dir(&root)?;
        ensure_private_dir(&root.join("tmp"))?;
        Ok(Cache { root })
    }

    /// The cache directory of this repository.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, dir: &str, id: &Id) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(dir).join(&hex[..2]).join(hex)
    }

    /// A cached file whose bytes still hash to its name.
    pub fn get(&self, dir: &str, id: &Id) -> Option<Vec<u8>> {
        let p = self.path(dir, id);
        let bytes = std::fs::read(&p).ok()?;
        if Id::of_stored_bytes(&bytes) == *id {
            Some(bytes)
        } else {
            let _ = std::fs::remove_file(&p);
            None
        }
    }

    /// Stores a file atomically (temp + rename), so concurrent processes never see a part.
    pub fn put(&self, dir: &str, id: &Id, bytes: &[u8]) {
        let p = self.path(dir, id);
        if p.exists() {
            return;
        }
        let _ = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(p.parent().unwrap_or(&self.root))?;
            let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))?;
            tmp.write_all(bytes)?;
            tmp.persist(&p).map_err(|e| e.error)?;
            Ok(())
        })();
    }

    /// A byte range of a cached file, if it is cached and long enough.
    pub fn read_range(&self, dir: &str, id: &Id, offset: u64, len: u64) -> Option<Vec<u8>> {
        let f = File::open(self.path(dir, id)).ok()?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }

    /// Whether a file is cached.
    pub fn contains(&self, dir: &str, id: &Id) -> bool {
        self.path(dir, id).exists()
    }

    /// Drops a cached file (best effort).
    pub fn remove(&self, dir: &str, id: &Id) {
        let _ = std::fs::remove_file(self.path(dir, id));
    }

    /// Drops cached files of `dir` that the repository no longer lists.
    pub fn retain(&self, dir: &str, keep: &HashSet<Id>) {
        let Ok(subdirs) = std::fs::read_dir(self.root.join(dir)) else { return };
        // Only real subdirectories: a link here must not lead the deletions elsewhere.
        for sub in subdirs.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            let Ok(files) = std::fs::read_dir(sub.path()) else { continue };
            for f in files.flatten() {
                let name = f.file_name();
                let known = name.to_str().and_then(|n| n.parse::<Id>().ok()).is_some_and(|id| keep.contains(&id));
                if !known {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_entries_are_dropped() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(d.path(), &Id([1; 32])).unwrap();
        let bytes = b"cached file".to_vec();
        let id = Id::of_stored_bytes(&bytes);
        c.put("index", &id, &bytes);
        assert_eq!(c.get("index", &id).unwrap(), bytes);
        std::fs::write(c.path("index", &id), b"rotten").unwrap();
        assert!(c.get("index", &id).is_none());
        assert!(!c.contains("index", &id));
        c.put("index", &id, &bytes);
        c.retain("index", &HashSet::new());
        assert!(!c.contains("index", &id));
        assert!(d.path().join("CACHEDIR.TAG").exists());
    }

    #[test]
    fn a_planted_link_leads_no_deletion_elsewhere() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let c = Cache::open(&d.path().join("cache"), &Id([1; 32])).unwrap();
        let victim = d.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("precious"), b"x").unwrap();
        std::fs::create_dir_all(c.root().join("index")).unwrap();
        std::os::unix::fs::symlink(&victim, c.root().join("index/ab")).unwrap();
        c.retain("index", &HashSet::new());
        assert!(victim.join("precious").exists());
        // A cache base that others may write to is made private; a linked one is refused.
        let base = d.path().join("shared");
        std::fs::create_dir(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o1777)).unwrap();
        Cache::open(&base, &Id([2; 32])).unwrap();
        assert_eq!(std::fs::metadata(&base).unwrap().permissions().mode() & 0o777, 0o700);
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&base, &link).unwrap();
        assert!(Cache::open(&link, &Id([2; 32])).is_err());
        // The tag is never written through a link.
        let other = d.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o700)).unwrap();
        let target = d.path().join("target-file");
        std::os::unix::fs::symlink(&target, other.join("CACHEDIR.TAG")).unwrap();
        Cache::open(&other, &Id([3; 32])).unwrap();
        assert!(!target.exists());
    }
}
