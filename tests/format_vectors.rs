//! Golden vectors: fixed keys, nonces and inputs → exact bytes, as checked-in JSON files in
//! `repo-format/vectors/`. Every vector is decoded and re-encoded byte for byte.
//! `VAULT_WRITE_VECTORS=1 cargo test --test format_vectors` rewrites them (only when the
//! format changes on purpose, together with repo-format/SPEC.md).

use std::path::PathBuf;

use serde_json::{Value, json};
use vault_format::blob::{self, Compression, Padding};
use vault_format::chunker::{Chunker, ChunkerParams, gear_table, xorshift_bytes};
use vault_format::config::Config;
use vault_format::crypto::{self, Keys, ObjectKind, SecretKey};
use vault_format::file::{self, SealedDocument};
use vault_format::index::{IndexFile, IndexPack};
use vault_format::keyfile::{KdfParams, KeyFile, KeyMeta};
use vault_format::pack::{self, BlobKind, PackBuilder, PackEntry};
use vault_format::snapshot::Snapshot;
use vault_format::tree::{ContentItem, Node, NodeKind, Timestamp, Tree};
use vault_format::{BlobId, Id, IndexId, PackId, SnapshotId};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("repo-format/vectors")
}

fn keys() -> Keys {
    let mut m = [0u8; 32];
    for (i, b) in m.iter_mut().enumerate() {
        *b = i as u8;
    }
    Keys::from_master(SecretKey::from_bytes(m))
}

fn nonce(n: u8) -> [u8; 24] {
    [n; 24]
}

/// Compares with the checked-in vector, or writes it when asked to.
fn check(name: &str, v: Value) {
    let path = dir().join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&v).unwrap() + "\n";
    if std::env::var_os("VAULT_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored, v, "vector {name} differs from the code's output");
}

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

