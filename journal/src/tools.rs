//! The auditors' commands, shared by `ztgw journal …`/`ztgw report …` (on the gateway)
//! and `ztgw-audit` (on a copy of the journal, anywhere): verify, query, export,
//! checkpoint, and the hours and posture reports. They read the journal's files and never
//! write them; each returns what to print, or a [`ToolError`] that says which exit code
//! it is.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use time::OffsetDateTime;

use crate::query::{self, Filter, Record};
use crate::verify::{Damage, verify_dir};
use crate::{PublicKey, SignedTreeHead, report};

/// Why a command failed, by the exit code it means (see docs/security-units.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// A wrong command line (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A file given (key, checkpoint, policy) cannot be used (exit 3).
    #[error("{0}")]
    Config(String),
    /// The journal is damaged or was tampered with (exit 7).
    #[error("journal damaged: {0}")]
    Damaged(String),
    /// Anything else (exit 1).
    #[error("{0}")]
    Failure(String),
}

impl From<Damage> for ToolError {
    fn from(d: Damage) -> Self {
        Self::Damaged(d.to_string())
    }
}

/// UTC, RFC 3339: how every time is printed.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t}"))
}

/// `--employee`, `--device`, `--type`, `--since`, `--until`.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only events about this employee.
    #[arg(long)]
    pub employee: Option<String>,
    /// Only events about this device.
    #[arg(long)]
    pub device: Option<String>,
    /// An event type, or a family like 'device.*'; repeat for more.
    #[arg(long = "type")]
    pub kinds: Vec<String>,
    /// From this instant or date (RFC 3339, or YYYY-MM-DD for midnight UTC).
    #[arg(long, value_parser = parse_instant)]
    pub since: Option<OffsetDateTime>,
    /// Until this instant or date (exclusive).
    #[arg(long, value_parser = parse_instant)]
    pub until: Option<OffsetDateTime>,
}

impl FilterArgs {
    pub fn filter(&self) -> Filter {
        Filter {
            employee: self.employee.clone(),
            device: self.device.clone(),
            kinds: self.kinds.clone(),
            since: self.since,
            until: self.until,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

/// `--format` and `--out` of an export.
#[derive(Debug, Clone, Args)]
pub struct ExportTo {
    /// jsonl (one event per line, every field) or csv (one row per event).
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl ExportTo {
    /// Writes `records` where asked; what is left to print (nothing when written to a
    /// file).
    pub fn write(&self, records: &[Record]) -> Result<String, ToolError> {
        let text = export(records, self.format);
        match &self.out {
            Some(path) => std::fs::write(path, text)
                .map(|()| String::new())
                .map_err(|e| ToolError::Failure(format!("{}: {e}", path.display()))),
            None => Ok(text),
        }
    }
}

/// The days of a report.
#[derive(Debug, Clone, Args)]
pub struct Days {
    /// First day (YYYY-MM-DD).
    #[arg(long)]
    pub from: jiff::civil::Date,
    /// Last day, included.
    #[arg(long)]
    pub to: jiff::civil::Date,
    /// Days are counted in this time zone (default Africa/Casablanca).
    #[arg(long, default_value = ztgw_config::policy::DEFAULT_TIMEZONE)]
    pub timezone: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Days {
    fn zone(&self) -> Result<jiff::tz::TimeZone, ToolError> {
        if self.to < self.from {
            return Err(ToolError::Usage("--to is before --from".into()));
        }
        jiff::tz::db()
            .get(&self.timezone)
            .map_err(|_| ToolError::Usage(format!("{:?} is not an IANA time zone", self.timezone)))
    }
}

/// Verifies the journal in `dir`, with the public key in `key` when given and against a
/// checkpoint kept earlier; the lines to print.
pub fn verify(
    dir: &Path,
    key: Option<&Path>,
    kept: Option<&Path>,
) -> Result<Vec<String>, ToolError> {
    let key = match key {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ToolError::Config(format!("{}: {e}", p.display())))?;
            Some(PublicKey::parse(&text).ok_or_else(|| {
                ToolError::Config(format!(
                    "{}: not a journal public key (base64 of 32 bytes)",
                    p.display()
                ))
            })?)
        }
        None => None,
    };
    let kept = match kept {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ToolError::Config(format!("{}: {e}", p.display())))?;
            Some(serde_json::from_str::<SignedTreeHead>(&text).map_err(|e| {
                ToolError::Config(format!("{}: not a saved checkpoint: {e}", p.display()))
            })?)
        }
        None => None,
    };
    let report = verify_dir(dir, key.as_ref(), kept)?;
    let mut out = Vec::new();
    if report.records == 0 {
        out.push(
            "journal intact: it holds no record yet (a new journal: the gateway's first start writes the first)"
                .to_owned(),
        );
    } else {
        out.push(format!(
            "journal intact: {} records ({} events, {} checkpoints) in {} segments, from record {}",
            report.records, report.events, report.checkpoints, report.segments, report.first_seq
        ));
    }
    if let Some(cp) = &report.last_checkpoint {
        let when =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(cp.head.time_ms) * 1_000_000)
                .map(rfc3339)
                .unwrap_or_default();
        out.push(format!(
            "last checkpoint: {} records, root {}, signed {when} by key {}",
            cp.head.size, cp.head.root, cp.key_id
        ));
    }
    if report.signatures_checked {
        out.push(format!(
            "signatures: every checkpoint verified with key {}",
            key.map(|k| k.key_id()).unwrap_or_default()
        ));
    } else {
        out.push("signatures: NOT checked (no public key given)".into());
    }
    match report.kept_checkpoint_checked {
        Some(true) => out.push(
            "kept checkpoint: the journal still holds exactly the records it covers".into(),
        ),
        Some(false) => out.push(
            "kept checkpoint: older than the retained journal (purged by retention); not comparable"
                .into(),
        ),
        None => {}
    }
    Ok(out)
}

