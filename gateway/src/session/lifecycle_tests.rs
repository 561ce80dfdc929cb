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

/// Begins and commits an admission (its peer installed, in service).
fn admit(t: &mut Sessions, id: &str, device: &str, terms: &Terms, now: OffsetDateTime) -> Session {
    let pending = begin(t, id, device, terms, now).expect("begin");
    assert_eq!(t.commit(id, None), Commit::Live(Box::new(pending.clone())));
    pending
}

fn begin(
    t: &mut Sessions,
    id: &str,
    device: &str,
    terms: &Terms,
    now: OffsetDateTime,
) -> Result<Session, Full> {
    t.begin(
        id.into(),
        device.parse().expect("device"),
        "e1".parse().expect("employee"),
        terms,
        now,
    )
}

/// A re-check without a second factor.
fn check(compliant: bool, quarantine: Option<&str>) -> Recheck<'_> {
    Recheck {
        compliant,
        quarantine,
        factor: Factor::NotAsked,
    }
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
            t.recheck("s1", &check(true, None), at),
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
    assert!(matches!(
        t.recheck("s1", &check(false, None), at),
        Some(Verdict::End(s, EndReason::RecheckFailed)) if s.id == "s1"
    ));
    assert!(t.get("s1").is_none());
    assert_eq!(
        t.recheck("s2", &check(false, Some("quarantine")), at),
        Some(Verdict::Quarantine {
            role: "quarantine".into(),
            next_due: at + Duration::minutes(5)
        })
    );
    assert_eq!(t.get("s2").map(|s| s.role.as_str()), Some("quarantine"));
    // Compliant again: back to the admitted role.
    assert!(matches!(
        t.recheck("s2", &check(true, Some("quarantine")), at + Duration::minutes(5)),
        Some(Verdict::Restore { role, .. }) if role == "finance"
    ));
    assert_eq!(t.recheck("nope", &check(true, None), at), None);
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
            t.recheck("s1", &check(true, None), now);
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
    let gone = t.revoke(
        &Revoked::Device("dev-a".parse().expect("id")),
        &EndReason::DeviceRevoked,
    );
    assert_eq!(gone.len(), 1);
    assert_eq!(t.len(), 1);
    // Until its peer is gone from the data plane, the address stays reserved.
    let later = terms(T0 + Duration::hours(8), true);
    let c = admit(&mut t, "s3", "dev-c", &later, T0);
    assert_ne!(c.tunnel_addr, a.tunnel_addr);
    t.release("s1");
    let d = admit(&mut t, "s4", "dev-d", &later, T0);
    assert_eq!(d.tunnel_addr, a.tunnel_addr, "then it is reused");
}

#[test]
fn a_new_admission_replaces_the_devices_old_session_only_once_it_is_under_way() {
    let mut t = table();
    admit(&mut t, "s1", "dev-a", &day(), T0);
    begin(&mut t, "s2", "dev-a", &day(), T0).expect("begin");
    assert_eq!(
        begin(&mut t, "s3", "dev-a", &day(), T0),
        Err(Full::Busy),
        "admissions of one device are serialised"
    );
    assert!(
        t.get("s1").is_some(),
        "the old session stays until replaced"
    );
    let (old, reason) = t.take_replaced("s2").expect("replaced");
    assert_eq!((old.id.as_str(), reason), ("s1", EndReason::Replaced));
    assert!(matches!(t.commit("s2", None), Commit::Live(_)));
    t.release("s1");
    assert_eq!(t.len(), 1);
}

#[test]
fn a_full_table_or_pool_refuses_and_leaves_the_live_session_as_it_was() {
    let mut t = table();
    admit(&mut t, "s1", "dev-a", &day(), T0);
    admit(&mut t, "s2", "dev-b", &day(), T0);
    admit(&mut t, "s3", "dev-c", &day(), T0);
    assert_eq!(
        begin(&mut t, "s4", "dev-a", &day(), T0),
        Err(Full::Sessions)
    );
    assert!(t.get("s1").is_some());
    let mut small = Sessions::new(Pool::new(Network::parse("100.64.0.0/30").expect("net")), 9);
    admit(&mut small, "s1", "dev-a", &day(), T0);
    assert_eq!(
        begin(&mut small, "s2", "dev-a", &day(), T0),
        Err(Full::Addresses)
    );
    assert!(small.get("s1").is_some());
    assert_eq!(small.pending_len(), 0);
}

#[test]
fn a_revocation_during_an_admission_dooms_it() {
    let mut t = table();
    begin(&mut t, "s1", "dev-a", &day(), T0).expect("begin");
    let ended = t.revoke(
        &Revoked::Employee("e1".parse().expect("id")),
        &EndReason::EmployeeRevoked,
    );
    assert!(ended.is_empty(), "nothing live yet");
    assert!(matches!(
        t.commit("s1", None),
        Commit::End(s, EndReason::EmployeeRevoked) if s.id == "s1"
    ));
    assert!(t.is_empty());
    assert_eq!(t.draining_len(), 1);
    // A status read after the peer was installed wins too.
    begin(&mut t, "s2", "dev-b", &day(), T0).expect("begin");
    assert!(matches!(
        t.commit("s2", Some(EndReason::DeviceRevoked)),
        Commit::End(_, EndReason::DeviceRevoked)
    ));
}

#[test]
fn a_role_change_ends_the_sessions_of_the_old_role_not_an_admission_under_the_new_one() {
    let mut t = table();
    admit(&mut t, "s1", "dev-a", &day(), T0);
    admit(&mut t, "s2", "dev-b", &day(), T0);
    // dev-a's re-admission under hr is already under way when the change is applied.
    let hr = Terms {
        role: "hr".into(),
        ..day()
    };
    begin(&mut t, "s3", "dev-a", &hr, T0).expect("begin");
    let change = Revoked::Role("dev-a".parse().expect("device"), "hr".into());
    let reason = EndReason::RoleChanged("hr".into());
    assert_eq!(reason.as_string(), "role-changed: hr");
    let ended = t.revoke(&change, &reason);
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0].0.id, "s1");
    assert!(t.get("s2").is_some(), "another device keeps its session");
    assert!(
        matches!(t.commit("s3", None), Commit::Live(s) if s.role == "hr"),
        "the admission under the new role is not doomed"
    );
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
    t.shorten("s1", T0 + Duration::minutes(5));
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
    let given = Recheck {
        factor: Factor::Passed,
        ..check(true, None)
    };
    t.recheck("s1", &given, T0 + Duration::hours(8));
    assert!(!t.second_factor_due("s1", T0 + Duration::hours(15)));
    let missing = Recheck {
        factor: Factor::Failed,
        ..check(true, None)
    };
    assert!(matches!(
        t.recheck("s1", &missing, T0 + Duration::hours(16)),
        Some(Verdict::End(_, EndReason::SecondFactor))
    ));
    assert!(
        t.of_device(&"dev-b".parse().expect("id"))
            .is_some_and(|s| s.id == "s2")
    );
}
