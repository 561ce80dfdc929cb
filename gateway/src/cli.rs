//! The `ztgw` command line: definitions, dispatch, output and exit codes.

mod directory;
pub mod docs;
mod journal;
mod operator;
mod policy;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use ztgw_config::{HumanDuration, Settings};
use ztgw_pki::{DeviceId, EmployeeId};

use crate::admin::socket::{self, CallError};
use crate::admin::{
    AdminEnvelope, AdminError, AdminErrorCode, AdminRequest, AdminResponse, EmployeeRevokeReason,
    RevokeReason,
};
use crate::clock::{SystemClock, SystemEntropy};
use crate::context::Context;
use crate::enrolment::rfc3339;

/// Exit codes of `ztgw`, documented in docs/security-units.md.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything not listed below.
    pub const FAILURE: u8 = 1;
    /// The command line is wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// The configuration or the state directory cannot be used.
    pub const CONFIG: u8 = 3;
    /// The device, employee or invitation does not exist.
    pub const NOT_FOUND: u8 = 4;
    /// The request was refused: invalid, or not allowed in the target's state.
    pub const REFUSED: u8 = 5;
    /// The gateway failed to carry out the action.
    pub const INTERNAL: u8 = 6;
    /// `ztgw journal verify` (or a read) found the journal damaged or tampered with.
    pub const DAMAGED: u8 = 7;
}

const DEFAULT_CONFIG: &str = "/etc/ztgw/gateway.toml";

