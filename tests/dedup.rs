//! Dedup figures on a local repository (tests/remote.rs runs the same on SFTP and S3).

mod common;

use common::Kind;
use common::scenarios::*;

#[test]
fn unchanged_tree_adds_almost_nothing_locally() {
    unchanged_tree_adds_almost_nothing(Kind::Local);
}

#[test]
fn insertion_near_start_of_large_file_adds_few_chunks() {
    insertion_near_start_adds_few_chunks(Kind::Local);
}

#[test]
fn identical_files_are_stored_once_locally() {
    identical_files_are_stored_once(Kind::Local);
}
