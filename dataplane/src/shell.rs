//! The data plane's shell: the TUN device, the UDP sockets, the workers and the timers.
//! It only wires I/O to [`Path`]; every decision is made there.
//!
//! Parallelism: `workers` pairs of (UDP socket, TUN queue). The UDP sockets share the
//! port with `SO_REUSEPORT`, so the kernel hashes each laptop's datagrams to one socket;
//! the TUN device is multi-queue, so the kernel hashes each flow to one queue. Different
//! peers are decrypted and encrypted on different cores, and the packets of one flow stay
//! in order. A peer's tunnel is behind its own lock, held for one packet at a time.
//! Each worker counts on counters of its own ([`PerWorker`]), summed when read.
//!
//! With TUN offload, one read from the device returns a whole TCP segment burst split
//! into packets, and decrypted packets written in one batch are coalesced (GRO) before
//! they reach the kernel: far fewer system calls per byte.
//!
//! Peers come only from [`DataPlane::add_peer`], which the session layer calls for an
//! admitted session; there is no other way in.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::x25519::{PublicKey, StaticSecret};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tun_rs::{AsyncDevice, DeviceBuilder, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};
use ztgw_config::policy::{CompiledPolicy, Decision, Network, Proto};

use super::accounting::Report;
use super::conntrack::{Flow, FlowKey};
use super::counters::{DropReason, PerWorker, Snapshot};
use super::path::{self, Path, SCRATCH_LEN, Sink};
use super::peers::{PeerError, PeerSpec, PeerState, PeerTable, Tunnel};

/// How often every peer's timers run (boringtun wants 100-250 ms).
const TICK: Duration = Duration::from_millis(100);
/// Receive buffer asked of each UDP socket.
const UDP_RECV_BUFFER: usize = 4 << 20;
/// Datagrams read from a socket before their decrypted packets are written out together.
const UDP_BATCH: usize = 64;

/// The data plane's settings (from `[wireguard]` in gateway.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// TUN interface name.
    pub interface: String,
    /// The tunnel network; the gateway takes its first address, laptops the others.
    pub network: Network,
    /// Dual stack: the IPv6 tunnel network (the gateway takes its first address too;
    /// a laptop's IPv6 address is its second, [`PeerSpec::tunnel_addr6`]).
    pub network6: Option<Network>,
    pub mtu: u16,
    /// UDP address WireGuard listens on.
    pub listen: SocketAddr,
    /// Worker pairs (UDP socket + TUN queue); at least 1.
    pub workers: usize,
    /// TUN offload (TSO/GSO in, GRO out). Falls back to none if the kernel refuses.
    pub offload: bool,
    pub max_peers: usize,
    /// Handshake initiations per second (all sources) before cookies are required.
    pub handshakes_before_cookies: u64,
    /// Handshake initiations per second from one source address, past the cookie check.
    pub handshakes_per_second_per_source: u32,
}

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot create TUN interface {name}: {source} (the gateway needs CAP_NET_ADMIN and /dev/net/tun)"
    )]
    Tun {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot listen on UDP {addr}: {source}")]
    Udp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the tunnel network {0} has no room for the gateway and laptops")]
    Network(String),
}

/// What the session layer can see of one peer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerInfo {
    pub session: String,
    pub role: String,
    pub tunnel_addr: IpAddr,
    pub endpoint: Option<SocketAddr>,
    /// Seconds since the last completed handshake; `None` before the first.
    pub handshake_age_s: Option<u64>,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Packets from the laptop allowed and forwarded (its activity).
    pub forwarded: u64,
    pub flows: usize,
}

