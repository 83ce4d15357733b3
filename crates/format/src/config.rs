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
pub struct Config {
    pub version: u32,
    /// Random repository id: names the local cache, never secret.
    pub id: Id,
    pub chunker: ChunkerParams,
    /// Target size of a data pack in bytes.
    pub data_pack_size: u32,
    /// Target size of a tree pack in bytes.
    pub tree_pack_size: u32,
    pub compression: Compression,
    pub padding: Padding,
}

impl Config {
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

    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, getrandom::Error> {
        file::seal_json(keys, file::CONFIG, self, Compression::Off)
    }

    pub fn to_json(&self) -> Vec<u8> {
        file::to_json(self)
    }

    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<Config> {
        let config: Config = file::open_json(keys, file::CONFIG, bytes)?;
        config.validate()?;
        Ok(config)
    }
}
