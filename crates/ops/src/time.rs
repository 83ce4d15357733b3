//! How vault writes times for people's scripts: RFC 3339 in UTC (`Z`), with as many
//! fractional digits as the time has (none, milli, micro or nano).

use chrono::{DateTime, SecondsFormat, Utc};

use vault_format::tree::Timestamp;

/// `t` as RFC 3339 with its zone (`Z`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A node's recorded time as RFC 3339 (times outside chrono's range show as the epoch).
pub fn timestamp(t: Timestamp) -> String {
    rfc3339(DateTime::from_timestamp(t.sec, t.nsec).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_keep_their_precision_and_zone() {
        let t = vault_format::tree::Timestamp { sec: 1_700_000_000, nsec: 5 };
        assert_eq!(super::timestamp(t), "2023-11-14T22:13:20.000000005Z");
        let t = vault_format::tree::Timestamp { sec: 1_700_000_000, nsec: 0 };
        assert_eq!(super::timestamp(t), "2023-11-14T22:13:20Z");
    }
}
