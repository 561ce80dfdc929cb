//! From policy text to a checked [`Policy`], collecting every mistake with its place.
//!
//! The document is read with spans (toml's `DeTable`), each section is turned into typed
//! values, and references between sections are resolved in a second pass, so one run
//! reports all the errors of a file.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::schedule::{Addition, DateRange, Schedule, TimeRange, parse_weekday};
use super::{
    Checked, DEFAULT_TIMEZONE, Destination, Dns, EmployeeRule, Expect, Network, Policy,
    PolicySettings, Proto, Resource, Role, RoleDns, Service, TestCase,
};
use crate::duration::HumanDuration;
use crate::location::{ConfigError, Diagnostic, Location};

/// Most entries of one kind (resources, roles, …) a policy may define.
pub const MAX_ENTRIES: usize = 100_000;

type Span = Range<usize>;

pub(super) fn parse(path: &Path, text: &str) -> Result<Checked, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::whole_file(path, "the policy is empty"));
    }
    let (doc, syntax) = DeTable::parse_recoverable(text);
    let mut w = Walker {
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
        broken: BTreeSet::new(),
    };
    if !syntax.is_empty() {
        // One error per line: the parser's recovery repeats itself on the same line.
        let mut lines = BTreeSet::new();
        for e in &syntax {
            let span = e.span().unwrap_or(0..0);
            if !lines.insert(Location::of(text, span.start).line) {
                continue;
            }
            let message = e.message().trim_end();
            let message = match (message, text.get(span.clone())) {
                ("duplicate key", Some(key)) => {
                    format!("{:?} is defined twice", key.trim().trim_end_matches(']'))
                }
                _ => message.to_owned(),
            };
            w.error(span, message);
        }
        return Err(w.into_error(path));
    }
    let raw = w.document(doc.get_ref());
    let policy = w.resolve(raw, text);
    if !w.errors.is_empty() {
        return Err(w.into_error(path));
    }
    let policy =
        policy.ok_or_else(|| ConfigError::whole_file(path, "the policy could not be read"))?;
    w.warnings.sort_by_key(|(s, _)| s.start);
    let warnings = w
        .warnings
        .iter()
        .map(|(span, m)| diag(text, span, m))
        .collect();
    Ok(Checked { policy, warnings })
}

fn diag(text: &str, span: &Span, message: &str) -> Diagnostic {
    Diagnostic {
        location: Some(Location::of(text, span.start)),
        message: message.to_owned(),
    }
}

struct Walker<'t> {
    text: &'t str,
    errors: Vec<(Span, String)>,
    warnings: Vec<(Span, String)>,
    broken: BTreeSet<(&'static str, String)>,
}

/// A name and where it is written.
#[derive(Debug, Clone)]
struct Named {
    name: String,
    span: Span,
}

#[derive(Default)]
struct RawPolicy {
    settings: PolicySettings,
    resources: Vec<(Named, Resource)>,
    schedules: Vec<(Named, Schedule)>,
    posture: Vec<Named>,
    roles: Vec<(Named, RawRole)>,
    employees: Vec<(Named, Option<Named>)>,
    tests: Vec<RawTest>,
    /// `[dns]`, and where it is written.
    dns: Option<(Dns, Span)>,
    /// Entries that are defined but wrong: their errors are already reported, so
    /// references to them are not reported again.
    broken: BTreeSet<(&'static str, String)>,
}

struct RawRole {
    resources: Vec<Named>,
    schedule: Named,
    posture: Named,
    quarantine: Option<Named>,
    second_factor: Option<HumanDuration>,
    description: Option<String>,
    /// The role's `dns`, and where it is written.
    dns: (RoleDns, Option<Span>),
}

struct RawTest {
    line: usize,
    span: Span,
    role: Named,
    employee: Option<Named>,
    destination: Destination,
    at: (jiff::Timestamp, String),
    expect: Expect,
    rule: Option<Named>,
}

impl<'t> Walker<'t> {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors.push((span, message.into()));
    }

    fn warn(&mut self, span: Span, message: impl Into<String>) {
        self.warnings.push((span, message.into()));
    }

