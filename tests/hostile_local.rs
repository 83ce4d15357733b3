//! Other local users and planted names: what vault prints, the files it creates and the
//! directories it trusts cannot be turned against the user running it.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;

/// A file name that retitles the terminal and forges a line of output.
const EVIL: &str = "evil\u{1b}]0;pwned\u{7}\nvault: everything is fine";

#[test]
fn control_characters_in_names_are_shown_not_obeyed() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("plain"), "x").unwrap();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s]);
    std::fs::write(src.join(EVIL), "y").unwrap();
    env.ok(&["backup", s, "--tag", "t\u{1b}[31m"]);
    let ids: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&env.ok(&["snapshots", "--json"]))
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    let outputs = [
        env.ok(&["ls", "latest"]),
        env.ok(&["ls", "-l", "latest"]),
        env.ok(&["find", "evil*"]),
        env.ok(&["diff", &ids[0], &ids[1]]),
        env.ok(&["snapshots"]),
    ];
    for out in outputs {
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "raw control characters: {out:?}");
        assert!(!out.lines().any(|l| l.starts_with("vault: everything")), "a forged line: {out:?}");
        assert!(out.contains("\\x1b"), "the escape is not shown: {out:?}");
    }
    // JSON carries the name exactly.
    let json = env.ok(&["ls", "latest", "--json"]);
    assert!(json.contains("\\u001b]0;pwned"), "{json}");
}

#[test]
fn help_shows_no_secret_from_the_environment() {
    let env = Env::new();
    for args in [&["--help"][..], &["backup", "--help"], &["key", "add", "--help"]] {
        let out = env
            .raw()
            .env("VAULT_PASSWORD_COMMAND", "echo hunter2-cmd")
            .env("VAULT_PASSWORD_FILE", "/secret/hunter2-file")
            .env("VAULT_REPOSITORY", "s3://bucket/hunter2-repo")
            .env("VAULT_NEW_PASSWORD_COMMAND", "echo hunter2-new")
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(!text.contains("hunter2"), "{args:?} shows a secret: {text}");
    }
}

#[test]
fn a_local_repository_is_private() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), noise(10_000, 3)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&env.repo).unwrap().mode() & 0o777, 0o700);
    let files = walk(&env.repo);
    assert!(files.iter().any(|p| p.starts_with(env.repo.join("keys"))));
    for f in files.iter().filter(|p| p.is_file()) {
        assert_eq!(std::fs::metadata(f).unwrap().mode() & 0o077, 0, "{} is readable by others", f.display());
    }
}

#[test]
fn dump_writes_a_private_new_file_and_never_through_a_link() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("secret"), "the content").unwrap();
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let inner = format!("{}/secret", src.display());
    let out = env.path("out");
    env.ok(&["dump", "latest", &inner, "-t", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), b"the content");
    assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o777, 0o600);
    // It exists: refused unless --overwrite.
    let r = env.run(&["dump", "latest", &inner, "-t", out.to_str().unwrap()]);
    assert_eq!(code(&r), 1);
    assert!(stderr(&r).contains("--overwrite"), "{}", stderr(&r));
    env.ok(&["dump", "latest", &inner, "-t", out.to_str().unwrap(), "--overwrite"]);
    // A planted link is never followed, not even with --overwrite.
    let victim = env.path("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let link = env.path("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    for extra in [&[][..], &["--overwrite"]] {
        let mut args = vec!["dump", "latest", &inner, "-t", link.to_str().unwrap()];
        args.extend_from_slice(extra);
        let r = env.run(&args);
        assert_ne!(code(&r), 0);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    }
}

#[test]
fn a_cache_or_state_directory_of_another_user_is_not_used() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: not root; skipping");
        return;
    }
    let env = Env::new();
    env.init();
    let cache = env.path("planted-cache");
    std::fs::create_dir(&cache).unwrap();
    nix::unistd::chown(&cache, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let out = env.cmd().arg("--cache-dir").arg(&cache).arg("snapshots").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("local cache disabled") && stderr(&out).contains("belongs to user 65534"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0, "vault wrote into another user's directory");
}

