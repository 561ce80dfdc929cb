//! The rpm database of Fedora and RHEL (`/var/lib/rpm/rpmdb.sqlite`): package headers in
//! SQLite, read without rpm itself.
//!
//! A header blob is `index count: u32 BE`, `data size: u32 BE`, then `count` entries of
//! `tag, type, offset, count` (u32 BE each), then the data. Strings are NUL-terminated.

use std::path::Path;

use crate::report::Package;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
/// Most packages read from an rpm database.
pub const MAX_PACKAGES: usize = 50_000;

/// Installed packages from `ROOT/var/lib/rpm/rpmdb.sqlite`, if it exists.
pub fn installed(root: &Path) -> Option<Result<Vec<Package>, String>> {
    let path = root.join("var/lib/rpm/rpmdb.sqlite");
    if !path.exists() {
        return None;
    }
    Some(read(&path))
}

/// The rpm database is SQLite, whose C library the agent links on Linux only (the
/// Windows and macOS agents read Linux roots without it, and the crates that only
/// evaluate reports are built without the `rpm` feature).
#[cfg(not(all(target_os = "linux", feature = "rpm")))]
fn read(_: &Path) -> Result<Vec<Package>, String> {
    Err("rpm databases are read by the Linux agent only".into())
}

#[cfg(all(target_os = "linux", feature = "rpm"))]
fn read(path: &Path) -> Result<Vec<Package>, String> {
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
    let mut stmt = conn
        .prepare("SELECT blob FROM Packages")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for row in rows.take(MAX_PACKAGES) {
        let blob = row.map_err(|e| e.to_string())?;
        if let Some(p) = parse_header(&blob) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Name and `[epoch:]version-release` from one header blob.
pub fn parse_header(blob: &[u8]) -> Option<Package> {
    let be = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(blob.get(at..at + 4)?.try_into().ok()?))
    };
    let count = be(0)? as usize;
    let size = be(4)? as usize;
    let data_start = 8usize.checked_add(count.checked_mul(16)?)?;
    let data = blob.get(data_start..data_start.checked_add(size)?)?;
    let (mut name, mut version, mut release, mut epoch) = (None, None, None, None);
    for i in 0..count.min(10_000) {
        let e = 8 + i * 16;
        let (tag, kind, offset) = (be(e)?, be(e + 4)?, be(e + 8)? as usize);
        let string = || -> Option<String> {
            let s = data.get(offset..)?;
            let end = s.iter().position(|b| *b == 0)?;
            String::from_utf8(s[..end].to_vec()).ok()
        };
        match (tag, kind) {
            (TAG_NAME, TYPE_STRING) => name = string(),
            (TAG_VERSION, TYPE_STRING) => version = string(),
            (TAG_RELEASE, TYPE_STRING) => release = string(),
            (TAG_EPOCH, TYPE_INT32) => {
                epoch = data
                    .get(offset..offset + 4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
            }
            _ => {}
        }
    }
    let mut full = format!("{}-{}", version?, release?);
    if let Some(e) = epoch.filter(|e| *e > 0) {
        full = format!("{e}:{full}");
    }
    Some(Package {
        name: name?,
        version: full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a header blob as rpm writes it.
    fn header(entries: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, value) in entries {
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&kind.to_be_bytes());
            index.extend_from_slice(&(data.len() as u32).to_be_bytes());
            index.extend_from_slice(&1u32.to_be_bytes());
            data.extend_from_slice(value);
        }
        let mut blob = (entries.len() as u32).to_be_bytes().to_vec();
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        blob.extend_from_slice(&index);
        blob.extend_from_slice(&data);
        blob
    }

    fn nmap() -> Vec<u8> {
        header(&[
            (TAG_NAME, TYPE_STRING, b"nmap\0"),
            (TAG_VERSION, TYPE_STRING, b"7.92\0"),
            (TAG_RELEASE, TYPE_STRING, b"1.fc40\0"),
            (TAG_EPOCH, TYPE_INT32, &3u32.to_be_bytes()),
        ])
    }

    #[test]
    fn reads_headers_and_refuses_garbage() {
        let p = parse_header(&nmap()).expect("package");
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("nmap", "3:7.92-1.fc40")
        );
        assert_eq!(parse_header(b"short"), None);
        assert_eq!(parse_header(&[0xff; 64]), None);
        let mut cut = nmap();
        cut.truncate(cut.len() - 3);
        assert_eq!(parse_header(&cut), None);
    }

    #[test]
    fn reads_an_rpmdb_sqlite_under_a_root() {
        let root = tempfile::tempdir().expect("tempdir");
        assert!(installed(root.path()).is_none());
        std::fs::create_dir_all(root.path().join("var/lib/rpm")).expect("mkdir");
        let conn =
            rusqlite::Connection::open(root.path().join("var/lib/rpm/rpmdb.sqlite")).expect("db");
        conn.execute_batch(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
        )
        .expect("schema");
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [nmap()])
            .expect("insert");
        drop(conn);
        let pkgs = installed(root.path()).expect("present").expect("readable");
        assert_eq!(pkgs.len(), 1);
        assert_eq!(pkgs[0].name, "nmap");
    }
}
