//! Durations written as people write them: `30d`, `72h`, `1h30m`, `10s`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration parsed from `<number><unit>` groups, units `d`, `h`, `m`, `s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// Parses `s`. An empty string, a missing unit, an unknown unit, zero, or an
    /// overflow is an error that says which.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("a duration is empty (write e.g. 30d, 72h, 1h30m, 10s)".into());
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                other => {
                    return Err(format!("{s:?}: unknown unit {other:?} (use d, h, m or s)"));
                }
            };
            if digits.is_empty() {
                return Err(format!("{s:?}: a unit must follow a number"));
            }
            let n: u64 = digits
                .parse()
                .map_err(|_| format!("{s:?}: number too large"))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("{s:?}: duration too large"))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(format!("{s:?}: the last number has no unit (d, h, m or s)"));
        }
        if total == 0 {
            return Err(format!("{s:?}: a duration must be longer than zero"));
        }
        Ok(Self(Duration::from_secs(total)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= len {
                write!(f, "{}{unit}", secs / len)?;
                secs %= len;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let cases: &[(&str, Option<u64>)] = &[
            ("30d", Some(30 * 86_400)),
            ("72h", Some(72 * 3_600)),
            ("1h30m", Some(5_400)),
            ("10s", Some(10)),
            ("", None),
            ("10", None),
            ("h", None),
            ("5w", None),
            ("0s", None),
            ("99999999999999999999d", None),
        ];
        for (input, expected) in cases {
            let got = HumanDuration::parse(input).ok().map(|d| d.get().as_secs());
            assert_eq!(got, *expected, "{input:?}");
        }
        assert_eq!(HumanDuration::from_secs(5_400).to_string(), "1h30m");
        assert_eq!(HumanDuration::from_secs(86_401).to_string(), "1d1s");
    }
}
