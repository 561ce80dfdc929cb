//! Enrolment end to end over real TLS on loopback: invite, enrol, mTLS, renew,
//! approve, revoke, decommission, end an employee's telework.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
use ztgw_agent::renew::{renew, status};
use ztgw_api::control::DeviceStatus;
use ztgw_gateway::admin::{AdminRequest, AdminResponse, EmployeeRevokeReason, RevokeReason};
use ztgw_pki::identity::WG_KEY_OID;
use ztgw_pki::{CertificateIdentity, EmployeeId, SerialNumber, pem_to_der};
use ztgw_tests::{GatewayOptions, TestAgent, TestGateway, now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_enrol_then_mtls_request_succeeds() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e1029").await;

    // The agent's private material is 0600 in a 0700 directory.
    let state = agent.state();
    for file in [state.tls_key(), state.wireguard_key()] {
        let mode = std::fs::metadata(&file)
            .expect("key file")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let dir_mode = std::fs::metadata(&state.dir)
        .expect("dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);

    // An mTLS request succeeds and names this device.
    let view = status(&state).await.expect("mTLS request");
    assert_eq!(view.device_id, agent.device_id());
    assert_eq!(view.employee_id.as_str(), "e1029");
    assert_eq!(view.role, "finance");
    assert_eq!(view.status, DeviceStatus::Active);

    // The certificate carries exactly what the CA set.
    let pem = std::fs::read_to_string(state.certificate()).expect("certificate");
    let der = pem_to_der(&pem, "CERTIFICATE").expect("pem");
    let (_, cert) = X509Certificate::from_der(&der).expect("parse certificate");
    assert!(!cert.is_ca());
    let issuer_ca = gw.ca();
    let (_, ca_cert) = X509Certificate::from_der(issuer_ca.cert_der()).expect("ca");
    assert_eq!(cert.issuer(), ca_cert.subject());
    cert.verify_signature(Some(ca_cert.public_key()))
        .expect("signed by the gateway's CA");
    let uris: Vec<String> = cert
        .subject_alternative_name()
        .expect("san")
        .expect("san present")
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(
        uris,
        vec![
            format!("urn:ztgw:device:{}", agent.device_id()),
            "urn:ztgw:employee:e1029".to_owned()
        ]
    );
    let eku = cert
        .extended_key_usage()
        .expect("eku")
        .expect("eku present")
        .value;
    assert!(eku.client_auth && !eku.server_auth && !eku.code_signing);
    let ku = cert.key_usage().expect("ku").expect("ku present").value;
    assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
    let wg_ext = cert
        .extensions()
        .iter()
        .find(|e| {
            e.oid
                .iter()
                .is_some_and(|arcs| arcs.eq(WG_KEY_OID.iter().copied()))
        })
        .expect("WireGuard key extension");
    assert!(
        !wg_ext.critical,
        "the WireGuard extension must be non-critical"
    );
    assert_eq!(
        &wg_ext.value[2..],
        agent.record.wireguard_public_key.as_bytes()
    );
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert_eq!(lifetime, 30 * 86_400, "default validity is 30 days");
    let serial = SerialNumber::from_slice(cert.raw_serial());
    let record = gw
        .ctx()
        .registry
        .certificate(&serial)
        .expect("registry")
        .expect("serial registered");
    assert_eq!(record.device, agent.device_id());

    // The registry recorded the device and who approved it.
    let device = gw
        .ctx()
        .registry
        .device(&agent.device_id())
        .expect("registry")
        .expect("device");
    assert_eq!(device.status, DeviceStatus::Active);
    assert_eq!(device.hostname, "pc-test");
    assert_eq!(device.wg_key, agent.record.wireguard_public_key);
    assert_eq!(
        device.approved.as_ref().map(|a| a.by.as_str()),
        Some("Head of IT")
    );
    let actions: Vec<String> = gw
        .ctx()
        .registry
        .actions()
        .expect("actions")
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions,
        vec![
            // The policy the first start put in the registry (what other gateways of a
            // shared registry would take).
            "policy.loaded",
            "gateway.started",
            "invitation.created",
            "device.enrolled"
        ]
    );
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_is_used_once() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let invitation = gw.invite("e2001");
    let first = TestAgent::enrol(&invitation)
        .await
        .expect("first enrolment");
    let before = gw.snapshot();
    let second = TestAgent::enrol(&invitation)
        .await
        .expect_err("second enrolment must fail");
    assert_eq!(second.code(), Some("invitation_used"), "{second}");
    assert!(second.to_string().contains("already been used"), "{second}");
    assert_eq!(gw.snapshot(), before, "a refused enrolment changes nothing");
    assert_eq!(gw.snapshot().devices.len(), 1);
    assert_eq!(gw.snapshot().devices[0].id, first.device_id());
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_on_a_running_gateway_is_enforced_within_a_second() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e3001").await;
    let other = gw.enrol("e3002").await;
    status(&agent.state())
        .await
        .expect("works before revocation");

    let started = Instant::now();
    let answer = gw
        .admin(AdminRequest::DeviceRevoke {
            device: agent.device_id(),
            reason: RevokeReason::Lost,
            note: Some("reported lost by phone".into()),
        })
        .expect("revoke");
    assert!(matches!(answer, AdminResponse::Done { .. }));
    let refused = loop {
        match status(&agent.state()).await {
            Err(e) => break e,
            Ok(_) if started.elapsed() < Duration::from_secs(1) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(_) => panic!("still accepted one second after revocation"),
        }
    };
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "refused only after {elapsed:?}"
    );
    assert_eq!(
        refused.tls_error(),
        Some(&rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRevoked
        )),
        "{refused}"
    );
    assert!(refused.to_string().contains("revoked"), "{refused}");

    // The other device is untouched; the record says who revoked and why.
    status(&other.state())
        .await
        .expect("other device still works");
    let device = gw
        .ctx()
        .registry
        .device(&agent.device_id())
        .expect("registry")
        .expect("device");
    assert_eq!(device.status, DeviceStatus::Revoked);
    let ended = device.ended.expect("end recorded");
    assert_eq!(ended.reason, "lost");
    assert!(ended.by.starts_with("test-operator (uid "), "{}", ended.by);
    assert_eq!(ended.note.as_deref(), Some("reported lost by phone"));
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_connection_cannot_outlive_revocation() {
    // A keep-alive connection verified its certificate before the revocation; TLS will
    // not look at it again, so the registry check on every request must refuse it.
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e3101").await;
    let state = agent.state();
    let mut conn = KeepAlive::open(&gw, &state).await;
    assert_eq!(conn.get_device().await.0, 200);
    gw.admin(AdminRequest::DeviceRevoke {
        device: agent.device_id(),
        reason: RevokeReason::Compromised,
        note: None,
    })
    .expect("revoke");
    let (status, body) = conn.get_device().await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"certificate_revoked\""), "{body}");
    gw.running.shutdown("test").await;
}

