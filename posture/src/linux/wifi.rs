//! The security of the Wi-Fi the device is on. The kernel says which interfaces are
//! Wi-Fi and up (`/sys/class/net/*/wireless`, `operstate`): none means a wired (or
//! offline) laptop, which passes. Otherwise NetworkManager says which connection each
//! device runs (`/run/NetworkManager/devices/IFINDEX`, `connection-uuid=`) and the
//! connection's profile says its security (`*.nmconnection`, `[wifi-security]`, in
//! `/etc`, `/run` or `/usr/lib` `NetworkManager/system-connections`).

use std::path::Path;

use crate::report::{Fact, WifiSecurity};

const PROFILE_DIRS: &[&str] = &[
    "etc/NetworkManager/system-connections",
    "run/NetworkManager/system-connections",
    "usr/lib/NetworkManager/system-connections",
];

pub fn security(root: &Path) -> Fact<WifiSecurity> {
    // Wi-Fi interfaces that are up, by interface index.
    let mut wireless_up: Vec<(String, String)> = Vec::new();
    let sys = root.join("sys/class/net");
    let kernel_says = sys.is_dir();
    if let Ok(ifaces) = std::fs::read_dir(&sys) {
        for i in ifaces.filter_map(|e| e.ok()).take(1024) {
            let p = i.path();
            let up = super::text(&p.join("operstate"))
                .is_some_and(|s| matches!(s.trim(), "up" | "dormant"));
            if p.join("wireless").exists() && up {
                let index = super::text(&p.join("ifindex")).unwrap_or_default();
                wireless_up.push((
                    i.file_name().to_string_lossy().into_owned(),
                    index.trim().to_owned(),
                ));
            }
        }
        if wireless_up.is_empty() {
            return Fact::known(
                WifiSecurity::None,
                "no Wi-Fi interface is up (/sys/class/net): wired or offline",
            );
        }
    }
    let Ok(devices) = std::fs::read_dir(root.join("run/NetworkManager/devices")) else {
        return Fact::unknown(match wireless_up.first() {
            Some((name, _)) => format!(
                "{name} is a Wi-Fi interface in use, and NetworkManager (which says which network it is on) is not running"
            ),
            None => "NetworkManager's runtime state is not present".into(),
        });
    };
    let devices = devices.filter_map(|e| e.ok()).take(256).filter(|e| {
        // Only the Wi-Fi devices that are up, when the kernel says which they are.
        !kernel_says
            || wireless_up
                .iter()
                .any(|(_, index)| e.file_name().to_str() == Some(index.as_str()))
    });
    let active: Vec<String> = devices
        .filter_map(|e| super::text(&e.path()))
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("connection-uuid="))
                .map(str::to_owned)
        })
        .collect();
    if active.is_empty() {
        return Fact::unknown("NetworkManager reports no active connection");
    }
    let profiles: Vec<std::path::PathBuf> = PROFILE_DIRS
        .iter()
        .filter_map(|d| std::fs::read_dir(root.join(d)).ok())
        .flat_map(|d| d.filter_map(|e| e.ok()).take(1024).map(|e| e.path()))
        .collect();
    let mut worst: Option<WifiSecurity> = None;
    for p in profiles {
        let Some(text) = super::text(&p) else {
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
            Some(w) if w.strength() <= level.strength() => w,
            _ => level,
        });
    }
    match worst {
        Some(w) => Fact::known(w, "NetworkManager: the active connection's profile"),
        None => Fact::unknown(
            "the active connection's profile was not found (or cannot be read: run the agent as root)",
        ),
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

    #[test]
    fn the_kernel_tells_wired_from_wifi() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, "sys/class/net/enp0s31f6/operstate", "up\n");
        write(r, "sys/class/net/enp0s31f6/ifindex", "2\n");
        write(r, "sys/class/net/wlp2s0/operstate", "down\n");
        write(r, "sys/class/net/wlp2s0/ifindex", "3\n");
        write(r, "sys/class/net/wlp2s0/wireless/.keep", "");
        // Wired, the Wi-Fi down: passes, whatever NetworkManager remembers.
        write(
            r,
            "run/NetworkManager/devices/3",
            "[device]\nconnection-uuid=1111\n",
        );
        write(
            r,
            "etc/NetworkManager/system-connections/cafe.nmconnection",
            "[connection]\nuuid=1111\ntype=wifi\n",
        );
        assert_eq!(security(r).value(), Some(&WifiSecurity::None));
        // The Wi-Fi up on the open network.
        write(r, "sys/class/net/wlp2s0/operstate", "up\n");
        assert_eq!(security(r).value(), Some(&WifiSecurity::Open));
        // On WPA2 (a profile NetworkManager keeps in /run).
        write(
            r,
            "run/NetworkManager/devices/3",
            "[device]\nconnection-uuid=2222\n",
        );
        write(
            r,
            "run/NetworkManager/system-connections/office.nmconnection",
            "[connection]\nuuid=2222\ntype=wifi\n[wifi-security]\nkey-mgmt=wpa-psk\n",
        );
        assert_eq!(security(r).value(), Some(&WifiSecurity::Wpa2));
        // Wi-Fi up without NetworkManager: unknown, and why.
        std::fs::remove_dir_all(r.join("run/NetworkManager/devices")).expect("rm");
        let f = security(r);
        assert!(
            matches!(&f, Fact::Unknown { reason } if reason.contains("wlp2s0")),
            "{f:?}"
        );
    }
}
