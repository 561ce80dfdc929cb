//! The headers a decision needs, read from a raw IP packet. Anything malformed is an
//! error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ztgw_config::policy::Proto;

/// TCP flags the connection tracker follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// The transport part of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: TcpFlags,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
    },
    /// ICMP or ICMPv6. `echo` is the identifier of an echo request or reply; `quoted`,
    /// for an error, the start of the packet it is about.
    Icmp {
        kind: IcmpKind,
        echo_id: Option<u16>,
        quoted: Option<Quoted>,
    },
    /// Any other protocol number.
    Other(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpKind {
    EchoRequest,
    EchoReply,
    /// Destination unreachable (with "fragmentation needed"), packet too big, time
    /// exceeded, parameter problem: told back about a packet, which it quotes.
    Error(u8),
    /// The rest: never a way in, never let out.
    Other(u8),
}

/// The start of the packet an ICMP error is about: enough to find its flow. For an
/// ICMP echo request, `src_port` is its identifier and `dst_port` 0 (as flows count it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// 6, 17, or 1 (ICMP and ICMPv6 echo requests).
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// A parsed packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Transport,
    /// The whole packet's length.
    pub len: usize,
}

impl Header {
    /// The policy's view of the transport: protocol and destination port.
    pub fn service(&self) -> Option<(Proto, u16)> {
        match self.transport {
            Transport::Tcp { dst_port, .. } => Some((Proto::Tcp, dst_port)),
            Transport::Udp { dst_port, .. } => Some((Proto::Udp, dst_port)),
            Transport::Icmp { .. } => Some((Proto::Icmp, 0)),
            Transport::Other(_) => None,
        }
    }
}

/// Why bytes are not a packet the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketError {
    TooShort,
    BadVersion,
    BadLength,
    /// IPv4 fragments other than the first, and IPv6 extension headers, are not
    /// forwarded: a decision needs the ports.
    Unsupported,
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// Parses an IPv4 or IPv6 packet.
#[inline]
pub fn parse(p: &[u8]) -> Result<Header, PacketError> {
    match p.first().map(|b| b >> 4) {
        Some(4) => parse_v4(p),
        Some(6) => parse_v6(p),
        Some(_) => Err(PacketError::BadVersion),
        None => Err(PacketError::TooShort),
    }
}

#[inline]
fn parse_v4(p: &[u8]) -> Result<Header, PacketError> {
    if p.len() < 20 {
        return Err(PacketError::TooShort);
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if ihl < 20 || total < ihl || total > p.len() {
        return Err(PacketError::BadLength);
    }
    let frag = u16::from_be_bytes([p[6], p[7]]);
    let offset = frag & 0x1fff;
    let more = frag & 0x2000 != 0;
    if offset != 0 || more {
        return Err(PacketError::Unsupported);
    }
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    let transport = transport(p[9], &p[ihl..total], false)?;
    Ok(Header {
        src,
        dst,
        transport,
        len: total,
    })
}

#[inline]
fn parse_v6(p: &[u8]) -> Result<Header, PacketError> {
    if p.len() < 40 {
        return Err(PacketError::TooShort);
    }
    let payload = usize::from(u16::from_be_bytes([p[4], p[5]]));
    let total = 40 + payload;
    if total > p.len() {
        return Err(PacketError::BadLength);
    }
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&p[at..at + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    };
    let next = p[6];
    if !matches!(next, TCP | UDP | ICMPV6) {
        return Err(PacketError::Unsupported);
    }
    let transport = transport(next, &p[40..total], true)?;
    Ok(Header {
        src: addr(8),
        dst: addr(24),
        transport,
        len: total,
    })
}

#[inline]
fn transport(proto: u8, t: &[u8], v6: bool) -> Result<Transport, PacketError> {
    let port = |at: usize| -> Result<u16, PacketError> {
        Ok(u16::from_be_bytes([
            *t.get(at).ok_or(PacketError::TooShort)?,
            *t.get(at + 1).ok_or(PacketError::TooShort)?,
        ]))
    };
    Ok(match proto {
        TCP => {
            if t.len() < 20 {
                return Err(PacketError::TooShort);
            }
            let f = t[13];
            Transport::Tcp {
                src_port: port(0)?,
                dst_port: port(2)?,
                flags: TcpFlags {
                    fin: f & 0x01 != 0,
                    syn: f & 0x02 != 0,
                    rst: f & 0x04 != 0,
                    ack: f & 0x10 != 0,
                },
            }
        }
        UDP => {
            if t.len() < 8 {
                return Err(PacketError::TooShort);
            }
            Transport::Udp {
                src_port: port(0)?,
                dst_port: port(2)?,
            }
        }
        ICMP | ICMPV6 if (proto == ICMPV6) == v6 => {
            let ty = *t.first().ok_or(PacketError::TooShort)?;
            let (req, rep) = if v6 { (128, 129) } else { (8, 0) };
            let errors: &[u8] = if v6 { &[1, 2, 3, 4] } else { &[3, 11, 12] };
            let kind = match ty {
                x if x == req => IcmpKind::EchoRequest,
                x if x == rep => IcmpKind::EchoReply,
                x if errors.contains(&x) => IcmpKind::Error(x),
                x => IcmpKind::Other(x),
            };
            let echo_id = matches!(kind, IcmpKind::EchoRequest | IcmpKind::EchoReply)
                .then(|| port(4))
                .transpose()?;
            // An error quotes the packet it is about after its 8-byte header; one that
            // quotes nothing usable stays an error without a flow (and is dropped).
            let quoted = match kind {
                IcmpKind::Error(_) => t.get(8..).and_then(|q| quoted(q, v6)),
                _ => None,
            };
            Transport::Icmp {
                kind,
                echo_id,
                quoted,
            }
        }
        other => Transport::Other(other),
    })
}

/// What the flow table needs of an IPv4 TCP or UDP packet, the common case: read
/// straight from the bytes, without building a [`Header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Segment {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// 6 or 17.
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP's flags; `None` for UDP.
    pub flags: Option<TcpFlags>,
    /// The whole packet's length (the IP header's total length).
    pub len: usize,
}

