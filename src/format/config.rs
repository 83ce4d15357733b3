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
        file::seal(keys, file::CONFIG, &self.to_json(), Compression::Off)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("config serialises")
    }

    pub fn decode(keys: &Keys, bytes: &[u8]) -> Result<Config> {
        let plain = file::open(keys, file::CONFIG, bytes)?;
        let config: Config =
            serde_json::from_slice(&plain).map_err(|e| FormatError::invalid("config", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}