/// One HTTP/1.1 connection kept open across requests.
struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
}

impl KeepAlive {
    async fn open(gw: &TestGateway, state: &ztgw_agent::state::AgentState) -> Self {
        let config = ztgw_pki::tls::mtls_client_config(
            &std::fs::read_to_string(state.ca()).expect("ca"),
            &std::fs::read_to_string(state.certificate()).expect("cert"),
            &ztgw_pki::Secret::new(std::fs::read_to_string(state.tls_key()).expect("key")),
        )
        .expect("config");
        let tcp = tokio::net::TcpStream::connect(gw.running.control_addr)
            .await
            .expect("connect");
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("tls");
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .expect("http");
        tokio::spawn(conn);
        Self { sender }
    }

    async fn get_device(&mut self) -> (u16, String) {
        use http_body_util::BodyExt as _;
        let req = http::Request::get(ztgw_api::control::path::DEVICE)
            .header(http::header::HOST, "127.0.0.1")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let resp = self
            .sender
            .send_request(req)
            .await
            .expect("same connection answers");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_held_for_approval_wait_for_the_security_unit() {
    let gw = TestGateway::start(GatewayOptions {
        require_device_approval: true,
        ..Default::default()
    })
    .await;
    let agent = gw.enrol("e4001").await;
    assert_eq!(agent.record.status, DeviceStatus::Pending);
    let view = status(&agent.state())
        .await
        .expect("a pending device may ask its status");
    assert_eq!(view.status, DeviceStatus::Pending);
    let err = renew(&agent.state(), now(), None)
        .await
        .expect_err("pending devices cannot renew");
    assert_eq!(err.code(), Some("device_pending_approval"), "{err}");

    gw.admin(AdminRequest::DeviceApprove {
        device: agent.device_id(),
        note: Some("checked in person".into()),
    })
    .expect("approve");
    assert_eq!(
        status(&agent.state()).await.expect("status").status,
        DeviceStatus::Active
    );
    let again = gw
        .admin(AdminRequest::DeviceApprove {
            device: agent.device_id(),
            note: None,
        })
        .expect_err("approving twice is refused");
    assert_eq!(again.code, ztgw_gateway::admin::AdminErrorCode::Conflict);
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_gives_a_new_key_and_certificate() {
    // Renewal at most once a second here (10 minutes as shipped: see
    // `renewals_are_bounded_and_a_renewed_certificate_retires_the_old_one`).
    let gw = TestGateway::start(renewal_every_second()).await;
    let agent = gw.enrol("e5001").await;
    let state = agent.state();
    let old_key = std::fs::read_to_string(state.tls_key()).expect("key");
    let old_view = status(&state).await.expect("status");

    // Not due: nothing changes.
    let skipped = renew(&state, now(), Some(time::Duration::days(7)))
        .await
        .expect("renew check");
    assert_eq!(skipped, None);
    assert_eq!(
        std::fs::read_to_string(state.tls_key()).expect("key"),
        old_key
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = renew(&state, now(), Some(time::Duration::days(31)))
        .await
        .expect("renew");
    assert!(renewed.is_some());
    let new_key = std::fs::read_to_string(state.tls_key()).expect("key");
    assert_ne!(new_key, old_key, "renewal rotates the TLS key");
    let new_view = status(&state)
        .await
        .expect("status with the new certificate");
    assert_ne!(new_view.certificate_serial, old_view.certificate_serial);
    let mode = std::fs::metadata(state.tls_key())
        .expect("key")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let certs = gw
        .ctx()
        .registry
        .certificates_of(&agent.device_id())
        .expect("certs");
    assert_eq!(certs.len(), 2);
    // The WireGuard binding is carried over.
    let der = pem_to_der(
        &std::fs::read_to_string(state.certificate()).expect("cert"),
        "CERTIFICATE",
    )
    .expect("pem");
    match CertificateIdentity::from_der(&der).expect("identity") {
        CertificateIdentity::Device { wg_key, .. } => {
            assert_eq!(wg_key, agent.record.wireguard_public_key)
        }
        other => panic!("not a device certificate: {other:?}"),
    }
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_an_employees_telework_revokes_every_device() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let laptop = gw.enrol("e6001").await;
    let second = gw.enrol("e6001").await;
    let colleague = gw.enrol("e6002").await;
    let answer = gw
        .admin(AdminRequest::EmployeeRevoke {
            employee: EmployeeId::new("e6001").expect("id"),
            reason: EmployeeRevokeReason::EmployeeRequest,
            note: None,
        })
        .expect("revoke employee");
    let AdminResponse::Done { devices_ended, .. } = answer else {
        panic!("unexpected answer {answer:?}");
    };
    let mut expected = vec![laptop.device_id(), second.device_id()];
    expected.sort();
    assert_eq!(devices_ended, expected);
    for agent in [&laptop, &second] {
        let err = status(&agent.state()).await.expect_err("revoked");
        assert!(err.tls_error().is_some(), "{err}");
    }
    status(&colleague.state())
        .await
        .expect("colleague unaffected");

    // A revoked employee cannot be invited until reinstated.
    let refused = gw
        .admin(AdminRequest::Invite {
            employee: EmployeeId::new("e6001").expect("id"),
            role: Some("finance".into()),
            schedule: None,
            approved_by: "Head of IT".into(),
            reference: "DEC-2".into(),
            valid_for_secs: None,
        })
        .expect_err("invite refused");
    assert!(refused.message.contains("reinstate"), "{}", refused.message);
    gw.admin(AdminRequest::EmployeeReinstate {
        employee: EmployeeId::new("e6001").expect("id"),
        note: Some("telework resumed".into()),
    })
    .expect("reinstate");
    let again = gw.enrol("e6001").await;
    status(&again.state())
        .await
        .expect("a new device after reinstatement");
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommissioning_keeps_the_record() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e7001").await;
    gw.admin(AdminRequest::DeviceDecommission {
        device: agent.device_id(),
        note: Some("laptop returned to IT".into()),
    })
    .expect("decommission");
    let err = status(&agent.state())
        .await
        .expect_err("decommissioned devices are refused");
    assert!(err.tls_error().is_some(), "{err}");
    let AdminResponse::Device { device } = gw
        .admin(AdminRequest::DeviceShow {
            device: agent.device_id(),
        })
        .expect("show")
    else {
        panic!("not a device");
    };
    assert_eq!(device.summary.status, DeviceStatus::Decommissioned);
    assert_eq!(
        device.ended.as_ref().map(|e| e.note.as_deref()),
        Some(Some("laptop returned to IT"))
    );
    assert!(device.certificates.iter().all(|c| c.revoked_at.is_some()));
    gw.running.shutdown("test").await;
}

/// The serials of `agent`'s certificates that are not revoked.
fn valid_serials(gw: &TestGateway, agent: &TestAgent) -> Vec<SerialNumber> {
    gw.ctx()
        .registry
        .certificates_of(&agent.device_id())
        .expect("certs")
        .into_iter()
        .filter(|c| c.revoked.is_none())
        .map(|c| c.serial)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_are_bounded_and_a_renewed_certificate_retires_the_old_one() {
    // As shipped: one renewal per 10 minutes.
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e5101").await;
    let state = agent.state();
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(renew(&state, now(), Some(time::Duration::days(31))).await);
    }
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(e) if e.code() == Some("rate_limited"))),
        "no renewal within 10 minutes of the last certificate: {answers:?}"
    );
    assert_eq!(valid_serials(&gw, &agent).len(), 1);
    gw.running.shutdown("test").await;

    // With a short interval: a renewal lost before use, another, then the first use.
    let gw = TestGateway::start(renewal_every_second()).await;
    let agent = gw.enrol("e5102").await;
    let state = agent.state();
    let first = status(&state).await.expect("status").certificate_serial;
    let kept = |p: std::path::PathBuf| (std::fs::read(&p).expect("file"), p);
    let (cert, key) = (kept(state.certificate()), kept(state.tls_key()));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    renew(&state, now(), Some(time::Duration::days(31)))
        .await
        .expect("renew")
        .expect("renewed");
    // The device loses the new certificate (restored from a backup, say).
    for (bytes, path) in [&cert, &key] {
        std::fs::write(path, bytes).expect("restore");
    }
    assert_eq!(
        valid_serials(&gw, &agent).len(),
        2,
        "the old and the unused new"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    renew(&state, now(), Some(time::Duration::days(31)))
        .await
        .expect("renew again")
        .expect("renewed");
    assert_eq!(
        valid_serials(&gw, &agent).len(),
        2,
        "the unused one was retired: never more than two"
    );
    // The first use of the newest retires the first certificate.
    let newest = status(&state).await.expect("status with the newest");
    assert_ne!(newest.certificate_serial, first);
    let valid = valid_serials(&gw, &agent);
    assert_eq!(valid.len(), 1, "{valid:?}");
    assert_eq!(valid[0].to_hex(), newest.certificate_serial);
    let superseded = gw.journal("certificate.superseded");
    assert_eq!(superseded.len(), 2, "{superseded:?}");
    // The CRL in force lists the retired ones: the first certificate is refused at TLS.
    for (bytes, path) in [&cert, &key] {
        std::fs::write(path, bytes).expect("restore");
    }
    let err = status(&state).await.expect_err("the retired certificate");
    assert!(
        err.tls_error().is_some() || err.code() == Some("certificate_revoked"),
        "{err}"
    );
    gw.running.shutdown("test").await;
}

/// A gateway that allows a renewal every second (10 minutes as shipped).
fn renewal_every_second() -> GatewayOptions {
    GatewayOptions {
        replace: vec![(
            "renewal_interval = \"10m\"".into(),
            "renewal_interval = \"1s\"".into(),
        )],
        ..Default::default()
    }
}
