//! A gateway restart keeps its guarantees (#21, restarts): after a crash (SIGKILL) or a
//! stop (SIGTERM) and a new start, a connected laptop's agent hears why its session ended
//! and admits itself again, without the employee doing anything; the journal ends the
//! session the crash left open (`gateway-restarted`) as the stop ends its own
//! (`gateway-stopped`), so no session stays open in the evidence; and no tunnel outlives
//! its session (sessions and peers match).

use std::time::{Duration, Instant};

use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};

#[test]
fn after_a_crash_or_a_stop_the_agent_admits_itself_again() {
    let mut site = Site::new(&lab_policy(ALWAYS));
    let laptop = site.laptop("e9101", "hr", Posture::Compliant);
    let mut agent = laptop.connect().expect("connects");
    assert!(laptop.reaches_dns(), "the tunnel works");
    for (crash, reason) in [(true, "gateway-restarted"), (false, "gateway-stopped")] {
        let before = site.sessions();
        assert_eq!(before.len(), 1, "{before:?}");
        let old = before[0]["id"].as_str().expect("session id").to_owned();
        site.restart(crash);

        let deadline = Instant::now() + Duration::from_secs(40);
        let mut said = Vec::new();
        loop {
            if let Some(line) = agent.try_line(Duration::from_millis(200)) {
                let connected = line.starts_with("Connected");
                said.push(line);
                if connected {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not connect again by itself ({reason}): {said:?}"
            );
        }
        assert!(
            said.iter()
                .any(|l| l.contains(reason) && l.ends_with("Connecting again.")),
            "the agent says why: {said:?}"
        );
        assert!(laptop.reaches_dns(), "the tunnel works again");
        let ended = site.journal("session.ended");
        assert!(
            ended
                .iter()
                .any(|e| e["session"] == old.as_str() && e["reason"] == reason),
            "the old session ended in the journal as {reason}: {ended:?}"
        );
        let now = site.sessions();
        assert_eq!(now.len(), 1);
        assert_ne!(now[0]["id"], old.as_str(), "a new session");
        assert_eq!(site.assert_sessions_match_peers(), 1);
    }
    // Every session the journal started is ended, but the live one.
    let started = site.journal("session.started");
    let ended = site.journal("session.ended");
    assert_eq!(started.len(), 3);
    assert_eq!(ended.len(), 2, "{ended:?}");
}
