//! The compiled policy: what the data plane asks about every packet.
//!
//! [`CompiledPolicy::decide`] answers `(role, destination address, protocol, port)` with
//! the rule that allows it or the reason it is denied. Default deny. A lookup is a binary
//! search over the role's address boundaries and a scan of the few services open on that
//! address range: no allocation, no lock, no string. Schedules are not consulted here:
//! they are evaluated at admission and at window boundaries, not per packet.
//!
//! [`LinearPolicy`] is the same policy as a plain list scanned in order; tests and the
//! benchmark use it as the reference the compiled structure must agree with.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Network, Policy, Proto, Service};

/// A role's index in a [`CompiledPolicy`]; resolved once per session, not per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleId(u32);

impl RoleId {
    /// No role: every decision for it is a denial (a session whose role a reload removed).
    pub const NONE: RoleId = RoleId(u32::MAX);
}

/// A rule: one resource of one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(u32);

/// What a rule is, for journals and explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub role: String,
    pub resource: String,
}

/// The answer for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow(RuleId),
    Deny(DenyReason),
}

/// Why a packet is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// No resource of the role opens this destination.
    NoRule,
    /// The role is not in this policy (it was removed by a reload).
    UnknownRole,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoRule => "no-rule",
            Self::UnknownRole => "unknown-role",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortRule {
    proto: Proto,
    first: u16,
    last: u16,
    rule: RuleId,
}

impl PortRule {
    #[inline]
    fn matches(&self, proto: Proto, port: u16) -> bool {
        self.proto == proto && (proto == Proto::Icmp || (self.first <= port && port <= self.last))
    }
}

/// Address-ordered segments of one family. Segment `i` covers `[starts[i], starts[i+1])`
/// and opens `ports[spans[i].0 .. spans[i].0 + spans[i].1]`, in rule order.
#[derive(Debug, Clone, Default)]
struct Segments<A> {
    starts: Vec<A>,
    spans: Vec<(u32, u32)>,
    ports: Vec<PortRule>,
}

trait Address: Copy + Ord + Default {
    fn next(self) -> Option<Self>;
}

impl Address for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Address for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl<A: Address> Segments<A> {
    fn build(atoms: &[(A, A, PortRule)]) -> Self {
        let mut bounds: Vec<A> = vec![A::default()];
        for (lo, hi, _) in atoms {
            bounds.push(*lo);
            if let Some(n) = hi.next() {
                bounds.push(n);
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        let mut out = Self::default();
        for &start in &bounds {
            let open: Vec<PortRule> = atoms
                .iter()
                .filter(|(lo, hi, _)| *lo <= start && start <= *hi)
                .map(|(_, _, p)| *p)
                .collect();
            // Adjacent segments opening the same services are one segment.
            if let Some(&(off, len)) = out.spans.last() {
                let prev = &out.ports[off as usize..(off + len) as usize];
                if prev == open.as_slice() {
                    continue;
                }
            }
            let off = out.ports.len() as u32;
            out.ports.extend_from_slice(&open);
            out.starts.push(start);
            out.spans.push((off, open.len() as u32));
        }
        out
    }

    #[inline]
    fn lookup(&self, addr: A, proto: Proto, port: u16) -> Option<RuleId> {
        let i = self.starts.partition_point(|&s| s <= addr).checked_sub(1)?;
        let &(off, len) = self.spans.get(i)?;
        self.ports
            .get(off as usize..(off + len) as usize)?
            .iter()
            .find(|p| p.matches(proto, port))
            .map(|p| p.rule)
    }
}

#[derive(Debug, Clone, Default)]
struct RoleTable {
    v4: Segments<u32>,
    v6: Segments<u128>,
}

/// A policy compiled for per-packet decisions.
#[derive(Debug, Clone, Default)]
pub struct CompiledPolicy {
    roles: Vec<RoleTable>,
    role_names: Vec<String>,
    role_ids: BTreeMap<String, RoleId>,
    rules: Vec<RuleInfo>,
    /// Each rule's name and the policy it came from, shared by the flows it allows.
    labels: Vec<Arc<RuleLabel>>,
    /// Which compilation this is ([`CompiledPolicy::generation`]).
    generation: u64,
}

/// The next compilation's generation; 0 is the empty policy's, which allows nothing.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// A rule as a flow remembers it: the name `role/resource` and the hash of the policy
/// it came from, fixed when the flow is created whatever is reloaded later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLabel {
    pub name: String,
    /// The SHA-256 of the policy file (empty until [`CompiledPolicy::set_source`]).
    pub policy: String,
}

impl CompiledPolicy {
    pub fn compile(policy: &Policy) -> Self {
        let mut out = Self::default();
        for (index, (role_name, atoms)) in
            rule_atoms(policy, &mut out.rules).into_iter().enumerate()
        {
            let mut v4 = Vec::new();
            let mut v6 = Vec::new();
            for (net, svc, rule) in atoms {
                let p = PortRule {
                    proto: svc.proto,
                    first: svc.first_port,
                    last: svc.last_port,
                    rule,
                };
                if let Some((lo, hi)) = net.range_v4() {
                    v4.push((lo, hi, p));
                }
                if let Some((lo, hi)) = net.range_v6() {
                    v6.push((lo, hi, p));
                }
            }
            out.roles.push(RoleTable {
                v4: Segments::build(&v4),
                v6: Segments::build(&v6),
            });
            out.role_ids.insert(role_name.clone(), RoleId(index as u32));
            out.role_names.push(role_name);
        }
        out.labels = label_rules(&out.rules, "");
        out.generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        out
    }

