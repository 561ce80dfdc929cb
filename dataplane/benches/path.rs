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
//! The goal is measured against a third arm: the same path with enforcement taken out
//! (`unenforced_from_network`, `unenforced_from_tunnel` below: the path's own steps,
//! from the same peer table and counters, without anti-spoofing, the policy, the flow
//! table and accounting). The gateway has no such switch; the bench replicates the
//! path's steps, so a change to [`Path`] is a change to make here too.
//!
//! Each side runs the same real handshake as the gateway's tests. Criterion measures
//! the four on their own; the ratios printed at the end come from rounds in which the
//! three arms run one after the other (in turn first) on the same kind of packets, 400
//! times, which a shared machine's drift between benchmarks does not bias.
//!
//! Criterion also measures enforcement's pieces on their own (`enforcement/…`: the
//! whole decision, the header parse, the short read of an IPv4 TCP or UDP segment that
//! a decided flow's packets take instead, the policy lookup, the flow's key and its
//! update).
//!
//! Run: `cargo bench -p ztgw-dataplane --bench path`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use criterion::{BatchSize, Criterion};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};
use ztgw_config::policy::{CompiledPolicy, Decision, Network, Policy, Proto};
use ztgw_dataplane::conntrack::{Conntrack, FlowKey, MAX_FLOWS, Refused, Stamp};
use ztgw_dataplane::counters::Counters;
use ztgw_dataplane::enforce::{self, Session};
use ztgw_dataplane::packet::{self, build};
use ztgw_dataplane::path::{LastIndex, LastPeer, Path, SCRATCH_LEN, Sink};
use ztgw_dataplane::peers::{Peer, PeerSpec, PeerState, PeerTable, PresharedKey, Tunnel};

