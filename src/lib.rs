pub mod format;
pub mod repo;
