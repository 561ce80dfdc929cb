//! The control plane under attack from addresses without credentials, against a gateway
//! on loopback (the attackers bind other 127.0.0.0/8 addresses, so each is its own
//! source): idle connections, unfinished HTTP/2 bodies, requests that must be refused
//! before their body is read, and refusals that must reach the client whole.
//!
//! The attackers' TLS handshake rate is raised where a test needs many connections
//! quickly, so that the connection bounds are what is tested; the handshake rate that
//! ships is tested in `negative.rs`.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use ztgw_api::control::path;
use ztgw_pki::tls;
use ztgw_tests::{GatewayOptions, TestGateway};

fn fast_handshakes(s: String) -> String {
    s.replace(
        "handshakes_per_second_per_source = 20\n",
        "handshakes_per_second_per_source = 5000\n",
    )
    .replace("handshake_burst = 40", "handshake_burst = 5000")
}

/// TLS from `source` (a loopback address) to the gateway, as `config` allows.
async fn tls_from(
    gw: &TestGateway,
    source: Ipv4Addr,
    config: rustls::ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    tls_to(gw.running.control_addr, source, config).await
}

/// TLS from `source` to the control plane at `addr`.
async fn tls_to(
    addr: SocketAddr,
    source: Ipv4Addr,
    config: rustls::ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let tcp = socket.connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))?
}

fn anonymous(gw: &TestGateway, alpn: &[u8]) -> rustls::ClientConfig {
    let mut c = tls::pinned_client_config(*gw.ctx().ca.fingerprint()).expect("config");
    c.alpn_protocols = vec![alpn.to_vec()];
    c
}

/// Whether the server still holds `conn` open: nothing to read yet, and no close.
async fn still_open(conn: &mut TlsStream<TcpStream>) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(Duration::from_millis(100), conn.read(&mut buf))
        .await
        .is_err()
}

