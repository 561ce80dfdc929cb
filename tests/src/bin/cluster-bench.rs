//! Several gateways on PostgreSQL (#21), figures from one run:
//!
//! 1. Admissions per second, `AGENTS` agents at once from a host linked to the
//!    gateways (each admission: nonce and admission over mTLS, posture, the session
//!    journaled and claimed in the registry, its peer installed; then a disconnect), on
//!    one gateway with its SQLite registry (the baseline, same run), one gateway on
//!    PostgreSQL, and two gateways on PostgreSQL sharing the agents.
//! 2. Revocation on one gateway to the last packet forwarded by the other: a laptop
//!    connected through gateway B streams UDP through its tunnel; `ztgw device revoke` is
//!    run on gateway A; the last datagram the internal server receives is compared with
//!    the start of the command. `ROUNDS` rounds, p50 and p99.
//!
//! Run with `deploy/scripts/bench-cluster.sh` (release build). Needs root.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ztgw_tests::bench::{
    Figures, Op, enrol_all, last_udp_53, quantile, revocation_round, run, unlimited,
};
use ztgw_tests::cluster::Cluster;
use ztgw_tests::netns::{self, Netns};
use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy, make_root};

const AGENTS: usize = 100;
const ROUNDS: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--inner") {
        return inner(&args[2..]);
    }
    let secs = ztgw_tests::bench::phase_seconds();
    println!("ztgw several-gateway benchmark ({AGENTS} agents, {secs} s per phase, one run)\n");

    let sqlite = {
        let mut site = Site::new_with(&lab_policy(ALWAYS), unlimited);
        let invitations: Vec<String> = (0..AGENTS)
            .map(|i| site.invitation(&format!("s{i:04}"), "finance"))
            .collect();
        let client = site.outside();
        load(&client, site.dir.path(), &invitations, secs)
    };
    let one = {
        let mut c = Cluster::start_with(1, &lab_policy(ALWAYS), unlimited);
        let invitations: Vec<String> = (0..AGENTS)
            .map(|i| c.invitation(0, &format!("p{i:04}"), "finance"))
            .collect();
        let client = c.host("zb");
        load(&client, c.dir.path(), &invitations, secs)
    };
    let two = {
        let mut c = Cluster::start_with(2, &lab_policy(ALWAYS), unlimited);
        // Half the agents invited (and admitted) by each gateway.
        let invitations: Vec<String> = (0..AGENTS)
            .map(|i| c.invitation(i % 2, &format!("q{i:04}"), "finance"))
            .collect();
        let client = c.host("zb");
        load(&client, c.dir.path(), &invitations, secs)
    };
    let line = |name: &str, f: &Figures| {
        println!(
            "    {name:<34} {:>7.0}/s   p50 {:>6.1} ms   p99 {:>6.1} ms   {:>5.2}x   ({} admissions, {} errors)",
            f.rate,
            f.p50,
            f.p99,
            f.rate / sqlite.rate.max(1.0),
            f.done,
            f.errors
        )
    };
    println!("  admissions per second (ratio to the baseline, same run):");
    line("one gateway, SQLite (baseline)", &sqlite);
    line("one gateway, PostgreSQL", &one);
    line("two gateways, one PostgreSQL", &two);
    println!();
    revocations();
}

/// Enrols one agent per invitation from `client` and runs the admission phase there.
fn load(client: &Netns, dir: &Path, invitations: &[String], secs: u64) -> Figures {
    let work = dir.join("bench");
    std::fs::create_dir_all(&work).expect("dir");
    std::fs::write(work.join("invitations"), invitations.join("\n")).expect("invitations");
    let root = dir.join("root-bench");
    make_root(&root, Posture::Compliant);
    let mut inner = client.command(std::env::current_exe().expect("exe"));
    inner
        .arg("--inner")
        .arg(&work)
        .arg(secs.to_string())
        .arg(&root);
    let out = netns::run(&mut inner);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("inner figures {out:?}: {e}"))
}

/// In the client's namespace: enrol, then admit for `secs`; prints the figures as JSON.
fn inner(args: &[String]) {
    let dir = std::path::PathBuf::from(&args[0]);
    let secs: u64 = args[1].parse().expect("seconds");
    let root = std::path::PathBuf::from(&args[2]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let figures = rt.block_on(async move {
        let invitations: Vec<String> = std::fs::read_to_string(dir.join("invitations"))
            .expect("list")
            .lines()
            .map(str::to_owned)
            .collect();
        let states = Arc::new(enrol_all(&dir, &invitations).await);
        run(&states, secs, &root, Op::Admit).await
    });
    println!("{}", serde_json::to_string(&figures).expect("json"));
}

fn revocations() {
    let mut c = Cluster::start(2, &lab_policy(ALWAYS));
    let mut gaps = Vec::new();
    for round in 0..ROUNDS {
        // Invited by B: connected through B.
        let laptop = c.laptop(1, &format!("r{round:03}"), "finance");
        let agent = laptop.connect().expect("connects");
        assert!(netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()));
        let (before, _) = revocation_round(&laptop, Duration::from_millis(1500), || {
            c.ztgw_ok(0, &["device", "revoke", &laptop.device, "--reason", "lost"]);
        });
        gaps.push(last_udp_53(&mut c.servers).saturating_sub(before));
        drop(agent);
    }
    gaps.sort_unstable();
    println!(
        "  revocation on gateway A -> last packet forwarded by gateway B ({ROUNDS} rounds, from the start of `ztgw device revoke`):\n    p50 {} ms   p99 {} ms   max {} ms   (target: within 1 s)",
        quantile(&gaps, 0.5),
        quantile(&gaps, 0.99),
        gaps[gaps.len() - 1]
    );
}