    /// Which compilation this is, unique in the process (a clone shares it, and decides
    /// alike): a decision remembered with the generation it was made under is this
    /// policy's decision while the generation is the one in force.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The id of the role called `name`.
    pub fn role(&self, name: &str) -> Option<RoleId> {
        self.role_ids.get(name).copied()
    }

    pub fn role_name(&self, id: RoleId) -> Option<&str> {
        self.role_names.get(id.0 as usize).map(String::as_str)
    }

    pub fn rule(&self, id: RuleId) -> Option<&RuleInfo> {
        self.rules.get(id.0 as usize)
    }

    /// Rule `id`'s label, shared (a reference count, no allocation).
    pub fn label(&self, id: RuleId) -> Option<&Arc<RuleLabel>> {
        self.labels.get(id.0 as usize)
    }

    /// Names the policy file the rules came from (its SHA-256) in their labels.
    pub fn set_source(&mut self, sha256: &str) {
        self.labels = label_rules(&self.rules, sha256);
    }

    /// How many rules (role × resource) the policy has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether `role` may send to `dst` with `proto` on `port` (ignored for ICMP).
    #[inline]
    pub fn decide(&self, role: RoleId, dst: IpAddr, proto: Proto, port: u16) -> Decision {
        let Some(table) = self.roles.get(role.0 as usize) else {
            return Decision::Deny(DenyReason::UnknownRole);
        };
        let found = match dst {
            IpAddr::V4(a) => table.v4.lookup(u32::from(a), proto, port),
            IpAddr::V6(a) => table.v6.lookup(u128::from(a), proto, port),
        };
        match found {
            Some(rule) => Decision::Allow(rule),
            None => Decision::Deny(DenyReason::NoRule),
        }
    }
}

/// The reference: each role's rules as a list, scanned in order.
#[derive(Debug, Clone, Default)]
pub struct LinearPolicy {
    roles: Vec<Vec<Atom>>,
    role_ids: BTreeMap<String, RoleId>,
}

impl LinearPolicy {
    pub fn compile(policy: &Policy) -> Self {
        let mut rules = Vec::new();
        let mut out = Self::default();
        for (index, (name, atoms)) in rule_atoms(policy, &mut rules).into_iter().enumerate() {
            out.role_ids.insert(name, RoleId(index as u32));
            out.roles.push(atoms);
        }
        out
    }

    pub fn role(&self, name: &str) -> Option<RoleId> {
        self.role_ids.get(name).copied()
    }

    pub fn decide(&self, role: RoleId, dst: IpAddr, proto: Proto, port: u16) -> Decision {
        let Some(atoms) = self.roles.get(role.0 as usize) else {
            return Decision::Deny(DenyReason::UnknownRole);
        };
        atoms
            .iter()
            .find(|(net, svc, _)| net.contains(dst) && svc.matches(proto, port))
            .map_or(Decision::Deny(DenyReason::NoRule), |(_, _, rule)| {
                Decision::Allow(*rule)
            })
    }
}

fn label_rules(rules: &[RuleInfo], sha256: &str) -> Vec<Arc<RuleLabel>> {
    rules
        .iter()
        .map(|r| {
            Arc::new(RuleLabel {
                name: format!("{}/{}", r.role, r.resource),
                policy: sha256.to_owned(),
            })
        })
        .collect()
}

/// One network and one service of a rule.
type Atom = (Network, Service, RuleId);

/// Every role's (network, service, rule) atoms in rule order: the role's resources as
/// listed, each resource's hosts, each host's services. Rules are numbered into `rules`.
fn rule_atoms(policy: &Policy, rules: &mut Vec<RuleInfo>) -> Vec<(String, Vec<Atom>)> {
    let mut out = Vec::with_capacity(policy.roles.len());
    for (role_name, role) in &policy.roles {
        let mut atoms = Vec::new();
        for resource_name in &role.resources {
            let rule = RuleId(rules.len() as u32);
            rules.push(RuleInfo {
                role: role_name.clone(),
                resource: resource_name.clone(),
            });
            let Some(resource) = policy.resources.get(resource_name) else {
                continue;
            };
            for net in &resource.hosts {
                for svc in &resource.services {
                    atoms.push((*net, *svc, rule));
                }
            }
        }
        out.push((role_name.clone(), atoms));
    }
    out
}
