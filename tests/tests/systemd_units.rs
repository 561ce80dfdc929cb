//! The systemd units in deploy/systemd pass `systemd-analyze verify`, with the binary
//! paths pointed at this build.

use std::path::Path;
use std::process::Command;

use ztgw_tests::binary;

#[test]
fn the_units_verify() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let tmp = tempfile::tempdir().expect("tempdir");
    let gateway = binary("ztgw");
    let agent = binary("ztgw-agent");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&units).expect("deploy/systemd") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path)
            .expect("unit")
            .replace("/usr/bin/ztgw-agent", &agent.display().to_string())
            .replace("/usr/bin/ztgw ", &format!("{} ", gateway.display()));
        std::fs::write(tmp.path().join(&name), text).expect("write");
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        ["ztgw-agent.service", "ztgw-agent.timer", "ztgw.service"]
    );
    for name in names.iter().filter(|n| n.ends_with(".service")) {
        // systemd's own exposure score, on the unit files: at most 3.0 of 10 ("OK").
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=30"])
            .arg(tmp.path().join(name))
            .output()
            .expect("systemd-analyze");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: exposure above 3.0:\n{text}");
    }
    for name in names {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(tmp.path().join(&name))
            .output()
            .expect("systemd-analyze is missing: install it with `apt-get install systemd`");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{name}: {stderr}"
        );
    }
}

/// The layout the package and `ztgw init` agree on: under `ProtectSystem=strict` the
/// service may write its state (`/var/lib/ztgw`) and the journal's directory, never its
/// configuration in `/etc`; the journal's directory is not one systemd re-owns on start
/// (a `LogsDirectory` would be given to the service's group, away from the auditors).
#[test]
fn the_gateway_unit_writes_its_state_and_journal_only() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/ztgw.service"),
    )
    .expect("unit");
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let all = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(all("ProtectSystem"), ["strict"]);
    assert_eq!(all("StateDirectory"), ["ztgw"]);
    assert_eq!(all("StateDirectoryMode"), ["0750"]);
    assert_eq!(all("ReadWritePaths"), ["-/var/log/ztgw"]);
    for managed in [
        "LogsDirectory",
        "ConfigurationDirectory",
        "RuntimeDirectory",
    ] {
        assert!(all(managed).is_empty(), "{managed} in the gateway's unit");
    }
    assert_eq!(all("Environment"), ["ZTGW_CONFIG=/etc/ztgw/gateway.toml"]);
}
