//! Streaming the journal as JSON lines over HTTPS (#19): a collector that refuses the
//! first requests (503) still gets every record, in order, from the gateway's stored
//! cursor; every request carries the bearer token and says which records it holds; the
//! cursor is stored once the collector has acknowledged them.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use ztgw_tests::{GatewayOptions, TestGateway, free_port, secret_file, server_certificate};

/// What the collector was sent: (authorization, first-seq header, last-seq header, lines).
type Request_ = (String, String, String, Vec<serde_json::Value>);

#[derive(Default)]
struct Collector {
    requests: Mutex<Vec<Request_>>,
    /// Requests still to refuse.
    refuse: Mutex<u32>,
}

async fn answer(
    c: Arc<Collector>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (auth, first, last) = (
        header("authorization"),
        header("x-ztgw-first-seq"),
        header("x-ztgw-last-seq"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    {
        let mut refuse = c.refuse.lock().expect("lock");
        if *refuse > 0 {
            *refuse -= 1;
            let mut r = Response::new(Full::new(Bytes::from_static(b"busy")));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Ok(r);
        }
    }
    let lines = String::from_utf8_lossy(&body)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    c.requests
        .lock()
        .expect("lock")
        .push((auth, first, last, lines));
    Ok(Response::new(Full::new(Bytes::new())))
}

/// An HTTPS collector on 127.0.0.1:`port` with the certificate in `cert`/`key`.
async fn collector(port: u16, cert: &std::path::Path, key: &std::path::Path, c: Arc<Collector>) {
    let certs = vec![CertificateDer::from_pem_file(cert).expect("cert")];
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let acceptor = acceptor.clone();
            let c = c.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| answer(c.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_refuses_at_first_gets_every_record_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [ca, cert, key] = server_certificate(dir.path(), &["127.0.0.1"]);
    let token = dir.path().join("collector.token");
    secret_file(&token, "t0ken-for-the-soc\n");
    let port = free_port();
    let c = Arc::new(Collector {
        refuse: Mutex::new(2),
        ..Collector::default()
    });
    collector(port, &cert, &key, c.clone()).await;
    let gw = TestGateway::start(GatewayOptions {
        replace: vec![(
            "[journal]".into(),
            format!(
                "[export.lake]\nkind = \"https\"\nurl = \"https://127.0.0.1:{port}/ingest\"\nca_file = {:?}\ntoken_file = {:?}\nbatch = 3\n\n[journal]",
                ca.display().to_string(),
                token.display().to_string()
            ),
        )],
        ..GatewayOptions::default()
    })
    .await;
    for n in 0..4 {
        gw.invite(&format!("e{n}"));
    }
    let journal_end = gw.ctx().journal.next_seq();
    let received = |c: &Collector| -> Vec<u64> {
        c.requests
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|(_, _, _, lines)| lines.iter().filter_map(|l| l["seq"].as_u64()))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !received(&c).contains(&(journal_end - 1)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the collector did not get everything: {:?}",
            received(&c)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(*c.refuse.lock().expect("lock"), 0, "both refusals were met");

    // Every record from the first, in order, each request as it says.
    let mut next = 0;
    for (auth, first, last, lines) in c.requests.lock().expect("lock").iter() {
        assert_eq!(auth, "Bearer t0ken-for-the-soc");
        assert!(
            !lines.is_empty() && lines.len() <= 3,
            "batch = 3: {}",
            lines.len()
        );
        assert_eq!(first, &lines[0]["seq"].to_string());
        assert_eq!(last, &lines[lines.len() - 1]["seq"].to_string());
        for l in lines {
            let seq = l["seq"].as_u64().expect("seq");
            if seq < next {
                continue;
            }
            assert_eq!(seq, next, "a gap before {seq}");
            assert_eq!(l["chain"].as_str().map(str::len), Some(64));
            assert_eq!(l["gateway"], "127.0.0.1");
            next += 1;
        }
    }
    assert!(next >= journal_end);
    let invitations = c
        .requests
        .lock()
        .expect("lock")
        .iter()
        .flat_map(|(_, _, _, lines)| lines.clone())
        .filter(|l| l["type"] == "invitation.created")
        .count();
    assert_eq!(invitations, 4);

    // The stored cursor is past what the collector acknowledged.
    let cursor: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(gw.state_dir().join("export/lake.cursor")).expect("cursor"),
    )
    .expect("cursor JSON");
    assert!(cursor["next_seq"].as_u64().expect("next_seq") >= journal_end);
}
