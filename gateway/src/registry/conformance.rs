//! What every registry must do, whatever its database: scenarios run against the SQLite
//! registry (its unit tests) and against PostgreSQL (`tests/registry_postgres.rs`). Each
//! takes a fresh, empty registry.

use std::sync::Arc;

use time::OffsetDateTime;
use ztgw_api::control::{DeviceStatus, Ownership};
use ztgw_pki::{
    CrlReason, DeviceId, EmployeeId, InvitationId, SecretHash, SerialNumber, WgPublicKey,
};

use super::{
    ActionRecord, CertificateRecord, DeviceRecord, EndOfService, Enrolment, InvitationRecord,
    Registry, RegistryError, StatusChange,
};

fn t(s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time")
}

fn action(what: &str) -> ActionRecord {
    ActionRecord {
        at: t(0),
        operator: "op".into(),
        action: what.into(),
        target: "x".into(),
        detail: String::new(),
    }
}

fn invitation(n: u8) -> InvitationRecord {
    let id = InvitationId::from_random([n; 10]);
    InvitationRecord {
        secret_hash: SecretHash::of(&id, &[n; 32]),
        id,
        employee: EmployeeId::new("e1").expect("id"),
        role: "finance".into(),
        schedule: None,
        approved_by: "boss".into(),
        reference: "R".into(),
        created_by: "op".into(),
        created_at: t(0),
        expires_at: t(3600),
        used_at: None,
        used_by: None,
    }
}

fn enrolment(inv: &InvitationRecord, device: u8, wg: u8) -> Enrolment {
    let id = DeviceId::from_random([device; 10]);
    Enrolment {
        invitation: inv.id.clone(),
        device: DeviceRecord {
            id: id.clone(),
            employee: inv.employee.clone(),
            role: inv.role.clone(),
            schedule: None,
            invitation: inv.id.clone(),
            hostname: "pc".into(),
            os: "Debian".into(),
            ownership: Ownership::Personal,
            wg_key: WgPublicKey::from_bytes([wg; 32]),
            status: DeviceStatus::Active,
            enrolled_at: t(10),
            approved: None,
            ended: None,
        },
        totp_secret: ztgw_pki::Secret::new(vec![device; 20]),
        certificate: CertificateRecord {
            serial: SerialNumber::from_random([device; 16]),
            device: id,
            not_before: t(10),
            not_after: t(100_000),
            issued_at: t(10),
            revoked: None,
        },
    }
}

/// An invitation is redeemed once, whatever the number of enrolments racing for it.
pub fn an_invitation_is_redeemed_once_even_under_a_race(reg: Arc<dyn Registry>) {
    let inv = invitation(1);
    reg.create_invitation(&inv, &action("invitation.created"))
        .expect("create");
    let results: Vec<_> = (0..8u8)
        .map(|i| {
            let reg = reg.clone();
            let e = enrolment(&inv, 10 + i, 10 + i);
            std::thread::spawn(move || reg.complete_enrolment(&e, &action("device.enrolled")))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, RegistryError::InvitationAlreadyUsed))
    );
    assert_eq!(reg.devices().expect("devices").len(), 1);
    assert_eq!(
        reg.actions().expect("actions").len(),
        2,
        "only the winner is recorded"
    );
}

/// A WireGuard key belongs to one device in service; an enrolment is all or nothing.
pub fn a_wireguard_key_belongs_to_one_device_in_service(reg: Arc<dyn Registry>) {
    let (a, b) = (invitation(1), invitation(2));
    reg.create_invitation(&a, &action("i")).expect("a");
    reg.create_invitation(&b, &action("i")).expect("b");
    let first = enrolment(&a, 1, 7);
    reg.complete_enrolment(&first, &action("e")).expect("first");
    assert_eq!(
        reg.totp(&first.device.id).expect("totp").map(|t| t.0),
        Some(vec![1; 20]),
        "the second-factor secret is written with the device"
    );
    let clash = enrolment(&b, 2, 7);
    assert!(matches!(
        reg.complete_enrolment(&clash, &action("e")),
        Err(RegistryError::WgKeyInUse(_))
    ));
    assert_eq!(
        reg.totp(&clash.device.id).expect("totp"),
        None,
        "nor its secret: one transaction"
    );
    // The refused enrolment left the invitation unused.
    assert!(
        reg.invitation(&b.id)
            .expect("get")
            .expect("exists")
            .used_at
            .is_none()
    );
    // Once the first device is out of service its key may be enrolled again.
    let change = StatusChange {
        at: t(20),
        by: "op".into(),
        reason: "lost".into(),
        note: None,
    };
    reg.end_device(
        &first.device.id,
        EndOfService::Revoke,
        &change,
        CrlReason::KeyCompromise,
        &action("r"),
    )
    .expect("revoke");
    reg.complete_enrolment(&clash, &action("e"))
        .expect("after revocation");
}

