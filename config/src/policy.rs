//! The access policy (`policy.toml`): who may reach what, when, and from which device
//! state (G2, G4, G6, G18).
//!
//! A policy has `[settings]`, `[resources.NAME]` (hosts and services), `[schedules.NAME]`
//! (telework hours), `[posture.NAME]` (device-state profiles, interpreted by the posture
//! crate), `[roles.NAME]` (resources, schedule, posture profile, optional quarantine
//! role), `[employees.ID]` (per-employee schedules) and `[[test]]` cases.
//! [`Policy::parse`] reports every mistake of a file at once, each as
//! `FILE:LINE:COLUMN: message`, plus warnings for redundant rules. [`compile`] turns a
//! policy into the structure the data plane consults per packet.

pub mod cases;
pub mod compile;
pub mod diff;
pub mod explain;
pub mod network;
mod parse;
pub mod schedule;
pub mod service;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use jiff::Timestamp;

use crate::duration::HumanDuration;
use crate::location::{ConfigError, Diagnostic, read_config_file};
pub use compile::{CompiledPolicy, Decision, DenyReason, RoleId, RuleId, RuleLabel};
pub use network::Network;
pub use parse::parse_domain;
pub use schedule::{Schedule, Window};
pub use service::{Proto, Service};

/// Largest policy file accepted.
pub const MAX_POLICY_LEN: u64 = 4 * 1024 * 1024;
/// The time zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "Africa/Casablanca";

/// A checked policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub settings: PolicySettings,
    pub resources: BTreeMap<String, Resource>,
    pub schedules: BTreeMap<String, Schedule>,
    /// Posture profiles, checked.
    pub posture: BTreeMap<String, ztgw_posture::profile::Profile>,
    pub roles: BTreeMap<String, Role>,
    pub employees: BTreeMap<String, EmployeeRule>,
    pub tests: Vec<TestCase>,
    /// `[dns]`: the internal resolvers every role gets unless it says otherwise.
    pub dns: Option<Dns>,
}

/// Internal name resolution: the resolvers, and the only domains sent to them (every
/// other name resolves as the laptop's own resolver says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    pub servers: Vec<IpAddr>,
    /// Lower case, without a leading or trailing dot.
    pub domains: Vec<String>,
}

impl std::fmt::Display for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<String> = self.servers.iter().map(IpAddr::to_string).collect();
        write!(f, "{} for {}", servers.join(", "), self.domains.join(", "))
    }
}

/// A role's `dns`: the policy's `[dns]`, none (`dns = false`), or its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoleDns {
    #[default]
    Inherit,
    Off,
    Own(Dns),
}

/// `[settings]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySettings {
    /// A session ends after this long even inside its window.
    pub max_session: HumanDuration,
    /// How often the agent re-submits posture.
    pub posture_recheck: HumanDuration,
    /// A session without traffic for this long ends (G9).
    pub idle_timeout: HumanDuration,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            max_session: HumanDuration::from_secs(10 * 3600),
            posture_recheck: HumanDuration::from_secs(5 * 60),
            idle_timeout: HumanDuration::from_secs(30 * 60),
        }
    }
}

/// `[resources.NAME]`: internal hosts and the services opened on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub hosts: Vec<Network>,
    pub services: Vec<Service>,
    pub description: Option<String>,
}

/// `[roles.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Resource names, in the order written (the first that matches is the rule reported).
    pub resources: Vec<String>,
    pub schedule: String,
    pub posture: String,
    /// The role a non-compliant device is moved to instead of being cut off.
    pub quarantine: Option<String>,
    /// A second factor (TOTP) is required at admission, and again after this long
    /// within a session (G8).
    pub second_factor: Option<HumanDuration>,
    pub description: Option<String>,
    /// Internal name resolution for the role's sessions.
    pub dns: RoleDns,
}

/// `[employees.ID]`: what differs for one employee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployeeRule {
    pub schedule: Option<String>,
}

/// Whether a test expects the destination to be reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Allow,
    Deny,
}

/// A `[[test]]` case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// Where the case is written (1-based line).
    pub line: usize,
    pub role: String,
    pub employee: Option<String>,
    pub destination: Destination,
    pub at: Timestamp,
    /// `at` as the policy writes it (with its offset), to show it back.
    pub at_text: String,
    pub expect: Expect,
    /// The resource expected to allow it.
    pub rule: Option<String>,
}

/// `IP:PORT/PROTO` or `IP/icmp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub ip: IpAddr,
    pub proto: Proto,
    pub port: u16,
}

impl Destination {
    /// Parses `10.20.1.5:5432/tcp`, `[fd00::1]:443/tcp` or `10.20.0.1/icmp`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, proto) = s.rsplit_once('/').ok_or_else(|| {
            format!("{s:?} is not a destination: write IP:PORT/tcp, IP:PORT/udp or IP/icmp")
        })?;
        let proto = Proto::parse(proto)
            .ok_or_else(|| format!("{s:?}: unknown protocol {proto:?} (tcp, udp or icmp)"))?;
        if proto == Proto::Icmp {
            let ip = addr
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
            return Ok(Self { ip, proto, port: 0 });
        }
        let sock: std::net::SocketAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: write IP:PORT (IPv6 as [ADDR]:PORT)"))?;
        if sock.port() == 0 {
            return Err(format!("{s:?}: port 0 is not a port"));
        }
        Ok(Self {
            ip: sock.ip(),
            proto,
            port: sock.port(),
        })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.proto, self.ip) {
            (Proto::Icmp, ip) => write!(f, "{ip}/icmp"),
            (p, IpAddr::V6(ip)) => write!(f, "[{ip}]:{}/{p}", self.port),
            (p, ip) => write!(f, "{ip}:{}/{p}", self.port),
        }
    }
}

/// A policy that parsed, with what deserves a second look.
#[derive(Debug, Clone)]
pub struct Checked {
    pub policy: Policy,
    pub warnings: Vec<Diagnostic>,
}

impl Policy {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Checked, ConfigError> {
        let text = read_config_file(path, MAX_POLICY_LEN)?;
        Self::parse(path, &text)
    }

    /// Checks `text`, reporting every mistake against `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Checked, ConfigError> {
        parse::parse(path, text)
    }

    pub fn has_role(&self, name: &str) -> bool {
        self.roles.contains_key(name)
    }

    /// The internal resolvers `role`'s sessions get, if any.
    pub fn dns_for(&self, role: &str) -> Option<&Dns> {
        match &self.roles.get(role)?.dns {
            RoleDns::Inherit => self.dns.as_ref(),
            RoleDns::Off => None,
            RoleDns::Own(d) => Some(d),
        }
    }

    pub fn has_schedule(&self, name: &str) -> bool {
        self.schedules.contains_key(name)
    }

    /// The schedule that governs `role` for `employee`: the employee's own when the
    /// policy gives one, else the role's.
    pub fn schedule_for(&self, role: &str, employee: Option<&str>) -> Option<(&str, &Schedule)> {
        let name = employee
            .and_then(|e| self.employees.get(e))
            .and_then(|e| e.schedule.as_deref())
            .or_else(|| self.roles.get(role).map(|r| r.schedule.as_str()))?;
        self.schedules
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
    }
}
