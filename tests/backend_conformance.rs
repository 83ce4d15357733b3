//! One conformance suite for every storage backend: write, read, range read, stat, list,
//! delete, replace, and errors that name the object. Runs on fs, SFTP and S3.

mod common;

use common::{Env, Kind};
use vault::repo::backend::{BackendErrorKind, OpenMode};
use vault::repo::{Backend, BackendOptions, Location};

fn backend_for(kind: Kind) -> Option<(Env, Backend)> {
    let env = Env::for_kind(kind)?;
    // Create the root as `init` would.
    let loc = Location::parse(env.repo_string()).unwrap();
    let mut args = Vec::new();
    let mut vars = std::collections::HashMap::new();
    if kind == Kind::Sftp {
        args.push(format!("sftp.key={}", std::env::var("VAULT_TEST_SFTP_KEY").unwrap()));
        args.push("sftp.known-hosts=accept".to_string());
    }
    if kind == Kind::S3 {
        args.push(format!("s3.endpoint={}", std::env::var("VAULT_TEST_S3_ENDPOINT").unwrap()));
        args.push(format!("s3.region={}", std::env::var("VAULT_TEST_S3_REGION").unwrap()));
        vars.insert("AWS_ACCESS_KEY_ID".to_string(), std::env::var("VAULT_TEST_S3_KEY_ID").unwrap());
        vars.insert("AWS_SECRET_ACCESS_KEY".to_string(), std::env::var("VAULT_TEST_S3_SECRET").unwrap());
    }
    let opts = BackendOptions::from_args_and_env(&args, &|k| vars.get(k).cloned()).unwrap();
    let b = Backend::open(&loc, &opts, OpenMode::Create).unwrap();
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
    assert_eq!(b.read("index/one").unwrap(), b"one");
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
    assert_eq!(b.read("index/one").unwrap(), b"replaced content");

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
