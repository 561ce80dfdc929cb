//! Reading events back for auditors: filtered, as JSON lines or CSV.

use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use super::frame::Kind;
use super::segment;
use super::verify::{Damage, Place, Walk};

/// Which events to read. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub employee: Option<String>,
    pub device: Option<String>,
    /// Event types (`device.revoked`); a trailing `.*` matches a family (`device.*`).
    pub kinds: Vec<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl Filter {
    fn matches(&self, time: OffsetDateTime, event: &serde_json::Value) -> bool {
        let field = |name: &str| event.get(name).and_then(|v| v.as_str());
        let kind = field("type").unwrap_or("");
        self.since.is_none_or(|s| time >= s)
            && self.until.is_none_or(|u| time < u)
            && self
                .employee
                .as_deref()
                .is_none_or(|e| field("employee") == Some(e))
            && self.device.as_deref().is_none_or(|d| {
                field("device") == Some(d)
                    || event
                        .get("devices")
                        .and_then(|v| v.as_array())
                        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(d)))
            })
            && (self.kinds.is_empty()
                || self.kinds.iter().any(|k| match k.strip_suffix(".*") {
                    Some(family) => kind
                        .strip_prefix(family)
                        .is_some_and(|rest| rest.starts_with('.')),
                    None => kind == k,
                }))
    }
}

/// One event as auditors read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub event: serde_json::Value,
    /// Which gateway's journal it comes from, when several are read together
    /// ([`read_merged`]); its sequence number is that journal's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// Reads the events of the journal in `dir` that match `filter`, checking the chain as
/// it goes (damage stops the read: run `verify` for the full check with signatures).
pub fn read(dir: &Path, filter: &Filter) -> Result<Vec<Record>, Damage> {
    read_until(dir, filter, None)
}

/// [`read`] of a live journal, stopping where its acknowledged part ends.
pub fn read_until(
    dir: &Path,
    filter: &Filter,
    limit: segment::Limit,
) -> Result<Vec<Record>, Damage> {
    read_at_most(dir, filter, limit, usize::MAX).map(|(records, _)| records)
}

/// [`read_until`], keeping at most `max` matching events: the read stops at the segment
/// where one more matched, so memory stays bounded whatever the journal's size. Returns
/// the events and whether more matched.
pub fn read_at_most(
    dir: &Path,
    filter: &Filter,
    limit: segment::Limit,
    max: usize,
) -> Result<(Vec<Record>, bool), Damage> {
    let top = |what: String| Damage {
        place: Place {
            segment: dir.display().to_string(),
            offset: 0,
            seq: None,
        },
        what,
    };
    let mut walk = Walk::start(dir, None)?;
    let mut out = Vec::new();
    let mut bad: Option<Damage> = None;
    let mut more = false;
    for seg in segment::list(dir).map_err(|e| top(format!("cannot list the journal: {e}")))? {
        if more {
            break;
        }
        if walk.purged(&seg) {
            continue;
        }
        let Some(bytes) = segment::read_limited(&seg, limit)
            .map_err(|e| top(format!("cannot read {}: {e}", seg.name())))?
        else {
            break;
        };
        walk.segment(&seg, &bytes, None, |f| {
            if f.kind != Kind::Event || bad.is_some() {
                return;
            }
            let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(f.time_ms) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            match serde_json::from_slice::<serde_json::Value>(f.payload) {
                Ok(_) if more => {}
                Ok(event) if filter.matches(time, &event) => {
                    if out.len() < max {
                        out.push(Record {
                            seq: f.seq,
                            time,
                            event,
                            gateway: None,
                        });
                    } else {
                        more = true;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    bad = Some(Damage {
                        place: Place {
                            segment: seg.name(),
                            offset: 0,
                            seq: Some(f.seq),
                        },
                        what: format!("the event is not valid JSON: {e}"),
                    })
                }
            }
        })?;
    }
    match bad {
        Some(d) => Err(d),
        None => Ok((out, more)),
    }
}

/// The events of several gateways' journals that match `filter`, merged by time (a tie
/// keeps the order of `dirs`, then of each journal). With more than one directory each
/// record names its gateway: the name its journal's `gateway.started` gives, or else the
/// directory's name.
pub fn read_merged(dirs: &[std::path::PathBuf], filter: &Filter) -> Result<Vec<Record>, Damage> {
    if let [one] = dirs {
        return read(one, filter);
    }
    let mut all = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let name = journal_name(dir)?;
        for mut r in read(dir, filter)? {
            r.gateway = Some(name.clone());
            all.push((i, r));
        }
    }
    all.sort_by(|(i, a), (j, b)| (a.time, i, a.seq).cmp(&(b.time, j, b.seq)));
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// The name a journal's gateway gave itself at its last start, or the directory's name.
pub fn journal_name(dir: &Path) -> Result<String, Damage> {
    let started = Filter {
        kinds: vec!["gateway.started".into()],
        ..Filter::default()
    };
    let named = read(dir, &started)?.into_iter().rev().find_map(|r| {
        r.event
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_owned)
    });
    Ok(named.unwrap_or_else(|| {
        dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }))
}

/// One JSON object per line: `{"seq":…,"time":…,"event":{…}}`.
pub fn to_jsonl(records: &[Record]) -> String {
    records
        .iter()
        .filter_map(|r| serde_json::to_string(r).ok())
        .map(|l| l + "\n")
        .collect()
}

/// CSV with the common columns first and the whole event as JSON last.
pub fn to_csv(records: &[Record]) -> String {
    const COLUMNS: [&str; 6] = ["type", "employee", "device", "operator", "reason", "role"];
    // Merged journals: each row names its gateway, first.
    let merged = records.iter().any(|r| r.gateway.is_some());
    let mut out = String::from(if merged { "gateway," } else { "" });
    out.push_str("seq,time,type,employee,device,operator,reason,role,event\n");
    for r in records {
        let time = r
            .time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut row = Vec::new();
        if merged {
            row.push(r.gateway.clone().unwrap_or_default());
        }
        row.extend([r.seq.to_string(), time]);
        for c in COLUMNS {
            row.push(
                r.event
                    .get(c)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned(),
            );
        }
        row.push(r.event.to_string());
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    // A leading =, +, - or @ is made inert so a spreadsheet never runs it as a formula.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_fields_families_and_times() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("t");
        let e = serde_json::json!({"type": "device.revoked", "device": "dev-1", "employee": "e1"});
        let f = |f: Filter| f.matches(t, &e);
        assert!(f(Filter::default()));
        assert!(f(Filter {
            kinds: vec!["device.*".into()],
            ..Default::default()
        }));
        assert!(!f(Filter {
            kinds: vec!["dev.*".into()],
            ..Default::default()
        }));
        assert!(f(Filter {
            employee: Some("e1".into()),
            device: Some("dev-1".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            employee: Some("e2".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            since: Some(t + time::Duration::SECOND),
            ..Default::default()
        }));
        assert!(!f(Filter {
            until: Some(t),
            ..Default::default()
        }));
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }
}