fn unh(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn key_derivation_and_blob_ids() {
    let k = keys();
    let sub = |ctx: &str| h(&blake3::derive_key(ctx, k.master().unwrap().expose()));
    let plain = b"vault blob id vector";
    check(
        "keys",
        json!({
            "master_key": h(k.master().unwrap().expose()),
            "encryption_key": sub(crypto::CONTEXT_ENCRYPTION),
            "blob_id_key": sub(crypto::CONTEXT_BLOB_ID),
            "chunker_key": h(k.chunker_key().expose()),
            "contexts": [crypto::CONTEXT_ENCRYPTION, crypto::CONTEXT_BLOB_ID, crypto::CONTEXT_CHUNKER],
            "blob_plaintext": h(plain),
            "blob_id": k.blob_id(plain).to_hex(),
            "stored_file_bytes": h(b"stored"),
            "stored_file_name": Id::of_stored_bytes(b"stored").to_hex(),
        }),
    );
}

#[test]
fn sealing() {
    let k = keys();
    let id = k.blob_id(b"data");
    let sealed = k.seal_with_nonce(&nonce(1), ObjectKind::DataBlob, Some(&id), b"data");
    assert_eq!(k.open(ObjectKind::DataBlob, Some(&id), &sealed).unwrap(), b"data");
    let sealed_snap = k.seal_with_nonce(&nonce(2), ObjectKind::Snapshot, None, b"{}");
    check(
        "seal",
        json!([
            {"kind": ObjectKind::DataBlob as u8, "blob_id": id.to_hex(), "nonce": h(&nonce(1)), "plaintext": h(b"data"),
             "associated_data": h(&crypto::associated_data(ObjectKind::DataBlob, Some(&id))), "sealed": h(&sealed)},
            {"kind": ObjectKind::Snapshot as u8, "nonce": h(&nonce(2)), "plaintext": h(b"{}"),
             "associated_data": h(&crypto::associated_data(ObjectKind::Snapshot, None)), "sealed": h(&sealed_snap)},
        ]),
    );
}

#[test]
fn envelopes() {
    let raw = b"envelope vector: stored";
    let stored = blob::encode(raw, Compression::Off, Padding::None);
    let padded = blob::encode(raw, Compression::Off, Padding::Padme);
    assert_eq!(blob::decode(&padded, 100).unwrap(), raw);
    // zstd output may differ between zstd releases; only decoding is normative.
    let text = "compressible ".repeat(40);
    let vector_path = dir().join("envelope.json");
    let zstd_env = match std::fs::read_to_string(&vector_path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok())
    {
        Some(v) if std::env::var_os("VAULT_WRITE_VECTORS").is_none() => unh(&v["zstd"]["envelope"]),
        _ => blob::encode(text.as_bytes(), Compression::Zstd { level: 3 }, Padding::None),
    };
    assert_eq!(blob::decode(&zstd_env, 10_000).unwrap(), text.as_bytes());
    check(
        "envelope",
        json!({
            "stored": {"raw": h(raw), "envelope": h(&stored)},
            "padme": {"raw": h(raw), "envelope": h(&padded)},
            "zstd": {"raw": h(text.as_bytes()), "envelope": h(&zstd_env), "note": "decode only"},
            "padme_lengths": [[9, blob::padme_len(9)], [1000, blob::padme_len(1000)], [1_000_001, blob::padme_len(1_000_001)]],
        }),
    );
}

#[test]
fn key_file() {
    let k = keys();
    let params = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    let meta =
        KeyMeta { created: "2026-11-25T00:00:00Z".into(), host: "vector-host".into(), username: "vector".into() };
    let kf = KeyFile::wrap(k.master().unwrap(), b"vector password", params, [7u8; 32], nonce(3), meta).unwrap();
    let bytes = kf.to_json();
    let back = KeyFile::from_json(&bytes).unwrap();
    assert_eq!(back.unwrap_master(b"vector password").unwrap().master().unwrap(), k.master().unwrap());
    check(
        "keyfile",
        json!({"password": "vector password", "key_file": String::from_utf8(bytes.clone()).unwrap(), "name": Id::of_stored_bytes(&bytes).to_hex(), "master_key": h(k.master().unwrap().expose())}),
    );
}

#[test]
fn config_file() {
    let k = keys();
    let c = Config::new(Id([9u8; 32]));
    let bytes = file::seal_with_nonce(&k, file::CONFIG, &c.to_json(), Compression::Off, &nonce(4));
    assert_eq!(Config::decode(&k, &bytes).unwrap(), c);
    check(
        "config",
        json!({"plaintext": String::from_utf8(c.to_json()).unwrap(), "nonce": h(&nonce(4)), "file": h(&bytes)}),
    );
}

/// A version 2 config: the repository (master key `00 … 1f`) carries the content keys of
/// another (master key `20 … 3f`), and its blob ids are that one's.
#[test]
fn config_with_shared_content_keys() {
    let k = keys();
    let other = Keys::from_master(SecretKey::from_bytes(std::array::from_fn(|i| 0x20 + i as u8)));
    let mut c = Config::new(Id([9u8; 32]));
    c.share_content_keys(other.content_keys());
    let plaintext = serde_json::to_vec(&c).unwrap();
    let bytes = file::seal_with_nonce(&k, file::CONFIG, &plaintext, Compression::Off, &nonce(5));
    let back = Config::decode(&k, &bytes).unwrap();
    assert_eq!(back, c);
    let used = back.keys(k.clone());
    let plain = b"vault blob id vector";
    assert_eq!(used.blob_id(plain), other.blob_id(plain));
    check(
        "config_shared_content",
        json!({
            "other_master_key": h(other.master().unwrap().expose()),
            "plaintext": String::from_utf8(plaintext).unwrap(),
            "nonce": h(&nonce(5)),
            "file": h(&bytes),
            "blob_plaintext": h(plain),
            "blob_id": used.blob_id(plain).to_hex(),
            "fingerprint_context": crypto::CONTEXT_FINGERPRINT,
            "fingerprint": c.content_keys.as_ref().unwrap().fingerprint(),
        }),
    );
}

#[test]
fn snapshot_file() {
    let k = keys();
    let s = Snapshot {
        version: 1,
        time: "2026-11-25T08:00:00.123456789Z".into(),
        tree: BlobId(Id([1u8; 32])),
        paths: vec!["/home/user".into()],
        hostname: "host".into(),
        username: "user".into(),
        uid: 1000,
        gid: 1000,
        tags: vec!["daily".into()],
        parent: Some(SnapshotId(Id([2u8; 32]))),
        program_version: "vault 0.1.0".into(),
        summary: None,
        filters: None,
        original: None,
        written_by: None,
    };
    let bytes = file::seal_with_nonce(&k, file::SNAPSHOT, &s.to_json(), Compression::Off, &nonce(5));
    assert_eq!(Snapshot { written_by: None, ..Snapshot::decode(&k, &bytes).unwrap() }, s);
    check(
        "snapshot",
        json!({"plaintext": String::from_utf8(s.to_json()).unwrap(), "nonce": h(&nonce(5)), "file": h(&bytes), "name": Id::of_stored_bytes(&bytes).to_hex()}),
    );
}

fn sample_tree() -> Tree {
    let mut file = Node::new(b"file.txt".to_vec(), NodeKind::File);
    file.mode = 0o644;
    file.uid = 1000;
    file.gid = 100;
    file.user = b"user".to_vec();
    file.group = b"users".to_vec();
    file.mtime = Timestamp { sec: 1_700_000_000, nsec: 5 };
    file.ctime = Timestamp { sec: 1_700_000_001, nsec: 6 };
    file.inode = 42;
    file.device = 2049;
    file.links = 1;
    file.content =
        vec![ContentItem::Data { id: BlobId(Id([3u8; 32])), length: 10 }, ContentItem::Hole { length: 4096 }];
    file.size = 4106;
    file.xattrs = vec![(b"user.a".to_vec(), b"1".to_vec())];
    let mut dir = Node::new(b"dir".to_vec(), NodeKind::Dir);
    dir.mode = 0o755;
    dir.subtree = Some(BlobId(Id([4u8; 32])));
    dir.mtime = Timestamp { sec: -1, nsec: 999_999_999 };
    let mut link = Node::new(vec![b'l', 0xe9], NodeKind::Symlink);
    link.mode = 0o777;
    link.target = b"../file.txt".to_vec();
    let mut t = Tree { nodes: vec![link, file, dir] };
    t.canonicalize();
    t
}

#[test]
fn tree_encoding() {
    let k = keys();
    let t = sample_tree();
    let bytes = t.encode();
    let back = Tree::decode(&bytes).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.encode(), bytes);
    check(
        "tree",
        json!({"encoded": h(&bytes), "blob_id": k.blob_id(&bytes).to_hex(), "names": t.nodes.iter().map(|n| h(&n.name)).collect::<Vec<_>>()}),
    );
}

