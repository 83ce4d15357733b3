//! Key epochs (spec §3.2): `key rotate` makes a new master key, and every key file learns
//! it from a grant sealed to that key file's agreement key, without its password.
//!
//! Each key file has an X25519 agreement key pair derived from its wrapping key (so only its
//! password opens the secret half); a full key publishes the public half in a member record.
//! A grant carries the epoch keys from epoch 2 to the newest, each with a certificate that
//! the recipient checks with what its own key file wraps: for a full key, the previous
//! epoch's key (a chain from epoch 1's master key); for a write-only key, its own data key,
//! which only it and full keys hold. A grant forged without those does not verify.

use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};

use super::crypto::{self, CONTEXT_AUTHORITY, Keys, NONCE_LEN, ObjectKind, SecretKey};
use super::error::{FormatError, Result};
use super::file::{self, FileKind, MEMBER_RECORD, SealedDocument};
use super::id::{Id, KeyId};

/// BLAKE3 derive-key context of a key file's agreement secret (from its wrapping key).
pub const CONTEXT_AGREEMENT: &str = "vault repository v3 2026-12 agreement secret";
/// BLAKE3 derive-key context of the key that seals one grant.
pub const CONTEXT_GRANT: &str = "vault repository v3 2026-12 grant key";
/// BLAKE3 derive-key context of the key that certifies a full epoch (from the previous
/// epoch's authority key).
pub const CONTEXT_EPOCH_CERT: &str = "vault repository v3 2026-12 epoch certificate";
/// BLAKE3 derive-key context of the key that certifies a metadata epoch to a write-only
/// key (from that key's own data key).
pub const CONTEXT_METADATA_CERT: &str = "vault repository v3 2026-12 metadata epoch certificate";

/// Magic of a grant file.
pub const MAGIC_GRANT: &[u8; 4] = b"VLTg";
/// The version byte of grant files.
const GRANT_VERSION: u8 = 1;
const HEADER_LEN: usize = 5 + 32 + 32;
/// Largest grant accepted (a grant holds one key per epoch).
pub const MAX_GRANT: usize = 64 * 1024;

/// The secret half of a key file's agreement key pair. Wiped on drop, never printed.
pub struct AgreementSecret(StaticSecret);

impl std::fmt::Debug for AgreementSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgreementSecret(<redacted>)")
    }
}

impl AgreementSecret {
    /// The agreement secret of the key file whose wrapping key is `kek`.
    pub fn from_kek(kek: &SecretKey) -> AgreementSecret {
        AgreementSecret(StaticSecret::from(blake3::derive_key(CONTEXT_AGREEMENT, kek.expose())))
    }

    /// Its public half, which member records publish.
    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }
}

/// `members/<id>`: a key file's public agreement key, sealed by a full key with the
/// encryption key of the epoch it was written in. `key rotate` grants the new epoch only to
/// key files with a member record of the current epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRecord {
    /// Record format version (1).
    pub version: u32,
    /// RFC 3339, UTC (informational).
    pub created: String,
    /// The key file it belongs to.
    pub key_file: KeyId,
    /// `full` or `write-only`: what a grant to it carries.
    pub access: String,
    /// The X25519 public key, 64 hex digits.
    pub agreement_key: String,
    /// A write-only key's data key id (16 hex digits): full keys certify its grants with
    /// that data key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
}

impl SealedDocument for MemberRecord {
    const KIND: FileKind = MEMBER_RECORD;
    const VERSION: u32 = 1;
    fn version(&self) -> u32 {
        self.version
    }
}

impl MemberRecord {
    /// The public key as bytes.
    pub fn public_key(&self) -> Result<[u8; 32]> {
        let mut k = [0u8; 32];
        hex::decode_to_slice(&self.agreement_key, &mut k)
            .map_err(|_| FormatError::invalid(MEMBER_RECORD.name, "agreement_key is not 64 hex digits"))?;
        Ok(k)
    }

    /// Opens a sealed record and tells whether a full key sealed it (else a write-only key
    /// sealed it with the metadata key, for itself).
    pub fn decode_origin(keys: &Keys, bytes: &[u8]) -> Result<(MemberRecord, bool)> {
        let (origin, plain) = file::open_origin(keys, MEMBER_RECORD, bytes)?;
        let record: MemberRecord =
            serde_json::from_slice(&plain).map_err(|e| FormatError::invalid(MEMBER_RECORD.name, e.to_string()))?;
        file::check_json_version(MEMBER_RECORD, record.version, Self::VERSION)?;
        Ok((record, origin == file::Origin::Full))
    }

