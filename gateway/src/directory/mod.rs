//! The directory (Active Directory, LDAP) decides who may telework (G1, G3): who is in
//! which telework group, whose account is disabled, who is gone. [`client::read`] reads
//! it; [`drift`] compares it with what the gateway knows and says what would change.
//! [`sync`] applies it: on a schedule in the running gateway, or by hand with `ztgw
//! directory sync`.

pub mod client;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use ztgw_pki::{DeviceId, EmployeeId};

use ztgw_api::control::DeviceStatus;

use crate::admin::{AdminError, AdminErrorCode, AdminRequest};
use crate::registry::DeviceRecord;

/// Why the directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("the directory settings: {0}")]
    Config(String),
    #[error("no directory server answered: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Bind(String),
    #[error("a directory search failed: {0}")]
    Search(String),
}

/// Someone the directory places in telework groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub dn: String,
    pub employee: EmployeeId,
    pub disabled: bool,
    /// The roles whose groups hold this person, directly or through nested groups.
    pub roles: BTreeSet<String>,
}

/// What one read of the directory found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryView {
    /// The server that answered.
    pub server: String,
    pub people: BTreeMap<EmployeeId, Person>,
    /// Employees the gateway knows who are in the directory but in no telework group.
    pub outside_groups: BTreeSet<EmployeeId>,
    /// Entries in telework groups that could not be used, and why.
    pub skipped: Vec<String>,
}

/// Why an employee's telework would end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndWhy {
    /// The account is disabled.
    Disabled,
    /// In the directory, but in no telework group.
    NoTeleworkGroup,
    /// Not in the directory any more.
    Deleted,
}

impl EndWhy {
    pub fn sentence(self) -> &'static str {
        match self {
            Self::Disabled => "disabled in the directory",
            Self::NoTeleworkGroup => "in no telework group",
            Self::Deleted => "no longer in the directory",
        }
    }
}

/// An employee whose telework the directory ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    pub employee: EmployeeId,
    pub why: EndWhy,
}

/// A device whose role the directory changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChange {
    pub employee: EmployeeId,
    pub device: DeviceId,
    pub from: String,
    pub to: String,
}

/// What the directory would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub server: String,
    /// Employees with telework (a device in service) the gateway knows.
    pub employees: usize,
    /// Whose telework would end, and why.
    pub end: Vec<Ending>,
    pub role_changes: Vec<RoleChange>,
    pub skipped: Vec<String>,
    /// Whether ending that many is over the configured share (a sync would be refused).
    pub over_threshold: bool,
}

/// With a `[directory]`, an invitation is only for an employee the directory places in a
/// telework group, with an enabled account, and for a role the directory gives them
/// (taken from it when the request names none). A directory that cannot be read refuses
/// the invitation. Other requests, and every request without a directory, pass as they
/// are.
pub async fn vet(
    settings: &ztgw_config::Settings,
    request: AdminRequest,
) -> Result<AdminRequest, AdminError> {
    let (
        Some(d),
        AdminRequest::Invite {
            employee,
            role,
            schedule,
            approved_by,
            reference,
            valid_for_secs,
        },
    ) = (&settings.directory, &request)
    else {
        return Ok(request);
    };
    let refuse = |m: String| AdminError::new(AdminErrorCode::Invalid, m);
    let view = client::read(d, std::slice::from_ref(employee))
        .await
        .map_err(|e| {
            AdminError::new(
                AdminErrorCode::Internal,
                format!("the directory could not be read, so {employee} cannot be confirmed: {e}"),
            )
        })?;
    let Some(person) = view.people.get(employee) else {
        return Err(refuse(if view.outside_groups.contains(employee) {
            format!("{employee} is in no telework group of the directory")
        } else {
            format!("{employee} is not in the directory")
        }));
    };
    if person.disabled {
        return Err(refuse(format!(
            "{employee}'s account is disabled in the directory"
        )));
    }
    let roles: Vec<&str> = person.roles.iter().map(String::as_str).collect();
    let role = match (role.as_deref(), roles.as_slice()) {
        (Some(r), _) if roles.contains(&r) => r.to_owned(),
        (Some(r), _) => {
            return Err(refuse(format!(
                "the directory places {employee} in {}, not {r}",
                roles.join(", ")
            )));
        }
        (None, [only]) => (*only).to_owned(),
        (None, _) => {
            return Err(refuse(format!(
                "the directory places {employee} in several telework groups ({}): give --role",
                roles.join(", ")
            )));
        }
    };
    Ok(AdminRequest::Invite {
        employee: employee.clone(),
        role: Some(role),
        schedule: schedule.clone(),
        approved_by: approved_by.clone(),
        reference: reference.clone(),
        valid_for_secs: *valid_for_secs,
    })
}

