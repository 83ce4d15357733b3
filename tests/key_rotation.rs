//! `vault key rotate` and `vault prune --reencrypt` (spec §3.2): after both, the old master
//! key opens no pack, index file or snapshot; every key file (full and write-only) follows
//! the rotation without its password being known; forged and forked grants are caught.

mod common;

use common::*;
use vault_format::crypto::Keys;
use vault_format::keyfile::KeyFile;
use vault_format::pack::{decode_header, header_span};

/// The keys the password opens from its key file alone: what a leaked old key gives.
fn leaked_keys(env: &Env, password: &str) -> Keys {
    let b = env.backend();
    for e in b.list("keys").unwrap() {
        let kf = KeyFile::from_json(&b.read(&e.path).unwrap()).unwrap();
        if let Ok(k) = kf.unwrap_master(password.as_bytes()) {
            return k;
        }
    }
    panic!("no key file opens");
}

/// How many packs, index files and snapshots `keys` opens (headers, whole files).
fn opened_by(env: &Env, keys: &Keys) -> (usize, usize, usize) {
    let b = env.backend();
    let mut packs = 0;
    for dir in ["data", "tree"] {
        for e in b.list(dir).unwrap() {
            let bytes = b.read(&e.path).unwrap();
            let span = header_span(&bytes[..5], bytes.len(), &bytes[bytes.len() - 4..]).unwrap();
            packs += usize::from(decode_header(keys, &bytes[span.clone()], span.start as u64).is_ok());
        }
    }
    let count = |dir: &str, open: &dyn Fn(&[u8]) -> bool| {
        b.list(dir).unwrap().iter().filter(|e| open(&b.read(&e.path).unwrap())).count()
    };
    let index = count("index", &|x| vault_format::index::IndexFile::decode(keys, x).is_ok());
    let snaps = count("snapshots", &|x| vault_format::snapshot::Snapshot::decode(keys, x).is_ok());
    (packs, index, snaps)
}

fn with_password(env: &Env, pw: &str, args: &[&str]) -> std::process::Output {
    env.cmd().env("VAULT_PASSWORD", pw).args(args).output().unwrap()
}

