//! Crash loops: SIGKILL at random moments in backup, prune and repair, each followed by
//! `check` and exact restores of every snapshot. The number of trials is bounded for CI
//! (`VAULT_CRASH_TRIALS` raises it for a long run).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::scenarios::make_tree;
use super::*;

/// What a crash loop came to.
#[derive(Debug, Default)]
pub struct CrashTally {
    pub trials: u32,
    /// Commands killed before they ended.
    pub killed: u32,
    /// Killed commands that had written their snapshot (backup) or finished.
    pub completed: u32,
}

pub fn trials(default: u32) -> u32 {
    std::env::var("VAULT_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator for the kill moments (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn snapshot_ids(env: &Env) -> Vec<String> {
    snapshot_times(env).into_iter().map(|(id, _)| id).collect()
}

/// Every snapshot's id and time.
fn snapshot_times(env: &Env) -> Vec<(String, String)> {
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["time"].as_str().unwrap().to_string()))
        .collect()
}

/// Runs `args`, kills it after `delay`; whether it had ended by itself, and when.
fn run_and_kill(env: &Env, args: &[&str], delay: Duration) -> (bool, Duration) {
    kill_after(env.cmd().args(args), delay)
}

/// Runs `cmd`, kills it after `delay`; whether it had ended by itself, and when.
fn kill_after(cmd: &mut std::process::Command, delay: Duration) -> (bool, Duration) {
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return (true, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().ok();
    let status = child.wait().unwrap();
    (status.code().is_some(), started.elapsed())
}

pub fn crash_loop(kind: Kind, trials: u32, seed: u64) -> Option<CrashTally> {
    let env = Env::for_kind(kind)?;
    env.init();
    let src = env.path("src");
    make_tree(&src, 4, 4 << 20, seed);
    make_tree(&src.join("small"), 30, 10_000, seed + 100);
    // A second repository that `copy` brings snapshots from: each of its snapshots' trees
    // as it was, by snapshot time (a copy keeps its source's time).
    let side = Env::new();
    side.init();
    let side_src = side.path("side");
    make_tree(&side_src, 3, 1 << 20, seed + 7);
    let mut side_refs: BTreeMap<String, PathBuf> = BTreeMap::new();
    // Snapshot id → the tree it must restore to, and the source path it holds.
    let mut references: BTreeMap<String, (PathBuf, PathBuf)> = BTreeMap::new();
    // A snapshot copied from the side repository restores to the side tree of its time;
    // any other new one to the source as it is now (its backup just ran).
    let record_new =
        |references: &mut BTreeMap<String, (PathBuf, PathBuf)>, side_refs: &BTreeMap<String, PathBuf>, tag: &str| {
            for (id, time) in snapshot_times(&env) {
                if let std::collections::btree_map::Entry::Vacant(slot) = references.entry(id) {
                    if let Some(r) = side_refs.get(&time) {
                        slot.insert((r.clone(), side_src.clone()));
                        continue;
                    }
                    let copy = env.path(&format!("ref-{tag}-{}", &slot.key()[..12]));
                    let st = std::process::Command::new("cp").arg("-a").arg(&src).arg(&copy).status().unwrap();
                    assert!(st.success());
                    slot.insert((copy, src.clone()));
                }
            }
        };
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    record_new(&mut references, &side_refs, "start");
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut tally = CrashTally::default();
    // Milliseconds each kind of command (backup, prune, repair, copy) last took, to kill
    // within.
    let mut runtime = [1500u64, 1500, 1500, 1500];
    for trial in 0..trials {
        tally.trials += 1;
        // A moment within the command's run: how long the last one of its kind ran.
        let kind_of_trial = (trial % 4) as usize;
        let delay = Duration::from_millis(rng.next() % runtime[kind_of_trial].max(20));
        let (ended, took) = match kind_of_trial {
            0 => {
                std::fs::write(src.join(format!("file{trial:03}-new")), noise(3 << 20, seed + 1000 + trial as u64))
                    .unwrap();
                std::fs::write(src.join("small/changing"), noise(5_000, seed + 2000 + trial as u64)).unwrap();
                let ended = run_and_kill(&env, &["backup", "-q", src.to_str().unwrap()], delay);
                record_new(&mut references, &side_refs, &trial.to_string());
                ended
            }
            3 => {
                std::fs::write(side_src.join(format!("side{trial:03}")), noise(2 << 20, seed + 3000 + trial as u64))
                    .unwrap();
                side.ok(&["backup", "-q", side_src.to_str().unwrap()]);
                for (id, time) in snapshot_times(&side) {
                    side_refs.entry(time).or_insert_with(|| {
                        let copy = side.path(&format!("side-ref-{}", &id[..12]));
                        let st = std::process::Command::new("cp").arg("-a").arg(&side_src).arg(&copy).status().unwrap();
                        assert!(st.success());
                        copy
                    });
                }
                let mut copy = env.cmd();
                copy.env("VAULT_FROM_PASSWORD", super::PASSWORD).args([
                    "copy",
                    "-q",
                    "--from-repo",
                    side.repo_string(),
                ]);
                let ended = kill_after(&mut copy, delay);
                record_new(&mut references, &side_refs, &trial.to_string());
                ended
            }
            1 => {
                // Something to prune: forget all but the newest few (not killed).
                env.ok(&["forget", "-q", "--keep-last", "3"]);
                run_and_kill(&env, &["prune", "-q"], delay)
            }
            _ => {
                let args: &[&str] =
                    if rng.next().is_multiple_of(2) { &["repair", "index"] } else { &["repair", "snapshots"] };
                run_and_kill(&env, args, delay)
            }
        };
        if ended {
            runtime[kind_of_trial] = took.as_millis() as u64;
            tally.completed += 1;
        } else {
            tally.killed += 1;
        }
        let out = env.run(&["check"]);
        assert_eq!(
            code(&out),
            0,
            "trial {trial}: check after a kill: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        let listed = snapshot_ids(&env);
        references.retain(|id, _| listed.contains(id));
        assert_eq!(references.len(), listed.len(), "trial {trial}: a snapshot nobody wrote: {listed:?}");
        for (id, (reference, source)) in &references {
            let target = env.path(&format!("restore-{trial}-{}", &id[..12]));
            env.ok(&["restore", "-q", id, "--target", target.to_str().unwrap()]);
            assert_same_tree(reference, &target.join(source.strip_prefix("/").unwrap()));
            std::fs::remove_dir_all(&target).unwrap();
        }
    }
    // The work the kills interrupted completes: a prune finishes what killed prunes left,
    // and the repository is whole, data included.
    env.ok(&["prune", "-q", "--wait"]);
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(code(&out), 0, "final check: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    eprintln!("{kind:?} crash loop: {tally:?}");
    Some(tally)
}

/// The shorter loop the remote backends run.
pub fn crash_loops(kind: Kind) {
    crash_loop(kind, trials(6), 23);
}
