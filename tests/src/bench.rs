//! What the admission benchmarks share: agents enrolled from a list of invitations, and
//! a load phase in which each agent repeats one operation for a while, with its figures.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ztgw_agent::state::AgentState;

/// What each agent repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /v1/device` over mTLS (a registry read, nothing journaled): the baseline.
    Device,
    /// A nonce and an admission over mTLS, then a disconnect (timed to the grant).
    Admit,
}

/// One load phase's figures.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub done: usize,
    pub errors: usize,
}

/// Enrols one agent per invitation (state in `dir/agent-N`).
pub async fn enrol_all(dir: &Path, invitations: &[String]) -> Vec<AgentState> {
    let mut states = Vec::new();
    for (i, inv) in invitations.iter().enumerate() {
        let state_dir = dir.join(format!("agent-{i}"));
        ztgw_agent::enroll::enroll(&ztgw_agent::enroll::EnrollOptions {
            invitation: inv.clone(),
            state_dir: state_dir.clone(),
            ownership: ztgw_api::control::Ownership::Administration,
            hostname: Some(format!("bench-{i}")),
            root: "/".into(),
            directory_password: None,
        })
        .await
        .expect("enrol");
        states.push(AgentState::new(state_dir));
    }
    states
}

/// Every agent repeats `op` for `secs` seconds, all at once; posture from `root`.
pub async fn run(states: &Arc<Vec<AgentState>>, secs: u64, root: &Path, op: Op) -> Figures {
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..states.len() {
        let states = states.clone();
        let root = root.to_owned();
        tasks.spawn(async move {
            let state = &states[i];
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < end {
                let t = Instant::now();
                let ok = match op {
                    Op::Device => ztgw_agent::renew::status(state).await.is_ok(),
                    Op::Admit => match ztgw_agent::connect::admit(state, &root, || None).await {
                        Ok(grant) => {
                            lat.push(t.elapsed());
                            let _ = remember(state, grant);
                            let _ = ztgw_agent::connect::disconnect(state).await;
                            continue;
                        }
                        Err(_) => false,
                    },
                };
                if ok {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        if let Ok((l, e)) = r {
            all.extend(l);
            errors += e;
        }
    }
    // Admissions are timed to the grant; the disconnects that follow are part of the
    // load but not of the latency.
    figures(all, errors, start.elapsed().as_secs_f64())
}

/// Open loop: admissions arrive at `rate` per second for `secs` seconds, on schedule
/// whatever the gateway's answers (a closed loop of agents would wait for each answer
/// before the next arrival, and measure its own queueing). Each arrival takes an agent
/// that is not in an admission or disconnect already (agents cycle through `states`); its
/// latency runs from the arrival's scheduled moment to the grant, so waiting for a free
/// agent counts too. Each admission is followed by a disconnect, not timed.
pub async fn open_loop(
    states: &Arc<Vec<AgentState>>,
    rate: u32,
    secs: u64,
    root: &Path,
) -> Figures {
    let (free_tx, free_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    for i in 0..states.len() {
        let _ = free_tx.send(i);
    }
    let free_rx = Arc::new(tokio::sync::Mutex::new(free_rx));
    let period = Duration::from_secs(1) / rate.max(1);
    let arrivals = u64::from(rate) * secs;
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..arrivals {
        let due = start + period * u32::try_from(n).unwrap_or(u32::MAX);
        tokio::time::sleep_until(due).await;
        let (states, free_tx, free_rx, root) = (
            states.clone(),
            free_tx.clone(),
            free_rx.clone(),
            root.to_owned(),
        );
        tasks.spawn(async move {
            let i = free_rx.lock().await.recv().await?;
            let state = &states[i];
            let outcome = ztgw_agent::connect::admit(state, &root, || None).await;
            let latency = due.elapsed();
            let ok = match outcome {
                Ok(grant) => {
                    let _ = remember(state, grant);
                    let _ = ztgw_agent::connect::disconnect(state).await;
                    true
                }
                Err(_) => false,
            };
            let _ = free_tx.send(i);
            Some((latency, ok))
        });
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Some((l, true))) => lat.push(l),
            _ => errors += 1,
        }
    }
    figures(lat, errors, start.elapsed().as_secs_f64())
}

/// The figures of `lat` (one per operation done) over `elapsed` seconds.
fn figures(mut lat: Vec<Duration>, errors: usize, elapsed: f64) -> Figures {
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Figures {
        rate: lat.len() as f64 / elapsed,
        p50: pct(0.5),
        p99: pct(0.99),
        max: pct(1.0),
        done: lat.len(),
        errors,
    }
}

/// Keeps `grant` in the agent's state as the session it holds (no tunnel: the
/// benchmarks drive the control plane only), so that `disconnect` ends it.
pub fn remember(
    state: &AgentState,
    grant: ztgw_api::control::SessionGrant,
) -> Result<(), ztgw_agent::error::AgentError> {
    ztgw_agent::connect::remember(
        state,
        &ztgw_agent::connect::SessionRecord {
            session: grant.session,
            role: grant.role,
            tunnel_address: grant.tunnel_address,
            tunnel_address6: None,
            ends_at: grant.ends_at,
            interface: None,
        },
    )
}

/// Each load phase's length: `BENCH_SECONDS`, 10 by default.
pub fn phase_seconds() -> u64 {
    std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// gateway.toml with the per-source limits lifted: every benchmark agent shares one
/// source address.
pub fn unlimited(s: String) -> String {
    s.replace(
        "handshakes_per_second_per_source = 20",
        "handshakes_per_second_per_source = 100000",
    )
    .replace("handshake_burst = 40", "handshake_burst = 100000")
    .replace(
        "enrolments_per_minute_per_source = 10",
        "enrolments_per_minute_per_source = 100000",
    )
    .replace("enrolment_burst = 5", "enrolment_burst = 100000")
    .replace(
        "admissions_per_second_per_source = 50",
        "admissions_per_second_per_source = 100000",
    )
    .replace("max_peers = 10000", "max_peers = 20000")
    .replace(
        "unauthenticated_connections_per_source = 32",
        "unauthenticated_connections_per_source = 1000",
    )
}

/// The `q` quantile of sorted `v`.
pub fn quantile(v: &[u64], q: f64) -> u64 {
    v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

/// One round of revocation to the last forwarded packet: `laptop` (connected) streams
/// UDP to the internal DNS server through its tunnel, every millisecond for 3 s; after
/// 300 ms `revoke` runs, then `settle` passes. Returns when `revoke` started and when it
/// returned (ms since the epoch), to compare with when the server received the last
/// datagram ([`last_udp_53`]).
pub fn revocation_round(
    laptop: &crate::site::SiteLaptop,
    settle: Duration,
    revoke: impl FnOnce(),
) -> (u64, u64) {
    let _stream = crate::netns::Proc::spawn({
        let mut c = laptop.ns.command(crate::binary("netns-probe"));
        c.args([
            "udp-stream",
            &format!("{}:53", crate::lab::DNS),
            "--interval-ms",
            "1",
            "--duration-ms",
            "3000",
        ]);
        c
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = unix_ms();
    revoke();
    let returned = unix_ms();
    std::thread::sleep(settle);
    (before, returned)
}

/// When the internal servers last received a datagram on udp/53 (ms since the epoch).
pub fn last_udp_53(servers: &mut crate::netns::Proc) -> u64 {
    let stats: serde_json::Value = serde_json::from_str(&servers.ask("stats")).expect("stats");
    stats["udp/53"]["last_ms"].as_u64().unwrap_or(0)
}

/// Milliseconds since the epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
