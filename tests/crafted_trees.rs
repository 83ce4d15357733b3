//! Trees no honest backup makes, written by a key holder: a chain 10,000 trees deep, and
//! a DAG of 41 trees in which every tree holds its child twice (2^40 paths). Every
//! command that walks trees must give a clear error or a bounded result, within seconds
//! and bounded memory: none may overflow its stack, run forever or grow without end.
//! And a real directory 10,000 levels deep backs up (its too-deep part reported) instead
//! of crashing the backup.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use nix::fcntl::{OFlag, openat};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::stat::{Mode, mkdirat};
use vault_format::BlobId;
use vault_format::pack::BlobKind;
use vault_format::snapshot::Snapshot;
use vault_format::tree::{ContentItem, Node, NodeKind, Tree};
use vault_repo::{IndexedRepository, Repository, StoredObject};

/// Wall-clock bound for one command on a crafted snapshot (debug build, shared CI core).
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `/d/d/d/…/f`, 10,000 directories deep.
    Chain,
    /// 40 levels, each tree holding the next one under two names, and a file.
    Dag,
}

fn dir_node(name: &str, subtree: BlobId) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
    n.mode = 0o755;
    n.subtree = Some(subtree);
    n
}

/// Writes the crafted trees and a snapshot of them; returns the leaf's data pack.
fn craft(env: &Env, shape: Shape) -> StoredObject {
    let repo = Arc::new(Repository::open(env.backend(), PASSWORD.as_bytes()).unwrap());
    let repo = IndexedRepository::load(repo).unwrap();
    let w = repo.writer().unwrap();
    let (data, _) = w.save_blob(BlobKind::Data, b"the one file's content").unwrap();
    let mut file = Node::new(b"f".to_vec(), NodeKind::File);
    file.mode = 0o644;
    file.size = 22;
    file.content = vec![ContentItem::Data { id: data, length: 22 }];
    let mut tree = w.save_tree(Tree { nodes: vec![file.clone()] }).unwrap();
    match shape {
        Shape::Chain => {
            for _ in 0..10_000 {
                tree = w.save_tree(Tree { nodes: vec![dir_node("d", tree)] }).unwrap();
            }
        }
        Shape::Dag => {
            for _ in 0..40 {
                let nodes = vec![dir_node("a", tree), dir_node("b", tree), file.clone()];
                tree = w.save_tree(Tree { nodes }).unwrap();
            }
        }
    }
    w.finish().unwrap();
    let snapshot = Snapshot {
        version: 1,
        time: "2026-12-01T12:00:00Z".into(),
        tree,
        paths: vec!["/crafted".into()],
        hostname: "crafted".into(),
        username: "nobody".into(),
        uid: 0,
        gid: 0,
        tags: vec![format!("{shape:?}")],
        parent: None,
        program_version: "crafted".into(),
        summary: None,
        filters: None,
        original: None,
        written_by: None,
    };
    repo.save_snapshot(&snapshot).unwrap();
    // The index reloaded: where the leaf's data went.
    let loc = IndexedRepository::load(repo.repo().clone()).unwrap().locate(BlobKind::Data, &data).unwrap();
    StoredObject::Pack(BlobKind::Data, loc.pack)
}

