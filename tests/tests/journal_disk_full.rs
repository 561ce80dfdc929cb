//! When the journal cannot be written (here: its disk is full) the gateway fails closed:
//! no enrolment, no administrative change, and nothing it refused reaches the registry.
//! What was written stays verifiable.

use ztgw_gateway::admin::{AdminErrorCode, AdminRequest, RevokeReason};
use ztgw_gateway::journal::PublicKey;
use ztgw_gateway::journal::verify::verify_dir;
use ztgw_pki::EmployeeId;
use ztgw_tests::{GatewayOptions, TestAgent, TestGateway, Tmpfs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_the_gateway_fail_closed() {
    let disk = Tmpfs::mount("128k");
    let journal_dir = disk.path.join("journal");
    let gw = TestGateway::start(GatewayOptions {
        journal_dir: Some(journal_dir.clone()),
        enrolment_burst: Some(100),
        ..Default::default()
    })
    .await;
    let agent = gw.enrol("e5001").await;
    let pending_invitation = gw.invite("e5002");

    // Fill the disk with journaled actions until the journal refuses.
    let mut refused = None;
    for i in 0..5_000 {
        let answer = gw.admin(AdminRequest::Invite {
            employee: EmployeeId::new(format!("f{i}")).expect("id"),
            role: Some("finance".into()),
            schedule: None,
            approved_by: "Head of IT".into(),
            reference: "DEC-F".into(),
            valid_for_secs: None,
        });
        if let Err(e) = answer {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("a 128 KiB disk fills up");
    assert_eq!(refused.code, AdminErrorCode::Internal);
    assert!(
        refused.message.contains("journal is unavailable"),
        "{}",
        refused.message
    );
    assert!(!gw.ctx().journal.healthy());

    // From now on nothing that needs journaling happens.
    let before = gw.snapshot();
    let err = TestAgent::enrol(&pending_invitation)
        .await
        .expect_err("no enrolment without the journal");
    assert_eq!(err.code(), Some("journal_unavailable"), "{err}");
    let err = gw
        .admin(AdminRequest::Invite {
            employee: EmployeeId::new("e5003").expect("id"),
            role: Some("finance".into()),
            schedule: None,
            approved_by: "Head of IT".into(),
            reference: "DEC-G".into(),
            valid_for_secs: None,
        })
        .expect_err("no invitation without the journal");
    assert!(
        err.message.contains("journal is unavailable"),
        "{}",
        err.message
    );
    assert_eq!(
        gw.snapshot(),
        before,
        "nothing refused reached the registry"
    );

    // Taking access away is never blocked: a lost laptop is revoked all the same, the
    // registry keeps its own record of it, and the client is refused at once.
    gw.admin(AdminRequest::DeviceRevoke {
        device: agent.device_id(),
        reason: RevokeReason::Lost,
        note: None,
    })
    .expect("revocation goes ahead without the journal");
    let device = gw
        .ctx()
        .registry
        .device(&agent.device_id())
        .expect("registry")
        .expect("device");
    assert_eq!(device.status, ztgw_api::control::DeviceStatus::Revoked);
    assert_eq!(
        gw.ctx()
            .registry
            .actions()
            .expect("actions")
            .last()
            .map(|a| a.action.as_str()),
        Some("device.revoked")
    );
    assert!(ztgw_agent::renew::status(&agent.state()).await.is_err());

    // What was written is intact.
    let key = PublicKey::parse(
        &std::fs::read_to_string(gw.state_dir().join("journal.pub")).expect("pub"),
    )
    .expect("key");
    let report = verify_dir(&journal_dir, Some(&key), None).expect("the written journal verifies");
    assert!(report.events > 10);

    // Space is freed: the journal resumes by itself (the maintenance loop tries every
    // few seconds), says what it missed, and service comes back.
    disk.resize("4m");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !gw.ctx().journal.healthy() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(gw.ctx().journal.healthy(), "the journal resumed");
    let resumed = gw.journal("journal.resumed");
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert!(
        resumed[0]["refused"].as_u64().unwrap_or(0) >= 2,
        "the refused appends are counted: {resumed:?}"
    );
    let health = http_get(gw.running.metrics_addr, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    TestAgent::enrol(&gw.invite("e5004"))
        .await
        .expect("enrolment works again");
    verify_dir(&journal_dir, Some(&key), None).expect("the journal verifies across the gap");
    gw.running.shutdown("test").await;
}

/// A plain HTTP GET on the metrics listener; the raw answer.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out).await;
    out
}
