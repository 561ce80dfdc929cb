//! Registry values as both databases store them: times as Unix seconds, identifiers as
//! text, revocation reasons as words.

use time::OffsetDateTime;
use ztgw_pki::CrlReason;

use super::RegistryError;

pub(crate) fn reason_str(r: CrlReason) -> &'static str {
    match r {
        CrlReason::KeyCompromise => "key-compromise",
        CrlReason::AffiliationChanged => "affiliation-changed",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessation-of-operation",
        CrlReason::Unspecified => "unspecified",
    }
}

pub(crate) fn parse_reason(s: &str) -> Result<CrlReason, RegistryError> {
    Ok(match s {
        "key-compromise" => CrlReason::KeyCompromise,
        "affiliation-changed" => CrlReason::AffiliationChanged,
        "superseded" => CrlReason::Superseded,
        "cessation-of-operation" => CrlReason::CessationOfOperation,
        "unspecified" => CrlReason::Unspecified,
        other => {
            return Err(RegistryError::Corrupt(format!(
                "revocation reason {other:?}"
            )));
        }
    })
}

pub(crate) fn parse_id<T: std::str::FromStr>(s: String) -> Result<T, RegistryError> {
    s.parse()
        .map_err(|_| RegistryError::Corrupt(format!("identifier {s:?}")))
}

pub(crate) fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(crate) fn from_ts(v: i64) -> Result<OffsetDateTime, RegistryError> {
    OffsetDateTime::from_unix_timestamp(v)
        .map_err(|_| RegistryError::Corrupt(format!("timestamp {v}")))
}
