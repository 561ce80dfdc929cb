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
