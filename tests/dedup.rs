//! Dedup figures on a local repository (tests/remote.rs runs the same on SFTP and S3).

mod common;

use common::Kind;
use common::scenarios::*;

#[test]
fn unchanged_tree_adds_almost_nothing_locally() {
    unchanged_tree_adds_almost_nothing(Kind::Local);
}

#[test]
fn insertion_near_start_of_large_file_adds_few_chunks() {
    insertion_near_start_adds_few_chunks(Kind::Local);
}

#[test]
fn identical_files_are_stored_once_locally() {
    identical_files_are_stored_once(Kind::Local);
}

#[test]
fn compression_can_be_chosen_per_backup() {
    let env = common::Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let text: Vec<u8> = b"a line of very ordinary text, repeated\n".iter().copied().cycle().take(3 << 20).collect();
    std::fs::write(src.join("text"), &text).unwrap();
    std::fs::write(src.join("noise"), common::noise(2 << 20, 5)).unwrap();
    let s = src.to_str().unwrap();
    // Stored as is: the text costs its full size.
    let off = env.backup_json(&["--compression", "off", "--force", s]);
    assert!(off["stored_bytes_added"].as_u64().unwrap() > 5 << 20, "{off}");
    // The repository's default (auto) compresses the text (new ids: change it a little).
    std::fs::write(src.join("text"), [&text[..], b"!"].concat()).unwrap();
    let auto = env.backup_json(&[s]);
    assert!(auto["stored_bytes_added"].as_u64().unwrap() < 1 << 20, "{auto}");
    std::fs::write(src.join("text"), [&text[..], b"?"].concat()).unwrap();
    let max = env.backup_json(&["--compression", "max", s]);
    assert!(max["stored_bytes_added"].as_u64().unwrap() < 1 << 20, "{max}");
    // Whatever each snapshot chose, all of them restore.
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join(&s[1..]).join("text")).unwrap(), [&text[..], b"?"].concat());
    let bad = env.run(&["backup", "--compression", "best", s]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("off, fast, auto, max"), "{bad:?}");
}
