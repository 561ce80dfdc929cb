//! The whole product in network namespaces: `ztgw serve` in the gateway's namespace, the
//! internal network behind it, and laptops that enrol with `ztgw-agent` and connect
//! through the real wireguard-go client.
//!
//! ```text
//! laptop N (ztgw-agent, wireguard-go) --192.168.N.0/24-- gateway --10.20.0.0/16-- internal
//! ```
//!
//! Every laptop reaches the gateway at 192.0.2.1 (control plane :8443, WireGuard
//! :51820), an address on the gateway's loopback routed through each laptop's link.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::lab::{DNS, internal_network};
use crate::netns::{self, Netns, Proc, WgClient};

pub const GATEWAY: &str = "192.0.2.1";

/// A laptop's posture root (a directory the collector reads as `/`): a compliant one, or
/// one with a forbidden tool (for the `lab` profile); the compliant Debian 12 GNOME
/// laptop, or a Windows 11 laptop's capture, on WPA2 or on an open Wi-Fi (for the
/// `standard` profile of the policy `ztgw init` writes, see [`standard_policy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posture {
    Compliant,
    ForbiddenTool,
    Debian,
    Windows,
    WindowsOpenWifi,
}

#[derive(Debug)]
pub struct Site {
    pub serve: Proc,
    pub servers: Proc,
    pub gw: Netns,
    pub internal: Netns,
    pub config: PathBuf,
    links: u8,
    pub dir: tempfile::TempDir,
    /// The registry, when the suite runs on PostgreSQL ([`crate::postgres_registry`]).
    pub pg: Option<crate::postgres::Postgres>,
}

#[derive(Debug)]
pub struct SiteLaptop {
    pub wg: WgClient,
    pub ns: Netns,
    pub state: PathBuf,
    pub posture_root: PathBuf,
    pub device: String,
    pub employee: String,
    /// The second factor's secret (base32), as enrolment showed it.
    pub totp_secret: Option<String>,
}

impl Site {
    /// A gateway with `policy` (its roles use posture profile `lab`, see
    /// [`lab_policy`]).
    pub fn new(policy: &str) -> Self {
        Self::new_with(policy, |settings| settings)
    }

    /// As [`Site::new`], with `edit` applied to gateway.toml before the gateway starts.
    pub fn new_with(policy: &str, edit: impl FnOnce(String) -> String) -> Self {
        Self::new_named(policy, &[], edit)
    }

    /// As [`Site::new_with`], the gateway's certificate also naming `names` (addresses
    /// the gateway is reached at besides [`GATEWAY`], such as its web console's).
    pub fn new_named(policy: &str, names: &[&str], edit: impl FnOnce(String) -> String) -> Self {
        netns::require("wireguard-go", "wireguard-go");
        let dir = tempfile::tempdir().expect("tempdir");
        let gw = Netns::new("zs");
        gw.ip(&["addr", "add", &format!("{GATEWAY}/32"), "dev", "lo"]);
        let (internal, servers) = internal_network(&gw, false);
        let state = dir.path().join("state");
        netns::run(
            Command::new(crate::binary("ztgw"))
                .args(["init", "--dir"])
                .arg(&state)
                .args(["--name", GATEWAY, "--endpoint", &format!("{GATEWAY}:51820")])
                .args(names.iter().flat_map(|n| ["--name", n]))
                .args(["--control-listen", &format!("{GATEWAY}:8443")]),
        );
        let config = state.join("gateway.toml");
        let text = std::fs::read_to_string(&config).expect("settings");
        let text = text
            .replace(
                "interface = \"ztgw0\"",
                &format!("interface = {:?}", netns::unique("zt")),
            )
            .replace("workers = 0", "workers = 1");
        let pg = crate::postgres_registry();
        std::fs::write(&config, crate::with_registry(edit(text), pg.as_ref())).expect("settings");
        std::fs::write(state.join("policy.toml"), policy).expect("policy");
        let serve = serve(&gw, &config);
        Self {
            serve,
            servers,
            gw,
            internal,
            config,
            links: 0,
            dir,
            pg,
        }
    }

