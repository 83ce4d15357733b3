//! Backup, restore, check, forget and prune under injected storage faults on a local
//! repository (tests/remote.rs runs the same on SFTP and S3). `VAULT_FAULT_ROUNDS`
//! raises the number of rounds for a long run.

mod common;

use common::Kind;
use common::fault_scenarios::commands_under_faults;

fn rounds() -> u32 {
    std::env::var("VAULT_FAULT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(4)
}

#[test]
fn commands_under_ten_percent_faults_never_lie() {
    let tally = commands_under_faults(Kind::Local, "0.1", rounds()).unwrap();
    assert!(tally.injected > 0 && tally.failed_runs > 0, "{tally:?}");
}
