//! The one-time invitation that carries the security unit's prior approval (G1) to the
//! employee's device.
//!
//! An invitation is one string, `ztgw1-` followed by base64url of: a version byte, the
//! SHA-256 fingerprint of the CA to pin, the invitation id, a 32-byte secret, the control
//! plane's `host:port`, and a 4-byte checksum so that a mistyped invitation is told apart
//! from an unknown one before anything is sent. The gateway keeps only a
//! domain-separated SHA-256 of the secret ([`SecretHash`]) and compares in constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::secret::Secret;

const PREFIX: &str = "ztgw1-";
const VERSION: u8 = 1;
/// The version whose address field lists several gateways (`a:8443,b:8443`); an
/// invitation naming one gateway is still written as version 1, which every agent reads.
const VERSION_GATEWAYS: u8 = 2;
const CHECKSUM_LEN: usize = 4;
/// Longest control-plane address an invitation may carry.
pub const MAX_ADDRESS_LEN: usize = 255;
/// Longest invitation string accepted (bounds the decoder's work).
pub const MAX_INVITATION_LEN: usize = 512;

/// An invitation's registry id: `inv-` and 20 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InvitationId(String);

impl InvitationId {
    pub fn from_random(bytes: [u8; 10]) -> Self {
        Self(format!("inv-{}", hex(&bytes)))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("inv-")?;
        (rest.len() == 20
            && rest
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InvitationId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("{s:?} is not an invitation id"))
    }
}

impl From<InvitationId> for String {
    fn from(id: InvitationId) -> String {
        id.0
    }
}

impl fmt::Display for InvitationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The invitation's secret: 32 random bytes, never stored by the gateway.
pub type InvitationSecret = Secret<[u8; 32]>;

/// What an invitation string carries.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub ca_fingerprint: [u8; 32],
    pub id: InvitationId,
    pub secret: InvitationSecret,
    /// The control plane's address, `host:port`.
    pub control_address: String,
    /// The other gateways sharing the registry, `host:port` each: where the agent turns
    /// when this one does not answer.
    pub other_addresses: Vec<String>,
}

/// Why an invitation string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    #[error("it does not start with \"{PREFIX}\"")]
    Prefix,
    #[error("it is longer than any invitation ztgw issues")]
    TooLong,
    #[error("it contains characters an invitation never has")]
    Encoding,
    #[error("it is incomplete or has extra characters")]
    Length,
    #[error("it was not copied correctly (its checksum does not match)")]
    Checksum,
    #[error("it was made by a newer ztgw (format version {0})")]
    Version(u8),
    #[error("its control-plane address is not valid")]
    Address,
}

impl Invitation {
    /// The string handed to the employee.
    pub fn encode(&self) -> Result<String, InvitationError> {
        let mut all = vec![self.control_address.as_str()];
        all.extend(self.other_addresses.iter().map(String::as_str));
        if all.iter().any(|a| !valid_address(a)) {
            return Err(InvitationError::Address);
        }
        let joined = all.join(",");
        let addr = joined.as_bytes();
        let addr_len = u8::try_from(addr.len()).map_err(|_| InvitationError::Address)?;
        let id = self.id.as_str().as_bytes();
        let mut buf = Vec::with_capacity(1 + 32 + 1 + id.len() + 32 + 1 + addr.len() + 4);
        buf.push(if self.other_addresses.is_empty() {
            VERSION
        } else {
            VERSION_GATEWAYS
        });
        buf.extend_from_slice(&self.ca_fingerprint);
        buf.push(id.len() as u8); // an InvitationId is 24 bytes
        buf.extend_from_slice(id);
        buf.extend_from_slice(self.secret.expose());
        buf.push(addr_len);
        buf.extend_from_slice(addr);
        let sum = checksum(&buf);
        buf.extend_from_slice(&sum);
        Ok(format!("{PREFIX}{}", B64URL.encode(&buf)))
    }

    /// Parses a pasted invitation (surrounding white space is ignored).
    pub fn decode(s: &str) -> Result<Self, InvitationError> {
        let s = s.trim();
        if s.len() > MAX_INVITATION_LEN {
            return Err(InvitationError::TooLong);
        }
        let body = s.strip_prefix(PREFIX).ok_or(InvitationError::Prefix)?;
        let buf = B64URL.decode(body).map_err(|e| match e {
            base64::DecodeError::InvalidByte(..) => InvitationError::Encoding,
            _ => InvitationError::Length,
        })?;
        if buf.len() < CHECKSUM_LEN + 1 {
            return Err(InvitationError::Length);
        }
        let (payload, sum) = buf.split_at(buf.len() - CHECKSUM_LEN);
        if checksum(payload).as_slice() != sum {
            return Err(InvitationError::Checksum);
        }
        let mut r = Reader(payload);
        let version = r.byte()?;
        if version != VERSION && version != VERSION_GATEWAYS {
            return Err(InvitationError::Version(version));
        }
        let ca_fingerprint = r.array::<32>()?;
        let id_len = r.byte()?;
        let id = std::str::from_utf8(r.take(usize::from(id_len))?)
            .ok()
            .and_then(InvitationId::parse)
            .ok_or(InvitationError::Encoding)?;
        let secret = Secret::new(r.array::<32>()?);
        let addr_len = r.byte()?;
        let addresses = std::str::from_utf8(r.take(usize::from(addr_len))?)
            .map_err(|_| InvitationError::Address)?;
        if !r.0.is_empty() {
            return Err(InvitationError::Length);
        }
        let mut list: Vec<String> = if version == VERSION {
            vec![addresses.to_owned()]
        } else {
            addresses.split(',').map(str::to_owned).collect()
        };
        if list.iter().any(|a| !valid_address(a)) {
            return Err(InvitationError::Address);
        }
        let control_address = list.remove(0);
        Ok(Self {
            ca_fingerprint,
            id,
            secret,
            control_address,
            other_addresses: list,
        })
    }
}

