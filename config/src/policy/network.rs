//! IPv4 and IPv6 networks as the policy writes them: `10.20.0.10`, `10.20.1.0/24`,
//! `fd00:20::/64`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network: an address and a prefix length, with host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    V4 { addr: u32, prefix: u8 },
    V6 { addr: u128, prefix: u8 },
}

impl Network {
    /// Parses `ADDR` or `ADDR/PREFIX`. Host bits set under the prefix are an error, so a
    /// typo like `10.20.1.5/24` is not silently widened.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                let p: u8 = p
                    .parse()
                    .map_err(|_| format!("{s:?}: the prefix length {p:?} is not a number"))?;
                (a, Some(p))
            }
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address or network"))?;
        match ip {
            IpAddr::V4(v4) => {
                let prefix = prefix.unwrap_or(32);
                if prefix > 32 {
                    return Err(format!("{s:?}: an IPv4 prefix is at most 32"));
                }
                let addr = u32::from(v4);
                if addr & !mask32(prefix) != 0 {
                    return Err(format!(
                        "{s:?}: host bits are set below /{prefix} (did you mean {}/{prefix}?)",
                        Ipv4Addr::from(addr & mask32(prefix))
                    ));
                }
                Ok(Self::V4 { addr, prefix })
            }
            IpAddr::V6(v6) => {
                let prefix = prefix.unwrap_or(128);
                if prefix > 128 {
                    return Err(format!("{s:?}: an IPv6 prefix is at most 128"));
                }
                let addr = u128::from(v6);
                if addr & !mask128(prefix) != 0 {
                    return Err(format!(
                        "{s:?}: host bits are set below /{prefix} (did you mean {}/{prefix}?)",
                        Ipv6Addr::from(addr & mask128(prefix))
                    ));
                }
                Ok(Self::V6 { addr, prefix })
            }
        }
    }

    /// The first and last address, as integers of the family.
    pub fn range_v4(&self) -> Option<(u32, u32)> {
        match *self {
            Self::V4 { addr, prefix } => Some((addr, addr | !mask32(prefix))),
            Self::V6 { .. } => None,
        }
    }

    pub fn range_v6(&self) -> Option<(u128, u128)> {
        match *self {
            Self::V6 { addr, prefix } => Some((addr, addr | !mask128(prefix))),
            Self::V4 { .. } => None,
        }
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        match *self {
            Self::V4 { prefix, .. } | Self::V6 { prefix, .. } => prefix,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (Self::V4 { addr, prefix }, IpAddr::V4(v4)) => u32::from(v4) & mask32(prefix) == addr,
            (Self::V6 { addr, prefix }, IpAddr::V6(v6)) => u128::from(v6) & mask128(prefix) == addr,
            _ => false,
        }
    }

    /// Whether every address of `other` is in `self`.
    pub fn covers(&self, other: &Network) -> bool {
        match (*self, *other) {
            (Self::V4 { prefix: p, .. }, Self::V4 { addr, prefix: q }) => {
                p <= q && self.contains(IpAddr::V4(addr.into()))
            }
            (Self::V6 { prefix: p, .. }, Self::V6 { addr, prefix: q }) => {
                p <= q && self.contains(IpAddr::V6(addr.into()))
            }
            _ => false,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::V4 { addr, prefix: 32 } => write!(f, "{}", Ipv4Addr::from(addr)),
            Self::V4 { addr, prefix } => write!(f, "{}/{prefix}", Ipv4Addr::from(addr)),
            Self::V6 { addr, prefix: 128 } => write!(f, "{}", Ipv6Addr::from(addr)),
            Self::V6 { addr, prefix } => write!(f, "{}/{prefix}", Ipv6Addr::from(addr)),
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_networks() {
        let ok = [
            "10.20.0.10",
            "10.20.1.0/24",
            "0.0.0.0/0",
            "fd00:20::/64",
            "::1",
            "::/0",
        ];
        for s in ok {
            let n = Network::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(n.to_string(), s);
        }
        let bad: &[(&str, &str)] = &[
            (
                "10.20.1.5/24",
                "host bits are set below /24 (did you mean 10.20.1.0/24?)",
            ),
            ("10.20.1.0/33", "at most 32"),
            ("fd00::/129", "at most 128"),
            ("10.20.1", "not an IPv4 or IPv6"),
            ("10.0.0.0/x", "not a number"),
            ("intranet", "not an IPv4 or IPv6"),
        ];
        for (s, want) in bad {
            let err = Network::parse(s).expect_err(s);
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn containment() {
        let net = Network::parse("10.20.1.0/24").expect("net");
        assert!(net.contains("10.20.1.255".parse().expect("ip")));
        assert!(!net.contains("10.20.2.0".parse().expect("ip")));
        assert!(!net.contains("::1".parse().expect("ip")));
        assert_eq!(net.range_v4(), Some((0x0a14_0100, 0x0a14_01ff)));
        assert!(net.covers(&Network::parse("10.20.1.128/25").expect("net")));
        assert!(!net.covers(&Network::parse("10.20.0.0/16").expect("net")));
        let all = Network::parse("::/0").expect("net");
        assert_eq!(all.range_v6(), Some((0, u128::MAX)));
    }
}
