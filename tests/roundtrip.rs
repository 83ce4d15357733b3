//! Backup → restore of a tree with every kind of file, compared by a manifest of content
//! and metadata.

mod common;

use common::scenarios::{build_tree, every_file_kind_round_trips};
use common::*;

#[test]
fn dot_source_is_stored_at_its_absolute_path_and_subpaths_restore() {
    let env = Env::new();
    let src = env.path("src");
    build_tree(&src);
    env.init();
    let out = env.cmd().current_dir(&src).args(["backup", "."]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let p = src.to_str().unwrap();
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.lines().any(|l| l == format!("{p}/small.txt")), "{ls}");
    assert!(ls.lines().any(|l| l == format!("{p}/dir/sub/text.log")), "{ls}");

    // SNAPSHOT:SUBPATH restores the directory's contents into the target.
    let out = env.path("sub");
    env.ok(&["restore", &format!("latest:{p}/dir/sub"), "--target", out.to_str().unwrap()]);
    assert_same_tree(&src.join("dir/sub"), &out);

    // Include and exclude, below the source's own directory.
    let out = env.path("inc");
    env.ok(&[
        "restore",
        &format!("latest:{p}"),
        "--target",
        out.to_str().unwrap(),
        "--include",
        "*.log",
        "--include",
        "/dir/sub/deeper",
    ]);
    let got: Vec<_> = walk(&out).iter().map(|p| p.strip_prefix(&out).unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(got, vec!["dir", "dir/sub", "dir/sub/deeper", "dir/sub/deeper/copy.bin", "dir/sub/text.log"]);
    let out = env.path("exc");
    env.ok(&[
        "restore",
        &format!("latest:{p}"),
        "--target",
        out.to_str().unwrap(),
        "--exclude",
        "dir",
        "--exclude",
        "sparse",
    ]);
    assert!(!out.join("dir").exists() && !out.join("sparse").exists() && out.join("small.txt").exists());
}

#[test]
fn listing_filters_and_cat() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/f"), b"x").unwrap();
    env.init();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s, "--tag", "daily", "--host", "alpha"]);
    env.ok(&["backup", s, "--tag", "weekly", "--host", "beta"]);
    let all: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let beta: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json", "--host", "beta"])).unwrap();
    assert_eq!(beta[0]["hostname"], "beta");
    let daily: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json", "--tag", "daily"])).unwrap();
    assert_eq!(daily[0]["tags"][0], "daily");
    let table = env.ok(&["snapshots"]);
    assert!(table.contains(&daily[0]["short_id"].as_str().unwrap().to_string()));

    // ls with a path, long format, JSON lines.
    let long = env.ok(&["ls", "latest", &format!("{s}/d"), "-l"]);
    assert!(long.lines().any(|l| l.starts_with("-rw") && l.ends_with("/d/f")), "{long}");
    let json = env.ok(&["ls", "--json", "latest"]);
    assert!(json.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));

    // cat: every kind decodes to JSON.
    let id = daily[0]["id"].as_str().unwrap();
    let snap: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "snapshot", &id[..8]])).unwrap();
    let tree: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat", "tree", snap["tree"].as_str().unwrap()])).unwrap();
    assert!(tree["nodes"].is_array());
    let cfg: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "config"])).unwrap();
    assert_eq!(cfg["version"], 1);
    let index_name = std::fs::read_dir(env.repo.join("index")).unwrap().next().unwrap().unwrap().file_name();
    let idx: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat", "index", &index_name.to_string_lossy()[..10]])).unwrap();
    assert!(idx["packs"].is_array());
    let key_name = std::fs::read_dir(env.repo.join("keys")).unwrap().next().unwrap().unwrap().file_name();
    let key: serde_json::Value = serde_json::from_str(&env.ok(&["cat", "key", &key_name.to_string_lossy()])).unwrap();
    assert_eq!(key["kdf"]["algorithm"], "argon2id");
    assert!(key["kdf"]["memory_kib"].as_u64().unwrap() >= 65536);
}

#[test]
fn unchanged_files_are_not_read_again() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("f{i}")), noise(10_000, i)).unwrap();
    }
    env.init();
    let s = src.to_str().unwrap();
    let first = env.backup_json(&[s]);
    assert_eq!(first["files_new"], 20);
    std::fs::write(src.join("f3"), noise(10_000, 99)).unwrap();
    let second = env.backup_json(&[s]);
    assert_eq!(second["parent"], first["snapshot_id"]);
    assert_eq!(second["files_unchanged"], 19);
    assert_eq!(second["files_changed"], 1);
    assert_eq!(second["bytes_read"], 10_000);
    // --force reads everything again.
    let forced = env.backup_json(&["--force", s]);
    assert_eq!(forced["bytes_read"], 200_000);
    assert_eq!(forced["files_unchanged"], 0);
}

#[test]
fn excludes_and_one_file_system() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("cache")).unwrap();
    std::fs::create_dir_all(src.join("keep")).unwrap();
    std::fs::write(src.join("cache/x"), b"x").unwrap();
    std::fs::write(src.join("keep/a.tmp"), b"x").unwrap();
    std::fs::write(src.join("keep/a.txt"), b"x").unwrap();
    std::fs::write(env.path("excludes"), "# comment\n\n*.tmp\n").unwrap();
    env.init();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s, "--exclude", "cache", "--exclude-file", env.path("excludes").to_str().unwrap(), "-x"]);
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("/keep/a.txt"));
    assert!(!ls.contains("a.tmp") && !ls.contains("/cache"), "{ls}");
}

#[test]
fn every_file_kind_round_trips_locally() {
    every_file_kind_round_trips(Kind::Local);
}

#[test]
fn the_repository_and_the_cache_are_never_stored_into_themselves() {
    let env = Env::new();
    env.init();
    // HOME is the scratch directory: it holds the repository, the cache (.cache/vault) and
    // the data, as `vault backup ~` would find them.
    let home = env.dir.path();
    std::fs::create_dir(home.join("docs")).unwrap();
    std::fs::write(home.join("docs/letter.txt"), noise(3 << 20, 5)).unwrap();
    let first = env.run(&["backup", "--json", home.to_str().unwrap()]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let err = stderr(&first);
    assert!(err.contains(&format!("left out {}: it is the repository", env.repo.display())), "{err}");
    assert!(err.contains("it is vault's cache"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&first.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["left_out"].as_array().unwrap().len(), 2, "{summary}");
    let size = env.repo_size();
    // A second run stores nothing new: the repository did not go into itself.
    let second = env.backup_json(&[home.to_str().unwrap()]);
    assert!(second["bytes_added"].as_u64().unwrap() < 100_000, "{second}");
    assert!(env.repo_size() < size + 200_000, "{} → {}", size, env.repo_size());
    let listing = env.ok(&["ls", "latest"]);
    assert!(listing.contains("letter.txt"));
    assert!(!listing.contains("/repo/") && !listing.contains(".cache/vault"), "{listing}");
    // Named by another path (relative, through `..`), it is still left out.
    let out = env.cmd().current_dir(home.join("docs")).args(["backup", "../docs/.."]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("it is the repository"), "{}", stderr(&out));
}
