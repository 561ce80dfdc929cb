//! The Windows 10/11 collector. Each fact comes from one source, a PowerShell query (or
//! `netsh`) whose raw output a pure parser reads ([`parse`]). A [`Probe`] gives the raw
//! output: [`Live`] asks the running Windows, [`Captured`] reads what `ztgw-agent
//! posture --capture DIR` saved on a laptop (a directory `windows-posture/` under a
//! posture root), so a security unit checks a laptop from its capture, and the tests run
//! the whole collector on Linux against fixtures.

pub mod parse;

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::collect::CollectOptions;
use crate::report::{Fact, PostureReport, SCHEMA_VERSION};

/// The directory, under a posture root, that holds a Windows laptop's capture.
pub const CAPTURE_DIR: &str = "windows-posture";
/// The markers found on the laptop when it was captured (a JSON list of their names).
pub const MARKERS_FILE: &str = "data-markers.json";
/// Largest raw output read from one source.
pub const MAX_SOURCE_BYTES: usize = 4 << 20;

/// Where a fact comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Version,
    Updates,
    Antivirus,
    Defender,
    FirewallProfiles,
    FirewallProducts,
    BitLocker,
    ScreenLock,
    Software,
    RemovableStorage,
    Wifi,
}

impl Source {
    pub const ALL: [Source; 11] = [
        Source::Version,
        Source::Updates,
        Source::Antivirus,
        Source::Defender,
        Source::FirewallProfiles,
        Source::FirewallProducts,
        Source::BitLocker,
        Source::ScreenLock,
        Source::Software,
        Source::RemovableStorage,
        Source::Wifi,
    ];

    /// The file a capture keeps it in.
    pub fn file(self) -> &'static str {
        match self {
            Source::Version => "version.json",
            Source::Updates => "hotfixes.json",
            Source::Antivirus => "antivirus-products.json",
            Source::Defender => "defender-status.json",
            Source::FirewallProfiles => "firewall-profiles.json",
            Source::FirewallProducts => "firewall-products.json",
            Source::BitLocker => "bitlocker.json",
            Source::ScreenLock => "screen-lock.json",
            Source::Software => "uninstall.json",
            Source::RemovableStorage => "removable-storage.json",
            Source::Wifi => "netsh-wlan-interfaces.txt",
        }
    }

    /// The program and arguments that produce it on Windows.
    pub fn command(self) -> (&'static str, Vec<&'static str>) {
        let ps = |script: &'static str| {
            (
                "powershell.exe",
                vec!["-NoProfile", "-NonInteractive", "-Command", script],
            )
        };
        match self {
            Source::Version => ps(
                "Get-ItemProperty 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion' | Select-Object ProductName,DisplayVersion,EditionID,CurrentMajorVersionNumber,CurrentMinorVersionNumber,CurrentBuildNumber,UBR | ConvertTo-Json",
            ),
            Source::Updates => ps(
                "Get-HotFix | Where-Object InstalledOn | ForEach-Object { [pscustomobject]@{ HotFixID = $_.HotFixID; InstalledOn = $_.InstalledOn.ToString('o') } } | ConvertTo-Json",
            ),
            Source::Antivirus => ps(
                "Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct | Select-Object displayName,productState,timestamp | ConvertTo-Json",
            ),
            Source::Defender => ps(
                "Get-MpComputerStatus | Select-Object AMServiceEnabled,AntivirusEnabled,RealTimeProtectionEnabled,AntivirusSignatureVersion,@{n='AntivirusSignatureLastUpdated';e={$_.AntivirusSignatureLastUpdated.ToUniversalTime().ToString('o')}} | ConvertTo-Json",
            ),
            Source::FirewallProfiles => ps(
                "Get-NetFirewallProfile | ForEach-Object { [pscustomobject]@{ Name = $_.Name; Enabled = [bool]$_.Enabled } } | ConvertTo-Json",
            ),
            Source::FirewallProducts => ps(
                "Get-CimInstance -Namespace root/SecurityCenter2 -ClassName FirewallProduct | Select-Object displayName,productState | ConvertTo-Json",
            ),
            Source::BitLocker => ps(
                "Get-CimInstance -Namespace root/CIMV2/Security/MicrosoftVolumeEncryption -ClassName Win32_EncryptableVolume | Select-Object DriveLetter,ProtectionStatus | ConvertTo-Json",
            ),
            Source::ScreenLock => ps(
                "$m = (Get-ItemProperty 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System' -ErrorAction SilentlyContinue).InactivityTimeoutSecs; $u = Get-ChildItem Registry::HKEY_USERS | Where-Object { $_.PSChildName -match '^S-1-5-21-[0-9-]+$' } | ForEach-Object { $d = Get-ItemProperty \"Registry::$($_.Name)\\Control Panel\\Desktop\" -ErrorAction SilentlyContinue; $p = Get-ItemProperty \"Registry::$($_.Name)\\Software\\Policies\\Microsoft\\Windows\\Control Panel\\Desktop\" -ErrorAction SilentlyContinue; [pscustomobject]@{ Sid = $_.PSChildName; ScreenSaveActive = if ($p.ScreenSaveActive) { $p.ScreenSaveActive } else { $d.ScreenSaveActive }; ScreenSaverIsSecure = if ($p.ScreenSaverIsSecure) { $p.ScreenSaverIsSecure } else { $d.ScreenSaverIsSecure }; ScreenSaveTimeOut = if ($p.ScreenSaveTimeOut) { $p.ScreenSaveTimeOut } else { $d.ScreenSaveTimeOut } } }; [pscustomobject]@{ InactivityTimeoutSecs = $m; Users = @($u) } | ConvertTo-Json -Depth 3",
            ),
            Source::Software => ps(
                "Get-ItemProperty 'HKLM:\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*','HKLM:\\Software\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*' -ErrorAction SilentlyContinue | Where-Object DisplayName | Select-Object DisplayName,DisplayVersion | ConvertTo-Json",
            ),
            Source::RemovableStorage => ps(
                "[pscustomobject]@{ UsbStorStart = (Get-ItemProperty 'HKLM:\\SYSTEM\\CurrentControlSet\\Services\\USBSTOR' -ErrorAction SilentlyContinue).Start; DenyAll = (Get-ItemProperty 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\RemovableStorageDevices' -ErrorAction SilentlyContinue).Deny_All } | ConvertTo-Json",
            ),
            Source::Wifi => ("netsh.exe", vec!["wlan", "show", "interfaces"]),
        }
    }
}