/// A running data plane.
pub struct DataPlane {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    local_addr: SocketAddr,
    offload: bool,
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("interface", &self.shared.config.interface)
            .field("local_addr", &self.local_addr)
            .field("peers", &self.shared.peers.len())
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: Config,
    gateway_addr: IpAddr,
    gateway_addr6: Option<IpAddr>,
    secret: StaticSecret,
    public: PublicKey,
    rate: RateLimiter,
    source_limit: DefaultKeyedRateLimiter<IpAddr>,
    cookie_limit: DefaultKeyedRateLimiter<IpAddr>,
    peers: PeerTable,
    policy: ArcSwap<CompiledPolicy>,
    /// Slot `2i` is UDP worker `i`'s, `2i + 1` TUN worker `i`'s, the last the timers'.
    counters: PerWorker,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The path as worker `slot` sees it (its own counters).
    fn with_path<R>(&self, slot: usize, f: impl FnOnce(&Path<'_>) -> R) -> R {
        let policy = self.policy.load();
        f(&Path {
            secret: &self.secret,
            public: &self.public,
            rate: &self.rate,
            source_limit: &self.source_limit,
            cookie_limit: &self.cookie_limit,
            peers: &self.peers,
            policy: &policy,
            pool: self.config.network,
            pool6: self.config.network6,
            counters: self.counters.get(slot),
        })
    }
}

impl DataPlane {
    /// Creates the TUN interface and the sockets and starts the workers. Must run inside
    /// a Tokio runtime.
    pub fn start(
        config: Config,
        secret: StaticSecret,
        policy: Arc<CompiledPolicy>,
    ) -> Result<Self, StartError> {
        let gateway_addr = first_host(&config.network)?;
        let gateway_addr6 = config.network6.as_ref().map(first_host).transpose()?;
        let workers = config.workers.max(1);
        let (queues, offload) = open_tun(&config, gateway_addr, gateway_addr6, workers)?;
        let sockets = open_udp(config.listen, workers)?;
        let local_addr = sockets[0].local_addr().map_err(|source| StartError::Udp {
            addr: config.listen,
            source,
        })?;
        let public = PublicKey::from(&secret);
        let per_source = NonZeroU32::new(config.handshakes_per_second_per_source.max(1))
            .unwrap_or(NonZeroU32::MIN);
        let shared = Arc::new(Shared {
            rate: RateLimiter::new(&public, config.handshakes_before_cookies),
            source_limit: governor::RateLimiter::keyed(
                Quota::per_second(per_source).allow_burst(per_source),
            ),
            cookie_limit: governor::RateLimiter::keyed(
                Quota::per_second(per_source).allow_burst(per_source),
            ),
            peers: PeerTable::new(config.max_peers),
            policy: ArcSwap::new(policy),
            counters: PerWorker::new(2 * workers + 1),
            epoch: Instant::now(),
            config,
            gateway_addr,
            gateway_addr6,
            secret,
            public,
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for (i, (queue, socket)) in queues.into_iter().zip(sockets).enumerate() {
            let queue = Arc::new(queue);
            let socket = Arc::new(socket);
            tasks.push(tokio::spawn(udp_worker(
                shared.clone(),
                2 * i,
                socket.clone(),
                queue.clone(),
                offload,
                stopped.clone(),
            )));
            tasks.push(tokio::spawn(tun_worker(
                shared.clone(),
                2 * i + 1,
                queue,
                socket.clone(),
                stopped.clone(),
            )));
            if tasks.len() == 2 {
                tasks.push(tokio::spawn(timers(
                    shared.clone(),
                    2 * workers,
                    socket,
                    stopped.clone(),
                )));
            }
        }
        tracing::info!(
            interface = %shared.config.interface,
            %local_addr,
            workers,
            offload,
            "data plane started"
        );
        Ok(Self {
            shared,
            tasks,
            stop,
            local_addr,
            offload,
        })
    }

    /// Installs the peer of an admitted session.
    pub fn add_peer(&self, spec: &PeerSpec) -> Result<(), PeerError> {
        let s = &self.shared;
        if !s.config.network.contains(spec.tunnel_addr) || spec.tunnel_addr == s.gateway_addr {
            return Err(PeerError::AddressOutsidePool(spec.tunnel_addr));
        }
        if let Some(a6) = spec.tunnel_addr6
            && (!s.config.network6.is_some_and(|n| n.contains(a6)) || Some(a6) == s.gateway_addr6)
        {
            return Err(PeerError::AddressOutsidePool(a6));
        }
        let policy = s.policy.load();
        let role = policy
            .role(&spec.role)
            .ok_or_else(|| PeerError::UnknownRole(spec.role.clone()))?;
        s.peers.insert(spec, |_| {
            PeerState::new(
                Tunnel::pending(spec.preshared_key.clone(), spec.keepalive),
                role,
                spec.role.clone(),
            )
        })?;
        Ok(())
    }

    /// Moves a session to another role (e.g. quarantine): from the next packet on, the
    /// new role's policy applies, and flows it does not allow are ended.
    pub fn update_peer(&self, session: &str, role_name: &str) -> Result<(), PeerError> {
        let s = &self.shared;
        let peer = s
            .peers
            .by_session(session)
            .ok_or_else(|| PeerError::UnknownSession(session.into()))?;
        let policy = s.policy.load();
        let role = policy
            .role(role_name)
            .ok_or_else(|| PeerError::UnknownRole(role_name.into()))?;
        let mut guard = peer.lock();
        let st = guard
            .as_mut()
            .ok_or_else(|| PeerError::UnknownSession(session.into()))?;
        st.role = role;
        st.role_name = role_name.to_owned();
        end_disallowed_flows(st, &policy);
        Ok(())
    }

    /// Removes the peer of `session`: its packets stop at once, including those being
    /// processed, and its tunnel keys are dropped. Returns its final accounting.
    pub fn remove_peer(&self, session: &str) -> Option<Report> {
        let (peer, mut st) = self.shared.peers.remove(session)?;
        let flows = st.conntrack.remove_session(peer.index);
        st.accounting.flows_ended(flows);
        Some(st.accounting.drain(session))
        // `st` (and with it the Tunn and its session keys) is dropped here.
    }

    /// Replaces the policy: roles are found again by name (a role that is gone denies
    /// everything), and flows the new policy does not allow are ended.
    pub fn set_policy(&self, policy: Arc<CompiledPolicy>) {
        let s = &self.shared;
        s.policy.store(policy.clone());
        for peer in s.peers.all() {
            let mut guard = peer.lock();
            if let Some(st) = guard.as_mut() {
                st.role = policy
                    .role(&st.role_name)
                    .unwrap_or(ztgw_config::policy::RoleId::NONE);
                end_disallowed_flows(st, &policy);
            }
        }
    }

    /// Takes the accounting of every session since the previous call (sessions with
    /// nothing to report are left out).
    pub fn reports(&self) -> Vec<Report> {
        self.shared
            .peers
            .all()
            .into_iter()
            .filter_map(|peer| {
                let mut guard = peer.lock();
                let report = guard.as_mut()?.accounting.drain(&peer.session);
                (!report.is_empty()).then_some(report)
            })
            .collect()
    }

    /// The sessions whose peers are installed.
    pub fn peer_sessions(&self) -> Vec<String> {
        self.shared
            .peers
            .all()
            .into_iter()
            .map(|p| p.session.clone())
            .collect()
    }

    pub fn peer(&self, session: &str) -> Option<PeerInfo> {
        let peer = self.shared.peers.by_session(session)?;
        let guard = peer.lock();
        let st = guard.as_ref()?;
        let (age, tx, rx) = st.tunnel.stats();
        Some(PeerInfo {
            session: peer.session.clone(),
            role: st.role_name.clone(),
            tunnel_addr: peer.tunnel_addr,
            endpoint: st.endpoint,
            handshake_age_s: age.map(|d| d.as_secs()),
            tx_bytes: tx as u64,
            rx_bytes: rx as u64,
            forwarded: st.forwarded,
            flows: st.conntrack.len(),
        })
    }

    pub fn peer_count(&self) -> usize {
        self.shared.peers.len()
    }

    pub fn counters(&self) -> Snapshot {
        self.shared.counters.snapshot()
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.shared.public.to_bytes()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn gateway_addr(&self) -> IpAddr {
        self.shared.gateway_addr
    }

    /// Whether TUN offload is in use.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Stops the workers and removes every peer (returning their final accounting); the
    /// TUN device closes when the last worker is gone.
    pub async fn shutdown(mut self) -> Vec<Report> {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let sessions: Vec<String> = self
            .shared
            .peers
            .all()
            .iter()
            .map(|p| p.session.clone())
            .collect();
        sessions
            .iter()
            .filter_map(|s| self.remove_peer(s))
            .collect()
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn end_disallowed_flows(st: &mut PeerState, policy: &CompiledPolicy) {
    let role = st.role;
    let ended = st.conntrack.retain(|k: &FlowKey, _: &Flow| {
        let proto = match k.proto {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            _ => Proto::Icmp,
        };
        matches!(
            policy.decide(role, k.remote, proto, k.remote_port),
            Decision::Allow(_)
        )
    });
    st.accounting.flows_ended(ended);
}

fn first_host(network: &Network) -> Result<IpAddr, StartError> {
    let host = match *network {
        Network::V4 { addr, prefix } if prefix <= 30 => {
            IpAddr::from(std::net::Ipv4Addr::from(addr + 1))
        }
        Network::V6 { addr, prefix } if prefix <= 126 => {
            IpAddr::from(std::net::Ipv6Addr::from(addr + 1))
        }
        _ => return Err(StartError::Network(format!("{network:?}"))),
    };
    Ok(host)
}

fn open_tun(
    config: &Config,
    gateway_addr: IpAddr,
    gateway_addr6: Option<IpAddr>,
    workers: usize,
) -> Result<(Vec<AsyncDevice>, bool), StartError> {
    let build = |offload: bool| {
        let mut b = DeviceBuilder::new()
            .name(config.interface.clone())
            .mtu(config.mtu)
            .offload(offload)
            .multi_queue(workers > 1);
        b = match (gateway_addr, config.network) {
            (IpAddr::V4(a), Network::V4 { prefix, .. }) => b.ipv4(a, prefix, None),
            (IpAddr::V6(a), Network::V6 { prefix, .. }) => b.ipv6(a, prefix),
            _ => b,
        };
        b = match (gateway_addr6, config.network6) {
            (Some(IpAddr::V6(a)), Some(Network::V6 { prefix, .. })) => b.ipv6(a, prefix),
            _ => b,
        };
        b.build_async()
    };
    let tun_err = |source| StartError::Tun {
        name: config.interface.clone(),
        source,
    };
    let (first, offload) = match build(config.offload) {
        Ok(d) => (d, config.offload),
        Err(e) if config.offload => {
            tracing::warn!(error = %e, "TUN offload refused by the kernel; running without it");
            (build(false).map_err(tun_err)?, false)
        }
        Err(e) => return Err(tun_err(e)),
    };
    let mut queues = Vec::with_capacity(workers);
    for _ in 1..workers {
        queues.push(first.try_clone().map_err(tun_err)?);
    }
    queues.insert(0, first);
    Ok((queues, offload))
}

fn open_udp(listen: SocketAddr, workers: usize) -> Result<Vec<UdpSocket>, StartError> {
    let mut addr = listen;
    let mut sockets = Vec::with_capacity(workers);
    for _ in 0..workers {
        let udp_err = |source| StartError::Udp {
            addr: listen,
            source,
        };
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(udp_err)?;
        s.set_reuse_port(true).map_err(udp_err)?;
        // Room to absorb bursts (the kernel caps it at net.core.rmem_max).
        let _ = s.set_recv_buffer_size(UDP_RECV_BUFFER);
        if addr.is_ipv6() {
            s.set_only_v6(false).map_err(udp_err)?;
        }
        s.set_nonblocking(true).map_err(udp_err)?;
        s.bind(&addr.into()).map_err(udp_err)?;
        let std_socket: std::net::UdpSocket = s.into();
        let socket = UdpSocket::from_std(std_socket).map_err(udp_err)?;
        // The others share the port the first one got (when asked for port 0).
        addr = socket.local_addr().map_err(udp_err)?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Output of a worker, written out after a batch.
struct Batch {
    tun: Vec<Vec<u8>>,
    tun_len: usize,
    net: Vec<(SocketAddr, Vec<u8>)>,
    net_len: usize,
    /// Room left before each packet for the virtio header (offload).
    head: usize,
}

impl Batch {
    fn new(head: usize) -> Self {
        Self {
            tun: Vec::new(),
            tun_len: 0,
            net: Vec::new(),
            net_len: 0,
            head,
        }
    }

    fn clear(&mut self) {
        self.tun_len = 0;
        self.net_len = 0;
    }
}

impl Sink for Batch {
    fn to_network(&mut self, dst: SocketAddr, datagram: &[u8]) {
        if self.net_len == self.net.len() {
            self.net.push((dst, Vec::with_capacity(2048)));
        }
        let (d, buf) = &mut self.net[self.net_len];
        *d = dst;
        buf.clear();
        buf.extend_from_slice(datagram);
        self.net_len += 1;
    }

    fn to_tunnel(&mut self, packet: &[u8]) {
        if self.tun_len == self.tun.len() {
            self.tun.push(Vec::with_capacity(2048));
        }
        let buf = &mut self.tun[self.tun_len];
        buf.clear();
        buf.resize(self.head, 0);
        buf.extend_from_slice(packet);
        self.tun_len += 1;
    }
}

/// Most datagrams handed to the kernel in one `sendmmsg`.
const SEND_BATCH: usize = 64;

/// Sends the batch's datagrams, up to [`SEND_BATCH`] in one system call (`sendmmsg`):
/// a burst of packets towards laptops cost a `sendto` each. The datagrams leave one
/// by one as before (no segmentation offload, so a laptop's receive buffer sees no
/// larger bursts than a loop of `sendto` made). A datagram the kernel refuses is
/// counted and skipped; the others are still sent.
async fn send_network(shared: &Shared, slot: usize, socket: &UdpSocket, batch: &Batch) {
    let mut pending = &batch.net[..batch.net_len];
    while !pending.is_empty() {
        let chunk = &pending[..pending.len().min(SEND_BATCH)];
        match send_many(socket, chunk).await {
            Ok(sent) => pending = &pending[sent.clamp(1, chunk.len())..],
            Err(_) => {
                shared.counters.get(slot).drop(DropReason::WriteFailed);
                pending = &pending[1..];
            }
        }
    }
}

/// One `sendmmsg` of `datagrams` (waiting until the socket has room): how many the
/// kernel took, or the error of the first.
async fn send_many(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
    use rustix::net::addr::SocketAddrArg as _;
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, sendmmsg};
    let addrs: Vec<_> = datagrams.iter().map(|(a, _)| a.as_any()).collect();
    let iovs: Vec<[IoSlice<'_>; 1]> = datagrams.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
    // The messages hold raw pointers (not `Send`): made anew at each try, never held
    // across an await.
    let send = || {
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = datagrams
            .iter()
            .map(|_| SendAncillaryBuffer::default())
            .collect();
        let mut msgs: Vec<MMsgHdr<'_>> = addrs
            .iter()
            .zip(&iovs)
            .zip(controls.iter_mut())
            .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, &iov[..], control))
            .collect();
        sendmmsg(socket, &mut msgs, SendFlags::empty()).map_err(io::Error::from)
    };
    loop {
        socket.writable().await?;
        match socket.try_io(Interest::WRITABLE, send) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Datagrams in, decrypted packets out to the TUN device.
async fn udp_worker(
    shared: Arc<Shared>,
    slot: usize,
    socket: Arc<UdpSocket>,
    tun: Arc<AsyncDevice>,
    offload: bool,
    mut stop: watch::Receiver<bool>,
) {
    let head = if offload { VIRTIO_NET_HDR_LEN } else { 0 };
    let mut buf = vec![0u8; 65_535];
    let mut scratch = vec![0u8; SCRATCH_LEN];
    let mut batch = Batch::new(head);
    let mut gro = GROTable::default();
    loop {
        let first = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.changed() => return,
        };
        batch.clear();
        let now = shared.now_ms();
        let mut received = first;
        let mut n = 0;
        shared.with_path(slot, |path| {
            let mut last = path::LastIndex::default();
            while let Ok((len, src)) = received {
                path.from_network_in_batch(
                    src,
                    &buf[..len],
                    &mut scratch,
                    now,
                    &mut batch,
                    &mut last,
                );
                n += 1;
                if n == UDP_BATCH {
                    break;
                }
                received = socket.try_recv_from(&mut buf);
            }
        });
        send_network(&shared, slot, &socket, &batch).await;
        if batch.tun_len == 0 {
            continue;
        }
        let packets = &mut batch.tun[..batch.tun_len];
        let written = if offload {
            tun.send_multiple(&mut gro, packets, head).await.map(|_| ())
        } else {
            let mut r = Ok(());
            for p in packets.iter() {
                r = r.and(tun.send(p).await.map(|_| ()));
            }
            r
        };
        if let Err(e) = written {
            tracing::debug!(error = %e, "TUN write failed");
            shared.counters.get(slot).drop(DropReason::WriteFailed);
        }
    }
}

/// Packets from the internal network in, encrypted datagrams out.
async fn tun_worker(
    shared: Arc<Shared>,
    slot: usize,
    tun: Arc<AsyncDevice>,
    socket: Arc<UdpSocket>,
    mut stop: watch::Receiver<bool>,
) {
    let seg = usize::from(shared.config.mtu).max(1500) + 128;
    let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65_535];
    let mut bufs = vec![vec![0u8; seg]; IDEAL_BATCH_SIZE];
    let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
    let mut scratch = vec![0u8; SCRATCH_LEN];
    let mut batch = Batch::new(0);
    loop {
        let n = tokio::select! {
            r = tun.recv_multiple(&mut original, &mut bufs, &mut sizes, 0) => r,
            _ = stop.changed() => return,
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "TUN read failed");
                shared
                    .counters
                    .get(slot)
                    .drop(DropReason::Enforce(super::enforce::Drop::Malformed));
                continue;
            }
        };
        batch.clear();
        let now = shared.now_ms();
        shared.with_path(slot, |path| {
            let mut last = path::LastPeer::default();
            for (b, size) in bufs.iter().zip(&sizes).take(n) {
                path.from_tunnel_in_batch(&b[..*size], &mut scratch, now, &mut batch, &mut last);
            }
        });
        send_network(&shared, slot, &socket, &batch).await;
    }
}

/// Every peer's timers each [`TICK`]; the shared handshake limiter and the per-source
/// limiter are reset and trimmed every second.
async fn timers(
    shared: Arc<Shared>,
    slot: usize,
    socket: Arc<UdpSocket>,
    mut stop: watch::Receiver<bool>,
) {
    let mut scratch = vec![0u8; SCRATCH_LEN];
    let mut batch = Batch::new(0);
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        ticks += 1;
        if ticks.is_multiple_of(10) {
            shared.rate.reset_count();
            shared.source_limit.retain_recent();
            shared.cookie_limit.retain_recent();
        }
        let now = shared.now_ms();
        for peer in shared.peers.all() {
            batch.clear();
            shared.with_path(slot, |path| path.tick(&peer, &mut scratch, now, &mut batch));
            send_network(&shared, slot, &socket, &batch).await;
        }
    }
}

impl Config {
    /// The data plane's settings from `[wireguard]` (already checked when loaded).
    pub fn from_settings(w: &ztgw_config::settings::WireguardSection) -> Result<Self, StartError> {
        let (network, network6) = w.tunnel_networks().map_err(StartError::Network)?;
        let workers = match w.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Ok(Self {
            interface: w.interface.clone(),
            network,
            network6,
            mtu: w.mtu,
            listen: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, w.listen_port)),
            workers,
            offload: w.offload,
            max_peers: w.max_peers,
            handshakes_before_cookies: w.handshakes_before_cookies,
            handshakes_per_second_per_source: w.handshakes_per_second_per_source,
        })
    }
}
