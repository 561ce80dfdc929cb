//! Who is signed in to the console, and whether a form came from the console.
//!
//! TLS has verified the client certificate against the CA and the CRL in force; here the
//! certificate must name an operator whose registry record is current (not revoked, this
//! very serial). The role is the registry's. Every request is checked, so a revocation
//! takes effect on connections already open.
//!
//! A form that changes something carries a CSRF token: an HMAC, under a key the console
//! draws when it starts, of the operator, their certificate's serial and the half-day it
//! was issued in. Client certificates are sent by the browser to any page that asks, so
//! without it another site could make a signed-in operator's browser post a form.

use ring::hmac;
use ztgw_api::console::OperatorRole;
use ztgw_pki::{CertificateIdentity, OperatorName, SerialNumber};

use crate::context::Context;
use crate::device_auth::Presented;
use crate::registry::RegistryError;

/// How long a CSRF token is accepted: the half-day it was issued in and the next.
pub const CSRF_WINDOW_SECS: i64 = 12 * 3600;

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Operator {
    pub name: OperatorName,
    pub role: OperatorRole,
    pub serial: SerialNumber,
}

/// Why nobody is signed in.
#[derive(Debug)]
pub enum NotSignedIn {
    /// No client certificate.
    NoCertificate,
    /// A certificate of a device, an API auditor, or none of ours.
    NotAnOperator,
    /// Unknown, revoked, expired (a browser keeps its connection past the certificate's
    /// end), or not the operator's current certificate.
    NotCurrent,
    /// The registry could not be read.
    Registry(RegistryError),
}

/// The operator behind the connection's certificate.
pub fn identify(ctx: &Context, presented: &Presented) -> Result<Operator, NotSignedIn> {
    let (name, serial) = match presented {
        Presented::Nothing => return Err(NotSignedIn::NoCertificate),
        Presented::Identity(CertificateIdentity::Operator {
            name,
            serial,
            not_after,
        }) => {
            if *not_after <= ctx.clock.now() {
                return Err(NotSignedIn::NotCurrent);
            }
            (name, serial)
        }
        Presented::Identity(_) | Presented::Invalid(_) => return Err(NotSignedIn::NotAnOperator),
    };
    let record = ctx
        .registry
        .operator(name)
        .map_err(NotSignedIn::Registry)?
        .ok_or(NotSignedIn::NotCurrent)?;
    if record.revoked.is_some() || &record.serial != serial {
        return Err(NotSignedIn::NotCurrent);
    }
    Ok(Operator {
        name: record.name,
        role: record.role,
        serial: record.serial,
    })
}

/// The console's CSRF tokens.
#[derive(Debug)]
pub struct Csrf {
    key: hmac::Key,
}

impl Csrf {
    /// A key from 32 random bytes (drawn by the caller when the console starts).
    pub fn new(secret: [u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        }
    }

    /// The token for `operator`'s forms at `now` (Unix seconds).
    pub fn token(&self, operator: &Operator, now: i64) -> String {
        self.token_in(operator, now.div_euclid(CSRF_WINDOW_SECS))
    }

    /// Whether `token` was issued to `operator` in this window or the one before.
    pub fn check(&self, operator: &Operator, now: i64, token: &str) -> bool {
        let window = now.div_euclid(CSRF_WINDOW_SECS);
        [window, window - 1].into_iter().any(|w| {
            let expected = self.token_in(operator, w);
            bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                token.as_bytes(),
            ))
        })
    }

    fn token_in(&self, operator: &Operator, window: i64) -> String {
        use base64::Engine as _;
        let mut msg = Vec::with_capacity(128);
        msg.extend_from_slice(b"ztgw-console-csrf\0");
        msg.extend_from_slice(operator.name.as_str().as_bytes());
        msg.push(0);
        msg.extend_from_slice(operator.serial.as_bytes());
        msg.push(0);
        msg.extend_from_slice(&window.to_be_bytes());
        let tag = hmac::sign(&self.key, &msg);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, serial: u8) -> Operator {
        Operator {
            name: OperatorName::new(name).expect("name"),
            role: OperatorRole::SecurityUnit,
            serial: SerialNumber::from_random([serial; 16]),
        }
    }

    #[test]
    fn a_token_is_the_operators_own_for_a_day_at_most() {
        let csrf = Csrf::new([7; 32]);
        let amina = op("amina", 1);
        let t = 1_800_000_000;
        let token = csrf.token(&amina, t);
        assert!(csrf.check(&amina, t, &token));
        assert!(
            csrf.check(&amina, t + CSRF_WINDOW_SECS, &token),
            "next window"
        );
        assert!(
            !csrf.check(&amina, t + 2 * CSRF_WINDOW_SECS + 1, &token),
            "expired"
        );
        assert!(!csrf.check(&op("omar", 1), t, &token), "another operator");
        assert!(
            !csrf.check(&op("amina", 2), t, &token),
            "another certificate"
        );
        assert!(
            !Csrf::new([8; 32]).check(&amina, t, &token),
            "another console"
        );
        for forged in ["", "x", &token[1..], &format!("{token}A")] {
            assert!(!csrf.check(&amina, t, forged), "{forged:?}");
        }
    }
}
