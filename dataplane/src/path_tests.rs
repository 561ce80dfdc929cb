//! The packet path driven with real boringtun tunnels on both sides and no sockets: a
//! laptop's `Tunn` talks to the gateway's [`Path`] through in-memory sinks.

use std::net::{Ipv4Addr, SocketAddr};

use boringtun::noise::{Tunn, TunnResult};
use governor::{Quota, RateLimiter as Governor};

use super::super::counters::Snapshot;
use super::super::fixtures::policy;
use super::super::packet::build;
use super::super::peers::{PeerSpec, PresharedKey, Tunnel};
use super::*;

const A: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 3);
const DB: Ipv4Addr = Ipv4Addr::new(10, 20, 1, 5);
const PSK: [u8; 32] = [9; 32];

#[derive(Default)]
struct Out {
    net: Vec<(SocketAddr, Vec<u8>)>,
    tun: Vec<Vec<u8>>,
}

impl Sink for Out {
    fn to_network(&mut self, dst: SocketAddr, d: &[u8]) {
        self.net.push((dst, d.to_vec()));
    }
    fn to_tunnel(&mut self, p: &[u8]) {
        self.tun.push(p.to_vec());
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
    counters: Counters,
}

impl Gateway {
    fn new(handshakes_before_cookies: u64) -> Self {
        let secret = StaticSecret::from([3; 32]);
        let public = PublicKey::from(&secret);
        Self {
            rate: RateLimiter::new(&public, handshakes_before_cookies),
            secret,
            public,
            source_limit: Governor::keyed(Quota::per_second(
                std::num::NonZeroU32::new(1000).expect("non-zero"),
            )),
            cookie_limit: Governor::keyed(Quota::per_second(
                std::num::NonZeroU32::new(2).expect("non-zero"),
            )),
            peers: PeerTable::new(16),
            policy: policy(),
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
            pool: Network::parse("100.64.0.0/16").expect("pool"),
            pool6: None,
            counters: &self.counters,
        }
    }

    fn install(&self, session: &str, laptop: &StaticSecret, addr: Ipv4Addr, role: &str) {
        let spec = PeerSpec {
            session: session.into(),
            public_key: PublicKey::from(laptop).to_bytes(),
            preshared_key: PresharedKey::new(PSK),
            tunnel_addr: addr.into(),
            tunnel_addr6: None,
            role: role.into(),
            keepalive: None,
        };
        let role_id = self.policy.role(role).expect("role");
        self.peers
            .insert(&spec, |_| {
                PeerState::new(
                    Tunnel::pending(PresharedKey::new(PSK), None),
                    role_id,
                    role.into(),
                )
            })
            .expect("install");
    }

    fn receive(&self, from: SocketAddr, datagram: &[u8]) -> Out {
        let mut out = Out::default();
        let mut scratch = vec![0; SCRATCH_LEN];
        self.path()
            .from_network(from, datagram, &mut scratch, 0, &mut out);
        out
    }

    fn inside_sends(&self, pkt: &[u8]) -> Out {
        let mut out = Out::default();
        let mut scratch = vec![0; SCRATCH_LEN];
        self.path().from_tunnel(pkt, &mut scratch, 0, &mut out);
        out
    }

    fn counters(&self) -> Snapshot {
        self.counters.snapshot()
    }
}

struct Laptop {
    tunn: Tunn,
    addr: SocketAddr,
}

impl Laptop {
    fn new(secret: &StaticSecret, gw: &Gateway, port: u16, psk: [u8; 32]) -> Self {
        Self {
            tunn: Tunn::new(secret.clone(), gw.public, Some(psk), None, 77, None),
            // One host per laptop: per-source limits apply to addresses.
            addr: SocketAddr::from(([192, 0, 2, port as u8], port)),
        }
    }

    fn initiation(&mut self) -> Vec<u8> {
        let mut buf = vec![0; 256];
        match self.tunn.format_handshake_initiation(&mut buf, true) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            _ => panic!("no initiation"),
        }
    }

    /// Runs a handshake with `gw`; true when it completed.
    fn connect(&mut self, gw: &Gateway) -> bool {
        let init = self.initiation();
        let out = gw.receive(self.addr, &init);
        let Some((to, response)) = out.net.first() else {
            return false;
        };
        assert_eq!(
            *to, self.addr,
            "the answer goes to where the laptop sent from"
        );
        let mut buf = vec![0; 256];
        match self.tunn.decapsulate(None, response, &mut buf) {
            TunnResult::WriteToNetwork(keepalive) => {
                let k = keepalive.to_vec();
                gw.receive(self.addr, &k);
                true
            }
            _ => false,
        }
    }

