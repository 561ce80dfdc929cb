//! Reports for the administration and its auditors, computed from the journal:
//! telework hours against schedules (G11) and admissions and posture compliance (G12).
//! Pure functions over journal records; the instants come from the records.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};
use serde::Serialize;
use ztgw_config::policy::Policy;

use crate::query::Record;

pub mod printed;

/// One employee's day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HoursRow {
    pub employee: String,
    pub date: String,
    pub sessions: u32,
    /// Seconds connected that day.
    pub connected_secs: i64,
    /// Seconds of telework the schedule set for that day.
    pub scheduled_secs: i64,
    /// Seconds connected outside the schedule (e.g. under an emergency override).
    pub outside_secs: i64,
    /// Admissions refused because it was outside the schedule.
    pub out_of_hours_attempts: u32,
}

struct Session {
    employee: String,
    device: String,
    role: String,
    start: Timestamp,
    end: Option<Timestamp>,
}

/// Connected time per employee and local day from `from` to `to` (inclusive), in `tz`,
/// against the schedule the policy sets for each. A session still open counts until `now`.
pub fn hours(
    records: &[Record],
    policy: &Policy,
    tz: &TimeZone,
    from: Date,
    to: Date,
    employee: Option<&str>,
    now: Timestamp,
) -> Vec<HoursRow> {
    let ts = |r: &Record| {
        Timestamp::from_second(r.time.unix_timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
    };
    let field = |r: &Record, k: &str| {
        r.event
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
    let mut attempts: BTreeMap<(String, Date), u32> = BTreeMap::new();
    for r in records {
        match r.event.get("type").and_then(|v| v.as_str()) {
            Some("session.started") => {
                sessions.insert(
                    field(r, "session"),
                    Session {
                        employee: field(r, "employee"),
                        device: field(r, "device"),
                        role: field(r, "role"),
                        start: ts(r),
                        end: None,
                    },
                );
            }
            Some("session.ended") => {
                if let Some(s) = sessions.get_mut(&field(r, "session")) {
                    s.end = Some(ts(r));
                }
            }
            Some("admission.denied") => {
                let outside = r
                    .event
                    .get("reasons")
                    .and_then(|v| v.as_array())
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("outside-schedule")));
                if outside {
                    let day = ts(r).to_zoned_datetime(tz.clone()).date();
                    *attempts.entry((field(r, "employee"), day)).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    // A device holds one session at a time (on any gateway of a shared registry): a
    // session the journal shows still open, or ending late, when the same device's next
    // session starts was over by then. That is a session a gateway's crash left open (it
    // ends in the journal only when that gateway starts again), while the device went on
    // through another gateway: counted once, not twice.
    let mut by_device: BTreeMap<&str, Vec<(Timestamp, &str)>> = BTreeMap::new();
    for (id, s) in &sessions {
        by_device.entry(&s.device).or_default().push((s.start, id));
    }
    let mut cut: BTreeMap<String, Timestamp> = BTreeMap::new();
    for starts in by_device.values_mut() {
        starts.sort();
        for pair in starts.windows(2) {
            cut.insert(pair[0].1.to_owned(), pair[1].0);
        }
    }
    let mut rows: BTreeMap<(String, Date), HoursRow> = BTreeMap::new();
    let wanted = |e: &str| employee.is_none_or(|x| x == e);
    for (id, s) in sessions.iter().filter(|(_, s)| wanted(&s.employee)) {
        let end = s.end.unwrap_or(now);
        let end = match cut.get(id) {
            Some(next) if !s.device.is_empty() => end.min(*next),
            _ => end,
        };
        let schedule = policy
            .schedule_for(&s.role, Some(&s.employee))
            .map(|(_, sch)| sch);
        let mut day = s.start.to_zoned_datetime(tz.clone()).date();
        let last = end.to_zoned_datetime(tz.clone()).date();
        while day <= last {
            if day >= from && day <= to {
                let (day_start, day_end) = day_bounds(tz, day);
                let a = s.start.max(day_start);
                let b = end.min(day_end);
                if b > a {
                    let connected = (b.as_second() - a.as_second()).max(0);
                    let inside: i64 = schedule
                        .map(|sch| {
                            sch.windows_on(day)
                                .iter()
                                .map(|w| {
                                    (b.min(w.end).as_second() - a.max(w.start).as_second()).max(0)
                                })
                                .sum()
                        })
                        .unwrap_or(0);
                    let row = rows
                        .entry((s.employee.clone(), day))
                        .or_insert_with(|| HoursRow {
                            employee: s.employee.clone(),
                            date: day.to_string(),
                            scheduled_secs: scheduled(policy, &s.role, &s.employee, day),
                            ..HoursRow::default()
                        });
                    row.sessions += 1;
                    row.connected_secs += connected;
                    row.outside_secs += connected - inside;
                }
            }
            let Ok(next) = day.tomorrow() else { break };
            day = next;
        }
    }
    // A refusal names no role: a day with refusals only is scheduled as the employee's
    // sessions' role (the last one seen) schedules it.
    let mut roles: BTreeMap<&str, &str> = BTreeMap::new();
    for s in sessions.values() {
        roles.insert(&s.employee, &s.role);
    }
    for ((e, day), n) in attempts {
        if day < from || day > to || !wanted(&e) {
            continue;
        }
        rows.entry((e.clone(), day))
            .or_insert_with(|| HoursRow {
                employee: e.clone(),
                date: day.to_string(),
                scheduled_secs: roles
                    .get(e.as_str())
                    .map_or(0, |role| scheduled(policy, role, &e, day)),
                ..HoursRow::default()
            })
            .out_of_hours_attempts += n;
    }
    rows.into_values().collect()
}

fn scheduled(policy: &Policy, role: &str, employee: &str, day: Date) -> i64 {
    policy
        .schedule_for(role, Some(employee))
        .map(|(_, s)| {
            s.windows_on(day)
                .iter()
                .map(|w| w.end.as_second() - w.start.as_second())
                .sum()
        })
        .unwrap_or(0)
}

fn day_bounds(tz: &TimeZone, day: Date) -> (Timestamp, Timestamp) {
    let start = tz
        .to_timestamp(day.to_datetime(jiff::civil::Time::midnight()))
        .unwrap_or(Timestamp::MIN);
    let end = day
        .tomorrow()
        .ok()
        .and_then(|d| {
            tz.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .ok()
        })
        .unwrap_or_else(|| start.checked_add(24.hours()).unwrap_or(Timestamp::MAX));
    (start, end)
}

/// Admissions and posture per local day (G12).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PostureRow {
    pub date: String,
    pub admissions_granted: u32,
    pub admissions_denied: u32,
    /// Refusals by reason (a refusal with several reasons counts under each).
    pub denied_by_reason: BTreeMap<String, u32>,
    pub posture_checks: u32,
    pub posture_compliant: u32,
    /// Failed posture checks by check id.
    pub failed_checks: BTreeMap<String, u32>,
}

/// Admissions refused and why, and posture compliance, per local day in `tz`.
pub fn posture(records: &[Record], tz: &TimeZone, from: Date, to: Date) -> Vec<PostureRow> {
    let mut rows: BTreeMap<Date, PostureRow> = BTreeMap::new();
    for r in records {
        let t = Timestamp::from_second(r.time.unix_timestamp()).unwrap_or(Timestamp::UNIX_EPOCH);
        let day = t.to_zoned_datetime(tz.clone()).date();
        if day < from || day > to {
            continue;
        }
        let list = |k: &str| -> Vec<String> {
            r.event
                .get(k)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let row = || PostureRow {
            date: day.to_string(),
            ..PostureRow::default()
        };
        match r.event.get("type").and_then(|v| v.as_str()) {
            Some("admission.granted") => {
                rows.entry(day).or_insert_with(row).admissions_granted += 1
            }
            Some("admission.denied") => {
                let e = rows.entry(day).or_insert_with(row);
                e.admissions_denied += 1;
                for reason in list("reasons") {
                    *e.denied_by_reason.entry(reason).or_default() += 1;
                }
            }
            Some("posture.checked") => {
                let e = rows.entry(day).or_insert_with(row);
                e.posture_checks += 1;
                if r.event.get("compliant").and_then(|v| v.as_bool()) == Some(true) {
                    e.posture_compliant += 1;
                }
                for check in list("failed") {
                    *e.failed_checks.entry(check).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    rows.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, at: &str, event: serde_json::Value) -> Record {
        let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .expect("time");
        Record {
            seq,
            time: t,
            event,
            gateway: None,
        }
    }

    fn policy() -> Policy {
        let text = include_str!("../../deploy/examples/policy.toml");
        Policy::parse(std::path::Path::new("policy.toml"), text)
            .expect("policy")
            .policy
    }

    #[test]
    fn a_session_a_crash_left_open_counts_until_the_device_goes_on_elsewhere() {
        let tz = jiff::tz::db().get("UTC").expect("tz");
        let ev = |t: &str, session: &str, ended: bool, gateway: &str| {
            let mut r = rec(
                0,
                t,
                serde_json::json!({"type": if ended { "session.ended" } else { "session.started" },
                    "session": session, "employee": "e1", "role": "finance", "device": "d1"}),
            );
            r.gateway = Some(gateway.into());
            r
        };
        // s1 on gateway a from 09:00; a crashes at 10:00 and the device goes on through
        // b as s2 until 11:00; a restarts at 15:00 and only then ends s1 in its journal.
        let records = vec![
            ev("2027-04-06T09:00:00Z", "s1", false, "a"),
            ev("2027-04-06T10:00:05Z", "s2", false, "b"),
            ev("2027-04-06T11:00:05Z", "s2", true, "b"),
            ev("2027-04-06T15:00:00Z", "s1", true, "a"),
        ];
        let day: Date = "2027-04-06".parse().expect("date");
        let now: Timestamp = "2027-04-06T20:00:00Z".parse().expect("now");
        let rows = hours(&records, &policy(), &tz, day, day, None, now);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].sessions, 2);
        assert_eq!(
            rows[0].connected_secs,
            2 * 3600 + 5,
            "09:00 to 11:00:05, once"
        );
    }

    #[test]
    fn hours_split_inside_and_outside_the_schedule() {
        let tz = jiff::tz::db().get("Africa/Casablanca").expect("tz");
        // Local times in Casablanca through the system's tzdata (its offset for 2027
        // differs between releases).
        let local = |civil: &str| {
            let c: jiff::civil::DateTime = civil.parse().expect("civil");
            tz.to_ambiguous_timestamp(c)
                .compatible()
                .expect("in the zone")
                .to_string()
        };
        let records = vec![
            // Tuesday 2027-04-06, office hours 08:30-16:30 local.
            rec(
                1,
                &local("2027-04-06T08:00:00"),
                serde_json::json!({"type": "session.started", "session": "s1", "employee": "e1", "role": "finance", "device": "d"}),
            ),
            rec(
                2,
                &local("2027-04-06T12:00:00"),
                serde_json::json!({"type": "session.ended", "session": "s1", "employee": "e1", "device": "d"}),
            ),
            rec(
                3,
                &local("2027-04-06T18:00:00"),
                serde_json::json!({"type": "admission.denied", "employee": "e1", "device": "d", "reasons": ["outside-schedule"]}),
            ),
            rec(
                4,
                &local("2027-04-06T09:00:00"),
                serde_json::json!({"type": "session.started", "session": "s2", "employee": "e2", "role": "finance", "device": "d2"}),
            ),
        ];
        let day: Date = "2027-04-06".parse().expect("date");
        let now: Timestamp = local("2027-04-06T10:00:00").parse().expect("now");
        let rows = hours(&records, &policy(), &tz, day, day, None, now);
        assert_eq!(rows.len(), 2);
        let e1 = &rows[0];
        assert_eq!((e1.employee.as_str(), e1.sessions), ("e1", 1));
        assert_eq!(e1.connected_secs, 4 * 3600);
        assert_eq!(e1.outside_secs, 30 * 60, "08:00-08:30 is before the window");
        assert_eq!(e1.scheduled_secs, 8 * 3600);
        assert_eq!(e1.out_of_hours_attempts, 1);
        let e2 = &rows[1];
        assert_eq!(
            e2.connected_secs, 3600,
            "a session still open counts until now"
        );
        let only = hours(&records, &policy(), &tz, day, day, Some("e2"), now);
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn posture_counts_refusals_and_failed_checks() {
        let tz = TimeZone::UTC;
        let records = vec![
            rec(
                1,
                "2027-04-06T08:00:00Z",
                serde_json::json!({"type": "admission.granted"}),
            ),
            rec(
                2,
                "2027-04-06T09:00:00Z",
                serde_json::json!({"type": "admission.denied", "reasons": ["posture.antivirus", "outside-schedule"]}),
            ),
            rec(
                3,
                "2027-04-06T09:00:00Z",
                serde_json::json!({"type": "posture.checked", "compliant": false, "failed": ["posture.antivirus"]}),
            ),
            rec(
                4,
                "2027-04-06T10:00:00Z",
                serde_json::json!({"type": "posture.checked", "compliant": true, "failed": []}),
            ),
            rec(
                5,
                "2027-04-09T10:00:00Z",
                serde_json::json!({"type": "admission.granted"}),
            ),
        ];
        let rows = posture(
            &records,
            &tz,
            "2027-04-06".parse().expect("d"),
            "2027-04-08".parse().expect("d"),
        );
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.admissions_granted, r.admissions_denied), (1, 1));
        assert_eq!(r.denied_by_reason.get("outside-schedule"), Some(&1));
        assert_eq!((r.posture_checks, r.posture_compliant), (2, 1));
        assert_eq!(r.failed_checks.get("posture.antivirus"), Some(&1));
    }
}
