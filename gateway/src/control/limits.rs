//! Per-source rate limits, checked before the work they protect.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ztgw_config::settings::ControlSection;

/// The keyed limiters of the control plane. Their key stores grow with the number of
/// sources seen; [`SourceLimits::forget_idle`] (called every few seconds) trims them.
#[derive(Debug)]
pub struct SourceLimits {
    handshakes: DefaultKeyedRateLimiter<IpAddr>,
    enrolments: DefaultKeyedRateLimiter<IpAddr>,
    admissions: DefaultKeyedRateLimiter<IpAddr>,
}

impl SourceLimits {
    pub fn new(control: &ControlSection) -> Self {
        let nz = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            handshakes: RateLimiter::keyed(
                Quota::per_second(nz(control.handshakes_per_second_per_source))
                    .allow_burst(nz(control.handshake_burst)),
            ),
            enrolments: RateLimiter::keyed(
                Quota::per_minute(nz(control.enrolments_per_minute_per_source))
                    .allow_burst(nz(control.enrolment_burst)),
            ),
            admissions: RateLimiter::keyed(
                Quota::per_second(nz(control.admissions_per_second_per_source)).allow_burst(nz(
                    control.admissions_per_second_per_source.saturating_mul(2),
                )),
            ),
        }
    }

    /// Whether `source` may start another TLS handshake now.
    pub fn allow_handshake(&self, source: IpAddr) -> bool {
        self.handshakes.check_key(&source).is_ok()
    }

    /// Whether `source` may make another enrolment attempt now.
    pub fn allow_enrolment(&self, source: IpAddr) -> bool {
        self.enrolments.check_key(&source).is_ok()
    }

    /// Whether `source` may make another admission request now.
    pub fn allow_admission(&self, source: IpAddr) -> bool {
        self.admissions.check_key(&source).is_ok()
    }

    /// Drops the state of sources that have been quiet long enough to be back at full burst.
    pub fn forget_idle(&self) {
        self.handshakes.retain_recent();
        self.enrolments.retain_recent();
        self.admissions.retain_recent();
        self.admissions.shrink_to_fit();
        self.handshakes.shrink_to_fit();
        self.enrolments.shrink_to_fit();
    }

    /// How many sources the limiters currently remember.
    pub fn tracked_sources(&self) -> usize {
        self.handshakes.len() + self.enrolments.len()
    }
}
