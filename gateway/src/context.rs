//! Everything a gateway command needs, opened once from the settings: the registry, the
//! CA, the policy, the revocation publisher, the clock and the random source.
//!
//! Both the daemon and the offline admin commands work through a [`Context`], so an
//! action does the same whether or not a gateway is running.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use ztgw_config::{Policy, Settings};
use ztgw_pki::{CertificateAuthority, Secret};

use crate::clock::{Clock, Entropy};
use crate::registry::{Registry, SqliteRegistry};
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
    #[error("the certificate authority: {0}")]
    Ca(#[from] ztgw_pki::CaError),
    #[error("the registry: {0}")]
    Registry(#[from] crate::registry::RegistryError),
}

type CrlHook = Box<dyn Fn(&RevocationState) + Send + Sync>;

/// The gateway's opened state.
pub struct Context {
    pub settings: Settings,
    pub registry: Arc<dyn Registry>,
    pub ca: CertificateAuthority,
    pub policy: ArcSwap<Policy>,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    crl_hooks: Mutex<Vec<CrlHook>>,
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
        let policy = Policy::load(&settings.policy.file)?;
        let registry = SqliteRegistry::open(&paths.registry())?;
        Ok(Self {
            settings,
            registry: Arc::new(registry),
            ca,
            policy: ArcSwap::from_pointee(policy),
            clock,
            entropy,
            crl_hooks: Mutex::new(Vec::new()),
        })
    }

    /// Runs `hook` after every CRL this context publishes (the daemon swaps its TLS
    /// configuration there).
    pub fn on_crl_published(&self, hook: impl Fn(&RevocationState) + Send + Sync + 'static) {
        if let Ok(mut hooks) = self.crl_hooks.lock() {
            hooks.push(Box::new(hook));
        }
    }

    /// Signs and writes a CRL from the registry, then tells the hooks what is in force.
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

fn read(path: &std::path::Path) -> Result<String, OpenError> {
    std::fs::read_to_string(path).map_err(|source| OpenError::Read {
        path: path.display().to_string(),
        source,
    })
}
