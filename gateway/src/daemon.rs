//! `ztgw serve`: the running gateway, wired together.
//!
//! This is the thin shell: it opens the state, binds the control plane and the admin
//! socket, swaps the TLS configuration when a CRL is published, keeps the CRL fresh,
//! trims the rate limiters, and handles signals. The decisions live elsewhere.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use ztgw_pki::Secret;
use ztgw_pki::tls::ServerIdentity;

use crate::admin::socket;
use crate::context::Context;
use crate::control::tls::TlsState;
use crate::control::{ControlPlane, Counters};
use crate::revocation;
use crate::sessions::SessionService;
use ztgw_dataplane::shell::{Config as DataPlaneConfig, DataPlane};

/// The session timer's longest sleep: a window's end is acted on within this.
const SESSION_TICK: Duration = Duration::from_millis(200);

/// How often the maintenance loop runs (CRL freshness, limiter trimming, session
/// reconciliation).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
/// How often journal segments past retention are purged.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// A running gateway. Dropping it (or [`RunningGateway::shutdown`]) stops every task.
#[derive(Debug)]
pub struct RunningGateway {
    pub ctx: Arc<Context>,
    pub control_addr: SocketAddr,
    pub counters: Arc<Counters>,
    /// The control plane's load (connections, buffered bodies).
    pub observed: Arc<crate::control::Observed>,
    /// Refused enrolments not yet journaled.
    pub refusals: Arc<crate::control::refusals::RefusalTally>,
    /// Where `/metrics` and `/health` are served.
    pub metrics_addr: SocketAddr,
    /// Where the web console listens (`[console]`), when it is on.
    pub console_addr: Option<SocketAddr>,
    pub sessions: Arc<SessionService>,
    tls: Arc<TlsState>,
    admin_socket: PathBuf,
    tasks: JoinSet<()>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the control plane's TLS identity: {0}")]
    Tls(#[from] ztgw_pki::TlsConfigError),
    #[error("binding the control plane on {addr}: {source}")]
    BindControl {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("binding the web console on {addr}: {source}")]
    BindConsole {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("binding the metrics endpoint on {addr}: {source}")]
    BindMetrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("binding the admin socket {path}: {source}")]
    BindAdmin {
        path: String,
        source: std::io::Error,
    },
    #[error("the data plane: {0}")]
    DataPlane(#[from] ztgw_dataplane::shell::StartError),
    #[error("{path}: not a WireGuard private key")]
    WireguardKey { path: String },
    #[error("joining the registry's gateways: {0}")]
    Join(crate::registry::RegistryError),
}

impl RunningGateway {
    /// Starts the gateway on an opened context.
    pub async fn start(ctx: Context) -> Result<Self, StartError> {
        let ctx = Arc::new(ctx);
        let paths = ctx.settings.state();
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).map_err(|source| StartError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let identity = ServerIdentity::from_pem(
            &read(paths.server_cert())?,
            &Secret::new(read(paths.server_key())?),
            &read(paths.ca_cert())?,
        )?;
        // A fresh CRL at start; if that fails the one on disk (if still valid) is used.
        let revocation = match ctx.publish_crl() {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(error = %e, "could not publish a revocation list at start");
                ctx.load_crl()
            }
        };
        let tls = Arc::new(TlsState::new(identity, &revocation)?);
        // Among the registry's gateways, with the policy in force there.
        crate::cluster::join(&ctx).map_err(StartError::Join)?;
        {
            let tls = tls.clone();
            ctx.on_crl_published(move |state| tls.apply(state));
        }

        let dataplane = if ctx.settings.wireguard.enabled {
            let key_path = paths.wireguard_key();
            let text = zeroize::Zeroizing::new(read(key_path.clone())?);
            let bytes: [u8; 32] =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StartError::WireguardKey {
                        path: key_path.display().to_string(),
                    })?;
            let config = DataPlaneConfig::from_settings(&ctx.settings.wireguard)?;
            let compiled = Arc::new(ctx.policy.current().compiled.clone());
            Some(DataPlane::start(
                config,
                boringtun::x25519::StaticSecret::from(bytes),
                compiled,
            )?)
        } else {
            tracing::warn!("[wireguard] enabled = false: this gateway admits no sessions");
            None
        };
        let sessions = SessionService::new(ctx.clone(), dataplane);
        settle_previous_run(&ctx, &sessions);

