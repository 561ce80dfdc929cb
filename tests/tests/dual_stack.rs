//! Both address families (#18): with `tunnel_network = ["100.64.0.0/16",
//! "fd00:64::/64"]` every session gets one address of each; the agent configures both
//! on the laptop's wireguard-go interface; an IPv6-only internal server is reachable by
//! the role that has it and by no other, the IPv4 network as before; a spoofed IPv6
//! source is dropped and counted.

use std::time::Duration;

use ztgw_tests::lab::WEB;
use ztgw_tests::netns;
use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};

/// The IPv6-only internal server.
const WEB6: &str = "fd00:30::10";

#[test]
fn each_session_gets_both_families_and_ipv6_follows_the_roles() {
    // hr reaches the IPv6-only server as well; finance does not.
    let policy = lab_policy(ALWAYS)
        .replace(
            "[schedules.office]",
            &format!("[resources.web6]\nhosts = [\"{WEB6}\"]\nports = [\"tcp/80\", \"udp/53\"]\n[schedules.office]"),
        )
        .replace(
            "resources = [\"dns\", \"intranet\"]",
            "resources = [\"dns\", \"intranet\", \"web6\"]",
        );
    let mut site = Site::new_with(&policy, |settings| {
        settings.replace(
            "tunnel_network = \"100.64.0.0/16\"",
            "tunnel_network = [\"100.64.0.0/16\", \"fd00:64::/64\"]",
        )
    });
    // An IPv6-only network behind the gateway.
    let (_internal6, _server6) = site.ipv6_network(WEB6);

    let hr = site.laptop("e8001", "hr", Posture::Compliant);
    let _hr_agent = hr.connect().expect("hr connects");
    let session = site
        .sessions()
        .into_iter()
        .find(|s| s["device"] == hr.device.as_str())
        .expect("hr's session");
    let v4 = session["tunnel_addr"].as_str().expect("IPv4").to_owned();
    let v6 = session["tunnel_addr6"].as_str().expect("IPv6").to_owned();
    assert!(v4.starts_with("100.64."), "{session}");
    assert!(v6.starts_with("fd00:64::"), "{session}");
    let addrs = hr.ns.ip(&["-o", "address", "show", "dev", &hr.wg.iface]);
    assert!(addrs.contains(&format!("{v4}/32")), "{addrs}");
    assert!(addrs.contains(&format!("{v6}/128")), "{addrs}");

    let web6 = format!("[{WEB6}]:80");
    assert!(
        netns::eventually(Duration::from_secs(10), || hr.probe(&["tcp", &web6])),
        "hr reaches the IPv6-only server"
    );
    assert!(
        hr.probe(&["tcp", &format!("{WEB}:80")]),
        "and the IPv4 intranet"
    );
    assert!(hr.reaches_dns(), "and IPv4 DNS");

    // A source that is not the session's IPv6 address is dropped and counted.
    let spoofed = "fd00:64::dead";
    hr.ns.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{spoofed}/128"),
        "dev",
        &hr.wg.iface,
        "nodad",
    ]);
    let drops = |site: &Site| {
        Site::metric(
            &site.metrics(),
            "ztgw_wireguard_drops_total{reason=\"spoofed-source\"}",
        )
        .unwrap_or(0.0)
    };
    let before = drops(&site);
    assert!(
        !hr.probe(&[
            "udp",
            &format!("[{WEB6}]:53"),
            "--bind",
            spoofed,
            "--timeout-ms",
            "700"
        ]),
        "a spoofed IPv6 source gets no answer"
    );
    assert!(
        hr.probe(&["udp", &format!("[{WEB6}]:53"), "--bind", &v6]),
        "from its own IPv6 address it does"
    );
    assert!(drops(&site) > before, "the spoofed datagram is counted");

    // finance has IPv6 too, but not the server.
    let finance = site.laptop("e8002", "finance", Posture::Compliant);
    let _finance_agent = finance.connect().expect("finance connects");
    assert!(finance.reaches_dns(), "finance's tunnel works");
    assert!(
        !finance.probe(&["tcp", &web6, "--timeout-ms", "700"]),
        "finance does not reach the IPv6-only server"
    );
    site.assert_sessions_match_peers();
}
