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
    assert_eq!(first["rechunked"], true, "{first}");
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

/// The trees of a repository's snapshots, oldest first.
fn trees(env: &Env) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    listed.as_array().unwrap().iter().map(|s| s["tree"].as_str().unwrap().to_string()).collect()
}

/// `vault -r DST init --from-repo SRC --copy-chunker-params`.
fn init_sharing(src: &Env, dst: &Env, from_password: &str) -> std::process::Output {
    let mut c = dst.cmd();
    c.env("VAULT_FROM_PASSWORD", from_password);
    src.add_settings(&mut c);
    c.args(["init", "--json", "--from-repo", src.repo_string(), "--copy-chunker-params"]).output().unwrap()
}

/// A repository made with `init --from-repo SRC --copy-chunker-params` chunks and names
/// data as SRC does: copy moves blobs as they are (the copies have SRC's tree ids), only
/// those missing, and a backup of the same data into it stores nothing new.
pub fn copies_with_shared_chunker_params(from: Kind, to: Kind) {
    let (Some(src), Some(dst)) = (Env::for_kind(from), Env::for_kind(to)) else { return };
    let data = src.path("data");
    std::fs::create_dir_all(data.join("d")).unwrap();
    std::fs::write(data.join("big"), noise(12 << 20, 3)).unwrap();
    std::fs::write(data.join("d/small"), b"first").unwrap();
    src.init();
    src.ok(&["backup", data.to_str().unwrap()]);
    std::fs::write(data.join("d/small"), b"second version").unwrap();
    src.ok(&["backup", data.to_str().unwrap()]);

    // A wrong password for SRC creates nothing.
    let wrong = init_sharing(&src, &dst, "wrong");
    assert_eq!(code(&wrong), 12, "{}", stderr(&wrong));
    assert_eq!(stderr(&wrong).lines().count(), 1, "{}", stderr(&wrong));
    assert_eq!(code(&dst.run(&["snapshots"])), 10, "a failed init left a repository");
    let made = init_sharing(&src, &dst, PASSWORD);
    assert_eq!(code(&made), 0, "{}", stderr(&made));
    let config = dst.ok(&["cat", "config"]);
    assert!(config.contains("\"version\": 2") && config.contains("fingerprint"), "{config}");
    assert!(!src.ok(&["cat", "config"]).contains("fingerprint"));

    let first = copy_json(&src, &dst, &[]);
    assert_eq!(first["copied"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["rechunked"], false, "{first}");
    // Each blob crosses once: the big file's chunks are shared by both snapshots.
    let read = first["bytes_read"].as_u64().unwrap();
    assert!(((12 << 20)..(12 << 20) + 100).contains(&read), "{first}");
    assert_eq!(trees(&dst), trees(&src), "copies have the originals' trees");
    let target = dst.path("restored");
    dst.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&data, &target.join(data.strip_prefix("/").unwrap()));

    // A new snapshot costs only its new blobs.
    std::fs::write(data.join("new"), noise(1 << 20, 4)).unwrap();
    src.ok(&["backup", data.to_str().unwrap()]);
    let next = copy_json(&src, &dst, &["latest"]);
    assert_eq!(next["copied"].as_array().unwrap().len(), 1, "{next}");
    assert_eq!(next["bytes_read"], 1 << 20, "{next}");
    // The same sources backed up straight into DST add no data: it holds every chunk.
    // (At most the trees of the directories above the sources, whose times move as the
    // test writes beside them.)
    let direct = dst.backup_json(&["--force", data.to_str().unwrap()]);
    assert!(direct["bytes_added"].as_u64().unwrap() < 4096, "{direct}");
    dst.ok(&["check", "--read-data"]);

    // --copy-chunker-params needs the repository to take them from.
    let alone = dst.cmd().args(["init", "--copy-chunker-params"]).output().unwrap();
    assert_eq!(code(&alone), 2, "{}", stderr(&alone));
}
