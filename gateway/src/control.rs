//! The control plane: HTTPS (hyper 1 on rustls, TLS 1.3 only) for enrolment, renewal
//! and, later, admission.
//!
//! Order of defences for each connection: the per-source handshake limit and the
//! connection cap (before any TLS work), the handshake timeout, the client certificate
//! (verified against the CA and the CRL in force), then per-request limits (body size,
//! time, the per-source enrolment limit) and the registry check of [`crate::device_auth`].

pub mod limits;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use ztgw_pki::CertificateIdentity;

use crate::context::Context;
use crate::device_auth::Presented;
use limits::SourceLimits;
use tls::TlsState;

/// Counters of what the control plane refused, for operators and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub refused_rate_limited: AtomicU64,
    pub refused_too_many_connections: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub handshakes_timed_out: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A bound control plane, ready to run.
#[derive(Debug)]
pub struct ControlPlane {
    listener: TcpListener,
    ctx: Arc<Context>,
    sessions: Arc<crate::sessions::SessionService>,
    tls: Arc<TlsState>,
    limits: Arc<SourceLimits>,
    connections: Arc<Semaphore>,
    counters: Arc<Counters>,
}

impl ControlPlane {
    /// Binds `ctx.settings.control.listen`.
    pub async fn bind(
        ctx: Arc<Context>,
        tls: Arc<TlsState>,
        sessions: Arc<crate::sessions::SessionService>,
    ) -> std::io::Result<Self> {
        let control = &ctx.settings.control;
        let listener = TcpListener::bind(control.listen).await?;
        let limits = Arc::new(SourceLimits::new(control));
        let connections = Arc::new(Semaphore::new(control.max_connections));
        Ok(Self {
            listener,
            ctx,
            sessions,
            tls,
            limits,
            connections,
            counters: Arc::new(Counters::default()),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub fn limits(&self) -> Arc<SourceLimits> {
        self.limits.clone()
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self) {
        let handshake_timeout = self.ctx.settings.control.handshake_timeout.get();
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "control plane accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            Counters::bump(&self.counters.connections);
            if !self.limits.allow_handshake(peer.ip()) {
                Counters::bump(&self.counters.refused_rate_limited);
                continue;
            }
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                Counters::bump(&self.counters.refused_too_many_connections);
                continue;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.current());
            let ctx = self.ctx.clone();
            let sessions = self.sessions.clone();
            let limits = self.limits.clone();
            let counters = self.counters.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let stream =
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            Counters::bump(&counters.handshakes_failed);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            Counters::bump(&counters.handshakes_timed_out);
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                let presented = Arc::new(presented_identity(&stream));
                let service = hyper::service::service_fn(move |req| {
                    routes::route(
                        ctx.clone(),
                        sessions.clone(),
                        limits.clone(),
                        peer.ip(),
                        presented.clone(),
                        req,
                    )
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "control connection ended with an error");
                }
            });
        }
    }
}

fn presented_identity(
    stream: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> Presented {
    match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        None => Presented::Nothing,
        Some(cert) => match CertificateIdentity::from_der(cert.as_ref()) {
            Ok(identity) => Presented::Identity(identity),
            Err(e) => Presented::Invalid(e),
        },
    }
}
