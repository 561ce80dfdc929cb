//! The registry on PostgreSQL (`[registry] url`), shared by several gateways: the same
//! tables as the SQLite registry, every change in one transaction, versioned migrations
//! applied at open under an advisory lock (two gateways starting together apply them
//! once), a small pool of connections.
//!
//! The driver is `postgres`, the synchronous client of rust-postgres (see ARCHITECTURE.md
//! for why). It drives each connection with a runtime of its own, which may not be
//! entered (nor dropped) from an async task: every use of a connection, its opening and
//! its closing happen on a scoped thread of the call's own, so the [`Registry`] trait stays
//! synchronous and callable from anywhere, as the SQLite one is.

mod schema;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator as _;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls};

use super::RegistryError;
use super::sql::{Cell, Db, Param, Row, Sql, SqlError, dollar_params};

/// The schema, one migration a version; a database at a version this ztgw does not know
/// (a newer one's) is refused.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, schema::SCHEMA_1),
    (2, schema::SCHEMA_2),
    (3, schema::SCHEMA_3),
];

/// The advisory lock under which migrations run.
const MIGRATION_LOCK: i64 = 0x7a74_6777; // "ztgw"

/// How long a call waits for a free connection.
const CHECKOUT_WAIT: Duration = Duration::from_secs(10);

/// The PostgreSQL registry.
pub struct PgRegistry {
    config: postgres::Config,
    /// TLS to the server, checked against the configured CA, when there is one.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: Mutex<Pool>,
    freed: Condvar,
    size: usize,
    /// Set when the registry is dropped: the listener (if any) stops.
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct Pool {
    clients: Vec<Client>,
    open: usize,
}

impl std::fmt::Debug for PgRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: only where the database is.
        f.debug_struct("PgRegistry")
            .field("hosts", &self.config.get_hosts().len())
            .field("dbname", &self.config.get_dbname())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl PgRegistry {
    /// Connects to the database at `url` (a libpq connection string or a
    /// `postgresql://` URL) with `password` if given, over TLS checked against `ca_pem`
    /// if given, applies the migrations it lacks, and keeps at most `size` connections. The database is never dropped or rewritten; a newer schema is refused.
    pub fn open(
        url: &str,
        password: Option<&ztgw_pki::Secret<String>>,
        ca_pem: Option<&[u8]>,
        size: usize,
    ) -> Result<Self, RegistryError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| RegistryError::Storage(format!("registry url: {e}")))?;
        if let Some(p) = password {
            config.password(p.expose());
        }
        let tls = match ca_pem {
            Some(pem) => {
                let client = ztgw_pki::tls::client_config_trusting(pem)
                    .map_err(|e| RegistryError::Storage(format!("registry ca_file: {e}")))?;
                config.ssl_mode(postgres::config::SslMode::Require);
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(client))
            }
            None => None,
        };
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("ztgw");
        let reg = Self {
            config,
            tls,
            idle: Mutex::new(Pool::default()),
            freed: Condvar::new(),
            size: size.max(1),
            stop: Arc::new(AtomicBool::new(false)),
        };
        reg.in_transaction(migrate)?;
        Ok(reg)
    }

    /// Runs `f` with a connection, on a thread of its own (see the module's words).
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        let client = self.checkout()?;
        let config = &self.config;
        let tls = self.tls.clone();
        let (result, back) = std::thread::scope(|s| {
            s.spawn(move || {
                let mut client = match client {
                    Some(c) => c,
                    None => {
                        let connected = match tls {
                            Some(tls) => config.connect(tls),
                            None => config.connect(NoTls),
                        };
                        match connected {
                            Ok(c) => c,
                            Err(e) => return (Err(pg(&e)), None),
                        }
                    }
                };
                let result = f(&mut client);
                // A broken connection is closed here, off the caller's thread.
                if client.is_closed() {
                    drop(client);
                    (result, None)
                } else {
                    (result, Some(client))
                }
            })
            .join()
            .unwrap_or_else(|_| {
                (
                    Err(RegistryError::Storage("a registry call panicked".into())),
                    None,
                )
            })
        });
        self.checkin(back);
        result
    }

    /// Runs `f` in one transaction (committed when it returns `Ok`).
    fn in_transaction<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| pg(&e))?;
            let out = f(&mut tx)?;
            tx.commit().map_err(|e| pg(&e))?;
            Ok(out)
        })
    }

    /// An idle connection, `None` to open a new one (counted), or an error after
    /// [`CHECKOUT_WAIT`] when all are in use.
    fn checkout(&self) -> Result<Option<Client>, RegistryError> {
        let lock = || {
            self.idle
                .lock()
                .map_err(|_| RegistryError::Storage("registry pool lock poisoned".into()))
        };
        let mut pool = lock()?;
        let deadline = std::time::Instant::now() + CHECKOUT_WAIT;
        loop {
            if let Some(c) = pool.clients.pop() {
                return Ok(Some(c));
            }
            if pool.open < self.size {
                pool.open += 1;
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(RegistryError::Storage(format!(
                    "all {} registry connections are busy",
                    self.size
                )));
            }
            pool = self
                .freed
                .wait_timeout(pool, left)
                .map_err(|_| RegistryError::Storage("registry pool lock poisoned".into()))?
                .0;
        }
    }

    fn checkin(&self, client: Option<Client>) {
        if let Ok(mut pool) = self.idle.lock() {
            match client {
                Some(c) => pool.clients.push(c),
                None => pool.open = pool.open.saturating_sub(1),
            }
        }
        self.freed.notify_one();
    }
}

impl Drop for PgRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Connections own runtimes, which may not be dropped on an async thread.
        let clients = self
            .idle
            .get_mut()
            .map(|p| std::mem::take(&mut p.clients))
            .unwrap_or_default();
        let _ = std::thread::spawn(move || drop(clients)).join();
    }
}

