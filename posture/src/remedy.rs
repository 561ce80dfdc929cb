//! What to do about a failed check, in the words of the device's own system: the
//! employee reads "Settings > Privacy & security > Device encryption" on Windows and
//! `sudo ufw enable` on Debian.

use crate::report::OsFamily;

/// A check that can fail for something the employee (or the IT unit) can fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    Firewall,
    DiskEncryption,
    /// With the longest delay accepted, in minutes.
    ScreenLock(u64),
    Wifi,
    Updates,
    InstallAntivirus,
    StartAntivirus,
    Signatures,
}

/// The remedy for `fix` on `family` (`None` when the system is not known).
pub fn remedy(family: Option<&OsFamily>, fix: Fix) -> String {
    use Fix::*;
    use OsFamily::*;
    match (family, fix) {
        (Some(Linux), Firewall) => "Turn the firewall on (for example: sudo apt install ufw && sudo ufw enable).".into(),
        (Some(Windows), Firewall) => "Turn on Microsoft Defender Firewall: Settings > Privacy & security > Windows Security > Firewall & network protection, for every network profile.".into(),
        (Some(Macos), Firewall) => "Turn on the firewall: System Settings > Network > Firewall.".into(),
        (_, Firewall) => "Turn the system's firewall on.".into(),
        (Some(Linux), DiskEncryption) => "Encrypt the disk with LUKS (chosen when the system is installed); ask the IT unit for help.".into(),
        (Some(Windows), DiskEncryption) => "Turn on BitLocker: Settings > Privacy & security > Device encryption (or Control Panel > BitLocker Drive Encryption).".into(),
        (Some(Macos), DiskEncryption) => "Turn on FileVault: System Settings > Privacy & Security > FileVault.".into(),
        (_, DiskEncryption) => "Encrypt the disk; ask the IT unit for help.".into(),
        (Some(Linux), ScreenLock(m)) => format!("Turn on the automatic screen lock after at most {m} minutes: GNOME Settings > Privacy > Screen Lock (Automatic Screen Lock, Blank Screen Delay), or KDE System Settings > Screen Locking."),
        (Some(Windows), ScreenLock(m)) => format!("Lock the screen after at most {m} minutes: Settings > Personalization > Lock screen > Screen saver, with \"On resume, display logon screen\" ticked (or Settings > Accounts > Sign-in options > Dynamic lock)."),
        (Some(Macos), ScreenLock(m)) => format!("Require the password after at most {m} minutes: System Settings > Lock Screen (\"Start Screen Saver when inactive\", \"Require password after screen saver begins\")."),
        (_, ScreenLock(m)) => format!("Turn on the automatic screen lock after at most {m} minutes."),
        (Some(Linux), Wifi) => "Do not use an open or WEP Wi-Fi: connect to a protected network (WPA2/WPA3) or with a cable.".into(),
        (Some(Windows), Wifi) => "Do not use an open or WEP Wi-Fi: Settings > Network & internet > Wi-Fi, connect to a network marked \"Secured\" (WPA2/WPA3), or with a cable.".into(),
        (Some(Macos), Wifi) => "Do not use an open or WEP Wi-Fi: choose a network with a lock icon (WPA2/WPA3) in Control Centre > Wi-Fi, or use a cable.".into(),
        (_, Wifi) => "Use a protected (WPA2/WPA3) or wired network.".into(),
        (Some(Linux), Updates) => "Install the system updates (for example: sudo apt update && sudo apt upgrade).".into(),
        (Some(Windows), Updates) => "Install the updates: Settings > Windows Update > Check for updates, then restart.".into(),
        (Some(Macos), Updates) => "Install the updates: System Settings > General > Software Update.".into(),
        (_, Updates) => "Install the system updates.".into(),
        (Some(Linux), InstallAntivirus) => "Install an antivirus (for example: sudo apt install clamav clamav-daemon).".into(),
        (Some(Windows), InstallAntivirus) => "Turn on Microsoft Defender Antivirus: Settings > Privacy & security > Windows Security > Virus & threat protection.".into(),
        (Some(Macos), InstallAntivirus) => "Install the antivirus the IT unit provides.".into(),
        (_, InstallAntivirus) => "Install an antivirus.".into(),
        (Some(Linux), StartAntivirus) => "Start the antivirus service (for example: sudo systemctl enable --now clamav-daemon).".into(),
        (Some(Windows), StartAntivirus) => "Turn real-time protection on: Windows Security > Virus & threat protection > Manage settings.".into(),
        (_, StartAntivirus) => "Start the antivirus and turn its real-time protection on.".into(),
        (Some(Linux), Signatures) => "Update the antivirus signatures (for example: sudo freshclam).".into(),
        (Some(Windows), Signatures) => "Update the signatures: Windows Security > Virus & threat protection > Protection updates > Check for updates.".into(),
        (_, Signatures) => "Update the antivirus signatures.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fix_names_the_systems_own_way() {
        let all = [
            Fix::Firewall,
            Fix::DiskEncryption,
            Fix::ScreenLock(15),
            Fix::Wifi,
            Fix::Updates,
            Fix::InstallAntivirus,
            Fix::StartAntivirus,
            Fix::Signatures,
        ];
        for fix in all {
            for family in [
                None,
                Some(OsFamily::Linux),
                Some(OsFamily::Windows),
                Some(OsFamily::Macos),
            ] {
                assert!(!remedy(family.as_ref(), fix).is_empty());
            }
        }
        assert!(remedy(Some(&OsFamily::Windows), Fix::DiskEncryption).contains("BitLocker"));
        assert!(remedy(Some(&OsFamily::Macos), Fix::DiskEncryption).contains("FileVault"));
        assert!(remedy(Some(&OsFamily::Linux), Fix::ScreenLock(15)).contains("15 minutes"));
        assert!(!remedy(Some(&OsFamily::Linux), Fix::ScreenLock(15)).contains("IT unit"));
    }
}
