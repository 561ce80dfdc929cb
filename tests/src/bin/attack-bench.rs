//! The control plane under attack (issue #14), figures from one run. Against `ztgw
//! serve` in its namespace:
//!
//! 1. quiet: 20 agents at once enrol, read their device, admit (posture, journal fsync,
//!    WireGuard peer), re-check, renew and disconnect; every request's latency;
//! 2. the same with 20 new agents while, each from its own address, one source keeps
//!    5,000 connections open that send nothing, another pushes 40 HTTP/2 connections of
//!    requests whose bodies never end, and a third sends 50 bogus enrolments a second.
//!
//! Prints p50 and p99 latency and errors of both, their ratio, and the daemon's peak
//! resident memory after each phase. Goal: p99 under attack within 2x of the quiet run,
//! no error, peak RSS <= 256 MiB.
//!
//! The 20 legitimate agents share the gateway's own address here, so their enrolment and
//! TLS handshake rates per source are raised (an office behind one NAT address); the
//! attackers get the same raised rates, and the connection bounds as shipped.
//!
//! Run with `deploy/scripts/bench-attack.sh` (release build). Needs root.

use std::time::{Duration, Instant};

use ztgw_tests::netns::{self, Proc};
use ztgw_tests::site::{ALWAYS, GATEWAY, Posture, Site, lab_policy};

const AGENTS: usize = 20;
/// How long the attackers run: the attack phase starts 10 s in and must end before.
const ATTACK_SECS: u64 = 45;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--inner") {
        return inner(&args[2..]);
    }
    let mut site = Site::new_with(&lab_policy(ALWAYS), |s| {
        s.replace(
            "handshakes_per_second_per_source = 20\n",
            "handshakes_per_second_per_source = 500\n",
        )
        .replace("handshake_burst = 40", "handshake_burst = 1000")
        .replace("enrolment_burst = 5", "enrolment_burst = 100")
        .replace(
            "enrolments_per_minute_per_source = 10",
            "enrolments_per_minute_per_source = 600",
        )
        .replace("renewal_interval = \"10m\"", "renewal_interval = \"1s\"")
    });
    let serve_pid = site.serve.child.id();
    println!("ztgw control plane under attack ({AGENTS} agents, one run)\n");
    let quiet = phase(&site, "quiet");
    let quiet_rss = rss(serve_pid);

    let target = format!("{GATEWAY}:8443");
    let secs = (ATTACK_SECS * 1000).to_string();
    let probe = ztgw_tests::binary("netns-probe");
    let (a, b, c) = (site.outside(), site.outside(), site.outside());
    let attack = |ns: &netns::Netns, line: String| {
        let mut cmd = ns.command("bash");
        cmd.args(["-c", &format!("ulimit -n 20000; exec {line}")]);
        Proc::spawn(cmd)
    };
    let mut idle = attack(
        &a,
        format!(
            "{} idle {target} --count 5000 --duration-ms {secs}",
            probe.display()
        ),
    );
    let mut bodies = attack(
        &b,
        format!(
            "{} h2-bodies {target} --conns 40 --duration-ms {secs}",
            probe.display()
        ),
    );
    let mut flood = attack(
        &c,
        format!(
            "{} enrol-flood {target} --rate 50 --duration-ms {secs}",
            probe.display()
        ),
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let attacked = phase(&site, "attack");
    let metrics = site.metrics();
    let attacked_rss = rss(serve_pid);
    assert!(
        started.elapsed() < Duration::from_secs(ATTACK_SECS),
        "the attack phase outlasted the attack: raise ATTACK_SECS"
    );

    println!(
        "  {:<8} {:>9} {:>9} {:>7} {:>7}   {:>13}",
        "phase", "p50 ms", "p99 ms", "ops", "errors", "peak RSS MiB"
    );
    for (name, f, r) in [
        ("quiet", &quiet, quiet_rss),
        ("attack", &attacked, attacked_rss),
    ] {
        println!(
            "  {:<8} {:>9.1} {:>9.1} {:>7} {:>7}   {:>13.1}",
            name, f.p50, f.p99, f.ops, f.errors, r
        );
    }
    println!(
        "\n  p99 under attack / quiet: {:.2}x   (goal <= 2x, 0 errors, peak RSS <= 256 MiB)",
        attacked.p99 / quiet.p99.max(0.001)
    );
    println!("  during the attack, the gateway's counters:");
    for line in metrics.lines().filter(|l| {
        l.starts_with("ztgw_control_") || l.starts_with("ztgw_enrolment_refusals_pending")
    }) {
        println!("    {line}");
    }
    for (name, p) in [
        ("idle", &mut idle),
        ("h2-bodies", &mut bodies),
        ("enrol-flood", &mut flood),
    ] {
        let said = p
            .try_line(Duration::from_secs(ATTACK_SECS + 15))
            .unwrap_or_default();
        println!("  attacker {name}: {said}");
    }
}