/// The events of `dir` that `filter` selects.
pub fn read(dir: &Path, filter: &FilterArgs) -> Result<Vec<Record>, ToolError> {
    Ok(query::read(dir, &filter.filter())?)
}

/// Events as a table for people.
pub fn table(records: &[Record]) -> String {
    let mut out = format!(
        "{:>8}  {:<20}  {:<22}  {:<12}  {:<22}  DETAIL\n",
        "SEQ", "TIME", "TYPE", "EMPLOYEE", "DEVICE"
    );
    for r in records {
        let field = |k: &str| {
            r.event
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let mut rest = r.event.clone();
        if let Some(obj) = rest.as_object_mut() {
            for k in ["type", "employee", "device"] {
                obj.remove(k);
            }
        }
        out.push_str(&format!(
            "{:>8}  {:<20}  {:<22}  {:<12}  {:<22}  {}\n",
            r.seq,
            rfc3339(r.time),
            field("type"),
            field("employee"),
            field("device"),
            rest
        ));
    }
    out
}

/// Events as JSON lines or CSV.
pub fn export(records: &[Record], format: ExportFormat) -> String {
    match format {
        ExportFormat::Jsonl => query::to_jsonl(records),
        ExportFormat::Csv => query::to_csv(records),
    }
}

/// Saves the latest signed checkpoint of `dir` to `out`; what to print.
pub fn checkpoint(dir: &Path, out: &Path) -> Result<String, ToolError> {
    let report = verify_dir(dir, None, None)?;
    let sth = report
        .last_checkpoint
        .ok_or_else(|| ToolError::Failure("the journal has no checkpoint yet".into()))?;
    let text = serde_json::to_string_pretty(&sth).map_err(|e| ToolError::Failure(e.to_string()))?;
    std::fs::write(out, text + "\n")
        .map_err(|e| ToolError::Failure(format!("{}: {e}", out.display())))?;
    Ok(format!(
        "checkpoint of {} records saved to {}",
        sth.head.size,
        out.display()
    ))
}

/// Telework hours per employee and day against the schedules of the policy in `policy`.
pub fn hours(
    dir: &Path,
    policy: &Path,
    days: &Days,
    employee: Option<&str>,
) -> Result<String, ToolError> {
    let tz = days.zone()?;
    let records = query::read(dir, &Filter::default())?;
    let policy = ztgw_config::policy::Policy::load(policy)
        .map_err(|e| ToolError::Config(e.to_string()))?
        .policy;
    let rows = report::hours(
        &records,
        &policy,
        &tz,
        days.from,
        days.to,
        employee,
        jiff::Timestamp::now(),
    );
    if days.json {
        return json(&rows);
    }
    let mut out = format!(
        "{:<16} {:<10} {:>8} {:>10} {:>10} {:>10} {:>12}\n",
        "EMPLOYEE", "DATE", "SESSIONS", "CONNECTED", "SCHEDULED", "OUTSIDE", "OUT-OF-HOURS"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<16} {:<10} {:>8} {:>10} {:>10} {:>10} {:>12}\n",
            r.employee,
            r.date,
            r.sessions,
            hm(r.connected_secs),
            hm(r.scheduled_secs),
            hm(r.outside_secs),
            r.out_of_hours_attempts
        ));
    }
    Ok(out)
}

/// Admissions and posture compliance per day.
pub fn posture(dir: &Path, days: &Days) -> Result<String, ToolError> {
    let tz = days.zone()?;
    let records = query::read(dir, &Filter::default())?;
    let rows = report::posture(&records, &tz, days.from, days.to);
    if days.json {
        return json(&rows);
    }
    let mut out = format!(
        "{:<10} {:>8} {:>8} {:>8} {:>9}  REFUSED BY REASON / FAILED CHECKS\n",
        "DATE", "GRANTED", "DENIED", "CHECKS", "COMPLIANT"
    );
    for r in rows {
        let pct = (r.posture_compliant * 100)
            .checked_div(r.posture_checks)
            .map_or_else(|| "-".to_owned(), |p| format!("{p}%"));
        let reasons: Vec<String> = r
            .denied_by_reason
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let failed: Vec<String> = r
            .failed_checks
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "{:<10} {:>8} {:>8} {:>8} {:>9}  {} / {}\n",
            r.date,
            r.admissions_granted,
            r.admissions_denied,
            r.posture_checks,
            pct,
            reasons.join(" "),
            failed.join(" ")
        ));
    }
    Ok(out)
}

fn json(rows: &impl serde::Serialize) -> Result<String, ToolError> {
    serde_json::to_string_pretty(rows)
        .map(|t| t + "\n")
        .map_err(|e| ToolError::Failure(e.to_string()))
}

fn hm(secs: i64) -> String {
    format!("{}h{:02}", secs / 3600, (secs % 3600) / 60)
}

/// An instant from RFC 3339, or a date (midnight UTC).
pub fn parse_instant(s: &str) -> Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let date = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("{s:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
    Ok(date.midnight().assume_utc())
}

/// A path given on the command line, or a default.
pub fn given_or(
    path: &Option<PathBuf>,
    default: impl FnOnce() -> Result<PathBuf, ToolError>,
) -> Result<PathBuf, ToolError> {
    match path {
        Some(p) => Ok(p.clone()),
        None => default(),
    }
}
