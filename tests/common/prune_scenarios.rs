//! forget + prune beside running backups, on every kind of repository.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::scenarios::make_tree;
use super::*;

/// Signals a child; one that has already ended (and been reaped) is left alone.
fn signal(child: &Child, sig: Signal) {
    match kill(Pid::from_raw(child.id() as i32), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => panic!("cannot send {sig} to {}: {e}", child.id()),
    }
}

/// A source generation: files of its own and one shared by all.
fn generation(env: &Env, g: u64, files: usize) -> PathBuf {
    let dir = env.path(&format!("gen{g}"));
    make_tree(&dir, files, 400_000, g * 100 + 1);
    std::fs::write(dir.join("shared"), noise(1_500_000, 99)).unwrap();
    dir
}

fn spawn_backup(env: &Env, dir: &Path, g: u64, write_only: bool) -> Child {
    let mut c = env.cmd();
    if write_only {
        c.env("VAULT_PASSWORD", super::write_only_scenarios::WRITER_PASSWORD);
    }
    c.args(["backup", "-q", "--tag", &format!("g{g}"), dir.to_str().unwrap()]).stdout(Stdio::null()).spawn().unwrap()
}

fn writers(backend: &vault_repo::Backend) -> usize {
    backend.list("writers").map(|l| l.len()).unwrap_or(0)
}

