//! The `ztgw-agent` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ztgw_agent::connect;
use ztgw_agent::dns::SplitDns;
use ztgw_agent::enroll::{EnrollOptions, enroll};
use ztgw_agent::renew::{renew, status};
use ztgw_agent::state::AgentState;
use ztgw_api::control::Ownership;

/// ztgw-agent: connects this device to your administration's telework gateway.
#[derive(Debug, Parser)]
#[command(
    name = "ztgw-agent",
    version,
    about,
    after_help = "Examples:\n  ztgw-agent enroll 'ztgw1-AUM9P…'\n  ztgw-agent posture\n  ztgw-agent status\n\nExit codes: 0 when the command did what it says, 2 when the command line is wrong,\n1 otherwise (the message says why)."
)]
struct Cli {
    /// The agent's state directory (keys, certificate).
    #[arg(long, global = true, env = "ZTGW_AGENT_STATE")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enrol this device with the invitation your security unit gave you.
    #[command(after_help = "Example:\n  ztgw-agent enroll 'ztgw1-AUM9P…'")]
    Enroll {
        /// The invitation string (ztgw1-…) your security unit gave you.
        invitation: String,
        /// Who owns this device.
        #[arg(long, default_value = "personal", value_parser = parse_ownership)]
        ownership: Ownership,
        /// The name to register instead of the system's hostname.
        #[arg(long)]
        hostname: Option<String>,
        /// Prove who you are with your directory (Windows domain) password, when your
        /// security unit requires it: asked on the terminal without echo, or read as one
        /// line from standard input when that is not a terminal. Sent only to the gateway
        /// the invitation names, never stored.
        #[arg(long)]
        directory_login: bool,
    },
    /// Renew this device's certificate (new key) before it expires.
    Renew {
        /// Only renew if the certificate expires within this long (e.g. 7d).
        #[arg(long)]
        if_expiring_within: Option<ztgw_config::HumanDuration>,
    },
    /// Show what the gateway knows of this device.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish).
    Completions {
        /// The shell to write the script for.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (ztgw-agent.1 and one per command) into a directory.
    Man {
        /// The directory to write the pages into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Connect: admission (certificate, schedule, posture), then the WireGuard tunnel,
    /// kept until you stop it (Ctrl-C) or the session ends.
    #[command(
        after_help = "Examples:\n  ztgw-agent connect --wg-interface wg0\n  ztgw-agent connect --write-config /etc/wireguard/ztgw.conf\n  ztgw-agent connect --tunnel-service        (Windows, as an administrator)"
    )]
    Connect {
        /// An existing WireGuard interface (wireguard-go or kernel) to configure with
        /// `wg` and `ip`.
        #[arg(
            long,
            conflicts_with_all = ["write_config", "tunnel_service"],
            required_unless_present_any = ["write_config", "tunnel_service"]
        )]
        wg_interface: Option<String>,
        /// Write a wg-quick configuration file (0600) instead, and keep re-checking.
        #[arg(long, conflicts_with = "tunnel_service")]
        write_config: Option<PathBuf>,
        /// On Windows: hand the session to WireGuard for Windows as a tunnel service
        /// (`ztgw`), removed when the session ends. Run as an administrator.
        #[arg(long)]
        tunnel_service: bool,
        /// The code from your authenticator app, when your role requires a second
        /// factor (otherwise the agent asks for it).
        #[arg(long)]
        second_factor: Option<String>,
        /// Read the posture from a copy of a laptop's files mounted here instead of this
        /// system (default /). Only files are read there: the firewall and endpoint
        /// protection in force are asked of the running system only.
        #[arg(long, default_value = "/")]
        posture_root: PathBuf,
    },
    /// End this device's session at the gateway and tear the tunnel down (G9).
    Disconnect,
    /// Report an incident to your security unit (G13): this device's access is revoked
    /// at once. Works whatever the state of the device.
    #[command(
        after_help = "Example:\n  ztgw-agent report-incident --kind lost-secret --note 'password typed on a phishing page'"
    )]
    ReportIncident {
        /// What happened: lost-secret, malware, data-theft or device-lost.
        #[arg(long, value_parser = ["lost-secret", "malware", "data-theft", "device-lost"])]
        kind: String,
        /// What you can say about it, for the security unit.
        #[arg(long)]
        note: Option<String>,
    },
    /// Check this device against the posture your role requires, and say how to fix
    /// what fails.
    #[command(
        after_help = "Examples:\n  sudo ztgw-agent posture\n  ztgw-agent posture --posture-root /mnt/laptop-image --json"
    )]
    Posture {
        /// The report and its evaluation as JSON.
        #[arg(long)]
        json: bool,
        /// Check a copy of a laptop's files mounted here instead of this system (default
        /// /): a security unit checking a captured image, or a test. Only files are read
        /// there.
        #[arg(long, default_value = "/")]
        posture_root: PathBuf,
        /// On Windows and macOS: save what each posture source says into
        /// DIR/windows-posture/ (or macos-posture/), for a security unit to check
        /// elsewhere with --posture-root DIR.
        #[arg(long, value_name = "DIR")]
        capture: Option<PathBuf>,
    },
}

