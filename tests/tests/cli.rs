//! The `ztgw` and `ztgw-agent` binaries as an operator and an employee use them.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ztgw_tests::{binary, free_port};

/// A `ztgw serve` process, killed (by its pid) when dropped, also on test failure.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ztgw(config: &Path, args: &[&str]) -> Output {
    Command::new(binary("ztgw"))
        .env("ZTGW_CONFIG", config)
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .expect("run ztgw")
}

fn agent(state: &Path, args: &[&str]) -> Output {
    Command::new(binary("ztgw-agent"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run ztgw-agent")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn an_operator_and_an_employee_with_the_real_binaries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("gw");
    let config = dir.join("gateway.toml");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let dir_s = dir.to_str().expect("utf-8 path");

    let out = ztgw(
        &config,
        &[
            "init",
            "--dir",
            dir_s,
            "--name",
            "127.0.0.1",
            "--endpoint",
            "127.0.0.1:51820",
            "--control-listen",
            &listen,
        ],
    );
    let stdout = ok(&out);
    assert!(stdout.contains("CA fingerprint"), "{stdout}");
    // A second init never overwrites.
    let again = ztgw(
        &config,
        &[
            "init",
            "--dir",
            dir_s,
            "--name",
            "127.0.0.1",
            "--endpoint",
            "127.0.0.1:51820",
        ],
    );
    assert_eq!(again.status.code(), Some(5), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("never overwrites"),
        "{}",
        text(&again.stderr)
    );

    // Parallel tests: this gateway's metrics on a port of its own, and no data plane in
    // the test host's namespace (the namespace tests cover it).
    let settings = std::fs::read_to_string(&config).expect("settings");
    std::fs::write(
        &config,
        settings
            .replace("127.0.0.1:9469", "127.0.0.1:0")
            .replace("\nenabled = true\n", "\nenabled = false\n"),
    )
    .expect("settings");

    // Offline (no gateway running): an unknown role is refused with the roles that exist.
    let bad = ztgw(
        &config,
        &[
            "invite",
            "--employee",
            "e1029",
            "--role",
            "accounting",
            "--approved-by",
            "Head of IT",
            "--reference",
            "DEC-1",
        ],
    );
    assert_eq!(bad.status.code(), Some(5));
    let stderr = text(&bad.stderr);
    assert!(
        stderr.contains("role \"accounting\" is not defined") && stderr.contains("finance"),
        "{stderr}"
    );
    let invite = ok(&ztgw(
        &config,
        &[
            "invite",
            "--employee",
            "e1029",
            "--role",
            "finance",
            "--approved-by",
            "Head of IT",
            "--reference",
            "DEC-1",
            "--json",
        ],
    ));
    let invitation: serde_json::Value = serde_json::from_str(&invite).expect("json");
    let invitation = invitation["invitation"]
        .as_str()
        .expect("invitation string")
        .to_owned();

    // The gateway runs; commands now go through its admin socket.
    let server = Server(
        Command::new(binary("ztgw"))
            .env("ZTGW_CONFIG", &config)
            .env("RUST_LOG", "warn")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ztgw serve"),
    );
    let socket = dir.join("admin.sock");
    let started = Instant::now();
    while !(socket.exists() && std::net::TcpStream::connect(&listen).is_ok()) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "ztgw serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let state = tmp.path().join("agent");
    let enrolled = ok(&agent(
        &state,
        &["enroll", &invitation, "--ownership", "administration"],
    ));
    assert!(enrolled.contains("enrolled as dev-"), "{enrolled}");
    let reuse = agent(&tmp.path().join("agent2"), &["enroll", &invitation]);
    assert_eq!(reuse.status.code(), Some(1));
    assert!(
        text(&reuse.stderr).contains("already been used"),
        "{}",
        text(&reuse.stderr)
    );

    let status: serde_json::Value =
        serde_json::from_str(&ok(&agent(&state, &["status", "--json"]))).expect("json");
    assert_eq!(status["status"], "active");
    let device = status["device_id"].as_str().expect("device id").to_owned();

    let list: serde_json::Value =
        serde_json::from_str(&ok(&ztgw(&config, &["device", "list", "--json"]))).expect("json");
    assert_eq!(list["devices"][0]["id"], device.as_str());
    assert_eq!(list["devices"][0]["ownership"], "administration");

    let revoked = ok(&ztgw(
        &config,
        &[
            "--operator",
            "amina",
            "device",
            "revoke",
            &device,
            "--reason",
            "lost",
            "--note",
            "reported by phone",
        ],
    ));
    assert!(revoked.contains("revoked"), "{revoked}");
    let refused = agent(&state, &["status"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("revoked"),
        "{}",
        text(&refused.stderr)
    );
    let show = ok(&ztgw(&config, &["device", "show", &device]));
    assert!(show.contains("by amina (uid "), "{show}");
    assert!(show.contains("lost (reported by phone)"), "{show}");

    let missing = ztgw(&config, &["device", "show", "dev-doesnotexist"]);
    assert_eq!(missing.status.code(), Some(4), "{}", text(&missing.stderr));
    let twice = ztgw(&config, &["device", "revoke", &device, "--reason", "lost"]);
    assert_eq!(twice.status.code(), Some(5), "{}", text(&twice.stderr));

    // SIGHUP re-reads the policy; `ztgw policy reload` does it through the admin socket.
    let policy = dir.join("policy.toml");
    let original = std::fs::read_to_string(&policy).expect("policy");
    std::fs::write(
        &policy,
        format!("{original}\n[roles.audit]\nresources = [\"intranet\"]\nschedule = \"office-hours\"\nposture = \"standard\"\n"),
    )
    .expect("write policy");
    let hup = Command::new("kill")
        .arg("-HUP")
        .arg(server.0.id().to_string())
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    let invite_audit = || {
        ztgw(
            &config,
            &[
                "invite",
                "--employee",
                "e77",
                "--role",
                "audit",
                "--approved-by",
                "Head of IT",
                "--reference",
                "DEC-2",
            ],
        )
    };
    let started = Instant::now();
    while !invite_audit().status.success() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGHUP did not load the new policy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&policy, "[roles.audit]\nresources = [\"nothing\"]\n").expect("write policy");
    let refused = ztgw(&config, &["policy", "reload"]);
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("the one in force stays"),
        "{}",
        text(&refused.stderr)
    );
    ok(&invite_audit());

    drop(server);
    let offline = ztgw(&config, &["policy", "reload"]);
    assert_eq!(offline.status.code(), Some(1));
    assert!(
        text(&offline.stderr).contains("no gateway is running"),
        "{}",
        text(&offline.stderr)
    );
    let bad_config = ztgw(&tmp.path().join("nowhere.toml"), &["device", "list"]);
    assert_eq!(bad_config.status.code(), Some(3));
}

/// `ztgw init` with the configuration, the state and the journal apart (the packaged
/// layout; the owner hand-over needs root and a service user, and is exercised by the
/// package test): each file where it belongs, the commands work from the settings alone,
/// and layouts that would let the service write its configuration are refused.
#[test]
fn init_keeps_the_configuration_apart_from_the_state() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (etc, lib, log) = (
        tmp.path().join("etc"),
        tmp.path().join("lib"),
        tmp.path().join("log/journal"),
    );
    std::fs::create_dir(&etc).expect("mkdir");
    std::fs::set_permissions(&etc, std::os::unix::fs::PermissionsExt::from_mode(0o750))
        .expect("chmod");
    let config = etc.join("gateway.toml");
    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let init = |state: &Path, journal: &Path| {
        ztgw(
            &config,
            &[
                "init",
                "--dir",
                &path(&etc),
                "--state-dir",
                &path(state),
                "--journal-dir",
                &path(journal),
                "--name",
                "127.0.0.1",
                "--endpoint",
                "127.0.0.1:51820",
            ],
        )
    };
    // The state inside the configuration would let the service write its settings.
    let nested = init(&etc.join("state"), &log);
    assert_eq!(nested.status.code(), Some(2), "{}", text(&nested.stderr));
    assert!(
        text(&nested.stderr).contains("must not contain"),
        "{}",
        text(&nested.stderr)
    );
    assert!(!etc.join("gateway.toml").exists(), "nothing written");

    let out = ok(&init(&lib, &log));
    assert!(
        out.contains(&format!("state:                {}", lib.display())),
        "{out}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&etc)
        .expect("etc")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["gateway.toml", "policy.toml"]);
    for file in [
        "ca.key",
        "server.key",
        "wireguard.key",
        "registry.db",
        "crl.pem",
        "journal.key",
    ] {
        assert!(lib.join(file).exists(), "{file} in the state directory");
    }
    assert!(
        !lib.join("journal").exists(),
        "the journal is in its own directory"
    );
    assert!(std::fs::read_dir(&log).expect("journal").count() > 0);
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).expect("meta").permissions())
            & 0o777
    };
    assert_eq!(
        mode(&etc),
        0o750,
        "an existing configuration directory keeps its mode"
    );
    assert_eq!(mode(&lib), 0o700);
    assert_eq!(mode(&lib.join("ca.key")), 0o600);
    ok(&ztgw(
        &config,
        &["policy", "check", &path(&etc.join("policy.toml"))],
    ));
    ok(&ztgw(&config, &["device", "list"]));
    let verify = ok(&ztgw(&config, &["journal", "verify"]));
    assert!(verify.contains("journal intact"), "{verify}");
    // A second init into the same directories never overwrites.
    let again = init(&lib, &log);
    assert_eq!(again.status.code(), Some(5), "{}", text(&again.stderr));
}

