pub mod format;
pub mod repo;
pub mod ops;
pub mod cli;