    fn seal(&mut self, pkt: &[u8]) -> Vec<u8> {
        let mut buf = vec![0; pkt.len() + 200];
        match self.tunn.encapsulate(pkt, &mut buf) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            _ => panic!("no session"),
        }
    }

    fn open(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let mut buf = vec![0; datagram.len() + 200];
        match self.tunn.decapsulate(None, datagram, &mut buf) {
            TunnResult::WriteToTunnelV4(p, _) => Some(p.to_vec()),
            _ => None,
        }
    }
}

#[test]
fn a_laptop_reaches_what_its_role_allows_and_nothing_else() {
    let gw = Gateway::new(100);
    let key_a = StaticSecret::from([10; 32]);
    gw.install("s-a", &key_a, A, "finance");
    let mut a = Laptop::new(&key_a, &gw, 40000, PSK);
    assert!(a.connect(&gw), "handshake");
    assert_eq!(gw.counters().handshakes_completed, 1);

    let allowed = build::tcp4(A, 40000, DB, 5432, 0x02);
    let sealed = a.seal(&allowed);
    assert_eq!(gw.receive(a.addr, &sealed).tun, vec![allowed.clone()]);

    // Forbidden port, spoofed source, another laptop: decrypted, then dropped.
    for (pkt, reason) in [
        (build::tcp4(A, 40001, DB, 22, 0x02), "no-rule"),
        (build::tcp4(B, 40001, DB, 5432, 0x02), "spoofed-source"),
        (build::icmp4(A, B, 8, 1), "laptop-to-laptop"),
    ] {
        let sealed = a.seal(&pkt);
        assert!(gw.receive(a.addr, &sealed).tun.is_empty(), "{reason}");
        assert_eq!(
            gw.counters()
                .drops
                .iter()
                .find(|d| d.0 == reason)
                .map(|d| d.1),
            Some(1)
        );
    }

    // The reply comes back encrypted to the laptop; an opening from inside does not.
    let reply = build::tcp4(DB, 5432, A, 40000, 0x12);
    let out = gw.inside_sends(&reply);
    assert_eq!(out.net.len(), 1);
    assert_eq!(out.net[0].0, a.addr);
    assert_eq!(a.open(&out.net[0].1), Some(reply));
    assert!(
        gw.inside_sends(&build::tcp4(DB, 6000, A, 22, 0x02))
            .net
            .is_empty()
    );

    // The denials are accounted for the session.
    let peer = gw.peers.by_session("s-a").expect("peer");
    let report = peer.lock().as_mut().expect("state").accounting.drain("s-a");
    let mut reasons: Vec<_> = report.denials.iter().map(|d| d.reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "laptop-to-laptop",
            "no-rule",
            "not-a-flow",
            "spoofed-source"
        ]
    );
}

/// An installed peer keeps no tunnel until its laptop's first initiation: what comes
/// before is dropped (data for its index, packets towards it), its timers do nothing,
/// and the initiation makes the tunnel and completes the handshake as before.
#[test]
fn a_peers_tunnel_is_made_at_its_first_initiation() {
    let gw = Gateway::new(100);
    let key = StaticSecret::from([13; 32]);
    gw.install("s-a", &key, A, "finance");
    let peer = gw.peers.by_session("s-a").expect("peer");
    let up = |peer: &Peer| {
        peer.lock()
            .as_ref()
            .is_some_and(|st| st.tunnel.get().is_some())
    };
    assert!(!up(&peer));

    // Transport data for its index, before any handshake.
    let mut data = vec![4, 0, 0, 0];
    data.extend_from_slice(&(peer.index << 8).to_le_bytes());
    data.resize(32, 0);
    let laptop_addr = SocketAddr::from(([192, 0, 2, 7], 51000));
    assert!(gw.receive(laptop_addr, &data).net.is_empty());
    assert_eq!(gw.counters().drops(DropReason::Tunnel), 1);
    // A packet from the internal network towards it.
    let reply = build::tcp4(DB, 5432, A, 40000, 0x12);
    assert!(gw.inside_sends(&reply).net.is_empty());
    // Its timers.
    let mut out = Out::default();
    let mut scratch = vec![0; SCRATCH_LEN];
    assert!(gw.path().tick(&peer, &mut scratch, 0, &mut out));
    assert!(out.net.is_empty());
    assert!(!up(&peer), "nothing but an initiation makes the tunnel");

    let mut laptop = Laptop::new(&key, &gw, 40000, PSK);
    assert!(laptop.connect(&gw), "handshake");
    assert!(up(&peer));
    let syn = build::tcp4(A, 40000, DB, 5432, 0x02);
    assert_eq!(gw.receive(laptop.addr, &laptop.seal(&syn)).tun.len(), 1);
}