/// An IPv4 TCP or UDP packet that [`parse`] would accept, read for the flow table;
/// `None` for anything else (IPv6, ICMP, other protocols, and whatever [`parse`]
/// refuses), which takes [`parse`]. The checks are [`parse`]'s, in the same order:
/// version, header length, total length within the bytes, no fragment, a whole TCP or
/// UDP header within the total length.
#[inline]
pub fn ipv4_segment(p: &[u8]) -> Option<Ipv4Segment> {
    let h: &[u8; 20] = p.get(..20)?.try_into().ok()?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if ihl < 20 || total < ihl || total > p.len() {
        return None;
    }
    // Neither a later fragment nor one with more to come.
    if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 {
        return None;
    }
    let proto = h[9];
    let t = p.get(ihl..total)?;
    let flags = match proto {
        TCP => {
            if t.len() < 20 {
                return None;
            }
            let f = *t.get(13)?;
            Some(TcpFlags {
                fin: f & 0x01 != 0,
                syn: f & 0x02 != 0,
                rst: f & 0x04 != 0,
                ack: f & 0x10 != 0,
            })
        }
        UDP if t.len() >= 8 => None,
        _ => return None,
    };
    let ports: &[u8; 4] = t.get(..4)?.try_into().ok()?;
    Some(Ipv4Segment {
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        proto,
        src_port: u16::from_be_bytes([ports[0], ports[1]]),
        dst_port: u16::from_be_bytes([ports[2], ports[3]]),
        flags,
        len: total,
    })
}

/// The packet quoted in an ICMP error: its IP header and the first 8 bytes of its
/// transport header (all that RFC 792 promises), read without requiring the rest.
fn quoted(q: &[u8], v6: bool) -> Option<Quoted> {
    let (src, dst, proto, t) = if v6 {
        if q.len() < 40 || q[0] >> 4 != 6 {
            return None;
        }
        let addr = |at: usize| -> Option<IpAddr> {
            let a: [u8; 16] = q.get(at..at + 16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        };
        (addr(8)?, addr(24)?, q[6], q.get(40..)?)
    } else {
        if q.len() < 20 || q[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(q[0] & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        // Only a first fragment quotes ports.
        if u16::from_be_bytes([q[6], q[7]]) & 0x1fff != 0 {
            return None;
        }
        (
            IpAddr::V4(Ipv4Addr::new(q[12], q[13], q[14], q[15])),
            IpAddr::V4(Ipv4Addr::new(q[16], q[17], q[18], q[19])),
            q[9],
            q.get(ihl..)?,
        )
    };
    let word =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*t.get(at)?, *t.get(at + 1)?])) };
    let (proto, src_port, dst_port) = match proto {
        TCP | UDP => (proto, word(0)?, word(2)?),
        ICMP | ICMPV6 if (proto == ICMPV6) == v6 => {
            let request = if v6 { 128 } else { 8 };
            if *t.first()? != request {
                return None;
            }
            (ICMP, word(4)?, 0)
        }
        _ => return None,
    };
    Some(Quoted {
        src,
        dst,
        proto,
        src_port,
        dst_port,
    })
}