/// Gives a source's raw output.
pub trait Probe {
    fn get(&self, source: Source) -> Result<String, String>;
    /// What the facts' sources say they came from.
    fn origin(&self) -> String;
    /// The capture directory, when the probe reads one.
    fn captured_dir(&self) -> Option<&Path> {
        None
    }
}

/// A capture directory.
#[derive(Debug, Clone)]
pub struct Captured(pub PathBuf);

impl Probe for Captured {
    fn get(&self, source: Source) -> Result<String, String> {
        read_bounded(&self.0.join(source.file()))
    }
    fn origin(&self) -> String {
        format!("captured in {}", self.0.display())
    }
    fn captured_dir(&self) -> Option<&Path> {
        Some(&self.0)
    }
}

/// The running Windows.
#[derive(Debug, Clone, Copy)]
pub struct Live;

impl Probe for Live {
    fn get(&self, source: Source) -> Result<String, String> {
        let (program, args) = source.command();
        crate::run::output(program, &args)
    }
    fn origin(&self) -> String {
        "this Windows".into()
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() > MAX_SOURCE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_SOURCE_BYTES} bytes",
            path.display()
        ));
    }
    decode(&bytes).ok_or_else(|| format!("{} is not text", path.display()))
}

/// UTF-8, or the UTF-16LE (with its byte-order mark) Windows PowerShell writes with `>`.
pub fn decode(bytes: &[u8]) -> Option<String> {
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&units).ok();
    }
    let bytes = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]).unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).ok()
}

/// What a capture did with each source: saved it, or why not.
pub type Captures = Vec<(Source, Result<(), String>)>;

