//! Live sessions, one a device, whichever gateway holds them: what `ztgw session list`
//! shows across gateways, and how a gateway learns that another admitted a device it
//! holds a session of (the session it holds must end).

use ztgw_pki::DeviceId;

use crate::registry::sql::{Db, Row, Sql};
use crate::registry::values::{from_ts, parse_id, ts};
use crate::registry::{LiveSession, RegistryError};

const COLUMNS: &str = "session, device, employee, gateway, role, tunnel_address, started, ends_at";

/// Not synced on a registry of one gateway ([`Db::write_unsynced`]): a claim or a release
/// lost to a power cut is one the next start would release anyway, and every admission
/// and disconnect writes one.
pub(super) fn claim(db: &impl Db, s: &LiveSession) -> Result<Option<LiveSession>, RegistryError> {
    db.write_unsynced(|sql| {
        let previous = one_in(sql, &s.device)?;
        sql.execute(
            "DELETE FROM live_sessions WHERE device = ?1",
            &[s.device.as_str().into()],
        )?;
        sql.execute(
            &format!(
                "INSERT INTO live_sessions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            &[
                s.session.as_str().into(),
                s.device.as_str().into(),
                s.employee.as_str().into(),
                s.gateway.as_str().into(),
                s.role.as_str().into(),
                s.tunnel_address.as_str().into(),
                ts(s.started).into(),
                ts(s.ends_at).into(),
            ],
        )?;
        let replaced = previous.filter(|p| p.session != s.session);
        if replaced.as_ref().is_some_and(|p| p.gateway != s.gateway) {
            // Another gateway holds a session to end: the revision moves.
            sql.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'replacements'",
                &[],
            )?;
        }
        Ok(replaced)
    })
}

pub(super) fn release(db: &impl Db, id: &str) -> Result<(), RegistryError> {
    db.write_unsynced(|sql| {
        sql.execute("DELETE FROM live_sessions WHERE session = ?1", &[id.into()])?;
        Ok(())
    })
}

pub(super) fn release_of(
    db: &impl Db,
    gateway: &str,
    keep: &[String],
) -> Result<usize, RegistryError> {
    db.write(|sql| {
        let held = sql.query_all(
            "SELECT session FROM live_sessions WHERE gateway = ?1",
            &[gateway.into()],
            |r| r.text(0),
        )?;
        let mut released = 0;
        for id in held.iter().filter(|id| !keep.contains(id)) {
            released += sql.execute(
                "DELETE FROM live_sessions WHERE session = ?1",
                &[id.as_str().into()],
            )?;
        }
        Ok(usize::try_from(released).unwrap_or(usize::MAX))
    })
}

pub(super) fn all(db: &impl Db) -> Result<Vec<LiveSession>, RegistryError> {
    db.read(|sql| {
        sql.query_all(
            &format!("SELECT {COLUMNS} FROM live_sessions ORDER BY started, session"),
            &[],
            decode,
        )
    })
}

fn one_in(sql: &mut dyn Sql, device: &DeviceId) -> Result<Option<LiveSession>, RegistryError> {
    sql.query_opt(
        &format!("SELECT {COLUMNS} FROM live_sessions WHERE device = ?1"),
        &[device.as_str().into()],
    )?
    .map(|r| decode(&r))
    .transpose()
}

fn decode(r: &Row) -> Result<LiveSession, RegistryError> {
    Ok(LiveSession {
        session: r.text(0)?,
        device: parse_id(r.text(1)?)?,
        employee: parse_id(r.text(2)?)?,
        gateway: r.text(3)?,
        role: r.text(4)?,
        tunnel_address: r.text(5)?,
        started: from_ts(r.int(6)?)?,
        ends_at: from_ts(r.int(7)?)?,
    })
}
