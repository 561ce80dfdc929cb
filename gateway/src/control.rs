//! The control plane: HTTPS (hyper 1 on rustls, TLS 1.3 only) for enrolment, renewal
//! and, later, admission.
//!
//! Order of defences for each connection: the per-source handshake limit and the
//! connection caps (before any TLS work: all connections, those without a certificate,
//! and those of one source), the handshake timeout, the client certificate (verified
//! against the CA and the CRL in force; a connection that shows one no longer counts as
//! unauthenticated, so certificate holders keep the reserved connections), the bounds of
//! [`connection`] (header-read and idle timeouts, lifetime, HTTP/2 streams and windows),
//! then per-request limits (the registry check of [`crate::device_auth`] before any body
//! byte is read, body size and the global body budget, time, per-source rates).

pub mod connection;
pub mod limits;
pub mod refusals;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use ztgw_pki::CertificateIdentity;

use crate::context::Context;
use crate::device_auth::Presented;
use connection::{Activity, Bounds, Closed};
use limits::{ConnectionRefusal, Connections, SourceLimits};
use tls::TlsState;

/// Counters of what the control plane refused, for operators and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub refused_rate_limited: AtomicU64,
    pub refused_too_many_connections: AtomicU64,
    pub refused_source_connections: AtomicU64,
    pub closed_idle: AtomicU64,
    pub closed_lifetime: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub handshakes_timed_out: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The control plane's load, for the metrics.
#[derive(Debug)]
pub struct Observed {
    pub limits: Arc<SourceLimits>,
    pub refusals: Arc<refusals::RefusalTally>,
    pub connections: Arc<Connections>,
    pub bodies: Arc<routes::BodyBudget>,
    pub max_connections: usize,
}

/// A bound control plane, ready to run.
#[derive(Debug)]
pub struct ControlPlane {
    listener: TcpListener,
    ctx: Arc<Context>,
    sessions: Arc<crate::sessions::SessionService>,
    tls: Arc<TlsState>,
    limits: Arc<SourceLimits>,
    connections: Arc<Connections>,
    bodies: Arc<routes::BodyBudget>,
    refusals: Arc<refusals::RefusalTally>,
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
        let connections = Connections::new(control);
        let bodies = Arc::new(routes::BodyBudget::new(control.max_buffered_body_bytes));
        Ok(Self {
            listener,
            ctx,
            sessions,
            tls,
            limits,
            connections,
            bodies,
            refusals: Arc::default(),
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

    /// Refused enrolments not yet journaled (the daemon journals them every few seconds).
    pub fn refusals(&self) -> Arc<refusals::RefusalTally> {
        self.refusals.clone()
    }

    /// What the metrics report of the control plane's load.
    pub fn observed(&self) -> Arc<Observed> {
        Arc::new(Observed {
            limits: self.limits.clone(),
            refusals: self.refusals.clone(),
            connections: self.connections.clone(),
            bodies: self.bodies.clone(),
            max_connections: self.ctx.settings.control.max_connections,
        })
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self) {
        let handshake_timeout = self.ctx.settings.control.handshake_timeout.get();
        let bounds = Bounds::new(&self.ctx.settings.control);
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
            // What is written goes out at once (a response, a watched session's next
            // event): Nagle's algorithm would hold a short last segment back until the
            // client acknowledged the one before, up to its delayed-ACK 40 ms.
            let _ = tcp.set_nodelay(true);
            if !self.limits.allow_handshake(peer.ip()) {
                Counters::bump(&self.counters.refused_rate_limited);
                continue;
            }
            let mut permit = match self.connections.admit(peer.ip()) {
                Ok(p) => p,
                Err(ConnectionRefusal::Full) => {
                    Counters::bump(&self.counters.refused_too_many_connections);
                    continue;
                }
                Err(ConnectionRefusal::SourceFull) => {
                    Counters::bump(&self.counters.refused_source_connections);
                    continue;
                }
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.current());
            let ctx = self.ctx.clone();
            let sessions = self.sessions.clone();
            let limits = self.limits.clone();
            let bodies = self.bodies.clone();
            let refusals = self.refusals.clone();
            let counters = self.counters.clone();
            tokio::spawn(async move {
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
                // TLS verified the certificate against the CA and the CRL in force.
                if matches!(*presented, Presented::Nothing) {
                    if permit.unauthenticated().is_err() {
                        Counters::bump(&counters.refused_too_many_connections);
                        return;
                    }
                } else {
                    permit.authenticated();
                }
                let _permit = permit;
                let activity = Activity::new();
                let service = {
                    let activity = activity.clone();
                    hyper::service::service_fn(move |req| {
                        let guard = activity.begin();
                        let answer = routes::route(
                            routes::Caller {
                                ctx: ctx.clone(),
                                sessions: sessions.clone(),
                                limits: limits.clone(),
                                bodies: bodies.clone(),
                                refusals: refusals.clone(),
                                source: peer.ip(),
                                presented: presented.clone(),
                            },
                            req,
                        );
                        async move {
                            // The request is under way until its body is sent (a
                            // session watch streams for a while).
                            let Ok(response) = answer.await;
                            Ok::<_, std::convert::Infallible>(
                                response.map(|body| connection::Guarded::new(body, guard)),
                            )
                        }
                    })
                };
                let builder = bounds.builder();
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                match connection::drive(conn, &activity, bounds).await {
                    Closed::Ended => {}
                    Closed::Idle => Counters::bump(&counters.closed_idle),
                    Closed::Lifetime => Counters::bump(&counters.closed_lifetime),
                }
            });
        }
    }
}

pub(crate) fn presented_identity(
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
