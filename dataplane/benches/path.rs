//! The cost of enforcement (#22: at most 5 % of the path without it), per packet and
//! without I/O, in both directions.
//!
//! - Laptop → internal: a sealed 1,400-byte TCP segment through the gateway's whole
//!   [`Path::from_network`] (peer lookup by receiver index, boringtun's decryption,
//!   anti-spoofing, the role's compiled policy, the flow table, accounting, counters),
//!   against boringtun's decryption of the same kind of datagram by a bare `Tunn`: the
//!   path with enforcement off; in the paired rounds, as a burst received at once
//!   ([`Path::from_network_in_batch`], the peer found once).
//! - Internal → laptop: a reply segment through [`Path::from_tunnel`] (header parse,
//!   peer lookup by tunnel address, the flow the laptop opened, encryption), against a
//!   bare `Tunn` encrypting the same packet; in the paired rounds, as a burst read from
//!   the TUN device at once ([`Path::from_tunnel_in_batch`], the peer found once).
//!
//! Each side runs the same real handshake as the gateway's tests. Criterion measures
//! the four on their own; the ratio printed at the end comes from paired rounds (the
//! path and boringtun alone one after the other on the same kind of packets, 400
//! times), which a shared machine's drift between benchmarks does not bias.
//!
//! Run: `cargo bench -p ztgw-dataplane --bench path`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use criterion::{BatchSize, Criterion};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};
use ztgw_config::policy::{CompiledPolicy, Network, Policy};
use ztgw_dataplane::counters::Counters;
use ztgw_dataplane::packet::build;
use ztgw_dataplane::path::{LastIndex, LastPeer, Path, SCRATCH_LEN, Sink, new_tunnel};
use ztgw_dataplane::peers::{PeerSpec, PeerState, PeerTable, PresharedKey};

const LAPTOP: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
const DB: Ipv4Addr = Ipv4Addr::new(10, 20, 1, 5);
const LAPTOP_UDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 51000);
const PSK: [u8; 32] = [9; 32];
/// Inner packets of the size a TCP transfer through a 1,420-byte tunnel MTU sends.
const PAYLOAD: usize = 1_360;
/// Datagrams sealed ahead of each measured batch (each can be opened once: replays are
/// refused).
const BATCH: usize = 256;

const POLICY: &str = r#"
[resources.db]
hosts = ["10.20.1.0/24"]
ports = ["tcp/5432", "icmp"]
[resources.dns]
hosts = ["10.20.0.53"]
ports = ["udp/53"]
[schedules.office]
days = ["mon", "tue", "wed", "thu", "fri"]
hours = ["08:00-18:00"]
[posture.p]
[roles.finance]
resources = ["db", "dns"]
schedule = "office"
posture = "p"
"#;

/// A TCP segment with `PAYLOAD` bytes (ACK set, as in the middle of a transfer).
fn segment(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let mut p = build::tcp4(src, sport, dst, dport, flags);
    p.resize(p.len() + PAYLOAD, 0x5a);
    let total = u16::try_from(p.len()).expect("fits");
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p
}

/// Counts what comes out, so nothing is optimised away.
#[derive(Default)]
struct Count {
    bytes: usize,
}

impl Sink for Count {
    fn to_network(&mut self, _: SocketAddr, datagram: &[u8]) {
        self.bytes += datagram.len();
    }
    fn to_tunnel(&mut self, packet: &[u8]) {
        self.bytes += packet.len();
    }
}

struct Gateway {
    secret: StaticSecret,
    public: PublicKey,
    rate: RateLimiter,
    source_limit: DefaultKeyedRateLimiter<IpAddr>,
    cookie_limit: DefaultKeyedRateLimiter<IpAddr>,
    peers: PeerTable,
    policy: CompiledPolicy,
    pool: Network,
    counters: Counters,
}

