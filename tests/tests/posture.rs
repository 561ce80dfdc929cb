//! The gateway publishes each device's posture profile; the agent collects a real report
//! on this machine and evaluates it against that profile.

use ztgw_agent::posture::{preview, profile_for};
use ztgw_posture::report::PostureReport;
use ztgw_tests::{GatewayOptions, TestGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_agent_checks_this_machine_against_its_roles_profile() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e9901").await;
    let (name, profile) = profile_for(&agent.state()).await.expect("profile");
    assert_eq!(name, "standard (role finance)");
    assert!(profile.os.iter().any(|o| o.id == "debian"));
    assert_eq!(profile.max_report_age, 600);

    let (_, report, evaluation) = preview(&agent.state()).await.expect("preview");
    assert!(
        report.os.value().is_some(),
        "this machine has an os-release"
    );
    let json = serde_json::to_vec(&report).expect("json");
    assert_eq!(
        PostureReport::parse(&json).expect("the gateway accepts it"),
        report
    );
    for c in &evaluation.checks {
        assert!(!c.sentence.is_empty(), "{c:?}");
    }
    assert_eq!(
        evaluation.compliant,
        evaluation
            .checks
            .iter()
            .all(|c| c.outcome == ztgw_posture::evaluate::Outcome::Pass)
    );
    gw.running.shutdown("test").await;
}