#[test]
fn a_config_resealed_by_a_key_holder_is_refused_until_accepted() {
    use vault_format::config::Config;
    use vault_format::keyfile::KeyFile;
    let env = Env::new();
    env.ok(&["init", "--padding", "padme"]);
    env.ok(&["snapshots"]);
    // A key holder turns padding off for every writer.
    let b = env.backend();
    let key = b.list("keys").unwrap().remove(0).path;
    let keys = KeyFile::from_json(&b.read(&key).unwrap()).unwrap().unwrap_master(PASSWORD.as_bytes()).unwrap();
    let mut config = Config::decode(&keys, &b.read("config").unwrap()).unwrap();
    config.padding = vault_format::blob::Padding::None;
    b.delete("config").unwrap();
    b.write("config", config.encode(&keys).unwrap()).unwrap();
    let out = env.run(&["snapshots"]);
    assert_eq!(code(&out), 15, "{}", stderr(&out));
    assert!(stderr(&out).contains("config changed") && stderr(&out).contains("padme"), "{}", stderr(&out));
    let out = env.run(&["backup", env.dir.path().to_str().unwrap()]);
    assert_eq!(code(&out), 15, "a backup ran under the weakened config: {}", stderr(&out));
    env.ok(&["snapshots", "--accept-config-change"]);
    env.ok(&["snapshots"]);
}

#[test]
fn restore_refuses_a_target_others_could_redirect() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // A directory anyone may write to, without the sticky bit.
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let target = shared.join("out");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("can be written by other users"), "{}", stderr(&out));
    assert!(!target.exists());
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap(), "--insecure-target"]);
    // Sticky (like /tmp) is fine.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    env.ok(&["restore", "latest", "--target", shared.join("out2").to_str().unwrap()]);
    if nix::unistd::geteuid().is_root() {
        // A link another user planted where the target should be created.
        let victim = env.path("root-only");
        std::fs::create_dir(&victim).unwrap();
        let link = shared.join("planted");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &link,
            Some(nix::unistd::Uid::from_raw(65534)),
            Some(nix::unistd::Gid::from_raw(65534)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let out = env.run(&["restore", "latest", "--target", link.to_str().unwrap()]);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("symbolic link of user 65534"), "{}", stderr(&out));
        assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
    }
}