impl Gateway {
    fn new() -> Self {
        let secret = StaticSecret::from([3; 32]);
        let public = PublicKey::from(&secret);
        let per_second = |n| Governor::keyed(Quota::per_second(NonZeroU32::new(n).expect("n")));
        let parsed = Policy::parse(std::path::Path::new("bench.toml"), POLICY).expect("policy");
        Self {
            rate: RateLimiter::new(&public, 1_000),
            secret,
            public,
            source_limit: per_second(1_000),
            cookie_limit: per_second(10),
            peers: PeerTable::new(16),
            policy: CompiledPolicy::compile(&parsed.policy),
            pool: Network::parse("100.64.0.0/16").expect("pool"),
            counters: Counters::default(),
        }
    }

    fn path(&self) -> Path<'_> {
        Path {
            secret: &self.secret,
            public: &self.public,
            rate: &self.rate,
            source_limit: &self.source_limit,
            cookie_limit: &self.cookie_limit,
            peers: &self.peers,
            policy: &self.policy,
            pool: self.pool,
            pool6: None,
            counters: &self.counters,
        }
    }

    fn install(&self, laptop: &StaticSecret) {
        let spec = PeerSpec {
            session: "s-bench".into(),
            public_key: PublicKey::from(laptop).to_bytes(),
            preshared_key: PresharedKey::new(PSK),
            tunnel_addr: LAPTOP.into(),
            tunnel_addr6: None,
            role: "finance".into(),
            keepalive: None,
        };
        let role = self.policy.role("finance").expect("role");
        self.peers
            .insert(&spec, |index| {
                PeerState::new(
                    new_tunnel(&self.secret, spec.public_key, PSK, None, index),
                    role,
                    "finance".into(),
                )
            })
            .expect("install");
    }
}

/// The laptop's side: seals what it sends.
fn seal(tunn: &mut Tunn, pkt: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; pkt.len() + 64];
    match tunn.encapsulate(pkt, &mut buf) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        _ => panic!("no session to seal with"),
    }
}

/// A handshake between the laptop and the gateway's path; returns the laptop's tunnel.
fn connect_through_path(gw: &Gateway, laptop: &StaticSecret) -> Tunn {
    let mut tunn = Tunn::new(laptop.clone(), gw.public, Some(PSK), None, 77, None);
    let mut buf = vec![0; SCRATCH_LEN];
    let init = match tunn.format_handshake_initiation(&mut buf, true) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        _ => panic!("no initiation"),
    };
    let mut out = Capture::default();
    gw.path()
        .from_network(LAPTOP_UDP, &init, &mut buf, 0, &mut out);
    let response = out.net.pop().expect("handshake response");
    let keepalive = match tunn.decapsulate(None, &response, &mut buf) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        _ => panic!("handshake did not complete"),
    };
    gw.path()
        .from_network(LAPTOP_UDP, &keepalive, &mut buf, 0, &mut out);
    tunn
}

/// Two bare tunnels (laptop, gateway) after a handshake: the path without enforcement.
fn bare_pair(gw_secret: &StaticSecret, laptop: &StaticSecret) -> (Tunn, Tunn) {
    let gw_public = PublicKey::from(gw_secret);
    let mut l = Tunn::new(laptop.clone(), gw_public, Some(PSK), None, 1, None);
    let mut g = Tunn::new(
        gw_secret.clone(),
        PublicKey::from(laptop),
        Some(PSK),
        None,
        2,
        None,
    );
    let mut buf = vec![0; SCRATCH_LEN];
    let init = match l.format_handshake_initiation(&mut buf, true) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        _ => panic!("no initiation"),
    };
    let response = match g.decapsulate(None, &init, &mut buf) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        _ => panic!("no response"),
    };
    let keepalive = match l.decapsulate(None, &response, &mut buf) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        _ => panic!("no keepalive"),
    };
    match g.decapsulate(None, &keepalive, &mut buf) {
        TunnResult::Done => {}
        _ => panic!("keepalive refused"),
    }
    (l, g)
}

#[derive(Default)]
struct Capture {
    net: Vec<Vec<u8>>,
    tun: usize,
}

impl Sink for Capture {
    fn to_network(&mut self, _: SocketAddr, d: &[u8]) {
        self.net.push(d.to_vec());
    }
    fn to_tunnel(&mut self, _: &[u8]) {
        self.tun += 1;
    }
}

