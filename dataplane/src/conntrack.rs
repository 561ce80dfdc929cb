//! The flows laptops opened. A packet from the internal network reaches a laptop only on
//! a flow that laptop opened; nothing inside can open one. The table is bounded: when it
//! is full, expired flows are dropped first, and a new flow is refused (and counted).
//! Time is a parameter (milliseconds on any monotonic clock).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use ztgw_config::policy::{RoleId, RuleId, RuleLabel};

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
    #[inline]
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
    #[inline]
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
#[inline]
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

    /// A packet of `len` bytes (TCP `flags`) sent on the flow at `now`: its rule.
    #[inline]
    fn sent(&mut self, flags: Option<TcpFlags>, len: usize, now: u64) -> RuleId {
        self.last_ms = now;
        self.packets_out += 1;
        self.bytes_out += len as u64;
        advance(self, flags);
        self.rule
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

/// Under what a flow's rule was decided: the compiled policy in force (its
/// generation) and the session's role. A packet of a live flow decided under the stamp
/// in force is not decided again; a reload or a role change makes every stamp stale,
/// and the flow's next packet is decided afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub policy: u64,
    pub role: RoleId,
}

/// A flow in its slot, with the stamp its rule was decided under.
#[derive(Debug)]
struct Slot {
    key: FlowKey,
    flow: Flow,
    decided: Stamp,
}

/// The flow table. Flows live in slots that an index finds by key; the slot of the
/// previous packet's flow is tried first (its key compared), so a burst of one flow is
/// found without hashing, in both directions (a flow's key is the laptop's view of it
/// either way). The tables are allocated with the first flow and freed with the last:
/// an idle peer's table is one pointer.
#[derive(Debug)]
pub struct Conntrack {
    tables: Option<Box<Tables>>,
    max_flows: usize,
    /// New flows refused because a table was full.
    pub refused_full: u64,
}

#[derive(Debug, Default)]
struct Tables {
    index: HashMap<FlowKey, u32, FastHash>,
    slots: Vec<Option<Slot>>,
    /// Slots emptied, reused first.
    free: Vec<u32>,
    /// The slot of the previous packet's flow; a hint, checked against the key.
    last: Option<u32>,
    per_session: HashMap<SessionId, usize, FastHash>,
    /// Flows that ended outside [`Conntrack::retain`] (expired, to make room for a
    /// new one or replaced by one with their key): handed out by its next call, so that
    /// accounting sees every flow that ended.
    ended: Vec<(FlowKey, Flow)>,
}

impl Tables {
    /// The slot of `key`'s flow: the previous packet's if it is that flow, else from
    /// the index.
    fn find(&mut self, key: &FlowKey) -> Option<usize> {
        if let Some(i) = self.last
            && matches!(self.slots.get(i as usize), Some(Some(s)) if s.key == *key)
        {
            return Some(i as usize);
        }
        let i = *self.index.get(key)?;
        self.last = Some(i);
        Some(i as usize)
    }

    /// The live flow of `key`.
    fn live(&mut self, key: &FlowKey, now: u64) -> Option<&mut Slot> {
        let i = self.find(key)?;
        self.slots
            .get_mut(i)?
            .as_mut()
            .filter(|s| !s.flow.expired(now))
    }

    /// Puts a new flow in a slot (replacing its key's expired flow, which goes to
    /// `ended`).
    fn insert(&mut self, slot: Slot) {
        let key = slot.key;
        let i = match self.index.get(&key) {
            Some(&i) => {
                if let Some(old) = self.slots.get_mut(i as usize).and_then(|s| s.replace(slot)) {
                    self.ended.push((old.key, old.flow));
                }
                i
            }
            None => {
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots[i as usize] = Some(slot);
                        i
                    }
                    None => {
                        self.slots.push(Some(slot));
                        // At most `max_flows` slots, which fits 32 bits.
                        (self.slots.len() - 1) as u32
                    }
                };
                self.index.insert(key, i);
                *self.per_session.entry(key.session).or_default() += 1;
                i
            }
        };
        self.last = Some(i);
    }

    fn flows_of(&self, session: SessionId) -> usize {
        self.per_session.get(&session).copied().unwrap_or(0)
    }
}

