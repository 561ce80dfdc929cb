//! The data plane's counters: packets and bytes each way, handshakes, cookie replies and
//! drops by reason. Lock-free; read by `/metrics` and by tests.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use ztgw_config::policy::DenyReason;

use super::enforce::Drop;

/// Why the data plane dropped a datagram or a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// An inner packet refused by enforcement.
    Enforce(Drop),
    /// Not a WireGuard message, or a bad mac1.
    InvalidMessage,
    /// A handshake initiation from a source past its per-source limit.
    SourceRateLimited,
    /// Under load, an initiation without a valid cookie from a source that was sent
    /// cookie replies past its per-source limit.
    CookieRateLimited,
    /// A handshake initiation whose static key is no installed peer.
    UnknownKey,
    /// A response, cookie or data message for no installed peer.
    UnknownIndex,
    /// Rejected by the peer's tunnel (decryption, replay, stale handshake...).
    Tunnel,
    /// A packet from the internal network for an address with no peer.
    NoPeer,
    /// A packet for a peer that has not completed a handshake yet.
    NoEndpoint,
    /// A packet that was in flight when its peer was removed.
    Removed,
    /// The kernel refused a write.
    WriteFailed,
}

impl DropReason {
    /// Every reason, in the order of the counters.
    pub const ALL: [DropReason; 20] = [
        Self::Enforce(Drop::Malformed),
        Self::Enforce(Drop::Unsupported),
        Self::Enforce(Drop::Spoofed),
        Self::Enforce(Drop::ToAnotherLaptop),
        Self::Enforce(Drop::Policy(DenyReason::NoRule)),
        Self::Enforce(Drop::Policy(DenyReason::UnknownRole)),
        Self::Enforce(Drop::NotAFlow),
        Self::Enforce(Drop::TableFull),
        Self::Enforce(Drop::NotAnOpening),
        Self::Enforce(Drop::IcmpType),
        Self::InvalidMessage,
        Self::SourceRateLimited,
        Self::CookieRateLimited,
        Self::UnknownKey,
        Self::UnknownIndex,
        Self::Tunnel,
        Self::NoPeer,
        Self::NoEndpoint,
        Self::Removed,
        Self::WriteFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce(d) => d.as_str(),
            Self::InvalidMessage => "invalid-message",
            Self::SourceRateLimited => "source-rate-limited",
            Self::CookieRateLimited => "cookie-rate-limited",
            Self::UnknownKey => "unknown-key",
            Self::UnknownIndex => "unknown-index",
            Self::Tunnel => "tunnel-error",
            Self::NoPeer => "no-peer",
            Self::NoEndpoint => "no-endpoint",
            Self::Removed => "peer-removed",
            Self::WriteFailed => "write-failed",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The counters of one worker ([`PerWorker`] holds one set per worker).
#[derive(Debug, Default)]
pub struct Counters {
    pub datagrams_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    /// Inner packets decrypted and forwarded to the internal network, and their bytes.
    pub forwarded_in: AtomicU64,
    pub forwarded_in_bytes: AtomicU64,
    /// Inner packets from the internal network encrypted towards laptops.
    pub forwarded_out: AtomicU64,
    pub forwarded_out_bytes: AtomicU64,
    pub handshake_initiations: AtomicU64,
    /// Handshake responses sent: the gateway's half of a handshake is done (with a wrong
    /// pre-shared key, the laptop still fails to read it).
    pub handshakes_completed: AtomicU64,
    pub cookie_replies: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
}

/// A copy of the counters at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub forwarded_in: u64,
    pub forwarded_in_bytes: u64,
    pub forwarded_out: u64,
    pub forwarded_out_bytes: u64,
    pub handshake_initiations: u64,
    pub handshakes_completed: u64,
    pub cookie_replies: u64,
    /// Drops by reason (every reason, zeros included).
    pub drops: Vec<(&'static str, u64)>,
}

impl Snapshot {
    pub fn drops(&self, reason: DropReason) -> u64 {
        let name = reason.as_str();
        self.drops
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }
}

/// One [`Counters`] for each worker (and the timers), each on cache lines of its own: a
/// datagram is counted by the worker that handles it, on lines no other core writes
/// (shared counters bounced between the cores at every packet). A snapshot sums them.
#[derive(Debug)]
pub struct PerWorker {
    slots: Box<[Slot]>,
}

/// Aligned to two cache lines (adjacent-line prefetching pairs them).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(Counters);

impl PerWorker {
    /// `n` sets of counters (at least one).
    pub fn new(n: usize) -> Self {
        Self {
            slots: (0..n.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    /// The counters of worker `i` (taken modulo the number of sets).
    pub fn get(&self, i: usize) -> &Counters {
        &self.slots[i % self.slots.len()].0
    }

    /// Every worker's counters, summed.
    pub fn snapshot(&self) -> Snapshot {
        let mut total = Snapshot {
            drops: DropReason::ALL.iter().map(|r| (r.as_str(), 0)).collect(),
            ..Snapshot::default()
        };
        for slot in self.slots.iter() {
            let s = slot.0.snapshot();
            total.datagrams_in += s.datagrams_in;
            total.datagrams_out += s.datagrams_out;
            total.forwarded_in += s.forwarded_in;
            total.forwarded_in_bytes += s.forwarded_in_bytes;
            total.forwarded_out += s.forwarded_out;
            total.forwarded_out_bytes += s.forwarded_out_bytes;
            total.handshake_initiations += s.handshake_initiations;
            total.handshakes_completed += s.handshakes_completed;
            total.cookie_replies += s.cookie_replies;
            for (t, (_, n)) in total.drops.iter_mut().zip(&s.drops) {
                t.1 += n;
            }
        }
        total
    }
}

impl Counters {
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            datagrams_in: get(&self.datagrams_in),
            datagrams_out: get(&self.datagrams_out),
            forwarded_in: get(&self.forwarded_in),
            forwarded_in_bytes: get(&self.forwarded_in_bytes),
            forwarded_out: get(&self.forwarded_out),
            forwarded_out_bytes: get(&self.forwarded_out_bytes),
            handshake_initiations: get(&self.handshake_initiations),
            handshakes_completed: get(&self.handshakes_completed),
            cookie_replies: get(&self.cookie_replies),
            drops: DropReason::ALL
                .iter()
                .zip(&self.drops)
                .map(|(r, c)| (r.as_str(), get(c)))
                .collect(),
        }
    }
}

pub(super) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_name() {
        let c = Counters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                c.drop(*r);
            }
        }
        let s = c.snapshot();
        let mut names: Vec<_> = s.drops.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len(), "names are distinct");
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(s.drops(*r), i as u64 + 1, "{}", r.as_str());
        }
    }

    #[test]
    fn a_snapshot_sums_every_worker() {
        let w = PerWorker::new(3);
        for i in 0..5 {
            add(&w.get(i).forwarded_in, 10);
            w.get(i).drop(DropReason::NoPeer);
        }
        add(&w.get(2).cookie_replies, 1);
        let s = w.snapshot();
        assert_eq!(s.forwarded_in, 50);
        assert_eq!(s.cookie_replies, 1);
        assert_eq!(s.drops(DropReason::NoPeer), 5);
        assert_eq!(s.drops.len(), DropReason::ALL.len());
        assert_eq!(std::mem::align_of::<Slot>(), 128);
    }
}
