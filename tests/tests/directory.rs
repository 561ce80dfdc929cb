//! The directory decides who may telework (#17): against a real OpenLDAP (`slapd`,
//! StartTLS with its own CA). `ztgw directory sync --dry-run` shows whose telework would
//! end (disabled, deleted, in no telework group) and which devices would change role,
//! with roles taken from groups nested in the telework groups, and changes nothing;
//! `ztgw directory sync` (through the running gateway) ends that telework as `ztgw
//! employee revoke` does, refuses to end too many at once unless forced, and a stopped
//! directory changes nothing, is journaled once and makes `/health` say so. Wrong
//! passwords, wrong CAs and loose password files give clear errors. With
//! `require_directory_login`, enrolment takes the invited employee's own password only.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};

use ztgw_tests::slapd::{SERVICE_PW, SUFFIX, Slapd};
use ztgw_tests::{GatewayOptions, TestGateway};

fn people() -> String {
    let person = |uid: &str, name: &str, extra: &str| {
        format!(
            "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\nsn: {name}\n{extra}\n"
        )
    };
    let group = |cn: &str, members: &[&str]| {
        let mut g =
            format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n");
        for m in members {
            g.push_str(&format!("member: {m}\n"));
        }
        g + "\n"
    };
    let uid = |u: &str| format!("uid={u},ou=people,{SUFFIX}");
    let cn = |c: &str| format!("cn={c},ou=groups,{SUFFIX}");
    [
        person("e1001", "Amina", "userPassword: amina-directory-pw\n"),
        person("e1002", "Karim", "userPassword: karim-directory-pw\n"),
        person("e1003", "Sara", "employeeType: disabled\n"),
        person("e1005", "Youssef", ""),
        person("bad(id)*", "Hostile", ""),
        // Amina is in Telework-Finance through a nested group.
        group("Budget-Team", &[&uid("e1001")]),
        group("Telework-Finance", &[&cn("Budget-Team"), &uid("e1003")]),
        group("Telework-HR", &[&uid("e1002"), &uid("bad(id)*")]),
        // A cycle of groups is walked once.
        group("Loop-A", &[&cn("Loop-B"), &uid("e1005")]),
        group("Loop-B", &[&cn("Loop-A")]),
    ]
    .concat()
}

fn directory_section(
    slapd: &Slapd,
    password_file: &std::path::Path,
    ca: &std::path::Path,
) -> String {
    directory_section_with(slapd, password_file, ca, "")
}

fn directory_section_with(
    slapd: &Slapd,
    password_file: &std::path::Path,
    ca: &std::path::Path,
    more: &str,
) -> String {
    slapd.settings_section(
        password_file,
        ca,
        &[("finance", "Telework-Finance"), ("hr", "Telework-HR")],
        &format!("timeout = \"3s\"\n{more}"),
    )
}

fn sync(gw: &TestGateway, args: &[&str]) -> Output {
    Command::new(ztgw_tests::binary("ztgw"))
        .env("ZTGW_CONFIG", gw.config_path())
        .args(["directory", "sync"])
        .args(args)
        .output()
        .expect("ztgw directory sync")
}