    /// Whether it is a full key's.
    pub fn is_full(&self) -> bool {
        self.access == "full"
    }
}

/// One epoch's key in a grant, with its certificate.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochKey {
    /// 2, 3, …
    pub epoch: u32,
    /// Full grants: the epoch's master key; write-only grants: its metadata key.
    #[serde(serialize_with = "crypto::serialize_secret", deserialize_with = "crypto::deserialize_secret")]
    pub key: SecretKey,
    /// The certificate made with the previous epoch's key (64 hex digits).
    pub cert: String,
}

/// What a grant seals: every epoch key from 2 to the newest.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantPayload {
    /// Payload format version (1).
    pub version: u32,
    /// `full` or `write-only`.
    pub access: String,
    /// Epochs 2, 3, … in order.
    pub epochs: Vec<EpochKey>,
}

impl std::fmt::Debug for GrantPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GrantPayload({}, epochs 2..={})", self.access, self.epochs.len() + 1)
    }
}

/// The certificate of epoch `epoch`'s key `next`, made with `prev`: for a full grant the
/// previous epoch's master key, for a write-only grant the recipient's own data key.
pub fn certificate(full: bool, prev: &SecretKey, epoch: u32, next: &SecretKey) -> [u8; 32] {
    let cert_key = if full {
        let authority = blake3::derive_key(CONTEXT_AUTHORITY, prev.expose());
        blake3::derive_key(CONTEXT_EPOCH_CERT, &authority)
    } else {
        blake3::derive_key(CONTEXT_METADATA_CERT, prev.expose())
    };
    let mut h = blake3::Hasher::new_keyed(&cert_key);
    h.update(&epoch.to_le_bytes());
    h.update(next.expose());
    *h.finalize().as_bytes()
}

impl GrantPayload {
    /// The grant `keys` gives a key file: to a full key (`writer` none) every epoch's master
    /// key, which only a full key holds; to the write-only key whose data key is `writer`,
    /// every epoch's metadata key.
    pub fn from_keys(keys: &Keys, writer: Option<&SecretKey>) -> Option<GrantPayload> {
        let full = writer.is_none();
        let chain: Vec<SecretKey> = match writer {
            None => {
                let mut v = vec![keys.master()?.clone()];
                v.extend(keys.epoch_masters().iter().cloned());
                v
            }
            Some(_) => keys.metadata_keys(),
        };
        let epochs = chain
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let epoch = i as u32 + 2;
                let by = writer.unwrap_or(&w[0]);
                EpochKey { epoch, key: w[1].clone(), cert: hex::encode(certificate(full, by, epoch, &w[1])) }
            })
            .collect();
        Some(GrantPayload { version: 1, access: access_label(full).into(), epochs })
    }

    /// Checks the certificates with `anchor` (what the recipient's key file wraps: a full
    /// key's epoch-1 master key, from which the chain runs; a write-only key's data key) and
    /// returns the epoch keys.
    pub fn verify(&self, anchor: &SecretKey, full: bool) -> Result<Vec<SecretKey>> {
        let bad = |why: String| FormatError::invalid("grant", why);
        if self.version != 1 {
            return Err(FormatError::UnsupportedVersion { what: "grant", version: u64::from(self.version) });
        }
        if self.access != access_label(full) {
            return Err(bad(format!("it is for a {} key", self.access)));
        }
        let mut prev = anchor.clone();
        let mut out = Vec::with_capacity(self.epochs.len());
        for (i, e) in self.epochs.iter().enumerate() {
            if e.epoch != i as u32 + 2 {
                return Err(bad(format!("epoch {} out of order", e.epoch)));
            }
            let expected = certificate(full, &prev, e.epoch, &e.key);
            let mut given = [0u8; 32];
            hex::decode_to_slice(&e.cert, &mut given).map_err(|_| bad("a certificate is not 64 hex digits".into()))?;
            if blake3::Hash::from_bytes(given) != blake3::Hash::from_bytes(expected) {
                return Err(bad(format!("the certificate of epoch {} does not verify", e.epoch)));
            }
            out.push(e.key.clone());
            if full {
                prev = e.key.clone();
            }
        }
        Ok(out)
    }
}

fn access_label(full: bool) -> &'static str {
    if full { "full" } else { "write-only" }
}