impl Conntrack {
    pub fn new(max_flows: usize) -> Self {
        Self {
            tables: None,
            // Slots are numbered with 32 bits.
            max_flows: max_flows.min(u32::MAX as usize),
            refused_full: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.tables.as_ref().map_or(0, |t| t.index.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, key: &FlowKey) -> Option<&Flow> {
        let t = self.tables.as_ref()?;
        let i = *t.index.get(key)?;
        t.slots.get(i as usize)?.as_ref().map(|s| &s.flow)
    }

    /// The live flow of `key`, if the table has any.
    fn live(&mut self, key: &FlowKey, now: u64) -> Option<&mut Slot> {
        self.tables.as_mut()?.live(key, now)
    }

    /// A packet from the laptop on `key`: advances its live flow, or creates one. The
    /// rule is `decide()`'s, asked only when the flow is new or was decided under
    /// another stamp than `stamp` (an error from it refuses the packet and leaves the
    /// table as it was). A new flow keeps `label(rule)` for good. The rule allowing
    /// the packet.
    pub fn outbound<E: From<Refused>>(
        &mut self,
        key: FlowKey,
        stamp: Stamp,
        decide: impl FnOnce() -> Result<RuleId, E>,
        label: impl FnOnce(RuleId) -> Arc<RuleLabel>,
        h: &Header,
        now: u64,
    ) -> Result<RuleId, E> {
        let flags = tcp_flags(h);
        if let Some(slot) = self.live(&key, now) {
            if slot.decided != stamp {
                slot.flow.rule = decide()?;
                slot.decided = stamp;
            }
            return Ok(slot.flow.sent(flags, h.len, now));
        }
        let rule = decide()?;
        if key.proto == 6 && !flags.is_some_and(|f| f.syn && !f.ack) {
            return Err(Refused::NotAnOpening.into());
        }
        self.make_room(key.session, now)?;
        let state = match key.proto {
            6 => State::TcpOpening,
            17 => State::Udp { replied: false },
            _ => State::Icmp,
        };
        self.tables.get_or_insert_default().insert(Slot {
            key,
            flow: Flow {
                rule,
                label: label(rule),
                state,
                first_ms: now,
                last_ms: now,
                packets_out: 1,
                bytes_out: h.len as u64,
                packets_in: 0,
                bytes_in: 0,
            },
            decided: stamp,
        });
        Ok(rule)
    }

    /// A packet from the laptop on `key`'s live flow, if it was decided under `stamp`:
    /// advanced as [`Conntrack::outbound`] would, and the rule allowing it. `None`
    /// otherwise, the flow left as it was: what [`Conntrack::outbound`] decides.
    #[inline]
    pub fn outbound_decided(
        &mut self,
        key: &FlowKey,
        stamp: Stamp,
        flags: Option<TcpFlags>,
        len: usize,
        now: u64,
    ) -> Option<RuleId> {
        let slot = self.live(key, now)?;
        (slot.decided == stamp).then(|| slot.flow.sent(flags, len, now))
    }

    /// A packet from the internal network towards the laptop: allowed only on a live
    /// flow the laptop opened.
    pub fn inbound(&mut self, key: &FlowKey, h: &Header, now: u64) -> bool {
        let flags = tcp_flags(h);
        let Some(slot) = self.live(key, now) else {
            return false;
        };
        let f = &mut slot.flow;
        f.last_ms = now;
        f.packets_in += 1;
        f.bytes_in += h.len as u64;
        if let State::Udp { replied } = &mut f.state {
            *replied = true;
        }
        advance(f, flags);
        true
    }

    /// An ICMP error about the flow `key` (a router's "fragmentation needed", a host's
    /// "port unreachable"): counted on the flow if it is live, without changing its state.
    /// Whether it is.
    pub fn related(&mut self, key: &FlowKey, h: &Header, now: u64) -> bool {
        let Some(slot) = self.live(key, now) else {
            return false;
        };
        slot.flow.packets_in += 1;
        slot.flow.bytes_in += h.len as u64;
        true
    }

    /// Removes and returns the flows idle past their timeout (and any that ended since
    /// the last call, see [`Conntrack::retain`]).
    pub fn expire(&mut self, now: u64) -> Vec<(FlowKey, Flow)> {
        self.retain(|_, f| !f.expired(now))
    }

    /// Removes and returns every flow of `session` (when it ends).
    pub fn remove_session(&mut self, session: SessionId) -> Vec<(FlowKey, Flow)> {
        self.retain(|k, _| k.session != session)
    }

    /// Removes and returns the flows for which `keep` says no (a role or policy change
    /// that no longer allows them), after those that ended otherwise since the last
    /// call (expired to make room, replaced by a new flow with their key). A table left
    /// empty is freed.
    pub fn retain(&mut self, keep: impl Fn(&FlowKey, &Flow) -> bool) -> Vec<(FlowKey, Flow)> {
        let Some(t) = self.tables.as_mut() else {
            return Vec::new();
        };
        let mut gone = std::mem::take(&mut t.ended);
        for (i, cell) in t.slots.iter_mut().enumerate() {
            let Some(s) = cell.take_if(|s| !keep(&s.key, &s.flow)) else {
                continue;
            };
            t.index.remove(&s.key);
            // `i` is below `max_flows`, which fits 32 bits.
            t.free.push(i as u32);
            if let Some(n) = t.per_session.get_mut(&s.key.session) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    t.per_session.remove(&s.key.session);
                }
            }
            gone.push((s.key, s.flow));
        }
        if t.index.is_empty() {
            self.tables = None;
        }
        gone
    }

