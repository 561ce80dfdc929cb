//! What a session did, for the journal: the flows it opened (first and last seen, bytes
//! and packets each way, the rule that allowed them) and what it was denied, aggregated.
//!
//! Both are bounded between two drains. Past [`MAX_ENDED_FLOWS`] ended flows, further
//! ones are merged into one aggregate (their detail is lost, their count and bytes are
//! not). Denials are aggregated per (reason, destination, protocol, port): a laptop
//! hammering a forbidden port yields one record with a count per drain, which is the
//! rate limit; past [`MAX_DENIAL_KEYS`] distinct keys, the rest are counted together.
//! Nothing a session did is silently dropped.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use super::conntrack::{Flow, FlowKey};
use super::enforce::Drop;
use super::packet::{self, Transport};

/// Ended flows kept per session between two drains, before merging.
pub const MAX_ENDED_FLOWS: usize = 1_024;
/// Distinct denial keys kept per session between two drains, before merging.
pub const MAX_DENIAL_KEYS: usize = 256;

// The records a session's accounting produces are the journal's own schema.
pub use ztgw_journal::event::{Denial, FlowRecord, Merged};

/// Everything accounted for one session since the previous drain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub session: String,
    pub flows: Vec<FlowRecord>,
    pub merged: Merged,
    pub denials: Vec<Denial>,
    /// Denials past the distinct-key bound, counted together.
    pub denials_merged: u64,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
            && self.merged.flows == 0
            && self.denials.is_empty()
            && self.denials_merged == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DenialKey {
    reason: Drop,
    dst: Option<IpAddr>,
    proto: u8,
    port: u16,
}

/// The accounting of one session between two drains.
#[derive(Debug, Default)]
pub struct Accounting {
    ended: Vec<FlowRecord>,
    merged: Merged,
    denials: HashMap<DenialKey, (u64, u64, u64)>,
    denials_merged: u64,
}

impl Accounting {
    /// Records flows that ended (expired, or removed with their session).
    pub fn flows_ended(&mut self, flows: impl IntoIterator<Item = (FlowKey, Flow)>) {
        for (key, flow) in flows {
            if self.ended.len() < MAX_ENDED_FLOWS {
                self.ended.push(FlowRecord {
                    proto: key.proto,
                    laptop_port: key.laptop_port,
                    remote: key.remote,
                    remote_port: key.remote_port,
                    rule: flow.label.name.clone(),
                    policy_sha256: flow.label.policy.clone(),
                    first_ms: flow.first_ms,
                    last_ms: flow.last_ms,
                    packets_out: flow.packets_out,
                    bytes_out: flow.bytes_out,
                    packets_in: flow.packets_in,
                    bytes_in: flow.bytes_in,
                });
            } else {
                let m = &mut self.merged;
                m.flows += 1;
                m.packets_out += flow.packets_out;
                m.bytes_out += flow.bytes_out;
                m.packets_in += flow.packets_in;
                m.bytes_in += flow.bytes_in;
            }
        }
    }

    /// Records a denied packet.
    pub fn denied(&mut self, reason: Drop, pkt: &[u8], now_ms: u64) {
        let (dst, proto, port) = match packet::parse(pkt) {
            Ok(h) => {
                let (proto, port) = match h.transport {
                    Transport::Tcp { dst_port, .. } => (6, dst_port),
                    Transport::Udp { dst_port, .. } => (17, dst_port),
                    Transport::Icmp { .. } => (1, 0),
                    _ => (0, 0),
                };
                (Some(h.dst), proto, port)
            }
            Err(_) => (None, 0, 0),
        };
        let key = DenialKey {
            reason,
            dst,
            proto,
            port,
        };
        let full = self.denials.len() >= MAX_DENIAL_KEYS;
        match self.denials.get_mut(&key) {
            Some((n, _, last)) => {
                *n += 1;
                *last = now_ms;
            }
            None if full => self.denials_merged += 1,
            None => {
                self.denials.insert(key, (1, now_ms, now_ms));
            }
        }
    }