        let listen = ctx.settings.control.listen;
        let control = ControlPlane::bind(ctx.clone(), tls.clone(), sessions.clone())
            .await
            .map_err(|source| StartError::BindControl {
                addr: listen,
                source,
            })?;
        let control_addr = control
            .local_addr()
            .map_err(|source| StartError::BindControl {
                addr: listen,
                source,
            })?;
        let counters = control.counters();
        let limits = control.limits();
        let observed = control.observed();
        let refusals = control.refusals();

        let console_error = |source| StartError::BindConsole {
            addr: ctx.settings.console.as_ref().map_or(listen, |c| c.listen),
            source,
        };
        let console = crate::console::Console::bind(ctx.clone(), tls.clone(), sessions.clone())
            .await
            .map_err(console_error)?;
        let console_addr = console
            .as_ref()
            .map(|c| c.local_addr())
            .transpose()
            .map_err(console_error)?;

        let admin_path = ctx.settings.admin.socket.clone();
        let admin = socket::bind(&admin_path, &ctx.settings.admin.group).map_err(|source| {
            StartError::BindAdmin {
                path: admin_path.display().to_string(),
                source,
            }
        })?;

        let metrics_listen = ctx.settings.metrics.listen;
        let metrics = tokio::net::TcpListener::bind(metrics_listen)
            .await
            .map_err(|source| StartError::BindMetrics {
                addr: metrics_listen,
                source,
            })?;
        let metrics_addr = metrics
            .local_addr()
            .map_err(|source| StartError::BindMetrics {
                addr: metrics_listen,
                source,
            })?;