#[test]
fn pack_and_index() {
    let k = keys();
    let blobs: Vec<&[u8]> = vec![b"first blob", b"second, longer blob"];
    let mut b = PackBuilder::new(BlobKind::Data, 0);
    let mut sealed_list = Vec::new();
    for (i, raw) in blobs.iter().enumerate() {
        let id = k.blob_id(raw);
        let env = blob::encode(raw, Compression::Off, Padding::None);
        let sealed = k.seal_with_nonce(&nonce(10 + i as u8), ObjectKind::DataBlob, Some(&id), &env);
        b.add(id, &sealed, raw.len() as u32);
        sealed_list
            .push(json!({"raw": h(raw), "id": id.to_hex(), "nonce": h(&nonce(10 + i as u8)), "sealed": h(&sealed)}));
    }
    let (bytes, entries) = b.finish_with_nonce(&k, &nonce(20));
    let (kind, parsed) = pack::parse_pack(&k, &bytes).unwrap();
    assert_eq!((kind, &parsed), (BlobKind::Data, &entries));
    for (e, raw) in entries.iter().zip(&blobs) {
        let s = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        assert_eq!(&pack::open_blob(&k, BlobKind::Data, &e.id, s, e.raw_length).unwrap(), raw);
    }
    let pack_id = PackId(Id::of_stored_bytes(&bytes));
    let idx = IndexFile {
        supersedes: vec![IndexId(Id([8u8; 32]))],
        packs: vec![IndexPack { id: pack_id, kind: BlobKind::Data, size: bytes.len() as u64, blobs: entries.clone() }],
    };
    let plain = idx.encode_plain();
    assert_eq!(IndexFile::decode_plain(&plain).unwrap(), idx);
    let idx_file = file::seal_with_nonce(&k, file::INDEX, &plain, Compression::Off, &nonce(21));
    assert_eq!(IndexFile::decode(&k, &idx_file).unwrap(), idx);
    let entry_json = |e: &PackEntry| json!({"id": e.id.to_hex(), "offset": e.offset, "length": e.length, "raw_length": e.raw_length});
    check(
        "pack",
        json!({
            "blobs": sealed_list,
            "header_nonce": h(&nonce(20)),
            "pack": h(&bytes),
            "pack_id": pack_id.to_hex(),
            "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
        }),
    );
    check("index", json!({"plaintext": h(&plain), "nonce": h(&nonce(21)), "file": h(&idx_file)}));
}