/// ztgw: zero-trust remote access gateway for teleworking civil servants.
#[derive(Debug, Parser)]
#[command(
    name = "ztgw",
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  ztgw serve\n  ztgw invite --employee e1029 --role finance --approved-by 'Head of IT' --reference DEC-2026-114\n  ztgw device list --json\n  ztgw policy check /etc/ztgw/policy.toml\n  ztgw journal verify\n\nExit codes: 0 done, 1 other failure, 2 wrong command line, 3 unusable configuration or state,\n4 not found, 5 refused, 6 the gateway failed, 7 journal damaged (docs/security-units.md)."
)]
pub struct Cli {
    /// The gateway's settings file.
    #[arg(long, global = true, env = "ZTGW_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Who is acting, for the record (default: the invoking OS user).
    #[arg(long, global = true)]
    pub operator: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new gateway's state directory (CA, keys, settings, policy, registry).
    #[command(
        after_help = "Examples:\n  ztgw init --dir /etc/ztgw --state-dir /var/lib/ztgw --journal-dir /var/log/ztgw/journal \\\n      --owner ztgw --name gw.example.gov.ma --endpoint gw.example.gov.ma:51820\n  ztgw init --dir ./gw --name 127.0.0.1 --endpoint 127.0.0.1:51820"
    )]
    Init(InitArgs),
    /// Run the gateway (control plane and admin socket) in the foreground.
    Serve,
    /// Invite an employee to enrol one device: the administration's prior approval (G1).
    #[command(
        after_help = "Example:\n  ztgw invite --employee e1029 --role finance --approved-by 'Head of IT' --reference DEC-2026-114"
    )]
    Invite(InviteArgs),
    /// Enrolled devices: list, show, approve, revoke, decommission.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Employees: end or restore an employee's telework (G3).
    #[command(subcommand)]
    Employee(EmployeeCommand),
    /// Live sessions of the running gateway: list, end (G9).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Schedules: an emergency override for a role or an employee.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Incidents (G13): report one; the device or the employee is revoked at once.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// The access policy: check, test, explain, diff, reload (G2, G4, G18).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The directory (Active Directory, LDAP): what it would change of telework.
    #[command(subcommand)]
    Directory(directory::DirectoryCommand),
    /// The audit journal: verify, query, export, checkpoint (G10).
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Auditors: certificates for reading the journal through the control plane.
    #[command(subcommand)]
    Auditor(AuditorCommand),
    /// Web console operators: certificates (PKCS#12) for security units and auditors.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Reports from the journal: telework hours (G11), admissions and posture (G12).
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Write an encrypted backup of the gateway's state (G16).
    #[command(
        after_help = "Example:\n  ztgw backup --to /srv/backups/ztgw-2027-04-06.zbak --passphrase-file /root/backup.pass"
    )]
    Backup {
        /// The archive to write (created with mode 0600; must not exist).
        #[arg(long)]
        to: PathBuf,
        /// A file holding the passphrase (at least 12 characters); or ZTGW_BACKUP_PASSPHRASE.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Write the bundle another gateway joins this one's registry with (`ztgw init
    /// --join`): the CA's certificate and key and the registry's URL, sealed with a
    /// passphrase.
    #[command(
        after_help = "Example:\n  ztgw join-bundle --out /root/gw2.join --passphrase-file /root/join.pass\n  # on the new gateway:\n  ztgw init --join gw2.join --passphrase-file join.pass --dir /etc/ztgw --name gw2.example.gov.ma \\\n      --endpoint gw2.example.gov.ma:51820 --tunnel-network 100.65.0.0/16"
    )]
    JoinBundle {
        /// The bundle to write (created with mode 0600; must not exist).
        #[arg(long)]
        out: PathBuf,
        /// A file holding the passphrase (at least 12 characters); or ZTGW_JOIN_PASSPHRASE.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish).
    Completions {
        /// The shell to write the script for.
        shell: docs::Shell,
    },
    /// Write the manual pages (ztgw.1 and one per command) into a directory.
    Man {
        /// The directory to write the pages into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into new (or empty) directories, laid out as `ztgw init` lays them.
    #[command(
        after_help = "Examples:\n  ztgw restore --from ztgw-2027-04-06.zbak --passphrase-file /root/backup.pass \\\n      --dir /etc/ztgw --state-dir /var/lib/ztgw --journal-dir /var/log/ztgw/journal --owner ztgw\n  ztgw restore --from ztgw-2027-04-06.zbak --dir ./restored"
    )]
    Restore {
        /// The archive written by `ztgw backup`.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        layout: LayoutArgs,
        /// A file holding the passphrase; or ZTGW_BACKUP_PASSPHRASE.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditorCommand {
    /// Issue an auditor's certificate. Without --csr a key is made and written to --out
    /// (auditor.key, 0600) with the certificate and the CA, to hand to the auditor.
    #[command(after_help = "Example:\n  ztgw auditor add cour-des-comptes --out ./auditor-bundle")]
    Add {
        /// The auditor's name, as it will appear in the certificate and the journal.
        name: ztgw_pki::AuditorName,
        /// Where to write auditor.key, auditor.pem and ca.pem.
        #[arg(long)]
        out: PathBuf,
        /// The auditor's own CSR (their key never leaves them); only the certificate is written.
        #[arg(long)]
        csr: Option<PathBuf>,
        /// How long the certificate is valid (e.g. 90d).
        #[arg(long, default_value = "365d")]
        valid_for: HumanDuration,
    },
    /// Revoke an auditor's certificate at once.
    Revoke {
        /// The auditor's name, as given to `ztgw auditor add`.
        name: ztgw_pki::AuditorName,
        /// A free-text note kept with the action in the registry and the journal.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// The gateway's DNS name or IP address; repeat for more. The first goes into invitations.
    #[arg(long = "name", required = true)]
    pub names: Vec<String>,
    /// The WireGuard endpoint laptops send to, HOST:PORT.
    #[arg(long)]
    pub endpoint: String,
    /// Where the control plane listens.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub control_listen: SocketAddr,
    /// The control-plane address invitations carry (default: first name and listen port).
    #[arg(long)]
    pub control_advertise: Option<String>,
    /// Join the gateways of a shared registry: their CA and registry from the bundle
    /// `ztgw join-bundle` wrote on one of them (its passphrase: --passphrase-file or
    /// ZTGW_JOIN_PASSPHRASE).
    #[arg(long, value_name = "BUNDLE")]
    pub join: Option<PathBuf>,
    /// A file holding the join bundle's passphrase.
    #[arg(long, requires = "join")]
    pub passphrase_file: Option<PathBuf>,
    /// The tunnel network laptops' addresses come from (one IPv4, and one IPv6 for dual
    /// stack); each gateway of a registry needs its own. Default: 100.64.0.0/16.
    #[arg(long = "tunnel-network", value_name = "NETWORK")]
    pub tunnel_networks: Vec<String>,
}

/// Where `ztgw init` and `ztgw restore` put a gateway's files.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// The directory for gateway.toml and policy.toml (must be new or empty). Without
    /// --state-dir it holds the state too and is made 0700; with it, an existing
    /// directory keeps its owner and mode.
    #[arg(long)]
    pub dir: PathBuf,
    /// The service's state (keys, registry, revocation list, admin socket), in a
    /// directory of its own (new or empty), e.g. /var/lib/ztgw.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The journal's directory (new or empty; default: journal/ in the state), e.g.
    /// /var/log/ztgw/journal where the auditors' group can read it.
    #[arg(long)]
    pub journal_dir: Option<PathBuf>,
    /// The account the service runs as: the state and the journal are given to it
    /// (needs root). The configuration stays the caller's.
    #[arg(long)]
    pub owner: Option<String>,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The employee's identifier in the administration (letters, digits, '-', '_', '.').
    #[arg(long)]
    pub employee: EmployeeId,
    /// A role defined in the policy. With a `[directory]`, it must be one the directory
    /// gives the employee, and is taken from it when omitted.
    #[arg(long)]
    pub role: Option<String>,
    /// Who in the administration approved this telework.
    #[arg(long)]
    pub approved_by: String,
    /// The reference of the approval decision.
    #[arg(long)]
    pub reference: String,
    /// A schedule of the policy for this employee, instead of the role's.
    #[arg(long)]
    pub schedule: Option<String>,
    /// How long the invitation can be used (e.g. 72h; default from gateway.toml).
    #[arg(long)]
    pub valid_for: Option<HumanDuration>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Allow telework outside the schedule until a time, for a role or an employee (an
    /// emergency); journaled with its reason.
    #[command(
        after_help = "Example:\n  ztgw schedule override --role finance --until 2027-04-06T22:00:00+01:00 --reason 'year-end closing'"
    )]
    Override {
        /// The role whose members may connect.
        #[arg(
            long,
            required_unless_present = "employee",
            conflicts_with = "employee"
        )]
        role: Option<String>,
        /// The employee who may connect.
        #[arg(long)]
        employee: Option<EmployeeId>,
        /// Until when (RFC 3339, with its offset), at most 31 days ahead.
        #[arg(long, value_parser = parse_rfc3339)]
        until: time::OffsetDateTime,
        /// Why, for the journal.
        #[arg(long)]
        reason: String,
    },
}

