//! dconf's database files (GVDB, as `dconf compile` and the running dconf service write
//! them: `~/.config/dconf/user`), read without GLib: the hash table's items are walked in
//! order, each key rebuilt from its parent chain, and the values of the simple types the
//! posture checks need (booleans, integers, strings) decoded from their GVariant form.
//!
//! Layout (little-endian): `GVariant` magic, version, options, the root table's pointer
//! (start, end); a table is `bloom header (u32: words | shift << 27)`, `n_buckets`, the
//! bloom words, the buckets, then 24-byte items: hash, parent index, key start, key size
//! (u16), type (`v` value, `L` directory, `H` table), padding, value pointer (start, end).
//! A value `v` is the serialized value, a zero byte, then its type string.

use std::collections::BTreeMap;

/// Largest file read (a user's dconf database is a few KiB).
pub const MAX_BYTES: usize = 4 << 20;
/// Most items read from a table.
const MAX_ITEMS: usize = 100_000;
const ITEM: usize = 24;
const NO_PARENT: u32 = u32::MAX;

/// A decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    U32(u32),
    I32(i32),
    Str(String),
    /// Any type the checks do not read.
    Other(String),
}

/// Why a file could not be read as a dconf database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a dconf database: {0}")]
pub struct GvdbError(pub String);

/// Every key (`/org/gnome/desktop/session/idle-delay`) and its value.
pub fn parse(bytes: &[u8]) -> Result<BTreeMap<String, Value>, GvdbError> {
    let bad = |m: &str| GvdbError(m.to_owned());
    if bytes.len() > MAX_BYTES {
        return Err(bad("larger than a dconf database can be"));
    }
    if bytes.get(..8) != Some(b"GVariant".as_slice()) {
        return Err(bad(
            "no GVariant signature (or a big-endian file, not read)",
        ));
    }
    let (start, end) = (u32_at(bytes, 16)?, u32_at(bytes, 20)?);
    let table = bytes
        .get(start as usize..end as usize)
        .ok_or_else(|| bad("the root table points outside the file"))?;
    let bloom = u32_at(table, 0)? & ((1 << 27) - 1);
    let buckets = u32_at(table, 4)?;
    let items_at = 8usize
        .checked_add((bloom as usize + buckets as usize).saturating_mul(4))
        .filter(|n| *n <= table.len())
        .ok_or_else(|| bad("the root table's header is larger than the table"))?;
    let n = ((table.len() - items_at) / ITEM).min(MAX_ITEMS);
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let at = items_at + i * ITEM;
        let parent = u32_at(table, at + 4)?;
        let key_start = u32_at(table, at + 8)? as usize;
        let key_size = u16::from_le_bytes([table[at + 12], table[at + 13]]) as usize;
        let kind = table[at + 14];
        let (v_start, v_end) = (u32_at(table, at + 16)?, u32_at(table, at + 20)?);
        let key = bytes
            .get(key_start..key_start.saturating_add(key_size))
            .ok_or_else(|| bad("a key points outside the file"))?;
        items.push((
            parent,
            String::from_utf8_lossy(key).into_owned(),
            kind,
            v_start,
            v_end,
        ));
    }
    let mut out = BTreeMap::new();
    for (i, (_, _, kind, v_start, v_end)) in items.iter().enumerate() {
        if *kind != b'v' {
            continue;
        }
        // The full key: the segments up the parent chain (bounded, so a cycle ends).
        let mut segments = Vec::new();
        let mut at = i;
        for _ in 0..64 {
            let (parent, key, ..) = &items[at];
            segments.push(key.as_str());
            if *parent == NO_PARENT {
                break;
            }
            at = *parent as usize;
            if at >= items.len() {
                return Err(bad("an item's parent is not in the table"));
            }
        }
        let key: String = segments.iter().rev().copied().collect();
        let value = bytes
            .get(*v_start as usize..*v_end as usize)
            .ok_or_else(|| bad("a value points outside the file"))?;
        out.insert(key, variant(value));
    }
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, GvdbError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| GvdbError("cut short".into()))
}

/// A serialized `v`: the value, a zero byte, its type.
fn variant(bytes: &[u8]) -> Value {
    let Some(sep) = bytes.iter().rposition(|b| *b == 0) else {
        return Value::Other("no type".into());
    };
    let (data, ty) = (&bytes[..sep], &bytes[sep + 1..]);
    match ty {
        b"b" if data.len() == 1 => Value::Bool(data[0] != 0),
        b"u" if data.len() == 4 => {
            Value::U32(u32::from_le_bytes([data[0], data[1], data[2], data[3]]))
        }
        b"i" if data.len() == 4 => {
            Value::I32(i32::from_le_bytes([data[0], data[1], data[2], data[3]]))
        }
        b"s" => Value::Str(
            String::from_utf8_lossy(data.strip_suffix(&[0]).unwrap_or(data)).into_owned(),
        ),
        other => Value::Other(String::from_utf8_lossy(other).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `dconf compile` from `user-lock-300.keyfile` beside it.
    const LOCK_300: &[u8] = include_bytes!("../../tests/fixtures/dconf/user-lock-300");

    #[test]
    fn a_database_written_by_dconf() {
        let keys = parse(LOCK_300).expect("parses");
        assert_eq!(
            keys.get("/org/gnome/desktop/screensaver/lock-enabled"),
            Some(&Value::Bool(true))
        );
        assert_eq!(
            keys.get("/org/gnome/desktop/session/idle-delay"),
            Some(&Value::U32(300))
        );
        assert_eq!(
            keys.get("/org/gnome/desktop/interface/color-scheme"),
            Some(&Value::Str("prefer-dark".into()))
        );
        assert_eq!(keys.len(), 4, "{keys:?}");
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        assert!(parse(b"").is_err());
        assert!(parse(b"GVariant").is_err());
        for cut in [10, 30, 100, 300, LOCK_300.len() - 1] {
            let _ = parse(&LOCK_300[..cut]);
        }
        let mut flipped = LOCK_300.to_vec();
        for i in 24..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = parse(&flipped);
            flipped[i] ^= 0xff;
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_after_the_signature(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut b = b"GVariant".to_vec();
            b.extend(tail);
            let _ = parse(&b);
        }
    }
}