    /// Stops `ztgw serve` — with SIGTERM, as a service manager does, or at once (SIGKILL:
    /// a crash) — and starts it again on the same configuration and state.
    pub fn restart(&mut self, crash: bool) {
        let pid = self.serve.child.id().to_string();
        if crash {
            let _ = self.serve.child.kill();
        } else {
            netns::run(Command::new("kill").args(["-TERM", &pid]));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.serve.child.try_wait().ok().flatten().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "ztgw serve did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.serve = serve(&self.gw, &self.config);
    }

    /// Runs `ztgw ARGS` against this gateway (through its admin socket).
    pub fn ztgw(&self, args: &[&str]) -> Output {
        Command::new(crate::binary("ztgw"))
            .env("ZTGW_CONFIG", &self.config)
            .args(args)
            .output()
            .expect("run ztgw")
    }

    /// `ztgw ARGS`, which must succeed; its standard output.
    pub fn ztgw_ok(&self, args: &[&str]) -> String {
        let out = self.ztgw(args);
        assert!(
            out.status.success(),
            "ztgw {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The journal's events of `kind` (their `event` objects).
    pub fn journal(&self, kind: &str) -> Vec<serde_json::Value> {
        self.ztgw_ok(&["journal", "query", "--type", kind, "--json"])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["event"].clone())
            .collect()
    }

    /// The gateway's metrics page, as scraped now.
    pub fn metrics(&self) -> String {
        netns::run(
            self.gw
                .command("curl")
                .args(["-s", "http://127.0.0.1:9469/metrics"]),
        )
    }

    /// The value of metric line `name` (with its labels) on `page`.
    pub fn metric(page: &str, name: &str) -> Option<f64> {
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Scrapes the metrics and checks the invariant they show: every live session has
    /// one peer and every peer one live session (`ztgw_sessions == ztgw_wireguard_peers`),
    /// and reconciliation never had anything to remove. Returns the number of sessions.
    pub fn assert_sessions_match_peers(&self) -> u64 {
        let page = self.metrics();
        let sessions = Self::metric(&page, "ztgw_sessions");
        let peers = Self::metric(&page, "ztgw_wireguard_peers");
        assert!(
            sessions.is_some() && sessions == peers,
            "ztgw_sessions {sessions:?} != ztgw_wireguard_peers {peers:?}:\n{page}"
        );
        assert_eq!(
            Self::metric(&page, "ztgw_sessions_orphans_removed_total"),
            Some(0.0),
            "reconciliation removed something:\n{page}"
        );
        sessions.map_or(0, |n| n as u64)
    }

    /// The live sessions (`ztgw session list --json`).
    pub fn sessions(&self) -> Vec<serde_json::Value> {
        let list: serde_json::Value =
            serde_json::from_str(&self.ztgw_ok(&["session", "list", "--json"])).expect("json");
        list["sessions"].as_array().cloned().unwrap_or_default()
    }

    /// A host outside, on its own link to the gateway and with its own address, that
    /// reaches the gateway's address (and holds no credential): an attacker's.
    pub fn outside(&mut self) -> Netns {
        self.host("zo")
    }

    /// A namespace (names starting with `prefix`) on a link of its own to the gateway,
    /// with a route to the gateway's address.
    fn host(&mut self, prefix: &str) -> Netns {
        self.links += 1;
        let n = self.links;
        let ns = Netns::new(prefix);
        netns::link(
            &self.gw,
            &format!("192.168.{n}.1/24"),
            &ns,
            &format!("192.168.{n}.2/24"),
        );
        ns.ip(&[
            "route",
            "add",
            &format!("{GATEWAY}/32"),
            "via",
            &format!("192.168.{n}.1"),
        ]);
        ns
    }

    /// An IPv6-only internal network behind the gateway (`fd00:30::/64`, the gateway at
    /// `fd00:30::1`, routing back to `fd00:64::/64`), with a server at `server` (an
    /// address of it) on tcp/80 and udp/53 (echo); IPv6 forwarding on.
    pub fn ipv6_network(&self, server: &str) -> (Netns, Proc) {
        let internal6 = Netns::new("z6");
        // No duplicate address detection on the new link: its addresses answer at once.
        for ns in [&self.gw, &internal6] {
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        }
        netns::link(
            &self.gw,
            "fd00:30::1/64",
            &internal6,
            &format!("{server}/64"),
        );
        internal6.ip(&["-6", "route", "add", "fd00:64::/64", "via", "fd00:30::1"]);
        self.gw.sysctl("net.ipv6.conf.all.forwarding", "1");
        let mut p = Proc::spawn({
            let mut c = internal6.command(crate::binary("netns-probe"));
            c.args(["serve", "--tcp", "80", "--tcp-bind", "::"])
                .args(["--udp", "53", "--addrs", server]);
            c
        });
        assert_eq!(p.line(), "ready");
        (internal6, p)
    }

    /// An invitation for `employee` in `role`, as the security unit makes it.
    pub fn invitation(&self, employee: &str, role: &str) -> String {
        invite(|args| self.ztgw_ok(args), employee, role)
    }

    /// A laptop invited for `employee` in `role`, enrolled with the agent, with a
    /// wireguard-go interface waiting to be configured.
    pub fn laptop(&mut self, employee: &str, role: &str, posture: Posture) -> SiteLaptop {
        let invitation = self.invitation(employee, role);
        self.enrol(employee, &invitation, posture, &[], None)
            .unwrap_or_else(|e| panic!("enroll: {e}"))
    }

    /// A laptop enrolled with `invitation`, `ztgw-agent enroll` given `args` more and
    /// `stdin` (a directory password); what it said on failure.
    pub fn enrol(
        &mut self,
        employee: &str,
        invitation: &str,
        posture: Posture,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<SiteLaptop, String> {
        let ns = self.host("zl");
        enrol_laptop(
            ns,
            self.dir.path(),
            employee,
            invitation,
            posture,
            args,
            stdin,
        )
    }
}

/// An invitation for `employee` in `role`, made with `ztgw_ok` (which runs `ztgw ARGS`
/// on a gateway and gives its standard output).
pub fn invite(ztgw_ok: impl FnOnce(&[&str]) -> String, employee: &str, role: &str) -> String {
    let out = ztgw_ok(&[
        "invite",
        "--employee",
        employee,
        "--role",
        role,
        "--approved-by",
        "Head of IT",
        "--reference",
        "DEC-TEST",
        "--json",
    ]);
    let invite: serde_json::Value = serde_json::from_str(&out).expect("invite JSON");
    invite["invitation"]
        .as_str()
        .expect("invitation")
        .to_owned()
}

/// Enrols a laptop in `ns` with `invitation` (`ztgw-agent enroll` given `args` more and
/// `stdin`), its state and posture root in `dir`; what the agent said on failure.
pub fn enrol_laptop(
    ns: Netns,
    dir: &Path,
    employee: &str,
    invitation: &str,
    posture: Posture,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<SiteLaptop, String> {
    let state = dir.join(format!("agent-{employee}"));
    let mut cmd = ns.command(crate::binary("ztgw-agent"));
    cmd.arg("--state-dir")
        .arg(&state)
        .args(["enroll", invitation, "--ownership", "administration"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run ztgw-agent");
    {
        use std::io::Write as _;
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("stdin");
        }
    }
    let out = child.wait_with_output().expect("ztgw-agent enroll");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let device = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("dev-"))
        .map(|w| w.trim_end_matches(['.', ',']).to_owned())
        .expect("device id");
    let totp_secret = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.split("30 s): ").nth(1).map(str::to_owned));
    let posture_root = match posture {
        Posture::Compliant | Posture::ForbiddenTool => {
            let root = dir.join(format!("root-{employee}"));
            make_root(&root, posture);
            root
        }
        Posture::Debian => crate::laptop::compliant_debian(&dir.join(format!("root-{employee}"))),
        Posture::Windows | Posture::WindowsOpenWifi => {
            let root = crate::laptop::compliant_windows(&dir.join(format!("root-{employee}")));
            if posture == Posture::WindowsOpenWifi {
                crate::laptop::windows_source(
                    &root,
                    "netsh-wlan-interfaces.txt",
                    crate::laptop::NETSH_OPEN_WIFI,
                );
            }
            root
        }
    };
    Ok(SiteLaptop {
        wg: WgClient::bare(&ns),
        ns,
        state,
        posture_root,
        device,
        employee: employee.to_owned(),
        totp_secret,
    })
}

impl SiteLaptop {
    /// Starts `ztgw-agent connect` on the wireguard-go interface; returns the running
    /// agent once it reports the connection (or its output if it exits first).
    pub fn connect(&self) -> Result<Proc, String> {
        self.connect_with(&[])
    }

    /// As [`SiteLaptop::connect`], with more arguments for `connect`.
    pub fn connect_with(&self, args: &[&str]) -> Result<Proc, String> {
        self.connect_env(args, &[])
    }

    /// As [`SiteLaptop::connect_with`], with more environment for the agent.
    pub fn connect_env(&self, args: &[&str], env: &[(&str, String)]) -> Result<Proc, String> {
        let mut cmd = self.ns.command(crate::binary("ztgw-agent"));
        cmd.arg("--state-dir")
            .arg(&self.state)
            .args([
                "connect",
                "--wg-interface",
                &self.wg.iface,
                "--posture-root",
            ])
            .arg(&self.posture_root)
            .args(args)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::piped());
        let mut p = Proc::spawn(cmd);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = p.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = p.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(err);
            }
            if p.try_line(Duration::from_millis(100))
                .is_some_and(|l| l.starts_with("Connected"))
            {
                return Ok(p);
            }
            if Instant::now() > deadline {
                return Err("the agent did not connect in 20 s".into());
            }
        }
    }

    /// The second factor's current code.
    pub fn totp_code(&self) -> String {
        let secret = self
            .totp_secret
            .as_deref()
            .expect("enrolment showed a secret");
        let s = ztgw_pki::totp::TotpSecret::from_base32(secret).expect("base32");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        format!("{:06}", s.code(ztgw_pki::totp::step_at(now)))
    }

    pub fn agent(&self, args: &[&str]) -> Output {
        agent(&self.ns, &self.state, args)
    }

    pub fn probe(&self, args: &[&str]) -> bool {
        self.ns.succeeds(crate::binary("netns-probe"), args)
    }

    /// Whether DNS answers through the tunnel now.
    pub fn reaches_dns(&self) -> bool {
        self.probe(&["udp", &format!("{DNS}:53"), "--timeout-ms", "700"])
    }
}

pub fn agent(ns: &Netns, state: &Path, args: &[&str]) -> Output {
    ns.command(crate::binary("ztgw-agent"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run ztgw-agent")
}

/// Starts `ztgw serve` in `gw` with `config`; returns once it answers on its control
/// plane.
fn serve(gw: &Netns, config: &Path) -> Proc {
    serve_at(gw, config, GATEWAY)
}

/// [`serve`] for a gateway whose control plane is at `address`:8443.
pub fn serve_at(gw: &Netns, config: &Path, address: &str) -> Proc {
    let mut cmd = gw.command(crate::binary("ztgw"));
    cmd.env("ZTGW_CONFIG", config)
        .env("RUST_LOG", "warn")
        .arg("serve")
        .stdout(Stdio::null());
    let serve = Proc::spawn(cmd);
    let socket = config.with_file_name("admin.sock");
    assert!(
        netns::eventually(Duration::from_secs(20), || socket.exists()
            && gw.succeeds(
                "bash",
                &["-c", &format!("exec 3<>/dev/tcp/{address}/8443")]
            )),
        "ztgw serve did not start"
    );
    serve
}

/// A posture root the collector reads: this system's os-release, a fresh update stamp,
/// and (for `ForbiddenTool`) an `nmap` on PATH.
pub fn make_root(root: &Path, posture: Posture) {
    std::fs::create_dir_all(root.join("etc")).expect("root");
    let os = std::fs::read("/etc/os-release").expect("/etc/os-release");
    std::fs::write(root.join("etc/os-release"), os).expect("os-release");
    let stamp = root.join("var/lib/apt/periodic");
    std::fs::create_dir_all(&stamp).expect("stamp dir");
    std::fs::write(stamp.join("update-success-stamp"), b"").expect("stamp");
    std::fs::create_dir_all(root.join("var/lib/dpkg")).expect("dpkg dir");
    std::fs::write(
        root.join("var/lib/dpkg/status"),
        "Package: base-files\nStatus: install ok installed\nVersion: 12.4\n\n",
    )
    .expect("dpkg status");
    std::fs::create_dir_all(root.join("usr/bin")).expect("bin");
    if posture == Posture::ForbiddenTool {
        use std::os::unix::fs::PermissionsExt as _;
        let nmap = root.join("usr/bin/nmap");
        std::fs::write(&nmap, b"#!/bin/sh\n").expect("nmap");
        std::fs::set_permissions(&nmap, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// A policy for site tests: `finance` reaches the database and DNS, `hr` DNS and the
/// intranet, both under `schedule` (a `[schedules.NAME]` body), with a posture profile
/// that checks the system is recognised and updated and that no forbidden tool is
/// installed.
pub fn lab_policy(schedule: &str) -> String {
    format!(
        r#"
[resources.database]
hosts = ["10.20.1.0/24"]
ports = ["tcp/5432", "icmp"]
[resources.dns]
hosts = ["10.20.0.53"]
ports = ["udp/53"]
[resources.intranet]
hosts = ["10.20.0.10"]
ports = ["tcp/80"]
[schedules.office]
{schedule}
[posture.lab]
antivirus_required = false
antivirus_running = false
firewall_required = false
disk_encryption_required = false
screen_lock_required = false
open_wifi_forbidden = false
[roles.finance]
resources = ["database", "dns"]
schedule = "office"
posture = "lab"
[roles.hr]
resources = ["dns", "intranet"]
schedule = "office"
posture = "lab"
"#
    )
}

/// The lab's resources and `schedule`, with the `standard` posture profile of the policy
/// `ztgw init` writes (`deploy/examples/policy.toml`), unchanged, for both roles.
pub fn standard_policy(schedule: &str) -> String {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/policy.toml"),
    )
    .expect("the example policy");
    let start = example
        .find("[posture.standard]")
        .expect("[posture.standard]");
    let end = example[start + 1..]
        .find("\n[")
        .map_or(example.len(), |i| start + 1 + i);
    let standard = &example[start..end];
    lab_policy(schedule)
        .replace("posture = \"lab\"", "posture = \"standard\"")
        .replace("[roles.finance]", &format!("{standard}\n[roles.finance]"))
}

/// A schedule open all day, every day, in UTC.
pub const ALWAYS: &str = "timezone = \"UTC\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nhours = [\"00:00-24:00\"]";
