//! Everything a gateway command needs, opened once from the settings: the registry, the
//! CA, the policy, the revocation publisher, the clock and the random source.
//!
//! Both the daemon and the offline admin commands work through a [`Context`], so an
//! action does the same whether or not a gateway is running.

use std::sync::{Arc, Mutex};

use ztgw_config::Settings;
use ztgw_pki::{CertificateAuthority, Secret};

use crate::active_policy::{ActivePolicy, PolicyHolder, Refused};
use crate::clock::{Clock, Entropy};
use crate::journal::{Event, Journal, JournalConfig, JournalError, JournalKey};
use crate::registry::{ActionRecord, Registry, StoredPolicy};
use crate::revocation::{self, RevocationState};

/// Why the gateway's state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(#[from] ztgw_config::ConfigError),
    #[error("the policy is refused: {}", .0.refusal)]
    Policy(Refused),
    #[error("the certificate authority: {0}")]
    Ca(#[from] ztgw_pki::CaError),
    #[error("the registry: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    #[error("the audit journal: {0}")]
    Journal(#[from] JournalError),
    #[error("the journal key {path}: {problem}")]
    JournalKey { path: String, problem: String },
}

type CrlHook = Box<dyn Fn(&RevocationState) + Send + Sync>;

/// The gateway's opened state.
pub struct Context {
    pub settings: Settings,
    pub registry: Arc<dyn Registry>,
    pub ca: CertificateAuthority,
    pub policy: PolicyHolder,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    pub journal: Journal,
    /// How the directory has been answering (when there is one).
    pub directory_health: crate::directory::sync::SyncHealth,
    /// What each `[export]` target has delivered.
    pub export: crate::export::Statuses,
    /// Revocations waiting for the registry to be reachable.
    pub queued: crate::admin::queued::Queue,
    crl_hooks: Mutex<Vec<CrlHook>>,
    /// Changes of access this gateway is making (recorded, not yet applied to its
    /// sessions): see [`Context::changing`].
    changing: std::sync::atomic::AtomicUsize,
}

/// Held while this gateway makes a change of access, from its record in the registry to
/// its application to the sessions (see [`Context::changing`]).
#[derive(Debug)]
pub struct Changing<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("state_dir", &self.settings.gateway.state_dir)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Opens the state the settings point at.
    pub fn open(
        settings: Settings,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Result<Self, OpenError> {
        let paths = settings.state();
        let ca_cert = read(&paths.ca_cert())?;
        let ca_key = Secret::new(read(&paths.ca_key())?);
        let ca = CertificateAuthority::load(&ca_cert, &ca_key)?;
        let policy = ActivePolicy::load(&settings.policy.file).map_err(OpenError::Policy)?;
        let registry = crate::registry::open(&settings)?;
        let key = load_journal_key(&paths.journal_key())?;
        let (journal, recovery) = Journal::open(
            JournalConfig {
                dir: settings.journal.dir.clone(),
                gateway: *ca.fingerprint(),
                key,
                segment_max_bytes: settings.journal.segment_max_bytes,
                segment_max_age: time::Duration::try_from(settings.journal.segment_max_age.get())
                    .unwrap_or(time::Duration::DAY),
                group: crate::accounts::group_id(&settings.journal.auditors_group),
            },
            clock.now(),
        )?;
        if let Some(cut) = recovery.truncated {
            tracing::error!(event = ?cut, "the journal's damaged tail was cut at start");
        }
        let export = crate::export::Statuses::new(&settings.gateway.state_dir, &settings.export);
        let queued = crate::admin::queued::Queue::load(paths.queued_revocations());
        Ok(Self {
            settings,
            registry,
            ca,
            policy: PolicyHolder::new(policy),
            clock,
            entropy,
            journal,
            directory_health: Default::default(),
            export,
            queued,
            crl_hooks: Mutex::new(Vec::new()),
            changing: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Marks a change of access under way here until the guard is dropped: the
    /// registry's follower ([`crate::cluster::Follower`]) leaves the sessions alone
    /// meanwhile, so that the change ends them with its own reason (an incident, not the
    /// bare revocation the registry shows).
    pub fn changing(&self) -> Changing<'_> {
        self.changing
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Changing(&self.changing)
    }

    /// Whether a change of access is under way here.
    pub fn is_changing(&self) -> bool {
        self.changing.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// This gateway's name among the gateways of a registry: its first name.
    pub fn gateway_name(&self) -> &str {
        self.settings
            .gateway
            .names
            .first()
            .map_or("ztgw", String::as_str)
    }

    /// Runs `hook` after every CRL this context publishes (the daemon swaps its TLS
    /// configuration there). Sessions do not hear of revocations here: the admin actions
    /// return them as [`crate::admin::AccessChange`]s.
    pub fn on_crl_published(&self, hook: impl Fn(&RevocationState) + Send + Sync + 'static) {
        if let Ok(mut hooks) = self.crl_hooks.lock() {
            hooks.push(Box::new(hook));
        }
    }

    /// Journals `event` now; returns once it is durable. An error means the action that
    /// needed the event must not take effect.
    pub fn journal(&self, event: &Event) -> Result<u64, JournalError> {
        self.journal.append(event, self.clock.now())
    }

    /// Journals `events` in order, usually in one group commit; returns once all are
    /// durable.
    pub fn journal_all(&self, events: &[Event]) -> Result<Vec<u64>, JournalError> {
        self.journal.append_all(events, self.clock.now())
    }

    /// Re-reads the policy file; it replaces the policy in force only if it is valid and
    /// its tests pass. Either way the outcome is recorded with the file's hash and the
    /// operator. Returns the policy in force afterwards, or the refusal; the caller hands
    /// a new policy to the session layer.
    pub fn reload_policy(&self, operator: &str) -> Result<Arc<ActivePolicy>, ReloadError> {
        let now = self.clock.now();
        let previous = self.policy.current().sha256.clone();
        match ActivePolicy::load(&self.settings.policy.file) {
            Ok(candidate) => {
                self.journal(&Event::PolicyLoaded {
                    sha256: candidate.sha256.clone(),
                    previous: Some(previous.clone()),
                    operator: operator.to_owned(),
                    warnings: candidate.warnings.len(),
                    tests: candidate.policy.tests.len(),
                })
                .map_err(ReloadError::Journal)?;
                let detail = format!(
                    "sha256={} previous={previous} warnings={} tests={}",
                    candidate.sha256,
                    candidate.warnings.len(),
                    candidate.policy.tests.len()
                );
                // In force for every gateway of the registry from here on.
                self.registry
                    .put_policy(
                        &StoredPolicy {
                            sha256: candidate.sha256.clone(),
                            text: candidate.text.clone(),
                            loaded_at: now,
                            loaded_by: format!("{}: {operator}", self.gateway_name()),
                        },
                        &ActionRecord {
                            at: now,
                            operator: operator.to_owned(),
                            action: "policy.loaded".into(),
                            target: self.settings.policy.file.display().to_string(),
                            detail,
                        },
                    )
                    .map_err(ReloadError::Record)?;
                let active = self.policy.replace(candidate);
                tracing::info!(sha256 = %active.sha256, "policy loaded");
                Ok(active)
            }
            Err(refused) => {
                self.journal(&Event::PolicyRefused {
                    sha256: refused.sha256.clone(),
                    kept: previous.clone(),
                    operator: operator.to_owned(),
                    reason: refused.refusal.to_string(),
                })
                .map_err(ReloadError::Journal)?;
                let detail = format!(
                    "sha256={} kept={previous} reason={}",
                    refused.sha256.as_deref().unwrap_or("unreadable"),
                    refused.refusal
                );
                tracing::error!(reason = %refused.refusal, "policy refused; the policy in force stays");
                self.registry
                    .record_action(&ActionRecord {
                        at: now,
                        operator: operator.to_owned(),
                        action: "policy.refused".into(),
                        target: self.settings.policy.file.display().to_string(),
                        detail,
                    })
                    .map_err(ReloadError::Record)?;
                Err(ReloadError::Refused(refused))
            }
        }
    }

    /// Puts in force the policy another gateway put in the registry, once checked here as
    /// a reload is; journaled with who loaded it where. `None` if it is the one in force
    /// already, or if it is refused here (journaled; the policy in force stays).
    pub fn adopt_policy(&self, stored: &StoredPolicy) -> Option<Arc<ActivePolicy>> {
        let previous = self.policy.current().sha256.clone();
        if stored.sha256 == previous {
            return None;
        }
        let origin = std::path::PathBuf::from(format!(
            "(the registry's policy, loaded by {})",
            stored.loaded_by
        ));
        let operator = format!("{} (through the registry)", stored.loaded_by);
        match ActivePolicy::from_text(&origin, &stored.text) {
            Ok(candidate) => {
                if let Err(e) = self.journal(&Event::PolicyLoaded {
                    sha256: candidate.sha256.clone(),
                    previous: Some(previous),
                    operator,
                    warnings: candidate.warnings.len(),
                    tests: candidate.policy.tests.len(),
                }) {
                    // Taking access away never waits for the journal; this may widen it,
                    // so it waits: the next look tries again.
                    tracing::error!(error = %e, "the registry's policy could not be journaled, so it is not in force here yet");
                    return None;
                }
                let active = self.policy.replace(candidate);
                tracing::info!(sha256 = %active.sha256, by = %stored.loaded_by, "policy loaded from the registry");
                Some(active)
            }
            Err(refused) => {
                tracing::error!(sha256 = %stored.sha256, reason = %refused.refusal, "the registry's policy is refused here; the policy in force stays");
                let _ = self.journal(&Event::PolicyRefused {
                    sha256: Some(stored.sha256.clone()),
                    kept: previous,
                    operator,
                    reason: refused.refusal.to_string(),
                });
                None
            }
        }
    }

    /// Signs and writes a CRL from the registry (one publisher at a time, see
    /// [`revocation::publish`]), then tells the hooks what is in force.
    pub fn publish_crl(&self) -> Result<RevocationState, revocation::PublishError> {
        let now = self.clock.now();
        revocation::publish(
            &self.ca,
            self.registry.as_ref(),
            &self.settings.state().crl(),
            now,
            self.settings.enrolment.crl_validity.get(),
        )?;
        let state = self.load_crl();
        if let Ok(hooks) = self.crl_hooks.lock() {
            for hook in hooks.iter() {
                hook(&state);
            }
        }
        Ok(state)
    }

    /// The CRL on disk, if it is usable now; otherwise why not.
    pub fn load_crl(&self) -> RevocationState {
        revocation::load(&self.settings.state().crl(), &self.ca, self.clock.now())
    }
}

/// Why a reload did not put a new policy in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the new policy is refused; the policy in force stays: {}", .0.refusal)]
    Refused(Refused),
    #[error("the reload could not be recorded, so it was not applied: {0}")]
    Record(crate::registry::RegistryError),
    #[error("the reload could not be journaled, so it was not applied: {0}")]
    Journal(JournalError),
}

/// The journal's signing key, created (0600, with its public half beside it) if missing.
fn load_journal_key(path: &std::path::Path) -> Result<JournalKey, OpenError> {
    let bad = |problem: String| OpenError::JournalKey {
        path: path.display().to_string(),
        problem,
    };
    match std::fs::read(path) {
        Ok(bytes) => JournalKey::from_pkcs8(&bytes).map_err(bad),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, pkcs8) = JournalKey::generate().map_err(bad)?;
            ztgw_pki::write_private_file(path, pkcs8.expose(), ztgw_pki::Existing::Refuse)
                .map_err(|e| bad(e.to_string()))?;
            let public = path.with_extension("pub");
            std::fs::write(&public, format!("{}\n", key.public().to_base64()))
                .map_err(|e| bad(e.to_string()))?;
            tracing::info!(key_id = %key.key_id(), "created the journal key");
            Ok(key)
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

fn read(path: &std::path::Path) -> Result<String, OpenError> {
    std::fs::read_to_string(path).map_err(|source| OpenError::Read {
        path: path.display().to_string(),
        source,
    })
}