fn parse_ownership(s: &str) -> Result<Ownership, String> {
    s.parse()
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ztgw-agent: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ztgw-agent: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let dir = cli.state_dir.unwrap_or_else(AgentState::default_dir);
    let state = AgentState::new(&dir);
    match cli.command {
        Command::Completions { shell } => {
            use std::io::Write as _;
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into memory first: the generator panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "ztgw-agent", &mut script);
            std::io::stdout()
                .write_all(&script)
                .map_err(|e| e.to_string())
        }
        Command::Man { out } => {
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut pages = vec![(cmd.get_name().to_owned(), cmd.clone())];
            pages.extend(
                cmd.get_subcommands()
                    .map(|s| (format!("ztgw-agent-{}", s.get_name()), s.clone())),
            );
            for (name, page) in &pages {
                let mut bytes = Vec::new();
                clap_mangen::Man::new(page.clone().name(name.clone()))
                    .render(&mut bytes)
                    .map_err(|e| e.to_string())?;
                let path = out.join(format!("{name}.1"));
                std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            println!("{} manual pages written to {}", pages.len(), out.display());
            Ok(())
        }
        Command::Enroll {
            invitation,
            ownership,
            hostname,
            directory_login,
        } => {
            let directory_password = if directory_login {
                Some(directory_password()?)
            } else {
                None
            };
            let enrolled = enroll(&EnrollOptions {
                invitation,
                state_dir: dir.clone(),
                ownership,
                hostname,
                root: "/".into(),
                directory_password,
            })
            .await
            .map_err(|e| e.to_string())?;
            let record = &enrolled.record;
            println!(
                "This device is enrolled as {} for employee {} (role {}).",
                record.device_id, record.employee_id, record.role
            );
            if record.status == ztgw_api::control::DeviceStatus::Pending {
                println!("It is waiting for your security unit's approval before it can connect.");
            }
            println!(
                "Its keys are in {} and never leave this device.",
                dir.display()
            );
            if let Some(sf) = &enrolled.second_factor {
                show_second_factor(sf);
            }
            Ok(())
        }
        Command::Renew { if_expiring_within } => {
            let within = if_expiring_within
                .map(|d| time::Duration::try_from(d.get()).map_err(|e| e.to_string()))
                .transpose()?;
            match renew(&state, time::OffsetDateTime::now_utc(), within)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(not_after) => {
                    println!("Certificate renewed; valid until {}.", rfc3339(not_after))
                }
                None => println!("The certificate is not due for renewal."),
            }
            Ok(())
        }
        Command::Posture {
            capture: Some(dir), ..
        } => {
            let (_, profile) = ztgw_agent::posture::profile_for(&state)
                .await
                .map_err(|e| e.to_string())?;
            let done = ztgw_agent::posture::capture(&profile, &dir)?;
            for (source, result) in done {
                match result {
                    Ok(()) => println!("  saved   {source}"),
                    Err(e) => println!("  missing {source}: {e}"),
                }
            }
            println!(
                "Captured in {}; check it with: ztgw-agent posture --posture-root {}",
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        Command::Posture {
            json, posture_root, ..
        } => {
            let (profile, report, evaluation) = ztgw_agent::posture::preview(&state, posture_root)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                let both = serde_json::json!({ "profile": profile, "report": report, "evaluation": evaluation });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&both).map_err(|e| e.to_string())?
                );
            } else {
                println!("Checked against {profile}:");
                for c in &evaluation.checks {
                    let mark = match c.outcome {
                        ztgw_posture::evaluate::Outcome::Pass => "ok  ",
                        ztgw_posture::evaluate::Outcome::Fail => "FAIL",
                        ztgw_posture::evaluate::Outcome::Unknown => "??  ",
                    };
                    println!("  {mark} {:<30} {}", c.id, c.sentence);
                    if let Some(fix) = &c.remediation {
                        println!("       {:<30} -> {fix}", "");
                    }
                }
                if evaluation.compliant {
                    println!("This device meets the requirements.");
                } else {
                    println!(
                        "This device does not meet the requirements yet: fix the items above (?? means it could not be checked, which does not count as passing)."
                    );
                }
            }
            if evaluation.compliant {
                Ok(())
            } else {
                Err("the device is not compliant".into())
            }
        }
        Command::Connect {
            wg_interface,
            write_config,
            tunnel_service,
            second_factor,
            posture_root,
        } => {
            let target = match (wg_interface, write_config, tunnel_service) {
                (Some(i), _, _) => connect::Target::Interface(i),
                (None, Some(f), _) => connect::Target::ConfigFile(f),
                (None, None, true) => connect::Target::WindowsService(state.dir.join("ztgw.conf")),
                (None, None, false) => {
                    return Err(
                        "give --wg-interface NAME, --write-config FILE or (on Windows) --tunnel-service".into(),
                    );
                }
            };
            let mut second_factor = second_factor;
            let mut readmitted: Vec<std::time::Instant> = Vec::new();
            // After the gateway restarted: until when admission is tried again while the
            // gateway does not answer yet.
            let mut patience: Option<std::time::Instant> = None;
            let mut wait = RESTART_RETRY.0;
            // Other gateways not yet tried since the last one that answered.
            let mut untried = gateways_known(&state).saturating_sub(1);
            loop {
                let next = match run_connection(
                    &state,
                    &target,
                    &posture_root,
                    second_factor.take(),
                )
                .await
                {
                    Ok(next) => {
                        patience = None;
                        wait = RESTART_RETRY.0;
                        untried = gateways_known(&state).saturating_sub(1);
                        next
                    }
                    Err(Failure::Unreachable(e)) if untried > 0 => {
                        // Another gateway of the registry, at once.
                        untried -= 1;
                        match state.switch_gateway() {
                            Ok(Some(next)) => {
                                eprintln!("{e}; trying the gateway at {next}");
                                continue;
                            }
                            Ok(None) => break Err(e),
                            Err(err) => break Err(err.to_string()),
                        }
                    }
                    Err(Failure::Unreachable(e))
                        if patience.is_some_and(|until| std::time::Instant::now() < until) =>
                    {
                        eprintln!("{e} (trying again in {} s)", wait.as_secs());
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(RESTART_RETRY.1);
                        untried = gateways_known(&state).saturating_sub(1);
                        continue;
                    }
                    Err(Failure::Unreachable(e) | Failure::Other(e)) => break Err(e),
                };
                match next {
                    Next::Done => break Ok(()),
                    Next::Readmit(why) => {
                        // A role that keeps changing (two sources of roles fighting) is
                        // not followed for ever.
                        let now = std::time::Instant::now();
                        readmitted.retain(|t| now.duration_since(*t) < READMIT_WINDOW);
                        if readmitted.len() >= MAX_READMISSIONS {
                            break Err(format!(
                                "The session ended: {why}; this device's role changed {MAX_READMISSIONS} times within {} s, so the agent stops here: run `ztgw-agent connect` again, and tell your security unit if it happens again.",
                                READMIT_WINDOW.as_secs()
                            ));
                        }
                        readmitted.push(now);
                        println!("The session ended: {why}. Connecting again under the new role.");
                    }
                    Next::GatewayRestarted(why) => {
                        println!("The session ended: {why}. Connecting again.");
                        patience = Some(std::time::Instant::now() + RESTART_PATIENCE);
                    }
                    Next::Failover(why) => {
                        let next = state.switch_gateway().map_err(|e| e.to_string())?;
                        println!(
                            "The session ended: {why}. Connecting through {}.",
                            next.as_deref().unwrap_or("the same gateway")
                        );
                        patience = Some(std::time::Instant::now() + RESTART_PATIENCE);
                        untried = gateways_known(&state).saturating_sub(2);
                    }
                }
            }
        }
        Command::ReportIncident { kind, note } => {
            let _: serde_json::Value = ztgw_agent::renew::device_client(&state)
                .map_err(|e| e.to_string())?
                .post(
                    ztgw_api::control::path::INCIDENT,
                    &ztgw_api::control::IncidentRequest { kind, note },
                )
                .await
                .map_err(|e| e.to_string())?;
            if let Ok(Some(s)) = connect::session(&state) {
                if let Some(i) = &s.interface {
                    connect::teardown(i, &s.tunnel_address, s.tunnel_address6.as_deref());
                }
                connect::forget(&state);
            }
            println!(
                "Incident reported. This device's access is revoked; your security unit has been told. Follow their instructions."
            );
            Ok(())
        }
        Command::Disconnect => match connect::disconnect(&state)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(s) => {
                println!("Session {} ended; the tunnel is down.", s.session);
                Ok(())
            }
            None => {
                println!("This device has no session.");
                Ok(())
            }
        },
        Command::Status { json } => {
            let view = status(&state).await.map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?
                );
            } else {
                println!("device       {}", view.device_id);
                println!("employee     {}", view.employee_id);
                println!("role         {}", view.role);
                println!("status       {}", view.status.as_str());
                println!(
                    "certificate  {} valid until {}",
                    view.certificate_serial,
                    rfc3339(view.certificate_not_after)
                );
                match connect::session(&state).map_err(|e| e.to_string())? {
                    Some(s) => println!(
                        "session      {} (role {}, tunnel {}, until {})",
                        s.session,
                        s.role,
                        s.tunnel_address,
                        for_people(&s.ends_at)
                    ),
                    None => println!("session      none"),
                }
            }
            Ok(())
        }
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    for_people(
        &t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string()),
    )
}

