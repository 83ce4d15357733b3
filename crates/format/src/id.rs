//! 256-bit identifiers. Each kind of stored thing gets its own type so that a pack id can
//! never be passed where a blob id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::FormatError;

/// A raw 32-byte identifier, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The name of a stored file: unkeyed BLAKE3-256 of its bytes, so `b3sum` can verify it.
    pub fn of_stored_bytes(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// [`Id::of_stored_bytes`] of the concatenation of `parts`.
    pub fn of_stored_parts(parts: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Id {
        let mut h = blake3::Hasher::new();
        for p in parts {
            h.update(p.as_ref());
        }
        Id(*h.finalize().as_bytes())
    }

    /// All 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, as shown in listings.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// An id from exactly 32 bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Id> {
        bytes.try_into().ok().map(Id)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

impl FromStr for Id {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Id, FormatError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| FormatError::invalid("id", format!("{s:?}: {e}")))?;
        Ok(Id(out))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Id);

        impl $name {
            /// All 64 hex digits.
            pub fn to_hex(&self) -> String { self.0.to_hex() }
            /// The first 8 hex digits, for display.
            pub fn short(&self) -> String { self.0.short() }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { fmt::Display::fmt(&self.0, f) }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.short())
            }
        }
        impl FromStr for $name {
            type Err = FormatError;
            fn from_str(s: &str) -> Result<Self, FormatError> { Ok($name(s.parse()?)) }
        }
    };
}

typed_id!(
    /// Keyed BLAKE3-256 of a blob's plaintext.
    BlobId
);
typed_id!(
    /// Name of a pack file (hash of its stored bytes).
    PackId
);
typed_id!(
    /// Name of an index file (hash of its stored bytes).
    IndexId
);
typed_id!(
    /// Name of a snapshot file (hash of its stored bytes).
    SnapshotId
);
typed_id!(
    /// Name of a key file (hash of its stored bytes).
    KeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = Id::of_stored_bytes(b"abc");
        let parsed: Id = id.to_hex().parse().unwrap();
        assert_eq!(id, parsed);
        assert_eq!(id.short().len(), 8);
        assert!("zz".parse::<Id>().is_err());
    }
}
