//! `vault copy` between two local repositories (local → S3 and S3 → SFTP run in
//! remote.rs), and its errors.

mod common;

use common::copy_scenarios::{copies_between_repositories, copies_with_shared_chunker_params};
use common::{Env, Kind, code, stderr};

#[test]
fn copies_between_local_repositories() {
    copies_between_repositories(Kind::Local, Kind::Local);
}

#[test]
fn copies_with_shared_chunker_params_between_local_repositories() {
    copies_with_shared_chunker_params(Kind::Local, Kind::Local);
}

#[test]
fn copy_errors_are_one_line() {
    let dst = Env::new();
    dst.init();
    let missing = dst.path("no-such-repo");
    let out = dst
        .cmd()
        .env("VAULT_FROM_PASSWORD", "x")
        .args(["copy", "--from-repo", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // A destination that does not exist, and a wrong destination password; nothing is
    // created in either repository.
    let src = Env::new();
    src.init();
    let nowhere = dst.path("no-such-destination");
    let out = src
        .raw()
        .env("VAULT_FROM_PASSWORD", common::PASSWORD)
        .args(["-r", nowhere.to_str().unwrap(), "copy", "--from-repo", src.repo_string()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 10, "{}", stderr(&out));
    assert!(!nowhere.exists(), "copy created the destination");
    let out = dst
        .cmd()
        .env("VAULT_PASSWORD", "wrong")
        .env("VAULT_FROM_PASSWORD", common::PASSWORD)
        .args(["copy", "--from-repo", src.repo_string()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 12, "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // No source password anywhere, and no terminal to ask on.
    let out = dst.cmd().args(["copy", "--from-repo", src.repo_string()]).output().unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("VAULT_FROM_PASSWORD"), "{}", stderr(&out));
}
