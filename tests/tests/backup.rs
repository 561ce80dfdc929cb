//! Back up a running gateway, restore it into new directories (configuration, state and
//! journal apart, as the package lays them out): enrolled devices connect there, and the
//! journal still verifies (G16).

use std::sync::Arc;

use ztgw_agent::client::ControlClient;
use ztgw_api::control::{DeviceView, RedactedString, path};
use ztgw_config::Settings;
use ztgw_gateway::admin::{AdminRequest, AdminResponse};
use ztgw_gateway::backup::{self, BackupError};
use ztgw_gateway::clock::{SystemClock, SystemEntropy};
use ztgw_gateway::context::Context;
use ztgw_gateway::daemon::RunningGateway;
use ztgw_gateway::journal::PublicKey;
use ztgw_gateway::journal::query::{self, Filter};
use ztgw_gateway::journal::verify::verify_dir;
use ztgw_gateway::layout::{Layout, LayoutError};
use ztgw_pki::{Secret, tls};
use ztgw_tests::{GatewayOptions, TestGateway, free_port};

const PASS: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_gateway_admits_its_devices_and_its_journal_verifies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("gateway.zbak");
    // A backup holds an SQLite registry's file (a PostgreSQL one is backed up with
    // pg_dump; `ztgw backup` refusing it is tested in registry_postgres.rs).
    let gw = TestGateway::start(GatewayOptions {
        sqlite: true,
        ..GatewayOptions::default()
    })
    .await;
    let agent = gw.enrol("e6601").await;
    let weak = gw
        .admin(AdminRequest::Backup {
            destination: "weak.zbak".into(),
            passphrase: RedactedString::new("short".into()),
        })
        .expect_err("weak passphrase");
    assert!(weak.message.contains("at least 12"), "{}", weak.message);
    // The running gateway streams the archive back; the operator's `ztgw backup` writes
    // it (the admin protocol takes no path to write to).
    let out = std::process::Command::new(ztgw_tests::binary("ztgw"))
        .env("ZTGW_CONFIG", gw.config_path())
        .args(["backup", "--to"])
        .arg(&file)
        .args(["--passphrase-file"])
        .arg({
            let p = tmp.path().join("pass");
            std::fs::write(&p, PASS).expect("passphrase");
            p
        })
        .output()
        .expect("ztgw backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = gw
        .admin(AdminRequest::Backup {
            destination: "in memory".into(),
            passphrase: RedactedString::new(PASS.into()),
        })
        .expect("backup");
    let AdminResponse::Backup { bytes, archive, .. } = answer else {
        panic!("a backup: {answer:?}");
    };
    assert_eq!(
        archive.0.len() as u64,
        bytes,
        "every announced byte arrived"
    );
    assert!(bytes > 1000);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("backup file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let bytes = std::fs::read(&file).expect("read");
    assert!(
        !bytes.windows(10).any(|w| w == b"BEGIN PRIV"),
        "the backup is encrypted"
    );
    gw.running.shutdown("test").await;

    // Wrong passphrase, damaged file, non-empty target: clear errors.
    let target = Layout::new(
        &tmp.path().join("etc"),
        Some(&tmp.path().join("lib")),
        Some(&tmp.path().join("log/journal")),
        None,
    )
    .expect("layout");
    let wrong = backup::restore(&file, &Secret::new("not the passphrase".into()), &target);
    assert!(matches!(wrong, Err(BackupError::Decrypt)), "{wrong:?}");
    let damaged = tmp.path().join("damaged.zbak");
    let mut d = bytes.clone();
    let last = d.len() - 1;
    d[last] ^= 1;
    std::fs::write(&damaged, &d).expect("write");
    assert!(matches!(
        backup::restore(&damaged, &Secret::new(PASS.into()), &target),
        Err(BackupError::Decrypt)
    ));
    assert!(matches!(
        backup::restore(
            &tmp.path().join("nothing"),
            &Secret::new(PASS.into()),
            &target
        ),
        Err(BackupError::Io { .. })
    ));

    assert!(
        !tmp.path().join("etc").exists(),
        "nothing is written before the archive is read"
    );
    let summary = backup::restore(&file, &Secret::new(PASS.into()), &target).expect("restore");
    assert!(summary.files >= 13, "{summary:?}");
    assert!(matches!(
        backup::restore(&file, &Secret::new(PASS.into()), &target),
        Err(BackupError::Layout(LayoutError::NotEmpty(_)))
    ));
    let names = |dir: &std::path::Path| {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&target.config_dir),
        ["gateway.toml", "policy.toml"],
        "the configuration apart from the state"
    );
    let state = names(&target.state_dir);
    for file in ["ca.key", "registry.db", "crl.pem", "journal.key"] {
        assert!(state.contains(&file.to_owned()), "{file} in {state:?}");
    }
    assert!(!state.iter().any(|n| n.ends_with(".toml")), "{state:?}");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(target.state_dir.join("ca.key"))
            .expect("ca.key")
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    let settings = Settings::load(&target.settings()).expect("the restored settings load");
    assert_eq!(settings.gateway.state_dir, target.state_dir);
    assert_eq!(settings.journal.dir, target.journal_dir);
    assert_eq!(settings.policy.file, target.policy());

    // The restored journal verifies and records the backup.
    let journal_key = PublicKey::parse(
        &std::fs::read_to_string(target.state_dir.join("journal.pub")).expect("pub"),
    )
    .expect("key");
    verify_dir(&target.journal_dir, Some(&journal_key), None)
        .expect("the restored journal verifies");
    let kinds: Vec<String> = query::read(&target.journal_dir, &Filter::default())
        .expect("read")
        .iter()
        .map(|r| r.event["type"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(kinds.iter().any(|k| k == "backup.created"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "device.enrolled"), "{kinds:?}");

    // Start the restored gateway on a new port; the device's certificate works there.
    let config = target.settings();
    let port = free_port();
    let text = std::fs::read_to_string(&config)
        .expect("settings")
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some(("listen", v)) if v.contains(":9469") || v.ends_with(":0\"") => {
                "listen = \"127.0.0.1:0\"".to_owned()
            }
            Some(("listen", _)) => format!("listen = \"127.0.0.1:{port}\""),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).expect("settings");
    let ctx = Context::open(
        Settings::load(&config).expect("settings"),
        Arc::new(SystemClock),
        Arc::new(SystemEntropy::new()),
    )
    .expect("the restored state opens");
    let restored = RunningGateway::start(ctx)
        .await
        .expect("the restored gateway starts");
    let state = agent.state();
    let client_config = tls::mtls_client_config(
        &std::fs::read_to_string(state.ca()).expect("ca"),
        &std::fs::read_to_string(state.certificate()).expect("cert"),
        &Secret::new(std::fs::read_to_string(state.tls_key()).expect("key")),
    )
    .expect("client config");
    let view: DeviceView = ControlClient::new(restored.control_addr.to_string(), client_config)
        .get(path::DEVICE)
        .await
        .expect("the enrolled device connects to the restored gateway");
    assert_eq!(view.device_id, agent.device_id());
    restored.shutdown("test").await;

    // The same archive into one directory (the layout of a gateway run by hand) opens too.
    let single = Layout::single(&tmp.path().join("single"));
    backup::restore(&file, &Secret::new(PASS.into()), &single).expect("restore");
    let settings = Settings::load(&single.settings()).expect("settings");
    assert_eq!(settings.journal.dir, single.journal_dir);
    drop(
        Context::open(
            settings,
            Arc::new(SystemClock),
            Arc::new(SystemEntropy::new()),
        )
        .expect("the single-directory restore opens"),
    );
}