/// A time for the employee: RFC 3339 in this laptop's time zone
/// (`2027-04-06T10:00:00+01:00`), whatever offset it came with (the gateway sends UTC).
fn for_people(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

/// How soon a watch is tried again when the gateway could not be reached.
const WATCH_RETRY: std::time::Duration = std::time::Duration::from_secs(2);
/// How long the agent waits for the gateway to say why a session it no longer knows
/// ended.
const GATEWAY_WORD: std::time::Duration = std::time::Duration::from_secs(3);

/// Re-admissions after a role change allowed within [`READMIT_WINDOW`].
const MAX_READMISSIONS: usize = 3;
const READMIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// How long, after the gateway restarted, admission is tried again while it does not
/// answer; and the waits between tries (doubling from the first to the second).
const RESTART_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);
const RESTART_RETRY: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(30),
);

/// How many gateways the agent knows (1 when its state cannot say).
fn gateways_known(state: &AgentState) -> usize {
    state.record().map_or(1, |r| 1 + r.other_addresses.len())
}

/// What to do once a session is over.
enum Next {
    /// The employee disconnected.
    Done,
    /// The gateway changed the device's role: admitted again at once (why, in words).
    Readmit(String),
    /// The gateway stopped or restarted: admitted again as soon as it answers.
    GatewayRestarted(String),
    /// The gateway stopped answering: admitted again through another.
    Failover(String),
}

