//! A small network for data-plane tests: the gateway's namespace running ztgw's data
//! plane (`dataplane-node`), an internal network with servers on several TCP and UDP
//! ports, and laptops running the real wireguard-go client, each on its own veth pair.
//!
//! ```text
//! laptop (wireguard-go) --192.168.N.0/24-- gateway (ztgw) --10.20.0.0/16-- internal
//! ```
//!
//! Internal addresses: 10.20.0.10 (web), 10.20.0.53 (dns), 10.20.1.5 (db).

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;

use crate::netns::{self, Netns, Proc, WgClient, WgPeer, b64};

pub const WEB: &str = "10.20.0.10";
pub const DNS: &str = "10.20.0.53";
pub const DB: &str = "10.20.1.5";

/// The ports the internal servers listen on; most are forbidden to every role.
pub const TCP_PORTS: &str = "5432,80,22,8080";
pub const UDP_PORTS: &str = "53,9999,161";

/// The tunnel network: laptops are numbered from its start, the capacity benchmark's
/// idle peers from 100.64.128.0 (a /15: room for 50,000 of them).
pub const TUNNEL_NETWORK: &str = "100.64.0.0/15";

/// How the gateway's data plane is started.
#[derive(Debug, Clone)]
pub struct LabOptions {
    pub workers: usize,
    pub offload: bool,
    pub handshakes_before_cookies: u64,
    pub handshakes_per_second_per_source: u32,
    /// Benchmarks only: wireguard-go as the gateway instead of ztgw (plain forwarding,
    /// no policy), the baseline ztgw is measured against.
    pub wireguard_go_gateway: bool,
    /// Serve iperf3 on the database's port instead of the probe's echo.
    pub iperf3: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            workers: 2,
            offload: true,
            handshakes_before_cookies: 1_000,
            handshakes_per_second_per_source: 100,
            wireguard_go_gateway: false,
            iperf3: false,
        }
    }
}

/// The gateway's data plane: ztgw's, or wireguard-go as a baseline.
#[derive(Debug)]
pub enum GatewayProcess {
    Ztgw(Proc),
    WireguardGo(WgClient),
}

#[derive(Debug)]
pub struct Lab {
    // Processes first: they end before their namespaces go.
    pub gateway: GatewayProcess,
    pub servers: Proc,
    pub gateway_key: [u8; 32],
    pub port: u16,
    /// Whether ztgw's data plane runs with TUN offload.
    pub offload: bool,
    pub gw: Netns,
    pub internal: Netns,
    links: u8,
    _dir: tempfile::TempDir,
}

/// A laptop: its namespace and its WireGuard client.
#[derive(Debug)]
pub struct Laptop {
    pub wg: WgClient,
    pub ns: Netns,
    pub addr: Ipv4Addr,
    pub session: String,
}

impl Lab {
    pub fn new(opts: &LabOptions) -> Self {
        netns::require("wireguard-go", "wireguard-go");
        netns::require("ping", "iputils-ping");
        let dir = tempfile::tempdir().expect("tempdir");
        let gw = Netns::new("zg");
        let (internal, servers) = internal_network(&gw, opts.iperf3);
        let mut offload = false;
        let (gateway, gateway_key, port) = if opts.wireguard_go_gateway {
            let wg = WgClient::start(&gw, Ipv4Addr::new(100, 64, 0, 1));
            gw.ip(&["route", "add", TUNNEL_NETWORK, "dev", &wg.iface]);
            let port = wg.listen_port();
            let key = wg.public_key;
            (GatewayProcess::WireguardGo(wg), key, port)
        } else {
            let policy = dir.path().join("policy.toml");
            // The site tests' policy: finance reaches the database (tcp/5432, ping) and
            // DNS, hr DNS and the intranet (tcp/80).
            let text = crate::site::lab_policy(crate::site::ALWAYS);
            std::fs::write(&policy, text).expect("policy");
            let mut cmd = gw.command(crate::binary("dataplane-node"));
            cmd.args([
                "--interface",
                &netns::unique("zt"),
                "--network",
                TUNNEL_NETWORK,
            ])
            .args(["--listen", "0.0.0.0:0", "--policy"])
            .arg(&policy)
            .args(["--workers", &opts.workers.to_string()])
            .args(["--offload", &opts.offload.to_string()])
            .args([
                "--handshakes-before-cookies",
                &opts.handshakes_before_cookies.to_string(),
            ])
            .args([
                "--per-source",
                &opts.handshakes_per_second_per_source.to_string(),
            ]);
            let mut node = Proc::spawn(cmd);
            let hello: Value = serde_json::from_str(&node.line()).expect("node hello");
            let key = key(&hello["public_key"]);
            let port = hello["port"].as_u64().expect("port") as u16;
            offload = hello["offload"] == true;
            (GatewayProcess::Ztgw(node), key, port)
        };

        Self {
            gateway,
            servers,
            gateway_key,
            port,
            offload,
            gw,
            internal,
            links: 0,
            _dir: dir,
        }
    }

    /// A new namespace linked to the gateway on its own /24; returns it and the
    /// gateway's address on that link.
    pub fn outside_host(&mut self, prefix: &str) -> (Netns, Ipv4Addr) {
        self.links += 1;
        let ns = Netns::new(prefix);
        let n = self.links;
        let gw_addr = Ipv4Addr::new(192, 168, n, 1);
        netns::link(
            &self.gw,
            &format!("{gw_addr}/24"),
            &ns,
            &format!("192.168.{n}.2/24"),
        );
        (ns, gw_addr)
    }