/// Test and benchmark helpers: build packets.
pub mod build {
    use std::net::Ipv4Addr;

    /// An IPv4 TCP packet with `flags` (FIN=1, SYN=2, RST=4, ACK=16) and no payload.
    pub fn tcp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
        let mut p = ip4(src, dst, 6, 20);
        p.extend_from_slice(&tcp(sport, dport, flags));
        p
    }

    /// A TCP header with `flags` and no options.
    fn tcp(sport: u16, dport: u16, flags: u8) -> [u8; 20] {
        let mut t = [0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }

    /// An IPv6 TCP packet with `flags` and no payload.
    pub fn tcp6(
        src: std::net::Ipv6Addr,
        sport: u16,
        dst: std::net::Ipv6Addr,
        dport: u16,
        flags: u8,
    ) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 6 << 4;
        p[4..6].copy_from_slice(&20u16.to_be_bytes());
        p[6] = 6;
        p[7] = 64;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&dst.octets());
        p.extend_from_slice(&tcp(sport, dport, flags));
        p
    }

    /// An IPv4 UDP packet with `len` bytes of payload.
    pub fn udp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, len: usize) -> Vec<u8> {
        let mut p = ip4(src, dst, 17, 8 + len);
        let mut t = vec![0u8; 8 + len];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
        p.extend_from_slice(&t);
        p
    }

    /// An IPv4 ICMP echo request (type 8) or reply (type 0).
    pub fn icmp4(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, id: u16) -> Vec<u8> {
        let mut p = ip4(src, dst, 1, 8);
        let mut t = vec![0u8; 8];
        t[0] = ty;
        t[4..6].copy_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&t);
        p
    }

    /// An IPv4 ICMP error of type `ty` (3: unreachable, 11: time exceeded) and `code`
    /// (3/4: fragmentation needed), quoting the start of `about` as routers do.
    pub fn icmp4_error(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, about: &[u8]) -> Vec<u8> {
        let quote = &about[..about.len().min(28)];
        let mut p = ip4(src, dst, 1, 8 + quote.len());
        let mut t = vec![0u8; 8];
        t[0] = ty;
        t[1] = code;
        p.extend_from_slice(&t);
        p.extend_from_slice(quote);
        p
    }

    fn ip4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src.octets());
        p[16..20].copy_from_slice(&dst.octets());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn parses_what_decisions_need() {
        let a = Ipv4Addr::new(100, 64, 0, 2);
        let b = Ipv4Addr::new(10, 20, 1, 5);
        let h = parse(&tcp4(a, 40000, b, 5432, 0x02)).expect("tcp");
        assert_eq!(h.service(), Some((Proto::Tcp, 5432)));
        assert!(matches!(
            h.transport,
            Transport::Tcp {
                flags: TcpFlags {
                    syn: true,
                    ack: false,
                    ..
                },
                ..
            }
        ));
        let h = parse(&udp4(a, 5353, b, 53, 10)).expect("udp");
        assert_eq!((h.src, h.dst, h.len), (IpAddr::V4(a), IpAddr::V4(b), 38));
        let h = parse(&icmp4(a, b, 8, 77)).expect("icmp");
        assert_eq!(
            h.transport,
            Transport::Icmp {
                kind: IcmpKind::EchoRequest,
                echo_id: Some(77),
                quoted: None,
            }
        );
        // A "fragmentation needed" about the laptop's TCP segment quotes its flow.
        let about = tcp4(a, 40000, b, 5432, 0x10);
        let h = parse(&icmp4_error(b, a, 3, 4, &about)).expect("error");
        assert_eq!(
            h.transport,
            Transport::Icmp {
                kind: IcmpKind::Error(3),
                echo_id: None,
                quoted: Some(Quoted {
                    src: IpAddr::V4(a),
                    dst: IpAddr::V4(b),
                    proto: 6,
                    src_port: 40000,
                    dst_port: 5432,
                }),
            }
        );
        // Quoting too little, or an echo reply, quotes no flow.
        for short in [&about[..20], &about[..23]] {
            let h = parse(&icmp4_error(b, a, 11, 0, short)).expect("error");
            assert!(matches!(h.transport, Transport::Icmp { quoted: None, .. }));
        }
        let h = parse(&icmp4_error(b, a, 3, 1, &icmp4(a, b, 0, 5))).expect("error");
        assert!(matches!(h.transport, Transport::Icmp { quoted: None, .. }));
    }

    #[test]
    fn malformed_packets_are_errors() {
        let a = Ipv4Addr::new(1, 2, 3, 4);
        let good = tcp4(a, 1, a, 2, 2);
        assert_eq!(parse(&[]), Err(PacketError::TooShort));
        assert_eq!(parse(&[0x20; 40]), Err(PacketError::BadVersion));
        assert_eq!(parse(&good[..30]), Err(PacketError::BadLength));
        let mut frag = good.clone();
        frag[6] = 0x20;
        assert_eq!(parse(&frag), Err(PacketError::Unsupported));
        let mut short_tcp = udp4(a, 1, a, 2, 0);
        short_tcp[9] = 6;
        assert_eq!(parse(&short_tcp), Err(PacketError::TooShort));
        for n in 0..good.len() {
            let _ = parse(&good[..n]);
        }
    }

    /// What [`ipv4_segment`] reads is what [`parse`] reads, and it accepts exactly the
    /// IPv4 TCP and UDP packets [`parse`] accepts: over valid packets, and over a
    /// hundred thousand of them with bytes changed and ends cut off (the laptop writes
    /// every byte of what it sends).
    #[test]
    fn the_ipv4_segment_read_agrees_with_the_parse() {
        let (a, b) = (Ipv4Addr::new(100, 64, 0, 2), Ipv4Addr::new(10, 20, 1, 5));
        let mut options = tcp4(a, 40000, b, 5432, 0x12);
        // Four bytes of IP options (NOPs) after the 20-byte header.
        options.splice(20..20, [1u8; 4]);
        options[0] = 0x46;
        let total = u16::try_from(options.len()).expect("short");
        options[2..4].copy_from_slice(&total.to_be_bytes());
        let bases = [
            tcp4(a, 40000, b, 5432, 0x02),
            tcp4(a, 40000, b, 5432, 0x19),
            udp4(a, 5353, b, 53, 0),
            udp4(a, 5353, b, 53, 30),
            icmp4(a, b, 8, 7),
            tcp6(
                "fd00::2".parse().expect("v6"),
                40000,
                "fd00::5".parse().expect("v6"),
                443,
                0x02,
            ),
            options,
        ];
        let agree = |p: &[u8]| {
            let fast = ipv4_segment(p);
            let general = parse(p).ok().and_then(|h| {
                let (IpAddr::V4(src), IpAddr::V4(dst)) = (h.src, h.dst) else {
                    return None;
                };
                let (proto, src_port, dst_port, flags) = match h.transport {
                    Transport::Tcp {
                        src_port,
                        dst_port,
                        flags,
                    } => (6, src_port, dst_port, Some(flags)),
                    Transport::Udp { src_port, dst_port } => (17, src_port, dst_port, None),
                    _ => return None,
                };
                Some(Ipv4Segment {
                    src,
                    dst,
                    proto,
                    src_port,
                    dst_port,
                    flags,
                    len: h.len,
                })
            });
            assert_eq!(fast, general, "{p:02x?}");
            fast.is_some()
        };
        for base in &bases {
            agree(base);
        }
        assert!(agree(&bases[0]) && agree(&bases[2]) && agree(&bases[6]));
        assert!(!agree(&bases[4]) && !agree(&bases[5]));
        // xorshift64: the same cases at every run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accepted = 0;
        for _ in 0..100_000 {
            let r = next();
            let mut p = bases[(r % bases.len() as u64) as usize].clone();
            for _ in 0..(r >> 8) % 4 {
                let r = next();
                let at = (r % 48) as usize;
                if let Some(byte) = p.get_mut(at) {
                    *byte = (r >> 16) as u8;
                }
            }
            if (r >> 12) % 4 == 0 {
                p.truncate((next() % 80) as usize);
            }
            if agree(&p) {
                accepted += 1;
            }
        }
        // Both sides of the equivalence were exercised.
        assert!(accepted > 10_000 && accepted < 90_000, "{accepted}");
    }
}
