//! Key files: which one opens a repository (and in which order they are tried), and
//! adding, removing and re-passwording them. Every key file wraps the same master key;
//! removing one never touches data.
//!
//! Trying a key file costs one Argon2id run, whose price the key file itself names. A
//! storage server can add key files, so the order matters: the key file that opened the
//! repository last time goes first, then those labelled with this host and user; a key
//! file asking for more work than [`KdfLimit`] allows is skipped, never run.

use rayon::prelude::*;

use super::backend::{Backend, BackendErrorKind};
use super::error::{RepoError, Result};
use super::object::{Damaged, StoredKind, StoredObject};
use super::repository::{Repository, parse_listing};
use vault_format::access::WriteOnlyPayload;
use vault_format::config::Config;
use vault_format::crypto::Keys;
use vault_format::epoch::AgreementSecret;
use vault_format::keyfile::{KdfParams, KeyFile, KeyMeta, SALT_LEN, Unwrap, Unwrapped};
use vault_format::{Id, KeyId};

/// The most Argon2id work `open` spends on one key file. The default, 1 GiB of memory and
/// 4 GiB·passes in all, is 20 times vault's own default (64 MiB, 3 passes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfLimit {
    /// Most memory, in KiB.
    pub max_memory_kib: u32,
    /// Most memory × passes, in KiB.
    pub max_work_kib: u64,
}

impl Default for KdfLimit {
    fn default() -> Self {
        KdfLimit::from_memory_mib(1024)
    }
}

impl KdfLimit {
    /// A limit of `mib` MiB of memory and `4 × mib` MiB·passes.
    pub fn from_memory_mib(mib: u32) -> KdfLimit {
        let kib = mib.saturating_mul(1024);
        KdfLimit { max_memory_kib: kib, max_work_kib: 4 * u64::from(kib) }
    }

    /// Whether a key file with these parameters may be tried.
    pub fn allows(&self, p: &KdfParams) -> bool {
        p.memory_kib <= self.max_memory_kib && u64::from(p.memory_kib) * u64::from(p.iterations) <= self.max_work_kib
    }

    fn describe(&self) -> String {
        format!("{} MiB and {} MiB·passes", self.max_memory_kib / 1024, self.max_work_kib / 1024)
    }
}

/// Who is opening: key files labelled with the same host and user are tried first.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The Argon2id work allowed per key file.
    pub kdf_limit: KdfLimit,
    /// The key file to try before all others (the one that opened last time).
    pub try_first: Option<KeyId>,
    /// This host's name.
    pub host: String,
    /// This user's name.
    pub username: String,
}

/// What `open` found: the key file that opened, and key files it skipped.
pub(crate) struct Opened {
    /// A write-only key's payload (kept to re-wrap it under a new password).
    pub payload: Option<Box<WriteOnlyPayload>>,
    pub key_id: KeyId,
    pub keys: Keys,
    pub config: Config,
    pub notes: Vec<String>,
    /// The key file's agreement secret, which opens the grants made for it (spec §3.2).
    pub agreement: AgreementSecret,
}

/// One key file as `vault key list` shows it.
#[derive(Debug)]
pub struct KeyInfo {
    /// Its name.
    pub id: KeyId,
    /// Its decoded content, or why it could not be read.
    pub file: Result<KeyFile>,
    /// Whether it opened this repository in this run.
    pub current: bool,
}

/// The key files with their listed sizes, ordered by id.
fn list_key_files(backend: &Backend) -> Result<Vec<(KeyId, u64)>> {
    let dir = StoredKind::Key.dir();
    let mut ids: Vec<(KeyId, u64)> =
        parse_listing(dir, backend.list(dir)?).into_iter().map(|(id, size)| (KeyId(id), size)).collect();
    ids.sort();
    Ok(ids)
}

/// A key file read and checked against its name.
enum Candidate {
    File(KeyId, Box<KeyFile>),
    Problem(String),
    Unreadable(super::backend::BackendError),
}

