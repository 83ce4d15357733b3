//! `vault copy` between two repositories on any two backends.

use std::process::Command;

use super::{Env, Kind, PASSWORD, assert_same_tree, code, noise, stderr};

/// `vault -r DST copy --from-repo SRC ARGS`, with both repositories' settings.
fn copy_cmd(src: &Env, dst: &Env, args: &[&str]) -> Command {
    let mut c = dst.cmd();
    c.env("VAULT_FROM_PASSWORD", PASSWORD);
    src.add_settings(&mut c);
    c.args(["copy", "--from-repo", src.repo_string()]).args(args);
    c
}

fn copy_json(src: &Env, dst: &Env, args: &[&str]) -> serde_json::Value {
    let out = copy_cmd(src, dst, &[&["--json"], args].concat()).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap()
}

pub fn copies_between_repositories(from: Kind, to: Kind) {
    let (Some(src), Some(dst)) = (Env::for_kind(from), Env::for_kind(to)) else { return };
    let data = src.path("data");
    std::fs::create_dir_all(data.join("d")).unwrap();
    std::fs::write(data.join("big"), noise(12 << 20, 1)).unwrap();
    std::fs::write(data.join("d/small"), b"first").unwrap();
    src.init();
    src.ok(&["backup", "--tag", "one", data.to_str().unwrap()]);
    std::fs::write(data.join("d/small"), b"second version").unwrap();
    src.ok(&["backup", data.to_str().unwrap()]);
    dst.init();

    let first = copy_json(&src, &dst, &[]);
    assert_eq!(first["copied"].as_array().unwrap().len(), 2, "{first}");
    // The large file is read once for both snapshots.
    assert!(first["bytes_read"].as_u64().unwrap() < (13 << 20), "{first}");
    let target = dst.path("restored");
    dst.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&data, &target.join(data.strip_prefix("/").unwrap()));
    let listed: serde_json::Value = serde_json::from_str(&dst.ok(&["snapshots", "--json", "--tag", "one"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "tags are copied");

    // Copied snapshots are not copied again; a new one costs only its new data.
    let again = copy_json(&src, &dst, &[]);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["bytes_read"], 0, "{again}");
    std::fs::write(data.join("new"), noise(1 << 20, 2)).unwrap();
    src.ok(&["backup", data.to_str().unwrap()]);
    let third = copy_json(&src, &dst, &["latest"]);
    assert_eq!(third["copied"].as_array().unwrap().len(), 1, "{third}");
    assert!(third["bytes_read"].as_u64().unwrap() <= (1 << 20) + 100, "{third}");
    dst.ok(&["check", "--read-data"]);
    let target = dst.path("restored-latest");
    dst.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&data, &target.join(data.strip_prefix("/").unwrap()));

    // Bad input: a wrong source password, the same repository on both sides.
    let wrong = copy_cmd(&src, &dst, &[]).env("VAULT_FROM_PASSWORD", "wrong").output().unwrap();
    assert_eq!(code(&wrong), 12, "{}", stderr(&wrong));
    assert_eq!(stderr(&wrong).lines().count(), 1, "{}", stderr(&wrong));
    let same = copy_cmd(&dst, &dst, &[]).output().unwrap();
    assert_eq!(code(&same), 2, "{}", stderr(&same));
}