    fn into_error(mut self, path: &Path) -> ConfigError {
        self.errors.sort_by_key(|(s, _)| s.start);
        ConfigError {
            file: path.to_owned(),
            diagnostics: self
                .errors
                .iter()
                .map(|(s, m)| diag(self.text, s, m))
                .collect(),
        }
    }

    fn document(&mut self, doc: &DeTable<'_>) -> RawPolicy {
        let mut raw = RawPolicy::default();
        for (key, value) in doc.iter() {
            let span = key.span();
            match key.get_ref().as_ref() {
                "settings" => {
                    if let Some(t) = self.table(value, "settings") {
                        raw.settings = self.settings(t);
                    }
                }
                "resources" => self.each(value, "resources", |w, name, t| {
                    let before = w.errors.len();
                    match w.resource(&name, t) {
                        Some(r) if w.errors.len() == before => raw.resources.push((name, r)),
                        _ => {
                            raw.broken.insert(("resource", name.name));
                        }
                    }
                }),
                "schedules" => self.each(value, "schedules", |w, name, t| {
                    let before = w.errors.len();
                    match w.schedule(&name, t) {
                        Some(s) if w.errors.len() == before => raw.schedules.push((name, s)),
                        _ => {
                            raw.broken.insert(("schedule", name.name));
                        }
                    }
                }),
                "posture" => self.each(value, "posture", |_, name, _| raw.posture.push(name)),
                "dns" => {
                    if let Some(t) = self.table(value, "dns")
                        && let Some(d) = self.dns(t, "dns", value.span())
                    {
                        raw.dns = Some((d, span));
                    }
                }
                "roles" => self.each(value, "roles", |w, name, t| {
                    let before = w.errors.len();
                    match w.role(&name, t) {
                        Some(r) if w.errors.len() == before => raw.roles.push((name, r)),
                        _ => {
                            raw.broken.insert(("role", name.name));
                        }
                    }
                }),
                "employees" => self.each(value, "employees", |w, name, t| {
                    w.keys(t, &["schedule"], &format!("employees.{}", name.name));
                    let schedule = t.get("schedule").and_then(|v| w.named(v, "schedule"));
                    raw.employees.push((name, schedule));
                }),
                "test" => match value.get_ref() {
                    DeValue::Array(items) => {
                        for item in items.iter() {
                            if let Some(t) = self.table(item, "test")
                                && let Some(case) = self.test(item.span(), t)
                            {
                                raw.tests.push(case);
                            }
                        }
                    }
                    _ => self.error(
                        value.span(),
                        "test must be an array of tables: write each case as [[test]]",
                    ),
                },
                other => {
                    let hint = match closest(other, SECTIONS) {
                        Some(c) => format!("did you mean {c:?}?"),
                        None => format!("expected {}", SECTIONS.join(", ")),
                    };
                    self.error(span, format!("unknown section {other:?} ({hint})"));
                }
            }
        }
        raw
    }