fn parse_rfc3339(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2027-04-06T22:00:00+01:00 ({e})"))
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Report an incident: the device (or every device of the employee) is revoked at
    /// once, its sessions end, the incident is journaled and the notification command
    /// ([incidents] notify_command) is run.
    #[command(
        after_help = "Example:\n  ztgw incident report --device dev-3k9x… --kind malware --note 'EDR alert 4411'"
    )]
    Report {
        /// The device concerned, as `ztgw device list` shows it.
        #[arg(
            long,
            required_unless_present = "employee",
            conflicts_with = "employee"
        )]
        device: Option<DeviceId>,
        /// The employee concerned (every device of theirs is revoked).
        #[arg(long)]
        employee: Option<EmployeeId>,
        /// What happened.
        #[arg(long, value_enum)]
        kind: crate::admin::incident::IncidentKind,
        /// A free-text note kept with the incident in the journal.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List the live sessions: device, employee, role, tunnel address, times.
    List {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a live session at once: its tunnel stops and the end is journaled.
    #[command(after_help = "Example:\n  ztgw session end s-4f0c… --reason 'suspicious traffic'")]
    End {
        /// The session's identifier, as `ztgw session list` shows it.
        id: String,
        /// Why, for the journal.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List enrolled devices.
    List {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one device with its certificates and history.
    Show {
        /// The device's identifier, as `ztgw device list` shows it.
        id: DeviceId,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a device held for approval (require_device_approval = true).
    Approve {
        /// The device's identifier, as `ztgw device list` shows it.
        id: DeviceId,
        /// A free-text note kept with the action in the registry and the journal.
        #[arg(long)]
        note: Option<String>,
    },
    /// Revoke a device at once: its certificates are revoked and the CRL republished.
    #[command(
        after_help = "Example:\n  ztgw device revoke dev-3k9x… --reason lost --note 'reported by phone 09:12'"
    )]
    Revoke {
        /// The device's identifier, as `ztgw device list` shows it.
        id: DeviceId,
        /// Why the device is revoked (recorded, and written into the CRL entry).
        #[arg(long, value_enum)]
        reason: RevokeReason,
        /// A free-text note kept with the action in the registry and the journal.
        #[arg(long)]
        note: Option<String>,
    },
    /// Give a device another role of the policy in force. Its live session ends at once
    /// and the agent is admitted again under the new role. With a [directory], the
    /// directory's groups decide roles: its next sync sets them back.
    #[command(
        after_help = "Example:\n  ztgw device set-role dev-3k9x… hr --note 'moved to HR, ticket 4411'"
    )]
    SetRole {
        /// The device's identifier, as `ztgw device list` shows it.
        id: DeviceId,
        /// The new role (a role of the policy in force).
        role: String,
        /// A free-text note kept with the action in the registry and the journal.
        #[arg(long)]
        note: Option<String>,
    },
    /// Lift a second-factor lockout (after too many wrong codes) before it ends by itself.
    Unlock {
        /// The device's identifier, as `ztgw device list` shows it.
        id: DeviceId,
        /// A free-text note kept with the action in the registry and the journal.
        #[arg(long)]
        note: Option<String>,
    },
    /// Equipment returned (G14): credentials revoked, record kept for audit.
    Decommission {
        /// The device's identifier, as `ztgw device list` shows it.
        id: DeviceId,
        /// A free-text note kept with the action in the registry and the journal.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EmployeeCommand {
    /// End an employee's telework: every device of theirs is revoked (G3).
    Revoke {
        /// The employee's identifier.
        id: EmployeeId,
        /// Why the employee's telework ends (recorded).
        #[arg(long, value_enum, default_value = "ended")]
        reason: EmployeeRevokeReason,
        /// A free-text note kept with the action in the registry and the journal.
        #[arg(long)]
        note: Option<String>,
    },
    /// Allow a revoked employee to be invited again.
    Reinstate {
        /// The employee's identifier.
        id: EmployeeId,
        /// A free-text note kept with the action in the registry and the journal.
        #[arg(long)]
        note: Option<String>,
    },
}

