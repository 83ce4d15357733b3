//! docs/json.md is the contract of `--json`: every command that prints JSON is run here,
//! and every object it prints is checked against the tables there (all listed fields
//! present with their types, no unlisted field), and every table is exercised.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Output, Stdio};

use common::*;
use serde_json::Value;

/// A documented field: its allowed types and whether it may be absent.
struct Field {
    types: Vec<String>,
    optional: bool,
}

/// `(command, message_type)` → its fields, parsed from docs/json.md.
fn contract() -> BTreeMap<(String, String), BTreeMap<String, Field>> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md")).unwrap();
    let mut out: BTreeMap<(String, String), BTreeMap<String, Field>> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            let parts: Vec<&str> = h.split(": ").map(|p| p.trim_matches('`')).collect();
            current = (parts.len() == 2).then(|| (parts[0].to_string(), parts[1].to_string()));
            if let Some(k) = &current {
                out.insert(k.clone(), BTreeMap::new());
            }
            continue;
        }
        if line.starts_with("## ") {
            current = None;
        }
        let (Some(key), Some(row)) = (&current, line.strip_prefix("| `")) else { continue };
        let cells: Vec<&str> = row.split(" | ").collect();
        let optional = cells[1].contains("(optional)");
        let types: Vec<String> =
            cells[1].replace("(optional)", "").split(" or ").map(|t| t.trim().to_string()).collect();
        for name in cells[0].split(", ") {
            let name = name.trim_matches('`').to_string();
            out.get_mut(key).unwrap().insert(name, Field { types: types.clone(), optional });
        }
    }
    out
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

struct Checker {
    contract: BTreeMap<(String, String), BTreeMap<String, Field>>,
    seen: BTreeSet<(String, String)>,
}

impl Checker {
    fn object(&mut self, command: &str, v: &Value) {
        let obj = v.as_object().unwrap_or_else(|| panic!("{command}: not an object: {v}"));
        let mt = obj
            .get("message_type")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{command}: no message_type: {v}"));
        let key = (command.to_string(), mt.to_string());
        let fields = self.contract.get(&key).unwrap_or_else(|| panic!("docs/json.md has no `{command}`: `{mt}`: {v}"));
        for (name, value) in obj {
            let f = fields.get(name).unwrap_or_else(|| panic!("{command} {mt}: field {name} is not documented: {v}"));
            let t = type_of(value);
            assert!(
                f.types.iter().any(|a| a == t || (a == "number" && t == "integer")),
                "{command} {mt}: {name} is {t}, documented as {:?}: {v}",
                f.types
            );
        }
        for (name, f) in fields {
            assert!(f.optional || obj.contains_key(name), "{command} {mt}: documented field {name} is missing: {v}");
        }
        if mt == "snapshot_group" {
            for s in obj["snapshots"].as_array().unwrap() {
                self.object("snapshots", s);
            }
        }
        self.seen.insert(key);
    }

    /// Every line of a command's stdout (arrays: every element).
    fn output(&mut self, command: &str, out: &Output) {
        assert!(out.status.success(), "{command}: {}", stderr(out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.trim().is_empty(), "{command} printed nothing");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{command}: not JSON ({e}): {line}"));
            match &v {
                Value::Array(items) => items.iter().for_each(|i| self.object(command, i)),
                _ => self.object(command, &v),
            }
        }
    }
}

#[test]
fn every_json_message_matches_docs_json_md() {
    let env = Env::new();
    let mut c = Checker { contract: contract(), seen: BTreeSet::new() };
    let run = |args: &[&str]| env.cmd().arg("--json").args(args).output().unwrap();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), noise(3 << 20, 1)).unwrap();
    std::fs::write(src.join("sub/b"), b"b").unwrap();
    std::os::unix::fs::symlink("a", src.join("link")).unwrap();
    let s = src.to_str().unwrap();

    c.output("init", &run(&["init"]));
    c.output("backup", &run(&["backup", "-v", s]));
    std::fs::write(src.join("c"), b"c").unwrap();
    c.output("backup", &run(&["backup", "--tag", "t", "--exclude", "*.tmp", s]));
    c.output("snapshots", &run(&["snapshots"]));
    c.output("snapshots", &run(&["snapshots", "--group-by", "host"]));
    c.output("ls", &run(&["ls", "latest"]));
    let target = env.path("restored");
    c.output("restore", &run(&["restore", "latest", "--target", target.to_str().unwrap()]));
    c.output(
        "restore",
        &run(&["restore", "latest", "--target", target.to_str().unwrap(), "--overwrite", "if-changed"]),
    );
    let ids: Vec<String> = last_json(&run(&["snapshots"]).stdout)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    c.output("diff", &run(&["diff", &ids[0], &ids[1]]));
    c.output("find", &run(&["find", "b"]));
    c.output("stats", &run(&["stats"]));
    c.output("check", &run(&["check", "--read-data"]));
    c.output("check", &run(&["check", "--rotate", "--max-bytes", "1"]));
    c.output("version", &run(&["version"]));
    c.output("config show", &run(&["config", "show"]));

    // A writer while a backup runs.
    let mut slow = env
        .cmd()
        .args(["backup", "-q", "--stdin-from-command", "--", "sh", "-c", "sleep 3; echo done"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    loop {
        let out = run(&["writers"]);
        if last_json(&out.stdout).as_array().is_some_and(|a| !a.is_empty()) {
            c.output("writers", &out);
            break;
        }
        assert!(t.elapsed().as_secs() < 20, "no writer appeared");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(slow.wait().unwrap().success());

    c.output("key list", &run(&["key", "list"]));
    let added = env.cmd().env("VAULT_NEW_PASSWORD", "second").args(["--json", "key", "add"]).output().unwrap();
    c.output("key add", &added);
    let added_id = last_json(&added.stdout)["id"].as_str().unwrap().to_string();
    c.output("key remove", &run(&["key", "remove", &added_id]));
    let changed = env.cmd().env("VAULT_NEW_PASSWORD", PASSWORD).args(["--json", "key", "passwd"]).output().unwrap();
    c.output("key passwd", &changed);
    c.output("key rotate", &run(&["key", "rotate"]));

    c.output("tag", &run(&["tag", "--add", "x", "latest"]));
    c.output("rewrite", &run(&["rewrite", "--exclude", &format!("{s}/sub"), "latest"]));
    c.output("forget", &run(&["forget", "--keep-last", "1"]));
    c.output("prune", &run(&["prune", "--max-unused", "0"]));
    std::fs::write(src.join("a"), noise(3 << 20, 2)).unwrap();
    c.output("backup", &run(&["backup", s]));
    c.output("forget", &run(&["forget", "--keep-last", "1", "--prune"]));
    c.output("repair index", &run(&["repair", "index"]));
    c.output("repair snapshots", &run(&["repair", "snapshots"]));

    let dst = Env::new();
    dst.init();
    let mut copy = dst.cmd();
    copy.env("VAULT_FROM_PASSWORD", PASSWORD).args(["--json", "copy", "--from-repo", env.repo_string()]);
    c.output("copy", &copy.output().unwrap());

    // An error is one exit_error object on stderr.
    let failed = env.raw().args(["--json", "-r", env.path("nothing").to_str().unwrap(), "snapshots"]).output().unwrap();
    assert_eq!(code(&failed), 10);
    let err: Value = serde_json::from_str(stderr(&failed).trim()).unwrap();
    c.object("(any)", &err);

    let unexercised: Vec<_> = c.contract.keys().filter(|k| !c.seen.contains(*k)).collect();
    assert!(unexercised.is_empty(), "docs/json.md documents messages no command printed here: {unexercised:?}");
}
