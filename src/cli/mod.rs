//! Layer 4: the command line. Parses arguments, opens the repository, calls operations and
//! renders their results (tables and progress bars on stderr for people, JSON on stdout for
//! scripts). The only layer that prints.

pub mod args;
pub mod commands;
pub mod exit;
pub mod mount;
pub mod output;
pub mod password;
pub mod progress;

pub use exit::ExitCode;
