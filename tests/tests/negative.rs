//! The negative matrix of enrolment and mTLS: every bad input gets its own error, issues
//! nothing, and leaves the registry exactly as it was.

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use ztgw_agent::AgentError;
use ztgw_api::control::{DeviceView, path};
use ztgw_gateway::admin::{AdminErrorCode, AdminRequest, RevokeReason};
use ztgw_pki::{
    CertificateAuthority, EmployeeId, Invitation, InvitationError, SerialNumber, WgPublicKey,
    generate_key_and_csr, pem_to_der,
};
use ztgw_tests::{GatewayOptions, TestGateway, forge_device_cert, now, rand_bytes};

/// A well-formed enrolment body for `invitation`, with `edit` applied to its JSON.
fn enrol_body(invitation: &str, edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let inv = Invitation::decode(invitation).expect("invitation");
    let (_, csr) = generate_key_and_csr("device").expect("csr");
    let mut body = json!({
        "invitation_id": inv.id.as_str(),
        "invitation_secret": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(inv.secret.expose()),
        "csr_pem": csr,
        "wireguard_public_key": WgPublicKey::from_bytes(rand_bytes()).to_base64(),
        "device": {"hostname": "pc-1", "os": "Debian GNU/Linux 12", "ownership": "personal"},
    });
    edit(&mut body);
    body
}

async fn post_enrol(gw: &TestGateway, body: &serde_json::Value) -> AgentError {
    gw.anonymous_client()
        .post::<_, serde_json::Value>(path::ENROL, body)
        .await
        .expect_err("the gateway must refuse")
}

fn refusal(e: &AgentError) -> (u16, &str) {
    match e {
        AgentError::Refused { status, body } => (*status, body.error.as_str()),
        other => panic!("expected a refusal with a reason code, got: {other}"),
    }
}

