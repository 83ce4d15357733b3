//! diff, find, dump and stats on real snapshots.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use common::scenarios::set_mtime;
use common::*;
use serde_json::Value;

fn json_lines(s: &str) -> Vec<Value> {
    s.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn changes(lines: &[Value]) -> BTreeMap<String, String> {
    lines
        .iter()
        .filter(|v| v.get("change").is_some())
        .map(|v| (v["path"].as_str().unwrap().to_string(), v["change"].as_str().unwrap().to_string()))
        .collect()
}

fn make(src: &std::path::Path) {
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("keep"), b"same").unwrap();
    std::fs::write(src.join("edit"), b"before").unwrap();
    std::fs::write(src.join("gone"), b"x").unwrap();
    std::fs::write(src.join("chmod"), b"y").unwrap();
    std::fs::write(src.join("d/typechange"), b"file").unwrap();
}

fn mutate(src: &std::path::Path) {
    std::fs::write(src.join("edit"), b"after, longer").unwrap();
    std::fs::remove_file(src.join("gone")).unwrap();
    std::fs::write(src.join("new"), b"new file").unwrap();
    std::fs::set_permissions(src.join("chmod"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(src.join("d/typechange")).unwrap();
    std::fs::create_dir(src.join("d/typechange")).unwrap();
}

#[test]
fn diff_between_snapshots_and_against_a_directory() {
    let env = Env::new();
    let src = env.path("src");
    make(&src);
    env.init();
    let s = src.to_str().unwrap();
    let first = env.backup_json(&[s])["snapshot_id"].as_str().unwrap().to_string();
    mutate(&src);
    // Against the live directory before the second backup.
    let live = changes(&json_lines(&env.ok(&["diff", "--json", &first[..8], s])));
    let second = env.backup_json(&[s])["snapshot_id"].as_str().unwrap().to_string();
    let lines = json_lines(&env.ok(&["diff", "--json", &first[..8], &second[..8]]));
    let got = changes(&lines);
    let p = |n: &str| format!("{s}/{n}");
    let expected: BTreeMap<String, String> = [
        (p("edit"), "modified"),
        (p("gone"), "removed"),
        (p("new"), "added"),
        (p("chmod"), "metadata"),
        (p("d/typechange"), "type_changed"),
    ]
    .into_iter()
    .map(|(a, b)| (a, b.to_string()))
    .collect();
    // Directories whose mtime changed show up as metadata changes too (the source's ancestors, like
    // /tmp, change under concurrent tests); compare the entries below the source only.
    let below = format!("{s}/");
    let files = |m: &BTreeMap<String, String>| {
        m.iter()
            .filter(|(k, _)| k.starts_with(&below) && !k.ends_with("/d"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(files(&got), expected, "{lines:?}");
    assert_eq!(files(&live), expected);
    let summary = lines.last().unwrap();
    assert_eq!(summary["summary"]["added"], 1);
    assert_eq!(summary["summary"]["removed"], 1);
    // A path restricts the comparison; the human form has a summary line.
    let only_d = env.ok(&["diff", &first[..8], &second[..8], &format!("{s}/d")]);
    assert!(only_d.contains("typechange") && !only_d.contains("edit"), "{only_d}");
    // A same-size, same-mtime content change is found only with --content.
    std::fs::write(src.join("keep"), b"SAME").unwrap();
    set_mtime(&src.join("keep"), 1_600_000_000, 0);
    env.ok(&["backup", "--force", s]);
    std::fs::write(src.join("keep"), b"same").unwrap();
    set_mtime(&src.join("keep"), 1_600_000_000, 0);
    let with = changes(&json_lines(&env.ok(&["diff", "--json", "--content", "latest", s])));
    assert_eq!(with.get(&p("keep")).map(String::as_str), Some("modified"), "{with:?}");
}

#[test]
fn find_lists_versions_over_time() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/report.txt"), b"v1").unwrap();
    std::fs::write(src.join("other.log"), b"x").unwrap();
    set_mtime(&src.join("sub/report.txt"), 1_700_000_000, 0);
    env.init();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s]);
    env.ok(&["backup", s]);
    std::fs::write(src.join("sub/report.txt"), b"v2!").unwrap();
    set_mtime(&src.join("sub/report.txt"), 1_750_000_000, 0);
    env.ok(&["backup", s]);
    let found: Value = serde_json::from_str(&env.ok(&["find", "--json", "report*"])).unwrap();
    let arr = found.as_array().unwrap();
    assert_eq!(arr.len(), 1, "{found}");
    assert!(arr[0]["path"].as_str().unwrap().ends_with("/sub/report.txt"));
    let versions = arr[0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    let changed: Vec<bool> = versions.iter().map(|v| v["changed"].as_bool().unwrap()).collect();
    assert_eq!(changed, vec![true, false, true]);
    // Time filters look at the file's mtime.
    let newer: Value = serde_json::from_str(&env.ok(&["find", "--json", "report*", "--newer", "2025-01-01"])).unwrap();
    assert_eq!(newer[0]["versions"].as_array().unwrap().len(), 1);
    let older: Value = serde_json::from_str(&env.ok(&["find", "--json", "*.log", "--older", "2000-01-01"])).unwrap();
    assert_eq!(older.as_array().unwrap().len(), 0);
    let by_path: Value =
        serde_json::from_str(&env.ok(&["find", "--json", "*", "--path", &format!("{s}/sub")])).unwrap();
    assert!(by_path.as_array().unwrap().iter().all(|f| f["path"].as_str().unwrap().contains("/sub")), "{by_path}");
    let out = env.run(&["find", "x", "--newer", "yesterday-ish"]);
    assert_eq!(code(&out), 1);
}

#[test]
fn dump_files_and_archives() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("d/e")).unwrap();
    std::fs::write(src.join("d/big"), noise(3_000_000, 4)).unwrap();
    std::fs::write(src.join("d/e/small"), b"small").unwrap();
    std::os::unix::fs::symlink("big", src.join("d/link")).unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let big = env.cmd().args(["dump", "latest", &format!("{}/d/big", src.display())]).output().unwrap();
    assert!(big.status.success());
    assert_eq!(big.stdout, noise(3_000_000, 4));
    // A directory as tar, extracted again.
    let tarball = env.path("d.tar");
    env.ok(&["dump", "latest", &format!("{}/d", src.display()), "--target", tarball.to_str().unwrap()]);
    let out = env.path("untar");
    std::fs::create_dir_all(&out).unwrap();
    let st = std::process::Command::new("tar").arg("-xpf").arg(&tarball).arg("-C").arg(&out).status().unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(out.join("d/big")).unwrap(), noise(3_000_000, 4));
    assert_eq!(std::fs::read(out.join("d/e/small")).unwrap(), b"small");
    assert_eq!(std::fs::read_link(out.join("d/link")).unwrap().to_str().unwrap(), "big");
    // As zip, to stdout.
    let zip = env.cmd().args(["dump", "latest", &format!("{}/d", src.display()), "--archive", "zip"]).output().unwrap();
    assert!(zip.status.success(), "{}", String::from_utf8_lossy(&zip.stderr));
    let zpath = env.path("d.zip");
    std::fs::write(&zpath, &zip.stdout).unwrap();
    let check = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.read('d/e/small') == b'small'; assert len(z.read('d/big')) == 3000000; print(sorted(z.namelist()))")
        .arg(&zpath)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let out = env.run(&["dump", "latest", "/no/such/file"]);
    assert_eq!(code(&out), 1);

    // Not onto a terminal (a pseudo-terminal from script(1)), and no --json.
    let mut base = env.cmd();
    base.args(["dump", "latest", &format!("{}/d", src.display())]);
    let quoted = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line =
        std::iter::once(quoted(base.get_program())).chain(base.get_args().map(quoted)).collect::<Vec<_>>().join(" ");
    let mut tty = std::process::Command::new("script");
    tty.env_clear().args(["-qec", &line, "/dev/null"]).stdin(std::process::Stdio::null());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            tty.env(k, v);
        }
    }
    let out = tty.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 2, "{text}");
    assert!(text.contains("standard output is a terminal"), "{text}");
    let out = env.run(&["--json", "dump", "latest", &format!("{}/d/e/small", src.display())]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn stats_report_dedup_and_compression() {
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("text"), "compressible text\n".repeat(100_000)).unwrap();
    std::fs::write(src.join("noise"), noise(1_000_000, 1)).unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["backup", "--force", src.to_str().unwrap()]);
    let st: Value = serde_json::from_str(&env.ok(&["stats", "--json"])).unwrap();
    assert_eq!(st["snapshots"], 2);
    assert_eq!(st["files"], 4);
    assert_eq!(st["restore_size"], 2 * (1_800_000 + 1_000_000));
    assert_eq!(st["unique_data_size"], 1_800_000 + 1_000_000);
    assert!((st["dedup_ratio"].as_f64().unwrap() - 2.0).abs() < 0.01, "{st}");
    assert!(st["compression_ratio"].as_f64().unwrap() > 1.5, "{st}");
    let one: Value = serde_json::from_str(&env.ok(&["stats", "--json", "latest"])).unwrap();
    assert_eq!(one["snapshots"], 1);
    assert!(env.ok(&["stats"]).contains("Dedup ratio"));
}

/// `vault find … | head` must end quietly when the reader goes away.
#[test]
fn closed_stdout_is_not_a_panic() {
    use std::io::Read;
    let env = Env::new();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3000 {
        std::fs::write(src.join(format!("a-rather-long-file-name-to-fill-the-pipe-{i:05}")), b"x").unwrap();
    }
    env.init();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    let mut child = env
        .cmd()
        .args(["find", "a-rather*"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
