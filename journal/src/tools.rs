//! The auditors' commands, shared by `ztgw journal …`/`ztgw report …` (on the gateway)
//! and `ztgw-audit` (on a copy of the journal, anywhere): verify, query, export,
//! checkpoint, and the hours and posture reports. They read the journal's files and never
//! write them; each returns what to print, or a [`ToolError`] that says which exit code
//! it is.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use time::OffsetDateTime;

use crate::query::{self, Filter, Record};
use crate::report::printed::{Printed, Stamp};
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

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Columns for a terminal.
    Table,
    /// The rows and the checkpoint, as JSON.
    Json,
    /// RFC 4180 CSV, the checkpoint in two `#` lines at the top.
    Csv,
    /// A self-contained page that prints well (A4).
    Html,
    /// A PDF (needs --out).
    Pdf,
}

/// The days of a report, and how to print it.
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
    /// table, json, csv, html (a page that prints well) or pdf. Every format states the
    /// signed journal checkpoint the report was computed from.
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// The same as --format json.
    #[arg(long)]
    pub json: bool,
    /// Write the report to this file instead of standard output (pdf needs it).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The gateway's journal public key (journal.pub): the journal, and the checkpoint
    /// the report states, are verified with it first. With several journals, one key a
    /// journal, in the order of the journals.
    #[arg(long)]
    pub public_key: Vec<PathBuf>,
}

impl Days {
    fn zone(&self) -> Result<jiff::tz::TimeZone, ToolError> {
        if self.to < self.from {
            return Err(ToolError::Usage("--to is before --from".into()));
        }
        if self.json && self.format != ReportFormat::Table && self.format != ReportFormat::Json {
            return Err(ToolError::Usage("--json and --format: give one".into()));
        }
        if self.format == ReportFormat::Pdf && self.out.is_none() {
            return Err(ToolError::Usage(
                "--format pdf writes a file: add --out FILE.pdf".into(),
            ));
        }
        jiff::tz::db()
            .get(&self.timezone)
            .map_err(|_| ToolError::Usage(format!("{:?} is not an IANA time zone", self.timezone)))
    }

    fn format(&self) -> ReportFormat {
        if self.json {
            ReportFormat::Json
        } else {
            self.format
        }
    }

    fn period(&self) -> String {
        format!("{} to {} ({})", self.from, self.to, self.timezone)
    }
}

/// Verifies the journals in `dirs` (several gateways' of one registry, or one), each
/// with its public key in `keys` when given (one a journal, in order) and, for one
/// journal, against a checkpoint kept earlier; the lines to print. Any damage is an
/// error.
pub fn verify(
    dirs: &[PathBuf],
    keys: &[PathBuf],
    kept: Option<&Path>,
) -> Result<Vec<String>, ToolError> {
    let keys = paired(dirs, keys)?;
    if dirs.len() > 1 && kept.is_some() {
        return Err(ToolError::Usage(
            "--checkpoint is for one journal: give one --dir".into(),
        ));
    }
    let mut out = Vec::new();
    for (dir, key) in dirs.iter().zip(keys) {
        if dirs.len() > 1 {
            out.push(format!("{}:", dir.display()));
        }
        let lines = verify_one(dir, key, kept)?;
        let indent = if dirs.len() > 1 { "  " } else { "" };
        out.extend(lines.into_iter().map(|l| format!("{indent}{l}")));
    }
    Ok(out)
}

/// Each journal's key: `keys` in the order of `dirs`, or none at all.
fn paired<'a>(dirs: &[PathBuf], keys: &'a [PathBuf]) -> Result<Vec<Option<&'a Path>>, ToolError> {
    if dirs.is_empty() {
        return Err(ToolError::Usage("give a journal with --dir".into()));
    }
    match keys.len() {
        0 => Ok(vec![None; dirs.len()]),
        n if n == dirs.len() => Ok(keys.iter().map(|k| Some(k.as_path())).collect()),
        n => Err(ToolError::Usage(format!(
            "{n} --public-key for {} journals: give one key a journal, in the order of the --dir options",
            dirs.len()
        ))),
    }
}

