//! `--limit-upload` and `--limit-download`: what a backup sends and a restore fetches,
//! over the time each takes, stays at the limit (measured, and printed with
//! `--nocapture`).

mod common;

use common::*;

const LIMIT_KIB: u64 = 4096;

fn rate_ratio(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds / (LIMIT_KIB * 1024) as f64
}

#[test]
fn uploads_and_downloads_keep_to_their_limits() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // Incompressible, so what is stored is what is sent: 12 MiB at 4 MiB/s is 3 s.
    std::fs::write(src.join("a"), noise(8 << 20, 1)).unwrap();
    std::fs::write(src.join("b"), noise(4 << 20, 2)).unwrap();
    let limit = LIMIT_KIB.to_string();

    let up = env.backup_json(&["--limit-upload", &limit, src.to_str().unwrap()]);
    let sent = up["requests"]["bytes_up"].as_u64().unwrap();
    let ratio = rate_ratio(sent, up["duration_seconds"].as_f64().unwrap());
    eprintln!("upload: {sent} bytes in {} s = {ratio:.3} of the limit", up["duration_seconds"]);
    assert!(sent > 12 << 20, "{up}");
    assert!((0.7..=1.05).contains(&ratio), "upload at {ratio:.3} of the limit: {up}");

    let target = env.path("restored");
    let out =
        env.ok(&["restore", "latest", "--json", "--limit-download", &limit, "--target", target.to_str().unwrap()]);
    let down = last_json(out.as_bytes());
    let fetched = down["requests"]["bytes_down"].as_u64().unwrap();
    let ratio = rate_ratio(fetched, down["duration_seconds"].as_f64().unwrap());
    eprintln!("download: {fetched} bytes in {} s = {ratio:.3} of the limit", down["duration_seconds"]);
    assert!(fetched > 12 << 20, "{down}");
    assert!((0.7..=1.05).contains(&ratio), "download at {ratio:.3} of the limit: {down}");
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));

    // Without a limit the same backup is much faster than the limit allows.
    let env2 = Env::new();
    env2.init();
    let free = env2.backup_json(&[src.to_str().unwrap()]);
    let ratio = rate_ratio(free["requests"]["bytes_up"].as_u64().unwrap(), free["duration_seconds"].as_f64().unwrap());
    assert!(ratio > 1.5, "an unlimited backup ran at only {ratio:.3} of the limit: {free}");

    // Nonsense limits are refused.
    assert_eq!(code(&env.run(&["--limit-upload", "0", "snapshots"])), 2);
    assert_eq!(code(&env.run(&["--limit-download", "fast", "snapshots"])), 2);
}

/// Threads of a running process whose names start with `prefix`.
fn threads_named(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// `-o upload-threads=N` and `backup --read-concurrency N` set how many threads upload
/// packs and read files (counted in /proc while a slowed-down backup runs).
#[test]
fn thread_knobs_set_how_many_threads_work() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // (This machine's default is one reader per core: 1 and 3 differ from it on 2 cores.)
    for (round, (uploaders, readers)) in [(1usize, 3usize), (5, 1)].into_iter().enumerate() {
        // New data each round: uploads take a while at the limit.
        for i in 0..4 {
            std::fs::write(src.join(format!("f{i}")), noise(1 << 20, 10 + i + 10 * round as u64)).unwrap();
        }
        let mut child = env
            .cmd()
            .args(["backup", "-q", "--force", "--limit-upload", "2048", "-o", &format!("upload-threads={uploaders}")])
            .args(["--read-concurrency", &readers.to_string(), src.to_str().unwrap()])
            .spawn()
            .unwrap();
        let (mut up, mut read) = (0, 0);
        while child.try_wait().unwrap().is_none() {
            up = up.max(threads_named(child.id(), "vault-upload"));
            read = read.max(threads_named(child.id(), "vault-walk"));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(child.wait().unwrap().success());
        assert_eq!((up, read), (uploaders, readers), "upload and read threads seen");
    }
    let out = env.run(&["-o", "upload-threads=0", "snapshots"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("upload-threads"), "{}", stderr(&out));
}
