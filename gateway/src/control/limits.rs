//! Per-source limits, checked before the work they protect: rates of TLS handshakes,
//! enrolments and admissions, and the connections a source may hold without a client
//! certificate. A source is an IPv4 address or an IPv6 /64 (one subscriber's network:
//! every address of it is the same source).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use ztgw_config::settings::ControlSection;
pub use ztgw_dataplane::source::source_of;

/// The keyed limiters of the control plane. Their key stores grow with the number of
/// sources seen; [`SourceLimits::forget_idle`] (called every few seconds) trims them.
#[derive(Debug)]
pub struct SourceLimits {
    handshakes: DefaultKeyedRateLimiter<IpAddr>,
    enrolments: DefaultKeyedRateLimiter<IpAddr>,
    admissions: DefaultKeyedRateLimiter<IpAddr>,
}

impl SourceLimits {
    pub fn new(control: &ControlSection) -> Self {
        let nz = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            handshakes: RateLimiter::keyed(
                Quota::per_second(nz(control.handshakes_per_second_per_source))
                    .allow_burst(nz(control.handshake_burst)),
            ),
            enrolments: RateLimiter::keyed(
                Quota::per_minute(nz(control.enrolments_per_minute_per_source))
                    .allow_burst(nz(control.enrolment_burst)),
            ),
            admissions: RateLimiter::keyed(
                Quota::per_second(nz(control.admissions_per_second_per_source)).allow_burst(nz(
                    control.admissions_per_second_per_source.saturating_mul(2),
                )),
            ),
        }
    }

    /// Whether `source` may start another TLS handshake now.
    pub fn allow_handshake(&self, source: IpAddr) -> bool {
        self.handshakes.check_key(&source_of(source)).is_ok()
    }

    /// Whether `source` may make another enrolment attempt now.
    pub fn allow_enrolment(&self, source: IpAddr) -> bool {
        self.enrolments.check_key(&source_of(source)).is_ok()
    }

    /// Whether `source` may make another admission request now.
    pub fn allow_admission(&self, source: IpAddr) -> bool {
        self.admissions.check_key(&source_of(source)).is_ok()
    }

    /// Drops the state of sources that have been quiet long enough to be back at full burst.
    pub fn forget_idle(&self) {
        self.handshakes.retain_recent();
        self.enrolments.retain_recent();
        self.admissions.retain_recent();
        self.admissions.shrink_to_fit();
        self.handshakes.shrink_to_fit();
        self.enrolments.shrink_to_fit();
    }

    /// How many sources the limiters currently remember.
    pub fn tracked_sources(&self) -> usize {
        self.handshakes.len() + self.enrolments.len()
    }
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// Every connection is taken, or all but those kept for certificate holders.
    Full,
    /// This source holds as many connections without a certificate as it may.
    SourceFull,
}

/// The control plane's connections: at most `max_connections` in all. A source (see
/// [`source_of`]) may hold `unauthenticated_connections_per_source` connections that
/// have not shown a client certificate (still in their TLS handshake, or without one);
/// connections without a certificate past the handshake are at most
/// `max_connections - reserved_connections` in all, so those that show one (devices,
/// auditors) keep the reserved ones whatever unauthenticated callers do.
#[derive(Debug)]
pub struct Connections {
    all: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    per_source_max: usize,
}

impl Connections {
    pub fn new(control: &ControlSection) -> Arc<Self> {
        Arc::new(Self {
            all: Arc::new(Semaphore::new(control.max_connections)),
            unauthenticated: Arc::new(Semaphore::new(
                control
                    .max_connections
                    .saturating_sub(control.reserved_connections)
                    .max(1),
            )),
            per_source: Mutex::new(HashMap::new()),
            per_source_max: control.unauthenticated_connections_per_source.max(1),
        })
    }

    /// A new connection from `peer`, before its TLS handshake.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionPermit, ConnectionRefusal> {
        let source = source_of(peer);
        {
            let mut map = self.per_source.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(source).or_insert(0);
            if *n >= self.per_source_max {
                return Err(ConnectionRefusal::SourceFull);
            }
            *n += 1;
        }
        let slot = SourceSlot {
            table: self.clone(),
            source,
        };
        let all = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| ConnectionRefusal::Full)?;
        Ok(ConnectionPermit {
            table: self.clone(),
            _all: all,
            slot: Some(slot),
            unauthenticated: None,
        })
    }

    /// Connections without a certificate that `peer`'s source holds now.
    pub fn unauthenticated_from(&self, peer: IpAddr) -> usize {
        let map = self.per_source.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&source_of(peer)).copied().unwrap_or(0)
    }

    /// Connections open now.
    pub fn open(&self, max: usize) -> usize {
        max.saturating_sub(self.all.available_permits())
    }
}