/// Key files and the config are read before any password is tried: a 3 GiB "key file"
/// the storage put there must not be downloaded, let alone parsed.
fn read_candidate(backend: &Backend, id: KeyId, size: u64) -> Candidate {
    let path = StoredObject::Key(id).path();
    let max = StoredKind::Key.max_stored_size();
    if size > max {
        return Candidate::Problem(format!(
            "key file {path} is {size} bytes, more than any key file ({max}); not read"
        ));
    }
    let bytes = match backend.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind == BackendErrorKind::NotFound => return Candidate::Problem(e.to_string()),
        Err(e) => return Candidate::Unreadable(e),
    };
    // The name check tells a damaged key file apart from a wrong password.
    if Id::of_stored_bytes(&bytes) != id.0 {
        return Candidate::Problem(format!("key file {path} is damaged (its bytes do not match its name)"));
    }
    match KeyFile::from_json(&bytes) {
        Ok(k) => Candidate::File(id, Box::new(k)),
        Err(e) => Candidate::Problem(format!("key file {path}: {e}")),
    }
}

/// A key file that opened: its id, keys, the config, and a write-only key's payload.
type Found = (KeyId, Keys, Config, Option<Box<WriteOnlyPayload>>, AgreementSecret);

/// Why one key file did not open the repository.
enum Attempt {
    Config(String),
    WrongPassword,
    Invalid(String),
}

/// What trying the key files found, for the error when none opens.
#[derive(Default)]
struct Tried {
    problems: Vec<String>,
    config_failures: Vec<String>,
    skipped: Vec<String>,
    unreadable: Option<super::backend::BackendError>,
    wrong_password: bool,
}

impl Tried {
    /// The key file to run Argon2id on, if it is readable and within the limit.
    fn screen(&mut self, candidate: Candidate, limit: &KdfLimit) -> Option<(KeyId, Box<KeyFile>)> {
        match candidate {
            Candidate::File(id, kf) if limit.allows(&kf.kdf.params) => Some((id, kf)),
            Candidate::File(id, kf) => {
                self.skipped.push(format!(
                    "key file {} asks for Argon2id with {} MiB and {} passes, more than the limit of {}",
                    id.short(),
                    kf.kdf.params.memory_kib / 1024,
                    kf.kdf.params.iterations,
                    limit.describe()
                ));
                None
            }
            Candidate::Problem(p) => {
                self.problems.push(p);
                None
            }
            Candidate::Unreadable(e) => {
                self.problems.push(e.to_string());
                self.unreadable.get_or_insert(e);
                None
            }
        }
    }

    /// The first attempt that opened, in order; the others' reasons are kept.
    fn record(&mut self, results: Vec<Result<Found, Attempt>>) -> Option<Found> {
        let mut opened = None;
        for r in results {
            match r {
                Ok(o) => {
                    opened.get_or_insert(o);
                }
                Err(Attempt::Config(e)) => self.config_failures.push(e),
                Err(Attempt::WrongPassword) => self.wrong_password = true,
                Err(Attempt::Invalid(e)) => self.problems.push(e),
            }
        }
        opened
    }
}

/// How many key derivations run at once when the remembered key file does not open (each
/// takes its key file's memory: 64 MiB by default).
const PARALLEL_KDF: usize = 2;

/// The order key files are tried in: same host and user, same host, the rest.
fn affinity(kf: &KeyFile, opts: &OpenOptions) -> u8 {
    match (kf.host == opts.host, kf.username == opts.username) {
        (true, true) => 0,
        (true, false) => 1,
        _ => 2,
    }
}

