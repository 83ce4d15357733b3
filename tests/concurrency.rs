//! No locks: concurrent backups into one repository, and SIGKILL at any moment.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn make_tree(root: &std::path::Path, files: usize, size: usize, seed: u64) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..files {
        std::fs::write(root.join(format!("file{i:03}")), noise(size, seed + i as u64)).unwrap();
    }
}

#[test]
fn two_backups_at_once_both_succeed() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    make_tree(&a, 30, 700_000, 1);
    make_tree(&b, 30, 700_000, 1000);
    // Some shared data, so both processes race to store the same blobs.
    std::fs::write(a.join("shared"), noise(3_000_000, 7)).unwrap();
    std::fs::write(b.join("shared"), noise(3_000_000, 7)).unwrap();
    env.init();
    let mut pa =
        env.cmd().args(["backup", "--json", a.to_str().unwrap()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut pb =
        env.cmd().args(["backup", "--json", b.to_str().unwrap()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    assert!(pa.wait().unwrap().success());
    assert!(pb.wait().unwrap().success());
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    for (src, name) in [(&a, "ra"), (&b, "rb")] {
        let out = env.path(name);
        let id = snaps.as_array().unwrap().iter().find(|s| s["paths"][0] == src.to_str().unwrap()).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        env.ok(&["restore", &id, "--target", out.to_str().unwrap()]);
        assert_same_tree(src, &out.join(src.strip_prefix("/").unwrap()));
    }
}

fn index_files(env: &Env) -> usize {
    std::fs::read_dir(env.repo.join("index")).map(|r| r.count()).unwrap_or(0)
}

#[test]
fn sigkill_at_any_moment_leaves_a_usable_repository() {
    let env = Env::new();
    let early = env.path("early");
    make_tree(&early, 5, 200_000, 500);
    let big = env.path("big");
    make_tree(&big, 12, 12 << 20, 1);
    env.init();
    env.ok(&["backup", early.to_str().unwrap()]);

    for delay_ms in [0u64, 30, 150, 400, 900, 1500] {
        let mut child = env.cmd().args(["backup", "-q", big.to_str().unwrap()]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // Every earlier snapshot still restores.
        let out = env.path(&format!("early-{delay_ms}"));
        env.ok(&["restore", "latest", "--path", early.to_str().unwrap(), "--target", out.to_str().unwrap()]);
        assert_same_tree(&early, &out.join(early.strip_prefix("/").unwrap()));
    }

    // Kill right after the first index checkpoint: the next backup reuses those packs.
    let before = index_files(&env);
    let mut child = env.cmd().args(["backup", "-q", "--force", big.to_str().unwrap()]).spawn().unwrap();
    let started = Instant::now();
    while index_files(&env) == before && started.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().ok();
    child.wait().unwrap();

    let done = env.backup_json(&[big.to_str().unwrap()]);
    let added = done["bytes_added"].as_u64().unwrap();
    eprintln!("after the kills, the completing backup added {added} of {} bytes", 12u64 * (12 << 20));
    assert!(added < 12 * (12 << 20), "nothing was reused: {added}");
    let out = env.path("big-out");
    env.ok(&["restore", "latest", "--path", big.to_str().unwrap(), "--target", out.to_str().unwrap()]);
    assert_same_tree(&big, &out.join(big.strip_prefix("/").unwrap()));
    // Nothing stored was left half-written under a final name: every pack parses.
    for p in walk(&env.repo.join("data")) {
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(blake3::hash(&bytes).to_hex().as_str(), p.file_name().unwrap().to_str().unwrap());
        }
    }
}
