//! Remote failures: each gives one line naming the backend and object, exit code 14 (or 10
//! for a missing repository), within a bounded time, and never a panic.

mod common;

use std::time::{Duration, Instant};

use common::garage::Cluster;
use common::*;

fn assert_one_line_error(out: &std::process::Output, code_expected: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(code(out), code_expected, "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("vault: error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].len() < 400, "error line too long: {}", lines[0]);
}

#[test]
fn malformed_repository_strings() {
    let env = Env::new();
    for (repo, needle) in
        [("sftp://host", "sftp://"), ("s3://Bad_Bucket", "bucket"), ("sftp://h:99999/x", "port"), ("gs://x", "gs")]
    {
        let out = env.raw().args(["-r", repo, "snapshots"]).output().unwrap();
        assert_one_line_error(&out, 1, &[needle]);
    }
    let out = env.raw().args(["-r", "s3://bucket/x", "-o", "s3.colour=blue", "snapshots"]).output().unwrap();
    assert_one_line_error(&out, 2, &["s3.colour"]);
    let out = env.raw().env_remove("AWS_ACCESS_KEY_ID").args(["-r", "s3://bucket/x", "snapshots"]).output().unwrap();
    assert_one_line_error(&out, 14, &["AWS_ACCESS_KEY_ID"]);
}

#[test]
fn s3_permanent_failures_fail_fast() {
    let Some(mut env) = Env::s3() else { return };
    env.init();
    let t = Instant::now();
    let out = env.cmd().env("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789").arg("snapshots").output().unwrap();
    assert_one_line_error(&out, 14, &["s3://", "config", "403", "credentials"]);
    let out = env.cmd().args(["-o", "s3.region=us-west-2", "snapshots"]).output().unwrap();
    assert_one_line_error(&out, 14, &["s3://", "400", "s3.region"]);
    assert!(t.elapsed() < Duration::from_secs(10), "permanent errors must not be retried: {:?}", t.elapsed());
    env.set_repo_string("s3://no-such-bucket-for-vault/x");
    assert_one_line_error(&env.run(&["init"]), 14, &["no-such-bucket-for-vault", "NoSuchBucket"]);
}

#[test]
fn webdav_and_azure_permanent_failures_fail_fast() {
    let Some(env) = Env::webdav() else { return };
    env.init();
    let t = Instant::now();
    let wrong = "wrong-password-4711";
    let out = env.cmd().env("VAULT_WEBDAV_PASSWORD", wrong).arg("snapshots").output().unwrap();
    assert_one_line_error(&out, 14, &["webdav:", "config", "permission denied", "401", "VAULT_WEBDAV_PASSWORD"]);
    assert!(!stderr(&out).contains(wrong));
    // A password in the repository string is refused without being shown.
    let dav = env.repo_string().replacen("@", ":hunter2-secret@", 1);
    let out = env.raw().args(["-r", &dav, "snapshots"]).output().unwrap();
    assert_one_line_error(&out, 1, &["VAULT_WEBDAV_PASSWORD"]);
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
    assert!(t.elapsed() < Duration::from_secs(10), "permanent errors must not be retried: {:?}", t.elapsed());

    let Some(mut env) = Env::azure() else { return };
    env.init();
    let out = env.cmd().env("AZURE_ACCOUNT_KEY", "d3Jvbmcta2V5LTAxMjM0NTY3ODk=").arg("snapshots").output().unwrap();
    assert_one_line_error(&out, 14, &["azure:", "config", "403", "AZURE_ACCOUNT_KEY"]);
    let out = env.cmd().env_remove("AZURE_ACCOUNT_NAME").arg("snapshots").output().unwrap();
    assert_one_line_error(&out, 14, &["AZURE_ACCOUNT_NAME"]);
    env.set_repo_string("azure:no-such-container/x");
    assert_one_line_error(&env.run(&["init"]), 14, &["no-such-container", "ContainerNotFound"]);
}

#[test]
fn unreachable_servers_fail_within_a_bounded_time() {
    let port = common::garage::free_port();
    let Some(mut env) = Env::s3() else { return };
    env.set_endpoint(&format!("http://127.0.0.1:{port}"));
    let t = Instant::now();
    assert_one_line_error(&env.run(&["snapshots"]), 14, &["s3://", "config"]);
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    let Some(mut env) = Env::sftp() else { return };
    env.set_repo_string(&format!("sftp://root@127.0.0.1:{port}/tmp/x"));
    let t = Instant::now();
    assert_one_line_error(&env.run(&["snapshots"]), 14, &["sftp://", "connect"]);
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    for repo in [format!("webdav:http://127.0.0.1:{port}/x"), "azure:vault-test/x".into()] {
        let Some(mut env) = (if repo.starts_with("webdav") { Env::webdav() } else { Env::azure() }) else { return };
        env.set_repo_string(&repo);
        env.set_option("azure.endpoint", &format!("http://127.0.0.1:{port}/vaulttest"));
        let t = Instant::now();
        assert_one_line_error(&env.run(&["snapshots"]), 14, &[&repo, "config"]);
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    }
}

