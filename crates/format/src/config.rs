//! The repository config: written once by `init`, sealed with the master key.

use serde::{Deserialize, Serialize};

use super::blob::{Compression, Padding};
use super::chunker::ChunkerParams;
use super::crypto::{ContentKeys, Keys};
use super::error::{FormatError, Result};
use super::file;
use super::id::Id;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
/// The repository's settings, sealed with its master key and never changed after `init`.
pub struct Config {
    /// Repository format version.
    pub version: u32,
    /// Random repository id: names the local cache, never secret.
    pub id: Id,
    /// Chunk size bounds every writer must cut with (deduplication depends on them).
    pub chunker: ChunkerParams,
    /// Target size of a data pack in bytes.
    pub data_pack_size: u32,
    /// Target size of a tree pack in bytes.
    pub tree_pack_size: u32,
    /// How blobs are compressed.
    pub compression: Compression,
    /// How sealed blobs are padded.
    pub padding: Padding,
    /// The blob id and chunker keys, when they are another repository's (version 2 only;
    /// version 1 derives them from the master key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_keys: Option<ContentKeys>,
}

/// The config version of a repository whose content keys are derived from its master key.
pub const VERSION_DERIVED: u32 = 1;
/// The config version of a repository that carries another repository's content keys.
pub const VERSION_SHARED_CONTENT: u32 = 2;

impl Config {
    /// The default settings for a new repository with the random id `id`.
    pub fn new(id: Id) -> Self {
        Config {
            version: 1,
            id,
            chunker: ChunkerParams::default(),
            data_pack_size: 16 * 1024 * 1024,
            tree_pack_size: 4 * 1024 * 1024,
            compression: Compression::default(),
            padding: Padding::None,
            content_keys: None,
        }
    }

    /// Makes this config carry `shared` content keys (and the version that says so).
    pub fn share_content_keys(&mut self, shared: ContentKeys) {
        self.version = VERSION_SHARED_CONTENT;
        self.content_keys = Some(shared);
    }

    /// The keys a repository with this config uses: `master`'s, with the content keys
    /// replaced where the config carries them.
    pub fn keys(&self, master: Keys) -> Keys {
        master.with_content_keys(self.content_keys.as_ref())
    }

    /// Checks every value against the bounds this build supports.
    pub fn validate(&self) -> Result<()> {
        match (self.version, &self.content_keys) {
            (VERSION_DERIVED, None) | (VERSION_SHARED_CONTENT, Some(_)) => {}
            (VERSION_DERIVED, Some(_)) => {
                return Err(FormatError::invalid("config", "version 1 carries no content keys"));
            }
            (VERSION_SHARED_CONTENT, None) => {
                return Err(FormatError::invalid("config", "version 2 lacks its content keys"));
            }
            (v, _) => return Err(FormatError::UnsupportedVersion { what: "config", version: u64::from(v) }),
        }
        self.chunker.validate()?;
        for size in [self.data_pack_size, self.tree_pack_size] {
            if !(64 * 1024..=1 << 30).contains(&size) {
                return Err(FormatError::invalid("config", format!("pack size {size}")));
            }
        }
        if let Compression::Zstd { level } = self.compression
            && !(1..=22).contains(&level)
        {
            return Err(FormatError::invalid("config", format!("zstd level {level}")));
        }
        Ok(())
    }

    /// The sealed config file. Its plaintext may hold keys: it is written into a buffer
    /// large enough not to move, and wiped.
    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, getrandom::Error> {
        let mut json = zeroize::Zeroizing::new(Vec::with_capacity(4096));
        // Serialising this struct into memory cannot fail.
        let _ = serde_json::to_writer(&mut *json, self);
        file::seal_secret(keys, file::CONFIG, &json)
    }

    /// The plaintext JSON with the content keys replaced by their fingerprint, for
    /// `cat config` and the local record of the config last seen (any change of the keys
    /// changes it, and no key is shown or written to disk).
    pub fn to_json(&self) -> Vec<u8> {
        /// The config as stored, the keys' fingerprint in place of the keys. (Fields keep
        /// their order: the bytes of a version 1 config are what earlier builds recorded.)
        #[derive(Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            config: &'a Config,
            #[serde(skip_serializing_if = "Option::is_none")]
            content_keys: Option<Fingerprint>,
        }
        #[derive(Serialize)]
        struct Fingerprint {
            fingerprint: String,
        }
        let without_keys = Config { content_keys: None, ..self.clone() };
        file::to_json(&Shown {
            config: &without_keys,
            content_keys: self.content_keys.as_ref().map(|c| Fingerprint { fingerprint: c.fingerprint() }),
        })
    }

    /// Opens and validates a sealed config file.
    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<Config> {
        let plain = file::open_secret(keys, file::CONFIG, bytes)?;
        let config: Config =
            serde_json::from_slice(&plain).map_err(|e| FormatError::invalid(file::CONFIG.name, e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    fn keys(b: u8) -> Keys {
        Keys::from_master(SecretKey::from_bytes([b; 32]))
    }

    #[test]
    fn shared_content_keys_round_trip_and_replace_the_derived_ones() {
        let (own, other) = (keys(1), keys(2));
        let mut c = Config::new(Id([3; 32]));
        c.share_content_keys(other.content_keys());
        let back = Config::decode(&own, &c.encode(&own).unwrap()).unwrap();
        assert_eq!(back, c);
        let used = back.keys(own.clone());
        assert_eq!(used.blob_id(b"x"), other.blob_id(b"x"));
        assert_ne!(used.blob_id(b"x"), own.blob_id(b"x"));
        assert_eq!(used.chunker_key(), other.chunker_key());
        // The encryption key stays the repository's own.
        let sealed = used.seal(crate::crypto::ObjectKind::Index, None, b"i").unwrap();
        assert!(own.open(crate::crypto::ObjectKind::Index, None, &sealed).is_ok());
    }

    #[test]
    fn shown_config_names_keys_by_fingerprint_only() {
        let other = keys(2);
        let mut c = Config::new(Id([3; 32]));
        c.share_content_keys(other.content_keys());
        let shown = String::from_utf8(c.to_json()).unwrap();
        for k in [other.content_keys().blob_id, other.content_keys().chunker] {
            assert!(!shown.contains(&hex::encode(k.expose())), "{shown}");
        }
        assert!(shown.contains(&other.content_keys().fingerprint()), "{shown}");
        assert!(!format!("{c:?}").contains(&hex::encode(other.content_keys().blob_id.expose())));
    }

    #[test]
    fn a_version_1_config_shows_as_earlier_builds_recorded_it() {
        let c = Config::new(Id([3; 32]));
        assert_eq!(c.to_json(), serde_json::to_vec(&c).unwrap());
        assert!(String::from_utf8(c.to_json()).unwrap().starts_with("{\"version\":1,\"id\":"));
    }

    #[test]
    fn version_and_content_keys_go_together() {
        let own = keys(1);
        let mut v1_with_keys = Config::new(Id([3; 32]));
        v1_with_keys.content_keys = Some(keys(2).content_keys());
        let mut v2_without = Config::new(Id([3; 32]));
        v2_without.version = VERSION_SHARED_CONTENT;
        let mut v3 = Config::new(Id([3; 32]));
        v3.version = 3;
        for bad in [v1_with_keys, v2_without, v3] {
            assert!(Config::decode(&own, &bad.encode(&own).unwrap()).is_err(), "{bad:?}");
        }
    }
}
