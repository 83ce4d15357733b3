//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay test: each one
//! feeds arbitrary bytes to one decoder. The contract is simple: never panic, never
//! allocate without bound, whatever the input.

use super::announcement::Announcement;
use super::blob;
use super::check_record::CheckRecord;
use super::condemnation::{Condemnation, WaitRecord};
use super::config::Config;
use super::crypto::{Keys, SecretKey};
use super::file;
use super::file::SealedDocument;
use super::index::IndexFile;
use super::keyfile::KeyFile;
use super::pack;
use super::snapshot::Snapshot;
use super::tombstone::Tombstone;
use super::tree::Tree;

/// A fixed key, so that the framing and envelope code behind the AEAD is reachable when a
/// fuzzer mutates inputs that were sealed under it.
pub fn fuzz_keys() -> Keys {
    Keys::from_master(SecretKey::from_bytes([0x42; 32]))
}

/// Fuzz target: a pack's header parser.
pub fn pack_header(data: &[u8]) {
    let _ = pack::decode_header_plain(data, data.len() as u64);
    let _ = pack::parse_pack(&fuzz_keys(), data);
}

/// Fuzz target: index file decoding.
pub fn index(data: &[u8]) {
    if let Ok(i) = IndexFile::decode_plain(data) {
        // Whatever decodes must re-encode to the same bytes (the format is canonical).
        assert_eq!(i.encode_plain(), data, "index decode/encode is not a round trip");
    }
    let _ = IndexFile::decode(&fuzz_keys(), data);
}

/// Fuzz target: tree decoding.
pub fn tree(data: &[u8]) {
    if let Ok(t) = Tree::decode(data) {
        assert_eq!(t.encode(), data, "tree decode/encode is not a round trip");
    }
}

/// Fuzz target: snapshot decoding.
pub fn snapshot(data: &[u8]) {
    let _ = serde_json::from_slice::<Snapshot>(data);
    let _ = Snapshot::decode(&fuzz_keys(), data);
}

/// Fuzz target: key-file parsing and unwrapping.
pub fn key_file(data: &[u8]) {
    if let Ok(k) = KeyFile::from_json(data) {
        // Unwrapping runs Argon2 with the file's parameters; validation must bound them
        // first. Only cheap parameters are actually run here.
        if k.validate().is_ok() && k.kdf.params.memory_kib <= 64 && k.kdf.params.iterations <= 2 {
            let _ = k.unwrap_master(b"password");
        }
    }
}

/// Fuzz target: config decoding.
pub fn config(data: &[u8]) {
    if let Ok(c) = serde_json::from_slice::<Config>(data) {
        let _ = c.validate();
    }
    let _ = Config::decode(&fuzz_keys(), data);
    let _ = file::open(&fuzz_keys(), file::CONFIG, data);
    let _ = blob::decode(data, 1 << 20);
}

/// The records of the deletion protocol and the check record, as JSON and sealed.
pub fn records(data: &[u8]) {
    fn one<T: SealedDocument>(keys: &Keys, data: &[u8]) {
        if let Ok(d) = serde_json::from_slice::<T>(data) {
            let _ = d.to_json();
        }
        let _ = T::decode(keys, data);
    }
    let k = fuzz_keys();
    one::<Announcement>(&k, data);
    one::<Condemnation>(&k, data);
    one::<WaitRecord>(&k, data);
    one::<Tombstone>(&k, data);
    one::<CheckRecord>(&k, data);
    one::<super::epoch::MemberRecord>(&k, data);
    let _ = super::epoch::MemberRecord::decode_origin(&k, data);
    // Grants: header parsing, opening with a fixed agreement secret, and the payload's chain.
    let secret = super::epoch::AgreementSecret::from_kek(&SecretKey::from_bytes([0x43; 32]));
    if let Ok(g) = super::epoch::Grant::parse(data) {
        let _ = g.open(&secret);
    }
    if let Ok(p) = serde_json::from_slice::<super::epoch::GrantPayload>(data)
        && let Some(m) = k.master()
    {
        let _ = p.verify(m, true);
        let _ = p.verify(m, false);
    }
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Target name → entry point, for the replay test.
pub const TARGETS: [(&str, Target); 7] = [
    ("records", records),
    ("pack_header", pack_header),
    ("index", index),
    ("tree", tree),
    ("snapshot", snapshot),
    ("key_file", key_file),
    ("config", config),
];
