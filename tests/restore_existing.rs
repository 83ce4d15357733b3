//! Restoring into a target that holds files already, on a local repository (the same
//! scenarios run on SFTP and S3 in remote.rs).

mod common;

use common::Kind;
use common::restore_scenarios::*;

#[test]
fn restore_into_a_changed_target_local() {
    restore_into_a_changed_target(Kind::Local);
}

#[test]
fn restore_never_writes_through_links_local() {
    restore_never_writes_through_links(Kind::Local);
}

#[test]
fn a_restore_downloads_each_pack_once_local() {
    a_restore_downloads_each_pack_once(Kind::Local);
}

#[test]
fn an_interrupted_restore_resumes_local() {
    an_interrupted_restore_resumes(Kind::Local);
}
