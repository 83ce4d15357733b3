//! Arguments of the commands that fit vault into a system rather than touch a
//! repository: `generate`, `config`, `schedule`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    pub what: ConfigWhat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigWhat {
    /// Print the effective settings: where each comes from, secrets redacted
    Show,
}

#[derive(Debug, Args)]
pub(crate) struct ScheduleArgs {
    #[command(subcommand)]
    pub what: ScheduleWhat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleWhat {
    /// Write and enable a systemd timer and service for each command the profile's
    /// [schedule] names (without systemd: print the crontab lines)
    Install(ScheduleTarget),
    /// Disable and remove the profile's timers and services
    Remove(ScheduleTarget),
    /// Show the profile's timers: installed, enabled, last and next run
    Status(ScheduleTarget),
}

#[derive(Debug, Args)]
pub(crate) struct ScheduleTarget {
    /// The profile (as --profile takes it)
    #[arg(value_name = "PROFILE")]
    pub profile: String,
    /// System units in /etc/systemd/system (as root) instead of the user's
    #[arg(long)]
    pub system: bool,
    /// Write the units into DIR and do not touch systemd (for packaging and review)
    #[arg(long, value_name = "DIR", conflicts_with = "cron")]
    pub unit_dir: Option<PathBuf>,
    /// Print crontab lines instead of using systemd (the default where systemd is absent)
    #[arg(long)]
    pub cron: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Generate {
    /// A completion script on stdout, e.g. `vault generate completions bash >
    /// /etc/bash_completion.d/vault`
    Completions {
        /// The shell the script is for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Manual pages: vault(1) on stdout, or with --dir one page per command in DIR
    Man {
        /// Write vault.1, vault-backup.1, … into this directory
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}
