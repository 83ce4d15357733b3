//! Backup inputs and filters on a local repository: `--tag a,b`, sources that do not
//! exist, `--files-from`, `--stdin`, `--stdin-from-command`, the exclude options,
//! `--dry-run`, `--skip-if-unchanged` and `-v` (streams also run on SFTP and S3 in
//! remote.rs).

mod common;

use common::input_scenarios::*;
use common::{Env, Kind, code, stderr};

fn snapshots(env: &Env) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&env.ok(&["snapshots", "--json"])).unwrap().as_array().unwrap().clone()
}

fn listing(env: &Env) -> String {
    env.ok(&["ls", "latest"])
}

#[test]
fn streams_are_backed_up_local() {
    streams_are_backed_up(Kind::Local);
}

#[test]
fn an_interrupted_backup_resumes_local() {
    an_interrupted_backup_resumes(Kind::Local);
}

#[test]
fn comma_separated_tags_are_several_tags() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    env.ok(&["backup", "--tag", "daily,db", "--tag", "offsite", src.to_str().unwrap()]);
    let snaps = snapshots(&env);
    assert_eq!(snaps[0]["tags"], serde_json::json!(["daily", "db", "offsite"]));
    for t in ["daily", "db", "daily,offsite"] {
        let found = env.ok(&["snapshots", "--json", "--tag", t]);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&found).unwrap().as_array().unwrap().len(), 1, "{t}");
    }
}

#[test]
fn a_missing_source_costs_only_itself() {
    let env = Env::new();
    env.init();
    let docs = env.path("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a"), b"kept").unwrap();
    let disk = env.path("unmounted-disk");
    std::fs::create_dir_all(&disk).unwrap();
    std::fs::write(disk.join("b"), vec![7u8; 100_000]).unwrap();
    env.ok(&["backup", docs.to_str().unwrap(), disk.to_str().unwrap()]);
    std::fs::remove_dir_all(&disk).unwrap();

    let out = env.run(&["backup", "--json", docs.to_str().unwrap(), disk.to_str().unwrap()]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("unmounted-disk"), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    // The snapshot of both sources is its parent: the file still there is not read.
    assert_eq!(summary["files_unchanged"], 1, "{summary}");
    assert_eq!(summary["bytes_read"], 0, "{summary}");
    let snaps = snapshots(&env);
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[1]["paths"], serde_json::json!([docs.to_str().unwrap()]));
    assert!(listing(&env).contains("/a") && !listing(&env).contains("/b"));

    let fail = env.run(&["backup", "--missing-source", "fail", docs.to_str().unwrap(), disk.to_str().unwrap()]);
    assert_eq!(code(&fail), 1, "{}", stderr(&fail));
    assert_eq!(snapshots(&env).len(), 2);
    let none = env.run(&["backup", disk.to_str().unwrap()]);
    assert_eq!(code(&none), 1, "{}", stderr(&none));
    assert_eq!(snapshots(&env).len(), 2);
}

#[test]
fn paths_come_from_lists() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    for d in ["one", "two", "three", "with\nnewline"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        std::fs::write(src.join(d).join("f"), d.as_bytes()).unwrap();
    }
    let list = env.path("list");
    let s = src.to_str().unwrap();
    std::fs::write(&list, format!("# my sources\n{s}/one\n\n{s}/two\r\n")).unwrap();
    env.ok(&["backup", "--files-from", list.to_str().unwrap()]);
    let ls = listing(&env);
    assert!(ls.contains("/one/f") && ls.contains("/two/f") && !ls.contains("three"), "{ls}");

    let raw = env.path("raw");
    std::fs::write(&raw, format!("{s}/three\0{s}/with\nnewline\0")).unwrap();
    env.ok(&["backup", "--files-from-raw", raw.to_str().unwrap()]);
    let ls = listing(&env);
    assert!(ls.contains("/three/f") && ls.contains("newline") && !ls.contains("/one"), "{ls}");

    // Bad input: a list that does not exist, a list naming nothing, stdin with a path.
    let gone = env.run(&["backup", "--files-from", env.path("nope").to_str().unwrap()]);
    assert_eq!(code(&gone), 2, "{}", stderr(&gone));
    assert_eq!(stderr(&gone).lines().count(), 1, "{}", stderr(&gone));
    let empty = env.path("empty");
    std::fs::write(&empty, "# nothing\n").unwrap();
    assert_eq!(code(&env.run(&["backup", "--files-from", empty.to_str().unwrap()])), 2);
    let both = env.run(&["backup", "--stdin", s]);
    assert_eq!(code(&both), 2, "{}", stderr(&both));
    // An unreadable entry in a list is a missing source: the rest is backed up.
    std::fs::write(&list, format!("{s}/one\n{s}/not-there\n")).unwrap();
    let partial = env.run(&["backup", "--files-from", list.to_str().unwrap()]);
    assert_eq!(code(&partial), 3, "{}", stderr(&partial));
}

