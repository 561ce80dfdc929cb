//! Guessing the second factor: failures are counted per device, each one makes the next
//! attempt wait longer, and after a few the device is locked for a while (or until the
//! security unit unlocks it). Pure: the attempts come in and go out as plain values.
//!
//! A locked device, or one that must still wait, is refused without its code being
//! looked at, and with the same answer as a wrong code: nothing tells a guesser whether
//! a guess was right, or where it stands.

use time::{Duration, OffsetDateTime};

/// A device's second-factor failures since its last success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    pub failures: u32,
    pub last_failure: Option<OffsetDateTime>,
    pub locked_until: Option<OffsetDateTime>,
}

/// The bounds, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Failures before the device is locked.
    pub failures: u32,
    /// How long a lockout lasts.
    pub lockout: Duration,
}

/// Whether a code may be looked at now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Too soon after the last failure.
    Wait {
        until: OffsetDateTime,
    },
    /// Locked after too many failures.
    Locked {
        until: OffsetDateTime,
    },
}

/// The wait after `failures` failures: none after none, then 1, 2, 4, 8 … seconds, at
/// most a minute.
pub fn delay(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => Duration::seconds(1i64 << (n - 1).min(6)).min(Duration::minutes(1)),
    }
}

/// Whether a code of a device with `a` may be looked at `now`.
pub fn gate(a: &Attempts, now: OffsetDateTime) -> Gate {
    if let Some(until) = a.locked_until
        && now < until
    {
        return Gate::Locked { until };
    }
    if a.locked_until.is_some() {
        // The lockout is over: a fresh start.
        return Gate::Open;
    }
    match a.last_failure {
        Some(at) if now < at + delay(a.failures) => Gate::Wait {
            until: at + delay(a.failures),
        },
        _ => Gate::Open,
    }
}

/// What a failure at `now` makes of `a`; whether it locked the device.
pub fn failed(a: &Attempts, bounds: &Bounds, now: OffsetDateTime) -> (Attempts, bool) {
    let before = if a.locked_until.is_some_and(|u| now >= u) {
        Attempts::default()
    } else {
        *a
    };
    let failures = before.failures.saturating_add(1);
    let locks = failures >= bounds.failures.max(1);
    (
        Attempts {
            failures,
            last_failure: Some(now),
            locked_until: locks.then(|| now + bounds.lockout),
        },
        locks,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        failures: 5,
        lockout: Duration::minutes(15),
    };

    #[test]
    fn waits_grow_then_the_device_is_locked_then_free_again() {
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut a = Attempts::default();
        let mut now = t0;
        assert_eq!(gate(&a, now), Gate::Open);
        let mut waits = Vec::new();
        for i in 1..=4 {
            let (next, locked) = failed(&a, &B, now);
            assert!(!locked, "failure {i}");
            a = next;
            let Gate::Wait { until } = gate(&a, now) else {
                panic!("a wait after failure {i}");
            };
            waits.push((until - now).whole_seconds());
            now = until;
            assert_eq!(gate(&a, now), Gate::Open);
        }
        assert_eq!(waits, [1, 2, 4, 8]);
        let (next, locked) = failed(&a, &B, now);
        assert!(locked, "the fifth failure locks");
        a = next;
        assert_eq!(
            gate(&a, now + Duration::minutes(14)),
            Gate::Locked {
                until: now + Duration::minutes(15)
            }
        );
        let later = now + Duration::minutes(15);
        assert_eq!(gate(&a, later), Gate::Open, "the lockout ends by itself");
        let (after, locked) = failed(&a, &B, later);
        assert!(!locked);
        assert_eq!(after.failures, 1, "a fresh count after a lockout");
    }

    #[test]
    fn the_delay_is_bounded() {
        assert_eq!(delay(0), Duration::ZERO);
        assert_eq!(delay(40), Duration::minutes(1));
    }
}