/// The employees with a device in service (pending approval or active), and their
/// devices.
pub fn teleworkers(devices: &[DeviceRecord]) -> BTreeMap<EmployeeId, Vec<&DeviceRecord>> {
    let mut out: BTreeMap<EmployeeId, Vec<&DeviceRecord>> = BTreeMap::new();
    for d in devices
        .iter()
        .filter(|d| matches!(d.status, DeviceStatus::Active | DeviceStatus::Pending))
    {
        out.entry(d.employee.clone()).or_default().push(d);
    }
    out
}

/// Compares the directory with the devices in service.
pub fn drift(view: &DirectoryView, devices: &[DeviceRecord], max_revoke_percent: u8) -> Drift {
    let teleworkers = teleworkers(devices);
    let mut end = Vec::new();
    let mut role_changes = Vec::new();
    for (employee, devices) in &teleworkers {
        let Some(person) = view.people.get(employee) else {
            let why = if view.outside_groups.contains(employee) {
                EndWhy::NoTeleworkGroup
            } else {
                EndWhy::Deleted
            };
            end.push(Ending {
                employee: employee.clone(),
                why,
            });
            continue;
        };
        if person.disabled {
            end.push(Ending {
                employee: employee.clone(),
                why: EndWhy::Disabled,
            });
            continue;
        }
        for d in devices {
            if !person.roles.contains(&d.role)
                && let Some(to) = person.roles.iter().next()
            {
                role_changes.push(RoleChange {
                    employee: employee.clone(),
                    device: d.id.clone(),
                    from: d.role.clone(),
                    to: to.clone(),
                });
            }
        }
    }
    let over_threshold =
        !end.is_empty() && end.len() * 100 > usize::from(max_revoke_percent) * teleworkers.len();
    Drift {
        server: view.server.clone(),
        employees: teleworkers.len(),
        end,
        role_changes,
        skipped: view.skipped.clone(),
        over_threshold,
    }
}

#[cfg(test)]
mod tests {
    use ztgw_api::control::Ownership;
    use ztgw_pki::{InvitationId, WgPublicKey};

    use super::*;

    fn device(n: u8, employee: &str, role: &str, status: DeviceStatus) -> DeviceRecord {
        DeviceRecord {
            id: DeviceId::from_random([n; 10]),
            employee: EmployeeId::new(employee).expect("id"),
            role: role.into(),
            schedule: None,
            invitation: InvitationId::from_random([n; 10]),
            hostname: "pc".into(),
            os: "Debian".into(),
            ownership: Ownership::Administration,
            wg_key: WgPublicKey::from_bytes([n; 32]),
            status,
            enrolled_at: time::OffsetDateTime::UNIX_EPOCH,
            approved: None,
            ended: None,
        }
    }

    fn person(id: &str, roles: &[&str], disabled: bool) -> (EmployeeId, Person) {
        let employee = EmployeeId::new(id).expect("id");
        (
            employee.clone(),
            Person {
                dn: format!("uid={id}"),
                employee,
                disabled,
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            },
        )
    }

    fn view(people: Vec<(EmployeeId, Person)>) -> DirectoryView {
        DirectoryView {
            server: "ldaps://dc".into(),
            people: people.into_iter().collect(),
            outside_groups: BTreeSet::new(),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn a_role_the_person_still_has_is_kept_and_revoked_devices_do_not_count() {
        let devices = [
            device(1, "e1", "hr", DeviceStatus::Active),
            device(2, "e2", "finance", DeviceStatus::Revoked),
        ];
        let d = drift(
            &view(vec![person("e1", &["finance", "hr"], false)]),
            &devices,
            10,
        );
        assert!(d.role_changes.is_empty(), "hr is still one of e1's roles");
        assert!(d.end.is_empty(), "e2 has no telework left to end");
        assert_eq!(d.employees, 1);
    }

    #[test]
    fn the_share_of_employees_ended_is_bounded() {
        let devices: Vec<DeviceRecord> = (0..10)
            .map(|n| device(n, &format!("e{n}"), "finance", DeviceStatus::Active))
            .collect();
        let all: Vec<_> = (0..10)
            .map(|n| person(&format!("e{n}"), &["finance"], false))
            .collect();
        // One of ten gone: 10%, at the bound.
        let d = drift(&view(all[1..].to_vec()), &devices, 10);
        assert_eq!(d.end.len(), 1);
        assert!(!d.over_threshold);
        // Two of ten: over it.
        let d = drift(&view(all[2..].to_vec()), &devices, 10);
        assert!(d.over_threshold);
        // A directory that answered nothing would end everyone's: refused.
        let d = drift(&view(Vec::new()), &devices, 10);
        assert_eq!(d.end.len(), 10);
        assert!(d.over_threshold);
    }
}
