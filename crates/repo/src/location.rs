//! Where a repository lives, parsed from a repository string, and the options that
//! configure the backend (`-o key=value` and the environment).

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
/// Where a repository lives, as given on the command line.
pub enum Location {
    /// A directory on a local file system.
    Local(PathBuf),
    /// `sftp://[user@]host[:port]/path`
    Sftp {
        /// User to log in as (else the current user).
        user: Option<String>,
        /// Server host name or address.
        host: String,
        /// Server port.
        port: u16,
        /// Repository path on the server.
        path: String,
    },
    /// `s3://bucket[/prefix]`
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket (may be empty).
        prefix: String,
    },
    /// `webdav:http[s]://[user@]host[:port]/path`
    WebDav {
        /// `http://host:port` or `https://host:port`.
        endpoint: String,
        /// User for Basic authentication (else `VAULT_WEBDAV_USER`).
        user: Option<String>,
        /// Repository path on the server.
        path: String,
    },
    /// `azure:container[/prefix]` (Azure Blob Storage)
    Azure {
        /// Container name (the container must exist).
        container: String,
        /// Blob name prefix inside the container (may be empty).
        prefix: String,
    },
    /// Process memory (tests only); the name keeps distinct repositories apart in output.
    Memory(String),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid repository {input:?}: {reason}")]
pub struct LocationError {
    pub input: String,
    pub reason: String,
}

impl Location {
    /// Parses a path, `sftp://…`, `s3://…`, `webdav:…`, `azure:…` or `memory:…` location.
    pub fn parse(s: &str) -> Result<Location, LocationError> {
        let err = |reason: &str| LocationError { input: without_password(s), reason: reason.to_string() };
        if s.is_empty() {
            return Err(err("empty repository string"));
        }
        if let Some(rest) = s.strip_prefix("local:") {
            if rest.is_empty() {
                return Err(err("local: needs a path"));
            }
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("memory:") {
            return Ok(Location::Memory(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("sftp://") {
            let (authority, path) =
                rest.split_once('/').ok_or_else(|| err("expected sftp://[user@]host[:port]/path"))?;
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
                Some(_) => return Err(err("empty user name before '@'")),
                None => (None, authority),
            };
            let (host, port) = split_host_port(hostport).ok_or_else(|| err("bad host or port"))?;
            let path = format!("/{}", path.trim_end_matches('/'));
            if path == "/" {
                return Err(err("the path must not be the server's root directory"));
            }
            return Ok(Location::Sftp { user, host, port, path });
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
            if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
                return Err(err("bucket names have 3 to 63 characters: a-z, 0-9, '-' and '.'"));
            }
            return Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() });
        }
        if let Some(rest) = s.strip_prefix("webdav:") {
            return parse_webdav(rest).map_err(|reason| err(&reason));
        }
        if let Some(rest) = s.strip_prefix("azure:") {
            let (container, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            // Azure's rule: 3 to 63 characters, lower-case letters, digits and single
            // hyphens, starting and ending with a letter or digit.
            let valid = container.len() >= 3
                && container.len() <= 63
                && container.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !container.starts_with('-')
                && !container.ends_with('-')
                && !container.contains("--");
            if !valid {
                return Err(err("container names have 3 to 63 characters: a-z, 0-9 and single '-' inside"));
            }
            return Ok(Location::Azure {
                container: container.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(err(&format!(
                "unsupported scheme {scheme:?} (supported: a local path, local:PATH, sftp://, s3://, webdav:http[s]://, azure:)"
            )));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }
}

/// The repository string with a password in its user part (`scheme://user:password@…`)
/// replaced, so that an error message can show the rest.
fn without_password(s: &str) -> String {
    let Some((scheme, after)) = s.split_once("://") else { return s.to_string() };
    let authority_end = after.find('/').unwrap_or(after.len());
    match after[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &after[userinfo.len() + 1..])
        }
        _ => s.to_string(),
    }
}

fn parse_webdav(rest: &str) -> Result<Location, String> {
    let usage = || "expected webdav:http[s]://[user@]host[:port]/path".to_string();
    let (scheme, after) = rest.split_once("://").ok_or_else(usage)?;
    if scheme != "http" && scheme != "https" {
        return Err(usage());
    }
    let (authority, path) = after.split_once('/').unwrap_or((after, ""));
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, _)) if u.contains(':') => {
            // A password in the repository string would show in process lists and logs.
            return Err("put the WebDAV password in VAULT_WEBDAV_PASSWORD, not in the repository string".into());
        }
        Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
        Some(_) => return Err("empty user name before '@'".into()),
        None => (None, authority),
    };
    let host_ok = !hostport.is_empty()
        && hostport.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        && hostport
            .rsplit_once(':')
            .is_none_or(|(_, p)| hostport.ends_with(']') || p.parse::<u16>().is_ok_and(|p| p != 0));
    if !host_ok {
        return Err("bad host or port".into());
    }
    let path = format!("/{}", path.trim_matches('/'));
    if path == "/" {
        return Err("the path must not be the server's root (give a directory for the repository)".into());
    }
    Ok(Location::WebDav { endpoint: format!("{scheme}://{hostport}"), user, path })
}

