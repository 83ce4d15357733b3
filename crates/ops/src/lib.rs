#![deny(missing_docs)]
//! Layer 3: operations. They return data and report progress through [`Progress`]; they
//! never print. Depends on `repo` and `format`.

pub mod backup;
pub mod browse;
pub mod cat;
pub mod check;
pub(crate) mod commit;
pub mod copy;
pub mod diff;
pub mod dump;
pub(crate) mod error;
pub mod find;
pub mod forget;
pub mod fsmeta;
pub mod ls;
pub mod pattern;
pub(crate) mod progress;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rewrite;
pub mod rollback;
pub mod select;
pub mod source;
pub mod stats;
pub mod time;
pub(crate) mod walk;

#[cfg(test)]
mod tests;

pub use error::OpError;
pub use progress::{FileStatus, NoProgress, Progress};
