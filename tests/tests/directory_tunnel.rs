//! The directory ends a live tunnel (#17): a laptop connected through the real
//! wireguard-go client reaches the internal network until its employee is disabled in the
//! directory (a real slapd, in the gateway's namespace); `ztgw directory sync` then cuts
//! the tunnel before it returns, and the session ends as a revocation does.

use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};
use ztgw_tests::slapd::{SUFFIX, Slapd};

#[test]
fn disabling_an_employee_in_the_directory_cuts_their_tunnel_at_the_next_sync() {
    let uid = |n: &str| format!("uid={n},ou=people,{SUFFIX}");
    let mut slapd = Slapd::prepare(&format!(
        "dn: {}\nobjectClass: inetOrgPerson\nuid: e5501\ncn: Amina\nsn: Amina\n\n\
         dn: cn=Telework-Finance,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: Telework-Finance\nmember: {}\n\n",
        uid("e5501"),
        uid("e5501")
    ));
    let pw = slapd.password_file();
    let section = slapd.settings_section(
        &pw,
        &slapd.ca,
        &[("finance", "Telework-Finance")],
        "sync_interval = \"1h\"\nmax_revoke_percent = 100",
    );
    let mut site = Site::new_with(&lab_policy(ALWAYS), |settings| settings + &section);
    // The directory on the gateway's own loopback.
    slapd.run(Some(&site.gw));

    let laptop = site.laptop("e5501", "finance", Posture::Compliant);
    let _agent = laptop.connect().expect("connected");
    assert!(laptop.reaches_dns(), "the tunnel works");

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
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "employee-revoked");
    let revoked = site.journal("employee.revoked");
    assert_eq!(revoked[0]["reason"], "directory", "{revoked:?}");
    site.assert_sessions_match_peers();
}
