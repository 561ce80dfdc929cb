//! The decision for each packet of a session.
//!
//! From the laptop (decrypted): the inner source must be the session's tunnel address
//! (either of them, in dual stack);
//! the destination must not be another laptop; ICMP only as echo requests; the compiled
//! policy for the session's role must allow it; then its flow is tracked. Towards the
//! laptop: only on a flow the laptop opened, or an ICMP error (unreachable, packet too
//! big, time exceeded, parameter problem) that quotes a packet of such a flow — without
//! them path-MTU discovery fails. Default deny.

use std::net::IpAddr;

use ztgw_config::policy::{CompiledPolicy, Decision, DenyReason, RoleId, RuleId};

use super::conntrack::{Conntrack, FlowKey, Refused, SessionId, Stamp};
use super::packet::{self, PacketError};

/// What the data plane knows of a session, per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub tunnel_addr: IpAddr,
    /// Dual stack: the session's IPv6 address.
    pub tunnel_addr6: Option<IpAddr>,
    pub role: RoleId,
}

impl Session {
    /// Whether `addr` is one of the session's own addresses.
    fn owns(&self, addr: IpAddr) -> bool {
        addr == self.tunnel_addr || Some(addr) == self.tunnel_addr6
    }
}

/// Why a packet is dropped (counted by reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    Malformed,
    Unsupported,
    /// The inner source is not the session's tunnel address.
    Spoofed,
    /// Laptops never reach each other.
    ToAnotherLaptop,
    Policy(DenyReason),
    /// Towards a laptop, outside any flow it opened.
    NotAFlow,
    TableFull,
    /// A TCP segment for a connection the gateway never saw open.
    NotAnOpening,
    /// ICMP from a laptop other than an echo request.
    IcmpType,
}

impl Drop {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unsupported => "unsupported",
            Self::Spoofed => "spoofed-source",
            Self::ToAnotherLaptop => "laptop-to-laptop",
            Self::Policy(DenyReason::NoRule) => "no-rule",
            Self::Policy(DenyReason::UnknownRole) => "unknown-role",
            Self::NotAFlow => "not-a-flow",
            Self::TableFull => "flow-table-full",
            Self::NotAnOpening => "not-an-opening",
            Self::IcmpType => "icmp-type",
        }
    }
}

/// Decides a decrypted packet from a laptop. `is_tunnel_addr` says whether an address
/// belongs to the tunnel pool (another laptop).
pub fn from_laptop(
    s: &Session,
    pkt: &[u8],
    policy: &CompiledPolicy,
    ct: &mut Conntrack,
    is_tunnel_addr: impl Fn(IpAddr) -> bool,
    now_ms: u64,
) -> Result<RuleId, Drop> {
    let stamp = Stamp {
        policy: policy.generation(),
        role: s.role,
    };
    // Most packets: IPv4 TCP or UDP from the session's own address, not to another
    // laptop, on a flow already decided under this policy and role. Their key and
    // flags are read straight from the bytes (the checks of the parse below, none
    // skipped) and the flow advanced as below. Anything else, or a packet the flow
    // table does not take so, is parsed and decided below.
    if let Some(seg) = packet::ipv4_segment(pkt)
        && s.owns(IpAddr::V4(seg.src))
        && !is_tunnel_addr(IpAddr::V4(seg.dst))
    {
        let key = FlowKey {
            session: s.id,
            proto: seg.proto,
            laptop: IpAddr::V4(seg.src),
            laptop_port: seg.src_port,
            remote: IpAddr::V4(seg.dst),
            remote_port: seg.dst_port,
        };
        if let Some(rule) = ct.outbound_decided(&key, stamp, seg.flags, seg.len, now_ms) {
            return Ok(rule);
        }
    }
    let h = packet::parse(pkt).map_err(parse_drop)?;
    if !s.owns(h.src) {
        return Err(Drop::Spoofed);
    }
    if is_tunnel_addr(h.dst) {
        return Err(Drop::ToAnotherLaptop);
    }
    if let packet::Transport::Icmp { kind, .. } = h.transport
        && kind != packet::IcmpKind::EchoRequest
    {
        return Err(Drop::IcmpType);
    }
    let decide = || {
        let (proto, port) = h.service().ok_or(Drop::Unsupported)?;
        match policy.decide(s.role, h.dst, proto, port) {
            Decision::Allow(rule) => Ok(rule),
            Decision::Deny(reason) => Err(Drop::Policy(reason)),
        }
    };
    let Some(key) = FlowKey::outbound(s.id, &h) else {
        // What opens no flow (none today: every packet decided here has ports or an
        // echo identifier) is decided alone.
        return decide();
    };
    let label = |rule| {
        policy.label(rule).cloned().unwrap_or_else(|| {
            std::sync::Arc::new(ztgw_config::policy::RuleLabel {
                name: "(unknown rule)".into(),
                policy: String::new(),
            })
        })
    };
    // A packet of a flow already decided under this policy and role is not decided
    // again (the flow's key holds everything a decision reads).
    ct.outbound(key, stamp, decide, label, &h, now_ms)
}