/// Finds the key file that `password` opens and whose master key authenticates the
/// config (a key file left by an init that lost a race opens with the password but
/// belongs to no repository).
pub(crate) fn open_keys(backend: &Backend, password: &[u8], opts: &OpenOptions) -> Result<Opened> {
    let name = backend.name().to_string();
    let config_path = StoredObject::Config.path();
    match backend.stat(&config_path)? {
        None => return Err(RepoError::NotFound(name)),
        Some(size) if size > StoredKind::Config.max_stored_size() => {
            return Err(RepoError::integrity(
                Damaged::Object(StoredObject::Config),
                format!(
                    "it is {size} bytes, more than any config ({}); not read",
                    StoredKind::Config.max_stored_size()
                ),
            ));
        }
        Some(_) => {}
    }
    let config_bytes = match backend.read(&config_path) {
        Ok(b) => b,
        Err(e) if e.kind == BackendErrorKind::NotFound => return Err(RepoError::NotFound(name)),
        Err(e) => return Err(e.into()),
    };
    let files = list_key_files(backend)?;
    let size_of = |id: KeyId| files.iter().find(|(i, _)| *i == id).map_or(0, |(_, s)| *s);
    let ids: Vec<KeyId> = files.iter().map(|(id, _)| *id).collect();
    if ids.is_empty() {
        return Err(RepoError::NoUsableKey { repo: name, reason: "the keys/ directory is empty".into() });
    }
    let mut tried = Tried::default();
    let attempt = |(id, kf): &(KeyId, Box<KeyFile>)| match kf.unwrap_agreed(password) {
        Ok((Unwrapped::Full(keys), agreement)) => match Config::decode(&keys, &config_bytes) {
            Ok(config) => Ok((*id, config.keys(*keys), config, None, agreement)),
            Err(e) => Err(Attempt::Config(format!("{}: {e}", StoredObject::Key(*id).path()))),
        },
        // A write-only key cannot open the config; its key file carries a copy, and the
        // hash of the config file it was made for.
        Ok((Unwrapped::WriteOnly(p), agreement)) if Id::of_stored_bytes(&config_bytes) == p.config_file => {
            Ok((*id, p.keys(), p.config.clone(), Some(p), agreement))
        }
        Ok((Unwrapped::WriteOnly(_), _)) => Err(Attempt::Config(format!(
            "{}: the stored config is not the one this write-only key was made for",
            StoredObject::Key(*id).path()
        ))),
        Err(Unwrap::WrongPassword) => Err(Attempt::WrongPassword),
        Err(Unwrap::Invalid(e)) => Err(Attempt::Invalid(format!("key file {}: {e}", StoredObject::Key(*id).path()))),
    };
    let first = opts.try_first.filter(|id| ids.contains(id));
    let mut opened = None;
    if let Some(c) = first.and_then(|id| tried.screen(read_candidate(backend, id, size_of(id)), &opts.kdf_limit)) {
        opened = tried.record(vec![attempt(&c)]);
    }
    if opened.is_none() {
        // Not the remembered key: read the others and try them, likeliest first, a few
        // Argon2id runs at a time (each holds its memory).
        let rest: Vec<KeyId> = ids.iter().copied().filter(|id| Some(*id) != first).collect();
        let mut candidates: Vec<Candidate> =
            rest.par_iter().map(|id| read_candidate(backend, *id, size_of(*id))).collect();
        candidates.sort_by_key(|c| match c {
            Candidate::File(id, kf) => (affinity(kf, opts), *id),
            _ => (3, KeyId::default()),
        });
        let screened: Vec<_> = candidates.into_iter().filter_map(|c| tried.screen(c, &opts.kdf_limit)).collect();
        for group in screened.chunks(PARALLEL_KDF) {
            opened = tried.record(group.par_iter().map(attempt).collect());
            if opened.is_some() {
                break;
            }
        }
    }
    let Tried { problems, config_failures, skipped, unreadable, wrong_password } = tried;
    let notes: Vec<String> = skipped.iter().map(|s| format!("{s}; skipped (see --kdf-max-memory)")).collect();
    let Some((key_id, keys, config, payload, agreement)) = opened else {
        if !config_failures.is_empty() {
            // A key opened but the config does not authenticate under it.
            return Err(RepoError::integrity(
                Damaged::Object(StoredObject::Config),
                format!(
                    "{name}: it does not open with the key that the password opens ({})",
                    config_failures.join("; ")
                ),
            ));
        }
        // The storage failed to deliver a key file: perhaps the one the password opens.
        if let Some(e) = unreadable {
            return Err(e.into());
        }
        if !skipped.is_empty() {
            return Err(RepoError::NoUsableKey {
                repo: name,
                reason: format!(
                    "{}{}; raise the limit with --kdf-max-memory (VAULT_KDF_MAX_MEMORY) if you made such a key",
                    if wrong_password { "no key file within the limit opens with the password; " } else { "" },
                    skipped.join("; ")
                ),
            });
        }
        if wrong_password {
            return Err(RepoError::WrongPassword(name));
        }
        return Err(RepoError::NoUsableKey { repo: name, reason: problems.join("; ") });
    };
    Ok(Opened { payload, key_id, keys, config, notes, agreement })
}

