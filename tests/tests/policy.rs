//! Policy reload on a running gateway: a valid, tested policy replaces the one in force;
//! anything else is refused and the policy in force stays. Both are recorded.

use sha2::Digest as _;
use ztgw_gateway::admin::{AdminErrorCode, AdminRequest, AdminResponse};
use ztgw_pki::EmployeeId;
use ztgw_tests::{GatewayOptions, TestGateway};

fn invite_as(
    gw: &TestGateway,
    role: &str,
) -> Result<AdminResponse, ztgw_gateway::admin::AdminError> {
    gw.admin(AdminRequest::Invite {
        employee: EmployeeId::new("e8001").expect("id"),
        role: Some(role.into()),
        schedule: None,
        approved_by: "Head of IT".into(),
        reference: "DEC-9".into(),
        valid_for_secs: None,
    })
}

fn last_action(gw: &TestGateway) -> ztgw_gateway::registry::ActionRecord {
    gw.ctx()
        .registry
        .actions()
        .expect("actions")
        .pop()
        .expect("an action")
}

const AUDIT_ROLE: &str = r#"
[roles.audit]
resources = ["intranet"]
schedule = "office-hours"
posture = "standard"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_policy_replaces_the_one_in_force_and_a_bad_one_is_refused() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let file = gw.state_dir().join("policy.toml");
    let original = std::fs::read_to_string(&file).expect("policy");
    let first_hash = gw.ctx().policy.current().sha256.clone();
    // The policy loaded at start is journaled like every later load.
    let at_start = gw.journal("policy.loaded");
    assert_eq!(at_start.len(), 1, "{at_start:?}");
    assert_eq!(at_start[0]["sha256"], first_hash.as_str());
    assert!(at_start[0]["previous"].is_null());
    assert!(invite_as(&gw, "audit").is_err(), "no audit role yet");

    // A valid policy with a new role.
    let with_audit = format!("{original}{AUDIT_ROLE}");
    std::fs::write(&file, &with_audit).expect("write");
    let answer = gw.admin(AdminRequest::PolicyReload).expect("reload");
    let AdminResponse::Done { message, .. } = answer else {
        panic!("unexpected {answer:?}")
    };
    let hash = hex(&sha2::Sha256::digest(with_audit.as_bytes()));
    assert!(message.contains(&hash), "{message}");
    assert!(message.contains("7 tests passed"), "{message}");
    assert_eq!(gw.ctx().policy.current().sha256, hash);
    let action = last_action(&gw);
    assert_eq!(action.action, "policy.loaded");
    assert!(
        action
            .detail
            .contains(&format!("sha256={hash} previous={first_hash}")),
        "{}",
        action.detail
    );
    assert!(
        action.operator.starts_with("test-operator (uid "),
        "{}",
        action.operator
    );
    invite_as(&gw, "audit").expect("the new role is in force");

    // An invalid policy: refused with its place, and the policy in force stays.
    let broken = with_audit.replace(
        "[roles.audit]\nresources = [\"intranet\"]",
        "[roles.audit]\nresources = [\"intranett\"]",
    );
    std::fs::write(&file, &broken).expect("write");
    let err = gw.admin(AdminRequest::PolicyReload).expect_err("refused");
    assert_eq!(err.code, AdminErrorCode::Invalid);
    assert!(
        err.message
            .contains("resource \"intranett\" is not defined"),
        "{}",
        err.message
    );
    assert!(err.message.contains("policy.toml:"), "{}", err.message);
    assert_eq!(
        gw.ctx().policy.current().sha256,
        hash,
        "the policy in force stays"
    );
    let action = last_action(&gw);
    assert_eq!(action.action, "policy.refused");
    let refused_hash = hex(&sha2::Sha256::digest(broken.as_bytes()));
    assert!(
        action
            .detail
            .contains(&format!("sha256={refused_hash} kept={hash}")),
        "{}",
        action.detail
    );
    invite_as(&gw, "audit").expect("still in force");

    // A valid policy whose own tests fail is refused too.
    let failing = format!(
        "{with_audit}\n[[test]]\nrole = \"audit\"\nto = \"10.20.1.5:5432/tcp\"\nat = 2027-04-06T10:00:00+01:00\nexpect = \"allow\"\n"
    );
    std::fs::write(&file, &failing).expect("write");
    let err = gw
        .admin(AdminRequest::PolicyReload)
        .expect_err("tests fail");
    assert!(
        err.message.contains("1 of its 8 tests fail"),
        "{}",
        err.message
    );
    assert_eq!(gw.ctx().policy.current().sha256, hash);
    gw.running.shutdown("test").await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