#[test]
fn exclude_options_leave_out_what_they_name() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    for d in ["keep", "cache", "fake-cache", "project/.git", "marked"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        std::fs::write(src.join(d).join("data"), b"x").unwrap();
    }
    std::fs::write(src.join("cache/CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n")
        .unwrap();
    std::fs::write(src.join("fake-cache/CACHEDIR.TAG"), b"not a real tag").unwrap();
    std::fs::write(src.join("marked/.nobackup"), b"").unwrap();
    std::fs::write(src.join("keep/Movie.MKV"), b"big").unwrap();
    std::fs::write(src.join("keep/large.bin"), vec![1u8; 300_000]).unwrap();
    std::fs::write(src.join("keep/small.bin"), vec![1u8; 1000]).unwrap();
    env.ok(&[
        "backup",
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
        "--iexclude",
        "*.mkv",
        "--exclude-larger-than",
        "100K",
        src.to_str().unwrap(),
    ]);
    let ls = listing(&env);
    for present in ["/keep/data", "/keep/small.bin", "/fake-cache/data", "/project/.git/data"] {
        assert!(ls.contains(present), "{present} missing:\n{ls}");
    }
    for absent in ["/cache", "/marked", "Movie.MKV", "large.bin"] {
        assert!(!ls.contains(absent), "{absent} stored:\n{ls}");
    }
    let bad = env.run(&["backup", "--exclude-larger-than", "lots", src.to_str().unwrap()]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
    let bad = env.run(&["backup", "--exclude-if-present", "a/b", src.to_str().unwrap()]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
}

#[test]
fn dry_runs_store_nothing_and_unchanged_trees_can_be_skipped() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), common::noise(200_000, 1)).unwrap();
    let before = env.stored();
    let out = env.ok(&["backup", "--dry-run", "--json", src.to_str().unwrap()]);
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["snapshot_id"], serde_json::Value::Null, "{summary}");
    assert!(summary["bytes_added"].as_u64().unwrap() >= 200_000, "{summary}");
    assert_eq!(env.stored(), before, "a dry run stored something");

    env.ok(&["backup", src.to_str().unwrap()]);
    let again = env.ok(&["backup", "--skip-if-unchanged", src.to_str().unwrap()]);
    assert!(again.contains("no snapshot saved"), "{again}");
    assert_eq!(snapshots(&env).len(), 1);
    std::fs::write(src.join("b"), b"new").unwrap();
    let verbose = env.ok(&["backup", "--skip-if-unchanged", "-v", src.to_str().unwrap()]);
    assert_eq!(snapshots(&env).len(), 2);
    assert!(verbose.lines().any(|l| l.starts_with("new") && l.contains("/src/b")), "{verbose}");
    assert!(verbose.lines().any(|l| l.starts_with("unchanged") && l.contains("/src/a")), "{verbose}");
    let json = env.ok(&["backup", "-v", "--json", "--force", src.to_str().unwrap()]);
    assert!(json.lines().any(|l| l.contains("\"verbose_status\"") && l.contains("\"action\":\"new\"")), "{json}");
}

#[test]
fn a_source_is_recorded_where_the_tree_holds_it() {
    let env = Env::new();
    env.init();
    let home = env.path("home");
    let docs = home.join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    for i in 0..5 {
        std::fs::write(docs.join(format!("sub/f{i}")), format!("file {i}")).unwrap();
    }
    let run_in = |dir: &std::path::Path, args: &[&str]| {
        let out = env.cmd().current_dir(dir).args(args).output().unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run_in(&home, &["backup", "./docs/"]);
    let abs = docs.to_str().unwrap();
    let snaps = snapshots(&env);
    assert_eq!(snaps[0]["paths"], serde_json::json!([abs]));
    // The path `snapshots` shows is where ls and restore find it.
    assert!(env.ok(&["ls", "latest", abs]).contains("sub/f4"));
    let target = env.path("restored");
    env.ok(&["restore", &format!("latest:{abs}"), "--target", target.to_str().unwrap()]);
    assert_eq!(std::fs::read(target.join("sub/f2")).unwrap(), b"file 2");
    // The same directory named absolutely is the same source: nothing is read again.
    let again = env.backup_json(&[abs]);
    assert_eq!(again["parent"], snaps[0]["id"], "{again}");
    assert_eq!(again["bytes_read"], 0, "{again}");
    // From inside it, `.` is the same source too, and diff against it finds no change.
    let dot = run_in(&docs, &["backup", "--json", "."]);
    let dot: serde_json::Value = serde_json::from_str(dot.lines().last().unwrap()).unwrap();
    assert_eq!(dot["bytes_read"], 0, "{dot}");
    let diff = run_in(&docs, &["diff", "--json", "latest", "."]);
    let summary: serde_json::Value = serde_json::from_str(diff.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["added"], 0, "{diff}");
    assert_eq!(summary["summary"]["removed"], 0, "{diff}");
    // --path takes the same forms.
    let found = run_in(&home, &["snapshots", "--json", "--path", "docs/"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&found).unwrap().as_array().unwrap().len(), 3);
}

#[test]
fn diff_against_a_directory_leaves_out_what_the_backup_left_out() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("build")).unwrap();
    std::fs::write(src.join("kept.txt"), b"kept").unwrap();
    std::fs::write(src.join("scratch.TMP"), b"left out").unwrap();
    std::fs::write(src.join("build/.nobackup"), b"").unwrap();
    std::fs::write(src.join("build/out.o"), b"object").unwrap();
    let s = src.to_str().unwrap();
    env.ok(&["backup", "--iexclude", "*.tmp", "--exclude-if-present", ".nobackup", s]);
    let snaps = snapshots(&env);
    assert_eq!(snaps[0]["filters"]["iexcludes"], serde_json::json!(["*.tmp"]), "{:?}", snaps[0]);
    // More of what the rules leave out appears: still no difference.
    std::fs::write(src.join("other.tmp"), b"also left out").unwrap();
    std::fs::write(src.join("build/more.o"), b"object").unwrap();
    let out = env.ok(&["diff", "--json", "latest", s]);
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["added"], 0, "{out}");
    // What the rules do not cover is still found.
    std::fs::write(src.join("new.txt"), b"new").unwrap();
    let out = env.ok(&["diff", "--json", "latest", s]);
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["added"], 1, "{out}");
}