/// CSR PEM whose public key is swapped for another key's: the signature no longer
/// proves possession of the key it carries.
fn csr_with_foreign_key() -> String {
    let (_, csr_a) = generate_key_and_csr("a").expect("csr");
    let (_, csr_b) = generate_key_and_csr("b").expect("csr");
    let mut a = pem_to_der(&csr_a, "CERTIFICATE REQUEST").expect("der");
    let b = pem_to_der(&csr_b, "CERTIFICATE REQUEST").expect("der");
    // P-256 SPKI: the 65-byte uncompressed point follows "03 42 00".
    let point = |der: &[u8]| {
        let at = der
            .windows(3)
            .position(|w| w == [0x03, 0x42, 0x00])
            .expect("spki")
            + 3;
        at..at + 65
    };
    let (ra, rb) = (point(&a), point(&b));
    a[ra].copy_from_slice(&b[rb]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&a);
    format!("-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_enrolment_requests_are_refused_and_change_nothing() {
    let gw = TestGateway::start(GatewayOptions {
        enrolment_burst: Some(100),
        ..Default::default()
    })
    .await;
    let invitation = gw.invite("e9001");
    let big_csr = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        "A".repeat(9000)
    );
    let cases: Vec<(&str, serde_json::Value, u16, &str)> = vec![
        (
            "malformed CSR",
            enrol_body(&invitation, |b| {
                b["csr_pem"] = json!(
                    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
                )
            }),
            400,
            "csr_malformed",
        ),
        (
            "oversized CSR",
            enrol_body(&invitation, |b| b["csr_pem"] = json!(big_csr)),
            413,
            "csr_too_large",
        ),
        (
            "CSR signed by another key",
            enrol_body(&invitation, |b| {
                b["csr_pem"] = json!(csr_with_foreign_key())
            }),
            400,
            "csr_signature_invalid",
        ),
        (
            "oversized request",
            enrol_body(&invitation, |b| {
                b["device"]["hostname"] = json!("x".repeat(70 * 1024))
            }),
            413,
            "request_too_large",
        ),
        (
            "unknown invitation",
            enrol_body(&invitation, |b| {
                b["invitation_id"] = json!("inv-00000000000000000000")
            }),
            403,
            "invitation_unknown",
        ),
        (
            "wrong secret",
            enrol_body(&invitation, |b| {
                b["invitation_secret"] =
                    json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]))
            }),
            403,
            "invitation_unknown",
        ),
        (
            "truncated secret",
            enrol_body(&invitation, |b| b["invitation_secret"] = json!("c2hvcnQ")),
            400,
            "invitation_malformed",
        ),
        (
            "field the API does not have",
            enrol_body(&invitation, |b| b["is_ca"] = json!(true)),
            400,
            "request_malformed",
        ),
        (
            "bad WireGuard key",
            enrol_body(&invitation, |b| b["wireguard_public_key"] = json!("AAAA")),
            400,
            "request_malformed",
        ),
        (
            "hostname with control characters",
            enrol_body(&invitation, |b| {
                b["device"]["hostname"] = json!("pc\u{1b}[31m")
            }),
            400,
            "device_description_invalid",
        ),
    ];
    for (name, body, status, code) in cases {
        let before = gw.snapshot();
        let err = post_enrol(&gw, &body).await;
        assert_eq!(refusal(&err), (status, code), "{name}: {err}");
        assert_eq!(gw.snapshot(), before, "{name}: the registry changed");
    }
    // The invitation survived every bad attempt and still works.
    ztgw_tests::TestAgent::enrol(&invitation)
        .await
        .expect("the invitation is still usable");
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_invitations_are_refused() {
    let gw = TestGateway::start(GatewayOptions {
        manual_clock: true,
        ..Default::default()
    })
    .await;
    let invitation = gw.invite("e9101");
    gw.manual_clock
        .as_ref()
        .expect("manual clock")
        .advance(time::Duration::hours(73));
    let before = gw.snapshot();
    let err = ztgw_tests::TestAgent::enrol(&invitation)
        .await
        .expect_err("expired");
    assert_eq!(refusal(&err), (403, "invitation_expired"), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    assert_eq!(gw.snapshot(), before);
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistyped_invitations_are_caught_before_anything_is_sent() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let invitation = gw.invite("e9201");
    let before = gw.snapshot();
    let counters_before = gw
        .running
        .counters
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut typo = invitation.clone();
    let at = typo.len() / 2;
    let replacement = if &typo[at..at + 1] == "A" { "B" } else { "A" };
    typo.replace_range(at..at + 1, replacement);
    let err = ztgw_tests::TestAgent::enrol(&typo)
        .await
        .expect_err("mistyped");
    assert!(
        matches!(err, AgentError::Invitation(InvitationError::Checksum)),
        "{err}"
    );
    assert!(err.to_string().contains("not copied correctly"), "{err}");
    let err = ztgw_tests::TestAgent::enrol(&invitation[..invitation.len() - 7])
        .await
        .expect_err("cut short");
    assert!(matches!(err, AgentError::Invitation(_)), "{err}");
    assert_eq!(gw.snapshot(), before);
    let counters_after = gw
        .running
        .counters
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        counters_before, counters_after,
        "nothing reached the gateway"
    );
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_another_ca_is_not_trusted() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let invitation = gw.invite("e9251");
    let mut inv = Invitation::decode(&invitation).expect("decode");
    inv.ca_fingerprint = [0x42; 32];
    let err = ztgw_tests::TestAgent::enrol(&inv.encode().expect("encode"))
        .await
        .expect_err("pin mismatch");
    assert!(err.tls_error().is_some(), "{err}");
    assert!(err.to_string().contains("interception"), "{err}");
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_roles_and_schedules_are_refused_at_invitation() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let before = gw.snapshot();
    for (role, schedule, want) in [
        ("accounting", None, "role \"accounting\" is not defined"),
        (
            "finance",
            Some("night-shift"),
            "schedule \"night-shift\" is not defined",
        ),
    ] {
        let err = gw
            .admin(AdminRequest::Invite {
                employee: EmployeeId::new("e9301").expect("id"),
                role: Some(role.into()),
                schedule: schedule.map(str::to_owned),
                approved_by: "Head of IT".into(),
                reference: "DEC-1".into(),
                valid_for_secs: None,
            })
            .expect_err("refused");
        assert_eq!(err.code, AdminErrorCode::Invalid);
        assert!(err.message.contains(want), "{}", err.message);
    }
    let err = gw
        .admin(AdminRequest::Invite {
            employee: EmployeeId::new("e9301").expect("id"),
            role: Some("finance".into()),
            schedule: None,
            approved_by: " ".into(),
            reference: "DEC-1".into(),
            valid_for_secs: None,
        })
        .expect_err("approval must name someone");
    assert!(err.message.contains("approved-by"), "{}", err.message);
    assert_eq!(gw.snapshot(), before);
    gw.running.shutdown("test").await;
}

