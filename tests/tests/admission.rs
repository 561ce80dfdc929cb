//! The full loop in network namespaces: `ztgw serve`, `ztgw-agent connect` and the real
//! wireguard-go client. Admission, traffic, revocation, refusals with their reasons,
//! disconnection, all journaled. Needs root (CI is root).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ztgw_tests::lab::{DB, DNS};
use ztgw_tests::netns::{self, Proc};
use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[test]
fn an_admitted_laptop_reaches_its_role_and_a_revocation_cuts_it_within_a_second() {
    let mut site = Site::new(&lab_policy(ALWAYS));
    let laptop = site.laptop("e1029", "finance", Posture::Compliant);
    let _agent = laptop.connect().expect("the compliant laptop connects");
    assert!(
        netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()),
        "traffic flows once admitted"
    );
    assert!(
        laptop.probe(&["tcp", &format!("{DB}:5432")]),
        "the role's database"
    );
    assert!(
        !laptop.probe(&["tcp", &format!("{DB}:22"), "--timeout-ms", "700"]),
        "not ssh"
    );

    let started = site.journal("session.started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["device"], laptop.device.as_str());
    let listed = site.ztgw_ok(&["session", "list", "--json"]);
    assert!(listed.contains(&laptop.device), "{listed}");

    // A steady stream, then the revocation.
    let _stream = Proc::spawn({
        let mut c = laptop.ns.command(ztgw_tests::binary("netns-probe"));
        c.args([
            "udp-stream",
            &format!("{DNS}:53"),
            "--interval-ms",
            "5",
            "--duration-ms",
            "6000",
        ]);
        c
    });
    std::thread::sleep(Duration::from_millis(500));
    site.ztgw_ok(&["device", "revoke", &laptop.device, "--reason", "lost"]);
    let revoked_at = unix_ms();
    std::thread::sleep(Duration::from_millis(1500));
    let stats: serde_json::Value = serde_json::from_str(&site.servers.ask("stats")).expect("stats");
    let last = stats["udp/53"]["last_ms"]
        .as_u64()
        .expect("the stream reached DNS");
    assert!(
        last <= revoked_at + 1000,
        "traffic went on {} ms after the revocation",
        last.saturating_sub(revoked_at)
    );
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "device-revoked");
    assert!(
        !site.journal("session.flows").is_empty(),
        "the session's flows are journaled"
    );
}

#[test]
fn a_non_compliant_laptop_is_refused_with_its_reasons() {
    let mut site = Site::new(&lab_policy(ALWAYS));
    let laptop = site.laptop("e2002", "finance", Posture::ForbiddenTool);
    let err = laptop.connect().expect_err("refused");
    assert!(err.contains("posture.forbidden-software"), "{err}");
    assert!(
        err.contains("nmap"),
        "the employee is told what to remove: {err}"
    );
    let denied = site.journal("admission.denied");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0]["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "posture.forbidden-software")),
        "{denied:?}"
    );
    assert!(site.journal("session.started").is_empty());
}