impl From<Refused> for Drop {
    fn from(r: Refused) -> Self {
        match r {
            Refused::TableFull | Refused::SessionFull => Drop::TableFull,
            Refused::NotAnOpening => Drop::NotAnOpening,
        }
    }
}

/// Decides a packet from the internal network towards the laptop of session `s`.
pub fn to_laptop(s: &Session, pkt: &[u8], ct: &mut Conntrack, now_ms: u64) -> Result<(), Drop> {
    let h = packet::parse(pkt).map_err(parse_drop)?;
    to_laptop_parsed(s, &h, ct, now_ms)
}

/// As [`to_laptop`], for a packet whose header the caller has parsed already.
pub fn to_laptop_parsed(
    s: &Session,
    h: &packet::Header,
    ct: &mut Conntrack,
    now_ms: u64,
) -> Result<(), Drop> {
    if !s.owns(h.dst) {
        return Err(Drop::NotAFlow);
    }
    // An error about a packet the laptop sent on one of its flows (from the remote host
    // or a router on the way).
    if let packet::Transport::Icmp {
        kind: packet::IcmpKind::Error(_),
        quoted,
        ..
    } = h.transport
    {
        let q = quoted.ok_or(Drop::NotAFlow)?;
        if !s.owns(q.src) {
            return Err(Drop::NotAFlow);
        }
        let key = FlowKey {
            session: s.id,
            proto: q.proto,
            laptop: q.src,
            laptop_port: q.src_port,
            remote: q.dst,
            remote_port: q.dst_port,
        };
        return if ct.related(&key, h, now_ms) {
            Ok(())
        } else {
            Err(Drop::NotAFlow)
        };
    }
    let key = FlowKey::inbound(s.id, h).ok_or(Drop::NotAFlow)?;
    if ct.inbound(&key, h, now_ms) {
        Ok(())
    } else {
        Err(Drop::NotAFlow)
    }
}

