//! Restores into a target that holds files already (`--overwrite`, `--delete`,
//! `--dry-run`, `--verify`), and resuming an interrupted restore. Run on every backend.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::scenarios::set_mtime;
use super::{Env, Kind, assert_same_tree, code, noise, stderr};

/// `restore --json` and its summary.
fn restore_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["restore", "--json"];
    a.extend_from_slice(args);
    let out = env.ok(&a);
    serde_json::from_str(out.lines().last().unwrap_or_default()).expect("summary JSON")
}

/// A source with a large multi-chunk file, small files, a symlink and subdirectories.
fn make_source(src: &Path) {
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("big"), noise(24 << 20, 7)).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("sub/f{i}")), noise(3000 + i * 100, i as u64)).unwrap();
    }
    std::fs::write(src.join("sub/deeper/g"), b"deep").unwrap();
    std::os::unix::fs::symlink("sub/f1", src.join("link")).unwrap();
}

/// Bytes allocated below `dir` (what was written, not the length of sparse files).
fn allocated(dir: &Path) -> u64 {
    super::walk(dir).iter().filter_map(|p| std::fs::symlink_metadata(p).ok()).map(|m| m.blocks() * 512).sum()
}

fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

/// A repository with one backup of [`make_source`], restored into `target`: the
/// environment, the source, the target and where the source lies in it.
fn backed_up_and_restored(kind: Kind) -> Option<(Env, PathBuf, PathBuf, PathBuf)> {
    let env = Env::for_kind(kind)?;
    let src = env.path("src");
    make_source(&src);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("target");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let out = restored(&target, &src);
    assert_same_tree(&src, &out);
    Some((env, src, target, out))
}

pub fn restore_into_a_changed_target(kind: Kind) {
    let Some((env, src, target, out)) = backed_up_and_restored(kind) else { return };
    let t = target.to_str().unwrap();

    // Without --overwrite a target that holds files is refused, naming the option.
    let refused = env.run(&["restore", "latest", "--target", t]);
    assert_eq!(code(&refused), 1, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--overwrite"), "{}", stderr(&refused));

    // Unchanged target: nothing is written and no file data is fetched.
    let again = restore_json(&env, &["latest", "--target", t, "--overwrite", "if-changed"]);
    assert_eq!(again["files"], 0, "{again}");
    assert_eq!(again["bytes"], 0, "{again}");
    assert!(again["unchanged"].as_u64().unwrap() >= 22, "{again}");
    assert!(again["requests"]["bytes_down"].as_u64().unwrap() < 1 << 20, "{again}");
    assert_same_tree(&src, &out);

    // The state an interrupted restore leaves, and a user's edits: a file cut short, one
    // missing, one with a byte changed (same size), one with another mtime only, a
    // directory where a file belongs, an extra file.
    let big = out.join("big");
    std::fs::OpenOptions::new().write(true).open(&big).unwrap().set_len(10 << 20).unwrap();
    std::fs::remove_file(out.join("sub/f2")).unwrap();
    let mut f3 = std::fs::read(out.join("sub/f3")).unwrap();
    f3[100] ^= 0xff;
    std::fs::write(out.join("sub/f3"), &f3).unwrap();
    set_mtime(&out.join("sub/f4"), 1_000_000, 0);
    std::fs::remove_file(out.join("sub/f5")).unwrap();
    std::fs::create_dir_all(out.join("sub/f5/inside")).unwrap();
    std::fs::write(out.join("sub/extra"), b"not in the snapshot").unwrap();
    let big_ino = std::fs::metadata(&big).unwrap().ino();

    // A dry run says what would happen and changes nothing.
    let dry = restore_json(&env, &["latest", "--target", t, "--overwrite", "if-changed", "--dry-run", "--delete"]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["files"], 4, "{dry}");
    assert_eq!(dry["deleted"], 2, "{dry}");
    assert_eq!(std::fs::metadata(&big).unwrap().len(), 10 << 20);
    assert!(out.join("sub/extra").exists() && out.join("sub/f5/inside").is_dir());

    let r = restore_json(&env, &["latest", "--target", t, "--overwrite", "if-changed", "--verify"]);
    // big resumed in place (only its missing part written), f3 one chunk, f4 metadata
    // only (content compared equal), f2 and f5 written anew.
    assert_eq!(r["files_updated"], 2, "{r}");
    assert_eq!(r["files"], 4, "{r}");
    let written = r["bytes"].as_u64().unwrap();
    // At most the 14 MiB cut off plus the chunk across the cut (chunks end at 4 MiB).
    assert!(written < (19 << 20), "wrote {written} bytes; {r}");
    // Every file written or kept is read back.
    assert_eq!(r["verified"], 22, "{r}");
    assert_eq!(std::fs::metadata(&big).unwrap().ino(), big_ino, "big was replaced, not resumed");
    // Without --delete the extra file stays; everything else is as backed up.
    assert!(out.join("sub/extra").exists());
    for f in ["big", "sub/f2", "sub/f3", "sub/f4", "sub/f5"] {
        assert_eq!(std::fs::read(out.join(f)).unwrap(), std::fs::read(src.join(f)).unwrap(), "{f}");
    }

    std::fs::create_dir_all(out.join("stray/dir")).unwrap();
    let d = restore_json(&env, &["latest", "--target", t, "--overwrite", "if-changed", "--delete", "-e", "*.keep"]);
    assert_eq!(d["deleted"], 2, "{d}");
    assert_same_tree(&src, &out);
    // Excluded entries are never deleted.
    std::fs::write(out.join("sub/mine.keep"), b"mine").unwrap();
    restore_json(&env, &["latest", "--target", t, "--overwrite", "if-changed", "--delete", "-e", "*.keep"]);
    assert!(out.join("sub/mine.keep").exists());
    std::fs::remove_file(out.join("sub/mine.keep")).unwrap();

    // never keeps what is there; if-newer replaces only what is older than the snapshot.
    std::fs::write(out.join("sub/f6"), b"edited").unwrap();
    restore_json(&env, &["latest", "--target", t, "--overwrite", "never"]);
    assert_eq!(std::fs::read(out.join("sub/f6")).unwrap(), b"edited");
    let future = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    set_mtime(&out.join("sub/f6"), future as i64, 0);
    std::fs::write(out.join("sub/f7"), b"edited").unwrap();
    set_mtime(&out.join("sub/f7"), 1_000_000, 0);
    restore_json(&env, &["latest", "--target", t, "--overwrite", "if-newer"]);
    assert_eq!(std::fs::read(out.join("sub/f6")).unwrap(), b"edited");
    assert_eq!(std::fs::read(out.join("sub/f7")).unwrap(), std::fs::read(src.join("sub/f7")).unwrap());
    restore_json(&env, &["latest", "--target", t, "--overwrite", "always"]);
    assert_same_tree(&src, &out);

    // A restore that fails as a whole leaves no target it created.
    let new_target = env.path("never-made");
    let failed = env.run(&["restore", "latest:/no/such/path", "--target", new_target.to_str().unwrap()]);
    assert_eq!(code(&failed), 1, "{}", stderr(&failed));
    assert!(!new_target.exists(), "an empty target was left behind");
}

/// Links planted in the target never carry a restore's writes out of it.
pub fn restore_never_writes_through_links(kind: Kind) {
    let Some((env, src, target, out)) = backed_up_and_restored(kind) else { return };
    let t = target.to_str().unwrap();
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"precious").unwrap();
    std::fs::write(outside.join("hard"), b"precious, hard-linked").unwrap();
    std::fs::remove_file(out.join("sub/f8")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), out.join("sub/f8")).unwrap();
    std::fs::remove_file(out.join("sub/f9")).unwrap();
    std::fs::hard_link(outside.join("hard"), out.join("sub/f9")).unwrap();
    std::fs::remove_dir_all(out.join("sub/deeper")).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("sub/deeper")).unwrap();
    for mode in ["if-changed", "always"] {
        restore_json(&env, &["latest", "--target", t, "--overwrite", mode]);
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"precious");
        assert_eq!(std::fs::read(outside.join("hard")).unwrap(), b"precious, hard-linked");
        assert!(!outside.join("g").exists(), "a file was written through a directory link");
        assert_same_tree(&src, &out);
    }
}

