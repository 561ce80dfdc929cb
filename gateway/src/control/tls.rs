//! The control plane's TLS configuration, swapped atomically when a CRL is published.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use ztgw_pki::RevocationState;
use ztgw_pki::tls::{ServerIdentity, TlsConfigError, server_config};

/// The configuration new connections get. Connections already open keep theirs; the
/// registry check on every request covers them.
#[derive(Debug)]
pub struct TlsState {
    identity: ServerIdentity,
    config: ArcSwap<ServerConfig>,
}

impl TlsState {
    pub fn new(
        identity: ServerIdentity,
        revocation: &RevocationState,
    ) -> Result<Self, TlsConfigError> {
        let config = server_config(&identity, revocation)?;
        Ok(Self {
            identity,
            config: ArcSwap::from_pointee(config),
        })
    }

    /// Puts `revocation` in force for new connections. If the configuration cannot be
    /// built with it, the fail-closed configuration is put in force instead.
    pub fn apply(&self, revocation: &RevocationState) {
        let config = server_config(&self.identity, revocation).or_else(|e| {
            tracing::error!(error = %e, "the revocation list cannot be enforced: refusing client certificates");
            server_config(&self.identity, &RevocationState::Unavailable)
        });
        match config {
            Ok(c) => self.config.store(Arc::new(c)),
            Err(e) => {
                tracing::error!(error = %e, "the TLS configuration cannot be rebuilt; keeping the previous one")
            }
        }
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }
}
