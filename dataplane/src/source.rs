//! What per-source limits count as one source: an IPv4 address, or an IPv6 /64 (one
//! subscriber's network: a host given a /64 has all its addresses). Used by the control
//! plane's limits and by the data plane's handshake and cookie limits alike.

use std::net::{IpAddr, Ipv6Addr};

/// The source `ip` counts as: itself for IPv4 (and IPv4-mapped IPv6), its /64 for IPv6.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}
