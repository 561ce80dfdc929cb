//! Auditors read the live journal through the control plane with their own certificate;
//! nothing else is reachable with it, and it is reachable with nothing else.

use ztgw_api::control::{DeviceView, path};
use ztgw_gateway::admin::{AdminRequest, AdminResponse, RevokeReason};
use ztgw_gateway::journal::{PublicKey, SignedTreeHead};
use ztgw_pki::{AuditorName, Secret, generate_key_and_csr};
use ztgw_tests::{GatewayOptions, TestGateway};

fn add_auditor(gw: &TestGateway, name: &str) -> (String, Secret<String>) {
    let (key, csr) = generate_key_and_csr("auditor").expect("csr");
    match gw.admin(AdminRequest::AuditorAdd {
        name: AuditorName::new(name).expect("name"),
        csr_pem: csr,
        valid_for_secs: 86_400,
    }) {
        Ok(AdminResponse::Auditor {
            certificate_pem, ..
        }) => (certificate_pem, key),
        other => panic!("auditor add failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_read_verify_and_keep_checkpoints_of_the_live_journal() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e7101").await;
    gw.admin(AdminRequest::DeviceRevoke {
        device: agent.device_id(),
        reason: RevokeReason::Stolen,
        note: Some("police report 42".into()),
    })
    .expect("revoke");
    let (cert, key) = add_auditor(&gw, "court-of-audit");
    let auditor = gw.client_with(&cert, &key);

    let body = auditor
        .get_bytes(&format!("{}?type=device.revoked", path::AUDIT_EVENTS))
        .await
        .expect("events");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&body)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["event"]["device"], agent.device_id().as_str());
    assert_eq!(lines[0]["event"]["reason"], "stolen");

    let all = auditor
        .get_bytes(path::AUDIT_EVENTS)
        .await
        .expect("all events");
    let kinds: Vec<String> = String::from_utf8_lossy(&all)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["event"]["type"].as_str().unwrap_or("").to_owned())
        .collect();
    for k in [
        "gateway.started",
        "invitation.created",
        "device.enrolled",
        "device.revoked",
        "auditor.added",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }

    let report: serde_json::Value = auditor.get(path::AUDIT_VERIFY).await.expect("verify");
    assert_eq!(report["intact"], true, "{report}");
    let sth: SignedTreeHead = auditor
        .get(path::AUDIT_CHECKPOINT)
        .await
        .expect("checkpoint");
    let key_text =
        std::fs::read_to_string(gw.state_dir().join("journal.pub")).expect("journal.pub");
    assert!(PublicKey::parse(&key_text).expect("key").verify_head(&sth));

    let bad = auditor
        .get_bytes(&format!("{}?color=blue", path::AUDIT_EVENTS))
        .await
        .expect_err("bad parameter");
    assert_eq!(bad.code(), Some("request_malformed"), "{bad}");
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_and_device_certificates_open_only_their_own_doors() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e7201").await;
    let (cert, key) = add_auditor(&gw, "inspector");
    let auditor = gw.client_with(&cert, &key);
    let device = ztgw_agent::renew::device_client(&agent.state()).expect("device client");

    let err = auditor
        .get::<DeviceView>(path::DEVICE)
        .await
        .expect_err("auditor on a device endpoint");
    assert_eq!(err.code(), Some("wrong_certificate_kind"), "{err}");
    for p in [
        path::AUDIT_EVENTS,
        path::AUDIT_VERIFY,
        path::AUDIT_CHECKPOINT,
    ] {
        let err = device
            .get_bytes(p)
            .await
            .expect_err("device on an audit endpoint");
        assert_eq!(err.code(), Some("wrong_certificate_kind"), "{p}: {err}");
        let err = gw
            .anonymous_client()
            .get_bytes(p)
            .await
            .expect_err("nobody on an audit endpoint");
        assert_eq!(err.code(), Some("certificate_required"), "{p}: {err}");
    }

    // A revoked auditor is refused at once.
    gw.admin(AdminRequest::AuditorRevoke {
        name: AuditorName::new("inspector").expect("name"),
        note: None,
    })
    .expect("revoke auditor");
    // On the connection it already holds (kept alive), the next request is refused...
    let err = auditor
        .get_bytes(path::AUDIT_VERIFY)
        .await
        .expect_err("revoked auditor, kept connection");
    assert_eq!(err.code(), Some("certificate_revoked"), "{err}");
    // ...and a new connection is refused at the handshake.
    let err = gw
        .client_with(&cert, &key)
        .get_bytes(path::AUDIT_VERIFY)
        .await
        .expect_err("revoked auditor, new connection");
    assert_eq!(
        err.tls_error(),
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRevoked
        )),
        "{err}"
    );
    // Names are never reused.
    let (_, csr) = generate_key_and_csr("again").expect("csr");
    let again = gw
        .admin(AdminRequest::AuditorAdd {
            name: AuditorName::new("inspector").expect("name"),
            csr_pem: csr,
            valid_for_secs: 3600,
        })
        .expect_err("name reused");
    assert!(again.message.contains("never reused"), "{}", again.message);
    gw.running.shutdown("test").await;
}
