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
}

/// The number of the CRL at `path`, if it holds one this CA signed (expired or not).
fn number_on_disk(path: &Path, ca: &CertificateAuthority) -> Option<u64> {
    let pem = std::fs::read_to_string(path).ok()?;
    let der = ztgw_pki::pem_to_der(&pem, "X509 CRL")?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).ok()?;
    let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).ok()?;
    crl.verify_signature(ca_cert.public_key()).ok()?;
    u64::try_from(crl.crl_number()?).ok()
}

/// Signs a CRL listing every revoked, unexpired certificate and writes it to `path`.
///
/// One publisher at a time, across threads and processes (an exclusive lock on
/// `PATH.lock`, held from reading the registry to the rename): a publication reads the
/// registry after the previous one finished, so the CRL in force lists every revocation
/// recorded before its publication began. CRL numbers only increase: a new CRL's number
/// is above the registry's counter and above the CRL on disk. The file is written to a temporary of its own,
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
    let lock = publication_lock(path).map_err(write_error)?;
    let revoked = registry.revoked_certificates(now)?;
    // The next number, and never one at or below the CRL on disk (a registry restored
    // from an older backup has an older counter).
    let number = registry
        .next_crl_number()?
        .max(number_on_disk(path, ca).map_or(0, |n| n.saturating_add(1)));
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

/// Takes the lock that every publication of the CRL at `path` holds while it reads the
/// file and replaces it (one publication at a time, across processes); released when
/// the returned file is dropped.
pub fn publication_lock(path: &Path) -> std::io::Result<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("pem.lock"))?;
    lock.lock()?;
    Ok(lock)
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
