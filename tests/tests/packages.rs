//! The .deb packages built by deploy/scripts/package.sh (the test script runs it first):
//! their contents, dependencies and maintainer scripts, and the binaries run once
//! unpacked into a throw-away root.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deb(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("debian");
    let path = dir.join(format!("{name}_0.1.0-1_amd64.deb"));
    assert!(
        path.exists(),
        "{} is missing: build the packages with `bash deploy/scripts/package.sh`",
        path.display()
    );
    path
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("dpkg-deb (package dpkg)");
    assert!(
        out.status.success(),
        "dpkg-deb {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dpkg-deb -e` (control files) or `-x` (contents) of `deb` into `dest`.
#[track_caller]
fn unpack(flag: &str, deb: &Path, dest: &Path) {
    let out = Command::new("dpkg-deb")
        .arg(flag)
        .arg(deb)
        .arg(dest)
        .output()
        .expect("dpkg-deb (package dpkg)");
    assert!(
        out.status.success(),
        "dpkg-deb {flag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `usr/bin/NAME --version` prints from an unpacked root.
fn version_of(root: &Path, name: &str) -> String {
    let out = Command::new(root.join("usr/bin").join(name))
        .arg("--version")
        .output()
        .expect("run the unpacked binary");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[track_caller]
fn has(listing: &str, mode: &str, path: &str) {
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(mode) && l.ends_with(path)),
        "{mode} {path} missing from:\n{listing}"
    );
}

#[test]
fn the_gateway_package() {
    let deb = deb("ztgw");
    let files = dpkg_deb(&["-c"], &deb);
    has(&files, "-rwxr-xr-x", "./usr/bin/ztgw");
    has(&files, "-rw-r--r--", "./lib/systemd/system/ztgw.service");
    has(&files, "-rw-r--r--", "./usr/share/doc/ztgw/operators.md");
    has(
        &files,
        "-rw-r--r--",
        "./usr/share/doc/ztgw/examples/policy.toml",
    );
    has(
        &files,
        "-rw-r--r--",
        "./usr/share/man/man1/ztgw-device-revoke.1.gz",
    );
    has(
        &files,
        "-rw-r--r--",
        "./usr/share/bash-completion/completions/ztgw",
    );
    assert!(
        !files.contains("ca.key") && !files.contains("./etc/"),
        "no state or key is shipped"
    );
    let info = dpkg_deb(&["-I"], &deb);
    assert!(
        info.contains("Depends:") && info.contains("adduser") && info.contains("tzdata"),
        "{info}"
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let control = tmp.path().join("control");
    unpack("-e", &deb, &control);
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    for needed in [
        "addgroup --system ztgw",
        "addgroup --system auditors",
        "adduser --system",
        "install -d -m 0750 -o root -g ztgw /etc/ztgw",
    ] {
        assert!(postinst.contains(needed), "postinst lacks {needed:?}");
    }
    let postrm = std::fs::read_to_string(control.join("postrm")).expect("postrm");
    assert!(
        !postrm.contains("rm -rf /etc/ztgw"),
        "the state and journal are never deleted"
    );
    for script in ["postinst", "postrm"] {
        let ok = Command::new("sh")
            .arg("-n")
            .arg(control.join(script))
            .status()
            .expect("sh");
        assert!(ok.success(), "{script} is not valid shell");
    }

    // Unpacked into a throw-away root, the binary runs.
    let root = tmp.path().join("root");
    unpack("-x", &deb, &root);
    assert_eq!(version_of(&root, "ztgw"), "ztgw 0.1.0");
}

#[test]
fn the_agent_package() {
    let deb = deb("ztgw-agent");
    let files = dpkg_deb(&["-c"], &deb);
    has(&files, "-rwxr-xr-x", "./usr/bin/ztgw-agent");
    has(
        &files,
        "-rw-r--r--",
        "./lib/systemd/system/ztgw-agent.service",
    );
    has(
        &files,
        "-rw-r--r--",
        "./lib/systemd/system/ztgw-agent.timer",
    );
    has(
        &files,
        "-rw-r--r--",
        "./usr/share/doc/ztgw-agent/employees.md",
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let control = tmp.path().join("control");
    unpack("-e", &deb, &control);
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    assert!(
        postinst.contains("install -d -m 0700 /var/lib/ztgw-agent"),
        "{postinst}"
    );
    let root = tmp.path().join("root");
    unpack("-x", &deb, &root);
    assert_eq!(version_of(&root, "ztgw-agent"), "ztgw-agent 0.1.0");
}
