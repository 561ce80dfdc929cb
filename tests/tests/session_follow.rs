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
    let sessions = site.sessions();
    let s = sessions
        .iter()
        .find(|s| s["device"] == device)
        .unwrap_or_else(|| panic!("no session of {device} in {sessions:?}"));
    (
        s["id"].as_str().expect("id").to_owned(),
        s["tunnel_addr"].as_str().expect("address").to_owned(),
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

    assert_eq!(site.assert_sessions_match_peers(), 0);
}

#[test]
fn the_agent_exits_within_five_seconds_when_the_telework_window_ends() {
    // A window that closes at the next minute boundary at least 20 s away (the
    // schedule's granularity is the minute).
    let mut now = time::OffsetDateTime::now_utc();
    if now.hour() == 23 && now.minute() >= 58 {
        // A window cannot run past midnight here; wait for the new day.
        std::thread::sleep(Duration::from_secs(
            (60 * (59 - u64::from(now.minute())) + 62).saturating_sub(u64::from(now.second())),
        ));
        now = time::OffsetDateTime::now_utc();
    }
    let start = now.hour() as u32 * 60 + now.minute() as u32;
    let end = start + if now.second() < 40 { 1 } else { 2 };
    let schedule = format!(
        "timezone = \"UTC\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\nhours = [\"{:02}:{:02}-{:02}:{:02}\"]",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    );
    let mut site = Site::new(&lab_policy(&schedule));
    let laptop = site.laptop("e6003", "finance", Posture::Compliant);
    let mut agent = laptop.connect().expect("connects inside the window");
    let (_, addr) = tunnel_address(&site, &laptop.device);
    let closes = now.replace_time(time::Time::MIDNIGHT) + time::Duration::minutes(end.into());
    let wait = closes - time::OffsetDateTime::now_utc();
    assert!(
        wait.is_positive(),
        "the window closed before the laptop connected"
    );
    std::thread::sleep(Duration::try_from(wait).unwrap_or_default());
    let (took, said) = exit_of(&mut agent, Instant::now());
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after the window closed"
    );
    assert!(
        said.contains("your telework hours are over"),
        "the employee is told the gateway's reason: {said}"
    );
    assert_torn_down(&laptop, &addr);
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "window-ended");
    assert_eq!(site.assert_sessions_match_peers(), 0);
}
