//! Tunnel addresses for sessions, from the tunnel network. The gateway has the first
//! address; the others are handed out lowest first and returned when a session ends.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ztgw_config::policy::Network;

/// Addresses handed out at most (IPv6 networks are large; the session table's bound
/// applies anyway).
const MAX_POOL: u128 = 1 << 20;

#[derive(Debug, Clone)]
pub struct Pool {
    network: Network,
    /// Dual stack: the IPv6 network whose address at the same offset is a session's
    /// second address.
    twin: Option<Network>,
    /// Offsets from the network address in use.
    used: BTreeSet<u128>,
    size: u128,
}

impl Pool {
    pub fn new(network: Network) -> Self {
        let host_bits = match network {
            Network::V4 { prefix, .. } => 32 - u32::from(prefix),
            Network::V6 { prefix, .. } => 128 - u32::from(prefix),
        };
        let size = if host_bits >= 127 {
            u128::MAX
        } else {
            1u128 << host_bits
        };
        Self {
            network,
            twin: None,
            used: BTreeSet::new(),
            size: size.min(MAX_POOL),
        }
    }

    /// A pool whose addresses each have a twin in `twin` (dual stack; `twin` must be at
    /// least as large, as the settings check).
    pub fn dual(network: Network, twin: Option<Network>) -> Self {
        Self {
            twin,
            ..Self::new(network)
        }
    }

    /// The second address (IPv6) of the session that has `addr`, in dual stack.
    pub fn twin_of(&self, addr: IpAddr) -> Option<IpAddr> {
        let offset = self.offset(addr)?;
        match self.twin? {
            Network::V6 { addr, .. } => Some(IpAddr::V6(Ipv6Addr::from(addr.checked_add(offset)?))),
            Network::V4 { .. } => None,
        }
    }

    /// The lowest free address, or `None` when the pool is exhausted.
    pub fn take(&mut self) -> Option<IpAddr> {
        // Offset 0 is the network, 1 the gateway; the last of an IPv4 network is its
        // broadcast address.
        let last = match self.network {
            Network::V4 { .. } => self.size.saturating_sub(1),
            Network::V6 { .. } => self.size,
        };
        let offset = (2..last).find(|o| !self.used.contains(o))?;
        self.used.insert(offset);
        Some(self.address(offset))
    }

    pub fn give_back(&mut self, addr: IpAddr) {
        if let Some(o) = self.offset(addr) {
            self.used.remove(&o);
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    fn address(&self, offset: u128) -> IpAddr {
        match self.network {
            Network::V4 { addr, .. } => IpAddr::V4(Ipv4Addr::from(addr + offset as u32)),
            Network::V6 { addr, .. } => IpAddr::V6(Ipv6Addr::from(addr + offset)),
        }
    }

    fn offset(&self, ip: IpAddr) -> Option<u128> {
        match (self.network, ip) {
            (Network::V4 { addr, .. }, IpAddr::V4(v)) => {
                u32::from(v).checked_sub(addr).map(u128::from)
            }
            (Network::V6 { addr, .. }, IpAddr::V6(v)) => u128::from(v).checked_sub(addr),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_the_gateway_and_broadcast_and_come_back() {
        let mut p = Pool::new(Network::parse("100.64.0.0/29").expect("net"));
        let got: Vec<IpAddr> = std::iter::from_fn(|| p.take()).collect();
        let want: Vec<IpAddr> = (2..7).map(|h| IpAddr::from([100, 64, 0, h])).collect();
        assert_eq!(got, want);
        p.give_back([100, 64, 0, 4].into());
        assert_eq!(p.take(), Some([100, 64, 0, 4].into()));
        assert_eq!(p.take(), None);
        assert_eq!(p.in_use(), 5);
    }

    #[test]
    fn in_dual_stack_each_address_has_its_ipv6_twin() {
        let mut p = Pool::dual(
            Network::parse("100.64.0.0/16").expect("v4"),
            Some(Network::parse("fd00:64::/64").expect("v6")),
        );
        let a = p.take().expect("address");
        assert_eq!(a, IpAddr::from([100, 64, 0, 2]));
        assert_eq!(p.twin_of(a), Some("fd00:64::2".parse().expect("v6")));
        assert_eq!(
            p.twin_of([100, 64, 1, 7].into()),
            Some("fd00:64::107".parse().expect("v6"))
        );
        assert_eq!(p.twin_of([10, 0, 0, 1].into()), None, "outside the network");
        assert_eq!(
            Pool::new(Network::parse("100.64.0.0/16").expect("v4")).twin_of(a),
            None
        );
    }
}
