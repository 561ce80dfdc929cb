//! Pure parsers of what macOS says about itself, each over one command's raw output
//! (`sw_vers`, `softwareupdate --history`, `socketfilterfw --getglobalstate`, `fdesetup
//! status`, `spctl --status`, `sysadminctl -screenLock status` with the screen saver's
//! idle time, and `system_profiler -json`). None panics: anything unexpected is an error
//! saying what was wrong.

use serde_json::Value;

use crate::report::{
    Antivirus, Browser, Firewall, OsFamily, OsInfo, Package, ScreenLock, Volume, WifiSecurity,
};

/// `sw_vers`: `ProductName`, `ProductVersion`, `BuildVersion`.
pub fn os(text: &str) -> Result<OsInfo, String> {
    let field = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let version = field("ProductVersion").ok_or("no ProductVersion")?;
    if !version.chars().all(|c| c.is_ascii_digit() || c == '.') || version.is_empty() {
        return Err(format!("ProductVersion {version:?} is not a version"));
    }
    let product = field("ProductName").unwrap_or_else(|| "macOS".into());
    Ok(OsInfo {
        family: OsFamily::Macos,
        id: "macos".into(),
        name: format!("{product} {version}"),
        version,
        build: field("BuildVersion"),
        kernel: None,
    })
}

/// One line of `softwareupdate --history`: name, version, date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub at: jiff::Timestamp,
}

/// `softwareupdate --history`: a table whose last column is `MM/DD/YYYY, HH:MM:SS`
/// (the Mac's local time, read as UTC: close enough for ages counted in days).
pub fn history(text: &str) -> Result<Vec<Installed>, String> {
    let mut out = Vec::new();
    for line in text.lines().take(10_000) {
        let line = line.trim_end();
        // The date is the last two whitespace-separated fields: `11/27/2026,` `02:11:04`.
        let mut fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            continue;
        }
        let time = fields.pop().unwrap_or_default();
        let date = fields.pop().unwrap_or_default().trim_end_matches(',');
        let Ok(dt) = jiff::civil::DateTime::strptime("%m/%d/%Y %H:%M:%S", format!("{date} {time}"))
        else {
            continue;
        };
        let Ok(at) = jiff::tz::TimeZone::UTC.to_timestamp(dt) else {
            continue;
        };
        let version = fields.pop().unwrap_or_default().to_owned();
        out.push(Installed {
            name: fields.join(" "),
            version,
            at,
        });
    }
    if out.is_empty() && !text.trim().is_empty() && !text.contains("Display Name") {
        return Err("not softwareupdate's history".into());
    }
    Ok(out)
}