/// Files a backup read at the same time share packs, their blobs interleaved; a restore
/// still downloads each pack once (it goes pack by pack, writing each blob into every
/// file that needs it), with one range in flight as with many. (Trees come from the
/// local cache the backup filled.)
pub fn a_restore_downloads_each_pack_once(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let src = env.path("src");
    std::fs::create_dir_all(src.join("small")).unwrap();
    for i in 0..4 {
        std::fs::write(src.join(format!("big{i}")), noise(6 << 20, 40 + i)).unwrap();
    }
    std::fs::write(src.join("big0-again"), noise(6 << 20, 40)).unwrap();
    for i in 0..300 {
        std::fs::write(src.join(format!("small/f{i}")), noise(500 + i * 37, 1000 + i as u64)).unwrap();
    }
    std::fs::write(src.join("empty"), b"").unwrap();
    env.init();
    env.ok(&["backup", "--read-concurrency", "4", src.to_str().unwrap()]);
    let stored = env.repo_size();
    for threads in ["1", "3", "16"] {
        let target = env.path(&format!("target-{threads}"));
        let t = target.to_str().unwrap();
        let option = format!("download-threads={threads}");
        let summary = restore_json(&env, &["-o", &option, "latest", "--target", t]);
        assert_same_tree(&src, &restored(&target, &src));
        // Neighbouring ranges share at most one 64 KiB block (spec §9: no exact offsets).
        let down = summary["requests"]["bytes_down"].as_u64().unwrap();
        let reads = summary["requests"]["reads"].as_u64().unwrap();
        assert!(down <= stored + reads * 65536, "{threads} threads: {down} bytes downloaded of {stored} stored");
        assert_eq!(summary["files"], 306, "{summary}");
    }
}

/// A restore killed part way, then run again with `--overwrite if-changed`, ends equal to
/// the source and writes only what the first run had not.
pub fn an_interrupted_restore_resumes(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..6 {
        std::fs::write(src.join(format!("part{i}")), noise(24 << 20, 100 + i as u64)).unwrap();
    }
    let total: u64 = 6 * (24 << 20);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("target");
    let t = target.to_str().unwrap();
    let mut child = env.cmd().args(["restore", "latest", "--target", t]).spawn().unwrap();
    let started = Instant::now();
    // Kill it once some data is in place.
    while allocated(&target) < total / 4 && started.elapsed() < Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let had = allocated(&target);
    let r = restore_json(&env, &["latest", "--target", t, "--overwrite", "if-changed"]);
    let written = r["bytes"].as_u64().unwrap();
    eprintln!("first run left {had} bytes; the rerun wrote {written} of {total}");
    assert!(written <= total - had.min(total) + (16 << 20), "{r}");
    assert_same_tree(&src, &restored(&target, &src));
}
