//! `--read-data`: choosing the packs to read (subsets, rotation by check records), reading
//! and verifying them, and the coverage the records add up to.

use super::*;

/// The packs `--read-data` reads, in the order it reads them.
pub(super) fn choose_packs(usable: &[UsablePack], subset: &Subset, records: &[CheckRecord]) -> Result<Vec<UsablePack>> {
    let mut packs = usable.to_vec();
    packs.sort_by_key(|p| p.id);
    let random = |packs: &mut Vec<UsablePack>| -> Result<()> {
        // OS-seeded: no two hosts pick the same subset by accident.
        Xorshift64::from_os().map_err(RepoError::from)?.shuffle(packs);
        Ok(())
    };
    Ok(match subset {
        Subset::All => packs,
        Subset::Part { n, m } => packs
            .into_iter()
            .filter(|p| u64::from_le_bytes(p.id.0.0[..8].try_into().unwrap_or_default()) % m == n - 1)
            .collect(),
        Subset::Percent(pct) => {
            random(&mut packs)?;
            let k = ((packs.len() as f64) * pct / 100.0).ceil() as usize;
            packs.truncate(k.min(packs.len()));
            packs
        }
        Subset::Bytes(budget) => {
            random(&mut packs)?;
            take_budget(packs, Some(*budget))
        }
        Subset::Rotate { max_bytes, .. } => {
            let last = last_verified(records);
            // Never verified first, then oldest verification; ties by id, so every pack
            // is read once before any pack is read twice.
            packs.sort_by_key(|p| (last.get(&p.id).copied(), p.id));
            take_budget(packs, *max_bytes)
        }
    })
}

pub(super) fn take_budget(packs: Vec<UsablePack>, budget: Option<u64>) -> Vec<UsablePack> {
    let Some(budget) = budget else { return packs };
    let mut used = 0u64;
    let mut out = Vec::new();
    for p in packs {
        if !out.is_empty() && used + p.size > budget {
            break;
        }
        used += p.size;
        out.push(p);
    }
    out
}

pub(super) fn last_verified(records: &[CheckRecord]) -> HashMap<PackId, DateTime<Utc>> {
    let mut last: HashMap<PackId, DateTime<Utc>> = HashMap::new();
    for r in records {
        let t = DateTime::parse_from_rfc3339(&r.time).map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        for p in &r.packs {
            let e = last.entry(*p).or_insert(t);
            if t > *e {
                *e = t;
            }
        }
    }
    last
}

pub(super) fn coverage(usable: &[UsablePack], records: &[CheckRecord]) -> Coverage {
    let last = last_verified(records);
    let mut c = Coverage { packs_total: usable.len(), ..Default::default() };
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut all = true;
    for p in usable {
        c.bytes_total += p.size;
        match last.get(&p.id) {
            Some(t) => {
                c.packs_verified += 1;
                c.bytes_verified += p.size;
                oldest = Some(oldest.map_or(*t, |o| o.min(*t)));
            }
            None => all = false,
        }
    }
    if all && let Some(o) = oldest {
        c.all_verified_within_runs = Some(
            records
                .iter()
                .filter(|r| DateTime::parse_from_rfc3339(&r.time).map(|t| t.with_timezone(&Utc) >= o).unwrap_or(false))
                .count(),
        );
        c.all_verified_within_days = Some((Utc::now() - o).num_seconds().max(0) as f64 / 86400.0);
    }
    c
}

/// Why a pack read in full failed, and which blobs it makes unreadable.
pub(super) struct PackFailure {
    pub(super) kind: ProblemKind,
    pub(super) message: String,
    pub(super) blobs: Vec<(BlobKind, BlobId)>,
}

/// A failed pack, named.
pub(super) struct FailedPack {
    pub(super) object: String,
    pub(super) failure: PackFailure,
}

#[derive(Default)]
pub(super) struct ReadResult {
    pub(super) verified: Vec<PackId>,
    pub(super) failed: Vec<FailedPack>,
    pub(super) bytes: u64,
}

