//! The table of installed peers: one per admitted session, found by WireGuard static key
//! (handshake initiations), by receiver index (every other message), by tunnel address
//! (packets towards laptops) and by session (the session layer).
//!
//! Adding, updating and removing are atomic with respect to the packet path: a peer is
//! visible under all its keys or none. Removal also empties the peer's state, so a packet
//! that found the peer just before removal finds no tunnel when it takes the lock, and the
//! key material (the tunnel's session keys and the pre-shared key) is dropped at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use boringtun::noise::Tunn;
use boringtun::x25519::StaticSecret;
use zeroize::Zeroizing;
use ztgw_config::policy::RoleId;

use super::accounting::Accounting;
use super::conntrack::{Conntrack, FastHash, MAX_FLOWS_PER_SESSION};
use super::enforce::Session;

/// Most peers installed at once (`[wireguard] max_peers` overrides it). The session
/// layer's own bound is the real limit; this one keeps the data plane safe on its own.
pub const MAX_PEERS: usize = 65_536;
/// Receiver indices must stay below 2^24 (boringtun keeps the low 8 bits).
const INDEX_LIMIT: u32 = 1 << 24;

/// A per-session pre-shared key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct PresharedKey(Zeroizing<[u8; 32]>);

impl PresharedKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn bytes(&self) -> [u8; 32] {
        *self.0
    }
}

impl std::fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

/// What the session layer installs.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// The session's identifier, as the journal knows it.
    pub session: String,
    /// The device's WireGuard public key.
    pub public_key: [u8; 32],
    pub preshared_key: PresharedKey,
    /// The laptop's address inside the tunnel (from the pool).
    pub tunnel_addr: IpAddr,
    /// Dual stack: its IPv6 address as well.
    pub tunnel_addr6: Option<IpAddr>,
    /// The role whose policy applies.
    pub role: String,
    /// Persistent keepalive from the gateway's side, in seconds.
    pub keepalive: Option<u16>,
}

/// Why a peer could not be installed or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("session {0} already has a peer")]
    SessionExists(String),
    #[error("this WireGuard key is already installed for another session")]
    KeyInUse,
    #[error("tunnel address {0} is already in use")]
    AddressInUse(IpAddr),
    #[error("tunnel address {0} is outside the tunnel network")]
    AddressOutsidePool(IpAddr),
    #[error("the peer table is full ({0} peers)")]
    Full(usize),
    #[error("role {0} is not in the policy in force")]
    UnknownRole(String),
    #[error("no peer for session {0}")]
    UnknownSession(String),
}

/// An installed peer.
pub struct Peer {
    pub index: u32,
    pub session: String,
    pub public_key: [u8; 32],
    pub tunnel_addr: IpAddr,
    /// Dual stack: the peer's IPv6 address.
    pub tunnel_addr6: Option<IpAddr>,
    state: Mutex<Option<PeerState>>,
}

impl Peer {
    /// Whether `addr` is one of this peer's tunnel addresses.
    pub fn owns(&self, addr: IpAddr) -> bool {
        addr == self.tunnel_addr || Some(addr) == self.tunnel_addr6
    }
}

/// A peer's WireGuard tunnel. boringtun's `Tunn` (its sessions' keys and replay
/// windows, the handshake, the timers: 11 KB) is made when the laptop's first handshake
/// initiation arrives; until then a peer keeps only what makes it, so that a session
/// admitted but not (yet) connected costs a few hundred bytes.
pub struct Tunnel {
    tunn: Option<Box<Tunn>>,
    preshared_key: PresharedKey,
    /// Persistent keepalive from the gateway's side, in seconds.
    keepalive: Option<u16>,
}

impl Tunnel {
    /// A tunnel made at the peer's first handshake initiation.
    pub fn pending(preshared_key: PresharedKey, keepalive: Option<u16>) -> Self {
        Self {
            tunn: None,
            preshared_key,
            keepalive,
        }
    }

    /// The tunnel, once the laptop has begun a handshake.
    pub fn get(&self) -> Option<&Tunn> {
        self.tunn.as_deref()
    }

    /// As [`Tunnel::get`], to drive it.
    pub fn get_mut(&mut self) -> Option<&mut Tunn> {
        self.tunn.as_deref_mut()
    }

    /// The tunnel, made now if it is not yet (for an initiation from the peer's key),
    /// with the gateway's `secret` and the peer's key and receiver index.
    pub fn make(&mut self, secret: &StaticSecret, peer_public: [u8; 32], index: u32) -> &mut Tunn {
        let (psk, keepalive) = (&self.preshared_key, self.keepalive);
        self.tunn.get_or_insert_with(|| {
            Box::new(crate::path::new_tunnel(
                secret,
                peer_public,
                psk.bytes(),
                keepalive,
                index,
            ))
        })
    }

