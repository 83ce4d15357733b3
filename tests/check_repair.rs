//! Real damage, found and repaired: for each stored kind (config, key, index, snapshot,
//! tree pack, data pack) flip a byte, truncate, delete, or swap in another file of the
//! same kind; `check` names exactly the damaged object and the snapshots and paths it
//! affects; untouched snapshots still restore; repair brings back a passing check.

mod common;

use std::collections::BTreeSet;

use common::scenarios::make_tree;
use common::*;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Damage {
    Flip,
    Truncate,
    Delete,
    Swap,
}

const DAMAGES: [Damage; 4] = [Damage::Flip, Damage::Truncate, Damage::Delete, Damage::Swap];

struct Fixture {
    env: Env,
    a: std::path::PathBuf,
    b: std::path::PathBuf,
    snap_a: String,
    /// Stored objects written by the backup of A, by directory.
    objects_a: Vec<String>,
    objects_b: Vec<String>,
}

fn objects(env: &Env) -> BTreeSet<String> {
    env.stored().into_iter().map(|(p, _)| p).collect()
}

fn fixture(kind: Kind) -> Option<Fixture> {
    let env = Env::for_kind(kind)?;
    let a = env.path("a");
    let b = env.path("b");
    make_tree(&a, 4, 300_000, 1);
    make_tree(&a.join("sub"), 3, 200_000, 10);
    make_tree(&b, 4, 300_000, 100);
    env.init();
    let before = objects(&env);
    let sa = env.backup_json(&[a.to_str().unwrap()]);
    let after_a = objects(&env);
    env.backup_json(&[b.to_str().unwrap()]);
    let after_b = objects(&env);
    Some(Fixture {
        snap_a: sa["snapshot_id"].as_str().unwrap()[..8].to_string(),
        objects_a: after_a.difference(&before).cloned().collect(),
        objects_b: after_b.difference(&after_a).cloned().collect(),
        env,
        a,
        b,
    })
}

fn pick<'a>(objs: &'a [String], prefix: &str) -> &'a str {
    objs.iter().find(|o| o.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} object in {objs:?}"))
}

fn damage(env: &Env, object: &str, other: &str, how: Damage) {
    let b = env.backend();
    let bytes = b.read(object).unwrap().to_vec();
    match how {
        Damage::Flip => {
            let mut d = bytes;
            let n = d.len() / 2;
            d[n] ^= 0x10;
            b.write(object, d).unwrap();
        }
        Damage::Truncate => b.write(object, bytes[..bytes.len() / 2].to_vec()).unwrap(),
        Damage::Delete => b.delete(object).unwrap(),
        Damage::Swap => b.write(object, b.read(other).unwrap().to_vec()).unwrap(),
    }
}

fn check_json(env: &Env, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["check", "--json"];
    a.extend_from_slice(args);
    let out = env.run(&a);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let v = last_json(&out.stdout);
    (code(&out), v)
}

fn restores(env: &Env, src: &std::path::Path, name: &str) {
    let out = env.path(name);
    env.ok(&["restore", "latest", "--path", src.to_str().unwrap(), "--target", out.to_str().unwrap()]);
    assert_same_tree(src, &out.join(src.strip_prefix("/").unwrap()));
}