pub(super) fn read_packs(
    repo: &Repository,
    packs: &[UsablePack],
    indexed: &HashMap<PackId, IndexedPack>,
    threads: usize,
    max_duration: Option<Duration>,
    progress: &dyn Progress,
) -> Result<ReadResult> {
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let bytes = AtomicU64::new(0);
    let out = Mutex::new(ReadResult::default());
    let fatal: Mutex<Option<RepoError>> = Mutex::new(None);
    // Downloads wait on the network, so more threads than cores keep the pipe full;
    // verification inside each thread uses the CPU.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| RepoError::System { what: "start the read threads", source: std::io::Error::other(e) })?;
    pool.install(|| {
        packs.par_iter().for_each(|&UsablePack { id, kind, size }| {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if let Some(limit) = max_duration
                && started.elapsed() >= limit
            {
                stop.store(true, Ordering::Relaxed);
                return;
            }
            let p = &indexed[&id];
            let all_blobs = || p.blobs.iter().map(|b| (kind, b.id)).collect::<Vec<_>>();
            let result = match repo.read_pack(kind, &id, size) {
                Err(RepoError::Backend(e)) if e.kind == BackendErrorKind::NotFound => {
                    Err(PackFailure { kind: ProblemKind::PackMissing, message: e.to_string(), blobs: all_blobs() })
                }
                Err(e) => {
                    fatal.lock().get_or_insert(e);
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                Ok(data) => verify_whole_pack(repo, kind, &id, &data, p),
            };
            bytes.fetch_add(size, Ordering::Relaxed);
            progress.add_bytes(size);
            progress.add_files(1);
            let mut o = out.lock();
            match result {
                Ok(()) => o.verified.push(id),
                Err(failure) => o.failed.push(FailedPack { object: StoredObject::Pack(kind, id).path(), failure }),
            }
        })
    });
    if let Some(e) = fatal.into_inner() {
        return Err(e.into());
    }
    let mut r = out.into_inner();
    r.bytes = bytes.load(Ordering::Relaxed);
    Ok(r)
}

/// Verifies a pack read in full: its name, its header against the index, every blob.
pub(super) fn verify_whole_pack(
    repo: &Repository,
    kind: BlobKind,
    id: &PackId,
    data: &ObjectBytes,
    p: &IndexedPack,
) -> Result<(), PackFailure> {
    let name_ok = data.stored_id() == id.0;
    match (verify_pack(repo, kind, id, data, p), name_ok) {
        (Ok(()), true) => Ok(()),
        // Damage outside any blob (padding, header copy): every blob still verifies, but
        // the stored bytes are not what was written.
        (Ok(()), false) => Err(PackFailure {
            kind: ProblemKind::PackDamaged,
            message: "its bytes do not match its name, though every blob verifies".into(),
            blobs: Vec::new(),
        }),
        (Err(f), true) => Err(f),
        (Err(f), false) => Err(PackFailure {
            kind: ProblemKind::PackDamaged,
            message: format!("its bytes do not match its name; {}", f.message),
            blobs: f.blobs,
        }),
    }
}

pub(super) fn verify_pack(
    repo: &Repository,
    kind: BlobKind,
    id: &PackId,
    data: &ObjectBytes,
    p: &IndexedPack,
) -> Result<(), PackFailure> {
    let all = || p.blobs.iter().map(|b| (kind, b.id)).collect();
    let (hkind, entries) = repo.parse_pack_header(kind, id, data).map_err(|e| PackFailure {
        kind: ProblemKind::PackDamaged,
        message: short_reason(&e),
        blobs: all(),
    })?;
    if let Some(m) = header_mismatch(hkind, &entries, p) {
        return Err(PackFailure { kind: ProblemKind::PackHeaderMismatch, message: m, blobs: all() });
    }
    let damaged: Vec<(BlobKind, BlobId)> =
        entries.par_iter().filter(|e| repo.open_blob_in(kind, id, data, e).is_err()).map(|e| (kind, e.id)).collect();
    if damaged.is_empty() {
        Ok(())
    } else {
        Err(PackFailure {
            kind: ProblemKind::BlobDamaged,
            message: format!("{} of {} blobs fail verification", damaged.len(), entries.len()),
            blobs: damaged,
        })
    }
}

/// The reason of an integrity error without the object's name (the problem names it).
pub(super) fn short_reason(e: &RepoError) -> String {
    match e {
        RepoError::Integrity { reason, .. } => reason.clone(),
        e => e.to_string(),
    }
}
