//! One-time nonces for posture reports: the gateway hands one to a device, and accepts a
//! report carrying it once, within its lifetime. A replayed report is refused.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};
use ztgw_pki::identity::DeviceId;

/// How long a nonce may be used.
pub const NONCE_LIFETIME: Duration = Duration::minutes(2);
/// Outstanding nonces per device: asking again replaces the oldest.
pub const MAX_NONCES_PER_DEVICE: usize = 4;
/// Outstanding nonces in all (bounded by the number of enrolled devices anyway).
pub const MAX_NONCES: usize = 100_000;

#[derive(Debug, Default)]
pub struct Nonces {
    issued: HashMap<DeviceId, Vec<(String, OffsetDateTime)>>,
    total: usize,
}

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceError {
    /// Never issued to this device, already used, or expired.
    Unknown,
    /// Too many outstanding in all.
    Full,
}

impl Nonces {
    /// Records `nonce` (fresh randomness from the caller) for `device`.
    pub fn issue(
        &mut self,
        device: &DeviceId,
        nonce: String,
        now: OffsetDateTime,
    ) -> Result<(), NonceError> {
        self.expire(now);
        if self.total >= MAX_NONCES {
            return Err(NonceError::Full);
        }
        let list = self.issued.entry(device.clone()).or_default();
        if list.len() >= MAX_NONCES_PER_DEVICE {
            list.remove(0);
            self.total -= 1;
        }
        list.push((nonce, now + NONCE_LIFETIME));
        self.total += 1;
        Ok(())
    }

    /// Takes `nonce` if it was issued to `device` and is still valid.
    pub fn consume(
        &mut self,
        device: &DeviceId,
        nonce: &str,
        now: OffsetDateTime,
    ) -> Result<(), NonceError> {
        let list = self.issued.get_mut(device).ok_or(NonceError::Unknown)?;
        let at = list
            .iter()
            .position(|(n, until)| n == nonce && *until > now)
            .ok_or(NonceError::Unknown)?;
        list.remove(at);
        self.total -= 1;
        if list.is_empty() {
            self.issued.remove(device);
        }
        Ok(())
    }

    fn expire(&mut self, now: OffsetDateTime) {
        let mut total = 0;
        self.issued.retain(|_, list| {
            list.retain(|(_, until)| *until > now);
            total += list.len();
            !list.is_empty()
        });
        self.total = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_good_once_for_its_device_within_its_lifetime() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let a = "dev-a".parse::<DeviceId>().expect("id");
        let b = "dev-b".parse::<DeviceId>().expect("id");
        let mut n = Nonces::default();
        n.issue(&a, "n1".into(), t0).expect("issue");
        n.issue(&a, "n2".into(), t0).expect("issue");
        assert_eq!(
            n.consume(&b, "n1", t0),
            Err(NonceError::Unknown),
            "other device"
        );
        assert_eq!(n.consume(&a, "n1", t0), Ok(()));
        assert_eq!(n.consume(&a, "n1", t0), Err(NonceError::Unknown), "replay");
        let late = t0 + NONCE_LIFETIME + Duration::seconds(1);
        assert_eq!(
            n.consume(&a, "n2", late),
            Err(NonceError::Unknown),
            "expired"
        );
        for i in 0..10 {
            n.issue(&a, format!("m{i}"), t0).expect("issue");
        }
        assert_eq!(
            n.consume(&a, "m0", t0),
            Err(NonceError::Unknown),
            "oldest replaced"
        );
        assert_eq!(n.consume(&a, "m9", t0), Ok(()));
    }
}