#[test]
fn configuration_mistakes_name_file_line_and_column() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("gw");
    let config = dir.join("gateway.toml");
    let dir_s = dir.to_str().expect("utf-8 path");
    ok(&ztgw(
        &config,
        &[
            "init",
            "--dir",
            dir_s,
            "--name",
            "gw.test",
            "--endpoint",
            "gw.test:51820",
        ],
    ));
    let original = std::fs::read_to_string(&config).expect("settings");
    let broken = original.replace(
        "request_timeout = \"30s\"",
        "request_timeout = \"30 seconds\"",
    );
    std::fs::write(&config, &broken).expect("write");
    let line = broken
        .lines()
        .position(|l| l.starts_with("request_timeout"))
        .expect("line")
        + 1;
    let out = ztgw(&config, &["device", "list"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:{line}:19:", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("unknown unit"), "{stderr}");
}

#[test]
fn the_security_units_policy_tools() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/policy.toml");
    let example_s = example.to_str().expect("utf-8 path");
    let nowhere = Path::new("/nonexistent/gateway.toml");

    let out = ok(&ztgw(nowhere, &["policy", "check", example_s]));
    assert!(
        out.contains(
            "valid: 3 roles, 4 resources, 2 schedules, 2 posture profiles, 7 rules, 7 tests"
        ),
        "{out}"
    );

    let out = ok(&ztgw(nowhere, &["policy", "test", example_s]));
    assert_eq!(out.lines().last(), Some("7 passed, 0 failed"), "{out}");

    // What the finance role may do towards its database at a given instant.
    let explain_at = |at: &str| {
        ok(&ztgw(
            nowhere,
            &[
                "policy",
                "explain",
                example_s,
                "--role",
                "finance",
                "--to",
                "10.20.1.5:5432/tcp",
                "--at",
                at,
            ],
        ))
    };
    // Casablanca's offset in 2027 as the system's tzdata has it (releases differ).
    let tz = jiff::tz::db().get("Africa/Casablanca").expect("tz");
    let offset = |civil: &str| {
        let c: jiff::civil::DateTime = civil.parse().expect("civil");
        let t = tz
            .to_ambiguous_timestamp(c)
            .compatible()
            .expect("in the zone");
        let secs = tz.to_offset(t).seconds();
        (
            format!(
                "{}{:02}",
                if secs < 0 { '-' } else { '+' },
                secs.abs() / 3600
            ),
            t.to_string(),
        )
    };
    let (off, at) = offset("2027-04-06T10:00:00");
    let out = explain_at(&at);
    assert!(out.contains("decision: allow"), "{out}");
    assert!(
        out.contains("rule:     role finance → resource finance-db (10.20.1.0/24: tcp/5432)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "window tue 2027-04-06 08:30 {off} until tue 2027-04-06 16:30 {off}"
        )),
        "{out}"
    );
    let (off, at) = offset("2027-04-10T10:00:00");
    let out = explain_at(&at);
    assert!(out.contains("decision: deny (outside-schedule)"), "{out}");
    assert!(
        out.contains(&format!("next window starts mon 2027-04-12 08:30 {off}")),
        "{out}"
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let changed = tmp.path().join("new.toml");
    let text_in = std::fs::read_to_string(&example).expect("example");
    std::fs::write(
        &changed,
        text_in.replace(
            "resources = [\"intranet\", \"dns\"]",
            "resources = [\"intranet\", \"dns\", \"finance-db\"]",
        ),
    )
    .expect("write");
    let out = ok(&ztgw(
        nowhere,
        &["policy", "diff", example_s, changed.to_str().expect("path")],
    ));
    assert_eq!(
        out.trim(),
        "role hr gains resource finance-db (10.20.1.0/24: tcp/5432)"
    );
    let out = ok(&ztgw(nowhere, &["policy", "diff", example_s, example_s]));
    assert_eq!(out.trim(), "no change in access");
    // Dates in words: a holiday added and one taken out.
    let holidays = tmp.path().join("holidays.toml");
    std::fs::write(
        &holidays,
        text_in.replace(
            "except = [\"2027-01-01\", \"2027-01-11\", \"2027-05-01\"]",
            "except = [\"2027-01-01\", \"2027-05-01\", \"2027-12-31\"]",
        ),
    )
    .expect("write");
    let out = ok(&ztgw(
        nowhere,
        &[
            "policy",
            "diff",
            example_s,
            holidays.to_str().expect("path"),
        ],
    ));
    assert_eq!(
        out.trim(),
        "schedule office-hours changes: no telework on 2027-12-31; telework again on 2027-01-11 (affects roles finance, quarantine)"
    );

    // The change breaks a test: `policy test` shows why, and fails.
    let out = ztgw(
        nowhere,
        &["policy", "test", changed.to_str().expect("path")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("6 passed, 1 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.contains("why:      role hr may reach resource finance-db"),
        "{stdout}"
    );
    // Each case's instant as the policy writes it, offset included.
    assert!(
        stdout.contains(" at 2027-04-06T10:00:00+01:00: expected"),
        "{stdout}"
    );
    assert_eq!(text(&out.stderr).trim(), "ztgw: 1 policy test(s) failed");

    let broken = tmp.path().join("broken.toml");
    std::fs::write(
        &broken,
        text_in.replace("hosts = [\"10.20.1.0/24\"]", "hosts = [\"10.20.1.5/24\"]"),
    )
    .expect("write");
    let out = ztgw(
        nowhere,
        &["policy", "check", broken.to_str().expect("path")],
    );
    assert_eq!(out.status.code(), Some(3));
    let line = text_in
        .lines()
        .position(|l| l == "hosts = [\"10.20.1.0/24\"]")
        .expect("line")
        + 1;
    assert!(
        text(&out.stderr).contains(&format!(
            "{}:{line}:10: \"10.20.1.5/24\": host bits are set below /24",
            broken.display()
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completions_and_manual_pages_come_from_the_command_definitions() {
    let nowhere = Path::new("/nonexistent/gateway.toml");
    let bash = ok(&ztgw(nowhere, &["completions", "bash"]));
    assert!(
        bash.contains("_ztgw()") && bash.contains("revoke") && bash.contains("--passphrase-file"),
        "bash completion"
    );
    let zsh = ok(&ztgw(nowhere, &["completions", "zsh"]));
    assert!(
        zsh.starts_with("#compdef ztgw"),
        "{}",
        &zsh[..zsh.len().min(80)]
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = ok(&ztgw(
        nowhere,
        &["man", "--out", tmp.path().to_str().expect("path")],
    ));
    assert!(out.contains("manual pages written"), "{out}");
    let page = std::fs::read_to_string(tmp.path().join("ztgw-device-revoke.1"))
        .expect("page for ztgw device revoke");
    assert!(
        page.contains(".TH ztgw-device-revoke 1") && page.contains("stolen"),
        "{page}"
    );
    assert!(
        tmp.path().join("ztgw.1").exists() && tmp.path().join("ztgw-journal-verify.1").exists()
    );
}

/// `policy explain` on a schedule open at all times says so (a window "from one week to
/// the next" described the bound of the computation, not the schedule).
#[test]
fn explain_says_when_a_schedule_is_always_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("policy.toml");
    std::fs::write(
        &file,
        ztgw_tests::site::lab_policy(ztgw_tests::site::ALWAYS),
    )
    .expect("write");
    let out = ok(&ztgw(
        &tmp.path().join("no-gateway.toml"),
        &[
            "policy",
            "explain",
            file.to_str().expect("path"),
            "--role",
            "finance",
            "--to",
            "10.20.1.5:5432/tcp",
        ],
    ));
    assert!(
        out.contains("schedule: office (UTC): open at all times (every day, all day)"),
        "{out}"
    );
}
