//! Pure parsers of what Windows says about itself, each over the raw text one source
//! gives (the JSON of a PowerShell query, or `netsh` output), so each is tested on Linux
//! against fixtures. None panics: anything unexpected is an error saying what was wrong,
//! which the collector reports as an unknown fact.

use serde_json::Value;

use crate::report::{
    Antivirus, Browser, Firewall, OsFamily, OsInfo, Package, RemovableStorage, ScreenLock, Volume,
    WifiSecurity,
};

/// PowerShell's `ConvertTo-Json` gives an object for one result and a list for several
/// (and nothing for none).
fn list(json: &str) -> Result<Vec<Value>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(json).map_err(|e| format!("not JSON: {e}"))? {
        Value::Array(a) => Ok(a),
        Value::Null => Ok(Vec::new()),
        v @ Value::Object(_) => Ok(vec![v]),
        other => Err(format!("a JSON object or list was expected, not {other}")),
    }
}

fn object(json: &str) -> Result<Value, String> {
    list(json)?
        .into_iter()
        .next()
        .ok_or_else(|| "the query returned nothing".to_owned())
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean as PowerShell writes one: `true`, `1`, `"True"`.
fn boolean(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A time as the queries write it: ISO 8601 (`ToString('o')`, with or without an
/// offset; without one, read as UTC), or PowerShell 5's `/Date(ms)/`.
pub fn time(s: &str) -> Option<jiff::Timestamp> {
    let s = s.trim();
    if let Some(ms) = s
        .strip_prefix("/Date(")
        .and_then(|r| r.strip_suffix(")/"))
        .and_then(|r| r.split(['+', '-']).next())
        .and_then(|r| r.parse::<i64>().ok())
    {
        return jiff::Timestamp::from_millisecond(ms).ok();
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t);
    }
    let civil: jiff::civil::DateTime = s.get(..19).unwrap_or(s).parse().ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()
}

/// `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`: the version is
/// `major.minor.build.UBR` (`10.0.22631.4460`); a build from 22000 on is Windows 11,
/// whatever `ProductName` says (it says Windows 10 on both).
pub fn os(json: &str) -> Result<OsInfo, String> {
    let v = object(json)?;
    let build = number(&v, "CurrentBuildNumber").ok_or("no CurrentBuildNumber")?;
    let major = number(&v, "CurrentMajorVersionNumber").unwrap_or(10);
    let minor = number(&v, "CurrentMinorVersionNumber").unwrap_or(0);
    let ubr = number(&v, "UBR").unwrap_or(0);
    let product = text(&v, "ProductName").unwrap_or_else(|| "Windows".into());
    let product = if build >= 22_000 {
        product.replacen("Windows 10", "Windows 11", 1)
    } else {
        product
    };
    let name = match text(&v, "DisplayVersion") {
        Some(d) if !d.is_empty() => format!("{product} {d}"),
        _ => product,
    };
    Ok(OsInfo {
        family: OsFamily::Windows,
        id: "windows".into(),
        name,
        version: format!("{major}.{minor}.{build}.{ubr}"),
        build: Some(format!("{build}.{ubr}")),
        kernel: None,
    })
}

/// The newest `InstalledOn` of the installed updates (`Get-HotFix`).
pub fn last_update(json: &str) -> Result<String, String> {
    list(json)?
        .iter()
        .filter_map(|h| time(&text(h, "InstalledOn")?))
        .max()
        .map(|t| t.to_string())
        .ok_or_else(|| "no installed update has a date".into())
}

/// Security Center's `productState`: bit 12 set means the product is on; bit 4 set means
/// its definitions are out of date.
pub fn product_state(state: i64) -> (bool, bool) {
    (state & 0x1000 != 0, state & 0x10 == 0)
}

/// `root\SecurityCenter2` `AntiVirusProduct`: each product, on or not. Security Center
/// gives no signature date: a product that says its definitions are up to date is
/// taken at its word as of its last report (`timestamp`).
pub fn antivirus(json: &str) -> Result<Vec<Antivirus>, String> {
    list(json)?
        .iter()
        .take(64)
        .map(|p| {
            let name = text(p, "displayName").ok_or("a product without displayName")?;
            let state = number(p, "productState").ok_or("a product without productState")?;
            let (on, up_to_date) = product_state(state);
            let reported = text(p, "timestamp").and_then(|t| {
                jiff::fmt::rfc2822::parse(&t)
                    .ok()
                    .map(|z| z.timestamp())
                    .or_else(|| time(&t))
            });
            Ok(Antivirus {
                product: name,
                running: on,
                signatures_version: None,
                signatures_time: if up_to_date {
                    reported.map(|t| t.to_string())
                } else {
                    None
                },
            })
        })
        .collect()
}

/// `Get-MpComputerStatus`: Microsoft Defender Antivirus with its own signature date.
pub fn defender(json: &str) -> Result<Antivirus, String> {
    let v = object(json)?;
    let on = boolean(&v, "AMServiceEnabled").unwrap_or(false)
        && boolean(&v, "AntivirusEnabled").unwrap_or(false)
        && boolean(&v, "RealTimeProtectionEnabled").unwrap_or(false);
    Ok(Antivirus {
        product: "Microsoft Defender Antivirus".into(),
        running: on,
        signatures_version: text(&v, "AntivirusSignatureVersion"),
        signatures_time: text(&v, "AntivirusSignatureLastUpdated")
            .and_then(|t| time(&t))
            .map(|t| t.to_string()),
    })
}

/// `Get-NetFirewallProfile`: Windows Defender Firewall is active when every profile
/// (Domain, Private, Public) is on; or `root\SecurityCenter2` `FirewallProduct` names
/// another firewall that is on.
pub fn firewall(profiles_json: &str, products_json: Option<&str>) -> Result<Firewall, String> {
    let profiles = list(profiles_json)?;
    if let Some(products) = products_json {
        for p in list(products)?.iter().take(64) {
            if let (Some(name), Some(state)) = (text(p, "displayName"), number(p, "productState"))
                && product_state(state).0
            {
                return Ok(Firewall {
                    active: true,
                    product: name,
                });
            }
        }
    }
    if profiles.is_empty() {
        return Err("no firewall profile was reported".into());
    }
    let mut all_on = true;
    for p in &profiles {
        match boolean(p, "Enabled") {
            Some(on) => all_on &= on,
            None => return Err("a firewall profile without Enabled".into()),
        }
    }
    Ok(Firewall {
        active: all_on,
        product: "windows-defender-firewall".into(),
    })
}

/// `Win32_EncryptableVolume`: `ProtectionStatus` 1 is protected (BitLocker on), 0 is
/// not, 2 is unknown (a locked volume).
pub fn bitlocker(json: &str) -> Result<Vec<Volume>, String> {
    let vols = list(json)?;
    let mut out = Vec::new();
    for v in vols.iter().take(64) {
        let Some(letter) = text(v, "DriveLetter").filter(|l| !l.is_empty()) else {
            continue;
        };
        match number(v, "ProtectionStatus") {
            Some(0) => out.push(Volume {
                mount: letter,
                encrypted: false,
            }),
            Some(1) => out.push(Volume {
                mount: letter,
                encrypted: true,
            }),
            _ => return Err(format!("the protection of {letter} is unknown")),
        }
    }
    if out.is_empty() {
        return Err("no volume with a drive letter was reported".into());
    }
    Ok(out)
}

/// The screen lock: the machine's inactivity limit (`InactivityTimeoutSecs` policy, which
/// locks the session), else each signed-in user's secure screen saver
/// (`ScreenSaveActive`, `ScreenSaverIsSecure`, `ScreenSaveTimeOut` under
/// `Control Panel\Desktop`, a policy one winning); the weakest user counts.
pub fn screen_lock(json: &str) -> Result<ScreenLock, String> {
    let v = object(json)?;
    if let Some(secs) = number(&v, "InactivityTimeoutSecs").filter(|s| *s > 0) {
        return Ok(ScreenLock {
            enabled: true,
            idle_delay_secs: u32::try_from(secs).ok(),
        });
    }
    let users = match v.get("Users") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => Vec::new(),
    };
    if users.is_empty() {
        return Err(
            "no inactivity limit is set for the machine and no user is signed in to read theirs"
                .into(),
        );
    }
    let mut weakest: Option<ScreenLock> = None;
    for u in users.iter().take(64) {
        let on = boolean(u, "ScreenSaveActive").unwrap_or(false)
            && boolean(u, "ScreenSaverIsSecure").unwrap_or(false);
        let delay = number(u, "ScreenSaveTimeOut")
            .filter(|d| *d > 0)
            .and_then(|d| u32::try_from(d).ok());
        let lock = ScreenLock {
            enabled: on && delay.is_some(),
            idle_delay_secs: delay,
        };
        let weaker = |a: &ScreenLock, b: &ScreenLock| {
            (
                a.enabled,
                std::cmp::Reverse(a.idle_delay_secs.unwrap_or(u32::MAX)),
            ) < (
                b.enabled,
                std::cmp::Reverse(b.idle_delay_secs.unwrap_or(u32::MAX)),
            )
        };
        if weakest.as_ref().is_none_or(|w| weaker(&lock, w)) {
            weakest = Some(lock);
        }
    }
    weakest.ok_or_else(|| "no user's setting could be read".into())
}

/// A program's name as the profile's lists name software: its display name in lower
/// case up to the first word that is a version or an architecture (`Nmap 7.95` is
/// `nmap`, `Wireshark 4.2.5 x64` is `wireshark`, `Google Chrome` is `google-chrome`).
pub fn package_name(display: &str) -> String {
    let words: Vec<String> = display
        .split_whitespace()
        .map(|w| w.trim_matches(['(', ')', ',']).to_lowercase())
        .enumerate()
        // The first word is the name even when it starts with a digit (`7-Zip`).
        .take_while(|(i, w)| {
            !w.is_empty()
                && (*i == 0 || !w.starts_with(|c: char| c.is_ascii_digit()))
                && !matches!(
                    w.as_str(),
                    "x64" | "x86" | "64-bit" | "32-bit" | "amd64" | "arm64" | "-"
                )
        })
        .map(|(_, w)| w)
        .collect();
    words.join("-")
}

/// The Uninstall registry keys (both views): installed programs.
pub fn software(json: &str) -> Result<Vec<Package>, String> {
    let mut out: Vec<Package> = list(json)?
        .iter()
        .take(crate::report::MAX_SOFTWARE)
        .filter_map(|p| {
            let display = text(p, "DisplayName")?;
            let name = package_name(&display);
            (!name.is_empty()).then(|| Package {
                name,
                version: text(p, "DisplayVersion").unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
    out.dedup();
    Ok(out)
}

/// Browsers among the installed programs, by the names their installers give.
pub fn browsers(packages: &[Package]) -> Vec<Browser> {
    packages
        .iter()
        .filter_map(|p| {
            let name = match p.name.as_str() {
                "google-chrome" => "chrome",
                "microsoft-edge" => "edge",
                n if n.starts_with("mozilla-firefox") && n.contains("esr") => "firefox-esr",
                n if n.starts_with("mozilla-firefox") => "firefox",
                _ => return None,
            };
            Some(Browser {
                name: name.into(),
                version: p.version.clone(),
            })
        })
        .collect()
}

/// USB storage: blocked when its driver is disabled (`USBSTOR` `Start` = 4) or the
/// removable-storage policy denies all access (`Deny_All` = 1).
pub fn removable_storage(json: &str) -> Result<RemovableStorage, String> {
    let v = object(json)?;
    let start = number(&v, "UsbStorStart");
    let deny = number(&v, "DenyAll");
    if start.is_none() && deny.is_none() {
        return Err("neither the USBSTOR driver's Start value nor the policy was reported".into());
    }
    Ok(if start == Some(4) || deny == Some(1) {
        RemovableStorage::Blocked
    } else {
        RemovableStorage::Allowed
    })
}

/// `netsh wlan show interfaces` (English or French Windows): the weakest connected
/// interface's authentication; no wireless interface, or none connected, is wired.
pub fn wifi(text: &str) -> Result<WifiSecurity, String> {
    let t = text.trim();
    if t.contains("There is no wireless interface")
        || t.contains("Il n'existe aucune interface sans fil")
    {
        return Ok(WifiSecurity::None);
    }
    if t.contains("service is not running") || t.contains("service n'est pas en cours") {
        return Err("the WLAN service is not running".into());
    }
    let mut worst: Option<WifiSecurity> = None;
    let mut connected = false;
    let mut seen_interface = false;
    for line in t.lines().take(2000) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_lowercase(), v.trim().to_lowercase());
        match k.as_str() {
            "name" | "nom" => {
                seen_interface = true;
                connected = false;
            }
            "state" | "état" | "etat" => connected = v == "connected" || v == "connecté",
            "authentication" | "authentification" if connected => {
                let level = match v.as_str() {
                    "open" | "ouvrir" | "ouverte" => WifiSecurity::Open,
                    "shared" | "partagée" | "wep" => WifiSecurity::Wep,
                    "wpa-personal" | "wpa-personnel" => WifiSecurity::Wpa,
                    "wpa2-personal" | "wpa2-personnel" => WifiSecurity::Wpa2,
                    "wpa3-personal" | "wpa3-personnel" | "wpa3-sae" => WifiSecurity::Wpa3,
                    v if v.contains("enterprise") || v.contains("entreprise") => {
                        WifiSecurity::Enterprise
                    }
                    other => return Err(format!("an authentication netsh calls {other:?}")),
                };
                if worst
                    .as_ref()
                    .is_none_or(|w| level.strength() < w.strength())
                {
                    worst = Some(level);
                }
            }
            _ => {}
        }
    }
    if !seen_interface {
        return Err("netsh's output lists no interface".into());
    }
    Ok(worst.unwrap_or(WifiSecurity::None))
}
