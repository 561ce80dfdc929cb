//! `ztgw journal verify|query|export|checkpoint`: the auditors' tools (G10). They read the
//! journal's files and never write them.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use time::OffsetDateTime;
use ztgw_config::Settings;

use super::{Failure, exit};
use crate::journal::query::{self, Filter, Record};
use crate::journal::verify::verify_dir;
use crate::journal::{PublicKey, SignedTreeHead};

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Check every record, link and signature; exit 0 only if the journal is intact.
    #[command(after_help = "Example:\n  ztgw journal verify --checkpoint kept-checkpoint.json")]
    Verify {
        #[command(flatten)]
        source: Source,
        /// The journal's public key (default: journal.pub of the state directory).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// A checkpoint kept from an earlier verification: the journal must still hold it.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Show events, filtered.
    #[command(
        after_help = "Example:\n  ztgw journal query --employee e1029 --since 2027-04-01 --type 'device.*'"
    )]
    Query {
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        filter: FilterArgs,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Export events, filtered, as JSON lines or CSV.
    Export {
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        filter: FilterArgs,
        /// jsonl (one event per line, every field) or csv (one row per event).
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Save the latest signed checkpoint, to check later that nothing before it changed.
    Checkpoint {
        #[command(flatten)]
        source: Source,
        /// Where to write the checkpoint (JSON).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Where the journal is.
#[derive(Debug, clap::Args)]
pub struct Source {
    /// A journal directory (default: the gateway's, from --config).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
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

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

pub fn run(config: &Path, cmd: JournalCommand) -> Result<(), Failure> {
    match cmd {
        JournalCommand::Verify {
            source,
            public_key,
            checkpoint,
        } => verify(
            config,
            &source,
            public_key.as_deref(),
            checkpoint.as_deref(),
        ),
        JournalCommand::Query {
            source,
            filter,
            json,
        } => {
            let records = read(config, &source, &filter)?;
            if json {
                print!("{}", query::to_jsonl(&records));
            } else {
                print_table(&records);
            }
            Ok(())
        }
        JournalCommand::Export {
            source,
            filter,
            format,
            out,
        } => {
            let records = read(config, &source, &filter)?;
            let text = match format {
                ExportFormat::Jsonl => query::to_jsonl(&records),
                ExportFormat::Csv => query::to_csv(&records),
            };
            match out {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", path.display()))),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        JournalCommand::Checkpoint { source, out } => {
            let dir = journal_dir(config, &source)?;
            let report = verify_dir(&dir, None, None).map_err(damaged)?;
            let sth = report
                .last_checkpoint
                .ok_or_else(|| Failure::new(exit::FAILURE, "the journal has no checkpoint yet"))?;
            let text = serde_json::to_string_pretty(&sth)
                .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
            std::fs::write(&out, text + "\n")
                .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", out.display())))?;
            println!(
                "checkpoint of {} records saved to {}",
                sth.head.size,
                out.display()
            );
            Ok(())
        }
    }
}

fn verify(
    config: &Path,
    source: &Source,
    key: Option<&Path>,
    kept: Option<&Path>,
) -> Result<(), Failure> {
    let dir = journal_dir(config, source)?;
    let key_path = match key {
        Some(p) => Some(p.to_owned()),
        None => Settings::load(config)
            .ok()
            .map(|s| s.state().journal_public()),
    };
    let key = match &key_path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::new(exit::CONFIG, format!("{}: {e}", p.display())))?;
            Some(PublicKey::parse(&text).ok_or_else(|| {
                Failure::new(
                    exit::CONFIG,
                    format!(
                        "{}: not a journal public key (base64 of 32 bytes)",
                        p.display()
                    ),
                )
            })?)
        }
        None => None,
    };
    let kept = match kept {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::new(exit::CONFIG, format!("{}: {e}", p.display())))?;
            Some(serde_json::from_str::<SignedTreeHead>(&text).map_err(|e| {
                Failure::new(
                    exit::CONFIG,
                    format!("{}: not a saved checkpoint: {e}", p.display()),
                )
            })?)
        }
        None => None,
    };
    let report = verify_dir(&dir, key.as_ref(), kept).map_err(damaged)?;
    if report.records == 0 {
        println!(
            "journal intact: it holds no record yet (a new journal: the gateway's first start writes the first)"
        );
    } else {
        println!(
            "journal intact: {} records ({} events, {} checkpoints) in {} segments, from record {}",
            report.records, report.events, report.checkpoints, report.segments, report.first_seq
        );
    }
    if let Some(cp) = &report.last_checkpoint {
        let when =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(cp.head.time_ms) * 1_000_000)
                .map(crate::enrolment::rfc3339)
                .unwrap_or_default();
        println!(
            "last checkpoint: {} records, root {}, signed {when} by key {}",
            cp.head.size, cp.head.root, cp.key_id
        );
    }
    if report.signatures_checked {
        println!(
            "signatures: every checkpoint verified with key {}",
            key.map(|k| k.key_id()).unwrap_or_default()
        );
    } else {
        println!("signatures: NOT checked (no public key given)");
    }
    if let Some(matched) = report.kept_checkpoint_checked {
        if matched {
            println!("kept checkpoint: the journal still holds exactly the records it covers");
        } else {
            println!(
                "kept checkpoint: older than the retained journal (purged by retention); not comparable"
            );
        }
    }
    Ok(())
}

fn read(config: &Path, source: &Source, f: &FilterArgs) -> Result<Vec<Record>, Failure> {
    let dir = journal_dir(config, source)?;
    let filter = Filter {
        employee: f.employee.clone(),
        device: f.device.clone(),
        kinds: f.kinds.clone(),
        since: f.since,
        until: f.until,
    };
    query::read(&dir, &filter).map_err(damaged)
}

fn print_table(records: &[Record]) {
    println!(
        "{:>8}  {:<20}  {:<22}  {:<12}  {:<22}  DETAIL",
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
        println!(
            "{:>8}  {:<20}  {:<22}  {:<12}  {:<22}  {}",
            r.seq,
            crate::enrolment::rfc3339(r.time),
            field("type"),
            field("employee"),
            field("device"),
            rest
        );
    }
}

fn journal_dir(config: &Path, source: &Source) -> Result<PathBuf, Failure> {
    match &source.dir {
        Some(d) => Ok(d.clone()),
        None => Settings::load(config).map(|s| s.journal.dir).map_err(|e| {
            Failure::new(
                exit::CONFIG,
                format!("{e} (or give the journal with --dir)"),
            )
        }),
    }
}

fn damaged(d: crate::journal::verify::Damage) -> Failure {
    Failure::new(exit::DAMAGED, format!("journal damaged: {d}"))
}

fn parse_instant(s: &str) -> Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let date = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("{s:?} is neither RFC 3339 nor YYYY-MM-DD"))?;
    Ok(date.midnight().assume_utc())
}