/// Writes every source's raw output into `dir/windows-posture/` (what `--capture` does),
/// with the administration-data markers of `o` found on this laptop.
pub fn capture(probe: &dyn Probe, o: &CollectOptions, dir: &Path) -> std::io::Result<Captures> {
    let out = dir.join(CAPTURE_DIR);
    std::fs::create_dir_all(&out)?;
    if let Fact::Known { value, .. } = data_markers(o, None) {
        std::fs::write(
            out.join(MARKERS_FILE),
            serde_json::to_vec(&value).map_err(std::io::Error::other)?,
        )?;
    }
    let mut done = Vec::new();
    for s in Source::ALL {
        let r = match probe.get(s) {
            Ok(text) => std::fs::write(out.join(s.file()), text).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        done.push((s, r));
    }
    Ok(done)
}

fn fact<T>(probe: &dyn Probe, s: Source, f: impl FnOnce(&str) -> Result<T, String>) -> Fact<T> {
    match probe.get(s).and_then(|t| f(&t)) {
        Ok(v) => Fact::known(v, format!("{} ({})", s.file(), probe.origin())),
        Err(e) => Fact::unknown(format!("{}: {e}", s.file())),
    }
}

/// Collects a Windows laptop's report through `probe`.
pub fn collect(o: &CollectOptions, probe: &dyn Probe) -> PostureReport {
    let software = fact(probe, Source::Software, parse::software);
    let mut antivirus = fact(probe, Source::Antivirus, parse::antivirus);
    // Defender's own status gives its signature date, which Security Center does not.
    if let Ok(defender) = probe
        .get(Source::Defender)
        .and_then(|t| parse::defender(&t))
        && let Fact::Known { value, .. } = &mut antivirus
    {
        value.retain(|a| !a.product.contains("Defender"));
        value.insert(0, defender);
    }
    let firewall_products = probe.get(Source::FirewallProducts).ok();
    let tools_on_path = match &software {
        // Forbidden tools are found among installed programs; on the running Windows,
        // also as executables on PATH.
        Fact::Known { .. } => Fact::known(
            tools_on_path(o),
            if o.run_commands {
                "PATH"
            } else {
                "not looked up in a capture"
            },
        ),
        Fact::Unknown { reason } => Fact::unknown(reason.clone()),
    };
    PostureReport {
        schema_version: SCHEMA_VERSION,
        collected_at: o.now.clone(),
        agent_version: o.agent_version.clone(),
        nonce: o.nonce.clone(),
        os: fact(probe, Source::Version, parse::os),
        last_update: fact(probe, Source::Updates, parse::last_update),
        antivirus,
        firewall: fact(probe, Source::FirewallProfiles, |t| {
            parse::firewall(t, firewall_products.as_deref())
        }),
        volumes: fact(probe, Source::BitLocker, parse::bitlocker),
        screen_lock: fact(probe, Source::ScreenLock, parse::screen_lock),
        browsers: match &software {
            Fact::Known { value, source } => Fact::known(parse::browsers(value), source.clone()),
            Fact::Unknown { reason } => Fact::unknown(reason.clone()),
        },
        software,
        tools_on_path,
        removable_storage: fact(probe, Source::RemovableStorage, parse::removable_storage),
        wifi: fact(probe, Source::Wifi, parse::wifi),
        data_markers: data_markers(o, probe.captured_dir()),
    }
}

fn tools_on_path(o: &CollectOptions) -> Vec<String> {
    if !o.run_commands {
        return Vec::new();
    }
    let mut found: Vec<String> = o
        .watch_tools
        .iter()
        .filter(|tool| {
            !tool.contains(['/', '\\'])
                && std::env::split_paths(&o.path).any(|d| d.join(format!("{tool}.exe")).is_file())
        })
        .cloned()
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The profile's markers in each user's profile directory (`C:\Users\*`) on the running
/// Windows, or those its capture found.
fn data_markers(o: &CollectOptions, captured: Option<&Path>) -> Fact<Vec<String>> {
    if o.markers.is_empty() {
        return Fact::known(Vec::new(), "no marker to look for");
    }
    if let Some(dir) = captured {
        let file = dir.join(MARKERS_FILE);
        return match read_bounded(&file).and_then(|t| {
            serde_json::from_str::<Vec<String>>(&t).map_err(|e| format!("{MARKERS_FILE}: {e}"))
        }) {
            Ok(found) => {
                let found: Vec<String> = found
                    .into_iter()
                    .filter(|n| o.markers.iter().any(|(m, _)| m == n))
                    .collect();
                Fact::known(found, format!("{MARKERS_FILE} ({})", dir.display()))
            }
            Err(e) => Fact::unknown(format!("the capture has no marker scan: {e}")),
        };
    }
    if !o.run_commands {
        return Fact::unknown(
            "administration-data markers are looked for on the running laptop only",
        );
    }
    let users = std::env::var_os("SystemDrive")
        .map(|d| PathBuf::from(format!("{}\\Users", d.to_string_lossy())))
        .unwrap_or_else(|| PathBuf::from(r"C:\Users"));
    let homes: Vec<PathBuf> = std::fs::read_dir(&users)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .take(1000)
                .collect()
        })
        .unwrap_or_default();
    let mut found: Vec<String> = o
        .markers
        .iter()
        .filter(|(_, rel)| homes.iter().any(|h| h.join(rel).exists()))
        .map(|(name, _)| name.clone())
        .collect();
    found.sort();
    found.dedup();
    Fact::known(found, "the profile's marker paths in each user's folder")
}

#[cfg(test)]
mod tests;
