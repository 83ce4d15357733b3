//! The repository config: written once by `init`, sealed with the master key.

use serde::{Deserialize, Serialize};

use super::blob::{Compression, Padding};
use super::chunker::ChunkerParams;
use super::crypto::Keys;
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
}

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
        }
    }

    /// Checks every value against the bounds this build supports.
    pub fn validate(&self) -> Result<()> {
        if self.version != 1 {
            return Err(FormatError::UnsupportedVersion { what: "config", version: u64::from(self.version) });
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

    /// The sealed config file.
    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, getrandom::Error> {
        file::seal_json(keys, file::CONFIG, self, Compression::Off)
    }

    /// The plaintext JSON (for `cat config`).
    pub fn to_json(&self) -> Vec<u8> {
        file::to_json(self)
    }

    /// Opens and validates a sealed config file.
    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<Config> {
        let config: Config = file::open_json(keys, file::CONFIG, bytes)?;
        config.validate()?;
        Ok(config)
    }
}
