//! One file per command. Each returns the exit code for a run that reached its end; errors
//! that stop a command early propagate to `main`, which prints them and classifies them.

pub(crate) mod backup;
pub(crate) mod bench;
pub(crate) mod bench_index;
pub(crate) mod cat;
pub(crate) mod check;
pub(crate) mod config;
pub(crate) mod copy;
pub(crate) mod diff;
pub(crate) mod dump;
pub(crate) mod find;
pub(crate) mod forget;
pub(crate) mod generate;
pub(crate) mod init;
pub(crate) mod key;
pub(crate) mod ls;
pub(crate) mod mount;
pub(crate) mod prune;
pub(crate) mod repair;
pub(crate) mod restore;
pub(crate) mod rewrite;
pub(crate) mod schedule;
pub(crate) mod snapshots;
pub(crate) mod stats;
pub(crate) mod writers;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow};

use super::args::{FilterArgs, GlobalArgs};
use super::password::{Confirm, PasswordRole, PasswordSource, read_password};
use vault_ops::select::SnapshotFilter;
use vault_repo::backend::OpenMode;
use vault_repo::cache::Cache;
use vault_repo::state::LocalState;
use vault_repo::{Backend, BackendOptions, KdfLimit, Location, OpenOptions, RepoError, Repository};

pub(crate) fn location(g: &GlobalArgs) -> Result<Location> {
    let s = g.repo.as_deref().ok_or_else(|| anyhow!("no repository given: use -r/--repo or set VAULT_REPOSITORY"))?;
    Ok(Location::parse(s)?)
}

pub(crate) fn backend_options(g: &GlobalArgs) -> Result<BackendOptions> {
    let mut o = BackendOptions::from_args_and_env(&g.options, &|k| std::env::var(k).ok())?;
    o.limit_upload = g.limit_upload.map(|k| k.saturating_mul(1024));
    o.limit_download = g.limit_download.map(|k| k.saturating_mul(1024));
    if let Some(f) = o.debug_faults {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            eprintln!(
                "warning: VAULT_DEBUG_FAULTS is set: injecting storage faults into {:.1} % of requests (for tests only)",
                f64::from(f.per_million) / 1e4
            )
        });
    }
    Ok(o)
}

pub(crate) fn password_source(g: &GlobalArgs) -> PasswordSource {
    PasswordSource {
        command: g.password_command.clone(),
        file: g.password_file.clone(),
        role: PasswordRole::Repository,
    }
}

/// The subcommand being run (set once by `main`): a write-only key may run only a few.
static COMMAND: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// What a write-only key may run (`key` lets it list key files only).
const WRITE_ONLY_COMMANDS: &[&str] = &["backup", "snapshots", "key"];

pub(crate) fn set_command(name: &str) {
    let _ = COMMAND.set(name.to_string());
}

pub(crate) fn open_repo(g: &GlobalArgs) -> Result<Arc<Repository>> {
    open_repo_with(g, !g.no_cache)
}

/// Opens the repository, with the local cache when `cache` is set.
pub(crate) fn open_repo_with(g: &GlobalArgs, cache: bool) -> Result<Arc<Repository>> {
    open_repo_at(g, location(g)?, &password_source(g), cache)
}

/// Opens the other repository of `copy` and `init --copy-chunker-params` (`--from-repo`),
/// which must not be the one `-r` names.
pub(crate) fn open_from_repo(
    g: &GlobalArgs,
    from_repo: &str,
    pw: &crate::cli::args::FromPasswordArgs,
    cache: bool,
) -> Result<Arc<Repository>> {
    let from = Location::parse(from_repo)?;
    if from.to_string() == location(g)?.to_string() {
        return Err(vault_ops::OpError::Usage("--from-repo names the repository of -r".into()).into());
    }
    let pw = PasswordSource {
        command: pw.from_password_command.clone(),
        file: pw.from_password_file.clone(),
        role: crate::cli::password::PasswordRole::From,
    };
    open_repo_at(g, from, &pw, cache)
}

