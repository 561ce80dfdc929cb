//! The control plane's connections as agents use them (issue #22): an admission (nonce,
//! then the admission itself) and a re-check each cost one TLS connection, because every
//! endpoint reads its request's body and the agent keeps its connection between requests;
//! a connection the gateway closed while idle is replaced without the caller noticing.
//! Real TLS on loopback, against a gateway without a data plane (a request that passed
//! every check is refused as `sessions_unavailable`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use ztgw_agent::AgentError;
use ztgw_api::control::{DeviceView, path};
use ztgw_tests::site::{ALWAYS, Posture, lab_policy, make_root};
use ztgw_tests::{GatewayOptions, TestGateway};

/// TCP connections the control plane accepted so far.
fn connections(gw: &TestGateway) -> u64 {
    gw.running.counters.connections.load(Ordering::Relaxed)
}

/// The reason code of a refusal, or what else happened.
fn code<T>(r: Result<T, AgentError>) -> String {
    match r {
        Ok(_) => "granted".into(),
        Err(AgentError::Refused { body, .. }) => body.error,
        Err(e) => format!("error: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_and_a_recheck_each_cost_one_connection() {
    let gw = TestGateway::start(GatewayOptions {
        policy: Some(lab_policy(ALWAYS)),
        ..Default::default()
    })
    .await;
    let agent = gw.enrol("e8201").await;
    let root = tempfile::tempdir().expect("tempdir");
    make_root(root.path(), Posture::Compliant);

    let before = connections(&gw);
    let admitted = ztgw_agent::connect::admit(&agent.state(), root.path(), || None).await;
    assert_eq!(code(admitted), "sessions_unavailable", "every check passed");
    assert_eq!(
        connections(&gw) - before,
        1,
        "nonce and admission, one connection"
    );

    let before = connections(&gw);
    let rechecked =
        ztgw_agent::connect::recheck(&agent.state(), "s-none", root.path(), || None).await;
    assert_eq!(code(rechecked), "sessions_unavailable");
    assert_eq!(
        connections(&gw) - before,
        1,
        "nonce and re-check, one connection"
    );

    // Each operation its own connection: a new one for the next.
    let before = connections(&gw);
    let admitted = ztgw_agent::connect::admit(&agent.state(), root.path(), || None).await;
    assert_eq!(code(admitted), "sessions_unavailable");
    assert_eq!(connections(&gw) - before, 1);
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_reads_its_body_so_the_connection_carries_the_next_request() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e8202").await;
    let before = connections(&gw);
    let tcp = tokio::net::TcpStream::connect(gw.running.control_addr)
        .await
        .expect("tcp");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(agent.tls_config(b"http/1.1")))
        .connect(name, tcp)
        .await
        .expect("tls");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http/1.1");
    tokio::spawn(conn);
    let mut ask = async |method: &str, route: &str, body: &'static [u8]| {
        sender.ready().await.expect("the connection is still open");
        let req = http::Request::builder()
            .method(method)
            .uri(route)
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body)))
            .expect("request");
        let response = sender.send_request(req).await.expect("an answer");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    // A GET with a body it has no use for: read and dropped, the connection kept.
    let (status, body) = ask("GET", path::DEVICE, b"{\"ignored\": true}").await;
    assert_eq!(status, 200, "{body}");
    let view: DeviceView = serde_json::from_str(&body).expect("a device view");
    assert_eq!(view.device_id, agent.device_id());
    // The nonce endpoint: `{}`, or no body at all.
    let (status, body) = ask("POST", path::SESSION_NONCE, b"{}").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"profile\""),
        "the profile comes with it: {body}"
    );
    let (status, body) = ask("POST", path::SESSION_NONCE, b"").await;
    assert_eq!(status, 200, "{body}");
    // Anything else is refused with its reason, and the connection still kept.
    let (status, body) = ask("POST", path::SESSION_NONCE, b"{\"nonce\": \"mine\"}").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("request_malformed"), "{body}");
    assert!(body.contains("unknown field"), "{body}");
    let (status, body) = ask("GET", path::POSTURE_PROFILE, b"").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        connections(&gw) - before,
        1,
        "five requests, one connection"
    );
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_gateway_closed_while_idle_is_replaced() {
    let gw = TestGateway::start(GatewayOptions {
        replace: vec![(
            "idle_timeout = \"20s\"".into(),
            "idle_timeout = \"1s\"".into(),
        )],
        ..Default::default()
    })
    .await;
    let agent = gw.enrol("e8203").await;
    let client = ztgw_agent::renew::device_client(&agent.state()).expect("client");
    let before = connections(&gw);
    let idle_before = gw.running.counters.closed_idle.load(Ordering::Relaxed);
    for _ in 0..3 {
        let view: DeviceView = client.get(path::DEVICE).await.expect("device");
        assert_eq!(view.device_id, agent.device_id());
    }
    assert_eq!(
        connections(&gw) - before,
        1,
        "three requests, one connection"
    );
    // The gateway closes it after a second of silence; the client sees it closed and
    // opens another for the next request, which is answered as any other.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gw.running.counters.closed_idle.load(Ordering::Relaxed) == idle_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle connection was not closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let view: DeviceView = client.get(path::DEVICE).await.expect("device, again");
    assert_eq!(view.device_id, agent.device_id());
    assert_eq!(
        connections(&gw) - before,
        2,
        "a new connection after the close"
    );
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_does_not_outlive_its_certificate() {
    let gw = TestGateway::start(GatewayOptions {
        manual_clock: true,
        ..Default::default()
    })
    .await;
    let agent = gw.enrol("e8204").await;
    let device = ztgw_agent::renew::device_client(&agent.state()).expect("device client");
    device
        .get::<DeviceView>(path::DEVICE)
        .await
        .expect("a valid certificate");
    let before = connections(&gw);
    // TLS checked the certificate's dates at the handshake; the connection stays open
    // past them, and each request on it is checked again.
    let clock = gw.manual_clock.as_ref().expect("manual clock");
    clock.advance(time::Duration::days(31)); // certificates last 30 days
    let err = device
        .get::<DeviceView>(path::DEVICE)
        .await
        .expect_err("an expired certificate");
    assert_eq!(err.code(), Some("certificate_expired"), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(connections(&gw), before, "refused on the kept connection");
    gw.running.shutdown("test").await;
}
