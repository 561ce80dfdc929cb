//! The registry on an embedded SQLite database (WAL, synchronous=FULL): its schema, and
//! the database the registry's tables ([`super::tables`]) run on.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OptionalExtension as _, params};

use super::RegistryError;
use super::sql::{Cell, Db, Param, Row, Sql, SqlError};

/// Version 2 added the tables several gateways share (`gateways`, `live_sessions`,
/// `policies`, `overrides`); `CREATE TABLE IF NOT EXISTS` made them, so going from 1 is only the
/// counter they need.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS employees (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
CREATE TABLE IF NOT EXISTS invitations (
    id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees(id),
    role TEXT NOT NULL,
    schedule TEXT,
    approved_by TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    secret_hash BLOB NOT NULL,
    used_at INTEGER,
    used_by TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees(id),
    role TEXT NOT NULL,
    schedule TEXT,
    invitation_id TEXT NOT NULL UNIQUE REFERENCES invitations(id),
    hostname TEXT NOT NULL,
    os TEXT NOT NULL,
    ownership TEXT NOT NULL,
    wg_key BLOB NOT NULL,
    status TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    approved_at INTEGER,
    approved_by TEXT,
    approve_reason TEXT,
    approve_note TEXT,
    ended_at INTEGER,
    ended_by TEXT,
    end_reason TEXT,
    end_note TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_wg_key_in_service
    ON devices(wg_key) WHERE status IN ('pending', 'active');
CREATE INDEX IF NOT EXISTS devices_employee ON devices(employee_id);
CREATE TABLE IF NOT EXISTS certificates (
    serial BLOB PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revocation_reason TEXT
);
CREATE INDEX IF NOT EXISTS certificates_device ON certificates(device_id);
CREATE TABLE IF NOT EXISTS auditors (
    name TEXT PRIMARY KEY,
    serial BLOB NOT NULL UNIQUE,
    not_after INTEGER NOT NULL,
    added_at INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    add_reason TEXT NOT NULL,
    add_note TEXT,
    revoked_at INTEGER,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
CREATE TABLE IF NOT EXISTS operators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    serial BLOB NOT NULL UNIQUE,
    not_after INTEGER NOT NULL,
    added_at INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    add_reason TEXT NOT NULL,
    add_note TEXT,
    revoked_at INTEGER,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
CREATE TABLE IF NOT EXISTS totp (
    device TEXT PRIMARY KEY REFERENCES devices(id),
    secret BLOB NOT NULL,
    last_step INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS totp_failures (
    device TEXT PRIMARY KEY REFERENCES devices(id),
    failures INTEGER NOT NULL,
    last_failure INTEGER,
    locked_until INTEGER
);
CREATE TABLE IF NOT EXISTS gateways (
    name TEXT PRIMARY KEY,
    control TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    pools TEXT NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS live_sessions (
    session TEXT PRIMARY KEY,
    device TEXT NOT NULL UNIQUE,
    employee TEXT NOT NULL,
    gateway TEXT NOT NULL,
    role TEXT NOT NULL,
    tunnel_address TEXT NOT NULL,
    started INTEGER NOT NULL,
    ends_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS policies (
    sha256 TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    loaded_at INTEGER NOT NULL,
    loaded_by TEXT NOT NULL,
    in_force INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS overrides (
    target TEXT PRIMARY KEY,
    until INTEGER NOT NULL,
    reason TEXT NOT NULL,
    operator TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// The SQLite registry. One connection behind a mutex: registry operations are short
/// and the control plane calls them from blocking tasks.
#[derive(Debug)]
pub struct SqliteRegistry {
    conn: Mutex<Connection>,
    /// The connection may have been left at `synchronous=NORMAL` (see
    /// [`Db::write_unsynced`]): the next write sets `FULL` again before it begins.
    relaxed: std::sync::atomic::AtomicBool,
}

impl SqliteRegistry {
    /// Opens (creating the schema if needed) the registry at `path`.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let conn = Connection::open(path).map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(storage)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(storage)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(storage)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(storage)?;
        conn.execute_batch(SCHEMA).map_err(storage)?;
        // Room for every statement the registry's tables use (about a hundred).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let version: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('crl_number', 0), ('replacements', 0)",
                    params![SCHEMA_VERSION],
                )
                .map_err(storage)?;
            }
            Some(SCHEMA_VERSION) => {}
            // Versions 2 and 3 only add tables, which the schema above creates.
            Some(v @ 1..=2) => {
                conn.execute_batch(&format!(
                    "BEGIN;
                     INSERT OR IGNORE INTO meta (key, value) VALUES ('replacements', 0);
                     UPDATE meta SET value = {SCHEMA_VERSION} WHERE key = 'schema_version';
                     COMMIT;"
                ))
                .map_err(storage)?;
                tracing::info!(from = v, to = SCHEMA_VERSION, "registry schema upgraded");
            }
            Some(v) => {
                return Err(RegistryError::Corrupt(format!(
                    "schema version {v}, this ztgw knows {SCHEMA_VERSION}"
                )));
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
            relaxed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| RegistryError::Storage("registry lock poisoned".into()))?;
        f(&mut conn)
    }

    /// Writes a consistent copy of the registry database `db` to `path` (a new file),
    /// whatever a running gateway writes meanwhile (`VACUUM INTO` on a connection of its
    /// own). A file operation of the embedded registry: not part of [`Registry`].
    pub fn snapshot(db: &Path, path: &Path) -> Result<(), RegistryError> {
        let target = path
            .to_str()
            .ok_or_else(|| RegistryError::Storage("the snapshot path is not UTF-8".into()))?;
        let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(storage)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(storage)?;
        conn.execute("VACUUM INTO ?1", params![target])
            .map_err(storage)?;
        Ok(())
    }
}

impl Db for SqliteRegistry {
    fn read<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        self.with(|c| f(&mut &*c))
    }

    fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        self.with(|c| {
            if self.relaxed.load(Ordering::Relaxed) {
                c.pragma_update(None, "synchronous", "FULL")
                    .map_err(storage)?;
                self.relaxed.store(false, Ordering::Relaxed);
            }
            transact(c, f)
        })
    }

    /// Committed with `synchronous=NORMAL`: in WAL mode the commit is atomic and
    /// consistent but not synced (a power cut may roll it back; the next commit with
    /// `FULL` syncs it with its own). The connection is back to `FULL` before the lock
    /// is released, or the write fails.
    fn write_unsynced<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        self.with(|c| {
            c.pragma_update(None, "synchronous", "NORMAL")
                .map_err(storage)?;
            let out = transact(c, f);
            match c.pragma_update(None, "synchronous", "FULL") {
                Ok(()) => out,
                Err(e) => {
                    // The next durable write tries again before it begins, and fails
                    // rather than commit unsynced.
                    self.relaxed.store(true, Ordering::Relaxed);
                    tracing::error!(error = %e, "the registry could not return to synchronous=FULL");
                    Err(storage(e))
                }
            }
        })
    }
}

/// One write transaction on `c`, synced to disk as the connection's `synchronous`
/// setting says: `FULL` for every write but [`Db::write_unsynced`]'s.
fn transact<T>(
    c: &mut Connection,
    f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    let tx = c
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(storage)?;
    let out = {
        let conn: &Connection = &tx;
        f(&mut &*conn)?
    };
    tx.commit().map_err(storage)?;
    Ok(out)
}

impl Sql for &Connection {
    // Statements come from the connection's cache: compiling them again at every call
    // (SQLite's tokenizer, parser and planner) was 4-5 % of the gateway's time under
    // admissions (docs/perf/admission-before.txt). Their text is fixed per call site,
    // parameters apart, so the cache holds a bounded set.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, SqlError> {
        let mut stmt = self.prepare_cached(sql).map_err(sql_error)?;
        stmt.execute(rusqlite::params_from_iter(params))
            .map(|n| n as u64)
            .map_err(sql_error)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        let mut stmt = self.prepare_cached(sql).map_err(sql_error)?;
        let columns = stmt.column_count();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                (0..columns)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            ValueRef::Null => Cell::Null,
                            ValueRef::Integer(v) => Cell::Int(v),
                            ValueRef::Real(v) => Cell::Text(v.to_string()),
                            ValueRef::Text(t) => {
                                Cell::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Cell>>>()
                    .map(Row)
            })
            .map_err(sql_error)?;
        rows.collect::<rusqlite::Result<Vec<Row>>>()
            .map_err(sql_error)
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Int(Some(v)) => ToSqlOutput::Owned(Value::Integer(v)),
            Param::Bytes(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Param::Text(None) | Param::Int(None) | Param::Bytes(None) => {
                ToSqlOutput::Owned(Value::Null)
            }
        })
    }
}

