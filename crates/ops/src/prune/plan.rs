//! The fate of each pack: kept as it is, repacked (its live blobs copied into new packs),
//! or deleted whole. Pure: decided from usage figures alone.

use serde::Serialize;

use vault_format::PackId;
use vault_format::pack::BlobKind;

/// How much unused data may stay behind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnusedLimit {
    /// Bytes.
    Bytes(u64),
    /// Percent of the data still used after the prune.
    Percent(f64),
    /// Any amount (never repack for unused space).
    Unlimited,
}

impl Default for UnusedLimit {
    fn default() -> Self {
        UnusedLimit::Percent(5.0)
    }
}

impl std::str::FromStr for UnusedLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<UnusedLimit, String> {
        let t = s.trim();
        if t == "unlimited" {
            return Ok(UnusedLimit::Unlimited);
        }
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(UnusedLimit::Percent(v)),
                _ => Err(format!("{s:?}: a percentage must be between 0% and 100%")),
            };
        }
        parse_size(t).map(UnusedLimit::Bytes)
    }
}

/// `500`, `64k`, `10M`, `2G`, `1T` (binary multiples; `KiB`, `MB` spellings accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size like 500M, 2G or 10%");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// Small packs of one kind are merged only when there are at least this many: merging
/// rewrites their data to save requests, which pays only for many of them (and a single
/// small pack would be rewritten by every prune).
pub(crate) const SMALL_PACKS_TO_MERGE: u64 = 10;

/// How one pack's blobs are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct PackUse {
    pub id: PackId,
    #[serde(skip)]
    pub kind: BlobKind,
    pub size: u64,
    pub used_blobs: u64,
    pub used_bytes: u64,
    pub unused_blobs: u64,
    pub unused_bytes: u64,
    /// Sealed with an older key epoch (marked only for `prune --reencrypt`).
    pub old_epoch: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Keep,
    Repack,
    Delete,
}

/// The policy's knobs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_unused: UnusedLimit,
    /// Most bytes of live blobs to copy; `None`: no limit.
    pub max_repack: Option<u64>,
    /// Packs below these sizes (data, tree) are merged when there are several.
    pub small: [u64; 2],
}

