//! The posture report: what a device says about itself, neutral across operating systems.
//!
//! Every fact says how it was determined, or that it is unknown and why. Unknown never
//! counts as compliant. [`PostureReport::parse`] bounds the size of everything an agent
//! sends before the gateway looks at it.

use serde::{Deserialize, Serialize};

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
/// Largest report accepted, in bytes of JSON.
pub const MAX_REPORT_BYTES: usize = 256 * 1024;
/// Longest list of installed software accepted.
pub const MAX_SOFTWARE: usize = 20_000;
/// Longest of the other lists (antivirus, volumes, browsers, tools, markers).
pub const MAX_LIST: usize = 256;
/// Longest string in a report.
pub const MAX_STRING: usize = 512;

/// A fact and how it was found, or why it is not known. In JSON an object with a
/// `status` (`known` or `unknown`) beside the variant's fields; read in one pass (see the
/// `Deserialize` impl below), whatever the order of its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Fact<T> {
    Known { value: T, source: String },
    Unknown { reason: String },
}

impl<T> Fact<T> {
    pub fn known(value: T, source: impl Into<String>) -> Self {
        Self::Known {
            value,
            source: source.into(),
        }
    }

    pub fn unknown(reason: impl Into<String>) -> Self {
        Self::Unknown {
            reason: reason.into(),
        }
    }

    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Known { value, .. } => Some(value),
            Self::Unknown { .. } => None,
        }
    }
}

/// serde's derive for an internally tagged enum first copies the whole object into a
/// buffer of its own (every string of a 2,000-package list allocated twice) before it
/// knows the variant. Only `Known` has a `value`, so it is read as `T` where it stands,
/// before or after `status`: one pass, no copy. Unknown keys are ignored, as the derive
/// did; a key given twice is refused.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Fact<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FactVisitor(std::marker::PhantomData))
    }
}

struct FactVisitor<T>(std::marker::PhantomData<T>);

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FactStatus {
    Known,
    Unknown,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "kebab-case")]