    /// Calls `f` for each `[section.NAME]` table, with the checked name.
    fn each<'v>(
        &mut self,
        value: &'v Spanned<DeValue<'v>>,
        section: &str,
        mut f: impl FnMut(&mut Self, Named, &'v DeTable<'v>),
    ) {
        let Some(table) = self.table(value, section) else {
            return;
        };
        if table.len() > MAX_ENTRIES {
            self.error(
                value.span(),
                format!("{section} has more than {MAX_ENTRIES} entries"),
            );
            return;
        }
        for (key, v) in table.iter() {
            let Some(name) = self.name(key, section) else {
                continue;
            };
            if let Some(t) = self.table(v, &format!("{section}.{}", name.name)) {
                f(self, name, t);
            }
        }
    }

    fn settings(&mut self, t: &DeTable<'_>) -> PolicySettings {
        self.keys(
            t,
            &["max_session", "posture_recheck", "idle_timeout"],
            "settings",
        );
        let mut s = PolicySettings::default();
        for (key, slot) in [
            ("max_session", &mut s.max_session),
            ("posture_recheck", &mut s.posture_recheck),
            ("idle_timeout", &mut s.idle_timeout),
        ] {
            if let Some(v) = t.get(key)
                && let Some(d) = self.duration(v, key)
            {
                *slot = d;
            }
        }
        s
    }

    fn resource(&mut self, name: &Named, t: &DeTable<'_>) -> Option<Resource> {
        let section = format!("resources.{}", name.name);
        self.keys(t, &["hosts", "ports", "description"], &section);
        let hosts = self.required_list(t, "hosts", &section, name, Network::parse);
        let services = self.required_list(t, "ports", &section, name, Service::parse);
        let description = t
            .get("description")
            .and_then(|v| self.string(v, "description"))
            .map(str::to_owned);
        Some(Resource {
            hosts: hosts?,
            services: services?,
            description,
        })
    }

    fn schedule(&mut self, name: &Named, t: &DeTable<'_>) -> Option<Schedule> {
        let section = format!("schedules.{}", name.name);
        self.keys(
            t,
            &["timezone", "days", "hours", "except", "also"],
            &section,
        );
        let (timezone_name, timezone) = match t.get("timezone") {
            Some(v) => {
                let zone = self.string(v, "timezone")?;
                match jiff::tz::db().get(zone) {
                    Ok(tz) => (zone.to_owned(), tz),
                    Err(_) => {
                        self.error(v.span(), format!("{zone:?} is not an IANA time zone (e.g. Africa/Casablanca, Europe/Paris, UTC)"));
                        return None;
                    }
                }
            }
            None => match jiff::tz::db().get(DEFAULT_TIMEZONE) {
                Ok(tz) => (DEFAULT_TIMEZONE.to_owned(), tz),
                Err(_) => {
                    self.error(name.span.clone(), format!("the default time zone {DEFAULT_TIMEZONE} is not in this build's time-zone database"));
                    return None;
                }
            },
        };
        let days = self.list(t, "days", parse_weekday).unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (d, span) in &days {
            if !seen.insert(d.to_monday_zero_offset()) {
                self.error(
                    span.clone(),
                    format!(
                        "day {:?} is listed twice",
                        super::schedule::weekday_name(*d)
                    ),
                );
            }
        }
        let mut hours = self.list(t, "hours", TimeRange::parse).unwrap_or_default();
        hours.sort_by_key(|(r, _)| *r);
        for pair in hours.windows(2) {
            if pair[1].0.start < pair[0].0.end {
                self.error(
                    pair[1].1.clone(),
                    format!("{} overlaps {}", pair[1].0, pair[0].0),
                );
            }
        }
        let except = self.list(t, "except", DateRange::parse).unwrap_or_default();
        let also = self.list(t, "also", Addition::parse).unwrap_or_default();
        if !days.is_empty() && hours.is_empty() {
            self.error(
                name.span.clone(),
                format!("schedule {:?} lists days but no hours", name.name),
            );
            return None;
        }
        if days.is_empty() && also.is_empty() {
            self.error(
                name.span.clone(),
                format!(
                    "schedule {:?} never opens: give days and hours, or dated additions (also)",
                    name.name
                ),
            );
            return None;
        }
        if hours.is_empty() && also.iter().any(|(a, _)| a.hours.is_none()) {
            self.error(
                name.span.clone(),
                format!(
                    "schedule {:?} adds dates without hours, and has no hours of its own",
                    name.name
                ),
            );
            return None;
        }
        Some(Schedule {
            timezone_name,
            timezone,
            days: days.into_iter().map(|(d, _)| d).collect(),
            hours: hours.into_iter().map(|(r, _)| r).collect(),
            except: except.into_iter().map(|(e, _)| e).collect(),
            also: also.into_iter().map(|(a, _)| a).collect(),
        })
    }

    fn role(&mut self, name: &Named, t: &DeTable<'_>) -> Option<RawRole> {
        let section = format!("roles.{}", name.name);
        self.keys(
            t,
            &[
                "resources",
                "schedule",
                "posture",
                "quarantine",
                "second_factor",
                "description",
                "dns",
            ],
            &section,
        );
        let resources = match t.get("resources") {
            Some(v) => self.names(v, "resources")?,
            None => {
                self.error(name.span.clone(), format!("[{section}] needs resources = [...] (use [] for a role that reaches nothing)"));
                return None;
            }
        };
        let schedule = self.required_name(t, "schedule", &section, name);
        let posture = self.required_name(t, "posture", &section, name);
        let quarantine = t
            .get("quarantine")
            .and_then(|v| self.named(v, "quarantine"));
        let description = t
            .get("description")
            .and_then(|v| self.string(v, "description"))
            .map(str::to_owned);
        let second_factor = t
            .get("second_factor")
            .and_then(|v| self.duration(v, "second_factor"));
        let dns = match t.get("dns") {
            None => (RoleDns::Inherit, None),
            Some(v) => {
                let own = match v.get_ref() {
                    DeValue::Boolean(false) => Some(RoleDns::Off),
                    DeValue::Table(d) => self
                        .dns(d, &format!("{section}.dns"), v.span())
                        .map(RoleDns::Own),
                    _ => {
                        self.error(v.span(), "dns must be false (no internal resolver for this role) or { servers = [...], domains = [...] }");
                        None
                    }
                };
                (own?, Some(v.span()))
            }
        };
        Some(RawRole {
            resources,
            schedule: schedule?,
            posture: posture?,
            quarantine,
            second_factor,
            description,
            dns,
        })
    }

    /// `servers = [...]` and `domains = [...]`, both required.
    fn dns(&mut self, t: &DeTable<'_>, section: &str, span: Span) -> Option<Dns> {
        self.keys(t, &["servers", "domains"], section);
        let owner = Named {
            name: section.to_owned(),
            span,
        };
        let servers = self.required_list(t, "servers", section, &owner, |s| {
            s.parse::<std::net::IpAddr>().map_err(|_| {
                format!("{s:?} is not an IP address (a resolver, e.g. \"10.20.0.53\")")
            })
        });
        let domains = self.required_list(t, "domains", section, &owner, parse_domain);
        Some(Dns {
            servers: servers?,
            domains: domains?,
        })
    }

    fn test(&mut self, span: Span, t: &DeTable<'_>) -> Option<RawTest> {
        self.keys(
            t,
            &["role", "employee", "to", "at", "expect", "rule"],
            "test",
        );
        let line = Location::of(self.text, span.start).line;
        let absent: Vec<&str> = ["role", "to", "at", "expect"]
            .into_iter()
            .filter(|k| t.get(*k).is_none())
            .collect();
        if !absent.is_empty() {
            self.error(
                span.clone(),
                format!("this [[test]] needs {}", absent.join(", ")),
            );
        }
        let role = t.get("role").and_then(|v| self.named(v, "role"));
        let employee = t.get("employee").and_then(|v| self.named(v, "employee"));
        let destination = t.get("to").and_then(|v| {
            self.string(v, "to")
                .and_then(|s| match Destination::parse(s) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        self.error(v.span(), e);
                        None
                    }
                })
        });
        let at = t.get("at").and_then(|v| self.instant(v));
        let expect = t
            .get("expect")
            .and_then(|v| match self.string(v, "expect") {
                Some("allow") => Some(Expect::Allow),
                Some("deny") => Some(Expect::Deny),
                Some(other) => {
                    self.error(
                        v.span(),
                        format!("expect must be \"allow\" or \"deny\", not {other:?}"),
                    );
                    None
                }
                None => None,
            });
        let rule = t.get("rule").and_then(|v| self.named(v, "rule"));
        Some(RawTest {
            line,
            span,
            role: role?,
            employee,
            destination: destination?,
            at: at?,
            expect: expect?,
            rule,
        })
    }

    /// Second pass: every reference must name something defined; then the warnings.
    fn resolve(&mut self, raw: RawPolicy, text: &str) -> Option<Policy> {
        self.broken = raw.broken.clone();
        let resources: BTreeMap<String, Resource> = self.unique(raw.resources, "resource");
        let schedules: BTreeMap<String, Schedule> = self.unique(raw.schedules, "schedule");
        let posture_names: BTreeSet<String> = raw.posture.iter().map(|n| n.name.clone()).collect();
        let role_names: BTreeSet<String> = raw.roles.iter().map(|(n, _)| n.name.clone()).collect();
        let mut used_resources = BTreeSet::new();
        let mut used_schedules = BTreeSet::new();
        let mut roles = BTreeMap::new();
        for (name, role) in &raw.roles {
            let mut seen = BTreeSet::new();
            for r in &role.resources {
                self.reference(r, "resource", &resources);
                used_resources.insert(r.name.clone());
                if !seen.insert(r.name.clone()) {
                    self.warn(
                        r.span.clone(),
                        format!("role {:?} lists resource {:?} twice", name.name, r.name),
                    );
                }
            }
            self.reference(&role.schedule, "schedule", &schedules);
            used_schedules.insert(role.schedule.name.clone());
            if !posture_names.contains(&role.posture.name) {
                self.error(
                    role.posture.span.clone(),
                    format!(
                        "posture profile {:?} is not defined{}",
                        role.posture.name,
                        known(&posture_names)
                    ),
                );
            }
            if let Some(q) = &role.quarantine {
                if q.name == name.name {
                    self.error(
                        q.span.clone(),
                        format!("role {:?} cannot be its own quarantine", name.name),
                    );
                } else if !role_names.contains(&q.name)
                    && !self.broken.contains(&("role", q.name.clone()))
                {
                    self.error(
                        q.span.clone(),
                        format!(
                            "quarantine role {:?} is not defined{}",
                            q.name,
                            known(&role_names)
                        ),
                    );
                } else if raw
                    .roles
                    .iter()
                    .any(|(n, r)| n.name == q.name && r.quarantine.is_some())
                {
                    self.error(q.span.clone(), format!("quarantine role {:?} has a quarantine of its own; quarantine does not chain", q.name));
                }
            }
            if role.resources.is_empty() {
                self.warn(
                    name.span.clone(),
                    format!("role {:?} reaches no resource", name.name),
                );
            }
            roles.insert(
                name.name.clone(),
                Role {
                    resources: role.resources.iter().map(|n| n.name.clone()).collect(),
                    schedule: role.schedule.name.clone(),
                    posture: role.posture.name.clone(),
                    quarantine: role.quarantine.as_ref().map(|q| q.name.clone()),
                    second_factor: role.second_factor,
                    description: role.description.clone(),
                    dns: role.dns.0.clone(),
                },
            );
            // A role's resolvers must be among what the role may reach.
            let (dns, at) = match &role.dns {
                (RoleDns::Own(d), Some(at)) => (Some(d), at.clone()),
                // Pointed at the role: that is where it is fixed.
                (RoleDns::Inherit, _) => match &raw.dns {
                    Some((d, _)) => (Some(d), name.span.clone()),
                    None => (None, 0..0),
                },
                _ => (None, 0..0),
            };
            for server in dns.map(|d| d.servers.as_slice()).unwrap_or_default() {
                let reaches = |proto: Proto| {
                    role.resources.iter().any(|r| {
                        resources.get(&r.name).is_some_and(|res| {
                            res.hosts.iter().any(|h| h.contains(*server))
                                && res.services.iter().any(|s| s.matches(proto, 53))
                        })
                    })
                };
                let missing: Vec<&str> = [(Proto::Udp, "udp/53"), (Proto::Tcp, "tcp/53")]
                    .into_iter()
                    .filter(|(p, _)| !reaches(*p))
                    .map(|(_, l)| l)
                    .collect();
                if !missing.is_empty() {
                    let inherited = if matches!(role.dns.0, RoleDns::Inherit) {
                        " (from [dns])"
                    } else {
                        ""
                    };
                    self.error(
                        at.clone(),
                        format!(
                            "role {:?} gets the resolver {server}{inherited} but may not reach it on {m}: give the role a resource that opens {server} on {m}, or write dns = false in [roles.{}]",
                            name.name,
                            name.name,
                            m = missing.join(" and "),
                        ),
                    );
                }
            }
        }
        let mut employees = BTreeMap::new();
        for (id, schedule) in &raw.employees {
            if let Some(s) = schedule {
                self.reference(s, "schedule", &schedules);
                used_schedules.insert(s.name.clone());
            }
            employees.insert(
                id.name.clone(),
                EmployeeRule {
                    schedule: schedule.as_ref().map(|s| s.name.clone()),
                },
            );
        }
        let mut tests = Vec::new();
        for t in raw.tests {
            if !role_names.contains(&t.role.name)
                && !self.broken.contains(&("role", t.role.name.clone()))
            {
                self.error(
                    t.role.span.clone(),
                    format!(
                        "role {:?} is not defined{}",
                        t.role.name,
                        known(&role_names)
                    ),
                );
            }
            if let Some(rule) = &t.rule {
                self.reference(rule, "resource", &resources);
                if t.expect == Expect::Deny {
                    self.error(
                        rule.span.clone(),
                        "a test that expects deny cannot name the rule that allows it",
                    );
                }
            }
            let _ = &t.span;
            tests.push(TestCase {
                line: t.line,
                role: t.role.name,
                employee: t.employee.map(|e| e.name),
                destination: t.destination,
                at: t.at.0,
                at_text: t.at.1,
                expect: t.expect,
                rule: t.rule.map(|r| r.name),
            });
        }
        for (name, role) in &raw.roles {
            self.redundancy(&name.name, &role.resources, &resources);
        }
        for (name, _) in resources
            .iter()
            .filter(|(n, _)| !used_resources.contains(*n))
        {
            if let Some(span) = header_span(text, "resources", name) {
                self.warn(span, format!("resource {name:?} is not used by any role"));
            }
        }
        for (name, _) in schedules
            .iter()
            .filter(|(n, _)| !used_schedules.contains(*n))
        {
            if let Some(span) = header_span(text, "schedules", name) {
                self.warn(
                    span,
                    format!("schedule {name:?} is not used by any role or employee"),
                );
            }
        }
        if !self.errors.is_empty() {
            return None;
        }
        let tables: BTreeMap<String, toml::Table> = match toml::from_str::<toml::Table>(text) {
            Ok(mut all) => match all.remove("posture") {
                Some(toml::Value::Table(p)) => p
                    .into_iter()
                    .filter_map(|(k, v)| match v {
                        toml::Value::Table(t) => Some((k, t)),
                        _ => None,
                    })
                    .collect(),
                _ => BTreeMap::new(),
            },
            Err(e) => {
                self.error(e.span().unwrap_or(0..0), e.message().to_owned());
                return None;
            }
        };
        let mut posture = BTreeMap::new();
        for (name, table) in tables {
            match ztgw_posture::profile::Profile::from_table(&table) {
                Ok(p) => {
                    posture.insert(name, p);
                }
                Err(e) => {
                    let span = header_span(text, "posture", &name).unwrap_or(0..0);
                    self.error(span, format!("posture profile {name:?}: {e}"));
                }
            }
        }
        if !self.errors.is_empty() {
            return None;
        }
        Some(Policy {
            settings: raw.settings,
            resources,
            schedules,
            posture,
            roles,
            employees,
            tests,
            dns: raw.dns.map(|(d, _)| d),
        })
    }

    /// Warns when everything a role's resource opens is already opened by another
    /// resource of the same role.
    fn redundancy(&mut self, role: &str, names: &[Named], resources: &BTreeMap<String, Resource>) {
        for (i, r) in names.iter().enumerate() {
            let Some(res) = resources.get(&r.name) else {
                continue;
            };
            let others: Vec<&Named> = names
                .iter()
                .enumerate()
                .filter(|(j, o)| *j != i && o.name != r.name)
                .map(|(_, o)| o)
                .collect();
            let covered_by = |atom_net: &Network, atom_svc: &Service| {
                others.iter().find(|o| {
                    resources.get(&o.name).is_some_and(|other| {
                        other.hosts.iter().any(|n| n.covers(atom_net))
                            && other.services.iter().any(|s| s.covers(atom_svc))
                    })
                })
            };
            let mut coverers = BTreeSet::new();
            let all_covered = res.hosts.iter().all(|n| {
                res.services.iter().all(|s| match covered_by(n, s) {
                    Some(o) => {
                        coverers.insert(o.name.clone());
                        true
                    }
                    None => false,
                })
            });
            if all_covered && !coverers.is_empty() {
                let by: Vec<String> = coverers.into_iter().collect();
                self.warn(
                    r.span.clone(),
                    format!(
                        "in role {role:?}, resource {:?} is redundant: everything it opens is opened by {}",
                        r.name,
                        by.join(", ")
                    ),
                );
            }
        }
    }

    fn unique<T>(&mut self, items: Vec<(Named, T)>, kind: &str) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        for (n, v) in items {
            if out.insert(n.name.clone(), v).is_some() {
                self.error(n.span, format!("{kind} {:?} is defined twice", n.name));
            }
        }
        out
    }

    fn reference<T>(&mut self, r: &Named, kind: &'static str, defined: &BTreeMap<String, T>) {
        if !defined.contains_key(&r.name) && !self.broken.contains(&(kind, r.name.clone())) {
            let names: BTreeSet<String> = defined.keys().cloned().collect();
            self.error(
                r.span.clone(),
                format!("{kind} {:?} is not defined{}", r.name, known(&names)),
            );
        }
    }

    fn keys(&mut self, t: &DeTable<'_>, allowed: &[&str], section: &str) {
        for (key, _) in t.iter() {
            let k: &str = key.get_ref().as_ref();
            if !allowed.contains(&k) {
                let hint = match closest(k, allowed) {
                    Some(c) => format!("did you mean {c:?}?"),
                    None => format!("expected {}", allowed.join(", ")),
                };
                self.error(
                    key.span(),
                    format!("unknown key {k:?} in [{section}] ({hint})"),
                );
            }
        }
    }

    fn table<'v>(&mut self, v: &'v Spanned<DeValue<'v>>, what: &str) -> Option<&'v DeTable<'v>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.error(v.span(), format!("{what} must be a table"));
                None
            }
        }
    }

    fn string<'v>(&mut self, v: &'v Spanned<DeValue<'v>>, what: &str) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.error(v.span(), format!("{what} must be a string"));
                None
            }
        }
    }

    fn name(&mut self, key: &Spanned<toml::de::DeString<'_>>, section: &str) -> Option<Named> {
        let name: &str = key.get_ref().as_ref();
        match check_name(name) {
            Ok(()) => Some(Named {
                name: name.to_owned(),
                span: key.span(),
            }),
            Err(e) => {
                self.error(key.span(), format!("{section} name {name:?} {e}"));
                None
            }
        }
    }

    fn named(&mut self, v: &Spanned<DeValue<'_>>, what: &str) -> Option<Named> {
        let s = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            _ => {
                self.error(v.span(), format!("{what} must be a string"));
                return None;
            }
        };
        Some(Named {
            name: s,
            span: v.span(),
        })
    }

    fn names(&mut self, v: &Spanned<DeValue<'_>>, what: &str) -> Option<Vec<Named>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.error(
                v.span(),
                format!("{what} must be a list of names, e.g. [\"intranet\"]"),
            );
            return None;
        };
        Some(
            items
                .iter()
                .filter_map(|item| self.named(item, what))
                .collect(),
        )
    }

    fn required_name(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        section: &str,
        owner: &Named,
    ) -> Option<Named> {
        match t.get(key) {
            Some(v) => self.named(v, key),
            None => {
                self.error(
                    owner.span.clone(),
                    format!("[{section}] needs {key} = \"...\""),
                );
                None
            }
        }
    }

    /// Each string of the list at `key`, parsed with `parse`; errors point at the element.
    fn list<T>(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<(T, Span)>> {
        let v = t.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.error(v.span(), format!("{key} must be a list of strings"));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let Some(s) = self.string(item, &format!("each entry of {key}")) else {
                continue;
            };
            match parse(s) {
                Ok(x) => out.push((x, item.span())),
                Err(e) => self.error(item.span(), e),
            }
        }
        Some(out)
    }

    fn required_list<T>(
        &mut self,
        t: &DeTable<'_>,
        key: &str,
        section: &str,
        owner: &Named,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let errors_before = self.errors.len();
        match self.list(t, key, parse) {
            None if t.get(key).is_none() => {
                self.error(
                    owner.span.clone(),
                    format!("[{section}] needs {key} = [...]"),
                );
                None
            }
            Some(items) if items.is_empty() && self.errors.len() == errors_before => {
                let span = t.get(key).map(|v| v.span()).unwrap_or(owner.span.clone());
                self.error(span, format!("{key} in [{section}] is empty"));
                None
            }
            Some(items) if self.errors.len() == errors_before => {
                Some(items.into_iter().map(|(x, _)| x).collect())
            }
            _ => None,
        }
    }

    fn duration(&mut self, v: &Spanned<DeValue<'_>>, what: &str) -> Option<HumanDuration> {
        let s = match v.get_ref() {
            DeValue::String(s) => s.to_string(),
            _ => {
                self.error(
                    v.span(),
                    format!("{what} must be a duration string like \"30m\""),
                );
                return None;
            }
        };
        match HumanDuration::parse(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(v.span(), e);
                None
            }
        }
    }

    /// An instant with its offset, and the instant as written (shown back as written).
    fn instant(&mut self, v: &Spanned<DeValue<'_>>) -> Option<(jiff::Timestamp, String)> {
        let s = match v.get_ref() {
            DeValue::Datetime(d) => d.to_string(),
            DeValue::String(s) => s.to_string(),
            _ => {
                self.error(v.span(), "at must be a date and time with its UTC offset, e.g. 2027-03-02T10:00:00+01:00");
                return None;
            }
        };
        match s.parse::<jiff::Timestamp>() {
            Ok(t) => Some((t, s)),
            Err(_) => {
                self.error(
                    v.span(),
                    format!("{s:?} is not a date and time with a UTC offset (e.g. 2027-03-02T10:00:00+01:00)"),
                );
                None
            }
        }
    }
}

