//! The distributed case: a 3-node Garage cluster (replication factor 3) on loopback.
//! A backup survives one node being killed, restores through another node, and with two of
//! three nodes down vault fails with a clear error instead of hanging.

mod common;

use std::time::{Duration, Instant};

use common::garage::Cluster;
use common::*;

#[test]
fn backup_survives_one_node_and_fails_clearly_without_quorum() {
    let Some(bin) = server_var("VAULT_TEST_GARAGE_BIN") else { return };
    let scratch = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::three(std::path::Path::new(&bin), scratch.path());
    let mut env = Env::on_garage(&cluster, 0);
    // Bounded: every object is stored three times.
    let src = env.path("src");
    common::scenarios::make_tree(&src.join("one"), 20, 1 << 20, 1);
    common::scenarios::make_tree(&src.join("two"), 200, 20_000, 1000);
    env.init();
    let child = env
        .cmd()
        .args(["backup", "--json", src.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    cluster.nodes[2].kill();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "backup with one node down failed: {}", stderr(&out));

    // Restore through another node.
    env.set_endpoint(&cluster.nodes[1].endpoint());
    let target = env.path("out");
    env.ok(&["--no-cache", "restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));

    // Two of three nodes down: writes cannot reach quorum.
    cluster.nodes[1].kill();
    env.set_endpoint(&cluster.nodes[0].endpoint());
    std::fs::write(src.join("new-file"), noise(100_000, 9)).unwrap();
    let t = Instant::now();
    let out = env.run(&["backup", src.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(code(&out), 14, "{err}");
    assert!(err.contains("s3://") && !err.contains("panicked"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(120), "took {:?}", t.elapsed());
    eprintln!("with 2 of 3 nodes down: {} ({:?})", err.trim(), t.elapsed());
}
