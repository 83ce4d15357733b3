//! Profiles: a TOML file that holds what a scheduled job would otherwise spell out in
//! flags (repository, password source, backend options, sources, excludes, tags,
//! retention, check budget, hooks). `--profile NAME` reads
//! `$XDG_CONFIG_HOME/vault/profiles/NAME.toml` (else `~/.config/vault/profiles/`), then
//! `/etc/vault/profiles/NAME.toml`; a NAME with a `/` is a path. Flags and environment
//! variables override what the profile says.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::args::{BackupArgs, CheckArgs, Cli, Command, ForgetArgs, GlobalArgs};

/// A profile file, as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Profile {
    pub repository: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    #[serde(default)]
    pub options: Vec<String>,
    pub cache_dir: Option<PathBuf>,
    /// KiB/s, as `--limit-upload`.
    pub limit_upload: Option<u64>,
    /// KiB/s, as `--limit-download`.
    pub limit_download: Option<u64>,
    #[serde(default)]
    pub backup: BackupProfile,
    #[serde(default)]
    pub forget: ForgetProfile,
    #[serde(default)]
    pub check: CheckProfile,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub schedule: Schedule,
}

/// `[backup]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct BackupProfile {
    #[serde(default)]
    pub sources: Vec<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub iexclude: Vec<String>,
    #[serde(default)]
    pub exclude_file: Vec<PathBuf>,
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    #[serde(default)]
    pub exclude_caches: bool,
    pub exclude_larger_than: Option<String>,
    #[serde(default)]
    pub one_file_system: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub host: Option<String>,
}

/// `[forget]`: the retention policy, used when the command line names none.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ForgetProfile {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<String>,
    #[serde(default)]
    pub keep_tag: Vec<String>,
    #[serde(default)]
    pub prune: bool,
}

/// `[check]`: how much data a check reads, used when the command line says nothing.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct CheckProfile {
    #[serde(default)]
    pub read_data: bool,
    pub read_data_subset: Option<String>,
    #[serde(default)]
    pub rotate: bool,
    pub max_bytes: Option<String>,
    pub max_duration: Option<String>,
}

/// `[hooks]`: shell commands run around every command of the profile.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Hooks {
    /// Before the command; if it fails, the command does not run.
    pub before: Option<String>,
    /// After a command that exited 0 (or 3, a backup that missed some files).
    pub success: Option<String>,
    /// After a command that failed (or did not run).
    pub failure: Option<String>,
    /// After every command, last.
    pub after: Option<String>,
}

/// `[schedule]`: when `vault schedule install` runs each command (systemd calendar
/// expressions, e.g. `daily`, `*-*-* 02:30`, `Sun 04:00`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Schedule {
    pub backup: Option<String>,
    pub forget: Option<String>,
    pub check: Option<String>,
    pub prune: Option<String>,
}

/// A profile and where it was read from.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub name: String,
    pub path: PathBuf,
    pub profile: Profile,
}

fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

/// Where `--profile NAME` looks, in order.
pub(crate) fn candidates(name: &str) -> Vec<PathBuf> {
    if name.contains('/') {
        return vec![PathBuf::from(name)];
    }
    let file = format!("{name}.toml");
    let mut out = Vec::new();
    if let Some(c) = config_home() {
        out.push(c.join("vault/profiles").join(&file));
    }
    out.push(Path::new("/etc/vault/profiles").join(&file));
    out
}