#[test]
fn sftp_path_that_is_a_file() {
    let Some(mut env) = Env::sftp() else { return };
    std::fs::create_dir_all(env.repo.parent().unwrap()).unwrap();
    std::fs::write(&env.repo, b"a file").unwrap();
    let out = env.run(&["init"]);
    assert_one_line_error(&out, 14, &["sftp://", "directory"]);
    // A missing SFTP repository is reported as missing.
    let s = env.repo_string().to_string();
    env.set_repo_string(&format!("{s}-missing"));
    assert_one_line_error(&env.run(&["snapshots"]), 10, &["does not exist"]);
}

#[test]
fn sftp_host_key_checks() {
    let Some(key) = server_var("VAULT_TEST_SFTP_KEY") else { return };
    let env = Env::new();
    let hk1 = env.path("hk1");
    let hk2 = env.path("hk2");
    common::sshd::host_key(&hk1);
    common::sshd::host_key(&hk2);
    let server = common::sshd::Sshd::start(&env.path("sshd1"), std::path::Path::new(&key), &hk1, None);
    let repo = format!("sftp://root@127.0.0.1:{}{}", server.port, env.path("repo").display());
    let run = |known: &str, args: &[&str]| {
        env.raw()
            .args(["-r", &repo, "-o", &format!("sftp.key={key}"), "-o", &format!("sftp.known-hosts={known}")])
            .args(args)
            .output()
            .unwrap()
    };
    // Strict: an unknown host is refused.
    assert_one_line_error(&run("strict", &["init"]), 14, &["sftp://"]);
    // accept-new records the key; then strict accepts it.
    assert!(run("accept-new", &["init"]).status.success());
    assert!(run("strict", &["snapshots"]).status.success());
    // Same address, new host key: strict refuses (a possible man in the middle).
    let port = server.port;
    drop(server);
    let _server2 = common::sshd::Sshd::start(&env.path("sshd2"), std::path::Path::new(&key), &hk2, Some(port));
    assert_one_line_error(&run("strict", &["snapshots"]), 14, &["sftp://"]);
}

/// The server dies during a backup: the backup fails clearly; after a restart a rerun
/// succeeds and earlier snapshots still restore.
#[test]
fn s3_server_killed_during_backup() {
    let Some(bin) = server_var("VAULT_TEST_GARAGE_BIN") else { return };
    let scratch = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::single(std::path::Path::new(&bin), scratch.path());
    let env = Env::on_garage(&cluster, 0);
    let early = env.path("early");
    common::scenarios::make_tree(&early, 3, 100_000, 1);
    let big = env.path("big");
    common::scenarios::make_tree(&big, 40, 4 << 20, 100);
    env.init();
    env.ok(&["backup", early.to_str().unwrap()]);
    let child =
        env.cmd().args(["backup", "-q", big.to_str().unwrap()]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    cluster.nodes[0].kill();
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(90), "backup hung after the server died: {:?}", t.elapsed());
    assert_one_line_error(&out, 14, &["s3://"]);
    cluster.nodes[0].start(&cluster.bin);
    cluster.wait_ready(0);
    env.ok(&["backup", big.to_str().unwrap()]);
    for (src, name) in [(&early, "r-early"), (&big, "r-big")] {
        let out = env.path(name);
        env.ok(&["restore", "latest", "--path", src.to_str().unwrap(), "--target", out.to_str().unwrap()]);
        assert_same_tree(src, &out.join(src.strip_prefix("/").unwrap()));
    }
}

/// An unchanged re-backup to S3 downloads no pack data (the cache holds trees, index and
/// snapshots); a damaged cache entry is detected and fetched again.
#[test]
fn s3_cache_saves_downloads_and_is_never_trusted() {
    let Some(env) = Env::s3() else { return };
    let src = env.path("src");
    common::scenarios::make_tree(&src.join("a/b"), 30, 50_000, 3);
    common::scenarios::make_tree(&src.join("c"), 30, 50_000, 300);
    env.init();
    let first = env.backup_json(&[src.to_str().unwrap()]);
    let second = env.backup_json(&[src.to_str().unwrap()]);
    let down = second["requests"]["bytes_down"].as_u64().unwrap();
    eprintln!(
        "unchanged re-backup to S3: {} requests down {down} bytes; first: {}",
        second["requests"], first["requests"]
    );
    assert!(down < 4096, "downloaded {down} bytes");
    assert_eq!(second["files_unchanged"], 60);

    // Damage every cached file; everything still works and the cache heals.
    let cache = env.dir.path().join(".cache/vault");
    let cached: Vec<_> =
        walk(&cache).into_iter().filter(|p| p.is_file() && p.file_name().unwrap() != "CACHEDIR.TAG").collect();
    assert!(cached.iter().any(|p| p.to_string_lossy().contains("/tree/")), "no tree pack cached");
    for p in &cached {
        let mut b = std::fs::read(p).unwrap();
        let n = b.len() / 2;
        b[n] ^= 0x55;
        std::fs::write(p, b).unwrap();
    }
    let out = env.path("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &out.join(src.strip_prefix("/").unwrap()));
    let third = env.backup_json(&[src.to_str().unwrap()]);
    assert_eq!(third["files_unchanged"], 60);
    let fourth = env.backup_json(&[src.to_str().unwrap()]);
    assert!(fourth["requests"]["bytes_down"].as_u64().unwrap() < 4096, "cache did not heal");
    // --no-cache works too.
    let out = env.run(&["--no-cache", "ls", "latest"]);
    assert!(out.status.success());
}
