//! The Windows 10/11 collector. Each fact comes from one source, a PowerShell query (or
//! `netsh`) whose raw output a pure parser reads ([`parse`]). A [`Probe`] gives the raw
//! output: [`Live`] asks the running Windows, [`Captured`] reads what `ztgw-agent
//! posture --capture DIR` saved on a laptop (a directory `windows-posture/` under a
//! posture root), so a security unit checks a laptop from its capture, and the tests run
//! the whole collector on Linux against fixtures.

pub mod parse;

use std::path::{Path, PathBuf};

use crate::collect::CollectOptions;
use crate::probe::fact;
pub use crate::probe::{Captured, Captures, Live, Probe, decode};
use crate::report::{Fact, PostureReport, SCHEMA_VERSION};

/// The directory, under a posture root, that holds a Windows laptop's capture.
pub const CAPTURE_DIR: &str = "windows-posture";

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

impl crate::probe::Source for Source {
    fn file(self) -> &'static str {
        Source::file(self)
    }
    fn command(self) -> (&'static str, Vec<&'static str>) {
        Source::command(self)
    }
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

/// Collects a Windows laptop's report through `probe`.
pub fn collect(o: &CollectOptions, probe: &dyn Probe<Source>) -> PostureReport {
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
            crate::probe::tools_on_path(o, ".exe"),
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
        data_markers: crate::probe::data_markers(o, probe.captured_dir(), &users_folder()),
    }
}

/// Saves every source's raw output into `dir/windows-posture/` (what `--capture` does),
/// with the administration-data markers of `o` found on this laptop.
pub fn capture(
    probe: &dyn Probe<Source>,
    o: &CollectOptions,
    dir: &Path,
) -> std::io::Result<Captures> {
    crate::probe::capture(
        probe,
        &Source::ALL,
        &crate::probe::data_markers(o, None, &users_folder()),
        &dir.join(CAPTURE_DIR),
    )
}

/// The folder that holds the users' folders (`C:\Users`).
fn users_folder() -> PathBuf {
    std::env::var_os("SystemDrive")
        .map(|d| PathBuf::from(format!("{}\\Users", d.to_string_lossy())))
        .unwrap_or_else(|| PathBuf::from(r"C:\Users"))
}

#[cfg(test)]
mod tests;
