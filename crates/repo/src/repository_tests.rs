//! Tests of `repository.rs`: opening, creating and reading a repository on the memory
//! backend.

use super::*;
use crate::backend::OpenMode;
use crate::location::Location;
use crate::master_index::BlobLocation;

fn fast() -> InitOptions {
    InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() }
}

#[test]
fn init_open_and_errors() {
    let b = Backend::open(&Location::Memory("r".into()), &Default::default(), OpenMode::Create).unwrap();
    assert!(matches!(Repository::open(b.clone(), b"pw"), Err(RepoError::NotFound(_))));
    let r = Repository::init(b.clone(), b"pw", &fast(), KeyMeta::default()).unwrap();
    assert!(matches!(
        Repository::init(b.clone(), b"pw", &fast(), KeyMeta::default()),
        Err(RepoError::AlreadyExists(_))
    ));
    let r2 = Repository::open(b.clone(), b"pw").unwrap();
    assert_eq!(r.config(), r2.config());
    assert!(matches!(Repository::open(b.clone(), b"bad"), Err(RepoError::WrongPassword(_))));
    // A damaged key file is not a wrong password.
    let key = b.list(StoredKind::Key.dir()).unwrap().remove(0).path;
    let mut bytes = b.read(&key).unwrap().to_vec();
    bytes[10] ^= 1;
    b.write(&key, bytes).unwrap();
    assert!(matches!(Repository::open(b.clone(), b"pw"), Err(RepoError::NoUsableKey { .. })));
}

#[test]
fn a_key_file_left_by_a_lost_init_does_not_stop_opening() {
    let b = Backend::open(&Location::Memory("orphan".into()), &Default::default(), OpenMode::Create).unwrap();
    let r = Repository::init(b.clone(), b"pw", &fast(), KeyMeta::default()).unwrap();
    // The loser of two concurrent inits wrote a key file (same password, another
    // master key) before it lost the config; make sure one sorts before the real key.
    loop {
        let kf = KeyFile::wrap(
            &SecretKey::random().unwrap(),
            b"pw",
            fast().kdf,
            [7; vault_format::keyfile::SALT_LEN],
            [9; 24],
            KeyMeta::default(),
        )
        .unwrap();
        let bytes = kf.to_json();
        let id = Id::of_stored_bytes(&bytes);
        b.write(&StoredObject::Key(KeyId(id)).path(), bytes).unwrap();
        if id < r.key_id.0 {
            break;
        }
    }
    let opened = Repository::open(b.clone(), b"pw").unwrap();
    assert_eq!(opened.key_id, r.key_id);
    assert_eq!(opened.config(), r.config());
    // With the real key gone, the config is reported damaged for the key that opens.
    b.delete(&StoredObject::Key(r.key_id).path()).unwrap();
    let e = Repository::open(b, b"pw").err().unwrap();
    assert!(matches!(e, RepoError::Integrity { .. }), "{e}");
}

#[test]
fn oversized_files_are_reported_unread() {
    let b = Backend::open(&Location::Memory("big".into()), &Default::default(), OpenMode::Create).unwrap();
    let r = Repository::init(b.clone(), b"pw", &fast(), KeyMeta::default()).unwrap();
    for kind in [StoredKind::Snapshot, StoredKind::Index, StoredKind::Tombstone] {
        let junk = vec![7u8; kind.max_stored_size() as usize + 1];
        let id = Id::of_stored_bytes(&junk);
        b.write(&StoredObject::new(kind, id).path(), junk).unwrap();
    }
    let before = b.stats().bytes_down;
    let (ok, bad) = r.load_all_snapshots().unwrap();
    assert!(ok.is_empty());
    assert!(matches!(&bad[0].1, RepoError::Integrity { reason, .. } if reason.contains("not read")), "{bad:?}");
    let index = r.load_index_files().unwrap();
    assert!(index[0].1.is_err());
    let stones = r.load_documents::<vault_format::tombstone::Tombstone>(StoredKind::Tombstone).unwrap();
    assert!(stones[0].1.is_err());
    assert!(b.stats().bytes_down - before < 1 << 20, "junk was downloaded");
}

#[test]
fn a_data_blob_longer_than_any_chunk_is_refused_unread() {
    let b = Backend::open(&Location::Memory("long".into()), &Default::default(), OpenMode::Create).unwrap();
    let r = Repository::init(b.clone(), b"pw", &fast(), KeyMeta::default()).unwrap();
    let max = r.config().chunker.max_size;
    let loc = BlobLocation {
        pack: PackId(Id([1; 32])),
        kind: BlobKind::Data,
        offset: 0,
        length: 1 << 30,
        raw_length: 1 << 30,
    };
    let before = b.stats().reads;
    let e = r.read_blob_at(&loc, &BlobId(Id([2; 32]))).unwrap_err();
    assert!(matches!(e, RepoError::Integrity { .. }) && e.to_string().contains(&max.to_string()), "{e}");
    assert_eq!(b.stats().reads, before, "it was read");
    // Trees are not chunks: a large directory's tree may exceed the chunk size.
    let tree = BlobLocation { kind: BlobKind::Tree, length: 64, raw_length: max + 1, ..loc };
    assert!(r.implausible_blob(tree.kind, tree.length, tree.raw_length).is_none());
}

#[test]
fn write_new_never_replaces() {
    let dir = tempfile::tempdir().unwrap();
    for loc in [Location::Local(dir.path().join("r")), Location::Memory("wn".into())] {
        let b = Backend::open(&loc, &Default::default(), OpenMode::Create).unwrap();
        assert!(b.write_new("config", b"first".to_vec()).unwrap());
        assert!(!b.write_new("config", b"second".to_vec()).unwrap());
        assert_eq!(&b.read("config").unwrap()[..], b"first");
        assert!(b.list("tmp").unwrap().is_empty());
    }
}

#[test]
fn concurrent_inits_leave_one_repository_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..8 {
        let loc = Location::Local(dir.path().join(format!("r{round}")));
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = [&b"one"[..], &b"two"[..], &b"three"[..]]
                .into_iter()
                .map(|pw| {
                    let loc = loc.clone();
                    s.spawn(move || {
                        let b = Backend::open(&loc, &Default::default(), OpenMode::Create).unwrap();
                        (pw, Repository::init(b, pw, &fast(), KeyMeta::default()).map(|r| r.config().clone()))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {} inits succeeded", won.len());
        for (_, r) in &results {
            if let Err(e) = r {
                assert!(matches!(e, RepoError::AlreadyExists(_)), "{e}");
            }
        }
        let (pw, config) = won[0];
        let b = Backend::open(&loc, &Default::default(), OpenMode::Existing).unwrap();
        let r = Repository::open(b.clone(), pw).unwrap();
        assert_eq!(r.config(), config.as_ref().unwrap());
        assert_eq!(b.list(StoredKind::Key.dir()).unwrap().len(), 1, "the losers took their key files away");
    }
}
