pub mod cli;
pub mod format;
pub mod ops;
pub mod repo;
