//! Microsoft Defender for Endpoint on Linux, from `mdatp health`: `key : value` lines
//! (`healthy`, `real_time_protection_enabled`, `definitions_version`,
//! `definitions_updated`, written like `Nov 28, 2026 at 09:41:12 AM`, the machine's local
//! time: read as UTC, close enough for a signature age counted in days).

use crate::report::Antivirus;

/// Where the package installs its command.
pub const COMMAND: &str = "/opt/microsoft/mdatp/sbin/wdavdaemonclient";
/// The command as the package links it.
pub const MDATP: &str = "/usr/bin/mdatp";

/// The product as `mdatp health` reports it.
pub fn parse_health(text: &str) -> Result<Antivirus, String> {
    let field = |key: &str| {
        text.lines().take(1000).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
        })
    };
    let healthy = field("healthy").ok_or("no `healthy` field: not mdatp's health report")?;
    let realtime = field("real_time_protection_enabled");
    let passive = field("passive_mode_enabled");
    let time = field("definitions_updated").and_then(|d| {
        jiff::civil::DateTime::strptime("%b %d, %Y at %I:%M:%S %p", &d)
            .ok()
            .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt).ok())
            .map(|t| t.to_string())
    });
    Ok(Antivirus {
        product: "Microsoft Defender for Endpoint".into(),
        // Protecting: healthy, scanning in real time, and not in passive mode (where
        // another product is expected to protect).
        running: healthy == "true"
            && realtime.as_deref() == Some("true")
            && passive.as_deref() != Some("true"),
        signatures_version: field("definitions_version").filter(|v| !v.is_empty()),
        signatures_time: time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTH: &str = include_str!("../../tests/fixtures/mdatp/health.txt");

    #[test]
    fn a_healthy_defender() {
        let av = parse_health(HEALTH).expect("parses");
        assert!(av.running);
        assert_eq!(av.signatures_version.as_deref(), Some("1.421.118.0"));
        assert_eq!(av.signatures_time.as_deref(), Some("2026-11-28T09:41:12Z"));
        let off = HEALTH.replace(
            "real_time_protection_enabled                : true",
            "real_time_protection_enabled                : false",
        );
        assert!(!parse_health(&off).expect("parses").running);
        let passive = HEALTH.replace(
            "passive_mode_enabled                        : false",
            "passive_mode_enabled                        : true",
        );
        assert!(!parse_health(&passive).expect("parses").running);
    }

    #[test]
    fn anything_else_is_an_error_or_unknown_parts() {
        assert!(parse_health("").is_err());
        assert!(parse_health("\u{0}\u{1}garbage").is_err());
        let av = parse_health("healthy : true\ndefinitions_updated : yesterday\n").expect("parses");
        assert!(!av.running && av.signatures_time.is_none());
    }
}