fn verify_one(
    dir: &Path,
    key: Option<&Path>,
    kept: Option<&Path>,
) -> Result<Vec<String>, ToolError> {
    let key = public_key(key)?;
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

/// The journal public key in the file `path`, when one is given.
fn public_key(path: Option<&Path>) -> Result<Option<PublicKey>, ToolError> {
    let Some(p) = path else { return Ok(None) };
    let text = std::fs::read_to_string(p)
        .map_err(|e| ToolError::Config(format!("{}: {e}", p.display())))?;
    PublicKey::parse(&text).map(Some).ok_or_else(|| {
        ToolError::Config(format!(
            "{}: not a journal public key (base64 of 32 bytes)",
            p.display()
        ))
    })
}

/// The events of the journals in `dirs` that `filter` selects, merged by time (each
/// naming its gateway when there are several).
pub fn read(dirs: &[PathBuf], filter: &FilterArgs) -> Result<Vec<Record>, ToolError> {
    if dirs.is_empty() {
        return Err(ToolError::Usage("give a journal with --dir".into()));
    }
    Ok(query::read_merged(dirs, &filter.filter())?)
}

/// Events as a table for people.
pub fn table(records: &[Record]) -> String {
    let merged = records.iter().any(|r| r.gateway.is_some());
    let gw = |g: &str| {
        if merged {
            format!("{g:<16}  ")
        } else {
            String::new()
        }
    };
    let mut out = format!(
        "{}{:>8}  {:<20}  {:<22}  {:<12}  {:<22}  DETAIL\n",
        gw("GATEWAY"),
        "SEQ",
        "TIME",
        "TYPE",
        "EMPLOYEE",
        "DEVICE"
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
            "{}{:>8}  {:<20}  {:<22}  {:<12}  {:<22}  {}\n",
            gw(r.gateway.as_deref().unwrap_or("")),
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
    dirs: &[PathBuf],
    policy: &Path,
    days: &Days,
    employee: Option<&str>,
) -> Result<String, ToolError> {
    let tz = days.zone()?;
    let policy = ztgw_config::policy::Policy::load(policy)
        .map_err(|e| ToolError::Config(e.to_string()))?
        .policy;
    let (records, stamps) = source(dirs, days)?;
    let rows = report::hours(
        &records,
        &policy,
        &tz,
        days.from,
        days.to,
        employee,
        jiff::Timestamp::now(),
    );
    let printed = Printed {
        title: match employee {
            Some(e) => format!("Telework hours against schedules: employee {e}"),
            None => "Telework hours against schedules".into(),
        },
        period: days.period(),
        columns: [
            "employee",
            "date",
            "sessions",
            "connected",
            "scheduled",
            "outside schedule",
            "out-of-hours attempts",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.employee.clone(),
                    r.date.clone(),
                    r.sessions.to_string(),
                    hm(r.connected_secs),
                    hm(r.scheduled_secs),
                    hm(r.outside_secs),
                    r.out_of_hours_attempts.to_string(),
                ]
            })
            .collect(),
        stamps,
    };
    emit(days, "hours", &rows, printed)
}

/// Admissions and posture compliance per day.
pub fn posture(dirs: &[PathBuf], days: &Days) -> Result<String, ToolError> {
    let tz = days.zone()?;
    let (records, stamps) = source(dirs, days)?;
    let rows = report::posture(&records, &tz, days.from, days.to);
    let counts = |m: &std::collections::BTreeMap<String, u32>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let printed = Printed {
        title: "Admissions and posture compliance".into(),
        period: days.period(),
        columns: [
            "date",
            "granted",
            "denied",
            "posture checks",
            "compliant",
            "refused by reason",
            "failed checks",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.date.clone(),
                    r.admissions_granted.to_string(),
                    r.admissions_denied.to_string(),
                    r.posture_checks.to_string(),
                    (r.posture_compliant * 100)
                        .checked_div(r.posture_checks)
                        .map_or_else(|| "-".to_owned(), |p| format!("{p}%")),
                    counts(&r.denied_by_reason),
                    counts(&r.failed_checks),
                ]
            })
            .collect(),
        stamps,
    };
    emit(days, "posture", &rows, printed)
}

