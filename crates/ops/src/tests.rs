//! Operations in-process, against the memory backend: backup → restore → check → damage
//! → repair, and the walker's limits, without the binary.

use std::path::Path;
use std::sync::Arc;

use vault_format::BlobId;
use vault_format::keyfile::{KdfParams, KeyMeta};
use vault_format::pack::BlobKind;
use vault_format::tree::{Node, NodeKind, Tree};
use vault_repo::backend::OpenMode;
use vault_repo::{Backend, IndexedRepository, InitOptions, Location, Repository, StoredObject};

use crate::backup::{BackupOptions, backup};
use crate::check::{CheckOptions, ProblemKind, Subset, check};
use crate::error::OpError;
use crate::ls::list;
use crate::progress::NoProgress;
use crate::repair::{repair_index, repair_snapshots};
use crate::restore::{RestoreOptions, restore};
use crate::walk::{Flow, TreeFold, Trees, Visit, WalkLimits, fold, walk};

pub(crate) fn memory_repo(name: &str) -> Arc<Repository> {
    let b = Backend::open(&Location::Memory(name.into()), &Default::default(), OpenMode::Create).unwrap();
    let opts = InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
    Arc::new(Repository::init(b, b"pw", &opts, KeyMeta::default()).unwrap())
}

fn source(dir: &Path) {
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::write(dir.join("top.txt"), b"top").unwrap();
    std::fs::write(dir.join("a/b/big.bin"), vault_format::xorshift::xorshift_bytes(3 << 20, 9)).unwrap();
    std::fs::write(dir.join("a/small"), b"small").unwrap();
}

pub(crate) fn backup_opts(src: &Path) -> BackupOptions {
    BackupOptions { sources: vec![src.to_path_buf()], host: "test".into(), ..BackupOptions::default() }
}

fn same_files(a: &Path, b: &Path) {
    for rel in ["top.txt", "a/b/big.bin", "a/small"] {
        assert_eq!(std::fs::read(a.join(rel)).unwrap(), std::fs::read(b.join(rel)).unwrap(), "{rel}");
    }
}

#[test]
fn backup_restore_check_damage_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    source(&src);
    let repo = memory_repo("ops-roundtrip");
    let handle = IndexedRepository::load(repo.clone()).unwrap();
    let first = backup(&handle, &backup_opts(&src), &NoProgress).unwrap();
    assert!(first.problems.is_empty());
    // A second backup of unchanged files reads nothing and stores nothing new.
    let handle = IndexedRepository::load(repo.clone()).unwrap();
    let second = backup(&handle, &backup_opts(&src), &NoProgress).unwrap();
    assert_eq!(second.parent, first.snapshot_id);
    let summary = second.snapshot.summary.clone().unwrap();
    assert_eq!((summary.files_unchanged, summary.bytes_read), (3, 0));
    // Only directory trees may be new: the snapshot holds the source's ancestors (/tmp …)
    // too, whose times other tests running beside this one change.
    assert!(second.writer.bytes_added < 4096, "{:?}", second.writer);

    let handle = IndexedRepository::load(repo.clone()).unwrap();
    let target = tmp.path().join("restored");
    let opts = RestoreOptions { target: target.clone(), ..Default::default() };
    let report = restore(&handle, first.snapshot.tree, "first", &opts, &NoProgress).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let restored_src = target.join(src.strip_prefix("/").unwrap());
    same_files(&src, &restored_src);

    let opts = CheckOptions { read_data: Some(Subset::All), read_threads: 2, hostname: "test".into() };
    let clean = check(&repo, &opts, &NoProgress).unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!(clean.snapshots, 2);

    // Lose the data pack of the big file: check names it, ties it to both snapshots and
    // the file's path, and repair brings back a passing check.
    let big = handle.load_tree(&first.snapshot.tree).unwrap();
    let mut paths = Vec::new();
    list(&handle, first.snapshot.tree, "", &mut |p, n| {
        if n.name == b"big.bin" {
            paths.push((p.to_string(), n.clone()));
        }
    })
    .unwrap();
    drop(big);
    let (big_path, big_node) = paths.pop().unwrap();
    let vault_format::tree::ContentItem::Data { id, .. } = big_node.content[0] else { panic!("data") };
    let pack = handle.locate(BlobKind::Data, &id).unwrap().pack;
    repo.backend().delete(&StoredObject::Pack(BlobKind::Data, pack).path()).unwrap();
    let damaged = check(&repo, &CheckOptions::default(), &NoProgress).unwrap();
    let p = damaged.problems.iter().find(|p| p.kind == ProblemKind::PackMissing).expect("missing pack reported");
    assert_eq!(p.snapshots.len(), 2);
    assert!(p.paths.iter().any(|q| q.ends_with(&big_path)), "{:?} vs {big_path}", p.paths);

    repair_index(repo.clone(), false, &NoProgress).unwrap();
    let repaired = repair_snapshots(repo.clone(), false, "test", false, &NoProgress).unwrap();
    assert_eq!(repaired.snapshots.len(), 2);
    assert!(repaired.snapshots.iter().all(|s| s.dropped_total >= 1));
    let after = check(&repo, &CheckOptions::default(), &NoProgress).unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
}