/// Runs vault with a time limit; a command still running then is a failure.
fn run_bounded(mut cmd: Command, what: &str) -> Output {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn vault");
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > COMMAND_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {COMMAND_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    // A signal (stack overflow, abort) has no exit code.
    assert!(out.status.code().is_some(), "{what}: killed by a signal: {}\n{}", out.status, stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{what}: panicked: {}", stderr(&out));
    out
}

/// `vault ARGS` in `env`, bounded in time.
fn run_in(env: &Env, args: &[&str], what: &str) -> Output {
    let mut c = env.cmd();
    c.args(args);
    run_bounded(c, what)
}

/// Peak memory of any child so far, in MiB.
fn children_peak_rss_mib() -> i64 {
    getrusage(UsageWho::RUSAGE_CHILDREN).map(|u| u.max_rss() / 1024).unwrap_or(0)
}

fn walking_commands_are_bounded(shape: Shape) {
    let env = Env::new();
    env.init();
    let pack = craft(&env, shape);
    let snap = format!("--tag={shape:?}");
    let id = {
        let out = env.ok(&["snapshots", "--json", &snap]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["id"].as_str().unwrap().to_string()
    };
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let target = env.path("restored");
    let empty_s = empty.to_str().unwrap();
    let target_s = target.to_str().unwrap();
    // (arguments, exit codes allowed: a bounded result or a clear error)
    let runs: Vec<(Vec<&str>, &[i32])> = vec![
        (vec!["ls", &id], &[0, 1]),
        (vec!["ls", &id, "--json"], &[0, 1]),
        (vec!["find", "f"], &[0, 1]),
        (vec!["stats", &id], &[0]),
        (vec!["dump", &id, "/", "--archive", "tar"], &[0, 1]),
        (vec!["dump", &id, "/", "--archive", "zip"], &[0, 1]),
        (vec!["diff", &id, empty_s], &[0, 1]),
        (vec!["restore", &id, "--target", target_s], &[0, 1, 3]),
        (vec!["check"], &[0]),
    ];
    for (args, codes) in &runs {
        let what = format!("{shape:?}: vault {}", args.join(" "));
        let started = Instant::now();
        let out = run_in(&env, args, &what);
        let code = code(&out);
        assert!(codes.contains(&code), "{what}: exit {code}: {}", stderr(&out));
        if code == 1 {
            let err = stderr(&out);
            assert_eq!(err.trim_end().lines().count(), 1, "{what}: one clear line, got: {err}");
            assert!(err.contains("crafted"), "{what}: the error says why: {err}");
        }
        eprintln!("{what}: exit {code} in {:?}", started.elapsed());
    }
    // The walkers are bounded in memory too (an unbounded expansion of 2^40 paths would
    // take far more than this).
    let peak = children_peak_rss_mib();
    assert!(peak < 1024, "{shape:?}: a command used {peak} MiB");

    // Lose the one data pack: check names the problem with a bounded list of paths and
    // an exact count; repair rewrites the snapshot with bounded lists; check passes.
    env.backend().delete(&pack.path()).unwrap();
    let out = run_in(&env, &["check", "--json"], "check after damage");
    assert_eq!(code(&out), 13, "{}", stderr(&out));
    let out = env.run(&["check", "--json"]);
    let report: serde_json::Value = last_json(&out.stdout);
    let problems = report["problems"].as_array().unwrap();
    let data = problems.iter().find(|p| p["kind"] == "pack_missing").expect("the lost pack is named");
    assert!(data["paths"].as_array().unwrap().len() <= 100);
    let expected_paths: u64 = match shape {
        Shape::Chain => 1,
        // Every path that ends in a file: the leaf's file under each of 2^40 paths, and
        // the file at every level above it.
        Shape::Dag => (0..=40).map(|k| 1u64 << k).sum(),
    };
    assert_eq!(data["paths_total"].as_u64(), Some(expected_paths), "{shape:?}: {data}");
    for args in [vec!["repair", "index"], vec!["repair", "snapshots"], vec!["check"]] {
        let what = format!("{shape:?}: vault {}", args.join(" "));
        let out = run_in(&env, &args, &what);
        assert_eq!(code(&out), 0, "{what}: {}", stderr(&out));
    }
    let peak = children_peak_rss_mib();
    assert!(peak < 1024, "{shape:?}: a command used {peak} MiB");
}

#[test]
fn a_chain_of_10000_trees_is_bounded_in_every_command() {
    walking_commands_are_bounded(Shape::Chain);
}

#[test]
fn a_dag_of_2_to_the_40_paths_is_bounded_in_every_command() {
    walking_commands_are_bounded(Shape::Dag);
}

/// Creates `levels` nested directories named `d` below `root`, through directory
/// descriptors (the path soon passes what the kernel accepts in one string).
fn nest(root: &std::path::Path, levels: usize) {
    let mut dir: OwnedFd =
        openat(nix::fcntl::AT_FDCWD, root, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).expect("open root");
    for _ in 0..levels {
        mkdirat(dir.as_fd(), "d", Mode::from_bits_truncate(0o755)).expect("mkdirat");
        dir = openat(dir.as_fd(), "d", OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).expect("openat");
    }
    nix::unistd::write(
        openat(dir.as_fd(), "bottom", OFlag::O_CREAT | OFlag::O_WRONLY, Mode::from_bits_truncate(0o644)).unwrap(),
        b"deep",
    )
    .unwrap();
}

#[test]
fn a_directory_10000_levels_deep_backs_up_without_crashing() {
    let env = Env::new();
    env.init();
    let src = env.path("deep");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("top"), b"near the top").unwrap();
    nest(&src, 10_000);
    let out = run_in(&env, &["backup", "--json", src.to_str().unwrap()], "backup of a 10,000-level directory");
    // The levels past what the kernel resolves are reported (exit 3); nothing crashes.
    assert!(matches!(code(&out), 0 | 3), "exit {}: {}", code(&out), stderr(&out));
    assert!(stderr(&out).contains("too long") || stderr(&out).contains("levels deep"), "{}", stderr(&out));
    // The snapshot holds what could be read, and the repository checks clean.
    let listing = env.ok(&["ls", "latest"]);
    assert!(listing.lines().any(|l| l.ends_with("/deep/top")), "{listing}");
    assert!(listing.lines().any(|l| l.ends_with("/d/d/d/d")), "the deep part is kept as far as it goes");
    env.ok(&["check"]);
}
