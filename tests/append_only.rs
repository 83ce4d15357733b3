//! Append-only storage: SFTP credentials whose server refuses to delete and to rename over
//! existing names (scripts/test-servers: `sftp-server -P remove,rmdir,posix-rename`).
//! Backups and checks never need to delete or overwrite; forget and prune stop with a clear
//! error before they write anything.

mod common;

use common::*;

#[test]
fn backup_and_check_run_on_credentials_that_cannot_delete() {
    let Some(mut env) = Env::sftp() else { return };
    let Some(append_key) = server_var("VAULT_TEST_SFTP_APPEND_KEY") else { return };
    env.init();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), noise(300_000, 1)).unwrap();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s]);
    let before = env.stored();
    env.set_sftp_key(&append_key);
    for i in 0..2 {
        std::fs::write(src.join(format!("n{i}")), noise(100_000, 10 + i)).unwrap();
        let out = env.run(&["backup", s]);
        assert_eq!(code(&out), 0, "backup {i}: {}", stderr(&out));
        assert!(stderr(&out).contains("could not remove this backup's announcement"), "{}", stderr(&out));
    }
    // Nothing stored before was deleted or changed.
    let after: std::collections::HashMap<String, u64> = env.stored().into_iter().collect();
    for (path, size) in &before {
        if !path.starts_with("writers/") {
            assert_eq!(after.get(path), Some(size), "{path} was removed or changed");
        }
    }
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    // forget and prune refuse before writing anything: no tombstone hides a snapshot.
    let snapshots = env.ok(&["snapshots", "--json"]);
    for args in [&["forget", "--keep-last", "1"][..], &["prune"]] {
        let out = env.run(args);
        assert_eq!(code(&out), 14, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("refuses deletions"), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(env.ok(&["snapshots", "--json"]), snapshots);
    assert!(env.backend().list("forgotten").unwrap().is_empty());
}
