//! The certificate authority.
//!
//! It signs three kinds of certificate, and in every one it sets each field itself: from a
//! CSR it takes only the public key (after checking the CSR's signature proves possession
//! of the private key). Device and auditor certificates are client certificates carrying
//! the identity of [`crate::identity`]; the control plane's server certificate names the
//! gateway. It also signs the revocation list.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, RevokedCertParams, SanType,
};
use time::OffsetDateTime;

use crate::identity::{
    AUDITOR_URI_PREFIX, AuditorName, DEVICE_URI_PREFIX, DeviceId, EMPLOYEE_URI_PREFIX, EmployeeId,
    OPERATOR_URI_PREFIX, OperatorName, SerialNumber, WG_KEY_OID, WgPublicKey,
    encode_wg_key_extension,
};
use crate::secret::Secret;

/// Largest CSR accepted, in bytes of PEM. A P-256 CSR is about 500 bytes.
pub const MAX_CSR_PEM_LEN: usize = 8 * 1024;

/// Why the CA refused to do something.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the CSR is larger than {MAX_CSR_PEM_LEN} bytes")]
    CsrTooLarge,
    #[error("the CSR is not a PEM-encoded PKCS#10 request")]
    CsrMalformed,
    #[error("the CSR's signature does not verify with the key it carries")]
    CsrBadSignature,
    #[error("the CSR asks for an extension ztgw does not accept")]
    CsrUnsupportedExtension,
    #[error("the CSR's key algorithm is not accepted (use ECDSA P-256/P-384 or Ed25519)")]
    CsrUnsupportedAlgorithm,
    #[error("the validity period is empty or inverted")]
    BadValidity,
    #[error("the CA certificate or key could not be loaded: {0}")]
    Load(String),
    #[error("the CA certificate and key do not match")]
    KeyMismatch,
    #[error("a server name {0:?} is neither a DNS name nor an IP address")]
    BadServerName(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A CSR whose signature has been checked and whose key algorithm is accepted.
#[derive(Debug)]
pub struct CheckedCsr {
    public_key: rcgen::PublicKey,
}

impl CheckedCsr {
    /// Parses a PEM CSR, verifies its self-signature and key algorithm.
    pub fn parse_pem(pem: &str) -> Result<Self, CaError> {
        if pem.len() > MAX_CSR_PEM_LEN {
            return Err(CaError::CsrTooLarge);
        }
        let parsed = CertificateSigningRequestParams::from_pem(pem).map_err(|e| match e {
            rcgen::Error::InvalidCertificationRequestSignature => CaError::CsrBadSignature,
            rcgen::Error::UnsupportedExtension | rcgen::Error::UnsupportedInCsr => {
                CaError::CsrUnsupportedExtension
            }
            rcgen::Error::UnsupportedSignatureAlgorithm => CaError::CsrUnsupportedAlgorithm,
            _ => CaError::CsrMalformed,
        })?;
        let alg = parsed.public_key.algorithm();
        let accepted = [
            &PKCS_ECDSA_P256_SHA256,
            &PKCS_ECDSA_P384_SHA384,
            &PKCS_ED25519,
        ];
        if !accepted.contains(&alg) {
            return Err(CaError::CsrUnsupportedAlgorithm);
        }
        Ok(Self {
            public_key: parsed.public_key,
        })
    }

    /// The subjectPublicKeyInfo bits of the key the CSR proves possession of.
    pub fn public_key_raw(&self) -> &[u8] {
        rcgen::PublicKeyData::der_bytes(&self.public_key)
    }
}

/// A new ECDSA P-256 key and a CSR for it, as a device makes them. The CA ignores
/// everything in the CSR but the key, so the CSR carries only a descriptive name.
pub fn generate_key_and_csr(common_name: &str) -> Result<(Secret<String>, String), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(signing)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    let csr = params.serialize_request(&key).map_err(signing)?;
    let pem = csr.pem().map_err(signing)?;
    Ok((Secret::new(key.serialize_pem()), pem))
}

