//! The data plane in network namespaces with the real wireguard-go client: least
//! privilege per role, no way in from the inside, anti-spoofing, no laptop-to-laptop
//! traffic, immediate removal, and handshakes under a flood. Needs root (CI is root).

use std::time::Duration;

use ztgw_tests::lab::{DB, DNS, Lab, LabOptions, WEB};

const CONNECT: Duration = Duration::from_secs(10);

#[test]
fn a_role_reaches_its_ports_and_nothing_else() {
    let mut lab = Lab::new(&LabOptions::default());
    let a = lab.laptop("s-fin", 2, "finance", "10.20.0.0/16");
    assert!(
        a.connected(CONNECT),
        "the laptop connects and reaches DNS: {} {}",
        lab.counters(),
        ztgw_tests::netns::run(std::process::Command::new("wg").args(["show", &a.wg.iface]))
    );

    assert!(a.tcp(&format!("{DB}:5432")), "tcp/5432 on the database");
    assert!(a.ping(DB), "ping the database");
    for forbidden in [
        format!("{DB}:22"),
        format!("{WEB}:80"),
        format!("{WEB}:8080"),
    ] {
        assert!(!a.tcp(&forbidden), "{forbidden} must be refused");
    }
    assert!(!a.udp(&format!("{DNS}:9999")), "udp/9999 must be refused");
    assert!(!a.ping(WEB), "no ping outside the role's resources");

    let got = lab.received();
    for service in ["tcp/22", "tcp/80", "tcp/8080", "udp/9999"] {
        assert!(got.get(service).is_none(), "{service} received {got}");
    }
    assert!(lab.drops("no-rule") >= 4, "{}", lab.counters());
}

#[test]
fn a_client_ignoring_its_allowed_ips_gets_nothing_forbidden_delivered() {
    let mut lab = Lab::new(&LabOptions::default());
    // The client routes everything to the gateway, whatever its role allows.
    let a = lab.laptop("s-rogue", 2, "hr", "0.0.0.0/0");
    assert!(a.connected(CONNECT));
    for target in [
        format!("{DB}:161"),
        format!("{WEB}:9999"),
        format!("{DNS}:161"),
        "10.20.0.1:9999".to_owned(),
    ] {
        assert!(a.probe(&["udp-send", &target, "--count", "25"]));
    }
    for target in [
        format!("{DB}:5432"),
        format!("{DB}:22"),
        format!("{WEB}:8080"),
    ] {
        assert!(!a.tcp(&target), "{target}");
    }
    assert!(!a.ping(DB), "hr may not ping the database");
    let got = lab.received();
    for service in ["udp/161", "udp/9999", "tcp/5432", "tcp/22", "tcp/8080"] {
        assert!(got.get(service).is_none(), "{service} received {got}");
    }
    // The one thing hr may reach still works.
    assert!(a.tcp(&format!("{WEB}:80")));
    assert!(lab.drops("no-rule") >= 100, "{}", lab.counters());
}

#[test]
fn nothing_inside_can_open_a_connection_to_a_laptop() {
    let mut lab = Lab::new(&LabOptions::default());
    let a = lab.laptop("s-fin", 2, "finance", "10.20.0.0/16");
    assert!(a.connected(CONNECT));
    let mut listener = ztgw_tests::netns::Proc::spawn({
        let mut c = a.ns.command(ztgw_tests::binary("netns-probe"));
        c.args(["serve", "--tcp", "2222", "--udp", "2223"]);
        c
    });
    assert_eq!(listener.line(), "ready");
    let probe = ztgw_tests::binary("netns-probe");
    let laptop = a.addr.to_string();
    assert!(
        !lab.internal
            .succeeds(&probe, &["tcp", &format!("{laptop}:2222")])
    );
    assert!(
        !lab.internal
            .succeeds(&probe, &["udp", &format!("{laptop}:2223")])
    );
    assert!(
        !lab.internal
            .succeeds("ping", &["-c", "1", "-W", "1", &laptop])
    );
    assert_eq!(listener.ask("stats"), "{}", "nothing reached the laptop");
    assert!(lab.drops("not-a-flow") >= 3, "{}", lab.counters());
    // While a flow the laptop opened still gets its replies.
    assert!(a.tcp(&format!("{DB}:5432")));
}

#[test]
fn a_spoofed_inner_source_is_dropped() {
    let mut lab = Lab::new(&LabOptions::default());
    let a = lab.laptop("s-fin", 2, "finance", "10.20.0.0/16");
    assert!(a.connected(CONNECT));
    let before = lab.received_on("udp/53");
    // Another address on the laptop's tunnel interface, as a rogue client would use.
    a.ns.ip(&["addr", "add", "100.64.0.99/32", "dev", &a.wg.iface]);
    assert!(a.probe(&[
        "udp-send",
        &format!("{DNS}:53"),
        "--bind",
        "100.64.0.99",
        "--count",
        "20"
    ]));
    assert_eq!(
        lab.received_on("udp/53"),
        before,
        "no spoofed datagram arrived"
    );
    assert!(lab.drops("spoofed-source") >= 20, "{}", lab.counters());
}

