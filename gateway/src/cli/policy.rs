//! `ztgw policy check|test|explain|diff`: the security unit's tools for a policy file,
//! before it goes live (G18). They read only the file they are given.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ztgw_config::location::ConfigError;
use ztgw_config::policy::explain::explain;
use ztgw_config::policy::{CompiledPolicy, Destination, Expect, Policy, cases, diff};

use super::{Failure, exit};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check a policy file: every error with FILE:LINE:COLUMN, then the warnings.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Run the policy's [[test]] cases; the last line is "N passed, M failed".
    Test {
        /// The policy file.
        file: PathBuf,
    },
    /// Explain what a role may do towards a destination, and when.
    #[command(
        after_help = "Example:\n  ztgw policy explain policy.toml --role finance --to 10.20.1.5:5432/tcp --at 2027-04-06T10:00:00+01:00"
    )]
    Explain {
        /// The policy file.
        file: PathBuf,
        /// A role defined in the policy.
        #[arg(long)]
        role: String,
        /// Use this employee's own schedule, if the policy gives one.
        #[arg(long)]
        employee: Option<String>,
        /// IP:PORT/tcp, IP:PORT/udp, [IPv6]:PORT/tcp or IP/icmp.
        #[arg(long, value_parser = Destination::parse)]
        to: Destination,
        /// The instant, RFC 3339 with offset (default: now).
        #[arg(long)]
        at: Option<jiff::Timestamp>,
    },
    /// What changes between two policies: roles gaining or losing resources and hours.
    Diff {
        /// The policy in force (or the earlier one).
        old: PathBuf,
        /// The proposed policy.
        new: PathBuf,
    },
    /// Make the running gateway re-read its policy (validated and tested first).
    Reload,
}

pub fn load(file: &Path) -> Result<ztgw_config::policy::Checked, Failure> {
    Policy::load(file).map_err(|e: ConfigError| Failure::new(exit::CONFIG, e.to_string()))
}

fn print_warnings(file: &Path, checked: &ztgw_config::policy::Checked) {
    for w in &checked.warnings {
        match w.location {
            Some(l) => eprintln!(
                "{}:{}:{}: warning: {}",
                file.display(),
                l.line,
                l.column,
                w.message
            ),
            None => eprintln!("{}: warning: {}", file.display(), w.message),
        }
    }
}

pub fn check(file: &Path) -> Result<(), Failure> {
    let checked = load(file)?;
    print_warnings(file, &checked);
    let p = &checked.policy;
    let compiled = CompiledPolicy::compile(p);
    println!(
        "{}: valid: {} roles, {} resources, {} schedules, {} posture profiles, {} rules, {} tests, {} warnings",
        file.display(),
        p.roles.len(),
        p.resources.len(),
        p.schedules.len(),
        p.posture.len(),
        compiled.rule_count(),
        p.tests.len(),
        checked.warnings.len()
    );
    Ok(())
}

pub fn test(file: &Path) -> Result<(), Failure> {
    let checked = load(file)?;
    print_warnings(file, &checked);
    let compiled = CompiledPolicy::compile(&checked.policy);
    let results = cases::run(&checked.policy, &compiled);
    for r in &results {
        let c = r.case;
        let expected = match (c.expect, &c.rule) {
            (Expect::Allow, Some(rule)) => format!("allow by {rule}"),
            (Expect::Allow, None) => "allow".into(),
            (Expect::Deny, _) => "deny".into(),
        };
        let who = match &c.employee {
            Some(e) => format!("{} (employee {e})", c.role),
            None => c.role.clone(),
        };
        let status = if r.passed { "PASS" } else { "FAIL" };
        println!(
            "{status} {}:{}: {who} to {} at {}: expected {expected}",
            file.display(),
            c.line,
            c.destination,
            c.at_text
        );
        if !r.passed {
            for line in r.actual.render(&checked.policy).lines() {
                println!("     {line}");
            }
        }
    }
    let (passed, failed) = cases::tally(&results);
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(Failure::new(
            exit::FAILURE,
            format!("{failed} policy test(s) failed"),
        ));
    }
    Ok(())
}

pub fn explain_cmd(
    file: &Path,
    role: &str,
    employee: Option<&str>,
    to: &Destination,
    at: Option<jiff::Timestamp>,
) -> Result<(), Failure> {
    let checked = load(file)?;
    let compiled = CompiledPolicy::compile(&checked.policy);
    let at = at.unwrap_or_else(jiff::Timestamp::now);
    let e = explain(&checked.policy, &compiled, role, employee, to, at);
    println!("{} to {} at {}", role, to, at);
    print!("{}", e.render(&checked.policy));
    Ok(())
}

pub fn diff_cmd(old: &Path, new: &Path) -> Result<(), Failure> {
    let a = load(old)?;
    let b = load(new)?;
    let changes = diff::diff(&a.policy, &b.policy);
    if changes.is_empty() {
        println!("no change in access");
    }
    for c in changes {
        println!("{c}");
    }
    Ok(())
}
