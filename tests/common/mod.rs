//! Helpers for integration tests that drive the real `vault` binary.
#![allow(dead_code)]

pub mod copy_scenarios;
pub mod crash_scenarios;
pub mod fault_scenarios;
pub mod garage;
pub mod history_scenarios;
pub mod input_scenarios;
pub mod key_scenarios;
pub mod prune_scenarios;
pub mod restore_scenarios;
pub mod scenarios;
pub mod sshd;
pub mod write_only_scenarios;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn vault_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vault"))
}

/// Which kind of repository a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    Sftp,
    S3,
    /// Apache httpd's mod_dav_fs.
    WebDav,
    /// Azurite, the Azure Blob Storage emulator.
    Azure,
}

impl Kind {
    /// Whether objects are written under `tmp/` and then renamed (object stores write
    /// each object whole, so an unfinished upload leaves nothing).
    pub fn renames_into_place(self) -> bool {
        matches!(self, Kind::Local | Kind::Sftp | Kind::WebDav)
    }
}

fn unique() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// Environment of a test server started by `scripts/test-servers`. Missing in CI is a
/// failure; missing on a developer's machine skips the test with a note.
pub fn server_var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{name} is not set: the test servers are not running (scripts/test starts them)")
        }
        _ => {
            eprintln!("note: {name} not set; skipping (run scripts/test-servers start and source its env)");
            None
        }
    }
}

/// A scratch area with a repository inside it (or on a test server).
pub struct Env {
    pub dir: tempfile::TempDir,
    /// For local and SFTP repositories, the directory that holds the repository.
    pub repo: PathBuf,
    pub kind: Kind,
    repo_arg: String,
    options: Vec<String>,
    env: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        Env {
            repo_arg: repo.to_string_lossy().into_owned(),
            repo,
            kind: Kind::Local,
            dir,
            options: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn for_kind(kind: Kind) -> Option<Env> {
        match kind {
            Kind::Local => Some(Env::new()),
            Kind::Sftp => Env::sftp(),
            Kind::S3 => Env::s3(),
            Kind::WebDav => Env::webdav(),
            Kind::Azure => Env::azure(),
        }
    }

    pub fn webdav() -> Option<Env> {
        let url = server_var("VAULT_TEST_WEBDAV")?;
        let (scheme, hostport) = url.split_once("://").expect("VAULT_TEST_WEBDAV is a URL");
        let user = server_var("VAULT_TEST_WEBDAV_USER")?;
        let mut e = Env::new();
        e.repo_arg = format!("webdav:{scheme}://{user}@{hostport}/repo-{}", unique());
        e.kind = Kind::WebDav;
        e.env = vec![("VAULT_WEBDAV_PASSWORD".into(), server_var("VAULT_TEST_WEBDAV_PASSWORD")?)];
        Some(e)
    }

    pub fn azure() -> Option<Env> {
        let endpoint = server_var("VAULT_TEST_AZURE_ENDPOINT")?;
        let container = server_var("VAULT_TEST_AZURE_CONTAINER")?;
        let mut e = Env::new();
        e.repo_arg = format!("azure:{container}/repo-{}", unique());
        e.kind = Kind::Azure;
        e.options = vec![format!("azure.endpoint={endpoint}")];
        e.env = vec![
            ("AZURE_ACCOUNT_NAME".into(), server_var("VAULT_TEST_AZURE_ACCOUNT")?),
            ("AZURE_ACCOUNT_KEY".into(), server_var("VAULT_TEST_AZURE_KEY")?),
        ];
        Some(e)
    }

    pub fn sftp() -> Option<Env> {
        let url = server_var("VAULT_TEST_SFTP")?;
        let base = server_var("VAULT_TEST_SFTP_DIR")?;
        let key = server_var("VAULT_TEST_SFTP_KEY")?;
        let mut e = Env::new();
        e.repo = PathBuf::from(base).join(format!("repo-{}", unique()));
        e.repo_arg = format!("{url}{}", e.repo.display());
        e.kind = Kind::Sftp;
        e.options = vec![format!("sftp.key={key}"), "sftp.known-hosts=accept".into()];
        Some(e)
    }

    pub fn s3() -> Option<Env> {
        let endpoint = server_var("VAULT_TEST_S3_ENDPOINT")?;
        let bucket = server_var("VAULT_TEST_S3_BUCKET")?;
        let mut e = Env::new();
        e.repo_arg = format!("s3://{bucket}/repo-{}", unique());
        e.kind = Kind::S3;
        e.options =
            vec![format!("s3.endpoint={endpoint}"), format!("s3.region={}", server_var("VAULT_TEST_S3_REGION")?)];
        e.env = vec![
            ("AWS_ACCESS_KEY_ID".into(), server_var("VAULT_TEST_S3_KEY_ID")?),
            ("AWS_SECRET_ACCESS_KEY".into(), server_var("VAULT_TEST_S3_SECRET")?),
        ];
        Some(e)
    }

    /// A repository on a private Garage (node `node` of `cluster`).
    pub fn on_garage(cluster: &garage::Cluster, node: usize) -> Env {
        let mut e = Env::new();
        e.repo_arg = format!("s3://{}/repo-{}", cluster.bucket, unique());
        e.kind = Kind::S3;
        e.options = vec![format!("s3.endpoint={}", cluster.nodes[node].endpoint()), "s3.region=garage".into()];
        e.env = vec![
            ("AWS_ACCESS_KEY_ID".into(), cluster.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), cluster.secret.clone()),
        ];
        e
    }

