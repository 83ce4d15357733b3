//! Write-only keys on a local repository (SFTP and S3: `tests/remote.rs`), and forgeries a
//! write-only key might try through the library: none hides or replaces others' snapshots.

mod common;

use common::write_only_scenarios::*;
use common::*;

#[test]
fn write_only_key_backs_up_and_reads_nothing_else() {
    write_only_key_backs_up_but_reads_nothing_of_others(Kind::Local);
}

#[test]
fn write_only_key_cannot_plant_a_parent_for_another_host() {
    write_only_key_cannot_plant_a_parent(Kind::Local);
}

/// A repository with alpha's snapshot (full key) and beta's (write-only key); returns the
/// snapshot ids.
fn two_hosts(env: &Env) -> (String, String) {
    env.init();
    let alpha = env.path("alpha");
    std::fs::create_dir_all(&alpha).unwrap();
    std::fs::write(alpha.join("a.bin"), noise(3 << 20, 5)).unwrap();
    let a = env.backup_json(&["--host", "alpha", alpha.to_str().unwrap()]);
    add_writer(env, "beta");
    let beta = env.path("beta");
    std::fs::create_dir_all(&beta).unwrap();
    std::fs::write(beta.join("b.bin"), noise(1 << 20, 6)).unwrap();
    let out = as_writer(env, &["backup", "--json", "--host", "beta", beta.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b = last_json(&out.stdout);
    (a["snapshot_id"].as_str().unwrap().to_string(), b["snapshot_id"].as_str().unwrap().to_string())
}

fn listed(env: &Env) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn forgeries_by_a_write_only_key_hide_nothing() {
    use vault_format::index::IndexFile;
    use vault_format::tombstone::Tombstone;
    use vault_format::{IndexId, SnapshotId};
    use vault_repo::{Repository, StoredKind};

    let env = Env::new();
    let (alpha, beta) = two_hosts(&env);
    let alpha_id = SnapshotId(alpha.parse().unwrap());
    let beta_id = SnapshotId(beta.parse().unwrap());
    let w = Repository::open(env.backend(), WRITER_PASSWORD.as_bytes()).unwrap();
    assert!(!w.is_full());
    // It cannot read alpha's snapshot, even named by id.
    let err = w.load_snapshot(&alpha_id).unwrap_err();
    assert!(matches!(err, vault_repo::RepoError::ForeignKey(_)), "{err}");
    // 1. A tombstone naming alpha's snapshot.
    let stone = Tombstone {
        version: 1,
        time: "2026-12-02T00:00:00Z".into(),
        hostname: "beta".into(),
        command: "forget".into(),
        snapshots: vec![alpha_id],
    };
    let forged_stone = w.save_document(StoredKind::Tombstone, &stone).unwrap();
    // 2. A snapshot that says it replaces alpha's (as `repair`, `tag` and `rewrite` do).
    let mut own = w.load_snapshot(&beta_id).unwrap();
    own.original = Some(alpha_id);
    own.hostname = "alpha".into();
    w.save_snapshot(&own).unwrap();
    // 3. An empty index file that supersedes every other one.
    let all: Vec<IndexId> = w.list_files(StoredKind::Index).unwrap().into_iter().map(|(id, _)| IndexId(id)).collect();
    w.save_index(&IndexFile { supersedes: all, packs: Vec::new() }).unwrap();

    let ids = listed(&env);
    assert!(ids.contains(&alpha) && ids.contains(&beta), "{ids:?}");
    // Prune keeps every pack alpha needs; check reads it all back.
    env.ok(&["prune"]);
    // check reads all data back and finds nothing wrong but the forged tombstone.
    let out = env.run(&["check", "--read-data", "--json"]);
    assert_eq!(code(&out), 13, "{}", stderr(&out));
    let report = last_json(&out.stdout);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report:#}");
    assert_eq!(problems[0]["kind"], "record", "{report:#}");
    assert!(problems[0]["object"].as_str().unwrap().contains(&forged_stone.to_hex()), "{report:#}");
    assert!(problems[0]["message"].as_str().unwrap().contains("not written by a full key"), "{report:#}");
    let out = env.path("out");
    env.ok(&["restore", &alpha[..8], "--target", out.to_str().unwrap()]);
    let a = env.path("alpha");
    assert_same_tree(&a, &out.join(a.to_str().unwrap().trim_start_matches('/')));
}

#[test]
fn repositories_without_write_only_keys_keep_the_first_format() {
    // Nothing a full key writes changes until a write-only key exists: vault 0.1 still
    // reads what this build writes there.
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    env.backup_json(&[src.to_str().unwrap()]);
    assert!(!env.repo.join("keyring").exists());
    for dir in ["index", "snapshots"] {
        for e in std::fs::read_dir(env.repo.join(dir)).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            assert_eq!(bytes[4], 1, "{dir}");
        }
    }
    // Once one exists, index files are sealed for it and tagged by full keys.
    add_writer(&env, "beta");
    let tagged = std::fs::read_dir(env.repo.join("index"))
        .unwrap()
        .filter(|e| std::fs::read(e.as_ref().unwrap().path()).unwrap()[4] == 2)
        .count();
    assert_eq!(tagged, 1);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn a_write_only_key_notices_rollback_but_not_forgets() {
    let env = Env::new();
    let (_, beta) = two_hosts(&env);
    assert!(as_writer(&env, &["snapshots"]).status.success());
    // A full key forgets the writer's snapshot: a tombstone the writer can read says so.
    env.ok(&["forget", &beta[..8]]);
    let out = as_writer(&env, &["snapshots"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("tampering"), "{}", stderr(&out));
    // The storage deletes the writer's next snapshot: the writer notices.
    let src = env.path("beta");
    let out = as_writer(&env, &["backup", "--json", "--host", "beta", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gone = last_json(&out.stdout)["snapshot_id"].as_str().unwrap().to_string();
    env.backend().delete(&format!("snapshots/{gone}")).unwrap();
    let out = as_writer(&env, &["snapshots"]);
    assert_eq!(code(&out), 15, "{}", stderr(&out));
    assert!(stderr(&out).contains("possible tampering") && stderr(&out).contains(&gone[..8]), "{}", stderr(&out));
}

#[test]
fn prune_beside_write_only_backups_keeps_their_data() {
    common::prune_scenarios::prune_beside_write_only_backups(Kind::Local);
}

#[test]
fn a_write_only_key_changes_its_password_and_stays_write_only() {
    let env = Env::new();
    let (alpha, _) = two_hosts(&env);
    let out = env
        .cmd()
        .env("VAULT_PASSWORD", WRITER_PASSWORD)
        .env("VAULT_NEW_PASSWORD", "the new writer password")
        .args(["key", "passwd"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(code(&as_writer(&env, &["snapshots"])), 12);
    let as_new =
        |args: &[&str]| env.cmd().env("VAULT_PASSWORD", "the new writer password").args(args).output().unwrap();
    let src = env.path("beta");
    let out = as_new(&["backup", "--host", "beta", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_new(&["ls", &alpha[..8]]);
    assert_eq!(code(&out), 16, "{}", stderr(&out));
    let keys: serde_json::Value = serde_json::from_str(&env.ok(&["key", "list", "--json"])).unwrap();
    let access: Vec<&str> = keys.as_array().unwrap().iter().map(|k| k["access"].as_str().unwrap()).collect();
    assert_eq!(access.iter().filter(|a| **a == "write-only").count(), 1, "{keys}");
    assert_eq!(access.len(), 2, "{keys}");
}