/// A DAG: `levels` trees, each holding the next twice.
fn dag(handle: &IndexedRepository, levels: usize) -> BlobId {
    let w = handle.writer().unwrap();
    let mut file = Node::new(b"f".to_vec(), NodeKind::File);
    file.mode = 0o644;
    let mut tree = w.save_tree(Tree { nodes: vec![file] }).unwrap();
    for _ in 0..levels {
        let mut a = Node::new(b"a".to_vec(), NodeKind::Dir);
        a.subtree = Some(tree);
        let mut b = a.clone();
        b.name = b"b".to_vec();
        tree = w.save_tree(Tree { nodes: vec![a, b] }).unwrap();
    }
    w.finish().unwrap();
    tree
}

#[test]
fn the_walker_bounds_repeated_trees_and_skips_and_stops() {
    let repo = memory_repo("ops-walk");
    let handle = IndexedRepository::load(repo.clone()).unwrap();
    let root = dag(&handle, 30);
    let handle = IndexedRepository::load(repo).unwrap();
    let limits = WalkLimits { max_repeated_entries: 1000, ..Default::default() };
    let mut seen = 0u64;
    let r = walk(&mut Trees::new(&handle), root, "", limits, &mut |v| {
        if let Visit::Entry { .. } = v {
            seen += 1;
        }
        Ok(Flow::Continue)
    });
    assert!(matches!(r, Err(OpError::TreeLimit(_))), "{r:?}");
    assert!(seen < 2000, "expanded {seen} entries before stopping");

    // Skipping every `b` halves each level: 30 levels of `a` plus the file.
    let mut names = Vec::new();
    walk(&mut Trees::new(&handle), root, "", WalkLimits::default(), &mut |v| {
        Ok(match v {
            Visit::Entry { item, .. } if item.name == b"b" => Flow::Skip,
            Visit::Entry { path, .. } => {
                names.push(path.to_string());
                Flow::Continue
            }
            Visit::Leave => Flow::Continue,
        })
    })
    .unwrap();
    assert_eq!(names.len(), 31);
    assert!(names.last().unwrap().ends_with("/a/f"));

    let mut count = 0;
    walk(&mut Trees::new(&handle), root, "", WalkLimits::default(), &mut |_| {
        count += 1;
        Ok(if count == 5 { Flow::Stop } else { Flow::Continue })
    })
    .unwrap();
    assert_eq!(count, 5);

    // The fold counts 2^30 files while reading each of the 31 trees once.
    struct Files<'a>(&'a IndexedRepository, usize);
    impl TreeFold for Files<'_> {
        type Value = u64;
        fn open(&mut self, id: &BlobId) -> crate::error::Result<Result<Tree, u64>> {
            self.1 += 1;
            Ok(Ok(self.0.load_tree(id)?))
        }
        fn combine(&mut self, _: &BlobId, t: Tree, subs: Vec<Option<u64>>) -> crate::error::Result<u64> {
            Ok(t.nodes.iter().zip(subs).map(|(_, s)| s.unwrap_or(1)).sum())
        }
    }
    let mut f = Files(&handle, 0);
    let mut memo = std::collections::HashMap::new();
    assert_eq!(fold(&mut f, root, &mut memo).unwrap(), 1 << 30);
    assert_eq!(f.1, 31);
    assert_eq!(memo.len(), 31);
}