    /// Takes what was accounted since the previous drain.
    pub fn drain(&mut self, session: &str) -> Report {
        let mut denials: Vec<Denial> = self
            .denials
            .drain()
            .map(|(k, (packets, first_ms, last_ms))| Denial {
                reason: k.reason.as_str().to_owned(),
                dst: k.dst,
                proto: k.proto,
                port: k.port,
                packets,
                first_ms,
                last_ms,
            })
            .collect();
        denials.sort_by(|a, b| {
            (a.first_ms, &a.reason, a.dst, a.proto, a.port)
                .cmp(&(b.first_ms, &b.reason, b.dst, b.proto, b.port))
        });
        Report {
            session: session.to_owned(),
            flows: std::mem::take(&mut self.ended),
            merged: std::mem::take(&mut self.merged),
            denials,
            denials_merged: std::mem::take(&mut self.denials_merged),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use ztgw_config::policy::DenyReason;

    use super::super::conntrack::State;
    use super::super::packet::build;
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
    const DB: Ipv4Addr = Ipv4Addr::new(10, 20, 1, 5);

    #[test]
    fn denials_are_aggregated_per_kind_and_bounded() {
        let mut acc = Accounting::default();
        for i in 0..1000 {
            acc.denied(
                Drop::Policy(DenyReason::NoRule),
                &build::tcp4(A, 40000 + i, DB, 22, 0x02),
                u64::from(i),
            );
        }
        acc.denied(Drop::Spoofed, &build::udp4(DB, 1, DB, 53, 8), 5);
        acc.denied(Drop::Malformed, &[0x45, 0], 6);
        let r = acc.drain("s1");
        assert_eq!(r.denials.len(), 3, "{:?}", r.denials);
        let ssh = &r.denials[0];
        assert_eq!(
            (
                ssh.reason.as_str(),
                ssh.dst,
                ssh.proto,
                ssh.port,
                ssh.packets
            ),
            ("no-rule", Some(DB.into()), 6, 22, 1000)
        );
        assert_eq!((ssh.first_ms, ssh.last_ms), (0, 999));
        assert_eq!(r.denials[2].dst, None);
        assert!(acc.drain("s1").is_empty(), "a drain empties");

        // Past the bound of distinct kinds, the rest is counted, not dropped.
        for port in 0..(MAX_DENIAL_KEYS as u16 + 10) {
            acc.denied(
                Drop::Policy(DenyReason::NoRule),
                &build::tcp4(A, 1, DB, port, 0x02),
                0,
            );
        }
        let r = acc.drain("s1");
        assert_eq!(r.denials.len(), MAX_DENIAL_KEYS);
        assert_eq!(r.denials_merged, 10);
    }

    #[test]
    fn ended_flows_past_the_bound_are_merged_with_their_bytes() {
        let mut acc = Accounting::default();
        let flow = |i: u16| {
            (
                FlowKey {
                    session: 1,
                    proto: 17,
                    laptop: A.into(),
                    laptop_port: i,
                    remote: DB.into(),
                    remote_port: 53,
                },
                Flow {
                    rule: super::super::fixtures::rule(DB, ztgw_config::policy::Proto::Udp),
                    label: std::sync::Arc::new(ztgw_config::policy::RuleLabel {
                        name: "dns".into(),
                        policy: "p1".into(),
                    }),
                    state: State::Udp { replied: true },
                    first_ms: 1,
                    last_ms: 2,
                    packets_out: 3,
                    bytes_out: 300,
                    packets_in: 4,
                    bytes_in: 400,
                },
            )
        };
        acc.flows_ended((0..(MAX_ENDED_FLOWS as u16 + 5)).map(flow));
        let r = acc.drain("s1");
        assert_eq!(r.flows.len(), MAX_ENDED_FLOWS);
        assert_eq!(r.flows[0].rule, "dns");
        assert_eq!(r.flows[0].policy_sha256, "p1");
        assert_eq!(
            r.merged,
            Merged {
                flows: 5,
                packets_out: 15,
                bytes_out: 1500,
                packets_in: 20,
                bytes_in: 2000
            }
        );
    }
}
