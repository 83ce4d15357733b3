//! Rollback and deletion by the storage, and future-dated parents (local repository; the
//! same scenarios run on SFTP and S3 in tests/remote.rs).

mod common;

use common::Kind;
use common::history_scenarios::*;

#[test]
fn rollback_of_snapshots_and_index_is_noticed() {
    rollback_is_noticed(Kind::Local);
}

#[test]
fn forgets_beside_listings_are_never_reported() {
    forgets_beside_readers_are_not_tampering(Kind::Local);
}

#[test]
fn a_planted_future_snapshot_does_not_become_the_parent() {
    a_future_dated_parent_is_not_adopted(Kind::Local);
}
