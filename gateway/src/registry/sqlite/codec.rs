//! Values as SQLite stores them (times as Unix seconds, ids as text, reasons as words) and
//! the query helpers every table uses.

pub(super) use crate::registry::values::{from_ts, parse_id, parse_reason, reason_str, ts};

use rusqlite::{Connection, OptionalExtension as _, Row};

use crate::registry::{RegistryError, StatusChange};

/// Reads an optional [`StatusChange`] from four columns starting at `first`
/// (at, by, reason, note).
pub(super) fn change_from_row(
    r: &Row<'_>,
    first: usize,
) -> Result<Option<StatusChange>, RegistryError> {
    let at: Option<i64> = r.get(first).map_err(storage)?;
    let Some(at) = at else { return Ok(None) };
    Ok(Some(StatusChange {
        at: from_ts(at)?,
        by: r
            .get::<_, Option<String>>(first + 1)
            .map_err(storage)?
            .unwrap_or_default(),
        reason: r
            .get::<_, Option<String>>(first + 2)
            .map_err(storage)?
            .unwrap_or_default(),
        note: r.get(first + 3).map_err(storage)?,
    }))
}

/// One row or none, decoded by `decode` (whose errors are the registry's own).
pub(super) fn query_opt<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl FnOnce(&Row<'_>) -> Result<T, RegistryError>,
) -> Result<Option<T>, RegistryError> {
    c.query_row(sql, params, |r| Ok(decode(r)))
        .optional()
        .map_err(storage)?
        .transpose()
}

/// Every row, each decoded by `decode`; the first failure ends the query.
pub(super) fn query_all<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mut decode: impl FnMut(&Row<'_>) -> Result<T, RegistryError>,
) -> Result<Vec<T>, RegistryError> {
    let mut stmt = c.prepare(sql).map_err(storage)?;
    let rows = stmt.query_map(params, |r| Ok(decode(r))).map_err(storage)?;
    rows.map(|r| r.map_err(storage).and_then(|x| x)).collect()
}

pub(super) fn storage(e: rusqlite::Error) -> RegistryError {
    RegistryError::Storage(e.to_string())
}
