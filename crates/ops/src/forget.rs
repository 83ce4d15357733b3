//! `forget`: which snapshots a retention policy keeps, and removing the others.
//!
//! The policy follows restic's, which users of the family know: snapshots are grouped (by
//! host and paths unless told otherwise) and within each group, newest first, `--keep-last
//! N` keeps the N newest, `--keep-daily N` the newest of each of the last N days that have
//! snapshots (likewise hourly, weekly, monthly, yearly; calendar periods in local time),
//! `--keep-within SPAN` every snapshot within SPAN of the group's newest, the
//! `--keep-within-daily SPAN` forms the newest of each day within SPAN, and `--keep-tag`
//! every snapshot with the tags. A snapshot kept by any rule is kept, with every reason.
//!
//! Removing writes a tombstone first and deletes the snapshot files after it, so an
//! interrupted forget leaves snapshots that listings already hide and the next forget or
//! prune deletes. The data goes at prune time.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Local, Months, TimeDelta, Timelike, Utc};
use serde::Serialize;

use super::error::{OpError, Result};
use super::select::time_of;
use vault_format::snapshot::Snapshot;
use vault_format::tombstone::Tombstone;
use vault_format::{Id, SnapshotId};
use vault_repo::writers::{now_rfc3339, this_host};
use vault_repo::{Repository, StoredKind, StoredObject};

/// A span of calendar time: `1y6m`, `7d`, `36h`, `2w`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl Span {
    /// `t` moved back by this span (calendar months and years, so `1m` before 31 March is
    /// the end of February). `None` when that leaves the calendar.
    pub fn before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let months = self.years.checked_mul(12)?.checked_add(self.months)?;
        let t = t.checked_sub_months(Months::new(months))?;
        t.checked_sub_signed(TimeDelta::try_days(i64::from(self.days))?)?
            .checked_sub_signed(TimeDelta::try_hours(i64::from(self.hours))?)
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Span, String> {
        let bad = || format!("{s:?} is not a span like 1y6m, 30d, 2w or 12h");
        let mut span = Span::default();
        let mut digits = String::new();
        let mut any = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: u32 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            let slot = match c {
                'y' => &mut span.years,
                'm' => &mut span.months,
                'w' => {
                    span.days = n.checked_mul(7).and_then(|d| d.checked_add(span.days)).ok_or_else(bad)?;
                    any = true;
                    continue;
                }
                'd' => &mut span.days,
                'h' => &mut span.hours,
                _ => return Err(bad()),
            };
            *slot = slot.checked_add(n).ok_or_else(bad)?;
            any = true;
        }
        if !digits.is_empty() || !any {
            return Err(bad());
        }
        Ok(span)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, u) in [(self.years, 'y'), (self.months, 'm'), (self.days, 'd'), (self.hours, 'h')] {
            if n > 0 {
                write!(f, "{n}{u}")?;
            }
        }
        Ok(())
    }
}

/// Calendar periods of the bucket rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// Calendar hours.
    Hourly,
    /// Calendar days.
    Daily,
    /// ISO weeks.
    Weekly,
    /// Calendar months.
    Monthly,
    /// Calendar years.
    Yearly,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 5] = [Period::Hourly, Period::Daily, Period::Weekly, Period::Monthly, Period::Yearly];

    fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    /// The period `t` falls in, in local time.
    fn bucket(self, t: DateTime<Utc>) -> (i32, u32, u32) {
        let l = t.with_timezone(&Local);
        match self {
            Period::Hourly => (l.year(), l.ordinal(), l.hour()),
            Period::Daily => (l.year(), l.ordinal(), 0),
            Period::Weekly => (l.iso_week().year(), l.iso_week().week(), 0),
            Period::Monthly => (l.year(), l.month(), 0),
            Period::Yearly => (l.year(), 0, 0),
        }
    }
}

/// What to keep. The default keeps nothing (and is refused by [`plan`]).
#[derive(Clone, Debug, Default)]
pub struct KeepPolicy {
    /// Keep the newest N snapshots.
    pub last: u32,
    /// Newest of each of the last N periods with snapshots, by [`Period::ALL`] order.
    pub periods: [u32; 5],
    /// Keep every snapshot within this span of the group's newest.
    pub within: Option<Span>,
    /// Newest of each period within the span, by [`Period::ALL`] order.
    pub within_periods: [Option<Span>; 5],
    /// A snapshot with every tag of any one entry is kept.
    pub tags: Vec<Vec<String>>,
}