    fn make_room(&mut self, session: SessionId, now: u64) -> Result<(), Refused> {
        let full = |t: &Tables| {
            t.index.len() >= self.max_flows || t.flows_of(session) >= MAX_FLOWS_PER_SESSION
        };
        if self.tables.as_deref().is_some_and(full) {
            // Their records wait for the next call to `retain`.
            let ended = self.expire(now);
            if !ended.is_empty() {
                self.tables.get_or_insert_default().ended = ended;
            }
        }
        if self.len() >= self.max_flows {
            self.refused_full += 1;
            return Err(Refused::TableFull);
        }
        if self
            .tables
            .as_deref()
            .is_some_and(|t| t.flows_of(session) >= MAX_FLOWS_PER_SESSION)
        {
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

    const STAMP: Stamp = Stamp {
        policy: 1,
        role: RoleId::NONE,
    };

    /// A packet from the laptop on `key`, allowed by `rule()`.
    fn open(ct: &mut Conntrack, key: FlowKey, h: &Header, now: u64) -> Result<RuleId, Refused> {
        ct.outbound(key, STAMP, || Ok(rule()), |_| label(), h, now)
    }

    #[test]
    fn replies_pass_only_on_flows_the_laptop_opened() {
        let mut ct = Conntrack::new(16);
        let syn = parse(&build::tcp4(LAPTOP, 40000, SERVER, 5432, 0x02)).expect("syn");
        let key = FlowKey::outbound(7, &syn).expect("key");
        open(&mut ct, key, &syn, 0).expect("opens");
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
        open(&mut ct, key, &ack, 20).expect("continues");
        let f = ct.get(&key).expect("flow");
        assert_eq!(
            (f.state, f.packets_out, f.packets_in),
            (State::TcpEstablished, 2, 1)
        );
    }

    #[test]
    fn a_flow_is_decided_once_per_stamp() {
        let mut ct = Conntrack::new(16);
        let syn = parse(&build::tcp4(LAPTOP, 40000, SERVER, 5432, 0x02)).expect("syn");
        let ack = parse(&build::tcp4(LAPTOP, 40000, SERVER, 5432, 0x10)).expect("ack");
        let key = FlowKey::outbound(7, &syn).expect("key");
        let asked = std::cell::Cell::new(0);
        let decide = |r: Result<RuleId, Refused>| {
            asked.set(asked.get() + 1);
            r
        };
        let reload = Stamp { policy: 2, ..STAMP };
        let moved = Stamp {
            role: super::super::fixtures::policy().role("hr").expect("role"),
            ..STAMP
        };
        let steps = [
            (STAMP, &syn, Ok(rule()), 1),
            (STAMP, &ack, Ok(rule()), 1),
            (STAMP, &ack, Ok(rule()), 1),
            // A new stamp is decided again, once; a refusal changes nothing.
            (reload, &ack, Err(Refused::TableFull), 2),
            (reload, &ack, Ok(rule()), 3),
            (reload, &ack, Ok(rule()), 3),
            (moved, &ack, Ok(rule()), 4),
        ];
        for (i, (stamp, h, verdict, want_asked)) in steps.into_iter().enumerate() {
            let got = ct.outbound(key, stamp, || decide(verdict), |_| label(), h, i as u64);
            assert_eq!(got, verdict, "step {i}");
            assert_eq!(asked.get(), want_asked, "step {i}: decisions asked");
        }
        assert_eq!(ct.get(&key).map(|f| f.packets_out), Some(6));
    }

    #[test]
    fn interleaved_flows_and_reused_slots_count_on_their_own_flows() {
        let mut ct = Conntrack::new(16);
        let out = |port: u16| parse(&build::udp4(LAPTOP, port, SERVER, 53, 10)).expect("udp");
        let back = |port: u16| parse(&build::udp4(SERVER, 53, LAPTOP, port, 20)).expect("udp");
        let key = |port: u16| FlowKey::outbound(1, &out(port)).expect("key");
        for port in [1000, 1001, 1000, 1000, 1001] {
            open(&mut ct, key(port), &out(port), 0).expect("opens");
        }
        assert!(ct.inbound(&key(1001), &back(1001), 1));
        assert!(ct.inbound(&key(1000), &back(1000), 1));
        let counts =
            |ct: &Conntrack, port| ct.get(&key(port)).map(|f| (f.packets_out, f.packets_in));
        assert_eq!(counts(&ct, 1000), Some((3, 1)));
        assert_eq!(counts(&ct, 1001), Some((2, 1)));
        // The last packet's flow ends and another takes its slot: the slot is found by
        // the new key only.
        assert_eq!(ct.retain(|k, _| k.laptop_port != 1000).len(), 1);
        assert!(!ct.inbound(&key(1000), &back(1000), 2));
        open(&mut ct, key(1002), &out(1002), 2).expect("opens");
        assert!(!ct.inbound(&key(1000), &back(1000), 3));
        assert!(ct.inbound(&key(1002), &back(1002), 3));
        assert_eq!(counts(&ct, 1002), Some((1, 1)));
        assert_eq!(ct.len(), 2);
        let t = ct.tables.as_ref().expect("tables");
        assert_eq!(t.slots.len(), 2, "the freed slot was reused");
    }

    #[test]
    fn every_flow_that_ends_reaches_accounting_and_an_empty_table_frees_its_memory() {
        let mut ct = Conntrack::new(2);
        let udp = |port: u16| parse(&build::udp4(LAPTOP, port, SERVER, 53, 10)).expect("udp");
        let key = |port: u16| FlowKey::outbound(1, &udp(port)).expect("key");
        open(&mut ct, key(1), &udp(1), 0).expect("opens");
        open(&mut ct, key(2), &udp(2), 0).expect("opens");
        // A new flow when the table is full: the expired ones make room, and are not
        // lost to accounting.
        open(&mut ct, key(3), &udp(3), UDP_MS + 1).expect("room");
        // An expired flow replaced by a new one with its key, before any tick.
        open(&mut ct, key(3), &udp(3), 3 * UDP_MS).expect("again");
        let mut ended: Vec<(u16, u64)> = ct
            .expire(3 * UDP_MS)
            .iter()
            .map(|(k, f)| (k.laptop_port, f.first_ms))
            .collect();
        ended.sort();
        assert_eq!(ended, [(1, 0), (2, 0), (3, UDP_MS + 1)]);
        assert_eq!(ct.len(), 1);
        assert_eq!(ct.remove_session(1).len(), 1);
        assert!(ct.is_empty());
        assert!(ct.tables.is_none(), "an empty table is freed");
        open(&mut ct, key(4), &udp(4), 0).expect("opens again");
        assert_eq!(ct.len(), 1);
    }

    #[test]
    fn packets_that_open_no_flow_allocate_nothing() {
        let mut ct = Conntrack::new(16);
        let ack = parse(&build::tcp4(LAPTOP, 40000, SERVER, 5432, 0x10)).expect("ack");
        let udp = parse(&build::udp4(LAPTOP, 5000, SERVER, 53, 4)).expect("udp");
        let back = parse(&build::udp4(SERVER, 53, LAPTOP, 5000, 4)).expect("reply");
        let (ack_key, udp_key) = (
            FlowKey::outbound(1, &ack).expect("key"),
            FlowKey::outbound(1, &udp).expect("key"),
        );
        // Refused by the policy, a TCP segment that opens nothing, a reply to nothing.
        let denied = ct.outbound(
            udp_key,
            STAMP,
            || Err(Refused::TableFull),
            |_| label(),
            &udp,
            0,
        );
        assert_eq!(denied, Err(Refused::TableFull));
        assert_eq!(open(&mut ct, ack_key, &ack, 0), Err(Refused::NotAnOpening));
        assert!(!ct.inbound(&udp_key, &back, 0));
        assert!(
            ct.tables.is_none(),
            "an idle peer's table stays unallocated"
        );
        open(&mut ct, udp_key, &udp, 0).expect("opens");
        assert!(ct.tables.is_some());
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
            open(&mut ct, FlowKey::outbound(1, &ack).expect("key"), &ack, 0),
            Err(Refused::NotAnOpening)
        );
        let udp = parse(&build::udp4(LAPTOP, 5000, SERVER, 53, 4)).expect("udp");
        let key = FlowKey::outbound(1, &udp).expect("key");
        open(&mut ct, key, &udp, 0).expect("udp");
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
            open(&mut ct, FlowKey::outbound(1, &u).expect("key"), &u, 0).expect("room");
        }
        let u = parse(&build::udp4(LAPTOP, 2000, SERVER, 53, 0)).expect("udp");
        assert_eq!(
            open(&mut ct, FlowKey::outbound(2, &u).expect("key"), &u, 1),
            Err(Refused::TableFull)
        );
        assert_eq!(ct.refused_full, 1);
        // Expired flows make room.
        open(
            &mut ct,
            FlowKey::outbound(2, &u).expect("key"),
            &u,
            UDP_MS + 10,
        )
        .expect("room after expiry");
        assert_eq!(ct.len(), 1);
        let mut big = Conntrack::new(MAX_FLOWS);
        for port in 0..MAX_FLOWS_PER_SESSION as u16 {
            let u = parse(&build::udp4(LAPTOP, port, SERVER, 53, 0)).expect("udp");
            open(&mut big, FlowKey::outbound(3, &u).expect("key"), &u, 0).expect("room");
        }
        let u = parse(&build::udp4(LAPTOP, 60000, SERVER, 53, 0)).expect("udp");
        assert_eq!(
            open(&mut big, FlowKey::outbound(3, &u).expect("key"), &u, 0),
            Err(Refused::SessionFull)
        );
        assert!(
            open(&mut big, FlowKey::outbound(4, &u).expect("key"), &u, 0).is_ok(),
            "other sessions are not starved"
        );
        assert_eq!(big.remove_session(3).len(), MAX_FLOWS_PER_SESSION);
    }
}