fn set_directory(gw: &TestGateway, section: &str) {
    let path = gw.config_path();
    let text = std::fs::read_to_string(&path).expect("settings");
    let text = match text.find("\n[directory]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    };
    std::fs::write(&path, text + section).expect("settings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_between_the_directory_and_the_gateway() {
    let mut slapd = Slapd::start(&people());
    let gw = TestGateway::start(GatewayOptions::default()).await;
    for e in ["e1001", "e1002", "e1003", "e1004", "e1005"] {
        gw.enrol(e).await; // all with role finance
    }
    let pw = slapd.password_file();
    set_directory(&gw, &directory_section(&slapd, &pw, &slapd.ca));

    let out = sync(&gw, &["--dry-run", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drift: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(drift["employees"], 5);
    assert_eq!(
        drift["end"],
        serde_json::json!([
            { "employee": "e1003", "why": "disabled" },
            { "employee": "e1004", "why": "deleted" },
            { "employee": "e1005", "why": "no-telework-group" }
        ]),
        "{drift:#}"
    );
    let changes = drift["role_changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{drift:#}");
    assert_eq!(
        (
            changes[0]["employee"].as_str(),
            changes[0]["from"].as_str(),
            changes[0]["to"].as_str()
        ),
        (Some("e1002"), Some("finance"), Some("hr"))
    );
    assert_eq!(drift["over_threshold"], true, "3 of 5 is over 10%");
    let skipped = drift["skipped"].as_array().expect("skipped");
    assert!(
        skipped.iter().any(|s| s
            .as_str()
            .is_some_and(|s| s.contains("bad(id)*") && s.contains("not an employee id"))),
        "{skipped:?}"
    );

    // The same in words.
    let out = sync(&gw, &["--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("would end the telework of e1003: disabled in the directory"),
        "{said}"
    );
    assert!(
        said.contains("would change the role of e1002's device"),
        "{said}"
    );
    assert!(said.contains("a sync would be refused"), "{said}");

    // The directory changes: Sara is enabled again, Karim joins finance (and leaves hr).
    slapd.modify(&format!(
        "dn: uid=e1003,ou=people,{SUFFIX}\nchangetype: modify\ndelete: employeeType\n\n\
         dn: cn=Telework-HR,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=e1002,ou=people,{SUFFIX}\n\n\
         dn: cn=Telework-Finance,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: uid=e1002,ou=people,{SUFFIX}\n"
    ));
    let out = sync(&gw, &["--dry-run", "--json"]);
    let drift: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        drift["end"],
        serde_json::json!([
            { "employee": "e1004", "why": "deleted" },
            { "employee": "e1005", "why": "no-telework-group" }
        ]),
        "{drift:#}"
    );
    assert_eq!(drift["role_changes"], serde_json::json!([]));

    // Nothing was changed: every device still in service.
    let devices = gw.ctx().registry.devices().expect("devices");
    assert!(
        devices
            .iter()
            .all(|d| d.status == ztgw_api::control::DeviceStatus::Active)
    );

    // Mistakes and failures, each said plainly.
    std::fs::write(&pw, "not the password\n").expect("password");
    let out = sync(&gw, &["--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("binding as") && err.contains("was refused"),
        "{err}"
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = sync(&gw, &["--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 0600"), "{err}");
    ztgw_tests::secret_file(&pw, &format!("{SERVICE_PW}\n"));
    // Another CA than the one that signed the server's certificate.
    set_directory(
        &gw,
        &directory_section(&slapd, &pw, &gw.state_dir().join("ca.pem")),
    );
    let out = sync(&gw, &["--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not signed by the configured ca_file"),
        "{err}"
    );
    set_directory(&gw, &directory_section(&slapd, &pw, &slapd.ca));
    // Servers are tried in order: one that accepts and never answers is passed over
    // after the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let silent_url = format!("ldap://{}", silent.local_addr().expect("addr"));
    let held = std::thread::spawn(move || {
        // Accept one connection and hold it, saying nothing, until the test ends.
        silent.accept().map(|(c, _)| {
            std::thread::sleep(std::time::Duration::from_secs(6));
            drop(c);
        })
    });
    set_directory(
        &gw,
        &directory_section(&slapd, &pw, &slapd.ca).replace(
            &format!("urls = [\"{}\"]", slapd.url()),
            &format!("urls = [\"{silent_url}\", \"{}\"]", slapd.url()),
        ),
    );
    let out = sync(&gw, &["--dry-run", "--json"]);
    let drift: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(drift["server"], slapd.url(), "the second server answered");
    let _ = held.join();
    set_directory(&gw, &directory_section(&slapd, &pw, &slapd.ca));
    // The directory stopped.
    slapd.stop();
    let out = sync(&gw, &["--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no directory server answered"), "{err}");
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_ends_telework_refuses_mass_revocation_and_survives_a_stopped_directory() {
    // At enrolment everyone is allowed (the directory confirms each invitation): Karim,
    // Sara, e1004 and Youssef in finance too, Sara enabled; seven more in finance, so
    // that the three departures below are 3 of 12.
    let uid = |n: &str| format!("uid={n},ou=people,{SUFFIX}");
    let finance = format!(
        "dn: cn=Telework-Finance,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: Telework-Finance\n"
    );
    let mut ldif = people().replace("employeeType: disabled\n", "").replace(
        &finance,
        &format!(
            "{finance}member: {}\nmember: {}\nmember: {}\n",
            uid("e1002"),
            uid("e1004"),
            uid("e1005")
        ),
    );
    ldif.push_str(&format!(
        "dn: {}\nobjectClass: inetOrgPerson\nuid: e1004\ncn: Nadia\nsn: Nadia\n\n",
        uid("e1004")
    ));
    for n in 1006..=1012 {
        ldif.push_str(&format!(
            "dn: uid=e{n},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: e{n}\ncn: P{n}\nsn: P{n}\n\n"
        ));
        ldif = ldif.replace(
            &finance,
            &format!("{finance}member: uid=e{n},ou=people,{SUFFIX}\n"),
        );
    }
    let mut slapd = Slapd::start(&ldif);
    let pw = slapd.password_file();
    let section = directory_section_with(
        &slapd,
        &pw,
        &slapd.ca,
        "sync_interval = \"1h\"\nmax_revoke_percent = 40",
    );
    let gw = TestGateway::start(GatewayOptions {
        replace: vec![("\n[metrics]".into(), format!("{section}\n[metrics]"))],
        // Twelve enrolments from this one address.
        enrolment_burst: Some(20),
        ..GatewayOptions::default()
    })
    .await;
    for n in 1001..=1012 {
        gw.enrol(&format!("e{n}")).await;
    }
    // Then the directory changes: Karim moves to hr, Sara is disabled, e1004 is deleted,
    // Youssef leaves every telework group.
    slapd.modify(&format!(
        "dn: {sara}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n\n\
         dn: cn=Telework-Finance,ou=groups,{SUFFIX}\nchangetype: modify\n\
         delete: member\nmember: {karim}\n-\ndelete: member\nmember: {e1004}\n-\n\
         delete: member\nmember: {youssef}\n\n\
         dn: {e1004}\nchangetype: delete\n",
        sara = uid("e1003"),
        karim = uid("e1002"),
        e1004 = uid("e1004"),
        youssef = uid("e1005"),
    ));
    let status = |e: &str| {
        gw.ctx()
            .registry
            .devices()
            .expect("devices")
            .into_iter()
            .find(|d| d.employee.as_str() == e)
            .map(|d| d.status)
    };
    use ztgw_api::control::DeviceStatus::{Active, Revoked};

    // Through the running gateway: e1003 (disabled), e1004 (gone), e1005 (no group).
    let out = sync(&gw, &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        report["ended"],
        serde_json::json!(["e1003", "e1004", "e1005"]),
        "{report:#}"
    );
    assert_eq!(report["refused"], false);
    assert_eq!(status("e1003"), Some(Revoked));
    assert_eq!(status("e1001"), Some(Active));
    let revoked = gw.journal("employee.revoked");
    assert_eq!(revoked.len(), 3, "{revoked:?}");
    assert!(
        revoked.iter().all(|r| r["reason"] == "directory"),
        "{revoked:?}"
    );
    let synced = gw.journal("directory.synced");
    assert_eq!(synced.len(), 1, "{synced:?}");
    assert_eq!(synced[0]["ended"][0]["employee"], "e1003");
    assert!(
        synced[0]["roles_changed"][0]
            .as_str()
            .is_some_and(|r| r.contains("finance -> hr")),
        "the role change is recorded: {synced:?}"
    );
    // Karim's device has hr now, recorded as the directory's doing.
    let karim = gw
        .ctx()
        .registry
        .devices()
        .expect("devices")
        .into_iter()
        .find(|d| d.employee.as_str() == "e1002")
        .expect("karim's device");
    assert_eq!(karim.role, "hr");
    let changed = gw.journal("device.role_changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["device"], karim.id.as_str());
    // Run by hand: the operator is who ran it; the note says it is the directory's.
    assert_eq!(changed[0]["note"], "the directory places e1002 in hr");
    assert_eq!(report["roles_changed"].as_array().map(Vec::len), Some(1));
    // A second sync finds nothing more to end.
    let out = sync(&gw, &["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["ended"], serde_json::json!([]));

    // Five of the remaining nine leave the group at once: refused, nothing changed.
    let mut change = String::new();
    for n in 1006..=1010 {
        change.push_str(&format!(
            "dn: cn=Telework-Finance,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: uid=e{n},ou=people,{SUFFIX}\n\n"
        ));
    }
    slapd.modify(&change);
    let out = sync(&gw, &[]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(status("e1006"), Some(Active));
    assert_eq!(gw.journal("directory.sync_refused").len(), 1);
    // Forced by hand, once checked.
    let out = sync(&gw, &["--force", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["ended"].as_array().map(Vec::len), Some(5));
    assert_eq!(status("e1006"), Some(Revoked));

    // The directory stops: nothing is revoked, the failure is journaled once, and after
    // three failed syncs /health says so.
    slapd.stop();
    for _ in 0..3 {
        let out = sync(&gw, &[]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no directory server answered"), "{err}");
    }
    assert_eq!(gw.journal("directory.unreachable").len(), 1);
    assert_eq!(status("e1001"), Some(Active));
    let addr = gw.running.metrics_addr;
    let (code, body) = tokio::task::spawn_blocking(move || ztgw_tests::http_get(addr, "/health"))
        .await
        .expect("health");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("the directory has not answered 3 syncs"),
        "{body}"
    );
    let (_, metrics) = tokio::task::spawn_blocking(move || ztgw_tests::http_get(addr, "/metrics"))
        .await
        .expect("metrics");
    assert!(
        metrics.contains("ztgw_directory_failed_syncs 3"),
        "{metrics}"
    );
    gw.running.shutdown("test").await;
}

/// With a directory, an invitation is only for someone it places in a telework group,
/// with an enabled account, and for a role it gives them (taken from it when `--role` is
/// omitted); a directory that cannot be read refuses invitations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_confirmed_by_the_directory() {
    let mut slapd = Slapd::start(&people());
    let pw = slapd.password_file();
    let section = directory_section_with(&slapd, &pw, &slapd.ca, "sync_interval = \"1h\"");
    let gw = TestGateway::start(GatewayOptions {
        replace: vec![("\n[metrics]".into(), format!("{section}\n[metrics]"))],
        ..GatewayOptions::default()
    })
    .await;
    let invite = |employee: &str, role: Option<&str>| {
        let mut c = Command::new(ztgw_tests::binary("ztgw"));
        c.env("ZTGW_CONFIG", gw.config_path()).args([
            "invite",
            "--employee",
            employee,
            "--approved-by",
            "Head of IT",
            "--reference",
            "DEC-1",
            "--json",
        ]);
        if let Some(r) = role {
            c.args(["--role", r]);
        }
        c.output().expect("ztgw invite")
    };
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    // The role from the directory (through a nested group).
    let out = invite("e1001", None);
    assert!(out.status.success(), "{}", err(&out));
    let issued: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(issued["role"], "finance", "{issued}");
    // A role the directory gives: accepted; another: refused, saying which.
    assert!(invite("e1002", Some("hr")).status.success());
    let out = invite("e1002", Some("finance"));
    assert_eq!(out.status.code(), Some(5));
    assert!(
        err(&out).contains("places e1002 in hr, not finance"),
        "{}",
        err(&out)
    );
    for (who, said) in [
        ("e1003", "disabled in the directory"),
        ("e1004", "not in the directory"),
        ("e1005", "in no telework group"),
    ] {
        let out = invite(who, Some("finance"));
        assert_eq!(out.status.code(), Some(5), "{who}: {}", err(&out));
        assert!(err(&out).contains(said), "{who}: {}", err(&out));
    }
    // The directory stopped: no invitation it cannot confirm.
    slapd.stop();
    let out = invite("e1001", Some("finance"));
    assert!(!out.status.success());
    assert!(err(&out).contains("cannot be confirmed"), "{}", err(&out));
    assert_eq!(gw.journal("invitation.created").len(), 2);
    gw.running.shutdown("test").await;
}

/// `require_directory_login = true`: enrolment needs, besides the invitation, the invited
/// employee's own directory password (checked by a bind as their entry). No password, a
/// wrong one, an empty one (LDAP's unauthenticated bind) and another employee's right
/// one are refused and leave the invitation usable; a directory that cannot be asked
/// says so; the right password enrols; an account disabled after its invitation cannot
/// log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_takes_the_invited_employees_directory_password() {
    let mut slapd = Slapd::start(&people());
    let pw = slapd.password_file();
    let section = directory_section_with(
        &slapd,
        &pw,
        &slapd.ca,
        "sync_interval = \"1h\"\nrequire_directory_login = true",
    );
    let gw = TestGateway::start(GatewayOptions {
        replace: vec![("\n[metrics]".into(), format!("{section}\n[metrics]"))],
        enrolment_burst: Some(20),
        ..GatewayOptions::default()
    })
    .await;
    let invitation = gw.invite("e1001");
    let refused = |r: Result<ztgw_tests::TestAgent, ztgw_agent::AgentError>| match r {
        Ok(_) => panic!("enrolled"),
        Err(e) => (e.code().map(str::to_owned), e.to_string()),
    };
    let (code, said) = refused(ztgw_tests::TestAgent::enrol(&invitation).await);
    assert_eq!(code.as_deref(), Some("directory_login_required"), "{said}");
    assert!(said.contains("--directory-login"), "{said}");
    for wrong in ["not-her-password", "", "karim-directory-pw"] {
        let (code, said) =
            refused(ztgw_tests::TestAgent::enrol_with_password(&invitation, Some(wrong)).await);
        assert_eq!(
            code.as_deref(),
            Some("directory_login_failed"),
            "{wrong:?}: {said}"
        );
    }
    // The directory stopped: said as such, and the invitation is still good.
    slapd.stop();
    let (code, said) = refused(
        ztgw_tests::TestAgent::enrol_with_password(&invitation, Some("amina-directory-pw")).await,
    );
    assert_eq!(code.as_deref(), Some("directory_unavailable"), "{said}");
    slapd.run(None);
    let agent = ztgw_tests::TestAgent::enrol_with_password(&invitation, Some("amina-directory-pw"))
        .await
        .expect("the right password enrols");
    assert_eq!(agent.record.employee_id.as_str(), "e1001");
    assert_eq!(gw.journal("device.enrolled").len(), 1);

    // Invited while enabled, disabled before enrolling: even the right password is
    // refused.
    let karim = gw.invite_as("e1002", "hr");
    slapd.modify(&format!(
        "dn: uid=e1002,ou=people,{SUFFIX}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n"
    ));
    let (code, said) = refused(
        ztgw_tests::TestAgent::enrol_with_password(&karim, Some("karim-directory-pw")).await,
    );
    assert_eq!(code.as_deref(), Some("directory_login_failed"), "{said}");
    gw.running.shutdown("test").await;
}