/// What a device certificate asserts. Every field comes from the registry, none from the CSR.
#[derive(Debug, Clone)]
pub struct DeviceClaims {
    pub device: DeviceId,
    pub employee: EmployeeId,
    pub wg_key: WgPublicKey,
    pub serial: SerialNumber,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// What an auditor certificate asserts.
#[derive(Debug, Clone)]
pub struct AuditorClaims {
    pub name: AuditorName,
    pub serial: SerialNumber,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// What a web console operator's certificate asserts (the operator's role is the
/// registry's, not the certificate's: a role change needs no new certificate).
#[derive(Debug, Clone)]
pub struct OperatorClaims {
    pub name: OperatorName,
    pub serial: SerialNumber,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// A signed certificate.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub der: Vec<u8>,
    pub pem: String,
    pub serial: SerialNumber,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// One revoked certificate, as the CRL lists it.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    pub serial: SerialNumber,
    pub revoked_at: OffsetDateTime,
    pub reason: CrlReason,
}

/// The RFC 5280 reason codes ztgw uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlReason {
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    Unspecified,
}

/// The ztgw certificate authority: an ECDSA P-256 key and its self-signed certificate.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &crate::fingerprint_hex(&self.fingerprint))
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a new CA valid from `now` for `validity`. Returns it with its private key
    /// in PKCS#8 PEM for the caller to store (mode 0600).
    pub fn generate(
        name: &str,
        serial: SerialNumber,
        now: OffsetDateTime,
        validity: time::Duration,
    ) -> Result<(Self, Secret<String>), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(signing)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&format!("{name} ztgw CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial.as_bytes()));
        params.not_before = now;
        params.not_after = now + validity;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.self_signed(&key).map_err(signing)?;
        let key_pem = Secret::new(key.serialize_pem());
        let ca = Self::from_parts(cert.pem(), cert.der().to_vec(), Issuer::new(params, key));
        Ok((ca, key_pem))
    }

    /// Loads a CA from its certificate and private key (both PEM).
    pub fn load(cert_pem: &str, key_pem: &Secret<String>) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem.expose()).map_err(|e| CaError::Load(e.to_string()))?;
        let der = pem_to_der(cert_pem, "CERTIFICATE").ok_or_else(|| {
            CaError::Load("the CA certificate file holds no PEM certificate".into())
        })?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| CaError::Load(format!("CA certificate: {e}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&der.clone().into(), key)
            .map_err(|e| CaError::Load(e.to_string()))?;
        Ok(Self::from_parts(cert_pem.to_owned(), der, issuer))
    }

    fn from_parts(cert_pem: String, cert_der: Vec<u8>, issuer: Issuer<'static, KeyPair>) -> Self {
        let fingerprint = crate::fingerprint(&cert_der);
        Self {
            issuer,
            cert_pem,
            cert_der,
            fingerprint,
        }
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// SHA-256 of the CA certificate, which invitations carry for the agent to pin.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// Signs a device certificate for the key the CSR proved possession of.
    pub fn issue_device(
        &self,
        csr: &CheckedCsr,
        claims: &DeviceClaims,
    ) -> Result<IssuedCertificate, CaError> {
        let mut params = client_params(
            &format!("ztgw device {}", claims.device),
            &claims.serial,
            claims.not_before,
            claims.not_after,
        )?;
        params.subject_alt_names = vec![
            uri(&format!("{DEVICE_URI_PREFIX}{}", claims.device))?,
            uri(&format!("{EMPLOYEE_URI_PREFIX}{}", claims.employee))?,
        ];
        let mut ext =
            CustomExtension::from_oid_content(WG_KEY_OID, encode_wg_key_extension(&claims.wg_key));
        ext.set_criticality(false);
        params.custom_extensions = vec![ext];
        self.sign(params, &csr.public_key, claims.serial.clone())
    }

    /// Signs an auditor's client certificate.
    pub fn issue_auditor(
        &self,
        csr: &CheckedCsr,
        claims: &AuditorClaims,
    ) -> Result<IssuedCertificate, CaError> {
        let mut params = client_params(
            &format!("ztgw auditor {}", claims.name),
            &claims.serial,
            claims.not_before,
            claims.not_after,
        )?;
        params.subject_alt_names = vec![uri(&format!("{AUDITOR_URI_PREFIX}{}", claims.name))?];
        self.sign(params, &csr.public_key, claims.serial.clone())
    }

    /// Signs a web console operator's client certificate for the key in the CSR (made
    /// where the operator's PKCS#12 file is written: the gateway never holds the key).
    pub fn issue_operator(
        &self,
        csr: &CheckedCsr,
        claims: &OperatorClaims,
    ) -> Result<IssuedCertificate, CaError> {
        let mut params = client_params(
            &format!("ztgw operator {}", claims.name),
            &claims.serial,
            claims.not_before,
            claims.not_after,
        )?;
        params.subject_alt_names = vec![uri(&format!("{OPERATOR_URI_PREFIX}{}", claims.name))?];
        self.sign(params, &csr.public_key, claims.serial.clone())
    }

    /// Creates a key for the control plane and signs its server certificate for `names`
    /// (DNS names or IP addresses). Returns the certificate and the key in PKCS#8 PEM.
    pub fn issue_server(
        &self,
        names: &[String],
        serial: SerialNumber,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<(IssuedCertificate, Secret<String>), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(signing)?;
        if not_after <= not_before {
            return Err(CaError::BadValidity);
        }
        let mut params = CertificateParams::default();
        let first = names.first().map(String::as_str).unwrap_or("ztgw gateway");
        params.distinguished_name = dn(first);
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|_| CaError::BadServerName(n.clone())),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.is_ca = IsCa::ExplicitNoCa;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial.as_bytes()));
        params.not_before = not_before;
        params.not_after = not_after;
        params.use_authority_key_identifier_extension = true;
        let cert = self.sign(params, &key, serial)?;
        Ok((cert, Secret::new(key.serialize_pem())))
    }

    /// Signs a CRL listing `revoked`, valid from `this_update` until `next_update`.
    pub fn sign_crl(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<String, CaError> {
        if next_update <= this_update {
            return Err(CaError::BadValidity);
        }
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: rcgen::SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(r.serial.as_bytes()),
                    revocation_time: r.revoked_at,
                    reason_code: Some(match r.reason {
                        CrlReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
                        CrlReason::AffiliationChanged => {
                            rcgen::RevocationReason::AffiliationChanged
                        }
                        CrlReason::Superseded => rcgen::RevocationReason::Superseded,
                        CrlReason::CessationOfOperation => {
                            rcgen::RevocationReason::CessationOfOperation
                        }
                        CrlReason::Unspecified => rcgen::RevocationReason::Unspecified,
                    }),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(signing)?;
        crl.pem().map_err(signing)
    }

    fn sign(
        &self,
        params: CertificateParams,
        public_key: &impl rcgen::PublicKeyData,
        serial: SerialNumber,
    ) -> Result<IssuedCertificate, CaError> {
        let cert = params
            .signed_by(public_key, &self.issuer)
            .map_err(signing)?;
        Ok(IssuedCertificate {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            serial,
            not_before: params.not_before,
            not_after: params.not_after,
        })
    }
}

