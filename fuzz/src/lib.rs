//! What each fuzz target does with its input, as plain functions: `cargo fuzz` drives
//! them through `fuzz_targets/` (see `deploy/scripts/fuzz.sh`), and `tests/replay.rs`
//! runs every input of the committed corpora and every crash input through them as an
//! ordinary test, so a fixed crash stays fixed.
//!
//! Each function must neither panic nor hang on any input; where a parser has an
//! inverse, what it accepts must come back the same through it.

use std::path::Path;

/// A target: what it does with one input.
pub type Target = fn(&[u8]);

/// The targets, by name (the folder names under `corpus/` and `artifacts/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("packet", packet),
    ("invitation", invitation),
    ("posture_report", posture_report),
    ("policy", policy),
    ("csr", csr),
    ("certificate", certificate),
    ("journal_frames", journal_frames),
    ("journal_segment", journal_segment),
    ("request_bodies", request_bodies),
    ("console_forms", console_forms),
];

/// An IP packet from a laptop or from the internal network.
pub fn packet(data: &[u8]) {
    use std::net::IpAddr;
    use ztgw_dataplane::packet::{self, Transport};
    let parsed = packet::parse(data);
    if let Ok(h) = &parsed {
        let _ = h.service();
    }
    // The short read of IPv4 TCP and UDP agrees with the parse, both ways.
    let general = parsed.ok().and_then(|h| match (h.src, h.dst, h.transport) {
        (
            IpAddr::V4(src),
            IpAddr::V4(dst),
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
            },
        ) => Some((src, dst, 6, src_port, dst_port, Some(flags), h.len)),
        (IpAddr::V4(src), IpAddr::V4(dst), Transport::Udp { src_port, dst_port }) => {
            Some((src, dst, 17, src_port, dst_port, None, h.len))
        }
        _ => None,
    });
    let short = packet::ipv4_segment(data).map(|s| {
        (
            s.src, s.dst, s.proto, s.src_port, s.dst_port, s.flags, s.len,
        )
    });
    assert_eq!(short, general, "the short read and the parse disagree");
}

/// An invitation as an employee pastes it; what decodes encodes back to the same.
pub fn invitation(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(inv) = ztgw_pki::Invitation::decode(text) {
        let again = inv.encode().expect("a decoded invitation encodes");
        let back = ztgw_pki::Invitation::decode(&again).expect("and decodes again");
        assert_eq!(
            back.encode().expect("encodes"),
            again,
            "the round trip is stable"
        );
    }
}

/// A posture report as a device sends it.
pub fn posture_report(data: &[u8]) {
    if let Ok(report) = ztgw_posture::report::PostureReport::parse(data) {
        let json = serde_json::to_vec(&report).expect("a parsed report serialises");
        let back = ztgw_posture::report::PostureReport::parse(&json).expect("and parses again");
        assert_eq!(back, report);
    }
}

/// A policy file, as a security unit writes it.
pub fn policy(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ztgw_config::policy::Policy::parse(Path::new("policy.toml"), text);
    }
}

/// A certificate signing request (PEM), at enrolment or renewal.
pub fn csr(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ztgw_pki::ca::CheckedCsr::parse_pem(text);
    }
}

/// A client certificate's identity (DER).
pub fn certificate(data: &[u8]) {
    let _ = ztgw_pki::CertificateIdentity::from_der(data);
}

/// Journal frames, one after another, as recovery and verification read them.
pub fn journal_frames(data: &[u8]) {
    let mut rest = data;
    while let Ok((_, used)) = ztgw_gateway::journal::frame::decode(rest) {
        if used == 0 || used > rest.len() {
            break;
        }
        rest = &rest[used..];
    }
}

/// A whole journal segment file, verified as an auditor would.
pub fn journal_segment(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir
        .path()
        .join(ztgw_gateway::journal::segment::file_name(1));
    if std::fs::write(&path, data).is_ok() {
        let _ = ztgw_gateway::journal::verify::verify_dir(dir.path(), None, None);
    }
}

/// Every JSON body of the control plane's API.
pub fn request_bodies(data: &[u8]) {
    use ztgw_api::control::{
        AdmissionRequest, EndRequest, EnrolRequest, IncidentRequest, RecheckRequest, RenewRequest,
    };
    let _ = serde_json::from_slice::<EnrolRequest>(data);
    let _ = serde_json::from_slice::<RenewRequest>(data);
    let _ = serde_json::from_slice::<AdmissionRequest>(data);
    let _ = serde_json::from_slice::<RecheckRequest>(data);
    let _ = serde_json::from_slice::<EndRequest>(data);
    let _ = serde_json::from_slice::<IncidentRequest>(data);
}

/// A web console form, as a browser may send it or an attacker may forge it: the first
/// byte picks the encoding (URL-encoded, or multipart with the boundary `zz`), the rest is
/// the body. Its fields, then each of the console's forms from them.
pub fn console_forms(data: &[u8]) {
    use ztgw_api::console::{
        DeviceForm, EmployeeForm, IncidentForm, InviteForm, JournalSearch, OverrideForm,
        PolicyDiffForm, RevokeForm, SessionEndForm,
    };
    let Some((kind, body)) = data.split_first() else {
        return;
    };
    let content_type = match kind % 2 {
        0 => "application/x-www-form-urlencoded",
        _ => "multipart/form-data; boundary=zz",
    };
    let Ok(fields) = ztgw_api::form::fields(Some(content_type), body) else {
        return;
    };
    assert!(fields.len() <= ztgw_api::form::MAX_FIELDS);
    let Ok(encoded) = serde_urlencoded::to_string(&fields) else {
        return;
    };
    let _ = serde_urlencoded::from_str::<InviteForm>(&encoded);
    let _ = serde_urlencoded::from_str::<DeviceForm>(&encoded);
    let _ = serde_urlencoded::from_str::<RevokeForm>(&encoded);
    let _ = serde_urlencoded::from_str::<EmployeeForm>(&encoded);
    let _ = serde_urlencoded::from_str::<SessionEndForm>(&encoded);
    let _ = serde_urlencoded::from_str::<IncidentForm>(&encoded);
    let _ = serde_urlencoded::from_str::<OverrideForm>(&encoded);
    let _ = serde_urlencoded::from_str::<PolicyDiffForm>(&encoded);
    let _ = serde_urlencoded::from_str::<JournalSearch>(&encoded);
}
