//! Backup inputs beyond paths: standard input, a command's output, path lists; and the
//! options that shape what is stored. Run on every backend.

use std::io::Write;
use std::process::Stdio;

use super::{Env, Kind, code, stderr};

fn snapshot_count(env: &Env) -> usize {
    let out = env.ok(&["snapshots", "--json"]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().len()
}

/// Runs `vault backup ARGS` with `input` on standard input.
fn backup_with_stdin(env: &Env, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = env
        .cmd()
        .arg("backup")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // vault may refuse its arguments and exit before it reads: a closed pipe is no error
    // of the test's.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

pub fn streams_are_backed_up(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let out = backup_with_stdin(&env, &["--stdin", "--stdin-filename", "db.sql", "--json"], &data);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let target = env.path("restored");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(std::fs::read(target.join("db.sql")).unwrap(), data);
    let listed = env.ok(&["snapshots", "--json"]);
    assert!(listed.contains("\"/db.sql\""), "{listed}");

    // `-` and `/dev/stdin` are standard input too, not a path named `-` or the symlink
    // /dev/stdin is; mixed with paths they are refused.
    for alias in ["-", "/dev/stdin"] {
        let out = backup_with_stdin(&env, &[alias, "--stdin-filename", "alias.txt"], b"through an alias");
        assert_eq!(code(&out), 0, "{alias}: {}", stderr(&out));
        let t = env.path(&format!("restored-alias{}", alias.len()));
        env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
        assert_eq!(std::fs::read(t.join("alias.txt")).unwrap(), b"through an alias", "{alias}");
    }
    let mixed = backup_with_stdin(&env, &["-", "/etc/hostname"], b"x");
    assert_eq!(code(&mixed), 2, "{}", stderr(&mixed));
    assert_eq!(stderr(&mixed).lines().count(), 1, "{}", stderr(&mixed));

    // A command's output; its failure stores nothing and says why.
    env.ok(&["backup", "--stdin-from-command", "--stdin-filename", "dump", "--", "sh", "-c", "printf 'all rows'"]);
    let target2 = env.path("restored2");
    env.ok(&["restore", "latest", "--target", target2.to_str().unwrap()]);
    assert_eq!(std::fs::read(target2.join("dump")).unwrap(), b"all rows");
    let before = snapshot_count(&env);
    let failed = env.run(&["backup", "--stdin-from-command", "--", "sh", "-c", "printf 'half'; exit 7"]);
    assert_eq!(code(&failed), 1, "{}", stderr(&failed));
    assert!(stderr(&failed).contains("exit status: 7"), "{}", stderr(&failed));
    assert_eq!(stderr(&failed).lines().count(), 1, "{}", stderr(&failed));
    assert_eq!(snapshot_count(&env), before, "a failed command left a snapshot");
    let missing = env.run(&["backup", "--stdin-from-command", "--", "/no/such/command"]);
    assert_eq!(code(&missing), 2, "{}", stderr(&missing));
    assert_eq!(snapshot_count(&env), before);
    env.ok(&["check"]);
}

/// SIGINT stops a backup cleanly: exit 130, no snapshot, the repository checks clean, and
/// the next backup does not upload again what the interrupted one stored.
pub fn an_interrupted_backup_resumes(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let files = 8u64;
    for i in 0..files {
        std::fs::write(src.join(format!("f{i}")), super::noise(40 << 20, 500 + i)).unwrap();
    }
    let total = files * (40 << 20);
    let base = env.repo_size();
    let child = env
        .cmd()
        .args(["backup", src.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while env.repo_size().saturating_sub(base) < total * 2 / 5
        && started.elapsed() < std::time::Duration::from_secs(120)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(snapshot_count(&env), 0);
    env.ok(&["check"]);
    let kept = env.repo_size() - base;
    let again = env.backup_json(&[src.to_str().unwrap()]);
    let uploaded = again["stored_bytes_added"].as_u64().unwrap();
    eprintln!("interrupted after storing {kept} bytes of {total}; the rerun uploaded {uploaded}");
    assert!(kept >= total / 3, "{kept}");
    // Late under load, the interrupt may come when (nearly) everything is stored.
    assert!(uploaded <= total.saturating_sub(kept) + (64 << 20), "{again}");
    let target = env.path("restored");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    super::assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}