/// A parsed grant file: `VLTg | 1 | recipient key file id[32] | ephemeral public key[32] |
/// seal(grant key, kind 15, payload JSON)`.
#[derive(Debug)]
pub struct Grant {
    /// The key file it is for.
    pub recipient: KeyId,
    ephemeral: [u8; 32],
    sealed: Vec<u8>,
}

fn grant_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient_public: &[u8; 32], recipient: KeyId) -> SecretKey {
    let mut h = blake3::Hasher::new_derive_key(CONTEXT_GRANT);
    h.update(shared);
    h.update(ephemeral);
    h.update(recipient_public);
    h.update(&recipient.0.0);
    SecretKey::from_bytes(*h.finalize().as_bytes())
}

impl Grant {
    /// Seals `payload` to the key file `recipient` whose agreement public key is `public`.
    pub fn seal(payload: &GrantPayload, recipient: KeyId, public: &[u8; 32]) -> Result<Vec<u8>, getrandom::Error> {
        let mut eph = [0u8; 32];
        getrandom::fill(&mut eph)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        Ok(Self::seal_with(payload, recipient, public, eph, &nonce))
    }

    /// [`Grant::seal`] with a given ephemeral secret and nonce: golden vectors and tests.
    pub fn seal_with(
        payload: &GrantPayload,
        recipient: KeyId,
        public: &[u8; 32],
        ephemeral_secret: [u8; 32],
        nonce: &[u8; NONCE_LEN],
    ) -> Vec<u8> {
        let eph = StaticSecret::from(ephemeral_secret);
        let eph_public = PublicKey::from(&eph).to_bytes();
        let shared = eph.diffie_hellman(&PublicKey::from(*public));
        let key = grant_key(shared.as_bytes(), &eph_public, public, recipient);
        let mut json = zeroize::Zeroizing::new(Vec::with_capacity(4096));
        // Serialising vault's own structs into memory cannot fail.
        let _ = serde_json::to_writer(&mut *json, payload);
        let sealed = crypto::seal_with_nonce(&key, nonce, ObjectKind::Grant, None, &json);
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.extend_from_slice(MAGIC_GRANT);
        out.push(GRANT_VERSION);
        out.extend_from_slice(&recipient.0.0);
        out.extend_from_slice(&eph_public);
        out.extend_from_slice(&sealed);
        out
    }

    /// Parses a grant file's header (nothing is authenticated yet).
    pub fn parse(bytes: &[u8]) -> Result<Grant> {
        if bytes.len() < HEADER_LEN + crypto::NONCE_LEN + 16 {
            return Err(FormatError::Truncated("grant"));
        }
        if bytes.len() > MAX_GRANT {
            return Err(FormatError::invalid("grant", format!("{} bytes, more than any grant", bytes.len())));
        }
        if &bytes[..4] != MAGIC_GRANT {
            return Err(FormatError::invalid("grant", "wrong magic bytes"));
        }
        if bytes[4] != GRANT_VERSION {
            return Err(FormatError::UnsupportedVersion { what: "grant", version: u64::from(bytes[4]) });
        }
        let mut recipient = [0u8; 32];
        recipient.copy_from_slice(&bytes[5..37]);
        let mut ephemeral = [0u8; 32];
        ephemeral.copy_from_slice(&bytes[37..69]);
        Ok(Grant { recipient: KeyId(Id(recipient)), ephemeral, sealed: bytes[HEADER_LEN..].to_vec() })
    }

