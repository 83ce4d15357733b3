//! `vault bench-index` (hidden): the in-memory index at repository sizes that tests cannot
//! reach. Loads N synthetic blobs the way index files are loaded (one file of 64 packs at
//! a time), then reports heap bytes per blob, the process's resident memory and its peak,
//! load time and lookup rates.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::cli::ExitCode;
use crate::cli::args::{BenchIndexArgs, GlobalArgs};
use crate::cli::output::print_json;
use vault_format::index::{IndexFile, IndexPack};
use vault_format::pack::{BlobKind, PackEntry};
use vault_format::{BlobId, Id, PackId};
use vault_repo::MasterIndex;

#[derive(Serialize)]
struct Report {
    blobs: u64,
    packs: u64,
    load_seconds: f64,
    heap_bytes_per_blob: f64,
    /// Resident memory before loading and after, and the peak, in MiB.
    rss_before_mib: f64,
    rss_after_mib: f64,
    rss_peak_mib: f64,
    /// Peak minus the resident memory before loading, per blob.
    peak_bytes_per_blob: f64,
    hit_lookups_per_second: f64,
    miss_lookups_per_second: f64,
}

/// A blob id that looks like a real one (uniform bits) and is cheap to make.
fn synthetic_id(n: u64, salt: u64) -> BlobId {
    let mut id = [0u8; 32];
    vault_format::xorshift::Xorshift64::new(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt).fill(&mut id);
    BlobId(Id(id))
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub(crate) fn run(g: &GlobalArgs, a: &BenchIndexArgs) -> Result<ExitCode> {
    let per_pack = a.per_pack.max(1);
    let packs = a.blobs.div_ceil(per_pack);
    let (before, _) = rss_kib();
    let started = Instant::now();
    let mut index = MasterIndex::new();
    let mut n = 0u64;
    let mut p = 0u64;
    while p < packs {
        let mut file = IndexFile::default();
        for _ in 0..64 {
            if p == packs {
                break;
            }
            let count = per_pack.min(a.blobs - n);
            let blobs = (0..count)
                .map(|i| PackEntry {
                    id: synthetic_id(n + i, 1),
                    offset: (5 + i * 65_536) as u32,
                    length: 65_536,
                    raw_length: 100_000,
                })
                .collect();
            file.packs.push(IndexPack { id: PackId(synthetic_id(p, 2).0), kind: BlobKind::Data, size: 1 << 24, blobs });
            n += count;
            p += 1;
        }
        index.add_file(&file);
    }
    index.compact();
    let load_seconds = started.elapsed().as_secs_f64();
    let (after, peak) = rss_kib();

    let probes = 1_000_000.min(a.blobs.max(1));
    let rate = |salt: u64, expect: bool| {
        let t = Instant::now();
        let mut found = 0u64;
        for i in 0..probes {
            let k = (i.wrapping_mul(7_919)) % a.blobs.max(1);
            found += u64::from(index.contains(BlobKind::Data, &synthetic_id(k, salt)));
        }
        assert_eq!(found == probes, expect, "synthetic lookups found {found} of {probes}");
        probes as f64 / t.elapsed().as_secs_f64()
    };
    let hits = if a.blobs > 0 { rate(1, true) } else { 0.0 };
    let misses = rate(3, false);
    let mib = |k: u64| k as f64 / 1024.0;
    let report = Report {
        blobs: a.blobs,
        packs,
        load_seconds,
        heap_bytes_per_blob: index.heap_bytes() as f64 / a.blobs.max(1) as f64,
        rss_before_mib: mib(before),
        rss_after_mib: mib(after),
        rss_peak_mib: mib(peak),
        peak_bytes_per_blob: (peak.saturating_sub(before) * 1024) as f64 / a.blobs.max(1) as f64,
        hit_lookups_per_second: hits,
        miss_lookups_per_second: misses,
    };
    if g.json {
        print_json(&report)?;
    } else {
        println!("index of {} blobs in {} packs, loaded in {:.2} s", report.blobs, report.packs, load_seconds);
        println!("heap:  {:.1} bytes per blob", report.heap_bytes_per_blob);
        println!(
            "RSS:   {:.0} MiB before, {:.0} MiB after, {:.0} MiB peak ({:.1} bytes per blob at the peak)",
            report.rss_before_mib, report.rss_after_mib, report.rss_peak_mib, report.peak_bytes_per_blob
        );
        println!("lookups: {:.2} M/s found, {:.2} M/s missing", hits / 1e6, misses / 1e6);
    }
    Ok(ExitCode::Ok)
}