fn client_params(
    common_name: &str,
    serial: &SerialNumber,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    if not_after <= not_before {
        return Err(CaError::BadValidity);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(rcgen::SerialNumber::from_slice(serial.as_bytes()));
    params.not_before = not_before;
    params.not_after = not_after;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ztgw");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn uri(value: &str) -> Result<SanType, CaError> {
    value
        .to_owned()
        .try_into()
        .map(SanType::URI)
        .map_err(|_| CaError::Signing(format!("{value:?} is not an IA5 string")))
}

fn signing(e: rcgen::Error) -> CaError {
    CaError::Signing(e.to_string())
}

/// The DER body of the first PEM block labelled `label` in `pem`.
pub fn pem_to_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem.get(start..)?.find(&end)?;
    let body: String = pem
        .get(start..stop)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::{CertificateRevocationList, FromDer as _, X509Certificate};

    use super::*;
    use crate::identity::CertificateIdentity;

    fn t0() -> OffsetDateTime {
        time::macros::datetime!(2026-11-29 09:00 UTC)
    }

    fn ca() -> CertificateAuthority {
        CertificateAuthority::generate(
            "test",
            SerialNumber::from_random([1; 16]),
            t0(),
            time::Duration::days(3650),
        )
        .expect("ca")
        .0
    }

    fn csr_pem(key: &KeyPair, params: CertificateParams) -> String {
        params
            .serialize_request(key)
            .expect("csr")
            .pem()
            .expect("pem")
    }

    fn claims() -> DeviceClaims {
        DeviceClaims {
            device: DeviceId::new("dev-abc").expect("id"),
            employee: EmployeeId::new("e1029").expect("id"),
            wg_key: WgPublicKey::from_bytes([9; 32]),
            serial: SerialNumber::from_random([5; 16]),
            not_before: t0(),
            not_after: t0() + time::Duration::days(30),
        }
    }

    #[test]
    fn device_certificate_carries_only_what_the_ca_sets() {
        let ca = ca();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        // The CSR asks to be a CA for some other name; none of that may be copied.
        let mut asked = CertificateParams::new(vec!["evil.example".to_owned()]).expect("params");
        asked.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        asked.distinguished_name = dn("root");
        let csr = CheckedCsr::parse_pem(&csr_pem(&key, asked)).expect("csr");
        let issued = ca.issue_device(&csr, &claims()).expect("issue");
        let (_, cert) = X509Certificate::from_der(&issued.der).expect("parse");
        assert!(!cert.is_ca());
        let cn = cert.subject().iter_common_name().next().expect("cn");
        assert_eq!(cn.as_str().expect("utf8"), "ztgw device dev-abc");
        let san = cert
            .subject_alternative_name()
            .expect("san")
            .expect("present");
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            names,
            vec![
                "URI(urn:ztgw:device:dev-abc)",
                "URI(urn:ztgw:employee:e1029)"
            ]
        );
        let eku = cert.extended_key_usage().expect("eku").expect("present");
        assert!(eku.value.client_auth && !eku.value.server_auth);
        assert_eq!(cert.raw_serial(), claims().serial.as_bytes());
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert_eq!(
            CertificateIdentity::from_der(&issued.der).expect("identity"),
            CertificateIdentity::Device {
                device: claims().device,
                employee: claims().employee,
                wg_key: claims().wg_key,
                serial: claims().serial,
                not_after: claims().not_after,
            }
        );
    }

    #[test]
    fn an_operator_certificate_names_the_operator_and_certifies_the_csrs_key() {
        let ca = ca();
        let claims = OperatorClaims {
            name: OperatorName::new("amina.k").expect("name"),
            serial: SerialNumber::from_random([7; 16]),
            not_before: t0(),
            not_after: t0() + time::Duration::days(365),
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let csr = CheckedCsr::parse_pem(&csr_pem(&key, CertificateParams::default())).expect("csr");
        let issued = ca.issue_operator(&csr, &claims).expect("issue");
        assert_eq!(
            CertificateIdentity::from_der(&issued.der).expect("identity"),
            CertificateIdentity::Operator {
                name: claims.name.clone(),
                serial: claims.serial.clone(),
                not_after: claims.not_after,
            }
        );
        let (_, cert) = X509Certificate::from_der(&issued.der).expect("parse");
        let eku = cert.extended_key_usage().expect("eku").expect("present");
        assert!(eku.value.client_auth && !eku.value.server_auth);
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
    }

    #[test]
    fn bad_csrs_are_refused() {
        assert!(matches!(
            CheckedCsr::parse_pem("not a csr"),
            Err(CaError::CsrMalformed)
        ));
        assert!(matches!(
            CheckedCsr::parse_pem(&"A".repeat(MAX_CSR_PEM_LEN + 1)),
            Err(CaError::CsrTooLarge)
        ));
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let pem = csr_pem(&key, CertificateParams::default());
        let mut der = pem_to_der(&pem, "CERTIFICATE REQUEST").expect("der");
        // Flip a bit in the signature (the last bytes): possession is no longer proven.
        let last = der.len() - 1;
        der[last] ^= 1;
        let tampered = to_pem("CERTIFICATE REQUEST", &der);
        assert!(matches!(
            CheckedCsr::parse_pem(&tampered),
            Err(CaError::CsrBadSignature | CaError::CsrMalformed)
        ));
    }

    #[test]
    fn load_round_trips_and_detects_mismatch() {
        let (ca, key) = CertificateAuthority::generate(
            "x",
            SerialNumber::from_random([2; 16]),
            t0(),
            time::Duration::days(10),
        )
        .expect("ca");
        let loaded = CertificateAuthority::load(ca.cert_pem(), &key).expect("load");
        assert_eq!(loaded.fingerprint(), ca.fingerprint());
        let (_, other_key) = CertificateAuthority::generate(
            "y",
            SerialNumber::from_random([3; 16]),
            t0(),
            time::Duration::days(10),
        )
        .expect("ca");
        assert!(matches!(
            CertificateAuthority::load(ca.cert_pem(), &other_key),
            Err(CaError::KeyMismatch)
        ));
    }

    #[test]
    fn crl_lists_revoked_serials() {
        let ca = ca();
        let serial = SerialNumber::from_random([8; 16]);
        let pem = ca
            .sign_crl(
                &[RevokedEntry {
                    serial: serial.clone(),
                    revoked_at: t0(),
                    reason: CrlReason::KeyCompromise,
                }],
                7,
                t0(),
                t0() + time::Duration::hours(24),
            )
            .expect("crl");
        let der = pem_to_der(&pem, "X509 CRL").expect("der");
        let (_, crl) = CertificateRevocationList::from_der(&der).expect("parse");
        let listed: Vec<&[u8]> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial())
            .collect();
        assert_eq!(listed, vec![serial.as_bytes()]);
        assert!(ca.sign_crl(&[], 8, t0(), t0()).is_err());
    }

    fn to_pem(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
    }
}
