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

    let (_, report, evaluation) = preview(&agent.state(), "/".into()).await.expect("preview");
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

/// A posture report is good for one admission: its nonce is spent, and a replay is
/// refused (and journaled) as such, whatever else the report says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_posture_report_is_refused() {
    use ztgw_api::control::{AdmissionRequest, NonceView, path};
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e9902").await;
    let state = agent.state();
    let client = ztgw_agent::renew::device_client(&state).expect("client");
    let (_, profile) = profile_for(&state).await.expect("profile");
    let nonce: NonceView = client
        .post(path::SESSION_NONCE, &serde_json::json!({}))
        .await
        .expect("nonce");
    let report = ztgw_agent::posture::collect_for(&profile, "/".into(), nonce.nonce);
    let request = AdmissionRequest {
        wg_public_key: agent.record.wireguard_public_key.to_base64(),
        posture: serde_json::to_string(&report).expect("json"),
        second_factor: None,
    };
    let ids = |e: ztgw_agent::AgentError| -> Vec<String> {
        match e {
            ztgw_agent::AgentError::Refused { body, .. } => {
                body.checks.into_iter().map(|c| c.id).collect()
            }
            other => vec![format!("{other:?}")],
        }
    };
    // The first use: whatever the outcome (this gateway runs no data plane), the nonce
    // was accepted.
    let first = client
        .post::<_, serde_json::Value>(path::SESSION, &request)
        .await
        .map_err(ids);
    if let Err(ids) = &first {
        assert!(!ids.iter().any(|i| i == "posture-replayed"), "{ids:?}");
    }
    let second = client
        .post::<_, serde_json::Value>(path::SESSION, &request)
        .await
        .map_err(ids)
        .expect_err("a replay is refused");
    assert!(second.iter().any(|i| i == "posture-replayed"), "{second:?}");
    gw.running.shutdown("test").await;
}

/// `ztgw-agent posture --json --posture-root ROOT` for the agent enrolled in `agent`:
/// whether it exited 0, and its JSON (the profile, the report and the evaluation).
fn agent_posture(
    agent: &ztgw_tests::TestAgent,
    root: &std::path::Path,
) -> (bool, serde_json::Value) {
    let out = std::process::Command::new(ztgw_tests::binary("ztgw-agent"))
        .arg("--state-dir")
        .arg(agent.dir.path().join("agent"))
        .args(["posture", "--json", "--posture-root"])
        .arg(root)
        .output()
        .expect("ztgw-agent posture");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.success(), v)
}

/// The checks that did not pass: their ids and remedies.
fn not_passing(v: &serde_json::Value) -> Vec<(String, String)> {
    v["evaluation"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["outcome"] != "pass")
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("").to_owned(),
                c["remediation"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The agent's `posture --posture-root` on a compliant Debian 12 GNOME laptop's files,
/// against the profile a gateway serves with the policy `ztgw init` writes, unchanged
/// (role finance, profile `standard`, every check on): compliant. The same laptop on an
/// open Wi-Fi fails on `posture.wifi` alone, with a remedy the employee can follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliant_laptop_passes_the_default_policy_and_open_wifi_alone_fails_it() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e9903").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = ztgw_tests::laptop::compliant_debian(tmp.path());
    let (ok, v) = agent_posture(&agent, &root);
    assert_eq!(v["profile"], "standard (role finance)");
    assert!(
        ok && v["evaluation"]["compliant"] == true,
        "{:#?}",
        not_passing(&v)
    );
    let checked: Vec<&str> = v["evaluation"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    for id in [
        "posture.os",
        "posture.updates",
        "posture.antivirus-running",
        "posture.antivirus-signatures",
        "posture.firewall",
        "posture.disk-encryption",
        "posture.screen-lock",
        "posture.browsers",
        "posture.forbidden-software",
        "posture.wifi",
    ] {
        assert!(checked.contains(&id), "{id} in {checked:?}");
    }
    assert_eq!(v["report"]["wifi"]["value"], "wpa2");

    ztgw_tests::laptop::on_open_wifi(&root);
    let (ok, v) = agent_posture(&agent, &root);
    assert!(!ok, "not compliant");
    let failed = not_passing(&v);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].0, "posture.wifi");
    let wifi = v["evaluation"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == "posture.wifi")
        .expect("wifi")
        .clone();
    assert_eq!(wifi["outcome"], "fail");
    let fix = &failed[0].1;
    assert!(fix.contains("WPA2") && !fix.contains("IT unit"), "{fix}");
    gw.running.shutdown("test").await;
}

/// A Windows 11 laptop, through the agent's `--posture-root` on its capture, against the
/// profile of the policy `ztgw init` writes: compliant. On an open Wi-Fi, or with
/// BitLocker off, it fails on that check alone, with the Windows way to fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windows_laptop_is_checked_with_windows_remedies() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e9904").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = ztgw_tests::laptop::compliant_windows(tmp.path());
    let (_, v) = agent_posture(&agent, &root);
    assert_eq!(v["report"]["os"]["value"]["family"], "windows");
    assert_eq!(v["report"]["os"]["value"]["version"], "10.0.22631.4460");
    assert!(
        v["evaluation"]["compliant"] == true,
        "{:#?}",
        not_passing(&v)
    );

    let open = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../posture/tests/fixtures/windows-raw/netsh-open-en.txt"),
    )
    .expect("fixture");
    ztgw_tests::laptop::windows_source(&root, "netsh-wlan-interfaces.txt", &open);
    let failed = not_passing(&agent_posture(&agent, &root).1);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].0, "posture.wifi");
    assert!(
        failed[0].1.contains("Settings > Network & internet"),
        "{}",
        failed[0].1
    );

    ztgw_tests::laptop::windows_source(
        &root,
        "netsh-wlan-interfaces.txt",
        "There is no wireless interface on the system.",
    );
    ztgw_tests::laptop::windows_source(
        &root,
        "bitlocker.json",
        r#"{"DriveLetter": "C:", "ProtectionStatus": 0}"#,
    );
    let failed = not_passing(&agent_posture(&agent, &root).1);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].0, "posture.disk-encryption");
    assert!(failed[0].1.contains("BitLocker"), "{}", failed[0].1);
    gw.running.shutdown("test").await;
}

/// A Mac's capture (macOS 14, FileVault, the application firewall, XProtect, a screen
/// lock after 5 minutes, WPA2) passes the profile of the policy `ztgw init` writes; with
/// FileVault off it fails on that alone, told the macOS way to fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mac_is_checked_with_macos_remedies() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let agent = gw.enrol("e9905").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = ztgw_tests::laptop::compliant_macos(tmp.path());
    assert_eq!(
        not_passing(&agent_posture(&agent, &root).1),
        Vec::<(String, String)>::new()
    );
    std::fs::write(
        root.join("macos-posture/fdesetup-status.txt"),
        "FileVault is Off.\n",
    )
    .expect("write");
    let failed = not_passing(&agent_posture(&agent, &root).1);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].0, "posture.disk-encryption");
    assert!(failed[0].1.contains("FileVault"), "{}", failed[0].1);
    gw.running.shutdown("test").await;
}