/// The storage services this build reaches (cargo features decide WebDAV and Azure).
pub fn storage_services() -> Vec<&'static str> {
    let mut services = vec!["local", "sftp", "s3"];
    if cfg!(feature = "webdav") {
        services.push("webdav");
    }
    if cfg!(feature = "azure") {
        services.push("azure");
    }
    services
}

fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok().filter(|p| *p != 0)?,
        None => 22,
    };
    Some((host.to_string(), port))
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "local:{}", p.display()),
            Location::Sftp { user, host, port, path } => {
                let user = user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
                write!(f, "sftp://{user}{host}:{port}{path}")
            }
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Location::WebDav { endpoint, user, path } => {
                let (scheme, hostport) = endpoint.split_once("://").unwrap_or(("https", endpoint));
                let user = user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
                write!(f, "webdav:{scheme}://{user}{hostport}{path}")
            }
            Location::Azure { container, prefix } if prefix.is_empty() => write!(f, "azure:{container}"),
            Location::Azure { container, prefix } => write!(f, "azure:{container}/{prefix}"),
            Location::Memory(n) => write!(f, "memory:{n}"),
        }
    }
}

/// How strictly SFTP checks the server's host key against `~/.ssh/known_hosts`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KnownHosts {
    #[default]
    /// Refuse unknown and changed host keys.
    Strict,
    /// Accept and remember an unknown host key; refuse a changed one.
    AcceptNew,
    /// Accept any host key (tests only: anyone on the path can pose as the server).
    Accept,
}

/// Backend settings from `-o key=value` options, falling back to the environment.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BackendOptions {
    /// S3 endpoint URL (`-o s3.endpoint=`, else `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`).
    pub s3_endpoint: Option<String>,
    /// S3 region (`-o s3.region=`, else `AWS_DEFAULT_REGION` or `AWS_REGION`).
    pub s3_region: Option<String>,
    /// S3 access key id (`AWS_ACCESS_KEY_ID`).
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (`AWS_SECRET_ACCESS_KEY`); never printed.
    pub s3_secret_access_key: Option<String>,
    /// S3 session token (`AWS_SESSION_TOKEN`); never printed.
    pub s3_session_token: Option<String>,
    /// WebDAV user, when the repository string names none (`VAULT_WEBDAV_USER`).
    pub webdav_user: Option<String>,
    /// WebDAV password (`VAULT_WEBDAV_PASSWORD`); never printed.
    pub webdav_password: Option<String>,
    /// Azure Blob endpoint (`-o azure.endpoint=`, else `AZURE_ENDPOINT`, else
    /// `https://ACCOUNT.blob.` + `AZURE_ENDPOINT_SUFFIX` or `core.windows.net`).
    pub azure_endpoint: Option<String>,
    /// Azure storage account (`AZURE_ACCOUNT_NAME`).
    pub azure_account: Option<String>,
    /// Azure account key (`AZURE_ACCOUNT_KEY`); never printed.
    pub azure_key: Option<String>,
    /// Azure shared access signature (`AZURE_ACCOUNT_SAS`); never printed.
    pub azure_sas: Option<String>,
    /// SSH private key file for SFTP (`-o sftp.key=`).
    pub sftp_key: Option<PathBuf>,
    /// How SFTP checks the server's host key (`-o sftp.known-hosts=`).
    pub sftp_known_hosts: KnownHosts,
    /// Per-request timeout in seconds (default 15); with retries, an unreachable server
    /// fails in well under a minute.
    pub timeout_secs: Option<u64>,
    /// Packs uploaded at once (`-o upload-threads=N`, default 3): fewer on a slow link,
    /// more on a distant one.
    pub upload_threads: Option<usize>,
    /// Ranges a restore reads at once (`-o download-threads=N`; the default depends on
    /// the storage, see [`crate::Backend::download_threads`]).
    pub download_threads: Option<usize>,
    /// Upload limit in bytes per second (`--limit-upload`).
    pub limit_upload: Option<u64>,
    /// Download limit in bytes per second (`--limit-download`).
    pub limit_download: Option<u64>,
    /// Storage faults to inject (`VAULT_DEBUG_FAULTS=RATE[:SEED]`), for tests only.
    pub debug_faults: Option<crate::faults::FaultSpec>,
}

