//! Reports for a month, as `ztgw report` computes them (G11, G12) and from the same
//! place: the journal verified with the gateway's key, up to its last signed checkpoint
//! (named on the page). Telework hours against the schedule per employee, posture
//! compliance per day, refusals by reason; each a table, with a chart beside it.

use std::collections::BTreeMap;

use maud::html;
use time::OffsetDateTime;
use ztgw_api::console::ReportQuery;

use super::chart::{self, Bar};
use super::i18n::Msg;
use super::journal::{MAX_READ, reason_table};
use super::layout::{self, when};
use super::routes::{Req, Response};
use crate::journal::query::{self, Filter};
use crate::journal::report;
use crate::journal::verify::verify_dir_until;

/// One employee's month.
#[derive(Debug, Default)]
struct Month {
    connected: i64,
    scheduled: i64,
    outside: i64,
    attempts: u32,
}

/// `GET /reports?month=YYYY-MM` (default: this month).
pub async fn page(r: &Req<'_>) -> Response {
    let q: ReportQuery = match r.query() {
        Ok(q) => q,
        Err(response) => return response,
    };
    let now = r.ctx().clock.now();
    let (from, to) = match month(q.month.as_ref().map(|m| m.as_str()), now) {
        Ok(range) => range,
        Err(e) => return r.invalid(&e, "/reports"),
    };
    let Ok(tz) = jiff::tz::db().get(ztgw_config::policy::DEFAULT_TIMEZONE) else {
        return r.invalid("the time zone database has no Africa/Casablanca", "/");
    };
    let policy = r.ctx().policy.current();
    let read = r
        .read_journal(move |ctx| -> Result<_, String> {
            let dir = &ctx.settings.journal.dir;
            let limit = ctx.journal.durable_end();
            let verified = verify_dir_until(dir, Some(&ctx.journal.public_key()), None, limit)
                .map_err(|d| d.to_string())?;
            let Some(cp) = verified.last_checkpoint else {
                return Ok(None);
            };
            // A day of margin on each side: days are counted in the gateway's zone.
            let filter = Filter {
                since: Some(civil(from) - time::Duration::days(1)),
                until: Some(civil(to) + time::Duration::days(2)),
                ..Default::default()
            };
            let (records, _) =
                query::read_at_most(dir, &filter, limit, MAX_READ).map_err(|d| d.to_string())?;
            let records: Vec<_> = records
                .into_iter()
                .filter(|r| r.seq < cp.head.size)
                .collect();
            Ok(Some((records, cp)))
        })
        .await;
    let (records, cp) = match read {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => {
            return r.ok(layout::failed(
                &r.page,
                r.page.t(Msg::Reports),
                r.page.t(Msg::ReportNeedsCheckpoint),
                "/",
            ));
        }
        Ok(Err(damage)) => return r.damaged(&damage),
        Err(response) => return response,
    };
    let at =
        jiff::Timestamp::from_second(now.unix_timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let days = report::hours(&records, &policy.policy, &tz, from, to, None, at);
    let mut months: BTreeMap<String, Month> = BTreeMap::new();
    for d in &days {
        let m = months.entry(d.employee.clone()).or_default();
        m.connected += d.connected_secs;
        m.scheduled += d.scheduled_secs;
        m.outside += d.outside_secs;
        m.attempts += d.out_of_hours_attempts;
    }
    let posture = report::posture(&records, &tz, from, to);
    let mut refusals: BTreeMap<String, u32> = BTreeMap::new();
    for day in &posture {
        for (reason, n) in &day.denied_by_reason {
            *refusals.entry(reason.clone()).or_insert(0) += n;
        }
    }
    let hours = |secs: i64| secs as f64 / 3600.0;
    let p = &r.page;
    let title = format!("{} — {}", p.t(Msg::Reports), &from.to_string()[..7]);
    let checkpoint = OffsetDateTime::from_unix_timestamp(cp.head.time_ms.div_euclid(1000))
        .map(when)
        .unwrap_or_else(|_| html! {});
    r.ok(layout::frame(
        p,
        &title,
        html! {
            form method="get" action="/reports" {
                (layout::field("month", "month", p.t(Msg::Month), Some(&from.to_string()[..7]), true))
                button type="submit" { (p.t(Msg::Show)) }
            }
            p { (p.t(Msg::LastCheckpoint)) " " (checkpoint) " · " (cp.head.size) " " (p.t(Msg::Records)) }

            h2 { (p.t(Msg::HoursAgainstSchedule)) }
            @if months.is_empty() { p { (p.t(Msg::None_)) } } @else {
                (chart::bars("hours", p.t(Msg::HoursAgainstSchedule), &months.iter().map(|(e, m)| Bar {
                    label: e.clone(), value: hours(m.connected), target: Some(hours(m.scheduled)),
                }).collect::<Vec<_>>()))
                table {
                    thead { tr {
                        th scope="col" { (p.t(Msg::Employee)) }
                        th scope="col" { (p.t(Msg::Connected)) }
                        th scope="col" { (p.t(Msg::Scheduled)) }
                        th scope="col" { (p.t(Msg::OutsideSchedule)) }
                        th scope="col" { (p.t(Msg::OutOfHoursAttempts)) }
                    } }
                    tbody { @for (e, m) in &months { tr {
                        td { (e) }
                        td { (format!("{:.1}", hours(m.connected))) }
                        td { (format!("{:.1}", hours(m.scheduled))) }
                        td { (format!("{:.1}", hours(m.outside))) }
                        td { (m.attempts) }
                    } } }
                }
            }

            h2 { (p.t(Msg::PostureCompliance)) }
            @let checked: Vec<_> = posture.iter().filter(|d| d.posture_checks > 0).collect();
            @if checked.is_empty() { p { (p.t(Msg::None_)) } } @else {
                (chart::bars("posture", p.t(Msg::PostureCompliance), &checked.iter().map(|d| Bar {
                    label: d.date.clone(),
                    value: 100.0 * f64::from(d.posture_compliant) / f64::from(d.posture_checks),
                    target: Some(100.0),
                }).collect::<Vec<_>>()))
                table {
                    thead { tr {
                        th scope="col" { (p.t(Msg::Date)) }
                        th scope="col" { (p.t(Msg::Checks)) }
                        th scope="col" { (p.t(Msg::Compliant)) }
                    } }
                    tbody { @for d in &checked { tr {
                        td { (d.date) }
                        td { (d.posture_checks) }
                        td { (format!("{:.0}", 100.0 * f64::from(d.posture_compliant) / f64::from(d.posture_checks))) }
                    } } }
                }
            }

            h2 { (p.t(Msg::RefusalsByReason)) }
            @if !refusals.is_empty() {
                (chart::bars("refusals", p.t(Msg::RefusalsByReason), &refusals.iter().map(|(reason, n)| Bar {
                    label: reason.clone(), value: f64::from(*n), target: None,
                }).collect::<Vec<_>>()))
            }
            (reason_table(p, &refusals, Msg::NoRefusalsInPeriod))
        },
    ))
}

/// The first and last day of `YYYY-MM` (default: the month of `now`, UTC).
fn month(
    asked: Option<&str>,
    now: OffsetDateTime,
) -> Result<(jiff::civil::Date, jiff::civil::Date), String> {
    let (year, month) = match asked {
        None => (now.year(), u8::from(now.month())),
        Some(s) => {
            let (y, m) = s
                .split_once('-')
                .ok_or_else(|| format!("month: {s:?} is not YYYY-MM"))?;
            let y: i32 = y
                .parse()
                .map_err(|_| format!("month: {s:?} is not YYYY-MM"))?;
            let m: u8 = m
                .parse()
                .map_err(|_| format!("month: {s:?} is not YYYY-MM"))?;
            (y, m)
        }
    };
    let year = i16::try_from(year).map_err(|_| "month: the year is out of range".to_owned())?;
    let month = i8::try_from(month).map_err(|_| "month: 01 to 12".to_owned())?;
    let first = jiff::civil::Date::new(year, month, 1).map_err(|_| "month: 01 to 12".to_owned())?;
    Ok((first, first.last_of_month()))
}

/// Midnight UTC of a civil date.
fn civil(d: jiff::civil::Date) -> OffsetDateTime {
    time::Date::from_calendar_date(
        i32::from(d.year()),
        time::Month::try_from(u8::try_from(d.month()).unwrap_or(1)).unwrap_or(time::Month::January),
        u8::try_from(d.day()).unwrap_or(1),
    )
    .map(|d| d.midnight().assume_utc())
    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_its_first_and_last_day() {
        let now = time::macros::datetime!(2027-02-14 10:00 UTC);
        let d = |s: &str| s.parse::<jiff::civil::Date>().expect("date");
        assert_eq!(month(None, now), Ok((d("2027-02-01"), d("2027-02-28"))));
        assert_eq!(
            month(Some("2028-02"), now),
            Ok((d("2028-02-01"), d("2028-02-29")))
        );
        for bad in ["2027", "2027-13", "x-01", "2027-00"] {
            assert!(month(Some(bad), now).is_err(), "{bad}");
        }
    }
}