/// A new key file wrapping `keys`' master key under `password`.
pub(crate) fn wrap_key(
    keys: &Keys,
    password: &[u8],
    kdf: KdfParams,
    meta: KeyMeta,
) -> Result<(KeyId, Vec<u8>, [u8; 32])> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt)?;
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce)?;
    let master =
        keys.master().ok_or_else(|| RepoError::WriteOnly("a write-only key cannot make or change key files".into()))?;
    let (kf, agreement) = KeyFile::wrap_agreed(master, password, kdf, salt, nonce, meta)
        .map_err(|e| RepoError::invalid("key derivation parameters", e))?;
    let bytes = kf.to_json();
    Ok((KeyId(Id::of_stored_bytes(&bytes)), bytes, agreement))
}

impl Repository {
    /// Every key file, decoded where possible, the current one marked.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut keys: Vec<KeyInfo> = self
            .load_key_files()?
            .into_iter()
            .map(|(id, file)| KeyInfo { id, file, current: id == self.key_id() })
            .collect();
        keys.sort_by_key(|k| k.id);
        Ok(keys)
    }

    /// The ids of the key files, read from the listing alone.
    pub fn key_ids(&self) -> Result<Vec<KeyId>> {
        Ok(list_key_files(self.backend())?.into_iter().map(|(id, _)| id).collect())
    }

    /// Stores a new key file that opens this repository with `password`.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams, meta: KeyMeta) -> Result<KeyId> {
        self.add_key_agreed(password, kdf, meta).map(|(id, _)| id)
    }

    fn add_key_agreed(&self, password: &[u8], kdf: KdfParams, meta: KeyMeta) -> Result<(KeyId, [u8; 32])> {
        let (id, bytes, agreement) = wrap_key(self.keys(), password, kdf, meta)?;
        // Member record and grant first: a key file that opens is never left without the
        // newest epoch.
        self.admit_key_file(id, None, &agreement)?;
        self.backend().write(&StoredObject::Key(id).path(), bytes)?;
        Ok((id, agreement))
    }

    /// Deletes key file `target`. The key file that opened this repository cannot be
    /// removed, so one that opens always remains — also against another removal running
    /// at the same time: after deleting, the remover looks for its own key file, and if
    /// that is gone (the other removal took it) it stores `target` again and fails. Of two
    /// removals that each take the other's key, the later one to look always sees its own
    /// key gone, so at least one key survives.
    pub fn remove_key(&self, target: KeyId) -> Result<()> {
        if target == self.key_id() {
            return Err(RepoError::invalid(
                "key removal",
                format!(
                    "{} is the key file that opened the repository; open it with another key to remove this one, or use `vault key passwd`",
                    target.short()
                ),
            ));
        }
        let path = StoredObject::Key(target).path();
        let bytes = match self.backend().read(&path) {
            Ok(b) => b,
            Err(e) if e.kind == BackendErrorKind::NotFound => {
                return Err(RepoError::invalid("key removal", format!("no key file {}", target.short())));
            }
            Err(e) => return Err(e.into()),
        };
        self.backend().delete(&path)?;
        if self.backend().stat(&StoredObject::Key(self.key_id()).path())?.is_none() {
            self.backend().write(&path, bytes.to_vec())?;
            return Err(RepoError::Concurrent(format!(
                "key file {} that opened the repository was removed while key file {} was being removed; {} was stored again so that a key remains",
                self.key_id().short(),
                target.short(),
                target.short()
            )));
        }
        Ok(())
    }

    /// Replaces the key file that opened the repository with one for `password`: the new
    /// file is stored first, then the old one removed (an interruption leaves both).
    /// Returns the new key file's id.
    pub fn change_password(&mut self, password: &[u8], kdf: KdfParams, meta: KeyMeta) -> Result<KeyId> {
        let old = self.key_id();
        let (new, agreement) = match self.write_only_payload() {
            // A write-only key keeps its payload (its data key) under the new password.
            Some(p) => self.store_write_only_key_file(p, password, kdf, meta)?,
            None => self.add_key_agreed(password, kdf, meta)?,
        };
        self.set_key_id(new);
        self.set_agreement_public(agreement);
        if !self.is_full() {
            // No full key can admit it: a write-only key publishes its own record and
            // grants itself the epochs it holds.
            self.ensure_member_record()?;
            self.grant_self()?;
        }
        self.remove_key(old)?;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, OpenMode};
    use crate::location::Location;
    use crate::repository::InitOptions;

    const FAST: KdfParams = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    fn init() -> (Backend, Repository) {
        let b = Backend::open(&Location::Memory("k".into()), &Default::default(), OpenMode::Create).unwrap();
        let opts = InitOptions { kdf: FAST, ..Default::default() };
        let r = Repository::init(b.clone(), b"pw", &opts, KeyMeta::default()).unwrap();
        (b, r)
    }

    fn meta(host: &str) -> KeyMeta {
        KeyMeta { created: String::new(), host: host.into(), username: "u".into() }
    }

    #[test]
    fn add_remove_and_passwd() {
        let (b, mut r) = init();
        let second = r.add_key(b"two", FAST, meta("h2")).unwrap();
        let by_two = Repository::open(b.clone(), b"two").unwrap();
        assert_eq!(by_two.key_id(), second);
        assert_eq!(by_two.config().id, r.config().id);
        // The current key cannot be removed; another one can.
        assert!(matches!(r.remove_key(r.key_id()), Err(RepoError::InvalidOptions { .. })));
        assert!(matches!(r.remove_key(KeyId(Id([1; 32]))), Err(RepoError::InvalidOptions { .. })));
        by_two.remove_key(r.key_id()).unwrap();
        assert!(matches!(Repository::open(b.clone(), b"pw"), Err(RepoError::WrongPassword(_))));
        // passwd: the new password opens, the old no longer does, one key file is left.
        let mut by_two = Repository::open(b.clone(), b"two").unwrap();
        let third = by_two.change_password(b"three", FAST, meta("h3")).unwrap();
        assert_eq!(by_two.key_id(), third);
        assert!(matches!(Repository::open(b.clone(), b"two"), Err(RepoError::WrongPassword(_))));
        assert_eq!(Repository::open(b.clone(), b"three").unwrap().key_id(), third);
        let keys = by_two.list_keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].current);
        assert_eq!(keys[0].file.as_ref().unwrap().host, "h3");
        r.set_key_id(third); // silence: r is stale now
    }

    #[test]
    fn two_removals_taking_each_others_key_leave_one() {
        for round in 0..20 {
            let (b, r1) = init();
            r1.add_key(b"other", FAST, meta("h")).unwrap();
            let r2 = Repository::open(b.clone(), b"other").unwrap();
            let (k1, k2) = (r1.key_id(), r2.key_id());
            let barrier = std::sync::Barrier::new(2);
            let (a, c) = std::thread::scope(|s| {
                let a = s.spawn(|| {
                    barrier.wait();
                    r1.remove_key(k2)
                });
                let c = s.spawn(|| {
                    barrier.wait();
                    r2.remove_key(k1)
                });
                (a.join().unwrap(), c.join().unwrap())
            });
            let left: Vec<KeyId> = list_key_files(&b).unwrap().into_iter().map(|(id, _)| id).collect();
            assert!(!left.is_empty(), "round {round}: no key file left ({a:?}, {c:?})");
            // Every key left opens with its password.
            for id in &left {
                let pw: &[u8] = if *id == k1 { b"pw" } else { b"other" };
                assert_eq!(Repository::open(b.clone(), pw).unwrap().key_id(), *id);
            }
            assert!(a.is_ok() || c.is_ok() || left.len() == 2, "round {round}: {a:?} {c:?} {left:?}");
        }
    }

    #[test]
    fn the_remembered_key_goes_first_and_costly_keys_are_skipped() {
        let (b, r) = init();
        // A key file the "server" added that asks for far more work than allowed.
        let costly = KdfParams { memory_kib: 4 * 1024 * 1024, iterations: 100, parallelism: 1 };
        let mut kf = KeyFile::wrap(r.keys().master().unwrap(), b"pw", FAST, [1; 32], [2; 24], meta("evil")).unwrap();
        kf.kdf.params = costly;
        let bytes = kf.to_json();
        let evil = KeyId(Id::of_stored_bytes(&bytes));
        b.write(&StoredObject::Key(evil).path(), bytes).unwrap();
        let started = std::time::Instant::now();
        let opts = OpenOptions { host: "evil".into(), username: "u".into(), ..Default::default() };
        let opened = Repository::open_with(b.clone(), b"pw", &opts).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(opened.key_id(), r.key_id());
        assert!(
            opened.open_notes().iter().any(|n| n.contains(&evil.short()) && n.contains("skipped")),
            "{:?}",
            opened.open_notes()
        );
        // With the real key remembered, the costly one is not even looked at.
        let opts = OpenOptions { try_first: Some(r.key_id()), ..opts };
        assert!(Repository::open_with(b.clone(), b"pw", &opts).unwrap().open_notes().is_empty());
        // Alone, it is refused with the reason, not run.
        b.delete(&StoredObject::Key(r.key_id()).path()).unwrap();
        match Repository::open_with(b.clone(), b"pw", &OpenOptions::default()) {
            Err(RepoError::NoUsableKey { reason, .. }) => assert!(reason.contains("limit"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_key_files_and_configs_are_not_read() {
        let (b, r) = init();
        let junk = vec![b'{'; 2 * StoredKind::Key.max_stored_size() as usize];
        let id = KeyId(Id::of_stored_bytes(&junk));
        b.write(&StoredObject::Key(id).path(), junk).unwrap();
        let reads = b.stats().reads;
        let opened = Repository::open(b.clone(), b"pw").unwrap();
        assert_eq!(opened.key_id(), r.key_id());
        assert!(b.stats().reads - reads <= 2, "the junk key file was downloaded");
        b.delete(&StoredObject::Key(r.key_id()).path()).unwrap();
        match Repository::open(b.clone(), b"pw") {
            Err(RepoError::NoUsableKey { reason, .. }) => assert!(reason.contains("not read"), "{reason}"),
            other => panic!("{other:?}"),
        }
        b.delete(&StoredObject::Config.path()).unwrap();
        b.write(&StoredObject::Config.path(), vec![0; 2 * StoredKind::Config.max_stored_size() as usize]).unwrap();
        assert!(matches!(Repository::open(b.clone(), b"pw"), Err(RepoError::Integrity { .. })));
    }

    #[test]
    fn the_limit() {
        let l = KdfLimit::default();
        assert!(l.allows(&KdfParams::default()));
        assert!(l.allows(&KdfParams { memory_kib: 1024 * 1024, iterations: 4, parallelism: 1 }));
        assert!(!l.allows(&KdfParams { memory_kib: 1024 * 1024, iterations: 5, parallelism: 1 }));
        assert!(!l.allows(&KdfParams { memory_kib: 2 * 1024 * 1024, iterations: 1, parallelism: 1 }));
        assert!(l.allows(&KdfParams { memory_kib: 64 * 1024, iterations: 64, parallelism: 1 }));
    }
}
