//! `ztgw-audit`: the auditors' tool, for a copy of the gateway's journal anywhere. Every
//! command is the same code as `ztgw journal …` and `ztgw report …`
//! (`ztgw_journal::tools`); this binary links none of the gateway (no network, tunnel or
//! database code).
//!
//! Exit codes, as `ztgw`'s: 0 done, 1 other failure, 2 wrong command line, 3 a file
//! given cannot be used, 7 the journal is damaged or was tampered with.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ztgw_journal::tools::{self, Days, ExportFormat, ExportTo, FilterArgs, ToolError};

#[derive(Debug, Parser)]
#[command(
    name = "ztgw-audit",
    version,
    about = "Verify, query, export and report on a copy of a ztgw journal",
    after_help = "Examples:\n  ztgw-audit verify --dir ./journal-copy --public-key journal.pub --checkpoint kept-checkpoint.json\n  ztgw-audit query --dir ./journal-copy --employee e1029 --since 2027-04-01\n  ztgw-audit report hours --dir ./journal-copy --policy policy.toml --from 2027-04-01 --to 2027-04-30\n\nExit codes: 0 done, 1 other failure, 2 wrong command line, 3 a file given cannot be used,\n7 journal damaged (docs/auditors.md)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every record, link and signature; exit 0 only if the journal is intact.
    Verify {
        /// The journal directory (a copy is fine); repeat it for the journals of several
        /// gateways sharing a registry.
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        /// The gateway's journal public key (journal.pub): without it signatures are not
        /// checked. With several journals, one key a journal, in the order of --dir.
        #[arg(long)]
        public_key: Vec<PathBuf>,
        /// A checkpoint kept earlier: the journal must still hold exactly what it covers.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Show events, filtered.
    Query {
        /// The journal directory; repeat it to merge several gateways' journals by time.
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Export events, filtered, as JSON lines or CSV.
    Export {
        /// The journal directory; repeat it to merge several gateways' journals by time.
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        to: ExportTo,
    },
    /// Save the latest signed checkpoint, to check later that nothing before it changed.
    Checkpoint {
        #[arg(long)]
        dir: PathBuf,
        /// Where to write the checkpoint (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Reports from the journal.
    #[command(subcommand)]
    Report(Report),
}

#[derive(Debug, Subcommand)]
enum Report {
    /// Connected time per employee and day against the schedule, with out-of-hours attempts.
    Hours {
        /// The journal directory; repeat it for several gateways' journals (each session
        /// counted once).
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        /// The policy whose schedules apply (a copy of the gateway's policy.toml).
        #[arg(long)]
        policy: PathBuf,
        #[command(flatten)]
        days: Days,
        /// Only this employee.
        #[arg(long)]
        employee: Option<String>,
    },
    /// Admissions refused and why, and posture compliance, per day.
    Posture {
        /// The journal directory; repeat it for several gateways' journals.
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        #[command(flatten)]
        days: Days,
    },
}

fn run(cli: Cli) -> Result<String, ToolError> {
    match cli.command {
        Command::Verify {
            dir,
            public_key,
            checkpoint,
        } => Ok(tools::verify(&dir, &public_key, checkpoint.as_deref())?.join("\n") + "\n"),
        Command::Query { dir, filter, json } => {
            let records = tools::read(&dir, &filter)?;
            Ok(if json {
                tools::export(&records, ExportFormat::Jsonl)
            } else {
                tools::table(&records)
            })
        }
        Command::Export { dir, filter, to } => to.write(&tools::read(&dir, &filter)?),
        Command::Checkpoint { dir, out } => Ok(tools::checkpoint(&dir, &out)? + "\n"),
        Command::Report(Report::Hours {
            dir,
            policy,
            days,
            employee,
        }) => tools::hours(&dir, &policy, &days, employee.as_deref()),
        Command::Report(Report::Posture { dir, days }) => tools::posture(&dir, &days),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ztgw-audit: {e}");
            ExitCode::from(match e {
                ToolError::Usage(_) => 2,
                ToolError::Config(_) => 3,
                ToolError::Damaged(_) => 7,
                ToolError::Failure(_) => 1,
            })
        }
    }
}