/// A small deterministic sequence for delays.
struct Steps(u64);
impl Steps {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Backups run (one of them stopped with SIGSTOP for the whole round) while forget and
/// prune loop, and SIGKILL lands in prune at varying moments. Afterwards the repository
/// passes `check --read-data` and every remaining snapshot restores byte for byte.
pub fn prune_beside_backups(kind: Kind) {
    prune_beside_backups_of(kind, false);
}

/// The same with the backups made by a write-only key: prune (a full key) must see its
/// announcements, and it must see the prune's condemnations and new index.
pub fn prune_beside_write_only_backups(kind: Kind) {
    prune_beside_backups_of(kind, true);
}

fn prune_beside_backups_of(kind: Kind, write_only: bool) {
    let Some(env) = Env::for_kind(kind) else { return };
    let started = Instant::now();
    env.init();
    if write_only {
        super::write_only_scenarios::add_writer(&env, &super::write_only_scenarios::this_host());
    }
    let mut gens: Vec<PathBuf> = Vec::new();
    for g in 0..3 {
        gens.push(generation(&env, g, 3));
        env.ok(&["backup", "-q", "--tag", &format!("g{g}"), gens[g as usize].to_str().unwrap()]);
    }
    let mut steps = Steps(0x9e37_79b9_7f4a_7c15);
    // check runs over and over beside everything: it must never report damage.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let (stop, cmd) = (stop.clone(), env.cmd());
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let envs: Vec<(String, String)> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_string_lossy().into_owned(), v?.to_string_lossy().into_owned())))
            .collect();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = std::process::Command::new(vault_bin())
                    .env_clear()
                    .envs(envs.iter().cloned())
                    .args(&args)
                    .arg("check")
                    .output()
                    .unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                let unsettled = code(&out) == 1 && err.contains("files were deleted during each");
                assert!(
                    out.status.success() || unsettled,
                    "check beside prune: {}\n{}{err}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout)
                );
                runs += 1;
            }
            runs
        })
    };
    let mut waited = 0;
    let mut kills = 0;
    let rounds = if kind == Kind::Local { 5 } else { 3 };
    for _ in 0..rounds {
        let (ga, gb) = (gens.len() as u64, gens.len() as u64 + 1);
        gens.push(generation(&env, ga, 3));
        // Large enough that it is still writing when it is stopped.
        gens.push(generation(&env, gb, 150));
        // The backup to be stopped starts alone, so its announcement is the one that
        // appears; it is stopped somewhere after that (loading the index, or writing).
        // One backend for the polling: opening one per poll is slower than a backup.
        let backend = env.backend();
        let before = writers(&backend);
        let mut paused = spawn_backup(&env, &gens[gb as usize], gb, write_only);
        let t = Instant::now();
        while writers(&backend) == before
            && paused.try_wait().unwrap().is_none()
            && t.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(steps.next(30)));
        signal(&paused, Signal::SIGSTOP);
        let mut running = spawn_backup(&env, &gens[ga as usize], ga, write_only);
        for attempt in 0..3 {
            env.ok(&["forget", "-q", "--keep-last", "3", "--group-by", "host"]);
            let mut p =
                env.cmd().args(["prune", "--json", "--max-unused", "0"]).stdout(Stdio::piped()).spawn().unwrap();
            if attempt < 2 {
                std::thread::sleep(Duration::from_millis(steps.next(400)));
                if p.try_wait().unwrap().is_none() {
                    kills += 1;
                }
                p.kill().ok();
                p.wait().unwrap();
            } else {
                let out = p.wait_with_output().unwrap();
                assert!(out.status.success(), "prune: {}", stderr(&out));
                let r: serde_json::Value = last_json(&out.stdout);
                if !r["waiting"].as_array().unwrap().is_empty() {
                    waited += 1;
                }
            }
        }
        assert!(running.wait().unwrap().success());
        signal(&paused, Signal::SIGCONT);
        assert!(paused.wait().unwrap().success());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let checks = checker.join().expect("a check reported damage beside prune");
    // All writers are done: the last prune deletes everything condemned.
    let r: serde_json::Value = last_json(env.ok(&["prune", "--json", "--max-unused", "0"]).as_bytes());
    assert!(r["waiting"].as_array().unwrap().is_empty(), "{r:#}");
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(code(&out), 0, "check: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let snaps: serde_json::Value = serde_json::from_str(&env.ok(&["snapshots", "--json"])).unwrap();
    let snaps = snaps.as_array().unwrap();
    assert!(snaps.len() >= 3, "{snaps:#?}");
    for s in snaps {
        let g: usize = s["tags"][0].as_str().unwrap()[1..].parse().unwrap();
        let target = env.path(&format!("restored-{}", s["short_id"].as_str().unwrap()));
        env.ok(&["restore", s["id"].as_str().unwrap(), "--target", target.to_str().unwrap()]);
        assert_same_tree(&gens[g], &target.join(gens[g].strip_prefix("/").unwrap()));
    }
    assert!(waited > 0, "no prune ever had to wait for the stopped backup");
    eprintln!(
        "{kind:?} (write-only backups: {write_only}): {rounds} rounds, {kills} prunes killed, {waited} waited for the stopped backup, {checks} checks beside them, {} snapshots left, {:.1}s",
        snaps.len(),
        started.elapsed().as_secs_f64()
    );
}

/// After forgetting all but the last snapshot and `prune --max-unused 0`, the repository
/// is within 1 % of a fresh one holding only that snapshot.
pub fn prune_reclaims_all_space(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    let Some(fresh) = Env::for_kind(kind) else { return };
    env.init();
    let src = env.path("src");
    for g in 0..4u64 {
        let _ = std::fs::remove_dir_all(&src);
        make_tree(&src, 4, 700_000, g * 10);
        std::fs::write(src.join("shared"), noise(2_000_000, 5)).unwrap();
        env.ok(&["backup", "-q", src.to_str().unwrap()]);
    }
    let before = env.repo_size();
    env.ok(&["forget", "-q", "--keep-last", "1"]);
    env.ok(&["prune", "-q", "--max-unused", "0"]);
    let after = env.repo_size();
    fresh.init();
    fresh.ok(&["backup", "-q", src.to_str().unwrap()]);
    let ideal = fresh.repo_size();
    eprintln!("{kind:?}: {before} bytes before, {after} after prune, {ideal} in a fresh repository");
    assert!(after.abs_diff(ideal) * 100 <= ideal, "{after} vs {ideal}");
    assert_eq!(code(&env.run(&["check", "--read-data"])), 0);
}