/// `repair snapshots` while a backup commits beside it: the new snapshot is neither judged
/// against an index that predates it nor replaced (issue: repair hid a concurrent backup).
#[test]
fn repair_beside_a_backup_leaves_the_new_snapshot_alone() {
    use crate::prune::tests::{init, open, snap, verify, write_src};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let plain = init(&dir);
    let mut expected = HashMap::new();
    let f1 = write_src(&src, &[("a", 1, 200_000)]);
    expected.insert(snap(&plain, &src), f1);
    let other = tmp.path().join("other");
    let f2 = write_src(&other, &[("b", 2, 300_000)]);
    // The backup commits at the first listing of the snapshots that follows check's own
    // listing of the index (the second one: check first notes what is stored): the moment
    // at which an index-then-snapshots order would judge it against an index without it.
    let index_listings = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fired = Arc::new(AtomicBool::new(false));
    let (l, f, p, o) = (index_listings.clone(), fired.clone(), plain.clone(), other.clone());
    let committed = Arc::new(parking_lot::Mutex::new(None));
    let c = committed.clone();
    let hook: vault_repo::backend::Hook = Arc::new(move |op, path| {
        if op == "list" && path.starts_with("index") {
            l.fetch_add(1, Ordering::SeqCst);
        }
        let after_index = l.load(Ordering::SeqCst) >= 2;
        if op == "list" && path.starts_with("snapshots") && after_index && !f.swap(true, Ordering::SeqCst) {
            *c.lock() = Some(snap(&p, &o));
        }
        Ok(())
    });
    let hooked = open(&dir, Some(hook));
    let report = repair_snapshots(hooked, false, "test", false, &NoProgress).unwrap();
    let new = committed.lock().expect("the backup ran");
    expected.insert(new, f2);
    assert!(report.snapshots.is_empty(), "{:?}", report.snapshots.iter().map(|s| s.original).collect::<Vec<_>>());
    verify(&plain, &expected, true);
}

/// A read-only repository: `check --read-data` reports what it found although it cannot
/// store its record (issue: it failed whole, exit 14, before reporting).
#[test]
fn check_reports_its_findings_when_the_check_record_cannot_be_stored() {
    use crate::prune::tests::{history, init, open};
    use vault_repo::backend::Hook;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let plain = init(&dir);
    let _ = history(&plain, &src);
    // Damage one data pack: the run must still say so.
    let data = dir.join("data");
    let sub = std::fs::read_dir(&data).unwrap().flatten().next().unwrap().path();
    let pack = std::fs::read_dir(&sub).unwrap().flatten().next().unwrap().path();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&pack, bytes).unwrap();
    let hook: Hook = Arc::new(|op, path| {
        if op == "write" && path.starts_with("checks/") {
            return Err("permission denied (read-only storage)".into());
        }
        Ok(())
    });
    let read_only = open(&dir, Some(hook));
    let opts = CheckOptions { read_data: Some(Subset::All), read_threads: 2, hostname: "test".into() };
    let report = check(&read_only, &opts, &NoProgress).unwrap();
    assert!(!report.problems.is_empty());
    assert!(report.check_record_error.as_deref().is_some_and(|e| e.contains("permission denied")), "{report:?}");
}

/// A storage server pads a pack to many times its size: readers fetch only the bytes the
/// index states (restore still succeeds, the padding is never downloaded) and check reports
/// the stored size.
#[test]
fn an_enlarged_pack_is_read_only_as_far_as_the_index_says() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    source(&src);
    let repo = memory_repo("ops-enlarged");
    let handle = IndexedRepository::load(repo.clone()).unwrap();
    let first = backup(&handle, &backup_opts(&src), &NoProgress).unwrap();
    let handle = IndexedRepository::load(repo.clone()).unwrap();
    let info = *handle.index().packs().iter().find(|p| p.kind == BlobKind::Data).unwrap();
    let path = StoredObject::Pack(BlobKind::Data, info.id).path();
    let mut bytes = repo.backend().read(&path).unwrap().to_vec();
    bytes.extend(std::iter::repeat_n(0u8, 8 << 20));
    repo.backend().write(&path, bytes).unwrap();

    let before = repo.backend().stats().bytes_down;
    let data = handle.read_pack(BlobKind::Data, &info.id).unwrap();
    assert_eq!(data.len() as u64, info.size);
    assert_eq!(repo.backend().stats().bytes_down - before, info.size, "the padding was downloaded");

    let target = tmp.path().join("restored");
    let opts = RestoreOptions { target: target.clone(), ..Default::default() };
    let report = restore(&handle, first.snapshot.tree, "first", &opts, &NoProgress).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    same_files(&src, &target.join(src.strip_prefix("/").unwrap()));

    let opts = CheckOptions { read_data: Some(Subset::All), read_threads: 2, hostname: "test".into() };
    let before = repo.backend().stats().bytes_down;
    let r = check(&repo, &opts, &NoProgress).unwrap();
    assert!(r.problems.iter().any(|p| p.kind == ProblemKind::PackSize), "{:?}", r.problems);
    assert!(repo.backend().stats().bytes_down - before < 8 << 20, "check downloaded the padding");
}
