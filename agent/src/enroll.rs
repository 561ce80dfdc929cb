//! `ztgw-agent enroll`: keys made here, a CSR and the WireGuard public key sent to the
//! gateway pinned by the invitation, the certificate stored.

use std::path::PathBuf;

use base64::Engine as _;
use ring::rand::SecureRandom as _;
use ztgw_api::control::{
    DeviceDescription, EnrolRequest, EnrolResponse, Ownership, RedactedString, path,
};
use ztgw_pki::{Existing, Invitation, WgPublicKey, generate_key_and_csr, tls};

use crate::client::ControlClient;
use crate::error::AgentError;
use crate::state::{AgentState, EnrolmentRecord};

/// What `enroll` is told.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub invitation: String,
    pub state_dir: PathBuf,
    pub ownership: Ownership,
    /// Overrides the hostname read from the system.
    pub hostname: Option<String>,
    /// Where `/etc/os-release` and `/etc/hostname` are read (`/` on a real device).
    pub root: PathBuf,
    /// The employee's directory password, for a gateway that requires a directory login
    /// at enrolment (sent only to the gateway the invitation pins).
    pub directory_password: Option<RedactedString>,
}

/// The second factor's secret, to show the employee once (never stored on the device:
/// a second factor kept beside the first is none).
#[derive(Debug, Clone)]
pub struct SecondFactorSetup {
    /// Base32, for typing into an authenticator app.
    pub secret: RedactedString,
    /// `otpauth://…`, for a QR code.
    pub uri: RedactedString,
}

/// What enrolment gives: the record kept on the device, and the second-factor setup.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub record: EnrolmentRecord,
    pub second_factor: Option<SecondFactorSetup>,
}

/// Checks what the gateway sent before anything is stored: its CA must be the one the
/// invitation pinned, and the certificate a device certificate for this device and its
/// WireGuard key (the TLS handshakes that follow verify it against that CA).
fn check_answer(
    answer: &EnrolResponse,
    pin: &[u8; 32],
    wg_public: &ztgw_pki::WgPublicKey,
) -> Result<(), AgentError> {
    let ca = ztgw_pki::pem_to_der(&answer.ca_pem, "CERTIFICATE")
        .ok_or_else(|| AgentError::Protocol("the gateway sent no CA certificate".into()))?;
    if &ztgw_pki::fingerprint(&ca) != pin {
        return Err(AgentError::Protocol(
            "the gateway sent a certificate authority other than the one your invitation names; nothing was stored. Report this to your security unit".into(),
        ));
    }
    let cert = ztgw_pki::pem_to_der(&answer.certificate_pem, "CERTIFICATE")
        .ok_or_else(|| AgentError::Protocol("the gateway sent no certificate".into()))?;
    match ztgw_pki::CertificateIdentity::from_der(&cert) {
        Ok(ztgw_pki::CertificateIdentity::Device { wg_key, device, .. })
            if &wg_key == wg_public && device == answer.device_id => {}
        _ => {
            return Err(AgentError::Protocol(
                "the gateway's certificate is not one for this device; nothing was stored".into(),
            ));
        }
    }
    Ok(())
}