#[test]
fn outside_the_telework_window_the_laptop_is_refused() {
    // Open only on a weekday two days from today: closed now whatever the time.
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(time::OffsetDateTime::now_utc()
        .weekday()
        .number_days_from_monday()
        as usize
        + 2)
        % 7];
    let schedule = format!("timezone = \"UTC\"\ndays = [\"{day}\"]\nhours = [\"08:00-17:00\"]");
    let mut site = Site::new(&lab_policy(&schedule));
    let laptop = site.laptop("e3003", "hr", Posture::Compliant);
    let err = laptop.connect().expect_err("refused");
    assert!(err.contains("outside-schedule"), "{err}");
    assert!(err.contains("next window opens"), "{err}");

    // An emergency override for this employee lets the laptop in, until its end.
    let until = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .replace_nanosecond(0)
        .expect("whole seconds")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    site.ztgw_ok(&[
        "schedule",
        "override",
        "--employee",
        "e3003",
        "--until",
        &until,
        "--reason",
        "flood at the office",
    ]);
    let _agent = laptop.connect().expect("admitted under the override");
    let overrides = site.journal("schedule.override");
    assert_eq!(overrides.len(), 1, "{overrides:?}");
    assert_eq!(overrides[0]["target"], "employee:e3003");
    let started = site.journal("session.started");
    assert_eq!(started[0]["schedule"], "override");
    let listed = site.ztgw_ok(&["session", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    let ends = listed["sessions"][0]["ends_at"]
        .as_str()
        .expect("ends_at")
        .to_owned();
    assert_eq!(
        time::OffsetDateTime::parse(&ends, &time::format_description::well_known::Rfc3339).ok(),
        time::OffsetDateTime::parse(&until, &time::format_description::well_known::Rfc3339).ok(),
        "the session ends with the override"
    );
}

#[test]
fn disconnect_ends_the_session_and_journals_it() {
    let mut site = Site::new(&lab_policy(ALWAYS));
    let laptop = site.laptop("e4004", "hr", Posture::Compliant);
    let _agent = laptop.connect().expect("connects");
    assert!(netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()));
    let metrics = site.metrics();
    for line in [
        "ztgw_sessions 1",
        "ztgw_admissions_total{outcome=\"granted\"} 1",
        "ztgw_wireguard_peers 1",
        "ztgw_sessions_orphans_removed_total 0",
        "ztgw_wireguard_handshakes_total{stage=\"response\"}",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    let out = laptop.agent(&["disconnect"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!laptop.reaches_dns(), "the tunnel is gone");
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "disconnected");
    assert!(site.ztgw_ok(&["session", "list", "--json"]).contains("[]"));
}

#[test]
fn an_incident_reported_from_the_laptop_revokes_it_and_notifies_the_security_unit() {
    let notified = tempfile::tempdir().expect("tempdir");
    let out = notified.path().join("incident.json");
    let mut site = Site::new_with(&lab_policy(ALWAYS), |settings| {
        settings.replace(
            "notify_command = []",
            &format!(
                "notify_command = [\"sh\", \"-c\", \"cat > {}\"]",
                out.display()
            ),
        )
    });
    let laptop = site.laptop("e5005", "finance", Posture::Compliant);
    let _agent = laptop.connect().expect("connects");
    assert!(netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()));
    let reported = laptop.agent(&[
        "report-incident",
        "--kind",
        "malware",
        "--note",
        "odd popups",
    ]);
    assert!(
        reported.status.success(),
        "{}",
        String::from_utf8_lossy(&reported.stderr)
    );
    assert!(!laptop.reaches_dns(), "the tunnel is cut");
    let incidents = site.journal("incident.reported");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["kind"], "malware");
    assert_eq!(incidents[0]["device"], laptop.device.as_str());
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "incident");
    let note: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("the notification ran")).expect("JSON");
    assert_eq!(note["type"], "incident.reported");
    assert_eq!(note["note"], "odd popups");
    // The device is out of service: it cannot connect again.
    assert!(laptop.connect().is_err());
}

/// A schedule window that closes during the session cuts it at that instant (within a
/// second), not at the next re-check. Takes up to two minutes: schedules have minutes.
#[test]
fn the_end_of_the_window_cuts_the_session_at_that_instant() {
    use time::OffsetDateTime;
    // The window closes at a minute boundary 40 to 100 seconds from now (after waiting
    // out midnight, so that it is today's).
    let mut now = OffsetDateTime::now_utc();
    if (now + time::Duration::seconds(100)).date() != now.date() {
        std::thread::sleep(Duration::from_secs(105));
        now = OffsetDateTime::now_utc();
    }
    let end = now + time::Duration::seconds(100);
    let end = end
        .replace_second(0)
        .expect("second")
        .replace_nanosecond(0)
        .expect("ns");
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [now.weekday().number_days_from_monday() as usize];
    let schedule = format!(
        "timezone = \"UTC\"\ndays = [\"{day}\"]\nhours = [\"00:00-{:02}:{:02}\"]",
        end.hour(),
        end.minute()
    );
    let mut site = Site::new(&lab_policy(&schedule));
    let laptop = site.laptop("e6006", "finance", Posture::Compliant);
    let _agent = laptop.connect().expect("connects inside the window");
    assert!(netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()));
    let until_end = (end - OffsetDateTime::now_utc())
        .whole_milliseconds()
        .max(0) as u64;
    let _stream = Proc::spawn({
        let mut c = laptop.ns.command(ztgw_tests::binary("netns-probe"));
        c.args(["udp-stream", &format!("{DNS}:53"), "--interval-ms", "5"])
            .args(["--duration-ms", &(until_end + 3000).to_string()]);
        c
    });
    std::thread::sleep(Duration::from_millis(until_end + 2500));
    let stats: serde_json::Value = serde_json::from_str(&site.servers.ask("stats")).expect("stats");
    let last = stats["udp/53"]["last_ms"]
        .as_u64()
        .expect("the stream flowed");
    let end_ms = (end.unix_timestamp() * 1000) as u64;
    assert!(
        last >= end_ms.saturating_sub(1000),
        "the stream flowed until near the end"
    );
    assert!(
        last <= end_ms + 1000,
        "traffic went on {} ms after the window closed",
        last.saturating_sub(end_ms)
    );
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "window-ended");
}

