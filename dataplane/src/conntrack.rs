//! The flows laptops opened. A packet from the internal network reaches a laptop only on
//! a flow that laptop opened; nothing inside can open one. The table is bounded: when it
//! is full, expired flows are dropped first, and a new flow is refused (and counted).
//! Time is a parameter (milliseconds on any monotonic clock).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use ztgw_config::policy::{RuleId, RuleLabel};

use super::packet::{Header, IcmpKind, TcpFlags, Transport};

/// Most flows tracked at once by a gateway (`[dataplane] max_flows` overrides it).
pub const MAX_FLOWS: usize = 262_144;
/// Most flows one session may hold: one laptop cannot fill the table for everyone.
pub const MAX_FLOWS_PER_SESSION: usize = 4_096;

/// Idle timeouts, in milliseconds.
pub const TCP_OPENING_MS: u64 = 30_000;
pub const TCP_ESTABLISHED_MS: u64 = 3_600_000;
pub const TCP_CLOSING_MS: u64 = 30_000;
pub const UDP_MS: u64 = 60_000;
pub const UDP_REPLIED_MS: u64 = 180_000;
pub const ICMP_MS: u64 = 30_000;

/// A session's number in the data plane.
pub type SessionId = u32;

/// A flow, seen from the laptop's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    pub session: SessionId,
    /// 6, 17, or 1 for ICMP and ICMPv6.
    pub proto: u8,
    pub laptop: IpAddr,
    /// Source port, or the echo identifier.
    pub laptop_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
}

impl FlowKey {
    /// The key of a packet from the laptop; `None` for what opens no flow.
    pub fn outbound(session: SessionId, h: &Header) -> Option<Self> {
        let (proto, src_port, dst_port) = ports(h, IcmpKind::EchoRequest)?;
        Some(Self {
            session,
            proto,
            laptop: h.src,
            laptop_port: src_port,
            remote: h.dst,
            remote_port: dst_port,
        })
    }

    /// The key of the flow a packet towards the laptop would belong to.
    pub fn inbound(session: SessionId, h: &Header) -> Option<Self> {
        let (proto, src_port, dst_port) = ports(h, IcmpKind::EchoReply)?;
        Some(Self {
            session,
            proto,
            laptop: h.dst,
            laptop_port: dst_port,
            remote: h.src,
            remote_port: src_port,
        })
    }
}

/// The flow table is looked up at every packet: a key hashes as three or four words
/// rather than a write per field, discriminant and address byte (equal keys write the
/// same words, as `Hash` must; an IPv4 address in an IPv6 key writes as its mapped form,
/// a collision `Eq` still tells apart).
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(
            u64::from(self.session)
                | u64::from(self.laptop_port) << 32
                | u64::from(self.remote_port) << 48,
        );
        match (self.laptop, self.remote) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                state.write_u64(u64::from(l.to_bits()) << 32 | u64::from(r.to_bits()));
                state.write_u16(u16::from(self.proto) | 4 << 8);
            }
            (l, r) => {
                state.write_u128(v6_bits(l));
                state.write_u128(v6_bits(r));
                state.write_u16(u16::from(self.proto) | 6 << 8);
            }
        }
    }
}

fn v6_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().to_bits(),
        IpAddr::V6(a) => a.to_bits(),
    }
}

/// Protocol number and (source, destination) ports of a packet that belongs to a flow;
/// an ICMP echo of kind `echo` counts its identifier as the laptop's port.
fn ports(h: &Header, echo: IcmpKind) -> Option<(u8, u16, u16)> {
    match h.transport {
        Transport::Tcp {
            src_port, dst_port, ..
        } => Some((6, src_port, dst_port)),
        Transport::Udp { src_port, dst_port } => Some((17, src_port, dst_port)),
        Transport::Icmp {
            kind,
            echo_id: Some(id),
            ..
        } if kind == echo => Some(match echo {
            IcmpKind::EchoRequest => (1, id, 0),
            _ => (1, 0, id),
        }),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    TcpOpening,
    TcpEstablished,
    TcpClosing,
    Udp { replied: bool },
    Icmp,
}

/// A flow and its accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// The rule that allows it under the policy in force.
    pub rule: RuleId,
    /// The rule that allowed it when it was created, as the journal names it.
    pub label: Arc<RuleLabel>,
    pub state: State,
    pub first_ms: u64,
    pub last_ms: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
}

