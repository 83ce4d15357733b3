//! The README's short tour, run line by line as a reader would run it, in a sandbox:
//! a home directory of its own with documents in it, and the tour's absolute paths moved
//! inside the sandbox. A tour line that stops working fails here. (Every other documented
//! command line is parsed against the CLI by the unit tests in src/cli/docs_examples.rs.)

use std::path::Path;
use std::process::Command;

/// The fenced `sh` block that follows `heading` in `markdown`.
fn block_after(markdown: &str, heading: &str) -> String {
    let rest = &markdown[markdown.find(heading).unwrap_or_else(|| panic!("no {heading:?} in README.md"))..];
    let start = rest.find("```sh\n").expect("a sh block after the heading") + "```sh\n".len();
    let len = rest[start..].find("\n```").expect("the block's end");
    rest[start..start + len].to_string()
}

/// Lines the sandbox cannot run, with why; each must still be in the tour (so this list
/// cannot silently outlive the text).
const NOT_RUN: [(&str, &str); 3] = [
    ("vault mount ", "FUSE mounts block until unmounted (tests/mount.rs drives them)"),
    ("vault -r sftp://me@nas", "no server named nas here (tests/remote.rs runs SFTP)"),
    ("vault -r s3://bucket/laptop", "no s3.example.com here (tests/remote.rs runs S3)"),
];

#[test]
fn readme_tour_runs() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let tour = block_after(&readme, "## A short tour");
    let sandbox = tempfile::tempdir().unwrap();
    let root = sandbox.path();
    let home = root.join("home/me");

    // What a reader has before starting: documents, pictures, a password file.
    let docs = home.join("Documents");
    std::fs::create_dir_all(docs.join("thesis")).unwrap();
    std::fs::write(docs.join("thesis/main.tex"), "\\documentclass{article}\n").unwrap();
    std::fs::write(docs.join("letter.pdf"), vec![7u8; 300_000]).unwrap();
    std::fs::write(docs.join("notes.txt"), "notes\n").unwrap();
    std::fs::write(docs.join("scratch.tmp"), "excluded\n").unwrap();
    std::fs::create_dir_all(home.join("Pictures")).unwrap();
    std::fs::write(home.join("Pictures/cat.jpg"), vec![1u8; 100_000]).unwrap();
    std::fs::create_dir_all(home.join(".config/vault")).unwrap();
    std::fs::write(home.join(".config/vault/pw"), "correct horse battery staple\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home.join(".config/vault/pw"), std::fs::Permissions::from_mode(0o600)).unwrap();

    // Join continued lines, drop the ones listed above, move absolute paths inside.
    let mut script = String::from("set -euo pipefail\n");
    let mut skipped = vec![false; NOT_RUN.len()];
    let mut pending = String::new();
    for line in tour.lines() {
        if let Some(part) = line.strip_suffix('\\') {
            pending.push_str(part);
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(i) = NOT_RUN.iter().position(|(part, _)| line.contains(part)) {
            skipped[i] = true;
            continue;
        }
        let moved = line
            .replace("/srv/", &format!("{}/srv/", root.display()))
            .replace("/home/me", &home.display().to_string())
            .replace("/tmp/restored", &format!("{}/tmp/restored", root.display()));
        script.push_str(&format!("echo '+ {}'\n{moved}\n", moved.replace('\'', "")));
    }
    for (i, done) in skipped.iter().enumerate() {
        assert!(done, "README's tour no longer has a line with {:?}: update NOT_RUN", NOT_RUN[i].0);
    }

    let vault = Path::new(env!("CARGO_BIN_EXE_vault"));
    let path = format!("{}:{}", vault.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", root.join("cache"))
        .current_dir(root)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the tour failed ({}):\n{stdout}\n{stderr}", out.status);

    // What the tour promises.
    // `latest:DIR` restores what DIR held into the target.
    let restored = root.join("tmp/restored");
    assert_eq!(std::fs::read(restored.join("letter.pdf")).unwrap(), vec![7u8; 300_000]);
    assert!(!restored.join("notes.txt").exists(), "--include '*.pdf' restored other files");
    assert!(stdout.contains("main.tex"), "find did not list the .tex file:\n{stdout}");
    assert!(!stdout.contains("scratch.tmp"), "the excluded file was backed up:\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.trim().parse::<u64>().is_ok(), "jq .bytes_added printed {last:?}");
}
