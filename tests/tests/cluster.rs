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

    // A comes back (a little later: its crash left the first session open in its
    // journal until then); the device is revoked there while connected through B.
    std::thread::sleep(Duration::from_secs(2));
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

    // The auditors' view of both journals, merged by time.
    let journals: Vec<_> = (0..2).map(|i| c.state(i).join("journal")).collect();
    let keys: Vec<_> = (0..2).map(|i| c.state(i).join("journal.pub")).collect();
    let audit = |args: &[&str]| {
        let mut cmd = std::process::Command::new(ztgw_tests::binary("ztgw-audit"));
        cmd.args(args);
        for (j, k) in journals.iter().zip(&keys) {
            cmd.arg("--dir").arg(j).arg("--public-key").arg(k);
        }
        let out = cmd.output().expect("ztgw-audit");
        assert!(
            out.status.success(),
            "ztgw-audit {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = audit(&["verify"]);
    assert_eq!(
        said.matches("signatures: every checkpoint verified")
            .count(),
        2,
        "{said}"
    );
    // Verified with the other gateway's key, a journal is refused.
    let swapped = std::process::Command::new(ztgw_tests::binary("ztgw-audit"))
        .arg("verify")
        .arg("--dir")
        .arg(&journals[0])
        .arg("--public-key")
        .arg(&keys[1])
        .output()
        .expect("ztgw-audit");
    assert!(
        !swapped.status.success(),
        "A's journal verified with B's key"
    );
    let merged: Vec<serde_json::Value> = {
        let mut cmd = std::process::Command::new(ztgw_tests::binary("ztgw-audit"));
        cmd.args(["query", "--json", "--type", "session.*"]);
        for j in &journals {
            cmd.arg("--dir").arg(j);
        }
        let out = cmd.output().expect("query");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    };
    let times: Vec<&str> = merged
        .iter()
        .map(|r| r["time"].as_str().unwrap_or(""))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "merged by time: {times:?}"
    );
    let gateways: std::collections::BTreeSet<&str> = merged
        .iter()
        .filter_map(|r| r["gateway"].as_str())
        .collect();
    assert_eq!(
        gateways.into_iter().collect::<Vec<_>>(),
        ["192.0.2.1", "192.0.2.2"]
    );
    let at = |r: &serde_json::Value| {
        time::OffsetDateTime::parse(
            r["time"].as_str().expect("time"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("rfc3339")
    };
    let first_start = merged
        .iter()
        .find(|r| r["event"]["type"] == "session.started")
        .map(at)
        .expect("a start");
    let last_end = merged
        .iter()
        .filter(|r| r["event"]["type"] == "session.ended")
        .map(at)
        .max()
        .expect("an end");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let report: serde_json::Value = serde_json::from_str(&audit(&[
        "report",
        "hours",
        "--policy",
        c.state(0).join("policy.toml").to_str().expect("utf-8"),
        "--from",
        &today,
        "--to",
        &today,
        "--timezone",
        "UTC",
        "--format",
        "json",
    ]))
    .expect("report JSON");
    let rows = report["rows"].as_array().expect("rows");
    let row = rows
        .iter()
        .find(|r| r["employee"] == "e7001")
        .expect("e7001's day");
    assert_eq!(row["sessions"], 2, "{row}");
    let connected = row["connected_secs"].as_i64().expect("secs");
    let span = (last_end - first_start).whole_seconds() + 1;
    assert!(
        connected <= span,
        "the first session (left open by A's crash until A restarted) overlaps the second: counted twice ({connected} s connected within {span} s)"
    );
    assert_eq!(
        report["checkpoints"].as_array().map(Vec::len),
        Some(2),
        "one stamp a journal"
    );
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
    // The database goes away: nothing is granted meanwhile, a connected laptop keeps
    // its tunnel (longer than two of the gateway's reconciliation passes); everything
    // resumes after.
    let connected = c.laptop(1, "e7004", "hr");
    let _connected_agent = connected.connect().expect("connects through B");
    let doomed = c.laptop(0, "e7005", "hr");
    let _doomed_agent = doomed.connect().expect("connects through A");
    let second = c.laptop(0, "e7003", "hr");
    let stopped = Instant::now();
    c.pg.stop();
    let refused = second.connect();
    assert!(refused.is_err(), "admitted without the registry");
    // Revocations made on A meanwhile: A ends its own session at once and queues them;
    // B cannot know yet.
    let said = c.ztgw_ok(
        0,
        &["device", "revoke", &doomed.device, "--reason", "stolen"],
    );
    assert!(said.contains("queued"), "{said}");
    assert!(
        !doomed.reaches_dns(),
        "the revoked device's tunnel through A is cut at once"
    );
    let said = c.ztgw_ok(
        0,
        &["device", "revoke", &connected.device, "--reason", "lost"],
    );
    assert!(said.contains("queued"), "{said}");
    std::thread::sleep(Duration::from_secs(12).saturating_sub(stopped.elapsed()));
    assert!(
        connected.reaches_dns(),
        "a live session lost its tunnel while the database was down"
    );
    let (mine, _) = c.sessions(1);
    assert_eq!(mine.len(), 1, "B still lists its session: {mine:?}");
    c.pg.restart();
    // The queued revocations are carried out on A once the registry answers, and reach B.
    assert!(
        netns::eventually(Duration::from_secs(15), || c.sessions(1).0.is_empty()),
        "B still holds the session of a device revoked on A while the database was down"
    );
    assert!(!connected.reaches_dns());
    let revoked: Vec<String> = c
        .journal(0, "device.revoked")
        .iter()
        .filter_map(|e| e["device"].as_str().map(str::to_owned))
        .collect();
    assert!(
        revoked.contains(&doomed.device) && revoked.contains(&connected.device),
        "both revocations recorded on A: {revoked:?}"
    );
    assert_eq!(c.journal(0, "revocation.queued").len(), 2);
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

/// A gateway that stops answering without closing anything (its process frozen: its
/// sockets still accept, its connections stay open): the agent hears no heartbeat on its
/// session watch and is back through the other gateway within 10 s; when the frozen one
/// wakes up, it ends the session the other's admission replaced.
#[test]
fn a_laptop_leaves_a_gateway_that_stops_answering() {
    let c = Cluster::start(2, &lab_policy(ALWAYS));
    let mut c = c;
    let laptop = c.laptop(0, "e7101", "hr");
    let mut agent = laptop.connect().expect("connects through A");
    let first = c.sessions(0).0;
    assert_eq!(first.len(), 1);
    let frozen = Instant::now();
    c.signal(0, "STOP");
    let back = netns::eventually(Duration::from_secs(10), || laptop.reaches_dns());
    let took = frozen.elapsed();
    c.signal(0, "CONT");
    let (_, said) = said_until(&mut agent, "Connected", Duration::from_millis(500));
    assert!(
        back,
        "no tunnel through B within 10 s of A freezing: {said:?}"
    );
    eprintln!("failover from a frozen gateway: {took:?}");
    assert_eq!(c.sessions(1).0.len(), 1, "B holds the session");
    // A, awake, learns from the registry that its session was replaced.
    assert!(
        netns::eventually(Duration::from_secs(5), || c.sessions(0).0.is_empty()),
        "A still holds the replaced session"
    );
    let ended = c.journal(0, "session.ended");
    assert!(
        ended
            .iter()
            .any(|e| e["session"] == first[0]["id"] && e["reason"] == "replaced"),
        "{ended:?}"
    );
    assert!(laptop.reaches_dns(), "the tunnel through B stays");
}
