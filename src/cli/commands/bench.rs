//! `vault bench-primitives` (hidden): single-core throughput of the backup pipeline's CPU
//! stages here, and the resulting limit for this machine's cores. scripts/bench states
//! vault's backup throughput as a fraction of that limit.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::cli::ExitCode;
use crate::cli::args::GlobalArgs;
use crate::cli::output::print_json;
use vault_format::blob::{self, Compression, Padding};
use vault_format::chunker::{Chunker, ChunkerParams, xorshift_bytes};
use vault_format::crypto::{Keys, ObjectKind, SecretKey};

#[derive(Serialize)]
struct Primitive {
    name: &'static str,
    mb_per_s: f64,
}

#[derive(Serialize)]
struct Level {
    level: i32,
    corpus: &'static str,
    mb_per_s: f64,
    /// Stored size / original size.
    ratio: f64,
}

#[derive(Serialize)]
struct Report {
    cores: usize,
    primitives: Vec<Primitive>,
    /// zstd levels on compressible corpora, the basis of the presets' levels.
    levels: Vec<Level>,
    /// Single-core MB/s of chunk + hash + compress attempt + seal on incompressible data.
    pipeline_one_core_incompressible: f64,
    pipeline_limit_incompressible: f64,
    pipeline_one_core_text: f64,
    pipeline_limit_text: f64,
}

fn text(len: usize) -> Vec<u8> {
    let words =
        ["backup", "vault", "chunk", "restore", "snapshot", "the", "of", "data", "index", "pack", "tree", "encrypt"];
    let mut v = Vec::with_capacity(len + 16);
    let mut x = 7u64;
    while v.len() < len {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        v.extend_from_slice(words[(x >> 33) as usize % words.len()].as_bytes());
        v.push(if (x >> 20).is_multiple_of(9) { b'\n' } else { b' ' });
    }
    v.truncate(len);
    v
}

/// MB/s of `f` over `bytes` bytes, best of three runs.
fn measure(bytes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes as f64 / best.max(1e-9) / 1e6
}

pub(crate) fn run(g: &GlobalArgs) -> Result<ExitCode> {
    let size = 64 << 20;
    let random = xorshift_bytes(size, 0x2545_F491_4F6C_DD1D);
    let words = text(size);
    let keys = Keys::from_master(SecretKey::from_bytes([9; 32]));
    let chunker = Chunker::new(keys.chunker_key(), ChunkerParams::default())?;
    let chunks: Vec<&[u8]> = random.chunks(1 << 20).collect();
    let text_chunks: Vec<&[u8]> = words.chunks(1 << 20).collect();
    let zstd = Compression::default();
    let mut p = Vec::new();
    p.push(Primitive {
        name: "chunking (FastCDC, keyed gear)",
        mb_per_s: measure(size, || drop(chunker.chunk_lengths(&random))),
    });
    p.push(Primitive {
        name: "hashing (keyed BLAKE3)",
        mb_per_s: measure(size, || {
            for c in &chunks {
                std::hint::black_box(keys.blob_id(c));
            }
        }),
    });
    p.push(Primitive {
        name: "compression decision, incompressible (auto)",
        mb_per_s: measure(size, || {
            for c in &chunks {
                std::hint::black_box(blob::encode(c, zstd, Padding::None));
            }
        }),
    });
    p.push(Primitive {
        name: "compression, text (zstd 3)",
        mb_per_s: measure(size, || {
            for c in &text_chunks {
                std::hint::black_box(blob::encode(c, zstd, Padding::None));
            }
        }),
    });
    let nonce = [1u8; 24];
    p.push(Primitive {
        name: "encryption (XChaCha20-Poly1305, ring kernel)",
        mb_per_s: measure(size, || {
            for c in &chunks {
                std::hint::black_box(keys.seal_with_nonce(&nonce, ObjectKind::DataBlob, None, c));
            }
        }),
    });
    // The reference implementation the kernel matches byte for byte, for comparison (last,
    // so that the indexes above stay the pipeline's stages).
    let reference_key = SecretKey::from_bytes([9; 32]);
    let reference = Primitive {
        name: "encryption (XChaCha20-Poly1305, RustCrypto reference)",
        mb_per_s: measure(size, || {
            for c in &chunks {
                std::hint::black_box(vault_format::crypto::seal_reference(&reference_key, &nonce, b"vault", c));
            }
        }),
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let one = |rates: &[f64]| 1.0 / rates.iter().map(|r| 1.0 / r).sum::<f64>();
    let inc = one(&[p[0].mb_per_s, p[1].mb_per_s, p[2].mb_per_s, p[4].mb_per_s]);
    let txt = one(&[p[0].mb_per_s, p[1].mb_per_s, p[3].mb_per_s, p[4].mb_per_s * 3.0]);
    let exe = std::env::current_exe().and_then(std::fs::read).unwrap_or_default();
    let corpora: [(&'static str, &[u8]); 2] =
        [("text", &words[..8 << 20]), ("vault executable", &exe[..exe.len().min(8 << 20)])];
    p.push(reference);
    let mut levels = Vec::new();
    for (corpus, data) in corpora.into_iter().filter(|(_, d)| !d.is_empty()) {
        for level in [1, 3, 9, 19] {
            // The slow levels on a smaller sample, so that the whole run stays short.
            let data = if level >= 9 { &data[..data.len().min(2 << 20)] } else { data };
            let c = Compression::Zstd { level };
            let parts: Vec<&[u8]> = data.chunks(1 << 20).collect();
            let mut stored = 0;
            let mb_per_s = measure(data.len(), || {
                stored = parts.iter().map(|part| blob::encode(part, c, Padding::None).len()).sum::<usize>();
            });
            levels.push(Level { level, corpus, mb_per_s, ratio: stored as f64 / data.len() as f64 });
        }
    }
    let report = Report {
        cores,
        primitives: p,
        levels,
        pipeline_one_core_incompressible: inc,
        pipeline_limit_incompressible: inc * cores as f64,
        pipeline_one_core_text: txt,
        pipeline_limit_text: txt * cores as f64,
    };
    if g.json {
        print_json(&report)?;
    } else {
        for x in &report.primitives {
            println!("{:<46} {:>9.1} MB/s", x.name, x.mb_per_s);
        }
        for l in &report.levels {
            let name = format!("zstd {:>2}, {}", l.level, l.corpus);
            println!("{name:<46} {:>9.1} MB/s  stored {:>5.1} %", l.mb_per_s, l.ratio * 100.0);
        }
        println!(
            "pipeline, incompressible: {:.1} MB/s per core, {:.1} MB/s on {cores} cores",
            inc, report.pipeline_limit_incompressible
        );
        println!(
            "pipeline, text:           {:.1} MB/s per core, {:.1} MB/s on {cores} cores",
            txt, report.pipeline_limit_text
        );
    }
    Ok(ExitCode::Ok)
}
