//! What the registry's tables need of a database, so that they are written once for
//! SQLite and PostgreSQL: statements with `?N` parameters (PostgreSQL's `$N` are made from
//! them), typed parameters, rows of cells, a unique violation told apart, and a
//! transaction per change.

use super::RegistryError;

/// A parameter, typed (a NULL of PostgreSQL has a type too).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Bytes(Option<&'a [u8]>),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Self::Text(v.as_deref())
    }
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Self::Bytes(Some(v))
    }
}

/// One value read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// One row read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row(pub(crate) Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell, RegistryError> {
        self.0
            .get(i)
            .ok_or_else(|| RegistryError::Corrupt(format!("column {i} missing")))
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, RegistryError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Text(s) => Ok(Some(s.clone())),
            other => Err(RegistryError::Corrupt(format!(
                "column {i}: text expected, {other:?}"
            ))),
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, RegistryError> {
        self.opt_text(i)?
            .ok_or_else(|| RegistryError::Corrupt(format!("column {i}: NULL")))
    }

    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, RegistryError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            other => Err(RegistryError::Corrupt(format!(
                "column {i}: integer expected, {other:?}"
            ))),
        }
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64, RegistryError> {
        self.opt_int(i)?
            .ok_or_else(|| RegistryError::Corrupt(format!("column {i}: NULL")))
    }

    pub(crate) fn bytes(&self, i: usize) -> Result<Vec<u8>, RegistryError> {
        match self.cell(i)? {
            Cell::Bytes(b) => Ok(b.clone()),
            other => Err(RegistryError::Corrupt(format!(
                "column {i}: bytes expected, {other:?}"
            ))),
        }
    }
}

/// Why a statement failed: a unique constraint (which a caller may turn into its own
/// answer), or anything else.
#[derive(Debug)]
pub(crate) enum SqlError {
    Unique,
    Other(RegistryError),
}

impl From<SqlError> for RegistryError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::Unique => RegistryError::Storage("a unique constraint was violated".into()),
            SqlError::Other(e) => e,
        }
    }
}

/// A connection or a transaction.
pub(crate) trait Sql {
    /// Runs a statement; the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, SqlError>;
    /// Runs a query; its rows.
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError>;
}

impl dyn Sql + '_ {
    /// The first row, if any.
    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, RegistryError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Every row, each decoded; the first failure ends it.
    pub(crate) fn query_all<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        decode: impl Fn(&Row) -> Result<T, RegistryError>,
    ) -> Result<Vec<T>, RegistryError> {
        self.query(sql, params)?.iter().map(decode).collect()
    }
}

/// A registry database: reads on a connection, changes in one transaction each.
pub(crate) trait Db: Send + Sync + std::fmt::Debug {
    fn read<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError>;
    fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError>;
    /// A write that a power cut may undo without harm, because the gateway's next start
    /// undoes it anyway: this gateway's live-session rows, which every start releases
    /// ([`crate::cluster::join`]). Atomic and visible at once like [`Db::write`]; a
    /// registry may skip the sync to disk. A registry shared by several gateways must
    /// not (another gateway relies on the rows), and by default none does.
    fn write_unsynced<T: Send>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, RegistryError> + Send,
    ) -> Result<T, RegistryError> {
        self.write(f)
    }
    /// See [`super::Registry::shared`].
    fn shared(&self) -> bool {
        false
    }
    /// See [`super::Registry::on_change`].
    fn on_change(&self, hook: super::ChangeHook) -> Result<(), RegistryError> {
        let _ = hook;
        Ok(())
    }
}

/// PostgreSQL's `$N` parameters from the `?N` the statements are written with.
pub(crate) fn dollar_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_dollars() {
        assert_eq!(
            dollar_params("UPDATE t SET a = ?1 WHERE b = ?12 AND c = '?'"),
            "UPDATE t SET a = $1 WHERE b = $12 AND c = '?'"
        );
    }
}
