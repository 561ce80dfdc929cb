//! Typed identities and how they are carried in certificates.
//!
//! A device certificate names its device and its employee as SAN URIs
//! (`urn:ztgw:device:ID`, `urn:ztgw:employee:ID`) and binds the device's WireGuard public
//! key in a non-critical extension ([`WG_KEY_OID`]); an auditor certificate names the
//! auditor as `urn:ztgw:auditor:NAME`. [`CertificateIdentity::from_der`] is the only way
//! the rest of ztgw learns who a certificate belongs to.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

/// Object identifier of the extension that binds a device's WireGuard public key.
///
/// Provisional: it sits under the documentation enterprise number of RFC 7612 (32473)
/// until ztgw's own IANA Private Enterprise Number is registered. Changing it means
/// re-issuing every device certificate, so it lives in this one constant.
pub const WG_KEY_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 32473, 7370, 1, 1];

/// SAN URI prefix naming a device.
pub const DEVICE_URI_PREFIX: &str = "urn:ztgw:device:";
/// SAN URI prefix naming an employee.
pub const EMPLOYEE_URI_PREFIX: &str = "urn:ztgw:employee:";
/// SAN URI prefix naming an auditor.
pub const AUDITOR_URI_PREFIX: &str = "urn:ztgw:auditor:";
/// SAN URI prefix naming an operator of the web console (a security unit's member or an
/// auditor signing in with a browser).
pub const OPERATOR_URI_PREFIX: &str = "urn:ztgw:operator:";

/// Longest identifier accepted anywhere (device, employee, auditor, role names).
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {MAX_ID_LEN} characters")]
    TooLong { kind: &'static str },
    #[error(
        "{kind} {value:?} may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit"
    )]
    BadCharacter { kind: &'static str, value: String },
}

fn check_id(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind });
    }
    let first_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok {
        return Err(IdError::BadCharacter {
            kind,
            value: value.chars().take(MAX_ID_LEN + 8).collect(),
        });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_id($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A device's registry id (`dev-` followed by random characters), chosen by the gateway.
    DeviceId,
    "device id"
);
id_type!(
    /// An employee's id, chosen by the security unit (e.g. a personnel number).
    EmployeeId,
    "employee id"
);
id_type!(
    /// An auditor's name, chosen by the security unit.
    AuditorName,
    "auditor name"
);
id_type!(
    /// A web console operator's name, chosen by the security unit.
    OperatorName,
    "operator name"
);

impl DeviceId {
    /// A fresh device id from 10 random bytes supplied by the caller.
    pub fn from_random(bytes: [u8; 10]) -> Self {
        const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
        let mut s = String::from("dev-");
        // 80 bits as 16 base-32 characters.
        let mut acc: u128 = 0;
        for b in bytes {
            acc = (acc << 8) | u128::from(b);
        }
        for i in 0..16 {
            let idx = ((acc >> (5 * (15 - i))) & 31) as usize;
            s.push(char::from(ALPHABET[idx]));
        }
        Self(s)
    }
}

/// A WireGuard (Curve25519) public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WgPublicKey([u8; 32]);

/// Why a string is not a WireGuard public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a WireGuard public key: expected 32 bytes in standard base64 (44 characters)")]
pub struct WgKeyError;

impl WgPublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_base64(s: &str) -> Result<Self, WgKeyError> {
        let bytes = B64.decode(s.trim()).map_err(|_| WgKeyError)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| WgKeyError)?;
        Ok(Self(arr))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for WgPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgPublicKey({})", self.to_base64())
    }
}

impl Serialize for WgPublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for WgPublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// A certificate serial number: 16 bytes, positive, never zero.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SerialNumber(Vec<u8>);

impl SerialNumber {
    /// A serial from 16 caller-supplied random bytes (the top bit is cleared so the DER
    /// integer stays positive, and a leading zero byte is avoided so its encoding is stable).
    pub fn from_random(mut bytes: [u8; 16]) -> Self {
        bytes[0] &= 0x7f;
        if bytes[0] == 0 {
            bytes[0] = 1;
        }
        Self(bytes.to_vec())
    }

    /// The serial as it is written in a certificate or read from one.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 40 {
            return None;
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SerialNumber({})", self.to_hex())
    }
}

/// Who a verified certificate belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateIdentity {
    Device {
        device: DeviceId,
        employee: EmployeeId,
        wg_key: WgPublicKey,
        serial: SerialNumber,
        not_after: OffsetDateTime,
    },
    Auditor {
        name: AuditorName,
        serial: SerialNumber,
        not_after: OffsetDateTime,
    },
    /// A person signing in to the web console; what they may do is the registry's record.
    Operator {
        name: OperatorName,
        serial: SerialNumber,
        not_after: OffsetDateTime,
    },
}

