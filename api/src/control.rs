//! JSON bodies exchanged by the agent and the control plane (`/v1/...`).
//!
//! Every request type denies unknown fields and bounds its strings, so a request that
//! deserialises is already well-formed; the gateway then checks it against the registry.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use ztgw_pki::InvitationId;
use ztgw_pki::{DeviceId, EmployeeId, WgPublicKey};

/// Longest hostname or OS description a device may report.
pub const MAX_DESCRIPTION_LEN: usize = 255;

/// Paths of the control-plane API.
/// How often a gateway sends a space while a session watch waits (see the watch route):
/// an agent that hears nothing for [`WATCH_SILENCE_SECS`] takes the gateway for stopped.
pub const WATCH_HEARTBEAT_SECS: u64 = 1;
/// How long an agent waits for a byte of a session watch's answer (connection set-up
/// included, half as long again) before it takes the gateway for stopped.
pub const WATCH_SILENCE_SECS: u64 = 4;

pub mod path {
    pub const ENROL: &str = "/v1/enroll";
    pub const RENEW: &str = "/v1/renew";
    pub const DEVICE: &str = "/v1/device";
    /// Devices: the posture profile the device's role requires.
    pub const POSTURE_PROFILE: &str = "/v1/posture/profile";
    /// Auditors: events as JSON lines, filtered by query parameters.
    pub const AUDIT_EVENTS: &str = "/v1/audit/events";
    /// Auditors: the journal's verification report.
    pub const AUDIT_VERIFY: &str = "/v1/audit/verify";
    /// Auditors: the latest signed checkpoint.
    pub const AUDIT_CHECKPOINT: &str = "/v1/audit/checkpoint";
    /// POST: a posture nonce; POST `SESSION`: admission; then re-checks and the end.
    pub const SESSION_NONCE: &str = "/v1/session/nonce";
    pub const SESSION: &str = "/v1/session";
    pub const SESSION_RECHECK: &str = "/v1/session/recheck";
    pub const SESSION_END: &str = "/v1/session/end";
    /// POST (mTLS): answers once the session is no longer live, or after a while that
    /// it still is ([`super::WatchView`]): how a connected agent learns at once that the
    /// gateway ended its session.
    pub const SESSION_WATCH: &str = "/v1/session/watch";
    /// POST (mTLS): the employee reports an incident; accepted whatever the posture.
    pub const INCIDENT: &str = "/v1/incident";
}

/// Who owns the device (the guide treats personal computers with extra care, G6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ownership {
    Administration,
    Personal,
}

impl Ownership {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Administration => "administration",
            Self::Personal => "personal",
        }
    }
}

impl std::str::FromStr for Ownership {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "administration" => Ok(Self::Administration),
            "personal" => Ok(Self::Personal),
            other => Err(format!(
                "{other:?} is not an ownership (use administration or personal)"
            )),
        }
    }
}

/// What the device says about itself at enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDescription {
    pub hostname: String,
    pub os: String,
    pub ownership: Ownership,
}

impl DeviceDescription {
    /// Whether the free-text fields are within bounds and printable.
    pub fn check(&self) -> Result<(), &'static str> {
        for (field, value) in [("hostname", &self.hostname), ("os", &self.os)] {
            if value.is_empty() || value.len() > MAX_DESCRIPTION_LEN {
                return Err(match field {
                    "hostname" => "hostname must be 1 to 255 characters",
                    _ => "os must be 1 to 255 characters",
                });
            }
            if value.chars().any(char::is_control) {
                return Err("device description contains control characters");
            }
        }
        Ok(())
    }
}

/// `POST /v1/enroll`: the only request made without a client certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub invitation_id: InvitationId,
    /// The invitation's secret, base64url without padding.
    pub invitation_secret: RedactedString,
    pub csr_pem: String,
    pub wireguard_public_key: WgPublicKey,
    pub device: DeviceDescription,
    /// The employee's directory password, when the gateway requires a directory login
    /// at enrolment (sent only over the TLS channel pinned to the gateway's CA; checked
    /// by a bind, never stored or logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_password: Option<RedactedString>,
}

/// The device's state in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceStatus {
    /// Enrolled, waiting for the security unit's approval.
    Pending,
    Active,
    Revoked,
    /// Equipment returned (G14): credentials revoked, record kept.
    Decommissioned,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Decommissioned => "decommissioned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "active" => Self::Active,
            "revoked" => Self::Revoked,
            "decommissioned" => Self::Decommissioned,
            _ => return None,
        })
    }
}

/// Answer to a successful enrolment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrolResponse {
    pub device_id: DeviceId,
    pub employee_id: EmployeeId,
    pub role: String,
    pub status: DeviceStatus,
    pub certificate_pem: String,
    pub ca_pem: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The second factor's secret (base32) and its `otpauth://` URI, shown once.
    #[serde(default)]
    pub totp_secret: Option<RedactedString>,
    #[serde(default)]
    pub totp_uri: Option<RedactedString>,
}

/// `POST /v1/renew` (mTLS): a CSR for the device's next key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub csr_pem: String,
}

