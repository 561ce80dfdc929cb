//! One control-plane connection, served within its bounds.
//!
//! - HTTP/1.1: hyper's timer, so the header-read timeout applies (to the first request
//!   and to every one after on a kept-alive connection).
//! - HTTP/2: few concurrent streams, flow-control windows no larger than a request, a
//!   bounded header list, and keep-alive pings that close a peer that stopped answering.
//! - Both: a connection with no request under way for `idle_timeout` is closed (bytes
//!   alone, such as pings, do not keep it open), and every connection is shut down
//!   gracefully after `connection_lifetime`, then closed after one more request timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use ztgw_config::settings::ControlSection;

/// Concurrent requests on one HTTP/2 connection.
pub const MAX_STREAMS: u32 = 8;
/// Largest header block accepted.
pub const MAX_HEADER_BYTES: u32 = 16 * 1024;
/// How long the headers of a request may take to arrive.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The bounds of connections, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub idle: Duration,
    pub lifetime: Duration,
    pub request: Duration,
    pub max_request_bytes: usize,
}

impl Bounds {
    pub fn new(control: &ControlSection) -> Self {
        Self {
            idle: control.idle_timeout.get(),
            lifetime: control.connection_lifetime.get(),
            request: control.request_timeout.get(),
            max_request_bytes: control.max_request_bytes,
        }
    }

    /// The HTTP/1.1 and HTTP/2 server, configured with these bounds.
    pub fn builder(&self) -> auto::Builder<TokioExecutor> {
        let window = u32::try_from(self.max_request_bytes).unwrap_or(u32::MAX);
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size((MAX_HEADER_BYTES as usize).max(8192) * 2);
        b.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .initial_stream_window_size(window)
            .initial_connection_window_size(window.saturating_mul(2))
            .max_header_list_size(MAX_HEADER_BYTES)
            .max_send_buf_size(256 * 1024)
            .max_pending_accept_reset_streams(MAX_STREAMS as usize)
            .max_local_error_reset_streams(Some(64))
            .keep_alive_interval(Some(Duration::from_secs(20)))
            .keep_alive_timeout(Duration::from_secs(10));
        b
    }
}

/// Requests under way on a connection, and when the last one ended.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `start` when the connection was last busy.
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    /// A request begins; the guard marks its end.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether no request has been under way for `idle`.
    pub fn idle_for(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self
                .now_ms()
                .saturating_sub(self.last_ms.load(Ordering::Acquire))
                >= u64::try_from(idle.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Held while a request is under way.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a connection was closed by the gateway rather than by its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It ended by itself (the peer closed it, or an error).
    Ended,
    /// No request for `idle_timeout`.
    Idle,
    /// It reached `connection_lifetime`.
    Lifetime,
}

/// Drives `conn` until it ends, closing it when idle or too old.
pub async fn drive<C>(conn: C, activity: &Activity, bounds: Bounds) -> Closed
where
    C: std::future::Future + GracefulShutdown,
{
    let mut conn = std::pin::pin!(conn);
    let mut check = tokio::time::interval(Duration::from_millis(500));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let old = tokio::time::sleep(bounds.lifetime);
    let mut old = std::pin::pin!(old);
    let why = loop {
        tokio::select! {
            _ = conn.as_mut() => return Closed::Ended,
            _ = check.tick() => {
                if activity.idle_for(bounds.idle) {
                    break Closed::Idle;
                }
            }
            _ = &mut old => break Closed::Lifetime,
        }
    };
    conn.as_mut().shutdown_gracefully();
    // Requests under way may finish within their own time limit; then it is closed.
    let _ = tokio::time::timeout(bounds.request + Duration::from_secs(1), conn).await;
    why
}

/// A connection that can be asked to finish what it is doing and close.
pub trait GracefulShutdown {
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E> GracefulShutdown for auto::Connection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: hyper::body::Body + Send + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// A response body that keeps its request counted as under way until it is sent.
pub struct Guarded<B> {
    body: B,
    _guard: RequestGuard,
}

impl<B> std::fmt::Debug for Guarded<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").finish_non_exhaustive()
    }
}

impl<B> Guarded<B> {
    pub fn new(body: B, guard: RequestGuard) -> Self {
        Self {
            body,
            _guard: guard,
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
