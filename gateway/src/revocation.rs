//! Publishing and loading the certificate revocation list.
//!
//! The CRL file in the state directory is the truth the control plane enforces: it is
//! re-read after every publication, and a CRL that cannot be read, is not ours or has
//! expired makes the control plane refuse every client certificate (fail closed).

use std::path::Path;

use time::OffsetDateTime;
use x509_parser::prelude::FromDer as _;
use ztgw_pki::{CertificateAuthority, Existing};

use crate::registry::{Registry, RegistryError};

pub use ztgw_pki::RevocationState;

/// Why a CRL could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("reading revoked certificates: {0}")]
    Registry(#[from] RegistryError),
    #[error("signing the CRL: {0}")]
    Sign(#[from] ztgw_pki::CaError),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the revocation list in force has number {current}, not below {number}: the registry's CRL counter is behind (was an older registry restored?)"
    )]
    Stale { number: u64, current: u64 },
}

/// The number of the CRL at `path`, if it holds one that parses.
fn number_on_disk(path: &Path) -> Option<u64> {
    let pem = std::fs::read_to_string(path).ok()?;
    let der = ztgw_pki::pem_to_der(&pem, "X509 CRL")?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).ok()?;
    let n = crl.crl_number()?;
    u64::try_from(n).ok()
}

/// Signs a CRL listing every revoked, unexpired certificate and writes it to `path`.
///
/// One publisher at a time, across threads and processes (an exclusive lock on
/// `PATH.lock`, held from reading the registry to the rename): a publication reads the
/// registry after the previous one finished, so the CRL in force lists every revocation
/// recorded before its publication began. CRL numbers only increase, and a CRL never
/// replaces one with a higher number. The file is written to a temporary of its own,
/// fsync'd, and renamed into place.
pub fn publish(
    ca: &CertificateAuthority,
    registry: &dyn Registry,
    path: &Path,
    now: OffsetDateTime,
    validity: std::time::Duration,
) -> Result<(), PublishError> {
    let write_error = |source| PublishError::Write {
        path: path.display().to_string(),
        source,
    };
    let lock_path = path.with_extension("pem.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(write_error)?;
    lock.lock().map_err(write_error)?;
    let revoked = registry.revoked_certificates(now)?;
    let number = registry.next_crl_number()?;
    if let Some(current) = number_on_disk(path)
        && current >= number
    {
        return Err(PublishError::Stale { number, current });
    }
    let validity = time::Duration::try_from(validity).unwrap_or(time::Duration::DAY);
    let pem = ca.sign_crl(&revoked, number, now, now + validity)?;
    // Written atomically so a reader never sees half of one.
    ztgw_pki::write_private_file(path, pem.as_bytes(), Existing::Replace).map_err(write_error)?;
    drop(lock);
    tracing::info!(
        crl_number = number,
        revoked = revoked.len(),
        "published revocation list"
    );
    Ok(())
}

/// Loads the CRL at `path` if it is ours and current at `now`.
pub fn load(path: &Path, ca: &CertificateAuthority, now: OffsetDateTime) -> RevocationState {
    match inspect(path, ca, now) {
        Ok((der, _)) => RevocationState::Current(der),
        Err(why) => {
            tracing::error!(
                crl = %path.display(),
                reason = %why,
                "no usable revocation list: refusing every client certificate until one is published"
            );
            RevocationState::Unavailable
        }
    }
}

/// The CRL at `path` and when it stops being valid, if it is ours and current at `now`;
/// otherwise why not.
pub fn inspect(
    path: &Path,
    ca: &CertificateAuthority,
    now: OffsetDateTime,
) -> Result<
    (
        rustls_pki_types::CertificateRevocationListDer<'static>,
        OffsetDateTime,
    ),
    String,
> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let der = ztgw_pki::pem_to_der(&pem, "X509 CRL").ok_or("it holds no PEM CRL")?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
        .map_err(|e| format!("it is not a valid CRL: {e}"))?;
    let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der())
        .map_err(|e| format!("the CA certificate does not parse: {e}"))?;
    if crl.issuer() != ca_cert.subject() {
        return Err("it was not issued by this gateway's CA".into());
    }
    crl.verify_signature(ca_cert.public_key())
        .map_err(|_| "its signature does not verify with this gateway's CA".to_owned())?;
    let next = match crl.next_update() {
        Some(next) if next.to_datetime() > now => next.to_datetime(),
        Some(next) => return Err(format!("it expired at {}", next.to_datetime())),
        None => return Err("it has no next-update time".into()),
    };
    Ok((der.into(), next))
}
