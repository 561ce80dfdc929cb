//! The session lifecycle on a virtual clock: no sleeps.

use time::macros::datetime;
use ztgw_config::policy::Network;

use super::*;

const T0: OffsetDateTime = datetime!(2026-11-30 09:00 UTC);

fn terms(ends_at: OffsetDateTime, ends_with_window: bool) -> Terms {
    Terms {
        role: "finance".into(),
        schedule: "office".into(),
        ends_at,
        ends_with_window,
        recheck_every: Duration::minutes(5),
        idle_timeout: Duration::minutes(30),
        second_factor_every: None,
    }
}

/// Terms of a session whose window ends in eight hours.
fn day() -> Terms {
    terms(T0 + Duration::hours(8), true)
}

fn table() -> Sessions {
    Sessions::new(Pool::new(Network::parse("100.64.0.0/24").expect("net")), 3)
}

fn admit(t: &mut Sessions, id: &str, device: &str, terms: &Terms, now: OffsetDateTime) -> Session {
    t.admit(
        id.into(),
        device.parse().expect("device"),
        "e1".parse().expect("employee"),
        terms,
        now,
    )
    .expect("admit")
    .0
}

/// Steps the clock one second at a time from `from` to `to`, collecting what ends.
fn run(
    t: &mut Sessions,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<(String, String, OffsetDateTime)> {
    let mut ended = Vec::new();
    let mut now = from;
    while now <= to {
        for (s, r) in t.due(now) {
            ended.push((s.id, r.as_string(), now));
        }
        now += Duration::seconds(1);
    }
    ended
}

#[test]
fn the_window_end_cuts_the_session_at_that_instant() {
    let mut t = table();
    let end = T0 + Duration::minutes(3);
    admit(&mut t, "s1", "dev-a", &terms(end, true), T0);
    assert_eq!(t.next_deadline(), Some(end));
    let ended = run(&mut t, T0, T0 + Duration::minutes(10));
    assert_eq!(ended, vec![("s1".into(), "window-ended".into(), end)]);
    assert!(t.is_empty());
}

#[test]
fn the_maximum_lifetime_is_named_as_such() {
    let mut t = table();
    admit(
        &mut t,
        "s1",
        "dev-a",
        &terms(T0 + Duration::minutes(2), false),
        T0,
    );
    let ended = run(&mut t, T0, T0 + Duration::minutes(3));
    assert_eq!(ended[0].1, "max-lifetime");
}

#[test]
fn rechecks_keep_a_session_alive_and_a_missed_one_ends_it_after_the_grace() {
    let mut t = table();
    admit(&mut t, "s1", "dev-a", &day(), T0);
    // On time, twice: still alive (with traffic, so idle does not end it).
    for k in 1..=2 {
        let at = T0 + Duration::minutes(5 * k);
        t.activity("s1", at);
        assert!(matches!(
            t.recheck("s1", true, None, at),
            Some(Verdict::Continue { .. })
        ));
    }
    let last = T0 + Duration::minutes(10);
    let ended = run(&mut t, last, last + Duration::minutes(10));
    assert_eq!(
        ended,
        vec![(
            "s1".into(),
            "posture-recheck-missed".into(),
            last + Duration::minutes(5) + RECHECK_GRACE
        )]
    );
}

#[test]
fn a_failed_recheck_ends_the_session_or_quarantines_it() {
    let mut t = table();
    admit(&mut t, "s1", "dev-a", &day(), T0);
    admit(&mut t, "s2", "dev-b", &day(), T0);
    let at = T0 + Duration::minutes(5);
    assert!(matches!(t.recheck("s1", false, None, at), Some(Verdict::End(s)) if s.id == "s1"));
    assert!(t.get("s1").is_none());
    assert_eq!(
        t.recheck("s2", false, Some("quarantine"), at),
        Some(Verdict::Quarantine {
            role: "quarantine".into(),
            next_due: at + Duration::minutes(5)
        })
    );
    assert_eq!(t.get("s2").map(|s| s.role.as_str()), Some("quarantine"));
    // Compliant again: back to the admitted role.
    assert!(matches!(
        t.recheck("s2", true, Some("quarantine"), at + Duration::minutes(5)),
        Some(Verdict::Restore { role, .. }) if role == "finance"
    ));
    assert_eq!(t.recheck("nope", true, None, at), None);
}

#[test]
fn idle_sessions_end_after_the_idle_timeout() {
    let mut t = table();
    admit(&mut t, "s1", "dev-a", &day(), T0);
    // Re-checks keep coming, but no traffic.
    let mut ended = Vec::new();
    let mut now = T0;
    while now <= T0 + Duration::minutes(40) && ended.is_empty() {
        if (now - T0).whole_seconds() % 300 == 0 {
            t.recheck("s1", true, None, now);
        }
        ended = t.due(now);
        now += Duration::seconds(1);
    }
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].1, EndReason::Idle);
    assert_eq!(now - Duration::seconds(1), T0 + Duration::minutes(30));
}

