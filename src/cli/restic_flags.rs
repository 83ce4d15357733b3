//! Flags that restic users type and vault does not have. clap would suggest the nearest
//! vault flag by spelling ("a similar argument exists"), which for these is misleading:
//! say instead what vault does in their place.

/// What vault offers instead of the restic flag `flag` (given without its value), if it is
/// one vault lacks on purpose or for now.
pub(crate) fn instead_of(flag: &str) -> Option<&'static str> {
    let name = flag.split('=').next().unwrap_or(flag);
    Some(match name {
        "--no-lock" | "--retry-lock" => "vault takes no locks: every command is safe beside every other",
        "--verbose" | "-v" | "-vv" => {
            "vault lists files as it backs them up with `backup -v`; other commands report in full unless --quiet"
        }
        "--insecure-no-password" => "every vault repository is encrypted: it needs a password",
        "--pack-size" => "pack sizes are part of the repository's config, chosen by `vault init`",
        "--cacert" | "--tls-client-cert" | "--insecure-tls" => {
            "vault's S3 client uses the system's certificates; set the endpoint with -o s3.endpoint=URL"
        }
        "--no-scan" => "vault counts the sources only when it shows a progress bar (--quiet skips the count)",
        "--read-concurrency" => "vault reads files with a fixed number of threads",
        "--ignore-inode" | "--ignore-ctime" => {
            "vault judges unchanged files by device, inode, size and times; --force reads every file"
        }
        "--with-atime" => "vault does not record access times",
        "--use-fs-snapshot" => "file system snapshots (VSS) are a Windows feature; vault runs on Unix",
        "--key-hint" => "vault tries first the key file that opened the repository last time",
        "--no-extra-verify" => "vault always verifies what it stores",
        "--repository-file" => "give the repository with -r or VAULT_REPOSITORY",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_and_unknown_flags() {
        assert!(super::instead_of("--no-lock").is_some());
        assert!(super::instead_of("--no-lock=true").is_some());
        assert!(super::instead_of("--no-such-flag").is_none());
    }
}