impl Flow {
    fn timeout(&self) -> u64 {
        match self.state {
            State::TcpOpening => TCP_OPENING_MS,
            State::TcpEstablished => TCP_ESTABLISHED_MS,
            State::TcpClosing => TCP_CLOSING_MS,
            State::Udp { replied: false } => UDP_MS,
            State::Udp { replied: true } => UDP_REPLIED_MS,
            State::Icmp => ICMP_MS,
        }
    }

    fn expired(&self, now: u64) -> bool {
        now.saturating_sub(self.last_ms) > self.timeout()
    }
}

/// Why a new flow was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    TableFull,
    SessionFull,
    /// A TCP segment that does not open a connection, for a connection not tracked.
    NotAnOpening,
}

/// The hasher of the per-packet tables (flows here, peers in [`crate::peers`]): aHash,
/// keyed at random for each table, is several times cheaper per lookup than the
/// standard library's SipHash (a tenth of the path's own cost went to SipHash) and,
/// keyed so, still leaves a laptop no way to choose flows that collide (the keys of a
/// flow are the laptop's to choose).
pub type FastHash = ahash::RandomState;

/// The flow table.
#[derive(Debug)]
pub struct Conntrack {
    flows: HashMap<FlowKey, Flow, FastHash>,
    per_session: HashMap<SessionId, usize, FastHash>,
    max_flows: usize,
    /// New flows refused because a table was full.
    pub refused_full: u64,
}

impl Conntrack {
    pub fn new(max_flows: usize) -> Self {
        Self {
            flows: HashMap::default(),
            per_session: HashMap::default(),
            max_flows,
            refused_full: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn get(&self, key: &FlowKey) -> Option<&Flow> {
        self.flows.get(key)
    }

    /// A packet from the laptop on `key`, allowed by `rule`: creates or advances its flow.
    /// A new flow keeps `label()` for good.
    pub fn outbound(
        &mut self,
        key: FlowKey,
        rule: RuleId,
        label: impl FnOnce() -> Arc<RuleLabel>,
        h: &Header,
        now: u64,
    ) -> Result<(), Refused> {
        let flags = tcp_flags(h);
        if let Some(f) = self.flows.get_mut(&key)
            && !f.expired(now)
        {
            f.last_ms = now;
            f.packets_out += 1;
            f.bytes_out += h.len as u64;
            f.rule = rule;
            advance(f, flags);
            return Ok(());
        }
        if key.proto == 6 && !flags.is_some_and(|f| f.syn && !f.ack) {
            return Err(Refused::NotAnOpening);
        }
        self.make_room(key.session, now)?;
        let state = match key.proto {
            6 => State::TcpOpening,
            17 => State::Udp { replied: false },
            _ => State::Icmp,
        };
        if self
            .flows
            .insert(
                key,
                Flow {
                    rule,
                    label: label(),
                    state,
                    first_ms: now,
                    last_ms: now,
                    packets_out: 1,
                    bytes_out: h.len as u64,
                    packets_in: 0,
                    bytes_in: 0,
                },
            )
            .is_none()
        {
            *self.per_session.entry(key.session).or_default() += 1;
        }
        Ok(())
    }

    /// A packet from the internal network towards the laptop: allowed only on a live
    /// flow the laptop opened.
    pub fn inbound(&mut self, key: &FlowKey, h: &Header, now: u64) -> bool {
        let flags = tcp_flags(h);
        match self.flows.get_mut(key) {
            Some(f) if !f.expired(now) => {
                f.last_ms = now;
                f.packets_in += 1;
                f.bytes_in += h.len as u64;
                if let State::Udp { replied } = &mut f.state {
                    *replied = true;
                }
                advance(f, flags);
                true
            }
            _ => false,
        }
    }

    /// An ICMP error about the flow `key` (a router's "fragmentation needed", a host's
    /// "port unreachable"): counted on the flow if it is live, without changing its state.
    /// Whether it is.
    pub fn related(&mut self, key: &FlowKey, h: &Header, now: u64) -> bool {
        match self.flows.get_mut(key) {
            Some(f) if !f.expired(now) => {
                f.packets_in += 1;
                f.bytes_in += h.len as u64;
                true
            }
            _ => false,
        }
    }

    /// Removes and returns the flows idle past their timeout.
    pub fn expire(&mut self, now: u64) -> Vec<(FlowKey, Flow)> {
        self.retain(|_, f| !f.expired(now))
    }

    /// Removes and returns every flow of `session` (when it ends).
    pub fn remove_session(&mut self, session: SessionId) -> Vec<(FlowKey, Flow)> {
        self.retain(|k, _| k.session != session)
    }

    /// Removes and returns the flows for which `keep` says no (a role or policy change
    /// that no longer allows them).
    pub fn retain(&mut self, keep: impl Fn(&FlowKey, &Flow) -> bool) -> Vec<(FlowKey, Flow)> {
        let gone: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(k, f)| !keep(k, f))
            .map(|(k, _)| *k)
            .collect();
        gone.into_iter().filter_map(|k| self.remove(&k)).collect()
    }

    fn remove(&mut self, key: &FlowKey) -> Option<(FlowKey, Flow)> {
        let f = self.flows.remove(key)?;
        if let Some(n) = self.per_session.get_mut(&key.session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_session.remove(&key.session);
            }
        }
        Some((*key, f))
    }