    /// How long since the last handshake, and the bytes sent and received: nothing
    /// before the first handshake.
    pub fn stats(&self) -> (Option<std::time::Duration>, usize, usize) {
        self.get().map_or((None, 0, 0), |t| {
            let (age, tx, rx, _, _) = t.stats();
            (age, tx, rx)
        })
    }
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("up", &self.tunn.is_some())
            .field("preshared_key", &self.preshared_key)
            .field("keepalive", &self.keepalive)
            .finish()
    }
}

/// The mutable part of a peer; `None` once removed.
pub struct PeerState {
    pub tunnel: Tunnel,
    pub role: RoleId,
    pub role_name: String,
    pub conntrack: Conntrack,
    /// Where the laptop last sent from (after authentication): roaming follows it.
    pub endpoint: Option<SocketAddr>,
    pub accounting: Accounting,
    /// Inner packets from the laptop that were allowed and forwarded: the session's
    /// activity (keepalives and denied packets do not count).
    pub forwarded: u64,
}

impl PeerState {
    pub fn new(tunnel: Tunnel, role: RoleId, role_name: String) -> Self {
        Self {
            tunnel,
            role,
            role_name,
            conntrack: Conntrack::new(MAX_FLOWS_PER_SESSION),
            endpoint: None,
            accounting: Accounting::default(),
            forwarded: 0,
        }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("index", &self.index)
            .field("session", &self.session)
            .field("tunnel_addr", &self.tunnel_addr)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerState")
            .field("role", &self.role_name)
            .field("flows", &self.conntrack.len())
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// The peer's state, or `None` once it was removed.
    pub fn lock(&self) -> MutexGuard<'_, Option<PeerState>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What enforcement needs of this peer's session.
    pub fn session(&self, role: RoleId) -> Session {
        Session {
            id: self.index,
            tunnel_addr: self.tunnel_addr,
            tunnel_addr6: self.tunnel_addr6,
            role,
        }
    }
}

#[derive(Debug, Default)]
struct Maps {
    by_index: HashMap<u32, Arc<Peer>, FastHash>,
    by_key: HashMap<[u8; 32], Arc<Peer>, FastHash>,
    by_addr: HashMap<IpAddr, Arc<Peer>, FastHash>,
    by_session: HashMap<String, Arc<Peer>>,
    next_index: u32,
}

/// The peer table.
#[derive(Debug)]
pub struct PeerTable {
    maps: RwLock<Maps>,
    max_peers: usize,
}

impl PeerTable {
    pub fn new(max_peers: usize) -> Self {
        Self {
            maps: RwLock::new(Maps {
                next_index: 1,
                ..Maps::default()
            }),
            max_peers: max_peers.min(INDEX_LIMIT as usize - 1),
        }
    }

    /// Installs a peer; `state` makes its tunnel once the receiver index is known.
    pub fn insert(
        &self,
        spec: &PeerSpec,
        state: impl FnOnce(u32) -> PeerState,
    ) -> Result<Arc<Peer>, PeerError> {
        let mut m = self.maps.write().unwrap_or_else(PoisonError::into_inner);
        if m.by_session.contains_key(&spec.session) {
            return Err(PeerError::SessionExists(spec.session.clone()));
        }
        if m.by_key.contains_key(&spec.public_key) {
            return Err(PeerError::KeyInUse);
        }
        for a in std::iter::once(spec.tunnel_addr).chain(spec.tunnel_addr6) {
            if m.by_addr.contains_key(&a) {
                return Err(PeerError::AddressInUse(a));
            }
        }
        if m.by_index.len() >= self.max_peers {
            return Err(PeerError::Full(self.max_peers));
        }
        let mut index = m.next_index;
        while m.by_index.contains_key(&index) {
            index = next(index);
        }
        m.next_index = next(index);
        let peer = Arc::new(Peer {
            index,
            session: spec.session.clone(),
            public_key: spec.public_key,
            tunnel_addr: spec.tunnel_addr,
            tunnel_addr6: spec.tunnel_addr6,
            state: Mutex::new(Some(state(index))),
        });
        m.by_index.insert(index, peer.clone());
        m.by_key.insert(spec.public_key, peer.clone());
        m.by_addr.insert(spec.tunnel_addr, peer.clone());
        if let Some(a6) = spec.tunnel_addr6 {
            m.by_addr.insert(a6, peer.clone());
        }
        m.by_session.insert(spec.session.clone(), peer.clone());
        Ok(peer)
    }

