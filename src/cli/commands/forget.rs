use anyhow::Result;
use serde_json::json;

use super::{filter, open_repo};
use crate::cli::ExitCode;
use crate::cli::args::{ForgetArgs, GlobalArgs};
use crate::cli::output::{count, local_time, print_json, table};
use vault_format::SnapshotId;
use vault_ops::OpError;
use vault_ops::forget::{self, GroupBy, KeepPolicy, Period, Span, describe_group};
use vault_ops::select::{self, SnapshotFilter};

fn span(flag: &str, v: &Option<String>) -> Result<Option<Span>> {
    v.as_deref().map(|s| s.parse::<Span>().map_err(|e| OpError::Usage(format!("--{flag}: {e}")).into())).transpose()
}

fn policy(a: &ForgetArgs) -> Result<KeepPolicy> {
    let within = [
        ("keep-within-hourly", &a.keep_within_hourly),
        ("keep-within-daily", &a.keep_within_daily),
        ("keep-within-weekly", &a.keep_within_weekly),
        ("keep-within-monthly", &a.keep_within_monthly),
        ("keep-within-yearly", &a.keep_within_yearly),
    ];
    let mut within_periods = [None; 5];
    for (slot, (flag, v)) in within_periods.iter_mut().zip(within) {
        *slot = span(flag, v)?;
    }
    debug_assert_eq!(Period::ALL.len(), 5);
    Ok(KeepPolicy {
        last: a.keep_last.unwrap_or(0),
        periods: [
            a.keep_hourly.unwrap_or(0),
            a.keep_daily.unwrap_or(0),
            a.keep_weekly.unwrap_or(0),
            a.keep_monthly.unwrap_or(0),
            a.keep_yearly.unwrap_or(0),
        ],
        within: span("keep-within", &a.keep_within)?,
        within_periods,
        tags: a
            .keep_tag
            .iter()
            .map(|t| t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
            .collect(),
    })
}

pub(crate) fn run(g: &GlobalArgs, a: &ForgetArgs) -> Result<ExitCode> {
    let policy = policy(a)?;
    let by: GroupBy = a.group_by.parse().map_err(|e: String| OpError::Usage(format!("--group-by: {e}")))?;
    if !a.snapshots.is_empty() && !policy.is_empty() {
        return Err(OpError::Usage("name snapshots or give a --keep-* policy, not both".into()).into());
    }
    let prune_opts = if a.prune { Some(super::prune::options(&a.prune_opts, a.dry_run)?) } else { None };
    let repo = open_repo(g)?;
    let (remove, out): (Vec<SnapshotId>, serde_json::Value) = if a.snapshots.is_empty() {
        let (snaps, bad) = select::list(&repo, &filter(&a.filter))?;
        for b in &bad {
            eprintln!("warning: skipped a damaged snapshot: {b}");
        }
        let plans = forget::plan(&snaps, &policy, by, a.force)?;
        if !g.json && !g.quiet {
            for p in &plans {
                println!("snapshots of {}:", describe_group(&p.group));
                let rows: Vec<Vec<String>> =
                    p.keep.iter().map(|k| vec![k.id.short(), time(&k.time), k.reasons.join(", ")]).collect();
                println!("keep {}:", count(p.keep.len(), "snapshot", "snapshots"));
                print!("{}", table(&["ID", "Time", "Reasons"], &rows));
                if !p.remove.is_empty() {
                    let rows: Vec<Vec<String>> = p.remove.iter().map(|r| vec![r.id.short(), time(&r.time)]).collect();
                    println!("remove {}:", count(p.remove.len(), "snapshot", "snapshots"));
                    print!("{}", table(&["ID", "Time"], &rows));
                }
                println!();
            }
        }
        let remove = plans.iter().flat_map(|p| p.remove.iter().map(|r| r.id)).collect();
        (remove, json!(plans))
    } else {
        let mut ids = Vec::new();
        for spec in &a.snapshots {
            let (id, _) = select::find(&repo, spec, &SnapshotFilter::default())?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        (
            ids.clone(),
            json!([{"group": {}, "keep": [], "remove": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>()}]),
        )
    };
    let mut tombstone = None;
    if !a.dry_run && !remove.is_empty() {
        tombstone = Some(forget::remove_snapshots(&repo, &remove, "forget")?);
    }
    if !g.json && !g.quiet {
        let verb = if a.dry_run { "would remove" } else { "removed" };
        println!("{verb} {}", count(remove.len(), "snapshot", "snapshots"));
    }
    let mut code = ExitCode::Ok;
    let mut prune_json = serde_json::Value::Null;
    if let Some(opts) = prune_opts {
        let (c, report) = super::prune::run_prune(g, &repo, &opts)?;
        code = c;
        prune_json = serde_json::to_value(report)?;
    }
    if g.json {
        print_json(&json!({
            "message_type": "summary",
            "dry_run": a.dry_run,
            "groups": out,
            "removed": if a.dry_run { Vec::new() } else { remove.clone() },
            "tombstone": tombstone,
            "prune": prune_json,
        }))?;
    }
    Ok(code)
}

fn time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| local_time(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| rfc3339.to_string())
}
