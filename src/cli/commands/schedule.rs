//! `vault schedule install|remove|status PROFILE`: a systemd timer and service for each
//! command a profile's `[schedule]` names, or crontab lines where systemd is absent.
//!
//! Overlap needs no lock: systemd does not start a oneshot service that is still
//! running, so a slow backup is never started twice; runs of different commands (a
//! backup beside a prune or a check) are safe by vault's design.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cli::ExitCode;
use crate::cli::args::{GlobalArgs, ScheduleArgs, ScheduleTarget, ScheduleWhat};
use crate::cli::profile::{self, Loaded};

/// The scheduled commands of a profile: `(command, calendar)`.
fn jobs(l: &Loaded) -> Vec<(&'static str, String)> {
    let s = &l.profile.schedule;
    [("backup", &s.backup), ("forget", &s.forget), ("check", &s.check), ("prune", &s.prune)]
        .into_iter()
        .filter_map(|(c, when)| when.clone().map(|w| (c, w)))
        .collect()
}

/// A unit-name-safe form of the profile's name.
fn unit_base(l: &Loaded) -> String {
    let stem = l.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| l.name.clone());
    let safe: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("vault-{safe}")
}

fn unit_dir(t: &ScheduleTarget) -> Result<PathBuf> {
    if let Some(d) = &t.unit_dir {
        return Ok(d.clone());
    }
    if t.system {
        return Ok(PathBuf::from("/etc/systemd/system"));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .context("neither XDG_CONFIG_HOME nor HOME is set")?;
    Ok(base.join("systemd/user"))
}

/// One ExecStart word, quoted for systemd (`%` is a specifier there).
fn quoted(word: &str) -> String {
    format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%"))
}

fn service(l: &Loaded, exe: &Path, command: &str) -> String {
    format!(
        "[Unit]\n\
         Description=vault {command} (profile {name})\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={exe} --profile {profile} {command}\n\
         Nice=10\n\
         IOSchedulingClass=idle\n\
         # A run still going when the timer fires again is not started twice: systemd\n\
         # does not start an active oneshot service. vault takes no locks.\n",
        name = l.name,
        exe = quoted(&exe.to_string_lossy()),
        profile = quoted(&l.path.to_string_lossy()),
    )
}

fn timer(l: &Loaded, command: &str, calendar: &str) -> String {
    format!(
        "[Unit]\n\
         Description=vault {command} (profile {name}) on a schedule\n\
         \n\
         [Timer]\n\
         OnCalendar={calendar}\n\
         Persistent=true\n\
         RandomizedDelaySec=5min\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        name = l.name,
    )
}

/// A crontab line for the simple calendar names; others need systemd.
fn cron_line(exe: &Path, l: &Loaded, command: &str, calendar: &str) -> Result<String> {
    let when = match calendar.trim() {
        "hourly" => "0 * * * *",
        "daily" => "0 3 * * *",
        "weekly" => "0 4 * * 0",
        "monthly" => "0 5 1 * *",
        other => bail!(
            "the schedule {other:?} has no crontab form vault writes (use hourly, daily, weekly or monthly, or systemd)"
        ),
    };
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    Ok(format!("{when} {} --profile {} -q {command}", q(&exe.to_string_lossy()), q(&l.path.to_string_lossy())))
}

fn systemctl(t: &ScheduleTarget, args: &[&str]) -> Result<()> {
    let mut c = Command::new("systemctl");
    if !t.system {
        c.arg("--user");
    }
    let out = c.args(args).output().context("cannot run systemctl")?;
    if !out.status.success() {
        bail!(
            "systemctl {} failed: {} (user timers need a running user manager; `loginctl enable-linger` keeps it running without a login)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file, so a unit is never half written.
fn write_unit(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("vault-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) fn run(g: &GlobalArgs, a: &ScheduleArgs) -> Result<ExitCode> {
    if g.json {
        return Err(vault_ops::OpError::Usage(
            "schedule writes units and crontab lines: --json is not available here".into(),
        )
        .into());
    }
    let (ScheduleWhat::Install(t) | ScheduleWhat::Remove(t) | ScheduleWhat::Status(t)) = &a.what;
    let l = profile::load(&t.profile)?;
    let jobs = jobs(&l);
    if jobs.is_empty() {
        bail!("profile {} has no [schedule] entries (e.g. backup = \"daily\")", l.path.display());
    }
    let exe = std::env::current_exe().context("cannot find vault's own path")?;
    let systemd = t.unit_dir.is_some() || (!t.cron && Path::new("/run/systemd/system").exists());
    if !systemd {
        if !matches!(a.what, ScheduleWhat::Install(_)) {
            bail!("without systemd, vault does not manage the crontab: edit it with `crontab -e`");
        }
        println!("# add to your crontab (crontab -e):");
        for (command, calendar) in &jobs {
            println!("{}", cron_line(&exe, &l, command, calendar)?);
        }
        return Ok(ExitCode::Ok);
    }
    let dir = unit_dir(t)?;
    let base = unit_base(&l);
    let manage = t.unit_dir.is_none();
    match &a.what {
        ScheduleWhat::Install(_) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for (command, calendar) in &jobs {
                let name = format!("{base}-{command}");
                write_unit(&dir.join(format!("{name}.service")), &service(&l, &exe, command))?;
                write_unit(&dir.join(format!("{name}.timer")), &timer(&l, command, calendar))?;
                if !g.quiet {
                    println!("wrote {}/{name}.service and .timer ({command}: {calendar})", dir.display());
                }
            }
            if manage {
                systemctl(t, &["daemon-reload"])?;
                for (command, _) in &jobs {
                    systemctl(t, &["enable", "--now", &format!("{base}-{command}.timer")])?;
                }
                if !g.quiet {
                    println!("enabled; `vault schedule status {}` shows the next runs", t.profile);
                }
            }
        }
        ScheduleWhat::Remove(_) => {
            for (command, _) in &jobs {
                let name = format!("{base}-{command}");
                if manage {
                    let _ = systemctl(t, &["disable", "--now", &format!("{name}.timer")]);
                }
                for ext in ["timer", "service"] {
                    let p = dir.join(format!("{name}.{ext}"));
                    match std::fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", p.display())),
                    }
                }
                if !g.quiet {
                    println!("removed {name}.timer and .service");
                }
            }
            if manage {
                systemctl(t, &["daemon-reload"])?;
            }
        }
        ScheduleWhat::Status(_) => {
            for (command, calendar) in &jobs {
                let name = format!("{base}-{command}");
                let installed = dir.join(format!("{name}.timer")).exists();
                let mut line = format!(
                    "{name}.timer ({command}, {calendar}): {}",
                    if installed { "installed" } else { "not installed" }
                );
                if installed && manage {
                    let mut c = Command::new("systemctl");
                    if !t.system {
                        c.arg("--user");
                    }
                    let shown = c
                        .args([
                            "show",
                            &format!("{name}.timer"),
                            "-p",
                            "ActiveState,LastTriggerUSec,NextElapseUSecRealtime",
                        ])
                        .output()
                        .ok()
                        .filter(|o| o.status.success())
                        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().collect::<Vec<_>>().join(", "));
                    if let Some(s) = shown {
                        line.push_str(&format!("; {s}"));
                    }
                }
                println!("{line}");
            }
        }
    }
    Ok(ExitCode::Ok)
}
