//! Profiles (`--profile NAME`): what they supply, what overrides them, their hooks, the
//! files vault refuses to trust, `config show`, and the schedules made from them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use common::*;

/// Writes profile `name` where `--profile name` finds it (HOME is the test's directory).
fn write_profile(env: &Env, name: &str, text: &str) -> PathBuf {
    let dir = env.dir.path().join(".config/vault/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// vault with the profile and nothing else: no -r, no VAULT_PASSWORD.
fn with_profile(env: &Env, name: &str) -> Command {
    let mut c = env.raw();
    c.env_remove("VAULT_PASSWORD").args(["--profile", name]);
    c
}

fn run(mut c: Command, args: &[&str]) -> std::process::Output {
    c.args(args).output().unwrap()
}

fn ok(c: Command, args: &[&str]) -> String {
    let out = run(c, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn setup(env: &Env, extra: &str) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"kept").unwrap();
    std::fs::write(src.join("skip.tmp"), b"left out").unwrap();
    let pw = env.path("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    write_profile(
        env,
        "home",
        &format!(
            "repository = {:?}\npassword-file = {:?}\n\n[backup]\nsources = [{:?}]\nexclude = [\"*.tmp\"]\ntags = [\"daily\"]\n\n[forget]\nkeep-last = 1\n\n[check]\nread-data = true\n{extra}",
            env.repo_string(),
            pw.to_str().unwrap(),
            src.to_str().unwrap()
        ),
    );
    src
}

#[test]
fn a_profile_supplies_what_flags_and_environment_do_not() {
    let env = Env::new();
    let src = setup(&env, "");
    ok(with_profile(&env, "home"), &["init"]);
    ok(with_profile(&env, "home"), &["backup"]);
    let listing = ok(with_profile(&env, "home"), &["ls", "latest"]);
    assert!(listing.contains("/f") && !listing.contains("skip.tmp"), "{listing}");
    let snaps = last_json(ok(with_profile(&env, "home"), &["snapshots", "--json"]).as_bytes());
    assert_eq!(snaps[0]["tags"], serde_json::json!(["daily"]));

    // Flags replace the profile's lists.
    ok(with_profile(&env, "home"), &["backup", "--tag", "manual", "--exclude", "nothing"]);
    let snaps = last_json(ok(with_profile(&env, "home"), &["snapshots", "--json", "--latest", "1"]).as_bytes());
    assert_eq!(snaps[0]["tags"], serde_json::json!(["manual"]));
    assert!(ok(with_profile(&env, "home"), &["ls", "latest"]).contains("skip.tmp"));
    // A path on the command line replaces the profile's sources.
    let other = env.path("other");
    std::fs::create_dir_all(&other).unwrap();
    ok(with_profile(&env, "home"), &["backup", other.to_str().unwrap()]);
    let snaps = last_json(
        ok(with_profile(&env, "home"), &["snapshots", "--json", "--path", other.to_str().unwrap()]).as_bytes(),
    );
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");

    // The environment outranks the profile, and flags outrank the environment.
    let nowhere = env.path("nowhere");
    let mut c = with_profile(&env, "home");
    c.env("VAULT_REPOSITORY", &nowhere);
    let out = run(c, &["snapshots"]);
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    let mut c = with_profile(&env, "home");
    c.env("VAULT_REPOSITORY", &nowhere).args(["-r", env.repo_string()]);
    ok(c, &["snapshots"]);
    let mut c = with_profile(&env, "home");
    c.env("VAULT_PASSWORD", "wrong");
    assert_eq!(code(&run(c, &["snapshots"])), 12);

    // Retention and the check budget come from the profile too.
    ok(with_profile(&env, "home"), &["forget"]);
    let snaps = last_json(ok(with_profile(&env, "home"), &["snapshots", "--json"]).as_bytes());
    assert_eq!(snaps.as_array().unwrap().len(), 2, "keep-last 1 per host and paths: {snaps}");
    let check = last_json(ok(with_profile(&env, "home"), &["check", "--json"]).as_bytes());
    assert!(check["packs_read"].as_u64().unwrap() > 0, "read-data from the profile: {check}");
    let _ = src;
}

#[test]
fn config_show_names_sources_and_hides_secrets() {
    let env = Env::new();
    setup(&env, "");
    let p = write_profile(
        &env,
        "secret",
        &format!(
            "repository = {:?}\npassword-command = \"echo hunter2-secret\"\noptions = [\"s3.secret-access-key=abc123secret\", \"timeout=30\"]\n",
            env.repo_string()
        ),
    );
    let shown = ok(with_profile(&env, "secret"), &["config", "show"]);
    assert!(shown.contains(p.to_str().unwrap()) && shown.contains(env.repo_string()), "{shown}");
    assert!(shown.contains("timeout=30") && shown.contains("command (not shown)"), "{shown}");
    assert!(!shown.contains("hunter2") && !shown.contains("abc123secret"), "{shown}");
    let v = last_json(ok(with_profile(&env, "secret"), &["--json", "config", "show"]).as_bytes());
    assert_eq!(v["message_type"], "config");
    assert_eq!(v["repository"], env.repo_string());
    assert!(!v.to_string().contains("abc123secret"), "{v}");
    let v = last_json(ok(with_profile(&env, "home"), &["--json", "config", "show"]).as_bytes());
    assert!(v["password"].as_str().unwrap().starts_with("file "), "{v}");
    assert_eq!(v["backup"]["tags"], serde_json::json!(["daily"]));
}

#[test]
fn hooks_run_around_commands_with_the_outcome() {
    let env = Env::new();
    let log = env.path("hooks.log");
    let l = log.to_str().unwrap();
    setup(
        &env,
        &format!(
            "\n[hooks]\nbefore = \"echo before $VAULT_COMMAND >> {l}; echo to-stdout\"\nsuccess = \"echo success $VAULT_COMMAND $VAULT_EXIT_CODE $VAULT_PROFILE >> {l}; cat > {l}.json\"\nfailure = \"echo failure $VAULT_COMMAND $VAULT_EXIT_CODE $VAULT_SUCCESS >> {l}; echo \\\"$VAULT_ERROR\\\" >> {l}\"\nafter = \"echo after >> {l}\"\n"
        ),
    );
    ok(with_profile(&env, "home"), &["init"]);
    std::fs::remove_file(&log).unwrap();
    // Hook output goes to stderr: stdout stays the command's JSON.
    let out = ok(with_profile(&env, "home"), &["--json", "backup"]);
    for line in out.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "before backup\nsuccess backup 0 home\nafter\n");
    // The hooks read the summary on their standard input, with or without --json.
    let summary = last_json(&std::fs::read(format!("{l}.json")).unwrap());
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["snapshot_id"], last_json(out.as_bytes())["snapshot_id"]);
    std::fs::remove_file(&log).unwrap();
    ok(with_profile(&env, "home"), &["backup"]);
    assert!(last_json(&std::fs::read(format!("{l}.json")).unwrap())["files_unchanged"].as_u64().unwrap() > 0);
    std::fs::remove_file(&log).unwrap();
    let out =
        run(with_profile(&env, "home"), &["restore", "nosuchsnapshot", "--target", env.path("t").to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("before restore\nfailure restore 1 0\n") && text.contains("nosuchsnapshot"), "{text}");
    assert!(text.ends_with("after\n"), "{text}");

    // A failing before hook: the command does not run.
    let before = snapshot_count_of(&env);
    let pw = env.path("pw");
    write_profile(
        &env,
        "blocked",
        &format!(
            "repository = {:?}\npassword-file = {:?}\n[backup]\nsources = [{:?}]\n[hooks]\nbefore = \"exit 4\"\nfailure = \"echo blocked >> {l}\"\n",
            env.repo_string(),
            pw.to_str().unwrap(),
            env.path("src").to_str().unwrap()
        ),
    );
    let out = run(with_profile(&env, "blocked"), &["backup"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("before hook failed"), "{}", stderr(&out));
    assert_eq!(snapshot_count_of(&env), before);
    assert!(std::fs::read_to_string(&log).unwrap().ends_with("blocked\n"));
}

fn snapshot_count_of(env: &Env) -> usize {
    last_json(env.ok(&["snapshots", "--json"]).as_bytes()).as_array().unwrap().len()
}

#[test]
fn profiles_vault_cannot_trust_or_read_are_refused() {
    let env = Env::new();
    let p = setup(&env, "");
    let _ = p;
    let file = env.dir.path().join(".config/vault/profiles/home.toml");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(with_profile(&env, "home"), &["snapshots"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("other users"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1);

    // A directory others may write to: they could put another profile in its place.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dir = file.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(with_profile(&env, "home"), &["snapshots"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("directory of profile"), "{}", stderr(&out));
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    ok(with_profile(&env, "home"), &["init"]);

    let out = run(with_profile(&env, "absent"), &["snapshots"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("absent.toml"), "{}", stderr(&out));

    write_profile(&env, "typo", "repositroy = \"/x\"\n");
    let out = run(with_profile(&env, "typo"), &["snapshots"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("repositroy"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn schedules_are_systemd_units_that_run_and_crontab_lines() {
    let env = Env::new();
    let profile = {
        setup(&env, "\n[schedule]\nbackup = \"daily\"\ncheck = \"Sun 04:00\"\n");
        env.dir.path().join(".config/vault/profiles/home.toml")
    };
    ok(with_profile(&env, "home"), &["init"]);
    let units = env.path("units");
    let u = units.to_str().unwrap();
    ok(env.raw(), &["schedule", "install", "home", "--unit-dir", u]);
    let service = std::fs::read_to_string(units.join("vault-home-backup.service")).unwrap();
    let timer = std::fs::read_to_string(units.join("vault-home-check.timer")).unwrap();
    assert!(timer.contains("OnCalendar=Sun 04:00") && timer.contains("Persistent=true"), "{timer}");
    assert!(service.contains(&format!("--profile \"{}\" backup", profile.display())), "{service}");
    assert!(service.contains("Type=oneshot") && service.contains("IOSchedulingClass=idle"), "{service}");
    // systemd's own parser accepts them (CI installs it).
    match Command::new("systemd-analyze")
        .arg("verify")
        .args(std::fs::read_dir(&units).unwrap().map(|e| e.unwrap().path()))
        .output()
    {
        Ok(out) => assert!(out.status.success(), "systemd-analyze verify: {}", stderr(&out)),
        Err(_) => assert!(std::env::var_os("CI").is_none(), "systemd-analyze is missing in CI"),
    }
    // The service's command line runs the profile's backup.
    let exec = service.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap().to_string();
    let out = Command::new("sh").arg("-c").arg(&exec).env("HOME", env.dir.path()).output().unwrap();
    assert!(out.status.success(), "{exec}: {}", stderr(&out));
    assert_eq!(snapshot_count_of(&env), 1);

    let status = ok(env.raw(), &["schedule", "status", "home", "--unit-dir", u]);
    assert!(status.contains("vault-home-backup.timer (backup, daily): installed"), "{status}");
    ok(env.raw(), &["schedule", "remove", "home", "--unit-dir", u]);
    assert_eq!(std::fs::read_dir(&units).unwrap().count(), 0);

    // Crontab lines for the calendar names cron has; others are refused.
    let out = run(env.raw(), &["schedule", "install", "home", "--cron"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("Sun 04:00"), "{}", stderr(&out));
    setup(&env, "\n[schedule]\nbackup = \"daily\"\n");
    let lines = ok(env.raw(), &["schedule", "install", "home", "--cron"]);
    assert!(
        lines.contains(&format!("0 3 * * * '{}' --profile '{}' -q backup", vault_bin().display(), profile.display())),
        "{lines}"
    );
    let out = run(env.raw(), &["schedule", "install", "nosuch"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}

/// The profile example in the user guide is a profile vault reads.
#[test]
fn the_user_guide_example_profile_parses() {
    let env = Env::new();
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/user-guide.md")).unwrap();
    let example = guide.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).expect("a toml example");
    write_profile(&env, "laptop", example);
    let v = last_json(ok(with_profile(&env, "laptop"), &["--json", "config", "show"]).as_bytes());
    assert_eq!(v["repository"], "sftp://backup@nas/srv/vault/laptop");
    assert_eq!(v["forget"]["keep-daily"], 7);
    assert_eq!(v["schedule"]["check"], "Sun 06:00");
    // And a backup without paths or a profile says what it needs.
    let out = env.run(&["backup"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("profile"), "{}", stderr(&out));
}
