//! Revocation lists under concurrency: every revocation recorded is in the CRL in force,
//! and CRL numbers only increase.

use std::collections::BTreeSet;

use x509_parser::prelude::FromDer as _;
use x509_parser::revocation_list::CertificateRevocationList;
use ztgw_gateway::admin::{AdminRequest, AdminResponse, RevokeReason};
use ztgw_pki::pem_to_der;
use ztgw_tests::{GatewayOptions, TestGateway, now};

/// The serials (hex) and number of the CRL in force.
fn crl_in_force(gw: &TestGateway) -> (BTreeSet<String>, u64) {
    let pem = std::fs::read_to_string(gw.state_dir().join("crl.pem")).expect("crl.pem");
    let der = pem_to_der(&pem, "X509 CRL").expect("a PEM CRL");
    let (_, crl) = CertificateRevocationList::from_der(&der).expect("a CRL");
    let serials = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .expect("a CRL number");
    (serials, number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_revocations_are_all_in_the_crl_in_force() {
    let gw = TestGateway::start(GatewayOptions {
        enrolment_burst: Some(40),
        ..GatewayOptions::default()
    })
    .await;
    let mut devices = Vec::new();
    for i in 0..20 {
        devices.push(gw.enrol(&format!("e77{i:02}")).await.device_id());
    }
    let (_, before) = crl_in_force(&gw);
    let answers: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .map(|d| {
                let gw = &gw;
                scope.spawn(move || {
                    gw.admin(AdminRequest::DeviceRevoke {
                        device: d.clone(),
                        reason: RevokeReason::Lost,
                        note: None,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (d, a) in devices.iter().zip(&answers) {
        assert!(
            matches!(a, Ok(AdminResponse::Done { .. })),
            "revoking {d}: {a:?}"
        );
    }
    let (serials, after) = crl_in_force(&gw);
    assert!(
        after >= before + 20,
        "one publication each: {before} -> {after}"
    );
    for d in &devices {
        for cert in gw.ctx().registry.certificates_of(d).expect("certificates") {
            assert!(
                serials.contains(&cert.serial.to_hex()),
                "{d}'s certificate {} is missing from the CRL in force",
                cert.serial
            );
        }
    }
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_number_never_goes_back() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    // A CRL of ours with a number ahead of the registry's counter (as after a registry
    // restored from an older backup).
    let t = now();
    let ahead = gw
        .ca()
        .sign_crl(&[], 5_000, t, t + time::Duration::days(1))
        .expect("CRL");
    // Written under the lock every publication takes (a publication that read the
    // file before this write would otherwise overwrite it after).
    let hold = gw.hold_crl();
    std::fs::write(gw.state_dir().join("crl.pem"), ahead).expect("write");
    drop(hold);
    gw.ctx().publish_crl().expect("publish");
    let (_, number) = crl_in_force(&gw);
    assert!(number > 5_000, "published number {number}");
    gw.running.shutdown("test").await;
}
