//! What the binary tells about itself: version, completions, manual pages, help, errors
//! as JSON, and restic flags it does not have.

mod common;

use common::*;

#[test]
fn version_in_text_and_json() {
    let env = Env::new();
    let out = env.raw().arg("version").output().unwrap();
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("vault {}", env!("CARGO_PKG_VERSION"))));
    let out = env.raw().args(["version", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message_type"], "version");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["repository_format"], 1);
    // Subcommands have no -V of their own; `vault -V` works.
    assert_eq!(code(&env.raw().args(["backup", "-V"]).output().unwrap()), 2);
    assert_eq!(code(&env.raw().arg("-V").output().unwrap()), 0);
}

#[test]
fn completions_and_manual_pages() {
    let env = Env::new();
    for (shell, needle) in [("bash", "complete -F"), ("zsh", "#compdef vault"), ("fish", "complete -c vault")] {
        let out = env.raw().args(["generate", "completions", shell]).output().unwrap();
        assert_eq!(code(&out), 0, "{shell}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(needle) && text.contains("copy-chunker-params"), "{shell}");
    }
    if std::process::Command::new("bash").arg("--version").output().is_ok() {
        let script = env.path("vault.bash");
        std::fs::write(&script, env.raw().args(["generate", "completions", "bash"]).output().unwrap().stdout).unwrap();
        let ok = std::process::Command::new("bash").arg("-n").arg(&script).status().unwrap();
        assert!(ok.success(), "the bash completion script does not parse");
    }
    let out = env.raw().args(["generate", "man"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(".ie")
            || String::from_utf8_lossy(&out.stdout).contains(".TH vault")
    );
    let dir = env.path("man");
    let out = env.raw().args(["generate", "man", "--dir", dir.to_str().unwrap()]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for page in ["vault.1", "vault-backup.1", "vault-key.1", "vault-key-add.1", "vault-restore.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
    assert!(!dir.join("vault-bench-index.1").exists(), "hidden commands get no page");
    // Every page renders without warnings where man(1) is installed.
    if std::process::Command::new("man").arg("--version").output().is_ok() {
        let out = std::process::Command::new("man")
            .env("MANWIDTH", "80")
            .args(["--warnings", "-l"])
            .arg(dir.join("vault-backup.1"))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("--exclude-caches"));
    }
}

#[test]
fn help_separates_global_options() {
    let env = Env::new();
    let out = env.raw().args(["backup", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let global = text.find("Global options:").expect("a Global options heading");
    assert!(text[global..].contains("--repo"), "{text}");
    assert!(!text[..global].contains("--repo"), "{text}");
}

#[test]
fn restic_flags_vault_lacks_are_explained() {
    let env = Env::new();
    for (args, needle) in [
        (vec!["snapshots", "--no-lock"], "no locks"),
        (vec!["backup", "--no-scan", "/tmp"], "progress bar"),
        (vec!["check", "--verbose"], "backup -v"),
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle) && stderr(&out).contains("not available in vault"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("similar argument"), "{}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    // Other unknown flags keep clap's own message.
    let out = env.cmd().args(["snapshots", "--no-such-flag"]).output().unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--no-such-flag"), "{}", stderr(&out));
}

#[test]
fn errors_are_json_with_json() {
    let env = Env::new();
    let out = env.run(&["--json", "snapshots"]);
    assert_eq!(code(&out), 10);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&err).unwrap();
    assert_eq!(v["message_type"], "exit_error");
    assert_eq!(v["code"], 10);
    assert!(v["message"].as_str().unwrap().contains("does not exist"), "{v}");
}