/// Why a connection could not go on.
enum Failure {
    /// The gateway could not be reached (worth trying again after a restart).
    Unreachable(String),
    Other(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Self::Other(s)
    }
}

/// Admission, the tunnel, re-checks on time; returns when the session ends.
async fn run_connection(
    state: &AgentState,
    target: &connect::Target,
    posture_root: &std::path::Path,
    mut second_factor: Option<String>,
) -> Result<Next, Failure> {
    let grant = connect::admit(state, posture_root, || {
        second_factor.take().or_else(ask_code)
    })
    .await
    .map_err(|e| match e {
        ztgw_agent::error::AgentError::Unreachable { .. } => Failure::Unreachable(e.to_string()),
        other => Failure::Other(other.to_string()),
    })?;
    for note in connect::configure(state, target, &grant).map_err(|e| e.to_string())? {
        eprintln!("Note: {note}.");
    }
    let iface = match target {
        connect::Target::Interface(i) => Some(i.clone()),
        connect::Target::ConfigFile(_) | connect::Target::WindowsService(_) => None,
    };
    connect::remember(
        state,
        &connect::SessionRecord {
            session: grant.session.clone(),
            role: grant.role.clone(),
            tunnel_address: grant.tunnel_address.clone(),
            tunnel_address6: grant.tunnel_address6.clone(),
            ends_at: grant.ends_at.clone(),
            interface: iface.clone(),
        },
    )
    .map_err(|e| e.to_string())?;
    println!(
        "Connected: session {}, role {}, tunnel address {}, until {}.",
        grant.session,
        grant.role,
        grant.tunnel_address,
        for_people(&grant.ends_at)
    );
    println!(
        "Reachable through the tunnel: {}.",
        grant.allowed_ips.join(", ")
    );
    match target {
        connect::Target::ConfigFile(f) => println!(
            "WireGuard configuration written to {}; bring it up with wg-quick (or import it in the WireGuard app).",
            f.display()
        ),
        connect::Target::WindowsService(f) => println!(
            "WireGuard for Windows runs the tunnel {} for this session.",
            f.file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default()
        ),
        connect::Target::Interface(_) => {}
    }
    let ends_at = time::OffsetDateTime::parse(
        &grant.ends_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| format!("the gateway's end time: {e}"))?;
    let mut every = grant.recheck_secs.max(5);
    // The resolvers in force (the grant's, then the role's after a re-check).
    let mut resolvers = SplitDns::of_grant(&grant).unwrap_or_default();
    let mut term = Terminate::new()?;
    // The gateway tells a watching agent at once when it ends the session.
    let ended = connect::until_ended(state, &grant.session, WATCH_RETRY);
    tokio::pin!(ended);
    let outcome = loop {
        let left = (ends_at - time::OffsetDateTime::now_utc())
            .whole_milliseconds()
            .max(0) as u64;
        let wait = std::time::Duration::from_millis(every.saturating_mul(1000).min(left));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => break Stop::Employee,
            _ = term.recv() => break Stop::Employee,
            why = &mut ended => break Stop::Ended(why),
        }
        if time::OffsetDateTime::now_utc() >= ends_at {
            // The gateway ends it at the same moment and says why (the window, or the
            // maximum length); its word is awaited briefly.
            let why = tokio::time::timeout(GATEWAY_WORD, &mut ended)
                .await
                .unwrap_or_else(|_| {
                    connect::Ended::said(
                        "the session reached its end (telework window or maximum length)".into(),
                    )
                });
            break Stop::Ended(why);
        }
        match connect::recheck(state, &grant.session, posture_root, ask_code).await {
            Ok(v) => {
                every = v.next_recheck_secs.max(5);
                // Renew the certificate in time, as the renewal timer would.
                match renew(
                    state,
                    time::OffsetDateTime::now_utc(),
                    Some(time::Duration::days(7)),
                )
                .await
                {
                    Ok(Some(until)) => {
                        println!("Certificate renewed; valid until {}.", rfc3339(until))
                    }
                    Ok(None) => {}
                    Err(e) => eprintln!("{e}"),
                }
                if v.quarantined {
                    println!(
                        "Posture check failed: this device is in quarantine (role {}) until it complies again. Run `ztgw-agent posture` to see what to fix.",
                        v.role
                    );
                } else {
                    println!("Posture re-checked: compliant; next check in {every} s.");
                }
                if let Some(i) = &iface
                    && let Err(e) = connect::reroute(i, &grant.gateway_public_key, &v.allowed_ips)
                {
                    eprintln!("{e}");
                }
                match SplitDns::of_recheck(&v) {
                    Ok(now) => {
                        if let Some(note) = connect::change_dns(target, &resolvers, &now) {
                            eprintln!("Note: {note}.");
                        }
                        resolvers = now;
                    }
                    Err(what) => eprintln!("the gateway's answer has an invalid {what}"),
                }
            }
            // Refused for good: a reason code, or this device's certificate refused.
            // A session the gateway has just ended: its reason comes through the watch.
            Err(e) if e.code() == Some("session_unknown") => {
                let why = tokio::time::timeout(GATEWAY_WORD, &mut ended)
                    .await
                    .unwrap_or_else(|_| connect::Ended::said(e.to_string()));
                break Stop::Ended(why);
            }
            Err(e) if e.is_final() => break Stop::Ended(connect::Ended::said(e.to_string())),
            // The gateway could not be reached this time: try again at the next interval
            // (the gateway ends the session if re-checks stay missing).
            Err(e) => eprintln!("{e}"),
        }
    };
    match outcome {
        Stop::Employee => {
            connect::disconnect(state)
                .await
                .map_err(|e| e.to_string())?;
            // The tunnel's keys are of no use once the session ended: a wg-quick file or
            // a Windows tunnel service goes with it (an interface was taken down above).
            connect::teardown_target(
                target,
                &grant.tunnel_address,
                grant.tunnel_address6.as_deref(),
            );
            println!("Disconnected.");
            Ok(Next::Done)
        }
        Stop::Ended(why) => {
            connect::teardown_target(
                target,
                &grant.tunnel_address,
                grant.tunnel_address6.as_deref(),
            );
            connect::forget(state);
            if why.role_changed() {
                Ok(Next::Readmit(why.sentence))
            } else if why.gateway_restarted() {
                Ok(Next::GatewayRestarted(why.sentence))
            } else if why.gateway_unreachable() {
                Ok(Next::Failover(why.sentence))
            } else {
                Err(Failure::Other(format!(
                    "The session ended: {}",
                    why.sentence
                )))
            }
        }
    }
}

