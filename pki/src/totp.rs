//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), the
//! second factor a role may require (G8). The secret is made at enrolment, shown to the
//! employee once (for an authenticator app) and kept by the gateway; a code is accepted
//! for the current step or one step either side, and each step only once.

use zeroize::Zeroizing;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Secret length (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

/// A TOTP secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the code is not six digits")]
    Malformed,
    #[error("the code is wrong or too old")]
    Wrong,
    #[error("this code was already used")]
    Replayed,
}

impl TotpSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as authenticator apps take it (RFC 4648 base32, no padding).
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32(&self.0))
    }

    /// Reads a base32 secret as [`TotpSecret::base32`] writes it (case and padding
    /// ignored).
    pub fn from_base32(text: &str) -> Option<Self> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in text.trim().trim_end_matches('=').chars() {
            let v = match c.to_ascii_uppercase() {
                c @ 'A'..='Z' => c as u32 - 'A' as u32,
                c @ '2'..='7' => c as u32 - '2' as u32 + 26,
                _ => return None,
            };
            acc = (acc << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        Some(Self::new(out))
    }

    /// The `otpauth://` URI for a QR code.
    pub fn uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
            escape(issuer),
            escape(account),
            base32(&self.0),
            escape(issuer)
        ))
    }

    /// The code for `step`.
    pub fn code(&self, step: u64) -> u32 {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let tag = ring::hmac::sign(&key, &step.to_be_bytes());
        let h = tag.as_ref();
        let offset = usize::from(h[h.len() - 1] & 0x0f);
        let bin = (u32::from(h[offset]) & 0x7f) << 24
            | u32::from(h[offset + 1]) << 16
            | u32::from(h[offset + 2]) << 8
            | u32::from(h[offset + 3]);
        bin % 1_000_000
    }

    /// Checks `code` at `unix_now`; `last_step` is the step of the last code accepted
    /// for this secret. Returns the step to record.
    pub fn verify(&self, code: &str, unix_now: i64, last_step: u64) -> Result<u64, TotpError> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Malformed);
        }
        let value: u32 = code.parse().map_err(|_| TotpError::Malformed)?;
        let now = step_at(unix_now);
        let mut matched = None;
        for step in [now.saturating_sub(1), now, now + 1] {
            // Compare every candidate, so the time taken does not say which matched.
            if subtle::ConstantTimeEq::ct_eq(&self.code(step), &value).into() {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(TotpError::Wrong)?;
        if step <= last_step {
            return Err(TotpError::Replayed);
        }
        Ok(step)
    }
}

/// The step containing `unix` seconds.
pub fn step_at(unix: i64) -> u64 {
    (unix.max(0) / STEP_SECS) as u64
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 column (8 digits there; the last 6 here).
    #[test]
    fn rfc_6238_vectors() {
        let s = TotpSecret::new(b"12345678901234567890".to_vec());
        for (t, want) in [
            (59, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
        ] {
            assert_eq!(s.code(step_at(t)), want % 1_000_000, "t={t}");
        }
    }

    #[test]
    fn a_code_is_good_once_within_a_step_either_side() {
        let s = TotpSecret::new(b"12345678901234567890".to_vec());
        let t = 1_234_567_890;
        let code = format!("{:06}", s.code(step_at(t)));
        assert_eq!(s.verify(&code, t + 29, 0), Ok(step_at(t)));
        assert_eq!(s.verify(&code, t - 20, 0), Ok(step_at(t)), "a step early");
        assert_eq!(
            s.verify(&code, t + 95, 0),
            Err(TotpError::Wrong),
            "too late"
        );
        assert_eq!(s.verify(&code, t, step_at(t)), Err(TotpError::Replayed));
        assert_eq!(s.verify("12345", t, 0), Err(TotpError::Malformed));
        assert_eq!(s.verify("12a456", t, 0), Err(TotpError::Malformed));
        let wrong = format!("{:06}", (s.code(step_at(t)) + 1) % 1_000_000);
        assert_eq!(s.verify(&wrong, t, 0), Err(TotpError::Wrong));
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        let s = TotpSecret::new(b"12345678901234567890".to_vec());
        assert_eq!(&*s.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(TotpSecret::from_base32(&s.base32()), Some(s.clone()));
        assert_eq!(TotpSecret::from_base32("not base32!"), None);
        assert!(
            s.uri("ztgw gw.example", "e1029")
                .starts_with("otpauth://totp/ztgw%20gw.example:e1029?secret=GEZD")
        );
        assert!(!format!("{s:?}").contains("GEZD"));
    }
}