#[test]
fn revocation_ends_every_session_of_the_device_at_once_and_frees_its_address() {
    let mut t = table();
    let a = admit(&mut t, "s1", "dev-a", &day(), T0);
    admit(&mut t, "s2", "dev-b", &day(), T0);
    let gone = t.end_where(|s| s.device.as_str() == "dev-a");
    assert_eq!(gone.len(), 1);
    assert_eq!(t.len(), 1);
    // Until its peer is gone from the data plane, the address stays reserved.
    let later = terms(T0 + Duration::hours(8), true);
    let c = admit(&mut t, "s3", "dev-c", &later, T0);
    assert_ne!(c.tunnel_addr, a.tunnel_addr);
    t.release(a.tunnel_addr);
    let d = admit(&mut t, "s4", "dev-d", &later, T0);
    assert_eq!(d.tunnel_addr, a.tunnel_addr, "then it is reused");
}

#[test]
fn a_new_admission_replaces_the_devices_old_session_and_the_table_is_bounded() {
    let mut t = table();
    admit(&mut t, "s1", "dev-a", &day(), T0);
    let (_, replaced) = t
        .admit(
            "s2".into(),
            "dev-a".parse().expect("d"),
            "e1".parse().expect("e"),
            &day(),
            T0,
        )
        .expect("admit");
    assert_eq!(replaced.map(|s| s.id), Some("s1".into()));
    admit(&mut t, "s3", "dev-b", &day(), T0);
    admit(&mut t, "s4", "dev-c", &day(), T0);
    let full = t.admit(
        "s5".into(),
        "dev-d".parse().expect("d"),
        "e1".parse().expect("e"),
        &day(),
        T0,
    );
    assert_eq!(full.map(|_| ()), Err(Full::Sessions));
}

#[test]
fn a_policy_reload_can_bring_the_end_forward() {
    let mut t = table();
    admit(
        &mut t,
        "s1",
        "dev-a",
        &terms(T0 + Duration::hours(8), false),
        T0,
    );
    t.shorten("s1", T0 + Duration::minutes(1));
    let ended = run(&mut t, T0, T0 + Duration::minutes(2));
    assert_eq!(
        ended,
        vec![(
            "s1".into(),
            "window-ended".into(),
            T0 + Duration::minutes(1)
        )]
    );
}

#[test]
fn the_second_factor_falls_due_again_after_its_time() {
    let mut t = table();
    let terms = Terms {
        second_factor_every: Some(Duration::hours(8)),
        ..day()
    };
    admit(&mut t, "s1", "dev-a", &terms, T0);
    admit(&mut t, "s2", "dev-b", &day(), T0);
    assert!(!t.second_factor_due("s1", T0 + Duration::hours(7)));
    assert!(t.second_factor_due("s1", T0 + Duration::hours(8)));
    assert!(
        !t.second_factor_due("s2", T0 + Duration::hours(9)),
        "roles without one"
    );
    t.second_factor_given("s1", T0 + Duration::hours(8));
    assert!(!t.second_factor_due("s1", T0 + Duration::hours(15)));
    assert!(
        t.of_device(&"dev-b".parse().expect("id"))
            .is_some_and(|s| s.id == "s2")
    );
}
