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
        "make_dir /etc/ztgw 0750 root ztgw",
        "make_dir /var/lib/ztgw 0750 ztgw ztgw",
        "make_dir /var/log/ztgw 0750 ztgw auditors",
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
        postinst.contains("mkdir -m 0700 /var/lib/ztgw-agent"),
        "{postinst}"
    );
    let root = tmp.path().join("root");
    unpack("-x", &deb, &root);
    assert_eq!(version_of(&root, "ztgw-agent"), "ztgw-agent 0.1.0");
}

/// The auditors' package: one command and the auditors' docs; it needs no SQLite (nor
/// any of the gateway's libraries) and runs from where it is unpacked.
#[test]
fn the_audit_package() {
    let deb = deb("ztgw-audit");
    let files = dpkg_deb(&["-c"], &deb);
    has(&files, "-rwxr-xr-x", "./usr/bin/ztgw-audit");
    has(
        &files,
        "-rw-r--r--",
        "./usr/share/doc/ztgw-audit/auditors.md",
    );
    has(
        &files,
        "-rw-r--r--",
        "./usr/share/doc/ztgw-audit/journal.md",
    );
    has(
        &files,
        "-rwxr-xr-x",
        "./usr/share/doc/ztgw-audit/verify-journal.py",
    );
    let depends = dpkg_deb(&["-f"], &deb);
    assert!(!depends.contains("sqlite"), "{depends}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    unpack("-x", &deb, &root);
    assert_eq!(version_of(&root, "ztgw-audit"), "ztgw-audit 0.1.0");
}

/// Installing, using and upgrading the packages on a copy-on-write view of this machine
/// (an overlay over `/` in a private mount namespace, entered with `chroot`: nothing
/// reaches the real system). As the operator's guide says: install, `ztgw init` with the
/// packaged layout (configuration in /etc/ztgw, state in /var/lib/ztgw, journal in
/// /var/log/ztgw/journal, given to the service user), run the gateway as that user, enrol
/// a device; then reinstall the same packages and a newer version of them. The gateway
/// starts again, still knows the device, and can still write its registry (an upgrade
/// once reset /etc/ztgw's owner and made the registry read-only); no directory's owner
/// or mode changed. The service cannot write its configuration; the auditors' group
/// reads the journal. Needs root (CI is root).
#[test]
fn an_upgrade_keeps_the_state_and_the_service_can_still_write_it() {
    let (gw, agent) = (deb("ztgw"), deb("ztgw-agent"));
    let tmp = tempfile::tempdir().expect("tempdir");
    // A newer version of the gateway package: the same contents, version 0.1.0-2.
    let tree = tmp.path().join("newer");
    unpack("-R", &gw, &tree);
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).expect("control");
    std::fs::write(
        &control,
        text.replace("Version: 0.1.0-1", "Version: 0.1.0-2"),
    )
    .expect("control");
    let newer = tmp.path().join("ztgw_0.1.0-2_amd64.deb");
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&tree)
        .arg(&newer)
        .output()
        .expect("dpkg-deb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = ztgw_tests::free_port();
    let script = r#"
set -euo pipefail
W=$1; GW=$2; AGENT=$3; NEWER=$4; PORT=$5
mount -t tmpfs tmpfs "$W"
mkdir -p "$W/up" "$W/work" "$W/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/up,workdir=$W/work" "$W/root"
R="$W/root"
mount --bind /proc "$R/proc"; mount --bind /dev "$R/dev"; mount --bind /sys "$R/sys"
mount -t tmpfs tmpfs "$R/run"
inside() { chroot "$R" "$@"; }
as_admin() { inside env ZTGW_CONFIG=/etc/ztgw/gateway.toml "$@"; }
as_service() { chroot "$R" setpriv --reuid=ztgw --regid=ztgw --init-groups "$@"; }
dirs() { inside stat -c '%n %U:%G %a' /etc/ztgw /var/lib/ztgw /var/log/ztgw /var/log/ztgw/journal; }
SOCKET="$R/var/lib/ztgw/admin.sock"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
serve() {
    # A socket left by the previous run is not the sign of this one.
    rm -f "$SOCKET"
    # Not through a function: $! must be the gateway itself (chroot, setpriv and env
    # each exec the next).
    chroot "$R" setpriv --reuid=ztgw --regid=ztgw --init-groups \
        env ZTGW_CONFIG=/etc/ztgw/gateway.toml RUST_LOG=warn ztgw serve &
    for _ in $(seq 100); do
        [ -S "$SOCKET" ] && return 0
        sleep 0.2
    done
    echo "the gateway did not start" >&2; return 1
}
stop() { kill "$1" && wait "$1" || { echo "the gateway had stopped" >&2; return 1; }; }

inside dpkg -i "$GW" "$AGENT" >/dev/null
inside ztgw init --dir /etc/ztgw --state-dir /var/lib/ztgw \
    --journal-dir /var/log/ztgw/journal --owner ztgw \
    --name 127.0.0.1 --endpoint 127.0.0.1:51820 --control-listen "127.0.0.1:$PORT" >/dev/null
# No data plane here (it would need a TUN device in this machine's namespace); a free
# metrics port.
sed -i -e 's/^enabled = true/enabled = false/' \
    -e 's/^listen = "127.0.0.1:9469"/listen = "127.0.0.1:0"/' "$R/etc/ztgw/gateway.toml"
before=$(dirs)
echo "$before"
serve; pid=$!
# The configuration is root's: the service reads it and cannot change it.
inside stat -c '%n %U %a' /etc/ztgw/gateway.toml /etc/ztgw/policy.toml
as_service cat /etc/ztgw/gateway.toml /etc/ztgw/policy.toml >/dev/null
if as_service sh -c 'echo x >> /etc/ztgw/policy.toml' 2>/dev/null \
    || as_service touch /etc/ztgw/new 2>/dev/null; then
    echo "the service can write its configuration" >&2; exit 1
fi
inside stat -c '%n %U:%G %a' /var/lib/ztgw/ca.key /var/lib/ztgw/registry.db
# An auditor (a member of the auditors' group, nothing else) verifies the journal.
inside adduser --system --no-create-home --ingroup auditors aud >/dev/null 2>&1
cp "$R/var/lib/ztgw/journal.pub" "$R/tmp/journal.pub"
chroot "$R" setpriv --reuid=aud --regid=auditors --init-groups \
    ztgw journal verify --dir /var/log/ztgw/journal --public-key /tmp/journal.pub
inv=$(as_admin ztgw invite --employee e1 --role finance --approved-by head \
    --reference DEC-1 --json | grep -o '"invitation": *"[^"]*"' | cut -d'"' -f4)
inside ztgw-agent --state-dir /var/lib/ztgw-agent enroll "$inv" --ownership administration \
    >/dev/null
stop "$pid"

inside dpkg -i "$GW" "$AGENT" >/dev/null
inside dpkg -i "$NEWER" >/dev/null
after=$(dirs)
[ "$before" = "$after" ] || { echo "the upgrade changed a directory: $before -> $after" >&2; exit 1; }
inside dpkg-query -W -f '${Version}\n' ztgw
serve; pid=$!
as_admin ztgw device list
as_admin ztgw invite --employee e2 --role finance --approved-by head --reference DEC-2 \
    >/dev/null
echo "registry writable"
stop "$pid"
"#;
    let work = tmp.path().join("overlay");
    std::fs::create_dir(&work).expect("dir");
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            script,
            "upgrade",
        ])
        .arg(&work)
        .arg(&gw)
        .arg(&agent)
        .arg(&newer)
        .arg(port.to_string())
        .output()
        .expect("unshare (util-linux)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the upgrade test failed: {said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("0.1.0-2"),
        "the newer version is installed: {said}"
    );
    assert!(said.contains("e1"), "the device is still known: {said}");
    assert!(said.contains("registry writable"), "{said}");
    for line in [
        "/etc/ztgw root:ztgw 750",
        "/var/lib/ztgw ztgw:ztgw 750",
        "/var/log/ztgw ztgw:auditors 750",
        "/var/log/ztgw/journal ztgw:auditors 750",
        "/etc/ztgw/gateway.toml root 644",
        "/etc/ztgw/policy.toml root 644",
        "/var/lib/ztgw/ca.key ztgw:ztgw 600",
        "/var/lib/ztgw/registry.db ztgw:ztgw 600",
    ] {
        assert!(said.contains(line), "{line:?} in: {said}");
    }
    assert!(
        said.contains("intact"),
        "the auditor verified the journal: {said}"
    );
}