/// Answer to a renewal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewResponse {
    pub certificate_pem: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// `GET /v1/device` (mTLS): what the gateway knows of the calling device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceView {
    pub device_id: DeviceId,
    pub employee_id: EmployeeId,
    pub role: String,
    pub status: DeviceStatus,
    pub certificate_serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub certificate_not_after: OffsetDateTime,
}

/// `GET /v1/posture/profile` (mTLS): what the device's role requires of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostureProfileView {
    pub role: String,
    pub profile_name: String,
    /// The profile, as `ztgw_posture::profile::Profile` serialises it.
    pub profile: serde_json::Value,
}

/// Every error answer: a stable reason code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    /// For a refused admission or re-check: every check that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<FailedCheck>,
}

/// A check that failed, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCheck {
    /// Stable id: `device-revoked`, `outside-schedule`, `posture.antivirus`…
    pub id: String,
    pub sentence: String,
    pub remedy: Option<String>,
}

/// `POST /v1/session/nonce`'s body: an empty object (read whole, so that the connection
/// carries the admission that follows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NonceRequest {}

/// `POST /v1/session/nonce` (mTLS): a one-time nonce for the next posture report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceView {
    pub nonce: String,
    /// Seconds it stays valid.
    pub valid_secs: u64,
    /// The posture profile the report will be checked against (as `/v1/posture/profile`
    /// gives it), so that the agent needs no other request.
    #[serde(default)]
    pub profile: Option<serde_json::Value>,
    /// Whether this request must carry a second-factor code.
    #[serde(default)]
    pub second_factor: bool,
}

/// `POST /v1/session` (mTLS): admission.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdmissionRequest {
    /// Base64 WireGuard public key; must be the one bound in the certificate.
    pub wg_public_key: String,
    /// The posture report (JSON), carrying a nonce from `/v1/session/nonce`.
    pub posture: String,
    /// The second factor's current code, for roles that require one.
    #[serde(default)]
    pub second_factor: Option<RedactedString>,
}

/// What a standard WireGuard client needs, and the session's terms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionGrant {
    pub session: String,
    pub role: String,
    pub gateway_public_key: String,
    /// `HOST:PORT`.
    pub endpoint: String,
    /// The laptop's tunnel address (a host address).
    pub tunnel_address: String,
    /// Dual stack: the laptop's IPv6 tunnel address as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_address6: Option<String>,
    pub preshared_key: RedactedString,
    /// The role's networks: what the client routes through the tunnel.
    pub allowed_ips: Vec<String>,
    /// The role's internal resolvers (always reachable through the tunnel)…
    pub dns: Vec<String>,
    /// …and the only domains to resolve through them.
    #[serde(default)]
    pub dns_domains: Vec<String>,
    pub keepalive_secs: u16,
    /// RFC 3339.
    pub ends_at: String,
    pub recheck_secs: u64,
}

/// `POST /v1/session/recheck` (mTLS).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecheckRequest {
    pub session: String,
    pub posture: String,
    /// The second factor's code, when the gateway asked for it again.
    #[serde(default)]
    pub second_factor: Option<RedactedString>,
}

/// The answer to a re-check that keeps the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecheckView {
    pub role: String,
    pub quarantined: bool,
    pub next_recheck_secs: u64,
    pub allowed_ips: Vec<String>,
    /// The role's internal resolvers and their domains, as in [`SessionGrant`] (they
    /// change when the session moves into its quarantine role or back).
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_domains: Vec<String>,
}

/// `POST /v1/incident` (mTLS): `kind` is `lost-secret`, `malware`, `data-theft` or
/// `device-lost`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRequest {
    pub kind: String,
    pub note: Option<String>,
}

/// `POST /v1/session/end` (mTLS): the employee disconnects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndRequest {
    pub session: String,
}

/// `POST /v1/session/watch` (mTLS): the body is an [`EndRequest`] naming the session;
/// the answer says whether it is still live and, if not, why it ended (when the gateway
/// still remembers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchView {
    pub live: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A string that is a secret in transit: redacted from `Debug`, zeroed on drop.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RedactedString(String);

impl RedactedString {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RedactedString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for RedactedString {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrol_request_refuses_unknown_fields_and_redacts_secret() {
        let json = r#"{"invitation_id":"inv-0000000000aaaaaaaaaa","invitation_secret":"s3cret",
            "csr_pem":"x","wireguard_public_key":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
            "device":{"hostname":"h","os":"Debian 12","ownership":"personal"}}"#;
        let req: EnrolRequest = serde_json::from_str(json).expect("parse");
        assert!(!format!("{req:?}").contains("s3cret"));
        let extra = json.replace("\"csr_pem\"", "\"is_ca\":true,\"csr_pem\"");
        assert!(serde_json::from_str::<EnrolRequest>(&extra).is_err());
    }

    #[test]
    fn descriptions_are_bounded() {
        let mut d = DeviceDescription {
            hostname: "pc-1".into(),
            os: "Debian GNU/Linux 12".into(),
            ownership: Ownership::Personal,
        };
        assert!(d.check().is_ok());
        d.hostname = "x".repeat(256);
        assert!(d.check().is_err());
        d.hostname = "a\nb".into();
        assert!(d.check().is_err());
    }
}
