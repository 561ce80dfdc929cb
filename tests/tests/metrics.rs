//! Prometheus metrics and the health check of a running gateway, scraped over HTTP.

use ztgw_tests::{GatewayOptions, TestGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_scraped() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    gw.enrol("e8801").await;
    let addr = gw.running.metrics_addr;
    let (status, body) =
        tokio::task::spawn_blocking(move || ztgw_tests::http_get(addr, "/metrics"))
            .await
            .expect("scrape");
    assert_eq!(status, 200);
    for line in [
        "ztgw_devices{status=\"active\"} 1",
        "ztgw_journal_healthy 1",
        "# TYPE ztgw_control_connections_total counter",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "{line:?} missing from:\n{body}"
        );
    }
    let appended: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("ztgw_journal_events_total "))
        .and_then(|v| v.parse().ok())
        .expect("journal events");
    assert!(appended >= 3.0, "started, invited, enrolled: {appended}");
    let crl: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("ztgw_crl_seconds_until_expiry "))
        .and_then(|v| v.parse().ok())
        .expect("crl");
    assert!(crl > 3600.0, "{crl}");
    let (status, body) = tokio::task::spawn_blocking(move || ztgw_tests::http_get(addr, "/health"))
        .await
        .expect("health");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // Without a usable revocation list the gateway says it is unhealthy (no publication
    // repairs the file while that is looked at).
    let hold = gw.hold_crl();
    std::fs::write(gw.state_dir().join("crl.pem"), "damaged").expect("write");
    let (status, body) = tokio::task::spawn_blocking(move || ztgw_tests::http_get(addr, "/health"))
        .await
        .expect("health");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("revocation list"), "{body}");
    drop(hold);
    let (status, _) = tokio::task::spawn_blocking(move || ztgw_tests::http_get(addr, "/nothing"))
        .await
        .expect("404");
    assert_eq!(status, 404);
    gw.running.shutdown("test").await;
}
