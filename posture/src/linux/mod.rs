//! The Linux collector: reads the device's own files under a filesystem root (`/` on a
//! laptop, a fixture tree or a copied laptop image otherwise) and reports what it finds,
//! saying where each fact came from or why it is unknown. On the running system it also
//! asks the system's own tools what is in force (the firewall's ruleset, an endpoint
//! protection product's health); it opens no socket.

pub mod clamav;
pub mod dpkg;
pub mod firewall;
pub mod gvdb;
pub mod mdatp;
pub mod os_release;
pub mod rpm;
pub mod screen_lock;
pub mod wifi;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::collect::CollectOptions;
use crate::report::{
    Browser, Fact, OsFamily, OsInfo, Package, PostureReport, RemovableStorage, SCHEMA_VERSION,
    Volume,
};
use os_release::OsRelease;

/// Most files the data-marker scan looks at.
pub const MAX_MARKER_FILES: usize = 20_000;
/// Longest the data-marker scan runs.
pub const MAX_MARKER_TIME: Duration = Duration::from_secs(2);

/// Browsers recognised among installed packages, by package name.
const BROWSER_PACKAGES: &[(&str, &str)] = &[
    ("firefox-esr", "firefox-esr"),
    ("firefox", "firefox"),
    ("chromium", "chromium"),
    ("google-chrome-stable", "chrome"),
    ("chromium-browser", "chromium"),
    ("microsoft-edge-stable", "edge"),
];

/// Collects a Linux device's report.
pub fn collect(o: &CollectOptions) -> PostureReport {
    let root = &o.root;
    let software: Fact<Vec<Package>> = match (
        crate::probe::read_at_most(&root.join("var/lib/dpkg/status"), MAX_DPKG_STATUS),
        rpm::installed(root),
    ) {
        (Ok(status), _) => Fact::known(dpkg::installed(&status), "/var/lib/dpkg/status"),
        (Err(e), _) if root.join("var/lib/dpkg/status").exists() => {
            Fact::unknown(format!("the dpkg database cannot be read: {e}"))
        }
        (Err(_), Some(Ok(pkgs))) => Fact::known(pkgs, "/var/lib/rpm/rpmdb.sqlite"),
        (Err(_), Some(Err(e))) => Fact::unknown(format!("the rpm database cannot be read: {e}")),
        (Err(_), None) => Fact::unknown("neither a dpkg nor an rpm (sqlite) database was found"),
    };
    PostureReport {
        schema_version: SCHEMA_VERSION,
        collected_at: o.now.clone(),
        agent_version: o.agent_version.clone(),
        nonce: o.nonce.clone(),
        os: os(root),
        last_update: last_update(root),
        antivirus: antivirus(root, o.run_commands),
        firewall: if o.run_commands {
            firewall::in_force()
        } else {
            firewall::from_configuration(root)
        },
        volumes: volumes(root),
        screen_lock: screen_lock::screen_lock(root),
        browsers: match &software {
            Fact::Known { value, source } => Fact::known(browsers(value), source.clone()),
            Fact::Unknown { reason } => Fact::unknown(reason.clone()),
        },
        software,
        tools_on_path: Fact::known(tools_on_path(root, &o.path, &o.watch_tools), "PATH"),
        removable_storage: removable_storage(root),
        wifi: wifi::security(root),
        data_markers: data_markers(root, &o.markers),
    }
}

fn read(root: &Path, rel: &str) -> Option<String> {
    text(&root.join(rel))
}

/// A small file's text (configuration, state, `/proc` and `/sys` entries): at most
/// [`crate::probe::MAX_SOURCE_BYTES`]; a larger one reads as absent, so a 100 MB file
/// where a small one belongs makes its fact unknown instead of filling memory.
pub fn text(path: &Path) -> Option<String> {
    crate::probe::read_bounded(path).ok()
}

/// The dpkg database: large on a desktop (a few MiB for 3,000 packages), bounded all
/// the same.
const MAX_DPKG_STATUS: usize = 64 << 20;

fn os(root: &Path) -> Fact<OsInfo> {
    let Some(rel) = OsRelease::read(root) else {
        return Fact::unknown("no /etc/os-release");
    };
    let kernel = read(root, "proc/sys/kernel/osrelease").map(|s| s.trim().to_owned());
    Fact::known(
        OsInfo {
            family: OsFamily::Linux,
            id: rel.id.clone().unwrap_or_else(|| "linux".into()),
            name: rel.describe(),
            version: rel.version_id.clone().unwrap_or_default(),
            build: None,
            kernel,
        },
        "/etc/os-release, /proc/sys/kernel/osrelease",
    )
}

