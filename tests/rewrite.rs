//! tag and rewrite through the binary: new snapshots replace old ones, with `original`
//! links, and the old ones go (tag always, rewrite with --forget).

mod common;

use common::*;

fn snapshots(env: &Env) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    v.as_array().unwrap().clone()
}

#[test]
fn tag_replaces_snapshots_and_keeps_the_link() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    env.ok(&["backup", "-q", "--tag", "old", src.to_str().unwrap()]);
    let before = snapshots(&env);
    let old_id = before[0]["id"].as_str().unwrap().to_string();
    env.ok(&["tag", "-q", "--add", "keep,important", "--remove", "old", &old_id[..8]]);
    let after = snapshots(&env);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["tags"], serde_json::json!(["important", "keep"]));
    assert_eq!(after[0]["original"], old_id.as_str());
    assert_eq!(after[0]["tree"], before[0]["tree"]);
    assert_ne!(after[0]["id"], old_id.as_str());
    // Unchanged tags change nothing; no change requested is a usage error.
    let out = env.ok(&["tag", "--add", "keep"]);
    assert!(out.contains("replaced 0 snapshots, 1 unchanged"), "{out}");
    assert_eq!(code(&env.run(&["tag", "latest"])), 2);
    env.ok(&["tag", "-q", "--set", ""]);
    assert_eq!(snapshots(&env)[0]["tags"], serde_json::json!([]));
    assert_eq!(code(&env.run(&["check"])), 0);
}

#[test]
fn rewrite_purges_a_file_and_prune_reclaims_its_data() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("keep.txt"), b"keep me").unwrap();
    std::fs::write(src.join("dir/other"), noise(200_000, 2)).unwrap();
    std::fs::write(src.join("dir/secret.key"), noise(2_000_000, 1)).unwrap();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    std::fs::write(src.join("keep.txt"), b"keep me too").unwrap();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    let size_with = env.repo_size();
    let dry = env.ok(&["rewrite", "--dry-run", "-e", "secret.key"]);
    assert!(dry.contains("would replace 2 snapshots"), "{dry}");
    assert_eq!(snapshots(&env).iter().filter(|s| s["original"].is_string()).count(), 0);
    let out = env.ok(&["rewrite", "-e", "secret.key", "--forget"]);
    assert!(out.contains("/dir/secret.key"), "{out}");
    let snaps = snapshots(&env);
    assert_eq!(snaps.len(), 2);
    for s in &snaps {
        assert!(s["tags"].as_array().unwrap().iter().any(|t| t == "rewrite"), "{s}");
        let target = env.path(&format!("r-{}", s["short_id"].as_str().unwrap()));
        env.ok(&["restore", s["id"].as_str().unwrap(), "--target", target.to_str().unwrap()]);
        let root = target.join(src.strip_prefix("/").unwrap());
        assert!(!root.join("dir/secret.key").exists());
        assert_eq!(std::fs::read(root.join("dir/other")).unwrap(), noise(200_000, 2));
    }
    let found = env.ok(&["find", "secret.key"]);
    assert!(!found.contains("secret.key"), "{found}");
    env.ok(&["prune", "-q", "--max-unused", "0"]);
    let size_without = env.repo_size();
    assert!(size_with - size_without > 1_900_000, "{size_with} → {size_without}");
    assert_eq!(code(&env.run(&["check", "--read-data"])), 0);
}
