//! Several gateways on one PostgreSQL registry, in network namespaces: each `ztgw serve`
//! in a namespace of its own with its own tunnel network, one internal network behind
//! all of them (routing each gateway's tunnel network back to it), and laptops with a
//! link to every gateway.
//!
//! ```text
//!                     ┌ gateway A 192.0.2.1 (100.64.0.0/17)   ┐
//! laptop (agent) ─────┤                                        ├── internal 10.20.0.0/16
//!                     └ gateway B 192.0.2.2 (100.64.128.0/17) ┘
//! ```
//!
//! The first gateway is made by `ztgw init`, the others join it with the bundle
//! `ztgw join-bundle` writes (`ztgw init --join`). The database is reached on its Unix
//! socket, which network namespaces do not hide.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::lab::internal_network;
use crate::netns::{self, Netns, Proc};
use crate::postgres::Postgres;
use crate::site::{Posture, SiteLaptop, enrol_laptop, serve_at};

/// One gateway of the cluster.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub ns: Netns,
    pub config: PathBuf,
    /// `None` while it is stopped.
    pub serve: Option<Proc>,
    /// Its link's address on the internal network.
    pub inside: String,
}

#[derive(Debug)]
pub struct Cluster {
    pub pg: Postgres,
    pub gateways: Vec<Member>,
    pub internal: Netns,
    pub servers: Proc,
    links: u8,
    pub dir: tempfile::TempDir,
}

/// The passphrase of the test's join bundle.
const PASSPHRASE: &str = "a passphrase for the test cluster\n";

impl Cluster {
    /// `n` gateways (1 to 3) sharing a new database, each with `policy`.
    pub fn start(n: usize, policy: &str) -> Self {
        Self::start_with(n, policy, |s| s)
    }

    /// As [`Cluster::start`], with `edit` applied to every gateway.toml.
    pub fn start_with(n: usize, policy: &str, edit: fn(String) -> String) -> Self {
        assert!((1..=3).contains(&n));
        netns::require("wireguard-go", "wireguard-go");
        let pg = Postgres::start();
        let url = pg.database("cluster");
        let dir = tempfile::tempdir().expect("tempdir");
        let pass = dir.path().join("join.pass");
        crate::secret_file(&pass, PASSPHRASE);
        let bundle = dir.path().join("cluster.join");

        let mut gateways: Vec<Member> = Vec::new();
        let mut internal = None;
        for i in 0..n {
            let name = format!("192.0.2.{}", i + 1);
            let ns = Netns::new("zc");
            ns.ip(&["addr", "add", &format!("{name}/32"), "dev", "lo"]);
            let state = dir.path().join(format!("gw{}", i + 1));
            let mut init = Command::new(crate::binary("ztgw"));
            init.args(["init", "--dir"])
                .arg(&state)
                .args(["--name", &name, "--endpoint", &format!("{name}:51820")])
                .args(["--control-listen", &format!("{name}:8443")])
                .args(["--tunnel-network", &format!("100.64.{}.0/18", i * 64)]);
            if i > 0 {
                init.arg("--join")
                    .arg(&bundle)
                    .arg("--passphrase-file")
                    .arg(&pass);
            }
            netns::run(&mut init);
            let config = state.join("gateway.toml");
            let mut text = std::fs::read_to_string(&config).expect("settings");
            text = text
                .replace(
                    "interface = \"ztgw0\"",
                    &format!("interface = {:?}", netns::unique("zt")),
                )
                .replace("workers = 0", "workers = 1");
            if i == 0 {
                text.push_str(&format!("\n[registry]\nurl = {url:?}\n"));
            }
            std::fs::write(&config, edit(text)).expect("settings");
            std::fs::write(state.join("policy.toml"), policy).expect("policy");
            let inside = match &internal {
                None => {
                    let (inner, servers) = internal_network(&ns, false);
                    internal = Some((inner, servers));
                    "10.20.0.1".to_owned()
                }
                Some((inner, _)) => {
                    // Another link to the internal network, and the way back to this
                    // gateway's tunnel network.
                    let (mine, theirs) = (format!("10.30.{i}.1"), format!("10.30.{i}.10"));
                    netns::link(&ns, &format!("{mine}/24"), inner, &format!("{theirs}/24"));
                    inner.ip(&[
                        "route",
                        "add",
                        &format!("100.64.{}.0/18", i * 64),
                        "via",
                        &mine,
                    ]);
                    ns.ip(&["route", "add", "10.20.0.0/16", "via", &theirs]);
                    ns.sysctl("net.ipv4.ip_forward", "1");
                    mine
                }
            };
            let serve = serve_at(&ns, &config, &name);
            if i == 0 {
                let out = ztgw(&config, &["join-bundle", "--out"], Some(&bundle), &pass);
                assert!(
                    out.status.success(),
                    "join-bundle: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            gateways.push(Member {
                name,
                ns,
                config,
                serve: Some(serve),
                inside,
            });
        }
        let (internal, servers) = internal.expect("an internal network");
        // The first gateway's route covers the whole of 100.64.0.0/16; the others' are
        // more specific. Gateway A's own network:
        Self {
            pg,
            gateways,
            internal,
            servers,
            links: 0,
            dir,
        }
    }