/// Opens the repository at `loc` with the password from `pw` (the backend options and
/// local settings of `g`).
pub(crate) fn open_repo_at(g: &GlobalArgs, loc: Location, pw: &PasswordSource, cache: bool) -> Result<Arc<Repository>> {
    let backend = match Backend::open(&loc, &backend_options(g)?, OpenMode::Existing) {
        Ok(b) => b,
        Err(e) if e.kind == vault_repo::backend::BackendErrorKind::NotFound => {
            return Err(RepoError::NotFound(loc.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };
    // Fail on a missing repository before asking for a password.
    if backend.stat(&vault_repo::StoredObject::Config.path())?.is_none() {
        return Err(RepoError::NotFound(loc.to_string()).into());
    }
    let pw = read_password(pw, Confirm::Once)?;
    // The key file that opened this location last time is tried first; the state
    // directory is an optimisation, so a failure to use it only costs time.
    let state = vault_repo::state::default_base().and_then(|b| match LocalState::open(&b) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("warning: cannot use the state directory {}: {e}", b.display());
            None
        }
    });
    let place = loc.to_string();
    let opts = OpenOptions {
        kdf_limit: KdfLimit::from_memory_mib(g.kdf_max_memory),
        try_first: state.as_ref().and_then(|s| s.key_hint(&place)),
        host: hostname(),
        username: username(),
    };
    let mut repo = Repository::open_with(backend, pw.as_bytes(), &opts)?;
    let command = COMMAND.get().map_or("", String::as_str);
    if !WRITE_ONLY_COMMANDS.contains(&command) {
        repo.require_full(&format!("`vault {command}`"))?;
    }
    for note in repo.open_notes() {
        eprintln!("warning: {note}");
    }
    if let Some(s) = &state {
        let _ = s.remember_key(&place, repo.key_id());
    }
    if cache {
        let base = g.cache_dir.clone().or_else(vault_repo::cache::default_base);
        // A cache that cannot be created only costs speed.
        match base.map(|b| Cache::open(&b, &repo.config().id)) {
            Some(Ok(c)) => repo.attach_cache(c),
            Some(Err(e)) => eprintln!("warning: local cache disabled: {e}"),
            None => {}
        }
    }
    if let Some(s) = &state {
        config_unchanged(&repo, s, g.accept_config_change)?;
        epoch_not_rolled_back(&repo, s)?;
        notice_tampering(&repo, s)?;
    }
    Ok(Arc::new(repo))
}

/// The config is written once, by `init`: one that differs from the last one seen was
/// re-sealed by a key holder, perhaps to turn padding off or shrink chunks for every
/// writer. Refused until the user accepts it.
fn config_unchanged(repo: &Repository, state: &LocalState, accept: bool) -> Result<()> {
    let id = repo.config().id;
    let now = repo.config().to_json();
    match state.config_seen(&id) {
        Some(before) if before != now && !accept => {
            let show = |b: &[u8]| String::from_utf8_lossy(b).split_whitespace().collect::<Vec<_>>().join(" ");
            Err(RepoError::Tampering(format!(
                "the repository's config changed since this computer last used it (was {}, now {}); no vault command changes it. If you know why, run once with --accept-config-change",
                show(&before),
                show(&now)
            ))
            .into())
        }
        _ => {
            let _ = state.remember_config(&id, &now);
            Ok(())
        }
    }
}

/// A key epoch older than the one this key file used here before, or another key for the
/// same epoch, means grants were removed or forged (spec §3.2): writing on would seal new
/// data with a key the rotation was meant to retire.
fn epoch_not_rolled_back(repo: &Repository, state: &LocalState) -> Result<()> {
    let (id, key) = (repo.config().id, repo.key_id());
    let (epoch, key_id) = (repo.epoch(), repo.epoch_key_id().to_hex());
    match state.epoch_seen(&id, &key) {
        Some((before, _)) if before > epoch => Err(RepoError::Tampering(format!(
            "this key file used key epoch {before} here before, and the repository now offers only epoch {epoch}: grants were removed from the storage"
        ))
        .into()),
        Some((before, old)) if before == epoch && old != key_id => Err(RepoError::Tampering(format!(
            "key epoch {epoch} has another key than the one this key file used here before: a grant was replaced"
        ))
        .into()),
        _ => {
            let _ = state.remember_epoch(&id, &key, epoch, &key_id);
            Ok(())
        }
    }
}

/// Compares the repository with what this user saw before (see `vault_ops::rollback`):
/// losses are reported on stderr and make the command exit with 15.
fn notice_tampering(repo: &Repository, state: &LocalState) -> Result<()> {
    match vault_ops::rollback::observe(repo, state) {
        Ok(h) if h.is_tampered() => {
            eprintln!("warning: possible tampering: {}", h.describe());
            crate::cli::exit::record_tampering(h);
        }
        Ok(_) => {}
        Err(vault_ops::OpError::LocalState(e)) => eprintln!("warning: {e}"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The one item whose id starts with `spec` (any case): a usage error naming `what`
/// when none or several do.
pub(crate) fn by_prefix<'a, T>(
    spec: &str,
    items: &'a [T],
    id: impl Fn(&T) -> vault_format::Id,
    what: &str,
    hint: &str,
) -> Result<&'a T> {
    let lower = spec.to_ascii_lowercase();
    let matches: Vec<&T> = items.iter().filter(|i| !lower.is_empty() && id(i).to_hex().starts_with(&lower)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(vault_ops::OpError::Usage(format!("no {what} matches {spec:?}{hint}")).into()),
        many => Err(vault_ops::OpError::Usage(format!(
            "{spec:?} matches {} {what}s ({}); give more digits",
            many.len(),
            many.iter().map(|i| id(i).short()).collect::<Vec<_>>().join(", ")
        ))
        .into()),
    }
}

/// The user's state directory, if it can be used.
pub(crate) fn local_state() -> Option<LocalState> {
    vault_repo::state::default_base().and_then(|b| LocalState::open(&b).ok())
}

pub(crate) fn filter(f: &FilterArgs) -> SnapshotFilter {
    SnapshotFilter {
        hosts: f.hosts.clone(),
        tags: f
            .tags
            .iter()
            .map(|t| t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
            .collect(),
        // Snapshots record absolute, normalised paths: `--path docs/` means the same.
        paths: {
            let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
            f.paths
                .iter()
                .map(|p| vault_ops::source::absolute(Path::new(p), &cwd).to_string_lossy().into_owned())
                .collect()
        },
    }
}

pub(crate) fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "unknown".into())
}

pub(crate) fn username() -> String {
    std::env::var("USER").unwrap_or_default()
}
