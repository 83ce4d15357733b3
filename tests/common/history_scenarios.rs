//! A storage server that rolls the repository back or hides snapshots, and a key holder who
//! plants a future-dated parent: what every later command notices.

use super::*;

fn snapshot_files(env: &Env) -> Vec<String> {
    env.backend().list("snapshots").unwrap().into_iter().map(|e| e.path).collect()
}

/// The server keeps a copy of `snapshots/` and `index/`, lets a backup happen, then puts
/// the old copy back (deleting what is newer). The next command notices (exit 15), every
/// command after it too, until `check --accept-missing`. A forget is never mistaken for it.
pub fn rollback_is_noticed(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), noise(50_000, 1)).unwrap();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s]);
    let b = env.backend();
    let old: std::collections::HashSet<String> =
        ["snapshots", "index"].iter().flat_map(|d| b.list(d).unwrap()).map(|e| e.path).collect();
    std::fs::write(src.join("b"), noise(50_000, 2)).unwrap();
    let newer = env.backup_json(&[s])["snapshot_id"].as_str().unwrap().to_string();
    // The rollback.
    for d in ["snapshots", "index"] {
        for e in b.list(d).unwrap() {
            if !old.contains(&e.path) {
                b.delete(&e.path).unwrap();
            }
        }
    }
    for args in [&["snapshots"][..], &["ls", "latest"], &["snapshots", "--json"]] {
        let out = env.run(args);
        assert_eq!(code(&out), 15, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("possible tampering") && stderr(&out).contains(&newer[..8]), "{}", stderr(&out));
    }
    // A backup still runs (and stores its snapshot) but reports it too.
    let out = env.run(&["backup", s]);
    assert_eq!(code(&out), 15, "{}", stderr(&out));
    let out = env.run(&["check", "--json"]);
    assert_eq!(code(&out), 15, "{}", stderr(&out));
    let report: serde_json::Value = last_json(&out.stdout);
    assert_eq!(report["missing"]["missing_snapshots"][0].as_str().unwrap(), newer);
    // Looked into and accepted: quiet from now on.
    let out = env.run(&["check", "--accept-missing"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted: 1 snapshot(s)"));
    let out = env.run(&["snapshots"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // A forget is not tampering.
    let before = snapshot_files(&env).len();
    env.ok(&["forget", "--keep-last", "1"]);
    assert!(snapshot_files(&env).len() < before);
    let out = env.run(&["snapshots"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // A tombstone that vanishes (rolling back past the forget) is.
    for e in b.list("forgotten").unwrap() {
        b.delete(&e.path).unwrap();
    }
    let out = env.run(&["snapshots"]);
    assert_eq!(code(&out), 15, "{}", stderr(&out));
    assert!(stderr(&out).contains("tombstone"), "{}", stderr(&out));
}

/// Commands listing the repository while forgets remove snapshots beside them never call
/// that tampering (listing snapshots before tombstones keeps the comparison honest).
pub fn forgets_beside_readers_are_not_tampering(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let s = src.to_str().unwrap();
    for i in 0..8 {
        std::fs::write(src.join("f"), format!("version {i}")).unwrap();
        env.ok(&["backup", "-q", s]);
    }
    let ids: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&env.ok(&["snapshots", "--json"]))
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    std::thread::scope(|scope| {
        let forgets = scope.spawn(|| {
            for id in &ids[..7] {
                env.ok(&["forget", "-q", id]);
            }
        });
        let mut runs = 0;
        while !forgets.is_finished() || runs < 3 {
            let out = env.run(&["snapshots", "-q"]);
            assert_eq!(code(&out), 0, "run {runs}: {}", stderr(&out));
            runs += 1;
        }
    });
}

/// The attack: a key holder writes a snapshot dated a month ahead with this host's name
/// and paths, whose tree says an unchanged file holds other content. The next backup must
/// not take it as its parent (or it would record the forged content for the unchanged
/// file); `snapshots` and `check` flag it.
pub fn a_future_dated_parent_is_not_adopted(kind: Kind) {
    let Some(env) = Env::for_kind(kind) else { return };
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "genuine").unwrap();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s]);
    plant_forged_parent(&env, &src, b"forged!");
    let out = env.run(&["snapshots"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(future!)"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = env.run(&["check", "--json"]);
    let report: serde_json::Value = last_json(&out.stdout);
    assert!(report["info"].as_array().unwrap().iter().any(|i| i["kind"] == "future_snapshot"), "{report}");
    // The victim's next backup: the file is unchanged on disk.
    let r = env.backup_json(&[s]);
    let id = r["snapshot_id"].as_str().unwrap().to_string();
    let out_dir = env.path("out");
    env.ok(&["restore", &id, "--target", out_dir.to_str().unwrap()]);
    let restored = std::fs::read(out_dir.join(src.strip_prefix("/").unwrap()).join("f")).unwrap();
    assert_eq!(restored, b"genuine", "the backup took the forged snapshot as its parent");
}

/// Writes the forged snapshot: the latest one's tree with `src/f`'s content replaced.
fn plant_forged_parent(env: &Env, src: &Path, content: &[u8]) {
    use std::sync::Arc;
    use vault_format::pack::BlobKind;
    use vault_format::tree::ContentItem;
    use vault_repo::{IndexedRepository, Repository};
    let repo = Arc::new(Repository::open(env.backend(), PASSWORD.as_bytes()).unwrap());
    let latest = repo.list_snapshots().unwrap().into_iter().map(|id| repo.load_snapshot(&id).unwrap()).next().unwrap();
    let repo = IndexedRepository::load(repo).unwrap();
    let w = repo.writer().unwrap();
    let (blob, _) = w.save_blob(BlobKind::Data, content).unwrap();
    let mut path: Vec<Vec<u8>> = src.components().skip(1).map(|c| c.as_os_str().as_encoded_bytes().to_vec()).collect();
    path.push(b"f".to_vec());
    fn rewrite(
        repo: &IndexedRepository,
        w: &vault_repo::PackWriter,
        tree: &vault_format::BlobId,
        path: &[Vec<u8>],
        item: &ContentItem,
    ) -> vault_format::BlobId {
        let mut t = repo.load_tree(tree).unwrap();
        let node = t.nodes.iter_mut().find(|n| n.name == path[0]).unwrap();
        if path.len() == 1 {
            node.content = vec![*item];
        } else {
            node.subtree = Some(rewrite(repo, w, &node.subtree.unwrap(), &path[1..], item));
        }
        w.save_tree(t).unwrap()
    }
    let item = ContentItem::Data { id: blob, length: content.len() as u32 };
    let tree = rewrite(&repo, &w, &latest.tree, &path, &item);
    w.finish().unwrap();
    let mut forged = latest.clone();
    forged.tree = tree;
    forged.time = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    forged.parent = None;
    repo.save_snapshot(&forged).unwrap();
}
