//! rustls configurations for the control plane and the agent.
//!
//! All of them use the ring provider and TLS 1.3 only. The server never resumes sessions,
//! so every connection verifies the client certificate against the CRL in force at that
//! moment. A revocation list that cannot be had makes the server fail closed: it then
//! refuses every client certificate (enrolment, which needs none, still works).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};

use crate::secret::Secret;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{what} is not valid PEM")]
    Pem { what: &'static str },
    #[error("rustls refused the configuration: {0}")]
    Rustls(#[from] Error),
    #[error("the client verifier could not be built: {0}")]
    Verifier(String),
}

/// The crypto provider every ztgw TLS endpoint uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// ALPN protocols offered by the control plane, most preferred first.
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The material the control plane serves with.
#[derive(Debug)]
pub struct ServerIdentity {
    /// The server certificate followed by the CA certificate.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Secret<Vec<u8>>,
    pub ca: CertificateDer<'static>,
}

impl ServerIdentity {
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &Secret<String>,
        ca_pem: &str,
    ) -> Result<Self, TlsConfigError> {
        let cert = parse_cert(cert_pem, "the server certificate")?;
        let ca = parse_cert(ca_pem, "the CA certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes()).map_err(|_| {
            TlsConfigError::Pem {
                what: "the server key",
            }
        })?;
        Ok(Self {
            chain: vec![cert, ca.clone()],
            key: Secret::new(key.secret_der().to_vec()),
            ca,
        })
    }
}

/// The revocation list the server enforces, or the reason there is none.
#[derive(Debug, Clone)]
pub enum RevocationState {
    /// A CRL, already checked to be signed by our CA and current.
    Current(CertificateRevocationListDer<'static>),
    /// No usable CRL: every client certificate is refused until one is published.
    Unavailable,
}

/// The control plane's server configuration.
pub fn server_config(
    identity: &ServerIdentity,
    revocation: &RevocationState,
) -> Result<ServerConfig, TlsConfigError> {
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> = match revocation {
        RevocationState::Current(crl) => {
            let mut roots = RootCertStore::empty();
            roots.add(identity.ca.clone())?;
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .with_crls([crl.clone()])
                .only_check_end_entity_revocation()
                .enforce_revocation_expiration()
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsConfigError::Verifier(e.to_string()))?
        }
        RevocationState::Unavailable => Arc::new(RefuseAllClientCerts {
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let key = PrivateKeyDer::try_from(identity.key.expose().clone()).map_err(|_| {
        TlsConfigError::Pem {
            what: "the server key",
        }
    })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), key)?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A client configuration that trusts only the CA whose SHA-256 fingerprint is `pin`.
/// Used by the agent at enrolment, before it holds the CA certificate.
pub fn pinned_client_config(pin: [u8; 32]) -> Result<ClientConfig, TlsConfigError> {
    let provider = provider();
    let verifier = Arc::new(PinnedCaVerifier {
        pin,
        provider: provider.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client configuration for a service outside the gateway (a directory, a log
/// receiver) whose certificate a CA of its own signs: trusts only the certificates in
/// `ca_pem` and checks the server's name. `Err` says what is wrong with the PEM.
pub fn client_config_trusting(ca_pem: &[u8]) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no certificate".into());
    }
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// A client configuration presenting a client certificate and trusting only `ca_pem`.
pub fn mtls_client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &Secret<String>,
) -> Result<ClientConfig, TlsConfigError> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    roots.add(parse_cert(ca_pem, "the CA certificate")?)?;
    let cert = parse_cert(cert_pem, "the client certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes()).map_err(|_| {
        TlsConfigError::Pem {
            what: "the client key",
        }
    })?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Parses the first certificate of a PEM text.
pub fn parse_cert(
    pem: &str,
    what: &'static str,
) -> Result<CertificateDer<'static>, TlsConfigError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| TlsConfigError::Pem { what })
}

/// Parses a PEM CRL.
pub fn parse_crl(pem: &str) -> Result<CertificateRevocationListDer<'static>, TlsConfigError> {
    CertificateRevocationListDer::from_pem_slice(pem.as_bytes()).map_err(|_| TlsConfigError::Pem {
        what: "the revocation list",
    })
}

/// The server certificate chain must lead to the pinned CA, which the server sends last.
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

/// The error a client sees when the gateway's CA is not the pinned one.
#[derive(Debug)]
pub struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the gateway's CA does not match the fingerprint in the invitation")
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let ca = intermediates
            .iter()
            .find(|c| crate::fingerprint(c.as_ref()) == self.pin)
            .ok_or_else(|| {
                Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
                    PinMismatch,
                ))))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Fail-closed client verifier: anonymous clients may connect (to enrol), every
/// presented certificate is refused because its revocation status cannot be known.
#[derive(Debug)]
struct RefuseAllClientCerts {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RefuseAllClientCerts {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Err(Error::InvalidCertificate(
            CertificateError::UnknownRevocationStatus,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
