//! Scenarios that run on every kind of repository (local, SFTP, S3).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, mknod, utimensat};
use nix::sys::time::TimeSpec;

use super::*;

pub fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    let t = TimeSpec::new(sec, nsec);
    utimensat(nix::fcntl::AT_FDCWD, p, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

pub fn build_tree(src: &Path) -> bool {
    std::fs::create_dir_all(src.join("dir/sub/deeper")).unwrap();
    std::fs::create_dir(src.join("empty-dir")).unwrap();
    std::fs::write(src.join("small.txt"), b"hello, vault\n").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("dir/big.bin"), noise(5_000_000, 1)).unwrap();
    std::fs::write(src.join("dir/sub/text.log"), "line of text\n".repeat(50_000)).unwrap();
    std::fs::write(src.join("dir/sub/deeper/copy.bin"), noise(5_000_000, 1)).unwrap();
    std::fs::write(src.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")), b"not utf-8 name").unwrap();
    std::os::unix::fs::symlink("small.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    std::fs::hard_link(src.join("small.txt"), src.join("dir/hardlink")).unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
    // Sparse: 64 MiB with two small data regions.
    let f = std::fs::File::create(src.join("sparse")).unwrap();
    f.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"data in the middle", 20 << 20).unwrap();
    f.write_all_at(&noise(100_000, 7), 40 << 20).unwrap();
    drop(f);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.join("small.txt"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::set_permissions(src.join("dir/sub"), std::fs::Permissions::from_mode(0o1750)).unwrap();
    if is_root() {
        std::os::unix::fs::lchown(src.join("dir/big.bin"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(src.join("link"), Some(4321), Some(8765)).unwrap();
        // Device nodes may be refused inside a container; the rest of the test still runs.
        let _ = mknod(
            &src.join("null-dev"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        );
    }
    let xattrs = xattrs_supported(src);
    if xattrs {
        xattr::set(src.join("dir/big.bin"), "user.origin", b"camera \x00 roll").unwrap();
        xattr::set(src.join("dir"), "user.kind", b"folder").unwrap();
    }
    // mtimes last, deepest first, with nanoseconds.
    let mut all = walk(src);
    all.reverse();
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 1000, 123_456_789 + i as i64);
    }
    xattrs
}

pub fn make_tree(root: &std::path::Path, files: usize, size: usize, seed: u64) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..files {
        std::fs::write(root.join(format!("file{i:03}")), noise(size, seed + i as u64)).unwrap();
    }
}

pub fn every_file_kind_round_trips(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let src = env.path("src");
    let xattrs = build_tree(&src);
    env.init();
    let summary = env.backup_json(&[src.to_str().unwrap()]);
    assert_eq!(summary["errors"].as_array().unwrap().len(), 0);
    // Identical files in different directories are stored once.
    let added = summary["bytes_added"].as_u64().unwrap();
    assert!(added < 5_000_000 + 1_000_000 + 200_000, "bytes_added {added}");

    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    // An absolute source keeps its full path inside the snapshot.
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&src, &restored);
    // Holes are restored as holes.
    let m = std::fs::metadata(restored.join("sparse")).unwrap();
    assert_eq!(m.len(), 64 << 20);
    assert!(m.blocks() * 512 < 4 << 20, "sparse file restored dense: {} blocks", m.blocks());
    if xattrs {
        assert_eq!(xattr::get(restored.join("dir/big.bin"), "user.origin").unwrap().unwrap(), b"camera \x00 roll");
    } else {
        eprintln!("note: the test file system has no user xattrs; xattr round trip not exercised here");
    }
    if is_root() {
        let m = std::fs::symlink_metadata(restored.join("dir/big.bin")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
    }
    let a = std::fs::metadata(restored.join("small.txt")).unwrap();
    let b = std::fs::metadata(restored.join("dir/hardlink")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link not restored as a link");
}

pub fn unchanged_tree_adds_almost_nothing(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let src = env.path("src");
    for d in 0..10 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..20 {
            std::fs::write(dir.join(format!("f{f}")), noise(100_000 + f * 777, (d * 100 + f) as u64)).unwrap();
        }
    }
    let source_size = dir_size(&src);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let before = env.repo_size();
    let again = env.backup_json(&[src.to_str().unwrap()]);
    let growth = env.repo_size() - before;
    eprintln!("unchanged re-backup: repository grew by {growth} bytes for a {source_size}-byte tree");
    assert!((growth as f64) < source_size as f64 * 0.001, "grew by {growth}");
    // Only the trees of the source's parent directories may change (other processes touch
    // /tmp meanwhile); no file data is stored again.
    assert!(again["bytes_added"].as_u64().unwrap() < 1000, "{again}");
    assert_eq!(again["files_unchanged"], 200);
    // Same data under --force: read again, still nothing new stored.
    let forced = env.backup_json(&["--force", src.to_str().unwrap()]);
    assert!(forced["bytes_added"].as_u64().unwrap() < 1000, "{forced}");
}

pub fn insertion_near_start_adds_few_chunks(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let data = noise(100 << 20, 42);
    std::fs::write(src.join("big"), &data).unwrap();
    env.init();
    let first = env.backup_json(&[src.to_str().unwrap()]);
    assert!(first["bytes_added"].as_u64().unwrap() >= 100 << 20);
    let mut edited = data[..1000].to_vec();
    edited.extend_from_slice(b"a few inserted bytes");
    edited.extend_from_slice(&data[1000..]);
    std::fs::write(src.join("big"), &edited).unwrap();
    let second = env.backup_json(&[src.to_str().unwrap()]);
    let added = second["bytes_added"].as_u64().unwrap();
    let blobs = second["blobs_added"].as_u64().unwrap();
    eprintln!("insert near start of 100 MiB: {blobs} blobs, {added} bytes added");
    // One or two data chunks (at most 4 MiB each) plus the changed trees.
    assert!(blobs <= 6, "{blobs} blobs added");
    assert!(added <= 9 << 20, "{added} bytes added");
}

pub fn identical_files_are_stored_once(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let src = env.path("src");
    let data = noise(8 << 20, 5);
    for d in ["a", "b/c", "d/e/f"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        std::fs::write(src.join(d).join("same.bin"), &data).unwrap();
    }
    env.init();
    let s = env.backup_json(&[src.to_str().unwrap()]);
    let added = s["bytes_added"].as_u64().unwrap();
    assert!(added < (8 << 20) + 100_000, "{added}");
    assert!(env.repo_size() < (8 << 20) + 300_000, "{}", env.repo_size());
}

pub fn two_backups_at_once(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let a = env.path("a");
    let b = env.path("b");
    make_tree(&a, 30, 700_000, 1);
    make_tree(&b, 30, 700_000, 1000);
    // Some shared data, so both processes race to store the same blobs.
    std::fs::write(a.join("shared"), noise(3_000_000, 7)).unwrap();
    std::fs::write(b.join("shared"), noise(3_000_000, 7)).unwrap();
    env.init();
    let mut pa =
        env.cmd().args(["backup", "--json", a.to_str().unwrap()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut pb =
        env.cmd().args(["backup", "--json", b.to_str().unwrap()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    assert!(pa.wait().unwrap().success());
    assert!(pb.wait().unwrap().success());
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    for (src, name) in [(&a, "ra"), (&b, "rb")] {
        let out = env.path(name);
        let id = snaps.as_array().unwrap().iter().find(|s| s["paths"][0] == src.to_str().unwrap()).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        env.ok(&["restore", &id, "--target", out.to_str().unwrap()]);
        assert_same_tree(src, &out.join(src.strip_prefix("/").unwrap()));
    }
}

/// Three `init` at once on one path: exactly one succeeds, the others say the repository
/// exists and leave no key file behind, and the winner's password opens what was created.
pub fn three_inits_at_once(kind: Kind) {
    for round in 0..4 {
        let Some(env) = Env::for_kind(kind) else { return };
        let passwords = ["one", "two", "three"];
        let children: Vec<_> = passwords
            .iter()
            .map(|pw| {
                env.cmd()
                    .env("VAULT_PASSWORD", pw)
                    .arg("init")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let winners: Vec<_> =
            outs.iter().zip(passwords).filter(|(o, _)| o.status.success()).map(|(_, pw)| pw).collect();
        assert_eq!(winners.len(), 1, "round {round}: {} inits succeeded", winners.len());
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert!(stderr(o).contains("already exists"), "round {round}: {}", stderr(o));
        }
        assert_eq!(env.backend().list("keys").unwrap().len(), 1, "round {round}: a loser left its key file");
        for pw in passwords {
            let out = env.cmd().env("VAULT_PASSWORD", pw).args(["snapshots"]).output().unwrap();
            let expect = if pw == winners[0] { 0 } else { 12 };
            assert_eq!(code(&out), expect, "round {round}, password {pw}: {}", stderr(&out));
        }
    }
}

pub fn sigkill_at_any_moment(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let early = env.path("early");
    make_tree(&early, 5, 200_000, 500);
    let big = env.path("big");
    make_tree(&big, 12, 12 << 20, 1);
    env.init();
    env.ok(&["backup", early.to_str().unwrap()]);

    for delay_ms in [0u64, 30, 150, 400, 900, 1500] {
        let mut child = env.cmd().args(["backup", "-q", big.to_str().unwrap()]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // Every earlier snapshot still restores.
        let out = env.path(&format!("early-{delay_ms}"));
        env.ok(&["restore", "latest", "--path", early.to_str().unwrap(), "--target", out.to_str().unwrap()]);
        assert_same_tree(&early, &out.join(early.strip_prefix("/").unwrap()));
    }

    // Kill right after the first index checkpoint: the next backup reuses those packs.
    let before = index_files(&env);
    let mut child = env.cmd().args(["backup", "-q", "--force", big.to_str().unwrap()]).spawn().unwrap();
    let started = Instant::now();
    while index_files(&env) == before && started.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().ok();
    child.wait().unwrap();

    let done = env.backup_json(&[big.to_str().unwrap()]);
    let added = done["bytes_added"].as_u64().unwrap();
    eprintln!("after the kills, the completing backup added {added} of {} bytes", 12u64 * (12 << 20));
    assert!(added < 12 * (12 << 20), "nothing was reused: {added}");
    let out = env.path("big-out");
    env.ok(&["restore", "latest", "--path", big.to_str().unwrap(), "--target", out.to_str().unwrap()]);
    assert_same_tree(&big, &out.join(big.strip_prefix("/").unwrap()));
    // Nothing stored was left half-written under a final name: every pack parses.
    for (path, _) in env.stored().into_iter().filter(|(p, _)| p.starts_with("data/") || p.starts_with("tree/")) {
        let bytes = env.read_stored(&path);
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), path.rsplit('/').next().unwrap());
    }
}

/// A backup killed while it writes a pack leaves a temporary file; `check` counts it, and
/// the next backup on this host removes it (the killed writer's process is gone).
pub fn killed_writers_leave_no_tmp_files(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let big = env.path("big");
    make_tree(&big, 6, 24 << 20, 7);
    env.init();
    let tmp_files = || env.backend().list("tmp").map(|l| l.len()).unwrap_or(0);
    // A pack being written, not the writer's announcement on its way (a writer killed
    // before its announcement is stored leaves that small file to prune).
    let pack_in_tmp = || env.backend().list("tmp").is_ok_and(|l| l.iter().any(|e| e.size > 4096));
    let mut left = 0;
    for _ in 0..3 {
        let mut child = env.cmd().args(["backup", "-q", "--force", big.to_str().unwrap()]).spawn().unwrap();
        let started = Instant::now();
        while !pack_in_tmp() && started.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().ok();
        child.wait().unwrap();
        left = tmp_files();
        if left > 0 {
            break;
        }
    }
    let report: serde_json::Value = last_json(env.ok(&["check", "--json"]).as_bytes());
    assert_eq!(report["tmp_files"].as_u64().unwrap() as usize, left, "{report}");
    if kind.renames_into_place() {
        // Object stores have no temporary files: an unfinished upload is not an object.
        assert!(left > 0, "no kill landed during a pack write");
        assert!(report["tmp_bytes"].as_u64().unwrap() > 0);
    }
    let small = env.path("small");
    make_tree(&small, 2, 1000, 9);
    env.ok(&["backup", "-q", small.to_str().unwrap()]);
    assert_eq!(tmp_files(), 0, "the next backup left the killed one's files: {:?}", env.backend().list("tmp").unwrap());
    assert!(env.backend().list("writers").unwrap().is_empty());
    let report: serde_json::Value = last_json(env.ok(&["check", "--json"]).as_bytes());
    assert_eq!(report["tmp_files"], 0);
}

fn index_files(env: &Env) -> usize {
    env.backend().list("index").map(|l| l.len()).unwrap_or(0)
}

/// Bytes the process has read so far (from /proc/PID/io).
fn bytes_read(pid: u32) -> u64 {
    let Ok(io) = std::fs::read_to_string(format!("/proc/{pid}/io")) else { return 0 };
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// A file cut short while a backup reads it is read again: the snapshot holds it as it is
/// afterwards, exit 0.
pub fn a_file_cut_short_while_read(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    let file = src.join("log");
    let full = noise(96 << 20, 3);
    for round in 0..3 {
        std::fs::write(&file, &full).unwrap();
        let child = env
            .cmd()
            .args(["backup", "--json", src.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Cut the file once the backup is well into reading it.
        let started = Instant::now();
        let base = bytes_read(child.id());
        while bytes_read(child.id()) < base + (16 << 20) && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(1 << 20).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "round {round}: {}", stderr(&out));
        let restored = env.path(&format!("out{round}"));
        env.ok(&["restore", "latest", "--target", restored.to_str().unwrap()]);
        let got = std::fs::read(restored.join(file.strip_prefix("/").unwrap())).unwrap();
        assert!(got == full[..1 << 20], "round {round}: stored {} bytes, not the file as it was", got.len());
    }
}

/// vault's cache below a source is never stored (whatever the repository's backend).
pub fn the_cache_is_never_stored(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    // HOME is the scratch directory, so the cache is in it (.cache/vault).
    let home = env.dir.path();
    std::fs::create_dir_all(home.join("docs")).unwrap();
    std::fs::write(home.join("docs/letter.txt"), noise(1 << 20, 6)).unwrap();
    let docs = home.join("docs");
    let out = env.run(&["backup", docs.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(home.join(".cache/vault").is_dir(), "the cache was not used");
    let out = env.run(&["backup", "--json", home.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("it is vault's cache"), "{}", stderr(&out));
    let listing = env.ok(&["ls", "latest"]);
    assert!(listing.contains("letter.txt") && !listing.contains(".cache/vault"), "{listing}");
}
