//! The agent's state directory: the device's keys (0600), its certificate, the pinned
//! CA and what the gateway said at enrolment.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use ztgw_api::control::DeviceStatus;
use ztgw_pki::{DeviceId, EmployeeId, Existing, Secret, WgPublicKey, write_private_file};

use crate::error::AgentError;

/// What the agent remembers of its enrolment (`enrolment.json`, written last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentRecord {
    pub device_id: DeviceId,
    pub employee_id: EmployeeId,
    pub role: String,
    pub status: DeviceStatus,
    /// The control plane in use, `host:port`.
    pub control_address: String,
    pub wireguard_public_key: WgPublicKey,
    /// The other gateways sharing the registry (from the invitation): where the agent
    /// turns, in order, when the one in use does not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_addresses: Vec<String>,
}

impl EnrolmentRecord {
    /// The gateway after the one in use, in a ring of every gateway known; `None` when
    /// only one is known.
    pub fn next_gateway(&self) -> Option<EnrolmentRecord> {
        let first = self.other_addresses.first()?;
        let mut next = self.clone();
        next.control_address = first.clone();
        next.other_addresses.remove(0);
        next.other_addresses.push(self.control_address.clone());
        Some(next)
    }
}

/// The files of the agent's state directory.
#[derive(Debug, Clone)]
pub struct AgentState {
    pub dir: PathBuf,
}

impl AgentState {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default directory: `ZTGW_AGENT_STATE`, else `/var/lib/ztgw-agent` for root,
    /// else `$XDG_STATE_HOME/ztgw-agent` or `~/.local/state/ztgw-agent`; on Windows
    /// `%ProgramData%\ztgw-agent` (the installer gives it to SYSTEM and Administrators).
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("ZTGW_AGENT_STATE") {
            return dir.into();
        }
        if cfg!(windows) {
            return std::env::var_os("ProgramData")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
                .join("ztgw-agent");
        }
        if std::env::var("USER").as_deref() == Ok("root") {
            return "/var/lib/ztgw-agent".into();
        }
        if let Some(xdg) = std::env::var_os("XDG_STATE_HOME") {
            return PathBuf::from(xdg).join("ztgw-agent");
        }
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/state/ztgw-agent"))
            .unwrap_or_else(|| "/var/lib/ztgw-agent".into())
    }

    pub fn tls_key(&self) -> PathBuf {
        self.dir.join("device.key")
    }
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("device.pem")
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn wireguard_key(&self) -> PathBuf {
        self.dir.join("wireguard.key")
    }
    pub fn record_path(&self) -> PathBuf {
        self.dir.join("enrolment.json")
    }

    /// The enrolment record, or `NotEnrolled`.
    pub fn record(&self) -> Result<EnrolmentRecord, AgentError> {
        let path = self.record_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AgentError::NotEnrolled {
                    dir: self.dir.display().to_string(),
                });
            }
            Err(e) => return Err(state_err(&path, e)),
        };
        serde_json::from_str(&text).map_err(|e| state_err(&path, e))
    }

    /// Creates the directory (0700 on Unix) if needed.
    pub fn create_dir(&self) -> Result<(), AgentError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| state_err(&self.dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| state_err(&self.dir, e))?;
        }
        Ok(())
    }

    pub fn write_secret(
        &self,
        path: &Path,
        contents: &[u8],
        existing: Existing,
    ) -> Result<(), AgentError> {
        write_private_file(path, contents, existing).map_err(|e| state_err(path, e))
    }

    pub fn write_record(
        &self,
        record: &EnrolmentRecord,
        existing: Existing,
    ) -> Result<(), AgentError> {
        let text =
            serde_json::to_vec_pretty(record).map_err(|e| state_err(&self.record_path(), e))?;
        self.write_secret(&self.record_path(), &text, existing)
    }

    pub fn read(&self, path: &Path) -> Result<String, AgentError> {
        std::fs::read_to_string(path).map_err(|e| state_err(path, e))
    }

    pub fn read_secret(&self, path: &Path) -> Result<Secret<String>, AgentError> {
        self.read(path).map(Secret::new)
    }

    /// Turns to the next gateway known (see [`EnrolmentRecord::next_gateway`]), for
    /// every later request; its address, or `None` when only one gateway is known.
    pub fn switch_gateway(&self) -> Result<Option<String>, AgentError> {
        let Some(next) = self.record()?.next_gateway() else {
            return Ok(None);
        };
        self.write_record(&next, Existing::Replace)?;
        Ok(Some(next.control_address))
    }

    /// The WireGuard private key (base64), for configuring the tunnel.
    pub fn wireguard_private(&self) -> Result<Secret<[u8; 32]>, AgentError> {
        let path = self.wireguard_key();
        let text = self.read_secret(&path)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.expose().trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| state_err(&path, "not a base64 WireGuard key"))?;
        Ok(Secret::new(bytes))
    }
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> AgentError {
    AgentError::State {
        path: path.display().to_string(),
        problem: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_are_tried_in_a_ring() {
        let mut r = EnrolmentRecord {
            device_id: DeviceId::from_random([1; 10]),
            employee_id: EmployeeId::new("e1").expect("id"),
            role: "finance".into(),
            status: DeviceStatus::Active,
            control_address: "a:8443".into(),
            wireguard_public_key: WgPublicKey::from_bytes([2; 32]),
            other_addresses: vec!["b:8443".into(), "c:8443".into()],
        };
        let mut seen = Vec::new();
        for _ in 0..3 {
            r = r.next_gateway().expect("more than one");
            seen.push(r.control_address.clone());
        }
        assert_eq!(seen, ["b:8443", "c:8443", "a:8443"]);
        r.other_addresses.clear();
        assert!(r.next_gateway().is_none());
        // A record written before several gateways (no such field) reads as one gateway.
        let old = serde_json::to_string(&r).expect("json");
        assert!(!old.contains("other_addresses"), "{old}");
        let back: EnrolmentRecord = serde_json::from_str(&old).expect("parse");
        assert_eq!(back, r);
    }
}
