//! Several gateways on one PostgreSQL registry (#21), end to end with wireguard-go
//! laptops: a laptop whose gateway is killed comes back through another within 10 s; a
//! revocation made on one gateway cuts the tunnel a laptop holds through another within a
//! second; a policy reload on one ends on the others the sessions it no longer allows;
//! both journals verify.

use std::time::{Duration, Instant};

use ztgw_tests::cluster::Cluster;
use ztgw_tests::netns;
use ztgw_tests::site::{ALWAYS, lab_policy};

/// Reads the agent's lines until one starts with `prefix` (or `limit` passes); all it said.
fn said_until(agent: &mut netns::Proc, prefix: &str, limit: Duration) -> (bool, Vec<String>) {
    let deadline = Instant::now() + limit;
    let mut said = Vec::new();
    while Instant::now() < deadline {
        if let Some(line) = agent.try_line(Duration::from_millis(100)) {
            let hit = line.starts_with(prefix);
            said.push(line);
            if hit {
                return (true, said);
            }
        }
    }
    (false, said)
}

#[test]
fn a_laptop_fails_over_and_a_revocation_on_one_gateway_cuts_it_on_another() {
    let mut c = Cluster::start(2, &lab_policy(ALWAYS));
    let laptop = c.laptop(0, "e7001", "hr");
    let mut agent = laptop.connect().expect("connects through A");
    assert!(laptop.reaches_dns(), "the tunnel through A works");
    let (on_a, _) = c.sessions(0);
    assert_eq!(on_a.len(), 1, "A holds the session: {on_a:?}");
    let (on_b, elsewhere) = c.sessions(1);
    assert!(on_b.is_empty());
    assert_eq!(
        elsewhere
            .iter()
            .map(|s| s["gateway"].clone())
            .collect::<Vec<_>>(),
        ["192.0.2.1"],
        "B lists A's session"
    );

    // A dies: the laptop is back through B within 10 s.
    let killed = Instant::now();
    c.stop(0, true);
    let back = netns::eventually(Duration::from_secs(10), || laptop.reaches_dns());
    let took = killed.elapsed();
    let (_, said) = said_until(&mut agent, "Connected", Duration::from_millis(500));
    assert!(back, "no tunnel through B within 10 s: {said:?}");
    assert!(
        said.iter().any(|l| l.contains("192.0.2.2:8443")),
        "the agent says where it went: {said:?}"
    );
    eprintln!("failover: {took:?}");
    let (on_b, _) = c.sessions(1);
    assert_eq!(on_b.len(), 1, "B holds it now");
    let device = on_b[0]["device"].as_str().expect("device").to_owned();

    // A comes back; the device is revoked there while connected through B.
    c.start_again(0);
    let (_, elsewhere) = c.sessions(0);
    assert_eq!(elsewhere.len(), 1, "A sees B's session: {elsewhere:?}");
    let revoked = Instant::now();
    c.ztgw_ok(0, &["device", "revoke", &device, "--reason", "lost"]);
    let cut = netns::eventually(Duration::from_secs(1), || c.sessions(1).0.is_empty());
    let took = revoked.elapsed();
    assert!(cut, "B still holds the revoked device's session after 1 s");
    eprintln!("revocation on A to the end on B: {took:?}");
    assert!(!laptop.reaches_dns(), "the tunnel through B is cut");
    let ended = c.journal(1, "session.ended");
    assert!(
        ended.iter().any(|e| e["reason"] == "device-revoked"),
        "B journals why: {ended:?}"
    );
    // The agent stops and says why.
    assert!(
        netns::eventually(Duration::from_secs(5), || agent
            .child
            .try_wait()
            .ok()
            .flatten()
            .is_some()),
        "the agent stops"
    );
    let mut err = String::new();
    if let Some(mut e) = agent.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(err.contains("revoked"), "the agent says why: {err}");
    for i in 0..2 {
        c.ztgw_ok(i, &["journal", "verify"]);
    }
}

#[test]
fn a_policy_reload_on_one_gateway_applies_on_every_gateway() {
    let mut c = Cluster::start(2, &lab_policy(ALWAYS));
    let laptop = c.laptop(1, "e7002", "finance");
    let _agent = laptop
        .connect()
        .expect("connects through B (the invitation's gateway)");
    assert_eq!(c.sessions(1).0.len(), 1);
    // The security unit takes finance's access away, on A.
    let policy = lab_policy(ALWAYS).replace(
        "[roles.finance]\nresources = [\"database\", \"dns\"]\nschedule = \"office\"\nposture = \"lab\"\n",
        "",
    );
    assert!(!policy.contains("roles.finance"));
    std::fs::write(c.state(0).join("policy.toml"), &policy).expect("policy");
    let reloaded = Instant::now();
    c.ztgw_ok(0, &["policy", "reload"]);
    let ended = netns::eventually(Duration::from_secs(5), || c.sessions(1).0.is_empty());
    assert!(ended, "B still holds a session the policy no longer allows");
    eprintln!(
        "policy reload on A to the end on B: {:?}",
        reloaded.elapsed()
    );
    let loaded = c.journal(1, "policy.loaded");
    assert!(
        loaded.iter().any(|e| e["operator"]
            .as_str()
            .is_some_and(|o| o.contains("through the registry"))),
        "B journals the policy it took from the registry: {loaded:?}"
    );
    let ends = c.journal(1, "session.ended");
    assert!(
        ends.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("policy"))),
        "{ends:?}"
    );
    // A gateway started later takes the policy in force, not its older file.
    c.stop(1, false);
    c.start_again(1);
    let loaded = c.journal(1, "policy.loaded");
    let last = loaded.last().expect("a policy at start");
    let a_sha = c.journal(0, "policy.loaded").last().expect("A's")["sha256"].clone();
    assert_eq!(
        last["sha256"], a_sha,
        "B restarted with the registry's policy"
    );
    // The database goes away: nothing is granted meanwhile; everything resumes after.
    let second = c.laptop(0, "e7003", "hr");
    c.pg.stop();
    let refused = second.connect();
    assert!(refused.is_err(), "admitted without the registry");
    c.pg.restart();
    let mut admitted = None;
    for _ in 0..10 {
        match second.connect() {
            Ok(p) => {
                admitted = Some(p);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    assert!(admitted.is_some(), "admitted once the registry is back");
    assert!(second.reaches_dns());
}