#[test]
fn unknown_keys_and_wrong_preshared_keys_get_no_tunnel() {
    let gw = Gateway::new(100);
    let stranger = StaticSecret::from([11; 32]);
    let mut s = Laptop::new(&stranger, &gw, 1, PSK);
    assert!(!s.connect(&gw));
    assert_eq!(gw.counters().drops(DropReason::UnknownKey), 1);

    // Installed key, wrong pre-shared key: the responder cannot tell (the key is mixed
    // into its response), but the laptop cannot read the response, so no session exists.
    let key = StaticSecret::from([12; 32]);
    gw.install("s-b", &key, B, "hr");
    let mut b = Laptop::new(&key, &gw, 2, [1; 32]);
    assert!(!b.connect(&gw));

    // Garbage and data for no index.
    assert!(
        gw.receive(
            b.addr,
            &[
                4, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0
            ]
        )
        .net
        .is_empty()
    );
    assert_eq!(gw.counters().drops(DropReason::UnknownIndex), 1);
    assert!(gw.receive(b.addr, b"hello").net.is_empty());
    assert_eq!(gw.counters().drops(DropReason::InvalidMessage), 1);
}

#[test]
fn under_load_an_initiation_gets_a_cookie_and_the_retry_with_it_passes() {
    let gw = Gateway::new(0);
    let key = StaticSecret::from([13; 32]);
    gw.install("s-a", &key, A, "finance");
    let mut a = Laptop::new(&key, &gw, 3, PSK);
    let init = a.initiation();
    let out = gw.receive(a.addr, &init);
    assert_eq!(out.net.len(), 1);
    assert_eq!(out.net[0].1.len(), 64, "a cookie reply");
    assert_eq!(gw.counters().cookie_replies, 1);
    assert_eq!(gw.counters().handshakes_completed, 0, "no DH was done");
    let mut buf = vec![0; 256];
    assert!(matches!(
        a.tunn.decapsulate(None, &out.net[0].1, &mut buf),
        TunnResult::Done
    ));
    // The next initiation carries mac2 for this source and completes.
    assert!(a.connect(&gw));
    assert_eq!(gw.counters().handshakes_completed, 1);

    // A flood from one source without cookies: past its per-source budget of cookie
    // replies, it gets no answer at all.
    let mut flood = Laptop::new(&StaticSecret::from([16; 32]), &gw, 9, PSK);
    let replies: usize = (0..10)
        .map(|_| {
            let init = flood.initiation();
            gw.receive(flood.addr, &init).net.len()
        })
        .sum();
    assert_eq!(replies, 2);
    assert_eq!(gw.counters().drops(DropReason::CookieRateLimited), 8);
}

#[test]
fn a_removed_peer_passes_nothing_and_loses_its_tunnel() {
    let gw = Gateway::new(100);
    let key = StaticSecret::from([14; 32]);
    gw.install("s-a", &key, A, "finance");
    let mut a = Laptop::new(&key, &gw, 4, PSK);
    assert!(a.connect(&gw));
    let held = gw.peers.by_session("s-a").expect("peer");
    let sealed = a.seal(&build::tcp4(A, 40000, DB, 5432, 0x02));
    let (_, state) = gw.peers.remove("s-a").expect("removed");
    drop(state);
    assert!(gw.receive(a.addr, &sealed).tun.is_empty());
    assert_eq!(gw.counters().drops(DropReason::UnknownIndex), 1);
    assert!(held.lock().is_none());
    // A new handshake with the same key is refused too.
    assert!(!a.connect(&gw));
}

