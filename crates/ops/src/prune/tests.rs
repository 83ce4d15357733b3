//! The deletion protocol step by step: a prune paused before each of its writes and
//! deletes (every snapshot checks clean and restores byte for byte at each pause), a prune
//! failing at each step in turn (nothing lost, the next prune finishes), and a writer that
//! loaded the index before a prune (the deletion waits for it, and its snapshot's blobs
//! are rescued). The repository is a local directory opened twice: the prune's handle
//! goes through a hook, the observer's does not.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use vault_format::SnapshotId;
use vault_format::keyfile::{KdfParams, KeyMeta};
use vault_format::snapshot::Snapshot;
use vault_format::xorshift::xorshift_bytes;
use vault_repo::backend::{Hook, OpenMode};
use vault_repo::{Backend, IndexedRepository, InitOptions, Location, Repository};

use super::plan::UnusedLimit;
use super::{PruneOptions, prune};
use crate::backup::backup;
use crate::check::{CheckOptions, Subset, check};
use crate::forget::remove_snapshots;
use crate::progress::NoProgress;
use crate::restore::{RestoreOptions, restore};
use crate::select::{SnapshotFilter, list};
use crate::tests::backup_opts;

pub(crate) type Files = BTreeMap<String, Vec<u8>>;

pub(crate) fn open(dir: &Path, hook: Option<Hook>) -> Arc<Repository> {
    let mut b = Backend::open(&Location::Local(dir.to_path_buf()), &Default::default(), OpenMode::Existing).unwrap();
    if let Some(h) = hook {
        b = b.with_hook(h);
    }
    Arc::new(Repository::open(b, b"pw").unwrap())
}

pub(crate) fn init(dir: &Path) -> Arc<Repository> {
    let b = Backend::open(&Location::Local(dir.to_path_buf()), &Default::default(), OpenMode::Create).unwrap();
    let opts = InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
    Arc::new(Repository::init(b, b"pw", &opts, KeyMeta::default()).unwrap())
}

/// Replaces `src`'s contents with `files` (name, seed, length).
pub(crate) fn write_src(src: &Path, files: &[(&str, u64, usize)]) -> Files {
    let _ = std::fs::remove_dir_all(src);
    std::fs::create_dir_all(src).unwrap();
    files
        .iter()
        .map(|(name, seed, len)| {
            let data = xorshift_bytes(*len, *seed);
            std::fs::write(src.join(name), &data).unwrap();
            (src.join(name).to_string_lossy().into_owned(), data)
        })
        .collect()
}

pub(crate) fn snap(repo: &Arc<Repository>, src: &Path) -> SnapshotId {
    let handle = IndexedRepository::load(repo.clone()).unwrap();
    backup(&handle, &backup_opts(src), &NoProgress).unwrap().snapshot_id.unwrap()
}

/// The repository checks clean and every listed snapshot restores to what was backed up.
pub(crate) fn verify(repo: &Arc<Repository>, expected: &HashMap<SnapshotId, Files>, read_data: bool) {
    let opts = CheckOptions { read_data: read_data.then_some(Subset::All), read_threads: 2, hostname: "test".into() };
    let report = check(repo, &opts, &NoProgress).unwrap();
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    let handle = IndexedRepository::load(repo.clone()).unwrap();
    let (snaps, bad) = list(repo, &SnapshotFilter::default()).unwrap();
    assert!(bad.is_empty());
    for (id, s) in snaps {
        let want = &expected[&id];
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("r");
        let r = restore(
            &handle,
            s.tree,
            &id.short(),
            &RestoreOptions { target: target.clone(), ..Default::default() },
            &NoProgress,
        )
        .unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        for (path, data) in want {
            let restored = target.join(path.trim_start_matches('/'));
            assert_eq!(&std::fs::read(restored).unwrap(), data, "{} in {}", path, id.short());
        }
    }
}

/// Three snapshots sharing some files; the first is forgotten. Returns what the others hold.
pub(crate) fn history(repo: &Arc<Repository>, src: &Path) -> HashMap<SnapshotId, Files> {
    const K: usize = 1024;
    let mut expected = HashMap::new();
    // Many small files beside `a`: a backup spreads blobs over 3 open packs at random, so
    // `a`'s pack holds some of them (all but certainly) and must be repacked.
    let names: Vec<String> = (0..30).map(|i| format!("b{i}")).collect();
    let mut first: Vec<(&str, u64, usize)> = vec![("a", 1, 300 * K), ("c", 3, 100 * K)];
    first.extend(names.iter().enumerate().map(|(i, n)| (n.as_str(), 100 + i as u64, 10 * K)));
    let f1 = write_src(src, &first);
    let s1 = snap(repo, src);
    let f2 = write_src(src, &[("a", 1, 300 * K), ("c", 33, 100 * K), ("d", 4, 150 * K)]);
    let s2 = snap(repo, src);
    let f3 = write_src(src, &[("a", 1, 300 * K), ("d", 4, 150 * K), ("e", 5, 50 * K)]);
    let s3 = snap(repo, src);
    expected.insert(s1, f1);
    expected.insert(s2, f2);
    expected.insert(s3, f3);
    remove_snapshots(repo, &[s1], "forget").unwrap();
    expected
}

