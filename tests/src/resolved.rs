//! A laptop's own systemd-resolved, inside its network namespace: what the agent's split
//! DNS (#18) talks to on a Linux laptop.
//!
//! Debian's `systemd-resolved` package is unpacked, not installed: installing it would
//! take over this machine's `/etc/resolv.conf`. `deploy/scripts/test.sh` unpacks the
//! version matching the installed systemd into [`root`]. The daemon runs in the laptop's
//! namespace and a mount namespace of its own (a tmpfs on `/run/systemd`, the laptop's
//! `resolv.conf` bound over `/etc/resolv.conf`), as `nobody` with the capabilities its
//! unit gives it, and talks on a private system bus (a `dbus-daemon` of the test's):
//! commands reach it through `DBUS_SYSTEM_BUS_ADDRESS`. Nothing of the host changes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::netns::{self, Netns, Proc};

/// Where test.sh unpacks systemd-resolved for the installed systemd's version.
pub fn root() -> PathBuf {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "systemd"])
        .output()
        .expect("dpkg-query");
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !version.is_empty(),
        "systemd is not installed: apt-get install systemd"
    );
    let root = PathBuf::from(format!("/var/cache/ztgw-tests/systemd-resolved-{version}"));
    assert!(
        root.join("lib/systemd/systemd-resolved").exists()
            && root.join("usr/bin/resolvectl").exists(),
        "systemd-resolved {version} is not unpacked in {root}: run deploy/scripts/test.sh, or \
         `apt-get download systemd-resolved={version} && dpkg-deb -x systemd-resolved_*.deb {root}` \
         (unpacked, not installed: installing it would take over this machine's /etc/resolv.conf)",
        root = root.display()
    );
    root
}

/// systemd-resolved running for one laptop; stopped on drop.
#[derive(Debug)]
pub struct Resolved {
    resolved: Proc,
    bus: Proc,
    bus_address: String,
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Resolved {
    /// Starts it in `ns`, its own resolver being `nameserver` (the laptop's
    /// `resolv.conf`, as the home router's DHCP gave it).
    pub fn start(ns: &Netns, nameserver: &str) -> Self {
        netns::require("dbus-daemon", "dbus-daemon");
        netns::require("setpriv", "util-linux");
        let root = root();
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("system_bus_socket");
        let bus_address = format!("unix:path={}", socket.display());
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&socket)).expect("bus.conf");
        let bus = Proc::spawn({
            let mut c = ns.command("dbus-daemon");
            c.arg(format!("--config-file={}", config.display()))
                .args(["--nofork", "--nopidfile"])
                .stderr(Stdio::null());
            c
        });
        assert!(
            netns::eventually(Duration::from_secs(5), || socket.exists()),
            "the test's dbus-daemon did not start"
        );
        let resolv_conf = dir.path().join("resolv.conf");
        std::fs::write(&resolv_conf, format!("nameserver {nameserver}\n")).expect("resolv.conf");
        let caps = "+net_bind_service,+net_raw,+setpcap";
        let script = format!(
            "mount -t tmpfs -o mode=0755 ztgw-test /run/systemd \
             && mkdir -p /run/systemd/resolve /run/systemd/resolved.conf.d \
             && chown nobody:nogroup /run/systemd/resolve \
             && printf '[Resolve]\\nLLMNR=no\\nMulticastDNS=no\\n' > /run/systemd/resolved.conf.d/test.conf \
             && mount --bind {resolv} /etc/resolv.conf \
             && exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
                --inh-caps={caps} --ambient-caps={caps} {daemon}",
            resolv = resolv_conf.display(),
            daemon = root.join("lib/systemd/systemd-resolved").display(),
        );
        let resolved = Proc::spawn({
            let mut c = ns.command("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c", &script])
                .env("DBUS_SYSTEM_BUS_ADDRESS", &bus_address)
                .stderr(Stdio::null());
            c
        });
        let me = Self {
            resolved,
            bus,
            bus_address,
            bin: root.join("usr/bin"),
            _dir: dir,
        };
        assert!(
            netns::eventually(Duration::from_secs(10), || {
                me.resolvectl(ns, &["status"]).status.success()
            }),
            "systemd-resolved did not start in the laptop's namespace"
        );
        me
    }

    /// `PATH` with `resolvectl` on it and the bus address: what a command needs to talk to
    /// this resolved.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "PATH",
                format!(
                    "{}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                    self.bin.display()
                ),
            ),
            ("DBUS_SYSTEM_BUS_ADDRESS", self.bus_address.clone()),
        ]
    }

    /// Runs `resolvectl ARGS` in `ns`.
    pub fn resolvectl(&self, ns: &Netns, args: &[&str]) -> std::process::Output {
        ns.command(self.bin.join("resolvectl"))
            .args(args)
            .envs(self.env())
            .output()
            .expect("resolvectl")
    }

    /// What resolved routes where: `resolvectl dns` and `resolvectl domain`, as text.
    pub fn routing(&self, ns: &Netns) -> String {
        ["dns", "domain"]
            .iter()
            .map(|what| String::from_utf8_lossy(&self.resolvectl(ns, &[what]).stdout).into_owned())
            .collect()
    }
}

impl Drop for Resolved {
    fn drop(&mut self) {
        let _ = self.resolved.child.kill();
        let _ = self.resolved.child.wait();
        let _ = self.bus.child.kill();
    }
}

/// A system bus for one test: anyone on it may own names and call anything (resolved
/// still checks that callers changing a link's DNS hold CAP_NET_ADMIN).
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}
