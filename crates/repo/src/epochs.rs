//! Key epochs (spec §3.2): `key rotate` makes a new master key and grants it to every key
//! file with a member record of the current epoch; opening installs the epochs granted to
//! the key file that opened. New objects are sealed with the newest epoch's keys; every
//! earlier epoch's keys still open what was sealed then, until `prune --reencrypt`
//! rewrites it.

use rayon::prelude::*;

use vault_format::crypto::{Keys, SealKeyId, SecretKey};
use vault_format::epoch::{AgreementSecret, Grant, GrantPayload, MemberRecord};
use vault_format::file::SealedDocument;
use vault_format::pack::BlobKind;
use vault_format::{Id, KeyId, PackId};

use super::error::{RepoError, Result};
use super::object::{StoredKind, StoredObject};
use super::repository::{Repository, keep_present, undecodable};

/// A member record as read: the record, whether a full key sealed it, and its epoch.
#[derive(Clone, Debug)]
pub struct Member {
    /// `members/<id>`.
    pub id: Id,
    /// The record.
    pub record: MemberRecord,
    /// Sealed by a full key (else by a write-only key, for itself).
    pub by_full_key: bool,
    /// The epoch of the key that sealed it.
    pub epoch: Option<u32>,
}

/// What `key rotate` did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default)]
pub struct Rotated {
    /// The new epoch.
    pub epoch: u32,
    /// Key files granted the new epoch: (id, full key?).
    pub granted: Vec<(KeyId, bool)>,
    /// Key files left without it (no member record of the current epoch).
    pub left_out: Vec<KeyId>,
    /// Grant files written.
    pub grants: Vec<Id>,
}

/// How `key rotate` runs.
#[derive(Clone, Debug, Default)]
pub struct RotateOptions {
    /// Rotate although some key files cannot be granted the new epoch (they keep opening
    /// the repository and reading what was written before, nothing newer).
    pub leave_out_ungranted: bool,
    /// Decide and report, write nothing.
    pub dry_run: bool,
}

impl Repository {
    /// The current key epoch (1 until the first `key rotate`).
    pub fn epoch(&self) -> u32 {
        self.keys().epoch()
    }

    /// The id of the current epoch's metadata key: names the epoch's keys.
    pub fn epoch_key_id(&self) -> vault_format::crypto::SealKeyId {
        self.keys().epoch_key_id()
    }

    /// Installs the epochs granted to the key file that opened (spec §3.2). Grants that
    /// name this key file but do not open or verify are reported in the open notes and
    /// ignored; two grants that disagree on an epoch's key are tampering (or two rotations
    /// at once), and the repository is not opened for writing.
    pub(crate) fn load_epochs(&mut self, agreement: &AgreementSecret) -> Result<()> {
        let me = self.key_id();
        let listed = self.list_files(StoredKind::Grant)?;
        if listed.is_empty() {
            return Ok(());
        }
        let loaded: Vec<(Id, Result<Grant>)> = listed
            .par_iter()
            .map(|(id, size)| {
                let object = StoredObject::new(StoredKind::Grant, *id);
                let r = self
                    .read_listed_file(object, *size)
                    .and_then(|b| Grant::parse(&b).map_err(|e| undecodable(object, e)));
                (*id, r)
            })
            .collect();
        let full = self.keys().is_full();
        // A full key's chain runs from its epoch-1 master key; a write-only key's grants
        // are certified with its own data key, which no other write-only key holds.
        let base = match (self.keys().master(), self.write_only_payload()) {
            (Some(m), _) => m.clone(),
            (None, Some(p)) => p.writer_key.clone(),
            (None, None) => return Ok(()),
        };
        let mut chains: Vec<(Id, Vec<SecretKey>)> = Vec::new();
        for (id, r) in keep_present(loaded)? {
            let grant = match r {
                Ok(g) if g.recipient == me => g,
                Ok(_) => continue,
                Err(e) => {
                    self.push_note(format!("{e}; ignored"));
                    continue;
                }
            };
            match grant.open(agreement).and_then(|p| p.verify(&base, full)) {
                Ok(chain) => chains.push((id, chain)),
                Err(e) => self.push_note(format!(
                    "{}: names this key file but {e}; ignored",
                    StoredObject::new(StoredKind::Grant, id)
                )),
            }
        }
        chains.sort_by_key(|(_, c)| std::cmp::Reverse(c.len()));
        let Some((_, longest)) = chains.first().cloned() else { return Ok(()) };
        for (id, c) in &chains[1..] {
            if let Some(epoch) = c.iter().zip(&longest).position(|(a, b)| a != b) {
                return Err(RepoError::Tampering(format!(
                    "{} and another grant give this key file two different keys for epoch {}: a second `key rotate` at the same time, or someone who held an earlier key made one (see `vault key list`)",
                    StoredObject::new(StoredKind::Grant, *id),
                    epoch + 2
                )));
            }
        }
        let keys = self.keys_mut();
        for k in longest {
            if full {
                keys.enter_epoch(k);
            } else {
                keys.enter_metadata_epoch(k);
            }
        }
        Ok(())
    }