fn last_update(root: &Path) -> Fact<String> {
    let stamp = root.join("var/lib/apt/periodic/update-success-stamp");
    if let Ok(meta) = std::fs::metadata(&stamp)
        && let Ok(modified) = meta.modified()
        && let Ok(ts) = jiff::Timestamp::try_from(modified)
    {
        return Fact::known(ts.to_string(), "/var/lib/apt/periodic/update-success-stamp");
    }
    // The last completed apt run: "End-Date: 2026-11-28  09:12:44".
    if let Some(history) = read(root, "var/log/apt/history.log")
        && let Some(last) = history
            .lines()
            .filter_map(|l| l.strip_prefix("End-Date: "))
            .next_back()
    {
        let compact = last.split_whitespace().collect::<Vec<_>>().join("T");
        if let Ok(dt) = compact.parse::<jiff::civil::DateTime>() {
            // apt writes local time; without the zone, UTC is a fair reading to the day.
            if let Ok(ts) = jiff::tz::TimeZone::UTC.to_timestamp(dt) {
                return Fact::known(ts.to_string(), "/var/log/apt/history.log");
            }
        }
    }
    Fact::unknown("no record of a successful system update (apt)")
}

/// ClamAV from its files; Microsoft Defender for Endpoint from `mdatp health` on the
/// running system.
fn antivirus(root: &Path, run_commands: bool) -> Fact<Vec<crate::report::Antivirus>> {
    let mut found = Vec::new();
    let mut sources = Vec::new();
    let running = process_running(root, &["clamd"]);
    if let Some(av) = clamav::detect(root, running) {
        found.push(av);
        sources.push("ClamAV (/var/lib/clamav, /proc)");
    }
    let defender = root.join(mdatp::MDATP.trim_start_matches('/')).exists()
        || root.join(mdatp::COMMAND.trim_start_matches('/')).exists();
    if defender {
        if !run_commands {
            sources.push("Microsoft Defender for Endpoint is installed; its health is only read on the running system");
        } else {
            match crate::run::output(mdatp::MDATP, &["health"])
                .and_then(|t| mdatp::parse_health(&t))
            {
                Ok(av) => {
                    found.push(av);
                    sources.push("Microsoft Defender for Endpoint (mdatp health)");
                }
                Err(e) if found.is_empty() => {
                    return Fact::unknown(format!(
                        "Microsoft Defender for Endpoint is installed and its health cannot be read: {e}"
                    ));
                }
                Err(_) => {}
            }
        }
    }
    if sources.is_empty() {
        return Fact::known(
            Vec::new(),
            "no antivirus found (ClamAV, Microsoft Defender for Endpoint)",
        );
    }
    Fact::known(found, sources.join("; "))
}

/// Whether a process with one of `names` runs, from `/proc/*/comm`.
fn process_running(root: &Path, names: &[&str]) -> bool {
    let Ok(entries) = std::fs::read_dir(root.join("proc")) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).take(100_000).any(|e| {
        e.file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            && text(&e.path().join("comm")).is_some_and(|c| names.contains(&c.trim()))
    })
}

fn volumes(root: &Path) -> Fact<Vec<Volume>> {
    let Some(mounts) = read(root, "proc/mounts") else {
        return Fact::unknown("no /proc/mounts");
    };
    let mut out = Vec::new();
    for mount in ["/", "/home"] {
        let Some(device) = mounts.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            let dev = f.next()?;
            (f.next()? == mount).then(|| dev.to_owned())
        }) else {
            continue;
        };
        match dm_crypt(root, &device) {
            Some(encrypted) => out.push(Volume {
                mount: mount.into(),
                encrypted,
            }),
            None => {
                return Fact::unknown(format!(
                    "{mount} is on {device}, whose encryption cannot be read"
                ));
            }
        }
    }
    if out.is_empty() {
        return Fact::unknown("neither / nor /home is a mounted block device");
    }
    Fact::known(out, "/proc/mounts, /sys/block/*/dm")
}

/// Whether `device` is a dm-crypt (LUKS) mapping; `None` when it is not a block device.
fn dm_crypt(root: &Path, device: &str) -> Option<bool> {
    let name = if let Some(m) = device.strip_prefix("/dev/mapper/") {
        m.to_owned()
    } else if let Some(dm) = device.strip_prefix("/dev/") {
        if !dm.starts_with("dm-") {
            return device.starts_with("/dev/").then_some(false);
        }
        return Some(read(root, &format!("sys/block/{dm}/dm/uuid"))?.starts_with("CRYPT-"));
    } else {
        return None;
    };
    let blocks = std::fs::read_dir(root.join("sys/block")).ok()?;
    for b in blocks.filter_map(|e| e.ok()) {
        let dir = b.path().join("dm");
        if text(&dir.join("name")).is_some_and(|n| n.trim() == name) {
            return Some(text(&dir.join("uuid")).is_some_and(|u| u.starts_with("CRYPT-")));
        }
    }
    Some(false)
}