const LAPTOP: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
/// The second laptop, whose packets take the path without enforcement.
const LAPTOP2: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 3);
const DB: Ipv4Addr = Ipv4Addr::new(10, 20, 1, 5);
const LAPTOP_UDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 51000);
const LAPTOP2_UDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8)), 51000);
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

    fn install(&self, laptop: &StaticSecret, session: &str, tunnel_addr: Ipv4Addr) {
        let spec = PeerSpec {
            session: session.into(),
            public_key: PublicKey::from(laptop).to_bytes(),
            preshared_key: PresharedKey::new(PSK),
            tunnel_addr: tunnel_addr.into(),
            tunnel_addr6: None,
            role: "finance".into(),
            keepalive: None,
        };
        let role = self.policy.role("finance").expect("role");
        self.peers
            .insert(&spec, |_| {
                PeerState::new(
                    Tunnel::pending(PresharedKey::new(PSK), None),
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
fn connect_through_path(gw: &Gateway, laptop: &StaticSecret, src: SocketAddr) -> Tunn {
    let mut tunn = Tunn::new(laptop.clone(), gw.public, Some(PSK), None, 77, None);
    let mut buf = vec![0; SCRATCH_LEN];
    let init = match tunn.format_handshake_initiation(&mut buf, true) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        _ => panic!("no initiation"),
    };
    let mut out = Capture::default();
    gw.path().from_network(src, &init, &mut buf, 0, &mut out);
    let response = out.net.pop().expect("handshake response");
    let keepalive = match tunn.decapsulate(None, &response, &mut buf) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        _ => panic!("handshake did not complete"),
    };
    gw.path()
        .from_network(src, &keepalive, &mut buf, 0, &mut out);
    tunn
}

/// [`Path::from_network_in_batch`] for a transport data message with enforcement taken
/// out: the shared rate limiter's check, the peer by receiver index (once a burst), its
/// lock, boringtun's decryption, the endpoint, the counters, the output. What the path
/// adds to this is [`ztgw_dataplane::enforce::from_laptop`]: anti-spoofing, the
/// policy, the flow table, accounting.
fn unenforced_from_network(
    gw: &Gateway,
    src: SocketAddr,
    datagram: &[u8],
    scratch: &mut [u8],
    out: &mut impl Sink,
    last: &mut Option<(u32, Arc<Peer>)>,
) {
    gw.counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
    let Ok(Packet::PacketData(p)) = gw.rate.verify_packet(Some(src.ip()), datagram, scratch) else {
        return;
    };
    let index = p.receiver_idx >> 8;
    if !matches!(last, Some((i, _)) if *i == index) {
        *last = gw.peers.by_index(index).map(|peer| (index, peer));
    }
    let Some((_, peer)) = last else {
        return;
    };
    let mut guard = peer.lock();
    let Some(st) = guard.as_mut() else {
        return;
    };
    let Some(tunn) = st.tunnel.get_mut() else {
        return;
    };
    if let TunnResult::WriteToTunnelV4(inner, _) =
        tunn.decapsulate(Some(src.ip()), datagram, scratch)
    {
        st.endpoint = Some(src);
        st.forwarded += 1;
        gw.counters.forwarded_in.fetch_add(1, Ordering::Relaxed);
        gw.counters
            .forwarded_in_bytes
            .fetch_add(inner.len() as u64, Ordering::Relaxed);
        out.to_tunnel(inner);
    }
}

/// [`Path::from_tunnel_in_batch`] with enforcement taken out: the destination read
/// from the IPv4 header (no other field parsed), the peer by tunnel address (once a
/// burst), its lock, boringtun's encryption, the counters, the output. What the path
/// adds to this is the whole header's parse and
/// [`ztgw_dataplane::enforce::to_laptop_parsed`]: the flow the laptop opened.
fn unenforced_from_tunnel(
    gw: &Gateway,
    pkt: &[u8],
    scratch: &mut [u8],
    out: &mut impl Sink,
    last: &mut Option<(IpAddr, Arc<Peer>)>,
) {
    let Some(dst) = pkt.get(16..20).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
        return;
    };
    let dst = IpAddr::from(dst);
    if !matches!(last, Some((a, _)) if *a == dst) {
        *last = gw.peers.by_addr(dst).map(|peer| (dst, peer));
    }
    let Some((_, peer)) = last else {
        return;
    };
    let mut guard = peer.lock();
    let Some(st) = guard.as_mut() else {
        return;
    };
    let (Some(endpoint), Some(tunn)) = (st.endpoint, st.tunnel.get_mut()) else {
        return;
    };
    if let TunnResult::WriteToNetwork(p) = tunn.encapsulate(pkt, scratch) {
        gw.counters.forwarded_out.fetch_add(1, Ordering::Relaxed);
        gw.counters
            .forwarded_out_bytes
            .fetch_add(pkt.len() as u64, Ordering::Relaxed);
        gw.counters.datagrams_out.fetch_add(1, Ordering::Relaxed);
        out.to_network(endpoint, p);
    }
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
    gw.install(&laptop_key, "s-bench", LAPTOP);
    let mut laptop = connect_through_path(&gw, &laptop_key, LAPTOP_UDP);
    let laptop2_key = StaticSecret::from([11; 32]);
    gw.install(&laptop2_key, "s-bench-2", LAPTOP2);
    let mut laptop2 = connect_through_path(&gw, &laptop2_key, LAPTOP2_UDP);
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
    // The second laptop's packets take the path without enforcement: no flow was
    // opened, yet they go through both ways.
    let outbound2 = segment(LAPTOP2, 40000, DB, 5432, 0x10);
    let inbound2 = segment(DB, 5432, LAPTOP2, 40000, 0x10);
    let mut out = Capture::default();
    unenforced_from_network(
        &gw,
        LAPTOP2_UDP,
        &seal(&mut laptop2, &outbound2),
        &mut scratch,
        &mut out,
        &mut None,
    );
    unenforced_from_tunnel(&gw, &inbound2, &mut scratch, &mut out, &mut None);
    assert_eq!(
        (out.tun, out.net.len()),
        (1, 1),
        "the path without enforcement forwards both ways"
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
    enforcement_parts(&mut c, &gw.policy, &outbound);
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
    // The ratios are taken from rounds in which the three arms run one after the other
    // (in turn first), each on fresh datagrams: on a shared machine, the medians of
    // benchmarks run seconds apart differ by more than what is measured here. Each arm
    // seals its datagrams just before it is timed: all find them equally warm in the
    // cache.
    let to_internal = rounds(ROUNDS, &mut scratch, |arm, scratch| match arm {
        Arm::Path => {
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
        }
        Arm::Unenforced => {
            let sealed: Vec<_> = (0..BATCH).map(|_| seal(&mut laptop2, &outbound2)).collect();
            let mut sink = Count::default();
            let mut last = None;
            let t = Instant::now();
            for d in &sealed {
                unenforced_from_network(
                    &gw,
                    LAPTOP2_UDP,
                    black_box(d),
                    scratch,
                    &mut sink,
                    &mut last,
                );
            }
            (t.elapsed(), sink.bytes)
        }
        Arm::Bare => {
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
        }
    });
    let to_laptop = rounds(ROUNDS, &mut scratch, |arm, scratch| match arm {
        Arm::Path => {
            let mut sink = Count::default();
            let path = gw.path();
            // As the shell does with what one read from the TUN device returned.
            let mut last = LastPeer::default();
            let t = Instant::now();
            for _ in 0..BATCH {
                path.from_tunnel_in_batch(black_box(&inbound), scratch, 3, &mut sink, &mut last);
            }
            (t.elapsed(), sink.bytes)
        }
        Arm::Unenforced => {
            let mut sink = Count::default();
            let mut last = None;
            let t = Instant::now();
            for _ in 0..BATCH {
                unenforced_from_tunnel(&gw, black_box(&inbound2), scratch, &mut sink, &mut last);
            }
            (t.elapsed(), sink.bytes)
        }
        Arm::Bare => {
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
        }
    });
    for (direction, r) in [
        ("laptop -> internal", to_internal),
        ("internal -> laptop", to_laptop),
    ] {
        println!(
            "dataplane: {direction}, {} byte packets, {ROUNDS} rounds of {BATCH}: the gateway's path {:.0} ns a packet, the same path without enforcement {:.0} ns, boringtun alone {:.0} ns",
            outbound.len(),
            r.path_ns,
            r.unenforced_ns,
            r.bare_ns,
        );
        println!(
            "dataplane: {direction}: enforcement (anti-spoofing, policy, flow table, accounting) costs {:+.1} % over the path without it (target <= 5 %); the whole path {:+.1} % over boringtun alone (medians of the rounds' ratios)",
            (r.enforcement - 1.0) * 100.0,
            (r.whole - 1.0) * 100.0
        );
    }
}

/// What enforcement costs, piece by piece, on one segment of an open flow (each on its
/// own, in a loop: warmer than on the path, where the cryptography runs in between).
fn enforcement_parts(c: &mut Criterion, policy: &CompiledPolicy, segment: &[u8]) {
    let role = policy.role("finance").expect("role");
    let session = Session {
        id: 1,
        tunnel_addr: LAPTOP.into(),
        tunnel_addr6: None,
        role,
    };
    let mut ct = Conntrack::new(MAX_FLOWS);
    let syn = build::tcp4(LAPTOP, 40000, DB, 5432, 0x02);
    enforce::from_laptop(&session, &syn, policy, &mut ct, |_| false, 0).expect("opens");
    let h = packet::parse(segment).expect("segment");
    let key = FlowKey::outbound(1, &h).expect("a flow");
    let Decision::Allow(rule) = policy.decide(role, DB.into(), Proto::Tcp, 5432) else {
        panic!("the role may reach the database");
    };
    let label = policy.label(rule).expect("label").clone();
    let stamp = Stamp {
        policy: policy.generation(),
        role,
    };
    let mut g = c.benchmark_group("enforcement");
    g.bench_function("from-laptop", |b| {
        let mut now = 1;
        b.iter(|| {
            now += 1;
            enforce::from_laptop(
                &session,
                black_box(segment),
                policy,
                &mut ct,
                |_| false,
                now,
            )
            .is_ok()
        })
    });
    g.bench_function("parse", |b| {
        b.iter(|| packet::parse(black_box(segment)).is_ok())
    });
    g.bench_function("ipv4-segment", |b| {
        b.iter(|| packet::ipv4_segment(black_box(segment)).is_some())
    });
    g.bench_function("decide", |b| {
        b.iter(|| policy.decide(role, black_box(IpAddr::V4(DB)), Proto::Tcp, 5432))
    });
    g.bench_function("flow-key", |b| {
        b.iter(|| FlowKey::outbound(1, black_box(&h)))
    });
    g.bench_function("flow-update", |b| {
        let mut now = 1;
        b.iter(|| {
            now += 1;
            ct.outbound::<Refused>(
                black_box(key),
                stamp,
                || Ok(rule),
                |_| label.clone(),
                &h,
                now,
            )
            .is_ok()
        })
    });
    g.finish();
}

/// Rounds.
const ROUNDS: usize = 400;

/// The three arms of a round.
#[derive(Debug, Clone, Copy)]
enum Arm {
    /// The gateway's path.
    Path,
    /// The same path with enforcement taken out.
    Unenforced,
    /// boringtun alone.
    Bare,
}

const ARMS: [Arm; 3] = [Arm::Path, Arm::Unenforced, Arm::Bare];

/// Medians over the rounds: nanoseconds a packet for each arm, and the ratios of the
/// path to the path without enforcement and to boringtun alone.
struct Medians {
    path_ns: f64,
    unenforced_ns: f64,
    bare_ns: f64,
    enforcement: f64,
    whole: f64,
}

/// What one arm took for a batch, and the bytes it produced (checked non-zero: the
/// batch went through).
type Timed = (Duration, usize);

/// Runs `rounds` rounds of the three arms, each round starting with the next arm in
/// turn.
fn rounds(
    rounds: usize,
    scratch: &mut [u8],
    mut run: impl FnMut(Arm, &mut [u8]) -> Timed,
) -> Medians {
    let mut ns: [Vec<f64>; 3] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    let mut enforcement = Vec::with_capacity(rounds);
    let mut whole = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let mut took = [0.0; 3];
        for k in 0..ARMS.len() {
            let a = (i + k) % ARMS.len();
            let (t, bytes) = run(ARMS[a], scratch);
            assert!(bytes > 0, "{:?} forwarded the round's packets", ARMS[a]);
            took[a] = t.as_nanos() as f64;
        }
        for (a, t) in took.iter().enumerate() {
            ns[a].push(t / BATCH as f64);
        }
        enforcement.push(took[0] / took[1]);
        whole.push(took[0] / took[2]);
    }
    let [path, unenforced, bare] = &mut ns;
    Medians {
        path_ns: median(path),
        unenforced_ns: median(unenforced),
        bare_ns: median(bare),
        enforcement: median(&mut enforcement),
        whole: median(&mut whole),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
