#![deny(missing_docs)]
//! Layer 2: the repository. Storage access (through OpenDAL), keys, config, the in-memory
//! index and the pack writer. Depends only on `format`.

pub mod access;
pub mod backend;
pub mod cache;
pub mod epochs;
pub mod error;
pub mod faults;
pub mod fuzzing;
pub mod indexed;
pub(crate) mod key_files;
pub(crate) mod location;
pub(crate) mod master_index;
pub(crate) mod object;
pub(crate) mod object_bytes;
pub(crate) mod pacer;
pub(crate) mod pack_reads;
pub(crate) mod pack_writer;
pub(crate) mod private_dir;
pub mod repository;
pub mod state;
pub mod writers;

pub use backend::Backend;
pub use error::RepoError;
pub use indexed::IndexedRepository;
pub use key_files::{KdfLimit, KeyInfo, OpenOptions};
pub use location::{BackendOptions, KnownHosts, Location, OptionError, storage_services};
pub use master_index::{BlobLocation, MasterIndex};
pub use object::{Damaged, StoredKind, StoredObject};
pub use object_bytes::ObjectBytes;
pub use pack_reads::READ_ALIGN;
pub use pack_writer::{PackWriter, WriterStats};
pub use repository::{InitOptions, Repository, StoredPack};
pub use writers::{Announced, Writer, WriterStatus, announce};