fn browsers(packages: &[Package]) -> Vec<Browser> {
    BROWSER_PACKAGES
        .iter()
        .filter_map(|(pkg, name)| {
            packages.iter().find(|p| p.name == *pkg).map(|p| Browser {
                name: (*name).to_owned(),
                version: p.version.clone(),
            })
        })
        .collect()
}

fn tools_on_path(root: &Path, path: &str, watch: &[String]) -> Vec<String> {
    let mut found: Vec<String> = watch
        .iter()
        .filter(|tool| {
            !tool.contains('/')
                && path
                    .split(':')
                    .filter(|d| d.starts_with('/'))
                    .any(|d| root.join(d.trim_start_matches('/')).join(tool).is_file())
        })
        .cloned()
        .collect();
    found.sort();
    found.dedup();
    found
}

fn removable_storage(root: &Path) -> Fact<RemovableStorage> {
    let Ok(files) = std::fs::read_dir(root.join("etc/modprobe.d")) else {
        return Fact::known(
            RemovableStorage::Allowed,
            "no /etc/modprobe.d rule blocks usb-storage",
        );
    };
    let blocked = files.filter_map(|e| e.ok()).any(|f| {
        text(&f.path()).is_some_and(|t| {
            t.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                matches!(
                    w.as_slice(),
                    ["blacklist", "usb-storage", ..]
                        | ["install", "usb-storage", "/bin/true" | "/bin/false", ..]
                )
            })
        })
    });
    let state = if blocked {
        RemovableStorage::Blocked
    } else {
        RemovableStorage::Allowed
    };
    Fact::known(state, "/etc/modprobe.d")
}