    /// `ztgw ARGS` on gateway `i` (through its admin socket).
    pub fn ztgw(&self, i: usize, args: &[&str]) -> Output {
        Command::new(crate::binary("ztgw"))
            .env("ZTGW_CONFIG", &self.gateways[i].config)
            .args(args)
            .output()
            .expect("run ztgw")
    }

    /// `ztgw ARGS` on gateway `i`, which must succeed; its standard output.
    pub fn ztgw_ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.ztgw(i, args);
        assert!(
            out.status.success(),
            "ztgw {args:?} on gateway {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ztgw session list --json` on gateway `i`: its own sessions, and those the others
    /// hold.
    pub fn sessions(&self, i: usize) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        let list: serde_json::Value =
            serde_json::from_str(&self.ztgw_ok(i, &["session", "list", "--json"])).expect("json");
        let get = |k: &str| list[k].as_array().cloned().unwrap_or_default();
        (get("sessions"), get("elsewhere"))
    }

    /// Gateway `i`'s journal events of `kind`.
    pub fn journal(&self, i: usize, kind: &str) -> Vec<serde_json::Value> {
        self.ztgw_ok(i, &["journal", "query", "--type", kind, "--json"])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["event"].clone())
            .collect()
    }

    /// Stops gateway `i`: at once (SIGKILL, a crash) or with SIGTERM.
    pub fn stop(&mut self, i: usize, crash: bool) {
        let Some(mut serve) = self.gateways[i].serve.take() else {
            return;
        };
        if crash {
            let _ = serve.child.kill();
        } else {
            netns::run(Command::new("kill").args(["-TERM", &serve.child.id().to_string()]));
        }
        let _ = serve.child.wait();
    }

    /// Sends gateway `i`'s process `signal` (`STOP` freezes it: its connections stay open
    /// and its sockets accept, but nothing answers; `CONT` thaws it).
    pub fn signal(&self, i: usize, signal: &str) {
        if let Some(serve) = &self.gateways[i].serve {
            netns::run(
                Command::new("kill").args([&format!("-{signal}"), &serve.child.id().to_string()]),
            );
        }
    }

    /// Starts gateway `i` again.
    pub fn start_again(&mut self, i: usize) {
        let m = &mut self.gateways[i];
        if m.serve.is_none() {
            m.serve = Some(serve_at(&m.ns, &m.config, &m.name));
        }
    }

    /// An invitation made on gateway `i`.
    pub fn invitation(&self, i: usize, employee: &str, role: &str) -> String {
        crate::site::invite(|args| self.ztgw_ok(i, args), employee, role)
    }

    /// A namespace (names starting with `prefix`) with a link to every gateway and a
    /// route to each one's address.
    pub fn host(&mut self, prefix: &str) -> Netns {
        self.links += 1;
        let n = self.links;
        let ns = Netns::new(prefix);
        for (g, m) in self.gateways.iter().enumerate() {
            let net = format!("172.{}.{n}", 16 + g);
            netns::link(&m.ns, &format!("{net}.1/24"), &ns, &format!("{net}.2/24"));
            ns.ip(&[
                "route",
                "add",
                &format!("{}/32", m.name),
                "via",
                &format!("{net}.1"),
            ]);
        }
        ns
    }

    /// A laptop with a link to every gateway, invited on gateway `i` and enrolled.
    pub fn laptop(&mut self, i: usize, employee: &str, role: &str) -> SiteLaptop {
        let ns = self.host("zl");
        let invitation = self.invitation(i, employee, role);
        enrol_laptop(
            ns,
            self.dir.path(),
            employee,
            &invitation,
            Posture::Compliant,
            &[],
            None,
        )
        .unwrap_or_else(|e| panic!("enroll: {e}"))
    }

    /// The state directory of gateway `i`.
    pub fn state(&self, i: usize) -> &Path {
        self.gateways[i].config.parent().expect("state dir")
    }
}

fn ztgw(config: &Path, args: &[&str], path: Option<&Path>, pass: &Path) -> Output {
    let mut c = Command::new(crate::binary("ztgw"));
    c.env("ZTGW_CONFIG", config).args(args);
    if let Some(p) = path {
        c.arg(p);
    }
    c.arg("--passphrase-file")
        .arg(pass)
        .output()
        .expect("run ztgw")
}