/// The channel every change another gateway must act on is notified on (see
/// `schema::SCHEMA_2`).
const CHANNEL: &str = "ztgw_registry";
/// How often the listener looks whether it must stop.
const LISTEN_POLL: Duration = Duration::from_millis(250);
/// The longest wait before connecting again after the listening connection was lost.
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Listens on [`CHANNEL`] on a connection of its own, on a thread of its own, and calls
/// `hook` once per burst of notifications, and after every (re)connection: what
/// happened while it was not listening is unknown, so the caller looks again.
fn listen(
    config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    stop: Arc<AtomicBool>,
    hook: super::ChangeHook,
) {
    let mut backoff = Duration::from_millis(200);
    while !stop.load(Ordering::Relaxed) {
        let connected = match tls.clone() {
            Some(tls) => config.connect(tls),
            None => config.connect(NoTls),
        };
        let mut client = match connected {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %pg(&e), "the registry's change notifications: cannot connect; trying again");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!(error = %pg(&e), "the registry's change notifications: LISTEN failed");
            std::thread::sleep(backoff);
            continue;
        }
        backoff = Duration::from_millis(200);
        hook();
        let mut polls = 0u32;
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let first = client.notifications().timeout_iter(LISTEN_POLL).next();
            let outcome = match first {
                // A burst is read to its end (what has arrived) before the hook runs once.
                Ok(Some(_)) => client.notifications().iter().count().map(|_| true),
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            };
            polls = polls.wrapping_add(1);
            let outcome = match outcome {
                // A connection that died quietly shows when asked (every few seconds).
                Ok(heard) if polls.is_multiple_of(20) => {
                    client.is_valid(LISTEN_POLL).map(|()| heard)
                }
                other => other,
            };
            match outcome {
                Ok(true) => hook(),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %pg(&e), "the registry's change notifications: connection lost; connecting again");
                    break;
                }
            }
        }
    }
}

/// Applies the migrations the database lacks, under the advisory lock.
fn migrate(tx: &mut postgres::Transaction<'_>) -> Result<(), RegistryError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| pg(&e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ztgw_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .map_err(|e| pg(&e))?;
    let applied: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM ztgw_migrations", &[])
        .and_then(|r| r.try_get(0))
        .map_err(|e| pg(&e))?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if applied > known {
        return Err(RegistryError::Corrupt(format!(
            "schema version {applied}, this ztgw knows {known}"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.batch_execute(sql).map_err(|e| pg(&e))?;
        tx.execute(
            "INSERT INTO ztgw_migrations (version) VALUES ($1)",
            &[version],
        )
        .map_err(|e| pg(&e))?;
    }
    Ok(())
}

/// A driver error as the registry's.
pub(super) fn pg(e: &postgres::Error) -> RegistryError {
    RegistryError::Storage(match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => {
            // With its causes: "error performing TLS handshake: invalid peer certificate…".
            let mut text = format!("PostgreSQL: {e}");
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        }
    })
}

impl Db for PgRegistry {
    fn shared(&self) -> bool {
        true
    }

    fn on_change(&self, hook: super::ChangeHook) -> Result<(), RegistryError> {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let stop = self.stop.clone();
        std::thread::Builder::new()
            .name("registry-listen".into())
            .spawn(move || listen(config, tls, stop, hook))
            .map(|_| ())
            .map_err(|e| RegistryError::Storage(format!("the registry's listener: {e}")))
    }

    fn read<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        self.with(|c| f(c))
    }

    fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        self.in_transaction(|tx| f(tx))
    }
}

impl Sql for Client {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, SqlError> {
        Client::execute(self, &dollar_params(sql), &refs(params)).map_err(|e| sql_error(&e))
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        let rows =
            Client::query(self, &dollar_params(sql), &refs(params)).map_err(|e| sql_error(&e))?;
        rows.iter().map(row).collect()
    }
}

impl Sql for postgres::Transaction<'_> {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, SqlError> {
        postgres::Transaction::execute(self, &dollar_params(sql), &refs(params))
            .map_err(|e| sql_error(&e))
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        let rows = postgres::Transaction::query(self, &dollar_params(sql), &refs(params))
            .map_err(|e| sql_error(&e))?;
        rows.iter().map(row).collect()
    }
}

fn refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// A row as cells, by the columns' types.
fn row(r: &postgres::Row) -> Result<Row, SqlError> {
    let bad = |e: postgres::Error| SqlError::Other(pg(&e));
    r.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(match *c.type_() {
                Type::INT8 => r.try_get::<_, Option<i64>>(i).map_err(bad)?.map(Cell::Int),
                Type::INT4 => r
                    .try_get::<_, Option<i32>>(i)
                    .map_err(bad)?
                    .map(|v| Cell::Int(i64::from(v))),
                Type::BYTEA => r
                    .try_get::<_, Option<Vec<u8>>>(i)
                    .map_err(bad)?
                    .map(Cell::Bytes),
                _ => r
                    .try_get::<_, Option<String>>(i)
                    .map_err(bad)?
                    .map(Cell::Text),
            }
            .unwrap_or(Cell::Null))
        })
        .collect::<Result<Vec<Cell>, SqlError>>()
        .map(Row)
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Text(v) => v.to_sql(ty, out),
            Param::Int(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    /// Checked against the value's own type (a text into a `BIGINT` column is refused).
    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Text(v) => v.to_sql_checked(ty, out),
            Param::Int(v) => v.to_sql_checked(ty, out),
            Param::Bytes(v) => v.to_sql_checked(ty, out),
        }
    }
}

fn sql_error(e: &postgres::Error) -> SqlError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        SqlError::Unique
    } else {
        SqlError::Other(pg(e))
    }
}
