//! The way of one datagram or one packet through the gateway.
//!
//! From the network: WireGuard messages are routed as boringtun requires. A handshake
//! initiation carries no receiver index, so its mac1 is checked first (and, under load,
//! its mac2 against a cookie, answering with a cookie reply), then the per-source limit,
//! and only then the Diffie-Hellman that reveals the initiator's static key; an unknown
//! key is dropped. Every other message names its peer by receiver index. Decrypted
//! packets go through [`enforce::from_laptop`] before they reach the TUN device.
//!
//! From the TUN device: a packet goes to the peer whose tunnel address it is sent to, and
//! only on a flow that laptop opened ([`enforce::to_laptop`]).
//!
//! Output is written to a [`Sink`]; the shell decides how to send it. Time is `now_ms`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use governor::DefaultKeyedRateLimiter;
use ztgw_config::policy::{CompiledPolicy, Network};

use super::counters::{Counters, DropReason, add};
use super::enforce::{self, Drop};
use super::packet;
use super::peers::{Peer, PeerState, PeerTable};
use crate::source::source_of;

/// Where the path writes what it sends.
pub trait Sink {
    /// An encrypted datagram for `dst`.
    fn to_network(&mut self, dst: SocketAddr, datagram: &[u8]);
    /// A decrypted, allowed packet for the internal network.
    fn to_tunnel(&mut self, packet: &[u8]);
}

/// The smallest scratch buffer the path needs (boringtun's rule: at least 148 bytes and
/// the largest packet plus 32).
pub const SCRATCH_LEN: usize = 65_535 + 32;

/// The peer of the previous packet of a batch from the TUN device, by its tunnel
/// address ([`Path::from_tunnel_in_batch`]). Kept for one batch only.
#[derive(Debug, Default)]
pub struct LastPeer(Option<(IpAddr, Arc<Peer>)>);

/// The peer of the previous transport data message of a batch from the network, by
/// its receiver index ([`Path::from_network_in_batch`]). Kept for one batch only.
#[derive(Debug, Default)]
pub struct LastIndex(Option<(u32, Arc<Peer>)>);

/// What kind of WireGuard message a datagram is, as far as roaming cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Initiation,
    CookieReply,
    Other,
}

/// What every packet needs to see of the data plane.
pub struct Path<'a> {
    pub secret: &'a StaticSecret,
    pub public: &'a PublicKey,
    /// Shared by all peers: past its limit per second, initiations need a cookie.
    pub rate: &'a RateLimiter,
    pub source_limit: &'a DefaultKeyedRateLimiter<IpAddr>,
    /// Cookie replies per second to one source address: a flood from one source costs
    /// a MAC check per datagram, not a reply each (nor reflects off the gateway).
    pub cookie_limit: &'a DefaultKeyedRateLimiter<IpAddr>,
    pub peers: &'a PeerTable,
    pub policy: &'a CompiledPolicy,
    /// The tunnel network: every address in it is a laptop (or the gateway).
    pub pool: Network,
    /// Dual stack: the IPv6 tunnel network (other laptops' IPv6 addresses).
    pub pool6: Option<Network>,
    pub counters: &'a Counters,
}

impl std::fmt::Debug for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Path")
            .field("peers", &self.peers.len())
            .field("pool", &self.pool)
            .field("pool6", &self.pool6)
            .finish_non_exhaustive()
    }
}