/// Waits (bounded) until the server closes `conn`.
async fn closed_within(conn: &mut TlsStream<TcpStream>, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            _ => {}
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_are_bounded_and_closed() {
    // Shipped bounds: 32 connections without a certificate per source, idle 20 s.
    let gw = TestGateway::start(GatewayOptions {
        edit: Some(fast_handshakes),
        ..Default::default()
    })
    .await;
    let agent = gw.enrol("e8001").await;
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..60 {
        if let Ok(mut c) = tls_from(&gw, attacker, anonymous(&gw, b"http/1.1")).await
            && still_open(&mut c).await
        {
            held.push(c);
        }
    }
    assert_eq!(
        held.len(),
        32,
        "one source holds 32 idle connections, no more"
    );
    let refused = gw
        .running
        .counters
        .refused_source_connections
        .load(Ordering::Relaxed);
    assert!(
        refused >= 28,
        "the others were refused and counted: {refused}"
    );

    // Everyone else is served meanwhile: a device, and an enrolment from another address.
    ztgw_agent::renew::status(&agent.state())
        .await
        .expect("the device is served");
    gw.enrol("e8002").await;

    // The idle connections are closed by the gateway.
    let started = Instant::now();
    for c in &mut held {
        assert!(
            closed_within(c, Duration::from_secs(25)).await,
            "an idle connection is still open after {:?}",
            started.elapsed()
        );
    }
    let closed = gw.running.counters.closed_idle.load(Ordering::Relaxed);
    assert!(closed >= 32, "idle closes are counted: {closed}");
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ipv4_address_is_its_own_source() {
    // (An IPv6 /64 counting as one source is tested in the limits' unit tests: the
    // loopback has no /64 to spread over.)
    let gw = TestGateway::start(GatewayOptions {
        handshake_limit: Some((2, 1)),
        ..Default::default()
    })
    .await;
    let mut ok = 0;
    for last in 2..6u8 {
        for _ in 0..2 {
            if tls_from(
                &gw,
                Ipv4Addr::new(127, 0, 0, last),
                anonymous(&gw, b"http/1.1"),
            )
            .await
            .is_ok()
            {
                ok += 1;
            }
        }
    }
    assert_eq!(ok, 8, "each address has its own burst of 2");
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_keep_the_reserved_connections_when_unauthenticated_ones_are_full() {
    let gw = TestGateway::start(GatewayOptions {
        edit: Some(|s| {
            fast_handshakes(s)
                .replace("max_connections = 1024", "max_connections = 64")
                .replace("reserved_connections = 256", "reserved_connections = 16")
                .replace(
                    "unauthenticated_connections_per_source = 32",
                    "unauthenticated_connections_per_source = 8",
                )
        }),
        ..Default::default()
    })
    .await;
    let agent = gw.enrol("e8003").await;
    // Eight addresses hold 8 idle connections each: 64 tried, 48 (64 - 16) kept.
    let mut held = Vec::new();
    for last in 2..10u8 {
        for _ in 0..8 {
            if let Ok(mut c) = tls_from(
                &gw,
                Ipv4Addr::new(127, 0, 0, last),
                anonymous(&gw, b"http/1.1"),
            )
            .await
                && still_open(&mut c).await
            {
                held.push(c);
            }
        }
    }
    assert_eq!(held.len(), 48, "unauthenticated connections stop at 48");
    // A new caller without a certificate gets no room...
    let mut late = tls_from(
        &gw,
        Ipv4Addr::new(127, 0, 0, 20),
        anonymous(&gw, b"http/1.1"),
    )
    .await
    .expect("handshake");
    assert!(closed_within(&mut late, Duration::from_secs(2)).await);
    // ...while the enrolled device is served, several times at once.
    let mut answers = Vec::new();
    for _ in 0..8 {
        let state = agent.state();
        answers.push(tokio::spawn(async move {
            ztgw_agent::renew::status(&state).await.map(|_| ())
        }));
    }
    for a in answers {
        a.await.expect("task").expect("the device is served");
    }
    drop(held);
    gw.running.shutdown("test").await;
}

/// A request body that sends `first` and then never ends.
struct Unfinished(Option<Bytes>);

impl hyper::body::Body for Unfinished {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.0.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}

type Sender<B> = hyper::client::conn::http2::SendRequest<B>;

/// `n` requests to `route` on `h2`, each sending `first` and never ending its body; the
/// answers, as they come.
fn unfinished_requests(
    h2: &Sender<Unfinished>,
    route: &'static str,
    first: &'static [u8],
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<(u16, String), String>>> {
    (0..n)
        .map(|_| {
            let mut s = h2.clone();
            tokio::spawn(async move {
                answer_of(
                    &mut s,
                    post(route, Unfinished(Some(Bytes::from_static(first)))),
                )
                .await
            })
        })
        .collect()
}

/// An HTTP/2 connection from `source` with `config`.
async fn h2_from<B>(gw: &TestGateway, source: Ipv4Addr, config: rustls::ClientConfig) -> Sender<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = tls_from(gw, source, config).await.expect("TLS");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// The status and reason code of an answer (bounded in time).
async fn answer_of<B>(
    sender: &mut Sender<B>,
    req: http::Request<B>,
) -> Result<(u16, String), String>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    status_and_code(sender.send_request(req)).await
}

/// The status and reason code of the answer `sent` brings (bounded in time).
async fn status_and_code(
    sent: impl std::future::Future<Output = hyper::Result<http::Response<hyper::body::Incoming>>>,
) -> Result<(u16, String), String> {
    let fut = async {
        let r = sent.await.map_err(|e| format!("{e:?}"))?;
        let status = r.status().as_u16();
        let body = r
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e:?}"))?
            .to_bytes();
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("{e}: {body:?}"))?;
        Ok((status, v["error"].as_str().unwrap_or_default().to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .unwrap_or_else(|_| Err("no answer in 15 s".into()))
}

fn post<B>(route: &str, body: B) -> http::Request<B> {
    http::Request::post(format!("https://127.0.0.1{route}"))
        .header("content-type", "application/json")
        .body(body)
        .expect("request")
}

/// The same request over HTTP/1.1 on a new connection; the status and reason code.
async fn h1_answer(
    gw: &TestGateway,
    source: Ipv4Addr,
    route: &str,
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    let tls = tls_from(gw, source, anonymous(gw, b"http/1.1"))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::post(route)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    status_and_code(sender.send_request(req)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_a_certificate_are_refused_before_their_body_is_read() {
    let gw = TestGateway::start(GatewayOptions {
        edit: Some(fast_handshakes),
        ..Default::default()
    })
    .await;
    let source = Ipv4Addr::new(127, 0, 0, 3);
    // The schema is not given away: every mTLS route answers 401 to `{}`.
    for route in [
        path::SESSION,
        path::SESSION_RECHECK,
        path::SESSION_END,
        path::SESSION_WATCH,
        path::INCIDENT,
        path::RENEW,
    ] {
        let mut h2 = h2_from(&gw, source, anonymous(&gw, b"h2")).await;
        let a = answer_of(&mut h2, post(route, Full::new(Bytes::from_static(b"{}")))).await;
        assert_eq!(a, Ok((401, "certificate_required".into())), "h2 {route}");
        let a = h1_answer(&gw, source, route, b"{}".to_vec()).await;
        assert_eq!(a, Ok((401, "certificate_required".into())), "h1 {route}");
    }
    // A body that never ends gets its refusal all the same, and nothing is buffered.
    let h2 = h2_from(&gw, source, anonymous(&gw, b"h2")).await;
    let waiting = unfinished_requests(&h2, path::SESSION, b"{\"wg", 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gw.running.observed.bodies.in_use(), 0, "no body held");
    for w in waiting {
        assert_eq!(
            w.await.expect("task"),
            Ok((401, "certificate_required".into()))
        );
    }
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_client_whole_over_http1_and_http2() {
    let gw = TestGateway::start(GatewayOptions {
        edit: Some(|s| fast_handshakes(s).replace("enrolment_burst = 5", "enrolment_burst = 100")),
        ..Default::default()
    })
    .await;
    let source = Ipv4Addr::new(127, 0, 0, 4);
    // A body sent with a request refused for want of a certificate, 40 times.
    for i in 0..40 {
        let mut h2 = h2_from(&gw, source, anonymous(&gw, b"h2")).await;
        let a = answer_of(
            &mut h2,
            post(
                path::SESSION_NONCE,
                Full::new(Bytes::from(vec![b' '; 4096])),
            ),
        )
        .await;
        assert_eq!(a, Ok((401, "certificate_required".into())), "try {i}");
    }
    // 1 MiB to enrolment: 413 with its reason, both protocols, declared or not.
    let big = vec![b'x'; 1024 * 1024];
    for i in 0..5 {
        let mut h2 = h2_from(&gw, source, anonymous(&gw, b"h2")).await;
        let a = answer_of(
            &mut h2,
            post(path::ENROL, Full::new(Bytes::from(big.clone()))),
        )
        .await;
        assert_eq!(a, Ok((413, "request_too_large".into())), "h2 try {i}");
        let a = h1_answer(&gw, source, path::ENROL, big.clone()).await;
        assert_eq!(a, Ok((413, "request_too_large".into())), "h1 try {i}");
    }
    // Within the limit, but not JSON: a 400 that names the problem.
    let a = h1_answer(&gw, source, path::ENROL, b"{".to_vec()).await;
    assert_eq!(a, Ok((400, "request_malformed".into())));
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_held_in_memory_are_bounded() {
    // Room for two bodies of the largest size at once.
    let gw = TestGateway::start(GatewayOptions {
        edit: Some(|s| {
            s.replace(
                "max_buffered_body_bytes = 8388608",
                "max_buffered_body_bytes = 131072",
            )
        }),
        ..Default::default()
    })
    .await;
    let agent = gw.enrol("e8004").await;
    let h2: Sender<Unfinished> = h2_from(&gw, Ipv4Addr::LOCALHOST, agent.tls_config(b"h2")).await;
    let waiting = unfinished_requests(&h2, path::SESSION_END, b"{", 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = gw.running.observed.bodies.in_use();
    assert!(held <= 131_072, "{held} bytes held");
    // Two wait for their body to end; the others are told the gateway is busy.
    let mut busy = 0;
    for w in waiting {
        if let Ok(Ok(Ok((503, code)))) = tokio::time::timeout(Duration::from_secs(5), w).await {
            assert_eq!(code, "busy");
            busy += 1;
        }
    }
    assert_eq!(busy, 2, "two requests past the budget are refused as busy");
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_enrolments_are_journaled_per_source_and_minute_not_one_by_one() {
    // Shipped limits: 5 enrolment attempts per source; 200 sources send 5 each.
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let before = gw.ctx().journal.appended();
    let mut tasks = Vec::new();
    for last in 10..210u8 {
        let config = anonymous(&gw, b"http/1.1");
        let source = Ipv4Addr::new(127, 0, 0, last);
        let addr = gw.running.control_addr;
        tasks.push(tokio::spawn(async move {
            let tls = tls_to(addr, source, config).await.expect("TLS");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .expect("h1");
            tokio::spawn(conn);
            let mut refused = 0;
            for i in 0..5 {
                let body = format!(
                    "{{\"invitation_id\": \"inv-bogus-{last}-{i}\", \"secret\": \"x\", \"csr_pem\": \"x\", \"wg_public_key\": \"x\"}}"
                );
                let req = http::Request::post(path::ENROL)
                    .header("host", "127.0.0.1")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let r = sender.send_request(req).await.expect("answer");
                if r.status().is_client_error() {
                    refused += 1;
                }
                let _ = r.into_body().collect().await;
            }
            refused
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.expect("task");
    }
    assert_eq!(refused, 1000);
    // What the daemon does each minute, now.
    ztgw_gateway::daemon::journal_refusals(gw.ctx(), &gw.running.refusals, true);
    let records = gw.journal("enrolment.refusals");
    let counted: u64 = records
        .iter()
        .flat_map(|r| r["counts"].as_object().cloned().unwrap_or_default())
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    assert_eq!(counted, 1000, "every refusal is counted");
    assert!(
        records.len() <= 400,
        "one record per source and minute: {}",
        records.len()
    );
    let written = gw.ctx().journal.appended() - before;
    assert!(
        written <= 400,
        "{written} journal records for 1,000 refusals"
    );
    assert!(gw.journal("enrolment.refused").is_empty());
    gw.running.shutdown("test").await;
}