/// Runs the command and returns its exit code.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(Failure { code, message }) => {
            eprintln!("ztgw: {message}");
            ExitCode::from(code)
        }
    }
}

/// A failed command: its exit code and what to tell the operator.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<AdminError> for Failure {
    fn from(e: AdminError) -> Self {
        let code = match e.code {
            AdminErrorCode::Invalid | AdminErrorCode::Conflict | AdminErrorCode::Forbidden => {
                exit::REFUSED
            }
            AdminErrorCode::NotFound => exit::NOT_FOUND,
            AdminErrorCode::Internal => exit::INTERNAL,
        };
        Self::new(code, e.message)
    }
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    let operator = cli.operator.clone().unwrap_or_else(os_user);
    match cli.command {
        Command::Completions { shell } => docs::completions(docs::ztgw(), shell),
        Command::Man { out } => {
            let n = docs::man_pages(docs::ztgw(), &out)?;
            println!("{n} manual pages written to {}", out.display());
            Ok(())
        }
        Command::JoinBundle {
            out,
            passphrase_file,
        } => join_bundle(&cli.config, &out, passphrase_file.as_deref()),
        Command::Backup {
            to,
            passphrase_file,
        } => {
            let passphrase = read_passphrase(passphrase_file.as_deref())?;
            let to =
                std::path::absolute(&to).map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
            if to.exists() {
                return Err(Failure::new(
                    exit::REFUSED,
                    format!(
                        "{} exists: a backup is never written over a file",
                        to.display()
                    ),
                ));
            }
            let request = AdminRequest::Backup {
                destination: to.display().to_string(),
                passphrase: ztgw_api::control::RedactedString::new(passphrase.expose().clone()),
            };
            // The gateway hands the archive back; this process writes it, as the operator.
            match admin(&cli.config, &operator, request)? {
                AdminResponse::Backup {
                    files,
                    bytes,
                    archive,
                } => {
                    ztgw_pki::write_private_file(&to, &archive.0, ztgw_pki::Existing::Refuse)
                        .map_err(|e| {
                            Failure::new(exit::FAILURE, format!("{}: {e}", to.display()))
                        })?;
                    println!(
                        "backup of {files} files ({bytes} bytes, encrypted) written to {}",
                        to.display()
                    );
                    Ok(())
                }
                other => show(other, false),
            }
        }
        Command::Restore {
            from,
            layout: args,
            passphrase_file,
        } => {
            let passphrase = read_passphrase(passphrase_file.as_deref())?;
            let layout = layout(&args)?;
            let s = crate::backup::restore(&from, &passphrase, &layout).map_err(|e| {
                let code = match e {
                    crate::backup::BackupError::Layout(
                        crate::layout::LayoutError::NotEmpty(_)
                        | crate::layout::LayoutError::Invalid(_),
                    ) => exit::REFUSED,
                    crate::backup::BackupError::Decrypt
                    | crate::backup::BackupError::NotABackup => exit::DAMAGED,
                    _ => exit::FAILURE,
                };
                Failure::new(code, e.to_string())
            })?;
            println!("restored {} files ({} bytes):", s.files, s.bytes);
            print_layout(&layout);
            println!(
                "check it, then start it: ztgw --config {} journal verify",
                layout.settings().display()
            );
            Ok(())
        }
        Command::Journal(cmd) => journal::run(&cli.config, cmd),
        Command::Directory(cmd) => directory::run(&cli.config, &operator, cmd),
        Command::Report(cmd) => report::run(&cli.config, cmd),
        Command::Operator(cmd) => operator::run(&cli.config, &operator, cmd),
        Command::Auditor(AuditorCommand::Revoke { name, note }) => show(
            admin(
                &cli.config,
                &operator,
                AdminRequest::AuditorRevoke { name, note },
            )?,
            false,
        ),
        Command::Auditor(AuditorCommand::Add {
            name,
            out,
            csr,
            valid_for,
        }) => add_auditor(
            &cli.config,
            &operator,
            name,
            &out,
            csr.as_deref(),
            valid_for,
        ),
        Command::Policy(cmd) => match cmd {
            policy::PolicyCommand::Check { file } => policy::check(&file),
            policy::PolicyCommand::Test { file } => policy::test(&file),
            policy::PolicyCommand::Explain {
                file,
                role,
                employee,
                to,
                at,
            } => policy::explain_cmd(&file, &role, employee.as_deref(), &to, at),
            policy::PolicyCommand::Diff { old, new } => policy::diff_cmd(&old, &new),
            policy::PolicyCommand::Reload => {
                let settings = Settings::load(&cli.config)
                    .map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
                let envelope = AdminEnvelope {
                    operator,
                    request: AdminRequest::PolicyReload,
                };
                match socket::call(&settings.admin.socket, &envelope) {
                    Ok(answer) => show(answer.map_err(Failure::from)?, false),
                    Err(CallError::NotRunning) => Err(Failure::new(
                        exit::FAILURE,
                        "no gateway is running; a gateway reads its policy when it starts",
                    )),
                    Err(e) => Err(Failure::new(exit::FAILURE, e.to_string())),
                }
            }
        },
        Command::Init(args) => init(&args),
        Command::Serve => serve(&cli.config),
        Command::Invite(args) => {
            let request = AdminRequest::Invite {
                employee: args.employee,
                role: args.role,
                schedule: args.schedule,
                approved_by: args.approved_by,
                reference: args.reference,
                valid_for_secs: args.valid_for.map(|d| d.get().as_secs()),
            };
            show(admin(&cli.config, &operator, request)?, args.json)
        }
        Command::Device(cmd) => {
            let (request, json) = match cmd {
                DeviceCommand::List { json } => (AdminRequest::DeviceList, json),
                DeviceCommand::Show { id, json } => (AdminRequest::DeviceShow { device: id }, json),
                DeviceCommand::Approve { id, note } => {
                    (AdminRequest::DeviceApprove { device: id, note }, false)
                }
                DeviceCommand::Revoke { id, reason, note } => (
                    AdminRequest::DeviceRevoke {
                        device: id,
                        reason,
                        note,
                    },
                    false,
                ),
                DeviceCommand::Decommission { id, note } => {
                    (AdminRequest::DeviceDecommission { device: id, note }, false)
                }
                DeviceCommand::SetRole { id, role, note } => (
                    AdminRequest::DeviceSetRole {
                        device: id,
                        role,
                        note,
                    },
                    false,
                ),
                DeviceCommand::Unlock { id, note } => {
                    (AdminRequest::DeviceUnlock { device: id, note }, false)
                }
            };
            show(admin(&cli.config, &operator, request)?, json)
        }
        Command::Schedule(ScheduleCommand::Override {
            role,
            employee,
            until,
            reason,
        }) => {
            let request = AdminRequest::ScheduleOverride {
                role,
                employee,
                until,
                reason,
            };
            show(admin(&cli.config, &operator, request)?, false)
        }
        Command::Incident(IncidentCommand::Report {
            device,
            employee,
            kind,
            note,
        }) => {
            let request = AdminRequest::IncidentReport {
                device,
                employee,
                kind,
                note,
            };
            show(admin(&cli.config, &operator, request)?, false)
        }
        Command::Session(cmd) => {
            let (request, json) = match cmd {
                SessionCommand::List { json } => (AdminRequest::SessionList, json),
                SessionCommand::End { id, reason } => (
                    AdminRequest::SessionEnd {
                        session: id,
                        reason,
                    },
                    false,
                ),
            };
            show(admin(&cli.config, &operator, request)?, json)
        }
        Command::Employee(cmd) => {
            let request = match cmd {
                EmployeeCommand::Revoke { id, reason, note } => AdminRequest::EmployeeRevoke {
                    employee: id,
                    reason,
                    note,
                },
                EmployeeCommand::Reinstate { id, note } => {
                    AdminRequest::EmployeeReinstate { employee: id, note }
                }
            };
            show(admin(&cli.config, &operator, request)?, false)
        }
    }
}