enum Stop {
    Employee,
    Ended(connect::Ended),
}

/// Shows the second factor's secret once: a QR code for an authenticator app, and the
/// secret as text.
fn show_second_factor(sf: &ztgw_agent::enroll::SecondFactorSetup) {
    println!();
    println!(
        "Second factor: add this account to your authenticator app now (it is shown only once)."
    );
    match qrcode::QrCode::new(sf.uri.expose().as_bytes()) {
        Ok(code) => println!(
            "{}",
            code.render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build()
        ),
        Err(e) => eprintln!("(no QR code: {e})"),
    }
    println!(
        "Or type this secret (TOTP, 6 digits, 30 s): {}",
        sf.secret.expose()
    );
}

/// The employee's directory password: asked on the terminal without echo, or one line of
/// standard input when that is not a terminal (a script).
fn directory_password() -> Result<ztgw_api::control::RedactedString, String> {
    use std::io::{BufRead as _, IsTerminal as _};
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Your directory password (it is not shown): ")
            .map_err(|e| format!("could not read the password: {e}"))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("could not read the password from standard input: {e}"))?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        zeroize::Zeroize::zeroize(&mut line);
        password
    };
    if password.is_empty() {
        return Err("no directory password given".into());
    }
    Ok(ztgw_api::control::RedactedString::new(password))
}

/// Asks the employee for the code on the terminal (none when there is no terminal).
fn ask_code() -> Option<String> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("Code from your authenticator app: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_owned())
}

/// SIGTERM on Unix (`systemctl stop`, `kill`); on Windows, where a service or a console
/// is stopped through Ctrl-C/Ctrl-Break, nothing more than `ctrl_c` already hears.
struct Terminate {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Terminate {
    fn new() -> Result<Self, String> {
        Ok(Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| e.to_string())?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        {
            std::future::pending::<()>().await;
        }
    }
}
