//! Active Directory decides who may telework (#17), against a real Samba AD DC
//! (`samba-ad-dc`, provisioned by the test, LDAPS with a CA of the test's own) running in
//! the gateway's namespace, with `ztgw serve` and laptops on the real wireguard-go:
//!
//! - invitations take the role from the directory, through a nested group, and refuse
//!   someone in no telework group or not in the directory;
//! - `require_directory_login`: enrolment takes the employee's own password only;
//! - a wrong bind password and a CA that did not sign the DC's certificate are said
//!   plainly;
//! - one sync: a disabled account's live tunnel is cut before `ztgw directory sync`
//!   returns, a deleted account's telework ends, a user moved to another role's group
//!   gets that role;
//! - the DC stopped: the sync fails, nobody is revoked, the failure is counted.

use std::process::Output;

use ztgw_tests::lab::DB;
use ztgw_tests::samba::SambaDc;
use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};

const KARIM: &str = "Karim-Passw0rd!1";
const SARA: &str = "Sara-Passw0rd!1";
const OMAR: &str = "Omar-Passw0rd!1";

/// `ztgw ARGS` run in the gateway's namespace (where the DC answers) with the settings
/// in `config`.
fn ztgw_in_gateway(site: &Site, config: &std::path::Path, args: &[&str]) -> Output {
    site.gw
        .command(ztgw_tests::binary("ztgw"))
        .env("ZTGW_CONFIG", config)
        .args(args)
        .output()
        .expect("run ztgw")
}

fn invite(site: &Site, employee: &str) -> Output {
    site.ztgw(&[
        "invite",
        "--employee",
        employee,
        "--approved-by",
        "Head of IT",
        "--reference",
        "DEC-AD",
        "--json",
    ])
}

