//! The admission benchmark (issue #7), printing figures from one run:
//!
//! 1. Admissions per second with `AGENTS` concurrent agents on the gateway's own
//!    loopback, at saturation (a closed loop): each admission is a nonce request and an
//!    admission request over one new mTLS connection, a posture report evaluated, the
//!    session journaled (fsync) and its peer installed; then a disconnect. p50 and p99
//!    latency of an admission. Baseline from the same run: `/v1/device` over a new mTLS
//!    connection each (a handshake and a registry read, nothing journaled), so the ratio
//!    shows what admission costs beyond its handshake. Then an open loop: `OPEN_RATE`
//!    admissions arrive per second on schedule, latency measured from each arrival.
//! 2. Revocation to the last forwarded packet: a laptop (wireguard-go) streams UDP
//!    through its tunnel; `ztgw device revoke` is run; the last datagram the internal
//!    server receives is compared with the moment the command returned. `ROUNDS` rounds.
//!
//! Run with `deploy/scripts/bench-admission.sh` (release build). Needs root.

use std::sync::Arc;
use std::time::Duration;

use ztgw_tests::bench::{Op, enrol_all, last_udp_53, open_loop, quantile, revocation_round, run};
use ztgw_tests::netns::{self};
use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};

const AGENTS: usize = 200;
const ROUNDS: usize = 20;
/// Admissions per second in the open-loop phase.
const OPEN_RATE: u32 = 300;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--inner") {
        return inner(&args[2..]);
    }
    let secs = ztgw_tests::bench::phase_seconds();
    println!("ztgw admission benchmark ({AGENTS} agents, {secs} s per phase, one run)\n");
    admissions(secs);
    revocations();
}

fn admissions(secs: u64) {
    let site = Site::new_with(&lab_policy(ALWAYS), ztgw_tests::bench::unlimited);
    // Invitations for every agent, from the security unit.
    let invitations: Vec<String> = (0..AGENTS)
        .map(|i| site.invitation(&format!("b{i:04}"), "finance"))
        .collect();
    let dir = site.dir.path().join("bench");
    std::fs::create_dir_all(&dir).expect("dir");
    let list = dir.join("invitations");
    std::fs::write(&list, invitations.join("\n")).expect("invitations");
    let mut inner = site.gw.command(std::env::current_exe().expect("exe"));
    inner
        .arg("--inner")
        .arg(&dir)
        .arg(secs.to_string())
        .arg(site.dir.path().join("root-bench"));
    ztgw_tests::site::make_root(&site.dir.path().join("root-bench"), Posture::Compliant);
    let out = netns::run(&mut inner);
    print!("{out}");
}

/// Inside the gateway's namespace: enrol every agent, then measure.
fn inner(args: &[String]) {
    let dir = std::path::PathBuf::from(&args[0]);
    let secs: u64 = args[1].parse().expect("seconds");
    let root = std::path::PathBuf::from(&args[2]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let invitations: Vec<String> = std::fs::read_to_string(dir.join("invitations"))
            .expect("list")
            .lines()
            .map(str::to_owned)
            .collect();
        let states = enrol_all(&dir, &invitations).await;
        let states = Arc::new(states);
        let device = run(&states, secs, &root, Op::Device).await;
        let admission = run(&states, secs, &root, Op::Admit).await;
        let open = open_loop(&states, OPEN_RATE, secs, &root).await;
        println!(
            "  admissions at saturation ({AGENTS} agents in a closed loop; nonce + admission over one\n  mTLS connection, posture, journal fsync, peer install):\n    {:>7.0}/s   p50 {:>6.1} ms   p99 {:>6.1} ms   ({} admissions, {} errors)",
            admission.rate, admission.p50, admission.p99, admission.done, admission.errors
        );
        println!(
            "  baseline, GET /v1/device over a new mTLS connection (same agents, same run):\n    {:>7.0}/s   p50 {:>6.1} ms   p99 {:>6.1} ms",
            device.rate, device.p50, device.p99
        );
        println!(
            "  admission / baseline: {:.2}x the rate   (target >= 0.5x)",
            admission.rate / device.rate.max(1.0)
        );
        println!(
            "  open loop, {OPEN_RATE} arrivals/s for {secs} s (latency from each arrival's scheduled moment):\n    {:>7.0}/s   p50 {:>6.1} ms   p99 {:>6.1} ms   max {:>6.1} ms   ({} admissions, {} errors)   (target p99 <= 50 ms)\n",
            open.rate, open.p50, open.p99, open.max, open.done, open.errors
        );
    });
}

fn revocations() {
    let mut site = Site::new(&lab_policy(ALWAYS));
    let mut gaps = Vec::new();
    for round in 0..ROUNDS {
        let laptop = site.laptop(&format!("r{round:03}"), "finance", Posture::Compliant);
        let agent = laptop.connect().expect("connects");
        assert!(netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()));
        let (before, returned) = revocation_round(&laptop, Duration::from_millis(700), || {
            site.ztgw_ok(&["device", "revoke", &laptop.device, "--reason", "lost"]);
        });
        let last = last_udp_53(&mut site.servers);
        gaps.push((last.saturating_sub(before), returned.saturating_sub(before)));
        drop(agent);
    }
    let mut last: Vec<u64> = gaps.iter().map(|g| g.0).collect();
    let mut cmd: Vec<u64> = gaps.iter().map(|g| g.1).collect();
    last.sort_unstable();
    cmd.sort_unstable();
    let p = quantile;
    println!(
        "  revocation -> last forwarded packet ({ROUNDS} rounds, from the start of `ztgw device revoke`):\n    p50 {} ms   p99 {} ms   max {} ms   (target p99 <= 100 ms)",
        p(&last, 0.5),
        p(&last, 0.99),
        last[last.len() - 1]
    );
    println!(
        "  baseline, the revoke command itself (process start, admin socket, journal, CRL):\n    p50 {} ms   p99 {} ms",
        p(&cmd, 0.5),
        p(&cmd, 0.99)
    );
}