/// While a restore runs, every directory it made is its user's alone; the snapshot's mode
/// (here 0777) is applied once the directory is complete.
#[test]
fn restored_directories_stay_private_until_complete() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    let open = src.join("open");
    std::fs::create_dir_all(&open).unwrap();
    for i in 0..40 {
        std::fs::write(open.join(format!("f{i}")), noise(1 << 20, i)).unwrap();
    }
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("out");
    let watched = target.join(open.strip_prefix("/").unwrap());
    let mut child = env
        .cmd()
        .args(["restore", "latest", "--target", target.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut modes = std::collections::BTreeSet::new();
    while child.try_wait().unwrap().is_none() {
        if let Ok(m) = std::fs::symlink_metadata(&watched) {
            modes.insert(m.mode() & 0o7777);
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::metadata(&watched).unwrap().mode() & 0o7777, 0o777);
    modes.remove(&0o777); // the final state, possibly seen just before the process ended
    let shown: Vec<String> = modes.iter().map(|m| format!("{m:o}")).collect();
    assert!(modes.iter().all(|m| *m == 0o700), "modes seen during the restore: {shown:?}");
    assert!(!modes.is_empty(), "the restore ended before the directory was seen");
}

/// A root restore of a snapshot it did not make: device nodes, setuid files, file
/// capabilities and trusted.* attributes are named in the summary; capabilities and
/// trusted.* are set only when asked for, and --no-special / --no-setuid leave the rest out.
#[test]
fn privileged_objects_are_named_and_can_be_left_out() {
    use std::os::unix::fs::FileTypeExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: not root; skipping");
        return;
    }
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    nix::sys::stat::mknod(
        &src.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    std::fs::write(src.join("suid"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(src.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(src.join("capped"), "x").unwrap();
    // vfs_cap_data v2: effective, permitted = CAP_NET_BIND_SERVICE.
    let mut cap = Vec::new();
    for w in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
        cap.extend_from_slice(&w.to_le_bytes());
    }
    let have_caps = xattr::set(src.join("capped"), "security.capability", &cap).is_ok();
    let have_trusted = xattr::set(src.join("capped"), "trusted.vault-test", b"t").is_ok();
    eprintln!("file capabilities settable: {have_caps}, trusted.* settable: {have_trusted}");
    xattr::set(src.join("capped"), "user.note", b"n").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);

    let restore = |name: &str, extra: &[&str]| -> (std::path::PathBuf, serde_json::Value, String) {
        let target = env.path(name);
        let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let json = env.ok(&args);
        let human = {
            let t2 = env.path(&format!("{name}-human"));
            let mut a = vec!["restore", "latest", "--target", t2.to_str().unwrap()];
            a.extend_from_slice(extra);
            env.ok(&a)
        };
        let summary: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
        (target.join(src.strip_prefix("/").unwrap()), summary, human)
    };
    let (out, s, human) = restore("default", &[]);
    assert_eq!(s["privileged"]["devices"], 1);
    assert_eq!(s["privileged"]["setuid_files"], 1);
    assert!(human.contains("privileged objects created: 1 device nodes, 1 setuid/setgid files"), "{human}");
    assert!(std::fs::symlink_metadata(out.join("null")).unwrap().file_type().is_char_device());
    assert_eq!(std::fs::metadata(out.join("suid")).unwrap().mode() & 0o7777, 0o4755);
    assert_eq!(xattr::get(out.join("capped"), "user.note").unwrap().as_deref(), Some(&b"n"[..]));
    assert!(xattr::get(out.join("capped"), "security.capability").unwrap().is_none());
    assert!(xattr::get(out.join("capped"), "trusted.vault-test").unwrap().is_none());
    let skipped = u64::from(have_caps) + u64::from(have_trusted);
    assert_eq!(s["privileged"]["xattrs_skipped"], skipped);

    let (out, s, _) = restore("strict", &["--no-special", "--no-setuid", "--xattr-include", "*"]);
    assert_eq!(s["privileged"]["devices"], 0);
    assert_eq!(s["privileged"]["special_skipped"], 1);
    assert!(!out.join("null").exists());
    assert_eq!(std::fs::metadata(out.join("suid")).unwrap().mode() & 0o7777, 0o755);
    if have_caps {
        assert_eq!(s["privileged"]["capabilities"], 1);
        assert_eq!(xattr::get(out.join("capped"), "security.capability").unwrap(), Some(cap.clone()));
    }
    if have_trusted {
        assert_eq!(xattr::get(out.join("capped"), "trusted.vault-test").unwrap().as_deref(), Some(&b"t"[..]));
    }
}

/// The attack of a user who may write to the target (`--insecure-target`): while root
/// restores, they swap each directory the restore made for a link to a root-only
/// directory, over and over. Every step goes through descriptors that follow no link, so
/// the swapped entries fail one by one and the root-only directory is never touched: not
/// chmod'ed, nothing created in it.
#[test]
fn a_directory_swapped_for_a_link_during_a_restore_redirects_nothing() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (the attacker runs as nobody)");
        return;
    }
    let env = Env::new();
    env.init();
    let src = env.path("src");
    for d in ["d", "d/e"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        for i in 0..150 {
            std::fs::write(src.join(d).join(format!("f{i}")), noise(2_000, i)).unwrap();
        }
        std::fs::set_permissions(src.join(d), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::os::unix::fs::symlink("f0", src.join("d/link")).unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "-q"]);
    let victim = env.path("root-only");
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(victim.join("secret"), "s").unwrap();
    // Reachable by nobody: a directory of its own in /tmp that anyone may write to.
    let shared = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let stop = shared.path().join("stop");
    let attacker = r#"
import os, sys, time
shared, victim, stop = sys.argv[1:4]
swaps = 0
while not os.path.exists(stop):
    for out in os.listdir(shared):
        for rel in ("d", "d/e"):
            top = os.path.join(shared, out, rel)
            try:
                os.rename(top, top + ".x")
            except OSError:
                continue
            try:
                os.symlink(victim, top)
                swaps += 1
                time.sleep(0.001)
                os.unlink(top)
            except OSError:
                pass
            try:
                os.rename(top + ".x", top)
            except OSError:
                pass
    time.sleep(0.0002)
print(swaps)
"#;
    use std::os::unix::process::CommandExt;
    let spy = std::process::Command::new("python3")
        .args(["-c", attacker, shared.path().to_str().unwrap(), victim.to_str().unwrap(), stop.to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let snap = format!("latest:{}", src.display());
    let mut refused = 0;
    for round in 0..12 {
        let target = shared.path().join(format!("out{round}"));
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = env.run(&["restore", &snap, "--target", target.to_str().unwrap(), "--insecure-target", "-q"]);
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
        if stderr(&out).contains("symbolic links") {
            assert_eq!(code(&out), 1, "each swapped entry is reported: {}", stderr(&out));
            refused += 1;
        }
        if refused >= 3 {
            break;
        }
    }
    std::fs::write(&stop, "").unwrap();
    let swaps: u64 = String::from_utf8(spy.wait_with_output().unwrap().stdout).unwrap().trim().parse().unwrap();
    let mode = std::fs::metadata(&victim).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o700, "the root-only directory was chmod'ed through a swapped link");
    let names: Vec<_> = std::fs::read_dir(&victim).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["secret"], "the restore wrote into the root-only directory");
    assert_eq!(std::fs::read(victim.join("secret")).unwrap(), b"s");
    assert!(swaps > 0 && refused > 0, "the attack never raced the restore ({swaps} swaps, {refused} refused)");
}