#[test]
fn active_directory_decides_roles_logins_and_the_end_of_telework() {
    // Karim is in Telework-Finance through Finance-Staff (nested); Nadia is in no
    // telework group.
    let mut dc = SambaDc::provision(&format!(
        "group Telework-Finance\ngroup Telework-HR\ngroup Finance-Staff\n\
         add Telework-Finance Finance-Staff\n\
         user karim {KARIM}\nadd Finance-Staff karim\n\
         user sara {SARA}\nadd Telework-HR sara\n\
         user omar {OMAR}\nadd Telework-Finance omar\n\
         user nadia Nadia-Passw0rd!1\n"
    ));
    let pw = dc.password_file(None);
    let section = dc.settings_section(
        &pw,
        &dc.ca,
        &[("finance", "Telework-Finance"), ("hr", "Telework-HR")],
        "sync_interval = \"1h\"\nmax_revoke_percent = 100\nrequire_directory_login = true",
    );
    let mut site = Site::new_with(&lab_policy(ALWAYS), |settings| settings + &section);
    dc.run(&site.gw);

    // Invitations: the role from the directory, through the nested group.
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let out = invite(&site, "karim");
    assert!(out.status.success(), "{}", err(&out));
    let issued: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(issued["role"], "finance", "{issued}");
    let karim_invitation = issued["invitation"]
        .as_str()
        .expect("invitation")
        .to_owned();
    for (who, said) in [
        ("nadia", "in no telework group"),
        ("ghost", "not in the directory"),
    ] {
        let out = invite(&site, who);
        assert_eq!(out.status.code(), Some(5), "{who}: {}", err(&out));
        assert!(err(&out).contains(said), "{who}: {}", err(&out));
    }

    // Enrolment takes Karim's own directory password, and only that.
    let refused = site
        .enrol("karim", &karim_invitation, Posture::Compliant, &[], None)
        .expect_err("refused without a password");
    assert!(refused.contains("--directory-login"), "{refused}");
    for wrong in ["Wrong-Passw0rd!1", SARA] {
        let refused = site
            .enrol(
                "karim",
                &karim_invitation,
                Posture::Compliant,
                &["--directory-login"],
                Some(&format!("{wrong}\n")),
            )
            .expect_err("refused with a wrong password");
        assert!(
            refused.contains("The directory did not accept this password"),
            "{refused}"
        );
    }
    let karim = site
        .enrol(
            "karim",
            &karim_invitation,
            Posture::Compliant,
            &["--directory-login"],
            Some(&format!("{KARIM}\n")),
        )
        .expect("Karim's own password enrols");
    let mut enrol = |employee: &str, role: &str, password: &str| {
        let invitation = site.invitation(employee, role);
        site.enrol(
            employee,
            &invitation,
            Posture::Compliant,
            &["--directory-login"],
            Some(&format!("{password}\n")),
        )
        .unwrap_or_else(|e| panic!("{employee}: {e}"))
    };
    let sara = enrol("sara", "hr", SARA);
    let omar = enrol("omar", "finance", OMAR);

    // Wrong bind password, wrong CA: said plainly (a dry run in the gateway's namespace
    // with a copy of its settings).
    let settings = std::fs::read_to_string(&site.config).expect("settings");
    let wrong_pw = dc.password_file(Some("Not-The-Passw0rd!"));
    let copy = site.config.with_file_name("gateway-wrong.toml");
    std::fs::write(
        &copy,
        settings.replace(&pw.display().to_string(), &wrong_pw.display().to_string()),
    )
    .expect("copy");
    let out = ztgw_in_gateway(&site, &copy, &["directory", "sync", "--dry-run"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("binding as CN=svc-ztgw,CN=Users,DC=min,DC=test was refused"),
        "{}",
        err(&out)
    );
    let other_ca = site.config.with_file_name("ca.pem");
    std::fs::write(
        &copy,
        settings.replace(
            &dc.ca.display().to_string(),
            &other_ca.display().to_string(),
        ),
    )
    .expect("copy");
    let out = ztgw_in_gateway(&site, &copy, &["directory", "sync", "--dry-run"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("not signed by the configured ca_file"),
        "{}",
        err(&out)
    );
    std::fs::remove_file(&copy).expect("remove the copy");
    // The right settings: nothing to change yet.
    let out = ztgw_in_gateway(&site, &site.config, &["directory", "sync", "--dry-run"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        err(&out)
    );

    // Karim works.
    let _agent = karim.connect().expect("connected");
    assert!(karim.reaches_dns(), "the tunnel works");
    assert!(
        karim.probe(&["tcp", &format!("{DB}:5432")]),
        "finance's database"
    );

    // Karim disabled, Omar deleted, Sara moved from hr to finance: one sync.
    dc.apply("disable karim\ndelete omar\nremove Telework-HR sara\nadd Telework-Finance sara\n");
    let said = site.ztgw_ok(&["directory", "sync"]);
    assert!(!karim.reaches_dns(), "Karim's tunnel was cut by the sync");
    for line in [
        "ended the telework of karim: disabled in the directory".to_owned(),
        "ended the telework of omar: no longer in the directory".to_owned(),
        format!(
            "changed the role of sara's device {}: hr → finance",
            sara.device
        ),
    ] {
        assert!(said.contains(&line), "{line}: {said}");
    }
    let revoked = site.journal("employee.revoked");
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert!(
        revoked.iter().all(|r| r["reason"] == "directory"),
        "{revoked:?}"
    );
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "employee-revoked");
    let changed = site.journal("device.role_changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["device"], sara.device.as_str());
    assert_eq!(changed[0]["to"], "finance");
    let status = |device: &str| {
        let shown: serde_json::Value =
            serde_json::from_str(&site.ztgw_ok(&["device", "show", device, "--json"]))
                .expect("device JSON");
        shown
            .pointer("/device/status")
            .or_else(|| shown.get("status"))
            .and_then(|s| s.as_str())
            .map(str::to_owned)
    };
    assert_eq!(status(&omar.device).as_deref(), Some("revoked"));

    // The DC stopped: the sync fails, nobody is revoked, the failure is counted.
    dc.stop();
    let out = site.ztgw(&["directory", "sync"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("no directory server answered"),
        "{}",
        err(&out)
    );
    assert_eq!(status(&sara.device).as_deref(), Some("active"));
    assert_eq!(site.journal("employee.revoked").len(), 2);
    assert_eq!(
        Site::metric(&site.metrics(), "ztgw_directory_failed_syncs"),
        Some(1.0)
    );
    site.assert_sessions_match_peers();
}