fn is_security_data(name: &str) -> bool {
    ["XProtect", "MRT", "Gatekeeper", "Rapid Security"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The newest system update (not XProtect's or Gatekeeper's data).
pub fn last_update(text: &str) -> Result<String, String> {
    history(text)?
        .into_iter()
        .filter(|i| !is_security_data(&i.name))
        .map(|i| i.at)
        .max()
        .map(|t| t.to_string())
        .ok_or_else(|| "no system update was ever installed".into())
}

/// XProtect, macOS's built-in malware protection: always on while its data is there;
/// its signatures are the newest `XProtectPlistConfigData`/`XProtectPayloads`.
pub fn xprotect(text: &str) -> Result<Vec<Antivirus>, String> {
    let newest = history(text)?
        .into_iter()
        .filter(|i| i.name.starts_with("XProtect"))
        .max_by_key(|i| i.at);
    Ok(match newest {
        Some(i) => vec![Antivirus {
            product: "XProtect".into(),
            running: true,
            signatures_version: Some(i.version),
            signatures_time: Some(i.at.to_string()),
        }],
        None => Vec::new(),
    })
}

/// `socketfilterfw --getglobalstate`: `Firewall is enabled. (State = 1)`; state 2 blocks
/// every incoming connection.
pub fn firewall(text: &str) -> Result<Firewall, String> {
    let t = text.trim();
    let state = t
        .split("State = ")
        .nth(1)
        .and_then(|s| s.trim_end_matches([')', '.', ' ']).parse::<u8>().ok());
    let active = match (state, t) {
        (Some(s), _) => s >= 1,
        (None, t) if t.contains("is enabled") || t.contains("blocking all") => true,
        (None, t) if t.contains("is disabled") => false,
        _ => {
            return Err(format!(
                "not socketfilterfw's answer: {:?}",
                t.chars().take(80).collect::<String>()
            ));
        }
    };
    Ok(Firewall {
        active,
        product: "macos-application-firewall".into(),
    })
}

/// `fdesetup status`: `FileVault is On.`; on only once it is on (not "will be enabled
/// after the next restart").
pub fn filevault(text: &str) -> Result<Vec<Volume>, String> {
    let t = text.trim();
    let encrypted = if t.starts_with("FileVault is On") {
        true
    } else if t.starts_with("FileVault is Off") {
        false
    } else {
        return Err(format!(
            "not fdesetup's answer: {:?}",
            t.chars().take(80).collect::<String>()
        ));
    };
    Ok(vec![Volume {
        mount: "/".into(),
        encrypted,
    }])
}

/// `spctl --status`: Gatekeeper's assessments (`assessments enabled`).
pub fn gatekeeper(text: &str) -> Result<bool, String> {
    match text.trim() {
        "assessments enabled" => Ok(true),
        "assessments disabled" => Ok(false),
        other => Err(format!(
            "not spctl's answer: {:?}",
            other.chars().take(80).collect::<String>()
        )),
    }
}

/// The screen saver's idle time when the user never set one.
pub const MACOS_DEFAULT_IDLE_SECS: u32 = 1200;

/// `sysadminctl -screenLock status` (its log line: `screenLock delay is 300 seconds`,
/// `screenLock delay is immediate`, `screenLock is off`), then the console user's
/// screen-saver `idleTime` in seconds (0 is never; `idleTime unset` when the user never
/// changed it: macOS's default, 20 minutes): the screen locks after the idle time and the
/// delay.
pub fn screen_lock(text: &str) -> Result<ScreenLock, String> {
    let mut delay: Option<Option<u32>> = None;
    let mut idle: Option<u32> = None;
    for line in text.lines().take(100) {
        if let Some(rest) = line.split("screenLock ").nth(1) {
            let rest = rest.trim();
            if rest.starts_with("is off") {
                delay = Some(None);
            } else if rest.contains("immediate") {
                delay = Some(Some(0));
            } else if let Some(n) = rest
                .strip_prefix("delay is ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
            {
                delay = Some(Some(n));
            }
        } else if let Ok(n) = line.trim().parse::<u32>() {
            idle = Some(n);
        } else if line.trim() == "idleTime unset" {
            idle = Some(MACOS_DEFAULT_IDLE_SECS);
        }
    }
    let delay = delay.ok_or("sysadminctl did not say whether the screen locks")?;
    let idle = idle.ok_or("the screen saver's idle time was not read")?;
    Ok(match delay {
        Some(d) if idle > 0 => ScreenLock {
            enabled: true,
            idle_delay_secs: Some(idle.saturating_add(d)),
        },
        _ => ScreenLock {
            enabled: false,
            idle_delay_secs: (idle > 0).then_some(idle),
        },
    })
}

/// `system_profiler SPApplicationsDataType -json`: installed applications.
pub fn software(json: &str) -> Result<Vec<Package>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let apps = v
        .get("SPApplicationsDataType")
        .and_then(Value::as_array)
        .ok_or("no SPApplicationsDataType list")?;
    let mut out: Vec<Package> = apps
        .iter()
        .take(crate::report::MAX_SOFTWARE)
        .filter_map(|a| {
            let name = a.get("_name")?.as_str()?;
            Some(Package {
                name: crate::windows::parse::package_name(name),
                version: a
                    .get("version")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            })
        })
        .filter(|p| !p.name.is_empty())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    out.dedup();
    Ok(out)
}

/// Browsers among the applications.
pub fn browsers(packages: &[Package]) -> Vec<Browser> {
    packages
        .iter()
        .filter_map(|p| {
            let name = match p.name.as_str() {
                "safari" => "safari",
                "google-chrome" => "chrome",
                "firefox" => "firefox",
                "microsoft-edge" => "edge",
                _ => return None,
            };
            Some(Browser {
                name: name.into(),
                version: p.version.clone(),
            })
        })
        .collect()
}

/// `system_profiler SPAirPortDataType -json`: the security of each interface's current
/// network; none means not on Wi-Fi.
pub fn wifi(json: &str) -> Result<WifiSecurity, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let entries = v
        .get("SPAirPortDataType")
        .and_then(Value::as_array)
        .ok_or("no SPAirPortDataType list")?;
    let mut worst: Option<WifiSecurity> = None;
    for e in entries.iter().take(16) {
        let Some(ifaces) = e
            .get("spairport_airport_interfaces")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for i in ifaces.iter().take(16) {
            let Some(current) = i.get("spairport_current_network_information") else {
                continue;
            };
            let mode = current
                .get("spairport_security_mode")
                .and_then(Value::as_str)
                .ok_or("the current network has no security mode")?;
            let level = if mode.ends_with("_none") {
                WifiSecurity::Open
            } else if mode.contains("wep") {
                WifiSecurity::Wep
            } else if mode.contains("enterprise") {
                WifiSecurity::Enterprise
            } else if mode.contains("wpa3") {
                WifiSecurity::Wpa3
            } else if mode.contains("wpa2") {
                WifiSecurity::Wpa2
            } else if mode.contains("wpa") {
                WifiSecurity::Wpa
            } else {
                return Err(format!("a security mode macOS calls {mode:?}"));
            };
            if worst
                .as_ref()
                .is_none_or(|w| level.strength() < w.strength())
            {
                worst = Some(level);
            }
        }
    }
    Ok(worst.unwrap_or(WifiSecurity::None))
}