/// The revocation list holds revoked certificates until they expire; ends of service
/// move forward only; CRL numbers grow.
pub fn revocation_lists_only_unexpired_revoked_certificates(reg: Arc<dyn Registry>) {
    let inv = invitation(1);
    reg.create_invitation(&inv, &action("i")).expect("create");
    let e = enrolment(&inv, 1, 1);
    reg.complete_enrolment(&e, &action("e")).expect("enrol");
    assert!(reg.revoked_certificates(t(50)).expect("list").is_empty());
    let change = StatusChange {
        at: t(20),
        by: "op".into(),
        reason: "stolen".into(),
        note: Some("n".into()),
    };
    reg.end_device(
        &e.device.id,
        EndOfService::Revoke,
        &change,
        CrlReason::KeyCompromise,
        &action("r"),
    )
    .expect("revoke");
    let listed = reg.revoked_certificates(t(50)).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].serial, e.certificate.serial);
    assert!(
        reg.revoked_certificates(t(200_000))
            .expect("list")
            .is_empty(),
        "expired ones drop off"
    );
    // Revoking twice is refused; decommissioning a revoked device is allowed.
    assert!(matches!(
        reg.end_device(
            &e.device.id,
            EndOfService::Revoke,
            &change,
            CrlReason::KeyCompromise,
            &action("r")
        ),
        Err(RegistryError::NotFound(_))
    ));
    reg.end_device(
        &e.device.id,
        EndOfService::Decommission,
        &change,
        CrlReason::CessationOfOperation,
        &action("d"),
    )
    .expect("decommission");
    let d = reg.device(&e.device.id).expect("get").expect("kept");
    assert_eq!(d.status, DeviceStatus::Decommissioned);
    assert!(reg.next_crl_number().expect("n") < reg.next_crl_number().expect("n"));
}

fn live(session: &str, device: u8, gateway: &str) -> super::LiveSession {
    super::LiveSession {
        session: session.into(),
        device: DeviceId::from_random([device; 10]),
        employee: EmployeeId::new("e1").expect("id"),
        gateway: gateway.into(),
        role: "finance".into(),
        tunnel_address: "100.64.0.2".into(),
        started: t(0),
        ends_at: t(3600),
    }
}

fn gateway(name: &str, pools: &[&str]) -> super::GatewayRecord {
    super::GatewayRecord {
        name: name.into(),
        control: format!("{name}:8443"),
        endpoint: format!("{name}:51820"),
        pools: pools.iter().map(|p| (*p).to_owned()).collect(),
        started_at: t(0),
    }
}