/// Decides each pack's fate (same order as `packs`).
///
/// Packs nothing uses go. Tree packs with unused blobs are repacked first (they are
/// small, cached and read by every listing), then small packs when a kind has several,
/// then partly used packs, most wasteful first, until the unused bytes left are within
/// `max_unused`; all within `max_repack`.
pub(crate) fn decide(packs: &[PackUse], limits: &Limits) -> Vec<Fate> {
    let mut fates: Vec<Fate> =
        packs.iter().map(|p| if p.used_blobs == 0 { Fate::Delete } else { Fate::Keep }).collect();
    let is_small = |p: &PackUse| p.size < limits.small[p.kind.to_byte() as usize];
    let mut small_count = [0u64; 2];
    for p in packs.iter().filter(|p| p.used_blobs > 0 && is_small(p)) {
        small_count[p.kind.to_byte() as usize] += 1;
    }
    let used: u64 = packs.iter().map(|p| p.used_bytes).sum();
    let allowed = match limits.max_unused {
        UnusedLimit::Bytes(b) => b,
        UnusedLimit::Percent(pc) => (used as f64 * pc / 100.0) as u64,
        UnusedLimit::Unlimited => u64::MAX,
    };
    let mut unused: u64 = packs.iter().filter(|p| p.used_blobs > 0).map(|p| p.unused_bytes).sum();
    let mut order: Vec<usize> = (0..packs.len()).filter(|&i| fates[i] == Fate::Keep).collect();
    let rank = |p: &PackUse| {
        // Re-encryption was asked for by name: it goes first within the budget.
        let class = if p.old_epoch {
            0
        } else if p.kind == BlobKind::Tree && p.unused_blobs > 0 {
            1
        } else if is_small(p) && small_count[p.kind.to_byte() as usize] >= SMALL_PACKS_TO_MERGE {
            2
        } else {
            3
        };
        let waste = p.unused_bytes as f64 / p.size.max(1) as f64;
        (class, std::cmp::Reverse((waste * 1e9) as u64))
    };
    order.sort_by_key(|&i| rank(&packs[i]));
    let mut budget = limits.max_repack.unwrap_or(u64::MAX);
    for i in order {
        let p = &packs[i];
        let wanted = match rank(p).0 {
            0 | 2 => true,
            1 => limits.max_unused != UnusedLimit::Unlimited,
            _ => p.unused_blobs > 0 && unused > allowed,
        };
        if !wanted || p.used_bytes > budget {
            continue;
        }
        budget -= p.used_bytes;
        unused -= p.unused_bytes;
        fates[i] = Fate::Repack;
    }
    fates
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::Id;

    fn pack(n: u8, kind: BlobKind, used: u64, unused: u64) -> PackUse {
        PackUse {
            id: PackId(Id([n; 32])),
            kind,
            size: used + unused + 100,
            used_blobs: used.div_ceil(1000),
            used_bytes: used,
            unused_blobs: unused.div_ceil(1000),
            unused_bytes: unused,
            old_epoch: false,
        }
    }

    const MIB: u64 = 1 << 20;
    const LIMITS: Limits = Limits { max_unused: UnusedLimit::Percent(5.0), max_repack: None, small: [MIB, 1000] };

    #[test]
    fn unused_go_used_stay_and_waste_is_repacked_to_the_limit() {
        let packs = vec![
            pack(1, BlobKind::Data, 16 * MIB, 0),
            pack(2, BlobKind::Data, 0, 16 * MIB),
            pack(3, BlobKind::Data, 8 * MIB, 8 * MIB),
            pack(4, BlobKind::Data, 15 * MIB, MIB),
        ];
        let f = decide(&packs, &LIMITS);
        // 2 MiB allowed (5 % of 40): pack 3 (50 % waste) goes first; then 1 MiB is left.
        assert_eq!(f, vec![Fate::Keep, Fate::Delete, Fate::Repack, Fate::Keep]);
        let f = decide(&packs, &Limits { max_unused: UnusedLimit::Bytes(0), ..LIMITS });
        assert_eq!(f, vec![Fate::Keep, Fate::Delete, Fate::Repack, Fate::Repack]);
        let f = decide(&packs, &Limits { max_unused: UnusedLimit::Unlimited, ..LIMITS });
        assert_eq!(f, vec![Fate::Keep, Fate::Delete, Fate::Keep, Fate::Keep]);
        let f = decide(&packs, &Limits { max_unused: UnusedLimit::Bytes(0), max_repack: Some(10 * MIB), ..LIMITS });
        assert_eq!(f, vec![Fate::Keep, Fate::Delete, Fate::Repack, Fate::Keep]);
    }

    #[test]
    fn trees_first_and_small_packs_merge() {
        let mut packs = vec![pack(1, BlobKind::Tree, 5000, 10), pack(2, BlobKind::Data, 16 * MIB, 0)];
        packs.extend((0..SMALL_PACKS_TO_MERGE as u8).map(|i| pack(10 + i, BlobKind::Data, 1000 + u64::from(i), 0)));
        let f = decide(&packs, &LIMITS);
        assert_eq!(f[..2], [Fate::Repack, Fate::Keep]);
        assert!(f[2..].iter().all(|f| *f == Fate::Repack));
        // A few small packs are not worth rewriting.
        let f = decide(&packs[1..4], &LIMITS);
        assert_eq!(f, vec![Fate::Keep, Fate::Keep, Fate::Keep]);
    }

    #[test]
    fn packs_of_an_old_key_epoch_go_first_within_the_budget() {
        let mut packs = vec![pack(1, BlobKind::Data, 16 * MIB, 0), pack(2, BlobKind::Data, 8 * MIB, 8 * MIB)];
        packs[0].old_epoch = true;
        let f = decide(&packs, &Limits { max_unused: UnusedLimit::Unlimited, ..LIMITS });
        assert_eq!(f, vec![Fate::Repack, Fate::Keep]);
        let f = decide(&packs, &Limits { max_repack: Some(10 * MIB), max_unused: UnusedLimit::Bytes(0), ..LIMITS });
        assert_eq!(f, vec![Fate::Keep, Fate::Repack], "the budget holds");
    }

    #[test]
    fn sizes_and_limits_parse() {
        assert_eq!(parse_size("10M").unwrap(), 10 * MIB);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("10X").is_err() && parse_size("-1").is_err() && parse_size("").is_err());
        assert_eq!("5%".parse::<UnusedLimit>().unwrap(), UnusedLimit::Percent(5.0));
        assert_eq!("unlimited".parse::<UnusedLimit>().unwrap(), UnusedLimit::Unlimited);
        assert!("150%".parse::<UnusedLimit>().is_err());
        assert!("99999999999T".parse::<UnusedLimit>().is_err());
    }
}