#[test]
fn one_laptop_cannot_reach_another() {
    let mut lab = Lab::new(&LabOptions::default());
    let a = lab.laptop("s-a", 2, "finance", "10.20.0.0/16,100.64.0.0/16");
    let b = lab.laptop("s-b", 3, "hr", "10.20.0.0/16,100.64.0.0/16");
    assert!(a.connected(CONNECT) && b.connected(CONNECT));
    let mut listener = ztgw_tests::netns::Proc::spawn({
        let mut c = a.ns.command(ztgw_tests::binary("netns-probe"));
        c.args(["serve", "--tcp", "2222", "--udp", "2223"]);
        c
    });
    assert_eq!(listener.line(), "ready");
    assert!(!b.ping(&a.addr.to_string()));
    assert!(!b.tcp(&format!("{}:2222", a.addr)));
    assert!(!b.udp(&format!("{}:2223", a.addr)));
    assert_eq!(listener.ask("stats"), "{}");
    assert!(lab.drops("laptop-to-laptop") >= 3, "{}", lab.counters());
}

#[test]
fn removing_the_peer_stops_its_traffic_within_100_ms() {
    let mut lab = Lab::new(&LabOptions::default());
    let a = lab.laptop("s-fin", 2, "finance", "10.20.0.0/16");
    assert!(a.connected(CONNECT));
    let stream = ztgw_tests::netns::Proc::spawn({
        let mut c = a.ns.command(ztgw_tests::binary("netns-probe"));
        c.args([
            "udp-stream",
            &format!("{DNS}:53"),
            "--interval-ms",
            "2",
            "--duration-ms",
            "4000",
        ]);
        c
    });
    assert!(
        ztgw_tests::netns::eventually(Duration::from_secs(2), || lab.received_on("udp/53") > 50),
        "the stream flows"
    );
    let removed = lab.node("remove s-fin");
    assert_eq!(removed["ok"], true, "{removed}");
    let at_ms = removed["at_ms"].as_u64().expect("at_ms");
    let report = &removed["report"];
    assert_eq!(report["session"], "s-fin");
    assert!(
        report["flows"].as_array().is_some_and(|f| f
            .iter()
            .any(|f| f["remote_port"] == 53 && f["rule"] == "finance/dns")),
        "the final accounting has the stream's flow: {report}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = lab.received();
    let last = got["udp/53"]["last_ms"].as_u64().expect("last");
    assert!(
        last <= at_ms + 100,
        "a datagram arrived {} ms after the removal",
        last.saturating_sub(at_ms)
    );
    assert!(
        lab.drops("unknown-index") > 0,
        "the stream went on and was dropped"
    );
    drop(stream);
}

#[test]
fn a_legitimate_peer_completes_its_handshake_under_a_flood() {
    let mut lab = Lab::new(&LabOptions {
        handshakes_before_cookies: 20,
        ..LabOptions::default()
    });
    // 20,000 initiations per second with a valid mac1: five times what a core can answer
    // with Diffie-Hellman. Without cookies the gateway would spend itself on them. (The
    // attacker shares this machine's two cores, so it is paced rather than unbounded.)
    let (attacker, gw_addr) = lab.outside_host("za");
    let _flood = ztgw_tests::netns::Proc::spawn({
        let mut c = attacker.command(ztgw_tests::binary("netns-probe"));
        c.args(["flood", &format!("{gw_addr}:{}", lab.port)])
            .args(["--gateway-key", &ztgw_tests::netns::b64(&lab.gateway_key)])
            .args([
                "--duration-ms",
                "30000",
                "--distinct",
                "512",
                "--rate",
                "20000",
            ]);
        c
    });
    assert!(
        ztgw_tests::netns::eventually(Duration::from_secs(5), || {
            lab.counters()["cookie_replies"].as_u64().unwrap_or(0) > 100
        }),
        "the flood puts the gateway under load: {}",
        lab.counters()
    );
    let a = lab.laptop("s-fin", 2, "finance", "10.20.0.0/16");
    assert!(
        a.connected(Duration::from_secs(25)),
        "the laptop connects during the flood: {}",
        lab.counters()
    );
    assert!(a.tcp(&format!("{DB}:5432")));
    let c = lab.counters();
    assert!(c["datagrams_in"].as_u64().unwrap_or(0) > 10_000, "{c}");
}
