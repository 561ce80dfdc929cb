//! `ztgw-agent renew` and `status`: the two mTLS requests of an enrolled device.

use time::OffsetDateTime;
use ztgw_api::control::{DeviceView, RenewRequest, RenewResponse, path};
use ztgw_pki::{CertificateIdentity, Existing, generate_key_and_csr, pem_to_der, tls};

use crate::client::ControlClient;
use crate::error::AgentError;
use crate::state::AgentState;

/// An mTLS client for the enrolled device in `state`.
pub fn device_client(state: &AgentState) -> Result<ControlClient, AgentError> {
    let record = state.record()?;
    let config = tls::mtls_client_config(
        &state.read(&state.ca())?,
        &state.read(&state.certificate())?,
        &state.read_secret(&state.tls_key())?,
    )
    .map_err(|e| AgentError::State {
        path: state.dir.display().to_string(),
        problem: e.to_string(),
    })?;
    Ok(ControlClient::new(record.control_address, config))
}

/// When the device's current certificate expires.
pub fn certificate_expiry(state: &AgentState) -> Result<OffsetDateTime, AgentError> {
    let path = state.certificate();
    let der = pem_to_der(&state.read(&path)?, "CERTIFICATE").ok_or_else(|| AgentError::State {
        path: path.display().to_string(),
        problem: "no PEM certificate".into(),
    })?;
    match CertificateIdentity::from_der(&der) {
        Ok(CertificateIdentity::Device { not_after, .. }) => Ok(not_after),
        Ok(_) => Err(AgentError::State {
            path: path.display().to_string(),
            problem: "not a device certificate".into(),
        }),
        Err(e) => Err(AgentError::State {
            path: path.display().to_string(),
            problem: e.to_string(),
        }),
    }
}

/// Renews the certificate with a new TLS key, if it expires within `within` of `now`
/// (always, when `within` is `None`). Returns the new expiry, or `None` if not due.
pub async fn renew(
    state: &AgentState,
    now: OffsetDateTime,
    within: Option<time::Duration>,
) -> Result<Option<OffsetDateTime>, AgentError> {
    if let Some(within) = within
        && certificate_expiry(state)? - now > within
    {
        return Ok(None);
    }
    let client = device_client(state)?;
    let (key, csr_pem) =
        generate_key_and_csr("ztgw device").map_err(|e| AgentError::Local(e.to_string()))?;
    let answer: RenewResponse = client.post(path::RENEW, &RenewRequest { csr_pem }).await?;
    // The key first: a crash between the two writes leaves a key without its
    // certificate, which the next renewal replaces; never a certificate without its key.
    let old_key = state.read_secret(&state.tls_key())?;
    state.write_secret(&state.tls_key(), key.expose().as_bytes(), Existing::Replace)?;
    if let Err(e) = state.write_secret(
        &state.certificate(),
        answer.certificate_pem.as_bytes(),
        Existing::Replace,
    ) {
        let _ = state.write_secret(
            &state.tls_key(),
            old_key.expose().as_bytes(),
            Existing::Replace,
        );
        return Err(e);
    }
    Ok(Some(answer.not_after))
}

/// What the gateway knows of this device.
pub async fn status(state: &AgentState) -> Result<DeviceView, AgentError> {
    device_client(state)?.get(path::DEVICE).await
}