#[test]
fn chunker_boundaries() {
    let k = keys();
    let params = ChunkerParams { min_size: 2048, avg_size: 8192, max_size: 32768 };
    let c = Chunker::new(k.chunker_key(), params).unwrap();
    let input = xorshift_bytes(200_000, 0x0123_4567_89ab_cdef);
    let lens = c.chunk_lengths(&input);
    assert_eq!(lens.iter().sum::<usize>(), input.len());
    let default_c = Chunker::new(k.chunker_key(), ChunkerParams::default()).unwrap();
    let big = xorshift_bytes(8 << 20, 99);
    check(
        "chunker",
        json!({
            "chunker_key": h(k.chunker_key().expose()),
            "gear_first_8": gear_table(k.chunker_key())[..8].iter().map(|g| format!("{g:016x}")).collect::<Vec<_>>(),
            "small_params": params,
            "small_input": {"generator": "xorshift64", "seed": "0123456789abcdef", "length": 200000},
            "small_chunk_lengths": lens,
            "default_params": ChunkerParams::default(),
            "default_input": {"generator": "xorshift64", "seed": "0000000000000063", "length": 8 << 20},
            "default_chunk_lengths": default_c.chunk_lengths(&big),
        }),
    );
}

/// A sealed JSON document: its plaintext, nonce and file bytes, decoded back.
fn document_vector<T: SealedDocument + PartialEq + std::fmt::Debug>(name: &str, doc: &T, n: u8) {
    let k = keys();
    let bytes = file::seal_with_nonce(&k, T::KIND, &doc.to_json(), Compression::Off, &nonce(n));
    assert_eq!(&T::decode(&k, &bytes).unwrap(), doc);
    check(
        name,
        json!({"plaintext": String::from_utf8(doc.to_json()).unwrap(), "nonce": h(&nonce(n)), "file": h(&bytes), "name": Id::of_stored_bytes(&bytes).to_hex()}),
    );
}

#[test]
fn check_record_file() {
    use vault_format::check_record::CheckRecord;
    let r = CheckRecord {
        version: 1,
        time: "2026-11-25T09:00:00Z".into(),
        hostname: "host".into(),
        packs: vec![PackId(Id([5u8; 32]))],
    };
    document_vector("check_record", &r, 6);
}

#[test]
fn deletion_records() {
    use vault_format::announcement::Announcement;
    use vault_format::condemnation::{Condemnation, WaitRecord};
    use vault_format::tombstone::Tombstone;
    let a = Announcement {
        version: 1,
        time: "2026-12-01T10:00:00Z".into(),
        hostname: "host".into(),
        pid: 4242,
        boot_id: "8c1f5a2e-3b7d-4e6f-9a0b-1c2d3e4f5a6b".into(),
        process_start: 123456,
        command: "backup".into(),
        nonce: "0f".repeat(16),
    };
    document_vector("announcement", &a, 7);
    let c = Condemnation {
        version: 1,
        time: "2026-12-01T10:05:00Z".into(),
        hostname: "host".into(),
        snapshots: vec![SnapshotId(Id([1u8; 32]))],
        data_packs: vec![PackId(Id([2u8; 32]))],
        tree_packs: vec![PackId(Id([3u8; 32]))],
        indexes: vec![IndexId(Id([4u8; 32]))],
        tmp: vec!["00112233445566778899aabbccddeeff".into()],
    };
    document_vector("condemnation", &c, 8);
    let w = WaitRecord {
        version: 1,
        time: "2026-12-01T10:05:01Z".into(),
        hostname: "host".into(),
        condemnation: Id([5u8; 32]),
        writers: vec![Id([6u8; 32])],
    };
    document_vector("wait_record", &w, 9);
    let t = Tombstone {
        version: 1,
        time: "2026-12-01T10:04:00Z".into(),
        hostname: "host".into(),
        command: "forget".into(),
        snapshots: vec![SnapshotId(Id([7u8; 32]))],
    };
    document_vector("tombstone", &t, 10);
}