/// A policy reload re-evaluates live sessions: a role that loses its schedule loses its
/// sessions at once.
#[test]
fn a_policy_reload_ends_sessions_it_no_longer_allows() {
    let mut site = Site::new(&lab_policy(ALWAYS));
    let laptop = site.laptop("e7007", "finance", Posture::Compliant);
    let _agent = laptop.connect().expect("connects");
    assert!(netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()));
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(time::OffsetDateTime::now_utc()
        .weekday()
        .number_days_from_monday()
        as usize
        + 3)
        % 7];
    let closed = format!("timezone = \"UTC\"\ndays = [\"{day}\"]\nhours = [\"08:00-17:00\"]");
    let policy = site.config.with_file_name("policy.toml");
    std::fs::write(&policy, lab_policy(&closed)).expect("policy");
    site.ztgw_ok(&["policy", "reload"]);
    assert!(!laptop.reaches_dns(), "the session is gone");
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert!(
        ended[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("policy: outside the schedule")),
        "{ended:?}"
    );
}

/// A session without traffic ends after the idle timeout (G9); keepalives do not count.
#[test]
fn an_idle_session_ends_after_the_idle_timeout() {
    let policy = format!("[settings]\nidle_timeout = \"4s\"\n{}", lab_policy(ALWAYS));
    let mut site = Site::new(&policy);
    let laptop = site.laptop("e8008", "hr", Posture::Compliant);
    let _agent = laptop.connect().expect("connects");
    assert!(netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()));
    // Silence (the client keeps sending keepalives every 25 s, which are not traffic).
    assert!(
        netns::eventually(Duration::from_secs(15), || !site
            .journal("session.ended")
            .is_empty()),
        "the idle session ends"
    );
    let ended = site.journal("session.ended");
    assert_eq!(ended[0]["reason"], "idle");
    assert!(!laptop.reaches_dns());
}

/// A role that requires a second factor (G8): refused without the code, admitted with
/// it, and the same code cannot be used twice.
#[test]
fn a_role_with_a_second_factor_needs_a_fresh_code() {
    let policy = lab_policy(ALWAYS).replace(
        "[roles.finance]\n",
        "[roles.finance]\nsecond_factor = \"8h\"\n",
    );
    let mut site = Site::new(&policy);
    let laptop = site.laptop("e9009", "finance", Posture::Compliant);
    assert!(
        laptop.totp_secret.is_some(),
        "enrolment shows the secret once"
    );
    let err = laptop.connect().expect_err("no code, no session");
    assert!(err.contains("second-factor-failed"), "{err}");
    let code = laptop.totp_code();
    let agent = laptop
        .connect_with(&["--second-factor", &code])
        .expect("admitted with the code");
    assert!(netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()));
    let out = laptop.agent(&["disconnect"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(agent);
    let err = laptop
        .connect_with(&["--second-factor", &code])
        .expect_err("replayed");
    assert!(
        err.contains("second-factor-failed"),
        "the same answer for a replay: {err}"
    );
    let denied = site.journal("admission.denied");
    assert_eq!(denied.len(), 2, "{denied:?}");
}

/// A role's second factor is asked again after its time; a laptop that cannot give it
/// (no one at the terminal) loses the session at that re-check.
#[test]
fn the_second_factor_is_asked_again_after_its_time() {
    let policy = format!(
        "[settings]\nposture_recheck = \"5s\"\n{}",
        lab_policy(ALWAYS).replace(
            "[roles.finance]\n",
            "[roles.finance]\nsecond_factor = \"2s\"\n"
        )
    );
    let mut site = Site::new(&policy);
    let laptop = site.laptop("e9010", "finance", Posture::Compliant);
    let code = laptop.totp_code();
    let _agent = laptop
        .connect_with(&["--second-factor", &code])
        .expect("admitted");
    assert!(
        netns::eventually(Duration::from_secs(20), || !site
            .journal("session.ended")
            .is_empty()),
        "the session ends at the re-check that lacks the code"
    );
    assert_eq!(
        site.journal("session.ended")[0]["reason"],
        "second-factor-failed"
    );
}
