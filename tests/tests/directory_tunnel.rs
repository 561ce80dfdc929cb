//! The directory governs a live tunnel (#17): a laptop connected through the real
//! wireguard-go client, its employee in a real slapd in the gateway's namespace. Moved to
//! another role's group, `ztgw directory sync` ends the session and the running agent is
//! admitted again under the new role (the old role's resources unreachable, the new one's
//! reachable); disabled, the sync cuts the tunnel before it returns, and the session ends
//! as a revocation does.

use std::time::{Duration, Instant};

use ztgw_tests::lab::{DB, WEB};
use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};
use ztgw_tests::slapd::{SUFFIX, Slapd};

#[test]
fn the_directory_moves_a_live_tunnel_to_another_role_then_cuts_it_when_disabled() {
    let uid = |n: &str| format!("uid={n},ou=people,{SUFFIX}");
    let mut slapd = Slapd::prepare(&format!(
        "dn: {}\nobjectClass: inetOrgPerson\nuid: e5501\ncn: Amina\nsn: Amina\n\n\
         dn: cn=Telework-Finance,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: Telework-Finance\nmember: {}\nmember: cn=nobody,ou=groups,{SUFFIX}\n\n\
         dn: cn=Telework-HR,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: Telework-HR\nmember: cn=nobody,ou=groups,{SUFFIX}\n\n",
        uid("e5501"),
        uid("e5501")
    ));
    let pw = slapd.password_file();
    let section = slapd.settings_section(
        &pw,
        &slapd.ca,
        &[("finance", "Telework-Finance"), ("hr", "Telework-HR")],
        "sync_interval = \"1h\"\nmax_revoke_percent = 100",
    );
    let mut site = Site::new_with(&lab_policy(ALWAYS), |settings| settings + &section);
    // The directory on the gateway's own loopback.
    slapd.run(Some(&site.gw));

    let laptop = site.laptop("e5501", "finance", Posture::Compliant);
    let mut agent = laptop.connect().expect("connected");
    assert!(laptop.reaches_dns(), "the tunnel works");
    let db = format!("{DB}:5432");
    let web = format!("{WEB}:80");
    assert!(laptop.probe(&["tcp", &db]), "finance reaches the database");

    // Moved from finance to hr in the directory.
    slapd.modify(&format!(
        "dn: cn=Telework-Finance,ou=groups,{SUFFIX}\nchangetype: modify\ndelete: member\nmember: {e}\n\n\
         dn: cn=Telework-HR,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\nmember: {e}\n",
        e = uid("e5501")
    ));
    let said = site.ztgw_ok(&["directory", "sync"]);
    assert!(
        said.contains(&format!(
            "changed the role of e5501's device {}: finance → hr",
            laptop.device
        )),
        "{said}"
    );
    // The running agent is admitted again, by itself, under hr.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while !lines
        .iter()
        .any(|l: &String| l.starts_with("Connected") && l.contains("role hr"))
    {
        assert!(
            Instant::now() < deadline,
            "not admitted again under hr: {lines:?}"
        );
        if let Some(l) = agent.try_line(Duration::from_millis(200)) {
            lines.push(l);
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("this device's role changed")),
        "the employee is told why: {lines:?}"
    );
    assert!(laptop.probe(&["tcp", &web]), "hr reaches the intranet");
    assert!(
        !laptop.probe(&["tcp", &db, "--timeout-ms", "700"]),
        "finance's database is no longer reachable"
    );
    let changed = site.journal("device.role_changed");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["from"], "finance");
    assert_eq!(changed[0]["to"], "hr");
    assert_eq!(changed[0]["note"], "the directory places e5501 in hr");
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "role-changed: hr");
    let started = site.journal("session.started");
    assert_eq!(started.len(), 2, "{started:?}");
    assert_eq!(started[1]["role"], "hr", "{started:?}");
    site.assert_sessions_match_peers();

    slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n",
        uid("e5501")
    ));
    let said = site.ztgw_ok(&["directory", "sync"]);
    assert!(
        said.contains("ended the telework of e5501: disabled in the directory"),
        "{said}"
    );
    // Cut before the command returned.
    assert!(!laptop.reaches_dns(), "the tunnel was cut by the sync");
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert_eq!(ended[1]["reason"], "employee-revoked");
    let revoked = site.journal("employee.revoked");
    assert_eq!(revoked[0]["reason"], "directory", "{revoked:?}");
    site.assert_sessions_match_peers();
}
