#![deny(missing_docs)]
//! Layer 1: the pure on-disk format. No I/O, no clock, no logging.
//!
//! Everything here is specified normatively in `repo-format/SPEC.md`; a change to a byte
//! written by this module ships with its spec text and golden vectors.

pub mod access;
pub(crate) mod aead;
pub mod announcement;
pub mod blob;
pub mod check_record;
pub mod chunker;
pub(crate) mod codec;
pub mod condemnation;
pub mod config;
pub mod crypto;
pub mod epoch;
/// The format layer's error.
pub mod error;
pub mod file;
pub mod fuzzing;
pub(crate) mod id;
pub mod index;
pub mod keyfile;
mod object_kind;
pub mod pack;
pub mod snapshot;
pub mod tombstone;
pub mod tree;
pub mod xorshift;

pub use error::FormatError;
pub use id::{BlobId, Id, IndexId, KeyId, PackId, SnapshotId};

/// The repository format version written by this build. Every stored object carries it.
pub const FORMAT_VERSION: u8 = 1;
