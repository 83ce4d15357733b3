use std::time::Duration;

use anyhow::{Result, bail};

use super::local_state;
use super::{hostname, open_repo_with};
use crate::cli::ExitCode;
use crate::cli::args::{CheckArgs, GlobalArgs};
use crate::cli::exit::take_tampering;
use crate::cli::output::{count, message, print_json};
use crate::cli::progress::{BarProgress, bytes};
use vault_ops::check::{CheckOptions, CheckReport, Subset, check};

/// `500M`, `20G`, `1024` (bytes); binary multiples.
pub(crate) fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    match num.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok((v * mult as f64) as u64),
        _ => bail!("invalid size {s:?} (examples: 500M, 20G, 1048576)"),
    }
}

/// `90s`, `30m`, `2h`, `1d`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('s') => (&t[..t.len() - 1], 1.0),
        Some('m') => (&t[..t.len() - 1], 60.0),
        Some('h') => (&t[..t.len() - 1], 3600.0),
        Some('d') => (&t[..t.len() - 1], 86400.0),
        _ => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(Duration::from_secs_f64(v * mult)),
        _ => bail!("invalid duration {s:?} (examples: 90s, 30m, 2h)"),
    }
}

fn parse_subset(s: &str) -> Result<Subset> {
    if let Some((n, m)) = s.split_once('/') {
        let (n, m): (u64, u64) = match (n.trim().parse(), m.trim().parse()) {
            (Ok(n), Ok(m)) => (n, m),
            _ => bail!("invalid subset {s:?}: expected N/M"),
        };
        if m == 0 || n == 0 || n > m {
            bail!("invalid subset {s:?}: N/M needs 1 <= N <= M");
        }
        return Ok(Subset::Part { n, m });
    }
    if let Some(p) = s.strip_suffix('%') {
        return match p.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 100.0 => Ok(Subset::Percent(v)),
            _ => bail!("invalid subset {s:?}: a percentage must be in (0, 100]"),
        };
    }
    Ok(Subset::Bytes(parse_size(s)?))
}

pub(crate) fn run(g: &GlobalArgs, a: &CheckArgs) -> Result<ExitCode> {
    let read_data = if a.rotate {
        Some(Subset::Rotate {
            max_bytes: a.max_bytes.as_deref().map(parse_size).transpose()?,
            max_duration: a.max_duration.as_deref().map(parse_duration).transpose()?,
        })
    } else if let Some(s) = &a.read_data_subset {
        Some(parse_subset(s)?)
    } else if a.read_data {
        Some(Subset::All)
    } else {
        None
    };
    if !a.rotate && (a.max_bytes.is_some() || a.max_duration.is_some()) {
        bail!("--max-bytes and --max-duration go with --rotate");
    }
    // check must see the repository as it is: no cache may hide damage.
    let repo = open_repo_with(g, false)?;
    let progress = BarProgress::new(!g.quiet && !g.json && read_data.is_some(), "packs verified")
        .with_json_status(g.json && !g.quiet);
    let opts = CheckOptions { read_data, read_threads: a.read_threads.max(1), hostname: hostname() };
    let result = check(&repo, &opts, &progress);
    progress.finish();
    let report = result?;
    // What the repository lost since this computer last looked (found when it was opened).
    let mut missing = take_tampering();
    let mut accepted = None;
    if a.accept_missing {
        let state = local_state().ok_or_else(|| anyhow::anyhow!("no state directory: nothing to accept"))?;
        accepted = Some(vault_ops::rollback::accept(&repo, &state)?);
        missing = None;
    }
    if g.json {
        let mut v = message("summary", &report);
        if let Some(m) = v.as_object_mut() {
            m.insert("missing".into(), serde_json::to_value(missing.clone().unwrap_or_default())?);
            if let Some(d) = &accepted {
                m.insert("accepted_missing".into(), serde_json::to_value(d)?);
            }
        }
        print_json(&v)?;
    } else {
        if let Some(h) = &missing {
            println!("error: tampering: {}", h.describe());
        }
        if let Some(d) = accepted.as_ref().filter(|d| d.is_tampered()) {
            println!(
                "accepted: {} snapshot(s) and {} tombstone(s) gone without a forget are no longer reported",
                d.missing_snapshots.len(),
                d.missing_tombstones.len()
            );
        }
        if !g.quiet || !report.problems.is_empty() {
            print_report(&report, g.quiet);
        }
    }
    Ok(if !report.problems.is_empty() {
        ExitCode::Integrity
    } else if missing.is_some() {
        ExitCode::Tampering
    } else {
        ExitCode::Ok
    })
}

