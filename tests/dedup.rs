//! Dedup figures: an unchanged re-backup, a small insertion in a large file, and
//! identical files in different directories.

mod common;

use common::*;

#[test]
fn unchanged_tree_adds_almost_nothing() {
    let env = Env::new();
    let src = env.path("src");
    for d in 0..10 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..20 {
            std::fs::write(dir.join(format!("f{f}")), noise(100_000 + f * 777, (d * 100 + f) as u64)).unwrap();
        }
    }
    let source_size = dir_size(&src);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let before = env.repo_size();
    let again = env.backup_json(&[src.to_str().unwrap()]);
    let growth = env.repo_size() - before;
    eprintln!("unchanged re-backup: repository grew by {growth} bytes for a {source_size}-byte tree");
    assert!((growth as f64) < source_size as f64 * 0.001, "grew by {growth}");
    assert_eq!(again["bytes_added"], 0);
    // Same data under --force: read again, still nothing new stored.
    let forced = env.backup_json(&["--force", src.to_str().unwrap()]);
    assert_eq!(forced["bytes_added"], 0);
}

#[test]
fn insertion_near_start_of_large_file_adds_few_chunks() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let data = noise(100 << 20, 42);
    std::fs::write(src.join("big"), &data).unwrap();
    env.init();
    let first = env.backup_json(&[src.to_str().unwrap()]);
    assert!(first["bytes_added"].as_u64().unwrap() >= 100 << 20);
    let mut edited = data[..1000].to_vec();
    edited.extend_from_slice(b"a few inserted bytes");
    edited.extend_from_slice(&data[1000..]);
    std::fs::write(src.join("big"), &edited).unwrap();
    let second = env.backup_json(&[src.to_str().unwrap()]);
    let added = second["bytes_added"].as_u64().unwrap();
    let blobs = second["blobs_added"].as_u64().unwrap();
    eprintln!("insert near start of 100 MiB: {blobs} blobs, {added} bytes added");
    // One or two data chunks (at most 4 MiB each) plus the changed trees.
    assert!(blobs <= 6, "{blobs} blobs added");
    assert!(added <= 9 << 20, "{added} bytes added");
}

#[test]
fn identical_files_are_stored_once() {
    let env = Env::new();
    let src = env.path("src");
    let data = noise(8 << 20, 5);
    for d in ["a", "b/c", "d/e/f"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        std::fs::write(src.join(d).join("same.bin"), &data).unwrap();
    }
    env.init();
    let s = env.backup_json(&[src.to_str().unwrap()]);
    let added = s["bytes_added"].as_u64().unwrap();
    assert!(added < (8 << 20) + 100_000, "{added}");
    assert!(env.repo_size() < (8 << 20) + 300_000);
}