/// Looks for each marker's path in every home directory (or at an absolute path),
/// bounded in files visited and time.
fn data_markers(root: &Path, markers: &[(String, String)]) -> Fact<Vec<String>> {
    if markers.is_empty() {
        return Fact::known(Vec::new(), "no marker to look for");
    }
    let started = Instant::now();
    let mut homes: Vec<PathBuf> = std::fs::read_dir(root.join("home"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .take(MAX_MARKER_FILES)
                .collect()
        })
        .unwrap_or_default();
    homes.push(root.join("root"));
    let mut found = Vec::new();
    let mut visited = 0usize;
    for (name, rel) in markers {
        let candidates: Vec<PathBuf> = if let Some(abs) = rel.strip_prefix('/') {
            vec![root.join(abs)]
        } else {
            homes.iter().map(|h| h.join(rel)).collect()
        };
        for c in candidates {
            visited += 1;
            if visited > MAX_MARKER_FILES || started.elapsed() > MAX_MARKER_TIME {
                return Fact::unknown(format!(
                    "the marker scan stopped at its bound ({MAX_MARKER_FILES} paths or {MAX_MARKER_TIME:?})"
                ));
            }
            if c.exists() {
                found.push(name.clone());
                break;
            }
        }
    }
    found.sort();
    found.dedup();
    Fact::known(found, "the profile's marker paths in each home directory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ScreenLock;

    fn options(root: &Path) -> CollectOptions {
        CollectOptions {
            root: root.to_owned(),
            nonce: "n".into(),
            now: "2026-11-29T10:00:00Z".into(),
            agent_version: "test".into(),
            watch_tools: vec!["nmap".into(), "hydra".into()],
            markers: vec![("payroll-export".into(), "Documents/paie".into())],
            path: "/usr/local/bin:/usr/bin".into(),
            run_commands: false,
        }
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    #[test]
    fn a_fixture_tree_in_the_real_formats() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(
            r,
            "etc/os-release",
            "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\n",
        );
        write(r, "proc/sys/kernel/osrelease", "6.8.0-45-generic\n");
        write(
            r,
            "var/lib/dpkg/status",
            "Package: firefox-esr\nStatus: install ok installed\nVersion: 115.12.0esr-1\n\nPackage: nmap\nStatus: install ok installed\nVersion: 7.94\n",
        );
        write(
            r,
            "var/log/apt/history.log",
            "Start-Date: 2026-11-20  09:00:01\nEnd-Date: 2026-11-20  09:01:44\n\nStart-Date: 2026-11-27  08:00:00\nEnd-Date: 2026-11-27  08:02:10\n",
        );
        write(
            r,
            "etc/ufw/ufw.conf",
            "# comment\nENABLED=yes\nLOGLEVEL=low\n",
        );
        write(
            r,
            "proc/mounts",
            "/dev/mapper/vg-root / ext4 rw 0 0\n/dev/nvme0n1p2 /home ext4 rw 0 0\n",
        );
        write(r, "sys/block/dm-0/dm/name", "vg-root\n");
        write(
            r,
            "sys/block/dm-0/dm/uuid",
            "CRYPT-LUKS2-0123456789abcdef-vg-root\n",
        );
        write(
            r,
            "etc/dconf/db/local.d/00-lock",
            "[org/gnome/desktop/screensaver]\nlock-enabled=true\n\n[org/gnome/desktop/session]\nidle-delay=uint32 300\n",
        );
        write(
            r,
            "usr/share/glib-2.0/schemas/org.gnome.desktop.screensaver.gschema.xml",
            "<key name=\"lock-enabled\" type=\"b\"><default>false</default></key>",
        );
        write(
            r,
            "etc/passwd",
            "amina:x:1000:1000::/home/amina:/bin/bash\n",
        );
        write(r, "usr/bin/hydra", "");
        write(
            r,
            "etc/modprobe.d/usb.conf",
            "install usb-storage /bin/true\n",
        );
        write(r, "home/amina/Documents/paie", "");
        write(r, "proc/1234/comm", "clamd\n");

        let rep = collect(&options(r));
        let os = rep.os.value().expect("os");
        assert_eq!((os.id.as_str(), os.version.as_str()), ("ubuntu", "24.04"));
        assert_eq!(os.kernel.as_deref(), Some("6.8.0-45-generic"));
        assert_eq!(
            rep.last_update.value().map(String::as_str),
            Some("2026-11-27T08:02:10Z")
        );
        assert_eq!(rep.firewall.value().map(|f| f.active), Some(true));
        let vols = rep.volumes.value().expect("volumes");
        assert_eq!(
            vols,
            &vec![
                Volume {
                    mount: "/".into(),
                    encrypted: true
                },
                Volume {
                    mount: "/home".into(),
                    encrypted: false
                }
            ]
        );
        assert_eq!(
            rep.screen_lock.value(),
            Some(&ScreenLock {
                enabled: true,
                idle_delay_secs: Some(300)
            })
        );
        assert_eq!(
            rep.browsers.value().map(|b| b[0].version.as_str()),
            Some("115.12.0esr-1")
        );
        assert_eq!(rep.tools_on_path.value(), Some(&vec!["hydra".to_owned()]));
        assert_eq!(
            rep.removable_storage.value(),
            Some(&RemovableStorage::Blocked)
        );
        assert_eq!(
            rep.data_markers.value(),
            Some(&vec!["payroll-export".to_owned()])
        );
        let av = rep.antivirus.value().expect("antivirus");
        assert!(av[0].running && av[0].signatures_version.is_none());
        assert!(rep.wifi.value().is_none(), "unknown, with its reason");
    }

    /// A 100 MB file where a small one belongs is not read into memory: its fact is
    /// unknown, with the reason.
    #[test]
    fn huge_files_make_facts_unknown() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        for rel in [
            "var/lib/dpkg/status",
            "proc/mounts",
            "etc/ufw/ufw.conf",
            "etc/passwd",
        ] {
            let p = r.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::File::create(&p)
                .and_then(|f| f.set_len(100 << 20))
                .expect("a sparse 100 MB file");
        }
        let rep = collect(&options(r));
        assert!(
            matches!(&rep.software, Fact::Unknown { reason } if reason.contains("larger than")),
            "{:?}",
            rep.software
        );
        assert!(rep.volumes.value().is_none(), "{:?}", rep.volumes);
        assert!(rep.firewall.value().is_none(), "{:?}", rep.firewall);
        assert!(rep.screen_lock.value().is_none(), "{:?}", rep.screen_lock);
    }

    #[test]
    fn an_empty_root_is_unknown_not_compliant() {
        let t = tempfile::tempdir().expect("tempdir");
        let rep = collect(&options(t.path()));
        assert!(rep.os.value().is_none());
        assert!(rep.software.value().is_none());
        assert!(rep.last_update.value().is_none());
        assert!(rep.firewall.value().is_none());
        assert!(rep.volumes.value().is_none());
        assert_eq!(rep.antivirus.value(), Some(&Vec::new()));
    }

    #[test]
    fn this_machine_reports_and_the_report_parses_back() {
        let mut o = options(Path::new("/"));
        o.path = std::env::var("PATH").unwrap_or_default();
        let rep = collect(&o);
        assert!(rep.os.value().is_some());
        let json = serde_json::to_vec(&rep).expect("json");
        assert!(
            json.len() < crate::report::MAX_REPORT_BYTES,
            "{} bytes",
            json.len()
        );
        assert_eq!(PostureReport::parse(&json).expect("parses"), rep);
    }
}