/// Reads profile `name`. A profile names commands that vault runs (password command,
/// hooks), so one that another user may change is refused.
pub(crate) fn load(name: &str) -> Result<Loaded> {
    if name.is_empty() {
        bail!("--profile needs a name");
    }
    let places = candidates(name);
    let Some(path) = places.iter().find(|p| p.exists()).cloned() else {
        let list: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
        bail!("profile {name} not found (looked for {})", list.join(", "));
    };
    // The file is judged by what was opened (no swap between the check and the read),
    // and so is the directory that holds it (else another user could replace it).
    let mut file = std::fs::File::open(&path).with_context(|| format!("cannot read profile {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot read profile {}", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir_meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    for (what, m) in [("profile", &meta), ("the directory of profile", &dir_meta)] {
        if m.mode() & 0o022 != 0 || (m.uid() != me && m.uid() != 0) {
            bail!(
                "{what} {} may be changed by other users (owner uid {}, mode {:o}); vault runs the commands a profile names, so it must belong to you or root and not be group- or world-writable",
                path.display(),
                m.uid(),
                m.mode() & 0o7777
            );
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)
        .with_context(|| format!("cannot read profile {}", path.display()))?;
    let profile: Profile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!("profile {}: {}", path.display(), e.to_string().lines().collect::<Vec<_>>().join(" "))
    })?;
    Ok(Loaded { name: name.to_string(), path, profile })
}

impl Profile {
    /// Fills in what the command line (flags and environment) left unset.
    pub(crate) fn apply(&self, cli: &mut Cli) {
        self.apply_global(&mut cli.global);
        match &mut cli.command {
            Command::Backup(a) => self.apply_backup(a),
            Command::Forget(a) => self.apply_forget(a),
            Command::Check(a) => self.apply_check(a),
            _ => {}
        }
    }

    fn apply_global(&self, g: &mut GlobalArgs) {
        if g.repo.is_none() {
            g.repo.clone_from(&self.repository);
        }
        // VAULT_PASSWORD in the environment outranks the profile's password source too.
        let password_given =
            g.password_file.is_some() || g.password_command.is_some() || std::env::var_os("VAULT_PASSWORD").is_some();
        if !password_given {
            g.password_file.clone_from(&self.password_file);
            g.password_command.clone_from(&self.password_command);
        }
        // The profile's options first: a later -o KEY=… on the command line wins.
        let mut options = self.options.clone();
        options.append(&mut g.options);
        g.options = options;
        if g.cache_dir.is_none() {
            g.cache_dir.clone_from(&self.cache_dir);
        }
        if g.limit_upload.is_none() {
            g.limit_upload = self.limit_upload.filter(|k| *k > 0);
        }
        if g.limit_download.is_none() {
            g.limit_download = self.limit_download.filter(|k| *k > 0);
        }
    }

    fn apply_backup(&self, a: &mut BackupArgs) {
        let b = &self.backup;
        let inputs_given = !a.paths.is_empty()
            || !a.files_from.is_empty()
            || !a.files_from_raw.is_empty()
            || a.stdin
            || a.stdin_from_command;
        if !inputs_given {
            a.paths.clone_from(&b.sources);
        }
        fill(&mut a.excludes, &b.exclude);
        fill(&mut a.iexcludes, &b.iexclude);
        fill(&mut a.exclude_files, &b.exclude_file);
        fill(&mut a.exclude_if_present, &b.exclude_if_present);
        fill(&mut a.tags, &b.tags);
        a.exclude_caches |= b.exclude_caches;
        a.one_file_system |= b.one_file_system;
        if a.exclude_larger_than.is_none() {
            a.exclude_larger_than.clone_from(&b.exclude_larger_than);
        }
        if a.host.is_none() {
            a.host.clone_from(&b.host);
        }
    }

    fn apply_forget(&self, a: &mut ForgetArgs) {
        let policy_given = a.keep_last.is_some()
            || a.keep_hourly.is_some()
            || a.keep_daily.is_some()
            || a.keep_weekly.is_some()
            || a.keep_monthly.is_some()
            || a.keep_yearly.is_some()
            || a.keep_within.is_some()
            || a.keep_within_hourly.is_some()
            || a.keep_within_daily.is_some()
            || a.keep_within_weekly.is_some()
            || a.keep_within_monthly.is_some()
            || a.keep_within_yearly.is_some()
            || !a.keep_tag.is_empty()
            || !a.snapshots.is_empty();
        if policy_given {
            return;
        }
        let f = &self.forget;
        a.keep_last = f.keep_last;
        a.keep_hourly = f.keep_hourly;
        a.keep_daily = f.keep_daily;
        a.keep_weekly = f.keep_weekly;
        a.keep_monthly = f.keep_monthly;
        a.keep_yearly = f.keep_yearly;
        a.keep_within.clone_from(&f.keep_within);
        a.keep_tag.clone_from(&f.keep_tag);
        a.prune |= f.prune;
    }

    fn apply_check(&self, a: &mut CheckArgs) {
        if a.read_data || a.read_data_subset.is_some() || a.rotate {
            return;
        }
        let c = &self.check;
        a.read_data = c.read_data;
        a.read_data_subset.clone_from(&c.read_data_subset);
        a.rotate = c.rotate;
        if a.max_bytes.is_none() {
            a.max_bytes.clone_from(&c.max_bytes);
        }
        if a.max_duration.is_none() {
            a.max_duration.clone_from(&c.max_duration);
        }
    }
}

fn fill<T: Clone>(given: &mut Vec<T>, profile: &[T]) {
    if given.is_empty() {
        given.extend_from_slice(profile);
    }
}

impl Loaded {
    /// Runs the `before` hook; its failure means the command must not run.
    pub(crate) fn run_before(&self, command: &str) -> Result<()> {
        let Some(cmd) = &self.profile.hooks.before else { return Ok(()) };
        let status = self.hook(cmd, command, None)?;
        if !status.success() {
            bail!("the profile's before hook failed ({status}); {command} did not run");
        }
        Ok(())
    }

    /// Runs the `success` or `failure` hook, then `after`, with the outcome in the
    /// environment. Their failures are warnings: the command's exit code stands.
    pub(crate) fn run_after(&self, command: &str, code: i32, error: Option<&str>) {
        let h = &self.profile.hooks;
        let outcome = if code == 0 || code == 3 { &h.success } else { &h.failure };
        for (which, cmd) in [(if code == 0 || code == 3 { "success" } else { "failure" }, outcome), ("after", &h.after)]
        {
            let Some(cmd) = cmd else { continue };
            match self.hook(cmd, command, Some((code, error))) {
                Ok(s) if s.success() => {}
                Ok(s) => eprintln!("warning: the profile's {which} hook failed ({s})"),
                Err(e) => eprintln!("warning: the profile's {which} hook: {e:#}"),
            }
        }
    }

    /// Runs one hook with `sh -c`: its output goes to stderr (stdout is the command's),
    /// and the environment says what ran and how it ended.
    fn hook(&self, cmd: &str, command: &str, outcome: Option<(i32, Option<&str>)>) -> Result<std::process::ExitStatus> {
        use std::os::fd::AsFd;
        let stderr = std::io::stderr().as_fd().try_clone_to_owned().context("cannot pass stderr to a hook")?;
        // After the command, its result (the summary JSON a `--json` run prints last; a
        // backup's summary always) comes on standard input.
        let input = outcome.and_then(|_| super::output::kept_result());
        let mut c = std::process::Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .stdin(if input.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
            .stdout(std::process::Stdio::from(stderr))
            .env("VAULT_PROFILE", &self.name)
            .env("VAULT_PROFILE_FILE", &self.path)
            .env("VAULT_COMMAND", command);
        if let Some((code, error)) = outcome {
            c.env("VAULT_EXIT_CODE", code.to_string())
                .env("VAULT_SUCCESS", if code == 0 || code == 3 { "1" } else { "0" });
            if let Some(e) = error {
                c.env("VAULT_ERROR", e);
            }
        }
        let mut child = c.spawn().with_context(|| format!("cannot run hook {cmd:?}"))?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            use std::io::Write;
            // A hook that does not read its input is not an error.
            let _ = writeln!(stdin, "{text}");
        }
        child.wait().with_context(|| format!("cannot wait for hook {cmd:?}"))
    }
}