    fn make_room(&mut self, session: SessionId, now: u64) -> Result<(), Refused> {
        let session_full =
            || self.per_session.get(&session).copied().unwrap_or(0) >= MAX_FLOWS_PER_SESSION;
        if self.flows.len() >= self.max_flows || session_full() {
            self.expire(now);
        }
        if self.flows.len() >= self.max_flows {
            self.refused_full += 1;
            return Err(Refused::TableFull);
        }
        if self.per_session.get(&session).copied().unwrap_or(0) >= MAX_FLOWS_PER_SESSION {
            self.refused_full += 1;
            return Err(Refused::SessionFull);
        }
        Ok(())
    }
}

fn tcp_flags(h: &Header) -> Option<TcpFlags> {
    match h.transport {
        Transport::Tcp { flags, .. } => Some(flags),
        _ => None,
    }
}

fn advance(f: &mut Flow, flags: Option<TcpFlags>) {
    let Some(flags) = flags else { return };
    f.state = match (f.state, flags) {
        (_, TcpFlags { rst: true, .. }) | (_, TcpFlags { fin: true, .. }) => State::TcpClosing,
        (State::TcpOpening, TcpFlags { ack: true, .. }) => State::TcpEstablished,
        (s, _) => s,
    };
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::packet::{build, parse};
    use super::*;

    const LAPTOP: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 20, 1, 5);

    fn label() -> Arc<RuleLabel> {
        Arc::new(RuleLabel {
            name: "wide/all".into(),
            policy: "p".into(),
        })
    }

    fn rule() -> RuleId {
        super::super::fixtures::rule(SERVER, ztgw_config::policy::Proto::Tcp)
    }

    #[test]
    fn replies_pass_only_on_flows_the_laptop_opened() {
        let mut ct = Conntrack::new(16);
        let syn = parse(&build::tcp4(LAPTOP, 40000, SERVER, 5432, 0x02)).expect("syn");
        let key = FlowKey::outbound(7, &syn).expect("key");
        ct.outbound(key, rule(), label, &syn, 0).expect("opens");
        let synack = parse(&build::tcp4(SERVER, 5432, LAPTOP, 40000, 0x12)).expect("synack");
        assert!(ct.inbound(&FlowKey::inbound(7, &synack).expect("key"), &synack, 10));
        // The same packet for another session, or another port, is not a reply.
        assert!(!ct.inbound(&FlowKey::inbound(8, &synack).expect("key"), &synack, 10));
        let other = parse(&build::tcp4(SERVER, 5432, LAPTOP, 40001, 0x12)).expect("other");
        assert!(!ct.inbound(&FlowKey::inbound(7, &other).expect("key"), &other, 10));
        // An unsolicited SYN from inside opens nothing.
        let probe = parse(&build::tcp4(SERVER, 33333, LAPTOP, 22, 0x02)).expect("probe");
        assert!(!ct.inbound(&FlowKey::inbound(7, &probe).expect("key"), &probe, 10));
        let ack = parse(&build::tcp4(LAPTOP, 40000, SERVER, 5432, 0x10)).expect("ack");
        ct.outbound(key, rule(), label, &ack, 20)
            .expect("continues");
        let f = ct.get(&key).expect("flow");
        assert_eq!(
            (f.state, f.packets_out, f.packets_in),
            (State::TcpEstablished, 2, 1)
        );
    }

    #[test]
    fn keys_that_hash_alike_are_still_different_flows() {
        // The last two keys write the same words (an IPv4 address beside an IPv6 one
        // hashes as its mapped form); they, and keys differing in any one field, are
        // flows of their own.
        let base = FlowKey {
            session: 1,
            proto: 6,
            laptop: LAPTOP.into(),
            laptop_port: 40000,
            remote: SERVER.into(),
            remote_port: 5432,
        };
        let variants = [
            base,
            FlowKey { session: 2, ..base },
            FlowKey { proto: 17, ..base },
            FlowKey {
                laptop_port: 40001,
                ..base
            },
            FlowKey {
                remote_port: 5433,
                ..base
            },
            FlowKey {
                remote: Ipv4Addr::new(10, 20, 1, 6).into(),
                ..base
            },
            FlowKey {
                laptop: LAPTOP.to_ipv6_mapped().into(),
                ..base
            },
            FlowKey {
                laptop: LAPTOP.to_ipv6_mapped().into(),
                remote: SERVER.to_ipv6_mapped().into(),
                ..base
            },
        ];
        let mut table: HashMap<FlowKey, usize, FastHash> = HashMap::default();
        for (i, k) in variants.iter().enumerate() {
            assert_eq!(table.insert(*k, i), None, "{k:?} is a flow of its own");
        }
        for (i, k) in variants.iter().enumerate() {
            assert_eq!(table.get(k), Some(&i));
        }
    }

    #[test]
    fn a_tcp_segment_that_opens_nothing_is_refused_and_flows_expire() {
        let mut ct = Conntrack::new(16);
        let ack = parse(&build::tcp4(LAPTOP, 40000, SERVER, 80, 0x10)).expect("ack");
        assert_eq!(
            ct.outbound(
                FlowKey::outbound(1, &ack).expect("key"),
                rule(),
                label,
                &ack,
                0
            ),
            Err(Refused::NotAnOpening)
        );
        let udp = parse(&build::udp4(LAPTOP, 5000, SERVER, 53, 4)).expect("udp");
        let key = FlowKey::outbound(1, &udp).expect("key");
        ct.outbound(key, rule(), label, &udp, 0).expect("udp");
        let reply = parse(&build::udp4(SERVER, 53, LAPTOP, 5000, 40)).expect("reply");
        assert!(ct.inbound(&FlowKey::inbound(1, &reply).expect("key"), &reply, UDP_MS));
        assert!(
            ct.expire(UDP_MS + UDP_REPLIED_MS).is_empty(),
            "a replied flow lives longer"
        );
        let expired = ct.expire(UDP_MS + UDP_REPLIED_MS + 1);
        assert_eq!(expired.len(), 1);
        assert_eq!((expired[0].1.bytes_in, expired[0].1.bytes_out), (68, 32));
        assert!(!ct.inbound(
            &FlowKey::inbound(1, &reply).expect("key"),
            &reply,
            UDP_MS + UDP_REPLIED_MS + 2
        ));
    }

    #[test]
    fn the_table_is_bounded_overall_and_per_session() {
        let mut ct = Conntrack::new(4);
        for port in 0..4u16 {
            let u = parse(&build::udp4(LAPTOP, 1000 + port, SERVER, 53, 0)).expect("udp");
            ct.outbound(FlowKey::outbound(1, &u).expect("key"), rule(), label, &u, 0)
                .expect("room");
        }
        let u = parse(&build::udp4(LAPTOP, 2000, SERVER, 53, 0)).expect("udp");
        assert_eq!(
            ct.outbound(FlowKey::outbound(2, &u).expect("key"), rule(), label, &u, 1),
            Err(Refused::TableFull)
        );
        assert_eq!(ct.refused_full, 1);
        // Expired flows make room.
        ct.outbound(
            FlowKey::outbound(2, &u).expect("key"),
            rule(),
            label,
            &u,
            UDP_MS + 10,
        )
        .expect("room after expiry");
        assert_eq!(ct.len(), 1);
        let mut big = Conntrack::new(MAX_FLOWS);
        let r = rule();
        for port in 0..MAX_FLOWS_PER_SESSION as u16 {
            let u = parse(&build::udp4(LAPTOP, port, SERVER, 53, 0)).expect("udp");
            big.outbound(FlowKey::outbound(3, &u).expect("key"), r, label, &u, 0)
                .expect("room");
        }
        let u = parse(&build::udp4(LAPTOP, 60000, SERVER, 53, 0)).expect("udp");
        assert_eq!(
            big.outbound(FlowKey::outbound(3, &u).expect("key"), rule(), label, &u, 0),
            Err(Refused::SessionFull)
        );
        assert!(
            big.outbound(FlowKey::outbound(4, &u).expect("key"), rule(), label, &u, 0)
                .is_ok(),
            "other sessions are not starved"
        );
        assert_eq!(big.remove_session(3).len(), MAX_FLOWS_PER_SESSION);
    }
}