impl fmt::Debug for BackendOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendOptions")
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field("s3_secret_access_key", &self.s3_secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("s3_session_token", &self.s3_session_token.as_ref().map(|_| "<redacted>"))
            .field("webdav_user", &self.webdav_user)
            .field("webdav_password", &self.webdav_password.as_ref().map(|_| "<redacted>"))
            .field("azure_endpoint", &self.azure_endpoint)
            .field("azure_account", &self.azure_account)
            .field("azure_key", &self.azure_key.as_ref().map(|_| "<redacted>"))
            .field("azure_sas", &self.azure_sas.as_ref().map(|_| "<redacted>"))
            .field("sftp_key", &self.sftp_key)
            .field("sftp_known_hosts", &self.sftp_known_hosts)
            .field("timeout_secs", &self.timeout_secs)
            .field("debug_faults", &self.debug_faults)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid option {option:?}: {reason}")]
/// A `-o key=value` (or an environment setting) vault cannot use.
pub struct OptionError {
    /// The option as given (only its key, when the key is unknown: the value may be secret).
    pub option: String,
    /// What is wrong with it.
    pub reason: String,
}

impl BackendOptions {
    /// Options given as `key=value`, then the usual environment variables for what is unset.
    pub fn from_args_and_env(
        args: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BackendOptions, OptionError> {
        let mut o = BackendOptions::default();
        for a in args {
            let bad = |reason: &str| OptionError { option: a.clone(), reason: reason.to_string() };
            let (k, v) = a.split_once('=').ok_or_else(|| bad("expected key=value"))?;
            match k {
                "s3.endpoint" => o.s3_endpoint = Some(v.to_string()),
                "s3.region" => o.s3_region = Some(v.to_string()),
                "azure.endpoint" => o.azure_endpoint = Some(v.to_string()),
                "sftp.key" => o.sftp_key = Some(PathBuf::from(v)),
                "sftp.known-hosts" => {
                    o.sftp_known_hosts = match v {
                        "strict" => KnownHosts::Strict,
                        "accept-new" => KnownHosts::AcceptNew,
                        "accept" => KnownHosts::Accept,
                        _ => return Err(bad("expected strict, accept-new or accept")),
                    }
                }
                "upload-threads" => {
                    o.upload_threads = Some(
                        v.parse()
                            .ok()
                            .filter(|n| (1..=32).contains(n))
                            .ok_or_else(|| bad("expected 1 to 32 threads"))?,
                    )
                }
                "download-threads" => {
                    o.download_threads = Some(
                        v.parse()
                            .ok()
                            .filter(|n| (1..=64).contains(n))
                            .ok_or_else(|| bad("expected 1 to 64 threads"))?,
                    )
                }
                "timeout" => {
                    o.timeout_secs =
                        Some(v.parse().ok().filter(|s| *s > 0).ok_or_else(|| bad("expected a number of seconds"))?)
                }
                // Named without its value: an unknown option may carry a secret.
                _ => {
                    return Err(OptionError {
                        option: k.to_string(),
                        reason:
                            "unknown option (known: s3.endpoint, s3.region, azure.endpoint, sftp.key, sftp.known-hosts, timeout, upload-threads, download-threads)"
                                .into(),
                    });
                }
            }
        }
        let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
        o.s3_endpoint =
            o.s3_endpoint.or_else(|| nonempty("AWS_ENDPOINT_URL_S3")).or_else(|| nonempty("AWS_ENDPOINT_URL"));
        o.s3_region = o.s3_region.or_else(|| nonempty("AWS_DEFAULT_REGION")).or_else(|| nonempty("AWS_REGION"));
        o.s3_access_key_id = nonempty("AWS_ACCESS_KEY_ID");
        o.s3_secret_access_key = nonempty("AWS_SECRET_ACCESS_KEY");
        o.s3_session_token = nonempty("AWS_SESSION_TOKEN");
        o.webdav_user = nonempty("VAULT_WEBDAV_USER");
        o.webdav_password = nonempty("VAULT_WEBDAV_PASSWORD");
        o.azure_account = nonempty("AZURE_ACCOUNT_NAME");
        o.azure_key = nonempty("AZURE_ACCOUNT_KEY");
        o.azure_sas = nonempty("AZURE_ACCOUNT_SAS");
        o.azure_endpoint = o.azure_endpoint.or_else(|| nonempty("AZURE_ENDPOINT")).or_else(|| {
            let account = o.azure_account.as_ref()?;
            let suffix = nonempty("AZURE_ENDPOINT_SUFFIX").unwrap_or_else(|| "core.windows.net".into());
            Some(format!("https://{account}.blob.{suffix}"))
        });
        if let Some(f) = nonempty("VAULT_DEBUG_FAULTS") {
            o.debug_faults = Some(crate::faults::FaultSpec::parse(&f).ok_or_else(|| OptionError {
                option: format!("VAULT_DEBUG_FAULTS={f}"),
                reason: "expected RATE or RATE:SEED, the rate between 0 and 0.5".into(),
            })?);
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(Location::parse("/a/b").unwrap(), Location::Local("/a/b".into()));
        assert_eq!(Location::parse("local:rel").unwrap(), Location::Local("rel".into()));
        assert_eq!(
            Location::parse("sftp://me@host:2222/srv/repo/").unwrap(),
            Location::Sftp { user: Some("me".into()), host: "host".into(), port: 2222, path: "/srv/repo".into() }
        );
        assert_eq!(
            Location::parse("sftp://[::1]/r").unwrap(),
            Location::Sftp { user: None, host: "::1".into(), port: 22, path: "/r".into() }
        );
        assert_eq!(
            Location::parse("s3://bucket/a/b/").unwrap(),
            Location::S3 { bucket: "bucket".into(), prefix: "a/b".into() }
        );
        assert_eq!(Location::parse("s3://bucket").unwrap().to_string(), "s3://bucket");
        assert_eq!(
            Location::parse("webdav:https://me@dav.example.org:8443/backups/repo/").unwrap(),
            Location::WebDav {
                endpoint: "https://dav.example.org:8443".into(),
                user: Some("me".into()),
                path: "/backups/repo".into()
            }
        );
        assert_eq!(Location::parse("webdav:http://[::1]:8080/r").unwrap().to_string(), "webdav:http://[::1]:8080/r");
        assert_eq!(
            Location::parse("azure:backups/host1/").unwrap(),
            Location::Azure { container: "backups".into(), prefix: "host1".into() }
        );
        assert_eq!(Location::parse("azure:backups").unwrap().to_string(), "azure:backups");
        let e = Location::parse("webdav:https://u:hunter2@h/x").unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("u:***@h/x") && e.contains("VAULT_WEBDAV_PASSWORD"), "{e}");
        for bad in [
            "",
            "ftp://x",
            "sftp://host",
            "sftp://host:99999/x",
            "sftp://@h/x",
            "sftp://h/",
            "s3://",
            "s3://Bad_Bucket",
            "local:",
            "webdav:ftp://h/x",
            "webdav:https://h",
            "webdav:https://h/",
            "webdav:https://u:secret@h/x",
            "webdav:https://h:0/x",
            "webdav:https://h x/y",
            "azure:ab",
            "azure:Upper",
            "azure:-abc",
            "azure:a--b",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options() {
        let env = |k: &str| match k {
            "AWS_REGION" => Some("eu".to_string()),
            "AWS_ENDPOINT_URL" => Some("http://e".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("hunter2-value".to_string()),
            _ => None,
        };
        let o = BackendOptions::from_args_and_env(&["s3.region=garage".into(), "sftp.known-hosts=accept".into()], &env)
            .unwrap();
        assert_eq!(o.s3_region.as_deref(), Some("garage"));
        assert_eq!(o.s3_endpoint.as_deref(), Some("http://e"));
        assert_eq!(o.sftp_known_hosts, KnownHosts::Accept);
        assert!(!format!("{o:?}").contains("hunter2"));
        assert!(BackendOptions::from_args_and_env(&["nope=1".into()], &env).is_err());
        assert!(BackendOptions::from_args_and_env(&["s3.region".into()], &env).is_err());
    }
}
