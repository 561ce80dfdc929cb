//! Refused enrolments (requests anyone can send, without a certificate), counted per
//! source and minute and journaled as one `enrolment.refusals` record each, instead of
//! one fsync'd record per refusal: a flood of bogus enrolments cannot fill the journal's
//! disk faster than a few records a minute per source.
//!
//! Bounded: at most [`MAX_BUCKETS`] sources a minute are told apart; refusals from more
//! are counted under the source `other`. Nothing is dropped: every refusal is in a count.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use time::OffsetDateTime;

use super::limits::source_of;
use crate::journal::Event;

/// Sources told apart within one minute.
pub const MAX_BUCKETS: usize = 4096;
/// Invitation ids kept per bucket, as a sample for the security unit.
pub const MAX_INVITATIONS: usize = 16;

#[derive(Debug, Default)]
struct Bucket {
    counts: BTreeMap<String, u64>,
    invitations: Vec<String>,
    invitations_more: u64,
}

/// The refusals not yet journaled.
#[derive(Debug, Default)]
pub struct RefusalTally {
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_key: HashMap<(i64, String), Bucket>,
    /// Sources told apart, per minute.
    per_minute: HashMap<i64, usize>,
}

impl Buckets {
    fn entry(&mut self, minute: i64, source: String) -> &mut Bucket {
        let key = (minute, source);
        if !self.by_key.contains_key(&key) {
            *self.per_minute.entry(minute).or_insert(0) += 1;
        }
        self.by_key.entry(key).or_default()
    }

    fn remove(&mut self, key: &(i64, String)) -> Option<Bucket> {
        let b = self.by_key.remove(key)?;
        if let Some(n) = self.per_minute.get_mut(&key.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_minute.remove(&key.0);
            }
        }
        Some(b)
    }
}

fn minute_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(60)
}

impl RefusalTally {
    /// Counts a refused enrolment from `source` (with its `reason` code and, when it
    /// named one, the invitation).
    pub fn record(
        &self,
        source: IpAddr,
        reason: &str,
        invitation: Option<&str>,
        now: OffsetDateTime,
    ) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let minute = minute_of(now);
        let mut key = (minute, source_of(source).to_string());
        if !buckets.by_key.contains_key(&key)
            && buckets.per_minute.get(&minute).copied().unwrap_or(0) >= MAX_BUCKETS
        {
            key.1 = "other".into();
        }
        let b = buckets.entry(key.0, key.1);
        *b.counts.entry(reason.to_owned()).or_insert(0) += 1;
        if let Some(inv) = invitation {
            if b.invitations.len() < MAX_INVITATIONS {
                if !b.invitations.iter().any(|i| i == inv) {
                    b.invitations.push(inv.to_owned());
                }
            } else if !b.invitations.iter().any(|i| i == inv) {
                b.invitations_more += 1;
            }
        }
    }

    /// The records of minutes that are over at `now` (all of them with `all`), taken
    /// out of the tally, oldest first.
    pub fn take(&self, now: OffsetDateTime, all: bool) -> Vec<Event> {
        let current = minute_of(now);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let due: Vec<(i64, String)> = buckets
            .by_key
            .keys()
            .filter(|(m, _)| all || *m < current)
            .cloned()
            .collect();
        let mut out: Vec<((i64, String), Bucket)> = due
            .into_iter()
            .filter_map(|k| buckets.remove(&k).map(|b| (k, b)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter()
            .map(|((minute, source), b)| Event::EnrolmentRefusals {
                source,
                minute: crate::enrolment::rfc3339(
                    OffsetDateTime::from_unix_timestamp(minute * 60)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                ),
                counts: b.counts,
                invitations: b.invitations,
                invitations_more: b.invitations_more,
            })
            .collect()
    }

    /// Puts records that could not be journaled back, to be tried again.
    pub fn put_back(&self, events: Vec<Event>) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        for e in events {
            if let Event::EnrolmentRefusals {
                source,
                minute,
                counts,
                invitations,
                invitations_more,
            } = e
            {
                let minute =
                    OffsetDateTime::parse(&minute, &time::format_description::well_known::Rfc3339)
                        .map_or(0, minute_of);
                let b = buckets.entry(minute, source);
                for (reason, n) in counts {
                    *b.counts.entry(reason).or_insert(0) += n;
                }
                for inv in invitations {
                    if b.invitations.len() < MAX_INVITATIONS {
                        b.invitations.push(inv);
                    } else {
                        b.invitations_more += 1;
                    }
                }
                b.invitations_more += invitations_more;
            }
        }
    }

    /// Refusals counted and not yet journaled.
    pub fn pending(&self) -> u64 {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .by_key
            .values()
            .flat_map(|b| b.counts.values())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).expect("time")
    }

    fn counts(e: &Event) -> (String, u64) {
        match e {
            Event::EnrolmentRefusals { source, counts, .. } => {
                (source.clone(), counts.values().sum())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_record_per_source_and_minute_and_nothing_lost() {
        let t = RefusalTally::default();
        let a: IpAddr = "203.0.113.5".parse().expect("ip");
        let v6a: IpAddr = "2001:db8:0:1::5".parse().expect("ip");
        let v6b: IpAddr = "2001:db8:0:1::9".parse().expect("ip");
        for i in 0..1000 {
            t.record(a, "invitation_unknown", Some(&format!("inv{i}")), at(1));
        }
        t.record(v6a, "request_malformed", None, at(2));
        t.record(v6b, "rate_limited", None, at(3));
        assert!(t.take(at(30), false).is_empty(), "the minute is not over");
        let events = t.take(at(61), false);
        assert_eq!(events.len(), 2, "{events:?}");
        let mut seen: Vec<(String, u64)> = events.iter().map(counts).collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("2001:db8:0:1::".to_owned(), 2),
                ("203.0.113.5".to_owned(), 1000)
            ]
        );
        let sampled = events.iter().find_map(|e| match e {
            Event::EnrolmentRefusals {
                invitations,
                invitations_more,
                ..
            } if !invitations.is_empty() => Some((invitations.len(), *invitations_more)),
            _ => None,
        });
        assert_eq!(
            sampled,
            Some((MAX_INVITATIONS, 1000 - MAX_INVITATIONS as u64))
        );
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn sources_past_the_bound_are_counted_as_other() {
        let t = RefusalTally::default();
        for i in 0..(MAX_BUCKETS as u32 + 10) {
            t.record(
                IpAddr::from(i.to_be_bytes()),
                "invitation_unknown",
                None,
                at(0),
            );
        }
        let events = t.take(at(0), true);
        assert_eq!(events.len(), MAX_BUCKETS + 1);
        let total: u64 = events.iter().map(|e| counts(e).1).sum();
        assert_eq!(total, MAX_BUCKETS as u64 + 10, "every refusal is counted");
        assert!(events.iter().any(|e| counts(e) == ("other".to_owned(), 10)));
        // Put back after a failed write, then taken again intact.
        t.put_back(events);
        assert_eq!(t.pending(), MAX_BUCKETS as u64 + 10);
    }
}