    /// Every member record this key can open, with the epoch that sealed it. Records that
    /// do not open (a write-only key cannot read full keys') are left out.
    pub fn load_member_records(&self) -> Result<Vec<Member>> {
        let listed = self.list_files(StoredKind::MemberRecord)?;
        let keys = self.keys();
        let loaded: Vec<(Id, Result<Member>)> = listed
            .par_iter()
            .map(|(id, size)| {
                let object = StoredObject::new(StoredKind::MemberRecord, *id);
                let r = self.read_listed_file(object, *size).and_then(|b| {
                    let decoded = MemberRecord::decode_origin(keys, &b).map_err(|e| undecodable(object, e));
                    decoded.map(|(record, by_full_key)| Member {
                        id: *id,
                        record,
                        by_full_key,
                        epoch: b.get(5..).and_then(|s| keys.epoch_of(s)),
                    })
                });
                (*id, r)
            })
            .collect();
        Ok(keep_present(loaded)?.into_iter().filter_map(|(_, r)| r.ok()).collect())
    }

    /// Stores this key file's member record unless one of the current epoch exists, so a
    /// later `key rotate` can grant it the next epoch. Returns whether it wrote one.
    pub fn ensure_member_record(&self) -> Result<bool> {
        let me = self.key_id();
        let epoch = self.epoch();
        let has = self.load_member_records()?.iter().any(|m| m.record.key_file == me && m.epoch == Some(epoch));
        if has {
            return Ok(false);
        }
        let Some(public) = self.agreement_public() else { return Ok(false) };
        self.write_member_record(self.keys(), me, self.keys().own_writer(), &public)?;
        Ok(true)
    }

    /// A member record; `writer` is a write-only key's data key id (none for a full key).
    fn write_member_record(
        &self,
        keys: &Keys,
        key_file: KeyId,
        writer: Option<SealKeyId>,
        public: &[u8; 32],
    ) -> Result<Id> {
        let record = MemberRecord {
            version: 1,
            created: crate::writers::now_rfc3339(),
            key_file,
            access: if writer.is_none() { "full" } else { "write-only" }.into(),
            agreement_key: hex::encode(public),
            writer: writer.map(|w| w.to_hex()),
        };
        self.write_file(StoredKind::MemberRecord, record.encode(keys)?)
    }

    /// Admits a new key file (before it is stored): its member record, and a grant of the
    /// epochs after the first when there are any. Only a full key admits others; `writer`
    /// is a write-only key's data key (none for a full key).
    pub(crate) fn admit_key_file(&self, key_file: KeyId, writer: Option<&SecretKey>, public: &[u8; 32]) -> Result<()> {
        if !self.is_full() {
            return Ok(());
        }
        self.write_member_record(self.keys(), key_file, writer.map(SealKeyId::of), public)?;
        if self.epoch() > 1 {
            self.write_grant(self.keys(), key_file, writer, public)?;
        }
        Ok(())
    }

    /// A grant of the epochs this key holds to its own key file (a write-only key after
    /// `key passwd`: its new key file has no grant of a full key's).
    pub(crate) fn grant_self(&self) -> Result<()> {
        let writer = self.keys().own_writer().and_then(|id| self.keys().writer_key(id));
        if self.epoch() > 1
            && let Some(public) = self.agreement_public()
        {
            self.write_grant(self.keys(), self.key_id(), writer, &public)?;
        }
        Ok(())
    }

    fn write_grant(&self, keys: &Keys, key_file: KeyId, writer: Option<&SecretKey>, public: &[u8; 32]) -> Result<Id> {
        let payload = GrantPayload::from_keys(keys, writer)
            .ok_or_else(|| RepoError::WriteOnly("only a full key grants a full key's epochs".into()))?;
        self.write_file(StoredKind::Grant, Grant::seal(&payload, key_file, public)?)
    }