/// Gateways' tunnel networks never overlap; one live session a device, the last
/// admission's, and replacing another gateway's session moves the revision; the policy
/// in force is the last one put.
pub fn what_gateways_share(reg: Arc<dyn Registry>) {
    reg.register_gateway(&gateway("a", &["100.64.0.0/17", "fd00:64::/65"]))
        .expect("a");
    reg.register_gateway(&gateway("b", &["100.64.128.0/17"]))
        .expect("b");
    match reg.register_gateway(&gateway("c", &["100.64.200.0/24"])) {
        Err(RegistryError::Duplicate(why)) => {
            assert!(
                why.contains("100.64.200.0/24") && why.contains("gateway b"),
                "{why}"
            )
        }
        other => panic!("an overlapping network was accepted: {other:?}"),
    }
    // A gateway registering again (a restart) may keep or change its own networks.
    reg.register_gateway(&gateway("a", &["100.64.0.0/18"]))
        .expect("a again");
    let names: Vec<_> = reg
        .gateways()
        .expect("gateways")
        .into_iter()
        .map(|g| (g.name, g.pools))
        .collect();
    assert_eq!(
        names,
        [
            ("a".to_owned(), vec!["100.64.0.0/18".to_owned()]),
            ("b".to_owned(), vec!["100.64.128.0/17".to_owned()])
        ]
    );

    let r0 = reg.revision().expect("revision");
    assert_eq!(reg.claim_session(&live("s1", 1, "a")).expect("claim"), None);
    assert_eq!(reg.claim_session(&live("s2", 2, "a")).expect("claim"), None);
    // Claims of devices nobody else holds, and a replacement on the same gateway, are
    // no one else's business.
    let replaced = reg.claim_session(&live("s3", 2, "a")).expect("claim");
    assert_eq!(replaced.map(|s| s.session), Some("s2".into()));
    assert_eq!(reg.revision().expect("revision"), r0);
    // The device admitted through b: a's session is replaced, and a must hear of it.
    let replaced = reg.claim_session(&live("s4", 1, "b")).expect("claim");
    assert_eq!(
        replaced.map(|s| (s.session, s.gateway)),
        Some(("s1".into(), "a".into()))
    );
    let r1 = reg.revision().expect("revision");
    assert!(r1 > r0);
    // a ends s1 late: b's session stays.
    reg.release_session("s1").expect("release");
    let held: Vec<_> = reg
        .live_sessions()
        .expect("live")
        .into_iter()
        .map(|s| (s.session, s.gateway))
        .collect();
    assert_eq!(held, [("s3".into(), "a".into()), ("s4".into(), "b".into())]);
    // a restarts holding nothing: its leftovers go, b's stay.
    assert_eq!(reg.release_sessions_of("a", &[]).expect("release"), 1);
    assert_eq!(reg.live_sessions().expect("live").len(), 1);

    assert_eq!(reg.policy_in_force().expect("policy"), None);
    for (sha, text) in [("11", "first"), ("22", "second")] {
        reg.put_policy(
            &super::StoredPolicy {
                sha256: sha.into(),
                text: text.into(),
                loaded_at: t(5),
                loaded_by: "a: op".into(),
            },
            &action("policy.loaded"),
        )
        .expect("put");
    }
    // Schedule overrides: one a target, the last set; expired ones no longer count.
    let o = |target: &str, until: i64| super::OverrideRecord {
        target: target.into(),
        until: t(until),
        reason: "emergency".into(),
        operator: "op".into(),
    };
    reg.set_override(&o("role:finance", 100), &action("schedule.override"))
        .expect("set");
    reg.set_override(&o("employee:e1", 50), &action("schedule.override"))
        .expect("set");
    reg.set_override(&o("role:finance", 200), &action("schedule.override"))
        .expect("replace");
    let in_force = |at: i64| -> Vec<(String, i64)> {
        reg.overrides(t(at))
            .expect("overrides")
            .into_iter()
            .map(|o| (o.target, o.until.unix_timestamp() - t(0).unix_timestamp()))
            .collect()
    };
    assert_eq!(
        in_force(10),
        [
            ("employee:e1".to_owned(), 50),
            ("role:finance".to_owned(), 200)
        ]
    );
    assert_eq!(in_force(60), [("role:finance".to_owned(), 200)]);

    let p = reg.policy_in_force().expect("policy").expect("in force");
    assert_eq!((p.sha256.as_str(), p.text.as_str()), ("22", "second"));
    assert!(
        reg.revision().expect("revision") > r1,
        "a policy put moves the revision"
    );
}

/// Web console operators: added once under a name, listed, revoked once; a revoked
/// operator's certificate is on the revocation list until it expires.
pub fn operators_are_added_listed_and_revoked(reg: Arc<dyn Registry>) {
    use ztgw_api::console::OperatorRole;
    use ztgw_pki::OperatorName;

    let record = |name: &str, serial: u8, role| super::OperatorRecord {
        name: OperatorName::new(name).expect("name"),
        role,
        serial: SerialNumber::from_random([serial; 16]),
        not_after: t(100_000),
        added: StatusChange {
            at: t(1),
            by: "root".into(),
            reason: "added".into(),
            note: None,
        },
        revoked: None,
    };
    let amina = record("amina", 1, OperatorRole::SecurityUnit);
    let omar = record("omar", 2, OperatorRole::Auditor);
    reg.add_operator(&amina, &action("operator.added"))
        .expect("add");
    reg.add_operator(&omar, &action("operator.added"))
        .expect("add");
    assert!(matches!(
        reg.add_operator(&record("amina", 3, OperatorRole::Auditor), &action("a")),
        Err(RegistryError::Duplicate(_))
    ));
    assert_eq!(
        reg.operator(&amina.name).expect("read"),
        Some(amina.clone())
    );
    assert_eq!(
        reg.operators().expect("list"),
        vec![amina.clone(), omar.clone()]
    );
    assert!(reg.revoked_certificates(t(50)).expect("crl").is_empty());
    let change = StatusChange {
        at: t(20),
        by: "root".into(),
        reason: "revoked".into(),
        note: Some("left the unit".into()),
    };
    reg.revoke_operator(&omar.name, &change, &action("operator.revoked"))
        .expect("revoke");
    assert!(
        reg.revoke_operator(&omar.name, &change, &action("operator.revoked"))
            .is_err(),
        "revoked once"
    );
    let read = reg.operator(&omar.name).expect("read").expect("there");
    assert_eq!(read.revoked, Some(change));
    let listed = reg.revoked_certificates(t(50)).expect("crl");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].serial, omar.serial);
    assert!(
        reg.revoked_certificates(t(200_000))
            .expect("crl")
            .is_empty(),
        "expired ones drop off"
    );
}