const TIGHT: PruneOptions =
    PruneOptions { max_unused: UnusedLimit::Bytes(0), max_repack: None, dry_run: false, reencrypt: false };

#[test]
fn every_step_of_a_prune_leaves_every_snapshot_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let plain = init(&dir);
    let expected = history(&plain, &src);
    let (tx, rx) = mpsc::channel::<(String, mpsc::Sender<()>)>();
    let tx = std::sync::Mutex::new(tx);
    let hook: Hook = Arc::new(move |op, path| {
        if op != "list" {
            let (ack_tx, ack_rx) = mpsc::channel();
            tx.lock().unwrap().send((format!("{op} {path}"), ack_tx)).map_err(|e| e.to_string())?;
            ack_rx.recv().map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    let hooked = open(&dir, Some(hook));
    let pruner = std::thread::spawn(move || prune(&hooked, &TIGHT, &NoProgress).unwrap());
    let mut steps = Vec::new();
    // The prune may pause inside rayon's global pool; the observer works in its own.
    let observer = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for (step, ack) in rx {
        observer.install(|| verify(&plain, &expected, false));
        steps.push(step);
        ack.send(()).unwrap();
    }
    let report = pruner.join().unwrap();
    assert_eq!(report.completed.len(), 1, "{report:#?}");
    assert!(report.completed[0].packs_deleted > 0 && report.packs.repacked > 0, "{report:#?}");
    // The order the protocol rests on: condemnation, then the index, then the wait
    // record, and only then deletions.
    let first = |prefix: &str| steps.iter().position(|s| s.starts_with(prefix)).unwrap();
    assert!(first("write condemned/") < first("write index/"), "{steps:#?}");
    assert!(first("write index/") < first("write waiting/"), "{steps:#?}");
    assert!(first("write waiting/") < first("delete data/").min(first("delete tree/")), "{steps:#?}");
    verify(&plain, &expected, true);
}

#[test]
fn a_prune_that_fails_at_any_step_loses_nothing_and_the_next_one_finishes() {
    let mut k = 0;
    loop {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
        let plain = init(&dir);
        let expected = history(&plain, &src);
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        let hook: Hook = Arc::new(move |op, _| {
            if op != "list" && c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == k {
                return Err("injected failure".into());
            }
            Ok(())
        });
        let hooked = open(&dir, Some(hook));
        let failed = prune(&hooked, &TIGHT, &NoProgress).is_err();
        verify(&plain, &expected, false);
        if !failed {
            assert!(k > 10, "a prune has more steps than {k}");
            break;
        }
        // The failed prune's announcement was removed when it ended (or never written);
        // the next prune completes what it began.
        let report = prune(&plain, &TIGHT, &NoProgress).unwrap();
        assert!(report.waiting.is_empty(), "step {k}: {report:#?}");
        verify(&plain, &expected, true);
        // Nothing but the live data is left: a further prune has nothing to delete.
        let again = prune(&plain, &TIGHT, &NoProgress).unwrap();
        assert_eq!(again.packs.unused + again.packs.unindexed + again.packs.repacked, 0, "step {k}: {again:#?}");
        k += 1;
    }
}

/// What [`condemned_under_a_writer`] sets up.
struct Scene {
    repo: Arc<Repository>,
    expected: HashMap<SnapshotId, Files>,
    announced: vault_repo::Announced,
    writer_view: IndexedRepository,
    /// The forgotten snapshot and its files.
    forgotten: (Snapshot, Files),
}

/// A repository with one snapshot of `x`,`y` (about to be forgotten) and one of `z`, and
/// a writer announced with the index loaded while `x`,`y` were live.
fn condemned_under_a_writer(tmp: &Path) -> Scene {
    const K: usize = 1024;
    let (dir, src) = (tmp.join("repo"), tmp.join("src"));
    let repo = init(&dir);
    let mut expected = HashMap::new();
    let old = write_src(&src, &[("x", 7, 400 * K), ("y", 8, 100 * K)]);
    let s1 = snap(&repo, &src);
    let other = tmp.join("other");
    let keep = write_src(&other, &[("z", 9, 100 * K)]);
    let s2 = snap(&repo, &other);
    expected.insert(s2, keep);
    let announced = vault_repo::announce(&repo, "backup").unwrap();
    let writer_view = IndexedRepository::load(repo.clone()).unwrap();
    // x and y lose their last snapshot, and a prune condemns their packs but must wait.
    let first_snapshot = repo.load_snapshot(&s1).unwrap();
    remove_snapshots(&repo, &[s1], "forget").unwrap();
    let first = prune(&repo, &TIGHT, &NoProgress).unwrap();
    assert!(first.completed.is_empty(), "{first:#?}");
    assert_eq!(first.waiting.len(), 1);
    assert!(first.waiting[0].writers[0].starts_with("backup on "), "{first:#?}");
    Scene { repo, expected, announced, writer_view, forgotten: (first_snapshot, old) }
}

#[test]
fn a_backup_that_loaded_the_old_index_is_waited_for_and_stores_again_what_was_condemned() {
    let tmp = tempfile::tempdir().unwrap();
    let Scene { repo, mut expected, announced, writer_view, forgotten: (_, old) } =
        condemned_under_a_writer(tmp.path());
    // The backup goes on: it deduplicates x and y against the index it loaded, finds at
    // commit that their packs left the index, and stores them again.
    let src = tmp.path().join("src");
    let r = backup(&writer_view, &backup_opts(&src), &NoProgress).unwrap();
    assert!(r.recopied >= 2, "{}", r.recopied);
    expected.insert(r.snapshot_id.unwrap(), old);
    announced.end().unwrap();
    verify(&repo, &expected, false);
    let second = prune(&repo, &TIGHT, &NoProgress).unwrap();
    assert!(second.waiting.is_empty(), "{second:#?}");
    let done = &second.completed[0];
    assert!(done.packs_deleted > 0 && done.packs_rescued == 0, "{second:#?}");
    verify(&repo, &expected, true);
}

#[test]
fn a_snapshot_committed_against_condemned_packs_is_rescued() {
    let tmp = tempfile::tempdir().unwrap();
    let Scene { repo, mut expected, announced, forgotten: (mut copy, old), .. } = condemned_under_a_writer(tmp.path());
    // A writer without the commit check (an older vault, say) commits a snapshot of the
    // condemned tree.
    copy.time = "2030-01-01T00:00:00Z".into();
    let s3 = repo.save_snapshot(&copy).unwrap();
    expected.insert(s3, old);
    announced.end().unwrap();
    // Before any prune ran again, the snapshot reads from the condemned packs.
    verify(&repo, &expected, false);
    let second = prune(&repo, &TIGHT, &NoProgress).unwrap();
    assert!(second.waiting.is_empty(), "{second:#?}");
    assert!(second.completed.iter().map(|c| c.packs_rescued).sum::<u64>() > 0, "{second:#?}");
    verify(&repo, &expected, true);
    let third = prune(&repo, &TIGHT, &NoProgress).unwrap();
    assert_eq!(third.packs.unused + third.packs.unindexed, 0, "{third:#?}");
    verify(&repo, &expected, true);
}

#[test]
fn storage_that_refuses_deletes_or_writes_stops_prune_and_loses_nothing() {
    for refused in ["delete", "write"] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
        let plain = init(&dir);
        let expected = history(&plain, &src);
        let hook: Hook = Arc::new(move |op, path| {
            // The writer announcement itself may go through, so that the refusal lands
            // where prune changes the repository.
            if op == refused && !path.starts_with("writers/") {
                return Err("permission denied (read-only storage)".into());
            }
            Ok(())
        });
        let hooked = open(&dir, Some(hook));
        let err = prune(&hooked, &TIGHT, &NoProgress).unwrap_err().to_string();
        assert!(err.contains("permission denied") && !err.contains('\n'), "{refused}: {err}");
        verify(&plain, &expected, true);
        // With storage working again, the next prune completes.
        let done = prune(&plain, &TIGHT, &NoProgress).unwrap();
        assert!(done.waiting.is_empty(), "{done:#?}");
        verify(&plain, &expected, true);
    }
}

#[test]
fn a_restore_that_loaded_the_index_before_a_prune_still_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let repo = init(&dir);
    let expected = history(&repo, &src);
    let before = IndexedRepository::load(repo.clone()).unwrap();
    let report = prune(&repo, &TIGHT, &NoProgress).unwrap();
    assert!(report.packs.repacked > 0 && report.completed[0].packs_deleted > 0, "{report:#?}");
    let (snaps, _) = list(&repo, &SnapshotFilter::default()).unwrap();
    for (id, s) in snaps {
        let target = tmp.path().join(format!("r-{}", id.short()));
        let opts = RestoreOptions { target: target.clone(), ..Default::default() };
        let r = restore(&before, s.tree, &id.short(), &opts, &NoProgress).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        for (path, data) in &expected[&id] {
            assert_eq!(&std::fs::read(target.join(path.trim_start_matches('/'))).unwrap(), data);
        }
    }
}

#[test]
fn a_damaged_index_file_stops_prune_before_it_deletes_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let repo = init(&dir);
    let _ = history(&repo, &src);
    let index_dir = dir.join("index");
    let victim = std::fs::read_dir(&index_dir).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let packs = |d: &Path| -> usize {
        ["data", "tree"]
            .iter()
            .flat_map(|k| std::fs::read_dir(d.join(k)).unwrap().flatten())
            .map(|sub| std::fs::read_dir(sub.path()).unwrap().count())
            .sum()
    };
    let before = packs(&dir);
    let err = prune(&repo, &TIGHT, &NoProgress).unwrap_err();
    assert!(matches!(err, crate::OpError::PruneRefused(_)), "{err}");
    assert!(err.to_string().contains("repair index"), "{err}");
    assert_eq!(packs(&dir), before);
    assert!(std::fs::read_dir(dir.join("condemned")).map(|d| d.count()).unwrap_or(0) == 0);
}