enum FactKey {
    Status,
    Value,
    Source,
    Reason,
    #[serde(other)]
    Other,
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for FactVisitor<T> {
    type Value = Fact<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a fact: {\"status\": \"known\", \"value\", \"source\"} or {\"status\": \"unknown\", \"reason\"}")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fact<T>, A::Error> {
        use serde::de::Error;
        fn once<V, E: Error>(slot: &mut Option<V>, v: V, key: &'static str) -> Result<(), E> {
            if slot.replace(v).is_some() {
                return Err(E::duplicate_field(key));
            }
            Ok(())
        }
        let (mut status, mut value, mut source, mut reason) = (None, None, None, None);
        while let Some(key) = map.next_key::<FactKey>()? {
            match key {
                FactKey::Status => once(&mut status, map.next_value::<FactStatus>()?, "status")?,
                FactKey::Value => once(&mut value, map.next_value::<T>()?, "value")?,
                FactKey::Source => once(&mut source, map.next_value::<String>()?, "source")?,
                FactKey::Reason => once(&mut reason, map.next_value::<String>()?, "reason")?,
                FactKey::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        match status.ok_or_else(|| A::Error::missing_field("status"))? {
            FactStatus::Known => Ok(Fact::Known {
                value: value.ok_or_else(|| A::Error::missing_field("value"))?,
                source: source.ok_or_else(|| A::Error::missing_field("source"))?,
            }),
            FactStatus::Unknown => Ok(Fact::Unknown {
                reason: reason.ok_or_else(|| A::Error::missing_field("reason"))?,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OsFamily {
    Linux,
    Windows,
    Macos,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    pub family: OsFamily,
    /// `debian`, `ubuntu`, `fedora`, `windows`, `macos`.
    pub id: String,
    pub name: String,
    pub version: String,
    pub build: Option<String>,
    pub kernel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Antivirus {
    pub product: String,
    pub running: bool,
    pub signatures_version: Option<String>,
    /// RFC 3339.
    pub signatures_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    pub active: bool,
    /// `ufw`, `nftables`, `windows-defender-firewall`…
    pub product: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// `/`, `/home`, `C:`.
    pub mount: String,
    pub encrypted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenLock {
    pub enabled: bool,
    pub idle_delay_secs: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Browser {
    /// `firefox-esr`, `firefox`, `chromium`, `chrome`, `edge`, `safari`.
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemovableStorage {
    Blocked,
    Allowed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WifiSecurity {
    /// Not on Wi-Fi (wired).
    None,
    Open,
    Wep,
    Wpa,
    Wpa2,
    Wpa3,
    Enterprise,
}

impl WifiSecurity {
    /// How well the network protects the device: higher is better; a wired (or offline)
    /// device is not on a Wi-Fi at all, which is best.
    pub fn strength(&self) -> u8 {
        match self {
            Self::Open => 0,
            Self::Wep => 1,
            Self::Wpa => 2,
            Self::Wpa2 => 3,
            Self::Wpa3 => 4,
            Self::Enterprise => 5,
            Self::None => 6,
        }
    }
}

/// A device's posture report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostureReport {
    pub schema_version: u32,
    /// RFC 3339, by the device's clock.
    pub collected_at: String,
    pub agent_version: String,
    /// The gateway's nonce for this report (base64url), so it cannot be replayed.
    pub nonce: String,
    pub os: Fact<OsInfo>,
    /// When the system last updated successfully (RFC 3339).
    pub last_update: Fact<String>,
    pub antivirus: Fact<Vec<Antivirus>>,
    pub firewall: Fact<Firewall>,
    pub volumes: Fact<Vec<Volume>>,
    pub screen_lock: Fact<ScreenLock>,
    /// Installed packages (names and versions), for the software checks.
    pub software: Fact<Vec<Package>>,
    /// Executables found on PATH among those the profile asks about.
    pub tools_on_path: Fact<Vec<String>>,
    pub browsers: Fact<Vec<Browser>>,
    pub removable_storage: Fact<RemovableStorage>,
    pub wifi: Fact<WifiSecurity>,
    /// Administration-data markers found (the profile's names, not the files' paths).
    pub data_markers: Fact<Vec<String>>,
}

/// Why a report is refused before it is evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ReportError {
    /// `report_too_large`, `report_malformed`, `report_version`, `report_list_too_long`.
    pub code: &'static str,
    pub message: String,
}

impl PostureReport {
    /// Parses and bounds a report.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReportError> {
        if bytes.len() > MAX_REPORT_BYTES {
            return Err(ReportError {
                code: "report_too_large",
                message: format!(
                    "the report is {} bytes; at most {MAX_REPORT_BYTES} are accepted",
                    bytes.len()
                ),
            });
        }
        // The version first, alone (the rest of the document skipped, not built), so a
        // report of another schema is named as such rather than as malformed.
        #[derive(Deserialize)]
        struct Versioned {
            #[serde(default)]
            schema_version: Option<serde_json::Value>,
        }
        let versioned: Versioned = serde_json::from_slice(bytes).map_err(|e| ReportError {
            code: "report_malformed",
            message: format!("the report is not JSON: {e}"),
        })?;
        match versioned.schema_version.as_ref().and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(ReportError {
                    code: "report_version",
                    message: format!(
                        "report schema {v} is not supported (this gateway reads {SCHEMA_VERSION})"
                    ),
                });
            }
            None => {
                return Err(ReportError {
                    code: "report_malformed",
                    message: "the report has no schema_version".into(),
                });
            }
        }
        let report: Self = serde_json::from_slice(bytes).map_err(|e| ReportError {
            code: "report_malformed",
            message: format!("the report does not follow the schema: {e}"),
        })?;
        report.check_bounds()?;
        Ok(report)
    }

    fn check_bounds(&self) -> Result<(), ReportError> {
        let long = |what: &str, n: usize, max: usize| -> Result<(), ReportError> {
            if n > max {
                return Err(ReportError {
                    code: "report_list_too_long",
                    message: format!("{what} lists {n} entries; at most {max} are accepted"),
                });
            }
            Ok(())
        };
        if let Some(v) = self.software.value() {
            long("software", v.len(), MAX_SOFTWARE)?;
        }
        if let Some(v) = self.antivirus.value() {
            long("antivirus", v.len(), MAX_LIST)?;
        }
        if let Some(v) = self.volumes.value() {
            long("volumes", v.len(), MAX_LIST)?;
        }
        if let Some(v) = self.browsers.value() {
            long("browsers", v.len(), MAX_LIST)?;
        }
        if let Some(v) = self.tools_on_path.value() {
            long("tools_on_path", v.len(), MAX_LIST)?;
        }
        if let Some(v) = self.data_markers.value() {
            long("data_markers", v.len(), MAX_LIST)?;
        }
        let strings = serde_json::to_value(self).map_err(|e| ReportError {
            code: "report_malformed",
            message: e.to_string(),
        })?;
        if longest_string(&strings) > MAX_STRING {
            return Err(ReportError {
                code: "report_malformed",
                message: format!("a string in the report is longer than {MAX_STRING} characters"),
            });
        }
        Ok(())
    }
}

fn longest_string(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        serde_json::Value::Array(a) => a.iter().map(longest_string).max().unwrap_or(0),
        serde_json::Value::Object(o) => o.values().map(longest_string).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod fact_tests {
    use super::*;

    #[test]
    fn a_fact_reads_in_any_key_order_and_refuses_what_is_wrong() {
        let parse = |json: &str| serde_json::from_str::<Fact<Vec<u32>>>(json);
        let known = Fact::known(vec![1, 2], "dpkg");
        for json in [
            r#"{"status":"known","value":[1,2],"source":"dpkg"}"#,
            r#"{"value":[1,2],"source":"dpkg","status":"known"}"#,
            r#"{"source":"dpkg","extra":{"a":[1]},"value":[1,2],"status":"known"}"#,
        ] {
            assert_eq!(parse(json).expect(json), known, "{json}");
        }
        assert_eq!(
            parse(r#"{"reason":"not read","status":"unknown"}"#).expect("unknown"),
            Fact::unknown("not read")
        );
        for (json, expected) in [
            (r#"{"value":[1],"source":"x"}"#, "missing field `status`"),
            (
                r#"{"status":"known","source":"x"}"#,
                "missing field `value`",
            ),
            (
                r#"{"status":"known","value":[1]}"#,
                "missing field `source`",
            ),
            (r#"{"status":"unknown"}"#, "missing field `reason`"),
            (
                r#"{"status":"maybe","reason":"x"}"#,
                "unknown variant `maybe`",
            ),
            (
                r#"{"status":"known","value":[1],"value":[2],"source":"x"}"#,
                "duplicate field `value`",
            ),
            (
                r#"{"status":"known","value":"no","source":"x"}"#,
                "invalid type",
            ),
            (r#"[]"#, "invalid type"),
        ] {
            let e = parse(json).expect_err(json).to_string();
            assert!(e.contains(expected), "{json}: {e}");
        }
        // What the agent writes reads back the same.
        let json = serde_json::to_string(&known).expect("json");
        assert_eq!(parse(&json).expect("round trip"), known);
    }
}