fn case(kind: Kind, dir: &str, how: Damage) {
    let Some(f) = fixture(kind) else { return };
    let env = &f.env;
    let (clean, _) = check_json(env, &["--read-data"]);
    assert_eq!(clean, 0, "fresh repository does not pass check");
    let object = pick(&f.objects_a, dir).to_string();
    let other = pick(&f.objects_b, dir).to_string();
    damage(env, &object, &other, how);
    let name = object.rsplit('/').next().unwrap().to_string();
    let label = format!("{kind:?} {dir} {how:?}");

    let (code, report) = check_json(env, &["--read-data"]);
    let problems = report["problems"].as_array().unwrap();
    if dir == "snapshots/" && how == Damage::Delete {
        // A deleted snapshot leaves nothing in the repository to find, but this computer
        // saw it: check reports it as gone without a forget (exit 15); the rest is intact.
        assert_eq!(code, 15, "{label}: {report}");
        assert!(problems.is_empty(), "{label}: {report}");
        assert_eq!(report["missing"]["missing_snapshots"][0], Value::from(name.clone()), "{label}: {report}");
        env.ok(&["check", "--accept-missing"]);
    } else {
        assert_eq!(code, 13, "{label}: {report}");
        let text = report["problems"].to_string();
        assert!(
            text.contains(&name)
                || problems.iter().any(|p| p["snapshots"].as_array().unwrap().iter().any(|s| s == &f.snap_a)),
            "{label}: damaged object not named: {text}"
        );
        for p in problems {
            for s in p["snapshots"].as_array().unwrap() {
                assert_eq!(s, &Value::from(f.snap_a.clone()), "{label}: an untouched snapshot is reported: {p}");
            }
            if !p["snapshots"].as_array().unwrap().is_empty() {
                assert!(!p["paths"].as_array().unwrap().is_empty(), "{label}: no paths named: {p}");
            }
        }
        if dir != "snapshots/" {
            assert!(
                problems.iter().any(|p| !p["paths"].as_array().unwrap().is_empty()),
                "{label}: no affected paths: {text}"
            );
        }
        // People read kebab-case kinds and the steps that repair the damage, in order.
        let out = env.run(&["check", "--read-data"]);
        let shown = String::from_utf8_lossy(&out.stdout);
        let kind = problems[0]["kind"].as_str().unwrap().replace('_', "-");
        assert!(shown.contains(&format!("error: {kind} ")), "{label}: {shown}");
        let hint = shown.lines().find(|l| l.starts_with("next step")).unwrap_or_else(|| panic!("{label}: {shown}"));
        assert!(hint.ends_with("then `vault check` again"), "{label}: {hint}");
        if dir != "snapshots/" {
            let (index, again) = (hint.find("repair index"), hint.find("repair snapshots"));
            assert!(again.is_some() && index.is_none_or(|i| i < again.unwrap()), "{label}: {hint}");
        }
    }
    // The untouched snapshot still restores.
    restores(env, &f.b, &format!("b-{how:?}"));

    if dir == "snapshots/" {
        return;
    }
    env.ok(&["repair", "index", "--read-data"]);
    env.ok(&["repair", "snapshots", "--read-data"]);
    let (code, report) = check_json(env, &["--read-data"]);
    assert_eq!(code, 0, "{label}: check fails after repair: {report}");
    restores(env, &f.b, &format!("b2-{how:?}"));
    // Every file that survives in the repaired snapshot is intact.
    let out = env.path(&format!("a-{how:?}"));
    env.ok(&["restore", "latest", "--path", f.a.to_str().unwrap(), "--target", out.to_str().unwrap()]);
    let restored = out.join(f.a.strip_prefix("/").unwrap());
    for p in walk(&restored).into_iter().filter(|p| p.is_file()) {
        let rel = p.strip_prefix(&restored).unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(f.a.join(rel)).unwrap(),
            "{label}: {} differs",
            rel.display()
        );
    }
    if matches!(dir, "index/") {
        // Nothing was lost: the whole tree is back.
        assert_same_tree(&f.a, &restored);
    }
}

fn all_damages(kind: Kind, dir: &str) {
    for how in DAMAGES {
        case(kind, dir, how);
    }
}

#[test]
fn index_files() {
    all_damages(Kind::Local, "index/");
}

#[test]
fn snapshot_files() {
    all_damages(Kind::Local, "snapshots/");
}

#[test]
fn tree_packs() {
    all_damages(Kind::Local, "tree/");
}

#[test]
fn data_packs() {
    all_damages(Kind::Local, "data/");
}

#[test]
fn s3_every_kind() {
    for dir in ["index/", "snapshots/", "tree/", "data/"] {
        all_damages(Kind::S3, dir);
    }
}