/// The journals' records up to each one's last signed checkpoint (each verified first,
/// with its public key when given), merged by time, and those checkpoints.
fn source(dirs: &[PathBuf], days: &Days) -> Result<(Vec<Record>, Vec<Stamp>), ToolError> {
    let keys = paired(dirs, &days.public_key)?;
    let mut records: Vec<(usize, Record)> = Vec::new();
    let mut stamps = Vec::new();
    for (i, (dir, key)) in dirs.iter().zip(keys).enumerate() {
        let key = public_key(key)?;
        let verified = verify_dir(dir, key.as_ref(), None)?;
        let cp = verified.last_checkpoint.ok_or_else(|| {
            ToolError::Failure(format!(
                "{}: the journal has no signed checkpoint yet: nothing to report",
                dir.display()
            ))
        })?;
        let name = (dirs.len() > 1)
            .then(|| query::journal_name(dir))
            .transpose()?;
        records.extend(
            query::read(dir, &Filter::default())?
                .into_iter()
                .filter(|r| r.seq < cp.head.size)
                .map(|mut r| {
                    r.gateway.clone_from(&name);
                    (i, r)
                }),
        );
        let signed_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(cp.head.time_ms) * 1_000_000)
                .map(rfc3339)
                .unwrap_or_default();
        stamps.push(Stamp {
            records: cp.head.size,
            root: cp.head.root,
            signed_at,
            key_id: cp.key_id,
            signature: cp.signature,
            verified: verified.signatures_checked,
            gateway: name,
        });
    }
    records.sort_by(|(i, a), (j, b)| (a.time, i, a.seq).cmp(&(b.time, j, b.seq)));
    Ok((records.into_iter().map(|(_, r)| r).collect(), stamps))
}

/// Prints `printed` as `days` asks, to its file or as the text returned.
fn emit(
    days: &Days,
    name: &str,
    rows: &impl serde::Serialize,
    printed: Printed,
) -> Result<String, ToolError> {
    let bytes = match days.format() {
        ReportFormat::Table => {
            let mut t = table_text(&printed.columns, &printed.rows);
            t.push('\n');
            for stamp in &printed.stamps {
                t.push_str(&stamp.sentence());
                t.push('\n');
            }
            t.into_bytes()
        }
        ReportFormat::Json => json(&serde_json::json!({
            "report": name,
            "from": days.from.to_string(),
            "to": days.to.to_string(),
            "timezone": days.timezone,
            "checkpoint": printed.stamps.first(),
            "checkpoints": if printed.stamps.len() > 1 { Some(&printed.stamps) } else { None },
            "rows": rows,
        }))?
        .into_bytes(),
        ReportFormat::Csv => printed.csv().into_bytes(),
        ReportFormat::Html => printed.html().into_bytes(),
        ReportFormat::Pdf => printed.pdf(),
    };
    match &days.out {
        Some(path) => std::fs::write(path, bytes)
            .map(|()| String::new())
            .map_err(|e| ToolError::Failure(format!("{}: {e}", path.display()))),
        None => String::from_utf8(bytes).map_err(|e| ToolError::Failure(e.to_string())),
    }
}

/// Rows in aligned columns (the first column's header in capitals, as the others).
fn table_text(columns: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            std::iter::once(columns)
                .chain(rows.iter().map(Vec::as_slice))
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let heads: Vec<String> = columns
        .iter()
        .map(|c| c.to_uppercase().replace(' ', "-"))
        .collect();
    for row in std::iter::once(&heads).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
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
