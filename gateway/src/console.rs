//! The web console for security units and auditors (`[console] listen`, off by default).
//!
//! HTTPS with the control plane's TLS configuration (the gateway's certificate; client
//! certificates verified against the CA and the CRL in force, swapped with it). Operators
//! sign in with the certificate of `ztgw operator add`; [`auth`] checks it against the
//! registry on every request. Pages are HTML rendered here ([`layout`] and one module
//! per area), with no script and no asset from elsewhere; every action goes through
//! [`crate::admin::socket::carry_out`], the admin socket's own path, so the journal
//! records it, with the operator, before it takes effect.
//!
//! Defences, in order: the per-source handshake limit and a cap on connections (before
//! any TLS work), the handshake timeout, the connection bounds of the control plane
//! (header-read and idle timeouts, lifetime), then per request: the operator
//! ([`auth::identify`]), and for a change the origin, the role, the body's size and
//! time, the form's parse and the CSRF token ([`routes`]).

// Handlers return an early answer as `Err(Response)`: the page itself, built once per
// request, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod chart;
pub mod devices;
pub mod i18n;
pub mod journal;
pub mod layout;
pub mod policy;
pub mod reports;
pub mod routes;
pub mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::context::Context;
use crate::control::connection::{self, Activity, Bounds};
use crate::control::limits::SourceLimits;
use crate::control::tls::TlsState;
use crate::sessions::SessionService;

/// A bound console, ready to run.
#[derive(Debug)]
pub struct Console {
    listener: TcpListener,
    shared: Arc<routes::Shared>,
    tls: Arc<TlsState>,
    limits: Arc<SourceLimits>,
    slots: Arc<Semaphore>,
}

impl Console {
    /// Binds `[console] listen`; `None` when the settings have no `[console]`.
    pub async fn bind(
        ctx: Arc<Context>,
        tls: Arc<TlsState>,
        sessions: Arc<SessionService>,
    ) -> std::io::Result<Option<Self>> {
        let Some(settings) = ctx.settings.console.clone() else {
            return Ok(None);
        };
        let listener = TcpListener::bind(settings.listen).await?;
        let secret = crate::clock::random(ctx.entropy.as_ref()).map_err(std::io::Error::other)?;
        let limits = Arc::new(SourceLimits::new(&ctx.settings.control));
        Ok(Some(Self {
            listener,
            shared: Arc::new(routes::Shared {
                ctx,
                sessions,
                csrf: auth::Csrf::new(secret),
                journal_reads: Semaphore::new(routes::MAX_JOURNAL_READS),
            }),
            tls,
            limits,
            slots: Arc::new(Semaphore::new(settings.max_connections.max(1))),
        }))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self) {
        let control = &self.shared.ctx.settings.control;
        let handshake_timeout = control.handshake_timeout.get();
        let bounds = Bounds::new(control);
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "console accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !self.limits.allow_handshake(peer.ip()) {
                tracing::debug!("console: handshake rate limited");
                continue;
            }
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                tracing::debug!("console: every connection slot is taken");
                continue;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.current());
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let stream =
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "console TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                let presented = Arc::new(crate::control::presented_identity(&stream));
                let activity = Activity::new();
                let service = {
                    let activity = activity.clone();
                    hyper::service::service_fn(move |req| {
                        let guard = activity.begin();
                        let answer = routes::route(shared.clone(), presented.clone(), req);
                        async move {
                            let response = answer.await;
                            drop(guard);
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    })
                };
                let builder = bounds.builder();
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                connection::drive(conn, &activity, bounds).await;
            });
        }
    }
}