/// The daemon's peak resident memory so far (MiB).
fn rss(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Figures {
    p50: f64,
    p99: f64,
    ops: usize,
    errors: usize,
}

/// Invites `AGENTS` employees and runs them in the gateway's namespace.
fn phase(site: &Site, name: &str) -> Figures {
    let dir = site.dir.path().join(format!("attack-{name}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let invitations: Vec<String> = (0..AGENTS)
        .map(|i| site.invitation(&format!("{}{i:03}", &name[..1]), "finance"))
        .collect();
    std::fs::write(dir.join("invitations"), invitations.join("\n")).expect("list");
    let root = dir.join("root");
    ztgw_tests::site::make_root(&root, Posture::Compliant);
    let mut inner = site.gw.command(std::env::current_exe().expect("exe"));
    inner.arg("--inner").arg(&dir).arg(&root);
    let out = netns::run(&mut inner);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("inner figures");
    for e in v["first_errors"].as_array().into_iter().flatten() {
        println!("  {name}: {e}");
    }
    Figures {
        p50: v["p50"].as_f64().unwrap_or(0.0),
        p99: v["p99"].as_f64().unwrap_or(0.0),
        ops: v["ops"].as_u64().unwrap_or(0) as usize,
        errors: v["errors"].as_u64().unwrap_or(0) as usize,
    }
}

/// Inside the gateway's namespace: every agent's whole journey, timed per request.
fn inner(args: &[String]) {
    let dir = std::path::PathBuf::from(&args[0]);
    let root = std::path::PathBuf::from(&args[1]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut lat, errors) = rt.block_on(async move {
        let invitations = std::fs::read_to_string(dir.join("invitations")).expect("list");
        let mut tasks = tokio::task::JoinSet::new();
        for (i, inv) in invitations.lines().enumerate() {
            let (inv, dir, root) = (inv.to_owned(), dir.clone(), root.clone());
            tasks.spawn(async move { journey(i, &inv, &dir, &root).await });
        }
        let (mut lat, mut errors) = (Vec::new(), Vec::new());
        while let Some(r) = tasks.join_next().await {
            if let Ok((l, e)) = r {
                lat.extend(l);
                errors.extend(e);
            }
        }
        (lat, errors)
    });
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "p50": pct(0.5),
            "p99": pct(0.99),
            "ops": lat.len(),
            "errors": errors.len(),
            "first_errors": errors.iter().take(5).collect::<Vec<_>>(),
        })
    );
}

/// Enrol, read the device, admit, re-check, renew, disconnect.
async fn journey(
    i: usize,
    invitation: &str,
    dir: &std::path::Path,
    root: &std::path::Path,
) -> (Vec<Duration>, Vec<String>) {
    let (mut lat, mut errors) = (Vec::new(), Vec::new());
    let state_dir = dir.join(format!("agent-{i}"));
    let t = Instant::now();
    let enrolled = ztgw_agent::enroll::enroll(&ztgw_agent::enroll::EnrollOptions {
        invitation: invitation.to_owned(),
        state_dir: state_dir.clone(),
        ownership: ztgw_api::control::Ownership::Administration,
        hostname: Some(format!("bench-{i}")),
        root: "/".into(),
        directory_password: None,
    })
    .await;
    if let Err(e) = enrolled {
        return (lat, vec![format!("enrol: {e}")]);
    }
    lat.push(t.elapsed());
    let state = ztgw_agent::state::AgentState::new(state_dir);
    let t = Instant::now();
    match ztgw_agent::renew::status(&state).await {
        Ok(_) => lat.push(t.elapsed()),
        Err(e) => errors.push(format!("device: {e}")),
    }
    let t = Instant::now();
    let grant = match ztgw_agent::connect::admit(&state, root, || None).await {
        Ok(g) => {
            lat.push(t.elapsed());
            g
        }
        Err(e) => {
            errors.push(format!("admit: {e}"));
            return (lat, errors);
        }
    };
    let t = Instant::now();
    match ztgw_agent::connect::recheck(&state, &grant.session, root, || None).await {
        Ok(_) => lat.push(t.elapsed()),
        Err(e) => errors.push(format!("recheck: {e}")),
    }
    // Renewal is allowed once a second here (10 minutes as shipped).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = Instant::now();
    match ztgw_agent::renew::renew(
        &state,
        time::OffsetDateTime::now_utc(),
        Some(time::Duration::days(365)),
    )
    .await
    {
        Ok(Some(_)) => lat.push(t.elapsed()),
        Ok(None) => errors.push("renew: not renewed".into()),
        Err(e) => errors.push(format!("renew: {e}")),
    }
    let _ = ztgw_tests::bench::remember(&state, grant);
    let t = Instant::now();
    match ztgw_agent::connect::disconnect(&state).await {
        Ok(_) => lat.push(t.elapsed()),
        Err(e) => errors.push(format!("disconnect: {e}")),
    }
    (lat, errors)
}
