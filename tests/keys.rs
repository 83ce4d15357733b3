//! `vault key`: several passwords for one repository, removing and replacing them, and key
//! files planted by the storage server that ask for absurd Argon2id work.

mod common;

use std::time::{Duration, Instant};

use common::key_scenarios::*;
use common::*;
use vault_format::keyfile::{KdfParams, KeyFile, KeyMeta};

#[test]
fn add_list_remove_and_change_passwords() {
    keys_are_added_removed_and_replaced(Kind::Local);
}

#[test]
fn two_removals_at_once_leave_a_key() {
    removals_of_each_others_key_leave_one(Kind::Local);
}

#[test]
fn new_password_mistakes_are_refused_before_anything_is_written() {
    let env = Env::new();
    env.init();
    let count = || std::fs::read_dir(env.repo.join("keys")).unwrap().count();
    // No new password and no terminal.
    let out = env.run(&["key", "add"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("no new password given"), "{}", stderr(&out));
    // A cost above the limit would make a key that opening skips.
    let out = env.cmd().env("VAULT_NEW_PASSWORD", "x").args(["key", "add", "--kdf-memory", "2048"]).output().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--kdf-max-memory"), "{}", stderr(&out));
    let out = env.cmd().env("VAULT_NEW_PASSWORD", "").args(["key", "passwd"]).output().unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("new password is empty"), "{}", stderr(&out));
    assert_eq!(count(), 1);
    // The secret never shows up in what vault prints.
    let out = env.cmd().env("VAULT_NEW_PASSWORD", "s3cr3t-new").args(["key", "add", "--json"]).output().unwrap();
    assert!(out.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!all.contains("s3cr3t-new") && !all.contains(PASSWORD), "{all}");
    assert_eq!(count(), 2);
}

/// A key file as a hostile server would add it: labelled like ours (so it sorts first) and
/// asking for 4 GiB × 100 passes.
fn plant_costly_key_file(env: &Env, host: &str) -> String {
    let master = vault_format::crypto::SecretKey::from_bytes([5; 32]);
    let fast = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    let meta = KeyMeta { created: String::new(), host: host.into(), username: String::new() };
    let mut kf = KeyFile::wrap(&master, PASSWORD.as_bytes(), fast, [1; 32], [2; 24], meta).unwrap();
    kf.kdf.params = KdfParams { memory_kib: 4 * 1024 * 1024, iterations: 100, parallelism: 1 };
    let bytes = kf.to_json();
    let id = vault_format::Id::of_stored_bytes(&bytes).to_hex();
    env.backend().write(&format!("keys/{id}"), bytes).unwrap();
    id
}

fn this_host() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

#[test]
fn costly_key_files_are_skipped_and_the_last_key_goes_first() {
    let env = Env::new();
    env.init();
    let evil = plant_costly_key_file(&env, &this_host());
    // With the key remembered from init, the planted file is not even looked at.
    let out = env.run(&["snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("skipped"), "{}", stderr(&out));
    // Without the memory (a new machine, say), it is skipped with a warning, not run.
    std::fs::remove_dir_all(env.path(".local/state/vault")).unwrap();
    let started = Instant::now();
    let out = env.run(&["snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let err = stderr(&out);
    assert!(err.contains(&evil[..8]) && err.contains("skipped"), "{err}");
    // The list says so too.
    let keys = keys_json(&env, PASSWORD);
    let planted = keys.iter().find(|k| k["id"] == evil.as_str()).unwrap();
    assert_eq!(planted["within_kdf_limit"], false);
    // A user who really made such a key raises the limit (checked here by the limit in the
    // error when the planted file is the only one left for a wrong password).
    let out = env.cmd().env("VAULT_PASSWORD", "wrong").arg("snapshots").output().unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("--kdf-max-memory"), "{}", stderr(&out));
}

#[test]
fn ten_key_files_open_with_one_key_derivation() {
    let env = Env::new();
    env.init();
    for i in 0..9 {
        let out = env
            .cmd()
            .env("VAULT_NEW_PASSWORD", format!("pw{i}"))
            .args(["key", "add", "--host", "elsewhere"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // Each password opens, and the one used last is the one tried first next time: the
    // second run's time is one key derivation, whatever the number of key files.
    for pw in ["pw3", "pw8", PASSWORD] {
        let out = env.cmd().env("VAULT_PASSWORD", pw).args(["key", "list", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let keys: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(keys.len(), 10);
        let hint = std::fs::read_dir(env.path(".local/state/vault/locations")).unwrap().next().unwrap().unwrap();
        let remembered = std::fs::read_to_string(hint.path()).unwrap();
        assert_eq!(remembered.trim(), current(&keys));
    }
}