/// One connection's place; dropped when the connection ends.
#[derive(Debug)]
pub struct ConnectionPermit {
    table: Arc<Connections>,
    _all: OwnedSemaphorePermit,
    slot: Option<SourceSlot>,
    unauthenticated: Option<OwnedSemaphorePermit>,
}

impl ConnectionPermit {
    /// The connection presented a client certificate that TLS verified: it no longer
    /// counts against its source.
    pub fn authenticated(&mut self) {
        self.slot = None;
    }

    /// The connection finished its handshake without a certificate: it takes a place
    /// among the unauthenticated ones, or is refused when they are all taken.
    pub fn unauthenticated(&mut self) -> Result<(), ConnectionRefusal> {
        let permit = self
            .table
            .unauthenticated
            .clone()
            .try_acquire_owned()
            .map_err(|_| ConnectionRefusal::Full)?;
        self.unauthenticated = Some(permit);
        Ok(())
    }
}

#[derive(Debug)]
struct SourceSlot {
    table: Arc<Connections>,
    source: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut map = self
            .table
            .per_source
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn control(max: usize, reserved: usize, per_source: usize) -> ControlSection {
        let mut s = ztgw_config::settings::Settings::parse(
            std::path::Path::new("gateway.toml"),
            "[gateway]\nnames=[\"gw\"]\n[control]\nlisten=\"127.0.0.1:0\"\nadvertise=\"gw:1\"\n[wireguard]\nendpoint=\"gw:2\"\n",
        )
        .expect("settings")
        .control;
        s.max_connections = max;
        s.reserved_connections = reserved;
        s.unauthenticated_connections_per_source = per_source;
        s
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(a), source_of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            source_of(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn admissions_are_limited_per_source_as_shipped() {
        // The shipped rate: 50 a second, a burst of 100 (nonce, admission and re-check
        // requests all count).
        let limits = SourceLimits::new(&control(1024, 256, 32));
        let office: IpAddr = "203.0.113.7".parse().expect("ip");
        let allowed = (0..150).filter(|_| limits.allow_admission(office)).count();
        assert!(
            (100..=102).contains(&allowed),
            "a burst of 100 (and what a second refills meanwhile): {allowed}"
        );
        assert!(!limits.allow_admission(office));
        assert!(
            limits.allow_admission("203.0.113.8".parse().expect("ip")),
            "another source has its own budget"
        );
    }

    #[test]
    fn rates_are_per_64() {
        let mut c = control(10, 1, 5);
        c.handshakes_per_second_per_source = 1;
        c.handshake_burst = 2;
        let limits = SourceLimits::new(&c);
        let allowed = (0..20u16)
            .filter(|i| {
                limits.allow_handshake(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, *i, 0, 0, 1)))
            })
            .count();
        assert_eq!(allowed, 2, "twenty addresses of one /64 share one budget");
    }

    #[test]
    fn one_source_cannot_take_the_connections_and_certificate_holders_keep_theirs() {
        let table = Connections::new(&control(10, 4, 3));
        let attacker: IpAddr = "2001:db8::1".parse().expect("ip");
        let mut held = Vec::new();
        for i in 0..3u16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, i, 0, 0, 9));
            let mut p = table.admit(ip).expect("within the source's share");
            p.unauthenticated().expect("room");
            held.push(p);
        }
        assert_eq!(
            table.admit(attacker).err(),
            Some(ConnectionRefusal::SourceFull)
        );
        // Other sources fill what unauthenticated connections may hold (6 of 10)...
        for i in 0..3u8 {
            let mut p = table.admit(IpAddr::from([192, 0, 2, i])).expect("room");
            p.unauthenticated().expect("room");
            held.push(p);
        }
        let mut late = table
            .admit(IpAddr::from([192, 0, 2, 99]))
            .expect("handshake");
        assert_eq!(late.unauthenticated().err(), Some(ConnectionRefusal::Full));
        drop(late);
        // ...and devices still get in, up to the total.
        let mut devices = Vec::new();
        for i in 0..4u8 {
            let mut p = table
                .admit(IpAddr::from([198, 51, 100, i]))
                .expect("reserved");
            p.authenticated();
            devices.push(p);
        }
        assert_eq!(
            table.admit(IpAddr::from([198, 51, 100, 9])).err(),
            Some(ConnectionRefusal::Full)
        );
        assert_eq!(
            table.unauthenticated_from(IpAddr::from([198, 51, 100, 1])),
            0
        );
        drop(held);
        assert_eq!(table.unauthenticated_from(attacker), 0, "released on drop");
        assert_eq!(table.open(10), 4, "the devices' connections are left");
    }
}
