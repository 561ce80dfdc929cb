//! A posture profile (`[posture.NAME]` in the policy): the device state a role requires.
//! Every check is on unless the profile turns it off; unknown facts fail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Offensive tools refused unless the security unit edits the list (G6).
pub const DEFAULT_FORBIDDEN: &[&str] = &[
    "nmap",
    "masscan",
    "hydra",
    "john",
    "hashcat",
    "aircrack-ng",
    "metasploit-framework",
    "msfconsole",
    "sqlmap",
    "wireshark",
    "tshark",
    "ettercap",
    "nikto",
    "responder",
    "mimikatz",
];

/// An operating system the profile accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedOs {
    /// os-release `ID` (`debian`, `ubuntu`, `fedora`) or `windows`, `macos`.
    pub id: String,
    pub min_version: Option<String>,
}

/// A file whose presence means administration data is stored on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    pub name: String,
    /// Relative to each home directory, or absolute.
    pub path: String,
}

/// A checked profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// A report older than this is refused (seconds).
    #[serde(with = "duration")]
    pub max_report_age: u64,
    /// Empty: any operating system the collector recognises.
    pub os: Vec<AllowedOs>,
    pub max_days_since_update: Option<u32>,
    pub antivirus_required: bool,
    pub antivirus_running: bool,
    #[serde(with = "duration")]
    pub max_signature_age: u64,
    pub firewall_required: bool,
    pub disk_encryption_required: bool,
    pub screen_lock_required: bool,
    #[serde(with = "duration")]
    pub max_idle_delay: u64,
    /// Browser name → minimum version (dpkg ordering).
    pub min_browser_versions: BTreeMap<String, String>,
    pub forbidden_software: Vec<String>,
    pub required_software: Vec<String>,
    pub forbidden_data_markers: Vec<Marker>,
    pub removable_storage_blocked: bool,
    /// Refuse open and WEP Wi-Fi (G7); unknown also fails while this is on.
    pub open_wifi_forbidden: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            max_report_age: 600,
            os: Vec::new(),
            max_days_since_update: Some(30),
            antivirus_required: true,
            antivirus_running: true,
            max_signature_age: 7 * 86_400,
            firewall_required: true,
            disk_encryption_required: true,
            screen_lock_required: true,
            max_idle_delay: 900,
            min_browser_versions: BTreeMap::new(),
            forbidden_software: DEFAULT_FORBIDDEN.iter().map(|s| (*s).to_owned()).collect(),
            required_software: Vec::new(),
            forbidden_data_markers: Vec::new(),
            removable_storage_blocked: false,
            open_wifi_forbidden: true,
        }
    }
}

impl Profile {
    /// Reads a `[posture.NAME]` table.
    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        toml::Value::Table(table.clone())
            .try_into::<Self>()
            .map_err(|e| e.message().trim_end().to_owned())
    }
}

/// Durations written `10m`, `7d` in the policy, seconds in JSON.
mod duration {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Secs(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Secs(n) => Ok(n),
            Either::Text(t) => parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!("{t:?} is not a duration like 10m, 7d"))
            }),
        }
    }

    fn parse(s: &str) -> Option<u64> {
        let mut total = 0u64;
        let mut n = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                n.push(c);
                continue;
            }
            let unit = match c {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return None,
            };
            total = total.checked_add(n.parse::<u64>().ok()?.checked_mul(unit)?)?;
            n.clear();
        }
        (n.is_empty() && total > 0).then_some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_strict_and_tables_override_them() {
        let p = Profile::from_table(&toml::Table::new()).expect("empty");
        assert!(p.antivirus_required && p.firewall_required && p.disk_encryption_required);
        assert!(p.forbidden_software.iter().any(|s| s == "nmap"));
        let t: toml::Table = toml::from_str(
            "max_report_age = \"5m\"\nantivirus_required = false\nforbidden_software = [\"nmap\"]\nmin_browser_versions = { firefox-esr = \"115.0\" }\n",
        )
        .expect("toml");
        let p = Profile::from_table(&t).expect("profile");
        assert_eq!(p.max_report_age, 300);
        assert!(!p.antivirus_required);
        assert_eq!(p.forbidden_software, vec!["nmap"]);
        let bad: toml::Table = toml::from_str("antivirus = true\n").expect("toml");
        assert!(
            Profile::from_table(&bad)
                .expect_err("unknown field")
                .contains("unknown field `antivirus`")
        );
        let bad: toml::Table = toml::from_str("max_report_age = \"soon\"\n").expect("toml");
        assert!(Profile::from_table(&bad).is_err());
    }
}
