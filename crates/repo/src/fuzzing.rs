//! The repository-opening path on a crafted repository, for the `open_repository` fuzz
//! target and the corpus replay test: the input is split into a config, an index file, a
//! snapshot and a tree pack (separated by `0xff 0xfe`), stored under their names in an
//! in-memory repository whose key file (cheap KDF, the fuzz master key) is fixed; then
//! the repository is opened, its index loaded and every snapshot's root tree read. The
//! contract: no panic, no unbounded allocation, whatever the files hold.

use std::sync::Arc;

use vault_format::fuzzing::fuzz_keys;
use vault_format::keyfile::{KdfParams, KeyFile, KeyMeta};
use vault_format::{Id, KeyId};

use super::backend::{Backend, OpenMode};
use super::indexed::IndexedRepository;
use super::location::Location;
use super::object::{StoredKind, StoredObject};
use super::repository::Repository;

/// The password of the fixed key file.
pub const PASSWORD: &[u8] = b"password";

/// The fixed key file: cheap Argon2 parameters, wrapping [`fuzz_keys`]'s master key.
pub fn key_file() -> Vec<u8> {
    let kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    KeyFile::wrap(fuzz_keys().master().expect("a full key"), PASSWORD, kdf, [6; 32], [7; 24], KeyMeta::default())
        .map(|k| k.to_json())
        .unwrap_or_default()
}

/// Splits `data` at each `0xff 0xfe`.
fn parts(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        if data[i] == 0xff && data[i + 1] == 0xfe {
            out.push(&data[start..i]);
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    out.push(&data[start..]);
    out
}

/// Returns how many snapshots' root trees could be read (the seed reaches them all).
pub fn open_repository(data: &[u8]) -> usize {
    let Ok(backend) = Backend::open(&Location::Memory("fuzz".into()), &Default::default(), OpenMode::Create) else {
        return 0;
    };
    let key = key_file();
    let _ = backend.write(&StoredObject::Key(KeyId(Id::of_stored_bytes(&key))).path(), key);
    let p = parts(data);
    let stored = |kind: StoredKind, bytes: &[u8]| {
        let _ = backend.write(&StoredObject::new(kind, Id::of_stored_bytes(bytes)).path(), bytes.to_vec());
    };
    if let Some(config) = p.first() {
        let _ = backend.write(&StoredObject::Config.path(), config.to_vec());
    }
    if let Some(index) = p.get(1) {
        stored(StoredKind::Index, index);
    }
    if let Some(snapshot) = p.get(2) {
        stored(StoredKind::Snapshot, snapshot);
    }
    if let Some(pack) = p.get(3) {
        let id = Id::of_stored_bytes(pack);
        let hex = id.to_string();
        let _ = backend.write(&format!("tree/{}/{hex}", &hex[..2]), pack.to_vec());
    }
    let Ok(repo) = Repository::open(backend, PASSWORD) else { return 0 };
    let repo = Arc::new(repo);
    let Ok((snapshots, _)) = repo.load_all_snapshots() else { return 0 };
    let Ok(indexed) = IndexedRepository::load(repo) else { return 0 };
    snapshots.iter().filter(|(_, s)| indexed.load_tree(&s.tree).is_ok()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_at_the_separator() {
        assert_eq!(parts(b"a\xff\xfeb\xff\xfe"), vec![&b"a"[..], b"b", b""]);
        assert_eq!(parts(b""), vec![&b""[..]]);
        open_repository(b"");
        open_repository(b"\xff\xfe\xff\xfe\xff\xfe");
    }
}