        let mut tasks = JoinSet::new();
        tasks.spawn(crate::metrics::serve(
            metrics,
            ctx.clone(),
            counters.clone(),
            observed.clone(),
            sessions.clone(),
        ));
        tasks.spawn(control.run());
        if let Some(console) = console {
            tasks.spawn(console.run());
        }
        tasks.spawn(socket::serve(admin, ctx.clone(), sessions.clone()));
        {
            let sessions = sessions.clone();
            let clock = ctx.clock.clone();
            tasks.spawn(async move {
                loop {
                    let s = sessions.clone();
                    let next = tokio::task::spawn_blocking(move || s.tick())
                        .await
                        .ok()
                        .flatten();
                    let wait = next
                        .map(|t| (t - clock.now()).max(time::Duration::ZERO))
                        .and_then(|d| Duration::try_from(d).ok())
                        .map_or(SESSION_TICK, |d| d.min(SESSION_TICK));
                    tokio::time::sleep(wait).await;
                }
            });
        }
        {
            let ctx = ctx.clone();
            let tls = tls.clone();
            let sessions = sessions.clone();
            let tally = refusals.clone();
            let low = Arc::new(std::sync::atomic::AtomicBool::new(false));
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
                loop {
                    tick.tick().await;
                    limits.forget_idle();
                    let ctx = ctx.clone();
                    let tls = tls.clone();
                    let sessions = sessions.clone();
                    let tally = tally.clone();
                    let low = low.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        warn_if_low_on_space(&ctx, &low);
                        ctx.journal.retry();
                        journal_refusals(&ctx, &tally, false);
                        maintain_crl(&ctx, &tls);
                        crate::cluster::replay_queued(&ctx, &sessions);
                        sessions.reconcile();
                    })
                    .await;
                }
            });
        }
        if ctx.registry.shared() {
            // Changes other gateways make: revocations, policy, devices they admitted.
            let follower = Arc::new(crate::cluster::Follower::new(ctx.clone(), sessions.clone()));
            tasks.spawn(follower.run());
        }
        if !ctx.settings.export.is_empty() {
            // The journal, streamed to the receivers of [export].
            tasks.spawn(crate::export::run_all(ctx.clone()));
        }
        if let Some(d) = &ctx.settings.directory {
            // The directory, read and applied every sync_interval (the first right away).
            let ctx = ctx.clone();
            let sessions = sessions.clone();
            let every = d.sync_interval.get();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    match crate::directory::sync::sync_once(
                        &ctx,
                        Some(&sessions),
                        false,
                        crate::directory::sync::OPERATOR,
                    )
                    .await
                    {
                        Ok(r) if !r.ended.is_empty() => {
                            tracing::info!(ended = ?r.ended, "the directory ended telework")
                        }
                        Ok(_) => {}
                        // Journaled and counted by the sync; the last view stands.
                        Err(e) => tracing::warn!(error = %e, "directory sync failed"),
                    }
                }
            });
        }
        let policy = ctx.policy.current();
        let started = crate::registry::ActionRecord {
            at: ctx.clock.now(),
            operator: "ztgw serve".into(),
            action: "gateway.started".into(),
            target: ctx
                .settings
                .gateway
                .names
                .first()
                .cloned()
                .unwrap_or_default(),
            detail: format!("control={control_addr} policy_sha256={}", policy.sha256),
        };
        if let Err(e) = ctx.registry.record_action(&started) {
            tracing::error!(error = %e, "could not record the gateway's start");
        }
        // The start and the policy it loaded, as every later load is recorded.
        if let Err(e) = ctx.journal_all(&[
            crate::journal::Event::GatewayStarted {
                version: env!("CARGO_PKG_VERSION").into(),
                policy_sha256: policy.sha256.clone(),
                name: Some(ctx.gateway_name().to_owned()),
            },
            crate::journal::Event::PolicyLoaded {
                sha256: policy.sha256.clone(),
                previous: None,
                operator: "ztgw serve".into(),
                warnings: policy.warnings.len(),
                tests: policy.policy.tests.len(),
            },
        ]) {
            tracing::error!(error = %e, "could not journal the gateway's start");
        }
        {
            let ctx = ctx.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(RETENTION_INTERVAL);
                loop {
                    tick.tick().await;
                    let ctx = ctx.clone();
                    let _ = tokio::task::spawn_blocking(move || apply_retention(&ctx)).await;
                }
            });
        }
        tracing::info!(%control_addr, console = ?console_addr, admin_socket = %admin_path.display(), policy_sha256 = %policy.sha256, "gateway started");
        Ok(Self {
            ctx,
            control_addr,
            counters,
            observed,
            refusals,
            metrics_addr,
            console_addr,
            sessions,
            tls,
            admin_socket: admin_path,
            tasks,
        })
    }

    /// Puts the CRL file as it is now in force (what the maintenance loop does after
    /// checking whether to re-sign). A CRL that is unreadable, not ours or expired makes
    /// the control plane refuse every client certificate.
    pub fn enforce_crl_on_disk(&self) {
        self.tls.apply(&self.ctx.load_crl());
    }

    /// One pass of the maintenance loop: re-sign the CRL if due, then enforce it.
    pub fn maintain(&self) {
        maintain_crl(&self.ctx, &self.tls);
    }

    /// Stops every task, journals the stop, and removes the admin socket.
    pub async fn shutdown(mut self, reason: &str) {
        self.tasks.shutdown().await;
        let sessions = self.sessions.clone();
        let _ = tokio::task::spawn_blocking(move || sessions.shutdown()).await;
        journal_refusals(&self.ctx, &self.refusals, true);
        if let Err(e) = self.ctx.journal(&crate::journal::Event::GatewayStopped {
            reason: reason.into(),
        }) {
            tracing::error!(error = %e, "could not journal the gateway's stop");
        }
        let _ = std::fs::remove_file(&self.admin_socket);
        tracing::info!("gateway stopped");
    }
}

/// Logs (once each time it happens) that the journal's filesystem has less free space
/// than `[journal] free_space_warning`, and when it has enough again.
fn warn_if_low_on_space(ctx: &Context, was_low: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    let Some(free) = crate::journal::free_bytes(&ctx.settings.journal.dir) else {
        return;
    };
    let low = free < ctx.settings.journal.free_space_warning;
    if low != was_low.swap(low, Ordering::Relaxed) {
        if low {
            tracing::warn!(free_bytes = free, dir = %ctx.settings.journal.dir.display(), "the journal's filesystem is running out of space: when it is full, actions that need journaling are refused");
        } else {
            tracing::info!(
                free_bytes = free,
                "the journal's filesystem has enough free space again"
            );
        }
    }
}

