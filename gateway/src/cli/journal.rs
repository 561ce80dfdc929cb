//! `ztgw journal verify|query|export|checkpoint`: the auditors' tools (G10), on the
//! gateway's journal by default. The work is `ztgw_journal::tools`, shared with
//! `ztgw-audit`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ztgw_config::Settings;
use ztgw_journal::tools::{self, ExportFormat, ExportTo, FilterArgs, ToolError};

use super::{Failure, exit};

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Check every record, link and signature; exit 0 only if the journal is intact.
    #[command(after_help = "Example:\n  ztgw journal verify --checkpoint kept-checkpoint.json")]
    Verify {
        #[command(flatten)]
        source: Source,
        /// The journal's public key (default: journal.pub of the state directory). With
        /// several --dir, one key a journal, in the same order.
        #[arg(long)]
        public_key: Vec<PathBuf>,
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
        #[command(flatten)]
        to: ExportTo,
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
    /// A journal directory (default: the gateway's, from --config). Repeat it for the
    /// journals of several gateways sharing a registry: their records are merged by time.
    #[arg(long)]
    pub dir: Vec<PathBuf>,
}

pub fn run(config: &Path, cmd: JournalCommand) -> Result<(), Failure> {
    match cmd {
        JournalCommand::Verify {
            source,
            public_key,
            checkpoint,
        } => {
            let dirs = journal_dirs(config, &source)?;
            // The gateway's own journal, with its own key unless told otherwise.
            let keys = if public_key.is_empty() && source.dir.is_empty() {
                Settings::load(config)
                    .ok()
                    .map(|s| s.state().journal_public())
                    .into_iter()
                    .collect()
            } else {
                public_key
            };
            for line in tools::verify(&dirs, &keys, checkpoint.as_deref()).map_err(failure)? {
                println!("{line}");
            }
            Ok(())
        }
        JournalCommand::Query {
            source,
            filter,
            json,
        } => {
            let records = tools::read(&journal_dirs(config, &source)?, &filter).map_err(failure)?;
            if json {
                print!("{}", tools::export(&records, ExportFormat::Jsonl));
            } else {
                print!("{}", tools::table(&records));
            }
            Ok(())
        }
        JournalCommand::Export { source, filter, to } => {
            let records = tools::read(&journal_dirs(config, &source)?, &filter).map_err(failure)?;
            print!("{}", to.write(&records).map_err(failure)?);
            Ok(())
        }
        JournalCommand::Checkpoint { source, out } => {
            let dirs = journal_dirs(config, &source)?;
            let [dir] = dirs.as_slice() else {
                return Err(Failure::new(
                    exit::USAGE,
                    "a checkpoint is of one journal: give one --dir",
                ));
            };
            let said = tools::checkpoint(dir, &out).map_err(failure)?;
            println!("{said}");
            Ok(())
        }
    }
}

fn journal_dirs(config: &Path, source: &Source) -> Result<Vec<PathBuf>, Failure> {
    match source.dir.as_slice() {
        [_, ..] => Ok(source.dir.clone()),
        [] => Settings::load(config)
            .map(|s| vec![s.journal.dir])
            .map_err(|e| {
                Failure::new(
                    exit::CONFIG,
                    format!("{e} (or give the journal with --dir)"),
                )
            }),
    }
}

/// A shared command's failure, with the gateway's exit code for it.
pub fn failure(e: ToolError) -> Failure {
    let code = match &e {
        ToolError::Usage(_) => exit::USAGE,
        ToolError::Config(_) => exit::CONFIG,
        ToolError::Damaged(_) => exit::DAMAGED,
        ToolError::Failure(_) => exit::FAILURE,
    };
    Failure::new(code, e.to_string())
}
