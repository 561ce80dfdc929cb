//! `ztgw directory sync --dry-run`: what the directory would change of telework — whose
//! telework would end (disabled, deleted, in no telework group) and which devices would
//! change role — read from the directory and the registry, changing nothing.

use std::path::Path;
use std::sync::Arc;

use clap::Subcommand;
use ztgw_config::Settings;

use super::{Failure, exit};
use crate::directory::{self, Drift};
use crate::registry::{Registry as _, SqliteRegistry};

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Compare the directory with the gateway's employees and devices.
    #[command(
        after_help = "Example:\n  ztgw directory sync --dry-run\n\nExit codes: 0 no change, 1 the directory would change telework (or could not be read), 3 no [directory] in the settings."
    )]
    Sync {
        /// Show what would change, and change nothing (applying is not available yet).
        #[arg(long)]
        dry_run: bool,
        /// The drift as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: &Path, cmd: DirectoryCommand) -> Result<(), Failure> {
    let DirectoryCommand::Sync { dry_run, json } = cmd;
    if !dry_run {
        return Err(Failure::new(
            exit::USAGE,
            "only `ztgw directory sync --dry-run` is available: the gateway does not apply the directory's changes yet",
        ));
    }
    let settings = Settings::load(config).map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    let Some(d) = settings.directory.clone() else {
        return Err(Failure::new(
            exit::CONFIG,
            format!(
                "{} has no [directory] section (docs/security-units.md shows one)",
                settings.file.display()
            ),
        ));
    };
    // The registry is read only; a running gateway may keep writing it meanwhile.
    let registry = SqliteRegistry::open(&settings.state().registry())
        .map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    let devices = registry
        .devices()
        .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let known: Vec<_> = directory::teleworkers(&devices).into_keys().collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::FAILURE, format!("cannot start the runtime: {e}")))?;
    let d = Arc::new(d);
    let view = runtime
        .block_on(directory::client::read(&d, &known))
        .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let drift = directory::drift(&view, &devices, d.max_revoke_percent);
    if json {
        let text = serde_json::to_string_pretty(&drift)
            .map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))?;
        println!("{text}");
    } else {
        print(&drift, d.max_revoke_percent);
    }
    if drift.end.is_empty() && drift.role_changes.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            exit::FAILURE,
            format!(
                "the directory would change telework: {} to end, {} role changes",
                drift.end.len(),
                drift.role_changes.len()
            ),
        ))
    }
}

fn print(drift: &Drift, max_percent: u8) {
    println!(
        "directory {}: {} employees with telework at this gateway",
        drift.server, drift.employees
    );
    for e in &drift.end {
        println!(
            "would end the telework of {}: {}",
            e.employee,
            e.why.sentence()
        );
    }
    for c in &drift.role_changes {
        println!(
            "would change the role of {}'s device {}: {} → {}",
            c.employee, c.device, c.from, c.to
        );
    }
    for s in &drift.skipped {
        println!("skipped: {s}");
    }
    if drift.over_threshold {
        println!(
            "a sync would be refused: it would end the telework of more than {max_percent}% of the employees"
        );
    }
    if drift.end.is_empty() && drift.role_changes.is_empty() {
        println!("no change");
    }
}
