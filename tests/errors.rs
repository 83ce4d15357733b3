//! Bad input never panics, names the thing, and exits with its documented code.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use common::*;

fn assert_clean_error(out: &std::process::Output, expected_code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(code(out), expected_code, "stderr: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().filter(|l| l.starts_with("vault: error")).count(), 1, "{err}");
}

#[test]
fn missing_repository_has_its_own_code() {
    let env = Env::new();
    let out = env.run(&["snapshots"]);
    assert_clean_error(&out, 10, env.repo.to_str().unwrap());
    assert!(!env.repo.exists(), "opening must not create the repository");
    // An existing directory without a config is not a repository either.
    std::fs::create_dir_all(&env.repo).unwrap();
    assert_clean_error(&env.run(&["snapshots"]), 10, "does not exist");
    let out = env.raw().args(["-r", "", "snapshots"]).output().unwrap();
    assert_clean_error(&out, 1, "empty repository");
    let out = env.raw().arg("snapshots").output().unwrap();
    assert_clean_error(&out, 1, "VAULT_REPOSITORY");
    // The repository may also come from the environment, and -r may follow the command.
    let out = env.raw().env("VAULT_REPOSITORY", &env.repo).arg("snapshots").output().unwrap();
    assert_clean_error(&out, 10, "does not exist");
    let out = env.raw().args(["snapshots", "-r"]).arg(&env.repo).output().unwrap();
    assert_clean_error(&out, 10, "does not exist");
}

#[test]
fn init_twice_and_wrong_password() {
    let env = Env::new();
    env.init();
    assert_clean_error(&env.run(&["init"]), 1, "already exists");
    let out = env.cmd().env("VAULT_PASSWORD", "wrong").args(["snapshots"]).output().unwrap();
    assert_clean_error(&out, 12, "wrong password");
    // Password from a file and from a command.
    let pwfile = env.path("pw");
    std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
    let out =
        env.cmd().env_remove("VAULT_PASSWORD").arg("--password-file").arg(&pwfile).arg("snapshots").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env
        .cmd()
        .env_remove("VAULT_PASSWORD")
        .args(["snapshots", "--password-command", &format!("echo '{PASSWORD}'")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // No password and no terminal: a clear error, no hang.
    let out = env.cmd().env_remove("VAULT_PASSWORD").arg("snapshots").output().unwrap();
    assert_clean_error(&out, 1, "no password given");
    let out = env
        .cmd()
        .env_remove("VAULT_PASSWORD")
        .args(["--password-file", "/nonexistent/pw", "snapshots"])
        .output()
        .unwrap();
    assert_clean_error(&out, 1, "/nonexistent/pw");
}

#[test]
fn damaged_config_and_key_files() {
    let env = Env::new();
    env.init();
    let config = env.repo.join("config");
    let good = std::fs::read(&config).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x40;
    std::fs::write(&config, &bad).unwrap();
    assert_clean_error(&env.run(&["snapshots"]), 13, "config");
    std::fs::write(&config, &good[..10]).unwrap();
    assert_clean_error(&env.run(&["snapshots"]), 13, "config");
    std::fs::write(&config, b"garbage").unwrap();
    assert_clean_error(&env.run(&["snapshots"]), 13, "config");
    std::fs::write(&config, &good).unwrap();
    env.ok(&["snapshots"]);

    let key = std::fs::read_dir(env.repo.join("keys")).unwrap().next().unwrap().unwrap().path();
    let key_bytes = std::fs::read(&key).unwrap();
    let mut garbled = key_bytes.clone();
    garbled[40] ^= 1;
    std::fs::write(&key, &garbled).unwrap();
    let out = env.run(&["snapshots"]);
    assert_clean_error(&out, 1, "damaged");
    assert!(!stderr(&out).contains("wrong password"));
    std::fs::remove_file(&key).unwrap();
    assert_clean_error(&env.run(&["snapshots"]), 1, "no usable key");
    std::fs::remove_file(&config).unwrap();
    assert_clean_error(&env.run(&["snapshots"]), 10, "does not exist");
}

#[test]
fn snapshot_selection_errors() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    env.init();
    assert_clean_error(&env.run(&["ls", "latest"]), 1, "no snapshot matches");
    // 17 snapshots: two must share their first hex digit.
    for i in 0..17 {
        std::fs::write(src.join("f"), format!("{i}")).unwrap();
        env.ok(&["backup", "-q", src.to_str().unwrap()]);
    }
    assert_clean_error(&env.run(&["ls", "deadbeefdeadbeef"]), 1, "deadbeefdeadbeef");
    assert_clean_error(&env.run(&["ls", "not-hex"]), 1, "not-hex");
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let firsts: Vec<char> =
        snaps.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().chars().next().unwrap()).collect();
    let dup = firsts.iter().find(|c| firsts.iter().filter(|d| d == c).count() > 1).unwrap();
    assert_clean_error(&env.run(&["ls", &dup.to_string()]), 1, "ambiguous");
    assert_clean_error(&env.run(&["ls", "latest", "/no/such/path"]), 1, "/no/such/path");
}

#[test]
fn bad_sources_targets_and_flags() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    env.init();
    let missing = env.path("missing-source");
    assert_clean_error(&env.run(&["backup", missing.to_str().unwrap()]), 1, missing.to_str().unwrap());
    env.ok(&["backup", src.to_str().unwrap()]);
    // Target not empty.
    let full = env.path("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    assert_clean_error(&env.run(&["restore", "latest", "--target", full.to_str().unwrap()]), 1, "not empty");
    // Target cannot be created.
    assert_clean_error(
        &env.run(&["restore", "latest", "--target", "/proc/vault-cannot-write"]),
        1,
        "/proc/vault-cannot-write",
    );
    let file_target = full.join("x");
    assert_clean_error(&env.run(&["restore", "latest", "--target", file_target.to_str().unwrap()]), 1, "target");
    // Bad flags are usage errors.
    let out = env.run(&["backup", "--no-such-flag", src.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    let out = env.run(&["cat", "nonsense"]);
    assert_eq!(code(&out), 2);
    assert_clean_error(&env.run(&["backup", src.to_str().unwrap(), "--exclude", "a[b"]), 2, "a[b");
    assert_clean_error(
        &env.run(&["backup", src.to_str().unwrap(), "--exclude-file", "/nonexistent/ex"]),
        1,
        "/nonexistent/ex",
    );
    let out = env.raw().args(["-r", "ftp://host/x", "snapshots"]).output().unwrap();
    assert_clean_error(&out, 1, "ftp");
}

/// Unreadable files: reported, the rest is backed up, exit code 3. Root reads everything,
/// so the backup runs as `nobody`.
#[test]
fn unreadable_files_give_exit_code_3() {
    if !is_root() {
        eprintln!("note: not root; running as the current user");
    }
    let env = Env::new();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("locked-dir")).unwrap();
    std::fs::write(src.join("ok.txt"), b"fine").unwrap();
    std::fs::write(src.join("secret.txt"), b"no").unwrap();
    std::fs::write(src.join("locked-dir/inner"), b"no").unwrap();
    std::fs::set_permissions(src.join("secret.txt"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(src.join("locked-dir"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let run_as_nobody = |args: &[&str]| {
        let mut c = env.cmd();
        if is_root() {
            c.uid(65534).gid(65534);
        }
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap()
    };
    let out = run_as_nobody(&["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_as_nobody(&["backup", "--json", src.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("secret.txt") && err.contains("locked-dir"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{summary}");
    let ls = String::from_utf8_lossy(&run_as_nobody(&["ls", "latest"]).stdout).into_owned();
    assert!(ls.contains("/ok.txt") && !ls.contains("secret.txt"), "{ls}");
}

/// A marker used as file name, directory name, symlink target, xattr and content must not
/// appear in any stored byte.
#[test]
fn no_plaintext_in_the_repository() {
    let env = Env::new();
    let marker = "VAULT-PLAINTEXT-MARKER-7f3a";
    let src = env.path("src");
    let dir = src.join(marker);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(marker), marker.repeat(10)).unwrap();
    std::fs::write(src.join("plain"), marker).unwrap();
    std::os::unix::fs::symlink(marker, src.join("link")).unwrap();
    if xattrs_supported(&src) {
        xattr::set(src.join("plain"), format!("user.{marker}"), marker.as_bytes()).unwrap();
    }
    env.init();
    env.ok(&["backup", src.to_str().unwrap(), "--tag", marker, "--host", marker]);
    let mut scanned = 0;
    for p in walk(&env.repo) {
        if p.is_file() {
            let bytes = std::fs::read(&p).unwrap();
            assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "marker found in {}", p.display());
            scanned += 1;
        }
    }
    assert!(scanned >= 5, "only {scanned} files");
}

#[test]
fn restore_reports_damaged_data_and_restores_the_rest() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), noise(300_000, 1)).unwrap();
    std::fs::write(src.join("b"), noise(300_000, 2)).unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    // Damage the data pack in place (simulating bit rot).
    let pack = walk(&env.repo.join("data")).into_iter().find(|p| p.is_file()).unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&pack, &bytes).unwrap();
    let out_dir = env.path("out");
    let out = env.run(&["restore", "latest", "--target", out_dir.to_str().unwrap()]);
    assert_eq!(code(&out), 13, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("damaged") || err.contains("authentication"), "{err}");
    assert!(!err.contains("panicked"));
    let restored = out_dir.join(src.strip_prefix("/").unwrap());
    let ok = [("a", 1u64), ("b", 2)]
        .iter()
        .filter(|(n, seed)| std::fs::read(restored.join(n)).map(|d| d == noise(300_000, *seed)).unwrap_or(false))
        .count();
    assert_eq!(ok, 1, "exactly the undamaged file restores intact");
}

/// A repository on a file system that fills up: the backup fails with one line naming the
/// problem, and what it left behind passes `check` and is reused once there is room.
#[test]
fn full_disk_is_a_clean_error_and_the_repository_stays_sound() {
    let mut env = Env::new();
    let mnt = env.path("small-fs");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = |opts: &str| {
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !mount("size=6m") {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let repo = mnt.join("repo");
    env.set_repo_string(repo.to_str().unwrap());
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), common::noise(24 << 20, 11)).unwrap();
    let s = src.to_str().unwrap();
    let out = env.run(&["backup", s]);
    assert_clean_error(&out, 14, "No space left on device");
    assert!(env.ok(&["snapshots", "--json"]).trim() == "[]", "no snapshot may come of a failed backup");
    // With room again, the repository checks clean and the next backup completes.
    assert!(
        std::process::Command::new("mount")
            .args(["-o", "remount,size=64m"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success())
    );
    env.ok(&["check", "--read-data"]);
    env.ok(&["backup", s]);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn a_hanging_password_command_times_out_with_one_line() {
    let env = Env::new();
    env.init();
    for cmd in ["sleep 30", "echo secret; sleep 30 &"] {
        let started = std::time::Instant::now();
        let out = env
            .raw()
            .env_remove("VAULT_PASSWORD")
            .env("VAULT_PASSWORD_TIMEOUT", "1")
            .args(["-r", env.repo.to_str().unwrap(), "--password-command", cmd, "snapshots"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "{cmd}: {err}");
        assert!(err.contains("did not finish within 1 s") && err.trim().lines().count() == 1, "{cmd}: {err}");
        assert!(started.elapsed().as_secs() < 15, "{cmd}: took {:?}", started.elapsed());
    }
}
