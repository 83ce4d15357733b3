//! SIGKILL at random moments in backup, prune and repair on a local repository, each
//! followed by check and exact restores of all snapshots (tests/remote.rs runs a shorter
//! loop on SFTP and S3). `VAULT_CRASH_TRIALS=300` for a long run.

mod common;

use common::Kind;
use common::crash_scenarios::{crash_loop, trials};

#[test]
fn sigkill_in_backup_prune_and_repair_never_costs_a_snapshot() {
    let tally = crash_loop(Kind::Local, trials(15), 11).unwrap();
    assert!(tally.killed > 0, "{tally:?}");
}