    /// Opens the grant with the recipient's agreement secret. An authentication failure is
    /// an integrity error: the grant names this key file but was not sealed to it.
    pub fn open(&self, secret: &AgreementSecret) -> Result<GrantPayload> {
        let public = secret.public();
        let shared = secret.0.diffie_hellman(&PublicKey::from(self.ephemeral));
        if !shared.was_contributory() {
            return Err(FormatError::invalid("grant", "its ephemeral key is of low order"));
        }
        let key = grant_key(shared.as_bytes(), &self.ephemeral, &public, self.recipient);
        let plain = zeroize::Zeroizing::new(crypto::open(&key, ObjectKind::Grant, None, &self.sealed)?);
        serde_json::from_slice(&plain).map_err(|e| FormatError::invalid("grant", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_keys() -> Keys {
        Keys::from_master(SecretKey::from_bytes([3; 32]))
    }

    #[test]
    fn a_grant_opens_only_for_its_recipient_and_its_chain_verifies() {
        let mut keys = full_keys();
        keys.enter_epoch(SecretKey::from_bytes([4; 32]));
        keys.enter_epoch(SecretKey::from_bytes([5; 32]));
        let me = AgreementSecret::from_kek(&SecretKey::from_bytes([9; 32]));
        let other = AgreementSecret::from_kek(&SecretKey::from_bytes([8; 32]));
        let payload = GrantPayload::from_keys(&keys, None).unwrap();
        let bytes = Grant::seal(&payload, KeyId(Id([1; 32])), &me.public()).unwrap();
        let g = Grant::parse(&bytes).unwrap();
        let opened = g.open(&me).unwrap();
        let chain = opened.verify(&SecretKey::from_bytes([3; 32]), true).unwrap();
        assert_eq!(chain, vec![SecretKey::from_bytes([4; 32]), SecretKey::from_bytes([5; 32])]);
        assert!(matches!(g.open(&other), Err(FormatError::Authentication)));
        // Another recipient id in the header changes the key: not openable.
        let mut moved = bytes.clone();
        moved[5] ^= 1;
        assert!(Grant::parse(&moved).unwrap().open(&me).is_err());
        // Anchored in the recipient's own key: another base fails.
        assert!(opened.verify(&SecretKey::from_bytes([6; 32]), true).is_err());
        assert!(!format!("{opened:?}").contains("0505"));
    }

    #[test]
    fn a_grant_forged_without_the_previous_epoch_key_does_not_verify() {
        // The attacker knows epoch 1 (a leaked old key) but not epoch 2.
        let mut keys = full_keys();
        keys.enter_epoch(SecretKey::from_bytes([4; 32]));
        let mut forged = GrantPayload::from_keys(&keys, None).unwrap();
        let evil = SecretKey::from_bytes([66; 32]);
        forged.epochs.push(EpochKey {
            epoch: 3,
            key: evil.clone(),
            cert: hex::encode(certificate(true, &SecretKey::from_bytes([99; 32]), 3, &evil)),
        });
        assert!(forged.verify(&SecretKey::from_bytes([3; 32]), true).is_err());
        // Write-only grants: certified with the recipient's data key, which another
        // write-only key (holding only the metadata key) does not have.
        let data_key = SecretKey::from_bytes([1; 32]);
        let mut w = Keys::write_only(data_key.clone(), keys.base_metadata_key().clone(), keys.content_keys());
        let p = GrantPayload::from_keys(&keys, Some(&data_key)).unwrap();
        for k in p.verify(&data_key, false).unwrap() {
            w.enter_metadata_epoch(k);
        }
        let by_another = GrantPayload::from_keys(&keys, Some(keys.base_metadata_key())).unwrap();
        assert!(by_another.verify(&data_key, false).is_err());
        let idx = {
            let mut s = keys.clone();
            s.set_shared(true);
            s.seal(ObjectKind::Index, None, b"i").unwrap()
        };
        assert_eq!(w.open(ObjectKind::Index, None, &idx).unwrap(), b"i");
        assert!(p.verify(&data_key, true).is_err());
    }

    #[test]
    fn epochs_open_old_objects_and_seal_new_ones_apart() {
        let old = full_keys();
        let mut new = full_keys();
        let before = old.seal(ObjectKind::Snapshot, None, b"old").unwrap();
        new.enter_epoch(SecretKey::from_bytes([4; 32]));
        let after = new.seal(ObjectKind::Snapshot, None, b"new").unwrap();
        assert_eq!(new.open(ObjectKind::Snapshot, None, &before).unwrap(), b"old");
        assert_eq!(new.open(ObjectKind::Snapshot, None, &after).unwrap(), b"new");
        assert!(old.open(ObjectKind::Snapshot, None, &after).is_err(), "the old key opens nothing new");
        assert_eq!((new.epoch_of(&before), new.epoch_of(&after)), (Some(1), Some(2)));
        assert_eq!(new.blob_id(b"x"), old.blob_id(b"x"), "ids stay, so dedup spans epochs");
    }

    #[test]
    fn member_records_round_trip() {
        let keys = full_keys();
        let r = MemberRecord {
            version: 1,
            created: "2026-12-02T00:00:00Z".into(),
            key_file: KeyId(Id([2; 32])),
            access: "full".into(),
            agreement_key: hex::encode([7; 32]),
            writer: None,
        };
        let back = MemberRecord::decode(&keys, &r.encode(&keys).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.public_key().unwrap(), [7; 32]);
    }
}