fn parse_drop(e: PacketError) -> Drop {
    match e {
        PacketError::Unsupported => Drop::Unsupported,
        _ => Drop::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::fixtures::policy;
    use super::super::packet::build;
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 3);
    const DB: Ipv4Addr = Ipv4Addr::new(10, 20, 1, 5);
    const WEB: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 10);

    fn in_pool(ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(v) if v.octets()[..2] == [100, 64])
    }

    #[test]
    fn the_matrix_of_a_role() {
        let policy = policy();
        let finance = Session {
            id: 1,
            tunnel_addr: A.into(),
            tunnel_addr6: None,
            role: policy.role("finance").expect("role"),
        };
        let hr = Session {
            id: 2,
            tunnel_addr: B.into(),
            tunnel_addr6: None,
            role: policy.role("hr").expect("role"),
        };
        let mut ct = Conntrack::new(1024);
        let cases: Vec<(&Session, Vec<u8>, Result<(), Drop>)> = vec![
            (&finance, build::tcp4(A, 40000, DB, 5432, 0x02), Ok(())),
            (&finance, build::icmp4(A, DB, 8, 9), Ok(())),
            (
                &finance,
                build::tcp4(A, 40001, DB, 22, 0x02),
                Err(Drop::Policy(DenyReason::NoRule)),
            ),
            (
                &finance,
                build::tcp4(A, 40002, WEB, 443, 0x02),
                Err(Drop::Policy(DenyReason::NoRule)),
            ),
            (
                &hr,
                build::tcp4(B, 40000, DB, 5432, 0x02),
                Err(Drop::Policy(DenyReason::NoRule)),
            ),
            (
                &hr,
                build::udp4(B, 5353, Ipv4Addr::new(10, 20, 0, 53), 53, 10),
                Ok(()),
            ),
            // A spoofed inner source, and laptop to laptop.
            (
                &finance,
                build::tcp4(B, 40000, DB, 5432, 0x02),
                Err(Drop::Spoofed),
            ),
            (
                &finance,
                build::icmp4(A, B, 8, 1),
                Err(Drop::ToAnotherLaptop),
            ),
            (&finance, vec![0x45, 0, 0], Err(Drop::Malformed)),
        ];
        for (i, (s, pkt, want)) in cases.into_iter().enumerate() {
            let got = from_laptop(s, &pkt, &policy, &mut ct, in_pool, 0).map(|_| ());
            assert_eq!(got, want, "case {i}");
        }
        // Replies come back on the laptop's flows only.
        assert_eq!(
            to_laptop(&finance, &build::tcp4(DB, 5432, A, 40000, 0x12), &mut ct, 5),
            Ok(())
        );
        assert_eq!(
            to_laptop(&finance, &build::icmp4(DB, A, 0, 9), &mut ct, 5),
            Ok(())
        );
        assert_eq!(
            to_laptop(&finance, &build::tcp4(DB, 5432, A, 40001, 0x12), &mut ct, 5),
            Err(Drop::NotAFlow)
        );
        // Nothing inside opens a connection to a laptop, nor pings one.
        assert_eq!(
            to_laptop(&finance, &build::tcp4(DB, 6000, A, 22, 0x02), &mut ct, 5),
            Err(Drop::NotAFlow)
        );
        assert_eq!(
            to_laptop(&finance, &build::icmp4(DB, A, 8, 5), &mut ct, 5),
            Err(Drop::NotAFlow)
        );
        // A reply for one laptop's flow does not reach the other.
        assert_eq!(
            to_laptop(&hr, &build::tcp4(DB, 5432, B, 40000, 0x12), &mut ct, 5),
            Err(Drop::NotAFlow)
        );
    }

    #[test]
    fn an_open_flow_is_decided_again_under_a_new_policy_or_role() {
        let old = policy();
        let finance = Session {
            id: 1,
            tunnel_addr: A.into(),
            tunnel_addr6: None,
            role: old.role("finance").expect("role"),
        };
        let mut ct = Conntrack::new(1024);
        let syn = build::tcp4(A, 40000, DB, 5432, 0x02);
        let ack = build::tcp4(A, 40000, DB, 5432, 0x10);
        assert!(from_laptop(&finance, &syn, &old, &mut ct, in_pool, 0).is_ok());
        assert!(from_laptop(&finance, &ack, &old, &mut ct, in_pool, 1).is_ok());
        // The same text compiled again is another generation that decides alike.
        let again = policy();
        assert_ne!(again.generation(), old.generation());
        assert!(from_laptop(&finance, &ack, &again, &mut ct, in_pool, 2).is_ok());
        // A reload that takes the database from finance refuses the open flow's next
        // packet, though the flow is still in the table.
        let text = super::super::fixtures::POLICY
            .replace(r#"resources = ["db", "dns"]"#, r#"resources = ["dns"]"#);
        let reloaded = CompiledPolicy::compile(
            &ztgw_config::policy::Policy::parse(std::path::Path::new("p.toml"), &text)
                .expect("policy")
                .policy,
        );
        let finance_now = Session {
            role: reloaded.role("finance").expect("role"),
            ..finance
        };
        assert_eq!(
            from_laptop(&finance_now, &ack, &reloaded, &mut ct, in_pool, 3),
            Err(Drop::Policy(DenyReason::NoRule))
        );
        let key = FlowKey::outbound(1, &packet::parse(&ack).expect("ack")).expect("key");
        assert_eq!(
            ct.get(&key).map(|f| f.packets_out),
            Some(3),
            "a refused packet leaves the flow as it was"
        );
        // Under the policy in force, a role change (to hr, without the database) is
        // decided again too; back to finance, the flow goes on.
        let as_hr = Session {
            role: old.role("hr").expect("role"),
            ..finance
        };
        assert_eq!(
            from_laptop(&as_hr, &ack, &old, &mut ct, in_pool, 4),
            Err(Drop::Policy(DenyReason::NoRule))
        );
        assert!(from_laptop(&finance, &ack, &old, &mut ct, in_pool, 5).is_ok());
        assert_eq!(ct.get(&key).map(|f| f.packets_out), Some(4));
    }

    /// The packets of a decided IPv4 flow are read straight from their bytes: they
    /// advance the flow exactly as the general parse did (counts, bytes, TCP state),
    /// and what that read cannot take (a new flow, a malformed packet) is decided as
    /// before.
    #[test]
    fn a_decided_flow_is_advanced_alike_by_the_short_read() {
        use super::super::conntrack::State;
        let policy = policy();
        let finance = Session {
            id: 1,
            tunnel_addr: A.into(),
            tunnel_addr6: None,
            role: policy.role("finance").expect("role"),
        };
        let stamp = Stamp {
            policy: policy.generation(),
            role: finance.role,
        };
        let mut ct = Conntrack::new(1024);
        let syn = build::tcp4(A, 40000, DB, 5432, 0x02);
        let ack = build::tcp4(A, 40000, DB, 5432, 0x10);
        let fin = build::tcp4(A, 40000, DB, 5432, 0x11);
        let dns = build::udp4(A, 5353, Ipv4Addr::new(10, 20, 0, 53), 53, 100);
        let tcp_key = FlowKey::outbound(1, &packet::parse(&syn).expect("syn")).expect("key");
        let udp_key = FlowKey::outbound(1, &packet::parse(&dns).expect("dns")).expect("key");
        // A new flow is not the short read's: nothing to advance yet.
        let seg = packet::ipv4_segment(&ack).expect("an IPv4 TCP segment");
        assert_eq!(
            ct.outbound_decided(&tcp_key, stamp, seg.flags, seg.len, 0),
            None
        );
        assert!(from_laptop(&finance, &syn, &policy, &mut ct, in_pool, 0).is_ok());
        assert!(from_laptop(&finance, &dns, &policy, &mut ct, in_pool, 1).is_ok());
        let flow = ct.get(&tcp_key).expect("flow").clone();
        assert_eq!(flow.state, State::TcpOpening);
        // Both flows' next packets are read short: IPv4 TCP and UDP, each flow now
        // decided under the stamp in force.
        for pkt in [&ack, &dns, &fin] {
            assert_eq!(packet::ipv4_segment(pkt).map(|s| s.len), Some(pkt.len()));
        }
        assert_eq!(
            from_laptop(&finance, &ack, &policy, &mut ct, in_pool, 5),
            Ok(flow.rule)
        );
        assert!(from_laptop(&finance, &dns, &policy, &mut ct, in_pool, 6).is_ok());
        assert!(from_laptop(&finance, &fin, &policy, &mut ct, in_pool, 7).is_ok());
        let tcp = ct.get(&tcp_key).expect("flow");
        assert_eq!(
            (tcp.packets_out, tcp.bytes_out, tcp.last_ms, tcp.state),
            (3, 3 * syn.len() as u64, 7, State::TcpClosing)
        );
        let udp = ct.get(&udp_key).expect("flow");
        assert_eq!(
            (udp.packets_out, udp.bytes_out, udp.last_ms),
            (2, 2 * dns.len() as u64, 6)
        );
        // A packet of the flow cut short, or from another address, is refused as before.
        assert_eq!(
            from_laptop(&finance, &ack[..30], &policy, &mut ct, in_pool, 8),
            Err(Drop::Malformed)
        );
        let spoofed = build::tcp4(B, 40000, DB, 5432, 0x10);
        assert_eq!(
            from_laptop(&finance, &spoofed, &policy, &mut ct, in_pool, 8),
            Err(Drop::Spoofed)
        );
        assert_eq!(ct.get(&tcp_key).map(|f| f.packets_out), Some(3));
    }

    #[test]
    fn in_dual_stack_either_address_is_the_sessions_and_no_other() {
        use std::net::Ipv6Addr;
        let policy = policy();
        let a6 = Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 2);
        let other6 = Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 3);
        let db6 = Ipv6Addr::new(0xfd00, 0x20, 1, 0, 0, 0, 0, 5);
        let finance = Session {
            id: 1,
            tunnel_addr: A.into(),
            tunnel_addr6: Some(a6.into()),
            role: policy.role("finance").expect("role"),
        };
        let in_pools = |ip: IpAddr| {
            in_pool(ip) || matches!(ip, IpAddr::V6(v) if v.segments()[..2] == [0xfd00, 0x64])
        };
        let mut ct = Conntrack::new(1024);
        // Both families from the session's own addresses, by the role's rules.
        let syn4 = build::tcp4(A, 40000, DB, 5432, 0x02);
        assert!(from_laptop(&finance, &syn4, &policy, &mut ct, in_pools, 0).is_ok());
        let syn6 = build::tcp6(a6, 40001, db6, 5432, 0x02);
        assert!(from_laptop(&finance, &syn6, &policy, &mut ct, in_pools, 0).is_ok());
        // The answer comes back to the IPv6 address, on the flow it opened.
        let synack = build::tcp6(db6, 5432, a6, 40001, 0x12);
        assert_eq!(to_laptop(&finance, &synack, &mut ct, 1), Ok(()));
        // Another IPv6 source is spoofed, even inside the tunnel network.
        let spoofed = build::tcp6(other6, 40002, db6, 5432, 0x02);
        assert_eq!(
            from_laptop(&finance, &spoofed, &policy, &mut ct, in_pools, 2),
            Err(Drop::Spoofed)
        );
        // Another laptop's IPv6 address is not reachable either.
        let to_laptop6 = build::tcp6(a6, 40003, other6, 5432, 0x02);
        assert_eq!(
            from_laptop(&finance, &to_laptop6, &policy, &mut ct, in_pools, 3),
            Err(Drop::ToAnotherLaptop)
        );
        // Not allowed by the role: IPv6 is decided like IPv4.
        let ssh6 = build::tcp6(a6, 40004, db6, 22, 0x02);
        assert!(matches!(
            from_laptop(&finance, &ssh6, &policy, &mut ct, in_pools, 4),
            Err(Drop::Policy(_))
        ));
    }

    #[test]
    fn icmp_errors_reach_the_laptop_only_about_its_flows_and_laptops_only_ping() {
        let policy = policy();
        let finance = Session {
            id: 1,
            tunnel_addr: A.into(),
            tunnel_addr6: None,
            role: policy.role("finance").expect("role"),
        };
        let mut ct = Conntrack::new(1024);
        let syn = build::tcp4(A, 40000, DB, 5432, 0x02);
        assert!(from_laptop(&finance, &syn, &policy, &mut ct, in_pool, 0).is_ok());
        let router = Ipv4Addr::new(10, 20, 255, 1);
        // Path MTU: a router on the way says the segment was too big.
        let too_big = build::icmp4_error(router, A, 3, 4, &build::tcp4(A, 40000, DB, 5432, 0x10));
        assert_eq!(to_laptop(&finance, &too_big, &mut ct, 5), Ok(()));
        let unreachable = build::icmp4_error(DB, A, 3, 3, &syn);
        assert_eq!(to_laptop(&finance, &unreachable, &mut ct, 5), Ok(()));
        // About a packet of no flow of the laptop's, or another laptop's: dropped.
        for about in [
            build::tcp4(A, 40001, DB, 5432, 0x02),
            build::tcp4(A, 40000, DB, 22, 0x02),
            build::tcp4(B, 40000, DB, 5432, 0x02),
        ] {
            let err = build::icmp4_error(router, A, 3, 4, &about);
            assert_eq!(to_laptop(&finance, &err, &mut ct, 5), Err(Drop::NotAFlow));
        }
        // Errors that quote nothing, and other ICMP types from inside: dropped.
        let bare = build::icmp4_error(router, A, 11, 0, &syn[..10]);
        assert_eq!(to_laptop(&finance, &bare, &mut ct, 5), Err(Drop::NotAFlow));
        assert_eq!(
            to_laptop(&finance, &build::icmp4(DB, A, 13, 1), &mut ct, 5),
            Err(Drop::NotAFlow)
        );
        // From the laptop: echo requests only, even where a rule allows icmp.
        assert!(
            from_laptop(
                &finance,
                &build::icmp4(A, DB, 8, 3),
                &policy,
                &mut ct,
                in_pool,
                6
            )
            .is_ok()
        );
        for ty in [0, 3, 5, 13] {
            let pkt = if ty == 3 {
                build::icmp4_error(A, DB, 3, 3, &build::udp4(DB, 53, A, 5353, 4))
            } else {
                build::icmp4(A, DB, ty, 3)
            };
            assert_eq!(
                from_laptop(&finance, &pkt, &policy, &mut ct, in_pool, 6).map(|_| ()),
                Err(Drop::IcmpType),
                "type {ty}"
            );
        }
        // The echo reply of the laptop's ping comes back.
        assert_eq!(
            to_laptop(&finance, &build::icmp4(DB, A, 0, 3), &mut ct, 7),
            Ok(())
        );
    }
}
