//! Telework schedules (G2): days of the week, hours, a time zone, dated exceptions and
//! dated additions. Every function takes the instant it reasons about; none reads a
//! clock.

use std::fmt;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};

/// How far ahead [`Schedule::next_start`] looks for the next window.
pub const MAX_LOOKAHEAD_DAYS: i32 = 400;
/// How many consecutive days a window may span when it runs through midnight.
const MAX_WINDOW_DAYS: i32 = 8;
/// Minutes in a day; an end of `24:00` is written as this.
pub const DAY_MINUTES: u16 = 24 * 60;

/// A half-open range of minutes since local midnight: `[start, end)`, `end <= 1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeRange {
    pub start: u16,
    pub end: u16,
}

impl TimeRange {
    /// Parses `HH:MM-HH:MM` (the end may be `24:00`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').ok_or_else(|| {
            format!("{s:?} is not a time range: write HH:MM-HH:MM, e.g. 08:30-16:30")
        })?;
        let start = minutes(a, false).map_err(|e| format!("{s:?}: {e}"))?;
        let end = minutes(b, true).map_err(|e| format!("{s:?}: {e}"))?;
        if start >= end {
            return Err(format!(
                "{s:?}: the range ends before it starts (a range within one day; split ranges across midnight)"
            ));
        }
        Ok(Self { start, end })
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

fn minutes(s: &str, allow_24: bool) -> Result<u16, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HH:MM"))?;
    if h.len() != 2 || m.len() != 2 {
        return Err(format!("{s:?} is not HH:MM"));
    }
    let h: u16 = h.parse().map_err(|_| format!("{s:?} is not HH:MM"))?;
    let m: u16 = m.parse().map_err(|_| format!("{s:?} is not HH:MM"))?;
    if (h, m) == (24, 0) && allow_24 {
        return Ok(DAY_MINUTES);
    }
    if h > 23 || m > 59 {
        return Err(format!("{s:?} is not a time of day"));
    }
    Ok(h * 60 + m)
}

/// Dates with no telework: one day or an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateRange {
    pub first: Date,
    pub last: Date,
}

impl DateRange {
    /// Parses `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once("..").unwrap_or((s, s));
        let first = parse_date(a)?;
        let last = parse_date(b)?;
        if last < first {
            return Err(format!("{s:?}: the date range ends before it starts"));
        }
        Ok(Self { first, last })
    }

    pub fn contains(&self, d: Date) -> bool {
        self.first <= d && d <= self.last
    }
}

impl fmt::Display for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}..{}", self.first, self.last)
        }
    }
}

/// A date with telework outside the usual days, with its own hours or the schedule's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Addition {
    pub date: Date,
    pub hours: Option<TimeRange>,
}

impl Addition {
    /// Parses `YYYY-MM-DD` or `YYYY-MM-DD HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.split_once(' ') {
            Some((d, h)) => Ok(Self {
                date: parse_date(d)?,
                hours: Some(TimeRange::parse(h.trim())?),
            }),
            None => Ok(Self {
                date: parse_date(s)?,
                hours: None,
            }),
        }
    }
}

impl fmt::Display for Addition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hours {
            Some(h) => write!(f, "{} {h}", self.date),
            None => write!(f, "{}", self.date),
        }
    }
}

fn parse_date(s: &str) -> Result<Date, String> {
    let valid_shape =
        s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') && s.as_bytes().get(7) == Some(&b'-');
    if !valid_shape {
        return Err(format!("{s:?} is not a date: write YYYY-MM-DD"));
    }
    s.parse::<Date>()
        .map_err(|_| format!("{s:?} is not a valid date"))
}

/// Parses a weekday written `mon`, `tue`, … `sun`.
pub fn parse_weekday(s: &str) -> Result<Weekday, String> {
    Ok(match s {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => {
            return Err(format!(
                "{s:?} is not a day: write mon, tue, wed, thu, fri, sat or sun"
            ));
        }
    })
}

pub fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

/// A time during which telework is allowed: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// A checked schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub timezone_name: String,
    pub timezone: TimeZone,
    /// The weekdays on which `hours` apply, Monday first.
    pub days: Vec<Weekday>,
    /// Sorted, non-overlapping.
    pub hours: Vec<TimeRange>,
    pub except: Vec<DateRange>,
    pub also: Vec<Addition>,
}

impl Schedule {
    /// Open at every instant: every day, all day, no date excepted.
    pub fn always_open(&self) -> bool {
        self.days.len() == 7
            && self.except.is_empty()
            && self
                .hours
                .first()
                .is_some_and(|r| r.start == 0 && r.end == DAY_MINUTES)
    }