const SECTIONS: &[&str] = &[
    "settings",
    "dns",
    "resources",
    "schedules",
    "posture",
    "roles",
    "employees",
    "test",
];

/// The allowed word closest to `word`, if it is a likely typo (edit distance at most 2).
fn closest<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(word, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn known(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        String::new()
    } else {
        let list: Vec<&str> = names.iter().map(String::as_str).take(20).collect();
        format!(" (defined: {})", list.join(", "))
    }
}

/// Where `[section.name]` is written, for warnings about a whole entry.
fn header_span(text: &str, section: &str, name: &str) -> Option<Span> {
    let header = format!("[{section}.{name}]");
    text.find(&header).map(|s| s..s + header.len())
}

/// Names of resources, roles, schedules and profiles: letters, digits, `.`, `_`, `-`,
/// starting with a letter or digit, at most 64 characters.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters");
    }
    let first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !first
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(
            "may contain only letters, digits, '.', '_' and '-', starting with a letter or digit",
        );
    }
    Ok(())
}

/// A DNS domain the internal resolvers answer for: letters, digits and hyphens in labels
/// of 1 to 63 characters, at most 253 in all; written without a leading or trailing dot,
/// kept in lower case.
pub fn parse_domain(s: &str) -> Result<String, String> {
    let d = s.to_ascii_lowercase();
    let bad = |why: &str| {
        Err(format!(
            "{s:?} is not a domain ({why}), e.g. \"finances.gov.ma\""
        ))
    };
    if d.is_empty() || d.len() > 253 {
        return bad("1 to 253 characters");
    }
    if d.starts_with('.') || d.ends_with('.') {
        return bad("no leading or trailing dot");
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each label 1 to 63 characters");
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return bad("letters, digits and inner hyphens only");
        }
    }
    Ok(d)
}