impl KeepPolicy {
    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.periods.iter().all(|n| *n == 0)
            && self.within.is_none()
            && self.within_periods.iter().all(Option::is_none)
            && self.tags.is_empty()
    }
}

/// Which snapshot fields make a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    /// By host.
    pub host: bool,
    /// By source paths.
    pub paths: bool,
    /// By tags.
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy { host: true, paths: true, tags: false }
    }
}

impl FromStr for GroupBy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<GroupBy, String> {
        let mut g = GroupBy { host: false, paths: false, tags: false };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" | "path" => g.paths = true,
                "tags" | "tag" => g.tags = true,
                other => return Err(format!("unknown group field {other:?} (use host, paths, tags)")),
            }
        }
        Ok(g)
    }
}

/// The fields a group shares.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The group's host, when grouped by host.
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The group's paths, when grouped by paths.
    pub paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The group's tags, when grouped by tags.
    pub tags: Option<Vec<String>>,
}

/// A snapshot the policy keeps, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Kept {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its time.
    pub time: String,
    /// The rules that keep it.
    pub reasons: Vec<String>,
}

/// A snapshot the policy removes.
#[derive(Clone, Debug, Serialize)]
pub struct Removed {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its time.
    pub time: String,
}

/// The decision for one group.
#[derive(Clone, Debug, Serialize)]
pub struct GroupPlan {
    /// The group.
    pub group: GroupKey,
    /// Newest first.
    pub keep: Vec<Kept>,
    /// Newest first.
    pub remove: Vec<Removed>,
}

/// The group of `s` when grouped `by` these fields.
pub fn key_of(s: &Snapshot, by: GroupBy) -> GroupKey {
    let mut tags = s.tags.clone();
    tags.sort();
    tags.dedup();
    GroupKey {
        host: by.host.then(|| s.hostname.clone()),
        paths: by.paths.then(|| s.paths.clone()),
        tags: by.tags.then_some(tags),
    }
}

/// Applies `policy` to each group of `snapshots`. Refuses an empty policy, and a policy
/// that would remove every snapshot of a group unless `force`.
pub fn plan(
    snapshots: &[(SnapshotId, Snapshot)],
    policy: &KeepPolicy,
    by: GroupBy,
    force: bool,
) -> Result<Vec<GroupPlan>> {
    if policy.is_empty() {
        return Err(OpError::Usage(
            "no policy given: name snapshots to forget, or give --keep-last, --keep-daily, … (see vault forget --help)"
                .into(),
        ));
    }
    let mut groups: BTreeMap<GroupKey, Vec<&(SnapshotId, Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(key_of(&s.1, by)).or_default().push(s);
    }
    let mut out = Vec::new();
    for (group, mut members) in groups {
        members.sort_by(|a, b| time_of(&b.1).cmp(&time_of(&a.1)).then(b.0.cmp(&a.0)));
        let reasons = keep_reasons(&members, policy);
        let (mut keep, mut remove) = (Vec::new(), Vec::new());
        for ((id, s), why) in members.iter().map(|m| (&m.0, &m.1)).zip(reasons) {
            if why.is_empty() {
                remove.push(Removed { id: *id, time: s.time.clone() });
            } else {
                keep.push(Kept { id: *id, time: s.time.clone(), reasons: why });
            }
        }
        if keep.is_empty() && !force {
            return Err(OpError::Usage(format!(
                "the policy keeps none of the {} snapshots of group {}; refusing (add --force to remove them all)",
                remove.len(),
                describe_group(&group)
            )));
        }
        out.push(GroupPlan { group, keep, remove });
    }
    Ok(out)
}

/// "host h, paths /a /b", for messages.
pub fn describe_group(g: &GroupKey) -> String {
    let mut parts = Vec::new();
    if let Some(h) = &g.host {
        parts.push(format!("host {h}"));
    }
    if let Some(p) = &g.paths {
        parts.push(format!("paths {}", p.join(" ")));
    }
    if let Some(t) = &g.tags {
        parts.push(format!("tags [{}]", t.join(",")));
    }
    if parts.is_empty() { "(all snapshots)".into() } else { parts.join(", ") }
}