/// Journals the refused enrolments counted in minutes that are over (all of them with
/// `all`); records that cannot be journaled are kept for the next try.
pub fn journal_refusals(ctx: &Context, tally: &crate::control::refusals::RefusalTally, all: bool) {
    let events = tally.take(ctx.clock.now(), all);
    if events.is_empty() {
        return;
    }
    if let Err(e) = ctx.journal_all(&events) {
        tracing::error!(error = %e, refusals = events.len(), "refused enrolments could not be journaled yet; kept to try again");
        tally.put_back(events);
    }
}

/// Re-signs the CRL when half its validity has passed or the file is not usable, and
/// re-reads the file, so that a CRL that cannot be replaced makes the control plane fail
/// closed.
fn maintain_crl(ctx: &Context, tls: &TlsState) {
    let now = ctx.clock.now();
    let half = time::Duration::try_from(ctx.settings.enrolment.crl_validity.get() / 2)
        .unwrap_or(time::Duration::HOUR);
    let due = revocation::inspect(&ctx.settings.state().crl(), &ctx.ca, now)
        .map_or(true, |(_, next)| next - now < half);
    if due {
        match ctx.publish_crl() {
            Ok(_) => return,
            Err(e) => tracing::error!(error = %e, "could not re-sign the revocation list"),
        }
    }
    tls.apply(&ctx.load_crl());
}

/// Deletes journal segments whose newest event is older than the retention (G15).
fn apply_retention(ctx: &Context) {
    let retention = time::Duration::try_from(ctx.settings.journal.retention.get())
        .unwrap_or(time::Duration::days(365));
    match ctx.journal.purge(ctx.clock.now() - retention) {
        Ok(purged) if !purged.is_empty() => tracing::info!(
            segments = purged.len(),
            "journal segments past retention purged"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "journal retention could not be applied"),
    }
}

/// Ends in the journal the sessions a crash of the previous run left open, and tells
/// [`SessionService`] which sessions that run ended by stopping or crashing, so that their
/// agents, asking, hear why and admit themselves again (see [`crate::restart`]).
fn settle_previous_run(ctx: &Context, sessions: &SessionService) {
    let now = ctx.clock.now();
    let longest = ctx.policy.current().policy.settings.max_session.get();
    let since = now
        - time::Duration::try_from(longest).unwrap_or(time::Duration::DAY)
        - time::Duration::HOUR;
    let previous = match crate::restart::previous_run(
        &ctx.settings.journal.dir,
        ctx.journal.durable_end(),
        since,
    ) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "could not read what the previous run left in the journal");
            return;
        }
    };
    let until = previous.last_record.unwrap_or(now);
    let ends: Vec<crate::journal::Event> = previous
        .left_open
        .iter()
        .map(|s| crate::journal::Event::SessionEnded {
            session: s.session.clone(),
            device: s.device.clone(),
            employee: s.employee.clone(),
            reason: crate::restart::RESTARTED.into(),
            duration_secs: (until - s.started).whole_seconds().max(0).unsigned_abs(),
            bytes_in: 0,
            bytes_out: 0,
        })
        .collect();
    if !ends.is_empty() {
        tracing::warn!(
            sessions = ends.len(),
            "the previous run stopped without ending its sessions (a crash): ended in the journal as gateway-restarted"
        );
        if let Err(e) = ctx.journal_all(&ends) {
            tracing::error!(error = %e, "THE AUDIT JOURNAL CANNOT BE WRITTEN: the sessions a crash left open are not ended in it");
        }
    }
    sessions.remember_ended(
        previous
            .left_open
            .iter()
            .map(|s| (s.session.clone(), crate::restart::RESTARTED.to_owned()))
            .chain(
                previous
                    .stopped
                    .into_iter()
                    .map(|s| (s, crate::restart::STOPPED.to_owned())),
            ),
    );
}

/// Runs the gateway until SIGTERM or SIGINT. SIGHUP re-reads the policy.
pub async fn serve(ctx: Context) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let gateway = RunningGateway::start(ctx).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let reason = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => reload_policy(&gateway.ctx, &gateway.sessions),
        }
    };
    gateway.shutdown(reason).await;
    Ok(())
}

fn reload_policy(ctx: &Context, sessions: &SessionService) {
    // The outcome is logged and recorded by the context; a policy put in force reaches
    // the sessions.
    let _changing = ctx.changing();
    if let Ok(active) = ctx.reload_policy("SIGHUP") {
        sessions.apply(&crate::admin::AccessChange::PolicyLoaded(active));
    }
}
