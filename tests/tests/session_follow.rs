//! The laptop follows the session: when the gateway ends it (a revocation, an operator),
//! `ztgw-agent connect` exits within 5 seconds saying why, and leaves no gateway peer
//! and no tunnel address on the laptop. In network namespaces with `ztgw serve`, the
//! agent and wireguard-go; needs root (CI is root).

use std::time::{Duration, Instant};

use ztgw_tests::netns::{self, Proc};
use ztgw_tests::site::{ALWAYS, Posture, Site, SiteLaptop, lab_policy};

/// Waits for the connected agent to exit; returns how long it took and what it said.
fn exit_of(agent: &mut Proc, since: Instant) -> (Duration, String) {
    let deadline = since + Duration::from_secs(15);
    loop {
        if let Ok(Some(_)) = agent.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = agent.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return (since.elapsed(), err);
        }
        assert!(
            Instant::now() < deadline,
            "the agent is still running after 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The laptop's WireGuard interface has no peer and no tunnel address left.
fn assert_torn_down(laptop: &SiteLaptop, tunnel_address: &str) {
    let peers = netns::run(
        laptop
            .ns
            .command("wg")
            .args(["show", &laptop.wg.iface, "peers"]),
    );
    assert!(peers.trim().is_empty(), "peers left: {peers}");
    let addrs = laptop
        .ns
        .ip(&["-o", "address", "show", "dev", &laptop.wg.iface]);
    assert!(
        !addrs.contains(&format!("{tunnel_address}/")),
        "the tunnel address is left: {addrs}"
    );
}

fn tunnel_address(site: &Site, device: &str) -> (String, String) {
    let list: serde_json::Value =
        serde_json::from_str(&site.ztgw_ok(&["session", "list", "--json"])).expect("json");
    let sessions = list["sessions"].as_array().cloned().unwrap_or_default();
    let s = sessions
        .iter()
        .find(|s| s["device"] == device)
        .unwrap_or_else(|| panic!("no session of {device} in {list}"));
    (
        s["id"].as_str().expect("id").to_owned(),
        s["tunnel_addr"].as_str().expect("address").to_owned(),
    )
}

fn metrics(site: &Site) -> String {
    netns::run(
        site.gw
            .command("curl")
            .args(["-s", "http://127.0.0.1:9469/metrics"]),
    )
}

#[test]
fn the_agent_exits_within_five_seconds_when_the_gateway_ends_its_session() {
    let mut site = Site::new(&lab_policy(ALWAYS));
    let revoked = site.laptop("e6001", "finance", Posture::Compliant);
    let ended = site.laptop("e6002", "hr", Posture::Compliant);

    // A revocation.
    let mut agent = revoked.connect().expect("connects");
    let (_, addr) = tunnel_address(&site, &revoked.device);
    let at = Instant::now();
    site.ztgw_ok(&["device", "revoke", &revoked.device, "--reason", "stolen"]);
    let (took, said) = exit_of(&mut agent, at);
    assert!(took < Duration::from_secs(5), "exited after {took:?}");
    assert!(said.contains("revoked"), "the employee is told why: {said}");
    assert_torn_down(&revoked, &addr);

    // An operator ends a session.
    let mut agent = ended.connect().expect("connects");
    let (id, addr) = tunnel_address(&site, &ended.device);
    let at = Instant::now();
    site.ztgw_ok(&["session", "end", &id, "--reason", "maintenance"]);
    let (took, said) = exit_of(&mut agent, at);
    assert!(took < Duration::from_secs(5), "exited after {took:?}");
    assert!(
        said.contains("the security unit ended it"),
        "the employee is told why: {said}"
    );
    assert_torn_down(&ended, &addr);

    let m = metrics(&site);
    for line in [
        "ztgw_sessions 0",
        "ztgw_wireguard_peers 0",
        "ztgw_sessions_orphans_removed_total 0",
    ] {
        assert!(m.contains(line), "{line} not in\n{m}");
    }
}
