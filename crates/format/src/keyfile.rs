//! Key files: the master key wrapped under a key-encryption key derived from a password
//! with Argon2id. Several key files may wrap one master key. Stored as JSON so that an
//! administrator can read the KDF parameters without tools.

use serde::{Deserialize, Serialize};

use super::access::{WRITE_ONLY, WriteOnlyPayload};
use super::crypto::{self, KEY_LEN, Keys, NONCE_LEN, ObjectKind, SecretKey};
use super::epoch::AgreementSecret;
use super::error::{FormatError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
/// Argon2id cost parameters.
pub struct KdfParams {
    /// Argon2id memory in KiB.
    pub memory_kib: u32,
    /// Argon2id passes.
    pub iterations: u32,
    /// Argon2id lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 }
    }
}

impl KdfParams {
    /// Upper bounds protect `open` from a key file that asks for absurd work.
    pub fn validate(&self) -> Result<()> {
        let ok = (8..=4 * 1024 * 1024).contains(&self.memory_kib)
            && (1..=100).contains(&self.iterations)
            && (1..=64).contains(&self.parallelism)
            && self.memory_kib >= 8 * self.parallelism;
        if ok { Ok(()) } else { Err(FormatError::invalid("key file", format!("KDF parameters {self:?}"))) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The key derivation a key file's password goes through.
pub struct Kdf {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Argon2 version number (19 = 0x13).
    pub version: u32,
    #[serde(flatten)]
    /// Its cost.
    pub params: KdfParams,
    /// 32 random bytes, hex.
    pub salt: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// A key file: the master key wrapped with a key derived from one password.
pub struct KeyFile {
    /// Key-file format version: 1 (full key), 2 (write-only key).
    pub version: u32,
    /// `write-only` for a version 2 key file (informational: the sealed payload decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// RFC 3339 creation time; informational.
    pub created: String,
    /// Host label (informational; orders which key files are tried first).
    pub host: String,
    /// User label (informational).
    pub username: String,
    /// How the wrapping key is derived from the password.
    pub kdf: Kdf,
    /// hex(nonce || ciphertext || tag), kind `KeyFile`, of the 32-byte master key
    /// (version 1) or of a write-only key's JSON payload (version 2).
    pub wrapped_key: String,
}

/// What a key file opens to.
pub enum Unwrapped {
    /// A full key: the master key and everything derived from it.
    Full(Box<Keys>),
    /// A write-only key.
    WriteOnly(Box<WriteOnlyPayload>),
}

/// Length of the Argon2id salt, in bytes.
pub const SALT_LEN: usize = 32;

pub(crate) fn derive_kek(password: &[u8], salt: &[u8], params: KdfParams) -> Result<SecretKey> {
    params.validate()?;
    let p = argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(KEY_LEN))
        .map_err(|e| FormatError::invalid("key file", e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = [0u8; KEY_LEN];
    argon.hash_password_into(password, salt, &mut out).map_err(|e| FormatError::invalid("key file", e.to_string()))?;
    let key = SecretKey::from_bytes(out);
    zeroize::Zeroize::zeroize(&mut out);
    Ok(key)
}

/// What can go wrong when unwrapping: the password not matching is not a format error.
#[derive(Debug)]
pub enum Unwrap {
    /// The password does not open this key file.
    WrongPassword,
    /// The key file is malformed.
    Invalid(FormatError),
}

impl KeyFile {
    /// Wraps `keys`' master key under `password` with a fresh salt.
    pub fn wrap(
        master: &SecretKey,
        password: &[u8],
        params: KdfParams,
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
        meta: KeyMeta,
    ) -> Result<KeyFile> {
        Self::seal(master.expose(), None, password, params, (salt, nonce), meta).map(|(k, _)| k)
    }

    /// [`KeyFile::wrap`], also giving the new key file's agreement public key (spec §3.2).
    pub fn wrap_agreed(
        master: &SecretKey,
        password: &[u8],
        params: KdfParams,
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
        meta: KeyMeta,
    ) -> Result<(KeyFile, [u8; 32])> {
        Self::seal(master.expose(), None, password, params, (salt, nonce), meta)
    }

    /// A write-only key file: `payload` sealed under `password` with a fresh salt.
    pub fn wrap_write_only(
        payload: &WriteOnlyPayload,
        password: &[u8],
        params: KdfParams,
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
        meta: KeyMeta,
    ) -> Result<KeyFile> {
        Self::seal(&payload.to_secret_json(), Some(WRITE_ONLY), password, params, (salt, nonce), meta).map(|(k, _)| k)
    }

    /// [`KeyFile::wrap_write_only`], also giving the agreement public key.
    pub fn wrap_write_only_agreed(
        payload: &WriteOnlyPayload,
        password: &[u8],
        params: KdfParams,
        salt: [u8; SALT_LEN],
        nonce: [u8; NONCE_LEN],
        meta: KeyMeta,
    ) -> Result<(KeyFile, [u8; 32])> {
        Self::seal(&payload.to_secret_json(), Some(WRITE_ONLY), password, params, (salt, nonce), meta)
    }

    /// A key file of version 1 (`access` none: a master key) or 2 (a write-only payload).
    fn seal(
        secret: &[u8],
        access: Option<&str>,
        password: &[u8],
        params: KdfParams,
        (salt, nonce): ([u8; SALT_LEN], [u8; NONCE_LEN]),
        meta: KeyMeta,
    ) -> Result<(KeyFile, [u8; 32])> {
        let kek = derive_kek(password, &salt, params)?;
        let sealed = crypto::seal_with_nonce(&kek, &nonce, ObjectKind::KeyFile, None, secret);
        let agreement = AgreementSecret::from_kek(&kek).public();
        let file = KeyFile {
            version: if access.is_some() { 2 } else { 1 },
            access: access.map(str::to_string),
            created: meta.created,
            host: meta.host,
            username: meta.username,
            kdf: Kdf { algorithm: "argon2id".into(), version: 0x13, params, salt: hex::encode(salt) },
            wrapped_key: hex::encode(sealed),
        };
        Ok((file, agreement))
    }

    /// Whether this key file says it is a write-only key.
    pub fn is_write_only(&self) -> bool {
        self.version == 2
    }

    /// Checks the fields a crafted key file could abuse (algorithm, cost, lengths).
    pub fn validate(&self) -> Result<()> {
        let access_ok = match self.version {
            1 => self.access.is_none(),
            2 => self.access.as_deref() == Some(WRITE_ONLY),
            _ => false,
        };
        if !access_ok {
            return Err(FormatError::UnsupportedVersion { what: "key file", version: u64::from(self.version) });
        }
        if self.kdf.algorithm != "argon2id" || self.kdf.version != 0x13 {
            return Err(FormatError::invalid(
                "key file",
                format!("unsupported KDF {} v{}", self.kdf.algorithm, self.kdf.version),
            ));
        }
        self.kdf.params.validate()
    }

    /// Derives the wrapping key from `password` and opens what the key file wraps.
    pub fn unwrap(&self, password: &[u8]) -> Result<Unwrapped, Unwrap> {
        self.unwrap_agreed(password).map(|(u, _)| u)
    }

    /// [`KeyFile::unwrap`], also giving the key file's agreement secret (spec §3.2).
    pub fn unwrap_agreed(&self, password: &[u8]) -> Result<(Unwrapped, AgreementSecret), Unwrap> {
        self.validate().map_err(Unwrap::Invalid)?;
        let salt = hex::decode(&self.kdf.salt)
            .map_err(|e| Unwrap::Invalid(FormatError::invalid("key file salt", e.to_string())))?;
        let sealed = hex::decode(&self.wrapped_key)
            .map_err(|e| Unwrap::Invalid(FormatError::invalid("key file wrapped_key", e.to_string())))?;
        let kek = derive_kek(password, &salt, self.kdf.params).map_err(Unwrap::Invalid)?;
        let plain = match crypto::open(&kek, ObjectKind::KeyFile, None, &sealed) {
            Ok(p) => zeroize::Zeroizing::new(p),
            Err(FormatError::Authentication) => return Err(Unwrap::WrongPassword),
            Err(e) => return Err(Unwrap::Invalid(e)),
        };
        let agreement = AgreementSecret::from_kek(&kek);
        if self.version == 2 {
            return WriteOnlyPayload::from_json(&plain)
                .map(|p| (Unwrapped::WriteOnly(Box::new(p)), agreement))
                .map_err(Unwrap::Invalid);
        }
        let bytes: Result<[u8; KEY_LEN], _> = plain.as_slice().try_into();
        let bytes =
            bytes.map_err(|_| Unwrap::Invalid(FormatError::invalid("key file", "wrapped key is not 32 bytes")))?;
        Ok((Unwrapped::Full(Box::new(Keys::from_master(SecretKey::from_bytes(bytes)))), agreement))
    }

    /// [`KeyFile::unwrap`] of a full key's key file.
    pub fn unwrap_master(&self, password: &[u8]) -> Result<Keys, Unwrap> {
        match self.unwrap(password)? {
            Unwrapped::Full(k) => Ok(*k),
            Unwrapped::WriteOnly(_) => Err(Unwrap::Invalid(FormatError::invalid("key file", "a write-only key"))),
        }
    }

    /// The stored JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("key file serialises");
        v.push(b'\n');
        v
    }

    /// Parses and validates stored JSON.
    pub fn from_json(bytes: &[u8]) -> Result<KeyFile> {
        serde_json::from_slice(bytes).map_err(|e| FormatError::invalid("key file", e.to_string()))
    }
}

/// Informational fields of a new key file.
#[derive(Clone, Debug, Default)]
pub struct KeyMeta {
    /// RFC 3339 creation time.
    pub created: String,
    /// Host label.
    pub host: String,
    /// User label.
    pub username: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[test]
    fn wrap_unwrap_and_wrong_password() {
        let master = SecretKey::from_bytes([9u8; 32]);
        let kf = KeyFile::wrap(&master, b"pw", FAST, [1u8; 32], [2u8; 24], KeyMeta::default()).unwrap();
        let back = KeyFile::from_json(&kf.to_json()).unwrap();
        let keys = back.unwrap_master(b"pw").unwrap();
        assert_eq!(keys.master(), Some(&master));
        assert!(matches!(back.unwrap_master(b"nope"), Err(Unwrap::WrongPassword)));
    }

    #[test]
    fn absurd_kdf_params_are_refused_before_work() {
        let master = SecretKey::from_bytes([9u8; 32]);
        let mut kf = KeyFile::wrap(&master, b"pw", FAST, [1u8; 32], [2u8; 24], KeyMeta::default()).unwrap();
        kf.kdf.params.memory_kib = u32::MAX;
        assert!(matches!(kf.unwrap_master(b"pw"), Err(Unwrap::Invalid(_))));
    }
}
