//! No tunnel outlives its session, tried as an attacker holding a laptop's keys would: a
//! burst of parallel admissions of one device, a second admission into a full address
//! pool, then revocation; and the journal names the rule that allowed a flow even after
//! a reload renumbers the rules. In network namespaces with `ztgw serve`, the agent's
//! protocol and wireguard-go; needs root (CI is root).
//!
//! The admission bursts raise the per-source admission and TLS handshake rates, and the
//! connections one source may have in their TLS handshake, so that every request of a
//! burst reaches the session layer at once (the race is the point); the limits that ship
//! are exercised in `negative.rs`, `control_attack.rs` and the gateway's unit tests.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ztgw_tests::lab::{DB, DNS};
use ztgw_tests::netns::{self, Proc};
use ztgw_tests::site::{ALWAYS, Posture, Site, SiteLaptop, lab_policy};

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Settings that let one source fire a burst of admissions without being rate limited.
fn burst_settings(s: String) -> String {
    s.replace(
        "handshakes_per_second_per_source = 20\n",
        "handshakes_per_second_per_source = 2000\n",
    )
    .replace("handshake_burst = 40", "handshake_burst = 4000")
    .replace(
        "admissions_per_second_per_source = 50",
        "admissions_per_second_per_source = 2000",
    )
    .replace(
        "unauthenticated_connections_per_source = 32",
        "unauthenticated_connections_per_source = 500",
    )
}

/// `count` admissions of `laptop`'s device posted together; the sessions granted and
/// the refusals. The grants are kept in `grants` for [`configure`].
fn burst(laptop: &SiteLaptop, count: usize, grants: &Path) -> (Vec<String>, Vec<String>) {
    let out = laptop
        .ns
        .command(ztgw_tests::binary("netns-probe"))
        .arg("admit-burst")
        .arg(&laptop.state)
        .arg("--posture-root")
        .arg(&laptop.posture_root)
        .args(["--count", &count.to_string(), "--grants"])
        .arg(grants)
        .output()
        .expect("netns-probe");
    assert!(
        out.status.success(),
        "admit-burst: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let granted = text
        .lines()
        .filter_map(|l| l.strip_prefix("granted "))
        .map(str::to_owned)
        .collect();
    let refused = text
        .lines()
        .filter_map(|l| l.strip_prefix("refused: "))
        .map(str::to_owned)
        .collect();
    (granted, refused)
}

/// Configures the laptop's interface with the grant of `session`, as the agent would.
fn configure(laptop: &SiteLaptop, grants: &Path, session: &str) {
    let out = laptop
        .ns
        .command(ztgw_tests::binary("netns-probe"))
        .arg("configure")
        .arg(&laptop.state)
        .args([
            "--iface",
            &laptop.wg.iface,
            "--session",
            session,
            "--grants",
        ])
        .arg(grants)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .output()
        .expect("netns-probe");
    assert!(
        out.status.success(),
        "configure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The one live session, which must be `device`'s.
fn only_session(site: &Site, device: &str) -> String {
    let sessions = site.sessions();
    assert_eq!(sessions.len(), 1, "exactly one session: {sessions:?}");
    assert_eq!(sessions[0]["device"], device, "{sessions:?}");
    sessions[0]["id"].as_str().expect("id").to_owned()
}

/// A steady UDP stream from the laptop to the DNS server, through its tunnel.
fn stream(laptop: &SiteLaptop, ms: u64) -> Proc {
    let mut c = laptop.ns.command(ztgw_tests::binary("netns-probe"));
    c.args(["udp-stream", &format!("{DNS}:53"), "--interval-ms", "5"])
        .args(["--duration-ms", &ms.to_string()]);
    Proc::spawn(c)
}

/// The internal DNS server's count of datagrams and the last one's time.
fn dns_seen(site: &mut Site) -> (u64, u64) {
    let stats: serde_json::Value = serde_json::from_str(&site.servers.ask("stats")).expect("stats");
    (
        stats["udp/53"]["count"].as_u64().unwrap_or(0),
        stats["udp/53"]["last_ms"].as_u64().unwrap_or(0),
    )
}

/// Revokes `device` while `laptop` streams to DNS; nothing reaches the internal network
/// a second after the command returns, and no peer is left.
fn revoke_cuts_traffic(site: &mut Site, laptop: &SiteLaptop) {
    let _stream = stream(laptop, 6_000);
    let before = dns_seen(site).0;
    assert!(
        netns::eventually(Duration::from_secs(10), || dns_seen(site).0 > before + 20),
        "the stream reaches the internal network"
    );
    site.ztgw_ok(&["device", "revoke", &laptop.device, "--reason", "stolen"]);
    let revoked_at = unix_ms();
    std::thread::sleep(Duration::from_millis(1500));
    let (_, last) = dns_seen(site);
    assert!(
        last <= revoked_at + 1000,
        "a datagram reached the internal network {} ms after the revocation",
        last.saturating_sub(revoked_at)
    );
    assert_eq!(site.assert_sessions_match_peers(), 0, "no peer is left");
    assert!(site.sessions().is_empty());
}

#[test]
fn fifty_parallel_admissions_of_one_device_leave_one_session_and_one_peer() {
    let mut site = Site::new_with(&lab_policy(ALWAYS), burst_settings);
    let laptop = site.laptop("e7001", "finance", Posture::Compliant);
    let grants = site.dir.path().join("grants.json");
    let mut granted_total = 0;
    let mut in_progress = 0;
    for round in 0..20 {
        let (granted, refused) = burst(&laptop, 50, &grants);
        assert!(
            !granted.is_empty(),
            "round {round}: no admission of 50 was granted: {refused:?}"
        );
        // A device has at most four nonces outstanding, so the others of the 50 are
        // refused as replays before they reach the session layer; the four race there,
        // and lose to each other only as "another admission is under way". Never an
        // internal error.
        for why in &refused {
            assert!(
                why.starts_with("admission_in_progress:")
                    || (why.starts_with("admission_refused:") && why.contains("posture-replayed")),
                "round {round}: {why}"
            );
        }
        in_progress += refused
            .iter()
            .filter(|r| r.starts_with("admission_in_progress:"))
            .count();
        granted_total += granted.len();
        let live = only_session(&site, &laptop.device);
        assert!(
            granted.contains(&live),
            "round {round}: the live session {live} is one this round granted"
        );
        assert_eq!(site.assert_sessions_match_peers(), 1, "round {round}");
    }

    assert!(
        granted_total > 20 && in_progress > 0,
        "the bursts raced at the session layer: {granted_total} granted, {in_progress} refused as under way"
    );

    // The journal tells the same story: every session granted started once, and all
    // but the live one ended once (replaced), none before it started.
    let started = site.journal("session.started");
    let ended = site.journal("session.ended");
    assert_eq!(started.len(), granted_total, "one start per grant");
    assert_eq!(
        ended.len(),
        granted_total - 1,
        "one end per replaced session"
    );
    let mut ended_ids: Vec<&str> = ended.iter().filter_map(|e| e["session"].as_str()).collect();
    ended_ids.sort_unstable();
    let before = ended_ids.len();
    ended_ids.dedup();
    assert_eq!(ended_ids.len(), before, "no session ended twice");
    site.ztgw_ok(&["journal", "verify"]);

    // The surviving session carries traffic; a revocation cuts it.
    let live = only_session(&site, &laptop.device);
    configure(&laptop, &grants, &live);
    revoke_cuts_traffic(&mut site, &laptop);
}

#[test]
fn a_full_pool_refuses_a_second_admission_and_the_live_session_survives() {
    // One laptop address: .2 of a /30 (.1 is the gateway's, .3 the broadcast).
    let mut site = Site::new_with(&lab_policy(ALWAYS), |s| {
        burst_settings(s).replace(
            "tunnel_network = \"100.64.0.0/16\"",
            "tunnel_network = \"100.64.0.0/30\"",
        )
    });
    let laptop = site.laptop("e7002", "finance", Posture::Compliant);
    let _agent = laptop.connect().expect("connects");
    assert!(netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()));
    let live = only_session(&site, &laptop.device);

    // The same device asks again while its session holds the only address.
    let (granted, refused) = burst(&laptop, 1, &site.dir.path().join("grants.json"));
    assert!(granted.is_empty(), "{granted:?}");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].starts_with("sessions_unavailable:"),
        "refused as unavailable: {refused:?}"
    );
    assert_eq!(
        only_session(&site, &laptop.device),
        live,
        "the same session"
    );
    assert_eq!(site.assert_sessions_match_peers(), 1);
    assert!(
        site.journal("session.ended").is_empty(),
        "nothing was ended by the refused admission"
    );
    assert!(laptop.reaches_dns(), "its traffic still flows");
    assert!(laptop.probe(&["tcp", &format!("{DB}:5432")]));

    revoke_cuts_traffic(&mut site, &laptop);
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["session"], live.as_str());
    assert_eq!(ended[0]["reason"], "device-revoked");
}

