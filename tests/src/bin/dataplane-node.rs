//! The gateway's data plane on its own, for end-to-end tests and benchmarks in network
//! namespaces. It drives the data plane only through its library API (`DataPlane`), as
//! the session layer does, reading one command per line on stdin and answering one JSON
//! line on stdout:
//!
//! ```text
//! add SESSION PUBLIC_KEY_B64 PSK_B64 TUNNEL_ADDR ROLE
//! update SESSION ROLE
//! remove SESSION            -> {"ok":true,"at_ms":...,"report":{...}}
//! peer SESSION | counters | reports
//! add-idle N                -> installs N more peers (at most 60,000 in all) with random keys (capacity benchmarks)
//! rss                       -> {"rss_kib":...}
//! peer-count                -> {"peers":...}
//! idle-count                -> {"idle":...} (peers add-idle installed)
//! ```
//!
//! Started with: `dataplane-node --interface NAME --network CIDR --listen ADDR:PORT
//! --policy FILE [--workers N] [--offload true|false] [--handshakes-before-cookies N]
//! [--per-source N] [--max-peers N]`. The first line it prints is
//! `{"public_key":"...","port":N,"offload":bool}`.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use serde_json::json;
use ztgw_config::policy::{CompiledPolicy, Network, Policy};
use ztgw_dataplane::peers::{PeerSpec, PresharedKey};
use ztgw_dataplane::shell::{Config, DataPlane};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts: HashMap<&str, &str> = args
        .chunks(2)
        .filter_map(|c| Some((c[0].strip_prefix("--")?, c.get(1)?.as_str())))
        .collect();
    let get = |k: &str| {
        opts.get(k)
            .copied()
            .ok_or_else(|| anyhow!("--{k} is required"))
    };
    let num = |k: &str, d: u64| -> anyhow::Result<u64> {
        opts.get(k)
            .map_or(Ok(d), |v| v.parse().context(k.to_owned()))
    };
    let policy_path = std::path::PathBuf::from(get("policy")?);
    let text = std::fs::read_to_string(&policy_path)?;
    let policy = Policy::parse(&policy_path, &text).map_err(|e| anyhow!("{e}"))?;
    let compiled = Arc::new(CompiledPolicy::compile(&policy.policy));
    let config = Config {
        interface: get("interface")?.to_owned(),
        network: Network::parse(get("network")?).map_err(|e| anyhow!(e))?,
        network6: None,
        mtu: 1420,
        listen: get("listen")?.parse()?,
        workers: num("workers", 2)? as usize,
        offload: opts.get("offload").is_none_or(|v| *v == "true"),
        max_peers: num("max-peers", 65_536)? as usize,
        handshakes_before_cookies: num("handshakes-before-cookies", 1_000)?,
        handshakes_per_second_per_source: num("per-source", 100)? as u32,
    };
    let secret = boringtun::x25519::StaticSecret::from(ztgw_tests::rand_bytes::<32>());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let _guard = rt.enter();
    let dp = DataPlane::start(config, secret, compiled)?;
    println!(
        "{}",
        json!({"public_key": b64(&dp.public_key()), "port": dp.local_addr().port(), "offload": dp.offload()})
    );
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let answer = match command(&dp, &line) {
            Ok(v) => v,
            Err(e) => json!({"error": e.to_string()}),
        };
        println!("{answer}");
    }
    rt.block_on(dp.shutdown());
    Ok(())
}

fn command(dp: &DataPlane, line: &str) -> anyhow::Result<serde_json::Value> {
    let words: Vec<&str> = line.split_whitespace().collect();
    Ok(match words.as_slice() {
        ["add", session, key, psk, addr, role] => {
            dp.add_peer(&PeerSpec {
                session: (*session).to_owned(),
                public_key: key32(key)?,
                preshared_key: PresharedKey::new(key32(psk)?),
                tunnel_addr: addr.parse::<IpAddr>()?,
                tunnel_addr6: None,
                role: (*role).to_owned(),
                keepalive: None,
            })?;
            json!({"ok": true})
        }
        ["update", session, role] => {
            dp.update_peer(session, role)?;
            json!({"ok": true})
        }
        ["remove", session] => {
            let report = dp.remove_peer(session);
            json!({"ok": report.is_some(), "at_ms": unix_ms(), "report": report})
        }
        ["peer", session] => json!(dp.peer(session)),
        ["counters"] => json!(dp.counters()),
        ["reports"] => json!(dp.reports()),
        ["add-idle", n] => {
            let n: u32 = n.parse()?;
            // Numbered on from those a previous add-idle installed.
            let start = idle_count(dp);
            if start + n > 60_000 {
                bail!("add-idle: at most 60000 peers in all");
            }
            let first = u32::from(std::net::Ipv4Addr::new(100, 64, 128, 0));
            for i in start..start + n {
                // From 100.64.128.0 on, in the lab's /15, clear of the tests' laptops.
                let addr = IpAddr::from(std::net::Ipv4Addr::from(first + i));
                dp.add_peer(&PeerSpec {
                    session: format!("idle-{i}"),
                    public_key: ztgw_tests::netns::x25519_public(ztgw_tests::rand_bytes()),
                    preshared_key: PresharedKey::new(ztgw_tests::rand_bytes()),
                    tunnel_addr: addr,
                    tunnel_addr6: None,
                    role: "finance".into(),
                    keepalive: None,
                })?;
            }
            json!({"ok": true, "peers": dp.peer_count()})
        }
        ["rss"] => json!({"rss_kib": rss_kib()?}),
        ["peer-count"] => json!({"peers": dp.peer_count()}),
        ["idle-count"] => json!({"idle": idle_count(dp)}),
        _ => bail!("unknown command: {line}"),
    })
}

/// How many peers add-idle installed (they are numbered from 0).
fn idle_count(dp: &DataPlane) -> u32 {
    (0..60_000)
        .find(|i| dp.peer(&format!("idle-{i}")).is_none())
        .unwrap_or(60_000)
}

fn key32(s: &str) -> anyhow::Result<[u8; 32]> {
    let v = base64::engine::general_purpose::STANDARD.decode(s)?;
    v.try_into().map_err(|_| anyhow!("a key is 32 bytes"))
}

fn b64(k: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(k)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS"))
}