/// Why each snapshot (newest first) is kept; empty when it is not.
fn keep_reasons(members: &[&(SnapshotId, Snapshot)], policy: &KeepPolicy) -> Vec<Vec<String>> {
    let times: Vec<DateTime<Utc>> = members.iter().map(|m| time_of(&m.1)).collect();
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); members.len()];
    for r in reasons.iter_mut().take(policy.last as usize) {
        r.push("last snapshot".into());
    }
    for (p, n) in Period::ALL.iter().zip(policy.periods) {
        bucket_rule(&times, *p, n as usize, None, &format!("{} snapshot", p.name()), &mut reasons);
    }
    let newest = times.first().copied();
    if let (Some(span), Some(newest)) = (policy.within, newest) {
        let since = span.before(newest);
        for (t, r) in times.iter().zip(reasons.iter_mut()) {
            if since.is_none_or(|s| *t >= s) {
                r.push(format!("within {span}"));
            }
        }
    }
    for (p, span) in Period::ALL.iter().zip(policy.within_periods) {
        if let (Some(span), Some(newest)) = (span, newest) {
            let since = span.before(newest);
            let label = format!("{} within {span}", p.name());
            bucket_rule(&times, *p, usize::MAX, since.or(Some(DateTime::<Utc>::MIN_UTC)), &label, &mut reasons);
        }
    }
    if !policy.tags.is_empty() {
        for (m, r) in members.iter().zip(reasons.iter_mut()) {
            if policy.tags.iter().any(|set| set.iter().all(|t| m.1.tags.contains(t))) {
                r.push("tagged".into());
            }
        }
    }
    reasons
}

/// Keeps the newest snapshot of each of the newest `n` periods that have one (only
/// snapshots at or after `since`, when given).
fn bucket_rule(
    times: &[DateTime<Utc>],
    period: Period,
    n: usize,
    since: Option<DateTime<Utc>>,
    label: &str,
    reasons: &mut [Vec<String>],
) {
    let mut last = None;
    let mut kept = 0;
    for (t, r) in times.iter().zip(reasons.iter_mut()) {
        if kept >= n {
            break;
        }
        if since.is_some_and(|s| *t < s) {
            continue;
        }
        let b = period.bucket(*t);
        if last != Some(b) {
            last = Some(b);
            kept += 1;
            r.push(label.to_string());
        }
    }
}

/// Removes snapshots: a tombstone naming them first, then their files. Returns the
/// tombstone's id.
pub fn remove_snapshots(repo: &Repository, ids: &[SnapshotId], command: &str) -> Result<Id> {
    // On append-only storage the tombstone would hide snapshots whose files stay.
    repo.check_can_delete()?;
    let stone = Tombstone {
        version: 1,
        time: now_rfc3339(),
        hostname: this_host(),
        command: command.to_string(),
        snapshots: ids.to_vec(),
    };
    let id = repo.save_document(StoredKind::Tombstone, &stone)?;
    for s in ids {
        repo.delete_file(StoredObject::Snapshot(*s))?;
    }
    Ok(id)
}

/// Every snapshot a tombstone names.
pub fn forgotten(repo: &Repository) -> Result<HashSet<SnapshotId>> {
    Ok(named_by(&repo.load_documents::<Tombstone>(StoredKind::Tombstone)?))
}

