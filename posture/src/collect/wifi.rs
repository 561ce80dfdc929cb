//! The security of the network the device is on, as NetworkManager records it: the
//! active connection (`/run/NetworkManager/devices/*`, `connection-uuid=`) and its
//! profile (`/etc/NetworkManager/system-connections/*.nmconnection`, `[wifi-security]`).

use std::path::Path;

use crate::report::{Fact, WifiSecurity};

pub fn security(root: &Path) -> Fact<WifiSecurity> {
    let Ok(devices) = std::fs::read_dir(root.join("run/NetworkManager/devices")) else {
        return Fact::unknown("NetworkManager's runtime state is not present");
    };
    let active: Vec<String> = devices
        .filter_map(|e| e.ok())
        .take(256)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("connection-uuid="))
                .map(str::to_owned)
        })
        .collect();
    if active.is_empty() {
        return Fact::unknown("NetworkManager reports no active connection");
    }
    let Ok(profiles) = std::fs::read_dir(root.join("etc/NetworkManager/system-connections")) else {
        return Fact::unknown("NetworkManager's connection profiles cannot be read");
    };
    let mut worst: Option<WifiSecurity> = None;
    for p in profiles.filter_map(|e| e.ok()).take(1024) {
        let Ok(text) = std::fs::read_to_string(p.path()) else {
            continue;
        };
        let (mut uuid, mut kind, mut key_mgmt) = (None, None, None);
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.trim_matches(['[', ']']).to_owned();
            } else if let Some((k, v)) = line.split_once('=') {
                match (section.as_str(), k.trim()) {
                    ("connection", "uuid") => uuid = Some(v.trim().to_owned()),
                    ("connection", "type") => kind = Some(v.trim().to_owned()),
                    ("wifi-security", "key-mgmt") => key_mgmt = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        }
        if !uuid.as_ref().is_some_and(|u| active.contains(u)) {
            continue;
        }
        let level = match (kind.as_deref(), key_mgmt.as_deref()) {
            (Some("802-11-wireless" | "wifi"), None | Some("none")) => WifiSecurity::Open,
            (Some("802-11-wireless" | "wifi"), Some("ieee8021x")) => WifiSecurity::Wep,
            (Some("802-11-wireless" | "wifi"), Some("wpa-psk")) => WifiSecurity::Wpa2,
            (Some("802-11-wireless" | "wifi"), Some("sae")) => WifiSecurity::Wpa3,
            (Some("802-11-wireless" | "wifi"), Some("wpa-eap" | "wpa-eap-suite-b-192")) => {
                WifiSecurity::Enterprise
            }
            (Some("802-11-wireless" | "wifi"), Some(_)) => WifiSecurity::Wpa,
            _ => WifiSecurity::None,
        };
        worst = Some(match worst {
            Some(w) if rank(&w) <= rank(&level) => w,
            _ => level,
        });
    }
    match worst {
        Some(w) => Fact::known(w, "NetworkManager: the active connection's profile"),
        None => Fact::unknown("the active connection's profile was not found"),
    }
}

/// Lower is weaker.
fn rank(w: &WifiSecurity) -> u8 {
    match w {
        WifiSecurity::Open => 0,
        WifiSecurity::Wep => 1,
        WifiSecurity::Wpa => 2,
        WifiSecurity::Wpa2 => 3,
        WifiSecurity::Wpa3 => 4,
        WifiSecurity::Enterprise => 5,
        WifiSecurity::None => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    #[test]
    fn the_active_connections_security() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        assert!(security(r).value().is_none());
        write(
            r,
            "run/NetworkManager/devices/3",
            "[device]\nmanaged=true\nconnection-uuid=1111\n",
        );
        write(
            r,
            "etc/NetworkManager/system-connections/cafe.nmconnection",
            "[connection]\nid=Cafe\nuuid=1111\ntype=wifi\n\n[wifi]\nssid=Cafe\n",
        );
        write(
            r,
            "etc/NetworkManager/system-connections/home.nmconnection",
            "[connection]\nid=Home\nuuid=2222\ntype=wifi\n\n[wifi-security]\nkey-mgmt=sae\n",
        );
        assert_eq!(security(r).value(), Some(&WifiSecurity::Open));
        write(
            r,
            "run/NetworkManager/devices/3",
            "[device]\nconnection-uuid=2222\n",
        );
        assert_eq!(security(r).value(), Some(&WifiSecurity::Wpa3));
        write(
            r,
            "etc/NetworkManager/system-connections/wired.nmconnection",
            "[connection]\nuuid=3333\ntype=ethernet\n",
        );
        write(
            r,
            "run/NetworkManager/devices/2",
            "[device]\nconnection-uuid=3333\n",
        );
        assert_eq!(
            security(r).value(),
            Some(&WifiSecurity::Wpa3),
            "the weakest active link counts"
        );
    }
}
