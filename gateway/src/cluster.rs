//! Several gateways on one registry (`[registry] url`): what each does so that they act
//! as one.
//!
//! - At start a gateway **registers** its name, addresses and tunnel networks (refused if
//!   a network overlaps another gateway's: a laptop's address names its gateway), forgets
//!   the live sessions a previous run of its own left in the registry, and takes the
//!   **policy in force** from the registry (the one a reload last put there, on any
//!   gateway), or puts its own there if there is none.
//! - While it runs it **follows the registry**: whenever another gateway changes it
//!   (PostgreSQL's `NOTIFY`, heard by [`crate::registry::Registry::on_change`]) and every
//!   [`RECONCILE_EVERY`] as the safety net, it looks at the registry's revision; when it
//!   moved, it signs a CRL from the registry (revocations made elsewhere; the TLS
//!   configuration swaps it in), puts the policy in force if another gateway loaded one,
//!   and ends the live sessions the registry no longer allows
//!   ([`SessionService::enforce_registry`]): revoked, of a revoked employee, of a device
//!   whose role changed, or replaced by an admission of the device through another
//!   gateway.
//!
//! A registry no other gateway shares (SQLite) needs none of the following: every
//! change is made here and applied as it is made.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::admin::AccessChange;
use crate::context::Context;
use crate::registry::{GatewayRecord, RegistryError, StoredPolicy};
use crate::sessions::SessionService;

/// How often a gateway looks at the registry's revision without being told to.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// How soon a look left for later (a change of this gateway's own under way) is made.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Records this gateway among the registry's, and settles the policy it starts with.
/// An error (a tunnel network another gateway has, the registry unreachable) stops the
/// start.
pub fn join(ctx: &Context) -> Result<(), RegistryError> {
    let settings = &ctx.settings;
    ctx.registry.register_gateway(&GatewayRecord {
        name: ctx.gateway_name().to_owned(),
        control: settings.control.advertise.clone(),
        endpoint: settings.wireguard.endpoint.clone(),
        pools: settings.wireguard.tunnel_network.clone(),
        started_at: ctx.clock.now(),
    })?;
    // Whatever a previous run recorded, this run holds no session yet.
    let released = ctx.registry.release_sessions_of(ctx.gateway_name(), &[])?;
    if released > 0 {
        tracing::info!(
            released,
            "forgot the live sessions the previous run left in the registry"
        );
    }
    let imported = crate::admin::schedule_override::import_file(ctx, ctx.clock.now())?;
    if imported > 0 {
        tracing::info!(
            imported,
            "moved the schedule overrides of overrides.json into the registry"
        );
    }
    settle_policy(ctx)
}

/// The policy a gateway starts with. With a shared registry, the registry's wins over
/// the file (the last reload on any gateway; a gateway started with an older file must
/// not roll the others back); the file's is put there when the registry has none. With a
/// registry of its own, the file's is recorded there.
fn settle_policy(ctx: &Context) -> Result<(), RegistryError> {
    let mine = ctx.policy.current();
    let stored = ctx.registry.policy_in_force()?;
    match stored {
        Some(p) if p.sha256 == mine.sha256 => Ok(()),
        Some(p) if ctx.registry.shared() => {
            let origin = std::path::PathBuf::from(format!(
                "(the registry's policy, loaded by {})",
                p.loaded_by
            ));
            match crate::active_policy::ActivePolicy::from_text(&origin, &p.text) {
                Ok(candidate) => {
                    tracing::warn!(
                        file = %ctx.settings.policy.file.display(),
                        file_sha256 = %mine.sha256,
                        in_force = %p.sha256,
                        by = %p.loaded_by,
                        "the policy file differs from the one in force on the gateways: the registry's is in force here too; `ztgw policy reload` puts the file in force on every gateway"
                    );
                    ctx.policy.replace(candidate);
                    Ok(())
                }
                Err(refused) => {
                    tracing::error!(reason = %refused.refusal, "the registry's policy is refused here: this gateway starts with its file's");
                    Ok(())
                }
            }
        }
        _ => {
            let now = ctx.clock.now();
            ctx.registry.put_policy(
                &StoredPolicy {
                    sha256: mine.sha256.clone(),
                    text: mine.text.clone(),
                    loaded_at: now,
                    loaded_by: format!("{}: ztgw serve", ctx.gateway_name()),
                },
                &crate::registry::ActionRecord {
                    at: now,
                    operator: "ztgw serve".into(),
                    action: "policy.loaded".into(),
                    target: ctx.settings.policy.file.display().to_string(),
                    detail: format!("sha256={} (at start)", mine.sha256),
                },
            )
        }
    }
}

