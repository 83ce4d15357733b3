//! Key management scenarios, run on every backend.

use super::*;
use vault_format::crypto::Keys;
use vault_format::keyfile::KeyFile;
use vault_format::pack::{decode_header, header_span};

pub fn keys_json(env: &Env, password: &str) -> Vec<serde_json::Value> {
    let out = env.cmd().env("VAULT_PASSWORD", password).args(["key", "list", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn current(keys: &[serde_json::Value]) -> String {
    keys.iter().find(|k| k["current"] == true).unwrap()["id"].as_str().unwrap().to_string()
}

/// A second password, listing, removing, and `passwd`, with the data readable throughout.
pub fn keys_are_added_removed_and_replaced(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    std::fs::create_dir_all(env.path("src")).unwrap();
    std::fs::write(env.path("src/f"), noise(300_000, 1)).unwrap();
    let src = env.path("src");
    env.ok(&["backup", src.to_str().unwrap()]);
    let first = current(&keys_json(&env, PASSWORD));

    // A second password, from a file, with labels.
    std::fs::write(env.path("pw2"), "second password\n").unwrap();
    let out = env
        .cmd()
        .args(["key", "add", "--host", "laptop", "--user", "ann", "--new-password-file"])
        .arg(env.path("pw2"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("added key file "));
    let keys = keys_json(&env, "second password");
    assert_eq!(keys.len(), 2);
    let second = current(&keys);
    assert_ne!(first, second);
    let labelled = keys.iter().find(|k| k["id"] == second.as_str()).unwrap();
    assert_eq!(labelled["host"], "laptop");
    assert_eq!(labelled["username"], "ann");
    assert_eq!(labelled["kdf"]["memory_kib"], 65536);
    let table = env.ok(&["key", "list"]);
    assert!(table.contains(&format!("*{}", &first[..8])), "{table}");
    assert!(table.contains(&format!(" {}", &second[..8])), "{table}");

    // Both open the same data.
    let out = env.cmd().env("VAULT_PASSWORD", "second password").args(["snapshots", "--json"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap().len(), 1);

    // The key in use cannot be removed; an unknown one is a usage error.
    let out = env.run(&["key", "remove", &first[..10]]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("opened the repository"), "{}", stderr(&out));
    let out = env.run(&["key", "remove", "0000000000"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("no key file matches"), "{}", stderr(&out));

    // Removing the first key with the second: the first password stops working.
    let out = env.cmd().env("VAULT_PASSWORD", "second password").args(["key", "remove", &first[..8]]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(code(&env.run(&["snapshots"])), 12);

    // passwd with a command: one key file, new password in, old out, data intact.
    let out = env
        .cmd()
        .env("VAULT_PASSWORD", "second password")
        .args(["key", "passwd", "--kdf-memory", "96", "--new-password-command", "echo third"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let keys = keys_json(&env, "third");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kdf"]["memory_kib"], 96 * 1024);
    assert_eq!(keys[0]["host"], "laptop", "passwd keeps the labels of the key file it replaces");
    let out = env.cmd().env("VAULT_PASSWORD", "second password").arg("snapshots").output().unwrap();
    assert_eq!(code(&out), 12);
    let out = env
        .cmd()
        .env("VAULT_PASSWORD", "third")
        .args(["restore", "latest", "--target"])
        .arg(env.path("out"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(manifest(&src), manifest(&env.path("out").join(src.strip_prefix("/").unwrap())));
    let out = env.cmd().env("VAULT_PASSWORD", "third").arg("check").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Two `key remove` at once, each taking the other's key file: never both go.
pub fn removals_of_each_others_key_leave_one(kind: Kind) {
    for round in 0..4 {
        let Some(env) = Env::for_kind(kind) else { return };
        env.init();
        let out = env.cmd().env("VAULT_NEW_PASSWORD", "other").args(["key", "add"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let mine = current(&keys_json(&env, PASSWORD));
        let other = current(&keys_json(&env, "other"));
        let spawn = |pw: &str, target: &str| {
            env.cmd()
                .env("VAULT_PASSWORD", pw)
                .args(["key", "remove", target])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let a = spawn(PASSWORD, &other);
        let b = spawn("other", &mine);
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let opens: Vec<bool> = [PASSWORD, "other"]
            .iter()
            .map(|pw| env.cmd().env("VAULT_PASSWORD", pw).arg("snapshots").output().unwrap().status.success())
            .collect();
        assert!(opens.iter().any(|o| *o), "round {round}: no password opens ({} / {})", stderr(&a), stderr(&b));
        // A removal fails either because the other one took its key first (it cannot open:
        // wrong password) or because it saw its key go and stored its target again.
        for (o, other_opens) in [(&a, opens[1]), (&b, opens[0])] {
            if o.status.success() {
                continue;
            }
            let err = stderr(o);
            assert!(code(o) == 12 || err.contains("stored again"), "round {round}: {err}");
            if err.contains("stored again") {
                assert!(other_opens, "round {round}: the key it removed was not put back");
            }
        }
    }
}

/// The keys the password opens from its key file alone: what a leaked old key gives.
pub fn leaked_keys(env: &Env, password: &str) -> Keys {
    let b = env.backend();
    for e in b.list("keys").unwrap() {
        let kf = KeyFile::from_json(&b.read(&e.path).unwrap()).unwrap();
        if let Ok(k) = kf.unwrap_master(password.as_bytes()) {
            return k;
        }
    }
    panic!("no key file opens");
}

/// The packs whose header `keys` opens.
pub fn packs_opened_by(env: &Env, keys: &Keys) -> Vec<String> {
    let b = env.backend();
    let mut packs = Vec::new();
    for dir in ["data", "tree"] {
        for e in b.list(dir).unwrap() {
            let bytes = b.read(&e.path).unwrap();
            let span = header_span(&bytes[..5], bytes.len(), &bytes[bytes.len() - 4..]).unwrap();
            if decode_header(keys, &bytes[span.clone()], span.start as u64).is_ok() {
                packs.push(e.path);
            }
        }
    }
    packs
}

/// How many packs, index files and snapshots `keys` opens (headers, whole files).
pub fn opened_by(env: &Env, keys: &Keys) -> (usize, usize, usize) {
    let b = env.backend();
    let packs = packs_opened_by(env, keys).len();
    let count = |dir: &str, open: &dyn Fn(&[u8]) -> bool| {
        b.list(dir).unwrap().iter().filter(|e| open(&b.read(&e.path).unwrap())).count()
    };
    let index = count("index", &|x| vault_format::index::IndexFile::decode(keys, x).is_ok());
    let snaps = count("snapshots", &|x| vault_format::snapshot::Snapshot::decode(keys, x).is_ok());
    (packs, index, snaps)
}

pub fn with_password(env: &Env, pw: &str, args: &[&str]) -> std::process::Output {
    env.cmd().env("VAULT_PASSWORD", pw).args(args).output().unwrap()
}

/// `key rotate`, a backup, `prune --reencrypt`: the old master key opens no pack, index
/// file or snapshot, and everything restores with either password.
pub fn after_rotation_and_reencryption_the_old_key_opens_nothing(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
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
    let all_packs = env.backend().list("data").unwrap().len() + env.backend().list("tree").unwrap().len();
    assert_eq!(opened_by(&env, &old).0, all_packs, "the old key opens all now");

    let dry = last_json(env.ok(&["key", "rotate", "--dry-run", "--json"]).as_bytes());
    assert_eq!((dry["epoch"].as_u64(), dry["granted"].as_array().unwrap().len()), (Some(2), 2), "{dry}");
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
    let old_packs = packs_opened_by(&env, &old);

    let listing = || {
        let b = env.backend();
        let dirs = ["writers", "snapshots", "forgotten", "index", "data", "tree", "condemned", "waiting"];
        dirs.iter().flat_map(|d| b.list(d).unwrap().into_iter().map(|e| e.path)).collect::<Vec<_>>()
    };
    let before_dry_run = listing();
    let out = env.ok(&["prune", "--reencrypt", "--dry-run"]);
    assert_eq!(listing(), before_dry_run, "a dry run stores and deletes nothing");
    assert!(out.contains("re-encrypt"), "{out}");
    let after = packs_opened_by(&env, &old);
    assert_eq!(after, old_packs, "a dry run changes nothing (of {before_dry_run:?})");
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

/// Backups run in a loop (one held stopped with SIGSTOP across the rotation, so it seals
/// with the old key after it) while `key rotate` and `prune --reencrypt` run; `check` is
/// clean throughout, every snapshot restores, and a last `prune --reencrypt` after the
/// backups leaves the old key nothing.
pub fn rotation_and_reencryption_beside_backups(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4 {
        std::fs::write(src.join(format!("f{i}")), noise(400_000, i)).unwrap();
    }
    let s = src.to_str().unwrap().to_string();
    env.ok(&["backup", &s, "-q"]);
    let old = leaked_keys(&env, PASSWORD);
    // A backup opened with the old epoch, stopped until after the rotation.
    std::fs::write(src.join("late"), noise(300_000, 40)).unwrap();
    let mut held = env.cmd().args(["backup", &s, "-q"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(held.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let (stop, s) = (stop.clone(), s.clone());
        let mut cmd = env.cmd();
        cmd.args(["backup", &s, "-q"]);
        let src = src.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::fs::write(src.join("changing"), noise(100_000, 100 + n)).unwrap();
                let out = output_within(&mut cmd);
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                n += 1;
            }
            n
        })
    };
    env.ok(&["key", "rotate", "-q"]);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
    let out = env.run(&["prune", "--reencrypt", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&["check"]);
    assert!(out.status.success(), "check beside the backups: {}", stderr(&out));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let rounds = looping.join().unwrap();
    assert!(held.wait().unwrap().success());
    assert!(rounds > 0);
    env.ok(&["prune", "--reencrypt", "-q"]);
    assert_eq!(opened_by(&env, &old), (0, 0, 0), "what the stopped backup sealed with the old key is rewritten too");
    env.ok(&["check", "--read-data"]);
    let snaps: serde_json::Value =
        serde_json::from_str(env.ok(&["snapshots", "--json"]).lines().last().unwrap()).unwrap();
    for snap in snaps.as_array().unwrap() {
        let id = snap["id"].as_str().unwrap();
        let target = env.path(&format!("out-{id}"));
        env.ok(&["restore", id, "--target", target.to_str().unwrap(), "-q"]);
    }
    env.ok(&["backup", &s, "-q"]);
    let target = env.path("latest");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap(), "-q"]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}