/// `host:port` with a non-empty host, a port, and no white space, control characters or
/// commas.
fn valid_address(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && port.parse::<u16>().is_ok_and(|p| p != 0)
        && addr.chars().all(|c| c.is_ascii_graphic() && c != ',')
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], InvitationError> {
        if self.0.len() < n {
            return Err(InvitationError::Length);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, InvitationError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], InvitationError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

fn checksum(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new()
        .chain_update(b"ztgw invitation checksum v1\0")
        .chain_update(payload)
        .finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

/// What the gateway stores instead of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// The hash of `secret` for invitation `id` (domain-separated, bound to the id).
    pub fn of(id: &InvitationId, secret: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"ztgw invitation secret v1\0")
            .chain_update(id.as_str().as_bytes())
            .chain_update([0u8])
            .chain_update(secret)
            .finalize();
        Self(digest.into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `secret` is the one this hash was made from, in constant time.
    pub fn matches(&self, id: &InvitationId, secret: &[u8; 32]) -> bool {
        Self::of(id, secret).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Invitation {
        Invitation {
            ca_fingerprint: [3; 32],
            id: InvitationId::from_random([4; 10]),
            secret: Secret::new([5; 32]),
            control_address: "gw.example.gov.ma:8443".into(),
            other_addresses: Vec::new(),
        }
    }

    #[test]
    fn several_gateways_round_trip_and_one_stays_version_1() {
        let mut inv = sample();
        inv.other_addresses = vec!["gw2.example.gov.ma:8443".into(), "[fd00::3]:8443".into()];
        let back = Invitation::decode(&inv.encode().expect("encode")).expect("decode");
        assert_eq!(back.control_address, "gw.example.gov.ma:8443");
        assert_eq!(back.other_addresses, inv.other_addresses);
        // One gateway: the version every agent reads.
        let one = B64URL
            .decode(
                sample()
                    .encode()
                    .expect("encode")
                    .trim_start_matches(PREFIX),
            )
            .expect("base64");
        assert_eq!(one[0], VERSION);
        inv.other_addresses = vec!["no port".into()];
        assert_eq!(inv.encode().err(), Some(InvitationError::Address));
    }

    #[test]
    fn round_trips() {
        let text = sample().encode().expect("encode");
        assert!(text.starts_with("ztgw1-"));
        let back = Invitation::decode(&format!("  {text}\n")).expect("decode");
        assert_eq!(back.ca_fingerprint, [3; 32]);
        assert_eq!(back.id, sample().id);
        assert_eq!(back.secret.expose(), &[5; 32]);
        assert_eq!(back.control_address, "gw.example.gov.ma:8443");
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let text = sample().encode().expect("encode");
        let alphabet: Vec<char> =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                .chars()
                .collect();
        for pos in PREFIX.len()..text.len() {
            let original = text.as_bytes()[pos] as char;
            let replacement = alphabet
                .iter()
                .copied()
                .find(|&c| c != original)
                .expect("alphabet has two letters");
            let mut typo = text.clone();
            typo.replace_range(pos..pos + 1, &replacement.to_string());
            assert!(Invitation::decode(&typo).is_err(), "typo at {pos} accepted");
        }
    }

    #[test]
    fn malformed_invitations_have_reasons() {
        let text = sample().encode().expect("encode");
        let cases: Vec<(String, InvitationError)> = vec![
            ("hello".into(), InvitationError::Prefix),
            ("ztgw1-!!!".into(), InvitationError::Encoding),
            ("ztgw1-AA".into(), InvitationError::Length),
            (text[..text.len() - 4].to_owned(), InvitationError::Checksum),
            // No base64 text of length 4k+1 decodes: the invitation was cut short.
            (
                text[..PREFIX.len() + 4 * ((text.len() - PREFIX.len() - 2) / 4) + 1].to_owned(),
                InvitationError::Length,
            ),
            (
                format!("ztgw1-{}", "A".repeat(600)),
                InvitationError::TooLong,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(Invitation::decode(&input).err(), Some(expected), "{input}");
        }
    }

    #[test]
    fn secret_hash_matches_only_its_secret_and_id() {
        let id = InvitationId::from_random([1; 10]);
        let other = InvitationId::from_random([2; 10]);
        let h = SecretHash::of(&id, &[9; 32]);
        assert!(h.matches(&id, &[9; 32]));
        assert!(!h.matches(&id, &[8; 32]));
        assert!(!h.matches(&other, &[9; 32]));
        assert_eq!(format!("{h:?}"), "SecretHash(..)");
        assert!(!format!("{:?}", sample()).contains("5, 5, 5"));
    }
}
