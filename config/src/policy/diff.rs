//! What a policy change does to access (`ztgw policy diff OLD NEW`, G18): which roles gain
//! or lose which resources, and whose hours change.

use std::collections::BTreeSet;

use super::explain::describe_resource;
use super::schedule::weekday_name;
use super::{Policy, Schedule};

/// The changes, one line each, most important first: roles, then resources and
/// schedules (with the roles they affect), then employees and settings.
pub fn diff(old: &Policy, new: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    for (name, role) in &new.roles {
        match old.roles.get(name) {
            None => out.push(format!(
                "role {name} is new: resources {}, schedule {}, posture {}",
                list(&role.resources),
                role.schedule,
                role.posture
            )),
            Some(before) => {
                let was: BTreeSet<&String> = before.resources.iter().collect();
                let now: BTreeSet<&String> = role.resources.iter().collect();
                for r in now.difference(&was) {
                    let detail = new
                        .resources
                        .get(*r)
                        .map(describe_resource)
                        .unwrap_or_default();
                    out.push(format!("role {name} gains resource {r} ({detail})"));
                }
                for r in was.difference(&now) {
                    out.push(format!("role {name} loses resource {r}"));
                }
                if before.schedule != role.schedule {
                    out.push(format!(
                        "role {name} changes schedule: {} → {}",
                        before.schedule, role.schedule
                    ));
                }
                if before.posture != role.posture {
                    out.push(format!(
                        "role {name} changes posture profile: {} → {}",
                        before.posture, role.posture
                    ));
                }
                let (was_dns, now_dns) = (old.dns_for(name), new.dns_for(name));
                if was_dns != now_dns {
                    let say = |d: Option<&super::Dns>| {
                        d.map_or("none (the laptop's resolver)".to_owned(), |d| d.to_string())
                    };
                    out.push(format!(
                        "role {name} changes internal resolvers: {} → {}",
                        say(was_dns),
                        say(now_dns)
                    ));
                }
                if before.quarantine != role.quarantine {
                    out.push(format!(
                        "role {name} changes quarantine: {} → {}",
                        before.quarantine.as_deref().unwrap_or("none (cut off)"),
                        role.quarantine.as_deref().unwrap_or("none (cut off)")
                    ));
                }
            }
        }
    }
    for (name, role) in &old.roles {
        if !new.roles.contains_key(name) {
            out.push(format!(
                "role {name} is removed: its devices lose {}",
                list(&role.resources)
            ));
        }
    }
    for (name, after) in &new.resources {
        let Some(before) = old.resources.get(name) else {
            continue;
        };
        let mut parts = Vec::new();
        set_change(&mut parts, "hosts", &before.hosts, &after.hosts);
        set_change(&mut parts, "ports", &before.services, &after.services);
        if !parts.is_empty() {
            out.push(format!(
                "resource {name} changes: {}{}",
                parts.join("; "),
                affects(new, |r| r.resources.contains(name))
            ));
        }
    }
    for (name, after) in &new.schedules {
        let Some(before) = old.schedules.get(name) else {
            continue;
        };
        let parts = schedule_change(before, after);
        if !parts.is_empty() {
            out.push(format!(
                "schedule {name} changes: {}{}",
                parts.join("; "),
                affects(new, |r| &r.schedule == name)
            ));
        }
    }
    for (name, after) in &new.posture {
        match old.posture.get(name) {
            Some(before) if before != after => out.push(format!(
                "posture profile {name} changes{}",
                affects(new, |r| &r.posture == name)
            )),
            _ => {}
        }
    }
    let employees: BTreeSet<&String> = old.employees.keys().chain(new.employees.keys()).collect();
    for e in employees {
        let before = old.employees.get(e).and_then(|x| x.schedule.as_deref());
        let after = new.employees.get(e).and_then(|x| x.schedule.as_deref());
        if before != after {
            out.push(format!(
                "employee {e} changes schedule: {} → {}",
                before.unwrap_or("the role's"),
                after.unwrap_or("the role's")
            ));
        }
    }
    let (a, b) = (&old.settings, &new.settings);
    for (what, x, y) in [
        ("max_session", a.max_session, b.max_session),
        ("posture_recheck", a.posture_recheck, b.posture_recheck),
        ("idle_timeout", a.idle_timeout, b.idle_timeout),
    ] {
        if x != y {
            out.push(format!("setting {what} changes: {x} → {y}"));
        }
    }
    out
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn affects(policy: &Policy, uses: impl Fn(&super::Role) -> bool) -> String {
    let roles: Vec<&str> = policy
        .roles
        .iter()
        .filter(|(_, r)| uses(r))
        .map(|(n, _)| n.as_str())
        .collect();
    if roles.is_empty() {
        String::new()
    } else {
        format!(" (affects roles {})", roles.join(", "))
    }
}

fn set_change<T: Ord + ToString>(parts: &mut Vec<String>, what: &str, before: &[T], after: &[T]) {
    let a: BTreeSet<&T> = before.iter().collect();
    let b: BTreeSet<&T> = after.iter().collect();
    let added: Vec<String> = b
        .difference(&a)
        .map(|x| format!("+{}", x.to_string()))
        .collect();
    let removed: Vec<String> = a
        .difference(&b)
        .map(|x| format!("-{}", x.to_string()))
        .collect();
    if !added.is_empty() || !removed.is_empty() {
        parts.push(format!(
            "{what} {}",
            added
                .into_iter()
                .chain(removed)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
}

fn schedule_change(before: &Schedule, after: &Schedule) -> Vec<String> {
    let mut parts = Vec::new();
    if before.timezone_name != after.timezone_name {
        parts.push(format!(
            "time zone {} → {}",
            before.timezone_name, after.timezone_name
        ));
    }
    let days = |s: &Schedule| {
        s.days
            .iter()
            .map(|d| weekday_name(*d))
            .collect::<Vec<_>>()
            .join(",")
    };
    if days(before) != days(after) {
        parts.push(format!("days {} → {}", days(before), days(after)));
    }
    let hours = |s: &Schedule| {
        s.hours
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if hours(before) != hours(after) {
        parts.push(format!("hours {} → {}", hours(before), hours(after)));
    }
    // Dates in words, not signed: `+2027-12-31` reads like a year with a sign.
    let except = |s: &Schedule| s.except.iter().map(|e| e.to_string()).collect::<Vec<_>>();
    date_change(
        &mut parts,
        ("no telework on", "telework again on"),
        &except(before),
        &except(after),
    );
    let also = |s: &Schedule| s.also.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    date_change(
        &mut parts,
        ("telework added on", "no more telework on"),
        &also(before),
        &also(after),
    );
    parts
}

/// Dates added to a list (`added`) and taken out of it (`removed`), each in words.
fn date_change(
    parts: &mut Vec<String>,
    (added, removed): (&str, &str),
    before: &[String],
    after: &[String],
) {
    let a: BTreeSet<&String> = before.iter().collect();
    let b: BTreeSet<&String> = after.iter().collect();
    let join = |d: Vec<&&String>| d.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let new: Vec<&&String> = b.difference(&a).collect();
    if !new.is_empty() {
        parts.push(format!("{added} {}", join(new)));
    }
    let gone: Vec<&&String> = a.difference(&b).collect();
    if !gone.is_empty() {
        parts.push(format!("{removed} {}", join(gone)));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn policy(dns: &str, hr_dns: &str) -> Policy {
        let text = format!(
            "{dns}\n[resources.dns]\nhosts = [\"10.20.0.53\", \"10.30.0.53\"]\nports = [\"udp/53\", \"tcp/53\"]\n\
             [schedules.s]\ndays = [\"mon\"]\nhours = [\"08:00-17:00\"]\n[posture.p]\n\
             [roles.finance]\nresources = [\"dns\"]\nschedule = \"s\"\nposture = \"p\"\n\
             [roles.hr]\nresources = [\"dns\"]\nschedule = \"s\"\nposture = \"p\"\n{hr_dns}\n"
        );
        Policy::parse(Path::new("p.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}"))
            .policy
    }

    #[test]
    fn a_change_of_internal_resolvers_is_said_per_role() {
        let global = "[dns]\nservers = [\"10.20.0.53\"]\ndomains = [\"finances.gov.ma\"]";
        let before = policy(global, "");
        assert_eq!(diff(&before, &before), Vec::<String>::new());
        let after = policy(
            global,
            "dns = { servers = [\"10.30.0.53\"], domains = [\"hr.finances.gov.ma\"] }",
        );
        assert_eq!(
            diff(&before, &after),
            vec![
                "role hr changes internal resolvers: 10.20.0.53 for finances.gov.ma → 10.30.0.53 for hr.finances.gov.ma"
            ]
        );
        let none = policy("", "");
        assert_eq!(
            diff(&before, &none),
            vec![
                "role finance changes internal resolvers: 10.20.0.53 for finances.gov.ma → none (the laptop's resolver)",
                "role hr changes internal resolvers: 10.20.0.53 for finances.gov.ma → none (the laptop's resolver)",
            ]
        );
    }
}