impl Path<'_> {
    /// A datagram received from `src` on the WireGuard port.
    pub fn from_network(
        &self,
        src: SocketAddr,
        datagram: &[u8],
        scratch: &mut [u8],
        now_ms: u64,
        out: &mut impl Sink,
    ) {
        self.from_network_in_batch(
            src,
            datagram,
            scratch,
            now_ms,
            out,
            &mut LastIndex::default(),
        );
    }

    /// A datagram of a batch received at once. A burst of transport data for one
    /// peer finds it once: `last` remembers the previous data message's peer by its
    /// receiver index (for this batch only; a peer removed meanwhile is found removed
    /// under its lock). Handshake messages are always looked up.
    pub fn from_network_in_batch(
        &self,
        src: SocketAddr,
        datagram: &[u8],
        scratch: &mut [u8],
        now_ms: u64,
        out: &mut impl Sink,
        last: &mut LastIndex,
    ) {
        add(&self.counters.datagrams_in, 1);
        let packet = match self.rate.verify_packet(Some(src.ip()), datagram, scratch) {
            Ok(p) => p,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                if self.cookie_limit.check_key(&source_of(src.ip())).is_err() {
                    return self.counters.drop(DropReason::CookieRateLimited);
                }
                add(&self.counters.cookie_replies, 1);
                self.send(out, src, cookie);
                return;
            }
            Err(_) => return self.counters.drop(DropReason::InvalidMessage),
        };
        let peer = match packet {
            Packet::HandshakeInit(ref init) => {
                add(&self.counters.handshake_initiations, 1);
                if self.source_limit.check_key(&source_of(src.ip())).is_err() {
                    return self.counters.drop(DropReason::SourceRateLimited);
                }
                let Ok(half) = parse_handshake_anon(self.secret, self.public, init) else {
                    return self.counters.drop(DropReason::InvalidMessage);
                };
                self.peers.by_key(&half.peer_static_public)
            }
            Packet::HandshakeResponse(ref p) => self.peers.by_index(p.receiver_idx >> 8),
            Packet::PacketCookieReply(ref p) => self.peers.by_index(p.receiver_idx >> 8),
            Packet::PacketData(ref p) => {
                let index = p.receiver_idx >> 8;
                match &last.0 {
                    Some((i, peer)) if *i == index => Some(peer.clone()),
                    _ => {
                        let found = self.peers.by_index(index);
                        last.0 = found.as_ref().map(|peer| (index, peer.clone()));
                        found
                    }
                }
            }
        };
        let Some(peer) = peer else {
            let reason = match packet {
                Packet::HandshakeInit(_) => DropReason::UnknownKey,
                _ => DropReason::UnknownIndex,
            };
            return self.counters.drop(reason);
        };
        let is_init = matches!(packet, Packet::HandshakeInit(_));
        // A cookie reply authenticates nothing about its sender (anyone who saw one can
        // send it again from elsewhere): it never moves the peer's endpoint.
        let is_cookie = matches!(packet, Packet::PacketCookieReply(_));
        let mut guard = peer.lock();
        let Some(st) = guard.as_mut() else {
            return self.counters.drop(DropReason::Removed);
        };
        let kind = if is_init {
            Kind::Initiation
        } else if is_cookie {
            Kind::CookieReply
        } else {
            Kind::Other
        };
        self.decapsulate(&peer, st, src, datagram, kind, scratch, now_ms, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn decapsulate(
        &self,
        peer: &Peer,
        st: &mut PeerState,
        src: SocketAddr,
        datagram: &[u8],
        kind: Kind,
        scratch: &mut [u8],
        now_ms: u64,
        out: &mut impl Sink,
    ) {
        // The tunnel is made at the peer's first initiation; before it, nothing else
        // the peer could send has a session to open it.
        let tunn = if kind == Kind::Initiation {
            st.tunnel.make(self.secret, peer.public_key, peer.index)
        } else {
            match st.tunnel.get_mut() {
                Some(t) => t,
                None => return self.counters.drop(DropReason::Tunnel),
            }
        };
        // The endpoint roams only on what authenticated: a handshake message that
        // verified or transport data that decrypted (a keepalive is `Done`).
        match tunn.decapsulate(Some(src.ip()), datagram, scratch) {
            TunnResult::Done if kind == Kind::CookieReply => {}
            TunnResult::Done => st.endpoint = Some(src),
            TunnResult::Err(_) => self.counters.drop(DropReason::Tunnel),
            TunnResult::WriteToNetwork(reply) => {
                st.endpoint = Some(src);
                if kind == Kind::Initiation {
                    add(&self.counters.handshakes_completed, 1);
                }
                self.send(out, src, reply);
                // Packets queued while the handshake was under way.
                while let TunnResult::WriteToNetwork(p) = tunn.decapsulate(None, &[], scratch) {
                    self.send(out, src, p);
                }
            }
            TunnResult::WriteToTunnelV4(inner, _) | TunnResult::WriteToTunnelV6(inner, _) => {
                st.endpoint = Some(src);
                let session = peer.session(st.role);
                let (pool, pool6) = (self.pool, self.pool6);
                match enforce::from_laptop(
                    &session,
                    inner,
                    self.policy,
                    &mut st.conntrack,
                    |ip| pool.contains(ip) || pool6.is_some_and(|p| p.contains(ip)),
                    now_ms,
                ) {
                    Ok(_) => {
                        st.forwarded += 1;
                        add(&self.counters.forwarded_in, 1);
                        add(&self.counters.forwarded_in_bytes, inner.len() as u64);
                        out.to_tunnel(inner);
                    }
                    Err(d) => self.deny(st, d, inner, now_ms),
                }
            }
        }
    }

    /// A packet read from the TUN device (from the internal network).
    pub fn from_tunnel(&self, pkt: &[u8], scratch: &mut [u8], now_ms: u64, out: &mut impl Sink) {
        self.from_tunnel_in_batch(pkt, scratch, now_ms, out, &mut LastPeer::default());
    }

    /// A packet of a batch read from the TUN device at once. A burst of packets to one
    /// laptop finds its peer once: `last` remembers the previous packet's (for this
    /// batch only; a peer removed meanwhile is found removed under its lock).
    pub fn from_tunnel_in_batch(
        &self,
        pkt: &[u8],
        scratch: &mut [u8],
        now_ms: u64,
        out: &mut impl Sink,
        last: &mut LastPeer,
    ) {
        // Parsed once: the destination finds the peer, the header is then enforced.
        let h = match packet::parse(pkt) {
            Ok(h) => h,
            Err(_) => return self.counters.drop(DropReason::Enforce(Drop::Malformed)),
        };
        if !matches!(&last.0, Some((addr, _)) if *addr == h.dst) {
            let Some(found) = self.peers.by_addr(h.dst) else {
                return self.counters.drop(DropReason::NoPeer);
            };
            last.0 = Some((h.dst, found));
        }
        let Some((_, peer)) = &last.0 else {
            return self.counters.drop(DropReason::NoPeer);
        };
        let mut guard = peer.lock();
        let Some(st) = guard.as_mut() else {
            return self.counters.drop(DropReason::Removed);
        };
        let session = peer.session(st.role);
        if let Err(d) = enforce::to_laptop_parsed(&session, &h, &mut st.conntrack, now_ms) {
            return self.deny(st, d, pkt, now_ms);
        }
        // No endpoint, no tunnel: the laptop has not completed a handshake yet.
        let (Some(endpoint), Some(tunn)) = (st.endpoint, st.tunnel.get_mut()) else {
            return self.counters.drop(DropReason::NoEndpoint);
        };
        match tunn.encapsulate(pkt, scratch) {
            TunnResult::WriteToNetwork(p) => {
                add(&self.counters.forwarded_out, 1);
                add(&self.counters.forwarded_out_bytes, pkt.len() as u64);
                self.send(out, endpoint, p);
            }
            TunnResult::Err(_) => self.counters.drop(DropReason::Tunnel),
            _ => {}
        }
    }

    /// Drives the timers of one peer (keepalives, rekeys, expiry) and ends its idle
    /// flows. Returns false when its tunnel has expired (no handshake for too long).
    pub fn tick(&self, peer: &Peer, scratch: &mut [u8], now_ms: u64, out: &mut impl Sink) -> bool {
        let mut guard = peer.lock();
        let Some(st) = guard.as_mut() else {
            return false;
        };
        let ended = st.conntrack.expire(now_ms);
        if !ended.is_empty() {
            st.accounting.flows_ended(ended);
        }
        // A tunnel not yet made has no timers.
        let Some(tunn) = st.tunnel.get_mut() else {
            return true;
        };
        match tunn.update_timers(scratch) {
            TunnResult::WriteToNetwork(p) => {
                if let Some(endpoint) = st.endpoint {
                    self.send(out, endpoint, p);
                }
                true
            }
            TunnResult::Err(WireGuardError::ConnectionExpired) => false,
            _ => true,
        }
    }

    fn deny(&self, st: &mut PeerState, d: Drop, pkt: &[u8], now_ms: u64) {
        self.counters.drop(DropReason::Enforce(d));
        st.accounting.denied(d, pkt, now_ms);
    }

    fn send(&self, out: &mut impl Sink, dst: SocketAddr, p: &[u8]) {
        add(&self.counters.datagrams_out, 1);
        out.to_network(dst, p);
    }
}

/// Makes the tunnel of a new peer. Each peer has its own handshake rate limiter inside
/// its `Tunn` (reset by its timers); the shared one guards the front door in
/// [`Path::from_network`].
pub fn new_tunnel(
    secret: &StaticSecret,
    peer_public: [u8; 32],
    psk: [u8; 32],
    keepalive: Option<u16>,
    index: u32,
) -> Tunn {
    Tunn::new(
        secret.clone(),
        PublicKey::from(peer_public),
        Some(psk),
        keepalive,
        index,
        None,
    )
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