/// Config and key damage stop every command: `check` cannot run and says why.
#[test]
fn config_and_key_files() {
    for how in DAMAGES {
        let Some(f) = fixture(Kind::Local) else { return };
        let other = Env::new();
        other.init();
        let other_config = std::fs::read(other.repo.join("config")).unwrap();
        let env = &f.env;
        match how {
            Damage::Swap => std::fs::write(env.repo.join("config"), &other_config).unwrap(),
            _ => damage(env, "config", "config", how),
        }
        let out = env.run(&["check"]);
        let err = stderr(&out);
        let expected = if how == Damage::Delete { 10 } else { 13 };
        assert_eq!(code(&out), expected, "config {how:?}: {err}");
        assert!(err.contains("config") || err.contains("does not exist"), "config {how:?}: {err}");
    }
    for how in DAMAGES {
        let Some(f) = fixture(Kind::Local) else { return };
        let env = &f.env;
        let key = pick(&env.stored().into_iter().map(|(p, _)| p).collect::<Vec<_>>(), "keys/").to_string();
        let other = Env::new();
        other.init();
        let other_key = walk(&other.repo.join("keys"))[0].clone();
        match how {
            Damage::Swap => std::fs::write(env.repo.join(&key), std::fs::read(other_key).unwrap()).unwrap(),
            _ => damage(env, &key, &key, how),
        }
        let out = env.run(&["check"]);
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "key {how:?}: {err}");
        assert!(err.contains("key"), "key {how:?}: {err}");
        assert!(!err.contains("wrong password"), "key {how:?} must not look like a wrong password: {err}");
    }
}

#[test]
fn rotating_verification_reads_every_pack_once_before_any_twice() {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src, 40, 1 << 20, 7);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let total = env.stored().iter().filter(|(p, _)| p.starts_with("data/") || p.starts_with("tree/")).count();
    let mut runs = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let (code, r) = check_json(&env, &["--rotate", "--max-bytes", "20M"]);
        assert_eq!(code, 0);
        runs += 1;
        // Packs of one run are verified in parallel, so order within a run is free; across
        // runs, a repeat is only allowed once the run has covered every pack.
        let mut repeats = 0;
        for p in r["verified_packs"].as_array().unwrap() {
            if !seen.insert(p.as_str().unwrap().to_string()) {
                repeats += 1;
            }
        }
        assert!(repeats == 0 || seen.len() == total, "{repeats} packs read twice before every pack was read once");
        let cov = &r["coverage"];
        if cov["packs_verified"].as_u64().unwrap() as usize == total {
            assert_eq!(seen.len(), total);
            assert_eq!(cov["all_verified_within_runs"].as_u64().unwrap() as usize, runs);
            break;
        }
        assert!(runs < 20, "rotation does not make progress");
    }
    assert!(runs >= 2, "the budget should need several runs");
    // Deterministic subsets cover everything exactly once.
    let mut sum = 0;
    for n in 1..=3 {
        let (_, r) = check_json(&env, &["--read-data-subset", &format!("{n}/3")]);
        sum += r["packs_read"].as_u64().unwrap();
    }
    assert_eq!(sum as usize, total);
    let out = env.run(&["check", "--read-data-subset", "4/3"]);
    assert_eq!(code(&out), 1);
    let out = env.run(&["check", "--max-bytes", "1G"]);
    assert_eq!(code(&out), 1);
}

#[test]
fn files_out_of_place_are_ignored_as_the_spec_says() {
    let env = Env::new();
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), noise(100_000, 1)).unwrap();
    env.ok(&["backup", "-q", src.to_str().unwrap()]);
    let hex = "ab".repeat(32);
    std::fs::create_dir_all(env.repo.join("index/sub")).unwrap();
    std::fs::write(env.repo.join("index/sub").join(&hex), b"not vault's").unwrap();
    std::fs::create_dir_all(env.repo.join("snapshots/old")).unwrap();
    std::fs::write(env.repo.join("snapshots/old").join(&hex), b"not vault's").unwrap();
    std::fs::write(env.repo.join("data").join(&hex), b"not vault's").unwrap();
    std::fs::create_dir_all(env.repo.join("data/zz")).unwrap();
    std::fs::write(env.repo.join("data/zz").join(&hex), b"not vault's").unwrap();
    let out = env.run(&["check"]);
    assert_eq!(code(&out), 0, "{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    env.ok(&["prune", "-q"]);
    assert!(env.repo.join("index/sub").join(&hex).exists(), "prune deleted a file that is not vault's");
    assert!(env.repo.join("data/zz").join(&hex).exists(), "prune deleted a file that is not vault's");
}