    /// Logs in to the SFTP server with another client key (same repository).
    pub fn set_sftp_key(&mut self, key: &str) {
        self.options.retain(|o| !o.starts_with("sftp.key="));
        self.options.push(format!("sftp.key={key}"));
    }

    pub fn set_repo_string(&mut self, repo: &str) {
        self.repo_arg = repo.to_string();
    }

    /// Points this environment's repository at another S3 endpoint (same bucket and prefix).
    pub fn set_endpoint(&mut self, endpoint: &str) {
        self.set_option("s3.endpoint", endpoint);
    }

    /// Sets (or replaces) one `-o key=value` option.
    pub fn set_option(&mut self, key: &str, value: &str) {
        self.options.retain(|o| !o.starts_with(&format!("{key}=")));
        self.options.push(format!("{key}={value}"));
    }

    /// Adds this environment's backend settings (options and credentials) to a command
    /// run for another environment (`vault copy` between the two).
    pub fn add_settings(&self, c: &mut Command) {
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for o in &self.options {
            c.arg("-o").arg(o);
        }
    }

    pub fn repo_string(&self) -> &str {
        &self.repo_arg
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `vault` with a clean environment, the password and backend settings, but no `-r`.
    pub fn raw(&self) -> Command {
        let mut c = Command::new(vault_bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("VAULT_PASSWORD", PASSWORD)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for o in &self.options {
            c.arg("-o").arg(o);
        }
        c
    }

    pub fn cmd(&self) -> Command {
        let mut c = self.raw();
        c.arg("-r").arg(&self.repo_arg);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        output_within(self.cmd().args(args))
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vault {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn init(&self) {
        self.ok(&["init"]);
    }

    /// `backup --json` and its summary.
    pub fn backup_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["backup", "--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        serde_json::from_str(out.lines().last().unwrap_or_default()).expect("summary JSON")
    }

    /// The repository's storage, through vault's own backend layer.
    pub fn backend(&self) -> vault_repo::Backend {
        self.backend_with(vault_repo::backend::OpenMode::Existing)
    }

    /// The same, creating the repository's root if it is missing (as `init` does).
    pub fn backend_with(&self, mode: vault_repo::backend::OpenMode) -> vault_repo::Backend {
        let loc = vault_repo::Location::parse(&self.repo_arg).unwrap();
        let env: std::collections::HashMap<String, String> = self.env.iter().cloned().collect();
        let opts = vault_repo::BackendOptions::from_args_and_env(&self.options, &|k| env.get(k).cloned()).unwrap();
        vault_repo::Backend::open(&loc, &opts, mode).unwrap()
    }

    /// Every stored object (path relative to the repository root) and its size.
    pub fn stored(&self) -> Vec<(String, u64)> {
        let b = self.backend();
        let mut out: Vec<(String, u64)> = Vec::new();
        for d in ["keys", "snapshots", "index", "data", "tree"] {
            out.extend(b.list(d).unwrap().into_iter().map(|e| (e.path, e.size)));
        }
        if b.stat("config").unwrap().is_some() {
            out.push(("config".into(), b.stat("config").unwrap().unwrap()));
        }
        out
    }

    pub fn repo_size(&self) -> u64 {
        self.stored().iter().map(|(_, s)| s).sum()
    }

    pub fn read_stored(&self, path: &str) -> Vec<u8> {
        self.backend().read(path).unwrap().to_vec()
    }
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// The last JSON line a command printed: its summary (`status` lines come before it).
pub fn last_json(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON summary ({e}): {text}"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in walk(p) {
        if let Ok(m) = std::fs::symlink_metadata(&e)
            && m.is_file()
        {
            total += m.len();
        }
    }
    total
}

/// Every path below `root` (not `root` itself), depth first, sorted.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut names: Vec<_> = match std::fs::read_dir(root) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => return out,
    };
    names.sort();
    for p in names {
        out.push(p.clone());
        if std::fs::symlink_metadata(&p).map(|m| m.is_dir()).unwrap_or(false) {
            out.extend(walk(&p));
        }
    }
    out
}

/// Deterministic pseudo-random bytes (incompressible).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    vault_format::chunker::xorshift_bytes(len, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct ManifestEntry {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime_ns: i128,
    pub content: String,
    pub target: String,
    pub rdev: u64,
    pub xattrs: Vec<(String, String)>,
    /// Index of the first path of this inode among hard-linked files, so link structure
    /// is compared without comparing inode numbers.
    pub link_group: Option<String>,
}

/// Content and metadata of every entry below `root`, keyed by relative path (lossy).
/// Directory mtimes are included; `root`'s own metadata is not.
pub fn manifest(root: &Path) -> BTreeMap<String, ManifestEntry> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for p in walk(root) {
        let rel = p.strip_prefix(root).unwrap();
        let rel_s = hex_if_needed(rel.as_os_str());
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "chardev"
        } else if ft.is_block_device() {
            "blockdev"
        } else if ft.is_socket() {
            "socket"
        } else {
            "file"
        };
        let content =
            if kind == "file" { blake3::hash(&std::fs::read(&p).unwrap()).to_hex().to_string() } else { String::new() };
        let target =
            if kind == "symlink" { hex_if_needed(std::fs::read_link(&p).unwrap().as_os_str()) } else { String::new() };
        let link_group = (kind == "file" && m.nlink() > 1)
            .then(|| inodes.entry((m.dev(), m.ino())).or_insert(rel_s.clone()).clone());
        let mut xattrs: Vec<(String, String)> = xattr::list(&p)
            .map(|l| {
                l.map(|n| {
                    (
                        n.to_string_lossy().into_owned(),
                        hex::encode(xattr::get(&p, &n).ok().flatten().unwrap_or_default()),
                    )
                })
                .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        out.insert(
            rel_s,
            ManifestEntry {
                kind: kind.into(),
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: if kind == "file" { m.len() } else { 0 },
                mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                content,
                target,
                rdev: if kind.ends_with("dev") { m.rdev() } else { 0 },
                xattrs,
                link_group,
            },
        );
    }
    out
}

fn hex_if_needed(s: &OsStr) -> String {
    match s.to_str() {
        Some(s) => s.to_string(),
        None => format!("hex:{}", hex::encode(s.as_bytes())),
    }
}

pub fn assert_same_tree(a: &Path, b: &Path) {
    let ma = manifest(a);
    let mb = manifest(b);
    let keys_a: Vec<_> = ma.keys().collect();
    let keys_b: Vec<_> = mb.keys().collect();
    assert_eq!(keys_a, keys_b, "different entries");
    for (k, ea) in &ma {
        assert_eq!(ea, &mb[k], "entry {k} differs");
    }
}

/// Whether the file system under `dir` supports user xattrs.
pub fn xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    std::fs::write(&probe, b"").unwrap();
    let ok = xattr::set(&probe, "user.vault.probe", b"1").is_ok();
    std::fs::remove_file(&probe).unwrap();
    ok
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// How long one vault command of a test may run (`VAULT_TEST_COMMAND_LIMIT`, seconds).
fn command_limit() -> std::time::Duration {
    let secs = std::env::var("VAULT_TEST_COMMAND_LIMIT").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    std::time::Duration::from_secs(secs)
}

/// Runs `cmd` to its end, as `Command::output` does, but a command that hangs past the
/// limit fails the test with where each of its threads waits (gdb's backtraces where gdb
/// is installed, the kernel's wait channels otherwise), instead of stalling the suite.
pub fn output_within(cmd: &mut Command) -> Output {
    use std::io::Read;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run vault");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > command_limit() {
            let stacks = thread_stacks(child.id());
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!("{cmd:?} still ran after {:?}; its threads:\n{stacks}\nstderr: {err}", command_limit());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

fn thread_stacks(pid: u32) -> String {
    let gdb = Command::new("gdb")
        .args(["-batch", "-p", &pid.to_string(), "-ex", "thread apply all bt 30"])
        .stdin(Stdio::null())
        .output();
    if let Ok(o) = gdb
        && o.status.success()
    {
        return String::from_utf8_lossy(&o.stdout).into_owned();
    }
    let mut s = String::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let p = task.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        s += &format!("{} {} {}\n", read("comm").trim(), read("wchan"), read("stack").replace('\n', " | "));
    }
    s
}
