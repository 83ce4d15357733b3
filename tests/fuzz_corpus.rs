//! Replays the checked-in fuzz corpus (fuzz/corpus/<target>/*) through the same entry points
//! as the cargo-fuzz targets, so every input a fuzzer ever found interesting stays tested.
//! `cargo test --test fuzz_corpus -- --ignored` regenerates the seed inputs.

use std::path::PathBuf;

use vault_format::blob::{Compression, Padding};
use vault_format::config::Config;
use vault_format::fuzzing::{TARGETS, fuzz_keys};
use vault_format::index::{IndexFile, IndexPack};
use vault_format::keyfile::{KdfParams, KeyFile, KeyMeta};
use vault_format::pack::{self, BlobKind, PackBuilder};
use vault_format::snapshot::Snapshot;
use vault_format::tree::{ContentItem, Node, NodeKind, Tree};
use vault_format::{BlobId, Id, PackId};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

#[test]
fn replay_corpus() {
    let mut total = 0;
    for (name, f) in TARGETS {
        let dir = corpus().join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            f(&data);
            // Truncations and single-byte flips of every seed, too.
            for cut in [0, 1, data.len() / 2, data.len().saturating_sub(1)] {
                f(&data[..cut.min(data.len())]);
            }
            for i in (0..data.len()).step_by((data.len() / 64).max(1)) {
                let mut d = data.clone();
                d[i] ^= 0x80;
                f(&d);
            }
            total += 1;
        }
    }
    assert!(total >= TARGETS.len(), "the corpus is missing");
    // The repository-opening path (vault-repo's entry point), on whole crafted repositories.
    let dir = corpus().join("open_repository");
    let mut seeds = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let trees = vault_repo::fuzzing::open_repository(&data);
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("seed-")) {
            assert!(trees > 0, "{} does not reach a snapshot's tree", path.display());
        }
        for i in (0..data.len()).step_by((data.len() / 32).max(1)) {
            let mut d = data.clone();
            d[i] ^= 0x01;
            vault_repo::fuzzing::open_repository(&d);
        }
        seeds += 1;
    }
    assert!(seeds > 0, "the open_repository corpus is missing");
}

#[test]
#[ignore]
fn write_seeds() {
    let k = fuzz_keys();
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus().join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    let mut node = Node::new(b"file".to_vec(), NodeKind::File);
    node.content = vec![ContentItem::Data { id: BlobId(Id([1; 32])), length: 5 }, ContentItem::Hole { length: 7 }];
    node.size = 12;
    node.xattrs = vec![(b"user.x".to_vec(), b"y".to_vec())];
    let mut dir = Node::new(b"dir".to_vec(), NodeKind::Dir);
    dir.subtree = Some(BlobId(Id([2; 32])));
    let tree = Tree { nodes: vec![dir, node] };
    write("tree", "seed-two-nodes", &tree.encode());
    write("tree", "seed-empty", &Tree::default().encode());

    let mut b = PackBuilder::new(BlobKind::Data, 0);
    let raw = b"blob";
    let id = k.blob_id(raw);
    b.add(id, &pack::seal_blob(&k, BlobKind::Data, &id, raw, Compression::Off, Padding::None).unwrap(), 4);
    let (bytes, entries) = b.finish(&k).unwrap();
    write("pack_header", "seed-pack", &bytes);
    let idx = IndexFile {
        supersedes: vec![],
        packs: vec![IndexPack {
            id: PackId(Id([3; 32])),
            kind: BlobKind::Data,
            size: bytes.len() as u64,
            blobs: entries,
        }],
    };
    write("index", "seed-plain", &idx.encode_plain());
    write("index", "seed-sealed", &idx.encode(&k).unwrap());

    let snap = Snapshot {
        version: 1,
        time: "2026-11-25T00:00:00Z".into(),
        tree: BlobId(Id([4; 32])),
        paths: vec!["/x".into()],
        hostname: "h".into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        program_version: "vault".into(),
        summary: None,
        filters: None,
        original: None,
        written_by: None,
    };
    write("snapshot", "seed-json", &snap.to_json());
    write("snapshot", "seed-sealed", &snap.encode(&k).unwrap());
    let cfg = Config::new(Id([5; 32]));
    write("config", "seed-json", &cfg.to_json());
    write("config", "seed-sealed", &cfg.encode(&k).unwrap());
    let kf = KeyFile::wrap(
        k.master().unwrap(),
        b"password",
        KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 },
        [6; 32],
        [7; 24],
        KeyMeta::default(),
    )
    .unwrap();
    write("key_file", "seed-cheap-kdf", &kf.to_json());

    // Records of the deletion protocol, from the golden vectors' plaintexts, as JSON and
    // sealed under the fuzz key.
    for (vector, name) in [
        ("announcement", "announcement"),
        ("condemnation", "condemnation"),
        ("wait_record", "wait-record"),
        ("tombstone", "tombstone"),
        ("check_record", "check-record"),
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("repo-format/vectors/{vector}.json"));
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let plain = v["plaintext"].as_str().unwrap().as_bytes();
        write("records", &format!("seed-{name}-json"), plain);
        let sealed = vault_format::file::seal(&k, file_kind(vector), plain, Compression::Off).unwrap();
        write("records", &format!("seed-{name}-sealed"), &sealed);
    }

    // A whole small repository: config, index, snapshot and the tree pack they describe.
    let root = Tree::default();
    let raw = root.encode();
    let tree_id = k.blob_id(&raw);
    let mut tp = PackBuilder::new(BlobKind::Tree, 0);
    tp.add(
        tree_id,
        &pack::seal_blob(&k, BlobKind::Tree, &tree_id, &raw, Compression::Off, Padding::None).unwrap(),
        raw.len() as u32,
    );
    let (tree_pack, tree_entries) = tp.finish(&k).unwrap();
    let idx = IndexFile {
        supersedes: vec![],
        packs: vec![IndexPack {
            id: PackId(Id::of_stored_bytes(&tree_pack)),
            kind: BlobKind::Tree,
            size: tree_pack.len() as u64,
            blobs: tree_entries,
        }],
    };
    let snap = Snapshot { tree: tree_id, ..snap };
    let mut repo = Vec::new();
    for part in [cfg.encode(&k).unwrap(), idx.encode(&k).unwrap(), snap.encode(&k).unwrap(), tree_pack] {
        if !repo.is_empty() {
            repo.extend_from_slice(&[0xff, 0xfe]);
        }
        repo.extend_from_slice(&part);
    }
    write("open_repository", "seed-small-repository", &repo);
}

fn file_kind(vector: &str) -> vault_format::file::FileKind {
    use vault_format::file::SealedDocument;
    match vector {
        "announcement" => vault_format::announcement::Announcement::KIND,
        "condemnation" => vault_format::condemnation::Condemnation::KIND,
        "wait_record" => vault_format::condemnation::WaitRecord::KIND,
        "tombstone" => vault_format::tombstone::Tombstone::KIND,
        _ => vault_format::check_record::CheckRecord::KIND,
    }
}
