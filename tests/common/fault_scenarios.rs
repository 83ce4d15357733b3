//! Commands under injected storage faults (VAULT_DEBUG_FAULTS): each either succeeds with
//! correct results or fails with a clear one-line error (never a panic, never a damage
//! report that is not true), and the repository then passes `check --read-data` with
//! every snapshot restoring exactly.

use std::process::Output;

use super::scenarios::make_tree;
use super::*;

/// What one faulty run of the scenario came to.
#[derive(Debug, Default)]
pub struct FaultTally {
    pub runs: u32,
    pub failed_runs: u32,
    pub injected: u64,
}

/// Runs `args` with faults at `rate` until it succeeds (at most `tries` times); every
/// failure must be a clean error. Returns the successful run's output.
fn until_ok(env: &Env, args: &[&str], rate: &str, seed: &mut u64, tally: &mut FaultTally, tries: u32) -> Output {
    for _ in 0..tries {
        *seed += 1;
        let out = env.cmd().env("VAULT_DEBUG_FAULTS", format!("{rate}:{seed}")).args(args).output().unwrap();
        tally.runs += 1;
        let err = stderr(&out);
        tally.injected += err
            .lines()
            .find_map(|l| l.strip_prefix("debug: ")?.strip_suffix(" storage faults injected")?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("vault {args:?} did not report its injected faults ({}): {err}", out.status));
        assert!(!err.contains("panicked"), "vault {args:?} panicked: {err}");
        if out.status.success() {
            return out;
        }
        tally.failed_runs += 1;
        let code = code(&out);
        // A storage failure (14) or a general error (1); damage (13) would be a lie here.
        assert!(matches!(code, 1 | 14), "vault {args:?} exited {code} under faults: {err}");
        // One error line: vault's, or restore's count of files the storage failed to deliver
        // (each named in a warning before it).
        // (With --json, vault's error is its exit_error object.)
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| {
                l.starts_with("vault: error")
                    || l.starts_with("error: ")
                    || l.contains(r#""message_type":"exit_error""#)
            })
            .collect();
        assert_eq!(errors.len(), 1, "vault {args:?}: not one error line: {err}");
        assert!(errors[0].len() < 1000, "an error line of {} bytes", errors[0].len());
    }
    panic!("vault {args:?} failed {tries} times in a row under faults at {rate}");
}

/// A copy with the metadata restore brings back (`cp -a`).
fn copy_tree(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success());
}

/// Rounds of backup, restore, check, forget and prune under faults at `rate`.
pub fn commands_under_faults(kind: Kind, rate: &str, rounds: u32) -> Option<FaultTally> {
    let env = Env::for_kind(kind)?;
    env.init();
    let src = env.path("src");
    make_tree(&src, 6, 3 << 20, 1);
    make_tree(&src, 40, 20_000, 100);
    let mut seed = 1000 * rounds as u64;
    let mut tally = FaultTally::default();
    let mut kept: Vec<(String, PathBuf)> = Vec::new();
    for round in 0..rounds {
        // Each round changes a little: one file rewritten, one added.
        std::fs::write(src.join("file000"), noise(3 << 20, 500 + round as u64)).unwrap();
        std::fs::write(src.join(format!("new{round}")), noise(700_000, 900 + round as u64)).unwrap();
        let out = until_ok(&env, &["backup", "--json", src.to_str().unwrap()], rate, &mut seed, &mut tally, 25);
        let summary: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
        let id = summary["snapshot_id"].as_str().unwrap().to_string();
        let reference = env.path(&format!("ref{round}"));
        copy_tree(&src, &reference);
        kept.push((id.clone(), reference));

        let target = env.path(&format!("restore{round}-{seed}"));
        until_ok(&env, &["restore", &id, "--target", target.to_str().unwrap()], rate, &mut seed, &mut tally, 25);
        assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
        until_ok(&env, &["check"], rate, &mut seed, &mut tally, 25);

        if round % 2 == 1 {
            until_ok(&env, &["forget", "--keep-last", "2"], rate, &mut seed, &mut tally, 25);
            kept.drain(..kept.len().saturating_sub(2));
            until_ok(&env, &["prune"], rate, &mut seed, &mut tally, 25);
        }
    }
    until_ok(&env, &["check", "--read-data"], rate, &mut seed, &mut tally, 25);

    // Without faults: the repository is whole, and every kept snapshot is exact.
    let out = env.run(&["check", "--read-data", "--json"]);
    assert_eq!(code(&out), 0, "check --read-data after the faulty rounds: {}", String::from_utf8_lossy(&out.stdout));
    for (id, reference) in &kept {
        let target = env.path(&format!("final-{id}"));
        env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
        assert_same_tree(reference, &target.join(src.strip_prefix("/").unwrap()));
    }
    eprintln!("{kind:?} under faults at {rate}: {tally:?}");
    Some(tally)
}

/// The remote backends' run: fewer rounds.
pub fn faults_on_storage(kind: Kind) {
    commands_under_faults(kind, "0.1", 2);
}