/// What to run about the problems found, in the order that works.
fn next_steps(r: &CheckReport) -> Option<String> {
    use vault_ops::check::ProblemKind as K;
    let has = |kinds: &[K]| r.problems.iter().any(|p| kinds.contains(&p.kind));
    let mut steps = Vec::new();
    if has(&[K::KeyFile]) {
        steps.push("`vault key list` names the unreadable key file and `vault key remove ID` removes it".to_string());
    }
    if has(&[K::IndexFile, K::PackMissing, K::PackSize, K::PackDamaged, K::PackHeaderMismatch, K::BlobDamaged]) {
        steps.push("`vault repair index --read-data` rebuilds the index from the packs that verify".into());
    }
    if has(&[
        K::IndexFile,
        K::PackMissing,
        K::PackSize,
        K::PackDamaged,
        K::PackHeaderMismatch,
        K::BlobDamaged,
        K::TreeMissing,
        K::TreeDamaged,
        K::DataMissing,
        K::ContentLength,
    ]) {
        steps.push("a `vault backup` of the same sources stores again what they still hold".into());
        steps.push(
            "`vault repair snapshots` replaces the snapshots that still need lost data (the damaged originals are kept)"
                .into(),
        );
    }
    if has(&[K::Snapshot]) {
        steps.push("`vault forget ID` removes a snapshot that does not open".into());
    }
    if steps.is_empty() {
        return None;
    }
    let n = steps.len();
    let numbered: Vec<String> = steps.into_iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect();
    Some(format!("next {}: {}; then `vault check` again", if n == 1 { "step" } else { "steps" }, numbered.join("; ")))
}

fn print_report(r: &CheckReport, quiet: bool) {
    if let Some(e) = &r.check_record_error {
        eprintln!(
            "warning: the record of the verified packs could not be stored (rotation will not count this run): {e}"
        );
    }
    for p in &r.problems {
        let listed = p.paths.len() as u64;
        let more =
            if p.paths_total > listed { format!(" (and {} more)", p.paths_total - listed) } else { String::new() };
        let affects = if p.snapshots.is_empty() {
            String::new()
        } else {
            format!("; affects snapshots {}: {}{more}", p.snapshots.join(", "), p.paths.join(", "))
        };
        println!("error: {} {}: {}{affects}", p.kind.name(), p.object, p.message);
    }
    if let Some(hint) = next_steps(r) {
        println!("{hint}");
    }
    if quiet {
        return;
    }
    for i in &r.info {
        println!("info: {} {}: {}", i.kind, i.object, i.message);
    }
    println!(
        "checked {} ({} replaced by repairs), {}, {}, {} in {:.2}s",
        count(r.snapshots, "snapshot", "snapshots"),
        r.replaced_snapshots,
        count(r.trees, "tree", "trees"),
        count(r.blobs, "blob", "blobs"),
        count(r.packs, "pack", "packs"),
        r.duration_seconds
    );
    if r.packs_read > 0 {
        let rate = r.bytes_read as f64 / r.duration_seconds.max(1e-3);
        println!("read {}, {} ({}/s)", count(r.packs_read, "pack", "packs"), bytes(r.bytes_read), bytes(rate as u64));
    }
    if let Some(c) = &r.coverage {
        let pct = if c.bytes_total > 0 { 100.0 * c.bytes_verified as f64 / c.bytes_total as f64 } else { 100.0 };
        print!(
            "coverage: {} of {} packs ({pct:.1} % of the data) verified at least once",
            c.packs_verified, c.packs_total
        );
        match (c.all_verified_within_runs, c.all_verified_within_days) {
            (Some(n), Some(d)) => println!("; all data verified within the last {n} runs / {d:.1} days"),
            _ => println!(),
        }
    }
    if r.problems.is_empty() {
        println!("no problems found");
    } else {
        println!("{} found", count(r.problems.len(), "problem", "problems"));
    }
}