/// Why a certificate does not carry a usable ztgw identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the certificate is not valid DER")]
    Malformed,
    #[error("the certificate names no ztgw device, employee, auditor or operator")]
    NoIdentity,
    #[error("the certificate names {0} more than once")]
    Duplicate(&'static str),
    #[error("the certificate names a device but no employee, or an employee but no device")]
    Incomplete,
    #[error("the certificate mixes identities (device, auditor, operator)")]
    Mixed,
    #[error("the certificate's {0}")]
    BadId(#[from] IdError),
    #[error("the device certificate has no WireGuard key extension")]
    MissingWgKey,
    #[error("the WireGuard key extension is malformed or marked critical")]
    BadWgKey,
}

impl CertificateIdentity {
    /// Reads the identity from a certificate that TLS has already verified.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (rest, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|_| IdentityError::Malformed)?;
        if !rest.is_empty() {
            return Err(IdentityError::Malformed);
        }
        let mut device = None;
        let mut employee = None;
        let mut auditor = None;
        let mut operator = None;
        let mut wg_key = None;
        for ext in cert.extensions() {
            if oid_is(&ext.oid, WG_KEY_OID) {
                if wg_key.is_some() {
                    return Err(IdentityError::Duplicate("a WireGuard key"));
                }
                if ext.critical {
                    return Err(IdentityError::BadWgKey);
                }
                wg_key = Some(decode_wg_key_extension(ext.value)?);
            }
        }
        let san = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::Malformed)?;
        for name in san.iter().flat_map(|san| san.value.general_names.iter()) {
            let GeneralName::URI(uri) = name else {
                continue;
            };
            if let Some(id) = uri.strip_prefix(DEVICE_URI_PREFIX) {
                set_once(&mut device, DeviceId::new(id)?, "a device")?;
            } else if let Some(id) = uri.strip_prefix(EMPLOYEE_URI_PREFIX) {
                set_once(&mut employee, EmployeeId::new(id)?, "an employee")?;
            } else if let Some(id) = uri.strip_prefix(AUDITOR_URI_PREFIX) {
                set_once(&mut auditor, AuditorName::new(id)?, "an auditor")?;
            } else if let Some(id) = uri.strip_prefix(OPERATOR_URI_PREFIX) {
                set_once(&mut operator, OperatorName::new(id)?, "an operator")?;
            }
        }
        let serial = SerialNumber::from_slice(cert.raw_serial());
        let not_after = cert.validity().not_after.to_datetime();
        match (device, employee, auditor, operator) {
            (Some(device), Some(employee), None, None) => Ok(Self::Device {
                device,
                employee,
                wg_key: wg_key.ok_or(IdentityError::MissingWgKey)?,
                serial,
                not_after,
            }),
            (None, None, Some(name), None) => Ok(Self::Auditor {
                name,
                serial,
                not_after,
            }),
            (None, None, None, Some(name)) => Ok(Self::Operator {
                name,
                serial,
                not_after,
            }),
            (None, None, None, None) => Err(IdentityError::NoIdentity),
            (_, _, Some(_), _) | (_, _, _, Some(_)) => Err(IdentityError::Mixed),
            _ => Err(IdentityError::Incomplete),
        }
    }

    pub fn serial(&self) -> &SerialNumber {
        match self {
            Self::Device { serial, .. }
            | Self::Auditor { serial, .. }
            | Self::Operator { serial, .. } => serial,
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &'static str) -> Result<(), IdentityError> {
    if slot.replace(value).is_some() {
        return Err(IdentityError::Duplicate(what));
    }
    Ok(())
}

fn oid_is(oid: &x509_parser::der_parser::oid::Oid<'_>, arcs: &[u64]) -> bool {
    oid.iter().is_some_and(|it| it.eq(arcs.iter().copied()))
}

/// The DER content of the WireGuard key extension: an OCTET STRING of 32 bytes.
pub fn encode_wg_key_extension(key: &WgPublicKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(34);
    out.extend_from_slice(&[0x04, 0x20]);
    out.extend_from_slice(key.as_bytes());
    out
}

fn decode_wg_key_extension(value: &[u8]) -> Result<WgPublicKey, IdentityError> {
    match value {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => {
            let mut key = [0u8; 32];
            key.copy_from_slice(rest);
            Ok(WgPublicKey(key))
        }
        _ => Err(IdentityError::BadWgKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        let cases: &[(&str, bool)] = &[
            ("e1029", true),
            ("amina.benali", true),
            ("A_b-9", true),
            ("", false),
            ("-lead", false),
            ("has space", false),
            ("semi;colon", false),
            ("ünicode", false),
        ];
        for (input, ok) in cases {
            assert_eq!(EmployeeId::new(*input).is_ok(), *ok, "{input:?}");
        }
        assert!(EmployeeId::new("x".repeat(MAX_ID_LEN)).is_ok());
        assert_eq!(
            EmployeeId::new("x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong {
                kind: "employee id"
            })
        );
    }

    #[test]
    fn device_ids_from_random_are_valid_and_distinct() {
        let a = DeviceId::from_random([0; 10]);
        let b = DeviceId::from_random([0xff; 10]);
        assert_ne!(a, b);
        assert!(DeviceId::new(a.as_str()).is_ok());
        assert_eq!(a.as_str().len(), 20);
    }

    #[test]
    fn wg_key_round_trips_and_rejects_bad_input() {
        let key = WgPublicKey::from_bytes([7; 32]);
        assert_eq!(WgPublicKey::from_base64(&key.to_base64()), Ok(key));
        assert!(WgPublicKey::from_base64("AAAA").is_err());
        assert!(WgPublicKey::from_base64("not base64!").is_err());
        let ext = encode_wg_key_extension(&key);
        assert_eq!(decode_wg_key_extension(&ext), Ok(key));
        assert_eq!(
            decode_wg_key_extension(&ext[..33]),
            Err(IdentityError::BadWgKey)
        );
    }

    #[test]
    fn serials_are_positive_and_round_trip_hex() {
        let s = SerialNumber::from_random([0xff; 16]);
        assert_eq!(s.as_bytes()[0], 0x7f);
        let z = SerialNumber::from_random([0; 16]);
        assert_eq!(z.as_bytes()[0], 1);
        assert_eq!(SerialNumber::from_hex(&s.to_hex()), Some(s));
        assert_eq!(SerialNumber::from_hex("zz"), None);
        assert_eq!(SerialNumber::from_hex("abc"), None);
    }

    #[test]
    fn garbage_is_not_an_identity() {
        assert_eq!(
            CertificateIdentity::from_der(b"garbage"),
            Err(IdentityError::Malformed)
        );
    }
}
