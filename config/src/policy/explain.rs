//! Why a destination is reachable or not (`ztgw policy explain`, test failures): the
//! decision, the rule, the schedule window, and the reason in words (G18).

use std::fmt::Write as _;

use jiff::Timestamp;

use super::compile::{CompiledPolicy, Decision, DenyReason};
use super::{Destination, Policy, Schedule, Window};

/// Whether the schedule allows telework at the instant asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleState {
    Open(Window),
    Closed { next_start: Option<Timestamp> },
}

/// The overall answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow { resource: String },
    Deny(Denial),
}

/// Why the answer is no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    UnknownRole,
    OutsideSchedule,
    NoRule,
}

impl Denial {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UnknownRole => "unknown-role",
            Self::OutsideSchedule => "outside-schedule",
            Self::NoRule => "no-rule",
        }
    }
}

/// Everything `explain` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub role: String,
    pub employee: Option<String>,
    pub destination: Destination,
    pub at: Timestamp,
    /// The schedule that applies and its state at `at`.
    pub schedule: Option<(String, ScheduleState)>,
    /// The resource that opens the destination, whatever the time.
    pub network_rule: Option<String>,
    pub verdict: Verdict,
    /// The sentence that says why.
    pub reason: String,
}

impl Explanation {
    pub fn allowed(&self) -> bool {
        matches!(self.verdict, Verdict::Allow { .. })
    }

    pub fn resource(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Allow { resource } => Some(resource),
            Verdict::Deny(_) => None,
        }
    }

    /// The explanation as lines for a person.
    pub fn render(&self, policy: &Policy) -> String {
        let mut out = String::new();
        let decision = match &self.verdict {
            Verdict::Allow { .. } => "allow".to_owned(),
            Verdict::Deny(d) => format!("deny ({})", d.as_str()),
        };
        let _ = writeln!(out, "decision: {decision}");
        if let Some(resource) = &self.network_rule {
            let detail = policy
                .resources
                .get(resource)
                .map(describe_resource)
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "rule:     role {} → resource {resource} ({detail})",
                self.role
            );
        } else {
            let _ = writeln!(out, "rule:     none");
        }
        if let Some((name, state)) = &self.schedule {
            let s = policy.schedules.get(name);
            let local = |t: Timestamp| s.map(|s| s.local(t)).unwrap_or_else(|| t.to_string());
            let zone = s.map(|s| s.timezone_name.as_str()).unwrap_or("?");
            let state = match state {
                // A window of an always-open schedule is only as long as the merge of
                // days is bounded: say what it means.
                ScheduleState::Open(_) if s.is_some_and(Schedule::always_open) => {
                    "open at all times (every day, all day)".into()
                }
                ScheduleState::Open(w) => {
                    format!("open, window {} until {}", local(w.start), local(w.end))
                }
                ScheduleState::Closed {
                    next_start: Some(n),
                } => format!("closed, next window starts {}", local(*n)),
                ScheduleState::Closed { next_start: None } => {
                    "closed, and no window opens in the next 400 days".into()
                }
            };
            let _ = writeln!(out, "schedule: {name} ({zone}): {state}");
        }
        if policy.has_role(&self.role) {
            match policy.dns_for(&self.role) {
                Some(d) => {
                    let _ = writeln!(out, "dns:      {d}");
                }
                None => {
                    let _ = writeln!(
                        out,
                        "dns:      none (the laptop's own resolver for every name)"
                    );
                }
            }
        }
        let _ = writeln!(out, "why:      {}", self.reason);
        out
    }
}

/// Explains what `role` (for `employee`) may do towards `dst` at `at`.
pub fn explain(
    policy: &Policy,
    compiled: &CompiledPolicy,
    role: &str,
    employee: Option<&str>,
    dst: &Destination,
    at: Timestamp,
) -> Explanation {
    let base = |verdict, schedule, network_rule, reason| Explanation {
        role: role.to_owned(),
        employee: employee.map(str::to_owned),
        destination: *dst,
        at,
        schedule,
        network_rule,
        verdict,
        reason,
    };
    let (Some(role_def), Some(role_id)) = (policy.roles.get(role), compiled.role(role)) else {
        return base(
            Verdict::Deny(Denial::UnknownRole),
            None,
            None,
            format!("the policy defines no role {role:?}; default deny"),
        );
    };
    let schedule = policy.schedule_for(role, employee).map(|(name, s)| {
        let state = match s.window_at(at) {
            Some(w) => ScheduleState::Open(w),
            None => ScheduleState::Closed {
                next_start: s.next_start(at),
            },
        };
        (name.to_owned(), state)
    });
    let network_rule = match compiled.decide(role_id, dst.ip, dst.proto, dst.port) {
        Decision::Allow(rule) => compiled.rule(rule).map(|r| r.resource.clone()),
        Decision::Deny(DenyReason::NoRule | DenyReason::UnknownRole) => None,
    };
    let whose = match employee {
        Some(e) => format!("employee {e}'s"),
        None => format!("role {role}'s"),
    };
    let open = matches!(schedule, Some((_, ScheduleState::Open(_))));
    // The instant as the schedule's zone writes it.
    let at_local = policy
        .schedule_for(role, employee)
        .map_or_else(|| at.to_string(), |(_, s)| s.local(at));
    match (&network_rule, open) {
        (Some(resource), true) => {
            let name = schedule.as_ref().map_or("?", |(n, _)| n.as_str());
            let reason = format!(
                "role {role} may reach resource {resource}, which opens {dst}, and {at_local} is inside {whose} schedule {name}"
            );
            base(
                Verdict::Allow {
                    resource: resource.clone(),
                },
                schedule,
                network_rule.clone(),
                reason,
            )
        }
        (_, false) => {
            let name = schedule
                .as_ref()
                .map(|(n, _)| n.clone())
                .unwrap_or_default();
            let opens = match &network_rule {
                Some(r) => format!("resource {r} opens {dst}, but "),
                None => String::new(),
            };
            let reason =
                format!("{opens}{at_local} is outside {whose} schedule {name}: no telework then");
            base(
                Verdict::Deny(Denial::OutsideSchedule),
                schedule,
                network_rule,
                reason,
            )
        }
        (None, true) => {
            let near: Vec<String> = role_def
                .resources
                .iter()
                .filter_map(|r| policy.resources.get(r).map(|res| (r, res)))
                .filter(|(_, res)| res.hosts.iter().any(|h| h.contains(dst.ip)))
                .map(|(r, res)| {
                    let svcs: Vec<String> = res.services.iter().map(|s| s.to_string()).collect();
                    format!("{r} opens only {} on {}", svcs.join(", "), dst.ip)
                })
                .collect();
            let reason = if near.is_empty() {
                format!(
                    "none of role {role}'s resources ({}) includes {}; default deny",
                    role_def.resources.join(", "),
                    dst.ip
                )
            } else {
                format!("{}; {dst} is not opened; default deny", near.join("; "))
            };
            base(Verdict::Deny(Denial::NoRule), schedule, None, reason)
        }
    }
}

/// `10.20.1.0/24: tcp/5432` for one resource.
pub fn describe_resource(r: &super::Resource) -> String {
    let hosts: Vec<String> = r.hosts.iter().map(|h| h.to_string()).collect();
    let svcs: Vec<String> = r.services.iter().map(|s| s.to_string()).collect();
    format!("{}: {}", hosts.join(", "), svcs.join(", "))
}