/// Write-only keys (spec §3.1): the new sub-keys and key ids, a write-only key file, a key
/// record, what a write-only key seals, and an index file tagged by a full key.
#[test]
fn write_only_keys() {
    use vault_format::access::{KeyRecord, WRITE_ONLY, WriteOnlyPayload};
    use vault_format::crypto::SealKeyId;
    use vault_format::file::Origin;
    use vault_format::keyfile::Unwrapped;

    let mut k = keys();
    let master = k.master().unwrap().clone();
    let writer_key = SecretKey::from_bytes(std::array::from_fn(|i| 0x40 + i as u8));
    let config = Config::new(Id([9u8; 32]));
    let config_file =
        file::seal_with_nonce(&k, file::CONFIG, &serde_json::to_vec(&config).unwrap(), Compression::Off, &nonce(4));
    let payload = WriteOnlyPayload {
        version: 1,
        access: WRITE_ONLY.into(),
        writer_key: writer_key.clone(),
        metadata_key: k.metadata_key().clone(),
        content_keys: k.content_keys(),
        config: config.clone(),
        config_file: Id::of_stored_bytes(&config_file),
    };
    let params = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    let meta = KeyMeta { created: "2026-12-02T00:00:00Z".into(), host: "beta".into(), username: "backup".into() };
    let kf = KeyFile::wrap_write_only(&payload, b"writer password", params, [8u8; 32], nonce(9), meta).unwrap();
    let kf_bytes = kf.to_json();
    let Ok(Unwrapped::WriteOnly(back)) = KeyFile::from_json(&kf_bytes).unwrap().unwrap(b"writer password") else {
        panic!("a write-only key file opens to its payload")
    };
    assert_eq!(back.writer_key, writer_key);
    let w = back.keys();

    let record = KeyRecord {
        version: 1,
        created: "2026-12-02T00:00:00Z".into(),
        host: "beta".into(),
        username: "backup".into(),
        key: writer_key.clone(),
    };
    let record_plain = serde_json::to_vec(&record).unwrap();
    let record_file = file::seal_with_nonce(&k, file::KEY_RECORD, &record_plain, Compression::Off, &nonce(10));
    assert_eq!(KeyRecord::decode(&k, &record_file).unwrap().key, writer_key);
    k.add_writer_key(writer_key.clone());

    // What the write-only key seals starts its nonce with its key id; full keys open it.
    let s = Snapshot {
        version: 1,
        time: "2026-12-02T08:00:00Z".into(),
        tree: BlobId(Id([1u8; 32])),
        paths: vec!["/srv".into()],
        hostname: "beta".into(),
        username: "backup".into(),
        uid: 0,
        gid: 0,
        tags: Vec::new(),
        parent: None,
        program_version: "vault 0.1.0".into(),
        summary: None,
        filters: None,
        original: None,
        written_by: None,
    };
    let snap_file = file::seal_with_nonce(&w, file::SNAPSHOT, &s.to_json(), Compression::Off, &nonce(11));
    let opened = Snapshot::decode(&k, &snap_file).unwrap();
    assert_eq!(opened.written_by, Some(Origin::Writer(SealKeyId::of(&writer_key))));
    let plain = b"written by a write-only key";
    let blob_id = w.blob_id(plain);
    let env = blob::encode(plain, Compression::Off, Padding::None);
    let sealed_blob = w.seal_with_nonce(&nonce(12), ObjectKind::DataBlob, Some(&blob_id), &env);
    assert_eq!(k.open(ObjectKind::DataBlob, Some(&blob_id), &sealed_blob).unwrap(), env);

    // A full key in a repository with write-only keys tags its index files.
    k.set_shared(true);
    let idx = IndexFile { supersedes: vec![IndexId(Id([3u8; 32]))], packs: Vec::new() };
    let idx_file = file::seal_with_nonce(&k, file::INDEX, &idx.encode_plain(), Compression::Off, &nonce(13));
    assert_eq!(idx_file[4], 2);
    assert_eq!(IndexFile::decode(&k, &idx_file).unwrap(), idx);
    assert_eq!(IndexFile::decode(&w, &idx_file).unwrap(), idx);

    check(
        "write_only",
        json!({
            "master_key": h(master.expose()),
            "metadata_key_context": crypto::CONTEXT_METADATA,
            "metadata_key": h(k.metadata_key().expose()),
            "metadata_key_id": k.metadata_id().to_hex(),
            "authority_key_context": crypto::CONTEXT_AUTHORITY,
            "authority_key": h(&blake3::derive_key(crypto::CONTEXT_AUTHORITY, master.expose())),
            "key_id_context": crypto::CONTEXT_KEY_ID,
            "writer_key": h(writer_key.expose()),
            "writer_key_id": SealKeyId::of(&writer_key).to_hex(),
            "config_file": h(&config_file),
            "password": "writer password",
            "key_file": String::from_utf8(kf_bytes.clone()).unwrap(),
            "key_file_name": Id::of_stored_bytes(&kf_bytes).to_hex(),
            "payload": String::from_utf8(payload.to_secret_json().to_vec()).unwrap(),
            "key_record_plaintext": String::from_utf8(record_plain).unwrap(),
            "key_record_file": h(&record_file),
            "snapshot_plaintext": String::from_utf8(s.to_json()).unwrap(),
            "snapshot_file": h(&snap_file),
            "blob_plaintext": h(plain),
            "blob_id": blob_id.to_hex(),
            "sealed_blob": h(&sealed_blob),
            "index_plaintext": h(&idx.encode_plain()),
            "index_file": h(&idx_file),
        }),
    );
}