#[test]
fn after_rotation_and_reencryption_the_old_key_opens_nothing() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("big"), noise(3 << 20, 1)).unwrap();
    std::fs::write(src.join("d/small"), b"first").unwrap();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s, "-q"]);
    let out = env.cmd().env("VAULT_NEW_PASSWORD", "second").args(["key", "add", "-q"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let old = leaked_keys(&env, PASSWORD);
    assert_eq!(opened_by(&env, &old).0, env.backend().list("data").unwrap().len() + 2, "the old key opens all now");

    let out = env.ok(&["key", "rotate", "--json"]);
    let r = last_json(out.as_bytes());
    assert_eq!(r["epoch"], 2, "{out}");
    assert_eq!(r["granted"].as_array().unwrap().len(), 2, "{out}");
    std::fs::write(src.join("d/new"), noise(1 << 20, 2)).unwrap();
    env.ok(&["backup", s, "-q"]);
    // The second key file follows without its password having been used in the rotation.
    let out = with_password(&env, "second", &["key", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"epoch\":2"), "{}", String::from_utf8_lossy(&out.stdout));
    // What was written after the rotation is closed to the old key already.
    let (packs_before, _, snaps_before) = opened_by(&env, &old);

    let out = env.ok(&["prune", "--reencrypt", "--dry-run"]);
    assert!(out.contains("re-encrypt"), "{out}");
    assert_eq!(
        opened_by(&env, &old),
        (packs_before, opened_by(&env, &old).1, snaps_before),
        "a dry run changes nothing"
    );
    let out = env.ok(&["prune", "--reencrypt"]);
    assert!(out.contains("re-encryption:"), "the cost is shown first: {out}");
    assert_eq!(opened_by(&env, &old), (0, 0, 0), "the old key opens no pack, index file or snapshot");
    assert!(packs_before > 0 && snaps_before == 1);
    // Nothing lost: every snapshot restores, with either password, and check reads it all.
    env.ok(&["check", "--read-data"]);
    let out = with_password(&env, "second", &["snapshots", "--json"]);
    let snaps = last_json(&out.stdout);
    assert_eq!(snaps.as_array().unwrap().len(), 2, "{snaps}");
    let target = env.path("out");
    let out = with_password(&env, "second", &["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    // A second prune --reencrypt has nothing left to do.
    let out = env.ok(&["prune", "--reencrypt", "--dry-run", "--json"]);
    assert_eq!(last_json(out.as_bytes())["packs"]["reencrypted"], 0, "{out}");
}

#[test]
fn write_only_keys_follow_a_rotation() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), noise(200_000, 3)).unwrap();
    let s = src.to_str().unwrap();
    let out =
        env.cmd().env("VAULT_NEW_PASSWORD", "writer").args(["key", "add", "--write-only", "-q"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    env.ok(&["key", "rotate", "-q"]);
    // The write-only key backs up after the rotation, deduplicating against what full keys
    // wrote since (index files sealed with the new metadata key).
    env.ok(&["backup", s, "-q"]);
    let out = with_password(&env, "writer", &["backup", s, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = last_json(&out.stdout);
    assert!(summary["bytes_added"].as_u64().unwrap() < 10_000, "dedup across the rotation: {summary}");
    let out = with_password(&env, "writer", &["key", "passwd", "-q"]);
    assert_eq!(code(&out), 1, "no new password: {}", stderr(&out));
    // Its password changed after the rotation: the new key file grants itself the epochs.
    let out = env
        .cmd()
        .env("VAULT_PASSWORD", "writer")
        .env("VAULT_NEW_PASSWORD", "writer2")
        .args(["key", "passwd", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    env.ok(&["backup", s, "-q"]);
    let out = with_password(&env, "writer2", &["backup", s, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = last_json(&out.stdout);
    assert!(summary["bytes_added"].as_u64().unwrap() < 10_000, "{summary}");
    env.ok(&["check", "--read-data"]);
}

#[test]
fn a_forked_or_forged_grant_is_caught() {
    let env = Env::new();
    env.init();
    let out = env.cmd().env("VAULT_NEW_PASSWORD", "second").args(["key", "add", "--json"]).output().unwrap();
    let second: vault_format::KeyId = serde_json::from_value(last_json(&out.stdout)["id"].clone()).unwrap();
    // Its member record gives its public key; the attacker holds the old (epoch 1) key.
    let old = leaked_keys(&env, PASSWORD);
    env.ok(&["key", "rotate", "-q"]);
    let b = env.backend();
    let public = b
        .list("members")
        .unwrap()
        .iter()
        .filter_map(|e| vault_format::epoch::MemberRecord::decode_origin(&old, &b.read(&e.path).unwrap()).ok())
        .find(|(m, _)| m.key_file == second)
        .unwrap()
        .0
        .public_key()
        .unwrap();
    let put = |bytes: Vec<u8>| {
        let id = vault_format::Id::of_stored_bytes(&bytes);
        b.write(&format!("grants/{id}"), bytes).unwrap();
        id
    };
    // Forged without the old key: its certificate does not verify; noted and ignored.
    let mut stranger = Keys::from_master(vault_format::crypto::SecretKey::from_bytes([9; 32]));
    stranger.enter_epoch(vault_format::crypto::SecretKey::from_bytes([10; 32]));
    let payload = vault_format::epoch::GrantPayload::from_keys(&stranger, true).unwrap();
    let forged = put(vault_format::epoch::Grant::seal(&payload, second, &public).unwrap());
    let out = with_password(&env, "second", &["snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
    b.delete(&format!("grants/{forged}")).unwrap();
    // Forged with the leaked old key: a second epoch 2, which contradicts the genuine one.
    let mut attacker = old.clone();
    attacker.enter_epoch(vault_format::crypto::SecretKey::from_bytes([11; 32]));
    let payload = vault_format::epoch::GrantPayload::from_keys(&attacker, true).unwrap();
    put(vault_format::epoch::Grant::seal(&payload, second, &public).unwrap());
    let out = with_password(&env, "second", &["snapshots"]);
    assert_eq!(code(&out), 15, "{}", stderr(&out));
    assert!(stderr(&out).contains("two different keys for epoch 2"), "{}", stderr(&out));
}

#[test]
fn rotation_refuses_to_leave_a_key_file_behind_unless_asked() {
    let env = Env::new();
    env.init();
    // A key file as vault 0.1 made it: no member record.
    let out = env.cmd().env("VAULT_NEW_PASSWORD", "second").args(["key", "add", "--json"]).output().unwrap();
    let second = last_json(&out.stdout)["id"].as_str().unwrap().to_string();
    let b = env.backend();
    let old = leaked_keys(&env, PASSWORD);
    for e in b.list("members").unwrap() {
        let (m, _) = vault_format::epoch::MemberRecord::decode_origin(&old, &b.read(&e.path).unwrap()).unwrap();
        if m.key_file.to_hex() == second {
            b.delete(&e.path).unwrap();
        }
    }
    let out = env.run(&["key", "rotate"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(&second[..8]) && stderr(&out).contains("vault key list"), "{}", stderr(&out));
    assert!(env.ok(&["key", "list"]).contains("no member record"));
    // Its holder lists the keys once: the record is there, and the rotation reaches it.
    let out = with_password(&env, "second", &["key", "list", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    env.ok(&["key", "rotate", "-q"]);
    let out = with_password(&env, "second", &["key", "list", "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"epoch\":2"));
}
