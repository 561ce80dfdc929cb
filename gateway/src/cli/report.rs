//! `ztgw report hours|posture`: telework hours against schedules (G11), admissions and
//! posture compliance (G12), from the journal.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ztgw_config::Settings;
use ztgw_config::policy::Policy;

use super::{Failure, exit};
use crate::journal::query::{self, Filter};
use crate::report;

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
    /// First day (YYYY-MM-DD).
    #[arg(long)]
    pub from: jiff::civil::Date,
    /// Last day, included.
    #[arg(long)]
    pub to: jiff::civil::Date,
    /// Days are counted in this time zone (default Africa/Casablanca).
    #[arg(long, default_value = ztgw_config::policy::DEFAULT_TIMEZONE)]
    pub timezone: String,
    /// A journal directory (default: the gateway's).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The policy whose schedules apply (default: the gateway's).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &Path, cmd: ReportCommand) -> Result<(), Failure> {
    let range = match &cmd {
        ReportCommand::Hours { range, .. } | ReportCommand::Posture { range } => range,
    };
    if range.to < range.from {
        return Err(Failure::new(exit::USAGE, "--to is before --from"));
    }
    let tz = jiff::tz::db().get(&range.timezone).map_err(|_| {
        Failure::new(
            exit::USAGE,
            format!("{:?} is not an IANA time zone", range.timezone),
        )
    })?;
    let settings = || Settings::load(config).map_err(|e| Failure::new(exit::CONFIG, e.to_string()));
    let dir = match &range.dir {
        Some(d) => d.clone(),
        None => settings()?.journal.dir,
    };
    let records = query::read(&dir, &Filter::default())
        .map_err(|d| Failure::new(exit::DAMAGED, format!("journal damaged: {d}")))?;
    match cmd {
        ReportCommand::Hours { range, employee } => {
            let policy_file = match &range.policy {
                Some(p) => p.clone(),
                None => settings()?.policy.file,
            };
            let policy = Policy::load(&policy_file)
                .map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?
                .policy;
            let rows = report::hours(
                &records,
                &policy,
                &tz,
                range.from,
                range.to,
                employee.as_deref(),
                jiff::Timestamp::now(),
            );
            if range.json {
                return print_json(&rows);
            }
            println!(
                "{:<16} {:<10} {:>8} {:>10} {:>10} {:>10} {:>12}",
                "EMPLOYEE", "DATE", "SESSIONS", "CONNECTED", "SCHEDULED", "OUTSIDE", "OUT-OF-HOURS"
            );
            for r in rows {
                println!(
                    "{:<16} {:<10} {:>8} {:>10} {:>10} {:>10} {:>12}",
                    r.employee,
                    r.date,
                    r.sessions,
                    hm(r.connected_secs),
                    hm(r.scheduled_secs),
                    hm(r.outside_secs),
                    r.out_of_hours_attempts
                );
            }
            Ok(())
        }
        ReportCommand::Posture { range } => {
            let rows = report::posture(&records, &tz, range.from, range.to);
            if range.json {
                return print_json(&rows);
            }
            println!(
                "{:<10} {:>8} {:>8} {:>8} {:>9}  REFUSED BY REASON / FAILED CHECKS",
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
                println!(
                    "{:<10} {:>8} {:>8} {:>8} {:>9}  {} / {}",
                    r.date,
                    r.admissions_granted,
                    r.admissions_denied,
                    r.posture_checks,
                    pct,
                    reasons.join(" "),
                    failed.join(" ")
                );
            }
            Ok(())
        }
    }
}

fn print_json(rows: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(rows)
        .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn hm(secs: i64) -> String {
    format!("{}h{:02}", secs / 3600, (secs % 3600) / 60)
}