    /// A laptop with wireguard-go whose peer (session `session`, role `role`) is
    /// installed in the data plane. `allowed_ips` is what the client routes to the
    /// gateway (a client may ignore the role's networks and send anything).
    pub fn laptop(&mut self, session: &str, host: u8, role: &str, allowed_ips: &str) -> Laptop {
        let (ns, gw_addr) = self.outside_host("zl");
        let addr = Ipv4Addr::new(100, 64, 0, host);
        let wg = WgClient::start(&ns, addr);
        let psk = crate::rand_bytes::<32>();
        match &mut self.gateway {
            GatewayProcess::Ztgw(node) => {
                let answer = node.ask(&format!(
                    "add {session} {} {} {addr} {role}",
                    b64(&wg.public_key),
                    b64(&psk)
                ));
                assert_eq!(answer, r#"{"ok":true}"#, "add peer");
            }
            GatewayProcess::WireguardGo(gw_wg) => {
                gw_wg.add_peer(&wg.public_key, &psk, &format!("{addr}/32"))
            }
        }
        let routes: Vec<&str> = allowed_ips.split(',').collect();
        wg.set_peer(
            &ns,
            &WgPeer {
                public_key: self.gateway_key,
                preshared_key: psk,
                endpoint: format!("{gw_addr}:{}", self.port),
                allowed_ips,
            },
            &routes,
        );
        Laptop {
            wg,
            ns,
            addr,
            session: session.into(),
        }
    }

    /// What the internal servers received: `{"tcp/5432": {"count":..,"last_ms":..}}`.
    pub fn received(&mut self) -> Value {
        serde_json::from_str(&self.servers.ask("stats")).expect("stats")
    }

    pub fn received_on(&mut self, service: &str) -> u64 {
        self.received()[service]["count"].as_u64().unwrap_or(0)
    }

    /// The data plane's counters.
    pub fn counters(&mut self) -> Value {
        self.node("counters")
    }

    pub fn drops(&mut self, reason: &str) -> u64 {
        let c = self.counters();
        c["drops"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e[0] == reason))
            .and_then(|e| e[1].as_u64())
            .unwrap_or(0)
    }

    /// Sends one command to the data plane and returns its JSON answer.
    pub fn node(&mut self, line: &str) -> Value {
        match &mut self.gateway {
            GatewayProcess::Ztgw(node) => {
                serde_json::from_str(&node.ask(line)).expect("node answer")
            }
            GatewayProcess::WireguardGo(_) => panic!("the wireguard-go gateway has no commands"),
        }
    }
}

impl Laptop {
    pub fn tcp(&self, target: &str) -> bool {
        self.probe(&["tcp", target, "--timeout-ms", "1500"])
    }

    pub fn udp(&self, target: &str) -> bool {
        self.probe(&["udp", target, "--timeout-ms", "1500"])
    }

    pub fn ping(&self, host: &str) -> bool {
        self.ns.succeeds("ping", &["-c", "1", "-W", "2", host])
    }

    pub fn probe(&self, args: &[&str]) -> bool {
        self.ns.succeeds(crate::binary("netns-probe"), args)
    }

    /// Waits (bounded) for the first handshake and a packet through to DNS.
    pub fn connected(&self, timeout: Duration) -> bool {
        netns::eventually(timeout, || self.udp(&format!("{DNS}:53")))
    }
}

/// The internal network behind `gw` (10.20.0.0/16, the gateway at 10.20.0.1), with
/// servers on [`TCP_PORTS`] and [`UDP_PORTS`] at [`WEB`], [`DNS`] and [`DB`] (without
/// tcp/5432 when `iperf3` will serve it), and `gw` forwarding.
pub fn internal_network(gw: &Netns, iperf3: bool) -> (Netns, Proc) {
    let internal = Netns::new("zi");
    netns::link(gw, "10.20.0.1/16", &internal, "10.20.0.10/16");
    for a in [DNS, DB] {
        internal.ip(&[
            "addr",
            "add",
            &format!("{a}/16"),
            "dev",
            &internal_iface(&internal),
        ]);
    }
    internal.ip(&["route", "add", TUNNEL_NETWORK, "via", "10.20.0.1"]);
    gw.sysctl("net.ipv4.ip_forward", "1");
    let mut servers = Proc::spawn({
        let mut c = internal.command(crate::binary("netns-probe"));
        let tcp = if iperf3 { "80,22,8080" } else { TCP_PORTS };
        c.args(["serve", "--tcp", tcp, "--udp", UDP_PORTS])
            .args(["--addrs", &format!("{WEB},{DNS},{DB}")]);
        c
    });
    assert_eq!(servers.line(), "ready");
    (internal, servers)
}

fn internal_iface(ns: &Netns) -> String {
    let out = ns.ip(&["-o", "-4", "addr", "show"]);
    out.lines()
        .find(|l| l.contains("10.20.0.10/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("internal interface")
        .to_owned()
}

fn key(v: &Value) -> [u8; 32] {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("key"))
        .expect("base64")
        .try_into()
        .expect("32 bytes")
}
