//! forget, prune and writers through the binary, on a local repository (tests/remote.rs
//! runs the prune scenarios on SFTP and S3).

mod common;

use common::prune_scenarios::*;
use common::scenarios::make_tree;
use common::*;

#[test]
fn prune_beside_running_backups_loses_nothing() {
    prune_beside_backups(Kind::Local);
}

#[test]
fn prune_reclaims_the_space_of_forgotten_snapshots() {
    prune_reclaims_all_space(Kind::Local);
}

/// Waits until a writer has announced itself (at most a minute).
fn until_announced(env: &Env) {
    let t = std::time::Instant::now();
    while env.backend().list("writers").unwrap().is_empty() && t.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn snapshot_ids(env: &Env) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn forget_applies_the_policy_and_explains_each_kept_snapshot() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, 2, 10_000, 1);
    for tag in ["a", "b", "c", "d"] {
        env.ok(&["backup", "-q", "--tag", tag, src.to_str().unwrap()]);
    }
    let ids = snapshot_ids(&env);
    let out = env.ok(&["forget", "--json", "--dry-run", "--keep-last", "2", "--keep-tag", "a"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let group = &v["groups"][0];
    let kept: Vec<&str> = group["keep"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(kept, vec![ids[3].as_str(), ids[2].as_str(), ids[0].as_str()]);
    assert_eq!(group["keep"][0]["reasons"][0], "last snapshot");
    assert_eq!(group["keep"][2]["reasons"][0], "tagged");
    assert_eq!(group["remove"][0]["id"], ids[1].as_str());
    assert_eq!(snapshot_ids(&env).len(), 4, "a dry run removes nothing");
    env.ok(&["forget", "-q", "--keep-last", "2", "--keep-tag", "a"]);
    assert_eq!(snapshot_ids(&env), vec![ids[0].clone(), ids[2].clone(), ids[3].clone()]);
    // A tombstone records what was forgotten.
    assert_eq!(env.backend().list("forgotten").unwrap().len(), 1);
    // Named snapshots, then prune in the same run.
    let out = env.ok(&["forget", "--json", &ids[0][..12], "--prune"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["removed"][0], ids[0].as_str());
    assert!(v["prune"]["completed"].as_array().is_some());
    assert_eq!(snapshot_ids(&env), vec![ids[2].clone(), ids[3].clone()]);
    assert_eq!(code(&env.run(&["check"])), 0);
}

#[test]
fn bad_forget_and_prune_input_is_refused_with_one_line() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    make_tree(&src, 1, 1000, 1);
    for _ in 0..17 {
        env.ok(&["backup", "-q", "--force", src.to_str().unwrap()]);
    }
    let ids = snapshot_ids(&env);
    let refused = |args: &[&str], want_code: i32, needle: &str| {
        let out = env.run(args);
        let err = stderr(&out);
        assert_eq!(code(&out), want_code, "{args:?}: {err}");
        assert!(err.lines().next().unwrap_or("").contains(needle), "{args:?}: {err}");
        // vault's own errors are one line; clap's usage errors add a usage hint.
        if !err.starts_with("error: invalid value") {
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        }
    };
    refused(&["forget"], 2, "no policy given");
    refused(&["forget", "--keep-within", "5x"], 2, "--keep-within");
    refused(&["forget", "--keep-daily=-3"], 2, "--keep-daily");
    refused(&["forget", "--keep-last", "1", "--group-by", "colour"], 2, "unknown group field");
    refused(&["forget", "--keep-tag", "absent"], 2, "refusing");
    refused(&["forget", ids[0].as_str(), "--keep-last", "1"], 2, "not both");
    refused(&["forget", "0123456789abcdef"], 1, "no snapshot matches");
    // 17 snapshots: two share a first hex digit.
    let digit = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|d| ids.iter().filter(|i| i.starts_with(d.as_str())).count() > 1)
        .unwrap();
    refused(&["forget", &digit], 1, "ambiguous");
    refused(&["prune", "--max-unused", "150%"], 2, "--max-unused");
    refused(&["prune", "--max-repack", "lots"], 2, "--max-repack");
    assert_eq!(snapshot_ids(&env).len(), 17, "nothing was forgotten");
    // --force removes a whole group.
    env.ok(&["forget", "-q", "--keep-tag", "absent", "--force"]);
    assert!(snapshot_ids(&env).is_empty());
}

#[test]
fn writers_lists_announcements_and_removes_dead_ones() {
    let env = Env::new();
    env.init();
    // A writer killed on this host leaves its announcement; prune sees that it is dead.
    let src = env.path("src");
    make_tree(&src, 20, 3_000_000, 1);
    let mut child = env.cmd().args(["backup", "-q", src.to_str().unwrap()]).spawn().unwrap();
    until_announced(&env);
    child.kill().unwrap();
    child.wait().unwrap();
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["writers", "--json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v:#}");
    assert!(v[0]["status"].as_str().unwrap().starts_with("dead"), "{v:#}");
    assert_eq!(v[0]["announcement"]["command"], "backup");
    let id = v[0]["id"].as_str().unwrap().to_string();
    env.ok(&["writers", "remove", &id[..10]]);
    assert!(env.backend().list("writers").unwrap().is_empty());
    let out = env.run(&["writers", "remove", "abcdef"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn prune_wait_deletes_once_the_stopped_backup_has_ended() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let env = Env::new();
    env.init();
    let old = env.path("old");
    make_tree(&old, 3, 300_000, 1);
    env.ok(&["backup", "-q", old.to_str().unwrap()]);
    let big = env.path("big");
    make_tree(&big, 40, 500_000, 100);
    let mut backup = env.cmd().args(["backup", "-q", big.to_str().unwrap()]).spawn().unwrap();
    until_announced(&env);
    kill(Pid::from_raw(backup.id() as i32), Signal::SIGSTOP).unwrap();
    let ids: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    env.ok(&["forget", "-q", ids[0]["id"].as_str().unwrap()]);
    let mut prune = env.cmd().args(["prune", "--wait", "--json"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(prune.try_wait().unwrap().is_none(), "prune --wait ended while the backup was stopped");
    assert!(!env.backend().list("condemned").unwrap().is_empty());
    kill(Pid::from_raw(backup.id() as i32), Signal::SIGCONT).unwrap();
    assert!(backup.wait().unwrap().success());
    let out = prune.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = last_json(&out.stdout);
    assert!(r["waiting"].as_array().unwrap().is_empty(), "{r:#}");
    assert!(r["completed"].as_array().unwrap().iter().any(|c| c["packs_deleted"].as_u64().unwrap() > 0), "{r:#}");
    assert!(env.backend().list("condemned").unwrap().is_empty());
    assert_eq!(code(&env.run(&["check", "--read-data"])), 0);
}
