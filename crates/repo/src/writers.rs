//! Announcements of running writers (`writers/<id>`), and telling whether one has died.
//!
//! A command that adds to the repository announces itself before it lists the index and
//! removes the announcement when it ends. A prune's deletion waits for the writers that
//! were announced when it stopped listing what it condemns (see `vault_format::condemnation`).
//! A writer killed without cleaning up leaves its announcement; on its own host the
//! process table tells that it is gone, and the next prune there removes it. On another
//! host nobody can tell, so it stays until a user removes it (`vault writers remove`).

use std::sync::Arc;

use vault_format::Id;
use vault_format::announcement::Announcement;
use vault_format::file::SealedDocument;

use super::error::Result;
use super::object::{StoredKind, StoredObject};
use super::repository::Repository;

/// A writer's announcement, removed when [`Announced::end`] is called or it is dropped.
#[derive(Debug)]
pub struct Announced {
    repo: Arc<Repository>,
    id: Id,
    ended: bool,
}

impl Announced {
    /// The announcement's name (`writers/<id>`).
    pub fn id(&self) -> Id {
        self.id
    }

    /// Removes the announcement: the writer is done.
    pub fn end(mut self) -> Result<()> {
        self.ended = true;
        self.repo.backend().set_tmp_tag(None);
        self.repo.delete_file(StoredObject::Record(StoredKind::Announcement, self.id))
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        if !self.ended {
            self.repo.backend().set_tmp_tag(None);
            // A failure here leaves an announcement that the next prune on this host
            // recognises as dead.
            let _ = self.repo.delete_file(StoredObject::Record(StoredKind::Announcement, self.id));
        }
    }
}

/// Announces a writer running `command` in this process.
pub fn announce(repo: &Arc<Repository>, command: &str) -> Result<Announced> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)?;
    let record = Announcement {
        version: 1,
        time: now_rfc3339(),
        hostname: this_host(),
        pid: std::process::id(),
        boot_id: boot_id(),
        process_start: process_start(std::process::id()).unwrap_or(0),
        command: command.to_string(),
        nonce: hex::encode(nonce),
    };
    // Its name is known before it is stored, so that even the announcement's own
    // temporary file carries it.
    let bytes = record.encode(repo.sealing_keys(vault_format::crypto::ObjectKind::Announcement)?)?;
    repo.backend().set_tmp_tag(Some(Id::of_stored_bytes(&bytes).to_string()));
    let id = match repo.write_file(StoredKind::Announcement, bytes) {
        Ok(id) => id,
        Err(e) => {
            repo.backend().set_tmp_tag(None);
            return Err(e);
        }
    };
    let announced = Announced { repo: repo.clone(), id, ended: false };
    // What earlier writers on this host left when they were killed goes now, not at the
    // next prune. Best effort: a failure here costs only space.
    let _ = prune_dead_writers(repo);
    Ok(announced)
}

/// What can be told about an announced writer from here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriterStatus {
    /// On this host, and its process is running.
    Running,
    /// On this host, and it has ended without removing its announcement.
    Dead(&'static str),
    /// On another host: it may be running.
    Remote,
    /// The announcement cannot be opened; it counts as running until removed.
    Unreadable(String),
}

/// One announcement.
#[derive(Clone, Debug)]
pub struct Writer {
    /// Its name (`writers/<id>`).
    pub id: Id,
    /// Its content, when it could be opened.
    pub record: Option<Announcement>,
    /// Whether it may still be running.
    pub status: WriterStatus,
}

impl Writer {
    /// Whether a deletion must still wait for it.
    pub fn may_be_running(&self) -> bool {
        !matches!(self.status, WriterStatus::Dead(_))
    }

    /// "host pid 123 (backup, started …)", for messages.
    pub fn describe(&self) -> String {
        match &self.record {
            Some(a) => format!(
                "{} on {} pid {} (started {}, writers/{})",
                a.command,
                a.hostname,
                a.pid,
                a.time,
                self.id.short()
            ),
            None => format!("writers/{} (unreadable)", self.id),
        }
    }
}

/// Every announced writer, with what this host can tell about it.
pub fn list_writers(repo: &Repository) -> Result<Vec<Writer>> {
    let docs = repo.load_documents::<Announcement>(StoredKind::Announcement)?;
    let (host, boot) = (this_host(), boot_id());
    Ok(docs
        .into_iter()
        .map(|(id, r)| match r {
            Ok(a) => {
                let status = status_of(&a, &host, &boot);
                Writer { id, record: Some(a), status }
            }
            Err(e) => Writer { id, record: None, status: WriterStatus::Unreadable(e.to_string()) },
        })
        .collect())
}

/// Removes the announcements of writers that died on this host, and the temporary files
/// they left (named after their announcement); returns the writers still (possibly)
/// running.
pub fn prune_dead_writers(repo: &Repository) -> Result<Vec<Writer>> {
    let (alive, dead): (Vec<Writer>, Vec<Writer>) = list_writers(repo)?.into_iter().partition(Writer::may_be_running);
    if dead.is_empty() {
        return Ok(alive);
    }
    let prefixes: Vec<String> = dead.iter().map(|w| format!("{}-", w.id)).collect();
    for name in repo.list_tmp()? {
        if prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            repo.delete_tmp(&name)?;
        }
    }
    // The announcement goes last: while it is there, its files can still be found.
    for w in dead {
        repo.delete_file(StoredObject::Record(StoredKind::Announcement, w.id))?;
    }
    Ok(alive)
}

