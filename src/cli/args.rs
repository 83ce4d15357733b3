//! Command-line arguments (clap). Global options may stand before or after the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use vault_format::blob::Compression;

pub(crate) use super::setup_args::{ConfigArgs, Generate, GenerateArgs, ScheduleArgs, ScheduleTarget, ScheduleWhat};

#[derive(Debug, Parser)]
#[command(name = "vault", version, about = "Deduplicating, encrypted backups with independent restores")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// Repository: a local path, local:PATH, sftp://[user@]host[:port]/path, s3://bucket[/prefix],
    /// webdav:https://[user@]host[:port]/path or azure:container[/prefix]
    #[arg(
        short = 'r',
        long = "repo",
        env = "VAULT_REPOSITORY",
        hide_env_values = true,
        global = true,
        value_name = "REPO"
    )]
    pub repo: Option<String>,
    /// Backend option KEY=VALUE (repeatable): s3.endpoint, s3.region, azure.endpoint, sftp.key,
    /// sftp.known-hosts, timeout, upload-threads, download-threads
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE", value_parser = record_option)]
    pub options: Vec<String>,
    /// Local cache directory (default: $XDG_CACHE_HOME/vault or ~/.cache/vault)
    #[arg(long, env = "VAULT_CACHE_DIR", hide_env_values = true, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not use the local cache
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Limit uploads to this many KiB/s, averaged over each stored file (packs included)
    #[arg(long, env = "VAULT_LIMIT_UPLOAD", global = true, value_name = "KIB_PER_S",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_upload: Option<u64>,
    /// Limit downloads to this many KiB/s, averaged over each read
    #[arg(long, env = "VAULT_LIMIT_DOWNLOAD", global = true, value_name = "KIB_PER_S",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_download: Option<u64>,
    /// Read the password from this file (its content, one trailing newline removed)
    #[arg(long, env = "VAULT_PASSWORD_FILE", hide_env_values = true, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and read the password from its output
    #[arg(long, env = "VAULT_PASSWORD_COMMAND", hide_env_values = true, global = true, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Read settings from profile NAME ($XDG_CONFIG_HOME/vault/profiles/NAME.toml or
    /// /etc/vault/profiles/NAME.toml; a NAME with a `/` is a path); flags and environment
    /// variables override it
    #[arg(long, env = "VAULT_PROFILE", global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars and no summaries, only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Use the repository although its config differs from the one this computer saw
    /// before (no vault command changes it: a key holder re-sealed it)
    #[arg(long, global = true)]
    pub accept_config_change: bool,
    /// Skip key files whose Argon2id asks for more than this much memory (MiB), or more
    /// than four times as much memory × passes
    #[arg(long, env = "VAULT_KDF_MAX_MEMORY", hide_env_values = true, global = true, value_name = "MIB", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub kdf_max_memory: u32,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a new repository
    Init(InitArgs),
    /// Back up files and directories into a new snapshot
    Backup(BackupArgs),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// List the files in a snapshot
    Ls(LsArgs),
    /// Restore a snapshot, or part of it, into a directory
    Restore(RestoreArgs),
    /// Print a decoded repository object as JSON (for debugging)
    Cat(CatArgs),
    /// Verify the repository: structure, and with --read-data the stored data itself
    Check(CheckArgs),
    /// Repair a damaged repository: `repair index`, then `repair snapshots`
    Repair(RepairArgs),
    /// Browse every snapshot as a read-only directory tree (FUSE)
    Mount(MountArgs),
    /// Show what changed between two snapshots, or between a snapshot and a directory
    Diff(DiffArgs),
    /// Find paths matching a pattern across snapshots, with their versions over time
    Find(FindArgs),
    /// Write a file to stdout, or a directory as a tar or zip archive
    Dump(DumpArgs),
    /// Restore size, unique and stored data, dedup and compression ratios
    Stats(StatsArgs),
    /// Remove snapshots: named ones, or those a retention policy does not keep
    Forget(Box<ForgetArgs>),
    /// Delete data no snapshot references (safe beside running backups)
    Prune(PruneArgs),
    /// List the writers announced in the repository, or remove a dead one's announcement
    Writers(WritersArgs),
    /// List, add and remove key files, or change the password
    Key(KeyArgs),
    /// Add, remove or set tags of snapshots (each changed snapshot is replaced)
    Tag(TagArgs),
    /// Write snapshots again without the paths given (e.g. a secret backed up by mistake)
    Rewrite(RewriteArgs),
    /// Copy snapshots from another repository (--from-repo) into this one
    Copy(CopyArgs),
    /// Write shell completions or manual pages
    Generate(GenerateArgs),
    /// Show the settings a command would use (profile, environment and flags), secrets hidden
    Config(ConfigArgs),
    /// Run a profile's commands on a schedule: systemd timers, or a crontab line
    Schedule(ScheduleArgs),
    /// Print vault's version and the repository formats it reads
    Version,
    /// Single-core throughput of chunking, hashing, compression and encryption here
    #[command(hide = true)]
    BenchPrimitives,
    /// Memory and lookup speed of the in-memory index with many synthetic blobs
    #[command(hide = true)]
    BenchIndex(BenchIndexArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BenchIndexArgs {
    /// Number of synthetic blobs
    #[arg(long, default_value_t = 10_000_000)]
    pub blobs: u64,
    /// Blobs per pack (a data pack of 1 MiB chunks holds ~16, a pack of small files thousands)
    #[arg(long, default_value_t = 100)]
    pub per_pack: u64,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The older snapshot
    pub snapshot: String,
    /// The newer snapshot, or a local directory (anything that exists as a directory or contains '/')
    pub other: String,
    /// Only this path inside the snapshots
    pub path: Option<String>,
    /// When comparing with a directory, read every file's content (not only those whose metadata changed)
    #[arg(long)]
    pub content: bool,
    /// Print only the summary
    #[arg(long)]
    pub summary: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FindArgs {
    /// Glob(s) matched against names, or whole paths when they contain '/'
    #[arg(required = true)]
    pub patterns: Vec<String>,
    /// Only these snapshots (repeatable; default: all)
    #[arg(short = 's', long = "snapshot", value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Only below this path inside the snapshots
    #[arg(long = "path", value_name = "PATH")]
    pub path: Option<String>,
    /// Only entries modified after this time (YYYY-MM-DD[ HH:MM[:SS]] or RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub newer: Option<String>,
    /// Only entries modified before this time
    #[arg(long, value_name = "TIME")]
    pub older: Option<String>,
    /// Only snapshots of this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// Snapshot: an id, a unique prefix or `latest`
    pub snapshot: String,
    /// File or directory inside the snapshot
    pub path: String,
    /// Archive format for directories
    #[arg(long, value_parser = ["tar", "zip"], default_value = "tar")]
    pub archive: String,
    /// Write to this file instead of stdout (created with mode 0600; never through a symbolic link)
    #[arg(short, long, value_name = "FILE")]
    pub target: Option<PathBuf>,
    /// Replace the --target file if it exists
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Snapshots (default: all, after filters)
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MountArgs {
    /// An existing empty directory
    pub mountpoint: PathBuf,
    /// Let other users (and root) see the mount (needs user_allow_other in /etc/fuse.conf for non-root); the kernel
    /// checks each file's recorded owner and mode for them
    #[arg(long)]
    pub allow_other: bool,
    /// Memory for decrypted blobs, in MiB
    #[arg(long, default_value_t = 128, value_name = "MIB")]
    pub cache_mib: usize,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Download and verify every pack
    #[arg(long)]
    pub read_data: bool,
    /// Verify part of the data: N/M (deterministic part N of M), P% (random share) or SIZE (random, up to a byte budget)
    #[arg(long, value_name = "SUBSET")]
    pub read_data_subset: Option<String>,
    /// Verify the data verified longest ago first, within --max-bytes / --max-duration; records progress in the repository
    #[arg(long)]
    pub rotate: bool,
    /// Byte budget for --rotate (e.g. 500M, 20G)
    #[arg(long, value_name = "SIZE")]
    pub max_bytes: Option<String>,
    /// Time budget for --rotate (e.g. 90s, 30m, 2h)
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,
    /// Packs downloaded and verified at once (each holds one pack in memory)
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub read_threads: usize,
    /// After a report of snapshots or tombstones gone without a forget (exit 15), take the
    /// repository as it is now as what this computer has seen
    #[arg(long)]
    pub accept_missing: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    #[command(subcommand)]
    pub what: RepairWhat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RepairWhat {
    /// Rebuild the index from the packs that exist (supersedes every old index file)
    Index {
        /// Read whole packs, index only blobs that verify, and copy intact blobs out of damaged packs
        #[arg(long)]
        read_data: bool,
    },
    /// Write new snapshots without the files whose data is lost (originals are kept)
    Snapshots {
        /// Also download and verify the data to find damaged blobs
        #[arg(long)]
        read_data: bool,
        /// Show what would change, write nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Pad encrypted blobs, trees and pack headers (Padmé, at most 12 %, typically 1–3 %)
    /// so that stored sizes tell the storage server less about content; `none` turns it off
    #[arg(long, value_parser = ["none", "padme"], default_value = "padme")]
    pub padding: String,
    /// Default compression of stored data (a backup may choose another)
    #[arg(long, value_enum, default_value_t = CompressionArg::Auto)]
    pub compression: CompressionArg,
    /// Take the chunker bounds and the chunker and blob id keys of the repository named by
    /// --from-repo, so that `vault copy` between the two stores no data twice and copies
    /// blobs without chunking files again
    #[arg(long, requires = "from_repo")]
    pub copy_chunker_params: bool,
    /// The repository whose chunker parameters --copy-chunker-params takes (without that
    /// option it is not used)
    #[arg(long, env = "VAULT_FROM_REPOSITORY", value_name = "REPO")]
    pub from_repo: Option<String>,
    #[command(flatten)]
    pub from_password: FromPasswordArgs,
}

/// Compression presets. Levels were chosen with `vault bench-primitives`: zstd 3 compresses
/// text within a few percent of 9 at several times the speed, and 19 buys a little more
/// for an order of magnitude more CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CompressionArg {
    /// Store data as it is
    Off,
    /// zstd level 1, skipping data a sample shows to be incompressible
    Fast,
    /// zstd level 3, skipping data a sample shows to be incompressible
    Auto,
    /// zstd level 19, trying every chunk whole
    Max,
}

impl CompressionArg {
    pub(crate) fn compression(self) -> Compression {
        match self {
            CompressionArg::Off => Compression::Off,
            CompressionArg::Fast => Compression::Zstd { level: 1 },
            CompressionArg::Auto => Compression::Zstd { level: 3 },
            CompressionArg::Max => Compression::Zstd { level: 19 },
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ForgetArgs {
    /// Snapshots to forget (ids or unique prefixes); with none, the policy decides
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have snapshots
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within SPAN (e.g. 1y6m, 30d, 12h) of the group's newest
    #[arg(long, value_name = "SPAN")]
    pub keep_within: Option<String>,
    /// Keep the newest snapshot of each hour within SPAN of the group's newest
    #[arg(long, value_name = "SPAN")]
    pub keep_within_hourly: Option<String>,
    /// Keep the newest snapshot of each day within SPAN of the group's newest
    #[arg(long, value_name = "SPAN")]
    pub keep_within_daily: Option<String>,
    /// Keep the newest snapshot of each week within SPAN of the group's newest
    #[arg(long, value_name = "SPAN")]
    pub keep_within_weekly: Option<String>,
    /// Keep the newest snapshot of each month within SPAN of the group's newest
    #[arg(long, value_name = "SPAN")]
    pub keep_within_monthly: Option<String>,
    /// Keep the newest snapshot of each year within SPAN of the group's newest
    #[arg(long, value_name = "SPAN")]
    pub keep_within_yearly: Option<String>,
    /// Keep snapshots with these tags (`a,b` needs both; repeatable)
    #[arg(long, value_name = "TAG[,TAG]")]
    pub keep_tag: Vec<String>,
    /// Apply the policy per group of snapshots sharing these fields
    #[arg(long, value_name = "host,paths,tags", default_value = "host,paths")]
    pub group_by: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would be removed; remove nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Remove even when the policy keeps no snapshot of a group
    #[arg(long)]
    pub force: bool,
    /// Run prune afterwards
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_opts: PruneOptsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PruneOptsArgs {
    /// Unused data to tolerate in kept packs: a size (500M), a percentage of used data (5%) or `unlimited`
    #[arg(long, value_name = "SIZE|P%", default_value = "5%")]
    pub max_unused: String,
    /// Copy at most this much live data into new packs (e.g. 10G)
    #[arg(long, value_name = "SIZE")]
    pub max_repack: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    #[command(flatten)]
    pub opts: PruneOptsArgs,
    /// Show what would be deleted and repacked, with exact figures; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Also rewrite every pack and index file sealed with a key epoch older than the
    /// current one (after `vault key rotate`), so that the old key opens none of them
    #[arg(long)]
    pub reencrypt: bool,
    /// When writers that started before this prune still run, wait for them (checking
    /// every few seconds) and then delete, instead of leaving it to the next prune
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TagArgs {
    /// Snapshots (ids or unique prefixes); with none, every snapshot the filters match
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Add this tag (repeatable, or comma-separated)
    #[arg(long, value_name = "TAG")]
    pub add: Vec<String>,
    /// Remove this tag (repeatable, or comma-separated)
    #[arg(long, value_name = "TAG")]
    pub remove: Vec<String>,
    /// Replace all tags with these (repeatable, or comma-separated; `--set ""` clears them)
    #[arg(long, value_name = "TAG")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would change; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RewriteArgs {
    /// Snapshots (ids or unique prefixes); with none, every snapshot the filters match
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Leave out paths matching this pattern (repeatable; paths inside the snapshot)
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN", required = true)]
    pub excludes: Vec<String>,
    /// Remove the original snapshots (otherwise they stay stored, hidden from listings)
    #[arg(long)]
    pub forget: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would be left out; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    #[command(subcommand)]
    pub action: Option<KeyAction>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyAction {
    /// List the key files, the one in use marked (the default)
    List,
    /// Add a key file: another password for the same repository
    Add(KeyAddArgs),
    /// Remove a key file (not the one in use: open with another key to remove it)
    Remove {
        /// The key file's id, or a unique prefix, as `vault key list` shows it
        id: String,
    },
    /// Change the password: a new key file replaces the one in use
    Passwd(NewKeyArgs),
    /// Make a new master key (a key epoch) and give it to every key file; new data is
    /// sealed with it, and `vault prune --reencrypt` rewrites the old
    Rotate(KeyRotateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct KeyRotateArgs {
    /// Rotate although some key files cannot be given the new key (no member record yet);
    /// they keep reading what was written before, nothing newer
    #[arg(long)]
    pub leave_out: bool,
    /// Show which key files would get the new key; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KeyAddArgs {
    #[command(flatten)]
    pub key: NewKeyArgs,
    /// Make a write-only key: it can back up (deduplicating against everything) and list
    /// its own snapshots, but cannot read other hosts' data, trees or snapshots
    #[arg(long)]
    pub write_only: bool,
}

#[derive(Debug, Args)]
pub(crate) struct NewKeyArgs {
    /// Read the new password from this file (its content, one trailing newline removed)
    #[arg(long, env = "VAULT_NEW_PASSWORD_FILE", hide_env_values = true, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// Run this shell command and read the new password from its output
    #[arg(long, env = "VAULT_NEW_PASSWORD_COMMAND", hide_env_values = true, value_name = "CMD")]
    pub new_password_command: Option<String>,
    /// Host label of the new key file (default: this host's name for `add`, the current
    /// key file's for `passwd`)
    #[arg(long)]
    pub host: Option<String>,
    /// User label of the new key file (default: $USER for `add`, the current key file's
    /// for `passwd`)
    #[arg(long)]
    pub user: Option<String>,
    /// Argon2id memory in MiB (default: 64 for `add`, the current key file's for `passwd`)
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub kdf_memory: Option<u32>,
    /// Argon2id passes (default: 3 for `add`, the current key file's for `passwd`)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub kdf_iterations: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct WritersArgs {
    #[command(subcommand)]
    pub action: Option<WritersAction>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WritersAction {
    /// List announced writers and whether they may be running (the default)
    List,
    /// Remove the announcement of a writer you know has ended (on another host, say)
    Remove {
        /// The writer's id, or a unique prefix, as `vault writers` shows it
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only snapshots of this host (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags: `a,b` needs both, repeating the flag means either
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// Files and directories to back up (`-`: standard input, as --stdin; with
    /// --stdin-from-command: the command and its arguments, after `--`)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable, or comma-separated: `--tag a,b` gives two tags)
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
    /// Read the paths to back up from FILE, one per line (empty lines and lines starting
    /// with # are skipped; repeatable; `-` is standard input)
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Read the paths to back up from FILE, separated by NUL bytes (as `find -print0`
    /// writes them; repeatable)
    #[arg(long, value_name = "FILE")]
    pub files_from_raw: Vec<PathBuf>,
    /// Back up standard input as one file (see --stdin-filename)
    #[arg(long, conflicts_with_all = ["files_from", "files_from_raw", "stdin_from_command"])]
    pub stdin: bool,
    /// Back up the output of the command given as PATH arguments (after `--`); the backup
    /// fails, storing no snapshot, if the command fails
    #[arg(long, conflicts_with_all = ["files_from", "files_from_raw"])]
    pub stdin_from_command: bool,
    /// Name of the file --stdin and --stdin-from-command store
    #[arg(long, value_name = "NAME", default_value = "stdin")]
    pub stdin_filename: String,
    /// What a source that does not exist does: warn (back up the rest, exit 3) or fail
    #[arg(long, value_enum, value_name = "WHAT", default_value = "warn")]
    pub missing_source: MissingSourceArg,
    /// Like --exclude, but matching regardless of case (repeatable)
    #[arg(long = "iexclude", value_name = "GLOB")]
    pub iexcludes: Vec<String>,
    /// Leave out directories holding a file of this name; with :HEADER, only when the
    /// file starts with HEADER (repeatable)
    #[arg(long, value_name = "NAME[:HEADER]")]
    pub exclude_if_present: Vec<String>,
    /// Leave out directories tagged as caches (a CACHEDIR.TAG file with its signature)
    #[arg(long)]
    pub exclude_caches: bool,
    /// Leave out files larger than SIZE (500K, 2G, …)
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<String>,
    /// Store no snapshot when nothing changed since the parent snapshot
    #[arg(long)]
    pub skip_if_unchanged: bool,
    /// Read and count everything, store nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// List every file with how it compared with the parent snapshot (new, changed,
    /// unchanged) and its size
    #[arg(short, long)]
    pub verbose: bool,
    /// Host name recorded in the snapshot (default: this machine's)
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Exclude entries matching this glob (repeatable)
    #[arg(short = 'e', long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Read exclude globs from a file, one per line (repeatable)
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Do not cross file system boundaries
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Threads that read and chunk files (default: one per core); fewer keep a slow
    /// disk or a busy machine responsive
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub read_concurrency: Option<u16>,
    /// Use this snapshot as parent instead of the latest of the same host and paths
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "force")]
    pub parent: Option<String>,
    /// Read every file, ignoring the parent snapshot
    #[arg(short, long)]
    pub force: bool,
    /// Compression of new data (default: the repository's, set at init)
    #[arg(long, value_enum)]
    pub compression: Option<CompressionArg>,
}

#[derive(Debug, Args)]
pub(crate) struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only the N newest snapshots of each group (grouped by host and paths unless
    /// --group-by says otherwise)
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// List the snapshots in groups sharing these fields: host, paths, tags (comma-separated)
    #[arg(long, value_name = "FIELDS")]
    pub group_by: Option<String>,
    /// Fewer columns: id, time, host and tags
    #[arg(short, long)]
    pub compact: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Snapshot: `latest`, an id or a unique id prefix
    pub snapshot: String,
    /// Only this path and what lies below it
    pub path: Option<String>,
    /// Long listing: mode, owner, size, time
    #[arg(short, long)]
    pub long: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// SNAPSHOT[:SUBPATH]
    pub snapshot: String,
    /// Directory to restore into; must be empty or not exist, unless --overwrite is given
    #[arg(short, long, value_name = "DIR")]
    pub target: PathBuf,
    /// Restore into a directory that holds files already, and what to do with each one
    /// there: always replace it, replace it only if it differs (size and mtime, then
    /// content; only differing chunks are written, so an interrupted restore resumes),
    /// only if the snapshot's is newer, or never
    #[arg(long, value_name = "WHEN", value_enum)]
    pub overwrite: Option<OverwriteArg>,
    /// Remove files and directories the snapshot does not have from the directories
    /// restored (entries matching --exclude are kept)
    #[arg(long, conflicts_with = "includes")]
    pub delete: bool,
    /// Show what would be restored, replaced and removed, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Read every restored file back and compare it with the snapshot
    #[arg(long, conflicts_with = "dry_run")]
    pub verify: bool,
    /// Restore only entries matching this glob (repeatable)
    #[arg(short = 'i', long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Skip entries matching this glob (repeatable)
    #[arg(short = 'e', long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Restore even into a directory another user owns or can write to (or below one
    /// without the sticky bit); they could redirect the restore while it runs
    #[arg(long)]
    pub insecure_target: bool,
    /// Do not create device nodes, FIFOs and sockets
    #[arg(long)]
    pub no_special: bool,
    /// Clear the setuid and setgid bits of restored files
    #[arg(long)]
    pub no_setuid: bool,
    /// Set only extended attributes whose name matches (repeatable; `*` matches anything).
    /// Without it, all but trusted.* and security.capability, which must be named
    #[arg(long, value_name = "GLOB")]
    pub xattr_include: Vec<String>,
    /// Do not set extended attributes whose name matches (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub xattr_exclude: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// The repository to copy from
    #[arg(long, env = "VAULT_FROM_REPOSITORY", value_name = "REPO")]
    pub from_repo: String,
    #[command(flatten)]
    pub from_password: FromPasswordArgs,
    /// Snapshots to copy: ids, unique prefixes or `latest` (default: every snapshot the
    /// filters select)
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// How the password of the other repository (`--from-repo`) is read.
#[derive(Debug, Args)]
pub(crate) struct FromPasswordArgs {
    /// Read the other repository's password from FILE
    #[arg(long, env = "VAULT_FROM_PASSWORD_FILE", hide_env_values = true, value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Run CMD (with sh -c) and use its output as the other repository's password
    #[arg(long, env = "VAULT_FROM_PASSWORD_COMMAND", hide_env_values = true, value_name = "CMD")]
    pub from_password_command: Option<String>,
}

/// `--missing-source` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum MissingSourceArg {
    Warn,
    Fail,
}

/// `--overwrite` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OverwriteArg {
    Always,
    IfChanged,
    IfNewer,
    Never,
}

#[derive(Debug, Args)]
pub(crate) struct CatArgs {
    /// config, snapshot, tree, index or key
    #[arg(value_parser = ["config", "snapshot", "tree", "index", "key"])]
    pub kind: String,
    /// Object id (full, or a unique prefix for snapshot, index and key)
    pub id: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `--help` describes every argument of every command people see.
    #[test]
    fn every_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                if s.get_about().is_none() {
                    missing.push(format!("{path} {} (command)", s.get_name()));
                }
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let mut cmd = super::Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "vault", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }
}

thread_local! {
    /// Every `-o` value in the order parsed (see [`parse_with_all_options`]).
    static OPTIONS_SEEN: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn record_option(value: &str) -> Result<String, std::convert::Infallible> {
    OPTIONS_SEEN.with_borrow_mut(|seen| seen.push(value.to_string()));
    Ok(value.to_string())
}

/// Parses the command line, keeping every `-o` given before and after the subcommand's
/// name. clap keeps a global argument's values of one level only, so `vault -o
/// s3.endpoint=URL restore -o timeout=60 …` would otherwise lose the endpoint; each
/// value passes through [`record_option`] as it is parsed, at whatever level.
pub(crate) fn parse_with_all_options(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<(Cli, clap::ArgMatches), clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    OPTIONS_SEEN.with_borrow_mut(Vec::clear);
    let matches = Cli::command().try_get_matches_from(&args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    let seen = OPTIONS_SEEN.with_borrow_mut(std::mem::take);
    cli.global.options = in_command_line_order(seen, &args);
    Ok((cli, matches))
}

/// `values` (parsed level by level, innermost first) in the order the command line gives
/// them, so that of two values for one key the later wins.
fn in_command_line_order(values: Vec<String>, args: &[std::ffi::OsString]) -> Vec<String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut used = vec![false; args.len()];
    let mut placed: Vec<(usize, String)> = values
        .into_iter()
        .map(|v| {
            let found = (0..args.len()).find(|&i| {
                let prev = i.checked_sub(1).map(|p| args[p].as_str());
                !used[i]
                    && ((args[i] == v && matches!(prev, Some("-o" | "--option")))
                        || args[i] == format!("-o{v}")
                        || args[i] == format!("-o={v}")
                        || args[i] == format!("--option={v}"))
            });
            if let Some(i) = found {
                used[i] = true;
            }
            (found.unwrap_or(usize::MAX), v)
        })
        .collect();
    placed.sort_by_key(|(i, _)| *i);
    placed.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod option_tests {
    use super::*;

    fn options(args: &[&str]) -> Vec<String> {
        parse_with_all_options(args.iter().map(std::ffi::OsString::from)).unwrap().0.global.options
    }

    #[test]
    fn options_before_and_after_the_subcommand_are_all_kept() {
        assert_eq!(options(&["vault", "-o", "a=1", "snapshots"]), ["a=1"]);
        assert_eq!(options(&["vault", "snapshots", "-o", "b=2"]), ["b=2"]);
        assert_eq!(options(&["vault", "-o", "a=1", "snapshots", "-o", "b=2"]), ["a=1", "b=2"]);
        assert_eq!(options(&["vault", "-o", "a=1", "-o", "c=3", "key", "list", "-o", "b=2"]), ["a=1", "c=3", "b=2"]);
        assert_eq!(options(&["vault", "key", "-o", "a=1", "list"]), ["a=1"]);
        assert_eq!(options(&["vault", "--option=a=1", "snapshots", "-ob=2"]), ["a=1", "b=2"]);
        assert!(options(&["vault", "snapshots"]).is_empty());
    }
}
