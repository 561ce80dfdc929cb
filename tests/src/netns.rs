//! Network namespaces, veth pairs and processes for end-to-end tests, all removed when
//! dropped (also when a test fails). Names are unique per test run and per call, so tests
//! running in parallel never collide. Needs root and iproute2, as CI has; without them a
//! test fails and says how to get them.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call: `{prefix}{pid}{n}`, at most 15
/// characters so it is also a valid interface name.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{:x}{n:x}", std::process::id() & 0xfffff);
    assert!(name.len() <= 15, "name too long: {name}");
    name
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test with an install hint unless `tool` is on PATH and we are root.
pub fn require(tool: &str, package: &str) {
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0")),
        "this test creates network namespaces and needs root (CI runs as root)"
    );
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is missing: install it with `apt-get install -y {package}` (deploy/scripts/test.sh does)"
    );
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Self {
        require("ip", "iproute2");
        let name = unique(prefix);
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `program args` inside; true when it exits 0.
    pub fn succeeds(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
        self.command(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        run(self
            .command("sysctl")
            .args(["-q", "-w", &format!("{key}={value}")]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Joins `a` and `b` with a veth pair with addresses `a_cidr` and `b_cidr`, both up.
pub fn link(a: &Netns, a_cidr: &str, b: &Netns, b_cidr: &str) {
    let ia = unique("va");
    let ib = unique("vb");
    run(Command::new("ip").args([
        "link", "add", &ia, "netns", &a.name, "type", "veth", "peer", "name", &ib, "netns", &b.name,
    ]));
    a.ip(&["addr", "add", a_cidr, "dev", &ia]);
    b.ip(&["addr", "add", b_cidr, "dev", &ib]);
    a.ip(&["link", "set", &ia, "up"]);
    b.ip(&["link", "set", &ib, "up"]);
}

/// The two usable addresses of a /30 of the benchmarking range (RFC 2544,
/// 198.18.0.0/15) of this process and call, for a link a test makes: 128 per process.
pub fn slash30() -> (Ipv4Addr, Ipv4Addr) {
    static LINKS: AtomicU32 = AtomicU32::new(0);
    let n = LINKS.fetch_add(1, Ordering::Relaxed) % 128;
    let second = 18 + u8::from(n >= 64);
    let third = u8::try_from(std::process::id() % 250).unwrap_or(0);
    let fourth = u8::try_from((n % 64) * 4).unwrap_or(0);
    (
        Ipv4Addr::new(198, second, third, fourth + 1),
        Ipv4Addr::new(198, second, third, fourth + 2),
    )
}

/// A veth pair between this test's host namespace and `b`, made by the test (unique
/// names) and removed on drop: the host end gets `host_cidr`, `b`'s end `b_cidr`. For a
/// program that must run in the host's namespace (a browser) to reach a namespace.
#[derive(Debug)]
pub struct HostLink {
    host_end: String,
}

impl HostLink {
    pub fn new(host_cidr: &str, b: &Netns, b_cidr: &str) -> Self {
        let host_end = unique("vh");
        let ib = unique("vb");
        run(Command::new("ip").args([
            "link", "add", &host_end, "type", "veth", "peer", "name", &ib, "netns", &b.name,
        ]));
        let link = Self { host_end };
        run(Command::new("ip").args(["addr", "add", host_cidr, "dev", &link.host_end]));
        b.ip(&["addr", "add", b_cidr, "dev", &ib]);
        run(Command::new("ip").args(["link", "set", &link.host_end, "up"]));
        b.ip(&["link", "set", &ib, "up"]);
        link
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A child process, killed by its pid on drop. Its standard output is read line by line
/// on a thread of its own, so a test never blocks on it for longer than it chooses.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

/// How long [`Proc::line`] waits for a line.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

impl Proc {
    /// Starts `cmd` with piped stdin and stdout (stderr as the command says; inherited by
    /// default, so it shows on failure).
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdin = child.stdin.take();
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Reads one line of its output (panics at the end of its output or after a minute).
    pub fn line(&mut self) -> String {
        match self.lines.recv_timeout(LINE_TIMEOUT) {
            Ok(l) => l.trim_end().to_owned(),
            Err(e) => panic!(
                "no line from the process ({e}): {:?}",
                self.child.try_wait()
            ),
        }
    }

    /// One line if it comes within `wait`.
    pub fn try_line(&mut self, wait: Duration) -> Option<String> {
        self.lines
            .recv_timeout(wait)
            .ok()
            .map(|l| l.trim_end().to_owned())
    }

    /// Sends one line and reads the answer.
    pub fn ask(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
        self.line()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A wireguard-go interface inside a namespace, configured with `wg`: the employee's
/// standard WireGuard client. Its process ends on drop.
#[derive(Debug)]
pub struct WgClient {
    pub iface: String,
    pub public_key: [u8; 32],
    dir: tempfile::TempDir,
    proc: Proc,
}

/// What a client's peer section says.
#[derive(Debug, Clone)]
pub struct WgPeer<'a> {
    pub public_key: [u8; 32],
    pub preshared_key: [u8; 32],
    pub endpoint: String,
    pub allowed_ips: &'a str,
}

impl WgClient {
    /// Starts wireguard-go in `ns` with a new key and tunnel address `addr/32`.
    pub fn start(ns: &Netns, addr: Ipv4Addr) -> Self {
        let c = Self::bare(ns);
        run(Command::new("wg").args([
            "set",
            &c.iface,
            "private-key",
            &c.dir.path().join("private").display().to_string(),
        ]));
        ns.ip(&["addr", "add", &format!("{addr}/32"), "dev", &c.iface]);
        ns.ip(&["link", "set", &c.iface, "up"]);
        c
    }

    /// Starts wireguard-go in `ns` with nothing configured (as the employee's system
    /// provides it; the agent configures it).
    pub fn bare(ns: &Netns) -> Self {
        require("wireguard-go", "wireguard-go");
        require("wg", "wireguard-tools");
        let iface = unique("wg");
        let dir = tempfile::tempdir().expect("tempdir");
        let private = crate::rand_bytes::<32>();
        let public = x25519_public(private);
        write_key(dir.path(), "private", &private);
        let mut cmd = ns.command("wireguard-go");
        cmd.arg("-f")
            .arg(&iface)
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .env("LOG_LEVEL", "error")
            // Its banner about the kernel module would only clutter test output.
            .stderr(Stdio::null());
        let proc = Proc::spawn(cmd);
        let sock = PathBuf::from(format!("/var/run/wireguard/{iface}.sock"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "wireguard-go did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            iface,
            public_key: public,
            dir,
            proc,
        }
    }

    /// Sets the gateway as its peer and routes `routes` through the tunnel.
    pub fn set_peer(&self, ns: &Netns, peer: &WgPeer<'_>, routes: &[&str]) {
        write_key(self.dir.path(), "psk", &peer.preshared_key);
        run(Command::new("wg").args([
            "set",
            &self.iface,
            "peer",
            &b64(&peer.public_key),
            "preshared-key",
            &self.dir.path().join("psk").display().to_string(),
            "endpoint",
            &peer.endpoint,
            "allowed-ips",
            peer.allowed_ips,
        ]));
        for r in routes {
            ns.ip(&["route", "replace", r, "dev", &self.iface]);
        }
    }

    /// The UDP port it listens on.
    pub fn listen_port(&self) -> u16 {
        run(Command::new("wg").args(["show", &self.iface, "listen-port"]))
            .trim()
            .parse()
            .expect("listen port")
    }

    /// Adds a peer (when this client plays the gateway, in benchmarks).
    pub fn add_peer(&self, public_key: &[u8; 32], psk: &[u8; 32], allowed_ips: &str) {
        let file = self.dir.path().join(format!("psk-{}", unique("p")));
        write_key(
            self.dir.path(),
            file.file_name().and_then(|f| f.to_str()).expect("name"),
            psk,
        );
        run(Command::new("wg").args([
            "set",
            &self.iface,
            "peer",
            &b64(public_key),
            "preshared-key",
            &file.display().to_string(),
            "allowed-ips",
            allowed_ips,
        ]));
    }

    /// Seconds since the latest handshake, as `wg` reports it.
    pub fn latest_handshake(&self) -> Option<u64> {
        let out = run(Command::new("wg").args(["show", &self.iface, "latest-handshakes"]));
        let ts: u64 = out.split_whitespace().nth(1)?.parse().ok()?;
        (ts > 0).then_some(ts)
    }
}

impl Drop for WgClient {
    fn drop(&mut self) {
        // Killed, wireguard-go leaves its control socket behind: remove it.
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.iface));
    }
}

fn write_key(dir: &Path, name: &str, key: &[u8; 32]) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join(name))
        .expect("key file");
    writeln!(f, "{}", b64(key)).expect("write key");
}

pub fn b64(key: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key)
}

pub fn x25519_public(private: [u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(private)).to_bytes()
}

/// Polls `f` every 20 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
