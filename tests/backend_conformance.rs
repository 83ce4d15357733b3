//! One conformance suite for every storage backend: write, read, range read, stat, list,
//! delete, replace, and errors that name the object. Runs on fs, SFTP, S3, WebDAV and Azure Blob.

mod common;

use common::{Env, Kind};
use vault_repo::Backend;
use vault_repo::backend::{BackendErrorKind, OpenMode};

fn backend_for(kind: Kind) -> Option<(Env, Backend)> {
    let env = Env::for_kind(kind)?;
    let b = env.backend_with(OpenMode::Create);
    Some((env, b))
}

fn conformance(kind: Kind) {
    let Some((_env, b)) = backend_for(kind) else { return };
    // Missing objects.
    assert_eq!(b.stat("config").unwrap(), None);
    let e = b.read("snapshots/missing").unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::NotFound);
    assert!(e.to_string().contains("snapshots/missing"), "{e}");
    assert!(b.list("index").unwrap().is_empty());

    // Write and read back, small and large (several MiB, as a pack).
    let big: Vec<u8> = (0..(20u32 << 20)).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
    b.write("data/ab/big", big.clone()).unwrap();
    b.write("index/one", b"one".to_vec()).unwrap();
    b.write("index/two", b"two!".to_vec()).unwrap();
    assert_eq!(b.read("data/ab/big").unwrap(), big);
    assert_eq!(&b.read("index/one").unwrap()[..], b"one");
    assert_eq!(b.stat("data/ab/big").unwrap(), Some(big.len() as u64));

    // Range reads, including the last bytes.
    assert_eq!(b.read_range("data/ab/big", 12_345, 1000).unwrap(), &big[12_345..13_345]);
    let n = big.len() as u64;
    assert_eq!(b.read_range("data/ab/big", n - 4, 4).unwrap(), &big[big.len() - 4..]);
    assert!(b.read_range("data/ab/big", n - 2, 4).is_err(), "a short range read must be an error");

    // Recursive listing with sizes; temporary files never show up.
    let listed: Vec<(String, u64)> = b.list("index").unwrap().into_iter().map(|e| (e.path, e.size)).collect();
    assert_eq!(listed, vec![("index/one".to_string(), 3), ("index/two".to_string(), 4)]);
    let data: Vec<String> = b.list("data").unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(data, vec!["data/ab/big".to_string()]);

    // Replacing a name gives the new content whole.
    b.write("index/one", b"replaced content".to_vec()).unwrap();
    assert_eq!(&b.read("index/one").unwrap()[..], b"replaced content");

    // Delete.
    b.delete("index/one").unwrap();
    assert_eq!(b.stat("index/one").unwrap(), None);
    assert_eq!(b.list("index").unwrap().len(), 1);

    let stats = b.stats();
    assert!(stats.writes >= 4 && stats.bytes_up >= big.len() as u64 && stats.bytes_down >= big.len() as u64);
}

#[test]
fn fs() {
    conformance(Kind::Local);
}

#[test]
fn sftp() {
    conformance(Kind::Sftp);
}

#[test]
fn s3() {
    conformance(Kind::S3);
}

#[test]
fn webdav() {
    conformance(Kind::WebDav);
}

#[test]
fn azure() {
    conformance(Kind::Azure);
}
