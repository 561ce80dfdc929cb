//! `ztgw report hours|posture`: telework hours against schedules (G11), admissions and
//! posture compliance (G12), from the journal. The work is `ztgw_journal::tools`,
//! shared with `ztgw-audit`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ztgw_config::Settings;
use ztgw_journal::tools::{self, Days};

use super::journal::failure;
use super::{Failure, exit};

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Connected time per employee and day against the schedule, with out-of-hours attempts.
    #[command(
        after_help = "Example:\n  ztgw report hours --from 2027-04-01 --to 2027-04-30 --employee e1029"
    )]
    Hours {
        #[command(flatten)]
        range: Range,
        /// Only this employee.
        #[arg(long)]
        employee: Option<String>,
    },
    /// Admissions refused and why, and posture compliance, per day.
    Posture {
        #[command(flatten)]
        range: Range,
    },
}

#[derive(Debug, clap::Args)]
pub struct Range {
    #[command(flatten)]
    pub days: Days,
    /// A journal directory (default: the gateway's). Repeat it for the journals of
    /// several gateways sharing a registry (with one --public-key each, in order).
    #[arg(long)]
    pub dir: Vec<PathBuf>,
    /// The policy whose schedules apply (default: the gateway's).
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

pub fn run(config: &Path, cmd: ReportCommand) -> Result<(), Failure> {
    let settings = || Settings::load(config).map_err(|e| Failure::new(exit::CONFIG, e.to_string()));
    let dir = |range: &Range| match range.dir.as_slice() {
        [_, ..] => Ok(range.dir.clone()),
        [] => settings().map(|s| vec![s.journal.dir]),
    };
    // The gateway's own journal is verified with its own key unless told otherwise.
    let days = |range: &Range| -> Result<Days, Failure> {
        let mut days = range.days.clone();
        if days.public_key.is_empty() && range.dir.is_empty() {
            days.public_key = vec![settings()?.state().journal_public()];
        }
        Ok(days)
    };
    let text = match &cmd {
        ReportCommand::Hours { range, employee } => {
            let policy = match &range.policy {
                Some(p) => p.clone(),
                None => settings()?.policy.file,
            };
            tools::hours(&dir(range)?, &policy, &days(range)?, employee.as_deref())
        }
        ReportCommand::Posture { range } => tools::posture(&dir(range)?, &days(range)?),
    }
    .map_err(failure)?;
    print!("{text}");
    Ok(())
}
