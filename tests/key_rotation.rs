//! `vault key rotate` and `vault prune --reencrypt` (spec §3.2): after both, the old master
//! key opens no pack, index file or snapshot; every key file (full and write-only) follows
//! the rotation without its password being known; forged and forked grants are caught.

mod common;

use common::key_scenarios::*;
use common::*;
use vault_format::crypto::Keys;
use vault_format::keyfile::KeyFile;

#[test]
fn after_rotation_and_reencryption_the_old_key_opens_nothing_local() {
    after_rotation_and_reencryption_the_old_key_opens_nothing(Kind::Local);
}

#[test]
fn rotation_and_reencryption_beside_backups_local() {
    rotation_and_reencryption_beside_backups(Kind::Local);
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
    let payload = vault_format::epoch::GrantPayload::from_keys(&stranger, None).unwrap();
    let forged = put(vault_format::epoch::Grant::seal(&payload, second, &public).unwrap());
    let out = with_password(&env, "second", &["snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
    b.delete(&format!("grants/{forged}")).unwrap();
    // Forged with the leaked old key: a second epoch 2, which contradicts the genuine one.
    let mut attacker = old.clone();
    attacker.enter_epoch(vault_format::crypto::SecretKey::from_bytes([11; 32]));
    let payload = vault_format::epoch::GrantPayload::from_keys(&attacker, None).unwrap();
    let planted = put(vault_format::epoch::Grant::seal(&payload, second, &public).unwrap());
    let out = with_password(&env, "second", &["snapshots"]);
    assert_eq!(code(&out), 15, "{}", stderr(&out));
    assert!(stderr(&out).contains("two different keys for epoch 2"), "{}", stderr(&out));
    // The storage hides the genuine grant: this key file used epoch 2's genuine key here
    // before, so the substitute is refused.
    let genuine: Vec<String> =
        b.list("grants").unwrap().into_iter().map(|e| e.path).filter(|p| !p.ends_with(&planted.to_hex())).collect();
    let hidden: Vec<(String, Vec<u8>)> = genuine.iter().map(|p| (p.clone(), b.read(p).unwrap().to_vec())).collect();
    for p in &genuine {
        b.delete(p).unwrap();
    }
    let out = with_password(&env, "second", &["snapshots"]);
    assert_eq!(code(&out), 15, "{}", stderr(&out));
    assert!(stderr(&out).contains("a grant was replaced"), "{}", stderr(&out));
    // Or removes every grant: back to epoch 1, whose key leaked.
    b.delete(&format!("grants/{planted}")).unwrap();
    let out = with_password(&env, "second", &["snapshots"]);
    assert_eq!(code(&out), 15, "{}", stderr(&out));
    assert!(stderr(&out).contains("offers only epoch 1"), "{}", stderr(&out));
    // With the genuine grants back, all is well again.
    for (p, bytes) in hidden {
        b.write(&p, bytes).unwrap();
    }
    let out = with_password(&env, "second", &["snapshots"]);
    assert!(out.status.success(), "{}", stderr(&out));
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

#[test]
fn a_write_only_key_cannot_give_another_a_key() {
    use vault_format::epoch::{Grant, GrantPayload, MemberRecord};
    use vault_format::keyfile::Unwrapped;
    let env = Env::new();
    env.init();
    let mut ids = Vec::new();
    for pw in ["w1", "w2"] {
        let out =
            env.cmd().env("VAULT_NEW_PASSWORD", pw).args(["key", "add", "--write-only", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        ids.push(serde_json::from_value::<vault_format::KeyId>(last_json(&out.stdout)["id"].clone()).unwrap());
    }
    let b = env.backend();
    // The attacker, write-only key w1: its own keys, and w2's public agreement key (read
    // here with a full key: the attacker is given more than it could get).
    let kf = KeyFile::from_json(&b.read(&format!("keys/{}", ids[0])).unwrap()).unwrap();
    let Ok(Unwrapped::WriteOnly(p1)) = kf.unwrap(b"w1") else { panic!("w1 opens") };
    let full = leaked_keys(&env, PASSWORD);
    let public = b
        .list("members")
        .unwrap()
        .iter()
        .filter_map(|e| MemberRecord::decode_origin(&full, &b.read(&e.path).unwrap()).ok())
        .find(|(m, _)| m.key_file == ids[1])
        .unwrap()
        .0
        .public_key()
        .unwrap();
    let mut attacker = p1.keys();
    attacker.enter_metadata_epoch(vault_format::crypto::SecretKey::from_bytes([7; 32]));
    for cert_key in [p1.writer_key.clone(), p1.metadata_key.clone()] {
        let forged = GrantPayload::from_keys(&attacker, Some(&cert_key)).unwrap();
        let bytes = Grant::seal(&forged, ids[1], &public).unwrap();
        b.write(&format!("grants/{}", vault_format::Id::of_stored_bytes(&bytes)), bytes).unwrap();
    }
    let out = with_password(&env, "w2", &["key", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not verify"), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"epoch\":1"), "w2 took no forged key");
    // A genuine rotation reaches w2 all the same, and its backups stay readable to full keys.
    env.ok(&["key", "rotate", "-q"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), noise(100_000, 5)).unwrap();
    let out = with_password(&env, "w2", &["backup", src.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = with_password(&env, "w2", &["key", "list", "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"epoch\":2"));
    env.ok(&["check", "--read-data"]);
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap(), "-q"]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}