    /// `key rotate`: a new master key, granted to every key file with a member record of
    /// the current epoch (full keys get the master key, write-only keys the metadata key).
    /// This key file's own grant is stored first, so an interrupted rotation is finished
    /// by running it again (which makes one more epoch, granted to all).
    pub fn rotate_key(&mut self, opts: &RotateOptions) -> Result<Rotated> {
        self.require_full("`key rotate`")?;
        if !opts.dry_run {
            self.ensure_member_record()?;
        }
        let epoch = self.epoch();
        let members = self.load_member_records()?;
        let key_files = self.key_ids()?;
        let me = self.key_id();
        let mut granted = Vec::new();
        let mut left_out = Vec::new();
        for k in &key_files {
            // A write-only key's own record gives it only the metadata key, whatever it says;
            // its grant is certified with its data key, found by the id its record names.
            let found = members.iter().filter(|m| m.record.key_file == *k && m.epoch == Some(epoch)).find_map(|m| {
                let public = m.record.public_key().ok()?;
                if m.by_full_key && m.record.is_full() {
                    return Some((public, None));
                }
                let id = m.record.writer.as_deref().and_then(parse_key_id)?;
                Some((public, Some(self.keys().writer_key(id)?.clone())))
            });
            match found {
                Some((public, writer)) => granted.push((*k, writer, public)),
                // A real run stores this key file's record first.
                None if *k == me && opts.dry_run => granted.push((*k, None, [0; 32])),
                None => left_out.push(*k),
            }
        }
        let mut report = Rotated {
            epoch: epoch + 1,
            granted: granted.iter().map(|(k, w, _)| (*k, w.is_none())).collect(),
            left_out: left_out.clone(),
            grants: Vec::new(),
        };
        if !left_out.is_empty() && !opts.leave_out_ungranted {
            let names: Vec<String> = left_out.iter().map(|k| k.short()).collect();
            return Err(RepoError::invalid(
                "key rotation",
                format!(
                    "key file(s) {} have no member record of epoch {epoch}, so they could not be given the new key: have each one's holder run `vault key list` once with this version, remove them with `vault key remove`, or pass --leave-out to rotate without them",
                    names.join(", ")
                ),
            ));
        }
        if opts.dry_run {
            return Ok(report);
        }
        let mut next = self.keys().clone();
        next.enter_epoch(SecretKey::random()?);
        // Records of the new epoch first (the next rotation grants by them), then this
        // key's grant, then everyone else's.
        for (k, writer, public) in &granted {
            self.write_member_record(&next, *k, writer.as_ref().map(SealKeyId::of), public)?;
        }
        granted.sort_by_key(|(k, _, _)| *k != me);
        for (k, writer, public) in &granted {
            report.grants.push(self.write_grant(&next, *k, writer.as_ref(), public)?);
        }
        self.replace_keys(next);
        Ok(report)
    }

    /// Whether snapshot `id` was sealed with an older epoch's key than the current one.
    pub fn snapshot_sealed_before_current_epoch(&self, id: &vault_format::SnapshotId) -> Result<bool> {
        if self.epoch() == 1 {
            return Ok(false);
        }
        let bytes = self.read_snapshot_file(id)?;
        Ok(bytes.get(5..).and_then(|s| self.keys().epoch_of(s)).is_some_and(|e| e < self.epoch()))
    }

    /// Whether the pack's blob at `offset` was sealed with an older epoch's key than the
    /// current one (one small range read; every blob of a pack is sealed by one writer
    /// with one key). A write-only key's packs are not: only it and full keys read them.
    pub fn sealed_before_current_epoch(&self, kind: BlobKind, pack: &PackId, offset: u64) -> Result<bool> {
        if self.epoch() == 1 {
            return Ok(false);
        }
        let nonce = self.backend().read_range(&StoredObject::Pack(kind, *pack).path(), offset, 8)?;
        Ok(self.keys().epoch_of(&nonce).is_some_and(|e| e < self.epoch()))
    }
}

/// A data key id as member records spell it (16 hex digits).
fn parse_key_id(hex_id: &str) -> Option<SealKeyId> {
    let mut b = [0u8; vault_format::crypto::SEAL_KEY_ID_LEN];
    hex::decode_to_slice(hex_id, &mut b).ok()?;
    Some(SealKeyId(b))
}
