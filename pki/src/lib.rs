//! The ztgw certificate authority and everything that identifies a device.
//!
//! - [`identity`]: the typed identities (device, employee, auditor, WireGuard key) and how
//!   they are written into and read out of certificates.
//! - [`ca`]: the certificate authority: it signs device certificates from CSRs (setting
//!   every field itself), server certificates and revocation lists.
//! - [`invitation`]: the one-time invitation string an employee pastes to enrol, and the
//!   hash the gateway keeps of its secret.
//! - [`tls`]: rustls configurations (ring provider, TLS 1.3 only) for the control plane
//!   and the agent, including pinning the CA by fingerprint at enrolment. (The JSON bodies
//!   the agent and the gateway exchange live in `ztgw-api`.)
//! - [`secret`]: a wrapper that keeps secrets out of `Debug` and zeroes them, and the
//!   one function that writes secret files (mode 0600).
//!
//! This crate does no network I/O and never reads the clock or the OS random generator
//! on its own: time and randomness are parameters, so every decision here is testable.
//! It must never copy a field from a CSR into a certificate other than the public key.

pub mod ca;
pub mod identity;
pub mod invitation;
pub mod secret;
pub mod tls;
pub mod totp;

pub use tls::{RevocationState, ServerIdentity, TlsConfigError};

pub use ca::{
    AuditorClaims, CaError, CertificateAuthority, CheckedCsr, CrlReason, DeviceClaims,
    IssuedCertificate, OperatorClaims, RevokedEntry, generate_key_and_csr, pem_to_der,
};
pub use identity::{
    AuditorName, CertificateIdentity, DeviceId, EmployeeId, IdError, IdentityError, OperatorName,
    SerialNumber, WgPublicKey,
};
pub use invitation::{Invitation, InvitationError, InvitationId, InvitationSecret, SecretHash};
pub use secret::{Existing, Secret, read_private_file, write_private_file};

/// SHA-256 of a certificate's DER encoding, the form in which ztgw pins its CA.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(der).into()
}

/// A fingerprint as lowercase hex, the form printed to operators.
pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}