/// The snapshots that loaded tombstones name. A damaged tombstone names nothing: its
/// snapshots stay listed.
pub(crate) fn named_by(stones: &[(Id, vault_repo::error::Result<Tombstone>)]) -> HashSet<SnapshotId> {
    stones.iter().filter_map(|(_, r)| r.as_ref().ok()).flat_map(|t| t.snapshots.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault_format::BlobId;

    fn snap(n: u8, time: &str, host: &str, tags: &[&str]) -> (SnapshotId, Snapshot) {
        let s = Snapshot {
            version: 1,
            time: time.into(),
            tree: BlobId(Id([0; 32])),
            paths: vec!["/data".into()],
            hostname: host.into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parent: None,
            program_version: String::new(),
            summary: None,
            filters: None,
            original: None,
            written_by: None,
        };
        (SnapshotId(Id([n; 32])), s)
    }

    fn kept(plans: &[GroupPlan]) -> Vec<u8> {
        let mut v: Vec<u8> = plans.iter().flat_map(|p| p.keep.iter().map(|k| k.id.0.0[0])).collect();
        v.sort();
        v
    }

    /// A snapshot at noon UTC on each of `days` consecutive days of December 2026 (noon
    /// stays the same local day for any time zone within ±11 h).
    fn daily(days: u8) -> Vec<(SnapshotId, Snapshot)> {
        (1..=days).map(|d| snap(d, &format!("2026-12-{d:02}T12:00:00Z"), "h", &[])).collect()
    }

    #[test]
    fn spans_parse_and_refuse_junk() {
        assert_eq!("1y6m".parse::<Span>().unwrap(), Span { years: 1, months: 6, days: 0, hours: 0 });
        assert_eq!("2w3d12h".parse::<Span>().unwrap(), Span { years: 0, months: 0, days: 17, hours: 12 });
        for bad in ["", "5", "d", "3x", "-1d", "1.5d", "99999999999d"] {
            assert!(bad.parse::<Span>().is_err(), "{bad:?}");
        }
        let t: DateTime<Utc> = "2026-03-31T00:00:00Z".parse().unwrap();
        assert_eq!("1m".parse::<Span>().unwrap().before(t).unwrap().to_rfc3339(), "2026-02-28T00:00:00+00:00");
    }

    #[test]
    fn keep_last_and_daily() {
        let s = daily(10);
        let p = KeepPolicy { last: 2, ..Default::default() };
        assert_eq!(kept(&plan(&s, &p, GroupBy::default(), false).unwrap()), vec![9, 10]);
        let p = KeepPolicy { periods: [0, 3, 0, 0, 0], ..Default::default() };
        assert_eq!(kept(&plan(&s, &p, GroupBy::default(), false).unwrap()), vec![8, 9, 10]);
        // Two snapshots on one day: the newer one stands for the day.
        let mut s2 = s.clone();
        s2.push(snap(11, "2026-12-10T13:00:00Z", "h", &[]));
        let plans = plan(&s2, &p, GroupBy::default(), false).unwrap();
        assert_eq!(kept(&plans), vec![8, 9, 11]);
        assert_eq!(plans[0].keep[0].reasons, vec!["daily snapshot"]);
    }

    #[test]
    fn within_tags_and_reasons() {
        let mut s = daily(10);
        s[0].1.tags = vec!["keep".into()];
        let p = KeepPolicy {
            within: Some("2d".parse().unwrap()),
            tags: vec![vec!["keep".into()]],
            last: 1,
            ..Default::default()
        };
        let plans = plan(&s, &p, GroupBy::default(), false).unwrap();
        assert_eq!(kept(&plans), vec![1, 8, 9, 10]);
        assert_eq!(plans[0].keep[0].reasons, vec!["last snapshot", "within 2d"]);
        assert_eq!(plans[0].remove.len(), 6);
    }

    #[test]
    fn groups_and_refusals() {
        let mut s = daily(3);
        s.push(snap(20, "2026-12-01T12:00:00Z", "other", &[]));
        let p = KeepPolicy { last: 1, ..Default::default() };
        let plans = plan(&s, &p, GroupBy::default(), false).unwrap();
        assert_eq!(plans.len(), 2);
        assert_eq!(kept(&plans), vec![3, 20]);
        let all = plan(&s, &p, "paths".parse().unwrap(), false).unwrap();
        assert_eq!(kept(&all), vec![3]);
        assert!(matches!(plan(&s, &KeepPolicy::default(), GroupBy::default(), false), Err(OpError::Usage(_))));
        let none = KeepPolicy { tags: vec![vec!["absent".into()]], ..Default::default() };
        assert!(matches!(plan(&s, &none, GroupBy::default(), false), Err(OpError::Usage(_))));
        assert!(kept(&plan(&s, &none, GroupBy::default(), true).unwrap()).is_empty());
        assert!("host,colour".parse::<GroupBy>().is_err());
    }

    #[test]
    fn within_daily_keeps_one_per_day_inside_the_span() {
        let mut s = daily(10);
        s.push(snap(11, "2026-12-10T06:00:00Z", "h", &[]));
        let mut p = KeepPolicy::default();
        p.within_periods[1] = Some("3d".parse().unwrap());
        assert_eq!(kept(&plan(&s, &p, GroupBy::default(), false).unwrap()), vec![7, 8, 9, 10]);
    }
}