#[test]
fn a_batch_from_inside_reaches_each_laptop_and_none_removed_in_its_middle() {
    let gw = Gateway::new(100);
    let (key_a, key_b) = (StaticSecret::from([16; 32]), StaticSecret::from([17; 32]));
    gw.install("s-a", &key_a, A, "finance");
    gw.install("s-b", &key_b, B, "finance");
    let mut a = Laptop::new(&key_a, &gw, 5, PSK);
    let mut b = Laptop::new(&key_b, &gw, 6, PSK);
    assert!(a.connect(&gw) && b.connect(&gw));
    for (laptop, addr) in [(&mut a, A), (&mut b, B)] {
        let opening = laptop.seal(&build::tcp4(addr, 40000, DB, 5432, 0x02));
        assert_eq!(gw.receive(laptop.addr, &opening).tun.len(), 1);
    }
    let to_a = build::tcp4(DB, 5432, A, 40000, 0x12);
    let to_b = build::tcp4(DB, 5432, B, 40000, 0x12);
    let to_nobody = build::tcp4(DB, 5432, Ipv4Addr::new(100, 64, 0, 9), 40000, 0x12);

    // Interleaved, each packet goes to its own laptop, sealed with its own keys.
    let mut out = Out::default();
    let mut scratch = vec![0; SCRATCH_LEN];
    let mut last = LastPeer::default();
    for pkt in [&to_a, &to_a, &to_b, &to_nobody, &to_a, &to_b] {
        gw.path()
            .from_tunnel_in_batch(pkt, &mut scratch, 0, &mut out, &mut last);
    }
    let to: Vec<_> = out.net.iter().map(|(dst, _)| *dst).collect();
    assert_eq!(to, [a.addr, a.addr, b.addr, a.addr, b.addr]);
    for (dst, datagram) in &out.net {
        let (laptop, expected) = if *dst == a.addr {
            (&mut a, &to_a)
        } else {
            (&mut b, &to_b)
        };
        assert_eq!(laptop.open(datagram).as_ref(), Some(expected));
    }
    assert_eq!(gw.counters().drops(DropReason::NoPeer), 1);

    // A peer removed between two packets of the batch gets none after its removal.
    let mut out = Out::default();
    let mut last = LastPeer::default();
    gw.path()
        .from_tunnel_in_batch(&to_a, &mut scratch, 0, &mut out, &mut last);
    let (_, state) = gw.peers.remove("s-a").expect("removed");
    drop(state);
    gw.path()
        .from_tunnel_in_batch(&to_a, &mut scratch, 0, &mut out, &mut last);
    assert_eq!(out.net.len(), 1);
    assert_eq!(gw.counters().drops(DropReason::Removed), 1);
}

#[test]
fn a_batch_from_the_network_reaches_through_each_laptops_tunnel_and_none_removed() {
    let gw = Gateway::new(100);
    let (key_a, key_b) = (StaticSecret::from([18; 32]), StaticSecret::from([19; 32]));
    gw.install("s-a", &key_a, A, "finance");
    gw.install("s-b", &key_b, B, "finance");
    let mut a = Laptop::new(&key_a, &gw, 7, PSK);
    let mut b = Laptop::new(&key_b, &gw, 8, PSK);
    assert!(a.connect(&gw) && b.connect(&gw));
    let from_a = build::tcp4(A, 40000, DB, 5432, 0x02);
    let from_b = build::tcp4(B, 40000, DB, 5432, 0x02);
    // Interleaved: each datagram is opened by its own laptop's tunnel (A's could not
    // open B's).
    let batch = [
        (a.addr, a.seal(&from_a)),
        (a.addr, a.seal(&from_a)),
        (b.addr, b.seal(&from_b)),
        (a.addr, a.seal(&from_a)),
    ];
    let mut out = Out::default();
    let mut scratch = vec![0; SCRATCH_LEN];
    let mut last = LastIndex::default();
    for (src, datagram) in &batch {
        gw.path()
            .from_network_in_batch(*src, datagram, &mut scratch, 0, &mut out, &mut last);
    }
    assert_eq!(
        out.tun,
        [
            from_a.clone(),
            from_a.clone(),
            from_b.clone(),
            from_a.clone()
        ]
    );

    // Removed between two datagrams of the batch: nothing after its removal.
    let mut out = Out::default();
    let mut last = LastIndex::default();
    let (first, second) = (a.seal(&from_a), a.seal(&from_a));
    gw.path()
        .from_network_in_batch(a.addr, &first, &mut scratch, 0, &mut out, &mut last);
    let (_, state) = gw.peers.remove("s-a").expect("removed");
    drop(state);
    gw.path()
        .from_network_in_batch(a.addr, &second, &mut scratch, 0, &mut out, &mut last);
    assert_eq!(out.tun.len(), 1);
    assert_eq!(gw.counters().drops(DropReason::Removed), 1);
}

