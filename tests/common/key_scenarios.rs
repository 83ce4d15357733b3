//! Key management scenarios, run on every backend.

use super::*;

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