fn sql_error(e: rusqlite::Error) -> SqlError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            SqlError::Unique
        }
        _ => SqlError::Other(storage(e)),
    }
}

fn storage(e: rusqlite::Error) -> RegistryError {
    RegistryError::Storage(e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::{Registry, conformance};

    fn open() -> (tempfile::TempDir, Arc<dyn Registry>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = SqliteRegistry::open(&dir.path().join("r.db")).expect("open");
        (dir, Arc::new(reg))
    }

    /// This gateway's live-session rows are committed without a sync (the next start
    /// releases them anyway), and the connection is back to `synchronous=FULL` before
    /// anything else is written: a revocation after an admission is synced.
    #[test]
    fn live_sessions_are_written_unsynced_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        let reg = SqliteRegistry::open(&path).expect("open");
        let synchronous = |sql: &mut dyn Sql| -> Result<i64, RegistryError> {
            let rows = sql
                .query("PRAGMA synchronous", &[])
                .map_err(|e| RegistryError::Storage(format!("{e:?}")))?;
            Ok(rows
                .first()
                .and_then(|r| r.opt_int(0).ok().flatten())
                .unwrap_or(-1))
        };
        // 1 is NORMAL, 2 FULL.
        assert_eq!(reg.write_unsynced(synchronous).expect("unsynced"), 1);
        assert_eq!(reg.write(synchronous).expect("write"), 2);
        assert_eq!(reg.read(synchronous).expect("read"), 2);

        let t =
            |s: i64| time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time");
        let live = crate::registry::LiveSession {
            session: "s-1".into(),
            device: ztgw_pki::DeviceId::from_random([1; 10]),
            employee: ztgw_pki::EmployeeId::new("e1").expect("id"),
            gateway: "gw-a".into(),
            role: "finance".into(),
            tunnel_address: "100.64.0.2".into(),
            started: t(0),
            ends_at: t(3600),
        };
        let reg: Arc<dyn Registry> = Arc::new(reg);
        assert_eq!(reg.claim_session(&live).expect("claim"), None);
        // Committed and visible to another connection at once, though not synced.
        let other = Connection::open(&path).expect("second connection");
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM live_sessions", [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(count(&other), 1);
        reg.release_session("s-1").expect("release");
        assert_eq!(count(&other), 0);
        assert!(reg.live_sessions().expect("list").is_empty());
    }

    #[test]
    fn an_invitation_is_redeemed_once_even_under_a_race() {
        let (_dir, reg) = open();
        conformance::an_invitation_is_redeemed_once_even_under_a_race(reg);
    }

    #[test]
    fn a_wireguard_key_belongs_to_one_device_in_service() {
        let (_dir, reg) = open();
        conformance::a_wireguard_key_belongs_to_one_device_in_service(reg);
    }

    #[test]
    fn revocation_lists_only_unexpired_revoked_certificates() {
        let (_dir, reg) = open();
        conformance::revocation_lists_only_unexpired_revoked_certificates(reg);
    }

    #[test]
    fn operators_are_added_listed_and_revoked() {
        let (_dir, reg) = open();
        conformance::operators_are_added_listed_and_revoked(reg);
    }

    #[test]
    fn what_gateways_share() {
        let (_dir, reg) = open();
        conformance::what_gateways_share(reg);
    }

    #[test]
    fn a_registry_from_a_newer_ztgw_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(SqliteRegistry::open(&dir.path().join("r.db")).expect("open"));
        let conn = Connection::open(dir.path().join("r.db")).expect("open");
        conn.execute(
            "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .expect("update");
        drop(conn);
        assert!(matches!(
            SqliteRegistry::open(&dir.path().join("r.db")),
            Err(RegistryError::Corrupt(_))
        ));
    }

    #[test]
    fn a_registry_of_schema_2_is_upgraded_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        drop(SqliteRegistry::open(&path).expect("open"));
        // As the previous ztgw left it: schema 2, no operators table.
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "DROP TABLE operators; UPDATE meta SET value = 2 WHERE key = 'schema_version';",
        )
        .expect("downgrade");
        drop(conn);
        let reg: Arc<dyn Registry> = Arc::new(SqliteRegistry::open(&path).expect("upgrade"));
        conformance::operators_are_added_listed_and_revoked(reg);
        let conn = Connection::open(&path).expect("open");
        let version: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }
}
