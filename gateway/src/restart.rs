//! What a gateway finds of its previous run when it starts (#21, restarts).
//!
//! Sessions live in memory: a restart ends them all. A stop (SIGTERM) ends them in the
//! journal (`gateway-stopped`); a crash cannot, so at start the gateway reads the journal's
//! tail, ends in the journal every session the previous run admitted and never ended
//! (`gateway-restarted`, lasting until the last record that run wrote: no session is left
//! open in the evidence), and remembers both kinds so that a connected agent asking about
//! its session hears why it ended and admits itself again, without the employee doing
//! anything. Never a half-alive session: the data plane starts empty, and a tunnel is
//! only ever installed by a new admission.

use std::collections::BTreeMap;
use std::path::Path;

use time::OffsetDateTime;
use ztgw_journal::follow::Follower;
use ztgw_journal::frame::Kind;
use ztgw_journal::segment::{self, Limit};
use ztgw_pki::{DeviceId, EmployeeId};

/// The end reason for sessions a crash left open.
pub const RESTARTED: &str = "gateway-restarted";
/// The end reason a stop gives (`EndReason::Shutdown`).
pub const STOPPED: &str = "gateway-stopped";

/// A session the previous run left open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOpen {
    pub session: String,
    pub device: DeviceId,
    pub employee: EmployeeId,
    pub started: OffsetDateTime,
}

/// What the previous run left.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Previous {
    /// Sessions admitted and never ended (the run crashed).
    pub left_open: Vec<LeftOpen>,
    /// When the previous run wrote its last record.
    pub last_record: Option<OffsetDateTime>,
    /// Sessions the previous run ended as it stopped.
    pub stopped: Vec<String>,
}

/// Reads the journal in `dir` (up to `limit`) from the segment in force at `since` on:
/// sessions that can still have been live then (`since` is the start time minus the
/// longest a session may last).
pub fn previous_run(dir: &Path, limit: Limit, since: OffsetDateTime) -> Result<Previous, String> {
    let segments = segment::list(dir).map_err(|e| format!("cannot list the journal: {e}"))?;
    let since_ms = (since.unix_timestamp_nanos() / 1_000_000) as i64;
    // The last segment begun before `since`, or the first one.
    let mut from_seq = None;
    for seg in &segments {
        let Ok((header, time_ms)) = segment::read_header(&seg.path) else {
            continue;
        };
        if from_seq.is_none() || time_ms <= since_ms {
            from_seq = Some(header.first_seq);
        }
    }
    let mut out = Previous::default();
    let Some(from_seq) = from_seq else {
        return Ok(out);
    };
    let mut open: BTreeMap<String, LeftOpen> = BTreeMap::new();
    let mut follower = Follower::new(dir, from_seq);
    loop {
        let batch = follower
            .next_batch(limit, 4096)
            .map_err(|d| format!("the journal cannot be read: {d}"))?;
        if batch.records.is_empty() {
            break;
        }
        for r in batch.records {
            out.last_record = Some(r.time);
            if r.kind != Kind::Event {
                continue;
            }
            let Ok(event) = serde_json::from_slice::<serde_json::Value>(&r.payload) else {
                continue;
            };
            let field = |k: &str| event.get(k).and_then(|v| v.as_str()).unwrap_or("");
            match field("type") {
                "gateway.started" => {
                    // A new run: what the one before left is its successor's business
                    // (already settled when that run started), and only the last stop counts.
                    open.clear();
                    out.stopped.clear();
                }
                "session.started" => {
                    if let (Ok(device), Ok(employee)) = (
                        DeviceId::new(field("device")),
                        EmployeeId::new(field("employee")),
                    ) {
                        open.insert(
                            field("session").to_owned(),
                            LeftOpen {
                                session: field("session").to_owned(),
                                device,
                                employee,
                                started: r.time,
                            },
                        );
                    }
                }
                "session.ended" => {
                    open.remove(field("session"));
                    if field("reason") == STOPPED {
                        out.stopped.push(field("session").to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    out.left_open = open.into_values().collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use ztgw_journal::{Event, Journal, JournalConfig, JournalKey};

    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time")
    }

    fn started(n: u32) -> Event {
        Event::SessionStarted {
            session: format!("s-{n}"),
            device: DeviceId::new(format!("dev-{n}")).expect("id"),
            employee: EmployeeId::new(format!("e{n}")).expect("id"),
            role: "finance".into(),
            schedule: "office".into(),
        }
    }

    fn ended(n: u32, reason: &str) -> Event {
        Event::SessionEnded {
            session: format!("s-{n}"),
            device: DeviceId::new(format!("dev-{n}")).expect("id"),
            employee: EmployeeId::new(format!("e{n}")).expect("id"),
            reason: reason.into(),
            duration_secs: 1,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    fn gateway_started() -> Event {
        Event::GatewayStarted {
            version: "t".into(),
            policy_sha256: String::new(),
            name: None,
        }
    }

    #[test]
    fn a_crash_leaves_its_open_sessions_and_a_stop_its_ended_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (j, _) = Journal::open(
            JournalConfig {
                dir: dir.path().to_owned(),
                gateway: [1; 32],
                key: JournalKey::generate().expect("key").0,
                segment_max_bytes: 4096,
                segment_max_age: time::Duration::days(1),
                group: None,
            },
            at(0),
        )
        .expect("journal");
        // A first run: s-1 ends, s-2 is stopped with the gateway.
        for (e, t) in [
            (gateway_started(), 0),
            (started(1), 1),
            (started(2), 2),
            (ended(1, "disconnected"), 3),
            (ended(2, STOPPED), 4),
        ] {
            j.append(&e, at(t)).expect("append");
        }
        let p = previous_run(dir.path(), j.durable_end(), at(-100)).expect("read");
        assert_eq!(p.stopped, vec!["s-2".to_owned()]);
        assert!(p.left_open.is_empty());
        // A second run that crashes with s-3 and s-4 live (s-4 ended).
        for (e, t) in [
            (gateway_started(), 10),
            (started(3), 11),
            (started(4), 12),
            (ended(4, "idle"), 13),
            (started(5), 14),
        ] {
            j.append(&e, at(t)).expect("append");
        }
        // Many more records, so that the journal has several segments.
        for n in 100..200 {
            j.append(&started(n), at(20)).expect("append");
            j.append(&ended(n, "disconnected"), at(21)).expect("append");
        }
        assert!(segment::list(dir.path()).expect("list").len() > 2);
        let p = previous_run(dir.path(), j.durable_end(), at(-100)).expect("read");
        assert!(p.stopped.is_empty(), "only the last run's stop counts");
        let open: Vec<&str> = p.left_open.iter().map(|s| s.session.as_str()).collect();
        assert_eq!(open, vec!["s-3", "s-5"]);
        assert_eq!(p.left_open[0].started, at(11));
        assert_eq!(p.last_record, Some(at(21)));
    }
}
