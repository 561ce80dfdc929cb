//! Laptops as files: a compliant Debian 12 GNOME laptop (`posture/tests/fixtures/
//! debian12-gnome`), brought up to date (updated yesterday, antivirus signatures from
//! yesterday), for the agent's `--posture-root`.

use std::path::{Path, PathBuf};

use jiff::{Timestamp, ToSpan as _};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../posture/tests/fixtures")
}

/// Copies `from` into `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// The compliant Debian laptop, as it stands today, in `dir/laptop`: on WPA2 Wi-Fi
/// through NetworkManager, LUKS, ufw enabled, ClamAV running with yesterday's
/// signatures, updated yesterday, the screen lock after 5 minutes set by its user.
pub fn compliant_debian(dir: &Path) -> PathBuf {
    let root = dir.join("laptop");
    copy_tree(&fixtures().join("debian12-gnome"), &root);
    let yesterday = Timestamp::now() - 24.hours();
    let civil = yesterday.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    std::fs::write(
        root.join("var/log/apt/history.log"),
        format!(
            "\nStart-Date: {d}  06:00:00\nCommandline: /usr/bin/unattended-upgrade\nEnd-Date: {d}  06:01:44\n",
            d = civil.date()
        ),
    )
    .expect("history.log");
    // A ClamAV database header: `ClamAV-VDB:TIME:VERSION:SIGS:LEVEL:MD5:DSIG:BUILDER:STIME`.
    let mut header = format!(
        "ClamAV-VDB:{}:27470:2071134:90:0123456789abcdef0123456789abcdef:signature:raynman:{}",
        civil.strftime("%d %b %Y %H-%M %z"),
        yesterday.as_second()
    )
    .into_bytes();
    header.resize(512, b' ');
    std::fs::create_dir_all(root.join("var/lib/clamav")).expect("mkdir");
    std::fs::write(root.join("var/lib/clamav/daily.cld"), header).expect("daily.cld");
    root
}

/// Puts the laptop's Wi-Fi profile on an open network (no key management).
pub fn on_open_wifi(root: &Path) {
    let profile = root.join("etc/NetworkManager/system-connections/Ministere.nmconnection");
    let text = std::fs::read_to_string(&profile).expect("profile");
    let open: String = text
        .lines()
        .filter(|l| !l.starts_with("key-mgmt") && !l.starts_with("psk"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&profile, open).expect("write");
}

/// A compliant Windows 11 laptop's capture (`posture/tests/fixtures/windows11`: what
/// `ztgw-agent posture --capture` saves), brought up to date: its last update ten days
/// ago, Defender's signatures from yesterday.
pub fn compliant_windows(dir: &Path) -> PathBuf {
    let root = dir.join("windows-laptop");
    copy_tree(&fixtures().join("windows11"), &root);
    let capture = root.join("windows-posture");
    let edit = |file: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let path = capture.join(file);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect(file)).expect(file);
        f(&mut v);
        std::fs::write(&path, v.to_string()).expect(file);
    };
    let ago = |hours: i64| {
        (Timestamp::now() - hours.hours())
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%dT%H:%M:%S.0000000")
            .to_string()
    };
    edit("hotfixes.json", &|v| {
        if let Some(list) = v.as_array_mut() {
            for h in list {
                h["InstalledOn"] = ago(240).into();
            }
        }
    });
    edit("defender-status.json", &|v| {
        v["AntivirusSignatureLastUpdated"] = format!("{}Z", ago(24)).into();
    });
    edit("antivirus-products.json", &|v| {
        v["timestamp"] = jiff::fmt::rfc2822::to_string(
            &(Timestamp::now() - 24.hours()).to_zoned_datetime(jiff::tz::TimeZone::UTC),
        )
        .expect("rfc2822")
        .into();
    });
    root
}

/// Replaces one source of a Windows capture.
pub fn windows_source(root: &Path, file: &str, text: &str) {
    std::fs::write(root.join("windows-posture").join(file), text).expect(file);
}

/// `netsh wlan show interfaces` of an English Windows on an open network.
pub const NETSH_OPEN_WIFI: &str =
    include_str!("../../posture/tests/fixtures/windows-raw/netsh-open-en.txt");

/// A compliant Mac's capture (`posture/tests/fixtures/macos14`), brought up to date: the
/// system updated ten days ago, XProtect's data yesterday.
pub fn compliant_macos(dir: &Path) -> PathBuf {
    let root = dir.join("mac");
    copy_tree(&fixtures().join("macos14"), &root);
    let history = root.join("macos-posture/softwareupdate-history.txt");
    let date = |hours: i64| {
        (Timestamp::now() - hours.hours())
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .strftime("%m/%d/%Y, %H:%M:%S")
            .to_string()
    };
    let text: String = std::fs::read_to_string(&history)
        .expect("history")
        .lines()
        .map(|l| {
            // The date is the line's last 20 characters (`11/27/2026, 02:11:04`).
            let trimmed = l.trim_end();
            let Some(at) = trimmed.len().checked_sub(20) else {
                return format!("{l}\n");
            };
            if !trimmed[at..].contains('/') {
                return format!("{l}\n");
            }
            let hours = if trimmed.starts_with("XProtect") {
                24
            } else {
                240
            };
            format!("{}{}\n", &trimmed[..at], date(hours))
        })
        .collect();
    std::fs::write(&history, text).expect("history");
    root
}