/// Enrols this device.
pub async fn enroll(opts: &EnrollOptions) -> Result<Enrolled, AgentError> {
    let invitation = Invitation::decode(&opts.invitation).map_err(AgentError::Invitation)?;
    let state = AgentState::new(&opts.state_dir);
    match state.record() {
        Ok(existing) => {
            return Err(AgentError::AlreadyEnrolled {
                device: existing.device_id.to_string(),
                dir: state.dir.display().to_string(),
            });
        }
        Err(AgentError::NotEnrolled { .. }) => {}
        Err(e) => return Err(e),
    }

    let (tls_key, csr_pem) =
        generate_key_and_csr("ztgw device").map_err(|e| AgentError::Local(e.to_string()))?;
    let mut wg_secret = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut wg_secret)
        .map_err(|_| AgentError::Local("no randomness for the WireGuard key".into()))?;
    let wg_secret = x25519_dalek::StaticSecret::from(wg_secret);
    let wg_public = WgPublicKey::from_bytes(x25519_dalek::PublicKey::from(&wg_secret).to_bytes());

    // Windows and macOS keep no /etc/hostname or os-release (and under Wine, `/` is the
    // Linux host's): their own names.
    let (system_hostname, system_os) = if cfg!(windows) {
        (
            std::env::var("COMPUTERNAME").ok(),
            Some("Windows".to_owned()),
        )
    } else if cfg!(target_os = "macos") {
        (None, Some("macOS".to_owned()))
    } else {
        (
            ztgw_posture::read_hostname(&opts.root),
            ztgw_posture::OsRelease::read(&opts.root).map(|o| o.describe()),
        )
    };
    let description = DeviceDescription {
        hostname: opts
            .hostname
            .clone()
            .or(system_hostname)
            .unwrap_or_else(|| "unknown".into()),
        os: system_os.unwrap_or_else(|| "unknown".into()),
        ownership: opts.ownership,
    };
    let request = EnrolRequest {
        invitation_id: invitation.id.clone(),
        invitation_secret: RedactedString::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(invitation.secret.expose()),
        ),
        csr_pem,
        wireguard_public_key: wg_public,
        device: description,
        directory_password: opts.directory_password.clone(),
    };
    let config = tls::pinned_client_config(invitation.ca_fingerprint)
        .map_err(|e| AgentError::Local(e.to_string()))?;
    // The invitation's gateway first; another of the registry's if it does not answer.
    let mut addresses = vec![invitation.control_address.clone()];
    addresses.extend(invitation.other_addresses.iter().cloned());
    let mut answer = None;
    let mut last = None;
    for (i, address) in addresses.iter().enumerate() {
        let client = ControlClient::new(address.clone(), config.clone());
        match client.post::<_, EnrolResponse>(path::ENROL, &request).await {
            Ok(a) => {
                answer = Some((i, a));
                break;
            }
            Err(e @ AgentError::Unreachable { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    let Some((used, answer)) = answer else {
        return Err(last.unwrap_or_else(|| AgentError::Local("no gateway address".into())));
    };
    check_answer(&answer, &invitation.ca_fingerprint, &wg_public)?;

    state.create_dir()?;
    state.write_secret(
        &state.tls_key(),
        tls_key.expose().as_bytes(),
        Existing::Replace,
    )?;
    let wg_text = zeroize::Zeroizing::new(format!(
        "{}\n",
        base64::engine::general_purpose::STANDARD.encode(wg_secret.to_bytes())
    ));
    state.write_secret(
        &state.wireguard_key(),
        wg_text.as_bytes(),
        Existing::Replace,
    )?;
    state.write_secret(
        &state.certificate(),
        answer.certificate_pem.as_bytes(),
        Existing::Replace,
    )?;
    state.write_secret(&state.ca(), answer.ca_pem.as_bytes(), Existing::Replace)?;
    let record = EnrolmentRecord {
        device_id: answer.device_id,
        employee_id: answer.employee_id,
        role: answer.role,
        status: answer.status,
        control_address: addresses.remove(used),
        wireguard_public_key: wg_public,
        // The rest in the invitation's order, after the one that answered.
        other_addresses: {
            let (before, after) = addresses.split_at(used);
            after.iter().chain(before).cloned().collect()
        },
    };
    state.write_record(&record, Existing::Refuse)?;
    let second_factor = match (answer.totp_secret, answer.totp_uri) {
        (Some(secret), Some(uri)) => Some(SecondFactorSetup { secret, uri }),
        _ => None,
    };
    Ok(Enrolled {
        record,
        second_factor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ztgw_pki::ca::{CheckedCsr, DeviceClaims};
    use ztgw_pki::{CertificateAuthority, DeviceId, EmployeeId, SerialNumber, WgPublicKey};

    fn ca(name: &str) -> CertificateAuthority {
        CertificateAuthority::generate(
            name,
            SerialNumber::from_random([7; 16]),
            time::OffsetDateTime::now_utc(),
            time::Duration::days(30),
        )
        .expect("CA")
        .0
    }

    fn answer(ca: &CertificateAuthority, device: &DeviceId, wg: WgPublicKey) -> EnrolResponse {
        let (_, csr) = ztgw_pki::generate_key_and_csr("device").expect("csr");
        let now = time::OffsetDateTime::now_utc();
        let cert = ca
            .issue_device(
                &CheckedCsr::parse_pem(&csr).expect("csr"),
                &DeviceClaims {
                    device: device.clone(),
                    employee: EmployeeId::new("e1").expect("id"),
                    wg_key: wg,
                    serial: SerialNumber::from_random([9; 16]),
                    not_before: now,
                    not_after: now + time::Duration::days(1),
                },
            )
            .expect("issue");
        EnrolResponse {
            device_id: device.clone(),
            employee_id: EmployeeId::new("e1").expect("id"),
            role: "finance".into(),
            status: ztgw_api::control::DeviceStatus::Active,
            certificate_pem: cert.pem,
            ca_pem: ca.cert_pem().to_owned(),
            not_after: now,
            totp_secret: None,
            totp_uri: None,
        }
    }

    #[test]
    fn only_the_pinned_ca_and_this_devices_certificate_are_stored() {
        let (ours, other) = (ca("ours"), ca("other"));
        let device = DeviceId::from_random([1; 10]);
        let wg = WgPublicKey::from_bytes([3; 32]);
        let pin = *ours.fingerprint();
        check_answer(&answer(&ours, &device, wg), &pin, &wg).expect("the genuine answer");

        // Another CA in the body, even with a certificate it signed.
        let swapped = answer(&other, &device, wg);
        assert!(check_answer(&swapped, &pin, &wg).is_err());
        // Our CA, but a certificate for another WireGuard key or device.
        let other_key = WgPublicKey::from_bytes([4; 32]);
        assert!(check_answer(&answer(&ours, &device, other_key), &pin, &wg).is_err());
        let mut other_device = answer(&ours, &device, wg);
        other_device.device_id = DeviceId::from_random([2; 10]);
        assert!(check_answer(&other_device, &pin, &wg).is_err());
    }
}
