//! The data plane's benchmark (issue #6), printing figures from one run:
//!
//! 1. iperf3 TCP through the gateway, laptop -> internal and internal -> laptop (on a
//!    flow the laptop opened), ztgw against wireguard-go as the gateway (plain
//!    forwarding, no policy) on the same topology in the same run: the ratio is the
//!    figure.
//! 2. Handshakes completed per second by one worker (one core), each a new peer's first
//!    (its tunnel made then), against the same work done in-process without I/O (the
//!    ceiling).
//! 3. With 10,000, then 50,000 idle peers installed (admitted, no laptop connected):
//!    memory per peer, and the handshake latency of a new peer against the latency with
//!    no idle peers.
//!
//! Run it with `deploy/scripts/bench-dataplane.sh` (release build, installs iperf3).
//! Needs root; uses only namespaces it creates.

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;
use ztgw_tests::lab::{DB, Lab, LabOptions};
use ztgw_tests::netns::{self, Proc, b64};

fn main() {
    netns::require("iperf3", "iperf3");
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    println!("ztgw data plane benchmark ({secs} s per iperf3 run, one run of each)\n");
    throughput(secs);
    handshakes();
    idle_peers();
}

fn throughput(secs: u64) {
    let variants = [
        ("wireguard-go gateway (baseline)", true, true, 1),
        ("ztgw, TUN offload, 1 worker", false, true, 1),
        ("ztgw, TUN offload, 2 workers", false, true, 2),
        ("ztgw, no offload, 2 workers", false, false, 2),
    ];
    let mut rows = Vec::new();
    for (name, wg_go, offload, workers) in variants {
        let mut lab = Lab::new(&LabOptions {
            wireguard_go_gateway: wg_go,
            offload,
            workers,
            iperf3: true,
            ..LabOptions::default()
        });
        if !wg_go {
            assert_eq!(
                lab.offload, offload,
                "{name}: the kernel refused TUN offload"
            );
        }
        let _server = {
            let mut c = lab.internal.command("iperf3");
            c.args(["-s", "-B", DB, "-p", "5432"]);
            Proc::spawn(c)
        };
        std::thread::sleep(Duration::from_millis(300));
        let laptop = lab.laptop("bench", 2, "finance", "10.20.0.0/16");
        assert!(
            netns::eventually(Duration::from_secs(10), || laptop.ping(DB)),
            "{name}: the laptop does not reach the server"
        );
        let run = |reverse: bool| -> f64 {
            let mut c = laptop.ns.command("iperf3");
            c.args(["-c", DB, "-p", "5432", "-J", "-t", &secs.to_string()]);
            if reverse {
                c.arg("-R");
            }
            let out = netns::run(&mut c);
            let v: Value = serde_json::from_str(&out).expect("iperf3 JSON");
            v["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .expect("bits_per_second")
        };
        let up = run(false);
        let down = run(true);
        println!(
            "  {name:<34} laptop->internal {:>6.2} Gbit/s   internal->laptop {:>6.2} Gbit/s",
            up / 1e9,
            down / 1e9
        );
        rows.push((name, up, down));
    }
    let (_, base_up, base_down) = rows[0];
    println!("\n  ratio against wireguard-go (target >= 2.0 both ways):");
    for (name, up, down) in &rows[1..] {
        println!(
            "  {name:<34} laptop->internal {:>5.2}x   internal->laptop {:>5.2}x",
            up / base_up,
            down / base_down
        );
    }
    println!();
}

fn handshakes() {
    const PEERS: usize = 3_000;
    let (ceiling, _) = in_process_handshakes(PEERS);
    let mut lab = Lab::new(&LabOptions {
        // Capacity, not the defence: no cookies, no per-source limit.
        handshakes_before_cookies: u64::MAX / 2,
        handshakes_per_second_per_source: u32::MAX,
        ..LabOptions::default()
    });
    let before = lab.node("rss")["rss_kib"].as_u64().unwrap_or(0);
    let result = run_handshakes(&mut lab, PEERS, 256);
    let after = lab.node("rss")["rss_kib"].as_u64().unwrap_or(0);
    let rate = result["rate"].as_f64().unwrap_or(0.0);
    println!(
        "  handshakes, one worker (one core): {rate:>8.0}/s  completed {}/{PEERS}  (target >= 4,000/s)",
        result["completed"]
    );
    println!(
        "  same work in-process, no I/O:      {ceiling:>8.0}/s  ratio {:.2}x",
        rate / ceiling
    );
    // Those peers stay installed, each with the tunnel of its handshake: connected
    // laptops gone quiet.
    let per_peer = (after.saturating_sub(before) * 1024) as f64 / PEERS as f64;
    println!(
        "  {PEERS} peers after one handshake each (connected, then idle): {per_peer:.0} bytes of memory per peer (RSS, with its tunnel and tables; target <= 4096)\n"
    );
}

fn idle_peers() {
    const PROBES: usize = 200;
    let mut lab = Lab::new(&LabOptions::default());
    let empty = run_handshakes(&mut lab, PROBES, 1);
    let p50 = |v: &Value| v["p50_us"].as_f64().unwrap_or(0.0);
    let p99 = |v: &Value| v["p99_us"].as_f64().unwrap_or(0.0);
    println!(
        "  new peer's handshake latency with no idle peers: p50 {:.0} us, p99 {:.0} us",
        p50(&empty),
        p99(&empty)
    );
    let before = lab.node("rss")["rss_kib"].as_u64().unwrap_or(0);
    let mut idle = 0u32;
    for target in [10_000u32, 50_000] {
        let added = lab.node(&format!("add-idle {}", target - idle));
        assert_eq!(added["ok"], true, "{added}");
        idle = target;
        let after = lab.node("rss")["rss_kib"].as_u64().unwrap_or(0);
        let loaded = run_handshakes(&mut lab, PROBES, 1);
        let per_peer = (after.saturating_sub(before) * 1024) as f64 / f64::from(idle);
        println!(
            "  {idle} idle peers (installed, never connected): {per_peer:.0} bytes of memory per peer (RSS, with its tables; target <= 4096)"
        );
        println!(
            "  new peer's handshake latency with {idle} idle peers: p50 {:.0} us, p99 {:.0} us (ratio p50 {:.2}x against none)",
            p50(&loaded),
            p99(&loaded),
            p50(&loaded) / p50(&empty).max(1.0)
        );
    }
}

/// Installs `n` peers with fresh keys and completes one handshake each from a client
/// namespace, `window` outstanding at a time.
fn run_handshakes(lab: &mut Lab, n: usize, window: usize) -> Value {
    let (client, gw_addr) = lab.outside_host("zh");
    let psk = ztgw_tests::rand_bytes::<32>();
    let dir = tempfile::tempdir().expect("tempdir");
    let keys_path = dir.path().join("keys");
    let mut keys = std::fs::File::create(&keys_path).expect("keys");
    // Numbered on from the peers installed before, idle ones (from 100.64.128.0) aside.
    let idle_from = 128 * 256;
    let installed = lab.node("peer-count")["peers"].as_u64().unwrap_or(0) as usize;
    let base =
        installed.saturating_sub(lab.node("idle-count")["idle"].as_u64().unwrap_or(0) as usize);
    assert!(
        1_000 + base + n <= idle_from,
        "probe addresses run into the idle peers'"
    );
    for i in 0..n {
        let private = ztgw_tests::rand_bytes::<32>();
        writeln!(keys, "{}", b64(&private)).expect("write");
        let host = 1_000 + base + i;
        let addr = format!("100.64.{}.{}", host >> 8, host & 255);
        let session = format!("hs-{base}-{i}");
        let answer = lab.node(&format!(
            "add {session} {} {} {addr} finance",
            b64(&netns::x25519_public(private)),
            b64(&psk)
        ));
        assert_eq!(answer["ok"], true, "{answer}");
    }
    drop(keys);
    let mut c = client.command(ztgw_tests::binary("netns-probe"));
    c.args(["handshakes", &format!("{gw_addr}:{}", lab.port)])
        .args(["--gateway-key", &b64(&lab.gateway_key), "--psk", &b64(&psk)])
        .args(["--window", &window.to_string()])
        .arg("--keys")
        .arg(&keys_path);
    serde_json::from_str(netns::run(&mut c).trim()).expect("handshakes JSON")
}

/// The responder's work for `n` initiations from new peers (mac1, anonymous parse, the
/// peer's tunnel made at its first initiation, handshake) on one core without sockets:
/// the ceiling for the gateway's figure.
fn in_process_handshakes(n: usize) -> (f64, usize) {
    use boringtun::noise::handshake::parse_handshake_anon;
    use boringtun::noise::rate_limiter::RateLimiter;
    use boringtun::noise::{Packet, Tunn, TunnResult};
    use boringtun::x25519::{PublicKey, StaticSecret};
    let gw_secret = StaticSecret::from(ztgw_tests::rand_bytes::<32>());
    let gw_public = PublicKey::from(&gw_secret);
    let rate = RateLimiter::new(&gw_public, u64::MAX / 2);
    let mut work = Vec::with_capacity(n);
    for i in 0..n {
        let me = StaticSecret::from(ztgw_tests::rand_bytes::<32>());
        let me_public = PublicKey::from(&me);
        let mut client = Tunn::new(me, gw_public, None, None, i as u32, None);
        let mut buf = [0u8; 256];
        let TunnResult::WriteToNetwork(init) = client.format_handshake_initiation(&mut buf, true)
        else {
            continue;
        };
        work.push((init.to_vec(), me_public, i as u32));
    }
    let mut out = [0u8; 256];
    let mut done = 0;
    let start = Instant::now();
    for (init, peer, index) in &work {
        let Ok(Packet::HandshakeInit(h)) = rate.verify_packet(None, init, &mut out) else {
            continue;
        };
        if parse_handshake_anon(&gw_secret, &gw_public, &h).is_err() {
            continue;
        }
        let mut server = Tunn::new(gw_secret.clone(), *peer, None, None, *index, None);
        if let TunnResult::WriteToNetwork(_) = server.decapsulate(None, init, &mut out) {
            done += 1;
        }
    }
    (done as f64 / start.elapsed().as_secs_f64(), done)
}
