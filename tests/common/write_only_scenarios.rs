//! Write-only keys, on any backend: a host backs up with a key that deduplicates against
//! everyone but reads nothing of others', and cannot make another host adopt what it forged.

use super::*;

pub const WRITER_PASSWORD: &str = "writer password";

pub fn this_host() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

/// `vault` as the write-only key.
pub fn as_writer(env: &Env, args: &[&str]) -> Output {
    env.cmd().env("VAULT_PASSWORD", WRITER_PASSWORD).args(args).output().expect("run vault")
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    last_json(&out.stdout)
}

/// Makes the write-only key (labelled `host`) and returns its id.
pub fn add_writer(env: &Env, host: &str) -> String {
    let out = env
        .cmd()
        .env("VAULT_NEW_PASSWORD", WRITER_PASSWORD)
        .args(["key", "add", "--write-only", "--host", host, "--json"])
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["write_only"], true, "{v}");
    v["writer"].as_str().unwrap().to_string()
}

pub fn write_only_key_backs_up_but_reads_nothing_of_others(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    let alpha = env.path("alpha");
    std::fs::create_dir_all(&alpha).unwrap();
    let shared = noise(6 << 20, 11);
    std::fs::write(alpha.join("shared.bin"), &shared).unwrap();
    std::fs::write(alpha.join("secret-name-of-alpha.txt"), b"alpha's own").unwrap();
    let a = alpha.to_str().unwrap();
    let first = env.backup_json(&["--host", "alpha", a]);
    let alpha_snap = first["snapshot_id"].as_str().unwrap().to_string();

    let writer = add_writer(&env, "beta");
    let keys = env.ok(&["key", "list"]);
    assert!(keys.contains("write-only"), "{keys}");

    // The write-only key backs up, and the 6 MiB alpha stored already is not stored again.
    let beta = env.path("beta");
    std::fs::create_dir_all(&beta).unwrap();
    std::fs::write(beta.join("shared.bin"), &shared).unwrap();
    std::fs::write(beta.join("own.txt"), b"beta's own").unwrap();
    let b = beta.to_str().unwrap();
    let v = json_of(&as_writer(&env, &["backup", "--json", "--host", "beta", b]));
    let beta_snap = v["snapshot_id"].as_str().unwrap().to_string();
    assert!(v["bytes_added"].as_u64().unwrap() < 1 << 20, "deduplicated against alpha's data: {v}");

    // It lists only its own snapshots, and nothing of alpha's shows.
    let out = as_writer(&env, &["snapshots", "--json"]);
    let list = json_of(&out);
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![beta_snap.as_str()], "{list}");
    let text = String::from_utf8_lossy(&as_writer(&env, &["snapshots"]).stdout).into_owned();
    assert!(!text.contains("alpha"), "{text}");

    // Everything that reads others' data is refused, with one line and exit 16.
    let target = env.path("stolen");
    let t = target.to_str().unwrap();
    let mnt = env.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    for args in [
        vec!["ls", &alpha_snap[..8]],
        vec!["restore", &alpha_snap[..8], "--target", t],
        vec!["dump", &alpha_snap[..8], "/"],
        vec!["find", "secret*"],
        vec!["cat", "snapshot", &alpha_snap],
        vec!["check"],
        vec!["forget", "--keep-last", "1"],
        vec!["prune"],
        vec!["diff", &alpha_snap[..8], &beta_snap[..8]],
        vec!["stats"],
        vec!["key", "add"],
        vec!["restore", &beta_snap[..8], "--target", t],
        vec!["mount", mnt.to_str().unwrap()],
    ] {
        let out = as_writer(&env, &args);
        assert_eq!(code(&out), 16, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("write-only") && err.lines().count() == 1, "{args:?}: {err}");
        assert!(!err.contains("secret-name-of-alpha"), "{err}");
    }
    assert!(!target.exists());

    // Full keys read everything, and see which key wrote each snapshot.
    let list = json_of(&env.run(&["snapshots", "--json"]));
    let by = |id: &str| {
        list.as_array().unwrap().iter().find(|s| s["id"] == id).map(|s| s["written_by"].as_str().unwrap().to_string())
    };
    assert_eq!(by(&alpha_snap).as_deref(), Some("full key"));
    assert!(by(&beta_snap).unwrap().contains(&writer), "{list}");
    let restored = env.path("restored-beta");
    env.ok(&["restore", &beta_snap[..8], "--target", restored.to_str().unwrap()]);
    assert_same_tree(&beta, &restored.join(b.trim_start_matches('/')));
    env.ok(&["check", "--read-data"]);

    // A second backup by the write-only key takes its own snapshot as parent.
    let v = json_of(&as_writer(&env, &["backup", "--json", "--host", "beta", b]));
    assert_eq!(v["parent"].as_str(), Some(beta_snap.as_str()), "{v}");
    assert_eq!(v["files_unchanged"].as_u64(), Some(2), "{v}");
}

/// The attack of issue 11 by a write-only key: a snapshot with alpha's host name and paths,
/// dated later, whose tree gives alpha's unchanged file forged content. Alpha's next backup
/// must not take it as its parent.
pub fn write_only_key_cannot_plant_a_parent(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("config.txt"), b"genuine").unwrap();
    let d = data.to_str().unwrap();
    let first = env.backup_json(&["--host", "alpha", d]);
    let genuine = first["snapshot_id"].as_str().unwrap().to_string();
    add_writer(&env, "beta");
    // The writer backs up a look-alike of alpha's directory, same size and times, other bytes.
    let meta = std::fs::metadata(data.join("config.txt")).unwrap();
    std::fs::write(data.join("config.txt"), b"FORGED!").unwrap();
    let set_mtime = || {
        let f = std::fs::File::options().write(true).open(data.join("config.txt")).unwrap();
        f.set_modified(meta.modified().unwrap()).unwrap();
    };
    set_mtime();
    let v = json_of(&as_writer(&env, &["backup", "--json", "--host", "alpha", d]));
    let planted = v["snapshot_id"].as_str().unwrap().to_string();
    // The genuine content comes back; alpha's backup compares against its own snapshot.
    std::fs::write(data.join("config.txt"), b"genuine").unwrap();
    set_mtime();
    let v = env.backup_json(&["--host", "alpha", d]);
    assert_eq!(v["parent"].as_str(), Some(genuine.as_str()), "planted {planted}: {v}");
    let out = env.path("out");
    env.ok(&["restore", &v["snapshot_id"].as_str().unwrap()[..8], "--target", out.to_str().unwrap()]);
    let restored = std::fs::read(out.join(d.trim_start_matches('/')).join("config.txt")).unwrap();
    assert_eq!(restored, b"genuine");
}