fn read_passphrase(file: Option<&std::path::Path>) -> Result<ztgw_pki::Secret<String>, Failure> {
    read_secret(file, "ZTGW_BACKUP_PASSPHRASE")
}

/// A passphrase from `file`, or else from the environment variable `var`.
fn read_secret(
    file: Option<&std::path::Path>,
    var: &str,
) -> Result<ztgw_pki::Secret<String>, Failure> {
    let text = match file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", p.display())))?,
        None => std::env::var(var).map_err(|_| {
            Failure::new(
                exit::USAGE,
                format!("give the passphrase with --passphrase-file FILE or {var}"),
            )
        })?,
    };
    Ok(ztgw_pki::Secret::new(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

fn add_auditor(
    config: &std::path::Path,
    operator: &str,
    name: ztgw_pki::AuditorName,
    out: &std::path::Path,
    csr: Option<&std::path::Path>,
    valid_for: HumanDuration,
) -> Result<(), Failure> {
    let io = |p: &std::path::Path, e: std::io::Error| {
        Failure::new(exit::FAILURE, format!("{}: {e}", p.display()))
    };
    let (key, csr_pem) = match csr {
        Some(path) => (
            None,
            std::fs::read_to_string(path).map_err(|e| io(path, e))?,
        ),
        None => {
            let (key, csr) = ztgw_pki::generate_key_and_csr(&format!("ztgw auditor {name}"))
                .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
            (Some(key), csr)
        }
    };
    let request = AdminRequest::AuditorAdd {
        name,
        csr_pem,
        valid_for_secs: valid_for.get().as_secs(),
    };
    let AdminResponse::Auditor {
        name,
        certificate_pem,
        ca_pem,
        not_after,
    } = admin(config, operator, request)?
    else {
        return Err(Failure::new(
            exit::FAILURE,
            "the gateway answered something else",
        ));
    };
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    if let Some(key) = key {
        let path = out.join("auditor.key");
        ztgw_pki::write_private_file(&path, key.expose().as_bytes(), ztgw_pki::Existing::Refuse)
            .map_err(|e| io(&path, e))?;
    }
    for (file, text) in [("auditor.pem", &certificate_pem), ("ca.pem", &ca_pem)] {
        let path = out.join(file);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    println!(
        "auditor {name}: certificate valid until {} written to {}",
        rfc3339(not_after),
        out.display()
    );
    println!("The auditor reads the journal with it, for example:");
    println!(
        "  curl --cacert ca.pem --cert auditor.pem --key auditor.key https://GATEWAY:PORT/v1/audit/events?type=device.revoked"
    );
    Ok(())
}

fn join_bundle(
    config: &std::path::Path,
    out: &std::path::Path,
    passphrase_file: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let passphrase = read_secret(passphrase_file, "ZTGW_JOIN_PASSPHRASE")?;
    let settings = ztgw_config::Settings::load(config)
        .map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    let paths = settings.state();
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p)
            .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", p.display())))
    };
    let bundle = crate::join::JoinBundle {
        ca_cert: read(paths.ca_cert())?,
        ca_key: read(paths.ca_key())?,
        registry_url: settings.registry.as_ref().map(|r| r.url.clone()),
    };
    if bundle.registry_url.is_none() {
        eprintln!(
            "warning: this gateway's registry is SQLite, which no other gateway can share: set [registry] url (PostgreSQL) first, or give the new gateway's one after `ztgw init --join`"
        );
    }
    let text = crate::join::seal(&bundle, &passphrase, &SystemEntropy::new())
        .map_err(|e| Failure::new(exit::REFUSED, format!("the bundle was not written: {e}")))?;
    ztgw_pki::write_private_file(out, text.as_bytes(), ztgw_pki::Existing::Refuse)
        .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", out.display())))?;
    println!(
        "Wrote {} (mode 0600): the CA's key, sealed with the passphrase. Carry the file and the passphrase to the new gateway separately, and delete the file once it has joined.",
        out.display()
    );
    Ok(())
}

fn init(args: &InitArgs) -> Result<(), Failure> {
    let layout = layout(&args.layout)?;
    let join = match &args.join {
        Some(path) => {
            let passphrase = read_secret(args.passphrase_file.as_deref(), "ZTGW_JOIN_PASSPHRASE")?;
            let meta = std::fs::metadata(path)
                .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", path.display())))?;
            if meta.len() > crate::join::MAX_BUNDLE_BYTES {
                return Err(Failure::new(
                    exit::REFUSED,
                    format!("{}: larger than any join bundle", path.display()),
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", path.display())))?;
            Some(
                crate::join::open(&text, &passphrase)
                    .map_err(|e| Failure::new(exit::REFUSED, format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let report = crate::state::init(
        &crate::state::InitOptions {
            layout: layout.clone(),
            names: args.names.clone(),
            endpoint: args.endpoint.clone(),
            control_listen: args.control_listen,
            control_advertise: args.control_advertise.clone(),
            join,
            tunnel_networks: args.tunnel_networks.clone(),
        },
        Arc::new(SystemClock),
        Arc::new(SystemEntropy::new()),
    )
    .map_err(|e| {
        let code = match e {
            crate::state::InitError::Layout(
                crate::layout::LayoutError::NotEmpty(_) | crate::layout::LayoutError::Invalid(_),
            )
            | crate::state::InitError::Invalid(_) => exit::REFUSED,
            _ => exit::FAILURE,
        };
        Failure::new(code, e.to_string())
    })?;
    println!("Created the gateway:");
    print_layout(&layout);
    println!("  CA fingerprint:       {}", report.ca_fingerprint);
    println!("  WireGuard public key: {}", report.wireguard_public_key);
    println!();
    println!("Next: review the policy, then start the gateway:");
    println!("  ztgw policy check {}", layout.policy().display());
    if report.settings.as_path() == std::path::Path::new(DEFAULT_CONFIG) {
        println!("  systemctl enable --now ztgw     # or: ztgw serve");
    } else {
        println!("  ztgw --config {} serve", report.settings.display());
    }
    Ok(())
}

/// The layout `ztgw init` and `ztgw restore` are asked for, checked.
fn layout(args: &LayoutArgs) -> Result<crate::layout::Layout, Failure> {
    crate::layout::Layout::new(
        &args.dir,
        args.state_dir.as_deref(),
        args.journal_dir.as_deref(),
        args.owner.as_deref(),
    )
    .map_err(|e| {
        let code = match e {
            crate::layout::LayoutError::Io { .. } => exit::FAILURE,
            _ => exit::USAGE,
        };
        Failure::new(code, e.to_string())
    })
}

fn print_layout(layout: &crate::layout::Layout) {
    let owner = layout
        .owner
        .as_ref()
        .map(|o| format!(" (owned by {})", o.name))
        .unwrap_or_default();
    println!(
        "  configuration:        {} (gateway.toml, policy.toml)",
        layout.config_dir.display()
    );
    if layout.is_split() {
        println!(
            "  state:                {}{owner}",
            layout.state_dir.display()
        );
    }
    println!(
        "  journal:              {}{owner}",
        layout.journal_dir.display()
    );
}

fn serve(config: &std::path::Path) -> Result<(), Failure> {
    let ctx = open(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::FAILURE, format!("cannot start the runtime: {e}")))?;
    runtime
        .block_on(crate::daemon::serve(ctx))
        .map_err(|e| Failure::new(exit::FAILURE, format!("{e:#}")))
}

fn open(config: &std::path::Path) -> Result<Context, Failure> {
    let settings = Settings::load(config).map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    Context::open(
        settings,
        Arc::new(SystemClock),
        Arc::new(SystemEntropy::new()),
    )
    .map_err(|e| Failure::new(exit::CONFIG, e.to_string()))
}

/// Carries out an admin request through the running gateway, or on the state itself
/// when no gateway runs.
fn admin(
    config: &std::path::Path,
    operator: &str,
    request: AdminRequest,
) -> Result<AdminResponse, Failure> {
    let settings = Settings::load(config).map_err(|e| Failure::new(exit::CONFIG, e.to_string()))?;
    let envelope = AdminEnvelope {
        operator: operator.to_owned(),
        request,
    };
    match socket::call(&settings.admin.socket, &envelope) {
        Ok(answer) => answer.map_err(Failure::from),
        Err(CallError::NotRunning) => {
            let ctx = open(config)?;
            // An invitation the directory must confirm is checked there first.
            let request = if settings.directory.is_some() {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        Failure::new(exit::FAILURE, format!("cannot start the runtime: {e}"))
                    })?
                    .block_on(crate::directory::vet(&settings, envelope.request.clone()))
                    .map_err(Failure::from)?
            } else {
                envelope.request.clone()
            };
            let operator = format!(
                "{operator} (uid {}, offline)",
                crate::accounts::current_uid().unwrap_or(u32::MAX)
            );
            // No gateway runs, so no session is live: the changes of access need no one
            // to apply them.
            crate::admin::handle(&ctx, &operator, &request)
                .result
                .map_err(Failure::from)
        }
        Err(e) => Err(Failure::new(exit::FAILURE, e.to_string())),
    }
}

fn show(response: AdminResponse, json: bool) -> Result<(), Failure> {
    if json {
        let text = serde_json::to_string_pretty(&response)
            .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    match response {
        AdminResponse::Sessions {
            sessions,
            elsewhere,
            elsewhere_unknown,
        } => {
            println!(
                "{:<28} {:<22} {:<14} {:<12} {:<15} {:<20} ENDS",
                "SESSION", "DEVICE", "EMPLOYEE", "ROLE", "TUNNEL", "STARTED"
            );
            for s in sessions {
                println!(
                    "{:<28} {:<22} {:<14} {:<12} {:<15} {:<20} {}{}",
                    s.id,
                    s.device.as_str(),
                    s.employee.as_str(),
                    s.role,
                    s.tunnel_addr,
                    rfc3339(s.started),
                    rfc3339(s.ends_at),
                    if s.quarantined { " (quarantined)" } else { "" }
                );
            }
            if let Some(why) = elsewhere_unknown {
                println!("\nThe other gateways' sessions are not known now: {why}");
            }
            if !elsewhere.is_empty() {
                println!("\nHeld by the other gateways:");
                println!(
                    "{:<28} {:<16} {:<22} {:<14} {:<12} {:<15} {:<20} ENDS",
                    "SESSION", "GATEWAY", "DEVICE", "EMPLOYEE", "ROLE", "TUNNEL", "STARTED"
                );
                for s in elsewhere {
                    println!(
                        "{:<28} {:<16} {:<22} {:<14} {:<12} {:<15} {:<20} {}",
                        s.id,
                        s.gateway,
                        s.device.as_str(),
                        s.employee.as_str(),
                        s.role,
                        s.tunnel_addr,
                        rfc3339(s.started),
                        rfc3339(s.ends_at)
                    );
                }
            }
        }
        AdminResponse::Invitation(inv) => {
            println!(
                "Invitation {} for employee {}, role {}{}, usable once until {}:",
                inv.id,
                inv.employee,
                inv.role,
                inv.schedule
                    .map(|s| format!(", schedule {s}"))
                    .unwrap_or_default(),
                rfc3339(inv.expires_at)
            );
            println!();
            println!("  {}", inv.invitation.expose());
            println!();
            println!("Give it to the employee through a channel you trust. They run:");
            println!("  ztgw-agent enroll '<the invitation>'");
        }
        AdminResponse::Devices { devices } => {
            println!(
                "{:<22} {:<16} {:<14} {:<15} {:<20} ENROLLED",
                "DEVICE", "EMPLOYEE", "ROLE", "STATUS", "HOSTNAME"
            );
            for d in devices {
                println!(
                    "{:<22} {:<16} {:<14} {:<15} {:<20} {}",
                    d.id.as_str(),
                    d.employee.as_str(),
                    d.role,
                    d.status.as_str(),
                    d.hostname,
                    rfc3339(d.enrolled_at)
                );
            }
        }
        AdminResponse::Device { device } => {
            let s = &device.summary;
            println!("device        {}", s.id);
            println!("employee      {}", s.employee);
            println!("role          {}", s.role);
            println!(
                "schedule      {}",
                device.schedule.as_deref().unwrap_or("(the role's)")
            );
            println!("status        {}", s.status.as_str());
            println!("hostname      {}", s.hostname);
            println!("os            {}", device.os);
            println!("ownership     {}", s.ownership.as_str());
            println!(
                "enrolled      {} (invitation {})",
                rfc3339(s.enrolled_at),
                device.invitation
            );
            println!("wireguard key {}", device.wireguard_public_key);
            for (label, change) in [("approved", &device.approved), ("ended", &device.ended)] {
                if let Some(c) = change {
                    println!(
                        "{label:<13} {} by {}: {}{}",
                        rfc3339(c.at),
                        c.by,
                        c.reason,
                        c.note
                            .as_ref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default()
                    );
                }
            }
            for c in device.certificates {
                println!(
                    "certificate   {} valid {} to {}{}",
                    c.serial,
                    rfc3339(c.not_before),
                    rfc3339(c.not_after),
                    c.revoked_at
                        .map(|t| format!(", revoked {}", rfc3339(t)))
                        .unwrap_or_default()
                );
            }
        }
        AdminResponse::Done { message, .. } => println!("{message}"),
        AdminResponse::DirectorySync(report) => directory::print_report(&report),
        AdminResponse::Backup { files, bytes, .. } => {
            println!("a backup of {files} files ({bytes} bytes, encrypted)")
        }
        AdminResponse::Auditor {
            name, not_after, ..
        } => {
            println!(
                "auditor {name}: certificate valid until {}",
                rfc3339(not_after)
            )
        }
        AdminResponse::Operator {
            name,
            role,
            not_after,
            ..
        } => println!(
            "operator {name} ({}): certificate valid until {}",
            role.as_str(),
            rfc3339(not_after)
        ),
        AdminResponse::Operators { operators } => {
            if operators.is_empty() {
                println!(
                    "no operators (add one with: ztgw operator add NAME --role ROLE --out FILE.p12)"
                );
            }
            for o in operators {
                println!(
                    "{:<24} {:<14} {}",
                    o.name.as_str(),
                    o.role.as_str(),
                    if o.revoked { "revoked" } else { "active" }
                );
            }
        }
    }
    Ok(())
}

/// The invoking OS user: the one behind sudo if any, else this process's user.
fn os_user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .or_else(|| crate::accounts::current_uid().and_then(crate::accounts::user_name))
        .unwrap_or_else(|| format!("uid {}", crate::accounts::current_uid().unwrap_or(u32::MAX)))
}