    /// Removes the peer of `session` from every index and takes its state: packets in
    /// flight for it find nothing from now on.
    pub fn remove(&self, session: &str) -> Option<(Arc<Peer>, PeerState)> {
        let peer = {
            let mut m = self.maps.write().unwrap_or_else(PoisonError::into_inner);
            let peer = m.by_session.remove(session)?;
            m.by_index.remove(&peer.index);
            m.by_key.remove(&peer.public_key);
            m.by_addr.remove(&peer.tunnel_addr);
            if let Some(a6) = peer.tunnel_addr6 {
                m.by_addr.remove(&a6);
            }
            peer
        };
        let state = peer.lock().take()?;
        Some((peer, state))
    }

    pub fn by_index(&self, index: u32) -> Option<Arc<Peer>> {
        self.read().by_index.get(&index).cloned()
    }

    pub fn by_key(&self, key: &[u8; 32]) -> Option<Arc<Peer>> {
        self.read().by_key.get(key).cloned()
    }

    pub fn by_addr(&self, addr: IpAddr) -> Option<Arc<Peer>> {
        self.read().by_addr.get(&addr).cloned()
    }

    pub fn by_session(&self, session: &str) -> Option<Arc<Peer>> {
        self.read().by_session.get(session).cloned()
    }

    /// Every installed peer (for timers and accounting).
    pub fn all(&self) -> Vec<Arc<Peer>> {
        self.read().by_index.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().by_index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn next(index: u32) -> u32 {
    if index + 1 >= INDEX_LIMIT {
        1
    } else {
        index + 1
    }
}

#[cfg(test)]
mod tests {
    use boringtun::x25519::{PublicKey, StaticSecret};

    use super::*;

    fn spec(session: &str, key: u8, addr: [u8; 4]) -> PeerSpec {
        PeerSpec {
            session: session.into(),
            public_key: [key; 32],
            preshared_key: PresharedKey::new([7; 32]),
            tunnel_addr: addr.into(),
            tunnel_addr6: None,
            role: "finance".into(),
            keepalive: None,
        }
    }

    fn state(index: u32) -> PeerState {
        let me = StaticSecret::from([1; 32]);
        let peer = PublicKey::from(&StaticSecret::from([2; 32]));
        let mut tunnel = Tunnel::pending(PresharedKey::new([3; 32]), None);
        tunnel.make(&me, peer.to_bytes(), index);
        PeerState::new(
            tunnel,
            super::super::fixtures::policy()
                .role("finance")
                .expect("role"),
            "finance".into(),
        )
    }

    #[test]
    fn a_peer_is_found_under_every_key_or_none() {
        let t = PeerTable::new(2);
        let p = t
            .insert(&spec("s1", 1, [100, 64, 0, 2]), state)
            .expect("add");
        assert!(t.by_index(p.index).is_some());
        assert!(t.by_key(&[1; 32]).is_some());
        assert!(t.by_addr([100, 64, 0, 2].into()).is_some());
        assert!(t.by_session("s1").is_some());

        // Conflicts are refused and change nothing.
        let cases = [
            (
                spec("s1", 2, [100, 64, 0, 3]),
                PeerError::SessionExists("s1".into()),
            ),
            (spec("s2", 1, [100, 64, 0, 3]), PeerError::KeyInUse),
            (
                spec("s2", 2, [100, 64, 0, 2]),
                PeerError::AddressInUse([100, 64, 0, 2].into()),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(t.insert(&s, state).map(|_| ()), Err(want));
        }
        assert_eq!(t.len(), 1);
        t.insert(&spec("s2", 2, [100, 64, 0, 3]), state)
            .expect("add");
        assert_eq!(
            t.insert(&spec("s3", 3, [100, 64, 0, 4]), state).map(|_| ()),
            Err(PeerError::Full(2))
        );

        // Removal: gone from every index, and a holder of the old handle finds no state.
        let held = t.by_session("s1").expect("held");
        assert!(t.remove("s1").is_some());
        assert!(held.lock().is_none(), "in-flight packets find no tunnel");
        assert!(t.by_index(held.index).is_none());
        assert!(t.by_key(&[1; 32]).is_none());
        assert!(t.by_addr([100, 64, 0, 2].into()).is_none());
        assert!(t.remove("s1").is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn indices_stay_below_two_to_the_24_and_skip_those_in_use() {
        assert_eq!(next(INDEX_LIMIT - 1), 1);
        let t = PeerTable::new(10);
        {
            let mut m = t.maps.write().expect("lock");
            m.next_index = INDEX_LIMIT - 1;
        }
        let a = t.insert(&spec("a", 1, [100, 64, 0, 2]), state).expect("a");
        let b = t.insert(&spec("b", 2, [100, 64, 0, 3]), state).expect("b");
        assert_eq!((a.index, b.index), (INDEX_LIMIT - 1, 1));
    }

    #[test]
    fn the_preshared_key_is_redacted() {
        let s = format!("{:?}", spec("s1", 1, [100, 64, 0, 2]));
        assert!(!s.contains("7, 7"), "{s}");
        assert!(s.contains("redacted"));
    }
}