#[test]
fn timers_end_idle_flows_into_the_accounting() {
    let gw = Gateway::new(100);
    let key = StaticSecret::from([15; 32]);
    gw.install("s-a", &key, A, "finance");
    let mut a = Laptop::new(&key, &gw, 5, PSK);
    assert!(a.connect(&gw));
    let udp = build::udp4(A, 5353, Ipv4Addr::new(10, 20, 0, 53), 53, 20);
    let sealed = a.seal(&udp);
    assert_eq!(gw.receive(a.addr, &sealed).tun.len(), 1);
    let peer = gw.peers.by_session("s-a").expect("peer");
    let mut out = Out::default();
    let mut scratch = vec![0; SCRATCH_LEN];
    assert!(gw.path().tick(&peer, &mut scratch, 3_600_000, &mut out));
    let report = peer.lock().as_mut().expect("state").accounting.drain("s-a");
    assert_eq!(report.flows.len(), 1);
    assert_eq!(report.flows[0].rule, "finance/dns");
    assert_eq!(
        (report.flows[0].remote_port, report.flows[0].packets_out),
        (53, 1)
    );
}

#[test]
fn a_cookie_reply_from_elsewhere_does_not_move_the_laptops_endpoint() {
    let gw = Gateway::new(100);
    let key_a = StaticSecret::from([10; 32]);
    gw.install("s-a", &key_a, A, "finance");
    let mut a = Laptop::new(&key_a, &gw, 40000, PSK);
    assert!(a.connect(&gw), "handshake");
    // A flow the internal network may answer.
    let allowed = build::tcp4(A, 40000, DB, 5432, 0x02);
    let sealed = a.seal(&allowed);
    assert_eq!(gw.receive(a.addr, &sealed).tun.len(), 1);

    // The gateway starts a handshake (a rekey); the laptop, under load, answers with a
    // cookie reply: a genuine one, made by boringtun's own rate limiter.
    let peer = gw.peers.by_session("s-a").expect("peer");
    let mut buf = vec![0; 256];
    let init = match peer
        .lock()
        .as_mut()
        .expect("state")
        .tunnel
        .get_mut()
        .expect("the tunnel is up")
        .format_handshake_initiation(&mut buf, true)
    {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        _ => panic!("no initiation"),
    };
    let laptop_limiter = RateLimiter::new(&PublicKey::from(&key_a), 0);
    let mut cookie = vec![0; 256];
    let cookie = match laptop_limiter.verify_packet(Some(a.addr.ip()), &init, &mut cookie) {
        Err(TunnResult::WriteToNetwork(c)) => c.to_vec(),
        _ => panic!("the loaded laptop answers with a cookie reply"),
    };

    // An on-path observer sends it (and a forgery that does not decrypt) from elsewhere.
    let attacker = SocketAddr::from(([203, 0, 113, 9], 51820));
    assert!(gw.receive(attacker, &cookie).net.is_empty());
    let mut forged = cookie.clone();
    if let Some(b) = forged.last_mut() {
        *b ^= 1;
    }
    assert!(gw.receive(attacker, &forged).net.is_empty());

    // The gateway still sends the laptop's datagrams to the laptop.
    let reply = build::tcp4(DB, 5432, A, 40000, 0x12);
    let out = gw.inside_sends(&reply);
    assert_eq!(out.net.len(), 1);
    assert_eq!(out.net[0].0, a.addr, "the endpoint did not move");
    assert_eq!(a.open(&out.net[0].1), Some(reply));

    // Transport data that decrypts does move it: the laptop roamed.
    let roamed = SocketAddr::from(([192, 0, 2, 77], 40001));
    let sealed = a.seal(&build::tcp4(A, 40000, DB, 5432, 0x10));
    assert_eq!(gw.receive(roamed, &sealed).tun.len(), 1);
    let out = gw.inside_sends(&build::tcp4(DB, 5432, A, 40000, 0x10));
    assert_eq!(out.net.first().map(|n| n.0), Some(roamed));
}