#[test]
fn a_flow_opened_before_a_reload_that_renumbers_rules_keeps_its_rule() {
    let mut site = Site::new(&lab_policy(ALWAYS));
    let laptop = site.laptop("e7003", "finance", Posture::Compliant);
    let agent = laptop.connect().expect("connects");
    assert!(laptop.probe(&["tcp", &format!("{DB}:5432")]), "a flow");
    let first_sha = site.journal("gateway.started")[0]["policy_sha256"]
        .as_str()
        .expect("sha")
        .to_owned();

    // A role sorted before finance, with resources: every rule of finance gets another
    // number, and finance's old numbers now belong to `accounts`.
    let renumbered = format!(
        "{}\n[roles.accounts]\nresources = [\"intranet\", \"database\"]\nschedule = \"office\"\nposture = \"lab\"\n",
        lab_policy(ALWAYS)
    );
    std::fs::write(site.config.with_file_name("policy.toml"), renumbered).expect("policy");
    site.ztgw_ok(&["policy", "reload"]);
    let live = only_session(&site, &laptop.device);
    assert!(
        laptop.probe(&["udp", &format!("{DNS}:53")]),
        "a flow under the new policy"
    );
    // Ending the session journals its final accounting.
    site.ztgw_ok(&["session", "end", &live, "--reason", "test"]);
    drop(agent);

    let flows: Vec<serde_json::Value> = site
        .journal("session.flows")
        .iter()
        .flat_map(|e| e["flows"].as_array().cloned().unwrap_or_default())
        .collect();
    let db = flows
        .iter()
        .find(|f| f["remote_port"] == 5432)
        .unwrap_or_else(|| panic!("the database flow is journaled: {flows:?}"));
    assert_eq!(db["rule"], "finance/database", "{db}");
    assert_eq!(db["policy_sha256"], first_sha.as_str(), "{db}");
    let dns = flows
        .iter()
        .find(|f| f["remote_port"] == 53)
        .unwrap_or_else(|| panic!("the DNS flow is journaled: {flows:?}"));
    assert_eq!(dns["rule"], "finance/dns", "{dns}");
    assert_ne!(
        dns["policy_sha256"],
        first_sha.as_str(),
        "the later flow names the reloaded policy: {dns}"
    );
}