/// Carries out the revocations queued while the registry could not be reached, if it
/// can be now ([`crate::admin::queued`]), and applies them to the sessions.
pub fn replay_queued(ctx: &Context, sessions: &SessionService) {
    if ctx.queued.is_empty() {
        return;
    }
    let (access, done) = ctx.queued.replay(ctx);
    sessions.apply_all(&access);
    if done > 0 {
        tracing::info!(
            done,
            waiting = ctx.queued.len(),
            "queued revocations carried out"
        );
    }
}

/// Follows the registry for a running gateway (see the module's words).
#[derive(Debug)]
pub struct Follower {
    ctx: Arc<Context>,
    sessions: Arc<SessionService>,
    /// The revision the last complete look saw.
    seen: Mutex<Option<i64>>,
}

impl Follower {
    pub fn new(ctx: Arc<Context>, sessions: Arc<SessionService>) -> Self {
        Self {
            ctx,
            sessions,
            seen: Mutex::new(None),
        }
    }

    /// One look at the registry; one at a time. Whatever fails is tried again at the
    /// next look (the revision is noted only once everything was applied). Returns false
    /// when it left the look for later: a change of this gateway's own is being applied
    /// (it ends its sessions with its own reason; look again in a moment).
    pub fn look(&self) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if self.ctx.is_changing() {
            return false;
        }
        replay_queued(&self.ctx, &self.sessions);
        let revision = match self.ctx.registry.revision() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the registry: changes made on other gateways wait");
                return true;
            }
        };
        if *seen == Some(revision) {
            return true;
        }
        let mut complete = true;
        if let Err(e) = self.ctx.publish_crl() {
            complete = false;
            tracing::error!(error = %e, "could not publish the registry's revocations here");
        }
        match self.ctx.registry.policy_in_force() {
            Ok(Some(p)) => {
                if let Some(active) = self.ctx.adopt_policy(&p) {
                    self.sessions.apply(&AccessChange::PolicyLoaded(active));
                }
            }
            Ok(None) => {}
            Err(e) => {
                complete = false;
                tracing::warn!(error = %e, "cannot read the registry's policy");
            }
        }
        if let Err(e) = self.sessions.enforce_registry() {
            complete = false;
            tracing::warn!(error = %e, "cannot check the live sessions against the registry");
        }
        if complete {
            *seen = Some(revision);
        }
        true
    }

    /// Looks whenever the registry announces a change, and every [`RECONCILE_EVERY`].
    pub async fn run(self: Arc<Self>) {
        let wake = Arc::new(tokio::sync::Notify::new());
        {
            let wake = wake.clone();
            if let Err(e) = self
                .ctx
                .registry
                .on_change(Arc::new(move || wake.notify_one()))
            {
                tracing::error!(error = %e, "cannot listen to the registry's changes: other gateways' changes are seen every {RECONCILE_EVERY:?} only");
            }
        }
        loop {
            let me = self.clone();
            let looked = tokio::task::spawn_blocking(move || me.look())
                .await
                .unwrap_or(true);
            let wait = if looked { RECONCILE_EVERY } else { LOOK_AGAIN };
            let _ = tokio::time::timeout(wait, wake.notified()).await;
        }
    }
}