fn main() {
    let laptop_key = StaticSecret::from([10; 32]);
    let gw = Gateway::new();
    gw.install(&laptop_key);
    let mut laptop = connect_through_path(&gw, &laptop_key);
    let (mut bare_laptop, mut bare_gw) = bare_pair(&gw.secret, &laptop_key);

    // The laptop opens its flow (SYN), allowed by the role's rule for tcp/5432.
    let mut scratch = vec![0; SCRATCH_LEN];
    let mut out = Capture::default();
    let syn = build::tcp4(LAPTOP, 40000, DB, 5432, 0x02);
    gw.path().from_network(
        LAPTOP_UDP,
        &seal(&mut laptop, &syn),
        &mut scratch,
        0,
        &mut out,
    );
    assert_eq!(out.tun, 1, "the opening segment is allowed");
    let outbound = segment(LAPTOP, 40000, DB, 5432, 0x10);
    let inbound = segment(DB, 5432, LAPTOP, 40000, 0x10);
    // Both directions are checked once before they are measured: through the path, the
    // segment is forwarded and the reply sealed to the laptop's endpoint.
    let mut out = Capture::default();
    gw.path().from_network(
        LAPTOP_UDP,
        &seal(&mut laptop, &outbound),
        &mut scratch,
        1,
        &mut out,
    );
    gw.path().from_tunnel(&inbound, &mut scratch, 1, &mut out);
    assert_eq!(
        (out.tun, out.net.len()),
        (1, 1),
        "enforcement allows the flow both ways"
    );

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    let mut g = c.benchmark_group("dataplane");
    g.bench_function("to-internal-path", |b| {
        b.iter_batched(
            || {
                (0..BATCH)
                    .map(|_| seal(&mut laptop, &outbound))
                    .collect::<Vec<_>>()
            },
            |sealed| {
                let mut sink = Count::default();
                let path = gw.path();
                for d in &sealed {
                    path.from_network(LAPTOP_UDP, black_box(d), &mut scratch, 2, &mut sink);
                }
                sink.bytes
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("to-internal-tunn", |b| {
        b.iter_batched(
            || {
                (0..BATCH)
                    .map(|_| seal(&mut bare_laptop, &outbound))
                    .collect::<Vec<_>>()
            },
            |sealed| {
                let mut bytes = 0;
                for d in &sealed {
                    if let TunnResult::WriteToTunnelV4(p, _) =
                        bare_gw.decapsulate(Some(LAPTOP_UDP.ip()), black_box(d), &mut scratch)
                    {
                        bytes += p.len();
                    }
                }
                bytes
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("to-laptop-path", |b| {
        b.iter(|| {
            let mut sink = Count::default();
            gw.path()
                .from_tunnel(black_box(&inbound), &mut scratch, 2, &mut sink);
            sink.bytes
        })
    });
    g.bench_function("to-laptop-tunn", |b| {
        b.iter(
            || match bare_gw.encapsulate(black_box(&inbound), &mut scratch) {
                TunnResult::WriteToNetwork(p) => p.len(),
                _ => 0,
            },
        )
    });
    g.finish();
    c.final_summary();

    // Under a profiler (`--profile-time`), only the benchmark asked for runs.
    if std::env::args().any(|a| a == "--profile-time") {
        return;
    }
    let snapshot = gw.counters.snapshot();
    println!();
    println!(
        "dataplane: {} packets forwarded to the internal network and {} to the laptop, {} dropped",
        snapshot.forwarded_in,
        snapshot.forwarded_out,
        snapshot.drops.iter().map(|d| d.1).sum::<u64>()
    );
    // The ratio is taken from paired rounds, the gateway's path and boringtun alone one
    // after the other (in turn first), each round on fresh datagrams: on a shared
    // machine, the medians of two benchmarks run seconds apart differ by more than
    // what is measured here.
    let to_internal = paired(ROUNDS, |path_first| {
        // Each side seals its datagrams just before it is timed: both find them equally
        // warm in the cache.
        let run_path = |scratch: &mut [u8]| {
            let sealed: Vec<_> = (0..BATCH).map(|_| seal(&mut laptop, &outbound)).collect();
            let mut sink = Count::default();
            let path = gw.path();
            // As the shell does with the datagrams one wake-up of the socket returned.
            let mut last = LastIndex::default();
            let t = Instant::now();
            for d in &sealed {
                path.from_network_in_batch(
                    LAPTOP_UDP,
                    black_box(d),
                    scratch,
                    3,
                    &mut sink,
                    &mut last,
                );
            }
            (t.elapsed(), sink.bytes)
        };
        let mut run_bare = |scratch: &mut [u8]| {
            let sealed: Vec<_> = (0..BATCH)
                .map(|_| seal(&mut bare_laptop, &outbound))
                .collect();
            let mut bytes = 0;
            let t = Instant::now();
            for d in &sealed {
                if let TunnResult::WriteToTunnelV4(p, _) =
                    bare_gw.decapsulate(Some(LAPTOP_UDP.ip()), black_box(d), scratch)
                {
                    bytes += p.len();
                }
            }
            (t.elapsed(), bytes)
        };
        run_pair(path_first, &mut scratch, run_path, &mut run_bare)
    });
    let to_laptop = paired(ROUNDS, |path_first| {
        let run_path = |scratch: &mut [u8]| {
            let mut sink = Count::default();
            let path = gw.path();
            // As the shell does with what one read from the TUN device returned.
            let mut last = LastPeer::default();
            let t = Instant::now();
            for _ in 0..BATCH {
                path.from_tunnel_in_batch(black_box(&inbound), scratch, 3, &mut sink, &mut last);
            }
            (t.elapsed(), sink.bytes)
        };
        let mut run_bare = |scratch: &mut [u8]| {
            let mut bytes = 0;
            let t = Instant::now();
            for _ in 0..BATCH {
                if let TunnResult::WriteToNetwork(p) =
                    bare_gw.encapsulate(black_box(&inbound), scratch)
                {
                    bytes += p.len();
                }
            }
            (t.elapsed(), bytes)
        };
        run_pair(path_first, &mut scratch, run_path, &mut run_bare)
    });
    for (direction, r) in [
        ("laptop -> internal", to_internal),
        ("internal -> laptop", to_laptop),
    ] {
        println!(
            "dataplane: {direction}, {} byte packets, {ROUNDS} paired rounds of {BATCH}: the gateway's path {:.0} ns a packet, boringtun alone {:.0} ns: enforcement and the rest of the path cost {:+.1} % (median of the rounds' ratios; target <= 5 %)",
            outbound.len(),
            r.path_ns,
            r.bare_ns,
            (r.ratio - 1.0) * 100.0
        );
    }
}

/// Paired rounds.
const ROUNDS: usize = 400;

/// Medians over paired rounds: nanoseconds a packet each way, and the ratio.
struct Paired {
    path_ns: f64,
    bare_ns: f64,
    ratio: f64,
}

type Timed = (Duration, usize);

/// Runs one round: the path and the bare tunnel, in the order given; both must have
/// produced the same number of bytes (the same packets went through).
fn run_pair(
    path_first: bool,
    scratch: &mut [u8],
    run_path: impl FnOnce(&mut [u8]) -> Timed,
    run_bare: &mut impl FnMut(&mut [u8]) -> Timed,
) -> (Duration, Duration) {
    let (p, b) = if path_first {
        let p = run_path(scratch);
        (p, run_bare(scratch))
    } else {
        let b = run_bare(scratch);
        (run_path(scratch), b)
    };
    assert!(
        p.1 > 0 && b.1 > 0,
        "both sides forwarded the round's packets"
    );
    (p.0, b.0)
}

fn paired(rounds: usize, mut round: impl FnMut(bool) -> (Duration, Duration)) -> Paired {
    let mut path = Vec::with_capacity(rounds);
    let mut bare = Vec::with_capacity(rounds);
    let mut ratio = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let (p, b) = round(i % 2 == 0);
        let (p, b) = (p.as_nanos() as f64, b.as_nanos() as f64);
        path.push(p / BATCH as f64);
        bare.push(b / BATCH as f64);
        ratio.push(p / b);
    }
    Paired {
        path_ns: median(&mut path),
        bare_ns: median(&mut bare),
        ratio: median(&mut ratio),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
