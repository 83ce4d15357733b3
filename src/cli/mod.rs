//! Layer 4: the command line. Parses arguments, opens the repository, calls operations and
//! renders their results (tables and progress bars on stderr for people, JSON on stdout for
//! scripts). The only layer that prints.

pub(crate) mod args;
pub(crate) mod commands;
#[cfg(test)]
mod docs_examples;
pub(crate) mod exit;
pub(crate) mod mount;
pub(crate) mod output;
pub(crate) mod password;
pub(crate) mod profile;
pub(crate) mod progress;
pub(crate) mod restic_flags;
pub(crate) mod setup_args;

pub(crate) use exit::ExitCode;
