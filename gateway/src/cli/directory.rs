//! `ztgw directory sync`: read the directory and apply it now (through the running
//! gateway, whose directory task does the same every `sync_interval`, or by itself when
//! no gateway runs); `--dry-run` only says what would change — whose telework would end
//! (disabled, deleted, in no telework group) and which devices would change role.

use std::path::Path;
use std::sync::Arc;

use clap::Subcommand;
use ztgw_config::Settings;

use super::{Failure, exit};
use crate::admin::socket::{self, CallError};
use crate::admin::{AdminEnvelope, AdminRequest, AdminResponse};
use crate::directory::sync::SyncReport;
use crate::directory::{self, Drift};

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Compare the directory with the gateway's employees and devices.
    #[command(
        after_help = "Example:\n  ztgw directory sync --dry-run\n\nExit codes: 0 no change, 1 the directory would change telework (or could not be read), 3 no [directory] in the settings."
    )]
    Sync {
        /// Show what would change, and change nothing.
        #[arg(long, conflicts_with = "force")]
        dry_run: bool,
        /// Apply even if it ends the telework of more than `max_revoke_percent` of the
        /// employees (check the directory first).
        #[arg(long)]
        force: bool,
        /// The result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: &Path, operator: &str, cmd: DirectoryCommand) -> Result<(), Failure> {
    let DirectoryCommand::Sync {
        dry_run,
        force,
        json,
    } = cmd;
    if dry_run {
        return dry(config, json);
    }
    let settings = Settings::load(config).map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    if settings.directory.is_none() {
        return Err(not_configured(&settings));
    }
    let envelope = AdminEnvelope {
        operator: operator.to_owned(),
        request: AdminRequest::DirectorySync { force },
    };
    let report = match socket::call(&settings.admin.socket, &envelope) {
        Ok(Ok(AdminResponse::DirectorySync(report))) => report,
        Ok(Ok(_)) => {
            return Err(Failure::new(
                exit::FAILURE,
                "the gateway answered something else",
            ));
        }
        Ok(Err(e)) => return Err(Failure::new(exit::INTERNAL, e.message)),
        Err(CallError::NotRunning) => {
            // No gateway runs: no session is live; the command applies it itself.
            let ctx = Arc::new(super::open(config)?);
            let runtime = runtime()?;
            runtime
                .block_on(directory::sync::sync_once(
                    &ctx,
                    None,
                    force,
                    &format!("{operator} (offline)"),
                ))
                .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?
        }
        Err(e) => return Err(Failure::new(exit::FAILURE, e.to_string())),
    };
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::new(exit::INTERNAL, e.to_string()))?;
        println!("{text}");
    } else {
        print_report(&report);
    }
    if report.refused {
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "refused: it would end the telework of {} of {} employees; check the directory, then run `ztgw directory sync --force`",
                report.drift.end.len(),
                report.drift.employees
            ),
        ));
    }
    if !report.failed.is_empty() {
        return Err(Failure::new(
            exit::INTERNAL,
            format!("{} revocation(s) failed", report.failed.len()),
        ));
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::FAILURE, format!("cannot start the runtime: {e}")))
}

fn not_configured(settings: &Settings) -> Failure {
    Failure::new(
        exit::CONFIG,
        format!(
            "{} has no [directory] section (docs/security-units.md shows one)",
            settings.file.display()
        ),
    )
}

/// What a sync did, in words.
pub fn print_report(report: &SyncReport) {
    let d = &report.drift;
    println!(
        "directory {}: {} employees with telework at this gateway",
        d.server, d.employees
    );
    if report.refused {
        for e in &d.end {
            println!(
                "would end the telework of {} ({}): refused with the rest",
                e.employee,
                e.why.sentence()
            );
        }
        return;
    }
    for e in &d.end {
        if report.ended.iter().any(|x| x == e.employee.as_str()) {
            println!("ended the telework of {}: {}", e.employee, e.why.sentence());
        }
    }
    for f in &report.failed {
        println!("failed: {f}");
    }
    for c in &d.role_changes {
        let key = format!("{} {} {} -> {}", c.employee, c.device, c.from, c.to);
        if report.roles_changed.contains(&key) {
            println!(
                "changed the role of {}'s device {}: {} → {} (a live session is admitted again under it)",
                c.employee, c.device, c.from, c.to
            );
        }
    }
    if d.end.is_empty() && d.role_changes.is_empty() {
        println!("no change");
    }
}

/// `--dry-run`: the drift, from the directory and the registry, changing nothing.
fn dry(config: &Path, json: bool) -> Result<(), Failure> {
    let settings = Settings::load(config).map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    let Some(d) = settings.directory.clone() else {
        return Err(not_configured(&settings));
    };
    // The registry is read only; a running gateway may keep writing it meanwhile.
    let registry =
        crate::registry::open(&settings).map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    let devices = registry
        .devices()
        .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let known: Vec<_> = directory::teleworkers(&devices).into_keys().collect();
    let runtime = runtime()?;
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
