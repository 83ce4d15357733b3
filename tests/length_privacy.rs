//! What a storage server learns of chunk and directory sizes (spec §9): with the default
//! padding every sealed blob, tree and pack header is a Padmé length, so the lengths the
//! server can read off a pack's header (once it could decrypt it) or off request sizes fall
//! in size classes; `--padding none` shows the exact lengths the attack needs.

mod common;

use common::*;
use vault_format::blob::padme_len;
use vault_format::keyfile::KeyFile;
use vault_format::pack::{decode_header, header_span};

const SEAL_OVERHEAD: u64 = 40;

/// Every blob's and header's sealed length in the repository, as a key holder reads them.
fn sealed_lengths(env: &Env) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let b = env.backend();
    let kf = b.list("keys").unwrap().remove(0);
    let keys = KeyFile::from_json(&b.read(&kf.path).unwrap()).unwrap().unwrap_master(PASSWORD.as_bytes()).unwrap();
    let (mut data, mut trees, mut headers) = (Vec::new(), Vec::new(), Vec::new());
    for dir in ["data", "tree"] {
        for e in b.list(dir).unwrap() {
            let bytes = b.read(&e.path).unwrap();
            let span = header_span(&bytes[..5], bytes.len(), &bytes[bytes.len() - 4..]).unwrap();
            headers.push(span.len() as u64);
            let (_, entries) = decode_header(&keys, &bytes[span.clone()], span.start as u64).unwrap();
            let lengths = entries.iter().map(|e| u64::from(e.length));
            if dir == "data" { data.extend(lengths) } else { trees.extend(lengths) }
        }
    }
    (data, trees, headers)
}

fn make_source(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    for d in 0..6u64 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        // Directories of 1, 3, 7 … entries, files of odd sizes.
        for f in 0..(2 * d + 1) {
            std::fs::write(dir.join(format!("f{f}")), noise((1 + 997 * (d * 13 + f) % 20_011) as usize, d * 100 + f))
                .unwrap();
        }
    }
    std::fs::write(src.join("big"), noise(5 << 20, 9)).unwrap();
    src
}

fn padded(len: u64) -> bool {
    let envelope = len - SEAL_OVERHEAD;
    padme_len(envelope) == envelope
}

#[test]
fn blobs_trees_and_headers_are_padded_by_default() {
    let env = Env::new();
    env.init();
    let src = make_source(&env);
    env.ok(&["backup", src.to_str().unwrap(), "-q"]);
    let (data, trees, headers) = sealed_lengths(&env);
    assert!(data.len() > 20 && trees.len() >= 7 && !headers.is_empty());
    for (what, v) in [("data blob", &data), ("tree", &trees), ("pack header", &headers)] {
        let exact: Vec<&u64> = v.iter().filter(|l| !padded(**l)).collect();
        assert!(exact.is_empty(), "{what} lengths not in a size class: {exact:?}");
    }
    // The padding costs little: the stored data is within a few percent of the input.
    let input: u64 = walk(&src).iter().filter(|p| p.is_file()).map(|p| p.metadata().unwrap().len()).sum();
    let stored: u64 = data.iter().sum();
    assert!(stored < input + input / 20, "{stored} stored for {input}");
    env.ok(&["check", "--read-data"]);
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap(), "-q"]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn without_padding_exact_lengths_show() {
    let env = Env::new();
    env.ok(&["init", "--padding", "none"]);
    let src = make_source(&env);
    env.ok(&["backup", src.to_str().unwrap(), "-q"]);
    let (data, trees, _) = sealed_lengths(&env);
    // What the fingerprinting attack reads: lengths that are not size classes.
    assert!(data.iter().chain(&trees).any(|l| !padded(*l)), "{data:?} {trees:?}");
}