/// Key epochs (spec §3.2): a key file's agreement key, an epoch certificate, a grant sealed
/// to a key file, an object sealed with epoch 2's encryption key, a member record.
#[test]
fn key_epochs() {
    use vault_format::epoch::{self, AgreementSecret, Grant, GrantPayload, MemberRecord};
    use vault_format::file::SealedDocument;

    let k = keys();
    let master = k.master().unwrap().clone();
    let kek = SecretKey::from_bytes(std::array::from_fn(|i| 0x50 + i as u8));
    let agreement = AgreementSecret::from_kek(&kek);
    let m2 = SecretKey::from_bytes(std::array::from_fn(|i| 0x60 + i as u8));
    let mut k2 = k.clone();
    k2.enter_epoch(m2.clone());
    let payload = GrantPayload::from_keys(&k2, None).unwrap();
    let recipient = vault_format::KeyId(Id([5u8; 32]));
    let ephemeral: [u8; 32] = std::array::from_fn(|i| 0x70 + i as u8);
    let grant = Grant::seal_with(&payload, recipient, &agreement.public(), ephemeral, &nonce(14));
    let opened = Grant::parse(&grant).unwrap().open(&agreement).unwrap();
    assert_eq!(opened.verify(&master, true).unwrap(), vec![m2.clone()]);
    let payload_json = serde_json::to_vec(&opened).unwrap();

    let s = Snapshot {
        version: 1,
        time: "2026-12-02T18:00:00Z".into(),
        tree: BlobId(Id([1u8; 32])),
        paths: vec!["/home".into()],
        hostname: "alpha".into(),
        username: "root".into(),
        uid: 0,
        gid: 0,
        tags: Vec::new(),
        parent: None,
        program_version: "vault 0.1.0".into(),
        summary: None,
        filters: None,
        original: None,
        written_by: None,
    };
    let snap_file = file::seal_with_nonce(&k2, file::SNAPSHOT, &s.to_json(), Compression::Off, &nonce(15));
    assert_eq!(Snapshot::decode(&k2, &snap_file).unwrap().paths, s.paths);
    assert!(Snapshot::decode(&k, &snap_file).is_err(), "epoch 1's key does not open it");
    assert_eq!(k2.epoch_of(&snap_file[5..]), Some(2));
    let member = MemberRecord {
        version: 1,
        created: "2026-12-02T18:00:00Z".into(),
        key_file: recipient,
        access: "full".into(),
        agreement_key: h(&agreement.public()),
        writer: None,
    };
    let member_file = file::seal_with_nonce(&k2, MemberRecord::KIND, &member.to_json(), Compression::Off, &nonce(16));
    assert_eq!(MemberRecord::decode_origin(&k2, &member_file).unwrap(), (member.clone(), true));
    let enc2 = blake3::derive_key(crypto::CONTEXT_ENCRYPTION, m2.expose());

    check(
        "epochs",
        json!({
            "master_key": h(master.expose()),
            "agreement_context": epoch::CONTEXT_AGREEMENT,
            "key_file_kek": h(kek.expose()),
            "agreement_public": h(&agreement.public()),
            "epoch_2_master_key": h(m2.expose()),
            "epoch_2_encryption_key": h(&enc2),
            "epoch_2_encryption_key_id": vault_format::crypto::SealKeyId::of(&SecretKey::from_bytes(enc2)).to_hex(),
            "epoch_certificate_context": epoch::CONTEXT_EPOCH_CERT,
            "epoch_2_certificate": h(&epoch::certificate(true, &master, 2, &m2)),
            "metadata_certificate_context": epoch::CONTEXT_METADATA_CERT,
            "grant_context": epoch::CONTEXT_GRANT,
            "grant_recipient": recipient.to_hex(),
            "grant_ephemeral_secret": h(&ephemeral),
            "grant_payload": String::from_utf8(payload_json).unwrap(),
            "grant_file": h(&grant),
            "snapshot_epoch_2_file": h(&snap_file),
            "member_record_plaintext": String::from_utf8(member.to_json()).unwrap(),
            "member_record_file": h(&member_file),
        }),
    );
}
