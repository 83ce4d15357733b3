//! `vault mount` through real FUSE: a mounted snapshot equals its source by a manifest of
//! content and metadata, and the usual tools (cp -a, rsync -a, tar, diff -r) work on it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::scenarios::build_tree;
use common::*;

struct Mounted {
    child: Option<Child>,
    dir: PathBuf,
}

fn is_mounted(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let d = dir.to_string_lossy();
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(&*d))
}

impl Mounted {
    fn new(env: &Env, dir: &Path) -> Option<Mounted> {
        Mounted::with_args(env, dir, &[])
    }

    fn with_args(env: &Env, dir: &Path, extra: &[&str]) -> Option<Mounted> {
        if !Path::new("/dev/fuse").exists() {
            assert!(std::env::var_os("CI").is_none(), "/dev/fuse is missing in CI");
            eprintln!("note: no /dev/fuse; skipping");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let child = env
            .cmd()
            .args(["mount", "-q"])
            .args(extra)
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let m = Mounted { child: Some(child), dir: dir.to_path_buf() };
        let t = Instant::now();
        while !dir.join("snapshots").exists() {
            assert!(t.elapsed() < Duration::from_secs(30), "mount did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(m)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Like `assert_same_tree`, but without hard-link structure: a mount gives every path its
/// own inode, as restic's and borg's mounts do.
fn assert_same_content_and_metadata(a: &Path, b: &Path, what: &str) {
    let strip = |m: std::collections::BTreeMap<String, ManifestEntry>| {
        m.into_iter()
            .map(|(k, mut e)| {
                e.link_group = None;
                (k, e)
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (ma, mb) = (strip(manifest(a)), strip(manifest(b)));
    assert_eq!(ma.keys().collect::<Vec<_>>(), mb.keys().collect::<Vec<_>>(), "{what}: different entries");
    for (k, e) in &ma {
        assert_eq!(e, &mb[k], "{what}: {k} differs");
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn mounted_snapshot_equals_its_source_and_tools_work() {
    let env = Env::new();
    let src = env.path("src");
    build_tree(&src);
    env.init();
    env.ok(&["backup", "--tag", "t1", src.to_str().unwrap()]);
    let mnt = env.path("mnt");
    let Some(_m) = Mounted::new(&env, &mnt) else { return };
    let snap = mnt.join("latest").join(src.strip_prefix("/").unwrap());
    assert_same_content_and_metadata(&src, &snap, "mount");
    // The other views lead to the same snapshot.
    assert_eq!(std::fs::read_dir(mnt.join("ids")).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(mnt.join("tags/t1")).unwrap().count(), 1);
    let host = std::fs::read_dir(mnt.join("hosts")).unwrap().next().unwrap().unwrap().path();
    let via_host = std::fs::read_dir(&host).unwrap().next().unwrap().unwrap().path();
    assert!(via_host.join(src.strip_prefix("/").unwrap()).join("small.txt").exists());

    // cp -a, rsync -a, tar, diff -r.
    let out = env.path("cp");
    run(Command::new("cp").arg("-a").arg(&snap).arg(&out));
    assert_same_content_and_metadata(&src, &out, "cp -a");
    if Command::new("rsync").arg("--version").output().is_ok() {
        let out = env.path("rsync");
        run(Command::new("rsync").arg("-aX").arg(format!("{}/", snap.display())).arg(&out));
        assert_same_content_and_metadata(&src, &out, "rsync -a");
    } else {
        assert!(std::env::var_os("CI").is_none(), "rsync is missing in CI");
    }
    let tarball = env.path("t.tar");
    run(Command::new("tar").arg("--xattrs").arg("-cf").arg(&tarball).arg("-C").arg(&snap).arg("."));
    let out = env.path("untar");
    std::fs::create_dir_all(&out).unwrap();
    run(Command::new("tar").arg("--xattrs").arg("--xattrs-include=*").arg("-xpf").arg(&tarball).arg("-C").arg(&out));
    assert_same_content_and_metadata(&src, &out, "tar");
    run(Command::new("diff").arg("-r").arg(src.join("dir")).arg(snap.join("dir")));

    // Random reads at odd offsets, several readers at once.
    let big = std::fs::read(src.join("dir/big.bin")).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (big, path) = (&big, snap.join("dir/big.bin"));
            s.spawn(move || {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = std::fs::File::open(path).unwrap();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
                for _ in 0..200 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let off = (x % big.len() as u64) as usize;
                    let len = ((x >> 32) % 70_001) as usize + 1;
                    let mut buf = vec![0u8; len];
                    f.seek(SeekFrom::Start(off as u64)).unwrap();
                    let n = f.read(&mut buf).unwrap();
                    assert_eq!(&buf[..n], &big[off..(off + n).min(big.len())], "read at {off}");
                    assert!(n > 0);
                }
            });
        }
    });

    // A snapshot written while mounted appears.
    env.ok(&["backup", src.join("dir").to_str().unwrap()]);
    let t = Instant::now();
    while std::fs::read_dir(mnt.join("snapshots")).unwrap().count() < 2 {
        assert!(t.elapsed() < Duration::from_secs(15), "new snapshot did not appear");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn large_directories_list_completely() {
    let env = Env::new();
    let src = env.path("src");
    let big = src.join("many");
    std::fs::create_dir_all(&big).unwrap();
    let n = 100_000;
    for i in 0..n {
        std::fs::File::create(big.join(format!("f{i:06}"))).unwrap();
    }
    env.init();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    let mnt = env.path("mnt");
    let Some(_m) = Mounted::new(&env, &mnt) else { return };
    let t = Instant::now();
    let out = Command::new("ls").arg("-lRa").arg(mnt.join("latest/")).output().unwrap();
    let took = t.elapsed();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let listed = text.lines().filter(|l| l.contains(" f0")).count();
    if listed != n {
        eprintln!("{}", text.lines().take(30).collect::<Vec<_>>().join("\n"));
    }
    eprintln!("ls -lR of a {n}-entry snapshot through FUSE: {took:?}");
    assert_eq!(listed, n);
}

/// An unmount from outside (`fusermount3 -u`, or `umount` as root) ends `vault mount`,
/// which exits 0 instead of waiting for a signal forever.
#[test]
fn an_unmount_from_outside_ends_the_mount() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let dir = env.path("mnt");
    let Some(mut m) = Mounted::new(&env, &dir) else { return };
    let unmounted = Command::new("fusermount3").arg("-u").arg(&dir).status().map(|s| s.success()).unwrap_or(false)
        || Command::new("umount").arg(&dir).status().map(|s| s.success()).unwrap_or(false);
    assert!(unmounted, "neither fusermount3 -u nor umount worked");
    let mut child = m.child.take().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("vault mount still runs 10 s after its file system was unmounted");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(!is_mounted(&dir));
}

#[test]
fn mount_errors() {
    let env = Env::new();
    env.init();
    let out = env.run(&["mount", env.path("missing").to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("missing") && stderr(&out).contains("mkdir"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // --json means nothing to a mount: refused rather than ignored.
    let out = env.run(&["--json", "mount", env.path("").to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let file = env.path("file");
    std::fs::write(&file, b"x").unwrap();
    let out = env.run(&["mount", file.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("not a directory"), "{}", stderr(&out));
}

/// The same read model serves remote repositories.
#[test]
fn mount_works_on_s3_and_sftp() {
    for kind in [Kind::S3, Kind::Sftp] {
        let Some(env) = Env::for_kind(kind) else { return };
        let src = env.path("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("data"), noise(2_500_000, 11)).unwrap();
        env.init();
        env.ok(&["backup", src.to_str().unwrap()]);
        let mnt = env.path("mnt");
        let Some(_m) = Mounted::new(&env, &mnt) else { return };
        let read = std::fs::read(mnt.join("latest").join(src.strip_prefix("/").unwrap()).join("data")).unwrap();
        assert_eq!(read, noise(2_500_000, 11), "{kind:?}");
    }
}

/// With --allow-other, the kernel checks the recorded owner and mode: another user reads a
/// 0644 file through root's mount but not a 0600 one (before, `nobody` read it).
#[test]
fn allow_other_keeps_file_permissions() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: not root; skipping");
        return;
    }
    let env = Env::new();
    // Directories on the way must be open to others, in the snapshot and to the mount point.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(src.join("public"), "anyone").unwrap();
    std::fs::set_permissions(src.join("public"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(src.join("secret"), "root only").unwrap();
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let mnt = env.path("mnt");
    let Some(_m) = Mounted::with_args(&env, &mnt, &["--allow-other"]) else { return };
    let inside = mnt.join("latest").join(src.strip_prefix("/").unwrap());
    let read_as_nobody =
        |name: &str| Command::new("cat").arg(inside.join(name)).uid(65534).gid(65534).output().unwrap();
    let public = read_as_nobody("public");
    assert!(public.status.success(), "{}", String::from_utf8_lossy(&public.stderr));
    assert_eq!(public.stdout, b"anyone");
    let secret = read_as_nobody("secret");
    assert!(!secret.status.success(), "nobody read root's 0600 file through the mount");
    assert!(
        String::from_utf8_lossy(&secret.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&secret.stderr)
    );
    // Root still reads it.
    assert_eq!(std::fs::read(inside.join("secret")).unwrap(), b"root only");
}
