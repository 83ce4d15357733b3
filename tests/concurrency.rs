//! No locks: concurrent backups into one repository, and SIGKILL at any moment, on a local
//! repository (tests/remote.rs runs the same on SFTP and S3).

mod common;

use common::Kind;
use common::scenarios::*;

#[test]
fn two_backups_at_once_both_succeed() {
    two_backups_at_once(Kind::Local);
}

#[test]
fn sigkill_at_any_moment_leaves_a_usable_repository() {
    sigkill_at_any_moment(Kind::Local);
}

#[test]
fn three_inits_at_once_leave_one_repository() {
    three_inits_at_once(Kind::Local);
}

#[test]
fn killed_writers_leave_no_tmp_files_behind() {
    killed_writers_leave_no_tmp_files(Kind::Local);
}