/// Removes one announcement (the user's decision that the writer is gone).
pub fn remove_writer(repo: &Repository, id: Id) -> Result<()> {
    repo.delete_file(StoredObject::Record(StoredKind::Announcement, id))
}

fn status_of(a: &Announcement, host: &str, boot: &str) -> WriterStatus {
    if a.hostname != host {
        return WriterStatus::Remote;
    }
    if !a.boot_id.is_empty() && !boot.is_empty() && a.boot_id != boot {
        return WriterStatus::Dead("its host has rebooted since it started");
    }
    match process_start(a.pid) {
        None => WriterStatus::Dead("its process has ended"),
        Some(start) if a.process_start != 0 && start != a.process_start => {
            WriterStatus::Dead("its process has ended (the pid is now another process's)")
        }
        Some(_) => WriterStatus::Running,
    }
}

/// This host's name, as announcements record it.
pub fn this_host() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "unknown".into())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Start time of process `pid` in clock ticks since boot, or `None` when there is no
/// such process. Where `/proc` is missing, a process that exists reports 0.
fn process_start(pid: u32) -> Option<u64> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The command name (field 2) may hold spaces and parentheses: fields are
            // counted after its last ')'. Field 22 is the 20th after it.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            Some(rest.split_whitespace().nth(19).and_then(|f| f.parse().ok()).unwrap_or(0))
        }
        Err(_) if std::path::Path::new("/proc/self/stat").exists() => None,
        Err(_) => {
            let alive = i32::try_from(pid).is_ok_and(|p| {
                !matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None), Err(nix::errno::Errno::ESRCH))
            });
            alive.then_some(0)
        }
    }
}

/// Now, RFC 3339 UTC with seconds (records' informational times).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_running_and_a_gone_one_is_dead() {
        let me = Announcement {
            version: 1,
            time: String::new(),
            hostname: this_host(),
            pid: std::process::id(),
            boot_id: boot_id(),
            process_start: process_start(std::process::id()).unwrap_or(0),
            command: "test".into(),
            nonce: String::new(),
        };
        assert_eq!(status_of(&me, &this_host(), &boot_id()), WriterStatus::Running);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = Announcement { pid, process_start: 1, ..me.clone() };
        assert!(matches!(status_of(&gone, &this_host(), &boot_id()), WriterStatus::Dead(_)));
        let reused = Announcement { process_start: me.process_start + 1, ..me.clone() };
        assert!(matches!(status_of(&reused, &this_host(), &boot_id()), WriterStatus::Dead(_)));
        let rebooted = Announcement { boot_id: "another boot".into(), ..me.clone() };
        assert!(matches!(status_of(&rebooted, &this_host(), &boot_id()), WriterStatus::Dead(_)));
        let remote = Announcement { hostname: "elsewhere".into(), ..me };
        assert_eq!(status_of(&remote, &this_host(), &boot_id()), WriterStatus::Remote);
    }

    #[test]
    fn a_writer_removes_what_a_dead_writer_on_its_host_left_in_tmp() {
        use crate::backend::{Backend, OpenMode};
        use crate::location::Location;
        use crate::repository::InitOptions;
        use vault_format::keyfile::{KdfParams, KeyMeta};

        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&Location::Local(dir.path().join("r")), &Default::default(), OpenMode::Create).unwrap();
        let opts =
            InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
        let repo = Arc::new(Repository::init(b.clone(), b"pw", &opts, KeyMeta::default()).unwrap());
        // A writer of this host that was killed: its announcement, and what it was writing.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let dead = Announcement {
            version: 1,
            time: now_rfc3339(),
            hostname: this_host(),
            pid: dead_pid,
            boot_id: boot_id(),
            process_start: 1,
            command: "backup".into(),
            nonce: "00".into(),
        };
        let dead_id = repo.save_document(StoredKind::Announcement, &dead).unwrap();
        // A writer of another host, running as far as anyone here can tell.
        let remote = Announcement { hostname: "elsewhere".into(), ..dead.clone() };
        let remote_id = repo.save_document(StoredKind::Announcement, &remote).unwrap();
        let write_tmp = |name: String| std::fs::write(dir.path().join("r/tmp").join(name), b"partial pack").unwrap();
        write_tmp(format!("{dead_id}-{}", "ab".repeat(16)));
        write_tmp(format!("{dead_id}-{}", "cd".repeat(16)));
        write_tmp(format!("{remote_id}-{}", "ef".repeat(16)));
        write_tmp("0123456789abcdef0123456789abcdef".into());

        let me = announce(&repo, "backup").unwrap();
        let mut left = repo.list_tmp().unwrap();
        left.sort();
        let mut expected = vec![format!("{remote_id}-{}", "ef".repeat(16)), "0123456789abcdef0123456789abcdef".into()];
        expected.sort();
        assert_eq!(left, expected, "only the dead writer's files go");
        let ids: Vec<Id> = list_writers(&repo).unwrap().into_iter().map(|w| w.id).collect();
        assert!(!ids.contains(&dead_id) && ids.contains(&remote_id) && ids.contains(&me.id()));
        // This writer's own temporary files carry its announcement's name.
        let mut stream = b.start_streaming_write().unwrap();
        stream.append(b"data".to_vec()).unwrap();
        assert!(repo.list_tmp().unwrap().iter().any(|n| n.starts_with(&format!("{}-", me.id()))));
        drop(stream);
        me.end().unwrap();
    }
}