    /// The merged, sorted local ranges open on `date`.
    pub fn ranges_on(&self, date: Date) -> Vec<TimeRange> {
        let mut ranges = Vec::new();
        if self.except.iter().any(|e| e.contains(date)) {
            return ranges;
        }
        if self.days.contains(&date.weekday()) {
            ranges.extend_from_slice(&self.hours);
        }
        for a in self.also.iter().filter(|a| a.date == date) {
            match a.hours {
                Some(h) => ranges.push(h),
                None => ranges.extend_from_slice(&self.hours),
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<TimeRange> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        merged
    }

    /// The windows open on local `date`, as instants.
    pub fn windows_on(&self, date: Date) -> Vec<Window> {
        self.ranges_on(date)
            .into_iter()
            .map(|r| Window {
                start: self.instant(date, r.start),
                end: self.instant(date, r.end),
            })
            .collect()
    }

    /// Whether telework is allowed at `t`.
    pub fn is_open(&self, t: Timestamp) -> bool {
        self.window_at(t).is_some()
    }

    /// The window containing `t`, joined across midnight when one day's hours end at
    /// 24:00 and the next day's begin at 00:00.
    pub fn window_at(&self, t: Timestamp) -> Option<Window> {
        let date = t.to_zoned_datetime(self.timezone.clone()).date();
        let (mut start_date, mut range) = self
            .ranges_on(date)
            .into_iter()
            .find(|r| self.instant(date, r.start) <= t && t < self.instant(date, r.end))
            .map(|r| (date, r))?;
        let (mut end_date, mut end_range) = (date, range);
        for _ in 0..MAX_WINDOW_DAYS {
            if range.start != 0 {
                break;
            }
            let Some(prev) = start_date.yesterday().ok() else {
                break;
            };
            match self.ranges_on(prev).last() {
                Some(r) if r.end == DAY_MINUTES => {
                    start_date = prev;
                    range = *r;
                }
                _ => break,
            }
        }
        for _ in 0..MAX_WINDOW_DAYS {
            if end_range.end != DAY_MINUTES {
                break;
            }
            let Some(next) = end_date.tomorrow().ok() else {
                break;
            };
            match self.ranges_on(next).first() {
                Some(r) if r.start == 0 => {
                    end_date = next;
                    end_range = *r;
                }
                _ => break,
            }
        }
        Some(Window {
            start: self.instant(start_date, range.start),
            end: self.instant(end_date, end_range.end),
        })
    }

    /// The start of the first window that begins after `t`, within
    /// [`MAX_LOOKAHEAD_DAYS`].
    pub fn next_start(&self, t: Timestamp) -> Option<Timestamp> {
        let mut date = t.to_zoned_datetime(self.timezone.clone()).date();
        let mut prev_ends_at_midnight = date
            .yesterday()
            .ok()
            .and_then(|p| self.ranges_on(p).last().map(|r| r.end == DAY_MINUTES))
            .unwrap_or(false);
        for _ in 0..MAX_LOOKAHEAD_DAYS {
            let ranges = self.ranges_on(date);
            for r in &ranges {
                let continues = r.start == 0 && prev_ends_at_midnight;
                let start = self.instant(date, r.start);
                if !continues && start > t {
                    return Some(start);
                }
            }
            prev_ends_at_midnight = ranges.last().is_some_and(|r| r.end == DAY_MINUTES);
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The instant of `minute` minutes after local midnight on `date` (a time that does
    /// not exist because of a daylight-saving jump is moved forward, as clocks are).
    fn instant(&self, date: Date, minute: u16) -> Timestamp {
        let (date, minute) = if minute >= DAY_MINUTES {
            (date.tomorrow().unwrap_or(date), 0)
        } else {
            (date, minute)
        };
        let time =
            Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).unwrap_or(Time::midnight());
        let local = date.to_datetime(time);
        self.timezone
            .to_timestamp(local)
            // Outside jiff's range: only for dates no policy uses.
            .unwrap_or(Timestamp::MAX)
    }

    /// A human description of `t` in this schedule's zone.
    pub fn local(&self, t: Timestamp) -> String {
        let z = t.to_zoned_datetime(self.timezone.clone());
        format!(
            "{} {}",
            weekday_name(z.weekday()),
            z.strftime("%Y-%m-%d %H:%M %Z")
        )
    }

    /// Days that follow each other from `t`, for tests and explanations.
    pub fn plus_days(t: Timestamp, days: i64) -> Timestamp {
        t.checked_add(days.days().hours(0)).unwrap_or(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tz(name: &str) -> TimeZone {
        jiff::tz::db().get(name).expect("zone")
    }

    fn office(zone: &str) -> Schedule {
        Schedule {
            timezone_name: zone.into(),
            timezone: tz(zone),
            days: ["mon", "tue", "wed", "thu", "fri"]
                .iter()
                .map(|d| parse_weekday(d).expect("day"))
                .collect(),
            hours: vec![
                TimeRange::parse("08:30-12:30").expect("r"),
                TimeRange::parse("14:00-16:30").expect("r"),
            ],
            except: vec![
                DateRange::parse("2027-01-01").expect("d"),
                DateRange::parse("2027-08-02..2027-08-06").expect("d"),
            ],
            also: vec![Addition::parse("2027-01-09 09:00-13:00").expect("a")],
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    /// The instant whose local time in Africa/Casablanca is the civil part of `s` (its
    /// offset is ignored).
    fn casablanca(s: &str) -> Timestamp {
        let civil: jiff::civil::DateTime = s[..19].parse().expect("civil time");
        tz("Africa/Casablanca")
            .to_ambiguous_timestamp(civil)
            .compatible()
            .expect("in the zone")
    }

    #[test]
    fn open_and_closed_instancasablanca() {
        let s = office("Africa/Casablanca");
        // Instants are given in Casablanca's local time, converted with the system's
        // time-zone database (its offsets have changed between tzdata releases: Ramadan
        // shifts, then none from 2026f), so the schedule is checked in local hours
        // whatever the offset of the day.
        let cases: &[(&str, bool)] = &[
            ("2027-04-06T09:00:00+01:00", true),
            ("2027-04-06T08:29:59+01:00", false),
            ("2027-04-06T08:30:00+01:00", true),
            ("2027-04-06T12:30:00+01:00", false),
            ("2027-04-06T13:00:00+01:00", false),
            ("2027-04-06T16:29:00+01:00", true),
            ("2027-04-10T10:00:00+01:00", false), // Saturday
            ("2027-01-01T10:00:00+01:00", false), // exception
            ("2027-08-04T10:00:00+01:00", false), // exception range
            ("2027-01-09T10:00:00+01:00", true),  // a Saturday added
            ("2027-01-09T14:30:00+01:00", false), // outside the added hours
            ("2027-02-16T08:30:00+00:00", true),  // Ramadan: 08:30 local is 08:30 UTC
            ("2027-02-16T08:29:00+00:00", false),
        ];
        for (t, open) in cases {
            assert_eq!(s.is_open(casablanca(t)), *open, "{t}");
        }
    }

    #[test]
    fn windows_and_next_starcasablanca() {
        let s = office("Africa/Casablanca");
        let w = s
            .window_at(casablanca("2027-04-06T09:00:00+01:00"))
            .expect("open");
        assert_eq!(w.start, casablanca("2027-04-06T08:30:00+01:00"));
        assert_eq!(w.end, casablanca("2027-04-06T12:30:00+01:00"));
        assert_eq!(
            s.next_start(casablanca("2027-04-06T13:00:00+01:00")),
            Some(casablanca("2027-04-06T14:00:00+01:00"))
        );
        // Friday evening → Monday morning.
        assert_eq!(
            s.next_start(casablanca("2027-04-09T17:00:00+01:00")),
            Some(casablanca("2027-04-12T08:30:00+01:00"))
        );
        // From inside a window, the next start is the next window.
        assert_eq!(
            s.next_start(casablanca("2027-04-06T09:00:00+01:00")),
            Some(casablanca("2027-04-06T14:00:00+01:00"))
        );
        // Across the end of Ramadan the local hours stay 08:30 while UTC moves.
        assert_eq!(
            s.next_start(casablanca("2027-03-12T17:00:00+00:00")),
            Some(casablanca("2027-03-15T08:30:00+01:00"))
        );
    }

    #[test]
    fn windows_join_across_midnight() {
        let s = Schedule {
            timezone_name: "UTC".into(),
            timezone: TimeZone::UTC,
            days: vec![Weekday::Monday, Weekday::Tuesday],
            hours: vec![TimeRange::parse("00:00-24:00").expect("r")],
            except: vec![],
            also: vec![],
        };
        assert!(!s.always_open(), "two days a week");
        let w = s.window_at(ts("2027-03-01T12:00:00Z")).expect("open");
        assert_eq!(w.start, ts("2027-03-01T00:00:00Z"));
        assert_eq!(w.end, ts("2027-03-03T00:00:00Z"));
        assert_eq!(
            s.next_start(ts("2027-03-01T12:00:00Z")),
            Some(ts("2027-03-08T00:00:00Z"))
        );
    }

    #[test]
    fn daylight_saving_time_is_honoured() {
        let s = office("Europe/Paris");
        // Paris is UTC+1 in winter and UTC+2 in summer: 08:30 local both times.
        assert!(s.is_open(ts("2027-01-05T07:30:00Z")));
        assert!(!s.is_open(ts("2027-01-05T07:29:00Z")));
        assert!(s.is_open(ts("2027-07-06T06:30:00Z")));
        assert!(!s.is_open(ts("2027-07-06T06:29:00Z")));
    }

    #[test]
    fn a_schedule_that_never_opens_has_no_next_start() {
        let mut s = office("UTC");
        s.days.clear();
        s.also.clear();
        assert_eq!(s.next_start(ts("2027-03-02T09:00:00Z")), None);
    }

    #[test]
    fn ranges_and_dates_are_checked() {
        for bad in [
            "8:30-16:30",
            "08:30",
            "16:30-08:30",
            "08:30-24:01",
            "25:00-26:00",
        ] {
            assert!(TimeRange::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TimeRange::parse("08:30-24:00").map(|r| r.end),
            Ok(DAY_MINUTES)
        );
        for bad in [
            "2027-02-30",
            "27-01-01",
            "2027-1-1",
            "2027-01-05..2027-01-01",
        ] {
            assert!(DateRange::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_weekday("monday").is_err());
    }
}
