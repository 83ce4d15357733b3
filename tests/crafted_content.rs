//! A key holder's content list that disagrees with its blobs: a file whose list says a blob
//! holds 5 bytes while it holds a 600-byte tar archive of its own. Before, `dump` of the
//! directory emitted that archive's members (`../../x`) inside the outer one, and restore,
//! dump and mount read the file differently while `check` was silent. Now each refuses
//! the file as damaged, and check names it.

mod common;

use std::sync::Arc;

use common::*;
use vault_format::pack::BlobKind;
use vault_format::snapshot::Snapshot;
use vault_format::tree::{ContentItem, Node, NodeKind, Tree};
use vault_repo::{IndexedRepository, Repository};

/// A tar archive holding `../../x`, as the smuggled content.
fn smuggled_archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../../x");
    h.set_cksum();
    b.append(&h, &b"evil"[..]).unwrap();
    b.into_inner().unwrap()
}

fn craft(env: &Env) {
    let repo = Arc::new(Repository::open(env.backend(), PASSWORD.as_bytes()).unwrap());
    let repo = IndexedRepository::load(repo).unwrap();
    let w = repo.writer().unwrap();
    let blob = smuggled_archive();
    let (data, _) = w.save_blob(BlobKind::Data, &blob).unwrap();
    let mut file = Node::new(b"f".to_vec(), NodeKind::File);
    file.mode = 0o644;
    file.size = 5;
    file.content = vec![ContentItem::Data { id: data, length: 5 }];
    let mut ok = Node::new(b"g".to_vec(), NodeKind::File);
    ok.mode = 0o644;
    let mut dir = Node::new(b"d".to_vec(), NodeKind::Dir);
    dir.mode = 0o755;
    dir.subtree = Some(w.save_tree(Tree { nodes: vec![file, ok] }).unwrap());
    let root = w.save_tree(Tree { nodes: vec![dir] }).unwrap();
    w.finish().unwrap();
    repo.save_snapshot(&Snapshot {
        version: 1,
        time: "2026-12-01T12:00:00Z".into(),
        tree: root,
        paths: vec!["/d".into()],
        hostname: "crafted".into(),
        username: "nobody".into(),
        uid: 0,
        gid: 0,
        tags: Vec::new(),
        parent: None,
        program_version: "crafted".into(),
        summary: None,
        filters: None,
        original: None,
        written_by: None,
    })
    .unwrap();
}

#[test]
fn a_content_list_that_disagrees_with_its_blob_is_damage_everywhere() {
    let env = Env::new();
    env.init();
    craft(&env);
    // dump of the file: refused as damage, nothing beyond what it says.
    let out = env.run(&["dump", "latest", "/d/f"]);
    assert_eq!(code(&out), 13, "{}", stderr(&out));
    assert!(out.stdout.len() <= 5, "dump wrote {} bytes of a 5-byte file", out.stdout.len());
    // dump of the directory: no smuggled member in the archive.
    let out = env.run(&["dump", "latest", "/d"]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    let mut names = Vec::new();
    if let Ok(entries) = tar::Archive::new(&out.stdout[..]).entries() {
        for e in entries.flatten() {
            names.push(e.path().map(|p| p.display().to_string()).unwrap_or_default());
        }
    }
    assert!(!names.iter().any(|n| n.contains("..")), "smuggled members: {names:?}");
    // restore: the file is reported damaged (exit 13), the other one restored.
    let target = env.path("out");
    let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(code(&out), 13, "{}", stderr(&out));
    assert!(target.join("d/g").exists());
    // check names it.
    let out = env.run(&["check", "--json"]);
    assert_eq!(code(&out), 13, "{}", stderr(&out));
    let report: serde_json::Value = last_json(&out.stdout);
    let problems = report["problems"].as_array().unwrap();
    assert!(problems.iter().any(|p| p["kind"] == "content_length"), "{report}");
}