/// What a client presenting `cert` gets for `GET /v1/device`.
async fn present(
    gw: &TestGateway,
    cert: &str,
    key: &ztgw_pki::Secret<String>,
) -> Result<DeviceView, AgentError> {
    gw.client_with(cert, key).get(path::DEVICE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_certificates_are_refused() {
    use rustls::AlertDescription as A;
    use rustls::Error::AlertReceived;

    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e9401").await;
    let ca = gw.ca();
    let device = agent.device_id();
    let employee = agent.record.employee_id.clone();
    let wg = agent.record.wireguard_public_key;
    let t = now();
    let day = time::Duration::days(1);
    let before = gw.snapshot();

    // Expired, and not yet valid: signed by the right CA, outside their validity.
    let (cert, key) = forge_device_cert(&ca, &device, &employee, wg, t - day * 30, t - day);
    let err = present(&gw, &cert, &key).await.expect_err("expired");
    assert_eq!(
        err.tls_error(),
        Some(&AlertReceived(A::CertificateExpired)),
        "{err}"
    );
    assert!(err.to_string().contains("expired"), "{err}");
    let (cert, key) = forge_device_cert(&ca, &device, &employee, wg, t + day, t + day * 30);
    let err = present(&gw, &cert, &key).await.expect_err("not yet valid");
    assert!(err.tls_error().is_some(), "{err}");

    // From another CA, and self-signed.
    let (other_ca, _) = CertificateAuthority::generate(
        "impostor",
        SerialNumber::from_random(rand_bytes()),
        t - day,
        day * 365,
    )
    .expect("other CA");
    let (cert, key) = forge_device_cert(&other_ca, &device, &employee, wg, t - day, t + day);
    let err = present(&gw, &cert, &key).await.expect_err("other CA");
    assert_eq!(err.tls_error(), Some(&AlertReceived(A::UnknownCA)), "{err}");
    let (self_signed, self_key) = {
        let (ca_self, key) = CertificateAuthority::generate(
            "self",
            SerialNumber::from_random(rand_bytes()),
            t - day,
            day * 365,
        )
        .expect("self-signed");
        (ca_self.cert_pem().to_owned(), key)
    };
    let err = present(&gw, &self_signed, &self_key)
        .await
        .expect_err("self-signed");
    assert!(err.tls_error().is_some(), "{err}");

    // A genuine certificate whose WireGuard extension was altered: the signature breaks.
    let genuine = std::fs::read_to_string(agent.state().certificate()).expect("cert");
    let genuine_key =
        ztgw_pki::Secret::new(std::fs::read_to_string(agent.state().tls_key()).expect("key"));
    let mut der = pem_to_der(&genuine, "CERTIFICATE").expect("der");
    let at = der
        .windows(32)
        .position(|w| w == wg.as_bytes())
        .expect("key in certificate");
    der[at] ^= 0xff;
    let altered = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let err = present(&gw, &altered, &genuine_key)
        .await
        .expect_err("altered");
    assert!(err.tls_error().is_some(), "{err}");

    // Signed by the right CA but not matching the registry: the registry check refuses.
    let (cert, key) = forge_device_cert(
        &ca,
        &device,
        &employee,
        WgPublicKey::from_bytes([1; 32]),
        t - day,
        t + day,
    );
    let err = present(&gw, &cert, &key)
        .await
        .expect_err("registry never issued it");
    assert_eq!(refusal(&err), (403, "certificate_unknown"), "{err}");

    // The genuine certificate still works: none of this touched the device.
    present(&gw, &genuine, &genuine_key)
        .await
        .expect("genuine certificate");
    assert_eq!(gw.snapshot(), before);

    // Revoked.
    gw.admin(AdminRequest::DeviceRevoke {
        device: device.clone(),
        reason: RevokeReason::Stolen,
        note: None,
    })
    .expect("revoke");
    let err = present(&gw, &genuine, &genuine_key)
        .await
        .expect_err("revoked");
    assert_eq!(
        err.tls_error(),
        Some(&AlertReceived(A::CertificateRevoked)),
        "{err}"
    );
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_certificate_are_refused() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let err = gw
        .anonymous_client()
        .get::<DeviceView>(path::DEVICE)
        .await
        .expect_err("no certificate");
    assert_eq!(refusal(&err), (401, "certificate_required"), "{err}");
    let err = gw
        .anonymous_client()
        .post::<_, serde_json::Value>(path::RENEW, &json!({"csr_pem": "x"}))
        .await
        .expect_err("no certificate");
    assert_eq!(refusal(&err), (401, "certificate_required"), "{err}");
    let err = gw
        .anonymous_client()
        .get::<serde_json::Value>("/v1/nothing-here")
        .await
        .expect_err("unknown path");
    assert_eq!(refusal(&err), (404, "not_found"), "{err}");
    let err = gw
        .anonymous_client()
        .get::<serde_json::Value>(path::ENROL)
        .await
        .expect_err("wrong method");
    assert_eq!(refusal(&err), (405, "method_not_allowed"), "{err}");
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_tls_port_is_dropped_and_service_continues() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let failed_before = gw
        .running
        .counters
        .handshakes_failed
        .load(std::sync::atomic::Ordering::Relaxed);
    for garbage in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00],
        rand_bytes::<512>().to_vec(),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(gw.running.control_addr)
            .await
            .expect("connect");
        tcp.write_all(&garbage).await.expect("write");
        let mut buf = [0u8; 256];
        // The server answers at most a TLS alert, then closes.
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            let mut total = 0;
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break total,
                    Ok(n) => total += n,
                }
            }
        })
        .await
        .expect("the server closes the connection");
        assert!(read < 64, "answered {read} bytes to garbage");
    }
    let failed_after = gw
        .running
        .counters
        .handshakes_failed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        failed_after > failed_before,
        "failed handshakes are counted"
    );
    // Service continues.
    gw.enrol("e9501").await;
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_attempts_are_rate_limited_per_source() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let body = json!({"not": "an enrolment"});
    let mut codes = Vec::new();
    // The default burst is 5 attempts; the sixth within a minute is refused.
    for _ in 0..7 {
        let err = post_enrol(&gw, &body).await;
        codes.push(refusal(&err).1.to_owned());
    }
    assert_eq!(&codes[..5], &["request_malformed"; 5]);
    assert_eq!(&codes[5..], &["rate_limited"; 2]);
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_revocation_list_fails_closed() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e9601").await;
    let crl_path = gw.state_dir().join("crl.pem");
    let t = now();
    let day = time::Duration::days(1);

    let expired = gw
        .ca()
        .sign_crl(&[], 1_000, t - day * 2, t - day)
        .expect("expired CRL");
    let foreign = {
        let (other, _) = CertificateAuthority::generate(
            "x",
            SerialNumber::from_random(rand_bytes()),
            t - day,
            day * 9,
        )
        .expect("other CA");
        other
            .sign_crl(&[], 1, t - day, t + day)
            .expect("foreign CRL")
    };
    for (name, contents) in [
        ("garbage", "not a CRL".to_owned()),
        ("expired", expired),
        ("another CA's", foreign),
    ] {
        // No publication repairs the file while the refusal is looked at.
        let hold = gw.hold_crl();
        std::fs::write(&crl_path, contents).expect("write CRL");
        gw.running.enforce_crl_on_disk();
        let err = ztgw_agent::renew::status(&agent.state())
            .await
            .expect_err(name);
        assert!(err.tls_error().is_some(), "{name}: {err}");
        drop(hold);
        // Enrolment needs no client certificate and keeps working.
        gw.enrol("e9602").await;
        // The maintenance loop re-signs a fresh CRL and service comes back.
        gw.running.maintain();
        ztgw_agent::renew::status(&agent.state())
            .await
            .unwrap_or_else(|e| panic!("{name}: after re-signing: {e}"));
    }
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_are_rate_limited_per_source_before_any_tls_work() {
    let gw = TestGateway::start(GatewayOptions {
        handshake_limit: Some((3, 1)),
        ..Default::default()
    })
    .await;
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        let answer = gw.anonymous_client().get::<DeviceView>(path::DEVICE).await;
        outcomes.push(match answer {
            Err(AgentError::Refused { body, .. }) => body.error,
            Err(other) => format!("dropped: {other}"),
            Ok(_) => "accepted".into(),
        });
    }
    assert_eq!(&outcomes[..3], &["certificate_required"; 3], "{outcomes:?}");
    assert!(
        outcomes[3..].iter().all(|o| o.starts_with("dropped")),
        "{outcomes:?}"
    );
    let limited = gw
        .running
        .counters
        .refused_rate_limited
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(limited >= 3, "refusals are counted: {limited}");
    gw.running.shutdown("test").await;
}
